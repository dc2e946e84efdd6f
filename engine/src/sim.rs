//! A simulated network: a backend whose [`Transmit`] and [`Receive`] halves live in
//! memory, so the real scan loop runs without root, sockets or a lab.
//!
//! Owns: reading each probe back off its wire frame (the frame the probe modules
//! built, parsed through the wire views), deciding what the "network" does with it
//! from a [`Network`] of [`Rule`]s — answer (open / closed / a UDP reply), stay
//! silent, drop the first N probes, answer late, answer several times, answer out
//! of order, send an ICMP unreachable quoting the probe — and handing the reply
//! frames to the receiver when they are due. Counts every probe per (address,
//! protocol, port) for the tests ([`SimHandle::sends`]). Never touches the kernel.
//!
//! A hook ([`SimHandle::on_send`]) sees the running count of probes taken and may
//! stop taking them (the sender then sees a short send, as with a full kernel
//! queue): tests pause or kill a scan at an exact probe with it.

use crate::backend::{BackendPair, Probe, ProbeSet, Receive, RxStats, Transmit, TxStats};
use crate::wire::{
    icmp, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet,
    Ipv4Repr, TcpFlags, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use prtip_store::event::Protocol;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the network does with a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// TCP: a listening port, answering as a TCP stack does: SYN-ACK to a SYN, a
    /// reset with window 512 to a segment with ACK (a stack whose resets show
    /// the window, for `-sW`), nothing to FIN/NULL/Xmas. UDP: a datagram back.
    Open,
    /// TCP: a reset (RFC 793: to a segment with ACK, `seq` = its ack and window
    /// 0; otherwise RST-ACK acknowledging `seq + SYN + FIN`). UDP: ICMP port
    /// unreachable.
    Closed,
    /// Nothing, ever.
    Silent,
    /// ICMP destination unreachable with this code, quoting the probe.
    Unreachable(u8),
}

/// How the network treats the probes one rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Target address (`None`: every address).
    pub addr: Option<IpAddr>,
    /// Target port (`None`: every port).
    pub port: Option<u16>,
    /// Protocol (`None`: both).
    pub proto: Option<Protocol>,
    /// The answer.
    pub answer: Answer,
    /// The first this many probes to a matching port are lost.
    pub drop_first: u32,
    /// Copies of each answer (2 and more: duplicates).
    pub copies: u32,
    /// Time before an answer arrives.
    pub delay: Duration,
}

impl Rule {
    /// `answer` for every probe (refine with the fields).
    pub fn new(answer: Answer) -> Rule {
        Rule {
            addr: None,
            port: None,
            proto: None,
            answer,
            drop_first: 0,
            copies: 1,
            delay: Duration::ZERO,
        }
    }
    fn matches(&self, addr: IpAddr, proto: Protocol, port: u16) -> bool {
        self.addr.is_none_or(|a| a == addr)
            && self.port.is_none_or(|p| p == port)
            && self.proto.is_none_or(|p| p == proto)
    }
}

/// A simulated network: rules tried in order (the first that matches decides;
/// silence when none does).
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// The rules.
    pub rules: Vec<Rule>,
    /// Deliver answers out of order: each is held back by up to this long, by a
    /// hash of the probe (deterministic).
    pub reorder: Duration,
    /// Source of ICMP errors (`None`: the target itself).
    pub router: Option<Ipv4Addr>,
}

type Hook = Box<dyn FnMut(u64) -> bool + Send>;

#[derive(Default)]
struct State {
    sends: HashMap<(IpAddr, Protocol, u16), u32>,
    taken: u64,
    queue: Vec<(Instant, u64, Vec<u8>)>,
    order: u64,
    hook: Option<Hook>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

/// The test's view of a simulated network while and after a scan runs.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
}

impl SimHandle {
    /// Probes taken per (address, protocol, port).
    pub fn sends(&self) -> HashMap<(IpAddr, Protocol, u16), u32> {
        self.shared.state.lock().unwrap().sends.clone()
    }
    /// Probes taken in all.
    pub fn taken(&self) -> u64 {
        self.shared.state.lock().unwrap().taken
    }
    /// Call `hook(n)` before taking the probe that would be the `n`-th (from 0);
    /// when it returns false the probe and the rest of that send are refused
    /// (the send comes back short).
    pub fn on_send(&self, hook: impl FnMut(u64) -> bool + Send + 'static) {
        self.shared.state.lock().unwrap().hook = Some(Box::new(hook));
    }
}

