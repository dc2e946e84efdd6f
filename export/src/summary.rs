//! The end-of-scan summary of a scan too large for a report per host: one line
//! per (protocol, port) with how many hosts had it open, closed and filtered.
//!
//! Reads the log's sorted rows once; memory is bounded by the distinct
//! (protocol, port) pairs (at most 2 × 65 536), never by the number of hosts.

use crate::ExportError;
use prtip_store::{sorted_rows, LogReader, PortState, Protocol};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Write the per-port table of the scan log in `log_dir` to `out`:
/// `PORT OPEN CLOSED FILTERED SERVICE` (open|filtered counts as filtered; the
/// service is the port table's name, `unknown` when it has none).
pub fn write_port_table(log_dir: &Path, out: &mut dyn Write) -> Result<(), ExportError> {
    let reader = LogReader::open(log_dir).map_err(ExportError::Store)?;
    let mut per: BTreeMap<(Protocol, u16), [u64; 4]> = BTreeMap::new();
    for r in sorted_rows(&reader).map_err(ExportError::Store)? {
        let r = r.map_err(ExportError::Store)?;
        let i = match r.state {
            PortState::Open => 0,
            PortState::Closed => 1,
            PortState::Filtered => 2,
            PortState::OpenFiltered => 3,
        };
        per.entry((r.proto, r.port)).or_default()[i] += 1;
    }
    writeln!(out, "PORT        OPEN     CLOSED   FILTERED SERVICE")?;
    for ((proto, port), n) in &per {
        let name = crate::table_service(*port, *proto).unwrap_or("unknown");
        writeln!(
            out,
            "{:<11} {:<8} {:<8} {:<8} {name}",
            format!("{port}/{}", proto.as_str()),
            n[0],
            n[1],
            n[2] + n[3]
        )?;
    }
    Ok(())
}
