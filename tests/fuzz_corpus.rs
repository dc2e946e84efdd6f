//! The fuzz targets on the stable toolchain: every file of the checked-in seed
//! corpus (`fuzz/corpus/<target>/seed-*`) and a bounded, seeded set of
//! mutations of each go through the same harness functions the cargo-fuzz
//! targets call (`fuzz/src/lib.rs`). A panic is a finding; long runs with
//! libFuzzer are described in docs/fuzzing.md.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};

/// Mutations tried per seed file (deterministic: the same every run).
const MUTATIONS: usize = 200;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seed-"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// xorshift64*: a tiny deterministic generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One libFuzzer-style mutation: flip a bit, set a byte to an interesting
/// value, insert or delete a run, duplicate a slice, or splice in another seed.
fn mutate(rng: &mut Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = [0, 1, 0x7f, 0x80, 0xff, b'(', b'-', b','][rng.below(8)];
            }
            2 => {
                let i = rng.below(d.len() + 1);
                let n = 1 + rng.below(16);
                let b = rng.next() as u8;
                d.splice(i..i, std::iter::repeat_n(b, n));
            }
            3 if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = (1 + rng.below(64)).min(d.len() - i);
                d.drain(i..i + n);
            }
            4 if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = (1 + rng.below(32)).min(d.len() - i);
                let piece = d[i..i + n].to_vec();
                let j = rng.below(d.len() + 1);
                d.splice(j..j, piece);
            }
            _ if !other.is_empty() => {
                let i = rng.below(other.len());
                let n = (1 + rng.below(64)).min(other.len() - i);
                let j = rng.below(d.len() + 1);
                d.splice(j..j, other[i..i + n].iter().copied());
            }
            _ => {}
        }
    }
    d
}

fn run(target: &str) {
    let f = harness::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, f)| *f)
        .unwrap();
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "no seeds in fuzz/corpus/{target}");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for (i, (name, data)) in seeds.iter().enumerate() {
        f(data);
        let other = &seeds[(i + 1) % seeds.len()].1;
        for m in 0..MUTATIONS {
            let input = mutate(&mut rng, data, other);
            let r = std::panic::catch_unwind(|| f(&input));
            if r.is_err() {
                let path = std::env::temp_dir().join(format!("prtip-fuzz-{target}-{name}-{m}"));
                std::fs::write(&path, &input).unwrap();
                panic!(
                    "fuzz target {target}: mutation {m} of {name} panicked; input saved to {} \
                     (replay: cd fuzz && cargo fuzz run {target} {})",
                    path.display(),
                    path.display()
                );
            }
        }
    }
}

#[test]
fn fuzz_log_reader_corpus() {
    run("log_reader");
}

#[test]
fn fuzz_classify_corpus() {
    // The seeds of real replies reach the state mapping behind the cookie check.
    for (name, data) in seeds("classify") {
        let want = !(name.contains("arp") || name.contains("raw-"));
        assert_eq!(harness::classify_reply(&data), want, "{name}");
    }
    run("classify");
}

#[test]
fn fuzz_targets_corpus() {
    run("targets");
}

#[test]
fn fuzz_ports_corpus() {
    run("ports");
}

#[test]
fn fuzz_filter_corpus() {
    run("filter");
}

#[test]
fn fuzz_service_probes_corpus() {
    run("service_probes");
}

/// Every target in the harness has a corpus and a cargo-fuzz target file.
#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, _) in harness::TARGETS {
        assert!(!seeds(name).is_empty(), "{name}: no seeds");
        assert!(
            root.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "{name}: no fuzz_targets/{name}.rs"
        );
    }
}

#[path = "../store/tests/common/mod.rs"]
#[allow(dead_code)]
mod store_common;

/// Regenerate the log seeds (`cargo test --test fuzz_corpus -- --ignored`):
/// segment 0 of small real logs, raw (first byte 0) and zstd-compressed as the
/// store compresses sealed segments (first byte 1).
#[test]
#[ignore]
fn write_log_seeds() {
    use prtip_store::{EventSink, LogOptions, LogWriter};
    use store_common::*;
    let out = corpus_dir("log_reader");
    std::fs::create_dir_all(&out).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (name, events, finish) in [("small", 4u64, true), ("unfinished", 10, false)] {
        let d = tmp.path().join(name);
        let opts = LogOptions {
            segment_bytes: 1 << 20,
            prefault: false,
            compress_sealed: false,
            ..Default::default()
        };
        let w = LogWriter::create(&d, opts).unwrap();
        let mut s = w.sink();
        s.push(started(1)).unwrap();
        for i in 0..events {
            s.push(event(i)).unwrap();
        }
        s.checkpoint(checkpoint(events)).unwrap();
        drop(s);
        if finish {
            w.finish().unwrap();
        } else {
            // A writer that never finishes: what a crash leaves.
            std::mem::forget(w);
        }
        let seg = std::fs::read(d.join("seg-0000000000.log")).unwrap();
        // Trailing zeros of the preallocated segment add nothing for the fuzzer.
        let end = seg.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        let mut raw = vec![0u8];
        raw.extend_from_slice(&seg[..end.div_ceil(8) * 8]);
        std::fs::write(out.join(format!("seed-{name}-raw")), raw).unwrap();
    }
    // A sealed, compressed segment 0: a log that rolled over to segment 1.
    let d = tmp.path().join("rolled");
    let opts = LogOptions {
        segment_bytes: 1 << 20,
        prefault: false,
        ..Default::default()
    };
    let w = LogWriter::create(&d, opts).unwrap();
    let mut s = w.sink();
    s.push(started(1)).unwrap();
    let mut i = 0;
    while !d.join("seg-0000000001.log").exists() {
        s.push(event(i)).unwrap();
        i += 1;
        if i % 1000 == 0 {
            s.checkpoint(checkpoint(i)).unwrap();
        }
    }
    drop(s);
    w.finish().unwrap();
    let mut zst = vec![1u8];
    zst.extend(std::fs::read(d.join("seg-0000000000.zst")).unwrap());
    std::fs::write(out.join("seed-rolled-zst"), zst).unwrap();
}
