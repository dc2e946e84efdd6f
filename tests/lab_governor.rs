//! The rate governor in the lab: `prtip scan --rate 1M` through the XDP SYN
//! policer on the target's veth (the scanner is not told its rate: 2k, 5k, 10k
//! and 20k SYN/s) finds every open and closed port of the ground truth and
//! learns a rate within 1.5x of the policer's; without a policer it records no
//! loss and learns its ceiling; `--fixed-rate` does not adapt; the uplink going down mid-scan holds the
//! scan (Paused "uplink: ...") and it continues to the same exact result when
//! the link comes back. Every scan runs inside the lab's scanner namespace.
//! Needs root.

mod common;
mod lab_support;

use common::*;
use lab_support::*;
use prtip_lab::{Ipv4Net, LabConfig, Side};
use prtip_store::{EventRef, LogReader};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OPEN: [u16; 2] = [80, 443];
const PORTS: &str = "22,80,443";

fn policed_lab(prefix: &str, net: &str) -> prtip_lab::LabGuard {
    lab_with(LabConfig {
        tcp_ports: OPEN.to_vec(),
        udp_ports: vec![],
        queues: 1,
        backlog: 4096,
        target_net: net.parse::<Ipv4Net>().unwrap(),
        ..lab_config(prefix)
    })
}

/// Every (address, port) the ground truth has open among `PORTS` of the lab's net.
fn truth(c: &LabConfig) -> BTreeSet<(IpAddr, u16)> {
    let g = c.ground_truth();
    let mut t = BTreeSet::new();
    for a in c.target_net.iter() {
        for p in [22, 80, 443] {
            if g.is_open(prtip_lab::Proto::Tcp, a, p) {
                t.insert((IpAddr::V4(a), p));
            }
        }
    }
    t
}

/// Every (address, port) the ground truth has closed among `PORTS` (it RSTs).
fn closed_truth(c: &LabConfig) -> BTreeSet<(IpAddr, u16)> {
    let g = c.ground_truth();
    let mut t = BTreeSet::new();
    for a in c.target_net.iter() {
        for p in [22, 80, 443] {
            if !g.is_open(prtip_lab::Proto::Tcp, a, p) {
                t.insert((IpAddr::V4(a), p));
            }
        }
    }
    t
}

/// Open and closed ports, Paused reasons and Governor events (reason, rate in probes/s) of
/// the log in `dir`.
struct LogView {
    open: BTreeSet<(IpAddr, u16)>,
    closed: BTreeSet<(IpAddr, u16)>,
    paused: Vec<String>,
    governor: Vec<(String, u64)>,
    /// Per-network decisions: (reason, the network's rate in probes/s).
    nets: Vec<(String, u64)>,
}

fn read_log(dir: &Path) -> LogView {
    let mut v = LogView {
        open: BTreeSet::new(),
        closed: BTreeSet::new(),
        paused: Vec::new(),
        governor: Vec::new(),
        nets: Vec::new(),
    };
    for e in LogReader::open(dir).unwrap().iter() {
        match e.unwrap() {
            EventRef::Reply(r)
                if prtip_store::event::PortState::from(&r.state)
                    == prtip_store::event::PortState::Open =>
            {
                v.open.insert((r.addr.ip(), r.port.to_native()));
            }
            EventRef::Reply(r)
                if prtip_store::event::PortState::from(&r.state)
                    == prtip_store::event::PortState::Closed =>
            {
                v.closed.insert((r.addr.ip(), r.port.to_native()));
            }
            EventRef::Paused(p) => v.paused.push(p.reason.as_str().to_string()),
            EventRef::Governor(g) if g.net.is_some() => v.nets.push((
                prtip_store::event::GovernorReason::from(&g.reason)
                    .name()
                    .to_string(),
                g.net_rate_mpps.to_native() / 1000,
            )),
            EventRef::Governor(g) if g.net.is_none() => v.governor.push((
                prtip_store::event::GovernorReason::from(&g.reason)
                    .name()
                    .to_string(),
                g.rate_mpps.to_native() / 1000,
            )),
            _ => {}
        }
    }
    v
}

