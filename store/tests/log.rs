//! The scan log with real files: round trips, order, torn tails, bit flips,
//! compressed segments, following a live writer.

mod common;
use common::*;
use prtip_store::event::*;
use prtip_store::*;
use std::path::Path;

fn small(segment_bytes: u64, compress: bool) -> LogOptions {
    LogOptions {
        segment_bytes,
        compress_sealed: compress,
        ..Default::default()
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Check that `dir` holds ScanStarted followed by `event(0..n)` (checkpoints ignored).
fn read_all(dir: &Path) -> (u64, Vec<Checkpoint>) {
    let r = LogReader::open(dir).unwrap();
    let mut i = 0;
    let mut cps = Vec::new();
    for (k, e) in r.entries().enumerate() {
        let e = e.unwrap();
        assert_eq!(e.seq, k as u64);
        match e.event.to_event() {
            Event::ScanStarted(_) => assert_eq!(k, 0),
            Event::Checkpoint(c) => cps.push(c),
            ev => {
                assert_eq!(ev, event(i), "event {i} (seq {k})");
                i += 1;
            }
        }
    }
    (i, cps)
}

#[test]
fn early_write_back_changes_nothing_that_is_read() {
    // `writeback_bytes` starts writing committed ranges on a thread of its own,
    // across segment rollovers; what is read back is exactly what was written.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("scan");
    let opts = LogOptions {
        writeback_bytes: 64 << 10,
        ..small(2 << 20, false)
    };
    let w = LogWriter::create(&d, opts).unwrap();
    let mut s = w.sink();
    s.push(started(7)).unwrap();
    let n = 200_000u64;
    for i in 0..n {
        s.push(event(i)).unwrap();
        if i % 20_000 == 19_999 {
            s.checkpoint(checkpoint(i + 1)).unwrap();
        }
    }
    drop(s);
    w.finish().unwrap();
    let (count, cps) = read_all(&d);
    assert_eq!(count, n);
    assert_eq!(cps.len(), 10);
    assert!(files(&d).iter().filter(|n| n.ends_with(".log")).count() > 3);
}

#[test]
fn round_trip_of_one_million_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("scan");
    let w = LogWriter::create(&d, small(8 << 20, true)).unwrap();
    let mut s = w.sink();
    s.push(started(7)).unwrap();
    let n = 1_000_000u64;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.push(event(i));
        if batch.len() == 1000 {
            s.push_batch(std::mem::take(&mut batch)).unwrap();
        }
        if i % 100_000 == 99_999 {
            s.push_batch(std::mem::take(&mut batch)).unwrap();
            s.checkpoint(checkpoint(i + 1)).unwrap();
        }
    }
    drop(s);
    w.finish().unwrap();
    let names = files(&d);
    let zst = names.iter().filter(|n| n.ends_with(".zst")).count();
    let raw = names.iter().filter(|n| n.ends_with(".log")).count();
    assert!(zst >= 4, "sealed segments are compressed: {names:?}");
    assert_eq!(raw, 1, "only the last segment stays raw: {names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".tmp") || n == "next.spare"),
        "{names:?}"
    );

    // iter(): all events, in order, equal to what was written.
    let (count, cps) = read_all(&d);
    assert_eq!(count, n);
    assert_eq!(cps.len(), 10);
    assert_eq!(cps.last().unwrap().next_index, n);

    // visit(): the same stream, one segment decompressed at a time.
    let r = LogReader::open(&d).unwrap();
    let mut seen = 0u64;
    r.visit(|e: Entry<'_>| -> Result<()> {
        assert_eq!(e.seq, seen);
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, n + 11);
    assert_eq!(r.scan_started().unwrap().scan_id, 7);
    assert_eq!(r.last_checkpoint().unwrap().unwrap().1.next_index, n);
    assert!(r.tail().torn.is_none() && r.tail().corrupt.is_none());
}

#[test]
fn order_is_kept_across_pauses_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("scan");
    let mut next = 0u64;
    for round in 0..5 {
        let w = if round == 0 {
            LogWriter::create(&d, small(1 << 20, round % 2 == 0)).unwrap()
        } else {
            let (w, rep) = LogWriter::open_append(&d, small(1 << 20, round % 2 == 0)).unwrap();
            assert!(rep.clean && rep.truncated.is_none(), "{rep:?}");
            w
        };
        let mut s = w.sink();
        if round == 0 {
            s.push(started(1)).unwrap();
        }
        for _ in 0..20_000 {
            s.push(event(next)).unwrap();
            next += 1;
        }
        s.checkpoint(checkpoint(next)).unwrap();
        drop(s);
        w.finish().unwrap();
        let (count, cps) = read_all(&d);
        assert_eq!(count, next);
        assert_eq!(cps.len(), round + 1);
    }
    let r = LogReader::open(&d).unwrap();
    assert!(r.segments() >= 4, "{}", r.segments());
    assert_eq!(r.last_checkpoint().unwrap().unwrap().1.next_index, next);
}

