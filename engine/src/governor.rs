//! The rate governor: finds the rate the path carries and keeps a SYN scan at it.
//!
//! Owns the rate decision of one run: the scan's rate between a floor
//! (`--min-rate`) and a ceiling (`--rate` / `--max-rate`), the reference probes
//! it measures loss with, and the networks that got a rate of their own. Never
//! sends, sleeps or writes events: the sender asks it for the rate, which
//! references to send and whether a network may take a probe now; the receiver
//! tells it which references were answered; the event thread writes its
//! [`Decision`]s into the log.
//!
//! **How it measures loss, statelessly.** A port that answered once answers
//! again: a *reference* is a re-probe of a (host, port) that already answered
//! (picked from the recent answers, [`RefPool`]), mixed into the walk at about
//! 1 300 per second (1/16 to 1/256 of the probes). Each reference that gets no
//! answer within a few RTTs was lost on the path at the rate it was sent with,
//! so the answered fraction of references estimates the path's delivery ratio
//! for every probe sent at that time, without per-probe state (the table of
//! outstanding references is bounded, [`MAX_REFS`]). A reference counts as
//! lost only once the receiver has read an answer to a probe sent after it
//! (or after a second): a receiver thread that a loaded machine did not run
//! for a while has lost nothing, and must not slow the scan down.
//!
//! **How it decides (why AIMD).** Every ≥ 25 ms with ≥ 32 matured references:
//! - loss above 3% (and at least 2 references lost): the rate becomes 0.95 × the
//!   rate that got through (the probes sent between the window's first and
//!   last reference over that time × their answered fraction,
//!   estimated as (answered + 1) / (sent + 2), and at most ÷4 at once; 0.85 ×
//!   in a retry pass), a
//!   multiplicative decrease proportional to the loss, so one decision lands
//!   under a policer's rate however far above it the scan was;
//! - no loss: ×4 before the first loss (slow start, from 50 000/s or the
//!   learned rate of a resumed scan); after it, halfway back toward the rate
//!   that lost (at most ×1.25 a decision: a binary search, as TCP BIC, so an
//!   estimate that undershot is corrected in a few decisions), and +3% per
//!   decision once above it (congestion avoidance); up to the ceiling.
//!
//! This is TCP's answer to the same question (additive/multiplicative increase,
//! multiplicative decrease converges and is fair to other traffic; a delay-based
//! scheme would need per-probe timestamps and sees nothing of a policer, which
//! drops without queueing). Loss in a retry pass is expensive (each pass is one
//! chance less, though a retry pass that finds answers earns the scan another,
//! up to `--max-retries`), so retry passes start at the last rate that lost
//! nothing (or that of the last decrease) and climb back only toward 0.95 × the
//! rate that last lost, never to it: retries resend what was lost at the rate
//! that worked, and a first pass that ended just after a cut (which undershoots
//! by up to ÷4) does not hold every retry at the undershoot.
//!
//! **Per network.** Loss is attributed to the destination's /24 (IPv4) or /48
//! (IPv6). When the references to one network keep going unanswered while the
//! scan as a whole loses under 3%, that network gets a token bucket of its own
//! (half its share of the scan's rate, then on further loss 0.95 × the rate
//! its references got through, at most ÷4 at once; raised by 25% per clean
//! decision and lifted when it reaches its share of the scan's
//! rate); its probes wait in the sender's deferral queue, the rest of the scan
//! goes on at the scan's rate. At most [`MAX_SLOW_NETS`] networks are tracked
//! (bounded memory); a network beyond that counts toward the scan's loss.

use crate::pacing::TokenBucket;
use prtip_store::event::GovernorReason;
use std::collections::HashMap;
use std::net::IpAddr;

/// Ceiling used when the scan has none (`--rate` 0, -T5 without --max-rate):
/// 100 M probes per second, in milli-probes per second.
pub const NO_CEILING_MPPS: u64 = 100_000_000_000;
/// Slow start's first rate when nothing was learned yet: 50 000 probes/s.
pub const START_MPPS: u64 = 50_000_000;
/// Most references outstanding at once.
pub const MAX_REFS: usize = 8192;
/// Most networks with a rate of their own, and most networks whose reference
/// history is kept.
pub const MAX_SLOW_NETS: usize = 1024;
const MAX_NET_HISTORY: usize = 4096;
/// References wanted per second (their share of the probes follows from it).
const REFS_PER_S: u64 = 1300;
const MIN_DECISION_NS: u64 = 25_000_000;
/// A reference unanswered this long is lost even when nothing later was heard.
const MAX_WAIT_NS: u64 = 1_000_000_000;
const MIN_REFS: u32 = 32;
const MIN_LOST: u32 = 2;
/// References a network must have had before its loss can be its own.
const MIN_NET_REFS: u32 = 8;
/// Loss above which the rate goes down, per mille.
const LOSS_PERMILLE: u64 = 30;

/// How a run's rate is governed (the cli's `--fixed-rate`, `--min-rate`; a
/// resume's learned rate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GovernorSettings {
    /// Adapt the rate to the path (false: send at the ceiling, as `--fixed-rate`).
    pub adaptive: bool,
    /// The floor, milli-probes per second (0: none).
    pub floor_mpps: u64,
    /// Where to start (a resumed scan's learned rate); `None`: slow start.
    pub start_mpps: Option<u64>,
}

