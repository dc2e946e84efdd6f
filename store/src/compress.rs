//! zstd for sealed segments: `seg-N.zst` is the raw segment's bytes `[0, data_end)`
//! cut into 1 MiB chunks, each compressed as one independent zstd frame (with its
//! content size and XXH64 checksum), concatenated. `zstd -d seg-N.zst` gives back
//! the raw segment; a damaged chunk is located by its compressed offset.
//!
//! This module owns compressing (to a temp file, fsync, rename, remove the raw file)
//! and decompressing; it never interprets frames or records.

use crate::error::{Result, StoreError};
use crate::format::{raw_name, zst_name, TMP_SUFFIX};
use crate::gate::SyncGate;
use crate::segment::AlignedBuf;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Raw bytes per zstd frame.
pub const CHUNK: usize = 1 << 20;

/// Raw bytes handed to zstd at a time (a frame is fed in these pieces).
const COMPRESS_PIECE: usize = 64 << 10;

/// Compress `raw` (a sealed segment, exactly `[0, data_end)`) into `dir/seg-N.zst`,
/// crash-safely: write `seg-N.zst.tmp`, fsync, rename, fsync the directory, then
/// remove `seg-N.log` and fsync the directory again. Returns the compressed size.
pub fn compress_segment(
    dir: &Path,
    n: u64,
    raw: &[u8],
    level: i32,
    gate: Option<&SyncGate>,
) -> Result<u64> {
    use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
    use zstd::zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};
    let fin = dir.join(zst_name(n));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", zst_name(n)));
    let zerr = |what: &'static str, code: usize| {
        StoreError::io(
            what,
            &tmp,
            std::io::Error::other(zstd::zstd_safe::get_error_name(code)),
        )
    };
    let mut cctx = CCtx::try_create().ok_or_else(|| {
        StoreError::io(
            "zstd init",
            &tmp,
            std::io::Error::other("could not allocate a zstd context"),
        )
    })?;
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .map_err(|c| zerr("zstd level", c))?;
    cctx.set_parameter(CParameter::ChecksumFlag(true))
        .map_err(|c| zerr("zstd checksum flag", c))?;
    let mut out = crate::sys::private_rw()
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StoreError::io("create", &tmp, e))?;
    let mut total = 0u64;
    let mut buf = Vec::with_capacity(zstd::zstd_safe::compress_bound(CHUNK));
    for chunk in raw.chunks(CHUNK) {
        // One frame per chunk, with its content size (pledged) and checksum, fed
        // in small pieces: between them the thread stops while the log writer
        // syncs (it runs in the writer's process: see `SyncGate`).
        buf.clear();
        cctx.set_pledged_src_size(Some(chunk.len() as u64))
            .map_err(|c| zerr("zstd frame size", c))?;
        let mut dst = OutBuffer::around(&mut buf);
        for piece in chunk.chunks(COMPRESS_PIECE) {
            if let Some(g) = gate {
                // Cancelled (the log is being finished): compress on regardless.
                g.pass();
            }
            let mut src = InBuffer::around(piece);
            while src.pos() < piece.len() {
                cctx.compress_stream2(&mut dst, &mut src, ZSTD_EndDirective::ZSTD_e_continue)
                    .map_err(|c| zerr("zstd compress", c))?;
            }
        }
        let mut empty = InBuffer::around(&[]);
        while cctx
            .compress_stream2(&mut dst, &mut empty, ZSTD_EndDirective::ZSTD_e_end)
            .map_err(|c| zerr("zstd compress", c))?
            > 0
        {}
        out.write_all(&buf)
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        total += buf.len() as u64;
    }
    out.sync_all()
        .map_err(|e| StoreError::io("fsync", &tmp, e))?;
    drop(out);
    fs::rename(&tmp, &fin).map_err(|e| StoreError::io("rename", &tmp, e))?;
    crate::sys::fsync_dir(dir)?;
    let raw_path = dir.join(raw_name(n));
    match fs::remove_file(&raw_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("remove", &raw_path, e)),
    }
    crate::sys::fsync_dir(dir)?;
    Ok(total)
}

/// Where decompression failed.
#[derive(Debug)]
pub struct ZstError {
    /// Offset of the bad chunk in the `.zst` file.
    pub compressed_offset: u64,
    /// Offset of that chunk in the raw segment.
    pub raw_offset: u64,
    /// What zstd said.
    pub what: String,
}

