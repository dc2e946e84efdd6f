//! Target lists stored beside a log: an `-iL` hitlist of millions of addresses
//! held as a file of merged address ranges, written once into the scan directory
//! and memory-mapped by every reader.
//!
//! Owns: the list file's layout (store/FORMAT.md, "Target lists"), building it
//! from a stream of tokens in bounded memory (a chunk of [`CHUNK_BYTES`] sorted
//! at a time, spilled to unnamed run files and merged; nothing after), checking it
//! (BLAKE3 content hash = its name, structure), the index ↔ address mapping over
//! its ranges (binary search on the stored prefix sums), and the process-wide
//! table of loaded lists by hash.
//!
//! Why a side file: a `ScanStarted` record that embeds 3.2 M target tokens is
//! 69 MB that every reader of the log decodes (and a 1.2 GB peak while scanning).
//! The record now names the list by content hash and counts (a [`LIST_PREFIX`]
//! token in `ScanSpec::targets`), so it stays small, and the ranges are
//! file-backed pages the kernel can drop and share between readers.
//!
//! Why a process-wide table: the spec → target set step
//! ([`super::target_set`]) takes only a spec. A list is looked up by its content
//! hash, so whichever log directory it was loaded from, it is the same list;
//! opening a log ([`load_dir`]) registers the lists in its directory, and the
//! log writer copies a spec's lists into its directory when it appends the
//! `ScanStarted` record ([`persist`]).

use super::targets::{parse_token, Piece, TargetError};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::iter::Peekable;
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// First bytes of a list file.
pub const MAGIC: &[u8; 8] = b"PRTIPTGT";
/// Layout version of list files this prtip writes and reads.
pub const VERSION: u32 = 1;
/// The target token that names a stored list: `@list:<hash>:<IPv4 count>:<IPv6 count>`.
pub const LIST_PREFIX: &str = "@list:";
const HEADER: usize = 64;
const MAX_ADDRESSES: u64 = 1 << 62;

/// A list's name: the BLAKE3 hash of its file's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListHash(pub [u8; 32]);

impl ListHash {
    /// Lower-case hex, 64 digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
    /// Parse 64 hex digits.
    pub fn from_hex(s: &str) -> Option<ListHash> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut h = [0u8; 32];
        for (i, b) in h.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(ListHash(h))
    }
    /// The list's file name in a scan directory: `targets-<hex>.bin`.
    pub fn file_name(&self) -> String {
        format!("targets-{}.bin", self.to_hex())
    }
}

impl std::fmt::Debug for ListHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A list reference as written in `ScanSpec::targets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRef {
    /// Content hash.
    pub hash: ListHash,
    /// IPv4 addresses in it.
    pub v4: u64,
    /// IPv6 addresses in it.
    pub v6: u64,
}

impl ListRef {
    /// Parse `@list:<hash>:<n4>:<n6>`; `None` when `tok` is not a list token.
    pub fn parse(tok: &str) -> Option<ListRef> {
        let rest = tok.strip_prefix(LIST_PREFIX)?;
        let mut it = rest.split(':');
        let hash = ListHash::from_hex(it.next()?)?;
        let v4 = it.next()?.parse().ok()?;
        let v6 = it.next()?.parse().ok()?;
        it.next().is_none().then_some(ListRef { hash, v4, v6 })
    }
    /// The token.
    pub fn token(&self) -> String {
        format!(
            "{LIST_PREFIX}{}:{}:{}",
            self.hash.to_hex(),
            self.v4,
            self.v6
        )
    }
}

impl ListRef {
    /// The list as people read it: `-iL list: 2,000,000 IPv6 addresses
    /// (targets-1a2b3c4d…)`; IPv4 and IPv6 counts both when it holds both
    /// (`3 IPv4 + 2 IPv6 addresses`). The hash's first 8 digits name the file.
    pub fn describe(&self) -> String {
        let n = |c: u64, fam: &str| format!("{} {fam}", grouped(c));
        let what = match (self.v4, self.v6) {
            (a, 0) => n(a, "IPv4"),
            (0, b) => n(b, "IPv6"),
            (a, b) => format!("{} + {}", n(a, "IPv4"), n(b, "IPv6")),
        };
        let noun = if self.v4 + self.v6 == 1 {
            "address"
        } else {
            "addresses"
        };
        format!(
            "-iL list: {what} {noun} (targets-{}…)",
            &self.hash.to_hex()[..8]
        )
    }
}

/// `1,234,567`: a count with thousands separators (the monitor's too).
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A scan's target tokens as people read them, joined by spaces: a stored
/// list's token (`@list:…`) as [`ListRef::describe`] says it, every other token
/// as given. The one wording of a scan's targets in history, the monitor and
/// every export (machine-readable outputs may carry [`ListRef`]'s fields too).
pub fn targets_text<I>(targets: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut out = String::new();
    for t in targets {
        let t = t.as_ref();
        if !out.is_empty() {
            out.push(' ');
        }
        match ListRef::parse(t) {
            Some(r) => out.push_str(&r.describe()),
            None => out.push_str(t),
        }
    }
    out
}

/// An address family of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fam {
    /// IPv4: ranges stored as two u32.
    V4,
    /// IPv6: ranges stored as two u128.
    V6,
}

/// A checked, memory-mapped list file (see the module docs).
pub struct TargetList {
    map: memmap2::Mmap,
    hash: ListHash,
    ranges: [usize; 2],
    counts: [u64; 2],
    /// Offsets of: v4 ranges, v4 prefix sums, v6 ranges, v6 prefix sums.
    off: [usize; 4],
}

impl std::fmt::Debug for TargetList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TargetList({:?}: {} + {} addresses in {} + {} ranges)",
            self.hash, self.counts[0], self.counts[1], self.ranges[0], self.ranges[1]
        )
    }
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u128_at(b: &[u8], o: usize) -> u128 {
    u128::from_le_bytes(b[o..o + 16].try_into().expect("16 bytes"))
}

