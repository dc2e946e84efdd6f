//! TLS just far enough to name a service: a TLS 1.2 ClientHello, and a reader of the
//! server's first flight (ServerHello, Certificate, ServerHelloDone, or an alert) that
//! pulls the protocol version, the cipher suite and the leaf certificate's subject,
//! issuer, expiry and DNS names out of it with a small DER walk.
//!
//! It owns byte formats only: no sockets, no cryptography, no certificate validation.
//! The ClientHello offers no TLS 1.3 (`supported_versions` is absent), so a server that
//! also speaks 1.2 answers with its certificate in the clear; a 1.3-only server answers
//! with an alert, which still proves TLS.

/// A TLS 1.2 ClientHello record. `server_name` adds SNI (useful when scanning a host name).
pub fn client_hello(random: [u8; 32], server_name: Option<&str>) -> Vec<u8> {
    const SUITES: [u16; 15] = [
        0xc02f, 0xc030, 0xc02b, 0xc02c, 0xcca8, 0xcca9, 0xc013, 0xc014, 0xc009, 0xc00a, 0x009c,
        0x009d, 0x002f, 0x0035, 0x00ff,
    ];
    let mut body = Vec::with_capacity(200);
    body.extend_from_slice(&[0x03, 0x03]);
    body.extend_from_slice(&random);
    body.push(0); // session id
    body.extend_from_slice(&((SUITES.len() * 2) as u16).to_be_bytes());
    for s in SUITES {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut ext = Vec::new();
    if let Some(name) = server_name {
        let n = name.as_bytes();
        let mut sni = Vec::new();
        sni.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(n.len() as u16).to_be_bytes());
        sni.extend_from_slice(n);
        push_ext(&mut ext, 0x0000, &sni);
    }
    push_ext(
        &mut ext,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    ); // groups
    push_ext(&mut ext, 0x000b, &[1, 0]); // ec point formats: uncompressed
    let sigs: [u16; 11] = [
        0x0401, 0x0501, 0x0601, 0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0201, 0x0203,
    ];
    let mut sa = ((sigs.len() * 2) as u16).to_be_bytes().to_vec();
    for s in sigs {
        sa.extend_from_slice(&s.to_be_bytes());
    }
    push_ext(&mut ext, 0x000d, &sa);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);

    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn push_ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// What a certificate says about its owner.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CertInfo {
    /// Subject, attributes in certificate order: `C=DE, O=prtip lab, CN=lab.prtip.test`.
    pub subject: String,
    /// The subject's common name, if it has one.
    pub subject_cn: Option<String>,
    /// Issuer, same form as the subject.
    pub issuer: String,
    /// End of validity as written in the certificate (`YYYY-MM-DD HH:MM:SS`).
    pub not_after: String,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
}

/// What the server's first flight said.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TlsInfo {
    /// Negotiated version (`0x0303` is TLS 1.2), 0 before a ServerHello.
    pub version: u16,
    /// Negotiated cipher suite.
    pub cipher: u16,
    /// The leaf certificate, when one was sent in the clear.
    pub certificate: Option<CertInfo>,
    /// Alert description, when the server answered with an alert.
    pub alert: Option<u8>,
}

impl TlsInfo {
    /// `TLSv1.2`, `TLSv1.3`, ... (nmap's spelling).
    pub fn version_name(&self) -> String {
        match self.version {
            0x0300 => "SSLv3".into(),
            0x0301 => "TLSv1.0".into(),
            0x0302 => "TLSv1.1".into(),
            0x0303 => "TLSv1.2".into(),
            0x0304 => "TLSv1.3".into(),
            0 => "TLS".into(),
            v => format!("TLS 0x{v:04x}"),
        }
    }

    /// One line for a Service's extra field:
    /// `TLSv1.2; subject: CN=lab.prtip.test, O=prtip lab; issuer: ...; not after: ...`.
    pub fn summary(&self) -> String {
        let mut s = self.version_name();
        if let Some(a) = self.alert {
            s.push_str(&format!("; alert {a}"));
        }
        if let Some(c) = &self.certificate {
            s.push_str(&format!("; subject: {}", c.subject));
            if !c.dns_names.is_empty() {
                s.push_str(&format!("; SAN: {}", c.dns_names.join(",")));
            }
            s.push_str(&format!("; issuer: {}", c.issuer));
            if !c.not_after.is_empty() {
                s.push_str(&format!("; not after: {}", c.not_after));
            }
        }
        s
    }
}

