//! The parser: filter text → compiled [`Node`] tree, with column-accurate errors.
//!
//! This module owns the grammar (see the crate README) and the translation of
//! each condition into its compiled form (port bitmaps, protocol/state masks,
//! CIDR masks, compiled regexes). It never evaluates rows.

use crate::error::ParseError;
use crate::node::{
    Cidr, Cmp, HasField, Node, PortSet, TextField, TextMatch, REASON_CONNECTED,
    REASON_CONN_REFUSED, REASON_HOST_UNREACH, REASON_NO_RESPONSE, REASON_PORT_UNREACH,
    REASON_RESET, REASON_SYN_ACK, REASON_UDP_RESPONSE,
};
use std::net::IpAddr;

/// Every field name the language knows, in the order the help lists them.
pub const FIELDS: &[&str] = &[
    "port",
    "proto",
    "state",
    "addr",
    "service",
    "product",
    "version",
    "extra",
    "banner",
    "confidence",
    "rtt",
    "ttl",
    "reason",
    "hostname",
    "has",
];

/// How deeply `(` and `not`/`!` may nest. The parser, the optimizer, evaluation
/// and dropping a tree all recurse once per level, so an unbounded depth (400
/// parentheses, 20 000 `not`) would overflow the stack and abort the process;
/// real filters nest a handful of levels.
pub const MAX_DEPTH: usize = 64;

/// Comparison operator as written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    /// No operator: `port 22,80`.
    Implied,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `~` or `=~`.
    Regex,
    /// `!~`.
    NotRegex,
    /// `~=` or `contains`.
    Contains,
    /// `in`.
    In,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Implied => "",
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Regex => "~",
            Op::NotRegex => "!~",
            Op::Contains => "contains",
            Op::In => "in",
        }
    }
    fn cmp(self) -> Option<Cmp> {
        Some(match self {
            Op::Eq | Op::Implied => Cmp::Eq,
            Op::Ne => Cmp::Ne,
            Op::Lt => Cmp::Lt,
            Op::Le => Cmp::Le,
            Op::Gt => Cmp::Gt,
            Op::Ge => Cmp::Ge,
            _ => return None,
        })
    }
}

/// A value token: its text (quotes removed, escapes resolved) and where it was.
struct Value {
    text: String,
    start: usize,
    end: usize,
    quoted: bool,
}

pub(crate) struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// Open `(` and `not` levels at the cursor (at most [`MAX_DEPTH`]).
    depth: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}
