//! prtip-export: every export of a scan (text, JSON lines, nmap XML, greppable,
//! CSV, HTML, PDF) as a streaming projection of the result rows.
//!
//! Renderers consume rows sorted by (address, protocol, port) — what the store's
//! `sorted_rows` yields — grouped into hosts, and write as they go: memory is
//! bounded by one host's ports plus small aggregate maps, never by the number of
//! results (the PDF writer writes each page as it fills and keeps only object
//! offsets). One pass can feed several
//! outputs at once (`-oA`). Files are written atomically (temporary file + rename)
//! and a Ctrl-C ([`interrupt`]) aborts without leaving a half-written file.
//!
//! This crate owns rendering and output files; it never writes to the scan log
//! (it returns the `ExportComplete` event for the log's single writer to append:
//! [`ExportStats::event`]).
//!
//! ```
//! use prtip_export::{render, ExportOptions, Format, ReportMeta, synthetic};
//! let meta = ReportMeta::synthetic(1, &synthetic::lab_spec(), 1_764_080_100_000_000);
//! let mut out = Vec::new();
//! let stats = render(Format::Csv, &meta, synthetic::lab_rows(20).map(Ok), &mut out,
//!                    &mut ExportOptions::default()).unwrap();
//! assert_eq!(stats.rows, 20);
//! assert!(out.starts_with(b"IP,Port,Protocol,State,Service,Version,Banner\r\n"));
//! ```

#![warn(missing_docs)]

pub mod escape;
mod hosts;
pub mod interrupt;
pub mod live;
mod log;
mod meta;
mod output;
mod render;
pub mod stats;
mod summary;
pub mod synthetic;

pub use hosts::{Hidden, Host, MAX_LISTED_PER_STATE};
pub use live::LiveOutputs;
pub use log::{export_log, export_log_into, export_log_to, targets_of, write_outputs};
pub use meta::{ctime, human_time, join_command_line, rfc3339, ReportMeta};
pub use render::table_service;
pub use summary::{done_line, done_summary_of, write_port_table};

use output::Output;
use prtip_store::event::{now_us, Event, ExportComplete};
use prtip_store::ResultRow;
use render::{Render, Totals};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// nmap's normal output (`-oN`): a readable report per host.
    Text,
    /// JSON lines (`-oJ`): one object per result row; see docs/exports.md for the fields.
    Json,
    /// nmap XML (`-oX`): validates against nmap.dtd; read by ndiff, python-libnmap, ...
    Xml,
    /// nmap's greppable output (`-oG`): one line per host.
    Grep,
    /// CSV: IP, Port, Protocol, State, Service, Version, Banner (RFC 4180).
    Csv,
    /// One self-contained HTML report (templates/scan_report.html).
    Html,
    /// A PDF report, streamed page by page (see docs/exports.md).
    Pdf,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 7] = [
        Format::Text,
        Format::Json,
        Format::Xml,
        Format::Grep,
        Format::Csv,
        Format::Html,
        Format::Pdf,
    ];

    /// Canonical name (`text`, `json`, `xml`, `grep`, `csv`, `html`, `pdf`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Xml => "xml",
            Format::Grep => "grep",
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }

    /// Usual file extension, nmap's for nmap's formats (`nmap`, `jsonl`, `xml`, `gnmap`, ...).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Text => "nmap",
            Format::Json => "jsonl",
            Format::Xml => "xml",
            Format::Grep => "gnmap",
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = ExportError;
    /// Canonical names plus `normal`/`nmap`/`txt`, `jsonl`/`ndjson`, `gnmap`/`greppable`; case-insensitive.
    fn from_str(s: &str) -> Result<Format, ExportError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "text" | "txt" | "normal" | "nmap" => Format::Text,
            "json" | "jsonl" | "ndjson" => Format::Json,
            "xml" => Format::Xml,
            "grep" | "gnmap" | "greppable" => Format::Grep,
            "csv" => Format::Csv,
            "html" | "htm" => Format::Html,
            "pdf" => Format::Pdf,
            _ => return Err(ExportError::UnknownFormat(s.to_string())),
        })
    }
}

