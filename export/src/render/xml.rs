//! nmap XML (`-oX`), xmloutputversion 1.05: valid against nmap.dtd, so ndiff,
//! python-libnmap, Metasploit's db_import and the nmap.xsl stylesheet read it.
//!
//! `scanner="nmap"` is what the DTD allows; `args` holds prtip's command line and
//! `version` prtip's version, and a comment at the top names prtip. Remote strings
//! are cleaned of characters XML forbids and escaped. Banners go into an XML comment
//! in their `<port>` (`<!-- banner: ... -->`), not into a `<script>` element: ndiff
//! 7.93 crashes on a port whose script output differs between two scans while its
//! service columns do not (`'>' not supported between instances of 'list' and
//! 'int'`), which two `-sV` scans of an HTTP server always produce (the `Date:`
//! header). nmap's tools and libraries skip comments.

use super::{Render, Totals};
use crate::escape::{display_banner, excerpt, xml_escape, xml_text};
use crate::{ExportError, Host, ReportMeta};
use prtip_store::ResultRow;
use std::fmt::Write as _;
use std::io::Write;

#[derive(Default)]
pub(crate) struct XmlRender {
    buf: String,
}

/// Per-protocol port lists of the scan, from the canonical spec (`T:22,80,U:53`).
fn scaninfo(meta: &ReportMeta) -> Vec<(&'static str, u64, String)> {
    let default_udp = matches!(meta.scan_type, prtip_store::event::ScanType::Udp);
    let mut tcp: Vec<String> = Vec::new();
    let mut udp: Vec<String> = Vec::new();
    let mut cur_udp = default_udp;
    for tok in meta
        .ports
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let tok = if let Some(rest) = tok.strip_prefix("T:").or_else(|| tok.strip_prefix("t:")) {
            cur_udp = false;
            rest
        } else if let Some(rest) = tok.strip_prefix("U:").or_else(|| tok.strip_prefix("u:")) {
            cur_udp = true;
            rest
        } else {
            tok
        };
        if tok.is_empty() {
            continue;
        }
        if cur_udp { &mut udp } else { &mut tcp }.push(tok.to_string());
    }
    let count = |v: &[String]| -> u64 {
        v.iter()
            .map(|t| match t.split_once('-') {
                Some((a, b)) => match (a.parse::<u64>(), b.parse::<u64>()) {
                    (Ok(a), Ok(b)) if b >= a => b - a + 1,
                    _ => 1,
                },
                None => 1,
            })
            .sum()
    };
    let mut out = Vec::new();
    if !tcp.is_empty() {
        out.push(("tcp", count(&tcp), tcp.join(",")));
    }
    if !udp.is_empty() {
        out.push(("udp", count(&udp), udp.join(",")));
    }
    out
}

/// `1000-1029,2000` from a sorted port list.
fn ranges(ports: impl Iterator<Item = u16>) -> String {
    let mut out = String::new();
    let mut run: Option<(u16, u16)> = None;
    let flush = |out: &mut String, (a, b): (u16, u16)| {
        if !out.is_empty() {
            out.push(',');
        }
        if a == b {
            let _ = write!(out, "{a}");
        } else {
            let _ = write!(out, "{a}-{b}");
        }
    };
    for p in ports {
        run = match run {
            Some((a, b)) if p == b.wrapping_add(1) && b != u16::MAX => Some((a, p)),
            Some(r) => {
                flush(&mut out, r);
                Some((p, p))
            }
            None => Some((p, p)),
        };
    }
    if let Some(r) = run {
        flush(&mut out, r);
    }
    out
}

