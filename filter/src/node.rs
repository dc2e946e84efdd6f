//! The compiled form of a filter and its evaluation against a [`ResultRow`].
//!
//! This module owns the fast representation — a 65,536-bit port bitmap,
//! protocol/state/reason bit masks, CIDRs as 128-bit value/mask pairs,
//! precompiled regexes — and the cost-based ordering of `and`/`or` operands
//! (conditions are pure, so cheap ones go first). It never parses text.

use prtip_store::event::{PortState, Protocol, Reason};
use prtip_store::ResultRow;
use std::net::IpAddr;

pub(crate) const REASON_SYN_ACK: u16 = 1 << 0;
pub(crate) const REASON_RESET: u16 = 1 << 1;
pub(crate) const REASON_HOST_UNREACH: u16 = 1 << 2;
pub(crate) const REASON_PORT_UNREACH: u16 = 1 << 3;
pub(crate) const REASON_UDP_RESPONSE: u16 = 1 << 4;
pub(crate) const REASON_NO_RESPONSE: u16 = 1 << 5;
pub(crate) const REASON_CONNECTED: u16 = 1 << 6;
pub(crate) const REASON_CONN_REFUSED: u16 = 1 << 7;

/// A set of ports as a 65,536-bit bitmap (8 KiB): membership is one load.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PortSet {
    bits: [u64; 1024],
}

impl PortSet {
    pub(crate) fn empty() -> Self {
        PortSet { bits: [0; 1024] }
    }
    pub(crate) fn insert_range(&mut self, lo: u16, hi: u16) {
        for p in lo..=hi {
            self.bits[usize::from(p >> 6)] |= 1 << (p & 63);
        }
    }
    pub(crate) fn invert(&mut self) {
        for w in self.bits.iter_mut() {
            *w = !*w;
        }
    }
    #[inline]
    pub(crate) fn contains(&self, p: u16) -> bool {
        self.bits[usize::from(p >> 6)] & (1 << (p & 63)) != 0
    }
    pub(crate) fn intersect(&mut self, other: &PortSet) {
        for (a, b) in self.bits.iter_mut().zip(other.bits.iter()) {
            *a &= *b;
        }
    }
    pub(crate) fn union(&mut self, other: &PortSet) {
        for (a, b) in self.bits.iter_mut().zip(other.bits.iter()) {
            *a |= *b;
        }
    }
    fn count(&self) -> u32 {
        self.bits.iter().map(|w| w.count_ones()).sum()
    }
}

impl std::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PortSet({} ports)", self.count())
    }
}

/// An address prefix, in the 16-byte form of [`prtip_store::Addr`] (IPv4 mapped).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Cidr {
    value: u128,
    mask: u128,
}

impl Cidr {
    /// `ip/prefix`; an IPv4 prefix becomes an IPv4-mapped IPv6 prefix (`/96 + n`).
    pub(crate) fn new(ip: IpAddr, prefix: u32) -> Self {
        let (bits, len) = match ip {
            IpAddr::V4(v4) => (
                u128::from_be_bytes(v4.to_ipv6_mapped().octets()),
                96 + prefix,
            ),
            IpAddr::V6(v6) => (u128::from_be_bytes(v6.octets()), prefix),
        };
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        Cidr {
            value: bits & mask,
            mask,
        }
    }
    #[inline]
    fn contains(&self, a: u128) -> bool {
        a & self.mask == self.value
    }
}

/// Numeric comparison.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    #[inline]
    fn test<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// Text fields of a row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum TextField {
    Service,
    Product,
    Version,
    Extra,
    Hostname,
    Banner,
}

/// How a text field is matched.
#[derive(Clone, Debug)]
pub(crate) enum TextMatch {
    Equals(String),
    Contains(String),
    Regex(Box<regex::Regex>),
    BytesRegex(Box<regex::bytes::Regex>),
}

/// `has <field>`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HasField {
    Banner,
    Service,
    Product,
    Version,
    Hostname,
    Rtt,
}

