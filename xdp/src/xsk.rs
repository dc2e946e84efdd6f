//! AF_XDP sockets (through xsk-rs): one socket per queue, each with its own
//! UMEM split into a TX part (pre-built probe frames, patched per probe and
//! recycled through the completion ring) and an RX part (handed to the kernel
//! through the fill ring, read in place from the RX ring). Owns the sockets,
//! UMEMs and rings; never touches the XDP program (see [`crate::filter`]).
//!
//! The TX half and the RX half of one socket go to different threads: they share
//! the UMEM but never the same frames (TX frames are `0..tx_frames`, RX frames
//! the rest), and each ring has exactly one user, as AF_XDP requires.

use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use prtip_engine::backend::{Probe, ProbeSet};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::error::{Result, XdpError};

/// `XDP_MAX_TX_SKB_BUDGET` (linux/if_xdp.h, Linux 6.17+): frames one sendto may
/// push in copy mode (default 32, range 32..=TX ring size).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Whether to use AF_XDP zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroCopy {
    /// Try zero-copy, fall back to copy mode (with a note) if the driver has none.
    #[default]
    Auto,
    /// Zero-copy or fail.
    Require,
    /// Copy mode only.
    Off,
}

/// Sizes of one queue's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketSizes {
    /// UMEM frame size (power of two, 2048 or 4096).
    pub frame_size: u32,
    /// TX frames (= TX and completion ring size; power of two).
    pub tx_frames: u32,
    /// RX frames (= fill and RX ring size; power of two). The default 8192 holds
    /// 40 ms of replies at 200 000/s per queue while the receiving thread is not
    /// scheduled (2 KiB each: 16 MiB per queue).
    pub rx_frames: u32,
    /// Frames per TX batch (one sendto per batch in copy mode).
    pub batch: usize,
}

impl Default for SocketSizes {
    fn default() -> Self {
        SocketSizes {
            frame_size: 2048,
            tx_frames: 2048,
            rx_frames: 8192,
            batch: 64,
        }
    }
}

/// One queue's socket, before its halves go to their threads.
pub(crate) struct QueueSocket {
    pub zero_copy: bool,
    pub tx: TxHalf,
    pub rx: RxHalf,
}

fn io_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = c.source();
    }
    None
}

fn qsize(n: u32, what: &str) -> Result<QueueSize> {
    QueueSize::new(n).map_err(|_| XdpError::Config(format!("{what} {n} is not a power of two")))
}

