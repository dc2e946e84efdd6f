//! Fault injection under the real log writer, in the spirit of redb's fuzzer
//! (`fuzz/fuzz_targets/fuzz_redb.rs`: the real database over an I/O backend
//! that fails at chosen points, every answer checked against a model).
//!
//! The writer runs over `prtip_store::fault`, the seam in `sys` that every
//! fallocate, msync, fdatasync, truncate, rename and directory fsync goes
//! through. A first run counts those calls; then, for every call number k, a
//! fresh log is written with call k failing (and every later one: a failed
//! device stays failed). The writer stops at its first error, like a process
//! that exits on it. Optionally a power cut follows: every byte after the
//! durable point of the active segment becomes zeros, garbage or stays, page by
//! page. The model is the list of events appended and how many of them a
//! `sync`/`finish` that returned Ok acknowledged. After each run:
//!
//! - nothing acknowledged is lost: the reader returns at least those events;
//! - nothing damaged is read as data: every event read equals the model's event
//!   at its sequence number, and `verify` finds no damage (what was cut was
//!   never acknowledged: a torn tail, not corruption);
//! - the log can be continued: `open_append` succeeds and the next event follows
//!   the survivors.

mod common;
use common::*;
use prtip_store::event::*;
use prtip_store::*;
use std::path::Path;

const SEG: u64 = 1 << 20;

fn opts() -> LogOptions {
    LogOptions {
        segment_bytes: SEG,
        compress_sealed: false,
        prefault: false,
        frame_records: 16,
        ..Default::default()
    }
}

/// Event `i` of the model: banners of ~2.5 KiB (two segments in a run), a
/// checkpoint every 50.
fn ev(i: u64) -> Event {
    if i % 50 == 49 {
        return Event::Checkpoint(checkpoint(i));
    }
    Event::Banner(Banner {
        addr: std::net::Ipv4Addr::from(0xC613_0000u32 + i as u32).into(),
        port: (i % 60_000) as u16 + 1,
        proto: Protocol::Tcp,
        time_us: i,
        probe: "NULL".into(),
        bytes: vec![(i % 251) as u8; 2500 + (i % 17) as usize],
    })
}

struct Outcome {
    /// Events appended (the model: started(1), then ev(0..)).
    model: Vec<Event>,
    /// Events acknowledged durable.
    acked: usize,
    /// I/O calls made, in order.
    calls: Vec<fault::Op>,
    /// The first error, if any.
    error: Option<String>,
    /// The file of the call that was made to fail, if one was.
    failed_file: Option<String>,
}

/// Write a log in `dir` in two sessions (create, 700 events with a sync every
/// 100, finish; then open_append, 200 more, finish), stopping at the first
/// error. With `power_cut`, damage the unacknowledged bytes afterwards.
fn run(dir: &Path, fail_at: Option<u64>, power_cut: Option<u64>) -> Outcome {
    std::fs::create_dir_all(dir).unwrap();
    let faults = fault::inject(dir, fail_at);
    let mut model = vec![started(1)];
    let mut acked = 0;
    let mut durable = None;
    let mut error = None;
    let mut i = 0u64;
    'sessions: for session in 0..2 {
        let app = if session == 0 {
            Appender::create(dir, opts())
        } else {
            Appender::open_append(dir, opts()).map(|(a, _)| a)
        };
        let mut a = match app {
            Ok(a) => a,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        let n = if session == 0 { 700 } else { 200 };
        let first = if session == 0 { Some(started(1)) } else { None };
        for e in first
            .into_iter()
            .chain((0..n).map(|k| ev(i + k)))
            .collect::<Vec<_>>()
        {
            let is_started = matches!(e, Event::ScanStarted(_));
            if let Err(err) = a.append(&e) {
                error = Some(err.to_string());
                durable = Some(a.durable_pos());
                break 'sessions;
            }
            if !is_started {
                model.push(e);
                i += 1;
                if i.is_multiple_of(100) {
                    if let Err(err) = a.sync() {
                        error = Some(err.to_string());
                        durable = Some(a.durable_pos());
                        break 'sessions;
                    }
                    acked = model.len();
                }
            }
        }
        if let Err(err) = a.sync() {
            error = Some(err.to_string());
            durable = Some(a.durable_pos());
            break;
        }
        acked = model.len();
        let pos = a.durable_pos();
        if let Err(e) = a.finish() {
            error = Some(e.to_string());
            // finish writes the close frame at `pos` and syncs it: if that sync
            // failed, the close frame was never durable; if a later call
            // (truncate, fdatasync) failed, every byte in the file is.
            if faults.failed().map(|f| f.1) == Some(fault::Op::Msync) {
                durable = Some(pos);
            }
            break;
        }
    }
    let all = faults.calls();
    let failed_file = faults.failed().map(|(n, _)| {
        let p = &all[n as usize].1;
        p.file_name().unwrap().to_string_lossy().into_owned()
    });
    let calls = all.into_iter().map(|c| c.0).collect();
    drop(faults);
    if let (Some(seed), Some(d)) = (power_cut, durable) {
        cut_power(dir, d, seed);
    }
    Outcome {
        model,
        acked,
        calls,
        error,
        failed_file,
    }
}

