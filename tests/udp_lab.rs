//! `-sU` in the project's lab, from inside the scanner namespace: DNS on 53 and NTP on
//! 123 are open and named with their versions, the echo on 7 is open, ports without a
//! responder are closed (ICMP port unreachable); and many closed ports of one host all
//! come out closed although the target's kernel rate-limits its ICMP errors (about one
//! per second after a burst of six), because the scan paces and retries that host.

mod common;

use prtip_engine::connect::Job;
use prtip_engine::udp::{self, UdpOptions};
use prtip_lab::services::udp_service;
use prtip_lab::udp::BIND_VERSION;
use prtip_services::ProbeDb;
use prtip_store::event::{Event, PortState, Reason, Service};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn scan(
    lab: &prtip_lab::LabGuard,
    targets: Vec<SocketAddr>,
    opts: UdpOptions,
) -> (Vec<Event>, udp::UdpReport) {
    lab.in_scan_ns(move || {
        let mut jobs = targets.iter().enumerate().map(|(i, a)| Job {
            position: i as u64,
            addr: *a,
        });
        let mut events: Vec<Event> = Vec::new();
        let r = udp::scan(
            &mut jobs,
            &ProbeDb::builtin(),
            &opts,
            &mut events,
            &AtomicBool::new(false),
        )
        .unwrap();
        (events, r)
    })
    .unwrap()
}

fn states(events: &[Event]) -> BTreeMap<u16, (PortState, Reason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reply(r) => Some((r.port, (r.state, r.reason))),
            _ => None,
        })
        .collect()
}

#[test]
fn udp_scan_names_dns_and_ntp_and_sees_closed_ports() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("ud");
    let host = Ipv4Addr::new(198, 19, 3, 3);
    let ports = [7u16, 53, 123, 161, 1900];
    let targets = ports.iter().map(|p| SocketAddr::from((host, *p))).collect();
    let opts = UdpOptions {
        service_detection: true,
        ..Default::default()
    };
    let (events, report) = scan(&lab, targets, opts);
    let st = states(&events);
    assert_eq!(st[&7], (PortState::Open, Reason::UdpResponse));
    assert_eq!(st[&53], (PortState::Open, Reason::UdpResponse));
    assert_eq!(st[&123], (PortState::Open, Reason::UdpResponse));
    assert_eq!(st[&161], (PortState::Closed, Reason::PortUnreachable));
    assert_eq!(st[&1900], (PortState::Closed, Reason::PortUnreachable));
    assert_eq!((report.counters.open, report.counters.closed), (3, 2));
    let svc: BTreeMap<u16, Service> = events
        .iter()
        .filter_map(|e| match e {
            Event::Service(s) => Some((s.port, s.clone())),
            _ => None,
        })
        .collect();
    for p in [53u16, 123] {
        let want = udp_service(p).unwrap();
        let s = &svc[&p];
        assert_eq!(
            (s.name.as_str(), s.product.as_str(), s.version.as_str()),
            (want.name, want.product, want.version),
            "{p}/udp"
        );
        assert_eq!(s.confidence, 1.0);
    }
    assert_eq!(svc[&53].version, BIND_VERSION);
    assert_eq!(svc[&123].extra, "stratum 2");
    // the echo got no payload of ours (no probe for port 7): open, but not named
    assert!(!svc.contains_key(&7));
}

#[test]
fn icmp_rate_limiting_is_paced_and_retried_not_misreported() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("ur");
    // the lab turns the limiter off; put back Linux's default (1 per second per peer,
    // burst 6) in this lab's target namespace
    let out = lab
        .tgt_command("sysctl")
        .args(["-w", "net.ipv4.icmp_ratelimit=1000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = Ipv4Addr::new(198, 19, 8, 8);
    let ports: Vec<u16> = (40000..40014).collect();
    let targets = ports.iter().map(|p| SocketAddr::from((host, *p))).collect();
    let opts = UdpOptions {
        timeout: Duration::from_millis(800),
        max_retries: 2,
        ..Default::default()
    };
    let (events, report) = scan(&lab, targets, opts);
    let st = states(&events);
    assert_eq!(st.len(), ports.len());
    for p in &ports {
        assert_eq!(
            st[p],
            (PortState::Closed, Reason::PortUnreachable),
            "{p}/udp"
        );
    }
    // 14 closed ports at once exceed the target's burst of 6 ICMP errors: some ports
    // only answered on a retry, which is how the limiter was noticed
    assert!(report.rate_limited > 0, "{report:?}");
    assert!(report.max_gap_ms >= 250, "{report:?}");
}
