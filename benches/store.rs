//! Criterion benches of the scan log (prtip-store). Figures go in
//! `benches/README.md`, section "Store".
//!
//! - `store/append`: events/s into mapped segments: the low-level `Appender`
//!   (prefaulted and cold pages) and the `LogWriter` thread fed by a `LogSink`.
//! - `store/iterate`: events/s read back with CRC32C + rkyv validation (raw and
//!   compressed segments).
//! - `store/checkpoint`: latency of a checkpoint (append + msync) after a window
//!   of 4 KiB .. 1 MiB of new records.
//! - `store/recovery`: `open_append` / `LogReader::open` of a 1 GiB log whose
//!   writer died with an unsynced tail, warm and cold page cache (cold: the log's
//!   files are dropped from the cache with `posix_fadvise(DONTNEED)`).
//! - `store/zstd`: compressing a sealed 64 MiB segment (level 3).
//!
//! Logs are written under `$PRTIP_BENCH_DIR` (default: the system temp dir).
//! `cargo bench --bench store -- --quick` runs everything in a few minutes.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prtip_store::event::*;
use prtip_store::*;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn base() -> PathBuf {
    std::env::var_os("PRTIP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("prtip-store-bench-")
        .tempdir_in(base())
        .unwrap()
}

/// A small event: an archived Reply is 40 bytes, 48 with its record header.
#[inline]
fn reply(i: u64) -> Event {
    Event::Reply(Reply {
        addr: Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i as u32 >> 4)).into(),
        port: (i as u16 & 0x3ff) + 1,
        proto: Protocol::Tcp,
        state: if i & 7 == 0 {
            PortState::Open
        } else {
            PortState::Closed
        },
        reason: Reason::SynAck,
        ttl: 64,
        icmp_code: 0,
        rtt_us: i as u32 & 0xffff,
        time_us: 1_700_000_000_000_000 + i,
    })
}

fn started() -> Event {
    Event::ScanStarted(Box::new(ScanStarted {
        scan_id: 1,
        time_us: 1,
        spec: ScanSpec {
            targets: vec!["10.0.0.0/8".into()],
            ports: "T:1-1024".into(),
            seed: 1,
            ..ScanSpec::default()
        },
        versions: Versions {
            prtip: "bench".into(),
            schema: SCHEMA_VERSION,
        },
        command_line: vec![],
        total_probes: 1 << 34,
        total_targets: 1 << 24,
        pid: 1,
    }))
}

fn opts(segment_bytes: u64, prefault: bool) -> LogOptions {
    LogOptions {
        segment_bytes,
        compress_sealed: false,
        prefault,
        ..Default::default()
    }
}

const N: u64 = 1_000_000;

