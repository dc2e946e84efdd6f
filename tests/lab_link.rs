//! Link control for uplink-failure tests: either veth end down and up again,
//! and a next hop that stops answering ARP/NDP, checked with connections from
//! the scanner namespace over both families. Needs root.

mod common;
mod lab_support;

use common::*;
use lab_support::*;
use prtip_lab::{tcp_connect, LabConfig, Side, TcpProbe};
use std::net::SocketAddr;
use std::time::Duration;

const T: Duration = Duration::from_secs(2);

fn both(c: &LabConfig) -> [SocketAddr; 2] {
    [
        SocketAddr::new(c.target_net.nth(1).unwrap().into(), 22),
        SocketAddr::new(c.target_net6.unwrap().nth(1).unwrap().into(), 22),
    ]
}

fn assert_answers(c: &LabConfig, when: &str) {
    for a in both(c) {
        assert_eq!(
            tcp_connect(&c.scan_ns, a, T).unwrap(),
            TcpProbe::Open { banner: vec![] },
            "{a} {when}"
        );
    }
}

fn neigh(c: &LabConfig) -> String {
    prtip_lab::netns::ip(&["-n", &c.scan_ns, "neigh", "show", "dev", &c.scan_if]).unwrap()
}

#[test]
fn either_end_goes_down_and_comes_back_with_its_routes_and_neighbours() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab_with(LabConfig {
        tcp_ports: vec![22],
        udp_ports: vec![],
        queues: 1,
        ..lab_config("lnk")
    });
    let c = lab.config().clone();
    assert_answers(&c, "before");
    prtip_lab::set_link(&c, Side::Scanner, false).unwrap();
    assert!(!prtip_lab::link_is_up(&c, Side::Scanner).unwrap());
    for a in both(&c) {
        match tcp_connect(&c.scan_ns, a, T).unwrap() {
            TcpProbe::Error(e) => assert!(e.contains("unreachable"), "{a}: {e}"),
            other => panic!("{a} with the scanner's link down: {other:?}"),
        }
    }
    prtip_lab::set_link(&c, Side::Scanner, true).unwrap();
    assert!(prtip_lab::link_is_up(&c, Side::Scanner).unwrap());
    assert_answers(&c, "after the scanner's link came back");
    assert!(neigh(&c).contains("PERMANENT"), "{}", neigh(&c));

    prtip_lab::set_link(&c, Side::Target, false).unwrap();
    assert!(
        prtip_lab::link_is_up(&c, Side::Scanner).unwrap(),
        "only the far end is down"
    );
    for a in both(&c) {
        assert_eq!(
            tcp_connect(&c.scan_ns, a, T).unwrap(),
            TcpProbe::TimedOut,
            "{a}"
        );
    }
    prtip_lab::set_link(&c, Side::Target, true).unwrap();
    assert_answers(&c, "after the target's link came back");
    assert!(lab.config().ground_truth().is_open(
        prtip_lab::Proto::Tcp,
        c.target_net.nth(1).unwrap(),
        22
    ));
}

#[test]
fn a_silent_next_hop_leaves_the_scanner_without_a_neighbour_until_it_answers_again() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab_with(LabConfig {
        tcp_ports: vec![22],
        udp_ports: vec![],
        queues: 1,
        ..lab_config("nh")
    });
    let c = lab.config().clone();
    assert!(prtip_lab::next_hop_answering(&c).unwrap());
    prtip_lab::set_next_hop(&c, false).unwrap();
    assert!(!prtip_lab::next_hop_answering(&c).unwrap());
    for a in both(&c) {
        let got = tcp_connect(&c.scan_ns, a, T).unwrap();
        assert!(
            matches!(got, TcpProbe::TimedOut | TcpProbe::Error(_)),
            "{a}: {got:?}"
        );
    }
    let n = neigh(&c);
    assert!(!n.contains("lladdr"), "no neighbour was resolved: {n}");
    assert!(
        n.contains(&c.tgt_ip.to_string()) && n.contains(&c.tgt_ip6.to_string()),
        "{n}"
    );
    prtip_lab::set_next_hop(&c, true).unwrap();
    assert_answers(&c, "after the next hop answers again");
    let n = neigh(&c);
    assert_eq!(n.matches("PERMANENT").count(), 2, "{n}");
}

#[test]
fn cli_link_and_next_hop_commands() {
    if !netns_tests_enabled() {
        return;
    }
    let l = CliLab::new("lcli");
    let out = l
        .cmd(
            "up",
            &["--tcp-ports", "22", "--udp-ports", "none", "--queues", "1"],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = l.config();
    let run = |sub: &str, args: &[&str]| {
        let out = l.cmd(sub, args).output().unwrap();
        assert!(
            out.status.success(),
            "{sub} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run("link", &["down", "--side", "target"]).contains("target link"));
    assert!(!prtip_lab::link_is_up(&c, Side::Target).unwrap());
    run("link", &["up", "--side", "target"]);
    assert_answers(&c, "after `lab link up`");
    assert!(run("next-hop", &["silent"]).contains("no longer answers"));
    assert!(!prtip_lab::next_hop_answering(&c).unwrap());
    run("next-hop", &["answer"]);
    assert_answers(&c, "after `lab next-hop answer`");
    let bad = l.cmd("link", &["sideways"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let bad = l
        .cmd("link", &["down", "--side", "middle"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("'middle'"));
}
