//! The probe database model: probes, match rules, version templates and the
//! port-to-service table, plus matching a response against a probe's rules.
//!
//! It owns the in-memory form both file formats compile into (prtip's own
//! `services/data/probes.prtip` and nmap's `nmap-service-probes`). It never reads
//! files by itself except through [`ProbeDb::load_file`], and never touches sockets.

use crate::{nmap, prtip_format};
use regex::bytes::{Regex, RegexBuilder};
use std::path::Path;
use std::time::Duration;

/// The protocol a probe is sent over: the store's [`Protocol`] (one type for
/// "tcp or udp" from the service database to the log).
pub use prtip_store::event::Protocol;

/// How a probe's payload is made and its answer read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProbeKind {
    /// Send the payload bytes (none for the passive NULL probe); match the answer with regexes.
    Plain,
    /// Send a TLS 1.2 ClientHello built by [`crate::tls::client_hello`]; read the
    /// server's handshake flight and report the protocol version and certificate.
    TlsHello,
}

/// A set of ports as inclusive ranges.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct PortSet(pub Vec<(u16, u16)>);

impl PortSet {
    /// Parses `21,80,8000-8100` (whitespace allowed after commas).
    pub fn parse(s: &str) -> Result<PortSet, String> {
        let mut v = Vec::new();
        for tok in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (a, b) = match tok.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (tok, tok),
            };
            let a: u16 = a.parse().map_err(|_| format!("bad port {a:?} in {s:?}"))?;
            let b: u16 = b.parse().map_err(|_| format!("bad port {b:?} in {s:?}"))?;
            if a > b {
                return Err(format!("port range {tok:?} runs backwards"));
            }
            v.push((a, b));
        }
        Ok(PortSet(v))
    }
    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(a, b)| a <= port && port <= b)
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Adds the ranges of `other`.
    pub fn extend(&mut self, other: &PortSet) {
        self.0.extend_from_slice(&other.0);
    }
}

/// The version fields of a match rule, as templates (`$1`, `$P(2)`, `$SUBST(1,"_",".")`, `$I(1,">")`).
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct VersionTemplates {
    /// Product name (nmap `p/`).
    pub product: String,
    /// Version (nmap `v/`).
    pub version: String,
    /// Extra information (nmap `i/`).
    pub info: String,
    /// Host name (nmap `h/`).
    pub hostname: String,
    /// Operating system (nmap `o/`).
    pub os: String,
    /// Device type (nmap `d/`).
    pub device: String,
    /// CPE names (nmap `cpe:/.../`), any number.
    pub cpe: Vec<String>,
}

/// One `match` or `softmatch` rule.
#[derive(Clone, Debug)]
pub struct Match {
    /// Service name reported on a match (`ssh`, `http`, ...).
    pub service: String,
    /// A soft match names the service only; detection goes on looking for a hard match.
    pub soft: bool,
    /// The pattern, compiled for bytes (Unicode off).
    pub pattern: Pattern,
    /// Version templates filled from the capture groups.
    pub templates: VersionTemplates,
    /// Confidence to report, when the rule sets one.
    pub confidence: Option<f32>,
    /// Line in the source file (1-based), for messages.
    pub line: usize,
}

/// One probe: what to send, where it is worth sending, how long to wait, and its rules.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Unique name (`NULL`, `GetRequest`, ...).
    pub name: String,
    /// TCP or UDP.
    pub transport: Protocol,
    /// Plain bytes or a TLS ClientHello.
    pub kind: ProbeKind,
    /// Bytes to send; empty for the NULL probe (passive read).
    pub payload: Vec<u8>,
    /// Ports this probe is most likely to draw an answer from (tried first there).
    pub ports: PortSet,
    /// Ports where this probe is worth sending inside TLS (nmap `sslports`; kept for
    /// reference, prtip does not tunnel probes through TLS).
    pub tls_ports: PortSet,
    /// How long to wait for the answer.
    pub wait: Duration,
    /// 1 (common) ..= 9 (rare); probes above the intensity are skipped unless their
    /// `ports` include the target port.
    pub rarity: u8,
    /// Other probes whose rules also apply to this probe's answers.
    pub fallback: Vec<String>,
    /// The rules, tried in order.
    pub matches: Vec<Match>,
}

