//! `prtip replay`: continue a paused or interrupted scan from its last durable
//! checkpoint (`--from-checkpoint`), or re-print and re-export a scan's results.
//!
//! Owns: choosing the scan (id, log directory, `--last`, or by default the most
//! recent paused/interrupted one), reading everything the first run was told from
//! the log (spec, seed, excludes, resolved names, outputs) and rebuilding the set of
//! decided ports from its `Reply` events. Never re-parses the original flags: the
//! log is the only input. The scan itself runs through [`super::scan::execute`].

use super::scan::{execute, Start};
use crate::paths::Paths;
use crate::UsageError;
use anyhow::Context;
use prtip_store::event::Counters;
use prtip_store::{HistoryIndex, LogReader, ScanStatus};
use std::io::Write;
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

/// A row's status, with `running` turned into `interrupted` when no process holds
/// the log's writer lock any more.
fn effective_status(status: ScanStatus, dir: &std::path::Path) -> ScanStatus {
    if status == ScanStatus::Running && !prtip_store::writer_alive(dir).unwrap_or(false) {
        ScanStatus::Interrupted
    } else {
        status
    }
}

/// The pid the log's writer wrote into `<dir>/LOCK`.
fn lock_pid(dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("LOCK"))
        .ok()?
        .trim()
        .parse()
        .ok()
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
        r.status = effective_status(r.status, &r.log_path);
    }
    rows.sort_by_key(|r| (r.started_us, r.id));
    let pick = if last || !resumable_only {
        rows.last()
    } else {
        rows.iter().rev().find(|r| {
            matches!(r.status, ScanStatus::Paused | ScanStatus::Interrupted)
                    // held in place by a live process: SIGUSR2 continues it
                    && !prtip_store::writer_alive(&r.log_path).unwrap_or(false)
        })
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
    let rx = super::scan::has_capability(super::scan::CAP_NET_RAW)
        .then(prtip_engine::backend::packet::PreparedRx::in_background);
    // Read-only until the first write: no commit, no fdatasync before the first probe.
    let history = HistoryIndex::open_for_reading(&paths.history)
        .with_context(|| format!("opening the history index {}", paths.history.display()))?;
    let (id_hint, dir) = choose(&history, scan, last, true)?;
    // A damaged log is never appended to: every frame of every segment is
    // checked before anything is printed or written (a resume reads the whole
    // log for its decided ports anyway).
    refuse_damaged(&dir)?;
    let reader =
        LogReader::open(&dir).with_context(|| format!("opening the scan log {}", dir.display()))?;
    let started = reader
        .scan_started()
        .context("reading the scan's first event")?;
    let id = id_hint.unwrap_or(started.scan_id);
    // The status from the history row (O(1)); a log without a row is summarized.
    let status = match id_hint.map(|i| history.get(i)).transpose()?.flatten() {
        Some(row) => effective_status(row.status, &dir),
        None => prtip_store::summarize(&reader)?.status,
    };
    match status {
        ScanStatus::Completed => {
            return Err(usage(format!(
                "scan {id} is complete; nothing to resume (prtip replay {id} prints its results)"
            )));
        }
        ScanStatus::Running => {
            return Err(usage(format!(
                "scan {id} is still running; pause it first (Ctrl-C or kill -INT its pid)"
            )));
        }
        ScanStatus::Paused if prtip_store::writer_alive(&dir).unwrap_or(false) => {
            return Err(usage(format!(
                "scan {id} is paused in place and its process still holds the log; continue it \
                 with `kill -USR2 {}` (or `r` in prtip monitor), or stop it with kill -INT first",
                lock_pid(&dir).map_or_else(|| "<pid>".to_string(), |p| p.to_string())
            )));
        }
        _ => {}
    }
    let (from, mut counters) = match reader.last_checkpoint()? {
        Some((_, c)) => (c.next_index, c.counters),
        None => (0, Counters::default()),
    };
    // Decided ports are replayed from the log on a thread of the engine while the
    // first probes already go out; the open/closed/reply counters come from them.
    counters.open = 0;
    counters.closed = 0;
    counters.replies = 0;
    drop(reader);
    let passes = started.spec.max_retries as u64 + 1;
    let span = if started.spec.scan_type == prtip_store::event::ScanType::Syn {
        started.total_probes / passes.max(1)
    } else {
        started.total_probes
    };
    eprintln!(
        "prtip: resuming scan {id} at {:.1}% (walk position {from} of {})",
        super::scan::percent_done(from, span),
        started.total_probes,
    );
    execute(
        started.spec,
        Start::Resume {
            history,
            id,
            rx,
            dir,
            from,
            counters,
        },
        paths,
        quiet,
    )
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
    let reader =
        LogReader::open(&dir).with_context(|| format!("opening the scan log {}", dir.display()))?;
    let started = reader.scan_started()?;
    // The report header and the rows from one pass over the log.
    let (summary, rows) =
        prtip_store::summary_and_sorted_rows(&reader, &prtip_store::SortOptions::default())?;
    let mut meta = prtip_export::ReportMeta::from_started(&started);
    meta.status = format!("{:?}", summary.status).to_lowercase();
    meta.ended_us = summary.ended_us;
    meta.counters = summary.counters;
    let rows = rows.map(|r| r.map_err(|e| prtip_export::ExportError::Log(e.to_string())));
    let mut out = std::io::stdout().lock();
    prtip_export::render(
        prtip_export::Format::Text,
        &meta,
        rows,
        &mut out,
        &mut Default::default(),
    )?;
    out.flush()?;
    if !started.spec.outputs.is_empty() {
        let targets: Vec<prtip_export::Target> = started
            .spec
            .outputs
            .iter()
            .map(prtip_export::Target::from_spec)
            .collect::<Result<_, _>>()?;
        let rows = prtip_store::sorted_rows(&reader)?
            .map(|r| r.map_err(|e| prtip_export::ExportError::Log(e.to_string())));
        for s in prtip_export::export_rows(&meta, rows, &targets, &mut Default::default())? {
            eprintln!("prtip: wrote {} ({} rows)", s.path, s.rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}
