//! One segment's bytes and how to walk them: frame checks, the tail search that
//! recovery and readers share, and the rules that tell a torn tail from corruption.
//!
//! This module owns the reading side of the format over a byte slice (mapped or
//! decompressed). It never writes, never maps, never lists directories.

use crate::format::*;
use crate::record::EventKind;
use std::ops::Deref;

/// 8-aligned owned bytes (decompressed segments), so rkyv can access them in place.
pub struct AlignedBuf {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> AlignedBuf {
        AlignedBuf {
            words: vec![0u64; len.div_ceil(8)],
            len,
        }
    }
    /// The bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the Vec<u64> owns at least `len` initialized bytes; u8 has no
        // alignment or validity requirements.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, self.len) }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: as in `as_mut_slice`, read-only.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.len) }
    }
}

/// The bytes of one segment: a read-only map of a raw file, or a decompressed copy.
pub enum SegData {
    /// Mapped raw segment (length = file length at map time).
    Map(memmap2::Mmap),
    /// Decompressed `.zst` segment (length = data end).
    Owned(AlignedBuf),
}

impl Deref for SegData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SegData::Map(m) => m,
            SegData::Owned(b) => b,
        }
    }
}

/// What a frame position holds, fully checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameCheck {
    /// A frame whose header and payload check out.
    Valid(FrameHeader),
    /// Nothing written (32 zero bytes).
    Zero,
    /// Fewer than 32 bytes left before the end of the bytes.
    Eof,
    /// The header fails its CRC.
    BadHeader,
    /// The header checks out but the payload does not fit.
    Overrun(FrameHeader),
    /// The header checks out but the payload fails its CRC.
    BadPayload(FrameHeader),
}

/// Check the frame at `off`.
#[inline]
pub fn check_frame(b: &[u8], seed: u32, off: u64) -> FrameCheck {
    let off = off as usize;
    if off + FRAME_HEADER_LEN > b.len() {
        return FrameCheck::Eof;
    }
    match FrameHeader::probe(&b[off..], seed) {
        FrameProbe::Zero => FrameCheck::Zero,
        FrameProbe::BadHeader => FrameCheck::BadHeader,
        FrameProbe::Header(h) => {
            let start = off + FRAME_HEADER_LEN;
            let end = start + h.len as usize;
            if end > b.len() {
                return FrameCheck::Overrun(h);
            }
            if payload_crc(seed, &b[start..end]) != h.payload_crc {
                return FrameCheck::BadPayload(h);
            }
            FrameCheck::Valid(h)
        }
    }
}

impl FrameCheck {
    /// Words for an error message.
    pub fn describe(&self) -> String {
        match self {
            FrameCheck::Valid(_) => "valid frame".into(),
            FrameCheck::Zero => "unwritten (zero) frame header".into(),
            FrameCheck::Eof => "end of file inside a frame header".into(),
            FrameCheck::BadHeader => "frame header CRC mismatch".into(),
            FrameCheck::Overrun(h) => format!("frame length {} runs past the end", h.len),
            FrameCheck::BadPayload(h) => {
                format!(
                    "frame payload CRC mismatch ({} bytes, {} records)",
                    h.len, h.count
                )
            }
        }
    }
}

/// How a segment must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegMode {
    /// Sealed, compressed, not the last, or closed by `finish`: every frame up to the
    /// end must be valid; anything else is corruption.
    Complete,
    /// The last raw segment at full capacity: its end after a crash may be torn.
    Active,
}

/// Why the walk of a segment stopped where it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A valid seal frame; the log continues in the next segment.
    Sealed(SealInfo),
    /// The clean end of written data (zero header, or end of a closed file).
    End,
    /// A writer is alive: the end of what is visible now.
    Live,
    /// A torn tail (never acknowledged as durable): what it held.
    Torn(TornTail),
    /// Corruption of data that was durable.
    Corrupt {
        /// Offset of the bad bytes.
        offset: u64,
        /// What check failed.
        what: String,
    },
}

/// What a torn tail holds (estimates: the bytes are not trustworthy).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TornTail {
    /// Why the frame at the cut is not valid.
    pub reason: String,
    /// Non-zero bytes found after the cut.
    pub dropped_bytes: u64,
    /// Frames after the cut that checked out but were not proven durable.
    pub dropped_frames: u64,
    /// Records in those frames.
    pub dropped_events: u64,
}

/// Result of finding the end of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    /// Offset just after the last valid frame (where appending continues).
    pub end: u64,
    /// Sequence number of the next record.
    pub next_seq: u64,
    /// Why the walk stopped at `end`.
    pub stop: Stop,
    /// Offset from which frames were verified one by one (everything before it was
    /// proven durable and was skipped by the index).
    pub verified_from: u64,
    /// Flags of the close frames walked ([`FLAG_SALVAGED`]).
    pub flags: u64,
}

