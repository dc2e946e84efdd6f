//! A scan's outputs while it runs: rows written as replies arrive, then the
//! export of the finished log in their place.
//!
//! [`LiveOutputs`] sees the scan's events as the session pushes them. The line
//! formats stream: `-oJ` and `--csv` get the export's line for each row as its
//! reply arrives (and the row again when `-sV` gets its banner, and again when
//! it names its service: the last line of a port is its export line),
//! `-oG` the row as a host line of its own, `-oN` nmap's `Discovered open port`
//! lines. XML, HTML and PDF are documents with a head and a tail that only the
//! end knows (host groups, counts, run statistics): they are written at the end
//! only, as before.
//!
//! At the end ([`LiveOutputs::finish`]) every output file is rendered again by
//! [`crate::export_log_to`] from the finished log and renamed over the streamed
//! file in one step. Why replace rather than make the stream the result: the
//! export is sorted by (address, protocol, port), groups rows into hosts, folds
//! large states into nmap's "Not shown" and ends with figures, none of which is
//! known while replies arrive in the walk's random order; and one renderer path
//! for the final file means each output file equals what `prtip export` writes
//! for the scan, byte for byte (a paused scan's included), with no second
//! renderer to keep in step. A rename is atomic: a reader sees the live stream
//! or the export, never a mixture. The streamed rows are the export's own
//! renderers' rows (`Render::live_row`), never a format of their own.
//!
//! Standard output (`-oJ -`) cannot be replaced: there a line format is the
//! stream itself (rows in arrival order, a service as a later line for the same
//! port: keep the last line per ip, port and protocol), closed by the format's
//! trailer (a paused scan's status line); XML, HTML and PDF to `-` are written
//! whole at the end, as `prtip export` writes them.
//!
//! An abort (a second Ctrl-C) or a failed scan leaves a streamed file as the
//! stream left it (rows, no trailer); the resume's end replaces it.
//!
//! Only what arrives is streamed: ports the engine decides without an event
//! (silence, when the log folds it) appear in the final export only. A failed
//! write (a full disk, a closed pipe) ends that output's stream with a warning
//! and never stops the scan; the final export is tried all the same.
//!
//! This module never reads rows from the log; it never writes to it.

use crate::render::{self, Render, Totals};
use crate::{export_log_to, ExportError, ExportOptions, ExportStats, Format, ReportMeta, Target};
use prtip_store::event::{Event, OutputSpec, ScanStarted};
use prtip_store::{Addr, LogReader, PortState, Protocol, ResultRow, ServiceInfo};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Rows reach a streamed file at least this often (and at every `Sample`).
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Whether `format` is written row by row while the scan runs.
pub fn streams(format: Format) -> bool {
    matches!(
        format,
        Format::Json | Format::Csv | Format::Grep | Format::Text
    )
}

type Key = (Addr, Protocol, u16);

/// Which rows an output keeps (a compiled `--filter` / `--open`).
pub type RowFilter = Box<dyn Fn(&ResultRow) -> bool + Send>;

/// One streamed output.
struct Live {
    target: Target,
    render: Box<dyn Render>,
    out: Option<Box<dyn Write + Send>>,
    bytes: u64,
}

/// Counts bytes on their way to the destination.
struct Counted<'a> {
    inner: &'a mut dyn Write,
    bytes: &'a mut u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        *self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The outputs of one scan while it runs (see the module docs).
pub struct LiveOutputs {
    dir: PathBuf,
    targets: Vec<Target>,
    live: Vec<Live>,
    filter: Option<RowFilter>,
    hostnames: HashMap<Addr, String>,
    /// `-sV`: open TCP rows, kept to be written again with their service.
    open: Option<HashMap<Key, ResultRow>>,
    opened: bool,
    last_flush: Instant,
    totals: Totals,
    /// Addresses that answered (counted for a stream to stdout's trailer only).
    up: Option<std::collections::HashSet<Addr>>,
    warnings: Vec<String>,
}

