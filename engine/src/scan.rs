//! The scan loop: walk the permutation, pace, send, read replies, decide port states,
//! and push every fact into the event sink.
//!
//! Owns: [`ScanPlan`] (a `ScanSpec` turned into targets, ports, walk, cookies and
//! timing), the answered-set bitmap, the sender / receiver / event threads, retries,
//! the late-reply wait, checkpoints, samples, pause/hold/abort through [`ScanControl`].
//! Never opens sockets itself (it is handed a [`BackendPair`]) and never writes files
//! (it is handed an [`EventSink`]).
//!
//! Threads: the sender owns the `Transmit` half, the receiver owns the `Receive`
//! half and classifies frames, and the calling thread owns the sink: it turns
//! verdicts into `Reply` events and writes `Checkpoint` and `Sample` events.
//!
//! Checkpoints: `Checkpoint { next_index }` promises that every walk position below
//! `next_index` was sent and its replies are in the log. The event thread therefore
//! checkpoints the position the sender had reached `min(--wait, 2 s)` earlier (replies
//! to later probes may still be in flight); on pause it stops the sender, waits
//! `--wait`, and checkpoints the exact position. Resume sends from `next_index`: at
//! most that window is probed twice, never a probe skipped.
//!
//! Answered set: one bit per (target, port) value, set by the first valid reply;
//! later replies for a set bit are dropped (duplicates folded), retry passes skip set
//! bits, and after the last pass every clear bit becomes `filtered` (TCP) or
//! `open|filtered` (UDP). On resume the caller rebuilds it from the log's `Reply`
//! events ([`ScanPlan::mark_answered`]). It is allocated lazily (the kernel maps
//! zero pages on first touch) and only when the index space has at most
//! [`ANSWERED_CAP`] values (256 MiB); above that, retries resend every probe,
//! duplicates are folded by the log's projections, and silent ports are not reported.

use crate::backend::{BackendPair, Probe, Receive, Transmit};
use crate::classify::{Classified, Verdict};
use crate::cookie::Cookies;
use crate::metrics;
use crate::pacing::{self, TokenBucket};
use crate::permutation::Walk;
use crate::ports::PortList;
use crate::probe::ProbeSet;
use crate::targets::{TargetError, TargetSet};
use prtip_store::event::{
    now_us, Addr, Checkpoint, Counters, Event, EventSink, PortState, Protocol, Reason, Reply,
    Sample, ScanSpec, ScanType, SinkError,
};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest index space that gets an answered-set bitmap (2^31 values = 256 MiB).
pub const ANSWERED_CAP: u64 = 1 << 31;
/// Probes per send call.
const BATCH: u64 = 64;

/// Why a spec cannot be scanned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Targets did not parse.
    #[error(transparent)]
    Targets(#[from] TargetError),
    /// Ports did not parse.
    #[error(transparent)]
    Ports(#[from] crate::ports::PortError),
    /// Something else about the spec.
    #[error("{0}")]
    Spec(String),
}

/// Why a scan stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The sink (log writer) failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The backend failed.
    #[error("packet backend: {0}")]
    Backend(#[from] std::io::Error),
}

/// Exact timing a plan runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanTiming {
    /// Probes per second × 1000 (0 = unlimited).
    pub rate_mpps: u64,
    /// Retransmissions.
    pub max_retries: u32,
    /// Late-reply wait, ms.
    pub wait_ms: u64,
    /// Least time between passes, ms.
    pub retry_gap_ms: u64,
}

impl PlanTiming {
    /// Timing of `spec`: its rate capped by its `max_rate_mpps`, its retries and
    /// wait, and its retry gap (else the timing template's, at most the wait).
    pub fn of(spec: &ScanSpec) -> PlanTiming {
        let mut rate_mpps = spec.rate_mpps;
        if spec.max_rate_mpps > 0 && (rate_mpps == 0 || rate_mpps > spec.max_rate_mpps) {
            rate_mpps = spec.max_rate_mpps;
        }
        let retry_gap_ms = spec.retry_gap_ms.unwrap_or_else(|| {
            pacing::timing(spec.timing)
                .map(|t| t.retry_gap_ms)
                .unwrap_or(1000)
                .min(spec.wait_ms.max(1))
        });
        PlanTiming {
            rate_mpps,
            max_retries: spec.max_retries,
            wait_ms: spec.wait_ms,
            retry_gap_ms,
        }
    }
}

/// The answered set: one bit per index-space value.
struct Answered {
    bits: Vec<AtomicU64>,
}

