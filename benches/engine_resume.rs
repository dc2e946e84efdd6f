//! Checkpoint latency and resume time on a scan log of 10 M+ events (a benchmark,
//! not a test; needs root). Run: `cargo bench --bench engine_resume`.
//!
//! 1. Writes a log through the store's `LogWriter` as a paused scan would leave it:
//!    ScanStarted (198.19.0.0/16 × ports 1-320 = 20 971 520 positions), 10 000 000
//!    `Reply` events in walk order, a `Checkpoint` every 100 000 replies, then
//!    Checkpoint + Paused at position 10 000 000. Each `checkpoint()` call is timed
//!    (it returns once the checkpoint and everything before it are durable) while
//!    events stream in at full speed.
//! 2. Resume time: in a lab of namespaces, `prtip replay 1 --from-checkpoint` is
//!    started and the first SYN it sends is timed on the target side (a plain
//!    AF_PACKET socket in the target namespace, read by a thread of its own): process start → open the history and the log,
//!    find the checkpoint, plan, route, open sockets and the log for appending →
//!    first probe on the wire. Then SIGINT pauses it again. Five rounds.
//!
//! With `PRTIP_RESUME_HOLD=1` the lab and the log are kept after the rounds (the
//! command to run by hand, e.g. under strace or perf, is printed): creating the file
//! `<home>/go` times five more rounds with the binary as it is then, `<home>/release`
//! ends the bench.

#[path = "../tests/scan_support/mod.rs"]
mod scan_support;

use prtip_engine::scan::ScanPlan;
use prtip_store::event::{
    now_us, Addr, BackendKind, Checkpoint, Counters, Event, EventSink, Paused, PortState, Reason,
    Reply, ScanSpec, ScanStarted, ScanType, Versions, SCHEMA_VERSION,
};
use prtip_store::{HistoryIndex, LogOptions, LogWriter};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EVENTS: u64 = 10_000_000;

fn spec(iface: &str) -> ScanSpec {
    ScanSpec {
        targets: vec!["198.19.0.0/16".into()],
        resolved: vec![],
        excludes: vec![],
        ports: "T:1-320".into(),
        scan_type: ScanType::Syn,
        service_detection: false,
        rate_mpps: 100_000_000,
        max_rate_mpps: 0,
        retry_gap_ms: None,
        timing: 4,
        seed: 4242,
        shard_index: 0,
        shard_count: 1,
        backend: BackendKind::Packet,
        interface: Some(iface.into()),
        source: Some(Addr::from(std::net::Ipv4Addr::new(198, 18, 0, 1))),
        router_mac: Some([0x02, 0x70, 0x72, 0x74, 0x00, 0x02]),
        max_retries: 0,
        wait_ms: 300,
        checkpoint_every_ms: 1000,
        checkpoint_every_probes: 0,
        outputs: vec![],
        filter: None,
        service_probes: None,
        walk_from: 0,
        probe: Default::default(),
        merged_from: Vec::new(),
        discovery: String::new(),
        xdp: Default::default(),
        sockets: Default::default(),
    }
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn write_log(home: &Path, iface: &str) {
    let dir = home.join("scans").join("1");
    let spec = spec(iface);
    let plan = ScanPlan::new(&spec).unwrap();
    let writer = LogWriter::create(&dir, LogOptions::default()).unwrap();
    let mut sink = writer.sink();
    sink.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id: 1,
        time_us: now_us(),
        spec: spec.clone(),
        versions: Versions {
            prtip: env!("CARGO_PKG_VERSION").into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec!["prtip".into(), "scan".into(), "(synthetic)".into()],
        total_probes: plan.total_probes(),
        total_targets: plan.total_targets(),
        pid: std::process::id(),
    })))
    .unwrap();
    let t0 = Instant::now();
    let mut lat = Vec::new();
    let mut c = Counters::default();
    for p in 0..EVENTS {
        let (v, _) = plan.walk.at(p);
        let (addr, proto, port) = plan.probe_of(v);
        let open = port == 80 || port == 8080;
        c.sent += 1;
        c.replies += 1;
        if open {
            c.open += 1
        } else {
            c.closed += 1
        }
        sink.push(Event::Reply(Reply {
            addr: Addr::from(addr),
            port,
            proto,
            state: if open {
                PortState::Open
            } else {
                PortState::Closed
            },
            reason: if open { Reason::SynAck } else { Reason::Reset },
            ttl: 64,
            icmp_code: 0,
            rtt_us: 150,
            time_us: now_us(),
        }))
        .unwrap();
        if (p + 1) % 100_000 == 0 {
            let t = Instant::now();
            sink.checkpoint(Checkpoint {
                next_index: p + 1,
                counters: c,
                time_us: now_us(),
            })
            .unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    sink.push(Event::Paused(Paused {
        next_index: EVENTS,
        time_us: now_us(),
        reason: "SIGINT".into(),
    }))
    .unwrap();
    let write_s = t0.elapsed().as_secs_f64();
    drop(sink);
    writer.finish().unwrap();
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    // An idle checkpoint: nothing queued before it.
    let (w2, _) = LogWriter::open_append(&dir, LogOptions::default()).unwrap();
    let mut s2 = w2.sink();
    let mut idle = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        s2.checkpoint(Checkpoint {
            next_index: EVENTS,
            counters: c,
            time_us: now_us() + i,
        })
        .unwrap();
        idle.push(t.elapsed().as_secs_f64() * 1e3);
    }
    s2.push(Event::Paused(Paused {
        next_index: EVENTS,
        time_us: now_us(),
        reason: "SIGINT".into(),
    }))
    .unwrap();
    drop(s2);
    w2.finish().unwrap();
    let t = Instant::now();
    HistoryIndex::open(&home.join("history.redb"))
        .unwrap()
        .index_log(&dir)
        .unwrap();
    println!(
        "log: {} events written in {:.1} s ({:.2} M events/s), {:.0} MiB on disk; history index_log (full summary): {:.2} s",
        EVENTS + 2,
        write_s,
        EVENTS as f64 / write_s / 1e6,
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let n = lat.len();
    println!(
        "checkpoint latency under load ({n} checkpoints, one per 100 000 events): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
    println!(
        "checkpoint latency idle (50): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        pct(&mut idle, 0.5),
        pct(&mut idle, 0.99),
        pct(&mut idle, 1.0)
    );
}

/// The moment the first SYN (no ACK) reaches `iface` of namespace `ns`, seen by a
/// plain AF_PACKET socket on a thread of its own: a blocking `recv` wakes for each
/// frame (a TPACKET_V3 ring hands frames over in blocks, up to its 10 ms block
/// timeout late, which the lab's capture does).
struct FirstSyn {
    at: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FirstSyn {
    fn start(ns: &str, iface: &str) -> FirstSyn {
        use std::os::fd::AsRawFd;
        let nsf = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
        let iface = std::ffi::CString::new(iface).unwrap();
        let at = std::sync::Arc::new(std::sync::Mutex::new(None));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (at2, stop2) = (at.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            // SAFETY: plain syscalls on descriptors this thread owns; setns changes only
            // this thread's network namespace; the buffers passed are local and sized.
            unsafe {
                assert_eq!(libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET), 0);
                let fd = libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    (libc::ETH_P_IP as u16).to_be() as i32,
                );
                assert!(fd >= 0, "{}", std::io::Error::last_os_error());
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
                sll.sll_ifindex = libc::if_nametoindex(iface.as_ptr()) as i32;
                assert_eq!(
                    libc::bind(
                        fd,
                        &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    ),
                    0
                );
                let tv = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 20_000,
                };
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const libc::timeval as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as u32,
                );
                ready_tx.send(()).unwrap();
                let mut buf = [0u8; 2048];
                while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
                    if n < 14 + 20 + 14 {
                        continue;
                    }
                    let f = &buf[..n as usize];
                    let ihl = ((f[14] & 0xf) as usize) * 4;
                    let flags = f.get(14 + ihl + 13).copied().unwrap_or(0);
                    if f[23] == 6 && flags & 0x12 == 0x02 {
                        let mut a = at2.lock().unwrap();
                        if a.is_none() {
                            *a = Some(Instant::now());
                        }
                    }
                }
                libc::close(fd);
            }
        });
        ready_rx.recv().unwrap();
        FirstSyn {
            at,
            stop,
            thread: Some(thread),
        }
    }

    fn at(&self) -> Option<Instant> {
        *self.at.lock().unwrap()
    }
}

