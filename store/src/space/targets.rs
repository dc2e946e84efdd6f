//! Target addresses: parsing (addresses, CIDR, ranges, nmap octet ranges, host
//! names, list files), excludes, and the index ↔ address mapping the walk uses.
//!
//! Owns: turning target and exclude tokens into a [`TargetSet`], a sorted list of
//! disjoint address ranges with excludes already subtracted. Address `i` is found by
//! binary search over cumulative counts, so memory grows with the number of ranges,
//! never with the number of addresses. Host names are resolved once, through the
//! resolver the caller passes (the cli records the answers in `ScanSpec.resolved`
//! and replays them on resume). Never sends packets or reads the network.
//!
//! Syntax (one token each):
//! - `198.19.0.7`, `2001:db8::1`
//! - `198.19.0.0/20`, `2001:db8::/120` (host bits are ignored, as nmap does)
//! - `198.19.0.1-198.19.0.50` (any two addresses of one family)
//! - `198.19.0-3.1-254`, `10.*.0.1`, `10.0.0.1,3,5` (nmap octet ranges: `n`, `a-b`,
//!   `a-`, `-b`, `*`, and comma lists inside one octet)
//! - `198.19.0.1,198.19.0.9` (a comma list of any of the above)
//! - `host.example`, `host.example/24` (resolved once; the prefix applies to the address)

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use super::list::{Fam, ListRef, TargetList};

/// Inclusive address ranges before merging.
type Ranges = Vec<(u128, u128)>;

/// Most ranges one octet-range token may expand to.
pub const MAX_TOKEN_RANGES: usize = 1 << 20;

/// A bad target or exclude.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The token is not an address, range, CIDR block or host name.
    #[error("bad target \"{token}\": {why}")]
    Bad {
        /// The token as given.
        token: String,
        /// What is wrong with it.
        why: String,
    },
    /// Resolution failed.
    #[error("cannot resolve host name \"{name}\": {why}")]
    Resolve {
        /// The name.
        name: String,
        /// The resolver's message.
        why: String,
    },
    /// A list file could not be read.
    #[error("cannot read target list {path}: {why}")]
    File {
        /// The path.
        path: String,
        /// The I/O error.
        why: String,
    },
    /// A stored target list cannot be used.
    #[error("target list \"{token}\": {why}")]
    List {
        /// The reference token.
        token: String,
        /// What is wrong.
        why: String,
    },
    /// Nothing to scan.
    #[error("{0}")]
    Empty(String),
}

fn bad(token: &str, why: impl Into<String>) -> TargetError {
    TargetError::Bad {
        token: token.to_string(),
        why: why.into(),
    }
}

/// Sorted, disjoint, inclusive ranges of one address family with cumulative counts:
/// held in memory, or read from a mapped target list file ([`super::list`]).
#[derive(Clone, Debug)]
pub struct RangeSet {
    store: Store,
    total: u64,
}

#[derive(Clone, Debug)]
enum Store {
    Owned {
        ranges: Vec<(u128, u128)>,
        /// `before[i]` = number of addresses in `ranges[..i]`.
        before: Vec<u64>,
    },
    Mapped(Arc<TargetList>, Fam),
}

impl Default for RangeSet {
    fn default() -> Self {
        RangeSet {
            store: Store::Owned {
                ranges: Vec::new(),
                before: Vec::new(),
            },
            total: 0,
        }
    }
}

impl PartialEq for RangeSet {
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total
            && self.range_count() == other.range_count()
            && self.iter_ranges().eq(other.iter_ranges())
    }
}
impl Eq for RangeSet {}

