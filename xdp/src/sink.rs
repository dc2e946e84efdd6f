//! The send-only benchmark sink (bpf/sink.bpf.c): XDP_DROP every frame on the
//! target's veth and count frames and bytes. Owns the attach call and the
//! counter reader; nothing else.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::MapHandle;

use crate::attach::{attach_fd, attached_counters, load_error, AttachedProgram};
use crate::error::Result;
use crate::skel::sink::SinkSkelBuilder;
use crate::sys::XdpMode;

/// Name of the sink program as the kernel knows it.
pub const PROGRAM: &str = "prtip_sink";

/// Frames and bytes the sink has dropped (summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Frames dropped.
    pub frames: u64,
    /// Bytes dropped (Ethernet frame lengths).
    pub bytes: u64,
}

impl SinkStats {
    /// Read the counters of an attached sink.
    pub fn read(prog: &AttachedProgram) -> Result<Self> {
        let c = prog.counters()?;
        Ok(SinkStats {
            frames: c.first().copied().unwrap_or(0),
            bytes: c.get(1).copied().unwrap_or(0),
        })
    }
}

impl SinkStats {
    /// Counters of the sink attached to `ifname` by another process (the lab's
    /// holder), found through the program's maps; in the calling thread's namespace.
    pub fn of_interface(ifname: &str) -> Result<SinkStats> {
        let c = attached_counters(ifname, PROGRAM, "sink_stats")?;
        Ok(SinkStats {
            frames: c.first().copied().unwrap_or(0),
            bytes: c.get(1).copied().unwrap_or(0),
        })
    }
}

/// Load the sink and attach it to `ifname` (calling thread's namespace) in `mode`.
pub fn attach(ifname: &str, mode: XdpMode) -> Result<AttachedProgram> {
    crate::attach::libbpf_logging();
    let mut storage = MaybeUninit::uninit();
    let open = SinkSkelBuilder::default()
        .open(&mut storage)
        .map_err(|e| load_error(PROGRAM, e))?;
    let skel = open.load().map_err(|e| load_error(PROGRAM, e))?;
    let stats = MapHandle::try_from(&skel.maps.sink_stats).map_err(|e| load_error(PROGRAM, e))?;
    attach_fd(PROGRAM, skel.progs.prtip_sink.as_fd(), stats, ifname, mode)
}
