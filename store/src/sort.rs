//! Sorted result rows in constant memory: an external merge sort over the log.
//!
//! One pass over the log collects fixed-size items (40 bytes: a 24-byte key, then
//! the Reply fields, or where a Banner's bytes or a Service's strings lie in the
//! chunk's byte arena) into a chunk of bounded size: no heap allocation per item.
//! A full chunk goes to a spilling thread, which sorts it in place, folds it per
//! key (latest Reply, first Banner, latest Service) and writes it to a temporary
//! run file, with a second, small run of each key's latest port state (for the
//! summary's open ports and hosts), while the next chunk fills (two chunks of half
//! the budget each). Runs are merged k ways (in several passes if there are many);
//! later runs hold later events, so the run order decides between equal keys. The
//! final merge runs on a thread of its own and hands rows over in batches. Memory
//! stays under the budget whatever the log size; a log that fits in one chunk is
//! sorted in memory without threads or files.
//!
//! This module owns the spill format (private, temporary) and the merge. It never
//! writes inside the scan directory unless asked to (`SortOptions::tmp_dir`).

use crate::error::{Result, StoreError};
use crate::event::*;
use crate::project::{hostnames_of, SummaryFold};
use crate::reader::{Entry, LogReader};
use crate::record::EventRef;
use crate::results::{ResultRow, ServiceInfo};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Tuning of [`sorted_rows_with`].
#[derive(Clone, Debug)]
pub struct SortOptions {
    /// Memory budget for the in-memory chunks (items and their banner/service
    /// bytes; two chunks of half of it), bytes (default 8 MiB: a reader stays inside
    /// the scan's 16 MiB anonymous-memory budget, issue 17). A log that does
    /// not fit in one chunk spills to run files.
    pub chunk_bytes: usize,
    /// Where spill files go (default: the system temp dir). They are removed when
    /// the iterator is dropped.
    pub tmp_dir: Option<PathBuf>,
    /// Most runs merged at once (default 64).
    pub fan_in: usize,
    /// Silent ports as rows ([`crate::Silence`]): `None` (default) when the log
    /// covers at most [`crate::SILENT_ROWS_MAX`] ports, `Some(true)` always,
    /// `Some(false)` never.
    pub silent_rows: Option<bool>,
}

impl Default for SortOptions {
    fn default() -> Self {
        SortOptions {
            chunk_bytes: 8 << 20,
            tmp_dir: None,
            fan_in: 64,
            silent_rows: None,
        }
    }
}

/// Sort key: the address as two big-endian words, then protocol (bits 56..64) and
/// port (bits 40..56) of the third word — the order of [`ResultRow::key`]. In a
/// chunk the low 40 bits of the third word number the items in log order; in run
/// files they are zero.
type Key = [u64; 3];

const ORD_BITS: u32 = 40;

fn key_of(addr: &ArchivedAddr, proto: &ArchivedProtocol, port: u16) -> Key {
    let a = &addr.0;
    let hi = u64::from_be_bytes(a[..8].try_into().expect("8 bytes"));
    let lo = u64::from_be_bytes(a[8..].try_into().expect("8 bytes"));
    let p = Protocol::from(proto) as u64;
    [hi, lo, p << 56 | u64::from(port) << ORD_BITS]
}

/// The key without its arrival number.
#[inline]
fn bare(k: &Key) -> Key {
    [k[0], k[1], k[2] >> ORD_BITS << ORD_BITS]
}

fn unkey(k: &Key) -> (Addr, Protocol, u16) {
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&k[0].to_be_bytes());
    a[8..].copy_from_slice(&k[1].to_be_bytes());
    let proto = match k[2] >> 56 {
        0 => Protocol::Tcp,
        1 => Protocol::Udp,
        _ => Protocol::Host,
    };
    (Addr(a), proto, (k[2] >> ORD_BITS) as u16)
}

/// The fields of a Reply a row keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ReplyPart {
    time_us: u64,
    rtt_us: u32,
    state: u8,
    reason: u8,
    ttl: u8,
}

fn state_of(b: u8) -> PortState {
    [
        PortState::Open,
        PortState::Closed,
        PortState::Filtered,
        PortState::OpenFiltered,
        PortState::Unfiltered,
    ][(b as usize & 7).min(4)]
}

/// Every [`Reason`] in discriminant order (the byte a spill item stores).
const REASONS: [Reason; 13] = [
    Reason::SynAck,
    Reason::Reset,
    Reason::IcmpUnreachable,
    Reason::PortUnreachable,
    Reason::UdpResponse,
    Reason::NoResponse,
    Reason::Connected,
    Reason::ConnRefused,
    Reason::EchoReply,
    Reason::TimestampReply,
    Reason::AddressMaskReply,
    Reason::ArpResponse,
    Reason::NdResponse,
];

fn reason_of(b: u8) -> Reason {
    REASONS[b as usize % REASONS.len()]
}

const OPEN: u8 = PortState::Open as u8;

const REPLY: u8 = 0;
const BANNER: u8 = 1;
const SERVICE: u8 = 2;

/// One event in a chunk: 40 bytes, no heap. For a Reply `a` is the time, `b` the
/// RTT; for a Banner or Service `a` is the offset of its bytes in the chunk's arena
/// and `b` their length.
#[derive(Clone, Copy, Debug)]
struct Item {
    key: Key,
    a: u64,
    b: u32,
    kind: u8,
    state: u8,
    reason: u8,
    ttl: u8,
}

impl Item {
    fn reply(&self) -> ReplyPart {
        ReplyPart {
            time_us: self.a,
            rtt_us: self.b,
            state: self.state,
            reason: self.reason,
            ttl: self.ttl,
        }
    }
    fn bytes<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.a as usize..self.a as usize + self.b as usize]
    }
}

// ---- service strings as bytes: five (u32 LE length, UTF-8) strings, then the
// confidence (f32 LE); in the chunk's arena and in run files ----

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

