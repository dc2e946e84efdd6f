//! nmap's other TCP scan types (`-sF -sN -sX -sA -sW -sM`) and `-sS -sU` in
//! one scan, on the project's lab over AF_PACKET and AF_XDP: every port's state
//! equals what nmap's rules give for the lab's ground truth (a Linux target: a
//! reset to FIN/NULL/Xmas on closed ports and nothing on open ones; a reset to
//! every ACK and FIN+ACK; a silent sparse address answers nothing), and equals
//! what nmap itself finds on the same lab. `--reason` adds nmap's REASON column.
//! Needs root and nmap.

mod common;
mod lab_support;

use common::*;
use lab_support::*;
use prtip_lab::{LabConfig, PortTruth, Proto, Sparse, SparseHosts, SparseMode};
use prtip_store::event::{PortState, Protocol};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The lab's open TCP and UDP ports.
const TCP_OPEN: [u16; 2] = [22, 80];
const UDP_OPEN: [u16; 1] = [53];
/// 8 addresses of the target network and 8 of the sparse one (2 live: .1, .5).
const TARGETS: [&str; 2] = ["198.19.0.0/29", "198.18.1.0/29"];
const TCP_PORTS: &str = "22,80,443";

type States = BTreeMap<(IpAddr, Protocol, u16), PortState>;

fn lab() -> prtip_lab::LabGuard {
    lab_with(LabConfig {
        tcp_ports: TCP_OPEN.to_vec(),
        udp_ports: UDP_OPEN.to_vec(),
        queues: 1,
        sparse: Some(Sparse {
            mode: SparseMode::Silent,
            hosts: SparseHosts::Every(4),
            ..Sparse::default()
        }),
        ..lab_config("sty")
    })
}

/// What nmap's rules for scan `letter` say about a port the lab answers as `t`.
fn expected(letter: char, t: PortTruth) -> PortState {
    use PortState::*;
    match (letter, t) {
        (_, PortTruth::Silent) if "AW".contains(letter) => Filtered,
        (_, PortTruth::Silent) => OpenFiltered,
        // Linux answers an ACK (alone or with FIN) with a reset, window 0,
        // whether a socket listens or not.
        ('A', _) => Unfiltered,
        ('W' | 'M', _) => Closed,
        // FIN, NULL, Xmas: a listening socket drops them; no socket: reset.
        (_, PortTruth::Open) => OpenFiltered,
        (_, PortTruth::Closed) => Closed,
        (_, other) => panic!("the lab says {other:?}"),
    }
}

/// Every (address, protocol, port) of the scan with the state nmap's rules
/// give for the ground truth (`udp`: the UDP ports too, as a `-sU` scan sees them).
fn truth(c: &LabConfig, letter: char, udp: &[u16]) -> States {
    let g = c.ground_truth();
    let mut m = States::new();
    for net in TARGETS {
        let (base, _) = net.split_once('/').unwrap();
        let base: std::net::Ipv4Addr = base.parse().unwrap();
        for i in 0..8u32 {
            let a = IpAddr::V4((u32::from(base) + i).into());
            for p in [22u16, 80, 443] {
                let t = g.port(Proto::Tcp, a, p);
                m.insert((a, Protocol::Tcp, p), expected(letter, t));
            }
            for &p in udp {
                let s = match g.port(Proto::Udp, a, p) {
                    PortTruth::Open => PortState::Open,
                    PortTruth::Closed => PortState::Closed,
                    PortTruth::Silent => PortState::OpenFiltered,
                    other => panic!("{a} udp {p}: the lab says {other:?}"),
                };
                m.insert((a, Protocol::Udp, p), s);
            }
        }
    }
    m
}

/// Run `prtip scan ARGS TARGETS` in the lab's scanner namespace under a fresh
/// home; returns every row of its log's projection.
fn prtip_states(c: &LabConfig, args: &[&str]) -> (States, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let mut all = vec![
        "scan",
        "--wait",
        "500ms",
        "--max-retries",
        "1",
        "--seed",
        "7",
    ];
    all.extend_from_slice(args);
    all.extend_from_slice(&TARGETS);
    let out = scan_cmd(home.path(), &c.scan_ns, &all).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = prtip_store::LogReader::open(&scan_dir(home.path(), 1)).unwrap();
    let got = prtip_store::sorted_rows(&r)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            ((row.addr.ip(), row.proto, row.port), row.state)
        })
        .collect();
    (got, home)
}

