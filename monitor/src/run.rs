//! The event loop: the only part of the monitor that touches the outside
//! world. It tails the log with the store's [`Follower`], reads the keyboard
//! (crossterm), samples the operating system once a second, carries out the
//! [`Action`]s the [`App`] returns (signals to the scanning process, exports on
//! a background thread) and redraws.
//!
//! It never writes to the log: quitting (or crashing) the monitor cannot stop
//! or corrupt a scan. The only thing it sends to the scanning process is
//! SIGUSR1 (pause) or SIGUSR2 (resume), and only to the process that holds the
//! log's writer lock.

use crate::app::{Action, App, ExportRequest, ScanSignal};
use crate::metrics::Collector;
use crate::ui;
use crossterm::event::{self, Event as TermEvent, KeyEventKind};
use prtip_export::{export_log, ExportOptions};
use prtip_filter::Filter;
use prtip_store::event::now_us;
use prtip_store::{Follower, LogPos};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Knobs of [`run`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Start with this filter on the results view.
    pub filter: Option<Filter>,
    /// Longest wait for a key before polling the log again (default 100 ms).
    pub poll_interval: Duration,
    /// When set (by the caller, from another thread), the monitor closes.
    /// `prtip scan --tui` uses it if the scan ends with an error.
    pub close: Option<Arc<AtomicBool>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            filter: None,
            poll_interval: Duration::from_millis(100),
            close: None,
        }
    }
}

/// What can stop the monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The terminal could not be set up or drawn to.
    #[error("terminal error: {0} (prtip monitor needs an interactive terminal)")]
    Terminal(#[from] std::io::Error),
    /// The log could not be opened.
    #[error("cannot follow the scan log in {dir}: {source}")]
    Log {
        /// Log directory.
        dir: PathBuf,
        /// Why.
        source: prtip_store::StoreError,
    },
}

/// Run the monitor full-screen in this terminal on the log in `log_dir` until
/// the user quits (`q`), then restore the terminal.
///
/// The log may belong to a scan running in another process, to a finished
/// scan, or to a scan running on another thread of this process (`prtip scan
/// --tui`: call this on the main thread; the directory may not exist yet, the
/// monitor waits for it). The monitor only reads the log.
pub fn run(log_dir: &Path, opts: Options) -> Result<(), MonitorError> {
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, log_dir, opts);
    ratatui::restore();
    result
}

enum ExportMsg {
    Progress(u64),
    Done(Result<u64, String>),
}

/// Log bytes the follower has passed (record positions; a lower bound of the
/// bytes the writer flushed).
#[derive(Default)]
struct BytesRead {
    done_segments: u64,
    segment: u64,
    offset: u64,
}

