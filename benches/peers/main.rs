//! The peer harness (issue 9): prtip against masscan, zmap and nmap, side by
//! side, in one run, in the project's own lab.
//!
//! ```sh
//! sudo cargo bench --bench peers -- --quick     # ~2-3 minutes, /20, sanity
//! sudo cargo bench --bench peers -- --full      # the figures in benches/README.md
//! ```
//!
//! One run: install the peers from Debian when `dpkg -s` says they are missing;
//! bring up a lab with a unique name (always torn down, also on Ctrl-C or a
//! panic) with the XDP responder on the target's veth (every SYN answered by
//! XDP_TX: SYN-ACK on 80 and 8080, RST on every other port, for every address
//! of 198.19.0.0/16) and the pass-through on the scanner's; then
//! (a) a rate sweep on /16 × {22,80,443,8080} (131 072 open) per scanner and
//! rate: wall time, send window and probe rate measured at the target, recall
//! against the ground truth, CPU (user+sys) and peak RSS from wait4's rusage;
//! (b) per scanner, the highest rate that still finds 100% (bisection, bounded);
//! (c) send-only probes/s into the XDP sink (XDP_DROP, counted by the program);
//! (d) memory: prtip's mmap'd log vs results kept in memory (same engine, same
//! scan, 131 072 open) and the peers on the same scan;
//! (e) IPv6: 2001:db8:100::/116 × the same ports (4 096 × 4, the target's kernel
//! answering) by prtip, `nmap -6` and masscan at the first rate: wall time,
//! probes per wall second and recall (ipv6.rs).
//! Ratios prtip/peer are printed for every figure; everything is saved as JSON
//! under `target/peers/`.
//!
//! prtip runs as `prtip scan` once the cli has `--rate` (and `--xdp`); until
//! then as this binary's `--child` mode: the same engine, backends and log
//! writer, driven directly (see child.rs). It owns only its lab, its child
//! processes and `target/peers/`.

mod child;
mod ipv6;
mod lab;
mod parse;
mod proc;
mod report;
mod scanners;
mod truth;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use prtip_lab::Ipv4Net;
use prtip_xdp::XdpMode;
use serde_json::{json, Value};

use lab::{BenchLab, TargetKind};
use scanners::{CliCaps, Env, Job, Outcome, Scanner};
use truth::Truth;

/// Ports of the sweep (the issue's /16 × 4 ports) and the lab's open ones among them.
const PORTS: [u16; 4] = [22, 80, 443, 8080];
const OPEN: [u16; 2] = [80, 8080];

/// Every phase `--phases` knows (`wide` runs by default with `--full` only).
const PHASES: [&str; 6] = ["sweep", "bisect", "send", "memory", "ipv6", "wide"];

/// One run's settings.
#[derive(Clone, Debug)]
struct Settings {
    mode: &'static str,
    /// Prefix length of the scanned network (16 full, 20 quick).
    prefix: u8,
    rates: Vec<u64>,
    bisect_steps: u32,
    wait_s: u64,
    /// Ports of the send-only phase (× the scanned network).
    send_ports: u16,
    memory: bool,
    memory_rate: u64,
    only: Vec<Scanner>,
    phases: Vec<String>,
    install: bool,
    xdp_mode: XdpMode,
    /// TSO/GSO on the scanner's veth during the send-only phase.
    send_offloads: bool,
    /// Wide phase: probes/s asked of every scanner.
    wide_rate: u64,
    /// Wide phase: ports 1..=this per address (256: a /16 is 16.7 M probes).
    wide_ports: u16,
    /// Wide phase, sparse case: one address in this many answers (100: 1%).
    wide_every: u32,
}

fn usage() -> &'static str {
    "usage: cargo bench --bench peers -- [--quick|--full] [--only prtip-packet,prtip-xdp,masscan,zmap,nmap]\n\
     \x20      [--phases sweep,bisect,send,memory,ipv6,wide] [--rates 50000,100000] [--no-install] [--xdp-mode native|skb] [--wait SECONDS]\n\
     \x20      [--send-offloads on|off] [--wide-rate PROBES_PER_S (500000)] [--wide-ports N (256)]"
}

