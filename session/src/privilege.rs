//! What this process may do: the one place that checks and drops capabilities.
//!
//! A SYN scan needs CAP_NET_RAW (AF_PACKET), CAP_NET_ADMIN and CAP_BPF for
//! `--xdp`; a connect scan (`-sT`, and `-sV` on it: io_uring and ordinary
//! sockets) needs none. [`drop_network_privileges`] drops every capability but
//! the four that let root reach files (so `sudo prtip scan -sT ... -oX out.xml`
//! still writes into the invoking user's directory): a connect scan run as root
//! can then no longer open raw sockets, load BPF programs, change interfaces or
//! signal other users' processes. Capabilities are per thread in Linux and are
//! inherited by the threads a thread creates: the drop happens on the main
//! thread before the scan's threads start.
//!
//! What `setcap` grants: `sudo setcap cap_net_raw,cap_net_admin+ep prtip` (or
//! with `cap_bpf` for `--xdp`) lets every user who can run the binary open raw
//! sockets and reconfigure network interfaces through it — send arbitrary
//! frames on any interface the user names (`-e`), attach XDP programs — but
//! not read other users' files or scans (their homes are 0700). Grant it only
//! on machines whose users may scan.

/// Capability bit of CAP_NET_RAW (raw and packet sockets).
pub const CAP_NET_RAW: u32 = 13;

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

/// Drop every capability of the calling thread except the four file ones (effective,
/// permitted and inheritable; ambient cleared), for scans that need no
/// privilege. Call it before starting threads.
pub fn drop_network_privileges() -> std::io::Result<()> {
    let cur = capget()?;
    let mut d = [CapData::default(); 2];
    d[0].effective = cur[0].permitted & FILE_CAPS;
    d[0].permitted = cur[0].permitted & FILE_CAPS;
    let h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
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
    // SAFETY: capset(2) with a valid header and the two data words of version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &h, d.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
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
            assert_eq!(after[0].effective, before[0].permitted & FILE_CAPS);
            assert_eq!(after[1].effective, 0);
            assert_eq!(after[0].permitted & !FILE_CAPS, 0);
            assert!(!has_capability(13), "CAP_NET_RAW");
            assert!(!has_capability(12), "CAP_NET_ADMIN");
            assert!(!has_capability(39), "CAP_BPF");
        })
        .join()
        .unwrap();
    }
}
