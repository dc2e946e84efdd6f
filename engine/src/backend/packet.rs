//! AF_PACKET backend: batched `sendmmsg` with PACKET_QDISC_BYPASS for sending, a
//! PACKET_RX_RING (TPACKET_V3) with the reply filter of [`super::bpf`] for receiving.
//!
//! Owns: the two sockets, the send buffers and the receive ring. Never decides what
//! to send or what a reply means. sendmmsg × 64 is used rather than PACKET_TX_RING
//! because it measured faster on veth (see /work/shared/lab/README.md: 0.73 M
//! frames/s per thread).

use super::{bpf, Probe, ProbeSet, Receive, RxStats, Transmit, TxStats};
use crate::cookie::{SPORT_BASE, SPORT_SPAN};
use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Frames per sendmmsg call.
pub const BATCH: usize = 64;

/// Receive ring geometry: 64 blocks of 256 KiB (16 MiB), frames up to 2 KiB. Blocks
/// of 256 KiB are order-6 allocations: measured, a ring of 2 MiB blocks (order 9) took
/// ~40 ms to allocate on a busy machine, which delayed the first probe of a resume.
const BLOCK_SIZE: u32 = 1 << 18;
const BLOCK_NR: u32 = 64;
const FRAME_SIZE: u32 = 2048;
/// A block is handed to user space at the latest after this many ms.
const BLOCK_TIMEOUT_MS: u32 = 10;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Interface index of `name`.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL byte")
    })?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network interface named {name} in this network namespace"),
        ));
    }
    Ok(idx)
}

fn packet_socket(protocol: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; on success we own the returned descriptor.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol.to_be() as libc::c_int,
        )
    })?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a local c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn bind(fd: &OwnedFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll and we pass its exact size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// The sending half: one AF_PACKET socket, `BATCH` frame slots patched in place.
pub struct PacketTx {
    fd: OwnedFd,
    probes: ProbeSet,
    slot_len: usize,
    slots: Vec<u8>,
    /// Which template (the set's numbering) each slot holds; `usize::MAX`: none yet.
    slot_template: [usize; BATCH],
    stats: TxStats,
}

impl PacketTx {
    /// Open on interface `iface` for the frames of `probes`.
    pub fn open(iface: &str, probes: ProbeSet) -> io::Result<PacketTx> {
        let idx = ifindex(iface)?;
        let fd = packet_socket(0)?;
        // Send-only: never queue received frames on this socket.
        bpf::attach(fd.as_fd(), &bpf::drop_all())?;
        bind(&fd, idx, libc::ETH_P_IP as u16)?;
        set_int(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
        let slot_len = probes.max_len().next_multiple_of(64);
        Ok(PacketTx {
            fd,
            probes,
            slot_len,
            slots: vec![0u8; slot_len * BATCH],
            slot_template: [usize::MAX; BATCH],
            stats: TxStats::default(),
        })
    }
}

impl Transmit for PacketTx {
    fn send(&mut self, probes: &[Probe]) -> io::Result<usize> {
        let mut done = 0;
        while done < probes.len() {
            let chunk = &probes[done..(done + BATCH).min(probes.len())];
            let mut iov: [libc::iovec; BATCH] = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; BATCH];
            let mut bytes = 0u64;
            for (i, p) in chunk.iter().enumerate() {
                let Some((t, template)) = self.probes.template_of(p) else {
                    return Err(super::no_module(p));
                };
                let slot = &mut self.slots[i * self.slot_len..(i + 1) * self.slot_len];
                if self.slot_template[i] != t {
                    slot[..template.len()].copy_from_slice(template);
                    self.slot_template[i] = t;
                }
                let len = self.probes.patch(t, slot, p);
                iov[i] = libc::iovec {
                    iov_base: slot.as_mut_ptr() as *mut libc::c_void,
                    iov_len: len,
                };
                bytes += len as u64;
            }
            // SAFETY: mmsghdr is plain old data; zeroed means no name, no control data.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (m, v) in msgs.iter_mut().zip(iov.iter_mut()).take(chunk.len()) {
                m.msg_hdr.msg_iov = v as *mut libc::iovec;
                m.msg_hdr.msg_iovlen = 1;
            }
            let mut sent_in_chunk = 0usize;
            let mut stuck: Option<std::time::Instant> = None;
            while sent_in_chunk < chunk.len() {
                // SAFETY: `msgs[sent_in_chunk..chunk.len()]` point at iovecs that point into
                // `self.slots`, all alive and unaliased for the duration of the call.
                let rc = unsafe {
                    libc::sendmmsg(
                        self.fd.as_raw_fd(),
                        msgs.as_mut_ptr().add(sent_in_chunk),
                        (chunk.len() - sent_in_chunk) as libc::c_uint,
                        0,
                    )
                };
                if rc < 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EBUSY) => {
                            self.stats.backpressure += 1;
                            // A full queue drains in microseconds; one that stays
                            // full for 20 ms (a link without carrier drops
                            // nothing into it) is a short send: the caller
                            // decides (the scan loop's uplink watch holds).
                            let since = *stuck.get_or_insert_with(std::time::Instant::now);
                            if since.elapsed() >= std::time::Duration::from_millis(20) {
                                break;
                            }
                            std::thread::yield_now();
                            continue;
                        }
                        Some(libc::EINTR) => continue,
                        _ => {
                            if done + sent_in_chunk > 0 {
                                break;
                            }
                            return Err(e);
                        }
                    }
                }
                self.stats.batches += 1;
                stuck = None;
                sent_in_chunk += rc as usize;
            }
            self.stats.packets += sent_in_chunk as u64;
            self.stats.bytes += if sent_in_chunk == chunk.len() {
                bytes
            } else {
                bytes * sent_in_chunk as u64 / chunk.len() as u64
            };
            done += sent_in_chunk;
            if sent_in_chunk < chunk.len() {
                break;
            }
        }
        Ok(done)
    }

    fn stats(&self) -> TxStats {
        self.stats
    }
}