/// A port-table entry: the service conventionally found on some ports.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PortService {
    /// Service name (`https`).
    pub name: String,
    /// Protocol.
    pub transport: Protocol,
    /// Ports.
    pub ports: PortSet,
    /// The service speaks TLS from the first byte (probe with a ClientHello first).
    pub tls: bool,
}

/// A rule that a file held but that could not be used, and why.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Skipped {
    /// Line (1-based).
    pub line: usize,
    /// Why (e.g. a PCRE feature the regex engine does not have).
    pub why: String,
}

/// What a response told about a service.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Detection {
    /// Service name (`ssh`).
    pub service: String,
    /// Product (`OpenSSH`), empty when unknown.
    pub product: String,
    /// Version (`9.2p1`), empty when unknown.
    pub version: String,
    /// Extra information (`protocol 2.0`, certificate subject, ...).
    pub info: String,
    /// Host name the service announced.
    pub hostname: String,
    /// Operating system the service announced.
    pub os: String,
    /// Device type.
    pub device: String,
    /// CPE names.
    pub cpe: Vec<String>,
    /// 0.0 ..= 1.0 (see the crate documentation for the scale).
    pub confidence: f32,
    /// A soft match: the service is known, the product is not.
    pub soft: bool,
    /// Name of the probe whose answer matched (`NULL` for the passive read).
    pub probe: String,
    /// How it was found: `banner` (passive read), `probe` (answer to a probe) or `port-table`.
    pub method: &'static str,
}

impl Detection {
    /// nmap-style extra text: info, then `Host:`, `OS:`, `Device:` parts, joined by `; `.
    pub fn extra(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.info.is_empty() {
            parts.push(self.info.clone());
        }
        if !self.hostname.is_empty() {
            parts.push(format!("Host: {}", self.hostname));
        }
        if !self.os.is_empty() {
            parts.push(format!("OS: {}", self.os));
        }
        if !self.device.is_empty() {
            parts.push(format!("Device: {}", self.device));
        }
        parts.join("; ")
    }
}

/// Confidence of a hard match that extracted a version.
pub const CONF_HARD_VERSION: f32 = 1.0;
/// Confidence of a hard match without a version.
pub const CONF_HARD: f32 = 0.9;
/// Confidence of a TLS handshake (protocol certain, application from the port table).
pub const CONF_TLS: f32 = 0.8;
/// Confidence of a soft match.
pub const CONF_SOFT: f32 = 0.5;
/// Confidence of a guess from the port table (port open, nothing matched).
pub const CONF_PORT_TABLE: f32 = 0.3;

/// Errors loading a probe file.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file could not be read.
    #[error("cannot read service probe file {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// File name (or `<builtin>`).
        file: String,
        /// Line, 1-based.
        line: usize,
        /// What is wrong and what would be right.
        message: String,
    },
}

/// A probe database: probes in file order and the port table.
#[derive(Clone, Debug, Default)]
pub struct ProbeDb {
    /// Probes, in the order they were read.
    pub probes: Vec<Probe>,
    /// Port table.
    pub services: Vec<PortService>,
    /// Rules that were read but cannot be used.
    pub skipped: Vec<Skipped>,
}

/// prtip's own probe database, shipped in `services/data/probes.prtip`.
pub const BUILTIN_SOURCE: &str = include_str!("../data/probes.prtip");

impl ProbeDb {
    /// The database that ships with prtip.
    pub fn builtin() -> ProbeDb {
        prtip_format::parse(BUILTIN_SOURCE, "<builtin>")
            .expect("the shipped probe database parses (checked by its unit test)")
    }

    /// Parses prtip's own format (see services/README.md).
    pub fn from_prtip_str(text: &str, file: &str) -> Result<ProbeDb, DbError> {
        prtip_format::parse(text, file)
    }

    /// Parses nmap's `nmap-service-probes` format.
    pub fn from_nmap_str(text: &str, file: &str) -> Result<ProbeDb, DbError> {
        nmap::parse(text, file)
    }