/// A compiled filter expression.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    True,
    And(Vec<Node>),
    Or(Vec<Node>),
    /// Lowered `and`: every `flat` operand is evaluated without short-circuit
    /// (no data-dependent branches, so the CPU keeps streaming rows), then `rest`
    /// in order, short-circuiting.
    AndFast {
        flat: Vec<Node>,
        rest: Vec<Node>,
    },
    /// Lowered `or`, the same way.
    OrFast {
        flat: Vec<Node>,
        rest: Vec<Node>,
    },
    Not(Box<Node>),
    Port(Box<PortSet>),
    /// Bit 0 tcp, bit 1 udp.
    Proto(u8),
    /// Bit 0 open, 1 closed, 2 filtered, 3 open|filtered, 4 unfiltered.
    State(u8),
    Reason(u16),
    /// Truth table over (protocol, state, reason): bit `proto*64 + state*8 + reason`.
    /// Any and/or/not of `proto`, `state` and `reason` compiles to one of these.
    Table(u128),
    Addr(Vec<Cidr>),
    Text(TextField, TextMatch),
    /// Service confidence, compared in f32 (the stored precision).
    Confidence(Cmp, f32),
    /// RTT threshold in microseconds; rows with an unknown RTT (0) never match.
    Rtt(Cmp, f64),
    Ttl(Cmp, u8),
    Has(HasField),
}

#[inline]
fn proto_bit(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 1,
        Protocol::Udp => 2,
        // Host discovery results: no protocol name of the language selects them.
        Protocol::Host => 4,
    }
}

#[inline]
fn state_bit(s: PortState) -> u8 {
    match s {
        PortState::Open => 1,
        PortState::Closed => 2,
        PortState::Filtered => 4,
        PortState::OpenFiltered => 8,
        PortState::Unfiltered => 16,
    }
}

#[inline]
fn reason_bit(r: Reason) -> u16 {
    match r {
        Reason::SynAck => REASON_SYN_ACK,
        Reason::Reset => REASON_RESET,
        Reason::IcmpUnreachable => REASON_HOST_UNREACH,
        Reason::PortUnreachable => REASON_PORT_UNREACH,
        Reason::UdpResponse => REASON_UDP_RESPONSE,
        Reason::NoResponse => REASON_NO_RESPONSE,
        Reason::Connected => REASON_CONNECTED,
        Reason::ConnRefused => REASON_CONN_REFUSED,
        // Host discovery reasons: not in the language (yet), never matched.
        Reason::EchoReply
        | Reason::TimestampReply
        | Reason::AddressMaskReply
        | Reason::ArpResponse
        | Reason::NdResponse => 0,
    }
}

/// Index of a row's (protocol, state, reason) in a [`Node::Table`]; 128 (outside
/// every table: no table matches) for host discovery rows.
#[inline]
fn table_index(row: &ResultRow) -> u32 {
    let proto = match row.proto {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Host => return 128,
    };
    let state = match row.state {
        PortState::Open => 0,
        PortState::Closed => 1,
        PortState::Filtered => 2,
        PortState::OpenFiltered => 3,
        PortState::Unfiltered => 4,
    };
    // reason_bit is one bit per reason, at positions 0..8 (0 for host reasons).
    match reason_bit(row.reason) {
        0 => 128,
        b => proto << 6 | state << 3 | b.trailing_zeros(),
    }
}

fn text_of(row: &ResultRow, f: TextField) -> Option<&str> {
    match f {
        TextField::Service => row.service.as_ref().map(|s| s.name.as_str()),
        TextField::Product => row.service.as_ref().map(|s| s.product.as_str()),
        TextField::Version => row.service.as_ref().map(|s| s.version.as_str()),
        TextField::Extra => row.service.as_ref().map(|s| s.extra.as_str()),
        TextField::Hostname => row.hostname.as_deref(),
        TextField::Banner => None,
    }
}

