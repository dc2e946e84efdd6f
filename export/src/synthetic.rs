//! Synthetic scan results for tests, benchmarks and demos.
//!
//! Generates rows that look like a scan of prtip's lab (ftp, ssh, smtp, http, redis
//! banners, closed and filtered ports), sorted the way the store yields them, as an
//! iterator: a million rows cost no memory. Never used by the exporters themselves.

use prtip_store::event::ScanSpec;
use prtip_store::{Addr, PortState, Protocol, Reason, ResultRow, ServiceInfo};
use std::net::Ipv4Addr;

/// One row with sensible defaults (TCP, TTL 64, RTT 250 µs); `service` is
/// `(name, product, version)`.
pub fn row(
    ip: [u8; 4],
    port: u16,
    state: PortState,
    service: Option<(&str, &str, &str)>,
    banner: Option<&[u8]>,
) -> ResultRow {
    let reason = match state {
        PortState::Open => Reason::SynAck,
        PortState::Closed | PortState::Unfiltered => Reason::Reset,
        PortState::Filtered | PortState::OpenFiltered => Reason::NoResponse,
    };
    ResultRow {
        addr: Addr::from(Ipv4Addr::from(ip)),
        hostname: None,
        port,
        proto: Protocol::Tcp,
        state,
        reason,
        ttl: if reason == Reason::NoResponse { 0 } else { 64 },
        rtt_us: if reason == Reason::NoResponse { 0 } else { 250 },
        time_us: 1_764_080_100_000_000 + port as u64,
        service: service.map(|(name, product, version)| ServiceInfo {
            name: name.into(),
            product: product.into(),
            version: version.into(),
            extra: String::new(),
            confidence: 1.0,
            method: "probe".into(),
        }),
        banner: banner.map(|b| b.to_vec()),
    }
}

