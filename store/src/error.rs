//! Errors of the store: what went wrong, where, and what to do about it.
//!
//! This module owns [`StoreError`] only; it never touches files.

use std::path::PathBuf;

/// Anything that can go wrong while writing, reading or indexing scan logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system call on a file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `fallocate`, `msync`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk fail a checksum or a structural check. They are never read as data.
    #[error("scan log {} is corrupt in segment {segment} at offset {offset}: {what} \
             (the records before this point are intact: `prtip log verify {}` checks the whole log, \
             `prtip log salvage {} -o NEWDIR` copies them into a new log)",
            dir.display(), dir.display(), dir.display())]
    Corrupt {
        /// The scan directory.
        dir: PathBuf,
        /// Segment number (`seg-<segment>.log` / `.zst`).
        segment: u64,
        /// Byte offset inside the (uncompressed) segment.
        offset: u64,
        /// What check failed.
        what: String,
    },
    /// Another live process holds the log's writer lock.
    #[error("scan log {} is being written by another process (pid {pid}); \
             wait for it to finish or pause it first", dir.display())]
    Locked {
        /// The scan directory.
        dir: PathBuf,
        /// Pid recorded in `LOCK` (0 if unknown).
        pid: u32,
    },
    /// The directory is not a scan log (or is empty).
    #[error("{} is not a prtip scan log: {why}", dir.display())]
    NotALog {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        why: String,
    },
    /// `create` on a directory that already holds a log.
    #[error("{} already holds a scan log; use open_append to continue it", dir.display())]
    Exists {
        /// The directory.
        dir: PathBuf,
    },
    /// The log was written by a newer prtip, or with another event schema.
    #[error("{}", version_message(path, *format, *schema))]
    Version {
        /// The segment file.
        path: PathBuf,
        /// Its format version.
        format: u32,
        /// Its schema version.
        schema: u32,
    },
    /// A target list file the log names (`targets-<hash>.bin`) is missing or
    /// does not check out (its bytes must hash to its name).
    #[error("scan log {} is damaged: target list {}: {what} (`prtip log verify {}` checks the whole log)",
            dir.display(), path.display(), dir.display())]
    TargetList {
        /// The scan directory.
        dir: PathBuf,
        /// The list file.
        path: PathBuf,
        /// What failed.
        what: String,
    },
    /// One event does not fit in a segment.
    #[error("a {kind} event of {bytes} bytes does not fit in a log segment (at most {max} bytes)")]
    TooLarge {
        /// Event kind.
        kind: &'static str,
        /// Its archived size (lower bound).
        bytes: u64,
        /// Largest record a segment can take.
        max: u64,
    },
    /// A bad option value.
    #[error("invalid log option: {0}")]
    Invalid(String),
    /// The writer thread stopped (after an earlier error, or shut down).
    #[error("scan log writer stopped: {0}")]
    Closed(String),
    /// The log holds no `ScanStarted` event.
    #[error("scan log {} has no ScanStarted event (empty or truncated before the first record)", dir.display())]
    Empty {
        /// The scan directory.
        dir: PathBuf,
    },
    /// The history index (redb) failed.
    #[error("history index {}: {what}", path.display())]
    History {
        /// The index file.
        path: PathBuf,
        /// The redb error.
        what: String,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The words of [`StoreError::Version`]: an older schema names itself and the way
/// out (the prtip that wrote it), a newer one asks for an upgrade.
fn version_message(path: &std::path::Path, format: u32, schema: u32) -> String {
    use crate::event::SCHEMA_VERSION;
    if schema < SCHEMA_VERSION && format <= crate::format::FORMAT_VERSION {
        format!(
            "{} was written with event schema {schema} (an older prtip); this prtip reads \
             schema {SCHEMA_VERSION} only: open, export or resume that scan with the prtip \
             that wrote it (see store/FORMAT.md, \"Event schema versions\")",
            path.display()
        )
    } else {
        format!(
            "{} was written with format {format} / schema {schema}; this prtip reads format \
             {} / schema {SCHEMA_VERSION}: upgrade prtip",
            path.display(),
            crate::format::FORMAT_VERSION
        )
    }
}