/// Result of reading (part of) a server flight.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Flight {
    /// Not TLS at all (the first byte is not a handshake or alert record).
    NotTls,
    /// TLS so far, but the flight is not complete yet: read more.
    Incomplete(TlsInfo),
    /// Everything we wanted: a certificate, a ServerHelloDone, a TLS 1.3 ServerHello, or an alert.
    Done(TlsInfo),
}

/// Reads the bytes a server sent in answer to [`client_hello`].
pub fn read_flight(data: &[u8]) -> Flight {
    let mut info = TlsInfo::default();
    let mut hs = Vec::new();
    let mut off = 0;
    if data.is_empty() {
        return Flight::Incomplete(info);
    }
    while off < data.len() {
        let h = &data[off..];
        if !matches!(h[0], 0x15 | 0x16) || (h.len() >= 2 && h[1] != 0x03) {
            return if off == 0 {
                Flight::NotTls
            } else {
                Flight::Done(info)
            };
        }
        if h.len() < 5 {
            return Flight::Incomplete(info);
        }
        let len = u16::from_be_bytes([h[3], h[4]]) as usize;
        if len > 18 * 1024 {
            return if off == 0 {
                Flight::NotTls
            } else {
                Flight::Done(info)
            };
        }
        if h.len() < 5 + len {
            // parse what we have of the handshake so far, then ask for more
            return Flight::Incomplete(info);
        }
        let frag = &h[5..5 + len];
        off += 5 + len;
        if h[0] == 0x15 {
            if frag.len() >= 2 {
                info.alert = Some(frag[1]);
            }
            return Flight::Done(info);
        }
        hs.extend_from_slice(frag);
        // walk complete handshake messages
        let mut p = 0;
        while hs.len() >= p + 4 {
            let mlen = u32::from_be_bytes([0, hs[p + 1], hs[p + 2], hs[p + 3]]) as usize;
            if hs.len() < p + 4 + mlen {
                break;
            }
            let body = &hs[p + 4..p + 4 + mlen];
            match hs[p] {
                2 => {
                    parse_server_hello(body, &mut info);
                    if info.version == 0x0304 {
                        return Flight::Done(info);
                    }
                }
                11 => {
                    info.certificate = first_cert(body).and_then(parse_certificate);
                    return Flight::Done(info);
                }
                14 => return Flight::Done(info),
                _ => {}
            }
            p += 4 + mlen;
        }
        hs.drain(..p);
    }
    Flight::Incomplete(info)
}

fn parse_server_hello(b: &[u8], info: &mut TlsInfo) {
    if b.len() < 38 {
        return;
    }
    info.version = u16::from_be_bytes([b[0], b[1]]);
    let sid = b[34] as usize;
    let Some(c) = b.get(35 + sid..37 + sid) else {
        return;
    };
    info.cipher = u16::from_be_bytes([c[0], c[1]]);
    // extensions after compression method
    let mut p = 38 + sid;
    if b.len() < p + 2 {
        return;
    }
    let end = (p + 2 + u16::from_be_bytes([b[p], b[p + 1]]) as usize).min(b.len());
    p += 2;
    while p + 4 <= end {
        let kind = u16::from_be_bytes([b[p], b[p + 1]]);
        let len = u16::from_be_bytes([b[p + 2], b[p + 3]]) as usize;
        if kind == 0x002b && len == 2 && p + 6 <= end {
            info.version = u16::from_be_bytes([b[p + 4], b[p + 5]]);
        }
        p += 4 + len;
    }
}

fn first_cert(body: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes([0, *body.get(3)?, *body.get(4)?, *body.get(5)?]) as usize;
    body.get(6..6 + len)
}

/// One DER element: tag, contents, and what follows it.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let content = b.get(hdr..hdr.checked_add(len)?)?;
    Some((tag, content, &b[hdr + len..]))
}

