//! IPv4 header view (RFC 791).

use super::{checksum, get_u16, set_u16, Result, WireError};
use std::net::Ipv4Addr;

mod field {
    use super::super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Byte offset of the identification field.
pub const IDENT_OFFSET: usize = field::IDENT.start;
/// Byte offset of the destination address.
pub const DST_OFFSET: usize = field::DST_ADDR.start;

/// IP protocol numbers prtip uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IpProtocol {
    /// 1.
    Icmp,
    /// 6.
    Tcp,
    /// 17.
    Udp,
    /// 58.
    Icmpv6,
    /// Anything else.
    Unknown(u8),
}
impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            o => IpProtocol::Unknown(o),
        }
    }
}
impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> u8 {
        match v {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(o) => o,
        }
    }
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    /// Wrap, checking version 4, the header length and that the buffer holds it.
    /// The total-length field may claim less than the buffer (Ethernet padding) but
    /// not more.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Ipv4Packet { buffer };
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if p.version() != 4 || p.header_len() < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if b.len() < p.header_len() || b.len() < p.total_len() as usize {
            return Err(WireError::Truncated);
        }
        if (p.total_len() as usize) < p.header_len() {
            return Err(WireError::Malformed);
        }
        Ok(p)
    }
    /// Wrap the datagram an ICMP error quotes: version 4 and the whole header
    /// present, but the payload may be cut short of the total length (RFC 792
    /// quotes the header and 8 bytes). [`Ipv4Packet::payload`] then ends at the
    /// buffer's end.
    pub fn new_quoted(buffer: T) -> Result<Self> {
        let p = Ipv4Packet { buffer };
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if p.version() != 4 || p.header_len() < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if b.len() < p.header_len() {
            return Err(WireError::Truncated);
        }
        // The quoted datagram's own length can never be shorter than its header
        // (the fuzz corpus found one: `payload` would slice backwards).
        if (p.total_len() as usize) < p.header_len() {
            return Err(WireError::Malformed);
        }
        Ok(p)
    }
    /// Version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    /// DSCP/ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    /// Total length.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    /// Flags and fragment offset word.
    pub fn flags_frag(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLG_OFF)
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// Protocol.
    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    /// Whether the header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..self.header_len()])) == 0xffff
    }
    /// The payload (up to total length; ICMP quotes may be cut short, then up to the buffer end).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (self.total_len() as usize).min(b.len());
        &b[self.header_len()..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set version 4 and the header length.
    pub fn set_version_ihl(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }
    /// Set DSCP/ECN.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }
    /// Set total length.
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v)
    }
    /// Set identification.
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v)
    }
    /// Set flags and fragment offset.
    pub fn set_flags_frag(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v)
    }
    /// Set TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    /// Set protocol.
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    /// Set source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }
    /// Set destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets())
    }
    /// Compute and store the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::finish(0, &self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }
    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let end = (self.total_len() as usize).min(self.buffer.as_ref().len());
        &mut self.buffer.as_mut()[hl..end]
    }
}

/// High-level IPv4 header (no options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source.
    pub src_addr: Ipv4Addr,
    /// Destination.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Read the header; fails on a wrong checksum or fragments.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        if !p.verify_checksum() || p.flags_frag() & 0x3fff != 0 {
            return Err(WireError::Malformed);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len(),
            ttl: p.ttl(),
            ident: p.ident(),
            dont_frag: p.flags_frag() & 0x4000 != 0,
        })
    }
    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Write the header with its checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) {
        p.set_version_ihl(HEADER_LEN);
        p.set_dscp_ecn(0);
        p.set_total_len((HEADER_LEN + self.payload_len) as u16);
        p.set_ident(self.ident);
        p.set_flags_frag(if self.dont_frag { 0x4000 } else { 0 });
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// IPv4 header of a 40-byte TCP SYN 198.18.0.1 -> 198.19.0.7, id 0x1234, ttl 64.
    pub static HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x00, 0x00, 0x40, 0x06, 0xdc, 0x6e, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x13, 0x00, 0x07,
    ];

    #[test]
    fn a_quote_whose_total_length_is_shorter_than_its_header_is_malformed() {
        let mut h = HEADER;
        h[2] = 0;
        h[3] = 12; // total length 12 < header length 20
        assert_eq!(
            Ipv4Packet::new_quoted(&h[..]).err(),
            Some(WireError::Malformed)
        );
        // A quote cut short after the header is still fine.
        let p = Ipv4Packet::new_quoted(&HEADER[..]).unwrap();
        assert!(p.payload().is_empty());
    }

    pub fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 1),
            dst_addr: Ipv4Addr::new(198, 19, 0, 7),
            protocol: IpProtocol::Tcp,
            payload_len: 20,
            ttl: 64,
            ident: 0x1234,
            dont_frag: false,
        }
    }

    fn packet_bytes() -> Vec<u8> {
        let mut v = HEADER.to_vec();
        v.extend_from_slice(&[0u8; 20]);
        v
    }

    #[test]
    fn parse_static_header() {
        let bytes = packet_bytes();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn emit_gives_the_same_bytes() {
        let mut bytes = [0u8; 40];
        repr().emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(&bytes[..20], &HEADER[..]);
    }

    #[test]
    fn bad_checksum_version_and_length_are_rejected() {
        let mut bytes = packet_bytes();
        bytes[10] ^= 1;
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p).unwrap_err(), WireError::Malformed);
        bytes[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).unwrap_err(),
            WireError::Malformed
        );
        let bytes = packet_bytes();
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..39]).unwrap_err(),
            WireError::Truncated
        );
    }
}
