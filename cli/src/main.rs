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

/// An option that takes a value, followed by a negative number (`--rate -5`,
/// `-p -1`): clap would say "unexpected argument '-5'" (or, for `-p`, which
/// takes `-` ranges, scan port 1); name the option and the value instead.
fn negative_values(argv: &[std::ffi::OsString]) -> anyhow::Result<()> {
    use clap::CommandFactory;
    fn value_flags(cmd: &clap::Command, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            if !a.get_action().takes_values() || a.is_positional() {
                continue;
            }
            out.extend(
                a.get_long_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(|l| format!("--{l}")),
            );
            out.extend(
                a.get_short_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(|s| format!("-{s}")),
            );
        }
        for sub in cmd.get_subcommands() {
            value_flags(sub, out);
        }
    }
    let mut flags = Vec::new();
    value_flags(&Cli::command(), &mut flags);
    let is_negative = |s: &str| {
        s.strip_prefix('-').is_some_and(|n| {
            n.starts_with(|c: char| c.is_ascii_digit()) && n.parse::<f64>().is_ok()
        })
    };
    for w in argv.windows(2) {
        let (Some(opt), Some(val)) = (w[0].to_str(), w[1].to_str()) else {
            continue;
        };
        if !is_negative(val) || !flags.iter().any(|f| f == opt) {
            continue;
        }
        // As typed: nmap_style_args turned `-oX` into `--oX`.
        let opt = match opt.strip_prefix("--") {
            Some(o @ ("iL" | "oN" | "oX" | "oG" | "oA" | "oJ")) => format!("-{o}"),
            _ => opt.to_string(),
        };
        let why = if opt == "-p" || opt == "--ports" {
            format!(
                "ports are 1 to 65535 and cannot be negative (for ports 1 to {n} write -p 1-{n})",
                n = &val[1..]
            )
        } else {
            format!("{opt} takes no negative value")
        };
        return Err(anyhow::Error::new(UsageError(format!(
            "{opt} {val}: {why}"
        ))));
    }
    Ok(())
}

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
    let argv = cmd::scan::nmap_style_args(std::env::args_os());
    if let Err(e) = negative_values(&argv) {
        return error::exit_code(Err(e));
    }
    let cli = Cli::parse_from(argv);
    let paths = paths::Paths::from_cli(&cli);
    if let Err(e) = paths.check() {
        return error::exit_code(Err(e));
    }
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
