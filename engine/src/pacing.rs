//! Pacing: a token bucket in exact integer arithmetic, and nmap's `-T0`..`-T5`
//! timing templates mapped to rates, waits and retries.
//!
//! Owns: how many probes may go out at a given instant. Never sleeps by itself
//! (the sender asks how long to wait) and never touches sockets.
//!
//! The bucket counts in units of 10⁻¹² token: `elapsed_ns × rate_mpps` units arrive
//! per elapsed nanosecond (rate in milli-probes per second), a probe costs 10¹²
//! units. No floating point, so over any run the number of probes granted is
//! `⌊elapsed × rate⌋` exactly, as long as the sender never falls further behind
//! than the bucket holds. The SYN sender uses [`TokenBucket::catchup_burst`]: the
//! bucket holds 100 ms of probes, so a sender thread that was descheduled for a
//! moment catches up (in batches of 64, back to back) and the run's rate stays
//! exact; a pause resets the bucket so nothing is caught up after it.
//!
//! | template | name       | rate (probes/s) | --max-retries | --wait | retry gap |
//! |----------|------------|-----------------|---------------|--------|-----------|
//! | `-T0`    | paranoid   | 0.003 (1/333 s)| 2             | 30 s   | 30 s      |
//! | `-T1`    | sneaky     | 0.066 (1/15 s) | 2             | 15 s   | 15 s      |
//! | `-T2`    | polite     | 2.5             | 2             | 10 s   | 10 s      |
//! | `-T3`    | normal     | 10 000          | 2             | 3 s    | 1 s       |
//! | `-T4`    | aggressive | 100 000         | 1             | 2 s    | 500 ms    |
//! | `-T5`    | insane     | 1 000 000       | 0             | 1 s    | 250 ms    |
//!
//! Raw scans retry up to nmap's caps instead ([`raw_max_retries`]: 10, 6 at
//! `-T4`, 2 at `-T5`), a pass after the first retry only while retries find answers.
//!
//! `--rate`, `--max-retries` and `--wait` override the template's value; `--max-rate`
//! caps whatever rate results. The retry gap is the least time between the end of one
//! pass and the start of the next (so a small scan does not retry before replies could
//! have come back).

/// Units per token.
const UNIT: u128 = 1_000_000_000_000;

/// Exact token bucket.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate_mpps: u128,
    burst: u64,
    units: u128,
    last_ns: u64,
}

impl TokenBucket {
    /// A bucket filling at `rate_mpps` milli-probes per second holding at most `burst`
    /// probes, starting empty at `now_ns`. Rate 0 means unlimited.
    pub fn new(rate_mpps: u64, burst: u64, now_ns: u64) -> TokenBucket {
        TokenBucket {
            rate_mpps: rate_mpps as u128,
            burst: burst.max(1),
            units: 0,
            last_ns: now_ns,
        }
    }

    /// 100 ms of probes at `rate_mpps` (at least 1): what the SYN sender may catch
    /// up after a stall, so that the rate over a run is exact.
    pub fn catchup_burst(rate_mpps: u64) -> u64 {
        (rate_mpps / 10_000).max(1)
    }

    /// The burst that keeps sends smooth at `rate_mpps`: about 1/200 s of probes,
    /// between 1 and 64.
    pub fn smooth_burst(rate_mpps: u64) -> u64 {
        (rate_mpps / 200_000).clamp(1, 64)
    }

    /// Rate in milli-probes per second (0 = unlimited).
    pub fn rate_mpps(&self) -> u64 {
        self.rate_mpps as u64
    }

    fn refill(&mut self, now_ns: u64) {
        if now_ns > self.last_ns {
            let add = (now_ns - self.last_ns) as u128 * self.rate_mpps;
            self.units = (self.units + add).min(self.burst as u128 * UNIT);
            self.last_ns = now_ns;
        }
    }

    /// Take up to `want` tokens at `now_ns`; returns how many were granted.
    pub fn take(&mut self, now_ns: u64, want: u64) -> u64 {
        if self.rate_mpps == 0 {
            return want;
        }
        self.refill(now_ns);
        let n = ((self.units / UNIT) as u64).min(want);
        self.units -= n as u128 * UNIT;
        n
    }

