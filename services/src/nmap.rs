//! Parser for nmap's `nmap-service-probes` format (`--service-probes FILE`).
//!
//! It owns the translation of nmap's directives (`Probe`, `match`, `softmatch`, `ports`,
//! `sslports`, `totalwaitms`, `rarity`, `fallback`) into [`ProbeDb`]. prtip never ships
//! nmap's file; users who have one can load it. Rules whose PCRE pattern uses features
//! the regex crate lacks (look-around, back-references) run on PCRE2 (see
//! [`crate::Pattern`]); a pattern neither engine compiles is listed in
//! [`ProbeDb::skipped`]; a malformed directive is an error naming the line.

use crate::db::{
    compile_pattern, DbError, Match, Probe, ProbeDb, ProbeKind, Protocol, Skipped, VersionTemplates,
};
use crate::escape::unescape;
use std::time::Duration;

/// nmap's default wait when a probe has no `totalwaitms`.
const DEFAULT_WAIT: Duration = Duration::from_millis(5000);

/// Parses the text of an nmap-service-probes file.
pub fn parse(text: &str, file: &str) -> Result<ProbeDb, DbError> {
    let mut db = ProbeDb::default();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let l = raw.trim_end_matches('\r').trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let err = |message: String| DbError::Syntax {
            file: file.to_string(),
            line,
            message,
        };
        let (word, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let rest = rest.trim_start();
        match word {
            "Exclude" => {}
            "Probe" => db.probes.push(parse_probe(rest).map_err(err)?),
            "match" | "softmatch" => {
                let soft = word == "softmatch";
                let probe = db
                    .probes
                    .last_mut()
                    .ok_or_else(|| err(format!("{word} before any Probe line")))?;
                match parse_match(rest, soft, line) {
                    Ok(m) => probe.matches.push(m),
                    Err(MatchError::Syntax(m)) => return Err(err(m)),
                    Err(MatchError::Unsupported(why)) => db.skipped.push(Skipped { line, why }),
                }
            }
            "ports" | "sslports" | "totalwaitms" | "tcpwrappedms" | "rarity" | "fallback" => {
                let probe = db
                    .probes
                    .last_mut()
                    .ok_or_else(|| err(format!("{word} before any Probe line")))?;
                match word {
                    "ports" => probe
                        .ports
                        .extend(&crate::db::PortSet::parse(rest).map_err(err)?),
                    "sslports" => probe
                        .tls_ports
                        .extend(&crate::db::PortSet::parse(rest).map_err(err)?),
                    "totalwaitms" => {
                        let ms: u64 = rest
                            .parse()
                            .map_err(|_| err(format!("totalwaitms {rest:?} is not a number")))?;
                        probe.wait = Duration::from_millis(ms);
                    }
                    "tcpwrappedms" => {}
                    "rarity" => {
                        probe.rarity = rest
                            .parse::<u8>()
                            .ok()
                            .filter(|r| (1..=9).contains(r))
                            .ok_or_else(|| err(format!("rarity {rest:?} is not 1..9")))?;
                    }
                    _ => probe.fallback.extend(
                        rest.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty()),
                    ),
                }
            }
            other => {
                return Err(err(format!(
                    "unknown directive {other:?} (expected Probe, match, softmatch, ports, sslports, totalwaitms, tcpwrappedms, rarity, fallback or Exclude)"
                )))
            }
        }
    }
    Ok(db)
}

/// `TCP NAME q|payload| [no-payload]`
fn parse_probe(rest: &str) -> Result<Probe, String> {
    let mut it = rest.splitn(3, char::is_whitespace);
    let proto = it.next().unwrap_or("");
    let transport = match proto {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        _ => return Err(format!("Probe protocol {proto:?} must be TCP or UDP")),
    };
    let name = it
        .next()
        .filter(|n| !n.is_empty())
        .ok_or("Probe needs a name")?
        .to_string();
    let q = it.next().unwrap_or("").trim_start();
    let body = q
        .strip_prefix('q')
        .ok_or_else(|| format!("Probe {name}: payload must be q|...|, found {q:?}"))?;
    let delim = body
        .chars()
        .next()
        .ok_or_else(|| format!("Probe {name}: q needs a delimiter"))?;
    let inner = &body[delim.len_utf8()..];
    let end = inner
        .find(delim)
        .ok_or_else(|| format!("Probe {name}: payload is not closed by {delim:?}"))?;
    let payload = unescape(&inner[..end]).map_err(|e| format!("Probe {name}: {e}"))?;
    Ok(Probe {
        name,
        transport,
        kind: ProbeKind::Plain,
        payload,
        ports: Default::default(),
        tls_ports: Default::default(),
        wait: DEFAULT_WAIT,
        rarity: 5,
        fallback: Vec::new(),
        matches: Vec::new(),
    })
}

