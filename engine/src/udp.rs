//! `-sU`: the UDP scan, over io_uring with connected UDP sockets (no privilege needed).
//!
//! Owns: per port, one connected UDP socket with IP_RECVERR, a chain of SQEs
//! Send(payload) → Recv → LINK_TIMEOUT, and the verdict as nmap reports it: a UDP
//! reply → open (`UdpResponse`), ICMP port unreachable (ECONNREFUSED on the socket) →
//! closed (`PortUnreachable`), another ICMP unreachable → filtered (`IcmpUnreachable`,
//! exact code read from the socket's error queue), silence after the retries →
//! open|filtered (`NoResponse`). Payloads come from the probe database
//! ([`prtip_services::ProbeDb::udp_probe`]: DNS, NTP, SNMP, NetBIOS, SSDP, ...); other
//! ports get an empty datagram. With service detection on, a reply is matched against
//! the probe's rules and becomes Banner and Service events.
//!
//! Why connected sockets and not raw packets: the kernel delivers the ICMP errors that
//! answer a connected UDP socket to that socket (as an errno, and with IP_RECVERR the
//! ICMP type and code), so the scan needs neither CAP_NET_RAW nor a packet filter and
//! works for any user; the price is one descriptor per port in flight, bounded by the
//! same descriptor budget as `-sT`.
//!
//! ICMP rate limiting: Linux answers at most about one port unreachable per second per
//! peer after a burst of six (net.ipv4.icmp_ratelimit), other systems similarly. A
//! port that stays silent and then answers ICMP on a retry is proof that errors were
//! dropped; the scan then widens the gap between probes to that host (doubling, from
//! 250 ms up to `max_host_gap`, at each new proof) and gives that host's silent ports
//! [`LIMITED_EXTRA_RETRIES`] more attempts, so closed ports are not misreported as
//! open|filtered. Never builds packets by hand, never touches the permutation.

use crate::connect::ring::{unpack, user_data, with_timeout, Chain, Ring};
use crate::connect::{sys, walk::Walk, Driver, Job, StopFlag};
use crate::pacing::TokenBucket;
use io_uring::{opcode, squeue, types};
use prtip_services::ProbeDb;
use prtip_store::event::{
    now_us, Addr, Banner, Counters, Event, EventSink, PortState, Protocol, Reason, Reply, Service,
    SinkError,
};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Tunables of a UDP scan.
#[derive(Clone, Debug)]
pub struct UdpOptions {
    /// How long to wait for an answer to one datagram.
    pub timeout: Duration,
    /// Further datagrams after a silent one.
    pub max_retries: u32,
    /// Ports in flight at once (the descriptor budget may lower it).
    pub max_inflight: usize,
    /// Datagrams per second × 1000, 0 = unlimited.
    pub rate_mpps: u64,
    /// Upper bound of the per-host gap the rate-limit detector may impose.
    pub max_host_gap: Duration,
    /// Match replies and push Banner and Service events (`-sV`).
    pub service_detection: bool,
    /// Checkpoint every this many finished ports (0 = only by time).
    pub checkpoint_every_probes: u64,
    /// Checkpoint at least this often (zero = only by count).
    pub checkpoint_every: Duration,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            timeout: Duration::from_millis(1000),
            max_retries: 2,
            max_inflight: 1024,
            rate_mpps: 0,
            max_host_gap: Duration::from_millis(1000),
            service_detection: false,
            checkpoint_every_probes: 0,
            checkpoint_every: Duration::from_secs(1),
        }
    }
}

/// What a UDP scan did.
#[derive(Clone, Debug)]
pub struct UdpReport {
    /// Counters (sent = datagrams including retries).
    pub counters: Counters,
    /// Ports open|filtered.
    pub open_filtered: u64,
    /// Ports filtered (ICMP unreachable other than port unreachable).
    pub filtered: u64,
    /// Ports that answered ICMP only on a retry (evidence of ICMP rate limiting).
    pub rate_limited: u64,
    /// First walk position not finished.
    pub next_position: u64,
    /// The stop flag ended the scan early.
    pub stopped: bool,
    /// Largest per-host gap imposed, milliseconds.
    pub max_gap_ms: u64,
}

