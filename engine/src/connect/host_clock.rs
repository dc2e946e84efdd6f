//! `--host-timeout` for the socket scans and `-sV`: each host's clock starts at
//! its first probe; once it has run longer than the limit, the host's remaining
//! probes are skipped (nmap: "Skipping host due to host timeout").
//!
//! Owns the per-host start times (one entry per host probed, only when a limit
//! is set) and the count of ports skipped per timed-out host. Never touches
//! sockets or events.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

/// Per-host clocks of one scan phase.
#[derive(Debug, Default)]
pub struct HostClock {
    limit_ns: Option<u64>,
    started: HashMap<IpAddr, u64>,
    skipped: BTreeMap<IpAddr, u64>,
}

impl HostClock {
    /// Clocks that expire after `limit` (`None`: never; nothing is kept).
    pub fn new(limit: Option<Duration>) -> HostClock {
        HostClock {
            limit_ns: limit.map(|d| d.as_nanos().min(u64::MAX as u128) as u64),
            ..HostClock::default()
        }
    }

    /// Whether a probe of `ip` may start at `now_ns` (starting the host's clock at
    /// its first probe); false once the host has timed out (the probe counts as
    /// skipped).
    pub fn admit(&mut self, ip: IpAddr, now_ns: u64) -> bool {
        if self.expired(ip, now_ns) {
            *self.skipped.entry(ip).or_default() += 1;
            return false;
        }
        if self.limit_ns.is_some() {
            self.started.entry(ip).or_insert(now_ns);
        }
        true
    }

    /// Whether `ip`'s clock has run past the limit at `now_ns`.
    pub fn expired(&self, ip: IpAddr, now_ns: u64) -> bool {
        match (self.limit_ns, self.started.get(&ip)) {
            (Some(limit), Some(&t0)) => now_ns.saturating_sub(t0) > limit,
            _ => false,
        }
    }

    /// Count a port of `ip` given up on after it had started.
    pub fn give_up(&mut self, ip: IpAddr) {
        *self.skipped.entry(ip).or_default() += 1;
    }

    /// The hosts that timed out, with how many of their ports were skipped, by address.
    pub fn timed_out(&self) -> Vec<(IpAddr, u64)> {
        self.skipped.iter().map(|(a, n)| (*a, *n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_times_out_after_its_first_probe_plus_the_limit() {
        let a: IpAddr = "198.19.0.1".parse().unwrap();
        let b: IpAddr = "198.19.0.2".parse().unwrap();
        let mut c = HostClock::new(Some(Duration::from_millis(10)));
        assert!(c.admit(a, 1_000_000));
        assert!(c.admit(a, 11_000_000), "exactly the limit: still in time");
        assert!(
            c.admit(b, 20_000_000),
            "b's clock starts at its own first probe"
        );
        assert!(!c.admit(a, 11_000_001));
        assert!(!c.admit(a, 50_000_000));
        assert!(c.admit(b, 30_000_000));
        assert_eq!(c.timed_out(), vec![(a, 2)]);
        let mut none = HostClock::new(None);
        assert!(none.admit(a, 0) && none.admit(a, u64::MAX));
        assert!(none.timed_out().is_empty() && none.started.is_empty());
    }
}
