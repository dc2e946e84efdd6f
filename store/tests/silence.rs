//! Silence as a projection over real logs: a silent scan's log holds no event per
//! silent port, yet summaries count them exactly and small scans list them as rows;
//! a log written before (one `no-response` Reply per silent port) reads the same;
//! a paused scan's silence stops at its last checkpoint's finished pass.

use prtip_store::event::*;
use prtip_store::space::permutation::Walk;
use prtip_store::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

const T0: u64 = 1_700_000_000_000_000;
const END: u64 = T0 + 5_000_000;

fn spec(targets: &str, ports: &str, retries: u32) -> ScanSpec {
    ScanSpec {
        targets: vec![targets.into()],
        ports: ports.into(),
        seed: 11,
        max_retries: retries,
        ..ScanSpec::default()
    }
}

fn reply(a: [u8; 4], port: u16, proto: Protocol, state: PortState, reason: Reason) -> Event {
    Event::Reply(Reply {
        addr: Ipv4Addr::from(a).into(),
        port,
        proto,
        state,
        reason,
        ttl: if reason == Reason::NoResponse { 0 } else { 64 },
        icmp_code: 0,
        rtt_us: if reason == Reason::NoResponse { 0 } else { 300 },
        time_us: if reason == Reason::NoResponse {
            END
        } else {
            T0 + 1000
        },
    })
}

/// Write a log: ScanStarted, the events, then (when `end` is `Some`) a checkpoint
/// at that walk position and Finished (or Paused when it is short of the walk).
fn write(dir: &Path, spec: &ScanSpec, total: u64, events: &[Event], end: Option<u64>) {
    let w = LogWriter::create(dir, LogOptions::default()).unwrap();
    let mut sink = w.sink();
    sink.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id: 1,
        time_us: T0,
        spec: spec.clone(),
        versions: Versions {
            prtip: "0.1.0".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec![],
        total_probes: total,
        total_targets: 0,
        pid: 1,
    })))
    .unwrap();
    let cp = |n| Checkpoint {
        next_index: n,
        counters: Counters::default(),
        time_us: END,
    };
    sink.checkpoint(cp(0)).unwrap();
    for e in events {
        sink.push(e.clone()).unwrap();
    }
    if let Some(n) = end {
        sink.checkpoint(cp(n)).unwrap();
        if n >= total {
            sink.push(Event::Finished(Finished {
                time_us: END,
                counters: Counters::default(),
            }))
            .unwrap();
        } else {
            sink.push(Event::Paused(Paused {
                time_us: END,
                next_index: n,
                reason: "test".into(),
            }))
            .unwrap();
        }
    }
    drop(sink);
    w.finish().unwrap();
}

fn rows(dir: &Path, silent_rows: Option<bool>) -> Vec<ResultRow> {
    let r = LogReader::open(dir).unwrap();
    let opts = SortOptions {
        silent_rows,
        ..SortOptions::default()
    };
    sorted_rows_with(&r, &opts)
        .unwrap()
        .map(|x| x.unwrap())
        .collect()
}

fn reply_events(dir: &Path) -> usize {
    let r = LogReader::open(dir).unwrap();
    r.iter()
        .filter(|e| matches!(e, Ok(EventRef::Reply(_))))
        .count()
}

fn answers() -> Vec<Event> {
    vec![
        reply(
            [198, 19, 1, 1],
            22,
            Protocol::Tcp,
            PortState::Open,
            Reason::SynAck,
        ),
        reply(
            [198, 19, 1, 2],
            80,
            Protocol::Tcp,
            PortState::Closed,
            Reason::Reset,
        ),
    ]
}

