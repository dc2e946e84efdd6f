//! prtip-monitor: prtip's terminal monitor: a ratatui reader of a scan log with results, filters and a performance dashboard.

#![warn(missing_docs)]
