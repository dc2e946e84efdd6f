//! A port scan with `-P` options discovers hosts first, as nmap does: the
//! sweep with the asked probes, then the port scan of the hosts found up only,
//! in one log. Checked on the lab's sparse network (every fourth address
//! lives) against the ground truth and nmap (the same command) over AF_PACKET
//! and AF_XDP; a pause in each walk and a kill -9 in the port walk resume to
//! the same exact results. Also: a sharded `-sn` sweep's shards together find
//! exactly the unsharded sweep's hosts. Needs root, nmap and xmllint.

mod common;

use common::*;
use prtip_lab::{
    GroundTruth, HostTruth, LabConfig, LabGuard, PortTruth, Proto, Sparse, SparseMode,
};
use prtip_store::event::{Event, PortState, Protocol, Reason};
use prtip_store::{HistoryIndex, LogReader, ScanStatus};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NET: &str = "198.18.1.0/27";
const PORTS: &str = "22,80";

fn sparse_lab(prefix: &str) -> LabGuard {
    lab_with(LabConfig {
        tcp_ports: vec![22],
        udp_ports: vec![],
        queues: 1,
        sparse: Some(Sparse {
            mode: SparseMode::Silent,
            ..Sparse::default()
        }),
        ..lab_config(prefix)
    })
}

/// Every row of a log: (address, protocol, port) → (state, reason).
type Rows = BTreeMap<(IpAddr, Protocol, u16), (PortState, Reason)>;

fn rows(dir: &Path) -> Rows {
    let r = LogReader::open(dir).unwrap();
    prtip_store::sorted_rows(&r)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            (
                (row.addr.ip(), row.proto, row.port),
                (row.state, row.reason),
            )
        })
        .collect()
}

/// The exact rows of `-sS -PE -PS443 NET -p 22,80` on the sparse lab: one host
/// row per address (up with echo-reply or reset, down with no-response), and
/// the two ports of each host up only (22 open, 80 closed).
fn assert_exact(g: &GroundTruth, got: &Rows, what: &str) {
    let mut want_keys = Vec::new();
    for i in 0..32u32 {
        let a = IpAddr::from(std::net::Ipv4Addr::from(
            u32::from(std::net::Ipv4Addr::new(198, 18, 1, 0)) + i,
        ));
        want_keys.push((a, Protocol::Host, 0));
        let (state, reason) = got
            .get(&(a, Protocol::Host, 0))
            .unwrap_or_else(|| panic!("{what}: no host row for {a}: {got:?}"));
        if g.host(a) == HostTruth::Up {
            assert_eq!(*state, PortState::Open, "{what}: {a} is up");
            assert!(
                matches!(reason, Reason::EchoReply | Reason::Reset),
                "{what}: {a} up with {reason:?}"
            );
            for port in [22u16, 80] {
                want_keys.push((a, Protocol::Tcp, port));
                let want = match g.port(Proto::Tcp, a, port) {
                    PortTruth::Open => PortState::Open,
                    PortTruth::Closed => PortState::Closed,
                    other => panic!("{what}: the lab says {other:?} for {a}:{port}"),
                };
                assert_eq!(
                    got.get(&(a, Protocol::Tcp, port)).map(|r| r.0),
                    Some(want),
                    "{what}: {a}:{port}"
                );
            }
        } else {
            assert_eq!(
                (*state, *reason),
                (PortState::Filtered, Reason::NoResponse),
                "{what}: {a} is down"
            );
        }
    }
    want_keys.sort();
    let keys: Vec<_> = got.keys().copied().collect();
    assert_eq!(keys, want_keys, "{what}: no port row for a host down");
}