/// The backend pair over `net` for the frames of `probes`, and a handle on it.
pub fn pair(net: Network, probes: ProbeSet) -> (BackendPair, SimHandle) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        ready: Condvar::new(),
    });
    let tx = SimTx {
        net,
        probes: probes.clone(),
        shared: shared.clone(),
        stats: TxStats::default(),
    };
    let rx = SimRx {
        shared: shared.clone(),
        stats: RxStats::default(),
    };
    (
        BackendPair {
            tx: Box::new(tx),
            rx: Box::new(rx),
            probes,
        },
        SimHandle { shared },
    )
}

struct SimTx {
    net: Network,
    probes: ProbeSet,
    shared: Arc<Shared>,
    stats: TxStats,
}

/// A probe as read back off its frame.
struct OnWire {
    our: Ipv4Addr,
    dst: Ipv4Addr,
    proto: Protocol,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
}

fn read_back(frame: &[u8]) -> OnWire {
    let eth = EthernetFrame::new_checked(frame).expect("probe frame has an Ethernet header");
    assert_eq!(eth.ethertype(), EtherType::Ipv4, "IPv4 probes only for now");
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("probe frame has an IPv4 header");
    assert!(ip.verify_checksum(), "IPv4 checksum of a probe");
    let (proto, sport, dport, seq, ack, flags) = match ip.protocol() {
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(ip.payload()).expect("TCP header");
            assert!(
                t.verify_checksum(ip.src_addr().into(), ip.dst_addr().into()),
                "TCP checksum of a probe"
            );
            (
                Protocol::Tcp,
                t.src_port(),
                t.dst_port(),
                t.seq_number(),
                t.ack_number(),
                t.flags().0,
            )
        }
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(ip.payload()).expect("UDP header");
            assert!(
                u.verify_checksum(ip.src_addr().into(), ip.dst_addr().into()),
                "UDP checksum of a probe"
            );
            (Protocol::Udp, u.src_port(), u.dst_port(), 0, 0, 0)
        }
        p => panic!("a probe of protocol {p:?}"),
    };
    OnWire {
        our: ip.src_addr(),
        dst: ip.dst_addr(),
        proto,
        sport,
        dport,
        seq,
        ack,
        flags,
    }
}

fn ip_frame(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + l4.len()];
    EthernetRepr {
        src_addr: Default::default(),
        dst_addr: Default::default(),
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: l4.len(),
        ttl: 61,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]));
    f[34..].copy_from_slice(l4);
    f
}

/// The answer frame to the probe in `frame`.
fn answer(net: &Network, a: Answer, p: &OnWire, frame: &[u8]) -> Option<Vec<u8>> {
    let icmp_error = |code: u8| {
        let quote = &frame[14..(14 + 20 + icmp::QUOTED_L4_LEN).min(frame.len())];
        let repr = Icmpv4Repr::DstUnreachable { code, quote };
        let mut m = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut m[..]))
            .expect("sized by buffer_len");
        ip_frame(net.router.unwrap_or(p.dst), p.our, IpProtocol::Icmp, &m)
    };
    match (a, p.proto) {
        (Answer::Silent, _) | (_, Protocol::Host) => None,
        (Answer::Unreachable(code), _) => Some(icmp_error(code)),
        (Answer::Closed, Protocol::Udp) => Some(icmp_error(icmp::CODE_PORT_UNREACHABLE)),
        (Answer::Open, Protocol::Udp) => {
            let mut d = vec![0u8; 8 + 4];
            let mut u = UdpPacket::new_unchecked(&mut d[..]);
            UdpRepr {
                src_port: p.dport,
                dst_port: p.sport,
                payload_len: 4,
            }
            .emit(&mut u);
            u.payload_mut().copy_from_slice(b"pong");
            u.fill_checksum(p.dst.into(), p.our.into());
            Some(ip_frame(p.dst, p.our, IpProtocol::Udp, &d))
        }
        (Answer::Open | Answer::Closed, Protocol::Tcp) => {
            let syn = p.flags & TcpFlags::SYN != 0;
            let has_ack = p.flags & TcpFlags::ACK != 0;
            let fin = p.flags & TcpFlags::FIN != 0;
            let (flags, seq, ack, window) = match (a, syn, has_ack) {
                (Answer::Open, true, _) => (
                    TcpFlags::SYN | TcpFlags::ACK,
                    0x5eed,
                    p.seq.wrapping_add(1),
                    512,
                ),
                // A listener ignores segments with neither SYN nor ACK.
                (Answer::Open, false, false) => return None,
                (_, _, true) => (
                    TcpFlags::RST,
                    p.ack,
                    0,
                    if a == Answer::Open { 512 } else { 0 },
                ),
                (_, _, false) => {
                    let ack = p.seq.wrapping_add(u32::from(syn) + u32::from(fin));
                    (TcpFlags::RST | TcpFlags::ACK, 0, ack, 0)
                }
            };
            let repr = TcpRepr {
                src_port: p.dport,
                dst_port: p.sport,
                seq_number: seq,
                ack_number: ack,
                flags: TcpFlags(flags),
                window_len: window,
                max_seg_size: None,
            };
            let mut seg = vec![0u8; repr.header_len()];
            let mut t = TcpPacket::new_unchecked(&mut seg[..]);
            repr.emit(&mut t);
            t.fill_checksum(p.dst.into(), p.our.into());
            Some(ip_frame(p.dst, p.our, IpProtocol::Tcp, &seg))
        }
    }
}

