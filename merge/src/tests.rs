//! Plans and folds over logs written here with the store's writer: a 16 × 4 scan in
//! two shards whose replies follow a rule (port 2 open, the rest closed).

use super::*;
use prtip_engine::permutation::Walk;
use prtip_engine::scan::ScanPlan;
use prtip_store::event::*;
use prtip_store::{LogOptions, LogReader, LogWriter, ScanStatus};
use std::path::{Path, PathBuf};

fn spec(seed: u64, i: u32, n: u32) -> ScanSpec {
    ScanSpec {
        targets: vec!["198.19.0.0/28".into()],
        ports: "T:1-4".into(),
        seed,
        shard_index: i,
        shard_count: n,
        ..ScanSpec::default()
    }
}

fn reply(plan: &ScanPlan, v: u64, reason: Reason, time_us: u64) -> Event {
    let (ip, proto, port) = plan.probe_of(v);
    let (state, reason) = match reason {
        Reason::NoResponse => (PortState::Filtered, reason),
        _ if port == 2 => (PortState::Open, Reason::SynAck),
        _ => (PortState::Closed, Reason::Reset),
    };
    Event::Reply(Reply {
        addr: ip.into(),
        port,
        proto,
        state,
        reason,
        ttl: 64,
        icmp_code: 0,
        rtt_us: 10,
        time_us,
    })
}

/// A log of shard `s.shard_index` that sent walk positions `from..to` (answered),
/// finished or not, with `extra` events before the end.
fn write(dir: &Path, s: &ScanSpec, from: u64, to: u64, finish: bool, extra: Vec<Event>) {
    let mut s = s.clone();
    if from > 0 {
        s.walk_from = from;
    }
    let plan = ScanPlan::new(&s).unwrap();
    let len = plan.total_probes();
    let w = LogWriter::create(dir, LogOptions::default()).unwrap();
    let mut sink = w.sink();
    sink.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id: 1,
        time_us: 1,
        spec: s,
        versions: Versions {
            prtip: "0".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec![],
        total_probes: len,
        total_targets: 16,
        pid: 1,
    })))
    .unwrap();
    for p in from..to {
        sink.push(reply(&plan, plan.walk.at(p).0, Reason::SynAck, 100 + p))
            .unwrap();
    }
    for e in extra {
        sink.push(e).unwrap();
    }
    let counters = Counters {
        sent: to - from,
        ..Counters::default()
    };
    sink.checkpoint(Checkpoint {
        next_index: to,
        counters,
        time_us: 5,
    })
    .unwrap();
    if finish {
        sink.push(Event::Finished(Finished {
            time_us: 9,
            counters,
        }))
        .unwrap();
    }
    drop(sink);
    w.finish().unwrap();
}

fn len(i: u32, n: u32) -> u64 {
    Walk::new(64, 3, i, n, 1).len()
}

fn refusal(dirs: &[PathBuf]) -> Refusal {
    plan(dirs).unwrap().unwrap_err()
}

#[test]
fn two_finished_shards_fold_into_the_whole_scan() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, m) = (t.path().join("a"), t.path().join("b"), t.path().join("m"));
    write(&a, &spec(3, 0, 2), 0, len(0, 2), true, vec![]);
    write(&b, &spec(3, 1, 2), 0, len(1, 2), true, vec![]);
    let p = plan(&[b.clone(), a.clone()]).unwrap().unwrap();
    assert_eq!(
        (p.shard_count, p.total_probes, p.total_targets),
        (2, 64, 16)
    );
    let st = fold(&p, &m, 7, vec!["prtip".into(), "merge".into()]).unwrap();
    assert_eq!((st.rows, st.open, st.duplicates, st.logs), (64, 16, 0, 2));
    assert_eq!(st.counters.sent, 64);
    let r = LogReader::open(&m).unwrap();
    let s = prtip_store::summarize(&r).unwrap();
    assert_eq!(s.status, ScanStatus::Completed);
    assert_eq!((s.scan_id, s.total_probes, s.open_ports), (7, 64, 16));
    assert_eq!((s.spec.shard_index, s.spec.shard_count), (0, 1));
    assert_eq!(s.spec.merged_from.len(), 2);
    assert_eq!(s.spec.merged_from[0].shard, "0/2");
}

#[test]
fn a_missing_and_an_unfinished_shard_are_gaps_with_a_plan() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    write(&a, &spec(3, 0, 3), 0, 5, false, vec![]);
    let r = refusal(std::slice::from_ref(&a));
    assert!(r.problems.is_empty());
    let want = vec![(0, 5, len(0, 3)), (1, 0, len(1, 3)), (2, 0, len(2, 3))];
    let got: Vec<_> = r.gaps.iter().map(|g| (g.shard, g.from, g.to)).collect();
    assert_eq!(got, want);
    assert_eq!(
        r.gaps[0].why,
        format!(
            "shard 0/3 is unfinished: {} is interrupted at walk position 5 of {} (23.8%)",
            a.display(),
            len(0, 3)
        )
    );
    assert_eq!(
        r.gaps[1].why,
        "shard 1/3 is missing: no log of it was given (21 walk positions)"
    );
    // The plan round-trips through JSON and gives each gap its shard and start.
    let gp = r.plan.unwrap();
    let back: GapPlan = serde_json::from_str(&serde_json::to_string(&gp).unwrap()).unwrap();
    assert_eq!(back, gp);
    let s = gp.spec_for(&gp.gaps[0]);
    assert_eq!((s.shard_index, check::walk_from(&s)), (0, 5));
    let s = gp.spec_for(&gp.gaps[2]);
    assert_eq!((s.shard_index, check::walk_from(&s)), (2, 0));
}

