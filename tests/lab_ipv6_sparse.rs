//! The lab's IPv6 target prefix and sparse network, checked against the lab's
//! ground truth with plain sockets and with nmap as the oracle, all from inside
//! the lab's scanner namespace. Needs root and nmap.

mod common;
mod lab_support;

use common::*;
use lab_support::*;
use prtip_lab::{
    tcp_connect, tcp_probe, udp_probe, HostTruth, LabConfig, PortTruth, Proto, Sparse, SparseHosts,
    SparseMode, TcpProbe, UdpProbe,
};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn sa(a: &str, port: u16) -> SocketAddr {
    SocketAddr::new(a.parse().unwrap(), port)
}

/// nmap's state for what the ground truth says a probe gets.
fn nmap_state(t: PortTruth) -> &'static str {
    match t {
        PortTruth::Open => "open",
        PortTruth::Closed => "closed",
        PortTruth::Silent | PortTruth::HostUnreachable => "filtered",
        PortTruth::NoRoute => "no route",
    }
}

#[test]
fn every_address_of_the_ipv6_prefix_answers_like_the_ipv4_network() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab_with(LabConfig {
        tcp_ports: vec![22, 80],
        udp_ports: vec![53],
        queues: 1,
        ..lab_config("six")
    });
    let c = lab.config().clone();
    let net6 = c.target_net6.expect("IPv6 is on by default");
    assert_eq!(net6.to_string(), "2001:db8:100::/116");
    assert_eq!(net6.len(), 4096);
    // No default route in either namespace, for either family.
    for ns in [&c.scan_ns, &c.tgt_ns] {
        assert_eq!(
            prtip_lab::netns::default_routes(ns).unwrap(),
            Vec::<String>::new()
        );
    }
    // First, last and a middle address: open ports greet, others refuse.
    for a in ["2001:db8:100::", "2001:db8:100::7a3", "2001:db8:100::fff"] {
        let p = tcp_probe(&c.scan_ns, sa(a, 22), None, T).unwrap();
        assert!(p.banner_text().starts_with("SSH-2.0-OpenSSH"), "{a}: {p:?}");
        assert_eq!(
            tcp_connect(&c.scan_ns, sa(a, 443), T).unwrap(),
            TcpProbe::Refused
        );
    }
    // Just outside the prefix: the scanner has no route.
    let outside = tcp_connect(&c.scan_ns, sa("2001:db8:100::1000", 22), T).unwrap();
    assert!(matches!(outside, TcpProbe::Error(_)), "{outside:?}");
    let g = c.ground_truth();
    assert_eq!(
        g.host("2001:db8:100::1000".parse().unwrap()),
        HostTruth::NoRoute
    );
    // UDP over IPv6: DNS answers AAAA with the address asked; other ports ICMPv6 unreachable.
    let q = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 28, 0, 1,
    ];
    let a6: Ipv6Addr = "2001:db8:100::abc".parse().unwrap();
    match udp_probe(&c.scan_ns, SocketAddr::new(IpAddr::V6(a6), 53), &q, T).unwrap() {
        UdpProbe::Reply(r) => assert_eq!(&r[r.len() - 16..], &a6.octets()),
        other => panic!("DNS over IPv6: {other:?}"),
    }
    assert_eq!(
        udp_probe(&c.scan_ns, sa("2001:db8:100::abc", 9999), b"x", T).unwrap(),
        UdpProbe::Unreachable
    );
    // nmap -6 over a /120 of the prefix agrees with the ground truth on every port.
    let states = nmap_states(
        &c.scan_ns,
        &["-6", "-sS", "-T5", "-p", "22,80,443", "2001:db8:100::/120"],
    );
    assert_eq!(states.len(), 256 * 3, "{states:?}");
    for ((addr, port), (state, _)) in &states {
        assert_eq!(
            state,
            nmap_state(g.port(Proto::Tcp, *addr, *port)),
            "{addr} port {port}"
        );
    }
    let open = states.values().filter(|(s, _)| s == "open").count();
    assert_eq!(open, 512);
}