impl GovernorSettings {
    /// A fixed rate: the plan's rate, no references, no decisions.
    pub const FIXED: GovernorSettings = GovernorSettings {
        adaptive: false,
        floor_mpps: 0,
        start_mpps: None,
    };
    /// Adaptive, no floor, slow start.
    pub const ADAPTIVE: GovernorSettings = GovernorSettings {
        adaptive: true,
        floor_mpps: 0,
        start_mpps: None,
    };
}

/// The network a destination's loss is attributed to: its /24 (IPv4) or /48
/// (IPv6), as the first address's 128 bits (IPv4 mapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetKey(pub u128);

impl NetKey {
    /// The network of `addr`.
    pub fn of(addr: IpAddr) -> NetKey {
        match addr {
            IpAddr::V4(a) => NetKey(u128::from(a.to_ipv6_mapped()) & !0xff),
            IpAddr::V6(a) => NetKey(u128::from(a) & !((1u128 << 80) - 1)),
        }
    }
    /// Its first address and prefix length.
    pub fn network(self) -> (IpAddr, u8) {
        let v6 = std::net::Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), 24),
            None => (IpAddr::V6(v6), 48),
        }
    }
}

/// One decision, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Why.
    pub reason: GovernorReason,
    /// The scan's rate after it, milli-probes per second.
    pub rate_mpps: u64,
    /// References it rests on: sent, answered.
    pub refs: (u32, u32),
    /// The network it is about, with that network's rate.
    pub net: Option<(NetKey, u64)>,
    /// Networks with a rate of their own after it.
    pub slow_nets: u32,
}

struct Ref {
    sent_ns: u64,
    net: NetKey,
    answered: bool,
    /// Probes the run had sent when it was sent.
    probes: u64,
}

#[derive(Default, Clone, Copy)]
struct NetHistory {
    sent: u32,
    lost: u32,
    last_ns: u64,
}

impl NetHistory {
    /// Whether the network loses most of its references, on enough of them
    /// that uniform loss on the path (a few references per network per
    /// window) does not look like it.
    fn own_loss(&self) -> bool {
        self.sent >= MIN_NET_REFS && self.lost >= MIN_LOST && self.lost * 2 >= self.sent
    }
}

struct SlowNet {
    bucket: TokenBucket,
    rate_mpps: u64,
}

/// The governor of one run (see the module documentation).
pub struct Governor {
    settings: GovernorSettings,
    ceiling: u64,
    floor: u64,
    rate: u64,
    /// The rate after the last decrease, or the last one that lost nothing
    /// since (0: none yet).
    safe: u64,
    /// The rate actually sent when loss was last seen (0: none yet).
    lossy: u64,
    /// The latest send time of a probe whose answer the receiver has read.
    heard_ns: u64,
    slow_start: bool,
    retry_pass: bool,
    refs: HashMap<u64, Ref>,
    /// References sent before this are not counted (they saw an older rate).
    epoch_ns: u64,
    epoch_sent: u64,
    last_decision_ns: u64,
    rtt_hi_ns: u64,
    win_sent: u32,
    win_answered: u32,
    /// (send time, probes sent) of the window's first and last reference.
    win_first: (u64, u64),
    win_last: (u64, u64),
    win_lost: HashMap<NetKey, (u32, u32)>,
    history: HashMap<NetKey, NetHistory>,
    slow: HashMap<NetKey, SlowNet>,
    decisions: Vec<Decision>,
    refs_sent_total: u64,
    /// The rate when the first retry pass started (0: not yet).
    first_pass_mpps: u64,
}

impl Governor {
    /// A governor for a run with `ceiling_mpps` (0: none) and `settings`, at `now_ns`.
    pub fn new(settings: GovernorSettings, ceiling_mpps: u64, now_ns: u64) -> Governor {
        let ceiling = if ceiling_mpps == 0 {
            NO_CEILING_MPPS
        } else {
            ceiling_mpps
        };
        let floor = settings.floor_mpps.min(ceiling);
        let rate = if settings.adaptive {
            settings
                .start_mpps
                .unwrap_or(START_MPPS)
                .clamp(floor.max(1), ceiling)
        } else {
            ceiling_mpps
        };
        Governor {
            settings,
            ceiling,
            floor,
            rate,
            safe: 0,
            lossy: 0,
            heard_ns: 0,
            slow_start: settings.start_mpps.is_none(),
            retry_pass: false,
            refs: HashMap::new(),
            epoch_ns: now_ns,
            epoch_sent: 0,
            last_decision_ns: now_ns,
            rtt_hi_ns: 0,
            win_sent: 0,
            win_answered: 0,
            win_first: (u64::MAX, 0),
            win_last: (0, 0),
            win_lost: HashMap::new(),
            history: HashMap::new(),
            slow: HashMap::new(),
            decisions: Vec::new(),
            refs_sent_total: 0,
            first_pass_mpps: 0,
        }
    }

    /// The rate it learned: the rate now, or the first pass's when a retry pass
    /// sends slower (it never climbs).
    pub fn learned_mpps(&self) -> u64 {
        self.rate.max(self.first_pass_mpps)
    }

