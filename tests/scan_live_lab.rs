//! A running lab scan seen from outside: `prtip scan --tui` (the monitor in
//! front of the scan, in one process, driven in tmux at 120×40) and the history
//! of a scan held in place by SIGUSR1 and continued by SIGUSR2 (`prtip history
//! list --json` / `history show` while the scanning process still holds its
//! log). Every scan runs inside the lab's scanner namespace.
//! Captures go to `target/tmp/monitor-captures/tui-*.txt` (copies in docs/captures/).

mod common;
mod monitor_support;

use monitor_support::*;
use prtip_store::{EventRef, HistoryIndex, LogReader, ScanStatus};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn kinds(dir: &Path) -> Vec<&'static str> {
    LogReader::open(dir)
        .map(|r| {
            r.iter()
                .filter_map(Result::ok)
                .map(|e| e.kind().name())
                .collect()
        })
        .unwrap_or_default()
}

/// (reason, next_index) of every Paused in the log.
fn pauses(dir: &Path) -> Vec<(String, u64)> {
    LogReader::open(dir)
        .unwrap()
        .iter()
        .filter_map(|e| match e.unwrap() {
            EventRef::Paused(p) => Some((p.reason.as_str().to_string(), p.next_index.to_native())),
            _ => None,
        })
        .collect()
}

fn lock_pid(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("LOCK"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn row(home: &Path, id: u64) -> prtip_store::HistoryRow {
    HistoryIndex::open(&home.join("history.redb"))
        .unwrap()
        .get(id)
        .unwrap()
        .expect("the scan's history row")
}

fn save(name: &str, screen: &str) {
    std::fs::write(capture_dir().join(name), screen).unwrap();
}

fn kill(sig: &str, pid: u32) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// tmux at 120×40 running `cmd` in session `s`; a line with the exit status and
/// a long sleep follow, so the last screen stays readable.
fn tmux_session(name: &str, cmd: &str) -> Tmux {
    let tmux = Tmux::new(name);
    let cmd = format!("{cmd}; echo \"scan exited with status $?\"; sleep 600");
    tmux.run(&[
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        "-s",
        "s",
        &cmd,
    ]);
    tmux.run(&["set-option", "-s", "escape-time", "0"]);
    tmux
}

fn tui_command(ns: &str, home: &Path, args: &str) -> String {
    format!(
        "ip netns exec {ns} {} --home {} scan {args} --tui",
        common::prtip_bin().display(),
        home.display()
    )
}

#[test]
fn scan_tui_pauses_resumes_in_place_and_quitting_leaves_the_scan_running() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("tui");
    let ns = lab.config().scan_ns.clone();
    let home = tempfile::tempdir().unwrap();
    // 256 addresses × 100 ports at 1,000 probes/s: long enough to drive.
    let tmux = tmux_session(
        "prtip-scan-tui",
        &tui_command(
            &ns,
            home.path(),
            "198.19.0.0/24 -p 1-100 --rate 1000 --wait 300ms",
        ),
    );
    let dir = home.path().join("scans").join("1");
    let screen = tmux.wait_for("s", "the progress screen", WAIT, |s| {
        s.contains("scan 1 RUNNING") && s.contains(":22/tcp") && s.contains(":80/tcp")
    });
    // The monitor shows the scan of its own process: the log's writer.
    let pid = lock_pid(&dir);
    assert!(screen.contains(&format!("pid {pid}")), "{screen}");
    assert!(screen.contains("198.19.0.0/24 │ ports T:1-100"), "{screen}");
    assert!(!screen.contains("Discovered open port"), "{screen}");
    save("tui-01-progress.txt", &screen);

    // p: SIGUSR1 to this very process; the scan holds, Checkpoint + Paused.
    tmux.keys("s", &["p"]);
    let screen = tmux.wait_for("s", "PAUSED", WAIT, |s| s.contains("scan 1 PAUSED"));
    save("tui-02-paused.txt", &screen);
    let k = kinds(&dir);
    let p = k.iter().rposition(|k| *k == "Paused").unwrap();
    assert_eq!(k[p - 1], "Checkpoint");
    let held = pauses(&dir);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].0, "SIGUSR1");
    let r = row(home.path(), 1);
    assert_eq!(r.status, ScanStatus::Paused, "{r:?}");
    assert_eq!(r.probes_done, held[0].1, "{r:?}");
    assert!(r.checkpoints >= 1, "{r:?}");

    // r: SIGUSR2; Resumed, the history says running again.
    tmux.keys("s", &["r"]);
    tmux.wait_for("s", "RUNNING again", WAIT, |s| {
        s.contains("scan 1 RUNNING") && s.contains("Resumed from probe index")
    });
    assert!(kinds(&dir).contains(&"Resumed"));
    assert_eq!(row(home.path(), 1).status, ScanStatus::Running);

    // q: the monitor leaves; the scan goes on in the terminal (progress line).
    let before = kinds(&dir).len();
    tmux.keys("s", &["q"]);
    let screen = tmux.wait_for("s", "the scan's progress line", WAIT, |s| {
        s.contains(" pps · ") && s.contains("% · ETA")
    });
    save("tui-03-after-quit.txt", &screen);
    assert!(!screen.contains("scan exited"), "{screen}");
    assert!(!screen.contains("scan 1 RUNNING"), "{screen}");
    wait_until("the scan to keep writing", WAIT, || {
        kinds(&dir).len() > before
    });
    assert!(common::pid_running(pid));

    // Ctrl-C now pauses it for good: resumable, the history says so.
    tmux.keys("s", &["C-c"]);
    let screen = tmux.wait_for("s", "the exit", WAIT, |s| {
        s.contains("scan exited with status")
    });
    save("tui-04-paused-after-quit.txt", &screen);
    assert!(screen.contains("scan exited with status 75"), "{screen}");
    assert!(
        screen.contains("(scan 1) — resume: prtip replay 1 --from-checkpoint"),
        "{screen}"
    );
    assert_eq!(kinds(&dir).last(), Some(&"Paused"));
    let last = pauses(&dir).pop().unwrap();
    assert_eq!(last.0, "SIGINT");
    let r = row(home.path(), 1);
    assert_eq!(r.status, ScanStatus::Paused, "{r:?}");
    assert!(r.status.resumable());
    assert_eq!(r.probes_done, last.1, "{r:?}");
    assert!(!prtip_store::writer_alive(&dir).unwrap());
    drop(lab);
}