    /// Reads a file in either format: nmap's when it has a `Probe ` line, prtip's otherwise.
    pub fn load_file(path: &Path) -> Result<ProbeDb, DbError> {
        let text = std::fs::read(path).map_err(|source| DbError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let text = String::from_utf8_lossy(&text);
        let name = path.display().to_string();
        if text.lines().any(|l| l.starts_with("Probe ")) {
            nmap::parse(&text, &name)
        } else {
            prtip_format::parse(&text, &name)
        }
    }

    /// Adds another database after this one: its rules for a probe of the same name and
    /// transport are appended to ours (tried after ours), new probes are appended, and its
    /// port table is appended.
    pub fn merge(&mut self, other: ProbeDb) {
        for p in other.probes {
            match self
                .probes
                .iter_mut()
                .find(|q| q.name == p.name && q.transport == p.transport)
            {
                Some(q) => {
                    q.matches.extend(p.matches);
                    q.ports.extend(&p.ports);
                    q.tls_ports.extend(&p.tls_ports);
                }
                None => self.probes.push(p),
            }
        }
        self.services.extend(other.services);
        self.skipped.extend(other.skipped);
    }

    /// The probe named `name` for `transport`.
    pub fn probe(&self, name: &str, transport: Protocol) -> Option<&Probe> {
        self.probes
            .iter()
            .find(|p| p.name == name && p.transport == transport)
    }

    /// The port-table entry for a port, if any.
    pub fn port_service(&self, port: u16, transport: Protocol) -> Option<&PortService> {
        self.services
            .iter()
            .find(|s| s.transport == transport && s.ports.contains(port))
    }

    /// The payload prtip sends to a UDP port: the first UDP probe (not NULL) whose
    /// `ports` include it. `None` means "send an empty datagram".
    pub fn udp_probe(&self, port: u16) -> Option<&Probe> {
        self.probes.iter().find(|p| {
            p.transport == Protocol::Udp && !p.payload.is_empty() && p.ports.contains(port)
        })
    }

    /// Matches a complete or partial answer to `probe` against its rules, then its
    /// fallbacks', then (TCP) the NULL probe's, as nmap does. Returns the first hard match,
    /// else the first soft match.
    pub fn match_response(&self, probe: &Probe, response: &[u8]) -> Option<Detection> {
        let mut soft: Option<Detection> = None;
        let mut lists: Vec<&Probe> = vec![probe];
        for f in &probe.fallback {
            if let Some(fp) = self.probe(f, probe.transport) {
                lists.push(fp);
            }
        }
        if probe.transport == Protocol::Tcp && probe.name != "NULL" {
            if let Some(null) = self.probe("NULL", Protocol::Tcp) {
                lists.push(null);
            }
        }
        let method = if probe.payload.is_empty() && probe.kind == ProbeKind::Plain {
            "banner"
        } else {
            "probe"
        };
        for list in lists {
            for m in &list.matches {
                if soft.is_some() && m.soft {
                    continue;
                }
                if let Some(caps) = m.pattern.captures(response) {
                    let d = m.detection(&caps, &probe.name, method);
                    if !m.soft {
                        return Some(d);
                    }
                    soft = Some(d);
                }
            }
        }
        soft
    }
}

impl Match {
    /// Fills the templates from the captures of this rule's pattern.
    pub fn detection(&self, caps: &Groups<'_>, probe: &str, method: &'static str) -> Detection {
        let t = &self.templates;
        let version = expand(&t.version, caps);
        let confidence = self.confidence.unwrap_or(if self.soft {
            CONF_SOFT
        } else if version.is_empty() {
            CONF_HARD
        } else {
            CONF_HARD_VERSION
        });
        Detection {
            service: self.service.clone(),
            product: expand(&t.product, caps),
            version,
            info: expand(&t.info, caps),
            hostname: expand(&t.hostname, caps),
            os: expand(&t.os, caps),
            device: expand(&t.device, caps),
            cpe: t.cpe.iter().map(|c| expand(c, caps)).collect(),
            confidence,
            soft: self.soft,
            probe: probe.to_string(),
            method,
        }
    }
}

/// A compiled rule pattern over bytes. Most of nmap's rules run on the `regex` crate
/// (linear time, no backtracking); the ones that need what only a backtracking
/// engine has (back-references such as `(\w+)\1`, look-around, atomic groups) run on
/// PCRE2, the engine nmap itself uses, so nmap's whole database loads.
#[derive(Clone, Debug)]
pub enum Pattern {
    /// The `regex` crate (Unicode off).
    Fast(Regex),
    /// PCRE2 in byte mode (no UTF), JIT-compiled when the platform has it.
    Pcre(pcre2::bytes::Regex),
}

/// The capture groups of one match, whichever engine found it.
pub enum Groups<'a> {
    /// From [`Pattern::Fast`].
    Fast(regex::bytes::Captures<'a>),
    /// From [`Pattern::Pcre`].
    Pcre(pcre2::bytes::Captures<'a>),
}

impl Groups<'_> {
    /// The bytes of group `n` (0 = the whole match); `None` when it did not take part.
    pub fn get(&self, n: usize) -> Option<&[u8]> {
        match self {
            Groups::Fast(c) => c.get(n).map(|m| m.as_bytes()),
            Groups::Pcre(c) => c.get(n).map(|m| m.as_bytes()),
        }
    }
}

impl Pattern {
    /// The first match's groups. A PCRE2 run that hits its backtracking limit counts
    /// as no match (as in nmap, which moves on to the next rule).
    pub fn captures<'a>(&self, hay: &'a [u8]) -> Option<Groups<'a>> {
        match self {
            Pattern::Fast(r) => r.captures(hay).map(Groups::Fast),
            Pattern::Pcre(r) => r.captures(hay).ok().flatten().map(Groups::Pcre),
        }
    }

    /// Whether the pattern matches anywhere in `hay`.
    pub fn is_match(&self, hay: &[u8]) -> bool {
        match self {
            Pattern::Fast(r) => r.is_match(hay),
            Pattern::Pcre(r) => r.is_match(hay).unwrap_or(false),
        }
    }

    /// Whether this rule needed PCRE2.
    pub fn is_pcre(&self) -> bool {
        matches!(self, Pattern::Pcre(_))
    }
}

