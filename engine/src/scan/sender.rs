//! The sender thread: walks the permutation from the resume position, paces with the
//! token bucket at the rate governor's rate, mixes in the governor's reference
//! probes, defers probes to networks with a rate of their own, skips answered
//! values, waits between retry passes, and hands batches of probes to the
//! backend's [`Transmit`] half. Stops at a pause, an abort or the walk's end;
//! idles through a hold (the user's or a failed uplink's) behind the event
//! thread's gate. Owns the `Transmit` half; never classifies or writes events.

use super::shared::Shared;
use super::{ScanControl, ScanPlan, BATCH};
use crate::backend::{Probe, Transmit};
use crate::governor::{Governor, NetKey};
use crate::pacing::TokenBucket;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant};

/// A retry pass after the first is sent only if the pass before it found a new
/// answer per this many of its probes: on a lossy path (a policer the governor
/// is still learning) retries find many, on a wide scan of silence almost none,
/// and a second retry of a /0 would cost as much as its first pass.
const RETRY_YIELD: u64 = 1000;

/// One deferred probe in this many (at most) brings a reference (see the sender).
const DEFERRED_REF_EVERY: u64 = 8;

/// Most probes waiting for their network's bucket (bounded memory: beyond it
/// the walk waits).
const MAX_DEFERRED: usize = 65_536;

/// The burst the governed bucket allows: 5 ms of probes, 1 to 4096 (a
/// policer's bucket often holds 10 ms; a sender catching up a stall in one
/// burst, or sending a whole batch at once at a low rate, would overflow it).
fn governed_burst(rate_mpps: u64) -> u64 {
    (rate_mpps / 200_000).clamp(1, 4096)
}

/// Whether a send error says the link is gone (the uplink watch holds the scan)
/// rather than that the backend failed.
fn link_gone(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV)
    )
}

/// Count one probe toward the next reference: the key to pick it with when
/// `every` probes (0: never) have gone since the last.
fn reference_due(since_ref: &mut u64, every: u64, ref_k: &mut u64) -> Option<u64> {
    *since_ref += 1;
    if every == 0 || *since_ref < every {
        return None;
    }
    *since_ref = 0;
    *ref_k = ref_k.wrapping_add(0x9E37_79B9);
    Some(*ref_k)
}

