//! Running one scanner process and measuring it: wall time from spawn to reap,
//! CPU time (user + sys) and peak RSS from the `wait4` rusage of exactly that
//! process, with a deadline that escalates SIGINT → SIGTERM → SIGKILL. Owns only
//! the processes it spawns (each in its own process group, so a Ctrl-C at the
//! terminal reaches the harness, which stops them in order); never waits for
//! any other child (the lab's responder is also our child: it is left alone).
//!
//! Why a launcher: `ru_maxrss` is the largest RSS a process ever had, and a
//! child made by fork or vfork starts from its parent's memory (at exec the
//! kernel keeps the high-water mark of the mm it replaces, which for a vfork
//! child is the parent's own). Spawned straight from the harness, a 6 MB zmap
//! reads as the harness's 40 MB. So each scanner is started by a fresh launcher
//! process (this binary, `--spawn`, a few MB): it forks the scanner, whose
//! rusage then starts from the launcher's small footprint, waits for it with
//! `wait4` and writes that rusage to a file for the harness.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// CPU and RSS are the scanner's own, as reported by the launcher.
    pub rss_from_launcher: bool,
    /// Peak anonymous resident memory (RssAnon of /proc/PID/status, sampled by
    /// the launcher every 10 ms), bytes; 0 when not sampled.
    pub peak_anon_bytes: u64,
    /// Peak file-backed resident memory (RssFile: mapped files such as prtip's
    /// log segments, reclaimable), bytes; 0 when not sampled.
    pub peak_file_bytes: u64,
    /// Peak shared memory resident (RssShmem: e.g. an AF_XDP UMEM or a packet
    /// ring mapped shared), bytes; 0 when not sampled. ru_maxrss counts it too.
    pub peak_shmem_bytes: u64,
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

/// Spawn `inner` through the launcher (`launcher --spawn RUSAGE_FILE -- inner...`,
/// stdout/stderr to the given files), wait for it under `watch`, and return
/// what `inner` cost.
pub fn run(
    launcher: &Path,
    inner: Command,
    stdout: Stdio,
    stderr: Stdio,
    mut watch: Watch<'_>,
) -> std::io::Result<Usage> {
    let ru_file = std::env::temp_dir().join(format!(
        "prtip-peers-{}-{}.rusage",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&ru_file);
    let mut cmd = Command::new(launcher);
    cmd.arg("--spawn")
        .arg(&ru_file)
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args());
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
    let mut u = Usage {
        wall_s: (end - start).as_secs_f64(),
        user_s: tv(ru.ru_utime),
        sys_s: tv(ru.ru_stime),
        max_rss_bytes: ru.ru_maxrss as u64 * 1024,
        exit,
        signals,
        rss_from_launcher: false,
        peak_anon_bytes: 0,
        peak_file_bytes: 0,
        peak_shmem_bytes: 0,
    };
    // The launcher's report on the scanner itself (absent if the launcher was
    // SIGKILLed: then the figures above, which include the launcher, stand).
    if let Ok(text) = std::fs::read_to_string(&ru_file) {
        let _ = std::fs::remove_file(&ru_file);
        let v: Vec<f64> = text
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        if let [user, sys, maxrss_kb, code, ref rest @ ..] = v[..] {
            u.user_s = user;
            u.sys_s = sys;
            u.max_rss_bytes = maxrss_kb as u64 * 1024;
            u.exit = code as i32;
            u.rss_from_launcher = true;
            if let [anon_kb, file_kb, shmem_kb] = rest[..] {
                u.peak_anon_bytes = anon_kb as u64 * 1024;
                u.peak_file_bytes = file_kb as u64 * 1024;
                u.peak_shmem_bytes = shmem_kb as u64 * 1024;
            }
        }
    }
    Ok(u)
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Body of `--spawn RUSAGE_FILE -- PROGRAM ARGS...`: run PROGRAM (same stdio),
/// survive the signals the harness sends to the process group (PROGRAM gets
/// them with their default action), reap it with `wait4` and write
/// `user_s sys_s maxrss_kb exit peak_anon_kb peak_file_kb peak_shmem_kb` to
/// RUSAGE_FILE (the last three sampled from PROGRAM's /proc/PID/status every 10 ms: `ip netns
/// exec` execs the scanner in place, so the pid is the scanner's). Exits with
/// PROGRAM's code.
pub fn launcher_main(args: &[String]) -> ! {
    let (Some(file), Some("--"), Some(program)) =
        (args.first(), args.get(1).map(String::as_str), args.get(2))
    else {
        eprintln!("peers --spawn: usage: --spawn RUSAGE_FILE -- PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    // Caught (not ignored: ignored dispositions would be inherited across exec).
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    let child = match Command::new(program).args(&args[3..]).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peers --spawn: cannot run {program}: {e}");
            std::process::exit(127);
        }
    };
    let pid = child.id() as libc::pid_t;
    drop(child);
    // Peak RssAnon / RssFile / RssShmem (kB), sampled until the child is reaped.
    let peaks = Arc::new((AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)));
    let reaped = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peaks, reaped) = (peaks.clone(), reaped.clone());
        std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            while !reaped.load(Ordering::Relaxed) {
                if let Ok(st) = std::fs::read_to_string(&path) {
                    for line in st.lines() {
                        let kb = |l: &str| {
                            l.split_whitespace()
                                .nth(1)
                                .and_then(|v| v.parse::<u64>().ok())
                                .unwrap_or(0)
                        };
                        if line.starts_with("RssAnon:") {
                            peaks.0.fetch_max(kb(line), Ordering::Relaxed);
                        } else if line.starts_with("RssFile:") {
                            peaks.1.fetch_max(kb(line), Ordering::Relaxed);
                        } else if line.starts_with("RssShmem:") {
                            peaks.2.fetch_max(kb(line), Ordering::Relaxed);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data filled in by the kernel; pid is our only child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: see above; status and ru are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            std::process::exit(126);
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    reaped.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let _ = std::fs::write(
        file,
        format!(
            "{:.6} {:.6} {} {code} {} {} {}\n",
            tv(ru.ru_utime),
            tv(ru.ru_stime),
            ru.ru_maxrss,
            peaks.0.load(Ordering::Relaxed),
            peaks.1.load(Ordering::Relaxed),
            peaks.2.load(Ordering::Relaxed)
        ),
    );
    std::process::exit(code);
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
