//! `prtip history`: list, show, clean, rebuild, diff and resume's choice, on logs
//! written with the store's LogWriter under a temporary PRTIP_HOME (no network).

mod common;

use prtip_store::event::*;
use prtip_store::{HistoryIndex, LogOptions, LogWriter};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Output;

fn spec(targets: &str) -> ScanSpec {
    ScanSpec {
        targets: vec![targets.into()],
        resolved: vec![HostName {
            name: "web.lab".into(),
            addr: Ipv4Addr::new(198, 19, 0, 2).into(),
        }],
        ports: "T:21-25,80,443".into(),
        service_detection: true,
        rate_mpps: 1_000_000,
        seed: 7,
        ..ScanSpec::default()
    }
}

fn reply(host: u8, port: u16, state: PortState) -> Event {
    Event::Reply(Reply {
        addr: Ipv4Addr::new(198, 19, 0, host).into(),
        port,
        proto: Protocol::Tcp,
        state,
        reason: if state == PortState::Open {
            Reason::SynAck
        } else {
            Reason::Reset
        },
        ttl: 64,
        icmp_code: 0,
        rtt_us: 100,
        time_us: 1,
    })
}

fn service(host: u8, port: u16, name: &str, version: &str) -> Event {
    Event::Service(Service {
        addr: Ipv4Addr::new(198, 19, 0, host).into(),
        port,
        proto: Protocol::Tcp,
        time_us: 2,
        name: name.into(),
        product: "Prod".into(),
        version: version.into(),
        extra: String::new(),
        confidence: 1.0,
        method: "probe".into(),
    })
}

/// Write scan `id` under `home/scans/<id>` started `age_s` seconds ago.
fn write_scan(home: &Path, id: u64, age_s: u64, events: Vec<Event>, ending: Option<Event>) {
    let dir = home.join("scans").join(id.to_string());
    let w = LogWriter::create(&dir, LogOptions::default()).unwrap();
    let mut s = w.sink();
    s.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id: id,
        time_us: now_us() - age_s * 1_000_000,
        spec: spec("198.19.0.0/29"),
        versions: Versions {
            prtip: "test".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec![
            "prtip".into(),
            "scan".into(),
            "-p".into(),
            "T:21-25,80,443".into(),
        ],
        total_probes: 56,
        total_targets: 8,
        pid: 1,
    })))
    .unwrap();
    for e in events {
        s.push(e).unwrap();
    }
    s.checkpoint(Checkpoint {
        next_index: 28,
        counters: Counters {
            sent: 28,
            ..Default::default()
        },
        time_us: now_us(),
    })
    .unwrap();
    if let Some(e) = ending {
        s.push(e).unwrap();
    }
    drop(s);
    w.finish().unwrap();
}

