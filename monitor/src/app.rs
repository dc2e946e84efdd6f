//! The monitor's state: events and key presses in, state out.
//!
//! [`App`] is pure: it folds scan events ([`App::apply`]), reacts to keys
//! ([`App::on_key`]) by changing screens and dialogs or by returning an
//! [`Action`] for the event loop to carry out (send a signal, start an
//! export, quit), and learns about the outside world only through calls
//! ([`App::tick`], [`App::signal_sent`], [`App::export_progress`], ...). It never
//! touches the terminal, the log files, the clock or other processes, so every
//! screen can be driven and rendered in tests.

use crate::fmt::{fmt_count, fmt_si};
use crate::metrics::{Dashboard, SystemSample};
use crate::sanitize::sanitize;
use crate::table::{ResultTable, SortKey};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use prtip_export::Format;
use prtip_filter::Filter;
use prtip_store::event::{Checkpoint, Counters, Event, ScanStarted};
use std::collections::VecDeque;
use std::path::PathBuf;

/// The screens, switched with `1` `2` `3` or Tab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    /// Percent, ETA, counters, rate sparkline, scan events.
    Progress,
    /// The result table.
    Results,
    /// CPU, memory, network, log, probe rate and RTT charts.
    Dashboard,
}

impl Tab {
    /// Every tab, in display order.
    pub const ALL: [Tab; 3] = [Tab::Progress, Tab::Results, Tab::Dashboard];
    /// Title shown in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Progress => "Progress",
            Tab::Results => "Results",
            Tab::Dashboard => "Dashboard",
        }
    }
}

/// What the log says about the scan.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// No `ScanStarted` yet (the log is empty or still being created).
    Waiting,
    /// Probing.
    Running,
    /// Paused on request; `next_index` is where resume continues.
    Paused {
        /// Why (`SIGUSR1`, `monitor`, `SIGINT`, ...).
        reason: String,
        /// Resume position.
        next_index: u64,
    },
    /// Walk complete.
    Finished,
    /// The scan reported a failure.
    Failed(String),
    /// The log has no end event and no process writes it any more (crash or kill).
    Interrupted,
    /// The log is damaged (a missing segment, a checksum failure): what was read
    /// before the damage is shown, nothing after it.
    Damaged(String),
}

impl Status {
    /// Upper-case label for the header.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Waiting => "WAITING",
            Status::Running => "RUNNING",
            Status::Paused { .. } => "PAUSED",
            Status::Finished => "FINISHED",
            Status::Failed(_) => "FAILED",
            Status::Interrupted => "INTERRUPTED",
            Status::Damaged(_) => "DAMAGED",
        }
    }
}

/// Which signal a key asks the loop to send to the scanning process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanSignal {
    /// `p`: SIGUSR1, pause in place (the scan writes Checkpoint + Paused).
    Pause,
    /// `r`: SIGUSR2, resume (the scan writes Resumed).
    Resume,
}

impl ScanSignal {
    /// The signal number.
    pub fn signo(self) -> i32 {
        match self {
            ScanSignal::Pause => libc::SIGUSR1,
            ScanSignal::Resume => libc::SIGUSR2,
        }
    }
    /// Signal name.
    pub fn name(self) -> &'static str {
        match self {
            ScanSignal::Pause => "SIGUSR1",
            ScanSignal::Resume => "SIGUSR2",
        }
    }
}

/// An export the user asked for in the export menu.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    /// Format.
    pub format: Format,
    /// Output file.
    pub path: PathBuf,
    /// Only rows matching this (the results view's filter), if chosen.
    pub filter: Option<Filter>,
}

/// Something the event loop must do for the app.
#[derive(Clone, Debug)]
pub enum Action {
    /// Leave the monitor (the scan is not touched).
    Quit,
    /// Send a signal to the scanning process.
    Signal {
        /// Process id from the log's `ScanStarted` / `Resumed`.
        pid: u32,
        /// Which.
        signal: ScanSignal,
    },
    /// Start an export in the background; report with
    /// [`App::export_progress`] and [`App::export_finished`].
    Export(ExportRequest),
}

/// One line of the scan's event history on the progress screen.
#[derive(Clone, Debug, PartialEq)]
pub struct EventLine {
    /// Unix time, microseconds.
    pub time_us: u64,
    /// What happened (already sanitised).
    pub text: String,
}

/// A port seen turning open, for the progress screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenPort {
    /// Address.
    pub addr: prtip_store::Addr,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub proto: prtip_store::Protocol,
    /// Unix time of the reply, µs.
    pub time_us: u64,
}

/// Severity of a status-bar notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Information.
    Info,
    /// Something failed.
    Error,
}

