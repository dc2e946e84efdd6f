//! From flags to a `ScanSpec`: every default and every conflict between flags
//! in one place. Nothing is sent and nothing is written here; bad input is a
//! [`UsageError`] naming the flag and the value.

use super::args::{Args, BackendArg};
use crate::UsageError;
use prtip_engine::pacing;
use prtip_engine::permutation::parse_shard;
use prtip_engine::ports::PortList;
use prtip_engine::probe::DiscoveryProbe;
use prtip_engine::scan::ScanPlan;
use prtip_engine::targets::{
    read_list_file, resolve_system, resolve_system_v6, TargetError, TargetSet,
};
use prtip_engine::wire::EthernetAddress;
use prtip_store::event::{
    now_us, Addr, BackendKind, HostName, OutputSpec, Protocol, ScanSpec, ScanType, SocketSettings,
};
use prtip_store::space::list::{ListBuilder, TargetList};
use std::net::Ipv4Addr;
use std::path::Path;

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.write_u32(std::process::id());
    h.finish()
}

/// The `-iL` list (and the command line's targets) minus the excludes, streamed
/// into a stored target list: an unnamed file in the temporary directory, mapped,
/// until the log writer copies it beside the log.
fn build_list(
    args: &Args,
    path: &Path,
    excludes: &[String],
    resolve: &mut dyn FnMut(&str) -> Result<std::net::IpAddr, String>,
) -> anyhow::Result<std::sync::Arc<TargetList>> {
    let mut b = ListBuilder::new();
    for t in &args.targets {
        b.add_token(t, resolve).map_err(|e| usage(e.to_string()))?;
    }
    let read_err = |e: std::io::Error| {
        usage(
            TargetError::File {
                path: path.display().to_string(),
                why: e.to_string(),
            }
            .to_string(),
        )
    };
    let source = path.display().to_string();
    let added = if path == Path::new("-") {
        b.add_lines(std::io::stdin().lock(), &source, resolve)
    } else {
        let f = std::fs::File::open(path).map_err(read_err)?;
        b.add_lines(
            std::io::BufReader::with_capacity(1 << 20, f),
            &source,
            resolve,
        )
    };
    added.map_err(|e| usage(e.to_string()))?;
    if b.is_empty() {
        return Err(usage(format!(
            "-iL {}: the list holds no targets (only blank lines and # comments)",
            path.display()
        )));
    }
    let ex = TargetSet::build(excludes, &[], resolve).map_err(|e| usage(e.to_string()))?;
    let (e4, e6) = (ex.v4.ranges(), ex.v6.ranges());
    b.finish([&e4, &e6], &std::env::temp_dir())
        .map_err(|e| usage(e.to_string()))
}

/// The rate governor's settings of `prtip scan` (`--fixed-rate`, `--min-rate`);
/// the values were checked by [`super::checks::check`].
pub fn governor(args: &Args) -> anyhow::Result<prtip_engine::governor::GovernorSettings> {
    use prtip_engine::governor::GovernorSettings;
    if args.fixed_rate {
        return Ok(GovernorSettings::FIXED);
    }
    let floor_mpps = match &args.min_rate {
        Some(r) => pacing::parse_rate(r).ok_or_else(|| {
            usage(format!(
                "bad --min-rate \"{r}\": give probes per second, e.g. 1000, 2.5, 10k"
            ))
        })?,
        None => 0,
    };
    Ok(GovernorSettings {
        floor_mpps,
        ..GovernorSettings::ADAPTIVE
    })
}

