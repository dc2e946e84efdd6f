//! Exports straight from a scan log directory: the store's summary becomes the
//! [`ReportMeta`], its sorted, folded result stream feeds the renderers.
//!
//! Reads the log only (a scan may still be writing it); never appends to it.

use crate::{ExportError, ExportOptions, ExportStats, Format, ReportMeta, Target};
use prtip_store::event::OutputSpec;
use prtip_store::{
    summary_and_sorted_rows, LogReader, ScanSummary, Silence, SortOptions, StoreError,
};
use std::path::Path;

fn log_err(e: StoreError) -> ExportError {
    ExportError::Store(e)
}

impl ReportMeta {
    /// The report header of a scan from the store's summary and the log's first event.
    pub fn from_summary(
        summary: &ScanSummary,
        prtip_version: &str,
        schema_version: u32,
    ) -> ReportMeta {
        let spec = &summary.spec;
        ReportMeta {
            scan_id: summary.scan_id,
            command_line: crate::join_command_line(&summary.command_line),
            targets: spec.targets.clone(),
            ports: spec.ports.clone(),
            scan_type: spec.scan_type,
            service_detection: spec.service_detection,
            reason: crate::meta::asks_reason(&summary.command_line),
            started_us: summary.started_us,
            ended_us: summary.ended_us,
            status: summary.status.as_str().into(),
            total_targets: summary.total_targets,
            total_probes: summary.total_probes,
            counters: summary.counters,
            progress: summary.progress(),
            prtip_version: prtip_version.into(),
            schema_version,
            generated_us: prtip_store::event::now_us(),
        }
    }
}

/// Export the scan log in `log_dir` to every target in one pass over its results.
///
/// The log is read once: the store's summary (the report header) and its sorted
/// rows come from the same pass ([`summary_and_sorted_rows`]), in bounded memory.
pub fn export_log_to(
    log_dir: &Path,
    targets: &[Target],
    opts: &mut ExportOptions<'_>,
) -> Result<Vec<ExportStats>, ExportError> {
    let reader = LogReader::open(log_dir).map_err(log_err)?;
    let started = reader.scan_started().map_err(log_err)?;
    let sort = SortOptions {
        silent_rows: opts.silent_rows,
        ..SortOptions::default()
    };
    let (summary, rows) = summary_and_sorted_rows(&reader, &sort).map_err(log_err)?;
    let meta = ReportMeta::from_summary(&summary, &started.versions.prtip, started.versions.schema);
    // Silent ports the rows do not list are counted per host that answered.
    let silence = Silence::of_summary(&summary)
        .filter(|s| !opts.silent_rows.unwrap_or_else(|| s.lists_rows()));
    drop(summary);
    crate::export_rows_counting(
        &meta,
        rows.map(|r| r.map_err(log_err)),
        targets,
        opts,
        silence.as_ref(),
    )
}

/// Export the scan log in `log_dir` as `format` into any writer (the scan's
/// report on stderr when an output took stdout): the bytes `prtip export` writes.
pub fn export_log_into(
    log_dir: &Path,
    format: Format,
    out: &mut dyn std::io::Write,
    opts: &mut ExportOptions<'_>,
) -> Result<ExportStats, ExportError> {
    let reader = LogReader::open(log_dir).map_err(log_err)?;
    let started = reader.scan_started().map_err(log_err)?;
    let (summary, rows) =
        summary_and_sorted_rows(&reader, &SortOptions::default()).map_err(log_err)?;
    let meta = ReportMeta::from_summary(&summary, &started.versions.prtip, started.versions.schema);
    drop(summary);
    crate::render(format, &meta, rows.map(|r| r.map_err(log_err)), out, opts)
}

/// Export the scan log in `log_dir` as `format` to `out` (`-` = stdout).
pub fn export_log(
    log_dir: &Path,
    format: Format,
    out: &str,
    opts: &mut ExportOptions<'_>,
) -> Result<ExportStats, ExportError> {
    let mut v = export_log_to(log_dir, &[Target::new(format, out)], opts)?;
    Ok(v.remove(0))
}

/// (Re)generate the outputs a scan asked for (`ScanSpec::outputs`, from `-oN`, `-oX`,
/// `-oG`, `-oJ`, `--csv`, `--html`, `--pdf`; format `all` is `-oA BASE`) in one pass.
/// Returns one [`ExportStats`] per file; their [`ExportStats::event`] is what the
/// scan's log writer appends.
pub fn write_outputs(
    log_dir: &Path,
    outputs: &[OutputSpec],
    opts: &mut ExportOptions<'_>,
) -> Result<Vec<ExportStats>, ExportError> {
    let targets = targets_of(outputs)?;
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    export_log_to(log_dir, &targets, opts)
}

/// The targets of a scan's output specs (`all` expands to `.nmap`, `.xml`, `.gnmap`).
pub fn targets_of(outputs: &[OutputSpec]) -> Result<Vec<Target>, ExportError> {
    let mut targets = Vec::new();
    for o in outputs {
        if o.format.eq_ignore_ascii_case("all") {
            targets.extend(Target::all_nmap(&o.path));
        } else {
            targets.push(Target::from_spec(o)?);
        }
    }
    Ok(targets)
}
