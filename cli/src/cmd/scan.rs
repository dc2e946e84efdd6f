//! `prtip scan`: flags → `ScanSpec` → engine → log → output.
//!
//! Owns: the scan flags (nmap/masscan spelling), turning them into a `ScanSpec`
//! (targets resolved once, ports canonical, timing resolved), the privilege check,
//! route discovery, the scan directory and history row, signal handling (pause,
//! hold, abort), the live output (open ports as found, progress line on a terminal)
//! and the summary and exports at the end. Everything is validated before the scan
//! directory is created: bad input exits 2 with nothing sent and nothing written.
//! Shared with `prtip replay --from-checkpoint` through [`execute`].

use crate::paths::Paths;
use crate::UsageError;
use anyhow::{anyhow, Context};
use prtip_engine::connect::run as connect_run;
use prtip_engine::pacing;
use prtip_engine::permutation::parse_shard;
use prtip_engine::ports::PortList;
use prtip_engine::route;
use prtip_engine::scan::{self as engine_scan, RunOptions, ScanControl, ScanOutcome, ScanPlan};
use prtip_engine::targets::{read_list_file, resolve_system, TargetSet};
use prtip_engine::wire::EthernetAddress;
use prtip_store::event::{
    now_us, Addr, BackendKind, Checkpoint, Event, EventSink, Failed, HostName, OutputSpec,
    PortState, Protocol, ScanSpec, ScanType, SinkError,
};
use prtip_store::{HistoryIndex, HistoryRow, LogOptions, LogWriter, ScanStatus};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Flags of `prtip scan`. nmap spellings with several letters after one dash
/// (`-iL`, `-oN`, `-oX`, `-oG`, `-oA`, `-oJ`) are accepted as written.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Targets: addresses, CIDR blocks, ranges (10.0.0.1-10.0.0.50, 10.0.0-3.1-254), host names.
    pub targets: Vec<String>,
    /// Read targets from FILE (white-space separated, # comments; - for stdin). Written -iL.
    #[arg(long = "iL", value_name = "FILE")]
    pub input_list: Option<PathBuf>,
    /// Exclude targets (comma-separated, same syntax as targets).
    #[arg(long, value_name = "LIST")]
    pub exclude: Vec<String>,
    /// Exclude the targets listed in FILE.
    #[arg(long, value_name = "FILE")]
    pub excludefile: Vec<PathBuf>,
    /// Ports: 22,80,8000-8100, - (all), T:/U: prefixes, service names. Default: top 1000.
    #[arg(
        short = 'p',
        long = "ports",
        value_name = "PORTS",
        allow_hyphen_values = true
    )]
    pub ports: Option<String>,
    /// The N most frequent ports of the shipped frequency list.
    #[arg(long = "top-ports", value_name = "N")]
    pub top_ports: Option<usize>,
    /// Fast: the 100 most frequent ports.
    #[arg(short = 'F')]
    pub fast: bool,
    /// Scan type: -sS (SYN, default), -sT (connect, no privilege), -sU (UDP), -sV (service detection).
    #[arg(short = 's', value_name = "S|T|U|V")]
    pub scan: Vec<String>,
    /// Timing template -T0..-T5 (default 3; --help shows the table).
    ///
    /// --rate, --max-retries and --wait override the template's values:
    ///   -T0 paranoid    0.003 probes/s  2 retries  wait 30 s
    ///   -T1 sneaky      0.066 probes/s  2 retries  wait 15 s
    ///   -T2 polite      2.5 probes/s    2 retries  wait 10 s
    ///   -T3 normal      10 000 probes/s 2 retries  wait 3 s
    ///   -T4 aggressive  100 000 probes/s 1 retry   wait 2 s
    ///   -T5 insane      1 000 000 probes/s 0 retries wait 1 s
    #[arg(short = 'T', value_name = "0-5", verbatim_doc_comment)]
    pub timing: Option<u8>,
    /// Probes per second (50000, 2.5, 100k, 1M); overrides -T.
    #[arg(long, value_name = "PPS")]
    pub rate: Option<String>,
    /// Upper bound on the rate.
    #[arg(long = "max-rate", value_name = "PPS")]
    pub max_rate: Option<String>,
    /// Retransmissions of an unanswered probe.
    #[arg(long = "max-retries", value_name = "N")]
    pub max_retries: Option<u32>,
    /// Wait for late replies after the last probe (seconds, or 500ms, 2s, 1m).
    #[arg(long, value_name = "TIME")]
    pub wait: Option<String>,
    /// Permutation and cookie key (default: random). Same seed, same probe order.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Scan one slice of the walk: i/N (0-based). `$(JOB_COMPLETION_INDEX)/N` takes
    /// i from that variable (a Kubernetes Indexed Job); see docs/scale-out.md.
    #[arg(long, value_name = "i/N")]
    pub shard: Option<String>,
    /// If --home holds this scan's shard (same spec, seed and --shard) unfinished,
    /// resume it from its last checkpoint; if finished, send nothing (needs --seed).
    #[arg(long = "continue")]
    pub continue_shard: bool,
    /// Send what `prtip merge --gaps FILE` said is missing (no targets needed).
    #[arg(long = "from-gaps", value_name = "FILE")]
    pub from_gaps: Option<PathBuf>,
    /// Interface to send on (default: from the routing table).
    #[arg(short = 'e', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// Source address (default: what the kernel would choose).
    #[arg(short = 'S', long = "source-ip", value_name = "ADDR")]
    pub source: Option<String>,
    /// MAC of the next hop (default: from the neighbour table, else ARP).
    #[arg(long = "router-mac", value_name = "MAC")]
    pub router_mac: Option<String>,
    /// Packet path for -sS: packet (AF_PACKET, default) or xdp (AF_XDP).
    #[arg(long, value_name = "packet|xdp")]
    pub backend: Option<String>,
    /// AF_XDP kernel-bypass on IFACE (= --backend xdp -e IFACE); see docs/xdp-on-real-nics.md.
    #[arg(long = "xdp", value_name = "IFACE")]
    pub xdp: Option<String>,
    /// XDP mode of prtip's filter program with --xdp: native (default; falls back to skb with a note) or skb.
    #[arg(long = "xdp-mode", value_name = "native|skb")]
    pub xdp_mode: Option<String>,
    /// AF_XDP zero-copy with --xdp: auto (default: where the driver has it), on (required) or off.
    #[arg(long = "zero-copy", value_name = "auto|on|off", num_args = 0..=1, default_missing_value = "on")]
    pub zero_copy: Option<String>,
    /// Queues to send on with --xdp, one thread each (default: one per core but one, at most every queue).
    #[arg(long = "xdp-queues", value_name = "N")]
    pub xdp_queues: Option<u32>,
    /// Checkpoint every N probes (in addition to time).
    #[arg(long = "checkpoint-every", value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Checkpoint at least this often (default 1s).
    #[arg(long = "checkpoint-interval", value_name = "TIME")]
    pub checkpoint_interval: Option<String>,
    /// nmap normal output to FILE (-oN).
    #[arg(long = "oN", value_name = "FILE")]
    pub out_normal: Option<String>,
    /// nmap XML output to FILE (-oX).
    #[arg(long = "oX", value_name = "FILE")]
    pub out_xml: Option<String>,
    /// Greppable output to FILE (-oG).
    #[arg(long = "oG", value_name = "FILE")]
    pub out_grep: Option<String>,
    /// BASE.nmap, BASE.xml and BASE.gnmap (-oA).
    #[arg(long = "oA", value_name = "BASE")]
    pub out_all: Option<String>,
    /// JSON lines to FILE (-oJ).
    #[arg(long = "oJ", value_name = "FILE")]
    pub out_json: Option<String>,
    /// CSV to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<String>,
    /// HTML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<String>,
    /// PDF report to FILE.
    #[arg(long, value_name = "FILE")]
    pub pdf: Option<String>,
    /// Keep only rows matching this filter expression in exports.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Service probes file for -sV (nmap-service-probes or prtip format).
    #[arg(long = "service-probes", value_name = "FILE")]
    pub service_probes: Option<String>,
    /// -sT/-sU/-sV: most sockets in flight at once (default 4096 for -sT, 1024 for -sU,
    /// 512 for -sV; lowered to what RLIMIT_NOFILE allows).
    #[arg(long = "max-parallelism", value_name = "N")]
    pub max_parallelism: Option<u64>,
    /// -sT/-sU: how long one connect attempt or datagram waits for an answer
    /// (default: --wait clamped to 0.5..3 s).
    #[arg(long = "connect-timeout", value_name = "TIME")]
    pub connect_timeout: Option<String>,
    /// -sV: try probes up to this rarity, 0 (fewest) ..9 (all); default 7.
    #[arg(long = "version-intensity", value_name = "0-9")]
    pub version_intensity: Option<u8>,
    /// -sV: how long to read each probe's answer (default: the probe's own wait, 2-3 s).
    #[arg(long = "version-wait", value_name = "TIME")]
    pub version_wait: Option<String>,
    /// nmap's -Pn (no host discovery): accepted; prtip never pings first.
    #[arg(short = 'P', value_name = "n", hide = true)]
    pub ping: Option<String>,
    /// nmap's -n (no reverse DNS): accepted; prtip never does reverse DNS.
    #[arg(short = 'n', hide = true)]
    pub no_dns: bool,
    /// Do not print open ports as they are found.
    #[arg(long)]
    pub quiet: bool,
    /// Run the scan with the monitor in front (full screen; keys as in `prtip
    /// monitor`). `p`/`r` hold and continue the scan in place; `q` (or Esc,
    /// Ctrl-C) only leaves the monitor: the scan keeps going in the terminal with
    /// its progress line and summary, and Ctrl-C then pauses it (resumable).
    #[arg(long)]
    pub tui: bool,
}