impl TargetList {
    /// Check a mapped list file: header, size, hash (if `expect` is given, the
    /// bytes must hash to it) and structure (ranges sorted, disjoint, prefix sums
    /// and counts agree). The error says what failed.
    pub fn from_map(map: memmap2::Mmap, expect: Option<ListHash>) -> Result<TargetList, String> {
        let b = &map[..];
        if b.len() < HEADER || &b[..8] != MAGIC {
            return Err("not a prtip target list (bad magic or shorter than its header)".into());
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(format!(
                "list layout version {version}; this prtip reads version {VERSION}"
            ));
        }
        let hash = ListHash(*blake3::hash(b).as_bytes());
        if let Some(e) = expect {
            if e != hash {
                return Err(format!(
                    "its bytes hash to {} (BLAKE3), not to the {} its name says: the file is damaged",
                    hash.to_hex(),
                    e.to_hex()
                ));
            }
        }
        let (r4, r6) = (u64_at(b, 16), u64_at(b, 24));
        let (n4, n6) = (u64_at(b, 32), u64_at(b, 40));
        let want = (r4 as u128) * 16 + (r6 as u128) * 40 + HEADER as u128;
        if want != b.len() as u128 {
            return Err(format!(
                "{} bytes for {r4} IPv4 and {r6} IPv6 ranges (expected {want})",
                b.len()
            ));
        }
        let (r4, r6) = (r4 as usize, r6 as usize);
        let o0 = HEADER;
        let o1 = o0 + 8 * r4;
        let o2 = o1 + 8 * r4;
        let o3 = o2 + 32 * r6;
        let list = TargetList {
            map,
            hash,
            ranges: [r4, r6],
            counts: [n4, n6],
            off: [o0, o1, o2, o3],
        };
        for fam in [Fam::V4, Fam::V6] {
            let mut total = 0u64;
            let mut prev: Option<u128> = None;
            for r in 0..list.range_count(fam) {
                let (lo, hi) = list.range(fam, r);
                if lo > hi || prev.is_some_and(|p| lo <= p.saturating_add(1)) {
                    return Err(format!(
                        "{fam:?} range {r} is out of order or overlaps the one before"
                    ));
                }
                if list.before(fam, r) != total {
                    return Err(format!("{fam:?} prefix sum {r} is wrong"));
                }
                total = u64::try_from(hi - lo + 1)
                    .ok()
                    .and_then(|n| total.checked_add(n))
                    .filter(|t| *t <= MAX_ADDRESSES)
                    .ok_or_else(|| format!("{fam:?} ranges hold more than 2^62 addresses"))?;
                prev = Some(hi);
            }
            if total != list.count(fam) {
                return Err(format!(
                    "{fam:?} ranges hold {total} addresses, the header says {}",
                    list.count(fam)
                ));
            }
        }
        Ok(list)
    }

    /// Map and check the file at `path` (its name must be `targets-<hash>.bin`
    /// when `expect` is `None`... the caller passes the hash the name gives).
    pub fn open(path: &Path, expect: Option<ListHash>) -> Result<TargetList, String> {
        let f = File::open(path).map_err(|e| e.to_string())?;
        // SAFETY: list files are written once (to a temporary name, then renamed)
        // and never modified; the map is read-only and every byte read from it was
        // hashed and structure-checked above before use.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| e.to_string())?;
        TargetList::from_map(map, expect)
    }

    /// Its content hash.
    pub fn hash(&self) -> ListHash {
        self.hash
    }
    /// Its reference token data.
    pub fn reference(&self) -> ListRef {
        ListRef {
            hash: self.hash,
            v4: self.counts[0],
            v6: self.counts[1],
        }
    }
    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
    /// Addresses of `fam`.
    pub fn count(&self, fam: Fam) -> u64 {
        self.counts[fam as usize]
    }
    /// Ranges of `fam`.
    pub fn range_count(&self, fam: Fam) -> usize {
        self.ranges[fam as usize]
    }
    /// Range `r` of `fam`, inclusive.
    #[inline]
    pub fn range(&self, fam: Fam, r: usize) -> (u128, u128) {
        match fam {
            Fam::V4 => {
                let o = self.off[0] + 8 * r;
                (
                    u32_at(&self.map, o) as u128,
                    u32_at(&self.map, o + 4) as u128,
                )
            }
            Fam::V6 => {
                let o = self.off[2] + 32 * r;
                (u128_at(&self.map, o), u128_at(&self.map, o + 16))
            }
        }
    }
    /// Addresses of `fam` in ranges before `r`.
    #[inline]
    pub fn before(&self, fam: Fam, r: usize) -> u64 {
        let o = match fam {
            Fam::V4 => self.off[1],
            Fam::V6 => self.off[3],
        };
        u64_at(&self.map, o + 8 * r)
    }
    /// The `i`-th address of `fam` (ascending).
    #[inline]
    pub fn get(&self, fam: Fam, i: u64) -> Option<u128> {
        if i >= self.count(fam) {
            return None;
        }
        // The last range whose prefix sum is <= i.
        let (mut lo, mut hi) = (0usize, self.range_count(fam));
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.before(fam, mid) <= i {
                lo = mid
            } else {
                hi = mid
            }
        }
        Some(self.range(fam, lo).0 + (i - self.before(fam, lo)) as u128)
    }
    /// Position of `a` among the addresses of `fam`.
    pub fn index_of(&self, fam: Fam, a: u128) -> Option<u64> {
        // Number of ranges whose low end is <= a.
        let (mut lo, mut hi) = (0usize, self.range_count(fam));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.range(fam, mid).0 <= a {
                lo = mid + 1
            } else {
                hi = mid
            }
        }
        let r = lo.checked_sub(1)?;
        let (rlo, rhi) = self.range(fam, r);
        (a <= rhi).then(|| self.before(fam, r) + (a - rlo) as u64)
    }
}

