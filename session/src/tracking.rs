//! The history row of a running scan kept current around an in-place pause
//! (SIGUSR1 / the monitor's `p`) and continue (SIGUSR2 / `r`).
//!
//! Owns [`HistoryTracking`], an [`EventSink`] wrapper that rewrites the scan's
//! history row before `Paused` / `Resumed` reach the log. Never changes an
//! event: every one is passed on as it came.

use prtip_store::event::{Checkpoint, Event, EventSink, SinkError};
use prtip_store::{HistoryIndex, ScanStatus};

/// Passes every event on, and keeps the scan's history row current around an
/// in-place pause: before `Paused` is queued the row says `paused` (probes done
/// = the pause's position, the checkpoint recorded); before `Resumed` it says
/// `running` again. The row is written first, so whoever sees `Paused` in the
/// log finds the history already saying so. A failing history write is
/// kept (the first one, [`HistoryTracking::warning`]) and never stops the scan:
/// the log stays the truth, and the session rewrites the row from the log at
/// the end (`prtip history rebuild` re-derives it too).
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
    warning: Option<String>,
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
        let (checkpoints, warning) = match history.get(id) {
            Ok(row) => (row.map_or(0, |r| r.checkpoints), None),
            Err(e) => (
                0,
                Some(format!("could not read the history row of scan {id} ({e})")),
            ),
        };
        HistoryTracking {
            inner,
            history,
            id,
            checkpoints,
            last: None,
            warning,
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
        if self.warning.is_none() {
            self.warning = Some(format!(
                "could not update the history row of scan {} ({e}); the log is unaffected (`prtip history rebuild` re-reads it)",
                self.id
            ));
        }
    }

    /// The first history write that failed, in words (`None`: every write worked).
    /// Call it after the last event: a held `Resumed` settles first.
    pub fn warning(&mut self) -> Result<Option<String>, SinkError> {
        self.settle()?;
        Ok(self.warning.clone())
    }

    fn update(&mut self, status: ScanStatus, paused_at: Option<(u64, u64)>) {
        if let Err(e) = self.row_update(status, paused_at).apply(self.history) {
            self.warn(&e);
        }
    }

    /// Start the row write of a `Resumed` on a thread and hold the event back.
    fn update_in_background(&mut self, event: Event) -> Result<(), SinkError> {
        let u = self.row_update(ScanStatus::Running, None);
        let path = self.history.path().to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("prtip-history".into())
            .spawn(move || u.apply(&HistoryIndex::open(&path)?));
        match spawned {
            Ok(h) => {
                self.held = Some((event, h));
                Ok(())
            }
            Err(_) => {
                self.update(ScanStatus::Running, None);
                self.inner.push(event)
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

/// The session settles through [`HistoryTracking::warning`] and sees its errors;
/// this only makes sure a held `Resumed` is not lost when a run unwinds early
/// (its failure is the one being reported then).
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
                return self.update_in_background(event);
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
