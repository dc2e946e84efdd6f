//! Widget rendering against ratatui's TestBackend, with exact expected cells.
//!
//! Each screen is driven through the public `App` API (events in, keys in),
//! rendered with `prtip_monitor::draw` into a TestBackend, and compared cell by
//! cell (every symbol of every row) with the expected screen.

mod common;
use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use prtip_monitor::app::Dialog;
use prtip_monitor::metrics::SystemSample;
use prtip_monitor::{Action, App, Status, Tab};
use prtip_store::event::*;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

fn key(app: &mut App, code: KeyCode) -> Option<Action> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn typ(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

#[track_caller]
fn assert_screen(buf: &Buffer, expected: &[&str]) {
    let got = lines(buf);
    if got != expected {
        let mut msg = String::from("screen differs (got, then expected):\n");
        for (i, (g, e)) in got.iter().zip(expected.iter()).enumerate() {
            let mark = if g == e { ' ' } else { '!' };
            msg.push_str(&format!("{mark}{i:2} {g}\n    {e}\n"));
        }
        panic!("{msg}");
    }
}

/// Foreground colour of the first cell of `text` on row `y`.
fn fg_at(buf: &Buffer, y: u16, text: &str) -> Option<Color> {
    let row: Vec<char> = lines(buf)[y as usize].chars().collect();
    let needle: Vec<char> = text.chars().collect();
    let x = (0..row.len()).find(|&i| row[i..].starts_with(&needle))?;
    buf[(x as u16, y)].style().fg
}

/// The filter of the issue, typed into the builder field by field.
fn type_issue_filter(app: &mut App) {
    key(app, KeyCode::Char('f'));
    typ(app, "1-1024");
    key(app, KeyCode::Tab);
    typ(app, "tcp");
    key(app, KeyCode::Tab);
    typ(app, "open");
    key(app, KeyCode::Tab);
    key(app, KeyCode::Tab);
    typ(app, "http|ssl");
}

#[test]
fn progress_screen_shows_percent_eta_counters_sparkline_and_events() {
    let mut app = scan_app();
    let buf = render(&mut app, 120, 30);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 RUNNING pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                                                ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                                                   ",
            "┌ Progress ────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│████████████████████████████████████████████56.2% (9,000 / 16,000 probes)                                             │",
            "└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            "┌ Counters ──────────────────────┐┌ Probe rate, last 60 s: 300 pps (max 300) ──────────────────────────────────────────┐",
            "│Elapsed         0:00:30         ││██████████████████████████████                                                      │",
            "│ETA             0:00:24         ││██████████████████████████████                                                      │",
            "│Probes sent     9,000           ││██████████████████████████████                                                      │",
            "│Replies         900             ││██████████████████████████████                                                      │",
            "│Rate            300 pps         ││██████████████████████████████                                                      │",
            "│Open ports      4               ││██████████████████████████████                                                      │",
            "│Results         6               ││██████████████████████████████                                                      │",
            "│Drops / invalid 0 / 0           ││██████████████████████████████                                                      │",
            "│Checkpoint      8,700 @ 12:00:29││██████████████████████████████                                                      │",
            "└────────────────────────────────┘└────────────────────────────────────────────────────────────────────────────────────┘",
            "┌ Scan events (UTC) ─────────────────────────────────────────────────────┐┌ Open ports, newest first ──────────────────┐",
            "│12:00:00 Started scan 7 by pid 4242: 16 targets, 16,000 probes          ││12:00:01 198.19.0.3:8080/tcp   http-proxy   │",
            "│                                                                        ││12:00:01 198.19.0.2:443/tcp    ssl/http     │",
            "│                                                                        ││12:00:01 198.19.0.1:80/tcp     http         │",
            "│                                                                        ││12:00:01 198.19.0.1:22/tcp     ssh          │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "└────────────────────────────────────────────────────────────────────────┘└────────────────────────────────────────────┘",
            " q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help                                ",
        ],
    );
    assert_eq!(fg_at(&buf, 0, "RUNNING"), Some(Color::Green));
    assert_eq!(fg_at(&buf, 3, "████"), Some(Color::Green), "gauge");
    assert_eq!(fg_at(&buf, 6, "████"), Some(Color::Green), "sparkline");
}

