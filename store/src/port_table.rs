//! prtip's one port ↔ service-name table, ranked by frequency: what `-p http,ssh`,
//! `--top-ports N` and `-F` read (prtip-engine's `ports`) and the SERVICE name every
//! export prints for a port nothing was detected on (prtip-export). In the store
//! because the store reads a scan's `-p` back into its probe space (silence is
//! projected from it); prtip-services re-exports it as `prtip_services::port_table`.
//!
//! Owns `store/data/port-frequency.txt` (see its header for where the ranking
//! comes from and docs/ports.md for how it differs from nmap's). Pure lookups; the
//! probe database's `service` lines (TLS and probe hints for detection) are separate.

use crate::event::Protocol;

/// The shipped table: `<port>/<proto> <name>` lines, most frequent first.
pub const FREQUENCY_LIST: &str = include_str!("../data/port-frequency.txt");

/// Every `(port, transport, name)` of the table, most frequent first.
pub fn entries() -> impl Iterator<Item = (u16, Protocol, &'static str)> {
    FREQUENCY_LIST
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (pp, name) = l.split_once(' ')?;
            let (port, proto) = pp.split_once('/')?;
            let t = match proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => return None,
            };
            Some((port.parse().ok()?, t, name.trim()))
        })
}

/// Every port of `transport`, most frequent first: the listed ones in table order,
/// then the unlisted ones ascending (1-65535, then 0).
pub fn ranked(transport: Protocol) -> Vec<u16> {
    let mut seen = vec![false; 65536];
    let mut out = Vec::with_capacity(65536);
    for (port, t, _) in entries() {
        if t == transport && !seen[port as usize] {
            seen[port as usize] = true;
            out.push(port);
        }
    }
    out.extend((1..=65535u16).filter(|&p| !seen[p as usize]));
    if !seen[0] {
        out.push(0);
    }
    out
}

/// The port of a service name (`http` → 80), case-insensitive; the most frequent
/// when a name has several.
pub fn service_port(name: &str, transport: Protocol) -> Option<u16> {
    entries()
        .find(|(_, t, n)| *t == transport && n.eq_ignore_ascii_case(name))
        .map(|(port, _, _)| port)
}

/// The service name of a port (`22/tcp` → `ssh`, `7/udp` → `echo`), if the table has it.
pub fn service_name(port: u16, transport: Protocol) -> Option<&'static str> {
    static NAMES: std::sync::OnceLock<std::collections::HashMap<(u16, Protocol), &'static str>> =
        std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            let mut m = std::collections::HashMap::new();
            for (port, t, name) in entries() {
                m.entry((port, t)).or_insert(name);
            }
            m
        })
        .get(&(port, transport))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ports_both_ways() {
        assert_eq!(service_name(22, Protocol::Tcp), Some("ssh"));
        assert_eq!(service_name(7, Protocol::Udp), Some("echo"));
        assert_eq!(service_name(53, Protocol::Udp), Some("domain"));
        assert_eq!(service_name(65000, Protocol::Tcp), None);
        assert_eq!(service_port("HTTP", Protocol::Tcp), Some(80));
        assert_eq!(service_port("echo", Protocol::Udp), Some(7));
        let tcp = ranked(Protocol::Tcp);
        assert_eq!(tcp.len(), 65536);
        assert_eq!(&tcp[..3], &[80, 443, 22]);
    }
}
