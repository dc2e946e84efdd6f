//! Least privilege: a connect scan run as root keeps no capability but the
//! four that reach files (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
//! CAP_FOWNER), on every thread, while it scans (it kept the full set before).
//! The scan is a slow connect scan of 127.0.0.1; the lab tests check raw,
//! multi-queue `--xdp` and socket scans the same way.

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

/// (thread id, CapEff, CapPrm) of every thread of `pid`.
fn thread_caps(pid: u32) -> Vec<(String, u64, u64)> {
    let field = |status: &str, key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    let mut seen = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        if let (Some(e), Some(p)) = (field(&status, "CapEff:"), field(&status, "CapPrm:")) {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let id = format!("{} ({})", t.file_name().to_string_lossy(), comm.trim());
            seen.push((id, e, p));
        }
    }
    seen
}

/// Start `prtip scan args` (a slow scan) inside namespace `ns` with its scans under
/// `home`, wait until it has created its log (setup done), and return the
/// capabilities of every thread of the scanning process while it scans.
fn caps_while_scanning(ns: &str, home: &std::path::Path, args: &[&str]) -> Vec<(String, u64, u64)> {
    let mut child = common::scan_cmd(home, ns, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(home.join("scans")).map_or(0, |d| d.count()) == 0 {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the scan ended early ({st}): {err}");
        }
        assert!(Instant::now() < deadline, "the scan did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    // `ip netns exec` execs prtip: the child's pid is the scanner's.
    let pid = child.id();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "prtip");
    let seen = thread_caps(pid);
    // SAFETY: kill(2) on the pid of our own child, not yet reaped.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = child.wait();
    seen
}

/// The four file capabilities (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
/// CAP_FOWNER), kept permitted (not effective) for writing output files.
const FILE_CAPS: u64 = 0b1111;

#[test]
fn a_raw_scan_keeps_no_capability_once_its_sockets_are_open() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("cap");
    let home = tempfile::tempdir().unwrap();
    let seen = caps_while_scanning(
        &lab.config().scan_ns,
        home.path(),
        &[
            "scan",
            "-sS",
            "198.19.0.0/24",
            "-p",
            "1-1000",
            "--rate",
            "200",
            "--quiet",
        ],
    );
    assert!(
        seen.len() >= 3,
        "sender, receiver and event threads: {seen:?}"
    );
    for (tid, eff, prm) in &seen {
        assert_eq!(*eff, 0, "thread {tid}: CapEff {eff:#x}");
        assert_eq!(prm & !FILE_CAPS, 0, "thread {tid}: CapPrm {prm:#x}");
    }
}

#[test]
fn a_multi_queue_xdp_scan_keeps_no_capability_on_any_thread() {
    if !common::netns_tests_enabled() {
        return;
    }
    // Two queues: queue 1's sender thread is started while the backend is
    // built, before the scan's drop; it drops every capability itself.
    let lab = common::lab_with(prtip_lab::LabConfig {
        queues: 2,
        ..common::lab_config("cxq")
    });
    let home = tempfile::tempdir().unwrap();
    let iface = lab.config().scan_if.clone();
    let seen = caps_while_scanning(
        &lab.config().scan_ns,
        home.path(),
        &[
            "scan",
            "-sS",
            "198.19.0.0/24",
            "-p",
            "1-1000",
            "--rate",
            "200",
            "--xdp",
            &iface,
            "--xdp-queues",
            "2",
            "--quiet",
        ],
    );
    assert!(
        seen.iter().any(|(tid, _, _)| tid.contains("prtip-xdp-tx1")),
        "a sender thread for queue 1: {seen:?}"
    );
    for (tid, eff, prm) in &seen {
        assert_eq!(*eff, 0, "thread {tid}: CapEff {eff:#x}");
        assert_eq!(prm & !FILE_CAPS, 0, "thread {tid}: CapPrm {prm:#x}");
    }
}

#[test]
fn socket_scans_keep_no_effective_capability() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("cas");
    for (i, args) in [
        &[
            "scan",
            "-sT",
            "198.19.0.0/24",
            "-p",
            "1-1000",
            "--rate",
            "200",
            "--quiet",
        ][..],
        &[
            "scan",
            "-sU",
            "198.19.0.0/24",
            "-p",
            "1-1000",
            "--rate",
            "200",
            "--quiet",
        ],
    ]
    .iter()
    .enumerate()
    {
        let home = tempfile::tempdir().unwrap();
        let seen = caps_while_scanning(&lab.config().scan_ns, home.path(), args);
        for (tid, eff, prm) in &seen {
            assert_eq!(*eff, 0, "scan {i} thread {tid}: CapEff {eff:#x}");
            assert_eq!(
                prm & !FILE_CAPS,
                0,
                "scan {i} thread {tid}: CapPrm {prm:#x}"
            );
        }
    }
}

#[test]
fn the_lab_responder_serves_without_capabilities() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("rsc");
    let seen = thread_caps(lab.responder_pid());
    assert!(seen.len() >= 2, "main thread and a worker: {seen:?}");
    for (tid, eff, prm) in &seen {
        assert_eq!((*eff, *prm), (0, 0), "responder thread {tid}");
    }
    // It still answers: port 22 greets, as the ground truth says.
    let c = lab.config();
    let p = prtip_lab::tcp_probe(
        &c.scan_ns,
        "198.19.0.1:22".parse::<std::net::SocketAddr>().unwrap(),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(p.banner_text().starts_with("SSH-2.0-"), "{p:?}");
}
