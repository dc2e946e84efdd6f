//! CSV (RFC 4180, via the csv crate): IP, Port, Protocol, State, Service, Version, Banner.
//!
//! One record per row, every state. Banners are made printable (`\xNN`), control
//! characters in service strings escaped, and a cell a spreadsheet would evaluate
//! (leading `=`, `+`, `-`, `@`, tab, CR) gets a leading `'`.

use super::{version_string, Render, Totals};
use crate::escape::{clean_text, neutralize_formula, printable_bytes};
use crate::{ExportError, Host, ReportMeta};
use std::io::Write;
use std::sync::{Arc, Mutex};

pub(crate) struct CsvRender {
    w: csv::Writer<Shared>,
    buf: Shared,
}

/// A growable buffer the csv writer fills and the renderer drains.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CsvRender {
    pub fn new() -> Self {
        let buf = Shared::default();
        CsvRender {
            w: csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .buffer_capacity(64 * 1024)
                .from_writer(buf.clone()),
            buf,
        }
    }

    fn drain(&mut self, out: &mut dyn Write) -> Result<(), ExportError> {
        self.w.flush()?;
        let mut buf = self.buf.0.lock().unwrap_or_else(|p| p.into_inner());
        out.write_all(&buf)?;
        buf.clear();
        Ok(())
    }
}

fn csv_err(e: csv::Error) -> ExportError {
    ExportError::from(std::io::Error::other(e))
}

impl Render for CsvRender {
    fn begin(&mut self, _meta: &ReportMeta, out: &mut dyn Write) -> Result<(), ExportError> {
        self.w
            .write_record([
                "IP", "Port", "Protocol", "State", "Service", "Version", "Banner",
            ])
            .map_err(csv_err)?;
        self.drain(out)
    }

    fn host(&mut self, host: &Host, out: &mut dyn Write) -> Result<(), ExportError> {
        let ip = host.addr().to_string();
        let mut port = String::with_capacity(8);
        for r in &host.rows {
            let service = r
                .service
                .as_ref()
                .map(|s| clean_text(&s.name).into_owned())
                .unwrap_or_default();
            let version = r.service.as_ref().map(version_string).unwrap_or_default();
            let banner = r.banner.as_deref().map(printable_bytes).unwrap_or_default();
            port.clear();
            use std::fmt::Write as _;
            let _ = write!(port, "{}", r.port);
            self.w
                .write_record([
                    ip.as_str(),
                    port.as_str(),
                    r.proto.as_str(),
                    super::state_str(r),
                    &neutralize_formula(&service),
                    &neutralize_formula(&version),
                    &neutralize_formula(&banner),
                ])
                .map_err(csv_err)?;
        }
        if self.buf.0.lock().unwrap_or_else(|p| p.into_inner()).len() > 256 * 1024 {
            self.drain(out)?;
        }
        Ok(())
    }

    fn flush_rows(&mut self, out: &mut dyn Write) -> Result<(), ExportError> {
        self.drain(out)
    }

    fn finish(
        &mut self,
        _: &ReportMeta,
        _: &Totals,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        self.drain(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::render::testutil::run;
    use crate::synthetic::row;
    use crate::Format;
    use prtip_store::PortState;

    #[test]
    fn rows_read_back_with_the_csv_crate() {
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
                Some(("http", "=HYPERLINK(\"x\")", "")),
                Some(b"a,\"b\"\x00\xff"),
            ),
            row([198, 19, 0, 2], 81, PortState::Closed, None, None),
            row(
                [198, 19, 0, 3],
                6379,
                PortState::Open,
                Some(("redis", "", "")),
                Some(b"-ERR\r\n"),
            ),
        ];
        let out = run(Format::Csv, rows);
        let mut rd = csv::Reader::from_reader(out.as_slice());
        assert_eq!(
            rd.headers().unwrap(),
            vec!["IP", "Port", "Protocol", "State", "Service", "Version", "Banner"]
        );
        let recs: Vec<Vec<String>> = rd
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        assert_eq!(
            recs,
            vec![
                vec![
                    "198.19.0.2",
                    "22",
                    "tcp",
                    "open",
                    "ssh",
                    "OpenSSH 9.2p1",
                    "SSH-2.0-OpenSSH_9.2p1\\x0d\\x0a"
                ],
                vec![
                    "198.19.0.2",
                    "80",
                    "tcp",
                    "open",
                    "http",
                    "'=HYPERLINK(\"x\")",
                    "a,\"b\"\\x00\\xff"
                ],
                vec!["198.19.0.2", "81", "tcp", "closed", "", "", ""],
                vec![
                    "198.19.0.3",
                    "6379",
                    "tcp",
                    "open",
                    "redis",
                    "",
                    "'-ERR\\x0d\\x0a"
                ],
            ]
        );
    }
}
