//! The history index: one row per scan and its checkpoints, in redb
//! (`~/.prtip/history.redb` by default).
//!
//! The logs are the truth; this index is a cache of [`crate::summarize`] over
//! them, so `rebuild` recreates it from the scan directories and a missing or stale
//! index never loses a scan. This module owns the redb tables and never writes logs.

use crate::error::{Result, StoreError};
use crate::event::{Checkpoint, Counters, ScanSpec};
use crate::project::{summarize_inner, ScanStatus, ScanSummary};
use crate::reader::LogReader;
use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SCANS: TableDefinition<u64, &[u8]> = TableDefinition::new("scans");
const CHECKPOINTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("checkpoints");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_ID: &str = "next_id";

/// One scan in the history index.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistoryRow {
    /// Scan id (also the name of its directory under `scans/`).
    pub id: u64,
    /// Start time, Unix microseconds.
    pub started_us: u64,
    /// End (or pause) time, Unix microseconds.
    pub ended_us: Option<u64>,
    /// Where the scan stands.
    pub status: ScanStatus,
    /// Target tokens, space separated.
    pub target_spec: String,
    /// The scan spec as a JSON object.
    pub config_json: String,
    /// The scan's log directory. Stored relative to the index's directory (the
    /// home) when it is under it, so a copied or moved home finds its own logs;
    /// rows read back always hold the resolved path.
    pub log_path: PathBuf,
    /// Target addresses after excludes.
    pub total_targets: u64,
    /// Size of the probe index space.
    pub total_probes: u64,
    /// Probes known done (last checkpoint's index; all when completed).
    pub probes_done: u64,
    /// (address, protocol, port) found open (hosts up are not counted).
    pub ports_discovered: u64,
    /// Hosts found up, for a scan that discovers hosts (`-sn`, or a `-P`
    /// sweep before its ports); `None` for the others (and rows written
    /// before this field: `history rebuild` fills it).
    #[serde(default)]
    pub hosts_up: Option<u64>,
    /// Checkpoints written.
    pub checkpoints: u64,
}

impl HistoryRow {
    /// The row for a summarized log at `log_path`.
    pub fn from_summary(s: &ScanSummary, log_path: &Path) -> HistoryRow {
        HistoryRow {
            id: s.scan_id,
            started_us: s.started_us,
            ended_us: s.ended_us,
            status: s.status,
            target_spec: s.spec.targets.join(" "),
            config_json: spec_json(&s.spec),
            log_path: log_path.to_path_buf(),
            total_targets: s.total_targets,
            total_probes: s.total_probes,
            probes_done: s.probes_done,
            ports_discovered: s.open_ports,
            hosts_up: (s.spec.scan_type == crate::event::ScanType::Ping
                || s.spec.discovers_first())
            .then_some(s.host_rows[0]),
            checkpoints: s.checkpoints,
        }
    }

    /// Walk positions of the first pass ([`crate::pass_span`]), from the scan
    /// type and retries in `config_json`.
    pub fn pass_span(&self) -> u64 {
        let spec: serde_json::Value = serde_json::from_str(&self.config_json).unwrap_or_default();
        let retries = spec["max_retries"].as_u64().unwrap_or(0) as u32;
        // Raw scans (`syn`, `fin`, ...) walk in passes; the socket scans do not.
        let scan_type = match spec["scan_type"].as_str() {
            Some("connect") => crate::event::ScanType::Connect,
            Some("udp") => crate::event::ScanType::Udp,
            _ => crate::event::ScanType::Syn,
        };
        crate::pass_span(scan_type, retries, self.total_probes)
    }

    /// Progress in 0.0 ..= 1.0: prtip's one definition ([`crate::progress_at`]).
    pub fn progress(&self) -> f64 {
        if self.status == ScanStatus::Completed {
            1.0
        } else {
            crate::progress_at(self.probes_done, self.pass_span())
        }
    }
}

