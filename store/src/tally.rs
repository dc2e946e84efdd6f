//! The answered ports of a log counted in one pass, without sorting, when every
//! (address, protocol, port) has at most one `Reply`: what a raw scan writes (its
//! answered set keeps the first reply of a probe and drops the others).
//!
//! A summary needs each key's *latest* state; when a key has one Reply, that is
//! simply its Reply, so the states are counted as they come. [`Tally`] checks the
//! condition instead of trusting it: every key is mapped to its index-space value
//! (target index + targets × port index, the engine's numbering) and kept in a
//! compressed set; a second Reply of a key, a key outside the spec's targets and
//! ports, or a set over its memory budget makes it give up, and the caller sorts
//! ([`crate::sort`]), which folds any log. Memory: the set of answered values (a
//! roaring bitmap, ~2 bytes an answer, 8 KiB per 65 536 consecutive values) and
//! the targets with an open port, capped at [`TALLY_BUDGET`].
//!
//! Owns nothing on disk; used by the summary ([`crate::summarize`]).

use crate::event::{PortState, Protocol, ScanSpec};
use crate::record::EventRef;
use crate::sort::OpenCounts;
use crate::space::{ports::PortList, targets::TargetSet};
use roaring::RoaringTreemap;

/// Most bytes the tally's two sets may take (serialized size, about their heap
/// size) before it gives up for the sort, whose memory is bounded by its own budget.
pub(crate) const TALLY_BUDGET: usize = 4 << 20;

/// Replies between two checks of the budget.
const CHECK_EVERY: u64 = 1 << 16;

/// Counts of a log's Reply states in log order (see the module docs).
pub(crate) enum Tally {
    /// Before the log's `ScanStarted`.
    Waiting,
    /// Counting; every key so far seen once.
    Counting(Box<Counting>),
    /// A key was seen twice (or could not be numbered, or the budget ran out):
    /// the counts need the sort.
    GaveUp,
}

/// The state of a tally that is counting.
pub(crate) struct Counting {
    targets: TargetSet,
    ports: PortList,
    /// Index-space values with a Reply.
    seen: RoaringTreemap,
    /// Target indexes with an open port.
    open_hosts: RoaringTreemap,
    states: [u64; 5],
    replies: u64,
}

impl Tally {
    /// A tally that starts counting at the log's `ScanStarted`.
    pub(crate) fn new() -> Tally {
        Tally::Waiting
    }

    /// Whether it gave up (the counts need the sort).
    pub(crate) fn gave_up(&self) -> bool {
        matches!(self, Tally::GaveUp)
    }

    /// Takes in one event (events must come in log order).
    #[inline]
    pub(crate) fn push(&mut self, e: &EventRef<'_>) {
        match (&mut *self, e) {
            (Tally::Waiting, EventRef::ScanStarted(s)) => {
                let spec: ScanSpec = crate::record::scan_started_of(s).spec;
                *self = match (
                    crate::space::target_set(&spec),
                    crate::space::port_list(&spec),
                ) {
                    (Ok(targets), Ok(ports)) => Tally::Counting(Box::new(Counting {
                        targets,
                        ports,
                        seen: RoaringTreemap::new(),
                        open_hosts: RoaringTreemap::new(),
                        states: [0; 5],
                        replies: 0,
                    })),
                    _ => Tally::GaveUp,
                };
            }
            (Tally::Waiting, EventRef::Reply(_)) => *self = Tally::GaveUp,
            (Tally::Counting(c), EventRef::Reply(r)) => {
                let addr = crate::event::Addr::from(&r.addr);
                let proto = Protocol::from(&r.proto);
                let state = PortState::from(&r.state);
                if !c.add(addr, proto, r.port.to_native(), state) {
                    *self = Tally::GaveUp;
                }
            }
            _ => {}
        }
    }

    /// The counts, with the keys `silence` covers (`None`: it gave up, or the log
    /// had no `ScanStarted`).
    pub(crate) fn finish(self, silence: Option<&crate::Silence>) -> Option<OpenCounts> {
        let Tally::Counting(c) = self else {
            return None;
        };
        let mut counts = OpenCounts {
            ports: c.states[PortState::Open as usize],
            hosts: c.open_hosts.len(),
            states: c.states,
            covered: [0; 2],
            // A host row (discovery) makes the tally give up: none were counted.
            host_rows: [0; 2],
        };
        if let Some(space) = silence.map(|s| s.space()) {
            let n = c.targets.len();
            for v in c.seen.iter() {
                if space.covers_value(v) {
                    let (proto, _) = c.ports.get((v / n) as usize);
                    counts.covered[proto as usize] += 1;
                }
            }
        }
        Some(counts)
    }
}

