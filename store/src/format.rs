//! The on-disk layout of a scan log, byte by byte (see `store/FORMAT.md`).
//!
//! This module owns the constants, the segment header, frame headers, index
//! entries and seal payloads: how they are encoded, decoded and checksummed. It
//! never opens files, maps memory or serializes events (that is `record`).
//!
//! All integers are little endian. Every checksum is CRC32C (Castagnoli).

/// First 8 bytes of every segment.
pub const MAGIC: [u8; 8] = *b"PRTIPSEG";
/// Version of this layout. Readers refuse segments with a higher version.
///
/// Version 2 added the close frame ([`FRAME_CLOSE`]), the `flags` of seals and
/// close frames, and the rules that a closed or compressed segment must end in a
/// seal or close frame and that a sealed segment's successor must exist.
pub const FORMAT_VERSION: u32 = 2;
/// First format version whose segments end in a seal or close frame.
pub const FORMAT_CLOSE_FRAMES: u32 = 2;
/// Bytes of the segment header.
pub const SEG_HEADER_LEN: usize = 64;
/// Bytes of a frame header.
pub const FRAME_HEADER_LEN: usize = 32;
/// Bytes of one sparse-index entry.
pub const INDEX_ENTRY_LEN: usize = 32;
/// Bytes of data covered by one sparse-index entry.
pub const INDEX_STRIDE: u64 = 64 * 1024;
/// Bytes of a seal frame's payload.
pub const SEAL_PAYLOAD_LEN: usize = 64;
/// Bytes of a record header inside a data frame.
pub const RECORD_HEADER_LEN: usize = 8;
/// Bytes of a seal or close frame (header and payload).
pub const SEAL_RESERVE: u64 = (FRAME_HEADER_LEN + SEAL_PAYLOAD_LEN) as u64;
/// Bytes a segment keeps free at its end: a close frame and, after a resume
/// appended nothing more, a seal frame.
pub const END_RESERVE: u64 = 2 * SEAL_RESERVE;
/// Page size assumed for alignment of the data area and of truncation points.
pub const PAGE: u64 = 4096;
/// Frame kind: records.
pub const FRAME_DATA: u16 = 1;
/// Frame kind: the segment is complete; the log continues in the next segment.
pub const FRAME_SEAL: u16 = 2;
/// Frame kind: the writer closed the log here (`finish`); a later writer may
/// append after it. Its payload is a [`SealInfo`] describing the log so far.
pub const FRAME_CLOSE: u16 = 3;
/// Flag of seal and close frames: the log was written by `prtip log salvage` from
/// the readable part of a damaged log.
pub const FLAG_SALVAGED: u64 = 1;
/// "No position" in packed log positions.
pub const NO_POS: u64 = u64::MAX;
/// Smallest segment capacity accepted.
pub const MIN_SEGMENT: u64 = 1 << 20;
/// Largest segment capacity (offsets are 32-bit in frame headers).
pub const MAX_SEGMENT: u64 = (1 << 32) - PAGE;

/// Round `v` up to a multiple of `a` (a power of two).
#[inline]
pub const fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

/// Pack (segment, offset) into one u64 (`segment << 32 | offset`).
#[inline]
pub const fn pack_pos(segment: u64, offset: u64) -> u64 {
    (segment << 32) | offset
}

/// Inverse of [`pack_pos`].
#[inline]
pub const fn unpack_pos(pos: u64) -> (u64, u64) {
    (pos >> 32, pos & 0xffff_ffff)
}

#[inline]
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
#[inline]
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
#[inline]
fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}

/// Why a segment header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Shorter than a header.
    Short,
    /// Not our magic.
    Magic,
    /// Header CRC mismatch.
    Crc,
    /// Written by a newer format, or another event schema.
    Version {
        /// Format version found.
        format: u32,
        /// Schema version found.
        schema: u32,
    },
    /// Fields are inconsistent.
    Layout(String),
}

/// The 64-byte header at offset 0 of every segment. Written once, never changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegHeader {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// [`crate::event::SCHEMA_VERSION`] of the writer.
    pub schema: u32,
    /// Segment number, 0-based, contiguous.
    pub segment: u64,
    /// Sequence number of the first record of this segment.
    pub first_seq: u64,
    /// Random id shared by all segments of one log.
    pub log_id: u64,
    /// Preallocated size of the segment file.
    pub capacity: u64,
    /// Offset of the first frame.
    pub data_start: u32,
    /// Bytes of data per index entry.
    pub index_stride: u32,
    /// Number of index entries.
    pub index_slots: u32,
    /// CRC32C of bytes 0..60; also the seed of every frame CRC in this segment.
    pub crc: u32,
}

