//! Rate sweep (a benchmark, not a test): scan 198.19.0.0/16 × {22, 80, 443, 8080}
//! in a lab of namespaces at increasing `--rate`, one child process per rate, and
//! report wall time, achieved probe rate, recall against the lab's ground truth
//! (every address answers SYN-ACK on 80/8080 and RST on 22/443) and the child's
//! peak RSS. Run as root: `cargo bench --bench engine_rate_sweep` (optionally
//! `-- 25000,50000,0` to choose rates; 0 = unlimited). Figures in benches/README.md.

#[path = "../tests/scan_support/mod.rs"]
mod scan_support;

use prtip_engine::scan::{ScanControl, ScanOutcome};
use prtip_session::{prepare, Home, Start};
use prtip_store::event::{Event, PortState, ScanSpec};
use std::process::Command;
use std::time::Instant;

/// Counts replies that match the ground truth (every address answers SYN-ACK on
/// 80/8080, RST on 22/443).
#[derive(Default)]
struct Tally {
    right: u64,
    wrong: u64,
    replies: u64,
}

impl Tally {
    fn see(&mut self, e: &Event) {
        if let Event::Reply(r) = e {
            self.replies += 1;
            let want = if r.port == 80 || r.port == 8080 {
                PortState::Open
            } else {
                PortState::Closed
            };
            if r.state == want {
                self.right += 1;
            } else {
                self.wrong += 1;
            }
        }
    }
}

fn spec(rate: u64) -> ScanSpec {
    ScanSpec {
        targets: vec!["198.19.0.0/16".into()],
        ports: "22,80,443,8080".into(),
        rate_mpps: rate.saturating_mul(1000),
        timing: 4,
        seed: 42,
        wait_ms: 2000,
        checkpoint_every_ms: 1000,
        ..ScanSpec::default()
    }
}

/// One scan through the session API, as `prtip scan` runs it (route, backend,
/// log, history row in a home of its own), inside the scanner namespace.
fn child(rate: u64) {
    let home_dir = tempfile::tempdir().unwrap();
    let home = Home {
        history: home_dir.path().join("history.redb"),
        scans: home_dir.path().join("scans"),
    };
    let session = prepare(
        spec(rate),
        Start::Fresh {
            command_line: vec![],
        },
        &home,
    )
    .expect("prepare the scan");
    let control = ScanControl::new();
    let mut tally = Tally::default();
    let t0 = Instant::now();
    // Time the sending phase from the live counter: first probe to last probe.
    let done = std::sync::atomic::AtomicBool::new(false);
    let (report, send_s) = std::thread::scope(|s| {
        let watch = s.spawn(|| {
            use std::sync::atomic::Ordering::Relaxed;
            let total = 262_144;
            let mut first = None;
            loop {
                let n = control.progress.sent.load(Relaxed);
                if n >= 1 && first.is_none() {
                    first = Some((Instant::now(), n));
                }
                if n >= total || done.load(Relaxed) {
                    return first.map(|(t, n0)| {
                        (
                            t.elapsed().as_secs_f64(),
                            control.progress.sent.load(Relaxed) - n0,
                        )
                    });
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
        let report = session.run(&control, &mut |e| tally.see(e)).expect("scan");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (report, watch.join().unwrap())
    });
    let wall = t0.elapsed().as_secs_f64();
    let (send_s, send_n) = send_s.unwrap_or((0.0, 0));
    let ScanOutcome::Finished { counters } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    println!(
        "RESULT rate={} wall_s={:.2} send_pps={:.0} sent={} right={} wrong={} replies={} peak_rss_kib={}",
        rate,
        wall,
        send_n as f64 / send_s.max(1e-9),
        counters.sent,
        tally.right,
        tally.wrong,
        tally.replies,
        prtip_engine::metrics::peak_rss_bytes() / 1024
    );
}

fn main() {
    if let Ok(r) = std::env::var("PRTIP_SWEEP_CHILD") {
        child(r.parse().unwrap());
        return;
    }
    let rates: Vec<u64> = std::env::args()
        .skip(1)
        .find(|a| a.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|a| a.split(',').map(|r| r.parse().unwrap()).collect())
        .unwrap_or(vec![25_000, 50_000, 100_000, 200_000, 0]);
    let lab = scan_support::ScanLab::up(&[80, 8080]);
    let exe = std::env::current_exe().unwrap();
    println!(
        "| --rate | wall (s) | send-phase probes/s | recall | ports reported filtered | peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    for rate in rates {
        let out = Command::new("ip")
            .args(["netns", "exec", &lab.scan_ns])
            .arg(&exe)
            .env("PRTIP_SWEEP_CHILD", rate.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("RESULT"))
            .unwrap_or_else(|| panic!("child failed: {}", String::from_utf8_lossy(&out.stderr)));
        let kv: std::collections::HashMap<&str, &str> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.split_once('='))
            .collect();
        let wall: f64 = kv["wall_s"].parse().unwrap();
        let right: f64 = kv["right"].parse().unwrap();
        let send_pps: f64 = kv["send_pps"].parse().unwrap();
        println!(
            "| {} | {:.2} | {:.0} | {:.4} % | {} | {:.1} MiB |",
            if rate == 0 {
                "unlimited".to_string()
            } else {
                rate.to_string()
            },
            wall,
            send_pps,
            right / 262144.0 * 100.0,
            kv["wrong"],
            kv["peak_rss_kib"].parse::<f64>().unwrap() / 1024.0
        );
    }
}