fn port_xml(b: &mut String, r: &ResultRow) {
    let _ = write!(
        b,
        "<port protocol=\"{}\" portid=\"{}\"><state state=\"{}\" reason=\"{}\" reason_ttl=\"{}\"/>",
        r.proto.as_str(),
        r.port,
        xml_escape(r.state.as_str()),
        r.reason.as_str(),
        r.ttl
    );
    if let Some(s) = &r.service {
        let name = if s.name.is_empty() {
            "unknown"
        } else {
            &s.name
        };
        let method = if s.method == "port-table" {
            "table"
        } else {
            "probed"
        };
        let conf = (s.confidence * 10.0).round().clamp(0.0, 10.0) as u8;
        let _ = write!(b, "<service name=\"{}\"", xml_text(name));
        for (attr, v) in [
            ("product", &s.product),
            ("version", &s.version),
            ("extrainfo", &s.extra),
        ] {
            if !v.is_empty() {
                let _ = write!(b, " {attr}=\"{}\"", xml_text(v));
            }
        }
        let _ = write!(b, " method=\"{method}\" conf=\"{conf}\"/>");
    } else if let Some(name) = super::table_service(r.port, r.proto) {
        // nmap without -sV: the name from its services table, confidence 3.
        let _ = write!(b, "<service name=\"{name}\" method=\"table\" conf=\"3\"/>");
    }
    if let Some(banner) = r.banner.as_deref() {
        let text = excerpt(display_banner(banner), banner.len(), 512);
        let _ = write!(b, "<!-- banner: {} -->", comment_safe(&text));
    }
    b.push_str("</port>\n");
}

/// Printable-escaped text (from [`display_banner`]) made legal inside an XML comment,
/// which may not hold `--` nor end with `-`: the second `-` of each pair and a last
/// `-` become `\x2d`, the escape `display_banner` uses for any byte (so the banner
/// still decodes losslessly).
fn comment_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev_dash = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '-' && (prev_dash || chars.peek().is_none()) {
            out.push_str("\\x2d");
            prev_dash = false;
        } else {
            out.push(c);
            prev_dash = c == '-';
        }
    }
    out
}

impl XmlRender {
    /// The host's `<ports>` element.
    fn ports(&mut self, host: &Host) {
        let b = &mut self.buf;
        b.push_str("<ports>");
        for h in host.hidden() {
            let _ = writeln!(
                b,
                "<extraports state=\"{}\" count=\"{}\">",
                h.state.as_str(),
                h.count
            );
            for (reason, n) in &h.reasons {
                let ports = ranges(
                    host.all_rows()
                        .filter(|r| r.state == h.state && r.proto == h.proto && r.reason == *reason)
                        .map(|r| r.port),
                );
                let _ = writeln!(
                    b,
                    "<extrareasons reason=\"{}\" count=\"{n}\" proto=\"{}\" ports=\"{ports}\"/>",
                    reason.as_str(),
                    h.proto.as_str()
                );
            }
            b.push_str("</extraports>\n");
        }
        for r in host.shown() {
            port_xml(b, r);
        }
        b.push_str("</ports>\n");
    }
}

impl Render for XmlRender {
    fn begin(&mut self, meta: &ReportMeta, out: &mut dyn Write) -> Result<(), ExportError> {
        let mut b = String::new();
        let cmd = xml_text(&meta.command_or_targets());
        b.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nmaprun>\n");
        b.push_str(
            "<?xml-stylesheet href=\"file:///usr/share/nmap/nmap.xsl\" type=\"text/xsl\"?>\n",
        );
        let _ = writeln!(
            b,
            "<!-- prtip {} scan initiated {} as: {} -->",
            xml_text(&meta.prtip_version),
            crate::ctime(meta.started_us),
            cmd.replace("--", "- -")
        );
        let _ = writeln!(
            b,
            "<nmaprun scanner=\"nmap\" args=\"{cmd}\" start=\"{}\" startstr=\"{}\" version=\"{}\" xmloutputversion=\"1.05\">",
            meta.started_us / 1_000_000,
            crate::ctime(meta.started_us),
            xml_text(&meta.prtip_version)
        );
        let ping = matches!(meta.scan_type, prtip_store::event::ScanType::Ping);
        // nmap -sn writes no <scaninfo>: no ports are scanned.
        for (proto, n, services) in scaninfo(meta).into_iter().filter(|_| !ping) {
            let _ =
                writeln!(
                b,
                "<scaninfo type=\"{}\" protocol=\"{proto}\" numservices=\"{n}\" services=\"{}\"/>",
                if proto == "udp" { "udp" } else { meta.nmap_scan_type() },
                xml_text(&services)
            );
        }
        b.push_str("<verbose level=\"0\"/>\n<debugging level=\"0\"/>\n");
        out.write_all(b.as_bytes())?;
        Ok(())
    }