/// The criteria the filter builder offers, in display order.
pub const CRITERIA: [Criterion; 10] = [
    Criterion::Port,
    Criterion::Proto,
    Criterion::State,
    Criterion::Addr,
    Criterion::Service,
    Criterion::Version,
    Criterion::Banner,
    Criterion::Confidence,
    Criterion::Rtt,
    Criterion::Expression,
];

/// One field of the filter builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// `port VALUE` (list / ranges).
    Port,
    /// `proto VALUE`.
    Proto,
    /// `state VALUE`.
    State,
    /// `addr VALUE` (addresses / CIDRs).
    Addr,
    /// `service ~ "VALUE"` (regex).
    Service,
    /// `version contains "VALUE"` (substring).
    Version,
    /// `banner ~ "VALUE"` (regex).
    Banner,
    /// `confidence >= VALUE`.
    Confidence,
    /// `rtt < VALUE`.
    Rtt,
    /// Any expression of the filter language, and-ed with the rest.
    Expression,
}

impl Criterion {
    /// Field label.
    pub fn label(self) -> &'static str {
        match self {
            Criterion::Port => "Port",
            Criterion::Proto => "Protocol",
            Criterion::State => "State",
            Criterion::Addr => "Address",
            Criterion::Service => "Service ~",
            Criterion::Version => "Version ~=",
            Criterion::Banner => "Banner ~",
            Criterion::Confidence => "Confidence >=",
            Criterion::Rtt => "RTT <",
            Criterion::Expression => "Expression",
        }
    }
    /// Example shown in an empty field.
    pub fn hint(self) -> &'static str {
        match self {
            Criterion::Port => "e.g. 22,80,1-1024",
            Criterion::Proto => "e.g. tcp|udp",
            Criterion::State => "e.g. open,closed,filtered,open|filtered",
            Criterion::Addr => "e.g. 10.0.0.0/8,2001:db8::/32",
            Criterion::Service => "e.g. http|ssl (regex)",
            Criterion::Version => "e.g. 2.4 (substring)",
            Criterion::Banner => "e.g. ^SSH-2\\.0 (regex)",
            Criterion::Confidence => "e.g. 0.8",
            Criterion::Rtt => "e.g. 5ms",
            Criterion::Expression => "e.g. not addr 10.0.0.1 or has banner",
        }
    }
    /// The clause for `value`, and how many characters precede the value in it.
    pub fn clause(self, value: &str) -> (String, usize) {
        let quoted = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let (prefix, body) = match self {
            Criterion::Port => ("port ", value.to_string()),
            Criterion::Proto => ("proto ", value.to_string()),
            Criterion::State => ("state ", value.to_string()),
            Criterion::Addr => ("addr ", value.to_string()),
            Criterion::Service => ("service ~ ", quoted(value)),
            Criterion::Version => ("version contains ", quoted(value)),
            Criterion::Banner => ("banner ~ ", quoted(value)),
            Criterion::Confidence => ("confidence >= ", value.to_string()),
            Criterion::Rtt => ("rtt < ", value.to_string()),
            Criterion::Expression => ("(", format!("{value})")),
        };
        let quote = usize::from(matches!(
            self,
            Criterion::Service | Criterion::Version | Criterion::Banner
        ));
        (format!("{prefix}{body}"), prefix.chars().count() + quote)
    }
}

/// The filter builder dialog (`f`).
#[derive(Clone, Debug, Default)]
pub struct FilterBuilder {
    /// One text value per [`CRITERIA`] entry.
    pub values: [String; 10],
    /// Focused field.
    pub focus: usize,
    /// The combined expression (`None` when every field is empty = no filter).
    pub expression: Option<String>,
    /// The first field that does not parse: (field index, column within the
    /// value, caret width, message).
    pub error: Option<(usize, usize, usize, String)>,
    /// Rows the combined filter matches (the live preview), and the total.
    pub preview: Option<(usize, usize)>,
    compiled: Option<Filter>,
}

impl FilterBuilder {
    /// Parse every field, combine the clauses with `and`, and count matches.
    pub fn recompute(&mut self, table: &ResultTable) {
        self.error = None;
        self.compiled = None;
        self.preview = None;
        let mut clauses = Vec::new();
        for (i, c) in CRITERIA.iter().enumerate() {
            let v = self.values[i].trim();
            if v.is_empty() {
                continue;
            }
            let (clause, offset) = c.clause(v);
            if let Err(e) = Filter::parse(&clause) {
                if self.error.is_none() {
                    let lead = self.values[i]
                        .chars()
                        .take_while(|c| c.is_whitespace())
                        .count();
                    let col = (e.column() + lead).saturating_sub(offset).max(1);
                    let width = e.width().min(self.values[i].chars().count().max(1));
                    self.error = Some((i, col, width, e.message().to_string()));
                }
            }
            clauses.push(clause);
        }
        if clauses.is_empty() {
            self.expression = None;
            self.preview = Some((table.len(), table.len()));
            return;
        }
        let expr = clauses.join(" and ");
        self.expression = Some(expr.clone());
        if self.error.is_none() {
            match Filter::parse(&expr) {
                Ok(f) => {
                    self.preview = Some((table.count_matching(&f), table.len()));
                    self.compiled = Some(f);
                }
                Err(e) => {
                    self.error = Some((
                        CRITERIA.len() - 1,
                        e.column(),
                        e.width(),
                        e.message().to_string(),
                    ))
                }
            }
        }
    }
}

