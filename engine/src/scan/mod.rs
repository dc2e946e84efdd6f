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
//! Answered set: the index-space values that have a state, set by the first valid
//! reply; later replies for a set value are dropped (duplicates folded), retry passes
//! skip set values, and the scan ends early once every value of the shard is set.
//! Retry passes follow nmap's rule: `max_retries` is the most retry passes, and
//! after the first one a pass is sent only if the pass before it found answers,
//! at least one per 1 000 of its probes (retransmissions that find nothing stop;
//! a lossy path, such as a policer the rate governor is still learning, keeps
//! them going while they find ports; a wide scan of silence stops after one).
//! It is a compressed bitmap ([`roaring::RoaringTreemap`]): memory grows with the
//! answers (at most ~2 bytes each, 8 KiB per 65 536 consecutive values once dense)
//! and never with the index space, so a /0 × 65 535 scan that hears nothing holds
//! an empty set. Chosen over a flat bitmap (2^31 bits = 256 MiB for a wide scan,
//! touched page by page) and over per-target repetition as zmap does (no duplicate
//! folding, no skipped retries). On resume the caller rebuilds it from the log's
//! `Reply` events ([`ScanPlan::mark_answered`]).
//!
//! Silence is not written: a probe that no pass got an answer for has no event; the
//! log's checkpoints say which walk positions were sent, and readers project the
//! state of the unanswered ones (`prtip_store::space`).

mod events;
mod receiver;
mod sender;
mod shared;
mod uplink;

use crate::backend::{BackendPair, Probe};
use crate::cookie::Cookies;
use crate::pacing;
use crate::permutation::Walk;
use crate::ports::PortList;
use crate::probe::{DiscoveryProbe, ProbeSet};
use crate::targets::{TargetError, TargetSet};
use prtip_store::event::{
    now_us, Checkpoint, Counters, EventSink, PortState, Protocol, ScanSpec, SinkError,
};
use roaring::RoaringTreemap;
use shared::Msg;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

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
    /// How the rate is governed (`rate_mpps` is the ceiling when adaptive).
    /// [`PlanTiming::of`] gives a fixed rate; the session turns the governor on.
    pub governor: crate::governor::GovernorSettings,
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
            governor: crate::governor::GovernorSettings::FIXED,
        }
    }
}

/// The answered set (see the module docs): a compressed bitmap behind a lock, and
/// its size so the all-silent common case reads no lock.
#[derive(Default)]
pub struct Answered {
    set: RwLock<RoaringTreemap>,
    len: AtomicU64,
}

impl Answered {
    /// An empty set.
    pub fn new() -> Answered {
        Answered::default()
    }
    /// Whether `v` is in the set.
    #[inline]
    pub fn contains(&self, v: u64) -> bool {
        self.len.load(Acquire) != 0 && self.set.read().expect("answered set").contains(v)
    }
    /// Insert `v`; true if it was not in the set.
    #[inline]
    pub fn insert(&self, v: u64) -> bool {
        let new = self.set.write().expect("answered set").insert(v);
        if new {
            self.len.fetch_add(1, Release);
        }
        new
    }
    /// Number of values in the set.
    pub fn len(&self) -> u64 {
        self.len.load(Acquire)
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes the set's bitmap takes when serialized (its heap use is of the same
    /// order): grows with the values held, not with the index space.
    pub fn size_bytes(&self) -> usize {
        self.set.read().expect("answered set").serialized_size()
    }
    /// Run `f` with a membership test that holds the lock once (a sender batch).
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&dyn Fn(u64) -> bool) -> R) -> R {
        if self.len.load(Acquire) == 0 {
            return f(&|_| false);
        }
        let set = self.set.read().expect("answered set");
        f(&|v| set.contains(v))
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
    /// The uplink to watch while sending (`-sS`: set by the session from the
    /// route): the scan holds while it fails. `None`: not watched.
    pub uplink: Option<crate::uplink::Uplink>,
    /// Host discovery probes (`-sn`), walk "port" `i` = `discovery[i]`; empty for
    /// a port scan.
    pub discovery: Vec<DiscoveryProbe>,
    answered: Answered,
}

