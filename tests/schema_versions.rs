//! Logs of another event schema (store/FORMAT.md, "Event schema versions"): a
//! scan log written by schema 1 (tests/data/schema1-log, a paused `-sT` scan made
//! by the code before the typed `ScanSpec`) is refused by export, history rebuild
//! and resume with a message naming its version and the way out, and is left as
//! it was.

mod common;

use std::path::{Path, PathBuf};

/// A prtip home whose scans/1 holds the schema-1 fixture; returns (home, log dir).
fn home_with_schema1_log() -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("scans").join("1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture(), dir.join("seg-0000000000.log")).unwrap();
    (home, dir)
}

fn fixture() -> PathBuf {
    common::workspace_root().join("tests/data/schema1-log/seg-0000000000.log")
}

fn prtip(home: &Path, args: &[&str]) -> std::process::Output {
    common::prtip()
        .args(args)
        .env("PRTIP_HOME", home)
        .env_remove("PRTIP_HISTORY")
        .output()
        .unwrap()
}

fn assert_names_schema_1(what: &str, text: &str) {
    assert!(
        text.contains("written with event schema 1 (an older prtip)")
            && text.contains(&format!(
                "reads schema {} only",
                prtip_store::event::SCHEMA_VERSION
            ))
            && text.contains("with the prtip that wrote it"),
        "{what}: {text}"
    );
}

#[test]
fn export_refuses_a_schema_1_log_naming_the_version() {
    let (home, dir) = home_with_schema1_log();
    let out = prtip(
        home.path(),
        &["export", dir.to_str().unwrap(), "-f", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing exported");
    assert_names_schema_1("export", &String::from_utf8_lossy(&out.stderr));
    let now = std::fs::read(dir.join("seg-0000000000.log")).unwrap();
    assert!(
        now == std::fs::read(fixture()).unwrap(),
        "the log is unchanged"
    );
}

#[test]
fn history_rebuild_reports_a_schema_1_log_naming_the_version() {
    let (home, dir) = home_with_schema1_log();
    let out = prtip(home.path(), &["history", "rebuild"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!("warning: {}", dir.display())),
        "{text}"
    );
    assert_names_schema_1("history rebuild", &text);
    let list = prtip(home.path(), &["history", "list"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("127.0.0.1"),
        "the refused log is not indexed"
    );
}

#[test]
fn resume_refuses_a_schema_1_log_naming_the_version() {
    let (home, dir) = home_with_schema1_log();
    let out = prtip(
        home.path(),
        &["replay", dir.to_str().unwrap(), "--from-checkpoint"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_names_schema_1(
        "replay --from-checkpoint",
        &String::from_utf8_lossy(&out.stderr),
    );
    let now = std::fs::read(dir.join("seg-0000000000.log")).unwrap();
    assert!(
        now == std::fs::read(fixture()).unwrap(),
        "the log is unchanged"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "nothing was added to the log directory"
    );
}
