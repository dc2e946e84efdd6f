//! The lab's SYN policer (bpf/policer.bpf.c), a test-only component on the
//! target's veth: TCP SYNs (IPv4 and IPv6) above a token-bucket rate are
//! dropped, everything else passes to the target's kernel; optionally only
//! the SYNs to one network are policed (one slow /24 in a fast lab). Owns the
//! attach call, the configuration map (rate, burst and network, changeable
//! while attached, also from another process) and the counter and bucket readers.

use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::attach::{attach_fd, attached_map, load_error, read_percpu_counters, AttachedProgram};
use crate::error::{Result, XdpError};
use crate::skel::policer::PolicerSkelBuilder;
use crate::sys::XdpMode;

/// Name of the policer program as the kernel knows it.
pub const PROGRAM: &str = "prtip_policer";
/// Highest rate and burst accepted (the program's arithmetic relies on it).
pub const MAX_RATE: u64 = 1_000_000_000;

const CFG_MAP: &str = "policer_cfg";
const STATE_MAP: &str = "policer_state";
const STATS_MAP: &str = "policer_stats";

/// The token bucket: `rate` SYNs per second on average, at most `burst` in a
/// row, for the SYNs to `prefix` (all SYNs when `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicerConfig {
    /// Tokens added per second (0: only the burst ever passes).
    pub rate: u64,
    /// Bucket size, and the tokens it starts with (at least 1).
    pub burst: u64,
    /// The network whose SYNs are policed, as its first address and prefix
    /// length (host bits clear; IPv4 SYNs only for an IPv4 network, IPv6 only
    /// for an IPv6 one); `None`: every SYN. SYNs to other destinations pass
    /// and count as [`PolicerStats::syn_outside`].
    pub prefix: Option<(IpAddr, u8)>,
}

impl PolicerConfig {
    /// Check the bounds; the error names the bad value.
    pub fn validate(&self) -> Result<()> {
        if let Some((addr, len)) = self.prefix {
            let (bits, max) = addr_bits(addr);
            if len > max {
                return Err(XdpError::Config(format!(
                    "policer network {addr}/{len}: the prefix length is above {max}"
                )));
            }
            if bits & !mask_of(len, max) != 0 {
                return Err(XdpError::Config(format!(
                    "policer network {addr}/{len}: host bits are set"
                )));
            }
        }
        if self.rate > MAX_RATE {
            return Err(XdpError::Config(format!(
                "policer rate {} is above {MAX_RATE} SYNs/s",
                self.rate
            )));
        }
        if self.burst == 0 || self.burst > MAX_RATE {
            return Err(XdpError::Config(format!(
                "policer burst {} is out of range (1-{MAX_RATE})",
                self.burst
            )));
        }
        Ok(())
    }
}

/// What the policer has done: per-CPU counters since it was attached, and the
/// bucket's books for the current configuration (since the last change).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicerStats {
    /// SYNs passed since attach.
    pub syn_passed: u64,
    /// SYNs dropped since attach.
    pub syn_dropped: u64,
    /// Other frames passed since attach.
    pub other: u64,
    /// SYNs outside the policed network (passed untouched) since attach.
    pub syn_outside: u64,
    /// The configuration in force.
    pub config: PolicerConfig,
    /// How many times the configuration was set (1 after attach).
    pub generation: u64,
    /// Whether the bucket has seen a SYN under the current configuration (the
    /// fields below are zero until then).
    pub active: bool,
    /// SYNs passed under the current configuration.
    pub passed: u64,
    /// SYNs dropped under the current configuration.
    pub dropped: u64,
    /// Nano-tokens left in the bucket (10^9 per SYN).
    pub tokens_left: u64,
    /// Nano-tokens of refill lost because the bucket was full (`u64::MAX`:
    /// more than the books can hold, after a gap of over 8 s).
    pub lost: u64,
    /// Kernel time (CLOCK_MONOTONIC ns) of the first SYN under the current configuration.
    pub first_ns: u64,
    /// Kernel time of the latest SYN.
    pub last_ns: u64,
}

