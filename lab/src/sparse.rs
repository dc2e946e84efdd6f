//! The lab's sparse network ([`Sparse`]): a prefix (IPv4 and/or IPv6) where only
//! some addresses exist. The live ones answer like the target network (same
//! open ports, RST/ICMP port unreachable elsewhere); the others are either
//! silent (a `blackhole` route in the target namespace: no RST, no ICMP) or
//! answer every probe with ICMP host unreachable (an `unreachable` route; ICMPv6
//! "no route" for IPv6).
//!
//! Which addresses live is a rule over the index of an address inside its
//! network ([`SparseHosts`]), the same for both families: `every:4` makes
//! indices 1, 5, 9, ... live (so 198.18.1.1, .5, .9, ... and 2001:db8:200::1,
//! ::5, ::9, ...). This module describes and answers questions; [`crate::lab`]
//! installs the routes.

use crate::config::Ipv4Net;
use crate::error::LabError;
use crate::ipv6::Ipv6Net;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Default IPv4 sparse network.
pub const DEFAULT_NET4: &str = "198.18.1.0/24";
/// Default IPv6 sparse network.
pub const DEFAULT_NET6: &str = "2001:db8:200::/120";
/// Most live addresses per family (one route each in the target namespace).
pub const MAX_LIVE: u64 = 65536;

/// What the absent addresses of a sparse network do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SparseMode {
    /// Nothing answers: the target drops the probe (blackhole route).
    #[default]
    Silent,
    /// The target answers ICMP host unreachable (IPv4, type 3 code 1) or ICMPv6
    /// destination unreachable "no route" (type 1 code 0) for every probe.
    Unreachable,
}

impl SparseMode {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SparseMode::Silent => "silent",
            SparseMode::Unreachable => "unreachable",
        }
    }

    /// The `ip route` type installed for the absent addresses.
    pub fn route_type(self) -> &'static str {
        match self {
            SparseMode::Silent => "blackhole",
            SparseMode::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for SparseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SparseMode {
    type Err = LabError;
    fn from_str(s: &str) -> Result<SparseMode, LabError> {
        match s {
            "silent" => Ok(SparseMode::Silent),
            "unreachable" => Ok(SparseMode::Unreachable),
            other => Err(LabError::Invalid(format!(
                "unknown sparse mode '{other}': expected silent or unreachable"
            ))),
        }
    }
}

/// Which indices of a sparse network are live.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SparseHosts {
    /// Index `i` is live when `i % step == 1 % step` (`every:4`: 1, 5, 9, ...;
    /// `every:100`: 1% of the addresses).
    Every(u32),
    /// These indices (`1,5,9-12`).
    List(BTreeSet<u32>),
}

impl SparseHosts {
    /// Whether index `i` is live.
    pub fn contains(&self, i: u128) -> bool {
        match self {
            SparseHosts::Every(step) => {
                let step = u128::from(*step);
                i % step == 1 % step
            }
            SparseHosts::List(set) => u32::try_from(i).is_ok_and(|i| set.contains(&i)),
        }
    }

    /// Live indices below `len`, in order.
    pub fn indices(&self, len: u128) -> Box<dyn Iterator<Item = u128> + '_> {
        match self {
            SparseHosts::Every(step) => {
                let step = u128::from(*step);
                let first = 1 % step;
                let n = if len > first {
                    (len - first).div_ceil(step)
                } else {
                    0
                };
                Box::new((0..n).map(move |k| first + k * step))
            }
            SparseHosts::List(set) => Box::new(
                set.iter()
                    .map(|&i| u128::from(i))
                    .take_while(move |&i| i < len),
            ),
        }
    }
}

impl fmt::Display for SparseHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SparseHosts::Every(n) => write!(f, "every:{n}"),
            SparseHosts::List(set) => {
                let v: Vec<String> = set.iter().map(|i| i.to_string()).collect();
                f.write_str(&v.join(","))
            }
        }
    }
}