fn is_word_char(c: char) -> bool {
    !(c.is_whitespace() || c == '(' || c == ')' || c == '"' || c == '\'')
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            depth: 0,
        }
    }

    /// Enter one nesting level (`(` or `not`) that starts at byte `start`.
    fn enter(&mut self, start: usize, end: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                start,
                end,
                format!(
                    "the filter nests `(` and `not` more than {MAX_DEPTH} levels deep; \
                     write it with fewer levels (`not not x` is `x`)"
                ),
            ));
        }
        Ok(())
    }

    fn err(&self, start: usize, end: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, start, end, msg)
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
    }

    /// The token at the cursor, for "found `...`" messages: (text, start, end).
    fn token_here(&self) -> (String, usize, usize) {
        let rest = self.rest();
        let start = self.pos;
        let Some(c) = rest.chars().next() else {
            return ("the end of the filter".to_string(), start, start);
        };
        let len = if is_ident_start(c) {
            rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len())
        } else if is_word_char(c) {
            rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len())
        } else {
            c.len_utf8()
        };
        (format!("`{}`", &rest[..len]), start, start + len)
    }

    /// If the next identifier (case-insensitive) is `kw`, consume it.
    fn eat_keyword(&mut self, kw: &str) -> bool {
        let rest = self.rest();
        let len = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
        if len == kw.len() && rest[..len].eq_ignore_ascii_case(kw) {
            self.pos += len;
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Parse the whole input.
    pub(crate) fn parse(mut self) -> Result<Node, ParseError> {
        self.skip_ws();
        if self.pos == self.src.len() {
            return Err(self.err(
                0,
                0,
                "empty filter: write a condition such as `port 80` or `state open`",
            ));
        }
        let node = self.parse_or()?;
        self.skip_ws();
        if self.pos < self.src.len() {
            let (tok, s, e) = self.token_here();
            let msg = if tok == "`)`" {
                "unmatched `)`: no `(` is open here".to_string()
            } else {
                format!("expected `and`, `or` or the end of the filter, found {tok}")
            };
            return Err(self.err(s, e, msg));
        }
        Ok(node)
    }

    fn parse_or(&mut self) -> Result<Node, ParseError> {
        let mut items = vec![self.parse_and()?];
        loop {
            self.skip_ws();
            if self.eat_keyword("or") || self.eat_str("||") {
                items.push(self.parse_and()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Node::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Node, ParseError> {
        let mut items = vec![self.parse_unary()?];
        loop {
            self.skip_ws();
            if self.eat_keyword("and") || self.eat_str("&&") {
                items.push(self.parse_unary()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Node::And(items)
        })
    }

    fn parse_unary(&mut self) -> Result<Node, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let negated = if self.eat_keyword("not") {
            true
        } else if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.pos += 1;
            true
        } else {
            false
        };
        if !negated {
            return self.parse_primary();
        }
        self.enter(start, self.pos)?;
        let inner = self.parse_unary()?;
        self.depth -= 1;
        Ok(Node::Not(Box::new(inner)))
    }

    fn parse_primary(&mut self) -> Result<Node, ParseError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None => Err(self.err(
                start,
                start,
                "expected a condition (such as `port 80`), found the end of the filter",
            )),
            Some('(') => {
                self.pos += 1;
                self.enter(start, self.pos)?;
                let inner = self.parse_or()?;
                self.skip_ws();
                if self.peek() == Some(')') {
                    self.pos += 1;
                    self.depth -= 1;
                    Ok(inner)
                } else {
                    let (tok, s, e) = self.token_here();
                    let col = self.src[..start].chars().count() + 1;
                    Err(self.err(
                        s,
                        e,
                        format!("expected `)` to close the `(` at column {col}, found {tok}"),
                    ))
                }
            }
            Some(c) if is_ident_start(c) => {
                let len = self
                    .rest()
                    .find(|c: char| !is_ident_char(c))
                    .unwrap_or(self.rest().len());
                let name = self.rest()[..len].to_ascii_lowercase();
                let end = start + len;
                if matches!(name.as_str(), "and" | "or") {
                    return Err(self.err(
                        start,
                        end,
                        format!(
                            "expected a condition (such as `port 80`) before `{}`",
                            &self.src[start..end]
                        ),
                    ));
                }
                if matches!(name.as_str(), "all" | "true") {
                    self.pos = end;
                    return Ok(Node::True);
                }
                let field = canonical_field(&name).ok_or_else(|| {
                    let mut msg = format!("unknown field `{}`", &self.src[start..end]);
                    if let Some(s) = suggest(&name) {
                        msg.push_str(&format!(" (did you mean `{s}`?)"));
                    }
                    msg.push_str("; fields are ");
                    msg.push_str(&FIELDS.join(", "));
                    self.err(start, end, msg)
                })?;
                self.pos = end;
                self.parse_condition(field, start, end)
            }
            Some(_) => {
                let (tok, s, e) = self.token_here();
                Err(self.err(
                    s,
                    e,
                    format!("expected a condition (such as `port 80`), found {tok}"),
                ))
            }
        }
    }

    /// Operator after a field name (may be absent).
    fn parse_op(&mut self) -> Result<(Op, usize, usize), ParseError> {
        self.skip_ws();
        let start = self.pos;
        let rest = self.rest();
        let sym_len = rest
            .find(|c: char| !"<>=!~".contains(c))
            .unwrap_or(rest.len());
        if sym_len > 0 {
            let sym = &rest[..sym_len];
            let op = match sym {
                "=" | "==" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "~" | "=~" => Op::Regex,
                "!~" => Op::NotRegex,
                "~=" => Op::Contains,
                _ => {
                    return Err(self.err(
                        start,
                        start + sym_len,
                        format!(
                            "unknown operator `{sym}`; operators are = != < <= > >= ~ !~ ~= contains in"
                        ),
                    ))
                }
            };
            self.pos += sym_len;
            return Ok((op, start, self.pos));
        }
        if self.eat_keyword("contains") {
            return Ok((Op::Contains, start, self.pos));
        }
        if self.eat_keyword("in") {
            return Ok((Op::In, start, self.pos));
        }
        Ok((Op::Implied, start, start))
    }

    /// A value: a quoted string (`"..."` or `'...'`, `\` escapes the quote and
    /// itself) or a bare word (up to whitespace or a parenthesis).
    fn parse_value(&mut self, field: &str) -> Result<Value, ParseError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                let mut text = String::new();
                let mut chars = self.rest().char_indices().skip(1);
                while let Some((i, c)) = chars.next() {
                    if c == q {
                        self.pos = start + i + 1;
                        return Ok(Value {
                            text,
                            start,
                            end: self.pos,
                            quoted: true,
                        });
                    }
                    if c == '\\' {
                        match chars.next() {
                            Some((_, n)) if n == q || n == '\\' => text.push(n),
                            Some((_, n)) => {
                                // Keep other escapes for the regex engine (`\d`, `\.`).
                                text.push('\\');
                                text.push(n);
                            }
                            None => break,
                        }
                    } else {
                        text.push(c);
                    }
                }
                Err(self.err(
                    start,
                    self.src.len(),
                    format!("unterminated string: add the closing {q}"),
                ))
            }
            Some(c) if is_word_char(c) => {
                let rest = self.rest();
                let len = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
                self.pos += len;
                Ok(Value {
                    text: rest[..len].to_string(),
                    start,
                    end: self.pos,
                    quoted: false,
                })
            }
            _ => {
                let (tok, s, e) = self.token_here();
                Err(self.err(
                    s,
                    e,
                    format!("expected a value after `{field}`, found {tok}"),
                ))
            }
        }
    }

    fn parse_condition(
        &mut self,
        field: &'static str,
        fstart: usize,
        fend: usize,
    ) -> Result<Node, ParseError> {
        let (op, ostart, oend) = self.parse_op()?;
        let bad_op = |p: &Self, allowed: &str| {
            let (s, e) = if op == Op::Implied {
                (fstart, fend)
            } else {
                (ostart, oend)
            };
            let msg = if op == Op::Implied {
                format!("`{field}` needs an operator; use {allowed}")
            } else {
                format!(
                    "operator `{}` does not apply to `{field}`; use {allowed}",
                    op.as_str()
                )
            };
            p.err(s, e, msg)
        };
        match field {
            "port" => {
                let v = self.parse_value(field)?;
                let set = match op {
                    Op::Implied | Op::Eq | Op::In | Op::Ne => {
                        let mut set = self.port_list(&v)?;
                        if op == Op::Ne {
                            set.invert();
                        }
                        set
                    }
                    Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                        let p = self.port_number(&v.text, v.start, v.end)?;
                        let (lo, hi) = match op {
                            Op::Lt => (0, p.checked_sub(1)),
                            Op::Le => (0, Some(p)),
                            Op::Gt => (p + 1, Some(65535)),
                            _ => (p, Some(65535)),
                        };
                        let mut set = PortSet::empty();
                        if let Some(hi) = hi {
                            if lo <= hi {
                                set.insert_range(lo as u16, hi as u16);
                            }
                        }
                        set
                    }
                    _ => {
                        return Err(bad_op(
                            self,
                            "a list `port 22,80,1000-2000` or `<`, `<=`, `>`, `>=`, `!=`",
                        ))
                    }
                };
                Ok(Node::Port(Box::new(set)))
            }
            "proto" | "state" | "reason" => {
                let v = self.parse_value(field)?;
                let mask = match op {
                    Op::Implied | Op::Eq | Op::In | Op::Ne => self.name_list(field, &v)?,
                    _ => return Err(bad_op(self, "a list such as `proto tcp|udp` or `!=`")),
                };
                let node = match field {
                    "proto" => Node::Proto(mask as u8),
                    "state" => Node::State(mask as u8),
                    _ => Node::Reason(mask),
                };
                Ok(if op == Op::Ne {
                    Node::Not(Box::new(node))
                } else {
                    node
                })
            }
            "addr" => {
                let v = self.parse_value(field)?;
                match op {
                    Op::Implied | Op::Eq | Op::In | Op::Ne => {}
                    _ => {
                        return Err(bad_op(
                            self,
                            "`addr 10.0.0.0/8`, `addr 10.0.0.5,2001:db8::/32` or `!=`",
                        ))
                    }
                }
                let cidrs = self.cidr_list(&v)?;
                let node = Node::Addr(cidrs);
                Ok(if op == Op::Ne {
                    Node::Not(Box::new(node))
                } else {
                    node
                })
            }
            "service" | "product" | "version" | "extra" | "hostname" | "banner" => {
                let v = self.parse_value(field)?;
                let tf = match field {
                    "service" => TextField::Service,
                    "product" => TextField::Product,
                    "version" => TextField::Version,
                    "extra" => TextField::Extra,
                    "hostname" => TextField::Hostname,
                    _ => TextField::Banner,
                };
                let (m, negate) = match op {
                    Op::Implied | Op::Eq => (TextMatch::Equals(v.text.clone()), false),
                    Op::Ne => (TextMatch::Equals(v.text.clone()), true),
                    // Banners are bytes: a literal regex gets memchr-speed substring search.
                    Op::Contains if tf == TextField::Banner => (
                        self.regex(tf, &regex::escape(&v.text), v.start, v.end)?,
                        false,
                    ),
                    Op::Contains => (TextMatch::Contains(v.text.clone()), false),
                    Op::Regex | Op::NotRegex => {
                        (self.regex(tf, &v.text, v.start, v.end)?, op == Op::NotRegex)
                    }
                    _ => {
                        return Err(bad_op(
                            self,
                            "`~` (regex), `!~`, `~=` / `contains` (substring), `=` or `!=`",
                        ))
                    }
                };
                let node = Node::Text(tf, m);
                Ok(if negate {
                    Node::Not(Box::new(node))
                } else {
                    node
                })
            }
            "confidence" => {
                let v = self.parse_value(field)?;
                let cmp = op
                    .cmp()
                    .filter(|_| op != Op::Implied)
                    .ok_or_else(|| bad_op(self, "a comparison such as `confidence >= 0.8`"))?;
                let (num, pct) = match v.text.strip_suffix('%') {
                    Some(n) => (n, true),
                    None => (v.text.as_str(), false),
                };
                let mut x: f32 = num.parse().map_err(|_| {
                    self.err(
                        v.start,
                        v.end,
                        format!(
                            "expected a confidence between 0 and 1 (or 0% to 100%), found `{}`",
                            v.text
                        ),
                    )
                })?;
                if pct {
                    x /= 100.0;
                }
                if !(0.0..=1.0).contains(&x) {
                    return Err(self.err(
                        v.start,
                        v.end,
                        format!("confidence `{}` is outside 0..1 (write 0.8 or 80%)", v.text),
                    ));
                }
                Ok(Node::Confidence(cmp, x))
            }
            "rtt" => {
                let v = self.parse_value(field)?;
                let cmp = op
                    .cmp()
                    .filter(|_| op != Op::Implied)
                    .ok_or_else(|| bad_op(self, "a comparison such as `rtt < 5ms`"))?;
                let us = self.duration_us(&v)?;
                Ok(Node::Rtt(cmp, us))
            }
            "ttl" => {
                let v = self.parse_value(field)?;
                let cmp = op
                    .cmp()
                    .filter(|_| op != Op::Implied)
                    .ok_or_else(|| bad_op(self, "a comparison such as `ttl <= 64`"))?;
                let t: u8 = v.text.parse().map_err(|_| {
                    self.err(
                        v.start,
                        v.end,
                        format!("expected a TTL from 0 to 255, found `{}`", v.text),
                    )
                })?;
                Ok(Node::Ttl(cmp, t))
            }
            "has" => {
                if op != Op::Implied {
                    return Err(bad_op(self, "`has banner` (no operator)"));
                }
                let v = self.parse_value(field)?;
                let h = match v.text.to_ascii_lowercase().as_str() {
                    "banner" => HasField::Banner,
                    "service" => HasField::Service,
                    "product" => HasField::Product,
                    "version" => HasField::Version,
                    "hostname" => HasField::Hostname,
                    "rtt" => HasField::Rtt,
                    _ => {
                        return Err(self.err(
                            v.start,
                            v.end,
                            format!(
                                "`has` takes banner, service, product, version, hostname or rtt, found `{}`",
                                v.text
                            ),
                        ))
                    }
                };
                Ok(Node::Has(h))
            }
            _ => unreachable!("canonical_field returned an unhandled field"),
        }
    }

    fn port_number(&self, s: &str, start: usize, end: usize) -> Result<u32, ParseError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            let shown = if s.is_empty() { "nothing" } else { s };
            return Err(self.err(
                start,
                end,
                format!("expected a port number (0-65535), found `{shown}`"),
            ));
        }
        match s.parse::<u32>() {
            Ok(p) if p <= 65535 => Ok(p),
            _ => Err(self.err(start, end, format!("port {s} is above 65535"))),
        }
    }

    /// `22`, `22,80`, `1-1024`, `22,80,8000-8100`.
    fn port_list(&self, v: &Value) -> Result<PortSet, ParseError> {
        let mut set = PortSet::empty();
        let base = v.start + usize::from(v.quoted);
        let mut off = 0;
        for item in v.text.split(',') {
            let istart = base + off;
            let iend = istart + item.len();
            off += item.len() + 1;
            if item.is_empty() {
                return Err(self.err(
                    istart,
                    iend,
                    "empty item in port list (two commas in a row, or a trailing comma)",
                ));
            }
            match item.split_once('-') {
                None => {
                    let p = self.port_number(item, istart, iend)?;
                    set.insert_range(p as u16, p as u16);
                }
                Some((a, b)) => {
                    let bstart = istart + a.len() + 1;
                    let lo = if a.is_empty() {
                        0
                    } else {
                        self.port_number(a, istart, istart + a.len())?
                    };
                    let hi = if b.is_empty() {
                        65535
                    } else {
                        self.port_number(b, bstart, iend)?
                    };
                    if lo > hi {
                        return Err(self.err(
                            istart,
                            iend,
                            format!("port range `{item}` runs backwards; write `{hi}-{lo}`"),
                        ));
                    }
                    set.insert_range(lo as u16, hi as u16);
                }
            }
        }
        Ok(set)
    }

    /// Names separated by `,` or `|`; `open|filtered` is one state (nmap's name).
    fn name_list(&self, field: &str, v: &Value) -> Result<u16, ParseError> {
        let base = v.start + usize::from(v.quoted);
        let text = v.text.to_ascii_lowercase();
        let mut mask = 0u16;
        let mut i = 0;
        while i <= text.len() {
            let rest = &text[i..];
            // nmap's combined state name, taken whole before splitting on `|`.
            if field == "state" && rest.starts_with("open|filtered") {
                let after = rest.as_bytes().get("open|filtered".len());
                if matches!(after, None | Some(b',') | Some(b'|')) {
                    mask |= 1 << 3;
                    i += "open|filtered".len() + 1;
                    continue;
                }
            }
            let len = rest.find([',', '|']).unwrap_or(rest.len());
            let name = &rest[..len];
            let (s, e) = (base + i, base + i + len);
            let bit = match (field, name) {
                ("proto", "tcp") => 1 << 0,
                ("proto", "udp") => 1 << 1,
                ("state", "open") => 1 << 0,
                ("state", "closed") => 1 << 1,
                ("state", "filtered") => 1 << 2,
                ("state", "unfiltered") => 1 << 4,
                ("state", "open_filtered" | "openfiltered" | "open-filtered") => 1 << 3,
                ("reason", "syn-ack" | "synack") => REASON_SYN_ACK | REASON_CONNECTED,
                ("reason", "reset" | "rst") => REASON_RESET,
                ("reason", "host-unreach") => REASON_HOST_UNREACH,
                ("reason", "port-unreach") => REASON_PORT_UNREACH,
                ("reason", "udp-response") => REASON_UDP_RESPONSE,
                ("reason", "no-response") => REASON_NO_RESPONSE,
                ("reason", "connected") => REASON_CONNECTED,
                ("reason", "conn-refused") => REASON_CONN_REFUSED,
                _ => {
                    let known = match field {
                        "proto" => "tcp, udp",
                        "state" => "open, closed, filtered, open|filtered, unfiltered",
                        _ => "syn-ack, reset, host-unreach, port-unreach, udp-response, no-response, connected, conn-refused",
                    };
                    let shown = &v.text[i..i + len];
                    let msg = if shown.is_empty() {
                        format!("empty item in `{field}` list; values are {known}")
                    } else {
                        format!("unknown {field} `{shown}`; values are {known}")
                    };
                    return Err(self.err(s, e.max(s), msg));
                }
            };
            mask |= bit;
            i += len + 1;
        }
        Ok(mask)
    }

    /// `10.0.0.5`, `10.0.0.0/8`, `2001:db8::/32`, comma-separated.
    fn cidr_list(&self, v: &Value) -> Result<Vec<Cidr>, ParseError> {
        let base = v.start + usize::from(v.quoted);
        let mut out = Vec::new();
        let mut off = 0;
        for item in v.text.split(',') {
            let istart = base + off;
            let iend = istart + item.len();
            off += item.len() + 1;
            let (ip_s, len_s) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let ip: IpAddr = ip_s.parse().map_err(|_| {
                self.err(
                    istart,
                    istart + ip_s.len(),
                    format!(
                        "expected an IPv4 or IPv6 address or CIDR (10.0.0.0/8, 2001:db8::/32), found `{item}`"
                    ),
                )
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match len_s {
                None => max,
                Some(l) => {
                    let lstart = istart + ip_s.len() + 1;
                    match l.parse::<u32>() {
                        Ok(n) if n <= max => n,
                        _ => {
                            return Err(self.err(
                                lstart,
                                iend,
                                format!("prefix length `/{l}` must be 0-{max} for {ip}"),
                            ))
                        }
                    }
                }
            };
            out.push(Cidr::new(ip, prefix));
        }
        Ok(out)
    }

    fn regex(
        &self,
        field: TextField,
        pattern: &str,
        start: usize,
        end: usize,
    ) -> Result<TextMatch, ParseError> {
        let short = |e: &dyn std::fmt::Display| {
            let s = e.to_string();
            s.lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: ").map(str::to_string))
                .unwrap_or_else(|| s.lines().last().unwrap_or("").trim().to_string())
        };
        if field == TextField::Banner {
            regex::bytes::RegexBuilder::new(pattern)
                .unicode(false)
                .build()
                .map(|r| TextMatch::BytesRegex(Box::new(r)))
                .map_err(|e| {
                    self.err(
                        start,
                        end,
                        format!("invalid regular expression: {}", short(&e)),
                    )
                })
        } else {
            regex::Regex::new(pattern)
                .map(|r| TextMatch::Regex(Box::new(r)))
                .map_err(|e| {
                    self.err(
                        start,
                        end,
                        format!("invalid regular expression: {}", short(&e)),
                    )
                })
        }
    }

    /// `500us`, `5ms`, `0.5s`, `1.5ms` → microseconds.
    fn duration_us(&self, v: &Value) -> Result<f64, ParseError> {
        let t = v.text.as_str();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let mult = match unit {
            "us" | "µs" => 1.0,
            "ms" => 1_000.0,
            "s" => 1_000_000.0,
            "" => {
                return Err(self.err(
                    v.start,
                    v.end,
                    format!("`{t}` needs a unit: write `{t}ms`, `{t}us` or `{t}s`"),
                ))
            }
            _ => {
                let us = v.start + split;
                return Err(self.err(
                    us,
                    v.end,
                    format!("unknown time unit `{unit}`; use us, ms or s"),
                ));
            }
        };
        let n: f64 = num.parse().map_err(|_| {
            self.err(
                v.start,
                v.start + split,
                format!("expected a duration such as `5ms`, found `{t}`"),
            )
        })?;
        Ok(n * mult)
    }
}

fn canonical_field(name: &str) -> Option<&'static str> {
    Some(match name {
        "port" | "ports" => "port",
        "proto" | "protocol" => "proto",
        "state" => "state",
        "addr" | "ip" | "host" => "addr",
        "service" => "service",
        "product" => "product",
        "version" => "version",
        "extra" | "info" => "extra",
        "banner" => "banner",
        "confidence" | "conf" => "confidence",
        "rtt" => "rtt",
        "ttl" => "ttl",
        "reason" => "reason",
        "hostname" => "hostname",
        "has" => "has",
        _ => return None,
    })
}

/// The closest known field name, if it is a plausible typo.
fn suggest(name: &str) -> Option<&'static str> {
    fn dist(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    FIELDS
        .iter()
        .map(|f| (dist(name, f), *f))
        .filter(|(d, f)| *d <= 2 && *d < f.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f)
}
