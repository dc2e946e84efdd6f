//! A whole `-sT` scan from a ScanSpec on 127.0.0.1 through `connect::run::run`: the
//! event sequence (ScanStarted, Replies, Service, Checkpoint, Finished), pause in the
//! middle and resume from the Paused position covering every port exactly, and `-sU`.

use prtip_engine::connect::run;
use prtip_engine::scan::{RunOptions, ScanControl, ScanOutcome, ScanPlan};
use prtip_services::ProbeDb;
use prtip_store::event::{
    BackendKind, Checkpoint, Event, EventSink, PortState, ScanSpec, ScanType, SinkError,
    SocketSettings,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::thread;

fn spec(ports: &str, scan_type: ScanType, sv: bool) -> ScanSpec {
    ScanSpec {
        targets: vec!["127.0.0.1".into()],
        resolved: vec![],
        excludes: vec![],
        ports: ports.into(),
        scan_type,
        service_detection: sv,
        rate_mpps: 0,
        max_rate_mpps: 0,
        retry_gap_ms: None,
        timing: 4,
        seed: 7,
        shard_index: 0,
        shard_count: 1,
        backend: BackendKind::Connect,
        interface: None,
        source: None,
        router_mac: None,
        max_retries: 1,
        wait_ms: 500,
        checkpoint_every_probes: 0,
        checkpoint_every_ms: 0,
        outputs: vec![],
        filter: None,
        service_probes: None,
        walk_from: 0,
        probe: Default::default(),
        merged_from: Vec::new(),
        discovery: String::new(),
        sockets: SocketSettings {
            version_wait_ms: Some(300),
            ..SocketSettings::default()
        },
        xdp: Default::default(),
    }
}

fn ssh_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
            thread::sleep(std::time::Duration::from_millis(500));
        }
    });
    port
}

fn states(events: &[Event]) -> BTreeMap<u16, PortState> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reply(r) => Some((r.port, r.state)),
            _ => None,
        })
        .collect()
}

#[test]
fn connect_scan_with_service_detection_writes_the_whole_story() {
    let ssh = ssh_server();
    let closed: Vec<u16> = (31000..31010).filter(|&p| p != ssh).collect();
    let ports = format!(
        "{ssh},{}",
        closed
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let plan = ScanPlan::new(&spec(&ports, ScanType::Connect, true)).unwrap();
    let db = ProbeDb::builtin();
    let control = ScanControl::new();
    let mut events: Vec<Event> = Vec::new();
    let out = run::run(&plan, &db, &mut events, &control, RunOptions::default()).unwrap();
    let ScanOutcome::Finished { counters } = out else {
        panic!("not finished: {out:?}")
    };
    assert_eq!((counters.open, counters.closed), (1, closed.len() as u64));
    assert!(
        matches!(events[0], Event::ScanStarted(ref s) if s.total_probes == 1 + closed.len() as u64)
    );
    assert!(matches!(events.last(), Some(Event::Finished(_))));
    let st = states(&events);
    assert_eq!(st[&ssh], PortState::Open);
    assert!(closed.iter().all(|p| st[p] == PortState::Closed));
    let svc: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Service(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(svc.len(), 1);
    assert_eq!(
        (svc[0].port, svc[0].name.as_str(), svc[0].version.as_str()),
        (ssh, "ssh", "9.2p1 Debian 2+deb12u3")
    );
    // services come after the port states and before Finished
    let last_reply = events
        .iter()
        .rposition(|e| matches!(e, Event::Reply(_)))
        .unwrap();
    let service_at = events
        .iter()
        .position(|e| matches!(e, Event::Service(_)))
        .unwrap();
    assert!(service_at > last_reply);
    let last_ck = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Checkpoint(c) => Some(c.next_index),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_ck, plan.walk.span());
    assert_eq!(
        control
            .progress
            .position
            .load(std::sync::atomic::Ordering::Relaxed),
        plan.walk.span()
    );
}

/// Pauses the scan after `after` replies.
struct PauseAfter<'a> {
    events: Vec<Event>,
    after: usize,
    control: &'a ScanControl,
}
impl EventSink for PauseAfter<'_> {
    fn push(&mut self, e: Event) -> Result<(), SinkError> {
        self.events.push(e);
        if states(&self.events).len() == self.after {
            self.control.request_pause("test");
        }
        Ok(())
    }
    fn checkpoint(&mut self, c: Checkpoint) -> Result<(), SinkError> {
        self.events.push(Event::Checkpoint(c));
        Ok(())
    }
}

