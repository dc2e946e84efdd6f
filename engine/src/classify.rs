//! Reading a received frame: the typed [`Inbound`] a probe module classifies, and
//! what a module's verdict looks like ([`Verdict`], [`Classified`]).
//!
//! Owns: parsing a frame through the wire views once — Ethernet, IPv4, then TCP,
//! UDP or an ICMP error whose quoted datagram is read through the IPv4 and TCP/UDP
//! views ([`crate::wire::Ipv4Quote`]) — and the rules that make a frame invalid
//! (truncated headers, a quote of someone else's datagram). What a reply *means*
//! (open, closed, filtered) belongs to the probe modules ([`crate::probe`]). Never
//! keeps per-probe state and never touches sockets. L4 checksums are not enforced:
//! veth delivers replies with CHECKSUM_PARTIAL.

use crate::wire::{
    icmp, EtherType, EthernetFrame, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Quote,
    Ipv6Packet, TcpPacket, UdpPacket, WireError,
};
use prtip_store::event::{PortState, Protocol, Reason};
use std::net::IpAddr;

/// What a valid reply says about one (address, protocol, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Target address.
    pub addr: IpAddr,
    /// Target port.
    pub port: u16,
    /// Protocol of the probe it answers.
    pub proto: Protocol,
    /// Port state.
    pub state: PortState,
    /// Why.
    pub reason: Reason,
    /// TTL of the reply.
    pub ttl: u8,
    /// ICMP code, when the reason is ICMP.
    pub icmp_code: u8,
}

/// The result of looking at one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    /// A reply to one of our probes.
    Reply(Verdict),
    /// Addressed to us but failed the cookie check or could not be parsed.
    Invalid,
    /// Not something a scan cares about (ARP, echo, time exceeded, ...).
    Ignored,
}

/// The datagram an ICMP error quotes, whatever its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Its source (always us: quotes of others' datagrams are invalid).
    pub src: IpAddr,
    /// Its destination: the target.
    pub dst: IpAddr,
    /// Its protocol.
    pub protocol: IpProtocol,
    /// Its IPv4 identification, or its IPv6 flow label (where our UDP probes
    /// carry the cookie's low 16 bits).
    pub ident: u32,
    /// Its source port (TCP/UDP).
    pub src_port: u16,
    /// Its destination port (TCP/UDP).
    pub dst_port: u16,
    /// Its TCP sequence number.
    pub seq_number: Option<u32>,
}

impl From<Ipv4Quote> for Quote {
    fn from(q: Ipv4Quote) -> Quote {
        Quote {
            src: q.src_addr.into(),
            dst: q.dst_addr.into(),
            protocol: q.protocol,
            ident: q.ident as u32,
            src_port: q.src_port,
            dst_port: q.dst_port,
            seq_number: q.seq_number,
        }
    }
}

