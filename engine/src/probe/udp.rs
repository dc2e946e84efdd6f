//! UDP over IPv4 on the raw path (ports given as `U:` in a SYN scan): a datagram
//! with a payload per destination port (empty by default); a UDP answer → open,
//! ICMP port unreachable → closed, another unreachable → filtered, silence →
//! open|filtered. The IPv4 identification carries the cookie's low 16 bits, so an
//! ICMP quote can be validated.

use super::{FrameParams, Probe, ProbeModule, ProbeTemplate, ReplyFilter};
use crate::classify::{Classified, Inbound, Verdict, L4};
use crate::cookie::{Cookies, SPORT_BASE, SPORT_SPAN};
use crate::wire::{icmp, IpProtocol};
use prtip_store::event::{PortState, Protocol, Reason};
use std::net::IpAddr;

/// The UDP module for IPv4 probes from one address.
#[derive(Clone, Debug)]
pub struct UdpV4 {
    params: FrameParams,
    /// Template 0: the empty payload; 1 + i: `by_port[i]`.
    default: ProbeTemplate,
    by_port: Vec<(u16, ProbeTemplate)>,
}

impl UdpV4 {
    /// The module for probes leaving with `p`, empty payloads.
    pub fn new(p: &FrameParams) -> UdpV4 {
        UdpV4 {
            params: *p,
            default: ProbeTemplate::udp(p, &[]),
            by_port: Vec::new(),
        }
    }

    /// Send `payload` to `port` (replacing an earlier one).
    pub fn set_payload(&mut self, port: u16, payload: &[u8]) {
        let t = ProbeTemplate::udp(&self.params, payload);
        match self.by_port.binary_search_by_key(&port, |(k, _)| *k) {
            Ok(i) => self.by_port[i].1 = t,
            Err(i) => self.by_port.insert(i, (port, t)),
        }
    }

    fn get(&self, t: usize) -> &ProbeTemplate {
        match t {
            0 => &self.default,
            i => &self.by_port[i - 1].1,
        }
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
        1 + self.by_port.len()
    }
    fn template(&self, t: usize) -> &[u8] {
        self.get(t).bytes()
    }
    #[inline]
    fn template_of(&self, probe: &Probe) -> usize {
        match self.by_port.binary_search_by_key(&probe.dport, |(k, _)| *k) {
            Ok(i) => 1 + i,
            Err(_) => 0,
        }
    }
    #[inline]
    fn patch(&self, t: usize, frame: &mut [u8], probe: &Probe) {
        self.get(t).patch(frame, probe)
    }
    fn reply_filter(&self) -> ReplyFilter {
        ReplyFilter {
            our_addr: self.params.src_ip.into(),
            ports: (SPORT_BASE, SPORT_BASE + (SPORT_SPAN - 1)),
            tcp: false,
            udp: true,
            icmp_errors: true,
            queries: false,
            link: false,
        }
    }
    fn classify(&self, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
        if !r.src.is_ipv4() {
            return Classified::Ignored;
        }
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
                let (state, reason) = if *code == icmp::CODE_PORT_UNREACHABLE {
                    (PortState::Closed, Reason::PortUnreachable)
                } else {
                    (PortState::Filtered, Reason::IcmpUnreachable)
                };
                verdict(quote.dst, quote.dst_port, state, reason, *code)
            }
            _ => Classified::Ignored,
        }
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
