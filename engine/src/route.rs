//! Where probes leave from: interface, source address, our MAC and the next hop's
//! MAC, for IPv4 and IPv6 destinations, from the kernel's tables of the calling
//! thread's network namespace over rtnetlink ([`netlink`]): the route the kernel
//! itself picks towards the destination (`RTM_GETROUTE`, with its preferred
//! source), the interface (`RTM_GETLINK`) and the neighbour table
//! (`RTM_GETNEIGH`), with ARP or NDP ([`resolve`]) when the table has no entry
//! for the next hop yet. `-e`, `-S` and `--router-mac` override each part.
//!
//! Owns: that discovery. Never changes a kernel table; never sends anything but
//! ARP requests or Neighbor Solicitations on the outgoing link (only when the
//! neighbour table lacks the next hop and no `--router-mac` was given).

pub mod netlink;
pub mod resolve;

use crate::wire::EthernetAddress;
use netlink::{NlError, Rtnl};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// How long ARP / NDP waits for the next hop to answer.
pub const RESOLVE_WAIT: Duration = Duration::from_secs(1);

/// What probes need to leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Interface name.
    pub iface: String,
    /// Interface index.
    pub ifindex: u32,
    /// Source address, of the destination's family.
    pub src_ip: IpAddr,
    /// Interface MAC (all zeros on links without one, like `lo`).
    pub src_mac: EthernetAddress,
    /// Gateway, or the target itself when it is on the link.
    pub next_hop: IpAddr,
    /// Next hop's MAC; all zeros when the link resolves no neighbours
    /// (loopback, NOARP) and no `--router-mac` was given (see [`Route::next_hop_mac`]).
    pub dst_mac: EthernetAddress,
    /// Whether the link resolves neighbours (Ethernet, neither loopback nor NOARP).
    pub resolves: bool,
}

impl Route {
    /// The next hop's MAC, `None` on a link that has no neighbour MACs (loopback,
    /// NOARP) when none was given.
    pub fn next_hop_mac(&self) -> Option<EthernetAddress> {
        (self.resolves || self.dst_mac != EthernetAddress::default()).then_some(self.dst_mac)
    }

    /// The source address for consumers that build IPv4 frames only:
    /// `0.0.0.0` on an IPv6 route.
    pub fn src_v4(&self) -> Ipv4Addr {
        match self.src_ip {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        }
    }
}

