//! The AF_XDP backend of `prtip scan --xdp IFACE`: the engine's [`Transmit`] and
//! [`Receive`] over one AF_XDP socket per queue, with the scan filter attached
//! to the interface. Owns the sockets, their sender threads (one per queue when
//! there are several) and the filter; never touches permutation, cookies,
//! pacing, retries or events (the engine's scan loop owns those).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use prtip_engine::backend::{BackendPair, Probe, ProbeSet, Receive, RxStats, Transmit, TxStats};

use crate::error::{Result, XdpError};
use crate::filter::{FilterConfig, FilterStats, ScanFilter};
use crate::sys::{self, XdpMode};
use crate::xsk::{open_queue, QueueSocket, RxHalf, SocketSizes, TxCounts, TxHalf, ZeroCopy};

/// How to set up the AF_XDP backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpOptions {
    /// XDP mode of the scan filter (`--xdp-mode`; native falls back to skb with a note).
    pub mode: XdpMode,
    /// Zero-copy policy (`--zero-copy`).
    pub zero_copy: ZeroCopy,
    /// Number of queues to send on (one sender thread each, from queue 0);
    /// None: one per core but one, at most every queue. Replies are received on
    /// every RX queue regardless, since the NIC (or veth) spreads them over all.
    pub queues: Option<u32>,
    /// Socket sizes (frames, batch).
    pub sizes: SocketSizes,
    /// Which replies the filter takes (our source-port range and address).
    pub filter: FilterConfig,
    /// What each per-queue sender thread (queues 1..) runs first, before it
    /// sends: a scan drops every capability there, since these threads start
    /// while the backend is built, before the scan drops its own. A thread
    /// whose call fails sends nothing and the send fails with its error.
    pub sender_start: Option<ThreadStart>,
}

/// A function a thread of the backend runs as it starts (see
/// [`XdpOptions::sender_start`]).
#[derive(Clone, Copy)]
pub struct ThreadStart(pub fn() -> io::Result<()>);

impl std::fmt::Debug for ThreadStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadStart(..)")
    }
}

impl PartialEq for ThreadStart {
    fn eq(&self, other: &ThreadStart) -> bool {
        std::ptr::fn_addr_eq(self.0, other.0)
    }
}

impl Eq for ThreadStart {}

impl XdpOptions {
    /// Defaults (native mode, zero-copy if available, every queue, batches of 64)
    /// for a scan whose probes use source ports `sport_lo..=sport_hi` from `our_addr`.
    pub fn new(sport_lo: u16, sport_hi: u16, our_addr: std::net::Ipv4Addr) -> XdpOptions {
        XdpOptions {
            mode: XdpMode::Native,
            zero_copy: ZeroCopy::Auto,
            queues: None,
            sizes: SocketSizes::default(),
            filter: FilterConfig {
                sport_lo,
                sport_hi,
                our_addr: Some(our_addr.into()),
            },
            sender_start: None,
        }
    }
}

impl XdpOptions {
    /// Defaults for the probes of `probes`: the filter takes what their modules'
    /// reply filter asks for ([`FilterConfig::for_replies`]).
    pub fn for_probes(probes: &ProbeSet) -> Result<XdpOptions> {
        Ok(XdpOptions {
            filter: FilterConfig::for_replies(&probes.reply_filter())?,
            ..XdpOptions::new(0, 0, std::net::Ipv4Addr::UNSPECIFIED)
        })
    }

    /// Defaults for the raw scan's modules (TCP SYN and UDP over IPv4) from
    /// `our_addr`: their source ports `SPORT_BASE..SPORT_BASE + SPORT_SPAN` of
    /// `prtip_engine::cookie`.
    pub fn for_engine(our_addr: std::net::Ipv4Addr) -> XdpOptions {
        let probes = ProbeSet::new(&prtip_engine::backend::FrameParams {
            src_ip: our_addr,
            ..Default::default()
        });
        XdpOptions::for_probes(&probes).expect("an IPv4 probe set has an XDP filter")
    }
}

/// Open the AF_XDP backend on `iface` and return the engine's pair — the XDP
/// counterpart of `prtip_engine::backend::packet::open_pair` — plus the notes
/// for the operator (fallbacks taken). Must run in the interface's namespace.
pub fn open_pair(
    iface: &str,
    probes: &ProbeSet,
    opts: &XdpOptions,
) -> Result<(BackendPair, Vec<String>)> {
    let be = backend(iface, probes, opts)?;
    let notes = be.notes().to_vec();
    Ok((be.into_pair(), notes))
}

