//! nmap XML export checked with nmap's own tools and a common library: the DTD
//! (xmllint), ndiff between two prtip scans, and python-libnmap's parser.

mod export_support;

use export_support::{ensure_libnmap, export, meta, run, run_ok};
use prtip_export::synthetic::row;
use prtip_export::Format;
use prtip_store::{PortState, ResultRow};
use std::process::Command;

fn lab_scan(extra_port: bool) -> Vec<ResultRow> {
    let mut rows = vec![
        row(
            [198, 19, 0, 2],
            21,
            PortState::Open,
            Some(("ftp", "vsftpd", "3.0.3")),
            Some(b"220 (vsFTPd 3.0.3)\r\n"),
        ),
        row(
            [198, 19, 0, 2],
            22,
            PortState::Open,
            Some(("ssh", "OpenSSH", "9.2p1")),
            Some(b"SSH-2.0-OpenSSH_9.2p1\r\n"),
        ),
        row(
            [198, 19, 0, 2],
            80,
            PortState::Open,
            Some(("http", "nginx", "1.24.0")),
            Some(b"<script>alert(1)</script>\x00\x01"),
        ),
    ];
    if extra_port {
        rows.push(row(
            [198, 19, 0, 2],
            443,
            PortState::Open,
            Some(("https", "", "")),
            None,
        ));
    }
    for p in 1000..1040 {
        rows.push(row([198, 19, 0, 2], p, PortState::Closed, None, None));
    }
    rows.push(row([198, 19, 0, 7], 53, PortState::Closed, None, None));
    rows.push(row(
        [198, 19, 0, 7],
        6379,
        PortState::Open,
        Some(("redis", "Redis key-value store", "7.0.15")),
        None,
    ));
    rows
}

#[test]
fn validates_against_nmap_dtd() {
    let dir = tempfile::tempdir().unwrap();
    let xml = export(
        dir.path(),
        "scan.xml",
        Format::Xml,
        &meta(1),
        lab_scan(false),
    );
    run_ok(
        Command::new("xmllint")
            .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
            .arg(&xml),
    );
}

#[test]
fn empty_scan_validates_too() {
    let dir = tempfile::tempdir().unwrap();
    let xml = export(dir.path(), "empty.xml", Format::Xml, &meta(1), vec![]);
    run_ok(
        Command::new("xmllint")
            .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
            .arg(&xml),
    );
}

#[test]
fn ndiff_reports_the_one_port_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let a = export(dir.path(), "a.xml", Format::Xml, &meta(1), lab_scan(false));
    let b = export(dir.path(), "b.xml", Format::Xml, &meta(2), lab_scan(true));
    let same = run(Command::new("ndiff").arg(&a).arg(&a));
    assert_eq!(
        same.status.code(),
        Some(0),
        "ndiff a a: {}",
        String::from_utf8_lossy(&same.stderr)
    );
    let out = run(Command::new("ndiff").arg(&a).arg(&b));
    let text = String::from_utf8_lossy(&out.stdout);
    // ndiff exits 1 when the scans differ, 2 on error.
    assert_eq!(
        out.status.code(),
        Some(1),
        "ndiff: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('+') || l.starts_with('-'))
        .filter(|l| !l.starts_with("+Nmap") && !l.starts_with("-Nmap"))
        .collect();
    assert_eq!(
        changed,
        vec!["+443/tcp open  https"],
        "ndiff output:\n{text}"
    );
    assert!(text.contains("198.19.0.2"), "{text}");
    // XML mode parses too.
    let xml = run(Command::new("ndiff").arg("--xml").arg(&a).arg(&b));
    assert_eq!(xml.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&xml.stdout).contains("portid=\"443\""));
}