impl Answered {
    fn new(n: u64) -> Answered {
        let words = n.div_ceil(64) as usize;
        let mut bits = Vec::with_capacity(words);
        // `resize_with` of zeroed atomics becomes a calloc'd region: pages are only
        // backed once touched.
        bits.resize_with(words, || AtomicU64::new(0));
        Answered { bits }
    }
    #[inline]
    fn get(&self, v: u64) -> bool {
        self.bits[(v / 64) as usize].load(Relaxed) & (1 << (v % 64)) != 0
    }
    /// Set; true if it was clear.
    #[inline]
    fn set(&self, v: u64) -> bool {
        let m = 1 << (v % 64);
        self.bits[(v / 64) as usize].fetch_or(m, Relaxed) & m == 0
    }
}

/// A `ScanSpec` made ready to run.
pub struct ScanPlan {
    /// The spec as given.
    pub spec: ScanSpec,
    /// Target addresses.
    pub targets: TargetSet,
    /// Ports.
    pub ports: PortList,
    /// The walk of this shard.
    pub walk: Walk,
    /// Cookie function.
    pub cookies: Cookies,
    /// Timing.
    pub timing: PlanTiming,
    answered: Option<Answered>,
    answered_in_shard: AtomicU64,
}

impl ScanPlan {
    /// Build from a spec. Host names are looked up in `spec.resolved` only (the cli
    /// resolves once before writing the spec), so a plan never touches DNS.
    pub fn new(spec: &ScanSpec) -> Result<ScanPlan, PlanError> {
        let mut lookup = |name: &str| -> Result<IpAddr, String> {
            spec.resolved
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.addr.ip())
                .ok_or_else(|| "not resolved when the scan started".to_string())
        };
        let targets = TargetSet::build(&spec.targets, &spec.excludes, &mut lookup)?;
        let default = if spec.scan_type == ScanType::Udp {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let ports = PortList::parse(&spec.ports, default)?;
        Self::from_parts(spec.clone(), targets, ports)
    }

    /// Build from already parsed targets and ports.
    pub fn from_parts(
        spec: ScanSpec,
        targets: TargetSet,
        ports: PortList,
    ) -> Result<ScanPlan, PlanError> {
        if targets.is_empty() {
            return Err(PlanError::Spec(
                "no targets left to scan (after excludes)".into(),
            ));
        }
        if ports.is_empty() {
            return Err(PlanError::Spec("no ports to scan".into()));
        }
        if !targets.v6.is_empty() && spec.scan_type != ScanType::Connect {
            return Err(PlanError::Spec(format!(
                "{} IPv6 targets given: the SYN engine sends IPv4 only for now (IPv6 addresses parse; use -sT for IPv6)",
                targets.v6.len()
            )));
        }
        let range = targets
            .len()
            .checked_mul(ports.len() as u64)
            .filter(|r| *r < 1 << 62)
            .ok_or_else(|| {
                PlanError::Spec(format!(
                    "{} targets × {} ports is more probes than prtip's 2^62 index space",
                    targets.len(),
                    ports.len()
                ))
            })?;
        let timing = PlanTiming::of(&spec);
        let passes = timing.max_retries as u64 + 1;
        if range.checked_mul(passes).is_none_or(|t| t >= 1 << 63) {
            return Err(PlanError::Spec(
                "index space × (retries + 1) does not fit in 2^63; lower --max-retries".into(),
            ));
        }
        let walk = Walk::new(range, spec.seed, spec.shard_index, spec.shard_count, passes);
        let answered = (range <= ANSWERED_CAP).then(|| Answered::new(range));
        Ok(ScanPlan {
            cookies: Cookies::new(spec.seed),
            spec,
            targets,
            ports,
            walk,
            timing,
            answered,
            answered_in_shard: AtomicU64::new(0),
        })
    }

    /// Walk positions of this shard (targets × ports × passes).
    pub fn total_probes(&self) -> u64 {
        self.walk.len()
    }
    /// Number of target addresses.
    pub fn total_targets(&self) -> u64 {
        self.targets.len()
    }
    /// Whether duplicates are folded and silent ports reported (index space ≤ cap).
    pub fn has_answered_set(&self) -> bool {
        self.answered.is_some()
    }

    /// Index-space value of (address, protocol, port), if the scan covers it.
    #[inline]
    pub fn value_of(&self, addr: IpAddr, proto: Protocol, port: u16) -> Option<u64> {
        let t = self.targets.index_of(addr)?;
        let p = self.ports.index_of(proto, port)? as u64;
        Some(t + self.targets.len() * p)
    }

    /// (address, protocol, port) of an index-space value.
    #[inline]
    pub fn probe_of(&self, v: u64) -> (IpAddr, Protocol, u16) {
        let n = self.targets.len();
        let (proto, port) = self.ports.get((v / n) as usize);
        (
            self.targets
                .get(v % n)
                .expect("value within the index space"),
            proto,
            port,
        )
    }

