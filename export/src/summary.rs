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
/// service is the port table's name, `unknown` when it has none), one row per
/// port that some host had open; the other ports are one `Not shown:` line.
pub fn write_port_table(log_dir: &Path, out: &mut dyn Write) -> Result<(), ExportError> {
    let reader = LogReader::open(log_dir).map_err(ExportError::Store)?;
    let mut per: BTreeMap<(Protocol, u16), [u64; 5]> = BTreeMap::new();
    let mut hosts_up = 0u64;
    for r in sorted_rows(&reader).map_err(ExportError::Store)? {
        let r = r.map_err(ExportError::Store)?;
        if r.proto == Protocol::Host {
            // A host discovery result: counted, not a port.
            hosts_up += u64::from(r.state == PortState::Open);
            continue;
        }
        let i = match r.state {
            PortState::Open => 0,
            PortState::Closed => 1,
            PortState::Filtered => 2,
            PortState::OpenFiltered => 3,
            PortState::Unfiltered => 4,
        };
        per.entry((r.proto, r.port)).or_default()[i] += 1;
    }
    if per.is_empty() {
        writeln!(
            out,
            "{} up",
            crate::render::plural(hosts_up, "host", "hosts")
        )?;
    } else {
        render_port_table(&per, out)?;
    }
    Ok(())
}

