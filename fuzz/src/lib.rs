//! prtip's fuzz harness: one function per fuzz target, each taking arbitrary
//! bytes and driving a real parser or reader of prtip with them.
//!
//! The same functions run in two places: the cargo-fuzz targets in
//! `fuzz_targets/` (libFuzzer, for long runs: see docs/fuzzing.md) and the
//! stable test `tests/fuzz_corpus.rs` of the main workspace, which feeds every
//! file of the checked-in corpus (`fuzz/corpus/<target>/`) plus a bounded,
//! seeded set of mutations of each to them. A function returns normally for
//! any input; a panic (or a crash under libFuzzer) is a finding.
//!
//! This file never depends on libFuzzer, so the stable suite can include it
//! with `#[path]`.

use std::net::{IpAddr, Ipv4Addr};

/// A harness function: arbitrary bytes in, a panic if something is wrong.
pub type Harness = fn(&[u8]);

/// The fuzz targets, by name (the directory names under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Harness)] = &[
    ("log_reader", log_reader),
    ("classify", classify),
    ("targets", targets),
    ("ports", ports),
    ("filter", filter),
    ("service_probes", service_probes),
];

/// The log reader and recovery on arbitrary segment bytes: `data` becomes
/// segment 0 of a log (raw, or zstd-compressed when the first byte is odd),
/// which is read entry by entry, summarized, and then opened for appending
/// (recovery). A log that recovery accepts must afterwards read back without
/// an error, with one more event than it read before.
pub fn log_reader(data: &[u8]) {
    use prtip_store::{EventSink, LogOptions, LogReader, LogWriter};
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let name = if mode & 1 == 1 {
        "seg-0000000000.zst"
    } else {
        "seg-0000000000.log"
    };
    std::fs::write(dir.path().join(name), bytes).expect("write segment");
    if let Ok(r) = LogReader::open(dir.path()) {
        for e in r.entries() {
            match e {
                Ok(e) => {
                    let _ = e.event.to_event();
                }
                Err(_) => break,
            }
        }
        let _ = r.tail();
        let _ = prtip_store::summarize_lenient(&r);
        let _ = prtip_store::summarize(&r);
    }
    let opts = LogOptions {
        segment_bytes: 1 << 20,
        compress_sealed: false,
        prefault: false,
        ..Default::default()
    };
    let Ok((w, _report)) = LogWriter::open_append(dir.path(), opts) else {
        return;
    };
    let mut sink = w.sink();
    let pushed = sink.checkpoint(checkpoint()).is_ok();
    drop(sink);
    if w.finish().is_err() || !pushed {
        return;
    }
    // Recovery accepted the log: everything in it reads back.
    let r = LogReader::open(dir.path()).expect("a recovered log opens");
    for e in r.entries() {
        let e = e.expect("a recovered log reads without error");
        let _ = e.event.to_event();
    }
}

fn checkpoint() -> prtip_store::event::Checkpoint {
    prtip_store::event::Checkpoint {
        next_index: 1,
        counters: Default::default(),
        time_us: 1,
    }
}

/// The reply classifier on arbitrary frames. With the first byte odd, the
/// frame is first made to pass the checks a random frame never passes (the
/// destination address and the SipHash cookie of a TCP or UDP reply, the
/// quoted source of an ICMP error), so the state mapping behind them is
/// reached too. A reply names the address the frame is about.
pub fn classify(data: &[u8]) {
    classify_reply(data);
}

/// [`classify`], returning whether the frame was classified as a reply (the
/// seeds of real replies must be, or the fix-up is not doing its job).
pub fn classify_reply(data: &[u8]) -> bool {
    use prtip_engine::backend::FrameParams;
    use prtip_engine::classify::Classified;
    use prtip_engine::cookie::Cookies;
    use prtip_engine::probe::ProbeSet;
    let Some((&mode, frame)) = data.split_first() else {
        return false;
    };
    let ours = Ipv4Addr::new(198, 18, 0, 1);
    let cookies = Cookies::new(0x5eed);
    let mut f = frame.to_vec();
    if mode & 1 == 1 {
        fix_up(&mut f, ours, &cookies);
    }
    let probes = ProbeSet::new(&FrameParams {
        src_ip: ours,
        ..FrameParams::default()
    });
    if let Classified::Reply(v) = probes.classify(&f, &cookies) {
        // The address a reply is about: the sender of a TCP/UDP reply, the
        // quoted destination of an ICMP error.
        let about = if f[23] == 1 {
            let q = 14 + usize::from(f[14] & 0x0f) * 4 + 8;
            &f[q + 16..q + 20]
        } else {
            &f[26..30]
        };
        assert_eq!(
            v.addr,
            std::net::IpAddr::from(<[u8; 4]>::try_from(about).expect("4 bytes")),
            "the reply's address"
        );
        return true;
    }
    false
}

