//! Criterion benches of the engine's per-probe work: building and patching a SYN,
//! the cookie, one permutation step, a whole probe from a walk position, reply
//! classification and the token bucket. Figures in benches/README.md ("Engine").

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use prtip_engine::backend::{FrameParams, Probe, ProbeSet, ProbeTemplate};
use prtip_engine::cookie::Cookies;
use prtip_engine::pacing::TokenBucket;
use prtip_engine::permutation::Permutation;
use prtip_engine::scan::ScanPlan;
use prtip_engine::wire::{
    EthernetAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpPacket, TcpRepr,
};
use prtip_store::event::{Protocol, ScanSpec};
use std::net::{IpAddr, Ipv4Addr};

fn params() -> FrameParams {
    FrameParams {
        src_mac: EthernetAddress([2, 0x70, 0x72, 0x74, 0, 1]),
        dst_mac: EthernetAddress([2, 0x70, 0x72, 0x74, 0, 2]),
        src_ip: Ipv4Addr::new(198, 18, 0, 1),
        ttl: 64,
    }
}

fn spec() -> ScanSpec {
    ScanSpec {
        targets: vec!["198.19.0.0/16".into()],
        excludes: vec!["198.19.7.0/24".into()],
        ports: "22,80,443,8080".into(),
        seed: 1,
        wait_ms: 1000,
        checkpoint_every_ms: 1000,
        ..ScanSpec::default()
    }
}

fn probes(c: &mut Criterion) {
    let t = ProbeTemplate::tcp_syn(&params());
    let mut frame = t.bytes().to_vec();
    let mut g = c.benchmark_group("probe");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u32;
    g.bench_function("patch_syn_template", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let p = Probe {
                dst: Ipv4Addr::from(0xc613_0000 | (i & 0xffff)).into(),
                dport: 80,
                sport: 40960 + (i as u16 & 0x3fff),
                seq: i.wrapping_mul(2654435761),
                proto: Protocol::Tcp,
            };
            t.patch(black_box(&mut frame), black_box(&p));
        })
    });
    g.bench_function("build_syn_from_reprs", |b| {
        let mut buf = [0u8; 58];
        b.iter(|| {
            i = i.wrapping_add(1);
            let dst = Ipv4Addr::from(0xc613_0000 | (i & 0xffff));
            Ipv4Repr {
                src_addr: params().src_ip,
                dst_addr: dst,
                protocol: IpProtocol::Tcp,
                payload_len: 24,
                ttl: 64,
                ident: i as u16,
                dont_frag: false,
            }
            .emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
            let mut tcp = TcpPacket::new_unchecked(&mut buf[34..]);
            TcpRepr {
                src_port: 40960,
                dst_port: 80,
                seq_number: i,
                ack_number: 0,
                flags: TcpFlags(TcpFlags::SYN),
                window_len: 1024,
                max_seg_size: Some(1460),
            }
            .emit(&mut tcp);
            tcp.fill_checksum_v4(params().src_ip, dst);
            black_box(&buf);
        })
    });
    let cookies = Cookies::new(7);
    g.bench_function("cookie", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(cookies.cookie(IpAddr::V4(Ipv4Addr::from(i)), 80, Protocol::Tcp))
        })
    });
    let perm = Permutation::new(65536 * 4, 9);
    g.bench_function("permutation_step_2^18", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(perm.shuffle(black_box((i & 0x3ffff) as u64)))
        })
    });
    let big = Permutation::new((1u64 << 32) * 1000, 9);
    g.bench_function("permutation_step_2^32x1000", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(big.shuffle(black_box(i as u64 * 977)))
        })
    });
    let plan = ScanPlan::new(&spec()).unwrap();
    let n = plan.total_probes();
    g.bench_function("probe_at_walk_position", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(plan.probe_at(black_box(i as u64 % n)))
        })
    });
    // A SYN-ACK answering a probe, as the receiver sees it.
    let tgt = Ipv4Addr::new(198, 19, 3, 4);
    let k = cookies.cookie(IpAddr::V4(tgt), 80, Protocol::Tcp);
    let mut reply = vec![0u8; 54];
    reply[12] = 0x08;
    Ipv4Repr {
        src_addr: tgt,
        dst_addr: params().src_ip,
        protocol: IpProtocol::Tcp,
        payload_len: 20,
        ttl: 64,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut reply[14..]));
    TcpRepr {
        src_port: 80,
        dst_port: k.sport,
        seq_number: 1,
        ack_number: k.seq.wrapping_add(1),
        flags: TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
        window_len: 64240,
        max_seg_size: None,
    }
    .emit(&mut TcpPacket::new_unchecked(&mut reply[34..]));
    let set = ProbeSet::new(&params());
    g.bench_function("classify_syn_ack", |b| {
        b.iter(|| black_box(set.classify(black_box(&reply), &cookies)))
    });
    let mut bucket = TokenBucket::new(1_000_000_000, 64, 0);
    let mut t_ns = 0u64;
    g.bench_function("token_bucket_take", |b| {
        b.iter(|| {
            t_ns += 1000;
            black_box(bucket.take(t_ns, 64))
        })
    });
    g.finish();
}

criterion_group!(benches, probes);
criterion_main!(benches);
