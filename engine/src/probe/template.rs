//! The pre-built IPv4 frame a module patches per probe: Ethernet + IPv4 (no
//! options) + TCP or UDP, variable fields zero, with the folded checksum bases
//! that make the per-probe patch an RFC 1624 delta.
//!
//! Owns the frame layout and the patch arithmetic; never decides which template a
//! probe uses (its module does).

use super::{FrameParams, Probe};
use crate::wire::{
    self, checksum, EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpFlags, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use prtip_store::event::Protocol;
use std::net::{IpAddr, Ipv4Addr};

/// Offsets inside an Ethernet + IPv4 (no options) frame.
const L3: usize = wire::ethernet::HEADER_LEN;
const L4: usize = L3 + wire::ipv4::HEADER_LEN;

/// A pre-built frame (Ethernet+IPv4+TCP/UDP) that a backend copies once into its
/// buffers and then patches per probe (addresses, ports, seq, checksums by delta).
///
/// The template is built with the variable fields (destination address, IP
/// identification, ports, sequence number) set to zero; `ip_base`/`l4_base` hold the
/// folded one's-complement sums of that frame, so patching is RFC 1624 eqn. 3 with the
/// old words zero: `check = !(base + new words)`.
#[derive(Clone, Debug)]
pub struct ProbeTemplate {
    bytes: Vec<u8>,
    proto: Protocol,
    ip_base: u16,
    l4_base: u16,
    /// TCP: the acknowledgment number carries the cookie too (probes with ACK set).
    ack_cookie: bool,
}

impl ProbeTemplate {
    /// A TCP SYN (window 1024, MSS 1460 option, DF clear) from `p`.
    pub fn tcp_syn(p: &FrameParams) -> ProbeTemplate {
        Self::tcp(p, TcpFlags::SYN, Some(1460))
    }

    /// A TCP segment with `flags` (window 1024, the MSS option when given, DF
    /// clear) from `p`. When `flags` has ACK, the acknowledgment number carries the
    /// cookie as the sequence number does (a reset answering it echoes it in its
    /// sequence number, RFC 793 p. 36).
    pub fn tcp(p: &FrameParams, flags: u8, mss: Option<u16>) -> ProbeTemplate {
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
        let mut bytes = Self::l2l3(p, IpProtocol::Tcp, l4_len);
        tcp.emit(&mut TcpPacket::new_unchecked(&mut bytes[L4..]));
        let mut t = Self::finish(bytes, Protocol::Tcp, p.src_ip);
        t.ack_cookie = flags & TcpFlags::ACK != 0;
        t
    }

    /// A UDP datagram carrying `payload` from `p`.
    pub fn udp(p: &FrameParams, payload: &[u8]) -> ProbeTemplate {
        let udp = UdpRepr {
            src_port: 0,
            dst_port: 0,
            payload_len: payload.len(),
        };
        let l4_len = wire::udp::HEADER_LEN + payload.len();
        let mut bytes = Self::l2l3(p, IpProtocol::Udp, l4_len);
        let mut pkt = UdpPacket::new_unchecked(&mut bytes[L4..]);
        udp.emit(&mut pkt);
        pkt.payload_mut().copy_from_slice(payload);
        Self::finish(bytes, Protocol::Udp, p.src_ip)
    }

    fn l2l3(p: &FrameParams, proto: IpProtocol, l4_len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; L4 + l4_len];
        EthernetRepr {
            src_addr: p.src_mac,
            dst_addr: p.dst_mac,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
        Ipv4Repr {
            src_addr: p.src_ip,
            dst_addr: Ipv4Addr::UNSPECIFIED,
            protocol: proto,
            payload_len: l4_len,
            ttl: p.ttl,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut bytes[L3..]));
        bytes
    }

    fn finish(mut bytes: Vec<u8>, proto: Protocol, src: Ipv4Addr) -> ProbeTemplate {
        // IP checksum was filled by emit over zero dst/ident: base = !checksum.
        let ip_check = u16::from_be_bytes([
            bytes[L3 + wire::ipv4::CHECKSUM_OFFSET],
            bytes[L3 + wire::ipv4::CHECKSUM_OFFSET + 1],
        ]);
        let l4_len = (bytes.len() - L4) as u16;
        let proto_num = match proto {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Host => unreachable!("TCP/UDP templates only"),
        };
        let ph = checksum::pseudo_header_v4(src, Ipv4Addr::UNSPECIFIED, proto_num, l4_len);
        let l4_check_off = L4
            + match proto {
                Protocol::Tcp => wire::tcp::CHECKSUM_OFFSET,
                Protocol::Udp => wire::udp::CHECKSUM_OFFSET,
                Protocol::Host => unreachable!("TCP/UDP templates only"),
            };
        bytes[l4_check_off] = 0;
        bytes[l4_check_off + 1] = 0;
        let l4_base = checksum::fold(
            checksum::fold(checksum::sum(&bytes[L4..])) as u32 + checksum::fold(ph) as u32,
        );
        ProbeTemplate {
            bytes,
            proto,
            ip_base: !ip_check,
            l4_base,
            ack_cookie: false,
        }
    }

    /// Frame length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Whether the frame is empty (never: kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// The template frame (variable fields zero).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Protocol of the probes built from this template.
    pub fn protocol(&self) -> Protocol {
        self.proto
    }

    /// Write `probe` into `frame`, which already holds [`ProbeTemplate::bytes`]
    /// (or a frame previously patched from this template: every variable field is
    /// overwritten and the checksums are computed from the template's bases).
    ///
    /// # Panics
    /// If `frame` is shorter than the template.
    #[inline]
    pub fn patch(&self, frame: &mut [u8], probe: &Probe) {
        let IpAddr::V4(dst4) = probe.dst else {
            debug_assert!(false, "an IPv4 template given {probe:?}");
            return;
        };
        let frame = &mut frame[..self.bytes.len()];
        let dst = dst4.octets();
        let ident = probe.seq as u16;
        frame[L3 + wire::ipv4::DST_OFFSET..L3 + wire::ipv4::DST_OFFSET + 4].copy_from_slice(&dst);
        frame[L3 + wire::ipv4::IDENT_OFFSET..L3 + wire::ipv4::IDENT_OFFSET + 2]
            .copy_from_slice(&ident.to_be_bytes());
        let d = u32::from(dst4);
        let dsum = (d >> 16) + (d & 0xffff);
        let ipc = checksum::patch_from_zero(self.ip_base, dsum + ident as u32);
        frame[L3 + wire::ipv4::CHECKSUM_OFFSET..L3 + wire::ipv4::CHECKSUM_OFFSET + 2]
            .copy_from_slice(&ipc.to_be_bytes());
        let l4 = &mut frame[L4..];
        l4[0..2].copy_from_slice(&probe.sport.to_be_bytes());
        l4[2..4].copy_from_slice(&probe.dport.to_be_bytes());
        let ports = probe.sport as u32 + probe.dport as u32;
        match self.proto {
            Protocol::Tcp => {
                l4[wire::tcp::SEQ_OFFSET..wire::tcp::SEQ_OFFSET + 4]
                    .copy_from_slice(&probe.seq.to_be_bytes());
                let mut added = dsum + ports + (probe.seq >> 16) + (probe.seq & 0xffff);
                if self.ack_cookie {
                    l4[wire::tcp::ACK_OFFSET..wire::tcp::ACK_OFFSET + 4]
                        .copy_from_slice(&probe.seq.to_be_bytes());
                    added += (probe.seq >> 16) + (probe.seq & 0xffff);
                }
                let c = checksum::patch_from_zero(self.l4_base, added);
                l4[wire::tcp::CHECKSUM_OFFSET..wire::tcp::CHECKSUM_OFFSET + 2]
                    .copy_from_slice(&c.to_be_bytes());
            }
            Protocol::Udp => {
                let c = checksum::patch_from_zero(self.l4_base, dsum + ports);
                let c = if c == 0 { 0xffff } else { c };
                l4[wire::udp::CHECKSUM_OFFSET..wire::udp::CHECKSUM_OFFSET + 2]
                    .copy_from_slice(&c.to_be_bytes());
            }
            Protocol::Host => unreachable!("TCP/UDP templates only"),
        }
    }

    /// Build the frame for `probe` into a fresh buffer (tests, slow paths).
    pub fn build(&self, probe: &Probe) -> Vec<u8> {
        let mut f = self.bytes.clone();
        self.patch(&mut f, probe);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tests::params;
    use crate::wire::{
        EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags,
        TcpPacket, TcpRepr,
    };

    fn check_tcp(frame: &[u8], probe: &Probe) {
        let ip = Ipv4Packet::new_checked(&frame[L3..]).unwrap();
        assert!(ip.verify_checksum(), "ip checksum for {probe:?}");
        assert_eq!(IpAddr::V4(ip.dst_addr()), probe.dst);
        assert_eq!(ip.ident(), probe.seq as u16);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(
            tcp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
            "tcp checksum for {probe:?}"
        );
        assert_eq!(
            (tcp.src_port(), tcp.dst_port(), tcp.seq_number()),
            (probe.sport, probe.dport, probe.seq)
        );
        assert!(tcp.flags().has(TcpFlags::SYN));
    }

    #[test]
    fn patched_syn_equals_one_built_from_scratch() {
        let t = ProbeTemplate::tcp_syn(&params());
        let probe = Probe {
            dst: Ipv4Addr::new(198, 19, 0, 7).into(),
            dport: 80,
            sport: 40000,
            seq: 0xdeadbeef,
            proto: Protocol::Tcp,
        };
        let frame = t.build(&probe);
        // Built from scratch with the wire Reprs (ident = low 16 bits of seq).
        let mut want = vec![0u8; 58];
        EthernetRepr {
            src_addr: params().src_mac,
            dst_addr: params().dst_mac,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut want[..]));
        Ipv4Repr {
            src_addr: params().src_ip,
            dst_addr: Ipv4Addr::new(198, 19, 0, 7),
            protocol: IpProtocol::Tcp,
            payload_len: 24,
            ttl: 64,
            ident: 0xbeef,
            dont_frag: false,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut want[L3..]));
        let mut tcp = TcpPacket::new_unchecked(&mut want[L4..]);
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 0xdeadbeef,
            ack_number: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window_len: 1024,
            max_seg_size: Some(1460),
        }
        .emit(&mut tcp);
        tcp.fill_checksum(params().src_ip.into(), probe.dst);
        assert_eq!(frame, want);
        // And the TCP part equals the static SYN of the wire tests but for ident.
        assert_eq!(&frame[L4..], &crate::wire::tcp::tests::SYN[..]);
    }

    #[test]
    fn repatching_a_used_frame_gives_valid_checksums() {
        let t = ProbeTemplate::tcp_syn(&params());
        let mut frame = t.bytes().to_vec();
        let mut x: u32 = 12345;
        for i in 0..2000u32 {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            let probe = Probe {
                dst: Ipv4Addr::from(x ^ i.rotate_left(7)).into(),
                dport: (x >> 7) as u16,
                sport: (x >> 3) as u16 | 1,
                seq: x.rotate_left(13),
                proto: Protocol::Tcp,
            };
            t.patch(&mut frame, &probe);
            check_tcp(&frame, &probe);
        }
        // extreme values: all ones and all zeros
        for (d, p, s, q) in [(u32::MAX, u16::MAX, u16::MAX, u32::MAX), (0, 0, 0, 0)] {
            let probe = Probe {
                dst: Ipv4Addr::from(d).into(),
                dport: p,
                sport: s,
                seq: q,
                proto: Protocol::Tcp,
            };
            t.patch(&mut frame, &probe);
            check_tcp(&frame, &probe);
        }
    }
}
