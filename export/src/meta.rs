//! What a report says about the scan itself (its header and footer).
//!
//! [`ReportMeta`] is built once per export from the log's `ScanStarted` event and the
//! store's summary; renderers only read it. This module never reads result rows.

use prtip_store::event::{Counters, ScanSpec, ScanStarted, ScanType};
use serde::Serialize;
use time::OffsetDateTime;

/// Scan facts shown in report headers, summaries and trailers.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportMeta {
    /// History id of the scan.
    pub scan_id: u64,
    /// Command line as typed (arguments joined with spaces, quoted when needed).
    pub command_line: String,
    /// Target tokens as given (a stored list as its `@list:` token; print
    /// [`ReportMeta::targets_text`]).
    pub targets: Vec<String>,
    /// Canonical port list (`T:22,80,U:53`).
    pub ports: String,
    /// Scan type.
    pub scan_type: ScanType,
    /// `-sV` was on.
    pub service_detection: bool,
    /// `--reason` was given: normal output adds nmap's REASON column.
    pub reason: bool,
    /// Unix time the scan started, microseconds.
    pub started_us: u64,
    /// Unix time the scan ended (finished, paused, failed), microseconds; `None` while running.
    pub ended_us: Option<u64>,
    /// Scan status in words: `completed`, `running`, `paused`, `failed`, `interrupted`.
    pub status: String,
    /// Number of target addresses after excludes.
    pub total_targets: u64,
    /// Size of the probe index space.
    pub total_probes: u64,
    /// Latest counters (final, or from the last checkpoint).
    pub counters: Counters,
    /// Progress in 0.0 ..= 1.0: the store's one definition
    /// ([`prtip_store::ScanSummary::progress`], first-pass walk positions done).
    pub progress: f64,
    /// prtip version that wrote the log.
    pub prtip_version: String,
    /// Event schema version of the log.
    pub schema_version: u32,
    /// Unix time this report was generated, microseconds.
    pub generated_us: u64,
}

impl ReportMeta {
    /// Facts known from the first event alone (status `running`, no end, no counters);
    /// callers refine `status`, `ended_us` and `counters` from the store's summary.
    pub fn from_started(started: &ScanStarted) -> ReportMeta {
        ReportMeta {
            scan_id: started.scan_id,
            command_line: join_command_line(&started.command_line),
            targets: started.spec.targets.clone(),
            ports: started.spec.ports.clone(),
            scan_type: started.spec.scan_type,
            service_detection: started.spec.service_detection,
            reason: asks_reason(&started.command_line),
            started_us: started.time_us,
            ended_us: None,
            status: "running".into(),
            total_targets: started.total_targets,
            total_probes: started.total_probes,
            counters: Counters::default(),
            progress: 0.0,
            prtip_version: started.versions.prtip.clone(),
            schema_version: started.versions.schema,
            generated_us: prtip_store::event::now_us(),
        }
    }

    /// A minimal header for rows that did not come from a log (tests, library users).
    pub fn synthetic(scan_id: u64, spec: &ScanSpec, started_us: u64) -> ReportMeta {
        ReportMeta {
            scan_id,
            command_line: String::new(),
            targets: spec.targets.clone(),
            ports: spec.ports.clone(),
            scan_type: spec.scan_type,
            service_detection: spec.service_detection,
            reason: false,
            started_us,
            ended_us: Some(started_us),
            status: "completed".into(),
            total_targets: 0,
            total_probes: 0,
            counters: Counters::default(),
            progress: 1.0,
            prtip_version: env!("CARGO_PKG_VERSION").into(),
            schema_version: prtip_store::event::SCHEMA_VERSION,
            generated_us: started_us,
        }
    }

    /// Whether the scan ran to its end (every other status means partial results).
    pub fn is_complete(&self) -> bool {
        self.status == "completed"
    }

    /// Progress as printed: `14.6%` (one decimal, the figure `paused at N%` uses).
    pub fn percent(&self) -> String {
        format!("{:.1}%", self.progress.clamp(0.0, 1.0) * 100.0)
    }

    /// Where the scan stands, in the words every export uses: `completed`, `paused at
    /// 14.6%`, `interrupted at 14.6%` (killed; resumable), `failed at 14.6%`,
    /// `running, 14.6% done`.
    pub fn status_words(&self) -> String {
        match self.status.as_str() {
            "completed" => "completed".into(),
            "running" => format!("running, {} done", self.percent()),
            other => format!("{other} at {}", self.percent()),
        }
    }

