//! Damaged logs and homes through the real binary (issue 20, items 1-5): a
//! damaged log is never resumed, `prtip log verify` / `salvage` and their exit
//! statuses, exports of a log cut short fail, `history rebuild` sets a garbage
//! index aside, and a copied home resumes its own logs. No packets: the resumed
//! scan has nothing left to probe (its last checkpoint is at the end of its walk).

mod common;

use prtip_store::event::*;
use prtip_store::{LogOptions, LogWriter};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;

fn spec() -> ScanSpec {
    ScanSpec {
        targets: vec!["127.0.0.1".into()],
        ports: "T:1".into(),
        scan_type: ScanType::Connect,
        backend: BackendKind::Connect,
        rate_mpps: 1_000_000,
        seed: 7,
        ..ScanSpec::default()
    }
}

fn reply(i: u64) -> Event {
    Event::Reply(Reply {
        addr: Ipv4Addr::from(0xC613_0000u32 + (i as u32 % 200)).into(),
        port: (i % 60_000) as u16 + 1,
        proto: Protocol::Tcp,
        state: if i.is_multiple_of(7) {
            PortState::Open
        } else {
            PortState::Closed
        },
        reason: Reason::SynAck,
        ttl: 64,
        icmp_code: 0,
        rtt_us: 100,
        time_us: i,
    })
}

