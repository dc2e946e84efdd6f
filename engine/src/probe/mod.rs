//! Probe modules, after zmap's `probe_modules.h`: one [`ProbeModule`] per kind of
//! probe owns what a probe is — its frame templates, the per-probe patch, the
//! replies it wants let in ([`ReplyFilter`], compiled to classic BPF for AF_PACKET
//! and handed to the XDP filter as parameters), how a reply is classified, and
//! what silence means.
//!
//! Owns: [`Probe`] (what varies between probes), [`FrameParams`] (what does not),
//! the modules ([`TcpSynV4`], [`TcpSynV6`], [`TcpFlagsV4`], [`TcpFlagsV6`], [`UdpV4`],
//! [`UdpV6`]) and the [`ProbeSet`] of one scan (its
//! modules, one global template numbering for the backends). Never touches
//! sockets, permutation, pacing or events: the scan loop and the backends call in.
//!
//! A new kind of probe (IPv6 SYN, ICMP echo, ARP, FIN/NULL/Xmas/ACK, ...) is a new
//! implementation of the trait added to a [`ProbeSet`]; neither the scan loop nor
//! the backends change. Frames may differ in length between modules and between
//! the templates of one module; addresses are [`IpAddr`]s.

mod ping;
mod tcp_flags;
mod tcp_syn;
mod tcp_syn6;
mod template;
mod template6;
mod udp;

pub use ping::{
    discovery_modules, ArpPing, DiscoveryProbe, IcmpPing, NdpPing, TcpPing, TcpPing6, UdpPing,
    UdpPing6, DEFAULT_DISCOVERY, DEFAULT_TCP_PING_PORT, DEFAULT_UDP_PING_PORT,
};
pub use tcp_flags::{TcpFlagScan, TcpFlagsV4, TcpFlagsV6, FILTERED_ICMP_CODES};
pub use tcp_syn::TcpSynV4;
pub use tcp_syn6::TcpSynV6;
pub use template::ProbeTemplate;
pub use template6::ProbeTemplateV6;
pub use udp::{UdpV4, UdpV6};

use crate::classify::{Classified, Inbound};
use crate::cookie::Cookies;
use crate::wire::EthernetAddress;
use prtip_store::event::{PortState, Protocol};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// One probe to send: everything that varies between probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Target address.
    pub dst: IpAddr,
    /// Target port.
    pub dport: u16,
    /// Source port (carries cookie bits).
    pub sport: u16,
    /// The cookie's low 32 bits: the TCP sequence number; its low 16 bits also go
    /// into the IPv4 identification.
    pub seq: u32,
    /// Protocol of the port probed (picks the module with [`ProbeModule::protocol`]).
    pub proto: Protocol,
}

/// Fixed parts of every probe frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameParams {
    /// Our MAC (the interface's).
    pub src_mac: EthernetAddress,
    /// Next hop's MAC (gateway or the target itself on a link).
    pub dst_mac: EthernetAddress,
    /// Our IPv4 source address.
    pub src_ip: Ipv4Addr,
    /// IP TTL of probes.
    pub ttl: u8,
}

impl Default for FrameParams {
    fn default() -> Self {
        FrameParams {
            src_mac: EthernetAddress::default(),
            dst_mac: EthernetAddress::default(),
            src_ip: Ipv4Addr::UNSPECIFIED,
            ttl: 64,
        }
    }
}

/// Which replies a module wants to see: the reply filter in data, compiled to
/// classic BPF by [`crate::backend::bpf::compile`] and turned into the XDP scan
/// filter's parameters by `prtip-xdp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyFilter {
    /// Our address: only packets to it (its family picks IPv4 or IPv6).
    pub our_addr: IpAddr,
    /// Destination ports of TCP/UDP replies, `lo..=hi` (our source ports).
    pub ports: (u16, u16),
    /// Let TCP segments to those ports in.
    pub tcp: bool,
    /// Let UDP datagrams to those ports in.
    pub udp: bool,
    /// Let ICMP errors (destination unreachable, time exceeded) in.
    pub icmp_errors: bool,
    /// Let ICMP query replies in (echo, timestamp and address mask replies;
    /// ICMPv6 echo replies): host discovery.
    pub queries: bool,
    /// Let link-layer discovery answers in (ARP replies; ICMPv6 neighbour
    /// advertisements): host discovery on a local link.
    pub link: bool,
}