/// The export menu (`e`).
#[derive(Clone, Debug)]
pub struct ExportMenu {
    /// Index into [`Format::ALL`].
    pub format: usize,
    /// Output file name as typed.
    pub path: String,
    /// Export only the rows of the current filter.
    pub filtered: bool,
    /// Focused field: 0 format, 1 file name, 2 filtered.
    pub focus: usize,
    /// Whether the user edited the file name (else it follows the format).
    pub path_edited: bool,
    /// Scan id for the default file name.
    pub scan_id: u64,
}

impl ExportMenu {
    fn default_path(scan_id: u64, f: Format) -> String {
        format!("prtip-scan-{scan_id}.{}", f.extension())
    }
    /// The selected format.
    pub fn selected(&self) -> Format {
        Format::ALL[self.format]
    }
}

/// A running or finished export, for the progress bar.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportState {
    /// Format.
    pub format: Format,
    /// Output file.
    pub path: PathBuf,
    /// Rows read so far.
    pub done: u64,
    /// Rows to read.
    pub total: u64,
    /// `None` while running; then `Ok(rows written)` or `Err(message)`.
    pub result: Option<Result<u64, String>>,
}

/// Dialog on top of the current screen.
#[derive(Clone, Debug)]
pub enum Dialog {
    /// The filter builder.
    Filter(Box<FilterBuilder>),
    /// The export menu.
    Export(ExportMenu),
    /// Key help.
    Help,
}

/// What the monitor knows, derived from the log's first event.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanInfo {
    /// History id.
    pub scan_id: u64,
    /// Targets, space-separated, sanitised.
    pub targets: String,
    /// Canonical port list.
    pub ports: String,
    /// Size of the probe index space.
    pub total_probes: u64,
    /// Walk positions of the first pass ([`prtip_store::pass_span`]).
    pub pass_span: u64,
    /// Number of target addresses.
    pub total_targets: u64,
    /// Unix time the scan started, µs.
    pub started_us: u64,
    /// Configured rate (0 = unlimited).
    pub rate: u64,
}

/// The whole monitor state. See the module docs.
pub struct App {
    /// Log directory being shown (for the header).
    pub log_dir: PathBuf,
    /// Scan facts from `ScanStarted`.
    pub scan: Option<ScanInfo>,
    /// The `ScanStarted` event itself (exports need the whole spec).
    pub started: Option<Box<ScanStarted>>,
    /// Process scanning now (from `ScanStarted`, then `Resumed`).
    pub pid: Option<u32>,
    /// Status per the log.
    pub status: Status,
    /// Whether a writer held the log's lock at the last poll.
    pub writer_alive: bool,
    /// Latest counters (Sample, Checkpoint, Finished).
    pub counters: Counters,
    /// Latest durable checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// Unix time of the last event, µs.
    pub last_event_us: u64,
    /// Unix time of the end (Finished/Failed/Paused), µs, for elapsed time.
    pub ended_us: Option<u64>,
    /// Events shown on the progress screen, newest last.
    pub events: VecDeque<EventLine>,
    /// Folded results and their view.
    pub table: ResultTable,
    /// Filter of the results view.
    pub filter: Option<Filter>,
    /// Builder values that produced `filter` (reopened with `f`).
    pub builder_values: [String; 10],
    /// Sort column.
    pub sort: SortKey,
    /// Sort direction.
    pub descending: bool,
    /// First selected row of the results view.
    pub selected: usize,
    /// Current tab.
    pub tab: Tab,
    /// Open dialog.
    pub dialog: Option<Dialog>,
    /// Dashboard series.
    pub dash: Dashboard,
    /// Status-bar message.
    pub notice: Option<(Level, String)>,
    /// Current or last export.
    pub export: Option<ExportState>,
    /// The monitor's clock (set by [`App::tick`]), µs.
    pub now_us: u64,
    /// A signal that was sent and whose answer (Paused/Resumed) has not arrived.
    pub pending_signal: Option<ScanSignal>,
    /// Whether the loop should leave (set by `q`).
    pub quit: bool,
    /// The latest ports found open, oldest first (at most 100).
    pub recent_open: VecDeque<OpenPort>,
    events_seen: u64,
    view_force: bool,
}

const MAX_EVENT_LINES: usize = 200;