    /// The probe sent at walk position `p`.
    #[inline]
    pub fn probe_at(&self, p: u64) -> (u64, Probe) {
        let (v, _) = self.walk.at(p);
        let n = self.targets.len();
        let (proto, dport) = self.ports.get((v / n) as usize);
        let dst = IpAddr::V4(self.targets.get_v4(v % n));
        let c = self.cookies.cookie(dst, dport, proto);
        (
            v,
            Probe {
                dst,
                dport,
                sport: c.sport,
                seq: c.seq,
                proto,
            },
        )
    }

    /// Record that (address, protocol, port) already has a state (resume: replay the
    /// log's `Reply` events through this). Returns true if it was new to this shard.
    pub fn mark_answered(&self, addr: IpAddr, proto: Protocol, port: u16) -> bool {
        match (self.value_of(addr, proto, port), &self.answered) {
            (Some(v), Some(a)) if self.walk.position_of(v).is_some() => {
                let new = a.set(v);
                if new {
                    self.answered_in_shard.fetch_add(1, Relaxed);
                }
                new
            }
            _ => false,
        }
    }

    fn is_answered(&self, v: u64) -> bool {
        self.answered.as_ref().is_some_and(|a| a.get(v))
    }

    fn all_answered(&self) -> bool {
        self.answered.is_some() && self.answered_in_shard.load(Relaxed) >= self.walk.span()
    }
}

/// Live numbers a progress line or monitor can read while a scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Walk positions done (sent or skipped as answered).
    pub position: AtomicU64,
    /// Walk length.
    pub total: AtomicU64,
    /// Probes sent by this process.
    pub sent: AtomicU64,
    /// Valid replies.
    pub replies: AtomicU64,
    /// Open ports found.
    pub open: AtomicU64,
    /// Closed ports found.
    pub closed: AtomicU64,
}

/// Switches the cli, signal handlers or a monitor flip while a scan runs.
#[derive(Debug, Default)]
pub struct ScanControl {
    stop: AtomicBool,
    hold: AtomicBool,
    abort: AtomicBool,
    reason: Mutex<String>,
    /// Live progress.
    pub progress: Progress,
}

impl ScanControl {
    /// New, running.
    pub fn new() -> ScanControl {
        ScanControl::default()
    }
    /// Pause and return: stop sending, wait for late replies, write Checkpoint + Paused.
    pub fn request_pause(&self, reason: &str) {
        *self.reason.lock().unwrap() = reason.to_string();
        self.stop.store(true, SeqCst);
    }
    /// Pause in place (the process keeps running until [`ScanControl::release`]).
    pub fn hold(&self, reason: &str) {
        *self.reason.lock().unwrap() = reason.to_string();
        self.hold.store(true, SeqCst);
    }
    /// Continue after [`ScanControl::hold`].
    pub fn release(&self) {
        self.hold.store(false, SeqCst);
    }
    /// Stop at once: no wait, no more events (the log stays resumable).
    pub fn abort(&self) {
        self.abort.store(true, SeqCst);
        self.stop.store(true, SeqCst);
    }
    /// Whether a pause was requested.
    pub fn pause_requested(&self) -> bool {
        self.stop.load(SeqCst)
    }
    /// Whether held in place.
    pub fn is_held(&self) -> bool {
        self.hold.load(SeqCst)
    }
    /// Whether aborted.
    pub fn is_aborted(&self) -> bool {
        self.abort.load(SeqCst)
    }
    /// Why the scan was paused or held (`SIGINT`, `monitor`, ...).
    pub fn reason(&self) -> String {
        self.reason.lock().unwrap().clone()
    }
}

/// How a run starts and what it reports.
pub struct RunOptions<'a> {
    /// History id (goes into ScanStarted).
    pub scan_id: u64,
    /// Command line as typed.
    pub command_line: Vec<String>,
    /// `None`: a fresh scan (writes ScanStarted). `Some(i)`: resume at walk position `i`
    /// (writes Resumed).
    pub resume_from: Option<u64>,
    /// Counters restored from the last checkpoint when resuming.
    pub counters: Counters,
    /// Durable log bytes so far, for samples.
    pub log_bytes: Option<&'a (dyn Fn() -> u64 + Sync)>,
    /// Checkpoint spacing in ms (0: only by count; both 0: 1000 ms).
    pub checkpoint_every_ms: u64,
    /// Checkpoint spacing in probes (0: only by time).
    pub checkpoint_every_probes: u64,
    /// Sample spacing (default 1 s).
    pub sample_every: Duration,
    /// Resume: replays the log's decided ports (address, protocol, port, state) into
    /// the callback it is given. Runs on its own thread while the first probes go out
    /// (positions before the checkpoint are not probed again in the first pass); the
    /// engine waits for it before a retry pass, a pause, or the end. The open, closed
    /// and reply counters of the log are counted from it, not taken from `counters`.
    pub preload: Option<Preload<'a>>,
}

