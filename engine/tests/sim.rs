//! The real scan loop (`scan::run`) against the simulated network of
//! `prtip_engine::sim`: no root, no sockets, no lab.
//!
//! Scenarios are data (`tests/sim/*.json`: targets, ports, what the network does,
//! the results and probe counts expected); one runner plays each file. The
//! lifecycle properties — pause and resume at every position, kills at random
//! points, shards, lagged checkpoints, hold — are tests of their own below.

use prtip_engine::backend::{FrameParams, ProbeSet};
use prtip_engine::probe::TcpFlagScan;
use prtip_engine::scan::{self, Preload, RunOptions, ScanControl, ScanOutcome, ScanPlan};
use prtip_engine::sim::{self, Answer, Network, Rule, SimHandle};
use prtip_store::event::{Addr, Counters, Event, PortState, Protocol, Reason, ScanSpec, ScanType};
use prtip_store::{Results, Silence};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

type Key = (IpAddr, Protocol, u16);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[allow(dead_code)]
    about: String,
    targets: Vec<String>,
    #[serde(default)]
    excludes: Vec<String>,
    ports: String,
    #[serde(default)]
    max_retries: u32,
    #[serde(default = "default_wait")]
    wait_ms: u64,
    #[serde(default)]
    reorder_ms: u64,
    #[serde(default)]
    router: Option<Ipv4Addr>,
    /// How TCP is probed: `syn` (default), `fin`, `null`, `xmas`, `ack`,
    /// `window`, `maimon`.
    #[serde(default)]
    tcp_scan: Option<String>,
    rules: Vec<RuleSpec>,
    /// "addr:port/proto" (addr or port may be `*`) or `*` → state.
    expect: BTreeMap<String, String>,
    #[serde(default)]
    reasons: BTreeMap<String, String>,
    /// Same keys → probes sent.
    sends: BTreeMap<String, u32>,
}

fn default_wait() -> u64 {
    150
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    addr: Option<IpAddr>,
    port: Option<u16>,
    proto: Option<String>,
    answer: String,
    #[serde(default)]
    drop_first: u32,
    #[serde(default = "one")]
    copies: u32,
    #[serde(default)]
    delay_ms: u64,
}

fn one() -> u32 {
    1
}

fn proto(s: &str) -> Protocol {
    match s {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => panic!("protocol {s:?}: tcp or udp"),
    }
}