/// An opened AF_XDP backend: filter attached, one socket per queue bound and
/// registered. Turn it into the engine's pair with [`XdpBackend::into_pair`].
pub struct XdpBackend {
    probes: ProbeSet,
    ifname: String,
    filter: Arc<ScanFilter>,
    sockets: Vec<QueueSocket>,
    tx_queues: usize,
    notes: Vec<String>,
    sender_start: Option<ThreadStart>,
}

impl std::fmt::Debug for XdpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpBackend")
            .field("ifname", &self.ifname)
            .field("queues", &self.tx_queues)
            .field("rx_queues", &self.sockets.len())
            .field("zero_copy", &self.zero_copy())
            .field("mode", &self.mode())
            .finish()
    }
}

/// Open the AF_XDP backend on `ifname` (in the calling thread's network
/// namespace) for the frames of `probes`.
pub fn backend(ifname: &str, probes: &ProbeSet, opts: &XdpOptions) -> Result<XdpBackend> {
    let info = sys::interface_info(ifname)?;
    sys::ensure_up(ifname)?;
    let rx_queues = info.rx_queues;
    let queues = match opts.queues {
        // One sending queue per core but one: the receiving thread, the log
        // writer and (on veth) the peer's receive path need a core too.
        None => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            rx_queues.min(cores.saturating_sub(1).max(1))
        }
        Some(0) => return Err(XdpError::Config("--xdp-queues must be at least 1".into())),
        Some(q) if q > info.rx_queues => {
            return Err(XdpError::Config(format!(
                "{ifname} has {} RX queue(s); cannot use {q} (see `ethtool -l {ifname}`)",
                info.rx_queues
            )))
        }
        Some(q) => q,
    };
    if rx_queues > crate::filter::MAX_QUEUES {
        return Err(XdpError::Config(format!(
            "{ifname} has {rx_queues} queues; prtip uses at most {}",
            crate::filter::MAX_QUEUES
        )));
    }
    let mut notes = Vec::new();
    if opts.zero_copy == ZeroCopy::Require && !info.zero_copy {
        notes.push(format!(
            "{ifname}'s driver does not advertise AF_XDP zero-copy; trying anyway as --zero-copy asks"
        ));
    }
    let filter = ScanFilter::attach(ifname, &opts.filter, opts.mode)?;
    if let Some(n) = filter.note() {
        notes.push(n.to_string());
    }
    let mut sockets = Vec::with_capacity(rx_queues as usize);
    // Try zero-copy only where the driver says it has it (veth: never), unless required.
    let zc = match opts.zero_copy {
        ZeroCopy::Auto if !info.zero_copy => ZeroCopy::Off,
        other => other,
    };
    for q in 0..rx_queues {
        let s = open_queue(ifname, q, &opts.sizes, zc, probes)?;
        filter.register_socket(q, s.rx.fd())?;
        sockets.push(s);
    }
    let copy = sockets.iter().any(|s| !s.zero_copy);
    if copy && opts.zero_copy == ZeroCopy::Auto {
        notes.push(format!(
            "{ifname}: AF_XDP in copy mode ({}); zero-copy needs a driver that supports it",
            if info.zero_copy {
                "zero-copy bind failed"
            } else {
                "the driver has no zero-copy"
            }
        ));
    }
    Ok(XdpBackend {
        probes: probes.clone(),
        ifname: ifname.to_string(),
        filter: Arc::new(filter),
        sockets,
        tx_queues: queues as usize,
        notes,
        sender_start: opts.sender_start,
    })
}

