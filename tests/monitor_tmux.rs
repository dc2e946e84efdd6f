//! End to end: `prtip monitor` in a real terminal (tmux, 120×40) attached to a
//! scan log that another process is writing. Presses `f`, `p`, `r`, `e` (and
//! `3`, `q`) and reads the screen with `capture-pane`; checks what the screen
//! says against the log itself, that the scanning process obeyed the signals,
//! and that quitting the monitor leaves the scan running and its log intact.
//!
//! The scanning process here is `fake_scan_process` (this test binary run
//! again, see tests/monitor_support): it writes a scan-like log with the
//! store's LogWriter and obeys SIGUSR1/SIGUSR2 the way `prtip scan` does.
//! Captures of each step are written to `target/tmp/monitor-captures/`.

mod common;
mod monitor_support;

use monitor_support::*;
use prtip_store::{EventRef, LogReader, Results};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Not a test by itself: the scanning process of `monitor_in_tmux_*`, started
/// with `PRTIP_FAKE_SCAN_DIR` set.
#[test]
#[ignore = "helper process for monitor_in_tmux; runs only when started by it"]
fn fake_scan_process() {
    let Some(dir) = std::env::var_os("PRTIP_FAKE_SCAN_DIR") else {
        return;
    };
    let per_tick = std::env::var("PRTIP_FAKE_SCAN_PER_TICK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    fake_scan(Path::new(&dir), per_tick);
}

fn start_fake_scan(dir: &Path) -> common::KillOnDrop {
    start_fake_scan_at(dir, 40)
}

/// The fake scan "sends" `per_tick` probes every 100 ms.
fn start_fake_scan_at(dir: &Path, per_tick: u64) -> common::KillOnDrop {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "fake_scan_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PRTIP_FAKE_SCAN_DIR", dir)
        .env("PRTIP_FAKE_SCAN_PER_TICK", per_tick.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the fake scan");
    common::KillOnDrop(child)
}

/// Kinds of the events in the log, in order.
fn event_kinds(dir: &Path) -> Vec<String> {
    let r = LogReader::open(dir).unwrap();
    r.iter()
        .map(|e| e.unwrap().kind().name().to_string())
        .collect()
}

#[test]
fn monitor_in_tmux_attaches_filters_pauses_resumes_exports_and_quits() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = home.path().join("scans").join("1");
    std::fs::create_dir_all(&dir).unwrap();
    let mut scan = start_fake_scan(&dir);
    wait_until("the fake scan's first event", WAIT, || {
        LogReader::open(&dir).is_ok_and(|r| r.scan_started().is_ok())
    });

    let tmux = Tmux::new("prtip-monitor-e2e");
    let prtip = common::prtip_bin();
    // After the monitor exits, the shell prints its exit status on the
    // restored screen and keeps the pane open.
    let cmd = format!(
        "{} --home {} monitor --last; echo \"monitor exited with status $?\"; sleep 600",
        prtip.display(),
        home.path().display()
    );
    tmux.start("mon", Some(work.path()), &cmd);

    // Let a few seconds of the scan go by (samples, checkpoints, sparkline).
    wait_until("four samples in the log", WAIT, || {
        event_kinds(&dir).iter().filter(|k| *k == "Sample").count() >= 4
    });
    // Progress screen, live.
    let screen = tmux.wait_for("mon", "the progress screen of scan 1", WAIT, |s| {
        s.contains("scan 1 RUNNING") && s.contains("Open ports") && s.contains("probes)")
    });
    assert!(screen.contains(&format!("pid {}", scan.0.id())), "{screen}");
    assert!(screen.contains("198.19.0.0/24 │ ports T:1-100"), "{screen}");
    let screen = tmux.wait_for("mon", "an open port in the list", WAIT, |s| {
        s.contains("198.19.0.0:22/tcp")
    });
    save_capture("01-progress.txt", &screen);

    // f: the filter builder, with a live preview.
    tmux.keys("mon", &["f"]);
    tmux.wait_for("mon", "the filter builder", WAIT, |s| {
        s.contains("Filter builder")
    });
    tmux.type_text("mon", "22,80");
    let screen = tmux.wait_for("mon", "the preview", WAIT, |s| {
        s.contains("Filter: port 22,80") && s.contains("results match")
    });
    save_capture("02-filter-builder.txt", &screen);
    tmux.keys("mon", &["Enter"]);
    let screen = tmux.wait_for("mon", "the filtered results", WAIT, |s| {
        s.contains("results (filtered)") && s.contains("filter: port 22,80")
    });
    save_capture("03-results-filtered.txt", &screen);

    // p: the monitor signals only a proven prtip writer (issue 20 item 7); this
    // fake scan is the test binary, so the monitor refuses and says why, and the
    // test sends the SIGUSR1 itself. The scan writes Checkpoint + Paused, the
    // monitor shows it. (monitor_lab pauses a real prtip scan through `p`.)
    tmux.keys("mon", &["p"]);
    tmux.wait_for("mon", "the refusal to signal the fake writer", WAIT, |s| {
        s.contains(&format!("not signalling pid {}", scan.0.id()))
    });
    signal(scan.0.id(), "-USR1");
    tmux.wait_for("mon", "PAUSED in the header", WAIT, |s| {
        s.contains("scan 1 PAUSED")
    });
    let kinds = event_kinds(&dir);
    let p = kinds
        .iter()
        .rposition(|k| k == "Paused")
        .expect("a Paused event");
    assert_eq!(
        kinds[p - 1],
        "Checkpoint",
        "a checkpoint right before Paused"
    );
    let reader = LogReader::open(&dir).unwrap();
    let reason = reader
        .iter()
        .filter_map(|e| match e.unwrap() {
            EventRef::Paused(p) => Some(p.reason.as_str().to_string()),
            _ => None,
        })
        .last();
    assert_eq!(reason.as_deref(), Some("SIGUSR1"));
    // While paused, the status line counts exactly what the log holds.
    let results = Results::from_log(&reader).unwrap();
    let filter = prtip_filter::Filter::parse("port 22,80").unwrap();
    let rows = results.rows();
    let want = (
        rows.iter().filter(|r| filter.matches(r)).count(),
        rows.len(),
    );
    let screen = tmux.wait_for("mon", "the counts of the paused scan", WAIT, |s| {
        s.contains("Showing") && showing(s) == want
    });
    assert!(want.0 > 0 && want.0 < want.1, "{want:?}");
    save_capture("04-results-paused.txt", &screen);
    tmux.keys("mon", &["c"]); // clear the filter (the builder starts empty again)
    tmux.keys("mon", &["1"]);
    let screen = tmux.wait_for("mon", "the pause event", WAIT, |s| {
        s.contains("Paused (SIGUSR1) at probe")
    });
    save_capture("05-progress-paused.txt", &screen);

    // r: refused for the fake writer as `p` was; SIGUSR2 from the test; the scan
    // writes Resumed.
    tmux.keys("mon", &["r"]);
    signal(scan.0.id(), "-USR2");
    let screen = tmux.wait_for("mon", "the resume event", WAIT, |s| {
        s.contains("scan 1 RUNNING") && s.contains("Resumed from probe index")
    });
    save_capture("06-progress-resumed.txt", &screen);
    assert!(event_kinds(&dir).iter().any(|k| k == "Resumed"));

    // Hostile service text: shown escaped, never interpreted.
    tmux.keys("mon", &["f"]);
    tmux.wait_for("mon", "the filter builder", WAIT, |s| {
        s.contains("Filter builder")
    });
    tmux.type_text("mon", "2323");
    tmux.keys("mon", &["Enter"]);
    let screen = tmux.wait_for("mon", "the hostile banner, escaped", WAIT, |s| {
        s.contains("\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07")
    });
    save_capture("07-hostile-banner.txt", &screen);
    let title = tmux.run(&["display-message", "-p", "-t", "mon", "#{pane_title}"]);
    assert!(
        !title.contains("pwned"),
        "the banner set the title: {title}"
    );

    // e: the export menu; Enter exports the filtered rows as CSV into the cwd.
    tmux.keys("mon", &["e"]);
    tmux.wait_for("mon", "the export menu", WAIT, |s| {
        s.contains("Export") && s.contains("prtip-scan-1.csv")
    });
    tmux.keys("mon", &["Enter"]);
    let screen = tmux.wait_for("mon", "the export to finish", WAIT, |s| {
        s.contains("done: ")
    });
    save_capture("08-export.txt", &screen);
    let csv = std::fs::read_to_string(work.path().join("prtip-scan-1.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("IP,Port,Protocol,State,Service,Version,Banner")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|l| l.contains(",2323,tcp,open,telnet,")),
        "{csv}"
    );
    let done = screen.split("done: ").nth(1).unwrap();
    let n: usize = done.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(n, rows.len());
    tmux.keys("mon", &["Escape"]);
    tmux.wait_for("mon", "the export menu to close", WAIT, |s| {
        !s.contains("Enter export")
    });

    // The dashboard.
    tmux.keys("mon", &["3"]);
    let screen = tmux.wait_for("mon", "the dashboard", WAIT, |s| {
        s.contains("CPU per core (host)") && s.contains("Probe rate: 400 pps")
    });
    save_capture("09-dashboard.txt", &screen);

    // q: the monitor leaves; the scan keeps running and writing.
    let before = event_kinds(&dir).len();
    tmux.keys("mon", &["q"]);
    let screen = tmux.wait_for("mon", "the monitor to exit", WAIT, |s| {
        s.contains("monitor exited with status")
    });
    assert!(screen.contains("monitor exited with status 0"), "{screen}");
    // The terminal is back to normal: no leftover of the monitor's screen.
    assert!(!screen.contains("prtip monitor"), "{screen}");
    assert_eq!(scan.0.try_wait().unwrap(), None, "the scan must still run");
    wait_until("the scan to keep writing", WAIT, || {
        event_kinds(&dir).len() > before + 5
    });

    // Stop the scan; the log reads back whole.
    let killed = Command::new("kill")
        .args(["-TERM", &scan.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let st = scan.0.wait().unwrap();
    assert!(st.success(), "fake scan exit: {st:?}");
    let kinds = event_kinds(&dir);
    assert_eq!(kinds.first().map(String::as_str), Some("ScanStarted"));
    assert_eq!(kinds.last().map(String::as_str), Some("Paused"));
}

fn monitor_cmd(home: &Path, what: &str) -> String {
    format!(
        "{} --home {} monitor {what}; echo \"monitor exited with status $?\"; sleep 600",
        common::prtip_bin().display(),
        home.display()
    )
}

#[test]
fn monitor_in_tmux_opens_finished_and_interrupted_scans() {
    let home = tempfile::tempdir().unwrap();
    // Scan 1 runs to the end (25,600 probes in about a second).
    let done = home.path().join("scans").join("1");
    std::fs::create_dir_all(&done).unwrap();
    let mut s1 = start_fake_scan_at(&done, 3_000);
    assert!(s1.0.wait().unwrap().success());
    // Scan 2 is killed with SIGKILL mid-way: no end event, no writer.
    let killed = home.path().join("scans").join("2");
    std::fs::create_dir_all(&killed).unwrap();
    let mut s2 = start_fake_scan_at(&killed, 40);
    wait_until("scan 2 to checkpoint", WAIT, || {
        LogReader::open(&killed).is_ok_and(|r| {
            r.iter()
                .filter_map(Result::ok)
                .any(|e| matches!(e, EventRef::Checkpoint(_)))
        })
    });
    s2.0.kill().unwrap();
    s2.0.wait().unwrap();

    let tmux = Tmux::new("prtip-monitor-e2e-done");
    tmux.start("done", None, &monitor_cmd(home.path(), "1"));
    let screen = tmux.wait_for("done", "the finished scan", WAIT, |s| {
        s.contains("scan 1 FINISHED") && s.contains("Finished: 25,600 probes sent")
    });
    assert!(
        screen.contains("100.0% (25,600 / 25,600 probes)"),
        "{screen}"
    );
    assert!(screen.contains("ETA             done"), "{screen}");
    save_capture("10-finished.txt", &screen);
    // p on a finished scan: nothing is sent, the status line says why.
    tmux.keys("done", &["p"]);
    tmux.wait_for("done", "the refusal", WAIT, |s| {
        s.contains("the scan is finished and no process is writing its log")
    });
    // Results: every row of the log, as the store folds them.
    tmux.keys("done", &["2"]);
    let rows = Results::from_log(&LogReader::open(&done).unwrap())
        .unwrap()
        .len();
    let screen = tmux.wait_for("done", "the results", WAIT, |s| s.contains("Showing "));
    assert_eq!(showing(&screen), (rows, rows));
    tmux.keys("done", &["q"]);
    tmux.wait_for("done", "exit", WAIT, |s| {
        s.contains("monitor exited with status 0")
    });

    tmux.start("killed", None, &monitor_cmd(home.path(), "--last"));
    let screen = tmux.wait_for("killed", "the interrupted scan", WAIT, |s| {
        s.contains(" INTERRUPTED pid ")
    });
    assert!(
        screen.contains("The scan process is gone without a final event (interrupted)"),
        "{screen}"
    );
    save_capture("11-interrupted.txt", &screen);
    tmux.keys("killed", &["q"]);
    tmux.wait_for("killed", "exit", WAIT, |s| {
        s.contains("monitor exited with status 0")
    });
}

/// `kill SIG PID`, which must succeed.
fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {sig} {pid}: {st:?}");
}