#[test]
fn paused_scan_shows_the_banner_the_checkpoint_and_the_event() {
    let mut app = scan_app();
    app.apply(&Event::Checkpoint(Checkpoint {
        next_index: 9_000,
        counters: Counters {
            sent: 9_000,
            replies: 900,
            ..Counters::default()
        },
        time_us: T0 + 30_000_000,
    }));
    app.apply(&Event::Paused(Paused {
        next_index: 9_000,
        time_us: T0 + 30_000_000,
        reason: "SIGUSR1".into(),
    }));
    assert_eq!(
        app.status,
        Status::Paused {
            reason: "SIGUSR1".into(),
            next_index: 9_000
        }
    );
    // Results: the 6 answered ports and the 8,997 silent ones of the first
    // 9,000 probes (a small scan lists its silence; projected at the pause).
    let buf = render(&mut app, 120, 30);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 PAUSED pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                                                 ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                                                   ",
            "┌ Progress  PAUSED (SIGUSR1) at probe 9,000 - press r to resume ───────────────────────────────────────────────────────┐",
            "│████████████████████████████████████████████56.2% (9,000 / 16,000 probes)                                             │",
            "└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            "┌ Counters ──────────────────────┐┌ Probe rate, last 60 s: 300 pps (max 300) ──────────────────────────────────────────┐",
            "│Elapsed         0:00:30         ││██████████████████████████████                                                      │",
            "│ETA             -               ││██████████████████████████████                                                      │",
            "│Probes sent     9,000           ││██████████████████████████████                                                      │",
            "│Replies         900             ││██████████████████████████████                                                      │",
            "│Rate            300 pps         ││██████████████████████████████                                                      │",
            "│Open ports      4               ││██████████████████████████████                                                      │",
            "│Results         9,003           ││██████████████████████████████                                                      │",
            "│Drops / invalid 0 / 0           ││██████████████████████████████                                                      │",
            "│Checkpoint      9,000 @ 12:00:30││██████████████████████████████                                                      │",
            "└────────────────────────────────┘└────────────────────────────────────────────────────────────────────────────────────┘",
            "┌ Scan events (UTC) ─────────────────────────────────────────────────────┐┌ Open ports, newest first ──────────────────┐",
            "│12:00:00 Started scan 7 by pid 4242: 16 targets, 16,000 probes          ││12:00:01 198.19.0.3:8080/tcp   http-proxy   │",
            "│12:00:30 Paused (SIGUSR1) at probe 9,000; 9,000 sent; checkpoint written││12:00:01 198.19.0.2:443/tcp    ssl/http     │",
            "│                                                                        ││12:00:01 198.19.0.1:80/tcp     http         │",
            "│                                                                        ││12:00:01 198.19.0.1:22/tcp     ssh          │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "└────────────────────────────────────────────────────────────────────────┘└────────────────────────────────────────────┘",
            " q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help                                ",
        ],
    );
    assert_eq!(fg_at(&buf, 0, "PAUSED"), Some(Color::Yellow));
    assert_eq!(buf[(12, 2)].style().bg, Some(Color::Yellow), "pause banner");
}

#[test]
fn results_table_sorted_by_port_with_detail_and_status_line() {
    let mut app = scan_app();
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('s'));
    let buf = render(&mut app, 120, 20);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 RUNNING pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                                                ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                                                   ",
            "┌ Results ─────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│ADDRESS                PORT      STATE         SERVICE      VERSION                RTT       BANNER                   │",
            "│198.19.0.1             22/tcp    open          ssh          OpenSSH 9.2p1          1.20ms    SSH-2.0-OpenSSH_9.2p1 Deb│",
            "│198.19.0.2             23/tcp    closed                                            300us                              │",
            "│198.19.0.3             25/tcp    closed                                            350us                              │",
            "│198.19.0.1             80/tcp    open          http         Apache httpd 2.4.57    800us     HTTP/1.1 200 OK\\r\\n      │",
            "│198.19.0.2             443/tcp   open          ssl/http     nginx 1.24.0           2.50ms                             │",
            "│198.19.0.3             8080/tcp  open          http-proxy                          400us                              │",
            "│                                                                                                                      │",
            "│                                                                                                                      │",
            "└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            "┌ Selected ────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│198.19.0.1:22/tcp open (syn-ack, ttl 64, rtt 1.20ms) │ ssh OpenSSH 9.2p1  conf 1.00 via probe                         │",
            "│banner: SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n                                                                            │",
            "│                                                                                                                      │",
            "└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            " Showing 6/6 results · sort: port ↑                                                                                     ",
            " q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help                                ",
        ],
    );
}

