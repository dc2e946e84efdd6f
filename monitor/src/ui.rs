//! Rendering: pure functions from [`App`] to a ratatui frame.
//!
//! [`draw`] lays out the header, the tab bar, the current screen, any dialog
//! and the status bar. Every piece of remote text (banners, service, product,
//! version, host names) goes through [`crate::sanitize()`] here, at the last
//! moment before it enters a buffer. This module never changes the app, reads
//! files or looks at the clock.

use crate::app::{App, Dialog, ExportMenu, FilterBuilder, Level, Status, Tab, CRITERIA};
use crate::fmt::{fmt_bytes, fmt_clock, fmt_count, fmt_duration, fmt_rtt, fmt_si};
use crate::metrics::Series;
use crate::sanitize::{sanitize, sanitize_bytes};
use prtip_export::Format;
use prtip_store::ResultRow;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Cell, Chart, Clear, Dataset, Gauge, GraphType, Paragraph, Row, Sparkline, Table,
    Tabs, Wrap,
};
use ratatui::Frame;

/// Draw the whole monitor.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let [header, tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, app);
    draw_tabs(frame, tabs, app);
    match app.tab {
        Tab::Progress => draw_progress(frame, body, app),
        Tab::Results => draw_results(frame, body, app),
        Tab::Dashboard => draw_dashboard(frame, body, app),
    }
    match &app.dialog {
        Some(Dialog::Filter(b)) => draw_filter_builder(frame, body, b),
        Some(Dialog::Export(m)) => draw_export_menu(frame, body, app, m),
        Some(Dialog::Help) => draw_help(frame, body),
        None => {}
    }
    draw_status(frame, status, app);
}