fn settings(args: &[String]) -> anyhow::Result<Settings> {
    let full = args.iter().any(|a| a == "--full");
    let mut s = if full {
        Settings {
            mode: "full",
            prefix: 16,
            rates: vec![25_000, 50_000, 100_000, 150_000, 200_000, 300_000],
            bisect_steps: 5,
            wait_s: 1,
            send_ports: 16,
            memory: true,
            memory_rate: 50_000,
            only: Scanner::ALL.to_vec(),
            phases: vec![],
            install: true,
            xdp_mode: XdpMode::Native,
            send_offloads: false,
            wide_rate: 500_000,
            wide_ports: 256,
            wide_every: 100,
        }
    } else {
        Settings {
            mode: "quick",
            prefix: 20,
            rates: vec![50_000, 200_000],
            bisect_steps: 2,
            wait_s: 1,
            send_ports: 16,
            memory: true,
            memory_rate: 50_000,
            only: Scanner::ALL.to_vec(),
            phases: vec![],
            install: true,
            xdp_mode: XdpMode::Native,
            send_offloads: false,
            wide_rate: 500_000,
            wide_ports: 256,
            wide_every: 100,
        }
    };
    s.phases = ["sweep", "bisect", "send", "memory", "ipv6"]
        .map(String::from)
        .to_vec();
    if full {
        s.phases.push("wide".into());
    }
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let val = || {
            args.get(i + 1)
                .cloned()
                .with_context(|| format!("{a} needs a value\n{}", usage()))
        };
        match a {
            "--quick" | "--full" | "--bench" => {}
            "--no-install" => s.install = false,
            "--wait" => {
                s.wait_s = val()?
                    .parse()
                    .with_context(|| format!("bad --wait (whole seconds)\n{}", usage()))?;
                i += 1;
            }
            "--only" => {
                s.only = val()?
                    .split(',')
                    .map(|n| {
                        Scanner::parse(n).with_context(|| {
                            format!("unknown scanner {n:?} in --only\n{}", usage())
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
                i += 1;
            }
            "--phases" => {
                s.phases = val()?.split(',').map(String::from).collect();
                for p in &s.phases {
                    anyhow::ensure!(
                        PHASES.contains(&p.as_str()),
                        "unknown phase {p:?} in --phases\n{}",
                        usage()
                    );
                }
                i += 1;
            }
            "--rates" => {
                s.rates = val()?
                    .split(',')
                    .map(|r| {
                        r.parse()
                            .with_context(|| format!("bad rate {r:?} in --rates"))
                    })
                    .collect::<anyhow::Result<_>>()?;
                i += 1;
            }
            "--wide-rate" => {
                s.wide_rate = val()?
                    .parse()
                    .with_context(|| format!("bad --wide-rate (probes/s)\n{}", usage()))?;
                i += 1;
            }
            "--wide-ports" => {
                s.wide_ports = val()?
                    .parse()
                    .ok()
                    .filter(|&n: &u16| n >= 1)
                    .with_context(|| format!("bad --wide-ports (1-65535)\n{}", usage()))?;
                i += 1;
            }
            "--send-offloads" => {
                s.send_offloads = match val()?.as_str() {
                    "on" => true,
                    "off" => false,
                    m => anyhow::bail!("bad --send-offloads {m:?}: on or off"),
                };
                i += 1;
            }
            "--xdp-mode" => {
                s.xdp_mode = match val()?.as_str() {
                    "native" => XdpMode::Native,
                    "skb" => XdpMode::Skb,
                    m => anyhow::bail!("bad --xdp-mode {m:?}: native or skb"),
                };
                i += 1;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?}\n{}", usage()),
        }
        i += 1;
    }
    s.memory = s.phases.iter().any(|p| p == "memory");
    Ok(s)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--spawn") {
        proc::launcher_main(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--child") {
        if let Err(e) = child::main(&args[1..]) {
            eprintln!("peers child: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    match run(&args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("peers: {e:#}");
            std::process::exit(1);
        }
    }
}

/// The target directory (`target/` of the workspace).
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    // target/release/deps/peers-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn find_prtip() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("PRTIP_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("prtip"))
        .context("locating target/release")?;
    if !p.is_file() {
        anyhow::bail!(
            "{} does not exist: build it first with `cargo build --release -p prtip` (or set PRTIP_BIN)",
            p.display()
        );
    }
    Ok(p)
}

/// Install masscan, zmap, nmap (and libpcap) from Debian when missing.
fn install_peers() -> anyhow::Result<Vec<String>> {
    let pkgs = ["masscan", "zmap", "nmap", "libpcap0.8"];
    let missing: Vec<&str> = pkgs
        .into_iter()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(vec![]);
    }
    println!("installing {} from Debian's packages", missing.join(" "));
    let ok = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?
        .success();
    anyhow::ensure!(ok, "apt-get install {} failed", missing.join(" "));
    Ok(missing.into_iter().map(String::from).collect())
}

fn version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            let t = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            t.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|e| format!("not runnable: {e}"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let s = settings(args)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!(
            "the peer harness needs root (namespaces, raw sockets, XDP): run it with sudo"
        );
    }
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, proc::stop_flag().clone())?;
    }
    let installed = if s.install { install_peers()? } else { vec![] };
    let prtip = find_prtip()?;
    let target = target_dir();
    let out_dir = target.join("peers");
    let work = out_dir.join("work");
    std::fs::create_dir_all(&work)?;
    let empty = work.join("empty-blacklist.conf");
    std::fs::write(&empty, "")?;
    let run_dir = PathBuf::from(prtip_lab::config::DEFAULT_RUN_DIR);
    for name in lab::cleanup_stale(&run_dir) {
        println!("removed stale bench lab {name} (its harness is gone)");
    }
    let cli = CliCaps::detect(&prtip);
    let started = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let t0 = Instant::now();
    let versions = json!({
        "masscan": version("masscan", "--version"),
        "zmap": version("zmap", "--version"),
        "nmap": version("nmap", "--version"),
        "prtip": version(&prtip.display().to_string(), "--version"),
        "kernel": version("uname", "-r"),
    });
    let load_start = loadavg();
    println!(
        "peers {} mode; load average {load_start}; prtip scan cli: {}",
        s.mode,
        if cli.scan {
            format!("yes (--xdp: {})", cli.xdp)
        } else {
            "not yet (prtip runs as the harness's child: same engine, backends and log writer)"
                .into()
        }
    );

    let lab_net = Ipv4Net::new(Ipv4Addr::new(198, 19, 0, 0), 16)?;
    let mut lab = BenchLab::up(&prtip, lab_net, &OPEN, s.xdp_mode)?;
    println!(
        "lab {} up: {} ({}) <-> {} ({}), target {}, open {:?}; TSO/GSO off on {}",
        lab.cfg.name,
        lab.cfg.scan_if,
        lab.cfg.scan_ns,
        lab.cfg.tgt_if,
        lab.cfg.tgt_ns,
        lab.cfg.target_net,
        OPEN,
        lab.cfg.scan_if
    );
    let harness = std::env::current_exe()?;
    let mut doc = json!({
        "mode": s.mode,
        "started_unix": started,
        "command": std::env::args().collect::<Vec<_>>(),
        "versions": versions,
        "installed": installed,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_start": load_start,
        "lab": { "name": lab.cfg.name, "target_net": lab.cfg.target_net.to_string(),
                 "open_tcp": OPEN, "queues": lab.cfg.queues, "xdp_mode": s.xdp_mode.to_string() },
        "cli": cli,
    });
    let result = phases(&s, &mut lab, &prtip, &harness, &work, &empty, cli, &mut doc);
    let notes = lab.notes.clone();
    let down = lab.down();
    doc["lab"]["notes"] = json!(notes);
    doc["load_end"] = json!(loadavg());
    doc["elapsed_s"] = json!(t0.elapsed().as_secs_f64());
    if let Err(e) = &result {
        doc["error"] = json!(format!("{e:#}"));
    }
    let file = out_dir.join(format!("peers-{}-{started}.json", s.mode));
    std::fs::write(&file, serde_json::to_string_pretty(&doc)?)?;
    std::fs::copy(&file, out_dir.join(format!("latest-{}.json", s.mode)))?;
    println!(
        "\nsaved {} ({:.0} s, load average now {})",
        file.display(),
        t0.elapsed().as_secs_f64(),
        loadavg()
    );
    down?;
    result
}

