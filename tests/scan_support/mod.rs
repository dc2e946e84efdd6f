//! Lab for the engine's scan tests: two uniquely named network namespaces joined by a
//! veth pair, the target side answering for a whole network (AnyIP) with listeners
//! on the "open" ports, torn down by `Drop` even when a test panics.
//!
//! Layout (the project's lab, see /work/shared/lab/README.md, with unique names):
//! scanner ns `<tag>-s` (veth `<tag>s0` 198.18.0.1/30, route 198.19.0.0/16 via
//! 198.18.0.2, no default route) and target ns `<tag>-t` (veth `<tag>t0`
//! 198.18.0.2/30, `local 198.19.0.0/16 dev lo`). Every address of 198.19.0.0/16
//! answers SYN-ACK on the open ports and RST on every other port.

#![allow(dead_code)]

use prtip_engine::backend::packet::PacketRx;
use prtip_engine::backend::Receive;
use prtip_store::event::{Event, PortState, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A lab pair of namespaces; removed on drop.
pub struct ScanLab {
    /// Scanner namespace name.
    pub scan_ns: String,
    /// Target namespace name.
    pub tgt_ns: String,
    /// Scanner interface.
    pub scan_if: String,
    /// Target interface.
    pub tgt_if: String,
    listeners: Vec<TcpListener>,
}

/// Scanner address.
pub const SCAN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

impl ScanLab {
    /// Bring up a lab whose targets listen on `open_ports`.
    pub fn up(open_ports: &[u16]) -> ScanLab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("pe{}x{}", std::process::id() % 100_000, n);
        let lab = ScanLab {
            scan_ns: format!("{tag}-s"),
            tgt_ns: format!("{tag}-t"),
            scan_if: format!("{tag}s0"),
            tgt_if: format!("{tag}t0"),
            listeners: Vec::new(),
        };
        let mut lab = lab;
        ip(&["netns", "add", &lab.scan_ns]);
        ip(&["netns", "add", &lab.tgt_ns]);
        ip(&[
            "link",
            "add",
            &lab.scan_if,
            "netns",
            &lab.scan_ns,
            "type",
            "veth",
            "peer",
            "name",
            &lab.tgt_if,
            "netns",
            &lab.tgt_ns,
        ]);
        let (s, t) = (lab.scan_ns.clone(), lab.tgt_ns.clone());
        ip(&["-n", &s, "link", "set", "lo", "up"]);
        ip(&["-n", &t, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &s,
            "addr",
            "add",
            "198.18.0.1/30",
            "dev",
            &lab.scan_if,
        ]);
        ip(&["-n", &t, "addr", "add", "198.18.0.2/30", "dev", &lab.tgt_if]);
        ip(&[
            "-n",
            &s,
            "link",
            "set",
            &lab.scan_if,
            "address",
            "02:70:72:74:00:01",
        ]);
        ip(&[
            "-n",
            &t,
            "link",
            "set",
            &lab.tgt_if,
            "address",
            "02:70:72:74:00:02",
        ]);
        ip(&["-n", &s, "link", "set", &lab.scan_if, "up"]);
        ip(&["-n", &t, "link", "set", &lab.tgt_if, "up"]);
        ip(&[
            "-n",
            &s,
            "route",
            "add",
            "198.19.0.0/16",
            "via",
            "198.18.0.2",
        ]);
        ip(&[
            "-n",
            &t,
            "route",
            "add",
            "local",
            "198.19.0.0/16",
            "dev",
            "lo",
        ]);
        // Plenty of SYN backlog: a scan leaves many half-open connections for a moment.
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &t,
                "sysctl",
                "-qw",
                "net.ipv4.tcp_max_syn_backlog=65536",
                "net.core.somaxconn=65535",
                "net.ipv4.tcp_syncookies=2",
            ])
            .status();
        let ports = open_ports.to_vec();
        lab.listeners = lab.in_tgt(move || {
            ports
                .iter()
                .map(|p| {
                    TcpListener::bind(("0.0.0.0", *p)).expect("listen in the target namespace")
                })
                .collect()
        });
        lab
    }

    fn ns_fd(name: &str) -> std::fs::File {
        std::fs::File::open(format!("/run/netns/{name}")).expect("open netns")
    }

    fn in_ns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let fd = Self::ns_fd(name);
        std::thread::spawn(move || {
            // SAFETY: setns only changes this thread's network namespace.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }

    /// Run `f` on a thread inside the scanner namespace.
    pub fn in_scan<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Self::in_ns(&self.scan_ns, f)
    }

    /// Run `f` on a thread inside the target namespace.
    pub fn in_tgt<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Self::in_ns(&self.tgt_ns, f)
    }

    /// Start capturing, on the target side, the destinations of every TCP SYN that
    /// arrives; stop and collect with [`Capture::finish`].
    pub fn capture_syns(&self) -> Capture {
        Capture::start(Some(self.tgt_ns.clone()), self.tgt_if.clone(), syn_filter())
    }
}

