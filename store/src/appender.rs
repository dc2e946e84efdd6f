//! The single-threaded append path: events are archived straight into a mapped,
//! preallocated segment, grouped into CRC-protected frames, made durable with
//! `msync`, sealed and rolled over into the next segment, and recovered after a
//! crash.
//!
//! This module owns writing segment files (the only code that does) and the
//! writer side of recovery. It never reads events back for projections and never
//! spawns the queueing writer thread (that is [`crate::writer`]).

use crate::compress::{Compressor, Job};
use crate::error::{Result, StoreError};
use crate::event::{now_us, Event};
use crate::format::*;
use crate::gate::SyncGate;
use crate::record::{self, EventKind};
use crate::segment::{SegMode, SegView, Stop};
use crate::sys::{self, WriterLock};
use memmap2::MmapMut;
use rkyv::ser::allocator::Arena;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How a log is written.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Preallocated size of each segment file once the log has grown (default
    /// 64 MiB; 1 MiB ..= 4 GiB - 4 KiB). The first segments are smaller: segment
    /// `n` is `min(segment_bytes, 1 MiB << n)`, so a tiny scan needs a few MiB of
    /// free space, not two full segments, and a large one reaches full-size
    /// segments after 63 MiB.
    pub segment_bytes: u64,
    /// zstd level for sealed segments (default 3).
    pub zstd_level: i32,
    /// Compress sealed segments in a background thread (default true).
    pub compress_sealed: bool,
    /// Capacity of the queue between sinks and the writer thread, in messages
    /// (default 1024). A checkpoint waits behind whatever is queued (at ~70 ns a
    /// message, a full queue of 8192 added ~0.6 ms to every checkpoint under a
    /// stream of events); producers that outrun the writer block either way.
    pub queue_capacity: usize,
    /// Close a frame (one CRC) after this many records (default 256).
    pub frame_records: u32,
    /// Close a frame once its payload reaches this many bytes (default 64 KiB).
    pub frame_bytes: u32,
    /// The writer thread makes data durable on its own once this many bytes are
    /// not yet durable (default 1 MiB). Bounds the work recovery must redo, and how long
    /// a checkpoint that arrives during such a sync waits (4 MiB gave a p99 of 6-10 ms
    /// under a stream of events, 1 MiB 2.4-5.8 ms: `cargo bench --bench engine_resume`).
    pub sync_every_bytes: u64,
    /// Prepare the next segment in the background once the active one is 1/8
    /// full (default true): write it as zeros, so that syncs overwrite written
    /// extents, and fault its pages in, so that appends do not stall on page
    /// faults. Without it the next segment is only allocated.
    pub prefault: bool,
    /// Start the disk write of committed data (`sync_file_range(WRITE)`, on a
    /// background thread) each time this many bytes were committed since the last
    /// start (0, the default: never). A checkpoint then waits only for what was
    /// committed since, not for its whole window (a 1 MiB window streamed in:
    /// 1.0 ms -> 0.3-0.7 ms here), but pages under write-back are write-protected,
    /// so the appending thread takes faults: on this machine appends fell from
    /// about 80 to 34 M events/s. Worth it when checkpoints are large and frequent.
    pub writeback_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            zstd_level: 3,
            compress_sealed: true,
            queue_capacity: 1024,
            frame_records: 256,
            frame_bytes: 64 << 10,
            sync_every_bytes: 1 << 20,
            prefault: true,
            writeback_bytes: 0,
        }
    }
}

impl LogOptions {
    /// Preallocated size of segment `n` (see [`LogOptions::segment_bytes`]).
    pub fn segment_capacity(&self, n: u64) -> u64 {
        self.segment_bytes.min(MIN_SEGMENT << n.min(32))
    }

