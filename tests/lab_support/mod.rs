//! Helpers for the lab's own feature tests (tests/lab_*.rs, `mod lab_support;`)
//! and for tests that need the lab's extra components: the SYN policer attached
//! in-process ([`attach_policer`]), a raw SYN sender that runs inside a
//! namespace ([`send_syns`]), the target kernel's TCP segment counters
//! ([`tcp_counters`]), nmap as an oracle ([`nmap_states`]) and a guard for labs
//! made through the CLI ([`CliLab`]). Everything runs inside the lab's
//! namespaces; nothing is sent from the caller's.
#![allow(dead_code)]

use prtip_lab::{Lab, LabConfig};
use prtip_xdp::policer::{self, Policer, PolicerConfig};
use prtip_xdp::XdpMode;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Attach the SYN policer to the lab's target veth from this process (it stays
/// attached while the returned handle lives): `set` changes the rate, `stats`
/// reads the counters.
pub fn attach_policer(lab: &Lab, rate: u64, burst: u64) -> Policer {
    attach_policer_with(
        lab,
        PolicerConfig {
            rate,
            burst,
            prefix: None,
        },
    )
}

/// [`attach_policer`] with a whole configuration (a policed network).
pub fn attach_policer_with(lab: &Lab, cfg: PolicerConfig) -> Policer {
    let c = lab.config();
    let tgt_if = c.tgt_if.clone();
    prtip_xdp::in_netns(&c.tgt_ns, || policer::attach(&tgt_if, cfg, XdpMode::Native))
        .unwrap_or_else(|e| panic!("attaching the policer to {}: {e}", c.tgt_if))
}

fn csum_add(mut sum: u32, b: &[u8]) -> u32 {
    for w in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A 20-byte TCP header with `flags`, source port `sport`, checksum for IPv4
/// `src`/`dst` (IPv6: left zero, the kernel fills it in through IPV6_CHECKSUM).
fn tcp_header(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&(0x1000_0000u32 + u32::from(sport)).to_be_bytes());
    if flags & 0x10 != 0 {
        h[8..12].copy_from_slice(&1u32.to_be_bytes());
    }
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&1024u16.to_be_bytes());
    if let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) {
        let mut sum = csum_add(0, &s.octets());
        sum = csum_add(sum, &d.octets());
        sum += 6 + 20;
        sum = csum_add(sum, &h);
        h[16..18].copy_from_slice(&fold(sum).to_be_bytes());
    }
    h
}

/// TCP SYN flag.
pub const SYN: u8 = 0x02;
/// TCP ACK flag.
pub const ACK: u8 = 0x10;

/// Send `count` TCP segments with `flags` from the scanner namespace `ns` (source
/// `src`) to `dst:dport` through a raw socket, one source port each, pausing
/// `gap` after every segment (zero: as fast as the socket takes them). Returns
/// how many the kernel accepted.
pub fn send_segments(
    ns: &str,
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
    count: u32,
    flags: u8,
    gap: Duration,
) -> u32 {
    prtip_lab::netns::run_in_netns(ns, move || {
        let v6 = dst.is_ipv6();
        let fam = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain socket(2) call; the descriptor is closed below.
        let fd = unsafe { libc::socket(fam, libc::SOCK_RAW, libc::IPPROTO_TCP) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        if v6 {
            let off: libc::c_int = 16;
            // SAFETY: setsockopt with a pointer to a live c_int and its size.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_CHECKSUM,
                    &off as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as u32,
                )
            };
            assert_eq!(r, 0, "IPV6_CHECKSUM: {}", std::io::Error::last_os_error());
        }
        let mut sent = 0;
        for i in 0..count {
            let sport = 20000 + (i % 40000) as u16;
            let h = tcp_header(src, dst, sport, dport, flags);
            let r = match dst {
                IpAddr::V4(d) => {
                    let sa = libc::sockaddr_in {
                        sin_family: libc::AF_INET as u16,
                        sin_port: 0,
                        sin_addr: libc::in_addr {
                            s_addr: u32::from(d).to_be(),
                        },
                        sin_zero: [0; 8],
                    };
                    // SAFETY: sendto with a live buffer and a sockaddr_in of the right size.
                    unsafe {
                        libc::sendto(
                            fd,
                            h.as_ptr() as *const libc::c_void,
                            h.len(),
                            0,
                            &sa as *const _ as *const libc::sockaddr,
                            std::mem::size_of::<libc::sockaddr_in>() as u32,
                        )
                    }
                }
                IpAddr::V6(d) => {
                    let sa = libc::sockaddr_in6 {
                        sin6_family: libc::AF_INET6 as u16,
                        sin6_port: 0,
                        sin6_flowinfo: 0,
                        sin6_addr: libc::in6_addr {
                            s6_addr: d.octets(),
                        },
                        sin6_scope_id: 0,
                    };
                    // SAFETY: sendto with a live buffer and a sockaddr_in6 of the right size.
                    unsafe {
                        libc::sendto(
                            fd,
                            h.as_ptr() as *const libc::c_void,
                            h.len(),
                            0,
                            &sa as *const _ as *const libc::sockaddr,
                            std::mem::size_of::<libc::sockaddr_in6>() as u32,
                        )
                    }
                }
            };
            if r == 20 {
                sent += 1;
            }
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
        }
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
        sent
    })
    .expect("entering the scanner namespace")
}