fn encode_service(out: &mut Vec<u8>, s: &ArchivedService) {
    for f in [&s.name, &s.product, &s.version, &s.extra, &s.method] {
        put_str(out, f.as_bytes());
    }
    out.extend_from_slice(&s.confidence.to_native().to_le_bytes());
}

fn service_len(s: &ArchivedService) -> usize {
    20 + 4 + s.name.len() + s.product.len() + s.version.len() + s.extra.len() + s.method.len()
}

fn decode_service(mut b: &[u8]) -> ServiceInfo {
    let mut take = || {
        let n = b.get(..4).map_or(0, |l| {
            u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize
        });
        let s = b.get(4..4 + n).unwrap_or_default();
        let s = match std::str::from_utf8(s) {
            Ok(s) => s.to_string(),
            Err(_) => String::from_utf8_lossy(s).into_owned(),
        };
        b = b.get(4 + n..).unwrap_or_default();
        s
    };
    let (name, product, version, extra, method) = (take(), take(), take(), take(), take());
    let confidence = b
        .get(..4)
        .map_or(0.0, |c| f32::from_le_bytes(c.try_into().expect("4 bytes")));
    ServiceInfo {
        name,
        product,
        version,
        extra,
        confidence,
        method,
    }
}

// ---- open ports and hosts, counted from keys in sorted order ----

/// Keys whose latest state is open, and the distinct addresses among them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OpenCounts {
    /// (address, protocol, port) whose latest Reply says open.
    pub(crate) ports: u64,
    /// Distinct addresses among them.
    pub(crate) hosts: u64,
    /// Keys per latest state, indexed by [`PortState`] as `usize`.
    pub(crate) states: [u64; 5],
    /// Keys with a Reply that the silence space covers, `[tcp, udp]` (zero without
    /// a space: see `Sorter::set_space`).
    pub(crate) covered: [u64; 2],
    /// Host discovery results among the keys, `[up, down]` (also counted in
    /// `states`; not in `ports` and `hosts`: a host up is no open port).
    pub(crate) host_rows: [u64; 2],
}

#[derive(Default)]
struct OpenCounter<'a> {
    counts: OpenCounts,
    last: Option<(u64, u64)>,
    space: Option<&'a crate::space::Space>,
}

impl OpenCounter<'_> {
    /// Keys must come in sorted order, each once, with its latest state.
    #[inline]
    fn add(&mut self, k: &Key, state: u8) {
        if let Some(n) = self.counts.states.get_mut(usize::from(state)) {
            *n += 1;
        }
        let host_row = k[2] >> 56 >= 2;
        if host_row {
            self.counts.host_rows[usize::from(state != OPEN)] += 1;
        }
        if let Some(space) = self.space {
            let (a, p, port) = unkey(k);
            if space.silent_state(a, p, port).is_some() {
                self.counts.covered[p as usize] += 1;
            }
        }
        if state == OPEN && !host_row {
            self.counts.ports += 1;
            if self.last != Some((k[0], k[1])) {
                self.counts.hosts += 1;
                self.last = Some((k[0], k[1]));
            }
        }
    }
}

// ---- folding a sorted chunk ----

/// What one key's items in a sorted chunk (or its records in several runs) fold to.
#[derive(Clone, Copy, Default)]
struct Folded<'a> {
    reply: Option<ReplyPart>,
    banner: Option<&'a [u8]>,
    service: Option<&'a [u8]>,
}

/// The items of the key at `items[0]` (all sharing it come first): latest Reply,
/// first Banner, latest Service; and how many items that was.
#[inline]
fn fold_items<'a>(items: &[Item], arena: &'a [u8]) -> (Folded<'a>, usize) {
    let k = bare(&items[0].key);
    let mut f = Folded::default();
    let mut n = 0;
    for it in items {
        if bare(&it.key) != k {
            break;
        }
        n += 1;
        match it.kind {
            REPLY => f.reply = Some(it.reply()),
            BANNER => {
                if f.banner.is_none() {
                    f.banner = Some(it.bytes(arena));
                }
            }
            _ => f.service = Some(it.bytes(arena)),
        }
    }
    (f, n)
}

fn make_row(
    k: &Key,
    r: &ReplyPart,
    service: Option<&[u8]>,
    banner: Option<&[u8]>,
    hostnames: &HashMap<Addr, String>,
) -> ResultRow {
    let (addr, proto, port) = unkey(k);
    ResultRow {
        addr,
        hostname: if hostnames.is_empty() {
            None
        } else {
            hostnames.get(&addr).cloned()
        },
        port,
        proto,
        state: state_of(r.state),
        reason: reason_of(r.reason),
        ttl: r.ttl,
        rtt_us: r.rtt_us,
        time_us: r.time_us,
        service: service.map(decode_service),
        banner: banner.map(<[u8]>::to_vec),
    }
}

// ---- run files: a private, temporary encoding ----
//
// Row runs: key (3 × u64 LE), flags (1 reply, 2 banner, 4 service), then the
// reply (time u64, rtt u32, state, reason, ttl), the banner (u32 length, bytes),
// the service (u32 length, encoded as above). State runs: key with the latest
// state in the low byte of its third word.

fn write_row_rec(
    w: &mut impl Write,
    scratch: &mut Vec<u8>,
    k: &Key,
    f: &Folded<'_>,
) -> std::io::Result<()> {
    scratch.clear();
    for x in k {
        scratch.extend_from_slice(&x.to_le_bytes());
    }
    let flags = f.reply.is_some() as u8
        | (f.banner.is_some() as u8) << 1
        | (f.service.is_some() as u8) << 2;
    scratch.push(flags);
    if let Some(r) = &f.reply {
        scratch.extend_from_slice(&r.time_us.to_le_bytes());
        scratch.extend_from_slice(&r.rtt_us.to_le_bytes());
        scratch.extend_from_slice(&[r.state, r.reason, r.ttl]);
    }
    if let Some(b) = f.banner {
        put_str(scratch, b);
    }
    if let Some(s) = f.service {
        put_str(scratch, s);
    }
    w.write_all(scratch)
}