impl App {
    /// A monitor for the log in `log_dir`, before any event.
    pub fn new(log_dir: impl Into<PathBuf>) -> App {
        App {
            log_dir: log_dir.into(),
            scan: None,
            started: None,
            pid: None,
            status: Status::Waiting,
            writer_alive: false,
            counters: Counters::default(),
            checkpoint: None,
            last_event_us: 0,
            ended_us: None,
            events: VecDeque::new(),
            table: ResultTable::default(),
            filter: None,
            builder_values: Default::default(),
            sort: SortKey::Address,
            descending: false,
            selected: 0,
            tab: Tab::Progress,
            dialog: None,
            dash: Dashboard::default(),
            notice: None,
            export: None,
            now_us: 0,
            pending_signal: None,
            quit: false,
            recent_open: VecDeque::new(),
            events_seen: 0,
            view_force: true,
        }
    }

    /// Start with a filter (e.g. `prtip monitor --filter EXPR`): it appears in the
    /// builder's expression field.
    pub fn with_filter(mut self, filter: Filter) -> App {
        self.builder_values[CRITERIA.len() - 1] = filter.source().to_string();
        self.filter = Some(filter);
        self
    }

    fn log_event(&mut self, time_us: u64, text: String) {
        if self.events.len() == MAX_EVENT_LINES {
            self.events.pop_front();
        }
        self.events.push_back(EventLine { time_us, text });
    }

    /// Events folded so far.
    pub fn events_seen(&self) -> u64 {
        self.events_seen
    }

    /// Fold one event from the log.
    pub fn apply(&mut self, ev: &Event) {
        self.events_seen += 1;
        // The results table projects a small scan's silent ports from these
        // (the spec and probe count of ScanStarted, the walk's checkpoints).
        if matches!(
            ev,
            Event::ScanStarted(_)
                | Event::Checkpoint(_)
                | Event::Paused(_)
                | Event::Finished(_)
                | Event::PortPhase(_)
        ) {
            self.table.apply(ev);
        }
        match ev {
            Event::ScanStarted(s) => self.on_started(s),
            Event::Reply(r) => {
                let was_open = self
                    .table
                    .get(r.addr, r.proto, r.port)
                    .is_some_and(|row| row.state == prtip_store::PortState::Open);
                if r.state == prtip_store::PortState::Open && !was_open {
                    if self.recent_open.len() == 100 {
                        self.recent_open.pop_front();
                    }
                    self.recent_open.push_back(OpenPort {
                        addr: r.addr,
                        port: r.port,
                        proto: r.proto,
                        time_us: r.time_us,
                    });
                }
                self.table.apply(ev);
                self.dash.on_reply_rtt(r.rtt_us);
                self.last_event_us = self.last_event_us.max(r.time_us);
            }
            Event::Banner(b) => {
                self.table.apply(ev);
                self.last_event_us = self.last_event_us.max(b.time_us);
            }
            Event::Service(s) => {
                self.table.apply(ev);
                self.last_event_us = self.last_event_us.max(s.time_us);
            }
            Event::Checkpoint(c) => {
                self.checkpoint = Some(*c);
                self.merge_counters(&c.counters);
                self.last_event_us = self.last_event_us.max(c.time_us);
            }
            Event::Paused(p) => {
                self.status = Status::Paused {
                    reason: sanitize(&p.reason).into_owned(),
                    next_index: p.next_index,
                };
                if self.pending_signal == Some(ScanSignal::Pause) {
                    self.pending_signal = None;
                }
                self.ended_us = Some(p.time_us);
                self.last_event_us = self.last_event_us.max(p.time_us);
                let sent = self
                    .checkpoint
                    .map_or(self.counters.sent, |c| c.counters.sent);
                self.log_event(
                    p.time_us,
                    format!(
                        "Paused ({}) at probe {}; {} sent; checkpoint written",
                        sanitize(&p.reason),
                        fmt_count(p.next_index),
                        fmt_count(sent)
                    ),
                );
            }
            Event::Resumed(r) => {
                self.status = Status::Running;
                self.pid = Some(r.pid);
                self.ended_us = None;
                if self.pending_signal == Some(ScanSignal::Resume) {
                    self.pending_signal = None;
                }
                self.last_event_us = self.last_event_us.max(r.time_us);
                self.log_event(
                    r.time_us,
                    format!(
                        "Resumed from probe index {} by pid {}",
                        fmt_count(r.from_index),
                        r.pid
                    ),
                );
            }
            Event::Finished(f) => {
                self.status = Status::Finished;
                self.merge_counters(&f.counters);
                self.counters = f.counters;
                self.ended_us = Some(f.time_us);
                self.last_event_us = self.last_event_us.max(f.time_us);
                self.log_event(
                    f.time_us,
                    format!(
                        "Finished: {} probes sent, {} replies, {} open",
                        fmt_count(f.counters.sent),
                        fmt_count(f.counters.replies),
                        fmt_count(f.counters.open)
                    ),
                );
            }
            Event::Failed(f) => {
                let msg = sanitize(&f.message).into_owned();
                self.status = Status::Failed(msg.clone());
                self.ended_us = Some(f.time_us);
                self.last_event_us = self.last_event_us.max(f.time_us);
                self.log_event(f.time_us, format!("Failed: {msg}"));
            }
            Event::Sample(s) => {
                self.merge_counters(&s.counters);
                self.last_event_us = self.last_event_us.max(s.time_us);
                self.dash.on_sample(s, self.now_us);
            }
            Event::Governor(g) => {
                self.dash.on_governor(g);
                self.last_event_us = self.last_event_us.max(g.time_us);
                if let Some(text) = governor_line(g) {
                    self.log_event(g.time_us, text);
                }
            }
            Event::PortPhase(p) => {
                // The walk the checkpoints count is the port scan's from here.
                if let (Some(info), Some(s)) = (self.scan.as_mut(), self.started.as_ref()) {
                    info.total_probes = p.total_probes;
                    info.pass_span = prtip_store::pass_span(
                        s.spec.scan_type,
                        s.spec.max_retries,
                        p.total_probes,
                    );
                }
                self.checkpoint = None;
                self.last_event_us = self.last_event_us.max(p.time_us);
                self.log_event(
                    p.time_us,
                    format!(
                        "Host discovery done: {} hosts up; their port scan: {} probes",
                        fmt_count(p.hosts.len() as u64),
                        fmt_count(p.total_probes)
                    ),
                );
            }
            Event::ExportComplete(e) => {
                self.log_event(
                    e.time_us,
                    format!(
                        "Exported {} rows as {} to {}",
                        fmt_count(e.rows),
                        sanitize(&e.format),
                        sanitize(&e.path)
                    ),
                );
            }
        }
    }