/// The receiving half: a TPACKET_V3 ring behind the reply filter.
pub struct PacketRx {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    block: u32,
    stats: RxStats,
}

// SAFETY: the ring mapping is owned exclusively by this value (no copies of the
// pointer escape), so moving it to another thread moves sole access with it.
unsafe impl Send for PacketRx {}

impl PacketRx {
    /// Open on `iface`, accepting replies to `our_ip` on the cookie source-port range.
    pub fn open(iface: &str, our_ip: Ipv4Addr) -> io::Result<PacketRx> {
        Self::open_with_filter(
            iface,
            &bpf::reply_filter(our_ip, SPORT_BASE, SPORT_BASE + SPORT_SPAN),
        )
    }

    /// Open on `iface` (empty: every interface of the namespace) with a given
    /// classic BPF program.
    pub fn open_with_filter(iface: &str, filter: &[libc::sock_filter]) -> io::Result<PacketRx> {
        PreparedRx::new()?.bind(iface, filter)
    }

    fn block_desc(&self, i: u32) -> *mut libc::tpacket_block_desc {
        // SAFETY: i < BLOCK_NR, so the offset stays inside the mapping.
        unsafe { self.ring.add((i * BLOCK_SIZE) as usize) as *mut libc::tpacket_block_desc }
    }

    fn block_ready(&self, i: u32) -> bool {
        let bd = self.block_desc(i);
        // SAFETY: `bd` points at a block descriptor inside our mapping; the kernel
        // writes block_status, so read it volatile and order later reads after it.
        let status = unsafe { std::ptr::read_volatile(&(*bd).hdr.bh1.block_status) };
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        status & libc::TP_STATUS_USER != 0
    }

    fn poll_stats(&mut self) {
        // SAFETY: tpacket_stats_v3 is plain old data.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: buffer and length describe `st`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                &mut st as *mut libc::tpacket_stats_v3 as *mut libc::c_void,
                &mut len,
            )
        };
        if rc == 0 {
            // The kernel resets the counters on every read.
            self.stats.drops += st.tp_drops as u64;
        }
    }
}

/// A receive socket whose ring is set up but which is bound to no interface yet,
/// so nothing reaches it. Setting up the ring is the slow part of opening a
/// [`PacketRx`]: the kernel waits for an RCU grace period (`synchronize_net`,
/// ~8 ms here) whatever the ring's size. [`PreparedRx::in_background`] does it
/// while the caller does other work (a resume reads its log meanwhile).
pub struct PreparedRx {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    /// The network namespace the socket was made in (see [`netns_id`]).
    netns: Option<(u64, u64)>,
}

// SAFETY: as for PacketRx: the mapping is owned exclusively by this value.
unsafe impl Send for PreparedRx {}