/// The table of [`write_port_table`] from its counts per (protocol, port):
/// `[open, closed, filtered, open|filtered, unfiltered]`. A port no host had open is no row
/// (nmap's "Not shown"): a scan of 4 096 hosts × 2 000 ports prints the ports
/// that matter, not 2 000 rows of `0 4096 0`.
fn render_port_table(
    per: &BTreeMap<(Protocol, u16), [u64; 5]>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let (mut hidden, mut closed, mut filtered) = (0u64, 0u64, 0u64);
    let mut header = false;
    for ((proto, port), n) in per {
        if n[0] == 0 {
            hidden += 1;
            closed += n[1];
            filtered += n[2] + n[3];
            continue;
        }
        if !header {
            writeln!(out, "PORT        OPEN     CLOSED   FILTERED SERVICE")?;
            header = true;
        }
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
    if hidden > 0 {
        writeln!(
            out,
            "Not shown: {} open on no host ({closed} closed, {filtered} filtered)",
            crate::render::plural(hidden, "port", "ports")
        )?;
    }
    Ok(())
}

/// The one-line figures `prtip scan` prints at the end of a finished scan, from the
/// log (so its duration is the one the text report's `scanned in` gives):
/// `prtip done: 1 IP address scanned in 0.04 seconds (1 probe sent; 1 open, 0 closed,
/// 0 filtered ports; seed 7)`: every port counted once in its final state
/// (open|filtered and unfiltered too, when there are any).
///
/// From the log's summary ([`prtip_store::summarize_lenient`]'s, or the one
/// [`prtip_store::HistoryIndex::index_log_summary`] hands back with the history
/// row): the log is not read again.
pub fn done_line(summary: &prtip_store::ScanSummary, seed: u64) -> String {
    // The line names no version: the header's version fields stay empty.
    let meta = crate::ReportMeta::from_summary(summary, "", 0);
    if !summary.spec.discovers_first() {
        return done_summary_of(&meta, &summary.port_states, seed);
    }
    // Host discovery first: its host rows are hosts, not ports.
    let [up, down] = summary.host_rows;
    let mut states = summary.port_states;
    states[0] = states[0].saturating_sub(up);
    states[2] = states[2].saturating_sub(down);
    summary_line(&meta, &states, Some(up), seed)
}

/// [`done_line`] from a report header and the ports per final state
/// (`[open, closed, filtered, open|filtered, unfiltered]`, as
/// [`prtip_store::ScanSummary::port_states`]).
pub fn done_summary_of(meta: &crate::ReportMeta, states: &[u64; 5], seed: u64) -> String {
    summary_line(meta, states, None, seed)
}

/// [`done_summary_of`], with the hosts a discovery before the ports found up.
fn summary_line(
    meta: &crate::ReportMeta,
    states: &[u64; 5],
    hosts_up: Option<u64>,
    seed: u64,
) -> String {
    use crate::render::plural;
    if meta.scan_type == prtip_store::event::ScanType::Ping {
        // Host discovery: a host up is an "open" host row, a host down a filtered one.
        return format!(
            "prtip done: {} scanned in {:.2} seconds ({} sent; {} up; seed {seed})",
            plural(meta.total_targets, "IP address", "IP addresses"),
            meta.elapsed_secs(),
            plural(meta.counters.sent, "probe", "probes"),
            plural(states[0], "host", "hosts"),
        );
    }
    let mut counts = format!(
        "{} open, {} closed, {} filtered",
        states[0], states[1], states[2]
    );
    for (n, name) in [(states[3], "open|filtered"), (states[4], "unfiltered")] {
        if n > 0 {
            counts.push_str(&format!(", {n} {name}"));
        }
    }
    let up = hosts_up.map_or(String::new(), |n| {
        format!("{} up; ", plural(n, "host", "hosts"))
    });
    format!(
        "prtip done: {} scanned in {:.2} seconds ({} sent; {up}{counts} ports; seed {seed})",
        plural(meta.total_targets, "IP address", "IP addresses"),
        meta.elapsed_secs(),
        plural(meta.counters.sent, "probe", "probes"),
    )
}

#[cfg(test)]
mod tests {
    use crate::render::testutil::meta;
    use prtip_store::Protocol;

    #[test]
    fn the_port_table_has_a_row_per_port_open_somewhere_only() {
        let mut per = std::collections::BTreeMap::new();
        per.insert((Protocol::Tcp, 22), [0, 4096, 0, 0, 0]);
        per.insert((Protocol::Tcp, 23), [0, 4000, 90, 6, 0]);
        per.insert((Protocol::Tcp, 80), [3, 4093, 0, 0, 0]);
        let mut out = Vec::new();
        super::render_port_table(&per, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PORT        OPEN     CLOSED   FILTERED SERVICE\n\
             80/tcp      3        4093     0        http\n\
             Not shown: 2 ports open on no host (8096 closed, 96 filtered)\n"
        );
        per.remove(&(Protocol::Tcp, 80));
        let mut out = Vec::new();
        super::render_port_table(&per, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Not shown: 2 ports open on no host (8096 closed, 96 filtered)\n"
        );
    }

    #[test]
    fn the_done_line_counts_every_state() {
        let mut m = meta();
        m.total_targets = 4;
        m.counters.sent = 8;
        // Counters know open and closed only; the line counts from the final states.
        m.counters.open = 0;
        m.counters.closed = 0;
        let line = super::done_summary_of(&m, &[1, 1, 2, 3, 1], 7);
        assert!(
            line.ends_with("(8 probes sent; 1 open, 1 closed, 2 filtered, 3 open|filtered, 1 unfiltered ports; seed 7)"),
            "{line}"
        );
    }

    #[test]
    fn the_done_line_counts_in_words_and_uses_the_reports_duration() {
        let mut m = meta();
        m.total_targets = 1;
        m.counters.sent = 1;
        m.counters.open = 1;
        let line = super::done_summary_of(&m, &[1, 0, 0, 0, 0], 7);
        assert_eq!(
            line,
            "prtip done: 1 IP address scanned in 12.34 seconds (1 probe sent; 1 open, 0 closed, 0 filtered ports; seed 7)"
        );
        // The same figure as the text report's trailer.
        let text = crate::render::done_line(&m, &crate::render::Totals::default());
        assert!(text.contains("scanned in 12.34 seconds"), "{text}");
        m.total_targets = 256;
        m.counters.sent = 512;
        assert!(super::done_summary_of(&m, &[0; 5], 7).starts_with(
            "prtip done: 256 IP addresses scanned in 12.34 seconds (512 probes sent;"
        ));
    }
}