    /// Whether the rate adapts.
    pub fn adaptive(&self) -> bool {
        self.settings.adaptive
    }
    /// The scan's rate now, milli-probes per second (0: unlimited, fixed only).
    pub fn rate_mpps(&self) -> u64 {
        self.rate
    }
    /// The ceiling (or [`NO_CEILING_MPPS`]).
    pub fn ceiling_mpps(&self) -> u64 {
        self.ceiling
    }
    /// The floor.
    pub fn floor_mpps(&self) -> u64 {
        self.floor
    }
    /// References sent so far.
    pub fn refs_sent(&self) -> u64 {
        self.refs_sent_total
    }

    /// Send one reference every this many probes (0: none).
    pub fn ref_every(&self) -> u64 {
        if !self.settings.adaptive {
            return 0;
        }
        (self.rate / 1000 / REFS_PER_S).clamp(16, 256)
    }

    /// A retry pass starts (`true`) or the first pass runs: retry passes start
    /// at the last rate that lost nothing (or of the last decrease) and climb
    /// only toward 0.95 × the rate that last lost.
    pub fn set_retry_pass(&mut self, retry: bool) {
        if retry && !self.retry_pass && !self.slow_start {
            self.first_pass_mpps = self.rate;
        }
        self.retry_pass = retry;
        if retry && self.safe > 0 && self.rate > self.safe {
            self.rate = self.safe;
        }
    }

    /// A reference to walk value `value` (network `net`) goes out at `now_ns`,
    /// after `sent` probes of the run; false (not recorded: do not send it) when
    /// it is outstanding already or the table is full.
    pub fn sent_ref(&mut self, value: u64, net: NetKey, now_ns: u64, sent: u64) -> bool {
        if self.refs.len() >= MAX_REFS || self.refs.contains_key(&value) {
            return false;
        }
        self.refs.insert(
            value,
            Ref {
                sent_ns: now_ns,
                net,
                answered: false,
                probes: sent,
            },
        );
        self.refs_sent_total += 1;
        true
    }

    /// A reply for walk value `value` that already had a state came at `now_ns`:
    /// true if it answered an outstanding reference.
    pub fn answered(&mut self, value: u64, now_ns: u64) -> bool {
        match self.refs.get_mut(&value) {
            Some(r) if !r.answered => {
                r.answered = true;
                self.heard_ns = self.heard_ns.max(r.sent_ns);
                let rtt = now_ns.saturating_sub(r.sent_ns);
                self.rtt_hi_ns = (self.rtt_hi_ns - self.rtt_hi_ns / 8).max(rtt);
                true
            }
            _ => false,
        }
    }

    /// Forget the references in flight (a hold: they were sent into a failed
    /// uplink and say nothing about the rate).
    pub fn forget_refs(&mut self, now_ns: u64, sent: u64) {
        self.refs.clear();
        self.new_epoch(now_ns, sent);
    }

    /// The scan's answers took up to `rtt_ns` lately (the receiver's RTT of
    /// first answers): references wait at least that long before they count
    /// as lost, from the first one on.
    pub fn rtt_hint(&mut self, rtt_ns: u64) {
        self.rtt_hi_ns = self.rtt_hi_ns.max(rtt_ns);
    }

    /// The receiver read an answer to a probe sent at `sent_ns`: references
    /// sent before it may count as lost once their timeout is over.
    pub fn heard_up_to(&mut self, sent_ns: u64) {
        self.heard_ns = self.heard_ns.max(sent_ns);
    }

    /// How long a reference may take to be answered: 4 × the highest recent
    /// RTT + 30 ms, 40 ms to 1 s (the margin covers a receiver thread that a
    /// loaded machine did not run for a while).
    fn timeout_ns(&self) -> u64 {
        (4 * self.rtt_hi_ns + 30_000_000).clamp(40_000_000, 1_000_000_000)
    }

    fn new_epoch(&mut self, now_ns: u64, sent: u64) {
        self.epoch_ns = now_ns;
        self.epoch_sent = sent;
        self.last_decision_ns = now_ns;
        self.win_sent = 0;
        self.win_answered = 0;
        self.win_first = (u64::MAX, 0);
        self.win_last = (0, 0);
        self.win_lost.clear();
    }

    /// Whether a probe to `net` may go now (a network with a rate of its own
    /// takes a token of its bucket); true for every other network.
    #[inline]
    pub fn net_allows(&mut self, net: NetKey, now_ns: u64) -> bool {
        if self.slow.is_empty() {
            return true;
        }
        match self.slow.get_mut(&net) {
            Some(s) => s.bucket.take(now_ns, 1) == 1,
            None => true,
        }
    }

    /// Networks with a rate of their own.
    pub fn slow_nets(&self) -> u32 {
        self.slow.len() as u32
    }

    /// Whether any network has a rate of its own.
    pub fn has_slow_nets(&self) -> bool {
        !self.slow.is_empty()
    }