#[allow(clippy::too_many_arguments)]
fn phases(
    s: &Settings,
    lab: &mut BenchLab,
    prtip: &Path,
    harness: &Path,
    work: &Path,
    empty: &Path,
    cli: CliCaps,
    doc: &mut Value,
) -> anyhow::Result<()> {
    let truth = Truth::new(Ipv4Addr::new(198, 19, 0, 0), s.prefix, &PORTS, &OPEN);
    lab.attach(TargetKind::Responder)?;
    let mut skip: Vec<(Scanner, String)> = Vec::new();
    fn env_of<'a>(
        lab: &'a BenchLab,
        prtip: &Path,
        harness: &Path,
        work: &Path,
        empty: &Path,
        cli: &CliCaps,
    ) -> Env<'a> {
        Env {
            lab,
            prtip: prtip.to_path_buf(),
            harness: harness.to_path_buf(),
            work: work.to_path_buf(),
            empty: empty.to_path_buf(),
            cli: cli.clone(),
        }
    }
    let mut scanners = s.only.clone();

    // (a) sweep
    let mut sweep: Vec<(u64, Vec<Outcome>)> = Vec::new();
    if s.phases.iter().any(|p| p == "sweep") {
        println!(
            "\n(a) rate sweep: {} x {:?} = {} probes, {} open (XDP responder); wait {} s",
            truth.cidr(),
            PORTS,
            truth.probes(),
            truth.open_count(),
            s.wait_s
        );
        let env = env_of(lab, prtip, harness, work, empty, &cli);
        let mut json_sweep = Vec::new();
        for &rate in &s.rates {
            println!("\n rate {rate}/s asked");
            report::header();
            let mut group = Vec::new();
            for &k in &scanners {
                if skip.iter().any(|(x, _)| *x == k) {
                    continue;
                }
                let job = Job {
                    truth: &truth,
                    rate,
                    wait_s: s.wait_s,
                    send_only: false,
                    sink: "cli",
                    tag: format!("sweep-{rate}"),
                    zmap_port: None,
                };
                match scanners::run(k, &env, &job) {
                    Ok(o) => {
                        report::row(&o);
                        group.push(o);
                    }
                    Err(e) if !proc::stopping() => {
                        println!("  {:<13} skipped: {e:#}", k.name());
                        skip.push((k, format!("{e:#}")));
                    }
                    Err(e) => return Err(e),
                }
            }
            let ratios = report::ratios(&group);
            json_sweep.push(json!({"rate": rate, "outcomes": group, "ratios": ratios}));
            sweep.push((rate, group));
        }
        doc["sweep"] = json!({"targets": truth.cidr(), "ports": PORTS, "open": truth.open_count(),
                             "probes": truth.probes(), "wait_s": s.wait_s, "rates": json_sweep});
        scanners.retain(|k| !skip.iter().any(|(x, _)| x == k));
    }

    // (b) bisect
    if s.phases.iter().any(|p| p == "bisect") {
        println!(
            "\n(b) highest rate with 100% recall (bisection, at most {} more scans each)",
            s.bisect_steps
        );
        let env = env_of(lab, prtip, harness, work, empty, &cli);
        let mut json_b = Vec::new();
        let mut figs_asked = Vec::new();
        let mut figs_at = Vec::new();
        let mut figs_near = Vec::new();
        for &k in &scanners {
            let mut tried: Vec<Outcome> = sweep
                .iter()
                .flat_map(|(_, g)| g.iter().filter(|o| o.scanner == k.name()).cloned())
                .collect();
            let mut steps = Vec::new();
            for _ in 0..s.bisect_steps {
                let Some(rate) = next_rate(&tried) else { break };
                let job = Job {
                    truth: &truth,
                    rate,
                    wait_s: s.wait_s,
                    send_only: false,
                    sink: "cli",
                    tag: format!("bisect-{rate}"),
                    zmap_port: None,
                };
                let o = match scanners::run(k, &env, &job) {
                    Ok(o) => o,
                    Err(e) if !proc::stopping() => {
                        println!("  {:<13} bisect step at {rate} failed: {e:#}", k.name());
                        break;
                    }
                    Err(e) => return Err(e),
                };
                println!(
                    "  {:<13} {:>8}/s asked: recall {:.3}%  {:.0} probes/s at the target",
                    k.name(),
                    rate,
                    o.recall.as_ref().map(|r| r.recall * 100.0).unwrap_or(0.0),
                    o.rate_at_target
                );
                steps.push(o.clone());
                tried.push(o);
            }
            let best = tried
                .iter()
                .filter(|o| o.perfect() && o.rate > 0)
                .max_by_key(|o| o.rate);
            let best_at = tried
                .iter()
                .filter(|o| o.perfect())
                .map(|o| o.rate_at_target)
                .fold(0.0, f64::max);
            // zmap loses a handful of replies per /16 at any rate (its sends all
            // reach the target): the near-100% figure shows where it stands.
            let near_at = tried
                .iter()
                .filter(|o| {
                    o.recall
                        .as_ref()
                        .is_some_and(|r| r.recall >= 0.9999 && r.false_pos == 0)
                })
                .map(|o| o.rate_at_target)
                .fold(0.0, f64::max);
            println!(
                "  {:<13}    highest rate with >= 99.99% recall: {near_at:.0} probes/s at the target",
                k.name()
            );
            figs_near.push((k.name().to_string(), near_at));
            match best {
                Some(b) => println!(
                    "  {:<13} => 100% up to {}/s asked ({:.0} probes/s at the target); best 100% run: {:.0} probes/s at the target",
                    k.name(), b.rate, b.rate_at_target, best_at
                ),
                None => println!("  {:<13} => never 100% at the rates tried", k.name()),
            }
            figs_asked.push((
                k.name().to_string(),
                best.map(|b| b.rate as f64).unwrap_or(0.0),
            ));
            figs_at.push((k.name().to_string(), best_at));
            json_b.push(json!({
                "scanner": k.name(),
                "steps": steps,
                "tried": tried.iter().map(|o| json!({"rate": o.rate, "recall": o.recall, "rate_at_target": o.rate_at_target, "perfect": o.perfect()})).collect::<Vec<_>>(),
                "best_rate_asked": best.map(|b| b.rate),
                "best_rate_at_target": best_at,
                "best_rate_at_target_9999": near_at,
            }));
        }
        let mut r = report::figure_ratios("highest 100% rate (asked)", &figs_asked);
        r.extend(report::figure_ratios(
            "highest 100% rate (at target)",
            &figs_at,
        ));
        r.extend(report::figure_ratios(
            "highest >=99.99% rate (at target)",
            &figs_near,
        ));
        doc["bisect"] = json!({"scanners": json_b, "ratios": r});
    }

    // (c) send-only into the sink
    if s.phases.iter().any(|p| p == "send") {
        lab.attach(TargetKind::Sink)?;
        // Off like the other phases unless asked (--send-offloads on): measured
        // here, on or off made no difference to any sender.
        lab.offloads(s.send_offloads)?;
        let ports: Vec<u16> = (1..=s.send_ports).collect();
        let send = Truth::new(Ipv4Addr::new(198, 19, 0, 0), s.prefix, &ports, &[]);
        let nmap_send = Truth::new(Ipv4Addr::new(198, 19, 0, 0), s.prefix, &ports[..4], &[]);
        println!(
            "\n(c) send-only into the XDP sink (XDP_DROP, frames counted by the program): {} x {} ports = {} probes as fast as each goes (nmap: 4 ports; zmap: 1 port x -P {})",
            send.cidr(), ports.len(), send.probes(), ports.len()
        );
        let env = env_of(lab, prtip, harness, work, empty, &cli);
        report::header();
        let mut group = Vec::new();
        for &k in &scanners {
            let t = if k == Scanner::Nmap {
                &nmap_send
            } else {
                &send
            };
            let job = Job {
                truth: t,
                rate: 0,
                wait_s: 1,
                send_only: true,
                sink: "cli",
                tag: "send".into(),
                zmap_port: None,
            };
            match scanners::run(k, &env, &job) {
                Ok(o) => {
                    report::row(&o);
                    group.push(o);
                }
                Err(e) if !proc::stopping() => println!("  {:<13} skipped: {e:#}", k.name()),
                Err(e) => return Err(e),
            }
        }
        let ratios = report::ratios(&group);
        doc["send_only"] = json!({"targets": send.cidr(), "ports": ports.len(), "outcomes": group, "ratios": ratios});
    }

    // (d) memory
    if s.memory {
        lab.attach(TargetKind::Responder)?;
        lab.offloads(false)?;
        let mem_truth = Truth::new(Ipv4Addr::new(198, 19, 0, 0), s.prefix, &PORTS, &OPEN);
        println!(
            "\n(d) memory: {} x {:?} = {} open results, {} probes/s asked; peak RSS from wait4 (ru_maxrss)",
            mem_truth.cidr(),
            PORTS,
            mem_truth.open_count(),
            s.memory_rate
        );
        let env = env_of(lab, prtip, harness, work, empty, &cli);
        report::header();
        let mut rows = Vec::new();
        let mut figs = Vec::new();
        let mut variants: Vec<(Scanner, &str)> = vec![
            (Scanner::PrtipPacket, "cli"),
            (Scanner::PrtipPacket, "log"),
            (Scanner::PrtipPacket, "log-noprefault"),
            (Scanner::PrtipPacket, "vec"),
            (Scanner::PrtipPacket, "map"),
        ];
        for &k in &scanners {
            if !k.is_prtip() {
                variants.push((k, "-"));
            }
        }
        for (k, sink) in variants {
            if !scanners.contains(&k) {
                continue;
            }
            let job = Job {
                truth: &mem_truth,
                rate: s.memory_rate,
                wait_s: s.wait_s,
                send_only: false,
                sink,
                tag: format!("mem-{sink}"),
                zmap_port: None,
            };
            match scanners::run(k, &env, &job) {
                Ok(mut o) => {
                    if k.is_prtip() {
                        o.scanner = if o.via == "prtip scan" {
                            format!("{}:prtip-scan", k.name())
                        } else {
                            format!("{}:{sink}", k.name())
                        };
                        if sink.starts_with("log") || sink == "cli" {
                            let ext = if o.via == "prtip scan" { "home" } else { "log" };
                            let dir = work.join(format!("{}-mem-{sink}.{ext}", k.name()));
                            o.notes.push(format!(
                                "log {:.1} MB on disk",
                                scanners::dir_bytes(&dir) as f64 / 1e6
                            ));
                        }
                    }
                    if let Some(c) = &o.child {
                        o.notes.push(format!(
                            "end: anon {} kB file {} kB",
                            c["rss_anon_kb"], c["rss_file_kb"]
                        ));
                    }
                    report::row(&o);
                    figs.push((o.scanner.clone(), o.usage.max_rss_bytes as f64));
                    rows.push(o);
                }
                Err(e) if !proc::stopping() => println!("  {:<13} skipped: {e:#}", k.name()),
                Err(e) => return Err(e),
            }
        }
        let ratios = report::figure_ratios("peak RSS", &figs);
        doc["memory"] = json!({"targets": mem_truth.cidr(), "open": mem_truth.open_count(),
                              "rate": s.memory_rate, "outcomes": rows, "ratios": ratios});
    }
    // (e) IPv6 sweep
    if s.phases.iter().any(|p| p == "ipv6") {
        lab.attach(TargetKind::Responder)?;
        let rate = s.rates.first().copied().unwrap_or(50_000);
        println!(
            "\n(e) IPv6 sweep: {} x {:?} = {} probes, {} open (the target's kernel answers); {rate} probes/s, one pass, wait {} s",
            ipv6::NET6,
            PORTS,
            4096 * PORTS.len(),
            4096 * OPEN.len(),
            s.wait_s
        );
        let plan = ipv6::Plan {
            ports: &PORTS,
            open: &OPEN,
            rate,
            wait_s: s.wait_s,
        };
        let rows = ipv6::sweep(lab, prtip, work, &scanners, plan)?;
        doc["ipv6"] =
            json!({"targets": ipv6::NET6, "ports": PORTS, "rate": rate, "outcomes": rows});
    }
    // (f) wide scans: all silent, and 1% of the addresses answering
    if s.phases.iter().any(|p| p == "wide") {
        let paths = [prtip, harness, work, empty].map(Path::to_path_buf);
        wide(s, lab, paths, &cli, &scanners, doc)?;
    }
    doc["skipped"] = json!(skip
        .iter()
        .map(|(k, e)| json!({"scanner": k.name(), "why": e}))
        .collect::<Vec<_>>());
    Ok(())
}

