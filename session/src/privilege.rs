//! What this process may do: the one place that checks and drops capabilities.
//!
//! A SYN scan needs CAP_NET_RAW (AF_PACKET), CAP_NET_ADMIN and CAP_BPF for
//! `--xdp`, and only while it opens its sockets and attaches its programs; a
//! socket scan (`-sT`, `-sU`, and `-sV`: io_uring and ordinary sockets) needs
//! none. So:
//!
//! - socket scans call [`drop_network_privileges`] first: the effective set is
//!   emptied, and the permitted set keeps only the four capabilities that let
//!   root reach files (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
//!   CAP_FOWNER), raised by [`with_file_access`] on the main thread for the
//!   moments that write the operator's output files (so `sudo prtip scan -sT
//!   ... -oX out.xml` still writes into the invoking user's directory);
//! - raw scans call [`after_setup`] once the backend is open: the same, with
//!   nothing network-related left either (an AF_PACKET or AF_XDP socket, once
//!   bound, and an XDP program attached through a BPF link need no capability
//!   to use or to close).
//!
//! Dropped capabilities also leave the bounding set (when CAP_SETPCAP allows),
//! so an execve cannot give them back, and the ambient and inheritable sets
//! are cleared. Capabilities are per thread in Linux and are inherited by the
//! threads a thread creates: the drop happens on the main thread before the
//! scan's threads start.
//!
//! What `setcap` grants: `sudo setcap cap_net_raw,cap_net_admin+ep prtip` (or
//! with `cap_bpf` for `--xdp`) lets every user who can run the binary open raw
//! sockets and reconfigure network interfaces through it — send arbitrary
//! frames on any interface the user names (`-e`), attach XDP programs — but
//! not read other users' files or scans (their homes are 0700). Grant it only
//! on machines whose users may scan.

/// Capability bit of CAP_NET_RAW (raw and packet sockets).
pub const CAP_NET_RAW: u32 = 13;
/// Capability bit of CAP_NET_ADMIN (interfaces, XDP attach).
pub const CAP_NET_ADMIN: u32 = 12;
/// Capability bit of CAP_BPF (loading BPF programs and maps).
pub const CAP_BPF: u32 = 39;
const CAP_SETPCAP: u32 = 8;

/// Whether this process holds capability `bit` in its effective set.
pub fn has_capability(bit: u32) -> bool {
    capget().is_ok_and(|d| d[(bit / 32) as usize].effective & (1 << (bit % 32)) != 0)
}

/// The message for a missing CAP_NET_RAW.
pub fn privilege_message() -> String {
    "prtip scan -sS sends raw packets and needs CAP_NET_RAW, which this process does not have.\n  \
     Run it as root (sudo prtip scan ...), or grant the capability once:\n    \
     sudo setcap cap_net_raw,cap_net_admin+eip \"$(command -v prtip)\"\n  \
     A connect scan (-sT) needs no privilege."
        .to_string()
}

/// Capabilities a root process keeps after [`drop_network_privileges`]:
/// CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER.
const FILE_CAPS: u32 = 0b1111;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> std::io::Result<[CapData; 2]> {
    let mut h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: capget(2) with a valid header and room for the two 32-bit words
    // of version 3; both live for the duration of the call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) };
    if rc == 0 {
        Ok(d)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Drop every capability of the calling thread (effective set empty; permitted
/// keeps the four file ones for [`with_file_access`]; inheritable, ambient and
/// the dropped part of the bounding set cleared), for scans that need no
/// privilege. Call it before starting threads.
pub fn drop_network_privileges() -> std::io::Result<()> {
    set_caps(0, FILE_CAPS)
}

/// Drop every capability of the calling thread, the file ones too (effective,
/// permitted, inheritable, ambient and bounding sets): for helper threads started
/// before a scan's set-up (its signal thread), which never need a privilege.
pub fn drop_all() -> std::io::Result<()> {
    set_caps(0, 0)
}

/// The drop of a raw scan once its sockets are open and its programs attached:
/// what [`drop_network_privileges`] leaves, nothing more (see the module doc).
pub fn after_setup() -> std::io::Result<()> {
    drop_network_privileges()
}

/// Run `f` with the file capabilities raised in the effective set (if the
/// permitted set still has them: a root process after a drop) and lowered again
/// afterwards: for writing the operator's output files.
pub fn with_file_access<T>(f: impl FnOnce() -> T) -> T {
    let before = capget().ok();
    let raised = before.is_some_and(|c| {
        c[0].permitted & FILE_CAPS != 0
            && c[0].effective & FILE_CAPS != c[0].permitted & FILE_CAPS
            && set_effective(c, c[0].effective | (c[0].permitted & FILE_CAPS)).is_ok()
    });
    let out = f();
    if raised {
        if let Some(c) = before {
            let _ = set_effective(c, c[0].effective);
        }
    }
    out
}

fn set_effective(cur: [CapData; 2], low: u32) -> std::io::Result<()> {
    let mut d = cur;
    d[0].effective = low;
    capset(&d)
}

fn capset(d: &[CapData; 2]) -> std::io::Result<()> {
    let h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset(2) with a valid header and the two data words of version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &h, d.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Keep `effective` (low word) effective and `permitted` permitted, both within
/// what the thread has; clear the rest, the ambient set, the inheritable set and
/// (as far as CAP_SETPCAP allows) the bounding set of everything not permitted.
fn set_caps(effective: u32, permitted: u32) -> std::io::Result<()> {
    let cur = capget()?;
    let keep = cur[0].permitted & permitted;
    if cur[0].effective & (1 << CAP_SETPCAP) != 0 {
        for bit in 0..64u32 {
            if bit < 32 && keep & (1 << bit) != 0 {
                continue;
            }
            // SAFETY: prctl(2) PR_CAPBSET_DROP takes a capability number, no
            // pointers; EINVAL for numbers the kernel does not know is ignored.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, bit as libc::c_ulong, 0, 0, 0) };
        }
    }
    let mut d = [CapData::default(); 2];
    d[0].effective = keep & effective;
    d[0].permitted = keep;
    // SAFETY: prctl(2) PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    capset(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a thread of its own (capabilities are per thread): afterwards only
    /// the file capabilities remain, whatever the thread had.
    #[test]
    fn drop_keeps_only_file_capabilities() {
        std::thread::spawn(|| {
            let before = capget().unwrap();
            drop_network_privileges().unwrap();
            let after = capget().unwrap();
            assert_eq!(after[0].effective, 0, "nothing effective");
            assert_eq!(after[1].effective, 0);
            assert_eq!(after[0].permitted, before[0].permitted & FILE_CAPS);
            assert_eq!(after[1].permitted, 0);
            assert!(!has_capability(13), "CAP_NET_RAW");
            assert!(!has_capability(12), "CAP_NET_ADMIN");
            assert!(!has_capability(39), "CAP_BPF");
            // Raised for writing files only, then lowered again.
            let during = with_file_access(|| capget().unwrap()[0].effective);
            assert_eq!(during, before[0].permitted & FILE_CAPS);
            assert_eq!(capget().unwrap()[0].effective, 0);
        })
        .join()
        .unwrap();
    }
}
