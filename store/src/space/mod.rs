//! The probe index space a log's walk positions refer to: targets, ports and the
//! keyed walk, and which (address, protocol, port) a log proves silent.
//!
//! Owns: [`targets`], [`ports`] and [`permutation`] (the engine sends from them and
//! re-exports them), the spec → space step both the engine and every reader take
//! ([`target_set`], [`port_list`], [`passes`]), and [`Space`]: the part of the index
//! space a log *covers* — the values whose last pass was sent before the log's last
//! durable checkpoint. A covered value without a `Reply` in the log is silent; its
//! state is [`ScanType::silence`]. Silence is never written per probe (a wide scan is
//! mostly silence); readers derive it here. Never opens files or sockets.
//!
//! Why "last pass": a probe is given up on only after its retries; a paused scan's
//! first-pass probes whose retry pass is still ahead are not silent yet (they may be
//! answered after the resume). With `--max-retries 0` the first pass is the last.

pub mod list;
pub mod permutation;
pub mod ports;
pub mod targets;

use crate::event::{Addr, PortState, Protocol, ScanSpec, ScanType};
use permutation::Walk;
use ports::{PortError, PortList};
use std::net::IpAddr;
use std::ops::Range;
use targets::{TargetError, TargetSet};

/// The targets of `spec`, host names looked up in `spec.resolved` only (what the
/// cli resolved once when the scan started), so reading a log never touches DNS.
pub fn target_set(spec: &ScanSpec) -> Result<TargetSet, TargetError> {
    let mut lookup = |name: &str| -> Result<IpAddr, String> {
        spec.resolved
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.addr.ip())
            .ok_or_else(|| "not resolved when the scan started".to_string())
    };
    TargetSet::build(&spec.targets, &spec.excludes, &mut lookup)
}