/// Why a UDP scan could not run.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// io_uring or socket setup failed.
    #[error("UDP scan: {0}")]
    Io(#[from] io::Error),
    /// The event sink stopped.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

const K_SEND: u8 = 1;
const K_RECV: u8 = 2;
const K_TIMEOUT: u8 = 3;
const RECV_CAP: usize = 4096;
const GAP_START: Duration = Duration::from_millis(250);
/// Attempts added for ports of a host that showed ICMP rate limiting.
pub const LIMITED_EXTRA_RETRIES: u32 = 4;

struct Slot<'db> {
    fd: libc::c_int,
    job: Job,
    attempt: u32,
    payload: &'db [u8],
    probe: Option<&'db prtip_services::Probe>,
    ts: types::Timespec,
    buf: Box<[u8; RECV_CAP]>,
    started_ns: u64,
    recv_res: i32,
    ops: Chain,
}

#[derive(Default, Clone, Copy)]
struct HostPace {
    next_ok_ns: u64,
    gap_ns: u64,
}

/// How an ICMP error read from a socket's error queue looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// errno the kernel derived from it.
    pub errno: i32,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub icmp_code: u8,
}

/// Reads one queued ICMP error from a socket with IP_RECVERR / IPV6_RECVERR set.
pub fn read_error_queue(fd: libc::c_int) -> Option<IcmpError> {
    let mut data = [0u8; 64];
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header we then fill in.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in msg refers to a local buffer that outlives the call.
    let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if r < 0 {
        return None;
    }
    // SAFETY: CMSG_* walk the control buffer the kernel just filled, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let level = (*c).cmsg_level;
            let kind = (*c).cmsg_type;
            if (level == libc::SOL_IP && kind == libc::IP_RECVERR)
                || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR)
            {
                let ee = libc::CMSG_DATA(c) as *const libc::sock_extended_err;
                let ee = std::ptr::read_unaligned(ee);
                return Some(IcmpError {
                    errno: ee.ee_errno as i32,
                    icmp_type: ee.ee_type,
                    icmp_code: ee.ee_code,
                });
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    None
}

