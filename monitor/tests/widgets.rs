//! Widget rendering against ratatui's TestBackend, with exact expected cells.

mod common;
use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use prtip_monitor::metrics::SystemSample;
use prtip_monitor::App;
use prtip_store::event::*;

fn key(app: &mut App, code: KeyCode) -> Option<prtip_monitor::Action> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}
fn typ(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

#[test]
fn zz_dump() {
    let mut app = scan_app();
    print(&render(&mut app, 120, 30));
    app.apply(&Event::Checkpoint(Checkpoint { next_index: 9_000, counters: Counters { sent: 9_000, replies: 900, ..Counters::default() }, time_us: T0 + 30_000_000 }));
    app.apply(&Event::Paused(Paused { next_index: 9_000, time_us: T0 + 30_000_000, reason: "SIGUSR1".into() }));
    print(&render(&mut app, 120, 30));
    let mut app = scan_app();
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('s'));
    print(&render(&mut app, 120, 14));
    let mut app = scan_app();
    for s in 0..60u64 {
        let sys = SystemSample { time_us: T0 + (31 + s) * 1_000_000, cpu_per_core: vec![25.0, 75.0], scan_rss_bytes: Some(64 << 20), net_bytes: None, log_bytes_read: 0 };
        app.tick(sys.time_us, true, &sys);
        app.apply(&sample(31 + s, (31 + s) * 300, 300.0));
    }
    key(&mut app, KeyCode::Char('3'));
    print(&render(&mut app, 120, 36));
}
