//! Attaching an XDP program to an interface through a BPF link, and the handle
//! that keeps it attached ([`AttachedProgram`]). Owns the link descriptor and a
//! handle on the program's per-CPU counter map; never touches the program's
//! other maps and never attaches anything without a link (so nothing outlives
//! the process that attached it).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::error::{Result, XdpError};
use crate::sys::{self, XdpMode};

/// An XDP program attached to an interface through a BPF link.
///
/// The program is detached when this value is dropped (or the process exits or
/// dies: the kernel releases the link with the last descriptor).
#[derive(Debug)]
pub struct AttachedProgram {
    program: &'static str,
    ifname: String,
    ifindex: u32,
    mode: XdpMode,
    note: Option<String>,
    link: OwnedFd,
    stats: MapHandle,
    prog_id: u32,
}

impl AttachedProgram {
    /// Name of the XDP program (`prtip_responder`, `prtip_sink`, ...).
    pub fn program(&self) -> &'static str {
        self.program
    }

    /// Interface it is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Interface index (in the namespace it was attached in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Mode it actually runs in (native may have fallen back to skb: see [`note`](Self::note)).
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// A note for the operator, e.g. why native mode fell back to skb mode.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// Kernel id of the attached program.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// The program's per-CPU counters, summed over CPUs, in the order the
    /// program defines them.
    pub fn counters(&self) -> Result<Vec<u64>> {
        read_percpu_counters(&self.stats)
    }

    /// Detach now (same as dropping, but says so explicitly).
    pub fn detach(self) {
        drop(self);
    }

    /// The link descriptor (kept open as long as `self`).
    pub fn link_fd(&self) -> BorrowedFd<'_> {
        self.link.as_fd()
    }
}

/// Sum every entry of a per-CPU array of u64 counters over CPUs.
pub(crate) fn read_percpu_counters(map: &MapHandle) -> Result<Vec<u64>> {
    let n = map
        .info()
        .map(|i| i.info.max_entries)
        .map_err(|e| XdpError::Io {
            what: "reading the counter map's info".into(),
            err: io::Error::other(e),
        })?;
    let mut out = Vec::with_capacity(n as usize);
    for k in 0..n {
        let per_cpu = map
            .lookup_percpu(&k.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| XdpError::Io {
                what: format!("reading counter {k}"),
                err: io::Error::other(e),
            })?
            .unwrap_or_default();
        let sum = per_cpu
            .iter()
            .map(|v| u64::from_ne_bytes(v[..8].try_into().expect("8-byte counter")))
            .sum();
        out.push(sum);
    }
    Ok(out)
}

/// Is something already attached to `ifindex`? `Err(Busy)` naming it if so.
pub(crate) fn ensure_free(ifname: &str, ifindex: u32) -> Result<()> {
    let q = sys::xdp_query(ifindex)
        .map_err(|e| XdpError::os(format!("querying XDP state of {ifname}"), e))?;
    if q.prog_id != 0 {
        let prog_name = sys::prog_by_id(q.prog_id)
            .map(|(_, n)| n)
            .unwrap_or_else(|_| "?".into());
        return Err(XdpError::Busy {
            ifname: ifname.to_string(),
            prog_name,
            prog_id: q.prog_id,
        });
    }
    Ok(())
}

