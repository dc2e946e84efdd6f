//! The harness's child mode (`peers --child ...`): one real SYN scan with
//! prtip's engine, run by the harness inside the lab's scanner namespace
//! (`ip netns exec`), with the events going to one of three sinks:
//!
//! - `log`: the store's mmap'd segment log (`LogWriter`), as `prtip scan` does;
//! - `vec`: every event kept in a `Vec<Event>` (the engine's in-memory sink);
//! - `map`: a `HashMap<(addr, port), state>` fold — the smallest honest
//!   "results kept in memory" a scanner without a log would hold.
//!
//! It is how the harness measures prtip before `prtip scan` exposes a flag, and
//! how it compares memory across sinks on the very same scan; the parent reads
//! its rusage. It prints one JSON line (counters, tally, /proc/self/status
//! memory lines) on stdout. Owns nothing outside its own process and the log
//! directory it is given.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::Context;
use prtip_engine::backend::TemplateSet;
use prtip_engine::route;
use prtip_engine::scan::{self, RunOptions, ScanControl, ScanOutcome, ScanPlan};
use prtip_store::event::{
    Addr, BackendKind, Checkpoint, Counters, Event, EventSink, OutputSpec, PortState, Protocol,
    ScanSpec, ScanType, SinkError,
};
use prtip_store::{LogOptions, LogWriter};

use crate::truth::Truth;

/// Arguments of `--child`.
#[derive(Clone, Debug)]
pub struct ChildArgs {
    /// `packet` or `xdp`.
    pub backend: String,
    /// `log`, `log-noprefault`, `vec` or `map`.
    pub sink: String,
    /// Target network (CIDR).
    pub net: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Ports scanned.
    pub ports: Vec<u16>,
    /// Ports the lab holds open (for the tally).
    pub open: Vec<u16>,
    /// Probes/s (0: unlimited).
    pub rate: u64,
    /// Late-reply wait, ms.
    pub wait_ms: u64,
    /// Retransmissions.
    pub retries: u32,
    /// Log directory (sink `log`).
    pub log_dir: Option<PathBuf>,
    /// XDP send queues (None: all).
    pub queues: Option<u32>,
}

impl ChildArgs {
    /// Command-line form (after `--child`).
    pub fn to_args(&self) -> Vec<String> {
        let list = |v: &[u16]| {
            v.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut a = vec![
            "--backend".into(),
            self.backend.clone(),
            "--sink".into(),
            self.sink.clone(),
            "--net".into(),
            format!("{}/{}", self.net, self.prefix),
            "--ports".into(),
            list(&self.ports),
            "--open".into(),
            list(&self.open),
            "--rate".into(),
            self.rate.to_string(),
            "--wait-ms".into(),
            self.wait_ms.to_string(),
            "--retries".into(),
            self.retries.to_string(),
        ];
        if let Some(d) = &self.log_dir {
            a.extend(["--log".into(), d.display().to_string()]);
        }
        if let Some(q) = self.queues {
            a.extend(["--queues".into(), q.to_string()]);
        }
        a
    }

    /// Parse [`to_args`](Self::to_args).
    pub fn parse(args: &[String]) -> anyhow::Result<ChildArgs> {
        let get = |f: &str| -> Option<String> {
            args.iter()
                .position(|a| a == f)
                .and_then(|i| args.get(i + 1).cloned())
        };
        let need = |f: &str| get(f).with_context(|| format!("--child needs {f}"));
        let ports = |s: String| -> anyhow::Result<Vec<u16>> {
            s.split(',')
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().with_context(|| format!("bad port {t:?}")))
                .collect()
        };
        let net = need("--net")?;
        let (a, p) = net.split_once('/').context("--net wants A.B.C.D/N")?;
        Ok(ChildArgs {
            backend: need("--backend")?,
            sink: need("--sink")?,
            net: a.parse()?,
            prefix: p.parse()?,
            ports: ports(need("--ports")?)?,
            open: ports(get("--open").unwrap_or_default())?,
            rate: need("--rate")?.parse()?,
            wait_ms: need("--wait-ms")?.parse()?,
            retries: need("--retries")?.parse()?,
            log_dir: get("--log").map(PathBuf::from),
            queues: get("--queues").map(|q| q.parse()).transpose()?,
        })
    }
}

/// Results folded in memory: the latest state per (address, port).
#[derive(Default)]
struct MapSink {
    rows: HashMap<(Addr, u16), PortState>,
    counters: Option<Counters>,
}

impl EventSink for MapSink {
    fn push(&mut self, event: Event) -> Result<(), SinkError> {
        match event {
            Event::Reply(r) if r.proto == Protocol::Tcp => {
                self.rows.insert((r.addr, r.port), r.state);
            }
            Event::Finished(f) => self.counters = Some(f.counters),
            _ => {}
        }
        Ok(())
    }
    fn checkpoint(&mut self, _: Checkpoint) -> Result<(), SinkError> {
        Ok(())
    }
}