#[test]
fn a_gap_log_completes_an_unfinished_shard() {
    let t = tempfile::tempdir().unwrap();
    let d = |n: &str| t.path().join(n);
    write(&d("a0"), &spec(3, 0, 2), 0, 10, false, vec![]);
    // The gap scan marks the shard's silent values filtered, including the ones the
    // first log answered: the answer wins over silence.
    let plan0 = ScanPlan::new(&spec(3, 0, 2)).unwrap();
    let silent: Vec<Event> = (0..10)
        .map(|p| reply(&plan0, plan0.walk.at(p).0, Reason::NoResponse, 1_000))
        .collect();
    write(&d("g0"), &spec(3, 0, 2), 10, len(0, 2), true, silent);
    write(&d("b"), &spec(3, 1, 2), 0, len(1, 2), true, vec![]);
    let p = plan(&[d("a0"), d("g0"), d("b")]).unwrap().unwrap();
    let st = fold(&p, &d("m"), 1, vec![]).unwrap();
    assert_eq!((st.rows, st.open, st.duplicates), (64, 16, 10));
    let rows: Vec<_> = prtip_store::sorted_rows(&LogReader::open(&d("m")).unwrap())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(rows.iter().all(|r| r.reason != Reason::NoResponse));
}

#[test]
fn a_foreign_reply_folds_into_the_owners() {
    let t = tempfile::tempdir().unwrap();
    let d = |n: &str| t.path().join(n);
    // Shard 1 also logged a (later) answer to a probe of shard 0: shard 0's stands.
    let plan0 = ScanPlan::new(&spec(3, 0, 2)).unwrap();
    let v = plan0.walk.at(0).0;
    let foreign = vec![reply(&plan0, v, Reason::NoResponse, 50_000)];
    write(&d("a"), &spec(3, 0, 2), 0, len(0, 2), true, vec![]);
    write(&d("b"), &spec(3, 1, 2), 0, len(1, 2), true, foreign);
    let p = plan(&[d("a"), d("b")]).unwrap().unwrap();
    let (ip, proto, port) = plan0.probe_of(v);
    assert_eq!(p.owner(ip, proto, port), Some(0));
    let st = fold(&p, &d("m"), 1, vec![]).unwrap();
    assert_eq!((st.rows, st.duplicates), (64, 1));
}

#[test]
fn other_scans_overlaps_and_holes_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = |n: &str| t.path().join(n);
    write(&d("a"), &spec(3, 0, 2), 0, len(0, 2), true, vec![]);
    write(&d("b"), &spec(3, 1, 2), 0, len(1, 2), true, vec![]);
    write(&d("seed"), &spec(4, 1, 2), 0, 3, true, vec![]);
    write(&d("n3"), &spec(3, 1, 3), 0, 3, true, vec![]);
    let r = refusal(&[d("a"), d("seed")]);
    assert_eq!(
        r.problems[0].to_string(),
        format!(
            "{} is not a shard of the same scan as {}: seed 4 against 3",
            d("seed").display(),
            d("a").display()
        )
    );
    assert!(r.gaps.is_empty() && r.plan.is_none());
    let r = refusal(&[d("a"), d("n3")]);
    assert!(r.problems[0]
        .to_string()
        .ends_with(": shard count 3 against 2"));
    let r = refusal(&[d("a"), d("b"), d("b")]);
    assert_eq!(
        r.problems,
        vec![Problem::Overlap {
            shard: 1,
            count: 2,
            a: d("b"),
            b: d("b"),
            range: 0..len(1, 2),
        }]
    );
    assert!(refusal(&[]).problems == vec![Problem::NoLogs]);

    // A resume past the last checkpoint leaves positions never proven sent.
    let hole = vec![Event::Resumed(Resumed {
        from_index: 20,
        time_us: 3,
        pid: 2,
    })];
    write(&d("h"), &spec(3, 1, 2), 0, 4, true, hole);
    let r = refusal(&[d("a"), d("h")]);
    assert_eq!(
        r.problems[0].to_string(),
        format!(
            "{} (shard 1/2) resumed at walk position 20 past its last checkpoint 0: positions 0..20 were never proven sent",
            d("h").display()
        )
    );
}

#[test]
fn the_merged_scan_shows_in_the_monitor_as_a_finished_scan() {
    let t = tempfile::tempdir().unwrap();
    let d = |n: &str| t.path().join(n);
    write(&d("a"), &spec(3, 0, 2), 0, len(0, 2), true, vec![]);
    write(&d("b"), &spec(3, 1, 2), 0, len(1, 2), true, vec![]);
    let p = plan(&[d("a"), d("b")]).unwrap().unwrap();
    fold(&p, &d("m"), 3, vec![]).unwrap();
    let mut app = prtip_monitor::App::new(d("m"));
    for e in LogReader::open(&d("m")).unwrap().iter() {
        app.apply(&e.unwrap().to_event());
    }
    app.refresh_view();
    assert_eq!(app.status, prtip_monitor::Status::Finished);
    assert_eq!((app.table.len(), app.table.open_count()), (64, 16));
    assert_eq!(app.percent(), 100.0);
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 30)).unwrap();
    term.draw(|f| prtip_monitor::draw(f, &app)).unwrap();
    let buf = term.backend().buffer();
    let text: String = (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("scan 3"), "{text}");
}