fn status_style(s: &Status) -> Style {
    match s {
        Status::Running => Style::new().fg(Color::Green).bold(),
        Status::Paused { .. } => Style::new().fg(Color::Yellow).bold(),
        Status::Finished => Style::new().fg(Color::Cyan).bold(),
        Status::Failed(_) | Status::Interrupted | Status::Damaged(_) => {
            Style::new().fg(Color::Red).bold()
        }
        Status::Waiting => Style::new().fg(Color::Gray),
    }
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut spans = vec![Span::styled(
        " prtip monitor ",
        Style::new().bold().reversed(),
    )];
    match &app.scan {
        Some(s) => {
            spans.push(Span::raw(format!(" scan {} ", s.scan_id)));
            spans.push(Span::styled(app.status.label(), status_style(&app.status)));
            if let Some(pid) = app.pid {
                spans.push(Span::raw(format!(" pid {pid}")));
            }
            spans.push(Span::raw(format!(" │ {} │ ports {}", s.targets, s.ports)));
        }
        None => {
            spans.push(Span::raw(" "));
            spans.push(Span::styled(app.status.label(), status_style(&app.status)));
            spans.push(Span::raw(format!(
                " │ waiting for {}",
                sanitize(&app.log_dir.display().to_string())
            )));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_tabs(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let titles: Vec<Line<'_>> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| Line::from(format!("{} {}", i + 1, t.title())))
        .collect();
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::new().bold().reversed())
            .divider("│"),
        area,
    );
}

fn draw_status(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let line = if let Some(e) = app.export.as_ref().filter(|e| e.result.is_none()) {
        let pct = (e.done * 100).checked_div(e.total).unwrap_or(0);
        Line::from(format!(
            " exporting {} to {}: {}/{} rows ({pct}%)",
            e.format,
            sanitize(&e.path.display().to_string()),
            fmt_count(e.done),
            fmt_count(e.total)
        ))
    } else if let Some((level, text)) = &app.notice {
        let style = match level {
            Level::Info => Style::new().fg(Color::Cyan),
            Level::Error => Style::new().fg(Color::Red).bold(),
        };
        Line::from(Span::styled(format!(" {}", sanitize(text)), style))
    } else {
        Line::from(" q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help")
            .style(Style::new().fg(Color::DarkGray))
    };
    frame.render_widget(Paragraph::new(line), area);
}

// ---------------------------------------------------------------- progress

fn draw_progress(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let [gauge_area, mid, events_area] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(11),
        Constraint::Min(3),
    ])
    .areas(area);

    let total = app.pass_span();
    let pct = app.percent();
    let mut title = vec![Span::raw(" Progress ")];
    if let Status::Paused { reason, next_index } = &app.status {
        title.push(Span::styled(
            format!(
                " PAUSED ({reason}) at probe {} - press r to resume ",
                fmt_count(*next_index)
            ),
            Style::new().fg(Color::Black).bg(Color::Yellow).bold(),
        ));
    }
    let label = format!(
        "{pct:.1}% ({} / {} probes)",
        fmt_count(app.probes_done()),
        fmt_count(total)
    );
    frame.render_widget(
        Gauge::default()
            .block(Block::bordered().title(Line::from(title)))
            .gauge_style(Style::new().fg(Color::Green).bg(Color::Black))
            .ratio((pct / 100.0).clamp(0.0, 1.0))
            .label(label),
        gauge_area,
    );

    let [counters_area, spark_area] =
        Layout::horizontal([Constraint::Length(34), Constraint::Min(10)]).areas(mid);
    let c = &app.counters;
    let eta = match app.eta_secs() {
        Some(s) => fmt_duration(s),
        None => match app.status {
            Status::Finished => "done".into(),
            _ => "-".into(),
        },
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("Elapsed", fmt_duration(app.elapsed_us() / 1_000_000)),
        ("ETA", eta),
        ("Probes sent", fmt_count(c.sent)),
        ("Replies", fmt_count(c.replies)),
        ("Rate", format!("{} pps", fmt_si(app.rate_pps()))),
        ("Open ports", fmt_count(app.table.open_count().max(c.open))),
        ("Results", fmt_count(app.table.len() as u64)),
        (
            "Drops / invalid",
            format!("{} / {}", fmt_count(c.drops), fmt_count(c.invalid)),
        ),
        (
            "Checkpoint",
            app.checkpoint.map_or("-".into(), |cp| {
                format!("{} @ {}", fmt_count(cp.next_index), fmt_clock(cp.time_us))
            }),
        ),
    ];
    if app.table.hosts_up() > 0 {
        // Host discovery: hosts up are not open ports.
        rows.insert(5, ("Hosts up", fmt_count(app.table.hosts_up())));
    }
    let lines: Vec<Line<'_>> = rows
        .into_iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<16}"), Style::new().bold()),
                Span::raw(v),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Counters ")),
        counters_area,
    );

    let data: Vec<u64> = app
        .dash
        .probe_rate
        .values()
        .map(|v| v.max(0.0) as u64)
        .collect();
    let now = app.dash.probe_rate.last().unwrap_or(0.0);
    let inner_w = spark_area.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(inner_w)..];
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(
                " Probe rate, last 60 s: {} pps (max {}) ",
                fmt_si(now),
                fmt_si(app.dash.probe_rate.max())
            )))
            .style(Style::new().fg(Color::Green))
            .data(shown),
        spark_area,
    );

    let [events_area, open_area] =
        Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
            .areas(events_area);
    let h = open_area.height.saturating_sub(2) as usize;
    let open: Vec<Line<'_>> = app
        .recent_open
        .iter()
        .rev()
        .take(h)
        .map(|o| {
            let svc = app
                .table
                .get(o.addr, o.proto, o.port)
                .and_then(|r| r.service.as_ref())
                .map(|s| sanitize(&s.name).into_owned())
                .unwrap_or_default();
            Line::from(vec![
                Span::styled(
                    format!("{} ", fmt_clock(o.time_us)),
                    Style::new().fg(Color::DarkGray),
                ),
                Span::raw(format!(
                    "{:<22}",
                    format!("{}:{}/{}", o.addr, o.port, o.proto.as_str())
                )),
                Span::styled(svc, Style::new().fg(Color::Green)),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(open).block(Block::bordered().title(" Open ports, newest first ")),
        open_area,
    );
    let h = events_area.height.saturating_sub(2) as usize;
    let lines: Vec<Line<'_>> = app
        .events
        .iter()
        .skip(app.events.len().saturating_sub(h))
        .map(|e| {
            Line::from(vec![
                Span::styled(
                    format!("{} ", fmt_clock(e.time_us)),
                    Style::new().fg(Color::DarkGray),
                ),
                Span::raw(e.text.clone()),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Scan events (UTC) ")),
        events_area,
    );
}

// ---------------------------------------------------------------- results

/// The status line of the results screen, e.g.
/// `Showing 42/1000 results (filtered) · sort: port ↑ · filter: state open`.
pub fn results_status_line(app: &App) -> String {
    let shown = app.table.view_len();
    let total = app.table.len();
    let arrow = if app.descending { "↓" } else { "↑" };
    match &app.filter {
        Some(f) => format!(
            "Showing {shown}/{total} results (filtered) · sort: {} {arrow} · filter: {}",
            app.sort.name(),
            f.source()
        ),
        None => format!(
            "Showing {shown}/{total} results · sort: {} {arrow}",
            app.sort.name()
        ),
    }
}

fn version_text(r: &ResultRow) -> String {
    match &r.service {
        Some(s) => {
            let mut v = s.product.clone();
            if !s.version.is_empty() {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(&s.version);
            }
            sanitize(&v).into_owned()
        }
        None => String::new(),
    }
}

fn draw_results(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let [table_area, detail_area, status_area] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(5),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_detail(frame, detail_area, app);
    let visible = table_area.height.saturating_sub(3).max(1) as usize; // borders + header
    let n = app.table.view_len();
    let offset = (app.selected / visible) * visible;
    let state_style = |s: prtip_store::PortState| match s {
        prtip_store::PortState::Open => Style::new().fg(Color::Green),
        prtip_store::PortState::Closed => Style::new().fg(Color::Red),
        _ => Style::new().fg(Color::Yellow),
    };
    let rows: Vec<Row<'_>> = (offset..n.min(offset + visible))
        .filter_map(|i| app.table.view_row(i).map(|r| (i, r)))
        .map(|(i, r)| {
            let addr = match &r.hostname {
                Some(h) => format!("{} ({})", r.addr, sanitize(h)),
                None => r.addr.to_string(),
            };
            let row = Row::new(vec![
                Cell::from(addr),
                Cell::from(format!("{}/{}", r.port, r.proto.as_str())),
                Cell::from(r.state.as_str()).style(state_style(r.state)),
                Cell::from(
                    r.service
                        .as_ref()
                        .map_or(String::new(), |s| sanitize(&s.name).into_owned()),
                ),
                Cell::from(version_text(r)),
                Cell::from(fmt_rtt(f64::from(r.rtt_us))),
                Cell::from(r.banner.as_deref().map(sanitize_bytes).unwrap_or_default()),
            ]);
            if i == app.selected {
                row.style(Style::new().reversed())
            } else {
                row
            }
        })
        .collect();
    let header = Row::new([
        "ADDRESS", "PORT", "STATE", "SERVICE", "VERSION", "RTT", "BANNER",
    ])
    .style(Style::new().bold().underlined());
    let table = Table::new(
        rows,
        [
            Constraint::Length(22),
            Constraint::Length(9),
            Constraint::Length(13),
            Constraint::Length(12),
            Constraint::Length(22),
            Constraint::Length(9),
            Constraint::Min(10),
        ],
    )
    .header(header)
    .block(Block::bordered().title(" Results "));
    frame.render_widget(table, table_area);
    frame.render_widget(
        Paragraph::new(format!(" {}", results_status_line(app))).style(Style::new().bold()),
        status_area,
    );
}

/// The selected row in full: state, reason, TTL, RTT, service with
/// confidence, and the whole banner (sanitised, wrapped).
fn draw_detail(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let block = Block::bordered().title(" Selected ");
    let Some(r) = app.table.view_row(app.selected) else {
        frame.render_widget(Paragraph::new("no result selected").block(block), area);
        return;
    };
    let mut first = format!(
        "{}:{}/{} {} ({}, ttl {}, rtt {})",
        r.addr,
        r.port,
        r.proto.as_str(),
        r.state.as_str(),
        r.reason.as_str(),
        r.ttl,
        fmt_rtt(f64::from(r.rtt_us))
    );
    if let Some(h) = &r.hostname {
        first.push_str(&format!(" host {}", sanitize(h)));
    }
    if let Some(s) = &r.service {
        first.push_str(&format!(
            " │ {} {} {} {} conf {:.2} via {}",
            sanitize(&s.name),
            sanitize(&s.product),
            sanitize(&s.version),
            sanitize(&s.extra),
            s.confidence,
            sanitize(&s.method)
        ));
    }
    let banner = match &r.banner {
        Some(b) => format!("banner: {}", sanitize_bytes(b)),
        None => "banner: -".to_string(),
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(banner)])
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

// ---------------------------------------------------------------- dialogs

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_filter_builder(frame: &mut Frame<'_>, area: Rect, b: &FilterBuilder) {
    let popup = centered(area, 96, 22);
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .title(" Filter builder ")
        .title_bottom(
            Line::from(
                " Tab/↑↓ field · type to edit · Ctrl-U clear field · Enter apply · Esc cancel ",
            )
            .centered(),
        )
        .border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let mut lines: Vec<Line<'_>> = Vec::new();
    for (i, c) in CRITERIA.iter().enumerate() {
        let focused = i == b.focus;
        let bad = b.error.as_ref().is_some_and(|e| e.0 == i);
        let label_style = if focused {
            Style::new().bold().reversed()
        } else {
            Style::new().bold()
        };
        let value = &b.values[i];
        let mut spans = vec![
            Span::styled(format!(" {:<14}", c.label()), label_style),
            Span::raw(" "),
        ];
        if value.is_empty() {
            spans.push(Span::styled(c.hint(), Style::new().fg(Color::DarkGray)));
        } else {
            let style = if bad {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            };
            spans.push(Span::styled(sanitize(value).into_owned(), style));
        }
        if focused {
            spans.push(Span::styled("▏", Style::new().fg(Color::Cyan)));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::raw(""));
    let expr = b
        .expression
        .clone()
        .unwrap_or_else(|| "(no filter: every result)".into());
    lines.push(Line::from(vec![
        Span::styled(" Filter: ", Style::new().bold()),
        Span::raw(sanitize(&expr).into_owned()),
    ]));
    match (&b.error, b.preview) {
        (Some((i, col, width, msg)), _) => {
            let label = CRITERIA[*i].label();
            lines.push(Line::from(Span::styled(
                format!(" ✗ {label}: {msg}"),
                Style::new().fg(Color::Red).bold(),
            )));
            lines.push(Line::from(format!("   {}", sanitize(&b.values[*i]))));
            lines.push(Line::from(Span::styled(
                format!("   {}{}", " ".repeat(col - 1), "^".repeat(*width)),
                Style::new().fg(Color::Red),
            )));
        }
        (None, Some((m, total))) => {
            lines.push(Line::from(vec![
                Span::styled(" Preview: ", Style::new().bold()),
                Span::styled(
                    format!(
                        "{} of {} results match",
                        fmt_count(m as u64),
                        fmt_count(total as u64)
                    ),
                    Style::new().fg(Color::Green),
                ),
            ]));
        }
        (None, None) => {}
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn draw_export_menu(frame: &mut Frame<'_>, area: Rect, app: &App, m: &ExportMenu) {
    let popup = centered(area, 78, 10);
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .title(" Export ")
        .title_bottom(
            Line::from(" ←→ format · Tab field · Space toggle · Enter export · Esc close ")
                .centered(),
        )
        .border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [fmt_line, file_line, rows_line, _gap, bar_line, _rest] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(inner);
    let label = |i: usize, text: &'static str| {
        let st = if m.focus == i {
            Style::new().bold().reversed()
        } else {
            Style::new().bold()
        };
        Span::styled(format!(" {text:<10}"), st)
    };
    let mut spans = vec![label(0, "Format"), Span::raw(" ")];
    for (i, f) in Format::ALL.iter().enumerate() {
        let st = if i == m.format {
            Style::new().fg(Color::Black).bg(Color::Cyan).bold()
        } else {
            Style::new()
        };
        spans.push(Span::styled(format!(" {} ", f.name()), st));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), fmt_line);
    let mut file = vec![
        label(1, "File"),
        Span::raw(" "),
        Span::raw(sanitize(&m.path).into_owned()),
    ];
    if m.focus == 1 {
        file.push(Span::styled("▏", Style::new().fg(Color::Cyan)));
    }
    frame.render_widget(Paragraph::new(Line::from(file)), file_line);
    let rows_text = match (&app.filter, m.filtered) {
        (Some(_), true) => format!(
            "[x] only the current filter ({} rows)",
            fmt_count(app.table.view_len() as u64)
        ),
        (Some(_), false) => format!(
            "[ ] only the current filter (all {} rows)",
            fmt_count(app.table.len() as u64)
        ),
        (None, _) => format!(
            "all {} rows (no filter set)",
            fmt_count(app.table.len() as u64)
        ),
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            label(2, "Rows"),
            Span::raw(" "),
            Span::raw(rows_text),
        ])),
        rows_line,
    );
    if let Some(e) = &app.export {
        let ratio = if e.total > 0 {
            (e.done as f64 / e.total as f64).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let text = match &e.result {
            None => format!("{}/{} rows", fmt_count(e.done), fmt_count(e.total)),
            Some(Ok(n)) => format!(
                "done: {} rows in {}",
                fmt_count(*n),
                sanitize(&e.path.display().to_string())
            ),
            Some(Err(msg)) => format!("failed: {}", sanitize(msg)),
        };
        let color = match &e.result {
            Some(Err(_)) => Color::Red,
            _ => Color::Green,
        };
        let [l, g] =
            Layout::horizontal([Constraint::Length(12), Constraint::Min(10)]).areas(bar_line);
        frame.render_widget(
            Paragraph::new(Span::styled(" Progress", Style::new().bold())),
            l,
        );
        frame.render_widget(
            Gauge::default()
                .gauge_style(Style::new().fg(color).bg(Color::Black))
                .ratio(ratio)
                .label(text),
            g,
        );
    }
}

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let popup = centered(area, 64, 18);
    frame.render_widget(Clear, popup);
    let keys = [
        ("1 2 3, Tab", "progress, results, dashboard"),
        ("f  /", "filter builder (Enter applies, Esc cancels)"),
        ("c", "clear the filter"),
        ("s  S", "sort by address/port/service/rtt; reverse"),
        ("↑ ↓ PgUp PgDn g G", "move in the results"),
        ("p", "pause the scan (SIGUSR1; it writes a checkpoint)"),
        ("r", "resume the scan (SIGUSR2)"),
        ("e", "export menu"),
        ("q  Esc", "quit the monitor (the scan keeps running)"),
    ];
    let lines: Vec<Line<'_>> = keys
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!(" {k:<18}"), Style::new().bold()),
                Span::raw(*v),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" Keys ")
                .title_bottom(Line::from(" any key closes ").centered())
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        popup,
    );
}