/// Compiles a pattern for byte matching. `pcre` marks a pattern in nmap's PCRE
/// syntax: its idioms (`\0`, `\Z`, a literal `{`) are translated to the regex crate's
/// syntax, and a pattern the regex crate cannot run (back-references, look-around,
/// atomic groups, …) is compiled by PCRE2 as written. Without `pcre` (prtip's own
/// format) only the regex crate is used.
pub fn compile_pattern(
    pattern: &str,
    icase: bool,
    dotall: bool,
    pcre: bool,
) -> Result<Pattern, String> {
    if !pcre {
        return compile_fast(pattern, icase, dotall).map(Pattern::Fast);
    }
    let fast = translate_pcre(pattern).and_then(|p| compile_fast(&p, icase, dotall));
    match fast {
        Ok(r) => Ok(Pattern::Fast(r)),
        Err(why) => pcre2::bytes::RegexBuilder::new()
            .utf(false)
            .ucp(false)
            .caseless(icase)
            .dotall(dotall)
            .jit_if_available(true)
            .build(pattern)
            .map(Pattern::Pcre)
            .map_err(|e| format!("{why}; PCRE2 rejects it too: {e}")),
    }
}

fn compile_fast(pat: &str, icase: bool, dotall: bool) -> Result<Regex, String> {
    RegexBuilder::new(pat)
        .unicode(false)
        .case_insensitive(icase)
        .dot_matches_new_line(dotall)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| {
            let e = e.to_string();
            let last = e.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            format!("regex does not compile: {}", last.trim())
        })
}

