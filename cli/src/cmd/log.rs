//! `prtip log verify|salvage`: check a scan log end to end, and copy what is
//! readable of a damaged one into a new log.
//!
//! Owns: the two subcommands' flags, their printout and exit statuses. The
//! checks themselves are `prtip_store::verify` and `prtip_store::salvage`
//! (store/FORMAT.md, "Verifying and salvaging"); this module never reads
//! segment bytes itself and never modifies the log it is given.

use crate::UsageError;
use prtip_store::{LogEnd, Verification};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status of `prtip log verify` when the log is damaged (and of `salvage`
/// when it copied only part of the log). 0 means intact, 1 that the check could
/// not run (not a log, unreadable file, newer format), 2 bad usage.
pub const EXIT_DAMAGED: u8 = 3;

/// Flags of `prtip log`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Check every frame and record of every segment of a scan log. Exit status:
    /// 0 intact (finished, interrupted or running), 3 damaged, 1 could not check.
    Verify {
        /// The scan log directory.
        dir: PathBuf,
    },
    /// Copy the readable records of a damaged scan log into a new log, marked as
    /// salvaged, and report what was lost. The damaged log is not modified.
    /// Exit status: 0 the whole log was copied, 3 part of it (the rest is lost).
    Salvage {
        /// The damaged scan log directory.
        dir: PathBuf,
        /// Directory for the new log (must not hold a log).
        #[arg(short = 'o', long = "output", value_name = "NEWDIR")]
        output: PathBuf,
    },
}

fn usage(msg: String) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg))
}

fn check_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Err(usage(format!(
            "{} is not a directory (give a scan log directory, e.g. ~/.prtip/scans/1)",
            dir.display()
        )));
    }
    Ok(())
}

/// The printout of a verification (one fact a line).
pub fn describe(v: &Verification) -> String {
    let mut s = format!(
        "{}: {} segment(s), {} record(s) check out\n",
        v.dir.display(),
        v.segments,
        v.records
    );
    let end = match v.end {
        LogEnd::Closed => "finished by its writer (ends with its close frame)",
        LogEnd::Interrupted => "interrupted (no close frame; resumable from its last checkpoint)",
        LogEnd::Live => "being written (a writer holds the lock)",
        LogEnd::Damaged => "DAMAGED",
    };
    s.push_str(&format!("end: {end}\n"));
    if let Some(d) = &v.damage {
        s.push_str(&format!(
            "damage: segment {} at offset {}: {}\n\
             nothing from there on is read as data; `prtip log salvage {} -o NEWDIR` \
             copies the {} readable record(s) into a new log\n",
            d.segment,
            d.offset,
            d.what,
            v.dir.display(),
            v.records
        ));
    }
    if let Some(d) = &v.target_list {
        s.push_str(&format!(
            "damage: target list {}: {}
             the scan's targets are read from that file (-iL); without it the log's              results stay readable by `prtip log salvage` only if the file is restored
",
            d.path.display(),
            d.what
        ));
    }
    if let Some(t) = &v.torn {
        s.push_str(&format!(
            "torn tail: segment {} offset {}: {} ({} bytes never acknowledged; the next \
             writer cuts them)\n",
            t.segment, t.offset, t.reason, t.dropped_bytes
        ));
    }
    if v.salvaged {
        s.push_str("salvaged: written by prtip log salvage from a damaged log\n");
    }
    s
}

/// Run `prtip log`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Verify { dir } => {
            check_dir(&dir)?;
            let v = prtip_store::verify(&dir)?;
            print!("{}", describe(&v));
            Ok(if v.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_DAMAGED)
            })
        }
        Cmd::Salvage { dir, output } => {
            check_dir(&dir)?;
            if output.exists()
                && std::fs::read_dir(&output).map_or(true, |mut d| d.next().is_some())
            {
                return Err(usage(format!(
                    "-o {}: already exists and is not an empty directory; salvage writes a new log",
                    output.display()
                )));
            }
            let r = prtip_store::salvage(&dir, &output)?;
            println!(
                "{}: wrote {} record(s) into a new log marked as salvaged",
                r.dst.display(),
                r.kept
            );
            match &r.damage {
                None => {
                    println!("nothing lost: {} is intact", dir.display());
                    Ok(ExitCode::SUCCESS)
                }
                Some(d) => {
                    println!(
                        "lost: everything from segment {} offset {} on ({}; {} byte(s), {} later \
                         segment file(s))",
                        d.segment, d.offset, d.what, r.lost_bytes, r.lost_segments
                    );
                    println!(
                        "the new log has no end event: `prtip replay {} --from-checkpoint` probes \
                         again from its last checkpoint",
                        r.dst.display()
                    );
                    Ok(ExitCode::from(EXIT_DAMAGED))
                }
            }
        }
    }
}