/// What can go wrong in an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The format name is not one of ours.
    #[error("unknown export format {0:?}: use text, json, xml, grep, csv, html or pdf")]
    UnknownFormat(String),
    /// The output path cannot be used.
    #[error("cannot write the export to {path}: {why}")]
    BadOutput {
        /// Path as given.
        path: String,
        /// Why, and what to do.
        why: String,
    },
    /// Writing or renaming the output failed.
    #[error("cannot write the export to {path}: {source}")]
    Io {
        /// Path as given (`-` for stdout).
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Reading the scan log failed (described by the caller).
    #[error("cannot read the scan log: {0}")]
    Log(String),
    /// Reading the scan log failed (the store's error).
    #[error("cannot read the scan log: {0}")]
    Store(#[source] prtip_store::StoreError),
    /// The rows were not sorted by (address, protocol, port).
    #[error("result rows out of order: {later} came after {earlier} (rows must be sorted by address, protocol, port)")]
    Unsorted {
        /// The earlier row's key.
        earlier: String,
        /// The later row's key.
        later: String,
    },
    /// The HTML template failed (a bug in templates/scan_report.html).
    #[error("HTML template error: {0:#}")]
    Template(#[from] minijinja::Error),
    /// Ctrl-C (or the cancel flag) stopped the export.
    #[error("export interrupted; no partial file was left behind")]
    Interrupted,
}

impl From<io::Error> for ExportError {
    fn from(source: io::Error) -> Self {
        ExportError::Io {
            path: String::new(),
            source,
        }
    }
}

/// Optional knobs of an export run.
#[derive(Default)]
pub struct ExportOptions<'a> {
    /// Keep only rows for which this returns true (e.g. a prtip-filter expression).
    pub filter: Option<&'a dyn Fn(&ResultRow) -> bool>,
    /// Called with the number of rows read so far, every 16 384 rows and at the end.
    pub progress: Option<&'a mut dyn FnMut(u64)>,
    /// Checked between rows; when true the export stops with [`ExportError::Interrupted`]
    /// and removes its temporary files. Pass [`interrupt::flag()`] for Ctrl-C.
    pub cancel: Option<&'a AtomicBool>,
    /// Silent ports as rows: `None` (default) as the store decides (a scan that
    /// covers at most [`prtip_store::SILENT_ROWS_MAX`] ports lists them),
    /// `Some(true)` always (on request: every silent port of a wide scan),
    /// `Some(false)` never (only counted, as `<extraports>`).
    pub silent_rows: Option<bool>,
}

/// What one export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportStats {
    /// Format.
    pub format: Format,
    /// Path as given (`-` for stdout).
    pub path: String,
    /// Result rows exported (after the filter).
    pub rows: u64,
    /// Hosts exported.
    pub hosts: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl ExportStats {
    /// The `ExportComplete` event for the scan log. Only the log's writer (the scan
    /// command) may append it; `prtip export` on a finished log does not.
    pub fn event(&self) -> Event {
        Event::ExportComplete(ExportComplete {
            time_us: now_us(),
            format: self.format.name().into(),
            path: self.path.clone(),
            rows: self.rows,
        })
    }
}

/// One requested export: a format and a path (`-` = stdout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Format.
    pub format: Format,
    /// Path as given; `-` is stdout.
    pub path: String,
}

impl Target {
    /// A target from a format and a path.
    pub fn new(format: Format, path: impl Into<String>) -> Target {
        Target {
            format,
            path: path.into(),
        }
    }

    /// From the scan spec's `OutputSpec` (format name as stored).
    pub fn from_spec(spec: &prtip_store::event::OutputSpec) -> Result<Target, ExportError> {
        Ok(Target::new(spec.format.parse()?, spec.path.clone()))
    }

    /// nmap's `-oA BASE`: `BASE.nmap`, `BASE.xml` and `BASE.gnmap`.
    pub fn all_nmap(base: &str) -> [Target; 3] {
        [
            Target::new(Format::Text, format!("{base}.nmap")),
            Target::new(Format::Xml, format!("{base}.xml")),
            Target::new(Format::Grep, format!("{base}.gnmap")),
        ]
    }
}

/// Render `rows` in one format into any writer (no temporary file, no rename).
pub fn render<I>(
    format: Format,
    meta: &ReportMeta,
    rows: I,
    out: &mut dyn Write,
    opts: &mut ExportOptions<'_>,
) -> Result<ExportStats, ExportError>
where
    I: Iterator<Item = Result<ResultRow, ExportError>>,
{
    let mut r = [render::renderer(format, &std::env::temp_dir())];
    let totals = drive(meta, rows, &mut r, &mut [out], opts, None)?;
    Ok(ExportStats {
        format,
        path: String::new(),
        rows: totals.rows,
        hosts: totals.hosts,
        bytes: 0,
    })
}

/// Render `rows` once into every target (files atomically, `-` to stdout).
/// Either every file appears, or (on error or interrupt) none does.
pub fn export_rows<I>(
    meta: &ReportMeta,
    rows: I,
    targets: &[Target],
    opts: &mut ExportOptions<'_>,
) -> Result<Vec<ExportStats>, ExportError>
where
    I: Iterator<Item = Result<ResultRow, ExportError>>,
{
    export_rows_counting(meta, rows, targets, opts, None)
}

