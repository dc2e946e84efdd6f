//! What the lab's target answers on its UDP ports: DNS on 53 (an authoritative
//! server that answers A queries with the address asked and `version.bind`),
//! NTP on 123 (a stratum-2 server), and echo on every other responder port.
//! Pure functions from a datagram to the reply; the responder owns the sockets.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// How a UDP port answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpKind {
    /// Sends every datagram back.
    Echo,
    /// DNS server.
    Dns,
    /// NTP server.
    Ntp,
}

/// One row of the UDP port table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpService {
    /// UDP port.
    pub port: u16,
    /// nmap-style service name.
    pub name: &'static str,
    /// Product a version detector should report.
    pub product: &'static str,
    /// Version a version detector should report.
    pub version: &'static str,
    /// Wire behaviour.
    pub kind: UdpKind,
}

/// BIND version string answered to `version.bind CH TXT`.
pub const BIND_VERSION: &str = "9.18.28-1~deb12u2-Debian";

/// The UDP port table; a responder port not listed here echoes.
pub static UDP_SERVICES: &[UdpService] = &[
    UdpService {
        port: 7,
        name: "echo",
        product: "echo",
        version: "",
        kind: UdpKind::Echo,
    },
    UdpService {
        port: 53,
        name: "domain",
        product: "ISC BIND",
        version: BIND_VERSION,
        kind: UdpKind::Dns,
    },
    UdpService {
        port: 123,
        name: "ntp",
        product: "NTP",
        version: "v4",
        kind: UdpKind::Ntp,
    },
];

/// The service the lab runs on a UDP port, if the table knows it.
pub fn udp_service(port: u16) -> Option<&'static UdpService> {
    UDP_SERVICES.iter().find(|s| s.port == port)
}

/// The reply to `payload` received on `port` at address `local`, or `None` when
/// a real server would stay silent (a malformed or non-client packet).
/// DNS answers an A query (IPv4) or AAAA query (IPv6) with the address asked.
pub fn udp_reply(
    port: u16,
    local: impl Into<IpAddr>,
    payload: &[u8],
    now: SystemTime,
) -> Option<Vec<u8>> {
    let local = local.into();
    match udp_service(port).map(|s| s.kind).unwrap_or(UdpKind::Echo) {
        UdpKind::Echo => Some(payload.to_vec()),
        UdpKind::Dns => dns_reply(local, payload),
        UdpKind::Ntp => ntp_reply(payload, now),
    }
}

const DNS_NOERROR: u16 = 0;
const DNS_FORMERR: u16 = 1;
const DNS_NOTIMP: u16 = 4;
const DNS_REFUSED: u16 = 5;

fn dns_header(req: &[u8], rcode: u16, qd: u16, an: u16) -> Vec<u8> {
    let flags = u16::from_be_bytes([req[2], req[3]]);
    let opcode = flags & 0x7800;
    let rd = flags & 0x0100;
    let out = 0x8000 | opcode | 0x0400 | rd | rcode; // QR, AA
    let mut h = vec![req[0], req[1]];
    h.extend_from_slice(&out.to_be_bytes());
    h.extend_from_slice(&qd.to_be_bytes());
    h.extend_from_slice(&an.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// Parse the question name at `p`; returns (lower-case dotted name, end offset).
fn dns_name(b: &[u8], mut p: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        let l = *b.get(p)? as usize;
        p += 1;
        if l == 0 {
            break;
        }
        if l & 0xc0 != 0 || name.len() + l > 253 {
            return None; // no compression in a question; too long
        }
        let label = b.get(p..p + l)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        p += l;
    }
    Some((name, p))
}

fn dns_reply(local: IpAddr, req: &[u8]) -> Option<Vec<u8>> {
    if req.len() < 12 || req[2] & 0x80 != 0 {
        return None; // too short for a header, or a response
    }
    let flags = u16::from_be_bytes([req[2], req[3]]);
    if flags & 0x7800 != 0 {
        return Some(dns_header(req, DNS_NOTIMP, 0, 0)); // only QUERY
    }
    let qd = u16::from_be_bytes([req[4], req[5]]);
    if qd != 1 {
        return Some(dns_header(req, DNS_FORMERR, 0, 0));
    }
    let Some((name, end)) = dns_name(req, 12) else {
        return Some(dns_header(req, DNS_FORMERR, 0, 0));
    };
    let Some(q) = req.get(end..end + 4) else {
        return Some(dns_header(req, DNS_FORMERR, 0, 0));
    };
    let qtype = u16::from_be_bytes([q[0], q[1]]);
    let qclass = u16::from_be_bytes([q[2], q[3]]);
    let question = &req[12..end + 4];
    let answer = |ty: u16, class: u16, ttl: u32, rdata: &[u8]| {
        let mut a = vec![0xc0, 0x0c];
        a.extend_from_slice(&ty.to_be_bytes());
        a.extend_from_slice(&class.to_be_bytes());
        a.extend_from_slice(&ttl.to_be_bytes());
        a.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        a.extend_from_slice(rdata);
        a
    };
    let (rcode, ans) = match (qclass, qtype) {
        (3, 16) if name == "version.bind" => {
            let mut txt = vec![BIND_VERSION.len() as u8];
            txt.extend_from_slice(BIND_VERSION.as_bytes());
            (DNS_NOERROR, Some(answer(16, 3, 0, &txt)))
        }
        (3, _) => (DNS_REFUSED, None),
        (1, 1) => match local {
            IpAddr::V4(a) => (DNS_NOERROR, Some(answer(1, 1, 300, &a.octets()))),
            IpAddr::V6(_) => (DNS_NOERROR, None),
        },
        (1, 28) => match local {
            IpAddr::V6(a) => (DNS_NOERROR, Some(answer(28, 1, 300, &a.octets()))),
            IpAddr::V4(_) => (DNS_NOERROR, None),
        },
        (1, _) => (DNS_NOERROR, None),
        _ => (DNS_REFUSED, None),
    };
    let mut r = dns_header(req, rcode, 1, ans.is_some() as u16);
    r.extend_from_slice(question);
    if let Some(a) = ans {
        r.extend_from_slice(&a);
    }
    Some(r)
}

/// Seconds between 1900-01-01 (NTP era 0) and 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

fn ntp_timestamp(t: SystemTime) -> [u8; 8] {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = (d.as_secs() + NTP_UNIX_OFFSET) as u32;
    let frac = ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&secs.to_be_bytes());
    b[4..].copy_from_slice(&frac.to_be_bytes());
    b
}

