//! The receiver thread: reads frames from the backend's [`Receive`] half, classifies
//! them with the scan's probe modules, maps a verdict to its walk value, folds
//! duplicates through the answered set (telling the rate governor which of them
//! answered its references, and giving it new answers to re-probe), estimates the RTT from the send clock, and
//! hands verdicts to the event thread. Owns the `Receive` half; never writes events.

use super::shared::{Msg, Shared};
use super::ScanPlan;
use crate::backend::Receive;
use crate::classify::Classified;
use crate::governor::NetKey;
use crate::probe::ProbeSet;
use prtip_store::event::Protocol;
use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant};

/// Run the receiver until the event thread says stop or the backend fails.
pub(super) fn receiver(
    plan: &ScanPlan,
    mut rx: Box<dyn Receive>,
    probes: &ProbeSet,
    sh: &Shared,
    out: crossbeam_channel::Sender<Msg>,
    start: Instant,
) {
    let span = plan.walk.span().max(1);
    while !sh.rx_stop.load(SeqCst) {
        let r = rx.recv(Duration::from_millis(20), &mut |frame| match probes
            .classify(frame, &plan.cookies)
        {
            Classified::Reply(v) => {
                let Some(val) = plan.value_of(v.addr, v.proto, v.port) else {
                    sh.invalid.fetch_add(1, Relaxed);
                    return;
                };
                let Some(q) = plan.walk.position_of(val) else {
                    return; // another shard's probe
                };
                let new = if v.proto == Protocol::Host {
                    // Host discovery: the first answer of any probe decides the host.
                    plan.fold_host(v.addr)
                } else {
                    plan.answered.insert(val)
                };
                if !new {
                    // A duplicate, or the answer to one of the governor's references.
                    if sh.adaptive {
                        let now = start.elapsed().as_nanos() as u64;
                        sh.gov.lock().unwrap().answered(val, now);
                    }
                    return;
                }
                if sh.adaptive {
                    sh.pool.push(val, NetKey::of(v.addr));
                }
                // RTT: the latest send of this value is in the latest pass already reached.
                let now = start.elapsed().as_nanos() as u64;
                let pos = sh.position.load(Acquire);
                let mut cand = q;
                while cand + span < pos {
                    cand += span;
                }
                let rtt = {
                    let c = sh.clock.lock().unwrap();
                    let i = c.partition_point(|&(first, _)| first <= cand);
                    if i == 0 {
                        0
                    } else {
                        if sh.adaptive {
                            sh.heard_sent_ns.fetch_max(c[i - 1].1, Relaxed);
                        }
                        ((now.saturating_sub(c[i - 1].1)) / 1000).min(u32::MAX as u64) as u32
                    }
                };
                if rtt > 0 && sh.adaptive {
                    // The highest recent RTT, decaying by 1/64 per answer.
                    let _ = sh
                        .rtt_hint_us
                        .fetch_update(Relaxed, Relaxed, |h| Some((h - h / 64).max(u64::from(rtt))));
                }
                if rtt > 0 {
                    let mut r = sh.rtts.lock().unwrap();
                    if r.len() < 1 << 16 {
                        r.push(rtt);
                    }
                }
                let _ = out.send(Msg::Verdict(v, rtt));
            }
            Classified::Invalid => {
                sh.invalid.fetch_add(1, Relaxed);
            }
            Classified::Ignored => {}
        });
        if r.is_err() {
            break;
        }
        sh.drops.store(rx.stats().drops, Relaxed);
    }
}
