//! The monitor in front of a running `prtip scan` (`prtip scan --tui`).
//!
//! Owns: the thread layout of `--tui` (the scan on a thread of its own, the
//! monitor on the main thread, terminal output of the scan held back while the
//! monitor is on screen). Never touches the engine's state or the log's
//! contents: the monitor only reads the log. Knows nothing of how the scan runs
//! (it is given a closure), so `scan` uses this module and not the other way.

use crate::UsageError;
use anyhow::{anyhow, Context};
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
    scan: impl FnOnce(&Front) -> anyhow::Result<ExitCode> + Send + 'static,
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
    let close2 = close.clone();
    let scan = std::thread::Builder::new()
        .name("prtip-scan".into())
        .spawn(move || {
            let mut guard = CloseOnFailure {
                close: close2,
                ok: false,
            };
            let r = scan(&front);
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