impl Scenario {
    fn load(name: &str) -> Scenario {
        let path = format!("{}/tests/sim/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn spec(&self) -> ScanSpec {
        ScanSpec {
            targets: self.targets.clone(),
            excludes: self.excludes.clone(),
            ports: self.ports.clone(),
            max_retries: self.max_retries,
            wait_ms: self.wait_ms,
            scan_type: match self.tcp_scan() {
                None => ScanType::Syn,
                Some(TcpFlagScan::Fin) => ScanType::Fin,
                Some(TcpFlagScan::Null) => ScanType::Null,
                Some(TcpFlagScan::Xmas) => ScanType::Xmas,
                Some(TcpFlagScan::Ack) => ScanType::Ack,
                Some(TcpFlagScan::Window) => ScanType::Window,
                Some(TcpFlagScan::Maimon) => ScanType::Maimon,
            },
            ..spec_base()
        }
    }

    fn tcp_scan(&self) -> Option<TcpFlagScan> {
        Some(match self.tcp_scan.as_deref()? {
            "syn" => return None,
            "fin" => TcpFlagScan::Fin,
            "null" => TcpFlagScan::Null,
            "xmas" => TcpFlagScan::Xmas,
            "ack" => TcpFlagScan::Ack,
            "window" => TcpFlagScan::Window,
            "maimon" => TcpFlagScan::Maimon,
            s => panic!("tcp_scan {s:?}"),
        })
    }

    fn network(&self) -> Network {
        Network {
            rules: self
                .rules
                .iter()
                .map(|r| Rule {
                    addr: r.addr,
                    port: r.port,
                    proto: r.proto.as_deref().map(proto),
                    answer: match r.answer.as_str() {
                        "open" => Answer::Open,
                        "closed" => Answer::Closed,
                        "silent" => Answer::Silent,
                        s => match s.strip_prefix("unreachable:") {
                            Some(code) => Answer::Unreachable(code.parse().expect("ICMP code")),
                            None => panic!("answer {s:?}"),
                        },
                    },
                    drop_first: r.drop_first,
                    copies: r.copies,
                    delay: Duration::from_millis(r.delay_ms),
                })
                .collect(),
            reorder: Duration::from_millis(self.reorder_ms),
            router: self.router,
        }
    }
}

/// The value the most specific pattern of `map` gives `key` (exact, `*:port/proto`,
/// `addr:*/proto`, `*`).
fn lookup<T>(map: &BTreeMap<String, T>, (addr, pr, port): Key) -> Option<&T> {
    let p = pr.as_str();
    [
        format!("{addr}:{port}/{p}"),
        format!("*:{port}/{p}"),
        format!("{addr}:*/{p}"),
        "*".to_string(),
    ]
    .iter()
    .find_map(|k| map.get(k))
}

fn spec_base() -> ScanSpec {
    ScanSpec {
        seed: 7,
        source: Some(Addr::from(US)),
        wait_ms: 150,
        checkpoint_every_ms: 0,
        checkpoint_every_probes: 0,
        ..ScanSpec::default()
    }
}

fn probes() -> ProbeSet {
    probes_for(None)
}

fn probes_for(tcp: Option<TcpFlagScan>) -> ProbeSet {
    let p = FrameParams {
        src_ip: US,
        ..FrameParams::default()
    };
    ProbeSet::tcp_udp(&p, tcp, &|_| None, &[])
}

/// One run of `plan` over `net`; `hook` sees each probe's number before it is taken.
fn run(
    plan: &ScanPlan,
    net: &Network,
    control: &Arc<ScanControl>,
    opts: RunOptions<'_>,
    hook: Option<Box<dyn FnMut(u64) -> bool + Send>>,
) -> (ScanOutcome, Vec<Event>, SimHandle) {
    run_with(plan, net, probes(), control, opts, hook)
}

/// [`run`] with the probe modules given.
fn run_with(
    plan: &ScanPlan,
    net: &Network,
    probes: ProbeSet,
    control: &Arc<ScanControl>,
    opts: RunOptions<'_>,
    hook: Option<Box<dyn FnMut(u64) -> bool + Send>>,
) -> (ScanOutcome, Vec<Event>, SimHandle) {
    let (pair, handle) = sim::pair(net.clone(), probes);
    if let Some(h) = hook {
        handle.on_send(h);
    }
    let mut events = Vec::new();
    let outcome = scan::run(plan, pair, &mut events, control, opts).expect("scan runs");
    (outcome, events, handle)
}

fn replies(log: &[Event]) -> impl Iterator<Item = &prtip_store::event::Reply> {
    log.iter().filter_map(|e| match e {
        Event::Reply(r) => Some(r),
        _ => None,
    })
}

/// Latest state per port over `logs` in order: the store's results projection
/// (`Results`), silent ports projected from each scan's spec and checkpoints. A
/// log that starts with `ScanStarted` starts a scan (a shard); a resumed run's log
/// continues the one before it.
fn results(logs: &[&[Event]]) -> BTreeMap<Key, PortState> {
    let mut m = BTreeMap::new();
    let mut fold = Results::new();
    let flush = |fold: &mut Results, m: &mut BTreeMap<Key, PortState>| {
        for r in std::mem::take(fold).rows() {
            m.insert((r.addr.ip(), r.proto, r.port), r.state);
        }
    };
    for log in logs {
        if matches!(log.first(), Some(Event::ScanStarted(_))) {
            flush(&mut fold, &mut m);
        }
        for e in log.iter() {
            fold.apply_event(e);
        }
    }
    flush(&mut fold, &mut m);
    m
}

/// No event of `log` is a silent port's: silence is projected, never written.
fn assert_no_silence_events(log: &[Event], what: &str) {
    let silent: Vec<_> = replies(log)
        .filter(|r| r.reason == Reason::NoResponse)
        .collect();
    assert!(silent.is_empty(), "{what}: silence written: {silent:?}");
}

/// The silent ports the store projects from a finished log of `plan`, with the
/// silence state of the probe modules `probes`.
fn projected(plan: &ScanPlan, log: &[Event], probes: &ProbeSet) -> BTreeMap<Key, PortState> {
    let (done, _) = last_checkpoint(log).expect("a checkpoint");
    let answered: std::collections::HashSet<Key> = replies(log)
        .map(|r| (r.addr.ip(), r.proto, r.port))
        .collect();
    let silence = Silence::new(&plan.spec, done, 0)
        .expect("a SYN scan projects its silence")
        .with_silence(|p| probes.silence(p));
    silence
        .space()
        .iter()
        .map(|(a, p, port, st)| ((a.ip(), p, port), st))
        .filter(|(k, _)| !answered.contains(k))
        .collect()
}

/// Every (address, protocol, port) of the plan's walk.
fn walk_keys(plan: &ScanPlan) -> Vec<Key> {
    (0..plan.walk.span())
        .map(|q| plan.probe_of(plan.walk.at(q).0))
        .collect()
}

/// The preload a resume hands the engine: the decided ports of `log`.
fn preload_of(log: Vec<Event>) -> Preload<'static> {
    Box::new(move |cb| {
        for r in replies(&log) {
            cb(r.addr.ip(), r.proto, r.port, r.state);
        }
    })
}

