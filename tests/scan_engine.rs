//! The SYN engine end to end in a lab of namespaces: ground truth, shards, seed
//! order, excludes seen from the target side, silence and ICMP → filtered, and no
//! packet outside the lab. Needs root (namespaces, AF_PACKET).

mod scan_support;

use prtip_engine::route;
use prtip_engine::scan::{self, RunOptions, ScanControl, ScanOutcome, ScanPlan};
use prtip_store::event::{Addr, Event, PortState, Protocol, Reason, ScanSpec};
use scan_support::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

const PORTS: [u16; 4] = [22, 80, 443, 8080];
const OPEN: [u16; 2] = [80, 8080];

fn spec(targets: &[&str], excludes: &[&str], ports: &str, seed: u64) -> ScanSpec {
    ScanSpec {
        targets: targets.iter().map(|s| s.to_string()).collect(),
        excludes: excludes.iter().map(|s| s.to_string()).collect(),
        ports: ports.to_string(),
        rate_mpps: 20_000_000,
        timing: 4,
        seed,
        max_retries: 1,
        wait_ms: 1000,
        checkpoint_every_ms: 200,
        ..ScanSpec::default()
    }
}

/// Discover the route from inside the scanner namespace, record it in the spec, scan.
fn run_in_lab(lab: &ScanLab, mut spec: ScanSpec) -> Vec<Event> {
    lab.in_scan(move || {
        let plan0 = ScanPlan::new(&spec).expect("plan");
        let first = plan0.targets.get_v4(0);
        let r = route::discover(first.into(), None, None, None).expect("route in the lab");
        assert_eq!(
            r.dst_mac.to_string(),
            "02:70:72:74:00:02",
            "gateway MAC by ARP"
        );
        spec.interface = Some(r.iface.clone());
        spec.source = Some(Addr::from(r.src_ip));
        spec.router_mac = Some(r.dst_mac.0);
        let plan = ScanPlan::new(&spec).expect("plan");
        let io =
            scan::open_packet_backend(&r, &|_| None, &plan.ports.udp).expect("AF_PACKET backend");
        let mut events: Vec<Event> = Vec::new();
        let control = ScanControl::new();
        let out = scan::run(&plan, io, &mut events, &control, RunOptions::default()).expect("scan");
        assert!(matches!(out, ScanOutcome::Finished { .. }), "{out:?}");
        events
    })
}

#[test]
fn slash20_four_ports_equals_ground_truth_and_nothing_leaves_the_lab() {
    let lab = ScanLab::up(&OPEN);
    let root = Capture::root_lab_traffic();
    let events = run_in_lab(&lab, spec(&["198.19.16.0/20"], &[], "22,80,443,8080", 7));
    let leaked = root.finish();
    assert_eq!(
        leaked,
        vec![],
        "frames with lab addresses seen in the root namespace"
    );
    let got = results(&events);
    let want = ground_truth(cidr(Ipv4Addr::new(198, 19, 16, 0), 20), &PORTS, &OPEN);
    assert_eq!(got.len(), 16384);
    let open = got.values().filter(|s| **s == PortState::Open).count();
    let closed = got.values().filter(|s| **s == PortState::Closed).count();
    assert_eq!((open, closed), (8192, 8192));
    assert!(got == want, "results differ from ground truth");
    let Event::ScanStarted(s) = &events[0] else {
        panic!("first event is {:?}", events[0])
    };
    assert_eq!((s.total_probes, s.total_targets), (16384 * 2, 4096));
    assert!(s.spec.source.is_some());
    assert!(
        matches!(events.last(), Some(Event::Finished(f)) if f.counters.open == 8192 && f.counters.closed == 8192)
    );
    // Every reply came in pass 0 here, so exactly one probe per port went out.
    let Some(Event::Finished(f)) = events.last() else {
        unreachable!()
    };
    assert_eq!(f.counters.sent, 16384);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Checkpoint(c) if c.next_index == 32768)));
    assert!(events.iter().any(|e| matches!(e, Event::Sample(_))));
}

#[test]
fn shards_partition_the_scan() {
    let lab = ScanLab::up(&OPEN);
    let full = results(&run_in_lab(
        &lab,
        spec(&["198.19.4.0/22"], &[], "22,80,443,8080", 99),
    ));
    assert_eq!(full.len(), 4096);
    let mut union = std::collections::BTreeMap::new();
    for i in 0..3 {
        let mut s = spec(&["198.19.4.0/22"], &[], "22,80,443,8080", 99);
        s.shard_index = i;
        s.shard_count = 3;
        let part = results(&run_in_lab(&lab, s));
        assert!(
            part.len() > 1300 && part.len() < 1431,
            "shard {i} has {}",
            part.len()
        );
        for (k, v) in part {
            assert!(union.insert(k, v).is_none(), "{k:?} probed by two shards");
        }
    }
    assert!(
        union == full,
        "union of shards differs from the unsharded scan"
    );
}

