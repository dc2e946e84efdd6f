//! Asking the link for a next hop's MAC when the neighbour table has no entry:
//! an ARP request for IPv4, a Neighbor Solicitation to the solicited-node
//! multicast group for IPv6, over a plain AF_PACKET socket bound to the
//! interface, resent every 300 ms until an answer or the deadline.
//!
//! Why our own requests and not the kernel's (an `RTM_NEWNEIGH` with `NTF_USE`,
//! or a datagram to trigger resolution, then polling the table): the answer is
//! read from the wire, so it does not depend on the neighbour table accepting
//! it (`arp_accept`, `-e` onto an interface without a covering route, a source
//! given with `-S`), nothing but the request itself is sent, and the same frames
//! are what ARP / NDP host discovery needs.
//!
//! Owns: building the request frame, matching the answer, the socket. Never
//! writes the kernel's neighbour table.

use crate::wire::ndp::{self, NdpPacket, NdpRepr};
use crate::wire::{
    arp, ArpPacket, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol,
    Ipv6Packet, Ipv6Repr,
};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How often a request is repeated while no answer came.
const RESEND: Duration = Duration::from_millis(300);

/// An Ethernet frame asking "who has `hop`, tell `src_ip`" (ARP, broadcast).
pub fn arp_request(src_mac: EthernetAddress, src_ip: Ipv4Addr, hop: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; 14 + arp::PACKET_LEN];
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    ArpPacket::new_unchecked(&mut frame[14..]).emit_request(src_mac, src_ip, hop);
    frame
}

/// The MAC an ARP reply frame gives for `hop`, if `frame` is one.
pub fn arp_answer(frame: &[u8], hop: Ipv4Addr) -> Option<EthernetAddress> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Arp {
        return None;
    }
    let a = ArpPacket::new_checked(eth.payload()).ok()?;
    (a.operation() == arp::OP_REPLY && a.sender_ip() == hop).then(|| a.sender_hw())
}

/// An Ethernet frame with a Neighbor Solicitation for `hop` from `src_ip`,
/// to `hop`'s solicited-node multicast group, with our MAC as source
/// link-layer address option.
pub fn neighbor_solicitation(src_mac: EthernetAddress, src_ip: Ipv6Addr, hop: Ipv6Addr) -> Vec<u8> {
    let group = ndp::solicited_node(hop);
    let ns = NdpRepr::NeighborSolicit {
        target_addr: hop,
        lladdr: Some(src_mac),
    };
    let ip_len = crate::wire::ipv6::HEADER_LEN;
    let mut frame = vec![0u8; 14 + ip_len + ns.buffer_len()];
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: ndp::multicast_mac(group),
        ethertype: EtherType::Ipv6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    Ipv6Repr {
        src_addr: src_ip,
        dst_addr: group,
        next_header: IpProtocol::Icmpv6,
        payload_len: ns.buffer_len(),
        hop_limit: ndp::HOP_LIMIT,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut frame[14..]));
    ns.emit(
        src_ip,
        group,
        &mut NdpPacket::new_unchecked(&mut frame[14 + ip_len..]),
    )
    .expect("buffer sized from the repr");
    frame
}

/// The MAC a Neighbor Advertisement frame gives for `hop`, if `frame` is one
/// (hop limit 255 and a valid checksum, as RFC 4861 §7.1.2 requires). Without a
/// target link-layer option the frame's source MAC is the answer.
pub fn neighbor_answer(frame: &[u8], hop: Ipv6Addr) -> Option<EthernetAddress> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Icmpv6 || ip.hop_limit() != ndp::HOP_LIMIT {
        return None;
    }
    let p = NdpPacket::new_checked(ip.payload()).ok()?;
    match NdpRepr::parse(ip.src_addr(), ip.dst_addr(), &p).ok()? {
        NdpRepr::NeighborAdvert {
            target_addr,
            lladdr,
            ..
        } if target_addr == hop => Some(lladdr.unwrap_or(eth.src_addr())),
        _ => None,
    }
}

/// Ask for `hop`'s MAC with ARP on interface `ifindex`, for up to `wait`.
pub fn arp(
    ifindex: u32,
    src_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    hop: Ipv4Addr,
    wait: Duration,
) -> io::Result<Option<EthernetAddress>> {
    let sock = LinkSocket::open(ifindex, libc::ETH_P_ARP as u16)?;
    sock.ask(&arp_request(src_mac, src_ip, hop), src_mac, wait, |f| {
        arp_answer(f, hop)
    })
}