impl FromStr for SparseHosts {
    type Err = LabError;
    fn from_str(s: &str) -> Result<SparseHosts, LabError> {
        let s = s.trim();
        if let Some(n) = s.strip_prefix("every:") {
            return match n.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(SparseHosts::Every(n)),
                _ => Err(LabError::Invalid(format!(
                    "'{s}': the step after every: must be a whole number of at least 1 (every:4 = indices 1, 5, 9, ...)"
                ))),
            };
        }
        let bad = |tok: &str| {
            LabError::Invalid(format!(
                "'{tok}' in '{s}' is not a host index (use every:N or a list of indices such as 1,5,9-12)"
            ))
        };
        let idx = |t: &str| -> Result<u32, LabError> {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(t));
            }
            t.parse().map_err(|_| bad(t))
        };
        let mut set = BTreeSet::new();
        for tok in s.split(',') {
            match tok.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (idx(a)?, idx(b)?);
                    if a > b || u64::from(b - a) >= MAX_LIVE {
                        return Err(bad(tok));
                    }
                    set.extend(a..=b);
                }
                None => {
                    set.insert(idx(tok)?);
                }
            }
        }
        Ok(SparseHosts::List(set))
    }
}

/// A sparse network: the prefixes, which addresses are live, what the others do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sparse {
    /// IPv4 half (at most a /16).
    pub net4: Option<Ipv4Net>,
    /// IPv6 half (at most a /112, inside 2001:db8::/32).
    pub net6: Option<Ipv6Net>,
    /// Live indices (the same for both halves).
    pub hosts: SparseHosts,
    /// What the other addresses do.
    pub mode: SparseMode,
}

/// What the lab does with one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostTruth {
    /// The address answers: SYN-ACK / RST, UDP replies / ICMP port unreachable.
    Up,
    /// The probe is dropped: no answer at all.
    Silent,
    /// Every probe gets ICMP host unreachable (ICMPv6 no route).
    Unreachable,
    /// The scanner namespace has no route to it: nothing leaves the scanner.
    NoRoute,
}

impl Default for Sparse {
    fn default() -> Sparse {
        Sparse {
            net4: Some(DEFAULT_NET4.parse().expect("valid default")),
            net6: Some(DEFAULT_NET6.parse().expect("valid default")),
            hosts: SparseHosts::Every(4),
            mode: SparseMode::Silent,
        }
    }
}

impl Sparse {
    /// Check sizes and prefixes; errors name the option and value.
    pub fn validate(&self) -> Result<(), LabError> {
        if self.net4.is_none() && self.net6.is_none() {
            return Err(LabError::Invalid(
                "the sparse network needs --sparse-net or --sparse-net6 (both are none)".into(),
            ));
        }
        if let Some(n) = self.net4 {
            if n.prefix() < 16 {
                return Err(LabError::Invalid(format!(
                    "--sparse-net {n} is too large (use a prefix of /16 or longer)"
                )));
            }
        }
        if let Some(n) = self.net6 {
            n.check_documentation("--sparse-net6")?;
            if n.prefix() < 112 {
                return Err(LabError::Invalid(format!(
                    "--sparse-net6 {n} is too large (use a prefix of /112 or longer)"
                )));
            }
        }
        if let SparseHosts::List(set) = &self.hosts {
            let len = self.len();
            if let Some(&i) = set.iter().find(|&&i| u128::from(i) >= len) {
                return Err(LabError::Invalid(format!(
                    "--sparse-hosts index {i} is outside the sparse network ({len} addresses)"
                )));
            }
        }
        let live = self.live_count();
        if live > MAX_LIVE as u128 {
            return Err(LabError::Invalid(format!(
                "--sparse-hosts {} makes {live} addresses live (at most {MAX_LIVE})",
                self.hosts
            )));
        }
        Ok(())
    }

    /// Addresses per family: the smaller half's size when both are given (the
    /// live rule applies to indices below it in both).
    fn len(&self) -> u128 {
        match (self.net4, self.net6) {
            (Some(a), Some(b)) => u128::from(a.len()).min(b.len()),
            (Some(a), None) => u128::from(a.len()),
            (None, Some(b)) => b.len(),
            (None, None) => 0,
        }
    }

    fn live_count(&self) -> u128 {
        let per = |len: u128| self.hosts.indices(len).count() as u128;
        self.net4
            .map(|n| per(u128::from(n.len())))
            .unwrap_or(0)
            .max(self.net6.map(|n| per(n.len())).unwrap_or(0))
    }

