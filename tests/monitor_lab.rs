//! End to end on a real lab scan: `prtip scan` runs inside the lab's scanner
//! namespace (another process), `prtip monitor` attaches to its log in tmux
//! (120×40) outside the namespace. Presses `f`, `p`, `r`, `e`, `3`, `q` and
//! reads the screen with `capture-pane`; checks the scan obeyed (Checkpoint +
//! Paused, then Resumed, in its log and in the history), that the export
//! matches the filter, and that quitting the monitor left the scan running.
//! Captures go to `target/tmp/monitor-captures/lab-*.txt`.

mod common;
mod monitor_support;

use monitor_support::*;
use prtip_store::{EventRef, HistoryIndex, LogReader, Results};
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

#[test]
fn monitor_on_a_lab_scan_filters_pauses_resumes_exports_and_quits() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("mon");
    let ns = lab.config().scan_ns.clone();
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // 256 addresses × 200 ports at 1,000 probes/s: about 50 s, long enough
    // to drive the monitor; the test pauses it with SIGINT at the end.
    let scan = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(common::prtip_bin())
        .args([
            "scan",
            "198.19.0.0/24",
            "-p",
            "1-200",
            "--rate",
            "1000",
            "--wait",
            "300ms",
            "--quiet",
        ])
        .env("PRTIP_HOME", home.path())
        .env_remove("PRTIP_HISTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start prtip scan in the lab");
    let mut scan = common::KillOnDrop(scan);
    let dir = home.path().join("scans").join("1");
    wait_until("the scan's log", WAIT, || kinds(&dir).contains(&"Sample"));

    let tmux = Tmux::new("prtip-monitor-lab");
    let cmd = format!(
        "{} --home {} monitor 1; echo \"monitor exited with status $?\"; sleep 600",
        common::prtip_bin().display(),
        home.path().display()
    );
    tmux.start("lab", Some(work.path()), &cmd);

    let screen = tmux.wait_for("lab", "the live progress screen", WAIT, |s| {
        s.contains("scan 1 RUNNING") && s.contains(":22/tcp") && s.contains(":80/tcp")
    });
    assert!(screen.contains(&format!("pid {}", scan.0.id())), "{screen}");
    assert!(screen.contains("198.19.0.0/24 │ ports T:1-200"), "{screen}");
    save_capture("lab-01-progress.txt", &screen);

    // f: only ssh and http.
    tmux.keys("lab", &["f"]);
    tmux.wait_for("lab", "the filter builder", WAIT, |s| {
        s.contains("Filter builder")
    });
    tmux.type_text("lab", "22,80");
    tmux.keys("lab", &["Tab", "Tab"]);
    tmux.type_text("lab", "open");
    let screen = tmux.wait_for("lab", "the preview", WAIT, |s| {
        s.contains("Filter: port 22,80 and state open") && s.contains("results match")
    });
    save_capture("lab-02-filter-builder.txt", &screen);
    tmux.keys("lab", &["Enter"]);
    tmux.wait_for("lab", "the filtered results", WAIT, |s| {
        s.contains("results (filtered)")
    });

    // p: the scan holds in place, writes Checkpoint + Paused.
    tmux.keys("lab", &["p"]);
    tmux.wait_for("lab", "PAUSED", WAIT, |s| s.contains("scan 1 PAUSED"));
    let k = kinds(&dir);
    let p = k
        .iter()
        .rposition(|k| *k == "Paused")
        .expect("Paused in the log");
    assert_eq!(k[p - 1], "Checkpoint");
    let reader = LogReader::open(&dir).unwrap();
    let paused_at = reader
        .iter()
        .filter_map(|e| match e.unwrap() {
            EventRef::Paused(p) => Some((p.reason.as_str().to_string(), p.next_index.to_native())),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(paused_at.0, "SIGUSR1");
    assert!(paused_at.1 > 0);
    // The counts on screen are the log's, exactly, while the scan holds.
    let results = Results::from_log(&reader).unwrap();
    let f = prtip_filter::Filter::parse("port 22,80 and state open").unwrap();
    let rows = results.rows();
    let want = (rows.iter().filter(|r| f.matches(r)).count(), rows.len());
    let screen = tmux.wait_for("lab", "the paused counts", WAIT, |s| {
        s.contains("Showing ") && showing(s) == want
    });
    assert!(want.0 > 0, "{want:?}");
    save_capture("lab-03-results-paused.txt", &screen);
    tmux.keys("lab", &["1"]);
    let screen = tmux.wait_for("lab", "the pause event", WAIT, |s| {
        s.contains("Paused (SIGUSR1) at probe")
    });
    save_capture("lab-04-progress-paused.txt", &screen);

    // r: continues; Resumed in the log and on screen.
    tmux.keys("lab", &["r"]);
    let screen = tmux.wait_for("lab", "the resume", WAIT, |s| {
        s.contains("scan 1 RUNNING") && s.contains("Resumed from probe index")
    });
    save_capture("lab-05-progress-resumed.txt", &screen);
    assert!(kinds(&dir).contains(&"Resumed"));

    // e: export the filtered rows as JSON lines.
    tmux.keys("lab", &["e"]);
    tmux.wait_for("lab", "the export menu", WAIT, |s| {
        s.contains("prtip-scan-1.csv")
    });
    tmux.keys("lab", &["Left", "Left", "Left"]); // csv -> grep -> xml -> json
    tmux.wait_for("lab", "json selected", WAIT, |s| {
        s.contains("prtip-scan-1.jsonl")
    });
    tmux.keys("lab", &["Enter"]);
    let screen = tmux.wait_for("lab", "the export", WAIT, |s| s.contains("done: "));
    save_capture("lab-06-export.txt", &screen);
    let json = std::fs::read_to_string(work.path().join("prtip-scan-1.jsonl")).unwrap();
    let lines: Vec<&str> = json.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v.get("ip").is_none() {
            // The closing status line of an unfinished scan (docs/exports.md).
            assert!(v["status"].is_string(), "{l}");
            continue;
        }
        let port = v["port"].as_u64().unwrap();
        assert!(port == 22 || port == 80, "{l}");
        assert_eq!(v["state"], "open", "{l}");
    }
    tmux.keys("lab", &["Escape"]);
    tmux.wait_for("lab", "the menu to close", WAIT, |s| {
        !s.contains("Enter export")
    });

    // The dashboard of the running scan.
    tmux.keys("lab", &["3"]);
    let screen = tmux.wait_for("lab", "the dashboard", WAIT, |s| {
        s.contains("CPU per core (host)") && s.contains("Probe rate: ") && s.contains("RTT p50")
    });
    std::thread::sleep(Duration::from_secs(3));
    let screen = {
        let later = tmux.capture("lab");
        if later.contains("RTT p50") {
            later
        } else {
            screen
        }
    };
    save_capture("lab-07-dashboard.txt", &screen);

    // q: the monitor leaves, the scan keeps scanning.
    let before = kinds(&dir).len();
    tmux.keys("lab", &["q"]);
    let screen = tmux.wait_for("lab", "exit", WAIT, |s| {
        s.contains("monitor exited with status")
    });
    assert!(screen.contains("monitor exited with status 0"), "{screen}");
    assert_eq!(scan.0.try_wait().unwrap(), None, "the scan must still run");
    wait_until("the scan to keep writing", WAIT, || {
        kinds(&dir).len() > before
    });

    // SIGINT pauses the scan for good (resumable); its log reads back whole.
    let st = Command::new("kill")
        .args(["-INT", &scan.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = scan.0.wait().unwrap();
    assert_eq!(out.code(), Some(75), "prtip scan after SIGINT: {out:?}");
    let k = kinds(&dir);
    assert_eq!(k.first(), Some(&"ScanStarted"));
    assert_eq!(k.last(), Some(&"Paused"));
    let last_pause = LogReader::open(&dir)
        .unwrap()
        .iter()
        .filter_map(|e| match e.unwrap() {
            EventRef::Paused(p) => Some((p.reason.as_str().to_string(), p.next_index.to_native())),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(last_pause.0, "SIGINT");
    // The history shows the paused scan at its last checkpoint.
    let h = HistoryIndex::open(&home.path().join("history.redb")).unwrap();
    let _ = h.refresh();
    let row = h.get(1).unwrap().expect("scan 1 in the history");
    assert_eq!(row.status, prtip_store::ScanStatus::Paused, "{row:?}");
    assert_eq!(row.probes_done, last_pause.1, "{row:?}");
    drop(lab);
}
