//! The scanner-side XDP program of `prtip scan --xdp` (bpf/scan_filter.bpf.c):
//! loads it with the scan's source-port range and address, attaches it, and
//! fills its XSKMAP with one AF_XDP socket per queue. Owns the program, its
//! maps and its attachment; never touches the sockets themselves (see [`crate::xsk`]).
//!
//! Attachment: normally a BPF link of our own (gone when prtip exits or dies).
//! If the interface already runs the lab's pass-through program (`prtip_pass`)
//! through another process's link — the lab's holder in responder mode — the
//! filter is swapped into that link for the duration of the scan
//! (`BPF_LINK_UPDATE` with `BPF_F_REPLACE`) and the pass-through is swapped back
//! when the filter is dropped. Should prtip die meanwhile, the filter stays in
//! the lab's link with an empty XSKMAP, which makes it a pass-through too, and
//! goes away with the lab. Any other program on the interface is an error.

use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::attach::{attach_fd, load_error, read_percpu_counters, AttachedProgram};
use crate::error::{Result, XdpError};
use crate::skel::scan_filter::ScanFilterSkelBuilder;
use crate::sys::{self, XdpMode};

/// Name of the scan filter program (as loaded; the kernel keeps the first 15 bytes).
pub const PROGRAM: &str = "prtip_scan_filter";
/// Size of the XSKMAP (the highest queue index + 1 a scan can use).
pub const MAX_QUEUES: u32 = 256;

/// Which replies the filter redirects to prtip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterConfig {
    /// First source port our probes use.
    pub sport_lo: u16,
    /// Last source port our probes use (inclusive).
    pub sport_hi: u16,
    /// Our address: only replies to it are taken, of its family only (an IPv6
    /// address: IPv6 replies to it and no IPv4 frame). `None`: IPv4 replies to
    /// any address.
    pub our_addr: Option<IpAddr>,
}

impl FilterConfig {
    /// The filter's parameters for the probe modules' reply filter, either
    /// family. The XDP program lets TCP, UDP (to the port range) and ICMP errors
    /// through whichever the modules asked for, so a narrower filter only costs
    /// a few frames classified and ignored.
    pub fn for_replies(f: &prtip_engine::probe::ReplyFilter) -> Result<FilterConfig> {
        Ok(FilterConfig {
            sport_lo: f.ports.0,
            sport_hi: f.ports.1,
            our_addr: Some(f.our_addr),
        })
    }
}

/// Counters of the scan filter (summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// TCP replies redirected to our sockets.
    pub tcp: u64,
    /// UDP replies redirected.
    pub udp: u64,
    /// ICMP errors (and echo replies) redirected.
    pub icmp: u64,
    /// Frames passed to the kernel (not ours).
    pub passed: u64,
    /// Frames that were ours but arrived on a queue without a socket (passed to the kernel).
    pub no_socket: u64,
}

#[derive(Debug)]
enum Attachment {
    Own(AttachedProgram),
    Swapped {
        ifname: String,
        link: OwnedFd,
        ours: OwnedFd,
        previous: OwnedFd,
        mode: XdpMode,
    },
}

/// The loaded and attached scan filter.
#[derive(Debug)]
pub struct ScanFilter {
    xsks: MapHandle,
    stats: MapHandle,
    attachment: Option<Attachment>,
    note: Option<String>,
}

