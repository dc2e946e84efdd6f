//! Shared helpers for the store's integration tests: deterministic events, a
//! small PRNG, a scan spec.
#![allow(dead_code)]

use prtip_store::event::*;
use std::net::Ipv4Addr;

/// xorshift64*: deterministic randomness without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn spec() -> ScanSpec {
    ScanSpec {
        targets: vec!["198.19.0.0/24".into(), "lab.example".into()],
        resolved: vec![HostName {
            name: "lab.example".into(),
            addr: Ipv4Addr::new(198, 19, 0, 7).into(),
        }],
        excludes: vec!["198.19.0.255".into()],
        ports: "T:22,80,443,U:53".into(),
        service_detection: true,
        rate_mpps: 100_000_000,
        seed: 42,
        interface: Some("prtip-s0".into()),
        source: Some(Ipv4Addr::new(198, 18, 0, 1).into()),
        router_mac: Some([2, 0x70, 0x72, 0x74, 0, 2]),
        max_retries: 1,
        wait_ms: 1000,
        checkpoint_every_probes: 10_000,
        checkpoint_every_ms: 500,
        outputs: vec![OutputSpec {
            format: "xml".into(),
            path: "out.xml".into(),
        }],
        ..ScanSpec::default()
    }
}

pub fn started(scan_id: u64) -> Event {
    Event::ScanStarted(Box::new(ScanStarted {
        scan_id,
        time_us: 1_700_000_000_000_000,
        spec: spec(),
        versions: Versions {
            prtip: "0.1.0".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec!["prtip".into(), "scan".into()],
        total_probes: 1 << 20,
        total_targets: 256,
        pid: 4242,
    }))
}

/// Event number `i` of a deterministic stream: mostly replies, with banners,
/// services, samples and checkpoints mixed in.
pub fn event(i: u64) -> Event {
    let addr: Addr = Ipv4Addr::from(0xC613_0000u32 + (i as u32 % 4096)).into();
    let port = (i % 1000) as u16 + 1;
    match i % 97 {
        13 => Event::Banner(Banner {
            addr,
            port,
            proto: Protocol::Tcp,
            time_us: i,
            probe: "NULL".into(),
            bytes: format!("SSH-2.0-OpenSSH_{i}\r\n").into_bytes(),
        }),
        29 => Event::Service(Service {
            addr,
            port,
            proto: Protocol::Tcp,
            time_us: i,
            name: "ssh".into(),
            product: "OpenSSH".into(),
            version: format!("9.{}", i % 10),
            extra: String::new(),
            confidence: 0.9,
            method: "banner".into(),
        }),
        41 => Event::Sample(Sample {
            time_us: i,
            pps: i as f64,
            rps: 1.5,
            rtt_us: [1, 2, 3, i as u32],
            ..Default::default()
        }),
        _ => reply(i),
    }
}

pub fn reply(i: u64) -> Event {
    Event::Reply(Reply {
        addr: Ipv4Addr::from(0xC613_0000u32 + (i as u32 % 4096)).into(),
        port: (i % 1000) as u16 + 1,
        proto: if i.is_multiple_of(5) {
            Protocol::Udp
        } else {
            Protocol::Tcp
        },
        state: if i.is_multiple_of(3) {
            PortState::Open
        } else {
            PortState::Closed
        },
        reason: Reason::SynAck,
        ttl: 64,
        icmp_code: 0,
        rtt_us: (i % 10_000) as u32,
        time_us: i,
    })
}

pub fn checkpoint(next_index: u64) -> Checkpoint {
    Checkpoint {
        next_index,
        counters: Counters {
            sent: next_index,
            ..Default::default()
        },
        time_us: next_index,
    }
}
