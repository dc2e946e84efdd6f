//! The live side of a running `prtip scan`: the monitor in front of it
//! (`prtip scan --tui`) and the history row kept current when the scan is held
//! in place (SIGUSR1 / the monitor's `p`) and continued (SIGUSR2 / `r`).
//!
//! Owns: the thread layout of `--tui` (the scan on a thread of its own, the
//! monitor on the main thread, terminal output of the scan held back while the
//! monitor is on screen) and [`HistoryTracking`], an [`EventSink`] wrapper that
//! rewrites the scan's history row before `Paused` / `Resumed` reach the log.
//! Never touches the engine's state or the log's contents: the monitor only
//! reads the log, and the tracking sink passes every event on unchanged.

use crate::paths::Paths;
use crate::UsageError;
use anyhow::{anyhow, Context};
use prtip_store::event::{Checkpoint, Event, EventSink, ScanSpec, SinkError};
use prtip_store::{HistoryIndex, ScanStatus};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// What the scan thread of `--tui` shares with the monitor on the main thread.
pub struct Front {
    dir: mpsc::Sender<PathBuf>,
    on_screen: Arc<AtomicBool>,
}

impl Front {
    /// The scan's log exists (its writer holds the lock): show it.
    pub fn log_created(&self, dir: &Path) {
        let _ = self.dir.send(dir.to_path_buf());
    }

    /// Whether the monitor owns the terminal (the scan must print nothing).
    pub fn on_screen(&self) -> bool {
        self.on_screen.load(SeqCst)
    }

    /// A flag that is true while the monitor owns the terminal.
    pub fn on_screen_flag(&self) -> Arc<AtomicBool> {
        self.on_screen.clone()
    }

    /// Block until the user has left the monitor (the scan's last words go to
    /// the normal terminal, after the monitor restored it).
    pub fn wait_closed(&self) {
        while self.on_screen() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sets the monitor's close flag when the scan thread ends with an error or a
/// panic (a finished or paused scan leaves the monitor open until `q`).
struct CloseOnFailure {
    close: Arc<AtomicBool>,
    ok: bool,
}

impl Drop for CloseOnFailure {
    fn drop(&mut self) {
        if !self.ok {
            self.close.store(true, SeqCst);
        }
    }
}

/// `prtip scan --tui`: run the scan on a thread of its own and the monitor on
/// this one. Quitting the monitor (`q`, Esc, Ctrl-C) leaves the scan running in
/// the terminal with its usual progress line, open ports and summary; Ctrl-C
/// then pauses it (Checkpoint + Paused, resumable) as without `--tui`. `p`/`r`
/// in the monitor hold and continue the scan in place (SIGUSR1/SIGUSR2 to this
/// process). If the scan fails, the monitor closes and the error is printed.
pub fn scan_with_monitor(
    spec: ScanSpec,
    command_line: Vec<String>,
    paths: &Paths,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    if !std::io::stdout().is_terminal() {
        return Err(UsageError(
            "--tui draws the monitor full-screen and needs a terminal on stdout; \
             without a terminal run the scan without --tui (and `prtip monitor SCAN` elsewhere)"
                .into(),
        )
        .into());
    }
    let (tx, rx) = mpsc::channel();
    let on_screen = Arc::new(AtomicBool::new(true));
    let close = Arc::new(AtomicBool::new(false));
    let front = Front {
        dir: tx,
        on_screen: on_screen.clone(),
    };
    let paths2 = paths.clone();
    let close2 = close.clone();
    let scan = std::thread::Builder::new()
        .name("prtip-scan".into())
        .spawn(move || {
            let mut guard = CloseOnFailure {
                close: close2,
                ok: false,
            };
            let r = super::scan::execute_with(
                spec,
                super::scan::Start::Fresh { command_line },
                &paths2,
                quiet,
                Some(front),
            );
            guard.ok = r.is_ok();
            r
        })
        .context("starting the scan thread")?;
    // No directory: the scan ended before writing anything (bad input, no
    // privilege, no route); its error is the answer and no monitor is drawn.
    if let Ok(dir) = rx.recv() {
        let opts = prtip_monitor::Options {
            close: Some(close),
            ..Default::default()
        };
        let shown = prtip_monitor::run(&dir, opts);
        on_screen.store(false, SeqCst);
        if let Err(e) = shown {
            eprintln!("prtip: the monitor stopped ({e}); the scan goes on");
        }
    }
    on_screen.store(false, SeqCst);
    scan.join()
        .map_err(|_| anyhow!("the scan thread panicked (the log stays resumable)"))?
}

/// Passes every event on, and keeps the scan's history row current around an
/// in-place pause: before `Paused` is queued the row says `paused` (probes done
/// = the pause's position, the checkpoint recorded); before `Resumed` it says
/// `running` again. The row is written first, so whoever sees `Paused` in the
/// log finds the history already saying so. A failing history write is
/// reported once and never stops the scan (the log stays the truth; `prtip
/// history rebuild` re-derives the row).
///
/// With [`HistoryTracking::resumed_in_background`] (a scan resumed from its
/// checkpoint), the first `Resumed` does not wait for the history: the row is
/// written on a thread of its own (a write opens the index for writing and syncs
/// it, tens of ms on a busy disk) while the first probes go out, and the event is
/// held back until that write is done — it reaches the log, still after the row,
/// before the next event, checkpoint, or the end of the tracking.
pub struct HistoryTracking<'a> {
    inner: &'a mut dyn EventSink,
    history: &'a HistoryIndex,
    id: u64,
    checkpoints: u64,
    last: Option<Checkpoint>,
    warned: bool,
    background_resumed: bool,
    /// A `Resumed` held back until its row write (the thread) is done.
    held: Option<(Event, std::thread::JoinHandle<prtip_store::Result<()>>)>,
}

/// What a history row write needs: `history.get(id)`, changed, upserted.
struct RowUpdate {
    id: u64,
    status: ScanStatus,
    checkpoints: u64,
    last: Option<Checkpoint>,
    paused_at: Option<(u64, u64)>,
}

impl RowUpdate {
    fn apply(&self, history: &HistoryIndex) -> prtip_store::Result<()> {
        let Some(mut row) = history.get(self.id)? else {
            return Ok(());
        };
        row.status = self.status;
        row.checkpoints = row.checkpoints.max(self.checkpoints);
        if let Some(c) = &self.last {
            row.probes_done = row.probes_done.max(c.next_index);
            row.ports_discovered = row.ports_discovered.max(c.counters.open);
            history.add_checkpoint(self.id, c)?;
        }
        match self.paused_at {
            Some((next_index, time_us)) => {
                row.probes_done = next_index;
                row.ended_us = Some(time_us);
            }
            None => row.ended_us = None,
        }
        history.upsert(&row)
    }
}

impl<'a> HistoryTracking<'a> {
    /// Track scan `id` of `history`, passing events to `inner`.
    pub fn new(inner: &'a mut dyn EventSink, history: &'a HistoryIndex, id: u64) -> Self {
        let checkpoints = history.get(id).ok().flatten().map_or(0, |r| r.checkpoints);
        HistoryTracking {
            inner,
            history,
            id,
            checkpoints,
            last: None,
            warned: false,
            background_resumed: false,
            held: None,
        }
    }

