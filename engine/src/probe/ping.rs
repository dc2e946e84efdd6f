//! Host discovery probes (nmap's `-sn` and `-P` options), one module per probe of
//! a discovery scan: ICMP echo / timestamp / address mask (`-PE -PP -PM`; ICMPv6
//! echo for IPv6), TCP SYN and ACK to a port (`-PS -PA`), UDP to a port (`-PU`),
//! ARP request (`-PR`; an NDP neighbour solicitation for IPv6).
//!
//! A discovery scan's walk is (target × probe): a [`Probe`] of one carries
//! [`Protocol::Host`] and, in `dport`, the probe's number in the scan
//! ([`DiscoveryProbe`] list order); its cookie is `cookie(target, number, Host)`.
//! The cookie travels in the ICMP identifier (source port) and sequence (low 16
//! bits), in the TCP/UDP source port and sequence as the port scans carry it;
//! ARP and NDP have no field for it (a reply from a target is its own proof, as
//! in nmap). Any valid answer makes the host up, with nmap's reason
//! (`echo-reply`, `syn-ack`, `reset`, `port-unreach`, `arp-response`, ...);
//! silence makes it down (`no-response`). Verdicts carry [`Protocol::Host`] and
//! the probe's number; the scan loop folds them per host.
//!
//! Owns: the probe list syntax ([`DiscoveryProbe::parse_list`]), the frames and
//! the reply rules. Never touches sockets, the walk or events.

use super::{FrameParams, Probe, ProbeModule, ProbeTemplate, ReplyFilter};
use crate::classify::{
    Classified, Inbound, Verdict, ICMPV6_ECHO_REPLY, ICMP_ECHO_REPLY, ICMP_MASK_REPLY,
    ICMP_TIMESTAMP_REPLY, L4,
};
use crate::cookie::{Cookies, SPORT_BASE, SPORT_SPAN};
use crate::route::resolve;
use crate::wire::{
    self, checksum, icmp, EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, TcpFlags,
};
use prtip_store::event::{PortState, Protocol, Reason};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The probe list of a `-sn` scan given no `-P` option: the session picks ARP/NDP
/// on a local link, else [`DiscoveryProbe::DEFAULT_MIX`] (which a plan assumes
/// until then), and stores its choice.
pub const DEFAULT_DISCOVERY: &str = "default";

/// nmap's default port of `-PS` and `-PA` without ports.
pub const DEFAULT_TCP_PING_PORT: u16 = 80;
/// nmap's default port of `-PU` without ports.
pub const DEFAULT_UDP_PING_PORT: u16 = 40125;

/// One discovery probe kind of a scan, in nmap's `-P` terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiscoveryProbe {
    /// `-PE`: ICMP echo request (ICMPv6 echo for IPv6).
    Echo,
    /// `-PP`: ICMP timestamp request (IPv4 only).
    Timestamp,
    /// `-PM`: ICMP address mask request (IPv4 only).
    Mask,
    /// `-PS<port>`: TCP SYN.
    Syn(u16),
    /// `-PA<port>`: TCP ACK.
    Ack(u16),
    /// `-PU<port>`: UDP (empty payload).
    Udp(u16),
    /// `-PR`: ARP request (NDP neighbour solicitation for IPv6); on a local link.
    Arp,
}

impl fmt::Display for DiscoveryProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryProbe::Echo => f.write_str("PE"),
            DiscoveryProbe::Timestamp => f.write_str("PP"),
            DiscoveryProbe::Mask => f.write_str("PM"),
            DiscoveryProbe::Syn(p) => write!(f, "PS{p}"),
            DiscoveryProbe::Ack(p) => write!(f, "PA{p}"),
            DiscoveryProbe::Udp(p) => write!(f, "PU{p}"),
            DiscoveryProbe::Arp => f.write_str("PR"),
        }
    }
}

impl DiscoveryProbe {
    /// nmap's default mix as root, off a local link: ICMP echo, TCP SYN to 443,
    /// TCP ACK to 80, ICMP timestamp (IPv6: the timestamp is left out).
    pub const DEFAULT_MIX: [DiscoveryProbe; 4] = [
        DiscoveryProbe::Echo,
        DiscoveryProbe::Syn(443),
        DiscoveryProbe::Ack(80),
        DiscoveryProbe::Timestamp,
    ];