/// Create the socket of `queue` on `ifname` with its UMEM. `zero_copy` decides
/// the bind mode; EBUSY (a previous socket on the queue still being torn down)
/// is retried for up to 3 seconds.
pub(crate) fn open_queue(
    ifname: &str,
    queue: u32,
    sizes: &SocketSizes,
    zero_copy: ZeroCopy,
    probes: &ProbeSet,
) -> Result<QueueSocket> {
    if sizes.batch == 0 || sizes.batch > sizes.tx_frames as usize {
        return Err(XdpError::Config(format!(
            "TX batch {} must be between 1 and the TX frame count {}",
            sizes.batch, sizes.tx_frames
        )));
    }
    if probes.max_len() + 256 > sizes.frame_size as usize {
        return Err(XdpError::Config(format!(
            "probe frames of {} bytes do not fit UMEM frames of {} bytes",
            probes.max_len(),
            sizes.frame_size
        )));
    }
    let iface: Interface = ifname
        .parse()
        .map_err(|_| XdpError::Config(format!("interface name {ifname:?} contains a NUL byte")))?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(sizes.frame_size).map_err(|_| {
            XdpError::Config(format!("UMEM frame size {} is not valid", sizes.frame_size))
        })?)
        .fill_queue_size(qsize(sizes.rx_frames, "RX frame count")?)
        .comp_queue_size(qsize(sizes.tx_frames, "TX frame count")?)
        .build()
        .map_err(|e| XdpError::Config(format!("UMEM configuration: {e}")))?;
    let total = NonZeroU32::new(sizes.tx_frames + sizes.rx_frames).expect("non-zero frame count");

    let attempts: &[(bool, BindFlags)] = match zero_copy {
        ZeroCopy::Auto => &[
            (true, BindFlags::XDP_ZEROCOPY),
            (false, BindFlags::XDP_COPY),
        ],
        ZeroCopy::Require => &[(true, BindFlags::XDP_ZEROCOPY)],
        ZeroCopy::Off => &[(false, BindFlags::XDP_COPY)],
    };
    let mut last_err = None;
    for &(zc, mode_flag) in attempts {
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(qsize(sizes.rx_frames, "RX frame count")?)
            .tx_queue_size(qsize(sizes.tx_frames, "TX frame count")?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(mode_flag | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            // A fresh UMEM per attempt: a failed bind leaves the old one unusable.
            let (umem, descs) = Umem::new(umem_cfg, total, false).map_err(|e| {
                let src = io_source(&e)
                    .map(|e| io::Error::from(e.kind()))
                    .unwrap_or_else(|| io::Error::other(e.to_string()));
                XdpError::os(
                    format!("creating the UMEM for queue {queue} of {ifname}"),
                    src,
                )
            })?;
            // SAFETY: the UMEM outlives the socket (each half keeps a clone of it)
            // and this UMEM is used by this one socket only.
            match unsafe { Socket::new(sock_cfg, &umem, &iface, queue) } {
                Ok((txq, rxq, Some((fq, cq)))) => {
                    let fd = txq.fd().as_raw_fd();
                    set_tx_budget(fd, sizes.batch.max(32) as u32);
                    let (tx_descs, rx_descs) = descs.split_at(sizes.tx_frames as usize);
                    let tx = TxHalf::new(
                        queue,
                        umem.clone(),
                        (txq, cq),
                        tx_descs.to_vec(),
                        sizes,
                        probes.clone(),
                        zc,
                    );
                    let rx = RxHalf::new(umem, rxq, fq, rx_descs.to_vec())?;
                    return Ok(QueueSocket {
                        zero_copy: zc,
                        tx,
                        rx,
                    });
                }
                Ok((_, _, None)) => {
                    return Err(XdpError::Config(
                        "xsk-rs returned no fill/completion rings for a fresh UMEM".into(),
                    ))
                }
                Err(e) => {
                    let errno = io_source(&e).and_then(|e| e.raw_os_error());
                    if errno == Some(libc::EBUSY) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    last_err = Some((zc, errno, e.to_string()));
                    break;
                }
            }
        }
        match last_err {
            // Zero-copy not supported here: try copy mode next.
            Some((true, Some(libc::EOPNOTSUPP), _)) | Some((true, Some(libc::EINVAL), _))
                if zero_copy == ZeroCopy::Auto => {}
            _ => break,
        }
    }
    let (zc, errno, msg) = last_err.expect("at least one attempt failed");
    let source = errno
        .map(io::Error::from_raw_os_error)
        .unwrap_or_else(|| io::Error::other(msg));
    let what = format!(
        "binding an AF_XDP socket to queue {queue} of {ifname} ({} mode)",
        if zc { "zero-copy" } else { "copy" }
    );
    Err(match errno {
        Some(libc::EPERM) | Some(libc::EACCES) => XdpError::Permission { what, err: source },
        Some(libc::EAFNOSUPPORT) => XdpError::Unsupported {
            what,
            hint: "the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS); use the AF_PACKET backend".into(),
            err: source,
        },
        Some(libc::EOPNOTSUPP) if zc => XdpError::Unsupported {
            what,
            hint: "the driver has no AF_XDP zero-copy; drop --zero-copy to use copy mode".into(),
            err: source,
        },
        Some(libc::EINVAL) => XdpError::Unsupported {
            what,
            hint: format!(
                "queue {queue} may not exist on {ifname} (see `ethtool -l {ifname}`; a veth needs numrxqueues/numtxqueues at creation)"
            ),
            err: source,
        },
        Some(libc::EBUSY) => XdpError::Io {
            what: format!("{what}: another AF_XDP socket is bound to this queue (another prtip still running?)"),
            err: source,
        },
        _ => XdpError::os(what, source),
    })
}

/// Raise the copy-mode per-sendto budget (Linux 6.17+; ignored where unknown).
fn set_tx_budget(fd: RawFd, budget: u32) {
    // SAFETY: setsockopt reads exactly size_of::<u32>() bytes from `budget`.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            (&budget as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        );
    }
}

/// Tag of a frame no template was written into yet.
const NO_TEMPLATE: usize = usize::MAX;

/// Counters of one TX half.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TxCounts {
    pub packets: u64,
    pub bytes: u64,
    pub batches: u64,
    pub backpressure: u64,
}

/// The sending half of one queue's socket.
pub(crate) struct TxHalf {
    queue: u32,
    umem: Umem,
    txq: TxQueue,
    cq: CompQueue,
    /// Every TX frame, its length set for the template it currently holds.
    frames: Vec<FrameDesc>,
    /// Template (the probe set's numbering) each frame holds (NO_TEMPLATE: none yet).
    tag: Vec<usize>,
    /// Frames not in the TX or completion ring.
    free: Vec<u32>,
    /// log2 of the frame size (frame index = addr >> frame_shift).
    frame_shift: u32,
    batch: usize,
    out: Vec<FrameDesc>,
    done: Vec<FrameDesc>,
    probes: ProbeSet,
    /// Zero-copy: the driver transmits from the ring itself and `sendto` is only
    /// needed when the kernel asks for a wakeup; copy mode transmits in `sendto`.
    zero_copy: bool,
    pub counts: TxCounts,
}

