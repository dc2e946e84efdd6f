//! Connect-scan figures (a benchmark, not a test), in the project's lab:
//!
//! 1. all 65,535 TCP ports of one lab host with `-sT` (RustScan's published claim is
//!    about 3 s for this), at several in-flight bounds;
//! 2. the same host with the SYN engine (AF_PACKET) for comparison;
//! 3. a /20 × {22, 80, 443, 8080} (16,384 ports) with `-sT` and with `-sS`;
//! 4. the peer: `nmap -sT -p-` on the same host, when nmap is installed.
//!
//! Every prtip run is a child process started with `ip netns exec <scanner ns>` (so its
//! peak RSS is its own), prints one RESULT line, and is checked against the lab's
//! ground truth. Run as root after building the responder:
//! `cargo build --release -p prtip && cargo bench --bench connect` (add `-- quick` for
//! one run of each). Figures and the machine they came from: benches/README.md,
//! section "Connect and services".

#[path = "../tests/common/mod.rs"]
mod common;

use prtip_engine::scan::{ScanControl, ScanOutcome};
use prtip_session::{prepare, Home, Start};
use prtip_store::event::{BackendKind, Event, PortState, ScanSpec, ScanType};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Instant;

/// Counts replies against the lab's ground truth (open ports of the lab), keeps nothing.
struct Tally {
    open_ports: Vec<u16>,
    right: u64,
    wrong: u64,
    open: u64,
}

impl Tally {
    fn see(&mut self, e: &Event) {
        if let Event::Reply(r) = e {
            let want = if self.open_ports.contains(&r.port) {
                PortState::Open
            } else {
                PortState::Closed
            };
            if r.state == want {
                self.right += 1;
            } else {
                self.wrong += 1;
            }
            if r.state == PortState::Open {
                self.open += 1;
            }
        }
    }
}

fn spec(targets: &str, ports: &str, scan_type: ScanType, parallel: u64) -> ScanSpec {
    ScanSpec {
        targets: vec![targets.into()],
        resolved: vec![],
        excludes: vec![],
        ports: ports.into(),
        scan_type,
        service_detection: false,
        rate_mpps: 0,
        max_rate_mpps: 0,
        retry_gap_ms: None,
        timing: 5,
        seed: 42,
        shard_index: 0,
        shard_count: 1,
        backend: if scan_type == ScanType::Syn {
            BackendKind::Packet
        } else {
            BackendKind::Connect
        },
        interface: None,
        source: None,
        router_mac: None,
        max_retries: 1,
        wait_ms: 1000,
        checkpoint_every_ms: 1000,
        checkpoint_every_probes: 0,
        outputs: vec![],
        filter: None,
        service_probes: None,
        walk_from: 0,
        probe: Default::default(),
        merged_from: Vec::new(),
        discovery: String::new(),
        sockets: prtip_store::event::SocketSettings {
            max_parallelism: Some(parallel),
            connect_timeout_ms: Some(1000),
            ..Default::default()
        },
        xdp: Default::default(),
    }
}

/// Runs one scan in this (child) process, inside the scanner namespace, through
/// the session API as `prtip scan` does (route, backend, log and history row in a
/// home of its own).
fn child(kind: &str, targets: &str, ports: &str, parallel: u64, open_ports: Vec<u16>) {
    let scan_type = if kind == "syn" {
        ScanType::Syn
    } else {
        ScanType::Connect
    };
    let home_dir = tempfile::tempdir().unwrap();
    let home = Home {
        history: home_dir.path().join("history.redb"),
        scans: home_dir.path().join("scans"),
    };
    let session = prepare(
        spec(targets, ports, scan_type, parallel),
        Start::Fresh {
            command_line: vec![],
        },
        &home,
    )
    .expect("prepare the scan");
    let mut tally = Tally {
        open_ports,
        right: 0,
        wrong: 0,
        open: 0,
    };
    let t0 = Instant::now();
    let report = session
        .run(&ScanControl::new(), &mut |e| tally.see(e))
        .expect("scan");
    let wall = t0.elapsed().as_secs_f64();
    let ScanOutcome::Finished { counters } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    println!(
        "RESULT wall_s={wall:.3} sent={} right={} wrong={} open={} peak_rss_kib={}",
        counters.sent,
        tally.right,
        tally.wrong,
        tally.open,
        prtip_engine::metrics::peak_rss_bytes() / 1024
    );
}

struct Row {
    what: String,
    ports: u64,
    wall: f64,
    right: u64,
    wrong: u64,
    open: u64,
    rss_mib: f64,
}

