//! `prtip monitor [SCAN | --last]`: open the terminal monitor on a scan log —
//! one that another process is writing (attach) or a finished one.
//!
//! This module resolves which log to open and parses `--filter`; the monitor
//! itself is `prtip_monitor::run`. It never writes to the log or the history.

use crate::paths::Paths;
use crate::UsageError;
use anyhow::Context;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `prtip monitor`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Keys: 1 2 3 / Tab screens, f filter builder, s/S sort, p pause (SIGUSR1), \
r resume (SIGUSR2), e export, ? help, q quit. Quitting never stops the scan."
)]
pub struct Args {
    /// Scan id (as in `prtip history list`) or the path of a scan log directory.
    #[arg(
        value_name = "SCAN",
        required_unless_present = "last",
        conflicts_with = "last"
    )]
    pub scan: Option<String>,
    /// Open the most recent scan (the highest scan id under `<home>/scans`).
    #[arg(long)]
    pub last: bool,
    /// Show only results matching this filter expression (the same language as
    /// `prtip export --filter`; edit it live with `f`).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
}

/// Which log directory `args` names.
pub fn resolve(args: &Args, paths: &Paths) -> anyhow::Result<PathBuf> {
    let scans = paths.scans_dir();
    if args.last {
        return last_scan(&scans).ok_or_else(|| {
            UsageError(format!(
                "--last: no scan logs under {}; run a scan first (`prtip scan ...`) or pass --home",
                scans.display()
            ))
            .into()
        });
    }
    let scan = args.scan.as_deref().unwrap_or_default();
    let dir = if !scan.is_empty() && scan.bytes().all(|b| b.is_ascii_digit()) {
        scans.join(scan)
    } else {
        PathBuf::from(scan)
    };
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "no scan log `{scan}`: {} is not a directory (give a scan id from `prtip history list`, a log directory, or --last)",
            dir.display()
        ))
        .into());
    }
    Ok(dir)
}

/// The scan directory with the highest numeric name.
fn last_scan(scans: &Path) -> Option<PathBuf> {
    std::fs::read_dir(scans)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .parse::<u64>()
                .ok()
                .map(|id| (id, e.path()))
        })
        .max_by_key(|(id, _)| *id)
        .map(|(_, p)| p)
}

/// Run the monitor.
pub fn run(args: Args, paths: &Paths) -> anyhow::Result<ExitCode> {
    let filter = match &args.filter {
        Some(expr) => Some(
            prtip_filter::Filter::parse(expr)
                .map_err(|e| UsageError(format!("invalid --filter: {e}")))?,
        ),
        None => None,
    };
    let dir = resolve(&args, paths)?;
    if !std::io::stdout().is_terminal() {
        return Err(UsageError(
            "prtip monitor draws a full-screen interface and needs a terminal on stdout; \
             for a report use `prtip export`"
                .into(),
        )
        .into());
    }
    let opts = prtip_monitor::Options {
        filter,
        ..prtip_monitor::Options::default()
    };
    prtip_monitor::run(&dir, opts).with_context(|| format!("monitor on {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}