/// The scan spec as a JSON object (the `config_json` column).
pub fn spec_json(s: &ScanSpec) -> String {
    serde_json::json!({
        "targets": s.targets,
        "resolved": s.resolved.iter().map(|h| serde_json::json!({"name": h.name, "addr": h.addr.to_string()})).collect::<Vec<_>>(),
        "excludes": s.excludes,
        "ports": s.ports,
        "scan_type": format!("{:?}", s.scan_type).to_lowercase(),
        "service_detection": s.service_detection,
        "rate_mpps": s.rate_mpps,
        "max_rate_mpps": s.max_rate_mpps,
        "timing": s.timing,
        "retry_gap_ms": s.retry_gap_ms,
        "seed": s.seed,
        "shard": format!("{}/{}", s.shard_index + 1, s.shard_count),
        "backend": format!("{:?}", s.backend).to_lowercase(),
        "xdp": {
            "mode": format!("{:?}", s.xdp.mode).to_lowercase(),
            "zero_copy": format!("{:?}", s.xdp.zero_copy).to_lowercase(),
            "queues": s.xdp.queues,
        },
        "sockets": {
            "max_parallelism": s.sockets.max_parallelism,
            "connect_timeout_ms": s.sockets.connect_timeout_ms,
            "version_intensity": s.sockets.version_intensity,
            "version_wait_ms": s.sockets.version_wait_ms,
        },
        "interface": s.interface,
        "source": s.source.map(|a| a.to_string()),
        "router_mac": s.router_mac.map(|m| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")),
        "max_retries": s.max_retries,
        "wait_ms": s.wait_ms,
        "checkpoint_every_probes": s.checkpoint_every_probes,
        "checkpoint_every_ms": s.checkpoint_every_ms,
        "outputs": s.outputs.iter().map(|o| serde_json::json!({"format": o.format, "path": o.path})).collect::<Vec<_>>(),
        "filter": s.filter,
        "service_probes": s.service_probes,
    })
    .to_string()
}

/// What [`HistoryIndex::rebuild`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RebuildReport {
    /// Scans added to the index (their logs were not indexed).
    pub added: Vec<u64>,
    /// Scans whose rows were refreshed from their logs.
    pub updated: Vec<u64>,
    /// Rows removed because their log directory is gone.
    pub removed: Vec<u64>,
    /// Directories that could not be indexed (or were indexed from a damaged log), and why.
    pub errors: Vec<(PathBuf, String)>,
}

fn encode_checkpoint(c: &Checkpoint) -> [u8; 64] {
    let mut b = [0u8; 64];
    let f = [
        c.next_index,
        c.time_us,
        c.counters.sent,
        c.counters.replies,
        c.counters.invalid,
        c.counters.open,
        c.counters.closed,
        c.counters.drops,
    ];
    for (i, v) in f.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

fn decode_checkpoint(b: &[u8]) -> Checkpoint {
    let g = |i: usize| {
        b.get(i * 8..i * 8 + 8)
            .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()))
    };
    Checkpoint {
        next_index: g(0),
        time_us: g(1),
        counters: Counters {
            sent: g(2),
            replies: g(3),
            invalid: g(4),
            open: g(5),
            closed: g(6),
            drops: g(7),
        },
    }
}

/// The history index (redb). Several processes may have it open at once.
///
/// [`HistoryIndex::open`] opens it for reading and writing;
/// [`HistoryIndex::open_for_reading`] opens it read-only (no lock taken, nothing
/// written, no `fdatasync`) and switches to a read-write handle at the first write.
pub struct HistoryIndex {
    /// The read-write handle, once opened.
    rw: OnceLock<Database>,
    /// The read-only handle of [`HistoryIndex::open_for_reading`] (used until `rw` is open).
    ro: Option<ReadOnlyDatabase>,
    path: PathBuf,
}

/// Whether the index already holds its three tables (a read: no commit, no sync).
fn has_tables(db: &impl ReadableDatabase) -> bool {
    db.begin_read().is_ok_and(|t| {
        t.open_table(SCANS).is_ok()
            && t.open_table(CHECKPOINTS).is_ok()
            && t.open_table(META).is_ok()
    })
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_concurrency_mode(ConcurrencyMode::MultiWriter);
    b
}

