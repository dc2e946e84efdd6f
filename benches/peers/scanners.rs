//! The scanners and their command lines — the fairest ones we know, each
//! choice explained where it is made — and one measured run of a scanner
//! against the lab: wall/CPU/RSS of the process(es), what reached the target
//! (polled from the XDP program's counters every few ms: the send window and
//! the probe rate measured at the target, independent of what the scanner
//! claims), and recall from its output. Every process runs inside the lab's
//! scanner namespace (`ip netns exec`); nothing is sent anywhere else.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::lab::{BenchLab, Counters};
use crate::proc::{self, Usage, Watch};
use crate::truth::{Recall, Truth};
use crate::{child::ChildArgs, parse};

/// One scanner (or prtip backend) the harness compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Scanner {
    /// prtip's SYN engine over AF_PACKET (sendmmsg + TPACKET_V3).
    PrtipPacket,
    /// prtip's SYN engine over AF_XDP (copy mode on veth).
    PrtipXdp,
    /// masscan 1.3.2 (Debian).
    Masscan,
    /// zmap 2.1 (Debian).
    Zmap,
    /// nmap 7.93 (Debian).
    Nmap,
}

impl Scanner {
    /// Every scanner, prtip first.
    pub const ALL: [Scanner; 5] = [
        Scanner::PrtipPacket,
        Scanner::PrtipXdp,
        Scanner::Masscan,
        Scanner::Zmap,
        Scanner::Nmap,
    ];

    /// Short name (report, JSON, `--only`).
    pub fn name(self) -> &'static str {
        match self {
            Scanner::PrtipPacket => "prtip-packet",
            Scanner::PrtipXdp => "prtip-xdp",
            Scanner::Masscan => "masscan",
            Scanner::Zmap => "zmap",
            Scanner::Nmap => "nmap",
        }
    }

    /// One of prtip's backends.
    pub fn is_prtip(self) -> bool {
        matches!(self, Scanner::PrtipPacket | Scanner::PrtipXdp)
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<Scanner> {
        Scanner::ALL.into_iter().find(|k| k.name() == s)
    }

    /// A rate it reaches even on a loaded machine, for deadlines only.
    fn floor_rate(self) -> u64 {
        match self {
            Scanner::Nmap => 5_000,
            _ => 20_000,
        }
    }
}

/// What `prtip scan` offers at the moment (the cli is being wired while the
/// harness is written: until it has `--rate`, prtip runs as the harness's
/// child with the same engine and log writer).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CliCaps {
    /// `prtip scan` runs SYN scans (`-sS`, `--rate`).
    pub scan: bool,
    /// `prtip scan --xdp IFACE`.
    pub xdp: bool,
    /// `prtip scan --fixed-rate` (the rate governor can be switched off).
    pub fixed_rate: bool,
}

impl CliCaps {
    /// Ask `prtip scan --help`.
    pub fn detect(prtip: &Path) -> CliCaps {
        let help = Command::new(prtip)
            .args(["scan", "--help"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        CliCaps {
            scan: help.contains("--rate") && help.contains("--max-retries"),
            xdp: help.contains("--xdp"),
            fixed_rate: help.contains("--fixed-rate"),
        }
    }
}

/// Everything a run needs besides the job.
pub struct Env<'a> {
    /// The lab.
    pub lab: &'a BenchLab,
    /// The `prtip` binary.
    pub prtip: PathBuf,
    /// This harness binary (child mode).
    pub harness: PathBuf,
    /// Scratch directory for outputs.
    pub work: PathBuf,
    /// An empty file (zmap's blacklist).
    pub empty: PathBuf,
    /// What the cli offers.
    pub cli: CliCaps,
}

/// One scan to run.
#[derive(Clone, Debug)]
pub struct Job<'a> {
    /// Scanned space and ground truth.
    pub truth: &'a Truth,
    /// Probes/s asked for (0: as fast as it goes).
    pub rate: u64,
    /// Late-reply wait after the last probe, seconds.
    pub wait_s: u64,
    /// Into the sink: nothing answers, only the send rate counts.
    pub send_only: bool,
    /// How prtip runs: `cli` (`prtip scan`, or the child with the log when the cli
    /// cannot yet), or the child with sink `log`, `log-noprefault`, `vec`, `map`.
    pub sink: &'a str,
    /// Free-form tag for file names.
    pub tag: String,
    /// zmap in one run on this port with `-P` (probes per address) = the number
    /// of ports, so it sends as many frames as the others (the wide phase: one
    /// zmap run per port of 256 would be 256 start-ups and cool-downs).
    pub zmap_port: Option<u16>,
}