impl BytesRead {
    fn see(&mut self, pos: LogPos) {
        if pos.segment != self.segment {
            self.done_segments += self.offset;
            self.segment = pos.segment;
        }
        self.offset = pos.offset;
    }
    fn total(&self) -> u64 {
        self.done_segments + self.offset
    }
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    log_dir: &Path,
    opts: Options,
) -> Result<(), MonitorError> {
    let mut app = App::new(log_dir);
    if let Some(f) = opts.filter.clone() {
        app = app.with_filter(f);
    }
    let mut follower: Option<Follower> = None;
    let mut follow_failed = false;
    let mut collector = Collector::new();
    let mut bytes = BytesRead::default();
    let (tx, rx) = mpsc::channel::<ExportMsg>();
    let mut export: Option<(JoinHandle<()>, Arc<AtomicBool>)> = None;
    let mut next_tick = Instant::now();
    let mut dirty = true;
    // New log events redraw at most every 200 ms (a fast scan delivers events
    // continuously; re-filtering and re-sorting a large table on every batch
    // would starve the keyboard). Keys, resizes and ticks redraw at once.
    let mut log_dirty = false;
    let mut last_draw = Instant::now();

    loop {
        if follower.is_none() && !follow_failed && log_dir.is_dir() {
            follower = Some(Follower::open(log_dir).map_err(|source| MonitorError::Log {
                dir: log_dir.to_path_buf(),
                source,
            })?);
        }
        if let Some(f) = follower.as_mut().filter(|_| !follow_failed) {
            match f.poll_entries(&mut |e| {
                bytes.see(e.pos);
                app.apply(&e.event.to_event());
            }) {
                Ok(0) => {}
                Ok(_) => log_dirty = true,
                Err(e) => {
                    // Keep showing what was read; a corrupt log is not the
                    // monitor's to repair.
                    follow_failed = true;
                    if matches!(e, prtip_store::StoreError::Corrupt { .. }) {
                        app.log_damaged(e.to_string());
                    } else {
                        app.notice = Some((
                            crate::app::Level::Error,
                            format!("reading the log failed: {e}"),
                        ));
                    }
                    dirty = true;
                }
            }
        }
        while let Ok(m) = rx.try_recv() {
            match m {
                ExportMsg::Progress(n) => app.export_progress(n),
                ExportMsg::Done(r) => {
                    app.export_finished(r);
                    if let Some((h, _)) = export.take() {
                        let _ = h.join();
                    }
                }
            }
            dirty = true;
        }
        let now = Instant::now();
        if now >= next_tick {
            let alive = follower.as_ref().is_some_and(Follower::writer_alive);
            let sys = collector.sample(app.pid.filter(|_| alive), bytes.total(), now_us());
            app.tick(now_us(), alive, &sys);
            next_tick = now + Duration::from_secs(1);
            dirty = true;
        }
        if dirty || (log_dirty && last_draw.elapsed() >= Duration::from_millis(200)) {
            app.refresh_view();
            terminal.draw(|f| ui::draw(f, &app))?;
            dirty = false;
            log_dirty = false;
            last_draw = Instant::now();
        }
        let wait = opts
            .poll_interval
            .min(next_tick.saturating_duration_since(Instant::now()));
        if event::poll(wait)? {
            match event::read()? {
                TermEvent::Key(k) if k.kind != KeyEventKind::Release => {
                    if let Some(action) = app.on_key(k) {
                        match action {
                            Action::Quit => {}
                            Action::Signal { pid, signal } => {
                                let r = signal_scan(log_dir, pid, signal);
                                app.signal_sent(pid, signal, r);
                            }
                            Action::Export(req) => match start_export(&app, req, tx.clone()) {
                                Ok(handle) => export = Some(handle),
                                Err(e) => app.export_finished(Err(e)),
                            },
                        }
                    }
                    dirty = true;
                }
                TermEvent::Resize(..) => dirty = true,
                _ => {}
            }
        }
        if app.quit
            || opts
                .close
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            break;
        }
    }
    if let Some((h, cancel)) = export.take() {
        // An export in flight is cancelled; prtip-export removes its temporary file.
        cancel.store(true, Ordering::Relaxed);
        let _ = h.join();
    }
    Ok(())
}

