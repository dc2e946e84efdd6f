//! The classic BPF socket filter that lets only replies to our probes reach user
//! space: IPv4 to our address, not a fragment, and either TCP or UDP to our
//! source-port range, or an ICMP destination-unreachable / time-exceeded.
//!
//! Owns: building that program and attaching it (SO_ATTACH_FILTER). Never reads frames.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const JEQ: u16 = 0x10;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const K: u16 = 0x00;

/// Bytes of an accepted frame handed to user space (whole frames up to this size).
pub const SNAPLEN: u32 = 0x40000;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The reply filter for frames with an Ethernet header: accept IPv4 to `our_ip` that is
/// TCP/UDP to a port in `[port_lo, port_hi)` or ICMP type 3/11; drop everything else.
pub fn reply_filter(our_ip: Ipv4Addr, port_lo: u16, port_hi: u16) -> Vec<libc::sock_filter> {
    // Index of each instruction; jumps are relative to the next instruction.
    const PORTS: u8 = 11;
    const ICMP: u8 = 14;
    const ACCEPT: u8 = 17;
    const DROP: u8 = 18;
    let rel = |from: u8, to: u8| to - from - 1;
    vec![
        /* 0 */ stmt(LD | H | ABS, 12), // ethertype
        /* 1 */ jump(JMP | JEQ | K, 0x0800, 0, rel(1, DROP)),
        /* 2 */ stmt(LD | W | ABS, 30), // IPv4 destination
        /* 3 */ jump(JMP | JEQ | K, u32::from(our_ip), 0, rel(3, DROP)),
        /* 4 */ stmt(LD | H | ABS, 20), // flags + fragment offset
        /* 5 */ jump(JMP | JSET | K, 0x1fff, rel(5, DROP), 0),
        /* 6 */ stmt(LDX | B | MSH, 14), // X = IPv4 header length
        /* 7 */ stmt(LD | B | ABS, 23), // protocol
        /* 8 */ jump(JMP | JEQ | K, 1, rel(8, ICMP), 0),
        /* 9 */ jump(JMP | JEQ | K, 6, rel(9, PORTS), 0),
        /* 10 */ jump(JMP | JEQ | K, 17, rel(10, PORTS), rel(10, DROP)),
        /* 11 PORTS */ stmt(LD | H | IND, 16), // L4 destination port (14 + 2)
        /* 12 */ jump(JMP | JGE | K, port_lo as u32, 0, rel(12, DROP)),
        /* 13 */
        jump(
            JMP | JGE | K,
            port_hi as u32,
            rel(13, DROP),
            rel(13, ACCEPT),
        ),
        /* 14 ICMP */ stmt(LD | B | IND, 14), // ICMP type
        /* 15 */ jump(JMP | JEQ | K, 3, rel(15, ACCEPT), 0),
        /* 16 */ jump(JMP | JEQ | K, 11, rel(16, ACCEPT), rel(16, DROP)),
        /* 17 ACCEPT */ stmt(RET | K, SNAPLEN),
        /* 18 DROP */ stmt(RET | K, 0),
    ]
}

/// A filter that drops every frame (for send-only sockets).
pub fn drop_all() -> Vec<libc::sock_filter> {
    vec![stmt(RET | K, 0)]
}

/// Attach `prog` to `fd` with SO_ATTACH_FILTER.
pub fn attach(fd: BorrowedFd<'_>, prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the
    // program during setsockopt and keeps no pointer to our memory.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the subset of classic BPF the filter uses, so the
    /// program's logic is pinned here; `packet::tests` checks it in the kernel.
    fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let ld = |off: usize, n: usize| -> Option<u32> {
            pkt.get(off..off + n)
                .map(|b| b.iter().fold(0u32, |acc, &v| (acc << 8) | v as u32))
        };
        loop {
            let i = prog[pc];
            let size = match i.code & 0x18 {
                0x00 => 4,
                0x08 => 2,
                _ => 1,
            };
            match i.code {
                c if c & 0x07 == LD && c & 0xe0 == ABS => match ld(i.k as usize, size) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c & 0x07 == LD && c & 0xe0 == IND => match ld((x + i.k) as usize, size) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LDX | B | MSH => match ld(i.k as usize, 1) {
                    Some(v) => x = (v & 0xf) * 4,
                    None => return 0,
                },
                c if c & 0x07 == JMP => {
                    let t = match c & 0xf0 {
                        JEQ => a == i.k,
                        JGE => a >= i.k,
                        JSET => a & i.k != 0,
                        _ => unreachable!(),
                    };
                    pc += if t { i.jt as usize } else { i.jf as usize };
                }
                c if c & 0x07 == RET => return i.k,
                c => panic!("opcode {c:#x} not modelled"),
            }
            pc += 1;
        }
    }

    fn frame(proto: u8, dst: [u8; 4], dport: u16, frag: u16, icmp_type: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[20..22].copy_from_slice(&frag.to_be_bytes());
        f[23] = proto;
        f[30..34].copy_from_slice(&dst);
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        if proto == 1 {
            f[34] = icmp_type;
        }
        f
    }

    #[test]
    fn accepts_only_replies_to_our_ports() {
        let p = reply_filter(Ipv4Addr::new(198, 18, 0, 1), 40960, 57344);
        let us = [198, 18, 0, 1];
        assert_eq!(run(&p, &frame(6, us, 40960, 0, 0)), SNAPLEN);
        assert_eq!(run(&p, &frame(6, us, 57343, 0, 0)), SNAPLEN);
        assert_eq!(run(&p, &frame(17, us, 45000, 0, 0)), SNAPLEN);
        assert_eq!(run(&p, &frame(6, us, 40959, 0, 0)), 0, "below the range");
        assert_eq!(run(&p, &frame(6, us, 57344, 0, 0)), 0, "above the range");
        assert_eq!(
            run(&p, &frame(6, [198, 19, 0, 1], 45000, 0, 0)),
            0,
            "not to us"
        );
        assert_eq!(run(&p, &frame(6, us, 45000, 0x0001, 0)), 0, "fragment");
        assert_eq!(
            run(&p, &frame(6, us, 45000, 0x4000, 0)),
            SNAPLEN,
            "DF is fine"
        );
        assert_eq!(run(&p, &frame(1, us, 0, 0, 3)), SNAPLEN, "unreachable");
        assert_eq!(run(&p, &frame(1, us, 0, 0, 11)), SNAPLEN, "time exceeded");
        assert_eq!(run(&p, &frame(1, us, 0, 0, 0)), 0, "echo reply");
        assert_eq!(run(&p, &frame(47, us, 45000, 0, 0)), 0, "GRE");
        let mut arp = frame(6, us, 45000, 0, 0);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(run(&p, &arp), 0, "ARP");
        // IHL of 6 words shifts the port
        let mut opt = vec![0u8; 14 + 24 + 20];
        opt[..34].copy_from_slice(&frame(6, us, 0, 0, 0)[..34]);
        opt[14] = 0x46;
        opt[40..42].copy_from_slice(&45000u16.to_be_bytes());
        assert_eq!(run(&p, &opt), SNAPLEN);
        assert_eq!(run(&drop_all(), &frame(6, us, 45000, 0, 0)), 0);
    }
}
