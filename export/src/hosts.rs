//! Grouping sorted result rows into hosts, and nmap's rule for which ports a report
//! lists and which it only counts.
//!
//! Rows arrive sorted by (address, protocol, port); a [`Host`] is the run of rows of
//! one address. Its buffer is bounded by the ports of one host (at most 2 × 65 536
//! rows), never by the number of results. This module never writes output.

use prtip_store::{Addr, PortState, Protocol, Reason, ResultRow};

/// nmap lists a non-open state port by port only when at most this many ports of
/// the host share it; above, the report says "Not shown: N closed ports".
pub const MAX_LISTED_PER_STATE: u64 = 25;

const STATES: [PortState; 5] = [
    PortState::Open,
    PortState::Closed,
    PortState::Filtered,
    PortState::OpenFiltered,
    PortState::Unfiltered,
];

fn state_index(s: PortState) -> usize {
    match s {
        PortState::Open => 0,
        PortState::Closed => 1,
        PortState::Filtered => 2,
        PortState::OpenFiltered => 3,
        PortState::Unfiltered => 4,
    }
}

/// Whether a reply with this reason can only have come from the target itself.
fn proves_up(r: Reason) -> bool {
    !matches!(r, Reason::NoResponse | Reason::IcmpUnreachable)
}

/// All result rows of one address, sorted by (protocol, port).
#[derive(Clone, Debug, Default)]
pub struct Host {
    /// The rows; never empty when handed to a renderer.
    pub rows: Vec<ResultRow>,
    /// Silent ports of a wide scan that are counted, not listed (a scan that covers
    /// more than `prtip_store::SILENT_ROWS_MAX` ports): part of [`Host::hidden`]
    /// and [`Host::count`], never of [`Host::rows`] or [`Host::shown`].
    pub extra: Vec<ResultRow>,
    counts: [u64; 5],
}

/// Ports of one host in one state that a report summarises instead of listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hidden {
    /// Their state.
    pub state: PortState,
    /// Their protocol.
    pub proto: Protocol,
    /// How many.
    pub count: u64,
    /// Reasons and how many ports each, most frequent first.
    pub reasons: Vec<(Reason, u64)>,
}

impl Host {
    pub(crate) fn clear(&mut self) {
        self.rows.clear();
        self.extra.clear();
        self.counts = [0; 5];
    }

    /// Add counted-only silent ports (see [`Host::extra`]).
    pub fn add_extra(&mut self, rows: Vec<ResultRow>) {
        for r in &rows {
            self.counts[state_index(r.state)] += 1;
        }
        self.extra.extend(rows);
    }

    /// Ports of the host, listed or counted.
    pub fn port_count(&self) -> u64 {
        (self.rows.len() + self.extra.len()) as u64
    }