    /// Nanoseconds from `now_ns` until `n` (≤ burst) tokens are available.
    pub fn wait_ns(&mut self, now_ns: u64, n: u64) -> u64 {
        if self.rate_mpps == 0 {
            return 0;
        }
        self.refill(now_ns);
        let need = n.min(self.burst) as u128 * UNIT;
        if self.units >= need {
            0
        } else {
            ((need - self.units).div_ceil(self.rate_mpps)) as u64
        }
    }

    /// Change the rate and burst at `now_ns` (the governor's decisions): tokens
    /// earned so far at the old rate are kept, up to the new burst.
    pub fn set_rate(&mut self, rate_mpps: u64, burst: u64, now_ns: u64) {
        self.refill(now_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.rate_mpps = rate_mpps as u128;
        self.burst = burst.max(1);
        self.units = self.units.min(self.burst as u128 * UNIT);
    }

    /// Start counting afresh at `now_ns` (after a pause), with an empty bucket.
    pub fn reset(&mut self, now_ns: u64) {
        self.units = 0;
        self.last_ns = now_ns;
    }
}

/// What a timing template sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Probes per second × 1000.
    pub rate_mpps: u64,
    /// Retransmissions of an unanswered probe.
    pub max_retries: u32,
    /// Wait for late replies after the last probe, ms.
    pub wait_ms: u64,
    /// Least time between two passes, ms.
    pub retry_gap_ms: u64,
}

/// The `-T` template `t` (0..=5).
pub fn timing(t: u8) -> Option<Timing> {
    let (rate_mpps, max_retries, wait_ms, retry_gap_ms) = match t {
        0 => (1000 / 300, 2, 30_000, 30_000),
        1 => (1000 / 15, 2, 15_000, 15_000),
        2 => (2_500, 2, 10_000, 10_000),
        3 => (10_000_000, 2, 3_000, 1_000),
        4 => (100_000_000, 1, 2_000, 500),
        5 => (1_000_000_000, 0, 1_000, 250),
        _ => return None,
    };
    Some(Timing {
        rate_mpps,
        max_retries,
        wait_ms,
        retry_gap_ms,
    })
}

/// The most retry passes of a raw scan (`-sS`, `-sA`, ..., `-sn`) at template
/// `t` (0..=5) when `--max-retries` is not given: nmap's caps (10, 6 at `-T4`,
/// 2 at `-T5`). A raw scan sends a retry pass after the first only while the
/// pass before it found answers (one per 1 000 of its probes at least), so on a
/// clean path it sends two passes whatever the cap; the cap matters on a lossy
/// one (a policer the rate governor is still learning), where retries keep
/// finding ports.
pub fn raw_max_retries(t: u8) -> u32 {
    match t {
        0..=3 => 10,
        4 => 6,
        _ => 2,
    }
}

/// Parse a rate like `50000`, `2.5`, `100k`, `1.5M` into milli-probes per second.
pub fn parse_rate(s: &str) -> Option<u64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1_000.0),
        'm' | 'M' => (&t[..t.len() - 1], 1_000_000.0),
        _ => (t, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let mpps = (v * mult * 1000.0).round();
    (mpps <= 1e15).then_some(mpps as u64)
}

