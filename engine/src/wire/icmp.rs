//! ICMPv4 view (RFC 792): the messages a scanner reads (destination unreachable,
//! time exceeded, echo) and the quoted header they carry.

use super::{
    checksum, get_u16, set_u16, IpProtocol, Ipv4Packet, Result, TcpPacket, UdpPacket, WireError,
};
use std::net::Ipv4Addr;

mod field {
    use super::super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    pub const DATA: usize = 8;
}

/// ICMP header length (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = field::DATA;

/// Destination unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 11;
/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 0;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// Port unreachable code of destination unreachable.
pub const CODE_PORT_UNREACHABLE: u8 = 3;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }
    /// Wrap, checking the header fits.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Icmpv4Packet { buffer })
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The 4 bytes after the checksum (unused/MTU/identifier+sequence).
    pub fn rest(&self) -> [u8; 4] {
        let mut r = [0; 4];
        r.copy_from_slice(&self.buffer.as_ref()[field::REST]);
        r
    }
    /// Data after the header: for errors, the quoted IP header and 8+ bytes.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
    /// Whether the checksum over the whole message is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Set type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Set code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Set the rest-of-header bytes.
    pub fn set_rest(&mut self, v: [u8; 4]) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&v);
    }
    /// Mutable data.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
    /// Compute and store the checksum.
    pub fn fill_checksum(&mut self) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let c = checksum::finish(0, self.buffer.as_ref());
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// Bytes of the quoted datagram's payload an ICMP error carries at least (RFC 792).
pub const QUOTED_L4_LEN: usize = 8;

/// The datagram an ICMP error quotes, read through the IPv4 and TCP/UDP views
/// (as smoltcp's `icmpv4::Repr::DstUnreachable` reads its `header` and `data`):
/// the quoted IPv4 header in full and the first 8 bytes of its payload, which
/// hold the ports and, for TCP, the sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Quote {
    /// Source of the quoted datagram (us, for a reply to our probe).
    pub src_addr: Ipv4Addr,
    /// Its destination (the target).
    pub dst_addr: Ipv4Addr,
    /// Its protocol.
    pub protocol: IpProtocol,
    /// Its IPv4 identification.
    pub ident: u16,
    /// Its source port (TCP and UDP; 0 otherwise).
    pub src_port: u16,
    /// Its destination port (TCP and UDP; 0 otherwise).
    pub dst_port: u16,
    /// Its TCP sequence number (TCP only).
    pub seq_number: Option<u32>,
}

impl Ipv4Quote {
    /// Read a quote: the IPv4 header must be whole and followed by at least
    /// [`QUOTED_L4_LEN`] bytes.
    pub fn parse(quote: &[u8]) -> Result<Ipv4Quote> {
        let ip = Ipv4Packet::new_quoted(quote)?;
        let l4 = ip.payload();
        if l4.len() < QUOTED_L4_LEN {
            return Err(WireError::Truncated);
        }
        // Only the first 8 bytes are read: ports (and the sequence number) lie there.
        let l4 = &l4[..QUOTED_L4_LEN];
        let (src_port, dst_port, seq_number) = match ip.protocol() {
            IpProtocol::Tcp => {
                let t = TcpPacket::new_unchecked(l4);
                (t.src_port(), t.dst_port(), Some(t.seq_number()))
            }
            IpProtocol::Udp => {
                let u = UdpPacket::new_unchecked(l4);
                (u.src_port(), u.dst_port(), None)
            }
            _ => (0, 0, None),
        };
        Ok(Ipv4Quote {
            src_addr: ip.src_addr(),
            dst_addr: ip.dst_addr(),
            protocol: ip.protocol(),
            ident: ip.ident(),
            src_port,
            dst_port,
            seq_number,
        })
    }
}

