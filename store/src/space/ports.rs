//! Port lists: `-p` syntax, `--top-ports N`, `-F`, and the port ↔ index mapping.
//!
//! Owns: parsing port specifications into sorted, duplicate-free TCP and UDP lists.
//! The ranking and the names come from prtip's one port table,
//! [`crate::port_table`] (`store/data/port-frequency.txt`), which the
//! exports also print from. Never sends packets.
//!
//! Syntax: `22,80,8000-8100`, `-` or `1-65535` (`-p-`), open ends (`-1024`, `60000-`),
//! protocol prefixes `T:` and `U:` that apply until the next prefix
//! (`T:22,80,U:53,161`), and service names from the frequency list (`http,ssh`).
//! Ports without a prefix belong to the scan's protocol (TCP for `-sS`/`-sT`, UDP for `-sU`).

use crate::event::Protocol;
use std::fmt::Write as _;

/// The shipped frequency list: `<port>/<proto> <name>`, most frequent first.
pub use crate::port_table::FREQUENCY_LIST;

/// A bad port token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad port \"{token}\" in -p {spec}: {why}")]
pub struct PortError {
    /// The offending token.
    pub token: String,
    /// The whole specification.
    pub spec: String,
    /// What is wrong.
    pub why: String,
}

/// Sorted, duplicate-free TCP and UDP port lists; for a host discovery scan, the
/// numbers of its discovery probes instead ([`PortList::probes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortList {
    /// TCP ports, ascending.
    pub tcp: Vec<u16>,
    /// UDP ports, ascending.
    pub udp: Vec<u16>,
    /// Host discovery probes `0..n` ([`Protocol::Host`]): the walk's "ports" of a
    /// `-sn` scan, one per probe kind (see `crate::discovery`).
    pub host: Vec<u16>,
}

impl PortList {
    /// Parse a `-p` specification; ports without a prefix go to `default`.
    pub fn parse(spec: &str, default: Protocol) -> Result<PortList, PortError> {
        let err = |token: &str, why: String| PortError {
            token: token.to_string(),
            spec: spec.to_string(),
            why,
        };
        let mut out = PortList::default();
        let mut proto = default;
        if spec.trim().is_empty() {
            return Err(err(spec, "empty port list".into()));
        }
        for raw in spec.split(',') {
            let mut tok = raw.trim();
            if let Some((p, rest)) = tok.split_once(':') {
                proto = match p {
                    "T" | "t" => Protocol::Tcp,
                    "U" | "u" => Protocol::Udp,
                    "S" | "s" => {
                        return Err(err(raw, "SCTP (S:) is not supported; use T: or U:".into()))
                    }
                    other => {
                        return Err(err(
                            raw,
                            format!("unknown protocol prefix \"{other}:\" (use T: or U:)"),
                        ))
                    }
                };
                tok = rest;
            }
            if tok.is_empty() {
                return Err(err(raw, "empty item".into()));
            }
            let num = |s: &str, dflt: u32| -> Result<u32, PortError> {
                if s.is_empty() {
                    return Ok(dflt);
                }
                let n: u64 = s.parse().map_err(|_| {
                    err(
                        raw,
                        format!("\"{s}\" is not a port number or known service name"),
                    )
                })?;
                if n > 65535 {
                    return Err(err(raw, format!("port {n} is above 65535")));
                }
                Ok(n as u32)
            };
            let (lo, hi) = if let Some((a, b)) = tok.split_once('-') {
                let (lo, hi) = (num(a, 1)?, num(b, 65535)?);
                if lo > hi {
                    return Err(err(raw, format!("range {lo}-{hi} runs backwards")));
                }
                (lo, hi)
            } else if tok.chars().all(|c| c.is_ascii_digit()) {
                let n = num(tok, 0)?;
                (n, n)
            } else {
                let p = service_port(tok, proto).ok_or_else(|| {
                    err(
                        raw,
                        format!("\"{tok}\" is not a port number or known service name"),
                    )
                })?;
                (p as u32, p as u32)
            };
            let list = match proto {
                Protocol::Tcp => &mut out.tcp,
                Protocol::Udp | Protocol::Host => &mut out.udp,
            };
            list.extend((lo..=hi).map(|p| p as u16));
        }
        out.normalize();
        Ok(out)
    }