/// What one scanner did on one job.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Outcome {
    /// Scanner name.
    pub scanner: String,
    /// Rate asked for (0: unlimited).
    pub rate: u64,
    /// Processes it took (zmap: one per port).
    pub runs: usize,
    /// Summed over runs (max for RSS).
    pub usage: Usage,
    /// Probes that reached the target (XDP counters).
    pub delivered: u64,
    /// First to last probe at the target, seconds (summed over runs).
    pub send_window_s: f64,
    /// delivered / send_window.
    pub rate_at_target: f64,
    /// Probes/s between 1% and 99% of the expected probes at the target
    /// (steady state: no start-up, no tail; mean over runs).
    pub steady_rate: f64,
    /// CPU (user + sys) per probe delivered, ns.
    pub cpu_ns_per_probe: f64,
    /// Send-only: (ms since its first probe, probes delivered) every ~20 ms, per process.
    pub timeline: Vec<Vec<(u64, u64)>>,
    /// Recall (None when send-only).
    pub recall: Option<Recall>,
    /// Output lines the parser could not read.
    pub unparsed: u64,
    /// Counters of the lab during the run(s).
    pub lab: Counters,
    /// Exact command line(s).
    pub commands: Vec<String>,
    /// What ran (`prtip scan`, the harness child, or the peer).
    pub via: String,
    /// What the prtip child printed (JSON), if any.
    pub child: Option<serde_json::Value>,
    /// Things to know about this run.
    pub notes: Vec<String>,
    /// From the last probe at the target to the process's exit, seconds (summed
    /// over runs): the wait for late replies and the end of the scan.
    pub after_last_probe_s: f64,
    /// Bytes of what the scan left on disk: prtip's log directory, the peers'
    /// output files.
    pub output_bytes: u64,
}

impl Outcome {
    /// 100% of the ground truth, no false positive, clean exit.
    pub fn perfect(&self) -> bool {
        self.recall.as_ref().is_some_and(|r| r.perfect())
    }
}

fn ns_cmd(lab: &BenchLab, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab.cfg.scan_ns, program]);
    c
}