fn write_state_rec(w: &mut impl Write, k: &Key, state: u8) -> std::io::Result<()> {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&k[0].to_le_bytes());
    b[8..16].copy_from_slice(&k[1].to_le_bytes());
    b[16..].copy_from_slice(&(k[2] | u64::from(state)).to_le_bytes());
    w.write_all(&b)
}

/// Reads the next key; `Ok(false)` at a clean end of file.
fn read_key(r: &mut impl Read, k: &mut Key) -> std::io::Result<bool> {
    let mut b = [0u8; 24];
    let mut got = 0;
    while got < b.len() {
        match r.read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    for (i, x) in k.iter_mut().enumerate() {
        *x = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    Ok(true)
}

fn read_bytes(r: &mut impl Read, into: &mut Vec<u8>) -> std::io::Result<()> {
    let mut l = [0u8; 4];
    r.read_exact(&mut l)?;
    into.clear();
    into.resize(u32::from_le_bytes(l) as usize, 0);
    r.read_exact(into)
}

/// One record of a run file, its buffers reused from record to record.
trait Rec: Default {
    /// Reads the next record into `self`; `Ok(false)` at the end of the run.
    fn read(&mut self, r: &mut impl Read) -> std::io::Result<bool>;
    fn key(&self) -> &Key;
}

#[derive(Default)]
struct RowRec {
    key: Key,
    reply: Option<ReplyPart>,
    has_banner: bool,
    banner: Vec<u8>,
    has_service: bool,
    service: Vec<u8>,
}

impl Rec for RowRec {
    fn read(&mut self, r: &mut impl Read) -> std::io::Result<bool> {
        if !read_key(r, &mut self.key)? {
            return Ok(false);
        }
        let mut f = [0u8; 1];
        r.read_exact(&mut f)?;
        let flags = f[0];
        self.reply = if flags & 1 != 0 {
            let mut b = [0u8; 15];
            r.read_exact(&mut b)?;
            Some(ReplyPart {
                time_us: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
                rtt_us: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
                state: b[12],
                reason: b[13],
                ttl: b[14],
            })
        } else {
            None
        };
        self.has_banner = flags & 2 != 0;
        if self.has_banner {
            read_bytes(r, &mut self.banner)?;
        }
        self.has_service = flags & 4 != 0;
        if self.has_service {
            read_bytes(r, &mut self.service)?;
        }
        Ok(true)
    }
    fn key(&self) -> &Key {
        &self.key
    }
}

#[derive(Default)]
struct StateRec {
    key: Key,
    state: u8,
}

impl Rec for StateRec {
    fn read(&mut self, r: &mut impl Read) -> std::io::Result<bool> {
        if !read_key(r, &mut self.key)? {
            return Ok(false);
        }
        self.state = self.key[2] as u8;
        self.key[2] &= !0xff;
        Ok(true)
    }
    fn key(&self) -> &Key {
        &self.key
    }
}

struct Run<R> {
    path: PathBuf,
    r: BufReader<File>,
    head: R,
    live: bool,
}

impl<R: Rec> Run<R> {
    fn open(path: PathBuf) -> Result<Run<R>> {
        let f = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
        let mut run = Run {
            path,
            r: BufReader::with_capacity(64 << 10, f),
            head: R::default(),
            live: true,
        };
        run.advance()?;
        Ok(run)
    }
    fn advance(&mut self) -> Result<()> {
        self.live = self
            .head
            .read(&mut self.r)
            .map_err(|e| StoreError::io("read", &self.path, e))?;
        Ok(())
    }
}

/// k-way merge of runs: yields, key by key in order, the runs whose head holds
/// that key (in run order, i.e. log order).
struct Merger<R> {
    runs: Vec<Run<R>>,
    heap: BinaryHeap<Reverse<(Key, usize)>>,
    group: Vec<usize>,
}

impl<R: Rec> Merger<R> {
    fn new(paths: &[PathBuf]) -> Result<Merger<R>> {
        let mut runs = Vec::with_capacity(paths.len());
        let mut heap = BinaryHeap::with_capacity(paths.len());
        for p in paths {
            let r = Run::<R>::open(p.clone())?;
            if r.live {
                heap.push(Reverse((*r.head.key(), runs.len())));
            }
            runs.push(r);
        }
        Ok(Merger {
            runs,
            heap,
            group: Vec::new(),
        })
    }

    /// Moves to the next key: afterwards `self.group` lists the runs whose head
    /// holds it. False when every run is exhausted.
    fn next_group(&mut self) -> Result<bool> {
        for i in std::mem::take(&mut self.group) {
            let run = &mut self.runs[i];
            run.advance()?;
            if run.live {
                self.heap.push(Reverse((*run.head.key(), i)));
            }
        }
        let Some(Reverse((key, first))) = self.heap.pop() else {
            return Ok(false);
        };
        self.group.push(first);
        while let Some(Reverse((k, i))) = self.heap.peek() {
            if *k != key {
                break;
            }
            self.group.push(*i);
            self.heap.pop();
        }
        Ok(true)
    }

    fn key(&self) -> &Key {
        self.runs[self.group[0]].head.key()
    }

    fn paths(&self) -> impl Iterator<Item = &Path> {
        self.runs.iter().map(|r| r.path.as_path())
    }
}

impl Merger<RowRec> {
    /// The current key's records folded: the latest run's Reply and Service, the
    /// earliest run's Banner.
    fn folded(&self) -> Folded<'_> {
        let mut f = Folded::default();
        for &i in &self.group {
            let h = &self.runs[i].head;
            if h.reply.is_some() {
                f.reply = h.reply;
            }
            if h.has_banner && f.banner.is_none() {
                f.banner = Some(&h.banner);
            }
            if h.has_service {
                f.service = Some(&h.service);
            }
        }
        f
    }
}

impl Merger<StateRec> {
    /// The latest run's state of the current key.
    fn state(&self) -> u8 {
        self.runs[*self.group.last().expect("a group")].head.state
    }
}

fn create_run(path: &Path) -> Result<BufWriter<File>> {
    let f = File::create(path).map_err(|e| StoreError::io("create", path, e))?;
    Ok(BufWriter::with_capacity(256 << 10, f))
}

fn close_run(w: BufWriter<File>, path: &Path) -> Result<()> {
    w.into_inner()
        .map_err(|e| StoreError::io("write", path, e.into_error()))?;
    Ok(())
}

/// Merge runs in passes until at most `fan_in` remain (groups of consecutive runs,
/// so the run order stays the log order). `emit` writes a merger's current key.
fn reduce_runs<R: Rec>(
    mut runs: Vec<PathBuf>,
    fan_in: usize,
    dir: &Path,
    next_name: &mut usize,
    mut emit: impl FnMut(&Merger<R>, &mut BufWriter<File>, &mut Vec<u8>) -> std::io::Result<()>,
) -> Result<Vec<PathBuf>> {
    let mut scratch = Vec::new();
    while runs.len() > fan_in {
        let mut merged = Vec::new();
        for group in runs.chunks(fan_in) {
            let mut m = Merger::<R>::new(group)?;
            let path = dir.join(format!("merge-{:06}", *next_name));
            *next_name += 1;
            let mut w = create_run(&path)?;
            while m.next_group()? {
                emit(&m, &mut w, &mut scratch).map_err(|e| StoreError::io("write", &path, e))?;
            }
            close_run(w, &path)?;
            for old in m.paths() {
                let _ = std::fs::remove_file(old);
            }
            merged.push(path);
        }
        runs = merged;
    }
    Ok(runs)
}

// ---- the sorter ----

/// The chunk: items and the bytes of their banners and services, each within its
/// share of the budget (2/3 items, 1/3 bytes), allocated once and reused.
struct Chunk {
    items: Vec<Item>,
    arena: Vec<u8>,
    max_items: usize,
    max_arena: usize,
}

impl Chunk {
    fn new(budget: usize) -> Chunk {
        let item = std::mem::size_of::<Item>();
        Chunk {
            items: Vec::new(),
            arena: Vec::new(),
            max_items: (budget / 3 * 2 / item).max(16),
            max_arena: (budget / 3).max(1024),
        }
    }

    /// Whether one more item with `bytes` more arena bytes still fits (a lone
    /// item larger than the arena's share always does).
    #[inline]
    fn fits(&self, bytes: usize) -> bool {
        self.items.len() < self.max_items
            && (self.arena.len() + bytes <= self.max_arena || self.arena.is_empty())
    }

    /// Room for `bytes` more arena bytes, grown in steps of 1/8 of its share.
    #[inline]
    fn reserve_arena(&mut self, bytes: usize) {
        if self.arena.capacity() - self.arena.len() < bytes {
            self.arena
                .reserve_exact(bytes.max(self.max_arena.div_ceil(8)));
        }
    }

    #[inline]
    fn push(&mut self, mut it: Item) {
        if self.items.capacity() == 0 {
            // Grow in steps of 1/8 of the budget: small logs stay small, and the
            // vector never holds more than its share.
            self.items.reserve_exact(self.max_items.div_ceil(8));
        } else if self.items.len() == self.items.capacity() {
            let step = self.max_items.div_ceil(8);
            self.items
                .reserve_exact(step.min(self.max_items - self.items.len()).max(1));
        }
        it.key[2] |= self.items.len() as u64;
        self.items.push(it);
    }

    fn sort(&mut self) {
        self.items.sort_unstable_by_key(|x| x.key);
    }

    fn clear(&mut self) {
        self.items.clear();
        self.arena.clear();
    }
}

/// A helper thread of the sort died (a panic, or it could not be reached).
fn thread_gone(which: &'static str) -> StoreError {
    StoreError::io(
        which,
        std::env::temp_dir(),
        std::io::Error::other("stopped unexpectedly"),
    )
}

/// A full chunk and the runs it goes to.
struct Job {
    chunk: Chunk,
    state_path: PathBuf,
    run_path: Option<PathBuf>,
}

/// Sorts a chunk, writes its folded rows (unless `run_path` is `None`: counting
/// only) and the latest state of each key to two new runs, and empties it.
fn write_chunk(job: &mut Job, scratch: &mut Vec<u8>) -> Result<()> {
    let chunk = &mut job.chunk;
    chunk.sort();
    let state_path = &job.state_path;
    let mut sw = create_run(state_path)?;
    let mut rw = match &job.run_path {
        Some(p) => Some((create_run(p)?, p)),
        None => None,
    };
    let (items, arena) = (&chunk.items[..], &chunk.arena[..]);
    let mut i = 0;
    while i < items.len() {
        let (f, n) = fold_items(&items[i..], arena);
        let k = bare(&items[i].key);
        i += n;
        if let Some(r) = &f.reply {
            write_state_rec(&mut sw, &k, r.state)
                .map_err(|e| StoreError::io("write", state_path, e))?;
        }
        if let Some((w, p)) = &mut rw {
            write_row_rec(w, scratch, &k, &f).map_err(|e| StoreError::io("write", *p, e))?;
        }
    }
    close_run(sw, state_path)?;
    if let Some((w, p)) = rw {
        close_run(w, p)?;
    }
    chunk.clear();
    Ok(())
}

/// The thread that sorts and writes full chunks while the next one fills, and
/// hands each chunk back emptied (or the error that stopped it).
struct Spiller {
    tx: Option<crossbeam_channel::Sender<Job>>,
    done: crossbeam_channel::Receiver<Result<Chunk>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Chunks made so far (two at most).
    chunks: usize,
    /// Chunks sent and not taken back.
    out: usize,
}

impl Spiller {
    fn start() -> Result<Spiller> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let (back, done) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("prtip-sort-spill".into())
            .spawn(move || {
                let mut scratch = Vec::new();
                for mut job in rx {
                    let r = write_chunk(&mut job, &mut scratch).map(|()| job.chunk);
                    let failed = r.is_err();
                    if back.send(r).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::io("spawn the sort thread in", std::env::temp_dir(), e))?;
        Ok(Spiller {
            tx: Some(tx),
            done,
            thread: Some(thread),
            chunks: 1,
            out: 0,
        })
    }

    fn send(&mut self, job: Job) -> Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            // The thread stopped: its error comes after the chunks it gave back.
            loop {
                self.take_back()?;
            }
        }
        self.out += 1;
        Ok(())
    }

    /// The next chunk the thread is done with (waits for it).
    fn take_back(&mut self) -> Result<Chunk> {
        let r = self
            .done
            .recv()
            .unwrap_or_else(|_| Err(thread_gone("sort spilling thread")));
        self.out = self.out.saturating_sub(1);
        r
    }

    /// Waits until every chunk sent is written.
    fn finish(mut self) -> Result<()> {
        self.tx = None;
        while self.out > 0 {
            self.take_back()?;
        }
        if let Some(t) = self.thread.take() {
            t.join().map_err(|_| thread_gone("sort spilling thread"))?;
        }
        Ok(())
    }
}