impl ScanFilter {
    /// Load the filter for `cfg` and attach it to `ifname` (calling thread's
    /// namespace) in `mode` (native falls back to skb with a note).
    pub fn attach(ifname: &str, cfg: &FilterConfig, mode: XdpMode) -> Result<ScanFilter> {
        if cfg.sport_lo > cfg.sport_hi {
            return Err(XdpError::Config(format!(
                "source-port range {}-{} is empty",
                cfg.sport_lo, cfg.sport_hi
            )));
        }
        let ifindex = sys::ifindex(ifname)?;
        sys::ensure_up(ifname)?;
        crate::attach::libbpf_logging();
        let mut storage = MaybeUninit::uninit();
        let mut open = ScanFilterSkelBuilder::default()
            .open(&mut storage)
            .map_err(|e| load_error(PROGRAM, e))?;
        let ro = open
            .maps
            .rodata_data
            .as_deref_mut()
            .expect("scan_filter.bpf.c has read-only globals");
        ro.sport_lo = cfg.sport_lo;
        ro.sport_hi = cfg.sport_hi;
        match cfg.our_addr {
            Some(IpAddr::V4(a)) => ro.our_addr = u32::from(a).to_be(),
            Some(IpAddr::V6(a)) => {
                ro.v6 = 1;
                ro.our_addr6 = a.octets();
            }
            None => ro.our_addr = 0,
        }
        let skel = open.load().map_err(|e| load_error(PROGRAM, e))?;
        let xsks = MapHandle::try_from(&skel.maps.xsks).map_err(|e| load_error(PROGRAM, e))?;
        let stats =
            MapHandle::try_from(&skel.maps.filter_stats).map_err(|e| load_error(PROGRAM, e))?;
        let stats2 =
            MapHandle::try_from(&skel.maps.filter_stats).map_err(|e| load_error(PROGRAM, e))?;
        let prog = skel.progs.prtip_scan_filter.as_fd();

        let q = sys::xdp_query(ifindex)
            .map_err(|e| XdpError::os(format!("querying XDP state of {ifname}"), e))?;
        if q.prog_id != 0 {
            let (previous, name) = sys::prog_by_id(q.prog_id)
                .map_err(|e| XdpError::os("opening the attached program", e))?;
            let link = if name == crate::pass::PROGRAM {
                sys::xdp_link_of(q.prog_id, ifindex)
                    .map_err(|e| XdpError::os("looking up XDP links", e))?
            } else {
                None
            };
            let Some(link) = link else {
                // Not the lab's pass-through held by a link: not ours to take over.
                return Err(XdpError::Busy {
                    ifname: ifname.to_string(),
                    prog_name: name,
                    prog_id: q.prog_id,
                });
            };
            sys::link_update(link.as_fd(), prog, previous.as_fd()).map_err(|e| {
                XdpError::os(
                    format!("swapping the scan filter into the XDP link on {ifname}"),
                    e,
                )
            })?;
            let ours = prog
                .try_clone_to_owned()
                .map_err(|e| XdpError::os("duplicating the program descriptor", e))?;
            let mode = q.mode.unwrap_or(XdpMode::Native);
            return Ok(ScanFilter {
                xsks,
                stats,
                note: Some(format!(
                    "{ifname} runs the lab's pass-through XDP program ({mode} mode); the scan filter takes its place for this scan and gives it back afterwards"
                )),
                attachment: Some(Attachment::Swapped {
                    ifname: ifname.to_string(),
                    link,
                    ours,
                    previous,
                    mode,
                }),
            });
        }
        let attached = attach_fd(PROGRAM, prog, stats2, ifname, mode)?;
        Ok(ScanFilter {
            xsks,
            stats,
            note: attached.note().map(str::to_string),
            attachment: Some(Attachment::Own(attached)),
        })
    }

    /// Put the AF_XDP socket `fd` into the XSKMAP slot of `queue`.
    pub fn register_socket(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<()> {
        if queue >= MAX_QUEUES {
            return Err(XdpError::Config(format!(
                "queue {queue} is above the filter's {MAX_QUEUES} slots"
            )));
        }
        let v = (fd.as_raw_fd() as u32).to_ne_bytes();
        self.xsks
            .update(&queue.to_ne_bytes(), &v, MapFlags::ANY)
            .map_err(|e| XdpError::Io {
                what: format!("registering the AF_XDP socket of queue {queue} in the XSKMAP"),
                err: std::io::Error::other(e),
            })
    }

    /// Mode the filter runs in.
    pub fn mode(&self) -> XdpMode {
        match &self.attachment {
            Some(Attachment::Own(a)) => a.mode(),
            Some(Attachment::Swapped { mode, .. }) => *mode,
            None => XdpMode::Native,
        }
    }

    /// A note for the operator (skb fallback, lab link takeover), if any.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The filter's counters.
    pub fn stats(&self) -> Result<FilterStats> {
        let c = read_percpu_counters(&self.stats)?;
        let g = |i: usize| c.get(i).copied().unwrap_or(0);
        Ok(FilterStats {
            tcp: g(0),
            udp: g(1),
            icmp: g(2),
            passed: g(3),
            no_socket: g(4),
        })
    }
}

impl Drop for ScanFilter {
    fn drop(&mut self) {
        if let Some(Attachment::Swapped {
            ifname,
            link,
            ours,
            previous,
            ..
        }) = self.attachment.take()
        {
            if let Err(e) = sys::link_update(link.as_fd(), previous.as_fd(), ours.as_fd()) {
                eprintln!(
                    "warning: could not give {ifname}'s XDP link back to the lab's pass-through program: {e} \
                     (the scan filter stays there as a pass-through until the lab goes down)"
                );
            }
        }
        // Own links close with the AttachedProgram.
    }
}
