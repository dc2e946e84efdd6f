//! The classic BPF socket filter that lets only replies to our probes reach user
//! space, compiled from the probe modules' [`ReplyFilter`]: IPv4 to our address,
//! not a fragment (or IPv6 to our address), and TCP or UDP to our source-port range, or an ICMP
//! destination-unreachable / time-exceeded — each only if a module asks for it.
//!
//! Owns: compiling that program and attaching it (SO_ATTACH_FILTER). Never reads frames.

use crate::probe::ReplyFilter;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const JMP: u16 = 0x05;
const JA: u16 = 0x00;
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

/// Where a jump goes, before the program is laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum To {
    Next,
    Ports,
    Icmp,
    Arp,
    Accept,
    Drop,
}

enum Ins {
    Stmt(u16, u32),
    Jump(u16, u32, To, To),
    Label(To),
}

/// Compile a module's [`ReplyFilter`] for frames with an Ethernet header: accept
/// IPv4 to its address, not a fragment, and TCP/UDP (as it asks) to a destination
/// port in its range, or ICMP destination-unreachable / time-exceeded if it asks
/// for ICMP errors; drop everything else.
///
/// For an IPv6 address the program accepts IPv6 (no extension headers before the
/// transport header) to it, TCP/UDP as above, or ICMPv6 destination-unreachable
/// (type 1) / time-exceeded (type 3).
pub fn compile(f: &ReplyFilter) -> io::Result<Vec<libc::sock_filter>> {
    // (protocol number of ICMP errors, load of the L4 destination port, load of the
    // ICMP type, the two ICMP error types, the query reply types, the link answer type)
    let (mut p, icmp_proto, port_load, type_load, icmp_types, query_types, link_type) =
        match f.our_addr {
            IpAddr::V4(our) => (
                vec![
                    Ins::Stmt(LD | H | ABS, 12), // ethertype
                    Ins::Jump(
                        JMP | JEQ | K,
                        0x0806,
                        if f.link { To::Arp } else { To::Drop },
                        To::Next,
                    ),
                    Ins::Jump(JMP | JEQ | K, 0x0800, To::Next, To::Drop),
                    Ins::Stmt(LD | W | ABS, 30), // IPv4 destination
                    Ins::Jump(JMP | JEQ | K, u32::from(our), To::Next, To::Drop),
                    Ins::Stmt(LD | H | ABS, 20), // flags + fragment offset
                    Ins::Jump(JMP | JSET | K, 0x1fff, To::Drop, To::Next),
                    Ins::Stmt(LDX | B | MSH, 14), // X = IPv4 header length
                    Ins::Stmt(LD | B | ABS, 23),  // protocol
                ],
                1,
                Ins::Stmt(LD | H | IND, 16), // L4 destination port (14 + 2)
                Ins::Stmt(LD | B | IND, 14), // ICMP type
                (3, 11),
                &[0u32, 14, 18][..], // echo, timestamp, address mask replies
                None,
            ),
            IpAddr::V6(our) => {
                let mut p = vec![
                    Ins::Stmt(LD | H | ABS, 12), // ethertype
                    Ins::Jump(JMP | JEQ | K, 0x86dd, To::Next, To::Drop),
                ];
                let o = our.octets();
                for (i, w) in o.chunks_exact(4).enumerate() {
                    // IPv6 destination, 32 bits at a time (14 + 24 + 4i)
                    p.push(Ins::Stmt(LD | W | ABS, 38 + 4 * i as u32));
                    let w = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                    p.push(Ins::Jump(JMP | JEQ | K, w, To::Next, To::Drop));
                }
                p.push(Ins::Stmt(LD | B | ABS, 20)); // next header
                (
                    p,
                    58,
                    Ins::Stmt(LD | H | ABS, 56), // L4 destination port (14 + 40 + 2)
                    Ins::Stmt(LD | B | ABS, 54), // ICMPv6 type
                    (1, 3),
                    &[129u32][..], // echo reply
                    Some(136),     // neighbour advertisement
                )
            }
        };
    let link_icmp = if f.link { link_type } else { None };
    let icmp = f.icmp_errors || f.queries || link_icmp.is_some();
    if icmp {
        p.push(Ins::Jump(JMP | JEQ | K, icmp_proto, To::Icmp, To::Next));
    }
    if f.tcp {
        p.push(Ins::Jump(JMP | JEQ | K, 6, To::Ports, To::Next));
    }
    if f.udp {
        p.push(Ins::Jump(JMP | JEQ | K, 17, To::Ports, To::Next));
    }
    p.push(Ins::Jump(JMP | JA, 0, To::Drop, To::Drop));
    if f.tcp || f.udp {
        p.extend([
            Ins::Label(To::Ports),
            port_load,
            Ins::Jump(JMP | JGE | K, f.ports.0 as u32, To::Next, To::Drop),
            Ins::Jump(JMP | JGE | K, f.ports.1 as u32 + 1, To::Drop, To::Accept),
        ]);
    }
    if icmp {
        p.extend([Ins::Label(To::Icmp), type_load]);
        let mut types = Vec::new();
        if f.icmp_errors {
            types.extend([icmp_types.0, icmp_types.1]);
        }
        if f.queries {
            types.extend(query_types);
        }
        types.extend(link_icmp);
        for t in types {
            p.push(Ins::Jump(JMP | JEQ | K, t, To::Accept, To::Next));
        }
        p.push(Ins::Jump(JMP | JA, 0, To::Drop, To::Drop));
    }
    if let (true, IpAddr::V4(our)) = (f.link, f.our_addr) {
        p.extend([
            Ins::Label(To::Arp),
            Ins::Stmt(LD | W | ABS, 38), // ARP target protocol address
            Ins::Jump(JMP | JEQ | K, u32::from(our), To::Accept, To::Drop),
        ]);
    }
    p.extend([
        Ins::Label(To::Accept),
        Ins::Stmt(RET | K, SNAPLEN),
        Ins::Label(To::Drop),
        Ins::Stmt(RET | K, 0),
    ]);
    // Lay out: labels take no room; jumps are relative to the next instruction.
    let mut at = Vec::new();
    let mut n = 0usize;
    for i in &p {
        match i {
            Ins::Label(l) => at.push((*l, n)),
            _ => n += 1,
        }
    }
    let pos = |l: To, from: usize| -> u32 {
        if l == To::Next {
            return 0;
        }
        let to = at.iter().find(|(k, _)| *k == l).expect("label laid out").1;
        (to - from - 1) as u32
    };
    let mut out = Vec::with_capacity(n);
    for i in p {
        let here = out.len();
        match i {
            Ins::Label(_) => {}
            Ins::Stmt(code, k) => out.push(stmt(code, k)),
            Ins::Jump(code, _, t, _) if code == JMP | JA => out.push(stmt(code, pos(t, here))),
            Ins::Jump(code, k, t, f) => {
                let (t, f) = (pos(t, here), pos(f, here));
                out.push(jump(code, k, t as u8, f as u8))
            }
        }
    }
    Ok(out)
}