/// Parsed segment geometry plus its bytes.
pub struct SegView<'a> {
    /// The bytes.
    pub b: &'a [u8],
    /// The header.
    pub h: SegHeader,
}

impl<'a> SegView<'a> {
    fn entry(&self, slot: u64) -> Option<IndexEntry> {
        if slot >= self.h.index_slots as u64 {
            return None;
        }
        let o = self.h.index_offset(slot);
        if o + INDEX_ENTRY_LEN > self.b.len() {
            return None;
        }
        IndexEntry::decode(&self.b[o..], self.h.seed())
    }

    fn entry_is_zero(&self, slot: u64) -> bool {
        let o = self.h.index_offset(slot);
        o + INDEX_ENTRY_LEN > self.b.len() || IndexEntry::is_zero(&self.b[o..])
    }

    /// Last index slot that is not zero (binary search; entries are written densely
    /// from slot 0). `None` if slot 0 is zero.
    fn last_nonzero_slot(&self) -> Option<u64> {
        let slots = self.h.index_slots as u64;
        if slots == 0 || self.entry_is_zero(0) {
            return None;
        }
        let (mut lo, mut hi) = (0u64, slots); // lo non-zero, hi zero (or past the end)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.entry_is_zero(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(lo)
    }

    /// The entry at `slot` if it is valid and points at a valid data frame with the
    /// sequence number it claims.
    fn witness(&self, slot: u64) -> Option<(IndexEntry, FrameHeader)> {
        let e = self.entry(slot)?;
        if e.frame_offset < self.h.data_start as u64 || e.frame_offset % 8 != 0 {
            return None;
        }
        match check_frame(self.b, self.h.seed(), e.frame_offset) {
            FrameCheck::Valid(f) if f.first_seq == e.first_seq && f.kind == FRAME_DATA => {
                Some((e, f))
            }
            _ => None,
        }
    }

    /// Latest index entry whose frame starts at or before `limit` and checks out.
    pub fn start_entry(&self, limit: u64, top: Option<u64>) -> Option<IndexEntry> {
        let data_start = self.h.data_start as u64;
        if limit < data_start {
            return None;
        }
        let mut slot = self.h.slot_of(limit).min(top?);
        for _ in 0..256 {
            if let Some((e, _)) = self.witness(slot) {
                if e.frame_offset <= limit {
                    return Some(e);
                }
            }
            if slot == 0 {
                break;
            }
            slot -= 1;
        }
        None
    }