    /// Decisions made since the last call.
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.decisions)
    }

    /// Mature references and decide if due; `sent` is the run's probe count so
    /// far. Returns whether the rate changed.
    pub fn tick(&mut self, now_ns: u64, sent: u64) -> bool {
        if !self.settings.adaptive {
            return false;
        }
        let timeout = self.timeout_ns();
        let epoch = self.epoch_ns;
        let mut matured: Vec<(NetKey, bool, u64, u64)> = Vec::new();
        let heard = self.heard_ns;
        self.refs.retain(|_, r| {
            // Lost: unanswered for its timeout while answers to probes sent
            // after it came in (a receiver that a loaded machine did not run
            // has not lost them), or unanswered for the longest wait.
            let waited = now_ns.saturating_sub(r.sent_ns);
            if waited < timeout || (r.sent_ns > heard && waited < MAX_WAIT_NS) {
                return true;
            }
            if r.sent_ns >= epoch {
                matured.push((r.net, r.answered, r.sent_ns, r.probes));
            }
            false
        });
        for (net, answered, at, probes) in matured {
            self.win_first = self.win_first.min((at, probes));
            self.win_last = self.win_last.max((at, probes));
            self.win_sent += 1;
            self.win_answered += u32::from(answered);
            let e = self.win_lost.entry(net).or_default();
            e.0 += 1;
            e.1 += u32::from(!answered);
        }
        let since = now_ns.saturating_sub(self.last_decision_ns);
        if since < MIN_DECISION_NS || (self.win_sent < MIN_REFS && since < 8 * MIN_DECISION_NS) {
            return false;
        }
        self.decide(now_ns, sent)
    }

    fn decide(&mut self, now_ns: u64, sent: u64) -> bool {
        let (s, a) = (self.win_sent, self.win_answered);
        let lost = s - a;
        let before = self.rate;
        // Per-network bookkeeping first: which networks lose, which recovered.
        let win = std::mem::take(&mut self.win_lost);
        for (net, (ns, nl)) in &win {
            let h = self.history.entry(*net).or_default();
            h.sent = h.sent.saturating_add(*ns);
            h.lost = h.lost.saturating_add(*nl);
            h.last_ns = now_ns;
        }
        if self.history.len() > MAX_NET_HISTORY {
            // Keep the networks heard from most recently.
            let mut ages: Vec<u64> = self.history.values().map(|h| h.last_ns).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() - MAX_NET_HISTORY];
            self.history.retain(|_, h| h.last_ns >= cut);
        }
        // A network with a rate of its own keeps its loss: its bucket answers
        // it. Other loss that stays in a few networks (at most a quarter of
        // those the window's references went to) is theirs, not the scan's.
        let lossy: Vec<NetKey> = win
            .iter()
            .filter(|(net, (_, nl))| {
                *nl > 0 && !self.slow.contains_key(*net) && self.history[*net].own_loss()
            })
            .map(|(net, _)| *net)
            .collect();
        let local = lossy.len() * 4 <= win.len();
        let (mut rest_sent, mut rest_lost) = (s, lost);
        for (net, (ns, nl)) in &win {
            if self.slow.contains_key(net) || (local && lossy.contains(net)) {
                rest_sent -= ns;
                rest_lost -= nl;
            }
        }
        let global_loss = rest_lost >= MIN_LOST
            && u64::from(rest_lost) * 1000 > LOSS_PERMILLE * u64::from(rest_sent.max(1));
        // The rate actually sent while the window's references went out (the
        // sender may not reach the rate asked for): the probes they stand for
        // over the span of their send times.
        let span = self.win_last.0.saturating_sub(self.win_first.0);
        let probes = self.win_last.1.saturating_sub(self.win_first.1);
        let actual = if s >= 2 && span >= 5_000_000 {
            (probes as u128 * 1_000_000_000_000 / span as u128) as u64
        } else {
            0
        };
        if global_loss {
            let through = if actual > 0 {
                actual.min(self.rate)
            } else {
                self.rate
            };
            // (a + 1) / (s + 2): an estimate that never says "nothing passes"
            // from a handful of references; at most ÷4 per decision (a burst
            // of loss that was not the path's costs one step, not the rate).
            let delivered = through as u128 * u128::from(a + 1) / u128::from(s + 2);
            // A retry pass is one chance less for what it loses: go lower there.
            let (num, den) = if self.retry_pass { (17, 20) } else { (19, 20) };
            let next = ((delivered * num / den) as u64)
                .min((u128::from(self.rate) * num / den) as u64)
                .max(through / 4)
                .clamp(self.floor.max(1), self.ceiling);
            self.rate = next;
            self.safe = next;
            self.lossy = through;
            self.first_pass_mpps = 0;
            self.slow_start = false;
            self.decisions
                .push(self.decision(GovernorReason::Loss, (s, a), None));
        } else if rest_sent >= MIN_REFS || (s == 0 && self.refs.is_empty() && self.slow_start) {
            // (No reference at all — nothing answered yet, or a sender idle at a
            // pass boundary — is evidence only in slow start: after a loss the
            // rate climbs on answered references alone.)
            // After the first loss, a rate the sender did not reach (a busy
            // machine) was not tried: climbing further would learn nothing.
            let tried = self.slow_start || actual == 0 || actual * 10 >= self.rate * 9;
            // A retry pass climbs back toward the rate that lost, never to it:
            // a first pass too short to find the path's rate (a cut undershoots
            // by at most ÷4) does not leave every retry at the undershoot.
            let retry_cap = self.lossy / 20 * 19;
            let may_climb = !self.retry_pass || self.rate < retry_cap;
            if may_climb && self.rate < self.ceiling && tried {
                let r = self.rate;
                let up = if self.slow_start {
                    r.saturating_mul(4)
                } else if self.lossy > r {
                    // Below the rate that lost: halfway to it, at most ×1.25.
                    (r + (self.lossy - r) / 2)
                        .min(r + r / 4)
                        .max(r + r.div_ceil(32))
                } else {
                    r + r.div_ceil(32)
                };
                if s > 0 && !self.slow_start {
                    // This rate worked: retries may use it.
                    self.safe = r;
                }
                let up = if self.retry_pass {
                    up.min(retry_cap)
                } else {
                    up
                };
                self.rate = up.min(self.ceiling);
                self.decisions
                    .push(self.decision(GovernorReason::Clear, (s, a), None));
            }
        } else if s < MIN_REFS {
            // Too few references to tell yet: keep counting.
            self.win_lost = win;
            return false;
        }
        // (Else enough references, nearly all of them to networks with a rate
        // of their own, as in a retry pass that probes only those: the
        // networks' rates change, the scan's does not; no climbing on the few
        // references to the others.)
        self.net_decisions(&win, now_ns, local);
        self.new_epoch(now_ns, sent);
        self.rate != before
    }

    /// Networks with a rate of their own go down on loss and up without it;
    /// with `may_add`, a network whose loss is its own gets a rate of its own.
    fn net_decisions(&mut self, win: &HashMap<NetKey, (u32, u32)>, now_ns: u64, may_add: bool) {
        let nets_seen = self.history.len().max(1) as u64;
        let share = (self.rate / nets_seen).max(1000);
        let mut changes = Vec::new();
        for (net, (ns, nl)) in win {
            let h = self.history[net];
            let room = self.slow.len() < MAX_SLOW_NETS;
            match self.slow.get_mut(net) {
                Some(sn) if *nl > 0 => {
                    // As the scan's own decrease: 0.95 × the rate that got
                    // through ((answered + 1) / (sent + 2) of its references),
                    // at most ÷4 at once, so a few decisions land under a
                    // policer however far above it the network's rate was.
                    let got =
                        u128::from(sn.rate_mpps) * u128::from(ns - nl + 1) / u128::from(ns + 2);
                    sn.rate_mpps = ((got * 19 / 20) as u64)
                        .max(sn.rate_mpps / 4)
                        .max(self.floor.clamp(1, 1000));
                    sn.bucket = TokenBucket::new(sn.rate_mpps, 1, now_ns);
                    changes.push((*net, GovernorReason::NetLoss, sn.rate_mpps, (*ns, ns - nl)));
                }
                Some(sn) => {
                    sn.rate_mpps += sn.rate_mpps / 4;
                    if sn.rate_mpps >= share {
                        changes.push((*net, GovernorReason::NetClear, share, (*ns, *ns)));
                    } else {
                        sn.bucket = TokenBucket::new(sn.rate_mpps, 1, now_ns);
                    }
                }
                None if may_add && *nl > 0 && h.own_loss() && room => {
                    let rate = (share / 2).max(1000);
                    self.slow.insert(
                        *net,
                        SlowNet {
                            bucket: TokenBucket::new(rate, 1, now_ns),
                            rate_mpps: rate,
                        },
                    );
                    changes.push((*net, GovernorReason::NetLoss, rate, (*ns, ns - nl)));
                }
                None => {}
            }
        }
        for (net, reason, rate, refs) in changes {
            if reason == GovernorReason::NetClear {
                self.slow.remove(&net);
                self.history.remove(&net);
            }
            self.decisions
                .push(self.decision(reason, refs, Some((net, rate))));
        }
    }

    fn decision(
        &self,
        reason: GovernorReason,
        refs: (u32, u32),
        net: Option<(NetKey, u64)>,
    ) -> Decision {
        Decision {
            reason,
            rate_mpps: self.rate,
            refs,
            net,
            slow_nets: self.slow.len() as u32,
        }
    }
}