impl ReplyFilter {
    /// The smallest filter letting in what `self` and `other` let in (ports: the
    /// hull of both ranges; the address: `self`'s, both must agree).
    pub fn union(self, other: ReplyFilter) -> ReplyFilter {
        ReplyFilter {
            our_addr: self.our_addr,
            ports: (
                self.ports.0.min(other.ports.0),
                self.ports.1.max(other.ports.1),
            ),
            tcp: self.tcp || other.tcp,
            udp: self.udp || other.udp,
            icmp_errors: self.icmp_errors || other.icmp_errors,
            queries: self.queries || other.queries,
            link: self.link || other.link,
        }
    }
}

/// One kind of probe (zmap's `probe_module_t`).
///
/// The hot path is [`ProbeModule::template_of`] + [`ProbeModule::patch`]: a backend
/// copies a template into a frame buffer once and patches every probe into it.
pub trait ProbeModule: Send + Sync + std::fmt::Debug {
    /// Short name (`tcp_syn`, `udp`).
    fn name(&self) -> &'static str;
    /// The protocol of the ports it probes (the answered set's key; results carry it).
    fn protocol(&self) -> Protocol;
    /// Whether it sends `probe` (protocol and address family).
    fn handles(&self, probe: &Probe) -> bool;
    /// Number of frame templates (at least 1). The default is one template, which
    /// every probe is patched into.
    fn template_count(&self) -> usize {
        1
    }
    /// Template `i` (`i < template_count()`): a whole frame, variable fields zero.
    fn template(&self, i: usize) -> &[u8];
    /// Which template `probe` is patched into (by default the only one, 0).
    #[inline]
    fn template_of(&self, _probe: &Probe) -> usize {
        0
    }
    /// Write `probe` into `frame`, which holds template `t` (or an earlier probe
    /// patched into it): every variable field and checksum is rewritten.
    fn patch(&self, t: usize, frame: &mut [u8], probe: &Probe);
    /// The replies it wants to see.
    fn reply_filter(&self) -> ReplyFilter;
    /// What a parsed reply says, after the cookie check; [`Classified::Ignored`] for
    /// replies that belong to another module.
    fn classify(&self, reply: &Inbound<'_>, cookies: &Cookies) -> Classified;
    /// The state of a probe that got no answer after every pass.
    fn silence(&self) -> PortState;
    /// The probe to send to `dst`:`dport` (cookie in source port and sequence).
    fn probe(&self, dst: IpAddr, dport: u16, cookies: &Cookies) -> Probe {
        let c = cookies.cookie(dst, dport, self.protocol());
        Probe {
            dst,
            dport,
            sport: c.sport,
            seq: c.seq,
            proto: self.protocol(),
        }
    }
}

/// The probe modules of one scan, with one template numbering across them (what a
/// backend keys its frame buffers by).
#[derive(Clone, Debug)]
pub struct ProbeSet {
    modules: Vec<Arc<dyn ProbeModule>>,
    /// Global index of each module's first template.
    first: Vec<usize>,
    our_addr: IpAddr,
    /// The one source port of every probe (`-g`), when fixed.
    source_port: Option<u16>,
}

/// Kept for callers of the pre-module API: the set of a raw scan.
pub type TemplateSet = ProbeSet;

impl ProbeSet {
    /// Today's raw scan: TCP SYN and UDP (empty payload) over IPv4 from `p`.
    pub fn new(p: &FrameParams) -> ProbeSet {
        Self::syn_udp(p, &|_| None, &[])
    }