impl PolicerStats {
    /// Nano-tokens the bucket earned under the current configuration:
    /// `burst * 10^9 + rate * (last_ns - first_ns) - lost`. When the books are
    /// complete (`lost != u64::MAX`), `passed * 10^9 + tokens_left` equals it.
    pub fn earned(&self) -> Option<u128> {
        if !self.active || self.lost == u64::MAX {
            return None;
        }
        let span = u128::from(self.last_ns.saturating_sub(self.first_ns));
        Some(
            u128::from(self.config.burst) * 1_000_000_000 + u128::from(self.config.rate) * span
                - u128::from(self.lost),
        )
    }
}

/// An attached policer; dropping it detaches the program.
#[derive(Debug)]
pub struct Policer {
    prog: AttachedProgram,
    cfg: MapHandle,
    state: MapHandle,
}

impl Policer {
    /// The attached program (interface, mode, id).
    pub fn program(&self) -> &AttachedProgram {
        &self.prog
    }

    /// Change the rate and burst now (the bucket refills to the new burst).
    pub fn set(&self, cfg: PolicerConfig) -> Result<()> {
        write_config(&self.cfg, cfg)
    }

    /// Counters and bucket books.
    pub fn stats(&self) -> Result<PolicerStats> {
        let c = self.prog.counters()?;
        read_stats(&c, &self.cfg, &self.state)
    }

    /// Detach now.
    pub fn detach(self) {
        drop(self);
    }

    /// The attached program, to hold (dropping it detaches).
    pub fn into_program(self) -> AttachedProgram {
        self.prog
    }
}

/// Load the policer with `cfg` and attach it to `ifname` (calling thread's namespace) in `mode`.
pub fn attach(ifname: &str, cfg: PolicerConfig, mode: XdpMode) -> Result<Policer> {
    cfg.validate()?;
    crate::attach::libbpf_logging();
    let mut storage = MaybeUninit::uninit();
    let open = PolicerSkelBuilder::default()
        .open(&mut storage)
        .map_err(|e| load_error(PROGRAM, e))?;
    let skel = open.load().map_err(|e| load_error(PROGRAM, e))?;
    let map = |m| MapHandle::try_from(m).map_err(|e| load_error(PROGRAM, e));
    let stats = map(&skel.maps.policer_stats)?;
    let cfg_map = map(&skel.maps.policer_cfg)?;
    let state = map(&skel.maps.policer_state)?;
    write_config(&cfg_map, cfg)?;
    let prog = attach_fd(
        PROGRAM,
        skel.progs.prtip_policer.as_fd(),
        stats,
        ifname,
        mode,
    )?;
    Ok(Policer {
        prog,
        cfg: cfg_map,
        state,
    })
}

/// Change the rate of the policer attached to `ifname` by another process (the
/// lab's holder); calling thread's namespace.
pub fn set_on_interface(ifname: &str, cfg: PolicerConfig) -> Result<()> {
    cfg.validate()?;
    write_config(&attached_map(ifname, PROGRAM, CFG_MAP)?, cfg)
}

/// Counters and books of the policer attached to `ifname` by another process.
pub fn stats_of_interface(ifname: &str) -> Result<PolicerStats> {
    let stats = attached_map(ifname, PROGRAM, STATS_MAP)?;
    let cfg = attached_map(ifname, PROGRAM, CFG_MAP)?;
    let state = attached_map(ifname, PROGRAM, STATE_MAP)?;
    read_stats(&read_percpu_counters(&stats)?, &cfg, &state)
}

fn map_err(what: &str, e: libbpf_rs::Error) -> XdpError {
    XdpError::Io {
        what: format!("{what} of the policer"),
        err: std::io::Error::other(e),
    }
}

fn lookup(map: &MapHandle, what: &str) -> Result<Vec<u8>> {
    map.lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
        .map_err(|e| map_err(what, e))?
        .ok_or_else(|| XdpError::Config(format!("the policer's {what} map is empty")))
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
}