/// After a crash: every byte of segment `d.segment` from `d.offset` on (never
/// acknowledged) becomes, page by page, zeros, garbage, or stays as written.
fn cut_power(dir: &Path, d: LogPos, seed: u64) {
    let path = dir.join(format!("seg-{:010}.log", d.segment));
    let Ok(mut b) = std::fs::read(&path) else {
        return;
    };
    let mut rng = Rng(seed | 1);
    let mut off = d.offset as usize;
    while off < b.len() {
        let end = ((off / 4096) + 1) * 4096;
        let end = end.min(b.len());
        match rng.below(3) {
            0 => b[off..end].fill(0),
            1 => b[off..end].iter_mut().for_each(|x| *x = rng.next() as u8),
            _ => {}
        }
        off = end;
    }
    std::fs::write(&path, &b).unwrap();
}

/// Check the log in `dir` against the model; returns how many events survived.
fn check(dir: &Path, o: &Outcome, what: &str) -> usize {
    let reader = match LogReader::open(dir) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(
                o.acked, 0,
                "{what}: an acknowledged log cannot be opened: {e}"
            );
            return 0;
        }
    };
    let mut n = 0;
    for r in reader.iter() {
        let e = match r {
            Ok(e) => e,
            Err(err) => panic!("{what}: damage read back after a fault: {err}"),
        };
        assert!(n < o.model.len(), "{what}: more events than were appended");
        assert_eq!(e.to_event(), o.model[n], "{what}: event {n} differs");
        n += 1;
    }
    assert!(
        n >= o.acked,
        "{what}: {n} events survived but {} were acknowledged",
        o.acked
    );
    let v = verify(dir).unwrap();
    assert!(v.is_intact(), "{what}: verify found damage: {:?}", v.damage);
    assert_eq!(v.records as usize, n, "{what}");
    n
}

/// The log can be continued after the fault: the next event follows the survivors.
fn continue_log(dir: &Path, o: &Outcome, n: usize, what: &str) {
    if n == 0 {
        return;
    }
    let (mut a, _) = Appender::open_append(dir, opts())
        .unwrap_or_else(|e| panic!("{what}: cannot continue after the fault: {e}"));
    a.append(&reply(7)).unwrap();
    a.finish().unwrap();
    let r = LogReader::open(dir).unwrap();
    let evs: Vec<Event> = r.iter().map(|e| e.unwrap().to_event()).collect();
    assert_eq!(evs.len(), n + 1, "{what}");
    assert_eq!(&evs[..n], &o.model[..n], "{what}");
    assert_eq!(verify(dir).unwrap().end, LogEnd::Closed, "{what}");
}

#[test]
fn every_failing_io_call_keeps_what_was_acknowledged() {
    // tmpfs when there is one: the faults are injected, not the disk's, and
    // ~80 runs of real cache flushes would only make the test slow.
    let shm = Path::new("/dev/shm");
    let t = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let clean = run(&t.path().join("clean"), None, None);
    assert!(clean.error.is_none(), "{:?}", clean.error);
    assert_eq!(clean.acked, clean.model.len());
    check(&t.path().join("clean"), &clean, "no fault");
    // Every kind of call is exercised.
    use fault::Op::*;
    for want in [Fallocate, Msync, Fdatasync, Truncate, Rename, FsyncDir] {
        assert!(
            clean.calls.contains(&want),
            "{want:?} never called: {:?}",
            clean.calls
        );
    }
    let calls = clean.calls.len() as u64;
    assert!(calls > 20, "only {calls} calls");

    for k in 0..calls {
        for power in [None, Some(k * 7919 + 1)] {
            let what = format!("call {k} failing, power cut {power:?}");
            let dir = t.path().join(format!("f{k}-{}", power.is_some()));
            let o = run(&dir, Some(k), power);
            // Each injected failure reaches the writer as an error, except in
            // a spare segment that was never needed (finish cancels it).
            if o.error.is_none() {
                assert_eq!(o.failed_file.as_deref(), Some("next.spare"), "{what}");
                assert_eq!(o.acked, o.model.len(), "{what}");
            }
            let n = check(&dir, &o, &what);
            continue_log(&dir, &o, n, &what);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
