//! nmap's normal output (`-oN`): a header, one block per host, a trailer.
//!
//! Same layout as nmap's, so people and the usual `grep`/`awk` habits work:
//! `PORT STATE SERVICE [VERSION]` columns, "Not shown: N closed tcp ports (reset)"
//! for states with more than 25 ports, banners as `|_banner:` lines.

use super::{done_line, initiated_line, service_name, version_string, Render, Totals};
use crate::escape::{clean_text, display_banner, excerpt};
use crate::{ExportError, Host, ReportMeta};
use prtip_store::{PortState, ResultRow};
use std::fmt::Write as _;
use std::io::Write;

/// Longest banner excerpt printed (escaped characters).
const BANNER_CHARS: usize = 160;

#[derive(Default)]
pub(crate) struct TextRender {
    buf: String,
    /// `--reason`: a REASON column after SERVICE (nmap's layout).
    reason: bool,
}

impl Render for TextRender {
    fn begin(&mut self, meta: &ReportMeta, out: &mut dyn Write) -> Result<(), ExportError> {
        self.reason = meta.reason;
        out.write_all(initiated_line(meta).as_bytes())?;
        Ok(())
    }

    /// While the scan runs, `-oN` says what nmap's normal output says then:
    /// `Discovered open port 22/tcp on 198.19.0.2` per open port (a service
    /// found later adds nothing); the report itself replaces it at the end.
    fn live_row(
        &mut self,
        row: &ResultRow,
        update: bool,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        if update || row.state != PortState::Open {
            return Ok(());
        }
        let name = row
            .hostname
            .as_deref()
            .map(|n| format!(" ({})", clean_text(n)))
            .unwrap_or_default();
        if row.proto == prtip_store::Protocol::Host {
            writeln!(
                out,
                "Discovered host {}{name} is up ({})",
                row.addr,
                row.reason.as_str()
            )?;
            return Ok(());
        }
        writeln!(
            out,
            "Discovered open port {}/{} on {}{name}",
            row.port,
            row.proto.as_str(),
            row.addr
        )?;
        Ok(())
    }