/// Ports of a synthetic host: (port, state, service, banner).
type PortPlan = (
    u16,
    PortState,
    Option<(&'static str, &'static str, &'static str)>,
    Option<&'static [u8]>,
);

const LAB_PORTS: [PortPlan; 10] = [
    (
        21,
        PortState::Open,
        Some(("ftp", "vsftpd", "3.0.3")),
        Some(b"220 (vsFTPd 3.0.3)\r\n"),
    ),
    (
        22,
        PortState::Open,
        Some(("ssh", "OpenSSH", "9.2p1")),
        Some(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
    ),
    (23, PortState::Closed, None, None),
    (
        25,
        PortState::Open,
        Some(("smtp", "Postfix smtpd", "")),
        Some(b"220 mail.lab ESMTP Postfix\r\n"),
    ),
    (
        80,
        PortState::Open,
        Some(("http", "nginx", "1.24.0")),
        Some(b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\n"),
    ),
    (110, PortState::Closed, None, None),
    (143, PortState::Filtered, None, None),
    (443, PortState::Open, Some(("https", "", "")), None),
    (
        6379,
        PortState::Open,
        Some(("redis", "Redis key-value store", "7.0.15")),
        Some(b"-NOAUTH Authentication required.\r\n"),
    ),
    (
        8080,
        PortState::Open,
        Some(("http-proxy", "", "")),
        Some(b"HTTP/1.0 400 Bad Request\r\n"),
    ),
];

/// `n` rows, 10 per host (7 open with services and banners, 2 closed, 1 filtered),
/// hosts counting up from 198.19.0.1, sorted by (address, protocol, port).
pub fn lab_rows(n: u64) -> impl Iterator<Item = ResultRow> {
    (0..n).map(|i| {
        let host = (i / LAB_PORTS.len() as u64) as u32;
        let (port, state, service, banner) = LAB_PORTS[(i % LAB_PORTS.len() as u64) as usize];
        let ip = (u32::from(Ipv4Addr::new(198, 19, 0, 1)) + host).to_be_bytes();
        let mut r = row(ip, port, state, service, banner);
        r.rtt_us = 150 + (i % 97) as u32;
        r.time_us += i;
        r
    })
}

/// A scan spec matching [`lab_rows`].
pub fn lab_spec() -> ScanSpec {
    ScanSpec {
        targets: vec!["198.19.0.0/16".into()],
        ports: "T:21-23,25,80,110,143,443,6379,8080".into(),
        service_detection: true,
        rate_mpps: 100_000_000,
        seed: 1,
        backend: prtip_store::event::BackendKind::Packet,
        max_retries: 1,
        wait_ms: 1000,
        checkpoint_every_ms: 1000,
        ..ScanSpec::default()
    }
}

/// The events that make the store fold back into `row`: a `Reply`, then a `Banner`
/// and a `Service` when the row has them.
pub fn row_events(row: &ResultRow) -> Vec<prtip_store::Event> {
    use prtip_store::event::{Banner, Reply, Service};
    use prtip_store::Event;
    let mut v = vec![Event::Reply(Reply {
        addr: row.addr,
        port: row.port,
        proto: row.proto,
        state: row.state,
        reason: row.reason,
        ttl: row.ttl,
        icmp_code: 0,
        rtt_us: row.rtt_us,
        time_us: row.time_us,
    })];
    if let Some(b) = &row.banner {
        v.push(Event::Banner(Banner {
            addr: row.addr,
            port: row.port,
            proto: row.proto,
            time_us: row.time_us,
            probe: "NULL".into(),
            bytes: b.clone(),
        }));
    }
    if let Some(s) = &row.service {
        v.push(Event::Service(Service {
            addr: row.addr,
            port: row.port,
            proto: row.proto,
            time_us: row.time_us,
            name: s.name.clone(),
            product: s.product.clone(),
            version: s.version.clone(),
            extra: s.extra.clone(),
            confidence: s.confidence,
            method: s.method.clone(),
        }));
    }
    v
}

/// Write a complete scan log into `dir` (created): `ScanStarted` for `spec`, the
/// events of every row (in the order given; the store sorts), then `Finished`
/// 2.5 s after the start unless `finished` is false (a scan killed mid-way).
pub fn write_log(
    dir: &std::path::Path,
    scan_id: u64,
    spec: &ScanSpec,
    rows: impl Iterator<Item = ResultRow>,
    finished: bool,
) -> Result<(), prtip_store::StoreError> {
    use prtip_store::event::{Counters, EventSink, Finished, ScanStarted, Versions};
    use prtip_store::{Event, LogOptions, LogWriter};
    let start = 1_764_080_100_000_000;
    let writer = LogWriter::create(dir, LogOptions::default())?;
    let mut sink = writer.sink();
    let closed = |e: prtip_store::event::SinkError| prtip_store::StoreError::Closed(e.to_string());
    sink.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id,
        time_us: start,
        spec: spec.clone(),
        versions: Versions {
            prtip: env!("CARGO_PKG_VERSION").into(),
            schema: prtip_store::event::SCHEMA_VERSION,
        },
        command_line: ["prtip", "scan", "-sS", "-sV", "-p", &spec.ports]
            .iter()
            .map(|s| s.to_string())
            .chain(spec.targets.iter().cloned())
            .collect(),
        total_probes: 0,
        total_targets: 256,
        pid: std::process::id(),
    })))
    .map_err(closed)?;
    let mut counters = Counters::default();
    for r in rows {
        counters.sent += 1;
        counters.replies += u64::from(r.reason != Reason::NoResponse);
        counters.open += u64::from(r.state == PortState::Open);
        counters.closed += u64::from(r.state == PortState::Closed);
        for ev in row_events(&r) {
            sink.push(ev).map_err(closed)?;
        }
    }
    if finished {
        sink.push(Event::Finished(Finished {
            time_us: start + 2_500_000,
            counters,
        }))
        .map_err(closed)?;
    }
    drop(sink);
    writer.finish()
}
