//! Projections: pure functions of the log. [`summarize`] (status, times, counters,
//! progress), [`Results`] (the latest state per address/protocol/port, folded in
//! memory) and [`crate::sorted_rows`] (the same, streamed in constant memory).
//!
//! This module owns how events fold into summaries and rows. It never writes
//! files; the history index stores what [`summarize`] computes.

use crate::error::{Result, StoreError};
use crate::event::*;
use crate::reader::{Entry, LogReader};
use crate::record::{self, EventKind, EventRef};
use crate::results::{ResultRow, ServiceInfo};
use crate::sort::{OpenCounts, SortOptions, Sorter};
use crate::tally::Tally;
use std::collections::HashMap;

/// Where a scan stands, as read from its log and its writer lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanStatus {
    /// A process holds the log's writer lock.
    Running,
    /// Stopped on request (a `Paused` event is the last word); resumable.
    Paused,
    /// `Finished` was written.
    Completed,
    /// `Failed` was written.
    Failed,
    /// The writer died without writing `Paused`, `Finished` or `Failed`; resumable
    /// from the last checkpoint.
    Interrupted,
}

impl ScanStatus {
    /// Lower-case name (`running`, `paused`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Running => "running",
            ScanStatus::Paused => "paused",
            ScanStatus::Completed => "completed",
            ScanStatus::Failed => "failed",
            ScanStatus::Interrupted => "interrupted",
        }
    }

    /// Whether `prtip replay --from-checkpoint` can continue this scan.
    pub fn resumable(self) -> bool {
        matches!(self, ScanStatus::Paused | ScanStatus::Interrupted)
    }
}

impl std::fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScanStatus {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "running" => ScanStatus::Running,
            "paused" => ScanStatus::Paused,
            "completed" => ScanStatus::Completed,
            "failed" => ScanStatus::Failed,
            "interrupted" => ScanStatus::Interrupted,
            other => {
                return Err(format!(
                "unknown scan status `{other}` (running, paused, completed, failed, interrupted)"
            ))
            }
        })
    }
}

/// Everything a history row or `prtip history show` needs, computed from a log.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanSummary {
    /// History id (from `ScanStarted`).
    pub scan_id: u64,
    /// What the scan was told.
    pub spec: ScanSpec,
    /// Command line as typed.
    pub command_line: Vec<String>,
    /// Start time, Unix microseconds.
    pub started_us: u64,
    /// Time of `Finished`/`Failed`, or of the last `Paused`.
    pub ended_us: Option<u64>,
    /// Where the scan stands.
    pub status: ScanStatus,
    /// The latest checkpoint.
    pub last_checkpoint: Option<Checkpoint>,
    /// Number of checkpoints.
    pub checkpoints: u64,
    /// Latest counters (from the last Checkpoint, Sample or Finished).
    pub counters: Counters,
    /// Size of the probe index space.
    pub total_probes: u64,
    /// Target addresses after excludes.
    pub total_targets: u64,
    /// Probes known done: the last checkpoint's `next_index` (all of them when completed).
    pub probes_done: u64,
    /// (address, protocol, port) whose latest state is open (host discovery
    /// results are not ports: see `host_rows`).
    pub open_ports: u64,
    /// Distinct hosts with at least one open port.
    pub open_hosts: u64,
    /// (address, protocol, port) per latest state, indexed by [`PortState`] as
    /// `usize` (open, closed, filtered, open|filtered, unfiltered): every state
    /// counted, silence included once the scan has finished.
    pub port_states: [u64; 5],
    /// Silent ports, `[tcp, udp]`: probed (every pass, before the last durable
    /// checkpoint) and never answered. Projected from the walk, not read from
    /// events; their state is [`ScanType::silence`] (logs written before silence
    /// was projected hold them as `no-response` Replies: counted as those, not here).
    pub silent: [u64; 2],
    /// Host discovery results, `[up, down]` (`-sn`, or the sweep of a scan that
    /// discovers hosts first); they are also counted in `port_states` (a host
    /// up as open, down as filtered), not in `open_ports` and `open_hosts`.
    pub host_rows: [u64; 2],
    /// Pid of the last process that wrote the scan.
    pub pid: u32,
    /// Bytes the log takes on disk.
    pub log_bytes: u64,
    /// Events in the log.
    pub events: u64,
    /// Events per kind, indexed by [`EventKind`] as `usize`.
    pub event_counts: [u64; EventKind::ALL.len()],
    /// The hosts a scan that discovers hosts first found up, once its
    /// [`PortPhase`] is in the log (`None` before, and for every other scan):
    /// from then on `total_probes`, `probes_done` and the checkpoints are the
    /// port walk's ([`ScanSpec::walk_spec`]).
    pub port_phase: Option<Vec<Addr>>,
    /// The message of `Failed`, if any.
    pub failure: Option<String>,
    /// Why reading stopped early (corruption), if it did: the summary covers the
    /// events before that point.
    pub damage: Option<String>,
}

