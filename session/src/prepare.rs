//! Preparing one scan: spec → plan, privileges, route, backend, probe database,
//! history row and log writer. Everything that can be refused is checked before
//! the first file is written: a refused session leaves nothing behind.

use crate::error::usage;
use crate::privilege::{has_capability, privilege_message, CAP_NET_RAW};
use anyhow::{anyhow, Context};
use prtip_engine::backend::packet::PendingRx;
use prtip_engine::backend::BackendPair;
use prtip_engine::governor::GovernorSettings;
use prtip_engine::probe::{
    discovery_modules, DiscoveryProbe, ProbeSet, TcpFlagScan, DEFAULT_DISCOVERY,
};
use prtip_engine::route;
use prtip_engine::scan::{self as engine_scan, ScanPlan};
use prtip_engine::wire::EthernetAddress;
use prtip_store::event::{now_us, Addr, BackendKind, Counters, ScanSpec, ScanType};
use prtip_store::{HistoryIndex, HistoryRow, LogOptions, LogWriter, ScanStatus};
use std::path::{Path, PathBuf};

/// Where a session keeps its files.
#[derive(Clone, Debug)]
pub struct Home {
    /// The history index file (`~/.prtip/history.redb`).
    pub history: PathBuf,
    /// The directory that holds one directory per scan log (`~/.prtip/scans`).
    pub scans: PathBuf,
}

/// How a session starts.
pub enum Start {
    /// A new scan (a new history row and log directory).
    Fresh {
        /// Command line as typed (goes into `ScanStarted`).
        command_line: Vec<String>,
    },
    /// Continue a scan from its log; made by [`crate::resume_point`].
    Resume(Resume),
}

/// Where a resumed scan continues: made by [`crate::resume_point`] from the log.
pub struct Resume {
    /// The history index the scan was found in (opened for reading: it is opened
    /// for writing at its first write, off the path to the first probe).
    pub history: HistoryIndex,
    /// History id.
    pub id: u64,
    /// The AF_PACKET receiver's socket and ring, being made on a thread since the
    /// process started (used by a `-sS` scan on the AF_PACKET backend, closed
    /// otherwise).
    pub rx: Option<PendingRx>,
    /// Log directory.
    pub dir: PathBuf,
    /// Walk position of the last durable checkpoint.
    pub from: u64,
    /// Counters at that checkpoint (open/closed/replies are recounted from the log).
    pub counters: Counters,
}

/// A prepared scan: its plan, backend, probe database, history row and open log.
/// [`Session::run`] runs it.
pub struct Session {
    pub(crate) spec: ScanSpec,
    pub(crate) plan: ScanPlan,
    pub(crate) io: Option<BackendPair>,
    pub(crate) db: Option<prtip_services::ProbeDb>,
    pub(crate) history: HistoryIndex,
    pub(crate) id: u64,
    pub(crate) dir: PathBuf,
    pub(crate) writer: LogWriter,
    pub(crate) resume_from: Option<u64>,
    pub(crate) counters: Counters,
    pub(crate) command_line: Vec<String>,
    pub(crate) notes: Vec<String>,
    /// A scan that discovers hosts first: the probe modules of its two walks
    /// (the backend sends from both; each walk classifies with its own).
    pub(crate) phases: Option<crate::phases::PhaseProbes>,
}

impl Session {
    /// History id of the scan.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The scan's log directory (it exists, and this session holds its writer lock).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The spec, with the route filled in for `-sS`.
    pub fn spec(&self) -> &ScanSpec {
        &self.spec
    }
    /// The plan (targets, ports, walk); for a scan that discovers hosts first,
    /// its first walk's (the ping sweep of every target).
    pub fn plan(&self) -> &ScanPlan {
        &self.plan
    }
    /// Walk position a resumed scan continues from (`None`: a fresh scan).
    pub fn resume_from(&self) -> Option<u64> {
        self.resume_from
    }
    /// How the rate is governed (raw scans; the cli's `--fixed-rate` and
    /// `--min-rate`). A resumed scan keeps the first run's settings and starts
    /// from the rate it had learned: call this for fresh scans only.
    pub fn set_governor(&mut self, settings: GovernorSettings) {
        if let Some(p) = &mut self.phases {
            // The sweep keeps its fixed rate; the port walk is governed.
            p.governor = settings;
        } else if self.spec.scan_type.is_raw() {
            self.plan.timing.governor = settings;
        }
    }

