//! Thin, checked wrappers over the kernel interfaces prtip-xdp needs beyond
//! libbpf-rs: interface lookup and flags, XDP links (create, query, update),
//! BPF object info, and running code inside another network namespace.
//! Owns no state; never attaches anything by itself.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use libbpf_rs::libbpf_sys as sys;

use crate::error::{Result, XdpError};

/// Where an XDP program runs: in the driver (native, `XDP_FLAGS_DRV_MODE`) or
/// in the generic SKB path (`XDP_FLAGS_SKB_MODE`, works on every interface, slower).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// Driver mode: the program runs before an skb is allocated.
    Native,
    /// Generic mode: the program runs on the skb, any driver.
    Skb,
}

impl XdpMode {
    pub(crate) fn flags(self) -> u32 {
        match self {
            XdpMode::Native => sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Skb => sys::XDP_FLAGS_SKB_MODE,
        }
    }

    /// The name used on the command line (`native` or `skb`).
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
        }
    }
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for XdpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" | "drv" => Ok(XdpMode::Native),
            "skb" | "generic" => Ok(XdpMode::Skb),
            other => Err(format!(
                "unknown XDP mode {other:?}: expected native or skb"
            )),
        }
    }
}

/// `NETDEV_XDP_ACT_XSK_ZEROCOPY` from linux/netdev.h: the driver supports AF_XDP zero-copy.
pub(crate) const NETDEV_XDP_ACT_XSK_ZEROCOPY: u64 = 1 << 3;
/// `NETDEV_XDP_ACT_BASIC`: the driver runs XDP programs natively.
pub(crate) const NETDEV_XDP_ACT_BASIC: u64 = 1;

fn neg_errno(ret: i32) -> io::Error {
    io::Error::from_raw_os_error(if ret < 0 { -ret } else { libc::EIO })
}

/// Index of `ifname` in the calling thread's network namespace.
pub(crate) fn ifindex(ifname: &str) -> Result<u32> {
    let c = CString::new(ifname)
        .map_err(|_| XdpError::Config(format!("interface name {ifname:?} contains a NUL byte")))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(XdpError::NoSuchInterface {
            ifname: ifname.to_string(),
        });
    }
    Ok(idx)
}

/// Fail with [`XdpError::InterfaceDown`] unless `ifname` is administratively up.
pub(crate) fn ensure_up(ifname: &str) -> Result<()> {
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(XdpError::Config(format!(
            "interface name {ifname:?} is longer than {} bytes",
            libc::IFNAMSIZ - 1
        )));
    }
    let sock = inet_socket()?;
    let mut ifr = ifreq_for(ifname);
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_ifru.ifru_flags of the ifreq we own.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENODEV) {
            return Err(XdpError::NoSuchInterface {
                ifname: ifname.to_string(),
            });
        }
        return Err(XdpError::os(format!("SIOCGIFFLAGS on {ifname}"), e));
    }
    // SAFETY: the kernel filled the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short == 0 {
        return Err(XdpError::InterfaceDown {
            ifname: ifname.to_string(),
        });
    }
    Ok(())
}

/// `struct ethtool_channels` of linux/ethtool.h.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

fn ifreq_for(ifname: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr
        .ifr_name
        .iter_mut()
        .take(libc::IFNAMSIZ - 1)
        .zip(ifname.bytes())
    {
        *dst = src as libc::c_char;
    }
    ifr
}

fn inet_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(XdpError::os("socket(AF_INET)", io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Number of RX queues in use on `ifname` (ethtool channels: combined or rx),
/// in the calling thread's namespace; 1 when the driver does not report channels.
pub(crate) fn rx_queue_count(ifname: &str) -> Result<u32> {
    let sock = inet_socket()?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut ifr = ifreq_for(ifname);
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GCHANNELS writes one ethtool_channels
    // through ifru_data, which points at `ch`, alive for the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut ifr) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODEV) => Err(XdpError::NoSuchInterface {
                ifname: ifname.to_string(),
            }),
            Some(libc::EOPNOTSUPP) => Ok(1),
            _ => Err(XdpError::os(format!("ethtool channels of {ifname}"), e)),
        };
    }
    Ok(ch.combined_count.max(ch.rx_count).max(1))
}

