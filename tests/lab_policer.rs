//! The lab's SYN policer (bpf/policer.bpf.c): raw SYN bursts from the scanner
//! namespace, and the policer's counters against the token bucket and against
//! what the target's TCP stack received. Bounds come from packet counts and the
//! program's own kernel timestamps, never from wall-clock timings. Needs root.

mod common;
mod lab_support;

use common::*;
use lab_support::*;
use prtip_lab::LabConfig;
use prtip_xdp::policer::PolicerConfig;
use std::net::IpAddr;
use std::time::Duration;

/// A closed port: the target answers each SYN that passes with one RST, and the
/// scanner's kernel ignores RSTs, so no other TCP segment crosses the link.
const CLOSED: u16 = 9;

fn quiet_lab(prefix: &str) -> prtip_lab::LabGuard {
    lab_with(LabConfig {
        tcp_ports: vec![22],
        udp_ports: vec![],
        queues: 1,
        ..lab_config(prefix)
    })
}

#[test]
fn with_rate_zero_exactly_the_burst_passes_in_both_families_and_the_rate_changes_at_runtime() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = quiet_lab("pol0");
    let c = lab.config().clone();
    let pol = attach_policer(&lab, 0, 7);
    let before = tcp_counters(&c.tgt_ns);
    let dst4 = target4(&c, 77);
    assert_eq!(send_syns(&c.scan_ns, scan_src4(&c), dst4, CLOSED, 200), 200);
    let s = pol.stats().unwrap();
    assert_eq!((s.syn_passed, s.syn_dropped), (7, 193), "{s:?}");
    assert_eq!((s.passed, s.dropped), (7, 193), "{s:?}");
    // The target's TCP stack saw exactly the SYNs that passed, and reset each.
    let after = tcp_counters(&c.tgt_ns);
    assert!(after.0 - before.0 >= 7, "InSegs");
    assert_eq!(after.1 - before.1, 7, "OutRsts");

    // A new configuration refills the bucket; IPv6 SYNs are policed too.
    let three = PolicerConfig {
        rate: 0,
        burst: 3,
        prefix: None,
    };
    pol.set(three).unwrap();
    let dst6: IpAddr = "2001:db8:100::42".parse().unwrap();
    assert_eq!(send_syns(&c.scan_ns, scan_src6(&c), dst6, CLOSED, 50), 50);
    let s = pol.stats().unwrap();
    assert_eq!(s.generation, 2);
    assert_eq!(s.config, three);
    assert_eq!((s.passed, s.dropped), (3, 47), "{s:?}");
    assert_eq!((s.syn_passed, s.syn_dropped), (10, 240), "{s:?}");
    let after6 = tcp_counters(&c.tgt_ns);
    assert_eq!(after6.1 - after.1, 3, "OutRsts over IPv6");

    // Segments that are not SYNs are never policed.
    let other_before = s.other;
    let n = send_segments(
        &c.scan_ns,
        scan_src4(&c),
        dst4,
        CLOSED,
        40,
        ACK,
        Duration::ZERO,
    );
    assert_eq!(n, 40);
    let s = pol.stats().unwrap();
    assert_eq!((s.passed, s.dropped), (3, 47), "ACKs took no tokens: {s:?}");
    assert!(s.other >= other_before + 40, "{s:?}");
}

#[test]
fn a_burst_above_the_rate_is_cut_to_what_the_bucket_earned() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = quiet_lab("polr");
    let c = lab.config().clone();
    let (rate, burst) = (2000u64, 20u64);
    let pol = attach_policer(&lab, rate, burst);
    let before = tcp_counters(&c.tgt_ns);
    let n = 6000;
    assert_eq!(
        send_syns(&c.scan_ns, scan_src4(&c), target4(&c, 5), CLOSED, n),
        n
    );
    let s = pol.stats().unwrap();
    assert_eq!(
        s.passed + s.dropped,
        u64::from(n),
        "every SYN met the policer: {s:?}"
    );
    // The books balance exactly: passed tokens plus what is left is what the
    // bucket earned (burst + rate x the span between first and last SYN, less
    // refill lost to a full bucket).
    let earned = s.earned().expect("no gap of over 8 s");
    assert_eq!(
        u128::from(s.passed) * 1_000_000_000 + u128::from(s.tokens_left),
        earned,
        "{s:?}"
    );
    // Hence the drop fraction is fixed by the counts: passed lies within one
    // SYN of earned / 10^9, and never above burst + rate x span.
    let span_ns = u128::from(s.last_ns - s.first_ns);
    let ceiling = u128::from(burst) + u128::from(rate) * span_ns / 1_000_000_000 + 1;
    assert!(u128::from(s.passed) <= ceiling, "{s:?}: ceiling {ceiling}");
    assert!(u128::from(s.passed) + 1 >= earned / 1_000_000_000, "{s:?}");
    assert!(s.passed >= burst && s.dropped > 0, "{s:?}");
    // What the policer passed is exactly what reached the target's TCP stack.
    let after = tcp_counters(&c.tgt_ns);
    // (InSegs may include a late segment of the lab's self-check connection.)
    assert!(after.0 - before.0 >= s.passed, "InSegs");
    assert_eq!(after.1 - before.1, s.passed, "OutRsts");
}

