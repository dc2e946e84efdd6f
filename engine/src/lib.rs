//! prtip-engine: prtip's scan engine: targets, permutation, wire formats, probe
//! modules, pacing, backends and the scan loop.
//!
//! It knows only `prtip_store::event` (the event types and the sink it pushes them
//! into); it never renders, exports or touches the log files.

#![warn(missing_docs)]

pub mod backend;
pub mod classify;
pub mod connect;
pub mod cookie;
pub mod governor;
mod lifecycle;
pub mod metrics;
pub mod pacing;
pub mod permutation;
pub mod ports;
pub mod probe;
pub mod route;
pub mod scan;
pub mod sim;
pub mod targets;
pub mod udp;
pub mod uplink;
pub mod wire;