/// Pid written in `<dir>/LOCK` by the log's writer.
fn lock_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("LOCK"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Send `signal` to `pid`, but only if `pid` is proven to be the live writer
/// of the log in `log_dir`. The pid in the log and in `LOCK` is a claim anyone
/// who can write a directory can make (a crafted log once made a root monitor
/// kill another user's process); the proof comes from the kernel:
///
/// 1. the process is pinned by a pidfd, so a pid reused meanwhile is never hit;
/// 2. `/proc/PID/fdinfo` shows it holds the OFD write lock on `LOCK`
///    ([`prtip_store::holds_writer_lock`]);
/// 3. it runs the same executable as this monitor (`/proc/PID/exe`);
/// 4. its effective uid owns the `LOCK` file.
///
/// Only then is the signal sent, through the pidfd.
pub fn signal_scan(log_dir: &Path, pid: u32, signal: ScanSignal) -> Result<(), String> {
    if !prtip_store::writer_alive(log_dir).map_err(|e| e.to_string())? {
        return Err("no process holds the scan log's writer lock (the scan is not running)".into());
    }
    match lock_pid(log_dir) {
        Some(p) if p == pid => {}
        Some(p) => {
            return Err(format!(
                "the log's writer is pid {p}, not pid {pid} from the log; not signalling"
            ))
        }
        None => return Err("the log's LOCK file names no pid; not signalling".into()),
    }
    let pidfd = PidFd::open(pid)?;
    prove_writer(log_dir, pid)?;
    pidfd.send(signal)
}

/// Checks 2-4 of [`signal_scan`].
fn prove_writer(log_dir: &Path, pid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |why: String| Err(format!("not signalling pid {pid}: {why}"));
    match prtip_store::holds_writer_lock(log_dir, pid) {
        Ok(true) => {}
        Ok(false) => {
            return refuse(format!(
            "the kernel shows no write lock on {}/LOCK held by it, so it is not this scan's writer",
            log_dir.display()
        ))
        }
        Err(e) => {
            return refuse(format!(
                "cannot prove it is the scan's writer ({e}); a scan running with file \
                 capabilities or as another user can be paused with `kill -USR1 {pid}` \
                 by its owner"
            ))
        }
    }
    let exe = |p: &str| std::fs::metadata(format!("/proc/{p}/exe")).map(|m| (m.dev(), m.ino()));
    match (exe(&pid.to_string()), exe("self")) {
        (Ok(a), Ok(b)) if a == b => {}
        (Ok(_), Ok(_)) => return refuse(
            "it runs another executable than this prtip (or prtip was replaced since it started)"
                .into(),
        ),
        (Err(e), _) | (_, Err(e)) => return refuse(format!("cannot read its executable: {e}")),
    }
    let lock = log_dir.join("LOCK");
    let owner = std::fs::metadata(&lock)
        .map_err(|e| format!("not signalling pid {pid}: {}: {e}", lock.display()))?
        .uid();
    match effective_uid(pid) {
        Some(uid) if uid == owner => Ok(()),
        Some(uid) => refuse(format!(
            "it runs as uid {uid}, but {} belongs to uid {owner}",
            lock.display()
        )),
        None => refuse("cannot read its uid from /proc".into()),
    }
}

/// The effective uid of `pid` (`Uid:` in `/proc/PID/status`: real, effective, ...).
fn effective_uid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A pidfd: a handle on one process that a reused pid never aliases.
struct PidFd(std::os::fd::OwnedFd);

impl PidFd {
    fn open(pid: u32) -> Result<PidFd, String> {
        use std::os::fd::FromRawFd;
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return Err(format!("pid {pid} is out of range"));
        };
        if p <= 1 {
            return Err(format!("refusing to signal pid {pid}"));
        }
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new file
        // descriptor or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, p, 0) };
        if fd < 0 {
            return Err(format!("pid {pid}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a descriptor the kernel just returned, owned by no one else.
        Ok(PidFd(unsafe {
            std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int)
        }))
    }

    fn send(&self, signal: ScanSignal) -> Result<(), String> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal(2) with a pidfd we own, no siginfo (NULL)
        // and no flags; no memory is passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal.signo(),
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().to_string())
        }
    }
}

