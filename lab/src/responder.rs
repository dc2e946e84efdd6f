//! The lab's target: the process (`prtip lab serve`) that runs inside the target
//! namespace and owns the listening sockets. One worker thread per core, each
//! with its own `SO_REUSEPORT` listener on every open TCP port and socket on every
//! UDP port, driven by its own epoll: accept, greet, answer, close. Built for tens
//! of thousands of connections per second (nonblocking, a large backlog, no
//! per-connection threads, bounded buffers and an idle timeout).
//!
//! It also answers ICMP address mask requests ([`crate::icmp_mask`]), which
//! Linux does not. What the services say lives in [`crate::services`] and [`crate::udp`]; this
//! module only moves bytes. It never configures the network (that is
//! [`crate::lab`]'s job) and never leaves the namespace it was started in.

use crate::config::LabConfig;
use crate::error::LabError;
use crate::services::{tcp_kind, Kind, Session};
use crate::udp::udp_reply;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{
    bind, listen, recvmsg, sendmsg, setsockopt, socket, sockopt, AddressFamily, Backlog,
    ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn, SockaddrIn6,
};
use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// A connection that says nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections one worker keeps open; past this, a connection gets its greeting
/// and is closed at once.
pub const MAX_CONNS_PER_WORKER: usize = 30_000;

const LISTENER: u64 = 1 << 40;
const UDP: u64 = 1 << 41;

/// Run the responder for `cfg` until the process is killed. Once every socket of
/// every worker is bound, writes this process's pid to `ready_file` (if given):
/// the signal [`crate::Lab::up`] waits for.
pub fn serve(cfg: &LabConfig, ready_file: Option<&Path>) -> Result<(), LabError> {
    raise_nofile();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (tx, rx) = mpsc::channel::<Result<(), LabError>>();
    let mut handles = Vec::new();
    for i in 0..workers {
        let tx = tx.clone();
        let cfg = cfg.clone();
        let h = std::thread::Builder::new()
            .name(format!("lab-worker-{i}"))
            .spawn(move || match Worker::bind(&cfg) {
                Ok(mut w) => {
                    // Bound (ports below 1024 needed CAP_NET_BIND_SERVICE): serving
                    // needs no capability, so this thread keeps none.
                    let dropped = drop_all_capabilities();
                    let _ = tx.send(dropped.map_err(|e| LabError::io("dropping capabilities", e)));
                    w.run()
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| LabError::io("spawning a responder worker", e))?;
        handles.push(h);
    }
    drop(tx);
    for _ in 0..workers {
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(LabError::Setup(
                    "a responder worker died while binding".into(),
                ))
            }
        }
    }
    crate::icmp_mask::spawn(cfg)?;
    if let Some(f) = ready_file {
        std::fs::write(f, format!("{}\n", std::process::id()))
            .map_err(|e| LabError::io(format!("writing {}", f.display()), e))?;
    }
    // Every socket is bound and the ready file written: the main thread only
    // waits from here on.
    drop_all_capabilities().map_err(|e| LabError::io("dropping capabilities", e))?;
    eprintln!(
        "prtip lab serve: {} worker(s); TCP {:?}; UDP {:?}",
        workers, cfg.tcp_ports, cfg.udp_ports
    );
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// Empty the calling thread's capability sets (effective, permitted, inheritable;
/// ambient cleared): the responder runs as root only to bind its ports and
/// raise its descriptor limit, then serves with no capability at all.
/// Capabilities are per thread: each worker calls it after binding.
pub fn drop_all_capabilities() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    let h = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [0u32; 6]; // two {effective, permitted, inheritable} words, all empty
                          // SAFETY: prctl(2) PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    // SAFETY: capset(2) with a valid version-3 header and the two data words it
    // reads; both live for the duration of the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &h, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Raise the soft open-files limit to the hard limit (one descriptor per open connection).
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn sock_err(what: String) -> impl FnOnce(Errno) -> LabError {
    move |e| LabError::io(what, std::io::Error::from(e))
}

/// A socket bound to every address of one family (`0.0.0.0` or `[::]`, the
/// latter IPv6-only) on `port`, with SO_REUSEPORT and, for UDP, packet info.
fn bound_socket(ty: SockType, port: u16, v6: bool) -> Result<OwnedFd, LabError> {
    let proto = if ty == SockType::Stream { "TCP" } else { "UDP" };
    let fam = if v6 { "IPv6" } else { "IPv4" };
    let what = format!("{proto} port {port} ({fam})");
    let family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(
        family,
        ty,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sock_err(format!("creating a socket for {what}")))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)
        .map_err(sock_err(format!("SO_REUSEADDR on {what}")))?;
    setsockopt(&fd, sockopt::ReusePort, &true)
        .map_err(sock_err(format!("SO_REUSEPORT on {what}")))?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)
            .map_err(sock_err(format!("IPV6_V6ONLY on {what}")))?;
    }
    if ty == SockType::Datagram {
        if v6 {
            setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)
                .map_err(sock_err(format!("IPV6_RECVPKTINFO on {what}")))?;
            // Replies come from the AnyIP address asked, which is routed as
            // local but not assigned: IPv6 refuses it as a source without this.
            setsockopt(&fd, sockopt::IpFreebind, &true)
                .map_err(sock_err(format!("IP_FREEBIND on {what}")))?;
        } else {
            setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)
                .map_err(sock_err(format!("IP_PKTINFO on {what}")))?;
        }
    }
    let bound = if v6 {
        bind(
            fd.as_raw_fd(),
            &SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)),
        )
    } else {
        bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, port))
    };
    bound.map_err(sock_err(format!(
        "binding {what} (is something else listening on it?)"
    )))?;
    Ok(fd)
}

