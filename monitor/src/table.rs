//! The monitor's in-memory result table: the latest state per (address,
//! protocol, port), folded from `Reply`, `Banner` and `Service` events as they
//! arrive, plus the filtered and sorted view the results screen shows.
//!
//! Folding follows the store's result projection (`prtip_store::Results`,
//! `sorted_rows`), incrementally: the latest `Reply` per key wins (duplicates
//! from retries or resumed windows fold into one row), with the latest
//! `Service` and the first `Banner` of that key; a key becomes a row only once
//! a `Reply` was seen (a banner or service seen first waits for it). This
//! module never reads files and never renders.

use prtip_filter::Filter;
use prtip_store::event::{Addr, Banner, PortState, Protocol, Reply, Service};
use prtip_store::{ResultRow, ServiceInfo};
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

/// A result's identity: (address, protocol, port).
type Key = (Addr, Protocol, u16);

/// Rows folded from the log, and the current filtered + sorted view of them.
#[derive(Default)]
pub struct ResultTable {
    rows: Vec<ResultRow>,
    index: HashMap<Key, usize>,
    view: Vec<usize>,
    dirty: bool,
    open: u64,
    hostnames: HashMap<Addr, String>,
    /// Service / banner of keys without a Reply yet.
    pending: HashMap<Key, (Option<ServiceInfo>, Option<Vec<u8>>)>,
}

impl ResultTable {
    /// Fold a reply: its state replaces the row's (a new key becomes a row).
    pub fn apply_reply(&mut self, r: &Reply) {
        self.dirty = true;
        let key = (r.addr, r.proto, r.port);
        let i = match self.index.get(&key) {
            Some(&i) => {
                if self.rows[i].state == PortState::Open {
                    self.open -= 1;
                }
                i
            }
            None => {
                let (service, banner) = self.pending.remove(&key).unwrap_or_default();
                self.rows.push(ResultRow {
                    addr: r.addr,
                    hostname: self.hostnames.get(&r.addr).cloned(),
                    port: r.port,
                    proto: r.proto,
                    state: r.state,
                    reason: r.reason,
                    ttl: r.ttl,
                    rtt_us: r.rtt_us,
                    time_us: r.time_us,
                    service,
                    banner,
                });
                self.index.insert(key, self.rows.len() - 1);
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[i];
        row.state = r.state;
        row.reason = r.reason;
        row.ttl = r.ttl;
        row.rtt_us = r.rtt_us;
        row.time_us = r.time_us;
        if r.state == PortState::Open {
            self.open += 1;
        }
    }

    /// Attach a banner to its key (the first banner of a key is kept).
    pub fn apply_banner(&mut self, b: &Banner) {
        let key = (b.addr, b.proto, b.port);
        let slot = match self.index.get(&key) {
            Some(&i) => {
                self.dirty = true;
                &mut self.rows[i].banner
            }
            None => &mut self.pending.entry(key).or_default().1,
        };
        if slot.is_none() {
            *slot = Some(b.bytes.clone());
        }
    }

    /// Attach a detected service to its key (the latest is kept).
    pub fn apply_service(&mut self, s: &Service) {
        let key = (s.addr, s.proto, s.port);
        let info = ServiceInfo {
            name: s.name.clone(),
            product: s.product.clone(),
            version: s.version.clone(),
            extra: s.extra.clone(),
            confidence: s.confidence,
            method: s.method.clone(),
        };
        match self.index.get(&key) {
            Some(&i) => {
                self.dirty = true;
                self.rows[i].service = Some(info);
            }
            None => self.pending.entry(key).or_default().0 = Some(info),
        }
    }

    /// Host names of addresses (the scan's resolved targets): attached to
    /// existing rows now and to new rows as they appear.
    pub fn set_hostnames(&mut self, names: HashMap<Addr, String>) {
        for row in &mut self.rows {
            if let Some(n) = names.get(&row.addr) {
                row.hostname = Some(n.clone());
                self.dirty = true;
            }
        }
        self.hostnames = names;
    }

    /// The row of one key, if seen.
    pub fn get(&self, addr: Addr, proto: Protocol, port: u16) -> Option<&ResultRow> {
        self.index.get(&(addr, proto, port)).map(|&i| &self.rows[i])
    }

    /// All rows, in arrival order.
    pub fn rows(&self) -> &[ResultRow] {
        &self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row has been folded yet.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows whose latest state is open.
    pub fn open_count(&self) -> u64 {
        self.open
    }

    /// How many rows `filter` selects (the filter builder's live preview).
    pub fn count_matching(&self, filter: &Filter) -> usize {
        self.rows.iter().filter(|r| filter.matches(r)).count()
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
        let rows = &self.rows;
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
        self.view.iter().map(|&i| &self.rows[i])
    }

    /// Number of rows in the current view.
    pub fn view_len(&self) -> usize {
        self.view.len()
    }

    /// Row `i` of the current view.
    pub fn view_row(&self, i: usize) -> Option<&ResultRow> {
        self.view.get(i).map(|&j| &self.rows[j])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prtip_store::event::Reason;
    use prtip_store::{Event, Results};
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

    /// The monitor's incremental fold gives the store's rows for the same events
    /// (duplicates, state changes, banner/service before the reply, first
    /// banner wins, latest service wins).
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
            match ev {
                Event::Reply(r) => mine.apply_reply(r),
                Event::Banner(b) => mine.apply_banner(b),
                Event::Service(s) => mine.apply_service(s),
                _ => unreachable!(),
            }
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
    }
}
