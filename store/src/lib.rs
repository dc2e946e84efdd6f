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

#![warn(missing_docs)]

pub mod event;
pub mod results;

mod appender;
mod compress;
mod error;
mod follower;
mod format;
mod history;
mod project;
mod reader;
mod record;
mod segment;
mod sort;
mod sys;
mod writer;

pub use appender::{Appender, LogOptions, LogPos, RecoveryReport, Truncation};
pub use compress::compress_sealed_segment;
pub use error::{Result, StoreError};
pub use event::{Addr, Event, EventSink, PortState, Protocol, Reason};
pub use follower::Follower;
pub use format::{FORMAT_VERSION, INDEX_STRIDE};
pub use history::{spec_json, HistoryIndex, HistoryRow, RebuildReport};
pub use project::{summarize, summarize_lenient, Results, ScanStatus, ScanSummary};
pub use reader::{Entries, Entry, LogReader, TailReport};
pub use record::{EventKind, EventRef};
pub use results::{ResultRow, ServiceInfo};
pub use sort::{sorted_rows, sorted_rows_with, summary_and_sorted_rows, SortOptions, SortedRows};
pub use sys::writer_alive;
pub use writer::{LogSink, LogWriter};