    fn check(&self) -> Result<()> {
        if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&self.segment_bytes) {
            return Err(StoreError::Invalid(format!(
                "segment_bytes {} is outside {MIN_SEGMENT}..={MAX_SEGMENT}",
                self.segment_bytes
            )));
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err(StoreError::Invalid(format!(
                "zstd_level {} is outside 1..=22",
                self.zstd_level
            )));
        }
        if self.frame_records == 0 || self.queue_capacity == 0 {
            return Err(StoreError::Invalid(
                "frame_records and queue_capacity must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A position in the log: segment number and byte offset inside the raw segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPos {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in the (uncompressed) segment.
    pub offset: u64,
}

/// What opening a log for appending found and repaired.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Segments in the log.
    pub segments: u64,
    /// Events kept (= sequence number of the next event).
    pub next_seq: u64,
    /// Where appending continues.
    pub end: LogPos,
    /// The tail held no torn data (the last writer stopped cleanly or was killed
    /// between frames).
    pub clean: bool,
    /// What was cut off, if anything.
    pub truncated: Option<Truncation>,
    /// Where the latest Checkpoint record is, if any.
    pub last_checkpoint: Option<LogPos>,
    /// Recovery checked every frame from here to the end (earlier data was proven
    /// durable by the sparse index and is checked by readers, not by recovery).
    pub verified_from: LogPos,
}

/// A torn tail that recovery cut off. These bytes were never acknowledged as
/// durable (no `checkpoint()` or `sync()` returned after them).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Truncation {
    /// Segment of the cut.
    pub segment: u64,
    /// Offset of the cut.
    pub offset: u64,
    /// Why the frame at the cut was not valid.
    pub reason: String,
    /// Non-zero bytes found after the cut (estimate).
    pub dropped_bytes: u64,
    /// Frames after the cut that checked out but could not be kept (they follow a bad one).
    pub dropped_frames: u64,
    /// Records in those frames.
    pub dropped_events: u64,
}

struct Active {
    n: u64,
    path: PathBuf,
    file: File,
    map: MmapMut,
    h: SegHeader,
    /// End of committed frames.
    pos: u64,
    /// Bytes known durable.
    synced: u64,
    next_slot: u64,
    index_dirty: bool,
    /// `pos` when the index pages were last made durable.
    index_synced_at: u64,
    /// Page-aligned end of the range whose write-back was started; never below
    /// the page `synced` falls in (a sync counts as a write-back).
    written_back: u64,
    events: u64,
}

impl Active {
    /// The committed whole pages whose write-back was not started yet, as
    /// `(offset, len)`, if there are at least `min_bytes` (and a page) of them;
    /// they count as started from now on.
    fn claim_write_back(&mut self, min_bytes: u64) -> Option<(u64, u64)> {
        let whole = self.pos & !(PAGE - 1);
        if whole < self.written_back + min_bytes.max(PAGE) {
            return None;
        }
        let range = (self.written_back, whole - self.written_back);
        self.written_back = whole;
        Some(range)
    }
}

struct OpenFrame {
    start: u64,
    end: u64,
    first_seq: u64,
    count: u32,
    ckpt_before: u64,
}

struct Spare {
    file: File,
    map: MmapMut,
    capacity: u64,
}

/// The low-level, single-threaded log appender. [`crate::LogWriter`] runs one on its
/// own thread behind a queue; use this directly when one thread produces all events.
///
/// Holds the writer lock of the directory while alive.
pub struct Appender {
    dir: PathBuf,
    opts: LogOptions,
    log_id: u64,
    seg: Active,
    next_seq: u64,
    frame: Option<OpenFrame>,
    arena: Arena,
    last_ckpt: u64,
    sealed_bytes: u64,
    durable: Arc<AtomicU64>,
    spare: Option<JoinHandle<Result<Spare>>>,
    /// Closed while `sync_inner` is in `msync`; the spare thread waits at it.
    gate: Arc<SyncGate>,
    compressor: Option<Compressor>,
    writeback: Option<Writeback>,
    /// Flags written into every seal and close frame ([`FLAG_SALVAGED`]).
    flags: u64,
    _lock: WriterLock,
}

/// Data written between two syncs that include the sparse index's pages.
pub const INDEX_SYNC_BYTES: u64 = 4 << 20;

/// Starts the disk write of committed ranges on a thread of its own
/// (`sync_file_range` does the submission work — write-protecting pages, mapping
/// blocks, building I/O — in the calling thread, which must not be the
/// appender's).
struct Writeback {
    tx: Option<crossbeam_channel::Sender<(File, u64, u64)>>,
    thread: Option<JoinHandle<()>>,
}

impl Writeback {
    fn start() -> Option<Writeback> {
        let (tx, rx) = crossbeam_channel::bounded::<(File, u64, u64)>(64);
        let thread = std::thread::Builder::new()
            .name("prtip-writeback".into())
            .spawn(move || {
                for (file, off, len) in rx {
                    sys::write_back(&file, off, len, false);
                }
            })
            .ok()?;
        Some(Writeback {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Ask for `[off, off + len)` of `file` to be written; dropped if the thread is
    /// behind (the next sync writes it anyway).
    fn start_range(&self, file: &File, off: u64, len: u64) {
        if let (Some(tx), Ok(f)) = (&self.tx, file.try_clone()) {
            let _ = tx.try_send((f, off, len));
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.write_u32(std::process::id());
    h.finish() | 1
}

/// Segments present in `dir`: number → (raw exists, zst exists).
pub(crate) fn list_segments(dir: &Path) -> Result<BTreeMap<u64, (bool, bool)>> {
    let mut out: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
    let rd = fs::read_dir(dir).map_err(|e| StoreError::io("read dir", dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| StoreError::io("read dir", dir, e))?;
        if let Some((n, zst)) = ent.file_name().to_str().and_then(parse_name) {
            let e = out.entry(n).or_default();
            if zst {
                e.1 = true;
            } else {
                e.0 = true;
            }
        }
    }
    Ok(out)
}

/// Check that segments are numbered 0..n without gaps.
pub(crate) fn check_contiguous(dir: &Path, segs: &BTreeMap<u64, (bool, bool)>) -> Result<()> {
    for (i, n) in segs.keys().enumerate() {
        if *n != i as u64 {
            return Err(StoreError::Corrupt {
                dir: dir.to_path_buf(),
                segment: i as u64,
                offset: 0,
                what: format!(
                    "segment file {} is missing (next present is {})",
                    raw_name(i as u64),
                    raw_name(*n)
                ),
            });
        }
    }
    Ok(())
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open", path, e))
}

fn map_mut(file: &File, path: &Path) -> Result<MmapMut> {
    // SAFETY: segment files are written only by the holder of the directory's
    // writer lock, which is this process; readers in other processes only read.
    // Truncation happens only on segments this process owns, after unmapping or
    // beyond every offset it accesses.
    unsafe { MmapMut::map_mut(file) }.map_err(|e| StoreError::io("mmap", path, e))
}

/// Bytes of the spare segment faulted in by one `MADV_POPULATE_WRITE`: between
/// chunks the spare thread stops while the writer syncs (see [`SyncGate`]).
const SPARE_POPULATE_CHUNK: usize = 64 << 10;

/// The next segment is prepared in the background once the active one is this
/// fraction full (1/8): a small scan never pays for a spare it would not use
/// (writing 64 MiB of zeros, faulting 64 MiB in), and a large one leaves 7/8 of a
/// segment's worth of time to prepare it.
const SPARE_START_FRACTION: u64 = 8;

/// Bytes of the spare segment written as zeros at a time.
const SPARE_ZERO_CHUNK: u64 = 64 << 10;

/// Wait at `gate` while the writer syncs; an error once the log is being finished.
fn wait_at(gate: &SyncGate) -> Result<()> {
    if gate.pass() {
        Ok(())
    } else {
        Err(StoreError::Closed("the spare segment was cancelled".into()))
    }
}

/// Create the next segment file (`next.spare`) and allocate its blocks. With
/// `prefault`, also fault its pages in, waiting at `gate` between chunks.
/// On failure (a full disk, a cancelled spare) the file is removed: a failed
/// scan leaves no empty or half-allocated `next.spare` behind.
fn prepare_spare(dir: &Path, capacity: u64, prefault: Option<&SyncGate>) -> Result<Spare> {
    let path = dir.join(SPARE_NAME);
    let file = sys::private_rw()
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| StoreError::io("create", &path, e))?;
    fill_spare(file, &path, capacity, prefault).inspect_err(|_| {
        let _ = fs::remove_file(&path);
    })
}

fn fill_spare(
    file: File,
    path: &Path,
    capacity: u64,
    prefault: Option<&SyncGate>,
) -> Result<Spare> {
    let path = path.to_path_buf();
    sys::fallocate(&file, &path, capacity)?;
    if let Some(gate) = prefault {
        // Zeros on disk, a chunk at a time, so that the blocks fallocate reserved
        // become written extents instead of unwritten ones: a checkpoint's msync
        // is then a plain overwrite, with no extent conversion to write (on ext4
        // without a journal, as here, that was one more synchronous write of the
        // inode before the cache flush; with a journal, a commit). Twice the disk
        // writes for a lower floor under every checkpoint: 1 MiB windows 0.72-0.77
        // ms instead of 1.29-1.33 (benches/README.md, "Store"). Small chunks,
        // each written back before the next: a checkpoint waits behind one at most.
        let mut off = 0;
        while off < capacity {
            let n = SPARE_ZERO_CHUNK.min(capacity - off);
            wait_at(gate)?;
            sys::write_zeros(&file, &path, off, n)?;
            sys::write_back(&file, off, n, true);
            off += n;
        }
    }
    // Size, allocation (and the zeros) durable now, while the file has no dirty
    // page (see `install_segment`).
    sys::fdatasync(&file, &path)?;
    let mut map = map_mut(&file, &path)?;
    if let Some(gate) = prefault {
        // Take the write faults here, off the writer's core, a chunk at a time:
        // MADV_POPULATE_WRITE holds the process's mmap lock while it faults, and a
        // thread being started (its stack is an mmap) or any other mmap waits for
        // it — for the whole 64 MiB (~17 ms) that delayed a resume's first probe.
        // No readahead while faulting in pages that are not cached: reading ahead
        // took up to 27 ms in one chunk, and the thread could not stop for a
        // sync meanwhile. Page by page, a 64 KiB chunk takes 30-500 us.
        let len = map.len();
        let _ = map.advise(memmap2::Advice::Random);
        for off in (0..len).step_by(SPARE_POPULATE_CHUNK) {
            let n = SPARE_POPULATE_CHUNK.min(len - off);
            wait_at(gate)?;
            if map
                .advise_range(memmap2::Advice::PopulateWrite, off, n)
                .is_err()
            {
                for p in (off..off + n).step_by(PAGE as usize) {
                    map[p] = 0;
                }
            }
        }
        let _ = map.advise(memmap2::Advice::Normal);
    }
    Ok(Spare {
        file,
        map,
        capacity,
    })
}

fn segment_capacity_for(record_len: u64, opts: &LogOptions, n: u64) -> Result<u64> {
    let need_data = FRAME_HEADER_LEN as u64
        + RECORD_HEADER_LEN as u64
        + align_up(record_len, 8)
        + END_RESERVE
        + FRAME_HEADER_LEN as u64;
    let mut cap = opts.segment_capacity(n);
    loop {
        let h = SegHeader::new(0, 0, 0, cap);
        if h.data_start as u64 + need_data <= cap {
            return Ok(cap);
        }
        if cap >= MAX_SEGMENT {
            return Err(StoreError::TooLarge {
                kind: "event",
                bytes: record_len,
                max: MAX_SEGMENT - h.data_start as u64 - need_data + record_len,
            });
        }
        cap = (align_up(need_data + h.data_start as u64, 1 << 20) + (1 << 20)).min(MAX_SEGMENT);
    }
}

impl Appender {
    /// Start a new, empty log in `dir` (created if missing).
    pub fn create(dir: &Path, opts: LogOptions) -> Result<Appender> {
        opts.check()?;
        sys::create_private_dir_all(dir)?;
        let lock = WriterLock::acquire(dir)?;
        if !list_segments(dir)?.is_empty() {
            return Err(StoreError::Exists {
                dir: dir.to_path_buf(),
            });
        }
        let log_id = random_id();
        let spare = prepare_spare(dir, opts.segment_capacity(0), None)?;
        let seg = install_segment(dir, stamp_spare(dir, 0, 0, log_id, spare)?)?;
        Ok(Appender::assemble(
            dir, opts, log_id, seg, 0, NO_POS, 0, 0, lock,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        dir: &Path,
        opts: LogOptions,
        log_id: u64,
        seg: Active,
        next_seq: u64,
        last_ckpt: u64,
        sealed_bytes: u64,
        flags: u64,
        lock: WriterLock,
    ) -> Appender {
        let gate = Arc::<SyncGate>::default();
        let compressor = opts
            .compress_sealed
            .then(|| Compressor::start(dir.to_path_buf(), opts.zstd_level, gate.clone()));
        let durable = Arc::new(AtomicU64::new(sealed_bytes + seg.synced));
        let writeback = if opts.writeback_bytes > 0 {
            Writeback::start()
        } else {
            None
        };
        Appender {
            dir: dir.to_path_buf(),
            opts,
            log_id,
            seg,
            next_seq,
            frame: None,
            arena: Arena::new(),
            last_ckpt,
            sealed_bytes,
            durable,
            spare: None,
            gate,
            compressor,
            writeback,
            flags,
            _lock: lock,
        }
    }

    /// Continue an existing log after a pause or a crash: cut a torn tail (zeroing
    /// it durably), make everything kept durable, and append after it.
    ///
    /// Fails with [`StoreError::Corrupt`] if data that was durable is damaged (the
    /// log is then left untouched), with [`StoreError::Locked`] if a writer is alive.
    pub fn open_append(dir: &Path, opts: LogOptions) -> Result<(Appender, RecoveryReport)> {
        opts.check()?;
        let lock = WriterLock::acquire(dir)?;
        let mut segs = list_segments(dir)?;
        if segs.is_empty() {
            return Err(StoreError::NotALog {
                dir: dir.to_path_buf(),
                why: "no segment files".into(),
            });
        }
        check_contiguous(dir, &segs)?;
        // Leftovers of interrupted work: compressions in progress, raw segments
        // whose compressed copy was completed (the spare is removed once the
        // tail is judged: it tells a crash while rolling over from a lost segment).
        for ent in fs::read_dir(dir)
            .map_err(|e| StoreError::io("read dir", dir, e))?
            .flatten()
        {
            let name = ent.file_name();
            if name
                .to_str()
                .is_some_and(|s| s.starts_with("seg-") && s.ends_with(TMP_SUFFIX))
            {
                let _ = fs::remove_file(ent.path());
            }
        }
        for (n, (raw, zst)) in segs.iter_mut() {
            if *raw && *zst {
                let p = dir.join(raw_name(*n));
                fs::remove_file(&p).map_err(|e| StoreError::io("remove", &p, e))?;
                *raw = false;
            }
        }
        let last = *segs.keys().next_back().unwrap();
        let corrupt = |segment: u64, offset: u64, what: String| StoreError::Corrupt {
            dir: dir.to_path_buf(),
            segment,
            offset,
            what,
        };
        let mut sealed_bytes = 0u64;
        for (n, (raw, _)) in &segs {
            if *n == last {
                break;
            }
            let p = dir.join(if *raw { raw_name(*n) } else { zst_name(*n) });
            sealed_bytes += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        }
        let mut report = RecoveryReport {
            segments: last + 1,
            ..Default::default()
        };

        let (last_raw, _) = segs[&last];
        let (seg, next_seq, last_ckpt, sealed_last): (
            Option<Active>,
            u64,
            Option<u64>,
            Option<u64>,
        );
        let mut log_id;
        let flags;
        if last_raw {
            let path = dir.join(raw_name(last));
            let file = open_rw(&path)?;
            let len = sys::file_len(&file, &path)?;
            let map = map_mut(&file, &path)?;
            let h = SegHeader::decode(&map).map_err(|p| header_error(dir, &path, last, p))?;
            if h.segment != last {
                return Err(corrupt(
                    last,
                    0,
                    format!("header says segment {}", h.segment),
                ));
            }
            log_id = h.log_id;
            let mode = if len == h.capacity {
                SegMode::Active
            } else {
                SegMode::Complete
            };
            let view = SegView { b: &map, h };
            let tail = view.find_tail(mode, false);
            let ckpt = view.last_checkpoint(tail.end);
            report.end = LogPos {
                segment: last,
                offset: tail.end,
            };
            report.verified_from = LogPos {
                segment: last,
                offset: tail.verified_from,
            };
            report.next_seq = tail.next_seq;
            match tail.stop {
                Stop::Corrupt { offset, what } => return Err(corrupt(last, offset, what)),
                Stop::Sealed(s) => {
                    if h.format >= FORMAT_CLOSE_FRAMES {
                        check_successor(dir, last, s.next_seq, h.log_id)?;
                    }
                    flags = s.flags;
                    report.clean = true;
                    drop(map);
                    (seg, next_seq, last_ckpt, sealed_last) = (
                        None,
                        s.next_seq,
                        ckpt.or(Some(s.last_checkpoint)),
                        Some(s.data_end),
                    );
                    sealed_bytes += len;
                    let _ = file;
                }
                Stop::End | Stop::Live | Stop::Torn(_) => {
                    flags = tail.flags;
                    let end = tail.end;
                    if let Stop::Torn(t) = &tail.stop {
                        report.truncated = Some(Truncation {
                            segment: last,
                            offset: end,
                            reason: t.reason.clone(),
                            dropped_bytes: t.dropped_bytes,
                            dropped_frames: t.dropped_frames,
                            dropped_events: t.dropped_events,
                        });
                    } else {
                        report.clean = true;
                    }
                    // Index entries that point at or past the cut are stale.
                    let mut map = map;
                    let keep = clear_stale_index(&mut map, &h, end);
                    drop(map);
                    if len < h.capacity {
                        sys::fallocate(&file, &path, h.capacity)?;
                    }
                    if report.truncated.is_some() {
                        sys::zero_range(&file, &path, end, h.capacity - end)?;
                    }
                    sys::fdatasync(&file, &path)?;
                    let map = map_mut(&file, &path)?;
                    let active = Active {
                        n: last,
                        path,
                        file,
                        map,
                        h,
                        pos: end,
                        synced: end,
                        next_slot: keep,
                        index_dirty: false,
                        index_synced_at: end,
                        written_back: end & !(PAGE - 1),
                        events: tail.next_seq - h.first_seq,
                    };
                    (seg, next_seq, last_ckpt, sealed_last) =
                        (Some(active), tail.next_seq, ckpt, None);
                }
            }
        } else {
            // Only a compressed copy: the segment was sealed (a crash came between
            // sealing it and installing its successor, or compression of the last
            // segment). Read its seal.
            let path = dir.join(zst_name(last));
            let buf = crate::compress::decompress(&path, None)?.map_err(|z| {
                corrupt(
                    last,
                    z.raw_offset,
                    format!(
                        "zstd chunk at compressed offset {}: {}",
                        z.compressed_offset, z.what
                    ),
                )
            })?;
            let h = SegHeader::decode(&buf).map_err(|p| header_error(dir, &path, last, p))?;
            log_id = h.log_id;
            let view = SegView { b: &buf, h };
            let tail = view.find_tail(SegMode::Complete, false);
            match tail.stop {
                Stop::Sealed(s) => {
                    if h.format >= FORMAT_CLOSE_FRAMES {
                        check_successor(dir, last, s.next_seq, h.log_id)?;
                    }
                    flags = s.flags;
                    report.clean = true;
                    report.verified_from = LogPos {
                        segment: last,
                        offset: tail.verified_from,
                    };
                    sealed_bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    (seg, next_seq, last_ckpt, sealed_last) =
                        (None, s.next_seq, Some(s.last_checkpoint), None);
                }
                Stop::Corrupt { offset, what } => return Err(corrupt(last, offset, what)),
                _ => {
                    return Err(corrupt(
                        last,
                        tail.end,
                        "compressed segment has no seal frame".into(),
                    ))
                }
            }
        }
        if seg.is_some() {
            let _ = fs::remove_file(dir.join(SPARE_NAME));
        }
        if log_id == 0 {
            log_id = random_id();
        }
        let last_ckpt = match last_ckpt {
            Some(NO_POS) | None => NO_POS,
            Some(p) => p,
        };
        report.last_checkpoint = (last_ckpt != NO_POS).then(|| {
            let (segment, offset) = unpack_pos(last_ckpt);
            LogPos { segment, offset }
        });
        let (seg, installed_new) = match seg {
            Some(s) => (s, false),
            None => {
                // A crash between sealing the last segment and renaming its
                // successor left `next.spare` stamped as that successor: install
                // it as it is. Replacing it first would open a window in which a
                // second crash leaves a sealed segment naming a missing successor.
                let stamped = match reopen_stamped(dir, last + 1, next_seq, log_id)? {
                    Some(s) => s,
                    None => {
                        let _ = fs::remove_file(dir.join(SPARE_NAME));
                        let spare = prepare_spare(dir, opts.segment_capacity(last + 1), None)?;
                        stamp_spare(dir, last + 1, next_seq, log_id, spare)?
                    }
                };
                let s = install_segment(dir, stamped)?;
                report.segments = last + 2;
                report.end = LogPos {
                    segment: last + 1,
                    offset: s.pos,
                };
                (s, true)
            }
        };
        let a = Appender::assemble(
            dir,
            opts,
            log_id,
            seg,
            next_seq,
            last_ckpt,
            sealed_bytes,
            flags,
            lock,
        );
        // Queue sealed raw segments that have a successor for compression.
        if let Some(c) = &a.compressor {
            for (n, (raw, _)) in &segs {
                if *raw && (*n < last || (installed_new && *n == last)) {
                    let data_end = if *n == last {
                        sealed_last.unwrap_or(u64::MAX)
                    } else {
                        u64::MAX
                    };
                    c.push(Job { n: *n, data_end });
                }
            }
        }
        Ok((a, report))
    }

    fn start_spare(&mut self) {
        let dir = self.dir.clone();
        let cap = self.opts.segment_capacity(self.seg.n + 1);
        let gate = self.opts.prefault.then(|| self.gate.clone());
        self.spare = Some(
            std::thread::Builder::new()
                .name("prtip-spare".into())
                .spawn(move || prepare_spare(&dir, cap, gate.as_deref()))
                .expect("spawn spare thread"),
        );
    }

    /// Sequence number the next event will get (= events in the log).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes of the log made durable so far (sealed segments on disk + the durable
    /// part of the active one).
    pub fn durable_bytes(&self) -> u64 {
        self.durable.load(Ordering::Relaxed)
    }

    pub(crate) fn durable_counter(&self) -> Arc<AtomicU64> {
        self.durable.clone()
    }

    /// Bytes appended but not yet durable.
    pub fn pending_bytes(&self) -> u64 {
        let end = self.frame.as_ref().map_or(self.seg.pos, |f| f.end);
        end - self.seg.synced
    }

    /// Start writing committed whole pages that are neither durable nor being
    /// written yet, if there are at least `min_bytes` of them
    /// (`sync_file_range(WRITE)`, without waiting). The log writer calls this
    /// when its queue is empty, so that a checkpoint finds most of its window on
    /// disk already; the pages left behind are complete, so appends never fault on
    /// them again (unlike [`LogOptions::writeback_bytes`], which also writes while
    /// the writer is busy).
    pub fn write_back_committed(&mut self, min_bytes: u64) {
        if let Some((off, len)) = self.seg.claim_write_back(min_bytes) {
            sys::write_back(&self.seg.file, off, len, false);
        }
    }

    /// Where the next frame will start.
    pub fn position(&self) -> LogPos {
        LogPos {
            segment: self.seg.n,
            offset: self.frame.as_ref().map_or(self.seg.pos, |f| f.end),
        }
    }

    /// Where the durable part of the log ends: everything before this position
    /// (and every earlier segment) was made durable by a sync that returned.
    pub fn durable_pos(&self) -> LogPos {
        LogPos {
            segment: self.seg.n,
            offset: self.seg.synced,
        }
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one event (archived in place in the mapped segment). Returns its
    /// sequence number. Not visible to readers until the frame is committed
    /// ([`Appender::commit`], or automatically every `frame_records` events), not
    /// durable until [`Appender::sync`].
    #[inline]
    pub fn append(&mut self, ev: &Event) -> Result<u64> {
        if let Event::ScanStarted(s) = ev {
            // A spec that names a stored target list: the list goes beside the
            // log (durably) before the record that names it.
            crate::space::list::persist(&s.spec.targets, &self.dir)
                .map_err(|e| StoreError::io("write the target list into", &self.dir, e))?;
        }
        if let Some(seq) = self.try_append(ev) {
            return Ok(seq);
        }
        self.roll(ev)?;
        self.try_append(ev).ok_or_else(|| StoreError::TooLarge {
            kind: ev.kind().name(),
            bytes: record::encoded_len(ev) as u64,
            max: self.seg.h.capacity,
        })
    }

    #[inline]
    fn try_append(&mut self, ev: &Event) -> Option<u64> {
        if self.frame.is_none() {
            self.frame = Some(OpenFrame {
                start: self.seg.pos,
                end: self.seg.pos + FRAME_HEADER_LEN as u64,
                first_seq: self.next_seq,
                count: 0,
                ckpt_before: self.last_ckpt,
            });
        }
        let f = self.frame.as_mut().unwrap();
        let rec = f.end as usize;
        let limit = (self.seg.h.capacity - END_RESERVE) as usize;
        if rec + RECORD_HEADER_LEN >= limit {
            return None;
        }
        let kind = ev.kind();
        #[cfg(target_arch = "x86_64")]
        if rec + 2048 < limit {
            // SAFETY: a prefetch hint for an address inside the mapping; it never
            // faults and has no architectural effect.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    self.seg.map.as_ptr().add(rec + 2048) as *const i8,
                )
            };
        }
        let n = record::encode(
            ev,
            &mut self.seg.map[rec + RECORD_HEADER_LEN..limit],
            &mut self.arena,
        )?;
        let padded = align_up(n as u64, 8) as usize;
        if rec + RECORD_HEADER_LEN + padded > limit {
            return None;
        }
        let m = &mut self.seg.map[rec..rec + RECORD_HEADER_LEN + padded];
        m[0] = kind as u8;
        m[1..4].fill(0);
        m[4..8].copy_from_slice(&(n as u32).to_le_bytes());
        m[RECORD_HEADER_LEN + n..].fill(0);
        f.end = (rec + RECORD_HEADER_LEN + padded) as u64;
        f.count += 1;
        if kind == EventKind::Checkpoint {
            self.last_ckpt = pack_pos(self.seg.n, rec as u64);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if f.count >= self.opts.frame_records || f.end - f.start >= self.opts.frame_bytes as u64 {
            self.commit_frame();
        }
        Some(seq)
    }

    fn commit_frame(&mut self) {
        let Some(f) = self.frame.take() else { return };
        if f.count == 0 {
            return;
        }
        let seg = &mut self.seg;
        let seed = seg.h.seed();
        let start = f.start as usize;
        let end = f.end as usize;
        let crc = payload_crc(seed, &seg.map[start + FRAME_HEADER_LEN..end]);
        let hdr = FrameHeader {
            len: (f.end - f.start) as u32 - FRAME_HEADER_LEN as u32,
            count: f.count,
            first_seq: f.first_seq,
            synced: seg.synced as u32,
            kind: FRAME_DATA,
            payload_crc: crc,
        };
        // Payload first, header last: a concurrent follower sees either no frame or
        // a whole one (and the CRC catches anything in between).
        std::sync::atomic::fence(Ordering::Release);
        seg.map[start..start + FRAME_HEADER_LEN].copy_from_slice(&hdr.encode(seed));
        let slot = seg.h.slot_of(f.start);
        while seg.next_slot <= slot && seg.next_slot < seg.h.index_slots as u64 {
            let e = IndexEntry {
                frame_offset: f.start,
                first_seq: f.first_seq,
                last_checkpoint: f.ckpt_before,
            };
            let o = seg.h.index_offset(seg.next_slot);
            seg.map[o..o + INDEX_ENTRY_LEN].copy_from_slice(&e.encode(seed));
            seg.next_slot += 1;
            seg.index_dirty = true;
        }
        seg.pos = f.end;
        seg.events += f.count as u64;
        if let Some(wb) = &self.writeback {
            if let Some((off, len)) = seg.claim_write_back(self.opts.writeback_bytes) {
                // Best effort: whatever is not written now, the next sync writes.
                wb.start_range(&seg.file, off, len);
            }
        }
        if self.spare.is_none() && self.seg.pos >= self.seg.h.capacity / SPARE_START_FRACTION {
            self.start_spare();
        }
    }

    /// Fault in the rest of the active segment now (`MADV_POPULATE_WRITE`), so the
    /// appends that follow take no page faults. Later segments are prepared this
    /// way in the background when `LogOptions::prefault` is set.
    pub fn prefault(&mut self) -> Result<()> {
        let start = align_up(self.frame.as_ref().map_or(self.seg.pos, |f| f.end), PAGE);
        let len = self.seg.h.capacity.saturating_sub(start);
        if len > 0 {
            self.seg
                .map
                .advise_range(memmap2::Advice::PopulateWrite, start as usize, len as usize)
                .map_err(|e| StoreError::io("madvise(MADV_POPULATE_WRITE)", &self.seg.path, e))?;
        }
        Ok(())
    }

    /// Close the open frame so readers and followers can see it (no durability).
    pub fn commit(&mut self) {
        self.commit_frame();
    }

    /// Commit and make everything appended so far durable (`msync` of the new range).
    ///
    /// The sparse index is only a hint (FORMAT.md), so its pages are made durable
    /// with the data only once [`INDEX_SYNC_BYTES`] of data were written since they
    /// last were (and always at seal and finish): a checkpoint costs one
    /// contiguous write instead of two.
    pub fn sync(&mut self) -> Result<()> {
        self.sync_inner(false)
    }

    fn sync_inner(&mut self, with_index: bool) -> Result<()> {
        self.commit_frame();
        let seg = &mut self.seg;
        let index =
            seg.index_dirty && (with_index || seg.pos - seg.index_synced_at >= INDEX_SYNC_BYTES);
        if seg.pos > seg.synced || index {
            let from = if index { 0 } else { seg.synced & !(PAGE - 1) };
            let _quiet = self.gate.close();
            sys::msync(
                &seg.map,
                from as usize,
                (seg.pos - from) as usize,
                &seg.path,
            )?;
            seg.synced = seg.pos;
            seg.written_back = seg.written_back.max(seg.pos & !(PAGE - 1));
            if index {
                seg.index_dirty = false;
                seg.index_synced_at = seg.pos;
            }
            self.durable
                .store(self.sealed_bytes + seg.synced, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Seal the active segment and continue in a new one.
    fn roll(&mut self, pending: &Event) -> Result<()> {
        self.commit_frame();
        let need = record::encoded_len(pending) as u64;
        let cap = segment_capacity_for(need, &self.opts, self.seg.n + 1)?;
        // Bytes a failed attempt may have left after the committed end.
        let limit = (self.seg.h.capacity - SEAL_RESERVE) as usize;
        let pos = self.seg.pos as usize;
        if pos < limit {
            self.seg.map[pos..limit].fill(0);
        }
        let spare = match self.spare.take().map(|h| h.join()) {
            Some(Ok(Ok(s))) if s.capacity >= cap => s,
            Some(Ok(Err(e))) => return Err(e),
            _ => prepare_spare(&self.dir, cap, None)?,
        };
        // The successor's header is durable before the seal: a crash between the
        // seal and the rename leaves `next.spare` naming segment N+1 of this log,
        // which tells that state from a deleted last segment (FORMAT.md).
        let n = self.seg.n + 1;
        let stamped = stamp_spare(&self.dir, n, self.next_seq, self.log_id, spare)?;
        self.seal()?;
        self.seg = install_segment(&self.dir, stamped)?;
        self.durable
            .store(self.sealed_bytes + self.seg.synced, Ordering::Relaxed);
        Ok(())
    }

    /// Write a seal or close frame (`kind`) at the end of the committed frames.
    fn end_frame(&mut self, kind: u16) {
        self.commit_frame();
        let seg = &mut self.seg;
        let seed = seg.h.seed();
        let at = seg.pos;
        let flags = if seg.h.format >= FORMAT_CLOSE_FRAMES {
            self.flags
        } else {
            0
        };
        let info = SealInfo {
            events: seg.events,
            next_seq: self.next_seq,
            data_end: at + SEAL_RESERVE,
            last_checkpoint: self.last_ckpt,
            sealed_us: now_us(),
            flags,
        };
        let payload = info.encode();
        let hdr = FrameHeader {
            len: SEAL_PAYLOAD_LEN as u32,
            count: 0,
            first_seq: self.next_seq,
            synced: seg.synced as u32,
            kind,
            payload_crc: payload_crc(seed, &payload),
        };
        let a = at as usize + FRAME_HEADER_LEN;
        seg.map[a..a + SEAL_PAYLOAD_LEN].copy_from_slice(&payload);
        std::sync::atomic::fence(Ordering::Release);
        seg.map[at as usize..a].copy_from_slice(&hdr.encode(seed));
        seg.pos = info.data_end;
    }

    /// Mark the log as salvaged ([`FLAG_SALVAGED`] in every later seal and close
    /// frame): what `prtip log salvage` writes.
    pub fn mark_salvaged(&mut self) {
        self.flags |= FLAG_SALVAGED;
    }

    /// Write the seal frame, make it durable, truncate the file, queue compression.
    fn seal(&mut self) -> Result<()> {
        self.end_frame(FRAME_SEAL);
        self.sync_inner(true)?;
        let seg = &mut self.seg;
        let keep = align_up(seg.pos + FRAME_HEADER_LEN as u64, PAGE);
        sys::set_len(&seg.file, &seg.path, keep)?;
        sys::fdatasync(&seg.file, &seg.path)?;
        self.sealed_bytes += seg.pos;
        if let Some(c) = &self.compressor {
            c.push(Job {
                n: seg.n,
                data_end: seg.pos,
            });
        }
        Ok(())
    }

    /// Commit, make everything durable, shrink the active segment to its data
    /// (it is extended again by the next `open_append`), wait for background
    /// compression, and release the lock.
    pub fn finish(mut self) -> Result<()> {
        // A close frame says where the log ends (format 2): a reader can then
        // tell a log cut short from one that ended here. Not in a format-1
        // segment continued by this writer, so older readers can still read it.
        if self.seg.h.format >= FORMAT_CLOSE_FRAMES {
            self.end_frame(FRAME_CLOSE);
        }
        self.sync_inner(true)?;
        let keep = align_up(self.seg.pos + FRAME_HEADER_LEN as u64, PAGE);
        if keep < self.seg.h.capacity {
            sys::set_len(&self.seg.file, &self.seg.path, keep)?;
            sys::fdatasync(&self.seg.file, &self.seg.path)?;
        }
        // The spare is not needed any more: stop its preparation (writing and
        // faulting in up to a whole segment) rather than wait for it.
        self.gate.cancel();
        if let Some(h) = self.spare.take() {
            let _ = h.join();
        }
        let _ = fs::remove_file(self.dir.join(SPARE_NAME));
        if let Some(c) = self.compressor.take() {
            c.finish().map_err(|e| {
                StoreError::Closed(format!(
                    "the log is intact, but compressing a sealed segment failed: {e}"
                ))
            })?;
        }
        Ok(())
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.gate.cancel();
        if let Some(h) = self.spare.take() {
            let _ = h.join();
        }
    }
}

/// Zero index entries of slots whose frames start at or past `end`; returns the
/// first free slot.
fn clear_stale_index(map: &mut [u8], h: &SegHeader, end: u64) -> u64 {
    let seed = h.seed();
    let mut keep = 0u64;
    for slot in 0..h.index_slots as u64 {
        let o = h.index_offset(slot);
        if IndexEntry::is_zero(&map[o..]) {
            // entries are dense; but zero everything after too (stale ones may follow)
            continue;
        }
        match IndexEntry::decode(&map[o..], seed) {
            Some(e) if e.frame_offset < end && slot == keep => keep = slot + 1,
            _ => map[o..o + INDEX_ENTRY_LEN].fill(0),
        }
    }
    keep
}

/// The error for segment `n` (at `path`, in log `dir`) whose header failed to decode:
/// a version the build cannot read, or corruption.
pub(crate) fn header_error(dir: &Path, path: &Path, n: u64, p: HeaderProblem) -> StoreError {
    match p {
        HeaderProblem::Version { format, schema } => StoreError::Version {
            path: path.to_path_buf(),
            format,
            schema,
        },
        other => StoreError::Corrupt {
            dir: dir.to_path_buf(),
            segment: n,
            offset: 0,
            what: format!("segment header: {other:?}"),
        },
    }
}

/// A spare whose header (segment `n`) is written and durable, not yet renamed.
struct Stamped {
    n: u64,
    file: File,
    map: MmapMut,
    h: SegHeader,
}

/// Write segment `n`'s header into a spare and make it durable.
fn stamp_spare(dir: &Path, n: u64, first_seq: u64, log_id: u64, spare: Spare) -> Result<Stamped> {
    let Spare {
        file,
        mut map,
        capacity,
    } = spare;
    let h = SegHeader::new(n, first_seq, log_id, capacity);
    map[..SEG_HEADER_LEN].copy_from_slice(&h.encode());
    let spare_path = dir.join(SPARE_NAME);
    // The size and the blocks are durable since `prepare_spare`: the header page
    // is all that is left (`msync` of that range also writes the inode if it
    // changed). Not an fdatasync of the file: that would write every page the
    // spare thread faulted in (they are dirty zeros), 40 ms for 64 MiB in the
    // writer thread, and write-protect them again for the appends to fault on.
    sys::msync(&map, 0, PAGE as usize, &spare_path)?;
    Ok(Stamped { n, file, map, h })
}

/// `next.spare` as segment `n` of log `log_id` starting at `first_seq`, if it
/// is stamped so (and whole); `None` if it is absent or anything else.
fn reopen_stamped(dir: &Path, n: u64, first_seq: u64, log_id: u64) -> Result<Option<Stamped>> {
    if n == 0 || !spare_names_successor(dir, n - 1, first_seq, log_id) {
        return Ok(None);
    }
    let path = dir.join(SPARE_NAME);
    let file = sys::private_rw()
        .open(&path)
        .map_err(|e| StoreError::io("open", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StoreError::io("stat", &path, e))?
        .len();
    let map = map_mut(&file, &path)?;
    let h = match SegHeader::decode(&map[..SEG_HEADER_LEN.min(map.len())]) {
        Ok(h) if h.capacity == len => h,
        _ => return Ok(None),
    };
    Ok(Some(Stamped { n, file, map, h }))
}

/// Whether the successor of sealed last segment `n` is missing: fine only if
/// `next.spare` holds segment `n + 1` of this log starting at `next_seq` (a
/// crash between sealing and renaming); otherwise the segment was lost.
pub(crate) fn check_successor(dir: &Path, n: u64, next_seq: u64, log_id: u64) -> Result<()> {
    if spare_names_successor(dir, n, next_seq, log_id) {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        dir: dir.to_path_buf(),
        segment: n + 1,
        offset: 0,
        what: format!(
            "segment file {} is missing: segment {n} is sealed and names it as the next \
             (the records from sequence {next_seq} on are lost)",
            raw_name(n + 1)
        ),
    })
}

/// True if `next.spare` is segment `n + 1` of log `log_id` starting at `next_seq`.
pub(crate) fn spare_names_successor(dir: &Path, n: u64, next_seq: u64, log_id: u64) -> bool {
    use std::io::Read;
    let mut b = [0u8; SEG_HEADER_LEN];
    let ok = File::open(dir.join(SPARE_NAME)).and_then(|mut f| f.read_exact(&mut b));
    ok.is_ok()
        && SegHeader::decode(&b)
            .is_ok_and(|h| h.segment == n + 1 && h.first_seq == next_seq && h.log_id == log_id)
}

/// Turn a spare into segment `n`: write its header, make it durable, rename it.
fn install_segment(dir: &Path, stamped: Stamped) -> Result<Active> {
    let Stamped { n, file, map, h } = stamped;
    let spare_path = dir.join(SPARE_NAME);
    let path = dir.join(raw_name(n));
    sys::rename(&spare_path, &path)?;
    sys::fsync_dir(dir)?;
    Ok(Active {
        n,
        path,
        file,
        map,
        h,
        pos: h.data_start as u64,
        synced: h.data_start as u64,
        next_slot: 0,
        index_dirty: false,
        index_synced_at: h.data_start as u64,
        written_back: h.data_start as u64,
        events: 0,
    })
}
