//! The monitor's result table: the store's result projection
//! ([`prtip_store::Results`], folded incrementally as events arrive: the latest
//! `Reply` per key wins, with the latest `Service` and the first `Banner`),
//! plus the filtered and sorted view the results screen shows. The fold is the
//! store's; this module owns only the view. It never reads files and never
//! renders.

use prtip_filter::Filter;
use prtip_store::event::{Addr, Event, Protocol};
use prtip_store::{ResultRow, Results};
use std::cmp::Ordering;
use std::collections::HashMap;

/// Column the results view is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Address, then protocol, then port (nmap's order).
    Address,
    /// Port, then address.
    Port,
    /// Service name (rows without one last), then address, port.
    Service,
    /// Round-trip time (unknown last), then address, port.
    Rtt,
}

impl SortKey {
    /// Every key, in the order `s` cycles through them.
    pub const ALL: [SortKey; 4] = [
        SortKey::Address,
        SortKey::Port,
        SortKey::Service,
        SortKey::Rtt,
    ];

    /// Lower-case name shown in the status line.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Address => "address",
            SortKey::Port => "port",
            SortKey::Service => "service",
            SortKey::Rtt => "rtt",
        }
    }

    /// The next key in [`SortKey::ALL`], wrapping.
    pub fn next(self) -> SortKey {
        let i = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[(i + 1) % SortKey::ALL.len()]
    }
}

/// Rows folded from the log, and the current filtered + sorted view of them.
#[derive(Default)]
pub struct ResultTable {
    results: Results,
    view: Vec<usize>,
    dirty: bool,
}

impl ResultTable {
    /// Fold one event (`Reply`, `Banner`, `Service`, `ScanStarted`'s host names;
    /// the others change nothing).
    pub fn apply(&mut self, event: &Event) {
        // Checkpoints, Paused and Finished too: the store's fold projects the
        // silent ports (probed, never answered) of a small scan from them.
        if matches!(
            event,
            Event::Reply(_)
                | Event::Banner(_)
                | Event::Service(_)
                | Event::ScanStarted(_)
                | Event::Checkpoint(_)
                | Event::Paused(_)
                | Event::Finished(_)
        ) {
            self.dirty = true;
            self.results.apply_event(event);
        }
    }

    /// Host names of addresses (the scan's resolved targets): attached to
    /// existing rows now and to new rows as they appear.
    pub fn set_hostnames(&mut self, names: HashMap<Addr, String>) {
        self.dirty = true;
        self.results.add_hostnames(names);
    }

    /// The row of one key, if seen.
    pub fn get(&self, addr: Addr, proto: Protocol, port: u16) -> Option<&ResultRow> {
        self.results.row(addr, proto, port)
    }

    /// All rows, in arrival order.
    pub fn rows(&self) -> &[ResultRow] {
        self.results.arrival_order()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// True when no row has been folded yet.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// Rows whose latest state is open.
    pub fn open_count(&self) -> u64 {
        self.results.open_ports() as u64
    }

    /// Hosts found up by host discovery (0 for a scan without it).
    pub fn hosts_up(&self) -> u64 {
        self.results.hosts_up() as u64
    }

    /// How many rows `filter` selects (the filter builder's live preview).
    pub fn count_matching(&self, filter: &Filter) -> usize {
        self.rows().iter().filter(|r| filter.matches(r)).count()
    }

    /// Rebuild the view if rows, filter or sort changed since the last call.
    pub fn refresh(
        &mut self,
        filter: Option<&Filter>,
        sort: SortKey,
        descending: bool,
        force: bool,
    ) {
        if !self.dirty && !force {
            return;
        }
        self.dirty = false;
        let rows = self.results.arrival_order();
        self.view.clear();
        self.view
            .extend((0..rows.len()).filter(|&i| filter.is_none_or(|f| f.matches(&rows[i]))));
        let cmp = |a: &usize, b: &usize| -> Ordering {
            let (a, b) = (&rows[*a], &rows[*b]);
            let primary = match sort {
                SortKey::Address => Ordering::Equal,
                SortKey::Port => a.port.cmp(&b.port),
                SortKey::Service => {
                    match (
                        a.service.as_ref().map(|s| s.name.as_str()),
                        b.service.as_ref().map(|s| s.name.as_str()),
                    ) {
                        (Some(x), Some(y)) => x.cmp(y),
                        (Some(_), None) => Ordering::Less,
                        (None, Some(_)) => Ordering::Greater,
                        (None, None) => Ordering::Equal,
                    }
                }
                SortKey::Rtt => match (a.rtt_us, b.rtt_us) {
                    (0, 0) => Ordering::Equal,
                    (0, _) => Ordering::Greater,
                    (_, 0) => Ordering::Less,
                    (x, y) => x.cmp(&y),
                },
            };
            primary.then_with(|| a.key().cmp(&b.key()))
        };
        self.view.sort_unstable_by(cmp);
        if descending {
            self.view.reverse();
        }
    }

    /// Mark the view stale (rows changed outside the apply methods).
    pub fn invalidate(&mut self) {
        self.dirty = true;
    }

    /// The rows of the current view, in display order.
    pub fn view(&self) -> impl ExactSizeIterator<Item = &ResultRow> + '_ {
        let rows = self.results.arrival_order();
        self.view.iter().map(move |&i| &rows[i])
    }