#[test]
fn pause_then_resume_covers_every_port_once() {
    // Below the ephemeral range (32768+): a connect to a port there can meet its own
    // source port and self-connect (TCP simultaneous open), which would read as open.
    let ports = "24000-24999";
    let mut s = spec(ports, ScanType::Connect, false);
    s.sockets.max_parallelism = Some(16);
    let plan = ScanPlan::new(&s).unwrap();
    let db = ProbeDb::builtin();
    let control = ScanControl::new();
    let mut first = PauseAfter {
        events: Vec::new(),
        after: 300,
        control: &control,
    };
    let out = run::run(&plan, &db, &mut first, &control, RunOptions::default()).unwrap();
    let ScanOutcome::Paused {
        next_index,
        total,
        counters,
    } = out
    else {
        panic!("not paused: {out:?}")
    };
    assert_eq!(total, 1000);
    assert!((300..1000).contains(&next_index), "{next_index}");
    assert!(
        matches!(first.events.last(), Some(Event::Paused(p)) if p.next_index == next_index && p.reason == "test")
    );
    // every position below next_index has its reply in the first part
    let done_first = states(&first.events);
    for p in 0..next_index {
        let (v, _) = plan.walk.at(p);
        let (_, _, port) = plan.probe_of(v);
        assert!(
            done_first.contains_key(&port),
            "position {p} (port {port}) skipped"
        );
    }
    let control2 = ScanControl::new();
    let mut second: Vec<Event> = Vec::new();
    let out = run::run(
        &plan,
        &db,
        &mut second,
        &control2,
        RunOptions {
            resume_from: Some(next_index),
            counters,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(matches!(out, ScanOutcome::Finished { .. }));
    assert!(matches!(second[0], Event::Resumed(ref r) if r.from_index == next_index));
    let mut all = done_first;
    all.extend(states(&second));
    assert_eq!(all.len(), 1000);
    assert!(all.values().all(|s| *s == PortState::Closed));
    // the resumed part probes at most what was in flight at the pause again
    let again = states(&second)
        .keys()
        .filter(|p| states(&first.events).contains_key(p))
        .count();
    assert!(again <= 16, "{again} ports probed twice");
}

#[test]
fn udp_plan_runs_with_detection() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let open = server.local_addr().unwrap().port();
    let server = Arc::new(server);
    let s2 = server.clone();
    thread::spawn(move || {
        let mut b = [0u8; 512];
        while let Ok((n, peer)) = s2.recv_from(&mut b) {
            let _ = s2.send_to(&b[..n], peer);
        }
    });
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plan = ScanPlan::new(&spec(&format!("{open},{closed}"), ScanType::Udp, true)).unwrap();
    let mut events: Vec<Event> = Vec::new();
    let out = run::run(
        &plan,
        &ProbeDb::builtin(),
        &mut events,
        &ScanControl::new(),
        RunOptions::default(),
    )
    .unwrap();
    assert!(matches!(out, ScanOutcome::Finished { .. }));
    let st = states(&events);
    assert_eq!(
        (st[&open], st[&closed]),
        (PortState::Open, PortState::Closed)
    );
    // the echo answered the empty datagram with an empty one: open, nothing to show or name
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::Banner(_) | Event::Service(_))));
}