/// Rewrite nmap's multi-letter single-dash flags (`-iL`, `-oX`, ...) into the long
/// forms clap knows. Applied by `main` before parsing.
pub fn nmap_style_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|a| match a.to_str() {
        Some(s @ ("-iL" | "-oN" | "-oX" | "-oG" | "-oA" | "-oJ")) => format!("-{s}").into(),
        _ => a,
    })
    .collect()
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Whether this process holds capability `bit` in its effective set.
pub fn has_capability(bit: u32) -> bool {
    crate::privilege::has(bit)
}

pub(crate) const CAP_NET_RAW: u32 = 13;

/// The message for a missing CAP_NET_RAW.
pub fn privilege_message() -> String {
    "prtip scan -sS sends raw packets and needs CAP_NET_RAW, which this process does not have.\n  \
     Run it as root (sudo prtip scan ...), or grant the capability once:\n    \
     sudo setcap cap_net_raw,cap_net_admin+eip \"$(command -v prtip)\"\n  \
     A connect scan (-sT) needs no privilege."
        .to_string()
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.write_u32(std::process::id());
    h.finish()
}

/// Turn the flags into a spec (no packet sent, no file written).
pub fn build_spec(args: &Args) -> anyhow::Result<ScanSpec> {
    super::scan_checks::check(args)?;
    let mut targets = args.targets.clone();
    let mut listed = Vec::new();
    if let Some(p) = &args.input_list {
        listed = read_list_file(p).map_err(|e| usage(e.to_string()))?;
        targets.extend(listed.iter().cloned());
    }
    if targets.is_empty() {
        return Err(usage(
            "no targets given: name addresses, CIDR blocks, ranges or host names, or use -iL FILE",
        ));
    }
    let mut excludes: Vec<String> = args
        .exclude
        .iter()
        .flat_map(|e| e.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for f in &args.excludefile {
        excludes.extend(read_list_file(f).map_err(|e| usage(e.to_string()))?);
    }
    // Resolve names once; the answers go into the spec (and the log).
    let set = TargetSet::build(&targets, &excludes, &mut resolve_system).map_err(|e| {
        let msg = e.to_string();
        // A name from -iL that did not resolve: say where it came from.
        let from = args.input_list.as_ref().and_then(|f| {
            let t = listed.iter().find(|t| msg.contains(t.as_str()))?;
            let line = super::scan_checks::list_line(f, t)?;
            Some(format!(" (-iL {} line {line})", f.display()))
        });
        usage(msg + &from.unwrap_or_default())
    })?;
    let resolved: Vec<HostName> = set
        .resolved
        .iter()
        .map(|r| HostName {
            name: r.name.clone(),
            addr: Addr::from(r.addr),
        })
        .collect();

    let mut scan_type = None;
    let mut service_detection = false;
    for s in &args.scan {
        let t = match s.as_str() {
            "S" => ScanType::Syn,
            "T" => ScanType::Connect,
            "U" => ScanType::Udp,
            "V" => {
                service_detection = true;
                continue;
            }
            other => return Err(usage(format!("unknown scan type -s{other}: use -sS (SYN), -sT (connect), -sU (UDP), -sV (service detection)"))),
        };
        if scan_type.is_some_and(|p| p != t) {
            return Err(usage(format!("-s{s} given together with another scan type: prtip runs one of -sS, -sT, -sU per scan")));
        }
        scan_type = Some(t);
    }
    let scan_type = scan_type.unwrap_or(ScanType::Syn);
    let default_proto = if scan_type == ScanType::Udp {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    let chosen = [args.ports.is_some(), args.top_ports.is_some(), args.fast]
        .iter()
        .filter(|b| **b)
        .count();
    if chosen > 1 {
        return Err(usage("give only one of -p, --top-ports and -F"));
    }
    let ports = if let Some(p) = &args.ports {
        PortList::parse(p, default_proto).map_err(|e| usage(e.to_string()))?
    } else if let Some(n) = args.top_ports {
        if n == 0 {
            return Err(usage(
                "--top-ports 0 selects no ports: give a number from 1 to 65536",
            ));
        }
        PortList::top(n, &[default_proto])
    } else if args.fast {
        PortList::fast(&[default_proto])
    } else {
        PortList::top(1000, &[default_proto])
    };
    match scan_type {
        ScanType::Syn | ScanType::Connect if !ports.udp.is_empty() => {
            return Err(usage(format!(
                "UDP ports (U:) given for a TCP scan: use -sU for UDP ports ({})",
                ports.canonical()
            )))
        }
        ScanType::Udp if !ports.tcp.is_empty() => {
            return Err(usage(format!(
                "TCP ports (T:) given for -sU: use -sS or -sT for TCP ports ({})",
                ports.canonical()
            )))
        }
        _ => {}
    }

    let timing = args.timing.unwrap_or(3);
    let t = pacing::timing(timing)
        .ok_or_else(|| usage(format!("-T{timing}: timing templates are -T0 to -T5")))?;
    let rate_mpps = match &args.rate {
        Some(r) => pacing::parse_rate(r).ok_or_else(|| {
            usage(format!(
                "bad --rate \"{r}\": give probes per second, e.g. 50000, 2.5, 100k, 1M"
            ))
        })?,
        None => t.rate_mpps,
    };
    let max_rate = match &args.max_rate {
        Some(r) => pacing::parse_rate(r).ok_or_else(|| {
            usage(format!(
                "bad --max-rate \"{r}\": give probes per second, e.g. 100000"
            ))
        })?,
        None => 0,
    };
    let wait_ms = match &args.wait {
        Some(w) => pacing::parse_duration_ms(w).ok_or_else(|| {
            usage(format!(
                "bad --wait \"{w}\": give seconds (3) or a duration (500ms, 2s, 1m)"
            ))
        })?,
        None => t.wait_ms,
    };
    let checkpoint_every_ms = match &args.checkpoint_interval {
        Some(w) => pacing::parse_duration_ms(w).ok_or_else(|| {
            usage(format!(
                "bad --checkpoint-interval \"{w}\": give a duration (500ms, 1s)"
            ))
        })?,
        None => 1000,
    };
    let (shard_index, shard_count) = match &args.shard {
        Some(s) => parse_shard(&super::merge::shard_arg(s)?).map_err(|e| usage(e.to_string()))?,
        None => (0, 1),
    };
    let source = match &args.source {
        Some(s) => {
            Some(Addr::from(s.parse::<Ipv4Addr>().map_err(|_| {
                usage(format!("bad -S \"{s}\": give an IPv4 address"))
            })?))
        }
        None => None,
    };
    let router_mac = match &args.router_mac {
        Some(m) => Some(
            EthernetAddress::parse(m)
                .ok_or_else(|| {
                    usage(format!(
                        "bad --router-mac \"{m}\": give a MAC like 02:70:72:74:00:02"
                    ))
                })?
                .0,
        ),
        None => None,
    };
    let mut extra = serde_json::Map::new();
    let (backend_flag, interface) = crate::cmd::xdp::ScanFlags {
        xdp: args.xdp.as_deref(),
        backend: args.backend.as_deref(),
        interface: args.interface.as_deref(),
        mode: args.xdp_mode.as_deref(),
        zero_copy: args.zero_copy.as_deref(),
        queues: args.xdp_queues,
    }
    .apply(scan_type == ScanType::Syn, &mut extra)?;
    let backend = match (scan_type, backend_flag.as_deref()) {
        (ScanType::Syn, None | Some("packet")) => BackendKind::Packet,
        (ScanType::Syn, Some("xdp")) => BackendKind::Xdp,
        (ScanType::Syn, Some(b)) => {
            return Err(usage(format!(
                "unknown --backend \"{b}\": use packet or xdp"
            )))
        }
        (_, None | Some("connect")) => BackendKind::Connect,
        (_, Some(b)) => {
            return Err(usage(format!(
                "--backend {b} applies to -sS only; -sT and -sU use io_uring sockets"
            )))
        }
    };
    let mut outputs = Vec::new();
    let mut add = |format: &str, path: &Option<String>| {
        if let Some(p) = path {
            outputs.push(OutputSpec {
                format: format.into(),
                path: p.clone(),
            });
        }
    };
    add("text", &args.out_normal);
    add("xml", &args.out_xml);
    add("grep", &args.out_grep);
    add("json", &args.out_json);
    add("csv", &args.csv);
    add("html", &args.html);
    add("pdf", &args.pdf);
    if let Some(base) = &args.out_all {
        for (f, ext) in [("text", "nmap"), ("xml", "xml"), ("grep", "gnmap")] {
            outputs.push(OutputSpec {
                format: f.into(),
                path: format!("{base}.{ext}"),
            });
        }
    }
    for o in &outputs {
        if o.path != "-" {
            let parent = Path::new(&o.path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(usage(format!(
                    "output {} cannot be written: directory {} does not exist",
                    o.path,
                    parent.display()
                )));
            }
        }
    }
    if let Some(f) = &args.filter {
        prtip_filter::Filter::parse(f).map_err(|e| usage(format!("bad --filter: {e}")))?;
    }
    extra.insert("rate_mpps".into(), rate_mpps.into());
    // connect / UDP / service detection tuning (read by prtip_engine::connect::run::Tuning)
    if let Some(n) = args.max_parallelism {
        if n == 0 {
            return Err(usage("bad --max-parallelism 0: give at least 1"));
        }
        extra.insert("max_parallelism".into(), n.into());
    }
    if let Some(t) = &args.connect_timeout {
        let ms = pacing::parse_duration_ms(t)
            .filter(|ms| *ms > 0)
            .ok_or_else(|| {
                usage(format!(
                    "bad --connect-timeout \"{t}\": give a time such as 500ms, 2s"
                ))
            })?;
        extra.insert("connect_timeout_ms".into(), ms.into());
    }
    if let Some(i) = args.version_intensity {
        if i > 9 {
            return Err(usage(format!("bad --version-intensity {i}: give 0..9")));
        }
        extra.insert("version_intensity".into(), i.into());
    }
    if let Some(t) = &args.version_wait {
        let ms = pacing::parse_duration_ms(t)
            .filter(|ms| *ms > 0)
            .ok_or_else(|| {
                usage(format!(
                    "bad --version-wait \"{t}\": give a time such as 500ms, 2s"
                ))
            })?;
        extra.insert("version_wait_ms".into(), ms.into());
    }
    extra.insert(
        "retry_gap_ms".into(),
        t.retry_gap_ms.min(wait_ms.max(1)).into(),
    );
    let spec = ScanSpec {
        targets,
        resolved,
        excludes,
        ports: ports.canonical(),
        scan_type,
        service_detection,
        rate: rate_mpps / 1000,
        max_rate: max_rate / 1000,
        timing,
        seed: args.seed.unwrap_or_else(random_seed),
        shard_index,
        shard_count,
        backend,
        interface,
        source,
        router_mac,
        max_retries: args.max_retries.unwrap_or(t.max_retries),
        wait_ms,
        checkpoint_every_ms,
        checkpoint_every_probes: args.checkpoint_every.unwrap_or(0),
        outputs,
        filter: args.filter.clone(),
        service_probes: args.service_probes.clone(),
        extra_json: serde_json::Value::Object(extra).to_string(),
    };
    // Validate the whole plan now (index space size, IPv6 with -sS, ...).
    ScanPlan::new(&spec).map_err(|e| usage(e.to_string()))?;
    Ok(spec)
}

/// Fill interface, source and router MAC of a -sS spec from the kernel's tables
/// (given values win).
pub fn discover_route(spec: &mut ScanSpec, plan: &ScanPlan) -> anyhow::Result<route::Route> {
    let first = plan.targets.get_v4(0);
    let r = route::discover(
        first,
        spec.interface.as_deref(),
        spec.source.and_then(|a| a.v4()),
        spec.router_mac.map(EthernetAddress),
    )
    .map_err(|e| usage(e.to_string()))?;
    spec.interface = Some(r.iface.clone());
    spec.source = Some(Addr::from(r.src_ip));
    spec.router_mac = Some(r.dst_mac.0);
    Ok(r)
}

/// Prints open ports as they are found, passes everything on.
struct Tee<'a> {
    inner: &'a mut dyn EventSink,
    names: HashMap<IpAddr, String>,
    quiet: bool,
    progress_line: bool,
    /// True while the monitor owns the terminal (`--tui`): print nothing.
    hush: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl EventSink for Tee<'_> {
    fn push(&mut self, event: Event) -> Result<(), SinkError> {
        if let Event::Reply(r) = &event {
            let hushed = self.hush.as_ref().is_some_and(|h| h.load(Relaxed));
            if r.state == PortState::Open && !self.quiet && !hushed {
                let ip = r.addr.ip();
                let name = self
                    .names
                    .get(&ip)
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                let clear = if self.progress_line { "\r\x1b[2K" } else { "" };
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "{clear}Discovered open port {}/{} on {ip}{name}",
                    r.port,
                    r.proto.as_str()
                );
            }
        }
        self.inner.push(event)
    }
    fn checkpoint(&mut self, c: Checkpoint) -> Result<(), SinkError> {
        self.inner.checkpoint(c)
    }
}