    /// Parse one nmap option without its dash (`PE`, `PS22,443`, `PA`, `PU53`,
    /// `PR`) into its probes (one per port), or say why not.
    pub fn parse_option(opt: &str) -> Result<Vec<DiscoveryProbe>, String> {
        let ports = |rest: &str, default: u16| -> Result<Vec<u16>, String> {
            if rest.is_empty() {
                return Ok(vec![default]);
            }
            rest.split(',')
                .map(|t| {
                    t.parse::<u16>()
                        .map_err(|_| format!("\"{t}\" in -{opt} is not a port number (0..=65535)"))
                })
                .collect()
        };
        let (kind, rest) = opt.split_at(opt.len().min(2));
        Ok(match kind {
            "PE" | "PP" | "PM" | "PR" if !rest.is_empty() => {
                return Err(format!("-{kind} takes no ports (got -{opt})"))
            }
            "PE" => vec![DiscoveryProbe::Echo],
            "PP" => vec![DiscoveryProbe::Timestamp],
            "PM" => vec![DiscoveryProbe::Mask],
            "PR" => vec![DiscoveryProbe::Arp],
            "PS" => ports(rest, DEFAULT_TCP_PING_PORT)?
                .into_iter()
                .map(DiscoveryProbe::Syn)
                .collect(),
            "PA" => ports(rest, DEFAULT_TCP_PING_PORT)?
                .into_iter()
                .map(DiscoveryProbe::Ack)
                .collect(),
            "PU" => ports(rest, DEFAULT_UDP_PING_PORT)?
                .into_iter()
                .map(DiscoveryProbe::Udp)
                .collect(),
            _ => {
                return Err(format!(
                    "-{opt} is not a discovery option prtip knows (-PE -PP -PM -PS[ports] -PA[ports] -PU[ports] -PR -Pn)"
                ))
            }
        })
    }

