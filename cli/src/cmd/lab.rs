//! `prtip lab up|down|status`: the project's own test lab.

use std::process::ExitCode;

/// Flags of `prtip lab`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run a lab command.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("prtip lab is being built (issue 3)")
}