impl PreparedRx {
    /// Create the socket (in the calling thread's network namespace) and its
    /// TPACKET_V3 ring.
    pub fn new() -> io::Result<PreparedRx> {
        let netns = netns_id();
        // Protocol 0: nothing is queued until bind, which comes after the filter.
        let fd = packet_socket(0)?;
        set_int(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            libc::tpacket_versions::TPACKET_V3 as libc::c_int,
        )?;
        // Our own probes would otherwise be seen leaving (the filter drops them anyway).
        let _ = set_int(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1);
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: BLOCK_NR,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_NR,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        // SAFETY: passes a pointer to a local tpacket_req3 and its exact size.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_RX_RING,
                &req as *const libc::tpacket_req3 as *const libc::c_void,
                std::mem::size_of::<libc::tpacket_req3>() as libc::socklen_t,
            )
        })?;
        let ring_len = (BLOCK_SIZE * BLOCK_NR) as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; length and
        // flags are what packet_mmap requires. Checked for MAP_FAILED below.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED,
                fd.as_raw_fd(),
                0,
            )
        };
        let ring = if ring == libc::MAP_FAILED {
            // MAP_LOCKED can fail under RLIMIT_MEMLOCK; try without it.
            // SAFETY: as above.
            let r = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    ring_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if r == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            r
        } else {
            ring
        };
        Ok(PreparedRx {
            fd,
            ring: ring as *mut u8,
            ring_len,
            netns,
        })
    }

    /// [`PreparedRx::new`] on a thread of its own (started in the calling thread's
    /// network namespace, which the new thread shares).
    pub fn in_background() -> PendingRx {
        PendingRx(
            std::thread::Builder::new()
                .name("prtip-rx-ring".into())
                .spawn(PreparedRx::new)
                .ok(),
        )
    }

    /// Attach `filter` and bind to `iface` (empty: every interface). The interface
    /// is looked up in the calling thread's network namespace; a socket created in
    /// another namespace is refused (its interface of that index is another one).
    pub fn bind(self, iface: &str, filter: &[libc::sock_filter]) -> io::Result<PacketRx> {
        let idx = if iface.is_empty() { 0 } else { ifindex(iface)? };
        let other_ns = matches!((self.netns, netns_id()), (Some(a), Some(b)) if a != b);
        if other_ns || (idx != 0 && ifname_of(&self.fd, idx).as_deref() != Some(iface)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the prepared receive socket is not in the network namespace of {iface}"),
            ));
        }
        bpf::attach(self.fd.as_fd(), filter)?;
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again: its descriptor moves into the
        // PacketRx below (read out once), its ring mapping with it.
        let fd = unsafe { std::ptr::read(&me.fd) };
        let rx = PacketRx {
            fd,
            ring: me.ring,
            ring_len: me.ring_len,
            block: 0,
            stats: RxStats::default(),
        };
        bind(&rx.fd, idx, libc::ETH_P_ALL as u16)?;
        Ok(rx)
    }
}

impl Drop for PreparedRx {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `new`; nothing points into it.
        unsafe {
            libc::munmap(self.ring as *mut libc::c_void, self.ring_len);
        }
    }
}

/// A [`PreparedRx`] being made on a thread ([`PreparedRx::in_background`]).
pub struct PendingRx(Option<std::thread::JoinHandle<io::Result<PreparedRx>>>);

impl PendingRx {
    /// Wait for it; `None` if it failed (opening the receiver the usual way then
    /// reports why).
    pub fn take(mut self) -> Option<PreparedRx> {
        self.0.take()?.join().ok()?.ok()
    }
}

impl Drop for PendingRx {
    fn drop(&mut self) {
        // Unused: close it on a thread (closing waits for a grace period too).
        if let Some(h) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("prtip-rx-ring".into())
                .spawn(move || drop(h.join()));
        }
    }
}

/// (device, inode) of the calling thread's network namespace, when /proc says.
fn netns_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/thread-self/ns/net").ok()?;
    Some((m.dev(), m.ino()))
}

/// The name of interface `idx` in the network namespace of socket `fd`.
fn ifname_of(fd: &OwnedFd, idx: u32) -> Option<String> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_ifru.ifru_ifindex = idx as libc::c_int;
    // SAFETY: SIOCGIFNAME reads ifr_ifindex and writes ifr_name of our ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFNAME, &mut ifr) } < 0 {
        return None;
    }
    // SAFETY: the kernel wrote a NUL-terminated name into ifr_name.
    let name = unsafe { std::ffi::CStr::from_ptr(ifr.ifr_name.as_ptr()) };
    name.to_str().ok().map(str::to_string)
}

