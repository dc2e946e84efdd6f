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
pub mod probe;
pub mod route;
pub mod scan;
pub mod sim;
pub mod udp;
pub mod uplink;
pub mod wire;

// The index space (targets, ports, the keyed walk) lives in the store, so every
// reader of a log can interpret its walk positions (silence is projected from them);
// the engine's paths stay as they were.
pub use prtip_store::space::{permutation, ports, targets};
