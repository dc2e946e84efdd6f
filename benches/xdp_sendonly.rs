//! Send-only packets per second into the lab's XDP_DROP sink, per backend:
//! prtip's AF_XDP backend (one and two queues), prtip's AF_PACKET backend (one
//! and two sender threads) and masscan, each on a fresh veth pair with the sink
//! (bpf/sink.bpf.c) on the target side. Reports frames/s counted by the sink,
//! CPU time per frame (user+sys of the sending process, from getrusage) and
//! machine CPU per frame (all cores, /proc/stat), side by side.
//!
//! Run (root): `cargo bench --bench xdp_sendonly -- [--probes N] [--only NAME,...] [--sink-mode native|skb] [--json FILE]`
//! NAME: xdp1 xdp2 packet1 packet2 masscan. See benches/README.md, section "XDP".

#[path = "../tests/xdp_support/mod.rs"]
mod xdp_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use prtip_engine::backend::packet::PacketTx;
use prtip_engine::backend::{FrameParams, Probe, TemplateSet, Transmit};
use prtip_engine::wire::EthernetAddress;
use prtip_store::event::Protocol;
use prtip_xdp::lab::{self, LabTarget};
use prtip_xdp::sink::SinkStats;
use prtip_xdp::{in_netns, XdpMode, XdpOptions};
use xdp_support::{VethPair, SCAN_IP, SCAN_MAC, TGT_MAC};

fn templates() -> TemplateSet {
    TemplateSet::new(&FrameParams {
        src_mac: EthernetAddress(SCAN_MAC),
        dst_mac: EthernetAddress(TGT_MAC),
        src_ip: SCAN_IP,
        ttl: 64,
    })
}

/// Probes to 198.19.0.0/16 x 4 ports, generated on the fly like a scan loop would.
struct ProbeGen {
    i: u32,
}

impl ProbeGen {
    #[inline]
    fn fill(&mut self, buf: &mut [Probe]) {
        const PORTS: [u16; 4] = [80, 8080, 22, 443];
        for p in buf {
            let i = self.i;
            self.i = i.wrapping_add(1);
            let h = i.wrapping_mul(0x9e37_79b9);
            *p = Probe {
                dst: Ipv4Addr::from(0xc613_0000 | ((i >> 2) & 0xffff)).into(),
                dport: PORTS[(i & 3) as usize],
                sport: 40960 + (h >> 18) as u16,
                seq: h,
                proto: Protocol::Tcp,
            };
        }
    }
}

fn cpu_self() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn cpu_children() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Busy jiffies of all CPUs (everything but idle and iowait) and the tick rate.
fn machine_busy() -> Duration {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = s.lines().next().unwrap_or("");
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy: u64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_nanos(busy * 1_000_000_000 / hz.max(1))
}

#[derive(Debug, Clone)]
struct Row {
    name: String,
    sent: u64,
    frames: u64,
    secs: f64,
    cpu_ns_per_frame: f64,
    machine_ns_per_frame: f64,
}

impl Row {
    fn pps(&self) -> f64 {
        self.frames as f64 / self.secs
    }
}

fn wait_sink(lab: &lab::LabPrograms, at_least: u64) -> SinkStats {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = SinkStats::read(&lab.target).unwrap();
    while s.frames < at_least && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        s = SinkStats::read(&lab.target).unwrap();
    }
    s
}

