//! The kernel's routing, link and neighbour tables over rtnetlink, with the
//! `netlink-packet-route` message types on a blocking `netlink-sys` socket (no
//! async runtime): `RTM_GETROUTE` for the route the kernel itself would pick
//! towards one destination (output interface, gateway, preferred source),
//! `RTM_GETLINK` for an interface's MAC and flags, `RTM_GETNEIGH` for the
//! neighbour table, `RTM_GETADDR` for an interface's own addresses.
//!
//! Owns: those three queries and turning their answers into plain values. Never
//! changes a table and never sends a packet off the host.

use crate::wire::EthernetAddress;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::IpAddr;

/// The kernel's answer to "how would you reach this address".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRoute {
    /// Output interface index.
    pub oif: u32,
    /// Gateway, when the destination is not on the link.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would use.
    pub pref_src: Option<IpAddr>,
}

/// An interface as far as framing goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Its MAC (all zeros when it has no 6-byte hardware address).
    pub mac: EthernetAddress,
    /// Whether next hops on it have MACs to resolve: an Ethernet link that is
    /// neither loopback nor NOARP.
    pub resolves: bool,
}

/// A netlink route socket.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

/// An `errno` the kernel answered a request with.
#[derive(Debug)]
pub enum NlError {
    /// The kernel refused the request with this (positive) errno.
    Kernel(i32),
    /// The socket failed, or an answer did not parse.
    Io(io::Error),
}

impl From<io::Error> for NlError {
    fn from(e: io::Error) -> Self {
        NlError::Io(e)
    }
}

impl NlError {
    /// As an `io::Error`.
    pub fn into_io(self) -> io::Error {
        match self {
            NlError::Kernel(e) => io::Error::from_raw_os_error(e),
            NlError::Io(e) => e,
        }
    }
}

impl Rtnl {
    /// Open a route socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// Send `msg` and collect the answers: every message of a dump up to its
    /// end, or the single answer to a plain request.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.seq += 1;
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        hdr.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut out = Vec::new();
        let mut rx = vec![0u8; 64 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut rx[..], 0)?;
            let mut at = 0;
            while at < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[at..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq {
                    match m.payload {
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) => match e.code {
                            Some(code) => return Err(NlError::Kernel(-code.get())),
                            None => return Ok(out),
                        },
                        NetlinkPayload::InnerMessage(inner) => {
                            out.push(inner);
                            if !dump {
                                return Ok(out);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                at += (len + 3) & !3;
            }
        }
    }

    /// The route the kernel picks towards `dst` (restricted to interface `oif`
    /// when given). `Ok(None)` when the kernel has no route (`ENETUNREACH`,
    /// `EHOSTUNREACH`, or an unreachable / blackhole / prohibit route).
    pub fn route_get(
        &mut self,
        dst: IpAddr,
        oif: Option<u32>,
    ) -> Result<Option<KernelRoute>, NlError> {
        let mut m = RouteMessage::default();
        (m.header.address_family, m.header.destination_prefix_length) = match dst {
            IpAddr::V4(_) => (AddressFamily::Inet, 32),
            IpAddr::V6(_) => (AddressFamily::Inet6, 128),
        };
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        if let Some(i) = oif {
            m.attributes.push(RouteAttribute::Oif(i));
        }
        match self.request(RouteNetlinkMessage::GetRoute(m), false) {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewRoute(r) => parse_route(&r),
                _ => None,
            })),
            Err(NlError::Kernel(
                libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES | libc::EINVAL,
            )) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The interface with index `index`.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NlError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.link(m)
    }

    /// The interface named `name`.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NlError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.link(m)
    }

    /// Whether interface `index` is up with a carrier (`IFF_UP` and
    /// `IFF_LOWER_UP`); `None` when it does not exist.
    pub fn link_carrier(&mut self, index: u32) -> Result<Option<bool>, NlError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.request(RouteNetlinkMessage::GetLink(m), false) {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => {
                    Some(l.header.flags.contains(LinkFlags::Up | LinkFlags::LowerUp))
                }
                _ => None,
            })),
            Err(NlError::Kernel(libc::ENODEV)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn link(&mut self, m: LinkMessage) -> Result<Option<Link>, NlError> {
        match self.request(RouteNetlinkMessage::GetLink(m), false) {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(&l)),
                _ => None,
            })),
            Err(NlError::Kernel(libc::ENODEV)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The neighbour table's MAC for `addr` on interface `ifindex`, if the entry
    /// holds one (reachable, stale, delay, probe, permanent).
    pub fn neighbour(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
    ) -> Result<Option<EthernetAddress>, NlError> {
        let mut m = NeighbourMessage::default();
        m.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        let answers = self.request(RouteNetlinkMessage::GetNeighbour(m), true)?;
        Ok(answers.iter().find_map(|a| match a {
            RouteNetlinkMessage::NewNeighbour(n) => neighbour_mac(n, ifindex, addr),
            _ => None,
        }))
    }
}

