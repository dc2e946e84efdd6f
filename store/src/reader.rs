//! Reading a scan log: every frame's CRC and every record's rkyv archive are
//! checked before an event is handed out; compressed segments read the same way.
//!
//! This module owns [`LogReader`] (a read-only view of a log, safe to use while a
//! writer appends) and the cursor that walks one segment. It never writes or
//! repairs anything; the writer's recovery is in [`crate::appender`].

use crate::appender::{check_contiguous, header_error, list_segments, LogPos, Truncation};
use crate::error::{Result, StoreError};
use crate::event::{Checkpoint, ScanStarted};
use crate::format::*;
use crate::record::{self, EventRef};
use crate::segment::{check_frame, AlignedBuf, FrameCheck, SegMode, SegView, Stop, Tail};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One event with its place in the log.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// Sequence number (0 = the first event of the log).
    pub seq: u64,
    /// Where the record sits.
    pub pos: LogPos,
    /// The event.
    pub event: EventRef<'a>,
}

/// How a segment's walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegEnd {
    Sealed(SealInfo),
    End,
}

/// Walks the records of one segment's bytes.
pub(crate) struct Cursor<'a> {
    dir: &'a Path,
    b: &'a [u8],
    h: SegHeader,
    mode: SegMode,
    last: bool,
    alive: bool,
    tail: Option<Tail>,
    off: u64,
    seq: u64,
    rec: usize,
    rec_end: usize,
    left: u32,
    pub(crate) fin: Option<SegEnd>,
    /// Flags of the seal and close frames walked ([`FLAG_SALVAGED`]).
    pub(crate) flags: u64,
    /// The last close frame walked (a finished log's segment ends with one).
    pub(crate) closed: Option<SealInfo>,
    failed: bool,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(
        dir: &'a Path,
        b: &'a [u8],
        h: SegHeader,
        mode: SegMode,
        last: bool,
        alive: bool,
        tail: Option<Tail>,
    ) -> Cursor<'a> {
        Cursor {
            dir,
            b,
            h,
            mode,
            last,
            alive,
            tail,
            off: h.data_start as u64,
            seq: h.first_seq,
            rec: 0,
            rec_end: 0,
            left: 0,
            fin: None,
            flags: 0,
            closed: None,
            failed: false,
        }
    }

    /// Continue from a frame boundary (followers).
    pub(crate) fn resume_at(&mut self, off: u64, seq: u64) {
        self.off = off;
        self.seq = seq;
    }

    /// The segment's header.
    pub(crate) fn header(&self) -> SegHeader {
        self.h
    }

    /// Offset of the next frame and sequence number of the next record.
    pub(crate) fn position(&self) -> (u64, u64) {
        (self.off, self.seq)
    }

    fn corrupt(&mut self, offset: u64, what: String) -> StoreError {
        self.failed = true;
        StoreError::Corrupt {
            dir: self.dir.to_path_buf(),
            segment: self.h.segment,
            offset,
            what,
        }
    }

    #[inline(always)]
    fn record(&mut self) -> Option<Result<Entry<'a>>> {
        let b = self.b;
        let rec = self.rec;
        if rec + RECORD_HEADER_LEN > self.rec_end {
            return Some(Err(self.corrupt(
                rec as u64,
                "frame holds fewer records than its header says".into(),
            )));
        }
        let tag = b[rec];
        let len = u32::from_le_bytes(b[rec + 4..rec + 8].try_into().unwrap()) as usize;
        let body = rec + RECORD_HEADER_LEN;
        let next = body + ((len + 7) & !7);
        if next > self.rec_end || b[rec + 1..rec + 4] != [0, 0, 0] {
            return Some(Err(self.corrupt(
                rec as u64,
                format!("record header (kind {tag}, length {len}) does not fit its frame"),
            )));
        }
        self.rec = next;
        self.left -= 1;
        prefetch(b, next + PREFETCH_AHEAD);
        let seq = self.seq;
        self.seq += 1;
        if self.left == 0 && next != self.rec_end {
            return Some(Err(self.corrupt(
                next as u64,
                "bytes after the last record of a frame".into(),
            )));
        }
        match record::decode(tag, &b[body..body + len]) {
            Ok(Some(event)) => Some(Ok(Entry {
                seq,
                pos: LogPos {
                    segment: self.h.segment,
                    offset: rec as u64,
                },
                event,
            })),
            Ok(None) => None,
            Err(()) => {
                let what = record::explain(tag, &b[body..body + len]);
                Some(Err(self.corrupt(rec as u64, what)))
            }
        }
    }

    /// The next event, `None` at the end of the segment (see `fin`). Inlined
    /// into the callers' loops always: returned through memory instead, the
    /// entry costs a store, a load and a jump table per record (iteration went
    /// from 165 to 140 M events/s when rustc stopped inlining it).
    #[inline(always)]
    pub(crate) fn next_entry(&mut self) -> Option<Result<Entry<'a>>> {
        loop {
            if self.left > 0 {
                match self.record() {
                    Some(r) => return Some(r),
                    None => continue,
                }
            }
            if self.fin.is_some() || self.failed {
                return None;
            }
            let c = check_frame(self.b, self.h.seed(), self.off);
            match c {
                FrameCheck::Valid(f)
                    if f.kind == FRAME_DATA && f.first_seq == self.seq && f.count > 0 =>
                {
                    self.rec = (self.off + FRAME_HEADER_LEN as u64) as usize;
                    self.rec_end = self.rec + f.len as usize;
                    self.left = f.count;
                    self.off += f.total();
                }
                FrameCheck::Valid(f)
                    if f.kind == FRAME_SEAL && f.len as usize == SEAL_PAYLOAD_LEN =>
                {
                    let p = (self.off + FRAME_HEADER_LEN as u64) as usize;
                    let s = SealInfo::decode(&self.b[p..p + SEAL_PAYLOAD_LEN]);
                    if s.next_seq != self.seq
                        || s.data_end != self.off + f.total()
                        || f.first_seq != self.seq
                    {
                        let off = self.off;
                        return Some(Err(self.corrupt(
                            off,
                            "seal frame disagrees with the records before it".into(),
                        )));
                    }
                    self.flags |= s.flags;
                    self.fin = Some(SegEnd::Sealed(s));
                    return None;
                }
                FrameCheck::Valid(f)
                    if f.kind == FRAME_CLOSE
                        && f.len as usize == SEAL_PAYLOAD_LEN
                        && f.first_seq == self.seq =>
                {
                    let p = (self.off + FRAME_HEADER_LEN as u64) as usize;
                    let s = SealInfo::decode(&self.b[p..p + SEAL_PAYLOAD_LEN]);
                    if s.next_seq != self.seq || s.data_end != self.off + f.total() {
                        let off = self.off;
                        return Some(Err(self.corrupt(
                            off,
                            "close frame disagrees with the records before it".into(),
                        )));
                    }
                    self.flags |= s.flags;
                    self.closed = Some(s);
                    self.off += f.total();
                }
                other => return self.problem(other),
            }
        }
    }

    fn problem(&mut self, c: FrameCheck) -> Option<Result<Entry<'a>>> {
        let off = self.off;
        let what = match c {
            FrameCheck::Valid(f) if f.first_seq != self.seq => {
                format!(
                    "frame starts at sequence {} but {} was expected",
                    f.first_seq, self.seq
                )
            }
            FrameCheck::Valid(f) => format!("frame of kind {} with {} records", f.kind, f.count),
            other => other.describe(),
        };
        if self.alive && self.last {
            // A writer is appending to this segment: what cannot be read yet is its
            // unfinished work, and any judgement would race with it.
            self.fin = Some(SegEnd::End);
            return None;
        }
        let t = match &self.tail {
            Some(t) => t.clone(),
            None => {
                let t = SegView {
                    b: self.b,
                    h: self.h,
                }
                .find_tail(self.mode, self.alive);
                self.tail = Some(t.clone());
                t
            }
        };
        if off != t.end {
            return Some(Err(self.corrupt(off, what)));
        }
        match t.stop {
            Stop::Corrupt { offset, what } => Some(Err(self.corrupt(offset, what))),
            Stop::Sealed(_) => Some(Err(self.corrupt(off, what))),
            Stop::End | Stop::Live | Stop::Torn(_) => {
                if !self.last {
                    return Some(Err(self.corrupt(
                        off,
                        format!("segment ends without a seal frame ({what})"),
                    )));
                }
                self.fin = Some(SegEnd::End);
                None
            }
        }
    }
}