    fn merge_counters(&mut self, c: &Counters) {
        // Counters only grow; a checkpoint written after a later Sample is older.
        let m = &mut self.counters;
        m.sent = m.sent.max(c.sent);
        m.replies = m.replies.max(c.replies);
        m.invalid = m.invalid.max(c.invalid);
        m.open = m.open.max(c.open);
        m.closed = m.closed.max(c.closed);
        m.drops = m.drops.max(c.drops);
    }

    fn on_started(&mut self, s: &ScanStarted) {
        self.started = Some(Box::new(s.clone()));
        self.scan = Some(ScanInfo {
            scan_id: s.scan_id,
            targets: sanitize(&prtip_store::space::list::targets_text(&s.spec.targets))
                .into_owned(),
            ports: sanitize(&s.spec.ports).into_owned(),
            total_probes: s.total_probes,
            pass_span: prtip_store::pass_span(s.spec.scan_type, s.spec.max_retries, s.total_probes),
            total_targets: s.total_targets,
            started_us: s.time_us,
            rate: s.spec.rate_mpps / 1000,
        });
        self.pid = Some(s.pid);
        if self.status == Status::Waiting {
            self.status = Status::Running;
        }
        self.last_event_us = self.last_event_us.max(s.time_us);
        // Host names are remote-controlled only through DNS, but the user may
        // have typed anything: keep the raw name for filters, sanitise at draw.
        self.table.set_hostnames(
            s.spec
                .resolved
                .iter()
                .map(|h| (h.addr, h.name.clone()))
                .collect(),
        );
        self.log_event(
            s.time_us,
            format!(
                "Started scan {} by pid {}: {} targets, {} probes",
                s.scan_id,
                s.pid,
                fmt_count(s.total_targets),
                fmt_count(s.total_probes)
            ),
        );
    }

    /// Reading the log failed on damage: show it as [`Status::Damaged`] (never
    /// as an interrupted scan with a progress that stops at the damage).
    pub fn log_damaged(&mut self, why: String) {
        self.status = Status::Damaged(why.clone());
        self.notice = Some((Level::Error, format!("reading the log failed: {why}")));
    }

    /// The once-a-second update: clock, writer liveness, dashboard readings.
    /// A log with no end event whose writer is gone becomes [`Status::Interrupted`].
    pub fn tick(&mut self, now_us: u64, writer_alive: bool, sys: &SystemSample) {
        self.now_us = now_us;
        self.writer_alive = writer_alive;
        if !writer_alive && matches!(self.status, Status::Running) && self.scan.is_some() {
            self.status = Status::Interrupted;
            self.ended_us = Some(self.last_event_us);
            self.log_event(
                now_us,
                "The scan process is gone without a final event (interrupted)".into(),
            );
        } else if writer_alive && self.status == Status::Interrupted {
            self.status = Status::Running;
            self.ended_us = None;
        }
        let live = writer_alive && matches!(self.status, Status::Running);
        self.dash.on_tick(sys, live);
    }