    /// TCP SYN, and UDP with the payload `udp_payload(port)` gives for each of
    /// `udp_ports` (empty payload otherwise), over IPv4 from `p`.
    pub fn syn_udp(
        p: &FrameParams,
        udp_payload: &dyn Fn(u16) -> Option<Vec<u8>>,
        udp_ports: &[u16],
    ) -> ProbeSet {
        Self::tcp_udp(p, None, udp_payload, udp_ports)
    }

    /// As [`ProbeSet::syn_udp`], with TCP probed by `tcp` (`None`: SYN).
    pub fn tcp_udp(
        p: &FrameParams,
        tcp: Option<TcpFlagScan>,
        udp_payload: &dyn Fn(u16) -> Option<Vec<u8>>,
        udp_ports: &[u16],
    ) -> ProbeSet {
        let mut udp = UdpV4::new(p);
        for &port in udp_ports {
            if let Some(payload) = udp_payload(port) {
                udp.set_payload(port, &payload);
            }
        }
        let tcp: Arc<dyn ProbeModule> = match tcp {
            None => Arc::new(TcpSynV4::new(p)),
            Some(scan) => Arc::new(TcpFlagsV4::new(p, scan)),
        };
        Self::of(vec![tcp, Arc::new(udp)])
    }

    /// A raw scan's modules from `src` (either family; for IPv4 it must be
    /// `p.src_ip`): TCP probed by `tcp` (`None`: SYN) and UDP with the payloads
    /// `udp_payload` gives for `udp_ports` ([`TcpSynV4`]/[`TcpFlagsV4`] and
    /// [`UdpV4`], or [`TcpSynV6`]/[`TcpFlagsV6`] and [`UdpV6`]).
    pub fn raw(
        p: &FrameParams,
        src: IpAddr,
        tcp: Option<TcpFlagScan>,
        udp_payload: &dyn Fn(u16) -> Option<Vec<u8>>,
        udp_ports: &[u16],
    ) -> ProbeSet {
        let IpAddr::V6(src6) = src else {
            return Self::tcp_udp(p, tcp, udp_payload, udp_ports);
        };
        let mut udp = UdpV6::new(p, src6);
        for &port in udp_ports {
            if let Some(payload) = udp_payload(port) {
                udp.set_payload(port, &payload);
            }
        }
        let tcp: Arc<dyn ProbeModule> = match tcp {
            None => Arc::new(TcpSynV6::new(p, src6)),
            Some(scan) => Arc::new(TcpFlagsV6::new(p, src6, scan)),
        };
        Self::of(vec![tcp, Arc::new(udp)])
    }

    /// A set of `modules` (the first that handles a probe sends it).
    ///
    /// # Panics
    /// If `modules` is empty.
    pub fn of(modules: Vec<Arc<dyn ProbeModule>>) -> ProbeSet {
        assert!(!modules.is_empty(), "a probe set needs a module");
        let mut first = Vec::with_capacity(modules.len());
        let mut n = 0;
        for m in &modules {
            first.push(n);
            n += m.template_count();
        }
        let our_addr = modules[0].reply_filter().our_addr;
        ProbeSet {
            modules,
            first,
            our_addr,
            source_port: None,
        }
    }

    /// The set whose probes all leave from `port` when given (`-g`; the scan's
    /// [`Cookies::with_source_port`] must say the same): the reply filter then
    /// lets only replies to that port in.
    pub fn with_source_port(mut self, port: Option<u16>) -> ProbeSet {
        self.source_port = port;
        self
    }

    /// The modules.
    pub fn modules(&self) -> &[Arc<dyn ProbeModule>] {
        &self.modules
    }

    /// The module that sends probes of `proto`.
    pub fn module_for(&self, proto: Protocol) -> Option<&dyn ProbeModule> {
        self.modules
            .iter()
            .find(|m| m.protocol() == proto)
            .map(|m| &**m)
    }