#[test]
fn results_sort_by_service_and_rtt_and_reverse() {
    let mut app = scan_app();
    app.tab = Tab::Results;
    let order = |app: &mut App| -> Vec<String> {
        app.refresh_view();
        app.table
            .view()
            .map(|r| format!("{}:{}", r.addr, r.port))
            .collect()
    };
    assert_eq!(
        order(&mut app),
        [
            "198.19.0.1:22",
            "198.19.0.1:80",
            "198.19.0.2:23",
            "198.19.0.2:443",
            "198.19.0.3:25",
            "198.19.0.3:8080"
        ]
    );
    key(&mut app, KeyCode::Char('s')); // port
    key(&mut app, KeyCode::Char('s')); // service: named first (alphabetical), unnamed last
    assert_eq!(
        order(&mut app),
        [
            "198.19.0.1:80",
            "198.19.0.3:8080",
            "198.19.0.1:22",
            "198.19.0.2:443",
            "198.19.0.2:23",
            "198.19.0.3:25"
        ]
    );
    key(&mut app, KeyCode::Char('s')); // rtt
    assert_eq!(
        order(&mut app),
        [
            "198.19.0.2:23",
            "198.19.0.3:25",
            "198.19.0.3:8080",
            "198.19.0.1:80",
            "198.19.0.1:22",
            "198.19.0.2:443"
        ]
    );
    key(&mut app, KeyCode::Char('S'));
    assert_eq!(
        order(&mut app),
        [
            "198.19.0.2:443",
            "198.19.0.1:22",
            "198.19.0.1:80",
            "198.19.0.3:8080",
            "198.19.0.3:25",
            "198.19.0.2:23"
        ]
    );
    let buf = render(&mut app, 120, 20);
    assert_eq!(
        lines(&buf)[18],
        format!("{:<120}", " Showing 6/6 results · sort: rtt ↓")
    );
}

