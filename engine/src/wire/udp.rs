//! UDP header view (RFC 768).

use super::{checksum, get_u16, set_u16, Result, WireError};
use std::net::Ipv4Addr;

mod field {
    use super::super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// UDP header length.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Offset of the source port.
pub const SRC_PORT_OFFSET: usize = field::SRC_PORT.start;
/// Offset of the destination port.
pub const DST_PORT_OFFSET: usize = field::DST_PORT.start;
/// Offset of the checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    /// Wrap, checking the header fits (the length field is checked by `UdpRepr::parse`).
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(UdpPacket { buffer })
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Length field.
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Whether the length field is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Payload up to the length field (or the buffer end).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (self.len() as usize).clamp(HEADER_LEN, b.len());
        &b[HEADER_LEN..end]
    }
    /// Whether the checksum over the pseudo-header of `src`/`dst` (either family) is
    /// right (a zero field over IPv4 means "not computed" and passes).
    pub fn verify_checksum(&self, src: std::net::IpAddr, dst: std::net::IpAddr) -> bool {
        (src.is_ipv4() && self.checksum() == 0)
            || checksum::verify_l4(src, dst, 17, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Set source port.
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v)
    }
    /// Set destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v)
    }
    /// Set length field.
    pub fn set_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v)
    }
    /// Set checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
    /// Compute and store the checksum over the pseudo-header of `src`/`dst` (either
    /// family; 0 is sent as 0xffff; mixed families leave it zero).
    pub fn fill_checksum(&mut self, src: std::net::IpAddr, dst: std::net::IpAddr) {
        self.set_checksum(0);
        let c = checksum::l4_checksum(src, dst, 17, self.buffer.as_ref()).map(|c| {
            if c == 0 {
                0xffff
            } else {
                c
            }
        });
        self.set_checksum(c.unwrap_or(0));
    }
    /// Compute and store the checksum over an IPv4 pseudo-header (0 is sent as 0xffff).
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = b.len() as u16;
        let c = checksum::finish(checksum::pseudo_header_v4(src, dst, 17, len), b);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

/// High-level UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Read the header.
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> Result<UdpRepr> {
        let len = p.len() as usize;
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: len - HEADER_LEN,
        })
    }
    /// Write the header (checksum 0; fill it once the payload is in place).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut UdpPacket<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len((HEADER_LEN + self.payload_len) as u16);
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DGRAM: [u8; 12] = [
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x6c, b'a', b'b', b'c', b'd',
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 7);

    #[test]
    fn parse_and_emit_round_trip() {
        let p = UdpPacket::new_checked(&DGRAM[..]).unwrap();
        let r = UdpRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            UdpRepr {
                src_port: 40000,
                dst_port: 53,
                payload_len: 4
            }
        );
        assert_eq!(p.payload(), b"abcd");
        let mut buf = [0u8; 12];
        let mut q = UdpPacket::new_unchecked(&mut buf[..]);
        r.emit(&mut q);
        q.payload_mut().copy_from_slice(b"abcd");
        q.fill_checksum_v4(SRC, DST);
        assert_eq!(buf, DGRAM);
    }

    #[test]
    fn short_length_field_is_malformed() {
        let mut buf = DGRAM;
        buf[5] = 4;
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p).unwrap_err(), WireError::Malformed);
    }
}