    /// Number of templates over all modules.
    pub fn template_count(&self) -> usize {
        self.first.last().copied().unwrap_or(0)
            + self.modules.last().map_or(0, |m| m.template_count())
    }

    /// Global template index and bytes for `probe`; `None` if no module sends it.
    #[inline]
    pub fn template_of(&self, probe: &Probe) -> Option<(usize, &[u8])> {
        let (i, m) = self
            .modules
            .iter()
            .enumerate()
            .find(|(_, m)| m.handles(probe))?;
        let t = m.template_of(probe);
        Some((self.first[i] + t, m.template(t)))
    }

    /// Patch `probe` into `frame`, which holds global template `t` (from
    /// [`ProbeSet::template_of`]); returns the frame's length.
    #[inline]
    pub fn patch(&self, t: usize, frame: &mut [u8], probe: &Probe) -> usize {
        let i = self.first.partition_point(|&f| f <= t) - 1;
        let local = t - self.first[i];
        let m = &self.modules[i];
        m.patch(local, frame, probe);
        m.template(local).len()
    }

    /// The frame for `probe` in a fresh buffer (tests, slow paths).
    pub fn build(&self, probe: &Probe) -> Option<Vec<u8>> {
        let (t, bytes) = self.template_of(probe)?;
        let mut f = bytes.to_vec();
        self.patch(t, &mut f, probe);
        Some(f)
    }

    /// Longest template (to size backend buffers).
    pub fn max_len(&self) -> usize {
        self.modules
            .iter()
            .flat_map(|m| (0..m.template_count()).map(|i| m.template(i).len()))
            .max()
            .unwrap_or(0)
    }

    /// What every module's replies need let in (only the fixed source port's
    /// replies with [`ProbeSet::with_source_port`]).
    pub fn reply_filter(&self) -> ReplyFilter {
        let f = self
            .modules
            .iter()
            .map(|m| m.reply_filter())
            .reduce(ReplyFilter::union)
            .expect("a probe set has a module");
        match self.source_port {
            Some(p) => ReplyFilter { ports: (p, p), ..f },
            None => f,
        }
    }

    /// Our address (replies to others are ignored).
    pub fn our_addr(&self) -> IpAddr {
        self.our_addr
    }

    /// Classify a received frame (Ethernet header included): parsed once through
    /// the wire views, then offered to each module until one claims it.
    pub fn classify(&self, frame: &[u8], cookies: &Cookies) -> Classified {
        let reply = match Inbound::parse(frame, self.our_addr) {
            Ok(Some(r)) => r,
            Ok(None) => return Classified::Ignored,
            Err(_) => return Classified::Invalid,
        };
        for m in &self.modules {
            match m.classify(&reply, cookies) {
                Classified::Ignored => continue,
                c => return c,
            }
        }
        Classified::Ignored
    }