impl ScanPlan {
    /// Build from a spec. Host names are looked up in `spec.resolved` only (the cli
    /// resolves once before writing the spec), so a plan never touches DNS.
    pub fn new(spec: &ScanSpec) -> Result<ScanPlan, PlanError> {
        // The same step every reader of the log takes (`prtip_store::space`).
        let targets = prtip_store::space::target_set(spec)?;
        if spec.scan_type == prtip_store::event::ScanType::Ping {
            let list = DiscoveryProbe::parse_list(&spec.ports).map_err(PlanError::Spec)?;
            return Self::discovery(spec.clone(), targets, list);
        }
        let ports = prtip_store::space::port_list(spec)?;
        Self::from_parts(spec.clone(), targets, ports)
    }

    /// A host discovery plan (`-sn`): the walk is targets × `list` (the probes
    /// that fit the targets' family: no ICMP timestamp or mask for IPv6).
    pub fn discovery(
        spec: ScanSpec,
        targets: TargetSet,
        list: Vec<DiscoveryProbe>,
    ) -> Result<ScanPlan, PlanError> {
        if !targets.v6.is_empty() && !targets.v4.is_empty() {
            return Err(PlanError::Spec(format!(
                "{} IPv4 and {} IPv6 targets given: a -sn scan sends one address family (one route, one source address); scan each family on its own",
                targets.v4.len(),
                targets.v6.len()
            )));
        }
        let v6 = !targets.v6.is_empty();
        let list: Vec<DiscoveryProbe> = list.into_iter().filter(|d| d.fits(v6)).collect();
        if list.is_empty() {
            return Err(PlanError::Spec(
                "no discovery probe fits IPv6 targets (-PP and -PM are ICMPv4 only): add -PE, -PS, -PA, -PU or -PR".into(),
            ));
        }
        let mut plan = Self::from_parts(spec, targets, PortList::probes(list.len() as u16))?;
        // Every probe of a host in the host's shard: a shard alone decides it.
        let s = &plan.spec;
        plan.walk = Walk::grouped(
            plan.targets.len(),
            list.len() as u64,
            s.seed,
            s.shard_index,
            s.shard_count,
            plan.timing.max_retries as u64 + 1,
        );
        plan.discovery = list;
        Ok(plan)
    }

    /// Whether this is a host discovery plan (its results are hosts).
    pub fn is_discovery(&self) -> bool {
        !self.discovery.is_empty()
    }