#[test]
fn syns_below_the_rate_all_pass() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = quiet_lab("polb");
    let c = lab.config().clone();
    // Bucket of 2 at 1000/s; one SYN every 5 ms (at most 200/s: a sleep is never
    // shorter than asked, so the sender can only be slower) never finds it empty.
    let pol = attach_policer(&lab, 1000, 2);
    let n = send_segments(
        &c.scan_ns,
        scan_src6(&c),
        "2001:db8:100::9".parse().unwrap(),
        CLOSED,
        100,
        SYN,
        Duration::from_millis(5),
    );
    assert_eq!(n, 100);
    let s = pol.stats().unwrap();
    assert_eq!((s.passed, s.dropped), (100, 0), "{s:?}");
}

/// A policer with a network polices only the SYNs to that network: SYNs to
/// other addresses of the lab (and of the other family) pass untouched and
/// take no token; inside it, exactly the burst passes at rate 0.
#[test]
fn a_policer_with_a_network_drops_only_inside_it_in_both_families() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = quiet_lab("poln");
    let c = lab.config().clone();
    // 198.19.0.0/16's third /24 (198.19.2.0/24).
    let (slow, fast) = (target4(&c, 2 * 256 + 9), target4(&c, 3 * 256 + 9));
    let edge_in = target4(&c, 2 * 256 + 255);
    let edge_out = target4(&c, 2 * 256 + 256);
    let cfg4 = PolicerConfig {
        rate: 0,
        burst: 5,
        prefix: Some((target4(&c, 2 * 256), 24)),
    };
    let pol = attach_policer_with(&lab, cfg4);
    assert_eq!(pol.stats().unwrap().config, cfg4);
    let before = tcp_counters(&c.tgt_ns);
    let src4 = scan_src4(&c);
    let dst6: IpAddr = "2001:db8:100::42".parse().unwrap();
    assert_eq!(send_syns(&c.scan_ns, src4, fast, CLOSED, 300), 300);
    assert_eq!(send_syns(&c.scan_ns, src4, edge_out, CLOSED, 20), 20);
    assert_eq!(send_syns(&c.scan_ns, scan_src6(&c), dst6, CLOSED, 30), 30);
    let s = pol.stats().unwrap();
    assert_eq!((s.syn_passed, s.syn_dropped), (0, 0), "{s:?}");
    assert_eq!(s.syn_outside, 350, "{s:?}");
    assert!(!s.active, "no SYN met the bucket: {s:?}");
    assert_eq!(send_syns(&c.scan_ns, src4, slow, CLOSED, 100), 100);
    assert_eq!(send_syns(&c.scan_ns, src4, edge_in, CLOSED, 10), 10);
    let s = pol.stats().unwrap();
    assert_eq!((s.passed, s.dropped), (5, 105), "{s:?}");
    assert_eq!((s.syn_passed, s.syn_dropped, s.syn_outside), (5, 105, 350));
    // The target reset every SYN that reached it: all those outside, the burst inside.
    let after = tcp_counters(&c.tgt_ns);
    assert_eq!(after.1 - before.1, 355, "OutRsts");

    // An IPv6 network: IPv4 SYNs are outside it, whatever their address.
    let cfg6 = PolicerConfig {
        rate: 0,
        burst: 2,
        prefix: Some(("2001:db8:100::".parse().unwrap(), 120)),
    };
    pol.set(cfg6).unwrap();
    let out6: IpAddr = "2001:db8:100::142".parse().unwrap();
    assert_eq!(send_syns(&c.scan_ns, scan_src6(&c), out6, CLOSED, 15), 15);
    assert_eq!(send_syns(&c.scan_ns, src4, slow, CLOSED, 25), 25);
    assert_eq!(send_syns(&c.scan_ns, scan_src6(&c), dst6, CLOSED, 12), 12);
    let s = pol.stats().unwrap();
    assert_eq!(s.config, cfg6);
    assert_eq!((s.passed, s.dropped), (2, 10), "{s:?}");
    assert_eq!(s.syn_outside, 350 + 15 + 25, "{s:?}");
    let after6 = tcp_counters(&c.tgt_ns);
    assert_eq!(after6.1 - after.1, 15 + 25 + 2, "OutRsts");
}

