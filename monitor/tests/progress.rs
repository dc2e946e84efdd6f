//! Issue 19, item 4: the monitor measures progress as everything else does
//! (prtip-store's one definition, the first pass): retry passes are neither in
//! the total nor in the ETA, and a finished scan of 20 probes with 2 retries
//! shows "100.0% (20 / 20 probes)" next to "Probes sent 20" (it showed
//! "100.0% (60 / 60 probes)").

mod common;
use common::*;
use prtip_monitor::metrics::SystemSample;
use prtip_monitor::App;
use prtip_store::event::*;

/// A SYN scan of 20 probes a pass, 2 retries: the walk has 60 positions.
fn app_of_60() -> App {
    let mut app = App::new("/var/lib/prtip/scans/7");
    let Event::ScanStarted(mut s) = started() else {
        unreachable!()
    };
    s.spec.max_retries = 2;
    s.total_probes = 60;
    app.apply(&Event::ScanStarted(s));
    app
}

fn checkpoint(next_index: u64, sent: u64, sec: u64) -> Event {
    Event::Checkpoint(Checkpoint {
        next_index,
        counters: Counters {
            sent,
            ..Counters::default()
        },
        time_us: T0 + sec * 1_000_000,
    })
}

fn screen(app: &mut App) -> String {
    lines(&render(app, 120, 30)).join("\n")
}

#[test]
fn the_first_pass_is_the_total() {
    let mut app = app_of_60();
    app.apply(&sample(1, 10, 10.0));
    app.apply(&checkpoint(10, 10, 1));
    app.tick(T0 + 1_000_000, true, &SystemSample::default());
    assert_eq!(app.pass_span(), 20);
    assert_eq!(app.percent(), 50.0);
    // 10 positions left at 10 probes/s.
    assert_eq!(app.eta_secs(), Some(1));
    assert!(screen(&mut app).contains("50.0% (10 / 20 probes)"));
}

#[test]
fn retry_passes_count_neither_in_the_total_nor_in_the_eta() {
    let mut app = app_of_60();
    app.apply(&sample(2, 26, 10.0));
    app.apply(&checkpoint(32, 26, 2));
    app.tick(T0 + 2_000_000, true, &SystemSample::default());
    assert_eq!(app.probes_done(), 20);
    assert_eq!(app.percent(), 100.0);
    assert_eq!(app.eta_secs(), None, "no first-pass position left to time");
}

#[test]
fn a_finished_scan_agrees_with_its_probes_sent() {
    let mut app = app_of_60();
    app.apply(&sample(1, 20, 20.0));
    app.apply(&checkpoint(60, 20, 3));
    app.apply(&Event::Finished(Finished {
        time_us: T0 + 3_000_000,
        counters: Counters {
            sent: 20,
            ..Counters::default()
        },
    }));
    app.tick(T0 + 3_000_000, false, &SystemSample::default());
    let s = screen(&mut app);
    assert!(s.contains("100.0% (20 / 20 probes)"), "{s}");
    assert!(!s.contains("60 / 60"), "{s}");
    assert!(s.contains("Probes sent     20 "), "{s}");
}