    /// Live IPv4 addresses, in order.
    pub fn live4(&self) -> Vec<Ipv4Addr> {
        self.net4
            .map(|n| {
                self.hosts
                    .indices(u128::from(n.len()))
                    .filter_map(|i| n.nth(i as u64))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live IPv6 addresses, in order.
    pub fn live6(&self) -> Vec<Ipv6Addr> {
        self.net6
            .map(|n| {
                self.hosts
                    .indices(n.len())
                    .filter_map(|i| n.nth(i))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every live address, IPv4 first.
    pub fn live(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.live4().into_iter().map(IpAddr::V4).collect();
        v.extend(self.live6().into_iter().map(IpAddr::V6));
        v
    }

    /// What the sparse network does with `addr`; `None` when it is outside both halves.
    pub fn host(&self, addr: IpAddr) -> Option<HostTruth> {
        let idx = match addr {
            IpAddr::V4(a) => self
                .net4
                .filter(|n| n.contains(a))
                .map(|n| u128::from(u32::from(a) - u32::from(n.addr())))?,
            IpAddr::V6(a) => self.net6.and_then(|n| n.index_of(a))?,
        };
        Some(if self.hosts.contains(idx) {
            HostTruth::Up
        } else {
            match self.mode {
                SparseMode::Silent => HostTruth::Silent,
                SparseMode::Unreachable => HostTruth::Unreachable,
            }
        })
    }
}

impl fmt::Display for Sparse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self
            .net4
            .map(|n| n.to_string())
            .into_iter()
            .chain(self.net6.map(|n| n.to_string()))
            .collect();
        write!(
            f,
            "{}: hosts {} live ({} IPv4, {} IPv6), the rest {}",
            nets.join(" and "),
            self.hosts,
            self.live4().len(),
            self.live6().len(),
            match self.mode {
                SparseMode::Silent => "silent (dropped)",
                SparseMode::Unreachable => "answer ICMP host unreachable",
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_four_makes_a_quarter_live() {
        let s = Sparse::default();
        s.validate().unwrap();
        let v4 = s.live4();
        assert_eq!(v4.len(), 64);
        assert_eq!(v4[0], Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(v4[63], Ipv4Addr::new(198, 18, 1, 253));
        let v6 = s.live6();
        assert_eq!(v6.len(), 64);
        assert_eq!(v6[1], "2001:db8:200::5".parse::<Ipv6Addr>().unwrap());
        assert_eq!(s.host("198.18.1.5".parse().unwrap()), Some(HostTruth::Up));
        assert_eq!(
            s.host("198.18.1.6".parse().unwrap()),
            Some(HostTruth::Silent)
        );
        assert_eq!(
            s.host("2001:db8:200::ff".parse().unwrap()),
            Some(HostTruth::Silent)
        );
        assert_eq!(
            s.host("2001:db8:200::fd".parse().unwrap()),
            Some(HostTruth::Up)
        );
        assert_eq!(s.host("198.18.2.1".parse().unwrap()), None);
    }

    #[test]
    fn hosts_parse_lists_and_steps_and_name_bad_tokens() {
        assert_eq!(
            "every:100".parse::<SparseHosts>().unwrap(),
            SparseHosts::Every(100)
        );
        let l: SparseHosts = "1,5,9-11".parse().unwrap();
        assert_eq!(l.indices(256).collect::<Vec<_>>(), vec![1, 5, 9, 10, 11]);
        assert!(SparseHosts::Every(1).contains(0) && SparseHosts::Every(1).contains(7));
        let e = "every:0".parse::<SparseHosts>().unwrap_err().to_string();
        assert!(e.contains("every:0"), "{e}");
        let e = "1,x".parse::<SparseHosts>().unwrap_err().to_string();
        assert!(e.contains("'x'"), "{e}");
        let s = Sparse {
            hosts: "300".parse().unwrap(),
            ..Sparse::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("300"));
        let s = Sparse {
            net6: Some("2001:db8::/100".parse().unwrap()),
            ..Sparse::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--sparse-net6"));
        assert_eq!(
            "unreachable".parse::<SparseMode>().unwrap(),
            SparseMode::Unreachable
        );
        assert!("quiet"
            .parse::<SparseMode>()
            .unwrap_err()
            .to_string()
            .contains("'quiet'"));
    }
}
