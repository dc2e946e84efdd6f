//! CSV read back by two real parsers (the csv crate and Python's csv module) and
//! JSON lines read by serde_json and jq, from a scan with hostile banners.

mod export_support;

use export_support::{export, meta, run_ok};
use prtip_export::synthetic::row;
use prtip_export::Format;
use prtip_store::{PortState, ResultRow};
use std::process::Command;

fn hostile_scan() -> Vec<ResultRow> {
    vec![
        row(
            [198, 19, 0, 2],
            21,
            PortState::Open,
            Some(("ftp", "vsftpd", "3.0.3")),
            Some(b"220 (vsFTPd 3.0.3)\r\n"),
        ),
        row(
            [198, 19, 0, 2],
            25,
            PortState::Open,
            Some(("smtp", "+cmd|' /C calc'!A0", "")),
            Some(b"=HYPERLINK(\"http://x\",\"y\")"),
        ),
        row(
            [198, 19, 0, 2],
            80,
            PortState::Open,
            Some(("http", "@SUM(1)", "")),
            Some(b"line1\nline2,\"q\"\r\n\x00\xff"),
        ),
        row(
            [198, 19, 0, 2],
            6379,
            PortState::Open,
            Some(("redis", "", "")),
            Some(b"-ERR unknown command\r\n"),
        ),
        row([198, 19, 0, 9], 443, PortState::Closed, None, None),
    ]
}

fn expected() -> Vec<Vec<&'static str>> {
    vec![
        vec![
            "IP", "Port", "Protocol", "State", "Service", "Version", "Banner",
        ],
        vec![
            "198.19.0.2",
            "21",
            "tcp",
            "open",
            "ftp",
            "vsftpd 3.0.3",
            "220 (vsFTPd 3.0.3)\\x0d\\x0a",
        ],
        vec![
            "198.19.0.2",
            "25",
            "tcp",
            "open",
            "smtp",
            "'+cmd|' /C calc'!A0",
            "'=HYPERLINK(\"http://x\",\"y\")",
        ],
        vec![
            "198.19.0.2",
            "80",
            "tcp",
            "open",
            "http",
            "'@SUM(1)",
            "line1\\x0aline2,\"q\"\\x0d\\x0a\\x00\\xff",
        ],
        vec![
            "198.19.0.2",
            "6379",
            "tcp",
            "open",
            "redis",
            "",
            "'-ERR unknown command\\x0d\\x0a",
        ],
        vec!["198.19.0.9", "443", "tcp", "closed", "", "", ""],
    ]
}

#[test]
fn csv_reads_back_with_the_csv_crate() {
    let dir = tempfile::tempdir().unwrap();
    let path = export(
        dir.path(),
        "scan.csv",
        Format::Csv,
        &meta(1),
        hostile_scan(),
    );
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(&path)
        .unwrap();
    let got: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(got, expected());
    // Every physical line is one record: banners never break lines.
    let raw = std::fs::read_to_string(&path).unwrap();
    assert_eq!(raw.matches("\r\n").count(), 6);
    assert!(raw
        .bytes()
        .all(|b| b == b'\r' || b == b'\n' || (0x20..=0x7e).contains(&b)));
}

#[test]
fn csv_reads_back_with_python_csv_module() {
    let dir = tempfile::tempdir().unwrap();
    let path = export(
        dir.path(),
        "scan.csv",
        Format::Csv,
        &meta(1),
        hostile_scan(),
    );
    let out = run_ok(
        Command::new("python3")
            .arg("-c")
            .arg("import csv, json, sys\nprint(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))")
            .arg(&path),
    );
    let got: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, expected());
}

#[test]
fn json_lines_parse_one_by_one_with_serde_and_jq() {
    let dir = tempfile::tempdir().unwrap();
    let path = export(
        dir.path(),
        "scan.jsonl",
        Format::Json,
        &meta(1),
        hostile_scan(),
    );
    let raw = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    // Banners are text: a UTF-8 banner is the banner itself (CR LF included); one with
    // bytes that are not UTF-8 keeps its text and writes those bytes as `\xNN`.
    assert_eq!(lines[0]["banner"], "220 (vsFTPd 3.0.3)\r\n");
    assert_eq!(lines[0]["banner_escaped"], false);
    assert_eq!(lines[2]["banner"], "line1\nline2,\"q\"\r\n\u{0}\\xff");
    assert_eq!(lines[2]["banner_escaped"], true);
    assert_eq!(lines[3]["banner"], "-ERR unknown command\r\n");
    assert_eq!(lines[4]["banner"], serde_json::Value::Null);
    assert_eq!(lines[4]["banner_escaped"], serde_json::Value::Null);
    assert!(!raw.contains("\\x0d"), "CR stored as \\x0d text: {raw}");
    // jq gives the vsFTPd banner back byte for byte.
    let out = run_ok(
        Command::new("jq")
            .args(["-j", "select(.port == 21) | .banner"])
            .arg(&path),
    );
    assert_eq!(out.stdout, b"220 (vsFTPd 3.0.3)\r\n");
    assert_eq!(lines[4]["ip"], "198.19.0.9");
    let out = run_ok(
        Command::new("jq")
            .args([
                "-r",
                "select(.state == \"open\") | \"\\(.ip):\\(.port) \\(.service)\"",
            ])
            .arg(&path),
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "198.19.0.2:21 ftp\n198.19.0.2:25 smtp\n198.19.0.2:80 http\n198.19.0.2:6379 redis\n"
    );
    // Any prefix of whole lines (what a reader sees of a growing file) is valid JSON lines.
    let first_two: String = raw.lines().take(2).map(|l| format!("{l}\n")).collect();
    let p2 = dir.path().join("prefix.jsonl");
    std::fs::write(&p2, first_two).unwrap();
    run_ok(Command::new("jq").args(["-c", "."]).arg(&p2));
}
