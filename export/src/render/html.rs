//! The HTML report: templates/scan_report.html rendered with minijinja, streamed.
//!
//! The Summary and Statistics sections come before the host list but depend on all
//! rows, so hosts are rendered (by the template's `hosts` macro, a chunk at a time)
//! into an anonymous spill file while the statistics accumulate; `finish` writes
//! `head` (summary, statistics), copies the spill, then writes `tail` (service
//! breakdown). Memory stays bounded by one chunk plus the statistics maps.

use super::{service_name, version_string, Render, Totals};
use crate::escape::{clean_text, display_banner_lines, excerpt};
use crate::stats::{Bar, Stats};
use crate::{ExportError, Host, ReportMeta};
use minijinja::{Environment, Value};
use prtip_store::PortState;
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

/// The template, embedded at compile time; the file in templates/ is the source.
pub const TEMPLATE: &str = include_str!("../../../templates/scan_report.html");
const NAME: &str = "scan_report.html";
/// Longest banner excerpt shown (escaped characters); CSV and JSON keep it all.
const BANNER_CHARS: usize = 320;
/// Rows per `hosts` macro call.
const CHUNK_ROWS: usize = 2048;

pub(crate) struct HtmlRender {
    env: Environment<'static>,
    scratch: PathBuf,
    spill: Option<BufWriter<File>>,
    chunk: Vec<HostView>,
    chunk_rows: usize,
    stats: Stats,
}

#[derive(Serialize)]
struct HostView {
    ip: String,
    hostname: Option<String>,
    status: String,
    rowspan: usize,
    ports: Vec<PortView>,
    hidden: String,
}

#[derive(Serialize)]
struct PortView {
    port: u16,
    proto: &'static str,
    state: &'static str,
    class: &'static str,
    service: String,
    version: String,
    banner: String,
}

#[derive(Serialize)]
struct StatsView {
    open: u64,
    hosts_with_open: u64,
    states: Vec<ClassBar>,
    protos: Vec<Bar>,
    top_ports: Vec<Bar>,
}

#[derive(Serialize)]
struct ClassBar {
    #[serde(flatten)]
    bar: Bar,
    class: &'static str,
}

#[derive(Serialize)]
struct TotalsView {
    hosts: u64,
    hosts_up: u64,
    rows: u64,
}

fn state_class(s: PortState) -> &'static str {
    match s {
        PortState::Open => "open",
        PortState::Closed => "closed",
        PortState::Filtered => "filtered",
        PortState::OpenFiltered => "open-filtered",
        PortState::Unfiltered => "unfiltered",
    }
}

impl HtmlRender {
    pub fn new(scratch: &Path) -> Self {
        let mut env = Environment::new();
        env.add_template(NAME, TEMPLATE)
            .expect("templates/scan_report.html parses (checked by a unit test)");
        HtmlRender {
            env,
            scratch: scratch.to_path_buf(),
            spill: None,
            chunk: Vec::new(),
            chunk_rows: 0,
            stats: Stats::default(),
        }
    }

    fn call(&self, name: &str, args: &[Value]) -> Result<String, ExportError> {
        let tmpl = self.env.get_template(NAME)?;
        let captured = tmpl.render_captured(())?;
        Ok(captured.state().call_macro(name, args)?)
    }

    fn flush_chunk(&mut self) -> Result<(), ExportError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let html = self.call("hosts", &[Value::from_serialize(&self.chunk)])?;
        self.chunk.clear();
        self.chunk_rows = 0;
        let spill = match &mut self.spill {
            Some(s) => s,
            None => {
                let f = tempfile::tempfile_in(&self.scratch).map_err(|e| ExportError::Io {
                    path: self.scratch.display().to_string(),
                    source: io::Error::new(
                        e.kind(),
                        format!("cannot create the HTML spill file: {e}"),
                    ),
                })?;
                self.spill.insert(BufWriter::with_capacity(256 * 1024, f))
            }
        };
        spill.write_all(html.as_bytes())?;
        Ok(())
    }
}

impl Render for HtmlRender {
    fn begin(&mut self, _meta: &ReportMeta, _out: &mut dyn Write) -> Result<(), ExportError> {
        Ok(())
    }

