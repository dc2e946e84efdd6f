//! `prtip export` end to end: SCAN as a log path, a history id or `--last`;
//! `--filter`; bad input exits 2 naming the bad value and writes nothing; Ctrl-C
//! exits 130 and leaves no file behind.

mod common;

use common::prtip;
use prtip_export::synthetic;
use std::path::Path;
use std::time::{Duration, Instant};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A home with one indexed scan (#9, 30 rows) and an output directory.
fn home() -> (tempfile::TempDir, std::path::PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("scans").join("9");
    synthetic::write_log(
        &log,
        9,
        &synthetic::lab_spec(),
        synthetic::lab_rows(30),
        true,
    )
    .unwrap();
    let index = prtip_store::HistoryIndex::open(&home.path().join("history.redb")).unwrap();
    assert_eq!(index.index_log(&log).unwrap().id, 9);
    (home, log)
}

#[test]
fn scan_by_path_id_or_last_with_a_filter() {
    let (home, log) = home();
    let by_path = prtip()
        .arg("export")
        .arg(&log)
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert!(
        by_path.status.success(),
        "{}",
        String::from_utf8_lossy(&by_path.stderr)
    );
    let csv = String::from_utf8(by_path.stdout).unwrap();
    assert_eq!(csv.lines().count(), 31);
    assert!(csv.starts_with(
        "IP,Port,Protocol,State,Service,Version,Banner\r\n198.19.0.1,21,tcp,open,ftp,vsftpd 3.0.3,"
    ));

    for scan in [&["9"][..], &["--last"][..]] {
        let out = prtip()
            .arg("--home")
            .arg(home.path())
            .arg("export")
            .args(scan)
            .args(["-f", "json", "--filter", "state open and port 22"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{scan:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let ips: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(
                    (v["port"].as_u64(), v["state"].as_str()),
                    (Some(22), Some("open"))
                );
                v["ip"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ips, ["198.19.0.1", "198.19.0.2", "198.19.0.3"], "{scan:?}");
    }

    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("r.xml");
    let out = prtip()
        .arg("export")
        .arg(&log)
        .args(["-f", "xml", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("(30 rows, 3 hosts,"));
    assert_eq!(names(out_dir.path()), ["r.xml"]);
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let (home, log) = home();
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("r.out");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![log.display().to_string(), "-f".into(), "yaml".into()],
            "unknown export format \"yaml\"",
        ),
        (
            vec![
                log.display().to_string(),
                "-f".into(),
                "csv".into(),
                "--filter".into(),
                "prot tcp".into(),
            ],
            "unknown field `prot`",
        ),
        (
            vec!["77".into(), "-f".into(), "csv".into()],
            "no scan #77 in the history",
        ),
        (
            vec!["/nonexistent/scan".into(), "-f".into(), "csv".into()],
            "neither a history id nor a scan log directory",
        ),
        (
            vec![
                out_dir.path().display().to_string(),
                "-f".into(),
                "csv".into(),
            ],
            "is not a prtip scan log",
        ),
        (
            vec![
                log.display().to_string(),
                "-f".into(),
                "csv".into(),
                "-o".into(),
                "/nonexistent/dir/x.csv".into(),
            ],
            "the directory /nonexistent/dir does not exist",
        ),
    ];
    for (args, msg) in cases {
        let mut cmd = prtip();
        cmd.arg("--home").arg(home.path()).arg("export").args(&args);
        if !args.iter().any(|a| a == "-o") {
            cmd.arg("-o").arg(&file);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
        assert!(names(out_dir.path()).is_empty(), "{args:?} wrote a file");
    }
}

#[test]
fn ctrl_c_aborts_and_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    synthetic::write_log(
        &log,
        1,
        &synthetic::lab_spec(),
        synthetic::lab_rows(400_000),
        true,
    )
    .unwrap();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let mut child = prtip()
        .arg("export")
        .arg(&log)
        .args(["-f", "html", "-o"])
        .arg(out_dir.join("report.html"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the export is under way: its temporary file exists.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !names(&out_dir).iter().any(|n| n.ends_with(".prtip-tmp")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "export ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no temporary file appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("export interrupted; no partial file was left behind"));
    assert!(
        names(&out_dir).is_empty(),
        "left behind: {:?}",
        names(&out_dir)
    );
}