    /// Update the clock only (tests, and the loop between ticks).
    pub fn set_now(&mut self, now_us: u64) {
        self.now_us = now_us;
    }

    /// Bring the results view up to date (call before drawing). The view is
    /// only rebuilt while something shows it (the results screen, the export
    /// menu); otherwise it stays stale until then.
    pub fn refresh_view(&mut self) {
        let shown = self.tab == Tab::Results || matches!(self.dialog, Some(Dialog::Export(_)));
        if !shown {
            return;
        }
        let force = std::mem::take(&mut self.view_force);
        self.table
            .refresh(self.filter.as_ref(), self.sort, self.descending, force);
        let n = self.table.view_len();
        if self.selected >= n {
            self.selected = n.saturating_sub(1);
        }
    }

    /// Walk positions of the scan's first pass ([`prtip_store::pass_span`]): the
    /// total progress and the ETA are measured on (retry passes resend only the
    /// unanswered probes, and are not counted).
    pub fn pass_span(&self) -> u64 {
        self.scan.as_ref().map_or(0, |s| s.pass_span)
    }

    /// First-pass walk positions reached: the larger of the last checkpoint and
    /// probes sent, capped at the first pass; all of it once finished.
    pub fn probes_done(&self) -> u64 {
        let span = self.pass_span();
        if self.status == Status::Finished {
            return span;
        }
        let cp = self.checkpoint.map_or(0, |c| c.next_index);
        cp.max(self.counters.sent).min(span)
    }

    /// Percent done (0..=100).
    pub fn percent(&self) -> f64 {
        if self.status == Status::Finished {
            return 100.0;
        }
        prtip_store::progress_at(self.probes_done(), self.pass_span()) * 100.0
    }

    /// Current probe rate: the newest Sample's, else the average since the start.
    pub fn rate_pps(&self) -> f64 {
        if let Some(r) = self.dash.probe_rate.last() {
            if matches!(self.status, Status::Running) {
                return r;
            }
        }
        let elapsed = self.elapsed_us() as f64 / 1e6;
        if elapsed > 0.0 {
            self.counters.sent as f64 / elapsed
        } else {
            0.0
        }
    }

    /// Microseconds since the scan started (to its end, if it ended).
    pub fn elapsed_us(&self) -> u64 {
        let Some(s) = &self.scan else { return 0 };
        let end = self.ended_us.unwrap_or(self.now_us.max(self.last_event_us));
        end.saturating_sub(s.started_us)
    }

    /// Seconds left at the current rate, while running.
    pub fn eta_secs(&self) -> Option<u64> {
        if !matches!(self.status, Status::Running) {
            return None;
        }
        let left = self.pass_span().checked_sub(self.probes_done())?;
        let rate = self.rate_pps();
        if rate <= 0.0 || left == 0 {
            // Retry passes and -sV have no first-pass positions left to time.
            return None;
        }
        Some((left as f64 / rate).ceil() as u64)
    }

    fn set_notice(&mut self, level: Level, text: impl Into<String>) {
        self.notice = Some((level, text.into()));
    }