/// An address as the top bits of a u128 (IPv4 in the first 32), and its width.
fn addr_bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// The mask of a `len`-bit prefix of a `max`-bit address, in the top bits of a u128.
fn mask_of(len: u8, max: u8) -> u128 {
    let len = len.min(max);
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

// struct policer_cfg: rate, burst, generation (u64), family, pad (u32),
// net[4], mask[4] (big-endian u32 words).
const CFG_LEN: usize = 24 + 8 + 32;

fn write_config(map: &MapHandle, cfg: PolicerConfig) -> Result<()> {
    cfg.validate()?;
    let generation = u64_at(&lookup(map, "configuration")?, 2) + 1;
    let mut v = Vec::with_capacity(CFG_LEN);
    for x in [cfg.rate, cfg.burst, generation] {
        v.extend_from_slice(&x.to_ne_bytes());
    }
    let (family, net, mask) = match cfg.prefix {
        None => (0u32, 0u128, 0u128),
        Some((addr, len)) => {
            let (bits, max) = addr_bits(addr);
            (if max == 32 { 4 } else { 6 }, bits, mask_of(len, max))
        }
    };
    v.extend_from_slice(&family.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    // Big-endian words as the packet holds them: the bytes in network order.
    v.extend_from_slice(&net.to_be_bytes());
    v.extend_from_slice(&mask.to_be_bytes());
    debug_assert_eq!(v.len(), CFG_LEN);
    map.update(&0u32.to_ne_bytes(), &v, MapFlags::ANY)
        .map_err(|e| map_err("writing the configuration", e))
}

fn read_stats(counters: &[u64], cfg: &MapHandle, state: &MapHandle) -> Result<PolicerStats> {
    let c = lookup(cfg, "configuration")?;
    // struct policer_state: lock (4 bytes, padded to 8), then 7 u64s.
    let s = lookup(state, "state")?;
    let generation = u64_at(&c, 2);
    let prefix = match u32::from_ne_bytes(c[24..28].try_into().expect("4 bytes")) {
        0 => None,
        family => {
            let net = u128::from_be_bytes(c[32..48].try_into().expect("16 bytes"));
            let mask = u128::from_be_bytes(c[48..64].try_into().expect("16 bytes"));
            let len = mask.count_ones() as u8;
            Some(if family == 4 {
                (IpAddr::V4(Ipv4Addr::from((net >> 96) as u32)), len)
            } else {
                (IpAddr::V6(Ipv6Addr::from(net)), len)
            })
        }
    };
    let active = u64_at(&s, 1) == generation;
    let f = |i| if active { u64_at(&s, i) } else { 0 };
    Ok(PolicerStats {
        syn_passed: counters.first().copied().unwrap_or(0),
        syn_dropped: counters.get(1).copied().unwrap_or(0),
        other: counters.get(2).copied().unwrap_or(0),
        syn_outside: counters.get(3).copied().unwrap_or(0),
        config: PolicerConfig {
            rate: u64_at(&c, 0),
            burst: u64_at(&c, 1),
            prefix,
        },
        generation,
        active,
        tokens_left: f(2),
        last_ns: f(3),
        first_ns: f(4),
        lost: f(5),
        passed: f(6),
        dropped: f(7),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_named() {
        let e = PolicerConfig {
            rate: MAX_RATE + 1,
            burst: 1,
            prefix: None,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("1000000001"), "{e}");
        let e = PolicerConfig {
            rate: 5,
            burst: 0,
            prefix: None,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("burst 0"), "{e}");
        let net = |a: &str, len| PolicerConfig {
            rate: 5,
            burst: 1,
            prefix: Some((a.parse().unwrap(), len)),
        };
        assert!(net("198.19.3.0", 24).validate().is_ok());
        assert!(net("2001:db8:100::", 48).validate().is_ok());
        let e = net("198.19.3.1", 24).validate().unwrap_err().to_string();
        assert!(
            e.contains("198.19.3.1/24") && e.contains("host bits"),
            "{e}"
        );
        let e = net("198.19.3.0", 33).validate().unwrap_err().to_string();
        assert!(e.contains("198.19.3.0/33") && e.contains("above 32"), "{e}");
        let e = net("2001:db8::", 129).validate().unwrap_err().to_string();
        assert!(e.contains("above 128"), "{e}");
    }

    #[test]
    fn networks_become_big_endian_words_and_masks() {
        let (bits, max) = addr_bits("198.19.3.0".parse().unwrap());
        assert_eq!(max, 32);
        assert_eq!(bits.to_be_bytes()[..4], [198, 19, 3, 0]);
        assert_eq!(mask_of(24, 32).to_be_bytes()[..4], [255, 255, 255, 0]);
        assert_eq!(mask_of(24, 32).to_be_bytes()[4..], [0; 12]);
        assert_eq!(mask_of(0, 32), 0);
        assert_eq!(mask_of(128, 128), u128::MAX);
        assert_eq!(mask_of(48, 128).count_ones(), 48);
    }
}
