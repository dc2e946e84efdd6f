//! The monitor's in-memory result table: the latest state per (address,
//! protocol, port), folded from `Reply`, `Banner` and `Service` events as they
//! arrive, plus the filtered and sorted view the results screen shows.
//!
//! Folding follows the store's result projection: a later `Reply` for the same
//! key replaces the state (duplicates from retries or resumed windows fold
//! into one row), banners and services attach to the row of their key (a row
//! is created for them if no reply was seen yet, as an open TCP/UDP port). This
//! module never reads files and never renders.

use prtip_filter::Filter;
use prtip_store::event::{Addr, Banner, PortState, Protocol, Reason, Reply, Service};
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

/// Rows folded from the log, and the current filtered + sorted view of them.
#[derive(Default)]
pub struct ResultTable {
    rows: Vec<ResultRow>,
    index: HashMap<(Addr, Protocol, u16), usize>,
    view: Vec<usize>,
    dirty: bool,
    open: u64,
    hostnames: HashMap<Addr, String>,
}

fn empty_row(addr: Addr, port: u16, proto: Protocol, time_us: u64) -> ResultRow {
    ResultRow {
        addr,
        hostname: None,
        port,
        proto,
        state: PortState::Open,
        reason: match proto {
            Protocol::Tcp => Reason::SynAck,
            Protocol::Udp => Reason::UdpResponse,
        },
        ttl: 0,
        rtt_us: 0,
        time_us,
        service: None,
        banner: None,
    }
}

impl ResultTable {
    fn slot(&mut self, addr: Addr, proto: Protocol, port: u16, time_us: u64) -> &mut ResultRow {
        self.dirty = true;
        let rows = &mut self.rows;
        let i = *self.index.entry((addr, proto, port)).or_insert_with(|| {
            let mut row = empty_row(addr, port, proto, time_us);
            row.hostname = self.hostnames.get(&addr).cloned();
            rows.push(row);
            rows.len() - 1
        });
        &mut self.rows[i]
    }

    /// Fold a reply: its state replaces the row's.
    pub fn apply_reply(&mut self, r: &Reply) {
        let was_new = !self.index.contains_key(&(r.addr, r.proto, r.port));
        let row = self.slot(r.addr, r.proto, r.port, r.time_us);
        let was_open = !was_new && row.state == PortState::Open;
        row.state = r.state;
        row.reason = r.reason;
        row.ttl = r.ttl;
        row.rtt_us = r.rtt_us;
        row.time_us = r.time_us;
        match (was_open, r.state == PortState::Open) {
            (false, true) => self.open += 1,
            (true, false) => self.open -= 1,
            _ => {}
        }
    }

    /// Attach a banner to its row.
    pub fn apply_banner(&mut self, b: &Banner) {
        let was_new = !self.index.contains_key(&(b.addr, b.proto, b.port));
        let row = self.slot(b.addr, b.proto, b.port, b.time_us);
        row.banner = Some(b.bytes.clone());
        if was_new {
            self.open += 1;
        }
    }

    /// Attach a detected service to its row.
    pub fn apply_service(&mut self, s: &Service) {
        let was_new = !self.index.contains_key(&(s.addr, s.proto, s.port));
        let row = self.slot(s.addr, s.proto, s.port, s.time_us);
        row.service = Some(ServiceInfo {
            name: s.name.clone(),
            product: s.product.clone(),
            version: s.version.clone(),
            extra: s.extra.clone(),
            confidence: s.confidence,
            method: s.method.clone(),
        });
        if was_new {
            self.open += 1;
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

    /// Every row sorted by (address, protocol, port), cloned — what exports consume.
    pub fn sorted_snapshot(&self) -> Vec<ResultRow> {
        let mut v = self.rows.clone();
        v.sort_by_key(|r| r.key());
        v
    }
}