impl Node {
    /// Does `row` satisfy this node?
    #[inline]
    pub(crate) fn eval(&self, row: &ResultRow) -> bool {
        match self {
            Node::True => true,
            Node::And(v) => v.iter().all(|n| n.eval(row)),
            Node::Or(v) => v.iter().any(|n| n.eval(row)),
            Node::AndFast { flat, rest } => {
                let mut ok = true;
                for n in flat {
                    ok &= n.eval_flat(row);
                }
                ok && rest.iter().all(|n| n.eval(row))
            }
            Node::OrFast { flat, rest } => {
                let mut any = false;
                for n in flat {
                    any |= n.eval_flat(row);
                }
                any || rest.iter().any(|n| n.eval(row))
            }
            Node::Not(n) => !n.eval(row),
            Node::Port(set) => set.contains(row.port),
            Node::Proto(m) => m & proto_bit(row.proto) != 0,
            Node::State(m) => m & state_bit(row.state) != 0,
            Node::Reason(m) => m & reason_bit(row.reason) != 0,
            Node::Table(t) => t.checked_shr(table_index(row)).unwrap_or(0) & 1 != 0,
            Node::Addr(cidrs) => {
                let a = u128::from_be_bytes(row.addr.0);
                cidrs.iter().any(|c| c.contains(a))
            }
            Node::Text(TextField::Banner, m) => match &row.banner {
                None => false,
                Some(b) => match m {
                    TextMatch::Equals(s) => b.as_slice() == s.as_bytes(),
                    TextMatch::Contains(s) => {
                        let n = s.as_bytes();
                        n.is_empty() || b.windows(n.len()).any(|w| w == n)
                    }
                    TextMatch::BytesRegex(r) => r.is_match(b),
                    TextMatch::Regex(r) => r.is_match(&String::from_utf8_lossy(b)),
                },
            },
            Node::Text(f, m) => match text_of(row, *f) {
                None => false,
                Some(t) => match m {
                    TextMatch::Equals(s) => t == s,
                    TextMatch::Contains(s) => t.contains(s.as_str()),
                    TextMatch::Regex(r) => r.is_match(t),
                    TextMatch::BytesRegex(r) => r.is_match(t.as_bytes()),
                },
            },
            Node::Confidence(c, x) => match &row.service {
                None => false,
                Some(s) => c.test(s.confidence, *x),
            },
            Node::Rtt(c, us) => row.rtt_us != 0 && c.test(f64::from(row.rtt_us), *us),
            Node::Ttl(c, t) => c.test(row.ttl, *t),
            Node::Has(h) => match h {
                HasField::Banner => row.banner.as_ref().is_some_and(|b| !b.is_empty()),
                HasField::Service => row.service.as_ref().is_some_and(|s| !s.name.is_empty()),
                HasField::Product => row.service.as_ref().is_some_and(|s| !s.product.is_empty()),
                HasField::Version => row.service.as_ref().is_some_and(|s| !s.version.is_empty()),
                HasField::Hostname => row.hostname.as_ref().is_some_and(|h| !h.is_empty()),
                HasField::Rtt => row.rtt_us != 0,
            },
        }
    }

    /// Can this node be evaluated with no data-dependent branch (a few loads and
    /// compares)?
    fn is_flat(&self) -> bool {
        match self {
            Node::True
            | Node::Table(_)
            | Node::Port(_)
            | Node::Ttl(..)
            | Node::Rtt(..)
            | Node::Confidence(..)
            | Node::Has(_) => true,
            Node::Addr(c) => c.len() <= 4,
            Node::Not(n) => n.is_flat(),
            _ => false,
        }
    }

    /// [`eval`](Self::eval) for [`is_flat`](Self::is_flat) nodes, written with
    /// non-short-circuit operators so the compiler emits no data-dependent branch.
    #[inline]
    fn eval_flat(&self, row: &ResultRow) -> bool {
        match self {
            Node::Table(t) => t.checked_shr(table_index(row)).unwrap_or(0) & 1 != 0,
            Node::Port(set) => set.contains(row.port),
            Node::Ttl(c, t) => c.test(row.ttl, *t),
            Node::Rtt(c, us) => (row.rtt_us != 0) & c.test(f64::from(row.rtt_us), *us),
            Node::Confidence(c, x) => {
                let (some, conf) = match &row.service {
                    Some(s) => (true, s.confidence),
                    None => (false, 0.0),
                };
                some & c.test(conf, *x)
            }
            Node::Addr(cidrs) => {
                let a = u128::from_be_bytes(row.addr.0);
                cidrs.iter().fold(false, |acc, c| acc | c.contains(a))
            }
            Node::Not(n) => !n.eval_flat(row),
            other => other.eval(row),
        }
    }

    /// Turn optimised `and`/`or` nodes into their lowered forms (flat operands
    /// first, evaluated branch-free).
    pub(crate) fn lower(self) -> Node {
        let split = |v: Vec<Node>| -> (Vec<Node>, Vec<Node>) {
            v.into_iter().map(Node::lower).partition(Node::is_flat)
        };
        match self {
            Node::And(v) => {
                let (flat, rest) = split(v);
                Node::AndFast { flat, rest }
            }
            Node::Or(v) => {
                let (flat, rest) = split(v);
                Node::OrFast { flat, rest }
            }
            Node::Not(n) => Node::Not(Box::new(n.lower())),
            other => other,
        }
    }

    /// Rough relative cost of evaluating the node once.
    fn cost(&self) -> u32 {
        match self {
            Node::True => 0,
            Node::Proto(_)
            | Node::State(_)
            | Node::Reason(_)
            | Node::Table(_)
            | Node::Ttl(..)
            | Node::Has(_) => 1,
            Node::Port(_) | Node::Rtt(..) | Node::Confidence(..) => 2,
            Node::Addr(c) => 2 + c.len() as u32,
            Node::Text(TextField::Banner, _) => 60,
            Node::Text(_, TextMatch::Equals(_)) => 8,
            Node::Text(_, TextMatch::Contains(_)) => 15,
            Node::Text(..) => 30,
            Node::Not(n) => n.cost(),
            Node::And(v) | Node::Or(v) => v.iter().map(Node::cost).sum::<u32>() + 1,
            Node::AndFast { flat, rest } | Node::OrFast { flat, rest } => {
                flat.iter().chain(rest).map(Node::cost).sum::<u32>() + 1
            }
        }
    }