/// `kill(pid, SIGUSR1|SIGUSR2)`; refuses pids that would address process
/// groups or every process (0, 1, anything that is not a positive `pid_t`).
pub fn send_signal(pid: u32, signal: ScanSignal) -> Result<(), String> {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return Err(format!("pid {pid} is out of range"));
    };
    if p <= 1 {
        return Err(format!("refusing to signal pid {pid}"));
    }
    // SAFETY: kill(2) takes plain integers and has no memory-safety
    // preconditions; `p` is a single positive process id (never 0 or -1,
    // which would address process groups or every process).
    let rc = unsafe { libc::kill(p, signal.signo()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

fn start_export(
    app: &App,
    req: ExportRequest,
    tx: mpsc::Sender<ExportMsg>,
) -> Result<(JoinHandle<()>, Arc<AtomicBool>), String> {
    if app.started.is_none() {
        return Err("the log has no ScanStarted yet; nothing to export".into());
    }
    let log_dir = app.log_dir.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    let cancel2 = cancel.clone();
    let handle = std::thread::Builder::new()
        .name("prtip-monitor-export".into())
        .spawn(move || {
            let filter = req.filter;
            let matches = |r: &prtip_store::ResultRow| filter.as_ref().is_none_or(|f| f.matches(r));
            let ptx = tx.clone();
            let mut progress = move |n: u64| {
                let _ = ptx.send(ExportMsg::Progress(n));
            };
            let mut opts = ExportOptions {
                filter: Some(&matches),
                progress: Some(&mut progress),
                cancel: Some(&cancel2),
                ..Default::default()
            };
            // The same path as `prtip export`: the store's sorted projection of
            // the log (constant memory, read-only), written atomically.
            let r = export_log(
                &log_dir,
                req.format,
                &req.path.display().to_string(),
                &mut opts,
            )
            .map(|s| s.rows)
            .map_err(|e| e.to_string());
            let _ = tx.send(ExportMsg::Done(r));
        })
        .map_err(|e| format!("cannot start the export thread: {e}"))?;
    Ok((handle, cancel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    #[test]
    fn send_signal_delivers_sigusr1_and_sigusr2_to_one_process() {
        for (sig, num) in [
            (ScanSignal::Pause, libc::SIGUSR1),
            (ScanSignal::Resume, libc::SIGUSR2),
        ] {
            let mut child = Command::new("sleep").arg("30").spawn().unwrap();
            send_signal(child.id(), sig).unwrap();
            // Default action of SIGUSR1/2 is to terminate: the child dies of it.
            let status = child.wait().unwrap();
            assert_eq!(status.signal(), Some(num));
        }
    }

    #[test]
    fn send_signal_refuses_group_and_broadcast_pids() {
        assert_eq!(
            send_signal(0, ScanSignal::Pause),
            Err("refusing to signal pid 0".into())
        );
        assert_eq!(
            send_signal(1, ScanSignal::Pause),
            Err("refusing to signal pid 1".into())
        );
        // u32::MAX would be -1 (every process) as a pid_t.
        assert_eq!(
            send_signal(u32::MAX, ScanSignal::Pause),
            Err(format!("pid {} is out of range", u32::MAX))
        );
    }

    #[test]
    fn signal_scan_requires_the_pid_to_be_the_live_writer() {
        let dir = tempfile::tempdir().unwrap();
        // No writer: refused, nothing sent.
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let r = signal_scan(dir.path(), child.id(), ScanSignal::Pause);
        assert_eq!(
            r,
            Err("no process holds the scan log's writer lock (the scan is not running)".into())
        );
        // A live writer (this process) whose LOCK names another pid than the
        // one asked for: refused, the child is not signalled.
        let w =
            prtip_store::LogWriter::create(dir.path(), prtip_store::LogOptions::default()).unwrap();
        let r = signal_scan(dir.path(), child.id(), ScanSignal::Pause);
        assert_eq!(
            r,
            Err(format!(
                "the log's writer is pid {}, not pid {} from the log; not signalling",
                std::process::id(),
                child.id()
            ))
        );
        w.finish().unwrap();
        let mut child = child;
        assert_eq!(
            child.try_wait().unwrap(),
            None,
            "the child must not have been signalled"
        );
        child.kill().unwrap();
        let _ = child.wait();
    }

    /// A crafted log directory: some process of the attacker's holds the lock
    /// and `LOCK` names an unrelated victim pid. Before, the monitor's `p` sent
    /// SIGUSR1 to the victim (killing it); the kernel shows the victim holds no
    /// lock, so nothing is sent.
    #[test]
    fn signal_scan_refuses_a_pid_that_does_not_hold_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
        let w =
            prtip_store::LogWriter::create(dir.path(), prtip_store::LogOptions::default()).unwrap();
        std::fs::write(dir.path().join("LOCK"), victim.id().to_string()).unwrap();
        let r = signal_scan(dir.path(), victim.id(), ScanSignal::Pause);
        let e = r.unwrap_err();
        assert!(
            e.starts_with(&format!(
                "not signalling pid {}: the kernel shows no write lock",
                victim.id()
            )),
            "{e}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(victim.try_wait().unwrap(), None, "the victim was signalled");
        victim.kill().unwrap();
        let _ = victim.wait();
        w.finish().unwrap();
    }

    /// The real writer (this process: lock held, same executable, owner of
    /// LOCK) is signalled.
    #[test]
    fn signal_scan_reaches_the_proven_writer() {
        let dir = tempfile::tempdir().unwrap();
        let w =
            prtip_store::LogWriter::create(dir.path(), prtip_store::LogOptions::default()).unwrap();
        let got = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let id = signal_hook::flag::register(libc::SIGUSR2, got.clone()).unwrap();
        let r = signal_scan(dir.path(), std::process::id(), ScanSignal::Resume);
        assert_eq!(r, Ok(()));
        for _ in 0..200 {
            if got.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            got.load(std::sync::atomic::Ordering::SeqCst),
            "SIGUSR2 not delivered"
        );
        signal_hook::low_level::unregister(id);
        w.finish().unwrap();
    }

    #[test]
    fn bytes_read_adds_finished_segments() {
        let mut b = BytesRead::default();
        b.see(LogPos {
            segment: 0,
            offset: 100,
        });
        b.see(LogPos {
            segment: 0,
            offset: 4000,
        });
        b.see(LogPos {
            segment: 1,
            offset: 64,
        });
        assert_eq!(b.total(), 4064);
    }
}
