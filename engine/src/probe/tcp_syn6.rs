//! TCP SYN over IPv6 (nmap's `-6 -sS`): the same probe and verdicts as
//! [`super::TcpSynV4`] — SYN-ACK → open, RST → closed, an ICMPv6 destination
//! unreachable quoting the SYN → filtered, silence → filtered — in an Ethernet +
//! IPv6 (no extension headers) + TCP frame.
//!
//! Its frame and per-probe patch are a [`ProbeTemplateV6`] (16-byte destination,
//! ports, sequence number, TCP checksum by RFC 1624 delta).

use super::tcp_syn::{classify_syn_reply, syn_reply_filter};
use super::{FrameParams, Probe, ProbeModule, ProbeTemplateV6, ReplyFilter};
use crate::classify::{Classified, Inbound};
use crate::cookie::Cookies;
use crate::wire::TcpFlags;
use prtip_store::event::{PortState, Protocol};
use std::net::Ipv6Addr;

/// The TCP SYN module for IPv6 probes from one address.
#[derive(Clone, Debug)]
pub struct TcpSynV6 {
    template: ProbeTemplateV6,
}

impl TcpSynV6 {
    /// The module for probes leaving with `p`'s MACs and hop limit (`p.ttl`) from
    /// `src` (the IPv6 source the route chose; `p.src_ip` is not used).
    pub fn new(p: &FrameParams, src: Ipv6Addr) -> TcpSynV6 {
        TcpSynV6 {
            template: ProbeTemplateV6::tcp(p, src, TcpFlags::SYN, Some(1460)),
        }
    }
}