fn ntp_reply(req: &[u8], now: SystemTime) -> Option<Vec<u8>> {
    if req.len() < 48 || req[0] & 0x07 != 3 {
        return None; // only client-mode packets get a server-mode answer
    }
    let vn = (req[0] >> 3) & 0x07;
    let mut r = vec![0u8; 48];
    r[0] = (vn << 3) | 4; // LI 0, client's version, mode 4 (server)
    r[1] = 2; // stratum 2
    r[2] = req[2]; // poll
    r[3] = 0xe9; // precision 2^-23
    r[4..8].copy_from_slice(&0x0000_0200u32.to_be_bytes()); // root delay
    r[8..12].copy_from_slice(&0x0000_0400u32.to_be_bytes()); // root dispersion
    r[12..16].copy_from_slice(&[198, 19, 255, 254]); // reference id: upstream server
    let reference = now - std::time::Duration::from_secs(37);
    r[16..24].copy_from_slice(&ntp_timestamp(reference));
    r[24..32].copy_from_slice(&req[40..48]); // origin = client's transmit
    r[32..40].copy_from_slice(&ntp_timestamp(now));
    r[40..48].copy_from_slice(&ntp_timestamp(now));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn query(id: u16, name: &str, qtype: u16, qclass: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&qclass.to_be_bytes());
        q
    }

    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 2);

    #[test]
    fn dns_answers_a_with_the_address_asked() {
        let q = query(0xbeef, "www.Example.test", 1, 1);
        let r = udp_reply(53, LOCAL, &q, SystemTime::now()).unwrap();
        assert_eq!(&r[..2], &[0xbe, 0xef]);
        assert_eq!(r[2] & 0x80, 0x80, "QR");
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &[198, 19, 1, 2]);
        assert_eq!(&r[12..q.len()], &q[12..], "question echoed");
    }

    #[test]
    fn dns_answers_aaaa_on_ipv6_with_the_address_asked() {
        let local: Ipv6Addr = "2001:db8:100::abc".parse().unwrap();
        let r = udp_reply(53, local, &query(9, "x.test", 28, 1), SystemTime::now()).unwrap();
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 16..], &local.octets());
        let r = udp_reply(53, local, &query(9, "x.test", 1, 1), SystemTime::now()).unwrap();
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0, "no A record on IPv6");
    }

    #[test]
    fn dns_version_bind_names_bind() {
        let r = udp_reply(
            53,
            LOCAL,
            &query(1, "version.bind", 16, 3),
            SystemTime::now(),
        )
        .unwrap();
        let s = String::from_utf8_lossy(&r);
        assert!(s.ends_with(BIND_VERSION), "{s}");
    }

    #[test]
    fn dns_odd_requests_get_error_codes_or_silence() {
        let mut status = query(7, "x", 1, 1);
        status[2] = 0x10; // opcode STATUS
        let r = udp_reply(53, LOCAL, &status, SystemTime::now()).unwrap();
        assert_eq!(r[3] & 0x0f, 4);
        let r = udp_reply(53, LOCAL, &query(8, "x", 28, 1), SystemTime::now()).unwrap();
        assert_eq!((r[3] & 0x0f, r[7]), (0, 0), "AAAA: NOERROR, no data");
        assert_eq!(udp_reply(53, LOCAL, b"short", SystemTime::now()), None);
        let mut resp = query(9, "x", 1, 1);
        resp[2] |= 0x80;
        assert_eq!(udp_reply(53, LOCAL, &resp, SystemTime::now()), None);
    }

    #[test]
    fn ntp_answers_client_mode_only() {
        let mut req = vec![0u8; 48];
        req[0] = 0xe3; // LI 3, VN 4, mode 3 (nmap's NTP probe)
        req[40..48].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let r = udp_reply(123, LOCAL, &req, now).unwrap();
        assert_eq!(r.len(), 48);
        assert_eq!(r[0], 0x24, "VN 4, mode 4");
        assert_eq!(r[1], 2);
        assert_eq!(&r[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let secs = u32::from_be_bytes([r[40], r[41], r[42], r[43]]);
        assert_eq!(u64::from(secs), 1_700_000_000 + NTP_UNIX_OFFSET);
        req[0] = 0xe4; // server mode: no answer
        assert_eq!(udp_reply(123, LOCAL, &req, now), None);
    }

    #[test]
    fn other_ports_echo() {
        assert_eq!(
            udp_reply(7, LOCAL, b"hello", SystemTime::now()).unwrap(),
            b"hello"
        );
        assert_eq!(
            udp_reply(9999, LOCAL, b"x", SystemTime::now()).unwrap(),
            b"x"
        );
    }
}