fn sparse_lab(prefix: &str, mode: SparseMode) -> prtip_lab::LabGuard {
    lab_with(LabConfig {
        tcp_ports: vec![22],
        udp_ports: vec![],
        queues: 1,
        sparse: Some(Sparse {
            mode,
            ..Sparse::default()
        }),
        ..lab_config(prefix)
    })
}

#[test]
fn only_every_fourth_address_of_a_silent_sparse_network_exists() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = sparse_lab("sps", SparseMode::Silent);
    let c = lab.config().clone();
    let g = c.ground_truth();
    let live = g.sparse_live();
    assert_eq!(live.len(), 128, "64 IPv4 + 64 IPv6");
    assert_eq!(live[0], "198.18.1.1".parse::<IpAddr>().unwrap());
    assert_eq!(live[64], "2001:db8:200::1".parse::<IpAddr>().unwrap());
    let args = [
        "-sS",
        "-T5",
        "--max-retries",
        "1",
        "--max-rtt-timeout",
        "300ms",
        "-p",
        "22,443",
        "--reason",
    ];
    let mut v4 = args.to_vec();
    v4.push("198.18.1.0/27");
    let mut v6 = args.to_vec();
    v6.extend(["-6", "2001:db8:200::/123"]);
    for states in [nmap_states(&c.scan_ns, &v4), nmap_states(&c.scan_ns, &v6)] {
        assert_eq!(states.len(), 64, "32 addresses x 2 ports: {states:?}");
        for ((addr, port), (state, reason)) in &states {
            let truth = g.port(Proto::Tcp, *addr, *port);
            assert_eq!(state, nmap_state(truth), "{addr} port {port} ({reason})");
            if truth == PortTruth::Silent {
                assert_eq!(reason, "no-response", "{addr} port {port}");
            }
        }
        let up = states.values().filter(|(s, _)| s != "filtered").count();
        assert_eq!(up, 16, "8 live addresses x 2 ports");
    }
}

#[test]
fn absent_addresses_of_an_unreachable_sparse_network_answer_host_unreachable() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = sparse_lab("spu", SparseMode::Unreachable);
    let c = lab.config().clone();
    let g = c.ground_truth();
    assert_eq!(
        g.host("198.18.1.2".parse().unwrap()),
        HostTruth::Unreachable
    );
    let v4 = nmap_states(
        &c.scan_ns,
        &["-sS", "-T5", "--reason", "-p", "22,443", "198.18.1.0/28"],
    );
    let v6 = nmap_states(
        &c.scan_ns,
        &[
            "-6",
            "-sS",
            "-T5",
            "--reason",
            "-p",
            "22,443",
            "2001:db8:200::/124",
        ],
    );
    // IPv6: every probe of an absent address gets ICMPv6 "no route".
    assert_eq!(v6.len(), 32);
    for ((addr, port), (state, reason)) in &v6 {
        let truth = g.port(Proto::Tcp, *addr, *port);
        assert_eq!(state, nmap_state(truth), "{addr} port {port}");
        if truth == PortTruth::HostUnreachable {
            assert_eq!(reason, "no-route", "{addr} port {port}");
        }
    }
    // IPv4: the kernel rate-limits host-unreachable errors per peer with the
    // global net.ipv4.route.error_cost/error_burst (a burst of 5, then 1/s), so
    // only some probes of absent addresses get one; none is ever answered.
    assert_eq!(v4.len(), 32);
    let mut unreach = 0;
    for ((addr, port), (state, reason)) in &v4 {
        let truth = g.port(Proto::Tcp, *addr, *port);
        assert_eq!(state, nmap_state(truth), "{addr} port {port}");
        if truth == PortTruth::HostUnreachable {
            assert!(
                reason == "host-unreach" || reason == "no-response",
                "{addr} port {port}: {reason}"
            );
            unreach += usize::from(reason == "host-unreach");
        }
    }
    assert!(unreach >= 1, "{v4:?}");
}

