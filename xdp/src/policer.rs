//! The lab's SYN policer (bpf/policer.bpf.c), a test-only component on the
//! target's veth: TCP SYNs (IPv4 and IPv6) above a token-bucket rate are
//! dropped, everything else passes to the target's kernel. Owns the attach
//! call, the configuration map (rate and burst, changeable while attached, also
//! from another process) and the counter and bucket readers.

use std::mem::MaybeUninit;
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

/// The token bucket: `rate` SYNs per second on average, at most `burst` in a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicerConfig {
    /// Tokens added per second (0: only the burst ever passes).
    pub rate: u64,
    /// Bucket size, and the tokens it starts with (at least 1).
    pub burst: u64,
}

impl PolicerConfig {
    /// Check the bounds; the error names the bad value.
    pub fn validate(&self) -> Result<()> {
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

fn write_config(map: &MapHandle, cfg: PolicerConfig) -> Result<()> {
    cfg.validate()?;
    let generation = u64_at(&lookup(map, "configuration")?, 2) + 1;
    let mut v = Vec::with_capacity(24);
    for x in [cfg.rate, cfg.burst, generation] {
        v.extend_from_slice(&x.to_ne_bytes());
    }
    map.update(&0u32.to_ne_bytes(), &v, MapFlags::ANY)
        .map_err(|e| map_err("writing the configuration", e))
}

fn read_stats(counters: &[u64], cfg: &MapHandle, state: &MapHandle) -> Result<PolicerStats> {
    let c = lookup(cfg, "configuration")?;
    // struct policer_state: lock (4 bytes, padded to 8), then 7 u64s.
    let s = lookup(state, "state")?;
    let generation = u64_at(&c, 2);
    let active = u64_at(&s, 1) == generation;
    let f = |i| if active { u64_at(&s, i) } else { 0 };
    Ok(PolicerStats {
        syn_passed: counters.first().copied().unwrap_or(0),
        syn_dropped: counters.get(1).copied().unwrap_or(0),
        other: counters.get(2).copied().unwrap_or(0),
        config: PolicerConfig {
            rate: u64_at(&c, 0),
            burst: u64_at(&c, 1),
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
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("1000000001"), "{e}");
        let e = PolicerConfig { rate: 5, burst: 0 }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("burst 0"), "{e}");
    }
}
