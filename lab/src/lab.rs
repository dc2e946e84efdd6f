//! Building, inspecting and removing a lab: the namespaces, the veth pair, the
//! addresses, routes and neighbour entries, the target's sysctls, the responder
//! process and the run directory (`<run_dir>/<name>/`: `config.json`,
//! `responder.pid`, `responder.log`, `ready`).
//!
//! Everything is created inside the lab's own namespaces; nothing is ever added to
//! the caller's namespace, and `down` removes only what a lab of that
//! configuration made.

use crate::config::{describe_ports, format_ports, LabConfig, Owner, Proto};
use crate::error::LabError;
use crate::netns::{self, ip, ns_exists};
use crate::privilege::require_lab_privileges;
use crate::probe::{tcp_connect, TcpProbe};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `up` waits for the responder to bind its sockets.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A lab that is up. Dropping it leaves the lab up (the CLI's `lab up` wants
/// that); use [`LabGuard`] for a lab that must go away with its owner.
#[derive(Debug)]
pub struct Lab {
    config: LabConfig,
    responder_pid: u32,
}

/// What `down` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Namespaces deleted.
    pub removed_namespaces: Vec<String>,
    /// Responder and helper processes stopped.
    pub stopped_pids: Vec<u32>,
    /// Other processes that were still inside the namespaces (not killed).
    pub leftover_pids: Vec<u32>,
    /// Whether the run directory was removed.
    pub removed_run_dir: bool,
}

impl fmt::Display for DownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.removed_namespaces.is_empty()
            && self.stopped_pids.is_empty()
            && !self.removed_run_dir
        {
            return write!(f, "nothing to remove (the lab was not up)");
        }
        write!(f, "removed")?;
        if !self.removed_namespaces.is_empty() {
            write!(f, " namespaces {}", self.removed_namespaces.join(", "))?;
        }
        if !self.stopped_pids.is_empty() {
            write!(f, "; stopped pids {:?}", self.stopped_pids)?;
        }
        if self.removed_run_dir {
            write!(f, "; run directory")?;
        }
        if !self.leftover_pids.is_empty() {
            write!(
                f,
                "; note: processes {:?} were still inside the namespaces (not killed)",
                self.leftover_pids
            )?;
        }
        Ok(())
    }
}

/// Files of a lab's run directory.
fn config_file(cfg: &LabConfig) -> PathBuf {
    cfg.lab_dir().join("config.json")
}
fn pid_file(cfg: &LabConfig) -> PathBuf {
    cfg.lab_dir().join("responder.pid")
}
fn ready_file(cfg: &LabConfig) -> PathBuf {
    cfg.lab_dir().join("ready")
}
/// The responder's log file (`<run_dir>/<name>/responder.log`).
pub fn log_file(cfg: &LabConfig) -> PathBuf {
    cfg.lab_dir().join("responder.log")
}

/// A process that belongs to a lab besides its responder (the XDP holder of
/// `prtip lab up --responder xdp`, for example). Registered with
/// [`Lab::adopt_helper`]; [`down`] stops it (SIGTERM, then SIGKILL after 5 s)
/// before it deletes the namespaces, and [`status`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Helper {
    /// Short name, unique within the lab (`xdp-holder`): the file
    /// `<run_dir>/<name>/helpers/<role>.json`.
    pub role: String,
    /// Its process id.
    pub pid: u32,
    /// A string its command line contains; `down` signals the pid only while it
    /// does (so a recycled pid is never killed).
    pub marker: String,
    /// One line for `status` (what it runs, where).
    pub note: String,
}

fn helpers_dir(c: &LabConfig) -> PathBuf {
    c.lab_dir().join("helpers")
}

/// The helper processes registered for a lab.
pub fn helpers(c: &LabConfig) -> Vec<Helper> {
    let mut v: Vec<Helper> = fs::read_dir(helpers_dir(c))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    v.sort_by(|a, b| a.role.cmp(&b.role));
    v
}

fn helper_alive(h: &Helper) -> bool {
    alive(h.pid) && cmdline(h.pid).is_some_and(|a| a.iter().any(|x| x.contains(&h.marker)))
}