fn ports_arg(p: &[u16]) -> String {
    p.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One process of a scanner's run.
struct Invocation {
    cmd: Command,
    out: PathBuf,
    probes: u64,
    wake: bool,
    via: &'static str,
}

fn invocations(k: Scanner, env: &Env<'_>, job: &Job<'_>) -> anyhow::Result<Vec<Invocation>> {
    let lab = env.lab;
    let c = &lab.cfg;
    let t = job.truth;
    let cidr = t.cidr();
    let tag = format!("{}-{}", k.name(), job.tag);
    let out = env.work.join(format!("{tag}.out"));
    let _ = std::fs::remove_file(&out);
    let mut v = Vec::new();
    match k {
        Scanner::Masscan => {
            let mut cmd = ns_cmd(lab, "masscan");
            cmd.arg(&cidr)
                .arg(format!("-p{}", ports_arg(&t.ports)))
                // No default route in the lab: masscan cannot find a router by itself.
                .args([
                    "--adapter",
                    &c.scan_if,
                    "--router-mac",
                    &c.tgt_mac.to_string(),
                ])
                // masscan's top speed is its own limit: 100M means "unlimited".
                .args(["--rate", &rate_or(job.rate, 100_000_000).to_string()])
                .args(["--wait", &job.wait_s.to_string()])
                .args(["--retries", "0"])
                .arg("-oL")
                .arg(&out);
            v.push(Invocation {
                cmd,
                out,
                probes: t.probes(),
                wake: true,
                via: "masscan",
            });
        }
        Scanner::Zmap => {
            // zmap 2.1 scans one port per run: one run per port, back to back.
            // In send-only mode one port with -P (probes per address) gives the
            // same number of frames as the others send.
            let (ports, per_ip): (Vec<u16>, usize) = match job.zmap_port {
                Some(p) => (vec![p], t.ports.len()),
                None if job.send_only => (vec![t.ports[0]], t.ports.len()),
                None => (t.ports.clone(), 1),
            };
            for p in ports {
                let out = env.work.join(format!("{tag}-{p}.out"));
                let _ = std::fs::remove_file(&out);
                let mut cmd = ns_cmd(lab, "zmap");
                cmd.args(["-p", &p.to_string()])
                    .args(["-i", &c.scan_if])
                    .args(["--gateway-mac", &c.tgt_mac.to_string()])
                    .args(["-S", &c.scan_ip.to_string()])
                    // The default blacklist holds 198.18.0.0/15: an empty one, and
                    // the target subnet given explicitly.
                    .arg("-b")
                    .arg(&env.empty)
                    .args(["-r", &rate_or(job.rate, 100_000_000).to_string()])
                    .args(["-c", &job.wait_s.to_string()])
                    // Two sender threads: zmap's fastest setting on 2 cores.
                    .args(["-T", "2"])
                    .args(["-P", &per_ip.to_string()])
                    // zmap 2.1.1 aborts at its first failed sendto (ENOBUFS on a
                    // loaded machine, "maximum number of sendto failures (1)
                    // exceeded") despite its documented default of -1.
                    .args(["--max-sendto-failures", "1000000"])
                    // SYN-ACKs only, each host once (with -O csv the filter must be given).
                    .args(["-O", "csv", "-f", "saddr,sport"])
                    .args(["--output-filter", "success = 1 && repeat = 0"])
                    .args(["-q", "--disable-syslog"])
                    .arg("-o")
                    .arg(&out)
                    .arg(&cidr);
                v.push(Invocation {
                    cmd,
                    out,
                    probes: t.hosts as u64 * per_ip as u64,
                    wake: false,
                    via: "zmap",
                });
            }
        }
        Scanner::Nmap => {
            let mut cmd = ns_cmd(lab, "nmap");
            cmd.args(["-sS", "-n", "-Pn", "-T5"])
                .arg(format!("-p{}", ports_arg(&t.ports)))
                .args(["-e", &c.scan_if]);
            if job.rate > 0 {
                cmd.args(["--min-rate", &job.rate.to_string()])
                    .args(["--max-rate", &job.rate.to_string()]);
            } else {
                cmd.args(["--min-rate", "10000000"]);
            }
            // Big host groups: nmap's rate is otherwise capped by per-group waits.
            cmd.args(["--min-hostgroup", "16384"]);
            if job.send_only {
                cmd.args(["--max-retries", "0"]);
            }
            cmd.arg("-oG").arg(&out).arg(&cidr);
            v.push(Invocation {
                cmd,
                out,
                probes: t.probes(),
                wake: false,
                via: "nmap",
            });
        }
        Scanner::PrtipPacket | Scanner::PrtipXdp => {
            let backend = if k == Scanner::PrtipXdp {
                "xdp"
            } else {
                "packet"
            };
            let log = env.work.join(format!("{tag}.log"));
            let _ = std::fs::remove_dir_all(&log);
            let use_cli =
                job.sink == "cli" && env.cli.scan && (k == Scanner::PrtipPacket || env.cli.xdp);
            let cmd = if use_cli {
                let home = env.work.join(format!("{tag}.home"));
                let _ = std::fs::remove_dir_all(&home);
                let mut cmd = ns_cmd(lab, &env.prtip.display().to_string());
                cmd.arg("--home").arg(&home).args(["scan", "-sS", &cidr]);
                cmd.args(["-p", &ports_arg(&t.ports)])
                    // 0 = as fast as it goes: a ceiling no path reaches (`--rate 0`
                    // is refused as bad input since the cli checks rates).
                    .args(["--rate", &rate_or(job.rate, 100_000_000).to_string()])
                    // One pass, like masscan and zmap: recall says how lossless the path is.
                    .args(["--max-retries", "0"])
                    .args(["--wait", &job.wait_s.to_string()])
                    // Open ports are not printed one by one (the peers write theirs
                    // to a file; prtip's results are in its log).
                    .arg("--quiet");
                if k == Scanner::PrtipXdp {
                    cmd.args(["--xdp", &c.scan_if]);
                }
                if job.send_only && env.cli.fixed_rate {
                    // Nothing answers in the sink: the send rate, not the governor's.
                    cmd.arg("--fixed-rate");
                }
                cmd
            } else {
                let a = ChildArgs {
                    backend: backend.into(),
                    sink: if job.sink == "cli" { "log" } else { job.sink }.into(),
                    net: std::net::Ipv4Addr::from(t.base),
                    prefix: (32 - t.hosts.trailing_zeros()) as u8,
                    ports: t.ports.clone(),
                    open: t.open.clone(),
                    rate: job.rate,
                    wait_ms: job.wait_s * 1000,
                    // One pass, like masscan and zmap: recall says how lossless the path is.
                    retries: 0,
                    log_dir: Some(log.clone()),
                    queues: None,
                };
                let mut cmd = ns_cmd(lab, &env.harness.display().to_string());
                cmd.arg("--child").args(a.to_args());
                cmd
            };
            v.push(Invocation {
                cmd,
                out: if use_cli {
                    env.work.join(format!("{tag}.home"))
                } else {
                    log
                },
                probes: t.probes(),
                wake: false,
                via: if use_cli {
                    "prtip scan"
                } else {
                    "harness child (engine + backend + sink, no cli)"
                },
            });
        }
    }
    Ok(v)
}

fn rate_or(rate: u64, unlimited: u64) -> u64 {
    if rate == 0 {
        unlimited
    } else {
        rate
    }
}

/// Poll the target's counters while a process runs: first and last change.
struct Window {
    first: Option<Instant>,
    last: Option<Instant>,
    /// (ms since the first probe, probes delivered so far), every ~20 ms.
    timeline: Vec<(u64, u64)>,
    /// When 1%, 99% and 100% of the expected probes had arrived.
    p1: Option<Instant>,
    p99: Option<Instant>,
    full: Option<Instant>,
}

/// Run scanner `k` on `job` and measure it.
pub fn run(k: Scanner, env: &Env<'_>, job: &Job<'_>) -> anyhow::Result<Outcome> {
    let invs = invocations(k, env, job)?;
    let mut o = Outcome {
        scanner: k.name().into(),
        rate: job.rate,
        runs: invs.len(),
        ..Outcome::default()
    };
    let before_all = env.lab.counters();
    let mut steady = Vec::new();
    let mut tally = job.truth.tally();
    for inv in invs {
        anyhow::ensure!(!proc::stopping(), "stopped by the user");
        o.commands.push(show(&inv.cmd));
        o.via = inv.via.to_string();
        let stdout_path = env.work.join("last.stdout");
        let stderr_path = env.work.join("last.stderr");
        let stdout = File::create(&stdout_path)?;
        let stderr = File::create(&stderr_path)?;
        let eff = match job.rate {
            0 => k.floor_rate(),
            r => r.min(k.floor_rate()),
        };
        let expect_s = inv.probes as f64 / eff as f64 + job.wait_s as f64;
        let deadline = Duration::from_secs_f64(expect_s * 3.0 + 30.0);
        let base = env.lab.program_counters().delivered();
        let stop = AtomicBool::new(false);
        let win = Mutex::new(Window {
            first: None,
            last: None,
            timeline: Vec::new(),
            p1: None,
            p99: None,
            full: None,
        });
        let expected = inv.probes;
        let usage = std::thread::scope(|s| {
            s.spawn(|| {
                let mut prev = base;
                while !stop.load(Ordering::Relaxed) {
                    let d = env.lab.program_counters().delivered();
                    if d != prev {
                        let now = Instant::now();
                        let mut w = win.lock().unwrap();
                        let first = *w.first.get_or_insert(now);
                        w.last = Some(now);
                        let ms = (now - first).as_millis() as u64;
                        if w.timeline.last().is_none_or(|&(t, _)| ms >= t + 20) {
                            w.timeline.push((ms, d - base));
                        }
                        let n = d - base;
                        if n * 100 >= expected && w.p1.is_none() {
                            w.p1 = Some(now);
                        }
                        if n * 100 >= expected * 99 && w.p99.is_none() {
                            w.p99 = Some(now);
                        }
                        if n >= expected && w.full.is_none() {
                            w.full = Some(now);
                        }
                        prev = d;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            let mut wake = |_: Duration| env.lab.wake_scanner();
            let watch = Watch {
                deadline,
                // masscan 1.3.2 waits for one more packet after --wait before it
                // exits: a datagram to its address every 100 ms wakes it on time.
                on_tick: if inv.wake { Some(&mut wake) } else { None },
                tick: Duration::from_millis(100),
            };
            let r = proc::run(&env.harness, inv.cmd, stdout.into(), stderr.into(), watch);
            let ended = Instant::now();
            stop.store(true, Ordering::Relaxed);
            r.map(|u| (u, ended))
        })
        .with_context(|| format!("running {}", k.name()))?;
        let (usage, ended) = usage;
        let w = win.into_inner().unwrap();
        if let Some(last) = w.full.or(w.last) {
            o.after_last_probe_s += ended.saturating_duration_since(last).as_secs_f64();
        }
        o.output_bytes += if inv.out.join("scans").is_dir() {
            dir_bytes(&inv.out.join("scans"))
        } else {
            dir_bytes(&inv.out)
        };
        // The window ends with the last expected probe: frames the scanner's
        // kernel sends on its own afterwards (IPv6 neighbour discovery, ...) do
        // not stretch it.
        if let (Some(a), Some(b)) = (w.first, w.full.or(w.last)) {
            o.send_window_s += (b - a).as_secs_f64();
        }
        if let (Some(a), Some(b)) = (w.p1, w.p99) {
            let secs = (b - a).as_secs_f64();
            if secs > 0.0 {
                steady.push(0.98 * expected as f64 / secs);
            }
        }
        if job.send_only {
            o.timeline.push(w.timeline);
        }
        let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if usage.exit != 0 || !usage.signals.is_empty() {
            let tail: Vec<&str> = err.lines().rev().take(4).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            o.notes.push(format!(
                "exit {} after signals {:?}: {}",
                usage.exit,
                usage.signals,
                tail.join(" | ")
            ));
        }
        if k.is_prtip() {
            if let Some(line) = out.lines().rev().find(|l| l.starts_with('{')) {
                o.child = serde_json::from_str(line).ok();
            }
        }
        let agg = &mut o.usage;
        agg.wall_s += usage.wall_s;
        agg.user_s += usage.user_s;
        agg.sys_s += usage.sys_s;
        agg.max_rss_bytes = agg.max_rss_bytes.max(usage.max_rss_bytes);
        agg.peak_anon_bytes = agg.peak_anon_bytes.max(usage.peak_anon_bytes);
        agg.peak_file_bytes = agg.peak_file_bytes.max(usage.peak_file_bytes);
        agg.peak_shmem_bytes = agg.peak_shmem_bytes.max(usage.peak_shmem_bytes);
        agg.rss_from_launcher =
            usage.rss_from_launcher && (o.commands.len() == 1 || agg.rss_from_launcher);
        if usage.exit != 0 {
            agg.exit = usage.exit;
        }
        agg.signals.extend(usage.signals.iter().cloned());
        if usage.exit != 0 && k.is_prtip() {
            anyhow::bail!(
                "{} failed (exit {}): {}",
                k.name(),
                usage.exit,
                err.lines().last().unwrap_or("")
            );
        }
        if !job.send_only {
            let mut add = |a, p| tally.open(a, p);
            o.unparsed += read_results(k, &env.prtip, &inv.out, o.child.as_ref(), &mut add)?;
        }
    }
    o.lab = env.lab.counters().since(&before_all);
    o.delivered = o.lab.delivered();
    if o.send_window_s > 0.0 {
        o.rate_at_target = o.delivered as f64 / o.send_window_s;
    }
    if !steady.is_empty() {
        o.steady_rate = steady.iter().sum::<f64>() / steady.len() as f64;
    }
    if o.delivered > 0 {
        o.cpu_ns_per_probe = o.usage.cpu_s() * 1e9 / o.delivered as f64;
    }
    if !job.send_only {
        let r = tally.finish();
        // An in-memory prtip child tallies itself (the parent cannot read its memory).
        let own = o
            .child
            .as_ref()
            .and_then(|c| c.get("tally"))
            .filter(|t| !t.is_null())
            .and_then(|t| serde_json::from_value::<Recall>(t.clone()).ok());
        o.recall = Some(own.unwrap_or(r));
    }
    Ok(o)
}

/// Feed the open results of one invocation's output to `open`; returns the
/// number of unreadable lines.
fn read_results(
    k: Scanner,
    prtip: &Path,
    out: &Path,
    child: Option<&serde_json::Value>,
    open: &mut dyn FnMut(std::net::Ipv4Addr, u16),
) -> anyhow::Result<u64> {
    let text = || std::fs::read_to_string(out).unwrap_or_default();
    Ok(match k {
        Scanner::Masscan => parse::masscan_list(&text(), open),
        Scanner::Zmap => parse::zmap_csv(&text(), open),
        Scanner::Nmap => parse::nmap_grepable(&text(), open),
        Scanner::PrtipPacket | Scanner::PrtipXdp => {
            let in_memory = child
                .and_then(|c| c.get("tally"))
                .is_some_and(|t| !t.is_null());
            if in_memory {
                return Ok(0);
            }
            let dir = if out.join("scans").is_dir() {
                // prtip scan --home H: the one scan directory under H/scans.
                std::fs::read_dir(out.join("scans"))?
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| p.is_dir())
                    .context("prtip wrote no scan directory")?
            } else {
                out.to_path_buf()
            };
            match read_log(&dir, open) {
                Ok(n) => n,
                // A prtip of another event schema (PRTIP_BIN=an older build, for a
                // before/after run): the binary that wrote the log reads it.
                Err(e)
                    if e.chain().any(|c| {
                        matches!(
                            c.downcast_ref::<prtip_store::StoreError>(),
                            Some(prtip_store::StoreError::Version { .. })
                        )
                    }) =>
                {
                    let out = Command::new(prtip)
                        .arg("export")
                        .arg(&dir)
                        .args(["-f", "grep"])
                        .output()
                        .with_context(|| format!("running {} export", prtip.display()))?;
                    anyhow::ensure!(
                        out.status.success(),
                        "{} export {} failed after {e:#}: {}",
                        prtip.display(),
                        dir.display(),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    parse::nmap_grepable(&String::from_utf8_lossy(&out.stdout), open)
                }
                Err(e) => return Err(e),
            }
        }
    })
}

/// Open results of a prtip scan log.
pub fn read_log(dir: &Path, open: &mut dyn FnMut(std::net::Ipv4Addr, u16)) -> anyhow::Result<u64> {
    use prtip_store::event::{Addr, PortState};
    use prtip_store::{EventRef, LogReader};
    let r = LogReader::open(dir).with_context(|| format!("opening the log {}", dir.display()))?;
    for ev in r.iter() {
        if let EventRef::Reply(rep) = ev? {
            if PortState::from(&rep.state) == PortState::Open {
                if let Some(a) = Addr::from(&rep.addr).v4() {
                    open(a, rep.port.to_native());
                }
            }
        }
    }
    Ok(0)
}

/// Size of a directory tree in bytes (log size on disk).
pub fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}