    /// Parse a stored probe list (`PE,PS443,PA80,PP`: the canonical form
    /// [`DiscoveryProbe::list_string`] writes, one probe per item; or
    /// [`DEFAULT_DISCOVERY`]), in order.
    pub fn parse_list(s: &str) -> Result<Vec<DiscoveryProbe>, String> {
        if s == DEFAULT_DISCOVERY {
            return Ok(DiscoveryProbe::DEFAULT_MIX.to_vec());
        }
        let mut out = Vec::new();
        for item in s.split(',').filter(|t| !t.is_empty()) {
            for p in DiscoveryProbe::parse_option(item)? {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        if out.is_empty() {
            return Err("no discovery probes given".into());
        }
        Ok(out)
    }

    /// The canonical list text (`PE,PS443,PA80,PP`).
    pub fn list_string(list: &[DiscoveryProbe]) -> String {
        list.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether it can be sent to an address of this family (timestamp and mask
    /// requests are ICMPv4 only).
    pub fn fits(self, v6: bool) -> bool {
        !(v6 && matches!(self, DiscoveryProbe::Timestamp | DiscoveryProbe::Mask))
    }
}

/// The modules of a discovery scan over `list` (probe `i` is walk "port" `i`)
/// from `p` (IPv4) or `src6` (IPv6, when given).
pub fn discovery_modules(
    list: &[DiscoveryProbe],
    p: &FrameParams,
    src6: Option<Ipv6Addr>,
) -> Vec<Arc<dyn ProbeModule>> {
    list.iter()
        .enumerate()
        .filter(|(_, d)| d.fits(src6.is_some()))
        .map(|(i, &d)| -> Arc<dyn ProbeModule> {
            let i = i as u16;
            match (d, src6) {
                (DiscoveryProbe::Arp, None) => Arc::new(ArpPing::new(i, p)),
                (DiscoveryProbe::Arp, Some(s)) => Arc::new(NdpPing::new(i, p, s)),
                (DiscoveryProbe::Syn(port), None) => Arc::new(TcpPing::new(i, p, port, false)),
                (DiscoveryProbe::Ack(port), None) => Arc::new(TcpPing::new(i, p, port, true)),
                (DiscoveryProbe::Udp(port), None) => Arc::new(UdpPing::new(i, p, port)),
                (DiscoveryProbe::Syn(port), Some(s)) => {
                    Arc::new(TcpPing6::new(i, p, s, port, false))
                }
                (DiscoveryProbe::Ack(port), Some(s)) => {
                    Arc::new(TcpPing6::new(i, p, s, port, true))
                }
                (DiscoveryProbe::Udp(port), Some(s)) => Arc::new(UdpPing6::new(i, p, s, port)),
                (icmp, src6) => Arc::new(IcmpPing::new(i, p, src6, icmp)),
            }
        })
        .collect()
}

/// A verdict that `addr` is up, answering probe `index`.
fn up(addr: IpAddr, index: u16, reason: Reason, ttl: u8, icmp_code: u8) -> Classified {
    Classified::Reply(Verdict {
        addr,
        port: index,
        proto: Protocol::Host,
        state: PortState::Open,
        reason,
        ttl,
        icmp_code,
    })
}

fn filter(our_addr: IpAddr, tcp: bool, udp: bool, icmp_errors: bool) -> ReplyFilter {
    ReplyFilter {
        our_addr,
        ports: (SPORT_BASE, SPORT_BASE + (SPORT_SPAN - 1)),
        tcp,
        udp,
        icmp_errors,
        queries: false,
        link: false,
    }
}

const L3: usize = wire::ethernet::HEADER_LEN;

/// Ethernet + IPv4 header (destination and checksum left for the patch).
fn v4_frame(
    p: &FrameParams,
    dst_mac: wire::EthernetAddress,
    proto: IpProtocol,
    l4: usize,
) -> Vec<u8> {
    let mut f = vec![0u8; L3 + 20 + l4];
    EthernetRepr {
        src_addr: p.src_mac,
        dst_addr: dst_mac,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: p.src_ip,
        dst_addr: Ipv4Addr::UNSPECIFIED,
        protocol: proto,
        payload_len: l4,
        ttl: p.ttl,
        ident: 0,
        dont_frag: false,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[L3..]));
    f
}

/// Ethernet + IPv6 header (destination left for the patch).
fn v6_frame(p: &FrameParams, src: Ipv6Addr, proto: IpProtocol, l4: usize) -> Vec<u8> {
    let mut f = vec![0u8; L3 + 40 + l4];
    EthernetRepr {
        src_addr: p.src_mac,
        dst_addr: p.dst_mac,
        ethertype: EtherType::Ipv6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv6Repr {
        src_addr: src,
        dst_addr: Ipv6Addr::UNSPECIFIED,
        next_header: proto,
        payload_len: l4,
        hop_limit: p.ttl,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut f[L3..]));
    f
}

/// ICMP echo, timestamp or address mask request (ICMPv6 echo from an IPv6 source).
#[derive(Clone, Debug)]
pub struct IcmpPing {
    index: u16,
    kind: DiscoveryProbe,
    src6: Option<Ipv6Addr>,
    our_addr: IpAddr,
    template: Vec<u8>,
}

impl IcmpPing {
    /// Probe number `index`, of `kind` (Echo, Timestamp or Mask), from `p` (or
    /// from `src6` as ICMPv6 echo).
    pub fn new(index: u16, p: &FrameParams, src6: Option<Ipv6Addr>, kind: DiscoveryProbe) -> Self {
        let (ty, body) = match kind {
            DiscoveryProbe::Timestamp => (13, 20),
            DiscoveryProbe::Mask => (17, 12),
            _ => (icmp::TYPE_ECHO_REQUEST, 8),
        };
        let (template, our_addr) = match src6 {
            None => {
                let mut f = v4_frame(p, p.dst_mac, IpProtocol::Icmp, body);
                f[L3 + 20] = ty;
                (f, IpAddr::V4(p.src_ip))
            }
            Some(s) => {
                let mut f = v6_frame(p, s, IpProtocol::Icmpv6, 8);
                f[L3 + 40] = 128; // ICMPv6 echo request
                (f, IpAddr::V6(s))
            }
        };
        IcmpPing {
            index,
            kind,
            src6,
            our_addr,
            template,
        }
    }

    fn reply_type(&self) -> (u8, Reason) {
        match (self.kind, self.src6) {
            (_, Some(_)) => (ICMPV6_ECHO_REPLY, Reason::EchoReply),
            (DiscoveryProbe::Timestamp, None) => (ICMP_TIMESTAMP_REPLY, Reason::TimestampReply),
            (DiscoveryProbe::Mask, None) => (ICMP_MASK_REPLY, Reason::AddressMaskReply),
            _ => (ICMP_ECHO_REPLY, Reason::EchoReply),
        }
    }
}

impl ProbeModule for IcmpPing {
    fn name(&self) -> &'static str {
        match (self.kind, self.src6) {
            (_, Some(_)) => "icmpv6_echo",
            (DiscoveryProbe::Timestamp, _) => "icmp_timestamp",
            (DiscoveryProbe::Mask, _) => "icmp_mask",
            _ => "icmp_echo",
        }
    }
    fn protocol(&self) -> Protocol {
        Protocol::Host
    }
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Host
            && probe.dport == self.index
            && probe.dst.is_ipv6() == self.src6.is_some()
    }
    fn template(&self, _: usize) -> &[u8] {
        &self.template
    }
    fn patch(&self, _: usize, frame: &mut [u8], probe: &Probe) {
        // The backend's buffer may be longer than the frame.
        let frame = &mut frame[..self.template.len()];
        match (probe.dst, self.src6) {
            (IpAddr::V4(dst), None) => {
                let mut ip = Ipv4Packet::new_unchecked(&mut frame[L3..]);
                ip.set_dst_addr(dst);
                ip.set_ident(probe.seq as u16);
                ip.fill_checksum();
                let m = &mut frame[L3 + 20..];
                set_query(m, probe);
                let c = checksum::fold(checksum::sum(m));
                m[2..4].copy_from_slice(&(!c).to_be_bytes());
            }
            (IpAddr::V6(dst), Some(src)) => {
                frame[L3 + 24..L3 + 40].copy_from_slice(&dst.octets());
                let m = &mut frame[L3 + 40..];
                set_query(m, probe);
                let ph = checksum::pseudo_header_v6(src, dst, 58, m.len() as u32);
                let c = checksum::finish(ph, m);
                m[2..4].copy_from_slice(&c.to_be_bytes());
            }
            _ => {}
        }
    }
    fn reply_filter(&self) -> ReplyFilter {
        ReplyFilter {
            queries: true,
            ..filter(self.our_addr, false, false, false)
        }
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        let L4::IcmpReply {
            msg_type,
            ident,
            seq,
        } = r.l4
        else {
            return Classified::Ignored;
        };
        let (want, reason) = self.reply_type();
        if msg_type != want || r.src.is_ipv6() != self.src6.is_some() {
            return Classified::Ignored;
        }
        let c = cookies.cookie(r.src, self.index, Protocol::Host);
        if c.sport != ident || c.seq as u16 != seq {
            return Classified::Invalid;
        }
        up(r.src, self.index, reason, r.ttl, 0)
    }
    fn silence(&self) -> PortState {
        PortState::Filtered
    }
}

/// Identifier, sequence and a zero checksum of an ICMP query (`m` from its type).
fn set_query(m: &mut [u8], probe: &Probe) {
    m[2..4].copy_from_slice(&[0, 0]);
    m[4..6].copy_from_slice(&probe.sport.to_be_bytes());
    m[6..8].copy_from_slice(&(probe.seq as u16).to_be_bytes());
}

/// TCP SYN or ACK to one port over IPv4 (`-PS`, `-PA`): any SYN-ACK or reset
/// carrying our cookie makes the host up.
#[derive(Clone, Debug)]
pub struct TcpPing {
    index: u16,
    port: u16,
    ack: bool,
    our_addr: IpAddr,
    template: ProbeTemplate,
}

impl TcpPing {
    /// Probe number `index`: a SYN (`ack` false) or an ACK to `port` from `p`.
    pub fn new(index: u16, p: &FrameParams, port: u16, ack: bool) -> TcpPing {
        let template = if ack {
            ProbeTemplate::tcp(p, TcpFlags::ACK, None)
        } else {
            ProbeTemplate::tcp_syn(p)
        };
        TcpPing {
            index,
            port,
            ack,
            our_addr: p.src_ip.into(),
            template,
        }
    }
}

/// Whether a TCP segment answers our SYN (acknowledges the cookie + 1) or our
/// ACK (a reset whose sequence is the cookie we sent as acknowledgment).
fn tcp_ping_reply(
    r: &Inbound<'_>,
    cookies: &Cookies,
    index: u16,
    port: u16,
    ack: bool,
) -> Classified {
    let L4::Tcp(tcp) = &r.l4 else {
        return Classified::Ignored;
    };
    if tcp.src_port() != port {
        return Classified::Ignored;
    }
    let c = cookies.cookie(r.src, index, Protocol::Host);
    let f = tcp.flags();
    let ours = c.sport == tcp.dst_port()
        && if ack {
            f.has(TcpFlags::RST) && tcp.seq_number() == c.seq
        } else {
            tcp.ack_number() == c.seq.wrapping_add(1)
        };
    if !ours {
        // Another probe of this scan may own it (-PS80 -PA80): not invalid here.
        return Classified::Ignored;
    }
    if f.has(TcpFlags::RST) {
        up(r.src, index, Reason::Reset, r.ttl, 0)
    } else if f.has(TcpFlags::SYN | TcpFlags::ACK) {
        up(r.src, index, Reason::SynAck, r.ttl, 0)
    } else {
        Classified::Ignored
    }
}

impl ProbeModule for TcpPing {
    fn name(&self) -> &'static str {
        if self.ack {
            "tcp_ack_ping"
        } else {
            "tcp_syn_ping"
        }
    }
    fn protocol(&self) -> Protocol {
        Protocol::Host
    }
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Host && probe.dport == self.index && probe.dst.is_ipv4()
    }
    fn template(&self, _: usize) -> &[u8] {
        self.template.bytes()
    }
    fn patch(&self, _: usize, frame: &mut [u8], probe: &Probe) {
        let real = Probe {
            dport: self.port,
            proto: Protocol::Tcp,
            ..*probe
        };
        self.template.patch(frame, &real)
    }
    fn reply_filter(&self) -> ReplyFilter {
        filter(self.our_addr, true, false, false)
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        if !r.src.is_ipv4() {
            return Classified::Ignored;
        }
        tcp_ping_reply(r, cookies, self.index, self.port, self.ack)
    }
    fn silence(&self) -> PortState {
        PortState::Filtered
    }
}

