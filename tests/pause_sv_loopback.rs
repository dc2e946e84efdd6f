//! Issue 19, item 2: a Ctrl-C during the `-sV` phase pauses the scan (exit 75,
//! history `paused`, the log ends with Checkpoint + Paused and no `Finished`),
//! and `prtip replay --from-checkpoint` finishes detection for exactly the ports
//! still lacking it. On loopback with `-sT -sV` (no lab, no privilege): three
//! listeners of this test count the connections they accept, which tells the
//! test when detection has started (a port's second connection) and which ports
//! the resume touches.

mod common;

use prtip_store::event::Event;
use prtip_store::{HistoryIndex, LogReader, ScanStatus};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A listener on 127.0.0.1 that accepts every connection, counts it, keeps it
/// open, and (with a banner) greets with it.
struct Listener {
    port: u16,
    accepted: Arc<AtomicU64>,
}

fn serve(l: TcpListener, banner: Option<&'static [u8]>) -> Listener {
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    let kept: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            count.fetch_add(1, SeqCst);
            if let Some(b) = banner {
                let _ = s.write_all(b);
            }
            kept.lock().unwrap().push(s);
        }
    });
    Listener { port, accepted }
}

fn prtip_in(home: &Path) -> Command {
    let mut c = common::prtip();
    c.env("PRTIP_HOME", home).env_remove("PRTIP_HISTORY");
    c
}

fn services_per_port(dir: &Path) -> Vec<u16> {
    let r = LogReader::open(dir).unwrap();
    let mut v: Vec<u16> = r
        .iter()
        .filter_map(|e| match e.unwrap().to_event() {
            Event::Service(s) => Some(s.port),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[test]
fn sigint_during_service_detection_pauses_and_resume_finishes_it() {
    // Three ports in ascending order: detection (one port at a time) takes them
    // so. The lowest answers at once (ssh); the other two say nothing, so each
    // holds detection for its probe waits.
    let mut bound: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    bound.sort_by_key(|l| l.local_addr().unwrap().port());
    let mut bound = bound.into_iter();
    let a = serve(
        bound.next().unwrap(),
        Some(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
    );
    let b = serve(bound.next().unwrap(), None);
    let c = serve(bound.next().unwrap(), None);
    let ports = format!("{},{},{}", a.port, b.port, c.port);
    let home = tempfile::tempdir().unwrap();
    let child = prtip_in(home.path())
        .args([
            "scan",
            "-sT",
            "-sV",
            "127.0.0.1",
            "-p",
            &ports,
            "--max-parallelism",
            "1",
            "--version-intensity",
            "0",
            "--version-wait",
            "1500ms",
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The port scan connects once to each port; detection connects to `b`
    // after `a` is done: its second connection means detection is under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.accepted.load(SeqCst) < 2 {
        assert!(Instant::now() < deadline, "detection never reached port b");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(75), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("resume: prtip replay 1 --from-checkpoint"),
        "{stdout}"
    );
    // Issue 19, item 4: the Ctrl-C line, `history show` and the exports give one
    // figure (the walk is done: detection was paused).
    assert!(stdout.starts_with("paused at 100.0% (scan 1)"), "{stdout}");
    let show = prtip_in(home.path())
        .args(["history", "show", "1"])
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains("100.0% (3 of 3 first-pass probes)"), "{show}");
    let json = prtip_in(home.path())
        .args(["export", "1", "-f", "json"])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&json.stdout);
    assert!(json.contains("\"progress\":1.0"), "{json}");
    let dir = common::scan_dir(home.path(), 1);
    let history = || HistoryIndex::open(&home.path().join("history.redb")).unwrap();
    assert_eq!(
        history().get(1).unwrap().unwrap().status,
        ScanStatus::Paused
    );
    {
        let r = LogReader::open(&dir).unwrap();
        let evs: Vec<Event> = r.iter().map(|e| e.unwrap().to_event()).collect();
        assert!(
            !evs.iter().any(|e| matches!(e, Event::Finished(_))),
            "a scan paused in -sV has no Finished"
        );
        let p = evs
            .iter()
            .rposition(|e| matches!(e, Event::Paused(_)))
            .expect("a Paused event");
        assert!(
            matches!(&evs[p - 1], Event::Checkpoint(_)),
            "Checkpoint before Paused"
        );
    }
    assert_eq!(services_per_port(&dir), vec![a.port], "ssh found on a only");
    // `c` was never started: one connection, the port scan's.
    assert_eq!(
        c.accepted.load(SeqCst),
        1,
        "c was not detected before the pause"
    );
    let (a_before, b_before) = (a.accepted.load(SeqCst), b.accepted.load(SeqCst));

    let out = prtip_in(home.path())
        .args(["replay", "1", "--from-checkpoint", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        history().get(1).unwrap().unwrap().status,
        ScanStatus::Completed
    );
    // Exactly the ports lacking a result were detected: `a` (ssh found) was
    // left alone, `c` got its detection; nothing was port-scanned again.
    assert_eq!(a.accepted.load(SeqCst), a_before, "a was probed again");
    assert!(c.accepted.load(SeqCst) >= 2, "c was not detected on resume");
    assert!(
        b.accepted.load(SeqCst) > b_before,
        "b (no result) is tried again"
    );
    assert_eq!(services_per_port(&dir), vec![a.port], "one Service for a");
    let r = LogReader::open(&dir).unwrap();
    let last = r
        .iter()
        .map(|e| e.unwrap().to_event())
        .filter(|e| matches!(e, Event::Finished(_)))
        .count();
    assert_eq!(last, 1, "one Finished after the resume");
}