/// nmap's hosts up and port states for the same command (its XML).
fn nmap_rows(ns: &str, args: &[&str]) -> BTreeMap<(IpAddr, u16), String> {
    let out = run_in_ns(ns, "nmap", &[&["-n", "-T5", "-oX", "-"], args].concat());
    assert!(out.status.success(), "nmap {args:?}: {out:?}");
    let xml = String::from_utf8_lossy(&out.stdout);
    let mut m = BTreeMap::new();
    for host in xml.split("<host ").skip(1) {
        if !host.contains("<status state=\"up\"") {
            continue;
        }
        let addr: IpAddr = host
            .split("addr=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        m.insert((addr, 0), "up".to_string());
        for port in host.split("<port ").skip(1) {
            let id: u16 = port
                .split("portid=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let state = port
                .split("state=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            m.insert((addr, id), state.to_string());
        }
    }
    m
}

/// Our rows in nmap's terms: hosts up and the port states of their ports.
fn as_nmap(got: &Rows) -> BTreeMap<(IpAddr, u16), String> {
    let mut m = BTreeMap::new();
    for ((a, proto, port), (state, _)) in got {
        match (proto, state) {
            (Protocol::Host, PortState::Open) => {
                m.insert((*a, 0), "up".to_string());
            }
            (Protocol::Host, _) => {}
            _ => {
                m.insert((*a, *port), state.as_str().to_string());
            }
        }
    }
    m
}

fn events(dir: &Path) -> Vec<Event> {
    let r = LogReader::open(dir).unwrap();
    r.iter().map(|e| e.unwrap().to_event()).collect()
}

fn status(home: &Path, id: u64) -> ScanStatus {
    let dir = scan_dir(home, id);
    prtip_session::effective_status(status_row(home, id), &dir).unwrap()
}

fn status_row(home: &Path, id: u64) -> ScanStatus {
    let h = HistoryIndex::open(&home.join("history.redb")).unwrap();
    h.get(id).unwrap().unwrap().status
}

fn scan_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "scan",
        "-sS",
        "-PE",
        "-PS443",
        NET,
        "-p",
        PORTS,
        "--wait",
        "300ms",
        "--max-retries",
        "1",
        "--quiet",
    ];
    a.extend_from_slice(extra);
    a
}

fn ports_scan(home: &Path, lab: &LabGuard, backend: &[&str], xml: &Path) {
    let x = xml.to_str().unwrap();
    let a = scan_args(&[backend, &["-oX", x]].concat());
    let out = scan_cmd(home, &lab.config().scan_ns, &a).output().unwrap();
    assert!(
        out.status.success(),
        "prtip {a:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_dtd_valid(xml: &Path) {
    let lint = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
        .arg(xml)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
}

#[test]
fn p_options_on_a_port_scan_sweep_first_and_scan_only_the_hosts_up_over_af_packet_and_af_xdp() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = sparse_lab("dpp");
    let c = lab.config().clone();
    let g = c.ground_truth();
    let home = tempfile::tempdir().unwrap();
    let oracle = nmap_rows(&c.scan_ns, &["-sS", "-PE", "-PS443", "-p", PORTS, NET]);
    assert_eq!(
        oracle.keys().filter(|k| k.1 == 0).count(),
        8,
        "nmap finds every fourth host: {oracle:?}"
    );
    for (id, backend) in [(1u64, vec![]), (2, vec!["--xdp", c.scan_if.as_str()])] {
        let xml = home.path().join(format!("out{id}.xml"));
        ports_scan(home.path(), &lab, &backend, &xml);
        let dir = scan_dir(home.path(), id);
        let got = rows(&dir);
        let what = format!("backend {backend:?}");
        assert_exact(&g, &got, &what);
        assert_eq!(as_nmap(&got), oracle, "{what}: nmap agrees");
        // One log: the sweep, the port phase naming the hosts up, the port
        // walk, one Finished.
        let ev = events(&dir);
        let phases: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::PortPhase(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(phases.len(), 1, "{what}");
        let up: Vec<IpAddr> = phases[0].hosts.iter().map(|a| a.ip()).collect();
        let live: Vec<IpAddr> = got
            .keys()
            .filter(|k| k.1 == Protocol::Host && g.host(k.0) == HostTruth::Up)
            .map(|k| k.0)
            .collect();
        assert_eq!(up, live, "{what}: the port phase lists the hosts up");
        assert_eq!(
            phases[0].total_probes,
            8 * 2 * 2,
            "{what}: hosts × ports × passes"
        );
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::Finished(_)))
                .count(),
            1
        );
        // nmap's XML: hosts up listed with their reason and ports, valid.
        let text = std::fs::read_to_string(&xml).unwrap();
        assert_eq!(text.matches("<status state=\"up\"").count(), 8, "{text}");
        assert_eq!(text.matches("<port protocol=\"tcp\"").count(), 16, "{text}");
        assert!(
            text.contains("<hosts up=\"8\" down=\"24\" total=\"32\"/>"),
            "{text}"
        );
        assert_dtd_valid(&xml);
        // Hosts up are not open ports: not in the counters, not in history's
        // open ports; history counts them apart.
        let open_ports = got
            .iter()
            .filter(|(k, st)| k.1 != Protocol::Host && st.0 == PortState::Open)
            .count() as u64;
        assert!(open_ports > 0, "{what}");
        let Some(f) = ev.iter().find_map(|e| match e {
            Event::Finished(f) => Some(f),
            _ => None,
        }) else {
            panic!("{what}: no Finished")
        };
        assert_eq!(f.counters.open, open_ports, "{what}: counters");
        let h = HistoryIndex::open(&home.path().join("history.redb")).unwrap();
        let row = h.get(id).unwrap().unwrap();
        assert_eq!(
            (row.ports_discovered, row.hosts_up),
            (open_ports, Some(8)),
            "{what}: history"
        );
    }
}

