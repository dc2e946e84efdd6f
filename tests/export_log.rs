//! Exports from real scan logs (written with the store's LogWriter): the store's
//! fold and sort feed the renderers; duplicates fold to the latest state; a killed
//! scan still exports; the scan's requested outputs are written in one pass.

mod export_support;

use export_support::run;
use prtip_export::synthetic::{self, row};
use prtip_export::{export_log, write_outputs, ExportOptions, Format};
use prtip_store::event::OutputSpec;
use prtip_store::{PortState, ResultRow};
use std::process::Command;

fn write(dir: &std::path::Path, rows: Vec<ResultRow>, finished: bool) {
    synthetic::write_log(dir, 9, &synthetic::lab_spec(), rows.into_iter(), finished).unwrap();
}

#[test]
fn csv_from_a_log_is_folded_and_sorted() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    // Replies arrive out of order; 198.19.0.2:80 is first filtered, then open.
    let mut late_open = row(
        [198, 19, 0, 2],
        80,
        PortState::Open,
        Some(("http", "nginx", "1.24.0")),
        Some(b"HTTP/1.1 200 OK\r\n"),
    );
    late_open.time_us += 1_000_000;
    write(
        &log,
        vec![
            row(
                [198, 19, 0, 9],
                22,
                PortState::Open,
                Some(("ssh", "OpenSSH", "9.2p1")),
                None,
            ),
            row([198, 19, 0, 2], 80, PortState::Filtered, None, None),
            row([198, 19, 0, 2], 22, PortState::Closed, None, None),
            late_open,
        ],
        true,
    );
    let out = tmp.path().join("scan.csv");
    let stats = export_log(
        &log,
        Format::Csv,
        out.to_str().unwrap(),
        &mut ExportOptions::default(),
    )
    .unwrap();
    assert_eq!((stats.rows, stats.hosts), (3, 2));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "IP,Port,Protocol,State,Service,Version,Banner\r\n\
         198.19.0.2,22,tcp,closed,,,\r\n\
         198.19.0.2,80,tcp,open,http,nginx 1.24.0,HTTP/1.1 200 OK\\x0d\\x0a\r\n\
         198.19.0.9,22,tcp,open,ssh,OpenSSH 9.2p1,\r\n"
    );
}

#[test]
fn ndiff_compares_two_scan_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let base: Vec<ResultRow> = synthetic::lab_rows(50).collect();
    let mut changed = base.clone();
    // One port differs: 198.19.0.3:23 is open in the second scan.
    let i = changed
        .iter()
        .position(|r| r.addr.to_string() == "198.19.0.3" && r.port == 23)
        .unwrap();
    changed[i] = row(
        [198, 19, 0, 3],
        23,
        PortState::Open,
        Some(("telnet", "", "")),
        None,
    );
    write(&tmp.path().join("a"), base, true);
    write(&tmp.path().join("b"), changed, true);
    for n in ["a", "b"] {
        let out = tmp.path().join(format!("{n}.xml"));
        export_log(
            &tmp.path().join(n),
            Format::Xml,
            out.to_str().unwrap(),
            &mut ExportOptions::default(),
        )
        .unwrap();
    }
    let out = run(Command::new("ndiff")
        .arg(tmp.path().join("a.xml"))
        .arg(tmp.path().join("b.xml")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let diff: Vec<&str> = text
        .lines()
        .filter(|l| (l.starts_with('+') || l.starts_with('-')) && !l.contains("Nmap"))
        .collect();
    assert_eq!(
        diff,
        vec!["-23/tcp closed telnet", "+23/tcp open   telnet"],
        "{text}"
    );
    assert!(text.contains(" 198.19.0.3:"), "{text}");
}

#[test]
fn a_killed_scan_exports_valid_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    write(&log, synthetic::lab_rows(30).collect(), false);
    let out = tmp.path().join("scan.jsonl");
    export_log(
        &log,
        Format::Json,
        out.to_str().unwrap(),
        &mut ExportOptions::default(),
    )
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    // 30 result rows, then the line saying the scan did not complete.
    assert_eq!(text.lines().count(), 31);
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["scan_id"], 9);
    }
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "interrupted");
    assert!(last["note"]
        .as_str()
        .unwrap()
        .starts_with("interrupted at 0.0%: results are partial; resume: prtip replay 9"));
    let xml = tmp.path().join("scan.nmap");
    export_log(
        &log,
        Format::Text,
        xml.to_str().unwrap(),
        &mut ExportOptions::default(),
    )
    .unwrap();
    let text = std::fs::read_to_string(&xml).unwrap();
    // No Finished event and no live writer: the scan was interrupted.
    assert!(text.contains("prtip scan report for 198.19.0.3"));
}

#[test]
fn the_scans_requested_outputs_in_one_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    write(&log, synthetic::lab_rows(40).collect(), true);
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let outputs = vec![
        OutputSpec {
            format: "all".into(),
            path: p("base"),
        },
        OutputSpec {
            format: "json".into(),
            path: p("r.jsonl"),
        },
        OutputSpec {
            format: "csv".into(),
            path: p("r.csv"),
        },
        OutputSpec {
            format: "html".into(),
            path: p("r.html"),
        },
        OutputSpec {
            format: "pdf".into(),
            path: p("r.pdf"),
        },
    ];
    let stats = write_outputs(&log, &outputs, &mut ExportOptions::default()).unwrap();
    let mut files: Vec<String> = stats
        .iter()
        .map(|s| s.path.rsplit('/').next().unwrap().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "base.gnmap",
            "base.nmap",
            "base.xml",
            "r.csv",
            "r.html",
            "r.jsonl",
            "r.pdf"
        ]
    );
    assert!(stats.iter().all(|s| s.rows == 40 && s.hosts == 4));
    let html = std::fs::read_to_string(p("r.html")).unwrap();
    assert!(
        html.contains("#9 &middot; completed"),
        "status from the store's summary"
    );
    let bad = write_outputs(
        &log,
        &[OutputSpec {
            format: "yaml".into(),
            path: p("x"),
        }],
        &mut ExportOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "unknown export format \"yaml\": use text, json, xml, grep, csv, html or pdf"
    );
}