/// The ports of `spec` (ports without a `T:`/`U:` prefix are UDP for `-sU`, else TCP).
pub fn port_list(spec: &ScanSpec) -> Result<PortList, PortError> {
    let default = if spec.scan_type == ScanType::Udp {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    PortList::parse(&spec.ports, default)
}

/// Passes of the walk: the first sends and `--max-retries` retry passes.
pub fn passes(spec: &ScanSpec) -> u64 {
    spec.max_retries as u64 + 1
}

/// One shard walk and the walk positions of it a log proves done.
#[derive(Clone, Debug)]
struct Part {
    walk: Walk,
    done: Range<u64>,
}

impl Part {
    /// Positions of the last pass that are done.
    fn last_pass_done(&self) -> Range<u64> {
        let last = (self.walk.passes() - 1) * self.walk.span()..self.walk.len();
        let lo = self.done.start.max(last.start);
        let hi = self.done.end.min(last.end);
        lo..hi.max(lo)
    }

    fn covers(&self, v: u64) -> bool {
        let r = self.last_pass_done();
        if r.is_empty() {
            return false;
        }
        let base = (self.walk.passes() - 1) * self.walk.span();
        self.walk
            .position_of(v)
            .is_some_and(|q| r.contains(&(base + q)))
    }
}

/// The covered part of a scan's index space (see the module docs).
#[derive(Clone, Debug)]
pub struct Space {
    targets: TargetSet,
    ports: PortList,
    parts: Vec<Part>,
    silence: [PortState; 2],
    /// Number of IPv6 targets below `::ffff:0:0` (they sort before IPv4 addresses).
    v6_low: u64,
}

impl Space {
    /// The space a log covers: `spec` is its `ScanStarted`'s, `done` its last durable
    /// checkpoint's walk position (the walk length once `Finished`). A merged log
    /// (`prtip merge`) covers the walk ranges its parts name.
    ///
    /// `None` when the scan type writes silence itself (the socket scans `-sT` and
    /// `-sU` decide every port inline) or the spec does not build (a log written by
    /// a newer prtip).
    pub fn of(spec: &ScanSpec, done: u64) -> Option<Space> {
        if !spec.scan_type.projects_silence() {
            return None;
        }
        let targets = target_set(spec).ok()?;
        let ports = port_list(spec).ok()?;
        let range = targets.len().checked_mul(ports.len() as u64)?;
        let passes = passes(spec);
        let parts = if spec.merged_from.is_empty() {
            vec![Part {
                walk: Walk::new(range, spec.seed, spec.shard_index, spec.shard_count, passes),
                done: spec.walk_from..done,
            }]
        } else {
            let mut parts = Vec::new();
            for m in &spec.merged_from {
                let (i, n) = permutation::parse_shard(&m.shard).ok()?;
                parts.push(Part {
                    walk: Walk::new(range, spec.seed, i, n, passes),
                    done: m.walk[0]..m.walk[1],
                });
            }
            parts
        };
        let low = u128::from(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0));
        let (n4, n6) = (targets.v4.len(), targets.v6.len());
        let v6_low = partition(n6, |i| {
            targets
                .get(n4 + i)
                .is_some_and(|a| matches!(a, IpAddr::V6(a) if u128::from(a) < low))
        });
        Some(Space {
            silence: [
                spec.scan_type.silence(Protocol::Tcp),
                spec.scan_type.silence(Protocol::Udp),
            ],
            targets,
            ports,
            parts,
            v6_low,
        })
    }

    /// The same space with the silence state of each protocol given by `f` (a
    /// probe module's [`silence`](ScanType::silence) where the spec cannot name it).
    pub fn with_silence(mut self, f: impl Fn(Protocol) -> PortState) -> Space {
        self.silence = [f(Protocol::Tcp), f(Protocol::Udp)];
        self
    }

    /// What silence means for `proto` in this scan.
    pub fn silence(&self, proto: Protocol) -> PortState {
        self.silence[proto as usize]
    }

    /// The state (address, protocol, port) has if the log holds no Reply for it:
    /// `Some` when it is covered, `None` when the log does not prove its last probe
    /// sent (another shard's, not reached yet, or not a probe of this scan).
    pub fn silent_state(&self, addr: Addr, proto: Protocol, port: u16) -> Option<PortState> {
        let t = self.targets.index_of(addr.ip())?;
        let p = self.ports.index_of(proto, port)? as u64;
        self.covers(t + self.targets.len() * p)
            .then(|| self.silence(proto))
    }

    /// Number of covered (address, protocol, port): the log's silent ports plus its
    /// answered ones among them. Closed form, no walk.
    pub fn covered(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| {
                let r = p.last_pass_done();
                r.end - r.start
            })
            .sum()
    }

    /// [`Space::covered`] split by protocol (`[tcp, udp]`). Closed form when the
    /// ports are of one protocol or every part covers its whole shard of an
    /// unsharded scan; else it walks the covered positions (time grows with them,
    /// memory does not).
    pub fn covered_by_proto(&self) -> [u64; 2] {
        let all = self.covered();
        if self.ports.udp.is_empty() {
            return [all, 0];
        }
        if self.ports.tcp.is_empty() {
            return [0, all];
        }
        let n = self.targets.len();
        if self.whole() {
            let tcp = n * self.ports.tcp.len() as u64;
            return [tcp, all - tcp];
        }
        let tcp_values = n * self.ports.tcp.len() as u64;
        let mut tcp = 0;
        for p in &self.parts {
            for q in p.last_pass_done() {
                if p.walk.at(q).0 < tcp_values {
                    tcp += 1;
                }
            }
        }
        [tcp, all - tcp]
    }

    /// Every covered (address, protocol, port) with its silence state, sorted by
    /// (address, protocol, port) like the store's sorted rows. Time grows with the
    /// targets × ports; memory is constant.
    pub fn iter(&self) -> Keys {
        self.clone().into_keys()
    }

    /// [`Space::iter`], owning the space.
    pub fn into_keys(self) -> Keys {
        let (n4, n6) = (self.targets.v4.len(), self.targets.v6.len());
        let order = vec![n4..n4 + self.v6_low, 0..n4, n4 + self.v6_low..n4 + n6];
        Keys {
            target: order[0].start,
            space: self,
            order,
            seg: 0,
            port: 0,
        }
    }

    /// Whether index-space value `v` is covered.
    fn covers(&self, v: u64) -> bool {
        self.parts.iter().any(|part| part.covers(v))
    }

    /// Whether index-space value `v` (target index + targets × port index) is
    /// covered: what [`Space::silent_state`] answers for the key it numbers.
    pub(crate) fn covers_value(&self, v: u64) -> bool {
        self.covers(v)
    }

    /// The covered ports of one address, sorted by (protocol, port), with their
    /// silence state (none when `addr` is not a target).
    pub fn ports_of(&self, addr: Addr) -> impl Iterator<Item = (Protocol, u16, PortState)> + '_ {
        let t = self.targets.index_of(addr.ip());
        let n = self.targets.len();
        let count = if t.is_some() { self.ports.len() } else { 0 };
        (0..count).filter_map(move |i| {
            let t = t.expect("a target");
            let v = t + n * i as u64;
            let (proto, port) = self.ports.get(i);
            self.covers(v).then(|| (proto, port, self.silence(proto)))
        })
    }

    /// One part that covers the whole index space (an unsharded scan done).
    fn whole(&self) -> bool {
        self.parts.len() == 1 && {
            let p = &self.parts[0];
            let r = p.last_pass_done();
            p.walk.span() == self.targets.len() * self.ports.len() as u64
                && r.end - r.start == p.walk.span()
        }
    }

    /// Number of covered ports of one address (`[tcp, udp]`).
    pub fn covered_of(&self, addr: Addr) -> [u64; 2] {
        if self.whole() {
            if self.targets.index_of(addr.ip()).is_none() {
                return [0, 0];
            }
            return [self.ports.tcp.len() as u64, self.ports.udp.len() as u64];
        }
        let mut c = [0; 2];
        for (proto, _, _) in self.ports_of(addr) {
            c[proto as usize] += 1;
        }
        c
    }
}

/// Iterator of [`Space::iter`].
#[derive(Clone, Debug)]
pub struct Keys {
    space: Space,
    /// Target indexes in address order: low IPv6, IPv4, the other IPv6.
    order: Vec<Range<u64>>,
    seg: usize,
    target: u64,
    port: usize,
}

impl Iterator for Keys {
    type Item = (Addr, Protocol, u16, PortState);
    fn next(&mut self) -> Option<Self::Item> {
        let n = self.space.targets.len();
        loop {
            let r = self.order.get(self.seg)?;
            if self.target >= r.end {
                self.seg += 1;
                self.target = self.order.get(self.seg).map_or(0, |r| r.start);
                self.port = 0;
                continue;
            }
            if self.port >= self.space.ports.len() {
                self.target += 1;
                self.port = 0;
                continue;
            }
            let i = self.port;
            self.port += 1;
            if self.space.covers(self.target + n * i as u64) {
                let (proto, port) = self.space.ports.get(i);
                let addr = Addr::from(self.space.targets.get(self.target).expect("a target"));
                return Some((addr, proto, port, self.space.silence(proto)));
            }
        }
    }
}

/// First `i` in `0..n` for which `below(i)` is false (`below` must be true then false).
fn partition(n: u64, below: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