fn open_socket(addr: SocketAddr) -> io::Result<libc::c_int> {
    let fd = sys::socket(addr.ip(), libc::SOCK_DGRAM)?;
    let setup = || -> io::Result<()> {
        match addr.ip() {
            IpAddr::V4(_) => sys::setsockopt_int(fd, libc::SOL_IP, libc::IP_RECVERR, 1)?,
            IpAddr::V6(_) => sys::setsockopt_int(fd, libc::SOL_IPV6, libc::IPV6_RECVERR, 1)?,
        }
        let mut raw = sys::RawAddr::zeroed();
        let len = raw.set(addr);
        // SAFETY: raw holds a valid sockaddr of `len` bytes for the call's duration.
        if unsafe { libc::connect(fd, raw.as_ptr(), len) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    match setup() {
        Ok(()) => Ok(fd),
        Err(e) => {
            sys::close(fd, false);
            Err(e)
        }
    }
}

/// Runs a UDP scan over `jobs`, one Reply per port into `sink` (plus Banner/Service
/// with service detection), checkpointing as it goes.
pub fn scan(
    jobs: &mut dyn Iterator<Item = Job>,
    db: &ProbeDb,
    opts: &UdpOptions,
    sink: &mut dyn EventSink,
    stop: &AtomicBool,
) -> Result<UdpReport, UdpError> {
    scan_with(jobs, db, opts, sink, &mut StopFlag(stop))
}

/// [`scan`] under a [`Driver`] (pause, abort, progress).
pub fn scan_with(
    jobs: &mut dyn Iterator<Item = Job>,
    db: &ProbeDb,
    opts: &UdpOptions,
    sink: &mut dyn EventSink,
    driver: &mut dyn Driver,
) -> Result<UdpReport, UdpError> {
    let budget = sys::fd_budget(opts.max_inflight.max(1));
    let cap = budget.sockets;
    let mut slots: Vec<Slot<'_>> = (0..cap)
        .map(|_| Slot {
            fd: -1,
            job: Job {
                position: 0,
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            },
            attempt: 0,
            payload: &[],
            probe: None,
            ts: types::Timespec::new(),
            buf: Box::new([0u8; RECV_CAP]),
            started_ns: 0,
            recv_res: 0,
            ops: Chain::default(),
        })
        .collect();
    // declared after the slots so it is dropped first (the kernel writes into slot buffers)
    let mut ring = Ring::new(cap, 3)?;
    let mut free: Vec<usize> = (0..cap).rev().collect();
    let mut limit = cap;
    let mut queue: VecDeque<(Job, u32)> = VecDeque::new(); // retries and host-paced jobs
    let mut walk = Walk::new(
        jobs,
        opts.checkpoint_every_probes,
        opts.checkpoint_every,
        sys::now_ns(),
    );
    let mut hosts: HashMap<IpAddr, HostPace> = HashMap::new();
    let mut c = Counters::default();
    let (mut open_filtered, mut filtered, mut rate_limited) = (0u64, 0u64, 0u64);
    let mut max_gap_ns = 0u64;
    let mut bucket = TokenBucket::new(
        opts.rate_mpps,
        TokenBucket::smooth_burst(opts.rate_mpps),
        sys::now_ns(),
    );
    let mut stopped = false;
    let max_queue = cap * 4;

    loop {
        if driver.aborted() {
            sys::close_all(slots.iter_mut().map(|s| &mut s.fd));
            stopped = true;
            break;
        }
        if !stopped && driver.pause_requested() {
            stopped = true;
        }
        let holding = driver.held();
        let mut wake_ns: u64 = 100_000_000;
        // 1. start probes: queued first (retries, paced jobs), then new jobs
        let mut scanned = 0usize;
        let queued = queue.len();
        while !stopped && !holding && cap - free.len() < limit {
            let from_queue = scanned < queued;
            let next = if from_queue {
                scanned += 1;
                queue.pop_front()
            } else if queue.len() < max_queue {
                walk.next_job().map(|j| (j, 0))
            } else {
                None
            };
            let Some((job, attempt)) = next else {
                if from_queue {
                    continue;
                }
                break;
            };
            let now = sys::now_ns();
            // only hosts that showed rate limiting are in the map (memory stays small)
            if let Some(pace) = hosts.get(&job.addr.ip()) {
                if pace.next_ok_ns > now {
                    wake_ns = wake_ns.min(pace.next_ok_ns - now);
                    queue.push_back((job, attempt));
                    continue;
                }
            }
            if bucket.take(now, 1) == 0 {
                wake_ns = wake_ns.min(bucket.wait_ns(now, 1).max(1000));
                queue.push_front((job, attempt));
                break;
            }
            let fd = match open_socket(job.addr) {
                Ok(fd) => fd,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS)
                    ) && cap - free.len() > 0 =>
                {
                    queue.push_front((job, attempt));
                    limit = cap - free.len();
                    break;
                }
                Err(e) => return Err(UdpError::Io(e)),
            };
            if let Some(pace) = hosts.get_mut(&job.addr.ip()) {
                pace.next_ok_ns = now + pace.gap_ns;
            }
            let idx = free.pop().expect("room implies a free slot");
            let s = &mut slots[idx];
            s.fd = fd;
            s.job = job;
            s.attempt = attempt;
            s.probe = db.udp_probe(job.addr.port());
            s.payload = s.probe.map(|p| p.payload.as_slice()).unwrap_or(&[]);
            s.ts = types::Timespec::from(opts.timeout);
            s.started_ns = now;
            let generation = s.ops.start(3);
            s.recv_res = -libc::ECANCELED;
            let send = opcode::Send::new(types::Fd(fd), s.payload.as_ptr(), s.payload.len() as u32)
                .build()
                .flags(squeue::Flags::IO_LINK)
                .user_data(user_data(idx, K_SEND, generation));
            let recv = opcode::Recv::new(types::Fd(fd), s.buf.as_mut_ptr(), RECV_CAP as u32)
                .build()
                .user_data(user_data(idx, K_RECV, generation));
            let [recv, to] = with_timeout(recv, &s.ts, user_data(idx, K_TIMEOUT, generation));
            // SAFETY: payload (borrowed from the database), the receive buffer (boxed in
            // the slot) and the timespec (in the slot) stay valid and unmoved until the
            // three completions are reaped; the slot is reused only after that.
            unsafe { ring.push(&[send, recv, to])? };
            c.sent += 1;
        }
        let inflight = cap - free.len();
        if inflight == 0 {
            if stopped || (walk.exhausted() && queue.is_empty()) {
                break;
            }
            if holding {
                driver.tick(sink, walk.next_position(), &c)?;
            }
            std::thread::sleep(Duration::from_nanos(wake_ns.min(50_000_000)));
            continue;
        }
        ring.wait(Duration::from_nanos(wake_ns))?;
        let done: Vec<(u64, i32)> = ring.drain().collect();
        for (ud, res) in done {
            let (idx, kind, generation) = unpack(ud);
            let s = &mut slots[idx];
            if !s.ops.complete(generation) {
                continue;
            }
            if kind == K_RECV {
                s.recv_res = res;
            } else if kind == K_SEND && res < 0 && res != -libc::ECANCELED {
                // a send error (e.g. ECONNREFUSED from an earlier ICMP) is the answer
                s.recv_res = res;
            }
            if !s.ops.settled() {
                continue;
            }
            let res = s.recv_res;
            let job = s.job;
            let attempt = s.attempt;
            let rtt_us = ((sys::now_ns() - s.started_ns) / 1000).min(u32::MAX as u64) as u32;
            let icmp = if res < 0 && res != -libc::ECANCELED {
                read_error_queue(s.fd)
            } else {
                None
            };
            let reply_bytes = if res > 0 {
                Some(s.buf[..res as usize].to_vec())
            } else {
                None
            };
            let probe = s.probe;
            sys::close(s.fd, false);
            s.fd = -1;
            free.push(idx);
            let (state, reason, code) = match res {
                // a datagram came back (an empty one counts: recv returned 0 bytes)
                r if r >= 0 => (PortState::Open, Reason::UdpResponse, 0u8),
                r if -r == libc::ECONNREFUSED => (
                    PortState::Closed,
                    Reason::PortUnreachable,
                    icmp.map(|e| e.icmp_code).unwrap_or(3),
                ),
                r if -r == libc::ECANCELED || -r == libc::ETIME => {
                    // a host that rate-limits its ICMP errors gets extra attempts, now
                    // paced, before silence is believed
                    let extra = if hosts.contains_key(&job.addr.ip()) {
                        LIMITED_EXTRA_RETRIES
                    } else {
                        0
                    };
                    if attempt < opts.max_retries + extra {
                        queue.push_back((job, attempt + 1));
                        continue;
                    }
                    (PortState::OpenFiltered, Reason::NoResponse, 0)
                }
                _ => (
                    PortState::Filtered,
                    Reason::IcmpUnreachable,
                    icmp.map(|e| e.icmp_code).unwrap_or(0),
                ),
            };
            if attempt > 0 && matches!(reason, Reason::PortUnreachable | Reason::IcmpUnreachable) {
                // silent first, ICMP later: errors are being rate limited
                rate_limited += 1;
                let pace = hosts.entry(job.addr.ip()).or_default();
                pace.gap_ns = (pace.gap_ns * 2)
                    .max(GAP_START.as_nanos() as u64)
                    .min(opts.max_host_gap.as_nanos() as u64);
                max_gap_ns = max_gap_ns.max(pace.gap_ns);
            }
            match state {
                PortState::Open => c.open += 1,
                PortState::Closed => c.closed += 1,
                PortState::OpenFiltered => open_filtered += 1,
                // UDP probes never give `unfiltered`; counted with filtered.
                PortState::Filtered | PortState::Unfiltered => filtered += 1,
            }
            if reason != Reason::NoResponse {
                c.replies += 1;
            }
            let addr = Addr::from(job.addr.ip());
            let port = job.addr.port();
            sink.push(Event::Reply(Reply {
                addr,
                port,
                proto: Protocol::Udp,
                state,
                reason,
                ttl: 0,
                icmp_code: code,
                rtt_us: if reason == Reason::NoResponse {
                    0
                } else {
                    rtt_us
                },
                time_us: now_us(),
            }))?;
            if let (true, Some(bytes)) = (opts.service_detection, reply_bytes) {
                let name = probe
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| "empty".into());
                sink.push(Event::Banner(Banner {
                    addr,
                    port,
                    proto: Protocol::Udp,
                    time_us: now_us(),
                    probe: name,
                    bytes: bytes[..bytes.len().min(2048)].to_vec(),
                }))?;
                let detection = probe.and_then(|p| db.match_response(p, &bytes));
                let (name, product, version, extra, confidence, method) = match detection {
                    Some(d) => (
                        d.service.clone(),
                        d.product.clone(),
                        d.version.clone(),
                        d.extra(),
                        d.confidence,
                        d.method,
                    ),
                    None => match db.port_service(port, prtip_services::Protocol::Udp) {
                        Some(s) => (
                            s.name.clone(),
                            String::new(),
                            String::new(),
                            String::new(),
                            prtip_services::db::CONF_PORT_TABLE,
                            "port-table",
                        ),
                        None => {
                            walk.finish(job.position);
                            continue;
                        }
                    },
                };
                sink.push(Event::Service(Service {
                    addr,
                    port,
                    proto: Protocol::Udp,
                    time_us: now_us(),
                    name,
                    product,
                    version,
                    extra,
                    confidence,
                    method: method.to_string(),
                }))?;
            }
            walk.finish(job.position);
        }
        driver.tick(sink, walk.next_position(), &c)?;
        walk.checkpoint_if_due(sink, c, sys::now_ns())?;
    }
    Ok(UdpReport {
        counters: c,
        open_filtered,
        filtered,
        rate_limited,
        next_position: walk.next_position(),
        stopped,
        max_gap_ms: max_gap_ns / 1_000_000,
    })
}