/// How far ahead of the record being read the cursor asks for bytes: a frame of
/// 256 small records is 12 KiB, so this is two to three frames ahead. Reading a
/// log is bound by memory (one core streams about 13 GB/s here); asking early lets
/// the next frames arrive while this one is checked and walked (8 KiB gave
/// 137 M events/s, 16 KiB 148 M/s, 32 and 64 KiB 157-161 M/s in
/// `store/iterate/iter_validated_raw`).
const PREFETCH_AHEAD: usize = 32 << 10;

/// Hint the CPU to bring the cache line holding `b[at]` into the cache (nothing
/// when `at` is past the end). It has no effect on what the program reads.
#[inline(always)]
fn prefetch(b: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < b.len() {
        // SAFETY: PREFETCHT0 is a hint: it never faults, reads nothing into the
        // program and writes nothing; the address is inside `b` anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                b.as_ptr().add(at) as *const i8,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (b, at);
}

struct Seg {
    n: u64,
    zst_path: PathBuf,
    raw: Option<(memmap2::Mmap, u64)>,
    /// The raw segment's header, decoded on first use (opening a log touches only
    /// the last segment).
    rawh: OnceLock<std::result::Result<SegHeader, HeaderProblem>>,
    cache: OnceLock<std::result::Result<(AlignedBuf, SegHeader), (u64, String)>>,
}

/// A read-only view of a scan log. Safe to open while a writer appends: it then
/// sees the records committed so far.
pub struct LogReader {
    dir: PathBuf,
    segs: Vec<Seg>,
    alive: bool,
    tail: Option<Tail>,
    log_id: u64,
}

/// What a read-only look at the end of the log found (nothing is changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailReport {
    /// Segments in the log.
    pub segments: u64,
    /// Where the valid data ends.
    pub end: LogPos,
    /// Events in the log up to that point.
    pub next_seq: u64,
    /// A writer holds the lock (the end moves).
    pub live: bool,
    /// A torn tail a writer would cut.
    pub torn: Option<Truncation>,
    /// Damage to durable data found at the end, if any.
    pub corrupt: Option<(LogPos, String)>,
}