impl RangeSet {
    /// Build from any ranges (overlaps and adjacency are merged).
    pub fn from_ranges(mut v: Vec<(u128, u128)>) -> Result<RangeSet, String> {
        v.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        let mut before = Vec::with_capacity(merged.len());
        let mut total: u64 = 0;
        for &(lo, hi) in &merged {
            before.push(total);
            let n = hi - lo + 1;
            total = u64::try_from(n)
                .ok()
                .and_then(|n| total.checked_add(n))
                .filter(|t| *t <= 1 << 62)
                .ok_or_else(|| {
                    "more than 2^62 addresses: prtip's index space cannot hold them".to_string()
                })?;
        }
        Ok(RangeSet {
            store: Store::Owned {
                ranges: merged,
                before,
            },
            total,
        })
    }
    /// The addresses of family `fam` of a mapped list file.
    pub fn mapped(list: Arc<TargetList>, fam: Fam) -> RangeSet {
        RangeSet {
            total: list.count(fam),
            store: Store::Mapped(list, fam),
        }
    }
    /// Number of addresses.
    pub fn len(&self) -> u64 {
        self.total
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
    /// Number of ranges (what memory, or the mapped file, grows with).
    pub fn range_count(&self) -> usize {
        match &self.store {
            Store::Owned { ranges, .. } => ranges.len(),
            Store::Mapped(l, f) => l.range_count(*f),
        }
    }
    /// Whether the ranges are read from a mapped list file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.store, Store::Mapped(..))
    }
    /// The ranges, sorted and disjoint.
    pub fn iter_ranges(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        (0..self.range_count()).map(move |r| match &self.store {
            Store::Owned { ranges, .. } => ranges[r],
            Store::Mapped(l, f) => l.range(*f, r),
        })
    }
    /// The ranges, sorted and disjoint, copied.
    pub fn ranges(&self) -> Vec<(u128, u128)> {
        self.iter_ranges().collect()
    }
    /// The `i`-th address in ascending order.
    #[inline]
    pub fn get(&self, i: u64) -> Option<u128> {
        if i >= self.total {
            return None;
        }
        match &self.store {
            Store::Owned { ranges, before } => {
                let r = before.partition_point(|&b| b <= i) - 1;
                Some(ranges[r].0 + (i - before[r]) as u128)
            }
            Store::Mapped(l, f) => l.get(*f, i),
        }
    }
    /// Position of `a`, if it is in the set.
    pub fn index_of(&self, a: u128) -> Option<u64> {
        match &self.store {
            Store::Owned { ranges, before } => {
                let r = ranges.partition_point(|&(lo, _)| lo <= a).checked_sub(1)?;
                let (lo, hi) = ranges[r];
                (a <= hi).then(|| before[r] + (a - lo) as u64)
            }
            Store::Mapped(l, f) => l.index_of(*f, a),
        }
    }
    /// `self` minus `other`.
    pub fn subtract(&self, other: &RangeSet) -> RangeSet {
        if other.is_empty() {
            return self.clone();
        }
        let other = other.ranges();
        let mut out = Vec::new();
        let mut j = 0;
        for (lo, hi) in self.iter_ranges() {
            let mut cur = lo;
            let mut done = false;
            while j < other.len() && other[j].1 < cur {
                j += 1;
            }
            let mut k = j;
            while k < other.len() && other[k].0 <= hi {
                let (elo, ehi) = other[k];
                if elo > cur {
                    out.push((cur, elo - 1));
                }
                if ehi >= hi {
                    done = true;
                    break;
                }
                cur = cur.max(ehi + 1);
                k += 1;
            }
            if !done {
                out.push((cur, hi));
            }
        }
        RangeSet::from_ranges(out).expect("a subset never grows")
    }
}

/// Where a target address came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Name as given.
    pub name: String,
    /// Address used.
    pub addr: IpAddr,
}

/// All target addresses of a scan: IPv4 first, then IPv6, excludes removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSet {
    /// IPv4 addresses (as u128 holding a u32).
    pub v4: RangeSet,
    /// IPv6 addresses.
    pub v6: RangeSet,
    /// Host names resolved while building, in the order met.
    pub resolved: Vec<Resolved>,
}

