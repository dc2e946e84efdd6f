//! The io_uring connect scan against listeners on 127.0.0.1: open, closed and
//! unanswered (a listener whose accept queue is full drops SYNs) ports give exactly
//! the right Reply events, retries happen, checkpoints never skip a port, the stop
//! flag stops early with a resumable position, and the scan works without privileges.

mod common;

use prtip_engine::connect::{self, ConnectOptions, Job};
use prtip_store::event::{Event, PortState, Reason};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A listener with a zero backlog whose queue is already full: further SYNs are dropped.
fn full_listener() -> (TcpListener, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: re-listen the bound socket with backlog 0 (fd owned by `l`).
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let filler = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    (l, filler)
}

fn replies(events: &[Event]) -> Vec<(u16, PortState, Reason)> {
    let mut v: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reply(r) => Some((r.port, r.state, r.reason)),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[test]
fn open_closed_and_filtered_on_loopback() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed_port = free_port();
    let (full, _filler) = full_listener();
    let full_port = full.local_addr().unwrap().port();
    let ports = [open_port, closed_port, full_port];
    let mut jobs = ports.iter().enumerate().map(|(i, &p)| Job {
        position: i as u64,
        addr: SocketAddr::from(([127, 0, 0, 1], p)),
    });
    let opts = ConnectOptions {
        timeout: Duration::from_millis(300),
        max_retries: 2,
        ..Default::default()
    };
    let mut events: Vec<Event> = Vec::new();
    let report = connect::scan(&mut jobs, &opts, &mut events, &AtomicBool::new(false)).unwrap();
    let mut want = vec![
        (open_port, PortState::Open, Reason::Connected),
        (closed_port, PortState::Closed, Reason::ConnRefused),
        (full_port, PortState::Filtered, Reason::NoResponse),
    ];
    want.sort();
    assert_eq!(replies(&events), want);
    // 3 first attempts + 2 retries of the unanswered port
    assert_eq!(report.counters.sent, 5);
    assert_eq!(
        (
            report.counters.open,
            report.counters.closed,
            report.filtered
        ),
        (1, 1, 1)
    );
    assert_eq!(report.next_position, 3);
    assert!(!report.stopped);
    assert!(report.budget.sockets >= 3);
}

#[test]
fn many_ports_in_flight_and_checkpoints_are_watermarks() {
    // 2000 closed ports and a few open ones, 256 in flight: every port answered once
    let listeners: Vec<TcpListener> = (0..5)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let open: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let mut ports: Vec<u16> = (20000..22000).filter(|p| !open.contains(p)).collect();
    ports.extend(&open);
    let n = ports.len() as u64;
    let mut jobs = ports.iter().enumerate().map(|(i, &p)| Job {
        position: i as u64,
        addr: SocketAddr::from(([127, 0, 0, 1], p)),
    });
    let opts = ConnectOptions {
        timeout: Duration::from_secs(2),
        max_inflight: 256,
        checkpoint_every_probes: 100,
        ..Default::default()
    };
    let mut events: Vec<Event> = Vec::new();
    let report = connect::scan(&mut jobs, &opts, &mut events, &AtomicBool::new(false)).unwrap();
    let r = replies(&events);
    assert_eq!(r.len() as u64, n);
    let open_found: Vec<u16> = r
        .iter()
        .filter(|x| x.1 == PortState::Open)
        .map(|x| x.0)
        .collect();
    let mut want = open.clone();
    want.sort();
    // ports in 20000..22000 that something else on this machine listens on are open too
    assert!(want.iter().all(|p| open_found.contains(p)));
    assert!(report.peak_inflight > 1 && report.peak_inflight <= 256);
    // every checkpoint's position: all ports below it were already reported
    let mut seen = std::collections::HashSet::new();
    let mut last = 0;
    for e in &events {
        match e {
            Event::Reply(rep) => {
                let pos = ports.iter().position(|&p| p == rep.port).unwrap() as u64;
                seen.insert(pos);
            }
            Event::Checkpoint(c) => {
                assert!(c.next_index >= last, "checkpoints never go back");
                last = c.next_index;
                assert!((0..c.next_index).all(|p| seen.contains(&p)));
            }
            _ => {}
        }
    }
    assert!(last > 0, "at least one checkpoint was written");
}