fn progress_thread(
    control: Arc<ScanControl>,
    done: Arc<std::sync::atomic::AtomicBool>,
    span: u64,
    hush: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let p = &control.progress;
        let first = p.position.load(Relaxed);
        let mut last = (Instant::now(), p.sent.load(Relaxed));
        let mut rate = 0.0f64;
        while !done.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            let (pos, sent) = (p.position.load(Relaxed), p.sent.load(Relaxed));
            let total = span.max(1);
            let retry = if pos > total {
                format!(" · retry pass {}", pos / total)
            } else {
                String::new()
            };
            let pos = pos.min(total);
            let now = Instant::now();
            let dt = now.duration_since(last.0).as_secs_f64();
            if dt >= 1.0 {
                rate = (sent - last.1) as f64 / dt;
                last = (now, sent);
            }
            let pct = pos as f64 * 100.0 / total as f64;
            let el = start.elapsed().as_secs_f64();
            let eta = if pos > first {
                el / (pos - first) as f64 * (total - pos) as f64
            } else {
                0.0
            };
            if hush.as_ref().is_some_and(|h| h.load(Relaxed)) {
                continue;
            }
            let held = if control.is_held() {
                " · paused (SIGUSR2 resumes)"
            } else {
                ""
            };
            eprint!(
                "\r\x1b[2Ksent {sent} · {:.1}k pps · {pct:.1}%{retry} · ETA {}:{:02} · open {}{held}",
                rate / 1000.0,
                (eta as u64) / 60,
                (eta as u64) % 60,
                p.open.load(Relaxed)
            );
        }
        if !hush.as_ref().is_some_and(|h| h.load(Relaxed)) {
            eprint!("\r\x1b[2K");
        }
    })
}