/// UDP to one port over IPv4 (`-PU`): a UDP answer or an ICMP port unreachable
/// quoting our datagram makes the host up.
#[derive(Clone, Debug)]
pub struct UdpPing {
    index: u16,
    port: u16,
    our_addr: IpAddr,
    template: ProbeTemplate,
}

impl UdpPing {
    /// Probe number `index`: an empty UDP datagram to `port` from `p`.
    pub fn new(index: u16, p: &FrameParams, port: u16) -> UdpPing {
        UdpPing {
            index,
            port,
            our_addr: p.src_ip.into(),
            template: ProbeTemplate::udp(p, &[]),
        }
    }
}

/// A UDP answer from `port` or a port unreachable quoting our datagram to it.
fn udp_ping_reply(r: &Inbound<'_>, cookies: &Cookies, index: u16, port: u16) -> Classified {
    match &r.l4 {
        L4::Udp(u) if u.src_port() == port => {
            let c = cookies.cookie(r.src, index, Protocol::Host);
            if c.sport != u.dst_port() {
                return Classified::Ignored;
            }
            up(r.src, index, Reason::UdpResponse, r.ttl, 0)
        }
        L4::Unreachable { code, quote }
            if quote.protocol == IpProtocol::Udp
                && quote.dst_port == port
                && *code == port_unreachable(r.src) =>
        {
            let c = cookies.cookie(quote.dst, index, Protocol::Host);
            let ident_ok = r.src.is_ipv6() || c.seq as u16 == quote.ident as u16;
            // The error may come from another address of the target (Linux answers
            // for an IPv6 AnyIP prefix from the link's address): the quote decides.
            if c.sport != quote.src_port || !ident_ok {
                return Classified::Ignored;
            }
            up(quote.dst, index, Reason::PortUnreachable, r.ttl, *code)
        }
        _ => Classified::Ignored,
    }
}

