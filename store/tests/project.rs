//! Projections over real logs: sorted rows against an independent in-memory fold,
//! summaries and their statuses, the history index and its rebuild.

mod common;
use common::*;
use prtip_store::event::*;
use prtip_store::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

/// The expected rows, computed naively from owned events.
fn naive_rows(events: &[Event]) -> Vec<ResultRow> {
    let mut names: HashMap<Addr, String> = HashMap::new();
    let mut replies: HashMap<(Addr, Protocol, u16), Reply> = HashMap::new();
    let mut banners: HashMap<(Addr, Protocol, u16), Vec<u8>> = HashMap::new();
    let mut services: HashMap<(Addr, Protocol, u16), ServiceInfo> = HashMap::new();
    for e in events {
        match e {
            Event::ScanStarted(s) => {
                for h in &s.spec.resolved {
                    names.entry(h.addr).or_insert(h.name.clone());
                }
            }
            Event::Reply(r) => {
                replies.insert((r.addr, r.proto, r.port), *r);
            }
            Event::Banner(b) => {
                banners
                    .entry((b.addr, b.proto, b.port))
                    .or_insert(b.bytes.clone());
            }
            Event::Service(s) => {
                services.insert(
                    (s.addr, s.proto, s.port),
                    ServiceInfo {
                        name: s.name.clone(),
                        product: s.product.clone(),
                        version: s.version.clone(),
                        extra: s.extra.clone(),
                        confidence: s.confidence,
                        method: s.method.clone(),
                    },
                );
            }
            _ => {}
        }
    }
    let mut rows: Vec<ResultRow> = replies
        .iter()
        .map(|(k, r)| ResultRow {
            addr: k.0,
            hostname: names.get(&k.0).cloned(),
            port: k.2,
            proto: k.1,
            state: r.state,
            reason: r.reason,
            ttl: r.ttl,
            rtt_us: r.rtt_us,
            time_us: r.time_us,
            service: services.get(k).cloned(),
            banner: banners.get(k).cloned(),
        })
        .collect();
    rows.sort_by_key(|r| r.key());
    rows
}

fn random_events(rng: &mut Rng, n: usize) -> Vec<Event> {
    let mut spec_ev = started(1);
    if let Event::ScanStarted(s) = &mut spec_ev {
        s.spec.resolved = vec![
            HostName {
                name: "a.example".into(),
                addr: Ipv4Addr::new(10, 0, 0, 3).into(),
            },
            HostName {
                name: "b.example".into(),
                addr: Ipv4Addr::new(10, 0, 0, 3).into(),
            },
            HostName {
                name: "v6.example".into(),
                addr: Addr(
                    "2001:db8::5"
                        .parse::<std::net::Ipv6Addr>()
                        .unwrap()
                        .octets(),
                ),
            },
        ];
    }
    let mut out = vec![spec_ev];
    for i in 0..n {
        let addr: Addr = if rng.below(10) == 0 {
            Addr(
                "2001:db8::5"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            )
        } else {
            Ipv4Addr::new(10, 0, rng.below(4) as u8, rng.below(16) as u8).into()
        };
        let port = [22u16, 80, 443, 8080, 53][rng.below(5) as usize];
        let proto = if rng.below(4) == 0 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let t = i as u64;
        out.push(match rng.below(10) {
            0 => Event::Banner(Banner {
                addr,
                port,
                proto,
                time_us: t,
                probe: "NULL".into(),
                bytes: format!("banner {i}").into_bytes(),
            }),
            1 => Event::Service(Service {
                addr,
                port,
                proto,
                time_us: t,
                name: "http".into(),
                product: format!("p{i}"),
                version: "1".into(),
                extra: String::new(),
                confidence: 0.5,
                method: "probe".into(),
            }),
            2 => Event::Sample(Sample::default()),
            _ => Event::Reply(Reply {
                addr,
                port,
                proto,
                state: [
                    PortState::Open,
                    PortState::Closed,
                    PortState::Filtered,
                    PortState::OpenFiltered,
                ][rng.below(4) as usize],
                reason: Reason::SynAck,
                ttl: rng.below(255) as u8,
                icmp_code: 0,
                rtt_us: rng.below(100_000) as u32,
                time_us: t,
            }),
        });
    }
    out
}