impl Drop for ScanLab {
    fn drop(&mut self) {
        self.listeners.clear();
        for ns in [&self.scan_ns, &self.tgt_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Accept IPv4 TCP frames with SYN set and ACK clear.
fn syn_filter() -> Vec<libc::sock_filter> {
    let s = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let j = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    vec![
        s(0x28, 12),           // 0 ldh [12]
        j(0x15, 0x0800, 0, 7), // 1 IPv4?
        s(0x30, 23),           // 2 ldb [23]
        j(0x15, 6, 0, 5),      // 3 TCP?
        s(0xb1, 14),           // 4 ldxb 4*([14]&0xf)
        s(0x50, 14 + 13),      // 5 ldb [x+27]: TCP flags
        j(0x45, 0x10, 2, 0),   // 6 ACK set -> drop
        j(0x45, 0x02, 0, 1),   // 7 SYN set -> accept
        s(0x06, 0x40000),      // 8 accept
        s(0x06, 0),            // 9 drop
    ]
}

/// Accept IPv4 frames from or to 198.18.0.0/15 (the lab's addresses).
fn lab_addr_filter() -> Vec<libc::sock_filter> {
    let s = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let j = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    vec![
        s(0x28, 12),
        j(0x15, 0x0800, 0, 7),
        s(0x20, 26),          // ld [26] src
        s(0x54, 0xfffe_0000), // and #mask
        j(0x15, 0xc612_0000, 3, 0),
        s(0x20, 30), // ld [30] dst
        s(0x54, 0xfffe_0000),
        j(0x15, 0xc612_0000, 0, 1),
        s(0x06, 0x40000),
        s(0x06, 0),
    ]
}

/// A capture running on its own thread.
pub struct Capture {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(Ipv4Addr, u16)>>>,
    frames: Arc<AtomicUsize>,
    first: Arc<Mutex<Option<std::time::Instant>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    fn start(ns: Option<String>, iface: String, filter: Vec<libc::sock_filter>) -> Capture {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let frames = Arc::new(AtomicUsize::new(0));
        let first = Arc::new(Mutex::new(None));
        let fi = first.clone();
        let ready = Arc::new(AtomicBool::new(false));
        let (st, se, fr, rd) = (stop.clone(), seen.clone(), frames.clone(), ready.clone());
        let fd = ns.map(|n| ScanLab::ns_fd(&n));
        let handle = std::thread::spawn(move || {
            if let Some(fd) = fd {
                // SAFETY: setns only changes this thread's network namespace.
                assert_eq!(
                    unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) },
                    0
                );
            }
            let mut rx = PacketRx::open_with_filter(&iface, &filter).expect("capture socket");
            rd.store(true, Ordering::SeqCst);
            loop {
                let done = st.load(Ordering::SeqCst);
                rx.recv(Duration::from_millis(20), &mut |f| {
                    if fr.fetch_add(1, Ordering::SeqCst) == 0 {
                        *fi.lock().unwrap() = Some(std::time::Instant::now());
                    }
                    if f.len() >= 38 {
                        let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
                        let ihl = ((f[14] & 0xf) as usize) * 4;
                        let dport = if f.len() >= 14 + ihl + 4 {
                            u16::from_be_bytes([f[14 + ihl + 2], f[14 + ihl + 3]])
                        } else {
                            0
                        };
                        se.lock().unwrap().push((dst, dport));
                    }
                })
                .unwrap();
                if done {
                    break;
                }
            }
        });
        while !ready.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Capture {
            stop,
            seen,
            frames,
            first,
            handle: Some(handle),
        }
    }

    /// Capture every frame from or to the lab's addresses on all interfaces of the
    /// root network namespace (there must be none).
    pub fn root_lab_traffic() -> Capture {
        Capture::start(None, String::new(), lab_addr_filter())
    }

    /// Stop and return (destination, destination port) of every captured frame.
    pub fn finish(mut self) -> Vec<(Ipv4Addr, u16)> {
        std::thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    /// When the first frame arrived, if one did.
    pub fn first_frame_at(&self) -> Option<std::time::Instant> {
        *self.first.lock().unwrap()
    }

    /// Frames seen so far.
    pub fn frames(&self) -> usize {
        self.frames.load(Ordering::SeqCst)
    }
}

/// Final state per (address, proto, port) from a list of events (duplicates must not occur).
pub fn results(events: &[Event]) -> BTreeMap<(Ipv4Addr, Protocol, u16), PortState> {
    let mut m = BTreeMap::new();
    for e in events {
        if let Event::Reply(r) = e {
            let prev = m.insert((r.addr.v4().unwrap(), r.proto, r.port), r.state);
            assert!(
                prev.is_none(),
                "duplicate reply event for {} {}",
                r.addr,
                r.port
            );
        }
    }
    m
}

/// Ground truth of the lab for `net` × `ports` with `open` listening.
pub fn ground_truth(
    addrs: impl Iterator<Item = Ipv4Addr>,
    ports: &[u16],
    open: &[u16],
) -> BTreeMap<(Ipv4Addr, Protocol, u16), PortState> {
    let open: BTreeSet<u16> = open.iter().copied().collect();
    let mut m = BTreeMap::new();
    for a in addrs {
        for &p in ports {
            m.insert(
                (a, Protocol::Tcp, p),
                if open.contains(&p) {
                    PortState::Open
                } else {
                    PortState::Closed
                },
            );
        }
    }
    m
}

/// Addresses of an IPv4 CIDR block.
pub fn cidr(base: Ipv4Addr, prefix: u8) -> impl Iterator<Item = Ipv4Addr> {
    let b = u32::from(base);
    (0..(1u32 << (32 - prefix))).map(move |i| Ipv4Addr::from(b + i))
}
