//! Bad input to the binary: each case exits 2 with one message naming the
//! option and the value, and leaves no scan directory behind (nothing was
//! sent: the checks run before the scan directory, the log or a socket
//! exists). Also: a closed stdout pipe is not an error, each cause of an error
//! is printed once, and a scan whose log cannot be created leaves nothing.
//!
//! The scans here are connect scans of 127.0.0.1: were a check missing, the
//! probes would stay on loopback.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Output, Stdio};

/// `prtip --home HOME scan 127.0.0.1 -sT ARGS...`.
fn scan(home: &Path, args: &[&str]) -> Output {
    common::prtip()
        .arg("--home")
        .arg(home)
        .args(["scan", "127.0.0.1", "-sT"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn scan_dirs(home: &Path) -> usize {
    std::fs::read_dir(home.join("scans")).map_or(0, |d| d.count())
}

/// Exit 2, the message once, naming every piece of `names`; no scan directory.
fn refused(args: &[&str], names: &[&str]) {
    let home = tempfile::tempdir().unwrap();
    let out = scan(home.path(), args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.matches("prtip: ").count(), 1, "{args:?}: {err}");
    for n in names {
        assert!(err.contains(n), "{args:?}: {n:?} not in {err}");
    }
    assert_eq!(scan_dirs(home.path()), 0, "{args:?} left a scan directory");
}

#[test]
fn port_zero_and_negative_ports_are_refused() {
    refused(&["-p", "0"], &["-p 0", "port 0"]);
    refused(&["-p", "22,0-5"], &["-p 22,0-5", "port 0"]);
    refused(&["-p", "-1"], &["-p -1", "cannot be negative"]);
}

#[test]
fn rates_that_would_mean_unlimited_are_refused() {
    refused(&["--rate", "0"], &["--rate 0", "at least 0.001"]);
    refused(&["--rate", "0.0001"], &["--rate 0.0001"]);
    refused(
        &["--max-rate", "0.5"],
        &["--max-rate 0.5", "at least 1 probe"],
    );
    refused(&["--max-rate", "0"], &["--max-rate 0"]);
    refused(&["--rate", "-5"], &["--rate -5", "no negative value"]);
    refused(&["--max-retries", "-1"], &["--max-retries -1"]);
}

#[test]
fn a_min_rate_above_the_ceiling_or_without_the_governor_is_refused() {
    refused(
        &["--rate", "1000", "--min-rate", "5000"],
        &[
            "--min-rate 5000",
            "--rate 1000",
            "must not exceed the ceiling",
        ],
    );
    refused(
        &["--rate", "1M", "--max-rate", "20k", "--min-rate", "30k"],
        &["--min-rate 30k", "--max-rate 20k"],
    );
    refused(
        &["-T2", "--min-rate", "10"],
        &["--min-rate 10", "-T2's rate 2.5"],
    );
    refused(
        &["--min-rate", "100", "--fixed-rate"],
        &["--min-rate 100 with --fixed-rate"],
    );
    refused(&["--min-rate", "0"], &["--min-rate 0", "at least 0.001"]);
    refused(&["--min-rate", "fast"], &["--min-rate \"fast\""]);
}

#[test]
fn values_that_were_silently_changed_are_refused() {
    refused(&["--top-ports", "99999"], &["--top-ports 99999", "ranks"]);
    refused(
        &["--checkpoint-interval", "0"],
        &["--checkpoint-interval 0"],
    );
    refused(&["--checkpoint-every", "0"], &["--checkpoint-every 0"]);
}

#[test]
fn two_outputs_into_one_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("out");
    let f = f.to_str().unwrap();
    refused(
        &["-p", "22", "-oX", f, "-oJ", f],
        &["-oX", "-oJ", "same file"],
    );
    let base = dir.path().join("all");
    let xml = format!("{}.xml", base.display());
    refused(
        &["-p", "22", "-oA", base.to_str().unwrap(), "-oX", &xml],
        &["-oA", "-oX", "same file"],
    );
}

#[test]
fn a_bad_target_list_line_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("targets.txt");
    std::fs::write(&list, "127.0.0.1\n# a comment\n198.18.0.300\n").unwrap();
    let l = list.to_str().unwrap();
    refused(
        &["-p", "22", "-iL", l],
        &[&format!("-iL {l} line 3"), "198.18.0.300"],
    );
}

#[test]
fn host_discovery_flags_other_than_pn_are_refused() {
    refused(&["-p", "22", "-PS22"], &["-PS22", "host discovery"]);
    refused(&["-p", "22", "-Pfoo"], &["-Pfoo"]);
}

/// As [`refused`] for `prtip --home HOME scan ARGS...` without `-sT`: the ping
/// sweep's checks (targets on loopback, so a missing check still sends nowhere).
fn refused_sweep(args: &[&str], names: &[&str]) {
    let home = tempfile::tempdir().unwrap();
    let out = common::prtip()
        .arg("--home")
        .arg(home.path())
        .arg("scan")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.matches("prtip: ").count(), 1, "{args:?}: {err}");
    for n in names {
        assert!(err.contains(n), "{args:?}: {n:?} not in {err}");
    }
    assert_eq!(scan_dirs(home.path()), 0, "{args:?} left a scan directory");
}