impl SegHeader {
    /// A header for a new segment (computes the index layout and the CRC).
    pub fn new(segment: u64, first_seq: u64, log_id: u64, capacity: u64) -> SegHeader {
        let slots = capacity.div_ceil(INDEX_STRIDE);
        let data_start = align_up(SEG_HEADER_LEN as u64 + slots * INDEX_ENTRY_LEN as u64, PAGE);
        let mut h = SegHeader {
            format: FORMAT_VERSION,
            schema: crate::event::SCHEMA_VERSION,
            segment,
            first_seq,
            log_id,
            capacity,
            data_start: data_start as u32,
            index_stride: INDEX_STRIDE as u32,
            index_slots: slots as u32,
            crc: 0,
        };
        h.crc = crc32c::crc32c(&h.encode()[..60]);
        h
    }

    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; SEG_HEADER_LEN] {
        let mut b = [0u8; SEG_HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.format.to_le_bytes());
        b[12..16].copy_from_slice(&self.schema.to_le_bytes());
        b[16..24].copy_from_slice(&self.segment.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.log_id.to_le_bytes());
        b[40..48].copy_from_slice(&self.capacity.to_le_bytes());
        b[48..52].copy_from_slice(&self.data_start.to_le_bytes());
        b[52..56].copy_from_slice(&self.index_stride.to_le_bytes());
        b[56..60].copy_from_slice(&self.index_slots.to_le_bytes());
        b[60..64].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    /// Parse and check a header.
    pub fn decode(b: &[u8]) -> Result<SegHeader, HeaderProblem> {
        if b.len() < SEG_HEADER_LEN {
            return Err(HeaderProblem::Short);
        }
        if b[0..8] != MAGIC {
            return Err(HeaderProblem::Magic);
        }
        let crc = u32_at(b, 60);
        if crc32c::crc32c(&b[..60]) != crc {
            return Err(HeaderProblem::Crc);
        }
        let h = SegHeader {
            format: u32_at(b, 8),
            schema: u32_at(b, 12),
            segment: u64_at(b, 16),
            first_seq: u64_at(b, 24),
            log_id: u64_at(b, 32),
            capacity: u64_at(b, 40),
            data_start: u32_at(b, 48),
            index_stride: u32_at(b, 52),
            index_slots: u32_at(b, 56),
            crc,
        };
        // Another event schema's records do not decode as ours (store/FORMAT.md,
        // "Event schema versions"): older and newer are refused alike.
        if h.format > FORMAT_VERSION || h.schema != crate::event::SCHEMA_VERSION {
            return Err(HeaderProblem::Version {
                format: h.format,
                schema: h.schema,
            });
        }
        let index_end = SEG_HEADER_LEN as u64 + h.index_slots as u64 * INDEX_ENTRY_LEN as u64;
        if h.index_stride == 0
            || (h.data_start as u64) < index_end
            || !(h.data_start as u64).is_multiple_of(8)
            || h.capacity > MAX_SEGMENT
            || h.capacity < h.data_start as u64 + SEAL_RESERVE
        {
            return Err(HeaderProblem::Layout(format!(
                "data_start {} index_slots {} stride {} capacity {}",
                h.data_start, h.index_slots, h.index_stride, h.capacity
            )));
        }
        Ok(h)
    }

    /// Seed of frame and index CRCs in this segment.
    #[inline]
    pub fn seed(&self) -> u32 {
        self.crc
    }

    /// Offset of index entry `slot`.
    #[inline]
    pub fn index_offset(&self, slot: u64) -> usize {
        SEG_HEADER_LEN + slot as usize * INDEX_ENTRY_LEN
    }

    /// Index slot covering data offset `off`.
    #[inline]
    pub fn slot_of(&self, off: u64) -> u64 {
        (off - self.data_start as u64) / self.index_stride as u64
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload bytes (a multiple of 8, > 0).
    pub len: u32,
    /// Records in the payload (0 for a seal frame).
    pub count: u32,
    /// Sequence number of the first record (for a seal frame: of the next segment's first record).
    pub first_seq: u64,
    /// Bytes of this segment known durable when this frame was written.
    pub synced: u32,
    /// [`FRAME_DATA`] or [`FRAME_SEAL`].
    pub kind: u16,
    /// CRC32C(seed, payload).
    pub payload_crc: u32,
}

/// What sits at a frame position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameProbe {
    /// 32 zero bytes: nothing was written here.
    Zero,
    /// Header bytes fail their CRC (torn or corrupt).
    BadHeader,
    /// A header that checks out.
    Header(FrameHeader),
}

