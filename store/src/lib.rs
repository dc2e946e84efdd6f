//! prtip-store: the scan log and everything built from it.
//!
//! - [`event`]: the event schema (what the engine pushes) and the [`event::EventSink`] trait.
//! - the log (segments, framing, checksums, recovery, compression), the readers,
//!   the projections (results, counters) and the history index.
//!
//! The store never depends on the engine, never opens sockets and never renders.

#![warn(missing_docs)]

pub mod event;
pub mod results;

pub use event::{Addr, Event, EventSink, PortState, Protocol, Reason};
pub use results::{ResultRow, ServiceInfo};