impl Transmit for SimTx {
    fn send(&mut self, probes: &[Probe]) -> std::io::Result<usize> {
        let mut st = self.shared.state.lock().unwrap();
        let now = Instant::now();
        let mut taken = 0;
        for probe in probes {
            let n = st.taken;
            if let Some(h) = st.hook.as_mut() {
                if !h(n) {
                    break;
                }
            }
            let frame = self
                .probes
                .build(probe)
                .ok_or_else(|| crate::backend::no_module(probe))?;
            let p = read_back(&frame);
            assert_eq!(
                (IpAddr::V4(p.dst), p.dport, p.proto),
                (probe.dst, probe.dport, probe.proto),
                "the frame carries the probe"
            );
            st.taken += 1;
            taken += 1;
            self.stats.packets += 1;
            self.stats.bytes += frame.len() as u64;
            let key = (probe.dst, probe.proto, probe.dport);
            let k = st.sends.entry(key).or_insert(0);
            *k += 1;
            let attempt = *k;
            let Some(rule) = self
                .net
                .rules
                .iter()
                .find(|r| r.matches(probe.dst, probe.proto, probe.dport))
            else {
                continue;
            };
            if attempt <= rule.drop_first {
                continue;
            }
            let Some(reply) = answer(&self.net, rule.answer, &p, &frame) else {
                continue;
            };
            let jitter = if self.net.reorder.is_zero() {
                Duration::ZERO
            } else {
                let h = (probe.seq as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                Duration::from_nanos(h % self.net.reorder.as_nanos().max(1) as u64)
            };
            for _ in 0..rule.copies.max(1) {
                let order = st.order;
                st.order += 1;
                st.queue
                    .push((now + rule.delay + jitter, order, reply.clone()));
            }
        }
        self.stats.batches += 1;
        drop(st);
        self.shared.ready.notify_all();
        Ok(taken)
    }
    fn stats(&self) -> TxStats {
        self.stats
    }
}

impl Drop for SimTx {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().closed = true;
        self.shared.ready.notify_all();
    }
}

struct SimRx {
    shared: Arc<Shared>,
    stats: RxStats,
}

impl Receive for SimRx {
    fn recv(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> std::io::Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock().unwrap();
        loop {
            let now = Instant::now();
            if st.queue.iter().any(|(due, _, _)| *due <= now) {
                let (mut due, rest): (Vec<_>, Vec<_>) =
                    st.queue.drain(..).partition(|(d, _, _)| *d <= now);
                st.queue = rest;
                drop(st);
                due.sort_by_key(|(d, o, _)| (*d, *o));
                for (_, _, f) in &due {
                    self.stats.frames += 1;
                    self.stats.bytes += f.len() as u64;
                    on_frame(f);
                }
                return Ok(due.len());
            }
            if now >= deadline {
                return Ok(0);
            }
            let next = st
                .queue
                .iter()
                .map(|(d, _, _)| *d)
                .min()
                .unwrap_or(deadline)
                .min(deadline);
            st = self
                .shared
                .ready
                .wait_timeout(st, next.saturating_duration_since(now))
                .unwrap()
                .0;
        }
    }
    fn stats(&self) -> RxStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Classified;
    use crate::cookie::Cookies;
    use crate::probe::FrameParams;
    use prtip_store::event::{PortState, Reason};

