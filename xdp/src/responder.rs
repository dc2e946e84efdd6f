//! The lab's stateless line-rate target (bpf/responder.bpf.c): answers every
//! TCP SYN to the target network with XDP_TX — SYN-ACK on the open ports,
//! RST+ACK on the others — so benchmarks measure the scanner, not the target's
//! TCP stack. Owns its configuration and the attach call; never touches the
//! scanner side (see [`crate::lab`] for the pass-through program there).

use std::mem::MaybeUninit;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::MapHandle;

use crate::attach::{attach_fd, attached_counters, load_error, AttachedProgram};
use crate::error::{Result, XdpError};
use crate::skel::responder::ResponderSkelBuilder;
use crate::sys::XdpMode;

/// Name of the responder program as the kernel knows it.
pub const PROGRAM: &str = "prtip_responder";

/// What the responder answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderConfig {
    /// Network address of the target network (host bits are ignored).
    pub target_net: Ipv4Addr,
    /// Prefix length of the target network (0..=32).
    pub prefix_len: u8,
    /// TCP ports answered with SYN-ACK; every other port gets RST+ACK.
    pub open_tcp_ports: Vec<u16>,
    /// Key of the keyed hash placed in the SYN-ACK's sequence number.
    pub cookie_key: u32,
    /// Sparse mode: only addresses whose index in the target network is 1
    /// modulo this answer (100: 1% of the addresses); SYNs to the others are
    /// dropped. 1 (the default): every address answers.
    pub live_every: u32,
}

impl ResponderConfig {
    /// A responder for `target_net/prefix_len` with `open_tcp_ports` open and a fresh cookie key.
    pub fn new(target_net: Ipv4Addr, prefix_len: u8, open_tcp_ports: &[u16]) -> Result<Self> {
        if prefix_len > 32 {
            return Err(XdpError::Config(format!(
                "prefix length /{prefix_len} of the responder's target network is above 32"
            )));
        }
        let cookie_key = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
            .unwrap_or(0x9e37_79b9);
        Ok(ResponderConfig {
            target_net,
            prefix_len,
            open_tcp_ports: open_tcp_ports.to_vec(),
            cookie_key,
            live_every: 1,
        })
    }

    /// The network mask as a host-order u32.
    pub fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len.min(32))
        }
    }

    /// Does the responder answer SYNs to `addr`?
    pub fn covers(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.target_net) & self.mask()
    }

    /// The 65536-bit open-port bitmap as the program reads it (bit p of word p/64).
    pub fn port_bitmap(&self) -> [u64; 1024] {
        let mut bits = [0u64; 1024];
        for &p in &self.open_tcp_ports {
            bits[(p >> 6) as usize] |= 1u64 << (p & 63);
        }
        bits
    }
}

/// What the responder has done since it was attached (summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponderStats {
    /// SYN-ACKs sent (SYNs to an open port).
    pub syn_ack: u64,
    /// RST+ACKs sent (SYNs to a closed port).
    pub rst: u64,
    /// Frames passed to the kernel (everything that is not a SYN to the target network).
    pub passed: u64,
    /// SYNs dropped because their address is not live (`live_every` > 1).
    pub silent: u64,
}

impl ResponderStats {
    /// Read the counters of an attached responder.
    pub fn read(prog: &AttachedProgram) -> Result<Self> {
        Ok(Self::from_counters(&prog.counters()?))
    }

    /// Counters of the responder attached to `ifname` by another process (the
    /// lab's holder); in the calling thread's namespace.
    pub fn of_interface(ifname: &str) -> Result<Self> {
        Ok(Self::from_counters(&attached_counters(
            ifname,
            PROGRAM,
            "responder_stats",
        )?))
    }

    fn from_counters(c: &[u64]) -> Self {
        ResponderStats {
            syn_ack: c.first().copied().unwrap_or(0),
            rst: c.get(1).copied().unwrap_or(0),
            passed: c.get(2).copied().unwrap_or(0),
            silent: c.get(3).copied().unwrap_or(0),
        }
    }
}

/// Load the responder configured by `cfg` and attach it to `ifname` (in the
/// calling thread's network namespace) in `mode` (native falls back to skb).
pub fn attach(ifname: &str, cfg: &ResponderConfig, mode: XdpMode) -> Result<AttachedProgram> {
    crate::attach::libbpf_logging();
    let mut storage = MaybeUninit::uninit();
    let mut open = ResponderSkelBuilder::default()
        .open(&mut storage)
        .map_err(|e| load_error(PROGRAM, e))?;
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .expect("responder.bpf.c has read-only globals");
    let mask = cfg.mask();
    ro.net_addr = (u32::from(cfg.target_net) & mask).to_be();
    ro.net_mask = mask.to_be();
    ro.cookie_key = cfg.cookie_key;
    ro.open_tcp = cfg.port_bitmap();
    ro.live_every = cfg.live_every.max(1);
    let skel = open.load().map_err(|e| load_error(PROGRAM, e))?;
    let stats =
        MapHandle::try_from(&skel.maps.responder_stats).map_err(|e| load_error(PROGRAM, e))?;
    attach_fd(
        PROGRAM,
        skel.progs.prtip_responder.as_fd(),
        stats,
        ifname,
        mode,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_has_exactly_the_open_ports() {
        let cfg = ResponderConfig::new(Ipv4Addr::new(198, 19, 0, 0), 16, &[0, 22, 63, 64, 65535])
            .unwrap();
        let bits = cfg.port_bitmap();
        let set: Vec<u32> = (0..65536u32)
            .filter(|&p| bits[(p >> 6) as usize] >> (p & 63) & 1 == 1)
            .collect();
        assert_eq!(set, vec![0, 22, 63, 64, 65535]);
    }

    #[test]
    fn covers_the_target_network_only() {
        let cfg = ResponderConfig::new(Ipv4Addr::new(198, 19, 7, 9), 16, &[80]).unwrap();
        assert!(cfg.covers(Ipv4Addr::new(198, 19, 0, 0)));
        assert!(cfg.covers(Ipv4Addr::new(198, 19, 255, 255)));
        assert!(!cfg.covers(Ipv4Addr::new(198, 18, 0, 2)));
        assert!(!cfg.covers(Ipv4Addr::new(198, 20, 0, 1)));
        let all = ResponderConfig::new(Ipv4Addr::UNSPECIFIED, 0, &[]).unwrap();
        assert!(all.covers(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(ResponderConfig::new(Ipv4Addr::UNSPECIFIED, 33, &[]).is_err());
    }
}
