//! Where a log should end, and what happens when it does not: a finished log cut
//! at a frame boundary, a lost last segment, a missing middle segment, a crash
//! while rolling over; `verify` and `salvage` on each (issue 20, items 2 and 3).

mod common;
use common::*;
use prtip_store::event::*;
use prtip_store::*;
use std::path::Path;

fn opts(compress: bool) -> LogOptions {
    LogOptions {
        segment_bytes: 1 << 20,
        compress_sealed: compress,
        prefault: false,
        ..Default::default()
    }
}

/// A finished log of ScanStarted + `n` events in frames of 64 records.
fn write_log(dir: &Path, n: u64, compress: bool) {
    let mut a = Appender::create(dir, opts(compress)).unwrap();
    a.append(&started(1)).unwrap();
    for i in 0..n {
        a.append(&event(i)).unwrap();
        if i % 64 == 63 {
            a.commit();
        }
    }
    a.finish().unwrap();
}

fn seg(dir: &Path, n: u64) -> std::path::PathBuf {
    dir.join(format!("seg-{n:010}.log"))
}

fn segments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    v.sort();
    v
}

/// Offsets of the frames of a raw segment, read from its bytes (FORMAT.md):
/// (offset, kind, count).
fn frames(path: &Path) -> Vec<(u64, u16, u32)> {
    let b = std::fs::read(path).unwrap();
    let mut off = u32::from_le_bytes(b[48..52].try_into().unwrap()) as usize;
    let mut out = Vec::new();
    while off + 32 <= b.len() {
        let len = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        let count = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap());
        let kind = u16::from_le_bytes(b[off + 20..off + 22].try_into().unwrap());
        out.push((off as u64, kind, count));
        off += 32 + len;
    }
    out
}

/// Read every event; Ok(count) if the log reads to its end, Err(damage) if not.
fn read(dir: &Path) -> Result<u64> {
    let r = LogReader::open(dir)?;
    let mut n = 0;
    for e in r.iter() {
        e?;
        n += 1;
    }
    Ok(n)
}

fn corrupt_segment(e: StoreError) -> u64 {
    match e {
        StoreError::Corrupt { segment, .. } => segment,
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn finished_log_truncated_at_a_frame_boundary_is_damage() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("log");
    write_log(&dir, 5000, false);
    assert_eq!(read(&dir).unwrap(), 5001);
    let v = verify(&dir).unwrap();
    assert_eq!((v.records, v.end, v.damage), (5001, LogEnd::Closed, None));

    // Cut the file exactly where the middle data frame starts.
    let fr = frames(&seg(&dir, 0));
    assert_eq!(
        fr.last().unwrap().1,
        3,
        "a finished log ends with a close frame"
    );
    let (cut, _, _) = fr[fr.len() / 2];
    let kept: u64 = fr[..fr.len() / 2].iter().map(|f| f.2 as u64).sum();
    std::fs::OpenOptions::new()
        .write(true)
        .open(seg(&dir, 0))
        .unwrap()
        .set_len(cut)
        .unwrap();

    let e = read(&dir).unwrap_err();
    assert_eq!(corrupt_segment(e), 0);
    let v = verify(&dir).unwrap();
    assert_eq!(v.end, LogEnd::Damaged);
    assert_eq!(v.records, kept);
    let d = v.damage.unwrap();
    assert_eq!((d.segment, d.offset), (0, cut));
    assert!(d.what.contains("close frame"), "{}", d.what);
    // A writer refuses to continue it (it would bury the damage).
    assert!(matches!(
        Appender::open_append(&dir, opts(false)),
        Err(StoreError::Corrupt { segment: 0, .. })
    ));
}

#[test]
fn deleting_the_last_segment_is_damage() {
    for compress in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("log");
        write_log(&dir, 60_000, compress);
        let names = segments(&dir);
        assert_eq!(names.len(), 3, "{names:?}");
        let total = read(&dir).unwrap();
        let last_records = {
            let fr = frames(&seg(&dir, 2));
            fr.iter().map(|f| f.2 as u64).sum::<u64>()
        };
        std::fs::remove_file(dir.join(&names[2])).unwrap();

        assert_eq!(corrupt_segment(read(&dir).unwrap_err()), 2);
        let v = verify(&dir).unwrap();
        assert_eq!(v.end, LogEnd::Damaged, "compress {compress}");
        assert_eq!(v.records, total - last_records);
        let d = v.damage.unwrap();
        assert_eq!(d.segment, 2);
        assert!(d.what.contains("missing"), "{}", d.what);
        assert!(matches!(
            Appender::open_append(&dir, opts(compress)),
            Err(StoreError::Corrupt { segment: 2, .. })
        ));
        // The summary (history, exports) does not call it a complete result.
        assert!(summarize(&LogReader::open(&dir).unwrap()).is_err());
    }
}

#[test]
fn a_missing_middle_segment_stops_a_follower_with_damage() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("log");
    write_log(&dir, 60_000, false);
    std::fs::remove_file(seg(&dir, 1)).unwrap();
    let mut f = Follower::open(&dir).unwrap();
    let mut n = 0u64;
    let e = f.poll(&mut |_| n += 1).unwrap_err();
    assert_eq!(corrupt_segment(e), 1);
    assert!(n > 0);
    // verify reads the segments before the gap and names the gap.
    let v = verify(&dir).unwrap();
    assert_eq!(v.records, n);
    assert_eq!(v.damage.unwrap().segment, 1);
}

