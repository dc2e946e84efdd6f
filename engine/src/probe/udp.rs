//! UDP over IPv4 ([`UdpV4`]) and IPv6 ([`UdpV6`]) on the raw path (`-sS -sU`,
//! or ports given as `U:` in a raw TCP scan): a datagram
//! with a payload per destination port (empty by default); a UDP answer → open,
//! ICMP port unreachable → closed, another unreachable → filtered, silence →
//! open|filtered. The IPv4 identification (the IPv6 flow label) carries the
//! cookie's low 16 bits, so an ICMP quote can be validated.

use super::{FrameParams, Probe, ProbeModule, ProbeTemplate, ProbeTemplateV6, ReplyFilter};
use crate::classify::{Classified, Inbound, Verdict, L4};
use crate::cookie::{Cookies, SPORT_BASE, SPORT_SPAN};
use crate::wire::{icmp, IpProtocol};
use prtip_store::event::{PortState, Protocol, Reason};
use std::net::{IpAddr, Ipv6Addr};

/// ICMPv6 destination unreachable, code 4: port unreachable (RFC 4443 §3.1).
const ICMPV6_PORT_UNREACHABLE: u8 = 4;

/// A module's UDP templates: the empty payload (template 0) and one per port
/// with a payload (1 + i: `by_port[i]`, sorted by port).
#[derive(Clone, Debug)]
struct PayloadTemplates<T> {
    default: T,
    by_port: Vec<(u16, T)>,
}

impl<T> PayloadTemplates<T> {
    fn set(&mut self, port: u16, t: T) {
        match self.by_port.binary_search_by_key(&port, |(k, _)| *k) {
            Ok(i) => self.by_port[i].1 = t,
            Err(i) => self.by_port.insert(i, (port, t)),
        }
    }
    fn get(&self, t: usize) -> &T {
        match t {
            0 => &self.default,
            i => &self.by_port[i - 1].1,
        }
    }
    fn count(&self) -> usize {
        1 + self.by_port.len()
    }
    fn index_of(&self, port: u16) -> usize {
        match self.by_port.binary_search_by_key(&port, |(k, _)| *k) {
            Ok(i) => 1 + i,
            Err(_) => 0,
        }
    }
}

/// The UDP module for IPv4 probes from one address.
#[derive(Clone, Debug)]
pub struct UdpV4 {
    params: FrameParams,
    templates: PayloadTemplates<ProbeTemplate>,
}

impl UdpV4 {
    /// The module for probes leaving with `p`, empty payloads.
    pub fn new(p: &FrameParams) -> UdpV4 {
        UdpV4 {
            params: *p,
            templates: PayloadTemplates {
                default: ProbeTemplate::udp(p, &[]),
                by_port: Vec::new(),
            },
        }
    }

    /// Send `payload` to `port` (replacing an earlier one).
    pub fn set_payload(&mut self, port: u16, payload: &[u8]) {
        let t = ProbeTemplate::udp(&self.params, payload);
        self.templates.set(port, t);
    }
}

/// The UDP module for IPv6 probes from one address: [`UdpV4`]'s probes and
/// rules in an Ethernet + IPv6 frame ([`ProbeTemplateV6`]: the cookie's low 16
/// bits in the flow label); ICMPv6 port unreachable → closed, another ICMPv6
/// destination unreachable → filtered.
#[derive(Clone, Debug)]
pub struct UdpV6 {
    params: FrameParams,
    src: Ipv6Addr,
    templates: PayloadTemplates<ProbeTemplateV6>,
}

impl UdpV6 {
    /// The module for probes from `src` with `p`'s MACs and hop limit, empty
    /// payloads (`p.src_ip` is not used).
    pub fn new(p: &FrameParams, src: Ipv6Addr) -> UdpV6 {
        UdpV6 {
            params: *p,
            src,
            templates: PayloadTemplates {
                default: ProbeTemplateV6::udp(p, src, &[]),
                by_port: Vec::new(),
            },
        }
    }

    /// Send `payload` to `port` (replacing an earlier one).
    pub fn set_payload(&mut self, port: u16, payload: &[u8]) {
        let t = ProbeTemplateV6::udp(&self.params, self.src, payload);
        self.templates.set(port, t);
    }
}

/// What UDP probes let in (either family): UDP to our cookie ports and ICMP errors.
fn udp_reply_filter(our_addr: IpAddr) -> ReplyFilter {
    ReplyFilter {
        our_addr,
        ports: (SPORT_BASE, SPORT_BASE + (SPORT_SPAN - 1)),
        tcp: false,
        udp: true,
        icmp_errors: true,
        queries: false,
        link: false,
    }
}

