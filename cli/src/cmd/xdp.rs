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
        Some((id, name, mode)) => println!("attached       {name} (id {id}, {mode} mode)"),
        None => println!("attached       nothing"),
    }
    Ok(ExitCode::SUCCESS)
}
