//! `-sV` in the project's lab: connect to every open port of two lab addresses from
//! inside the scanner namespace and check the detected service name, product and
//! version against what the lab runs (its port table, `prtip_lab::services`),
//! including the TLS certificate subject on 443 and the MySQL/PostgreSQL greetings.

mod common;

use prtip_engine::connect::grab::{self, GrabOptions, OpenPorts};
use prtip_engine::connect::{self, ConnectOptions, Job};
use prtip_lab::services::{tcp_service, TLS_CERT_SUBJECT};
use prtip_lab::Proto;
use prtip_services::{DetectOptions, ProbeDb};
use prtip_store::event::{Event, PortState, Service};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[test]
fn detected_services_match_what_the_lab_runs() {
    if !common::netns_tests_enabled() {
        return;
    }
    let mut cfg = common::lab_config("sv");
    cfg.tcp_ports.extend([3306, 5432]);
    let lab = common::lab_with(cfg);
    let truth = lab.config().ground_truth();
    let open_ports: Vec<u16> = lab.config().tcp_ports.clone();
    let mut ports = open_ports.clone();
    ports.extend([23, 3389, 9200]); // closed: RST
    let addrs = [Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 7, 200)];
    let targets: Vec<SocketAddr> = addrs
        .iter()
        .flat_map(|a| ports.iter().map(move |p| SocketAddr::from((*a, *p))))
        .collect();

    let events: Vec<Event> = lab
        .in_scan_ns(move || {
            let mut log: Vec<Event> = Vec::new();
            let open = {
                let mut tee = OpenPorts::new(&mut log);
                let mut jobs = targets.iter().enumerate().map(|(i, a)| Job {
                    position: i as u64,
                    addr: *a,
                });
                connect::scan(
                    &mut jobs,
                    &ConnectOptions::default(),
                    &mut tee,
                    &AtomicBool::new(false),
                )
                .unwrap();
                tee.take_sorted()
            };
            let opts = GrabOptions {
                detect: DetectOptions {
                    null_wait: Some(Duration::from_millis(1500)),
                    probe_wait: Some(Duration::from_millis(2000)),
                    ..Default::default()
                },
                ..Default::default()
            };
            grab::detect(
                &mut open.into_iter(),
                &ProbeDb::builtin(),
                &opts,
                &mut log,
                &AtomicBool::new(false),
            )
            .unwrap();
            log
        })
        .unwrap();

    // port states: exactly the ground truth
    let states: BTreeMap<(Ipv4Addr, u16), PortState> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reply(r) => Some(((r.addr.v4().unwrap(), r.port), r.state)),
            _ => None,
        })
        .collect();
    assert_eq!(states.len(), addrs.len() * ports.len());
    for ((a, p), s) in &states {
        let want = if truth.is_open(Proto::Tcp, *a, *p) {
            PortState::Open
        } else {
            PortState::Closed
        };
        assert_eq!(*s, want, "{a}:{p}");
    }

    // one Service per open port, naming what the lab runs
    let services: BTreeMap<(Ipv4Addr, u16), Service> = events
        .iter()
        .filter_map(|e| match e {
            Event::Service(s) => Some(((s.addr.v4().unwrap(), s.port), s.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(services.len(), addrs.len() * open_ports.len());
    for a in addrs {
        for &p in &open_ports {
            let s = &services[&(a, p)];
            let want = tcp_service(p).expect("the lab's table knows its open ports");
            assert_eq!(s.name, want.name, "{a}:{p}");
            if p == 443 {
                // TLS: the certificate subject, not a product
                assert!(
                    s.extra.contains(&format!("subject: {TLS_CERT_SUBJECT}")),
                    "{}",
                    s.extra
                );
                assert!(s.extra.starts_with("TLSv1.2"), "{}", s.extra);
                assert_eq!(s.confidence, 0.8);
            } else {
                assert_eq!(
                    (s.product.as_str(), s.version.as_str()),
                    (want.product, want.version),
                    "{a}:{p}"
                );
                let conf = if want.version.is_empty() { 0.9 } else { 1.0 };
                assert_eq!(s.confidence, conf, "{a}:{p}");
            }
        }
    }
    // the examples of the issue, spelled out
    let at = |p: u16| &services[&(addrs[0], p)];
    assert_eq!(
        (
            at(22).name.as_str(),
            at(22).product.as_str(),
            at(22).version.as_str()
        ),
        ("ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3")
    );
    assert_eq!(
        (at(80).product.as_str(), at(80).version.as_str()),
        ("nginx", "1.22.1")
    );
    assert_eq!(
        (at(25).name.as_str(), at(25).product.as_str()),
        ("smtp", "Postfix smtpd")
    );
    assert_eq!(
        (at(6379).name.as_str(), at(6379).version.as_str()),
        ("redis", "7.0.15")
    );
    assert_eq!(
        (
            at(3306).name.as_str(),
            at(3306).product.as_str(),
            at(3306).version.as_str()
        ),
        ("mysql", "MySQL", "8.0.36")
    );
    assert_eq!(
        (at(5432).name.as_str(), at(5432).product.as_str()),
        ("postgresql", "PostgreSQL DB")
    );
    // banners: the passive reads of the servers that speak first
    let banner = |p: u16| {
        events.iter().find_map(|e| match e {
            Event::Banner(b)
                if b.port == p && b.addr.v4() == Some(addrs[0]) && b.probe == "NULL" =>
            {
                Some(b.bytes.clone())
            }
            _ => None,
        })
    };
    assert_eq!(
        banner(22).unwrap(),
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
    );
    assert_eq!(banner(21).unwrap(), b"220 (vsFTPd 3.0.3)\r\n");
    assert!(banner(80).is_none(), "HTTP does not speak first");
}
