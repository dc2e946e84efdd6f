//! What `prtip scan` prints while a scan runs, besides its results: the
//! progress line, the `--stats-every` status lines, and what `-v`, `-vv` and
//! `-d` add.
//!
//! Owns [`Show`] (the flags, checked once), [`Screen`] (the one writer of the
//! terminal's last line: a line printed above the progress line — a
//! "Discovered" line, a status or debug line — clears it and draws it again
//! under the new line at once) and [`status_line`] (the figures, measured as
//! prtip-store measures progress: the first pass). Never prints results or
//! reads the log.
//!
//! What each flag adds (as in `prtip scan --help`):
//! - no flag: open ports as found, a progress line redrawn in place on a
//!   terminal; when stderr is not a terminal (nohup, CI) a plain status line
//!   every 30 s;
//! - `-v`: the plan at the start (hosts, ports, probes, rate, retries, wait,
//!   seed, log), a line when service detection starts, and the plain status
//!   line every 10 s when stderr is not a terminal;
//! - `-vv`: also the reason, TTL and round-trip time on each "Discovered" line;
//! - `-d`: also each lifecycle event as the log gets it (samples, pause,
//!   resume, services, the end); `-dd`: also every reply;
//! - `--stats-every TIME`: a status line every TIME, on a terminal too (above
//!   the progress line), like nmap's `Stats:` line;
//! - `--quiet`: no open ports and no periodic lines unless `--stats-every` asks.

use prtip_engine::scan::ScanControl;
use prtip_store::event::Event;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::Duration;

/// When stderr is not a terminal: a status line this often (`-v`: [`PLAIN_EVERY_V`]).
pub const PLAIN_EVERY: Duration = Duration::from_secs(30);
/// When stderr is not a terminal, with `-v`.
pub const PLAIN_EVERY_V: Duration = Duration::from_secs(10);

/// What to print besides the results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Show {
    /// `--quiet`: no open ports as found, no periodic lines (unless `stats_every`).
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    /// `-d` count.
    pub debug: u8,
    /// `--stats-every TIME`.
    pub stats_every: Option<Duration>,
}

impl Show {
    /// The defaults, with `--quiet` as given (`replay`, `history resume`).
    pub fn quiet(quiet: bool) -> Show {
        Show {
            quiet,
            ..Show::default()
        }
    }

    /// How often a permanent status line is printed: `--stats-every`; else,
    /// when stderr is not a terminal, every [`PLAIN_EVERY`] ([`PLAIN_EVERY_V`]
    /// with `-v`) unless `--quiet`; else never (the terminal has the progress line).
    pub fn stats_interval(&self, tty: bool) -> Option<Duration> {
        match self.stats_every {
            Some(d) => Some(d),
            None if tty || self.quiet => None,
            None if self.verbose > 0 || self.debug > 0 => Some(PLAIN_EVERY_V),
            None => Some(PLAIN_EVERY),
        }
    }

    /// The `-d` line for an event, if `-d` shows it (`-dd`: replies too).
    pub fn debug_line(&self, event: &Event) -> Option<String> {
        if self.debug == 0 {
            return None;
        }
        Some(match event {
            Event::Reply(r) if self.debug >= 2 => format!(
                "debug: reply {}/{} on {} {} ({}, ttl {}, rtt {} us)",
                r.port,
                r.proto.as_str(),
                r.addr,
                r.state.as_str(),
                r.reason.as_str(),
                r.ttl,
                r.rtt_us
            ),
            Event::Sample(s) => format!(
                "debug: sample: {} sent, {} replies, {:.0} pps, rss {} KiB",
                s.counters.sent,
                s.counters.replies,
                s.pps,
                s.rss_bytes / 1024
            ),
            Event::Paused(p) => format!(
                "debug: paused at walk position {} ({})",
                p.next_index, p.reason
            ),
            Event::Resumed(r) => format!("debug: resumed from walk position {}", r.from_index),
            Event::Service(s) => format!(
                "debug: service {}/{} on {}: {} {} {} (confidence {:.2}, {})",
                s.port,
                s.proto.as_str(),
                s.addr,
                s.name,
                s.product,
                s.version,
                s.confidence,
                s.method
            ),
            Event::Banner(b) => format!(
                "debug: banner {}/{} on {}: {} bytes ({})",
                b.port,
                b.proto.as_str(),
                b.addr,
                b.bytes.len(),
                b.probe
            ),
            Event::Finished(f) => format!(
                "debug: finished: {} sent, {} replies",
                f.counters.sent, f.counters.replies
            ),
            Event::Failed(f) => format!("debug: failed: {}", f.message),
            _ => return None,
        })
    }
}

/// The terminal's last line: the progress line, drawn only on a terminal.
#[derive(Debug, Default)]
pub struct Screen {
    tty: bool,
    /// The progress text on screen now (empty: none).
    last: Mutex<String>,
}

impl Screen {
    /// A screen whose stderr is (`tty`) or is not a terminal.
    pub fn new(tty: bool) -> Screen {
        Screen {
            tty,
            last: Mutex::default(),
        }
    }

    fn last(&self) -> std::sync::MutexGuard<'_, String> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Draw `line` as the progress line (a terminal only).
    pub fn draw(&self, err: &mut dyn Write, line: &str) {
        if !self.tty {
            return;
        }
        let mut last = self.last();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        last.clear();
        last.push_str(line);
    }

    /// Print `text` as a line of its own to `out` above the progress line: the
    /// progress line is cleared first and drawn again under it at once (it was
    /// left erased until the next redraw).
    pub fn above(&self, out: &mut dyn Write, err: &mut dyn Write, text: &str) {
        let last = self.last();
        if self.tty && !last.is_empty() {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
        // A closed stdout must not stop the scan; the log has every reply.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        if self.tty && !last.is_empty() {
            let _ = write!(err, "{last}");
            let _ = err.flush();
        }
    }