/// How this run starts.
pub enum Start {
    /// A new scan from flags.
    Fresh {
        /// Command line.
        command_line: Vec<String>,
    },
    /// Continue scan `id` whose log is in `dir` from walk position `from`.
    Resume {
        /// The history index the scan was found in (opened for reading: it is
        /// opened for writing at its first write, off the path to the first probe).
        history: HistoryIndex,
        /// History id.
        id: u64,
        /// The AF_PACKET receiver's socket and ring, being made on a thread since
        /// the process started (used by a `-sS` scan on the AF_PACKET backend,
        /// closed otherwise).
        rx: Option<prtip_engine::backend::packet::PendingRx>,
        /// Log directory.
        dir: PathBuf,
        /// Walk position.
        from: u64,
        /// Counters at that checkpoint (open/closed/replies are recounted from the log).
        counters: prtip_store::event::Counters,
    },
}

/// Run a scan (fresh or resumed) to its end, pause or abort; prints and exports.
pub fn execute(
    spec: ScanSpec,
    start: Start,
    paths: &Paths,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    execute_with(spec, start, paths, quiet, None)
}

/// [`execute`], with the monitor in front when `front` is given (`--tui`): the
/// log directory is handed to it once created, nothing is printed while it is
/// on screen, and the last words wait until the user has left it.
pub fn execute_with(
    mut spec: ScanSpec,
    mut start: Start,
    paths: &Paths,
    quiet: bool,
    front: Option<super::live::Front>,
) -> anyhow::Result<ExitCode> {
    let mut plan = ScanPlan::new(&spec).map_err(|e| usage(e.to_string()))?;
    let mut early_rx = match &mut start {
        Start::Resume { rx, .. } => rx.take(),
        Start::Fresh { .. } => None,
    };
    // A connect scan needs no privilege: drop it before any thread starts
    // (capabilities are per thread), keeping root's access to files only.
    if spec.scan_type == ScanType::Connect {
        crate::privilege::drop_network_privileges()
            .context("dropping the capabilities a connect scan does not need")?;
    }
    // Privilege and route before anything is written.
    let mut pair = None;
    if spec.scan_type == ScanType::Syn {
        if !has_capability(CAP_NET_RAW) {
            return Err(usage(privilege_message()));
        }
        let r = discover_route(&mut spec, &plan)?;
        plan = ScanPlan::new(&spec).map_err(|e| usage(e.to_string()))?;
        let io = match spec.backend {
            BackendKind::Xdp => {
                let t = prtip_engine::backend::TemplateSet::new(&engine_scan::frame_params(&r));
                let (pair, notes) = prtip_xdp::open_pair(
                    &r.iface,
                    &t,
                    &crate::cmd::xdp::options(&spec.extra_json, r.src_ip),
                )
                .map_err(|e| crate::cmd::xdp::open_error(&r.iface, e))?;
                for n in notes {
                    eprintln!("prtip: {n}");
                }
                pair
            }
            _ => engine_scan::open_packet_backend_prepared(
                &r,
                &|_| None,
                &plan.ports.udp,
                early_rx.take().and_then(|p| p.take()),
            )
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::EPERM) {
                    usage(privilege_message())
                } else {
                    anyhow!("opening AF_PACKET sockets on {}: {e}", r.iface)
                }
            })?,
        };
        pair = Some(io);
    }
    // Not used (another backend or scan type): closed on a thread of its own.
    drop(early_rx);
    let db = if spec.service_detection || spec.scan_type == ScanType::Udp {
        // the built-in database, then the user's file (its rules are tried after ours)
        let mut db = prtip_services::ProbeDb::builtin();
        if let Some(f) = &spec.service_probes {
            let user = prtip_services::ProbeDb::load_file(Path::new(f))
                .map_err(|e| usage(format!("--service-probes {f}: {e}")))?;
            if !user.skipped.is_empty() && !quiet {
                eprintln!(
                    "prtip: --service-probes {f}: {} rule(s) use regex features prtip lacks and are skipped (first at line {}: {})",
                    user.skipped.len(),
                    user.skipped[0].line,
                    user.skipped[0].why
                );
            }
            db.merge(user);
        }
        Some(db)
    } else {
        None
    };

    // Now write: history row and scan directory.
    let (history, id, dir, writer, resume_from, counters, command_line) = match start {
        Start::Fresh { command_line } => {
            let history = HistoryIndex::open(&paths.history).with_context(|| {
                format!("opening the history index {}", paths.history.display())
            })?;
            let (id, dir) = history
                .new_scan_dir(&paths.scans_dir())
                .context("creating the scan directory")?;
            let writer = match LogWriter::create(&dir, LogOptions::default()) {
                Ok(w) => w,
                Err(e) => {
                    // The directory was made for this scan a moment ago: a
                    // failed scan leaves no empty scan directory behind.
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(anyhow::Error::new(e)
                        .context(format!("creating the scan log in {}", dir.display())));
                }
            };
            history.upsert(&HistoryRow {
                id,
                started_us: now_us(),
                ended_us: None,
                status: ScanStatus::Running,
                target_spec: spec.targets.join(" "),
                config_json: prtip_store::spec_json(&spec),
                log_path: dir.clone(),
                total_targets: plan.total_targets(),
                // -sT/-sU retry inline: one walk position per port (as in their ScanStarted)
                total_probes: if spec.scan_type == ScanType::Syn {
                    plan.total_probes()
                } else {
                    plan.walk.span()
                },
                probes_done: 0,
                ports_discovered: 0,
                checkpoints: 0,
            })?;
            (
                history,
                id,
                dir,
                writer,
                None,
                Default::default(),
                command_line,
            )
        }
        Start::Resume {
            history,
            id,
            rx: _,
            dir,
            from,
            counters,
        } => {
            let (writer, _report) = LogWriter::open_append(&dir, LogOptions::default())
                .with_context(|| format!("reopening the scan log in {}", dir.display()))?;
            (history, id, dir, writer, Some(from), counters, Vec::new())
        }
    };
    if let Some(f) = &front {
        f.log_created(&dir);
    }
    let hush = front.as_ref().map(|f| f.on_screen_flag());
    let mut counters = counters;
    // On resume, the ports the log already decided: replayed by the SYN engine on a
    // thread of its own (the first probes go out meanwhile), counted here otherwise.
    let mut preload: Option<engine_scan::Preload<'static>> = None;
    if resume_from.is_some() {
        let each_reply = |dir: &Path, f: &mut dyn FnMut(IpAddr, Protocol, u16, PortState)| {
            if let Ok(r) = prtip_store::LogReader::open(dir) {
                for e in r.iter().flatten() {
                    if let prtip_store::EventRef::Reply(r) = e {
                        f(
                            r.addr.ip(),
                            Protocol::from(&r.proto),
                            r.port.to_native(),
                            PortState::from(&r.state),
                        );
                    }
                }
            }
        };
        if spec.scan_type == ScanType::Syn {
            let d = dir.clone();
            preload = Some(Box::new(move |f| each_reply(&d, f)));
        } else {
            each_reply(&dir, &mut |_, _, _, st| {
                counters.replies += 1;
                match st {
                    PortState::Open => counters.open += 1,
                    PortState::Closed => counters.closed += 1,
                    _ => {}
                }
            });
        }
    }

    let control = Arc::new(ScanControl::new());
    let signals = install_signals(control.clone(), spec.wait_ms)?;
    let tty = std::io::stderr().is_terminal();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = tty.then(|| {
        progress_thread(
            control.clone(),
            done.clone(),
            plan.walk.span(),
            hush.clone(),
        )
    });
    let mut log_sink = writer.sink();
    let names: HashMap<IpAddr, String> = spec
        .resolved
        .iter()
        .map(|h| (h.addr.ip(), h.name.clone()))
        .collect();
    let started = Instant::now();
    let result: anyhow::Result<ScanOutcome> = {
        let log_bytes = || writer.durable_bytes();
        let opts = RunOptions {
            scan_id: id,
            command_line,
            resume_from,
            counters,
            log_bytes: Some(&log_bytes),
            checkpoint_every_ms: spec.checkpoint_every_ms,
            checkpoint_every_probes: spec.checkpoint_every_probes,
            sample_every: Duration::from_secs(1),
            preload: None,
        };
        let mut tracked = super::live::HistoryTracking::new(&mut log_sink, &history, id);
        if resume_from.is_some() {
            // The row says `running` once written on a thread; the first probes go
            // out meanwhile.
            tracked = tracked.resumed_in_background();
        }
        let mut tee = Tee {
            inner: &mut tracked,
            names,
            quiet,
            progress_line: tty,
            hush: hush.clone(),
        };
        match (spec.scan_type, pair) {
            (ScanType::Syn, Some(io)) if spec.service_detection => {
                let mut open = prtip_engine::connect::grab::OpenPorts::new(&mut tee);
                open.hold_finished = true;
                let out = engine_scan::run(
                    &plan,
                    io,
                    &mut open,
                    &control,
                    RunOptions {
                        log_bytes: opts.log_bytes,
                        command_line: opts.command_line.clone(),
                        ..RunOptions {
                            scan_id: id,
                            resume_from,
                            counters,
                            preload: preload.take(),
                            checkpoint_every_ms: spec.checkpoint_every_ms,
                            checkpoint_every_probes: spec.checkpoint_every_probes,
                            ..Default::default()
                        }
                    },
                );
                match out {
                    Ok(o @ ScanOutcome::Finished { .. }) => {
                        let ports = open.take_sorted();
                        let fin = open.take_finished();
                        let sink = open.into_inner();
                        prtip_engine::connect::run::detect_after(
                            ports,
                            &plan,
                            db.as_ref().expect("db"),
                            sink,
                            &control,
                            &opts,
                        )
                        .map_err(|e| anyhow!("service detection: {e}"))?;
                        if let Some(f) = fin {
                            sink.push(finished_now(f))?;
                        }
                        Ok(o)
                    }
                    other => other.map_err(anyhow::Error::from),
                }
            }
            (ScanType::Syn, Some(io)) => engine_scan::run(
                &plan,
                io,
                &mut tee,
                &control,
                RunOptions {
                    preload: preload.take(),
                    ..opts
                },
            )
            .map_err(anyhow::Error::from),
            _ => connect_run::run(
                &plan,
                db.as_ref().unwrap_or(&prtip_services::ProbeDb::builtin()),
                &mut tee,
                &control,
                opts,
            )
            .map_err(anyhow::Error::from),
        }
    };
    done.store(true, Relaxed);
    if let Some(p) = progress {
        let _ = p.join();
    }
    signals.close();
    let elapsed = started.elapsed();
    if let Some(f) = &front {
        if result.is_ok() {
            f.wait_closed();
        }
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            let _ = log_sink.push(Event::Failed(Failed {
                time_us: now_us(),
                message: format!("{e:#}"),
            }));
            let _ = writer.finish();
            let _ = history.index_log(&dir);
            return Err(e.context(format!("scan {id} failed (log in {})", dir.display())));
        }
    };
    if outcome == ScanOutcome::Aborted {
        writer.finish().context("closing the scan log")?;
        let _ = history.index_log(&dir);
        eprintln!("prtip: stopped at once (scan {id}); resume from the last checkpoint: prtip replay {id} --from-checkpoint");
        return Ok(ExitCode::from(130));
    }
    // Exports and summary read the log: everything before the last checkpoint is durable.
    let reader = prtip_store::LogReader::open(&dir)?;
    if !spec.outputs.is_empty() {
        for stats in export_outputs(&reader, &spec)? {
            log_sink.push(stats.event())?;
        }
    }
    drop(reader);
    writer.finish().context("closing the scan log")?;
    let row = history
        .index_log(&dir)
        .context("updating the history index")?;
    match outcome {
        ScanOutcome::Finished { counters } => {
            print_summary(&dir, &spec, plan.total_targets(), &counters, elapsed, quiet)?;
            let _ = row;
            Ok(ExitCode::SUCCESS)
        }
        ScanOutcome::Paused { next_index, .. } => {
            // Percent of the first pass: retry passes resend only unanswered probes.
            let pct = percent_done(next_index, plan.walk.span());
            println!(
                "paused at {pct:.1}% (scan {id}) — resume: prtip replay {id} --from-checkpoint"
            );
            Ok(ExitCode::SUCCESS)
        }
        ScanOutcome::Aborted => unreachable!(),
    }
}