    /// The `n` most frequent ports of each protocol in `protos` (`--top-ports N`).
    pub fn top(n: usize, protos: &[Protocol]) -> PortList {
        let mut out = PortList::default();
        for &p in protos {
            let list = ranked(p).into_iter().take(n).collect::<Vec<_>>();
            match p {
                Protocol::Tcp => out.tcp = list,
                Protocol::Udp => out.udp = list,
                Protocol::Host => {}
            }
        }
        out.normalize();
        out
    }

    /// The `n` probes of a host discovery scan: "ports" `0..n` of [`Protocol::Host`].
    pub fn probes(n: u16) -> PortList {
        PortList {
            host: (0..n).collect(),
            ..PortList::default()
        }
    }

    /// `-F`: the 100 most frequent ports.
    pub fn fast(protos: &[Protocol]) -> PortList {
        PortList::top(100, protos)
    }

    fn normalize(&mut self) {
        for l in [&mut self.tcp, &mut self.udp] {
            l.sort_unstable();
            l.dedup();
        }
    }

    /// Number of (protocol, port) pairs.
    pub fn len(&self) -> usize {
        self.tcp.len() + self.udp.len() + self.host.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Pair number `i` (TCP ports first, then UDP, then discovery probes).
    #[inline]
    pub fn get(&self, i: usize) -> (Protocol, u16) {
        let (t, u) = (self.tcp.len(), self.udp.len());
        if i < t {
            (Protocol::Tcp, self.tcp[i])
        } else if i < t + u {
            (Protocol::Udp, self.udp[i - t])
        } else {
            (Protocol::Host, self.host[i - t - u])
        }
    }
    /// Index of a pair, if listed.
    pub fn index_of(&self, proto: Protocol, port: u16) -> Option<usize> {
        match proto {
            Protocol::Tcp => self.tcp.binary_search(&port).ok(),
            Protocol::Udp => self
                .udp
                .binary_search(&port)
                .ok()
                .map(|i| i + self.tcp.len()),
            Protocol::Host => self
                .host
                .binary_search(&port)
                .ok()
                .map(|i| i + self.tcp.len() + self.udp.len()),
        }
    }
    /// Canonical text, e.g. `T:22,80,8000-8100,U:53` (parses back to the same list).
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        for (prefix, list) in [("T:", &self.tcp), ("U:", &self.udp)] {
            if list.is_empty() {
                continue;
            }
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(prefix);
            let mut i = 0;
            let mut first = true;
            while i < list.len() {
                let mut j = i;
                while j + 1 < list.len() && list[j + 1] == list[j] + 1 {
                    j += 1;
                }
                if !first {
                    s.push(',');
                }
                first = false;
                if j == i {
                    let _ = write!(s, "{}", list[i]);
                } else {
                    let _ = write!(s, "{}-{}", list[i], list[j]);
                }
                i = j + 1;
            }
        }
        s
    }
}

/// Every port of `proto`, most frequent first: the listed ones in list order, then
/// the unlisted ones in ascending order (1-65535, then 0).
pub fn ranked(proto: Protocol) -> Vec<u16> {
    crate::port_table::ranked(proto)
}

/// The port of a service name in the frequency list (`http` → 80).
pub fn service_port(name: &str, proto: Protocol) -> Option<u16> {
    crate::port_table::service_port(name, proto)
}