/// Bytes of addresses a [`ListBuilder`] holds in memory (4 per single IPv4
/// address, 16 per single IPv6 address, 8 or 32 per range or CIDR block): 4 MiB,
/// 262 144 IPv6 addresses. A list that does not fit is sorted a chunk at a time
/// into run files and merged (see [`ListBuilder`]).
pub const CHUNK_BYTES: usize = 4 << 20;
/// Most runs merged at once; more are merged in passes of this many.
const FAN_IN: usize = 32;
/// Read buffer per run while merging (32 runs: 1 MiB).
const RUN_BUFFER: usize = 32 << 10;

/// Builds a list file from target tokens (`-iL` lines, command-line targets),
/// minus excludes, in bounded memory: the addresses are collected into a chunk
/// of at most [`CHUNK_BYTES`] (the vectors' reserved capacity included); a full
/// chunk is sorted in place, merged into ranges and written as a run to an
/// unnamed temporary file in the spill directory; [`ListBuilder::finish`] merges
/// the runs (k ways, in passes of 32) into the list file as it writes it. A list
/// that fits in one chunk is sorted in memory and spills nothing. Run files are
/// unnamed (`O_TMPFILE`): nothing is left behind, whether the build succeeds,
/// fails or the process dies. The built list is file-backed.
///
/// Why not the store's external sort (store/src/sort.rs): it is built for result
/// rows (40-byte items keyed by address, protocol and port, folded per key with
/// banner and service bytes in an arena, a spilling thread); a list's items are
/// address ranges that fold by overlap and adjacency, which its merge cannot
/// express. This one is the same idea in ~200 lines: chunk, sort, run, k-way merge.
///
/// Run files (private, temporary): per family, ranges sorted by their low end,
/// disjoint and not adjacent, each as its low end (4 or 16 bytes, little endian)
/// and `hi - lo` as an unsigned LEB128 (one byte for a single address).
pub struct ListBuilder {
    chunk: Chunk,
    budget: usize,
    spill_dir: PathBuf,
    /// Run files per family (IPv4, IPv6).
    runs: [Vec<File>; 2],
    names: HashMap<String, IpAddr>,
}

impl Default for ListBuilder {
    fn default() -> Self {
        ListBuilder::new()
    }
}

/// The addresses of one chunk.
#[derive(Default)]
struct Chunk {
    v4: Vec<u32>,
    v4r: Vec<(u32, u32)>,
    v6: Vec<u128>,
    v6r: Vec<(u128, u128)>,
}

/// Which vector of a chunk.
#[derive(Clone, Copy)]
enum Slot {
    V4,
    V4r,
    V6,
    V6r,
}

impl Chunk {
    /// Bytes the vectors have reserved.
    fn reserved(&self) -> usize {
        self.v4.capacity() * 4
            + self.v4r.capacity() * 8
            + self.v6.capacity() * 16
            + self.v6r.capacity() * 32
    }
    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v4r.is_empty() && self.v6.is_empty() && self.v6r.is_empty()
    }
    /// (length, capacity, bytes an element) of a slot.
    fn stat(&self, s: Slot) -> (usize, usize, usize) {
        match s {
            Slot::V4 => (self.v4.len(), self.v4.capacity(), 4),
            Slot::V4r => (self.v4r.len(), self.v4r.capacity(), 8),
            Slot::V6 => (self.v6.len(), self.v6.capacity(), 16),
            Slot::V6r => (self.v6r.len(), self.v6r.capacity(), 32),
        }
    }
    fn reserve_exact(&mut self, s: Slot, n: usize) {
        match s {
            Slot::V4 => self.v4.reserve_exact(n),
            Slot::V4r => self.v4r.reserve_exact(n),
            Slot::V6 => self.v6.reserve_exact(n),
            Slot::V6r => self.v6r.reserve_exact(n),
        }
    }
    /// Sort in place, drop repeated single addresses.
    fn sort(&mut self) {
        self.v4.sort_unstable();
        self.v4.dedup();
        self.v4r.sort_unstable();
        self.v6.sort_unstable();
        self.v6.dedup();
        self.v6r.sort_unstable();
    }
    /// The sorted chunk's addresses of family `fam` (0: IPv4, 1: IPv6) as
    /// sorted, merged ranges.
    fn ranges(&self, fam: usize) -> Box<dyn Iterator<Item = (u128, u128)> + '_> {
        if fam == 0 {
            Box::new(Coalesce::new(Merge::new(
                self.v4.iter().map(|&a| (a as u128, a as u128)),
                self.v4r.iter().map(|&(a, b)| (a as u128, b as u128)),
            )))
        } else {
            Box::new(Coalesce::new(Merge::new(
                self.v6.iter().map(|&a| (a, a)),
                self.v6r.iter().copied(),
            )))
        }
    }
    fn clear(&mut self) {
        self.v4.clear();
        self.v4r.clear();
        self.v6.clear();
        self.v6r.clear();
    }
}

/// Bytes of an address of `fam` in a run file.
fn width(fam: usize) -> usize {
    [4, 16][fam]
}

fn write_run_range(w: &mut impl Write, fam: usize, lo: u128, hi: u128) -> std::io::Result<()> {
    w.write_all(&lo.to_le_bytes()[..width(fam)])?;
    let mut d = hi - lo;
    loop {
        let b = (d & 0x7f) as u8;
        d >>= 7;
        if d == 0 {
            return w.write_all(&[b]);
        }
        w.write_all(&[b | 0x80])?;
    }
}