impl Drop for FirstSyn {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let lab = scan_support::ScanLab::up(&[80, 8080]);
    let home = tempfile::tempdir_in("/tmp").unwrap();
    write_log(home.path(), &lab.scan_if);
    let bin = std::env::var_os("PRTIP_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let me = std::env::current_exe().unwrap();
            me.parent().unwrap().parent().unwrap().join("prtip")
        });
    assert!(
        bin.is_file(),
        "build the binary first: cargo build --release -p prtip ({})",
        bin.display()
    );
    let rounds = || {
        let mut times = Vec::new();
        for round in 0..5 {
            let cap = FirstSyn::start(&lab.tgt_ns, &lab.tgt_if);
            let t0 = Instant::now();
            let child = Command::new("ip")
                .args(["netns", "exec", &lab.scan_ns])
                .arg(&bin)
                .args(["replay", "1", "--from-checkpoint", "--quiet"])
                .env("PRTIP_HOME", home.path())
                .env_remove("PRTIP_HISTORY")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            while cap.at().is_none() && t0.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_micros(200));
            }
            let first = cap.at().expect("no probe within 30 s");
            let ms = first.duration_since(t0).as_secs_f64() * 1e3;
            times.push(ms);
            // SAFETY: kill(2) on our child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            drop(cap);
            println!(
                "resume round {round}: first probe on the wire {ms:.1} ms after process start"
            );
        }
        println!("resume time (process start → first probe on the wire, 5 rounds): median {:.1} ms, max {:.1} ms", pct(&mut times, 0.5), pct(&mut times, 1.0));
    };
    rounds();
    if std::env::var_os("PRTIP_RESUME_HOLD").is_some() {
        // For profiling by hand: keep the lab and the log; `<home>/go` runs the
        // rounds again (with the binary as it is now), `<home>/release` ends.
        println!(
            "holding: PRTIP_HOME={} ip netns exec {} {} replay 1 --from-checkpoint; touch {h}/go to time again, {h}/release to end",
            home.path().display(),
            lab.scan_ns,
            bin.display(),
            h = home.path().display()
        );
        loop {
            if home.path().join("release").exists() {
                break;
            }
            if home.path().join("go").exists() {
                rounds();
                let _ = std::fs::remove_file(home.path().join("go"));
                println!("held");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
