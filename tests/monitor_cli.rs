//! `prtip monitor` input errors: exit code 2, a message naming the bad value,
//! and nothing drawn or written.

mod common;

use std::process::Output;

fn monitor(home: &std::path::Path, args: &[&str]) -> Output {
    common::prtip()
        .arg("--home")
        .arg(home)
        .arg("monitor")
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_bad_filter_exits_2_with_the_column_and_a_caret() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("scans/1")).unwrap();
    let o = monitor(home.path(), &["1", "--filter", "port 80 and state opne"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "prtip: invalid --filter: unknown state `opne`; values are open, closed, filtered, open|filtered, unfiltered (column 19)\n  port 80 and state opne\n                    ^^^^\n"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn an_unknown_scan_exits_2() {
    let home = tempfile::tempdir().unwrap();
    let o = monitor(home.path(), &["42"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "prtip: no scan log `42`: {}/scans/42 is not a directory (give a scan id from `prtip history list`, a log directory, or --last)\n",
            home.path().display()
        )
    );
}

#[test]
fn last_without_scans_exits_2() {
    let home = tempfile::tempdir().unwrap();
    let o = monitor(home.path(), &["--last"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "prtip: --last: no scan logs under {}/scans; run a scan first (`prtip scan ...`) or pass --home\n",
            home.path().display()
        )
    );
}

#[test]
fn scan_and_last_together_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let o = monitor(home.path(), &["1", "--last"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

#[test]
fn without_a_terminal_it_says_so_and_exits_2() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("scans/3")).unwrap();
    // stdout is a pipe here.
    let o = monitor(home.path(), &["--last"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "prtip: prtip monitor draws a full-screen interface and needs a terminal on stdout; for a report use `prtip export`\n"
    );
}