impl ProbeModule for TcpSynV6 {
    fn name(&self) -> &'static str {
        "tcp_syn6"
    }
    fn protocol(&self) -> Protocol {
        Protocol::Tcp
    }
    #[inline]
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Tcp && probe.dst.is_ipv6()
    }
    fn template(&self, _: usize) -> &[u8] {
        self.template.bytes()
    }
    #[inline]
    fn patch(&self, _: usize, frame: &mut [u8], probe: &Probe) {
        self.template.patch(frame, probe)
    }
    fn reply_filter(&self) -> ReplyFilter {
        syn_reply_filter(self.template.src().into())
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        if !r.src.is_ipv6() {
            return Classified::Ignored;
        }
        classify_syn_reply(r, cookies)
    }
    fn silence(&self) -> PortState {
        PortState::Filtered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Verdict;
    use crate::wire::{
        self, checksum, EtherType, EthernetFrame, IpProtocol, Ipv6Packet, Ipv6Repr, TcpPacket,
        TcpRepr,
    };
    use std::net::IpAddr;

    const L3: usize = wire::ethernet::HEADER_LEN;
    const L4: usize = L3 + wire::ipv6::HEADER_LEN;
    use crate::probe::tests::params;
    use prtip_store::event::Reason;

    const US: &str = "2001:db8:0:1::1";

    #[test]
    fn patched_frame_is_a_valid_syn_with_the_cookie() {
        let us: Ipv6Addr = US.parse().unwrap();
        let m = TcpSynV6::new(&params(), us);
        let c = Cookies::new(5);
        let mut frame = m.template(0).to_vec();
        assert_eq!(frame.len(), 14 + 40 + 24);
        for (tgt, port) in [("2001:db8:100::2", 80u16), ("2001:db8:100::ffe", 65535)] {
            let dst: IpAddr = tgt.parse().unwrap();
            let p = m.probe(dst, port, &c);
            assert!(m.handles(&p));
            // Patched over the previous probe: every field rewritten.
            m.patch(0, &mut frame, &p);
            let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
            assert_eq!(eth.ethertype(), EtherType::Ipv6);
            let ip = Ipv6Packet::new_checked(&frame[L3..]).unwrap();
            assert_eq!(
                Ipv6Repr::parse(&ip).unwrap(),
                Ipv6Repr {
                    src_addr: us,
                    dst_addr: tgt.parse().unwrap(),
                    next_header: IpProtocol::Tcp,
                    payload_len: 24,
                    hop_limit: 64,
                }
            );
            assert!(checksum::verify_l4(us.into(), dst, 6, ip.payload()));
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            let k = c.cookie(dst, port, Protocol::Tcp);
            assert_eq!(
                (tcp.src_port(), tcp.dst_port(), tcp.seq_number()),
                (k.sport, port, k.seq)
            );
            assert_eq!(tcp.flags(), TcpFlags(TcpFlags::SYN));
        }
        let v4 = m.probe("198.19.0.1".parse().unwrap(), 80, &c);
        assert!(!m.handles(&v4));
    }

    const TGT: &str = "2001:db8:100::7";

    /// An Ethernet + IPv6 frame from `src` to `dst` carrying `l4` as `nh`.
    fn v6_frame(src: &str, dst: &str, nh: IpProtocol, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; L4 + l4.len()];
        f[12] = 0x86;
        f[13] = 0xdd;
        Ipv6Repr {
            src_addr: src.parse().unwrap(),
            dst_addr: dst.parse().unwrap(),
            next_header: nh,
            payload_len: l4.len(),
            hop_limit: 63,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[L3..]));
        f[L4..].copy_from_slice(l4);
        f
    }

    fn set() -> crate::probe::ProbeSet {
        crate::probe::ProbeSet::of(vec![std::sync::Arc::new(TcpSynV6::new(
            &params(),
            US.parse().unwrap(),
        ))])
    }

    fn reply(c: &Cookies, port: u16, flags: u8, ack_delta: u32) -> Vec<u8> {
        let k = c.cookie(TGT.parse().unwrap(), port, Protocol::Tcp);
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
        v6_frame(TGT, US, IpProtocol::Tcp, &seg)
    }

    #[test]
    fn syn_ack_open_rst_closed_bad_cookie_invalid_others_ignored() {
        let c = Cookies::new(21);
        let set = set();
        let v = |state, reason, port| {
            Classified::Reply(Verdict {
                addr: TGT.parse().unwrap(),
                port,
                proto: Protocol::Tcp,
                state,
                reason,
                ttl: 63,
                icmp_code: 0,
            })
        };
        let open = reply(&c, 80, TcpFlags::SYN | TcpFlags::ACK, 1);
        assert_eq!(
            set.classify(&open, &c),
            v(PortState::Open, Reason::SynAck, 80)
        );
        let closed = reply(&c, 22, TcpFlags::RST | TcpFlags::ACK, 1);
        assert_eq!(
            set.classify(&closed, &c),
            v(PortState::Closed, Reason::Reset, 22)
        );
        let bad = reply(&c, 80, TcpFlags::SYN | TcpFlags::ACK, 2);
        assert_eq!(set.classify(&bad, &c), Classified::Invalid);
        assert_eq!(set.classify(&open, &Cookies::new(22)), Classified::Invalid);
        // To another address: not ours to look at.
        let mut other = open.clone();
        other[L3 + 39] = 9;
        assert_eq!(set.classify(&other, &c), Classified::Ignored);
        // Truncated below the TCP header: invalid.
        let mut cut = open[..L4 + 10].to_vec();
        cut[L3 + 5] = 10;
        assert_eq!(set.classify(&cut, &c), Classified::Invalid);
    }

    /// An ICMPv6 destination unreachable (`code`) from `router` quoting the SYN
    /// to TGT:`port` sent from `from`.
    fn unreachable(c: &Cookies, from: &str, port: u16, code: u8) -> Vec<u8> {
        let m = TcpSynV6::new(&params(), from.parse().unwrap());
        let p = m.probe(TGT.parse().unwrap(), port, c);
        let mut syn = m.template(0).to_vec();
        m.patch(0, &mut syn, &p);
        let mut icmp = vec![1, code, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&syn[L3..]);
        v6_frame("2001:db8:0:1::fe", US, IpProtocol::Icmpv6, &icmp)
    }

    #[test]
    fn icmpv6_unreachable_quoting_our_syn_is_filtered() {
        let c = Cookies::new(23);
        let set = set();
        for code in [1u8, 3, 4] {
            assert_eq!(
                set.classify(&unreachable(&c, US, 443, code), &c),
                Classified::Reply(Verdict {
                    addr: TGT.parse().unwrap(),
                    port: 443,
                    proto: Protocol::Tcp,
                    state: PortState::Filtered,
                    reason: Reason::IcmpUnreachable,
                    ttl: 63,
                    icmp_code: code,
                })
            );
        }
        // A quote of a SYN we did not send (other cookie, other source): invalid.
        let f = unreachable(&Cookies::new(24), US, 443, 1);
        assert_eq!(set.classify(&f, &c), Classified::Invalid);
        let f = unreachable(&c, "2001:db8:0:1::5", 443, 1);
        assert_eq!(set.classify(&f, &c), Classified::Invalid);
        // Quote cut inside the first 8 TCP bytes: invalid.
        let f = unreachable(&c, US, 443, 1);
        let cut = f.len() - 24 + 6;
        let mut g = f[..cut].to_vec();
        let plen = (cut - L4) as u16;
        g[L3 + 4..L3 + 6].copy_from_slice(&plen.to_be_bytes());
        assert_eq!(set.classify(&g, &c), Classified::Invalid);
        // Other ICMPv6 (echo reply, type 129): ignored.
        let mut echo = f.clone();
        echo[L4] = 129;
        assert_eq!(set.classify(&echo, &c), Classified::Ignored);
    }
}