fn last_checkpoint(log: &[Event]) -> Option<(u64, Counters)> {
    log.iter().rev().find_map(|e| match e {
        Event::Checkpoint(c) => Some((c.next_index, c.counters)),
        _ => None,
    })
}

fn play(name: &str) {
    let sc = Scenario::load(name);
    let plan = ScanPlan::new(&sc.spec()).expect("scenario plans");
    let control = Arc::new(ScanControl::new());
    let (outcome, log, sim) = run_with(
        &plan,
        &sc.network(),
        probes_for(sc.tcp_scan()),
        &control,
        RunOptions::default(),
        None,
    );
    let ScanOutcome::Finished { counters } = outcome else {
        panic!("{name}: {outcome:?}");
    };
    let keys = walk_keys(&plan);
    assert_no_silence_events(&log, name);
    // At most one Reply per port: duplicates and retries folded.
    let mut per_key: HashMap<Key, u32> = HashMap::new();
    for r in replies(&log) {
        *per_key.entry((r.addr.ip(), r.proto, r.port)).or_default() += 1;
    }
    assert!(
        per_key.values().all(|&n| n == 1),
        "{name}: one Reply per port: {per_key:?}"
    );
    // The silent ports, projected: exactly the ports of the walk without a Reply.
    let silent = projected(&plan, &log, &probes_for(sc.tcp_scan()));
    assert_eq!(
        per_key.len() + silent.len(),
        keys.len(),
        "{name}: a result for every port"
    );
    let mut got: BTreeMap<Key, PortState> = silent.clone();
    for r in replies(&log) {
        let k = (r.addr.ip(), r.proto, r.port);
        assert!(
            !silent.contains_key(&k),
            "{name}: {k:?} answered and silent"
        );
        got.insert(k, r.state);
    }
    // The spec's scan type gives the same silence: the store's projection, which
    // has no probe modules, agrees.
    assert_eq!(results(&[&log]), got, "{name}: Results");
    let sends = sim.sends();
    for k in &keys {
        let want =
            lookup(&sc.expect, *k).unwrap_or_else(|| panic!("{name}: no expectation for {k:?}"));
        assert_eq!(got[k].as_str(), want, "{name}: state of {k:?}");
        let n = lookup(&sc.sends, *k).unwrap_or_else(|| panic!("{name}: no send count for {k:?}"));
        assert_eq!(
            sends.get(k).copied().unwrap_or(0),
            *n,
            "{name}: probes to {k:?}"
        );
    }
    assert!(
        sends.keys().all(|k| keys.contains(k)),
        "{name}: probes outside the walk: {sends:?}"
    );
    for r in replies(&log) {
        if let Some(want) = lookup(&sc.reasons, (r.addr.ip(), r.proto, r.port)) {
            assert_eq!(
                r.reason.as_str(),
                want,
                "{name}: reason for {}:{}",
                r.addr.ip(),
                r.port
            );
        }
    }
    let open = got.values().filter(|s| **s == PortState::Open).count() as u64;
    let closed = got.values().filter(|s| **s == PortState::Closed).count() as u64;
    assert_eq!(
        (counters.open, counters.closed),
        (open, closed),
        "{name}: counters"
    );
    assert_eq!(
        counters.sent,
        sim.taken(),
        "{name}: every probe counted once"
    );
    assert!(
        matches!(log.last(), Some(Event::Finished(_))),
        "{name}: ends with Finished"
    );
}

#[test]
fn scenario_fin_scan() {
    play("fin_scan");
}

#[test]
fn scenario_null_scan() {
    play("null_scan");
}

#[test]
fn scenario_xmas_scan() {
    play("xmas_scan");
}

#[test]
fn scenario_maimon_scan() {
    play("maimon_scan");
}

#[test]
fn scenario_ack_scan() {
    play("ack_scan");
}

#[test]
fn scenario_window_scan() {
    play("window_scan");
}