/// Networks the pool keeps recent answers of, apart (a direct-mapped table).
const POOL_NETS: usize = 4096;
/// Recent answers kept per network.
const POOL_WAYS: usize = 4;

/// Recent answered walk values, for references: a ring the receiver writes and
/// the sender reads, without locks; and, per network (a direct-mapped table of
/// `POOL_NETS` × `POOL_WAYS` slots), its latest few answers, so that a
/// reference can re-probe the network the walk is probing. Drawn from the ring
/// alone, references follow the answers: a network that loses most of its
/// probes answers little, so it was almost never referenced and its loss went
/// unseen (one slow /24 in a /20 got a handful of references in a whole scan).
pub struct RefPool {
    slots: Vec<std::sync::atomic::AtomicU64>,
    head: std::sync::atomic::AtomicU64,
    by_net: Vec<std::sync::atomic::AtomicU64>,
}

impl RefPool {
    /// A pool of `n` slots.
    pub fn new(n: usize) -> RefPool {
        let mut slots = Vec::with_capacity(n);
        slots.resize_with(n, || std::sync::atomic::AtomicU64::new(0));
        let mut by_net = Vec::with_capacity(POOL_NETS * POOL_WAYS);
        by_net.resize_with(POOL_NETS * POOL_WAYS, || {
            std::sync::atomic::AtomicU64::new(0)
        });
        RefPool {
            slots,
            head: std::sync::atomic::AtomicU64::new(0),
            by_net,
        }
    }