/// The `Finished` event the engine held back while `-sV` ran after a SYN scan,
/// stamped now: the scan (and every report's end time and duration) ends when
/// service detection does, not when the last probe's wait did.
fn finished_now(mut ev: Event) -> Event {
    if let Event::Finished(f) = &mut ev {
        f.time_us = f.time_us.max(now_us());
    }
    ev
}

/// Percent of the scan done at walk position `pos`, measured on the first pass (the
/// retry passes resend only unanswered probes, usually few).
pub fn percent_done(pos: u64, span: u64) -> f64 {
    pos.min(span) as f64 * 100.0 / span.max(1) as f64
}

fn export_outputs(
    reader: &prtip_store::LogReader,
    spec: &ScanSpec,
) -> anyhow::Result<Vec<prtip_export::ExportStats>> {
    let started = reader.scan_started()?;
    // The report header and the rows from one pass over the log.
    let (summary, rows) =
        prtip_store::summary_and_sorted_rows(reader, &prtip_store::SortOptions::default())?;
    let mut meta = prtip_export::ReportMeta::from_started(&started);
    meta.status = format!("{:?}", summary.status).to_lowercase();
    meta.ended_us = summary.ended_us;
    meta.counters = summary.counters;
    let targets: Vec<prtip_export::Target> = spec
        .outputs
        .iter()
        .map(prtip_export::Target::from_spec)
        .collect::<Result<_, _>>()?;
    let filter = match &spec.filter {
        Some(f) => {
            Some(prtip_filter::Filter::parse(f).map_err(|e| usage(format!("bad --filter: {e}")))?)
        }
        None => None,
    };
    let pred = |r: &prtip_store::ResultRow| filter.as_ref().is_none_or(|f| f.matches(r));
    let mut opts = prtip_export::ExportOptions {
        filter: Some(&pred),
        ..Default::default()
    };
    let rows = rows.map(|r| r.map_err(|e| prtip_export::ExportError::Log(e.to_string())));
    Ok(prtip_export::export_rows(&meta, rows, &targets, &mut opts)?)
}