/// Write scan `id` under `home/scans/<id>`: `n` replies, a checkpoint at the end
/// of its one-probe walk, then `ending` (Paused, Finished, or nothing).
fn write_scan(home: &Path, id: u64, n: u64, ending: Option<Event>) -> PathBuf {
    let dir = home.join("scans").join(id.to_string());
    let w = LogWriter::create(&dir, LogOptions::default()).unwrap();
    let mut s = w.sink();
    s.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id: id,
        time_us: now_us(),
        spec: spec(),
        versions: Versions {
            prtip: "test".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec!["prtip".into(), "scan".into()],
        total_probes: 1,
        total_targets: 1,
        pid: 1,
    })))
    .unwrap();
    for i in 0..n {
        s.push(reply(i)).unwrap();
    }
    s.checkpoint(Checkpoint {
        next_index: 1,
        counters: Counters {
            sent: 1,
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
    dir
}

fn paused() -> Option<Event> {
    Some(Event::Paused(Paused {
        next_index: 1,
        time_us: now_us(),
        reason: "SIGINT".into(),
    }))
}

fn prtip(home: &Path, args: &[&str]) -> Output {
    common::prtip()
        .args(args)
        .env("PRTIP_HOME", home)
        .env_remove("PRTIP_HISTORY")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn seg0(dir: &Path) -> PathBuf {
    dir.join("seg-0000000000.log")
}

/// Offsets of the data frames of a raw segment (FORMAT.md) and their record counts.
fn frames(path: &Path) -> Vec<(u64, u32, u16)> {
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
        out.push((off as u64, count, kind));
        off += 32 + len;
    }
    out
}

/// Flip one byte in the payload of the middle frame; returns that frame's offset.
fn flip_middle(dir: &Path) -> u64 {
    let fr = frames(&seg0(dir));
    let (off, _, _) = fr[fr.len() / 2];
    let mut b = std::fs::read(seg0(dir)).unwrap();
    b[off as usize + 200] ^= 0x20;
    std::fs::write(seg0(dir), &b).unwrap();
    off
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn resuming_a_damaged_log_refuses_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let dir = write_scan(home, 1, 20_000, paused());
    let off = flip_middle(&dir);
    assert!(prtip(home, &["history", "rebuild"]).status.success());
    let before = snapshot(&dir);
    for args in [
        &["replay", dir.to_str().unwrap(), "--from-checkpoint"][..],
        &["replay", "1", "--from-checkpoint"][..],
        &["history", "resume", "1"][..],
    ] {
        let o = prtip(home, args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {out}{err}");
        assert!(
            err.contains(&format!("damaged in segment 0 at offset {off}")),
            "{args:?}: {err}"
        );
        assert!(err.contains("prtip log salvage"), "{err}");
        assert!(!err.contains("resuming scan"), "{err}");
        assert_eq!(snapshot(&dir), before, "{args:?} changed the log");
    }
}

#[test]
fn log_verify_and_salvage_exit_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let dir = write_scan(
        home,
        1,
        20_000,
        Some(Event::Finished(Finished {
            time_us: now_us(),
            counters: Counters::default(),
        })),
    );
    let d = dir.to_str().unwrap();
    let o = prtip(home, &["log", "verify", d]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("20003 record(s) check out"), "{out}");
    assert!(out.contains("end: finished by its writer"), "{out}");

    let off = flip_middle(&dir);
    let o = prtip(home, &["log", "verify", d]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains(&format!("damage: segment 0 at offset {off}")),
        "{out}"
    );
    assert!(out.contains("end: DAMAGED"), "{out}");

    let new = home.join("saved");
    let o = prtip(home, &["log", "salvage", d, "-o", new.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}{err}");
    assert!(out.contains("marked as salvaged"), "{out}");
    assert!(
        out.contains(&format!("lost: everything from segment 0 offset {off}")),
        "{out}"
    );
    let o = prtip(home, &["log", "verify", new.to_str().unwrap()]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("salvaged: written by prtip log salvage"),
        "{out}"
    );

    // Bad usage: exit 2, nothing written.
    let o = prtip(home, &["log", "salvage", d, "-o", new.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("-o"), "{}", text(&o).1);
    let o = prtip(
        home,
        &["log", "verify", home.join("nope").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!home.join("nope").exists());
}

#[test]
fn exporting_a_finished_log_cut_at_a_frame_boundary_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let dir = write_scan(
        home,
        1,
        20_000,
        Some(Event::Finished(Finished {
            time_us: now_us(),
            counters: Counters::default(),
        })),
    );
    let fr = frames(&seg0(&dir));
    let cut = fr[fr.len() / 2].0;
    std::fs::OpenOptions::new()
        .write(true)
        .open(seg0(&dir))
        .unwrap()
        .set_len(cut)
        .unwrap();
    let out = home.join("out.csv");
    let o = prtip(
        home,
        &[
            "export",
            dir.to_str().unwrap(),
            "-f",
            "csv",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("segment 0 at offset {cut}")), "{err}");
    assert!(!out.exists(), "a partial export was left");
}

#[test]
fn history_rebuild_sets_a_garbage_index_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    write_scan(home, 1, 10, paused());
    write_scan(home, 2, 10, paused());
    assert!(prtip(home, &["history", "rebuild"]).status.success());
    let ix = home.join("history.redb");
    for damage in ["garbage", "truncated"] {
        let b = std::fs::read(&ix).unwrap();
        match damage {
            "garbage" => std::fs::write(&ix, vec![0x5a; b.len()]).unwrap(),
            _ => std::fs::write(&ix, &b[..b.len() / 3]).unwrap(),
        }
        let o = prtip(home, &["history", "rebuild"]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{damage}: {out}{err}");
        assert!(out.contains("set aside as"), "{damage}: {out}");
        assert!(out.contains("indexed 2 scan log(s)"), "{damage}: {out}");
        let o = prtip(home, &["history", "show", "2"]);
        assert!(o.status.success(), "{damage}: {}", text(&o).1);
        let aside = std::fs::read_dir(home)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("history.redb.damaged-")
            })
            .count();
        assert!(aside >= 1, "{damage}: the damaged index was not kept");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

#[test]
fn a_copied_home_resumes_its_own_log() {
    let tmp = tempfile::tempdir().unwrap();
    let h1 = tmp.path().join("h1");
    let h2 = tmp.path().join("h2");
    let d1 = write_scan(&h1, 1, 5, paused());
    assert!(prtip(&h1, &["history", "rebuild"]).status.success());
    copy_tree(&h1, &h2);
    let before = snapshot(&d1);
    let o = common::prtip()
        .args([
            "--home",
            h2.to_str().unwrap(),
            "replay",
            "1",
            "--from-checkpoint",
            "--quiet",
        ])
        .env_remove("PRTIP_HOME")
        .env_remove("PRTIP_HISTORY")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(snapshot(&d1), before, "the original home's log was written");
    let d2 = h2.join("scans/1");
    let r = prtip_store::LogReader::open(&d2).unwrap();
    let s = prtip_store::summarize(&r).unwrap();
    assert_eq!(s.status, prtip_store::ScanStatus::Completed, "{err}");
    // The index of the copy names the copy's log.
    let ix = prtip_store::HistoryIndex::open(&h2.join("history.redb")).unwrap();
    assert_eq!(
        ix.get(1).unwrap().unwrap().log_path,
        std::fs::canonicalize(&d2).unwrap()
    );
}