#[test]
fn filter_builder_fields_and_live_preview() {
    let mut app = scan_app();
    type_issue_filter(&mut app);
    let buf = render(&mut app, 120, 30);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 RUNNING pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                                                ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                                                   ",
            "┌ Progress ────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│████████████████████████████████████████████56.2% (9,000 / 16,000 probes)                                             │",
            "└───────────┌ Filter builder ──────────────────────────────────────────────────────────────────────────────┐───────────┘",
            "┌ Counters ─│ Port           1-1024                                                                        │───────────┐",
            "│Elapsed    │ Protocol       tcp                                                                           │           │",
            "│ETA        │ State          open                                                                          │           │",
            "│Probes sent│ Address        e.g. 10.0.0.0/8,2001:db8::/32                                                 │           │",
            "│Replies    │ Service ~      http|ssl▏                                                                     │           │",
            "│Rate       │ Version ~=     e.g. 2.4 (substring)                                                          │           │",
            "│Open ports │ Banner ~       e.g. ^SSH-2\\.0 (regex)                                                        │           │",
            "│Results    │ Confidence >=  e.g. 0.8                                                                      │           │",
            "│Drops / inv│ RTT <          e.g. 5ms                                                                      │           │",
            "│Checkpoint │ Expression     e.g. not addr 10.0.0.1 or has banner                                          │           │",
            "└───────────│                                                                                              │───────────┘",
            "┌ Scan event│ Filter: port 1-1024 and proto tcp and state open and service ~ \"http|ssl\"                    │───────────┐",
            "│12:00:00 St│ Preview: 2 of 6 results match                                                                │tp-proxy   │",
            "│           │                                                                                              │l/http     │",
            "│           │                                                                                              │tp         │",
            "│           │                                                                                              │h          │",
            "│           │                                                                                              │           │",
            "│           │                                                                                              │           │",
            "│           │                                                                                              │           │",
            "│           │                                                                                              │           │",
            "│           └──────── Tab/↑↓ field · type to edit · Ctrl-U clear field · Enter apply · Esc cancel ─────────┘           │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "└────────────────────────────────────────────────────────────────────────┘└────────────────────────────────────────────┘",
            " q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help                                ",
        ],
    );
    // Enter applies it: the results screen shows the filtered view.
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.tab, Tab::Results);
    let buf = render(&mut app, 120, 16);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 RUNNING pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                                                ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                                                   ",
            "┌ Results ─────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│ADDRESS                PORT      STATE         SERVICE      VERSION                RTT       BANNER                   │",
            "│198.19.0.1             80/tcp    open          http         Apache httpd 2.4.57    800us     HTTP/1.1 200 OK\\r\\n      │",
            "│198.19.0.2             443/tcp   open          ssl/http     nginx 1.24.0           2.50ms                             │",
            "│                                                                                                                      │",
            "│                                                                                                                      │",
            "└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            "┌ Selected ────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│198.19.0.1:80/tcp open (syn-ack, ttl 64, rtt 800us) │ http Apache httpd 2.4.57  conf 0.90 via probe                   │",
            "│banner: HTTP/1.1 200 OK\\r\\n                                                                                           │",
            "│                                                                                                                      │",
            "└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            " Showing 2/6 results (filtered) · sort: address ↑ · filter: port 1-1024 and proto tcp and state open and service ~ \"http",
            " filter: port 1-1024 and proto tcp and state open and service ~ \"http|ssl\"                                              ",
        ],
    );
    // Reopening shows the same fields; clearing them all and applying removes the filter.
    key(&mut app, KeyCode::Char('f'));
    let Some(Dialog::Filter(b)) = &app.dialog else {
        panic!("filter builder not open")
    };
    assert_eq!(b.values[0], "1-1024");
    assert_eq!(b.preview, Some((2, 6)));
    let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
    for _ in 0..10 {
        app.on_key(ctrl_u);
        key(&mut app, KeyCode::Tab);
    }
    key(&mut app, KeyCode::Enter);
    assert!(app.filter.is_none());
    app.refresh_view();
    assert_eq!(app.table.view_len(), 6);
}

#[test]
fn filter_builder_points_at_the_bad_part_of_a_field() {
    let mut app = scan_app();
    type_issue_filter(&mut app);
    key(&mut app, KeyCode::BackTab);
    typ(&mut app, "10.0.0.0/33");
    let buf = render(&mut app, 120, 30);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 RUNNING pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                                                ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                                                   ",
            "┌ Progress ────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│████████████████████████████████████████████56.2% (9,000 / 16,000 probes)                                             │",
            "└───────────┌ Filter builder ──────────────────────────────────────────────────────────────────────────────┐───────────┘",
            "┌ Counters ─│ Port           1-1024                                                                        │───────────┐",
            "│Elapsed    │ Protocol       tcp                                                                           │           │",
            "│ETA        │ State          open                                                                          │           │",
            "│Probes sent│ Address        10.0.0.0/33▏                                                                  │           │",
            "│Replies    │ Service ~      http|ssl                                                                      │           │",
            "│Rate       │ Version ~=     e.g. 2.4 (substring)                                                          │           │",
            "│Open ports │ Banner ~       e.g. ^SSH-2\\.0 (regex)                                                        │           │",
            "│Results    │ Confidence >=  e.g. 0.8                                                                      │           │",
            "│Drops / inv│ RTT <          e.g. 5ms                                                                      │           │",
            "│Checkpoint │ Expression     e.g. not addr 10.0.0.1 or has banner                                          │           │",
            "└───────────│                                                                                              │───────────┘",
            "┌ Scan event│ Filter: port 1-1024 and proto tcp and state open and addr 10.0.0.0/33 and service ~          │───────────┐",
            "│12:00:00 St│\"http|ssl\"                                                                                    │tp-proxy   │",
            "│           │ ✗ Address: prefix length `/33` must be 0-32 for 10.0.0.0                                     │l/http     │",
            "│           │   10.0.0.0/33                                                                                │tp         │",
            "│           │            ^^                                                                                │h          │",
            "│           │                                                                                              │           │",
            "│           │                                                                                              │           │",
            "│           │                                                                                              │           │",
            "│           │                                                                                              │           │",
            "│           └──────── Tab/↑↓ field · type to edit · Ctrl-U clear field · Enter apply · Esc cancel ─────────┘           │",
            "│                                                                        ││                                            │",
            "│                                                                        ││                                            │",
            "└────────────────────────────────────────────────────────────────────────┘└────────────────────────────────────────────┘",
            " q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help                                ",
        ],
    );
    assert_eq!(fg_at(&buf, 8, "10.0.0.0/33"), Some(Color::Red));
    // Enter refuses to apply a filter that does not parse.
    key(&mut app, KeyCode::Enter);
    assert!(app.filter.is_none());
    assert!(matches!(app.dialog, Some(Dialog::Filter(_))));
    // Esc leaves the filter as it was.
    key(&mut app, KeyCode::Esc);
    assert!(app.dialog.is_none());
    assert!(app.filter.is_none());
}

