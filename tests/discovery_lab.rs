//! Host discovery (`prtip scan -sn` and the `-P` probes) against the lab's sparse
//! network, where only every fourth address exists: the hosts up must be exactly
//! the live ones of the ground truth, with nmap's reasons, over AF_PACKET and
//! AF_XDP; nmap -sn on the same lab is the oracle for the set of hosts up.
//! ARP and NDP on the scanner's own link, over AF_PACKET and AF_XDP. Needs
//! root and nmap.

mod common;
mod lab_support;

use common::*;
use prtip_lab::{HostTruth, LabConfig, LabGuard, Sparse, SparseMode};
use prtip_store::event::{PortState, Protocol, Reason};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// Host results of a log: address → (up, reason).
fn hosts(dir: &Path) -> BTreeMap<IpAddr, (bool, Reason)> {
    let r = prtip_store::LogReader::open(dir).unwrap();
    prtip_store::sorted_rows(&r)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            assert_eq!((row.proto, row.port), (Protocol::Host, 0), "{row:?}");
            (row.addr.ip(), (row.state == PortState::Open, row.reason))
        })
        .collect()
}

fn sparse_lab(prefix: &str, mode: SparseMode) -> LabGuard {
    lab_with(LabConfig {
        tcp_ports: vec![22],
        udp_ports: vec![],
        queues: 1,
        sparse: Some(Sparse {
            mode,
            ..Sparse::default()
        }),
        ..lab_config(prefix)
    })
}