/// A reference to go with `probe`: a re-probe of a port that answered already,
/// in the network `probe` goes to if one of its answers is at hand (references
/// measure loss where the walk sends), else any recent answer; `None` when
/// there is none, it is outstanding already, or its network has a rate of its
/// own and no token now (a reference takes one as any probe to it does, except
/// that a reference in `probe`'s network rides on `probe`'s token when `rides`:
/// a deferred probe just took its network's only token, and its reference
/// would never find another).
#[allow(clippy::too_many_arguments)]
fn reference(
    g: &mut Governor,
    sh: &Shared,
    plan: &ScanPlan,
    probe: &Probe,
    rides: bool,
    k: u64,
    now: u64,
    sent_now: u64,
) -> Option<Probe> {
    let here = NetKey::of(probe.dst);
    let near = sh
        .pool
        .pick_in(here, k)
        .map(|r| (r, plan.probe_for(r)))
        .filter(|(_, rp)| NetKey::of(rp.dst) == here);
    let any = || sh.pool.pick(k).map(|r| (r, plan.probe_for(r)));
    for (r, rp) in near.into_iter().chain(any()) {
        let net = NetKey::of(rp.dst);
        if ((rides && net == here) || g.net_allows(net, now)) && g.sent_ref(r, net, now, sent_now) {
            return Some(rp);
        }
    }
    None
}

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
    let ns = |t: Instant| t.duration_since(start).as_nanos() as u64;
    let (mut rate, mut ref_every) = {
        let g = sh.gov.lock().unwrap();
        (g.rate_mpps(), g.ref_every())
    };
    let burst = |r: u64| {
        if sh.adaptive {
            governed_burst(r)
        } else {
            TokenBucket::catchup_burst(r)
        }
    };
    let mut bucket = TokenBucket::new(rate, burst(rate), ns(Instant::now()));
    let mut p = from;
    let mut last_send = Instant::now();
    let mut probes: Vec<Probe> = Vec::with_capacity(2 * BATCH as usize);
    let mut positions: Vec<u64> = Vec::with_capacity(2 * BATCH as usize);
    // Which of `probes` are references (not walk probes).
    let mut is_ref: Vec<bool> = Vec::with_capacity(2 * BATCH as usize);
    let mut deferred: VecDeque<(u64, u64, NetKey)> = VecDeque::new();
    let mut since_ref = 0u64;
    let mut ref_k = 0u64;
    let mut slow_nets = false;
    let gap = Duration::from_millis(plan.timing.retry_gap_ms);
    if from >= span {
        sh.gov.lock().unwrap().set_retry_pass(true);
    }
    // The pass this run started from its beginning, the answers known and the
    // probes sent then (a resumed run does not know what its first, partial
    // pass found).
    let mut pass_began: Option<(u64, u64, u64)> =
        (from == 0).then(|| (0, plan.answered.len(), sh.sent.load(Relaxed)));
    loop {
        if p >= total && deferred.is_empty() {
            break;
        }
        if control.is_aborted() || control.pause_requested() {
            break;
        }
        if control.is_held() || sh.hold_gate.load(SeqCst) || sh.uplink_held.load(SeqCst) {
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
            if control.is_held() || sh.hold_gate.load(SeqCst) || sh.uplink_held.load(SeqCst) {
                continue;
            }
            // The event thread may have rewound the walk to before the uplink failed.
            p = sh.position.load(Acquire).min(p);
            bucket.reset(ns(Instant::now()));
        }
        let pass_boundary = p.is_multiple_of(span) && p > 0 && deferred.is_empty();
        if pass_boundary && p < total {
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
            // After the first retry pass, retry only while retrying finds
            // answers (nmap's rule; `--max-retries` is the most passes, not a
            // quota): at least one, and one per RETRY_YIELD probes of the pass.
            let pass = p / span;
            if pass_began.is_none_or(|(b, _, _)| b != pass) {
                let (found, sent) = (plan.answered.len(), sh.sent.load(Relaxed));
                if let Some((b, found0, sent0)) = pass_began.filter(|_| pass >= 2) {
                    let new = found - found0;
                    if b + 1 == pass && (new == 0 || new * RETRY_YIELD < sent - sent0) {
                        p = total;
                        sh.position.store(p, Release);
                        break;
                    }
                }
                pass_began = Some((pass, found, sent));
            }
            if sh.adaptive {
                sh.gov.lock().unwrap().set_retry_pass(true);
            }
        }
        let now = ns(Instant::now());
        if sh.adaptive {
            let mut g = sh.gov.lock().unwrap();
            g.rtt_hint(sh.rtt_hint_us.load(Relaxed) * 1000);
            g.heard_up_to(sh.heard_sent_ns.load(Relaxed));
            g.tick(now, sh.sent.load(Relaxed));
            if g.rate_mpps() != rate {
                rate = g.rate_mpps();
                bucket.set_rate(rate, burst(rate), now);
            }
            ref_every = g.ref_every();
            slow_nets = g.has_slow_nets();
        }
        // Deferred probes of this pass go out before the next pass starts.
        let pass_end = if !deferred.is_empty() && p.is_multiple_of(span) && p > 0 {
            p
        } else {
            ((p / span + 1) * span).min(total)
        };
        let walk_left = if deferred.is_empty() || deferred.len() < MAX_DEFERRED {
            pass_end - p
        } else {
            0
        };
        let want = BATCH.min(walk_left + deferred.len() as u64);
        if want == 0 {
            // Only deferred probes, none of whose networks may take one yet.
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        let n = bucket.take(now, want);
        if n == 0 {
            let w = bucket.wait_ns(now, 1).min(10_000_000);
            std::thread::sleep(Duration::from_nanos(w));
            continue;
        }
        probes.clear();
        positions.clear();
        is_ref.clear();
        let first = p;
        let mut g = sh.adaptive.then(|| sh.gov.lock().unwrap());
        // One look at the answered set per batch (none while it is empty); the
        // governor's lock, when it adapts, is taken before it (the receiver takes
        // them one after the other, never both).
        plan.answered.with(|answered| {
            // Deferred probes whose network has a token go first.
            if let Some(g) = g.as_mut().filter(|_| !deferred.is_empty()) {
                // (Looking at a bounded number of them per batch.)
                let mut i = 0;
                let mut budget = 4 * BATCH as usize;
                while i < deferred.len() && (probes.len() as u64) < n && budget > 0 {
                    budget -= 1;
                    let (pos, v, net) = deferred[i];
                    if answered(v) {
                        deferred.remove(i);
                    } else if g.net_allows(net, now) {
                        deferred.remove(i);
                        let probe = plan.probe_for(v);
                        // Deferred probes bring references too, one in
                        // DEFERRED_REF_EVERY: a retry pass of a slow network
                        // sends nothing else, at its network's few hundred
                        // per second, and without them that rate would
                        // never be judged again.
                        if let Some(k) = reference_due(
                            &mut since_ref,
                            ref_every.min(DEFERRED_REF_EVERY),
                            &mut ref_k,
                        ) {
                            let sent_now = sh.sent.load(Relaxed) + probes.len() as u64;
                            if let Some(rp) = reference(g, sh, plan, &probe, true, k, now, sent_now)
                            {
                                probes.push(rp);
                                positions.push(pos);
                                is_ref.push(true);
                            }
                        }
                        probes.push(probe);
                        positions.push(pos);
                        is_ref.push(false);
                    } else {
                        i += 1;
                    }
                }
                if deferred.is_empty() && slow_nets && !g.has_slow_nets() {
                    slow_nets = false;
                }
            }
            while (probes.len() as u64) < n && p < pass_end && deferred.len() < MAX_DEFERRED {
                let (v, probe) = plan.probe_at(p);
                p += 1;
                if answered(v) {
                    continue;
                }
                if let Some(g) = g.as_mut() {
                    if slow_nets {
                        let net = NetKey::of(probe.dst);
                        if !g.net_allows(net, now) {
                            deferred.push_back((p - 1, v, net));
                            continue;
                        }
                    }
                    if let Some(k) = reference_due(&mut since_ref, ref_every, &mut ref_k) {
                        let sent_now = sh.sent.load(Relaxed) + probes.len() as u64;
                        if let Some(rp) = reference(g, sh, plan, &probe, false, k, now, sent_now) {
                            probes.push(rp);
                            positions.push(p - 1);
                            is_ref.push(true);
                        }
                    }
                }
                probes.push(probe);
                positions.push(p - 1);
                is_ref.push(false);
            }
        });
        drop(g);
        sh.deferred_min
            .store(deferred.front().map_or(u64::MAX, |d| d.0), Release);
        if !probes.is_empty() {
            let mut off = 0;
            let mut retried = false;
            while off < probes.len() {
                match tx.send(&probes[off..]) {
                    Ok(k) => off += k,
                    Err(e) if link_gone(&e) && !retried && sh.uplink_watched.load(SeqCst) => {
                        // A packet socket keeps the ENETDOWN of a link that went
                        // down while it was idle for its next send: try once more.
                        retried = true;
                    }
                    Err(e) if link_gone(&e) && sh.uplink_watched.load(SeqCst) => {
                        // The link went away under the sender: hold until the
                        // uplink watch sees it back, then go on from the first
                        // probe not taken.
                        let mut u = sh.uplink_down.lock().unwrap();
                        if u.is_none() {
                            *u = Some(format!("sending failed: {e}"));
                        }
                        sh.uplink_held.store(true, SeqCst);
                        break;
                    }
                    Err(e) => {
                        *sh.sender_error.lock().unwrap() = Some(e);
                        sh.sender_done.store(true, SeqCst);
                        return;
                    }
                }
                if off < probes.len()
                    && (control.pause_requested()
                        || control.is_held()
                        || control.is_aborted()
                        || sh.uplink_held.load(SeqCst))
                {
                    // (A link without carrier takes nothing: the uplink watch
                    // holds the scan.)
                    break;
                }
            }
            if off < probes.len() {
                // The backend stopped short and a pause or hold came: the walk
                // goes on from the first probe it did not take (deferred ones
                // taken out of the queue were before it, or are still in it).
                p = positions[off].min(p);
            }
            last_send = Instant::now();
            // Every frame counts for the governor's rate; the scan's count of
            // probes sent leaves out the references (re-probes of answered
            // ports: the walk's coverage is what `sent` tells).
            let refs = is_ref[..off].iter().filter(|r| **r).count() as u64;
            sh.sent.fetch_add(off as u64, Release);
            sh.refs_sent.fetch_add(refs, Release);
            control.progress.sent.fetch_add(off as u64 - refs, Relaxed);
            let mut c = sh.clock.lock().unwrap();
            c.push_back((first, ns(last_send)));
            if c.len() > 1 << 16 {
                c.pop_front();
            }
        }
        sh.position.store(p, Release);
        control.progress.position.store(p, Relaxed);
    }
    if let Some(d) = deferred.front() {
        // Paused with probes deferred: a resume starts from the oldest of them.
        p = p.min(d.0);
        sh.position.store(p, Release);
        control.progress.position.store(p, Relaxed);
    }
    sh.sender_done.store(true, SeqCst);
}