#[test]
fn dashboard_charts_sixty_seconds_of_cpu_memory_network_log_rate_and_rtt() {
    let mut app = scan_app();
    for s in 0..60u64 {
        let sys = SystemSample {
            time_us: T0 + (31 + s) * 1_000_000,
            cpu_per_core: vec![25.0, 75.0],
            scan_rss_bytes: Some(64 << 20),
            net_bytes: None,
            log_bytes_read: 0,
        };
        app.tick(sys.time_us, true, &sys);
        app.apply(&sample(31 + s, (31 + s) * 300, 300.0));
    }
    key(&mut app, KeyCode::Char('3'));
    let buf = render(&mut app, 120, 36);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 RUNNING pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                                                ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                                                   ",
            "┌ CPU per core (host): 25% 75% ■cpu0 ■cpu1 ────────────────┐┌ Resident memory (scan): 64.0 MiB ────────────────────────┐",
            "│100%│                                                     ││100 MiB│                                                  │",
            "│    │⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤││       │                                                  │",
            "│    │                                                     ││       │⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒│",
            "│50% │                                                     ││50 MiB │                                                  │",
            "│    │                                                     ││       │                                                  │",
            "│    │⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉││       │                                                  │",
            "│0%  │                                                     ││0 B    │                                                  │",
            "│    └─────────────────────────────────────────────────────││       └──────────────────────────────────────────────────│",
            "│ -60s                        -30s                      now││    -60s                      -30s                     now│",
            "└──────────────────────────────────────────────────────────┘└──────────────────────────────────────────────────────────┘",
            "┌ Network/s (log scale): tx 17.6 KiB rx 1.8 KiB ■tx ■rx ───┐┌ Log flushed/s: 1.2 KiB (total 105.5 KiB) ────────────────┐",
            "│1T │                                                      ││2 KiB│                                                    │",
            "│   │                                                      ││     │                                                    │",
            "│1G │                                                      ││     │⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀│",
            "│1M │                                                      ││1 KiB│                                                    │",
            "│   │⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀││     │                                                    │",
            "│1K │                                                      ││     │                                                    │",
            "│1B │                                                      ││0 B  │                                                    │",
            "│   └──────────────────────────────────────────────────────││     └────────────────────────────────────────────────────│",
            "│-60s                         -30s                      now││  -60s                        -30s                     now│",
            "└──────────────────────────────────────────────────────────┘└──────────────────────────────────────────────────────────┘",
            "┌ Probe rate: 300 pps, replies 30/s ■probes ■replies ──────┐┌ RTT p50 400us p99 2.50ms, 6 replies ■p50 ■p90 ■p99 ──────┐",
            "│500│                                                      ││5.00ms│                                                   │",
            "│   │                                                      ││      │                                                   │",
            "│   │⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤││      │⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤│",
            "│250│                                                      ││2.50ms│                                                   │",
            "│   │                                                      ││      │⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉│",
            "│   │                                                      ││      │⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒│",
            "│0  │⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒││0     │                                                   │",
            "│   └──────────────────────────────────────────────────────││      └───────────────────────────────────────────────────│",
            "│-60s                         -30s                      now││   -60s                        -30s                    now│",
            "└──────────────────────────────────────────────────────────┘└──────────────────────────────────────────────────────────┘",
            " q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help                                ",
        ],
    );
    assert_eq!(app.dash.cpu[0].len(), 60);
    assert_eq!(
        app.dash.probe_rate.len(),
        60,
        "the 30 older samples scrolled out"
    );
}