fn spec(a: &ChildArgs) -> ScanSpec {
    ScanSpec {
        targets: vec![format!("{}/{}", a.net, a.prefix)],
        resolved: vec![],
        excludes: vec![],
        ports: a
            .ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
        scan_type: ScanType::Syn,
        service_detection: false,
        rate_mpps: a.rate.saturating_mul(1000),
        max_rate_mpps: 0,
        retry_gap_ms: None,
        timing: 4,
        seed: 0x7072_7469_7062_656e,
        shard_index: 0,
        shard_count: 1,
        backend: if a.backend == "xdp" {
            BackendKind::Xdp
        } else {
            BackendKind::Packet
        },
        interface: None,
        source: None,
        router_mac: None,
        max_retries: a.retries,
        wait_ms: a.wait_ms,
        checkpoint_every_probes: 0,
        checkpoint_every_ms: 1000,
        outputs: Vec::<OutputSpec>::new(),
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

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Run the child scan and print its JSON summary line.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let a = ChildArgs::parse(args)?;
    let mut spec = spec(&a);
    let plan0 = ScanPlan::new(&spec).context("planning the scan")?;
    let first = plan0.targets.get_v4(0);
    drop(plan0);
    let r =
        route::discover(first.into(), None, None, None).context("finding the route in the lab")?;
    spec.interface = Some(r.iface.clone());
    spec.source = Some(Addr::from(r.src_ip));
    spec.router_mac = Some(r.dst_mac.0);
    let plan = ScanPlan::new(&spec).context("planning the scan")?;
    let mut notes = Vec::new();
    let io = match a.backend.as_str() {
        "packet" => scan::open_packet_backend(&r, &|_| None, &[])
            .context("opening the AF_PACKET backend")?,
        "xdp" => {
            let t = TemplateSet::new(&scan::frame_params(&r));
            let mut o = prtip_xdp::XdpOptions::for_engine(r.src_v4());
            o.queues = a.queues;
            let (pair, n) =
                prtip_xdp::open_pair(&r.iface, &t, &o).context("opening the AF_XDP backend")?;
            notes = n;
            pair
        }
        other => anyhow::bail!("unknown backend {other:?} (packet, xdp)"),
    };
    let control = ScanControl::new();
    let truth = Truth::new(a.net, a.prefix, &a.ports, &a.open);
    let mut tally = truth.tally();
    let counters;
    match a.sink.as_str() {
        "log" | "log-noprefault" => {
            let dir = a.log_dir.clone().context("--sink log needs --log DIR")?;
            let mut opts = LogOptions::default();
            if a.sink == "log-noprefault" {
                opts.prefault = false;
            }
            let w = LogWriter::create(&dir, opts).context("creating the scan log")?;
            let mut sink = w.sink();
            let bytes = || w.durable_bytes();
            let out = scan::run(
                &plan,
                io,
                &mut sink,
                &control,
                RunOptions {
                    log_bytes: Some(&bytes),
                    ..RunOptions::default()
                },
            )?;
            drop(sink);
            counters = finished(out)?;
            print_memory_then(|| w.finish().context("finishing the log"))?;
            // The parent reads the log back for the tally.
            println!("{}", summary(&a, &counters, None, &notes));
            return Ok(());
        }
        "vec" => {
            let mut events: Vec<Event> = Vec::new();
            let out = scan::run(&plan, io, &mut events, &control, RunOptions::default())?;
            counters = finished(out)?;
            for e in &events {
                if let Event::Reply(r) = e {
                    if r.state == PortState::Open {
                        if let Some(v4) = r.addr.v4() {
                            tally.open(v4, r.port);
                        }
                    }
                }
            }
            print_memory_then(|| Ok(()))?;
            drop(events);
        }
        "map" => {
            let mut m = MapSink::default();
            let out = scan::run(&plan, io, &mut m, &control, RunOptions::default())?;
            counters = finished(out)?;
            for ((addr, port), st) in &m.rows {
                if *st == PortState::Open {
                    if let Some(v4) = addr.v4() {
                        tally.open(v4, *port);
                    }
                }
            }
            print_memory_then(|| Ok(()))?;
            drop(m);
        }
        other => anyhow::bail!("unknown sink {other:?} (log, log-noprefault, vec, map)"),
    }
    println!("{}", summary(&a, &counters, Some(tally.finish()), &notes));
    Ok(())
}

fn finished(out: ScanOutcome) -> anyhow::Result<Counters> {
    match out {
        ScanOutcome::Finished { counters } => Ok(counters),
        other => anyhow::bail!("the scan did not finish: {other:?}"),
    }
}

/// Print the process's memory lines (to stderr, for the record) just before `f`.
fn print_memory_then(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    eprintln!(
        "memory at end of scan: VmHWM {} kB, VmRSS {} kB (anon {} kB, file {} kB, shmem {} kB)",
        status_kb("VmHWM:"),
        status_kb("VmRSS:"),
        status_kb("RssAnon:"),
        status_kb("RssFile:"),
        status_kb("RssShmem:")
    );
    f()
}

fn summary(
    a: &ChildArgs,
    c: &Counters,
    tally: Option<crate::truth::Recall>,
    notes: &[String],
) -> String {
    serde_json::json!({
        "backend": a.backend,
        "sink": a.sink,
        "sent": c.sent,
        "replies": c.replies,
        "open": c.open,
        "closed": c.closed,
        "drops": c.drops,
        "invalid": c.invalid,
        "tally": tally,
        "vm_hwm_kb": status_kb("VmHWM:"),
        "rss_anon_kb": status_kb("RssAnon:"),
        "rss_file_kb": status_kb("RssFile:"),
        "notes": notes,
    })
    .to_string()
}
