//! Where probes leave from: interface, source address, our MAC and the next hop's
//! MAC, found in the kernel's routing and neighbour tables of the current network
//! namespace (`/proc/thread-self/net/route`, `/proc/thread-self/net/arp`, a UDP
//! `connect` + `getsockname` that sends nothing, SIOCGIFHWADDR), with ARP as the
//! fallback when the neighbour table has no entry yet. `-e`, `-S` and
//! `--router-mac` override each part.
//!
//! Owns: that discovery. Never sends anything but one ARP request (only when the
//! neighbour table lacks the next hop and no `--router-mac` was given).

use crate::wire::{arp, ArpPacket, EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// What probes need to leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Interface name.
    pub iface: String,
    /// Source address.
    pub src_ip: Ipv4Addr,
    /// Interface MAC.
    pub src_mac: EthernetAddress,
    /// Gateway, or the target itself when it is on the link.
    pub next_hop: Ipv4Addr,
    /// Next hop's MAC.
    pub dst_mac: EthernetAddress,
}

/// Why no route was found.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No routing table entry covers the target.
    #[error("no route to {dst} in this network namespace{}; give the interface with -e IFACE (and -S ADDR, --router-mac MAC)", iface.as_ref().map(|i| format!(" via {i}")).unwrap_or_default())]
    NoRoute {
        /// Target.
        dst: Ipv4Addr,
        /// Interface asked for.
        iface: Option<String>,
    },
    /// The next hop's MAC is unknown.
    #[error("no MAC address for next hop {hop} on {iface}: not in the neighbour table and no ARP answer; pass --router-mac MAC")]
    NoNeighbour {
        /// Next hop.
        hop: Ipv4Addr,
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

/// One line of the IPv4 routing table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// Interface.
    pub iface: String,
    /// Destination network.
    pub dest: Ipv4Addr,
    /// Gateway (0.0.0.0 when on link).
    pub gateway: Ipv4Addr,
    /// Netmask.
    pub mask: Ipv4Addr,
    /// Metric.
    pub metric: u32,
}

fn hex_addr(s: &str) -> Option<Ipv4Addr> {
    // /proc/net/route prints addresses as host-order hex of a network-order u32.
    // (the in-memory network-order bytes read as a native integer).
    u32::from_str_radix(s, 16)
        .ok()
        .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
}

/// Parse `/proc/net/route` text.
pub fn parse_route_table(text: &str) -> Vec<RouteEntry> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            if flags & 0x1 == 0 {
                return None; // not RTF_UP
            }
            Some(RouteEntry {
                iface: f[0].to_string(),
                dest: hex_addr(f[1])?,
                gateway: hex_addr(f[2])?,
                mask: hex_addr(f[7])?,
                metric: f[6].parse().ok()?,
            })
        })
        .collect()
}

/// Longest-prefix match for `dst`, optionally only on `iface`.
pub fn lookup(table: &[RouteEntry], dst: Ipv4Addr, iface: Option<&str>) -> Option<RouteEntry> {
    table
        .iter()
        .filter(|r| iface.is_none_or(|i| r.iface == i))
        .filter(|r| u32::from(dst) & u32::from(r.mask) == u32::from(r.dest))
        .max_by_key(|r| (u32::from(r.mask).count_ones(), std::cmp::Reverse(r.metric)))
        .cloned()
}

/// Parse `/proc/net/arp` text into complete entries (ip, mac, device).
pub fn parse_arp_table(text: &str) -> Vec<(Ipv4Addr, EthernetAddress, String)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
            if flags & 0x2 == 0 {
                return None; // incomplete
            }
            Some((
                f[0].parse().ok()?,
                EthernetAddress::parse(f[3])?,
                f[5].to_string(),
            ))
        })
        .collect()
}

fn read_proc(name: &str) -> Result<String, RouteError> {
    let p = format!("/proc/thread-self/net/{name}");
    std::fs::read_to_string(&p).map_err(|err| RouteError::Io {
        what: format!("reading {p}"),
        err,
    })
}