fn map_ro(path: &Path) -> std::io::Result<(memmap2::Mmap, u64)> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    // SAFETY: segment files are only appended to (or shrunk below every offset a
    // reader accesses) by the single writer; this map is read-only and every byte
    // read from it is checked (CRC + rkyv) before use.
    let map = unsafe { memmap2::Mmap::map(&f)? };
    Ok((map, len))
}

impl LogReader {
    /// Open the log in `dir`.
    pub fn open(dir: &Path) -> Result<LogReader> {
        let (r, gap) = Self::open_inner(dir, false)?;
        debug_assert!(gap.is_none());
        Ok(r)
    }

    /// Open the segments of the log in `dir` up to the first missing one: the
    /// reader (which reports the missing segment where its predecessor ends) and
    /// the error for the gap, if there is one. What `verify` and `salvage` use to
    /// read what is left of a damaged log.
    pub fn open_prefix(dir: &Path) -> Result<(LogReader, Option<StoreError>)> {
        Self::open_inner(dir, true)
    }

    fn open_inner(dir: &Path, prefix: bool) -> Result<(LogReader, Option<StoreError>)> {
        let meta = std::fs::metadata(dir).map_err(|e| StoreError::io("open", dir, e))?;
        if !meta.is_dir() {
            return Err(StoreError::NotALog {
                dir: dir.to_path_buf(),
                why: "not a directory".into(),
            });
        }
        let alive = crate::sys::writer_alive(dir)?;
        // The target lists beside the log (`-iL` scans): checked against their
        // hash and registered, so the spec's list reference resolves. `verify`
        // and `salvage` (prefix) check them themselves and report damage.
        if !prefix {
            crate::space::list::load_dir(dir).map_err(|d| StoreError::TargetList {
                dir: dir.to_path_buf(),
                path: d.path,
                what: d.what,
            })?;
        }
        let list = list_segments(dir)?;
        if list.is_empty() {
            return Err(StoreError::NotALog {
                dir: dir.to_path_buf(),
                why: "no segment files".into(),
            });
        }
        let mut list = list;
        let mut gap = None;
        if let Err(e) = check_contiguous(dir, &list) {
            if !prefix {
                return Err(e);
            }
            let first_missing = list
                .keys()
                .enumerate()
                .find(|(i, n)| **n != *i as u64)
                .map_or(0, |(i, _)| i as u64);
            list.retain(|n, _| *n < first_missing);
            if list.is_empty() {
                return Err(e);
            }
            gap = Some(e);
        }
        let mut segs = Vec::with_capacity(list.len());
        for (&n, &(raw, zst)) in &list {
            let zst_path = dir.join(zst_name(n));
            let mut mapped = None;
            if raw {
                let p = dir.join(raw_name(n));
                match map_ro(&p) {
                    Ok((map, len)) => mapped = Some((map, len)),
                    // Compressed and removed between listing and opening.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound
                            && (zst || zst_path.exists()) => {}
                    Err(e) => return Err(StoreError::io("open", &p, e)),
                }
            }
            segs.push(Seg {
                n,
                zst_path,
                raw: mapped,
                rawh: OnceLock::new(),
                cache: OnceLock::new(),
            });
        }
        let mut r = LogReader {
            dir: dir.to_path_buf(),
            segs,
            alive,
            tail: None,
            log_id: 0,
        };
        let last = r.segs.len() - 1;
        let (_, hl) = r.bytes(last)?;
        r.log_id = hl.log_id;
        if let Some((map, len)) = &r.segs[last].raw {
            let h = hl;
            let mode = if *len == h.capacity {
                SegMode::Active
            } else {
                SegMode::Complete
            };
            r.tail = Some(SegView { b: map, h }.find_tail(mode, alive));
        }
        Ok((r, gap))
    }