/// The next range of a run, `None` at its end.
fn read_run_range(r: &mut impl BufRead, fam: usize) -> std::io::Result<Option<(u128, u128)>> {
    if r.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let mut a = [0u8; 16];
    r.read_exact(&mut a[..width(fam)])?;
    let lo = u128::from_le_bytes(a);
    let (mut d, mut shift) = (0u128, 0u32);
    loop {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        if shift > 127 {
            return Err(std::io::Error::other("a run's range length is too long"));
        }
        d |= u128::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let hi = lo
        .checked_add(d)
        .ok_or_else(|| std::io::Error::other("a run's range ends past the last address"))?;
    Ok(Some((lo, hi)))
}

/// Reads a file from its start with `pread`, leaving the file's offset alone (a
/// run is read once per pass of [`ListBuilder::finish`]).
struct PRead<'a> {
    file: &'a File,
    off: u64,
}

impl std::io::Read for PRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.off)?;
        self.off += n as u64;
        Ok(n)
    }
}

/// The ranges of several runs of one family in order of their low end
/// (overlapping across runs; [`Coalesce`] folds them). The first read error
/// ends the iteration and is kept in `err`.
struct RunMerge<'a> {
    readers: Vec<std::io::BufReader<PRead<'a>>>,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(u128, u128, usize)>>,
    fam: usize,
    err: &'a std::cell::RefCell<Option<std::io::Error>>,
}

impl<'a> RunMerge<'a> {
    fn new(
        runs: &'a [File],
        fam: usize,
        err: &'a std::cell::RefCell<Option<std::io::Error>>,
    ) -> RunMerge<'a> {
        let mut m = RunMerge {
            readers: runs
                .iter()
                .map(|file| std::io::BufReader::with_capacity(RUN_BUFFER, PRead { file, off: 0 }))
                .collect(),
            heap: Default::default(),
            fam,
            err,
        };
        for i in 0..m.readers.len() {
            m.refill(i);
        }
        m
    }
    fn refill(&mut self, i: usize) {
        match read_run_range(&mut self.readers[i], self.fam) {
            Ok(Some((lo, hi))) => self.heap.push(std::cmp::Reverse((lo, hi, i))),
            Ok(None) => {}
            Err(e) => {
                self.err.borrow_mut().get_or_insert(e);
                self.heap.clear();
            }
        }
    }
}

impl Iterator for RunMerge<'_> {
    type Item = (u128, u128);
    fn next(&mut self) -> Option<(u128, u128)> {
        let std::cmp::Reverse((lo, hi, i)) = self.heap.pop()?;
        self.refill(i);
        Some((lo, hi))
    }
}

impl ListBuilder {
    /// An empty builder with the default chunk ([`CHUNK_BYTES`]) spilling to the
    /// system's temporary directory (`$TMPDIR`), where the list file is built too.
    pub fn new() -> ListBuilder {
        ListBuilder::with_chunk(CHUNK_BYTES, &std::env::temp_dir())
    }

    /// An empty builder that holds at most `bytes` of addresses in memory (at
    /// least 64) and spills sorted runs to unnamed files in `spill_dir`.
    pub fn with_chunk(bytes: usize, spill_dir: &Path) -> ListBuilder {
        ListBuilder {
            chunk: Chunk::default(),
            budget: bytes.max(64),
            spill_dir: spill_dir.to_path_buf(),
            runs: [Vec::new(), Vec::new()],
            names: HashMap::new(),
        }
    }

    /// Run files written so far (IPv4 and IPv6 runs).
    pub fn spilled_runs(&self) -> usize {
        self.runs[0].len() + self.runs[1].len()
    }

    fn spill_error(&self, e: std::io::Error) -> TargetError {
        TargetError::File {
            path: self.spill_dir.display().to_string(),
            why: format!("cannot write a temporary run of the target list: {e}"),
        }
    }

    /// Room for one more element in `s`: grow its vector if the chunk's reserved
    /// bytes stay within the budget, else spill the chunk (and, if `s` has no
    /// capacity left over, free the others' to make room for it).
    fn make_room(&mut self, s: Slot) -> Result<(), TargetError> {
        let (len, cap, size) = self.chunk.stat(s);
        if len < cap {
            return Ok(());
        }
        let grow = cap.max(4096 / size);
        if self.chunk.reserved() + grow * size <= self.budget {
            self.chunk.reserve_exact(s, grow);
            return Ok(());
        }
        if !self.chunk.is_empty() {
            self.spill().map_err(|e| self.spill_error(e))?;
            if self.chunk.stat(s).1 > 0 {
                return Ok(());
            }
        }
        // `s` has no capacity and the others hold the budget: start afresh.
        self.chunk = Chunk::default();
        self.chunk
            .reserve_exact(s, grow.min(self.budget / size).max(1));
        Ok(())
    }

    /// Sort the chunk, write each family's ranges as a run, empty the chunk
    /// (keeping its capacity).
    fn spill(&mut self) -> std::io::Result<()> {
        self.chunk.sort();
        for fam in 0..2 {
            let mut ranges = self.chunk.ranges(fam).peekable();
            if ranges.peek().is_none() {
                continue;
            }
            let file = tempfile::tempfile_in(&self.spill_dir)?;
            let mut w = BufWriter::with_capacity(RUN_BUFFER, &file);
            for (lo, hi) in ranges {
                write_run_range(&mut w, fam, lo, hi)?;
            }
            w.flush()?;
            drop(w);
            self.runs[fam].push(file);
        }
        self.chunk.clear();
        Ok(())
    }

    /// Merge runs of each family in passes of [`FAN_IN`] until at most that many
    /// are left.
    fn reduce_runs(&mut self) -> std::io::Result<()> {
        for fam in 0..2 {
            while self.runs[fam].len() > FAN_IN {
                let group: Vec<File> = self.runs[fam].drain(..FAN_IN).collect();
                let err = std::cell::RefCell::new(None);
                let file = tempfile::tempfile_in(&self.spill_dir)?;
                let mut w = BufWriter::with_capacity(RUN_BUFFER, &file);
                for (lo, hi) in Coalesce::new(RunMerge::new(&group, fam, &err)) {
                    write_run_range(&mut w, fam, lo, hi)?;
                }
                if let Some(e) = err.take() {
                    return Err(e);
                }
                w.flush()?;
                drop(w);
                self.runs[fam].push(file);
            }
        }
        Ok(())
    }

