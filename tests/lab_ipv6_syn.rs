//! `prtip scan -sS` of the lab's IPv6 target prefix over AF_PACKET (the
//! `TcpSynV6` probe module): results equal the lab's ground truth exactly, and
//! the XML export says `addrtype="ipv6"` and validates against nmap's DTD.
//! Needs root (skips otherwise).

mod common;

use common::*;
use prtip_lab::{LabConfig, PortTruth, Proto};
use prtip_store::event::{PortState, Protocol};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::process::Command;

#[test]
fn syn_scan_of_an_ipv6_slash_120_equals_ground_truth_and_exports_ipv6() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab_with(LabConfig {
        tcp_ports: vec![22, 80],
        udp_ports: vec![],
        queues: 1,
        ..lab_config("sy6")
    });
    let c = lab.config().clone();
    let g = c.ground_truth();
    let home = tempfile::tempdir().unwrap();
    let xml = home.path().join("out.xml");
    let out = scan_cmd(
        home.path(),
        &c.scan_ns,
        &[
            "scan",
            "-sS",
            "2001:db8:100::/120",
            "-p",
            "22,80,443",
            "--wait",
            "500ms",
            "--quiet",
            "-oX",
            xml.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every (address, port) of the /120 from the log's projection.
    let r = prtip_store::LogReader::open(&scan_dir(home.path(), 1)).unwrap();
    let got: BTreeMap<(IpAddr, u16), PortState> = prtip_store::sorted_rows(&r)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            assert_eq!(row.proto, Protocol::Tcp);
            ((row.addr.ip(), row.port), row.state)
        })
        .collect();
    let base = u128::from("2001:db8:100::".parse::<Ipv6Addr>().unwrap());
    let mut want = BTreeMap::new();
    for i in 0..256u128 {
        let a = IpAddr::V6(Ipv6Addr::from(base + i));
        for port in [22u16, 80, 443] {
            let s = match g.port(Proto::Tcp, a, port) {
                PortTruth::Open => PortState::Open,
                PortTruth::Closed => PortState::Closed,
                t => panic!("{a} port {port}: the lab says {t:?}"),
            };
            want.insert((a, port), s);
        }
    }
    assert_eq!(
        want.values().filter(|s| **s == PortState::Open).count(),
        512
    );
    assert!(
        got == want,
        "results differ from ground truth ({} rows, want {})",
        got.len(),
        want.len()
    );
    // The XML export: IPv6 addresses, valid against nmap's DTD.
    let text = std::fs::read_to_string(&xml).unwrap();
    assert_eq!(text.matches("addrtype=\"ipv6\"").count(), 256);
    assert_eq!(text.matches("addrtype=\"ipv4\"").count(), 0);
    assert!(text.contains("<address addr=\"2001:db8:100::7\" addrtype=\"ipv6\"/>"));
    assert_eq!(text.matches("state=\"open\"").count(), 512);
    let lint = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
}
