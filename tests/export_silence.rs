//! Exports of logs whose silence is projected (issue 17): a small scan lists its
//! silent ports port by port as before; a wide scan counts them, exactly, in
//! `<extraports>` / `Not shown` of the hosts that answered, lists none in JSON, and
//! its XML validates against nmap.dtd; `--silent-rows` lists them on request.

use prtip_export::{export_log, ExportOptions, Format};
use prtip_store::event::*;
use prtip_store::{LogOptions, LogWriter};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

const T0: u64 = 1_700_000_000_000_000;

/// A finished SYN scan of `targets` × `ports` whose log holds `answers` only.
fn scan_log(dir: &Path, targets: &str, ports: &str, total: u64, answers: &[([u8; 4], u16)]) {
    let w = LogWriter::create(dir, LogOptions::default()).unwrap();
    let mut sink = w.sink();
    sink.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id: 1,
        time_us: T0,
        spec: ScanSpec {
            targets: vec![targets.into()],
            ports: ports.into(),
            seed: 5,
            ..ScanSpec::default()
        },
        versions: Versions {
            prtip: "0.1.0".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec!["prtip".into(), "scan".into()],
        total_probes: total,
        total_targets: 0,
        pid: 1,
    })))
    .unwrap();
    for (a, port) in answers {
        sink.push(Event::Reply(Reply {
            addr: Ipv4Addr::from(*a).into(),
            port: *port,
            proto: Protocol::Tcp,
            state: PortState::Open,
            reason: Reason::SynAck,
            ttl: 64,
            icmp_code: 0,
            rtt_us: 200,
            time_us: T0 + 1000,
        }))
        .unwrap();
    }
    let c = Counters {
        sent: total,
        replies: answers.len() as u64,
        open: answers.len() as u64,
        ..Counters::default()
    };
    sink.checkpoint(Checkpoint {
        next_index: total,
        counters: c,
        time_us: T0 + 2_000_000,
    })
    .unwrap();
    sink.push(Event::Finished(Finished {
        time_us: T0 + 2_000_000,
        counters: c,
    }))
    .unwrap();
    drop(sink);
    w.finish().unwrap();
}

fn export(log: &Path, format: Format, out: &Path, silent_rows: Option<bool>) -> String {
    let mut opts = ExportOptions {
        silent_rows,
        ..Default::default()
    };
    export_log(log, format, out.to_str().unwrap(), &mut opts).unwrap();
    std::fs::read_to_string(out).unwrap()
}

fn dtd_valid(xml: &Path) {
    let st = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
        .arg(xml)
        .status()
        .unwrap();
    assert!(st.success(), "{} does not validate", xml.display());
}

#[test]
fn a_small_scan_lists_its_silent_ports_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    // 4 hosts × 30 ports = 120 probes; one answer.
    scan_log(&log, "198.19.1.0/30", "1-30", 120, &[([198, 19, 1, 1], 22)]);
    let json = export(&log, Format::Json, &tmp.path().join("o.jsonl"), None);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 120);
    let filtered = rows
        .iter()
        .filter(|r| r["state"] == "filtered" && r["reason"] == "no-response")
        .count();
    assert_eq!(filtered, 119);
    let xml_path = tmp.path().join("o.xml");
    let xml = export(&log, Format::Xml, &xml_path, None);
    dtd_valid(&xml_path);
    // 30 filtered ports of a silent host: more than 25, counted as nmap does.
    assert_eq!(
        xml.matches("<extraports state=\"filtered\" count=\"30\">")
            .count(),
        3
    );
    assert!(xml.contains("<extraports state=\"filtered\" count=\"29\">"));
    let text = export(&log, Format::Text, &tmp.path().join("o.nmap"), None);
    assert!(
        text.contains("Not shown: 29 filtered tcp ports (no-response)"),
        "{text}"
    );
}

#[test]
fn a_wide_scan_counts_its_silence_exactly_and_lists_none() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    // 65 536 hosts × 3 ports = 196 608 probes > 65 536: silence is not listed.
    let answers = [
        ([198, 19, 1, 1], 22),
        ([198, 19, 1, 1], 80),
        ([198, 19, 9, 9], 443),
    ];
    scan_log(&log, "198.19.0.0/16", "22,80,443", 196_608, &answers);
    let json = export(&log, Format::Json, &tmp.path().join("o.jsonl"), None);
    assert_eq!(json.lines().count(), 3, "{json}");
    let xml_path = tmp.path().join("o.xml");
    let xml = export(&log, Format::Xml, &xml_path, None);
    dtd_valid(&xml_path);
    // Two hosts answered: 198.19.1.1 has 1 silent port, 198.19.9.9 has 2.
    assert_eq!(xml.matches("<host ").count(), 2);
    assert!(xml.contains(
        "<extraports state=\"filtered\" count=\"1\">\n<extrareasons reason=\"no-response\" count=\"1\" proto=\"tcp\" ports=\"443\"/>"
    ), "{xml}");
    assert!(xml.contains(
        "<extraports state=\"filtered\" count=\"2\">\n<extrareasons reason=\"no-response\" count=\"2\" proto=\"tcp\" ports=\"22,80\"/>"
    ), "{xml}");
    let text = export(&log, Format::Text, &tmp.path().join("o.nmap"), None);
    assert!(
        text.contains("Not shown: 2 filtered tcp ports (no-response)"),
        "{text}"
    );
    // On request every silent port is a row.
    let all = export(&log, Format::Csv, &tmp.path().join("all.csv"), Some(true));
    assert_eq!(all.lines().count(), 1 + 196_608);
}
