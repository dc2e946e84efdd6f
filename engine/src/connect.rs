//! `-sT`: the TCP connect scan over io_uring, and (in [`grab`]) banner grabbing and
//! service detection over io_uring connections.
//!
//! Owns: the connect loop (thousands of non-blocking connects in flight, each an
//! IORING_OP_CONNECT linked to an IORING_OP_LINK_TIMEOUT), the descriptor budget
//! (RLIMIT_NOFILE raised soft→hard when allowed, the in-flight bound adapted when the
//! kernel still says EMFILE or runs out of ephemeral ports), retries of timed-out
//! attempts, pacing with the engine's token bucket, and the Reply events: connected →
//! open (`Connected`), ECONNREFUSED → closed (`ConnRefused`), no answer after the
//! retries → filtered (`NoResponse`), ICMP unreachable → filtered (`IcmpUnreachable`).
//! Needs no privilege. Never builds packets, never touches the permutation (the caller
//! hands it the walk as [`Job`]s), never writes files.
//!
//! Checkpoints: jobs arrive in walk order; a checkpoint's `next_index` is the lowest
//! walk position whose connect is not finished, so resuming from it never skips a port.

pub mod grab;
pub mod host_clock;
pub mod ring;
pub mod run;
pub mod sys;
pub(crate) mod walk;

use crate::pacing::TokenBucket;
use io_uring::{opcode, types};
use prtip_store::event::{
    now_us, Addr, Counters, Event, EventSink, PortState, Protocol, Reason, Reply, SinkError,
};
use ring::{unpack, user_data, with_timeout, Chain, Ring};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
pub use sys::FdBudget;

/// One port to try: its position in the scan's walk (the checkpoint unit) and address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// Walk position; strictly increasing across the jobs of one scan.
    pub position: u64,
    /// Target address and port.
    pub addr: SocketAddr,
}

/// Tunables of a connect scan.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// How long one connect attempt may take before it counts as unanswered.
    pub timeout: Duration,
    /// Further attempts after an unanswered one (`--max-retries`).
    pub max_retries: u32,
    /// Upper bound on connects in flight; the descriptor budget may lower it.
    pub max_inflight: usize,
    /// Connect attempts per second × 1000 (the engine's unit), 0 = unlimited.
    pub rate_mpps: u64,
    /// Write a checkpoint every this many finished ports (0 = only by time).
    pub checkpoint_every_probes: u64,
    /// Write a checkpoint at least this often (zero = only by count).
    pub checkpoint_every: Duration,
    /// Skip a host's remaining ports this long after its first connect
    /// (`--host-timeout`; `None`: never). Skipped ports get no Reply.
    pub host_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Duration::from_millis(1000),
            max_retries: 1,
            max_inflight: 4096,
            rate_mpps: 0,
            checkpoint_every_probes: 0,
            checkpoint_every: Duration::from_secs(1),
            host_timeout: None,
        }
    }
}

/// What a connect scan did.
#[derive(Clone, Debug)]
pub struct ConnectReport {
    /// Counters (sent = connect attempts including retries).
    pub counters: Counters,
    /// Ports found filtered.
    pub filtered: u64,
    /// First walk position not finished: resume from here.
    pub next_position: u64,
    /// The stop flag ended the walk early.
    pub stopped: bool,
    /// The descriptor budget at the start.
    pub budget: FdBudget,
    /// Highest number of connects in flight at once.
    pub peak_inflight: usize,
    /// Times the in-flight bound was lowered (EMFILE, ENFILE, EADDRNOTAVAIL, ENOBUFS).
    pub adaptations: u64,
    /// Hosts given up on (`--host-timeout`), with how many of their ports were skipped.
    pub timed_out: Vec<(std::net::IpAddr, u64)>,
}

