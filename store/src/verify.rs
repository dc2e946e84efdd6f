//! Checking a whole log and saving what is readable from a damaged one: what
//! `prtip log verify` and `prtip log salvage` run, and what resuming checks
//! before it appends anything.
//!
//! This module owns [`verify`] and [`salvage`]. It never changes the log it
//! reads: salvage writes a new log in another directory.

use crate::appender::{Appender, LogOptions, Truncation};
use crate::error::{Result, StoreError};
use crate::format::FLAG_SALVAGED;
use crate::reader::LogReader;
use std::path::{Path, PathBuf};

/// How a log ends, as far as its frames tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogEnd {
    /// The writer finished it: the last segment ends with a close frame (or the
    /// log predates close frames, format 1, and ends cleanly).
    Closed,
    /// No close frame: the writer was killed (or crashed) and the log can be
    /// resumed from its last checkpoint.
    Interrupted,
    /// A writer holds the lock and is appending.
    Live,
    /// The log is damaged before its end (see [`Verification::damage`]).
    Damaged,
}

/// Where a log is damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Segment number (`seg-<segment>.log` / `.zst`).
    pub segment: u64,
    /// Byte offset in the (uncompressed) segment.
    pub offset: u64,
    /// What check failed.
    pub what: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "segment {} at offset {}: {}",
            self.segment, self.offset, self.what
        )
    }
}

/// The result of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// The log directory.
    pub dir: PathBuf,
    /// Segment files found (up to the first missing one).
    pub segments: u64,
    /// Records that checked out, in order from the first (all of them when
    /// there is no damage; those before the damage otherwise).
    pub records: u64,
    /// How the log ends.
    pub end: LogEnd,
    /// The first damage found, if any: nothing at or after it is read as data.
    pub damage: Option<Damage>,
    /// A torn tail (never acknowledged) that the next writer would cut.
    pub torn: Option<Truncation>,
    /// The log was written by [`salvage`] from a damaged log.
    pub salvaged: bool,
    /// A target list file the log names (or holds) that is missing or does not
    /// check out: the records may be intact, but the scan's targets cannot be read.
    pub target_list: Option<crate::space::list::ListDamage>,
}

impl Verification {
    /// True if nothing is damaged (a torn tail is not damage: it was never
    /// acknowledged).
    pub fn is_intact(&self) -> bool {
        self.damage.is_none() && self.target_list.is_none()
    }
}

fn damage_of(e: StoreError) -> Result<Damage> {
    match e {
        StoreError::Corrupt {
            segment,
            offset,
            what,
            ..
        } => Ok(Damage {
            segment,
            offset,
            what,
        }),
        StoreError::Empty { .. } => Ok(Damage {
            segment: 0,
            offset: 0,
            what: "the log holds no record (not even ScanStarted)".into(),
        }),
        other => Err(other),
    }
}

/// Check every frame (header and payload CRC, sequence continuity, seal and
/// close frames) and every record (bounds, rkyv validation) of every segment of
/// the log in `dir`, that no segment is missing, and that a finished log ends
/// where its close frame says. Nothing is modified.
///
/// Damage is reported in the result, not as an error; errors are for what
/// stops the check itself (the directory is not a log, a file cannot be read, a
/// newer format).
pub fn verify(dir: &Path) -> Result<Verification> {
    let (reader, gap) = match LogReader::open_prefix(dir) {
        Ok(x) => x,
        Err(e @ StoreError::Corrupt { .. }) => {
            return Ok(Verification {
                dir: dir.to_path_buf(),
                segments: 0,
                records: 0,
                end: LogEnd::Damaged,
                damage: Some(damage_of(e)?),
                torn: None,
                salvaged: false,
                target_list: None,
            })
        }
        Err(e) => return Err(e),
    };
    verify_reader(&reader, gap, &mut |_| Ok(()))
}

