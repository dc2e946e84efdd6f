//! `-sV`: banner grabbing and service detection over io_uring connections.
//!
//! Owns the per-connection I/O of detection: for every open TCP port it drives a
//! [`prtip_services::Detector`] — connect, passive read (the NULL probe), then the
//! probes the detector picks, each read until it matches, the peer closes, the buffer
//! fills or the probe's wait runs out (a Recv linked to a LINK_TIMEOUT) — and pushes a
//! Banner event per logged answer and one Service event per port. Many ports are
//! worked on at once; each holds at most one socket. The decisions (which probe,
//! what matched) belong to prtip-services; this module never parses answers itself.

use super::ring::{unpack, user_data, with_timeout, Chain, Ring};
use super::{sys, Driver, StopFlag};
use io_uring::{opcode, types};
use prtip_services::{DetectOptions, Detector, NextProbe, ProbeDb};
use prtip_store::event::{
    now_us, Addr, Banner, Checkpoint, Counters, Event, EventSink, PortState, Protocol, Service,
    SinkError,
};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Tunables of service detection.
#[derive(Clone, Debug)]
pub struct GrabOptions {
    /// Ports worked on at once (each holds one socket and a read buffer).
    pub max_parallel: usize,
    /// Connect timeout for each probe's connection.
    pub connect_timeout: Duration,
    /// Probe order, waits and intensity.
    pub detect: DetectOptions,
    /// Most bytes read per probe answer (TLS certificates need a few KiB).
    pub read_cap: usize,
    /// Most bytes of an answer stored in a Banner event.
    pub banner_cap: usize,
    /// Give up on a host this long after detection started on it
    /// (`--host-timeout`; `None`: never): its ports not started get no probe, those
    /// started keep what they learnt and try no further probe.
    pub host_timeout: Option<Duration>,
}

impl Default for GrabOptions {
    fn default() -> Self {
        GrabOptions {
            max_parallel: 512,
            connect_timeout: Duration::from_millis(2000),
            detect: DetectOptions::default(),
            read_cap: 16 * 1024,
            banner_cap: 2048,
            host_timeout: None,
        }
    }
}

/// What detection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrabReport {
    /// Ports worked on.
    pub ports: u64,
    /// Ports a service was named for (any confidence, port-table guesses included).
    pub identified: u64,
    /// Ports named by a hard match or a TLS handshake.
    pub hard: u64,
    /// Banner events pushed.
    pub banners: u64,
    /// Connections opened.
    pub connections: u64,
    /// The stop flag ended detection early (ports not started were skipped).
    pub stopped: bool,
    /// Hosts given up on (`--host-timeout`), with how many of their ports were cut short.
    pub timed_out: Vec<(std::net::IpAddr, u64)>,
}

/// Why detection could not run.
#[derive(Debug, thiserror::Error)]
pub enum GrabError {
    /// io_uring or socket setup failed.
    #[error("service detection: {0}")]
    Io(#[from] io::Error),
    /// The event sink stopped.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

const K_CONNECT: u8 = 1;
const K_SEND: u8 = 2;
const K_RECV: u8 = 3;
const K_TIMEOUT: u8 = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Idle,
    Connecting,
    Sending,
    Receiving,
}

struct Slot<'db> {
    target: SocketAddr,
    det: Option<Detector<'db>>,
    step: Option<NextProbe<'db>>,
    fd: libc::c_int,
    /// The open connection has only seen a passive read with no answer: reusable.
    reusable: bool,
    phase: Phase,
    addr: sys::RawAddr,
    ts: types::Timespec,
    buf: Vec<u8>,
    sent: usize,
    deadline_ns: u64,
    result: i32,
    ops: Chain,
}

/// Detects the services on `targets` (open TCP ports), pushing Banner and Service
/// events into `sink`. Stops starting new ports when `stop` becomes true.
pub fn detect(
    targets: &mut dyn Iterator<Item = SocketAddr>,
    db: &ProbeDb,
    opts: &GrabOptions,
    sink: &mut dyn EventSink,
    stop: &AtomicBool,
) -> Result<GrabReport, GrabError> {
    detect_with(targets, db, opts, sink, &mut StopFlag(stop))
}