#[test]
fn stop_flag_ends_early_with_a_resumable_position() {
    let ports: Vec<u16> = (23000..24000).collect();
    let stop = AtomicBool::new(true); // stopped before it starts: nothing is sent
    let mut jobs = ports.iter().enumerate().map(|(i, &p)| Job {
        position: i as u64,
        addr: SocketAddr::from(([127, 0, 0, 1], p)),
    });
    let mut events: Vec<Event> = Vec::new();
    let report = connect::scan(&mut jobs, &ConnectOptions::default(), &mut events, &stop).unwrap();
    assert!(report.stopped);
    assert_eq!(report.counters.sent, 0);
    assert_eq!(report.next_position, 0);
    assert!(events.is_empty());
}

/// Runs the loopback scan as user `nobody` with no capabilities: the test binary
/// re-executes itself under setpriv and the child checks its own credentials.
#[test]
fn works_without_privileges() {
    if std::env::var("PRTIP_UNPRIV_CHILD").is_ok() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid_line.split_whitespace().skip(1).all(|u| u == "65534"),
            "{uid_line}"
        );
        let cap_eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
        assert!(cap_eff.ends_with("0000000000000000"), "{cap_eff}");
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let open_port = open.local_addr().unwrap().port();
        let closed_port = free_port();
        let mut jobs = [open_port, closed_port]
            .into_iter()
            .enumerate()
            .map(|(i, p)| Job {
                position: i as u64,
                addr: SocketAddr::from(([127, 0, 0, 1], p)),
            });
        let mut events: Vec<Event> = Vec::new();
        connect::scan(
            &mut jobs,
            &ConnectOptions::default(),
            &mut events,
            &AtomicBool::new(false),
        )
        .unwrap();
        let mut want = vec![
            (open_port, PortState::Open, Reason::Connected),
            (closed_port, PortState::Closed, Reason::ConnRefused),
        ];
        want.sort();
        assert_eq!(replies(&events), want);
        println!("UNPRIV-CHILD-OK");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // already unprivileged: the other tests in this file prove it works
        return;
    }
    let stdout = common::rerun_this_test(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ],
        "works_without_privileges",
        ("PRTIP_UNPRIV_CHILD", "1"),
    );
    assert!(stdout.contains("UNPRIV-CHILD-OK"), "child failed: {stdout}");
}

/// With a small RLIMIT_NOFILE that cannot be raised (hard = soft = 128), the budget
/// shrinks to what is free and the scan still reports every port: the child runs under
/// `prlimit --nofile=128:128`.
#[test]
fn adapts_to_a_small_descriptor_limit() {
    if std::env::var("PRTIP_NOFILE_CHILD").is_ok() {
        let ports: Vec<u16> = (24000..24600).collect();
        let mut jobs = ports.iter().enumerate().map(|(i, &p)| Job {
            position: i as u64,
            addr: SocketAddr::from(([127, 0, 0, 1], p)),
        });
        let mut events: Vec<Event> = Vec::new();
        let report = connect::scan(
            &mut jobs,
            &ConnectOptions::default(),
            &mut events,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(report.budget.hard, 128);
        assert!(report.budget.sockets < 128, "{:?}", report.budget);
        assert!(report.peak_inflight <= report.budget.sockets);
        assert_eq!(replies(&events).len(), ports.len());
        println!(
            "NOFILE-CHILD-OK sockets={} peak={}",
            report.budget.sockets, report.peak_inflight
        );
        return;
    }
    let stdout = common::rerun_this_test(
        &["prlimit", "--nofile=128:128"],
        "adapts_to_a_small_descriptor_limit",
        ("PRTIP_NOFILE_CHILD", "1"),
    );
    assert!(stdout.contains("NOFILE-CHILD-OK"), "child failed: {stdout}");
}

/// IPv6 targets go through the same loop (sockaddr_in6): open and closed on ::1.
#[test]
fn ipv6_loopback() {
    let Ok(open) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    };
    let open_port = open.local_addr().unwrap().port();
    let closed_port = TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut jobs = [open_port, closed_port]
        .into_iter()
        .enumerate()
        .map(|(i, p)| Job {
            position: i as u64,
            addr: SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), p),
        });
    let mut events: Vec<Event> = Vec::new();
    connect::scan(
        &mut jobs,
        &ConnectOptions::default(),
        &mut events,
        &AtomicBool::new(false),
    )
    .unwrap();
    let mut want = vec![
        (open_port, PortState::Open, Reason::Connected),
        (closed_port, PortState::Closed, Reason::ConnRefused),
    ];
    want.sort();
    assert_eq!(replies(&events), want);
    let Event::Reply(r) = &events[0] else {
        panic!()
    };
    assert!(r.addr.ip().is_ipv6());
}