/// Create the link for `prog` on `ifname` in `mode`; native falls back to skb
/// when the driver has no native XDP, with a note saying so.
pub(crate) fn attach_fd(
    program: &'static str,
    prog: BorrowedFd<'_>,
    stats: MapHandle,
    ifname: &str,
    mode: XdpMode,
) -> Result<AttachedProgram> {
    let ifindex = sys::ifindex(ifname)?;
    sys::ensure_up(ifname)?;
    ensure_free(ifname, ifindex)?;
    let (link, mode, note) = match sys::link_create(prog, ifindex, mode) {
        Ok(l) => (l, mode, None),
        Err(e)
            if mode == XdpMode::Native
                && matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                ) =>
        {
            let l = sys::link_create(prog, ifindex, XdpMode::Skb)
                .map_err(|e2| link_error(program, ifname, XdpMode::Skb, e2))?;
            let note = format!(
                "{ifname}: native XDP not available ({e}); running {program} in skb (generic) mode, which is slower"
            );
            (l, XdpMode::Skb, Some(note))
        }
        Err(e) => return Err(link_error(program, ifname, mode, e)),
    };
    let prog_id = sys::prog_id(prog).map_err(|e| XdpError::os("reading the program id", e))?;
    Ok(AttachedProgram {
        program,
        ifname: ifname.to_string(),
        ifindex,
        mode,
        note,
        link,
        stats,
        prog_id,
    })
}

pub(crate) fn link_error(program: &str, ifname: &str, mode: XdpMode, e: io::Error) -> XdpError {
    let what = format!("attaching {program} to {ifname} in {mode} mode");
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => XdpError::Permission { what, err: e },
        Some(libc::EBUSY) | Some(libc::EEXIST) => XdpError::Busy {
            ifname: ifname.to_string(),
            prog_name: "(another program)".into(),
            prog_id: 0,
        },
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS) => XdpError::Unsupported {
            what,
            hint:
                "XDP needs Linux 5.9+ for BPF links; try --xdp-mode skb, or the AF_PACKET backend"
                    .into(),
            err: e,
        },
        _ => XdpError::Io { what, err: e },
    }
}

/// Map a libbpf load error to [`XdpError`], recognising missing privileges.
pub(crate) fn load_error(program: &'static str, e: libbpf_rs::Error) -> XdpError {
    if e.kind() == libbpf_rs::ErrorKind::PermissionDenied {
        return XdpError::Permission {
            what: format!("loading the XDP program {program}"),
            err: io::Error::from_raw_os_error(libc::EPERM),
        };
    }
    XdpError::Load { program, err: e }
}

/// Counters of the prtip program `program` attached to `ifname` by any process,
/// read through the program's map `map` (calling thread's namespace).
pub(crate) fn attached_counters(ifname: &str, program: &str, map: &str) -> Result<Vec<u64>> {
    read_percpu_counters(&attached_map(ifname, program, map)?)
}

/// The map `map` of the prtip program `program` attached to `ifname` by any
/// process (calling thread's namespace).
pub(crate) fn attached_map(ifname: &str, program: &str, map: &str) -> Result<MapHandle> {
    use std::os::fd::AsFd;
    let ifindex = sys::ifindex(ifname)?;
    let q = sys::xdp_query(ifindex)
        .map_err(|e| XdpError::os(format!("querying XDP state of {ifname}"), e))?;
    if q.prog_id == 0 {
        return Err(XdpError::Config(format!("no XDP program on {ifname}")));
    }
    let (fd, name) =
        sys::prog_by_id(q.prog_id).map_err(|e| XdpError::os("opening the attached program", e))?;
    if !program.starts_with(&name) || name.is_empty() {
        return Err(XdpError::Config(format!(
            "{ifname} runs {name:?}, not {program}"
        )));
    }
    let ids =
        sys::prog_map_ids(fd.as_fd()).map_err(|e| XdpError::os("listing the program's maps", e))?;
    for id in ids {
        let Ok(m) = MapHandle::from_map_id(id) else {
            continue;
        };
        if m.name() == map {
            return Ok(m);
        }
    }
    Err(XdpError::Config(format!(
        "{program} on {ifname} has no map {map}"
    )))
}

/// Keep libbpf quiet (its warnings would repeat what our errors say) unless
/// `PRTIP_XDP_DEBUG` is set, in which case everything it says goes to stderr.
pub(crate) fn libbpf_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("PRTIP_XDP_DEBUG").is_some() {
            libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, |_, msg| {
                eprint!("{msg}")
            })));
        } else {
            libbpf_rs::set_print(None);
        }
    });
}