    /// The scan directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a writer held the lock when the reader was opened.
    pub fn writer_alive(&self) -> bool {
        self.alive
    }

    /// The last segment is format 1 (no close frames) and was closed by its
    /// writer (shorter than its capacity) or is compressed.
    pub(crate) fn closed_v1(&self) -> bool {
        let last = self.segs.len() - 1;
        match self.bytes(last) {
            Ok((_, h)) => h.format < FORMAT_CLOSE_FRAMES && self.mode(last) == SegMode::Complete,
            Err(_) => false,
        }
    }

    /// Number of segments.
    pub fn segments(&self) -> u64 {
        self.segs.len() as u64
    }

    /// Bytes the log's files take on disk (raw segments count their allocated length).
    pub fn disk_bytes(&self) -> u64 {
        let mut total = 0;
        for s in &self.segs {
            total += match &s.raw {
                Some((_, len)) => *len,
                None => std::fs::metadata(&s.zst_path).map(|m| m.len()).unwrap_or(0),
            };
        }
        total
    }

    fn raw_header(&self, idx: usize) -> Result<SegHeader> {
        let s = &self.segs[idx];
        let (map, _) = s.raw.as_ref().expect("a raw segment");
        let r = s.rawh.get_or_init(|| {
            let h = SegHeader::decode(map)?;
            if h.segment != s.n {
                return Err(HeaderProblem::Layout(format!(
                    "header says segment {}",
                    h.segment
                )));
            }
            Ok(h)
        });
        r.clone()
            .map_err(|p| header_error(&self.dir, &self.dir.join(raw_name(s.n)), s.n, p))
    }