impl TargetSet {
    /// Parse `targets` minus `excludes`. `resolve` is called once per distinct host name.
    pub fn build(
        targets: &[String],
        excludes: &[String],
        resolve: &mut dyn FnMut(&str) -> Result<IpAddr, String>,
    ) -> Result<TargetSet, TargetError> {
        // A stored list alone (what `-iL` writes): read in place from its mapped file.
        if let ([tok], []) = (targets, excludes) {
            if let Some(r) = ListRef::parse(tok) {
                let l = loaded_list(&r, tok)?;
                return Ok(TargetSet {
                    v4: RangeSet::mapped(l.clone(), Fam::V4),
                    v6: RangeSet::mapped(l, Fam::V6),
                    resolved: Vec::new(),
                });
            }
        }
        let mut cache: HashMap<String, IpAddr> = HashMap::new();
        let mut resolved = Vec::new();
        let mut collect = |tokens: &[String],
                           resolved: &mut Vec<Resolved>|
         -> Result<(Ranges, Ranges), TargetError> {
            let (mut v4, mut v6) = (Vec::new(), Vec::new());
            for tok in tokens {
                for piece in parse_token(tok)? {
                    let (fam, lo, hi) = match piece {
                        Piece::V4(lo, hi) => (4, lo as u128, hi as u128),
                        Piece::V6(lo, hi) => (6, lo, hi),
                        Piece::Name { name, prefix } => {
                            let addr = match cache.get(&name) {
                                Some(a) => *a,
                                None => {
                                    let a = resolve(&name).map_err(|why| TargetError::Resolve {
                                        name: name.clone(),
                                        why,
                                    })?;
                                    cache.insert(name.clone(), a);
                                    resolved.push(Resolved {
                                        name: name.clone(),
                                        addr: a,
                                    });
                                    a
                                }
                            };
                            match name_range(addr, prefix, tok)? {
                                (Fam::V4, lo, hi) => (4, lo, hi),
                                (Fam::V6, lo, hi) => (6, lo, hi),
                            }
                        }
                        Piece::List(r) => {
                            let l = loaded_list(&r, tok)?;
                            v4.extend(RangeSet::mapped(l.clone(), Fam::V4).iter_ranges());
                            v6.extend(RangeSet::mapped(l, Fam::V6).iter_ranges());
                            continue;
                        }
                    };
                    if fam == 4 {
                        v4.push((lo, hi))
                    } else {
                        v6.push((lo, hi))
                    }
                    if v4.len() + v6.len() > 4 * MAX_TOKEN_RANGES {
                        return Err(bad(tok, "targets expand to too many separate ranges (more than 4194304); use CIDR blocks or ranges"));
                    }
                }
            }
            Ok((v4, v6))
        };
        let (t4, t6) = collect(targets, &mut resolved)?;
        let (e4, e6) = collect(excludes, &mut resolved)?;
        let mk = |v, what: &str| {
            RangeSet::from_ranges(v).map_err(|why| TargetError::Empty(format!("{what}: {why}")))
        };
        let v4 = mk(t4, "IPv4 targets")?.subtract(&mk(e4, "IPv4 excludes")?);
        let v6 = mk(t6, "IPv6 targets")?.subtract(&mk(e6, "IPv6 excludes")?);
        Ok(TargetSet { v4, v6, resolved })
    }

    /// Number of addresses.
    pub fn len(&self) -> u64 {
        self.v4.len() + self.v6.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Address number `i` (IPv4 addresses come first).
    #[inline]
    pub fn get(&self, i: u64) -> Option<IpAddr> {
        if i < self.v4.len() {
            self.v4.get(i).map(|a| IpAddr::V4(Ipv4Addr::from(a as u32)))
        } else {
            self.v6
                .get(i - self.v4.len())
                .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
        }
    }
    /// IPv4 address number `i` (panics if `i` is not an IPv4 index).
    #[inline]
    pub fn get_v4(&self, i: u64) -> Ipv4Addr {
        Ipv4Addr::from(self.v4.get(i).expect("index within IPv4 targets") as u32)
    }
    /// Index of `a`, if it is a target.
    pub fn index_of(&self, a: IpAddr) -> Option<u64> {
        match a {
            IpAddr::V4(a) => self.v4.index_of(u32::from(a) as u128),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4.index_of(u32::from(v4) as u128),
                None => self.v6.index_of(u128::from(a)).map(|i| i + self.v4.len()),
            },
        }
    }
    /// Whether `a` is a target.
    pub fn contains(&self, a: IpAddr) -> bool {
        self.index_of(a).is_some()
    }
    /// Number of ranges held (memory grows with this, not with addresses).
    pub fn range_count(&self) -> usize {
        self.v4.range_count() + self.v6.range_count()
    }
}