impl LiveOutputs {
    /// The outputs `outputs` names (a scan's `-o*` files) for the log in `dir`,
    /// keeping rows `filter` accepts; `service_detection` keeps open rows to
    /// write them again when `-sV` names their service. Nothing is opened
    /// before the scan's first event ([`LiveOutputs::event`]).
    pub fn new(
        dir: &Path,
        outputs: &[OutputSpec],
        filter: Option<RowFilter>,
        service_detection: bool,
    ) -> Result<LiveOutputs, ExportError> {
        let targets = crate::targets_of(outputs)?;
        Ok(LiveOutputs {
            dir: dir.to_path_buf(),
            targets,
            live: Vec::new(),
            filter,
            hostnames: HashMap::new(),
            open: service_detection.then(HashMap::new),
            opened: false,
            last_flush: Instant::now(),
            totals: Totals::default(),
            up: None,
            warnings: Vec::new(),
        })
    }

    /// What went wrong with a stream so far (each output's first failure).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Open the streamed outputs: a fresh scan creates them (header first);
    /// a resumed one appends to what its pause left (or creates them when gone).
    fn open(&mut self, started: &ScanStarted, resumed: bool) {
        self.opened = true;
        for h in &started.spec.resolved {
            self.hostnames
                .entry(h.addr)
                .or_insert_with(|| h.name.clone());
        }
        let meta = ReportMeta::from_started(started);
        for t in self.targets.clone() {
            if !streams(t.format) {
                continue;
            }
            if t.path == "-" {
                self.up = Some(Default::default());
            }
            let (out, fresh): (io::Result<Box<dyn Write + Send>>, bool) = if t.path == "-" {
                (Ok(Box::new(io::stdout())), true)
            } else {
                let path = Path::new(&t.path);
                let append = resumed && path.is_file();
                let f = if append {
                    OpenOptions::new().append(true).open(path)
                } else {
                    File::create(path)
                };
                (
                    f.map(|f| {
                        Box::new(BufWriter::with_capacity(64 * 1024, f)) as Box<dyn Write + Send>
                    }),
                    !append,
                )
            };
            let mut live = Live {
                render: render::renderer(t.format, &std::env::temp_dir()),
                target: t,
                out: None,
                bytes: 0,
            };
            match out {
                Ok(mut w) => {
                    let begun = if fresh {
                        let mut c = Counted {
                            inner: &mut w,
                            bytes: &mut live.bytes,
                        };
                        live.render.begin(&meta, &mut c).and_then(|_| {
                            live.render.flush_rows(&mut c)?;
                            c.flush()?;
                            Ok(())
                        })
                    } else {
                        Ok(())
                    };
                    match begun {
                        Ok(()) => live.out = Some(w),
                        Err(e) => self.warn(&live.target, &e),
                    }
                }
                Err(e) => self.warn(&live.target, &ExportError::from(e)),
            }
            self.live.push(live);
        }
    }

    fn warn(&mut self, t: &Target, e: &dyn std::fmt::Display) {
        self.warnings.push(format!(
            "writing {} rows to {} as they come stopped ({e}); the file is written from the log at the end",
            t.format, t.path
        ));
    }