#[test]
fn scenario_open_closed_filtered() {
    play("open_closed_filtered");
}
#[test]
fn scenario_retries_resend_only_unanswered() {
    play("retries_resend_only_unanswered");
}
#[test]
fn scenario_duplicates_fold() {
    play("duplicates_fold");
}
#[test]
fn scenario_late_answers_within_the_wait() {
    play("late_answers_within_the_wait");
}
#[test]
fn scenario_answers_after_the_wait_are_silence() {
    play("answers_after_the_wait_are_silence");
}
#[test]
fn scenario_reordered_answers() {
    play("reordered_answers");
}
#[test]
fn scenario_icmp_errors() {
    play("icmp_errors");
}
#[test]
fn scenario_udp_open_closed_silent() {
    play("udp_open_closed_silent");
}
#[test]
fn scenario_resets_everywhere() {
    play("resets_everywhere");
}
#[test]
fn scenario_first_pass_lost() {
    play("first_pass_lost");
}
#[test]
fn scenario_excludes_are_never_probed() {
    play("excludes_are_never_probed");
}
#[test]
fn scenario_duplicates_late_and_retried() {
    play("duplicates_late_and_retried");
}
#[test]
fn scenario_retries_stop_when_a_retry_finds_nothing() {
    play("retries_stop_when_a_retry_finds_nothing");
}
#[test]
fn scenario_a_lossy_path_keeps_retrying_while_retries_find_ports() {
    play("a_lossy_path_keeps_retrying_while_retries_find_ports");
}
#[test]
fn scenario_a_retry_that_finds_almost_nothing_is_the_last() {
    play("a_retry_that_finds_almost_nothing_is_the_last");
}

/// Every scenario file has its test above (a new file without one fails here).
#[test]
fn every_scenario_file_is_played() {
    let src = include_str!("sim.rs");
    let dir = format!("{}/tests/sim", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let stem = name.strip_suffix(".json").expect("only .json scenarios");
        assert!(
            src.contains(&format!("play(\"{stem}\")")),
            "{name} has no test in tests/sim.rs"
        );
        Scenario::load(stem);
        n += 1;
    }
    assert!(n >= 12, "{n} scenarios");
}

/// A network for the lifecycle tests: a mix of every answer.
fn mixed() -> Network {
    Network {
        rules: vec![
            Rule {
                port: Some(22),
                ..Rule::new(Answer::Open)
            },
            Rule {
                port: Some(80),
                copies: 2,
                ..Rule::new(Answer::Closed)
            },
            Rule {
                port: Some(443),
                delay: Duration::from_millis(5),
                ..Rule::new(Answer::Open)
            },
            Rule {
                port: Some(8080),
                ..Rule::new(Answer::Unreachable(13))
            },
        ],
        ..Network::default()
    }
}

fn clean(plan: &ScanPlan, net: &Network) -> BTreeMap<Key, PortState> {
    let (outcome, log, _) = run(
        plan,
        net,
        &Arc::new(ScanControl::new()),
        RunOptions::default(),
        None,
    );
    assert!(matches!(outcome, ScanOutcome::Finished { .. }));
    results(&[&log])
}

#[test]
fn pause_and_resume_at_every_position_of_a_small_walk() {
    let spec = ScanSpec {
        targets: vec!["198.19.20.1-3".into()],
        ports: "22,80,443,8080".into(),
        // Long enough that a busy machine still drains every answer before a pause.
        wait_ms: 250,
        ..spec_base()
    };
    let plan = ScanPlan::new(&spec).unwrap();
    let total = plan.total_probes();
    assert_eq!(total, 12);
    let net = mixed();
    let want = clean(&plan, &net);
    for at in 0..total {
        let plan = ScanPlan::new(&spec).unwrap();
        let control = Arc::new(ScanControl::new());
        let c = control.clone();
        let hook = Box::new(move |n: u64| {
            if n == at {
                c.request_pause("test");
            }
            n < at
        });
        let (outcome, first, sim1) = run(&plan, &net, &control, RunOptions::default(), Some(hook));
        let ScanOutcome::Paused {
            next_index,
            counters,
            ..
        } = outcome
        else {
            panic!("pause at {at}: {outcome:?}");
        };
        assert_eq!(
            next_index, at,
            "paused where the network stopped taking probes"
        );
        assert!(
            matches!(&first[first.len() - 2..], [Event::Checkpoint(k), Event::Paused(p)] if k.next_index == at && p.next_index == at)
        );
        // Resume from the pause in a new process: a new plan, the log's results preloaded.
        let plan = ScanPlan::new(&spec).unwrap();
        let opts = RunOptions {
            resume_from: Some(next_index),
            counters,
            preload: Some(preload_of(first.clone())),
            ..RunOptions::default()
        };
        let (outcome, second, sim2) = run(&plan, &net, &Arc::new(ScanControl::new()), opts, None);
        assert!(
            matches!(outcome, ScanOutcome::Finished { .. }),
            "{outcome:?}"
        );
        if results(&[&first, &second]) != want {
            for e in first.iter().chain(&second) {
                eprintln!("{e:?}");
            }
        }
        assert_eq!(results(&[&first, &second]), want, "pause at {at}");
        // Every probe went out exactly once over both runs.
        let (s1, s2) = (sim1.sends(), sim2.sends());
        for k in walk_keys(&plan) {
            let n = s1.get(&k).copied().unwrap_or(0) + s2.get(&k).copied().unwrap_or(0);
            assert_eq!(n, 1, "pause at {at}: probes to {k:?}");
        }
    }
}

