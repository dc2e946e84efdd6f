//! Helpers for the monitor's end-to-end tests: a tmux server of our own (killed
//! on drop, even on panic), and a scan-like log writer that runs in a child
//! process and obeys SIGUSR1 / SIGUSR2 like `prtip scan` does.

#![allow(dead_code)]

use prtip_store::event::*;
use prtip_store::{LogOptions, LogWriter};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A private tmux server (`tmux -L <name>`), killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A server with a unique socket name.
    pub fn new(prefix: &str) -> Tmux {
        Tmux {
            socket: format!("{prefix}-{}", std::process::id()),
        }
    }

    /// Starts session `session` in a 120×40 terminal running `cmd` (in `cwd` when
    /// given), with escape-time 0: Escape is a key, not the start of an Alt sequence.
    pub fn start(&self, session: &str, cwd: Option<&Path>, cmd: &str) {
        let mut args = vec!["new-session", "-d", "-x", "120", "-y", "40", "-s", session];
        if let Some(dir) = cwd {
            args.extend(["-c", dir.to_str().unwrap()]);
        }
        args.push(cmd);
        self.run(&args);
        self.run(&["set-option", "-s", "escape-time", "0"]);
    }

    /// Run `tmux -L socket args...`; panics with stderr when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(out.0, "tmux {args:?} failed: {}", out.1);
        out.1
    }

    /// Run tmux; (success, stdout or stderr).
    pub fn try_run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        if out.status.success() {
            (true, String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            (false, String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The visible text of the pane (`capture-pane -p`).
    pub fn capture(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", target])
    }

    /// Press keys (`send-keys`; names like `Enter`, `Tab`).
    pub fn keys(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Type literal text (`send-keys -l`).
    pub fn type_text(&self, target: &str, text: &str) {
        self.run(&["send-keys", "-t", target, "-l", text]);
    }

    /// Capture until `pred` holds (the screen is redrawn at least once a
    /// second); panics with the last screen after `limit`.
    pub fn wait_for(
        &self,
        target: &str,
        what: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture(target);
            if pred(&screen) {
                return screen;
            }
            if start.elapsed() > limit {
                panic!("waited {limit:?} for {what}; the screen is:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the session still exists.
    pub fn has_session(&self, name: &str) -> bool {
        self.try_run(&["has-session", "-t", name]).0
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// Wait (polling) until `cond` holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("waited {limit:?} for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

static PAUSE: AtomicBool = AtomicBool::new(false);
static RESUME: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only atomic stores: async-signal-safe.
    match sig {
        libc::SIGUSR1 => PAUSE.store(true, Ordering::SeqCst),
        libc::SIGUSR2 => RESUME.store(true, Ordering::SeqCst),
        _ => STOP.store(true, Ordering::SeqCst),
    }
}

/// Total probes of the fake scan: 256 targets × 100 ports.
pub const FAKE_TOTAL: u64 = 25_600;
/// Open ports every 8th target has, with their service and banner.
pub const FAKE_OPEN: &[(u16, &str, &str, &str, &[u8])] = &[
    (
        22,
        "ssh",
        "OpenSSH",
        "9.2p1",
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
    ),
    (
        80,
        "http",
        "Apache httpd",
        "2.4.57",
        b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.57\r\n",
    ),
    // A hostile service: clears the screen, sets the window title, colours.
    (
        2323,
        "telnet",
        "evil",
        "1.0",
        b"\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[31mowned\x1b[0m\r\n",
    ),
];

/// Behave like a scan writing `dir`: ScanStarted (with this pid), replies,
/// banners, services, a Sample and a Checkpoint every second; on SIGUSR1 write
/// a checkpoint and `Paused { reason: "SIGUSR1" }` and wait; on SIGUSR2 write
/// `Resumed`; on SIGTERM write a checkpoint and `Paused { reason: "SIGTERM" }`
/// and exit; after the last probe write `Finished`.
/// `probes_per_tick` probes are "sent" every 100 ms.
pub fn fake_scan(dir: &Path, probes_per_tick: u64) {
    // SAFETY: installing a handler that only performs atomic stores; the
    // function pointer has the C ABI signal(2) expects.
    unsafe {
        for sig in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGTERM] {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
    let writer = LogWriter::create(dir, LogOptions::default()).expect("create log");
    let mut sink = writer.sink();
    let pid = std::process::id();
    let t0 = now_us();
    let spec = fake_spec();
    sink.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id: 1,
        time_us: t0,
        spec,
        versions: Versions {
            prtip: "fake".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec!["fake-scan".into()],
        total_probes: FAKE_TOTAL,
        total_targets: 256,
        pid,
    })))
    .unwrap();
    let mut next = 0u64;
    let mut counters = Counters::default();
    let mut last_sample = Instant::now();
    let checkpoint = |sink: &mut prtip_store::LogSink, next: u64, c: Counters| {
        sink.checkpoint(Checkpoint {
            next_index: next,
            counters: c,
            time_us: now_us(),
        })
        .unwrap();
    };
    while next < FAKE_TOTAL {
        if STOP.load(Ordering::SeqCst) {
            checkpoint(&mut sink, next, counters);
            sink.push(Event::Paused(Paused {
                next_index: next,
                time_us: now_us(),
                reason: "SIGTERM".into(),
            }))
            .unwrap();
            writer.finish().unwrap();
            return;
        }
        if PAUSE.swap(false, Ordering::SeqCst) {
            checkpoint(&mut sink, next, counters);
            sink.push(Event::Paused(Paused {
                next_index: next,
                time_us: now_us(),
                reason: "SIGUSR1".into(),
            }))
            .unwrap();
            while !RESUME.swap(false, Ordering::SeqCst) && !STOP.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if STOP.load(Ordering::SeqCst) {
                continue;
            }
            sink.push(Event::Resumed(Resumed {
                from_index: next,
                time_us: now_us(),
                pid,
            }))
            .unwrap();
        }
        let end = (next + probes_per_tick).min(FAKE_TOTAL);
        for i in next..end {
            // index -> (target, port): 100 ports per target.
            let target = (i / 100) as u8;
            let port_slot = i % 100;
            let addr: Addr = Ipv4Addr::new(198, 19, 0, target).into();
            counters.sent += 1;
            let open = if target.is_multiple_of(8) {
                FAKE_OPEN.get(port_slot as usize)
            } else {
                None
            };
            let t = now_us();
            if let Some((port, name, product, version, banner)) = open {
                counters.replies += 1;
                counters.open += 1;
                sink.push(Event::Reply(Reply {
                    addr,
                    port: *port,
                    proto: Protocol::Tcp,
                    state: PortState::Open,
                    reason: Reason::SynAck,
                    ttl: 64,
                    icmp_code: 0,
                    rtt_us: 300 + (i % 700) as u32,
                    time_us: t,
                }))
                .unwrap();
                sink.push(Event::Banner(Banner {
                    addr,
                    port: *port,
                    proto: Protocol::Tcp,
                    time_us: t,
                    probe: "NULL".into(),
                    bytes: banner.to_vec(),
                }))
                .unwrap();
                sink.push(Event::Service(Service {
                    addr,
                    port: *port,
                    proto: Protocol::Tcp,
                    time_us: t,
                    name: (*name).into(),
                    product: (*product).into(),
                    version: (*version).into(),
                    extra: String::new(),
                    confidence: 0.9,
                    method: "banner".into(),
                }))
                .unwrap();
            } else if port_slot.is_multiple_of(10) {
                // Some closed ports.
                counters.replies += 1;
                counters.closed += 1;
                sink.push(Event::Reply(Reply {
                    addr,
                    port: 1000 + port_slot as u16,
                    proto: Protocol::Tcp,
                    state: PortState::Closed,
                    reason: Reason::Reset,
                    ttl: 64,
                    icmp_code: 0,
                    rtt_us: 200 + (i % 300) as u32,
                    time_us: t,
                }))
                .unwrap();
            }
        }
        next = end;
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            sink.push(Event::Sample(Sample {
                time_us: now_us(),
                pps: probes_per_tick as f64 * 10.0,
                rps: probes_per_tick as f64,
                counters,
                cpu_percent: 3.0,
                rss_bytes: 12 << 20,
                net_tx_bytes: counters.sent * 60,
                net_rx_bytes: counters.replies * 60,
                log_bytes: counters.sent * 40,
                rtt_us: [500, 800, 950, 999],
            }))
            .unwrap();
            checkpoint(&mut sink, next, counters);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    sink.push(Event::Finished(Finished {
        time_us: now_us(),
        counters,
    }))
    .unwrap();
    writer.finish().unwrap();
}

fn fake_spec() -> ScanSpec {
    ScanSpec {
        targets: vec!["198.19.0.0/24".into()],
        ports: "T:1-100".into(),
        service_detection: true,
        seed: 1,
        checkpoint_every_ms: 1000,
        ..ScanSpec::default()
    }
}

/// Where capture files of the monitor go (`target/monitor-captures/`).
pub fn capture_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("monitor-captures");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a captured screen to `capture_dir()/name`.
pub fn save_capture(name: &str, screen: &str) {
    std::fs::write(capture_dir().join(name), screen).unwrap();
}

/// `Showing X/Y results` on the monitor's screen → (X, Y).
pub fn showing(screen: &str) -> (usize, usize) {
    let at = screen.find("Showing ").expect("status line");
    let rest = &screen[at + "Showing ".len()..];
    let (x, rest) = rest.split_once('/').unwrap();
    let y = rest.split_whitespace().next().unwrap();
    (x.parse().unwrap(), y.parse().unwrap())
}