    /// The state of an unanswered probe of `proto` (`filtered` when no module
    /// sends that protocol).
    pub fn silence(&self, proto: Protocol) -> PortState {
        self.module_for(proto)
            .map_or(PortState::Filtered, |m| m.silence())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie::{SPORT_BASE, SPORT_SPAN};

    pub(crate) fn params() -> FrameParams {
        FrameParams {
            src_mac: EthernetAddress([2, 0x70, 0x72, 0x74, 0, 1]),
            dst_mac: EthernetAddress([2, 0x70, 0x72, 0x74, 0, 2]),
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            ttl: 64,
        }
    }

    #[test]
    fn one_template_numbering_over_the_modules() {
        let set = ProbeSet::syn_udp(&params(), &|p| (p == 53).then(|| vec![1, 2, 3]), &[53, 54]);
        assert_eq!(set.template_count(), 3, "SYN, UDP default, UDP 53");
        let c = Cookies::new(3);
        let tgt: IpAddr = Ipv4Addr::new(198, 19, 0, 9).into();
        let syn = set.module_for(Protocol::Tcp).unwrap().probe(tgt, 80, &c);
        let dns = set.module_for(Protocol::Udp).unwrap().probe(tgt, 53, &c);
        let other = set.module_for(Protocol::Udp).unwrap().probe(tgt, 54, &c);
        let idx: Vec<usize> = [syn, dns, other]
            .iter()
            .map(|p| set.template_of(p).unwrap().0)
            .collect();
        assert_eq!(idx, vec![0, 2, 1]);
        for p in [syn, dns, other] {
            let (t, bytes) = set.template_of(&p).unwrap();
            let mut f = bytes.to_vec();
            assert_eq!(set.patch(t, &mut f, &p), bytes.len());
            assert_eq!(Some(f), set.build(&p));
        }
        assert_eq!(set.max_len(), 58);
        // A probe no module sends.
        let v6 = Probe {
            dst: "2001:db8::1".parse().unwrap(),
            ..syn
        };
        assert_eq!(set.template_of(&v6), None);
    }

    #[test]
    fn a_fixed_source_port_narrows_the_reply_filter_and_fills_every_probe() {
        let p = FrameParams {
            ttl: 33,
            ..params()
        };
        let set = ProbeSet::new(&p).with_source_port(Some(53));
        assert_eq!(set.reply_filter().ports, (53, 53));
        assert_eq!(
            ProbeSet::new(&p).reply_filter().ports,
            (SPORT_BASE, SPORT_BASE + SPORT_SPAN - 1)
        );
        let c = Cookies::with_source_port(4, Some(53));
        let tgt: IpAddr = Ipv4Addr::new(198, 19, 0, 9).into();
        let probe = set.module_for(Protocol::Tcp).unwrap().probe(tgt, 80, &c);
        let f = set.build(&probe).unwrap();
        assert_eq!(f[14 + 8], 33, "IPv4 TTL");
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 53, "TCP source port");
    }

    #[test]
    fn filter_is_the_union_of_the_modules() {
        let set = ProbeSet::new(&params());
        assert_eq!(
            set.reply_filter(),
            ReplyFilter {
                our_addr: Ipv4Addr::new(198, 18, 0, 1).into(),
                ports: (40960, 57343),
                tcp: true,
                udp: true,
                icmp_errors: true,
                queries: false,
                link: false,
            }
        );
        let only_syn = ProbeSet::of(vec![Arc::new(TcpSynV4::new(&params()))]);
        assert!(only_syn.reply_filter().tcp && !only_syn.reply_filter().udp);
    }

    #[test]
    fn silence_is_the_modules() {
        let set = ProbeSet::new(&params());
        assert_eq!(set.silence(Protocol::Tcp), PortState::Filtered);
        assert_eq!(set.silence(Protocol::Udp), PortState::OpenFiltered);
    }

    #[test]
    fn readers_project_the_silence_the_modules_give() {
        // Readers of a log take silence from the spec's scan type (no engine);
        // for a SYN scan's modules (SYN + UDP) it must be the modules' own.
        use prtip_store::event::ScanType;
        let set = ProbeSet::new(&params());
        for proto in [Protocol::Tcp, Protocol::Udp] {
            assert_eq!(
                ScanType::Syn.silence(proto),
                set.silence(proto),
                "{proto:?}"
            );
        }
        for (t, f) in [
            (ScanType::Fin, TcpFlagScan::Fin),
            (ScanType::Null, TcpFlagScan::Null),
            (ScanType::Xmas, TcpFlagScan::Xmas),
            (ScanType::Ack, TcpFlagScan::Ack),
            (ScanType::Window, TcpFlagScan::Window),
            (ScanType::Maimon, TcpFlagScan::Maimon),
        ] {
            assert_eq!(t.silence(Protocol::Tcp), f.on_silence(), "{t:?}");
            assert!(t.projects_silence(), "{t:?}");
        }
        assert!(!ScanType::Connect.projects_silence() && !ScanType::Udp.projects_silence());
    }
}