/// Ask for `hop`'s MAC with a Neighbor Solicitation on interface `ifindex`, for
/// up to `wait`.
pub fn ndp(
    ifindex: u32,
    src_mac: EthernetAddress,
    src_ip: Ipv6Addr,
    hop: Ipv6Addr,
    wait: Duration,
) -> io::Result<Option<EthernetAddress>> {
    let sock = LinkSocket::open(ifindex, libc::ETH_P_IPV6 as u16)?;
    sock.ask(
        &neighbor_solicitation(src_mac, src_ip, hop),
        src_mac,
        wait,
        |f| neighbor_answer(f, hop),
    )
}

/// A socket that asks one interface for a next hop's MAC again and again (the
/// uplink watch). Opened once, while the process may still open raw sockets (a
/// raw scan drops every capability once its sockets are open, and a socket
/// opened later would be refused with EPERM); it takes no frame between
/// questions (a drop-all filter), so the scan's traffic costs it nothing.
#[derive(Debug)]
pub struct NeighbourSocket {
    sock: LinkSocket,
    v6: bool,
}

impl NeighbourSocket {
    /// A socket for ARP (`v6` false) or NDP (`v6`) questions on `ifindex`.
    pub fn open(ifindex: u32, v6: bool) -> io::Result<NeighbourSocket> {
        let ethertype = if v6 {
            libc::ETH_P_IPV6
        } else {
            libc::ETH_P_ARP
        };
        let sock = LinkSocket::open(ifindex, ethertype as u16)?;
        crate::backend::bpf::attach(sock.fd.as_fd(), &crate::backend::bpf::drop_all())?;
        Ok(NeighbourSocket { sock, v6 })
    }

    /// Ask for `hop`'s MAC (ARP for an IPv4 `hop`, NDP for IPv6), for up to
    /// `wait`; `Ok(None)`: no answer. An error when `hop`'s family is not the
    /// socket's.
    pub fn ask(
        &self,
        src_mac: EthernetAddress,
        src_ip: std::net::IpAddr,
        hop: std::net::IpAddr,
        wait: Duration,
    ) -> io::Result<Option<EthernetAddress>> {
        use crate::backend::bpf::{accept_all, attach, drop_all};
        use std::net::IpAddr::{V4, V6};
        let fd = self.sock.fd.as_fd();
        attach(fd, &accept_all())?;
        // Frames queued before the filter changed are old news.
        self.sock.drain();
        let r = match (src_ip, hop, self.v6) {
            (V4(s), V4(h), false) => {
                self.sock
                    .ask(&arp_request(src_mac, s, h), src_mac, wait, |f| {
                        arp_answer(f, h)
                    })
            }
            (V6(s), V6(h), true) => {
                self.sock
                    .ask(&neighbor_solicitation(src_mac, s, h), src_mac, wait, |f| {
                        neighbor_answer(f, h)
                    })
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{hop} is not of this neighbour socket's address family"),
            )),
        };
        attach(fd, &drop_all())?;
        r
    }
}

/// An AF_PACKET socket bound to one interface and one EtherType.
#[derive(Debug)]
struct LinkSocket {
    fd: OwnedFd,
}

impl LinkSocket {
    fn open(ifindex: u32, ethertype: u16) -> io::Result<LinkSocket> {
        // SAFETY: plain socket(2); the descriptor is owned right below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                ethertype.to_be() as libc::c_int,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is fresh and nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data; all zeros is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ethertype.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is valid for the call and its size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(LinkSocket { fd })
    }

