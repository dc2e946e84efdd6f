//! Issue "Reliability and security", item 6: a scan of an `-iL` list names its
//! targets by a stored list's token (`@list:<hash>:<n4>:<n6>`); the monitor's
//! header says what it is in words, as history and the exports do.

mod common;
use common::*;
use prtip_monitor::App;
use prtip_store::event::*;

#[test]
fn the_header_shows_a_target_list_in_words() {
    let mut app = App::new("/var/lib/prtip/scans/7");
    let Event::ScanStarted(mut s) = started() else {
        unreachable!()
    };
    s.spec.targets = vec![format!("@list:1a2b3c4d{}:0:2000000", "0".repeat(56))];
    app.apply(&Event::ScanStarted(s));
    let screen = lines(&render(&mut app, 160, 30)).join("\n");
    assert!(
        screen
            .contains(" │ -iL list: 2,000,000 IPv6 addresses (targets-1a2b3c4d…) │ ports T:1-1000"),
        "{screen}"
    );
    assert!(!screen.contains("@list"), "{screen}");
}