    fn host(&mut self, host: &Host, out: &mut dyn Write) -> Result<(), ExportError> {
        let b = &mut self.buf;
        b.clear();
        let start = host.rows.iter().map(|r| r.time_us).min().unwrap_or(0) / 1_000_000;
        let end = host.rows.iter().map(|r| r.time_us).max().unwrap_or(0) / 1_000_000;
        let (reason, ttl) = host.up_reason();
        let ip = host.addr().ip();
        let discovery_only = host.port_rows().is_empty();
        if discovery_only && !host.is_up() {
            // As nmap -sn -oX: hosts down are counted in <runstats>, not listed.
            return Ok(());
        }
        let _ = writeln!(
            b,
            "<host starttime=\"{start}\" endtime=\"{end}\"><status state=\"{}\" reason=\"{}\" reason_ttl=\"{ttl}\"/>",
            if host.is_up() {
                "up"
            } else if host.is_unreachable() {
                "down"
            } else {
                "unknown"
            },
            reason.as_str()
        );
        let _ = writeln!(
            b,
            "<address addr=\"{ip}\" addrtype=\"{}\"/>",
            if ip.is_ipv4() { "ipv4" } else { "ipv6" }
        );
        b.push_str("<hostnames>\n");
        if let Some(name) = host.hostname() {
            let _ = writeln!(b, "<hostname name=\"{}\" type=\"user\"/>", xml_text(name));
        }
        b.push_str("</hostnames>\n");
        if !discovery_only {
            self.ports(host);
        }
        let b = &mut self.buf;

        if let Some((srtt, rttvar)) = host.rtt_stats() {
            let to = (srtt + 4 * rttvar).max(100_000);
            let _ = writeln!(
                b,
                "<times srtt=\"{srtt}\" rttvar=\"{rttvar}\" to=\"{to}\"/>"
            );
        }
        b.push_str("</host>\n");
        out.write_all(b.as_bytes())?;
        Ok(())
    }