#[test]
fn a_crash_between_seal_and_rename_is_not_damage() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("log");
    std::fs::create_dir_all(&dir).unwrap();
    // Fail the rename of the roll into segment 1 (after the seal).
    let (acked, appended) = {
        let mut a = Appender::create(&dir, opts(false)).unwrap();
        a.append(&started(1)).unwrap();
        let mut i = 0;
        let mut acked = 0;
        // The roll into segment 1 is the first rename after the log exists.
        let faults = fault::inject_op(&dir, fault::Op::Rename);
        let mut err = None;
        while i < 100_000 {
            if let Err(e) = a.append(&event(i)) {
                err = Some(e);
                break;
            }
            i += 1;
            if i % 256 == 0 {
                a.sync().unwrap();
                acked = i;
            }
        }
        let err = err.expect("the roll failed");
        assert_eq!(
            faults.failed().map(|f| f.1),
            Some(fault::Op::Rename),
            "{err}"
        );
        (acked + 1, i + 1)
    };
    // Sealed segment 0, its successor still named next.spare.
    assert_eq!(segments(&dir), vec!["seg-0000000000.log".to_string()]);
    assert!(dir.join("next.spare").exists());
    let v = verify(&dir).unwrap();
    assert_eq!(v.damage, None);
    assert_eq!(v.end, LogEnd::Interrupted);
    assert!(
        v.records >= acked && v.records <= appended,
        "{} {acked} {appended}",
        v.records
    );
    // A second crash while a writer continues it, before segment 1 is in place,
    // is no damage either: the stamped spare is installed as it is, never
    // replaced by a fresh one (whose preparation fails here).
    {
        let faults = fault::inject_op(&dir, fault::Op::Fallocate);
        drop(Appender::open_append(&dir, opts(false)));
        drop(faults);
    }
    let v = verify(&dir).unwrap();
    assert_eq!(v.damage, None, "{:?}", segments(&dir));
    // A writer continues it in segment 1.
    let (mut a, _) = Appender::open_append(&dir, opts(false)).unwrap();
    a.append(&reply(7)).unwrap();
    a.finish().unwrap();
    let v = verify(&dir).unwrap();
    assert_eq!((v.end, v.damage.is_none()), (LogEnd::Closed, true));
    assert_eq!(segments(&dir).len(), 2);
}

#[test]
fn verify_tells_finished_interrupted_and_damaged_apart() {
    let t = tempfile::tempdir().unwrap();
    // Interrupted: synced, then the writer is gone without finishing.
    let dir = t.path().join("killed");
    {
        let mut a = Appender::create(&dir, opts(false)).unwrap();
        a.append(&started(1)).unwrap();
        for i in 0..1000 {
            a.append(&event(i)).unwrap();
        }
        a.sync().unwrap();
    }
    let v = verify(&dir).unwrap();
    assert_eq!(
        (v.records, v.end, v.damage),
        (1001, LogEnd::Interrupted, None)
    );

    // A bit flip in the middle of a finished log's first segment.
    let dir = t.path().join("flipped");
    write_log(&dir, 60_000, false);
    let fr = frames(&seg(&dir, 0));
    let (off, _, _) = fr[fr.len() / 2];
    let before: u64 = fr[..fr.len() / 2].iter().map(|f| f.2 as u64).sum();
    let mut b = std::fs::read(seg(&dir, 0)).unwrap();
    b[off as usize + 100] ^= 0x40;
    std::fs::write(seg(&dir, 0), &b).unwrap();
    let v = verify(&dir).unwrap();
    assert_eq!(v.end, LogEnd::Damaged);
    assert_eq!(v.records, before);
    let d = v.damage.unwrap();
    assert_eq!((d.segment, d.offset), (0, off));
    assert!(d.what.contains("CRC"), "{}", d.what);
}

#[test]
fn salvage_copies_the_readable_prefix_into_a_new_log_marked_salvaged() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("damaged");
    write_log(&dir, 60_000, true);
    // Damage segment 1 (compressed): flip a byte in the middle of the .zst.
    let z = dir.join("seg-0000000001.zst");
    let mut b = std::fs::read(&z).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&z, &b).unwrap();
    let src = verify(&dir).unwrap();
    let d = src.damage.clone().expect("damaged");
    assert_eq!(d.segment, 1);

    let out = t.path().join("saved");
    let rep = salvage(&dir, &out).unwrap();
    assert_eq!(rep.kept, src.records);
    assert_eq!(rep.damage, Some(d));
    assert_eq!(rep.lost_segments, 1);
    assert!(rep.lost_bytes > 0);
    // The source is untouched; the copy is a valid log, marked salvaged, holding
    // exactly the readable records in order.
    assert_eq!(verify(&dir).unwrap(), src);
    let v = verify(&out).unwrap();
    assert_eq!(
        (v.records, v.damage.is_none(), v.salvaged),
        (rep.kept, true, true)
    );
    let (a, b) = (
        LogReader::open(&dir).unwrap(),
        LogReader::open(&out).unwrap(),
    );
    let mut n = 0;
    for (x, y) in a.iter().zip(b.iter()) {
        let (Ok(x), Ok(y)) = (x, y) else { break };
        assert_eq!(x.to_event(), y.to_event());
        n += 1;
    }
    assert_eq!(n, rep.kept);
    // It resumes like any interrupted log and stays marked.
    let (mut w, _) = Appender::open_append(&out, opts(true)).unwrap();
    w.append(&Event::Finished(Finished {
        time_us: 1,
        counters: Counters::default(),
    }))
    .unwrap();
    w.finish().unwrap();
    let v = verify(&out).unwrap();
    assert_eq!(
        (v.records, v.salvaged, v.end),
        (rep.kept + 1, true, LogEnd::Closed)
    );
    // Salvaging into a directory that holds a log, or into itself, is refused.
    assert!(salvage(&dir, &out).is_err());
    assert!(salvage(&dir, &dir).is_err());
}