#[test]
fn a_silent_scan_writes_no_silence_yet_counts_and_lists_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    // 16 hosts × 3 ports = 48 probes; 2 answer.
    let spec = spec("198.19.1.0/28", "22,80,443", 0);
    write(&dir, &spec, 48, &answers(), Some(48));
    assert_eq!(reply_events(&dir), 2, "only the answers are events");
    let s = summarize(&LogReader::open(&dir).unwrap()).unwrap();
    assert_eq!(s.silent, [46, 0]);
    assert_eq!(s.silent_ports(), 46);
    let all = rows(&dir, None);
    assert_eq!(all.len(), 48, "a small scan lists its silent ports");
    let filtered: Vec<_> = all
        .iter()
        .filter(|r| r.state == PortState::Filtered)
        .collect();
    assert_eq!(filtered.len(), 46);
    assert!(filtered
        .iter()
        .all(|r| r.reason == Reason::NoResponse && r.ttl == 0 && r.time_us == END));
    let keys: Vec<_> = all.iter().map(|r| r.key()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted, each once");
    // The in-memory fold (monitor, history) sees the same rows.
    let folded = Results::from_log(&LogReader::open(&dir).unwrap())
        .unwrap()
        .rows();
    assert_eq!(folded, all);
    // Never listed on request: counted only.
    assert_eq!(rows(&dir, Some(false)).len(), 2);
}

#[test]
fn a_log_with_silent_replies_reads_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec("198.19.1.0/28", "22,80,443", 0);
    let new = tmp.path().join("new");
    write(&new, &spec, 48, &answers(), Some(48));
    // The old format: every silent port a `no-response` Reply at the end.
    let mut events = answers();
    for r in rows(&new, None) {
        if r.reason == Reason::NoResponse {
            events.push(reply(
                r.addr.v4().unwrap().octets(),
                r.port,
                r.proto,
                r.state,
                r.reason,
            ));
        }
    }
    let old = tmp.path().join("old");
    write(&old, &spec, 48, &events, Some(48));
    assert_eq!(reply_events(&old), 48);
    assert_eq!(rows(&old, None), rows(&new, None));
    assert_eq!(
        rows(&old, Some(false)),
        rows(&new, None),
        "nothing projected twice"
    );
    let fold = |d: &Path| {
        Results::from_log(&LogReader::open(d).unwrap())
            .unwrap()
            .rows()
    };
    assert_eq!(fold(&old), fold(&new));
    let (so, sn) = (
        summarize(&LogReader::open(&old).unwrap()).unwrap(),
        summarize(&LogReader::open(&new).unwrap()).unwrap(),
    );
    assert_eq!(
        (so.open_ports, so.open_hosts),
        (sn.open_ports, sn.open_hosts)
    );
    assert_eq!(
        so.silent,
        [0, 0],
        "its silent ports are rows, not projected"
    );
}

#[test]
fn a_paused_scan_is_silent_only_where_its_last_pass_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    // One retry: walk = 2 passes × 48.
    let spec = spec("198.19.1.0/28", "22,80,443", 1);
    let walk = Walk::new(48, spec.seed, 0, 1, 2);
    let key = |q: u64| {
        let v = walk.at(q).0;
        (
            198u8,
            19u8,
            1u8,
            (v % 16) as u8,
            [22u16, 80, 443][(v / 16) as usize],
        )
    };
    // Paused in the first pass: nothing is silent yet.
    let first = tmp.path().join("first");
    write(&first, &spec, 96, &answers(), Some(40));
    let s = summarize(&LogReader::open(&first).unwrap()).unwrap();
    assert_eq!(s.status, ScanStatus::Paused);
    assert_eq!(s.silent, [0, 0]);
    assert_eq!(rows(&first, None).len(), 2);
    // Paused 10 positions into the retry pass: those 10 ports are, less answers.
    let second = tmp.path().join("second");
    write(&second, &spec, 96, &answers(), Some(58));
    let want: BTreeSet<_> = (48..58)
        .map(key)
        .filter(|k| !matches!(*k, (_, _, _, 1, 22) | (_, _, _, 2, 80)))
        .collect();
    let s = summarize(&LogReader::open(&second).unwrap()).unwrap();
    assert_eq!(s.silent, [want.len() as u64, 0]);
    let got: BTreeSet<_> = rows(&second, None)
        .into_iter()
        .filter(|r| r.reason == Reason::NoResponse)
        .map(|r| {
            let o = r.addr.v4().unwrap().octets();
            (o[0], o[1], o[2], o[3], r.port)
        })
        .collect();
    assert_eq!(got, want);
    let folded = Results::from_log(&LogReader::open(&second).unwrap()).unwrap();
    assert_eq!(
        folded.len(),
        2 + want.len(),
        "Results projects at the pause"
    );
}