fn history(home: &Path, args: &[&str]) -> Output {
    common::prtip()
        .arg("history")
        .args(args)
        .env("PRTIP_HOME", home)
        .env_remove("PRTIP_HISTORY")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn finished() -> Option<Event> {
    Some(Event::Finished(Finished {
        time_us: now_us(),
        counters: Counters::default(),
    }))
}

#[test]
fn list_show_and_rebuild_without_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    write_scan(
        home,
        1,
        3600,
        vec![
            reply(2, 80, PortState::Open),
            reply(2, 22, PortState::Closed),
        ],
        finished(),
    );
    write_scan(
        home,
        2,
        60,
        vec![reply(3, 443, PortState::Open)],
        Some(Event::Paused(Paused {
            next_index: 28,
            time_us: now_us(),
            reason: "SIGINT".into(),
        })),
    );
    write_scan(home, 3, 30, vec![], None); // died without Paused
                                           // No index exists yet: list indexes the logs it finds.
    assert!(!home.join("history.redb").exists());
    let out = stdout(&history(home, &["list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].contains("ID") && lines[0].contains("STATUS") && lines[0].contains("OPEN"));
    assert!(
        lines[1].trim_start().starts_with("1 ")
            && lines[1].contains("completed")
            && lines[1].contains("100.0%"),
        "{out}"
    );
    assert!(
        lines[2].contains("paused") && lines[2].contains("50.0%"),
        "{out}"
    );
    assert!(lines[3].contains("interrupted"), "{out}");
    // OPEN, then UP ("-": no host discovery).
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cols[cols.len() - 2..], ["1", "-"], "one open port: {out}");
    // JSON lines.
    let out = stdout(&history(home, &["list", "--json"]));
    let v: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 3);
    assert_eq!(v[1]["status"], "paused");
    assert_eq!(v[1]["probes_done"], 28);
    // show
    let out = stdout(&history(home, &["show", "2"]));
    assert!(out.contains("status           paused"), "{out}");
    assert!(out.contains("T:21-25,80,443"), "{out}");
    assert!(
        out.contains("resume: prtip replay 2 --from-checkpoint"),
        "{out}"
    );
    assert!(out.contains(&format!("next index {:>12}", 28)), "{out}");
    let bad = history(home, &["show", "99"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no scan `99`"));
    // rebuild after deleting the index gives the same list.
    let before = stdout(&history(home, &["list", "--json"]));
    std::fs::remove_file(home.join("history.redb")).unwrap();
    let out = stdout(&history(home, &["rebuild"]));
    assert!(
        out.contains("indexed 3 scan log(s)") && out.contains("added: 1 2 3"),
        "{out}"
    );
    assert_eq!(stdout(&history(home, &["list", "--json"])), before);
}

#[test]
fn clean_removes_old_scans_and_dry_run_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    write_scan(
        home,
        1,
        40 * 86_400,
        vec![reply(2, 80, PortState::Open)],
        finished(),
    );
    write_scan(home, 2, 10 * 86_400, vec![], finished());
    let out = stdout(&history(
        home,
        &["clean", "--older-than", "30d", "--dry-run"],
    ));
    assert!(out.contains("would remove scan 1 (completed"), "{out}");
    assert!(!out.contains("scan 2"), "{out}");
    assert!(home.join("scans/1").is_dir());
    let out = stdout(&history(home, &["clean", "--older-than", "30d"]));
    assert!(
        out.contains("removed scan 1") && out.contains("removed 1 scan(s)"),
        "{out}"
    );
    assert!(!home.join("scans/1").exists());
    assert!(home.join("scans/2").is_dir());
    let ix = HistoryIndex::open(&home.join("history.redb")).unwrap();
    assert!(ix.get(1).unwrap().is_none());
    assert!(ix.get(2).unwrap().is_some());
    drop(ix);
    // Bad age: exit 2, the token named, nothing removed.
    let bad = history(home, &["clean", "--older-than", "30days"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`30days`"));
    assert!(home.join("scans/2").is_dir());
}

#[test]
fn diff_reports_hosts_and_ports_like_ndiff() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    write_scan(
        home,
        1,
        100,
        vec![
            reply(2, 22, PortState::Open),
            service(2, 22, "ssh", "9.1"),
            reply(2, 80, PortState::Open),
            reply(4, 21, PortState::Open),
            reply(2, 443, PortState::Closed),
        ],
        finished(),
    );
    write_scan(
        home,
        2,
        50,
        vec![
            reply(2, 22, PortState::Open),
            service(2, 22, "ssh", "9.2"),
            reply(2, 80, PortState::Closed),
            reply(2, 443, PortState::Open),
            reply(5, 25, PortState::Open),
        ],
        finished(),
    );
    let out = stdout(&history(home, &["diff", "1", "2"]));
    let body: Vec<&str> = out.lines().skip(2).filter(|l| !l.is_empty()).collect();
    assert_eq!(
        body,
        vec![
            " 198.19.0.2 (web.lab):",
            "-    22/tcp open ssh Prod 9.1",
            "+    22/tcp open ssh Prod 9.2",
            "-    80/tcp open",
            "+    80/tcp closed",
            "-    443/tcp closed",
            "+    443/tcp open",
            "-198.19.0.4: host disappeared",
            "-    21/tcp open",
            "+198.19.0.5: host appeared",
            "+    25/tcp open",
            "hosts: 1 appeared, 1 disappeared, 1 changed; ports: 1 appeared, 1 disappeared, 3 changed",
        ],
        "{out}"
    );
    // Same scan: no differences; --exit-code says so with the exit status.
    let same = history(home, &["diff", "1", "1", "--exit-code"]);
    assert_eq!(same.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&same.stdout)
        .contains("ports: 0 appeared, 0 disappeared, 0 changed"));
    assert_eq!(
        history(home, &["diff", "1", "2", "--exit-code"])
            .status
            .code(),
        Some(1)
    );
    // Log directories work as well as ids.
    let by_path = history(home, &["diff", home.join("scans/1").to_str().unwrap(), "2"]);
    assert_eq!(stdout(&by_path), out);
}

#[test]
fn resume_refuses_when_nothing_is_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    write_scan(home, 1, 100, vec![], finished());
    let o = history(home, &["resume"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = history(home, &["resume", "--scan-id", "1"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