    fn mode(&self, idx: usize) -> SegMode {
        let s = &self.segs[idx];
        match (&s.raw, s.rawh.get()) {
            (Some((_, len)), Some(Ok(h))) if idx + 1 == self.segs.len() && *len == h.capacity => {
                SegMode::Active
            }
            _ => SegMode::Complete,
        }
    }

    fn bytes(&self, idx: usize) -> Result<(&[u8], SegHeader)> {
        let s = &self.segs[idx];
        if let Some((map, _)) = &s.raw {
            return Ok((&map[..], self.raw_header(idx)?));
        }
        let r = s
            .cache
            .get_or_init(|| load_zst(&self.dir, s.n, &s.zst_path, None));
        match r {
            Ok((buf, h)) => Ok((&buf[..], *h)),
            Err((off, what)) => Err(StoreError::Corrupt {
                dir: self.dir.clone(),
                segment: s.n,
                offset: *off,
                what: what.clone(),
            }),
        }
    }

    /// Segment `idx` ended with seal `s`: if it is the last one present, its
    /// successor is missing, which only a crash while rolling over explains (and
    /// then `next.spare` is that successor); otherwise the segment was lost.
    fn after_seal(&self, idx: usize, h: &SegHeader, s: &SealInfo) -> Result<()> {
        if idx + 1 < self.segs.len() || self.alive || h.format < FORMAT_CLOSE_FRAMES {
            return Ok(());
        }
        crate::appender::check_successor(&self.dir, self.segs[idx].n, s.next_seq, h.log_id)
    }

    fn check_header(&self, idx: usize, h: &SegHeader, seq: u64) -> Result<()> {
        let n = self.segs[idx].n;
        let bad = |what: String| {
            Err(StoreError::Corrupt {
                dir: self.dir.clone(),
                segment: n,
                offset: 0,
                what,
            })
        };
        if h.segment != n {
            return bad(format!("header says segment {}", h.segment));
        }
        if h.log_id != self.log_id {
            return bad("segment belongs to another log (log id differs)".into());
        }
        if idx > 0 && h.first_seq != seq {
            return bad(format!(
                "segment starts at sequence {} but the previous one ended at {seq}",
                h.first_seq
            ));
        }
        Ok(())
    }