/// Two `-sV` scans of the same HTTP and SSH servers: the banners differ only in the
/// `Date:` header, one port was added. ndiff 7.93 crashed on such a pair when banners
/// were `<script id="banner">` elements (a port whose script output changed while its
/// service columns did not); it must report the one new port and nothing else.
#[test]
fn ndiff_compares_two_sv_scans_whose_banners_differ() {
    let scan = |date: &str, extra_port: bool| {
        let http = format!("HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: {date}\r\n\r\n");
        let mut rows = vec![
            row(
                [198, 19, 0, 2],
                22,
                PortState::Open,
                Some(("ssh", "OpenSSH", "9.2p1")),
                Some(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
            ),
            row(
                [198, 19, 0, 2],
                80,
                PortState::Open,
                Some(("http", "nginx", "1.24.0")),
                Some(http.as_bytes()),
            ),
        ];
        if extra_port {
            rows.push(row(
                [198, 19, 0, 2],
                8080,
                PortState::Open,
                Some(("http", "nginx", "1.24.0")),
                Some(http.as_bytes()),
            ));
        }
        rows
    };
    let dir = tempfile::tempdir().unwrap();
    let a = export(
        dir.path(),
        "a.xml",
        Format::Xml,
        &meta(1),
        scan("Mon, 07 Dec 2026 16:00:00 GMT", false),
    );
    let b = export(
        dir.path(),
        "b.xml",
        Format::Xml,
        &meta(2),
        scan("Mon, 07 Dec 2026 16:00:05 GMT", true),
    );
    let xa = std::fs::read_to_string(&a).unwrap();
    assert!(
        xa.contains("Date: Mon, 07 Dec 2026 16:00:00 GMT"),
        "the banner is kept: {xa}"
    );
    for args in [&[][..], &["-v"][..], &["--xml"][..]] {
        let out = run(Command::new("ndiff").args(args).arg(&a).arg(&b));
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "ndiff {args:?} wrote to stderr: {err}");
        assert_eq!(out.status.code(), Some(1), "ndiff {args:?}: {text}");
        if args.is_empty() {
            let changed: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with('+') || l.starts_with('-'))
                .filter(|l| !l.starts_with("+Nmap") && !l.starts_with("-Nmap"))
                .collect();
            assert_eq!(changed, ["+8080/tcp open  http    nginx 1.24.0"], "{text}");
        }
    }
    // The same pair without the new port: ndiff sees no difference at all.
    let c = export(
        dir.path(),
        "c.xml",
        Format::Xml,
        &meta(3),
        scan("Tue, 08 Dec 2026 09:00:00 GMT", false),
    );
    let out = run(Command::new("ndiff").arg(&a).arg(&c));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_libnmap_reads_hosts_ports_states_services() {
    ensure_libnmap();
    let dir = tempfile::tempdir().unwrap();
    let xml = export(
        dir.path(),
        "scan.xml",
        Format::Xml,
        &meta(1),
        lab_scan(true),
    );
    let script = r#"
import sys, json
from libnmap.parser import NmapParser
r = NmapParser.parse_fromfile(sys.argv[1])
out = {"hosts_total": r.hosts_total, "hosts_up": r.hosts_up, "hosts": []}
for h in r.hosts:
    out["hosts"].append({"addr": h.address, "up": h.is_up(),
        "ports": [[s.port, s.protocol, s.state, s.service, s.service_dict.get("product", "")] for s in h.services]})
print(json.dumps(out))
"#;
    let out = run_ok(Command::new("python3").arg("-c").arg(script).arg(&xml));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hosts_total"], 256);
    assert_eq!(v["hosts_up"], 2);
    assert_eq!(
        v["hosts"],
        serde_json::json!([
            {"addr": "198.19.0.2", "up": true, "ports": [
                [21, "tcp", "open", "ftp", "vsftpd"],
                [22, "tcp", "open", "ssh", "OpenSSH"],
                [80, "tcp", "open", "http", "nginx"],
                [443, "tcp", "open", "https", ""]]},
            {"addr": "198.19.0.7", "up": true, "ports": [
                [53, "tcp", "closed", "domain", ""],
                [6379, "tcp", "open", "redis", "Redis key-value store"]]}
        ])
    );
}
