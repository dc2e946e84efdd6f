//! Issue 19, item 2, on the lab with `-sS -sV`: SIGINT while service detection
//! runs (after the SYN walk) pauses the scan — exit 75, history `paused`, no
//! `Finished` — and `prtip replay --from-checkpoint` sends no SYN again and
//! detects exactly the open ports still lacking a result: at the end every
//! open port has its service, each found once. Needs root.

mod common;

use common::{scan_cmd, scan_dir};
use prtip_store::event::{Event, PortState, Protocol};
use prtip_store::{HistoryIndex, LogReader, ScanStatus};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

fn status(home: &Path) -> ScanStatus {
    let h = HistoryIndex::open(&home.join("history.redb")).unwrap();
    h.get(1).unwrap().unwrap().status
}

fn events(home: &Path) -> Vec<Event> {
    let r = LogReader::open(&scan_dir(home, 1)).unwrap();
    r.iter().map(|e| e.unwrap().to_event()).collect()
}

#[test]
fn sigint_in_the_sv_phase_of_a_syn_scan_pauses_and_resume_finishes_detection() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("psv");
    let ns = lab.config().scan_ns.clone();
    let home = tempfile::tempdir().unwrap();
    let mut child = scan_cmd(
        home.path(),
        &ns,
        &[
            "scan",
            "-sS",
            "-sV",
            "198.19.0.1-4",
            "-p",
            "21,22,23,25,80",
            "--wait",
            "300ms",
            "--version-wait",
            "1500ms",
            "--max-parallelism",
            "1",
            "--quiet",
            "-v",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // -v says when service detection starts: the SYN walk is over.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no detection line: {seen}"
        );
        seen.push_str(&line);
        if line.contains("prtip: service detection of ") {
            break;
        }
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(75), "{stdout}\n{seen}");
    assert_eq!(status(home.path()), ScanStatus::Paused);
    let before = events(home.path());
    assert!(!before.iter().any(|e| matches!(e, Event::Finished(_))));
    let open: Vec<(prtip_store::Addr, u16)> = {
        let mut r = prtip_store::Results::new();
        before.iter().for_each(|e| r.apply_event(e));
        r.rows()
            .into_iter()
            .filter(|r| r.state == PortState::Open && r.proto == Protocol::Tcp)
            .map(|r| (r.addr, r.port))
            .collect()
    };
    let detected = |evs: &[Event]| -> BTreeMap<(prtip_store::Addr, u16), u32> {
        let mut m = BTreeMap::new();
        for e in evs {
            if let Event::Service(s) = e {
                *m.entry((s.addr, s.port)).or_insert(0) += 1;
            }
        }
        m
    };
    let sent_before = before
        .iter()
        .filter_map(|e| match e {
            Event::Paused(_) => None,
            Event::Checkpoint(c) => Some(c.counters.sent),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(
        detected(&before).len() < open.len(),
        "the pause left no port undone ({} of {})",
        detected(&before).len(),
        open.len()
    );

    let out = scan_cmd(
        home.path(),
        &ns,
        &["replay", "1", "--from-checkpoint", "--quiet"],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(home.path()), ScanStatus::Completed);
    let after = events(home.path());
    let services = detected(&after);
    for p in &open {
        assert_eq!(services.get(p), Some(&1), "{p:?}: {services:?}");
    }
    let finished = after
        .iter()
        .filter_map(|e| match e {
            Event::Finished(f) => Some(f.counters.sent),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(finished, vec![sent_before], "no SYN sent again on resume");
}
