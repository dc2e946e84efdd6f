//! Typed views over packet bytes, in the style of smoltcp's `wire` module.
//!
//! Owns: byte layouts of Ethernet, ARP, IPv4, IPv6, TCP, UDP and ICMPv4 headers and
//! of IPv6 Neighbor Discovery's solicitation and advertisement, the
//! Internet checksum (full and incremental, RFC 1071 / RFC 1624). Never touches
//! sockets, time or scan state.
//!
//! Each header is a `Xxx<T: AsRef<[u8]>>` view: `new_checked(buf)` verifies the
//! length once, then every getter is a plain read at an offset from that module's
//! `mod field`. Setters need `T: AsMut<[u8]>`. A `XxxRepr` has `parse` and `emit`
//! that mirror each other; the tests take static byte arrays apart and build them
//! again byte for byte.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod tcp;
pub mod udp;

pub use arp::ArpPacket;
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmp::{Icmpv4Packet, Icmpv4Repr, Ipv4Quote};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use ndp::{NdpPacket, NdpRepr};
pub use tcp::{TcpFlags, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// A byte range inside a header.
pub type Field = core::ops::Range<usize>;

/// Why a buffer could not be viewed as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header (or than the length the header claims).
    #[error("packet truncated")]
    Truncated,
    /// A field holds a value the view cannot work with (bad version, header length, ...).
    #[error("malformed packet")]
    Malformed,
}

/// Result of parsing a view.
pub type Result<T> = core::result::Result<T, WireError>;

#[inline]
pub(crate) fn get_u16(b: &[u8], f: Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}
#[inline]
pub(crate) fn get_u32(b: &[u8], f: Field) -> u32 {
    u32::from_be_bytes([b[f.start], b[f.start + 1], b[f.start + 2], b[f.start + 3]])
}
#[inline]
pub(crate) fn set_u16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_be_bytes());
}
#[inline]
pub(crate) fn set_u32(b: &mut [u8], f: Field, v: u32) {
    b[f].copy_from_slice(&v.to_be_bytes());
}
