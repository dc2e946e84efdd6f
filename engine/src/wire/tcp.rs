//! TCP header view (RFC 9293), with the MSS option for probes.

use super::{checksum, get_u16, get_u32, set_u16, set_u32, Result, WireError};
use std::net::Ipv4Addr;

mod field {
    use super::super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const FLAGS: Field = 12..14;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
    pub const OPTIONS: usize = 20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Byte offsets used by probe templates.
pub const SRC_PORT_OFFSET: usize = field::SRC_PORT.start;
/// Offset of the destination port.
pub const DST_PORT_OFFSET: usize = field::DST_PORT.start;
/// Offset of the sequence number.
pub const SEQ_OFFSET: usize = field::SEQ_NUM.start;
/// Offset of the acknowledgment number in the header.
pub const ACK_OFFSET: usize = field::ACK_NUM.start;
/// Offset of the checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// TCP flag bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpFlags(pub u8);
impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// Whether every bit of `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Wrap, checking the fixed header fits. The data offset is checked against the
    /// buffer only by [`TcpPacket::check_header_len`] because ICMP quotes carry just 8 bytes.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(TcpPacket { buffer })
    }
    /// Check that the data offset is sane and the whole header is present.
    pub fn check_header_len(&self) -> Result<()> {
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if self.buffer.as_ref().len() < hl {
            return Err(WireError::Truncated);
        }
        Ok(())
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }
    /// Acknowledgement number.
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM)
    }
    /// Header length from the data offset.
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::FLAGS.start] >> 4) as usize) * 4
    }
    /// Flags.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS.start + 1])
    }
    /// Window.
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }
    /// Option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }
    /// Data after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Whether the checksum over the pseudo-header of `src`/`dst` (either family) is right.
    pub fn verify_checksum(&self, src: std::net::IpAddr, dst: std::net::IpAddr) -> bool {
        checksum::verify_l4(src, dst, 6, self.buffer.as_ref())
    }
    /// Whether the checksum over an IPv4 pseudo-header is right.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v4(src, dst, 6, b.len() as u16);
        checksum::fold(checksum::fold(checksum::sum(b)) as u32 + checksum::fold(ph) as u32)
            == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Set source port.
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v)
    }
    /// Set destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v)
    }
    /// Set sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ_NUM, v)
    }
    /// Set acknowledgement number.
    pub fn set_ack_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::ACK_NUM, v)
    }
    /// Set data offset (header length in bytes) and flags.
    pub fn set_header_len_flags(&mut self, header_len: usize, flags: TcpFlags) {
        let b = self.buffer.as_mut();
        b[field::FLAGS.start] = ((header_len / 4) as u8) << 4;
        b[field::FLAGS.start + 1] = flags.0;
    }
    /// Set window.
    pub fn set_window_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::WIN_SIZE, v)
    }
    /// Set checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    /// Set urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, v)
    }
    /// Mutable option bytes.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..hl]
    }
    /// Compute and store the checksum over the pseudo-header of `src`/`dst` (either
    /// family; mixed families leave it zero).
    pub fn fill_checksum(&mut self, src: std::net::IpAddr, dst: std::net::IpAddr) {
        self.set_checksum(0);
        let c = checksum::l4_checksum(src, dst, 6, self.buffer.as_ref()).unwrap_or(0);
        self.set_checksum(c);
    }
    /// Compute and store the checksum over an IPv4 pseudo-header (whole buffer is the segment).
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v4(src, dst, 6, b.len() as u16);
        let c = checksum::finish(ph, b);
        self.set_checksum(c);
    }
}

/// High-level TCP header as prtip sends and reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgement number (0 when ACK is not set).
    pub ack_number: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window.
    pub window_len: u16,
    /// MSS option, if present.
    pub max_seg_size: Option<u16>,
}

impl TcpRepr {
    /// Read the header (options other than MSS are skipped).
    pub fn parse<T: AsRef<[u8]>>(p: &TcpPacket<T>) -> Result<TcpRepr> {
        p.check_header_len()?;
        let mut mss = None;
        let mut opts = p.options();
        while let Some(&kind) = opts.first() {
            match kind {
                0 => break,
                1 => opts = &opts[1..],
                _ => {
                    let len = *opts.get(1).ok_or(WireError::Malformed)? as usize;
                    if len < 2 || len > opts.len() {
                        return Err(WireError::Malformed);
                    }
                    if kind == 2 && len == 4 {
                        mss = Some(u16::from_be_bytes([opts[2], opts[3]]));
                    }
                    opts = &opts[len..];
                }
            }
        }
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window_len: p.window_len(),
            max_seg_size: mss,
        })
    }
    /// Header length including options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + if self.max_seg_size.is_some() { 4 } else { 0 }
    }
    /// Write the header; the caller fills the checksum once the payload is in place.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut TcpPacket<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len_flags(self.header_len(), self.flags);
        p.set_window_len(self.window_len);
        p.set_checksum(0);
        p.set_urgent_at(0);
        if let Some(mss) = self.max_seg_size {
            let o = p.options_mut();
            o[0] = 2;
            o[1] = 4;
            o[2..4].copy_from_slice(&mss.to_be_bytes());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SYN 198.18.0.1:40000 -> 198.19.0.7:80, seq 0xdeadbeef, win 1024, MSS 1460.
    pub static SYN: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0x04,
        0x00, 0xcd, 0xca, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];

    pub fn repr() -> TcpRepr {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 0xdeadbeef,
            ack_number: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window_len: 1024,
            max_seg_size: Some(1460),
        }
    }
    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 7);

    #[test]
    fn parse_static_syn() {
        let p = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert!(p.verify_checksum_v4(SRC, DST));
        assert_eq!(TcpRepr::parse(&p).unwrap(), repr());
        assert!(p.flags().has(TcpFlags::SYN));
        assert!(!p.flags().has(TcpFlags::ACK));
    }

    #[test]
    fn emit_gives_the_same_bytes() {
        let mut buf = [0u8; 24];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        repr().emit(&mut p);
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(buf, SYN);
    }

    #[test]
    fn bad_data_offset_and_options_are_rejected() {
        let mut buf = SYN;
        buf[12] = 0x40; // 16-byte header
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p).unwrap_err(), WireError::Malformed);
        let mut buf = SYN;
        buf[21] = 9; // option longer than the header
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p).unwrap_err(), WireError::Malformed);
        assert_eq!(
            TcpPacket::new_checked(&SYN[..19]).unwrap_err(),
            WireError::Truncated
        );
    }
}