/// nmap's states for `-s<letter>` on the same targets and ports.
fn nmap(c: &LabConfig, scan: &str, ports: &str) -> States {
    let mut args = vec![scan, "-T5", "--max-retries", "1", "-p", ports];
    args.extend_from_slice(&TARGETS);
    nmap_states(&c.scan_ns, &args)
        .into_iter()
        .map(|((a, p), (state, _))| {
            let (proto, port) = (Protocol::Tcp, p);
            let s = match state.as_str() {
                "open" => PortState::Open,
                "closed" => PortState::Closed,
                "filtered" => PortState::Filtered,
                "open|filtered" => PortState::OpenFiltered,
                "unfiltered" => PortState::Unfiltered,
                other => panic!("nmap {scan}: state {other}"),
            };
            ((a, proto, port), s)
        })
        .collect()
}

#[test]
fn every_flag_scan_type_equals_nmaps_rules_and_nmap_over_packet_and_xdp() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab();
    let c = lab.config().clone();
    for letter in ['F', 'N', 'X', 'A', 'W', 'M'] {
        let flag = format!("-s{letter}");
        let want = truth(&c, letter, &[]);
        assert_eq!(want.len(), 16 * 3);
        // nmap, run on the same lab, is the oracle for the rules themselves.
        let oracle = nmap(&c, &flag, TCP_PORTS);
        assert_eq!(oracle, want, "nmap {flag} disagrees with the ground truth");
        for backend in [
            &["--backend", "packet"][..],
            &["--xdp", c.scan_if.as_str()][..],
        ] {
            let mut args = vec![flag.as_str(), "-p", TCP_PORTS];
            args.extend_from_slice(backend);
            let (got, _home) = prtip_states(&c, &args);
            assert_eq!(got, want, "prtip {args:?}");
        }
    }
}

/// `-sS -sU -p 22,80,443,53`: every port over TCP and UDP, as nmap's SYN and
/// UDP rules give them for the ground truth.
fn syn_udp_truth(c: &LabConfig) -> States {
    let g = c.ground_truth();
    let mut m = States::new();
    for net in TARGETS {
        let (base, _) = net.split_once('/').unwrap();
        let base: std::net::Ipv4Addr = base.parse().unwrap();
        for i in 0..8u32 {
            let a = IpAddr::V4((u32::from(base) + i).into());
            for p in [22u16, 53, 80, 443] {
                let tcp = match g.port(Proto::Tcp, a, p) {
                    PortTruth::Open => PortState::Open,
                    PortTruth::Closed => PortState::Closed,
                    PortTruth::Silent => PortState::Filtered,
                    other => panic!("{a} tcp {p}: the lab says {other:?}"),
                };
                let udp = match g.port(Proto::Udp, a, p) {
                    PortTruth::Open => PortState::Open,
                    PortTruth::Closed => PortState::Closed,
                    PortTruth::Silent => PortState::OpenFiltered,
                    other => panic!("{a} udp {p}: the lab says {other:?}"),
                };
                m.insert((a, Protocol::Tcp, p), tcp);
                m.insert((a, Protocol::Udp, p), udp);
            }
        }
    }
    m
}