    /// What preparing noticed and the user should hear (backend fallbacks,
    /// skipped probe rules); taken, so each is told once.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
}

/// Prepare a scan: check the spec, the privileges and the route, open the
/// backend and the probe database, then (only then) write the history row and
/// create (or reopen) the log.
pub fn prepare(mut spec: ScanSpec, start: Start, home: &Home) -> anyhow::Result<Session> {
    let mut plan = ScanPlan::new(&spec).map_err(|e| usage(e.to_string()))?;
    if spec.discovers_first() {
        crate::phases::check(&spec)?;
    }
    let (command_line, mut resume) = match start {
        Start::Fresh { command_line } => (command_line, None),
        Start::Resume(r) => (Vec::new(), Some(r)),
    };
    let mut early_rx = resume.as_mut().and_then(|r| r.rx.take());
    let mut notes = Vec::new();
    // A connect scan needs no privilege: drop it before any thread starts
    // (capabilities are per thread), keeping root's access to files only.
    if matches!(spec.scan_type, ScanType::Connect | ScanType::Udp) {
        crate::privilege::drop_network_privileges()
            .context("dropping the capabilities a connect scan does not need")?;
    }
    // -sV, -sU and the UDP ports of a raw scan take their probes from it.
    let db = probe_db(&spec, &plan, &mut notes)?;
    // Privilege and route before anything is written.
    let mut io = None;
    let mut phases = None;
    if spec.scan_type.is_raw() {
        if !has_capability(CAP_NET_RAW) {
            return Err(usage(privilege_message()));
        }
        let r = if spec.scan_type == ScanType::Ping {
            discovery_route(&mut spec, &plan)?
        } else {
            discover_route(&mut spec, &plan)?
        };
        plan = ScanPlan::new(&spec).map_err(|e| usage(e.to_string()))?;
        let port_probes = (!plan.is_discovery()).then(|| {
            engine_scan::probe_set(
                &r,
                TcpFlagScan::of(spec.scan_type),
                &|port| {
                    db.as_ref()
                        .and_then(|d| d.udp_probe(port))
                        .map(|p| p.payload.clone())
                },
                &plan.ports.udp,
                &spec.probe,
            )
        });
        if spec.discovers_first() {
            // The first walk is the sweep: the session's plan, and the
            // backend's probes are both walks'.
            plan = ScanPlan::new(&spec.discovery_walk()).map_err(|e| usage(e.to_string()))?;
        }
        // The rate governor is on by default for port scans
        // ([`Session::set_governor`] changes it; a resume takes the first run's
        // settings from the log, below), and the scan holds while the uplink
        // fails. A -sn sweep keeps its fixed rate: its answers fold per host, so
        // a re-probe's answer cannot be told from the host's first.
        if !plan.is_discovery() {
            plan.timing.governor = GovernorSettings::ADAPTIVE;
        }
        // (Its ARP/NDP socket is opened now: the scan drops its capabilities
        // once its sockets are open.)
        plan.uplink = Some(
            prtip_engine::uplink::Uplink::of(&r)
                .opened()
                .with_context(|| {
                    format!("opening the uplink watch's ARP/NDP socket on {}", r.iface)
                })?,
        );
        let probes = if plan.is_discovery() {
            let src6 = match r.src_ip {
                std::net::IpAddr::V6(a) => Some(a),
                std::net::IpAddr::V4(_) => None,
            };
            ProbeSet::of(discovery_modules(
                &plan.discovery,
                &engine_scan::frame_params_with(&r, &spec.probe),
                src6,
            ))
            .with_source_port(spec.probe.source_port)
        } else {
            port_probes.clone().expect("a port scan's probes")
        };
        let probes = match port_probes {
            Some(port) if spec.discovers_first() => {
                let p = crate::phases::PhaseProbes::new(probes, port, spec.probe.source_port);
                let both = p.both();
                phases = Some(p);
                both
            }
            _ => probes,
        };
        io = Some(match spec.backend {
            BackendKind::Xdp => {
                let opts = crate::xdp::options(&spec, &probes)
                    .map_err(|e| crate::xdp::open_error(&r.iface, e))?;
                let (mut pair, xdp_notes) = prtip_xdp::open_pair(&r.iface, &probes, &opts)
                    .map_err(|e| crate::xdp::open_error(&r.iface, e))?;
                notes.extend(xdp_notes);
                if plan.discovery.contains(&DiscoveryProbe::Arp) {
                    // ARP and NDP answers reach the kernel, not the AF_XDP
                    // socket: an AF_PACKET socket reads them (crate::xdp::LinkRx).
                    let link = engine_scan::open_packet_backend_prepared(&r, probes.clone(), None)
                        .map_err(|e| {
                            anyhow!(
                                "opening the AF_PACKET socket for ARP/NDP answers on {}: {e}",
                                r.iface
                            )
                        })?;
                    pair.rx = Box::new(crate::xdp::LinkRx {
                        xdp: pair.rx,
                        link: link.rx,
                    });
                }
                pair
            }
            _ => engine_scan::open_packet_backend_prepared(
                &r,
                probes,
                early_rx.take().and_then(|p| p.take()),
            )
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::EPERM) {
                    usage(privilege_message())
                } else {
                    anyhow!("opening AF_PACKET sockets on {}: {e}", r.iface)
                }
            })?,
        });
    }
    // Not used (another backend or scan type): closed on a thread of its own.
    drop(early_rx);
    // A raw scan's sockets are open and its programs attached: from here on it
    // needs no capability (see crate::privilege), so it keeps none effective,
    // before the log's threads start.
    if io.is_some() {
        crate::privilege::after_setup()
            .context("dropping the capabilities the scan no longer needs")?;
    }

    // Now write: history row and scan directory.
    let session = match resume {
        None => {
            // The home may belong to the user who ran sudo: reach it with the file
            // capabilities; the scan directory made here is then this process's own.
            let (history, (id, dir)) = crate::privilege::with_file_access(|| {
                let history = HistoryIndex::open(&home.history).with_context(|| {
                    format!("opening the history index {}", home.history.display())
                })?;
                let made = history
                    .new_scan_dir(&home.scans)
                    .context("creating the scan directory")?;
                anyhow::Ok((history, made))
            })?;
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
            history
                .upsert(&HistoryRow {
                    id,
                    started_us: now_us(),
                    ended_us: None,
                    status: ScanStatus::Running,
                    target_spec: spec.targets.join(" "),
                    config_json: prtip_store::spec_json(&spec),
                    log_path: dir.clone(),
                    total_targets: plan.total_targets(),
                    // -sT/-sU retry inline: one walk position per port (as in their ScanStarted)
                    total_probes: if spec.scan_type.is_raw() {
                        plan.total_probes()
                    } else {
                        plan.walk.span()
                    },
                    probes_done: 0,
                    ports_discovered: 0,
                    hosts_up: None,
                    checkpoints: 0,
                })
                .context("writing the scan's history row")?;
            Session {
                spec,
                plan,
                io,
                db,
                history,
                id,
                dir,
                writer,
                resume_from: None,
                counters: Counters::default(),
                command_line,
                notes,
                phases,
            }
        }
        Some(r) => {
            if spec.scan_type.is_raw() {
                match (learned(&r.dir)?, phases.as_mut()) {
                    ((Some(g), true), Some(p)) => p.governor = g,
                    ((Some(g), _), _) => plan.timing.governor = g,
                    _ => {}
                }
            }
            let (writer, _report) = LogWriter::open_append(&r.dir, LogOptions::default())
                .with_context(|| format!("reopening the scan log in {}", r.dir.display()))?;
            Session {
                spec,
                plan,
                io,
                db,
                history: r.history,
                id: r.id,
                dir: r.dir,
                writer,
                resume_from: Some(r.from),
                counters: r.counters,
                command_line,
                notes,
                phases,
            }
        }
    };
    Ok(session)
}