impl HistoryIndex {
    /// Open (or create) the index at `path`; its parent directory is created.
    pub fn open(path: &Path) -> Result<HistoryIndex> {
        let ix = HistoryIndex {
            rw: OnceLock::new(),
            ro: None,
            path: path.to_path_buf(),
        };
        ix.rw()?;
        Ok(ix)
    }

    /// Open the index at `path` for reading, without writing to it: `get`, `list`
    /// and `checkpoints` read a read-only handle, and the first write opens the
    /// index for writing (as [`HistoryIndex::open`] does). Falls back to
    /// [`HistoryIndex::open`] at once when the index cannot be opened read-only
    /// (missing, never initialized, or in need of a repair after a crash).
    ///
    /// For paths that must be quick before their first write (resuming a scan):
    /// a read-write open commits and syncs the file.
    pub fn open_for_reading(path: &Path) -> Result<HistoryIndex> {
        let ro = builder().open_read_only(path).ok().filter(has_tables);
        match ro {
            Some(ro) => Ok(HistoryIndex {
                rw: OnceLock::new(),
                ro: Some(ro),
                path: path.to_path_buf(),
            }),
            None => Self::open(path),
        }
    }

    /// Open the index at `path` for [`HistoryIndex::rebuild`]: if it cannot be
    /// opened or read (garbage, truncated, a failed redb repair), it is renamed
    /// to `<name>.damaged-<unix seconds>` (kept for inspection, never deleted)
    /// and a new, empty index is created in its place. Returns the index and
    /// where the damaged file went, if it was set aside.
    pub fn open_or_set_aside(path: &Path) -> Result<(HistoryIndex, Option<PathBuf>)> {
        let why = match Self::open(path) {
            Ok(ix) => match ix.list() {
                Ok(_) => return Ok((ix, None)),
                Err(e) => e.to_string(),
            },
            Err(e @ StoreError::History { .. }) => e.to_string(),
            Err(e) => return Err(e),
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = path.file_name().map_or_else(
            || "history.redb".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut aside = path.with_file_name(format!("{name}.damaged-{secs}"));
        let mut k = 1;
        while aside.exists() {
            aside = path.with_file_name(format!("{name}.damaged-{secs}-{k}"));
            k += 1;
        }
        std::fs::rename(path, &aside).map_err(|e| StoreError::History {
            path: path.to_path_buf(),
            what: format!(
                "the index is damaged ({why}) and could not be set aside as {}: {e}",
                aside.display()
            ),
        })?;
        let ix = Self::open(path)?;
        Ok((ix, Some(aside)))
    }

    /// Whether the read-write handle is open (false after
    /// [`HistoryIndex::open_for_reading`] until the first write).
    pub fn is_writable(&self) -> bool {
        self.rw.get().is_some()
    }

    /// The read-write handle, opened (and the tables created) on first use.
    fn rw(&self) -> Result<&Database> {
        if let Some(db) = self.rw.get() {
            return Ok(db);
        }
        let path = &self.path;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::sys::create_private_dir_all(parent)?;
        }
        // redb creates its file with the default mode (0644 under umask 022):
        // create it first, owner-only; an existing index keeps its mode.
        crate::sys::private_rw()
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::io("create", path, e))?;
        let db = builder().create(path).map_err(|e| self.err(e))?;
        // Create the tables only when one is missing: a write commits and syncs.
        if !has_tables(&db) {
            let txn = db.begin_write().map_err(|e| self.err(e))?;
            (|| -> std::result::Result<(), redb::Error> {
                txn.open_table(SCANS)?;
                txn.open_table(CHECKPOINTS)?;
                txn.open_table(META)?;
                Ok(())
            })()
            .map_err(|e| self.err(e))?;
            txn.commit().map_err(|e| self.err(e))?;
        }
        // Another thread may have won the race; either handle will do.
        let _ = self.rw.set(db);
        Ok(self.rw.get().expect("set above"))
    }