/// Where a log stands: in the sweep (a checkpoint past 0, no port phase yet) or
/// in the port walk (a checkpoint past 0 after the port phase).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Walk {
    Sweep,
    Ports,
}

fn walk_reached(ev: &[Event], walk: Walk) -> bool {
    let phase = ev.iter().position(|e| matches!(e, Event::PortPhase(_)));
    let moved = |from: usize| {
        ev[from..]
            .iter()
            .any(|e| matches!(e, Event::Checkpoint(c) if c.next_index > 0))
    };
    match (walk, phase) {
        (Walk::Sweep, None) => moved(0),
        (Walk::Sweep, Some(_)) => panic!("the sweep ended before the test could stop it"),
        (Walk::Ports, Some(i)) => moved(i + 1),
        (Walk::Ports, None) => false,
    }
}

/// Run `args` (scan or resume of scan 1) and stop it with `signal` once its log
/// is inside `walk`; returns the exit status.
fn stop_in(
    home: &Path,
    lab: &LabGuard,
    args: &[&str],
    walk: Walk,
    signal: i32,
) -> std::process::ExitStatus {
    let mut child = KillOnDrop(
        scan_cmd(home, &lab.config().scan_ns, args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let dir = scan_dir(home, 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "{args:?} never reached {walk:?}");
        if let Ok(r) = LogReader::open(&dir) {
            let ev: Vec<Event> = r
                .iter()
                .map_while(|e| e.ok())
                .map(|e| e.to_event())
                .collect();
            if walk_reached(&ev, walk) {
                break;
            }
        }
        if let Ok(Some(st)) = child.0.try_wait() {
            panic!("{args:?} ended ({st}) before reaching {walk:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped
    // (`ip netns exec` execs prtip in its place).
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, signal) }, 0);
    child.0.wait().unwrap()
}

/// A slow scan (its walks take seconds) with a checkpoint every few probes.
fn slow_args() -> Vec<&'static str> {
    scan_args(&["--rate", "8", "--checkpoint-every", "2"])
}

const RESUME: &[&str] = &["replay", "1", "--from-checkpoint", "--quiet"];

fn assert_paused_in(home: &Path, st: std::process::ExitStatus, walk: Walk) {
    assert_eq!(st.code(), Some(75), "a pause exits 75");
    assert_eq!(status(home, 1), ScanStatus::Paused);
    let ev = events(&scan_dir(home, 1));
    let phase = ev.iter().position(|e| matches!(e, Event::PortPhase(_)));
    let paused = ev
        .iter()
        .rposition(|e| matches!(e, Event::Paused(_)))
        .unwrap();
    match walk {
        Walk::Sweep => assert_eq!(phase, None, "paused in the sweep"),
        Walk::Ports => assert!(phase.is_some_and(|p| p < paused), "paused in the port walk"),
    }
}

fn assert_finished_exactly(home: &Path, lab: &LabGuard, what: &str) {
    let out = scan_cmd(home, &lab.config().scan_ns, RESUME)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{what}: {out:?}");
    assert_eq!(status(home, 1), ScanStatus::Completed, "{what}");
    let dir = scan_dir(home, 1);
    assert_exact(&lab.config().ground_truth(), &rows(&dir), what);
    let ev = events(&dir);
    let count = |f: fn(&Event) -> bool| ev.iter().filter(|e| f(e)).count();
    assert_eq!(count(|e| matches!(e, Event::PortPhase(_))), 1, "{what}");
    assert_eq!(count(|e| matches!(e, Event::Finished(_))), 1, "{what}");
}

