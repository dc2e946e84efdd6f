//! prtip-session: one scan session, from a [`ScanSpec`] to its log, history row,
//! outputs and outcome. The `prtip` binary (`scan`, `replay --from-checkpoint`,
//! `history resume`, `scan --tui`) and library users run scans through it.
//!
//! Two steps:
//! - [`prepare`] checks the spec (the plan), the privileges, the route; opens the
//!   backend and the probe database; only then writes the history row and creates
//!   (or, resuming, reopens) the log. A refusal leaves nothing behind; its error
//!   holds a [`UsageError`] when the input was at fault.
//! - [`Session::run`] runs the engine with a [`ScanControl`] (pause, hold, abort)
//!   and an observer that sees every event, runs `-sV` after a SYN scan, keeps the
//!   history row current, streams the rows of the outputs the spec names as
//!   they arrive (prtip-export's `LiveOutputs`), and at the end flushes and
//!   closes the log, writes those outputs from the finished log (each file then
//!   equals `prtip export`'s) and rewrites the history row from the log. A pause
//!   in any phase (the walk or `-sV`) ends the run paused and resumable. It
//!   returns a [`Report`].
//!
//! [`resume_point`] reads a paused or interrupted scan's log and says where it
//! continues ([`Start::Resume`]).
//!
//! This crate owns the order of those steps and nothing a user sees: it never
//! prints, never parses flags and never handles signals (the caller does, and
//! tells it through the [`ScanControl`]).
//!
//! ```no_run
//! use prtip_session::{prepare, Home, Start};
//! use prtip_engine::scan::ScanControl;
//! use prtip_store::event::{ScanSpec, ScanType, BackendKind};
//! let spec = ScanSpec {
//!     targets: vec!["127.0.0.1".into()],
//!     ports: "T:22,80".into(),
//!     scan_type: ScanType::Connect,
//!     backend: BackendKind::Connect,
//!     ..ScanSpec::default()
//! };
//! let home = Home { history: "/tmp/h/history.redb".into(), scans: "/tmp/h/scans".into() };
//! let session = prepare(spec, Start::Fresh { command_line: vec![] }, &home)?;
//! let report = session.run(&ScanControl::new(), &mut |_event| {})?;
//! println!("scan {} in {}", report.id, report.dir.display());
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! [`ScanSpec`]: prtip_store::event::ScanSpec
//! [`ScanControl`]: prtip_engine::scan::ScanControl

#![warn(missing_docs)]

mod error;
mod prepare;
pub mod privilege;
mod resume;
mod run;
mod tracking;
mod xdp;

pub use error::{usage, UsageError};
pub use prepare::{discover_route, learned_governor, prepare, Home, Resume, Session, Start};
pub use resume::{effective_status, lock_pid, percent_done, resume_point, ResumePoint};
pub use run::{outcome_counters, Report};
pub use tracking::HistoryTracking;