fn run_prtip(name: &str, queues: u32, probes: u64, xdp: bool, sink_mode: XdpMode) -> Row {
    let pair = VethPair::new("bench", 2, "198.19.0.0/16");
    let lab = lab::attach(&pair.sides(), &LabTarget::Sink, sink_mode).unwrap();
    let t = templates();
    // Open the senders inside the scanner namespace; they stay bound to it.
    let mut senders: Vec<Box<dyn Transmit>> = if xdp {
        let mut o = XdpOptions::for_engine(SCAN_IP);
        o.queues = Some(queues);
        let be = in_netns(&pair.scan_ns, || prtip_xdp::backend(&pair.scan_if, &t, &o)).unwrap();
        vec![be.into_pair().tx]
    } else {
        (0..queues)
            .map(|_| {
                let tx = in_netns(&pair.scan_ns, || {
                    PacketTx::open(&pair.scan_if, t.clone())
                        .map_err(|e| prtip_xdp::XdpError::Config(e.to_string()))
                })
                .unwrap();
                Box::new(tx) as Box<dyn Transmit>
            })
            .collect()
    };
    let before = SinkStats::read(&lab.target).unwrap();
    let (c0, m0, t0) = (cpu_self(), machine_busy(), Instant::now());
    let per = probes / senders.len() as u64;
    std::thread::scope(|s| {
        for (k, tx) in senders.iter_mut().enumerate() {
            s.spawn(move || {
                let mut g = ProbeGen {
                    i: k as u32 * 0x4000_0000,
                };
                let mut buf = [Probe {
                    dst: Ipv4Addr::UNSPECIFIED.into(),
                    dport: 0,
                    sport: 0,
                    seq: 0,
                    proto: Protocol::Tcp,
                }; 64];
                let mut left = per;
                while left > 0 {
                    let n = left.min(64) as usize;
                    g.fill(&mut buf[..n]);
                    let mut done = 0;
                    while done < n {
                        done += tx.send(&buf[done..n]).expect("send");
                    }
                    left -= n as u64;
                }
            });
        }
    });
    let sent = per * senders.len() as u64;
    drop(senders); // flushes every queue (sender threads join)
    let elapsed = t0.elapsed();
    let after = wait_sink(&lab, before.frames + sent);
    let (c1, m1) = (cpu_self(), machine_busy());
    let frames = after.frames - before.frames;
    Row {
        name: name.to_string(),
        sent,
        frames,
        secs: elapsed.as_secs_f64(),
        cpu_ns_per_frame: (c1 - c0).as_nanos() as f64 / frames.max(1) as f64,
        machine_ns_per_frame: (m1 - m0).as_nanos() as f64 / frames.max(1) as f64,
    }
}