    /// Number of rows in the current view.
    pub fn view_len(&self) -> usize {
        self.view.len()
    }

    /// Row `i` of the current view.
    pub fn view_row(&self, i: usize) -> Option<&ResultRow> {
        self.view.get(i).map(|&j| &self.results.arrival_order()[j])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prtip_store::event::{Banner, PortState, Reason, Reply, Service};
    use prtip_store::Results;
    use std::net::Ipv4Addr;

    fn reply(last: u8, port: u16, state: PortState, t: u64) -> Event {
        Event::Reply(Reply {
            addr: Ipv4Addr::new(10, 0, 0, last).into(),
            port,
            proto: Protocol::Tcp,
            state,
            reason: if state == PortState::Open {
                Reason::SynAck
            } else {
                Reason::Reset
            },
            ttl: 64,
            icmp_code: 0,
            rtt_us: 100 + t as u32,
            time_us: t,
        })
    }
    fn banner(last: u8, port: u16, b: &[u8]) -> Event {
        Event::Banner(Banner {
            addr: Ipv4Addr::new(10, 0, 0, last).into(),
            port,
            proto: Protocol::Tcp,
            time_us: 1,
            probe: "NULL".into(),
            bytes: b.to_vec(),
        })
    }
    fn service(last: u8, port: u16, name: &str) -> Event {
        Event::Service(Service {
            addr: Ipv4Addr::new(10, 0, 0, last).into(),
            port,
            proto: Protocol::Tcp,
            time_us: 1,
            name: name.into(),
            product: String::new(),
            version: String::new(),
            extra: String::new(),
            confidence: 0.5,
            method: "probe".into(),
        })
    }

    /// The table's rows are the store's projection of the same events, folded
    /// one by one (duplicates, state changes, banner/service before the reply,
    /// first banner wins, latest service wins), and the view shows them.
    #[test]
    fn fold_matches_the_store_projection() {
        let events = vec![
            banner(1, 22, b"early banner"),
            service(1, 22, "ssh"),
            reply(1, 22, PortState::Open, 1),
            reply(1, 22, PortState::Open, 2),
            banner(1, 22, b"second banner"),
            service(1, 22, "ssh2"),
            reply(2, 80, PortState::Open, 3),
            reply(2, 80, PortState::Closed, 4),
            reply(3, 25, PortState::Closed, 5),
            reply(3, 25, PortState::Open, 6),
            banner(4, 443, b"no reply ever"),
        ];
        let mut mine = ResultTable::default();
        let mut store = Results::new();
        for ev in &events {
            mine.apply(ev);
            store.apply_event(ev);
        }
        let mut rows = mine.rows().to_vec();
        rows.sort_by_key(|r| r.key());
        assert_eq!(rows, store.rows());
        assert_eq!(mine.len(), 3);
        assert_eq!(mine.open_count(), store.open_ports() as u64);
        assert_eq!(mine.open_count(), 2);
        assert_eq!(rows[0].banner.as_deref(), Some(&b"early banner"[..]));
        assert_eq!(rows[0].service.as_ref().unwrap().name, "ssh2");
        mine.refresh(None, SortKey::Address, false, false);
        let shown: Vec<_> = mine.view().map(|r| r.key()).collect();
        assert_eq!(shown, rows.iter().map(|r| r.key()).collect::<Vec<_>>());
    }
}