    /// The loop sent `signal` to `pid` (or failed to: `Err(reason)`).
    pub fn signal_sent(&mut self, pid: u32, signal: ScanSignal, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.pending_signal = Some(signal);
                let what = match signal {
                    ScanSignal::Pause => "pause",
                    ScanSignal::Resume => "resume",
                };
                self.set_notice(
                    Level::Info,
                    format!(
                        "{what} requested: {} sent to pid {pid}; waiting for the scan to write {}",
                        signal.name(),
                        if signal == ScanSignal::Pause {
                            "Paused"
                        } else {
                            "Resumed"
                        }
                    ),
                );
            }
            Err(e) => self.set_notice(
                Level::Error,
                format!("could not send {} to pid {pid}: {e}", signal.name()),
            ),
        }
    }

    /// Export progress: rows read so far.
    pub fn export_progress(&mut self, done: u64) {
        if let Some(e) = &mut self.export {
            e.done = done;
        }
    }

    /// Export finished: rows written, or why it failed.
    pub fn export_finished(&mut self, result: Result<u64, String>) {
        if let Some(e) = &mut self.export {
            match &result {
                Ok(rows) => {
                    e.done = e.total;
                    self.notice = Some((
                        Level::Info,
                        format!(
                            "exported {} rows as {} to {}",
                            fmt_count(*rows),
                            e.format,
                            e.path.display()
                        ),
                    ));
                }
                Err(m) => self.notice = Some((Level::Error, format!("export failed: {m}"))),
            }
            e.result = Some(result);
        }
    }

    /// Is an export running?
    pub fn exporting(&self) -> bool {
        self.export.as_ref().is_some_and(|e| e.result.is_none())
    }

    /// React to a key. Returns what the loop must do, if anything.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return Some(Action::Quit);
        }
        match self.dialog.take() {
            Some(Dialog::Filter(b)) => return self.filter_key(*b, key),
            Some(Dialog::Export(m)) => return self.export_key(m, key),
            Some(Dialog::Help) => {
                // Any key closes help.
                return None;
            }
            None => {}
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => {
                self.quit = true;
                return Some(Action::Quit);
            }
            KeyCode::Char('1') => self.tab = Tab::Progress,
            KeyCode::Char('2') => self.tab = Tab::Results,
            KeyCode::Char('3') => self.tab = Tab::Dashboard,
            KeyCode::Tab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                self.tab = Tab::ALL[(i + 1) % Tab::ALL.len()];
            }
            KeyCode::BackTab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                self.tab = Tab::ALL[(i + Tab::ALL.len() - 1) % Tab::ALL.len()];
            }
            KeyCode::Char('?') | KeyCode::Char('h') => self.dialog = Some(Dialog::Help),
            KeyCode::Char('f') | KeyCode::Char('/') => {
                let mut b = FilterBuilder {
                    values: self.builder_values.clone(),
                    ..FilterBuilder::default()
                };
                b.recompute(&self.table);
                self.dialog = Some(Dialog::Filter(Box::new(b)));
            }
            KeyCode::Char('c') if self.filter.is_some() => {
                self.filter = None;
                self.builder_values = Default::default();
                self.view_force = true;
                self.set_notice(Level::Info, "filter cleared");
            }
            KeyCode::Char('e') => {
                let scan_id = self.scan.as_ref().map_or(0, |s| s.scan_id);
                let format = Format::ALL
                    .iter()
                    .position(|f| *f == Format::Csv)
                    .unwrap_or(0);
                self.dialog = Some(Dialog::Export(ExportMenu {
                    format,
                    path: ExportMenu::default_path(scan_id, Format::ALL[format]),
                    filtered: self.filter.is_some(),
                    focus: 0,
                    path_edited: false,
                    scan_id,
                }));
            }
            KeyCode::Char('p') => return self.request_signal(ScanSignal::Pause),
            KeyCode::Char('r') => return self.request_signal(ScanSignal::Resume),
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.view_force = true;
            }
            KeyCode::Char('S') => {
                self.descending = !self.descending;
                self.view_force = true;
            }
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::PageDown => self.move_selection(20),
            KeyCode::PageUp => self.move_selection(-20),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => {
                self.refresh_view();
                self.selected = self.table.view_len().saturating_sub(1)
            }
            _ => {}
        }
        None
    }

    fn move_selection(&mut self, by: i64) {
        self.refresh_view();
        let n = self.table.view_len() as i64;
        self.selected = (self.selected as i64 + by).clamp(0, (n - 1).max(0)) as usize;
    }

    fn request_signal(&mut self, signal: ScanSignal) -> Option<Action> {
        let Some(pid) = self.pid else {
            self.set_notice(
                Level::Error,
                "no scan process known yet (the log has no ScanStarted)",
            );
            return None;
        };
        let ok = match signal {
            ScanSignal::Pause => matches!(self.status, Status::Running),
            ScanSignal::Resume => matches!(self.status, Status::Paused { .. }),
        };
        if !self.writer_alive {
            self.set_notice(
                Level::Error,
                format!(
                    "the scan is {} and no process is writing its log; resume it with `prtip replay` (`prtip history resume`)",
                    self.status.label().to_lowercase()
                ),
            );
            return None;
        }
        if !ok {
            let msg = match signal {
                ScanSignal::Pause => format!(
                    "cannot pause: the scan is {}",
                    self.status.label().to_lowercase()
                ),
                ScanSignal::Resume => format!(
                    "cannot resume: the scan is {}",
                    self.status.label().to_lowercase()
                ),
            };
            self.set_notice(Level::Error, msg);
            return None;
        }
        Some(Action::Signal { pid, signal })
    }

    fn filter_key(&mut self, mut b: FilterBuilder, key: KeyEvent) -> Option<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => return None, // dialog dropped, filter unchanged
            KeyCode::Enter => {
                b.recompute(&self.table);
                if let Some((i, _, _, m)) = &b.error {
                    self.set_notice(Level::Error, format!("{}: {m}", CRITERIA[*i].label()));
                    self.dialog = Some(Dialog::Filter(Box::new(b)));
                    return None;
                }
                self.filter = b.compiled.take();
                self.builder_values = b.values.clone();
                self.view_force = true;
                self.selected = 0;
                self.tab = Tab::Results;
                match &self.filter {
                    Some(f) => {
                        let f = f.source().to_string();
                        self.set_notice(Level::Info, format!("filter: {f}"))
                    }
                    None => self.set_notice(Level::Info, "filter cleared"),
                }
                return None;
            }
            KeyCode::Tab | KeyCode::Down => b.focus = (b.focus + 1) % CRITERIA.len(),
            KeyCode::BackTab | KeyCode::Up => {
                b.focus = (b.focus + CRITERIA.len() - 1) % CRITERIA.len()
            }
            KeyCode::Backspace => {
                b.values[b.focus].pop();
                b.recompute(&self.table);
            }
            KeyCode::Char('u') if ctrl => {
                b.values[b.focus].clear();
                b.recompute(&self.table);
            }
            KeyCode::Char(c) if !ctrl => {
                b.values[b.focus].push(c);
                b.recompute(&self.table);
            }
            _ => {}
        }
        self.dialog = Some(Dialog::Filter(Box::new(b)));
        None
    }

    fn export_key(&mut self, mut m: ExportMenu, key: KeyEvent) -> Option<Action> {
        match key.code {
            KeyCode::Esc => return None,
            KeyCode::Tab | KeyCode::Down => m.focus = (m.focus + 1) % 3,
            KeyCode::BackTab | KeyCode::Up => m.focus = (m.focus + 2) % 3,
            KeyCode::Left | KeyCode::Right if m.focus == 0 => {
                let n = Format::ALL.len();
                m.format = if key.code == KeyCode::Right {
                    (m.format + 1) % n
                } else {
                    (m.format + n - 1) % n
                };
                if !m.path_edited {
                    m.path = ExportMenu::default_path(m.scan_id, m.selected());
                }
            }
            KeyCode::Char(' ') if m.focus == 2 => m.filtered = !m.filtered,
            KeyCode::Char(' ') if m.focus == 0 => {
                m.format = (m.format + 1) % Format::ALL.len();
                if !m.path_edited {
                    m.path = ExportMenu::default_path(m.scan_id, m.selected());
                }
            }
            KeyCode::Backspace if m.focus == 1 => {
                m.path.pop();
                m.path_edited = true;
            }
            KeyCode::Char(c) if m.focus == 1 && !key.modifiers.contains(KeyModifiers::CONTROL) => {
                m.path.push(c);
                m.path_edited = true;
            }
            KeyCode::Enter => {
                let path = m.path.trim();
                if path.is_empty() {
                    self.set_notice(Level::Error, "export needs a file name");
                    self.dialog = Some(Dialog::Export(m));
                    return None;
                }
                if self.exporting() {
                    self.set_notice(Level::Error, "an export is already running");
                    self.dialog = Some(Dialog::Export(m));
                    return None;
                }
                let filter = if m.filtered {
                    self.filter.clone()
                } else {
                    None
                };
                let req = ExportRequest {
                    format: m.selected(),
                    path: PathBuf::from(path),
                    filter,
                };
                self.export = Some(ExportState {
                    format: req.format,
                    path: req.path.clone(),
                    done: 0,
                    total: self.table.len() as u64,
                    result: None,
                });
                self.set_notice(
                    Level::Info,
                    format!("exporting {} to {}", req.format, req.path.display()),
                );
                // The menu stays open to show the progress bar; Esc closes it
                // and the export continues.
                self.dialog = Some(Dialog::Export(m));
                return Some(Action::Export(req));
            }
            _ => {}
        }
        self.dialog = Some(Dialog::Export(m));
        None
    }
}