#[test]
fn a_pause_in_the_sweep_and_one_in_the_port_walk_resume_to_the_exact_results() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = sparse_lab("dpr");
    let home = tempfile::tempdir().unwrap();
    let st = stop_in(home.path(), &lab, &slow_args(), Walk::Sweep, libc::SIGINT);
    assert_paused_in(home.path(), st, Walk::Sweep);
    let st = stop_in(home.path(), &lab, RESUME, Walk::Ports, libc::SIGINT);
    assert_paused_in(home.path(), st, Walk::Ports);
    assert_finished_exactly(home.path(), &lab, "paused in each walk");
}

#[test]
fn a_kill_9_in_the_sweep_and_one_in_the_port_walk_resume_to_the_exact_results_over_af_xdp() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = sparse_lab("dpk");
    let iface = lab.config().scan_if.clone();
    let home = tempfile::tempdir().unwrap();
    let args = [slow_args(), vec!["--xdp", &iface]].concat();
    let st = stop_in(home.path(), &lab, &args, Walk::Sweep, libc::SIGKILL);
    assert_eq!(st.code(), None, "killed");
    assert_eq!(status(home.path(), 1), ScanStatus::Interrupted);
    let st = stop_in(home.path(), &lab, RESUME, Walk::Ports, libc::SIGKILL);
    assert_eq!(st.code(), None, "killed");
    assert_eq!(status(home.path(), 1), ScanStatus::Interrupted);
    assert_finished_exactly(home.path(), &lab, "killed in each walk");
}

#[test]
fn the_shards_of_a_sweep_find_together_exactly_the_hosts_of_the_unsharded_sweep() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = sparse_lab("dsh");
    let c = lab.config().clone();
    let g = c.ground_truth();
    let home = tempfile::tempdir().unwrap();
    let net = "198.18.1.0/24";
    // The shards of one scan walk one permutation: the same --seed.
    let sweep = |id: u64, shard: Option<&str>| -> Rows {
        let mut a = vec![
            "scan",
            "-sn",
            "-PE",
            "-PS22",
            net,
            "--wait",
            "300ms",
            "--max-retries",
            "1",
            "--quiet",
            "--seed",
            "11",
        ];
        if let Some(s) = shard {
            a.extend(["--shard", s]);
        }
        let out = scan_cmd(home.path(), &c.scan_ns, &a).output().unwrap();
        assert!(out.status.success(), "{a:?}: {out:?}");
        rows(&scan_dir(home.path(), id))
    };
    let whole = sweep(1, None);
    assert_eq!(whole.len(), 256, "one host row per address");
    let up = |r: &Rows| -> Vec<IpAddr> {
        r.iter()
            .filter(|(_, (s, _))| *s == PortState::Open)
            .map(|(k, _)| k.0)
            .collect()
    };
    let live: Vec<IpAddr> = whole
        .keys()
        .map(|k| k.0)
        .filter(|a| g.host(*a) == HostTruth::Up)
        .collect();
    assert_eq!(up(&whole), live, "the unsharded sweep finds the live hosts");
    assert_eq!(live.len(), 64);
    let mut union: Vec<IpAddr> = Vec::new();
    let mut seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for (i, shard) in ["0/3", "1/3", "2/3"].iter().enumerate() {
        let r = sweep(i as u64 + 2, Some(shard));
        assert!(
            !r.is_empty() && r.len() < 256,
            "shard {shard}: {} hosts",
            r.len()
        );
        for k in r.keys() {
            *seen.entry(k.0).or_default() += 1;
        }
        union.extend(up(&r));
    }
    union.sort();
    assert_eq!(union, up(&whole), "the shards' hosts up are the sweep's");
    assert_eq!(seen.len(), 256, "every address is in a shard");
    assert!(
        seen.values().all(|n| *n == 1),
        "each address is in one shard only"
    );
    // prtip merge folds the three into the unsharded sweep's results.
    let out_home = tempfile::tempdir().unwrap();
    let out = prtip()
        .env("PRTIP_HOME", out_home.path())
        .env_remove("PRTIP_HISTORY")
        .arg("merge")
        .args((2..5).map(|id| scan_dir(home.path(), id)))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "merge: {out:?}");
    let states =
        |r: &Rows| -> Vec<(IpAddr, PortState)> { r.iter().map(|(k, v)| (k.0, v.0)).collect() };
    assert_eq!(
        states(&rows(&scan_dir(out_home.path(), 1))),
        states(&whole),
        "merged"
    );
}