/// Why a connect scan could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// io_uring or socket setup failed.
    #[error("connect scan: {0}")]
    Io(#[from] io::Error),
    /// The event sink stopped.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

const K_CONNECT: u8 = 1;
const K_TIMEOUT: u8 = 2;

struct Slot {
    fd: libc::c_int,
    job: Job,
    attempt: u32,
    addr: sys::RawAddr,
    ts: types::Timespec,
    started_ns: u64,
    result: Option<i32>,
    ops: Chain,
}

/// What a scan loop asks of whoever runs it, between turns (about every 100 ms and
/// after every batch of completions).
pub trait Driver {
    /// Stop starting new work; what is in flight completes and is reported (pause).
    fn pause_requested(&self) -> bool;
    /// Stop at once and push nothing more (the log stays resumable from its last checkpoint).
    fn aborted(&self) -> bool {
        false
    }
    /// Pause in place: start nothing new, let what is in flight finish, keep calling
    /// `tick` until this turns false again.
    fn held(&self) -> bool {
        false
    }
    /// Progress: the first unfinished walk position and the counters so far. The
    /// driver may push events of its own (samples).
    fn tick(
        &mut self,
        _sink: &mut dyn EventSink,
        _next_position: u64,
        _counters: &Counters,
    ) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A [`Driver`] that only watches a stop flag.
pub struct StopFlag<'a>(pub &'a AtomicBool);

impl Driver for StopFlag<'_> {
    fn pause_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs a connect scan over `jobs`, pushing one Reply per port into `sink`, and
/// checkpoints as it goes. Returns early (after the connects in flight finish) when
/// `stop` becomes true.
pub fn scan(
    jobs: &mut dyn Iterator<Item = Job>,
    opts: &ConnectOptions,
    sink: &mut dyn EventSink,
    stop: &AtomicBool,
) -> Result<ConnectReport, ConnectError> {
    scan_with(jobs, opts, sink, &mut StopFlag(stop))
}

/// [`scan`] under a [`Driver`] (pause, abort, progress).
pub fn scan_with(
    jobs: &mut dyn Iterator<Item = Job>,
    opts: &ConnectOptions,
    sink: &mut dyn EventSink,
    driver: &mut dyn Driver,
) -> Result<ConnectReport, ConnectError> {
    let budget = sys::fd_budget(opts.max_inflight.max(1));
    let cap = budget.sockets;
    let mut slots: Vec<Slot> = (0..cap)
        .map(|_| Slot {
            fd: -1,
            job: Job {
                position: 0,
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            },
            attempt: 0,
            addr: sys::RawAddr::zeroed(),
            ts: types::Timespec::new(),
            started_ns: 0,
            result: None,
            ops: Chain::default(),
        })
        .collect();
    // declared after the slots so that it is dropped first: the kernel must be done
    // with the slots' addresses and buffers before they are freed
    let mut ring = Ring::new(cap, 2)?;
    let mut free: Vec<usize> = (0..cap).rev().collect();
    let mut limit = cap;
    let mut retry: VecDeque<(Job, u32)> = VecDeque::new();
    let mut walk = walk::Walk::new(
        jobs,
        opts.checkpoint_every_probes,
        opts.checkpoint_every,
        sys::now_ns(),
    );
    let mut c = Counters::default();
    let mut filtered = 0u64;
    let mut peak = 0usize;
    let mut adaptations = 0u64;
    let mut bucket = TokenBucket::new(
        opts.rate_mpps,
        TokenBucket::smooth_burst(opts.rate_mpps),
        sys::now_ns(),
    );
    let mut stopped = false;
    let mut clock = host_clock::HostClock::new(opts.host_timeout);

    loop {
        if driver.aborted() {
            // leave at once; sockets in flight are closed, nothing more is reported
            sys::close_all(slots.iter_mut().map(|s| &mut s.fd));
            stopped = true;
            break;
        }
        if !stopped && driver.pause_requested() {
            stopped = true;
        }
        // 1. start connects while the bound, the jobs and the bucket allow
        let holding = driver.held();
        let inflight = cap - free.len();
        let mut room = limit.saturating_sub(inflight);
        let mut pace_wait_ns = 0u64;
        while room > 0 && !stopped && !holding {
            let next = if let Some(r) = retry.pop_front() {
                Some(r)
            } else {
                walk.next_job().map(|j| (j, 0))
            };
            let Some((job, attempt)) = next else { break };
            let now = sys::now_ns();
            if !clock.admit(job.addr.ip(), now) {
                // --host-timeout: the host is given up on; its port gets no Reply
                walk.finish(job.position);
                continue;
            }
            if bucket.take(now, 1) == 0 {
                pace_wait_ns = bucket.wait_ns(now, 1).max(1000);
                retry.push_front((job, attempt));
                break;
            }
            let fd = match sys::socket(job.addr.ip(), libc::SOCK_STREAM) {
                Ok(fd) => fd,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE)
                            | Some(libc::ENFILE)
                            | Some(libc::ENOBUFS)
                            | Some(libc::ENOMEM)
                    ) =>
                {
                    // the budget was optimistic: hold at what is in flight now
                    retry.push_front((job, attempt));
                    let now_inflight = cap - free.len();
                    if now_inflight == 0 {
                        return Err(ConnectError::Io(e));
                    }
                    limit = now_inflight;
                    adaptations += 1;
                    break;
                }
                Err(e) => return Err(ConnectError::Io(e)),
            };
            let idx = free.pop().expect("room implies a free slot");
            let s = &mut slots[idx];
            s.fd = fd;
            s.job = job;
            s.attempt = attempt;
            let len = s.addr.set(job.addr);
            s.ts = types::Timespec::from(opts.timeout);
            s.started_ns = now;
            let generation = s.ops.start(2);
            s.result = None;
            let conn = opcode::Connect::new(types::Fd(fd), s.addr.as_ptr(), len)
                .build()
                .user_data(user_data(idx, K_CONNECT, generation));
            let chain = with_timeout(conn, &s.ts, user_data(idx, K_TIMEOUT, generation));
            // SAFETY: the address and timespec live in `slots`, which is never resized or
            // moved while the ring runs; the slot is not reused before both completions
            // (connect and its link timeout) have been reaped (`ops` counts them).
            unsafe { ring.push(&chain)? };
            c.sent += 1;
            room -= 1;
        }
        let inflight = cap - free.len();
        peak = peak.max(inflight);
        if inflight == 0 {
            if stopped || (walk.exhausted() && retry.is_empty()) {
                break;
            }
            if holding {
                driver.tick(sink, walk.next_position(), &c)?;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if pace_wait_ns > 0 {
                std::thread::sleep(Duration::from_nanos(pace_wait_ns));
            }
            continue;
        }
        // 2. wait for completions (bounded, so pacing and the stop flag are served)
        let wait = if pace_wait_ns > 0 {
            Duration::from_nanos(pace_wait_ns)
        } else {
            Duration::from_millis(100)
        };
        ring.wait(wait)?;
        let done: Vec<(u64, i32)> = ring.drain().collect();
        for (ud, res) in done {
            let (idx, kind, generation) = unpack(ud);
            let s = &mut slots[idx];
            if !s.ops.complete(generation) {
                continue;
            }
            if kind == K_CONNECT {
                s.result = Some(res);
            }
            if !s.ops.settled() {
                continue;
            }
            // both completions are in: decide
            let res = s.result.unwrap_or(-libc::ECANCELED);
            let job = s.job;
            let attempt = s.attempt;
            let rtt_us = ((sys::now_ns() - s.started_ns) / 1000).min(u32::MAX as u64) as u32;
            let fd = s.fd;
            s.fd = -1;
            free.push(idx);
            let verdict = match -res {
                0 => Some((PortState::Open, Reason::Connected)),
                libc::ECONNREFUSED => Some((PortState::Closed, Reason::ConnRefused)),
                libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EACCES
                | libc::EPERM
                | libc::EHOSTDOWN
                | libc::ENONET => Some((PortState::Filtered, Reason::IcmpUnreachable)),
                libc::EADDRNOTAVAIL | libc::ENOBUFS | libc::EAGAIN => {
                    // out of ephemeral ports or buffers: try again with fewer in flight
                    retry.push_back((job, attempt));
                    limit = (inflight * 3 / 4).max(16).min(limit);
                    adaptations += 1;
                    None
                }
                _ => {
                    // ECANCELED (our timeout fired), ETIMEDOUT, anything else: unanswered
                    if attempt < opts.max_retries {
                        retry.push_back((job, attempt + 1));
                        None
                    } else {
                        Some((PortState::Filtered, Reason::NoResponse))
                    }
                }
            };
            sys::close(fd, res == 0);
            let Some((state, reason)) = verdict else {
                continue;
            };
            match state {
                PortState::Open => c.open += 1,
                PortState::Closed => c.closed += 1,
                _ => filtered += 1,
            }
            if state != PortState::Filtered || reason == Reason::IcmpUnreachable {
                c.replies += 1;
            }
            sink.push(Event::Reply(Reply {
                addr: Addr::from(job.addr.ip()),
                port: job.addr.port(),
                proto: Protocol::Tcp,
                state,
                reason,
                ttl: 0,
                icmp_code: 0,
                rtt_us: if state == PortState::Filtered && reason == Reason::NoResponse {
                    0
                } else {
                    rtt_us
                },
                time_us: now_us(),
            }))?;
            walk.finish(job.position);
        }
        // 3. progress and checkpoint
        driver.tick(sink, walk.next_position(), &c)?;
        walk.checkpoint_if_due(sink, c, sys::now_ns())?;
    }
    let next_position = walk.next_position();
    Ok(ConnectReport {
        counters: c,
        filtered,
        next_position,
        stopped,
        budget,
        peak_inflight: peak,
        adaptations,
        timed_out: clock.timed_out(),
    })
}
