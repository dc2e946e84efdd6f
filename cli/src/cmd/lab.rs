//! `prtip lab up|down|status`: the project's own test lab (two network
//! namespaces and a veth pair; see the `prtip-lab` crate). This module only turns
//! flags into a [`LabConfig`] and prints; the lab crate does the work.

use crate::UsageError;
use prtip_lab::config::{parse_ports, DEFAULT_NAME, DEFAULT_RUN_DIR, MAX_NAME_LEN};
use prtip_lab::{Helper, Ipv4Net, Lab, LabConfig, LabError, MacAddr, ResponderKind};
use prtip_xdp::lab::{holder_command, spawn_holder, HolderArgs, LabSides, LabTarget};
use prtip_xdp::responder::ResponderConfig;
use prtip_xdp::XdpMode;
use std::net::Ipv4Addr;
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
    Up(UpArgs),
    /// Remove everything the lab made: responder, namespaces (and so the veth pair), run directory.
    Down(DownArgs),
    /// Show what exists of the lab and its ground truth (exit 0 when up, 3 when not).
    Status(StatusArgs),
    /// Run the lab's responder (started by `lab up` inside the target namespace).
    #[command(hide = true)]
    Serve(ServeArgs),
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
    /// XDP attach mode for the xdp responders: native (driver) or skb (generic).
    #[arg(long, value_name = "MODE", value_parser = xdp_mode, default_value = "native")]
    xdp_mode: XdpMode,
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
        LabCmd::Up(a) => up(a),
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
    c.validate().map_err(lab_err)?;
    let lab = Lab::up(&c).map_err(lab_err)?;
    if c.responder != ResponderKind::Kernel {
        if let Err(e) = attach_xdp(&lab, a.xdp_mode) {
            let _ = prtip_lab::down(&c);
            return Err(e.context(format!(
                "attaching the {} responder (the lab was taken down again)",
                c.responder
            )));
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
        ResponderKind::Xdp => LabTarget::Responder(ResponderConfig::new(
            c.target_net.addr(),
            c.target_net.prefix(),
            &c.tcp_ports,
        )?),
        ResponderKind::XdpSink => LabTarget::Sink,
        ResponderKind::Kernel => return Ok(()),
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
            println!("{v}");
        } else {
            println!("{st}");
        }
    }
    if a.all && configs.is_empty() && !a.json {
        println!("no labs under {}", a.which.run_dir.display());
    }
    Ok(if all_up && !configs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
