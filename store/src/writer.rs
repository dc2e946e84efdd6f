//! The log writer thread: sinks push events into a bounded queue; one thread
//! drains it in groups, archives them with an [`Appender`], and makes each group
//! durable with one `msync` when a checkpoint (or `sync`) asks for it — group commit.
//!
//! This module owns the thread, the queue and [`LogSink`]; the bytes on disk are
//! the appender's business.

use crate::appender::{Appender, LogOptions, RecoveryReport};
use crate::error::{Result, StoreError};
use crate::event::{Checkpoint, Event, EventSink, SinkError};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Ack = Sender<std::result::Result<(), String>>;

enum Msg {
    One(Event),
    Many(Vec<Event>),
    Checkpoint(Checkpoint, Ack),
    Sync(Ack),
    Flush(Ack),
    Stop,
}

struct Shared {
    error: Mutex<Option<String>>,
    durable: Arc<AtomicU64>,
}

impl Shared {
    fn closed(&self) -> SinkError {
        let msg = self
            .error
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "the log writer was shut down".into());
        SinkError::Closed(msg)
    }
}

/// Owns the writer thread of one scan log. Holds the directory's writer lock
/// while alive (readers see the scan as running).
pub struct LogWriter {
    tx: Sender<Msg>,
    handle: Option<JoinHandle<Result<()>>>,
    shared: Arc<Shared>,
    dir: PathBuf,
}

/// A cheap, cloneable handle that pushes events to a [`LogWriter`].
#[derive(Clone)]
pub struct LogSink {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
}

impl LogWriter {
    /// Start a new, empty log in `dir` (created if missing).
    pub fn create(dir: &Path, opts: LogOptions) -> Result<LogWriter> {
        let cap = opts.queue_capacity;
        let sync_every = opts.sync_every_bytes;
        let app = Appender::create(dir, opts)?;
        Ok(Self::spawn(app, cap, sync_every))
    }

    /// Continue a log after a pause or crash (see [`Appender::open_append`]).
    pub fn open_append(dir: &Path, opts: LogOptions) -> Result<(LogWriter, RecoveryReport)> {
        let cap = opts.queue_capacity;
        let sync_every = opts.sync_every_bytes;
        let (app, report) = Appender::open_append(dir, opts)?;
        Ok((Self::spawn(app, cap, sync_every), report))
    }

    fn spawn(app: Appender, cap: usize, sync_every: u64) -> LogWriter {
        let (tx, rx) = bounded(cap);
        let shared = Arc::new(Shared {
            error: Mutex::new(None),
            durable: app.durable_counter(),
        });
        let dir = app.dir().to_path_buf();
        let sh = shared.clone();
        let handle = std::thread::Builder::new()
            .name("prtip-log".into())
            .spawn(move || run(app, rx, sh, sync_every))
            .expect("spawn log writer thread");
        LogWriter {
            tx,
            handle: Some(handle),
            shared,
            dir,
        }
    }

    /// A sink for the engine (clone it for more producer threads).
    pub fn sink(&self) -> LogSink {
        LogSink {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Bytes made durable so far.
    pub fn durable_bytes(&self) -> u64 {
        self.shared.durable.load(Ordering::Relaxed)
    }

    /// The scan directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write everything queued so far, make it durable, shrink the active segment,
    /// wait for background compression, join the thread and release the lock.
    ///
    /// Call it after every producer is done: events pushed after `finish` fail with
    /// `SinkError::Closed`.
    pub fn finish(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(h) = self.handle.take() else {
            return Ok(());
        };
        let _ = self.tx.send(Msg::Stop);
        match h.join() {
            Ok(r) => r,
            Err(_) => Err(StoreError::Closed("the log writer thread panicked".into())),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Committed bytes worth starting to write when the writer's queue runs empty.
const IDLE_WRITE_BACK_BYTES: u64 = 64 << 10;

fn run(mut app: Appender, rx: Receiver<Msg>, shared: Arc<Shared>, sync_every: u64) -> Result<()> {
    let mut waiters: Vec<Ack> = Vec::new();
    let mut flushers: Vec<Ack> = Vec::new();
    let result = (|| -> Result<bool> {
        loop {
            let Ok(first) = rx.recv() else {
                return Ok(false);
            };
            let mut msg = Some(first);
            let mut stop = false;
            let mut idle = false;
            let mut n = 0;
            while let Some(m) = msg.take() {
                match m {
                    Msg::One(e) => {
                        app.append(&e)?;
                    }
                    Msg::Many(v) => {
                        for e in &v {
                            app.append(e)?;
                        }
                    }
                    Msg::Checkpoint(c, ack) => {
                        app.append(&Event::Checkpoint(c))?;
                        waiters.push(ack);
                        // Sync now: events queued behind it would only lengthen
                        // its wait (more to append first, more to sync).
                        break;
                    }
                    Msg::Sync(ack) => {
                        waiters.push(ack);
                        break;
                    }
                    Msg::Flush(ack) => flushers.push(ack),
                    Msg::Stop => {
                        stop = true;
                        break;
                    }
                }
                n += 1;
                if n < 4096 {
                    msg = rx.try_recv().ok();
                    idle = msg.is_none();
                }
            }
            if !waiters.is_empty() || app.pending_bytes() >= sync_every {
                app.sync()?;
                for w in waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
            } else {
                app.commit();
                if idle {
                    // Nothing queued: use the pause to start writing what a
                    // checkpoint would otherwise write all at once.
                    app.write_back_committed(IDLE_WRITE_BACK_BYTES);
                }
            }
            for w in flushers.drain(..) {
                let _ = w.send(Ok(()));
            }
            if stop {
                return Ok(true);
            }
        }
    })();
    match result {
        Ok(_) => app.finish(),
        Err(e) => {
            let msg = e.to_string();
            *shared.error.lock().unwrap() = Some(msg.clone());
            for w in waiters.drain(..).chain(flushers.drain(..)) {
                let _ = w.send(Err(msg.clone()));
            }
            drop(rx);
            drop(app);
            Err(e)
        }
    }
}

impl LogSink {
    fn wait(&self, make: impl FnOnce(Ack) -> Msg) -> std::result::Result<(), SinkError> {
        let (tx, rx) = bounded(1);
        self.tx.send(make(tx)).map_err(|_| self.shared.closed())?;
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(SinkError::Closed(msg)),
            Err(_) => Err(self.shared.closed()),
        }
    }

    /// Queue many events as one message (cheaper than one `push` each).
    pub fn push_batch(&mut self, events: Vec<Event>) -> std::result::Result<(), SinkError> {
        if events.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Msg::Many(events))
            .map_err(|_| self.shared.closed())
    }

    /// Block until everything pushed so far is durable (without writing a checkpoint).
    pub fn sync(&mut self) -> std::result::Result<(), SinkError> {
        self.wait(Msg::Sync)
    }

    /// Block until everything pushed so far is written and visible to readers and
    /// followers (committed, not necessarily durable).
    pub fn flush(&mut self) -> std::result::Result<(), SinkError> {
        self.wait(Msg::Flush)
    }

    /// Bytes made durable so far.
    pub fn durable_bytes(&self) -> u64 {
        self.shared.durable.load(Ordering::Relaxed)
    }
}

impl EventSink for LogSink {
    fn push(&mut self, event: Event) -> std::result::Result<(), SinkError> {
        self.tx
            .send(Msg::One(event))
            .map_err(|_| self.shared.closed())
    }

    fn checkpoint(&mut self, checkpoint: Checkpoint) -> std::result::Result<(), SinkError> {
        self.wait(|ack| Msg::Checkpoint(checkpoint, ack))
    }
}