#[test]
fn syn_and_udp_in_one_raw_scan_equal_ground_truth_with_the_reason_column() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab();
    let c = lab.config().clone();
    let want = syn_udp_truth(&c);
    assert_eq!(want.len(), 16 * 8);
    assert_eq!(
        want.values().filter(|s| **s == PortState::Open).count(),
        8 * 3 + 2 * 3,
        "22, 80 and U:53 on 8 + 2 live addresses"
    );
    for (form, backend) in [
        (&["-sS", "-sU"][..], &["--backend", "packet"][..]),
        (&["-sSU"][..], &["--xdp", c.scan_if.as_str()][..]),
        (&["-sUS"][..], &["--backend", "packet"][..]),
    ] {
        let home = tempfile::tempdir().unwrap();
        let normal = home.path().join("out.nmap");
        let mut args = form.to_vec();
        args.extend_from_slice(&["-p", "22,80,443,53", "--reason", "-oN"]);
        args.push(normal.to_str().unwrap());
        args.extend_from_slice(backend);
        let (got, scan_home) = prtip_states(&c, &args);
        assert_eq!(got, want, "prtip {args:?}");
        // The table printed at the end and -oN: nmap's REASON column, with TTLs.
        let text = std::fs::read_to_string(&normal).unwrap();
        // The block of a live host of the target network.
        let block = text
            .split("prtip scan report for 198.19.0.5\n")
            .nth(1)
            .and_then(|b| b.split("\n\n").next())
            .unwrap_or_else(|| panic!("{args:?}: no 198.19.0.5 in {text}"));
        let line = |start: &str| {
            block
                .lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("{args:?}: no line {start:?} in {text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(line("PORT"), "PORT STATE SERVICE REASON", "{text}");
        assert_eq!(line("22/tcp"), "22/tcp open ssh syn-ack ttl 64", "{text}");
        assert_eq!(
            line("53/udp"),
            "53/udp open domain udp-response ttl 64",
            "{text}"
        );
        assert_eq!(
            line("443/tcp"),
            "443/tcp closed https reset ttl 64",
            "{text}"
        );
        assert_eq!(
            line("443/udp"),
            "443/udp closed https port-unreach ttl 64",
            "{text}"
        );
        drop((scan_home, home));
    }
}

/// Every (address, protocol, port) of `2001:db8:100::/124` × `tcp` × `udp`:
/// TCP as scan `letter`'s rules give it (`S`: SYN), UDP as `-sU`'s.
fn v6_truth(c: &LabConfig, letter: char, tcp: &[u16], udp: &[u16]) -> States {
    let g = c.ground_truth();
    let base = u128::from("2001:db8:100::".parse::<std::net::Ipv6Addr>().unwrap());
    let mut m = States::new();
    for i in 0..16u128 {
        let a = IpAddr::V6((base + i).into());
        for &p in tcp {
            let t = g.port(Proto::Tcp, a, p);
            let s = match (letter, t) {
                ('S', PortTruth::Open) => PortState::Open,
                ('S', PortTruth::Closed) => PortState::Closed,
                _ => expected(letter, t),
            };
            m.insert((a, Protocol::Tcp, p), s);
        }
        for &p in udp {
            let s = match g.port(Proto::Udp, a, p) {
                PortTruth::Open => PortState::Open,
                PortTruth::Closed => PortState::Closed,
                other => panic!("{a} udp {p}: the lab says {other:?}"),
            };
            m.insert((a, Protocol::Udp, p), s);
        }
    }
    m
}

/// `prtip scan ARGS 2001:db8:100::/124` in the lab; every row of its log.
fn prtip_v6(c: &LabConfig, args: &[&str]) -> States {
    let home = tempfile::tempdir().unwrap();
    let mut all = vec![
        "scan",
        "--wait",
        "500ms",
        "--max-retries",
        "1",
        "--seed",
        "9",
    ];
    all.extend_from_slice(args);
    all.push("2001:db8:100::/124");
    let out = scan_cmd(home.path(), &c.scan_ns, &all).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = prtip_store::LogReader::open(&scan_dir(home.path(), 1)).unwrap();
    prtip_store::sorted_rows(&r)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            ((row.addr.ip(), row.proto, row.port), row.state)
        })
        .collect()
}

#[test]
fn ipv6_syn_flag_and_udp_scans_over_packet_and_xdp_equal_ground_truth() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab();
    let c = lab.config().clone();
    let iface = c.scan_if.clone();
    let packet = ["--backend", "packet"];
    let xdp = ["--xdp", iface.as_str()];
    // -sS over AF_XDP (the filter takes IPv6 replies), with -6 as nmap spells it.
    for backend in [&packet[..], &xdp[..]] {
        let mut a = vec!["-6", "-sS", "-p", "22,80,443"];
        a.extend_from_slice(backend);
        assert_eq!(
            prtip_v6(&c, &a),
            v6_truth(&c, 'S', &[22, 80, 443], &[]),
            "{a:?}"
        );
    }
    // A flag scan over IPv6 (TcpFlagsV6), checked against nmap -6 too.
    let want = v6_truth(&c, 'F', &[22, 80, 443], &[]);
    let oracle: States = nmap_states(
        &c.scan_ns,
        &["-6", "-sF", "-T5", "-p", "22,80,443", "2001:db8:100::/124"],
    )
    .into_iter()
    .map(|((a, p), (s, _))| {
        let s = match s.as_str() {
            "open|filtered" => PortState::OpenFiltered,
            "closed" => PortState::Closed,
            other => panic!("nmap -6 -sF: {other}"),
        };
        ((a, Protocol::Tcp, p), s)
    })
    .collect();
    assert_eq!(oracle, want, "nmap -6 -sF disagrees with the ground truth");
    for backend in [&packet[..], &xdp[..]] {
        let mut a = vec!["-sF", "-p", "22,80,443"];
        a.extend_from_slice(backend);
        assert_eq!(prtip_v6(&c, &a), want, "{a:?}");
    }
    // -sS -sU over IPv6 (UdpV6: ICMPv6 port unreachable → closed), both backends.
    let want = v6_truth(&c, 'S', &[22, 53], &[22, 53]);
    for backend in [&packet[..], &xdp[..]] {
        let mut a = vec!["-sSU", "-p", "22,53"];
        a.extend_from_slice(backend);
        assert_eq!(prtip_v6(&c, &a), want, "{a:?}");
    }
    // -sU alone over IPv6 (sockets).
    assert_eq!(
        prtip_v6(&c, &["-sU", "-p", "22,53"]),
        v6_truth(&c, 'S', &[], &[22, 53])
    );
}