/// The transport part of a frame to us.
#[derive(Clone, Debug)]
pub enum L4<'a> {
    /// A TCP segment (fixed header present).
    Tcp(TcpPacket<&'a [u8]>),
    /// A UDP datagram (header present).
    Udp(UdpPacket<&'a [u8]>),
    /// An ICMP destination unreachable quoting one of our datagrams.
    Unreachable {
        /// ICMP code.
        code: u8,
        /// The datagram it quotes.
        quote: Quote,
    },
    /// An ICMP echo, timestamp or address mask reply (IPv4 types 0, 14, 18) or an
    /// ICMPv6 echo reply (type 129): what host discovery's ICMP probes draw.
    IcmpReply {
        /// ICMP type.
        msg_type: u8,
        /// Identifier (our probes carry the cookie's source port).
        ident: u16,
        /// Sequence number (our probes carry the cookie's low 16 bits).
        seq: u16,
    },
    /// An ARP reply to our address ([`Inbound::src`] is its sender's address).
    ArpReply,
    /// An ICMPv6 neighbour advertisement to our address for `target`.
    NeighborAdvert {
        /// The address it advertises.
        target: std::net::Ipv6Addr,
    },
    /// Anything else (other ICMP, other protocols).
    Other,
}

/// ICMP types of the replies [`L4::IcmpReply`] holds: echo reply (0), timestamp
/// reply (14), address mask reply (18); ICMPv6 echo reply (129).
pub const ICMP_ECHO_REPLY: u8 = 0;
/// ICMP timestamp reply.
pub const ICMP_TIMESTAMP_REPLY: u8 = 14;
/// ICMP address mask reply.
pub const ICMP_MASK_REPLY: u8 = 18;
/// ICMPv6 echo reply.
pub const ICMPV6_ECHO_REPLY: u8 = 129;
/// ICMPv6 neighbour advertisement.
const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;

/// The identifier and sequence number of an ICMP query message (bytes 4..8).
fn query_ids(p: &[u8]) -> (u16, u16) {
    (
        u16::from_be_bytes([p[4], p[5]]),
        u16::from_be_bytes([p[6], p[7]]),
    )
}

/// A frame to our address, parsed once for every module to look at.
#[derive(Clone, Debug)]
pub struct Inbound<'a> {
    /// Sender of the reply (the target, or a router for ICMP errors).
    pub src: IpAddr,
    /// TTL (hop limit) it arrived with.
    pub ttl: u8,
    /// Its transport part.
    pub l4: L4<'a>,
}

impl<'a> Inbound<'a> {
    /// Parse `frame` (Ethernet header included). `Ok(None)`: not for a scan (not
    /// IP, or not to `our_addr`); `Err`: to us but malformed, or an ICMP error
    /// quoting a datagram that is not ours to have sent.
    pub fn parse(frame: &'a [u8], our_addr: IpAddr) -> Result<Option<Inbound<'a>>, WireError> {
        let eth = EthernetFrame::new_checked(frame)?;
        if eth.ethertype() == EtherType::Ipv6 {
            return Self::parse_v6(frame, our_addr);
        }
        if eth.ethertype() == EtherType::Arp {
            let Ok(a) = crate::wire::ArpPacket::new_checked(eth.payload()) else {
                return Ok(None);
            };
            if a.operation() != crate::wire::arp::OP_REPLY || IpAddr::V4(a.target_ip()) != our_addr
            {
                return Ok(None);
            }
            return Ok(Some(Inbound {
                src: a.sender_ip().into(),
                ttl: 0,
                l4: L4::ArpReply,
            }));
        }
        if eth.ethertype() != EtherType::Ipv4 {
            return Ok(None);
        }
        let ip = Ipv4Packet::new_checked(&frame[crate::wire::ethernet::HEADER_LEN..])?;
        if IpAddr::V4(ip.dst_addr()) != our_addr {
            return Ok(None);
        }
        let payload: &'a [u8] = {
            let hl = ip.header_len();
            let end =
                (ip.total_len() as usize).min(frame.len() - crate::wire::ethernet::HEADER_LEN);
            &frame[crate::wire::ethernet::HEADER_LEN + hl..crate::wire::ethernet::HEADER_LEN + end]
        };
        let l4 = match ip.protocol() {
            IpProtocol::Tcp => L4::Tcp(TcpPacket::new_checked(payload)?),
            IpProtocol::Udp => L4::Udp(UdpPacket::new_checked(payload)?),
            IpProtocol::Icmp => match Icmpv4Packet::new_checked(payload) {
                Err(_) => L4::Other,
                Ok(p)
                    if matches!(
                        p.msg_type(),
                        ICMP_ECHO_REPLY | ICMP_TIMESTAMP_REPLY | ICMP_MASK_REPLY
                    ) =>
                {
                    let (ident, seq) = query_ids(payload);
                    L4::IcmpReply {
                        msg_type: p.msg_type(),
                        ident,
                        seq,
                    }
                }
                Ok(p) if p.msg_type() != icmp::TYPE_DEST_UNREACHABLE => L4::Other,
                Ok(p) => {
                    let (code, quote) = match Icmpv4Repr::parse(&p)? {
                        Icmpv4Repr::DstUnreachable { code, quote } => (code, quote),
                        _ => unreachable!("type checked above"),
                    };
                    let quote = Ipv4Quote::parse(quote)?;
                    if IpAddr::V4(quote.src_addr) != our_addr {
                        return Err(WireError::Malformed);
                    }
                    L4::Unreachable {
                        code,
                        quote: quote.into(),
                    }
                }
            },
            _ => L4::Other,
        };
        Ok(Some(Inbound {
            src: ip.src_addr().into(),
            ttl: ip.ttl(),
            l4,
        }))
    }
}

