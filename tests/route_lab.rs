//! Route discovery (`prtip_engine::route::discover`) against real kernel tables
//! in a pair of uniquely named namespaces joined by a veth, both families: the
//! route, source and MAC the kernel's tables give, the next hop found by ARP
//! and by NDP when the neighbour table has no entry, and the errors when there
//! is no route or no answer. Needs root.
//!
//! Layout: scanner ns `<tag>-s` (veth `<tag>s`, 02:70:72:74:00:01,
//! 198.18.0.1/30 and 2001:db8:0:1::1/64; routes 198.19.0.0/16 via 198.18.0.2 and
//! 2001:db8:1::/48 via 2001:db8:0:1::2; no default route) and target ns
//! `<tag>-t` (veth `<tag>t`, 02:70:72:74:00:02, 198.18.0.2/30 and
//! 2001:db8:0:1::2/64). Nothing is sent but ARP and NDP on that veth.

mod common;

use common::netns_tests_enabled;
use prtip_engine::route::{self, Route, RouteError};
use prtip_engine::wire::EthernetAddress;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

const SCAN_MAC: EthernetAddress = EthernetAddress([2, 0x70, 0x72, 0x74, 0, 1]);
const GW_MAC: EthernetAddress = EthernetAddress([2, 0x70, 0x72, 0x74, 0, 2]);
/// A MAC only a static neighbour entry can give.
const TABLE_MAC: EthernetAddress = EthernetAddress([2, 0x70, 0x72, 0x74, 0, 0x99]);

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Two namespaces and a veth; removed on drop, also when a test panics.
struct RouteLab {
    scan_ns: String,
    tgt_ns: String,
    scan_if: String,
    tgt_if: String,
}

impl RouteLab {
    fn up() -> RouteLab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("rt{}x{}", std::process::id() % 100_000, n);
        let lab = RouteLab {
            scan_ns: format!("{tag}-s"),
            tgt_ns: format!("{tag}-t"),
            scan_if: format!("{tag}s"),
            tgt_if: format!("{tag}t"),
        };
        let (s, t) = (lab.scan_ns.as_str(), lab.tgt_ns.as_str());
        let (si, ti) = (lab.scan_if.as_str(), lab.tgt_if.as_str());
        ip(&["netns", "add", s]);
        ip(&["netns", "add", t]);
        #[rustfmt::skip]
        ip(&["link", "add", si, "netns", s, "type", "veth", "peer", "name", ti, "netns", t]);
        for (ns, dev, mac, v4, v6) in [
            (
                s,
                si,
                "02:70:72:74:00:01",
                "198.18.0.1/30",
                "2001:db8:0:1::1/64",
            ),
            (
                t,
                ti,
                "02:70:72:74:00:02",
                "198.18.0.2/30",
                "2001:db8:0:1::2/64",
            ),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "address", mac]);
            ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
            // nodad: usable (and the preferred source) at once, not after DAD.
            ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip(&[
            "-n",
            s,
            "route",
            "add",
            "198.19.0.0/16",
            "via",
            "198.18.0.2",
        ]);
        #[rustfmt::skip]
        ip(&["-n", s, "-6", "route", "add", "2001:db8:1::/48", "via", "2001:db8:0:1::2"]);
        lab
    }

    /// The scanner interface's index.
    fn scan_ifindex(&self) -> u32 {
        let out = ip(&["-n", &self.scan_ns, "-o", "link", "show", &self.scan_if]);
        out.split(':').next().unwrap().trim().parse().unwrap()
    }

    /// Empty both neighbour tables of the veth.
    fn flush_neighbours(&self) {
        for (ns, dev) in [(&self.scan_ns, &self.scan_if), (&self.tgt_ns, &self.tgt_if)] {
            ip(&["-n", ns, "neigh", "flush", "dev", dev]);
            ip(&["-n", ns, "-6", "neigh", "flush", "dev", dev]);
        }
    }

    /// A neighbour entry of `ns` for `who` on `dev`, as `ip neigh` prints it ("" if none).
    fn neighbour(ns: &str, dev: &str, who: &str) -> String {
        ip(&["-n", ns, "neigh", "show", who, "dev", dev])
            .trim()
            .to_string()
    }

    fn discover(
        &self,
        dst: &str,
        iface: Option<&str>,
        src: Option<&str>,
    ) -> Result<Route, RouteError> {
        let (dst, iface, src) = (addr(dst), iface.map(str::to_string), src.map(addr));
        prtip_lab::netns::run_in_netns(&self.scan_ns, move || {
            route::discover(dst, iface.as_deref(), src, None)
        })
        .expect("entering the scanner namespace")
    }

    fn route(&self, src: &str, next_hop: &str, dst_mac: EthernetAddress) -> Route {
        Route {
            iface: self.scan_if.clone(),
            ifindex: self.scan_ifindex(),
            src_ip: addr(src),
            src_mac: SCAN_MAC,
            next_hop: addr(next_hop),
            dst_mac,
            resolves: true,
        }
    }
}