impl ScanSummary {
    /// Silent ports of both protocols (see [`ScanSummary::silent`]).
    pub fn silent_ports(&self) -> u64 {
        self.silent[0] + self.silent[1]
    }

    /// Walk positions of the first pass: `total_probes` without the retry passes
    /// (a SYN scan's walk repeats its first pass `--max-retries` times, resending only
    /// unanswered probes; -sT and -sU retry inline, one walk position per port).
    pub fn pass_span(&self) -> u64 {
        pass_span(
            self.spec.scan_type,
            self.spec.max_retries,
            self.total_probes,
        )
    }

    /// Progress in 0.0 ..= 1.0, prtip's one definition: walk positions done over the
    /// walk length of the first pass (retry passes are not counted; a scan in its
    /// retry passes shows 1.0 until it completes). What `paused at N%`, `history` and
    /// the exports print.
    pub fn progress(&self) -> f64 {
        if self.status == ScanStatus::Completed {
            return 1.0;
        }
        progress_at(self.probes_done, self.pass_span())
    }
}

/// Walk positions of the first pass of a scan of `total_probes` (its
/// `ScanStarted`): a raw scan's walk repeats its first pass `max_retries` times,
/// resending only unanswered probes; `-sT` and `-sU` retry inline, one walk
/// position per port.
pub fn pass_span(scan_type: crate::event::ScanType, max_retries: u32, total_probes: u64) -> u64 {
    if scan_type.is_raw() {
        total_probes / (max_retries as u64 + 1)
    } else {
        total_probes
    }
}

/// prtip's one definition of progress, 0.0 ..= 1.0: walk `position` reached
/// over the first pass's `span` ([`pass_span`]); retry passes are not counted
/// (a scan in its retry passes, or in `-sV` after its walk, stands at 1.0).
/// The scan's progress line and `paused at N%`, `history`, the monitor and
/// every export print it (a completed scan is 1.0: [`ScanSummary::progress`]).
pub fn progress_at(position: u64, span: u64) -> f64 {
    if span == 0 {
        return 0.0;
    }
    position.min(span) as f64 / span as f64
}

type Key = (Addr, Protocol, u16);

fn key_of(addr: &ArchivedAddr, proto: &ArchivedProtocol, port: u16) -> Key {
    (Addr::from(addr), Protocol::from(proto), port)
}

/// Summarize the log: status, times, counters, progress, open ports. Fails on
/// corruption (see [`summarize_lenient`] to summarize what can be read).
///
/// Memory is bounded whatever the log size, and one pass reads the log when each
/// key has one Reply (a raw scan's log): the states are counted as they come,
/// checked unique by a compressed set of the answered probes (crate-private
/// `tally`, at most 4 MiB). Otherwise (a key answered twice) the open ports and
/// hosts come from an external sort of the Reply states in a second pass
/// ([`crate::SortOptions`]' default budget; a large log spills to the system temp
/// dir), never from a map of every key.
pub fn summarize(reader: &LogReader) -> Result<ScanSummary> {
    let (s, err) = summarize_inner(reader, &mut |_| {})?;
    match err {
        Some(e) => Err(e),
        None => Ok(s),
    }
}