    /// Find where the segment ends.
    ///
    /// `mode` says whether a bad frame can be a torn tail; `alive` that a writer is
    /// appending right now (then nothing past the visible end is judged).
    pub fn find_tail(&self, mode: SegMode, alive: bool) -> Tail {
        let seed = self.h.seed();
        let data_start = self.h.data_start as u64;
        let top = self.last_nonzero_slot();
        // 1. A witness: the latest index entry pointing at a valid frame. In an
        //    active segment, everything before the witness's `synced` is durable.
        let mut durable = data_start;
        if let Some(k) = top {
            let mut slot = k;
            for _ in 0..256 {
                if let Some((e, f)) = self.witness(slot) {
                    durable = match mode {
                        SegMode::Complete => e.frame_offset,
                        SegMode::Active => (f.synced as u64).clamp(data_start, e.frame_offset),
                    };
                    break;
                }
                if slot == 0 {
                    break;
                }
                slot -= 1;
            }
        }
        // 2. Start from an index entry at or before the durable point.
        let (mut off, mut seq) = match self.start_entry(durable, top) {
            Some(e) => (e.frame_offset, e.first_seq),
            None => (data_start, self.h.first_seq),
        };
        let verified_from = off;
        // End of the last close frame walked, and the flags of close frames.
        let mut closed_at = None;
        let mut flags = 0;
        // 3. Walk frames.
        loop {
            let c = check_frame(self.b, seed, off);
            match c {
                FrameCheck::Valid(f) if f.kind == FRAME_CLOSE && f.first_seq == seq => {
                    let p = (off + FRAME_HEADER_LEN as u64) as usize;
                    let end = off + f.total();
                    let s = (f.len as usize == SEAL_PAYLOAD_LEN)
                        .then(|| SealInfo::decode(&self.b[p..p + SEAL_PAYLOAD_LEN]));
                    match s {
                        Some(s) if s.data_end == end && s.next_seq == seq => {
                            flags |= s.flags;
                            closed_at = Some(end);
                            off = end;
                        }
                        _ => {
                            return self.bad(
                                off,
                                seq,
                                verified_from,
                                "close frame disagrees with the segment".into(),
                                mode,
                                alive,
                                durable,
                                c,
                            )
                        }
                    }
                }
                FrameCheck::Valid(f) if f.first_seq == seq || f.kind == FRAME_SEAL => {
                    if f.kind == FRAME_SEAL {
                        let p = (off + FRAME_HEADER_LEN as u64) as usize;
                        if f.len as usize != SEAL_PAYLOAD_LEN {
                            return self.bad(
                                off,
                                seq,
                                verified_from,
                                "seal frame of wrong size".into(),
                                mode,
                                alive,
                                durable,
                                c,
                            );
                        }
                        let s = SealInfo::decode(&self.b[p..p + SEAL_PAYLOAD_LEN]);
                        let end = off + f.total();
                        if s.data_end != end || s.next_seq != seq || f.first_seq != seq {
                            return self.bad(off, seq, verified_from, format!(
                                "seal frame disagrees with the segment (data_end {} vs {end}, next_seq {} vs {seq})",
                                s.data_end, s.next_seq), mode, alive, durable, c);
                        }
                        return Tail {
                            end,
                            next_seq: seq,
                            stop: Stop::Sealed(s),
                            verified_from,
                            flags: flags | s.flags,
                        };
                    }
                    if f.kind != FRAME_DATA {
                        return self.bad(
                            off,
                            seq,
                            verified_from,
                            format!("unknown frame kind {}", f.kind),
                            mode,
                            alive,
                            durable,
                            c,
                        );
                    }
                    off += f.total();
                    seq += f.count as u64;
                }
                FrameCheck::Valid(f) => {
                    let what = format!(
                        "frame starts at sequence {} but {} was expected",
                        f.first_seq, seq
                    );
                    return self.bad(off, seq, verified_from, what, mode, alive, durable, c);
                }
                FrameCheck::Eof => {
                    let t = Tail {
                        end: off,
                        next_seq: seq,
                        stop: if alive { Stop::Live } else { Stop::End },
                        verified_from,
                        flags,
                    };
                    return self.judge_end(t, mode, closed_at);
                }
                FrameCheck::Zero => {
                    let mut t = self.at_zero(off, seq, verified_from, mode, alive, durable);
                    t.flags = flags;
                    return self.judge_end(t, mode, closed_at);
                }
                other => {
                    return self.bad(
                        off,
                        seq,
                        verified_from,
                        other.describe(),
                        mode,
                        alive,
                        durable,
                        other,
                    );
                }
            }
        }
    }

    /// A closed segment (format 2) ends with the close frame its writer wrote
    /// when it finished: one that ends anywhere else was cut short (truncated at
    /// a frame boundary, or a page of frames lost), which no crash can do to it.
    fn judge_end(&self, mut t: Tail, mode: SegMode, closed_at: Option<u64>) -> Tail {
        if mode == SegMode::Complete
            && t.stop == Stop::End
            && self.h.format >= FORMAT_CLOSE_FRAMES
            && closed_at != Some(t.end)
        {
            t.stop = Stop::Corrupt {
                offset: t.end,
                what: format!(
                    "the segment ends at offset {} without the close frame a finished log \
                     ends with: it was cut short (truncated or lost data after this point)",
                    t.end
                ),
            };
        }
        t
    }