/// The next rate to try for the highest rate with 100% recall: bisect
/// (geometric midpoint) between the highest perfect rate and the lowest
/// imperfect rate above it; double past the top when every rate was perfect,
/// halve below the bottom when none was. None when the bracket is within 10%.
fn next_rate(tried: &[Outcome]) -> Option<u64> {
    let top = tried
        .iter()
        .filter(|o| o.perfect() && o.rate > 0)
        .max_by_key(|o| o.rate);
    let good = top.map(|o| o.rate);
    // Asking more of a scanner that already sends at less than half the rate
    // asked (CPU-bound, or nmap's own pacing) measures nothing new.
    let saturated = top.is_some_and(|o| o.rate_at_target < 0.5 * o.rate as f64);
    let bad = tried
        .iter()
        .filter(|o| !o.perfect() && o.rate > 0 && good.is_none_or(|g| o.rate > g))
        .map(|o| o.rate)
        .min();
    match (good, bad) {
        (Some(g), Some(b)) => {
            let mid = ((g as f64) * (b as f64)).sqrt() as u64;
            (b as f64 / g as f64 > 1.1).then_some(mid / 1000 * 1000)
        }
        (Some(g), None) => (g < 3_200_000 && !saturated).then_some(g * 2),
        (None, Some(b)) => (b > 2_000).then_some(b / 2),
        (None, None) => Some(50_000),
    }
}