/// The address the kernel would use as source towards `dst` (no packet is sent:
/// connecting a UDP socket only selects a route).
pub fn source_for(dst: Ipv4Addr) -> io::Result<Ipv4Addr> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect((dst, 9))?;
    match s.local_addr()? {
        SocketAddr::V4(a) => Ok(*a.ip()),
        SocketAddr::V6(_) => Err(io::Error::other("IPv6 source for an IPv4 target")),
    }
}

/// MAC address of `iface`, and whether it needs no neighbour resolution (loopback, NOARP).
pub fn interface_mac(iface: &str) -> io::Result<(EthernetAddress, bool)> {
    // SAFETY: ioctls on a fresh datagram socket with a zeroed ifreq naming `iface`
    // (truncated to IFNAMSIZ-1 bytes, so NUL-terminated); the socket is closed below.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, c) in ifr
            .ifr_name
            .iter_mut()
            .zip(iface.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = c as libc::c_char;
        }
        let rc = libc::ioctl(s, libc::SIOCGIFHWADDR, &mut ifr);
        if rc != 0 {
            let e = io::Error::last_os_error();
            libc::close(s);
            return Err(e);
        }
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(ifr.ifr_ifru.ifru_hwaddr.sa_data.iter()) {
            *m = *b as u8;
        }
        let rc = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
        let noarp = rc == 0
            && (ifr.ifr_ifru.ifru_flags as libc::c_int & (libc::IFF_NOARP | libc::IFF_LOOPBACK))
                != 0;
        libc::close(s);
        Ok((EthernetAddress(mac), noarp))
    }
}

