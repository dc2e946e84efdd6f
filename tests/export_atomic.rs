//! Exports appear atomically: an interrupted export (Ctrl-C sets the cancel flag)
//! leaves no file and no temporary behind and keeps an older export intact; one
//! pass fills several outputs (`-oA`); the row filter applies to every format.

mod export_support;

use export_support::meta;
use prtip_export::{export_rows, synthetic, ExportError, ExportOptions, Format, Target};
use prtip_store::PortState;
use std::sync::atomic::{AtomicBool, Ordering};

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn cancel_mid_export_leaves_nothing_behind() {
    for format in prtip_export::Format::ALL {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.out");
        std::fs::write(&old, b"previous export").unwrap();
        let cancel = AtomicBool::new(false);
        let mut seen = 0;
        let mut on_progress = |n: u64| {
            seen = n;
            // Ctrl-C arrives after the first progress report (16 384 rows).
            cancel.store(true, Ordering::Relaxed);
        };
        let targets = [
            Target::new(format, dir.path().join("new.out").to_str().unwrap()),
            Target::new(format, old.to_str().unwrap()),
        ];
        let err = export_rows(
            &meta(1),
            synthetic::lab_rows(20_000).map(Ok),
            &targets,
            &mut ExportOptions {
                progress: Some(&mut on_progress),
                cancel: Some(&cancel),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, ExportError::Interrupted), "{format}: {err}");
        assert_eq!(seen, 16_384, "{format}: stopped at the first check");
        assert_eq!(names(dir.path()), vec!["old.out"], "{format}");
        assert_eq!(std::fs::read(&old).unwrap(), b"previous export");
    }
}

#[test]
fn one_pass_fills_all_nmap_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("scan");
    let targets = Target::all_nmap(base.to_str().unwrap());
    let stats = export_rows(
        &meta(1),
        synthetic::lab_rows(100).map(Ok),
        &targets,
        &mut ExportOptions::default(),
    )
    .unwrap();
    assert_eq!(
        names(dir.path()),
        vec!["scan.gnmap", "scan.nmap", "scan.xml"]
    );
    for s in &stats {
        assert_eq!((s.rows, s.hosts), (100, 10));
        assert_eq!(s.bytes, std::fs::metadata(&s.path).unwrap().len());
    }
    let ev = stats[1].event();
    match ev {
        prtip_store::Event::ExportComplete(e) => {
            assert_eq!((e.format.as_str(), e.rows), ("xml", 100));
            assert_eq!(e.path, format!("{}.xml", base.display()));
        }
        other => panic!("not ExportComplete: {other:?}"),
    }
}

#[test]
fn filter_applies_to_every_format() {
    let open_only = |r: &prtip_store::ResultRow| r.state == PortState::Open && r.port == 22;
    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<Target> = Format::ALL
        .iter()
        .map(|&f| {
            Target::new(
                f,
                dir.path()
                    .join(format!("f.{}", f.extension()))
                    .to_str()
                    .unwrap(),
            )
        })
        .collect();
    let stats = export_rows(
        &meta(1),
        synthetic::lab_rows(50).map(Ok),
        &targets,
        &mut ExportOptions {
            filter: Some(&open_only),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(stats.iter().all(|s| s.rows == 5 && s.hosts == 5));
    let csv = std::fs::read_to_string(dir.path().join("f.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6);
    assert!(csv.lines().skip(1).all(|l| l.contains(",22,tcp,open,ssh,")));
    let json = std::fs::read_to_string(dir.path().join("f.jsonl")).unwrap();
    assert_eq!(json.lines().count(), 5);
    let text = std::fs::read_to_string(dir.path().join("f.nmap")).unwrap();
    assert_eq!(text.matches("22/tcp open").count(), 5);
    assert!(!text.contains("80/tcp"));
}

#[test]
fn unsorted_rows_are_refused() {
    let mut rows: Vec<_> = synthetic::lab_rows(20).collect();
    rows.swap(3, 15);
    let mut out = Vec::new();
    let err = prtip_export::render(
        Format::Csv,
        &meta(1),
        rows.into_iter().map(Ok),
        &mut out,
        &mut ExportOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "result rows out of order: 198.19.0.1 80/tcp came after 198.19.0.2 110/tcp (rows must be sorted by address, protocol, port)"
    );
}