/// Scan `-sn ARGS TARGET` in the scanner namespace (scan `id` of `home`) and
/// return its host results; the scan must succeed.
fn sweep(
    home: &Path,
    lab: &LabGuard,
    id: u64,
    args: &[&str],
    target: &str,
) -> BTreeMap<IpAddr, (bool, Reason)> {
    let c = lab.config();
    let mut a = vec![
        "scan",
        "-sn",
        "--wait",
        "300ms",
        "--max-retries",
        "1",
        "--quiet",
    ];
    a.extend_from_slice(args);
    a.push(target);
    let out = scan_cmd(home, &c.scan_ns, &a).output().unwrap();
    assert!(
        out.status.success(),
        "prtip {a:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got = hosts(&scan_dir(home, id));
    // Hosts up are host results, not open ports: history counts them apart.
    let up = got.values().filter(|(is_up, _)| *is_up).count() as u64;
    let h = prtip_store::HistoryIndex::open(&home.join("history.redb")).unwrap();
    let row = h.get(id).unwrap().unwrap();
    assert_eq!((row.ports_discovered, row.hosts_up), (0, Some(up)), "{a:?}");
    got
}

/// Every address of `target` is in `got`, up exactly when the ground truth says
/// the host exists, with `reason` (down ones: no-response).
fn assert_truth(
    lab: &LabGuard,
    got: &BTreeMap<IpAddr, (bool, Reason)>,
    n: usize,
    reason: &[Reason],
    what: &str,
) {
    let g = lab.config().ground_truth();
    assert_eq!(got.len(), n, "{what}: one result per address: {got:?}");
    let mut up = 0;
    for (addr, (is_up, r)) in got {
        let live = g.host(*addr) == HostTruth::Up;
        assert_eq!(*is_up, live, "{what}: {addr} ({r:?})");
        if live {
            up += 1;
            assert!(reason.contains(r), "{what}: {addr} up with {r:?}");
        } else {
            assert_eq!(*r, Reason::NoResponse, "{what}: {addr}");
        }
    }
    assert_eq!(up, n / 4, "{what}: every fourth address lives");
}

/// The addresses nmap -sn ARGS finds up (its XML, `<status state="up">`).
fn nmap_up(ns: &str, args: &[&str]) -> Vec<IpAddr> {
    let out = run_in_ns(
        ns,
        "nmap",
        &[&["-n", "-sn", "-T5", "-oX", "-"], args].concat(),
    );
    assert!(out.status.success(), "nmap {args:?}: {out:?}");
    let xml = String::from_utf8_lossy(&out.stdout);
    let mut up = Vec::new();
    for host in xml.split("<host").skip(1) {
        if host.contains("state=\"up\"") {
            let a = host
                .split("addr=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            up.push(a.parse().unwrap());
        }
    }
    up.sort();
    up
}

fn up_of(got: &BTreeMap<IpAddr, (bool, Reason)>) -> Vec<IpAddr> {
    got.iter()
        .filter(|(_, (u, _))| *u)
        .map(|(a, _)| *a)
        .collect()
}

/// A sweep's `-P` options, the reasons hosts may be up with, and nmap's options
/// when it is the oracle.
type Case<'a> = (&'a [&'a str], &'a [Reason], Option<&'a [&'a str]>);

/// IPv4 probes of one backend (`--xdp IF` or AF_PACKET): each alone, then nmap's
/// default mix (no -P), on 64 addresses of the silent sparse network.
fn ipv4_probes(lab: &LabGuard, backend: &[&str]) {
    let home = tempfile::tempdir().unwrap();
    let net = "198.18.1.0/26";
    let cases: &[Case] = &[
        (&["-PE"], &[Reason::EchoReply], Some(&["-PE"])),
        (&["-PP"], &[Reason::TimestampReply], Some(&["-PP"])),
        (&["-PM"], &[Reason::AddressMaskReply], Some(&["-PM"])),
        (&["-PS22"], &[Reason::SynAck], Some(&["-PS22"])),
        (&["-PS443"], &[Reason::Reset], None),
        (&["-PA80"], &[Reason::Reset], Some(&["-PA80"])),
        (&["-PU"], &[Reason::PortUnreachable], Some(&["-PU"])),
        (
            &[],
            &[
                Reason::EchoReply,
                Reason::Reset,
                Reason::TimestampReply,
                Reason::SynAck,
            ],
            None,
        ),
    ];
    for (i, (args, reasons, oracle)) in cases.iter().enumerate() {
        let all = [*args, backend].concat();
        let got = sweep(home.path(), lab, i as u64 + 1, &all, net);
        assert_truth(lab, &got, 64, reasons, &format!("{all:?}"));
        if let Some(o) = oracle {
            let ns = lab.config().scan_ns.clone();
            assert_eq!(
                up_of(&got),
                nmap_up(&ns, &[*o, &[net][..]].concat()),
                "nmap -sn {o:?} agrees"
            );
        }
    }
}

#[test]
fn every_ipv4_probe_finds_exactly_the_live_hosts_over_af_packet() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = sparse_lab("dv4", SparseMode::Silent);
    ipv4_probes(&lab, &[]);
}

#[test]
fn every_ipv4_probe_finds_exactly_the_live_hosts_over_af_xdp() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = sparse_lab("dx4", SparseMode::Silent);
    let iface = lab.config().scan_if.clone();
    ipv4_probes(&lab, &["--xdp", &iface]);
}