/// Like [`summarize`], but stops at the first corrupt record and reports it in
/// `damage` instead of failing (only a log without a readable `ScanStarted` fails).
pub fn summarize_lenient(reader: &LogReader) -> Result<ScanSummary> {
    Ok(summarize_inner(reader, &mut |_| {})?.0)
}

pub(crate) fn summarize_inner(
    reader: &LogReader,
    on_checkpoint: &mut dyn FnMut(&Checkpoint),
) -> Result<(ScanSummary, Option<StoreError>)> {
    let mut fold = SummaryFold::default();
    // Each key's latest state: counted as the Replies come while every key has
    // one (a raw scan's log), else sorted externally (bounded memory either way).
    let mut tally = Tally::new();
    let res = reader.visit(|e: Entry<'_>| -> Result<()> {
        if let Some(c) = fold.apply(&e) {
            on_checkpoint(&c);
        }
        if !tally.gave_up() {
            tally.push(&e.event);
        }
        Ok(())
    });
    let err = match res {
        Ok(()) => None,
        Err(e @ StoreError::Corrupt { .. }) => Some(e),
        Err(e) => return Err(e),
    };
    let silence = fold.silence(reader);
    let counts = match tally.finish(silence.as_ref()) {
        Some(c) => c,
        None => sorted_counts(reader, silence)?,
    };
    let summary = fold.finish(reader, err.as_ref().map(|e| e.to_string()), counts)?;
    Ok((summary, err))
}

/// The open ports, hosts and states of the log's keys from an external sort of its
/// Reply states (a second pass, for logs the [`Tally`] cannot count: a key answered
/// twice). Reading stops where the first pass's did (at the first corrupt record).
fn sorted_counts(reader: &LogReader, silence: Option<crate::Silence>) -> Result<OpenCounts> {
    let mut open = Sorter::new(&SortOptions::default(), false);
    match reader.visit(|e: Entry<'_>| -> Result<()> { open.push(&e.event) }) {
        Ok(()) | Err(StoreError::Corrupt { .. }) => {}
        Err(e) => return Err(e),
    }
    open.set_silence(silence);
    open.finish_counts()
}

/// The fold behind [`summarize`], usable inside another pass over the log. It
/// keeps no per-key state: the open ports and hosts come from a sort of the Reply
/// events ([`Sorter`]), handed to [`SummaryFold::finish`].
#[derive(Default)]
pub(crate) struct SummaryFold {
    started: Option<ScanStarted>,
    last_checkpoint: Option<Checkpoint>,
    checkpoints: u64,
    counters: Counters,
    status_event: Option<EventKind>,
    ended_us: Option<u64>,
    pid: u32,
    failure: Option<String>,
    events: u64,
    event_counts: [u64; EventKind::ALL.len()],
    /// The port phase's hosts and walk length, once its `PortPhase` was folded.
    port_phase: Option<(Vec<Addr>, u64)>,
}

impl SummaryFold {
    /// The silence of what was folded (see [`crate::Silence`]).
    pub(crate) fn silence(&self, reader: &LogReader) -> Option<crate::Silence> {
        let started = self.started.as_ref()?;
        let done = self.probes_done(started, self.status(reader));
        let time_us = self
            .ended_us
            .or(self.last_checkpoint.map(|c| c.time_us))
            .unwrap_or(started.time_us);
        crate::Silence::new(&self.walk_spec(started), done, time_us)
    }

    /// The spec of the walk the folded checkpoints count ([`ScanSpec::walk_spec`]).
    fn walk_spec(&self, started: &ScanStarted) -> ScanSpec {
        started
            .spec
            .walk_spec(self.port_phase.as_ref().map(|(h, _)| h.as_slice()))
    }