/// The governor settings a resumed raw scan continues with: the first run's
/// (its first `Governor` event), starting at the last rate the log recorded.
/// `None` for a log without Governor events (a fixed rate, or an older prtip).
pub fn learned_governor(dir: &Path) -> anyhow::Result<Option<GovernorSettings>> {
    Ok(learned(dir)?.0)
}

/// [`learned_governor`] of the walk the log stopped in, and whether that is
/// the port walk of a scan that discovers hosts first (the Governor events
/// after its `PortPhase`; the sweep's before it).
fn learned(dir: &Path) -> anyhow::Result<(Option<GovernorSettings>, bool)> {
    let reader = prtip_store::LogReader::open(dir)
        .with_context(|| format!("opening the scan log {}", dir.display()))?;
    let mut first: Option<GovernorSettings> = None;
    let mut last = 0;
    let mut port_walk = false;
    for e in reader.iter() {
        let e = e?;
        if let prtip_store::EventRef::PortPhase(_) = e {
            (first, last, port_walk) = (None, 0, true);
        }
        if let prtip_store::EventRef::Governor(g) = e {
            if g.net.is_none() {
                first.get_or_insert(GovernorSettings {
                    adaptive: g.adaptive,
                    floor_mpps: g.floor_mpps.to_native(),
                    start_mpps: None,
                });
                last = g.rate_mpps.to_native();
            }
        }
    }
    let settings = first.map(|mut s| {
        if s.adaptive && last > 0 {
            s.start_mpps = Some(last);
        }
        s
    });
    Ok((settings, port_walk))
}

