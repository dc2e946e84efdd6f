//! `prtip xdp-info IFACE`: what AF_XDP can use on an interface; and
//! `prtip xdp-hold` (hidden): the process behind `prtip lab up --responder xdp`
//! that holds the lab's XDP links (responder or sink on the target's veth,
//! pass-through on the scanner's) until SIGTERM, SIGINT or SIGHUP, or until the
//! lab's interfaces disappear. Owns nothing but that wait; the programs and the
//! argument format live in `prtip_xdp::lab`.

use super::scan::args::{BackendArg, XdpModeArg, ZeroCopyArg};
use prtip_store::event::{XdpMode, XdpSettings, ZeroCopy};
use std::process::ExitCode;

use anyhow::Context;

/// Flags of `prtip xdp-hold` (see `prtip_xdp::lab::HolderArgs`).
#[derive(clap::Args, Debug)]
pub struct HoldArgs {
    /// `--scan-ns NS --scan-if IF --tgt-ns NS --tgt-if IF --mode native|skb
    /// --target responder|sink [--target-net CIDR --tcp-ports LIST --cookie-key N]`
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<String>,
}

/// Attach and hold until told to stop.
pub fn run_hold(args: HoldArgs) -> anyhow::Result<ExitCode> {
    let h = prtip_xdp::lab::HolderArgs::from_args(&args.args)
        .map_err(|e| anyhow::Error::new(crate::UsageError(e.to_string())))?;
    prtip_xdp::lab::hold(&h).context("holding the lab's XDP programs")?;
    Ok(ExitCode::SUCCESS)
}

/// Flags of `prtip xdp-info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Interface to inspect (in the current network namespace).
    #[arg(value_name = "IFACE")]
    pub iface: String,
}

/// Print what `prtip scan --xdp IFACE` would find on IFACE: queues, the
/// driver's XDP features, and any program already attached.
pub fn run_info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let info = prtip_xdp::interface_info(&args.iface).map_err(|e| match e {
        prtip_xdp::XdpError::NoSuchInterface { .. } => {
            anyhow::Error::new(crate::UsageError(e.to_string()))
        }
        other => anyhow::Error::new(other),
    })?;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("interface      {} (index {})", info.ifname, info.ifindex);
    println!("rx queues      {} (one AF_XDP socket each)", info.rx_queues);
    println!(
        "native XDP     {}{}",
        yes_no(info.native_xdp),
        if info.native_xdp {
            ""
        } else {
            " (prtip falls back to skb mode)"
        }
    );
    println!(
        "zero-copy      {}{}",
        yes_no(info.zero_copy),
        if info.zero_copy {
            ""
        } else {
            " (AF_XDP runs in copy mode)"
        }
    );
    match &info.attached {
        Some((id, name, mode)) => {
            println!("attached       {name} (id {id}, {mode} mode)");
            // prtip's own programs: show their counters.
            if let Ok(s) = prtip_xdp::responder::ResponderStats::of_interface(&args.iface) {
                println!(
                    "counters       {} SYN-ACK, {} RST sent; {} frames passed",
                    s.syn_ack, s.rst, s.passed
                );
            } else if let Ok(s) = prtip_xdp::sink::SinkStats::of_interface(&args.iface) {
                println!(
                    "counters       {} frames ({} bytes) dropped",
                    s.frames, s.bytes
                );
            }
        }
        None => println!("attached       nothing"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The AF_XDP flags of `prtip scan` (`--xdp IFACE`, `--xdp-mode`, `--zero-copy`,
/// `--xdp-queues`), checked and folded into the spec: `--xdp IFACE` selects the
/// xdp backend on IFACE; the other three become the spec's `XdpSettings`, so a
/// resumed scan opens the backend the same way.
pub struct ScanFlags<'a> {
    /// `--xdp IFACE`.
    pub xdp: Option<&'a str>,
    /// `--backend` as given.
    pub backend: Option<BackendArg>,
    /// `-e IFACE` as given.
    pub interface: Option<&'a str>,
    /// `--xdp-mode`.
    pub mode: Option<XdpModeArg>,
    /// `--zero-copy[=auto|on|off]`.
    pub zero_copy: Option<ZeroCopyArg>,
    /// `--xdp-queues N`.
    pub queues: Option<u32>,
}

fn usage(msg: String) -> anyhow::Error {
    anyhow::Error::new(crate::UsageError(msg))
}

fn backend_name(b: BackendArg) -> &'static str {
    match b {
        BackendArg::Packet => "packet",
        BackendArg::Xdp => "xdp",
        BackendArg::Connect => "connect",
    }
}

impl ScanFlags<'_> {
    /// Check the flags; returns the `--backend` to use, the interface and the
    /// AF_XDP settings. Nothing is opened here.
    pub fn apply(
        &self,
        raw: bool,
    ) -> anyhow::Result<(Option<BackendArg>, Option<String>, XdpSettings)> {
        let mut backend = self.backend;
        let mut interface = self.interface.map(str::to_string);
        if let Some(x) = self.xdp {
            if !raw {
                return Err(usage(format!(
                    "--xdp {x} applies to the raw scans only (-sS -sF -sN -sX -sA -sW -sM, with -sU); -sT and -sU alone use io_uring sockets"
                )));
            }
            match self.backend {
                None | Some(BackendArg::Xdp) => {}
                Some(b) => {
                    return Err(usage(format!(
                        "--xdp {x} conflicts with --backend {}",
                        backend_name(b)
                    )))
                }
            }
            match self.interface {
                Some(i) if i != x => {
                    return Err(usage(format!(
                        "--xdp {x} conflicts with -e {i}: give one interface"
                    )))
                }
                _ => {}
            }
            backend = Some(BackendArg::Xdp);
            interface = Some(x.to_string());
        }
        let is_xdp = backend == Some(BackendArg::Xdp);
        let tuning = [
            ("--xdp-mode", self.mode.is_some()),
            ("--zero-copy", self.zero_copy.is_some()),
            ("--xdp-queues", self.queues.is_some()),
        ];
        if let Some((flag, _)) = tuning.iter().find(|(_, given)| *given) {
            if !is_xdp {
                return Err(usage(format!(
                    "{flag} needs --xdp IFACE (or --backend xdp)"
                )));
            }
        }
        if self.queues == Some(0) {
            return Err(usage("bad --xdp-queues 0: use at least 1".into()));
        }
        let settings = XdpSettings {
            mode: match self.mode {
                None | Some(XdpModeArg::Native) => XdpMode::Native,
                Some(XdpModeArg::Skb) => XdpMode::Skb,
            },
            zero_copy: match self.zero_copy {
                None | Some(ZeroCopyArg::Auto) => ZeroCopy::Auto,
                Some(ZeroCopyArg::On) => ZeroCopy::On,
                Some(ZeroCopyArg::Off) => ZeroCopy::Off,
            },
            queues: self.queues,
        };
        Ok((backend, interface, settings))
    }
}