/// The loaded list a reference token names, with the counts it gives.
fn loaded_list(r: &ListRef, tok: &str) -> Result<Arc<TargetList>, TargetError> {
    let l = super::list::lookup(r.hash).ok_or_else(|| TargetError::List {
        token: tok.to_string(),
        why: format!(
            "its file {} is not loaded: it is missing from the scan directory (`prtip log verify DIR` checks it)",
            r.hash.file_name()
        ),
    })?;
    if l.reference() != *r {
        return Err(TargetError::List {
            token: tok.to_string(),
            why: format!(
                "the loaded list holds {} IPv4 and {} IPv6 addresses",
                l.count(Fam::V4),
                l.count(Fam::V6)
            ),
        });
    }
    Ok(l)
}

/// The addresses a resolved host name (with its optional CIDR prefix) stands for.
pub(super) fn name_range(
    addr: IpAddr,
    prefix: Option<u8>,
    tok: &str,
) -> Result<(Fam, u128, u128), TargetError> {
    Ok(match addr {
        IpAddr::V4(a) => {
            let (lo, hi) = cidr_v4(u32::from(a), prefix.unwrap_or(32), tok)?;
            (Fam::V4, lo as u128, hi as u128)
        }
        IpAddr::V6(a) => {
            let (lo, hi) = cidr_v6(u128::from(a), prefix.unwrap_or(128), tok)?;
            (Fam::V6, lo, hi)
        }
    })
}

/// One parsed piece of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// IPv4 range, inclusive.
    V4(u32, u32),
    /// IPv6 range, inclusive.
    V6(u128, u128),
    /// A stored target list (`@list:<hash>:<IPv4 count>:<IPv6 count>`, what a log
    /// of an `-iL` scan names in its spec; see [`super::list`]).
    List(ListRef),
    /// A host name, with an optional CIDR prefix applied after resolving.
    Name {
        /// The name.
        name: String,
        /// The prefix.
        prefix: Option<u8>,
    },
}

/// Parse one target or exclude token into ranges and names.
pub fn parse_token(tok: &str) -> Result<Vec<Piece>, TargetError> {
    let t = tok.trim();
    if t.is_empty() {
        return Err(bad(tok, "empty target"));
    }
    if t.starts_with(super::list::LIST_PREFIX) {
        return ListRef::parse(t)
            .map(|r| vec![Piece::List(r)])
            .ok_or_else(|| bad(tok, "not a valid stored target list reference (@list:<64 hex digits>:<IPv4 count>:<IPv6 count>)"));
    }
    match parse_single(t) {
        Ok(p) => Ok(p),
        Err(e) if t.contains(',') && !looks_like_octet_form(t) => {
            let mut out = Vec::new();
            for part in t.split(',') {
                if part.trim().is_empty() {
                    return Err(bad(tok, "empty item in comma list"));
                }
                out.extend(parse_single(part.trim()).map_err(|e| match e {
                    TargetError::Bad { token, why } => bad(tok, format!("item \"{token}\": {why}")),
                    other => other,
                })?);
            }
            let _ = e;
            Ok(out)
        }
        Err(e) => Err(e),
    }
}

fn looks_like_octet_form(t: &str) -> bool {
    t.split('.').count() == 4 && !t.contains(':') && !t.contains('/')
}

