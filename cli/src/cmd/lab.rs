//! `prtip lab up|down|status`: the project's own test lab (two network
//! namespaces and a veth pair; see the `prtip-lab` crate). This module only turns
//! flags into a [`LabConfig`] and prints; the lab crate does the work.

use crate::UsageError;
use prtip_lab::config::{parse_ports, DEFAULT_NAME, DEFAULT_RUN_DIR, MAX_NAME_LEN};
use prtip_lab::sparse::{Sparse, SparseHosts, SparseMode};
use prtip_lab::{
    Helper, IpNet, Ipv4Net, Ipv6Net, Lab, LabConfig, LabError, MacAddr, PolicerSpec, ResponderKind,
    Side,
};
use prtip_xdp::lab::{holder_command, spawn_holder, HolderArgs, LabSides, LabTarget};
use prtip_xdp::responder::ResponderConfig;
use prtip_xdp::XdpMode;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `prtip lab`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Box<LabCmd>,
}

#[derive(clap::Subcommand, Debug)]
enum LabCmd {
    /// Build the lab (idempotent: re-running reconfigures it and restarts the responder).
    Up(Box<UpArgs>),
    /// Remove everything the lab made: responder, namespaces (and so the veth pair), run directory.
    Down(DownArgs),
    /// Show what exists of the lab and its ground truth (exit 0 when up, 3 when not).
    Status(StatusArgs),
    /// Take one end of the lab's veth down or bring it up again (uplink-failure tests).
    Link(LinkArgs),
    /// Make the next hop (the target's veth) stop answering ARP/NDP, or answer again.
    NextHop(NextHopArgs),
    /// Show the SYN policer's counters, or change its rate (`lab up --policer`).
    Policer(PolicerArgs),
    /// Run the lab's responder (started by `lab up` inside the target namespace).
    #[command(hide = true)]
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct LinkArgs {
    #[command(flatten)]
    which: WhichLab,
    /// down or up.
    #[arg(value_name = "STATE", value_parser = ["down", "up"])]
    state: String,
    /// Which end: scanner (sends fail with ENETDOWN) or target (the scanner's
    /// end loses carrier; frames sent into it are dropped).
    #[arg(long, value_name = "SIDE", value_parser = side, default_value = "scanner")]
    side: Side,
}

#[derive(clap::Args, Debug)]
struct NextHopArgs {
    #[command(flatten)]
    which: WhichLab,
    /// silent (no ARP/NDP answers, the scanner's neighbour entries removed) or
    /// answer (back to the static entries).
    #[arg(value_name = "STATE", value_parser = ["silent", "answer"])]
    state: String,
}

#[derive(clap::Args, Debug)]
struct PolicerArgs {
    #[command(flatten)]
    which: WhichLab,
    /// New rate (and burst), as for `lab up --policer`; the bucket refills.
    /// The policed network (`lab up --policer-net`) stays.
    #[arg(long, value_name = "RATE[/BURST]", value_parser = policer_spec)]
    set: Option<PolicerSpec>,
    /// Print the counters as JSON.
    #[arg(long)]
    json: bool,
}

/// Which lab: a name and, optionally, explicit namespace and link names.
#[derive(clap::Args, Debug)]
struct WhichLab {
    /// Lab name; namespaces `<name>-scan`/`<name>-tgt`, links `<name>-s0`/`<name>-t0`.
    #[arg(long, default_value = DEFAULT_NAME)]
    name: String,
    /// Directory holding the labs' run directories.
    #[arg(long, value_name = "DIR", env = "PRTIP_LAB_RUN", default_value = DEFAULT_RUN_DIR)]
    run_dir: PathBuf,
    /// Scanner namespace (default `<name>-scan`).
    #[arg(long, value_name = "NS")]
    scan_ns: Option<String>,
    /// Target namespace (default `<name>-tgt`).
    #[arg(long, value_name = "NS")]
    tgt_ns: Option<String>,
    /// Scanner veth end (default `<name>-s0`).
    #[arg(long, value_name = "IF")]
    scan_if: Option<String>,
    /// Target veth end (default `<name>-t0`).
    #[arg(long, value_name = "IF")]
    tgt_if: Option<String>,
}

/// A port list flag value (`22,80,8000-8010`, or `none`).
#[derive(Clone, Debug)]
struct PortList(Vec<u16>);

fn port_list(s: &str) -> Result<PortList, String> {
    parse_ports(s).map(PortList).map_err(|e| e.to_string())
}

fn cidr(s: &str) -> Result<Ipv4Net, String> {
    s.parse().map_err(|e: LabError| e.to_string())
}

/// A network flag that also takes `none`.
#[derive(Clone, Copy, Debug)]
struct OrNone<T>(Option<T>);

fn cidr6(s: &str) -> Result<OrNone<Ipv6Net>, String> {
    if s == "none" {
        return Ok(OrNone(None));
    }
    s.parse()
        .map(|n| OrNone(Some(n)))
        .map_err(|e: LabError| e.to_string())
}

fn cidr_or_none(s: &str) -> Result<OrNone<Ipv4Net>, String> {
    if s == "none" {
        return Ok(OrNone(None));
    }
    s.parse()
        .map(|n| OrNone(Some(n)))
        .map_err(|e: LabError| e.to_string())
}

fn sparse_hosts(s: &str) -> Result<SparseHosts, String> {
    s.parse().map_err(|e: LabError| e.to_string())
}

fn sparse_mode(s: &str) -> Result<SparseMode, String> {
    s.parse().map_err(|e: LabError| e.to_string())
}

fn policer_spec(s: &str) -> Result<PolicerSpec, String> {
    PolicerSpec::parse(s).map_err(|e| e.to_string())
}

fn ip_net(s: &str) -> Result<IpNet, String> {
    s.parse().map_err(|e: LabError| e.to_string())
}

/// The policer's configuration in prtip-xdp's terms.
fn policer_config(p: PolicerSpec) -> prtip_xdp::policer::PolicerConfig {
    prtip_xdp::policer::PolicerConfig {
        rate: p.rate,
        burst: p.burst,
        prefix: p.net.map(|n| n.addr_prefix()),
    }
}

fn side(s: &str) -> Result<Side, String> {
    s.parse().map_err(|e: LabError| e.to_string())
}

fn responder_kind(s: &str) -> Result<ResponderKind, String> {
    s.parse().map_err(|e: LabError| e.to_string())
}

fn xdp_mode(s: &str) -> Result<XdpMode, String> {
    s.parse()
}

fn mac(s: &str) -> Result<MacAddr, String> {
    s.parse().map_err(|e: LabError| e.to_string())
}

#[derive(clap::Args, Debug)]
struct UpArgs {
    #[command(flatten)]
    which: WhichLab,
    /// MAC of the scanner veth end.
    #[arg(long, value_name = "MAC", value_parser = mac)]
    scan_mac: Option<MacAddr>,
    /// MAC of the target veth end (the router MAC raw scanners need).
    #[arg(long, value_name = "MAC", value_parser = mac)]
    tgt_mac: Option<MacAddr>,
    /// Scanner address (a /30 with --tgt-ip).
    #[arg(long, value_name = "IP")]
    scan_ip: Option<Ipv4Addr>,
    /// Target (gateway) address.
    #[arg(long, value_name = "IP")]
    tgt_ip: Option<Ipv4Addr>,
    /// Network every address of which answers (default 198.19.0.0/16).
    #[arg(long, value_name = "CIDR", value_parser = cidr)]
    target_net: Option<Ipv4Net>,
    /// Open TCP ports (default 21,22,25,80,110,143,443,6379,8080); all others RST.
    #[arg(long, value_name = "LIST", value_parser = port_list)]
    tcp_ports: Option<PortList>,
    /// UDP ports with a responder (default 7,53,123); all others ICMP port unreachable.
    #[arg(long, value_name = "LIST", value_parser = port_list)]
    udp_ports: Option<PortList>,
    /// TX/RX queues per veth end (default: one per core).
    #[arg(long, value_name = "N")]
    queues: Option<u32>,
    /// Listen backlog and the target namespace's somaxconn.
    #[arg(long, value_name = "N")]
    backlog: Option<u32>,
    /// What answers: kernel (full TCP with banners), xdp (an XDP program on the
    /// target's veth answers every SYN at line rate: SYN-ACK on the open ports, RST
    /// elsewhere; UDP still served), xdp-sink (drop every frame; send-only benches).
    #[arg(long, value_name = "KIND", value_parser = responder_kind, default_value = "kernel")]
    responder: ResponderKind,
    /// XDP attach mode for the xdp responders and the policer: native (driver) or skb (generic).
    #[arg(long, value_name = "MODE", value_parser = xdp_mode, default_value = "native")]
    xdp_mode: XdpMode,
    /// Scanner IPv6 address (a /64 with --tgt-ip6; default 2001:db8:0:1::1).
    #[arg(long, value_name = "IP")]
    scan_ip6: Option<Ipv6Addr>,
    /// Target (IPv6 gateway) address (default 2001:db8:0:1::2).
    #[arg(long, value_name = "IP")]
    tgt_ip6: Option<Ipv6Addr>,
    /// IPv6 network every address of which answers, inside 2001:db8::/32
    /// (default 2001:db8:100::/116, 4096 addresses), or none.
    #[arg(long, value_name = "CIDR|none", value_parser = cidr6)]
    target_net6: Option<OrNone<Ipv6Net>>,
    /// Add a sparse network: only some addresses exist (default
    /// 198.18.1.0/24 and 2001:db8:200::/120, every 4th address live, the rest silent).
    #[arg(long)]
    sparse: bool,
    /// IPv4 half of the sparse network (at most a /16), or none; implies --sparse.
    #[arg(long, value_name = "CIDR|none", value_parser = cidr_or_none)]
    sparse_net: Option<OrNone<Ipv4Net>>,
    /// IPv6 half of the sparse network (at most a /112), or none; implies --sparse.
    #[arg(long, value_name = "CIDR|none", value_parser = cidr6)]
    sparse_net6: Option<OrNone<Ipv6Net>>,
    /// Live addresses of the sparse network by index: every:N (indices 1, 1+N,
    /// 1+2N, ...) or a list such as 1,5,9-12; implies --sparse.
    #[arg(long, value_name = "every:N|LIST", value_parser = sparse_hosts)]
    sparse_hosts: Option<SparseHosts>,
    /// What the other sparse addresses do: silent (dropped) or unreachable
    /// (ICMP host unreachable / ICMPv6 no route); implies --sparse.
    #[arg(long, value_name = "MODE", value_parser = sparse_mode)]
    sparse_mode: Option<SparseMode>,
    /// With --responder xdp: only addresses of the target network whose index
    /// is 1 modulo N answer SYNs (100: 1%); SYNs to the others are dropped.
    #[arg(long, value_name = "N")]
    xdp_live_every: Option<u32>,
    /// Attach the SYN policer to the target's veth: TCP SYNs above RATE per
    /// second (bucket of BURST, default RATE/100) are dropped. Needs --responder kernel.
    #[arg(long, value_name = "RATE[/BURST]", value_parser = policer_spec)]
    policer: Option<PolicerSpec>,
    /// With --policer: police only the SYNs to this IPv4 or IPv6 network (for
    /// example one slow /24 of the target network); the others pass.
    #[arg(long, value_name = "CIDR", value_parser = ip_net)]
    policer_net: Option<IpNet>,
}

#[derive(clap::Args, Debug)]
struct DownArgs {
    #[command(flatten)]
    which: WhichLab,
    /// Instead of --name: remove every lab whose owning process (a test) is gone.
    #[arg(long)]
    stale: bool,
}

#[derive(clap::Args, Debug)]
struct StatusArgs {
    #[command(flatten)]
    which: WhichLab,
    /// Print the status of every lab that has a run directory.
    #[arg(long)]
    all: bool,
    /// Print the lab's configuration and state as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The lab configuration (written by `lab up`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// File to create once every socket is bound.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
}

/// A lab error in the anyhow chain; bad values and missing privileges are usage errors (exit 2).
fn lab_err(e: LabError) -> anyhow::Error {
    if e.is_usage() {
        anyhow::Error::new(UsageError(e.to_string()))
    } else {
        anyhow::Error::new(e)
    }
}

impl WhichLab {
    /// The lab's configuration: the one it was brought up with if it is up,
    /// else the defaults for `--name` with the explicit names applied.
    fn config(&self) -> anyhow::Result<LabConfig> {
        prtip_lab::config::validate_name(&self.name).map_err(lab_err)?;
        if self.name.len() > MAX_NAME_LEN && (self.scan_if.is_none() || self.tgt_if.is_none()) {
            return Err(UsageError(format!(
                "lab name '{}' is too long: at most {MAX_NAME_LEN} characters (link names are <name>-s0 and <name>-t0, at most 15), or give --scan-if and --tgt-if",
                self.name
            ))
            .into());
        }
        let mut c = match prtip_lab::load_config(&self.run_dir, &self.name).map_err(lab_err)? {
            Some(c) => c,
            None => LabConfig::named(&self.name),
        };
        c.run_dir = self.run_dir.clone();
        if let Some(v) = &self.scan_ns {
            c.scan_ns = v.clone();
        }
        if let Some(v) = &self.tgt_ns {
            c.tgt_ns = v.clone();
        }
        if let Some(v) = &self.scan_if {
            c.scan_if = v.clone();
        }
        if let Some(v) = &self.tgt_if {
            c.tgt_if = v.clone();
        }
        Ok(c)
    }
}

/// Run a lab command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match *args.cmd {
        LabCmd::Up(a) => up(*a),
        LabCmd::Down(a) => {
            let configs = if a.stale {
                prtip_lab::privilege::require_lab_privileges("down").map_err(lab_err)?;
                let v = prtip_lab::stale_labs(&a.which.run_dir);
                if v.is_empty() {
                    println!(
                        "prtip lab: no stale labs under {}",
                        a.which.run_dir.display()
                    );
                }
                v
            } else {
                vec![a.which.config()?]
            };
            for c in configs {
                c.validate().map_err(lab_err)?;
                let report = prtip_lab::down(&c).map_err(lab_err)?;
                println!("prtip lab {}: {report}", c.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Status(a) => status(a),
        LabCmd::Link(a) => {
            let c = a.which.config()?;
            c.validate().map_err(lab_err)?;
            let up = a.state == "up";
            prtip_lab::set_link(&c, a.side, up).map_err(lab_err)?;
            println!(
                "prtip lab {}: {} link {} is {}",
                c.name,
                a.side,
                match a.side {
                    Side::Scanner => &c.scan_if,
                    Side::Target => &c.tgt_if,
                },
                a.state
            );
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::NextHop(a) => {
            let c = a.which.config()?;
            c.validate().map_err(lab_err)?;
            prtip_lab::set_next_hop(&c, a.state == "answer").map_err(lab_err)?;
            println!(
                "prtip lab {}: next hop {} / {} {}",
                c.name,
                c.tgt_ip,
                c.tgt_ip6,
                if a.state == "answer" {
                    "answers ARP/NDP (static neighbour entries restored)"
                } else {
                    "no longer answers ARP/NDP (scanner's neighbour entries removed)"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Policer(a) => policer(a),
        LabCmd::Serve(a) => {
            let text = std::fs::read_to_string(&a.config)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", a.config.display()))?;
            let c: LabConfig = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{} is not a lab configuration: {e}", a.config.display())
            })?;
            prtip_lab::responder::serve(&c, a.ready_file.as_deref()).map_err(lab_err)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn up(a: UpArgs) -> anyhow::Result<ExitCode> {
    let mut c = a.which.config()?;
    // A fresh `up` takes defaults for everything not given, not a previous run's values.
    let fresh = LabConfig::named(&a.which.name);
    c.scan_mac = a.scan_mac.unwrap_or(fresh.scan_mac);
    c.tgt_mac = a.tgt_mac.unwrap_or(fresh.tgt_mac);
    c.scan_ip = a.scan_ip.unwrap_or(fresh.scan_ip);
    c.tgt_ip = a.tgt_ip.unwrap_or(fresh.tgt_ip);
    c.target_net = a.target_net.unwrap_or(fresh.target_net);
    c.tcp_ports = a.tcp_ports.map(|p| p.0).unwrap_or(fresh.tcp_ports);
    c.udp_ports = a.udp_ports.map(|p| p.0).unwrap_or(fresh.udp_ports);
    c.queues = a.queues.unwrap_or(fresh.queues);
    c.backlog = a.backlog.unwrap_or(fresh.backlog);
    c.responder = a.responder;
    c.responder_exe = None;
    c.scan_ip6 = a.scan_ip6.unwrap_or(fresh.scan_ip6);
    c.tgt_ip6 = a.tgt_ip6.unwrap_or(fresh.tgt_ip6);
    c.target_net6 = a.target_net6.map_or(fresh.target_net6, |n| n.0);
    let sparse_given = a.sparse
        || a.sparse_net.is_some()
        || a.sparse_net6.is_some()
        || a.sparse_hosts.is_some()
        || a.sparse_mode.is_some();
    c.sparse = sparse_given.then(|| {
        let d = Sparse::default();
        Sparse {
            net4: a.sparse_net.map_or(d.net4, |n| n.0),
            net6: a.sparse_net6.map_or(d.net6, |n| n.0),
            hosts: a.sparse_hosts.unwrap_or(d.hosts),
            mode: a.sparse_mode.unwrap_or(d.mode),
        }
    });
    if let (Some(n), None) = (a.policer_net, a.policer) {
        return Err(anyhow::Error::new(UsageError(format!(
            "--policer-net {n} needs --policer RATE[/BURST]"
        ))));
    }
    c.policer = a.policer.map(|p| PolicerSpec {
        net: a.policer_net,
        ..p
    });
    c.xdp_live_every = a.xdp_live_every.unwrap_or(1);
    c.validate().map_err(lab_err)?;
    let lab = Lab::up(&c).map_err(lab_err)?;
    if c.responder != ResponderKind::Kernel || c.policer.is_some() {
        if let Err(e) = attach_xdp(&lab, a.xdp_mode) {
            let _ = prtip_lab::down(&c);
            let what = match c.policer {
                Some(p) => format!("the SYN policer {p}"),
                None => format!("the {} responder", c.responder),
            };
            return Err(e.context(format!("attaching {what} (the lab was taken down again)")));
        }
    }
    let st = prtip_lab::status(lab.config()).map_err(lab_err)?;
    println!("{st}");
    println!("  take it down: prtip lab down --name {}", c.name);
    Ok(ExitCode::SUCCESS)
}

/// Start `prtip xdp-hold` for the lab's XDP responder or sink and register it
/// with the lab, so that `lab down` and `lab status` know it.
fn attach_xdp(lab: &Lab, mode: XdpMode) -> anyhow::Result<()> {
    let c = lab.config();
    let target = match c.responder {
        ResponderKind::Xdp => {
            let mut r =
                ResponderConfig::new(c.target_net.addr(), c.target_net.prefix(), &c.tcp_ports)?;
            r.live_every = c.xdp_live_every;
            LabTarget::Responder(r)
        }
        ResponderKind::XdpSink => LabTarget::Sink,
        ResponderKind::Kernel => match c.policer {
            Some(p) => LabTarget::Policer(policer_config(p)),
            None => return Ok(()),
        },
    };
    let args = HolderArgs {
        sides: LabSides {
            scan_ns: c.scan_ns.clone(),
            scan_if: c.scan_if.clone(),
            tgt_ns: c.tgt_ns.clone(),
            tgt_if: c.tgt_if.clone(),
        },
        target,
        mode,
    };
    let exe = prtip_lab::lab::responder_exe(c).map_err(lab_err)?;
    let log = c.lab_dir().join("xdp-holder.log");
    let holder = spawn_holder(holder_command(&exe, &args), &log)?;
    lab.adopt_helper(&Helper {
        role: "xdp-holder".into(),
        pid: holder.pid,
        marker: "xdp-hold".into(),
        note: format!("{}; log {}", holder.ready, log.display()),
    })
    .map_err(lab_err)?;
    Ok(())
}

/// Counters of the lab's policer, read from inside the target namespace.
fn policer_stats(c: &LabConfig) -> anyhow::Result<prtip_xdp::policer::PolicerStats> {
    let tgt_if = c.tgt_if.clone();
    prtip_xdp::in_netns(&c.tgt_ns, || {
        prtip_xdp::policer::stats_of_interface(&tgt_if)
    })
    .map_err(|e| {
        anyhow::Error::new(UsageError(format!(
            "lab {}: no SYN policer on {} ({e}); bring the lab up with --policer RATE[/BURST]",
            c.name, c.tgt_if
        )))
    })
}

fn policer(a: PolicerArgs) -> anyhow::Result<ExitCode> {
    let mut c = a.which.config()?;
    c.validate().map_err(lab_err)?;
    prtip_lab::privilege::require_lab_privileges("policer").map_err(lab_err)?;
    policer_stats(&c)?;
    if let Some(p) = a.set {
        let p = PolicerSpec {
            net: c.policer.and_then(|old| old.net),
            ..p
        };
        let cfg = policer_config(p);
        let tgt_if = c.tgt_if.clone();
        prtip_xdp::in_netns(&c.tgt_ns, || {
            prtip_xdp::policer::set_on_interface(&tgt_if, cfg)
        })
        .map_err(|e| anyhow::Error::new(UsageError(e.to_string())))?;
        // Record the new rate so `lab status` shows it.
        c.policer = Some(p);
        let path = c.lab_dir().join("config.json");
        let mut stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        stored["policer"] = serde_json::to_value(p)?;
        std::fs::write(&path, serde_json::to_string_pretty(&stored)?)?;
    }
    let s = policer_stats(&c)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "name": c.name,
                "rate": s.config.rate,
                "burst": s.config.burst,
                "generation": s.generation,
                "syn_passed": s.syn_passed,
                "syn_dropped": s.syn_dropped,
                "other": s.other,
                "syn_outside": s.syn_outside,
                "net": s.config.prefix.map(|(a, l)| format!("{a}/{l}")),
                "passed_since_change": s.passed,
                "dropped_since_change": s.dropped,
            })
        );
    } else {
        println!(
            "prtip lab {}: SYN policer {}/s, burst {}{} on {}: {} SYNs passed, {} dropped, {} other frames{} since attach; since the last change {} passed, {} dropped",
            c.name,
            s.config.rate,
            s.config.burst,
            s.config
                .prefix
                .map(|(a, l)| format!(" for SYNs to {a}/{l}"))
                .unwrap_or_default(),
            c.tgt_if,
            s.syn_passed,
            s.syn_dropped,
            s.other,
            if s.config.prefix.is_some() {
                format!(", {} SYNs to other destinations", s.syn_outside)
            } else {
                String::new()
            },
            s.passed,
            s.dropped
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let configs = if a.all {
        let mut v = Vec::new();
        for name in prtip_lab::list_labs(&a.which.run_dir) {
            if let Some(c) = prtip_lab::load_config(&a.which.run_dir, &name).map_err(lab_err)? {
                v.push(c);
            }
        }
        v
    } else {
        vec![a.which.config()?]
    };
    let mut all_up = true;
    // writeln!, not println!: a closed stdout (`| head -1`) is an error that
    // ends the loop quietly (main treats a broken pipe as success), not a panic.
    let mut out = std::io::stdout().lock();
    for c in &configs {
        c.validate().map_err(lab_err)?;
        let st = prtip_lab::status(c).map_err(lab_err)?;
        all_up &= st.is_up();
        if a.json {
            let v = serde_json::json!({
                "name": c.name,
                "up": st.is_up(),
                "scan_ns_exists": st.scan_ns,
                "tgt_ns_exists": st.tgt_ns,
                "responder_pid": st.responder_pid,
                "responder_alive": st.responder_alive,
                "scan_default_routes": st.scan_default_routes,
                "scan_extra_links": st.scan_extra_links,
                "config": c,
                "ground_truth": c.ground_truth(),
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{st}")?;
        }
    }
    if a.all && configs.is_empty() && !a.json {
        writeln!(out, "no labs under {}", a.which.run_dir.display())?;
    }
    Ok(if all_up && !configs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
