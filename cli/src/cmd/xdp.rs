//! `prtip xdp-info IFACE`: what AF_XDP can use on an interface; and
//! `prtip xdp-hold` (hidden): the process behind `prtip lab up --responder xdp`
//! that holds the lab's XDP links (responder or sink on the target's veth,
//! pass-through on the scanner's) until SIGTERM, SIGINT or SIGHUP, or until the
//! lab's interfaces disappear. Owns nothing but that wait; the programs and the
//! argument format live in `prtip_xdp::lab`.

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
/// xdp backend on IFACE; the other three go into `extra_json` so a resumed scan
/// opens the backend the same way.
pub struct ScanFlags<'a> {
    /// `--xdp IFACE`.
    pub xdp: Option<&'a str>,
    /// `--backend` as given.
    pub backend: Option<&'a str>,
    /// `-e IFACE` as given.
    pub interface: Option<&'a str>,
    /// `--xdp-mode`.
    pub mode: Option<&'a str>,
    /// `--zero-copy[=auto|on|off]`.
    pub zero_copy: Option<&'a str>,
    /// `--xdp-queues N`.
    pub queues: Option<u32>,
}

fn usage(msg: String) -> anyhow::Error {
    anyhow::Error::new(crate::UsageError(msg))
}

impl ScanFlags<'_> {
    /// Check the flags; returns (`--backend` value to use, interface) and adds the
    /// XDP options to `extra`. Nothing is opened here.
    pub fn apply(
        &self,
        syn: bool,
        extra: &mut serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<(Option<String>, Option<String>)> {
        let mut backend = self.backend.map(str::to_string);
        let mut interface = self.interface.map(str::to_string);
        if let Some(x) = self.xdp {
            if !syn {
                return Err(usage(format!(
                    "--xdp {x} applies to -sS only; -sT and -sU use io_uring sockets"
                )));
            }
            match self.backend {
                None | Some("xdp") => {}
                Some(b) => return Err(usage(format!("--xdp {x} conflicts with --backend {b}"))),
            }
            match self.interface {
                Some(i) if i != x => {
                    return Err(usage(format!(
                        "--xdp {x} conflicts with -e {i}: give one interface"
                    )))
                }
                _ => {}
            }
            backend = Some("xdp".into());
            interface = Some(x.to_string());
        }
        let is_xdp = backend.as_deref() == Some("xdp");
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
        if let Some(m) = self.mode {
            let mode: prtip_xdp::XdpMode = m
                .parse()
                .map_err(|_| usage(format!("bad --xdp-mode \"{m}\": use native or skb")))?;
            extra.insert("xdp_mode".into(), mode.as_str().into());
        }
        if let Some(z) = self.zero_copy {
            parse_zero_copy(z).map_err(usage)?;
            extra.insert("zero_copy".into(), z.into());
        }
        if let Some(q) = self.queues {
            if q == 0 {
                return Err(usage("bad --xdp-queues 0: use at least 1".into()));
            }
            extra.insert("xdp_queues".into(), q.into());
        }
        Ok((backend, interface))
    }
}

fn parse_zero_copy(z: &str) -> Result<prtip_xdp::ZeroCopy, String> {
    match z {
        "auto" => Ok(prtip_xdp::ZeroCopy::Auto),
        "on" | "yes" | "require" => Ok(prtip_xdp::ZeroCopy::Require),
        "off" | "no" => Ok(prtip_xdp::ZeroCopy::Off),
        other => Err(format!("bad --zero-copy \"{other}\": use auto, on or off")),
    }
}