/// Parses a DER X.509 certificate far enough for its subject, issuer, expiry and SANs.
pub fn parse_certificate(der: &[u8]) -> Option<CertInfo> {
    let (t, cert, _) = tlv(der)?;
    if t != 0x30 {
        return None;
    }
    let (t, tbs, _) = tlv(cert)?;
    if t != 0x30 {
        return None;
    }
    let mut rest = tbs;
    let (mut tag, mut el, mut next) = tlv(rest)?;
    if tag == 0xa0 {
        rest = next; // explicit version
        (tag, el, next) = tlv(rest)?;
    }
    let _ = (tag, el); // serial
    let (_, _, r) = tlv(next)?; // signature algorithm
    let (_, issuer, r) = tlv(r)?;
    let (_, validity, r) = tlv(r)?;
    let (_, subject, mut r) = tlv(r)?;
    let mut info = CertInfo {
        issuer: name_string(issuer).0,
        ..Default::default()
    };
    (info.subject, info.subject_cn) = name_string(subject);
    if let Some((_, _, v)) = tlv(validity) {
        if let Some((t, na, _)) = tlv(v) {
            info.not_after = time_string(t, na);
        }
    }
    // extensions: [3] after spki and the optional [1]/[2] unique ids
    while let Some((t, c, n)) = tlv(r) {
        if t == 0xa3 {
            info.dns_names = san_dns(c);
        }
        r = n;
    }
    Some(info)
}

fn name_string(name: &[u8]) -> (String, Option<String>) {
    let mut parts = Vec::new();
    let mut cn = None;
    let mut sets = name;
    while let Some((_, set, n)) = tlv(sets) {
        sets = n;
        let mut atvs = set;
        while let Some((_, atv, n2)) = tlv(atvs) {
            atvs = n2;
            let Some((0x06, oid, v)) = tlv(atv) else {
                continue;
            };
            let Some((vt, val, _)) = tlv(v) else { continue };
            let value = der_string(vt, val);
            let key = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
                _ => "OID",
            };
            if key == "CN" && cn.is_none() {
                cn = Some(value.clone());
            }
            parts.push(format!("{key}={value}"));
        }
    }
    (parts.join(", "), cn)
}

fn der_string(tag: u8, v: &[u8]) -> String {
    let s = match tag {
        0x1e => {
            // BMPString: UTF-16BE
            let u: Vec<u16> = v
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&u)
        }
        _ => String::from_utf8_lossy(v).into_owned(),
    };
    s.chars().filter(|c| !c.is_control()).collect()
}

fn time_string(tag: u8, v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    let full = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: u32 = digits[..2].parse().unwrap_or(0);
            format!("{}{}", if yy >= 50 { 19 } else { 20 }, digits)
        }
        (0x18, 14) => digits,
        _ => return s.into_owned(),
    };
    format!(
        "{}-{}-{} {}:{}:{}",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    )
}