    /// Erase the progress line (the end of the scan).
    pub fn clear(&self, err: &mut dyn Write) {
        let mut last = self.last();
        if self.tty && !last.is_empty() {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
        last.clear();
    }
}

/// Figures of the status line at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// Walk position reached (all passes).
    pub position: u64,
    /// Walk positions of the first pass.
    pub span: u64,
    /// Probes sent.
    pub sent: u64,
    /// Probes per second lately.
    pub pps: f64,
    /// Seconds left in the first pass (0: unknown or none).
    pub eta_secs: u64,
    /// Open ports found.
    pub open: u64,
    /// Hosts found up (host discovery; 0 without).
    pub hosts_up: u64,
    /// `-sV`: ports to detect (0: not in detection).
    pub detect_total: u64,
    /// `-sV`: ports detected.
    pub detect_done: u64,
    /// Held in place (SIGUSR1).
    pub held: bool,
}

impl Figures {
    /// The figures of `control` now (rate and ETA from the caller).
    pub fn of(control: &ScanControl, span: u64) -> Figures {
        let p = &control.progress;
        Figures {
            position: p.position.load(Relaxed),
            span,
            sent: p.sent.load(Relaxed),
            open: p.open.load(Relaxed),
            hosts_up: p.hosts_up.load(Relaxed),
            detect_total: p.detect_total.load(Relaxed),
            detect_done: p.detect_done.load(Relaxed),
            held: control.is_held(),
            ..Figures::default()
        }
    }
}

/// The status line: `sent 1200 · 10.0k pps · 32.4% · ETA 0:25 · open 3`
/// (the percentage is prtip-store's one definition: the first pass; a retry
/// pass is named), or in `-sV`: `service detection: 3 of 9 ports · open 9`.
pub fn status_line(f: &Figures) -> String {
    let held = if f.held {
        " · paused (SIGUSR2 resumes)"
    } else {
        ""
    };
    if f.detect_total > 0 {
        return format!(
            "service detection: {} of {} ports · open {}{held}",
            f.detect_done.min(f.detect_total),
            f.detect_total,
            f.open
        );
    }
    let span = f.span.max(1);
    let retry = if f.position > span {
        format!(" · retry pass {}", f.position / span)
    } else {
        String::new()
    };
    let pct = prtip_store::progress_at(f.position, f.span) * 100.0;
    // Host discovery: hosts up, which are not open ports.
    let up = if f.hosts_up > 0 {
        format!(" · up {}", f.hosts_up)
    } else {
        String::new()
    };
    format!(
        "sent {} · {:.1}k pps · {pct:.1}%{retry} · ETA {}:{:02}{up} · open {}{held}",
        f.sent,
        f.pps / 1000.0,
        f.eta_secs / 60,
        f.eta_secs % 60,
        f.open
    )
}

/// `H:MM:SS`.
pub fn clock(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19, item 7: a "Discovered" line no longer erases the progress
    /// line until its next redraw: the line is cleared, the text printed, and
    /// the progress drawn again at once.
    #[test]
    fn a_line_above_redraws_the_progress_line_at_once() {
        let screen = Screen::new(true);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        screen.draw(&mut err, "sent 10 · 50.0%");
        err.clear();
        screen.above(
            &mut out,
            &mut err,
            "Discovered open port 80/tcp on 198.19.0.1",
        );
        assert_eq!(out, b"Discovered open port 80/tcp on 198.19.0.1\n");
        assert_eq!(err, b"\r\x1b[2Ksent 10 \xc2\xb7 50.0%");
    }

    #[test]
    fn no_terminal_no_control_characters() {
        let screen = Screen::new(false);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        screen.draw(&mut err, "sent 10");
        screen.above(&mut out, &mut err, "Stats: 0:00:01 elapsed; sent 10");
        screen.clear(&mut err);
        assert!(err.is_empty());
        assert_eq!(out, b"Stats: 0:00:01 elapsed; sent 10\n");
    }

    #[test]
    fn the_status_line_measures_the_first_pass() {
        let f = Figures {
            position: 30,
            span: 20,
            sent: 25,
            open: 2,
            ..Figures::default()
        };
        assert_eq!(
            status_line(&f),
            "sent 25 · 0.0k pps · 100.0% · retry pass 1 · ETA 0:00 · open 2"
        );
        let f = Figures {
            position: 5,
            span: 20,
            ..f
        };
        assert!(status_line(&f).contains(" 25.0% "), "{}", status_line(&f));
        let swept = Figures { hosts_up: 3, ..f };
        assert!(
            status_line(&swept).ends_with(" · up 3 · open 2"),
            "{}",
            status_line(&swept)
        );
        let f = Figures {
            detect_total: 9,
            detect_done: 3,
            ..f
        };
        assert_eq!(status_line(&f), "service detection: 3 of 9 ports · open 2");
    }

    #[test]
    fn periodic_lines_where_no_terminal_shows_progress() {
        let d = Show::default();
        assert_eq!(d.stats_interval(true), None);
        assert_eq!(d.stats_interval(false), Some(PLAIN_EVERY));
        let v = Show { verbose: 1, ..d };
        assert_eq!(v.stats_interval(false), Some(PLAIN_EVERY_V));
        assert_eq!(Show::quiet(true).stats_interval(false), None);
        let s = Show {
            quiet: true,
            stats_every: Some(Duration::from_millis(500)),
            ..d
        };
        assert_eq!(s.stats_interval(true), Some(Duration::from_millis(500)));
    }
}