impl<'a> Inbound<'a> {
    /// The IPv6 half of [`Inbound::parse`]: TCP, UDP, or an ICMPv6 destination
    /// unreachable (type 1) whose quoted IPv6 header (no extension headers) and
    /// first 8 transport bytes are read through the IPv6 view. Extension headers
    /// on the reply itself make it [`L4::Other`].
    fn parse_v6(frame: &'a [u8], our_addr: IpAddr) -> Result<Option<Inbound<'a>>, WireError> {
        let ip = Ipv6Packet::new_checked(&frame[crate::wire::ethernet::HEADER_LEN..])?;
        if IpAddr::V6(ip.dst_addr()) != our_addr {
            return Ok(None);
        }
        let start = crate::wire::ethernet::HEADER_LEN + crate::wire::ipv6::HEADER_LEN;
        let payload: &'a [u8] = &frame[start..start + ip.payload_len() as usize];
        let l4 = match ip.next_header() {
            IpProtocol::Tcp => L4::Tcp(TcpPacket::new_checked(payload)?),
            IpProtocol::Udp => L4::Udp(UdpPacket::new_checked(payload)?),
            IpProtocol::Icmpv6 if payload.len() >= 8 && payload[0] == ICMPV6_DEST_UNREACHABLE => {
                let code = payload[1];
                let quote = Self::quote_v6(&payload[8..])?;
                if quote.src != our_addr {
                    return Err(WireError::Malformed);
                }
                L4::Unreachable { code, quote }
            }
            IpProtocol::Icmpv6 if payload.len() >= 8 && payload[0] == ICMPV6_ECHO_REPLY => {
                let (ident, seq) = query_ids(payload);
                L4::IcmpReply {
                    msg_type: ICMPV6_ECHO_REPLY,
                    ident,
                    seq,
                }
            }
            IpProtocol::Icmpv6 if payload.len() >= 24 && payload[0] == ICMPV6_NEIGHBOR_ADVERT => {
                let mut t = [0u8; 16];
                t.copy_from_slice(&payload[8..24]);
                L4::NeighborAdvert { target: t.into() }
            }
            _ => L4::Other,
        };
        Ok(Some(Inbound {
            src: ip.src_addr().into(),
            ttl: ip.hop_limit(),
            l4,
        }))
    }

    /// The datagram an ICMPv6 error quotes: the IPv6 header and at least the
    /// first 8 bytes of its transport header (ports; for TCP the sequence number).
    fn quote_v6(q: &[u8]) -> Result<Quote, WireError> {
        let hl = crate::wire::ipv6::HEADER_LEN;
        if q.len() < hl + 8 {
            return Err(WireError::Truncated);
        }
        // The quote may be cut short of the payload length it claims: unchecked.
        let ip = Ipv6Packet::new_unchecked(q);
        if ip.version() != 6 {
            return Err(WireError::Malformed);
        }
        let t = &q[hl..];
        let protocol = ip.next_header();
        Ok(Quote {
            src: ip.src_addr().into(),
            dst: ip.dst_addr().into(),
            protocol,
            ident: ip.flow_label(),
            src_port: u16::from_be_bytes([t[0], t[1]]),
            dst_port: u16::from_be_bytes([t[2], t[3]]),
            seq_number: (protocol == IpProtocol::Tcp)
                .then(|| u32::from_be_bytes([t[4], t[5], t[6], t[7]])),
        })
    }
}

/// ICMPv6 type 1, destination unreachable (RFC 4443 §3.1).
const ICMPV6_DEST_UNREACHABLE: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie::Cookies;
    use crate::probe::{FrameParams, Probe, ProbeSet, ProbeTemplate};
    use crate::wire::{EthernetAddress, Ipv4Repr, TcpFlags, TcpRepr, UdpRepr};
    use std::net::Ipv4Addr;

