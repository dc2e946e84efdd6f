//! The pass-through program (bpf/pass.bpf.c) for the scanner's veth when the
//! target answers with XDP_TX: on kernel 6.18 frames XDP_TX'd into a veth reach
//! the peer only if the peer runs an XDP program. Owns the attach call only.
//!
//! `prtip scan --xdp` on an interface that runs this program through another
//! process's link (the lab's holder) swaps its own filter into that link for
//! the duration of the scan and swaps this one back afterwards (see
//! [`crate::filter`]).

use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::MapHandle;

use crate::attach::{attach_fd, load_error, AttachedProgram};
use crate::error::Result;
use crate::skel::pass::PassSkelBuilder;
use crate::sys::XdpMode;

/// Name of the pass-through program as the kernel knows it.
pub const PROGRAM: &str = "prtip_pass";

/// Load the pass-through program and attach it to `ifname` (calling thread's namespace) in `mode`.
pub fn attach(ifname: &str, mode: XdpMode) -> Result<AttachedProgram> {
    crate::attach::libbpf_logging();
    let mut storage = MaybeUninit::uninit();
    let open = PassSkelBuilder::default()
        .open(&mut storage)
        .map_err(|e| load_error(PROGRAM, e))?;
    let skel = open.load().map_err(|e| load_error(PROGRAM, e))?;
    let stats = MapHandle::try_from(&skel.maps.pass_stats).map_err(|e| load_error(PROGRAM, e))?;
    attach_fd(PROGRAM, skel.progs.prtip_pass.as_fd(), stats, ifname, mode)
}