impl Receive for PacketRx {
    fn recv(&mut self, timeout: Duration, on_frame: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        if !self.block_ready(self.block) {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    return Ok(0);
                }
                return Err(e);
            }
            self.poll_stats();
        }
        let mut n = 0;
        while self.block_ready(self.block) {
            let bd = self.block_desc(self.block);
            // SAFETY: the block belongs to user space (TP_STATUS_USER) until we hand it
            // back; every offset below comes from the kernel's headers of this block and
            // stays within BLOCK_SIZE, and each tpacket3_hdr is 16-byte aligned.
            unsafe {
                let h = &(*bd).hdr.bh1;
                let num = h.num_pkts;
                let mut off = h.offset_to_first_pkt as usize;
                for _ in 0..num {
                    let ph = (bd as *const u8).add(off) as *const libc::tpacket3_hdr;
                    let mac = (*ph).tp_mac as usize;
                    let snap = (*ph).tp_snaplen as usize;
                    if off + mac + snap <= BLOCK_SIZE as usize {
                        let frame = std::slice::from_raw_parts((ph as *const u8).add(mac), snap);
                        on_frame(frame);
                        self.stats.frames += 1;
                        self.stats.bytes += snap as u64;
                        n += 1;
                    }
                    let next = (*ph).tp_next_offset as usize;
                    if next == 0 {
                        break;
                    }
                    off += next;
                }
                std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
                std::ptr::write_volatile(&mut (*bd).hdr.bh1.block_status, libc::TP_STATUS_KERNEL);
            }
            self.block = (self.block + 1) % BLOCK_NR;
        }
        Ok(n)
    }

    fn stats(&self) -> RxStats {
        self.stats
    }
}

impl Drop for PacketRx {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `open_with_filter`; no slice into
        // it outlives `recv`.
        unsafe {
            libc::munmap(self.ring as *mut libc::c_void, self.ring_len);
        }
    }
}

/// Open both halves on `iface` for the probes of `probes` (the receiver behind
/// their reply filter).
pub fn open_pair(iface: &str, probes: ProbeSet) -> io::Result<super::BackendPair> {
    open_pair_prepared(iface, probes, None)
}