fn translate_pcre(p: &str) -> Result<String, String> {
    if p.contains("(?=") || p.contains("(?!") || p.contains("(?<=") || p.contains("(?<!") {
        return Err("look-around assertions are not supported by prtip's regex engine".into());
    }
    if p.contains("(?>") {
        return Err("atomic groups are not supported by prtip's regex engine".into());
    }
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    let mut in_quant = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            let n = b[i + 1];
            match n {
                b'0' => {
                    // \0, \0N, \0NN: octal
                    let mut j = i + 2;
                    let mut v: u32 = 0;
                    while j < b.len() && j < i + 4 && (b'0'..=b'7').contains(&b[j]) {
                        v = v * 8 + (b[j] - b'0') as u32;
                        j += 1;
                    }
                    out.push_str(&format!("\\x{:02x}", v & 0xff));
                    i = j;
                    continue;
                }
                b'1'..=b'9' if !in_class => {
                    return Err("back-references are not supported by prtip's regex engine".into());
                }
                b'Z' => {
                    out.push_str("\\n?\\z");
                    i += 2;
                    continue;
                }
                _ => {
                    // copy the escape as is (handles \x, \d, \| ...); multi-byte chars too
                    out.push('\\');
                    let ch = p[i + 1..].chars().next().unwrap();
                    out.push(ch);
                    i += 1 + ch.len_utf8();
                    continue;
                }
            }
        }
        if in_class {
            if c == b']' {
                in_class = false;
            }
            if c == b'[' && !p[i..].starts_with("[:") {
                out.push_str("\\[");
                i += 1;
                continue;
            }
        } else if c == b'[' {
            in_class = true;
            out.push('[');
            i += 1;
            // a ']' or '^]' right after '[' is literal
            if b.get(i) == Some(&b'^') {
                out.push('^');
                i += 1;
            }
            if b.get(i) == Some(&b']') {
                out.push_str("\\]");
                i += 1;
            }
            continue;
        } else if c == b'{' {
            if is_quantifier(&p[i..]) {
                in_quant = true;
            } else {
                out.push_str("\\{");
                i += 1;
                continue;
            }
        } else if c == b'}' {
            if in_quant {
                in_quant = false;
            } else {
                out.push_str("\\}");
                i += 1;
                continue;
            }
        }
        let ch = p[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    Ok(out)
}

fn is_quantifier(s: &str) -> bool {
    let Some(end) = s.find('}') else { return false };
    let inner = &s[1..end];
    let (a, b) = inner.split_once(',').unwrap_or((inner, "0"));
    !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
}