/// High-level ICMPv4 message as far as a scanner cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Destination unreachable with its code and the quoted datagram.
    DstUnreachable {
        /// Code (3 = port unreachable, 13 = administratively prohibited, ...).
        code: u8,
        /// Quoted IP header + leading payload bytes.
        quote: &'a [u8],
    },
    /// Time exceeded with the quoted datagram.
    TimeExceeded {
        /// Code.
        code: u8,
        /// Quoted IP header + leading payload bytes.
        quote: &'a [u8],
    },
    /// Echo request or reply.
    Echo {
        /// True for a reply.
        reply: bool,
        /// Identifier.
        ident: u16,
        /// Sequence.
        seq: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// Another type.
    Other {
        /// Type.
        msg_type: u8,
        /// Code.
        code: u8,
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Read the message. The checksum is not enforced (veth delivers CHECKSUM_PARTIAL frames).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a Icmpv4Packet<&'a T>) -> Result<Icmpv4Repr<'a>> {
        let data = &p.buffer.as_ref()[field::DATA..];
        Ok(match p.msg_type() {
            TYPE_DEST_UNREACHABLE => Icmpv4Repr::DstUnreachable {
                code: p.msg_code(),
                quote: data,
            },
            TYPE_TIME_EXCEEDED => Icmpv4Repr::TimeExceeded {
                code: p.msg_code(),
                quote: data,
            },
            t @ (TYPE_ECHO_REPLY | TYPE_ECHO_REQUEST) => {
                let r = p.rest();
                Icmpv4Repr::Echo {
                    reply: t == TYPE_ECHO_REPLY,
                    ident: u16::from_be_bytes([r[0], r[1]]),
                    seq: u16::from_be_bytes([r[2], r[3]]),
                    data,
                }
            }
            t => Icmpv4Repr::Other {
                msg_type: t,
                code: p.msg_code(),
            },
        })
    }
    /// Length of the message this repr emits.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Icmpv4Repr::DstUnreachable { quote, .. }
                | Icmpv4Repr::TimeExceeded { quote, .. } => quote.len(),
                Icmpv4Repr::Echo { data, .. } => data.len(),
                Icmpv4Repr::Other { .. } => 0,
            }
    }
    /// Write the message with its checksum; `p` must be exactly `buffer_len()` long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Icmpv4Packet<T>) -> Result<()> {
        if p.buffer.as_ref().len() != self.buffer_len() {
            return Err(WireError::Truncated);
        }
        match *self {
            Icmpv4Repr::DstUnreachable { code, quote } => {
                p.set_msg_type(TYPE_DEST_UNREACHABLE);
                p.set_msg_code(code);
                p.set_rest([0; 4]);
                p.data_mut().copy_from_slice(quote);
            }
            Icmpv4Repr::TimeExceeded { code, quote } => {
                p.set_msg_type(TYPE_TIME_EXCEEDED);
                p.set_msg_code(code);
                p.set_rest([0; 4]);
                p.data_mut().copy_from_slice(quote);
            }
            Icmpv4Repr::Echo {
                reply,
                ident,
                seq,
                data,
            } => {
                p.set_msg_type(if reply {
                    TYPE_ECHO_REPLY
                } else {
                    TYPE_ECHO_REQUEST
                });
                p.set_msg_code(0);
                let mut r = [0; 4];
                r[..2].copy_from_slice(&ident.to_be_bytes());
                r[2..].copy_from_slice(&seq.to_be_bytes());
                p.set_rest(r);
                p.data_mut().copy_from_slice(data);
            }
            Icmpv4Repr::Other { msg_type, code } => {
                p.set_msg_type(msg_type);
                p.set_msg_code(code);
                p.set_rest([0; 4]);
            }
        }
        p.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Packet, TcpPacket};

    /// Port unreachable quoting the IPv4 header of the test SYN and its first 8 bytes.
    static MSG: [u8; 36] = [
        0x03, 0x03, 0xc2, 0xce, 0x00, 0x00, 0x00, 0x00, // type, code, checksum, unused
        0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x00, 0x00, 0x40, 0x06, 0xdc, 0x6e, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x13, 0x00, 0x07, // quoted IPv4 header
        0x9c, 0x40, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef, // quoted TCP ports + seq
    ];

    #[test]
    fn parse_and_emit_round_trip() {
        let p = Icmpv4Packet::new_checked(&MSG[..]).unwrap();
        assert!(p.verify_checksum());
        let r = Icmpv4Repr::parse(&p).unwrap();
        let Icmpv4Repr::DstUnreachable { code, quote } = r else {
            panic!("not unreachable: {r:?}")
        };
        assert_eq!(code, CODE_PORT_UNREACHABLE);
        let ip = Ipv4Packet::new_unchecked(quote);
        assert_eq!(ip.dst_addr(), std::net::Ipv4Addr::new(198, 19, 0, 7));
        let tcp = TcpPacket::new_unchecked(&quote[ip.header_len()..]);
        assert_eq!((tcp.src_port(), tcp.dst_port()), (40000, 80));
        let mut buf = [0u8; 36];
        r.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        assert_eq!(buf, MSG);
    }

    #[test]
    fn quote_reads_through_the_ipv4_and_tcp_views() {
        let p = Icmpv4Packet::new_checked(&MSG[..]).unwrap();
        let Icmpv4Repr::DstUnreachable { quote, .. } = Icmpv4Repr::parse(&p).unwrap() else {
            panic!()
        };
        let q = Ipv4Quote::parse(quote).unwrap();
        assert_eq!(
            q,
            Ipv4Quote {
                src_addr: Ipv4Addr::new(198, 18, 0, 1),
                dst_addr: Ipv4Addr::new(198, 19, 0, 7),
                protocol: IpProtocol::Tcp,
                ident: 0x1234,
                src_port: 40000,
                dst_port: 80,
                seq_number: Some(0xdead_beef),
            }
        );
        // Cut inside the 8 bytes, inside the header, or not IPv4: refused.
        assert_eq!(Ipv4Quote::parse(&quote[..27]), Err(WireError::Truncated));
        assert_eq!(Ipv4Quote::parse(&quote[..19]), Err(WireError::Truncated));
        let mut v6 = quote.to_vec();
        v6[0] = 0x65;
        assert_eq!(Ipv4Quote::parse(&v6), Err(WireError::Malformed));
        // A UDP quote has no sequence number.
        let mut udp = quote.to_vec();
        udp[9] = 17;
        let q = Ipv4Quote::parse(&udp).unwrap();
        assert_eq!(
            (q.protocol, q.dst_port, q.seq_number),
            (IpProtocol::Udp, 80, None)
        );
    }

    #[test]
    fn echo_round_trip_and_short_buffers() {
        let r = Icmpv4Repr::Echo {
            reply: true,
            ident: 7,
            seq: 9,
            data: b"hi",
        };
        let mut buf = [0u8; 10];
        r.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), r);
        assert_eq!(
            Icmpv4Packet::new_checked(&buf[..7]).unwrap_err(),
            WireError::Truncated
        );
        let mut small = [0u8; 9];
        assert_eq!(
            r.emit(&mut Icmpv4Packet::new_unchecked(&mut small[..])),
            Err(WireError::Truncated)
        );
    }
}