    pub(crate) fn cursor_over<'a>(
        &'a self,
        idx: usize,
        b: &'a [u8],
        h: SegHeader,
        seq: u64,
    ) -> Result<Cursor<'a>> {
        self.check_header(idx, &h, seq)?;
        let last = idx + 1 == self.segs.len();
        let tail = if last && self.segs[idx].raw.is_some() {
            self.tail.clone()
        } else {
            None
        };
        Ok(Cursor::new(
            &self.dir,
            b,
            h,
            self.mode(idx),
            last,
            self.alive && last,
            tail,
        ))
    }

    /// Every event in order, validated. Stops after the first error. Compressed
    /// segments are decompressed once and kept while the reader lives; use
    /// [`LogReader::visit`] to stream a large log in constant memory.
    pub fn iter(&self) -> impl Iterator<Item = Result<EventRef<'_>>> + '_ {
        self.entries().map(|r| r.map(|e| e.event))
    }

    /// Like [`LogReader::iter`], with sequence numbers and positions.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            r: self,
            idx: 0,
            cur: None,
            seq: 0,
            done: false,
        }
    }

    /// Call `f` for every event in order, decompressing one compressed segment at a
    /// time (constant memory). Stops at the first error (from the log or from `f`).
    pub fn visit<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(Entry<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut seq = 0;
        for idx in 0..self.segs.len() {
            let s = &self.segs[idx];
            let owned;
            let (b, h): (&[u8], SegHeader) = match (&s.raw, s.cache.get()) {
                (Some((map, _)), _) => (&map[..], self.raw_header(idx)?),
                (None, Some(Ok((buf, h)))) => (&buf[..], *h),
                _ => {
                    owned =
                        load_zst(&self.dir, s.n, &s.zst_path, None).map_err(|(offset, what)| {
                            StoreError::Corrupt {
                                dir: self.dir.clone(),
                                segment: s.n,
                                offset,
                                what,
                            }
                        })?;
                    (&owned.0[..], owned.1)
                }
            };
            let mut c = self.cursor_over(idx, b, h, seq)?;
            while let Some(r) = c.next_entry() {
                f(r?)?;
            }
            match c.fin {
                Some(SegEnd::Sealed(s)) => {
                    self.after_seal(idx, &h, &s)?;
                    seq = s.next_seq
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Check every frame and record of every segment, calling `f` for each
    /// event in order until the first damage (see [`crate::verify`]).
    pub(crate) fn walk_all(&self, mut f: impl FnMut(Entry<'_>) -> Result<()>) -> Walked {
        let mut w = Walked::default();
        let mut seq = 0;
        let res = (|| -> Result<()> {
            for idx in 0..self.segs.len() {
                let s = &self.segs[idx];
                let owned;
                let (b, h): (&[u8], SegHeader) = match &s.raw {
                    Some((map, _)) => (&map[..], self.raw_header(idx)?),
                    None => {
                        owned = load_zst(&self.dir, s.n, &s.zst_path, None).map_err(
                            |(offset, what)| StoreError::Corrupt {
                                dir: self.dir.clone(),
                                segment: s.n,
                                offset,
                                what,
                            },
                        )?;
                        (&owned.0[..], owned.1)
                    }
                };
                let mut c = self.cursor_over(idx, b, h, seq)?;
                while let Some(r) = c.next_entry() {
                    let e = r?;
                    w.records += 1;
                    f(e)?;
                }
                w.flags |= c.flags;
                match c.fin {
                    Some(SegEnd::Sealed(s)) => {
                        self.after_seal(idx, &h, &s)?;
                        seq = s.next_seq;
                    }
                    _ => {
                        w.closed = c.closed.map(|s| s.data_end) == Some(c.position().0);
                        break;
                    }
                }
            }
            Ok(())
        })();
        w.error = res.err();
        w
    }

    /// The first event, which must be `ScanStarted` (deserialized). Reads only the
    /// start of the first segment, even if it is compressed.
    pub fn scan_started(&self) -> Result<ScanStarted> {
        for idx in 0..self.segs.len() {
            let s = &self.segs[idx];
            let partial;
            let (b, h) = if s.raw.is_some() || s.cache.get().is_some() {
                self.bytes(idx)?
            } else {
                // Decompress just enough for the first frame.
                let mut want = 256 << 10;
                loop {
                    let (buf, h) = load_zst(&self.dir, s.n, &s.zst_path, Some(want)).map_err(
                        |(offset, what)| StoreError::Corrupt {
                            dir: self.dir.clone(),
                            segment: s.n,
                            offset,
                            what,
                        },
                    )?;
                    let need = match check_frame(&buf, h.seed(), h.data_start as u64) {
                        FrameCheck::Overrun(f) => (h.data_start as u64 + f.total()) as usize,
                        _ => 0,
                    };
                    if need > buf.len() && want < need {
                        want = need;
                        continue;
                    }
                    partial = (buf, h);
                    break;
                }
                (&partial.0[..], partial.1)
            };
            let mut c = Cursor::new(&self.dir, b, h, SegMode::Complete, true, true, None);
            match c.next_entry() {
                Some(Ok(Entry {
                    event: EventRef::ScanStarted(s),
                    ..
                })) => return Ok(record::scan_started_of(s)),
                Some(Ok(e)) => {
                    return Err(StoreError::Corrupt {
                        dir: self.dir.clone(),
                        segment: e.pos.segment,
                        offset: e.pos.offset,
                        what: format!(
                            "the first event is {} (expected ScanStarted)",
                            e.event.kind().name()
                        ),
                    })
                }
                Some(Err(e)) => return Err(e),
                None => {
                    // An empty segment (sealed before its first record): look further.
                    if matches!(c.fin, Some(SegEnd::Sealed(_))) {
                        continue;
                    }
                    return Err(StoreError::Empty {
                        dir: self.dir.clone(),
                    });
                }
            }
        }
        Err(StoreError::Empty {
            dir: self.dir.clone(),
        })
    }

    /// What is at the end of the log: where valid data stops, and whether there is a
    /// torn tail a writer would cut or damage at the end. Nothing is modified.
    pub fn tail(&self) -> TailReport {
        let segments = self.segs.len() as u64;
        let last = segments - 1;
        let mut rep = TailReport {
            segments,
            end: LogPos {
                segment: last,
                offset: 0,
            },
            next_seq: 0,
            live: self.alive,
            torn: None,
            corrupt: None,
        };
        if let Some(t) = &self.tail {
            rep.end.offset = t.end;
            rep.next_seq = t.next_seq;
            match &t.stop {
                Stop::Torn(tt) => {
                    rep.torn = Some(Truncation {
                        segment: last,
                        offset: t.end,
                        reason: tt.reason.clone(),
                        dropped_bytes: tt.dropped_bytes,
                        dropped_frames: tt.dropped_frames,
                        dropped_events: tt.dropped_events,
                    })
                }
                Stop::Corrupt { offset, what } => {
                    rep.corrupt = Some((
                        LogPos {
                            segment: last,
                            offset: *offset,
                        },
                        what.clone(),
                    ))
                }
                _ => {}
            }
        } else if let Ok((b, h)) = self.bytes(last as usize) {
            let t = SegView { b, h }.find_tail(SegMode::Complete, false);
            rep.end.offset = t.end;
            rep.next_seq = t.next_seq;
            if let Stop::Corrupt { offset, what } = t.stop {
                rep.corrupt = Some((
                    LogPos {
                        segment: last,
                        offset,
                    },
                    what,
                ));
            }
        }
        rep
    }

    /// The latest Checkpoint in the log and where it is. Uses the sparse index and
    /// reads only the end of the log when it can; falls back to a full scan.
    pub fn last_checkpoint(&self) -> Result<Option<(LogPos, Checkpoint)>> {
        if let Some(pos) = self.indexed_last_checkpoint() {
            if let Ok(Some(c)) = self.checkpoint_at(pos) {
                return Ok(Some((pos, c)));
            }
        }
        let mut found = None;
        self.visit(|e: Entry<'_>| -> Result<()> {
            if let EventRef::Checkpoint(c) = e.event {
                found = Some((e.pos, record::checkpoint_of(c)));
            }
            Ok(())
        })?;
        Ok(found)
    }

    fn indexed_last_checkpoint(&self) -> Option<LogPos> {
        let last = self.segs.len() - 1;
        let (b, h) = self.bytes(last).ok()?;
        let end = match &self.tail {
            Some(t) => t.end,
            None => SegView { b, h }.find_tail(SegMode::Complete, false).end,
        };
        let p = SegView { b, h }.last_checkpoint(end)?;
        let (segment, offset) = unpack_pos(p);
        Some(LogPos { segment, offset })
    }

    /// Read and validate the Checkpoint record at `pos` (its whole frame is checked).
    fn checkpoint_at(&self, pos: LogPos) -> Result<Option<Checkpoint>> {
        let idx = pos.segment as usize;
        if idx >= self.segs.len() {
            return Ok(None);
        }
        let (b, h) = self.bytes(idx)?;
        let view = SegView { b, h };
        let top = Some(h.index_slots as u64 - 1);
        let start = view.start_entry(pos.offset, top);
        let (mut off, mut seq) = match start {
            Some(e) => (e.frame_offset, e.first_seq),
            None => (h.data_start as u64, h.first_seq),
        };
        loop {
            let FrameCheck::Valid(f) = check_frame(b, h.seed(), off) else {
                return Ok(None);
            };
            if f.kind == FRAME_CLOSE && f.first_seq == seq {
                off += f.total();
                continue;
            }
            if f.kind != FRAME_DATA || f.first_seq != seq {
                return Ok(None);
            }
            let end = off + f.total();
            if pos.offset < end {
                let mut c = Cursor::new(&self.dir, b, h, SegMode::Complete, true, true, None);
                c.resume_at(off, seq);
                while let Some(r) = c.next_entry() {
                    let e = r?;
                    if e.pos.offset == pos.offset {
                        return Ok(match e.event {
                            EventRef::Checkpoint(cp) => Some(record::checkpoint_of(cp)),
                            _ => None,
                        });
                    }
                    if e.pos.offset > pos.offset {
                        break;
                    }
                }
                return Ok(None);
            }
            off = end;
            seq += f.count as u64;
        }
    }
}

/// What [`LogReader::walk_all`] found.
#[derive(Debug, Default)]
pub(crate) struct Walked {
    /// Records that checked out.
    pub records: u64,
    /// Flags of the seal and close frames.
    pub flags: u64,
    /// The log ends with a close frame.
    pub closed: bool,
    /// The first damage (or I/O error).
    pub error: Option<StoreError>,
}

/// Iterator of [`LogReader::entries`].
pub struct Entries<'a> {
    r: &'a LogReader,
    idx: usize,
    cur: Option<Cursor<'a>>,
    seq: u64,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.cur.is_none() {
                if self.idx >= self.r.segs.len() {
                    self.done = true;
                    return None;
                }
                let c = self
                    .r
                    .bytes(self.idx)
                    .and_then(|(b, h)| self.r.cursor_over(self.idx, b, h, self.seq));
                match c {
                    Ok(c) => self.cur = Some(c),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            let c = self.cur.as_mut().unwrap();
            match c.next_entry() {
                Some(Ok(e)) => return Some(Ok(e)),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => match c.fin {
                    Some(SegEnd::Sealed(s)) => {
                        let h = c.header();
                        if let Err(e) = self.r.after_seal(self.idx, &h, &s) {
                            self.done = true;
                            return Some(Err(e));
                        }
                        self.seq = s.next_seq;
                        self.idx += 1;
                        self.cur = None;
                    }
                    _ => {
                        self.done = true;
                        return None;
                    }
                },
            }
        }
    }
}

pub(crate) fn load_zst(
    dir: &Path,
    n: u64,
    path: &Path,
    want: Option<usize>,
) -> std::result::Result<(AlignedBuf, SegHeader), (u64, String)> {
    let buf = match crate::compress::decompress(path, want) {
        Ok(Ok(b)) => b,
        Ok(Err(z)) => {
            return Err((
                z.raw_offset,
                format!(
                    "zstd chunk at compressed offset {} of {}: {}",
                    z.compressed_offset,
                    path.display(),
                    z.what
                ),
            ))
        }
        Err(e) => return Err((0, e.to_string())),
    };
    let _ = dir;
    let h = SegHeader::decode(&buf).map_err(|p| (0, format!("segment header: {p:?}")))?;
    if h.segment != n {
        return Err((0, format!("header says segment {}", h.segment)));
    }
    Ok((buf, h))
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    #[test]
    fn prefetch_is_only_a_hint() {
        let b: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        for at in [0, 63, 64, 4096, 99_999, 100_000, usize::MAX] {
            prefetch(&b, at);
        }
        prefetch(&[], 0);
        assert!(b.iter().enumerate().all(|(i, &x)| x == i as u8));
    }
}