/// nmap's UDP rules for a parsed reply of either family, after the cookie
/// check: a UDP answer open, port unreachable (ICMP code 3, ICMPv6 code 4)
/// closed, another unreachable filtered.
fn classify_udp_reply(r: &Inbound<'_>, cookies: &Cookies) -> Classified {
    let verdict = |addr: IpAddr, port, state, reason, icmp_code| {
        Classified::Reply(Verdict {
            addr,
            port,
            proto: Protocol::Udp,
            state,
            reason,
            ttl: r.ttl,
            icmp_code,
        })
    };
    match &r.l4 {
        L4::Udp(udp) => {
            if !cookies.check_udp(r.src, udp.src_port(), udp.dst_port()) {
                return Classified::Invalid;
            }
            verdict(
                r.src,
                udp.src_port(),
                PortState::Open,
                Reason::UdpResponse,
                0,
            )
        }
        L4::Unreachable { code, quote } if quote.protocol == IpProtocol::Udp => {
            if !cookies.check_quote(
                quote.dst,
                quote.dst_port,
                Protocol::Udp,
                quote.src_port,
                quote.ident,
                true,
            ) {
                return Classified::Invalid;
            }
            let port_unreachable = if r.src.is_ipv4() {
                icmp::CODE_PORT_UNREACHABLE
            } else {
                ICMPV6_PORT_UNREACHABLE
            };
            let (state, reason) = if *code == port_unreachable {
                (PortState::Closed, Reason::PortUnreachable)
            } else {
                (PortState::Filtered, Reason::IcmpUnreachable)
            };
            verdict(quote.dst, quote.dst_port, state, reason, *code)
        }
        _ => Classified::Ignored,
    }
}

impl ProbeModule for UdpV4 {
    fn name(&self) -> &'static str {
        "udp"
    }
    fn protocol(&self) -> Protocol {
        Protocol::Udp
    }
    #[inline]
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Udp && probe.dst.is_ipv4()
    }
    fn template_count(&self) -> usize {
        self.templates.count()
    }
    fn template(&self, t: usize) -> &[u8] {
        self.templates.get(t).bytes()
    }
    #[inline]
    fn template_of(&self, probe: &Probe) -> usize {
        self.templates.index_of(probe.dport)
    }
    #[inline]
    fn patch(&self, t: usize, frame: &mut [u8], probe: &Probe) {
        self.templates.get(t).patch(frame, probe)
    }
    fn reply_filter(&self) -> ReplyFilter {
        udp_reply_filter(self.params.src_ip.into())
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        if !r.src.is_ipv4() {
            return Classified::Ignored;
        }
        classify_udp_reply(r, cookies)
    }
    fn silence(&self) -> PortState {
        PortState::OpenFiltered
    }
}

impl ProbeModule for UdpV6 {
    fn name(&self) -> &'static str {
        "udp6"
    }
    fn protocol(&self) -> Protocol {
        Protocol::Udp
    }
    #[inline]
    fn handles(&self, probe: &Probe) -> bool {
        probe.proto == Protocol::Udp && probe.dst.is_ipv6()
    }
    fn template_count(&self) -> usize {
        self.templates.count()
    }
    fn template(&self, t: usize) -> &[u8] {
        self.templates.get(t).bytes()
    }
    #[inline]
    fn template_of(&self, probe: &Probe) -> usize {
        self.templates.index_of(probe.dport)
    }
    #[inline]
    fn patch(&self, t: usize, frame: &mut [u8], probe: &Probe) {
        self.templates.get(t).patch(frame, probe)
    }
    fn reply_filter(&self) -> ReplyFilter {
        udp_reply_filter(self.src.into())
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        if !r.src.is_ipv6() {
            return Classified::Ignored;
        }
        classify_udp_reply(r, cookies)
    }
    fn silence(&self) -> PortState {
        PortState::OpenFiltered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tests::params;
    use crate::wire::{checksum, Ipv4Packet, UdpPacket};
    use std::net::Ipv4Addr;

    #[test]
    fn payload_templates_by_port() {
        let mut m = UdpV4::new(&params());
        m.set_payload(53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00");
        let probe = Probe {
            dst: Ipv4Addr::new(198, 19, 1, 2).into(),
            dport: 53,
            sport: 41000,
            seq: 77,
            proto: Protocol::Udp,
        };
        let t = m.template_of(&probe);
        assert_eq!(m.template(t).len(), 14 + 20 + 8 + 12);
        let mut f = m.template(t).to_vec();
        m.patch(t, &mut f, &probe);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.ident(), 77);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port(), udp.len()), (41000, 53, 20));
        assert!(udp.verify_checksum(ip.src_addr().into(), ip.dst_addr().into()));
        let ph = checksum::pseudo_header_v4(ip.src_addr(), ip.dst_addr(), 17, 20);
        assert_eq!(
            checksum::fold(
                checksum::fold(checksum::sum(ip.payload())) as u32 + checksum::fold(ph) as u32
            ),
            0xffff
        );
        let other = Probe { dport: 54, ..probe };
        assert_eq!(m.template(m.template_of(&other)).len(), 42);
        m.set_payload(53, b"x");
        assert_eq!(m.template_count(), 2, "replaced, not added");
        assert_eq!(m.template(m.template_of(&probe)).len(), 43);
    }
}