/// A banner, service strings and a failure message full of terminal escapes:
/// clear screen, cursor home, window title (OSC 0/2), colours, hidden text,
/// backspaces, 8-bit CSI, a right-to-left override and invalid UTF-8.
fn hostile(app: &mut App) {
    app.apply(&banner(
        3,
        8080,
        b"\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[31mRED\x1b[0m\r\n\x9b6n\xff",
    ));
    app.apply(&service(
        3,
        8080,
        "ht\x1b[8mtp",
        "evil\u{202e}gpj.exe",
        "1.0\x08\x08\x08",
        0.3,
    ));
    app.apply(&Event::Failed(Failed {
        time_us: T0 + 31_000_000,
        message: "boom\x1b]2;title\x07".into(),
    }));
}

#[track_caller]
fn assert_no_control_characters(buf: &Buffer) {
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let sym = buf[(x, y)].symbol();
            assert!(
                !sym.chars().any(prtip_monitor::sanitize::is_dangerous),
                "cell ({x},{y}) holds {sym:?}"
            );
        }
    }
}

#[test]
fn hostile_banner_and_service_text_are_shown_neutralised() {
    let mut app = scan_app();
    hostile(&mut app);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::End);
    let buf = render(&mut app, 120, 20);
    assert_no_control_characters(&buf);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 FAILED pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                                                 ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                                                   ",
            "┌ Results ─────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│ADDRESS                PORT      STATE         SERVICE      VERSION                RTT       BANNER                   │",
            "│198.19.0.1             22/tcp    open          ssh          OpenSSH 9.2p1          1.20ms    SSH-2.0-OpenSSH_9.2p1 Deb│",
            "│198.19.0.1             80/tcp    open          http         Apache httpd 2.4.57    800us     HTTP/1.1 200 OK\\r\\n      │",
            "│198.19.0.2             23/tcp    closed                                            300us                              │",
            "│198.19.0.2             443/tcp   open          ssl/http     nginx 1.24.0           2.50ms                             │",
            "│198.19.0.3             25/tcp    closed                                            350us                              │",
            "│198.19.0.3             8080/tcp  open          ht\\x1b[8mtp  evil\\u{202e}gpj.exe 1. 400us     \\x1b[2J\\x1b[H\\x1b]0;pwned│",
            "│                                                                                                                      │",
            "│                                                                                                                      │",
            "└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            "┌ Selected ────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│198.19.0.3:8080/tcp open (syn-ack, ttl 64, rtt 400us) │ ht\\x1b[8mtp evil\\u{202e}gpj.exe 1.0\\x08\\x08\\x08  conf 0.30 via│",
            "│probe                                                                                                                 │",
            "│banner: \\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\x1b[31mRED\\x1b[0m\\r\\n\\x9b6n\\xff                                                 │",
            "└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            " Showing 6/6 results · sort: address ↑                                                                                  ",
            " q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help                                ",
        ],
    );
    // The row's cells keep the table's styles: the banner did not set a colour.
    assert_eq!(fg_at(&buf, 9, "\\x1b[2J"), fg_at(&buf, 4, "SSH-2.0"));
    key(&mut app, KeyCode::Char('1'));
    let buf = render(&mut app, 120, 24);
    assert_no_control_characters(&buf);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 FAILED pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                                                 ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                                                   ",
            "┌ Progress ────────────────────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│████████████████████████████████████████████56.2% (9,000 / 16,000 probes)                                             │",
            "└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            "┌ Counters ──────────────────────┐┌ Probe rate, last 60 s: 300 pps (max 300) ──────────────────────────────────────────┐",
            "│Elapsed         0:00:31         ││██████████████████████████████                                                      │",
            "│ETA             -               ││██████████████████████████████                                                      │",
            "│Probes sent     9,000           ││██████████████████████████████                                                      │",
            "│Replies         900             ││██████████████████████████████                                                      │",
            "│Rate            290 pps         ││██████████████████████████████                                                      │",
            "│Open ports      4               ││██████████████████████████████                                                      │",
            "│Results         6               ││██████████████████████████████                                                      │",
            "│Drops / invalid 0 / 0           ││██████████████████████████████                                                      │",
            "│Checkpoint      8,700 @ 12:00:29││██████████████████████████████                                                      │",
            "└────────────────────────────────┘└────────────────────────────────────────────────────────────────────────────────────┘",
            "┌ Scan events (UTC) ─────────────────────────────────────────────────────┐┌ Open ports, newest first ──────────────────┐",
            "│12:00:00 Started scan 7 by pid 4242: 16 targets, 16,000 probes          ││12:00:01 198.19.0.3:8080/tcp   ht\\x1b[8mtp  │",
            "│12:00:31 Failed: boom\\x1b]2;title\\x07                                   ││12:00:01 198.19.0.2:443/tcp    ssl/http     │",
            "│                                                                        ││12:00:01 198.19.0.1:80/tcp     http         │",
            "│                                                                        ││12:00:01 198.19.0.1:22/tcp     ssh          │",
            "│                                                                        ││                                            │",
            "└────────────────────────────────────────────────────────────────────────┘└────────────────────────────────────────────┘",
            " q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help                                ",
        ],
    );
}

