//! Hosts that only unreachable errors answer for are not "up" (nmap's rule: a
//! host-unreachable from a router, or the scanner's own "no route", says the host
//! is down), and the end-of-scan line counts every port in its final state.
//! `prtip scan -sT` in a lab whose sparse IPv6 network answers absent addresses
//! with ICMPv6 no-route (the issue's `-sT ::1/126 -p 22` case). Needs root.

mod common;

use common::*;
use prtip_lab::{LabConfig, Sparse, SparseHosts, SparseMode};

#[test]
fn unreachable_hosts_are_down_and_the_done_line_counts_filtered_ports() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab_with(LabConfig {
        tcp_ports: vec![22],
        udp_ports: vec![],
        queues: 1,
        sparse: Some(Sparse {
            net4: None,
            net6: Some("2001:db8:20c::/124".parse().unwrap()),
            hosts: "1".parse::<SparseHosts>().unwrap(),
            mode: SparseMode::Unreachable,
        }),
        ..lab_config("unr")
    });
    let c = lab.config().clone();
    let home = tempfile::tempdir().unwrap();
    let out = scan_cmd(
        home.path(),
        &c.scan_ns,
        &[
            "scan",
            "-sT",
            "--max-retries",
            "0",
            "-p",
            "22",
            "2001:db8:20c::/126",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One block per address: "report for ADDR" then its status line.
    let status = |addr: &str| -> String {
        let head = format!("prtip scan report for {addr}\n");
        let at = stdout
            .find(&head)
            .unwrap_or_else(|| panic!("no block for {addr}:\n{stdout}"));
        stdout[at + head.len()..]
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    assert!(
        status("2001:db8:20c::1").starts_with("Host is up"),
        "{stdout}"
    );
    for a in ["2001:db8:20c::", "2001:db8:20c::2", "2001:db8:20c::3"] {
        assert_eq!(
            status(a),
            "Host seems down (host-unreach: unreachable errors only, no reply from the host).",
            "{stdout}"
        );
    }
    assert!(stdout.contains("(1 host up)"), "{stdout}");
    assert!(
        stdout.contains("1 open, 0 closed, 3 filtered ports;"),
        "{stdout}"
    );
    // The same in the nmap XML export: down, reason host-unreach.
    let xml = prtip()
        .args([
            "--home",
            home.path().to_str().unwrap(),
            "export",
            "--last",
            "-f",
            "xml",
        ])
        .output()
        .unwrap();
    let xml = String::from_utf8_lossy(&xml.stdout);
    assert_eq!(
        xml.matches("<status state=\"down\" reason=\"host-unreach\"")
            .count(),
        3,
        "{xml}"
    );
    assert_eq!(xml.matches("<status state=\"up\"").count(), 1, "{xml}");
}