/// The port-unreachable code of ICMP (3) or ICMPv6 (4) for a reply from `src`.
fn port_unreachable(src: IpAddr) -> u8 {
    if src.is_ipv6() {
        4
    } else {
        icmp::CODE_PORT_UNREACHABLE
    }
}

impl ProbeModule for UdpPing {
    fn name(&self) -> &'static str {
        "udp_ping"
    }
    fn protocol(&self) -> Protocol {
        Protocol::Host
    }
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Host && probe.dport == self.index && probe.dst.is_ipv4()
    }
    fn template(&self, _: usize) -> &[u8] {
        self.template.bytes()
    }
    fn patch(&self, _: usize, frame: &mut [u8], probe: &Probe) {
        let real = Probe {
            dport: self.port,
            proto: Protocol::Udp,
            ..*probe
        };
        self.template.patch(frame, &real)
    }
    fn reply_filter(&self) -> ReplyFilter {
        filter(self.our_addr, false, true, true)
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        if !r.src.is_ipv4() {
            return Classified::Ignored;
        }
        udp_ping_reply(r, cookies, self.index, self.port)
    }
    fn silence(&self) -> PortState {
        PortState::Filtered
    }
}

/// TCP SYN or ACK to one port over IPv6.
#[derive(Clone, Debug)]
pub struct TcpPing6 {
    index: u16,
    port: u16,
    ack: bool,
    src: Ipv6Addr,
    template: Vec<u8>,
}

impl TcpPing6 {
    /// Probe number `index`: a SYN (`ack` false) or an ACK to `port` from `src`.
    pub fn new(index: u16, p: &FrameParams, src: Ipv6Addr, port: u16, ack: bool) -> TcpPing6 {
        let mut t = v6_frame(p, src, IpProtocol::Tcp, 20);
        let tcp = &mut t[L3 + 40..];
        tcp[2..4].copy_from_slice(&port.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = if ack { TcpFlags::ACK } else { TcpFlags::SYN };
        tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
        TcpPing6 {
            index,
            port,
            ack,
            src,
            template: t,
        }
    }
}

impl ProbeModule for TcpPing6 {
    fn name(&self) -> &'static str {
        if self.ack {
            "tcp_ack_ping6"
        } else {
            "tcp_syn_ping6"
        }
    }
    fn protocol(&self) -> Protocol {
        Protocol::Host
    }
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Host && probe.dport == self.index && probe.dst.is_ipv6()
    }
    fn template(&self, _: usize) -> &[u8] {
        &self.template
    }
    fn patch(&self, _: usize, frame: &mut [u8], probe: &Probe) {
        // The backend's buffer may be longer than the frame.
        let frame = &mut frame[..self.template.len()];
        let IpAddr::V6(dst) = probe.dst else { return };
        frame[L3 + 24..L3 + 40].copy_from_slice(&dst.octets());
        let tcp = &mut frame[L3 + 40..];
        tcp[0..2].copy_from_slice(&probe.sport.to_be_bytes());
        tcp[4..8].copy_from_slice(&probe.seq.to_be_bytes());
        if self.ack {
            tcp[8..12].copy_from_slice(&probe.seq.to_be_bytes());
        }
        tcp[16..18].copy_from_slice(&[0, 0]);
        let ph = checksum::pseudo_header_v6(self.src, dst, 6, tcp.len() as u32);
        let c = checksum::finish(ph, tcp);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
    }
    fn reply_filter(&self) -> ReplyFilter {
        filter(self.src.into(), true, false, false)
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        if !r.src.is_ipv6() {
            return Classified::Ignored;
        }
        tcp_ping_reply(r, cookies, self.index, self.port, self.ack)
    }
    fn silence(&self) -> PortState {
        PortState::Filtered
    }
}