    /// Size of the walk the folded checkpoints count.
    fn walk_total(&self, started: &ScanStarted) -> u64 {
        self.port_phase
            .as_ref()
            .map_or(started.total_probes, |(_, t)| *t)
    }

    fn status(&self, reader: &LogReader) -> ScanStatus {
        match self.status_event {
            Some(EventKind::Finished) => ScanStatus::Completed,
            Some(EventKind::Failed) => ScanStatus::Failed,
            // Paused last: paused, also while the writer still holds the log
            // (a scan held in place by SIGUSR1 or the monitor's `p`).
            Some(EventKind::Paused) => ScanStatus::Paused,
            _ if reader.writer_alive() => ScanStatus::Running,
            _ => ScanStatus::Interrupted,
        }
    }

    fn probes_done(&self, started: &ScanStarted, status: ScanStatus) -> u64 {
        if status == ScanStatus::Completed {
            self.walk_total(started)
        } else {
            self.last_checkpoint.map_or(0, |c| c.next_index)
        }
    }

    /// Fold one entry; returns the checkpoint if it was one.
    #[inline]
    pub(crate) fn apply(&mut self, e: &Entry<'_>) -> Option<Checkpoint> {
        self.events += 1;
        self.event_counts[e.event.kind() as usize] += 1;
        match e.event {
            EventRef::ScanStarted(s) => {
                if self.started.is_none() {
                    let s = record::scan_started_of(s);
                    self.pid = s.pid;
                    self.started = Some(s);
                }
            }
            EventRef::Checkpoint(c) => {
                let c = record::checkpoint_of(c);
                self.counters = c.counters;
                self.last_checkpoint = Some(c);
                self.checkpoints += 1;
                return Some(c);
            }
            EventRef::Sample(s) => self.counters = record::counters_of(&s.counters),
            EventRef::Paused(p) => {
                self.status_event = Some(EventKind::Paused);
                self.ended_us = Some(p.time_us.to_native());
            }
            EventRef::Resumed(r) => {
                self.status_event = Some(EventKind::Resumed);
                self.pid = r.pid.to_native();
                self.ended_us = None;
            }
            EventRef::Finished(f) => {
                self.status_event = Some(EventKind::Finished);
                self.ended_us = Some(f.time_us.to_native());
                self.counters = record::counters_of(&f.counters);
            }
            EventRef::Failed(f) => {
                self.status_event = Some(EventKind::Failed);
                self.ended_us = Some(f.time_us.to_native());
                self.failure = Some(f.message.as_str().to_string());
            }
            EventRef::Reply(_)
            | EventRef::Banner(_)
            | EventRef::Service(_)
            | EventRef::ExportComplete(_)
            | EventRef::Governor(_) => {}
            EventRef::PortPhase(p) => {
                // The port walk starts: its checkpoints count from 0.
                let p: PortPhase = record::port_phase_of(p);
                self.port_phase = Some((p.hosts, p.total_probes));
                self.last_checkpoint = None;
            }
        }
        None
    }

    /// The summary of everything folded (`damage`: why reading stopped early;
    /// `open`: the open ports and hosts of the same events).
    pub(crate) fn finish(
        self,
        reader: &LogReader,
        damage: Option<String>,
        open: OpenCounts,
    ) -> Result<ScanSummary> {
        let status = self.status(reader);
        let Some(started) = self.started.clone() else {
            return Err(match damage {
                Some(d) => StoreError::NotALog {
                    dir: reader.dir().to_path_buf(),
                    why: d,
                },
                None => StoreError::Empty {
                    dir: reader.dir().to_path_buf(),
                },
            });
        };
        let probes_done = self.probes_done(&started, status);
        let walk_spec = self.walk_spec(&started);
        let total_probes = self.walk_total(&started);
        let silent = match crate::space::Space::of(&walk_spec, probes_done) {
            Some(space) => {
                let c = space.covered_by_proto();
                [
                    c[0].saturating_sub(open.covered[0]),
                    c[1].saturating_sub(open.covered[1]),
                ]
            }
            None => [0, 0],
        };
        // Every state counted: the silence the walk projects goes to its state.
        let mut port_states = open.states;
        for (proto, n) in [(Protocol::Tcp, silent[0]), (Protocol::Udp, silent[1])] {
            port_states[started.spec.scan_type.silence(proto) as usize] += n;
        }
        Ok(ScanSummary {
            scan_id: started.scan_id,
            command_line: started.command_line,
            spec: started.spec,
            started_us: started.time_us,
            ended_us: self.ended_us,
            status,
            last_checkpoint: self.last_checkpoint,
            checkpoints: self.checkpoints,
            counters: self.counters,
            total_probes,
            total_targets: started.total_targets,
            probes_done,
            open_ports: open.ports,
            open_hosts: open.hosts,
            port_states,
            silent,
            host_rows: open.host_rows,
            pid: self.pid,
            log_bytes: reader.disk_bytes(),
            events: self.events,
            event_counts: self.event_counts,
            failure: self.failure,
            damage,
            port_phase: self.port_phase.map(|(h, _)| h),
        })
    }
}

