//! `prtip`: the thin binary. It parses flags (clap) and wires the library crates
//! together: `prtip-engine` scans, `prtip-store` keeps the log and history,
//! `prtip-export` renders, `prtip-monitor` shows, `prtip-lab` builds the test lab.
//!
//! Exit codes: 0 success (also a clean pause), 1 runtime failure, 2 bad input
//! (nothing was sent and nothing was written).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;
mod error;
mod paths;

pub use error::UsageError;

/// prtip: a line-rate network port scanner with a crash-safe scan log.
#[derive(Parser, Debug)]
#[command(name = "prtip", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Where scan logs live (default ~/.prtip).
    #[arg(long, global = true, env = "PRTIP_HOME", value_name = "DIR")]
    pub home: Option<std::path::PathBuf>,
    /// History index file (default `<home>/history.redb`).
    #[arg(long, global = true, env = "PRTIP_HISTORY", value_name = "FILE")]
    pub history: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Scan targets and record every fact in a scan log.
    Scan(Box<cmd::scan::Args>),
    /// Resume a paused or interrupted scan (--from-checkpoint), or re-print a scan's results.
    Replay(cmd::replay::Args),
    /// Build, inspect or remove the project's test lab (network namespaces).
    Lab(cmd::lab::Args),
    /// Export a recorded scan: text, json, xml, grep, csv, html or pdf.
    Export(cmd::export::Args),
    /// The scans this machine ran: list, show, resume, clean, rebuild, diff.
    History(cmd::history::Args),
    /// Check a scan log end to end (verify) or copy what is readable of a damaged one (salvage).
    Log(cmd::log::Args),
    /// Fold the logs of the shards of one scan (--shard i/N) into one scan, with proof of coverage.
    Merge(cmd::merge::Args),
    /// Watch a scan live (or open a finished one): progress, results, filters, exports, dashboard.
    Monitor(cmd::monitor::Args),
    /// Hold the lab's XDP programs attached (started by `prtip lab up --responder xdp`).
    #[command(name = "xdp-hold", hide = true)]
    XdpHold(cmd::xdp::HoldArgs),
    /// Show what AF_XDP can use on an interface (queues, native XDP, zero-copy, attached program).
    #[command(name = "xdp-info")]
    XdpInfo(cmd::xdp::InfoArgs),
    /// Print a shell completion script (bash, zsh, fish).
    Completions(cmd::completions::CompletionsArgs),
    /// Print the man page (or write every page with --dir).
    Man(cmd::completions::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(cmd::scan::nmap_style_args(std::env::args_os()));
    let paths = paths::Paths::from_cli(&cli);
    let result = match cli.command {
        Command::Scan(args) => cmd::scan::run(*args, &paths),
        Command::Replay(args) => cmd::replay::run(args, &paths),
        Command::Lab(args) => cmd::lab::run(args),
        Command::Export(args) => cmd::export::run(args, &paths),
        Command::History(args) => cmd::history::run(args, &paths),
        Command::Monitor(args) => cmd::monitor::run(args, &paths),
        Command::Log(args) => cmd::log::run(args),
        Command::Merge(args) => cmd::merge::run(args, &paths),
        Command::XdpHold(args) => cmd::xdp::run_hold(args),
        Command::XdpInfo(args) => cmd::xdp::run_info(args),
        Command::Completions(args) => cmd::completions::run_completions(args),
        Command::Man(args) => cmd::completions::run_man(args),
    };
    error::exit_code(result)
}