/// Phase (f), wide scans (issue 17): the scanned network × ports 1..=N (a /16 ×
/// 256 = 16.7 M probes) once into the XDP sink (nothing answers: every probe is
/// silence) and once against the responder in sparse mode (one address in
/// `wide_every` answers: SYN-ACK on the lab's open ports, RST on the others).
/// Per scanner: wall, time after the last probe reached the target, output
/// size, peak RSS (ru_maxrss, and anonymous/file-backed sampled apart), recall.
/// nmap is left out (16.7 M probes would take it hours). zmap runs once on port
/// 80 with `-P N`: as many frames as the others, its only open port the lab's 80.
fn wide(
    s: &Settings,
    lab: &mut BenchLab,
    [prtip, harness, work, empty]: [PathBuf; 4],
    cli: &CliCaps,
    scanners: &[Scanner],
    doc: &mut Value,
) -> anyhow::Result<()> {
    // Ports 1..=N, the last one the lab's open 80 when N < 80 (zmap's port).
    let mut ports: Vec<u16> = (1..=s.wide_ports).collect();
    if let Some(last) = ports.last_mut().filter(|p| **p < OPEN[0]) {
        *last = OPEN[0];
    }
    let net = Ipv4Addr::new(198, 19, 0, 0);
    let mut out = Vec::new();
    for (name, kind) in [
        ("silent", TargetKind::Sink),
        ("sparse", TargetKind::Sparse(s.wide_every)),
    ] {
        let truth = match kind {
            TargetKind::Sparse(n) => Truth::new(net, s.prefix, &ports, &OPEN).sparse(n),
            _ => Truth::new(net, s.prefix, &ports, &[]),
        };
        println!(
            "\n(f) wide, {name}: {} x ports 1-{} = {} probes, {} addresses answer, {} open; {} probes/s asked, wait {} s",
            truth.cidr(),
            s.wide_ports,
            truth.probes(),
            if kind == TargetKind::Sink { 0 } else { truth.live_hosts() },
            truth.open_count(),
            s.wide_rate,
            s.wait_s
        );
        lab.attach(kind)?;
        lab.offloads(false)?;
        let env = Env {
            lab: &*lab,
            prtip: prtip.clone(),
            harness: harness.clone(),
            work: work.clone(),
            empty: empty.clone(),
            cli: cli.clone(),
        };
        report::wide_header();
        let mut group = Vec::new();
        for &k in scanners.iter().filter(|&&k| k != Scanner::Nmap) {
            let job = Job {
                truth: &truth,
                rate: s.wide_rate,
                wait_s: s.wait_s,
                send_only: false,
                sink: "cli",
                tag: format!("wide-{name}"),
                zmap_port: Some(OPEN[0]),
            };
            match scanners::run(k, &env, &job) {
                Ok(o) => {
                    report::wide_row(&o);
                    group.push(o);
                }
                Err(e) if !proc::stopping() => println!("  {:<13} skipped: {e:#}", k.name()),
                Err(e) => return Err(e),
            }
        }
        let ratios = report::wide_ratios(&group);
        out.push(json!({"case": name, "targets": truth.cidr(), "ports": ports.len(),
            "probes": truth.probes(), "live_every": if kind == TargetKind::Sink { 0 } else { s.wide_every },
            "open": truth.open_count(), "rate": s.wide_rate, "wait_s": s.wait_s,
            "outcomes": group, "ratios": ratios}));
    }
    doc["wide"] = json!(out);
    Ok(())
}