    fn push(&mut self, piece: (Slot, u128, u128)) -> Result<(), TargetError> {
        let (s, lo, hi) = piece;
        self.make_room(s)?;
        let c = &mut self.chunk;
        match s {
            Slot::V4 => c.v4.push(lo as u32),
            Slot::V4r => c.v4r.push((lo as u32, hi as u32)),
            Slot::V6 => c.v6.push(lo),
            Slot::V6r => c.v6r.push((lo, hi)),
        }
        Ok(())
    }

    /// Add one target token. Host names are resolved once each through `resolve`
    /// (the list holds the address, not the name).
    pub fn add_token(
        &mut self,
        tok: &str,
        resolve: &mut dyn FnMut(&str) -> Result<IpAddr, String>,
    ) -> Result<(), TargetError> {
        for piece in parse_token(tok)? {
            match piece {
                Piece::V4(a, b) if a == b => self.push((Slot::V4, a as u128, a as u128))?,
                Piece::V4(a, b) => self.push((Slot::V4r, a as u128, b as u128))?,
                Piece::V6(a, b) if a == b => self.push((Slot::V6, a, a))?,
                Piece::V6(a, b) => self.push((Slot::V6r, a, b))?,
                Piece::List(_) => {
                    return Err(TargetError::Bad {
                        token: tok.to_string(),
                        why: "names a stored target list; give addresses, ranges, CIDR blocks or host names".into(),
                    })
                }
                Piece::Name { name, prefix } => {
                    let addr = match self.names.get(&name) {
                        Some(a) => *a,
                        None => {
                            let a = resolve(&name).map_err(|why| TargetError::Resolve {
                                name: name.clone(),
                                why,
                            })?;
                            self.names.insert(name.clone(), a);
                            a
                        }
                    };
                    let (fam, lo, hi) = super::targets::name_range(addr, prefix, tok)?;
                    match fam {
                        Fam::V4 => self.push((Slot::V4r, lo, hi))?,
                        Fam::V6 => self.push((Slot::V6r, lo, hi))?,
                    }
                }
            }
        }
        Ok(())
    }

    /// Add every token of a list read line by line (white space separates
    /// tokens, `#` starts a comment). A bad token's error names `source` and the
    /// line: `-iL FILE line N: ...`.
    pub fn add_lines(
        &mut self,
        input: impl BufRead,
        source: &str,
        resolve: &mut dyn FnMut(&str) -> Result<IpAddr, String>,
    ) -> Result<(), TargetError> {
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(|e| TargetError::File {
                path: source.to_string(),
                why: e.to_string(),
            })?;
            let line = line.split('#').next().unwrap_or("");
            for tok in line.split_whitespace() {
                self.add_token(tok, resolve)
                    .map_err(|e| TargetError::Empty(format!("-iL {source} line {}: {e}", i + 1)))?;
            }
        }
        Ok(())
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.chunk.is_empty() && self.spilled_runs() == 0
    }

    /// Sort and merge everything added, subtract `excludes` (sorted disjoint
    /// ranges per family), and write the list file into an unnamed temporary file
    /// in `tmp_dir` (on the log's file system, not in memory); the list is mapped
    /// from it and registered. Nothing is left in `tmp_dir` or the spill
    /// directory. The file's bytes depend only on the set of addresses, not on
    /// the chunk size or the order of the input.
    pub fn finish(
        mut self,
        excludes: [&[(u128, u128)]; 2],
        tmp_dir: &Path,
    ) -> Result<Arc<TargetList>, TargetError> {
        let io = |e: std::io::Error| TargetError::File {
            path: tmp_dir.display().to_string(),
            why: format!("cannot write the target list's temporary file: {e}"),
        };
        if self.spilled_runs() > 0 {
            if !self.chunk.is_empty() {
                self.spill().map_err(|e| self.spill_error(e))?;
            }
            self.chunk = Chunk::default();
            self.reduce_runs().map_err(|e| self.spill_error(e))?;
        }
        let err = std::cell::RefCell::new(None);
        let spilled = self.spilled_runs() > 0;
        self.chunk.sort();
        let (runs, chunk) = (&self.runs, &self.chunk);
        let source = |fam: usize| -> Box<dyn Iterator<Item = (u128, u128)> + '_> {
            if spilled {
                Box::new(Coalesce::new(RunMerge::new(&runs[fam], fam, &err)))
            } else {
                chunk.ranges(fam)
            }
        };
        let s4 = || Subtract::new(source(0), excludes[0]);
        let s6 = || Subtract::new(source(1), excludes[1]);
        let file = tempfile::tempfile_in(tmp_dir).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        w.write_all(&[0u8; HEADER]).map_err(io)?;
        let (mut r4, mut n4) = (0u64, 0u64);
        for (lo, hi) in s4() {
            w.write_all(&(lo as u32).to_le_bytes()).map_err(io)?;
            w.write_all(&(hi as u32).to_le_bytes()).map_err(io)?;
            r4 += 1;
            n4 += (hi - lo + 1) as u64;
        }
        let mut t = 0u64;
        for (lo, hi) in s4() {
            w.write_all(&t.to_le_bytes()).map_err(io)?;
            t += (hi - lo + 1) as u64;
        }
        let (mut r6, mut n6) = (0u64, 0u64);
        let too_many = || {
            TargetError::Empty(
                "IPv6 targets: more than 2^62 addresses: prtip's index space cannot hold them"
                    .into(),
            )
        };
        for (lo, hi) in s6() {
            w.write_all(&lo.to_le_bytes()).map_err(io)?;
            w.write_all(&hi.to_le_bytes()).map_err(io)?;
            r6 += 1;
            n6 = u64::try_from(hi - lo + 1)
                .ok()
                .and_then(|n| n6.checked_add(n))
                .filter(|t| *t <= MAX_ADDRESSES)
                .ok_or_else(too_many)?;
        }
        let mut t = 0u64;
        for (lo, hi) in s6() {
            w.write_all(&t.to_le_bytes()).map_err(io)?;
            t += (hi - lo + 1) as u64;
        }
        if let Some(e) = err.take() {
            return Err(self.spill_error(e));
        }
        w.flush().map_err(io)?;
        drop(w);
        drop(self);
        let mut h = [0u8; HEADER];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        for (i, v) in [r4, r6, n4, n6].into_iter().enumerate() {
            h[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        file.write_all_at(&h, 0).map_err(io)?;
        // SAFETY: the file is unnamed (O_TMPFILE): no other process can open or
        // change it; the map is read-only and checked before use.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let list = TargetList::from_map(map, None).map_err(|why| TargetError::File {
            path: tmp_dir.display().to_string(),
            why: format!("the target list just written does not check out: {why}"),
        })?;
        Ok(register(list))
    }
}