#[test]
fn a_kill_at_random_points_and_a_resume_equal_a_clean_scan() {
    let spec = ScanSpec {
        targets: vec!["198.19.21.0/26".into()],
        ports: "22,80,443,8080".into(),
        wait_ms: 40,
        rate_mpps: 2_000_000,
        ..spec_base()
    };
    let every_4 = || RunOptions {
        checkpoint_every_ms: 0,
        checkpoint_every_probes: 4,
        ..RunOptions::default()
    };
    let net = mixed();
    let want = clean(&ScanPlan::new(&spec).unwrap(), &net);
    let total = ScanPlan::new(&spec).unwrap().total_probes();
    let mut x: u64 = 0x5eed;
    let mut resumed_past_zero = 0;
    for i in 0..6 {
        // One random point in each sixth of the walk.
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = total * i / 6 + (x >> 33) % (total / 6);
        let plan = ScanPlan::new(&spec).unwrap();
        let control = Arc::new(ScanControl::new());
        let c = control.clone();
        let hook = Box::new(move |n: u64| {
            if n == at {
                c.abort(); // kill -9: nothing more reaches the log
            }
            n < at
        });
        let (outcome, first, _) = run(&plan, &net, &control, every_4(), Some(hook));
        assert_eq!(outcome, ScanOutcome::Aborted, "kill at {at}");
        let (from, counters) =
            last_checkpoint(&first).expect("the first checkpoint is written at once");
        assert!(from <= at, "a checkpoint never runs ahead of what was sent");
        resumed_past_zero += (from > 0) as u32;
        let plan = ScanPlan::new(&spec).unwrap();
        let opts = RunOptions {
            resume_from: Some(from),
            counters,
            preload: Some(preload_of(first.clone())),
            ..RunOptions::default()
        };
        let (outcome, second, _) = run(&plan, &net, &Arc::new(ScanControl::new()), opts, None);
        assert!(
            matches!(outcome, ScanOutcome::Finished { .. }),
            "{outcome:?}"
        );
        assert_eq!(
            results(&[&first, &second]),
            want,
            "kill at {at}, resume from {from}"
        );
    }
    assert!(
        resumed_past_zero > 0,
        "some kill came after a periodic checkpoint"
    );
}

#[test]
fn shards_partition_the_walk() {
    let net = mixed();
    let base = ScanSpec {
        targets: vec!["198.19.22.0/28".into()],
        ports: "22,80,443,8080,9000".into(),
        ..spec_base()
    };
    let whole = ScanPlan::new(&base).unwrap();
    let want = clean(&whole, &net);
    let mut sends: HashMap<Key, u32> = HashMap::new();
    let mut logs = Vec::new();
    let mut positions = 0;
    for i in 0..3 {
        let spec = ScanSpec {
            shard_index: i,
            shard_count: 3,
            ..base.clone()
        };
        let plan = ScanPlan::new(&spec).unwrap();
        positions += plan.total_probes();
        let (outcome, log, sim) = run(
            &plan,
            &net,
            &Arc::new(ScanControl::new()),
            RunOptions::default(),
            None,
        );
        assert!(matches!(outcome, ScanOutcome::Finished { .. }));
        for (k, n) in sim.sends() {
            *sends.entry(k).or_default() += n;
        }
        logs.push(log);
    }
    assert_eq!(positions, whole.total_probes(), "the shards' walks add up");
    let keys = walk_keys(&whole);
    assert_eq!(sends.len(), keys.len(), "every port probed");
    assert!(
        sends.values().all(|&n| n == 1),
        "by exactly one shard, once"
    );
    let logs: Vec<&[Event]> = logs.iter().map(|l| l.as_slice()).collect();
    assert_eq!(results(&logs), want);
    // Each shard reports only its own ports: its answers and its projected silence.
    let mut total = 0;
    for (i, l) in logs.iter().enumerate() {
        assert_no_silence_events(l, "shard");
        let plan = ScanPlan::new(&ScanSpec {
            shard_index: i as u32,
            shard_count: 3,
            ..base.clone()
        })
        .unwrap();
        total += replies(l).count() + projected(&plan, l, &probes()).len();
    }
    assert_eq!(total, keys.len());
}