/// Parse a duration like `3`, `2.5s`, `500ms`, `1m` into milliseconds (bare numbers are seconds).
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (t, 1000.0)
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0 && v * mult < 1e15).then(|| (v * mult).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn grants_exactly_rate_times_time_plus_burst() {
        // 1234.567 probes/s over 100 simulated seconds, asked every 37 µs.
        let mut b = TokenBucket::new(1_234_567, 8, 0);
        let mut granted = 0;
        let mut t = 0;
        while t <= 100 * S {
            granted += b.take(t, 64);
            t += 37_000;
        }
        let expect = 123_456; // ⌊100 s × 1234.567⌋ (the bucket starts empty)
        assert!(
            granted <= expect && granted >= expect - 1,
            "granted {granted}"
        );
    }

    #[test]
    fn a_stalling_sender_keeps_the_exact_rate_with_the_catchup_burst() {
        // 25 000 probes/s for 10 simulated seconds; the sender asks for up to 64 every
        // 1 ms but is descheduled for 30 ms every 200 ms.
        let run = |burst: u64| {
            let rate = 25_000_000;
            let mut b = TokenBucket::new(rate, burst, 0);
            let (mut t, mut got) = (0u64, 0u64);
            while t < 10 * S {
                got += b.take(t, 64);
                t += if t % 200_000_000 < 1_000_000 {
                    30_000_000
                } else {
                    1_000_000
                };
            }
            got
        };
        let exact = run(TokenBucket::catchup_burst(25_000_000));
        assert!((249_900..=250_000).contains(&exact), "{exact}");
        let smooth = run(TokenBucket::smooth_burst(25_000_000));
        assert!(
            smooth < 240_000,
            "a 64-probe burst loses the stalls: {smooth}"
        );
    }

    #[test]
    fn burst_caps_after_idle_time() {
        let mut b = TokenBucket::new(1_000_000, 10, 0); // 1000/s
        assert_eq!(b.take(10 * S, 1000), 10, "idle time only fills the burst");
        assert_eq!(b.take(10 * S, 1000), 0);
        assert_eq!(b.take(10 * S + 5_000_000, 1000), 5);
    }

    #[test]
    fn wait_says_when_the_next_token_comes() {
        let mut b = TokenBucket::new(2_500, 1, 0); // 2.5/s: one per 400 ms
        assert_eq!(b.wait_ns(0, 1), 400_000_000);
        assert_eq!(b.take(399_999_999, 1), 0);
        assert_eq!(b.wait_ns(399_999_999, 1), 1);
        assert_eq!(b.take(400_000_000, 1), 1);
        let mut slow = TokenBucket::new(1000 / 300, 1, 0);
        assert_eq!(slow.wait_ns(0, 1), 333_333_333_334); // 1 / 0.003 s, rounded up
        let mut unlimited = TokenBucket::new(0, 1, 0);
        assert_eq!((unlimited.take(0, 99), unlimited.wait_ns(0, 99)), (99, 0));
    }

    #[test]
    fn a_new_rate_keeps_what_was_earned_up_to_the_new_burst() {
        let mut b = TokenBucket::new(1_000_000, 100, 0); // 1000/s
        b.set_rate(2_000_000, 100, 10_000_000); // 10 tokens earned, now 2000/s
        assert_eq!(b.take(20_000_000, 1000), 30);
        b.set_rate(1_000_000, 4, 100 * S);
        assert_eq!(b.take(100 * S, 1000), 4, "cut to the new burst");
    }

    #[test]
    fn reset_forgets_the_pause() {
        let mut b = TokenBucket::new(1_000_000, 64, 0);
        b.reset(100 * S);
        assert_eq!(b.take(100 * S, 64), 0);
        assert_eq!(b.take(100 * S + 10_000_000, 64), 10);
    }

    #[test]
    fn templates_and_parsers() {
        assert_eq!(timing(3).unwrap().rate_mpps, 10_000_000);
        assert_eq!(timing(5).unwrap().max_retries, 0);
        assert_eq!(timing(6), None);
        assert_eq!(parse_rate("50000"), Some(50_000_000));
        assert_eq!(parse_rate("2.5"), Some(2_500));
        assert_eq!(parse_rate("100k"), Some(100_000_000));
        assert_eq!(parse_rate("1.5M"), Some(1_500_000_000));
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_rate("-3"), None);
        assert_eq!(parse_duration_ms("3"), Some(3000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("2.5s"), Some(2500));
        assert_eq!(parse_duration_ms("1m"), Some(60_000));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(TokenBucket::smooth_burst(1_000), 1);
        assert_eq!(TokenBucket::smooth_burst(1_000_000_000), 64);
        assert_eq!(TokenBucket::catchup_burst(25_000_000), 2_500);
        assert_eq!(TokenBucket::catchup_burst(2_500), 1);
    }
}
