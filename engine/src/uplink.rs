//! The uplink watch: whether probes leaving on a route can reach anything — the
//! interface is up with a carrier and the next hop answers ARP (IPv4) or NDP
//! (IPv6). A SYN scan holds (checkpoints, sends nothing) while either fails and
//! continues when both work again.
//!
//! Owns that check and its ARP/NDP socket, opened once before the scan drops
//! its capabilities ([`Uplink::opened`]). Never changes a kernel table; sends
//! nothing but one ARP request or Neighbor Solicitation per check on the
//! outgoing link.

use crate::route::netlink::Rtnl;
use crate::route::resolve::NeighbourSocket;
use crate::route::Route;
use crate::wire::EthernetAddress;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// What a check needs: the route's interface, our addresses and the next hop.
#[derive(Clone, Debug)]
pub struct Uplink {
    /// Interface name.
    pub iface: String,
    /// Interface index.
    pub ifindex: u32,
    /// Our MAC.
    pub src_mac: EthernetAddress,
    /// Our address.
    pub src_ip: IpAddr,
    /// The next hop (gateway, or the target on the link).
    pub next_hop: IpAddr,
    /// Whether the link resolves neighbours (no ARP/NDP check otherwise).
    pub resolves: bool,
    /// The socket the next-hop checks ask on ([`Uplink::opened`]).
    socket: Option<Arc<NeighbourSocket>>,
}

impl Uplink {
    /// The uplink of `route`.
    pub fn of(route: &Route) -> Uplink {
        Uplink {
            iface: route.iface.clone(),
            ifindex: route.ifindex,
            src_mac: route.src_mac,
            src_ip: route.src_ip,
            next_hop: route.next_hop,
            resolves: route.resolves,
            socket: None,
        }
    }

    /// With the socket its next-hop checks ask on, opened now: call it while
    /// the process may still open raw sockets (before a raw scan drops its
    /// capabilities); without it every check fails.
    pub fn opened(mut self) -> std::io::Result<Uplink> {
        if self.resolves {
            let s = NeighbourSocket::open(self.ifindex, self.next_hop.is_ipv6())?;
            self.socket = Some(Arc::new(s));
        }
        Ok(self)
    }

    /// Whether the interface is up with a carrier: `Err(why)` when not.
    pub fn link(&self, rtnl: &mut Rtnl) -> Result<(), String> {
        match rtnl.link_carrier(self.ifindex) {
            Ok(Some(true)) => Ok(()),
            Ok(Some(false)) => Err(format!("{} is down or has no carrier", self.iface)),
            Ok(None) => Err(format!("{} is gone", self.iface)),
            Err(e) => Err(format!(
                "reading the state of {}: {}",
                self.iface,
                e.into_io()
            )),
        }
    }

    /// Whether the next hop answers ARP / NDP within `wait`: `Err(why)` when not.
    pub fn next_hop(&self, wait: Duration) -> Result<(), String> {
        if !self.resolves {
            return Ok(());
        }
        if self.src_ip.is_ipv4() != self.next_hop.is_ipv4() {
            return Ok(());
        }
        let answer = match &self.socket {
            Some(s) => s.ask(self.src_mac, self.src_ip, self.next_hop, wait),
            None => Err(std::io::Error::other(
                "no ARP/NDP socket was opened for the uplink watch",
            )),
        };
        let what = if self.next_hop.is_ipv4() {
            "ARP"
        } else {
            "NDP"
        };
        match answer {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(format!(
                "next hop {} does not answer {what} on {}",
                self.next_hop, self.iface
            )),
            Err(e) => Err(format!(
                "{what} for next hop {} on {}: {e}",
                self.next_hop, self.iface
            )),
        }
    }
}
