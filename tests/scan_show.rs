//! Issue 19, item 7: nmap's `-v`, `-vv`, `-d` and `--stats-every`, and a status
//! line when stderr is not a terminal (plain lines, no carriage returns). On
//! loopback (`-sT`, no lab, no privilege).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

fn prtip_in(home: &Path) -> Command {
    let mut c = common::prtip();
    c.env("PRTIP_HOME", home).env_remove("PRTIP_HISTORY");
    c
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 30 closed ports and an open one at 40 probes/s: about a second.
fn scan(home: &Path, extra: &[&str]) -> (Output, u16, TcpListener) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let ports = format!("1-30,{port}");
    let out = prtip_in(home)
        .args(["scan", "-sT", "127.0.0.1", "-p", &ports, "--rate", "40"])
        .args(extra)
        .output()
        .unwrap();
    (out, port, l)
}

#[test]
fn verbose_and_debug_add_the_plan_details_and_events() {
    let home = tempfile::tempdir().unwrap();
    let (out, port, _l) = scan(home.path(), &["-vv", "-d"]);
    let (o, e) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    assert!(
        e.contains("prtip: scanning 1 hosts × 31 ports: 31 probes a pass"),
        "{e}"
    );
    assert!(e.contains("debug: finished: 31 sent"), "{e}");
    assert!(
        o.contains(&format!(
            "Discovered open port {port}/tcp on 127.0.0.1 (syn-ack, ttl "
        )),
        "{o}"
    );
    // -v alone: the plan, no debug lines, no details.
    let home = tempfile::tempdir().unwrap();
    let (out, port, _l) = scan(home.path(), &["-v"]);
    let (o, e) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    assert!(e.contains("prtip: scanning 1 hosts"), "{e}");
    assert!(!e.contains("debug:"), "{e}");
    assert!(
        o.contains(&format!("Discovered open port {port}/tcp on 127.0.0.1\n")),
        "{o}"
    );
}

#[test]
fn stats_every_prints_plain_lines_when_stderr_is_not_a_terminal() {
    let home = tempfile::tempdir().unwrap();
    let (out, _, _l) = scan(home.path(), &["--stats-every", "200ms"]);
    let (o, e) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    let stats: Vec<&str> = e.lines().filter(|l| l.starts_with("Stats: ")).collect();
    assert!(stats.len() >= 2, "{e}");
    for l in &stats {
        assert!(
            l.contains("% · ETA ") && l.contains(" elapsed; sent "),
            "{l}"
        );
    }
    assert!(!e.contains('\r') && !e.contains('\x1b'), "{e:?}");
    // Nothing of it on stdout.
    assert!(!o.contains("Stats:"), "{o}");
}

#[test]
fn a_bad_stats_interval_is_bad_input() {
    for bad in ["0", "soon"] {
        let home = tempfile::tempdir().unwrap();
        let out = prtip_in(home.path())
            .args(["scan", "-sT", "127.0.0.1", "-p", "1", "--stats-every", bad])
            .output()
            .unwrap();
        let (o, e) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{o}\n{e}");
        assert!(e.contains(&format!("bad --stats-every \"{bad}\"")), "{e}");
        assert!(!home.path().join("scans").exists(), "nothing may be made");
    }
}

#[test]
fn the_help_says_what_each_flag_adds() {
    let out = common::prtip().args(["scan", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["-v...", "-d...", "--stats-every <TIME>", "--open"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