    /// A read transaction: on the read-write handle once open, else the read-only one.
    fn read(&self) -> Result<redb::ReadTransaction> {
        let r = match (self.rw.get(), &self.ro) {
            (Some(db), _) => db.begin_read(),
            (None, Some(ro)) => ro.begin_read(),
            (None, None) => self.rw()?.begin_read(),
        };
        r.map_err(|e| self.err(e))
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::History {
            path: self.path.clone(),
            what: e.to_string(),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let txn = self.rw()?.begin_write().map_err(|e| self.err(e))?;
        let out = f(&txn).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Reserve a new scan id (never handed out twice, even after `remove`).
    pub fn next_id(&self) -> Result<u64> {
        self.write(|txn| {
            let max_row = txn.open_table(SCANS)?.last()?.map_or(0, |(k, _)| k.value());
            let mut meta = txn.open_table(META)?;
            let next = meta.get(NEXT_ID)?.map_or(1, |v| v.value()).max(max_row + 1);
            meta.insert(NEXT_ID, next + 1)?;
            Ok(next)
        })
    }

    /// Reserve an id and create `scans_dir/<id>/` for it (skipping ids whose
    /// directory already exists, e.g. logs the index does not know yet).
    pub fn new_scan_dir(&self, scans_dir: &Path) -> Result<(u64, PathBuf)> {
        crate::sys::create_private_dir_all(scans_dir)?;
        loop {
            let id = self.next_id()?;
            let dir = scans_dir.join(id.to_string());
            let made = {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .mode(crate::sys::PRIVATE_DIR_MODE)
                    .create(&dir)
            };
            match made {
                Ok(()) => return Ok((id, dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io("create dir", &dir, e)),
            }
        }
    }

    /// The directory log paths are stored relative to: the index file's own.
    fn base(&self) -> PathBuf {
        let parent = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf())
    }

    /// The row as stored: its log path relative to [`Self::base`] when under it.
    fn encode_row(&self, row: &HistoryRow) -> Result<Vec<u8>> {
        let base = self.base();
        let abs = std::fs::canonicalize(&row.log_path).unwrap_or_else(|_| row.log_path.clone());
        let stored;
        let row = match abs.strip_prefix(&base) {
            Ok(rel) if !rel.as_os_str().is_empty() => {
                stored = HistoryRow {
                    log_path: rel.to_path_buf(),
                    ..row.clone()
                };
                &stored
            }
            _ => row,
        };
        serde_json::to_vec(row).map_err(|e| self.err(e))
    }

    /// A stored row with its log path resolved: a relative one against
    /// [`Self::base`]; an absolute one (indexes written before paths were
    /// relative) as it is, unless it names `.../scans/<name>` of another home
    /// and this home has its own `scans/<name>` (a copied home).
    fn decode_row(&self, id: u64, bytes: &[u8]) -> Result<HistoryRow> {
        let mut row: HistoryRow =
            serde_json::from_slice(bytes).map_err(|e| self.err(format!("row {id}: {e}")))?;
        let base = self.base();
        if row.log_path.is_relative() {
            row.log_path = base.join(&row.log_path);
        } else if !row.log_path.starts_with(&base) {
            let scans = row.log_path.parent().filter(|p| p.ends_with("scans"));
            if let (Some(_), Some(name)) = (scans, row.log_path.file_name()) {
                let local = base.join("scans").join(name);
                if local.is_dir() {
                    row.log_path = local;
                }
            }
        }
        Ok(row)
    }

    /// Insert or replace a row.
    pub fn upsert(&self, row: &HistoryRow) -> Result<()> {
        let bytes = self.encode_row(row)?;
        self.write(|txn| {
            txn.open_table(SCANS)?.insert(row.id, bytes.as_slice())?;
            Ok(())
        })
    }

    /// One row.
    pub fn get(&self, id: u64) -> Result<Option<HistoryRow>> {
        let txn = self.read()?;
        let t = txn.open_table(SCANS).map_err(|e| self.err(e))?;
        match t.get(id).map_err(|e| self.err(e))? {
            Some(v) => Ok(Some(self.decode_row(id, v.value())?)),
            None => Ok(None),
        }
    }

    /// All rows, by id.
    pub fn list(&self) -> Result<Vec<HistoryRow>> {
        let txn = self.read()?;
        let t = txn.open_table(SCANS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(self.decode_row(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Remove a row and its checkpoints (the log directory is left alone).
    pub fn remove(&self, id: u64) -> Result<()> {
        self.write(|txn| {
            txn.open_table(SCANS)?.remove(id)?;
            txn.open_table(CHECKPOINTS)?
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            Ok(())
        })
    }

    /// Record a checkpoint of scan `id` (keyed by its time; the same moment twice
    /// is one checkpoint).
    pub fn add_checkpoint(&self, id: u64, c: &Checkpoint) -> Result<()> {
        let b = encode_checkpoint(c);
        self.write(|txn| {
            txn.open_table(CHECKPOINTS)?
                .insert((id, c.time_us), b.as_slice())?;
            Ok(())
        })
    }

    /// Checkpoints of scan `id`, oldest first.
    pub fn checkpoints(&self, id: u64) -> Result<Vec<Checkpoint>> {
        let txn = self.read()?;
        let t = txn.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.range((id, 0)..=(id, u64::MAX)).map_err(|e| self.err(e))? {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.push(decode_checkpoint(v.value()));
        }
        Ok(out)
    }

    /// Summarize the log in `dir` and store its row and checkpoints (what a scan
    /// calls at start, pause and end; what `rebuild` does for every log).
    pub fn index_log(&self, dir: &Path) -> Result<HistoryRow> {
        Ok(self.index_log_summary(dir)?.0)
    }

    /// [`HistoryIndex::index_log`], also handing back the summary the row was
    /// made from (what [`crate::summarize_lenient`] gives for the log), so a caller
    /// that needs both reads the log once (the end of `prtip scan`: history row
    /// and done line).
    pub fn index_log_summary(&self, dir: &Path) -> Result<(HistoryRow, ScanSummary)> {
        let reader = LogReader::open(dir)?;
        let (row, cps, summary, _) = self.summarize_dir(&reader, dir)?;
        self.store(&row, &cps)?;
        Ok((row, summary))
    }

    fn summarize_dir(
        &self,
        reader: &LogReader,
        dir: &Path,
    ) -> Result<(HistoryRow, Vec<Checkpoint>, ScanSummary, Option<StoreError>)> {
        let mut cps = Vec::new();
        let (s, err) = summarize_inner(reader, &mut |c| cps.push(*c))?;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Ok((HistoryRow::from_summary(&s, &dir), cps, s, err))
    }

    fn store(&self, row: &HistoryRow, cps: &[Checkpoint]) -> Result<()> {
        let bytes = self.encode_row(row)?;
        self.write(|txn| {
            txn.open_table(SCANS)?.insert(row.id, bytes.as_slice())?;
            let mut t = txn.open_table(CHECKPOINTS)?;
            t.retain_in((row.id, 0)..=(row.id, u64::MAX), |_, _| false)?;
            for c in cps {
                t.insert((row.id, c.time_us), encode_checkpoint(c).as_slice())?;
            }
            let mut meta = txn.open_table(META)?;
            let next = meta.get(NEXT_ID)?.map_or(1, |v| v.value());
            if next <= row.id {
                meta.insert(NEXT_ID, row.id + 1)?;
            }
            Ok(())
        })
    }

    /// Re-read the logs of rows marked running whose writer is gone (they died or
    /// paused without updating the index). Returns the refreshed rows.
    pub fn refresh(&self) -> Result<Vec<HistoryRow>> {
        let mut out = Vec::new();
        for row in self.list()? {
            if row.status != ScanStatus::Running
                || crate::sys::writer_alive(&row.log_path).unwrap_or(false)
            {
                continue;
            }
            if let Ok(r) = self.index_log(&row.log_path) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Recreate the index from the logs under `scans_dir`: every log directory gets
    /// a fresh row and checkpoints; rows whose log is gone are removed.
    pub fn rebuild(&self, scans_dir: &Path) -> Result<RebuildReport> {
        let mut report = RebuildReport::default();
        let before: BTreeMap<u64, HistoryRow> =
            self.list()?.into_iter().map(|r| (r.id, r)).collect();
        let mut seen: BTreeMap<u64, PathBuf> = BTreeMap::new();
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(scans_dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io("read dir", scans_dir, e)),
        };
        dirs.sort();
        for dir in dirs {
            let reader = match LogReader::open(&dir) {
                Ok(r) => r,
                Err(e) => {
                    report.errors.push((dir, e.to_string()));
                    continue;
                }
            };
            let (row, cps, _, err) = match self.summarize_dir(&reader, &dir) {
                Ok(x) => x,
                Err(e) => {
                    report.errors.push((dir, e.to_string()));
                    continue;
                }
            };
            if let Some(e) = err {
                report
                    .errors
                    .push((dir.clone(), format!("indexed the readable part: {e}")));
            }
            if let Some(other) = seen.get(&row.id) {
                report.errors.push((
                    dir,
                    format!("scan id {} is already used by {}", row.id, other.display()),
                ));
                continue;
            }
            seen.insert(row.id, dir.clone());
            match before.get(&row.id) {
                None => report.added.push(row.id),
                Some(_) => report.updated.push(row.id),
            }
            self.store(&row, &cps)?;
        }
        for (id, row) in &before {
            if !seen.contains_key(id)
                && !row.log_path.join(crate::format::raw_name(0)).exists()
                && !row.log_path.join(crate::format::zst_name(0)).exists()
            {
                self.remove(*id)?;
                report.removed.push(*id);
            }
        }
        report.added.sort();
        report.updated.sort();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, status: ScanStatus) -> HistoryRow {
        HistoryRow {
            id,
            started_us: 1_000 + id,
            ended_us: None,
            status,
            target_spec: "198.19.0.0/24".into(),
            config_json: "{}".into(),
            log_path: PathBuf::from(format!("/nonexistent/{id}")),
            total_targets: 256,
            total_probes: 1024,
            probes_done: 10,
            ports_discovered: 0,
            hosts_up: None,
            checkpoints: 1,
        }
    }

    #[test]
    fn open_for_reading_reads_then_switches_to_writing_at_the_first_write() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("h.redb");
        let w = HistoryIndex::open(&path).unwrap();
        w.upsert(&row(1, ScanStatus::Paused)).unwrap();
        let r = HistoryIndex::open_for_reading(&path).unwrap();
        assert!(!r.is_writable());
        assert_eq!(r.get(1).unwrap(), Some(row(1, ScanStatus::Paused)));
        assert_eq!(r.list().unwrap().len(), 1);
        assert!(r.checkpoints(1).unwrap().is_empty());
        // A commit of another handle is seen by the read-only one.
        w.upsert(&row(2, ScanStatus::Completed)).unwrap();
        assert_eq!(r.get(2).unwrap(), Some(row(2, ScanStatus::Completed)));
        assert!(!r.is_writable());
        // The first write opens the index for writing; reads see it.
        r.upsert(&row(1, ScanStatus::Running)).unwrap();
        assert!(r.is_writable());
        assert_eq!(r.get(1).unwrap().unwrap().status, ScanStatus::Running);
        assert_eq!(w.get(1).unwrap().unwrap().status, ScanStatus::Running);
        assert_eq!(r.next_id().unwrap(), 3);
        drop(r);
        drop(w);
        // And the file is still an index a fresh handle opens.
        let again = HistoryIndex::open(&path).unwrap();
        assert_eq!(again.list().unwrap().len(), 2);
    }

    #[test]
    fn open_for_reading_creates_a_missing_index() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sub").join("h.redb");
        let r = HistoryIndex::open_for_reading(&path).unwrap();
        assert!(
            r.is_writable(),
            "nothing to read: opened for writing at once"
        );
        assert!(r.list().unwrap().is_empty());
        assert_eq!(r.next_id().unwrap(), 1);
    }

    #[test]
    fn open_reopens_an_existing_index_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("h.redb");
        let a = HistoryIndex::open(&path).unwrap();
        a.upsert(&row(7, ScanStatus::Paused)).unwrap();
        drop(a);
        let len = std::fs::metadata(&path).unwrap().len();
        let b = HistoryIndex::open(&path).unwrap();
        assert_eq!(b.get(7).unwrap(), Some(row(7, ScanStatus::Paused)));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }
}