/// Build a log whose last segment has `acked` events made durable and more
/// events committed after them but never synced; drop the appender as a crash would.
fn crashed_log(d: &Path, acked: u64, extra: u64) -> u64 {
    let mut a = Appender::create(d, small(4 << 20, false)).unwrap();
    a.append(&started(1)).unwrap();
    for i in 0..acked {
        a.append(&event(i)).unwrap();
    }
    a.sync().unwrap();
    let synced_end = a.position().offset;
    for i in acked..acked + extra {
        a.append(&event(i)).unwrap();
    }
    a.commit();
    drop(a); // no finish: like a process that died here
    synced_end
}

#[test]
fn torn_tail_is_cut_at_many_points_and_nothing_durable_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let (acked, extra) = (3000u64, 3000u64);
    let synced_end = crashed_log(&base, acked, extra);
    let seg = "seg-0000000000.log";
    let orig = std::fs::read(base.join(seg)).unwrap();
    let written_end = orig.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
    assert!(written_end > synced_end + 1000);
    let mut rng = Rng(0x5eed);
    let mut cuts: Vec<u64> = (0..40)
        .map(|_| synced_end + rng.below(written_end - synced_end))
        .collect();
    cuts.extend([synced_end, written_end, synced_end + 1, written_end - 1]);
    cuts.sort();
    let mut prev_kept = 0;
    for (k, &cut) in cuts.iter().enumerate() {
        for garbage in [false, true] {
            let d = dir.path().join(format!("cut{k}-{garbage}"));
            copy_dir(&base, &d);
            // What a crash can leave: everything after the cut unwritten (zeros)
            // or garbage (a torn page).
            let mut bytes = orig.clone();
            for (j, b) in bytes[cut as usize..written_end as usize + 64]
                .iter_mut()
                .enumerate()
            {
                *b = if garbage {
                    (j as u8).wrapping_mul(31).wrapping_add(7)
                } else {
                    0
                };
            }
            std::fs::write(d.join(seg), &bytes).unwrap();
            // A reader sees a torn tail, not corruption.
            let r = LogReader::open(&d).unwrap();
            let t = r.tail();
            assert!(t.corrupt.is_none(), "cut {cut}: {t:?}");
            drop(r);
            let (w, rep) = LogWriter::open_append(&d, small(4 << 20, false)).unwrap();
            let kept = rep.next_seq - 1; // minus ScanStarted
            assert!(
                kept >= acked,
                "cut {cut}: acknowledged events lost: kept {kept} of {acked}"
            );
            assert!(kept <= acked + extra);
            if !garbage {
                assert!(kept >= prev_kept, "a later cut keeps at least as much");
                prev_kept = kept;
            }
            if let Some(t) = &rep.truncated {
                assert_eq!(rep.end.offset, t.offset);
            }
            // Append after the cut; the log reads back as prefix + new events.
            let mut s = w.sink();
            for i in kept..kept + 100 {
                s.push(event(i)).unwrap();
            }
            drop(s);
            w.finish().unwrap();
            let (count, _) = read_all(&d);
            assert_eq!(count, kept + 100, "cut {cut} garbage {garbage}");
            std::fs::remove_dir_all(&d).unwrap();
        }
    }
}

