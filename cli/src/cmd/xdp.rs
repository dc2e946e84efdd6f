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