/// Why no route was found.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No routing table entry covers the target.
    #[error("no route to {dst} in this network namespace{}; give the interface with -e IFACE (and -S ADDR, --router-mac MAC)", iface.as_ref().map(|i| format!(" via {i}")).unwrap_or_default())]
    NoRoute {
        /// Target.
        dst: IpAddr,
        /// Interface asked for.
        iface: Option<String>,
    },
    /// The interface given with `-e` does not exist here.
    #[error(
        "no interface {iface} in this network namespace (from -e {iface}); `ip link` lists them"
    )]
    NoInterface {
        /// Interface asked for.
        iface: String,
    },
    /// The source address given is not of the target's family.
    #[error("source address {src} (from -S) is not of the family of {dst}; give an {} address with -S ADDR", if dst.is_ipv4() { "IPv4" } else { "IPv6" })]
    SourceFamily {
        /// Source given.
        src: IpAddr,
        /// Target.
        dst: IpAddr,
    },
    /// The kernel offers no source address towards the target.
    #[error("no {} source address towards {dst} on {iface}; give one with -S ADDR", if dst.is_ipv4() { "IPv4" } else { "IPv6" })]
    NoSource {
        /// Target.
        dst: IpAddr,
        /// Interface.
        iface: String,
    },
    /// The next hop's MAC is unknown.
    #[error("no MAC address for next hop {hop} on {iface}: not in the neighbour table and no {} answer; pass --router-mac MAC", if hop.is_ipv4() { "ARP" } else { "NDP" })]
    NoNeighbour {
        /// Next hop.
        hop: IpAddr,
        /// Interface.
        iface: String,
    },
    /// A system call failed.
    #[error("{what}: {err}")]
    Io {
        /// What was attempted.
        what: String,
        /// The error.
        err: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(NlError) -> RouteError {
    let what = what.into();
    move |e| RouteError::Io {
        what,
        err: e.into_io(),
    }
}

/// Find interface, addresses and next-hop MAC for probes to `dst` (IPv4 or
/// IPv6). Each `Some` argument overrides what discovery would find: `iface`
/// (`-e`) restricts the route to that interface, and when it has none the
/// target is taken as on that link (the source is then the kernel's choice for
/// IPv4, the link's first settled global address for IPv6); `src` (`-S`) must
/// be of `dst`'s family;
/// `router_mac` (`--router-mac`) skips the neighbour table and ARP / NDP.
///
/// Needs no privilege unless the neighbour is unknown (then ARP / NDP over an
/// AF_PACKET socket needs CAP_NET_RAW).
pub fn discover(
    dst: IpAddr,
    iface: Option<&str>,
    src: Option<IpAddr>,
    router_mac: Option<EthernetAddress>,
) -> Result<Route, RouteError> {
    if let Some(s) = src {
        if s.is_ipv4() != dst.is_ipv4() {
            return Err(RouteError::SourceFamily { src: s, dst });
        }
    }
    let mut nl = Rtnl::open().map_err(|err| RouteError::Io {
        what: "opening a netlink route socket".into(),
        err,
    })?;
    let given = match iface {
        Some(name) => Some(
            nl.link_by_name(name)
                .map_err(io_err(format!("looking up interface {name}")))?
                .ok_or_else(|| RouteError::NoInterface {
                    iface: name.to_string(),
                })?,
        ),
        None => None,
    };
    let kernel = nl
        .route_get(dst, given.as_ref().map(|l| l.index))
        .map_err(io_err(format!("asking the kernel for a route to {dst}")))?;
    let (link, next_hop, pref_src) = match (kernel, given) {
        (Some(r), Some(l)) if r.oif == l.index => (l, r.gateway.unwrap_or(dst), r.pref_src),
        // An interface given without a covering route on it (e.g. `lo`): the
        // target is taken as on that link.
        (_, Some(l)) => (l, dst, None),
        (Some(r), None) => {
            let l = nl
                .link_by_index(r.oif)
                .map_err(io_err(format!("looking up interface #{}", r.oif)))?
                .ok_or(RouteError::NoRoute { dst, iface: None })?;
            (l, r.gateway.unwrap_or(dst), r.pref_src)
        }
        (None, None) => return Err(RouteError::NoRoute { dst, iface: None }),
    };
    let src_ip = match src.or(pref_src.filter(|s| s.is_ipv4() == dst.is_ipv4())) {
        Some(s) => s,
        // No route, so no preferred source (IPv6 with -e): an address of the link.
        None => nl
            .interface_address(link.index, dst)
            .map_err(io_err(format!("reading the addresses of {}", link.name)))?
            .ok_or_else(|| RouteError::NoSource {
                dst,
                iface: link.name.clone(),
            })?,
    };
    let dst_mac = match router_mac {
        Some(m) => m,
        None if !link.resolves => EthernetAddress::default(),
        None => neighbour_mac(&mut nl, &link, src_ip, next_hop)?,
    };
    Ok(Route {
        iface: link.name,
        ifindex: link.index,
        src_ip,
        src_mac: link.mac,
        next_hop,
        dst_mac,
        resolves: link.resolves,
    })
}

/// The next hop's MAC from the neighbour table, else by ARP / NDP.
fn neighbour_mac(
    nl: &mut Rtnl,
    link: &netlink::Link,
    src_ip: IpAddr,
    hop: IpAddr,
) -> Result<EthernetAddress, RouteError> {
    if let Some(m) = nl
        .neighbour(link.index, hop)
        .map_err(io_err(format!("reading the neighbour table for {hop}")))?
    {
        return Ok(m);
    }
    let asked = match (src_ip, hop) {
        (IpAddr::V4(s), IpAddr::V4(h)) => resolve::arp(link.index, link.mac, s, h, RESOLVE_WAIT),
        (IpAddr::V6(s), IpAddr::V6(h)) => resolve::ndp(link.index, link.mac, s, h, RESOLVE_WAIT),
        _ => unreachable!("source and next hop are of the target's family"),
    };
    asked
        .map_err(|err| RouteError::Io {
            what: format!(
                "sending {} for {hop} on {}",
                if hop.is_ipv4() {
                    "an ARP request"
                } else {
                    "a Neighbor Solicitation"
                },
                link.name
            ),
            err,
        })?
        .ok_or(RouteError::NoNeighbour {
            hop,
            iface: link.name.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private network namespace with only `lo` (`None` when unprivileged: skip).
    use crate::backend::packet::tests::in_private_netns;

    #[test]
    fn loopback_in_a_private_namespace_both_families() {
        let Some((v4, v6)) = in_private_netns(|| {
            (
                discover("127.0.0.5".parse().unwrap(), Some("lo"), None, None)
                    .map_err(|e| e.to_string()),
                discover("::1".parse().unwrap(), None, None, None).map_err(|e| e.to_string()),
            )
        }) else {
            return;
        };
        let r = v4.unwrap();
        assert_eq!((r.iface.as_str(), r.ifindex), ("lo", 1));
        assert_eq!(r.src_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.next_hop, "127.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(
            (r.dst_mac, r.next_hop_mac()),
            (EthernetAddress::default(), None)
        );
        let r = v6.unwrap();
        assert_eq!((r.iface.as_str(), r.ifindex, r.resolves), ("lo", 1, false));
        assert_eq!(r.src_ip, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(r.next_hop_mac(), None);
    }

    #[test]
    fn no_route_names_the_target_and_the_way_out() {
        let Some(e) = in_private_netns(|| {
            let v4 = discover("198.19.0.1".parse().unwrap(), None, None, None)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let v6 = discover("2001:db8::1".parse().unwrap(), None, None, None)
                .map(|_| ())
                .map_err(|e| e.to_string());
            (v4, v6)
        }) else {
            return;
        };
        assert_eq!(e.0.unwrap_err(), "no route to 198.19.0.1 in this network namespace; give the interface with -e IFACE (and -S ADDR, --router-mac MAC)");
        assert_eq!(e.1.unwrap_err(), "no route to 2001:db8::1 in this network namespace; give the interface with -e IFACE (and -S ADDR, --router-mac MAC)");
    }

    #[test]
    fn bad_overrides_and_a_missing_source_are_refused() {
        let Some(e) = in_private_netns(|| {
            let fam = discover(
                "2001:db8::1".parse().unwrap(),
                None,
                Some("198.18.0.1".parse().unwrap()),
                None,
            )
            .map(|_| ())
            .map_err(|e| e.to_string());
            let dev = discover("198.19.0.1".parse().unwrap(), Some("nosuch0"), None, None)
                .map(|_| ())
                .map_err(|e| e.to_string());
            // `lo` has no route to it and only ::1, of host scope.
            let src = discover("2001:db8::1".parse().unwrap(), Some("lo"), None, None)
                .map(|_| ())
                .map_err(|e| e.to_string());
            (fam, dev, src)
        }) else {
            return;
        };
        assert_eq!(e.0.unwrap_err(), "source address 198.18.0.1 (from -S) is not of the family of 2001:db8::1; give an IPv6 address with -S ADDR");
        assert_eq!(e.1.unwrap_err(), "no interface nosuch0 in this network namespace (from -e nosuch0); `ip link` lists them");
        assert_eq!(
            e.2.unwrap_err(),
            "no IPv6 source address towards 2001:db8::1 on lo; give one with -S ADDR"
        );
    }
}