/// See [`RunOptions::preload`].
pub type Preload<'a> =
    Box<dyn FnOnce(&mut dyn FnMut(IpAddr, Protocol, u16, PortState)) + Send + 'a>;

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            scan_id: 0,
            command_line: Vec::new(),
            resume_from: None,
            counters: Counters::default(),
            log_bytes: None,
            checkpoint_every_ms: 1000,
            checkpoint_every_probes: 0,
            sample_every: Duration::from_secs(1),
            preload: None,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Walk complete, wait over, Finished written.
    Finished {
        /// Final counters.
        counters: Counters,
    },
    /// Paused on request: Checkpoint + Paused written.
    Paused {
        /// Where a resume continues.
        next_index: u64,
        /// Walk length.
        total: u64,
        /// Counters at the pause.
        counters: Counters,
    },
    /// Aborted at once: nothing more written; resume from the last checkpoint.
    Aborted,
}

/// Shared between the three threads.
struct Shared {
    position: AtomicU64,
    sender_done: AtomicBool,
    sender_idle: AtomicBool,
    /// Closed by the event thread while a hold is recorded (Paused .. Resumed).
    hold_gate: AtomicBool,
    sender_error: Mutex<Option<std::io::Error>>,
    rx_stop: AtomicBool,
    sent: AtomicU64,
    invalid: AtomicU64,
    drops: AtomicU64,
    /// (first walk position of a batch, send time in ns since start), recent batches.
    clock: Mutex<VecDeque<(u64, u64)>>,
    rtts: Mutex<Vec<u32>>,
    /// The resume preload is done (always true for a fresh scan).
    loaded: AtomicBool,
    /// Someone waits for the preload (it must not wait for the first batch then).
    load_wanted: AtomicBool,
    /// open, closed, replies counted by the preload.
    loaded_counts: Mutex<[u64; 3]>,
}