/// CPU time of this thread (`CLOCK_THREAD_CPUTIME_ID`) or of the whole process.
/// On a shared machine wall time measures the load; CPU time measures the code.
fn cpu_time(process: bool) -> Duration {
    let clock = if process {
        libc::CLOCK_PROCESS_CPUTIME_ID
    } else {
        libc::CLOCK_THREAD_CPUTIME_ID
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall clock or CPU clock, chosen per bench id.
#[derive(Clone, Copy)]
enum Clock {
    Wall,
    ThreadCpu,
    ProcessCpu,
}

impl Clock {
    fn name(self) -> &'static str {
        match self {
            Clock::Wall => "wall",
            Clock::ThreadCpu => "thread_cpu",
            Clock::ProcessCpu => "process_cpu",
        }
    }
    fn now(self) -> (Instant, Duration) {
        match self {
            Clock::Wall => (Instant::now(), Duration::ZERO),
            Clock::ThreadCpu => (Instant::now(), cpu_time(false)),
            Clock::ProcessCpu => (Instant::now(), cpu_time(true)),
        }
    }
    fn since(self, t: (Instant, Duration)) -> Duration {
        match self {
            Clock::Wall => t.0.elapsed(),
            Clock::ThreadCpu => cpu_time(false) - t.1,
            Clock::ProcessCpu => cpu_time(true) - t.1,
        }
    }
}

fn bench_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/append");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(N));
    for (prefault, clock) in [
        (true, Clock::Wall),
        (true, Clock::ThreadCpu),
        (false, Clock::Wall),
        (false, Clock::ThreadCpu),
    ] {
        let name = if prefault {
            "appender_reply_prefaulted"
        } else {
            "appender_reply_cold_pages"
        };
        g.bench_function(BenchmarkId::new(name, clock.name()), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = tmp();
                    let mut a =
                        Appender::create(&t.path().join("log"), opts(64 << 20, false)).unwrap();
                    if prefault {
                        a.prefault().unwrap();
                    }
                    let t0 = clock.now();
                    for i in 0..N {
                        a.append(&reply(i)).unwrap();
                    }
                    a.commit();
                    total += clock.since(t0);
                    black_box(a.next_seq());
                }
                total
            })
        });
    }
    // Through the queue and the writer thread; timed until everything is appended
    // and visible (flush), not durable.
    for (batch, clock) in [
        (1usize, Clock::Wall),
        (1, Clock::ProcessCpu),
        (1024, Clock::Wall),
        (1024, Clock::ProcessCpu),
    ] {
        g.bench_function(
            BenchmarkId::new(format!("logwriter_push_batch{batch}"), clock.name()),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t = tmp();
                        let w = LogWriter::create(&t.path().join("log"), opts(64 << 20, false))
                            .unwrap();
                        let mut s = w.sink();
                        let t0 = clock.now();
                        if batch == 1 {
                            for i in 0..N {
                                s.push(reply(i)).unwrap();
                            }
                        } else {
                            let mut i = 0;
                            while i < N {
                                let v: Vec<Event> =
                                    (i..(i + batch as u64).min(N)).map(reply).collect();
                                i += v.len() as u64;
                                s.push_batch(v).unwrap();
                            }
                        }
                        s.flush().unwrap();
                        total += clock.since(t0);
                        drop(s);
                        drop(w);
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

/// A raw log of `n` replies (plus ScanStarted) in 64 MiB segments.
fn build_log(dir: &Path, n: u64, compress: bool) {
    let mut a = Appender::create(
        dir,
        LogOptions {
            segment_bytes: 64 << 20,
            compress_sealed: compress,
            ..Default::default()
        },
    )
    .unwrap();
    a.append(&started()).unwrap();
    for i in 0..n {
        a.append(&reply(i)).unwrap();
    }
    a.finish().unwrap();
}

fn bench_iterate(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/iterate");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let n = 4_000_000u64;
    let t = tmp();
    let raw = t.path().join("raw");
    build_log(&raw, n, false);
    let zst = t.path().join("zst");
    build_log(&zst, n, true);
    g.throughput(Throughput::Elements(n + 1));
    let r = LogReader::open(&raw).unwrap();
    for clock in [Clock::Wall, Clock::ThreadCpu] {
        g.bench_function(BenchmarkId::new("iter_validated_raw", clock.name()), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = clock.now();
                    let mut k = 0u64;
                    for e in r.iter() {
                        let e = e.unwrap();
                        k += black_box(e.time_us()) & 1;
                    }
                    total += clock.since(t0);
                    black_box(k);
                }
                total
            })
        });
    }
    g.bench_function("visit_validated_raw", |b| {
        b.iter(|| {
            let mut k = 0u64;
            r.visit(|e: Entry<'_>| -> Result<()> {
                k += black_box(e.seq) & 1;
                Ok(())
            })
            .unwrap();
            k
        })
    });
    g.bench_function("visit_validated_zstd", |b| {
        b.iter(|| {
            let r = LogReader::open(&zst).unwrap();
            let mut k = 0u64;
            r.visit(|e: Entry<'_>| -> Result<()> {
                k += black_box(e.seq) & 1;
                Ok(())
            })
            .unwrap();
            k
        })
    });
    g.finish();
}