// ---------------------------------------------------------------- dashboard

const PALETTE: [Color; 8] = [
    Color::Green,
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Blue,
    Color::Red,
    Color::LightGreen,
    Color::LightCyan,
];

/// One line of a chart: name, points, colour.
type Line60 = (String, Vec<(f64, f64)>, Color);

struct ChartSpec {
    title: String,
    series: Vec<Line60>,
    y_max: f64,
    y_labels: Vec<String>,
}

fn render_chart(frame: &mut Frame<'_>, area: Rect, spec: ChartSpec) {
    let datasets: Vec<Dataset<'_>> = spec
        .series
        .iter()
        .map(|(_, data, color)| {
            Dataset::default()
                .marker(symbols::Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(*color))
                .data(data)
        })
        .collect();
    // The series names go in the title, in their colours (no legend box over the plot).
    let mut title = vec![Span::raw(format!(" {} ", spec.title))];
    if spec.series.len() > 1 {
        for (name, _, color) in &spec.series {
            title.push(Span::styled(format!("■{name} "), Style::new().fg(*color)));
        }
    }
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(Line::from(title)))
        .x_axis(
            Axis::default()
                .bounds([-59.0, 0.0])
                .labels(["-60s", "-30s", "now"])
                .style(Style::new().fg(Color::DarkGray)),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, spec.y_max])
                .labels(spec.y_labels)
                .style(Style::new().fg(Color::DarkGray)),
        )
        .legend_position(None);
    frame.render_widget(chart, area);
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