#[test]
fn same_seed_same_probe_order_on_the_wire() {
    let lab = ScanLab::up(&OPEN);
    let order = |seed| {
        let cap = lab.capture_syns();
        let ev = run_in_lab(&lab, spec(&["198.19.1.0/24"], &[], "80,443", seed));
        assert_eq!(results(&ev).len(), 512);
        cap.finish()
    };
    let a = order(5);
    let b = order(5);
    let c = order(6);
    assert_eq!(a.len(), 512);
    assert_eq!(a, b, "same seed, same order");
    assert_ne!(a, c, "another seed, another order");
    let (sa, sc): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), c.iter().collect());
    assert_eq!(sa, sc, "same probes either way");
}

#[test]
fn excludes_are_never_probed() {
    let lab = ScanLab::up(&OPEN);
    let cap = lab.capture_syns();
    let ev = run_in_lab(
        &lab,
        spec(
            &["198.19.8.0/22"],
            &[
                "198.19.9.0/26",
                "198.19.10.77",
                "198.19.11.250-198.19.11.255",
            ],
            "80",
            3,
        ),
    );
    let seen: BTreeSet<Ipv4Addr> = cap.finish().into_iter().map(|(a, _)| a).collect();
    let excluded: BTreeSet<Ipv4Addr> = cidr(Ipv4Addr::new(198, 19, 9, 0), 26)
        .chain([Ipv4Addr::new(198, 19, 10, 77)])
        .chain((250..=255).map(|o| Ipv4Addr::new(198, 19, 11, o)))
        .collect();
    let want: BTreeSet<Ipv4Addr> = cidr(Ipv4Addr::new(198, 19, 8, 0), 22)
        .filter(|a| !excluded.contains(a))
        .collect();
    assert_eq!(excluded.len(), 71);
    assert!(
        seen.is_disjoint(&excluded),
        "excluded addresses were probed: {:?}",
        seen.intersection(&excluded).collect::<Vec<_>>()
    );
    assert_eq!(seen, want, "every other address was probed");
    assert_eq!(results(&ev).len(), 1024 - 71);
}

#[test]
fn silence_and_icmp_unreachable_are_filtered() {
    let lab = ScanLab::up(&OPEN);
    // 198.20.0.0/29 goes to the target, which does not forward: silence.
    // 198.20.1.0/30 hits an `unreachable` route there: ICMP host unreachable. (The
    // kernel rate-limits these route errors per destination, burst 5: hence 4 targets.)
    let ipn = |ns: &str, args: &[&str]| {
        let st = Command::new("ip")
            .arg("-n")
            .arg(ns)
            .args(args)
            .status()
            .unwrap();
        assert!(st.success());
    };
    ipn(
        &lab.scan_ns,
        &["route", "add", "198.20.0.0/16", "via", "198.18.0.2"],
    );
    ipn(
        &lab.tgt_ns,
        &["route", "add", "unreachable", "198.20.1.0/24"],
    );
    let sysctl = |kv: &str| {
        let st = Command::new("ip")
            .args(["netns", "exec", &lab.tgt_ns, "sysctl", "-qw", kv])
            .status()
            .unwrap();
        assert!(st.success());
    };
    sysctl("net.ipv4.ip_forward=1");
    sysctl("net.ipv4.icmp_ratelimit=0");
    ipn(&lab.tgt_ns, &["route", "add", "blackhole", "198.20.0.0/24"]);
    let mut s = spec(
        &["198.20.0.0/29", "198.20.1.0/30", "198.19.0.1"],
        &[],
        "80",
        1,
    );
    s.max_retries = 2;
    s.wait_ms = 500;
    let ev = run_in_lab(&lab, s);
    let mut silent = 0;
    let mut unreach = 0;
    for e in &ev {
        if let Event::Reply(r) = e {
            let a = r.addr.v4().unwrap();
            match a.octets()[2] {
                0 if a.octets()[1] == 20 => panic!("silence written for {a}: {r:?}"),
                1 if a.octets()[1] == 20 => {
                    assert_eq!(
                        (r.state, r.reason, r.icmp_code),
                        (PortState::Filtered, Reason::IcmpUnreachable, 1),
                        "{a}"
                    );
                    unreach += 1;
                }
                _ => assert_eq!(
                    (a, r.proto, r.port, r.state),
                    (
                        Ipv4Addr::new(198, 19, 0, 1),
                        Protocol::Tcp,
                        80,
                        PortState::Open
                    )
                ),
            }
        }
    }
    // Silence is not written; the store projects it from the spec and checkpoints.
    let mut fold = prtip_store::Results::new();
    for e in &ev {
        fold.apply_event(e);
    }
    for r in fold.rows() {
        if r.reason == Reason::NoResponse {
            let a = r.addr.v4().unwrap();
            assert_eq!((a.octets()[1], a.octets()[2]), (20, 0), "{a}");
            assert_eq!(r.state, PortState::Filtered, "{a}");
            silent += 1;
        }
    }
    assert_eq!((silent, unreach), (8, 4));
    // Silent ports got the first pass and one retry (2 × 8): the retry found
    // nothing, so by nmap's rule there is no second one although --max-retries
    // allows it; answered ports only the first (4 + 1).
    let Some(Event::Finished(f)) = ev.last() else {
        panic!()
    };
    assert_eq!(f.counters.sent, 2 * 8 + 4 + 1);
}
