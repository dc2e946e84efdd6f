//! The few raw system interfaces the io_uring scanners need: descriptor budget
//! (RLIMIT_NOFILE), socket creation, socket addresses that stay put while the kernel
//! reads them, and closing with an RST. Owns no scan logic.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};

/// How many descriptors a scan may hold, and how that was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// Soft RLIMIT_NOFILE before we touched it.
    pub soft_before: u64,
    /// Soft limit now (raised to the hard limit when allowed).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
    /// Descriptors already open when the scan started.
    pub in_use: u64,
    /// Sockets the scan may hold at once: `min(wanted, soft - in_use - reserve)`, at least 1.
    pub sockets: usize,
}

/// Descriptors kept free for the log writer, the history index and the ring itself.
pub const FD_RESERVE: u64 = 64;

/// Raises the soft RLIMIT_NOFILE to the hard limit when allowed, then sizes the socket
/// budget: at most `wanted`, and never more than the free descriptors minus a reserve.
pub fn fd_budget(wanted: usize) -> FdBudget {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    let (mut soft, hard) = if ok {
        (lim.rlim_cur, lim.rlim_max)
    } else {
        (1024, 1024)
    };
    let soft_before = soft;
    if ok && soft < hard {
        let raised = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the rlimit we own; raising soft up to hard needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            soft = hard;
        }
    }
    let in_use = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(16);
    let free = soft.saturating_sub(in_use).saturating_sub(FD_RESERVE);
    FdBudget {
        soft_before,
        soft,
        hard,
        in_use,
        sockets: (wanted as u64).min(free).max(1) as usize,
    }
}

/// A socket address in the kernel's layout, for IORING_OP_CONNECT (which reads it
/// after submission: keep it where it is until the completion arrives).
#[derive(Clone, Copy)]
#[repr(C)]
pub union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    /// An all-zero address (placeholder for a free slot).
    pub fn zeroed() -> RawAddr {
        // SAFETY: both sockaddr variants are plain integers; all-zero is valid.
        unsafe { mem::zeroed() }
    }

    /// Fills in `addr`; returns the length the kernel must be told.
    pub fn set(&mut self, addr: SocketAddr) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                self.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                self.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// Pointer for the SQE.
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        self as *const RawAddr as *const libc::sockaddr
    }
}

/// A new non-blocking, close-on-exec socket of `kind` (`SOCK_STREAM` / `SOCK_DGRAM`)
/// for the family of `ip`.
pub fn socket(ip: IpAddr, kind: libc::c_int) -> io::Result<libc::c_int> {
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(family, kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// Sets an integer socket option.
pub fn setsockopt_int(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value points to a c_int that lives across the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Closes every open descriptor of `fds` (a scan loop's slots on abort: in flight,
/// nothing more to report) and marks each closed (-1).
pub fn close_all<'a>(fds: impl Iterator<Item = &'a mut libc::c_int>) {
    for fd in fds.filter(|fd| **fd >= 0) {
        close(*fd, false);
        *fd = -1;
    }
}

/// Closes `fd`; with `reset` an established TCP connection is aborted with an RST
/// (SO_LINGER 0), so neither side keeps TIME_WAIT state for a scan.
pub fn close(fd: libc::c_int, reset: bool) {
    if fd < 0 {
        return;
    }
    if reset {
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: the option value points to a linger that lives across the call; errors
        // (e.g. on a socket that never connected) are harmless and ignored.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &l as *const libc::linger as *const libc::c_void,
                mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
    // SAFETY: fd is a descriptor this module opened and nobody else closes.
    unsafe {
        libc::close(fd);
    }
}

/// The monotonic clock in nanoseconds (what the token bucket counts in).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_all_closes_the_open_descriptors_and_marks_them() {
        let a = socket("127.0.0.1".parse().unwrap(), libc::SOCK_DGRAM).unwrap();
        let b = socket("127.0.0.1".parse().unwrap(), libc::SOCK_DGRAM).unwrap();
        let mut fds = [a, -1, b];
        close_all(fds.iter_mut());
        // (whether the numbers were really closed cannot be checked here without racing
        // the other tests of this binary, which open descriptors in parallel)
        assert_eq!(fds, [-1, -1, -1]);
    }

    #[test]
    fn budget_respects_the_limit() {
        let b = fd_budget(1_000_000_000);
        assert!(b.soft >= b.soft_before);
        assert!(b.soft <= b.hard);
        assert!(b.sockets as u64 + b.in_use + FD_RESERVE <= b.soft.max(b.in_use + FD_RESERVE + 1));
        assert_eq!(fd_budget(10).sockets, 10);
    }

    #[test]
    fn raw_addresses_have_kernel_layout() {
        let mut r = RawAddr::zeroed();
        let len = r.set("198.19.0.7:8080".parse().unwrap());
        assert_eq!(len as usize, mem::size_of::<libc::sockaddr_in>());
        // SAFETY: set() just wrote the v4 variant.
        let v4 = unsafe { r.v4 };
        assert_eq!(v4.sin_family as i32, libc::AF_INET);
        assert_eq!(u16::from_be(v4.sin_port), 8080);
        assert_eq!(u32::from_be(v4.sin_addr.s_addr), 0xc613_0007);
        let len = r.set("[::1]:22".parse().unwrap());
        assert_eq!(len as usize, mem::size_of::<libc::sockaddr_in6>());
        // SAFETY: set() just wrote the v6 variant.
        let v6 = unsafe { r.v6 };
        assert_eq!(v6.sin6_addr.s6_addr[15], 1);
    }

    #[test]
    fn sockets_open_and_close() {
        let fd = socket("127.0.0.1".parse().unwrap(), libc::SOCK_STREAM).unwrap();
        assert!(fd >= 0);
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1).unwrap();
        close(fd, true);
        assert!(setsockopt_int(-1, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1).is_err());
    }
}