    /// See one event of the scan, in log order.
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::ScanStarted(s) if !self.opened => self.open(s, false),
            Event::Resumed(_) if !self.opened => {
                match LogReader::open(&self.dir).and_then(|r| r.scan_started()) {
                    Ok(s) => self.open(&s, true),
                    Err(e) => {
                        self.opened = true;
                        let t = Target::new(Format::Json, self.dir.display().to_string());
                        self.warn(&t, &e);
                    }
                }
            }
            Event::Reply(r) => {
                let row = ResultRow {
                    addr: r.addr,
                    hostname: self.hostnames.get(&r.addr).cloned(),
                    port: r.port,
                    proto: r.proto,
                    state: r.state,
                    reason: r.reason,
                    ttl: r.ttl,
                    rtt_us: r.rtt_us,
                    time_us: r.time_us,
                    service: None,
                    banner: None,
                };
                if let Some(open) = &mut self.open {
                    if row.state == PortState::Open && row.proto == Protocol::Tcp {
                        open.insert((row.addr, row.proto, row.port), row.clone());
                    }
                }
                self.row(&row, false);
            }
            Event::Banner(b) => {
                // The first banner is the row's: written again with it (a port
                // whose detection names no service still shows its banner).
                let row = self
                    .open
                    .as_mut()
                    .and_then(|o| o.get_mut(&(b.addr, b.proto, b.port)))
                    .filter(|row| row.banner.is_none())
                    .map(|row| {
                        row.banner = Some(b.bytes.clone());
                        row.clone()
                    });
                if let Some(row) = row {
                    self.row(&row, true);
                }
            }
            Event::Service(s) => {
                let row = self
                    .open
                    .as_mut()
                    .and_then(|o| o.remove(&(s.addr, s.proto, s.port)));
                if let Some(mut row) = row {
                    row.service = Some(ServiceInfo {
                        name: s.name.clone(),
                        product: s.product.clone(),
                        version: s.version.clone(),
                        extra: s.extra.clone(),
                        confidence: s.confidence,
                        method: s.method.clone(),
                    });
                    self.row(&row, true);
                }
            }
            // A sample comes every second, a pause or hold is a moment a
            // reader may look: the rows so far reach the files.
            Event::Sample(_) | Event::Paused(_) => self.flush(),
            _ => {}
        }
    }

    fn row(&mut self, row: &ResultRow, update: bool) {
        if self.live.is_empty() || self.filter.as_ref().is_some_and(|f| !f(row)) {
            return;
        }
        if !update {
            self.totals.rows += 1;
            if let Some(up) = &mut self.up {
                if up.insert(row.addr) {
                    self.totals.hosts += 1;
                    // A host discovery result says itself whether the host is up.
                    let down = row.proto == prtip_store::Protocol::Host
                        && row.state != prtip_store::PortState::Open;
                    if !down {
                        self.totals.hosts_up += 1;
                    }
                }
            }
        }
        let mut failed = Vec::new();
        for (i, l) in self.live.iter_mut().enumerate() {
            let Some(w) = l.out.as_mut() else { continue };
            let mut c = Counted {
                inner: w,
                bytes: &mut l.bytes,
            };
            if let Err(e) = l.render.live_row(row, update, &mut c) {
                failed.push((i, e));
            }
        }
        self.fail(failed);
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn fail(&mut self, failed: Vec<(usize, ExportError)>) {
        for (i, e) in failed {
            self.live[i].out = None;
            let t = self.live[i].target.clone();
            // A closed pipe on stdout (`| head`) is the reader's choice, not an error.
            let broken_pipe = matches!(&e, ExportError::Io { source, .. }
                if source.kind() == io::ErrorKind::BrokenPipe);
            if !(t.path == "-" && broken_pipe) {
                self.warn(&t, &e);
            }
        }
    }

    /// Push what the streams hold to their destinations.
    pub fn flush(&mut self) {
        self.last_flush = Instant::now();
        let mut failed = Vec::new();
        for (i, l) in self.live.iter_mut().enumerate() {
            if let Some(w) = l.out.as_mut() {
                if let Err(e) = w.flush() {
                    failed.push((i, ExportError::from(e)));
                }
            }
        }
        self.fail(failed);
    }

    /// The scan is over (finished or paused) and its log flushed: every output
    /// file is rendered from the log and renamed over its stream; a line format
    /// streamed to stdout gets its trailer; XML, HTML or PDF to `-` is written
    /// whole. Returns one [`ExportStats`] per output, in the order given.
    pub fn finish(mut self, opts: &mut ExportOptions<'_>) -> Result<Vec<ExportStats>, ExportError> {
        self.flush();
        let mut stdout_stream = None;
        for l in self.live.drain(..) {
            if l.target.path == "-" {
                stdout_stream = Some(l);
            }
            // Files: dropped (closed) here, replaced below.
        }
        let rendered: Vec<Target> = self
            .targets
            .iter()
            .filter(|t| !(t.path == "-" && streams(t.format) && stdout_stream.is_some()))
            .cloned()
            .collect();
        let mut stats = if rendered.is_empty() {
            Vec::new()
        } else {
            export_log_to(&self.dir, &rendered, opts)?
        };
        if let Some(mut l) = stdout_stream {
            let reader = LogReader::open(&self.dir).map_err(ExportError::Store)?;
            let started = reader.scan_started().map_err(ExportError::Store)?;
            let summary = prtip_store::summarize_lenient(&reader).map_err(ExportError::Store)?;
            let meta = ReportMeta::from_summary(
                &summary,
                &started.versions.prtip,
                started.versions.schema,
            );
            if let Some(w) = l.out.as_mut() {
                let mut c = Counted {
                    inner: w,
                    bytes: &mut l.bytes,
                };
                let done = l
                    .render
                    .finish(&meta, &self.totals, &mut c)
                    .and_then(|_| c.flush().map_err(ExportError::from));
                match done {
                    Err(ExportError::Io { source, .. })
                        if source.kind() == io::ErrorKind::BrokenPipe => {}
                    r => r?,
                }
            }
            let at = self
                .targets
                .iter()
                .position(|t| t.path == "-")
                .unwrap_or(stats.len())
                .min(stats.len());
            stats.insert(
                at,
                ExportStats {
                    format: l.target.format,
                    path: "-".into(),
                    rows: self.totals.rows,
                    hosts: self.totals.hosts,
                    bytes: l.bytes,
                },
            );
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{export_log, synthetic};
    use std::collections::BTreeMap;

    /// Events of a log in arrival order (not the export's) go through
    /// [`LiveOutputs`]: while the scan runs the last JSON line of each port is
    /// the export's line for that row, and CSV has a line per reply; at the end
    /// each file is the export, byte for byte.
    #[test]
    fn streamed_lines_are_the_exports_lines_and_the_end_is_the_export() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        let mut rows: Vec<ResultRow> = synthetic::lab_rows(30).collect();
        rows.reverse();
        synthetic::write_log(&log, 7, &synthetic::lab_spec(), rows.into_iter(), true).unwrap();
        let path = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
        let outputs = [
            OutputSpec {
                format: "json".into(),
                path: path("o.json"),
            },
            OutputSpec {
                format: "csv".into(),
                path: path("o.csv"),
            },
        ];
        let mut live = LiveOutputs::new(&log, &outputs, None, true).unwrap();
        for e in LogReader::open(&log).unwrap().iter() {
            live.event(&e.unwrap().to_event());
        }
        live.flush();
        let read = |p: &str| std::fs::read_to_string(p).unwrap();
        let mut last = BTreeMap::new();
        for l in read(&path("o.json")).lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            last.insert((v["ip"].to_string(), v["port"].as_u64()), l.to_string());
        }
        export_log(&log, Format::Json, &path("e.json"), &mut Default::default()).unwrap();
        export_log(&log, Format::Csv, &path("e.csv"), &mut Default::default()).unwrap();
        let mut want: Vec<String> = read(&path("e.json")).lines().map(String::from).collect();
        let mut got: Vec<String> = last.into_values().collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        let csv = read(&path("o.csv"));
        assert!(csv.starts_with("IP,Port,Protocol,State,Service,Version,Banner\r\n"));
        // 30 replies; the 21 open ports again with their service, 18 of them
        // (not 443) before that with their banner.
        assert_eq!(csv.lines().count(), 1 + 30 + 21 + 18, "{csv}");
        let stats = live.finish(&mut ExportOptions::default()).unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!(read(&path("o.json")), read(&path("e.json")));
        assert_eq!(read(&path("o.csv")), read(&path("e.csv")));
    }
}