fn parse_single(t: &str) -> Result<Vec<Piece>, TargetError> {
    // CIDR
    if let Some((addr, prefix)) = t.split_once('/') {
        let prefix_n: u8 = prefix
            .parse()
            .map_err(|_| bad(t, format!("prefix \"/{prefix}\" is not a number")))?;
        if let Ok(a) = addr.parse::<Ipv4Addr>() {
            let (lo, hi) = cidr_v4(u32::from(a), prefix_n, t)?;
            return Ok(vec![Piece::V4(lo, hi)]);
        }
        if let Ok(a) = addr.parse::<Ipv6Addr>() {
            let (lo, hi) = cidr_v6(u128::from(a), prefix_n, t)?;
            return Ok(vec![Piece::V6(lo, hi)]);
        }
        if is_host_name(addr) {
            if prefix_n > 128 {
                return Err(bad(t, format!("prefix /{prefix_n} is above 128")));
            }
            return Ok(vec![Piece::Name {
                name: addr.to_string(),
                prefix: Some(prefix_n),
            }]);
        }
        return Err(bad(t, format!("\"{addr}\" is not an address or host name")));
    }
    if let Ok(a) = t.parse::<Ipv4Addr>() {
        let a = u32::from(a);
        return Ok(vec![Piece::V4(a, a)]);
    }
    if let Ok(a) = t.parse::<Ipv6Addr>() {
        let a = u128::from(a);
        return Ok(vec![Piece::V6(a, a)]);
    }
    // full range a-b
    if let Some((a, b)) = t.split_once('-') {
        if let (Ok(a), Ok(b)) = (a.parse::<Ipv4Addr>(), b.parse::<Ipv4Addr>()) {
            let (a, b) = (u32::from(a), u32::from(b));
            if a > b {
                return Err(bad(
                    t,
                    "range runs backwards (first address above the last)",
                ));
            }
            return Ok(vec![Piece::V4(a, b)]);
        }
        if let (Ok(a), Ok(b)) = (a.parse::<Ipv6Addr>(), b.parse::<Ipv6Addr>()) {
            let (a, b) = (u128::from(a), u128::from(b));
            if a > b {
                return Err(bad(
                    t,
                    "range runs backwards (first address above the last)",
                ));
            }
            return Ok(vec![Piece::V6(a, b)]);
        }
    }
    if looks_like_octet_form(t) && t.chars().all(|c| c.is_ascii_digit() || "-.*,".contains(c)) {
        return octet_ranges(t).map(|v| v.into_iter().map(|(a, b)| Piece::V4(a, b)).collect());
    }
    if t.contains(':') {
        return Err(bad(t, "not a valid IPv6 address"));
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad(
            t,
            "not a valid IPv4 address (four octets 0-255 expected)",
        ));
    }
    if is_host_name(t) {
        return Ok(vec![Piece::Name {
            name: t.to_string(),
            prefix: None,
        }]);
    }
    Err(bad(
        t,
        "not an address, CIDR block, range (a-b, octet ranges like 10.0.0-3.1-254) or host name",
    ))
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn cidr_v4(a: u32, prefix: u8, tok: &str) -> Result<(u32, u32), TargetError> {
    if prefix > 32 {
        return Err(bad(tok, format!("prefix /{prefix} is above 32 for IPv4")));
    }
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Ok((a & mask, (a & mask) | !mask))
}

fn cidr_v6(a: u128, prefix: u8, tok: &str) -> Result<(u128, u128), TargetError> {
    if prefix > 128 {
        return Err(bad(tok, format!("prefix /{prefix} is above 128 for IPv6")));
    }
    if prefix < 66 {
        return Err(bad(
            tok,
            format!("an IPv6 /{prefix} holds 2^{} addresses; prtip's index space holds at most 2^62 (use /66 or longer)", 128 - prefix as u32),
        ));
    }
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    Ok((a & mask, (a & mask) | !mask))
}