impl Rtnl {
    /// The first usable global address of the family of `like` on interface
    /// `ifindex` (see [`usable_address`]).
    pub fn interface_address(
        &mut self,
        ifindex: u32,
        like: IpAddr,
    ) -> Result<Option<IpAddr>, NlError> {
        let mut m = AddressMessage::default();
        m.header.family = match like {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        let answers = self.request(RouteNetlinkMessage::GetAddress(m), true)?;
        Ok(answers.iter().find_map(|a| match a {
            RouteNetlinkMessage::NewAddress(m) => usable_address(m, ifindex, like),
            _ => None,
        }))
    }
}

/// The address of an `RTM_NEWADDR` entry if it is on `ifindex`, of `like`'s
/// family, of global scope and neither tentative (DAD still running) nor
/// failed DAD nor deprecated: one a probe may leave from.
pub fn usable_address(m: &AddressMessage, ifindex: u32, like: IpAddr) -> Option<IpAddr> {
    if m.header.index != ifindex || m.header.scope != AddressScope::Universe {
        return None;
    }
    let mut flags = AddressFlags::from_bits_truncate(m.header.flags.bits() as u32);
    let (mut address, mut local) = (None, None);
    for a in &m.attributes {
        match a {
            AddressAttribute::Flags(f) => flags = *f,
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Local(ip) => local = Some(*ip),
            _ => {}
        }
    }
    if flags
        .intersects(AddressFlags::Tentative | AddressFlags::Dadfailed | AddressFlags::Deprecated)
    {
        return None;
    }
    // IFA_LOCAL is the interface's own address where it differs (point to point).
    local
        .or(address)
        .filter(|ip| ip.is_ipv4() == like.is_ipv4())
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Read an `RTM_NEWROUTE` answer: `None` unless it is a usable route with an
/// output interface.
pub fn parse_route(r: &RouteMessage) -> Option<KernelRoute> {
    if matches!(
        r.header.kind,
        RouteType::Unreachable | RouteType::BlackHole | RouteType::Prohibit | RouteType::Throw
    ) {
        return None;
    }
    let mut out = KernelRoute {
        oif: 0,
        gateway: None,
        pref_src: None,
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => out.oif = *i,
            RouteAttribute::Gateway(g) => out.gateway = route_ip(g),
            RouteAttribute::PrefSource(s) => out.pref_src = route_ip(s),
            _ => {}
        }
    }
    (out.oif != 0).then_some(out)
}

/// Read an `RTM_NEWLINK` answer.
pub fn parse_link(l: &LinkMessage) -> Link {
    let mut name = String::new();
    let mut mac = EthernetAddress::default();
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(b) if b.len() == 6 => mac.0.copy_from_slice(b),
            _ => {}
        }
    }
    let resolves = l.header.link_layer_type == LinkLayerType::Ether
        && !l
            .header
            .flags
            .intersects(LinkFlags::Loopback | LinkFlags::Noarp);
    Link {
        index: l.header.index,
        name,
        mac,
        resolves,
    }
}

/// The MAC of an `RTM_NEWNEIGH` entry if it is for `addr` on `ifindex` and in a
/// state that holds a usable address.
pub fn neighbour_mac(n: &NeighbourMessage, ifindex: u32, addr: IpAddr) -> Option<EthernetAddress> {
    if n.header.ifindex != ifindex
        || !matches!(
            n.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
        )
    {
        return None;
    }
    let mut dst = None;
    let mut mac = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                dst = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                dst = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => {
                let mut m = [0; 6];
                m.copy_from_slice(b);
                mac = Some(EthernetAddress(m));
            }
            _ => {}
        }
    }
    (dst == Some(addr)).then_some(mac).flatten()
}