/// masscan 1.3.2 often does not exit after `--wait` until one more packet
/// arrives: wake it with a UDP datagram from the target side, then SIGINT,
/// SIGTERM, SIGKILL (its output is flushed on SIGINT).
fn stop_masscan(pair: &VethPair, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut woke = false;
    loop {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        if !woke {
            let _ = in_netns(&pair.tgt_ns, || {
                let s = std::net::UdpSocket::bind("0.0.0.0:0")
                    .map_err(|e| prtip_xdp::XdpError::Config(e.to_string()))?;
                let _ = s.send_to(b"wake", (SCAN_IP, 9));
                Ok(())
            });
            woke = true;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGKILL] {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.wait();
}

fn run_masscan(probes: u64, sink_mode: XdpMode) -> Option<Row> {
    if std::process::Command::new("masscan")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("masscan not installed (apt-get install masscan): skipped");
        return None;
    }
    let pair = VethPair::new("mass", 2, "198.19.0.0/16");
    let lab = lab::attach(&pair.sides(), &LabTarget::Sink, sink_mode).unwrap();
    // The whole /16 with as many ports as the probe budget needs (at least 4).
    let nports = (probes / 65536).clamp(4, 1024);
    let ports = format!("1-{nports}");
    let ports = ports.as_str();
    let target = "198.19.0.0/16".to_string();
    let sent = 65536 * nports;
    let before = SinkStats::read(&lab.target).unwrap();
    let (c0, m0, t0) = (cpu_children(), machine_busy(), Instant::now());
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.scan_ns,
            "masscan",
            &target,
            "-p",
            ports,
        ])
        .args([
            "--adapter",
            &pair.scan_if,
            "--adapter-ip",
            &SCAN_IP.to_string(),
        ])
        .args([
            "--router-mac",
            "02:70:78:64:00:02",
            "--rate",
            "100000000",
            "--wait",
            "0",
        ])
        .args(["-oL", "/dev/null"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("running masscan");
    // Done when the sink has every probe, or nothing arrived for a second.
    let mut last = before.frames;
    let mut last_change = Instant::now();
    let mut end = t0;
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let f = SinkStats::read(&lab.target).unwrap().frames;
        if f != last {
            last = f;
            last_change = Instant::now();
            end = last_change;
        }
        if last - before.frames >= sent || last_change.elapsed() > Duration::from_secs(1) {
            break;
        }
        if child.try_wait().ok().flatten().is_some()
            && last_change.elapsed() > Duration::from_millis(200)
        {
            break;
        }
    }
    let (m1, frames) = (machine_busy(), last - before.frames);
    stop_masscan(&pair, &mut child);
    let c1 = cpu_children();
    Some(Row {
        name: "masscan".into(),
        sent,
        frames,
        secs: (end - t0).as_secs_f64(),
        cpu_ns_per_frame: (c1 - c0).as_nanos() as f64 / frames.max(1) as f64,
        machine_ns_per_frame: (m1 - m0).as_nanos() as f64 / frames.max(1) as f64,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("xdp_sendonly needs root (network namespaces, BPF, AF_XDP): skipped");
        return;
    }
    let probes: u64 = get("--probes")
        .and_then(|s| s.parse().ok())
        .unwrap_or(4_000_000);
    let only: Vec<String> = get("--only")
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| {
            ["xdp1", "xdp2", "packet1", "packet2", "masscan"]
                .map(String::from)
                .to_vec()
        });
    let sink_mode: XdpMode = get("--sink-mode")
        .unwrap_or_else(|| "native".into())
        .parse()
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    eprintln!("sink: prtip_sink in {sink_mode} mode on a 2-queue veth; {probes} probes per sender");
    let mut rows = Vec::new();
    for name in &only {
        let row = match name.as_str() {
            "xdp1" => Some(run_prtip(
                "prtip --xdp (1 queue)",
                1,
                probes,
                true,
                sink_mode,
            )),
            "xdp2" => Some(run_prtip(
                "prtip --xdp (2 queues)",
                2,
                probes,
                true,
                sink_mode,
            )),
            "packet1" => Some(run_prtip(
                "prtip AF_PACKET (1 thread)",
                1,
                probes,
                false,
                sink_mode,
            )),
            "packet2" => Some(run_prtip(
                "prtip AF_PACKET (2 threads)",
                2,
                probes,
                false,
                sink_mode,
            )),
            "masscan" => run_masscan(probes, sink_mode),
            other => {
                eprintln!("unknown backend {other:?}: expected xdp1 xdp2 packet1 packet2 masscan");
                std::process::exit(2);
            }
        };
        if let Some(r) = row {
            eprintln!(
                "{:<28} {:>10.0} frames/s  {:>7.0} ns CPU/frame (process)  {:>7.0} ns CPU/frame (machine)  [{} sent, {} at the sink, {:.2} s]",
                r.name,
                r.pps(),
                r.cpu_ns_per_frame,
                r.machine_ns_per_frame,
                r.sent,
                r.frames,
                r.secs
            );
            rows.push(r);
        }
    }
    println!("\n| sender | frames/s into the sink | CPU ns/frame (process) | CPU ns/frame (machine) | lost |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {} |",
            r.name,
            r.pps(),
            r.cpu_ns_per_frame,
            r.machine_ns_per_frame,
            r.sent.saturating_sub(r.frames)
        );
    }
    let find = |n: &str| rows.iter().find(|r| r.name.starts_with(n)).map(Row::pps);
    if let (Some(x), Some(m)) = (find("prtip --xdp (2"), find("masscan")) {
        println!("\nxdp (2 queues) / masscan: {:.2}x", x / m);
    }
    if let (Some(x), Some(p)) = (find("prtip --xdp (2"), find("prtip AF_PACKET (2")) {
        println!("xdp (2 queues) / AF_PACKET (2 threads): {:.2}x", x / p);
    }
    if let (Some(x), Some(p)) = (find("prtip --xdp (1"), find("prtip AF_PACKET (1")) {
        println!("xdp (1 queue) / AF_PACKET (1 thread): {:.2}x", x / p);
    }
    if let Some(path) = get("--json") {
        let json: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"sender\":{:?},\"sent\":{},\"frames\":{},\"secs\":{:.4},\"pps\":{:.0},\"cpu_ns_per_frame\":{:.1},\"machine_ns_per_frame\":{:.1}}}",
                    r.name, r.sent, r.frames, r.secs, r.pps(), r.cpu_ns_per_frame, r.machine_ns_per_frame
                )
            })
            .collect();
        std::fs::write(&path, format!("[{}]\n", json.join(",\n"))).expect("writing the JSON");
    }
}