struct Conn {
    stream: TcpStream,
    session: Session,
    generation: u64,
}

struct Worker {
    epoll: Epoll,
    listeners: Vec<(TcpListener, Kind)>,
    udp: Vec<(UdpSocket, u16, bool)>,
    conns: HashMap<RawFd, Conn>,
    timeouts: VecDeque<(Instant, RawFd, u64)>,
    generation: u64,
}

impl Worker {
    fn bind(cfg: &LabConfig) -> Result<Worker, LabError> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(sock_err("creating an epoll instance".into()))?;
        let mut listeners = Vec::new();
        // IPv4 and IPv6 (the link always has IPv6; the target prefix may be absent).
        let tcp = cfg.tcp_ports.iter().flat_map(|&p| [(p, false), (p, true)]);
        for (i, (port, v6)) in tcp.enumerate() {
            let fd = bound_socket(SockType::Stream, port, v6)?;
            // The kernel caps the backlog at net.core.somaxconn, which `lab up`
            // sets to cfg.backlog in this namespace.
            listen(&fd, Backlog::MAXALLOWABLE)
                .map_err(sock_err(format!("listening on TCP port {port}")))?;
            epoll
                .add(
                    &fd,
                    EpollEvent::new(EpollFlags::EPOLLIN, LISTENER + i as u64),
                )
                .map_err(sock_err("epoll_ctl".into()))?;
            listeners.push((TcpListener::from(fd), tcp_kind(port)));
        }
        let mut udp = Vec::new();
        let udp_ports = cfg.udp_ports.iter().flat_map(|&p| [(p, false), (p, true)]);
        for (i, (port, v6)) in udp_ports.enumerate() {
            let fd = bound_socket(SockType::Datagram, port, v6)?;
            epoll
                .add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, UDP + i as u64))
                .map_err(sock_err("epoll_ctl".into()))?;
            udp.push((UdpSocket::from(fd), port, v6));
        }
        Ok(Worker {
            epoll,
            listeners,
            udp,
            conns: HashMap::new(),
            timeouts: VecDeque::new(),
            generation: 0,
        })
    }

    fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 1024];
        loop {
            let wait_ms: u16 = match self.timeouts.front() {
                Some((deadline, _, _)) => deadline
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .clamp(1, 1000) as u16,
                None => 1000,
            };
            let n = match self.epoll.wait(&mut events, wait_ms) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => {
                    eprintln!("prtip lab serve: epoll_wait: {e}");
                    return;
                }
            };
            for ev in &events[..n] {
                let data = ev.data();
                if data >= UDP {
                    self.udp_ready((data - UDP) as usize);
                } else if data >= LISTENER {
                    self.accept_ready((data - LISTENER) as usize);
                } else {
                    self.conn_ready(data as RawFd);
                }
            }
            self.expire();
        }
    }

    fn accept_ready(&mut self, i: usize) {
        for _ in 0..512 {
            let (stream, kind) = match self.listeners[i].0.accept() {
                Ok((s, _)) => (s, self.listeners[i].1),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: leave the rest in the backlog for now.
                    eprintln!("prtip lab serve: accept: {e}");
                    return;
                }
            };
            self.new_conn(stream, kind);
        }
    }

    fn new_conn(&mut self, stream: TcpStream, kind: Kind) {
        if kind == Kind::Silent || stream.set_nonblocking(true).is_err() {
            return; // dropped: closed
        }
        let session = Session::new(kind);
        if let Some(g) = session.greeting() {
            if (&stream).write(&g).is_err() {
                return;
            }
        }
        if self.conns.len() >= MAX_CONNS_PER_WORKER {
            return;
        }
        let fd = stream.as_raw_fd();
        let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, fd as u64);
        if self.epoll.add(&stream, ev).is_err() {
            return;
        }
        self.generation += 1;
        self.timeouts
            .push_back((Instant::now() + IDLE_TIMEOUT, fd, self.generation));
        self.conns.insert(
            fd,
            Conn {
                stream,
                session,
                generation: self.generation,
            },
        );
    }

    fn conn_ready(&mut self, fd: RawFd) {
        let Some(conn) = self.conns.get_mut(&fd) else {
            return;
        };
        let mut buf = [0u8; 4096];
        let close = loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => {
                    let out = conn.session.input(&buf[..n]);
                    if !out.reply.is_empty() && !write_all_nonblocking(&conn.stream, &out.reply) {
                        break true;
                    }
                    if out.close {
                        break true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break true,
            }
        };
        if close {
            // Dropping the stream closes it, which also removes it from the epoll set.
            self.conns.remove(&fd);
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        while let Some(&(deadline, fd, generation)) = self.timeouts.front() {
            if deadline > now {
                break;
            }
            self.timeouts.pop_front();
            if self
                .conns
                .get(&fd)
                .is_some_and(|c| c.generation == generation)
            {
                self.conns.remove(&fd);
            }
        }
    }

    fn udp_ready(&mut self, i: usize) {
        if self.udp[i].2 {
            return self.udp6_ready(i);
        }
        let (sock, port) = (&self.udp[i].0, self.udp[i].1);
        let fd = sock.as_raw_fd();
        let mut buf = [0u8; 2048];
        for _ in 0..512 {
            let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
            let (n, src, dst) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let msg =
                    match recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
                        Ok(m) => m,
                        Err(Errno::EINTR) => continue,
                        Err(_) => return, // EAGAIN: drained
                    };
                let mut dst = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::Ipv4PacketInfo(pi) = c {
                            dst = Some(pi.ipi_addr);
                        }
                    }
                }
                (msg.bytes, msg.address, dst)
            };
            let (Some(src), Some(dst)) = (src, dst) else {
                continue;
            };
            let local = Ipv4Addr::from(u32::from_be(dst.s_addr));
            if local.is_multicast() || local.is_broadcast() || src.port() == 0 {
                continue;
            }
            let Some(reply) = udp_reply(port, local, &buf[..n], SystemTime::now()) else {
                continue;
            };
            // Answer from the address the datagram was sent to (AnyIP: any address
            // of the target network), not from the address routing would pick.
            let pi = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: dst,
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let _ = sendmsg(
                fd,
                &[IoSlice::new(&reply)],
                &[ControlMessage::Ipv4PacketInfo(&pi)],
                MsgFlags::MSG_DONTWAIT,
                Some(&src),
            );
        }
    }
}