#[test]
fn cli_policer_attaches_reports_and_changes_its_rate() {
    if !netns_tests_enabled() {
        return;
    }
    for (args, needle) in [
        (vec!["--policer", "fast"], "'fast'"),
        (vec!["--policer", "10/0"], "burst must be at least 1"),
        (
            vec!["--policer", "10", "--responder", "xdp"],
            "needs --responder kernel",
        ),
        (
            vec!["--policer", "10", "--policer-net", "198.19.2.1/24"],
            "'--policer-net <CIDR>': '198.19.2.1/24': host bits are set",
        ),
        (
            vec!["--policer", "10", "--policer-net", "2001:db8::/129"],
            "--policer-net",
        ),
        (
            vec!["--policer-net", "198.19.2.0/24"],
            "--policer-net 198.19.2.0/24 needs --policer",
        ),
    ] {
        let l = CliLab::new("pbad");
        let out = l.cmd("up", &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!ns_exists(&format!("{}-tgt", l.name)));
    }
    let l = CliLab::new("pcli");
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
                "--policer",
                "0/4",
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
    assert!(text.contains("SYN policer on"), "{text}");
    assert!(text.contains("helper xdp-holder"), "{text}");
    let c = l.config();
    send_syns(&c.scan_ns, scan_src4(&c), target4(&c, 1), CLOSED, 10);
    let json = |l: &CliLab, args: &[&str]| -> serde_json::Value {
        let out = l.cmd("policer", args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = json(&l, &["--json"]);
    assert_eq!(
        (v["syn_passed"].as_u64(), v["syn_dropped"].as_u64()),
        (Some(4), Some(6)),
        "{v}"
    );
    let v = json(&l, &["--set", "0/2", "--json"]);
    assert_eq!(
        (v["rate"].as_u64(), v["burst"].as_u64()),
        (Some(0), Some(2)),
        "{v}"
    );
    assert_eq!(v["generation"], 2, "{v}");
    send_syns(
        &c.scan_ns,
        scan_src6(&c),
        "2001:db8:100::1".parse().unwrap(),
        CLOSED,
        5,
    );
    let v = json(&l, &["--json"]);
    assert_eq!(v["passed_since_change"], 2, "{v}");
    assert_eq!(v["dropped_since_change"], 3, "{v}");
    let st = l.cmd("status", &["--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        v["config"]["policer"],
        serde_json::json!({"rate": 0, "burst": 2}),
        "{v}"
    );
    assert_eq!(v["up"], true, "{v}");
    // Down stops the holder, which detaches the program with its links.
    let down = l.cmd("down", &[]).output().unwrap();
    assert!(down.status.success());
    assert!(!ns_exists(&format!("{}-tgt", l.name)));

    // --policer-net: only that network's SYNs are policed; --set keeps it.
    let l = CliLab::new("pnet");
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
                "--policer",
                "0/3",
                "--policer-net",
                "198.19.2.0/24",
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
    assert!(text.contains("only SYNs to 198.19.2.0/24"), "{text}");
    let c = l.config();
    send_syns(
        &c.scan_ns,
        scan_src4(&c),
        target4(&c, 2 * 256 + 1),
        CLOSED,
        10,
    );
    send_syns(&c.scan_ns, scan_src4(&c), target4(&c, 1), CLOSED, 7);
    let v = json(&l, &["--set", "0/1", "--json"]);
    assert_eq!(v["net"], "198.19.2.0/24", "{v}");
    assert_eq!(
        (v["syn_passed"].as_u64(), v["syn_dropped"].as_u64()),
        (Some(3), Some(7)),
        "{v}"
    );
    assert_eq!(v["syn_outside"], 7, "{v}");
    let st = l.cmd("status", &["--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        v["config"]["policer"],
        serde_json::json!({"rate": 0, "burst": 1, "net": "198.19.2.0/24"}),
        "{v}"
    );
}