/// Patch an Ethernet + IPv4 frame so that it is addressed to `ours` and carries
/// the right cookie (offsets as on the wire; nothing is patched past the end).
fn fix_up(f: &mut [u8], ours: Ipv4Addr, cookies: &prtip_engine::cookie::Cookies) {
    use prtip_store::event::Protocol;
    if f.len() < 34 {
        return;
    }
    f[12] = 0x08;
    f[13] = 0x00;
    f[30..34].copy_from_slice(&ours.octets());
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let l4 = 14 + ihl.max(20);
    let src = IpAddr::V4(Ipv4Addr::new(f[26], f[27], f[28], f[29]));
    match f[23] {
        6 if f.len() >= l4 + 20 => {
            let sport = u16::from_be_bytes([f[l4], f[l4 + 1]]);
            let c = cookies.cookie(src, sport, Protocol::Tcp);
            f[l4 + 2..l4 + 4].copy_from_slice(&c.sport.to_be_bytes());
            f[l4 + 8..l4 + 12].copy_from_slice(&c.seq.wrapping_add(1).to_be_bytes());
        }
        17 if f.len() >= l4 + 8 => {
            let sport = u16::from_be_bytes([f[l4], f[l4 + 1]]);
            let c = cookies.cookie(src, sport, Protocol::Udp);
            f[l4 + 2..l4 + 4].copy_from_slice(&c.sport.to_be_bytes());
        }
        1 if f.len() >= l4 + 8 + 28 => {
            // The quoted probe: from us, to the quoted destination.
            let q = l4 + 8;
            f[q + 12..q + 16].copy_from_slice(&ours.octets());
            let qihl = usize::from(f[q] & 0x0f) * 4;
            let ql4 = q + qihl.max(20);
            if f.len() >= ql4 + 8 {
                let dst = IpAddr::V4(Ipv4Addr::new(f[q + 16], f[q + 17], f[q + 18], f[q + 19]));
                let dport = u16::from_be_bytes([f[ql4 + 2], f[ql4 + 3]]);
                let proto = if f[q + 9] == 17 {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                };
                let c = cookies.cookie(dst, dport, proto);
                f[ql4..ql4 + 2].copy_from_slice(&c.sport.to_be_bytes());
                if proto == Protocol::Tcp {
                    f[ql4 + 4..ql4 + 8].copy_from_slice(&c.seq.to_be_bytes());
                } else {
                    // A UDP probe carries its cookie in the IPv4 identification.
                    f[q + 4..q + 6].copy_from_slice(&(c.seq as u16).to_be_bytes());
                }
            }
        }
        _ => {}
    }
}

/// The target parser: every whitespace-separated token alone, then the whole
/// list as `-iL` would give it (names resolve to an error: nothing leaves the
/// machine). A built set's size is the sum of its ranges.
pub fn targets(data: &[u8]) {
    use prtip_engine::targets::{parse_token, TargetSet};
    let text = String::from_utf8_lossy(data);
    let tokens: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    for t in &tokens {
        let _ = parse_token(t);
    }
    let (inc, exc) = tokens.split_at(tokens.len() / 2 + tokens.len() % 2);
    let mut no_dns = |_: &str| Err("no resolution while fuzzing".to_string());
    if let Ok(set) = TargetSet::build(inc, exc, &mut no_dns) {
        let n = set.len();
        if n > 0 {
            assert!(set.get(0).is_some());
            assert!(set.get(n - 1).is_some());
        }
        assert!(set.get(n).is_none());
    }
}

/// The port parser (`-p`): a list that parses prints a canonical form that
/// parses back to the same list.
pub fn ports(data: &[u8]) {
    use prtip_engine::ports::PortList;
    use prtip_store::event::Protocol;
    let text = String::from_utf8_lossy(data);
    if let Ok(p) = PortList::parse(&text, Protocol::Tcp) {
        let canon = p.canonical();
        let again = PortList::parse(&canon, Protocol::Tcp)
            .unwrap_or_else(|e| panic!("canonical form {canon:?} does not parse: {e}"));
        assert_eq!(again, p, "{text:?} -> {canon:?}");
    }
}

/// The filter parser: a filter that parses has a source that parses again.
pub fn filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(f) = prtip_filter::Filter::parse(&text) {
        prtip_filter::Filter::parse(f.source()).expect("a filter's source parses");
    }
}

/// The nmap-service-probes parser; a database that loads is matched against
/// the input itself as a response to each of its probes.
pub fn service_probes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(db) = prtip_services::ProbeDb::from_nmap_str(&text, "fuzz") {
        for p in db.probes.iter().take(8) {
            let _ = db.match_response(p, data);
        }
    }
}
