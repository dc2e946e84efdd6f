//! The renderers: one module per format, each a [`Render`] fed host by host.
//!
//! A renderer writes its header in `begin`, one host at a time in `host`, and its
//! trailer in `finish`; it keeps only bounded state between calls. Renderers never
//! open the destination file (the caller owns it, see `output`), never read the log.

mod csv;
mod grep;
mod html;
mod json;
mod pdf;
mod text;
mod xml;

use crate::escape::clean_text;
use crate::{ExportError, Format, Host, ReportMeta};
use prtip_store::{Protocol, ResultRow, ServiceInfo};
use std::io::Write;
use std::path::Path;

/// Counts the driver keeps over all hosts (for trailers).
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct Totals {
    /// Hosts exported.
    pub hosts: u64,
    /// Hosts that answered.
    pub hosts_up: u64,
    /// Rows exported.
    pub rows: u64,
}

/// A streaming renderer.
pub(crate) trait Render: Send {
    /// Write the header.
    fn begin(&mut self, meta: &ReportMeta, out: &mut dyn Write) -> Result<(), ExportError>;
    /// Write one host (its rows are sorted by protocol, port).
    fn host(&mut self, host: &Host, out: &mut dyn Write) -> Result<(), ExportError>;
    /// Write the trailer.
    fn finish(
        &mut self,
        meta: &ReportMeta,
        totals: &Totals,
        out: &mut dyn Write,
    ) -> Result<(), ExportError>;
    /// Write out whatever `host` kept back in a buffer.
    fn flush_rows(&mut self, _out: &mut dyn Write) -> Result<(), ExportError> {
        Ok(())
    }
    /// One row as the scan finds it ([`crate::live`]), written at once: by
    /// default the row as a host of its own (JSON and CSV: the export's line
    /// for that row). `update` is a second look at a row already written (the
    /// service `-sV` found).
    fn live_row(
        &mut self,
        row: &ResultRow,
        _update: bool,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        self.host(&Host::from_rows(vec![row.clone()]), out)?;
        self.flush_rows(out)
    }
}

/// A fresh renderer for `format`; `scratch` is where it may keep temporary files.
pub(crate) fn renderer(format: Format, scratch: &Path) -> Box<dyn Render> {
    match format {
        Format::Text => Box::new(text::TextRender::default()),
        Format::Json => Box::new(json::JsonRender::default()),
        Format::Xml => Box::new(xml::XmlRender::default()),
        Format::Grep => Box::new(grep::GrepRender::default()),
        Format::Csv => Box::new(csv::CsvRender::new()),
        Format::Html => Box::new(html::HtmlRender::new(scratch)),
        Format::Pdf => Box::new(pdf::PdfRender::default()),
    }
}

/// nmap's VERSION column: `product version (extra)`, control characters escaped.
pub(crate) fn version_string(s: &ServiceInfo) -> String {
    let mut v = String::new();
    for part in [&s.product, &s.version] {
        if !part.is_empty() {
            if !v.is_empty() {
                v.push(' ');
            }
            v.push_str(part);
        }
    }
    if !s.extra.is_empty() {
        if !v.is_empty() {
            v.push(' ');
        }
        v.push('(');
        v.push_str(&s.extra);
        v.push(')');
    }
    clean_text(&v).into_owned()
}

/// The service conventionally found on `port` (prtip's one port table,
/// [`prtip_services::port_table`]: `22/tcp` → `ssh`, `7/udp` → `echo`), what nmap
/// prints from its services file when nothing was detected. Presentation only:
/// never written to a log as a `Service` event.
pub fn table_service(port: u16, proto: Protocol) -> Option<&'static str> {
    prtip_services::port_table::service_name(port, proto)
}

/// The service name to print for a row: the detected one, else the port
/// table's (nmap's SERVICE column without -sV), else `unknown`; control
/// characters escaped.
pub(crate) fn service_name(r: &ResultRow) -> String {
    match &r.service {
        Some(s) if !s.name.is_empty() => clean_text(&s.name).into_owned(),
        _ => table_service(r.port, r.proto).unwrap_or("unknown").into(),
    }
}

/// A row's state as the reports print it: the port state, or `up` / `down` for a
/// host discovery result ([`Protocol::Host`]).
pub(crate) fn state_str(r: &ResultRow) -> &'static str {
    match (r.proto, r.state) {
        (Protocol::Host, prtip_store::PortState::Open) => "up",
        (Protocol::Host, _) => "down",
        _ => r.state.as_str(),
    }
}

/// nmap's `received REASON[ ttl N]` of a host discovery result (`--reason`).
pub(crate) fn received(r: &ResultRow) -> String {
    if r.ttl > 0 {
        format!("received {} ttl {}", r.reason.as_str(), r.ttl)
    } else {
        format!("received {}", r.reason.as_str())
    }
}

/// `"N IP address"` / `"N IP addresses"`, nmap's wording.
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The trailer line shared by the text and greppable formats: nmap's `scanned in`
/// for a completed scan; for any other, where it stopped (`paused at 14.6%`) and
/// that the results are partial.
pub(crate) fn done_line(meta: &ReportMeta, totals: &Totals) -> String {
    let scanned = meta.total_targets.max(totals.hosts);
    let when = crate::ctime(meta.ended_us.unwrap_or(meta.generated_us));
    let hosts = format!(
        "{} ({})",
        plural(scanned, "IP address", "IP addresses"),
        plural(totals.hosts_up, "host up", "hosts up")
    );
    match meta.incomplete_note() {
        None => format!(
            "# prtip done at {when} -- {hosts} scanned in {:.2} seconds\n",
            meta.elapsed_secs()
        ),
        Some(note) => format!(
            "# prtip {} on {when} -- {hosts}, {:.2} seconds; {note}\n",
            meta.status_words(),
            meta.elapsed_secs()
        ),
    }
}

