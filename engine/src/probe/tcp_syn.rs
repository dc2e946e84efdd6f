//! TCP SYN over IPv4 (nmap's `-sS`, zmap's `tcp_synscan`): a SYN with window 1024
//! and an MSS option; SYN-ACK → open, RST → closed, an ICMP unreachable quoting
//! the SYN → filtered, silence → filtered.

use super::{FrameParams, Probe, ProbeModule, ProbeTemplate, ReplyFilter};
use crate::classify::{Classified, Inbound, Verdict, L4};
use crate::cookie::{Cookies, SPORT_BASE, SPORT_SPAN};
use crate::wire::{IpProtocol, TcpFlags};
use prtip_store::event::{PortState, Protocol, Reason};
use std::net::IpAddr;

/// The TCP SYN module for IPv4 probes from one address.
#[derive(Clone, Debug)]
pub struct TcpSynV4 {
    template: ProbeTemplate,
    our_addr: IpAddr,
}

impl TcpSynV4 {
    /// The module for probes leaving with `p`.
    pub fn new(p: &FrameParams) -> TcpSynV4 {
        TcpSynV4 {
            template: ProbeTemplate::tcp_syn(p),
            our_addr: p.src_ip.into(),
        }
    }
}

impl ProbeModule for TcpSynV4 {
    fn name(&self) -> &'static str {
        "tcp_syn"
    }
    fn protocol(&self) -> Protocol {
        Protocol::Tcp
    }
    #[inline]
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Tcp && probe.dst.is_ipv4()
    }
    fn template(&self, _: usize) -> &[u8] {
        self.template.bytes()
    }
    #[inline]
    fn patch(&self, _: usize, frame: &mut [u8], probe: &Probe) {
        self.template.patch(frame, probe)
    }
    fn reply_filter(&self) -> ReplyFilter {
        syn_reply_filter(self.our_addr)
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        if !r.src.is_ipv4() {
            return Classified::Ignored;
        }
        classify_syn_reply(r, cookies)
    }
    fn silence(&self) -> PortState {
        PortState::Filtered
    }
}

/// The replies a raw TCP scan wants to see (SYN and the flag scans, either
/// family): TCP to our cookie ports and ICMP errors.
pub(crate) fn syn_reply_filter(our_addr: IpAddr) -> ReplyFilter {
    ReplyFilter {
        our_addr,
        ports: (SPORT_BASE, SPORT_BASE + (SPORT_SPAN - 1)),
        tcp: true,
        udp: false,
        icmp_errors: true,
        queries: false,
        link: false,
    }
}

/// nmap's SYN-scan rules for a parsed reply of either family, after the cookie
/// check: SYN-ACK open, RST closed, an ICMP unreachable quoting our SYN filtered.
pub(crate) fn classify_syn_reply(r: &Inbound<'_>, cookies: &Cookies) -> Classified {
    let verdict = |addr, port, state, reason, icmp_code| {
        Classified::Reply(Verdict {
            addr,
            port,
            proto: Protocol::Tcp,
            state,
            reason,
            ttl: r.ttl,
            icmp_code,
        })
    };
    match &r.l4 {
        L4::Tcp(tcp) => {
            if !cookies.check_tcp_ack(r.src, tcp.src_port(), tcp.dst_port(), tcp.ack_number()) {
                return Classified::Invalid;
            }
            let f = tcp.flags();
            if f.has(TcpFlags::RST) {
                verdict(r.src, tcp.src_port(), PortState::Closed, Reason::Reset, 0)
            } else if f.has(TcpFlags::SYN | TcpFlags::ACK) {
                verdict(r.src, tcp.src_port(), PortState::Open, Reason::SynAck, 0)
            } else {
                Classified::Ignored
            }
        }
        L4::Unreachable { code, quote } if quote.protocol == IpProtocol::Tcp => {
            let seq = quote.seq_number.unwrap_or(0);
            if !cookies.check_quote(
                quote.dst,
                quote.dst_port,
                Protocol::Tcp,
                quote.src_port,
                seq,
                false,
            ) {
                return Classified::Invalid;
            }
            verdict(
                quote.dst,
                quote.dst_port,
                PortState::Filtered,
                Reason::IcmpUnreachable,
                *code,
            )
        }
        _ => Classified::Ignored,
    }
}