/// The result rows folded in memory: the latest Reply per (address, protocol,
/// port) wins, with the latest Service and the first Banner of that key; a key
/// becomes a row once a Reply was seen (a banner or service seen first waits for
/// it). Incremental: rows keep their place in arrival order, so a reader that
/// folds events as they come (the monitor) can index them. For small logs and
/// the monitor; exports use [`crate::sorted_rows`].
///
/// Silent ports of a small scan ([`crate::SILENT_ROWS_MAX`]) become rows when the
/// log says the walk stopped (`Paused`, `Finished`): projected from the spec and
/// the last checkpoint ([`crate::Silence`]), never read from events.
#[derive(Clone, Debug, Default)]
pub struct Results {
    rows: Vec<ResultRow>,
    index: HashMap<Key, usize>,
    /// Service / banner of keys without a Reply yet.
    pending: HashMap<Key, (Option<ServiceInfo>, Option<Vec<u8>>)>,
    hostnames: HashMap<Addr, String>,
    /// Keys whose latest state is open: `[ports, hosts up]`.
    open: [usize; 2],
    /// The spec and walk length of the walk the checkpoints count, for silence
    /// (the `ScanStarted`'s, or [`ScanSpec::walk_spec`]'s of a scan that
    /// discovers hosts first).
    started: Option<(ScanSpec, u64)>,
    /// The whole spec of a scan that discovers hosts first (its port walk's
    /// spec is made from it at the `PortPhase`).
    whole: Option<ScanSpec>,
    /// The latest checkpoint's walk position.
    checkpoint: u64,
}

pub(crate) fn service_info(s: &ArchivedService) -> ServiceInfo {
    ServiceInfo {
        name: s.name.as_str().to_string(),
        product: s.product.as_str().to_string(),
        version: s.version.as_str().to_string(),
        extra: s.extra.as_str().to_string(),
        confidence: s.confidence.to_native(),
        method: s.method.as_str().to_string(),
    }
}

pub(crate) fn reply_of(r: &ArchivedReply) -> Reply {
    Reply {
        addr: Addr::from(&r.addr),
        port: r.port.to_native(),
        proto: Protocol::from(&r.proto),
        state: PortState::from(&r.state),
        reason: Reason::from(&r.reason),
        ttl: r.ttl,
        icmp_code: r.icmp_code,
        rtt_us: r.rtt_us.to_native(),
        time_us: r.time_us.to_native(),
    }
}

pub(crate) fn hostnames_of(s: &ArchivedScanStarted) -> HashMap<Addr, String> {
    let mut m = HashMap::new();
    for h in s.spec.resolved.iter() {
        m.entry(Addr::from(&h.addr))
            .or_insert_with(|| h.name.as_str().to_string());
    }
    m
}

