//! Sorted result rows in constant memory: an external merge sort over the log.
//!
//! One pass over the log collects compact items (key, sequence number, and the
//! Reply fields, Banner bytes or Service strings) into a bounded chunk; a full
//! chunk is sorted, folded per key (latest Reply, first Banner, latest Service)
//! and spilled to a temporary run file; runs are merged k ways (in several passes
//! if there are many). Memory stays under the chunk budget whatever the log size.
//!
//! This module owns the spill format (private, temporary) and the merge. It never
//! writes inside the scan directory unless asked to (`SortOptions::tmp_dir`).

use crate::error::{Result, StoreError};
use crate::event::*;
use crate::project::{hostnames_of, make_row, reply_of, service_info, SummaryFold};
use crate::reader::{Entry, LogReader};
use crate::record::EventRef;
use crate::results::{ResultRow, ServiceInfo};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Tuning of [`sorted_rows_with`].
#[derive(Clone, Debug)]
pub struct SortOptions {
    /// Memory budget for the in-memory chunk, bytes (default 64 MiB).
    pub chunk_bytes: usize,
    /// Where spill files go (default: the system temp dir). They are removed when
    /// the iterator is dropped.
    pub tmp_dir: Option<PathBuf>,
    /// Most runs merged at once (default 64).
    pub fan_in: usize,
}

impl Default for SortOptions {
    fn default() -> Self {
        SortOptions {
            chunk_bytes: 64 << 20,
            tmp_dir: None,
            fan_in: 64,
        }
    }
}

/// Sort key: address bytes, protocol, port (big endian) — the order of
/// [`ResultRow::key`].
type SKey = [u8; 19];

fn skey(addr: &ArchivedAddr, proto: &ArchivedProtocol, port: u16) -> SKey {
    let mut k = [0u8; 19];
    k[..16].copy_from_slice(&addr.0);
    k[16] = Protocol::from(proto) as u8;
    k[17..].copy_from_slice(&port.to_be_bytes());
    k
}

fn unkey(k: &SKey) -> (Addr, Protocol, u16) {
    let mut a = [0u8; 16];
    a.copy_from_slice(&k[..16]);
    let proto = if k[16] == 0 {
        Protocol::Tcp
    } else {
        Protocol::Udp
    };
    (Addr(a), proto, u16::from_be_bytes([k[17], k[18]]))
}

/// What is known about one key: each part with the sequence number that decides it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Partial {
    reply: Option<(u64, Reply)>,
    banner: Option<(u64, Vec<u8>)>,
    service: Option<(u64, ServiceInfo)>,
}