/// The header line shared by the text and greppable formats.
pub(crate) fn initiated_line(meta: &ReportMeta) -> String {
    format!(
        "# prtip {} scan initiated {} as: {}\n",
        meta.prtip_version,
        crate::ctime(meta.started_us),
        clean_text(&meta.command_or_targets())
    )
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::{render, synthetic, ExportOptions, Format, ReportMeta};
    use prtip_store::ResultRow;

    pub fn meta() -> ReportMeta {
        let mut m = ReportMeta::synthetic(7, &synthetic::lab_spec(), 1_764_080_100_000_000);
        m.ended_us = Some(1_764_080_112_340_000);
        m.total_targets = 256;
        m.command_line = "prtip scan -sS -sV -p 21-23,25,80 198.19.0.0/24".into();
        m
    }

    pub fn run(format: Format, rows: Vec<ResultRow>) -> Vec<u8> {
        let mut out = Vec::new();
        render(
            format,
            &meta(),
            rows.into_iter().map(Ok),
            &mut out,
            &mut ExportOptions::default(),
        )
        .unwrap();
        out
    }

    pub fn run_str(format: Format, rows: Vec<ResultRow>) -> String {
        String::from_utf8(run(format, rows)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::run_str;
    use crate::synthetic::row;
    use crate::Format;
    use prtip_store::{PortState, Protocol};

    #[test]
    fn a_stored_target_list_reads_as_words_in_every_report() {
        // An -iL scan's spec names its list by token; reports print words.
        let mut m = super::testutil::meta();
        m.targets = vec![format!("@list:1a2b3c4d{}:0:2000000", "0".repeat(56))];
        m.command_line.clear(); // the command is reconstructed from the targets
        let words = "-iL list: 2,000,000 IPv6 addresses (targets-1a2b3c4d…)";
        assert_eq!(m.targets_text(), words);
        for f in [Format::Html, Format::Text, Format::Xml, Format::Grep] {
            let mut out = Vec::new();
            crate::render(
                f,
                &m,
                std::iter::empty(),
                &mut out,
                &mut crate::ExportOptions::default(),
            )
            .unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(out.contains(words), "{f:?}: {out}");
            assert!(!out.contains("@list"), "{f:?}: {out}");
        }
    }

    #[test]
    fn exports_and_port_lists_name_ports_from_the_one_table() {
        // 7/udp was "unknown" in exports while `-p echo` knew it (two tables).
        let mut r = row([198, 19, 0, 2], 7, PortState::Open, None, None);
        r.proto = Protocol::Udp;
        let text = run_str(Format::Text, vec![r]);
        assert!(text.contains("7/udp open  echo\n"), "{text}");
        for (port, proto) in [
            (7, Protocol::Udp),
            (22, Protocol::Tcp),
            (8080, Protocol::Tcp),
        ] {
            let name = super::table_service(port, proto).unwrap();
            assert_eq!(
                prtip_services::port_table::service_port(name, proto),
                Some(port)
            );
        }
    }

    #[test]
    fn host_discovery_results_read_as_nmap_sn_writes_them() {
        let host = |ip: [u8; 4], up: bool| {
            let state = if up {
                PortState::Open
            } else {
                PortState::Filtered
            };
            let mut r = row(ip, 0, state, None, None);
            r.proto = Protocol::Host;
            r.ttl = if up { 64 } else { 0 };
            r.reason = if up {
                prtip_store::Reason::EchoReply
            } else {
                prtip_store::Reason::NoResponse
            };
            r
        };
        let rows = || vec![host([198, 18, 1, 1], true), host([198, 18, 1, 2], false)];
        let text = run_str(Format::Text, rows());
        assert!(
            text.contains(
                "prtip scan report for 198.18.1.1\nHost is up, received echo-reply ttl 64 ("
            ),
            "{text}"
        );
        assert!(
            !text.contains("198.18.1.2") && !text.contains("PORT"),
            "{text}"
        );
        let xml = run_str(Format::Xml, rows());
        assert!(
            xml.contains("<status state=\"up\" reason=\"echo-reply\" reason_ttl=\"64\"/>"),
            "{xml}"
        );
        assert!(
            !xml.contains("<ports") && !xml.contains("198.18.1.2"),
            "{xml}"
        );
        let grep = run_str(Format::Grep, rows());
        assert!(grep.contains("Host: 198.18.1.1 ()\tStatus: Up\n"), "{grep}");
        assert!(
            !grep.contains("Ports:") && !grep.contains("198.18.1.2"),
            "{grep}"
        );
        let csv = run_str(Format::Csv, rows());
        assert!(csv.contains("198.18.1.1,0,host,up,"), "{csv}");
        assert!(csv.contains("198.18.1.2,0,host,down,"), "{csv}");
        let json = run_str(Format::Json, rows());
        assert!(
            json.contains("\"proto\":\"host\",\"state\":\"up\",\"reason\":\"echo-reply\""),
            "{json}"
        );
        assert!(
            json.contains("\"state\":\"down\",\"reason\":\"no-response\""),
            "{json}"
        );
    }
}
