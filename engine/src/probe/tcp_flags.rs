//! nmap's other TCP scans over IPv4 and IPv6 (`-sF -sN -sX -sA -sW -sM`): one segment
//! without SYN, whose answer (a reset or nothing) gives the state by nmap's rules:
//!
//! | scan | flags | RST | silence | ICMP unreachable 1,2,3,9,10,13 |
//! |------|-------|-----|---------|---------------------------------|
//! | FIN, NULL, Xmas, Maimon | FIN / none / FIN+PSH+URG / FIN+ACK | closed | open\|filtered | filtered |
//! | ACK | ACK | unfiltered | filtered | filtered |
//! | Window | ACK | open if its window is non-zero, else closed | filtered | filtered |
//!
//! Cookies, as for SYN: the sequence number carries the cookie, and so does the
//! acknowledgment number of probes with ACK set. A reset answering a segment with
//! ACK has that segment's acknowledgment number as its sequence number; one
//! answering a segment without ACK has sequence 0 and acknowledges
//! `seq + len (+1 for FIN)` (RFC 793, "Reset Generation"). Either is checked
//! against the cookie, so a forged or stray reset is invalid.

use super::tcp_syn::syn_reply_filter;
use super::{FrameParams, Probe, ProbeModule, ProbeTemplate, ProbeTemplateV6, ReplyFilter};
use crate::classify::{Classified, Inbound, Verdict, L4};
use crate::cookie::Cookies;
use crate::wire::{IpProtocol, TcpFlags};
use prtip_store::event::{PortState, Protocol, Reason, ScanType};
use std::net::{IpAddr, Ipv6Addr};

/// Which of nmap's flag scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpFlagScan {
    /// `-sF`: FIN.
    Fin,
    /// `-sN`: no flags.
    Null,
    /// `-sX`: FIN, PSH and URG.
    Xmas,
    /// `-sA`: ACK (firewall rules: unfiltered or filtered).
    Ack,
    /// `-sW`: ACK, the reset's window tells open from closed.
    Window,
    /// `-sM`: FIN and ACK (Uriel Maimon's).
    Maimon,
}

impl TcpFlagScan {
    /// The flag scan a scan type runs (`None` for `-sS`, `-sT`, `-sU`, `-sn`).
    pub fn of(t: ScanType) -> Option<TcpFlagScan> {
        Some(match t {
            ScanType::Fin => TcpFlagScan::Fin,
            ScanType::Null => TcpFlagScan::Null,
            ScanType::Xmas => TcpFlagScan::Xmas,
            ScanType::Ack => TcpFlagScan::Ack,
            ScanType::Window => TcpFlagScan::Window,
            ScanType::Maimon => TcpFlagScan::Maimon,
            ScanType::Syn | ScanType::Connect | ScanType::Udp | ScanType::Ping => return None,
        })
    }

    /// The TCP flags of its probes.
    pub fn flags(self) -> u8 {
        match self {
            TcpFlagScan::Fin => TcpFlags::FIN,
            TcpFlagScan::Null => 0,
            TcpFlagScan::Xmas => TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG,
            TcpFlagScan::Ack | TcpFlagScan::Window => TcpFlags::ACK,
            TcpFlagScan::Maimon => TcpFlags::FIN | TcpFlags::ACK,
        }
    }

    /// The module's short name.
    pub fn name(self) -> &'static str {
        match self {
            TcpFlagScan::Fin => "tcp_fin",
            TcpFlagScan::Null => "tcp_null",
            TcpFlagScan::Xmas => "tcp_xmas",
            TcpFlagScan::Ack => "tcp_ack",
            TcpFlagScan::Window => "tcp_window",
            TcpFlagScan::Maimon => "tcp_maimon",
        }
    }

    /// The state a reset with `window` gives.
    pub fn on_reset(self, window: u16) -> PortState {
        match self {
            TcpFlagScan::Fin | TcpFlagScan::Null | TcpFlagScan::Xmas | TcpFlagScan::Maimon => {
                PortState::Closed
            }
            TcpFlagScan::Ack => PortState::Unfiltered,
            TcpFlagScan::Window if window != 0 => PortState::Open,
            TcpFlagScan::Window => PortState::Closed,
        }
    }

    /// The state of a probe nothing answered.
    pub fn on_silence(self) -> PortState {
        match self {
            TcpFlagScan::Ack | TcpFlagScan::Window => PortState::Filtered,
            _ => PortState::OpenFiltered,
        }
    }
}