impl Drop for Spiller {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The one pass of the sort: fed the log's entries, it builds sorted runs; at the
/// end it hands out the row stream and the open port counts. With `rows` false it
/// keeps only the Reply states (what a summary needs).
pub(crate) struct Sorter {
    chunk: Chunk,
    /// Bytes per chunk: half the budget (one chunk fills while the other spills).
    budget: usize,
    rows: bool,
    fan_in: usize,
    base: PathBuf,
    hostnames: HashMap<Addr, String>,
    /// Dropped (joined) before `tmp`.
    spiller: Option<Spiller>,
    tmp: Option<tempfile::TempDir>,
    runs: Vec<PathBuf>,
    states: Vec<PathBuf>,
    /// The log's silence: answered keys it covers are counted, silent ports
    /// become rows when `silent_rows` says so.
    silence: Option<crate::Silence>,
    silent_rows: Option<bool>,
}

impl Sorter {
    /// Count the answered keys `silence` covers ([`OpenCounts::covered`]) and
    /// list its silent ports as rows (see [`SortOptions::silent_rows`]).
    pub(crate) fn set_silence(&mut self, silence: Option<crate::Silence>) {
        self.silence = silence;
    }

    /// A sorter with `opts`'s budget; `rows` false: counts only.
    pub(crate) fn new(opts: &SortOptions, rows: bool) -> Sorter {
        let budget = opts.chunk_bytes / 2;
        Sorter {
            chunk: Chunk::new(budget),
            budget,
            rows,
            fan_in: opts.fan_in.max(2),
            base: opts.tmp_dir.clone().unwrap_or_else(std::env::temp_dir),
            hostnames: HashMap::new(),
            spiller: None,
            tmp: None,
            runs: Vec::new(),
            states: Vec::new(),
            silence: None,
            silent_rows: opts.silent_rows,
        }
    }

