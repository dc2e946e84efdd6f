//! JSON lines: one self-contained object per result row, `\n`-terminated.
//!
//! The field set is stable and documented in docs/exports.md; a new field may be
//! added, none is renamed or removed without a new major version.

use super::{Render, Totals};
use crate::escape::{clean_text, json_banner};
use crate::{ExportError, Host, ReportMeta};
use serde::Serialize;
use std::borrow::Cow;
use std::io::Write;

#[derive(Default)]
pub(crate) struct JsonRender {
    scan_id: u64,
    buf: Vec<u8>,
    clock: crate::meta::Rfc3339Writer,
    time: String,
}

/// One line of `-oJ` output.
#[derive(Serialize)]
struct Line<'a> {
    scan_id: u64,
    ip: &'a str,
    hostname: Option<Cow<'a, str>>,
    port: u16,
    proto: &'static str,
    state: &'static str,
    reason: &'static str,
    ttl: u8,
    rtt_us: u32,
    time: &'a str,
    time_us: u64,
    service: Option<Cow<'a, str>>,
    product: Option<Cow<'a, str>>,
    version: Option<Cow<'a, str>>,
    extra: Option<Cow<'a, str>>,
    confidence: Option<f32>,
    method: Option<Cow<'a, str>>,
    banner: Option<Cow<'a, str>>,
    banner_escaped: Option<bool>,
}

fn non_empty(s: &str) -> Option<Cow<'_, str>> {
    (!s.is_empty()).then(|| clean_text(s))
}

impl Render for JsonRender {
    fn begin(&mut self, meta: &ReportMeta, _out: &mut dyn Write) -> Result<(), ExportError> {
        self.scan_id = meta.scan_id;
        Ok(())
    }

    fn host(&mut self, host: &Host, out: &mut dyn Write) -> Result<(), ExportError> {
        let ip = host.addr().to_string();
        for r in &host.rows {
            let s = r.service.as_ref();
            let banner = r.banner.as_deref().map(json_banner);
            self.time.clear();
            self.clock.write(r.time_us, &mut self.time);
            let line = Line {
                scan_id: self.scan_id,
                ip: &ip,
                hostname: r.hostname.as_deref().map(clean_text),
                port: r.port,
                proto: r.proto.as_str(),
                state: super::state_str(r),
                reason: r.reason.as_str(),
                ttl: r.ttl,
                rtt_us: r.rtt_us,
                time: &self.time,
                time_us: r.time_us,
                service: s.and_then(|s| non_empty(&s.name)),
                product: s.and_then(|s| non_empty(&s.product)),
                version: s.and_then(|s| non_empty(&s.version)),
                extra: s.and_then(|s| non_empty(&s.extra)),
                confidence: s.map(|s| s.confidence),
                method: s.and_then(|s| non_empty(&s.method)),
                banner_escaped: banner.as_ref().map(|b| b.1),
                banner: banner.map(|b| b.0),
            };
            serde_json::to_writer(&mut self.buf, &line).map_err(std::io::Error::other)?;
            self.buf.push(b'\n');
        }
        if self.buf.len() > 32 * 1024 {
            out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn flush_rows(&mut self, out: &mut dyn Write) -> Result<(), ExportError> {
        out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn finish(
        &mut self,
        meta: &ReportMeta,
        _: &Totals,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        // A scan that did not complete ends with one line that is not a result row:
        // `{"scan_id":7,"status":"paused","progress":0.146,"note":"paused at 14.6%: ..."}`.
        if let Some(note) = meta.incomplete_note() {
            let line = serde_json::json!({
                "scan_id": meta.scan_id,
                "status": meta.status,
                "progress": (meta.progress * 1000.0).round() / 1000.0,
                "note": note,
            });
            serde_json::to_writer(&mut self.buf, &line).map_err(std::io::Error::other)?;
            self.buf.push(b'\n');
        }
        out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::render::testutil::run_str;
    use crate::synthetic::row;
    use crate::Format;
    use prtip_store::PortState;

    #[test]
    fn every_line_is_one_object_with_the_documented_fields() {
        let rows = vec![
            row(
                [198, 19, 0, 2],
                22,
                PortState::Open,
                Some(("ssh", "OpenSSH", "9.2p1")),
                Some(b"SSH-2.0-x\r\n"),
            ),
            row([198, 19, 0, 2], 23, PortState::Closed, None, None),
        ];
        let out = run_str(Format::Json, rows);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            serde_json::json!({
                "scan_id": 7, "ip": "198.19.0.2", "hostname": null, "port": 22, "proto": "tcp",
                "state": "open", "reason": "syn-ack", "ttl": 64, "rtt_us": 250,
                "time": "2025-11-25T14:15:00.000022Z", "time_us": 1_764_080_100_000_022u64,
                "service": "ssh", "product": "OpenSSH", "version": "9.2p1", "extra": null,
                "confidence": 1.0, "method": "probe", "banner": "SSH-2.0-x\r\n",
                "banner_escaped": false
            })
        );
        assert_eq!(lines[1]["state"], "closed");
        assert_eq!(lines[1]["service"], serde_json::Value::Null);
        assert!(out.ends_with('\n'));
    }
}
