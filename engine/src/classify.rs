//! Reading a received frame: is it a reply to one of our probes, and what does it say?
//!
//! Owns: the mapping from reply packets to port states (SYN-ACK → open, RST →
//! closed, ICMP port unreachable → closed for UDP, other ICMP unreachable →
//! filtered, a UDP datagram → open) after the cookie check. Never keeps per-probe
//! state and never touches sockets. L4 checksums are not enforced: veth delivers
//! replies with CHECKSUM_PARTIAL.

use crate::cookie::Cookies;
use crate::wire::{
    icmp, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket,
};
use prtip_store::event::{PortState, Protocol, Reason};
use std::net::{IpAddr, Ipv4Addr};

/// What a valid reply says about one (address, protocol, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Target address.
    pub addr: Ipv4Addr,
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

/// Classify a frame with an Ethernet header, received on the interface of `our_ip`.
pub fn classify(frame: &[u8], our_ip: Ipv4Addr, cookies: &Cookies) -> Classified {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Classified::Invalid;
    };
    if eth.ethertype() != EtherType::Ipv4 {
        return Classified::Ignored;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return Classified::Invalid;
    };
    if ip.dst_addr() != our_ip {
        return Classified::Ignored;
    }
    let src = ip.src_addr();
    let ttl = ip.ttl();
    let verdict = |port, proto, state, reason, icmp_code| {
        Classified::Reply(Verdict {
            addr: src,
            port,
            proto,
            state,
            reason,
            ttl,
            icmp_code,
        })
    };
    match ip.protocol() {
        IpProtocol::Tcp => {
            let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
                return Classified::Invalid;
            };
            let f = tcp.flags();
            if !cookies.check_tcp_ack(
                IpAddr::V4(src),
                tcp.src_port(),
                tcp.dst_port(),
                tcp.ack_number(),
            ) {
                return Classified::Invalid;
            }
            if f.has(TcpFlags::RST) {
                verdict(
                    tcp.src_port(),
                    Protocol::Tcp,
                    PortState::Closed,
                    Reason::Reset,
                    0,
                )
            } else if f.has(TcpFlags::SYN | TcpFlags::ACK) {
                verdict(
                    tcp.src_port(),
                    Protocol::Tcp,
                    PortState::Open,
                    Reason::SynAck,
                    0,
                )
            } else {
                Classified::Ignored
            }
        }
        IpProtocol::Udp => {
            let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
                return Classified::Invalid;
            };
            if !cookies.check_udp(IpAddr::V4(src), udp.src_port(), udp.dst_port()) {
                return Classified::Invalid;
            }
            verdict(
                udp.src_port(),
                Protocol::Udp,
                PortState::Open,
                Reason::UdpResponse,
                0,
            )
        }
        IpProtocol::Icmp => {
            let p = ip.payload();
            if p.len() < icmp::HEADER_LEN || p[0] != icmp::TYPE_DEST_UNREACHABLE {
                return Classified::Ignored;
            }
            let code = p[1];
            let quote = &p[icmp::HEADER_LEN..];
            // The quoted header may be cut to header + 8 bytes: read it unchecked.
            if quote.len() < 20 || quote[0] >> 4 != 4 {
                return Classified::Invalid;
            }
            let inner = Ipv4Packet::new_unchecked(quote);
            let hl = inner.header_len();
            if hl < 20 || quote.len() < hl + 8 || inner.src_addr() != our_ip {
                return Classified::Invalid;
            }
            let target = inner.dst_addr();
            let l4 = &quote[hl..];
            let (sport, dport) = (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
            );
            let (proto, ok) = match inner.protocol() {
                IpProtocol::Tcp => {
                    let seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
                    (
                        Protocol::Tcp,
                        cookies.check_quote(
                            IpAddr::V4(target),
                            dport,
                            Protocol::Tcp,
                            sport,
                            seq,
                            false,
                        ),
                    )
                }
                IpProtocol::Udp => (
                    Protocol::Udp,
                    cookies.check_quote(
                        IpAddr::V4(target),
                        dport,
                        Protocol::Udp,
                        sport,
                        inner.ident() as u32,
                        true,
                    ),
                ),
                _ => return Classified::Ignored,
            };
            if !ok {
                return Classified::Invalid;
            }
            let (state, reason) = if proto == Protocol::Udp && code == icmp::CODE_PORT_UNREACHABLE {
                (PortState::Closed, Reason::PortUnreachable)
            } else {
                (PortState::Filtered, Reason::IcmpUnreachable)
            };
            Classified::Reply(Verdict {
                addr: target,
                port: dport,
                proto,
                state,
                reason,
                ttl,
                icmp_code: code,
            })
        }
        _ => Classified::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{FrameParams, Probe, ProbeTemplate};
    use crate::wire::{EthernetAddress, Icmpv4Packet, Icmpv4Repr, Ipv4Repr, TcpRepr, UdpRepr};

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
                addr: TGT,
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
            dst: TGT,
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
            (TGT, 443, PortState::Filtered, Reason::IcmpUnreachable, 13)
        );
        let u = c.cookie(IpAddr::V4(TGT), 161, Protocol::Udp);
        let dgram = ProbeTemplate::udp(&params, b"x").build(&Probe {
            dst: TGT,
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
            dst: TGT,
            dport: 443,
            sport: k.sport,
            seq: k.seq ^ 1,
            proto: Protocol::Tcp,
        });
        assert_eq!(classify(&icmp_for(&forged, 3), US, &c), Classified::Invalid);
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