impl XdpBackend {
    /// Notes for the operator (mode fallbacks, copy mode, lab link takeover).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
    /// Number of queues sent on (one sender each).
    pub fn queues(&self) -> u32 {
        self.tx_queues as u32
    }
    /// Number of queues received on (every RX queue of the interface).
    pub fn rx_queues(&self) -> u32 {
        self.sockets.len() as u32
    }
    /// Whether every socket runs in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        !self.sockets.is_empty() && self.sockets.iter().all(|s| s.zero_copy)
    }
    /// XDP mode of the scan filter.
    pub fn mode(&self) -> XdpMode {
        self.filter.mode()
    }
    /// The interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Split into the sender and the receiver.
    pub fn into_parts(self) -> (XdpTx, XdpRx) {
        let mut txs = Vec::new();
        let mut rxs = Vec::new();
        for (i, s) in self.sockets.into_iter().enumerate() {
            if i < self.tx_queues {
                txs.push(s.tx);
            }
            rxs.push(s.rx);
        }
        let tx = XdpTx::new(txs, self.filter.clone(), self.sender_start);
        let rx = XdpRx {
            halves: rxs,
            filter: self.filter,
            pollfds: Vec::new(),
        };
        (tx, rx)
    }

    /// The engine's backend pair.
    pub fn into_pair(self) -> BackendPair {
        let probes = self.probes.clone();
        let (tx, rx) = self.into_parts();
        BackendPair {
            tx: Box::new(tx),
            rx: Box::new(rx),
            probes,
        }
    }
}

#[derive(Default)]
struct SharedCounts {
    packets: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    backpressure: AtomicU64,
}

impl SharedCounts {
    fn store(&self, c: &TxCounts) {
        self.packets.store(c.packets, Ordering::Relaxed);
        self.bytes.store(c.bytes, Ordering::Relaxed);
        self.batches.store(c.batches, Ordering::Relaxed);
        self.backpressure.store(c.backpressure, Ordering::Relaxed);
    }
}

struct Worker {
    full: Option<Sender<Vec<Probe>>>,
    empty: Receiver<Vec<Probe>>,
    counts: Arc<SharedCounts>,
    thread: Option<JoinHandle<()>>,
}

/// The sending side: [`Transmit`] over every sending queue's socket.
///
/// Queue 0 is sent on by the caller's thread itself; queues 1.. each have a
/// sender thread fed whole batches. A call with a full batch (64 probes: the
/// scan runs as fast as it can) goes round-robin over all queues, so N threads
/// do the kernel's per-frame work in parallel; a smaller call (a paced scan
/// below the machine's limit) is sent inline on queue 0 without waking a
/// thread, which keeps the CPU cost per probe low at modest rates.
pub struct XdpTx {
    inline: Box<TxHalf>,
    workers: Vec<Worker>,
    next: usize,
    error: Arc<Mutex<Option<io::Error>>>,
    _filter: Arc<ScanFilter>,
}

impl std::fmt::Debug for XdpTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpTx")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Batches waiting for a sender thread (per queue); beyond this send() blocks.
const WORKER_DEPTH: usize = 8;
/// How long the receiver lets replies gather after a wakeup on empty rings.
const RX_COALESCE: Duration = Duration::from_micros(500);
/// A full batch: calls this large are spread over the queues.
const FULL_BATCH: usize = 64;

impl XdpTx {
    fn new(halves: Vec<TxHalf>, filter: Arc<ScanFilter>, start: Option<ThreadStart>) -> XdpTx {
        let error = Arc::new(Mutex::new(None));
        let mut halves = halves.into_iter();
        let inline = Box::new(halves.next().expect("at least one sending queue"));
        let workers = halves
            .map(|mut half| {
                let (full_tx, full_rx) = bounded::<Vec<Probe>>(WORKER_DEPTH);
                let (empty_tx, empty_rx) = bounded::<Vec<Probe>>(WORKER_DEPTH + 2);
                let counts = Arc::new(SharedCounts::default());
                let c2 = counts.clone();
                let err = error.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("prtip-xdp-tx{}", half.queue()))
                    .spawn(move || {
                        if let Some(ThreadStart(f)) = start {
                            if let Err(e) = f() {
                                let e = io::Error::new(
                                    e.kind(),
                                    format!("an AF_XDP sender thread could not start: {e}"),
                                );
                                *err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                return;
                            }
                        }
                        for mut buf in full_rx {
                            if let Err(e) = half.send_all(&buf) {
                                *err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                return;
                            }
                            c2.store(&half.counts);
                            buf.clear();
                            let _ = empty_tx.try_send(buf);
                        }
                        let _ = half.flush(Duration::from_secs(1));
                        c2.store(&half.counts);
                    })
                    .expect("spawning an AF_XDP sender thread");
                Worker {
                    full: Some(full_tx),
                    empty: empty_rx,
                    counts,
                    thread: Some(thread),
                }
            })
            .collect();
        XdpTx {
            inline,
            workers,
            next: 0,
            error,
            _filter: filter,
        }
    }

    fn take_error(&self) -> Option<io::Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Transmit for XdpTx {
    fn send(&mut self, probes: &[Probe]) -> io::Result<usize> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        if self.workers.is_empty() || probes.len() < FULL_BATCH {
            self.inline.send_all(probes)?;
            return Ok(probes.len());
        }
        let queues = self.workers.len() + 1;
        for chunk in probes.chunks(FULL_BATCH) {
            let k = self.next % queues;
            self.next = self.next.wrapping_add(1);
            if k == 0 {
                self.inline.send_all(chunk)?;
                continue;
            }
            let w = &self.workers[k - 1];
            let mut buf = w
                .empty
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(FULL_BATCH));
            buf.extend_from_slice(chunk);
            let full = w.full.as_ref().expect("open until drop");
            if full.send(buf).is_err() {
                // The thread ended: it left its error behind.
                return Err(self
                    .take_error()
                    .unwrap_or_else(|| io::Error::other("an AF_XDP sender thread stopped")));
            }
        }
        Ok(probes.len())
    }

    fn stats(&self) -> TxStats {
        let c = &self.inline.counts;
        let mut s = TxStats {
            packets: c.packets,
            bytes: c.bytes,
            batches: c.batches,
            backpressure: c.backpressure,
        };
        for w in &self.workers {
            s.packets += w.counts.packets.load(Ordering::Relaxed);
            s.bytes += w.counts.bytes.load(Ordering::Relaxed);
            s.batches += w.counts.batches.load(Ordering::Relaxed);
            s.backpressure += w.counts.backpressure.load(Ordering::Relaxed);
        }
        s
    }
}