    /// Truth table of a subtree that only looks at protocol, state and reason.
    fn table(&self) -> Option<u128> {
        let mut t = 0u128;
        for i in 0..128u32 {
            let (proto, state, reason) = (i >> 6, (i >> 3) & 7, i & 7);
            if self.eval_psr(proto, state, reason)? {
                t |= 1 << i;
            }
        }
        Some(t)
    }

    fn eval_psr(&self, proto: u32, state: u32, reason: u32) -> Option<bool> {
        Some(match self {
            Node::True => true,
            Node::Proto(m) => u32::from(*m) >> proto & 1 != 0,
            Node::State(m) => u32::from(*m) >> state & 1 != 0,
            Node::Reason(m) => u32::from(*m) >> reason & 1 != 0,
            Node::Table(t) => t >> (proto << 6 | state << 3 | reason) & 1 != 0,
            Node::Not(n) => !n.eval_psr(proto, state, reason)?,
            Node::And(v) => {
                let mut all = true;
                for n in v {
                    all &= n.eval_psr(proto, state, reason)?;
                }
                all
            }
            Node::Or(v) => {
                let mut any = false;
                for n in v {
                    any |= n.eval_psr(proto, state, reason)?;
                }
                any
            }
            _ => return None,
        })
    }

    /// Flatten nested `and`/`or`, fold protocol/state/reason conditions into one
    /// truth table and port conditions into one bitmap, and put cheap operands
    /// first. Conditions have no side effects, so this changes speed, never the
    /// answer.
    pub(crate) fn optimize(self) -> Node {
        let node = match self {
            Node::And(v) => {
                let mut out: Vec<Node> = Vec::with_capacity(v.len());
                let mut table: Option<u128> = None;
                let mut ports: Option<Box<PortSet>> = None;
                for n in v {
                    for n in match n.optimize() {
                        Node::And(inner) => inner,
                        other => vec![other],
                    } {
                        match n {
                            Node::True => {}
                            Node::Table(t) => *table.get_or_insert(u128::MAX) &= t,
                            Node::Port(p) => match &mut ports {
                                Some(acc) => acc.intersect(&p),
                                None => ports = Some(p),
                            },
                            other => out.push(other),
                        }
                    }
                }
                if let Some(p) = ports {
                    out.push(Node::Port(p));
                }
                if let Some(t) = table {
                    out.push(Node::Table(t));
                }
                out.sort_by_key(Node::cost);
                match out.len() {
                    0 => Node::True,
                    1 => out.pop().expect("one"),
                    _ => Node::And(out),
                }
            }
            Node::Or(v) => {
                let mut out: Vec<Node> = Vec::with_capacity(v.len());
                let mut table: Option<u128> = None;
                let mut ports: Option<Box<PortSet>> = None;
                for n in v {
                    for n in match n.optimize() {
                        Node::Or(inner) => inner,
                        other => vec![other],
                    } {
                        match n {
                            Node::True => return Node::True,
                            Node::Table(t) => *table.get_or_insert(0) |= t,
                            Node::Port(p) => match &mut ports {
                                Some(acc) => acc.union(&p),
                                None => ports = Some(p),
                            },
                            other => out.push(other),
                        }
                    }
                }
                if let Some(p) = ports {
                    out.push(Node::Port(p));
                }
                if let Some(t) = table {
                    out.push(Node::Table(t));
                }
                out.sort_by_key(Node::cost);
                match out.len() {
                    1 => out.pop().expect("one"),
                    _ => Node::Or(out),
                }
            }
            Node::Not(n) => match n.optimize() {
                Node::Not(inner) => *inner,
                Node::Port(mut p) => {
                    p.invert();
                    Node::Port(p)
                }
                Node::Table(t) => Node::Table(!t),
                other => Node::Not(Box::new(other)),
            },
            other => other,
        };
        match node {
            Node::Proto(_) | Node::State(_) | Node::Reason(_) => {
                Node::Table(node.table().expect("leaf has a table"))
            }
            Node::Table(u128::MAX) => Node::True,
            Node::Port(p) if p.bits.iter().all(|w| *w == u64::MAX) => Node::True,
            other => other,
        }
    }
}