fn checkpoint_at(i: u64) -> Checkpoint {
    Checkpoint {
        next_index: i,
        counters: Counters::default(),
        time_us: i,
    }
}

/// Wait until everything pushed is committed, then time one checkpoint.
fn sink_checkpoint(s: &mut LogSink, i: u64) -> Duration {
    s.flush().unwrap();
    let t0 = Instant::now();
    s.checkpoint(checkpoint_at(i)).unwrap();
    t0.elapsed()
}

fn bench_checkpoint(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/checkpoint");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let t = tmp();
    // (window bytes, streamed): an instant window is appended all at once right
    // before the checkpoint (the worst case: the whole window is still to be
    // written); a streamed one arrives in 16 slices 0.5 ms apart, as records do
    // during a scan, so the writer has started writing most of it back already
    // (`LogOptions::writeback_bytes`).
    // The last case turns on `LogOptions::writeback_bytes` (off by default).
    for (window, streamed, writeback) in [
        (4u64 << 10, false, false),
        (64 << 10, false, false),
        (1 << 20, false, false),
        (1 << 20, true, false),
        (1 << 20, true, true),
    ] {
        let dir = t.path().join(format!("w{window}-{streamed}-{writeback}"));
        let o = LogOptions {
            writeback_bytes: if writeback { 256 << 10 } else { 0 },
            ..opts(256 << 20, true)
        };
        let mut a = Appender::create(&dir, o).unwrap();
        a.append(&started()).unwrap();
        a.sync().unwrap();
        let mut i = 0u64;
        let name = format!(
            "{}KiB{}{}",
            window >> 10,
            if streamed { "_streamed" } else { "" },
            if writeback { "_writeback" } else { "" }
        );
        g.bench_function(BenchmarkId::new("appender_append_msync", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // The window: new records not yet durable (untimed).
                    let slices = if streamed { 16 } else { 1 };
                    for _ in 0..slices {
                        for _ in 0..window / 48 / slices {
                            a.append(&reply(i)).unwrap();
                            i += 1;
                        }
                        a.commit();
                        if streamed {
                            std::thread::sleep(Duration::from_micros(500));
                        }
                    }
                    let t0 = Instant::now();
                    a.append(&Event::Checkpoint(checkpoint_at(i))).unwrap();
                    a.sync().unwrap();
                    total += t0.elapsed();
                }
                total
            })
        });
        drop(a);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // End to end through the sink: push a 4 KiB window, wait until the writer
    // appended it, then time checkpoint().
    let dir = t.path().join("sink");
    let w = LogWriter::create(&dir, opts(256 << 20, true)).unwrap();
    let mut s = w.sink();
    s.push(started()).unwrap();
    let mut i = 0u64;
    g.bench_function("logsink_checkpoint_4KiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..4096 / 48 {
                    s.push(reply(i)).unwrap();
                    i += 1;
                }
                total += sink_checkpoint(&mut s, i);
            }
            total
        })
    });
    drop(s);
    w.finish().unwrap();
    // The same through the writer thread for a 1 MiB window streamed in (16 slices
    // 0.5 ms apart, as a scan's replies arrive): the writer starts writing
    // committed pages whenever its queue runs empty.
    let dir = t.path().join("sink-streamed");
    let w = LogWriter::create(&dir, opts(256 << 20, true)).unwrap();
    let mut s = w.sink();
    s.push(started()).unwrap();
    g.bench_function("logsink_checkpoint_1024KiB_streamed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..16 {
                    let batch: Vec<Event> = (0..(1 << 20) / 48 / 16)
                        .map(|_| {
                            i += 1;
                            reply(i)
                        })
                        .collect();
                    s.push_batch(batch).unwrap();
                    std::thread::sleep(Duration::from_micros(500));
                }
                total += sink_checkpoint(&mut s, i);
            }
            total
        })
    });
    drop(s);
    w.finish().unwrap();
    g.finish();
}