impl Drop for XdpTx {
    fn drop(&mut self) {
        for w in self.workers.iter_mut() {
            w.full.take(); // closes the channel: the thread flushes and ends
        }
        let _ = self.inline.flush(Duration::from_secs(1));
        for w in self.workers.iter_mut() {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// The receiving side: [`Receive`] over every queue's socket (one thread polls them all).
pub struct XdpRx {
    halves: Vec<RxHalf>,
    filter: Arc<ScanFilter>,
    pollfds: Vec<libc::pollfd>,
}

impl std::fmt::Debug for XdpRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpRx")
            .field("queues", &self.halves.len())
            .finish()
    }
}

impl XdpRx {
    /// Counters of the scan filter (what it redirected, what it passed).
    pub fn filter_stats(&self) -> Result<FilterStats> {
        self.filter.stats()
    }

    /// The kernel's counters of every socket, by queue.
    pub fn socket_stats(&self) -> Vec<crate::xsk::SocketStats> {
        self.halves.iter().map(RxHalf::socket_stats).collect()
    }

    fn drain_all(&mut self, on_frame: &mut dyn FnMut(&[u8])) -> usize {
        self.halves.iter_mut().map(|h| h.drain(on_frame)).sum()
    }
}

impl Drop for XdpRx {
    fn drop(&mut self) {
        // PRTIP_XDP_STATS=1: what the filter and each socket saw, for diagnosis.
        if std::env::var_os("PRTIP_XDP_STATS").is_some() {
            eprintln!("prtip-xdp: filter {:?}", self.filter.stats());
            for (q, s) in self.socket_stats().iter().enumerate() {
                eprintln!("prtip-xdp: queue {q} {s:?}");
            }
        }
    }
}

impl Receive for XdpRx {
    fn recv(&mut self, timeout: Duration, on_frame: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        let n = self.drain_all(on_frame);
        if n > 0 || timeout.is_zero() {
            return Ok(n);
        }
        self.pollfds.clear();
        for h in &self.halves {
            self.pollfds.push(libc::pollfd {
                fd: h.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: pollfds is a valid array of pollfd of the given length; ts outlives the call.
        let r = unsafe {
            libc::ppoll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        if r > 0 {
            // Something arrived while the rings were empty: a paced scan. Let a few
            // more replies gather before reading, so one wakeup serves many frames
            // (like TPACKET_V3's block timeout, but 20x shorter).
            std::thread::sleep(RX_COALESCE.min(timeout));
        }
        Ok(self.drain_all(on_frame))
    }

    fn stats(&self) -> RxStats {
        let mut s = RxStats::default();
        for h in &self.halves {
            s.frames += h.counts.frames;
            s.bytes += h.counts.bytes;
            s.drops += h.kernel_drops();
        }
        s
    }
}