/// [`export_rows`], with the silent ports `silence` projects counted for each
/// host that has rows (see [`drive`]).
pub(crate) fn export_rows_counting<I>(
    meta: &ReportMeta,
    rows: I,
    targets: &[Target],
    opts: &mut ExportOptions<'_>,
    silence: Option<&prtip_store::Silence>,
) -> Result<Vec<ExportStats>, ExportError>
where
    I: Iterator<Item = Result<ResultRow, ExportError>>,
{
    let mut outputs = Vec::with_capacity(targets.len());
    for t in targets {
        outputs.push(Output::create(&t.path)?);
    }
    let mut renderers: Vec<Box<dyn Render>> = targets
        .iter()
        .zip(&outputs)
        .map(|(t, o)| render::renderer(t.format, &o.scratch_dir()))
        .collect();
    let totals = {
        let mut outs: Vec<&mut dyn Write> =
            outputs.iter_mut().map(|o| o as &mut dyn Write).collect();
        drive(meta, rows, &mut renderers, &mut outs, opts, silence)
            .map_err(|e| with_path(e, &targets[0].path))?
    };
    let mut stats = Vec::with_capacity(targets.len());
    for (t, o) in targets.iter().zip(outputs) {
        let bytes = o.commit()?;
        stats.push(ExportStats {
            format: t.format,
            path: t.path.clone(),
            rows: totals.rows,
            hosts: totals.hosts,
            bytes,
        });
    }
    Ok(stats)
}

fn with_path(e: ExportError, path: &str) -> ExportError {
    match e {
        ExportError::Io { path: p, source } if p.is_empty() => ExportError::Io {
            path: path.into(),
            source,
        },
        e => e,
    }
}

const PROGRESS_EVERY: u64 = 16_384;

/// The export loop: filter, check order, group into hosts, feed every renderer.
/// `silence`: the rows' log's silence when its silent ports are not rows: each
/// host that has rows gets its silent ports counted ([`Host::extra`]), so
/// `Not shown: N filtered ports` and `<extraports>` stay exact.
fn drive<I>(
    meta: &ReportMeta,
    rows: I,
    renderers: &mut [Box<dyn Render>],
    outs: &mut [&mut dyn Write],
    opts: &mut ExportOptions<'_>,
    silence: Option<&prtip_store::Silence>,
) -> Result<Totals, ExportError>
where
    I: Iterator<Item = Result<ResultRow, ExportError>>,
{
    for (r, w) in renderers.iter_mut().zip(outs.iter_mut()) {
        r.begin(meta, *w)?;
    }
    let mut totals = Totals::default();
    let mut host = Host::default();
    let mut read: u64 = 0;
    let mut last_key = None;
    for row in rows {
        let row = row?;
        read += 1;
        if read.is_multiple_of(PROGRESS_EVERY) {
            if let Some(c) = opts.cancel {
                if c.load(Ordering::Relaxed) {
                    return Err(ExportError::Interrupted);
                }
            }
            if let Some(p) = opts.progress.as_mut() {
                p(read);
            }
        }
        let key = row.key();
        if let Some(prev) = last_key {
            if key <= prev {
                return Err(ExportError::Unsorted {
                    earlier: key_str(prev),
                    later: key_str(key),
                });
            }
        }
        last_key = Some(key);
        if let Some(f) = opts.filter {
            if !f(&row) {
                continue;
            }
        }
        if !host.rows.is_empty() && host.addr() != row.addr {
            emit(&mut host, silence, renderers, outs, &mut totals)?;
            host.clear();
        }
        host.push(row);
    }
    if !host.rows.is_empty() {
        emit(&mut host, silence, renderers, outs, &mut totals)?;
    }
    if let Some(c) = opts.cancel {
        if c.load(Ordering::Relaxed) {
            return Err(ExportError::Interrupted);
        }
    }
    if let Some(p) = opts.progress.as_mut() {
        p(read);
    }
    for (r, w) in renderers.iter_mut().zip(outs.iter_mut()) {
        r.finish(meta, &totals, *w)?;
        w.flush()?;
    }
    Ok(totals)
}

fn key_str(k: (prtip_store::Addr, prtip_store::Protocol, u16)) -> String {
    format!("{} {}/{}", k.0, k.2, k.1.as_str())
}

fn emit(
    host: &mut Host,
    silence: Option<&prtip_store::Silence>,
    renderers: &mut [Box<dyn Render>],
    outs: &mut [&mut dyn Write],
    totals: &mut Totals,
) -> Result<(), ExportError> {
    if let Some(s) = silence {
        let extra = s.host_rows(host.addr(), &host.rows);
        host.add_extra(extra);
    }
    let host = &*host;
    totals.hosts += 1;
    totals.rows += host.rows.len() as u64;
    if host.is_up() {
        totals.hosts_up += 1;
    }
    for (r, w) in renderers.iter_mut().zip(outs.iter_mut()) {
        r.host(host, *w)?;
    }
    Ok(())
}