    fn at_zero(
        &self,
        off: u64,
        seq: u64,
        verified_from: u64,
        mode: SegMode,
        alive: bool,
        durable: u64,
    ) -> Tail {
        let mk = |stop| Tail {
            end: off,
            next_seq: seq,
            stop,
            verified_from,
            flags: 0,
        };
        if alive {
            return mk(Stop::Live);
        }
        match mode {
            SegMode::Complete => {
                // A closed segment ends with zeros up to the end of the file.
                if let Some(p) = self.b[off as usize..].iter().position(|&x| x != 0) {
                    return mk(Stop::Corrupt {
                        offset: off,
                        what: format!(
                            "zero frame header followed by data at offset {} in a complete segment",
                            off + p as u64
                        ),
                    });
                }
                mk(Stop::End)
            }
            SegMode::Active => {
                if off < durable {
                    return mk(Stop::Corrupt {
                        offset: off,
                        what: "zeroed bytes inside data proven durable".into(),
                    });
                }
                if let Some(w) = self.index_evidence(off) {
                    return mk(Stop::Corrupt {
                        offset: off,
                        what: format!(
                            "zeroed bytes before a frame at {w} that proves them durable"
                        ),
                    });
                }
                let dropped = self.nonzero_extent(off);
                if dropped == 0 {
                    mk(Stop::End)
                } else {
                    mk(Stop::Torn(TornTail {
                        reason: "partially written frame (zero header)".into(),
                        dropped_bytes: dropped,
                        ..Default::default()
                    }))
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bad(
        &self,
        off: u64,
        seq: u64,
        verified_from: u64,
        what: String,
        mode: SegMode,
        alive: bool,
        durable: u64,
        c: FrameCheck,
    ) -> Tail {
        let mk = |stop| Tail {
            end: off,
            next_seq: seq,
            stop,
            verified_from,
            flags: 0,
        };
        if mode == SegMode::Complete || off < durable {
            return mk(Stop::Corrupt { offset: off, what });
        }
        if alive {
            return mk(Stop::Live);
        }
        // Evidence that the bad frame was durable: a later valid frame whose
        // `synced` reaches past it.
        let mut dropped_frames = 0;
        let mut dropped_events = 0;
        if let FrameCheck::BadPayload(h) | FrameCheck::Valid(h) = c {
            let mut next = off + h.total();
            for _ in 0..4096 {
                match check_frame(self.b, self.h.seed(), next) {
                    FrameCheck::Valid(f) => {
                        if f.synced as u64 > off {
                            return mk(Stop::Corrupt {
                                offset: off,
                                what: format!(
                                    "{what}; the frame at {next} proves this data was durable"
                                ),
                            });
                        }
                        dropped_frames += 1;
                        dropped_events += f.count as u64;
                        next += f.total();
                    }
                    _ => break,
                }
            }
        }
        if let Some(w) = self.index_evidence(off) {
            return mk(Stop::Corrupt {
                offset: off,
                what: format!("{what}; the frame at {w} proves this data was durable"),
            });
        }
        mk(Stop::Torn(TornTail {
            reason: what,
            dropped_bytes: self.nonzero_extent(off),
            dropped_frames,
            dropped_events,
        }))
    }

    /// A valid frame listed in the index after `off` whose `synced` is past `off`.
    fn index_evidence(&self, off: u64) -> Option<u64> {
        let top = self.last_nonzero_slot()?;
        let first = if off >= self.h.data_start as u64 {
            self.h.slot_of(off)
        } else {
            0
        };
        let mut seen = 0;
        for slot in (first..=top).rev() {
            if let Some((e, f)) = self.witness(slot) {
                if e.frame_offset > off && f.synced as u64 > off {
                    return Some(e.frame_offset);
                }
            }
            seen += 1;
            if seen > 4096 {
                break;
            }
        }
        None
    }

    /// Bytes from `off` to the end of the last non-zero byte, scanning until 64 KiB
    /// of zeros in a row (or the end).
    fn nonzero_extent(&self, off: u64) -> u64 {
        let b = self.b;
        let mut last_nonzero = None;
        let mut pos = off as usize;
        let mut zero_run = 0usize;
        while pos < b.len() && zero_run < (64 << 10) {
            let end = (pos + 4096 - pos % 4096).min(b.len());
            if let Some(p) = b[pos..end].iter().rposition(|&x| x != 0) {
                last_nonzero = Some(pos + p);
                zero_run = 0;
            } else {
                zero_run += end - pos;
            }
            pos = end;
        }
        last_nonzero.map(|p| p as u64 + 1 - off).unwrap_or(0)
    }

    /// Packed position of the latest Checkpoint record before `end` in this segment
    /// (via the index, then a walk of record headers), or the index's carried-over
    /// position from earlier segments. `None` if nothing is known.
    pub fn last_checkpoint(&self, end: u64) -> Option<u64> {
        let seed = self.h.seed();
        let top = self.last_nonzero_slot();
        let (mut off, mut found) = match self.start_entry(end.saturating_sub(1), top) {
            Some(e) => (e.frame_offset, Some(e.last_checkpoint)),
            None => (self.h.data_start as u64, None),
        };
        while off < end {
            let FrameCheck::Valid(f) = check_frame(self.b, seed, off) else {
                break;
            };
            if f.kind == FRAME_CLOSE {
                off += f.total();
                continue;
            }
            if f.kind != FRAME_DATA {
                break;
            }
            let mut r = (off + FRAME_HEADER_LEN as u64) as usize;
            let pend = r + f.len as usize;
            while r + RECORD_HEADER_LEN <= pend {
                let tag = self.b[r];
                let len = u32::from_le_bytes(self.b[r + 4..r + 8].try_into().unwrap()) as usize;
                if tag == EventKind::Checkpoint as u8 {
                    found = Some(pack_pos(self.h.segment, r as u64));
                }
                r += RECORD_HEADER_LEN + align_up(len as u64, 8) as usize;
            }
            off += f.total();
        }
        match found {
            Some(NO_POS) | None => None,
            Some(p) => Some(p),
        }
    }
}
