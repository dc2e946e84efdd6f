//! The pre-built IPv6 frame a module patches per probe: Ethernet + IPv6 (no
//! extension headers) + TCP or UDP, variable fields zero, with the folded
//! checksum base that makes the per-probe patch an RFC 1624 delta (IPv6 has no
//! header checksum). The IPv6 counterpart of [`super::ProbeTemplate`].
//!
//! Cookies: the TCP sequence number (and the acknowledgment number of segments
//! with ACK) as over IPv4; UDP probes carry the cookie's low 16 bits in the flow
//! label, where IPv4 has them in the identification, so an ICMPv6 error quoting
//! the datagram can be validated (the quote holds the whole IPv6 header).
//!
//! Owns the frame layout and the patch arithmetic; never decides which template a
//! probe uses (its module does).

use super::{FrameParams, Probe};
use crate::wire::{
    self, checksum, EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv6Packet, Ipv6Repr,
    TcpFlags, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use prtip_store::event::Protocol;
use std::net::{IpAddr, Ipv6Addr};

/// Offsets inside an Ethernet + IPv6 (no extension headers) frame.
const L3: usize = wire::ethernet::HEADER_LEN;
const L4: usize = L3 + wire::ipv6::HEADER_LEN;
/// The destination address (bytes 24..40 of the IPv6 header).
const DST: usize = L3 + 24;

/// A pre-built IPv6 probe frame (see the module docs).
#[derive(Clone, Debug)]
pub struct ProbeTemplateV6 {
    bytes: Vec<u8>,
    proto: Protocol,
    /// Folded one's-complement sum of the transport segment and pseudo-header
    /// with the destination, ports, sequence and acknowledgment numbers zero.
    l4_base: u16,
    /// TCP: the acknowledgment number carries the cookie too (probes with ACK).
    ack_cookie: bool,
    src: Ipv6Addr,
}

impl ProbeTemplateV6 {
    /// A TCP segment with `flags` (window 1024, the MSS option when given) from
    /// `src` with `p`'s MACs and hop limit (`p.ttl`; `p.src_ip` is not used).
    pub fn tcp(p: &FrameParams, src: Ipv6Addr, flags: u8, mss: Option<u16>) -> ProbeTemplateV6 {
        let tcp = TcpRepr {
            src_port: 0,
            dst_port: 0,
            seq_number: 0,
            ack_number: 0,
            flags: TcpFlags(flags),
            window_len: 1024,
            max_seg_size: mss,
        };
        let l4_len = tcp.header_len();
        let mut bytes = Self::l2l3(p, src, IpProtocol::Tcp, l4_len);
        tcp.emit(&mut TcpPacket::new_unchecked(&mut bytes[L4..]));
        let mut t = Self::finish(bytes, Protocol::Tcp, src);
        t.ack_cookie = flags & TcpFlags::ACK != 0;
        t
    }

    /// A UDP datagram carrying `payload` from `src` (as [`ProbeTemplateV6::tcp`]).
    pub fn udp(p: &FrameParams, src: Ipv6Addr, payload: &[u8]) -> ProbeTemplateV6 {
        let l4_len = wire::udp::HEADER_LEN + payload.len();
        let mut bytes = Self::l2l3(p, src, IpProtocol::Udp, l4_len);
        let mut pkt = UdpPacket::new_unchecked(&mut bytes[L4..]);
        UdpRepr {
            src_port: 0,
            dst_port: 0,
            payload_len: payload.len(),
        }
        .emit(&mut pkt);
        pkt.payload_mut().copy_from_slice(payload);
        Self::finish(bytes, Protocol::Udp, src)
    }

    fn l2l3(p: &FrameParams, src: Ipv6Addr, proto: IpProtocol, l4_len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; L4 + l4_len];
        EthernetRepr {
            src_addr: p.src_mac,
            dst_addr: p.dst_mac,
            ethertype: EtherType::Ipv6,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
        Ipv6Repr {
            src_addr: src,
            dst_addr: Ipv6Addr::UNSPECIFIED,
            next_header: proto,
            payload_len: l4_len,
            hop_limit: p.ttl,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut bytes[L3..]));
        bytes
    }

    fn finish(mut bytes: Vec<u8>, proto: Protocol, src: Ipv6Addr) -> ProbeTemplateV6 {
        let (num, off) = match proto {
            Protocol::Tcp => (6, wire::tcp::CHECKSUM_OFFSET),
            Protocol::Udp => (17, wire::udp::CHECKSUM_OFFSET),
            Protocol::Host => unreachable!("TCP/UDP templates only"),
        };
        bytes[L4 + off] = 0;
        bytes[L4 + off + 1] = 0;
        let l4_len = (bytes.len() - L4) as u32;
        let ph = checksum::pseudo_header_v6(src, Ipv6Addr::UNSPECIFIED, num, l4_len);
        let l4_base = checksum::fold(
            checksum::fold(checksum::sum(&bytes[L4..])) as u32 + checksum::fold(ph) as u32,
        );
        ProbeTemplateV6 {
            bytes,
            proto,
            l4_base,
            ack_cookie: false,
            src,
        }
    }

    /// The template frame (variable fields zero).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Our source address.
    pub fn src(&self) -> Ipv6Addr {
        self.src
    }

    /// Write `probe` into `frame`, which holds [`ProbeTemplateV6::bytes`] or a
    /// frame patched from it earlier (every variable field is rewritten).
    ///
    /// # Panics
    /// If `frame` is shorter than the template.
    #[inline]
    pub fn patch(&self, frame: &mut [u8], probe: &Probe) {
        let IpAddr::V6(dst6) = probe.dst else {
            debug_assert!(false, "an IPv6 template given {probe:?}");
            return;
        };
        let frame = &mut frame[..self.bytes.len()];
        let dst = dst6.octets();
        frame[DST..DST + 16].copy_from_slice(&dst);
        let mut added =
            checksum::fold(checksum::sum(&dst)) as u32 + probe.sport as u32 + probe.dport as u32;
        let (l3, l4) = frame.split_at_mut(L4);
        l4[0..2].copy_from_slice(&probe.sport.to_be_bytes());
        l4[2..4].copy_from_slice(&probe.dport.to_be_bytes());
        let seq = (probe.seq >> 16) + (probe.seq & 0xffff);
        match self.proto {
            Protocol::Tcp => {
                l4[wire::tcp::SEQ_OFFSET..wire::tcp::SEQ_OFFSET + 4]
                    .copy_from_slice(&probe.seq.to_be_bytes());
                added += seq;
                if self.ack_cookie {
                    l4[wire::tcp::ACK_OFFSET..wire::tcp::ACK_OFFSET + 4]
                        .copy_from_slice(&probe.seq.to_be_bytes());
                    added += seq;
                }
                let c = checksum::patch_from_zero(self.l4_base, added);
                l4[wire::tcp::CHECKSUM_OFFSET..wire::tcp::CHECKSUM_OFFSET + 2]
                    .copy_from_slice(&c.to_be_bytes());
            }
            Protocol::Udp => {
                Ipv6Packet::new_unchecked(&mut l3[L3..]).set_ver_tc_flow(0, probe.seq & 0xffff);
                let c = checksum::patch_from_zero(self.l4_base, added);
                let c = if c == 0 { 0xffff } else { c };
                l4[wire::udp::CHECKSUM_OFFSET..wire::udp::CHECKSUM_OFFSET + 2]
                    .copy_from_slice(&c.to_be_bytes());
            }
            Protocol::Host => unreachable!("TCP/UDP templates only"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tests::params;

    const US: &str = "2001:db8:0:1::1";

    fn probe(dst: &str, dport: u16, sport: u16, seq: u32, proto: Protocol) -> Probe {
        Probe {
            dst: dst.parse().unwrap(),
            dport,
            sport,
            seq,
            proto,
        }
    }

    #[test]
    fn udp_probe_carries_the_cookie_in_the_flow_label_and_a_valid_checksum() {
        let us: Ipv6Addr = US.parse().unwrap();
        let t = ProbeTemplateV6::udp(&params(), us, b"abc");
        let mut f = t.bytes().to_vec();
        for p in [
            probe("2001:db8:100::9", 53, 41000, 0x1234_abcd, Protocol::Udp),
            probe("2001:db8:100::ffe", 65535, 57343, u32::MAX, Protocol::Udp),
            probe("2001:db8::", 0, 0, 0, Protocol::Udp),
        ] {
            t.patch(&mut f, &p);
            assert_eq!(f.len(), 14 + 40 + 8 + 3);
            let ip = Ipv6Packet::new_checked(&f[L3..]).unwrap();
            assert_eq!(ip.flow_label(), p.seq & 0xffff);
            assert_eq!((ip.version(), ip.traffic_class()), (6, 0));
            assert_eq!(IpAddr::V6(ip.dst_addr()), p.dst);
            assert!(checksum::verify_l4(us.into(), p.dst, 17, ip.payload()));
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            assert_eq!((udp.src_port(), udp.dst_port()), (p.sport, p.dport));
            assert_eq!(udp.payload(), b"abc");
        }
    }

    #[test]
    fn tcp_probe_with_ack_carries_the_cookie_twice() {
        let us: Ipv6Addr = US.parse().unwrap();
        let t = ProbeTemplateV6::tcp(&params(), us, TcpFlags::ACK, None);
        let p = probe("2001:db8:100::3", 443, 45000, 0xdead_beef, Protocol::Tcp);
        let mut f = t.bytes().to_vec();
        t.patch(&mut f, &p);
        let ip = Ipv6Packet::new_checked(&f[L3..]).unwrap();
        assert_eq!(ip.flow_label(), 0);
        assert!(checksum::verify_l4(us.into(), p.dst, 6, ip.payload()));
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((tcp.seq_number(), tcp.ack_number()), (p.seq, p.seq));
        assert_eq!(tcp.flags(), TcpFlags(TcpFlags::ACK));
        assert_eq!(f.len(), 14 + 40 + 20);
    }
}