#[test]
fn export_menu_format_file_name_and_progress_bar() {
    let mut app = scan_app();
    assert!(key(&mut app, KeyCode::Char('e')).is_none());
    let buf = render(&mut app, 100, 16);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 RUNNING pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                            ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                               ",
            "┌ Progress ────────────────────────────────────────────────────────────────────────────────────────┐",
            "│██████████┌ Export ────────────────────────────────────────────────────────────────────┐          │",
            "└──────────│ Format      text  json  xml  grep  csv  html  pdf                          │──────────┘",
            "┌ Counters │ File       prtip-scan-7.csv                                                │──────────┐",
            "│Elapsed   │ Rows       all 6 rows (no filter set)                                      │          │",
            "│ETA       │                                                                            │          │",
            "│Probes sen│                                                                            │          │",
            "│Replies   │                                                                            │          │",
            "│Rate      │                                                                            │          │",
            "└──────────│                                                                            │──────────┘",
            "┌ Scan even└───── ←→ format · Tab field · Space toggle · Enter export · Esc close ──────┘──────────┐",
            "│12:00:00 Started scan 7 by pid 4242: 16 targets, 16,000 prob││12:00:01 198.19.0.3:8080/tcp   http-│",
            "└────────────────────────────────────────────────────────────┘└────────────────────────────────────┘",
            " q quit │ 1-3/Tab screens │ f filter │ s/S sort │ p pause │ r resume │ e export │ ? help            ",
        ],
    );
    key(&mut app, KeyCode::Right); // csv -> html; the file name follows
    let Some(Action::Export(req)) = key(&mut app, KeyCode::Enter) else {
        panic!("Enter must start an export")
    };
    assert_eq!(req.format, prtip_export::Format::Html);
    assert_eq!(req.path, std::path::PathBuf::from("prtip-scan-7.html"));
    assert!(req.filter.is_none());
    app.export_progress(3);
    let buf = render(&mut app, 100, 16);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 RUNNING pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                            ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                               ",
            "┌ Progress ────────────────────────────────────────────────────────────────────────────────────────┐",
            "│██████████┌ Export ────────────────────────────────────────────────────────────────────┐          │",
            "└──────────│ Format      text  json  xml  grep  csv  html  pdf                          │──────────┘",
            "┌ Counters │ File       prtip-scan-7.html                                               │──────────┐",
            "│Elapsed   │ Rows       all 6 rows (no filter set)                                      │          │",
            "│ETA       │                                                                            │          │",
            "│Probes sen│ Progress   ████████████████████████████3/6 rows                            │          │",
            "│Replies   │                                                                            │          │",
            "│Rate      │                                                                            │          │",
            "└──────────│                                                                            │──────────┘",
            "┌ Scan even└───── ←→ format · Tab field · Space toggle · Enter export · Esc close ──────┘──────────┐",
            "│12:00:00 Started scan 7 by pid 4242: 16 targets, 16,000 prob││12:00:01 198.19.0.3:8080/tcp   http-│",
            "└────────────────────────────────────────────────────────────┘└────────────────────────────────────┘",
            " exporting html to prtip-scan-7.html: 3/6 rows (50%)                                                ",
        ],
    );
    // A second export cannot start while one runs.
    assert!(key(&mut app, KeyCode::Enter).is_none());
    app.export_finished(Ok(6));
    let buf = render(&mut app, 100, 16);
    assert_screen(
        &buf,
        &[
            " prtip monitor  scan 7 RUNNING pid 4242 │ 198.19.0.0/28 │ ports T:1-1000                            ",
            " 1 Progress │ 2 Results │ 3 Dashboard                                                               ",
            "┌ Progress ────────────────────────────────────────────────────────────────────────────────────────┐",
            "│██████████┌ Export ────────────────────────────────────────────────────────────────────┐          │",
            "└──────────│ Format      text  json  xml  grep  csv  html  pdf                          │──────────┘",
            "┌ Counters │ File       prtip-scan-7.html                                               │──────────┐",
            "│Elapsed   │ Rows       all 6 rows (no filter set)                                      │          │",
            "│ETA       │                                                                            │          │",
            "│Probes sen│ Progress   ███████████████done: 6 rows in prtip-scan-7.html ███████████████│          │",
            "│Replies   │                                                                            │          │",
            "│Rate      │                                                                            │          │",
            "└──────────│                                                                            │──────────┘",
            "┌ Scan even└───── ←→ format · Tab field · Space toggle · Enter export · Esc close ──────┘──────────┐",
            "│12:00:00 Started scan 7 by pid 4242: 16 targets, 16,000 prob││12:00:01 198.19.0.3:8080/tcp   http-│",
            "└────────────────────────────────────────────────────────────┘└────────────────────────────────────┘",
            " exported 6 rows as html to prtip-scan-7.html                                                       ",
        ],
    );
}