/// ICMP destination-unreachable codes nmap reads as "filtered" for these scans
/// (network/host/protocol unreachable, the prohibited ones). Every ICMPv6
/// destination-unreachable code (no route, prohibited, beyond scope, address or
/// port unreachable, policy, reject route) means filtered over IPv6.
pub const FILTERED_ICMP_CODES: [u8; 6] = [1, 2, 3, 9, 10, 13];

/// The flag-scan module for IPv4 probes from one address.
#[derive(Clone, Debug)]
pub struct TcpFlagsV4 {
    scan: TcpFlagScan,
    template: ProbeTemplate,
    our_addr: IpAddr,
}

impl TcpFlagsV4 {
    /// The `scan` module for probes leaving with `p` (window 1024, no options).
    pub fn new(p: &FrameParams, scan: TcpFlagScan) -> TcpFlagsV4 {
        TcpFlagsV4 {
            scan,
            template: ProbeTemplate::tcp(p, scan.flags(), None),
            our_addr: p.src_ip.into(),
        }
    }

    /// Which scan it is.
    pub fn scan(&self) -> TcpFlagScan {
        self.scan
    }
}

/// The flag-scan module for IPv6 probes from one address: the probes and rules
/// of [`TcpFlagsV4`] in an Ethernet + IPv6 frame ([`ProbeTemplateV6`]).
#[derive(Clone, Debug)]
pub struct TcpFlagsV6 {
    scan: TcpFlagScan,
    template: ProbeTemplateV6,
}

impl TcpFlagsV6 {
    /// The `scan` module for probes from `src` with `p`'s MACs and hop limit
    /// (window 1024, no options; `p.src_ip` is not used).
    pub fn new(p: &FrameParams, src: Ipv6Addr, scan: TcpFlagScan) -> TcpFlagsV6 {
        TcpFlagsV6 {
            scan,
            template: ProbeTemplateV6::tcp(p, src, scan.flags(), None),
        }
    }

    /// Which scan it is.
    pub fn scan(&self) -> TcpFlagScan {
        self.scan
    }
}

/// Whether a reset from `addr`:`port` to `our_port` with `seq`/`ack` answers
/// our `scan` probe (see the module docs).
fn reset_is_ours(
    scan: TcpFlagScan,
    cookies: &Cookies,
    addr: IpAddr,
    port: u16,
    our_port: u16,
    seq: u32,
    ack: u32,
) -> bool {
    let c = cookies.cookie(addr, port, Protocol::Tcp);
    let flags = scan.flags();
    c.sport == our_port
        && if flags & TcpFlags::ACK != 0 {
            seq == c.seq
        } else {
            ack == c.seq.wrapping_add(u32::from(flags & TcpFlags::FIN != 0))
        }
}