// SAFETY: every field is owned by this half; the UMEM is shared with the RX half
// of the same socket, but the two never touch the same frames (disjoint index
// ranges) and each ring has a single user. xsk-rs's queue types are Send.
unsafe impl Send for TxHalf {}

impl TxHalf {
    fn new(
        queue: u32,
        umem: Umem,
        (txq, cq): (TxQueue, CompQueue),
        frames: Vec<FrameDesc>,
        sizes: &SocketSizes,
        probes: ProbeSet,
        zero_copy: bool,
    ) -> TxHalf {
        let n = frames.len();
        TxHalf {
            zero_copy,
            queue,
            umem,
            txq,
            cq,
            tag: vec![NO_TEMPLATE; n],
            free: (0..n as u32).rev().collect(),
            frames,
            frame_shift: sizes.frame_size.trailing_zeros(),
            batch: sizes.batch,
            out: Vec::with_capacity(sizes.batch),
            done: vec![FrameDesc::default(); sizes.batch.max(64)],
            probes,
            counts: TxCounts::default(),
        }
    }

    /// Queue index of this socket.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Return completed frames to the free list.
    #[inline]
    fn reap(&mut self) -> usize {
        let mut total = 0;
        loop {
            // SAFETY: `done` is scratch space; consume writes addresses of frames the
            // kernel has finished with, which were all produced by us from `frames`.
            let n = unsafe { self.cq.consume(&mut self.done) };
            for d in &self.done[..n] {
                self.free.push((d.addr() >> self.frame_shift) as u32);
            }
            total += n;
            if n < self.done.len() {
                return total;
            }
        }
    }

    /// Kick the kernel to transmit what is in the TX ring. Ok(true): it took
    /// everything (or the driver will); Ok(false): push back (EAGAIN/EBUSY/ENOBUFS).
    #[inline]
    fn kick(&mut self) -> io::Result<bool> {
        // SAFETY: a zero-length sendto on our own socket descriptor, no buffers.
        let r = unsafe {
            libc::sendto(
                self.txq.fd().as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if r >= 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => Ok(false),
            Some(libc::ENETDOWN) => Err(io::Error::new(
                e.kind(),
                "the interface went down during the scan (ENETDOWN)",
            )),
            _ => Err(e),
        }
    }

    /// Hand every probe to the kernel, in batches; blocks while the ring is full.
    pub fn send_all(&mut self, probes: &[Probe]) -> io::Result<()> {
        let mut rest = probes;
        let mut stalls = 0u32;
        while !rest.is_empty() {
            if self.free.len() < self.batch.min(rest.len()) {
                self.reap();
            }
            let n = rest.len().min(self.batch).min(self.free.len());
            if n == 0 {
                // Everything in flight: push the ring and wait for completions.
                if !self.kick()? {
                    self.counts.backpressure += 1;
                }
                if self.reap() == 0 {
                    stalls += 1;
                    if stalls > 64 {
                        self.txq.poll(1)?;
                    } else {
                        std::thread::yield_now();
                    }
                }
                continue;
            }
            stalls = 0;
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            self.out.clear();
            let mut bytes = 0u64;
            let first_free = self.free.len() - n;
            for (p, &f) in chunk.iter().zip(&self.free[first_free..]) {
                let f = f as usize;
                let Some((ti, template)) = self.probes.template_of(p) else {
                    // Nothing produced yet: every frame of the chunk stays free.
                    return Err(prtip_engine::backend::no_module(p));
                };
                let desc = &mut self.frames[f];
                // SAFETY: frame f came off the free list: it is in neither the TX nor
                // the completion ring, so nothing else reads or writes it now.
                let mut data = unsafe { self.umem.data_mut(desc) };
                if self.tag[f] != ti {
                    let mut c = data.cursor();
                    c.set_pos(0);
                    c.write_all(template)
                        .expect("template fits the frame (checked at open)");
                    self.tag[f] = ti;
                }
                bytes += self.probes.patch(ti, data.contents_mut(), p) as u64;
                self.out.push(*desc);
            }
            self.free.truncate(first_free);
            // SAFETY: the descriptors point at frames of this UMEM that we just wrote
            // and that stay untouched until the completion ring returns them.
            let produced = unsafe { self.txq.produce(&self.out) };
            if produced < n {
                // The TX ring is as large as the TX frame count, so it always has room
                // for frames that came off the free list.
                return Err(io::Error::other(format!(
                    "AF_XDP TX ring of queue {} took {produced} of {n} frames",
                    self.queue
                )));
            }
            self.counts.packets += produced as u64;
            self.counts.bytes += bytes;
            self.counts.batches += 1;
            // Copy mode processes at most the budget per call and says EAGAIN if
            // more remain; zero-copy only needs the wakeup, when the driver asks.
            if self.zero_copy && !self.txq.needs_wakeup() {
                continue;
            }
            let mut tries = 0;
            while !self.kick()? {
                self.counts.backpressure += 1;
                self.reap();
                tries += 1;
                if tries > 4 {
                    break; // left in the ring; the next kick sends it
                }
            }
        }
        Ok(())
    }

    /// Push whatever is still in the TX ring and wait (up to `timeout`) until the
    /// kernel has completed every frame.
    pub fn flush(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.free.len() < self.frames.len() {
            self.kick()?;
            if self.reap() == 0 {
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        Ok(())
    }
}

/// The kernel's counters of one AF_XDP socket (XDP_STATISTICS) and the frames read from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Frames prtip read from the RX ring.
    pub frames: u64,
    /// Frames the kernel dropped for other reasons than a full ring.
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full (prtip not reading fast enough).
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    /// Invalid RX descriptors.
    pub rx_invalid: u64,
    /// Invalid TX descriptors.
    pub tx_invalid: u64,
    /// Times the TX ring was empty on a kick.
    pub tx_ring_empty: u64,
}

/// Counters of one RX half.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RxCounts {
    pub frames: u64,
    pub bytes: u64,
}

/// The receiving half of one queue's socket.
pub(crate) struct RxHalf {
    umem: Umem,
    rxq: RxQueue,
    fq: FillQueue,
    scratch: Vec<FrameDesc>,
    pub counts: RxCounts,
}

// SAFETY: as for TxHalf: disjoint frames, single user per ring.
unsafe impl Send for RxHalf {}

impl RxHalf {
    fn new(umem: Umem, rxq: RxQueue, mut fq: FillQueue, frames: Vec<FrameDesc>) -> Result<RxHalf> {
        // SAFETY: the RX frames belong to this UMEM and are given to the kernel once.
        let n = unsafe { fq.produce(&frames) };
        if n != frames.len() {
            return Err(XdpError::Config(format!(
                "fill ring took {n} of {} RX frames",
                frames.len()
            )));
        }
        Ok(RxHalf {
            umem,
            rxq,
            fq,
            scratch: vec![FrameDesc::default(); 64],
            counts: RxCounts::default(),
        })
    }

