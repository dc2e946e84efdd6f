//! Parser for prtip's own probe-database format (`services/data/probes.prtip`).
//!
//! The format is line-based and specified in services/README.md: `probe`, `match`,
//! `soft` and `service` lines made of words, `key=value` pairs, "quoted strings" with
//! C escapes and r"raw strings" (Rust-style, also r#"..."#) for regexes. This module
//! owns the tokenizer and the mapping to [`ProbeDb`]; it never reads files.

use crate::db::{
    compile_pattern, DbError, Match, PortService, PortSet, Probe, ProbeDb, ProbeKind, Protocol,
    VersionTemplates,
};
use crate::escape::unescape;
use std::time::Duration;

/// Wait for a probe that sets none.
pub const DEFAULT_WAIT: Duration = Duration::from_millis(3000);
/// Rarity of a probe that sets none.
pub const DEFAULT_RARITY: u8 = 5;

#[derive(Debug, PartialEq)]
enum Val {
    Bare(String),
    Quoted(String),
    Raw(String),
}

#[derive(Debug, PartialEq)]
struct Tok {
    key: Option<String>,
    val: Val,
}

fn tokenize(line: &str) -> Result<Vec<Tok>, String> {
    let b = line.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if b[i] == b'#' {
            break;
        }
        // key=
        let mut key = None;
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' && i > start {
            key = Some(line[start..i].to_string());
            i += 1;
        } else {
            i = start;
        }
        let val = if b.get(i) == Some(&b'"') {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            if j >= b.len() {
                return Err(format!("string starting at column {} is not closed", i + 1));
            }
            let v = Val::Quoted(line[i + 1..j].to_string());
            i = j + 1;
            v
        } else if b.get(i) == Some(&b'r') && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) {
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            let open = i + 1 + hashes;
            if b.get(open) != Some(&b'"') {
                return Err(format!("raw string at column {} needs a quote", i + 1));
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let end = line[open + 1..].find(&close).ok_or_else(|| {
                format!("raw string at column {} is not closed by {close}", i + 1)
            })?;
            let v = Val::Raw(line[open + 1..open + 1 + end].to_string());
            i = open + 1 + end + close.len();
            v
        } else {
            let s = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            Val::Bare(line[s..i].to_string())
        };
        if i < b.len() && !b[i].is_ascii_whitespace() {
            return Err(format!("expected a space at column {}", i + 1));
        }
        toks.push(Tok { key, val });
    }
    Ok(toks)
}

fn text(v: &Val) -> Result<String, String> {
    match v {
        Val::Bare(s) | Val::Raw(s) => Ok(s.clone()),
        Val::Quoted(s) => Ok(String::from_utf8_lossy(&unescape(s)?).into_owned()),
    }
}

fn transport(v: Option<&Tok>) -> Result<Protocol, String> {
    match v.map(|t| &t.val) {
        Some(Val::Bare(s)) if s == "tcp" => Ok(Protocol::Tcp),
        Some(Val::Bare(s)) if s == "udp" => Ok(Protocol::Udp),
        Some(v) => Err(format!(
            "expected tcp or udp, found {:?}",
            text(v).unwrap_or_default()
        )),
        None => Err("expected tcp or udp, found the end of the line".into()),
    }
}