/// Send `count` SYNs as fast as the socket takes them (see [`send_segments`]).
pub fn send_syns(ns: &str, src: IpAddr, dst: IpAddr, dport: u16, count: u32) -> u32 {
    send_segments(ns, src, dst, dport, count, SYN, Duration::ZERO)
}

/// The TCP MIB of namespace `ns` (IPv4 and IPv6 share it): (InSegs, OutRsts).
pub fn tcp_counters(ns: &str) -> (u64, u64) {
    let text = prtip_lab::netns::run_in_netns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/snmp")
    })
    .unwrap()
    .unwrap();
    let tcp: Vec<&str> = text.lines().filter(|l| l.starts_with("Tcp:")).collect();
    let names: Vec<&str> = tcp[0].split_whitespace().collect();
    let values: Vec<&str> = tcp[1].split_whitespace().collect();
    let get = |n: &str| -> u64 {
        let i = names.iter().position(|x| *x == n).unwrap();
        values[i].parse().unwrap()
    };
    (get("InSegs"), get("OutRsts"))
}

/// Port states and reasons nmap reports, keyed by (address, port).
pub type NmapStates = BTreeMap<(IpAddr, u16), (String, String)>;

/// Run `nmap -oX - ARGS` inside `ns` and collect each port's (state, reason).
pub fn nmap_states(ns: &str, args: &[&str]) -> NmapStates {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nmap", "-n", "-Pn", "-oX", "-"])
        .args(args)
        .output()
        .expect("running nmap (apt-get install nmap)");
    assert!(
        out.status.success(),
        "nmap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = String::from_utf8_lossy(&out.stdout).into_owned();
    let attr = |s: &str, name: &str| -> Option<String> {
        let k = format!("{name}=\"");
        let i = s.find(&k)? + k.len();
        Some(s[i..i + s[i..].find('"')?].to_string())
    };
    let mut m = NmapStates::new();
    // "<host " with its space: not "<hostnames>" or "<hosthint>".
    for host in xml.split("<host ").skip(1) {
        let Some(addr) = host
            .split("<address ")
            .nth(1)
            .and_then(|a| attr(a, "addr"))
            .and_then(|a| a.parse::<IpAddr>().ok())
        else {
            continue;
        };
        for port in host.split("<port ").skip(1) {
            let p: u16 = attr(port, "portid").unwrap().parse().unwrap();
            let st = port.split("<state ").nth(1).unwrap();
            m.insert(
                (addr, p),
                (attr(st, "state").unwrap(), attr(st, "reason").unwrap()),
            );
        }
    }
    m
}

/// A lab made with `prtip lab up` under its own run directory, taken down
/// (`prtip lab down`) when dropped, even when the test panics.
pub struct CliLab {
    /// Lab name.
    pub name: String,
    /// Its run directory (`--run-dir`).
    pub run_dir: PathBuf,
}

impl CliLab {
    /// A new unique name and run directory; nothing is created yet.
    pub fn new(prefix: &str) -> CliLab {
        let name = LabConfig::unique(prefix).name;
        let run_dir = std::env::temp_dir().join(format!("prtip-lab-test-{name}"));
        CliLab { name, run_dir }
    }

    /// `prtip lab SUBCOMMAND --name NAME --run-dir DIR ARGS...`
    pub fn cmd(&self, sub: &str, args: &[&str]) -> Command {
        let mut c = Command::new(crate::common::prtip_bin());
        c.args(["lab", sub, "--name", &self.name, "--run-dir"])
            .arg(&self.run_dir)
            .args(args);
        c
    }

    /// Its configuration as `lab up` recorded it.
    pub fn config(&self) -> LabConfig {
        prtip_lab::load_config(&self.run_dir, &self.name)
            .unwrap()
            .expect("the lab is up")
    }
}

impl Drop for CliLab {
    fn drop(&mut self) {
        let _ = self.cmd("down", &[]).output();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// The scanner's IPv4 address of a lab (source of raw probes).
pub fn scan_src4(c: &LabConfig) -> IpAddr {
    IpAddr::V4(c.scan_ip)
}

/// The scanner's IPv6 address of a lab.
pub fn scan_src6(c: &LabConfig) -> IpAddr {
    IpAddr::V6(c.scan_ip6)
}

/// `198.19.0.0/16`'s `n`-th address (the default target network).
pub fn target4(c: &LabConfig, n: u64) -> IpAddr {
    IpAddr::V4(c.target_net.nth(n).unwrap_or(Ipv4Addr::UNSPECIFIED))
}
