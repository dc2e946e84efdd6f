//! Running one scanner process and measuring it: wall time from spawn to reap,
//! CPU time (user + sys) and peak RSS from the `wait4` rusage of exactly that
//! child, with a deadline that escalates SIGINT → SIGTERM → SIGKILL. Owns only
//! the processes it spawns (each in its own process group, so a Ctrl-C at the
//! terminal reaches the harness, which stops them in order); never waits for
//! any other child (the lab's responder is also our child: it is left alone).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

/// What one process cost.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Usage {
    /// Spawn to reap.
    pub wall_s: f64,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Peak resident set (ru_maxrss), bytes.
    pub max_rss_bytes: u64,
    /// Exit code, or 128 + signal.
    pub exit: i32,
    /// Signals the harness had to send to end it (`INT`, `TERM`, `KILL`).
    pub signals: Vec<String>,
}

impl Usage {
    /// user + sys.
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

/// Set by the SIGINT/SIGTERM/SIGHUP handler: stop at the next safe point.
pub fn stop_flag() -> &'static Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// True once the user asked the harness to stop.
pub fn stopping() -> bool {
    stop_flag().load(Ordering::Relaxed)
}

/// Things that may happen while the process runs, on the harness's side.
pub struct Watch<'a> {
    /// Soft deadline: after it, SIGINT; 5 s later SIGTERM; 5 s later SIGKILL.
    pub deadline: Duration,
    /// Called every `tick` while the process runs (e.g. masscan's waker).
    pub on_tick: Option<&'a mut dyn FnMut(Duration)>,
    /// Tick period.
    pub tick: Duration,
}

/// Spawn `cmd` (stdout/stderr to the given files), wait for it under `watch`,
/// and return what it cost.
pub fn run(
    mut cmd: Command,
    stdout: Stdio,
    stderr: Stdio,
    mut watch: Watch<'_>,
) -> std::io::Result<Usage> {
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    // Own process group: the terminal's Ctrl-C goes to the harness only, which
    // then ends the scanner itself (so the lab is always torn down after it).
    cmd.process_group(0);
    let start = Instant::now();
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    // The std Child is never waited on: wait4 below reaps exactly this pid.
    drop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data filled in by the kernel; pid is our child,
        // waited for exactly once (the std handle was dropped without waiting).
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = loop {
            // SAFETY: see above; status and ru are valid for writes.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break r;
        };
        let end = Instant::now();
        let _ = tx.send((r, status, ru, end));
    });
    let mut signals = Vec::new();
    let mut next_tick = watch.tick;
    let mut escalation: Option<(Instant, usize)> = None;
    let steps = [
        (libc::SIGINT, "INT"),
        (libc::SIGTERM, "TERM"),
        (libc::SIGKILL, "KILL"),
    ];
    let (r, status, ru, end) = loop {
        let now = start.elapsed();
        let wait = next_tick
            .saturating_sub(now)
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        match rx.recv_timeout(wait) {
            Ok(v) => break v,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(std::io::Error::other("the wait4 thread died"))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = start.elapsed();
        if now >= next_tick {
            if let Some(f) = watch.on_tick.as_mut() {
                f(now);
            }
            next_tick = now + watch.tick;
        }
        let due = match escalation {
            None => now >= watch.deadline || stopping(),
            Some((at, _)) => at.elapsed() >= Duration::from_secs(5),
        };
        if due {
            let i = escalation.map(|(_, i)| i + 1).unwrap_or(0);
            if let Some(&(sig, name)) = steps.get(i) {
                // SAFETY: signals the process group we created for this child.
                unsafe { libc::kill(-pid, sig) };
                signals.push(name.to_string());
                escalation = Some((Instant::now(), i));
            }
        }
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let exit = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Usage {
        wall_s: (end - start).as_secs_f64(),
        user_s: tv(ru.ru_utime),
        sys_s: tv(ru.ru_stime),
        max_rss_bytes: ru.ru_maxrss as u64 * 1024,
        exit,
        signals,
    })
}

/// Run a short helper command (ethtool, ip, dpkg) and return its stdout; error
/// names the command and carries its stderr.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("running {cmd:?}: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
