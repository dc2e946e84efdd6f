//! Resuming a scan from its log: whether it may be resumed, where it continues
//! and with which counters. The log is the only input: the spec, seed, excludes,
//! resolved names and outputs are the first run's, never re-parsed flags.

use crate::error::usage;
use crate::prepare::Resume;
use anyhow::Context;
use prtip_engine::backend::packet::PendingRx;
use prtip_store::event::{Counters, ScanSpec};
use prtip_store::{HistoryIndex, LogReader, ScanStatus};
use std::path::{Path, PathBuf};

/// A row's status, with `running` turned into `interrupted` when no process holds
/// the log's writer lock any more.
pub fn effective_status(status: ScanStatus, dir: &Path) -> anyhow::Result<ScanStatus> {
    Ok(
        if status == ScanStatus::Running
            && !prtip_store::writer_alive(dir)
                .with_context(|| format!("checking the writer lock of {}", dir.display()))?
        {
            ScanStatus::Interrupted
        } else {
            status
        },
    )
}

/// The pid the log's writer wrote into `<dir>/LOCK`, if it can be read.
pub fn lock_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("LOCK"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Where a scan continues, read from its log.
pub struct ResumePoint {
    /// The first run's spec.
    pub spec: ScanSpec,
    /// What [`crate::prepare`] takes (as [`crate::Start::Resume`]).
    pub resume: Resume,
    /// Percent of the walk done at the checkpoint (first pass; see [`percent_done`]).
    pub percent: f64,
    /// Size of the scan's probe index space, as its `ScanStarted` says.
    pub total_probes: u64,
}

/// Read the scan whose log is in `dir` (history id `id_hint` when known) and
/// say where it continues. Refused (bad input) when it is complete, still
/// running, or paused in place by a live process.
pub fn resume_point(
    history: HistoryIndex,
    id_hint: Option<u64>,
    dir: PathBuf,
    rx: Option<PendingRx>,
) -> anyhow::Result<ResumePoint> {
    let reader =
        LogReader::open(&dir).with_context(|| format!("opening the scan log {}", dir.display()))?;
    let started = reader
        .scan_started()
        .context("reading the scan's first event")?;
    let id = id_hint.unwrap_or(started.scan_id);
    // The status from the history row (O(1)); a log without a row is summarized.
    let status = match id_hint.map(|i| history.get(i)).transpose()?.flatten() {
        Some(row) => effective_status(row.status, &dir)?,
        None => prtip_store::summarize_lenient(&reader)?.status,
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
        ScanStatus::Paused if prtip_store::writer_alive(&dir)? => {
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
    let span = prtip_store::pass_span(
        started.spec.scan_type,
        started.spec.max_retries,
        started.total_probes,
    );
    Ok(ResumePoint {
        percent: percent_done(from, span),
        total_probes: started.total_probes,
        spec: started.spec,
        resume: Resume {
            history,
            id,
            rx,
            dir,
            from,
            counters,
        },
    })
}

/// Percent of the scan done at walk position `pos`, measured on the first pass (the
/// retry passes resend only unanswered probes, usually few).
pub fn percent_done(pos: u64, span: u64) -> f64 {
    prtip_store::progress_at(pos, span) * 100.0
}
