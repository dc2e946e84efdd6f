//! Least privilege: a connect scan run as root keeps no capability but the
//! four that reach files (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
//! CAP_FOWNER), on every thread, while it scans (it kept the full set before).
//! The scan is a slow connect scan of 127.0.0.1.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

#[test]
fn a_connect_scan_drops_its_network_capabilities() {
    if !common::is_root() {
        eprintln!("skipped: needs root (to start with capabilities to drop)");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let mut child = common::prtip()
        .arg("--home")
        .arg(home.path())
        .args([
            "scan",
            "127.0.0.1",
            "-sT",
            "-p",
            "1-65535",
            "--rate",
            "100",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait for the scan's log: the drop happened before it was created.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(home.path().join("scans")).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "the scan did not start");
        assert!(child.try_wait().unwrap().is_none(), "the scan ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut seen = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        if let Some(c) = cap_eff(&status) {
            seen.push((t.file_name().to_string_lossy().into_owned(), c));
        }
    }
    // SAFETY: kill(2) on the pid of our own child, not yet reaped.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert!(!seen.is_empty());
    for (tid, c) in &seen {
        assert_eq!(c & !0b1111, 0, "thread {tid} has CapEff {c:#x}");
    }
}