/// Drop the log's files from the page cache (they are clean: fdatasync first).
fn drop_cache(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let f = std::fs::File::open(&p).unwrap();
        let _ = f.sync_data();
        // SAFETY: posix_fadvise on a valid fd; no memory is passed.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    let f = std::fs::File::open(dir).unwrap();
    // SAFETY: as above, on the directory.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// Leave the log as a killed writer does: `mib` MiB appended after the last sync.
fn crash_tail(dir: &Path, mib: u64, seq: &mut u64) {
    let (mut a, _) = Appender::open_append(dir, opts(64 << 20, false)).unwrap();
    for _ in 0..(mib << 20) / 48 {
        a.append(&reply(*seq)).unwrap();
        *seq += 1;
    }
    a.commit();
    drop(a); // no sync, no finish
}

fn bench_recovery(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/recovery");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    let t = tmp();
    let dir = t.path().join("1gib");
    // 1 GiB: 22.4 M replies in 64 MiB segments, synced every 4 MiB as the writer
    // thread does, then a crash with 2 MiB unsynced.
    {
        let mut a = Appender::create(&dir, opts(64 << 20, false)).unwrap();
        a.append(&started()).unwrap();
        let n = (1u64 << 30) / 48;
        for i in 0..n {
            a.append(&reply(i)).unwrap();
            if a.pending_bytes() >= 4 << 20 {
                a.sync().unwrap();
            }
        }
        a.commit();
        drop(a);
    }
    let mut seq = 1u64 << 40;
    for cold in [false, true] {
        let name = if cold {
            "open_append_1GiB_cold"
        } else {
            "open_append_1GiB_warm"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    crash_tail(&dir, 2, &mut seq);
                    if cold {
                        drop_cache(&dir);
                    }
                    let t0 = Instant::now();
                    let (a, rep) = Appender::open_append(&dir, opts(64 << 20, false)).unwrap();
                    total += t0.elapsed();
                    black_box(rep);
                    drop(a);
                }
                total
            })
        });
        let name = if cold {
            "reader_open_tail_1GiB_cold"
        } else {
            "reader_open_tail_1GiB_warm"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if cold {
                        drop_cache(&dir);
                    }
                    let t0 = Instant::now();
                    let r = LogReader::open(&dir).unwrap();
                    black_box(r.tail());
                    total += t0.elapsed();
                }
                total
            })
        });
    }
    let r = LogReader::open(&dir).unwrap();
    eprintln!(
        "recovery log: {} segments, {} bytes on disk, {} events",
        r.segments(),
        r.disk_bytes(),
        r.tail().next_seq
    );
    g.finish();
}

fn bench_zstd(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/zstd");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    let t = tmp();
    let src = t.path().join("src");
    build_log(&src, (64u64 << 20) / 48, false); // one full segment, sealed, + a small one
    let seg0 = std::fs::read(src.join("seg-0000000000.log")).unwrap();
    let work = t.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    g.throughput(Throughput::Bytes(64 << 20));
    g.bench_function("compress_sealed_segment_64MiB_level3", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                std::fs::write(work.join("seg-0000000000.log"), &seg0).unwrap();
                let t0 = Instant::now();
                let n = compress_sealed_segment(&work, 0, 3).unwrap();
                total += t0.elapsed();
                black_box(n);
                std::fs::remove_file(work.join("seg-0000000000.zst")).unwrap();
            }
            total
        })
    });
    std::fs::write(work.join("seg-0000000000.log"), &seg0).unwrap();
    let size = compress_sealed_segment(&work, 0, 3).unwrap();
    eprintln!(
        "zstd level 3: 64 MiB segment -> {size} bytes (ratio {:.2})",
        (64u64 << 20) as f64 / size as f64
    );
    g.finish();
}

criterion_group!(
    benches,
    bench_append,
    bench_iterate,
    bench_checkpoint,
    bench_recovery,
    bench_zstd
);
criterion_main!(benches);
