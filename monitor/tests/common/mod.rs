//! Shared fixtures for the widget tests: a deterministic scan, rendered into
//! ratatui's TestBackend.

#![allow(dead_code)]

use prtip_monitor::metrics::SystemSample;
use prtip_monitor::App;
use prtip_store::event::*;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use std::net::Ipv4Addr;

/// 2025-01-01 12:00:00 UTC.
pub const T0: u64 = 1_735_732_800_000_000;

pub fn spec() -> ScanSpec {
    ScanSpec {
        targets: vec!["198.19.0.0/28".into()],
        ports: "T:1-1000".into(),
        service_detection: true,
        rate_mpps: 10_000_000,
        seed: 7,
        interface: Some("prtip-s0".into()),
        wait_ms: 1000,
        checkpoint_every_ms: 1000,
        ..ScanSpec::default()
    }
}

pub fn started() -> Event {
    Event::ScanStarted(Box::new(ScanStarted {
        scan_id: 7,
        time_us: T0,
        spec: spec(),
        versions: Versions {
            prtip: "0.1.0".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec!["prtip".into(), "scan".into()],
        total_probes: 16_000,
        total_targets: 16,
        pid: 4242,
    }))
}

pub fn addr(last: u8) -> Addr {
    Ipv4Addr::new(198, 19, 0, last).into()
}

pub fn reply(last: u8, port: u16, state: PortState, rtt_us: u32, t: u64) -> Event {
    Event::Reply(Reply {
        addr: addr(last),
        port,
        proto: Protocol::Tcp,
        state,
        reason: match state {
            PortState::Open => Reason::SynAck,
            _ => Reason::Reset,
        },
        ttl: 64,
        icmp_code: 0,
        rtt_us,
        time_us: t,
    })
}

pub fn service(last: u8, port: u16, name: &str, product: &str, version: &str, conf: f32) -> Event {
    Event::Service(Service {
        addr: addr(last),
        port,
        proto: Protocol::Tcp,
        time_us: T0,
        name: name.into(),
        product: product.into(),
        version: version.into(),
        extra: String::new(),
        confidence: conf,
        method: "probe".into(),
    })
}

pub fn banner(last: u8, port: u16, bytes: &[u8]) -> Event {
    Event::Banner(Banner {
        addr: addr(last),
        port,
        proto: Protocol::Tcp,
        time_us: T0,
        probe: "NULL".into(),
        bytes: bytes.to_vec(),
    })
}

pub fn sample(sec: u64, sent: u64, pps: f64) -> Event {
    Event::Sample(Sample {
        time_us: T0 + sec * 1_000_000,
        pps,
        rps: pps / 10.0,
        counters: Counters {
            sent,
            replies: sent / 10,
            ..Counters::default()
        },
        cpu_percent: 50.0,
        rss_bytes: 64 << 20,
        net_tx_bytes: sent * 60,
        net_rx_bytes: sent * 6,
        log_bytes: sent * 4,
        rtt_us: [1000, 2000, 3000, 4000],
    })
}

/// A scan 30 s in: 4 open ports with services and banners, 2 closed, samples.
pub fn scan_app() -> App {
    let mut app = App::new("/var/lib/prtip/scans/7");
    app.apply(&started());
    for s in 1..=30u64 {
        app.apply(&sample(s, s * 300, 300.0));
    }
    let t = T0 + 1_000_000;
    app.apply(&reply(1, 22, PortState::Open, 1200, t));
    app.apply(&reply(1, 80, PortState::Open, 800, t));
    app.apply(&reply(2, 443, PortState::Open, 2500, t));
    app.apply(&reply(3, 8080, PortState::Open, 400, t));
    app.apply(&reply(2, 23, PortState::Closed, 300, t));
    app.apply(&reply(3, 25, PortState::Closed, 350, t));
    app.apply(&service(1, 22, "ssh", "OpenSSH", "9.2p1", 1.0));
    app.apply(&service(1, 80, "http", "Apache httpd", "2.4.57", 0.9));
    app.apply(&service(2, 443, "ssl/http", "nginx", "1.24.0", 0.6));
    app.apply(&service(3, 8080, "http-proxy", "", "", 0.3));
    app.apply(&banner(1, 22, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"));
    app.apply(&banner(1, 80, b"HTTP/1.1 200 OK\r\n"));
    app.apply(&Event::Checkpoint(Checkpoint {
        next_index: 8_700,
        counters: Counters {
            sent: 8_700,
            replies: 870,
            ..Counters::default()
        },
        time_us: T0 + 29_000_000,
    }));
    app.tick(T0 + 30_000_000, true, &SystemSample::default());
    app
}

pub fn render(app: &mut App, w: u16, h: u16) -> Buffer {
    app.refresh_view();
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| prtip_monitor::draw(f, app)).unwrap();
    t.backend().buffer().clone()
}

/// The text of every row of the buffer (every symbol drawn is one cell wide).
pub fn lines(buf: &Buffer) -> Vec<String> {
    let a = buf.area;
    (0..a.height)
        .map(|y| (0..a.width).map(|x| buf[(x, y)].symbol()).collect())
        .collect()
}

pub fn print(buf: &Buffer) {
    for l in lines(buf) {
        println!("|{l}|");
    }
}
