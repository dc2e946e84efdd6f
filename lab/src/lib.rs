//! prtip-lab: prtip's own test lab. Two network namespaces joined by a veth pair:
//! the scanner side holds only `lo` and its veth end and has no default route; the
//! target side answers for a whole network (AnyIP) with realistic services on the
//! open TCP ports, RST on every other port, DNS/NTP/echo on the UDP ports and ICMP
//! port unreachable on the others.
//!
//! ```text
//!  [netns <name>-scan]                             [netns <name>-tgt]
//!   <name>-s0 198.18.0.1/30  <===== veth =====>  <name>-t0 198.18.0.2/30
//!   route 198.19.0.0/16 via 198.18.0.2            local 198.19.0.0/16 dev lo (AnyIP)
//!   no default route, no other links              `prtip lab serve` (the responder)
//! ```
//!
//! - [`LabConfig`] describes a lab, [`Lab::up`] builds it, [`down`] removes it,
//!   [`status`] inspects it, [`LabGuard`] removes it on drop (tests).
//! - [`LabConfig::ground_truth`] says what a correct scan finds.
//! - [`services`] / [`udp`]: what each port says; [`responder::serve`] runs them.
//! - [`probe`]: one TCP connection / UDP datagram from inside a namespace
//!   (IPv4 or IPv6).
//! - IPv6: every lab also has `2001:db8:0:1::1/64` <-> `::2/64` on the link and
//!   an IPv6 target prefix ([`LabConfig::target_net6`], default
//!   `2001:db8:100::/116`, AnyIP); [`ipv6::Ipv6Net`].
//! - [`sparse`]: a network where only some addresses exist, the rest silent or
//!   answering ICMP host unreachable ([`LabConfig::sparse`]).
//! - [`control`]: take a veth end down and up, silence the next hop's ARP/NDP.
//! - [`PolicerSpec`]: the SYN policer the CLI attaches (the program is in prtip-xdp).
//! - [`privilege`]: the one place that checks capabilities.
//!
//! This crate never sends anything outside the namespaces it creates, and never
//! adds anything to the caller's namespace.

#![warn(missing_docs)]

pub mod config;
pub mod control;
pub mod error;
pub mod icmp_mask;
pub mod ipv6;
pub mod lab;
pub mod netns;
pub mod privilege;
pub mod probe;
pub mod responder;
pub mod services;
pub mod sparse;
pub mod udp;

pub use config::{
    GroundTruth, IpNet, Ipv4Net, LabConfig, MacAddr, Owner, PolicerSpec, PortTruth, Proto,
    ResponderKind,
};
pub use control::{link_is_up, next_hop_answering, set_link, set_next_hop, Side};
pub use error::LabError;
pub use ipv6::Ipv6Net;
pub use lab::{
    down, helpers, list_labs, load_config, stale_labs, status, DownReport, Helper, Lab, LabGuard,
    LabStatus,
};
pub use probe::{tcp_connect, tcp_probe, udp_probe, TcpProbe, UdpProbe};
pub use sparse::{HostTruth, Sparse, SparseHosts, SparseMode};
