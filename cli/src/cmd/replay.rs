//! `prtip replay`: continue a paused or interrupted scan from its last durable
//! checkpoint (`--from-checkpoint`), or re-print and re-export a scan's results.
//!
//! Owns: choosing the scan (id, log directory, `--last`, or by default the most
//! recent paused/interrupted one), reading everything the first run was told from
//! the log (spec, seed, excludes, resolved names, outputs) and rebuilding the set of
//! decided ports from its `Reply` events. Never re-parses the original flags: the
//! log is the only input. The scan itself runs through prtip-session and
//! [`super::scan::drive`].

use crate::paths::Paths;
use crate::UsageError;
use anyhow::Context;
use prtip_session::{effective_status, privilege, Start};
use prtip_store::{HistoryIndex, LogReader, ScanStatus};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `prtip replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Scan id or log directory (default: the most recent paused or interrupted scan
    /// with --from-checkpoint, else the most recent scan).
    pub scan: Option<String>,
    /// The most recent scan, whatever its state.
    #[arg(long)]
    pub last: bool,
    /// Continue the scan from its last durable checkpoint.
    #[arg(long = "from-checkpoint")]
    pub from_checkpoint: bool,
    /// Do not print open ports as they are found.
    #[arg(long)]
    pub quiet: bool,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Find the log directory (and history id, when known) the user means.
pub fn choose(
    history: &HistoryIndex,
    scan: Option<&str>,
    last: bool,
    resumable_only: bool,
) -> anyhow::Result<(Option<u64>, PathBuf)> {
    if let Some(s) = scan {
        if let Ok(id) = s.parse::<u64>() {
            let row = history.get(id)?.ok_or_else(|| {
                usage(format!(
                    "no scan {id} in the history index (see prtip history list)"
                ))
            })?;
            return Ok((Some(id), row.log_path));
        }
        let p = PathBuf::from(s);
        if p.is_dir() {
            return Ok((None, p));
        }
        return Err(usage(format!(
            "\"{s}\" is neither a scan id nor a scan log directory"
        )));
    }
    // No `refresh` (it re-reads whole logs): a row still marked running whose
    // writer is gone is an interrupted scan.
    let mut rows = history.list()?;
    for r in rows.iter_mut() {
        r.status = effective_status(r.status, &r.log_path)?;
    }
    rows.sort_by_key(|r| (r.started_us, r.id));
    let pick = if last || !resumable_only {
        rows.last()
    } else {
        let mut pick = None;
        for r in rows.iter().rev() {
            // held in place by a live process: SIGUSR2 continues it
            if matches!(r.status, ScanStatus::Paused | ScanStatus::Interrupted)
                && !prtip_store::writer_alive(&r.log_path)?
            {
                pick = Some(r);
                break;
            }
        }
        pick
    };
    match pick {
        Some(r) => Ok((Some(r.id), r.log_path.clone())),
        None if resumable_only && !last => Err(usage(
            "no paused or interrupted scan to resume (see prtip history list)",
        )),
        None => Err(usage("no scans yet")),
    }
}

/// Fail (exit 1) if the log in `dir` is damaged, naming the damage and the way
/// out; nothing is written.
pub fn refuse_damaged(dir: &std::path::Path) -> anyhow::Result<()> {
    let v = prtip_store::verify(dir)
        .with_context(|| format!("checking the scan log {}", dir.display()))?;
    if let Some(d) = &v.damage {
        anyhow::bail!(
            "not resuming: the scan log {} is damaged in segment {} at offset {}: {} \
             ({} record(s) before it check out; appending would bury the damage). \
             `prtip log verify {}` shows it; `prtip log salvage {} -o NEWDIR` copies the \
             readable records into a new log that can be resumed",
            dir.display(),
            d.segment,
            d.offset,
            d.what,
            v.records,
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Resume scan `scan` (or the most recent resumable one) from its last checkpoint.
pub fn resume(
    scan: Option<&str>,
    last: bool,
    paths: &Paths,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    // A -sS scan's receive ring takes ~8 ms to set up (the kernel waits for an RCU
    // grace period): start it now, while the history and the log are read.
    let rx = privilege::has_capability(privilege::CAP_NET_RAW)
        .then(prtip_engine::backend::packet::PreparedRx::in_background);
    // Read-only until the first write: no commit, no fdatasync before the first probe.
    let history = HistoryIndex::open_for_reading(&paths.history)
        .with_context(|| format!("opening the history index {}", paths.history.display()))?;
    let (id_hint, dir) = choose(&history, scan, last, true)?;
    // A damaged log is never appended to: every frame of every segment is
    // checked before anything is printed or written.
    refuse_damaged(&dir)?;
    let point = prtip_session::resume_point(history, id_hint, dir, rx)?;
    eprintln!(
        "prtip: resuming scan {} at {:.1}% (walk position {} of {})",
        point.resume.id, point.percent, point.resume.from, point.total_probes,
    );
    let interrupts = super::scan::Interrupts::install()?;
    let session = prtip_session::prepare(
        point.spec,
        Start::Resume(point.resume),
        &paths.session_home(),
    )?;
    super::scan::drive(session, super::scan::Show::quiet(quiet), None, interrupts)
}

/// Run `prtip replay`.
pub fn run(args: Args, paths: &Paths) -> anyhow::Result<ExitCode> {
    if args.from_checkpoint {
        return resume(args.scan.as_deref(), args.last, paths, args.quiet);
    }
    // Re-print (and re-export) a scan's results from its log (the index is only read).
    let history = HistoryIndex::open_for_reading(&paths.history)
        .with_context(|| format!("opening the history index {}", paths.history.display()))?;
    let (_, dir) = choose(&history, args.scan.as_deref(), args.last, false)?;
    let started = LogReader::open(&dir)
        .and_then(|r| r.scan_started())
        .with_context(|| format!("opening the scan log {}", dir.display()))?;
    prtip_export::export_log(
        &dir,
        prtip_export::Format::Text,
        "-",
        &mut Default::default(),
    )?;
    for s in prtip_export::write_outputs(&dir, &started.spec.outputs, &mut Default::default())? {
        eprintln!("prtip: wrote {} ({} rows)", s.path, s.rows);
    }
    Ok(ExitCode::SUCCESS)
}
