//! A paused scan's exports say it is paused and how far it got, in every format that
//! has a place for it: text and greppable trailers, XML `<finished exit="error"
//! errormsg=...>` (valid against nmap.dtd), a JSON closing line, HTML and PDF. The
//! figure is the store's one definition of progress: first-pass walk positions done
//! over the first pass's length (retry passes not counted).

mod common;
mod export_support;

use export_support::run_ok;
use prtip_export::synthetic::{self, row, row_events};
use prtip_export::{export_log, ExportOptions, Format};
use prtip_store::event::{Checkpoint, Counters, EventSink, Paused, ScanStarted, Versions};
use prtip_store::{Event, LogOptions, LogReader, LogWriter, PortState};
use std::path::Path;
use std::process::Command;

const START: u64 = 1_764_080_100_000_000;

/// A SYN scan with one retry pass (walk 2 × 1000 positions), paused at position 146
/// of the first pass: 14.6%.
fn paused_log(dir: &Path) {
    let spec = synthetic::lab_spec();
    assert_eq!(spec.max_retries, 1);
    let writer = LogWriter::create(dir, LogOptions::default()).unwrap();
    let mut sink = writer.sink();
    sink.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id: 7,
        time_us: START,
        spec: spec.clone(),
        versions: Versions {
            prtip: env!("CARGO_PKG_VERSION").into(),
            schema: prtip_store::event::SCHEMA_VERSION,
        },
        command_line: ["prtip", "scan", "-sS", "-p", "22,80", "198.19.0.0/23"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        total_probes: 2000,
        total_targets: 500,
        pid: std::process::id(),
    })))
    .unwrap();
    let rows = [
        row(
            [198, 19, 0, 2],
            22,
            PortState::Open,
            Some(("ssh", "OpenSSH", "9.2p1")),
            None,
        ),
        row([198, 19, 0, 2], 80, PortState::Closed, None, None),
    ];
    for r in &rows {
        for e in row_events(r) {
            sink.push(e).unwrap();
        }
    }
    let counters = Counters {
        sent: 146,
        replies: 2,
        open: 1,
        closed: 1,
        ..Counters::default()
    };
    sink.push(Event::Checkpoint(Checkpoint {
        next_index: 146,
        counters,
        time_us: START + 1_000_000,
    }))
    .unwrap();
    sink.push(Event::Paused(Paused {
        next_index: 146,
        time_us: START + 1_200_000,
        reason: "SIGINT".into(),
    }))
    .unwrap();
    drop(sink);
    writer.finish().unwrap();
}

fn export_to(log: &Path, format: Format, out: &Path) -> Vec<u8> {
    export_log(
        log,
        format,
        out.to_str().unwrap(),
        &mut ExportOptions::default(),
    )
    .unwrap();
    std::fs::read(out).unwrap()
}

const NOTE: &str = "paused at 14.6%: results are partial; resume: prtip replay 7 --from-checkpoint";

#[test]
fn the_store_measures_progress_on_the_first_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    paused_log(&log);
    let s = prtip_store::summarize(&LogReader::open(&log).unwrap()).unwrap();
    assert_eq!(s.status, prtip_store::ScanStatus::Paused);
    assert_eq!(
        (s.probes_done, s.total_probes, s.pass_span()),
        (146, 2000, 1000)
    );
    assert_eq!(format!("{:.1}", s.progress() * 100.0), "14.6");
}

#[test]
fn text_and_greppable_say_paused_not_scanned() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    paused_log(&log);
    for (format, name) in [(Format::Text, "scan.nmap"), (Format::Grep, "scan.gnmap")] {
        let text = String::from_utf8(export_to(&log, format, &tmp.path().join(name))).unwrap();
        let last = text.lines().last().unwrap();
        assert_eq!(
            last,
            format!(
                "# prtip paused at 14.6% on Tue Nov 25 14:15:01 2025 UTC -- 500 IP addresses (1 host up), 1.20 seconds; {NOTE}"
            ),
            "{format:?}"
        );
        assert!(!text.contains("scanned in"), "{text}");
    }
}