#[test]
fn every_flipped_byte_is_detected_with_segment_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let w = LogWriter::create(&base, small(1 << 20, false)).unwrap();
    let mut s = w.sink();
    s.push(started(1)).unwrap();
    for i in 0..50_000 {
        s.push(event(i)).unwrap();
    }
    s.checkpoint(checkpoint(50_000)).unwrap();
    drop(s);
    w.finish().unwrap();
    let segs: Vec<String> = files(&base)
        .into_iter()
        .filter(|n| n.starts_with("seg-"))
        .collect();
    assert!(segs.len() >= 3, "{segs:?}");
    let mut rng = Rng(99);
    let mut detected = 0;
    for trial in 0..300 {
        let si = rng.below(segs.len() as u64) as usize;
        let name = &segs[si];
        let mut bytes = std::fs::read(base.join(name)).unwrap();
        let data_start = 4096 * 2; // 1 MiB segments: header + 16 index entries fit in 2 pages
        let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
        // Flip in the header, in the data, or (rarely) in the index area.
        let pos = match trial % 10 {
            0 => rng.below(64) as usize,
            1 => 64 + rng.below(16 * 32) as usize,
            _ => data_start + rng.below((end - data_start) as u64) as usize,
        };
        bytes[pos] ^= 1 << rng.below(8);
        let d = dir.path().join(format!("flip{trial}"));
        copy_dir(&base, &d);
        std::fs::write(d.join(name), &bytes).unwrap();
        let outcome = LogReader::open(&d).and_then(|r| {
            let mut i = 0;
            for e in r.iter() {
                match e?.to_event() {
                    Event::ScanStarted(_) | Event::Checkpoint(_) => {}
                    ev => {
                        assert_eq!(ev, event(i), "flip at {name}:{pos} was read as data");
                        i += 1;
                    }
                }
            }
            assert_eq!(i, 50_000);
            Ok(())
        });
        match outcome {
            Err(StoreError::Corrupt {
                segment, offset, ..
            }) => {
                assert_eq!(segment, si as u64, "flip at {name}:{pos}");
                assert!(
                    offset <= pos as u64,
                    "flip at {name}:{pos} reported at {offset}"
                );
                detected += 1;
                // The writer refuses to append to damaged durable data, and leaves it as is.
                match LogWriter::open_append(&d, small(1 << 20, false)) {
                    Err(StoreError::Corrupt { segment: s2, .. }) => assert_eq!(s2, si as u64),
                    Err(other) => panic!("flip at {name}:{pos}: {other}"),
                    Ok((_w, rep)) => {
                        // Recovery checks only the end of the log; the damage is earlier.
                        let v = rep.verified_from;
                        assert!(
                            (si as u64) < v.segment || (pos as u64) < v.offset,
                            "flip at {name}:{pos} in the checked tail accepted: {rep:?}"
                        );
                    }
                }
            }
            Err(other) => panic!("flip at {name}:{pos}: unexpected error {other}"),
            Ok(()) => assert!(
                (64..64 + 16 * 32).contains(&pos),
                "flip at {name}:{pos} not detected"
            ),
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
    assert!(detected > 250);
}

#[test]
fn compressed_segments_read_back_and_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("scan");
    let w = LogWriter::create(
        &d,
        LogOptions {
            segment_bytes: 1 << 20,
            zstd_level: 9,
            ..Default::default()
        },
    )
    .unwrap();
    let mut s = w.sink();
    s.push(started(3)).unwrap();
    for i in 0..60_000 {
        s.push(event(i)).unwrap();
    }
    drop(s);
    w.finish().unwrap();
    let names = files(&d);
    let zst: Vec<&String> = names.iter().filter(|n| n.ends_with(".zst")).collect();
    assert!(zst.len() >= 2, "{names:?}");
    for z in &zst {
        let len = std::fs::metadata(d.join(z)).unwrap().len();
        assert!(len < 600_000, "{z} is {len} bytes: not compressed");
    }
    assert_eq!(read_all(&d).0, 60_000);
    // The first segment is compressed: scan_started reads only its start.
    assert!(d.join("seg-0000000000.zst").exists());
    assert_eq!(
        LogReader::open(&d).unwrap().scan_started().unwrap().scan_id,
        3
    );
    // A damaged compressed segment is reported with its number.
    let victim = d.join(zst[1]);
    let mut b = std::fs::read(&victim).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    std::fs::write(&victim, b).unwrap();
    let r = LogReader::open(&d).unwrap();
    let err = r.iter().find_map(|e| e.err()).expect("damage detected");
    match err {
        StoreError::Corrupt { segment, .. } => assert_eq!(segment, 1),
        other => panic!("{other}"),
    }
}

#[test]
fn a_follower_tails_a_live_writer_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("scan");
    let w = LogWriter::create(&d, small(1 << 20, true)).unwrap();
    let mut f = Follower::open(&d).unwrap();
    let n = 100_000u64;
    let producer = {
        let mut s = w.sink();
        std::thread::spawn(move || {
            s.push(started(5)).unwrap();
            for i in 0..n {
                s.push(event(i)).unwrap();
                if i % 5000 == 0 {
                    s.sync().unwrap();
                    std::thread::yield_now();
                }
            }
            s.checkpoint(checkpoint(n)).unwrap();
        })
    };
    let mut got = Vec::new();
    let mut polls = 0;
    while got.len() < n as usize + 2 {
        f.poll(&mut |e| got.push(e.to_event())).unwrap();
        polls += 1;
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(polls < 200_000, "follower stuck at {}", got.len());
    }
    producer.join().unwrap();
    assert!(f.writer_alive());
    w.finish().unwrap();
    assert_eq!(f.poll(&mut |_| panic!("nothing new")).unwrap(), 0);
    assert!(!f.writer_alive());
    assert!(matches!(got[0], Event::ScanStarted(_)));
    for i in 0..n as usize {
        assert_eq!(got[i + 1], event(i as u64));
    }
    assert!(matches!(got[n as usize + 1], Event::Checkpoint(_)));
    assert!(polls > 1);
}

#[test]
fn an_event_larger_than_a_segment_gets_a_larger_segment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("scan");
    let mut big = started(1);
    if let Event::ScanStarted(s) = &mut big {
        s.spec.targets = (0..200_000)
            .map(|i| format!("10.{}.{}.0/24", i / 256 % 256, i % 256))
            .collect();
    }
    let w = LogWriter::create(&d, small(1 << 20, false)).unwrap();
    let mut s = w.sink();
    s.push(big.clone()).unwrap();
    for i in 0..1000 {
        s.push(event(i)).unwrap();
    }
    drop(s);
    w.finish().unwrap();
    let r = LogReader::open(&d).unwrap();
    let back = r.scan_started().unwrap();
    assert_eq!(Event::ScanStarted(Box::new(back)), big);
    assert_eq!(read_all(&d).0, 1000);
    // The first segment was sealed empty; the second is as large as the event needs.
    assert!(r.segments() >= 2);
    assert!(
        std::fs::metadata(d.join("seg-0000000001.log"))
            .unwrap()
            .len()
            > 1 << 20
    );
}