/// Ask for `hop`'s MAC with one ARP request per 300 ms, for up to `wait`.
pub fn arp_resolve(
    iface: &str,
    src_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    hop: Ipv4Addr,
    wait: Duration,
) -> io::Result<Option<EthernetAddress>> {
    use crate::backend::packet::PacketRx;
    use crate::backend::{bpf, Receive};
    let idx = crate::backend::packet::ifindex(iface)?;
    // Receive only ARP frames.
    let filter = [
        libc::sock_filter {
            code: 0x28,
            jt: 0,
            jf: 0,
            k: 12,
        },
        libc::sock_filter {
            code: 0x15,
            jt: 0,
            jf: 1,
            k: 0x0806,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: bpf::SNAPLEN,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let mut rx = PacketRx::open_with_filter(iface, &filter)?;
    let mut frame = [0u8; 14 + arp::PACKET_LEN];
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    ArpPacket::new_unchecked(&mut frame[14..]).emit_request(src_mac, src_ip, hop);
    // SAFETY: plain socket(2); owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is fresh and ours.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    sll.sll_ifindex = idx as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let deadline = Instant::now() + wait;
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        // SAFETY: `frame` and `sll` are valid for the call and their sizes are passed.
        let rc = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let step = Instant::now() + Duration::from_millis(300);
        while found.is_none() && Instant::now() < step.min(deadline) {
            rx.recv(Duration::from_millis(50), &mut |f| {
                if let Ok(a) = ArpPacket::new_checked(&f[14..]) {
                    if a.operation() == arp::OP_REPLY && a.sender_ip() == hop {
                        found = Some(a.sender_hw());
                    }
                }
            })?;
        }
    }
    Ok(found)
}

/// Find interface, addresses and next-hop MAC for probes to `dst`. Each `Some`
/// argument overrides what discovery would find.
pub fn discover(
    dst: Ipv4Addr,
    iface: Option<&str>,
    src: Option<Ipv4Addr>,
    router_mac: Option<EthernetAddress>,
) -> Result<Route, RouteError> {
    let table = parse_route_table(&read_proc("route")?);
    let entry = lookup(&table, dst, iface);
    let iface_name = match (iface, &entry) {
        (Some(i), _) => i.to_string(),
        (None, Some(e)) => e.iface.clone(),
        (None, None) => return Err(RouteError::NoRoute { dst, iface: None }),
    };
    let next_hop = match &entry {
        Some(e) if e.gateway != Ipv4Addr::UNSPECIFIED => e.gateway,
        Some(_) => dst,
        // An interface given without a covering route (e.g. `lo`): treat the target as on link.
        None if router_mac.is_some() || iface.is_some() => dst,
        None => {
            return Err(RouteError::NoRoute {
                dst,
                iface: iface.map(str::to_string),
            })
        }
    };
    let src_ip = match src {
        Some(s) => s,
        None => source_for(dst).map_err(|err| RouteError::Io {
            what: format!("choosing a source address towards {dst} (give one with -S ADDR)"),
            err,
        })?,
    };
    let (src_mac, noarp) = interface_mac(&iface_name).map_err(|err| RouteError::Io {
        what: format!("reading the MAC address of {iface_name}"),
        err,
    })?;
    let dst_mac = match router_mac {
        Some(m) => m,
        None if noarp => EthernetAddress::default(),
        None => {
            let arp = parse_arp_table(&read_proc("arp")?);
            match arp
                .iter()
                .find(|(ip, _, dev)| *ip == next_hop && *dev == iface_name)
            {
                Some((_, m, _)) => *m,
                None => arp_resolve(
                    &iface_name,
                    src_mac,
                    src_ip,
                    next_hop,
                    Duration::from_secs(1),
                )
                .map_err(|err| RouteError::Io {
                    what: format!("sending an ARP request for {next_hop} on {iface_name}"),
                    err,
                })?
                .ok_or(RouteError::NoNeighbour {
                    hop: next_hop,
                    iface: iface_name.clone(),
                })?,
            }
        }
    };
    Ok(Route {
        iface: iface_name,
        src_ip,
        src_mac,
        next_hop,
        dst_mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
prtip-s0\t000013C6\t020012C6\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
prtip-s0\t000012C6\t00000000\t0001\t0\t0\t0\tFCFFFFFF\t0\t0\t0
eth9\t00000000\t010012C6\t0002\t0\t0\t0\t00000000\t0\t0\t0
";
    const ARP: &str =
        "IP address       HW type     Flags       HW address            Mask     Device
198.18.0.2       0x1         0x6         02:70:72:74:00:02     *        prtip-s0
198.18.0.3       0x1         0x0         00:00:00:00:00:00     *        prtip-s0
";

    #[test]
    fn routing_table_longest_prefix() {
        let t = parse_route_table(ROUTE);
        assert_eq!(t.len(), 2, "the route without RTF_UP is ignored");
        assert_eq!(t[0].dest, Ipv4Addr::new(198, 19, 0, 0));
        assert_eq!(t[0].gateway, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(t[0].mask, Ipv4Addr::new(255, 255, 0, 0));
        let r = lookup(&t, Ipv4Addr::new(198, 19, 4, 5), None).unwrap();
        assert_eq!(
            (r.iface.as_str(), r.gateway),
            ("prtip-s0", Ipv4Addr::new(198, 18, 0, 2))
        );
        let r = lookup(&t, Ipv4Addr::new(198, 18, 0, 2), None).unwrap();
        assert_eq!(r.gateway, Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            lookup(&t, Ipv4Addr::new(8, 8, 8, 8), None),
            None,
            "no default route"
        );
        assert_eq!(lookup(&t, Ipv4Addr::new(198, 19, 4, 5), Some("eth0")), None);
    }

    #[test]
    fn neighbour_table_only_complete_entries() {
        let a = parse_arp_table(ARP);
        assert_eq!(
            a,
            vec![(
                Ipv4Addr::new(198, 18, 0, 2),
                EthernetAddress([2, 0x70, 0x72, 0x74, 0, 2]),
                "prtip-s0".to_string()
            )]
        );
    }

    #[test]
    fn discover_on_a_private_loopback() {
        let Some(r) = crate::backend::packet::tests::in_private_netns(|| {
            discover(Ipv4Addr::new(127, 0, 0, 5), Some("lo"), None, None).map_err(|e| e.to_string())
        }) else {
            return;
        };
        let r = r.unwrap();
        assert_eq!(r.iface, "lo");
        assert_eq!(r.src_ip, Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(r.dst_mac, EthernetAddress::default());
        let e = crate::backend::packet::tests::in_private_netns(|| {
            discover(Ipv4Addr::new(198, 19, 0, 1), None, None, None)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .expect("made a namespace a moment ago");
        assert_eq!(e.unwrap_err(), "no route to 198.19.0.1 in this network namespace; give the interface with -e IFACE (and -S ADDR, --router-mac MAC)");
    }
}
