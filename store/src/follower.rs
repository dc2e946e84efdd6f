//! Following a log that another process is writing (the monitor attaches this way).
//!
//! This module owns [`Follower`]: it polls for newly committed frames, moves to the
//! next segment when one is sealed, and waits out a frame that is being written.
//! Corruption is reported only when no writer holds the lock and the bad bytes are
//! provably durable. It never writes.

use crate::appender::LogPos;
use crate::error::{Result, StoreError};
use crate::format::*;
use crate::reader::{load_zst, Cursor, Entry, SegEnd};
use crate::record::EventRef;
use crate::segment::{SegData, SegMode};
use std::fs::File;
use std::path::{Path, PathBuf};

struct Current {
    file: Option<File>,
    data: SegData,
    h: SegHeader,
}

/// Tails a scan log: each [`Follower::poll`] delivers the events committed since the
/// previous one, in order, each exactly once.
pub struct Follower {
    dir: PathBuf,
    n: u64,
    cur: Option<Current>,
    off: u64,
    seq: u64,
    writer_alive: bool,
    /// The header and seal of the previous segment, once it was sealed.
    sealed_prev: Option<(SegHeader, SealInfo)>,
}

impl Follower {
    /// Follow the log in `dir` from its first event. The directory must exist; the
    /// first segment may appear later.
    pub fn open(dir: &Path) -> Result<Follower> {
        if !dir.is_dir() {
            return Err(StoreError::NotALog {
                dir: dir.to_path_buf(),
                why: "not a directory".into(),
            });
        }
        crate::space::list::load_dir(dir).map_err(|d| StoreError::TargetList {
            dir: dir.to_path_buf(),
            path: d.path,
            what: d.what,
        })?;
        Ok(Follower {
            dir: dir.to_path_buf(),
            n: 0,
            cur: None,
            off: 0,
            seq: 0,
            writer_alive: false,
            sealed_prev: None,
        })
    }

    /// Sequence number of the next event to deliver (= events delivered so far).
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// Where the follower will read next.
    pub fn position(&self) -> LogPos {
        LogPos {
            segment: self.n,
            offset: self.off,
        }
    }

    /// Whether a writer held the lock at the last poll.
    pub fn writer_alive(&self) -> bool {
        self.writer_alive
    }

    fn open_segment(&mut self) -> Result<bool> {
        let raw = self.dir.join(raw_name(self.n));
        match File::open(&raw) {
            Ok(f) => {
                // SAFETY: read-only map of a segment only the writer modifies; every
                // byte read is bounded by the file's current length and checked
                // (CRC + rkyv) before use.
                let map = unsafe { memmap2::Mmap::map(&f) }
                    .map_err(|e| StoreError::io("mmap", &raw, e))?;
                let h = SegHeader::decode(&map).map_err(|p| StoreError::Corrupt {
                    dir: self.dir.clone(),
                    segment: self.n,
                    offset: 0,
                    what: format!("segment header: {p:?}"),
                })?;
                self.install(Current {
                    file: Some(f),
                    data: SegData::Map(map),
                    h,
                })?;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("open", &raw, e)),
        }
        let zst = self.dir.join(zst_name(self.n));
        if zst.exists() {
            let (buf, h) = load_zst(&self.dir, self.n, &zst, None).map_err(|(offset, what)| {
                StoreError::Corrupt {
                    dir: self.dir.clone(),
                    segment: self.n,
                    offset,
                    what,
                }
            })?;
            self.install(Current {
                file: None,
                data: SegData::Owned(buf),
                h,
            })?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Segment `n` is not there (yet): with no writer alive, that is damage if a
    /// later segment exists or the sealed previous one names it (and no crash
    /// while rolling over left it as `next.spare`).
    fn check_missing(&self) -> Result<()> {
        if self.writer_alive || self.n == 0 {
            return Ok(());
        }
        let later = [raw_name(self.n + 1), zst_name(self.n + 1)]
            .iter()
            .any(|name| self.dir.join(name).exists());
        if later {
            return Err(StoreError::Corrupt {
                dir: self.dir.clone(),
                segment: self.n,
                offset: 0,
                what: format!(
                    "segment file {} is missing (segment {} is present)",
                    raw_name(self.n),
                    self.n + 1
                ),
            });
        }
        match &self.sealed_prev {
            Some((h, s)) if h.format >= FORMAT_CLOSE_FRAMES => {
                crate::appender::check_successor(&self.dir, self.n - 1, s.next_seq, h.log_id)
            }
            _ => Ok(()),
        }
    }

    fn install(&mut self, c: Current) -> Result<()> {
        if c.h.segment != self.n || (self.n > 0 && c.h.first_seq != self.seq) {
            return Err(StoreError::Corrupt {
                dir: self.dir.clone(),
                segment: self.n,
                offset: 0,
                what: format!("segment header (segment {}, first sequence {}) does not continue the log at {}", c.h.segment, c.h.first_seq, self.seq),
            });
        }
        self.off = c.h.data_start as u64;
        self.cur = Some(c);
        Ok(())
    }

    /// Deliver every event committed since the last poll to `f`, in order. Returns
    /// how many were delivered (0 when nothing is new). A frame being written is
    /// waited for, not reported.
    pub fn poll(&mut self, f: &mut dyn FnMut(EventRef<'_>)) -> Result<usize> {
        self.poll_entries(&mut |e| f(e.event))
    }

    /// Like [`Follower::poll`], with sequence numbers and positions.
    pub fn poll_entries(&mut self, f: &mut dyn FnMut(Entry<'_>)) -> Result<usize> {
        let mut delivered = 0;
        self.writer_alive = crate::sys::writer_alive(&self.dir)?;
        loop {
            if self.cur.is_none() && !self.open_segment()? {
                self.check_missing()?;
                return Ok(delivered);
            }
            let cur = self.cur.as_mut().unwrap();
            // Remap when the file grew (a resumed writer re-extends a closed segment).
            let mut len = cur.data.len() as u64;
            if let Some(file) = &cur.file {
                let now = file.metadata().map(|m| m.len()).unwrap_or(len);
                if now > len {
                    // SAFETY: as in `open_segment`.
                    let map = unsafe { memmap2::Mmap::map(file) }
                        .map_err(|e| StoreError::io("mmap", self.dir.join(raw_name(self.n)), e))?;
                    cur.data = SegData::Map(map);
                }
                len = now.min(cur.data.len() as u64);
            }
            let b = &cur.data[..len as usize];
            let mode = if cur.file.is_some() && len == cur.h.capacity {
                SegMode::Active
            } else {
                SegMode::Complete
            };
            // While a writer is alive, an unfinished frame is not an error.
            let alive = self.writer_alive;
            let mut c = Cursor::new(&self.dir, b, cur.h, mode, true, alive, None);
            c.resume_at(self.off, self.seq);
            loop {
                match c.next_entry() {
                    Some(Ok(e)) => {
                        f(e);
                        delivered += 1;
                    }
                    Some(Err(e)) => return Err(e),
                    None => break,
                }
            }
            // The cursor stops only between frames: resume here next time.
            (self.off, self.seq) = c.position();
            match c.fin {
                Some(SegEnd::Sealed(s)) => {
                    self.sealed_prev = Some((cur.h, s));
                    self.seq = s.next_seq;
                    self.n += 1;
                    self.cur = None;
                }
                _ => return Ok(delivered),
            }
        }
    }
}