    /// Listed and counted rows (the listed first).
    pub fn all_rows(&self) -> impl Iterator<Item = &ResultRow> + '_ {
        self.rows.iter().chain(&self.extra)
    }

    pub(crate) fn push(&mut self, row: ResultRow) {
        if row.proto != Protocol::Host {
            self.counts[state_index(row.state)] += 1;
        }
        self.rows.push(row);
    }

    /// The host discovery result (`-sn`: a row of [`Protocol::Host`]), if any.
    /// It sorts after the host's port rows.
    pub fn status_row(&self) -> Option<&ResultRow> {
        self.rows.last().filter(|r| r.proto == Protocol::Host)
    }

    /// The rows of ports (every row but the host discovery result).
    pub fn port_rows(&self) -> &[ResultRow] {
        match self.status_row() {
            Some(_) => &self.rows[..self.rows.len() - 1],
            None => &self.rows,
        }
    }

    /// Build a host from rows of one address (tests, library users).
    pub fn from_rows(rows: Vec<ResultRow>) -> Host {
        let mut h = Host::default();
        for r in rows {
            h.push(r);
        }
        h
    }

    /// The address.
    pub fn addr(&self) -> Addr {
        self.rows[0].addr
    }

    /// The host name the user gave for this address, if any.
    pub fn hostname(&self) -> Option<&str> {
        self.rows.iter().find_map(|r| r.hostname.as_deref())
    }

    /// Ports in a state.
    pub fn count(&self, state: PortState) -> u64 {
        self.counts[state_index(state)]
    }

    /// The host itself answered at least once: some row was decided by a reply
    /// that only the host sends (SYN-ACK, RST, port unreachable, a UDP answer, a
    /// completed or refused connect). Silence does not count, and neither does an
    /// unreachable error (`host-unreach`): it comes from a router on the way or
    /// from the scanner's own kernel (no route, no neighbour), so it proves the
    /// opposite (nmap's rule: a host-unreachable from elsewhere means down).
    /// For host discovery (`-sn`), what discovery found.
    pub fn is_up(&self) -> bool {
        if let Some(s) = self.status_row() {
            return s.state == PortState::Open;
        }
        self.rows.iter().any(|r| proves_up(r.reason))
    }

    /// Not up, and an unreachable error answered for it (nmap's "down" with reason
    /// `host-unreach`); a host with no answer at all is neither up nor unreachable.
    pub fn is_unreachable(&self) -> bool {
        !self.is_up()
            && self
                .rows
                .iter()
                .any(|r| r.reason == Reason::IcmpUnreachable)
    }

    /// The reply that shows the host's status: the first that proves it up, else an
    /// unreachable error, else `no-response`; with its TTL (nmap's `<status reason>`).
    pub fn up_reason(&self) -> (Reason, u8) {
        if let Some(s) = self.status_row() {
            return (s.reason, s.ttl);
        }
        self.rows
            .iter()
            .find(|r| proves_up(r.reason))
            .or_else(|| {
                self.rows
                    .iter()
                    .find(|r| r.reason == Reason::IcmpUnreachable)
            })
            .map_or((Reason::NoResponse, 0), |r| (r.reason, r.ttl))
    }

    /// Smallest non-zero round-trip time among the rows, microseconds.
    pub fn min_rtt_us(&self) -> Option<u32> {
        self.rows.iter().map(|r| r.rtt_us).filter(|&t| t > 0).min()
    }

    /// Mean and mean absolute deviation of non-zero RTTs, microseconds.
    pub fn rtt_stats(&self) -> Option<(u64, u64)> {
        let rtts: Vec<u64> = self
            .rows
            .iter()
            .filter(|r| r.rtt_us > 0)
            .map(|r| r.rtt_us as u64)
            .collect();
        if rtts.is_empty() {
            return None;
        }
        let mean = rtts.iter().sum::<u64>() / rtts.len() as u64;
        let dev = rtts.iter().map(|&t| t.abs_diff(mean)).sum::<u64>() / rtts.len() as u64;
        Some((mean, dev))
    }

    /// Whether ports in this state are summarised (nmap: not open, more than 25
    /// ports; and any state with counted-only silent ports).
    pub fn is_hidden(&self, state: PortState) -> bool {
        state != PortState::Open
            && (self.count(state) > MAX_LISTED_PER_STATE
                || self.extra.iter().any(|r| r.state == state))
    }

    /// Rows a report lists port by port, in order.
    pub fn shown(&self) -> impl Iterator<Item = &ResultRow> + '_ {
        self.port_rows()
            .iter()
            .filter(move |r| !self.is_hidden(r.state))
    }

    /// Number of listed rows.
    pub fn shown_count(&self) -> u64 {
        STATES
            .iter()
            .filter(|&&s| !self.is_hidden(s))
            .map(|&s| self.count(s))
            .sum()
    }

    /// Summarised ports by (state, protocol), largest group first.
    pub fn hidden(&self) -> Vec<Hidden> {
        let mut out: Vec<Hidden> = Vec::new();
        for &state in &STATES {
            if !self.is_hidden(state) {
                continue;
            }
            for proto in [Protocol::Tcp, Protocol::Udp] {
                let mut reasons: Vec<(Reason, u64)> = Vec::new();
                let mut count = 0;
                for r in self
                    .all_rows()
                    .filter(|r| r.state == state && r.proto == proto)
                {
                    count += 1;
                    match reasons.iter_mut().find(|(re, _)| *re == r.reason) {
                        Some((_, n)) => *n += 1,
                        None => reasons.push((r.reason, 1)),
                    }
                }
                if count > 0 {
                    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
                    out.push(Hidden {
                        state,
                        proto,
                        count,
                        reasons,
                    });
                }
            }
        }
        out.sort_by_key(|h| std::cmp::Reverse(h.count));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::row;

    #[test]
    fn a_host_answered_only_by_unreachable_errors_is_not_up() {
        let mut a = row([10, 0, 0, 2], 22, PortState::Filtered, None, None);
        a.reason = Reason::IcmpUnreachable;
        let mut b = row([10, 0, 0, 2], 80, PortState::Filtered, None, None);
        b.reason = Reason::NoResponse;
        let h = Host::from_rows(vec![a.clone(), b.clone()]);
        assert!(!h.is_up());
        assert!(h.is_unreachable());
        assert_eq!(h.up_reason().0, Reason::IcmpUnreachable);
        let silent = Host::from_rows(vec![b.clone()]);
        assert!(!silent.is_up() && !silent.is_unreachable());
        let mut c = row([10, 0, 0, 2], 443, PortState::Closed, None, None);
        c.reason = Reason::Reset;
        let h = Host::from_rows(vec![a, b, c]);
        assert!(h.is_up() && !h.is_unreachable());
        assert_eq!(h.up_reason().0, Reason::Reset);
    }

    #[test]
    fn states_above_25_ports_are_hidden_open_never() {
        let mut rows = Vec::new();
        for p in 1..=30 {
            rows.push(row([10, 0, 0, 1], p, PortState::Closed, None, None));
        }
        for p in 100..=125 {
            rows.push(row([10, 0, 0, 1], p, PortState::Open, None, None));
        }
        for p in 200..=210 {
            rows.push(row([10, 0, 0, 1], p, PortState::Filtered, None, None));
        }
        let h = Host::from_rows(rows);
        assert!(h.is_hidden(PortState::Closed));
        assert!(!h.is_hidden(PortState::Open));
        assert!(!h.is_hidden(PortState::Filtered));
        assert_eq!(h.shown_count(), 26 + 11);
        assert_eq!(h.shown().count(), 37);
        assert_eq!(
            h.hidden(),
            vec![Hidden {
                state: PortState::Closed,
                proto: Protocol::Tcp,
                count: 30,
                reasons: vec![(Reason::Reset, 30)]
            }]
        );
    }
}
