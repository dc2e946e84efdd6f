//! Changing a running lab's path for uplink-failure tests: take either veth end
//! down and up again ([`set_link`]), and make the next hop stop answering ARP
//! and NDP ([`set_next_hop`]). Both act only inside the lab's namespaces.
//!
//! - `set_link(c, Side::Scanner, false)`: the scanner's veth is down (sends fail
//!   with ENETDOWN); `Side::Target`: the target's end is down, the scanner's has
//!   no carrier (frames sent into it are dropped by veth, sends still succeed).
//! - `set_next_hop(c, false)`: the scanner's neighbour entries for the target
//!   (IPv4 and IPv6) are removed and the target no longer answers ARP
//!   (`ip link set arp off`) or NDP for its gateway address (the address is
//!   removed from its veth; a route keeps the scanner reachable); the target
//!   keeps its own permanent entries, so frames that still reach it (a scanner
//!   that cached the MAC) are answered normally. The scanner's kernel marks
//!   the neighbours INCOMPLETE, then FAILED.
//!
//! Bringing a link up or the next hop back restores the whole lab network
//! (addresses, routes, neighbours: the kernel flushes routes and neighbours of
//! a device that goes down), as `up` made it.

use crate::config::LabConfig;
use crate::error::LabError;
use crate::lab::{neighbours, setup_network};
use crate::netns::ip;
use std::fmt;
use std::str::FromStr;

/// One end of the lab's veth pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The scanner's end (`<name>-s0` in `<name>-scan`).
    Scanner,
    /// The target's end (`<name>-t0` in `<name>-tgt`).
    Target,
}

impl Side {
    fn ns_if(self, c: &LabConfig) -> (&str, &str) {
        match self {
            Side::Scanner => (&c.scan_ns, &c.scan_if),
            Side::Target => (&c.tgt_ns, &c.tgt_if),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Scanner => "scanner",
            Side::Target => "target",
        })
    }
}

impl FromStr for Side {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Side, LabError> {
        match s {
            "scanner" | "scan" => Ok(Side::Scanner),
            "target" | "tgt" => Ok(Side::Target),
            other => Err(LabError::Invalid(format!(
                "unknown side '{other}': expected scanner or target"
            ))),
        }
    }
}

/// Take one veth end down (`up == false`) or bring it up again; bringing it up
/// restores the lab's addresses, routes and neighbour entries.
pub fn set_link(c: &LabConfig, side: Side, up: bool) -> Result<(), LabError> {
    crate::privilege::require_lab_privileges("link")?;
    let (ns, dev) = side.ns_if(c);
    ip(&[
        "-n",
        ns,
        "link",
        "set",
        "dev",
        dev,
        if up { "up" } else { "down" },
    ])?;
    if up {
        setup_network(c)?;
    }
    Ok(())
}

/// Whether that end is administratively up.
pub fn link_is_up(c: &LabConfig, side: Side) -> Result<bool, LabError> {
    let (ns, dev) = side.ns_if(c);
    let out = ip(&["-n", ns, "-o", "link", "show", "dev", dev])?;
    Ok(out
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .is_some_and(|(flags, _)| flags.split(',').any(|f| f == "UP")))
}

/// Make the next hop stop answering ARP and NDP (`answering == false`), or
/// answer again (restoring the lab's addresses and static neighbour entries).
pub fn set_next_hop(c: &LabConfig, answering: bool) -> Result<(), LabError> {
    crate::privilege::require_lab_privileges("next-hop")?;
    let (t, dev) = (c.tgt_ns.as_str(), c.tgt_if.as_str());
    let link6 = c.link_net6().to_string();
    if answering {
        ip(&["-n", t, "link", "set", "dev", dev, "arp", "on"])?;
        let _ = ip(&[
            "-n", t, "-6", "route", "del", &link6, "dev", dev, "metric", "2048",
        ]);
        setup_network(c)?;
    } else {
        // IPv4: a NOARP device ignores ARP requests. IPv6 answers neighbour
        // solicitations regardless, so the gateway address itself goes away;
        // a route keeps the scanner reachable for replies.
        ip(&["-n", t, "link", "set", "dev", dev, "arp", "off"])?;
        let cidr = format!("{}/64", c.tgt_ip6);
        let _ = ip(&["-n", t, "-6", "addr", "del", &cidr, "dev", dev]);
        ip(&[
            "-n", t, "-6", "route", "replace", &link6, "dev", dev, "metric", "2048",
        ])?;
        neighbours(c, false)?;
        // Switching ARP off flushed the target's entries; it keeps answering
        // frames that still arrive, to the scanner's real MAC.
        for addr in [c.scan_ip.to_string(), c.scan_ip6.to_string()] {
            ip(&[
                "-n",
                t,
                "neigh",
                "replace",
                &addr,
                "lladdr",
                &c.scan_mac.to_string(),
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        }
        let _ = ip(&["-n", &c.scan_ns, "neigh", "flush", "dev", &c.scan_if]);
    }
    Ok(())
}

/// Whether the next hop answers ARP/NDP (the target's veth has ARP on).
pub fn next_hop_answering(c: &LabConfig) -> Result<bool, LabError> {
    let out = ip(&["-n", &c.tgt_ns, "-o", "link", "show", "dev", &c.tgt_if])?;
    Ok(!out.contains("NOARP"))
}