#[test]
fn the_lagged_checkpoint_never_skips_a_probe() {
    // Answers 15 ms late, a checkpoint asked for every 2 probes at 1000 probes/s:
    // each checkpoint must cover only probes whose answers are already in the log.
    let spec = ScanSpec {
        targets: vec!["198.19.23.0/26".into()],
        ports: "22,80,443".into(),
        rate_mpps: 1_000_000,
        wait_ms: 60,
        ..spec_base()
    };
    let every_2 = RunOptions {
        checkpoint_every_ms: 0,
        checkpoint_every_probes: 2,
        ..RunOptions::default()
    };
    let plan = ScanPlan::new(&spec).unwrap();
    let net = Network {
        rules: vec![
            Rule {
                port: Some(22),
                delay: Duration::from_millis(15),
                ..Rule::new(Answer::Open)
            },
            Rule {
                port: Some(443),
                delay: Duration::from_millis(15),
                ..Rule::new(Answer::Closed)
            },
        ],
        ..Network::default()
    };
    let (outcome, log, _) = run(&plan, &net, &Arc::new(ScanControl::new()), every_2, None);
    assert!(matches!(outcome, ScanOutcome::Finished { .. }));
    let mut seen: Vec<Key> = Vec::new();
    let mut periodic = 0;
    let total = plan.total_probes();
    for e in &log {
        match e {
            Event::Reply(r) => seen.push((r.addr.ip(), r.proto, r.port)),
            Event::Checkpoint(c) => {
                if c.next_index > 0 && c.next_index < total {
                    periodic += 1;
                }
                for q in 0..c.next_index.min(plan.walk.span()) {
                    let k = plan.probe_of(plan.walk.at(q).0);
                    if k.2 != 80 {
                        assert!(
                            seen.contains(&k),
                            "checkpoint at {} before the answer of position {q} ({k:?})",
                            c.next_index
                        );
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        periodic > 0,
        "the scan lasted long enough for periodic checkpoints"
    );
}

#[test]
fn hold_writes_paused_and_release_writes_resumed() {
    let spec = ScanSpec {
        targets: vec!["198.19.24.1-3".into()],
        ports: "22,80,443,8080".into(),
        wait_ms: 40,
        ..spec_base()
    };
    let net = mixed();
    // (A plan keeps its answered set: each run gets its own.)
    let want = clean(&ScanPlan::new(&spec).unwrap(), &net);
    let plan = ScanPlan::new(&spec).unwrap();
    let control = Arc::new(ScanControl::new());
    let c = control.clone();
    let mut once = true;
    let hook = Box::new(move |n: u64| {
        if n == 5 && once {
            once = false;
            c.hold("test");
            let c2 = c.clone();
            std::thread::spawn(move || {
                // Release once the hold is on record (the engine idles meanwhile).
                std::thread::sleep(Duration::from_millis(300));
                c2.release();
            });
            return false;
        }
        true
    });
    let (outcome, log, sim) = run(&plan, &net, &control, RunOptions::default(), Some(hook));
    assert!(
        matches!(outcome, ScanOutcome::Finished { .. }),
        "{outcome:?}"
    );
    let paused = log
        .iter()
        .position(|e| matches!(e, Event::Paused(p) if p.next_index == 5 && p.reason == "test"))
        .expect("Paused at 5");
    let next = log[paused + 1..]
        .iter()
        .find(|e| !matches!(e, Event::Sample(_)))
        .expect("more after Paused");
    assert!(
        matches!(next, Event::Resumed(r) if r.from_index == 5),
        "Resumed right after: {next:?}"
    );
    assert_eq!(results(&[&log]), want);
    assert!(sim.sends().values().all(|&n| n == 1));
}