    /// The raw scan's modules from `our` (the classification every test here pins).
    fn classify(frame: &[u8], our: Ipv4Addr, c: &Cookies) -> Classified {
        ProbeSet::new(&FrameParams {
            src_ip: our,
            ..FrameParams::default()
        })
        .classify(frame, c)
    }

    const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const TGT: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 3);

    fn ip_frame(proto: IpProtocol, src: Ipv4Addr, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + l4.len()];
        f[12] = 0x08;
        Ipv4Repr {
            src_addr: src,
            dst_addr: US,
            protocol: proto,
            payload_len: l4.len(),
            ttl: 61,
            ident: 1,
            dont_frag: true,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]));
        f[34..].copy_from_slice(l4);
        f
    }

    fn tcp_reply(c: &Cookies, port: u16, flags: u8, ack_delta: u32) -> Vec<u8> {
        let k = c.cookie(IpAddr::V4(TGT), port, Protocol::Tcp);
        let mut seg = [0u8; 20];
        TcpRepr {
            src_port: port,
            dst_port: k.sport,
            seq_number: 7,
            ack_number: k.seq.wrapping_add(ack_delta),
            flags: TcpFlags(flags),
            window_len: 0,
            max_seg_size: None,
        }
        .emit(&mut TcpPacket::new_unchecked(&mut seg[..]));
        ip_frame(IpProtocol::Tcp, TGT, &seg)
    }

    #[test]
    fn syn_ack_open_rst_closed_bad_cookie_invalid() {
        let c = Cookies::new(11);
        let open = classify(&tcp_reply(&c, 80, TcpFlags::SYN | TcpFlags::ACK, 1), US, &c);
        assert_eq!(
            open,
            Classified::Reply(Verdict {
                addr: TGT.into(),
                port: 80,
                proto: Protocol::Tcp,
                state: PortState::Open,
                reason: Reason::SynAck,
                ttl: 61,
                icmp_code: 0
            })
        );
        let Classified::Reply(v) =
            classify(&tcp_reply(&c, 22, TcpFlags::RST | TcpFlags::ACK, 1), US, &c)
        else {
            panic!()
        };
        assert_eq!(
            (v.state, v.reason, v.port),
            (PortState::Closed, Reason::Reset, 22)
        );
        assert_eq!(
            classify(&tcp_reply(&c, 80, TcpFlags::SYN | TcpFlags::ACK, 2), US, &c),
            Classified::Invalid
        );
        assert_eq!(
            classify(
                &tcp_reply(&Cookies::new(12), 80, TcpFlags::SYN | TcpFlags::ACK, 1),
                US,
                &c
            ),
            Classified::Invalid
        );
        assert_eq!(
            classify(&tcp_reply(&c, 80, TcpFlags::ACK, 1), US, &c),
            Classified::Ignored
        );
        assert_eq!(
            classify(
                &tcp_reply(&c, 80, TcpFlags::SYN | TcpFlags::ACK, 1),
                Ipv4Addr::new(1, 2, 3, 4),
                &c
            ),
            Classified::Ignored
        );
        assert_eq!(classify(&[0u8; 10], US, &c), Classified::Invalid);
    }

    fn icmp_for(probe_frame: &[u8], code: u8) -> Vec<u8> {
        let quote = &probe_frame[14..14 + 28];
        let mut m = vec![0u8; 8 + quote.len()];
        Icmpv4Repr::DstUnreachable { code, quote }
            .emit(&mut Icmpv4Packet::new_unchecked(&mut m[..]))
            .unwrap();
        ip_frame(IpProtocol::Icmp, Ipv4Addr::new(198, 18, 0, 2), &m)
    }

    #[test]
    fn icmp_errors_quote_our_probe() {
        let c = Cookies::new(5);
        let params = FrameParams {
            src_mac: EthernetAddress::default(),
            dst_mac: EthernetAddress::default(),
            src_ip: US,
            ttl: 64,
        };
        let k = c.cookie(IpAddr::V4(TGT), 443, Protocol::Tcp);
        let syn = ProbeTemplate::tcp_syn(&params).build(&Probe {
            dst: TGT.into(),
            dport: 443,
            sport: k.sport,
            seq: k.seq,
            proto: Protocol::Tcp,
        });
        let Classified::Reply(v) = classify(&icmp_for(&syn, 13), US, &c) else {
            panic!()
        };
        assert_eq!(
            (v.addr, v.port, v.state, v.reason, v.icmp_code),
            (
                IpAddr::V4(TGT),
                443,
                PortState::Filtered,
                Reason::IcmpUnreachable,
                13
            )
        );
        let u = c.cookie(IpAddr::V4(TGT), 161, Protocol::Udp);
        let dgram = ProbeTemplate::udp(&params, b"x").build(&Probe {
            dst: TGT.into(),
            dport: 161,
            sport: u.sport,
            seq: u.seq,
            proto: Protocol::Udp,
        });
        let Classified::Reply(v) = classify(&icmp_for(&dgram, 3), US, &c) else {
            panic!()
        };
        assert_eq!(
            (v.proto, v.port, v.state, v.reason),
            (
                Protocol::Udp,
                161,
                PortState::Closed,
                Reason::PortUnreachable
            )
        );
        // A quote of someone else's probe (wrong seq) is invalid.
        let forged = ProbeTemplate::tcp_syn(&params).build(&Probe {
            dst: TGT.into(),
            dport: 443,
            sport: k.sport,
            seq: k.seq ^ 1,
            proto: Protocol::Tcp,
        });
        assert_eq!(classify(&icmp_for(&forged, 3), US, &c), Classified::Invalid);
    }

    fn our_syn(c: &Cookies, port: u16) -> Vec<u8> {
        let k = c.cookie(IpAddr::V4(TGT), port, Protocol::Tcp);
        ProbeTemplate::tcp_syn(&FrameParams {
            src_ip: US,
            ..FrameParams::default()
        })
        .build(&Probe {
            dst: TGT.into(),
            dport: port,
            sport: k.sport,
            seq: k.seq,
            proto: Protocol::Tcp,
        })
    }

    #[test]
    fn quotes_of_others_and_cut_quotes_are_invalid() {
        let c = Cookies::new(5);
        // Our SYN as someone else sent it: the quote's source is not us.
        let mut theirs = our_syn(&c, 443);
        theirs[14 + 12..14 + 16].copy_from_slice(&[198, 18, 0, 9]);
        assert_eq!(classify(&icmp_for(&theirs, 3), US, &c), Classified::Invalid);
        // A quote cut inside the 8 bytes after the header.
        let syn = our_syn(&c, 443);
        let quote = &syn[14..14 + 24];
        let mut m = vec![0u8; 8 + quote.len()];
        Icmpv4Repr::DstUnreachable { code: 3, quote }
            .emit(&mut Icmpv4Packet::new_unchecked(&mut m[..]))
            .unwrap();
        let cut = ip_frame(IpProtocol::Icmp, Ipv4Addr::new(198, 18, 0, 2), &m);
        assert_eq!(classify(&cut, US, &c), Classified::Invalid);
        // A quote of a datagram that is neither TCP nor UDP is none of our modules'.
        let mut gre = our_syn(&c, 443);
        gre[14 + 9] = 47;
        assert_eq!(classify(&icmp_for(&gre, 3), US, &c), Classified::Ignored);
    }

    #[test]
    fn time_exceeded_echo_and_ipv6_are_ignored() {
        let c = Cookies::new(5);
        let syn = our_syn(&c, 80);
        let quote = &syn[14..14 + 28];
        let mut m = vec![0u8; 8 + quote.len()];
        Icmpv4Repr::TimeExceeded { code: 0, quote }
            .emit(&mut Icmpv4Packet::new_unchecked(&mut m[..]))
            .unwrap();
        let te = ip_frame(IpProtocol::Icmp, Ipv4Addr::new(198, 18, 0, 2), &m);
        assert_eq!(classify(&te, US, &c), Classified::Ignored);
        let mut echo = vec![0u8; 8];
        Icmpv4Repr::Echo {
            reply: true,
            ident: 1,
            seq: 1,
            data: &[],
        }
        .emit(&mut Icmpv4Packet::new_unchecked(&mut echo[..]))
        .unwrap();
        let echo = ip_frame(IpProtocol::Icmp, TGT, &echo);
        assert_eq!(classify(&echo, US, &c), Classified::Ignored);
        // An IPv6 frame: no module of the IPv4 set looks at it.
        let mut v6 = vec![0u8; 14 + 40 + 20];
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        v6[14] = 0x60;
        assert_eq!(classify(&v6, US, &c), Classified::Ignored);
    }

    #[test]
    fn inbound_parses_once_for_every_module() {
        let c = Cookies::new(5);
        let k = c.cookie(IpAddr::V4(TGT), 22, Protocol::Tcp);
        let syn = our_syn(&c, 22);
        let frame = icmp_for(&syn, 13);
        let r = Inbound::parse(&frame, US.into()).unwrap().unwrap();
        assert_eq!(r.src, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)));
        let L4::Unreachable { code, quote } = r.l4 else {
            panic!("{:?}", r.l4)
        };
        assert_eq!(code, 13);
        assert_eq!(
            (
                quote.src,
                quote.dst,
                quote.protocol,
                quote.src_port,
                quote.dst_port,
                quote.seq_number
            ),
            (
                US.into(),
                TGT.into(),
                IpProtocol::Tcp,
                k.sport,
                22,
                Some(k.seq)
            )
        );
        assert_eq!(
            quote.ident,
            k.seq & 0xffff,
            "the template puts the cookie in the ident"
        );
        // To someone else: not parsed further.
        assert!(Inbound::parse(&frame, Ipv4Addr::new(198, 18, 0, 7).into())
            .unwrap()
            .is_none());
    }

    #[test]
    fn udp_answers_are_open() {
        let c = Cookies::new(5);
        let u = c.cookie(IpAddr::V4(TGT), 53, Protocol::Udp);
        let mut d = [0u8; 12];
        UdpRepr {
            src_port: 53,
            dst_port: u.sport,
            payload_len: 4,
        }
        .emit(&mut UdpPacket::new_unchecked(&mut d[..]));
        let Classified::Reply(v) = classify(&ip_frame(IpProtocol::Udp, TGT, &d), US, &c) else {
            panic!()
        };
        assert_eq!((v.state, v.reason), (PortState::Open, Reason::UdpResponse));
        UdpRepr {
            src_port: 53,
            dst_port: u.sport ^ 1,
            payload_len: 4,
        }
        .emit(&mut UdpPacket::new_unchecked(&mut d[..]));
        assert_eq!(
            classify(&ip_frame(IpProtocol::Udp, TGT, &d), US, &c),
            Classified::Invalid
        );
    }
}