#[test]
fn scan_tui_finished_scan_stays_on_screen_until_q_then_prints_the_summary() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("tuf");
    let ns = lab.config().scan_ns.clone();
    let home = tempfile::tempdir().unwrap();
    let tmux = tmux_session(
        "prtip-scan-tui-done",
        &tui_command(&ns, home.path(), "198.19.0.7 -p 20-25,80 --wait 300ms"),
    );
    let dir = home.path().join("scans").join("1");
    let screen = tmux.wait_for("s", "FINISHED", WAIT, |s| s.contains("scan 1 FINISHED"));
    save("tui-05-finished.txt", &screen);
    // The scan is over, the process waits for the user: nothing printed yet.
    assert!(!screen.contains("prtip done"), "{screen}");
    assert_eq!(kinds(&dir).last(), Some(&"Finished"));
    tmux.keys("s", &["q"]);
    let screen = tmux.wait_for("s", "the exit", WAIT, |s| {
        s.contains("scan exited with status")
    });
    save("tui-06-summary.txt", &screen);
    assert!(screen.contains("scan exited with status 0"), "{screen}");
    let line = |p: &str| {
        screen
            .lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} line in {screen}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    // nmap's normal output: the port table names undetected services.
    assert_eq!(line("22/tcp"), ["22/tcp", "open", "ssh"]);
    assert_eq!(line("80/tcp"), ["80/tcp", "open", "http"]);
    assert_eq!(line("23/tcp"), ["23/tcp", "closed", "telnet"]);
    assert!(
        screen.contains("prtip done: 1 IP address scanned in"),
        "{screen}"
    );
    assert_eq!(row(home.path(), 1).status, ScanStatus::Completed);
    drop(lab);
}