/// Merge two iterators of ranges sorted by their low end.
struct Merge<A: Iterator, B: Iterator> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<A, B> Merge<A, B>
where
    A: Iterator<Item = (u128, u128)>,
    B: Iterator<Item = (u128, u128)>,
{
    fn new(a: A, b: B) -> Self {
        Merge {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = (u128, u128)>,
    B: Iterator<Item = (u128, u128)>,
{
    type Item = (u128, u128);
    fn next(&mut self) -> Option<(u128, u128)> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x.0 <= y.0 => self.a.next(),
            (Some(_), Some(_)) | (None, _) => self.b.next(),
            (Some(_), None) => self.a.next(),
        }
    }
}

/// Fold overlapping and adjacent ranges of a sorted iterator.
struct Coalesce<I: Iterator> {
    inner: Peekable<I>,
}

impl<I: Iterator<Item = (u128, u128)>> Coalesce<I> {
    fn new(i: I) -> Self {
        Coalesce {
            inner: i.peekable(),
        }
    }
}

impl<I: Iterator<Item = (u128, u128)>> Iterator for Coalesce<I> {
    type Item = (u128, u128);
    fn next(&mut self) -> Option<(u128, u128)> {
        let (lo, mut hi) = self.inner.next()?;
        while let Some(&(l2, h2)) = self.inner.peek() {
            if l2 > hi.saturating_add(1) {
                break;
            }
            hi = hi.max(h2);
            self.inner.next();
        }
        Some((lo, hi))
    }
}

/// Sorted disjoint ranges minus sorted disjoint `excl`.
struct Subtract<'a, I> {
    inner: I,
    excl: &'a [(u128, u128)],
    j: usize,
    cur: Option<(u128, u128)>,
}

impl<'a, I> Subtract<'a, I> {
    fn new(inner: I, excl: &'a [(u128, u128)]) -> Self {
        Subtract {
            inner,
            excl,
            j: 0,
            cur: None,
        }
    }
}

impl<I: Iterator<Item = (u128, u128)>> Iterator for Subtract<'_, I> {
    type Item = (u128, u128);
    fn next(&mut self) -> Option<(u128, u128)> {
        loop {
            let (lo, hi) = match self.cur.take() {
                Some(r) => r,
                None => self.inner.next()?,
            };
            while self.j < self.excl.len() && self.excl[self.j].1 < lo {
                self.j += 1;
            }
            let Some(&(elo, ehi)) = self.excl.get(self.j).filter(|e| e.0 <= hi) else {
                return Some((lo, hi));
            };
            if ehi < hi {
                self.cur = Some((ehi + 1, hi));
            }
            if elo > lo {
                return Some((lo, elo - 1));
            }
        }
    }
}

fn table() -> &'static Mutex<HashMap<ListHash, Arc<TargetList>>> {
    static T: OnceLock<Mutex<HashMap<ListHash, Arc<TargetList>>>> = OnceLock::new();
    T.get_or_init(Default::default)
}

type FileKey = (u64, u64, u64, i64, i64);

/// List files checked by this process (device, inode, size, modification time).
fn checked() -> &'static Mutex<std::collections::HashSet<FileKey>> {
    static C: OnceLock<Mutex<std::collections::HashSet<FileKey>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// Make `list` findable by its hash (the one already registered if there is one).
pub fn register(list: TargetList) -> Arc<TargetList> {
    let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
    t.entry(list.hash).or_insert_with(|| Arc::new(list)).clone()
}

/// The loaded list with this hash.
pub fn lookup(hash: ListHash) -> Option<Arc<TargetList>> {
    table()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&hash)
        .cloned()
}

/// A list file in a scan directory that does not check out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListDamage {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub what: String,
}

/// Map, check and register every list file (`targets-<hash>.bin`) in `dir` not
/// loaded yet. A file whose bytes do not hash to its name, or that fails its
/// structure checks, is damage (the first one found is returned).
pub fn load_dir(dir: &Path) -> Result<(), ListDamage> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(()); // the caller reports an unreadable directory
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(hex) = name
            .to_str()
            .and_then(|n| n.strip_prefix("targets-"))
            .and_then(|n| n.strip_suffix(".bin"))
        else {
            continue;
        };
        let path = e.path();
        let Some(hash) = ListHash::from_hex(hex) else {
            return Err(ListDamage {
                path,
                what: "the name is not targets-<64 hex digits>.bin".into(),
            });
        };
        // Each file is checked once per process (a copy of a loaded list in
        // another directory is checked too: it is another file).
        let key = e.metadata().ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino(), m.size(), m.mtime_nsec(), m.mtime())
        });
        let mut seen = checked().lock().unwrap_or_else(|e| e.into_inner());
        if key.is_some_and(|k| seen.contains(&k)) {
            continue;
        }
        let list = TargetList::open(&path, Some(hash)).map_err(|what| ListDamage {
            path: path.clone(),
            what,
        })?;
        register(list);
        seen.extend(key);
    }
    Ok(())
}