impl Worker {
    /// As `udp_ready`, for an IPv6 socket: answer from the address asked.
    fn udp6_ready(&mut self, i: usize) {
        let (sock, port) = (&self.udp[i].0, self.udp[i].1);
        let fd = sock.as_raw_fd();
        let mut buf = [0u8; 2048];
        for _ in 0..512 {
            let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
            let (n, src, dst) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let msg = match recvmsg::<SockaddrIn6>(
                    fd,
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                ) {
                    Ok(m) => m,
                    Err(Errno::EINTR) => continue,
                    Err(_) => return, // EAGAIN: drained
                };
                let mut dst = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::Ipv6PacketInfo(pi) = c {
                            dst = Some(pi.ipi6_addr);
                        }
                    }
                }
                (msg.bytes, msg.address, dst)
            };
            let (Some(src), Some(dst)) = (src, dst) else {
                continue;
            };
            let local = Ipv6Addr::from(dst.s6_addr);
            if local.is_multicast() || src.port() == 0 {
                continue;
            }
            let Some(reply) = udp_reply(port, IpAddr::V6(local), &buf[..n], SystemTime::now())
            else {
                continue;
            };
            let pi = libc::in6_pktinfo {
                ipi6_addr: dst,
                ipi6_ifindex: 0,
            };
            let _ = sendmsg(
                fd,
                &[IoSlice::new(&reply)],
                &[ControlMessage::Ipv6PacketInfo(&pi)],
                MsgFlags::MSG_DONTWAIT,
                Some(&src),
            );
        }
    }
}

/// Write everything or give up (the peer is not reading): replies are small.
fn write_all_nonblocking(mut stream: &TcpStream, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match stream.write(data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    true
}