/// [`detect`] under a [`Driver`]: a pause stops starting new ports (those started are
/// finished), an abort leaves at once. `tick` gets the number of ports finished.
pub fn detect_with(
    targets: &mut dyn Iterator<Item = SocketAddr>,
    db: &ProbeDb,
    opts: &GrabOptions,
    sink: &mut dyn EventSink,
    driver: &mut dyn Driver,
) -> Result<GrabReport, GrabError> {
    let budget = sys::fd_budget(opts.max_parallel.max(1));
    let cap = budget.sockets;
    let mut slots: Vec<Slot<'_>> = (0..cap)
        .map(|_| Slot {
            target: SocketAddr::from(([0, 0, 0, 0], 0)),
            det: None,
            step: None,
            fd: -1,
            reusable: false,
            phase: Phase::Idle,
            addr: sys::RawAddr::zeroed(),
            ts: types::Timespec::new(),
            buf: Vec::new(),
            sent: 0,
            deadline_ns: 0,
            result: 0,
            ops: Chain::default(),
        })
        .collect();
    // declared after the slots so that it is dropped first: the kernel must be done
    // with the slots' addresses and buffers before they are freed
    let mut ring = Ring::new(cap, 2)?;
    let mut free: Vec<usize> = (0..cap).rev().collect();
    let mut report = GrabReport::default();
    let mut exhausted = false;
    let mut ready: VecDeque<usize> = VecDeque::new(); // slots whose next step must be started
    let mut clock = super::host_clock::HostClock::new(opts.host_timeout);

    loop {
        if driver.aborted() {
            sys::close_all(slots.iter_mut().map(|s| &mut s.fd));
            report.stopped = true;
            break;
        }
        if !report.stopped && driver.pause_requested() {
            report.stopped = true;
        }
        let holding = driver.held();
        if holding && free.len() == cap {
            driver.tick(sink, report.ports, &Counters::default())?;
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        while !free.is_empty() && !exhausted && !report.stopped && !holding {
            let Some(target) = targets.next() else {
                exhausted = true;
                break;
            };
            if !clock.admit(target.ip(), sys::now_ns()) {
                report.ports += 1; // done: --host-timeout gave its host up
                continue;
            }
            let idx = free.pop().unwrap();
            let s = &mut slots[idx];
            s.target = target;
            s.det = Some(Detector::new(db, target.port(), opts.detect.clone()));
            s.fd = -1;
            s.reusable = false;
            s.phase = Phase::Idle;
            report.ports += 1;
            ready.push_back(idx);
        }
        let mut finished_any = false;
        while let Some(idx) = ready.pop_front() {
            let s = &mut slots[idx];
            if clock.expired(s.target.ip(), sys::now_ns()) {
                // --host-timeout: keep what was learnt, try no further probe
                clock.give_up(s.target.ip());
                give_up(s);
            }
            if advance(&mut slots[idx], idx, &mut ring, opts, &mut report)? {
                finish(&mut slots[idx], opts, sink, &mut report)?;
                free.push(idx);
                finished_any = true;
            }
        }
        if finished_any {
            let done = report.ports - (cap - free.len()) as u64;
            driver.tick(sink, done, &Counters::default())?;
        }
        if free.len() == cap && (exhausted || report.stopped) {
            break;
        }
        ring.wait(Duration::from_millis(100))?;
        let done: Vec<(u64, i32)> = ring.drain().collect();
        for (ud, res) in done {
            let (idx, kind, generation) = unpack(ud);
            let s = &mut slots[idx];
            if !s.ops.complete(generation) {
                continue;
            }
            if kind != K_TIMEOUT {
                s.result = res;
            }
            if !s.ops.settled() {
                continue;
            }
            if on_complete(s, opts) {
                ready.push_back(idx);
            }
        }
    }
    report.timed_out = clock.timed_out();
    Ok(report)
}

/// The host timed out: the answer being read is complete as it is, the connection
/// is closed and the remaining probes are skipped (`advance` then finishes the port).
fn give_up(s: &mut Slot<'_>) {
    if s.fd >= 0 {
        sys::close(s.fd, true);
        s.fd = -1;
    }
    if let Some(step) = s.step.take() {
        let det = s.det.as_mut().unwrap();
        det.feed(step.probe, &s.buf, true);
    }
    drain_detector(s);
}

/// Starts the slot's next operation. Returns true when the port is finished.
fn advance<'db>(
    s: &mut Slot<'db>,
    idx: usize,
    ring: &mut Ring,
    opts: &GrabOptions,
    report: &mut GrabReport,
) -> io::Result<bool> {
    loop {
        if s.step.is_none() {
            let det = s.det.as_mut().expect("active slot has a detector");
            match det.next_probe() {
                None => {
                    sys::close(s.fd, true);
                    s.fd = -1;
                    return Ok(true);
                }
                Some(step) => {
                    if s.fd >= 0 && !s.reusable {
                        sys::close(s.fd, true);
                        s.fd = -1;
                    }
                    s.reusable = false;
                    s.buf.clear();
                    s.sent = 0;
                    s.deadline_ns = 0;
                    s.step = Some(step);
                }
            }
        }
        if s.fd < 0 {
            let fd = sys::socket(s.target.ip(), libc::SOCK_STREAM)?;
            s.fd = fd;
            report.connections += 1;
            let len = s.addr.set(s.target);
            s.ts = types::Timespec::from(opts.connect_timeout);
            s.phase = Phase::Connecting;
            let generation = s.ops.start(2);
            let conn = opcode::Connect::new(types::Fd(fd), s.addr.as_ptr(), len)
                .build()
                .user_data(user_data(idx, K_CONNECT, generation));
            let chain = with_timeout(conn, &s.ts, user_data(idx, K_TIMEOUT, generation));
            // SAFETY: `addr` and `ts` live in the slot, which stays in place (the slot
            // vector is never resized) and is not reused until both completions are in.
            unsafe { ring.push(&chain)? };
            return Ok(false);
        }
        let step = s.step.as_ref().unwrap();
        if s.sent < step.payload.len() {
            s.phase = Phase::Sending;
            let generation = s.ops.start(1);
            let rest = &step.payload[s.sent..];
            let send = opcode::Send::new(types::Fd(s.fd), rest.as_ptr(), rest.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(user_data(idx, K_SEND, generation));
            // SAFETY: the payload is borrowed from the probe database (or owned by the
            // step in the slot), both of which outlive the completion.
            unsafe { ring.push(&[send])? };
            return Ok(false);
        }
        // receive until the probe's wait ends
        let now = sys::now_ns();
        if s.deadline_ns == 0 {
            s.deadline_ns = now + step.wait.as_nanos() as u64;
        }
        if now >= s.deadline_ns || s.buf.len() >= opts.read_cap {
            // over: this answer is complete
            let step = s.step.take().unwrap();
            let det = s.det.as_mut().unwrap();
            let decided = det.feed(step.probe, &s.buf, true);
            s.reusable = !decided && step.payload.is_empty() && s.buf.is_empty();
            continue;
        }
        if s.buf.capacity() < opts.read_cap {
            s.buf.reserve_exact(opts.read_cap - s.buf.len());
        }
        s.phase = Phase::Receiving;
        let generation = s.ops.start(2);
        s.ts = types::Timespec::from(Duration::from_nanos(s.deadline_ns - now));
        let len = s.buf.len();
        let space = (opts.read_cap - len) as u32;
        // SAFETY: pointer into the spare capacity of the slot's buffer, which is neither
        // reallocated nor read until the completion is reaped.
        let ptr = unsafe { s.buf.as_mut_ptr().add(len) };
        let recv = opcode::Recv::new(types::Fd(s.fd), ptr, space)
            .build()
            .user_data(user_data(idx, K_RECV, generation));
        let chain = with_timeout(recv, &s.ts, user_data(idx, K_TIMEOUT, generation));
        // SAFETY: as above; `ts` lives in the slot.
        unsafe { ring.push(&chain)? };
        return Ok(false);
    }
}

/// Applies a finished operation. Returns true when the slot should advance.
fn on_complete(s: &mut Slot<'_>, _opts: &GrabOptions) -> bool {
    let res = s.result;
    match s.phase {
        Phase::Connecting => {
            if res != 0 {
                // the port no longer accepts: stop probing it, keep what we learnt
                sys::close(s.fd, false);
                s.fd = -1;
                s.step = None;
                drain_detector(s);
            }
        }
        Phase::Sending => {
            if res < 0 {
                close_and_complete(s);
            } else {
                s.sent += res as usize;
            }
        }
        Phase::Receiving => {
            if res > 0 {
                // SAFETY: the kernel wrote `res` bytes into the spare capacity we lent it.
                unsafe { s.buf.set_len(s.buf.len() + res as usize) };
                let step = s.step.as_ref().unwrap();
                let det = s.det.as_mut().unwrap();
                if det.feed(step.probe, &s.buf, false) {
                    s.step = None;
                }
            } else if res == 0 || (res != -libc::ECANCELED && res != -libc::EINTR) {
                // EOF or reset: the answer is complete and the connection is gone
                close_and_complete(s);
            } else {
                // the wait ran out: advance() sees the deadline and completes the answer
            }
        }
        Phase::Idle => {}
    }
    s.phase = Phase::Idle;
    true
}

fn close_and_complete(s: &mut Slot<'_>) {
    sys::close(s.fd, true);
    s.fd = -1;
    if let Some(step) = s.step.take() {
        let det = s.det.as_mut().unwrap();
        det.feed(step.probe, &s.buf, true);
    }
}

/// The port stopped accepting connections: skip the remaining probes.
fn drain_detector(s: &mut Slot<'_>) {
    let det = s.det.as_mut().unwrap();
    while let Some(step) = det.next_probe() {
        det.feed(step.probe, &[], true);
    }
}

fn finish(
    s: &mut Slot<'_>,
    opts: &GrabOptions,
    sink: &mut dyn EventSink,
    report: &mut GrabReport,
) -> Result<(), SinkError> {
    let det = s.det.take().expect("finished slot has a detector");
    let out = det.finish();
    let addr = Addr::from(s.target.ip());
    let port = s.target.port();
    for (probe, bytes) in out.banners {
        let n = bytes.len().min(opts.banner_cap);
        sink.push(Event::Banner(Banner {
            addr,
            port,
            proto: Protocol::Tcp,
            time_us: now_us(),
            probe,
            bytes: bytes[..n].to_vec(),
        }))?;
        report.banners += 1;
    }
    if let Some(d) = out.detection {
        report.identified += 1;
        if !d.soft && d.method != "port-table" {
            report.hard += 1;
        }
        sink.push(Event::Service(Service {
            addr,
            port,
            proto: Protocol::Tcp,
            time_us: now_us(),
            extra: d.extra(),
            name: d.service,
            product: d.product,
            version: d.version,
            confidence: d.confidence,
            method: d.method.to_string(),
        }))?;
    }
    s.buf = Vec::new();
    Ok(())
}

/// An [`EventSink`] wrapper that passes everything on and remembers the open TCP ports
/// it saw, so that `-sV` can follow any port scan (`-sS` or `-sT`).
pub struct OpenPorts<'a> {
    inner: &'a mut dyn EventSink,
    /// Open TCP ports seen so far, in the order they were reported.
    pub open: Vec<SocketAddr>,
    /// Keep a `Finished` event back instead of passing it on (so that detection runs
    /// before the scan is marked finished); see [`OpenPorts::take_finished`].
    pub hold_finished: bool,
    finished: Option<Event>,
}