/// Expands a version template with the captures: `$1`..`$9` (the group, bytes as Latin-1),
/// `$P(n)` (group n with non-printable bytes dropped), `$SUBST(n,"from","to")` (group n
/// with every `from` replaced by `to`), `$I(n,">")` / `$I(n,"<")` (group n read as a
/// big- / little-endian unsigned integer).
pub fn expand(template: &str, caps: &Groups<'_>) -> String {
    if !template.contains('$') {
        return template.to_string();
    }
    let group = |n: usize| caps.get(n).unwrap_or(&[]);
    let latin1 = |b: &[u8]| b.iter().map(|&c| c as char).collect::<String>();
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos + 1..];
        let first = tail.bytes().next();
        if let Some(d @ b'1'..=b'9') = first {
            out.push_str(&latin1(group((d - b'0') as usize)));
            rest = &tail[1..];
        } else if let Some((name, args, after)) = function_call(tail) {
            let n: usize = args
                .first()
                .and_then(|a| a.trim().parse().ok())
                .unwrap_or(0);
            let g = group(n);
            match name {
                "P" => out.extend(
                    g.iter()
                        .filter(|c| (0x20..0x7f).contains(*c))
                        .map(|&c| c as char),
                ),
                "SUBST" if args.len() == 3 => {
                    let from = unquote(&args[1]);
                    let to = unquote(&args[2]);
                    let s = latin1(g);
                    if from.is_empty() {
                        out.push_str(&s);
                    } else {
                        out.push_str(&s.replace(&from, &to));
                    }
                }
                "I" if args.len() == 2 && g.len() <= 8 => {
                    let little = unquote(&args[1]) == "<";
                    let mut v: u64 = 0;
                    if little {
                        for &c in g.iter().rev() {
                            v = (v << 8) | c as u64;
                        }
                    } else {
                        for &c in g {
                            v = (v << 8) | c as u64;
                        }
                    }
                    out.push_str(&v.to_string());
                }
                _ => {}
            }
            rest = after;
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// Parses `NAME(args...)` at the start of `s`; returns (name, args, rest after ')').
fn function_call(s: &str) -> Option<(&str, Vec<String>, &str)> {
    let open = s.find('(')?;
    let name = &s[..open];
    if !matches!(name, "P" | "SUBST" | "I") {
        return None;
    }
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    for (i, ch) in s[open + 1..].char_indices() {
        match ch {
            '"' => {
                in_q = !in_q;
                cur.push(ch);
            }
            ',' if !in_q => args.push(std::mem::take(&mut cur)),
            ')' if !in_q => {
                args.push(cur);
                return Some((name, args, &s[open + 1 + i + 1..]));
            }
            _ => cur.push(ch),
        }
    }
    None
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps<'a>(re: &'a Pattern, s: &'a [u8]) -> Groups<'a> {
        re.captures(s).unwrap()
    }

    #[test]
    fn templates_expand_groups_and_functions() {
        let re = compile_pattern(r"^(\w+)-(\S+) (....)(..)", false, false, false).unwrap();
        let s = b"Open_SSH-9_2_p1 \x00\x00\x01\x00\x05\x00";
        let c = caps(&re, s);
        assert_eq!(expand("$1 v$2", &c), "Open_SSH v9_2_p1");
        assert_eq!(expand(r#"$SUBST(2,"_",".")"#, &c), "9.2.p1");
        assert_eq!(expand(r#"$I(3,">")"#, &c), "256");
        assert_eq!(expand(r#"$I(4,"<")"#, &c), "5");
        assert_eq!(expand("$P(3)x", &c), "x");
        assert_eq!(expand("cost $5", &c), "cost");
        assert_eq!(expand("a $ b", &c), "a $ b");
    }

    #[test]
    fn pcre_idioms_translate() {
        let re = compile_pattern(r"^\0\x01{2}a{b}[]x]\Z", false, false, true).unwrap();
        assert!(re.is_match(b"\0\x01\x01a{b}]\n"));
        assert!(re.is_match(b"\0\x01\x01a{b}x"));
        assert!(!re.is_match(b"\0\x01\x01a{b}xy"));
        assert!(!re.is_pcre());
        // What the regex crate lacks runs on PCRE2, with nmap's meaning.
        let ahead = compile_pattern(r"a(?=b)", false, false, true).unwrap();
        assert!(ahead.is_pcre() && ahead.is_match(b"ab") && !ahead.is_match(b"ac"));
        let backref = compile_pattern(r"^(\w+)=\1$", true, false, true).unwrap();
        assert!(backref.is_pcre());
        assert!(backref.is_match(b"abc=ABC") && !backref.is_match(b"abc=abd"));
        assert_eq!(expand("v$1", &caps(&backref, b"x9=x9")), "vx9");
        // Raw bytes above 0x7f in PCRE2 byte mode.
        let raw = compile_pattern(r"^\xff(\xfb)\1", false, false, true).unwrap();
        assert!(raw.is_match(b"\xff\xfb\xfb") && !raw.is_match(b"\xff\xfb\xfc"));
        // prtip's own format stays on the regex crate, and says why it cannot compile.
        assert!(compile_pattern(r"(a)\1", false, false, false)
            .unwrap_err()
            .contains("backreferences are not supported"));
        assert!(compile_pattern(r"a(", false, false, true)
            .unwrap_err()
            .contains("PCRE2 rejects it too"));
        // bytes above 0x7f match raw bytes, case-insensitivity is ASCII
        let re = compile_pattern(r"^\xff\xfb.ssh", true, true, true).unwrap();
        assert!(re.is_match(b"\xff\xfb\nSSH"));
    }

    #[test]
    fn port_sets() {
        let p = PortSet::parse("21, 80,8000-8100").unwrap();
        assert!(p.contains(21) && p.contains(8050) && !p.contains(22));
        assert!(PortSet::parse("90-80").unwrap_err().contains("backwards"));
        assert!(PortSet::parse("http").unwrap_err().contains("\"http\""));
    }
}