/// Attach `prog` to `ifindex` through a BPF link (`BPF_LINK_CREATE`, attach type
/// `BPF_XDP`) in `mode`. The program stays attached exactly as long as the
/// returned descriptor (and any duplicate of it) is open: process exit or death
/// detaches it.
pub(crate) fn link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    mode: XdpMode,
) -> io::Result<OwnedFd> {
    let opts = sys::bpf_link_create_opts {
        sz: std::mem::size_of::<sys::bpf_link_create_opts>() as _,
        flags: mode.flags(),
        ..Default::default()
    };
    // SAFETY: prog is a valid program fd for the duration of the call, opts is a
    // properly sized, initialised struct; the returned fd (if >= 0) is ours.
    let fd = unsafe { sys::bpf_link_create(prog.as_raw_fd(), ifindex as i32, sys::BPF_XDP, &opts) };
    if fd < 0 {
        return Err(neg_errno(fd));
    }
    // SAFETY: bpf_link_create returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[allow(dead_code)] // used by the scan filter's link takeover (next step)
/// Replace the program of an XDP link, only if it still runs `old_prog`.
pub(crate) fn link_update(
    link: BorrowedFd<'_>,
    new_prog: BorrowedFd<'_>,
    old_prog: BorrowedFd<'_>,
) -> io::Result<()> {
    let opts = sys::bpf_link_update_opts {
        sz: std::mem::size_of::<sys::bpf_link_update_opts>() as _,
        flags: sys::BPF_F_REPLACE,
        old_prog_fd: old_prog.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: all fds are valid for the call; opts is initialised and sized.
    let r = unsafe { sys::bpf_link_update(link.as_raw_fd(), new_prog.as_raw_fd(), &opts) };
    if r < 0 {
        return Err(neg_errno(r));
    }
    Ok(())
}

/// What is attached to an interface right now.
#[derive(Debug, Clone, Default)]
pub(crate) struct XdpQuery {
    /// Id of the attached program (0: none).
    pub prog_id: u32,
    /// Mode it runs in, if any.
    pub mode: Option<XdpMode>,
    /// `NETDEV_XDP_ACT_*` feature flags of the driver.
    pub features: u64,
}

/// Query the XDP state of `ifindex` (netlink, in the calling thread's namespace).
pub(crate) fn xdp_query(ifindex: u32) -> io::Result<XdpQuery> {
    let mut opts = sys::bpf_xdp_query_opts {
        sz: std::mem::size_of::<sys::bpf_xdp_query_opts>() as _,
        ..Default::default()
    };
    // SAFETY: opts is sized and initialised; libbpf writes only within it.
    let r = unsafe { sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if r < 0 {
        return Err(neg_errno(r));
    }
    let mode = match opts.attach_mode as u32 {
        sys::XDP_ATTACHED_DRV => Some(XdpMode::Native),
        sys::XDP_ATTACHED_SKB => Some(XdpMode::Skb),
        _ => None,
    };
    Ok(XdpQuery {
        prog_id: opts.prog_id,
        mode,
        features: opts.feature_flags,
    })
}

/// A descriptor for the program with `id` and its name.
pub(crate) fn prog_by_id(id: u32) -> io::Result<(OwnedFd, String)> {
    // SAFETY: plain syscall wrapper; result checked.
    let fd = unsafe { sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Err(neg_errno(fd));
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = prog_name(fd.as_raw_fd())?;
    Ok((fd, name))
}

/// Name (up to 15 bytes, as the kernel keeps it) of the program behind `fd`.
pub(crate) fn prog_name(fd: RawFd) -> io::Result<String> {
    // SAFETY: bpf_prog_info is plain old data; zero is valid.
    let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: info/len describe a buffer we own of the right size.
    let r = unsafe { sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    if r < 0 {
        return Err(neg_errno(r));
    }
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Id of the program behind `fd`.
pub(crate) fn prog_id(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: as in prog_name.
    let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: info/len describe a buffer we own of the right size.
    let r = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if r < 0 {
        return Err(neg_errno(r));
    }
    Ok(info.id)
}

#[allow(dead_code)] // used by the scan filter's link takeover (next step)
/// Find the XDP link that runs program `prog_id` on `ifindex` and open it.
/// `None` if the program was attached without a link (netlink, `ip link set xdp`).
pub(crate) fn xdp_link_of(prog_id: u32, ifindex: u32) -> io::Result<Option<OwnedFd>> {
    let mut id = 0u32;
    loop {
        let mut next = 0u32;
        // SAFETY: writes one u32 we own.
        let r = unsafe { sys::bpf_link_get_next_id(id, &mut next) };
        if r < 0 {
            let e = neg_errno(r);
            if e.raw_os_error() == Some(libc::ENOENT) {
                return Ok(None);
            }
            return Err(e);
        }
        id = next;
        // SAFETY: plain syscall wrapper; result checked.
        let fd = unsafe { sys::bpf_link_get_fd_by_id(id) };
        if fd < 0 {
            continue; // went away meanwhile
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: bpf_link_info is plain old data; zero is valid.
        let mut info: sys::bpf_link_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<sys::bpf_link_info>() as u32;
        // SAFETY: info/len describe a buffer we own of the right size.
        let r = unsafe { sys::bpf_link_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
        if r < 0 {
            continue;
        }
        // SAFETY: for BPF_LINK_TYPE_XDP links the kernel fills the `xdp` member.
        let link_ifindex = unsafe { info.__bindgen_anon_1.xdp.ifindex };
        if info.type_ == sys::BPF_LINK_TYPE_XDP
            && info.prog_id == prog_id
            && link_ifindex == ifindex
        {
            return Ok(Some(fd));
        }
    }
}

/// Run `f` on a helper thread that has entered the network namespace `netns`
/// (a name under /run/netns, as made by `ip netns add`, or an absolute path).
/// Objects created there (sockets, ifindex lookups, BPF links) keep referring to
/// that namespace after the thread ends; the caller's own thread never moves.
pub fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = if netns.starts_with('/') {
        netns.to_string()
    } else {
        format!("/run/netns/{netns}")
    };
    let file = File::open(&path)
        .map_err(|e| XdpError::os(format!("opening network namespace {netns:?} ({path})"), e))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns on the calling (helper) thread only, with a valid fd of a
            // network-namespace file; CLONE_NEWNET is allowed in multi-threaded processes.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if r < 0 {
                return Err(XdpError::os(
                    format!("entering network namespace {netns:?}"),
                    io::Error::last_os_error(),
                ));
            }
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Is the XDP link still attached to a device? (false once the interface is gone)
pub(crate) fn link_alive(link: BorrowedFd<'_>) -> bool {
    // SAFETY: bpf_link_info is plain old data; zero is valid.
    let mut info: sys::bpf_link_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sys::bpf_link_info>() as u32;
    // SAFETY: info/len describe a buffer we own of the right size.
    let r = unsafe { sys::bpf_link_get_info_by_fd(link.as_raw_fd(), &mut info, &mut len) };
    // SAFETY: XDP links fill the `xdp` member; ifindex 0 means detached.
    r == 0 && unsafe { info.__bindgen_anon_1.xdp.ifindex } != 0
}

/// What prtip can learn about an interface before using it for XDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Interface name.
    pub ifname: String,
    /// Interface index in the namespace it was looked up in.
    pub ifindex: u32,
    /// RX queues in use (one AF_XDP socket per queue).
    pub rx_queues: u32,
    /// The driver runs XDP programs natively (`NETDEV_XDP_ACT_BASIC`).
    pub native_xdp: bool,
    /// The driver supports AF_XDP zero-copy (`NETDEV_XDP_ACT_XSK_ZEROCOPY`).
    pub zero_copy: bool,
    /// The XDP program attached now, if any: (id, name, mode).
    pub attached: Option<(u32, String, XdpMode)>,
}

/// Look `ifname` up in the calling thread's network namespace: index, queues,
/// XDP features of its driver and the program attached to it, if any.
pub fn interface_info(ifname: &str) -> Result<InterfaceInfo> {
    let ifindex = ifindex(ifname)?;
    let rx_queues = rx_queue_count(ifname)?;
    let q = xdp_query(ifindex)
        .map_err(|e| XdpError::os(format!("querying XDP state of {ifname}"), e))?;
    let attached = if q.prog_id != 0 {
        let name = prog_by_id(q.prog_id)
            .map(|(_, n)| n)
            .unwrap_or_else(|_| "?".into());
        Some((q.prog_id, name, q.mode.unwrap_or(XdpMode::Native)))
    } else {
        None
    };
    Ok(InterfaceInfo {
        ifname: ifname.to_string(),
        ifindex,
        rx_queues,
        native_xdp: q.features & NETDEV_XDP_ACT_BASIC != 0,
        zero_copy: q.features & NETDEV_XDP_ACT_XSK_ZEROCOPY != 0,
        attached,
    })
}

/// Ids of the maps the program behind `fd` uses.
pub(crate) fn prog_map_ids(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    // SAFETY: bpf_prog_info is plain old data; zero is valid.
    let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: info/len describe a buffer we own of the right size.
    let r = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if r < 0 {
        return Err(neg_errno(r));
    }
    let n = info.nr_map_ids;
    let mut ids = vec![0u32; n as usize];
    // SAFETY: as above; zero is valid.
    let mut info2: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    info2.nr_map_ids = n;
    info2.map_ids = ids.as_mut_ptr() as u64;
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: the kernel writes at most nr_map_ids u32s to map_ids, which points at
    // `ids` (n elements), alive for the call.
    let r = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info2, &mut len) };
    if r < 0 {
        return Err(neg_errno(r));
    }
    ids.truncate(info2.nr_map_ids.min(n) as usize);
    Ok(ids)
}