enum MatchError {
    Syntax(String),
    Unsupported(String),
}

/// `SERVICE m|regex|flags p/../ v/../ i/../ h/../ o/../ d/../ cpe:/../a`
fn parse_match(rest: &str, soft: bool, line: usize) -> Result<Match, MatchError> {
    let syn = |m: String| MatchError::Syntax(m);
    let (service, after) = rest
        .split_once(char::is_whitespace)
        .ok_or_else(|| syn("match needs a service name and a pattern".into()))?;
    let after = after.trim_start();
    let body = after
        .strip_prefix('m')
        .ok_or_else(|| syn(format!("pattern must start with m, found {after:?}")))?;
    let delim = body
        .chars()
        .next()
        .ok_or_else(|| syn("m needs a delimiter".into()))?;
    let inner = &body[delim.len_utf8()..];
    let end = inner
        .find(delim)
        .ok_or_else(|| syn(format!("pattern is not closed by {delim:?}")))?;
    let pattern = &inner[..end];
    let mut tail = &inner[end + delim.len_utf8()..];
    let flags_len = tail
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(tail.len());
    let flags = &tail[..flags_len];
    tail = &tail[flags_len..];
    let regex = compile_pattern(pattern, flags.contains('i'), flags.contains('s'), true)
        .map_err(MatchError::Unsupported)?;
    let mut t = VersionTemplates::default();
    loop {
        tail = tail.trim_start();
        if tail.is_empty() {
            break;
        }
        let (key, body) = if let Some(b) = tail.strip_prefix("cpe:") {
            ("cpe", b)
        } else {
            let k = tail.chars().next().unwrap();
            (&tail[..k.len_utf8()], &tail[k.len_utf8()..])
        };
        let d = body
            .chars()
            .next()
            .ok_or_else(|| syn(format!("field {key} has no delimiter")))?;
        let inner = &body[d.len_utf8()..];
        let end = inner
            .find(d)
            .ok_or_else(|| syn(format!("field {key} is not closed by {d:?}")))?;
        let value = inner[..end].to_string();
        tail = &inner[end + d.len_utf8()..];
        match key {
            "p" => t.product = value,
            "v" => t.version = value,
            "i" => t.info = value,
            "h" => t.hostname = value,
            "o" => t.os = value,
            "d" => t.device = value,
            "cpe" => {
                t.cpe.push(format!("cpe:/{value}"));
                tail = tail.strip_prefix('a').unwrap_or(tail);
            }
            other => return Err(syn(format!("unknown version field {other:?}"))),
        }
    }
    Ok(Match {
        service: service.to_string(),
        soft,
        pattern: regex,
        templates: t,
        confidence: None,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# a handcrafted file in nmap's syntax
Exclude T:9100-9107

Probe TCP NULL q||
totalwaitms 6000
tcpwrappedms 3000
match ssh m|^SSH-([\d.]+)-OpenSSH_([\w._-]+)[ -]{1,2}Debian[ -_]([^\r\n]+)\r?\n| p/OpenSSH/ v/$2 Debian $3/ i/protocol $1/ o/Linux/ cpe:/a:openbsd:openssh:$2/ cpe:/o:debian:debian_linux/a
match ftp m=^220 (?:[-\w.]+ )?ProFTPD ([\d.]+)= p/ProFTPD/ v/$1/
softmatch ftp m|^220[- ]|i
match weird m|^(a)\1|
match lookahead m|^x(?=y)|

Probe TCP GetRequest q|GET / HTTP/1.0\r\n\r\n|
rarity 1
ports 80,8080-8090
sslports 443
fallback NULL
match http m|^HTTP/1\.[01] \d\d\d .*\r\nServer: nginx/([\d.]+)\r\n|s p/nginx/ v/$1/ cpe:/a:igor_sysoev:nginx:$1/

Probe UDP DNSVersionBindReq q|\0\x06\x01\0\0\x01\0\0\0\0\0\0\x07version\x04bind\0\0\x10\0\x03|
ports 53
match domain m|^\0\x06\x81\x80| p/ISC BIND/
"#;

    #[test]
    fn parses_probes_matches_and_fields() {
        let db = parse(SAMPLE, "sample").unwrap();
        assert_eq!(db.probes.len(), 3);
        let null = &db.probes[0];
        assert_eq!(null.name, "NULL");
        assert!(null.payload.is_empty());
        assert_eq!(null.wait, Duration::from_millis(6000));
        assert_eq!(null.matches.len(), 5);
        assert!(db.skipped.is_empty(), "{:?}", db.skipped);
        // The back-reference and look-ahead rules run on PCRE2, the others on regex.
        let pcre: Vec<&str> = null
            .matches
            .iter()
            .filter(|m| m.pattern.is_pcre())
            .map(|m| m.service.as_str())
            .collect();
        assert_eq!(pcre, ["weird", "lookahead"]);
        assert_eq!(
            db.match_response(null, b"aa-").unwrap().service,
            "weird",
            "(a)\\1 matches a repeated a"
        );
        assert!(db.match_response(null, b"ab").is_none());
        assert_eq!(db.match_response(null, b"xy").unwrap().service, "lookahead");
        assert!(db.match_response(null, b"xz").is_none());
        let get = &db.probes[1];
        assert_eq!(get.payload, b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(get.rarity, 1);
        assert!(get.ports.contains(8085) && get.tls_ports.contains(443));
        assert_eq!(get.fallback, vec!["NULL".to_string()]);
        let dns = &db.probes[2];
        assert_eq!(dns.transport, Protocol::Udp);
        assert_eq!(&dns.payload[..3], b"\0\x06\x01");
    }

    #[test]
    fn matches_fill_templates() {
        let db = parse(SAMPLE, "sample").unwrap();
        let null = db.probe("NULL", Protocol::Tcp).unwrap();
        let d = db
            .match_response(null, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            .unwrap();
        assert_eq!(
            (d.service.as_str(), d.product.as_str(), d.version.as_str()),
            ("ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3")
        );
        assert_eq!(d.info, "protocol 2.0");
        assert_eq!(d.os, "Linux");
        assert_eq!(
            d.cpe,
            vec!["cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:debian:debian_linux"]
        );
        assert_eq!(d.confidence, 1.0);
        assert_eq!(d.method, "banner");
        // soft match with the i flag
        let d = db.match_response(null, b"220 hello FTP\r\n").unwrap();
        assert!(d.soft);
        assert_eq!(d.service, "ftp");
        let d = db
            .match_response(null, b"220 ftp.lab ProFTPD 1.3.8 Server\r\n")
            .unwrap();
        assert_eq!(
            (d.product.as_str(), d.version.as_str()),
            ("ProFTPD", "1.3.8")
        );
        // the s flag lets . cross lines; GetRequest falls back to NULL's rules
        let get = db.probe("GetRequest", Protocol::Tcp).unwrap();
        let d = db
            .match_response(
                get,
                b"HTTP/1.1 200 OK\r\nDate: x\r\nServer: nginx/1.22.1\r\n\r\n",
            )
            .unwrap();
        assert_eq!((d.service.as_str(), d.version.as_str()), ("http", "1.22.1"));
        assert_eq!(d.method, "probe");
        let d = db
            .match_response(get, b"SSH-2.0-OpenSSH_8.0 Debian-1\n")
            .unwrap();
        assert_eq!(d.service, "ssh");
        assert!(db.match_response(get, b"garbage").is_none());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("Probe TCP X q|a|\nmatch x m|a", "f").unwrap_err();
        assert_eq!(e.to_string(), "f:2: pattern is not closed by '|'");
        let e = parse("match x m|a|", "f").unwrap_err();
        assert!(e.to_string().starts_with("f:1: match before any Probe"));
        let e = parse("Probe SCTP X q||", "f").unwrap_err();
        assert!(e.to_string().contains("must be TCP or UDP"));
        let e = parse("Probe TCP X q|a|\nrarity 12", "f").unwrap_err();
        assert!(e.to_string().contains("f:2: rarity \"12\""));
        let e = parse("Frobnicate 1", "f").unwrap_err();
        assert!(e.to_string().contains("unknown directive \"Frobnicate\""));
    }
}