/// UDP to one port over IPv6.
#[derive(Clone, Debug)]
pub struct UdpPing6 {
    index: u16,
    port: u16,
    src: Ipv6Addr,
    template: Vec<u8>,
}

impl UdpPing6 {
    /// Probe number `index`: an empty UDP datagram to `port` from `src`.
    pub fn new(index: u16, p: &FrameParams, src: Ipv6Addr, port: u16) -> UdpPing6 {
        let mut t = v6_frame(p, src, IpProtocol::Udp, 8);
        let udp = &mut t[L3 + 40..];
        udp[2..4].copy_from_slice(&port.to_be_bytes());
        udp[4..6].copy_from_slice(&8u16.to_be_bytes());
        UdpPing6 {
            index,
            port,
            src,
            template: t,
        }
    }
}

impl ProbeModule for UdpPing6 {
    fn name(&self) -> &'static str {
        "udp_ping6"
    }
    fn protocol(&self) -> Protocol {
        Protocol::Host
    }
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Host && probe.dport == self.index && probe.dst.is_ipv6()
    }
    fn template(&self, _: usize) -> &[u8] {
        &self.template
    }
    fn patch(&self, _: usize, frame: &mut [u8], probe: &Probe) {
        // The backend's buffer may be longer than the frame.
        let frame = &mut frame[..self.template.len()];
        let IpAddr::V6(dst) = probe.dst else { return };
        frame[L3 + 24..L3 + 40].copy_from_slice(&dst.octets());
        let udp = &mut frame[L3 + 40..];
        udp[0..2].copy_from_slice(&probe.sport.to_be_bytes());
        udp[6..8].copy_from_slice(&[0, 0]);
        let ph = checksum::pseudo_header_v6(self.src, dst, 17, udp.len() as u32);
        let c = checksum::finish(ph, udp);
        let c = if c == 0 { 0xffff } else { c };
        udp[6..8].copy_from_slice(&c.to_be_bytes());
    }
    fn reply_filter(&self) -> ReplyFilter {
        filter(self.src.into(), false, true, true)
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        if !r.src.is_ipv6() {
            return Classified::Ignored;
        }
        udp_ping_reply(r, cookies, self.index, self.port)
    }
    fn silence(&self) -> PortState {
        PortState::Filtered
    }
}

/// ARP request for the target (`-PR` on an IPv4 link): an ARP reply from it makes
/// it up.
#[derive(Clone, Debug)]
pub struct ArpPing {
    index: u16,
    params: FrameParams,
    template: Vec<u8>,
}

impl ArpPing {
    /// Probe number `index`, asking from `p`'s addresses.
    pub fn new(index: u16, p: &FrameParams) -> ArpPing {
        ArpPing {
            index,
            params: *p,
            template: resolve::arp_request(p.src_mac, p.src_ip, Ipv4Addr::UNSPECIFIED),
        }
    }
}

impl ProbeModule for ArpPing {
    fn name(&self) -> &'static str {
        "arp"
    }
    fn protocol(&self) -> Protocol {
        Protocol::Host
    }
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Host && probe.dport == self.index && probe.dst.is_ipv4()
    }
    fn template(&self, _: usize) -> &[u8] {
        &self.template
    }
    fn patch(&self, _: usize, frame: &mut [u8], probe: &Probe) {
        if let IpAddr::V4(dst) = probe.dst {
            // The target protocol address: the last 4 bytes of the ARP packet.
            frame[L3 + 24..L3 + 28].copy_from_slice(&dst.octets());
        }
    }
    fn reply_filter(&self) -> ReplyFilter {
        ReplyFilter {
            link: true,
            ..filter(self.params.src_ip.into(), false, false, false)
        }
    }
    fn classify(&self, r: &Inbound<'_>, _: &Cookies) -> Classified {
        match r.l4 {
            L4::ArpReply => up(r.src, self.index, Reason::ArpResponse, 0, 0),
            _ => Classified::Ignored,
        }
    }
    fn silence(&self) -> PortState {
        PortState::Filtered
    }
}