/// [`nice_max`] in binary units (`100 MiB`, `2 KiB`).
fn nice_bytes(v: f64) -> f64 {
    let mut unit = 1.0;
    while v / unit >= 1024.0 {
        unit *= 1024.0;
    }
    nice_max(v / unit) * unit
}

fn linear(
    title: String,
    series: Vec<(String, &Series, Color)>,
    fmt: fn(f64) -> String,
) -> ChartSpec {
    linear_with(title, series, fmt, nice_max)
}

fn linear_with(
    title: String,
    series: Vec<(String, &Series, Color)>,
    fmt: fn(f64) -> String,
    nice: fn(f64) -> f64,
) -> ChartSpec {
    let max = nice(series.iter().map(|(_, s, _)| s.max()).fold(0.0, f64::max));
    ChartSpec {
        title,
        series: series.into_iter().map(|(n, s, c)| (n, s.xy(), c)).collect(),
        y_max: max,
        y_labels: vec![fmt(0.0), fmt(max / 2.0), fmt(max)],
    }
}

fn draw_dashboard(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let d = &app.dash;
    let rows = Layout::vertical([Constraint::Ratio(1, 3); 3]).split(area);
    let cells: Vec<Rect> = rows
        .iter()
        .flat_map(|r| {
            Layout::horizontal([Constraint::Ratio(1, 2); 2])
                .split(*r)
                .to_vec()
        })
        .collect();

    // CPU per core.
    let now: Vec<String> = d
        .cpu
        .iter()
        .map(|s| format!("{:.0}%", s.last().unwrap_or(0.0)))
        .collect();
    let cpu = ChartSpec {
        title: format!(
            "CPU per core (host): {}",
            if now.is_empty() {
                "-".into()
            } else {
                now.join(" ")
            }
        ),
        series: d
            .cpu
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("cpu{i}"), s.xy(), PALETTE[i % PALETTE.len()]))
            .collect(),
        y_max: 100.0,
        y_labels: vec!["0%".into(), "50%".into(), "100%".into()],
    };
    render_chart(frame, cells[0], cpu);

    render_chart(
        frame,
        cells[1],
        linear_with(
            format!(
                "Resident memory (scan): {}",
                fmt_bytes(d.rss.last().unwrap_or(0.0))
            ),
            vec![("rss".into(), &d.rss, Color::Magenta)],
            |v| fmt_bytes(v).replace(".0 ", " "),
            nice_bytes,
        ),
    );

    // Network, log scale: y is log10(1 + bytes/s).
    let net = ChartSpec {
        title: format!(
            "Network/s (log scale): tx {} rx {}",
            fmt_bytes(d.net_tx.last().unwrap_or(0.0)),
            fmt_bytes(d.net_rx.last().unwrap_or(0.0))
        ),
        series: vec![
            ("tx".into(), d.net_tx.xy_log10(), Color::Green),
            ("rx".into(), d.net_rx.xy_log10(), Color::Cyan),
        ],
        // log10: 0 = 1 B/s, 3 = 1 KB/s, 6 = 1 MB/s, 9 = 1 GB/s, 12 = 1 TB/s.
        y_max: 12.0,
        y_labels: ["1B", "1K", "1M", "1G", "1T"].map(String::from).to_vec(),
    };
    render_chart(frame, cells[2], net);

    render_chart(
        frame,
        cells[3],
        linear_with(
            format!(
                "Log flushed/s: {} (total {})",
                fmt_bytes(d.log_rate.last().unwrap_or(0.0)),
                fmt_bytes(d.log_bytes_total as f64)
            ),
            vec![("log".into(), &d.log_rate, Color::Yellow)],
            |v| fmt_bytes(v).replace(".0 ", " "),
            nice_bytes,
        ),
    );

    // The rate governor's choice beside what was sent, and why it chose it.
    let mut rates = vec![
        ("probes".into(), &d.probe_rate, Color::Green),
        ("replies".into(), &d.reply_rate, Color::Cyan),
    ];
    let governed = match &d.governor {
        Some(g) if g.adaptive => {
            rates.push(("governor".into(), &d.governor_rate, Color::Yellow));
            format!(
                ", governor {}/s ({}{})",
                fmt_si(g.rate_mpps as f64 / 1000.0),
                g.reason.name(),
                if g.refs_sent > 0 {
                    format!(": {}/{} answered", g.refs_answered, g.refs_sent)
                } else {
                    String::new()
                }
            )
        }
        _ => String::new(),
    };
    render_chart(
        frame,
        cells[4],
        linear(
            format!(
                "Probe rate: {} pps, replies {}/s{governed}",
                fmt_si(d.probe_rate.last().unwrap_or(0.0)),
                fmt_si(d.reply_rate.last().unwrap_or(0.0))
            ),
            rates,
            fmt_si,
        ),
    );

    let all = &d.rtt_all;
    let whole = if all.is_empty() {
        "-".to_string()
    } else {
        format!(
            "p50 {} p99 {}",
            fmt_rtt(all.value_at_quantile(0.5) as f64),
            fmt_rtt(all.value_at_quantile(0.99) as f64)
        )
    };
    render_chart(
        frame,
        cells[5],
        linear(
            format!("RTT {whole}, {} replies", fmt_count(all.len())),
            vec![
                ("p50".into(), &d.rtt_p50, Color::Green),
                ("p90".into(), &d.rtt_p90, Color::Yellow),
                ("p99".into(), &d.rtt_p99, Color::Red),
            ],
            |v| if v <= 0.0 { "0".into() } else { fmt_rtt(v) },
        ),
    );
}
