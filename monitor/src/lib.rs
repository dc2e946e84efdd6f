//! prtip-monitor: the terminal monitor, a ratatui reader of a scan log.
//!
//! The monitor attaches to a scan log — one another process is writing, or a
//! finished one — and shows progress, the results table with the filter
//! language of `prtip-filter`, an export menu (`prtip-export`) and a
//! performance dashboard. It only ever reads the log: quitting never stops or
//! corrupts a scan. Pause and resume are requests sent to the scanning process
//! as signals (SIGUSR1 / SIGUSR2); the scan answers by writing `Paused` /
//! `Resumed` events, which the monitor then shows.
//!
//! Structure (as in trippy's TUI): a pure state [`App`] (events and keys in,
//! state and [`Action`]s out), pure render functions ([`draw`]), and a thin
//! event loop ([`run()`]) that polls the log, the keyboard and the operating
//! system. The crate never writes to the log and never reaches into the engine.

#![warn(missing_docs)]

pub mod app;
pub mod fmt;
pub mod metrics;
pub mod sanitize;
pub mod table;
pub mod ui;

pub use app::{Action, App, ScanSignal, Status, Tab};
pub use sanitize::{sanitize, sanitize_bytes};
pub use ui::draw;
pub mod run;
pub use run::{run, MonitorError, Options};
