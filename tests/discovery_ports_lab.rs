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
    }
}