/// Parses a whole file.
pub fn parse(src: &str, file: &str) -> Result<ProbeDb, DbError> {
    let mut db = ProbeDb::default();
    for (idx, raw) in src.lines().enumerate() {
        let line = idx + 1;
        let err = |message: String| DbError::Syntax {
            file: file.to_string(),
            line,
            message,
        };
        let toks = tokenize(raw).map_err(err)?;
        let Some(first) = toks.first() else { continue };
        let word = match (&first.key, &first.val) {
            (None, Val::Bare(w)) => w.as_str(),
            _ => {
                return Err(err(
                    "a line starts with probe, match, soft or service".into()
                ))
            }
        };
        match word {
            "probe" => db.probes.push(parse_probe(&toks).map_err(err)?),
            "match" | "soft" => {
                let m = parse_match(&toks, word == "soft", line).map_err(err)?;
                db.probes
                    .last_mut()
                    .ok_or_else(|| err(format!("{word} before any probe line")))?
                    .matches
                    .push(m);
            }
            "service" => db.services.push(parse_service(&toks).map_err(err)?),
            other => {
                return Err(err(format!(
                    "unknown directive {other:?} (expected probe, match, soft or service)"
                )))
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in &db.probes {
        if !seen.insert((p.name.clone(), p.transport)) {
            return Err(DbError::Syntax {
                file: file.to_string(),
                line: 0,
                message: format!("probe {} {} is defined twice", p.name, p.transport.as_str()),
            });
        }
    }
    Ok(db)
}

fn parse_probe(toks: &[Tok]) -> Result<Probe, String> {
    let name = match toks.get(1) {
        Some(Tok {
            key: None,
            val: Val::Bare(n),
        }) => n.clone(),
        _ => return Err("probe needs a name: probe NAME tcp|udp ...".into()),
    };
    let transport = transport(toks.get(2)).map_err(|e| format!("probe {name}: {e}"))?;
    let mut p = Probe {
        name: name.clone(),
        transport,
        kind: ProbeKind::Plain,
        payload: Vec::new(),
        ports: PortSet::default(),
        tls_ports: PortSet::default(),
        wait: DEFAULT_WAIT,
        rarity: DEFAULT_RARITY,
        fallback: Vec::new(),
        matches: Vec::new(),
    };
    for t in &toks[3..] {
        let key = t.key.as_deref();
        let v = text(&t.val).map_err(|e| format!("probe {name}: {e}"))?;
        match key {
            None if v == "tls" => p.kind = ProbeKind::TlsHello,
            Some("send") => {
                p.payload = match &t.val {
                    Val::Quoted(s) => unescape(s).map_err(|e| format!("probe {name}: {e}"))?,
                    _ => v.into_bytes(),
                }
            }
            Some("ports") => p.ports = PortSet::parse(&v)?,
            Some("wait") => {
                p.wait = Duration::from_millis(
                    v.parse()
                        .map_err(|_| format!("probe {name}: wait={v:?} is not milliseconds"))?,
                )
            }
            Some("rarity") => {
                p.rarity = v
                    .parse::<u8>()
                    .ok()
                    .filter(|r| (1..=9).contains(r))
                    .ok_or_else(|| format!("probe {name}: rarity={v:?} is not 1..9"))?
            }
            Some("fallback") => p.fallback = v.split(',').map(|s| s.trim().to_string()).collect(),
            _ => {
                return Err(format!(
                    "probe {name}: unknown field {:?} (expected send=, ports=, wait=, rarity=, fallback= or tls)",
                    key.unwrap_or(&v)
                ))
            }
        }
    }
    Ok(p)
}

fn parse_match(toks: &[Tok], soft: bool, line: usize) -> Result<Match, String> {
    let service = match toks.get(1) {
        Some(Tok {
            key: None,
            val: Val::Bare(s),
        }) => s.clone(),
        _ => return Err("match needs a service name: match SERVICE r\"REGEX\" ...".into()),
    };
    let pattern = match toks.get(2) {
        Some(Tok {
            key: None,
            val: Val::Raw(r),
        }) => r.clone(),
        _ => {
            return Err(format!(
                "match {service}: the pattern must be a raw string r\"...\""
            ))
        }
    };
    let pattern = compile_pattern(&pattern, false, false, false)
        .map_err(|e| format!("match {service}: {e}"))?;
    let mut t = VersionTemplates::default();
    let mut confidence = None;
    for tok in &toks[3..] {
        let v = text(&tok.val)?;
        match tok.key.as_deref() {
            Some("product") => t.product = v,
            Some("version") => t.version = v,
            Some("info") => t.info = v,
            Some("hostname") => t.hostname = v,
            Some("os") => t.os = v,
            Some("device") => t.device = v,
            Some("cpe") => t.cpe.push(v),
            Some("confidence") => {
                confidence = Some(
                    v.parse::<f32>()
                        .ok()
                        .filter(|c| (0.0..=1.0).contains(c))
                        .ok_or_else(|| format!("match {service}: confidence={v:?} is not 0..1"))?,
                )
            }
            other => {
                return Err(format!(
                    "match {service}: unknown field {:?} (expected product=, version=, info=, hostname=, os=, device=, cpe= or confidence=)",
                    other.unwrap_or(&v)
                ))
            }
        }
    }
    Ok(Match {
        service,
        soft,
        pattern,
        templates: t,
        confidence,
        line,
    })
}

fn parse_service(toks: &[Tok]) -> Result<PortService, String> {
    let name = match toks.get(1) {
        Some(Tok {
            key: None,
            val: Val::Bare(n),
        }) => n.clone(),
        _ => return Err("service needs a name: service NAME tcp|udp PORTS [tls]".into()),
    };
    let transport = transport(toks.get(2)).map_err(|e| format!("service {name}: {e}"))?;
    let ports = match toks.get(3) {
        Some(Tok {
            key: None,
            val: Val::Bare(p),
        }) => PortSet::parse(p)?,
        _ => return Err(format!("service {name}: needs a port list")),
    };
    let tls = match toks.get(4) {
        None => false,
        Some(Tok {
            key: None,
            val: Val::Bare(w),
        }) if w == "tls" && toks.len() == 5 => true,
        _ => {
            return Err(format!(
                "service {name}: only the word tls may follow the ports"
            ))
        }
    };
    Ok(PortService {
        name,
        transport,
        ports,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_handles_strings() {
        let t = tokenize(r##"match x r"a\d" product="n\"x" v=1 r#"q"r"# # c"##).unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t[2].val, Val::Raw(r"a\d".into()));
        assert_eq!(t[3].key.as_deref(), Some("product"));
        assert_eq!(text(&t[3].val).unwrap(), "n\"x");
        assert_eq!(t[4].key.as_deref(), Some("v"));
        assert_eq!(t[4].val, Val::Bare("1".into()));
        assert_eq!(t[5].val, Val::Raw("q\"r".into()));
        assert!(tokenize(r#"a r"x"y"#)
            .unwrap_err()
            .contains("expected a space"));
    }

    #[test]
    fn parses_a_small_file() {
        let src = r#"
# comment
probe NULL tcp wait=1500
match ssh r"^SSH-([\d.]+)-OpenSSH_(\S+)" product="OpenSSH" version="$2" info="protocol $1" cpe="cpe:/a:openbsd:openssh:$2"
probe Redis tcp send="*1\r\n$4\r\nINFO\r\n" ports=6379 rarity=3
soft redis r"^\$\d+\r\n# Server" confidence=0.6
probe Hello tcp tls ports=443
service https tcp 443,8443 tls
service domain udp 53
"#;
        let db = parse(src, "t").unwrap();
        assert_eq!(db.probes.len(), 3);
        assert_eq!(db.probes[0].wait, Duration::from_millis(1500));
        assert_eq!(db.probes[1].payload, b"*1\r\n$4\r\nINFO\r\n");
        assert_eq!(db.probes[1].matches[0].confidence, Some(0.6));
        assert!(db.probes[1].matches[0].soft);
        assert_eq!(db.probes[2].kind, ProbeKind::TlsHello);
        assert!(db.services[0].tls && db.services[0].ports.contains(8443));
        assert_eq!(db.services[1].transport, Protocol::Udp);
        let d = db
            .match_response(&db.probes[0], b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
            .unwrap();
        assert_eq!(d.version, "9.2p1");
        assert_eq!(d.cpe, vec!["cpe:/a:openbsd:openssh:9.2p1"]);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s: &str| parse(s, "f").unwrap_err().to_string();
        assert_eq!(
            e("probe X sctp"),
            "f:1: probe X: expected tcp or udp, found \"sctp\""
        );
        assert!(e("match x r\"a\"").contains("f:1: match before any probe"));
        assert!(e("probe X tcp\nmatch x \"a\"")
            .contains("f:2: match x: the pattern must be a raw string"));
        assert!(e("probe X tcp\nmatch x r\"(\"").contains("f:2: match x: regex does not compile"));
        assert!(e("probe X tcp bogus=1").contains("unknown field \"bogus\""));
        assert!(e("probe X tcp\nprobe X tcp").contains("defined twice"));
        assert!(e("probe X tcp send=\"abc").contains("not closed"));
        assert!(e("service x tcp 1-0").contains("backwards"));
        assert!(e("frob").contains("unknown directive \"frob\""));
    }
}