impl FrameHeader {
    /// Encode with the header CRC.
    pub fn encode(&self, seed: u32) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0..4].copy_from_slice(&self.len.to_le_bytes());
        b[4..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.synced.to_le_bytes());
        b[20..22].copy_from_slice(&self.kind.to_le_bytes());
        b[24..28].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c_append(seed, &b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Look at the 32 bytes at a frame position.
    #[inline]
    pub fn probe(b: &[u8], seed: u32) -> FrameProbe {
        let b = &b[..FRAME_HEADER_LEN];
        let crc = u32_at(b, 28);
        if crc32c::crc32c_append(seed, &b[..28]) != crc {
            if b.iter().all(|&x| x == 0) {
                return FrameProbe::Zero;
            }
            return FrameProbe::BadHeader;
        }
        let h = FrameHeader {
            len: u32_at(b, 0),
            count: u32_at(b, 4),
            first_seq: u64_at(b, 8),
            synced: u32_at(b, 16),
            kind: u16_at(b, 20),
            payload_crc: u32_at(b, 24),
        };
        if h.len == 0 || !h.len.is_multiple_of(8) || u16_at(b, 22) != 0 {
            if b.iter().all(|&x| x == 0) {
                return FrameProbe::Zero;
            }
            return FrameProbe::BadHeader;
        }
        FrameProbe::Header(h)
    }

    /// Total bytes of the frame (header + payload).
    #[inline]
    pub fn total(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + self.len as u64
    }
}

/// CRC of a payload in a segment with `seed`: CRC32C continuing from `seed`, the
/// same value as `crc32c::crc32c_append(seed, payload)`.
///
/// Payloads are frames of up to 64 KiB, read back at every pass over the log, so
/// this uses `crc-fast` (PCLMULQDQ / VPCLMULQDQ folding fused with the CRC32
/// instruction), about 4x the `crc32c` crate on cached 12 KiB frames here and
/// 1.5x from memory; small headers keep using `crc32c`.
#[inline]
pub fn payload_crc(seed: u32, payload: &[u8]) -> u32 {
    let mut d = crc_fast::Digest::new_with_init_state(
        crc_fast::CrcAlgorithm::Crc32Iscsi,
        u64::from(seed ^ 0xffff_ffff),
    );
    d.update(payload);
    d.finalize() as u32
}

/// One entry of the sparse index: where a frame starts, for fast recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Offset of a data frame starting at or after this slot's boundary.
    pub frame_offset: u64,
    /// That frame's first sequence number.
    pub first_seq: u64,
    /// Packed position of the latest Checkpoint record written before that frame, or [`NO_POS`].
    pub last_checkpoint: u64,
}