    /// The socket's descriptor (for poll).
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor stays open as long as `self` (the socket is owned by the rings).
        unsafe { BorrowedFd::borrow_raw(self.rxq.fd().as_raw_fd()) }
    }

    /// Hand every frame waiting in the RX ring to `on_frame` (in place, no copy)
    /// and give the frames back to the kernel. Returns how many.
    pub fn drain(&mut self, on_frame: &mut dyn FnMut(&[u8])) -> usize {
        let mut total = 0;
        loop {
            // SAFETY: scratch receives descriptors of frames the kernel filled for us.
            let n = unsafe { self.rxq.consume(&mut self.scratch) };
            if n == 0 {
                break;
            }
            for d in &self.scratch[..n] {
                // SAFETY: the frame was just handed to us by the RX ring and is not in
                // the fill ring until we produce it below.
                let data = unsafe { self.umem.data(d) };
                let bytes = data.contents();
                self.counts.bytes += bytes.len() as u64;
                on_frame(bytes);
            }
            self.counts.frames += n as u64;
            total += n;
            // SAFETY: returning the same frames to the kernel; the fill ring has room
            // because it is as large as the number of RX frames.
            let back = unsafe { self.fq.produce(&self.scratch[..n]) };
            debug_assert_eq!(back, n);
            if n < self.scratch.len() {
                break;
            }
        }
        if total > 0 && self.fq.needs_wakeup() {
            // Zero-copy drivers may wait for a wakeup once the fill ring ran dry.
            let _ = self.rxq.poll(0);
        }
        total
    }

    /// The kernel's counters of this socket (XDP_STATISTICS).
    pub fn socket_stats(&self) -> SocketStats {
        match self.rxq.fd().xdp_statistics() {
            Ok(s) => SocketStats {
                rx_dropped: s.rx_dropped(),
                rx_ring_full: s.rx_ring_full(),
                rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
                rx_invalid: s.rx_invalid_descs(),
                tx_invalid: s.tx_invalid_descs(),
                tx_ring_empty: s.tx_ring_empty_descs(),
                frames: self.counts.frames,
            },
            Err(_) => SocketStats {
                frames: self.counts.frames,
                ..Default::default()
            },
        }
    }

    /// Kernel drop counters of this socket (XDP_STATISTICS).
    pub fn kernel_drops(&self) -> u64 {
        self.rxq
            .fd()
            .xdp_statistics()
            .map(|s| s.rx_dropped() + s.rx_ring_full())
            .unwrap_or(0)
    }
}
