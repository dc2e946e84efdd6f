//! The uplink watch thread of a run: every 100 ms whether the interface is up
//! with a carrier, every second (every 250 ms while held) whether the next hop
//! answers ARP/NDP; a failure holds the sender (the event thread records the
//! hold: Checkpoint + Paused "uplink: ..."), success releases it. Owns no
//! packets of the scan; never writes events.

use super::shared::Shared;
use crate::route::netlink::Rtnl;
use crate::uplink::Uplink;
use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant};

/// How long the next hop has to answer one check.
const NEXT_HOP_WAIT: Duration = Duration::from_millis(500);

/// Watch `u` until the run's receiver stops.
pub(super) fn watch(u: &Uplink, sh: &Shared, start: Instant) {
    let Ok(mut rtnl) = Rtnl::open() else {
        return;
    };
    let mut last_hop = Instant::now();
    while !sh.rx_stop.load(SeqCst) {
        let held = sh.uplink_held.load(SeqCst);
        let hop_due = last_hop.elapsed()
            >= if held {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(1)
            };
        let mut r = u.link(&mut rtnl);
        if r.is_ok() && (hop_due || held) {
            last_hop = Instant::now();
            r = u.next_hop(NEXT_HOP_WAIT);
        }
        match r {
            Ok(()) => {
                sh.uplink_ok_ns
                    .store(start.elapsed().as_nanos() as u64, Release);
                if held {
                    *sh.uplink_down.lock().unwrap() = None;
                    sh.uplink_held.store(false, SeqCst);
                }
            }
            Err(why) => {
                *sh.uplink_down.lock().unwrap() = Some(why);
                sh.uplink_held.store(true, SeqCst);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