/// The service name the frequency list gives a port (`80/tcp` → `http`), if any.
pub fn service_name(port: u16, proto: Protocol) -> Option<&'static str> {
    crate::port_table::service_name(port, proto)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(spec: &str) -> Vec<u16> {
        PortList::parse(spec, Protocol::Tcp).unwrap().tcp
    }
    fn err(spec: &str) -> String {
        PortList::parse(spec, Protocol::Tcp)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn lists_ranges_and_folding() {
        assert_eq!(tcp("22,80,8000-8003"), [22, 80, 8000, 8001, 8002, 8003]);
        assert_eq!(tcp("80,22,80,21-23"), [21, 22, 23, 80]);
        assert_eq!(tcp("-").len(), 65535);
        assert_eq!(tcp("-3"), [1, 2, 3]);
        assert_eq!(tcp("65534-"), [65534, 65535]);
        assert_eq!(tcp("0"), [0]);
        assert_eq!(tcp("http,ssh"), [22, 80]);
    }

    #[test]
    fn prefixes_apply_until_the_next() {
        let p = PortList::parse("T:22,80,U:53,161,T:443", Protocol::Tcp).unwrap();
        assert_eq!(p.tcp, [22, 80, 443]);
        assert_eq!(p.udp, [53, 161]);
        let p = PortList::parse("53,T:22", Protocol::Udp).unwrap();
        assert_eq!(
            (p.tcp.as_slice(), p.udp.as_slice()),
            (&[22u16][..], &[53u16][..])
        );
        assert_eq!(p.get(0), (Protocol::Tcp, 22));
        assert_eq!(p.get(1), (Protocol::Udp, 53));
        assert_eq!(p.index_of(Protocol::Udp, 53), Some(1));
        assert_eq!(p.index_of(Protocol::Udp, 22), None);
    }

    #[test]
    fn canonical_parses_back() {
        for spec in ["T:22,80,8000-8100,U:53", "1-65535", "T:1,3,5-7"] {
            let p = PortList::parse(spec, Protocol::Tcp).unwrap();
            assert_eq!(PortList::parse(&p.canonical(), Protocol::Tcp).unwrap(), p);
        }
        assert_eq!(
            PortList::parse("80,22,8000-8100,U:53", Protocol::Tcp)
                .unwrap()
                .canonical(),
            "T:22,80,8000-8100,U:53"
        );
    }

    #[test]
    fn every_bad_token_is_named() {
        assert_eq!(
            err("22,99999"),
            "bad port \"99999\" in -p 22,99999: port 99999 is above 65535"
        );
        assert_eq!(
            err("22,abc"),
            "bad port \"abc\" in -p 22,abc: \"abc\" is not a port number or known service name"
        );
        assert_eq!(
            err("100-10"),
            "bad port \"100-10\" in -p 100-10: range 100-10 runs backwards"
        );
        assert_eq!(err("22,,80"), "bad port \"\" in -p 22,,80: empty item");
        assert_eq!(
            err("S:80"),
            "bad port \"S:80\" in -p S:80: SCTP (S:) is not supported; use T: or U:"
        );
        assert_eq!(
            err("X:80"),
            "bad port \"X:80\" in -p X:80: unknown protocol prefix \"X:\" (use T: or U:)"
        );
        assert_eq!(err("T:"), "bad port \"T:\" in -p T:: empty item");
        assert_eq!(
            err("1-x"),
            "bad port \"1-x\" in -p 1-x: \"x\" is not a port number or known service name"
        );
        assert_eq!(err(""), "bad port \"\" in -p : empty port list");
    }

    #[test]
    fn top_ports_and_fast() {
        let t = PortList::top(10, &[Protocol::Tcp]);
        assert_eq!(t.tcp, [21, 22, 23, 25, 80, 110, 139, 443, 445, 3389]);
        assert_eq!(PortList::fast(&[Protocol::Tcp]).tcp.len(), 100);
        assert_eq!(
            PortList::top(1000, &[Protocol::Tcp, Protocol::Udp]).len(),
            2000
        );
        assert_eq!(PortList::top(70000, &[Protocol::Tcp]).tcp.len(), 65536);
        let r = ranked(Protocol::Udp);
        assert_eq!(&r[..3], &[53, 123, 161]);
        assert_eq!(r.len(), 65536);
        let mut s = r.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 65536, "ranking is a permutation of all ports");
        assert_eq!(service_name(443, Protocol::Tcp), Some("https"));
        assert_eq!(service_port("domain", Protocol::Udp), Some(53));
    }
}