#[cfg(test)]
mod tests_v6 {
    use super::*;
    use crate::probe::tests::params;
    use crate::probe::ProbeSet;
    use crate::wire::{self, IpProtocol, Ipv6Packet, Ipv6Repr};
    use std::sync::Arc;

    const US: &str = "2001:db8:0:1::1";
    const TGT: &str = "2001:db8:100::7";
    const L3: usize = wire::ethernet::HEADER_LEN;
    const L4: usize = L3 + wire::ipv6::HEADER_LEN;

    fn set() -> ProbeSet {
        ProbeSet::of(vec![Arc::new(UdpV6::new(&params(), US.parse().unwrap()))])
    }

    /// An Ethernet + IPv6 frame from `src` to us carrying `l4` as `nh`.
    fn frame(src: &str, nh: IpProtocol, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; L4 + l4.len()];
        f[12] = 0x86;
        f[13] = 0xdd;
        Ipv6Repr {
            src_addr: src.parse().unwrap(),
            dst_addr: US.parse().unwrap(),
            next_header: nh,
            payload_len: l4.len(),
            hop_limit: 64,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[L3..]));
        f[L4..].copy_from_slice(l4);
        f
    }

    /// An ICMPv6 destination unreachable (`code`) quoting the probe to TGT:`port`
    /// made with `c`.
    fn unreachable(c: &Cookies, port: u16, code: u8) -> Vec<u8> {
        let s = set();
        let m = s.module_for(Protocol::Udp).unwrap();
        let p = m.probe(TGT.parse().unwrap(), port, c);
        let probe = s.build(&p).unwrap();
        let mut icmp = vec![1, code, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&probe[L3..]);
        frame(TGT, IpProtocol::Icmpv6, &icmp)
    }

    fn state(f: &[u8], c: &Cookies) -> Option<(PortState, Reason, u16)> {
        match set().classify(f, c) {
            Classified::Reply(v) => Some((v.state, v.reason, v.port)),
            _ => None,
        }
    }

    #[test]
    fn icmpv6_port_unreachable_is_closed_other_codes_filtered_answers_open() {
        let c = Cookies::new(31);
        assert_eq!(
            state(&unreachable(&c, 9999, 4), &c),
            Some((PortState::Closed, Reason::PortUnreachable, 9999))
        );
        for code in [0u8, 1, 3] {
            assert_eq!(
                state(&unreachable(&c, 161, code), &c),
                Some((PortState::Filtered, Reason::IcmpUnreachable, 161)),
                "code {code}"
            );
        }
        // A quote whose flow label is not the cookie's: not our probe.
        let mut forged = unreachable(&c, 9999, 4);
        forged[L4 + 8 + 3] ^= 1;
        assert_eq!(set().classify(&forged, &c), Classified::Invalid);
        // Another scan's probe (other cookie key): invalid.
        let other = unreachable(&Cookies::new(32), 9999, 4);
        assert_eq!(set().classify(&other, &c), Classified::Invalid);
        // A datagram back to the probe's source port: open.
        let k = c.cookie(TGT.parse().unwrap(), 53, Protocol::Udp);
        let mut udp = [0u8; 12];
        udp[0..2].copy_from_slice(&53u16.to_be_bytes());
        udp[2..4].copy_from_slice(&k.sport.to_be_bytes());
        udp[4..6].copy_from_slice(&12u16.to_be_bytes());
        let f = frame(TGT, IpProtocol::Udp, &udp);
        assert_eq!(
            state(&f, &c),
            Some((PortState::Open, Reason::UdpResponse, 53))
        );
        // The IPv4 module does not claim it.
        let v4 = ProbeSet::of(vec![Arc::new(UdpV4::new(&params()))]);
        assert_eq!(v4.classify(&f, &c), Classified::Ignored);
    }
}