/// nmap octet ranges: `10.0.0-3.1-254`, `10.*.1.1`, `10.0.0.1,5,9`.
fn octet_ranges(t: &str) -> Result<Vec<(u32, u32)>, TargetError> {
    let mut octets: Vec<Vec<(u32, u32)>> = Vec::with_capacity(4);
    for part in t.split('.') {
        let mut spans = Vec::new();
        if part.is_empty() {
            return Err(bad(t, "empty octet"));
        }
        for item in part.split(',') {
            let num = |s: &str, default: u32| -> Result<u32, TargetError> {
                if s.is_empty() {
                    return Ok(default);
                }
                let n: u32 = s
                    .parse()
                    .map_err(|_| bad(t, format!("octet \"{s}\" is not a number")))?;
                if n > 255 {
                    return Err(bad(t, format!("octet {n} is above 255")));
                }
                Ok(n)
            };
            let (lo, hi) = if item == "*" {
                (0, 255)
            } else if let Some((a, b)) = item.split_once('-') {
                if a.is_empty() && b.is_empty() {
                    return Err(bad(t, "octet range \"-\" has no ends"));
                }
                (num(a, 0)?, num(b, 255)?)
            } else if item.is_empty() {
                return Err(bad(t, "empty item in an octet list"));
            } else {
                let n = num(item, 0)?;
                (n, n)
            };
            if lo > hi {
                return Err(bad(t, format!("octet range {lo}-{hi} runs backwards")));
            }
            spans.push((lo, hi));
        }
        spans.sort_unstable();
        octets.push(spans);
    }
    let expand =
        |spans: &[(u32, u32)]| -> Vec<u32> { spans.iter().flat_map(|&(a, b)| a..=b).collect() };
    let (o0, o1, o2) = (expand(&octets[0]), expand(&octets[1]), expand(&octets[2]));
    let count = o0.len() * o1.len() * o2.len() * octets[3].len();
    if count > MAX_TOKEN_RANGES {
        return Err(bad(
            t,
            format!("octet ranges expand to {count} separate ranges (at most {MAX_TOKEN_RANGES}); use CIDR blocks"),
        ));
    }
    let mut out = Vec::with_capacity(count);
    for &a in &o0 {
        for &b in &o1 {
            for &c in &o2 {
                let base = (a << 24) | (b << 16) | (c << 8);
                for &(lo, hi) in &octets[3] {
                    out.push((base | lo, base | hi));
                }
            }
        }
    }
    Ok(out)
}

/// Read a target list file (`-iL`, `--excludefile`): tokens separated by white space,
/// `#` starts a comment. `-` reads standard input.
pub fn read_list_file(path: &Path) -> Result<Vec<String>, TargetError> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| TargetError::File {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split_whitespace())
        .map(str::to_string)
        .collect())
}

/// Resolve a host name with the system resolver, preferring an IPv4 address.
pub fn resolve_system(name: &str) -> Result<IpAddr, String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<IpAddr> = (name, 0)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .map(|s| s.ip())
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| "no addresses".to_string())
}

/// Resolve a host name with the system resolver to an IPv6 address (`-6`);
/// a name with IPv4 addresses only is an error saying so.
pub fn resolve_system_v6(name: &str) -> Result<IpAddr, String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<IpAddr> = (name, 0)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .map(|s| s.ip())
        .collect();
    match addrs.iter().find(|a| a.is_ipv6()) {
        Some(a) => Ok(*a),
        None if addrs.is_empty() => Err("no addresses".to_string()),
        None => Err(format!(
            "it has IPv4 addresses only ({}) and -6 scans IPv6: drop -6 to scan it",
            addrs[0]
        )),
    }
}