#[cfg(test)]
mod tests {
    //! The byte arrays are answers of a Linux 6.x kernel, captured with a
    //! Python AF_NETLINK socket in a namespace with veth `v0` (index 3,
    //! 02:70:72:74:00:01, 198.18.0.1/30, 2001:db8:0:1::1/64), routes
    //! 198.19.0.0/16 via 198.18.0.2 and 2001:db8:1::/48 via 2001:db8:0:1::2.
    //! The link answers are cut down to IFLA_IFNAME and IFLA_ADDRESS; the
    //! address answers come from a second such namespace.
    use super::*;

    fn msg(bytes: &[u8]) -> RouteNetlinkMessage {
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
            .unwrap()
            .payload
        {
            NetlinkPayload::InnerMessage(m) => m,
            other => panic!("not an rtnetlink message: {other:?}"),
        }
    }

    /// `ip route get 198.19.4.5`: via 198.18.0.2 dev v0 src 198.18.0.1.
    static ROUTE_V4: [u8; 112] = [
        0x70, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x65, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00,
        0x00, 0x02, 0x20, 0x00, 0x00, 0xfe, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x08, 0x00,
        0x0f, 0x00, 0xfe, 0x00, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0xc6, 0x13, 0x04, 0x05, 0x08,
        0x00, 0x04, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x07, 0x00, 0xc6, 0x12, 0x00, 0x01,
        0x08, 0x00, 0x05, 0x00, 0xc6, 0x12, 0x00, 0x02, 0x08, 0x00, 0x19, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x24, 0x00, 0x0c, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// `ip -6 route get 2001:db8:1::1`: via 2001:db8:0:1::2 dev v0 src 2001:db8:0:1::1.
    static ROUTE_V6: [u8; 176] = [
        0xb0, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x66, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00,
        0x00, 0x0a, 0x80, 0x80, 0x00, 0xfe, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00,
        0x0f, 0x00, 0xfe, 0x00, 0x00, 0x00, 0x14, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x14, 0x00, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x14, 0x00, 0x07, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x06, 0x00, 0x00, 0x04, 0x00, 0x00, 0x14,
        0x00, 0x05, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x04, 0x00, 0x03, 0x00, 0x00, 0x00, 0x24, 0x00, 0x0c,
        0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x05, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// `v0`: Ethernet, BROADCAST|MULTICAST|UP|LOWER_UP.
    static LINK_V0: [u8; 52] = [
        0x34, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x67, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x43, 0x10, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x07, 0x00, 0x03, 0x00, 0x76, 0x30, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x00, 0x02,
        0x70, 0x72, 0x74, 0x00, 0x01, 0x00, 0x00,
    ];

    /// `lo`: ARPHRD_LOOPBACK, LOOPBACK|UP|LOWER_UP.
    static LINK_LO: [u8; 52] = [
        0x34, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x68, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x04, 0x03, 0x01, 0x00, 0x00, 0x00, 0x49, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x07, 0x00, 0x03, 0x00, 0x6c, 0x6f, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// 198.18.0.2 lladdr 02:70:72:74:00:02 PERMANENT on ifindex 3.
    static NEIGH_V4_PERMANENT: [u8; 76] = [
        0x4c, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x02, 0x00, 0x69, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00,
        0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x01, 0x08, 0x00,
        0x01, 0x00, 0xc6, 0x12, 0x00, 0x02, 0x0a, 0x00, 0x02, 0x00, 0x02, 0x70, 0x72, 0x74, 0x00,
        0x02, 0x00, 0x00, 0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x03, 0x00,
        0x5f, 0x00, 0x00, 0x00, 0x5f, 0x00, 0x00, 0x00, 0x5f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00,
    ];

    /// 198.18.0.3 INCOMPLETE (no lladdr) on ifindex 3.
    static NEIGH_V4_INCOMPLETE: [u8; 64] = [
        0x40, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x02, 0x00, 0x69, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00,
        0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x03, 0x08, 0x00,
        0x01, 0x00, 0xc6, 0x12, 0x00, 0x03, 0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14,
        0x00, 0x03, 0x00, 0xcd, 0x17, 0x00, 0x00, 0x5d, 0x00, 0x00, 0x00, 0x5d, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];

    /// 2001:db8:0:1::2 lladdr 02:70:72:74:00:02 STALE on ifindex 3.
    static NEIGH_V6_STALE: [u8; 88] = [
        0x58, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x02, 0x00, 0x6a, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00,
        0x00, 0x0a, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, 0x14, 0x00,
        0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x02, 0x0a, 0x00, 0x02, 0x00, 0x02, 0x70, 0x72, 0x74, 0x00, 0x02, 0x00, 0x00,
        0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x03, 0x00, 0xce, 0x17, 0x00,
        0x00, 0x5e, 0x00, 0x00, 0x00, 0x5e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// ff02::1:ff74:1 lladdr 33:33:ff:74:00:01 NOARP on ifindex 3 (a multicast group).
    static NEIGH_V6_NOARP: [u8; 88] = [
        0x58, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x02, 0x00, 0x6a, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00,
        0x00, 0x0a, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x05, 0x14, 0x00,
        0x01, 0x00, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff,
        0x74, 0x00, 0x01, 0x0a, 0x00, 0x02, 0x00, 0x33, 0x33, 0xff, 0x74, 0x00, 0x01, 0x00, 0x00,
        0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x03, 0x00, 0x8d, 0x17, 0x00,
        0x00, 0x1d, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// ::1/128 scope host on lo (index 1).
    static ADDR_LO: [u8; 80] = [
        0x50, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0x55, 0x0f, 0x00,
        0x00, 0x0a, 0x80, 0x80, 0xfe, 0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x14,
        0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xaa, 0xfb, 0x05, 0x00,
        0xaa, 0xfb, 0x05, 0x00, 0x08, 0x00, 0x08, 0x00, 0x80, 0x00, 0x00, 0x00, 0x05, 0x00, 0x0b,
        0x00, 0x01, 0x00, 0x00, 0x00,
    ];

    /// 2001:db8:0:1::9/64 global on index 3, tentative (DAD running).
    static ADDR_TENTATIVE: [u8; 72] = [
        0x48, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0x55, 0x0f, 0x00,
        0x00, 0x0a, 0x40, 0xc0, 0x00, 0x03, 0x00, 0x00, 0x00, 0x14, 0x00, 0x01, 0x00, 0x20, 0x01,
        0x0d, 0xb8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x14,
        0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xb0, 0xfb, 0x05, 0x00,
        0xb0, 0xfb, 0x05, 0x00, 0x08, 0x00, 0x08, 0x00, 0xc0, 0x00, 0x00, 0x00,
    ];

    /// 2001:db8:0:1::1/64 global on index 3, added with nodad.
    static ADDR_NODAD: [u8; 72] = [
        0x48, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0x55, 0x0f, 0x00,
        0x00, 0x0a, 0x40, 0x82, 0x00, 0x03, 0x00, 0x00, 0x00, 0x14, 0x00, 0x01, 0x00, 0x20, 0x01,
        0x0d, 0xb8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x14,
        0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xae, 0xfb, 0x05, 0x00,
        0xae, 0xfb, 0x05, 0x00, 0x08, 0x00, 0x08, 0x00, 0x82, 0x00, 0x00, 0x00,
    ];

    /// fe80::70:72ff:fe74:1/64 scope link on index 3.
    static ADDR_LINK_LOCAL: [u8; 80] = [
        0x50, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0x55, 0x0f, 0x00,
        0x00, 0x0a, 0x40, 0xc0, 0xfd, 0x03, 0x00, 0x00, 0x00, 0x14, 0x00, 0x01, 0x00, 0xfe, 0x80,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0x72, 0xff, 0xfe, 0x74, 0x00, 0x01, 0x14,
        0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xb4, 0xfb, 0x05, 0x00,
        0xb4, 0xfb, 0x05, 0x00, 0x08, 0x00, 0x08, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x05, 0x00, 0x0b,
        0x00, 0x03, 0x00, 0x00, 0x00,
    ];

    fn address(bytes: &[u8], ifindex: u32) -> Option<IpAddr> {
        match msg(bytes) {
            RouteNetlinkMessage::NewAddress(m) => {
                usable_address(&m, ifindex, "2001:db8::1".parse().unwrap())
            }
            other => panic!("not an address: {other:?}"),
        }
    }

    #[test]
    fn only_settled_global_addresses_of_the_interface_are_sources() {
        assert_eq!(
            address(&ADDR_NODAD, 3),
            Some("2001:db8:0:1::1".parse().unwrap())
        );
        assert_eq!(address(&ADDR_NODAD, 4), None, "other interface");
        assert_eq!(address(&ADDR_TENTATIVE, 3), None, "tentative");
        assert_eq!(address(&ADDR_LINK_LOCAL, 3), None, "link scope");
        assert_eq!(address(&ADDR_LO, 1), None, "host scope");
        let RouteNetlinkMessage::NewAddress(m) = msg(&ADDR_NODAD) else {
            panic!()
        };
        assert_eq!(
            usable_address(&m, 3, "198.18.0.1".parse().unwrap()),
            None,
            "other family"
        );
    }

    fn route(bytes: &[u8]) -> Option<KernelRoute> {
        match msg(bytes) {
            RouteNetlinkMessage::NewRoute(r) => parse_route(&r),
            other => panic!("not a route: {other:?}"),
        }
    }

    fn link(bytes: &[u8]) -> Link {
        match msg(bytes) {
            RouteNetlinkMessage::NewLink(l) => parse_link(&l),
            other => panic!("not a link: {other:?}"),
        }
    }

    fn neigh(bytes: &[u8], ifindex: u32, addr: &str) -> Option<EthernetAddress> {
        match msg(bytes) {
            RouteNetlinkMessage::NewNeighbour(n) => {
                neighbour_mac(&n, ifindex, addr.parse().unwrap())
            }
            other => panic!("not a neighbour: {other:?}"),
        }
    }

    #[test]
    fn route_answers_give_interface_gateway_and_source() {
        assert_eq!(
            route(&ROUTE_V4),
            Some(KernelRoute {
                oif: 3,
                gateway: Some("198.18.0.2".parse().unwrap()),
                pref_src: Some("198.18.0.1".parse().unwrap()),
            })
        );
        assert_eq!(
            route(&ROUTE_V6),
            Some(KernelRoute {
                oif: 3,
                gateway: Some("2001:db8:0:1::2".parse().unwrap()),
                pref_src: Some("2001:db8:0:1::1".parse().unwrap()),
            })
        );
        // The same answer as an unreachable route is no route.
        let mut b = ROUTE_V4;
        b[16 + 7] = 7; // rtm_type = RTN_UNREACHABLE
        assert_eq!(route(&b), None);
    }

    #[test]
    fn link_answers_give_mac_and_whether_neighbours_resolve() {
        assert_eq!(
            link(&LINK_V0),
            Link {
                index: 3,
                name: "v0".into(),
                mac: EthernetAddress([2, 0x70, 0x72, 0x74, 0, 1]),
                resolves: true,
            }
        );
        assert_eq!(
            link(&LINK_LO),
            Link {
                index: 1,
                name: "lo".into(),
                mac: EthernetAddress::default(),
                resolves: false,
            }
        );
        // IFF_NOARP on an Ethernet link: nothing to resolve either.
        let mut b = LINK_V0;
        b[24] |= 0x80;
        assert!(!link(&b).resolves);
    }

    #[test]
    fn neighbour_entries_give_a_mac_only_when_complete_and_matching() {
        let gw = Some(EthernetAddress([2, 0x70, 0x72, 0x74, 0, 2]));
        assert_eq!(neigh(&NEIGH_V4_PERMANENT, 3, "198.18.0.2"), gw);
        assert_eq!(
            neigh(&NEIGH_V4_PERMANENT, 4, "198.18.0.2"),
            None,
            "other interface"
        );
        assert_eq!(
            neigh(&NEIGH_V4_PERMANENT, 3, "198.18.0.3"),
            None,
            "other address"
        );
        assert_eq!(
            neigh(&NEIGH_V4_INCOMPLETE, 3, "198.18.0.3"),
            None,
            "incomplete"
        );
        assert_eq!(neigh(&NEIGH_V6_STALE, 3, "2001:db8:0:1::2"), gw);
        assert_eq!(
            neigh(&NEIGH_V6_NOARP, 3, "ff02::1:ff74:1"),
            None,
            "NOARP entry"
        );
    }
}