/// Turn the flags into a spec (no packet sent, no file written).
pub fn build_spec(args: &Args) -> anyhow::Result<ScanSpec> {
    super::checks::check(args)?;
    if args.targets.is_empty() && args.input_list.is_none() {
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
    // -6: names resolve to their IPv6 address (nmap's AAAA lookup).
    let mut resolve = |name: &str| {
        if args.ipv6 {
            resolve_system_v6(name)
        } else {
            resolve_system(name)
        }
    };
    let (targets, excludes, set) = match &args.input_list {
        // -iL: the list (with the command line's targets, excludes subtracted) is
        // streamed into a stored target list; the spec names it by hash.
        Some(p) => {
            let list = build_list(args, p, &excludes, &mut resolve)?;
            let targets = vec![list.reference().token()];
            let set =
                TargetSet::build(&targets, &[], &mut resolve).map_err(|e| usage(e.to_string()))?;
            (targets, Vec::new(), set)
        }
        None => {
            let set = TargetSet::build(&args.targets, &excludes, &mut resolve)
                .map_err(|e| usage(e.to_string()))?;
            (args.targets.clone(), excludes, set)
        }
    };
    let resolved: Vec<HostName> = set
        .resolved
        .iter()
        .map(|r| HostName {
            name: r.name.clone(),
            addr: Addr::from(r.addr),
        })
        .collect();

    let kinds = ScanKinds::of(&args.scan)?;
    let scan_type = kinds.scan_type();
    let service_detection = kinds.version;
    let protos = kinds.protocols();
    let (discovery, discover_first) = discovery_probes(args, scan_type, service_detection)?;
    if args.ipv6 && !set.v4.is_empty() {
        return Err(usage(format!(
            "-6 scans IPv6 targets only, and {} is IPv4: drop -6, or give IPv6 targets ({} IPv4 given)",
            set.get_v4(0),
            set.v4.len()
        )));
    }
    let chosen = [args.ports.is_some(), args.top_ports.is_some(), args.fast]
        .iter()
        .filter(|b| **b)
        .count();
    if chosen > 1 {
        return Err(usage("give only one of -p, --top-ports and -F"));
    }
    if scan_type == ScanType::Ping && chosen > 0 {
        return Err(usage(
            "-sn scans no ports, so -p, --top-ports and -F mean nothing with it: \
             to ping ports, give them to -PS, -PA or -PU (-PS22,443)",
        ));
    }
    let ports = if scan_type == ScanType::Ping {
        PortList::default()
    } else if let Some(p) = &args.ports {
        parse_ports(p, &protos).map_err(|e| usage(e.to_string()))?
    } else if let Some(n) = args.top_ports {
        if n == 0 {
            return Err(usage(
                "--top-ports 0 selects no ports: give a number from 1 to 65536",
            ));
        }
        PortList::top(n, &protos)
    } else if args.fast {
        PortList::fast(&protos)
    } else {
        PortList::top(1000, &protos)
    };
    if !kinds.udp && !ports.udp.is_empty() {
        return Err(usage(format!(
            "UDP ports (U:) given for a TCP scan: add -sU for UDP ports ({})",
            ports.canonical()
        )));
    }
    if scan_type == ScanType::Udp && !ports.tcp.is_empty() {
        return Err(usage(format!(
            "TCP ports (T:) given for -sU: add -sS (or another TCP scan type) for TCP ports ({})",
            ports.canonical()
        )));
    }
    if ports.is_empty() && scan_type != ScanType::Ping {
        return Err(usage(format!(
            "-p {}: no {} ports in it: give ports of the protocols scanned (T: for TCP, U: for UDP)",
            args.ports.as_deref().unwrap_or_default(),
            if scan_type == ScanType::Udp { "UDP" } else { "TCP" }
        )));
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
    let max_rate_mpps = match &args.max_rate {
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
        Some(s) => {
            parse_shard(&crate::cmd::merge::shard_arg(s)?).map_err(|e| usage(e.to_string()))?
        }
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
    let (backend_flag, interface, xdp) = crate::cmd::xdp::ScanFlags {
        xdp: args.xdp.as_deref(),
        backend: args.backend,
        interface: args.interface.as_deref(),
        mode: args.xdp_mode,
        zero_copy: args.zero_copy,
        queues: args.xdp_queues,
    }
    .apply(scan_type.is_raw())?;
    let backend = match (scan_type.is_raw(), backend_flag) {
        (true, None | Some(BackendArg::Packet)) => BackendKind::Packet,
        (true, Some(BackendArg::Xdp)) => BackendKind::Xdp,
        (true, Some(BackendArg::Connect)) => {
            return Err(usage(format!(
                "--backend connect is the socket path of -sT and -sU; {} uses packet or xdp",
                scan_type.flag()
            )))
        }
        (_, None | Some(BackendArg::Connect)) => BackendKind::Connect,
        (_, Some(b)) => {
            return Err(usage(format!(
                "--backend {} applies to the raw scans only (-sS -sF -sN -sX -sA -sW -sM, with -sU); -sT and -sU alone use io_uring sockets",
                if b == BackendArg::Xdp {
                    "xdp"
                } else {
                    "packet"
                }
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
    // connect / UDP / service detection settings (prtip_engine::connect::run::Tuning)
    if args.max_parallelism == Some(0) {
        return Err(usage("bad --max-parallelism 0: give at least 1"));
    }
    let positive_ms = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<u64>> {
        v.as_ref()
            .map(|t| {
                pacing::parse_duration_ms(t)
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        usage(format!("bad {flag} \"{t}\": give a time such as 500ms, 2s"))
                    })
            })
            .transpose()
    };
    if let Some(i) = args.version_intensity.filter(|i| *i > 9) {
        return Err(usage(format!("bad --version-intensity {i}: give 0..9")));
    }
    let sockets = SocketSettings {
        max_parallelism: args.max_parallelism,
        connect_timeout_ms: positive_ms("--connect-timeout", &args.connect_timeout)?,
        version_intensity: args.version_intensity,
        version_wait_ms: positive_ms("--version-wait", &args.version_wait)?,
    };
    let mut spec = ScanSpec {
        targets,
        resolved,
        excludes,
        ports: discovery.unwrap_or_else(|| ports.canonical()),
        scan_type,
        service_detection,
        rate_mpps,
        max_rate_mpps,
        timing,
        retry_gap_ms: Some(t.retry_gap_ms.min(wait_ms.max(1))),
        seed: args.seed.unwrap_or_else(random_seed),
        shard_index,
        shard_count,
        backend,
        xdp,
        sockets,
        interface,
        source,
        router_mac,
        max_retries: args.max_retries.unwrap_or(if scan_type.is_raw() {
            pacing::raw_max_retries(timing)
        } else {
            t.max_retries
        }),
        wait_ms,
        checkpoint_every_ms,
        checkpoint_every_probes: args.checkpoint_every.unwrap_or(0),
        outputs,
        filter: scan_filter(args),
        service_probes: args.service_probes.clone(),
        probe: Default::default(),
        walk_from: 0,
        merged_from: Vec::new(),
        discovery: discover_first,
    };
    super::limits::apply(args, &mut spec)?;
    // Validate the whole plan now (index space size, IPv6 with -sS, ...).
    ScanPlan::new(&spec).map_err(|e| usage(e.to_string()))?;
    Ok(spec)
}

/// The probes of the `-P` options: for a `-sn` scan its probe list (`default`:
/// the session picks nmap's, by the route) as the first value; for a port
/// scan the second, the probes of the discovery it runs first (empty without
/// `-P` options: a port scan pings first only when asked, `-Pn` is its
/// default). Refuses what cannot be honoured.
fn discovery_probes(
    args: &Args,
    scan_type: ScanType,
    service_detection: bool,
) -> anyhow::Result<(Option<String>, String)> {
    let no_ping = args.ping.iter().any(|p| p == "n");
    let asked: Vec<&String> = args.ping.iter().filter(|p| *p != "n").collect();
    let list = |asked: &[&String]| -> anyhow::Result<String> {
        let mut list = Vec::new();
        for p in asked {
            for d in DiscoveryProbe::parse_option(&format!("P{p}")).map_err(usage)? {
                if !list.contains(&d) {
                    list.push(d);
                }
            }
        }
        Ok(DiscoveryProbe::list_string(&list))
    };
    if scan_type != ScanType::Ping {
        if asked.is_empty() {
            return Ok((None, String::new()));
        }
        if no_ping {
            return Err(usage(format!(
                "-Pn with -P{}: -Pn skips host discovery, -P{} asks for it; drop one of them",
                asked[0], asked[0]
            )));
        }
        return Ok((None, list(&asked)?));
    }
    if service_detection {
        return Err(usage(
            "-sn -sV: -sn scans no ports, so there are no services to detect",
        ));
    }
    if no_ping {
        return Err(usage(
            "-sn -Pn: no host discovery and no port scan leaves nothing to send; drop one of them",
        ));
    }
    if asked.is_empty() {
        return Ok((
            Some(prtip_engine::probe::DEFAULT_DISCOVERY.to_string()),
            String::new(),
        ));
    }
    Ok((Some(list(&asked)?), String::new()))
}

/// The filter expression `prtip export --open` and `prtip scan --open` add:
/// nmap's "open (or possibly open)" ports.
pub const OPEN_ONLY: &str = "state open or state open|filtered";

/// `--filter` and `--open` as one expression (the spec keeps one filter: the
/// outputs, the printed report and a resume all apply it).
pub fn with_open(filter: Option<&str>, open: bool) -> Option<String> {
    match (filter, open) {
        (Some(f), true) => Some(format!("({f}) and ({OPEN_ONLY})")),
        (None, true) => Some(OPEN_ONLY.to_string()),
        (f, false) => f.map(str::to_string),
    }
}

fn scan_filter(args: &Args) -> Option<String> {
    with_open(args.filter.as_deref(), args.open)
}

/// What `drive` prints besides the results, from `--quiet`, `-v`, `-d` and
/// `--stats-every` (checked here, before anything is sent or created).
pub fn show_of(args: &Args) -> anyhow::Result<super::Show> {
    let stats_every = match &args.stats_every {
        Some(t) => Some(
            pacing::parse_duration_ms(t)
                .filter(|ms| *ms > 0)
                .map(std::time::Duration::from_millis)
                .ok_or_else(|| {
                    usage(format!(
                        "bad --stats-every \"{t}\": give seconds (10) or a duration (500ms, 2s, 1m)"
                    ))
                })?,
        ),
        None => None,
    };
    Ok(super::Show {
        quiet: args.quiet,
        verbose: args.verbose,
        debug: args.debug,
        stats_every,
    })
}

/// The scan types asked for by the `-s` flags, nmap's way: each flag holds one
/// or more letters (`-sS -sV` = `-sSV`, `-sS -sU` = `-sSU`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanKinds {
    /// The TCP scan (`S T F N X A W M`), if one was given.
    pub tcp: Option<ScanType>,
    /// `U`: UDP too.
    pub udp: bool,
    /// `V`: service detection.
    pub version: bool,
    /// `n`: host discovery only (`-sn`).
    pub ping: bool,
}

impl ScanKinds {
    /// Read the values of every `-s` flag (`["S", "UV"]`).
    pub fn of(flags: &[String]) -> anyhow::Result<ScanKinds> {
        let mut k = ScanKinds::default();
        for f in flags {
            if f.is_empty() {
                return Err(usage(format!("-s needs a scan type: {TYPES}")));
            }
            for c in f.chars() {
                match c {
                    'n' => k.ping = true,
                    'V' => k.version = true,
                    'U' => k.udp = true,
                    c => {
                        let t = ScanType::from_letter(c).ok_or_else(|| {
                            usage(format!(
                                "unknown scan type -s{c}{}: {TYPES}",
                                if f.len() > 1 {
                                    format!(" (in -s{f})")
                                } else {
                                    String::new()
                                }
                            ))
                        })?;
                        if k.tcp.is_some_and(|p| p != t) {
                            return Err(usage(format!(
                                "{} given together with {}: prtip runs one TCP scan type per scan (with -sU and -sV if asked)",
                                t.flag(),
                                k.tcp.map_or("", ScanType::flag)
                            )));
                        }
                        k.tcp = Some(t);
                    }
                }
            }
        }
        if k.ping {
            if let Some(t) = k.tcp {
                return Err(usage(format!(
                    "-sn given together with {}: -sn is a ping sweep without a port scan; run one of them",
                    t.flag()
                )));
            }
            if k.udp {
                return Err(usage(
                    "-sn given together with -sU: -sn is a ping sweep without a port scan; run one of them (-PU pings UDP ports)",
                ));
            }
        }
        if k.udp && k.tcp == Some(ScanType::Connect) {
            return Err(usage(
                "-sT given together with -sU: prtip's socket scans run one protocol at a time; \
                 use -sS -sU (raw, both in one scan) or run -sT and -sU as two scans",
            ));
        }
        Ok(k)
    }

    /// The spec's scan type: the TCP scan (with UDP ports too under `-sU`),
    /// `-sU` alone, or `-sS` when none was given.
    pub fn scan_type(&self) -> ScanType {
        if self.ping {
            return ScanType::Ping;
        }
        match (self.tcp, self.udp) {
            (Some(t), _) => t,
            (None, true) => ScanType::Udp,
            (None, false) => ScanType::Syn,
        }
    }

    /// The protocols whose ports are scanned (TCP first).
    pub fn protocols(&self) -> Vec<Protocol> {
        let mut v = Vec::new();
        if self.tcp.is_some() || !self.udp {
            v.push(Protocol::Tcp);
        }
        if self.udp {
            v.push(Protocol::Udp);
        }
        v
    }
}

/// nmap's scan-type letters, for error messages.
const TYPES: &str = "use -sS (SYN), -sT (connect), -sU (UDP), -sF (FIN), -sN (NULL), -sX (Xmas), \
                     -sA (ACK), -sW (Window), -sM (Maimon), -sV (service detection), -sn (host \
                     discovery); letters combine as in nmap (-sSV, -sSU)";

/// `-p` for the protocols scanned: ports without a prefix go to each of
/// `protos` (nmap: `-sS -sU -p 53` scans TCP and UDP port 53); `T:`/`U:`
/// items to their protocol.
pub fn parse_ports(
    spec: &str,
    protos: &[Protocol],
) -> Result<PortList, prtip_engine::ports::PortError> {
    let mut out = PortList::default();
    for &p in protos {
        let l = PortList::parse(spec, p)?;
        match p {
            Protocol::Tcp => out.tcp = l.tcp,
            Protocol::Udp => out.udp = l.udp,
            Protocol::Host => {}
        }
    }
    if !protos.contains(&Protocol::Udp) {
        out.udp = PortList::parse(spec, Protocol::Tcp)?.udp;
    }
    if !protos.contains(&Protocol::Tcp) {
        out.tcp = PortList::parse(spec, Protocol::Udp)?.tcp;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(flags: &[&str]) -> anyhow::Result<ScanKinds> {
        ScanKinds::of(&flags.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn compact_forms_mean_what_their_letters_mean_apart() {
        for (a, b) in [
            (&["SV"][..], &["S", "V"][..]),
            (&["UV"], &["U", "V"]),
            (&["SU"], &["S", "U"]),
            (&["US"], &["U", "S"]),
            (&["TV"], &["T", "V"]),
            (&["FUV"], &["F", "U", "V"]),
        ] {
            assert_eq!(kinds(a).unwrap(), kinds(b).unwrap(), "{a:?}");
        }
        let k = kinds(&["SUV"]).unwrap();
        assert_eq!(
            (k.scan_type(), k.udp, k.version),
            (ScanType::Syn, true, true)
        );
        assert_eq!(k.protocols(), vec![Protocol::Tcp, Protocol::Udp]);
        assert_eq!(kinds(&["U"]).unwrap().scan_type(), ScanType::Udp);
        assert_eq!(kinds(&["U"]).unwrap().protocols(), vec![Protocol::Udp]);
        assert_eq!(kinds(&[]).unwrap().scan_type(), ScanType::Syn);
        assert_eq!(kinds(&["V"]).unwrap().scan_type(), ScanType::Syn);
        for (l, t) in [
            ("F", ScanType::Fin),
            ("N", ScanType::Null),
            ("X", ScanType::Xmas),
            ("A", ScanType::Ack),
            ("W", ScanType::Window),
            ("M", ScanType::Maimon),
        ] {
            assert_eq!(kinds(&[l]).unwrap().scan_type(), t);
            assert_eq!(t.flag(), format!("-s{l}"));
        }
        assert!(kinds(&["SS"]).is_ok(), "the same type twice is one type");
        for bad in [&["SA"][..], &["S", "F"], &["TU"], &["Z"], &[""]] {
            assert!(kinds(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn with_dash_6_a_name_resolves_to_its_ipv6_address() {
        use std::net::ToSocketAddrs;
        let args = |ipv6| Args {
            targets: vec!["localhost".into()],
            ports: Some("80".into()),
            scan: vec!["T".into()],
            ipv6,
            ..Args::default()
        };
        let system: Vec<std::net::IpAddr> = ("localhost", 0)
            .to_socket_addrs()
            .unwrap()
            .map(|s| s.ip())
            .collect();
        match system.iter().find(|a| a.is_ipv6()) {
            Some(v6) => {
                let spec = build_spec(&args(true)).unwrap();
                assert_eq!(spec.resolved[0].addr.ip(), *v6);
            }
            None => {
                let e = build_spec(&args(true)).unwrap_err().to_string();
                assert!(e.contains("has IPv4 addresses only"), "{e}");
            }
        }
        // Without -6 a name takes its IPv4 address when it has one.
        let spec = build_spec(&args(false)).unwrap();
        let want = system.iter().find(|a| a.is_ipv4()).unwrap_or(&system[0]);
        assert_eq!(spec.resolved[0].addr.ip(), *want);
    }

    #[test]
    fn unprefixed_ports_go_to_every_protocol_scanned() {
        let both = [Protocol::Tcp, Protocol::Udp];
        let l = parse_ports("22,53", &both).unwrap();
        assert_eq!((l.tcp, l.udp), (vec![22, 53], vec![22, 53]));
        let l = parse_ports("22,U:53,T:80", &both).unwrap();
        assert_eq!((l.tcp, l.udp), (vec![22, 80], vec![22, 53]));
        let l = parse_ports("22,U:53", &[Protocol::Tcp]).unwrap();
        assert_eq!((l.tcp, l.udp), (vec![22], vec![53]));
        let l = parse_ports("53,T:80", &[Protocol::Udp]).unwrap();
        assert_eq!((l.tcp, l.udp), (vec![80], vec![53]));
    }
}