fn print_summary(
    dir: &Path,
    spec: &ScanSpec,
    targets: u64,
    c: &prtip_store::event::Counters,
    elapsed: Duration,
    quiet: bool,
) -> anyhow::Result<()> {
    let reader = prtip_store::LogReader::open(dir)?;
    let mut out = std::io::stdout().lock();
    if targets <= 256 && !quiet {
        // nmap's normal output for small scans.
        let started = reader.scan_started()?;
        let (summary, rows) =
            prtip_store::summary_and_sorted_rows(&reader, &prtip_store::SortOptions::default())?;
        let mut meta = prtip_export::ReportMeta::from_started(&started);
        meta.status = "completed".into();
        meta.ended_us = summary.ended_us;
        meta.counters = summary.counters;
        let rows = rows.map(|r| r.map_err(|e| prtip_export::ExportError::Log(e.to_string())));
        prtip_export::render(
            prtip_export::Format::Text,
            &meta,
            rows,
            &mut out,
            &mut Default::default(),
        )?;
    } else {
        // Per (protocol, port): how many hosts in each state.
        let mut per: std::collections::BTreeMap<(Protocol, u16), [u64; 4]> = Default::default();
        for r in prtip_store::sorted_rows(&reader)? {
            let r = r?;
            let i = match r.state {
                PortState::Open => 0,
                PortState::Closed => 1,
                PortState::Filtered => 2,
                PortState::OpenFiltered => 3,
            };
            per.entry((r.proto, r.port)).or_default()[i] += 1;
        }
        writeln!(out, "PORT        OPEN     CLOSED   FILTERED SERVICE")?;
        for ((proto, port), n) in &per {
            let name = prtip_engine::ports::service_name(*port, *proto).unwrap_or("unknown");
            writeln!(
                out,
                "{:<11} {:<8} {:<8} {:<8} {name}",
                format!("{port}/{}", proto.as_str()),
                n[0],
                n[1],
                n[2] + n[3]
            )?;
        }
    }
    writeln!(
        out,
        "prtip done: {targets} IP address{} scanned in {:.2} seconds ({} probes sent; {} open, {} closed ports; seed {})",
        if targets == 1 { "" } else { "es" },
        elapsed.as_secs_f64(),
        c.sent,
        c.open,
        c.closed,
        spec.seed
    )?;
    Ok(())
}