/// [`open_pair`], with the receiver's socket and ring made beforehand (see
/// [`PreparedRx`]) when `rx` is given.
pub fn open_pair_prepared(
    iface: &str,
    probes: ProbeSet,
    rx: Option<PreparedRx>,
) -> io::Result<super::BackendPair> {
    let filter = bpf::compile(&probes.reply_filter())?;
    let rx = match rx {
        Some(p) => p.bind(iface, &filter)?,
        None => PacketRx::open_with_filter(iface, &filter)?,
    };
    let tx = PacketTx::open(iface, probes.clone())?;
    Ok(super::BackendPair {
        tx: Box::new(tx),
        rx: Box::new(rx),
        probes,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::FrameParams;
    use crate::wire::{EthernetAddress, Ipv4Packet, TcpPacket};
    use prtip_store::event::Protocol;

    /// Run `f` on a thread inside a fresh, private network namespace whose only
    /// interface is `lo` (up). Nothing it sends can leave that namespace, and the
    /// namespace disappears with the thread. `None` (and a note) when the process
    /// may not make one (no CAP_SYS_ADMIN: an unprivileged `cargo test`); the
    /// caller's test then has nothing to check. Root runs them all (`./dev test`).
    pub(crate) fn in_private_netns<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        std::thread::spawn(move || {
            // SAFETY: unshare only changes this thread's network namespace.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                assert_eq!(
                    e.raw_os_error(),
                    Some(libc::EPERM),
                    "unshare(CLONE_NEWNET): {e}"
                );
                eprintln!("skipped: a private network namespace needs CAP_SYS_ADMIN");
                return None;
            }
            lo_up();
            Some(f())
        })
        .join()
        .expect("netns thread panicked")
    }

    fn lo_up() {
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS on a datagram socket with a zeroed ifreq
        // naming "lo"; the socket is closed before returning.
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            assert!(s >= 0);
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
                *d = *c as libc::c_char;
            }
            assert_eq!(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr), 0);
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            assert_eq!(libc::ioctl(s, libc::SIOCSIFFLAGS, &mut ifr), 0);
            libc::close(s);
        }
    }

    /// Frame parameters of the private-`lo` tests: frames "from" 10.1.1.1.
    fn test_params() -> FrameParams {
        FrameParams {
            src_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            src_ip: Ipv4Addr::new(10, 1, 1, 1),
            ttl: 64,
        }
    }

    #[test]
    fn sendmmsg_and_rx_ring_with_filter_on_a_private_lo() {
        let Some(got) = in_private_netns(|| {
            let us = Ipv4Addr::new(10, 9, 9, 9);
            // Frames "from" 10.1.1.1 to `us`, so the filter sees them as replies.
            let params = test_params();
            let mut rx = PacketRx::open("lo", us).unwrap();
            let mut tx = PacketTx::open("lo", ProbeSet::new(&params)).unwrap();
            let mut probes = Vec::new();
            for i in 0..300u32 {
                probes.push(Probe {
                    dst: if i % 3 == 2 {
                        Ipv4Addr::new(10, 9, 9, 8).into()
                    } else {
                        us.into()
                    },
                    dport: if i % 3 == 1 {
                        1000 + i as u16
                    } else {
                        SPORT_BASE + i as u16
                    },
                    sport: 80,
                    seq: i,
                    proto: if i % 2 == 0 {
                        Protocol::Tcp
                    } else {
                        Protocol::Udp
                    },
                });
            }
            assert_eq!(tx.send(&probes).unwrap(), 300);
            assert_eq!(tx.stats().packets, 300);
            assert!(tx.stats().batches >= 5);
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while got.len() < 100 && std::time::Instant::now() < deadline {
                rx.recv(Duration::from_millis(50), &mut |f| {
                    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
                    let tcp = TcpPacket::new_unchecked(ip.payload());
                    got.push((ip.dst_addr(), tcp.dst_port(), ip.ident()));
                })
                .unwrap();
            }
            // Linger a little: nothing else may arrive.
            rx.recv(Duration::from_millis(100), &mut |_| {
                panic!("a frame the filter should drop")
            })
            .unwrap();
            assert_eq!(rx.stats().frames, 100);
            got
        }) else {
            return;
        };
        // Exactly the i % 3 == 0 probes: to us, on our port range.
        let want: Vec<_> = (0..300u32)
            .filter(|i| i % 3 == 0)
            .map(|i| (Ipv4Addr::new(10, 9, 9, 9), SPORT_BASE + i as u16, i as u16))
            .collect();
        let mut got = got;
        got.sort_by_key(|g| g.2);
        assert_eq!(got, want);
    }

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let e = PacketTx::open("nope-if0", ProbeSet::new(&FrameParams::default()))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "no network interface named nope-if0 in this network namespace"
        );
    }

    #[test]
    fn a_ring_prepared_in_the_background_receives_replies_once_bound() {
        let Some(got) = in_private_netns(|| {
            let us = Ipv4Addr::new(10, 9, 9, 9);
            // Probes from `us` to `us`: the reply filter of their own set takes them.
            let params = FrameParams {
                src_ip: us,
                ..test_params()
            };
            let pending = PreparedRx::in_background();
            let prepared = pending.take().expect("prepared in this namespace");
            let mut pair =
                open_pair_prepared("lo", ProbeSet::new(&params), Some(prepared)).unwrap();
            let probes: Vec<Probe> = (0..10u32)
                .map(|i| Probe {
                    dst: us.into(),
                    dport: SPORT_BASE + i as u16,
                    sport: 80,
                    seq: i,
                    proto: Protocol::Tcp,
                })
                .collect();
            assert_eq!(pair.tx.send(&probes).unwrap(), 10);
            let mut got = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while got < 10 && std::time::Instant::now() < deadline {
                pair.rx
                    .recv(Duration::from_millis(50), &mut |_| got += 1)
                    .unwrap();
            }
            // An unused one is closed without anyone waiting for it.
            drop(PreparedRx::in_background());
            got
        }) else {
            return;
        };
        assert_eq!(got, 10);
    }

    #[test]
    fn a_ring_prepared_in_another_network_namespace_is_refused() {
        // Made here (the test's namespace), bound from a private one: its `lo` is
        // another interface with the same index.
        let prepared = match PreparedRx::new() {
            Ok(p) => p,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => return, // no CAP_NET_RAW
            Err(e) => panic!("{e}"),
        };
        let err = in_private_netns(move || {
            prepared
                .bind("lo", &bpf::reply_filter(Ipv4Addr::LOCALHOST, 1, 2))
                .err()
                .map(|e| e.kind())
        })
        .expect("CAP_NET_RAW came with the right to make a namespace");
        assert_eq!(err, Some(io::ErrorKind::InvalidInput));
    }
}