impl<'a> OpenPorts<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn EventSink) -> OpenPorts<'a> {
        OpenPorts {
            inner,
            open: Vec::new(),
            hold_finished: false,
            finished: None,
        }
    }

    /// The wrapped sink back.
    pub fn into_inner(self) -> &'a mut dyn EventSink {
        self.inner
    }

    /// The `Finished` event held back (with `hold_finished`), to push after detection.
    pub fn take_finished(&mut self) -> Option<Event> {
        self.finished.take()
    }

    /// The open ports, sorted and without duplicates (a retry may report one twice).
    pub fn take_sorted(&mut self) -> Vec<SocketAddr> {
        let mut v = std::mem::take(&mut self.open);
        v.sort();
        v.dedup();
        v
    }
}

impl EventSink for OpenPorts<'_> {
    fn push(&mut self, event: Event) -> Result<(), SinkError> {
        match &event {
            Event::Reply(r) if r.proto == Protocol::Tcp && r.state == PortState::Open => {
                self.open.push(SocketAddr::new(r.addr.ip(), r.port));
            }
            Event::Finished(_) if self.hold_finished => {
                self.finished = Some(event);
                return Ok(());
            }
            _ => {}
        }
        self.inner.push(event)
    }
    fn checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), SinkError> {
        self.inner.checkpoint(checkpoint)
    }
}