/// nmap's rules for `scan` (table in the module docs) for a parsed reply of
/// either family, after the cookie check.
fn classify_flag_reply(scan: TcpFlagScan, r: &Inbound<'_>, cookies: &Cookies) -> Classified {
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
            if !tcp.flags().has(TcpFlags::RST) {
                // Only resets answer these probes; anything else is not ours.
                return Classified::Ignored;
            }
            if !reset_is_ours(
                scan,
                cookies,
                r.src,
                tcp.src_port(),
                tcp.dst_port(),
                tcp.seq_number(),
                tcp.ack_number(),
            ) {
                return Classified::Invalid;
            }
            let state = scan.on_reset(tcp.window_len());
            verdict(r.src, tcp.src_port(), state, Reason::Reset, 0)
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
            if r.src.is_ipv4() && !FILTERED_ICMP_CODES.contains(code) {
                return Classified::Ignored;
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

impl ProbeModule for TcpFlagsV4 {
    fn name(&self) -> &'static str {
        self.scan.name()
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
        classify_flag_reply(self.scan, r, cookies)
    }
    fn silence(&self) -> PortState {
        self.scan.on_silence()
    }
}

impl ProbeModule for TcpFlagsV6 {
    fn name(&self) -> &'static str {
        self.scan.name()
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
        classify_flag_reply(self.scan, r, cookies)
    }
    fn silence(&self) -> PortState {
        self.scan.on_silence()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{tests::params, ProbeSet};
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    const TGT: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 3);

    /// A reply frame written out byte by byte: Ethernet, IPv4 (TTL 61) from TGT
    /// to 198.18.0.1, then the 20-byte TCP header given.
    fn frame(tcp: [u8; 20]) -> Vec<u8> {
        let mut f = vec![
            // Ethernet: dst, src, IPv4.
            2, 0x70, 0x72, 0x74, 0, 1, 2, 0x70, 0x72, 0x74, 0, 2, 0x08, 0x00,
            // IPv4: v4 ihl 5, tos, len 40, id 1, DF, ttl 61, tcp, csum (unchecked).
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 61, 6, 0, 0, 198, 19, 2, 3, // src
            198, 18, 0, 1, // dst
        ];
        f.extend_from_slice(&tcp);
        f
    }

    /// A TCP header from `sport` to `dport` with `seq`, `ack`, `flags`, `window`.
    fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, window: u16) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0..2].copy_from_slice(&sport.to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        h[4..8].copy_from_slice(&seq.to_be_bytes());
        h[8..12].copy_from_slice(&ack.to_be_bytes());
        h[12] = 5 << 4;
        h[13] = flags;
        h[14..16].copy_from_slice(&window.to_be_bytes());
        h
    }

    fn set(scan: TcpFlagScan) -> ProbeSet {
        ProbeSet::of(vec![Arc::new(TcpFlagsV4::new(&params(), scan))])
    }

    fn state(scan: TcpFlagScan, f: &[u8], c: &Cookies) -> Option<(PortState, Reason)> {
        match set(scan).classify(f, c) {
            Classified::Reply(v) => Some((v.state, v.reason)),
            _ => None,
        }
    }

    #[test]
    fn probes_carry_the_flags_and_the_cookie() {
        let c = Cookies::new(5);
        for scan in [
            TcpFlagScan::Fin,
            TcpFlagScan::Null,
            TcpFlagScan::Xmas,
            TcpFlagScan::Ack,
            TcpFlagScan::Window,
            TcpFlagScan::Maimon,
        ] {
            let s = set(scan);
            let m = s.module_for(Protocol::Tcp).unwrap();
            let p = m.probe(TGT.into(), 80, &c);
            let f = s.build(&p).unwrap();
            assert_eq!(f.len(), 14 + 20 + 20, "{scan:?}: no options");
            let ip = crate::wire::Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert!(ip.verify_checksum());
            let t = crate::wire::TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(t.verify_checksum(ip.src_addr().into(), ip.dst_addr().into()));
            assert_eq!(t.flags().0, scan.flags(), "{scan:?}");
            assert_eq!(t.seq_number(), p.seq);
            let want_ack = if scan.flags() & TcpFlags::ACK != 0 {
                p.seq
            } else {
                0
            };
            assert_eq!(t.ack_number(), want_ack, "{scan:?}");
            assert_eq!((t.src_port(), t.dst_port()), (p.sport, 80));
        }
        assert_eq!(TcpFlagScan::Xmas.flags(), 0x29);
        assert_eq!(TcpFlagScan::Maimon.flags(), 0x11);
        assert_eq!(TcpFlagScan::Null.flags(), 0);
    }

    #[test]
    fn resets_to_fin_null_xmas_acknowledge_seq_plus_fin() {
        let c = Cookies::new(9);
        let k = c.cookie(TGT.into(), 22, Protocol::Tcp);
        let rst_ack = TcpFlags::RST | TcpFlags::ACK;
        // FIN and Xmas: ack = seq + 1; NULL: ack = seq.
        for (scan, delta) in [
            (TcpFlagScan::Fin, 1),
            (TcpFlagScan::Xmas, 1),
            (TcpFlagScan::Null, 0),
        ] {
            let good = frame(tcp(22, k.sport, 0, k.seq.wrapping_add(delta), rst_ack, 0));
            assert_eq!(
                state(scan, &good, &c),
                Some((PortState::Closed, Reason::Reset)),
                "{scan:?}"
            );
            let off = frame(tcp(
                22,
                k.sport,
                0,
                k.seq.wrapping_add(delta + 1),
                rst_ack,
                0,
            ));
            assert_eq!(
                set(scan).classify(&off, &c),
                Classified::Invalid,
                "{scan:?}"
            );
            let port = frame(tcp(
                22,
                k.sport ^ 1,
                0,
                k.seq.wrapping_add(delta),
                rst_ack,
                0,
            ));
            assert_eq!(
                set(scan).classify(&port, &c),
                Classified::Invalid,
                "{scan:?}"
            );
        }
        // A SYN-ACK is no answer to a FIN probe.
        let synack = frame(tcp(22, k.sport, 0, k.seq.wrapping_add(1), 0x12, 0));
        assert_eq!(
            set(TcpFlagScan::Fin).classify(&synack, &c),
            Classified::Ignored
        );
    }

    #[test]
    fn resets_to_ack_probes_echo_our_ack_as_their_seq() {
        let c = Cookies::new(9);
        let k = c.cookie(TGT.into(), 443, Protocol::Tcp);
        let rst = TcpFlags::RST;
        let r = |window| frame(tcp(443, k.sport, k.seq, 0, rst, window));
        assert_eq!(
            state(TcpFlagScan::Ack, &r(0), &c),
            Some((PortState::Unfiltered, Reason::Reset))
        );
        assert_eq!(
            state(TcpFlagScan::Maimon, &r(0), &c),
            Some((PortState::Closed, Reason::Reset))
        );
        assert_eq!(
            state(TcpFlagScan::Window, &r(0), &c),
            Some((PortState::Closed, Reason::Reset))
        );
        assert_eq!(
            state(TcpFlagScan::Window, &r(8192), &c),
            Some((PortState::Open, Reason::Reset))
        );
        let wrong = frame(tcp(443, k.sport, k.seq.wrapping_add(1), 0, rst, 0));
        for scan in [TcpFlagScan::Ack, TcpFlagScan::Window, TcpFlagScan::Maimon] {
            assert_eq!(
                set(scan).classify(&wrong, &c),
                Classified::Invalid,
                "{scan:?}"
            );
        }
    }

    #[test]
    fn silence_follows_nmap() {
        assert_eq!(
            set(TcpFlagScan::Fin).silence(Protocol::Tcp),
            PortState::OpenFiltered
        );
        assert_eq!(
            set(TcpFlagScan::Null).silence(Protocol::Tcp),
            PortState::OpenFiltered
        );
        assert_eq!(
            set(TcpFlagScan::Xmas).silence(Protocol::Tcp),
            PortState::OpenFiltered
        );
        assert_eq!(
            set(TcpFlagScan::Maimon).silence(Protocol::Tcp),
            PortState::OpenFiltered
        );
        assert_eq!(
            set(TcpFlagScan::Ack).silence(Protocol::Tcp),
            PortState::Filtered
        );
        assert_eq!(
            set(TcpFlagScan::Window).silence(Protocol::Tcp),
            PortState::Filtered
        );
        // Readers project silence from the log with the store's one rule: it
        // agrees with every module's.
        for t in [
            ScanType::Fin,
            ScanType::Null,
            ScanType::Xmas,
            ScanType::Ack,
            ScanType::Window,
            ScanType::Maimon,
        ] {
            let scan = TcpFlagScan::of(t).unwrap();
            assert_eq!(
                set(scan).silence(Protocol::Tcp),
                t.silence(Protocol::Tcp),
                "{t:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests_v6 {
    use super::*;
    use crate::probe::tests::params;
    use crate::probe::ProbeSet;
    use crate::wire::{self, Ipv6Packet, Ipv6Repr, TcpPacket, TcpRepr};
    use std::sync::Arc;

    const US: &str = "2001:db8:0:1::1";
    const TGT: &str = "2001:db8:100::9";
    const L3: usize = wire::ethernet::HEADER_LEN;
    const L4: usize = L3 + wire::ipv6::HEADER_LEN;

    fn set(scan: TcpFlagScan) -> ProbeSet {
        ProbeSet::of(vec![Arc::new(TcpFlagsV6::new(
            &params(),
            US.parse().unwrap(),
            scan,
        ))])
    }

    /// A reset from TGT:`port` to `dport` with `seq`/`ack`/`window`, over IPv6.
    fn reset(port: u16, dport: u16, seq: u32, ack: u32, window: u16) -> Vec<u8> {
        let mut f = vec![0u8; L4 + 20];
        f[12] = 0x86;
        f[13] = 0xdd;
        Ipv6Repr {
            src_addr: TGT.parse().unwrap(),
            dst_addr: US.parse().unwrap(),
            next_header: IpProtocol::Tcp,
            payload_len: 20,
            hop_limit: 64,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[L3..]));
        TcpRepr {
            src_port: port,
            dst_port: dport,
            seq_number: seq,
            ack_number: ack,
            flags: TcpFlags(TcpFlags::RST | TcpFlags::ACK),
            window_len: window,
            max_seg_size: None,
        }
        .emit(&mut TcpPacket::new_unchecked(&mut f[L4..]));
        f
    }

    #[test]
    fn ipv6_probes_and_resets_follow_the_ipv4_rules() {
        let c = Cookies::new(41);
        let tgt: IpAddr = TGT.parse().unwrap();
        let k = c.cookie(tgt, 22, Protocol::Tcp);
        for (scan, rst, want) in [
            (
                TcpFlagScan::Fin,
                reset(22, k.sport, 0, k.seq.wrapping_add(1), 0),
                PortState::Closed,
            ),
            (
                TcpFlagScan::Null,
                reset(22, k.sport, 0, k.seq, 0),
                PortState::Closed,
            ),
            (
                TcpFlagScan::Ack,
                reset(22, k.sport, k.seq, 0, 0),
                PortState::Unfiltered,
            ),
            (
                TcpFlagScan::Window,
                reset(22, k.sport, k.seq, 0, 512),
                PortState::Open,
            ),
        ] {
            let s = set(scan);
            let p = s.module_for(Protocol::Tcp).unwrap().probe(tgt, 22, &c);
            let f = s.build(&p).unwrap();
            assert_eq!(f.len(), L4 + 20, "{scan:?}");
            let t = TcpPacket::new_checked(&f[L4..]).unwrap();
            assert_eq!(t.flags().0, scan.flags(), "{scan:?}");
            match s.classify(&rst, &c) {
                Classified::Reply(v) => {
                    assert_eq!((v.state, v.port, v.addr), (want, 22, tgt), "{scan:?}")
                }
                other => panic!("{scan:?}: {other:?}"),
            }
            // Off by one in the echoed cookie: invalid.
            let mut bad = rst.clone();
            bad[L4 + 7] ^= 1;
            bad[L4 + 11] ^= 1;
            assert_eq!(s.classify(&bad, &c), Classified::Invalid, "{scan:?}");
        }
    }
}
