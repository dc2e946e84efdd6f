//! The lab target's ICMP address mask responder (RFC 950): a raw ICMP socket in
//! the target namespace that answers every address mask request (type 17)
//! delivered to the namespace with an address mask reply (type 18) from the
//! address asked, carrying the mask of the lab network it belongs to.
//!
//! Why: Linux stopped answering address mask requests long ago, so without this
//! nmap's `-PM` (and prtip's) could only ever find nothing in the lab, and a test
//! of it could not fail. Old BSD, Solaris and Windows hosts answer them; the lab
//! target now does too, for every address it answers for (the target network and
//! the live hosts of the sparse network: the absent ones are routed away before
//! local delivery, so their requests never reach this socket). Echo and timestamp
//! requests are left to the kernel, which answers both.
//!
//! Owns its socket and one thread; never configures the network.

use crate::config::LabConfig;
use crate::error::LabError;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// ICMP address mask request / reply types.
const MASK_REQUEST: u8 = 17;
const MASK_REPLY: u8 = 18;

/// Open the raw socket (in the calling thread's namespace) and answer on a thread
/// of its own until the process ends.
pub fn spawn(cfg: &LabConfig) -> Result<(), LabError> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return Err(LabError::io(
            "opening the address mask responder's raw ICMP socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `fd` is a socket we just opened and own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_HDRINCL,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(LabError::io(
            "setting IP_HDRINCL on the address mask responder's socket",
            std::io::Error::last_os_error(),
        ));
    }
    let nets: Vec<(Ipv4Addr, u8)> =
        std::iter::once((cfg.target_net.addr(), cfg.target_net.prefix()))
            .chain(
                cfg.sparse
                    .as_ref()
                    .and_then(|s| s.net4)
                    .map(|n| (n.addr(), n.prefix())),
            )
            .collect();
    // The socket is open: the thread serves with no capability at all (it is
    // dropped before `spawn` returns, so the responder is never seen with one).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("lab-icmp-mask".into())
        .spawn(move || {
            let dropped = crate::responder::drop_all_capabilities();
            let ok = dropped.is_ok();
            let _ = tx.send(dropped);
            if ok {
                serve(sock, &nets)
            }
        })
        .map_err(|e| LabError::io("spawning the address mask responder", e))?;
    rx.recv()
        .map_err(|_| {
            LabError::io(
                "starting the address mask responder",
                std::io::Error::other("its thread ended before it was ready"),
            )
        })?
        .map_err(|e| LabError::io("dropping the address mask responder's capabilities", e))
}

/// The mask of the lab network holding `a` (a host mask outside them).
fn mask_of(a: Ipv4Addr, nets: &[(Ipv4Addr, u8)]) -> Ipv4Addr {
    let mask = |p: u8| if p == 0 { 0 } else { u32::MAX << (32 - p) };
    nets.iter()
        .find(|(n, p)| u32::from(a) & mask(*p) == u32::from(*n))
        .map_or(Ipv4Addr::BROADCAST, |(_, p)| Ipv4Addr::from(mask(*p)))
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The reply to request datagram `d` (IPv4 header included), if it is one.
pub fn mask_reply(d: &[u8], nets: &[(Ipv4Addr, u8)]) -> Option<Vec<u8>> {
    let hl = usize::from(*d.first()? & 0x0f) * 4;
    let icmp = d.get(hl..)?;
    if hl < 20 || icmp.len() < 12 || icmp[0] != MASK_REQUEST || icmp[1] != 0 {
        return None;
    }
    let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
    let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
    let mut out = vec![0u8; 20 + 12];
    out[0] = 0x45;
    out[2..4].copy_from_slice(&32u16.to_be_bytes());
    out[8] = 64;
    out[9] = 1;
    out[12..16].copy_from_slice(&dst.octets());
    out[16..20].copy_from_slice(&src.octets());
    let c = checksum(&out[..20]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    let m = &mut out[20..];
    m[0] = MASK_REPLY;
    m[4..8].copy_from_slice(&icmp[4..8]); // identifier and sequence
    m[8..12].copy_from_slice(&mask_of(dst, nets).octets());
    let c = checksum(m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

fn serve(sock: OwnedFd, nets: &[(Ipv4Addr, u8)]) {
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: recv into a live buffer of its own length.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let Some(reply) = mask_reply(&buf[..n as usize], nets) else {
            continue;
        };
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(reply[16..20].try_into().expect("4 bytes")),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sendto with a live buffer and a sockaddr_in of its own size.
        unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                reply.as_ptr() as *const libc::c_void,
                reply.len(),
                0,
                &to as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_gets_a_reply_from_the_address_asked_with_its_networks_mask() {
        let nets = [(Ipv4Addr::new(198, 18, 1, 0), 24)];
        let mut req = vec![0u8; 32];
        req[0] = 0x45;
        req[9] = 1;
        req[12..16].copy_from_slice(&[198, 18, 0, 1]);
        req[16..20].copy_from_slice(&[198, 18, 1, 5]);
        req[20] = MASK_REQUEST;
        req[24..28].copy_from_slice(&[0xa0, 0x01, 0x12, 0x34]);
        let r = mask_reply(&req, &nets).unwrap();
        assert_eq!(&r[12..16], &[198, 18, 1, 5], "from the address asked");
        assert_eq!(&r[16..20], &[198, 18, 0, 1]);
        assert_eq!(checksum(&r[..20]), 0);
        assert_eq!(r[20], MASK_REPLY);
        assert_eq!(&r[24..28], &[0xa0, 0x01, 0x12, 0x34]);
        assert_eq!(&r[28..32], &[255, 255, 255, 0]);
        assert_eq!(checksum(&r[20..]), 0);
        req[20] = 8; // an echo request is the kernel's
        assert_eq!(mask_reply(&req, &nets), None);
    }
}