/// The list references among target tokens.
pub fn references(targets: &[String]) -> impl Iterator<Item = ListRef> + '_ {
    targets.iter().filter_map(|t| ListRef::parse(t))
}

/// Check that every list `targets` names is in `dir` and loaded, with the counts
/// the reference gives; the damage names the missing file.
pub fn check_references(targets: &[String], dir: &Path) -> Result<(), ListDamage> {
    for r in references(targets) {
        let path = dir.join(r.hash.file_name());
        match lookup(r.hash) {
            _ if !path.exists() => {
                return Err(ListDamage {
                    path,
                    what: "the target list the scan's ScanStarted record names is missing".into(),
                })
            }
            None => {
                return Err(ListDamage {
                    path,
                    what: "the target list the scan's ScanStarted record names is missing".into(),
                })
            }
            Some(l) if l.reference() != r => {
                return Err(ListDamage {
                    path,
                    what: format!(
                    "holds {} IPv4 and {} IPv6 addresses, the ScanStarted record says {} and {}",
                    l.count(Fam::V4),
                    l.count(Fam::V6),
                    r.v4,
                    r.v6
                ),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Write every list `targets` names into `dir` (as `targets-<hash>.bin`, written
/// to a temporary name, synced and renamed, the directory synced) unless it is
/// already there. What the log writer does before it appends `ScanStarted`.
pub fn persist(targets: &[String], dir: &Path) -> std::io::Result<()> {
    for r in references(targets) {
        let path = dir.join(r.hash.file_name());
        if path.exists() {
            continue;
        }
        let list = lookup(r.hash).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "target list {} is missing or damaged where the scan came from: cannot write {}",
                    r.hash.to_hex(),
                    path.display()
                ),
            )
        })?;
        let tmp = dir.join(format!("{}.tmp", r.hash.file_name()));
        {
            // Scan data is private: 0600, like the log's segments.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(list.bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_dns(name: &str) -> Result<IpAddr, String> {
        Err(format!("no resolver in this test ({name})"))
    }

    #[test]
    fn builds_merges_subtracts_and_maps() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = ListBuilder::new();
        let text = "198.19.0.3\n198.19.0.1 198.19.0.2 # three adjacent\n2001:db8::5\n\
                    198.19.1.0/30\n2001:db8::5\n2001:db8::10-2001:db8::12\n198.19.0.9\n";
        b.add_lines(text.as_bytes(), "t.txt", &mut no_dns).unwrap();
        let excl4 = [(0xc6130101u128, 0xc6130101u128)]; // 198.19.1.1
        let list = b.finish([&excl4, &[]], dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!((list.count(Fam::V4), list.count(Fam::V6)), (7, 4));
        assert_eq!(
            (list.range_count(Fam::V4), list.range_count(Fam::V6)),
            (4, 2)
        );
        let v4: Vec<String> = (0..7)
            .map(|i| std::net::Ipv4Addr::from(list.get(Fam::V4, i).unwrap() as u32).to_string())
            .collect();
        assert_eq!(
            v4,
            [
                "198.19.0.1",
                "198.19.0.2",
                "198.19.0.3",
                "198.19.0.9",
                "198.19.1.0",
                "198.19.1.2",
                "198.19.1.3"
            ]
        );
        assert_eq!(list.get(Fam::V4, 7), None);
        for i in 0..4 {
            let a = list.get(Fam::V6, i).unwrap();
            assert_eq!(list.index_of(Fam::V6, a), Some(i));
        }
        assert_eq!(list.index_of(Fam::V4, 0xc6130101), None);
        assert_eq!(list.index_of(Fam::V4, 0xc6130000), None);
        // the name is the hash of the bytes, and the reference round-trips
        assert_eq!(
            list.hash().0,
            *blake3::hash(list.bytes()).as_bytes(),
            "content-addressed"
        );
        let r = list.reference();
        assert_eq!(ListRef::parse(&r.token()), Some(r));
        assert_eq!(lookup(r.hash).unwrap().bytes(), list.bytes());
    }

    #[test]
    fn persisted_files_are_checked_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = ListBuilder::new();
        for t in ["198.19.7.7", "2001:db8::77"] {
            b.add_token(t, &mut no_dns).unwrap();
        }
        let list = b.finish([&[], &[]], dir.path()).unwrap();
        let tok = vec![list.reference().token()];
        persist(&tok, dir.path()).unwrap();
        let path = dir.path().join(list.hash().file_name());
        assert_eq!(std::fs::read(&path).unwrap(), list.bytes());
        load_dir(dir.path()).unwrap();
        check_references(&tok, dir.path()).unwrap();
        // one flipped byte: the hash no longer matches the name
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let bad = TargetList::from_map(
            {
                let p = dir.path().join("copy");
                std::fs::write(&p, &bytes).unwrap();
                // SAFETY: a private test file nobody else changes.
                unsafe { memmap2::Mmap::map(&File::open(&p).unwrap()) }.unwrap()
            },
            Some(list.hash()),
        )
        .unwrap_err();
        assert!(bad.contains("the file is damaged"), "{bad}");
        // a reference to a list nobody loaded is missing
        let other = ListRef {
            hash: ListHash([7; 32]),
            v4: 1,
            v6: 0,
        };
        let e = check_references(&[other.token()], dir.path()).unwrap_err();
        assert!(e.what.contains("missing"), "{e:?}");
        assert!(ListRef::parse("@list:zz:1:2").is_none());
    }

    /// A xorshift for reproducible random lists.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Random -iL text: single addresses of both families (many repeated),
    /// ranges and CIDR blocks that overlap them and each other, in random order.
    fn random_list(seed: u64, lines: usize) -> String {
        let mut rng = Rng(seed);
        let mut s = String::new();
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..lines {
            let r = rng.next();
            let line = match r % 8 {
                0 if !seen.is_empty() => seen[(r >> 8) as usize % seen.len()].clone(),
                0..=2 => {
                    format!("198.18.{}.{}", (r >> 8) % 4, (r >> 16) % 256)
                }
                3 | 4 => format!("2001:db8::{:x}", (r >> 8) % 2000),
                5 => format!("2001:db8::{:x}:0/120", (r >> 8) % 3),
                6 => {
                    let a = (r >> 8) % 250;
                    format!("198.18.1.{a}-198.18.1.{}", a + (r >> 16) % 6)
                }
                _ => format!("198.18.{}.0/30", (r >> 8) % 4),
            };
            seen.push(line.clone());
            s.push_str(&line);
            s.push('\n');
        }
        s
    }

    #[test]
    fn a_tiny_chunk_spills_runs_and_writes_the_same_list() {
        let excl4 = [(0xc612_0100u128, 0xc612_010fu128)]; // 198.18.1.0-15
        let excl6 = [(
            0x2001_0db8_0000_0000_0000_0000_0000_0100u128,
            0x2001_0db8_0000_0000_0000_0000_0000_01ffu128,
        )];
        for (seed, lines) in [(1u64, 50usize), (7, 3_000), (99, 20_000)] {
            let text = random_list(seed, lines);
            let build = |chunk: usize| {
                let spill = tempfile::tempdir().unwrap();
                let out = tempfile::tempdir().unwrap();
                let mut b = ListBuilder::with_chunk(chunk, spill.path());
                b.add_lines(text.as_bytes(), "r.txt", &mut no_dns).unwrap();
                let runs = b.spilled_runs();
                let list = b.finish([&excl4, &excl6], out.path()).unwrap();
                for d in [spill.path(), out.path()] {
                    assert_eq!(std::fs::read_dir(d).unwrap().count(), 0, "left in {d:?}");
                }
                (list.bytes().to_vec(), list.hash(), runs)
            };
            let (mem, hash, runs) = build(CHUNK_BYTES);
            assert_eq!(runs, 0, "the default chunk holds {lines} lines");
            // 64 bytes: a few addresses a run; 20 000 lines: over FAN_IN runs a
            // family, merged in passes.
            for chunk in [64, 1000, 4096] {
                let (bytes, h, runs) = build(chunk);
                assert!(runs > 0, "chunk {chunk}: nothing spilled");
                assert_eq!(h, hash, "seed {seed}, chunk {chunk}");
                assert_eq!(bytes, mem);
            }
            if lines == 20_000 {
                assert!(build(64).2 > 2 * FAN_IN);
            }
        }
    }

    #[test]
    fn the_chunk_never_reserves_more_than_its_budget() {
        let spill = tempfile::tempdir().unwrap();
        let mut b = ListBuilder::with_chunk(10_000, spill.path());
        let text = random_list(3, 5_000);
        for (i, line) in text.lines().enumerate() {
            b.add_token(line, &mut no_dns).unwrap();
            assert!(
                b.chunk.reserved() <= 10_000,
                "line {i}: {}",
                b.chunk.reserved()
            );
        }
        assert!(b.spilled_runs() > 0);
    }

    #[test]
    fn a_bad_line_after_spills_leaves_no_run_behind() {
        let spill = tempfile::tempdir().unwrap();
        let mut b = ListBuilder::with_chunk(64, spill.path());
        let text = random_list(5, 500) + "198.18.0.300\n";
        let e = b
            .add_lines(text.as_bytes(), "r.txt", &mut no_dns)
            .unwrap_err();
        assert!(e.to_string().contains("line 501"), "{e}");
        assert!(b.spilled_runs() > 0);
        drop(b);
        assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
        // A spill directory that does not exist: the error names it.
        let gone = spill.path().join("gone");
        let mut b = ListBuilder::with_chunk(64, &gone);
        let e = b
            .add_lines(text.as_bytes(), "r.txt", &mut no_dns)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot write a temporary run") && e.contains("gone"),
            "{e}"
        );
    }

    #[test]
    fn list_tokens_read_as_words() {
        let r = ListRef {
            hash: ListHash::from_hex(&format!("1a2b3c4d{}", "0".repeat(56))).unwrap(),
            v4: 0,
            v6: 2_000_000,
        };
        assert_eq!(
            targets_text([r.token()]),
            "-iL list: 2,000,000 IPv6 addresses (targets-1a2b3c4d…)"
        );
        let both = ListRef {
            v4: 3,
            v6: 1_234,
            ..r
        };
        assert_eq!(
            targets_text(&["198.19.0.0/24".to_string(), both.token()]),
            "198.19.0.0/24 -iL list: 3 IPv4 + 1,234 IPv6 addresses (targets-1a2b3c4d…)"
        );
        let one = ListRef { v4: 1, v6: 0, ..r };
        assert_eq!(
            one.describe(),
            "-iL list: 1 IPv4 address (targets-1a2b3c4d…)"
        );
        // Tokens that are not list references (or malformed ones) stay as given.
        assert_eq!(
            targets_text("10.0.0.1 @list:zz:1:2".split(' ')),
            "10.0.0.1 @list:zz:1:2"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let mut b = ListBuilder::new();
        let e = b
            .add_lines(
                "198.19.0.1\n# c\n198.19.0.300\n".as_bytes(),
                "l.txt",
                &mut no_dns,
            )
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "-iL l.txt line 3: bad target \"198.19.0.300\": octet 300 is above 255"
        );
    }
}