/// NDP neighbour solicitation for the target (`-PR` on an IPv6 link): a
/// neighbour advertisement for it makes it up.
#[derive(Clone, Debug)]
pub struct NdpPing {
    index: u16,
    params: FrameParams,
    src: Ipv6Addr,
    len: usize,
    template: Vec<u8>,
}

impl NdpPing {
    /// Probe number `index`, asking from `src` and `p`'s MAC.
    pub fn new(index: u16, p: &FrameParams, src: Ipv6Addr) -> NdpPing {
        let template = resolve::neighbor_solicitation(p.src_mac, src, Ipv6Addr::UNSPECIFIED);
        NdpPing {
            index,
            params: *p,
            src,
            len: template.len(),
            template,
        }
    }
}

impl ProbeModule for NdpPing {
    fn name(&self) -> &'static str {
        "ndp"
    }
    fn protocol(&self) -> Protocol {
        Protocol::Host
    }
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Host && probe.dport == self.index && probe.dst.is_ipv6()
    }
    fn template(&self, _: usize) -> &[u8] {
        &self.template
    }
    fn patch(&self, _: usize, frame: &mut [u8], probe: &Probe) {
        if let IpAddr::V6(dst) = probe.dst {
            let f = resolve::neighbor_solicitation(self.params.src_mac, self.src, dst);
            frame[..self.len].copy_from_slice(&f);
        }
    }
    fn reply_filter(&self) -> ReplyFilter {
        ReplyFilter {
            link: true,
            ..filter(self.src.into(), false, false, false)
        }
    }
    fn classify(&self, r: &Inbound<'_>, _: &Cookies) -> Classified {
        match r.l4 {
            L4::NeighborAdvert { target } => {
                up(target.into(), self.index, Reason::NdResponse, r.ttl, 0)
            }
            _ => Classified::Ignored,
        }
    }
    fn silence(&self) -> PortState {
        PortState::Filtered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tests::params;
    use crate::probe::ProbeSet;

    const US6: &str = "2001:db8:0:1::1";

    fn set(list: &[DiscoveryProbe], v6: bool) -> ProbeSet {
        let src6 = v6.then(|| US6.parse().unwrap());
        ProbeSet::of(discovery_modules(list, &params(), src6))
    }

    #[test]
    fn v6_frames_patched_in_a_backend_buffer_have_valid_checksums() {
        let list = [
            DiscoveryProbe::Echo,
            DiscoveryProbe::Syn(22),
            DiscoveryProbe::Ack(80),
            DiscoveryProbe::Udp(40125),
        ];
        let s = set(&list, true);
        let c = Cookies::new(5);
        let dst: IpAddr = "2001:db8:200::1".parse().unwrap();
        for i in 0..list.len() as u16 {
            let k = c.cookie(dst, i, Protocol::Host);
            let p = Probe {
                dst,
                dport: i,
                sport: k.sport,
                seq: k.seq,
                proto: Protocol::Host,
            };
            // As a backend does: the template in a larger buffer, patched there.
            let (t, bytes) = s.template_of(&p).expect("a module sends it");
            let mut buf = vec![0u8; 2048];
            buf[..bytes.len()].copy_from_slice(bytes);
            let n = s.patch(t, &mut buf, &p);
            let f = &buf[..n];
            let ip = Ipv6Packet::new_checked(&f[L3..]).unwrap();
            assert_eq!(IpAddr::V6(ip.dst_addr()), dst);
            assert_eq!(ip.payload_len() as usize, f.len() - L3 - 40, "probe {i}");
            let nh = ip.next_header();
            assert!(
                checksum::verify_l4(US6.parse().unwrap(), dst, u8::from(nh), ip.payload()),
                "probe {i}: {f:02x?}"
            );
        }
    }

    #[test]
    fn options_parse_as_nmap_writes_them() {
        use DiscoveryProbe::*;
        assert_eq!(
            DiscoveryProbe::parse_option("PS22,443").unwrap(),
            vec![Syn(22), Syn(443)]
        );
        assert_eq!(DiscoveryProbe::parse_option("PA").unwrap(), vec![Ack(80)]);
        assert_eq!(
            DiscoveryProbe::parse_option("PU").unwrap(),
            vec![Udp(40125)]
        );
        assert_eq!(DiscoveryProbe::parse_option("PR").unwrap(), vec![Arp]);
        assert!(DiscoveryProbe::parse_option("PE7")
            .unwrap_err()
            .contains("takes no ports"));
        assert!(DiscoveryProbe::parse_option("PS70000")
            .unwrap_err()
            .contains("70000"));
        assert!(DiscoveryProbe::parse_option("PX").is_err());
        let l = DiscoveryProbe::parse_list("PE,PS443,PA80,PP,PE").unwrap();
        assert_eq!(l, DiscoveryProbe::DEFAULT_MIX, "duplicates fold");
        assert_eq!(DiscoveryProbe::list_string(&l), "PE,PS443,PA80,PP");
        assert_eq!(DiscoveryProbe::parse_list(DEFAULT_DISCOVERY).unwrap(), l);
        assert!(!Timestamp.fits(true) && !Mask.fits(true) && Echo.fits(true));
    }

    /// An IPv4 frame from `src` to us carrying `l4` of `proto`.
    fn v4_reply(src: Ipv4Addr, proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; L3 + 20 + l4.len()];
        f[12] = 0x08;
        Ipv4Repr {
            src_addr: src,
            dst_addr: params().src_ip,
            protocol: proto,
            payload_len: l4.len(),
            ttl: 63,
            ident: 1,
            dont_frag: false,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut f[L3..]));
        f[L3 + 20..].copy_from_slice(l4);
        f
    }

    #[test]
    fn replies_with_the_cookie_make_the_host_up_with_nmaps_reason() {
        use DiscoveryProbe::*;
        let list = [Echo, Timestamp, Syn(22), Ack(80), Arp];
        let s = set(&list, false);
        let c = Cookies::new(9);
        let tgt = Ipv4Addr::new(198, 18, 1, 5);
        let k = |i: u16| c.cookie(tgt.into(), i, Protocol::Host);
        let up = |i: u16, reason: Reason, ttl: u8| {
            Classified::Reply(Verdict {
                addr: tgt.into(),
                port: i,
                proto: Protocol::Host,
                state: PortState::Open,
                reason,
                ttl,
                icmp_code: 0,
            })
        };
        let icmp = |ty: u8, id: u16, seq: u16| {
            let mut m = vec![ty, 0, 0, 0];
            m.extend(id.to_be_bytes());
            m.extend(seq.to_be_bytes());
            m.extend([0; 12]);
            v4_reply(tgt, IpProtocol::Icmp, &m)
        };
        let echo = icmp(0, k(0).sport, k(0).seq as u16);
        assert_eq!(s.classify(&echo, &c), up(0, Reason::EchoReply, 63));
        let ts = icmp(14, k(1).sport, k(1).seq as u16);
        assert_eq!(s.classify(&ts, &c), up(1, Reason::TimestampReply, 63));
        let forged = icmp(0, k(0).sport, k(0).seq as u16 ^ 1);
        assert_eq!(s.classify(&forged, &c), Classified::Invalid);
        // TCP: a SYN-ACK acknowledging the SYN's cookie; a reset echoing the ACK's.
        let tcp = |sport: u16, dport: u16, seq: u32, ack: u32, flags: u8| {
            let mut t = [0u8; 20];
            crate::wire::TcpRepr {
                src_port: sport,
                dst_port: dport,
                seq_number: seq,
                ack_number: ack,
                flags: TcpFlags(flags),
                window_len: 0,
                max_seg_size: None,
            }
            .emit(&mut crate::wire::TcpPacket::new_unchecked(&mut t[..]));
            v4_reply(tgt, IpProtocol::Tcp, &t)
        };
        let sa = tcp(
            22,
            k(2).sport,
            7,
            k(2).seq.wrapping_add(1),
            TcpFlags::SYN | TcpFlags::ACK,
        );
        assert_eq!(s.classify(&sa, &c), up(2, Reason::SynAck, 63));
        let rst = tcp(80, k(3).sport, k(3).seq, 0, TcpFlags::RST);
        assert_eq!(s.classify(&rst, &c), up(3, Reason::Reset, 63));
        let stray = tcp(80, k(3).sport, k(3).seq ^ 1, 0, TcpFlags::RST);
        assert_eq!(s.classify(&stray, &c), Classified::Ignored);
        // ARP: a reply from the target to our address.
        let mut arp = resolve::arp_request(params().dst_mac, tgt, params().src_ip);
        arp[L3 + 7] = 2; // reply
        assert_eq!(s.classify(&arp, &c), up(4, Reason::ArpResponse, 0));
        // An ICMP echo request (someone pinging us) is nobody's reply.
        let req = icmp(8, k(0).sport, k(0).seq as u16);
        assert_eq!(s.classify(&req, &c), Classified::Ignored);
    }
}