fn scan(ns: &str, home: &Path, net: &str, rate: &str, extra: &[&str]) -> Command {
    let mut c = prtip_in_ns(ns);
    c.args([
        "scan", net, "-p", PORTS, "--rate", rate, "--wait", "500ms", "--quiet",
    ])
    .args(extra)
    .env("PRTIP_HOME", home)
    .env_remove("PRTIP_HISTORY")
    .stdout(Stdio::null());
    c
}

fn run_policed(policer: u64, net: &str) {
    let lab = policed_lab(&format!("gv{}", policer / 1000), net);
    let c = lab.config().clone();
    let pol = attach_policer(&lab, policer, policer / 100);
    let home = tempfile::tempdir().unwrap();
    let out = scan(&c.scan_ns, home.path(), net, "1M", &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = read_log(&home.path().join("scans").join("1"));
    let want = truth(&c);
    let missing: Vec<_> = want.difference(&v.open).take(5).collect();
    assert_eq!(
        v.open.len(),
        want.len(),
        "policer {policer}/s: found {} of {} open ports (missing e.g. {missing:?}); {:?}",
        v.open.len(),
        want.len(),
        v.governor
    );
    assert_eq!(v.open, want);
    assert_eq!(
        v.closed,
        closed_truth(&c),
        "policer {policer}/s: closed ports"
    );
    let s = pol.stats().unwrap();
    assert!(
        s.syn_dropped > 0,
        "the policer dropped nothing: {s:?} {:?}",
        v.governor
    );
    // The rate it learned: the last one it recorded.
    let (reason, learned) = v.governor.last().cloned().expect("Governor events");
    assert_eq!(reason, "learned", "{:?}", v.governor);
    assert!(
        learned * 3 >= policer * 2 && learned * 2 <= policer * 3,
        "policer {policer}/s, learned {learned}/s: {:?}; networks: {:?}",
        v.governor,
        v.nets
    );
    assert!(
        v.governor.iter().any(|(r, _)| r == "loss"),
        "{:?}",
        v.governor
    );
}

// The policers' rates are below what the debug binary sends on a loaded
// 2-core CI machine (its engine and store are built with opt-level 2 even in
// debug, the workspace Cargo.toml: ~50 000/s at a load of 10), so each of them
// is really in the way; the release build against faster policers is in
// benches/README.md (benches/policed.sh). Each network is sized to about
// 2.5 s of probes at its policer's rate: time for the governor to climb back
// after a cut that undershot (a scan of a second can end on the undershoot).

#[test]
fn a_scan_at_1m_through_a_2k_policer_finds_everything_and_learns_its_rate() {
    if !netns_tests_enabled() {
        return;
    }
    run_policed(2_000, "198.19.0.0/21");
}

#[test]
fn a_scan_at_1m_through_a_5k_policer_finds_everything_and_learns_its_rate() {
    if !netns_tests_enabled() {
        return;
    }
    run_policed(5_000, "198.19.0.0/20");
}

#[test]
fn a_scan_at_1m_through_a_10k_policer_finds_everything_and_learns_its_rate() {
    if !netns_tests_enabled() {
        return;
    }
    run_policed(10_000, "198.19.0.0/19");
}

#[test]
fn a_scan_at_1m_through_a_20k_policer_finds_everything_and_learns_its_rate() {
    if !netns_tests_enabled() {
        return;
    }
    run_policed(20_000, "198.19.0.0/18");
}

/// Without a policer the governor finds no loss: it climbs to the ceiling
/// (the rate it learned is the ceiling) and the result is the ground truth.
#[test]
fn without_a_policer_the_governor_records_no_loss_and_learns_the_ceiling() {
    if !netns_tests_enabled() {
        return;
    }
    let net = "198.19.0.0/20";
    let lab = policed_lab("gvfree", net);
    let c = lab.config().clone();
    let home = tempfile::tempdir().unwrap();
    let out = scan(&c.scan_ns, home.path(), net, "200k", &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = read_log(&home.path().join("scans").join("1"));
    assert_eq!(v.open, truth(&c));
    assert_eq!(v.closed, closed_truth(&c));
    assert!(
        !v.governor.iter().any(|(r, _)| r == "loss"),
        "{:?}",
        v.governor
    );
    assert_eq!(
        v.governor.last(),
        Some(&("learned".to_string(), 200_000)),
        "{:?}",
        v.governor
    );
}

#[test]
fn a_fixed_rate_is_not_governed_and_loses_ports_to_the_policer() {
    if !netns_tests_enabled() {
        return;
    }
    let net = "198.19.0.0/22";
    let lab = policed_lab("gvfix", net);
    let c = lab.config().clone();
    let _pol = attach_policer(&lab, 2_000, 20);
    let home = tempfile::tempdir().unwrap();
    let out = scan(
        &c.scan_ns,
        home.path(),
        net,
        "1M",
        &["--fixed-rate", "--max-retries", "0"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = read_log(&home.path().join("scans").join("1"));
    assert!(v.open.len() < truth(&c).len(), "{} open", v.open.len());
    assert_eq!(v.governor, vec![("start".to_string(), 1_000_000)]);
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn link_down_and_up_mid_scan(prefix: &str, side: Side, next_hop: bool) {
    let net = "198.19.0.0/22";
    let lab = policed_lab(prefix, net);
    let c = lab.config().clone();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("scans").join("1");
    // 3072 probes at 500/s: six seconds to take the path away mid-scan.
    let child = scan(&c.scan_ns, home.path(), net, "500", &["--max-retries", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    wait_until("the first open port in the log", || {
        dir.exists() && LogReader::open(&dir).is_ok_and(|_| !read_log(&dir).open.is_empty())
    });
    if next_hop {
        prtip_lab::set_next_hop(&c, false).unwrap();
    } else {
        prtip_lab::set_link(&c, side, false).unwrap();
    }
    wait_until("Paused (uplink) in the log", || {
        let v = read_log(&dir);
        if child.0.try_wait().ok().flatten().is_some() {
            panic!(
                "the scan ended before holding: {} open, paused {:?}, governor {:?}",
                v.open.len(),
                v.paused,
                v.governor
            );
        }
        v.paused.iter().any(|r| r.starts_with("uplink"))
    });
    let during = read_log(&dir).open.len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        read_log(&dir).open.len(),
        during,
        "nothing is sent while held"
    );
    if next_hop {
        prtip_lab::set_next_hop(&c, true).unwrap();
    } else {
        prtip_lab::set_link(&c, side, true).unwrap();
    }
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "{err}");
    let v = read_log(&dir);
    assert_eq!(v.open, truth(&c), "the result equals the ground truth");
    assert_eq!(v.closed, closed_truth(&c), "closed ports too");
    assert_eq!(v.paused.len(), 1, "{:?}", v.paused);
    let reasons: Vec<&str> = v.governor.iter().map(|(r, _)| r.as_str()).collect();
    assert!(
        reasons.contains(&"uplink-down") && reasons.contains(&"uplink-up"),
        "{reasons:?}"
    );
    v.paused[0].clone_into(&mut err);
    assert!(err.starts_with("uplink: "), "{err}");
}

#[test]
fn the_scanner_link_goes_down_mid_scan_the_scan_holds_and_finishes_exactly() {
    if !netns_tests_enabled() {
        return;
    }
    link_down_and_up_mid_scan("gvls", Side::Scanner, false);
}

#[test]
fn the_target_end_goes_down_mid_scan_the_scan_holds_and_finishes_exactly() {
    if !netns_tests_enabled() {
        return;
    }
    link_down_and_up_mid_scan("gvlt", Side::Target, false);
}

#[test]
fn the_next_hop_stops_answering_arp_mid_scan_the_scan_holds_and_finishes_exactly() {
    if !netns_tests_enabled() {
        return;
    }
    link_down_and_up_mid_scan("gvnh", Side::Scanner, true);
}