impl Shared {
    /// Wait for the preload; false if aborted meanwhile.
    fn wait_loaded(&self, control: &ScanControl) -> bool {
        self.load_wanted.store(true, SeqCst);
        while !self.loaded.load(SeqCst) {
            if control.is_aborted() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }
}

fn run_preload(plan: &ScanPlan, sh: &Shared, f: Preload<'_>) {
    // Let the first batch go out before competing with the sender for the CPU.
    while sh.sent.load(Relaxed) == 0 && !sh.sender_done.load(SeqCst) && !sh.load_wanted.load(SeqCst)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut counts = [0u64; 3];
    let mut cb = |addr: IpAddr, proto: Protocol, port: u16, state: PortState| {
        let new = match &plan.answered {
            Some(_) => plan.mark_answered(addr, proto, port),
            None => true,
        };
        if new {
            match state {
                PortState::Open => counts[0] += 1,
                PortState::Closed => counts[1] += 1,
                _ => {}
            }
            counts[2] += 1;
        }
    };
    f(&mut cb);
    *sh.loaded_counts.lock().unwrap() = counts;
    sh.loaded.store(true, SeqCst);
}

/// Turns one verdict into events and counters.
type ApplyFn<'a> = dyn FnMut(Msg, &mut dyn EventSink, &mut Counters) -> Result<(), ScanError> + 'a;

enum Msg {
    Verdict(Verdict, u32),
}

/// Run `plan` to completion, pause or abort.
pub fn run(
    plan: &ScanPlan,
    io: BackendPair,
    sink: &mut dyn EventSink,
    control: &ScanControl,
    mut opts: RunOptions<'_>,
) -> Result<ScanOutcome, ScanError> {
    let start = Instant::now();
    let preload = opts.preload.take();
    let total = plan.walk.len();
    let from = opts.resume_from.unwrap_or(0).min(total);
    let mut counters = opts.counters;
    let sent_before = counters.sent;
    control.progress.total.store(total, Relaxed);
    control.progress.position.store(from, Relaxed);
    crate::lifecycle::push_start(plan, &opts, sink, total, from)?;
    // Make the first event durable at once: a scan killed right after starting is
    // still a resumable log (its checkpoint says: start at 0). A resumed log has its
    // checkpoints already; it goes straight to sending.
    if opts.resume_from.is_none() {
        sink.checkpoint(Checkpoint {
            next_index: from,
            counters,
            time_us: now_us(),
        })?;
    }
    let shared = Shared {
        position: AtomicU64::new(from),
        sender_done: AtomicBool::new(false),
        sender_idle: AtomicBool::new(false),
        hold_gate: AtomicBool::new(false),
        sender_error: Mutex::new(None),
        rx_stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        invalid: AtomicU64::new(0),
        drops: AtomicU64::new(0),
        clock: Mutex::new(VecDeque::new()),
        rtts: Mutex::new(Vec::new()),
        loaded: AtomicBool::new(preload.is_none()),
        load_wanted: AtomicBool::new(false),
        loaded_counts: Mutex::new([0; 3]),
    };
    let (vtx, vrx) = crossbeam_channel::unbounded::<Msg>();
    let BackendPair { tx, rx, probes } = io;
    let probes = &probes;
    std::thread::scope(|s| {
        let shared = &shared;
        if let Some(f) = preload {
            std::thread::Builder::new()
                .name("prtip-preload".into())
                .spawn_scoped(s, move || run_preload(plan, shared, f))
                .expect("spawn preload");
        }
        let rxh = std::thread::Builder::new()
            .name("prtip-rx".into())
            .spawn_scoped(s, move || receiver(plan, rx, probes, shared, vtx, start))
            .expect("spawn receiver");
        let txh = std::thread::Builder::new()
            .name("prtip-tx".into())
            .spawn_scoped(s, move || sender(plan, tx, control, shared, from, start))
            .expect("spawn sender");
        let r = event_loop(
            plan,
            probes,
            sink,
            control,
            &opts,
            shared,
            &vrx,
            &mut counters,
            from,
            start,
            sent_before,
        );
        shared.rx_stop.store(true, SeqCst);
        control.abort.load(SeqCst); // (sender watches control)
        if r.is_err() {
            control.abort();
        }
        let _ = txh.join();
        let _ = rxh.join();
        r
    })
}

fn sender(
    plan: &ScanPlan,
    mut tx: Box<dyn Transmit>,
    control: &ScanControl,
    sh: &Shared,
    from: u64,
    start: Instant,
) {
    let total = plan.walk.len();
    let span = plan.walk.span().max(1);
    let rate = plan.timing.rate_mpps;
    let ns = |t: Instant| t.duration_since(start).as_nanos() as u64;
    let mut bucket = TokenBucket::new(rate, TokenBucket::catchup_burst(rate), ns(Instant::now()));
    let mut p = from;
    let mut last_send = Instant::now();
    let mut probes: Vec<Probe> = Vec::with_capacity(BATCH as usize);
    let mut positions: Vec<u64> = Vec::with_capacity(BATCH as usize);
    let gap = Duration::from_millis(plan.timing.retry_gap_ms);
    while p < total {
        if control.is_aborted() || control.pause_requested() {
            break;
        }
        if control.is_held() || sh.hold_gate.load(SeqCst) {
            // Held: idle until released and the event thread has recorded the hold
            // as over (it opens the gate after writing Resumed).
            sh.sender_idle.store(true, SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        if sh.sender_idle.load(SeqCst) {
            // Leaving a hold: say so first, then look again (the event thread may
            // have closed the gate meanwhile; one of the two sees the other).
            sh.sender_idle.store(false, SeqCst);
            if control.is_held() || sh.hold_gate.load(SeqCst) {
                continue;
            }
            bucket.reset(ns(Instant::now()));
        }
        if p.is_multiple_of(span) && p > 0 {
            // A new retry pass: nothing to do if everything answered; else let replies
            // to the end of the previous pass come back first.
            if !sh.wait_loaded(control) {
                break;
            }
            if plan.all_answered() {
                p = total;
                sh.position.store(p, Release);
                break;
            }
            let ready = last_send + gap;
            let now = Instant::now();
            if now < ready {
                std::thread::sleep((ready - now).min(Duration::from_millis(10)));
                continue;
            }
        }
        let now = ns(Instant::now());
        let want = BATCH.min(total - p).min(span - p % span);
        let n = bucket.take(now, want);
        if n == 0 {
            let w = bucket.wait_ns(now, 1).min(10_000_000);
            std::thread::sleep(Duration::from_nanos(w));
            continue;
        }
        probes.clear();
        positions.clear();
        let first = p;
        let pass_end = (p / span + 1) * span;
        while (probes.len() as u64) < n && p < pass_end.min(total) {
            let (v, probe) = plan.probe_at(p);
            p += 1;
            if plan.is_answered(v) {
                continue;
            }
            probes.push(probe);
            positions.push(p - 1);
        }
        if !probes.is_empty() {
            let mut off = 0;
            while off < probes.len() {
                match tx.send(&probes[off..]) {
                    Ok(k) => off += k,
                    Err(e) => {
                        *sh.sender_error.lock().unwrap() = Some(e);
                        sh.sender_done.store(true, SeqCst);
                        return;
                    }
                }
                if off < probes.len()
                    && (control.pause_requested() || control.is_held() || control.is_aborted())
                {
                    // The backend stopped short and a pause or hold came: the walk
                    // goes on from the first probe it did not take.
                    p = positions[off];
                    break;
                }
            }
            last_send = Instant::now();
            sh.sent.fetch_add(off as u64, Relaxed);
            control.progress.sent.fetch_add(off as u64, Relaxed);
            let mut c = sh.clock.lock().unwrap();
            c.push_back((first, ns(last_send)));
            if c.len() > 1 << 16 {
                c.pop_front();
            }
        }
        sh.position.store(p, Release);
        control.progress.position.store(p, Relaxed);
    }
    sh.sender_done.store(true, SeqCst);
}

fn receiver(
    plan: &ScanPlan,
    mut rx: Box<dyn Receive>,
    probes: &ProbeSet,
    sh: &Shared,
    out: crossbeam_channel::Sender<Msg>,
    start: Instant,
) {
    let span = plan.walk.span().max(1);
    while !sh.rx_stop.load(SeqCst) {
        let r = rx.recv(Duration::from_millis(20), &mut |frame| match probes
            .classify(frame, &plan.cookies)
        {
            Classified::Reply(v) => {
                let Some(val) = plan.value_of(v.addr, v.proto, v.port) else {
                    sh.invalid.fetch_add(1, Relaxed);
                    return;
                };
                let Some(q) = plan.walk.position_of(val) else {
                    return; // another shard's probe
                };
                if let Some(a) = &plan.answered {
                    if !a.set(val) {
                        return; // duplicate
                    }
                    plan.answered_in_shard.fetch_add(1, Relaxed);
                }
                // RTT: the latest send of this value is in the latest pass already reached.
                let now = start.elapsed().as_nanos() as u64;
                let pos = sh.position.load(Acquire);
                let mut cand = q;
                while cand + span < pos {
                    cand += span;
                }
                let rtt = {
                    let c = sh.clock.lock().unwrap();
                    let i = c.partition_point(|&(first, _)| first <= cand);
                    if i == 0 {
                        0
                    } else {
                        ((now.saturating_sub(c[i - 1].1)) / 1000).min(u32::MAX as u64) as u32
                    }
                };
                if rtt > 0 {
                    let mut r = sh.rtts.lock().unwrap();
                    if r.len() < 1 << 16 {
                        r.push(rtt);
                    }
                }
                let _ = out.send(Msg::Verdict(v, rtt));
            }
            Classified::Invalid => {
                sh.invalid.fetch_add(1, Relaxed);
            }
            Classified::Ignored => {}
        });
        if r.is_err() {
            break;
        }
        sh.drops.store(rx.stats().drops, Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
fn event_loop(
    plan: &ScanPlan,
    probes: &ProbeSet,
    sink: &mut dyn EventSink,
    control: &ScanControl,
    opts: &RunOptions<'_>,
    sh: &Shared,
    vrx: &crossbeam_channel::Receiver<Msg>,
    counters: &mut Counters,
    from: u64,
    start: Instant,
    sent_before: u64,
) -> Result<ScanOutcome, ScanError> {
    let total = plan.walk.len();
    let wait = Duration::from_millis(plan.timing.wait_ms);
    let lag = wait.min(Duration::from_secs(2));
    let ck_every = crate::lifecycle::checkpoint_interval(opts);
    let iface = plan.spec.interface.clone().unwrap_or_default();
    let mut cpu = metrics::CpuMeter::default();
    let mut history: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut last_ck = Instant::now();
    let mut last_ck_pos = from;
    let mut last_sample = Instant::now();
    let mut last_sample_counts = (counters.sent, counters.replies);
    let mut held = false;
    let mut merged = false;
    // Add the preload's counts once it is done.
    let merge = |merged: &mut bool, counters: &mut Counters| {
        if !*merged && sh.loaded.load(SeqCst) {
            let [o, c, r] = *sh.loaded_counts.lock().unwrap();
            counters.open += o;
            counters.closed += c;
            counters.replies += r;
            control.progress.open.store(counters.open, Relaxed);
            control.progress.closed.store(counters.closed, Relaxed);
            *merged = true;
        }
    };

    let mut apply =
        |m: Msg, sink: &mut dyn EventSink, counters: &mut Counters| -> Result<(), ScanError> {
            let Msg::Verdict(v, rtt) = m;
            counters.replies += 1;
            match v.state {
                PortState::Open => counters.open += 1,
                PortState::Closed => counters.closed += 1,
                _ => {}
            }
            control.progress.replies.fetch_add(1, Relaxed);
            control.progress.open.store(counters.open, Relaxed);
            control.progress.closed.store(counters.closed, Relaxed);
            sink.push(Event::Reply(Reply {
                addr: Addr::from(v.addr),
                port: v.port,
                proto: v.proto,
                state: v.state,
                reason: v.reason,
                ttl: v.ttl,
                icmp_code: v.icmp_code,
                rtt_us: rtt,
                time_us: now_us(),
            }))?;
            Ok(())
        };
    let refresh = |counters: &mut Counters| {
        counters.sent = sent_before + sh.sent.load(Relaxed);
        counters.invalid = sh.invalid.load(Relaxed);
        counters.drops = sh.drops.load(Relaxed);
    };
    // Drain verdicts for `d`, or until the sender is idle/done and (if `until_answered`)
    // everything is answered.
    let drain = |d: Duration,
                 sink: &mut dyn EventSink,
                 counters: &mut Counters,
                 apply: &mut ApplyFn<'_>|
     -> Result<(), ScanError> {
        let end = Instant::now() + d;
        loop {
            if control.is_aborted() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= end || (plan.all_answered() && vrx.is_empty()) {
                return Ok(());
            }
            match vrx.recv_timeout((end - now).min(Duration::from_millis(20))) {
                Ok(m) => apply(m, sink, counters)?,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(_) => return Ok(()),
            }
        }
    };

    loop {
        if control.is_aborted() {
            return Ok(ScanOutcome::Aborted);
        }
        match vrx.recv_timeout(Duration::from_millis(20)) {
            Ok(m) => {
                apply(m, sink, counters)?;
                // Keep up with bursts before doing periodic work.
                for m in vrx.try_iter().take(4096) {
                    apply(m, sink, counters)?;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(_) => {}
        }
        if let Some(e) = sh.sender_error.lock().unwrap().take() {
            return Err(ScanError::Backend(e));
        }
        let now = Instant::now();
        let pos = sh.position.load(Acquire);
        history.push_back((now, pos));
        while history.len() > 2 && history[1].0 + lag <= now {
            history.pop_front();
        }
        refresh(counters);

        // Pause in place (SIGUSR1 / monitor): close the gate; once the sender idles
        // behind it, wait, checkpoint, Paused. The gate stays closed until Resumed
        // is written, so no probe of after the hold is answered before it.
        if control.is_held() && !held {
            sh.hold_gate.store(true, SeqCst);
            if sh.sender_idle.load(SeqCst) {
                drain(wait, sink, counters, &mut apply)?;
                refresh(counters);
                let p = sh.position.load(Acquire);
                crate::lifecycle::push_paused(sink, p, *counters, control.reason())?;
                last_ck_pos = p;
                held = true;
            }
        }
        if !control.is_held() {
            if held {
                crate::lifecycle::push_resumed(sink, last_ck_pos)?;
                held = false;
                history.clear();
            }
            // Released (before or after the hold was on record): let the sender go.
            sh.hold_gate.store(false, SeqCst);
        }

        merge(&mut merged, counters);
        let done = sh.sender_done.load(SeqCst);
        if control.pause_requested() && (done || !control.is_aborted()) {
            // Wait for the sender to stop, then for late replies.
            while !sh.sender_done.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            drain(wait, sink, counters, &mut apply)?;
            if control.is_aborted() || !sh.wait_loaded(control) {
                return Ok(ScanOutcome::Aborted);
            }
            merge(&mut merged, counters);
            if control.is_aborted() {
                return Ok(ScanOutcome::Aborted);
            }
            refresh(counters);
            let p = sh.position.load(Acquire);
            crate::lifecycle::push_paused(sink, p, *counters, control.reason())?;
            return Ok(ScanOutcome::Paused {
                next_index: p,
                total,
                counters: *counters,
            });
        }
        if done {
            if let Some(e) = sh.sender_error.lock().unwrap().take() {
                return Err(ScanError::Backend(e));
            }
            break;
        }

        // Periodic checkpoint at the lagged position.
        let by_time = now.duration_since(last_ck) >= ck_every;
        let by_count = opts.checkpoint_every_probes > 0
            && pos.saturating_sub(last_ck_pos) >= opts.checkpoint_every_probes;
        if (by_time || by_count) && !held {
            let lagged = history
                .iter()
                .rev()
                .find(|(t, _)| *t + lag <= now)
                .map(|(_, p)| *p);
            if let Some(lp) = lagged.filter(|lp| *lp > last_ck_pos) {
                sink.checkpoint(Checkpoint {
                    next_index: lp,
                    counters: *counters,
                    time_us: now_us(),
                })?;
                last_ck_pos = lp;
            }
            last_ck = now;
        }
        if now.duration_since(last_sample) >= opts.sample_every {
            push_sample(
                sink,
                counters,
                &mut last_sample,
                &mut last_sample_counts,
                &mut cpu,
                &iface,
                opts,
                sh,
            )?;
        }
    }

    // Walk done: wait for late replies (not needed when everything answered).
    if !sh.wait_loaded(control) {
        return Ok(ScanOutcome::Aborted);
    }
    merge(&mut merged, counters);
    drain(wait, sink, counters, &mut apply)?;
    if control.is_aborted() {
        return Ok(ScanOutcome::Aborted);
    }
    for m in vrx.try_iter() {
        apply(m, sink, counters)?;
    }
    refresh(counters);
    // Silent ports: no reply after every pass.
    if plan.answered.is_some() && !plan.all_answered() {
        for q in 0..plan.walk.span() {
            let (v, _) = plan.walk.at(q);
            if !plan.is_answered(v) {
                let (addr, proto, port) = plan.probe_of(v);
                let state = probes.silence(proto);
                sink.push(Event::Reply(Reply {
                    addr: Addr::from(addr),
                    port,
                    proto,
                    state,
                    reason: Reason::NoResponse,
                    ttl: 0,
                    icmp_code: 0,
                    rtt_us: 0,
                    time_us: now_us(),
                }))?;
            }
        }
    }
    push_sample(
        sink,
        counters,
        &mut last_sample,
        &mut last_sample_counts,
        &mut cpu,
        &iface,
        opts,
        sh,
    )?;
    crate::lifecycle::push_finished(sink, total, *counters)?;
    let _ = start;
    Ok(ScanOutcome::Finished {
        counters: *counters,
    })
}

#[allow(clippy::too_many_arguments)]
fn push_sample(
    sink: &mut dyn EventSink,
    counters: &Counters,
    last: &mut Instant,
    last_counts: &mut (u64, u64),
    cpu: &mut metrics::CpuMeter,
    iface: &str,
    opts: &RunOptions<'_>,
    sh: &Shared,
) -> Result<(), ScanError> {
    let now = Instant::now();
    let dt = now.duration_since(*last).as_secs_f64().max(1e-6);
    let (rx_b, tx_b) = metrics::net_bytes(iface);
    let mut rtts = std::mem::take(&mut *sh.rtts.lock().unwrap());
    sink.push(Event::Sample(Sample {
        time_us: now_us(),
        pps: (counters.sent - last_counts.0) as f64 / dt,
        rps: (counters.replies - last_counts.1) as f64 / dt,
        counters: *counters,
        cpu_percent: cpu.percent(),
        rss_bytes: metrics::rss_bytes(),
        net_tx_bytes: tx_b,
        net_rx_bytes: rx_b,
        log_bytes: opts.log_bytes.map(|f| f()).unwrap_or(0),
        rtt_us: metrics::percentiles(&mut rtts),
    }))?;
    *last = now;
    *last_counts = (counters.sent, counters.replies);
    Ok(())
}

/// The frame parameters for probes leaving through `route`.
pub fn frame_params(route: &crate::route::Route) -> crate::backend::FrameParams {
    crate::backend::FrameParams {
        src_mac: route.src_mac,
        dst_mac: route.dst_mac,
        src_ip: route.src_v4(),
        ttl: 64,
    }
}

/// Open the AF_PACKET backend for `route` with the SYN template and UDP templates
/// whose payload `udp_payload(port)` gives (empty payload when `None`).
pub fn open_packet_backend(
    route: &crate::route::Route,
    udp_payload: &dyn Fn(u16) -> Option<Vec<u8>>,
    udp_ports: &[u16],
) -> std::io::Result<BackendPair> {
    open_packet_backend_prepared(route, udp_payload, udp_ports, None)
}

/// [`open_packet_backend`], with the receiver's socket and ring made beforehand
/// when `rx` is given (see [`crate::backend::packet::PreparedRx`]: its set-up
/// waits ~8 ms for the kernel, which a caller can overlap with other work).
pub fn open_packet_backend_prepared(
    route: &crate::route::Route,
    udp_payload: &dyn Fn(u16) -> Option<Vec<u8>>,
    udp_ports: &[u16],
    rx: Option<crate::backend::packet::PreparedRx>,
) -> std::io::Result<BackendPair> {
    let probes = ProbeSet::syn_udp(&frame_params(route), udp_payload, udp_ports);
    crate::backend::packet::open_pair_prepared(&route.iface, probes, rx)
}