    /// For a scan that did not complete: `paused at 14.6%: results are partial` plus,
    /// when it can be resumed, `; resume: prtip replay 7 --from-checkpoint`. `None`
    /// for a completed scan.
    pub fn incomplete_note(&self) -> Option<String> {
        if self.is_complete() {
            return None;
        }
        let mut s = format!("{}: results are partial", self.status_words());
        if matches!(self.status.as_str(), "paused" | "interrupted") {
            s.push_str(&format!(
                "; resume: prtip replay {} --from-checkpoint",
                self.scan_id
            ));
        }
        Some(s)
    }

    /// Seconds between start and end (or generation time while running).
    pub fn elapsed_secs(&self) -> f64 {
        let end = self.ended_us.unwrap_or(self.generated_us);
        end.saturating_sub(self.started_us) as f64 / 1e6
    }

    /// The scan type as nmap names it in `<scaninfo type=...>` (`syn`, `connect`, `udp`).
    pub fn nmap_scan_type(&self) -> &'static str {
        match self.scan_type {
            ScanType::Syn => "syn",
            ScanType::Connect => "connect",
            ScanType::Udp => "udp",
            ScanType::Fin => "fin",
            ScanType::Null => "null",
            ScanType::Xmas => "xmas",
            ScanType::Ack => "ack",
            ScanType::Window => "window",
            ScanType::Maimon => "maimon",
            ScanType::Ping => "ping",
        }
    }

    /// The scan type in words (`TCP SYN`, `TCP connect`, `UDP`).
    pub fn scan_type_words(&self) -> &'static str {
        match self.scan_type {
            ScanType::Syn => "TCP SYN (-sS)",
            ScanType::Connect => "TCP connect (-sT)",
            ScanType::Udp => "UDP (-sU)",
            ScanType::Fin => "TCP FIN (-sF)",
            ScanType::Null => "TCP NULL (-sN)",
            ScanType::Xmas => "TCP Xmas (-sX)",
            ScanType::Ack => "TCP ACK (-sA)",
            ScanType::Window => "TCP Window (-sW)",
            ScanType::Maimon => "TCP Maimon (-sM)",
            ScanType::Ping => "host discovery (-sn)",
        }
    }

    /// The targets as every report prints them (a stored list in words:
    /// [`prtip_store::space::list::targets_text`]).
    pub fn targets_text(&self) -> String {
        prtip_store::space::list::targets_text(&self.targets)
    }

    /// The command line, or a reconstruction when the log has none.
    pub fn command_or_targets(&self) -> String {
        if self.command_line.is_empty() {
            format!("prtip scan -p {} {}", self.ports, self.targets_text())
        } else {
            self.command_line.clone()
        }
    }

    /// Values for templates (times pre-formatted).
    pub(crate) fn view(&self) -> MetaView {
        MetaView {
            scan_id: self.scan_id,
            command_line: self.command_or_targets(),
            targets: self.targets_text(),
            ports: self.ports.clone(),
            scan_type: self.scan_type_words(),
            service_detection: self.service_detection,
            started: human_time(self.started_us),
            ended: self.ended_us.map(human_time),
            elapsed: format!("{:.2} s", self.elapsed_secs()),
            status: self.status_words(),
            complete: self.is_complete(),
            note: self.incomplete_note(),
            total_targets: self.total_targets,
            total_probes: self.total_probes,
            sent: self.counters.sent,
            replies: self.counters.replies,
            drops: self.counters.drops,
            rate: if self.elapsed_secs() > 0.0 {
                format!("{:.0}", self.counters.sent as f64 / self.elapsed_secs())
            } else {
                "-".into()
            },
            prtip_version: self.prtip_version.clone(),
            generated: human_time(self.generated_us),
        }
    }
}

/// [`ReportMeta`] as the HTML template sees it.
#[derive(Serialize)]
pub(crate) struct MetaView {
    scan_id: u64,
    command_line: String,
    targets: String,
    ports: String,
    scan_type: &'static str,
    service_detection: bool,
    started: String,
    ended: Option<String>,
    elapsed: String,
    status: String,
    complete: bool,
    note: Option<String>,
    total_targets: u64,
    total_probes: u64,
    sent: u64,
    replies: u64,
    drops: u64,
    rate: String,
    prtip_version: String,
    generated: String,
}