fn san_dns(ext_wrapper: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, mut exts, _)) = tlv(ext_wrapper) else {
        return out;
    };
    while let Some((_, ext, n)) = tlv(exts) {
        exts = n;
        let Some((0x06, oid, mut r)) = tlv(ext) else {
            continue;
        };
        if oid != [0x55, 0x1d, 0x11] {
            continue;
        }
        if let Some((0x01, _, r2)) = tlv(r) {
            r = r2; // critical flag
        }
        let Some((0x04, octets, _)) = tlv(r) else {
            continue;
        };
        let Some((0x30, mut names, _)) = tlv(octets) else {
            continue;
        };
        while let Some((t, v, n)) = tlv(names) {
            names = n;
            if t == 0x82 {
                out.push(der_string(0x16, v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds DER by hand (tests only): tag + definite length + content.
    fn d(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        let n = content.len();
        if n < 0x80 {
            v.push(n as u8);
        } else if n < 0x100 {
            v.extend_from_slice(&[0x81, n as u8]);
        } else {
            v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
        }
        v.extend_from_slice(content);
        v
    }
    fn atv(oid: &[u8], tag: u8, val: &str) -> Vec<u8> {
        d(
            0x31,
            &d(0x30, &[d(0x06, oid), d(tag, val.as_bytes())].concat()),
        )
    }

    fn test_cert() -> Vec<u8> {
        let subject = d(
            0x30,
            &[
                atv(&[0x55, 4, 6], 0x13, "DE"),
                atv(&[0x55, 4, 10], 0x0c, "prtip lab"),
                atv(&[0x55, 4, 3], 0x0c, "lab.prtip.test"),
            ]
            .concat(),
        );
        let issuer = d(0x30, &atv(&[0x55, 4, 3], 0x0c, "prtip test CA"));
        let validity = d(
            0x30,
            &[d(0x17, b"240101000000Z"), d(0x18, b"20340101120000Z")].concat(),
        );
        let alg = d(
            0x30,
            &[d(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2])].concat(),
        );
        let spki = d(0x30, &[alg.clone(), d(0x03, &[0, 4, 1, 2])].concat());
        let san = d(
            0x30,
            &[
                d(0x06, &[0x55, 0x1d, 0x11]),
                d(
                    0x04,
                    &d(
                        0x30,
                        &[d(0x82, b"lab.prtip.test"), d(0x82, b"*.lab.prtip.test")].concat(),
                    ),
                ),
            ]
            .concat(),
        );
        let exts = d(0xa3, &d(0x30, &san));
        let tbs = d(
            0x30,
            &[
                d(0xa0, &d(0x02, &[2])),
                d(0x02, &[0x01, 0x23]),
                alg.clone(),
                issuer,
                validity,
                subject,
                spki,
                exts,
            ]
            .concat(),
        );
        d(0x30, &[tbs, alg, d(0x03, &[0, 0xde, 0xad])].concat())
    }

    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(body);
        v
    }
    fn record(kind: u8, frag: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 3, 3];
        v.extend_from_slice(&(frag.len() as u16).to_be_bytes());
        v.extend_from_slice(frag);
        v
    }
    fn server_hello(version: u16, ext: &[u8]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&[0xc0, 0x2f, 0]);
        if version == 0x0304 {
            b.extend_from_slice(&((ext.len()) as u16).to_be_bytes());
            b.extend_from_slice(ext);
        }
        handshake(2, &b)
    }

    #[test]
    fn certificate_fields_come_out() {
        let c = parse_certificate(&test_cert()).unwrap();
        assert_eq!(c.subject, "C=DE, O=prtip lab, CN=lab.prtip.test");
        assert_eq!(c.subject_cn.as_deref(), Some("lab.prtip.test"));
        assert_eq!(c.issuer, "CN=prtip test CA");
        assert_eq!(c.not_after, "2034-01-01 12:00:00");
        assert_eq!(c.dns_names, vec!["lab.prtip.test", "*.lab.prtip.test"]);
        assert_eq!(parse_certificate(b"\x30\x05abc"), None);
    }

    #[test]
    fn flight_split_over_records_and_reads() {
        let cert = test_cert();
        let mut certs = Vec::new();
        certs.extend_from_slice(&((cert.len() + 3) as u32).to_be_bytes()[1..]);
        certs.extend_from_slice(&(cert.len() as u32).to_be_bytes()[1..]);
        certs.extend_from_slice(&cert);
        let hs = [
            server_hello(0x0303, &[]),
            handshake(11, &certs),
            handshake(14, &[]),
        ]
        .concat();
        // the handshake stream split across two records, at an awkward place
        let cut = 50;
        let data = [record(0x16, &hs[..cut]), record(0x16, &hs[cut..])].concat();
        for n in [0, 3, 20, 60] {
            assert!(
                matches!(read_flight(&data[..n]), Flight::Incomplete(_)),
                "{n}"
            );
        }
        let Flight::Done(info) = read_flight(&data) else {
            panic!("not done")
        };
        assert_eq!(info.version_name(), "TLSv1.2");
        assert_eq!(info.cipher, 0xc02f);
        assert_eq!(
            info.summary(),
            "TLSv1.2; subject: C=DE, O=prtip lab, CN=lab.prtip.test; SAN: lab.prtip.test,*.lab.prtip.test; issuer: CN=prtip test CA; not after: 2034-01-01 12:00:00"
        );
        assert_eq!(read_flight(b"SSH-2.0-x\r\n"), Flight::NotTls);
        assert_eq!(read_flight(b"HTTP/1.1 400"), Flight::NotTls);
    }

    #[test]
    fn alerts_and_tls13() {
        let Flight::Done(a) = read_flight(&record(0x15, &[2, 70])) else {
            panic!()
        };
        assert_eq!(a.alert, Some(70));
        let sh = server_hello(0x0304, &[0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
        let Flight::Done(t) = read_flight(&record(0x16, &sh)) else {
            panic!()
        };
        assert_eq!(t.version_name(), "TLSv1.3");
    }

    #[test]
    fn client_hello_is_well_formed() {
        let ch = client_hello([1; 32], Some("lab.prtip.test"));
        assert_eq!(&ch[..3], &[0x16, 3, 1]);
        assert_eq!(u16::from_be_bytes([ch[3], ch[4]]) as usize, ch.len() - 5);
        assert_eq!(ch[5], 1);
        let hs_len = u32::from_be_bytes([0, ch[6], ch[7], ch[8]]) as usize;
        assert_eq!(hs_len, ch.len() - 9);
        assert_eq!(&ch[9..11], &[3, 3]);
        assert!(ch.windows(14).any(|w| w == b"lab.prtip.test"));
    }
}