impl Counting {
    /// Counts one Reply; false when the tally cannot go on (see [`Tally::GaveUp`]).
    #[inline]
    fn add(
        &mut self,
        addr: crate::event::Addr,
        proto: Protocol,
        port: u16,
        state: PortState,
    ) -> bool {
        if proto == Protocol::Host {
            // Host discovery rows are not (protocol, port) keys of the space.
            return false;
        }
        let (Some(t), Some(p)) = (
            self.targets.index_of(addr.ip()),
            self.ports.index_of(proto, port),
        ) else {
            return false;
        };
        let Some(v) = (p as u64)
            .checked_mul(self.targets.len())
            .and_then(|x| x.checked_add(t))
        else {
            return false;
        };
        if !self.seen.insert(v) {
            // A second Reply of a key: only the sort knows which state is the latest.
            return false;
        }
        self.states[state as usize] += 1;
        if state == PortState::Open {
            self.open_hosts.insert(t);
        }
        self.replies += 1;
        if self.replies.is_multiple_of(CHECK_EVERY)
            && self.seen.serialized_size() + self.open_hosts.serialized_size() > TALLY_BUDGET
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appender::{Appender, LogOptions};
    use crate::event::*;
    use crate::reader::{Entry, LogReader};
    use crate::sort::{SortOptions, Sorter};
    use std::net::Ipv4Addr;

    fn reply(host: u8, port: u16, state: PortState) -> Event {
        Event::Reply(Reply {
            addr: Ipv4Addr::new(198, 19, 4, host).into(),
            port,
            proto: Protocol::Tcp,
            state,
            reason: Reason::SynAck,
            ttl: 64,
            icmp_code: 0,
            rtt_us: 1,
            time_us: 2,
        })
    }

    /// The tally's and the sort's counts of a log of `replies` (a /24 × 22,80
    /// SYN scan, finished).
    fn both(dir: &std::path::Path, replies: &[Event]) -> (Option<OpenCounts>, OpenCounts) {
        let mut a = Appender::create(dir, LogOptions::default()).unwrap();
        let spec = ScanSpec {
            targets: vec!["198.19.4.0/24".into()],
            ports: "22,80".into(),
            ..ScanSpec::default()
        };
        a.append(&Event::ScanStarted(Box::new(ScanStarted {
            scan_id: 1,
            time_us: 1,
            spec: spec.clone(),
            versions: Versions {
                prtip: "0".into(),
                schema: SCHEMA_VERSION,
            },
            command_line: vec![],
            total_probes: 512,
            total_targets: 256,
            pid: 1,
        })))
        .unwrap();
        for r in replies {
            a.append(r).unwrap();
        }
        a.finish().unwrap();
        let r = LogReader::open(dir).unwrap();
        let silence = crate::Silence::new(&spec, 512, 3);
        let mut t = Tally::new();
        let mut s = Sorter::new(&SortOptions::default(), false);
        r.visit(|e: Entry<'_>| {
            t.push(&e.event);
            s.push(&e.event)
        })
        .unwrap();
        s.set_silence(silence.clone());
        (t.finish(silence.as_ref()), s.finish_counts().unwrap())
    }

    #[test]
    fn unique_replies_are_counted_as_the_sort_counts_them() {
        let tmp = tempfile::tempdir().unwrap();
        let replies: Vec<Event> = (0..=255u8)
            .rev()
            .flat_map(|h| {
                let s = [PortState::Open, PortState::Closed, PortState::Filtered][h as usize % 3];
                [reply(h, 80, s), reply(h, 22, PortState::Closed)]
            })
            .filter(|e| !matches!(e, Event::Reply(r) if r.addr.v4().unwrap().octets()[3] % 5 == 0))
            .collect();
        let (tally, sorted) = both(&tmp.path().join("a"), &replies);
        assert_eq!(tally, Some(sorted));
        assert!(sorted.hosts > 50 && sorted.covered[0] == replies.len() as u64);
    }

    #[test]
    fn a_second_reply_or_a_key_outside_the_space_gives_up() {
        let tmp = tempfile::tempdir().unwrap();
        let twice = [
            reply(1, 80, PortState::Open),
            reply(1, 80, PortState::Closed),
        ];
        assert_eq!(both(&tmp.path().join("a"), &twice).0, None);
        let port = [
            reply(1, 80, PortState::Open),
            reply(1, 443, PortState::Open),
        ];
        assert_eq!(both(&tmp.path().join("b"), &port).0, None);
        let mut other = reply(1, 80, PortState::Open);
        if let Event::Reply(r) = &mut other {
            r.addr = Ipv4Addr::new(198, 19, 5, 1).into();
        }
        assert_eq!(both(&tmp.path().join("c"), &[other]).0, None);
        // The same keys once each: counted.
        let ok = [
            reply(1, 80, PortState::Open),
            reply(1, 22, PortState::Closed),
        ];
        let (t, s) = both(&tmp.path().join("d"), &ok);
        assert_eq!(t, Some(s));
        assert_eq!((s.ports, s.hosts, s.states), (1, 1, [1, 1, 0, 0, 0]));
    }
}