fn frames(src: &[u8]) -> std::result::Result<Vec<(usize, usize, usize)>, ZstError> {
    // (compressed offset, compressed len, content len)
    let mut out = Vec::new();
    let (mut off, mut raw) = (0usize, 0usize);
    while off < src.len() {
        let bad = |what: String| ZstError {
            compressed_offset: off as u64,
            raw_offset: raw as u64,
            what,
        };
        let len = zstd::zstd_safe::find_frame_compressed_size(&src[off..]).map_err(|c| {
            bad(format!(
                "not a zstd frame ({})",
                zstd::zstd_safe::get_error_name(c)
            ))
        })?;
        let content = match zstd::zstd_safe::get_frame_content_size(&src[off..off + len]) {
            Ok(Some(n)) if n as usize <= CHUNK => n as usize,
            other => return Err(bad(format!("bad frame content size {other:?}"))),
        };
        out.push((off, len, content));
        off += len;
        raw += content;
    }
    Ok(out)
}

/// Decompress a `.zst` segment (the first `want` bytes or more, or all if `None`).
pub fn decompress(
    path: &Path,
    want: Option<usize>,
) -> Result<std::result::Result<AlignedBuf, ZstError>> {
    let src = match want {
        None => fs::read(path).map_err(|e| StoreError::io("read", path, e))?,
        Some(w) => read_frames_for(path, w)?,
    };
    Ok(decompress_bytes(&src, want))
}

/// The start of the `.zst` file at `path`: whole frames up to the first one that
/// brings the content to `want` bytes, read 256 KiB at a time (reading ScanStarted
/// needs one 1 MiB chunk, ~100 KiB of a file of several MiB). At the end of the
/// file, or where a frame does not parse, everything read so far is returned (and
/// [`decompress_bytes`] reports any damage).
fn read_frames_for(path: &Path, want: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    const STEP: usize = 256 << 10;
    let mut f = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
    let mut src: Vec<u8> = Vec::new();
    // (compressed offset, raw bytes) after the last complete frame seen.
    let (mut off, mut raw) = (0usize, 0usize);
    loop {
        let old = src.len();
        src.resize(old + STEP, 0);
        let n = f
            .read(&mut src[old..])
            .map_err(|e| StoreError::io("read", path, e))?;
        src.truncate(old + n);
        let eof = n == 0;
        // A frame that does not parse is incomplete (read more) or damaged
        // (decompress_bytes says so).
        while let Ok(len) = zstd::zstd_safe::find_frame_compressed_size(&src[off..]) {
            if off + len > src.len() {
                break;
            }
            match zstd::zstd_safe::get_frame_content_size(&src[off..off + len]) {
                Ok(Some(c)) => {
                    off += len;
                    raw += c as usize;
                }
                _ => return Ok(src),
            }
            if raw >= want {
                src.truncate(off);
                return Ok(src);
            }
        }
        if eof {
            return Ok(src);
        }
    }
}

/// Decompress chunks of `src` until at least `want` bytes (or all).
pub fn decompress_bytes(
    src: &[u8],
    want: Option<usize>,
) -> std::result::Result<AlignedBuf, ZstError> {
    let fr = frames(src)?;
    let mut take = fr.len();
    if let Some(w) = want {
        let mut acc = 0;
        for (i, f) in fr.iter().enumerate() {
            acc += f.2;
            if acc >= w {
                take = i + 1;
                break;
            }
        }
    }
    let total: usize = fr[..take].iter().map(|f| f.2).sum();
    let mut buf = AlignedBuf::zeroed(total);
    let mut d = zstd::bulk::Decompressor::new().map_err(|e| ZstError {
        compressed_offset: 0,
        raw_offset: 0,
        what: e.to_string(),
    })?;
    let out = buf.as_mut_slice();
    let mut raw = 0usize;
    for &(off, len, content) in &fr[..take] {
        let n = d
            .decompress_to_buffer(&src[off..off + len], &mut out[raw..raw + content])
            .map_err(|e| ZstError {
                compressed_offset: off as u64,
                raw_offset: raw as u64,
                what: e.to_string(),
            })?;
        if n != content {
            return Err(ZstError {
                compressed_offset: off as u64,
                raw_offset: raw as u64,
                what: format!("chunk decompressed to {n} bytes, header says {content}"),
            });
        }
        raw += content;
    }
    Ok(buf)
}

/// A sealed segment waiting for compression.
pub struct Job {
    /// Segment number.
    pub n: u64,
    /// Bytes `[0, data_end)` of the sealed segment.
    pub data_end: u64,
}

/// The background compressor: one thread, fed sealed segments in order.
pub struct Compressor {
    tx: Option<crossbeam_channel::Sender<Job>>,
    handle: Option<std::thread::JoinHandle<Result<u64>>>,
}