/// The event-log line of a governor decision (`None` for a plain increase: the
/// dashboard's chart shows those).
fn governor_line(g: &prtip_store::event::Governor) -> Option<String> {
    use prtip_store::event::GovernorReason as R;
    let rate = |mpps: u64| fmt_si(mpps as f64 / 1000.0);
    let refs = format!("{} of {} re-probes answered", g.refs_answered, g.refs_sent);
    let net = g
        .net
        .map(|a| format!("{}/{}", a, g.net_prefix))
        .unwrap_or_default();
    Some(match g.reason {
        R::Start if g.adaptive => format!(
            "Rate governor on: starting at {}/s, ceiling {}/s, floor {}/s",
            rate(g.rate_mpps),
            rate(g.ceiling_mpps),
            rate(g.floor_mpps)
        ),
        R::Start => format!("Fixed rate: {}/s (no governor)", rate(g.rate_mpps)),
        R::Loss => format!(
            "Loss on the path ({refs}): rate down to {}/s",
            rate(g.rate_mpps)
        ),
        R::NetLoss => format!(
            "Loss towards {net} ({refs}): {net} at {}/s, the scan stays at {}/s",
            rate(g.net_rate_mpps),
            rate(g.rate_mpps)
        ),
        R::NetClear => format!("{net} answers again: back to the scan's rate"),
        R::UplinkDown => "Uplink failed: holding (checkpoint written)".to_string(),
        R::UplinkUp => format!("Uplink back: sending at {}/s", rate(g.rate_mpps)),
        R::Learned => format!("Rate governor learned {}/s", rate(g.rate_mpps)),
        R::Clear => return None,
    })
}