    fn host(&mut self, host: &Host, out: &mut dyn Write) -> Result<(), ExportError> {
        let b = &mut self.buf;
        b.clear();
        let ip = host.addr();
        let discovery_only = host.port_rows().is_empty();
        if discovery_only && !host.is_up() {
            // nmap -sn lists the hosts up; the trailer counts the others.
            return Ok(());
        }
        match host.hostname() {
            Some(name) => {
                let _ = writeln!(b, "prtip scan report for {} ({ip})", clean_text(name));
            }
            None => {
                let _ = writeln!(b, "prtip scan report for {ip}");
            }
        }
        if let (true, Some(st)) = (discovery_only, host.status_row()) {
            // nmap -sn --reason: "Host is up, received echo-reply ttl 64 (0.00005s latency)."
            host_up_received(b, host, st);
            out.write_all(b.as_bytes())?;
            return Ok(());
        }
        if let (true, Some(st)) = (self.reason, host.status_row().filter(|_| host.is_up())) {
            // Discovery before the ports, with --reason (as nmap): what found the host.
            host_up_received(b, host, st);
        } else if host.is_up() {
            match host.min_rtt_us() {
                Some(rtt) => {
                    let _ = writeln!(b, "Host is up ({:.5}s latency).", rtt as f64 / 1e6);
                }
                None => b.push_str("Host is up.\n"),
            }
        } else if host.is_unreachable() {
            b.push_str("Host seems down (host-unreach: unreachable errors only, no reply from the host).\n");
        } else {
            b.push_str("Host did not answer any probe.\n");
        }
        let hidden = host.hidden();
        let shown: Vec<_> = host.shown().collect();
        if shown.is_empty() {
            let _ = writeln!(
                b,
                "All {} scanned ports on {ip} are in ignored states.",
                host.port_count()
            );
        }
        if !hidden.is_empty() {
            b.push_str("Not shown: ");
            for (i, h) in hidden.iter().enumerate() {
                if i > 0 {
                    b.push_str(", ");
                }
                let reasons: Vec<String> = h
                    .reasons
                    .iter()
                    .map(|(r, n)| {
                        if h.reasons.len() == 1 {
                            r.as_str().to_string()
                        } else {
                            format!("{n} {}", r.as_str())
                        }
                    })
                    .collect();
                let _ = write!(
                    b,
                    "{} {} {} ports ({})",
                    h.count,
                    h.state.as_str(),
                    h.proto.as_str(),
                    reasons.join(", ")
                );
            }
            b.push('\n');
        }
        if !shown.is_empty() {
            let reason = self.reason;
            // SERVICE's width when a REASON column follows it.
            let svc_w = shown
                .iter()
                .map(|r| service_name(r).chars().count())
                .max()
                .unwrap_or(0)
                .max(7)
                + 1;
            let head = if reason {
                format!("{:svc_w$}REASON", "SERVICE")
            } else {
                "SERVICE".to_string()
            };
            let cells: Vec<(String, &str, String, String)> = shown
                .iter()
                .map(|r| {
                    let mut service = service_name(r);
                    if reason {
                        // The REASON column rides with SERVICE, padded below.
                        service = format!("{service:svc_w$}{}", reason_text(r));
                    }
                    (
                        format!("{}/{}", r.port, r.proto.as_str()),
                        r.state.as_str(),
                        service,
                        r.service.as_ref().map(version_string).unwrap_or_default(),
                    )
                })
                .collect();
            let with_version = cells.iter().any(|c| !c.3.is_empty());
            let w0 = cells.iter().map(|c| c.0.len()).max().unwrap_or(0).max(4) + 1;
            let w1 = cells.iter().map(|c| c.1.len()).max().unwrap_or(0).max(5) + 1;
            let w2 = cells
                .iter()
                .map(|c| c.2.chars().count())
                .max()
                .unwrap_or(0)
                .max(head.chars().count())
                + 1;
            if with_version {
                let _ = writeln!(b, "{:w0$}{:w1$}{:w2$}VERSION", "PORT", "STATE", head);
            } else {
                let _ = writeln!(b, "{:w0$}{:w1$}{}", "PORT", "STATE", head);
            }
            for (row, c) in shown.iter().zip(&cells) {
                if with_version && !c.3.is_empty() {
                    let _ = writeln!(b, "{:w0$}{:w1$}{:w2$}{}", c.0, c.1, c.2, c.3);
                } else {
                    let _ = writeln!(b, "{:w0$}{:w1$}{}", c.0, c.1, c.2);
                }
                if let Some(banner) = row.banner.as_deref() {
                    let _ = writeln!(
                        b,
                        "|_banner: {}",
                        excerpt(display_banner(banner), banner.len(), BANNER_CHARS)
                    );
                }
            }
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

/// nmap's REASON cell: the reason, and the TTL of the reply that gave it
/// (`syn-ack ttl 64`, `reset ttl 63`, `no-response`).
fn reason_text(r: &prtip_store::ResultRow) -> String {
    match r.reason {
        prtip_store::event::Reason::NoResponse => r.reason.as_str().to_string(),
        reason if r.ttl > 0 => format!("{} ttl {}", reason.as_str(), r.ttl),
        reason => reason.as_str().to_string(),
    }
}

/// nmap's `--reason` line of a host found up: "Host is up, received echo-reply
/// ttl 64 (0.00005s latency)."
fn host_up_received(b: &mut String, host: &Host, st: &ResultRow) {
    let _ = match host.min_rtt_us() {
        Some(rtt) => writeln!(
            b,
            "Host is up, {} ({:.5}s latency).",
            super::received(st),
            rtt as f64 / 1e6
        ),
        None => writeln!(b, "Host is up, {}.", super::received(st)),
    };
}

#[cfg(test)]
mod tests {
    use crate::render::testutil::run_str;
    use crate::synthetic::row;
    use crate::Format;
    use prtip_store::PortState;

    #[test]
    fn looks_like_nmap_normal_output() {
        let mut rows = vec![
            row(
                [198, 19, 0, 2],
                21,
                PortState::Open,
                Some(("ftp", "vsftpd", "3.0.3")),
                Some(b"220 (vsFTPd 3.0.3)\r\n"),
            ),
            row(
                [198, 19, 0, 2],
                22,
                PortState::Open,
                Some(("ssh", "OpenSSH", "9.2p1")),
                None,
            ),
        ];
        for p in 1000..1030 {
            rows.push(row([198, 19, 0, 2], p, PortState::Closed, None, None));
        }
        rows.push(row([198, 19, 0, 9], 80, PortState::Closed, None, None));
        let out = run_str(Format::Text, rows);
        let expected = "\
# prtip 0.1.0 scan initiated Tue Nov 25 14:15:00 2025 UTC as: prtip scan -sS -sV -p 21-23,25,80 198.19.0.0/24
prtip scan report for 198.19.0.2
Host is up (0.00025s latency).
Not shown: 30 closed tcp ports (reset)
PORT   STATE SERVICE VERSION
21/tcp open  ftp     vsftpd 3.0.3
|_banner: 220 (vsFTPd 3.0.3)
22/tcp open  ssh     OpenSSH 9.2p1

prtip scan report for 198.19.0.9
Host is up (0.00025s latency).
PORT   STATE  SERVICE
80/tcp closed http

# prtip done at Tue Nov 25 14:15:12 2025 UTC -- 256 IP addresses (2 hosts up) scanned in 12.34 seconds
";
        assert_eq!(out, expected.replace("0.1.0", env!("CARGO_PKG_VERSION")));
    }
}