impl Compressor {
    /// Start the thread for scan directory `dir`; it pauses at `gate` while the
    /// writer syncs.
    pub fn start(dir: PathBuf, level: i32, gate: std::sync::Arc<SyncGate>) -> Compressor {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let handle = std::thread::Builder::new()
            .name("prtip-zstd".into())
            .spawn(move || -> Result<u64> {
                let mut done = 0;
                let mut first_err = None;
                for job in rx {
                    if first_err.is_some() {
                        continue;
                    }
                    if let Err(e) = compress_one(&dir, &job, level, Some(&gate)) {
                        first_err = Some(e);
                    } else {
                        done += 1;
                    }
                }
                match first_err {
                    Some(e) => Err(e),
                    None => Ok(done),
                }
            })
            .expect("spawn zstd thread");
        Compressor {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Queue a sealed segment.
    pub fn push(&self, job: Job) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    /// Wait for every queued segment; returns how many were compressed.
    pub fn finish(mut self) -> Result<u64> {
        self.tx.take();
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(StoreError::Closed("zstd thread panicked".into())),
            None => Ok(0),
        }
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Compress sealed raw segment `segment` of the log in `dir` now (what the
/// background compressor does): it must be sealed; the raw file is replaced by
/// `seg-N.zst` crash-safely. Returns the compressed size. Do not call it on a log
/// whose writer compresses on its own (`LogOptions::compress_sealed`).
pub fn compress_sealed_segment(dir: &Path, segment: u64, level: i32) -> Result<u64> {
    compress_one(
        dir,
        &Job {
            n: segment,
            data_end: u64::MAX,
        },
        level,
        None,
    )
}

fn compress_one(dir: &Path, job: &Job, level: i32, gate: Option<&SyncGate>) -> Result<u64> {
    let raw_path = dir.join(raw_name(job.n));
    let f = File::open(&raw_path).map_err(|e| StoreError::io("open", &raw_path, e))?;
    // SAFETY: the file is a sealed segment: no process writes to it any more
    // (the writer moved on, and only the writer ever writes segments).
    let map =
        unsafe { memmap2::Mmap::map(&f) }.map_err(|e| StoreError::io("mmap", &raw_path, e))?;
    let end = if job.data_end == u64::MAX {
        // Unknown (queued by recovery): read it from the seal frame, which also
        // checks that the segment really is sealed.
        let h = crate::format::SegHeader::decode(&map).map_err(|p| StoreError::Corrupt {
            dir: dir.to_path_buf(),
            segment: job.n,
            offset: 0,
            what: format!("segment header: {p:?}"),
        })?;
        let view = crate::segment::SegView { b: &map, h };
        match view
            .find_tail(crate::segment::SegMode::Complete, false)
            .stop
        {
            crate::segment::Stop::Sealed(s) => s.data_end as usize,
            other => {
                return Err(StoreError::Corrupt {
                    dir: dir.to_path_buf(),
                    segment: job.n,
                    offset: 0,
                    what: format!("segment is not sealed ({other:?}); left uncompressed"),
                })
            }
        }
    } else {
        job.data_end as usize
    };
    compress_segment(dir, job.n, &map[..end.min(map.len())], level, gate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_round_trip_and_damage_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Vec<u8> = (0..3 * CHUNK + 1234)
            .map(|i| (i % 251) as u8 ^ (i / 7) as u8)
            .collect();
        std::fs::write(dir.path().join(raw_name(4)), &raw).unwrap();
        let n = compress_segment(dir.path(), 4, &raw, 3, None).unwrap();
        assert!(n < raw.len() as u64);
        assert!(!dir.path().join(raw_name(4)).exists());
        let zpath = dir.path().join(zst_name(4));
        let back = decompress(&zpath, None).unwrap().unwrap();
        assert_eq!(&back[..], &raw[..]);
        let part = decompress(&zpath, Some(10)).unwrap().unwrap();
        assert_eq!(&part[..], &raw[..CHUNK]);
        // Only whole frames up to the one that covers `want` are read.
        let fr0 = frames(&std::fs::read(&zpath).unwrap()).unwrap();
        let head = read_frames_for(&zpath, CHUNK + 1).unwrap();
        assert_eq!(head.len(), fr0[1].0 + fr0[1].1);
        let part = decompress(&zpath, Some(CHUNK + 1)).unwrap().unwrap();
        assert_eq!(&part[..], &raw[..2 * CHUNK]);
        let all = decompress(&zpath, Some(usize::MAX)).unwrap().unwrap();
        assert_eq!(&all[..], &raw[..]);
        // flip a byte in the second chunk
        let mut z = std::fs::read(&zpath).unwrap();
        let fr = frames(&z).unwrap();
        let at = fr[1].0 + fr[1].1 / 2;
        z[at] ^= 0x40;
        let err = decompress_bytes(&z, None).err().expect("damage detected");
        assert_eq!(err.compressed_offset, fr[1].0 as u64);
        assert_eq!(err.raw_offset, CHUNK as u64);
    }
}