impl Drop for RouteLab {
    fn drop(&mut self) {
        for ns in [&self.scan_ns, &self.tgt_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn route_source_and_mac_from_the_kernel_tables_both_families() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = RouteLab::up();
    let (s, si) = (&lab.scan_ns, &lab.scan_if);
    ip(&[
        "-n",
        s,
        "neigh",
        "replace",
        "198.18.0.2",
        "lladdr",
        "02:70:72:74:00:99",
        "dev",
        si,
        "nud",
        "permanent",
    ]);
    #[rustfmt::skip]
    ip(&["-n", s, "-6", "neigh", "replace", "2001:db8:0:1::2", "lladdr", "02:70:72:74:00:99", "dev", si, "nud", "permanent"]);
    // Behind the gateway: the gateway is the next hop, its MAC the table's.
    assert_eq!(
        lab.discover("198.19.4.5", None, None).unwrap(),
        lab.route("198.18.0.1", "198.18.0.2", TABLE_MAC)
    );
    assert_eq!(
        lab.discover("2001:db8:1::4:5", None, None).unwrap(),
        lab.route("2001:db8:0:1::1", "2001:db8:0:1::2", TABLE_MAC)
    );
    // On the link: the target itself is the next hop.
    assert_eq!(
        lab.discover("198.18.0.2", None, None).unwrap(),
        lab.route("198.18.0.1", "198.18.0.2", TABLE_MAC)
    );
    assert_eq!(
        lab.discover("2001:db8:0:1::2", None, None).unwrap(),
        lab.route("2001:db8:0:1::1", "2001:db8:0:1::2", TABLE_MAC)
    );
    // A source given with -S wins over the kernel's choice.
    assert_eq!(
        lab.discover("2001:db8:1::1", None, Some("2001:db8:0:1::77"))
            .unwrap()
            .src_ip,
        addr("2001:db8:0:1::77")
    );
}

#[test]
fn gateway_found_by_arp_when_the_table_has_no_entry() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = RouteLab::up();
    lab.flush_neighbours();
    assert_eq!(
        RouteLab::neighbour(&lab.scan_ns, &lab.scan_if, "198.18.0.2"),
        ""
    );
    assert_eq!(
        RouteLab::neighbour(&lab.tgt_ns, &lab.tgt_if, "198.18.0.1"),
        ""
    );
    assert_eq!(
        lab.discover("198.19.0.1", None, None).unwrap(),
        lab.route("198.18.0.1", "198.18.0.2", GW_MAC)
    );
    // The gateway learnt our MAC from the request, so it came over the link.
    let learnt = RouteLab::neighbour(&lab.tgt_ns, &lab.tgt_if, "198.18.0.1");
    assert!(
        learnt.starts_with("198.18.0.1 lladdr 02:70:72:74:00:01"),
        "target's entry for us: {learnt:?}"
    );
}

#[test]
fn gateway_found_by_ndp_when_the_table_has_no_entry() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = RouteLab::up();
    lab.flush_neighbours();
    assert_eq!(
        RouteLab::neighbour(&lab.scan_ns, &lab.scan_if, "2001:db8:0:1::2"),
        ""
    );
    assert_eq!(
        RouteLab::neighbour(&lab.tgt_ns, &lab.tgt_if, "2001:db8:0:1::1"),
        ""
    );
    assert_eq!(
        lab.discover("2001:db8:1::1", None, None).unwrap(),
        lab.route("2001:db8:0:1::1", "2001:db8:0:1::2", GW_MAC)
    );
    // The gateway learnt our MAC from the solicitation's source link-layer option.
    let learnt = RouteLab::neighbour(&lab.tgt_ns, &lab.tgt_if, "2001:db8:0:1::1");
    assert!(
        learnt.starts_with("2001:db8:0:1::1 lladdr 02:70:72:74:00:01"),
        "target's entry for us: {learnt:?}"
    );
}

#[test]
fn no_route_and_no_answer_are_clear_errors() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = RouteLab::up();
    let si = lab.scan_if.clone();
    // No route: nothing is sent, the message names the target and the way out.
    for dst in ["198.18.200.1", "2001:db8:ffff::1"] {
        assert_eq!(
            lab.discover(dst, None, None).unwrap_err().to_string(),
            format!("no route to {dst} in this network namespace; give the interface with -e IFACE (and -S ADDR, --router-mac MAC)")
        );
    }
    // With -e the target is taken as on that link; nobody answers for it.
    assert_eq!(
        lab.discover("198.18.200.1", Some(&si), None)
            .unwrap_err()
            .to_string(),
        format!("no MAC address for next hop 198.18.200.1 on {si}: not in the neighbour table and no ARP answer; pass --router-mac MAC")
    );
    assert_eq!(
        lab.discover("2001:db8:ffff::1", Some(&si), None)
            .unwrap_err()
            .to_string(),
        format!("no MAC address for next hop 2001:db8:ffff::1 on {si}: not in the neighbour table and no NDP answer; pass --router-mac MAC")
    );
    // With a neighbour entry for it, -e gives the whole route; the IPv6 source
    // is the link's own global address (the kernel has no route to offer one).
    #[rustfmt::skip]
    ip(&["-n", &lab.scan_ns, "-6", "neigh", "replace", "2001:db8:ffff::1", "lladdr", "02:70:72:74:00:99", "dev", &si, "nud", "permanent"]);
    assert_eq!(
        lab.discover("2001:db8:ffff::1", Some(&si), None).unwrap(),
        lab.route("2001:db8:0:1::1", "2001:db8:ffff::1", TABLE_MAC)
    );
}