impl Partial {
    /// Latest Reply wins, first Banner wins, latest Service wins.
    fn merge(&mut self, o: Partial) {
        if let Some(r) = o.reply {
            if self.reply.as_ref().is_none_or(|m| r.0 > m.0) {
                self.reply = Some(r);
            }
        }
        if let Some(b) = o.banner {
            if self.banner.as_ref().is_none_or(|m| b.0 < m.0) {
                self.banner = Some(b);
            }
        }
        if let Some(s) = o.service {
            if self.service.as_ref().is_none_or(|m| s.0 > m.0) {
                self.service = Some(s);
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.banner.as_ref().map_or(0, |b| b.1.len())
            + self.service.as_ref().map_or(0, |(_, s)| {
                s.name.len() + s.product.len() + s.version.len() + s.extra.len() + s.method.len()
            })
    }
}

// ---- run files: a private, temporary encoding ----

fn put_str(w: &mut impl Write, s: &[u8]) -> std::io::Result<()> {
    w.write_all(&(s.len() as u32).to_le_bytes())?;
    w.write_all(s)
}

fn write_item(w: &mut impl Write, k: &SKey, p: &Partial) -> std::io::Result<()> {
    w.write_all(k)?;
    let flags = p.reply.is_some() as u8
        | (p.banner.is_some() as u8) << 1
        | (p.service.is_some() as u8) << 2;
    w.write_all(&[flags])?;
    if let Some((seq, r)) = &p.reply {
        w.write_all(&seq.to_le_bytes())?;
        w.write_all(&[r.state as u8, r.reason as u8, r.ttl, r.icmp_code])?;
        w.write_all(&r.rtt_us.to_le_bytes())?;
        w.write_all(&r.time_us.to_le_bytes())?;
    }
    if let Some((seq, b)) = &p.banner {
        w.write_all(&seq.to_le_bytes())?;
        put_str(w, b)?;
    }
    if let Some((seq, s)) = &p.service {
        w.write_all(&seq.to_le_bytes())?;
        for f in [&s.name, &s.product, &s.version, &s.extra, &s.method] {
            put_str(w, f.as_bytes())?;
        }
        w.write_all(&s.confidence.to_le_bytes())?;
    }
    Ok(())
}

fn state_of(b: u8) -> PortState {
    [
        PortState::Open,
        PortState::Closed,
        PortState::Filtered,
        PortState::OpenFiltered,
    ][b as usize & 3]
}

fn reason_of(b: u8) -> Reason {
    [
        Reason::SynAck,
        Reason::Reset,
        Reason::IcmpUnreachable,
        Reason::PortUnreachable,
        Reason::UdpResponse,
        Reason::NoResponse,
        Reason::Connected,
        Reason::ConnRefused,
    ][b as usize & 7]
}

fn read_item(r: &mut impl Read) -> std::io::Result<Option<(SKey, Partial)>> {
    let mut k = [0u8; 19];
    match r.read_exact(&mut k) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut b1 = [0u8; 1];
    r.read_exact(&mut b1)?;
    let flags = b1[0];
    let mut u64b = [0u8; 8];
    let mut u32b = [0u8; 4];
    let mut rd_u64 = |r: &mut dyn Read| -> std::io::Result<u64> {
        r.read_exact(&mut u64b)?;
        Ok(u64::from_le_bytes(u64b))
    };
    let mut get_str = |r: &mut dyn Read| -> std::io::Result<Vec<u8>> {
        r.read_exact(&mut u32b)?;
        let mut v = vec![0u8; u32::from_le_bytes(u32b) as usize];
        r.read_exact(&mut v)?;
        Ok(v)
    };
    let (addr, proto, port) = unkey(&k);
    let mut p = Partial::default();
    if flags & 1 != 0 {
        let seq = rd_u64(r)?;
        let mut f = [0u8; 4];
        r.read_exact(&mut f)?;
        let mut rtt = [0u8; 4];
        r.read_exact(&mut rtt)?;
        let time = rd_u64(r)?;
        p.reply = Some((
            seq,
            Reply {
                addr,
                port,
                proto,
                state: state_of(f[0]),
                reason: reason_of(f[1]),
                ttl: f[2],
                icmp_code: f[3],
                rtt_us: u32::from_le_bytes(rtt),
                time_us: time,
            },
        ));
    }
    if flags & 2 != 0 {
        let seq = rd_u64(r)?;
        p.banner = Some((seq, get_str(r)?));
    }
    if flags & 4 != 0 {
        let seq = rd_u64(r)?;
        let mut f: Vec<String> = Vec::with_capacity(5);
        for _ in 0..5 {
            f.push(String::from_utf8_lossy(&get_str(r)?).into_owned());
        }
        let mut c = [0u8; 4];
        r.read_exact(&mut c)?;
        let method = f.pop().unwrap();
        let extra = f.pop().unwrap();
        let version = f.pop().unwrap();
        let product = f.pop().unwrap();
        let name = f.pop().unwrap();
        p.service = Some((
            seq,
            ServiceInfo {
                name,
                product,
                version,
                extra,
                confidence: f32::from_le_bytes(c),
                method,
            },
        ));
    }
    Ok(Some((k, p)))
}

struct Run {
    path: PathBuf,
    r: BufReader<File>,
    head: Option<(SKey, Partial)>,
}

impl Run {
    fn open(path: PathBuf) -> Result<Run> {
        let f = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
        let mut r = BufReader::with_capacity(64 << 10, f);
        let head = read_item(&mut r).map_err(|e| StoreError::io("read", &path, e))?;
        Ok(Run { path, r, head })
    }
    fn advance(&mut self) -> Result<()> {
        self.head = read_item(&mut self.r).map_err(|e| StoreError::io("read", &self.path, e))?;
        Ok(())
    }
}

struct HeapItem {
    key: SKey,
    run: usize,
}
impl PartialEq for HeapItem {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && self.run == o.run
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, o: &Self) -> Ordering {
        // min-heap on (key, run)
        o.key.cmp(&self.key).then(o.run.cmp(&self.run))
    }
}

/// k-way merge of runs, folding equal keys.
struct Merger {
    runs: Vec<Run>,
    heap: BinaryHeap<HeapItem>,
}

impl Merger {
    fn new(paths: Vec<PathBuf>) -> Result<Merger> {
        let mut runs = Vec::with_capacity(paths.len());
        let mut heap = BinaryHeap::new();
        for p in paths {
            let r = Run::open(p)?;
            if let Some((k, _)) = &r.head {
                heap.push(HeapItem {
                    key: *k,
                    run: runs.len(),
                });
            }
            runs.push(r);
        }
        Ok(Merger { runs, heap })
    }