#[test]
fn scan_tui_without_a_terminal_is_refused_before_anything_is_written() {
    let home = tempfile::tempdir().unwrap();
    let out = common::prtip()
        .args(["--home"])
        .arg(home.path())
        .args(["scan", "127.0.0.1", "-sT", "-p", "22", "--tui"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tui draws the monitor full-screen"), "{err}");
    assert!(!home.path().join("scans").exists());
    assert!(!home.path().join("history.redb").exists());
}

/// `prtip history list --json` → status of scan `id`, and `history show` output.
fn history_status(home: &Path, id: u64) -> (String, String) {
    let out = common::prtip()
        .arg("--home")
        .arg(home)
        .args(["history", "list", "--json"])
        .env_remove("PRTIP_HISTORY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let status = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["id"] == id)
        .map(|v| v["status"].as_str().unwrap().to_string())
        .expect("the scan in history list");
    let out = common::prtip()
        .arg("--home")
        .arg(home)
        .args(["history", "show", &id.to_string()])
        .env_remove("PRTIP_HISTORY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (status, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn history_shows_a_scan_held_in_place_by_sigusr1_and_continued_by_sigusr2() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("hld");
    let ns = lab.config().scan_ns.clone();
    let home = tempfile::tempdir().unwrap();
    let scan = common::prtip_in_ns(&ns)
        .args([
            "scan",
            "198.19.0.0/24",
            "-p",
            "1-100",
            "--rate",
            "500",
            "--wait",
            "300ms",
            "--quiet",
        ])
        .env("PRTIP_HOME", home.path())
        .env_remove("PRTIP_HISTORY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut scan = common::KillOnDrop(scan);
    let pid = scan.0.id();
    let dir = home.path().join("scans").join("1");
    wait_until("the scan's first checkpoint", WAIT, || {
        kinds(&dir).contains(&"Checkpoint")
    });
    assert_eq!(history_status(home.path(), 1).0, "running");

    kill("-USR1", pid);
    wait_until("Paused in the log", WAIT, || {
        kinds(&dir).last() == Some(&"Paused")
    });
    let held = pauses(&dir);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].0, "SIGUSR1");
    // The process still holds its log, and the history says paused.
    assert!(prtip_store::writer_alive(&dir).unwrap());
    let (status, show) = history_status(home.path(), 1);
    assert_eq!(status, "paused", "{show}");
    assert!(show.contains("status           paused"), "{show}");
    assert!(
        show.contains(&format!(
            "held in place by pid {pid}; continue: kill -USR2 {pid}"
        )),
        "{show}"
    );
    let r = row(home.path(), 1);
    assert_eq!(r.probes_done, held[0].1, "{r:?}");
    assert!(r.checkpoints >= 2, "{r:?}");
    let cps = HistoryIndex::open(&home.path().join("history.redb"))
        .unwrap()
        .checkpoints(1)
        .unwrap();
    assert_eq!(cps.last().unwrap().next_index, held[0].1);
    // A held scan is not resumable from another process: its own continues it.
    let out = common::prtip()
        .arg("--home")
        .arg(home.path())
        .args(["replay", "1", "--from-checkpoint"])
        .env_remove("PRTIP_HISTORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "scan 1 is paused in place and its process still holds the log; continue it with `kill -USR2 {pid}`"
        )),
        "{out:?}"
    );
    // `history clean` keeps it.
    let out = common::prtip()
        .arg("--home")
        .arg(home.path())
        .args(["history", "clean", "--older-than", "0s"])
        .env_remove("PRTIP_HISTORY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kept scan 1"),
        "{out:?}"
    );
    assert!(dir.is_dir());

    kill("-USR2", pid);
    wait_until("Resumed in the log", WAIT, || {
        kinds(&dir).last() == Some(&"Resumed")
            || kinds(&dir).iter().rposition(|k| *k == "Resumed")
                > kinds(&dir).iter().rposition(|k| *k == "Paused")
    });
    let (status, show) = history_status(home.path(), 1);
    assert_eq!(status, "running", "{show}");
    assert!(show.contains("status           running"), "{show}");

    kill("-INT", pid);
    let out = scan.0.wait().unwrap();
    assert_eq!(out.code(), Some(75), "{out:?}");
    let last = pauses(&dir).pop().unwrap();
    assert_eq!(last.0, "SIGINT");
    let (status, show) = history_status(home.path(), 1);
    assert_eq!(status, "paused", "{show}");
    assert!(
        show.contains("resume: prtip replay 1 --from-checkpoint"),
        "{show}"
    );
    assert_eq!(row(home.path(), 1).probes_done, last.1);
    drop(lab);
}