#[test]
fn export_menu_uses_the_current_filter_when_asked() {
    let mut app = scan_app();
    type_issue_filter(&mut app);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('e'));
    let Some(Action::Export(req)) = key(&mut app, KeyCode::Enter) else {
        panic!("Enter must start an export")
    };
    assert_eq!(req.format, prtip_export::Format::Csv);
    assert_eq!(
        req.filter.as_ref().map(|f| f.source().to_string()),
        Some(r#"port 1-1024 and proto tcp and state open and service ~ "http|ssl""#.to_string())
    );
    // Tab to "Rows", Space unticks it: the whole table is exported.
    let mut app = scan_app();
    type_issue_filter(&mut app);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('e'));
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Char(' '));
    let Some(Action::Export(req)) = key(&mut app, KeyCode::Enter) else {
        panic!("Enter must start an export")
    };
    assert!(req.filter.is_none());
}

/// Host discovery results are hosts up, not open ports: the counters show them
/// on their own line and "Open ports" keeps counting ports.
#[test]
fn hosts_up_are_counted_apart_from_open_ports() {
    let mut app = scan_app();
    for last in [5u8, 6] {
        app.apply(&Event::Reply(Reply {
            addr: addr(last),
            port: 0,
            proto: Protocol::Host,
            state: PortState::Open,
            reason: Reason::EchoReply,
            ttl: 64,
            icmp_code: 0,
            rtt_us: 100,
            time_us: T0 + 1_000_000,
        }));
    }
    let buf = render(&mut app, 120, 30);
    let text = lines(&buf);
    let row = |name: &str| {
        text.iter()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} row: {text:#?}"))
            .clone()
    };
    assert!(row("│Hosts up        2 ").contains("│Hosts up        2 "));
    assert!(
        row("│Open ports      ").contains("│Open ports      4 "),
        "{text:#?}"
    );
    // Without host results there is no such line.
    let buf = render(&mut scan_app(), 120, 30);
    assert!(!lines(&buf).iter().any(|l| l.contains("Hosts up")));
}