#[test]
fn a_wide_scan_counts_its_silence_without_listing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wide");
    // 65 536 hosts × 2 ports = 131 072 > SILENT_ROWS_MAX; 2 answer.
    let spec = spec("198.19.0.0/16", "22,80", 0);
    write(&dir, &spec, 131_072, &answers(), Some(131_072));
    const { assert!(131_072 > SILENT_ROWS_MAX) };
    let s = summarize(&LogReader::open(&dir).unwrap()).unwrap();
    assert_eq!(s.silent, [131_070, 0]);
    assert_eq!(rows(&dir, None).len(), 2, "only the answers are rows");
    assert_eq!(
        Results::from_log(&LogReader::open(&dir).unwrap())
            .unwrap()
            .len(),
        2
    );
    // On request every port is a row.
    let all = rows(&dir, Some(true));
    assert_eq!(all.len(), 131_072);
    assert_eq!(
        all.iter()
            .filter(|r| r.reason == Reason::NoResponse)
            .count(),
        131_070
    );
    // One host's silent ports, as an export counts them.
    let silence = Silence::of_summary(&s).unwrap();
    assert!(!silence.lists_rows());
    let host: Vec<ResultRow> = rows(&dir, None)
        .into_iter()
        .filter(|r| r.addr == Addr::from(Ipv4Addr::new(198, 19, 1, 1)))
        .collect();
    let extra = silence.host_rows(host[0].addr, &host);
    assert_eq!(extra.len(), 1);
    assert_eq!((extra[0].port, extra[0].state), (80, PortState::Filtered));
}

#[test]
fn silence_per_protocol_comes_from_the_scan_type() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tu");
    // A SYN scan with UDP ports too: silent TCP is filtered, silent UDP open|filtered.
    let spec = spec("198.19.1.0/30", "T:22,80,U:53", 0);
    write(&dir, &spec, 12, &answers(), Some(12));
    let s = summarize(&LogReader::open(&dir).unwrap()).unwrap();
    // 4 hosts: 8 TCP ports (1 answered: 198.19.1.1:22; .2:80 too), 4 UDP.
    assert_eq!(s.silent, [6, 4]);
    let all = rows(&dir, None);
    assert_eq!(all.len(), 12);
    for r in &all {
        if r.reason == Reason::NoResponse {
            let want = match r.proto {
                Protocol::Tcp => PortState::Filtered,
                Protocol::Udp => PortState::OpenFiltered,
                Protocol::Host => unreachable!("a port scan has no host rows"),
            };
            assert_eq!(r.state, want, "{r:?}");
        }
    }
    assert_eq!(
        ScanType::Syn.silence(Protocol::Udp),
        PortState::OpenFiltered
    );
    // Socket scans decide every port inline: nothing is projected.
    let conn = tmp.path().join("connect");
    let spec = ScanSpec {
        scan_type: ScanType::Connect,
        ..spec
    };
    write(&conn, &spec, 12, &answers(), Some(12));
    let s = summarize(&LogReader::open(&conn).unwrap()).unwrap();
    assert_eq!(s.silent, [0, 0]);
    assert_eq!(rows(&conn, None).len(), 2);
}