fn stop_helpers(c: &LabConfig) -> Vec<u32> {
    let mut stopped = Vec::new();
    for h in helpers(c) {
        if helper_alive(&h) {
            stop_pid(h.pid, Duration::from_secs(5));
            stopped.push(h.pid);
        }
    }
    let _ = fs::remove_dir_all(helpers_dir(c));
    stopped
}

/// The configuration a running lab was brought up with (`<run_dir>/<name>/config.json`),
/// if that lab's run directory exists.
pub fn load_config(run_dir: &Path, name: &str) -> Result<Option<LabConfig>, LabError> {
    let path = run_dir.join(name).join("config.json");
    match fs::read_to_string(&path) {
        Ok(s) => serde_json::from_str(&s).map(Some).map_err(|e| {
            LabError::Setup(format!(
                "{} is not a lab configuration ({e}); remove it or run `prtip lab down --name {name}`",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LabError::io(format!("reading {}", path.display()), e)),
    }
}

/// Names of the labs that have a run directory under `run_dir`.
pub fn list_labs(run_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("config.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// State and start time of process `pid` (`/proc/<pid>/stat` fields 3 and 22).
fn proc_stat(pid: u32) -> Option<(String, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.first()?.to_string(), f.get(19)?.parse().ok()?))
}

/// This process as a lab owner.
pub fn current_owner() -> Owner {
    let pid = std::process::id();
    Owner {
        pid,
        start_ticks: proc_stat(pid).map(|(_, t)| t).unwrap_or(0),
    }
}

/// Whether the owner process still runs (same pid and start time, not a zombie).
pub fn owner_alive(o: &Owner) -> bool {
    proc_stat(o.pid).is_some_and(|(state, t)| t == o.start_ticks && state != "Z" && state != "X")
}

/// Labs under `run_dir` whose owner (see [`LabConfig::owner`]) is gone.
pub fn stale_labs(run_dir: &Path) -> Vec<LabConfig> {
    list_labs(run_dir)
        .into_iter()
        .filter_map(|n| load_config(run_dir, &n).ok().flatten())
        .filter(|c| c.owner.as_ref().is_some_and(|o| !owner_alive(o)))
        .collect()
}

/// Find the `prtip` binary that runs the responder (see [`LabConfig::responder_exe`]).
pub fn responder_exe(cfg: &LabConfig) -> Result<PathBuf, LabError> {
    if let Some(p) = &cfg.responder_exe {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("PRTIP_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().map_err(|e| LabError::io("finding this executable", e))?;
    if me.file_name().is_some_and(|n| n == "prtip") {
        return Ok(me);
    }
    // cargo puts test binaries in target/<profile>/deps/ and prtip in target/<profile>/.
    for dir in me.ancestors().skip(1).take(2) {
        let cand = dir.join("prtip");
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(LabError::Setup(format!(
        "cannot find the prtip binary that runs the lab responder (looked next to {}); build it with `cargo build -p prtip` or set PRTIP_BIN",
        me.display()
    )))
}

impl Lab {
    /// Bring the lab up (idempotent: an existing lab of the same configuration is
    /// reconfigured and its responder restarted). Needs root. On failure a lab
    /// created by this call is removed again.
    pub fn up(cfg: &LabConfig) -> Result<Lab, LabError> {
        require_lab_privileges("up")?;
        cfg.validate()?;
        let exe = responder_exe(cfg)?;
        if !exe.is_file() {
            return Err(LabError::Setup(format!(
                "the responder binary {} does not exist; build it with `cargo build -p prtip` or set PRTIP_BIN",
                exe.display()
            )));
        }
        ip(&["-V"])?;
        let fresh = !ns_exists(&cfg.scan_ns) && !ns_exists(&cfg.tgt_ns);
        let result = (|| {
            stop_helpers(cfg);
            stop_responders(cfg)?;
            setup_network(cfg)?;
            verify_scanner_ns(cfg)?;
            let pid = start_responder(cfg, &exe)?;
            let lab = Lab {
                config: cfg.clone(),
                responder_pid: pid,
            };
            lab.self_check()?;
            Ok(lab)
        })();
        if result.is_err() && fresh {
            let _ = down(cfg);
        }
        result
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// Pid of the responder process (inside the target namespace).
    pub fn responder_pid(&self) -> u32 {
        self.responder_pid
    }

    /// Take the lab down (see [`down`]).
    pub fn down(self) -> Result<DownReport, LabError> {
        down(&self.config)
    }

    /// Register a helper process of this lab (see [`Helper`]). Refuses a pid that
    /// is not running or whose command line lacks `marker`.
    pub fn adopt_helper(&self, helper: &Helper) -> Result<(), LabError> {
        check_name("helper role", &helper.role)?;
        if !helper_alive(helper) {
            return Err(LabError::Setup(format!(
                "helper {} (pid {}) is not running or its command line lacks '{}'",
                helper.role, helper.pid, helper.marker
            )));
        }
        let dir = helpers_dir(&self.config);
        fs::create_dir_all(&dir)
            .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(format!("{}.json", helper.role));
        let json = serde_json::to_string_pretty(helper).expect("a Helper always serializes");
        fs::write(&path, json).map_err(|e| LabError::io(format!("writing {}", path.display()), e))
    }

    /// Run `f` on a thread inside the scanner namespace.
    pub fn in_scan_ns<T, F>(&self, f: F) -> Result<T, LabError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        netns::run_in_netns(&self.config.scan_ns, f)
    }

    /// Run `f` on a thread inside the target namespace.
    pub fn in_tgt_ns<T, F>(&self, f: F) -> Result<T, LabError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        netns::run_in_netns(&self.config.tgt_ns, f)
    }

    /// `ip netns exec <scan_ns> <program>`: a command that runs inside the scanner namespace.
    pub fn scan_command(&self, program: &str) -> Command {
        netns::ip_netns_exec(&self.config.scan_ns, program)
    }

    /// `ip netns exec <tgt_ns> <program>`: a command that runs inside the target namespace.
    pub fn tgt_command(&self, program: &str) -> Command {
        netns::ip_netns_exec(&self.config.tgt_ns, program)
    }

    /// Connect to the first address of the target network on the first open TCP
    /// port from the scanner namespace; fail unless it answers.
    fn self_check(&self) -> Result<(), LabError> {
        let c = &self.config;
        let Some(&port) = c.tcp_ports.first() else {
            return Ok(());
        };
        let addr = SocketAddrV4::new(c.target_net.nth(1).unwrap_or(c.target_net.addr()), port);
        match tcp_connect(&c.scan_ns, addr, Duration::from_secs(5))? {
            TcpProbe::Open { .. } => Ok(()),
            other => Err(LabError::Setup(format!(
                "self-check failed: {addr} did not answer from namespace {} ({other:?}); see {}",
                c.scan_ns,
                log_file(c).display()
            ))),
        }
    }
}

pub(crate) fn setup_network(c: &LabConfig) -> Result<(), LabError> {
    for ns in [&c.scan_ns, &c.tgt_ns] {
        if !ns_exists(ns) {
            ip(&["netns", "add", ns])?;
        }
    }
    let q = c.queues.to_string();
    let have = |ns: &str, link: &str| -> Option<String> {
        ip(&["-n", ns, "-d", "link", "show", "dev", link]).ok()
    };
    let want_queues = format!("numtxqueues {q} numrxqueues {q}");
    let ok = |d: Option<String>| d.is_some_and(|d| d.contains(&want_queues));
    if !ok(have(&c.scan_ns, &c.scan_if)) || !ok(have(&c.tgt_ns, &c.tgt_if)) {
        let _ = ip(&["-n", &c.scan_ns, "link", "del", "dev", &c.scan_if]);
        let _ = ip(&["-n", &c.tgt_ns, "link", "del", "dev", &c.tgt_if]);
        // Created directly inside the namespaces: the names never exist in ours.
        ip(&[
            "link",
            "add",
            &c.scan_if,
            "netns",
            &c.scan_ns,
            "address",
            &c.scan_mac.to_string(),
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &c.tgt_if,
            "netns",
            &c.tgt_ns,
            "address",
            &c.tgt_mac.to_string(),
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ])?;
    }
    let (scan_mac, tgt_mac) = (c.scan_mac.to_string(), c.tgt_mac.to_string());
    let (scan_cidr, tgt_cidr) = (format!("{}/30", c.scan_ip), format!("{}/30", c.tgt_ip));
    let (scan_ip, tgt_ip) = (c.scan_ip.to_string(), c.tgt_ip.to_string());
    let net = c.target_net.to_string();
    let s = c.scan_ns.as_str();
    let t = c.tgt_ns.as_str();
    // Scanner side: one /30, one route to the target network, nothing else.
    ip(&[
        "-n", s, "link", "set", "dev", &c.scan_if, "address", &scan_mac,
    ])?;
    ip(&["-n", s, "link", "set", "dev", "lo", "up"])?;
    ip(&["-n", s, "link", "set", "dev", &c.scan_if, "up"])?;
    ip(&["-n", s, "addr", "replace", &scan_cidr, "dev", &c.scan_if])?;
    ip(&[
        "-n", s, "route", "replace", &net, "via", &tgt_ip, "dev", &c.scan_if,
    ])?;
    ip(&[
        "-n",
        s,
        "neigh",
        "replace",
        &tgt_ip,
        "lladdr",
        &tgt_mac,
        "dev",
        &c.scan_if,
        "nud",
        "permanent",
    ])?;
    // Target side: AnyIP for the whole target network.
    ip(&[
        "-n", t, "link", "set", "dev", &c.tgt_if, "address", &tgt_mac,
    ])?;
    ip(&["-n", t, "link", "set", "dev", "lo", "up"])?;
    ip(&["-n", t, "link", "set", "dev", &c.tgt_if, "up"])?;
    ip(&["-n", t, "addr", "replace", &tgt_cidr, "dev", &c.tgt_if])?;
    ip(&["-n", t, "route", "replace", "local", &net, "dev", "lo"])?;
    ip(&[
        "-n",
        t,
        "neigh",
        "replace",
        &scan_ip,
        "lladdr",
        &scan_mac,
        "dev",
        &c.tgt_if,
        "nud",
        "permanent",
    ])?;
    let backlog = c.backlog.to_string();
    for (name, value) in [
        ("net.ipv4.tcp_syncookies", "1"),
        ("net.core.somaxconn", backlog.as_str()),
        ("net.ipv4.tcp_max_syn_backlog", backlog.as_str()),
        // every closed UDP port answers ICMP port unreachable, at any rate
        ("net.ipv4.icmp_ratelimit", "0"),
    ] {
        netns::sysctl(t, name, value)?;
    }
    // Per-namespace since Linux 6.12; older kernels keep the global limit.
    for (name, value) in [
        ("net.ipv4.icmp_msgs_per_sec", "10000000"),
        ("net.ipv4.icmp_msgs_burst", "10000000"),
    ] {
        let _ = netns::sysctl(t, name, value);
    }
    // Room for connect scans: many local ports in the scanner namespace.
    netns::sysctl(s, "net.ipv4.ip_local_port_range", "1024 65535")?;
    setup_ipv6(c)?;
    setup_sparse(c)?;
    Ok(())
}

/// IPv6 on the link (a /64 from 2001:db8::/32, no DAD, static neighbours, no
/// router advertisements) and the IPv6 target prefix (AnyIP on the target).
fn setup_ipv6(c: &LabConfig) -> Result<(), LabError> {
    let (s, t) = (c.scan_ns.as_str(), c.tgt_ns.as_str());
    for (ns, link) in [(s, &c.scan_if), (t, &c.tgt_if)] {
        for (name, value) in [
            ("net.ipv6.conf.all.disable_ipv6", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.accept_ra", "0"),
            ("net.ipv6.conf.all.forwarding", "0"),
        ] {
            netns::sysctl(ns, name, value)?;
        }
        netns::sysctl(ns, &format!("net.ipv6.conf.{link}.accept_dad"), "0")?;
        netns::sysctl(ns, &format!("net.ipv6.conf.{link}.accept_ra"), "0")?;
        // `prtip lab link down` must not cost the link its IPv6 addresses.
        netns::sysctl(ns, &format!("net.ipv6.conf.{link}.keep_addr_on_down"), "1")?;
    }
    // every closed UDP port answers ICMPv6 port unreachable, at any rate
    netns::sysctl(t, "net.ipv6.icmp.ratelimit", "0")?;
    let (scan_cidr, tgt_cidr) = (format!("{}/64", c.scan_ip6), format!("{}/64", c.tgt_ip6));
    ip(&[
        "-n", s, "-6", "addr", "replace", &scan_cidr, "dev", &c.scan_if, "nodad",
    ])?;
    ip(&[
        "-n", t, "-6", "addr", "replace", &tgt_cidr, "dev", &c.tgt_if, "nodad",
    ])?;
    neighbours(c, true)?;
    if let Some(net) = c.target_net6 {
        let net = net.to_string();
        let gw = c.tgt_ip6.to_string();
        ip(&[
            "-n", s, "-6", "route", "replace", &net, "via", &gw, "dev", &c.scan_if,
        ])?;
        ip(&[
            "-n", t, "-6", "route", "replace", "local", &net, "dev", "lo",
        ])?;
    }
    Ok(())
}

/// Set (`present`) or remove the permanent neighbour entries of both ends, both
/// families: the scanner's for the target's addresses and the target's for the scanner's.
pub(crate) fn neighbours(c: &LabConfig, present: bool) -> Result<(), LabError> {
    let entries = [
        (&c.scan_ns, &c.scan_if, c.tgt_ip.to_string(), c.tgt_mac),
        (&c.scan_ns, &c.scan_if, c.tgt_ip6.to_string(), c.tgt_mac),
        (&c.tgt_ns, &c.tgt_if, c.scan_ip.to_string(), c.scan_mac),
        (&c.tgt_ns, &c.tgt_if, c.scan_ip6.to_string(), c.scan_mac),
    ];
    for (ns, dev, addr, mac) in entries {
        if present {
            let mac = mac.to_string();
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                &addr,
                "lladdr",
                &mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        } else {
            let _ = ip(&["-n", ns, "neigh", "del", &addr, "dev", dev]);
        }
    }
    Ok(())
}

/// The sparse network: the scanner routes it to the target; the target has a
/// `local` route for each live address and a blackhole or unreachable route
/// for the rest of the prefix (longest match: the live /32s and /128s win).
fn setup_sparse(c: &LabConfig) -> Result<(), LabError> {
    let Some(sp) = &c.sparse else {
        return Ok(());
    };
    let (s, t) = (c.scan_ns.as_str(), c.tgt_ns.as_str());
    let kind = sp.mode.route_type();
    let mut tgt_lines = Vec::new();
    if let Some(net) = sp.net4 {
        ip(&[
            "-n",
            s,
            "route",
            "replace",
            &net.to_string(),
            "via",
            &c.tgt_ip.to_string(),
            "dev",
            &c.scan_if,
        ])?;
        tgt_lines.push(format!("route replace {kind} {net}"));
        tgt_lines.extend(
            sp.live4()
                .iter()
                .map(|a| format!("route replace local {a}/32 dev lo")),
        );
    }
    if let Some(net) = sp.net6 {
        ip(&[
            "-n",
            s,
            "-6",
            "route",
            "replace",
            &net.to_string(),
            "via",
            &c.tgt_ip6.to_string(),
            "dev",
            &c.scan_if,
        ])?;
        tgt_lines.push(format!("route replace {kind} {net}"));
        tgt_lines.extend(
            sp.live6()
                .iter()
                .map(|a| format!("route replace local {a}/128 dev lo")),
        );
    }
    netns::ip_batch(t, &tgt_lines)?;
    // An unreachable route makes the kernel answer ICMP host unreachable only on
    // an interface that forwards (ip_error); the target has no other link, so a
    // forwarded packet could only go back where it came from.
    let fwd = if sp.mode == crate::sparse::SparseMode::Unreachable {
        "1"
    } else {
        "0"
    };
    netns::sysctl(t, &format!("net.ipv4.conf.{}.forwarding", c.tgt_if), fwd)?;
    Ok(())
}

/// Refuse unless the scanner namespace has no default route and no link but
/// `lo` and its veth end.
pub fn verify_scanner_ns(c: &LabConfig) -> Result<(), LabError> {
    let routes = netns::default_routes(&c.scan_ns)?;
    if !routes.is_empty() {
        return Err(LabError::Setup(format!(
            "scanner namespace {} has a default route ({}); refusing to use it as a lab",
            c.scan_ns,
            routes.join("; ")
        )));
    }
    let extra: Vec<String> = netns::links(&c.scan_ns)?
        .into_iter()
        .filter(|l| l != "lo" && l != &c.scan_if)
        .collect();
    if !extra.is_empty() {
        return Err(LabError::Setup(format!(
            "scanner namespace {} has unexpected links ({}); refusing to use it as a lab",
            c.scan_ns,
            extra.join(", ")
        )));
    }
    Ok(())
}

fn start_responder(c: &LabConfig, exe: &Path) -> Result<u32, LabError> {
    let dir = c.lab_dir();
    fs::create_dir_all(&dir).map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
    let mut stored = c.clone();
    stored.responder_exe = Some(exe.to_path_buf());
    let json = serde_json::to_string_pretty(&stored).expect("a LabConfig always serializes");
    fs::write(config_file(c), json)
        .map_err(|e| LabError::io(format!("writing {}", config_file(c).display()), e))?;
    let _ = fs::remove_file(ready_file(c));
    let log = fs::File::create(log_file(c))
        .map_err(|e| LabError::io(format!("creating {}", log_file(c).display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| LabError::io("duplicating the log handle", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg("lab")
        .arg("serve")
        .arg("--config")
        .arg(config_file(c))
        .arg("--ready-file")
        .arg(ready_file(c))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let handle = netns::command_in_netns(&mut cmd, &c.tgt_ns, true)?;
    let mut child = cmd
        .spawn()
        .map_err(|e| LabError::io(format!("starting the responder {}", exe.display()), e))?;
    drop(handle);
    let pid = child.id();
    fs::write(pid_file(c), format!("{pid}\n"))
        .map_err(|e| LabError::io(format!("writing {}", pid_file(c).display()), e))?;
    let start = Instant::now();
    loop {
        if ready_file(c).exists() {
            return Ok(pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(log_file(c)).unwrap_or_default();
            return Err(LabError::Setup(format!(
                "the responder exited ({status}) before it was ready:\n{}",
                log.trim()
            )));
        }
        if start.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::Setup(format!(
                "the responder did not become ready within {READY_TIMEOUT:?}; see {}",
                log_file(c).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_name(what: &str, v: &str) -> Result<(), LabError> {
    if v.is_empty()
        || v.len() > 64
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(LabError::Invalid(format!(
            "{what} '{v}' is not valid (1-64 characters from a-z A-Z 0-9 - _)"
        )));
    }
    Ok(())
}

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Whether `pid` is this lab's responder (its command line names this lab's config file).
fn is_our_responder(c: &LabConfig, pid: u32) -> bool {
    let conf = config_file(c).to_string_lossy().into_owned();
    cmdline(pid).is_some_and(|args| args.iter().any(|a| a == "serve") && args.contains(&conf))
}

fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // state is the field after the ")" that closes the command name
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// SIGTERM, then SIGKILL after `grace`; reap it if it is our child.
fn stop_pid(pid: u32, grace: Duration) {
    let p = nix::unistd::Pid::from_raw(pid as i32);
    let reap = || {
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    };
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    while alive(pid) && start.elapsed() < grace {
        reap();
        std::thread::sleep(Duration::from_millis(10));
    }
    if alive(pid) {
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
        while alive(pid) && start.elapsed() < grace * 2 {
            reap();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    reap();
}

fn ns_pids(ns: &str) -> Vec<u32> {
    if !ns_exists(ns) {
        return Vec::new();
    }
    ip(&["netns", "pids", ns])
        .map(|o| {
            o.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn recorded_pid(c: &LabConfig) -> Option<u32> {
    fs::read_to_string(pid_file(c)).ok()?.trim().parse().ok()
}

/// Stop this lab's responder(s): the recorded pid and any process in the target
/// namespace whose command line names this lab's config. Returns the pids stopped.
fn stop_responders(c: &LabConfig) -> Result<Vec<u32>, LabError> {
    let mut pids: Vec<u32> = recorded_pid(c).into_iter().collect();
    pids.extend(ns_pids(&c.tgt_ns));
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|&p| is_our_responder(c, p));
    for &pid in &pids {
        stop_pid(pid, Duration::from_secs(3));
    }
    let _ = fs::remove_file(pid_file(c));
    Ok(pids)
}

/// Take a lab down: stop its responder, delete both namespaces (which deletes the
/// veth pair with them) and its run directory. Idempotent: removing a lab that
/// is not (or only partly) up succeeds. Needs root.
pub fn down(c: &LabConfig) -> Result<DownReport, LabError> {
    require_lab_privileges("down")?;
    let mut stopped = stop_helpers(c);
    stopped.extend(stop_responders(c)?);
    let mut report = DownReport {
        stopped_pids: stopped,
        ..DownReport::default()
    };
    for ns in [&c.scan_ns, &c.tgt_ns] {
        if ns_exists(ns) {
            report.leftover_pids.extend(ns_pids(ns));
            ip(&["netns", "del", ns])?;
            report.removed_namespaces.push(ns.clone());
        }
    }
    let dir = c.lab_dir();
    if dir.exists() {
        fs::remove_dir_all(&dir)
            .map_err(|e| LabError::io(format!("removing {}", dir.display()), e))?;
        report.removed_run_dir = true;
    }
    let _ = fs::remove_dir(&c.run_dir); // only if empty
    Ok(report)
}

/// What exists of a lab right now.
#[derive(Clone, Debug)]
pub struct LabStatus {
    /// The configuration inspected.
    pub config: LabConfig,
    /// Whether the scanner namespace exists.
    pub scan_ns: bool,
    /// Whether the target namespace exists.
    pub tgt_ns: bool,
    /// `ip -br addr` lines of the scanner namespace.
    pub scan_addrs: Vec<String>,
    /// `ip -br addr` lines of the target namespace.
    pub tgt_addrs: Vec<String>,
    /// Default routes in the scanner namespace (must be empty).
    pub scan_default_routes: Vec<String>,
    /// Links in the scanner namespace other than `lo` and its veth (must be empty).
    pub scan_extra_links: Vec<String>,
    /// Recorded responder pid.
    pub responder_pid: Option<u32>,
    /// Whether that pid is alive and is this lab's responder.
    pub responder_alive: bool,
    /// Registered helper processes and whether each is alive.
    pub helpers: Vec<(Helper, bool)>,
}

impl LabStatus {
    /// Fully up and safe: both namespaces, a live responder, a clean scanner namespace.
    pub fn is_up(&self) -> bool {
        self.scan_ns
            && self.tgt_ns
            && self.responder_alive
            && self.scan_default_routes.is_empty()
            && self.scan_extra_links.is_empty()
            && self.helpers.iter().all(|(_, alive)| *alive)
    }
}

/// Inspect a lab (read-only). Needs root to look inside the namespaces.
pub fn status(c: &LabConfig) -> Result<LabStatus, LabError> {
    require_lab_privileges("status")?;
    let brief = |ns: &str| -> Vec<String> {
        ip(&["-n", ns, "-br", "addr", "show"])
            .map(|o| {
                o.lines()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect()
            })
            .unwrap_or_default()
    };
    let scan_ns = ns_exists(&c.scan_ns);
    let tgt_ns = ns_exists(&c.tgt_ns);
    let pid = recorded_pid(c);
    let (routes, extra) = if scan_ns {
        (
            netns::default_routes(&c.scan_ns)?,
            netns::links(&c.scan_ns)?
                .into_iter()
                .filter(|l| l != "lo" && l != &c.scan_if)
                .collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(LabStatus {
        config: c.clone(),
        scan_ns,
        tgt_ns,
        scan_addrs: if scan_ns {
            brief(&c.scan_ns)
        } else {
            Vec::new()
        },
        tgt_addrs: if tgt_ns { brief(&c.tgt_ns) } else { Vec::new() },
        scan_default_routes: routes,
        scan_extra_links: extra,
        responder_pid: pid,
        responder_alive: pid.is_some_and(|p| alive(p) && is_our_responder(c, p)),
        helpers: helpers(c)
            .into_iter()
            .map(|h| {
                let a = helper_alive(&h);
                (h, a)
            })
            .collect(),
    })
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let yn = |b: bool| if b { "present" } else { "absent" };
        let state = if self.is_up() {
            "up"
        } else if self.scan_ns || self.tgt_ns || self.responder_pid.is_some() {
            "PARTLY up (run `prtip lab down` then `prtip lab up`)"
        } else {
            "down"
        };
        writeln!(f, "lab {}: {state}", c.name)?;
        writeln!(
            f,
            "  scanner netns {} ({}): link {} {}/30 mac {}",
            c.scan_ns,
            yn(self.scan_ns),
            c.scan_if,
            c.scan_ip,
            c.scan_mac
        )?;
        for l in &self.scan_addrs {
            writeln!(f, "      {l}")?;
        }
        if !self.scan_default_routes.is_empty() {
            writeln!(
                f,
                "      UNSAFE: default route {}",
                self.scan_default_routes.join("; ")
            )?;
        }
        if !self.scan_extra_links.is_empty() {
            writeln!(
                f,
                "      UNSAFE: extra links {}",
                self.scan_extra_links.join(", ")
            )?;
        }
        writeln!(
            f,
            "  target  netns {} ({}): link {} {}/30 mac {} (gateway / router MAC for raw scanners)",
            c.tgt_ns,
            yn(self.tgt_ns),
            c.tgt_if,
            c.tgt_ip,
            c.tgt_mac
        )?;
        for l in &self.tgt_addrs {
            writeln!(f, "      {l}")?;
        }
        let resp = match (self.responder_pid, self.responder_alive) {
            (Some(p), true) => format!("pid {p} running"),
            (Some(p), false) => format!("pid {p} NOT running"),
            (None, _) => "not running".to_string(),
        };
        writeln!(
            f,
            "  responder: {} — prtip lab serve {resp}; log {}",
            c.responder,
            log_file(c).display()
        )?;
        for (h, alive) in &self.helpers {
            let state = if *alive { "running" } else { "NOT running" };
            writeln!(f, "  helper {}: pid {} {state}; {}", h.role, h.pid, h.note)?;
        }
        writeln!(
            f,
            "  queues: {} per veth end; backlog {}",
            c.queues, c.backlog
        )?;
        writeln!(
            f,
            "  TCP ports: {}",
            describe_ports(Proto::Tcp, &c.tcp_ports)
        )?;
        writeln!(
            f,
            "  UDP ports: {}",
            describe_ports(Proto::Udp, &c.udp_ports)
        )?;
        writeln!(
            f,
            "  IPv6: {}/64 (scanner) <-> {}/64 (target, gateway); target prefix {}",
            c.scan_ip6,
            c.tgt_ip6,
            c.target_net6
                .map(|n| format!("{n} ({} addresses, AnyIP)", n.len()))
                .unwrap_or_else(|| "none".into())
        )?;
        if let Some(sp) = &c.sparse {
            writeln!(f, "  sparse: {sp}")?;
        }
        if let Some(p) = c.policer {
            writeln!(
                f,
                "  SYN policer on {}: {}/s, burst {}{} (`prtip lab policer` shows its counters)",
                c.tgt_if,
                p.rate,
                p.burst,
                p.net
                    .map(|n| format!(", only SYNs to {n}"))
                    .unwrap_or_default()
            )?;
        }
        writeln!(f, "  ground truth: {}", c.ground_truth())?;
        write!(
            f,
            "  scan from:    ip netns exec {} <scanner> {} -p {}",
            c.scan_ns,
            c.target_net,
            format_ports(&c.tcp_ports)
        )
    }
}

/// A lab that is taken down when the guard is dropped, also while a panic
/// unwinds: what tests use.
///
/// ```no_run
/// # fn main() -> Result<(), prtip_lab::LabError> {
/// let lab = prtip_lab::LabGuard::up(prtip_lab::LabConfig::unique("doc"))?;
/// // ... scan lab.config().target_net from inside lab.config().scan_ns ...
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LabGuard {
    lab: Option<Lab>,
}

impl LabGuard {
    /// Bring a lab up and guard it. The lab records this process as its owner,
    /// so that `prtip lab down --stale` can remove it should this process be
    /// killed before the guard drops.
    pub fn up(cfg: LabConfig) -> Result<LabGuard, LabError> {
        let cfg = LabConfig {
            owner: Some(current_owner()),
            ..cfg
        };
        Ok(LabGuard {
            lab: Some(Lab::up(&cfg)?),
        })
    }

    /// Take the lab down now and report what was removed.
    pub fn down(mut self) -> Result<DownReport, LabError> {
        match self.lab.take() {
            Some(l) => l.down(),
            None => Ok(DownReport::default()),
        }
    }
}

impl std::ops::Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        self.lab
            .as_ref()
            .expect("a LabGuard holds its lab until dropped")
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Some(l) = self.lab.take() {
            let name = l.config.name.clone();
            if let Err(e) = l.down() {
                eprintln!("prtip-lab: could not take lab {name} down: {e}");
            }
        }
    }
}