/// The probe database of `-sV`, `-sU` and a raw scan's UDP ports (their
/// payloads): the built-in one, then the user's `--service-probes` file (its
/// rules are tried after ours). `None` when the scan needs none.
fn probe_db(
    spec: &ScanSpec,
    plan: &ScanPlan,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<prtip_services::ProbeDb>> {
    if !(spec.service_detection || spec.scan_type == ScanType::Udp || !plan.ports.udp.is_empty()) {
        return Ok(None);
    }
    let mut db = prtip_services::ProbeDb::builtin();
    if let Some(f) = &spec.service_probes {
        let user = prtip_services::ProbeDb::load_file(Path::new(f))
            .map_err(|e| usage(format!("--service-probes {f}: {e}")))?;
        if let Some(first) = user.skipped.first() {
            notes.push(format!(
                "--service-probes {f}: {} rule(s) use regex features prtip lacks and are skipped (first at line {}: {})",
                user.skipped.len(),
                first.line,
                first.why
            ));
        }
        db.merge(user);
    }
    Ok(Some(db))
}

/// The route of a `-sn` scan, and its probes when no `-P` option chose them (the
/// spec's list is `default`): as nmap does as root, ARP (NDP for IPv6) when the
/// targets are on the local link, else ICMP echo, TCP SYN to 443, TCP ACK to 80
/// and ICMP timestamp. The spec stores the list chosen. ARP and NDP frames go to
/// the broadcast / solicited-node address, so a scan of only those needs no
/// next-hop MAC (the first target of a subnet may well be absent).
fn discovery_route(spec: &mut ScanSpec, plan: &ScanPlan) -> anyhow::Result<route::Route> {
    let first = plan.targets.get(0).expect("a plan has a target");
    let link_only = |s: &ScanSpec| {
        DiscoveryProbe::parse_list(&s.ports).is_ok_and(|l| l == [DiscoveryProbe::Arp])
    };
    if spec.router_mac.is_none() && (spec.ports == DEFAULT_DISCOVERY || link_only(spec)) {
        let mut probe = spec.clone();
        probe.router_mac = Some(EthernetAddress::BROADCAST.0);
        let r = discover_route(&mut probe, plan)?;
        let on_link = r.resolves && r.next_hop == first;
        if on_link {
            probe.ports = DiscoveryProbe::list_string(&[DiscoveryProbe::Arp]);
            *spec = probe;
            return Ok(r);
        }
        if link_only(spec) {
            return Err(usage(format!(
                "-PR asks the link with ARP/NDP, but {first} is not on a local link (its route goes through {}): use -PE, -PS or -PA for routed targets",
                r.next_hop
            )));
        }
    }
    if spec.ports == DEFAULT_DISCOVERY {
        spec.ports = DiscoveryProbe::list_string(&DiscoveryProbe::DEFAULT_MIX);
    }
    discover_route(spec, plan)
}

/// Fill interface, source and router MAC of a raw (-sS, -sn) spec from the
/// kernel's tables (given values win).
pub fn discover_route(spec: &mut ScanSpec, plan: &ScanPlan) -> anyhow::Result<route::Route> {
    let first = plan.targets.get(0).expect("a plan has a target");
    let r = route::discover(
        first,
        spec.interface.as_deref(),
        spec.source.map(|a| a.ip()),
        spec.router_mac.map(EthernetAddress),
    )
    .map_err(|e| usage(e.to_string()))?;
    spec.interface = Some(r.iface.clone());
    spec.source = Some(Addr::from(r.src_ip));
    spec.router_mac = Some(r.dst_mac.0);
    Ok(r)
}