    fn net_slot(net: NetKey) -> usize {
        // The network's bits above the /24 or /48, mixed (SipHash would be
        // overkill: a collision only sends a reference elsewhere).
        let x = (net.0 >> 8) as u64 ^ (net.0 >> 72) as u64;
        (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % POOL_NETS
    }

    /// Remember that `value`, in network `net`, answered (one writer: the receiver).
    #[inline]
    pub fn push(&self, value: u64, net: NetKey) {
        use std::sync::atomic::Ordering::Relaxed;
        let h = self.head.load(Relaxed);
        self.slots[(h % self.slots.len() as u64) as usize].store(value + 1, Relaxed);
        self.head.store(h + 1, Relaxed);
        let way = (h % POOL_WAYS as u64) as usize;
        self.by_net[Self::net_slot(net) * POOL_WAYS + way].store(value + 1, Relaxed);
    }

    /// The `k`-th value (any `k`; wraps), if that slot was written.
    #[inline]
    pub fn pick(&self, k: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let filled = self.head.load(Relaxed).min(self.slots.len() as u64);
        if filled == 0 {
            return None;
        }
        self.slots[(k % filled) as usize]
            .load(Relaxed)
            .checked_sub(1)
    }

    /// One of the latest answers seen in network `net` (the `k`-th of its
    /// slots; wraps), if any: it may belong to another network that shares
    /// the slot, which the caller checks.
    #[inline]
    pub fn pick_in(&self, net: NetKey, k: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let base = Self::net_slot(net) * POOL_WAYS;
        (0..POOL_WAYS as u64).find_map(|i| {
            let way = ((k + i) % POOL_WAYS as u64) as usize;
            self.by_net[base + way].load(Relaxed).checked_sub(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MS: u64 = 1_000_000;

    /// Drive a governor against a token-bucket policer of `policer` probes/s
    /// for `secs` simulated seconds; every reference passing the policer is
    /// answered 1 ms later. Returns the governor and its rate each 100 ms.
    fn against_policer(policer: u64, ceiling: u64, secs: u64) -> (Governor, Vec<u64>) {
        let mut g = Governor::new(GovernorSettings::ADAPTIVE, ceiling * 1000, 0);
        let mut pol = TokenBucket::new(policer * 1000, policer / 100, 0);
        let mut send = TokenBucket::new(g.rate_mpps(), 64, 0);
        let (mut t, mut sent, mut k) = (0u64, 0u64, 0u64);
        let mut due: Vec<(u64, u64)> = Vec::new();
        let mut rates = Vec::new();
        while t < secs * 1000 * MS {
            let n = send.take(t, 64);
            for _ in 0..n {
                sent += 1;
                let passes = pol.take(t, 1) == 1;
                if g.ref_every() > 0 && sent.is_multiple_of(g.ref_every()) {
                    k += 1;
                    let net =
                        NetKey::of(IpAddr::V4(Ipv4Addr::from(0xC613_0000 + (k as u32 % 4096))));
                    if g.sent_ref(k, net, t, sent) && passes {
                        due.push((t + MS, k));
                    }
                }
            }
            due.retain(|&(at, v)| {
                if at <= t {
                    g.answered(v, t);
                    false
                } else {
                    true
                }
            });
            if g.tick(t, sent) {
                let b = (g.rate_mpps() / 200_000).clamp(1, 64);
                send = TokenBucket::new(g.rate_mpps(), b, t);
            }
            if t.is_multiple_of(100 * MS) {
                rates.push(g.rate_mpps() / 1000);
            }
            t += 100_000; // 0.1 ms steps
        }
        (g, rates)
    }

    #[test]
    fn it_settles_within_a_factor_of_1_5_of_a_policer_far_below_the_ceiling() {
        for policer in [20_000, 40_000, 100_000] {
            let (g, rates) = against_policer(policer, 1_000_000, 4);
            let late = &rates[20..];
            let mean = late.iter().sum::<u64>() / late.len() as u64;
            assert!(
                mean * 3 >= policer * 2 && mean * 2 <= policer * 3,
                "policer {policer}/s: mean rate {mean}/s over the last 2 s ({rates:?})"
            );
            assert!(g.refs_sent() > 0);
        }
    }

    #[test]
    fn without_loss_it_climbs_to_the_ceiling_and_stays() {
        let (g, rates) = against_policer(10_000_000, 300_000, 1);
        assert_eq!(g.rate_mpps(), 300_000_000, "{rates:?}");
        assert!(rates[3..].iter().all(|r| *r == 300_000), "{rates:?}");
    }

    /// Clean windows of references in a retry pass, from `t`.
    fn clean_retry_windows(g: &mut Governor, mut t: u64) {
        for v in 0..1000u64 {
            let net = NetKey::of(IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1)));
            g.sent_ref(1_000_000 + v, net, t, v * 100);
            g.answered(1_000_000 + v, t + MS);
            t += MS;
            g.tick(t, 0);
        }
    }

    #[test]
    fn retry_passes_climb_back_toward_the_rate_that_lost_never_to_it() {
        let (mut g, _) = against_policer(40_000, 1_000_000, 2);
        g.forget_refs(0, 0);
        // The first pass ended right after a cut that undershot (÷4 at most).
        g.rate = g.lossy / 4;
        g.safe = g.rate;
        g.set_retry_pass(true);
        let start = g.rate_mpps();
        clean_retry_windows(&mut g, 10_000 * MS);
        let cap = g.lossy / 20 * 19;
        assert_eq!(g.rate_mpps(), cap, "from {start} toward {}", g.lossy);
        // At the cap it stays.
        clean_retry_windows(&mut g, 20_000 * MS);
        assert_eq!(g.rate_mpps(), cap);
    }

    #[test]
    fn after_a_loss_time_without_references_is_no_reason_to_climb() {
        // A sender idle at a pass boundary, or probing only silent ports.
        let (mut g, _) = against_policer(40_000, 1_000_000, 2);
        g.forget_refs(3_000 * MS, 0);
        let rate = g.rate_mpps();
        for k in 1..=100 {
            g.tick(3_000 * MS + k * 50 * MS, 0);
        }
        assert_eq!(g.rate_mpps(), rate);
    }

    #[test]
    fn a_retry_pass_after_a_first_pass_without_loss_keeps_its_rate() {
        let mut g = Governor::new(GovernorSettings::ADAPTIVE, 300_000_000, 0);
        g.set_retry_pass(true);
        let start = g.rate_mpps();
        clean_retry_windows(&mut g, 10_000 * MS);
        assert_eq!(g.rate_mpps(), start);
    }

    #[test]
    fn a_fixed_rate_sends_no_references_and_never_decides() {
        let mut g = Governor::new(GovernorSettings::FIXED, 25_000_000, 0);
        assert_eq!((g.rate_mpps(), g.ref_every()), (25_000_000, 0));
        assert!(!g.tick(10_000 * MS, 1));
        assert!(g.take_decisions().is_empty());
    }

    #[test]
    fn floor_ceiling_and_a_learned_start() {
        let s = GovernorSettings {
            adaptive: true,
            floor_mpps: 30_000_000,
            start_mpps: Some(35_000_000),
        };
        let mut g = Governor::new(s, 1_000_000_000, 0);
        assert_eq!(
            g.rate_mpps(),
            35_000_000,
            "a resume starts where it left off"
        );
        // Every reference lost: the rate goes down to the floor and no further.
        let net = NetKey::of(IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1)));
        let mut t = 0;
        for v in 0..2000u64 {
            g.sent_ref(v, NetKey(net.0 + (v as u128 % 512) * 256), t, v * 100);
            t += MS;
            g.tick(t, v * 100);
        }
        assert_eq!(g.rate_mpps(), 30_000_000);
        let d = g.take_decisions();
        assert!(d.iter().any(|d| d.reason == GovernorReason::Loss), "{d:?}");
        // No ceiling: 100 M/s.
        assert_eq!(
            Governor::new(GovernorSettings::ADAPTIVE, 0, 0).ceiling_mpps(),
            NO_CEILING_MPPS
        );
    }

    /// Windows of 10 ms, from `t` and reference `v` while `go`: 40 references
    /// each, 1 to `slow` (which answers none), the rest to 200 other /24s
    /// (answered 1 ms later).
    fn one_silent_net_in_forty(
        g: &mut Governor,
        slow: NetKey,
        t: &mut u64,
        v: &mut u64,
        go: impl Fn(&Governor, u64) -> bool,
    ) {
        while go(g, *t) {
            for i in 0..40u32 {
                *v += 1;
                let net = if i == 0 {
                    slow
                } else {
                    NetKey::of(IpAddr::V4(Ipv4Addr::from(
                        0xC613_0000 + (*v as u32 % 200) * 256,
                    )))
                };
                if g.sent_ref(*v, net, *t, *v * 10) && net != slow {
                    g.answered(*v, *t + MS);
                }
            }
            *t += 10 * MS;
            g.tick(*t, *t / MS * 100);
        }
    }

    #[test]
    fn one_lossy_network_gets_a_rate_of_its_own_and_the_scan_keeps_its_rate() {
        let mut g = Governor::new(GovernorSettings::ADAPTIVE, 100_000_000, 0);
        let slow = NetKey::of(IpAddr::V4(Ipv4Addr::new(198, 19, 7, 9)));
        let (mut t, mut v) = (0, 0);
        one_silent_net_in_forty(&mut g, slow, &mut t, &mut v, |_, t| t < 3000 * MS);
        assert_eq!(g.rate_mpps(), 100_000_000, "the scan stays at its ceiling");
        assert!(g.has_slow_nets());
        let d = g.take_decisions();
        let net = d
            .iter()
            .find(|d| d.reason == GovernorReason::NetLoss)
            .and_then(|d| d.net)
            .expect("a NetLoss decision");
        assert_eq!(net.0, slow);
        assert_eq!(net.0.network(), ("198.19.7.0".parse().unwrap(), 24));
        // Before the network has had MIN_NET_REFS references its loss counts
        // for the scan (one decrease at most); never after.
        let first_net = d
            .iter()
            .position(|d| d.reason == GovernorReason::NetLoss)
            .unwrap();
        assert!(
            d.iter()
                .filter(|d| d.reason == GovernorReason::Loss)
                .count()
                <= 1,
            "{d:?}"
        );
        assert!(
            !d[first_net..]
                .iter()
                .any(|d| d.reason == GovernorReason::Loss),
            "{d:?}"
        );
        // Its bucket lets one probe through now and then, the others always.
        let mut passed = 0;
        for i in 0..1000u64 {
            passed += u32::from(g.net_allows(slow, t + i * 1000));
        }
        assert!(passed < 10, "{passed}");
        assert!(g.net_allows(NetKey::of("198.19.8.1".parse().unwrap()), t));
    }

    /// A retry pass that probes only the slow network: every reference goes
    /// to it. Its loss stays its own (the scan's rate is not cut: before, with
    /// one network in the window, "a quarter of the window's networks" was no
    /// network at all and its loss counted for the scan), and its rate comes
    /// down to what got through (before: halved per decision, too slow to
    /// land under a policer within a scan's few retry passes).
    #[test]
    fn a_slow_network_alone_in_a_window_keeps_its_loss_and_lands_on_what_got_through() {
        let mut g = Governor::new(GovernorSettings::ADAPTIVE, 100_000_000, 0);
        let slow = NetKey::of(IpAddr::V4(Ipv4Addr::new(198, 19, 7, 9)));
        let (mut t, mut v) = (0, 0);
        one_silent_net_in_forty(&mut g, slow, &mut t, &mut v, |g, t| {
            !g.has_slow_nets() && t < 3000 * MS
        });
        assert!(g.has_slow_nets());
        let rate = g.rate_mpps();
        let net_rate = g.slow[&slow].rate_mpps;
        g.take_decisions();
        // Retry windows: 40 references, all to the slow network, 1 in 10 answered.
        for _ in 0..3 {
            for i in 0..40u64 {
                v += 1;
                if g.sent_ref(v, slow, t, v * 10) && i % 10 == 0 {
                    g.answered(v, t + MS);
                }
            }
            t += 100 * MS;
            g.tick(t, t / MS * 100);
        }
        let d = g.take_decisions();
        assert!(
            !d.iter().any(|d| d.reason == GovernorReason::Loss),
            "the scan's rate was cut: {d:?}"
        );
        assert_eq!(g.rate_mpps(), rate);
        let cuts: Vec<u64> = d
            .iter()
            .filter(|d| d.reason == GovernorReason::NetLoss)
            .map(|d| d.net.unwrap().1)
            .collect();
        assert_eq!(cuts.len(), 3, "{d:?}");
        // (4 + 1) / (40 + 2) got through: ÷4, the most at once, each time.
        assert_eq!(cuts[0], net_rate / 4, "{cuts:?}");
        assert_eq!(cuts[2], net_rate / 64, "{cuts:?}");
    }

    #[test]
    fn net_keys_are_slash_24_and_slash_48() {
        let a = NetKey::of("198.19.3.77".parse().unwrap());
        assert_eq!(a, NetKey::of("198.19.3.1".parse().unwrap()));
        assert_ne!(a, NetKey::of("198.19.4.1".parse().unwrap()));
        let b = NetKey::of("2001:db8:100:5::1".parse().unwrap());
        assert_eq!(b.network(), ("2001:db8:100::".parse().unwrap(), 48));
    }

    #[test]
    fn the_pool_hands_back_recent_answers() {
        let p = RefPool::new(4);
        assert_eq!(p.pick(3), None);
        let net = NetKey::of("198.19.0.1".parse().unwrap());
        for v in [10, 0, 7] {
            p.push(v, net);
        }
        let mut got: Vec<u64> = (0..3).filter_map(|k| p.pick(k)).collect();
        got.sort();
        assert_eq!(got, [0, 7, 10]);
        for v in 100..110 {
            p.push(v, net);
        }
        assert!((0..4).all(|k| p.pick(k).unwrap() >= 106));
    }

    #[test]
    fn the_pool_hands_back_a_rare_network_s_answers_too() {
        // One answer of a network among 10 000 of others: the ring forgot it,
        // the network's own slots did not.
        let p = RefPool::new(4096);
        let rare = NetKey::of("198.19.5.9".parse().unwrap());
        p.push(5_000_000, rare);
        for v in 0..10_000u64 {
            let a = Ipv4Addr::from(0xC613_0000 + (v as u32 % 16) * 256 + 1);
            if NetKey::of(IpAddr::V4(a)) != rare {
                p.push(v, NetKey::of(IpAddr::V4(a)));
            }
        }
        assert!((0..4096).all(|k| p.pick(k) != Some(5_000_000)));
        assert!((0..4).all(|k| p.pick_in(rare, k) == Some(5_000_000)));
        assert_eq!(
            p.pick_in(NetKey::of("198.19.200.1".parse().unwrap()), 0),
            None
        );
    }
}