/// What a summary must say of a log, from its sorted rows with every silent port
/// listed (another path than the summary's): states, open ports, open hosts and
/// silent ports per protocol.
fn expected_counts(dir: &Path) -> ([u64; 5], u64, u64, [u64; 2]) {
    let all = rows(dir, Some(true));
    let mut states = [0u64; 5];
    let mut silent = [0u64; 2];
    let mut hosts = BTreeSet::new();
    let mut open = 0;
    for r in &all {
        states[r.state as usize] += 1;
        if r.reason == Reason::NoResponse {
            silent[r.proto as usize] += 1;
        }
        if r.state == PortState::Open {
            open += 1;
            hosts.insert(r.addr);
        }
    }
    (states, open, hosts.len() as u64, silent)
}

#[test]
fn summaries_count_each_key_once_with_or_without_a_second_reply() {
    let tmp = tempfile::tempdir().unwrap();
    // 256 hosts × (3 TCP + 1 UDP) ports, one retry: walk = 2 × 1 024 positions.
    let spec = spec("198.19.2.0/24", "T:22,80,443,U:53", 1);
    let states = [
        (PortState::Open, Reason::SynAck),
        (PortState::Closed, Reason::Reset),
        (PortState::Filtered, Reason::IcmpUnreachable),
        (PortState::Open, Reason::UdpResponse),
    ];
    // Every third key answers once (a raw scan's log), in a scrambled order.
    let mut once = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..256u32 {
        for (port, proto) in [
            (22, Protocol::Tcp),
            (80, Protocol::Tcp),
            (443, Protocol::Tcp),
            (53, Protocol::Udp),
        ] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(3) {
                let (state, reason) = states[(x >> 8) as usize % 4];
                let ev = reply([198, 19, 2, i as u8], port, proto, state, reason);
                once.insert((x >> 20) as usize % (once.len() + 1), ev);
            }
        }
    }
    assert!(once.len() > 250, "{}", once.len());
    let check = |name: &str, events: &[Event], end: u64| {
        let dir = tmp.path().join(name);
        write(&dir, &spec, 2048, events, Some(end));
        let s = summarize(&LogReader::open(&dir).unwrap()).unwrap();
        let (states, open, hosts, silent) = expected_counts(&dir);
        assert_eq!(
            (s.port_states, s.open_ports, s.open_hosts, s.silent),
            (states, open, hosts, silent),
            "{name}"
        );
        assert!(open > 0 && hosts > 0 && silent[0] > 0, "{name}: {s:?}");
        s
    };
    // Finished, and paused in the retry pass (only part of the space is silent).
    let done = check("once", &once, 2048);
    assert_eq!(done.silent_ports() + once.len() as u64, 1024);
    let paused = check("once-paused", &once, 1024 + 300);
    assert!(paused.silent_ports() < done.silent_ports());
    // A key answered twice, its second Reply last: the latest state counts.
    let mut twice = once.clone();
    let Event::Reply(first) = &once[0] else {
        unreachable!()
    };
    let flipped = if first.state == PortState::Open {
        PortState::Closed
    } else {
        PortState::Open
    };
    twice.push(Event::Reply(Reply {
        state: flipped,
        ..*first
    }));
    let s = check("twice", &twice, 2048);
    assert_eq!(s.port_states.iter().sum::<u64>(), 1024, "each key once");
    let mut moved = done.port_states;
    moved[first.state as usize] -= 1;
    moved[flipped as usize] += 1;
    assert_eq!(s.port_states, moved);
    check("twice-paused", &twice, 1024 + 300);
    // A Reply from outside the targets is a key of its own.
    let mut stray = once.clone();
    stray.push(reply(
        [198, 19, 3, 1],
        22,
        Protocol::Tcp,
        PortState::Open,
        Reason::SynAck,
    ));
    let s = check("stray", &stray, 2048);
    assert_eq!(s.open_ports, done.open_ports + 1);
    assert_eq!(s.open_hosts, done.open_hosts + 1);
    assert_eq!(s.silent, done.silent);
}
