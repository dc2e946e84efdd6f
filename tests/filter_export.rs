//! The filter language end to end: `prtip export --filter EXPR` on a real scan
//! log selects exactly the rows `prtip_filter::Filter::matches` selects on the
//! store's projection of the same log, and a bad expression is refused with
//! exit code 2, the column and a caret, and no output.

mod common;

use prtip_filter::Filter;
use prtip_store::event::*;
use prtip_store::{LogOptions, LogReader, LogWriter, Results};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// A log with 600 rows: IPv4 and IPv6, TCP and UDP, every state, services with
/// several confidences, banners, RTTs from 100 µs to 30 ms.
fn write_log(dir: &Path) {
    let w = LogWriter::create(dir, LogOptions::default()).unwrap();
    let mut sink = w.sink();
    sink.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id: 9,
        time_us: 1_700_000_000_000_000,
        spec: ScanSpec {
            targets: vec!["10.0.0.0/24".into(), "2001:db8::/120".into()],
            ports: "T:1-65535,U:53".into(),
            service_detection: true,
            seed: 1,
            // A socket scan writes every port's state itself (its silent ports
            // too, as this log does): nothing is projected from the walk.
            scan_type: ScanType::Connect,
            backend: BackendKind::Connect,
            ..ScanSpec::default()
        },
        versions: Versions {
            prtip: "test".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec![],
        total_probes: 600,
        total_targets: 2,
        pid: std::process::id(),
    })))
    .unwrap();
    let services = [
        (
            22u16,
            "ssh",
            "OpenSSH",
            "9.2p1",
            &b"SSH-2.0-OpenSSH_9.2p1\r\n"[..],
        ),
        (
            80,
            "http",
            "Apache httpd",
            "2.4.57",
            b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.57\r\n",
        ),
        (443, "ssl/http", "nginx", "1.24.0", b""),
        (
            8080,
            "http-proxy",
            "Squid",
            "5.7",
            b"HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            6379,
            "redis",
            "Redis",
            "7.0.11",
            b"-ERR unknown command\r\n",
        ),
    ];
    for i in 0..600u32 {
        let addr: Addr = if i % 3 == 0 {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                (i % 200) as u16,
            ))
            .into()
        } else {
            Ipv4Addr::new(10, 0, (i % 7) as u8, (i % 250) as u8).into()
        };
        let (port, name, product, version, banner) = services[(i % 5) as usize];
        let port = if i % 11 == 0 { 20_000 + i as u16 } else { port };
        let proto = if i % 13 == 0 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let state = match i % 4 {
            0 | 1 => PortState::Open,
            2 => PortState::Closed,
            _ if proto == Protocol::Udp => PortState::OpenFiltered,
            _ => PortState::Filtered,
        };
        let t = 1_700_000_000_000_000 + u64::from(i);
        sink.push(Event::Reply(Reply {
            addr,
            port,
            proto,
            state,
            reason: match state {
                PortState::Open => Reason::SynAck,
                PortState::Closed => Reason::Reset,
                _ => Reason::NoResponse,
            },
            ttl: 64,
            icmp_code: 0,
            rtt_us: if state == PortState::Filtered {
                0
            } else {
                100 + i * 50
            },
            time_us: t,
        }))
        .unwrap();
        if state == PortState::Open {
            sink.push(Event::Service(Service {
                addr,
                port,
                proto,
                time_us: t,
                name: name.into(),
                product: product.into(),
                version: version.into(),
                extra: String::new(),
                confidence: (i % 7) as f32 / 6.0,
                method: "probe".into(),
            }))
            .unwrap();
            if !banner.is_empty() {
                sink.push(Event::Banner(Banner {
                    addr,
                    port,
                    proto,
                    time_us: t,
                    probe: "NULL".into(),
                    bytes: banner.to_vec(),
                }))
                .unwrap();
            }
        }
    }
    sink.push(Event::Finished(Finished {
        time_us: 1_700_000_001_000_000,
        counters: Counters::default(),
    }))
    .unwrap();
    w.finish().unwrap();
}

type Key = (String, u16, String);

fn expected(dir: &Path, expr: &str) -> BTreeSet<Key> {
    let f = Filter::parse(expr).unwrap();
    Results::from_log(&LogReader::open(dir).unwrap())
        .unwrap()
        .rows()
        .into_iter()
        .filter(|r| f.matches(r))
        .map(|r| (r.addr.to_string(), r.port, r.proto.as_str().to_string()))
        .collect()
}

fn exported(dir: &Path, expr: &str) -> BTreeSet<Key> {
    let out = common::prtip()
        .args([
            "export",
            dir.to_str().unwrap(),
            "-f",
            "csv",
            "--no-progress",
            "--filter",
            expr,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prtip export --filter {expr:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rd = csv::Reader::from_reader(&out.stdout[..]);
    rd.records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].parse().unwrap(), r[2].to_string())
        })
        .collect()
}

#[test]
fn export_filter_selects_what_the_library_selects() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    let total = expected(tmp.path(), "all").len();
    assert_eq!(total, 600);
    for expr in [
        r#"port 1-1024 and proto tcp and state open and service ~ "http|ssl" and confidence >= 0.8"#,
        "port 22,80",
        "port >= 20000",
        "proto udp",
        "state open|filtered",
        "state open,filtered",
        "addr 10.0.0.0/8",
        "addr 2001:db8::/120 and not state closed",
        "addr 10.0.3.0/24,2001:db8::5",
        r#"version ~= "2.4" or version contains "9.2""#,
        r#"banner ~ "^HTTP/1\.1 [0-9]+""#,
        "rtt < 5ms and has banner",
        "not (state closed or port 443) and (proto tcp or state open)",
    ] {
        let want = expected(tmp.path(), expr);
        assert!(
            !want.is_empty() && want.len() < total,
            "{expr}: selects {}",
            want.len()
        );
        assert_eq!(exported(tmp.path(), expr), want, "{expr}");
    }
}

#[test]
fn export_refuses_a_bad_filter_with_exit_2_and_a_caret() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    let out_file = tmp.path().join("out.csv");
    let out = common::prtip()
        .args([
            "export",
            tmp.path().to_str().unwrap(),
            "-f",
            "csv",
            "-o",
            out_file.to_str().unwrap(),
            "--filter",
            "port 22 and confidence > high",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "expected a confidence between 0 and 1 (or 0% to 100%), found `high` (column 26)\n  port 22 and confidence > high\n                           ^^^^"
        ),
        "{err}"
    );
    assert!(!out_file.exists(), "nothing written");
}