#[test]
fn a_listed_set_of_live_hosts_is_exactly_what_answers() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab_with(LabConfig {
        tcp_ports: vec![80],
        udp_ports: vec![],
        queues: 1,
        sparse: Some(Sparse {
            net4: None,
            net6: Some("2001:db8:204::/122".parse().unwrap()),
            hosts: "3,10-12".parse::<SparseHosts>().unwrap(),
            mode: SparseMode::Unreachable,
        }),
        ..lab_config("spl")
    });
    let c = lab.config().clone();
    let g = c.ground_truth();
    let expect: Vec<IpAddr> = [
        "2001:db8:204::3",
        "2001:db8:204::a",
        "2001:db8:204::b",
        "2001:db8:204::c",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    assert_eq!(g.sparse_live(), expect);
    // nmap over the whole /122: the four listed addresses answer (80 open, 81
    // closed), every other one is "filtered" by an ICMPv6 no-route error.
    let states = nmap_states(
        &c.scan_ns,
        &[
            "-6",
            "-sS",
            "-T5",
            "--reason",
            "-p",
            "80,81",
            "2001:db8:204::/122",
        ],
    );
    assert_eq!(states.len(), 128);
    for ((addr, port), (state, reason)) in &states {
        let truth = g.port(Proto::Tcp, *addr, *port);
        assert_eq!(state, nmap_state(truth), "{addr} port {port}");
        match (expect.contains(addr), *port) {
            (true, 80) => assert_eq!(truth, PortTruth::Open),
            (true, _) => assert_eq!(truth, PortTruth::Closed),
            (false, _) => {
                assert_eq!(truth, PortTruth::HostUnreachable);
                assert_eq!(reason, "no-route", "{addr}");
            }
        }
    }
    // A plain connect sees the same: open, or "network unreachable".
    assert_eq!(
        tcp_connect(&c.scan_ns, sa("2001:db8:204::b", 80), T).unwrap(),
        TcpProbe::Open { banner: vec![] }
    );
    let got = tcp_connect(&c.scan_ns, sa("2001:db8:204::d", 80), T).unwrap();
    assert!(
        matches!(got, TcpProbe::Error(ref e) if e.contains("Network is unreachable")),
        "{got:?}"
    );
}

#[test]
fn cli_sparse_and_ipv6_options_reach_the_lab_and_bad_values_exit_2() {
    if !netns_tests_enabled() {
        return;
    }
    for (args, needle) in [
        (
            vec!["--target-net6", "fd00::/116"],
            "outside the documentation prefix",
        ),
        (vec!["--target-net6", "2001:db8::/64"], "too large"),
        (vec!["--sparse-hosts", "every:0"], "every:0"),
        (vec!["--sparse-mode", "quiet"], "'quiet'"),
        (vec!["--sparse-net", "198.19.0.0/24"], "overlaps"),
        (
            vec!["--sparse-net", "none", "--sparse-net6", "none"],
            "both are none",
        ),
    ] {
        let l = CliLab::new("bad6");
        let out = l.cmd("up", &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!ns_exists(&format!("{}-scan", l.name)), "nothing created");
    }
    let l = CliLab::new("cli6");
    let out = l
        .cmd(
            "up",
            &[
                "--tcp-ports",
                "22",
                "--udp-ports",
                "none",
                "--queues",
                "1",
                "--target-net6",
                "2001:db8:abc::/120",
                "--sparse-hosts",
                "every:2",
                "--sparse-net6",
                "none",
            ],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("target prefix 2001:db8:abc::/120 (256 addresses, AnyIP)"),
        "{text}"
    );
    assert!(
        text.contains(
            "sparse: 198.18.1.0/24: hosts every:2 live (128 IPv4, 0 IPv6), the rest silent"
        ),
        "{text}"
    );
    let c = l.config();
    assert_eq!(
        tcp_connect(&c.scan_ns, sa("2001:db8:abc::ff", 22), T).unwrap(),
        TcpProbe::Open { banner: vec![] }
    );
    assert_eq!(
        tcp_connect(&c.scan_ns, sa("198.18.1.3", 22), T).unwrap(),
        TcpProbe::Open { banner: vec![] }
    );
    let st = l.cmd("status", &["--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        v["ground_truth"]["target_net6"], "2001:db8:abc::/120",
        "{v}"
    );
    assert_eq!(v["ground_truth"]["sparse"]["hosts"]["every"], 2, "{v}");
}
