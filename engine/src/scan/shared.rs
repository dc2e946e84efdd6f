//! What the sender, receiver, preload and event threads of one run share: the
//! walk position, stop/idle/hold flags, counters, the send clock for RTTs, and the
//! resume preload's state. Owns no thread; each thread reads and writes its part.

use super::{Preload, ScanControl, ScanPlan};
use crate::classify::Verdict;
use crate::governor::{Governor, RefPool};
use prtip_store::event::{PortState, Protocol};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Mutex;
use std::time::Duration;

/// Shared between the three threads.
pub(super) struct Shared {
    pub(super) position: AtomicU64,
    pub(super) sender_done: AtomicBool,
    pub(super) sender_idle: AtomicBool,
    /// Closed by the event thread while a hold is recorded (Paused .. Resumed).
    pub(super) hold_gate: AtomicBool,
    pub(super) sender_error: Mutex<Option<std::io::Error>>,
    pub(super) rx_stop: AtomicBool,
    /// Frames sent: walk probes and the governor's references.
    pub(super) sent: AtomicU64,
    /// The governor's references among them.
    pub(super) refs_sent: AtomicU64,
    pub(super) invalid: AtomicU64,
    pub(super) drops: AtomicU64,
    /// (first walk position of a batch, send time in ns since start), recent batches.
    pub(super) clock: Mutex<VecDeque<(u64, u64)>>,
    pub(super) rtts: Mutex<Vec<u32>>,
    /// The resume preload is done (always true for a fresh scan).
    pub(super) loaded: AtomicBool,
    /// Someone waits for the preload (it must not wait for the first batch then).
    pub(super) load_wanted: AtomicBool,
    /// open, closed, replies counted by the preload.
    /// The resume preload's open ports, closed ports, replies and hosts up.
    pub(super) loaded_counts: Mutex<[u64; 4]>,
    /// The rate governor (the sender asks it, the receiver tells it about
    /// answered references, the event thread logs its decisions).
    pub(super) gov: Mutex<Governor>,
    /// Whether the governor adapts (read without its lock).
    pub(super) adaptive: bool,
    /// The highest recent RTT of first answers, µs (the receiver's, for the
    /// governor's reference timeout).
    pub(super) rtt_hint_us: AtomicU64,
    /// The latest send time (ns since the start) of a batch one of whose
    /// probes' answers the receiver has read (for the governor: references
    /// sent before it and unanswered were lost, not just not read yet).
    pub(super) heard_sent_ns: AtomicU64,
    /// Recent answered values, for references.
    pub(super) pool: RefPool,
    /// The walk position of the oldest probe the sender deferred (a network with
    /// a rate of its own), `u64::MAX` when none: checkpoints stay below it.
    pub(super) deferred_min: AtomicU64,
    /// Why the uplink failed, while it does (sending holds).
    pub(super) uplink_down: Mutex<Option<String>>,
    /// Set while `uplink_down` is.
    pub(super) uplink_held: AtomicBool,
    /// Nanoseconds since the start of the run when the uplink was last seen working.
    pub(super) uplink_ok_ns: AtomicU64,
    /// An uplink watch runs (it releases holds a send error started).
    pub(super) uplink_watched: AtomicBool,
}

impl Shared {
    /// Wait for the preload; false if aborted meanwhile.
    pub(super) fn wait_loaded(&self, control: &ScanControl) -> bool {
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

pub(super) fn run_preload(plan: &ScanPlan, sh: &Shared, f: Preload<'_>) {
    // Let the first batch go out before competing with the sender for the CPU.
    while sh.sent.load(Relaxed) == 0 && !sh.sender_done.load(SeqCst) && !sh.load_wanted.load(SeqCst)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut counts = [0u64; 4];
    let mut cb = |addr: IpAddr, proto: Protocol, port: u16, state: PortState| {
        if plan.mark_answered(addr, proto, port) {
            match state {
                PortState::Open if proto == Protocol::Host => counts[3] += 1,
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

/// What the receiver hands the event thread.
pub(super) enum Msg {
    /// A valid reply's verdict and its RTT in µs (0: unknown).
    Verdict(Verdict, u32),
}

/// A fresh `Shared` for a run of `plan` from walk position `from`; `preloading`
/// when a resume preload runs beside it.
pub(super) fn new(plan: &ScanPlan, from: u64, preloading: bool) -> Shared {
    let gov = Governor::new(plan.timing.governor, plan.timing.rate_mpps, 0);
    Shared {
        position: AtomicU64::new(from),
        sender_done: AtomicBool::new(false),
        sender_idle: AtomicBool::new(false),
        hold_gate: AtomicBool::new(false),
        sender_error: Mutex::new(None),
        rx_stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        refs_sent: AtomicU64::new(0),
        invalid: AtomicU64::new(0),
        drops: AtomicU64::new(0),
        clock: Mutex::new(VecDeque::new()),
        rtts: Mutex::new(Vec::new()),
        loaded: AtomicBool::new(!preloading),
        load_wanted: AtomicBool::new(false),
        loaded_counts: Mutex::new([0; 4]),
        adaptive: gov.adaptive(),
        gov: Mutex::new(gov),
        pool: RefPool::new(4096),
        rtt_hint_us: AtomicU64::new(0),
        heard_sent_ns: AtomicU64::new(0),
        deferred_min: AtomicU64::new(u64::MAX),
        uplink_down: Mutex::new(None),
        uplink_held: AtomicBool::new(false),
        uplink_ok_ns: AtomicU64::new(0),
        uplink_watched: AtomicBool::new(false),
    }
}
