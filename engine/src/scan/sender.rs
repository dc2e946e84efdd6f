//! The sender thread: walks the permutation from the resume position, paces with the
//! token bucket, skips answered values, waits between retry passes, and hands
//! batches of probes to the backend's [`Transmit`] half. Stops at a pause, an abort
//! or the walk's end; idles through a hold behind the event thread's gate. Owns the
//! `Transmit` half; never classifies or writes events.

use super::shared::Shared;
use super::{ScanControl, ScanPlan, BATCH};
use crate::backend::{Probe, Transmit};
use crate::pacing::TokenBucket;
use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant};

/// Run the sender until the walk ends, a pause or an abort.
pub(super) fn sender(
    plan: &ScanPlan,
    mut tx: Box<dyn Transmit>,
    control: &ScanControl,
    sh: &Shared,
    from: u64,
    start: Instant,
) {
    let total = plan.walk.len();
    let span = plan.walk.span().max(1);
    let rate = plan.timing.rate_mpps;
    let ns = |t: Instant| t.duration_since(start).as_nanos() as u64;
    let mut bucket = TokenBucket::new(rate, TokenBucket::catchup_burst(rate), ns(Instant::now()));
    let mut p = from;
    let mut last_send = Instant::now();
    let mut probes: Vec<Probe> = Vec::with_capacity(BATCH as usize);
    let mut positions: Vec<u64> = Vec::with_capacity(BATCH as usize);
    let gap = Duration::from_millis(plan.timing.retry_gap_ms);
    while p < total {
        if control.is_aborted() || control.pause_requested() {
            break;
        }
        if control.is_held() || sh.hold_gate.load(SeqCst) {
            // Held: idle until released and the event thread has recorded the hold
            // as over (it opens the gate after writing Resumed).
            sh.sender_idle.store(true, SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        if sh.sender_idle.load(SeqCst) {
            // Leaving a hold: say so first, then look again (the event thread may
            // have closed the gate meanwhile; one of the two sees the other).
            sh.sender_idle.store(false, SeqCst);
            if control.is_held() || sh.hold_gate.load(SeqCst) {
                continue;
            }
            bucket.reset(ns(Instant::now()));
        }
        if p.is_multiple_of(span) && p > 0 {
            // A new retry pass: nothing to do if everything answered; else let replies
            // to the end of the previous pass come back first.
            if !sh.wait_loaded(control) {
                break;
            }
            if plan.all_answered() {
                p = total;
                sh.position.store(p, Release);
                break;
            }
            let ready = last_send + gap;
            let now = Instant::now();
            if now < ready {
                std::thread::sleep((ready - now).min(Duration::from_millis(10)));
                continue;
            }
        }
        let now = ns(Instant::now());
        let want = BATCH.min(total - p).min(span - p % span);
        let n = bucket.take(now, want);
        if n == 0 {
            let w = bucket.wait_ns(now, 1).min(10_000_000);
            std::thread::sleep(Duration::from_nanos(w));
            continue;
        }
        probes.clear();
        positions.clear();
        let first = p;
        let pass_end = (p / span + 1) * span;
        // One look at the answered set per batch (none while it is empty).
        plan.answered.with(|answered| {
            while (probes.len() as u64) < n && p < pass_end.min(total) {
                let (v, probe) = plan.probe_at(p);
                p += 1;
                if answered(v) {
                    continue;
                }
                probes.push(probe);
                positions.push(p - 1);
            }
        });
        if !probes.is_empty() {
            let mut off = 0;
            while off < probes.len() {
                match tx.send(&probes[off..]) {
                    Ok(k) => off += k,
                    Err(e) => {
                        *sh.sender_error.lock().unwrap() = Some(e);
                        sh.sender_done.store(true, SeqCst);
                        return;
                    }
                }
                if off < probes.len()
                    && (control.pause_requested() || control.is_held() || control.is_aborted())
                {
                    // The backend stopped short and a pause or hold came: the walk
                    // goes on from the first probe it did not take.
                    p = positions[off];
                    break;
                }
            }
            last_send = Instant::now();
            sh.sent.fetch_add(off as u64, Relaxed);
            control.progress.sent.fetch_add(off as u64, Relaxed);
            let mut c = sh.clock.lock().unwrap();
            c.push_back((first, ns(last_send)));
            if c.len() > 1 << 16 {
                c.pop_front();
            }
        }
        sh.position.store(p, Release);
        control.progress.position.store(p, Relaxed);
    }
    sh.sender_done.store(true, SeqCst);
}