pub(crate) fn make_row(
    k: Key,
    r: &Reply,
    service: Option<ServiceInfo>,
    banner: Option<Vec<u8>>,
    hostnames: &HashMap<Addr, String>,
) -> ResultRow {
    ResultRow {
        addr: k.0,
        hostname: hostnames.get(&k.0).cloned(),
        port: k.2,
        proto: k.1,
        state: r.state,
        reason: r.reason,
        ttl: r.ttl,
        rtt_us: r.rtt_us,
        time_us: r.time_us,
        service,
        banner,
    }
}

impl Results {
    /// An empty fold.
    pub fn new() -> Results {
        Results::default()
    }

    /// Fold the whole log.
    pub fn from_log(reader: &LogReader) -> Result<Results> {
        let mut r = Results::new();
        reader.visit(|e: Entry<'_>| -> Result<()> {
            r.apply(e.event);
            Ok(())
        })?;
        Ok(r)
    }

    /// Fold one event (events must come in log order).
    pub fn apply(&mut self, ev: EventRef<'_>) {
        match ev {
            EventRef::ScanStarted(s) => {
                if self.started.is_none() {
                    let s = record::scan_started_of(s);
                    self.on_started(s.spec, s.total_probes);
                }
                self.add_hostnames(hostnames_of(s))
            }
            EventRef::PortPhase(p) => self.on_port_phase(record::port_phase_of(p)),
            EventRef::Checkpoint(c) => self.checkpoint = c.next_index.to_native(),
            EventRef::Paused(p) => self.project_silence(self.checkpoint, p.time_us.to_native()),
            EventRef::Finished(f) => {
                let total = self.started.as_ref().map_or(0, |s| s.1);
                self.project_silence(total, f.time_us.to_native())
            }
            EventRef::Reply(r) => self.on_reply(&reply_of(r)),
            EventRef::Banner(b) => self.on_banner(
                key_of(&b.addr, &b.proto, b.port.to_native()),
                b.bytes.as_slice(),
            ),
            EventRef::Service(s) => self.on_service(
                key_of(&s.addr, &s.proto, s.port.to_native()),
                service_info(s),
            ),
            _ => {}
        }
    }

    /// Fold one owned event (the monitor, engine tests, dry runs): the same fold
    /// as [`Results::apply`].
    pub fn apply_event(&mut self, ev: &Event) {
        match ev {
            Event::Checkpoint(c) => self.checkpoint = c.next_index,
            Event::Paused(p) => self.project_silence(self.checkpoint, p.time_us),
            Event::Finished(f) => {
                let total = self.started.as_ref().map_or(0, |s| s.1);
                self.project_silence(total, f.time_us)
            }
            Event::PortPhase(p) => self.on_port_phase(p.clone()),
            Event::ScanStarted(s) => {
                if self.started.is_none() {
                    self.on_started(s.spec.clone(), s.total_probes);
                }
                let mut m = HashMap::new();
                for h in &s.spec.resolved {
                    m.entry(h.addr).or_insert_with(|| h.name.clone());
                }
                self.add_hostnames(m);
            }
            Event::Reply(r) => self.on_reply(r),
            Event::Banner(b) => self.on_banner((b.addr, b.proto, b.port), &b.bytes),
            Event::Service(s) => self.on_service(
                (s.addr, s.proto, s.port),
                ServiceInfo {
                    name: s.name.clone(),
                    product: s.product.clone(),
                    version: s.version.clone(),
                    extra: s.extra.clone(),
                    confidence: s.confidence,
                    method: s.method.clone(),
                },
            ),
            _ => {}
        }
    }

    fn on_started(&mut self, spec: ScanSpec, total_probes: u64) {
        self.started = Some((spec.walk_spec(None), total_probes));
        if spec.discovers_first() {
            self.whole = Some(spec);
        }
    }

    /// The port walk of a scan that discovers hosts first starts: silence is
    /// projected from its spec and checkpoints from now on.
    fn on_port_phase(&mut self, p: PortPhase) {
        if let Some(whole) = &self.whole {
            self.started = Some((whole.port_walk(&p.hosts), p.total_probes));
            self.checkpoint = 0;
        }
    }

    /// Host names of addresses (a scan's resolved targets; the first name of an
    /// address is kept): attached to existing rows now and to new rows later.
    pub fn add_hostnames(&mut self, names: HashMap<Addr, String>) {
        for (a, n) in names {
            self.hostnames.entry(a).or_insert(n);
        }
        for row in &mut self.rows {
            if row.hostname.is_none() {
                row.hostname = self.hostnames.get(&row.addr).cloned();
            }
        }
    }

    /// Rows for the silent ports of a small scan whose walk is done up to `done`.
    fn project_silence(&mut self, done: u64, time_us: u64) {
        let Some((spec, _)) = &self.started else {
            return;
        };
        let Some(silence) = crate::Silence::new(spec, done, time_us) else {
            return;
        };
        if !silence.lists_rows() {
            return;
        }
        for (addr, proto, port, state) in silence.space().iter() {
            let k = (addr, proto, port);
            if self.index.contains_key(&k) {
                continue;
            }
            let (service, banner) = self.pending.remove(&k).unwrap_or_default();
            let mut row = silence.row(addr, proto, port, state);
            row.service = service;
            row.banner = banner;
            row.hostname = self.hostnames.get(&addr).cloned();
            self.rows.push(row);
            self.index.insert(k, self.rows.len() - 1);
        }
    }

    fn on_reply(&mut self, r: &Reply) {
        let k = (r.addr, r.proto, r.port);
        match self.index.get(&k) {
            Some(&i) => {
                let row = &mut self.rows[i];
                if row.state == PortState::Open {
                    self.open[usize::from(row.proto == Protocol::Host)] -= 1;
                }
                row.state = r.state;
                row.reason = r.reason;
                row.ttl = r.ttl;
                row.rtt_us = r.rtt_us;
                row.time_us = r.time_us;
            }
            None => {
                let (service, banner) = self.pending.remove(&k).unwrap_or_default();
                self.rows
                    .push(make_row(k, r, service, banner, &self.hostnames));
                self.index.insert(k, self.rows.len() - 1);
            }
        }
        if r.state == PortState::Open {
            self.open[usize::from(r.proto == Protocol::Host)] += 1;
        }
    }

    fn on_banner(&mut self, k: Key, bytes: &[u8]) {
        let slot = match self.index.get(&k) {
            Some(&i) => &mut self.rows[i].banner,
            None => &mut self.pending.entry(k).or_default().1,
        };
        if slot.is_none() {
            *slot = Some(bytes.to_vec());
        }
    }

    fn on_service(&mut self, k: Key, info: ServiceInfo) {
        match self.index.get(&k) {
            Some(&i) => self.rows[i].service = Some(info),
            None => self.pending.entry(k).or_default().0 = Some(info),
        }
    }

    /// The row of one key, if a Reply was seen for it.
    pub fn get(&self, addr: Addr, proto: Protocol, port: u16) -> Option<ResultRow> {
        self.row(addr, proto, port).cloned()
    }

    /// The row of one key, borrowed, if a Reply was seen for it.
    pub fn row(&self, addr: Addr, proto: Protocol, port: u16) -> Option<&ResultRow> {
        self.index.get(&(addr, proto, port)).map(|&i| &self.rows[i])
    }

    /// All rows with a Reply, sorted by (address, protocol, port).
    pub fn rows(&self) -> Vec<ResultRow> {
        let mut rows = self.rows.clone();
        rows.sort_by_key(|r| r.key());
        rows
    }

    /// All rows with a Reply, in the order their first Reply came (a row's
    /// place never changes).
    pub fn arrival_order(&self) -> &[ResultRow] {
        &self.rows
    }

    /// Number of rows (keys with a Reply).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no Reply was folded.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Number of ports whose latest state is open (host discovery results,
    /// hosts up, are not ports).
    pub fn open_ports(&self) -> usize {
        self.open[0]
    }

    /// Number of hosts host discovery found up (their latest host result).
    pub fn hosts_up(&self) -> usize {
        self.open[1]
    }
}