#[test]
fn xml_finishes_with_an_error_naming_the_pause_and_stays_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    paused_log(&log);
    let path = tmp.path().join("scan.xml");
    let xml = String::from_utf8(export_to(&log, Format::Xml, &path)).unwrap();
    assert!(!xml.contains("exit=\"success\""), "{xml}");
    assert!(
        xml.contains(&format!(
            "summary=\"prtip paused at 14.6% on Tue Nov 25 14:15:01 2025 UTC; 500 IP addresses (1 host up), 1.20 seconds\" elapsed=\"1.20\" exit=\"error\" errormsg=\"{NOTE}\"/>"
        )),
        "{xml}"
    );
    run_ok(
        Command::new("xmllint")
            .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
            .arg(&path),
    );
}

#[test]
fn json_lines_end_with_a_status_line() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    paused_log(&log);
    let raw =
        String::from_utf8(export_to(&log, Format::Json, &tmp.path().join("s.jsonl"))).unwrap();
    let lines: Vec<serde_json::Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["port"], 22);
    assert_eq!(
        lines[2],
        serde_json::json!({"scan_id": 7, "status": "paused", "progress": 0.146, "note": NOTE})
    );
    // Result rows only, as before: `select(.ip)` drops the status line.
    let out = run_ok(
        Command::new("jq")
            .args(["-c", "select(.ip) | .port"])
            .arg(tmp.path().join("s.jsonl")),
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "22\n80\n");
}

#[test]
fn html_and_pdf_name_the_pause() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    paused_log(&log);
    let html =
        String::from_utf8(export_to(&log, Format::Html, &tmp.path().join("r.html"))).unwrap();
    assert!(html.contains("#7 &middot; paused at 14.6%</dd>"), "{html}");
    assert!(
        html.contains(&format!("<dd class=\"partial\">{NOTE}</dd>")),
        "{html}"
    );
    let pdf = tmp.path().join("r.pdf");
    export_to(&log, Format::Pdf, &pdf);
    let out = run_ok(
        Command::new("pdftotext")
            .args(["-layout"])
            .arg(&pdf)
            .arg("-"),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("#7 (paused at 14.6%)"), "{text}");
    assert!(
        text.contains("paused at 14.6%: results are partial"),
        "{text}"
    );
}

#[test]
fn a_completed_scan_says_nothing_of_the_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("scan");
    synthetic::write_log(
        &log,
        9,
        &synthetic::lab_spec(),
        [row([198, 19, 0, 2], 22, PortState::Open, None, None)].into_iter(),
        true,
    )
    .unwrap();
    let xml = String::from_utf8(export_to(&log, Format::Xml, &tmp.path().join("s.xml"))).unwrap();
    assert!(
        xml.contains("exit=\"success\"/>") && !xml.contains("errormsg"),
        "{xml}"
    );
    let raw =
        String::from_utf8(export_to(&log, Format::Json, &tmp.path().join("s.jsonl"))).unwrap();
    assert_eq!(raw.lines().count(), 1);
    let text =
        String::from_utf8(export_to(&log, Format::Text, &tmp.path().join("s.nmap"))).unwrap();
    assert!(
        text.lines()
            .last()
            .unwrap()
            .contains(" scanned in 2.50 seconds"),
        "{text}"
    );
    assert!(!text.contains("partial"));
}

/// Issue 19, item 4: `history show` and `history list` give the figure the
/// exports and `paused at N%` give: 14.6%, of the first pass's 1000 probes (they
/// said "(146 of 2000 probes)" and 7.3%).
#[test]
fn history_show_and_list_measure_the_first_pass() {
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("scans").join("7");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    paused_log(&log);
    let prtip = || {
        let mut c = common::prtip();
        c.env("PRTIP_HOME", home.path()).env_remove("PRTIP_HISTORY");
        c
    };
    run_ok(prtip().args(["history", "rebuild"]));
    let show = run_ok(prtip().args(["history", "show", "7"]));
    let show = String::from_utf8(show.stdout).unwrap();
    assert!(
        show.contains("14.6% (146 of 1000 first-pass probes)"),
        "{show}"
    );
    let list = run_ok(prtip().args(["history", "list", "--json"]));
    let row: serde_json::Value =
        serde_json::from_str(String::from_utf8(list.stdout).unwrap().trim()).unwrap();
    assert_eq!(row["progress"], 0.146, "{row}");
}