fn write_log(dir: &Path, events: &[Event]) {
    let mut a = Appender::create(
        dir,
        LogOptions {
            segment_bytes: 1 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    for e in events {
        a.append(e).unwrap();
    }
    a.finish().unwrap();
}

#[test]
fn sorted_rows_equal_the_in_memory_fold_on_random_data_with_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    for (round, n) in [0usize, 1, 50, 20_000, 120_000].into_iter().enumerate() {
        let dir = tmp.path().join(format!("log{round}"));
        let events = random_events(&mut rng, n);
        write_log(&dir, &events);
        let expected = naive_rows(&events);
        let r = LogReader::open(&dir).unwrap();
        // In-memory fold.
        assert_eq!(
            Results::from_log(&r).unwrap().rows(),
            expected,
            "Results, n={n}"
        );
        // External sort, everything in memory.
        let rows: Vec<ResultRow> = sorted_rows(&r).unwrap().map(|x| x.unwrap()).collect();
        assert_eq!(rows, expected, "sorted_rows, n={n}");
        // The same rows and the summary in one pass.
        let (summary, it) = summary_and_sorted_rows(&r, &SortOptions::default()).unwrap();
        assert_eq!(
            it.map(|x| x.unwrap()).collect::<Vec<_>>(),
            expected,
            "one pass, n={n}"
        );
        assert_eq!(summary, summarize(&r).unwrap());
        assert_eq!(
            summary.open_ports as usize,
            expected
                .iter()
                .filter(|r| r.state == PortState::Open)
                .count()
        );
        // External sort with a tiny budget: many runs, merged in several passes.
        let spill = tmp.path().join("spill");
        std::fs::create_dir_all(&spill).unwrap();
        let opts = SortOptions {
            chunk_bytes: 32 << 10,
            tmp_dir: Some(spill.clone()),
            fan_in: 3,
            ..SortOptions::default()
        };
        let it = sorted_rows_with(&r, &opts).unwrap();
        if n >= 20_000 {
            assert!(it.spilled_runs() > 9, "runs: {}", it.spilled_runs());
        }
        let rows: Vec<ResultRow> = it.map(|x| x.unwrap()).collect();
        assert_eq!(rows, expected, "sorted_rows_with, n={n}");
        assert_eq!(
            std::fs::read_dir(&spill).unwrap().count(),
            0,
            "spill files removed"
        );
        // One pass with the tiny budget: the rows, and a summary whose open ports
        // and hosts come from the spilled runs, equal the unsorted fold's.
        let (summary, it) = summary_and_sorted_rows(&r, &opts).unwrap();
        assert_eq!(summary, summarize(&r).unwrap(), "summary spilled, n={n}");
        let open: Vec<&ResultRow> = expected
            .iter()
            .filter(|r| r.state == PortState::Open)
            .collect();
        let mut hosts: Vec<Addr> = open.iter().map(|r| r.addr).collect();
        hosts.dedup();
        assert_eq!(
            (summary.open_ports, summary.open_hosts),
            (open.len() as u64, hosts.len() as u64),
            "open ports and hosts, n={n}"
        );
        assert_eq!(
            it.map(|x| x.unwrap()).collect::<Vec<_>>(),
            expected,
            "one pass spilled, n={n}"
        );
        // Dropped half-way: the merging thread stops and the spill files go.
        let mut it = sorted_rows_with(&r, &opts).unwrap();
        let half: Vec<ResultRow> = it
            .by_ref()
            .take(expected.len() / 2)
            .map(|x| x.unwrap())
            .collect();
        assert_eq!(half[..], expected[..expected.len() / 2]);
        drop(it);
        assert_eq!(
            std::fs::read_dir(&spill).unwrap().count(),
            0,
            "spill files removed after a partial read"
        );
        if n >= 20_000 {
            assert!(expected
                .iter()
                .any(|r| r.hostname.as_deref() == Some("a.example")));
            assert!(expected
                .iter()
                .any(|r| r.banner.is_some() && r.service.is_some()));
        }
    }
}

fn scan(dir: &Path, ending: Option<Event>, open_ports: &[(u8, u16)]) {
    let w = LogWriter::create(dir, LogOptions::default()).unwrap();
    let mut s = w.sink();
    s.push(started(11)).unwrap();
    for &(host, port) in open_ports {
        let mut r = match reply(0) {
            Event::Reply(r) => r,
            _ => unreachable!(),
        };
        r.addr = Ipv4Addr::new(10, 0, 0, host).into();
        r.port = port;
        r.proto = Protocol::Tcp;
        r.state = PortState::Closed;
        s.push(Event::Reply(r)).unwrap();
        r.state = PortState::Open;
        s.push(Event::Reply(r)).unwrap();
        s.push(Event::Reply(r)).unwrap();
    }
    s.checkpoint(checkpoint(1000)).unwrap();
    s.checkpoint(checkpoint(2000)).unwrap();
    if let Some(e) = ending {
        s.push(e).unwrap();
    }
    drop(s);
    w.finish().unwrap();
}

#[test]
fn summaries_tell_every_status() {
    let tmp = tempfile::tempdir().unwrap();
    let fin = Counters {
        sent: 1 << 20,
        replies: 7,
        open: 3,
        ..Default::default()
    };
    let cases = [
        (
            Some(Event::Finished(Finished {
                time_us: 99,
                counters: fin,
            })),
            ScanStatus::Completed,
        ),
        (
            Some(Event::Paused(Paused {
                next_index: 2000,
                time_us: 98,
                reason: "SIGINT".into(),
            })),
            ScanStatus::Paused,
        ),
        (
            Some(Event::Failed(Failed {
                time_us: 97,
                message: "interface went down".into(),
            })),
            ScanStatus::Failed,
        ),
        (None, ScanStatus::Interrupted),
    ];
    for (i, (ending, status)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(i.to_string());
        scan(&dir, ending, &[(1, 22), (1, 80), (2, 443)]);
        let s = summarize(&LogReader::open(&dir).unwrap()).unwrap();
        assert_eq!(s.status, status);
        assert_eq!(s.scan_id, 11);
        assert_eq!(s.open_ports, 3);
        assert_eq!(s.open_hosts, 2);
        assert_eq!(s.checkpoints, 2);
        assert_eq!(s.last_checkpoint.unwrap().next_index, 2000);
        assert_eq!(s.total_probes, 1 << 20);
        assert_eq!(
            s.events,
            1 + 9 + 2 + (status != ScanStatus::Interrupted) as u64
        );
        assert_eq!(s.event_counts[EventKind::Reply as usize], 9);
        match status {
            ScanStatus::Completed => {
                assert_eq!(s.counters, fin);
                assert_eq!(s.probes_done, 1 << 20);
                assert_eq!(s.progress(), 1.0);
                assert_eq!(s.ended_us, Some(99));
            }
            ScanStatus::Paused => {
                assert_eq!(s.probes_done, 2000);
                assert_eq!(s.ended_us, Some(98));
                assert!(s.status.resumable());
            }
            ScanStatus::Failed => assert_eq!(s.failure.as_deref(), Some("interface went down")),
            _ => {
                assert!(s.status.resumable());
                assert_eq!(s.ended_us, None);
            }
        }
    }
    // Running: a writer holds the lock.
    let dir = tmp.path().join("live");
    let w = LogWriter::create(&dir, LogOptions::default()).unwrap();
    let mut s = w.sink();
    s.push(started(12)).unwrap();
    s.sync().unwrap();
    assert_eq!(
        summarize(&LogReader::open(&dir).unwrap()).unwrap().status,
        ScanStatus::Running
    );
    // Held in place (SIGUSR1): Paused is the last word while the writer lives.
    s.checkpoint(checkpoint(500)).unwrap();
    s.push(Event::Paused(Paused {
        next_index: 500,
        time_us: 1,
        reason: "SIGUSR1".into(),
    }))
    .unwrap();
    s.sync().unwrap();
    let held = summarize(&LogReader::open(&dir).unwrap()).unwrap();
    assert_eq!(held.status, ScanStatus::Paused);
    assert_eq!(held.probes_done, 500);
    // SIGUSR2: running again.
    s.push(Event::Resumed(Resumed {
        from_index: 500,
        time_us: 2,
        pid: 1234,
    }))
    .unwrap();
    s.sync().unwrap();
    assert_eq!(
        summarize(&LogReader::open(&dir).unwrap()).unwrap().status,
        ScanStatus::Running
    );
    s.push(Event::Paused(Paused {
        next_index: 500,
        time_us: 3,
        reason: "monitor".into(),
    }))
    .unwrap();
    drop(s);
    w.finish().unwrap();
    assert_eq!(
        summarize(&LogReader::open(&dir).unwrap()).unwrap().status,
        ScanStatus::Paused
    );
}

#[test]
fn history_index_rows_checkpoints_and_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let scans = home.join("scans");
    let ix_path = home.join("history.redb");
    let ix = HistoryIndex::open(&ix_path).unwrap();
    let (a, dir_a) = ix.new_scan_dir(&scans).unwrap();
    let (b, dir_b) = ix.new_scan_dir(&scans).unwrap();
    assert_eq!((a, b), (1, 2));
    scan(
        &dir_a,
        Some(Event::Finished(Finished {
            time_us: 5,
            counters: Counters::default(),
        })),
        &[(1, 22)],
    );
    scan(&dir_b, None, &[(1, 22), (3, 80)]);
    // Logs say scan id 11: rename them to what the index handed out.
    for (id, dir) in [(a, &dir_a), (b, &dir_b)] {
        let r = LogReader::open(dir).unwrap();
        assert_eq!(r.scan_started().unwrap().scan_id, 11);
        let _ = id;
    }
    let row_a = ix.index_log(&dir_a).unwrap();
    assert_eq!(row_a.id, 11);
    assert_eq!(row_a.status, ScanStatus::Completed);
    assert_eq!(row_a.ports_discovered, 1);
    assert_eq!(row_a.checkpoints, 2);
    assert_eq!(
        ix.checkpoints(11)
            .unwrap()
            .iter()
            .map(|c| c.next_index)
            .collect::<Vec<_>>(),
        vec![1000, 2000]
    );
    assert_eq!(ix.get(11).unwrap().unwrap(), row_a);
    assert!(ix.next_id().unwrap() > 11, "ids stay above indexed scans");
    let cfg: serde_json::Value = serde_json::from_str(&row_a.config_json).unwrap();
    assert_eq!(cfg["ports"], "T:22,80,443,U:53");
    assert_eq!(cfg["scan_type"], "syn");

    // Rebuild from the logs: dir_b's log also says 11 -> reported, not lost silently.
    let rep = ix.rebuild(&scans).unwrap();
    assert_eq!(rep.updated, vec![11]);
    assert_eq!(rep.errors.len(), 1, "{rep:?}");
    assert!(rep.errors[0].1.contains("already used"), "{rep:?}");

    // Give scan b its own id and rebuild a deleted index: both come back.
    std::fs::remove_dir_all(&dir_b).unwrap();
    let w = LogWriter::create(&dir_b, LogOptions::default()).unwrap();
    let mut s = w.sink();
    let mut ev = started(b);
    if let Event::ScanStarted(st) = &mut ev {
        st.scan_id = b;
    }
    s.push(ev).unwrap();
    s.checkpoint(checkpoint(10)).unwrap();
    drop(s);
    w.finish().unwrap();
    drop(ix);
    std::fs::remove_file(&ix_path).unwrap();
    let ix = HistoryIndex::open(&ix_path).unwrap();
    assert!(ix.list().unwrap().is_empty());
    let rep = ix.rebuild(&scans).unwrap();
    assert_eq!(rep.added, vec![b, 11]);
    assert!(rep.errors.is_empty(), "{rep:?}");
    let rows = ix.list().unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b, 11]);
    assert_eq!(rows[0].status, ScanStatus::Interrupted);
    assert_eq!(rows[0].probes_done, 10);
    assert_eq!(ix.checkpoints(b).unwrap().len(), 1);
    // A stale row (its log removed) goes away on rebuild; a removed row loses its checkpoints.
    std::fs::remove_dir_all(&dir_a).unwrap();
    let rep = ix.rebuild(&scans).unwrap();
    assert_eq!(rep.removed, vec![11]);
    assert!(ix.get(11).unwrap().is_none());
    assert!(ix.checkpoints(11).unwrap().is_empty());
    ix.remove(b).unwrap();
    assert!(ix.list().unwrap().is_empty());
    assert!(ix.checkpoints(b).unwrap().is_empty());
    // Ids are never reused.
    assert!(ix.next_id().unwrap() > 11);
}

#[test]
fn refresh_fixes_rows_left_running_by_a_dead_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let ix = HistoryIndex::open(&tmp.path().join("h.redb")).unwrap();
    let dir = tmp.path().join("scans/11");
    let w = LogWriter::create(&dir, LogOptions::default()).unwrap();
    let mut s = w.sink();
    s.push(started(11)).unwrap();
    s.sync().unwrap();
    assert_eq!(ix.index_log(&dir).unwrap().status, ScanStatus::Running);
    drop(s);
    w.finish().unwrap();
    assert_eq!(ix.get(11).unwrap().unwrap().status, ScanStatus::Running);
    let fixed = ix.refresh().unwrap();
    assert_eq!(fixed.len(), 1);
    assert_eq!(ix.get(11).unwrap().unwrap().status, ScanStatus::Interrupted);
}