#[test]
fn ping_sweeps_refuse_what_they_cannot_honour() {
    let t = "127.0.0.1";
    refused_sweep(
        &["-sn", "-PX", t],
        &["-PX", "unknown host discovery option", "-PE"],
    );
    refused_sweep(&["-sn", "-PS99999", t], &["99999", "-PS99999"]);
    refused_sweep(&["-sn", "-PEx", t], &["-PEx", "unknown"]);
    refused_sweep(&["-sn", "-p", "22", t], &["-sn scans no ports", "-PS"]);
    refused_sweep(&["-sn", "--top-ports", "10", t], &["-sn scans no ports"]);
    refused_sweep(&["-sn", "-Pn", t], &["-sn -Pn"]);
    refused_sweep(&["-sn", "-sV", t], &["-sn -sV"]);
    refused_sweep(&["-sn", "-sS", t], &["-sn given together with -sS"]);
    refused_sweep(&["-snT", t], &["-sn given together with -sT"]);
    refused_sweep(&["-sn", "-sU", t], &["-sn given together with -sU"]);
    refused_sweep(&["-sn", t, "::1"], &["1 IPv4 and 1 IPv6 targets"]);
    // A port scan never pings first.
    refused_sweep(&["-sS", "-p", "22", "-PE", t], &["-PE", "-sn -PE"]);
}

#[test]
fn a_home_that_is_a_file_is_bad_input_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::write(&home, b"not a directory").unwrap();
    let out = scan(&home, &["-p", "22"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("it is a file"), "{err}");
}

/// A closed stdout (`| head -1`) ends the command quietly: no panic (exit
/// 101), no "Broken pipe" error.
#[test]
fn a_closed_stdout_is_not_an_error() {
    let run_dir = tempfile::tempdir().unwrap();
    let mut child = common::prtip()
        .args(["lab", "status", "--all", "--run-dir"])
        .arg(run_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is written
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // An export to a closed pipe, of a real (loopback connect) scan.
    let home = tempfile::tempdir().unwrap();
    let ok = scan(home.path(), &["-p", "1-200", "--quiet"]);
    assert!(ok.status.success(), "{ok:?}");
    let mut child = common::prtip()
        .arg("--home")
        .arg(home.path())
        .args(["export", "--last", "-f", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

/// A scan whose log cannot be created (a file size limit stands in for a full
/// disk) fails with the cause said once and leaves no scan directory.
#[test]
fn a_scan_that_cannot_create_its_log_leaves_no_directory() {
    let home = tempfile::tempdir().unwrap();
    // The history index exists already (a first scan, without the limit).
    let ok = scan(home.path(), &["-p", "22", "--quiet"]);
    assert!(ok.status.success(), "{ok:?}");
    let before = scan_dirs(home.path());
    let history_len = std::fs::metadata(home.path().join("history.redb"))
        .unwrap()
        .len();
    let limit = history_len.max(512 << 10);
    let mut cmd = common::prtip();
    cmd.arg("--home")
        .arg(home.path())
        .args(["scan", "127.0.0.1", "-sT", "-p", "22", "--quiet"]);
    // SAFETY: between fork and exec only async-signal-safe calls (signal,
    // setrlimit) on the child's own settings.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("creating the scan log"), "{err}");
    assert_eq!(err.matches("File too large").count(), 1, "{err}");
    assert_eq!(scan_dirs(home.path()), before, "{err}");
}
