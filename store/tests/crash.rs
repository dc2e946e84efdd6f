//! A writer process killed with SIGKILL at random moments loses nothing it
//! acknowledged; a follower in another process sees a consistent stream throughout.
//!
//! The writer is this test binary re-executed with `PRTIP_STORE_CRASH_CHILD` set:
//! it appends records forever and prints `ACK <seq>` after each checkpoint returns.

mod common;
use common::*;
use prtip_store::event::*;
use prtip_store::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHILD_ENV: &str = "PRTIP_STORE_CRASH_CHILD";

/// Record `seq` of the crash log: ScanStarted, then a checkpoint every 500, events between.
fn record(seq: u64) -> Event {
    if seq == 0 {
        started(9)
    } else if seq.is_multiple_of(500) {
        Event::Checkpoint(checkpoint(seq))
    } else {
        event(seq)
    }
}

fn opts() -> LogOptions {
    LogOptions {
        segment_bytes: 1 << 20,
        queue_capacity: 256,
        ..Default::default()
    }
}

#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let (w, mut seq) =
        if dir.join("seg-0000000000.log").exists() || dir.join("seg-0000000000.zst").exists() {
            let (w, rep) = LogWriter::open_append(dir, opts()).unwrap();
            (w, rep.next_seq)
        } else {
            (LogWriter::create(dir, opts()).unwrap(), 0)
        };
    let mut s = w.sink();
    loop {
        match record(seq) {
            Event::Checkpoint(c) => {
                s.checkpoint(c).unwrap();
                println!("ACK {seq}");
            }
            ev => s.push(ev).unwrap(),
        }
        seq += 1;
    }
}

fn check_prefix(dir: &Path) -> u64 {
    // A writer killed before its first segment was installed left no log (a
    // loaded machine can take longer than a round to start the child).
    if !dir.join("seg-0000000000.log").exists() && !dir.join("seg-0000000000.zst").exists() {
        return 0;
    }
    let r = LogReader::open(dir).unwrap();
    let mut n = 0;
    for e in r.entries() {
        let e = e.unwrap();
        assert_eq!(e.seq, n);
        assert_eq!(e.event.to_event(), record(n), "record {n}");
        n += 1;
    }
    assert!(r.tail().corrupt.is_none());
    n
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scan");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0xc0ffee);
    let mut follower = Follower::open(&dir).unwrap();
    let mut followed = 0u64;
    let mut max_ack = 0u64;
    for round in 0..24 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(AtomicU64::new(0));
        let reader = {
            let out = child.stdout.take().unwrap();
            let acked = acked.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line.strip_prefix("ACK ") {
                        acked.store(n.trim().parse().unwrap(), Ordering::SeqCst);
                    }
                }
            })
        };
        // Let it run a random while (sometimes killing before the first ack), following it.
        let run_ms = 20 + rng.below(400);
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(run_ms) {
            follower
                .poll_entries(&mut |e| {
                    assert_eq!(e.seq, followed, "follower skipped or repeated");
                    assert_eq!(e.event.to_event(), record(e.seq));
                    followed += 1;
                })
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(5)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let ack = acked.load(Ordering::SeqCst);
        max_ack = max_ack.max(ack);
        // Everything acknowledged is there, and nothing but the records written.
        let n = check_prefix(&dir);
        assert!(
            max_ack == 0 || n > max_ack,
            "round {round}: checkpoint {max_ack} was acknowledged but the log has {n} records"
        );
        assert!(!writer_alive(&dir).unwrap());
    }
    assert!(max_ack >= 500, "the writer acknowledged checkpoints");
    // Drain the follower, then recover for good and finish.
    follower
        .poll_entries(&mut |e| {
            assert_eq!(e.seq, followed);
            followed += 1;
        })
        .unwrap();
    let (w, rep) = LogWriter::open_append(&dir, opts()).unwrap();
    assert!(rep.next_seq > max_ack);
    assert!(followed <= rep.next_seq);
    w.finish().unwrap();
    let n = check_prefix(&dir);
    assert_eq!(n, rep.next_seq);
    eprintln!(
        "{n} records, last acknowledged checkpoint {max_ack}, followed {followed}, {}",
        LogReader::open(&dir).unwrap().segments()
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".tmp") || n == "next.spare"),
        "{names:?}"
    );
}