    /// Host discovery: `addr` answered. Marks every probe of the host answered
    /// (later replies fold, retries skip it); true if it was not up yet.
    pub(crate) fn fold_host(&self, addr: IpAddr) -> bool {
        let Some(t) = self.targets.index_of(addr) else {
            return false;
        };
        let n = self.targets.len();
        let mut new = false;
        for p in 0..self.ports.len() as u64 {
            if self.answered.insert(t + n * p) {
                new |= p == 0;
            }
        }
        new
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
        if !targets.v6.is_empty() && !targets.v4.is_empty() && spec.scan_type.is_raw() {
            return Err(PlanError::Spec(format!(
                "{} IPv4 and {} IPv6 targets given: a {} scan sends one address family (one route, one source address); scan each family on its own (-6 keeps to IPv6), or use -sT for both at once",
                targets.v4.len(),
                targets.v6.len(),
                spec.scan_type.flag()
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
        Ok(ScanPlan {
            cookies: Cookies::with_source_port(spec.seed, spec.probe.source_port),
            spec,
            targets,
            ports,
            walk,
            timing,
            uplink: None,
            answered: Answered::new(),
            discovery: Vec::new(),
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
    /// The answered set (its size, for a memory check).
    pub fn answered(&self) -> &Answered {
        &self.answered
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
        (v, self.probe_for(v))
    }

    /// The probe for index-space value `v`.
    #[inline]
    pub fn probe_for(&self, v: u64) -> Probe {
        let n = self.targets.len();
        let (proto, dport) = self.ports.get((v / n) as usize);
        let dst = if self.targets.v6.is_empty() {
            IpAddr::V4(self.targets.get_v4(v % n))
        } else {
            self.targets
                .get(v % n)
                .expect("value within the index space")
        };
        let c = self.cookies.cookie(dst, dport, proto);
        Probe {
            dst,
            dport,
            sport: c.sport,
            seq: c.seq,
            proto,
        }
    }

    /// Record that (address, protocol, port) already has a state (resume: replay the
    /// log's `Reply` events through this). Returns true if it was new to this shard.
    pub fn mark_answered(&self, addr: IpAddr, proto: Protocol, port: u16) -> bool {
        if proto == Protocol::Host {
            return self.value_of(addr, proto, 0).is_some() && self.fold_host(addr);
        }
        match self.value_of(addr, proto, port) {
            Some(v) if self.walk.position_of(v).is_some() => self.answered.insert(v),
            _ => false,
        }
    }

    fn all_answered(&self) -> bool {
        self.answered.len() >= self.walk.span()
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
    /// Open ports found (hosts up are not ports: `hosts_up`).
    pub open: AtomicU64,
    /// Closed ports found.
    pub closed: AtomicU64,
    /// Host discovery (`-sn`, or the sweep before a port scan): hosts found up.
    pub hosts_up: AtomicU64,
    /// Service detection (`-sV`) after the port scan: ports to detect (0 until
    /// detection starts; then the progress line shows this phase).
    pub detect_total: AtomicU64,
    /// Service detection: ports done.
    pub detect_done: AtomicU64,
}

/// Switches the cli, signal handlers or a monitor flip while a scan runs.
#[derive(Debug, Default)]
pub struct ScanControl {
    stop: AtomicBool,
    hold: AtomicBool,
    abort: AtomicBool,
    reason: Mutex<String>,
    notes: Mutex<Vec<String>>,
    /// Live progress.
    pub progress: Progress,
}

impl ScanControl {
    /// New, running.
    pub fn new() -> ScanControl {
        ScanControl::default()
    }
    /// Leave a message for the operator (e.g. a host given up on by
    /// `--host-timeout`); whoever runs the scan prints [`ScanControl::take_notes`].
    pub fn note(&self, message: String) {
        self.notes.lock().unwrap().push(message);
    }
    /// The notes left so far, oldest first (taken: a second call returns the new ones).
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap())
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
    let counters = opts.counters;
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
    let shared = shared::new(plan, from, preload.is_some());
    let (vtx, vrx) = crossbeam_channel::unbounded::<Msg>();
    let BackendPair { tx, rx, probes } = io;
    let probes = &probes;
    let opts = &opts;
    std::thread::scope(|s| {
        let shared = &shared;
        if let Some(f) = preload {
            std::thread::Builder::new()
                .name("prtip-preload".into())
                .spawn_scoped(s, move || shared::run_preload(plan, shared, f))
                .expect("spawn preload");
        }
        let rxh = std::thread::Builder::new()
            .name("prtip-rx".into())
            .spawn_scoped(s, move || {
                receiver::receiver(plan, rx, probes, shared, vtx, start)
            })
            .expect("spawn receiver");
        let txh = std::thread::Builder::new()
            .name("prtip-tx".into())
            .spawn_scoped(s, move || {
                sender::sender(plan, tx, control, shared, from, start)
            })
            .expect("spawn sender");
        if let Some(u) = &plan.uplink {
            shared.uplink_watched.store(true, SeqCst);
            std::thread::Builder::new()
                .name("prtip-uplink".into())
                .spawn_scoped(s, move || uplink::watch(u, shared, start))
                .expect("spawn uplink watch");
        }
        let events =
            events::EventThread::new(plan, control, opts, shared, &vrx, counters).started_at(start);
        let r = events.run(sink);
        shared.rx_stop.store(true, SeqCst);
        if r.is_err() {
            control.abort();
        }
        let tx_panicked = txh.join().is_err();
        let rx_panicked = rxh.join().is_err();
        match r {
            Ok(_) if tx_panicked || rx_panicked => {
                Err(ScanError::Backend(std::io::Error::other(format!(
                    "the {} thread panicked",
                    if tx_panicked { "sender" } else { "receiver" }
                ))))
            }
            r => r,
        }
    })
}

/// The frame parameters for probes leaving through `route` (TTL 64).
pub fn frame_params(route: &crate::route::Route) -> crate::backend::FrameParams {
    frame_params_with(route, &Default::default())
}

/// [`frame_params`] with the spec's per-probe settings: `--ttl` (IPv4 TTL and
/// IPv6 hop limit, 64 when not given).
pub fn frame_params_with(
    route: &crate::route::Route,
    settings: &prtip_store::event::ProbeSettings,
) -> crate::backend::FrameParams {
    crate::backend::FrameParams {
        src_mac: route.src_mac,
        dst_mac: route.dst_mac,
        src_ip: route.src_v4(),
        ttl: settings.ttl.unwrap_or(64),
    }
}

/// Open the AF_PACKET backend for `route` with the SYN template and UDP templates
/// whose payload `udp_payload(port)` gives (empty payload when `None`).
pub fn open_packet_backend(
    route: &crate::route::Route,
    udp_payload: &dyn Fn(u16) -> Option<Vec<u8>>,
    udp_ports: &[u16],
) -> std::io::Result<BackendPair> {
    open_packet_backend_prepared(
        route,
        probe_set(route, None, udp_payload, udp_ports, &Default::default()),
        None,
    )
}

/// Open the AF_PACKET backend on `route`'s interface for `probes` (see
/// [`probe_set`]), with the receiver's socket and ring made beforehand when `rx`
/// is given (see [`crate::backend::packet::PreparedRx`]: its set-up waits ~8 ms
/// for the kernel, which a caller can overlap with other work).
pub fn open_packet_backend_prepared(
    route: &crate::route::Route,
    probes: ProbeSet,
    rx: Option<crate::backend::packet::PreparedRx>,
) -> std::io::Result<BackendPair> {
    crate::backend::packet::open_pair_prepared(&route.iface, probes, rx)
}

/// The raw scan's probe modules for `route` (its source address's family): TCP
/// probed by `tcp` (`None`: SYN; see [`TcpFlagScan::of`] for a scan type's) and
/// UDP with the payloads `udp_payload` gives for `udp_ports` (empty otherwise).
/// See [`ProbeSet::raw`]. `settings` are the spec's per-probe settings: `--ttl`
/// in every template, `-g` as the one source port the reply filter lets in (the
/// plan's cookies put it in every probe).
///
/// [`TcpFlagScan::of`]: crate::probe::TcpFlagScan::of
pub fn probe_set(
    route: &crate::route::Route,
    tcp: Option<crate::probe::TcpFlagScan>,
    udp_payload: &dyn Fn(u16) -> Option<Vec<u8>>,
    udp_ports: &[u16],
    settings: &prtip_store::event::ProbeSettings,
) -> ProbeSet {
    ProbeSet::raw(
        &frame_params_with(route, settings),
        route.src_ip,
        tcp,
        udp_payload,
        udp_ports,
    )
    .with_source_port(settings.source_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(targets: &str, ports: &str) -> ScanPlan {
        ScanPlan::new(&ScanSpec {
            targets: vec![targets.into()],
            ports: ports.into(),
            seed: 3,
            ..ScanSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn the_answered_set_does_not_grow_with_the_index_space() {
        // 2^8 values and 2^32 values (a /15 × 32 768 ports), the same answers.
        let small = plan("198.18.0.0/24", "1");
        let wide = plan("198.18.0.0/15", "1-32768");
        assert_eq!(small.walk.span(), 1 << 8);
        assert_eq!(wide.walk.span(), 1 << 32);
        assert_eq!(
            small.answered().size_bytes(),
            wide.answered().size_bytes(),
            "empty"
        );
        let empty = wide.answered().size_bytes();
        assert!(empty < 64, "an empty set is a few bytes: {empty}");
        for v in [0u64, 7, 100, 255] {
            assert!(small.answered().insert(v));
            assert!(wide.answered().insert(v));
        }
        assert!(!wide.answered().insert(7), "a duplicate is not new");
        assert_eq!(small.answered().size_bytes(), wide.answered().size_bytes());
        // Answers spread over the whole wide space cost per answer, not per value:
        // 4 096 answers, one per 2^20 values, stay under 64 KiB (a flat bitmap of
        // the space would be 512 MiB).
        for i in 0..4096u64 {
            wide.answered().insert(i << 20 | 5);
        }
        assert_eq!(wide.answered().len(), 4 + 4096);
        assert!(
            wide.answered().size_bytes() < 64 << 10,
            "{}",
            wide.answered().size_bytes()
        );
    }

    #[test]
    fn an_all_answered_dense_space_is_a_bitmap() {
        // A /16 × 4 ports, every probe answered: 262 144 values in 32 KiB.
        let p = plan("198.18.0.0/16", "1-4");
        let a = p.answered();
        for v in 0..p.walk.span() {
            assert!(a.insert(v));
        }
        assert!(p.all_answered());
        assert!(a.size_bytes() <= 33 << 10, "{}", a.size_bytes());
    }
}