    fn set() -> ProbeSet {
        ProbeSet::new(&FrameParams {
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            ..FrameParams::default()
        })
    }

    fn drain(rx: &mut dyn Receive, set: &ProbeSet, c: &Cookies) -> Vec<Classified> {
        let mut got = Vec::new();
        while rx
            .recv(Duration::from_millis(30), &mut |f| {
                got.push(set.classify(f, c))
            })
            .unwrap()
            > 0
        {}
        got
    }

    #[test]
    fn answers_are_real_frames_the_modules_classify() {
        let c = Cookies::new(9);
        let tgt: IpAddr = Ipv4Addr::new(198, 19, 0, 1).into();
        let net = Network {
            rules: vec![
                Rule {
                    port: Some(22),
                    ..Rule::new(Answer::Open)
                },
                Rule {
                    port: Some(23),
                    ..Rule::new(Answer::Closed)
                },
                Rule {
                    port: Some(24),
                    ..Rule::new(Answer::Unreachable(13))
                },
            ],
            router: Some(Ipv4Addr::new(198, 18, 0, 254)),
            ..Network::default()
        };
        let (mut pair, h) = pair(net, set());
        let probes: Vec<Probe> = [
            (22, Protocol::Tcp),
            (23, Protocol::Tcp),
            (24, Protocol::Tcp),
            (25, Protocol::Tcp),
            (23, Protocol::Udp),
        ]
        .iter()
        .map(|&(port, proto)| pair.probes.module_for(proto).unwrap().probe(tgt, port, &c))
        .collect();
        assert_eq!(pair.tx.send(&probes).unwrap(), 5);
        let mut got: Vec<_> = drain(&mut *pair.rx, &pair.probes, &c)
            .into_iter()
            .map(|v| match v {
                Classified::Reply(v) => (v.port, v.proto, v.state, v.reason),
                other => panic!("{other:?}"),
            })
            .collect();
        got.sort_by_key(|g| (g.0, g.1 == Protocol::Udp));
        assert_eq!(
            got,
            vec![
                (22, Protocol::Tcp, PortState::Open, Reason::SynAck),
                (23, Protocol::Tcp, PortState::Closed, Reason::Reset),
                (
                    23,
                    Protocol::Udp,
                    PortState::Closed,
                    Reason::PortUnreachable
                ),
                (
                    24,
                    Protocol::Tcp,
                    PortState::Filtered,
                    Reason::IcmpUnreachable
                ),
            ]
        );
        assert_eq!(h.taken(), 5);
        assert_eq!(h.sends()[&(tgt, Protocol::Tcp, 25)], 1);
    }

    #[test]
    fn drops_duplicates_and_the_hook_shorten_what_is_taken() {
        let c = Cookies::new(9);
        let tgt: IpAddr = Ipv4Addr::new(198, 19, 0, 1).into();
        let net = Network {
            rules: vec![Rule {
                drop_first: 1,
                copies: 3,
                ..Rule::new(Answer::Open)
            }],
            ..Network::default()
        };
        let (mut pair, h) = pair(net, set());
        let m = pair.probes.module_for(Protocol::Tcp).unwrap();
        let p = [m.probe(tgt, 80, &c), m.probe(tgt, 81, &c)];
        assert_eq!(pair.tx.send(&p[..1]).unwrap(), 1);
        assert!(
            drain(&mut *pair.rx, &pair.probes, &c).is_empty(),
            "first one lost"
        );
        assert_eq!(pair.tx.send(&p[..1]).unwrap(), 1);
        assert_eq!(
            drain(&mut *pair.rx, &pair.probes, &c).len(),
            3,
            "three copies"
        );
        h.on_send(|n| n < 3);
        assert_eq!(pair.tx.send(&p).unwrap(), 1, "the hook stops the 4th probe");
        assert_eq!(h.taken(), 3);
    }
}