    /// Takes in one event (events must come in log order).
    #[inline]
    pub(crate) fn push(&mut self, e: &EventRef<'_>) -> Result<()> {
        match *e {
            EventRef::Reply(r) => {
                if !self.chunk.fits(0) {
                    self.spill()?;
                }
                self.chunk.push(Item {
                    key: key_of(&r.addr, &r.proto, r.port.to_native()),
                    a: r.time_us.to_native(),
                    b: r.rtt_us.to_native(),
                    kind: REPLY,
                    state: PortState::from(&r.state) as u8,
                    reason: Reason::from(&r.reason) as u8,
                    ttl: r.ttl,
                });
            }
            EventRef::Banner(b) if self.rows => {
                let bytes = b.bytes.as_slice();
                if !self.chunk.fits(bytes.len()) {
                    self.spill()?;
                }
                self.chunk.reserve_arena(bytes.len());
                let at = self.chunk.arena.len();
                self.chunk.arena.extend_from_slice(bytes);
                self.chunk.push(Item {
                    key: key_of(&b.addr, &b.proto, b.port.to_native()),
                    a: at as u64,
                    b: bytes.len() as u32,
                    kind: BANNER,
                    state: 0,
                    reason: 0,
                    ttl: 0,
                });
            }
            EventRef::Service(s) if self.rows => {
                let len = service_len(s);
                if !self.chunk.fits(len) {
                    self.spill()?;
                }
                self.chunk.reserve_arena(len);
                let at = self.chunk.arena.len();
                encode_service(&mut self.chunk.arena, s);
                self.chunk.push(Item {
                    key: key_of(&s.addr, &s.proto, s.port.to_native()),
                    a: at as u64,
                    b: (self.chunk.arena.len() - at) as u32,
                    kind: SERVICE,
                    state: 0,
                    reason: 0,
                    ttl: 0,
                });
            }
            EventRef::ScanStarted(s) if self.rows => {
                for (a, n) in hostnames_of(s) {
                    self.hostnames.entry(a).or_insert(n);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dir(&mut self) -> Result<PathBuf> {
        if self.tmp.is_none() {
            self.tmp = Some(
                tempfile::Builder::new()
                    .prefix("prtip-sort-")
                    .tempdir_in(&self.base)
                    .map_err(|e| StoreError::io("create temp dir in", &self.base, e))?,
            );
        }
        Ok(self.tmp.as_ref().expect("created").path().to_path_buf())
    }

    /// Hands the full chunk to the spilling thread (which sorts it and writes its
    /// two runs) and goes on with an empty one: the one the thread gave back, or
    /// a second one the first time (two chunks at most, each half the budget).
    fn spill(&mut self) -> Result<()> {
        let dir = self.dir()?;
        let n = self.states.len();
        let job = Job {
            chunk: Chunk::new(0),
            state_path: dir.join(format!("state-{n:06}")),
            run_path: self.rows.then(|| dir.join(format!("run-{n:06}"))),
        };
        self.states.push(job.state_path.clone());
        if let Some(p) = &job.run_path {
            self.runs.push(p.clone());
        }
        if self.spiller.is_none() {
            self.spiller = Some(Spiller::start()?);
        }
        let sp = self.spiller.as_mut().expect("started");
        let next = if sp.chunks < 2 {
            sp.chunks += 1;
            Chunk::new(self.budget)
        } else {
            sp.take_back()?
        };
        let chunk = std::mem::replace(&mut self.chunk, next);
        sp.send(Job { chunk, ..job })
    }

    /// Counts of what fitted in memory (nothing spilled).
    fn count_chunk(&self) -> OpenCounts {
        let (items, arena) = (&self.chunk.items[..], &self.chunk.arena[..]);
        let mut c = OpenCounter {
            space: self.silence.as_ref().map(|s| s.space()),
            ..OpenCounter::default()
        };
        let mut i = 0;
        while i < items.len() {
            let (f, n) = fold_items(&items[i..], arena);
            if let Some(r) = &f.reply {
                c.add(&items[i].key, r.state);
            }
            i += n;
        }
        c.counts
    }

    /// Counts from the state runs (everything spilled).
    fn count_runs(&mut self, next_name: &mut usize) -> Result<OpenCounts> {
        let dir = self.dir()?;
        let states = reduce_runs::<StateRec>(
            std::mem::take(&mut self.states),
            self.fan_in,
            &dir,
            next_name,
            |m, w, _| write_state_rec(w, m.key(), m.state()),
        )?;
        let mut m = Merger::<StateRec>::new(&states)?;
        let mut c = OpenCounter {
            space: self.silence.as_ref().map(|s| s.space()),
            ..OpenCounter::default()
        };
        while m.next_group()? {
            c.add(m.key(), m.state());
        }
        for p in m.paths() {
            let _ = std::fs::remove_file(p);
        }
        Ok(c.counts)
    }

    /// The open port counts alone (a sorter made with `rows` false).
    pub(crate) fn finish_counts(mut self) -> Result<OpenCounts> {
        if self.states.is_empty() {
            self.chunk.sort();
            return Ok(self.count_chunk());
        }
        if !self.chunk.items.is_empty() {
            self.spill()?;
        }
        self.spiller.take().expect("spilled").finish()?;
        self.count_runs(&mut 0)
    }

    /// The silent rows to merge in, if listed.
    fn silent_merge(&mut self) -> Option<crate::silence::SilentMerge> {
        let silence = self.silence.take()?;
        self.silent_rows
            .unwrap_or_else(|| silence.lists_rows())
            .then(|| crate::silence::SilentMerge::new(silence))
    }

    /// The sorted rows and the open port counts.
    pub(crate) fn finish(mut self) -> Result<(SortedRows, OpenCounts)> {
        if self.states.is_empty() {
            self.chunk.sort();
            let counts = self.count_chunk();
            let chunk = std::mem::replace(&mut self.chunk, Chunk::new(0));
            let silent = self.silent_merge();
            return Ok((
                SortedRows {
                    silent,
                    src: Source::Memory {
                        items: chunk.items,
                        arena: chunk.arena,
                        pos: 0,
                    },
                    hostnames: self.hostnames,
                    _tmp: None,
                    spilled_runs: 0,
                    failed: false,
                },
                counts,
            ));
        }
        if !self.chunk.items.is_empty() {
            self.spill()?;
        }
        // Give the chunks' memory back before merging.
        self.chunk = Chunk::new(0);
        self.spiller.take().expect("spilled").finish()?;
        let mut next_name = 0;
        let counts = self.count_runs(&mut next_name)?;
        let dir = self.dir()?;
        let spilled_runs = self.runs.len();
        let runs = reduce_runs::<RowRec>(
            std::mem::take(&mut self.runs),
            self.fan_in,
            &dir,
            &mut next_name,
            |m, w, scratch| write_row_rec(w, scratch, m.key(), &m.folded()),
        )?;
        let src = spawn_merge(Merger::new(&runs)?)?;
        let silent = self.silent_merge();
        Ok((
            SortedRows {
                silent,
                src,
                hostnames: self.hostnames,
                _tmp: self.tmp,
                spilled_runs,
                failed: false,
            },
            counts,
        ))
    }
}

/// Rows handed from the merging thread to the iterator at a time.
const BATCH: usize = 1024;
/// Batches in flight between them (the memory this costs is a few hundred KiB).
const BATCHES: usize = 4;

/// One folded row as the merging thread hands it over: the key, the Reply, and
/// where the banner and service bytes lie in the batch's byte buffer.
#[derive(Clone, Copy)]
struct BatchRow {
    key: Key,
    reply: ReplyPart,
    banner: Option<(u32, u32)>,
    service: Option<(u32, u32)>,
}

/// Rows from the merging thread, without heap allocations per row: the rows'
/// owned values are built by the thread that consumes (and frees) them. Batches
/// go back to the merging thread to be reused.
#[derive(Default)]
struct Batch {
    rows: Vec<BatchRow>,
    bytes: Vec<u8>,
    pos: usize,
}

impl Batch {
    fn slice(&self, r: Option<(u32, u32)>) -> Option<&[u8]> {
        r.map(|(at, len)| &self.bytes[at as usize..at as usize + len as usize])
    }
}

enum Source {
    Memory {
        items: Vec<Item>,
        arena: Vec<u8>,
        pos: usize,
    },
    /// The final merge runs on a thread of its own, so that reading the runs
    /// overlaps with whatever consumes the rows (rendering).
    Merge {
        rx: crossbeam_channel::Receiver<Result<Batch>>,
        back: crossbeam_channel::Sender<Batch>,
        batch: Batch,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

/// Fill `b` with the merge's next rows (keys without a Reply have no row);
/// false when the merge is done.
fn fill_batch(m: &mut Merger<RowRec>, b: &mut Batch) -> Result<bool> {
    b.rows.clear();
    b.bytes.clear();
    b.pos = 0;
    while b.rows.len() < BATCH {
        if !m.next_group()? {
            return Ok(false);
        }
        let f = m.folded();
        let Some(reply) = f.reply else { continue };
        let mut put = |x: Option<&[u8]>| {
            x.map(|x| {
                let at = b.bytes.len() as u32;
                b.bytes.extend_from_slice(x);
                (at, x.len() as u32)
            })
        };
        let banner = put(f.banner);
        let service = put(f.service);
        b.rows.push(BatchRow {
            key: *m.key(),
            reply,
            banner,
            service,
        });
    }
    Ok(true)
}

fn spawn_merge(mut m: Merger<RowRec>) -> Result<Source> {
    let (tx, rx) = crossbeam_channel::bounded(BATCHES);
    let (back, recycled) = crossbeam_channel::bounded::<Batch>(BATCHES + 2);
    let thread = std::thread::Builder::new()
        .name("prtip-sort-merge".into())
        .spawn(move || loop {
            let mut b = recycled.try_recv().unwrap_or_default();
            let more = fill_batch(&mut m, &mut b);
            let (more, msg) = match more {
                Ok(more) => (more, Ok(b)),
                Err(e) => (false, Err(e)),
            };
            // A closed channel: the iterator was dropped, stop.
            if tx.send(msg).is_err() || !more {
                return;
            }
        })
        .map_err(|e| StoreError::io("spawn the merge thread in", std::env::temp_dir(), e))?;
    Ok(Source::Merge {
        rx,
        back,
        batch: Batch::default(),
        thread: Some(thread),
    })
}

/// Iterator over result rows sorted by (address, protocol, port); see
/// [`sorted_rows`]. Owns its spill files and removes them when dropped.
pub struct SortedRows {
    src: Source,
    /// Silent ports merged in as rows, when listed.
    silent: Option<crate::silence::SilentMerge>,
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

impl Drop for SortedRows {
    fn drop(&mut self) {
        // Close the channel, then wait for the merging thread before the spill
        // files go.
        let src = std::mem::replace(
            &mut self.src,
            Source::Memory {
                items: Vec::new(),
                arena: Vec::new(),
                pos: 0,
            },
        );
        if let Source::Merge {
            rx, back, thread, ..
        } = src
        {
            drop((rx, back));
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
    }
}

impl Iterator for SortedRows {
    type Item = Result<ResultRow>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.silent.take() {
            None => self.next_answered(),
            Some(mut m) => {
                let hostnames = std::mem::take(&mut self.hostnames);
                let r = m.next(&mut || self.next_answered(), &hostnames);
                self.hostnames = hostnames;
                self.silent = Some(m);
                r
            }
        }
    }
}

impl SortedRows {
    /// The next row with a Reply.
    fn next_answered(&mut self) -> Option<Result<ResultRow>> {
        if self.failed {
            return None;
        }
        match &mut self.src {
            Source::Memory { items, arena, pos } => {
                while *pos < items.len() {
                    let (f, n) = fold_items(&items[*pos..], arena);
                    let k = items[*pos].key;
                    *pos += n;
                    if let Some(r) = &f.reply {
                        return Some(Ok(make_row(&k, r, f.service, f.banner, &self.hostnames)));
                    }
                }
                None
            }
            Source::Merge {
                rx, back, batch, ..
            } => loop {
                if let Some(r) = batch.rows.get(batch.pos) {
                    batch.pos += 1;
                    return Some(Ok(make_row(
                        &r.key,
                        &r.reply,
                        batch.slice(r.service),
                        batch.slice(r.banner),
                        &self.hostnames,
                    )));
                }
                match rx.recv() {
                    Ok(Ok(b)) => {
                        let used = std::mem::replace(batch, b);
                        let _ = back.try_send(used);
                    }
                    Ok(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    // The thread is done.
                    Err(_) => return None,
                }
            },
        }
    }
}

/// All result rows of the log, sorted by (address, protocol, port), the latest
/// Reply per key with the latest Service and the first Banner of that key, the
/// host name from the spec's resolved names. Streams in constant memory
/// (an 8 MiB budget, spill files in the system temp dir).
pub fn sorted_rows(reader: &LogReader) -> Result<SortedRows> {
    sorted_rows_with(reader, &SortOptions::default())
}

/// [`sorted_rows`] with explicit memory budget and spill directory.
pub fn sorted_rows_with(reader: &LogReader, opts: &SortOptions) -> Result<SortedRows> {
    let mut fold = SummaryFold::default();
    let mut s = Sorter::new(opts, true);
    reader.visit(|e: Entry<'_>| {
        fold.apply(&e);
        s.push(&e.event)
    })?;
    s.set_silence(fold.silence(reader));
    Ok(s.finish()?.0)
}

/// The summary ([`crate::summarize`]) and the sorted rows ([`sorted_rows_with`])
/// in one pass over the log: each compressed segment is decompressed once, and
/// the summary's open ports and hosts are counted by the sort itself.
pub fn summary_and_sorted_rows(
    reader: &LogReader,
    opts: &SortOptions,
) -> Result<(crate::ScanSummary, SortedRows)> {
    let mut fold = SummaryFold::default();
    let mut s = Sorter::new(opts, true);
    reader.visit(|e: Entry<'_>| {
        fold.apply(&e);
        s.push(&e.event)
    })?;
    s.set_silence(fold.silence(reader));
    let (rows, counts) = s.finish()?;
    Ok((fold.finish(reader, None, counts)?, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appender::{Appender, LogOptions};
    use crate::project::Results;
    use std::net::Ipv4Addr;

    #[test]
    fn an_item_is_40_bytes_without_heap() {
        assert_eq!(std::mem::size_of::<Item>(), 40);
        assert!(!std::mem::needs_drop::<Item>());
    }

    #[test]
    fn keys_order_like_result_rows_and_round_trip() {
        let addrs: [Addr; 3] = [
            Ipv4Addr::new(10, 0, 0, 2).into(),
            Ipv4Addr::new(10, 0, 0, 10).into(),
            Addr(
                "2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            ),
        ];
        let mut plain = Vec::new();
        let mut keys = Vec::new();
        for a in addrs {
            for proto in [Protocol::Udp, Protocol::Tcp] {
                for port in [65535u16, 1, 256] {
                    plain.push((a, proto, port));
                    let p = proto as u64;
                    let hi = u64::from_be_bytes(a.0[..8].try_into().unwrap());
                    let lo = u64::from_be_bytes(a.0[8..].try_into().unwrap());
                    keys.push([hi, lo, p << 56 | u64::from(port) << ORD_BITS]);
                }
            }
        }
        plain.sort();
        keys.sort();
        assert_eq!(keys.iter().map(unkey).collect::<Vec<_>>(), plain);
    }

    /// A log of `n` events over few keys (many duplicates), in 1 MiB segments.
    fn log(dir: &Path, n: u64) {
        let mut a = Appender::create(
            dir,
            LogOptions {
                segment_bytes: 1 << 20,
                ..Default::default()
            },
        )
        .unwrap();
        a.append(&Event::ScanStarted(Box::new(ScanStarted {
            scan_id: 1,
            time_us: 1,
            spec: ScanSpec::default(),
            versions: Versions {
                prtip: "0".into(),
                schema: SCHEMA_VERSION,
            },
            command_line: vec![],
            total_probes: 0,
            total_targets: 0,
            pid: 1,
        })))
        .unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr: Addr = Ipv4Addr::new(10, 0, (x >> 8) as u8 % 3, x as u8 % 40).into();
            let port = [22u16, 80, 443][(x >> 16) as usize % 3];
            let proto = if (x >> 20).is_multiple_of(5) {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            let ev = match (x >> 24) % 6 {
                0 => Event::Banner(Banner {
                    addr,
                    port,
                    proto,
                    time_us: i,
                    probe: "NULL".into(),
                    bytes: vec![b'b'; (x >> 32) as usize % 300],
                }),
                1 => Event::Service(Service {
                    addr,
                    port,
                    proto,
                    time_us: i,
                    name: format!("s{}", x % 7),
                    product: "p".repeat((x >> 40) as usize % 50),
                    version: String::new(),
                    extra: "é".into(),
                    confidence: 0.25,
                    method: "probe".into(),
                }),
                _ => Event::Reply(Reply {
                    addr,
                    port,
                    proto,
                    state: state_of((x >> 36) as u8),
                    reason: reason_of((x >> 44) as u8),
                    ttl: (x >> 48) as u8,
                    icmp_code: 0,
                    rtt_us: (x >> 52) as u32,
                    time_us: i,
                }),
            };
            a.append(&ev).unwrap();
        }
        a.finish().unwrap();
    }

    fn naive_counts(rows: &[ResultRow]) -> OpenCounts {
        let open: Vec<&ResultRow> = rows
            .iter()
            .filter(|r| r.state == PortState::Open && r.proto != Protocol::Host)
            .collect();
        let mut hosts: Vec<Addr> = open.iter().map(|r| r.addr).collect();
        hosts.dedup();
        let mut states = [0u64; 5];
        for r in rows {
            states[r.state as usize] += 1;
        }
        let mut host_rows = [0u64; 2];
        for r in rows.iter().filter(|r| r.proto == Protocol::Host) {
            host_rows[usize::from(r.state != PortState::Open)] += 1;
        }
        OpenCounts {
            ports: open.len() as u64,
            hosts: hosts.len() as u64,
            states,
            covered: [0, 0],
            host_rows,
        }
    }

    #[test]
    fn every_budget_and_fan_in_gives_the_in_memory_fold() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        log(&dir, 30_000);
        let r = LogReader::open(&dir).unwrap();
        assert!(r.segments() > 2, "segments: {}", r.segments());
        let expected = Results::from_log(&r).unwrap().rows();
        let want = naive_counts(&expected);
        assert!(want.ports > 10 && want.hosts > 10, "{want:?}");
        let spill = tmp.path().join("spill");
        std::fs::create_dir(&spill).unwrap();
        for (budget, fan_in, spills) in [
            (32 << 20, 64, false),
            (8 << 10, 2, true),
            (20 << 10, 3, true),
            (64 << 10, 64, true),
        ] {
            let opts = SortOptions {
                chunk_bytes: budget,
                tmp_dir: Some(spill.clone()),
                fan_in,
                silent_rows: None,
            };
            let what = format!("budget {budget}, fan-in {fan_in}");
            // Rows and counts in one sorter.
            let mut s = Sorter::new(&opts, true);
            r.visit(|e: Entry<'_>| s.push(&e.event)).unwrap();
            let (rows, counts) = s.finish().unwrap();
            assert_eq!(rows.spilled_runs() > 0, spills, "{what}");
            assert_eq!(counts, want, "{what}");
            let rows: Vec<ResultRow> = rows.map(|x| x.unwrap()).collect();
            assert_eq!(rows, expected, "{what}");
            // Counts alone (what summaries use).
            let mut s = Sorter::new(&opts, false);
            r.visit(|e: Entry<'_>| s.push(&e.event)).unwrap();
            assert_eq!(s.finish_counts().unwrap(), want, "counts, {what}");
            assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0, "{what}");
        }
    }

    #[test]
    fn service_bytes_round_trip() {
        let mut arena = Vec::new();
        for f in ["ssh", "", "OpenSSH", "9.2p1 ünïcode", "probe"] {
            put_str(&mut arena, f.as_bytes());
        }
        arena.extend_from_slice(&0.75f32.to_le_bytes());
        let s = decode_service(&arena);
        assert_eq!(
            s,
            ServiceInfo {
                name: "ssh".into(),
                product: String::new(),
                version: "OpenSSH".into(),
                extra: "9.2p1 ünïcode".into(),
                confidence: 0.75,
                method: "probe".into(),
            }
        );
    }
}
