//! prtip-xdp: prtip's AF_XDP backend and the XDP programs (scanner filter, lab responder, sink).
//!
//! The C sources live in `bpf/` (see bpf/README.md); build.rs compiles them with
//! clang and generates libbpf-rs skeletons. Every program is attached through a
//! BPF link owned by an [`AttachedProgram`]: dropping it, or the process exiting
//! or dying, detaches the program. Nothing here ever leaves a program attached.
//!
//! - [`responder`]: the lab's stateless XDP_TX target (SYN-ACK / RST).
//! - [`sink`]: the send-only benchmark sink (XDP_DROP + counters).
//! - [`pass`]: pass-through for the scanner's veth (so XDP_TX'd replies arrive).
//! - [`policer`]: the lab's token-bucket SYN policer (test-only, target's veth).
//! - [`lab`]: attach the above to a lab's two namespaces and hold them.
//! - [`filter`]: the scanner-side program that hands our replies to the AF_XDP sockets.
//! - [`xsk`], [`mod@backend`]: the AF_XDP sockets and the engine's `Transmit`/`Receive` over them.

#![warn(missing_docs)]

mod attach;
pub mod backend;
mod error;
pub mod filter;
pub mod lab;
pub mod pass;
pub mod policer;
pub mod responder;
pub mod sink;
mod sys;
pub mod xsk;

pub use attach::AttachedProgram;
pub use backend::{backend, open_pair, ThreadStart, XdpBackend, XdpOptions, XdpRx, XdpTx};
pub use error::{Result, XdpError};
pub use sys::{in_netns, interface_info, InterfaceInfo, XdpMode};
pub use xsk::{SocketSizes, SocketStats, ZeroCopy};

#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn, unused_imports)]
mod skel {
    pub mod scan_filter {
        include!(concat!(env!("OUT_DIR"), "/scan_filter.skel.rs"));
    }
    pub mod responder {
        include!(concat!(env!("OUT_DIR"), "/responder.skel.rs"));
    }
    pub mod sink {
        include!(concat!(env!("OUT_DIR"), "/sink.skel.rs"));
    }
    pub mod pass {
        include!(concat!(env!("OUT_DIR"), "/pass.skel.rs"));
    }
    pub mod policer {
        include!(concat!(env!("OUT_DIR"), "/policer.skel.rs"));
    }
}
