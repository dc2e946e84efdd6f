//! A minimal two-namespace veth pair for the XDP program tests (tests/xdp_*.rs):
//! scanner side `S` and target side `T`, unique names, IPv6 off (no stray
//! frames), static neighbours (no ARP), removed on drop even after a panic.
//! Deliberately smaller than prtip-lab: these tests are about the XDP
//! programs, not the lab.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const SCAN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const TGT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SCAN_MAC: [u8; 6] = [0x02, 0x70, 0x78, 0x64, 0x00, 0x01];
pub const TGT_MAC: [u8; 6] = [0x02, 0x70, 0x78, 0x64, 0x00, 0x02];

pub fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn in_ns(ns: &str, cmd: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("ip netns exec")
}

/// Two namespaces joined by a veth pair with `queues` queues per end.
pub struct VethPair {
    pub scan_ns: String,
    pub tgt_ns: String,
    pub scan_if: String,
    pub tgt_if: String,
}

impl VethPair {
    /// The scanner routes `target_net` to the target. The target's kernel does
    /// not own those addresses (no AnyIP route): only XDP answers there, and the
    /// scanner's ACKs/RSTs that follow a handshake are dropped, not reset.
    pub fn new(tag: &str, queues: u32, target_net: &str) -> VethPair {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::SeqCst)
        );
        let p = VethPair {
            scan_ns: format!("pxs-{tag}-{id}"),
            tgt_ns: format!("pxt-{tag}-{id}"),
            scan_if: format!("xs{id}"),
            tgt_if: format!("xt{id}"),
        };
        ip(&["netns", "add", &p.scan_ns]);
        ip(&["netns", "add", &p.tgt_ns]);
        let q = queues.to_string();
        ip(&[
            "link",
            "add",
            &p.scan_if,
            "netns",
            &p.scan_ns,
            "address",
            &mac_str(SCAN_MAC),
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &p.tgt_if,
            "netns",
            &p.tgt_ns,
            "address",
            &mac_str(TGT_MAC),
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ]);
        for (ns, dev, me, peer, peer_mac) in [
            (&p.scan_ns, &p.scan_if, SCAN_IP, TGT_IP, TGT_MAC),
            (&p.tgt_ns, &p.tgt_if, TGT_IP, SCAN_IP, SCAN_MAC),
        ] {
            for s in [
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ] {
                in_ns(ns, &["sysctl", "-qw", s]);
            }
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", &format!("{me}/30"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                &peer.to_string(),
                "lladdr",
                &mac_str(peer_mac),
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
        }
        ip(&[
            "-n",
            &p.scan_ns,
            "route",
            "add",
            target_net,
            "via",
            &TGT_IP.to_string(),
            "dev",
            &p.scan_if,
        ]);
        p
    }

    pub fn sides(&self) -> prtip_xdp::lab::LabSides {
        prtip_xdp::lab::LabSides {
            scan_ns: self.scan_ns.clone(),
            scan_if: self.scan_if.clone(),
            tgt_ns: self.tgt_ns.clone(),
            tgt_if: self.tgt_if.clone(),
        }
    }

    /// `ip -d link show` of the target's veth (to see whether an XDP program is attached).
    pub fn link_details(&self, scanner: bool) -> String {
        let (ns, dev) = if scanner {
            (&self.scan_ns, &self.scan_if)
        } else {
            (&self.tgt_ns, &self.tgt_if)
        };
        let o = in_ns(ns, &["ip", "-d", "link", "show", "dev", dev]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl VethPair {
    /// True once no XDP program is attached to the scanner's (or target's) veth.
    /// Waits up to 5 s: the kernel detaches when the last reference to the link
    /// goes, and another process enumerating links (`bpftool`, another test's
    /// link lookup) may hold one for a moment after we closed ours.
    pub fn detached(&self, scanner: bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if !self.link_details(scanner).contains("xdp") {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting the namespaces destroys the veth pair with them.
        for ns in [&self.scan_ns, &self.tgt_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
