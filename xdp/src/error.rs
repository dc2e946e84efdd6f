//! Errors of prtip-xdp: each says what failed and what the operator can do about it.

use std::io;

/// Everything that can go wrong while loading, attaching or using XDP programs and AF_XDP sockets.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The named interface does not exist in the current network namespace.
    #[error("interface {ifname:?} not found in this network namespace (run inside the namespace that holds it, e.g. `ip netns exec prtip-scan ...`)")]
    NoSuchInterface {
        /// The interface name given.
        ifname: String,
    },
    /// The interface exists but is administratively down.
    #[error("interface {ifname:?} is down: bring it up first (`ip link set {ifname} up`)")]
    InterfaceDown {
        /// The interface name given.
        ifname: String,
    },
    /// The process lacks the capabilities to load BPF programs or create AF_XDP sockets.
    #[error("{what} needs CAP_BPF and CAP_NET_ADMIN (or root): run as root or grant them, e.g. `sudo setcap cap_bpf,cap_net_admin,cap_net_raw+ep $(which prtip)`")]
    Permission {
        /// What was attempted.
        what: String,
        /// The underlying error.
        err: io::Error,
    },
    /// Another XDP program is attached to the interface and is not one prtip can take over.
    #[error("interface {ifname:?} already has the XDP program {prog_name:?} (id {prog_id}) attached; detach it first (`ip link set {ifname} xdp off`, or stop the process holding its link) or use another interface")]
    Busy {
        /// The interface name given.
        ifname: String,
        /// Name of the program already attached.
        prog_name: String,
        /// Its kernel id.
        prog_id: u32,
    },
    /// The kernel cannot do what was asked (no XDP, no AF_XDP, mode not supported).
    #[error("{what}: not supported by this kernel or driver ({err}); {hint}")]
    Unsupported {
        /// What was attempted.
        what: String,
        /// What to do about it.
        hint: String,
        /// The underlying error.
        err: io::Error,
    },
    /// Loading (verifying) a BPF object failed.
    #[error(
        "loading the XDP program {program} failed: {err} (PRTIP_XDP_DEBUG=1 shows libbpf's log)"
    )]
    Load {
        /// Program name.
        program: &'static str,
        /// libbpf's error.
        err: libbpf_rs::Error,
    },
    /// Any other operating-system error, with what was being done.
    #[error("{what}: {err}")]
    Io {
        /// What was attempted.
        what: String,
        /// The underlying error.
        err: io::Error,
    },
    /// Invalid configuration given by the caller.
    #[error("{0}")]
    Config(String),
}

/// Result alias of this crate.
pub type Result<T, E = XdpError> = std::result::Result<T, E>;

impl XdpError {
    /// Wrap an OS error, turning EPERM/EACCES into [`XdpError::Permission`].
    pub(crate) fn os(what: impl Into<String>, source: io::Error) -> XdpError {
        let what = what.into();
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => XdpError::Permission { what, err: source },
            _ => XdpError::Io { what, err: source },
        }
    }
}
