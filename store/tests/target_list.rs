//! Stored target lists (`-iL`): a hitlist of 400 000 IPv6 addresses is written
//! once beside the log and named by hash in a small `ScanStarted` record; every
//! reader maps it; a damaged or missing list file is damage `verify` reports and
//! readers refuse; a spec that embeds its targets (older logs) still builds the
//! same target set.

mod common;

use common::*;
use prtip_store::event::*;
use prtip_store::space::list::{Fam, ListBuilder, ListHash};
use prtip_store::{LogOptions, LogReader, LogWriter};
use std::net::{IpAddr, Ipv6Addr};

fn no_dns(name: &str) -> Result<IpAddr, String> {
    Err(format!("no resolver in this test ({name})"))
}

/// `n` distinct pseudo-random addresses in 2001:db8:100::/96, as -iL lines.
fn hitlist(n: usize) -> String {
    let base = u128::from("2001:db8:100::".parse::<Ipv6Addr>().unwrap());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = std::collections::HashSet::new();
    let mut s = String::new();
    while seen.len() < n {
        let a = base + (rng.next() as u32) as u128;
        if seen.insert(a) {
            s.push_str(&Ipv6Addr::from(a).to_string());
            s.push('\n');
        }
    }
    s
}

fn write_log(dir: &std::path::Path, targets: Vec<String>) {
    let mut ev = started(1);
    if let Event::ScanStarted(s) = &mut ev {
        s.spec.targets = targets;
        s.spec.excludes.clear();
        s.spec.resolved.clear();
    }
    let w = LogWriter::create(dir, LogOptions::default()).unwrap();
    let mut sink = w.sink();
    sink.push(ev).unwrap();
    for i in 0..100 {
        sink.push(event(i)).unwrap();
    }
    drop(sink);
    w.finish().unwrap();
}

#[test]
fn a_400k_address_hitlist_is_stored_once_and_mapped_by_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let text = hitlist(400_000);
    let mut b = ListBuilder::new();
    b.add_lines(text.as_bytes(), "hitlist.txt", &mut no_dns)
        .unwrap();
    let list = b.finish([&[], &[]], tmp.path()).unwrap();
    let token = list.reference().token();
    let d = tmp.path().join("scan");
    write_log(&d, vec![token.clone()]);

    // The list file: named by the BLAKE3 hash of its bytes, 40 bytes a range.
    let files: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("targets-"))
        .collect();
    assert_eq!(files, [list.hash().file_name()]);
    let bytes = std::fs::read(d.join(&files[0])).unwrap();
    assert_eq!(bytes.len(), 64 + 40 * list.range_count(Fam::V6));
    let hex = files[0]
        .strip_prefix("targets-")
        .and_then(|n| n.strip_suffix(".bin"))
        .unwrap();
    assert_eq!(
        ListHash::from_hex(hex).unwrap().0,
        *blake3::hash(&bytes).as_bytes()
    );

    // The ScanStarted record stays small: the segment holding it (header, index,
    // 101 records) is under 64 KiB, where the embedded tokens would be ~11 MB.
    let seg = std::fs::metadata(d.join("seg-0000000000.log"))
        .unwrap()
        .len();
    assert!(seg < 64 << 10, "first segment is {seg} bytes");
    let r = LogReader::open(&d).unwrap();
    let spec = r.scan_started().unwrap().spec;
    assert_eq!(spec.targets, [token]);

    // Readers read the targets in place from the mapped file.
    let set = prtip_store::space::target_set(&spec).unwrap();
    assert!(set.v6.is_mapped());
    assert_eq!((set.v4.len(), set.v6.len()), (0, 400_000));
    let mut want: Vec<Ipv6Addr> = text.lines().map(|l| l.parse().unwrap()).collect();
    want.sort();
    for i in [0usize, 1, 4_242, 399_999] {
        assert_eq!(set.get(i as u64), Some(IpAddr::V6(want[i])));
        assert_eq!(set.index_of(IpAddr::V6(want[i])), Some(i as u64));
    }
    assert_eq!(set.get(400_000), None);

    // The same targets embedded as tokens (how older logs store them) build an
    // equal set, held in memory.
    let embedded = ScanSpec {
        targets: text.lines().map(str::to_string).collect(),
        ..ScanSpec::default()
    };
    let owned = prtip_store::space::target_set(&embedded).unwrap();
    assert!(!owned.v6.is_mapped());
    assert_eq!(owned, set);

    // verify: intact.
    let v = prtip_store::verify(&d).unwrap();
    assert!(v.is_intact(), "{v:?}");
}

#[test]
fn a_damaged_or_missing_list_file_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = ListBuilder::new();
    // A list no other test builds (the loaded-list table is per process).
    for t in ["198.19.3.3", "198.19.4.0/30", "2001:db8:100::abcd"] {
        b.add_token(t, &mut no_dns).unwrap();
    }
    let list = b.finish([&[], &[]], tmp.path()).unwrap();
    let token = list.reference().token();
    assert_eq!((list.reference().v4, list.reference().v6), (5, 1));
    let d = tmp.path().join("scan");
    write_log(&d, vec![token]);
    let path = d.join(list.hash().file_name());

    // Flip one byte of a copy of the log's list: the copy's bytes no longer hash
    // to its name; verify says so and readers refuse it.
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    for e in std::fs::read_dir(&d).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), bad.join(e.file_name())).unwrap();
    }
    let bad_list = bad.join(list.hash().file_name());
    let mut bytes = std::fs::read(&bad_list).unwrap();
    bytes[70] ^= 0x10;
    std::fs::write(&bad_list, &bytes).unwrap();
    let v = prtip_store::verify(&bad).unwrap();
    assert!(!v.is_intact());
    assert_eq!(v.end, prtip_store::LogEnd::Damaged);
    assert_eq!(v.records, 101, "the records themselves check out");
    let dmg = v.target_list.clone().unwrap();
    assert_eq!(dmg.path, bad_list);
    assert!(dmg.what.contains("the file is damaged"), "{}", dmg.what);
    let e = LogReader::open(&bad).err().unwrap().to_string();
    assert!(e.contains("target list") && e.contains("damaged"), "{e}");

    // A missing list: the log's own reference names it.
    std::fs::remove_file(&path).unwrap();
    let v = prtip_store::verify(&d).unwrap();
    assert_eq!(v.end, prtip_store::LogEnd::Damaged);
    let dmg = v.target_list.unwrap();
    assert_eq!(dmg.path, path);
    assert!(dmg.what.contains("missing"), "{}", dmg.what);
}
