//! Reading the peers' output files: masscan `-oL`, zmap `-O csv -f saddr,sport`
//! and nmap `-oG` (masscan's and nmap's for either family: the address type is
//! the caller's). Each parser calls `open(addr, port)` for every open TCP port
//! it finds and returns how many lines it could not read (so a format change
//! shows up as a number in the report, not as silently lower recall). Pure
//! functions over text; no I/O.

use std::net::Ipv4Addr;
use std::str::FromStr;

/// masscan `-oL`: `open tcp 80 198.19.0.1 1700000000` (comments start with `#`).
pub fn masscan_list<A: FromStr + Copy>(text: &str, open: &mut dyn FnMut(A, u16)) -> u64 {
    let mut bad = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match (f.first(), f.get(1), f.get(2), f.get(3)) {
            (Some(&"open"), Some(&"tcp"), Some(p), Some(a)) => match (p.parse(), a.parse()) {
                (Ok(p), Ok(a)) => open(a, p),
                _ => bad += 1,
            },
            (Some(_), Some(_), Some(_), Some(_)) => {} // closed / other protocols
            _ => bad += 1,
        }
    }
    bad
}

/// zmap `-O csv -f saddr,sport` (header line `saddr,sport`): one line per host
/// that answered SYN-ACK on the port of that run.
pub fn zmap_csv(text: &str, open: &mut dyn FnMut(Ipv4Addr, u16)) -> u64 {
    let mut bad = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line == "saddr,sport" {
            continue;
        }
        match line.split_once(',') {
            Some((a, p)) => match (a.parse(), p.parse()) {
                (Ok(a), Ok(p)) => open(a, p),
                _ => bad += 1,
            },
            None => bad += 1,
        }
    }
    bad
}

/// nmap `-oG`: `Host: 198.19.0.1 ()\tPorts: 22/closed/tcp//ssh///, 80/open/tcp//http///`.
pub fn nmap_grepable<A: FromStr + Copy>(text: &str, open: &mut dyn FnMut(A, u16)) -> u64 {
    let mut bad = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("Host: ") else {
            continue;
        };
        let Some((addr, _)) = rest.split_once(' ') else {
            bad += 1;
            continue;
        };
        let Ok(addr) = addr.parse::<A>() else {
            bad += 1;
            continue;
        };
        let Some(i) = line.find("Ports: ") else {
            continue; // the `Status: Up` line of the same host
        };
        let ports = line[i + 7..].split('\t').next().unwrap_or("");
        for entry in ports.split(", ") {
            let f: Vec<&str> = entry.split('/').collect();
            match (
                f.first().map(|p| p.trim().parse::<u16>()),
                f.get(1),
                f.get(2),
            ) {
                (Some(Ok(p)), Some(&"open"), Some(&"tcp")) => open(addr, p),
                (Some(Ok(_)), Some(_), Some(_)) => {}
                _ => bad += 1,
            }
        }
    }
    bad
}