/// SIGINT/SIGTERM: pause (second: stop at once); SIGUSR1/SIGUSR2: hold/continue in place.
fn install_signals(
    control: Arc<ScanControl>,
    wait_ms: u64,
) -> anyhow::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGUSR2])
        .context("installing signal handlers")?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGINT | SIGTERM => {
                    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                    if control.pause_requested() {
                        control.abort();
                        eprintln!(
                            "\rprtip: {name} again: stopping at once (the log stays resumable)"
                        );
                    } else {
                        control.request_pause(name);
                        eprintln!("\rprtip: {name}: pausing, waiting {:.1}s for late replies (again to stop at once)", wait_ms as f64 / 1000.0);
                    }
                }
                SIGUSR1 => control.hold("SIGUSR1"),
                SIGUSR2 => control.release(),
                _ => {}
            }
        }
    });
    Ok(handle)
}

/// Run a scan.
pub fn run(args: Args, paths: &Paths) -> anyhow::Result<ExitCode> {
    if let Some(f) = &args.from_gaps {
        return super::merge::scan_gaps(f, paths, args.quiet);
    }
    let spec = build_spec(&args)?;
    if args.continue_shard {
        if let Some(code) =
            super::merge::continue_shard(&spec, args.seed.is_some(), paths, args.quiet)?
        {
            return Ok(code);
        }
    }
    if args.tui {
        return super::live::scan_with_monitor(spec, std::env::args().collect(), paths, args.quiet);
    }
    execute(
        spec,
        Start::Fresh {
            command_line: std::env::args().collect(),
        },
        paths,
        args.quiet,
    )
}