    /// Read and forget every frame queued.
    fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                return;
            }
        }
    }

    /// Send `request` every [`RESEND`] until `answer` recognises a frame not
    /// sent by `own_mac`, or `wait` has passed.
    fn ask(
        &self,
        request: &[u8],
        own_mac: EthernetAddress,
        wait: Duration,
        answer: impl Fn(&[u8]) -> Option<EthernetAddress>,
    ) -> io::Result<Option<EthernetAddress>> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 2048];
        let mut next_send = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if now >= next_send {
                // SAFETY: `request` is valid for the call and its length is passed;
                // a bound packet socket sends on its interface.
                let rc = unsafe {
                    libc::send(
                        self.fd.as_raw_fd(),
                        request.as_ptr() as *const libc::c_void,
                        request.len(),
                        0,
                    )
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                next_send = now + RESEND;
            }
            let until = next_send.min(deadline);
            let ms = until.saturating_duration_since(Instant::now()).as_millis() as i32;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            loop {
                // SAFETY: `buf` is valid for writes of its length.
                let n = unsafe {
                    libc::recv(
                        self.fd.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted => continue,
                        _ => return Err(e),
                    }
                }
                let f = &buf[..n as usize];
                if f.len() >= 12 && f[6..12] == own_mac.0 {
                    continue; // our own request, or another of our frames
                }
                if let Some(mac) = answer(f) {
                    return Ok(Some(mac));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: EthernetAddress = EthernetAddress([2, 0x70, 0x72, 0x74, 0, 1]);
    const HOP: EthernetAddress = EthernetAddress([2, 0x70, 0x72, 0x74, 0, 2]);

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Ethernet + IPv6 + the advertisement of `wire::ndp`'s tests.
    fn advert_frame() -> Vec<u8> {
        let mut f = vec![
            2, 0x70, 0x72, 0x74, 0, 1, 2, 0x70, 0x72, 0x74, 0, 2, 0x86, 0xdd, //
            0x60, 0, 0, 0, 0, 32, 58, 255, //
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x02, //
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x01, //
            0x88, 0x00, 0x17, 0x8a, 0x60, 0, 0, 0, //
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x02, //
            0x02, 0x01, 0x02, 0x70, 0x72, 0x74, 0x00, 0x02,
        ];
        f.truncate(14 + 40 + 32);
        f
    }

    #[test]
    fn solicitation_frame_goes_to_the_solicited_node_group() {
        let f = neighbor_solicitation(ME, v6("2001:db8:0:1::1"), v6("2001:db8:0:1::2"));
        assert_eq!(f.len(), 14 + 40 + 32);
        // Ethernet: 33:33:ff:00:00:02 <- ME, IPv6.
        assert_eq!(
            &f[..14],
            &[0x33, 0x33, 0xff, 0, 0, 2, 2, 0x70, 0x72, 0x74, 0, 1, 0x86, 0xdd]
        );
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.dst_addr(), v6("ff02::1:ff00:2"));
        assert_eq!(
            (ip.hop_limit(), ip.next_header()),
            (255, IpProtocol::Icmpv6)
        );
        // The ICMPv6 part is byte for byte the static solicitation of wire::ndp.
        assert_eq!(
            &f[54..],
            &[
                0x87, 0x00, 0xa9, 0x40, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x01, 0, 0, 0,
                0, 0, 0, 0, 0x02, 0x01, 0x01, 0x02, 0x70, 0x72, 0x74, 0x00, 0x01,
            ]
        );
        // A solicitation is not an answer.
        assert_eq!(neighbor_answer(&f, v6("2001:db8:0:1::2")), None);
    }

    #[test]
    fn advertisement_answers_only_for_its_target_with_hop_limit_255() {
        let f = advert_frame();
        assert_eq!(neighbor_answer(&f, v6("2001:db8:0:1::2")), Some(HOP));
        assert_eq!(neighbor_answer(&f, v6("2001:db8:0:1::3")), None);
        let mut g = f.clone();
        g[21] = 64; // hop limit: forwarded, so not from the link
        assert_eq!(neighbor_answer(&g, v6("2001:db8:0:1::2")), None);
        // Without the target link-layer option the frame's source is the answer
        // (the checksum changes with the length; recompute it).
        let mut g = f[..14 + 40 + 24].to_vec();
        g[19] = 24;
        let mut p = NdpPacket::new_unchecked(&mut g[54..]);
        p.fill_checksum(v6("2001:db8:0:1::2"), v6("2001:db8:0:1::1"));
        assert_eq!(neighbor_answer(&g, v6("2001:db8:0:1::2")), Some(HOP));
    }

    #[test]
    fn arp_request_and_reply() {
        let f = arp_request(
            ME,
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
        );
        assert_eq!(
            &f[..14],
            &[0xff; 6]
                .iter()
                .chain(&ME.0)
                .chain(&[8, 6])
                .copied()
                .collect::<Vec<u8>>()[..]
        );
        assert_eq!(
            arp_answer(&f, Ipv4Addr::new(198, 18, 0, 2)),
            None,
            "a request"
        );
        let reply = [
            2, 0x70, 0x72, 0x74, 0, 1, 2, 0x70, 0x72, 0x74, 0, 2, 8, 6, //
            0, 1, 8, 0, 6, 4, 0, 2, 2, 0x70, 0x72, 0x74, 0, 2, 198, 18, 0, 2, //
            2, 0x70, 0x72, 0x74, 0, 1, 198, 18, 0, 1,
        ];
        assert_eq!(arp_answer(&reply, Ipv4Addr::new(198, 18, 0, 2)), Some(HOP));
        assert_eq!(arp_answer(&reply, Ipv4Addr::new(198, 18, 0, 3)), None);
    }
}