#[test]
fn ipv6_probes_find_exactly_the_live_hosts_over_packet_and_xdp_and_unreachable_ones_are_down() {
    if !netns_tests_enabled() {
        return;
    }
    // Absent addresses answer ICMP(v6) unreachable here: still down.
    let lab = sparse_lab("dv6", SparseMode::Unreachable);
    let home = tempfile::tempdir().unwrap();
    let net = "2001:db8:200::/122";
    let cases: &[(&[&str], &[Reason])] = &[
        (&["-PE"], &[Reason::EchoReply]),
        (&["-PS22"], &[Reason::SynAck]),
        (&["-PA80"], &[Reason::Reset]),
        (&["-PU"], &[Reason::PortUnreachable]),
        // The default mix for IPv6: no ICMP timestamp.
        (&[], &[Reason::EchoReply, Reason::Reset, Reason::SynAck]),
    ];
    let iface = lab.config().scan_if.clone();
    let mut id = 0;
    for backend in [&[][..], &["--xdp", &iface][..]] {
        for (args, reasons) in cases {
            id += 1;
            let all = [*args, backend].concat();
            let got = sweep(home.path(), &lab, id, &all, net);
            assert_truth(&lab, &got, 64, reasons, &format!("{all:?}"));
        }
    }
    let ns = lab.config().scan_ns.clone();
    let got = hosts(&scan_dir(home.path(), 1));
    assert_eq!(
        up_of(&got),
        nmap_up(&ns, &["-6", "-PE", net]),
        "nmap -6 -sn -PE"
    );
    // IPv4 of the same network, default mix: ICMP host unreachable is no answer.
    let got = sweep(home.path(), &lab, id + 1, &[], "198.18.1.0/26");
    assert_truth(
        &lab,
        &got,
        64,
        &[
            Reason::EchoReply,
            Reason::Reset,
            Reason::TimestampReply,
            Reason::SynAck,
        ],
        "IPv4 default mix, unreachable mode",
    );
}

#[test]
fn arp_and_ndp_find_the_one_neighbour_of_the_scanner_link() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = sparse_lab("dln", SparseMode::Silent);
    let c = lab.config().clone();
    let home = tempfile::tempdir().unwrap();
    // The scanner's link is a /30 (IPv4) and a /64 (IPv6): the target namespace is
    // its only other host. Our own address is left out (nmap counts itself up).
    let me4 = c.scan_ip.to_string();
    let me6 = c.scan_ip6.to_string();
    let link4 = format!("{}/30", c.link_net().addr());
    let link6 = format!("{}/126", c.scan_ip6);
    for (id, args, target, reason) in [
        (
            1,
            vec!["--exclude", &me4],
            link4.as_str(),
            Reason::ArpResponse,
        ),
        (
            2,
            vec!["-PR", "--exclude", &me4],
            &link4,
            Reason::ArpResponse,
        ),
        (3, vec!["--exclude", &me6], &link6, Reason::NdResponse),
    ] {
        let got = sweep(home.path(), &lab, id, &args, target);
        let up = up_of(&got);
        let want: IpAddr = if reason == Reason::ArpResponse {
            c.tgt_ip.into()
        } else {
            c.tgt_ip6.into()
        };
        assert_eq!(up, vec![want], "{args:?} {target}: {got:?}");
        assert_eq!(got[&want].1, reason);
        assert_eq!(got.len(), 3, "the link's addresses but ours");
    }
    // nmap agrees (it says arp-response for the same host).
    let oracle = nmap_up(&c.scan_ns, &["-PR", "--exclude", &me4, &link4]);
    assert_eq!(oracle, vec![IpAddr::from(c.tgt_ip)]);
    // Over AF_XDP too: the XDP filter passes ARP and NDP answers to the
    // kernel, where an AF_PACKET socket of the scan reads them.
    for (id, args, target, reason) in [
        (
            4,
            vec!["-PR", "--xdp", &c.scan_if, "--exclude", &me4],
            link4.as_str(),
            Reason::ArpResponse,
        ),
        (
            5,
            vec!["--xdp", &c.scan_if, "--exclude", &me6],
            &link6,
            Reason::NdResponse,
        ),
    ] {
        let got = sweep(home.path(), &lab, id, &args, target);
        let want: IpAddr = if reason == Reason::ArpResponse {
            c.tgt_ip.into()
        } else {
            c.tgt_ip6.into()
        };
        assert_eq!(up_of(&got), vec![want], "{args:?} {target}: {got:?}");
        assert_eq!(got[&want].1, reason);
        assert_eq!(got.len(), 3, "the link's addresses but ours");
    }
    // ARP is refused on a routed target.
    let args = ["scan", "-sn", "-PR", "198.18.1.1"];
    let out = scan_cmd(home.path(), &c.scan_ns, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not on a local link"),
        "{out:?}"
    );
}