fn verify_reader(
    reader: &LogReader,
    gap: Option<StoreError>,
    f: &mut dyn FnMut(crate::reader::Entry<'_>) -> Result<()>,
) -> Result<Verification> {
    // Target lists first: salvage copies them with the ScanStarted record.
    let mut target_list = crate::space::list::load_dir(reader.dir()).err();
    if target_list.is_none() {
        if let Ok(s) = reader.scan_started() {
            target_list = crate::space::list::check_references(&s.spec.targets, reader.dir()).err();
        }
    }
    let w = reader.walk_all(f);
    let tail = reader.tail();
    let mut damage = w.error.map(damage_of).transpose()?;
    if damage.is_none() {
        // The reader stops quietly at the end of the last segment; damage it
        // judged there (with no later frame to walk into) is in the tail report.
        if let Some((pos, what)) = tail.corrupt.clone() {
            damage = Some(Damage {
                segment: pos.segment,
                offset: pos.offset,
                what,
            });
        }
    }
    if damage.is_none() {
        damage = gap.map(damage_of).transpose()?;
    }
    let end = if damage.is_some() || target_list.is_some() {
        LogEnd::Damaged
    } else if reader.writer_alive() {
        LogEnd::Live
    } else if w.closed || reader.closed_v1() {
        LogEnd::Closed
    } else {
        LogEnd::Interrupted
    };
    Ok(Verification {
        dir: reader.dir().to_path_buf(),
        segments: reader.segments(),
        records: w.records,
        end,
        damage,
        torn: tail.torn,
        salvaged: w.flags & FLAG_SALVAGED != 0,
        target_list,
    })
}

/// What [`salvage`] kept and lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SalvageReport {
    /// The new log.
    pub dst: PathBuf,
    /// Records copied (the readable prefix of the damaged log).
    pub kept: u64,
    /// Where the damage starts (`None`: the source was intact and was copied whole).
    pub damage: Option<Damage>,
    /// Bytes of the source from the damage to its end that were not copied
    /// (uncompressed sizes for raw segments, file sizes for compressed ones).
    pub lost_bytes: u64,
    /// Segment files of the source after the damaged one (not copied).
    pub lost_segments: u64,
}

/// Copy the readable records of the log in `src` into a new log in `dst`
/// (which must not hold a log), marked as salvaged ([`FLAG_SALVAGED`]), and
/// report what was lost.
///
/// Only the prefix before the first damage is copied: records after a gap would
/// claim probes whose replies were lost (a checkpoint past the gap would turn
/// those ports into "filtered"), so the new log ends where the damage started.
/// It has no end event: resuming it (`prtip replay NEWDIR --from-checkpoint`)
/// probes again from its last checkpoint. The source is never modified.
pub fn salvage(src: &Path, dst: &Path) -> Result<SalvageReport> {
    if crate::sys::writer_alive(src)? {
        return Err(StoreError::Locked {
            dir: src.to_path_buf(),
            pid: 0,
        });
    }
    let (reader, gap) = LogReader::open_prefix(src)?;
    if same_dir(src, dst) {
        return Err(StoreError::Invalid(format!(
            "salvage writes a new log: {} is the damaged log itself; choose another directory",
            dst.display()
        )));
    }
    let mut app: Option<Appender> = None;
    let mut appended = 0u64;
    let v = verify_reader(&reader, gap, &mut |e| {
        let app = match &mut app {
            Some(a) => a,
            None => {
                let mut a = Appender::create(dst, LogOptions::default())?;
                a.mark_salvaged();
                app.insert(a)
            }
        };
        app.append(&e.event.to_event())?;
        appended += 1;
        Ok(())
    })?;
    let Some(app) = app else {
        return Err(StoreError::Invalid(format!(
            "nothing in {} is readable ({}): there is nothing to salvage",
            src.display(),
            v.damage
                .as_ref()
                .map_or_else(|| "no records".to_string(), |d| d.to_string())
        )));
    };
    app.finish()?;
    let (lost_bytes, lost_segments) = match &v.damage {
        Some(d) => lost_after(src, d),
        None => (0, 0),
    };
    Ok(SalvageReport {
        dst: dst.to_path_buf(),
        kept: appended,
        damage: v.damage,
        lost_bytes,
        lost_segments,
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Bytes and segment files of `src` from the damage `d` on.
fn lost_after(src: &Path, d: &Damage) -> (u64, u64) {
    let Ok(list) = crate::appender::list_segments(src) else {
        return (0, 0);
    };
    let mut bytes = 0;
    let mut segments = 0;
    for (&n, &(raw, _)) in &list {
        if n < d.segment {
            continue;
        }
        let name = if raw {
            crate::format::raw_name(n)
        } else {
            crate::format::zst_name(n)
        };
        let len = std::fs::metadata(src.join(name)).map_or(0, |m| m.len());
        if n == d.segment {
            bytes += len.saturating_sub(d.offset);
        } else {
            bytes += len;
            segments += 1;
        }
    }
    (bytes, segments)
}
