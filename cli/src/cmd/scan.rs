//! `prtip scan`: flags → `ScanSpec` → engine → log → output.

use crate::paths::Paths;
use std::process::ExitCode;

/// Flags of `prtip scan`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Targets: addresses, CIDR, ranges, host names.
    pub targets: Vec<String>,
}

/// Run a scan.
pub fn run(_args: Args, paths: &Paths) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "prtip scan is being built (issue 5); logs will go to {} and {}",
        paths.scans_dir().display(),
        paths.history.display()
    )
}