fn spawn(ns: &str, kind: &str, targets: &str, ports: &str, parallel: u64, open: &[u16]) -> Row {
    let exe = std::env::current_exe().unwrap();
    let open_s: Vec<String> = open.iter().map(|p| p.to_string()).collect();
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(&exe)
        .env("PRTIP_CONNECT_BENCH_CHILD", kind)
        .env("BENCH_TARGETS", targets)
        .env("BENCH_PORTS", ports)
        .env("BENCH_PARALLEL", parallel.to_string())
        .env("BENCH_OPEN", open_s.join(","))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("child failed: {}", String::from_utf8_lossy(&out.stderr)));
    let kv: HashMap<&str, &str> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.split_once('='))
        .collect();
    let right: u64 = kv["right"].parse().unwrap();
    let wrong: u64 = kv["wrong"].parse().unwrap();
    Row {
        what: String::new(),
        ports: right + wrong,
        wall: kv["wall_s"].parse().unwrap(),
        right,
        wrong,
        open: kv["open"].parse().unwrap(),
        rss_mib: kv["peak_rss_kib"].parse::<f64>().unwrap() / 1024.0,
    }
}

fn nmap_all_ports(ns: &str, host: Ipv4Addr) -> Option<(f64, usize)> {
    Command::new("nmap").arg("--version").output().ok()?;
    let t0 = Instant::now();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "nmap",
            "-sT",
            "-n",
            "-Pn",
            "-p-",
            "-T5",
            "--min-rate",
            "50000",
            "-oG",
            "-",
        ])
        .arg(host.to_string())
        .output()
        .ok()?;
    let wall = t0.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let open = text.matches("/open/").count();
    Some((wall, open))
}

fn main() {
    if let Ok(kind) = std::env::var("PRTIP_CONNECT_BENCH_CHILD") {
        let env = |k: &str| std::env::var(k).unwrap();
        let open: Vec<u16> = env("BENCH_OPEN")
            .split(',')
            .map(|p| p.parse().unwrap())
            .collect();
        child(
            &kind,
            &env("BENCH_TARGETS"),
            &env("BENCH_PORTS"),
            env("BENCH_PARALLEL").parse().unwrap(),
            open,
        );
        return;
    }
    let quick = std::env::args().any(|a| a == "quick");
    assert!(
        common::is_root(),
        "run as root: the benchmark builds a lab of namespaces"
    );
    let lab = common::lab("cb");
    let ns = lab.config().scan_ns.clone();
    let open = lab.config().tcp_ports.clone();
    let host = Ipv4Addr::new(198, 19, 0, 1);
    let mut rows = Vec::new();
    let reps = if quick { 1 } else { 3 };
    let parallels: &[u64] = if quick { &[4096] } else { &[1024, 4096, 16384] };
    for &p in parallels {
        for _ in 0..reps {
            let mut r = spawn(&ns, "connect", &host.to_string(), "1-65535", p, &open);
            r.what = format!("-sT, 1 host × 65,535 ports, {p} in flight");
            rows.push(r);
        }
    }
    for _ in 0..reps {
        let mut r = spawn(&ns, "syn", &host.to_string(), "1-65535", 0, &open);
        r.what = "-sS (AF_PACKET), 1 host × 65,535 ports".into();
        rows.push(r);
    }
    for _ in 0..reps {
        let mut r = spawn(
            &ns,
            "connect",
            "198.19.16.0/20",
            "22,80,443,8080",
            4096,
            &open,
        );
        r.what = "-sT, /20 × 4 ports, 4096 in flight".into();
        rows.push(r);
        let mut r = spawn(&ns, "syn", "198.19.16.0/20", "22,80,443,8080", 0, &open);
        r.what = "-sS (AF_PACKET), /20 × 4 ports".into();
        rows.push(r);
    }
    println!("| scan | ports | wall (s) | ports/s | correct | wrong | open found | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.0} | {} | {} | {} | {:.1} MiB |",
            r.what,
            r.ports,
            r.wall,
            r.ports as f64 / r.wall.max(1e-9),
            r.right,
            r.wrong,
            r.open,
            r.rss_mib
        );
    }
    if let Some((wall, n)) = nmap_all_ports(&ns, host) {
        println!(
            "| nmap -sT -p- -T5 --min-rate 50000, 1 host | 65535 | {wall:.2} | {:.0} | - | - | {n} | - |",
            65535.0 / wall
        );
    }
}
