//! prtip-store: the scan log and everything built from it.
//!
//! - [`event`]: the event schema (what the engine pushes) and the [`event::EventSink`] trait.
//! - The log: a directory of preallocated, memory-mapped segment files holding
//!   CRC32C-protected frames of rkyv records ([`LogWriter`], [`Appender`]), read back
//!   zero-copy and validated ([`LogReader`], [`Follower`]), recovered after a crash
//!   ([`RecoveryReport`]), sealed segments compressed with zstd. The byte layout is
//!   in `store/FORMAT.md`.
//! - Projections, pure functions of the log: results, counters, summaries, a sorted
//!   result stream in constant memory, and the history index (redb).
//!
//! The store never depends on the engine, never opens sockets and never renders.
//!
//! ```
//! use prtip_store::event::*;
//! use prtip_store::{summarize, sorted_rows, LogOptions, LogReader, LogWriter, ScanStatus};
//! # fn spec() -> ScanSpec { ScanSpec { targets: vec!["10.0.0.1".into()], ports: "T:22".into(),
//! #   seed: 1, ..ScanSpec::default() } }
//! let dir = tempfile::tempdir()?;
//! let log = dir.path().join("scans/1");
//!
//! // Write: the engine pushes events into a sink; checkpoints are durable on return.
//! let writer = LogWriter::create(&log, LogOptions::default())?;
//! let mut sink = writer.sink();
//! sink.push(Event::ScanStarted(Box::new(ScanStarted {
//!     scan_id: 1, time_us: now_us(), spec: spec(),
//!     versions: Versions { prtip: "0.1.0".into(), schema: SCHEMA_VERSION },
//!     command_line: vec![], total_probes: 1, total_targets: 1, pid: std::process::id(),
//! })))?;
//! sink.push(Event::Reply(Reply {
//!     addr: std::net::Ipv4Addr::new(10, 0, 0, 1).into(), port: 22, proto: Protocol::Tcp,
//!     state: PortState::Open, reason: Reason::SynAck, ttl: 64, icmp_code: 0, rtt_us: 300,
//!     time_us: now_us(),
//! }))?;
//! sink.checkpoint(Checkpoint { next_index: 1, counters: Counters::default(), time_us: now_us() })?;
//! sink.push(Event::Finished(Finished { time_us: now_us(), counters: Counters::default() }))?;
//! drop(sink);
//! writer.finish()?;
//!
//! // Read: every record is checked (CRC32C + rkyv) before it is handed out.
//! let reader = LogReader::open(&log)?;
//! assert_eq!(reader.iter().count(), 4);
//! assert_eq!(summarize(&reader)?.status, ScanStatus::Completed);
//! let rows: Vec<_> = sorted_rows(&reader)?.collect::<Result<_, _>>()?;
//! assert_eq!((rows[0].port, rows[0].state), (22, PortState::Open));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod event;
pub mod fault;
pub mod port_table;
pub mod results;
pub mod space;

mod appender;
mod compress;
mod error;
mod follower;
mod format;
mod gate;
mod history;
mod project;
mod reader;
mod record;
mod segment;
mod silence;
mod sort;
mod sys;
mod tally;
mod verify;
mod writer;

pub use appender::{Appender, LogOptions, LogPos, RecoveryReport, Truncation, INDEX_SYNC_BYTES};
pub use compress::compress_sealed_segment;
pub use error::{Result, StoreError};
pub use event::{Addr, Event, EventSink, PortState, Protocol, Reason};
pub use follower::Follower;
pub use format::{FLAG_SALVAGED, FORMAT_VERSION, INDEX_STRIDE};
pub use history::{spec_json, HistoryIndex, HistoryRow, RebuildReport};
pub use project::{
    pass_span, progress_at, summarize, summarize_lenient, Results, ScanStatus, ScanSummary,
};
pub use reader::{Entries, Entry, LogReader, TailReport};
pub use record::{EventKind, EventRef};
pub use results::{ResultRow, ServiceInfo};
pub use silence::{Silence, SILENT_ROWS_MAX};
pub use sort::{sorted_rows, sorted_rows_with, summary_and_sorted_rows, SortOptions, SortedRows};
pub use sys::{holds_writer_lock, writer_alive};
pub use verify::{salvage, verify, Damage, LogEnd, SalvageReport, Verification};
pub use writer::{LogSink, LogWriter};