    /// Write the row of the first `Resumed` on a thread (see the type's docs).
    pub fn resumed_in_background(mut self) -> Self {
        self.background_resumed = true;
        self
    }

    fn row_update(&self, status: ScanStatus, paused_at: Option<(u64, u64)>) -> RowUpdate {
        RowUpdate {
            id: self.id,
            status,
            checkpoints: self.checkpoints,
            last: self.last,
            paused_at,
        }
    }

    fn warn(&mut self, e: &dyn std::fmt::Display) {
        if !self.warned {
            self.warned = true;
            eprintln!(
                "prtip: could not update the history row of scan {} ({e}); the log is unaffected (`prtip history rebuild` re-reads it)",
                self.id
            );
        }
    }

    fn update(&mut self, status: ScanStatus, paused_at: Option<(u64, u64)>) {
        if let Err(e) = self.row_update(status, paused_at).apply(self.history) {
            self.warn(&e);
        }
    }

    /// Start the row write of a `Resumed` on a thread and hold the event back.
    fn update_in_background(&mut self, event: Event) {
        let u = self.row_update(ScanStatus::Running, None);
        let path = self.history.path().to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("prtip-history".into())
            .spawn(move || u.apply(&HistoryIndex::open(&path)?));
        match spawned {
            Ok(h) => self.held = Some((event, h)),
            Err(_) => {
                self.update(ScanStatus::Running, None);
                let _ = self.inner.push(event);
            }
        }
    }

    /// Wait for a background row write and pass its held `Resumed` on.
    fn settle(&mut self) -> Result<(), SinkError> {
        let Some((event, h)) = self.held.take() else {
            return Ok(());
        };
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.warn(&e),
            Err(_) => self.warn(&"the history thread panicked"),
        }
        self.inner.push(event)
    }
}

impl Drop for HistoryTracking<'_> {
    fn drop(&mut self) {
        let _ = self.settle();
    }
}

impl EventSink for HistoryTracking<'_> {
    fn push(&mut self, event: Event) -> Result<(), SinkError> {
        self.settle()?;
        match &event {
            Event::Paused(p) => self.update(ScanStatus::Paused, Some((p.next_index, p.time_us))),
            Event::Resumed(_) if std::mem::take(&mut self.background_resumed) => {
                self.update_in_background(event);
                return Ok(());
            }
            Event::Resumed(_) => self.update(ScanStatus::Running, None),
            _ => {}
        }
        self.inner.push(event)
    }

    fn checkpoint(&mut self, c: Checkpoint) -> Result<(), SinkError> {
        self.settle()?;
        self.checkpoints += 1;
        self.last = Some(c);
        self.inner.checkpoint(c)
    }
}