/// Whether a scan's command line asked for `--reason` (a view option of the
/// scan's normal output, as in nmap; kept in the log with the command line).
pub fn asks_reason(args: &[String]) -> bool {
    args.iter().any(|a| a == "--reason")
}

/// Arguments joined with spaces; an argument with a space or a shell metacharacter is single-quoted.
pub fn join_command_line(args: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let plain = !a.is_empty()
            && a.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '-' | '_' | '.' | '/' | ',' | ':' | '=' | '+' | '@' | '%')
            });
        if plain {
            out.push_str(a);
        } else {
            out.push('\'');
            out.push_str(&a.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    out
}

fn datetime(us: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 UTC time with microseconds, always six digits (`2025-11-25T14:15:00.123456Z`).
pub fn rfc3339(us: u64) -> String {
    let mut s = String::with_capacity(27);
    Rfc3339Writer::default().write(us, &mut s);
    s
}

/// Formats many RFC 3339 times fast: the date part is computed once per day.
#[derive(Default)]
pub(crate) struct Rfc3339Writer {
    day: Option<u64>,
    date: String,
}

impl Rfc3339Writer {
    /// Append the RFC 3339 form of `us` (Unix microseconds) to `out`.
    pub fn write(&mut self, us: u64, out: &mut String) {
        let secs = us / 1_000_000;
        let day = secs / 86_400;
        if self.day != Some(day) {
            let d = datetime(day * 86_400 * 1_000_000);
            self.date = format!("{}-{:02}-{:02}T", d.year(), d.month() as u8, d.day());
            self.day = Some(day);
        }
        let sod = secs % 86_400;
        out.push_str(&self.date);
        // `HH:MM:SS.ffffffZ` digit by digit (`write!` costs more than the rest of
        // a JSON line's fields).
        let mut b = *b"00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 2, sod / 3600);
        put(3, 2, sod / 60 % 60);
        put(6, 2, sod % 60);
        put(9, 6, us % 1_000_000);
        out.push_str(std::str::from_utf8(&b).expect("ASCII digits"));
    }
}

/// nmap-style time in UTC: `Tue Nov 25 14:15:00 2025 UTC`.
pub fn ctime(us: u64) -> String {
    let d = datetime(us);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {} UTC",
        &d.weekday().to_string()[..3],
        &d.month().to_string()[..3],
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.year()
    )
}

/// `2025-11-25 14:15:00 UTC`.
pub fn human_time(us: u64) -> String {
    let d = datetime(us);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_in_utc() {
        // 2025-11-25T14:15:00.5Z
        let us = 1_764_080_100_500_000;
        assert_eq!(rfc3339(us), "2025-11-25T14:15:00.500000Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        let mut w = Rfc3339Writer::default();
        let mut s = String::new();
        w.write(us + 86_400_000_000 - 1, &mut s);
        s.push(' ');
        w.write(us + 86_400_000_000 * 40, &mut s);
        assert_eq!(s, "2025-11-26T14:15:00.499999Z 2026-01-04T14:15:00.500000Z");
        assert_eq!(ctime(us), "Tue Nov 25 14:15:00 2025 UTC");
        assert_eq!(human_time(us), "2025-11-25 14:15:00 UTC");
    }

    #[test]
    fn fast_rfc3339_equals_the_formatted_one() {
        let mut w = Rfc3339Writer::default();
        let mut us = 1_764_080_100_000_000u64;
        for i in 0..20_000u64 {
            us += i * 7_919_993 % 86_400_000_000 + 1;
            let d = datetime(us);
            let want = format!(
                "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                d.year(),
                d.month() as u8,
                d.day(),
                d.hour(),
                d.minute(),
                d.second(),
                us % 1_000_000
            );
            let mut got = String::new();
            w.write(us, &mut got);
            assert_eq!(got, want);
        }
    }

    #[test]
    fn command_lines_are_quoted_for_a_shell() {
        let args: Vec<String> = ["prtip", "scan", "-p", "22,80", "a b", "it's"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            join_command_line(&args),
            "prtip scan -p 22,80 'a b' 'it'\\''s'"
        );
    }
}
