//! Silence as a projection: the ports a log proves probed and unanswered, derived
//! from its spec and checkpoints ([`Space`]) when a reader asks, never stored.
//!
//! Owns the rule for when silent ports are listed port by port ([`SILENT_ROWS_MAX`])
//! and the row a silent port becomes. Logs written before silence was projected
//! hold a `Reply { reason: no-response }` per silent port: those keys are answered
//! keys here, so such logs read exactly as before (nothing is projected twice).
//! Never writes anything.

use crate::event::{Addr, PortState, Protocol, Reason, ScanSpec};
use crate::results::ResultRow;
use crate::space::{Keys, Space};
use std::collections::HashMap;

/// Silent ports are listed row by row (in exports, `Results`, the monitor and
/// `history diff`) when the log covers at most this many (address, protocol, port):
/// 64 hosts × nmap's 1 000 default ports, or one host × every port. Above, as nmap
/// folds them into `<extraports>` and masscan/zmap omit them, they are counted
/// (summaries, `Not shown: N filtered ports` of the hosts that answered), not
/// listed; an export can ask for them anyway (`ExportOptions::silent_rows`).
pub const SILENT_ROWS_MAX: u64 = 65_536;

/// What a reader needs to project one log's silence.
#[derive(Clone, Debug)]
pub struct Silence {
    space: Space,
    time_us: u64,
}

impl Silence {
    /// The silence of a log whose spec is `spec`, last durable walk position `done`
    /// (the walk length once `Finished`), and whose silent rows carry `time_us`
    /// (when the scan ended, else its last checkpoint). `None` when the scan type
    /// writes its silence itself or the spec does not build.
    pub fn new(spec: &ScanSpec, done: u64, time_us: u64) -> Option<Silence> {
        Some(Silence {
            space: Space::of(spec, done)?,
            time_us,
        })
    }

    /// The silence of the log a summary describes.
    pub fn of_summary(s: &crate::ScanSummary) -> Option<Silence> {
        let time_us = s
            .ended_us
            .or(s.last_checkpoint.map(|c| c.time_us))
            .unwrap_or(s.started_us);
        Silence::new(
            &s.spec.walk_spec(s.port_phase.as_deref()),
            s.probes_done,
            time_us,
        )
    }

    /// The covered space.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The same with another silence state per protocol (see [`Space::with_silence`]).
    pub fn with_silence(mut self, f: impl Fn(Protocol) -> PortState) -> Silence {
        self.space = self.space.with_silence(f);
        self
    }

    /// Whether silent ports are listed row by row by default ([`SILENT_ROWS_MAX`]).
    pub fn lists_rows(&self) -> bool {
        self.space.covered() <= SILENT_ROWS_MAX
    }

    /// The result row of a silent port (reason `no-response`, no TTL, no RTT).
    pub fn row(&self, addr: Addr, proto: Protocol, port: u16, state: PortState) -> ResultRow {
        ResultRow {
            addr,
            hostname: None,
            port,
            proto,
            state,
            reason: Reason::NoResponse,
            ttl: 0,
            rtt_us: 0,
            time_us: self.time_us,
            service: None,
            banner: None,
        }
    }

    /// Every covered port without a row in `answered`, as rows, sorted by (address,
    /// protocol, port). Time grows with the covered space; memory does not.
    pub fn silent_rows<'a>(
        &'a self,
        answered: &'a dyn Fn(Addr, Protocol, u16) -> bool,
    ) -> impl Iterator<Item = ResultRow> + 'a {
        self.space
            .iter()
            .filter(move |&(a, p, port, _)| !answered(a, p, port))
            .map(move |(a, p, port, s)| self.row(a, p, port, s))
    }

    /// The silent ports of one host whose answered ports are `answered` (sorted or
    /// not), as rows sorted by (protocol, port).
    pub fn host_rows(&self, addr: Addr, answered: &[ResultRow]) -> Vec<ResultRow> {
        let mut keys: Vec<(Protocol, u16)> = answered.iter().map(|r| (r.proto, r.port)).collect();
        keys.sort_unstable();
        self.space
            .ports_of(addr)
            .filter(|(p, port, _)| keys.binary_search(&(*p, *port)).is_err())
            .map(|(p, port, s)| self.row(addr, p, port, s))
            .collect()
    }
}

/// The merge of two sorted streams, the covered keys and the answered rows: a
/// covered key without a row becomes a silent row ([`crate::SortedRows`] runs it).
pub(crate) struct SilentMerge {
    silence: Silence,
    keys: Keys,
    key: Option<(Addr, Protocol, u16, PortState)>,
    row: Option<ResultRow>,
    done: bool,
}

impl SilentMerge {
    pub(crate) fn new(silence: Silence) -> SilentMerge {
        SilentMerge {
            keys: silence.space.clone().into_keys(),
            silence,
            key: None,
            row: None,
            done: false,
        }
    }

    /// The next row: `rows` gives the answered rows in order.
    pub(crate) fn next<E>(
        &mut self,
        rows: &mut dyn FnMut() -> Option<Result<ResultRow, E>>,
        hostnames: &HashMap<Addr, String>,
    ) -> Option<Result<ResultRow, E>> {
        if self.row.is_none() && !self.done {
            match rows() {
                Some(Ok(r)) => self.row = Some(r),
                Some(Err(e)) => return Some(Err(e)),
                None => self.done = true,
            }
        }
        if self.key.is_none() {
            self.key = self.keys.next();
        }
        let Some((a, p, port, s)) = self.key else {
            return self.row.take().map(Ok);
        };
        match self.row.as_ref().map(|r| r.key()) {
            Some(rk) if rk < (a, p, port) => self.row.take().map(Ok),
            Some(rk) if rk == (a, p, port) => {
                self.key = None;
                self.row.take().map(Ok)
            }
            _ => {
                self.key = None;
                let mut r = self.silence.row(a, p, port, s);
                r.hostname = hostnames.get(&a).cloned();
                Some(Ok(r))
            }
        }
    }
}
