//! `-sT` in the project's lab, from inside the scanner namespace: a /22 × 12 ports
//! walked by the engine's permutation finds exactly the lab's ground truth; the three
//! shards of a /24 together equal the unsharded scan with no overlap; and a scan run
//! as `nobody` with no capabilities (setpriv inside the scanner namespace) finds the
//! same as root.

mod common;

use prtip_engine::connect::run;
use prtip_engine::connect::{self, ConnectOptions, Job};
use prtip_engine::scan::{RunOptions, ScanControl, ScanOutcome, ScanPlan};
use prtip_lab::{GroundTruth, Proto};
use prtip_services::ProbeDb;
use prtip_store::event::{BackendKind, Event, PortState, ScanSpec, ScanType};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;

const PORTS: &str = "21,22,23,25,80,81,110,143,443,3389,6379,8080";

fn spec(targets: &str, shard: (u32, u32)) -> ScanSpec {
    ScanSpec {
        targets: vec![targets.into()],
        ports: PORTS.into(),
        scan_type: ScanType::Connect,
        timing: 4,
        seed: 0x5eed,
        shard_index: shard.0,
        shard_count: shard.1,
        backend: BackendKind::Connect,
        max_retries: 1,
        wait_ms: 2000,
        ..ScanSpec::default()
    }
}

type States = BTreeMap<(Ipv4Addr, u16), PortState>;

fn states(events: &[Event]) -> (States, usize) {
    let mut n = 0;
    let m = events
        .iter()
        .filter_map(|e| match e {
            Event::Reply(r) => {
                n += 1;
                Some(((r.addr.v4().unwrap(), r.port), r.state))
            }
            _ => None,
        })
        .collect();
    (m, n)
}

fn check_truth(truth: &GroundTruth, st: &States) {
    for ((a, p), s) in st {
        let want = if truth.is_open(Proto::Tcp, *a, *p) {
            PortState::Open
        } else {
            PortState::Closed
        };
        assert_eq!(*s, want, "{a}:{p}");
    }
}

fn run_plan(lab: &prtip_lab::LabGuard, s: ScanSpec) -> Vec<Event> {
    lab.in_scan_ns(move || {
        let plan = ScanPlan::new(&s).unwrap();
        let mut events: Vec<Event> = Vec::new();
        let out = run::run(
            &plan,
            &ProbeDb::builtin(),
            &mut events,
            &ScanControl::new(),
            RunOptions::default(),
        )
        .unwrap();
        assert!(matches!(out, ScanOutcome::Finished { .. }), "{out:?}");
        events
    })
    .unwrap()
}

#[test]
fn connect_scan_finds_exactly_the_ground_truth() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("ct");
    let truth = lab.config().ground_truth();
    let events = run_plan(&lab, spec("198.19.4.0/22", (0, 1)));
    let (st, n) = states(&events);
    assert_eq!(st.len(), 1024 * 12);
    assert_eq!(n, st.len(), "one Reply per port, no duplicates");
    check_truth(&truth, &st);
    let open = st.values().filter(|s| **s == PortState::Open).count();
    assert_eq!(open, 1024 * 9);
    let Some(Event::Finished(f)) = events.last() else {
        panic!("last event is not Finished")
    };
    assert_eq!((f.counters.open, f.counters.closed), (1024 * 9, 1024 * 3));
}

#[test]
fn shards_partition_the_scan() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("cs");
    let (whole, _) = states(&run_plan(&lab, spec("198.19.9.0/24", (0, 1))));
    let mut union = States::new();
    for i in 0..3 {
        let (part, n) = states(&run_plan(&lab, spec("198.19.9.0/24", (i, 3))));
        assert_eq!(part.len(), n);
        for (k, v) in part {
            assert!(union.insert(k, v).is_none(), "{k:?} scanned by two shards");
        }
    }
    assert_eq!(union, whole);
    assert_eq!(whole.len(), 256 * 12);
}

/// The scan as `nobody` without capabilities, inside the scanner namespace: the test
/// binary re-executes itself through `ip netns exec NS setpriv ...`.
#[test]
fn connect_scan_needs_no_privilege() {
    if let Ok(targets) = std::env::var("PRTIP_CT_CHILD") {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid.split_whitespace().skip(1).all(|u| u == "65534"),
            "{uid}"
        );
        let cap = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
        assert!(cap.ends_with("0000000000000000"), "{cap}");
        let addrs: Vec<SocketAddr> = targets.split(',').map(|s| s.parse().unwrap()).collect();
        let mut jobs = addrs.iter().enumerate().map(|(i, a)| Job {
            position: i as u64,
            addr: *a,
        });
        let mut events: Vec<Event> = Vec::new();
        connect::scan(
            &mut jobs,
            &ConnectOptions::default(),
            &mut events,
            &AtomicBool::new(false),
        )
        .unwrap();
        for (k, v) in states(&events).0 {
            println!("RESULT {}:{} {}", k.0, k.1, v.as_str());
        }
        return;
    }
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("cu");
    let truth = lab.config().ground_truth();
    let addrs = [Ipv4Addr::new(198, 19, 0, 9), Ipv4Addr::new(198, 19, 200, 1)];
    let ports: Vec<u16> = PORTS.split(',').map(|p| p.parse().unwrap()).collect();
    let list: Vec<String> = addrs
        .iter()
        .flat_map(|a| ports.iter().map(move |p| format!("{a}:{p}")))
        .collect();
    let stdout = common::rerun_this_test(
        &[
            "ip",
            "netns",
            "exec",
            &lab.config().scan_ns,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ],
        "connect_scan_needs_no_privilege",
        ("PRTIP_CT_CHILD", &list.join(",")),
    );
    let got: BTreeMap<String, String> = stdout
        .lines()
        // the harness may print "test ... " on the same line as the first result
        .filter_map(|l| l.find("RESULT ").map(|i| &l[i + 7..]))
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(got.len(), list.len());
    for a in addrs {
        for &p in &ports {
            let want = if truth.is_open(Proto::Tcp, a, p) {
                "open"
            } else {
                "closed"
            };
            assert_eq!(got[&format!("{a}:{p}")], want, "{a}:{p}");
        }
    }
}