    fn next_group(&mut self) -> Result<Option<(SKey, Partial)>> {
        let Some(top) = self.heap.pop() else {
            return Ok(None);
        };
        let key = top.key;
        let mut acc = Partial::default();
        let mut idx = Some(top.run);
        while let Some(i) = idx {
            let run = &mut self.runs[i];
            let (_, p) = run.head.take().unwrap();
            acc.merge(p);
            run.advance()?;
            if let Some((k, _)) = &run.head {
                self.heap.push(HeapItem { key: *k, run: i });
            }
            idx = match self.heap.peek() {
                Some(h) if h.key == key => Some(self.heap.pop().unwrap().run),
                _ => None,
            };
        }
        Ok(Some((key, acc)))
    }
}

enum Source {
    Memory(std::vec::IntoIter<(SKey, Partial)>),
    Merge(Merger),
}

/// Iterator over result rows sorted by (address, protocol, port); see
/// [`sorted_rows`]. Owns its spill files and removes them when dropped.
pub struct SortedRows {
    src: Source,
    hostnames: HashMap<Addr, String>,
    _tmp: Option<tempfile::TempDir>,
    spilled_runs: usize,
    failed: bool,
}

impl SortedRows {
    /// Number of run files spilled to disk (0: everything fit in memory).
    pub fn spilled_runs(&self) -> usize {
        self.spilled_runs
    }
}

impl Iterator for SortedRows {
    type Item = Result<ResultRow>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let item = match &mut self.src {
                Source::Memory(it) => it.next(),
                Source::Merge(m) => match m.next_group() {
                    Ok(x) => x,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                },
            };
            let (k, p) = item?;
            if let Some((_, r)) = &p.reply {
                let key = unkey(&k);
                return Some(Ok(make_row(
                    key,
                    r,
                    p.service.map(|s| s.1),
                    p.banner.map(|b| b.1),
                    &self.hostnames,
                )));
            }
        }
    }
}

struct Chunk {
    items: Vec<(SKey, u64, Partial)>,
    bytes: usize,
}

impl Chunk {
    /// Sort by key then sequence, fold equal keys.
    fn fold(&mut self) -> Vec<(SKey, Partial)> {
        let mut items = std::mem::take(&mut self.items);
        self.bytes = 0;
        items.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out: Vec<(SKey, Partial)> = Vec::new();
        for (k, _, p) in items {
            match out.last_mut() {
                Some((lk, acc)) if *lk == k => acc.merge(p),
                _ => out.push((k, p)),
            }
        }
        out
    }
}

fn spill(dir: &Path, n: usize, items: &[(SKey, Partial)]) -> Result<PathBuf> {
    let path = dir.join(format!("run-{n:06}"));
    let f = File::create(&path).map_err(|e| StoreError::io("create", &path, e))?;
    let mut w = BufWriter::with_capacity(256 << 10, f);
    for (k, p) in items {
        write_item(&mut w, k, p).map_err(|e| StoreError::io("write", &path, e))?;
    }
    w.flush().map_err(|e| StoreError::io("write", &path, e))?;
    Ok(path)
}

/// All result rows of the log, sorted by (address, protocol, port), the latest
/// Reply per key with the latest Service and the first Banner of that key, the
/// host name from the spec's resolved names. Streams in constant memory
/// (64 MiB chunks, spill files in the system temp dir).
pub fn sorted_rows(reader: &LogReader) -> Result<SortedRows> {
    sorted_rows_with(reader, &SortOptions::default())
}

/// [`sorted_rows`] with explicit memory budget and spill directory.
pub fn sorted_rows_with(reader: &LogReader, opts: &SortOptions) -> Result<SortedRows> {
    sorted_rows_inner(reader, opts, None)
}

