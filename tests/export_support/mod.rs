//! Helpers shared by the export tests: synthetic scans and the real tools they are
//! checked with (xmllint, ndiff, python-libnmap, pdftotext, pdftoppm, chromium).
#![allow(dead_code)]

use prtip_export::{export_rows, synthetic, ExportOptions, Format, ReportMeta, Target};
use prtip_store::ResultRow;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Scan facts of a finished synthetic scan.
pub fn meta(scan_id: u64) -> ReportMeta {
    let start = 1_764_080_100_000_000;
    let mut m = ReportMeta::synthetic(scan_id, &synthetic::lab_spec(), start);
    m.command_line = "prtip scan -sS -sV -p 21-23,25,80,110,143,443,6379,8080 198.19.0.0/24".into();
    m.targets = vec!["198.19.0.0/24".into()];
    m.total_targets = 256;
    m.ended_us = Some(start + 2_500_000);
    m
}

/// Export `rows` in `format` to `dir/name` and return the path.
pub fn export(
    dir: &Path,
    name: &str,
    format: Format,
    meta: &ReportMeta,
    rows: Vec<ResultRow>,
) -> PathBuf {
    let path = dir.join(name);
    let stats = export_rows(
        meta,
        rows.into_iter().map(Ok),
        &[Target::new(format, path.to_str().unwrap())],
        &mut ExportOptions::default(),
    )
    .expect("export succeeds");
    assert_eq!(stats.len(), 1);
    path
}

/// Run a command, panicking with its output if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?}: {e} (is it installed? see docs/exports.md)",
            cmd
        )
    })
}

/// Run and require exit status 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{:?} failed: {}\nstdout: {}\nstderr: {}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Make sure python-libnmap is importable, installing it with pip if needed.
pub fn ensure_libnmap() {
    let ok = |_: ()| {
        Command::new("python3")
            .args(["-c", "import libnmap.parser"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok(()) {
        return;
    }
    run_ok(Command::new("python3").args(["-m", "pip", "install", "--quiet", "python-libnmap"]));
    assert!(
        ok(()),
        "python-libnmap still not importable after pip install"
    );
}

/// The Chromium binary, installing Debian's package if none is there (as root).
pub fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if have(c) {
            return c.into();
        }
    }
    run_ok(Command::new("apt-get").args(["install", "-y", "-q", "chromium"]));
    assert!(have("chromium"), "chromium not found after apt-get install");
    "chromium".into()
}

/// Headless Chromium with the flags that work as root in a container, plus `args`.
pub fn chromium_cmd(profile: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c.args(args);
    c
}
