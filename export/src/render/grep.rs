//! nmap's greppable output (`-oG`): one `Status` line and one `Ports` line per host.
//!
//! `Host: IP (NAME)\tPorts: PORT/STATE/PROTO//SERVICE//VERSION/, ...\tIgnored State: closed (N)`.
//! Inside a field `/` becomes `|` and `,` becomes `;` so the separators stay
//! unambiguous; control characters are escaped as `\xNN`.

use super::{done_line, initiated_line, version_string, Render, Totals};
use crate::escape::clean_text;
use crate::{ExportError, Host, ReportMeta};
use prtip_store::PortState;
use std::fmt::Write as _;
use std::io::Write;

#[derive(Default)]
pub(crate) struct GrepRender {
    buf: String,
}

fn field(s: &str) -> String {
    clean_text(s).replace('/', "|").replace(',', ";")
}

impl Render for GrepRender {
    fn begin(&mut self, meta: &ReportMeta, out: &mut dyn Write) -> Result<(), ExportError> {
        out.write_all(initiated_line(meta).as_bytes())?;
        Ok(())
    }

    fn host(&mut self, host: &Host, out: &mut dyn Write) -> Result<(), ExportError> {
        let b = &mut self.buf;
        b.clear();
        let name = host.hostname().map(field).unwrap_or_default();
        let head = format!("Host: {} ({name})", host.addr());
        let status = if host.is_up() {
            "Up"
        } else if host.is_unreachable() {
            "Down"
        } else {
            "Unknown"
        };
        if host.port_rows().is_empty() {
            // nmap -sn -oG: "Status: Up" lines for the hosts up, no Ports line.
            if host.is_up() {
                let _ = writeln!(b, "{head}\tStatus: Up");
                out.write_all(b.as_bytes())?;
            }
            return Ok(());
        }
        let _ = writeln!(b, "{head}\tStatus: {status}");
        // The largest summarised state becomes "Ignored State"; everything else is listed.
        let ignored: Option<(PortState, u64)> = [
            PortState::Closed,
            PortState::Filtered,
            PortState::OpenFiltered,
            PortState::Unfiltered,
        ]
        .into_iter()
        .filter(|&s| host.is_hidden(s))
        .map(|s| (s, host.count(s)))
        .max_by_key(|&(_, n)| n);
        let _ = write!(b, "{head}\tPorts: ");
        let mut first = true;
        for r in host.port_rows() {
            if ignored.is_some_and(|(s, _)| s == r.state) {
                continue;
            }
            if !first {
                b.push_str(", ");
            }
            first = false;
            let (service, version) = match &r.service {
                Some(s) => (field(&s.name), field(&version_string(s))),
                // nmap's services-file name when nothing was detected
                None => (
                    super::table_service(r.port, r.proto)
                        .unwrap_or_default()
                        .to_string(),
                    String::new(),
                ),
            };
            let _ = write!(
                b,
                "{}/{}/{}//{service}//{version}/",
                r.port,
                r.state.as_str(),
                r.proto.as_str()
            );
        }
        if let Some((state, n)) = ignored {
            let _ = write!(b, "\tIgnored State: {} ({n})", state.as_str());
        }
        b.push('\n');
        out.write_all(b.as_bytes())?;
        Ok(())
    }

    fn finish(
        &mut self,
        meta: &ReportMeta,
        totals: &Totals,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        out.write_all(done_line(meta, totals).as_bytes())?;
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
    fn one_ports_line_per_host() {
        let mut rows = vec![
            row(
                [198, 19, 0, 2],
                22,
                PortState::Open,
                Some(("ssh", "OpenSSH", "9.2p1")),
                None,
            ),
            row(
                [198, 19, 0, 2],
                80,
                PortState::Open,
                Some(("http", "a/b, c", "")),
                None,
            ),
        ];
        for p in 1000..1030 {
            rows.push(row([198, 19, 0, 2], p, PortState::Closed, None, None));
        }
        let out = run_str(Format::Grep, rows);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("# prtip "));
        assert_eq!(lines[1], "Host: 198.19.0.2 ()\tStatus: Up");
        assert_eq!(
            lines[2],
            "Host: 198.19.0.2 ()\tPorts: 22/open/tcp//ssh//OpenSSH 9.2p1/, 80/open/tcp//http//a|b; c/\tIgnored State: closed (30)"
        );
        assert!(lines[3].starts_with("# prtip done at "));
        assert!(lines[3].ends_with("-- 256 IP addresses (1 host up) scanned in 12.34 seconds"));
    }
}