/// The reply filter of the raw scan's modules (TCP SYN and UDP) from `our_ip`, for
/// source ports `[port_lo, port_hi)`.
pub fn reply_filter(our_ip: Ipv4Addr, port_lo: u16, port_hi: u16) -> Vec<libc::sock_filter> {
    compile(&ReplyFilter {
        our_addr: our_ip.into(),
        ports: (port_lo, port_hi.saturating_sub(1)),
        tcp: true,
        udp: true,
        icmp_errors: true,
        queries: false,
        link: false,
    })
    .expect("an IPv4 filter compiles")
}

/// A filter that drops every frame (for send-only sockets).
pub fn drop_all() -> Vec<libc::sock_filter> {
    vec![stmt(RET | K, 0)]
}

/// A filter that takes every frame whole (to lift [`drop_all`] for a while).
pub fn accept_all() -> Vec<libc::sock_filter> {
    vec![stmt(RET | K, u32::MAX)]
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
                c if c == JMP | JA => pc += i.k as usize,
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

    #[test]
    fn compiles_only_what_the_modules_ask_for() {
        let us = [198, 18, 0, 1];
        let syn_only = ReplyFilter {
            our_addr: Ipv4Addr::from(us).into(),
            ports: (40960, 57343),
            tcp: true,
            udp: false,
            icmp_errors: false,
            queries: false,
            link: false,
        };
        let p = compile(&syn_only).unwrap();
        assert_eq!(run(&p, &frame(6, us, 57343, 0, 0)), SNAPLEN);
        assert_eq!(run(&p, &frame(17, us, 45000, 0, 0)), 0, "no UDP asked");
        assert_eq!(run(&p, &frame(1, us, 0, 0, 3)), 0, "no ICMP asked");
        let icmp_only = ReplyFilter {
            tcp: false,
            icmp_errors: true,
            queries: false,
            link: false,
            ..syn_only
        };
        let p = compile(&icmp_only).unwrap();
        assert_eq!(run(&p, &frame(6, us, 45000, 0, 0)), 0);
        assert_eq!(run(&p, &frame(1, us, 0, 0, 11)), SNAPLEN);
        // Port 65535 as the top of the range still accepts it.
        let top = ReplyFilter {
            ports: (65000, 65535),
            ..syn_only
        };
        assert_eq!(
            run(&compile(&top).unwrap(), &frame(6, us, 65535, 0, 0)),
            SNAPLEN
        );
    }

    fn frame6(nh: u8, dst: &str, dport: u16, icmp_type: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 20];
        f[12] = 0x86;
        f[13] = 0xdd;
        f[14] = 0x60;
        f[20] = nh;
        let d: std::net::Ipv6Addr = dst.parse().unwrap();
        f[38..54].copy_from_slice(&d.octets());
        f[56..58].copy_from_slice(&dport.to_be_bytes());
        if nh == 58 {
            f[54] = icmp_type;
        }
        f
    }

    #[test]
    fn discovery_filters_let_in_query_replies_and_link_answers() {
        let us = [198, 18, 0, 1];
        let base = ReplyFilter {
            our_addr: Ipv4Addr::from(us).into(),
            ports: (40960, 57343),
            tcp: false,
            udp: false,
            icmp_errors: false,
            queries: true,
            link: false,
        };
        let p = compile(&base).unwrap();
        for (t, want) in [(0, SNAPLEN), (14, SNAPLEN), (18, SNAPLEN), (8, 0), (3, 0)] {
            assert_eq!(run(&p, &frame(1, us, 0, 0, t)), want, "ICMP type {t}");
        }
        let mut arp = vec![0u8; 14 + 28];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        arp[38..42].copy_from_slice(&us);
        assert_eq!(run(&p, &arp), 0, "no ARP asked");
        let p = compile(&ReplyFilter { link: true, ..base }).unwrap();
        assert_eq!(run(&p, &arp), SNAPLEN, "ARP to us");
        arp[41] = 9;
        assert_eq!(run(&p, &arp), 0, "ARP to another address");
        let us6 = "2001:db8:0:1::1";
        let v6 = ReplyFilter {
            our_addr: us6.parse().unwrap(),
            tcp: true,
            ..base
        };
        let p = compile(&v6).unwrap();
        assert_eq!(run(&p, &frame6(58, us6, 0, 129)), SNAPLEN, "echo reply");
        assert_eq!(run(&p, &frame6(58, us6, 0, 136)), 0, "no NDP asked");
        assert_eq!(run(&p, &frame6(6, us6, 45000, 0)), SNAPLEN, "TCP");
        let p = compile(&ReplyFilter { link: true, ..v6 }).unwrap();
        assert_eq!(run(&p, &frame6(58, us6, 0, 136)), SNAPLEN, "advertisement");
    }

    #[test]
    fn ipv6_accepts_only_replies_to_our_address_and_ports() {
        let us = "2001:db8:0:1::1";
        let p = compile(&ReplyFilter {
            our_addr: us.parse().unwrap(),
            ports: (40960, 57343),
            tcp: true,
            udp: false,
            icmp_errors: true,
            queries: false,
            link: false,
        })
        .unwrap();
        assert_eq!(run(&p, &frame6(6, us, 40960, 0)), SNAPLEN);
        assert_eq!(run(&p, &frame6(6, us, 57343, 0)), SNAPLEN);
        assert_eq!(run(&p, &frame6(6, us, 40959, 0)), 0, "below the range");
        assert_eq!(run(&p, &frame6(6, us, 57344, 0)), 0, "above the range");
        assert_eq!(run(&p, &frame6(17, us, 45000, 0)), 0, "UDP not asked for");
        for other in ["2001:db8:0:1::2", "2001:db8:0:2::1", "3001:db8:0:1::1"] {
            assert_eq!(run(&p, &frame6(6, other, 45000, 0)), 0, "to {other}");
        }
        assert_eq!(run(&p, &frame6(58, us, 0, 1)), SNAPLEN, "unreachable");
        assert_eq!(run(&p, &frame6(58, us, 0, 3)), SNAPLEN, "time exceeded");
        assert_eq!(run(&p, &frame6(58, us, 0, 129)), 0, "echo reply");
        assert_eq!(run(&p, &frame6(58, us, 0, 136)), 0, "neighbour advert");
        // An IPv4 frame to the IPv6 filter, and the reverse: dropped.
        assert_eq!(run(&p, &frame(6, [198, 18, 0, 1], 45000, 0, 0)), 0);
        let v4 = reply_filter(Ipv4Addr::new(198, 18, 0, 1), 40960, 57344);
        assert_eq!(run(&v4, &frame6(6, us, 45000, 0)), 0);
    }
}
