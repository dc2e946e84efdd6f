//! Aggregate statistics of the exported rows (HTML and PDF summaries).
//!
//! Everything here is bounded: per-state and per-protocol counters, a map keyed by
//! (protocol, port) (at most 2 × 65 536 entries) and a map of service names capped
//! at [`MAX_SERVICES`] (remote hosts choose names; the rest is folded into
//! `(other)`), so memory never grows with the number of results. Never writes output.

use crate::escape::clean_text;
use crate::hosts::Host;
use prtip_store::{PortState, Protocol, ResultRow};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Most distinct service names tracked; further names count as `(other)`.
pub const MAX_SERVICES: usize = 256;
/// Most distinct product strings tracked per service.
pub const MAX_PRODUCTS: usize = 16;

/// Running totals over hosts.
#[derive(Default, Debug)]
pub struct Stats {
    /// Hosts with at least one row.
    pub hosts: u64,
    /// Hosts that answered.
    pub hosts_up: u64,
    /// Hosts with at least one open port.
    pub hosts_with_open: u64,
    /// Rows.
    pub rows: u64,
    /// Rows per state: open, closed, filtered, open|filtered.
    pub by_state: [u64; 5],
    /// Rows per protocol: tcp, udp.
    pub by_proto: [u64; 2],
    open_ports: BTreeMap<(Protocol, u16), u64>,
    services: HashMap<(String, Protocol), ServiceAgg>,
}

#[derive(Default, Debug)]
struct ServiceAgg {
    open: u64,
    hosts: u64,
    ports: BTreeMap<u16, u64>,
    products: HashMap<String, u64>,
    other_products: u64,
}

/// One line of the Service Breakdown.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ServiceLine {
    /// Service name (`unknown` when none was detected).
    pub name: String,
    /// `tcp` / `udp`.
    pub proto: &'static str,
    /// Open ports running it.
    pub open: u64,
    /// Hosts running it.
    pub hosts: u64,
    /// Ports it was seen on, most frequent first (at most 8), e.g. `80, 8080`.
    pub ports: String,
    /// Products and versions, most frequent first (at most 3), e.g. `nginx 1.24.0 (12)`.
    pub products: String,
    /// Share of all open ports, percent.
    pub percent: f64,
}

/// One bar of a distribution (state, protocol, top ports).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Bar {
    /// Label.
    pub label: String,
    /// Count.
    pub count: u64,
    /// Share of the total, percent (0..=100).
    pub percent: f64,
}

fn pct(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (n as f64 * 1000.0 / total as f64).round() / 10.0
    }
}

fn is_openish(r: &ResultRow) -> bool {
    matches!(r.state, PortState::Open)
}

impl Stats {
    /// Count one host.
    pub fn add_host(&mut self, host: &Host) {
        self.hosts += 1;
        if host.is_up() {
            self.hosts_up += 1;
        }
        if host.count(PortState::Open) > 0 {
            self.hosts_with_open += 1;
        }
        let mut seen_here: Vec<(String, Protocol)> = Vec::new();
        for r in &host.rows {
            self.rows += 1;
            // A host result (host discovery) is no port: counted in `hosts_up`.
            self.by_proto[match r.proto {
                Protocol::Tcp => 0,
                Protocol::Udp => 1,
                Protocol::Host => continue,
            }] += 1;
            self.by_state[match r.state {
                PortState::Open => 0,
                PortState::Closed => 1,
                PortState::Filtered => 2,
                PortState::OpenFiltered => 3,
                PortState::Unfiltered => 4,
            }] += 1;
            if !is_openish(r) {
                continue;
            }
            *self.open_ports.entry((r.proto, r.port)).or_default() += 1;
            let name = r
                .service
                .as_ref()
                .map(|s| clean_text(&s.name).into_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "unknown".into());
            let mut key = (name, r.proto);
            if !self.services.contains_key(&key) && self.services.len() >= MAX_SERVICES {
                key.0 = "(other)".into();
            }
            let agg = self.services.entry(key.clone()).or_default();
            agg.open += 1;
            *agg.ports.entry(r.port).or_default() += 1;
            if let Some(s) = &r.service {
                let product = [s.product.as_str(), s.version.as_str()]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                if !product.is_empty() {
                    let product = clean_text(&product).into_owned();
                    if let Some(n) = agg.products.get_mut(&product) {
                        *n += 1;
                    } else if agg.products.len() < MAX_PRODUCTS {
                        agg.products.insert(product, 1);
                    } else {
                        agg.other_products += 1;
                    }
                }
            }
            if !seen_here.contains(&key) {
                agg.hosts += 1;
                seen_here.push(key);
            }
        }
    }

