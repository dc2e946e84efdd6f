//! IPv6 networks for the lab ([`Ipv6Net`]): the IPv6 target prefix and the
//! sparse network's IPv6 half. Only documentation addresses (2001:db8::/32) are
//! accepted as lab targets ([`Ipv6Net::check_documentation`]).

use crate::error::LabError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// The documentation prefix every IPv6 address of a lab lies in.
pub const DOC_PREFIX: Ipv6Net = Ipv6Net {
    addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
    prefix: 32,
};

/// An IPv6 network in CIDR form (`2001:db8:100::/116`); host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix: u8,
}

impl Ipv6Net {
    /// A network from its first address and prefix length; refuses set host bits.
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Result<Ipv6Net, LabError> {
        if prefix > 128 {
            return Err(LabError::Invalid(format!(
                "'{addr}/{prefix}': prefix {prefix} is above 128"
            )));
        }
        let net = Ipv6Net { addr, prefix };
        if u128::from(addr) & !net.mask() != 0 {
            let fixed = Ipv6Addr::from(u128::from(addr) & net.mask());
            return Err(LabError::Invalid(format!(
                "'{addr}/{prefix}': host bits are set (did you mean {fixed}/{prefix}?)"
            )));
        }
        Ok(net)
    }

    /// First address of the network.
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// Prefix length (0..=128).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Netmask as an integer.
    pub fn mask(&self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        }
    }

    /// Number of addresses (saturates at `u128::MAX` for a /0).
    pub fn len(&self) -> u128 {
        1u128
            .checked_shl(128 - u32::from(self.prefix))
            .unwrap_or(u128::MAX)
    }

    /// Always false: a network holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `ip` lies inside the network.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.addr)
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The `i`-th address of the network (`None` past the end).
    pub fn nth(&self, i: u128) -> Option<Ipv6Addr> {
        (i < self.len()).then(|| Ipv6Addr::from(u128::from(self.addr) + i))
    }

    /// Index of `ip` inside the network (`None` outside).
    pub fn index_of(&self, ip: Ipv6Addr) -> Option<u128> {
        self.contains(ip)
            .then(|| u128::from(ip) - u128::from(self.addr))
    }

    /// Every address of the network, in order.
    pub fn iter(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        (0..self.len()).map(|i| Ipv6Addr::from(u128::from(self.addr) + i))
    }

    /// Refuse a network outside 2001:db8::/32 (`what` names the option).
    pub fn check_documentation(&self, what: &str) -> Result<(), LabError> {
        if !DOC_PREFIX.contains(self.addr) || self.prefix < 32 {
            return Err(LabError::Invalid(format!(
                "{what} {self} is outside the documentation prefix 2001:db8::/32 (lab targets must lie in it)"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv6Net {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Ipv6Net, LabError> {
        let bad = || {
            LabError::Invalid(format!(
                "'{s}' is not an IPv6 network in CIDR form (for example 2001:db8:100::/116)"
            ))
        };
        let (a, p) = s.split_once('/').unwrap_or((s, "128"));
        let addr: Ipv6Addr = a.trim().parse().map_err(|_| bad())?;
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Ipv6Net::new(addr, prefix)
    }
}

impl TryFrom<String> for Ipv6Net {
    type Error = LabError;
    fn try_from(s: String) -> Result<Ipv6Net, LabError> {
        s.parse()
    }
}

impl From<Ipv6Net> for String {
    fn from(n: Ipv6Net) -> String {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_names_bad_values() {
        let n: Ipv6Net = "2001:db8:100::/116".parse().unwrap();
        assert_eq!(n.len(), 4096);
        assert_eq!(n.nth(4095), Some("2001:db8:100::fff".parse().unwrap()));
        assert_eq!(n.nth(4096), None);
        assert!(n.contains("2001:db8:100::abc".parse().unwrap()));
        assert!(!n.contains("2001:db8:100::1000".parse().unwrap()));
        assert_eq!(n.index_of("2001:db8:100::10".parse().unwrap()), Some(16));
        n.check_documentation("--target-net6").unwrap();
        let e = "2001:db8:100::1/116"
            .parse::<Ipv6Net>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("2001:db8:100::/116"), "{e}");
        let e = "2001:db8::/129".parse::<Ipv6Net>().unwrap_err().to_string();
        assert!(e.contains("above 128"), "{e}");
        assert!("2001:db8::/".parse::<Ipv6Net>().is_err());
        let e = "fd00::/64"
            .parse::<Ipv6Net>()
            .unwrap()
            .check_documentation("--target-net6")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--target-net6 fd00::/64"), "{e}");
    }
}