/// The summary ([`crate::summarize`]) and the sorted rows ([`sorted_rows_with`])
/// in one pass over the log: each compressed segment is decompressed once.
pub fn summary_and_sorted_rows(
    reader: &LogReader,
    opts: &SortOptions,
) -> Result<(crate::ScanSummary, SortedRows)> {
    let mut fold = SummaryFold::default();
    let rows = sorted_rows_inner(reader, opts, Some(&mut fold))?;
    Ok((fold.finish(reader, None)?, rows))
}

fn sorted_rows_inner(
    reader: &LogReader,
    opts: &SortOptions,
    mut fold: Option<&mut SummaryFold>,
) -> Result<SortedRows> {
    let item_size = std::mem::size_of::<(SKey, u64, Partial)>();
    let mut chunk = Chunk {
        items: Vec::new(),
        bytes: 0,
    };
    let mut hostnames = HashMap::new();
    let mut tmp: Option<tempfile::TempDir> = None;
    let mut runs: Vec<PathBuf> = Vec::new();
    let base = opts.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let flush = |chunk: &mut Chunk,
                 tmp: &mut Option<tempfile::TempDir>,
                 runs: &mut Vec<PathBuf>|
     -> Result<()> {
        let folded = chunk.fold();
        if tmp.is_none() {
            *tmp = Some(
                tempfile::Builder::new()
                    .prefix("prtip-sort-")
                    .tempdir_in(&base)
                    .map_err(|e| StoreError::io("create temp dir in", &base, e))?,
            );
        }
        let p = spill(tmp.as_ref().unwrap().path(), runs.len(), &folded)?;
        runs.push(p);
        Ok(())
    };
    reader.visit(|e: Entry<'_>| -> Result<()> {
        if let Some(f) = fold.as_deref_mut() {
            f.apply(&e);
        }
        let (k, p) = match e.event {
            EventRef::ScanStarted(s) => {
                for (a, n) in hostnames_of(s) {
                    hostnames.entry(a).or_insert(n);
                }
                return Ok(());
            }
            EventRef::Reply(r) => (
                skey(&r.addr, &r.proto, r.port.to_native()),
                Partial {
                    reply: Some((e.seq, reply_of(r))),
                    ..Default::default()
                },
            ),
            EventRef::Banner(b) => (
                skey(&b.addr, &b.proto, b.port.to_native()),
                Partial {
                    banner: Some((e.seq, b.bytes.as_slice().to_vec())),
                    ..Default::default()
                },
            ),
            EventRef::Service(s) => (
                skey(&s.addr, &s.proto, s.port.to_native()),
                Partial {
                    service: Some((e.seq, service_info(s))),
                    ..Default::default()
                },
            ),
            _ => return Ok(()),
        };
        chunk.bytes += item_size + p.heap_bytes();
        chunk.items.push((k, e.seq, p));
        if chunk.bytes >= opts.chunk_bytes {
            flush(&mut chunk, &mut tmp, &mut runs)?;
        }
        Ok(())
    })?;
    if runs.is_empty() {
        let folded = chunk.fold();
        return Ok(SortedRows {
            src: Source::Memory(folded.into_iter()),
            hostnames,
            _tmp: None,
            spilled_runs: 0,
            failed: false,
        });
    }
    if !chunk.items.is_empty() {
        flush(&mut chunk, &mut tmp, &mut runs)?;
    }
    let spilled_runs = runs.len();
    let dir = tmp.as_ref().unwrap().path().to_path_buf();
    // Merge in passes until at most fan_in runs remain.
    let fan_in = opts.fan_in.max(2);
    let mut next_name = runs.len();
    while runs.len() > fan_in {
        let mut merged = Vec::new();
        for group in runs.chunks(fan_in) {
            let mut m = Merger::new(group.to_vec())?;
            let path = dir.join(format!("run-{next_name:06}"));
            next_name += 1;
            let f = File::create(&path).map_err(|e| StoreError::io("create", &path, e))?;
            let mut w = BufWriter::with_capacity(256 << 10, f);
            while let Some((k, p)) = m.next_group()? {
                write_item(&mut w, &k, &p).map_err(|e| StoreError::io("write", &path, e))?;
            }
            w.flush().map_err(|e| StoreError::io("write", &path, e))?;
            for old in group {
                let _ = std::fs::remove_file(old);
            }
            merged.push(path);
        }
        runs = merged;
    }
    Ok(SortedRows {
        src: Source::Merge(Merger::new(runs)?),
        hostnames,
        _tmp: tmp,
        spilled_runs,
        failed: false,
    })
}