impl fmt::Display for TargetSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} addresses in {} ranges",
            self.len(),
            self.range_count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_dns(name: &str) -> Result<IpAddr, String> {
        Err(format!("no resolver in this test ({name})"))
    }
    fn set(t: &[&str], e: &[&str]) -> Result<TargetSet, TargetError> {
        let t: Vec<String> = t.iter().map(|s| s.to_string()).collect();
        let e: Vec<String> = e.iter().map(|s| s.to_string()).collect();
        TargetSet::build(&t, &e, &mut no_dns)
    }
    fn all(s: &TargetSet) -> Vec<String> {
        (0..s.len())
            .map(|i| s.get(i).unwrap().to_string())
            .collect()
    }
    fn err(t: &str) -> String {
        set(&[t], &[]).unwrap_err().to_string()
    }

    #[test]
    fn single_cidr_and_range() {
        let s = set(
            &["198.19.0.7", "198.19.1.0/30", "198.19.2.1-198.19.2.3"],
            &[],
        )
        .unwrap();
        assert_eq!(
            all(&s),
            [
                "198.19.0.7",
                "198.19.1.0",
                "198.19.1.1",
                "198.19.1.2",
                "198.19.1.3",
                "198.19.2.1",
                "198.19.2.2",
                "198.19.2.3"
            ]
        );
        // host bits are ignored, as nmap does
        assert_eq!(
            set(&["10.0.0.77/30"], &[]).unwrap().v4.ranges(),
            &[(0x0a00004c, 0x0a00004f)]
        );
        assert_eq!(set(&["0.0.0.0/0"], &[]).unwrap().len(), 1 << 32);
    }

    #[test]
    fn octet_ranges_like_nmap() {
        let s = set(&["10.0.0-3.1-254"], &[]).unwrap();
        assert_eq!(s.len(), 4 * 254);
        assert_eq!(s.range_count(), 4);
        assert_eq!(s.get(0).unwrap().to_string(), "10.0.0.1");
        assert_eq!(s.get(254).unwrap().to_string(), "10.0.1.1");
        assert_eq!(s.get(4 * 254 - 1).unwrap().to_string(), "10.0.3.254");
        let s = set(&["10.0.0.1,3,5-6"], &[]).unwrap();
        assert_eq!(all(&s), ["10.0.0.1", "10.0.0.3", "10.0.0.5", "10.0.0.6"]);
        assert_eq!(set(&["10.0.*.0"], &[]).unwrap().len(), 256);
        assert_eq!(set(&["10.0.0.250-"], &[]).unwrap().len(), 6);
        assert_eq!(set(&["10.0.0.-2"], &[]).unwrap().len(), 3);
        // full octets merge into one range
        assert_eq!(set(&["10.0.0-3.*"], &[]).unwrap().range_count(), 1);
    }

    #[test]
    fn comma_lists_and_duplicates_fold() {
        let s = set(
            &["198.19.0.1,198.19.0.2", "198.19.0.2", "198.19.0.0/31"],
            &[],
        )
        .unwrap();
        assert_eq!(all(&s), ["198.19.0.0", "198.19.0.1", "198.19.0.2"]);
        assert_eq!(s.range_count(), 1);
    }

    #[test]
    fn excludes_are_subtracted_without_materialising() {
        let s = set(
            &["198.19.0.0/16"],
            &[
                "198.19.0.0/24",
                "198.19.5.5",
                "198.19.255.255",
                "10.0.0.0/8",
            ],
        )
        .unwrap();
        assert_eq!(s.len(), 65536 - 256 - 2);
        assert_eq!(s.range_count(), 2);
        assert!(!s.contains("198.19.5.5".parse().unwrap()));
        assert!(s.contains("198.19.5.6".parse().unwrap()));
        assert_eq!(s.get(0).unwrap().to_string(), "198.19.1.0");
        for i in [0, 1, 1000, s.len() - 1] {
            assert_eq!(s.index_of(s.get(i).unwrap()), Some(i));
        }
        assert!(set(&["198.19.0.0/24"], &["198.19.0.0/16"])
            .unwrap()
            .is_empty());
        // a /0 minus a /8 still is two ranges
        let s = set(&["0.0.0.0/0"], &["10.0.0.0/8"]).unwrap();
        assert_eq!((s.len(), s.range_count()), ((1 << 32) - (1 << 24), 2));
    }

    #[test]
    fn subtract_edge_cases() {
        let a = RangeSet::from_ranges(vec![(0, 9), (20, 29)]).unwrap();
        let b = RangeSet::from_ranges(vec![(0, 0), (5, 22), (29, 40)]).unwrap();
        assert_eq!(a.subtract(&b).ranges(), &[(1, 4), (23, 28)]);
        let c = RangeSet::from_ranges(vec![(3, 3), (5, 5)]).unwrap();
        assert_eq!(
            RangeSet::from_ranges(vec![(0, 9)])
                .unwrap()
                .subtract(&c)
                .ranges(),
            &[(0, 2), (4, 4), (6, 9)]
        );
    }

    #[test]
    fn ipv6_types_are_ready() {
        let s = set(
            &["2001:db8::1", "2001:db8::100/126", "198.19.0.1"],
            &["2001:db8::101"],
        )
        .unwrap();
        assert_eq!(s.len(), 1 + 3 + 1);
        assert_eq!(s.get(0).unwrap().to_string(), "198.19.0.1"); // IPv4 first
        assert_eq!(s.get(1).unwrap().to_string(), "2001:db8::1");
        assert_eq!(s.index_of("2001:db8::103".parse().unwrap()), Some(4));
        assert!(err("2001:db8::/32").contains("2^96"));
    }

    #[test]
    fn host_names_resolve_once_and_are_recorded() {
        let mut calls = 0;
        let mut r = |n: &str| -> Result<IpAddr, String> {
            calls += 1;
            assert_eq!(n, "tgt.lab");
            Ok("198.19.0.9".parse().unwrap())
        };
        let t = vec!["tgt.lab".to_string(), "tgt.lab/31".to_string()];
        let s = TargetSet::build(&t, &[], &mut r).unwrap();
        assert_eq!(calls, 1);
        assert_eq!(all(&s), ["198.19.0.8", "198.19.0.9"]);
        assert_eq!(
            s.resolved,
            vec![Resolved {
                name: "tgt.lab".into(),
                addr: "198.19.0.9".parse().unwrap()
            }]
        );
        let e = TargetSet::build(&["nx.invalid".to_string()], &[], &mut no_dns).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot resolve host name \"nx.invalid\": no resolver in this test (nx.invalid)"
        );
    }

    #[test]
    fn every_bad_token_is_named() {
        assert_eq!(
            err("10.0.0.300"),
            "bad target \"10.0.0.300\": octet 300 is above 255"
        );
        assert_eq!(
            err("10.0.0.0/33"),
            "bad target \"10.0.0.0/33\": prefix /33 is above 32 for IPv4"
        );
        assert_eq!(
            err("10.0.0.0/x"),
            "bad target \"10.0.0.0/x\": prefix \"/x\" is not a number"
        );
        assert_eq!(
            err("10.0.0.9-10.0.0.1"),
            "bad target \"10.0.0.9-10.0.0.1\": range runs backwards (first address above the last)"
        );
        assert_eq!(
            err("10.0.0.9-1"),
            "bad target \"10.0.0.9-1\": octet range 9-1 runs backwards"
        );
        assert_eq!(
            err("10.0.0"),
            "bad target \"10.0.0\": not a valid IPv4 address (four octets 0-255 expected)"
        );
        assert_eq!(err("10..0.1"), "bad target \"10..0.1\": empty octet");
        assert_eq!(
            err("10.0.0.-"),
            "bad target \"10.0.0.-\": octet range \"-\" has no ends"
        );
        assert_eq!(
            err("2001:db8::zz"),
            "bad target \"2001:db8::zz\": not a valid IPv6 address"
        );
        assert_eq!(err("a b"), "bad target \"a b\": not an address, CIDR block, range (a-b, octet ranges like 10.0.0-3.1-254) or host name");
        assert_eq!(
            err("10.0.0.1,,10.0.0.2"),
            "bad target \"10.0.0.1,,10.0.0.2\": empty item in comma list"
        );
        assert_eq!(
            err("10.0.0.1,10.0.0.999"),
            "bad target \"10.0.0.1,10.0.0.999\": item \"10.0.0.999\": octet 999 is above 255"
        );
        assert_eq!(err(""), "bad target \"\": empty target");
        assert!(err("*.*.*.1").contains("separate ranges"));
        assert_eq!(err("-x.example"), "bad target \"-x.example\": not an address, CIDR block, range (a-b, octet ranges like 10.0.0-3.1-254) or host name");
    }

    #[test]
    fn list_files_skip_comments() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        std::fs::write(
            &p,
            "198.19.0.1 198.19.0.2 # two\n\n# all comment\n198.19.1.0/24\n",
        )
        .unwrap();
        assert_eq!(
            read_list_file(&p).unwrap(),
            ["198.19.0.1", "198.19.0.2", "198.19.1.0/24"]
        );
        let e = read_list_file(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read target list "), "{e}");
    }

    #[test]
    fn resolver_finds_localhost() {
        assert_eq!(
            resolve_system("localhost").unwrap().to_string(),
            "127.0.0.1"
        );
    }
}