    fn finish(
        &mut self,
        meta: &ReportMeta,
        totals: &Totals,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        let total = meta.total_targets.max(totals.hosts);
        let end_us = meta.ended_us.unwrap_or(meta.generated_us);
        let hosts = format!(
            "{} ({})",
            super::plural(total, "IP address", "IP addresses"),
            super::plural(totals.hosts_up, "host up", "hosts up"),
        );
        // nmap writes exit="error" with an errormsg when a scan did not run to its end;
        // a paused or killed scan's partial results say so the same way.
        let (summary, exit) = match meta.incomplete_note() {
            None => (
                format!(
                    "prtip done at {}; {hosts} scanned in {:.2} seconds",
                    crate::ctime(end_us),
                    meta.elapsed_secs()
                ),
                String::from("exit=\"success\""),
            ),
            Some(note) => (
                format!(
                    "prtip {} on {}; {hosts}, {:.2} seconds",
                    meta.status_words(),
                    crate::ctime(end_us),
                    meta.elapsed_secs()
                ),
                format!("exit=\"error\" errormsg=\"{}\"", xml_text(&note)),
            ),
        };
        let mut b = String::new();
        let _ = writeln!(
            b,
            "<runstats><finished time=\"{}\" timestr=\"{}\" summary=\"{}\" elapsed=\"{:.2}\" {exit}/><hosts up=\"{}\" down=\"{}\" total=\"{total}\"/>\n</runstats>\n</nmaprun>",
            end_us / 1_000_000,
            crate::ctime(end_us),
            xml_text(&summary),
            meta.elapsed_secs(),
            totals.hosts_up,
            total - totals.hosts_up.min(total)
        );
        out.write_all(b.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testutil::{meta, run_str};
    use crate::synthetic::row;
    use crate::Format;
    use prtip_store::PortState;

    #[test]
    fn port_ranges_compress() {
        assert_eq!(ranges([1, 2, 3, 5, 7, 8].into_iter()), "1-3,5,7-8");
        assert_eq!(ranges(std::iter::empty()), "");
        assert_eq!(ranges([65534, 65535].into_iter()), "65534-65535");
    }

    #[test]
    fn scaninfo_splits_protocols() {
        let mut m = meta();
        m.ports = "T:21-23,25,U:53,161".into();
        assert_eq!(
            scaninfo(&m),
            vec![
                ("tcp", 4, "21-23,25".to_string()),
                ("udp", 2, "53,161".to_string())
            ]
        );
    }

    #[test]
    fn remote_strings_cannot_break_the_xml() {
        let rows = vec![row(
            [198, 19, 0, 2],
            80,
            PortState::Open,
            Some(("http", "\"/><evil a=\"", "\u{1}")),
            Some(b"<script>alert(1)</script>\x00x"),
        )];
        let out = run_str(Format::Xml, rows);
        assert!(out.contains(
            "<service name=\"http\" product=\"&quot;/&gt;&lt;evil a=&quot;\" version=\"\\x01\" method=\"probed\" conf=\"10\"/>"
        ));
        assert!(out.contains("<!-- banner: <script>alert(1)</script>\\x00x --></port>"));
        assert!(!out.contains("<script id="));
        assert!(out.ends_with("</nmaprun>\n"));
    }

    #[test]
    fn banners_cannot_close_their_comment() {
        assert_eq!(comment_safe("a--b---c -->"), "a-\\x2db-\\x2d-c -\\x2d>");
        assert_eq!(comment_safe("ends-"), "ends\\x2d");
        let rows = vec![row(
            [198, 19, 0, 2],
            80,
            PortState::Open,
            None,
            Some(b"x -->< y-"),
        )];
        let out = run_str(Format::Xml, rows);
        assert!(
            out.contains("<!-- banner: x -\\x2d>< y\\x2d --></port>"),
            "{out}"
        );
    }

    #[test]
    fn undetected_ports_name_the_port_table_service_like_nmap() {
        let rows = vec![
            row([198, 19, 0, 2], 22, PortState::Open, None, None),
            row([198, 19, 0, 2], 23, PortState::Closed, None, None),
            row([198, 19, 0, 2], 8080, PortState::Open, None, None),
            // no table entry: no <service> at all
            row([198, 19, 0, 2], 47999, PortState::Closed, None, None),
        ];
        let xml = run_str(Format::Xml, rows.clone());
        assert!(xml.contains("portid=\"22\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"64\"/><service name=\"ssh\" method=\"table\" conf=\"3\"/></port>"), "{xml}");
        // 8080/tcp is http-proxy in the one port table, as in nmap-services.
        assert!(xml.contains("portid=\"8080\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"64\"/><service name=\"http-proxy\" method=\"table\" conf=\"3\"/>"), "{xml}");
        assert!(xml.contains("<service name=\"telnet\" method=\"table\" conf=\"3\"/>"));
        assert!(xml.contains("portid=\"47999\"><state state=\"closed\" reason=\"reset\" reason_ttl=\"64\"/></port>"), "{xml}");
        let grep = run_str(Format::Grep, rows.clone());
        assert!(grep.contains("22/open/tcp//ssh///, 23/closed/tcp//telnet///, 8080/open/tcp//http-proxy///, 47999/closed/tcp/////"), "{grep}");
        let text = run_str(Format::Text, rows);
        assert!(text.contains("22/tcp    open   ssh\n"), "{text}");
        assert!(text.contains("47999/tcp closed unknown\n"), "{text}");
    }
}