    /// Open ports in total.
    pub fn open(&self) -> u64 {
        self.by_state[0]
    }

    /// Rows per state as bars (every state, in nmap's order).
    pub fn state_bars(&self) -> Vec<Bar> {
        ["open", "closed", "filtered", "open|filtered", "unfiltered"]
            .iter()
            .zip(self.by_state)
            .map(|(l, c)| Bar {
                label: l.to_string(),
                count: c,
                percent: pct(c, self.rows),
            })
            .collect()
    }

    /// Rows per protocol as bars.
    pub fn proto_bars(&self) -> Vec<Bar> {
        ["tcp", "udp"]
            .iter()
            .zip(self.by_proto)
            .map(|(l, c)| Bar {
                label: l.to_string(),
                count: c,
                percent: pct(c, self.rows),
            })
            .collect()
    }

    /// The `n` ports most often open (`22/tcp`), with their share of open ports.
    pub fn top_ports(&self, n: usize) -> Vec<Bar> {
        let mut v: Vec<_> = self.open_ports.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.into_iter()
            .take(n)
            .map(|((proto, port), &c)| Bar {
                label: format!("{port}/{}", proto.as_str()),
                count: c,
                percent: pct(c, self.open()),
            })
            .collect()
    }

    /// The Service Breakdown, most open ports first.
    pub fn services(&self) -> Vec<ServiceLine> {
        let mut v: Vec<_> = self.services.iter().collect();
        v.sort_by(|a, b| b.1.open.cmp(&a.1.open).then(a.0.cmp(b.0)));
        v.into_iter()
            .map(|((name, proto), agg)| {
                let mut ports: Vec<_> = agg.ports.iter().collect();
                ports.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let mut port_list: Vec<String> =
                    ports.iter().take(8).map(|(p, _)| p.to_string()).collect();
                if ports.len() > 8 {
                    port_list.push(format!("+{} more", ports.len() - 8));
                }
                let mut products: Vec<_> = agg.products.iter().collect();
                products.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let mut product_list: Vec<String> = products
                    .iter()
                    .take(3)
                    .map(|(p, c)| format!("{p} ({c})"))
                    .collect();
                let rest = products.len().saturating_sub(3) as u64 + agg.other_products;
                if rest > 0 {
                    product_list.push("others".into());
                }
                ServiceLine {
                    name: name.clone(),
                    proto: proto.as_str(),
                    open: agg.open,
                    hosts: agg.hosts,
                    ports: port_list.join(", "),
                    products: product_list.join(", "),
                    percent: pct(agg.open, self.open()),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::row;

    #[test]
    fn services_are_counted_per_port_and_per_host() {
        let mut s = Stats::default();
        let h1 = Host::from_rows(vec![
            row(
                [10, 0, 0, 1],
                80,
                PortState::Open,
                Some(("http", "nginx", "1.24")),
                None,
            ),
            row(
                [10, 0, 0, 1],
                8080,
                PortState::Open,
                Some(("http", "nginx", "1.24")),
                None,
            ),
            row([10, 0, 0, 1], 81, PortState::Closed, None, None),
        ]);
        let h2 = Host::from_rows(vec![
            row(
                [10, 0, 0, 2],
                80,
                PortState::Open,
                Some(("http", "Apache httpd", "2.4")),
                None,
            ),
            row([10, 0, 0, 2], 22, PortState::Open, None, None),
        ]);
        s.add_host(&h1);
        s.add_host(&h2);
        assert_eq!((s.hosts, s.hosts_up, s.rows, s.open()), (2, 2, 5, 4));
        let lines = s.services();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].name, "http");
        assert_eq!((lines[0].open, lines[0].hosts), (3, 2));
        assert_eq!(lines[0].ports, "80, 8080");
        assert_eq!(lines[0].products, "nginx 1.24 (2), Apache httpd 2.4 (1)");
        assert_eq!(lines[0].percent, 75.0);
        assert_eq!(lines[1].name, "unknown");
        assert_eq!(s.top_ports(1)[0].label, "80/tcp");
        assert_eq!(s.top_ports(1)[0].count, 2);
    }

    #[test]
    fn service_names_are_capped() {
        let mut s = Stats::default();
        for i in 0..(MAX_SERVICES as u32 + 10) {
            let name = format!("svc{i}");
            let ip = (0x0a00_0000u32 + i).to_be_bytes();
            s.add_host(&Host::from_rows(vec![row(
                ip,
                1,
                PortState::Open,
                Some((&name, "", "")),
                None,
            )]));
        }
        let lines = s.services();
        assert_eq!(lines.len(), MAX_SERVICES + 1);
        let other = lines.iter().find(|l| l.name == "(other)").unwrap();
        assert_eq!(other.open, 10);
    }
}
