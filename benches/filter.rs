//! Criterion bench: applying compiled prtip filters to 1,000,000 result rows.
//!
//! Rows are generated deterministically (xorshift, fixed seed) with a scan-like
//! mix: 70% closed, 20% open (most with a detected service, many with a banner),
//! 10% filtered, IPv4 addresses in 10.0.0.0/12, TCP and UDP. Figures go in
//! `benches/README.md`, section "Filter".

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use prtip_filter::Filter;
use prtip_store::event::{Addr, PortState, Protocol, Reason};
use prtip_store::{ResultRow, ServiceInfo};
use std::net::Ipv4Addr;

const ROWS: usize = 1_000_000;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn rows() -> Vec<ResultRow> {
    const SERVICES: &[(u16, &str, &str, &str, &[u8])] = &[
        (
            22,
            "ssh",
            "OpenSSH",
            "9.2p1",
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
        ),
        (
            80,
            "http",
            "Apache httpd",
            "2.4.57",
            b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.57\r\n",
        ),
        (443, "ssl/http", "nginx", "1.24.0", b""),
        (
            25,
            "smtp",
            "Postfix smtpd",
            "",
            b"220 mail.example ESMTP Postfix\r\n",
        ),
        (
            6379,
            "redis",
            "Redis key-value store",
            "7.0.11",
            b"-ERR unknown command\r\n",
        ),
        (
            8080,
            "http-proxy",
            "Squid http proxy",
            "5.7",
            b"HTTP/1.1 400 Bad Request\r\n",
        ),
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    (0..ROWS)
        .map(|i| {
            let r = rng.next();
            let ip = Ipv4Addr::from(0x0a00_0000u32 | (r as u32 & 0x000f_ffff));
            let kind = (r >> 32) % 10;
            let svc = &SERVICES[((r >> 40) % SERVICES.len() as u64) as usize];
            let proto = if (r >> 48).is_multiple_of(8) {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            let (state, reason) = match kind {
                0 | 1 => (PortState::Open, Reason::SynAck),
                2 => (PortState::Filtered, Reason::NoResponse),
                _ => (PortState::Closed, Reason::Reset),
            };
            let port = if state == PortState::Open {
                svc.0
            } else {
                (r >> 20) as u16
            };
            let with_service = state == PortState::Open && !(r >> 56).is_multiple_of(4);
            ResultRow {
                addr: Addr::from(ip),
                hostname: None,
                port,
                proto,
                state,
                reason,
                ttl: 64,
                rtt_us: if state == PortState::Filtered {
                    0
                } else {
                    200 + (r % 20_000) as u32
                },
                time_us: i as u64,
                service: with_service.then(|| ServiceInfo {
                    name: svc.1.into(),
                    product: svc.2.into(),
                    version: svc.3.into(),
                    extra: String::new(),
                    confidence: ((r >> 8) % 11) as f32 / 10.0,
                    method: "probe".into(),
                }),
                banner: (with_service && !svc.4.is_empty()).then(|| svc.4.to_vec()),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rows = rows();
    let cases = [
        (
            "issue_example",
            r#"port 1-1024 and proto tcp and state open and service ~ "http|ssl" and confidence >= 0.8"#,
        ),
        ("port_and_state", "port 22,80,443 and state open"),
        ("cidr_or_rtt", "addr 10.1.0.0/16,10.2.3.0/24 or rtt < 1ms"),
        (
            "regex_every_service_row",
            r#"service ~ "^(http|ssl)" or version ~= "9.2""#,
        ),
        (
            "banner_regex_every_row",
            r#"banner ~ "OpenSSH_[0-9]+\.[0-9]+""#,
        ),
        ("not_closed", "not state closed"),
    ];
    let mut g = c.benchmark_group("filter_1M_rows");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));
    for (name, expr) in cases {
        let f = Filter::parse(expr).expect("bench filter parses");
        g.bench_function(name, |b| {
            b.iter(|| black_box(&rows).iter().filter(|r| f.matches(r)).count())
        });
    }
    g.finish();
    c.bench_function("filter_parse_issue_example", |b| {
        b.iter(|| {
            Filter::parse(black_box(
                r#"port 1-1024 and proto tcp and state open and service ~ "http|ssl" and confidence >= 0.8"#,
            ))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