    fn host(&mut self, host: &Host, _out: &mut dyn Write) -> Result<(), ExportError> {
        self.stats.add_host(host);
        let ports: Vec<PortView> = host
            .shown()
            .map(|r| PortView {
                port: r.port,
                proto: r.proto.as_str(),
                state: r.state.as_str(),
                class: state_class(r.state),
                service: service_name(r),
                version: r.service.as_ref().map(version_string).unwrap_or_default(),
                banner: r
                    .banner
                    .as_deref()
                    .map(|b| excerpt(display_banner_lines(b), b.len(), BANNER_CHARS))
                    .unwrap_or_default(),
            })
            .collect();
        let hidden: Vec<String> = host
            .hidden()
            .iter()
            .map(|h| {
                format!(
                    "{} {} {} ports",
                    h.count,
                    h.state.as_str(),
                    h.proto.as_str()
                )
            })
            .collect();
        let status = if host.is_up() {
            match host.min_rtt_us() {
                Some(rtt) => format!("up, {:.2} ms", rtt as f64 / 1000.0),
                None => "up".into(),
            }
        } else if host.is_unreachable() {
            "down (host-unreach)".into()
        } else {
            "no reply".into()
        };
        self.chunk_rows += ports.len() + 1;
        self.chunk.push(HostView {
            ip: host.addr().to_string(),
            hostname: host.hostname().map(|n| clean_text(n).into_owned()),
            status,
            rowspan: ports.len() + usize::from(!hidden.is_empty()),
            ports,
            hidden: hidden.join(", "),
        });
        if self.chunk_rows >= CHUNK_ROWS {
            self.flush_chunk()?;
        }
        Ok(())
    }

    fn finish(
        &mut self,
        meta: &ReportMeta,
        totals: &Totals,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        self.flush_chunk()?;
        let stats = StatsView {
            open: self.stats.open(),
            hosts_with_open: self.stats.hosts_with_open,
            states: self
                .stats
                .state_bars()
                .into_iter()
                .zip([
                    PortState::Open,
                    PortState::Closed,
                    PortState::Filtered,
                    PortState::OpenFiltered,
                    PortState::Unfiltered,
                ])
                .map(|(bar, s)| ClassBar {
                    bar,
                    class: state_class(s),
                })
                .collect(),
            protos: self.stats.proto_bars(),
            top_ports: self.stats.top_ports(10),
        };
        let totals = TotalsView {
            hosts: totals.hosts,
            hosts_up: totals.hosts_up,
            rows: totals.rows,
        };
        let meta_v = Value::from_serialize(meta.view());
        let head = self.call(
            "head",
            &[
                meta_v.clone(),
                Value::from_serialize(&stats),
                Value::from_serialize(&totals),
            ],
        )?;
        out.write_all(head.as_bytes())?;
        if let Some(spill) = self.spill.take() {
            let mut f = spill.into_inner().map_err(|e| e.into_error())?;
            f.rewind()?;
            io::copy(&mut f, out)?;
        }
        let tail = self.call(
            "tail",
            &[meta_v, Value::from_serialize(self.stats.services())],
        )?;
        out.write_all(tail.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::render::testutil::run_str;
    use crate::synthetic::{lab_rows, row};
    use crate::Format;
    use prtip_store::PortState;

    #[test]
    fn sections_and_escaping() {
        let rows = vec![
            row(
                [198, 19, 0, 2],
                22,
                PortState::Open,
                Some(("ssh", "OpenSSH", "9.2p1")),
                Some(b"SSH-2.0-OpenSSH_9.2p1\r\n"),
            ),
            row(
                [198, 19, 0, 2],
                80,
                PortState::Open,
                Some(("http", "<b>bold</b>", "")),
                Some(b"<script>alert(1)</script>"),
            ),
        ];
        let out = run_str(Format::Html, rows);
        for s in [
            "<h2>Summary</h2>",
            "<h2>Statistics</h2>",
            "<h2>Discovered Hosts</h2>",
            "<h2>Service Breakdown</h2>",
        ] {
            assert!(out.contains(s), "missing {s}");
        }
        assert!(!out.contains("<script>"));
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{out}"
        );
        assert!(out.contains("&lt;b&gt;bold&lt;&#x2f;b&gt;"));
        assert!(out.trim_end().ends_with("</html>"));
        assert!(!out.contains("http://") && !out.contains("https://"));
    }

    #[test]
    fn many_hosts_stream_through_the_spill_file_in_order() {
        let out = run_str(Format::Html, lab_rows(10_000).collect());
        assert_eq!(out.matches("<tbody class=\"host\">").count(), 1000);
        let first = out.find(">198.19.0.1<").unwrap();
        let last = out.find(">198.19.3.232<").unwrap();
        let services = out.find("<h2>Service Breakdown</h2>").unwrap();
        assert!(out.find("<h2>Statistics</h2>").unwrap() < first);
        assert!(first < last && last < services);
        assert_eq!(out.matches("<!DOCTYPE html>").count(), 1);
    }
}