impl IndexEntry {
    /// Encode with its CRC.
    pub fn encode(&self, seed: u32) -> [u8; INDEX_ENTRY_LEN] {
        let mut b = [0u8; INDEX_ENTRY_LEN];
        b[0..8].copy_from_slice(&self.frame_offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.last_checkpoint.to_le_bytes());
        let crc = crc32c::crc32c_append(seed, &b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decode; `None` if zero or its CRC fails.
    pub fn decode(b: &[u8], seed: u32) -> Option<IndexEntry> {
        let b = &b[..INDEX_ENTRY_LEN];
        if u32_at(b, 28) != crc32c::crc32c_append(seed, &b[..28]) {
            return None;
        }
        Some(IndexEntry {
            frame_offset: u64_at(b, 0),
            first_seq: u64_at(b, 8),
            last_checkpoint: u64_at(b, 16),
        })
    }

    /// True if the 32 bytes are all zero (never written).
    pub fn is_zero(b: &[u8]) -> bool {
        b[..INDEX_ENTRY_LEN].iter().all(|&x| x == 0)
    }
}

/// Payload of a seal or close frame: a summary of the segment so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealInfo {
    /// Records in this segment (up to the frame).
    pub events: u64,
    /// Sequence number of the next segment's first record.
    pub next_seq: u64,
    /// Offset just after the seal frame.
    pub data_end: u64,
    /// Packed position of the latest Checkpoint record in the log so far, or [`NO_POS`].
    pub last_checkpoint: u64,
    /// Unix time of sealing (or closing), microseconds.
    pub sealed_us: u64,
    /// [`FLAG_SALVAGED`] or 0 (format 2; always 0 in format 1).
    pub flags: u64,
}

impl SealInfo {
    /// Encode the 64-byte payload.
    pub fn encode(&self) -> [u8; SEAL_PAYLOAD_LEN] {
        let mut b = [0u8; SEAL_PAYLOAD_LEN];
        b[0..8].copy_from_slice(&self.events.to_le_bytes());
        b[8..16].copy_from_slice(&self.next_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.data_end.to_le_bytes());
        b[24..32].copy_from_slice(&self.last_checkpoint.to_le_bytes());
        b[32..40].copy_from_slice(&self.sealed_us.to_le_bytes());
        b[40..48].copy_from_slice(&self.flags.to_le_bytes());
        b
    }
    /// Decode the 64-byte payload.
    pub fn decode(b: &[u8]) -> SealInfo {
        SealInfo {
            events: u64_at(b, 0),
            next_seq: u64_at(b, 8),
            data_end: u64_at(b, 16),
            last_checkpoint: u64_at(b, 24),
            sealed_us: u64_at(b, 32),
            flags: u64_at(b, 40),
        }
    }
}

/// File name of raw segment `n`.
pub fn raw_name(n: u64) -> String {
    format!("seg-{n:010}.log")
}
/// File name of compressed segment `n`.
pub fn zst_name(n: u64) -> String {
    format!("seg-{n:010}.zst")
}
/// Parse `seg-NNNNNNNNNN.log` / `.zst` into (n, compressed).
pub fn parse_name(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix("seg-")?;
    let (num, ext) = rest.split_once('.')?;
    if num.len() != 10 || !num.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n = num.parse().ok()?;
    match ext {
        "log" => Some((n, false)),
        "zst" => Some((n, true)),
        _ => None,
    }
}
/// Name of the preallocated spare segment.
pub const SPARE_NAME: &str = "next.spare";
/// Name of the lock file.
pub const LOCK_NAME: &str = "LOCK";
/// Suffix of a compression in progress.
pub const TMP_SUFFIX: &str = ".tmp";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_crc_is_crc32c_continued_from_the_seed() {
        // The check value of CRC-32C, then every length 0..=300 and a 64 KiB
        // frame from several seeds against the reference crate.
        assert_eq!(payload_crc(0, b"123456789"), 0xe306_9283);
        let data: Vec<u8> = (0..65536u32).map(|i| (i * 31 + i / 7) as u8).collect();
        for seed in [0u32, 1, 0xdead_beef, u32::MAX] {
            for len in (0..=300).chain([4096, 12288, 65536]) {
                assert_eq!(
                    payload_crc(seed, &data[..len]),
                    crc32c::crc32c_append(seed, &data[..len]),
                    "seed {seed:#x} len {len}"
                );
            }
        }
    }

    #[test]
    fn header_round_trips_and_detects_flips() {
        let h = SegHeader::new(3, 1000, 0xdead_beef, 64 << 20);
        assert_eq!(h.index_slots, 1024);
        assert_eq!(h.data_start, 36864);
        let b = h.encode();
        assert_eq!(SegHeader::decode(&b), Ok(h));
        for i in 0..64 {
            let mut c = b;
            c[i] ^= 0x10;
            assert!(SegHeader::decode(&c).is_err(), "flip at {i} not detected");
        }
    }

    #[test]
    fn frame_header_probe() {
        let f = FrameHeader {
            len: 48,
            count: 1,
            first_seq: 7,
            synced: 4096,
            kind: FRAME_DATA,
            payload_crc: 99,
        };
        let b = f.encode(5);
        assert_eq!(FrameHeader::probe(&b, 5), FrameProbe::Header(f));
        assert_eq!(FrameHeader::probe(&b, 6), FrameProbe::BadHeader);
        assert_eq!(FrameHeader::probe(&[0u8; 32], 5), FrameProbe::Zero);
        for i in 0..32 {
            let mut c = b;
            c[i] ^= 1;
            assert_eq!(FrameHeader::probe(&c, 5), FrameProbe::BadHeader, "byte {i}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(raw_name(7), "seg-0000000007.log");
        assert_eq!(parse_name("seg-0000000007.log"), Some((7, false)));
        assert_eq!(parse_name("seg-0000000007.zst"), Some((7, true)));
        assert_eq!(parse_name("seg-0000000007.zst.tmp"), None);
        assert_eq!(parse_name("seg-7.log"), None);
    }
}
