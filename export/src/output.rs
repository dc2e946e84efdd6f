//! Where an export goes: stdout, or a file written atomically.
//!
//! A file export is written to a temporary file in the destination's directory
//! (`.NAME.XXXXXX.prtip-tmp`) and renamed over the destination only after the last
//! byte is written; an error, a Ctrl-C or a panic drops the temporary file
//! instead, so a reader never sees a half-written export. Only a `kill -9`
//! mid-export can leave a `.prtip-tmp` file behind (never the destination
//! itself); the exporting process holds a `flock` on its temporary file, and
//! the next export into the same directory removes every `.prtip-tmp` file
//! whose lock is free (its writer is gone).
//!
//! The file gets the mode a new file would get under the process's umask
//! (0666 & !umask), or, when it replaces a file, that file's mode: an export
//! never widens who can read scan data.
//!
//! Exports are not fsync'ed: they are projections that `prtip export` can rebuild
//! from the log at any time, and syncing a 300 MB export costs more than
//! rendering it. (On ext4, replacing a file by rename flushes its data first
//! anyway.) The scan log is what is made durable. This module never renders.
//!
//! The bytes go out on a writer thread of their own, in 256 KiB buffers (a few in
//! flight), so that the write system calls overlap with rendering.

use crate::ExportError;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use tempfile::NamedTempFile;

/// Bytes per buffer handed to the writer thread.
const BUF: usize = 256 * 1024;
/// Buffers queued for the writer thread at most.
const IN_FLIGHT: usize = 4;

enum Dest {
    Stdout(io::Stdout),
    File(NamedTempFile),
}

impl Write for Dest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Dest::Stdout(s) => s.write(buf),
            Dest::File(f) => f.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Dest::Stdout(s) => s.write_all(buf),
            Dest::File(f) => f.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Dest::Stdout(s) => s.flush(),
            Dest::File(f) => f.flush(),
        }
    }
}

enum Msg {
    Data(Vec<u8>),
    /// Flush the destination, then answer.
    Flush(SyncSender<()>),
}

/// A buffered writer whose writes happen on another thread. The first error stops
/// the thread; it is reported by the next write, flush or [`Pipe::finish`].
struct Pipe {
    tx: Option<SyncSender<Msg>>,
    recycled: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    err: Arc<Mutex<Option<io::Error>>>,
    thread: Option<std::thread::JoinHandle<Dest>>,
}

impl Pipe {
    fn new(mut dest: Dest) -> io::Result<Pipe> {
        let (tx, rx) = sync_channel::<Msg>(IN_FLIGHT);
        let (back, recycled) = sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
        let err = Arc::new(Mutex::new(None));
        let err2 = Arc::clone(&err);
        let thread = std::thread::Builder::new()
            .name("prtip-export-write".into())
            .spawn(move || {
                for m in rx {
                    let r = match m {
                        Msg::Data(mut b) => {
                            let r = dest.write_all(&b);
                            b.clear();
                            let _ = back.try_send(b);
                            r
                        }
                        Msg::Flush(ack) => {
                            let r = dest.flush();
                            let _ = ack.send(());
                            r
                        }
                    };
                    if let Err(e) = r {
                        *err2.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        break;
                    }
                }
                dest
            })?;
        Ok(Pipe {
            tx: Some(tx),
            recycled,
            buf: Vec::with_capacity(BUF),
            err,
            thread: Some(thread),
        })
    }

    /// The writer thread's error (it has stopped).
    fn error(&self) -> io::Error {
        self.check()
            .err()
            .unwrap_or_else(|| io::Error::other("the export writer thread stopped"))
    }

    fn check(&self) -> io::Result<()> {
        match self.err.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn send(&mut self, m: Msg) -> io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| self.error())?;
        tx.send(m).map_err(|_| self.error())
    }

    fn send_buf(&mut self) -> io::Result<()> {
        let next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUF));
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Msg::Data(full))
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BUF {
            self.send_buf()?;
        }
        Ok(())
    }

    /// Everything written so far is written to the destination and flushed.
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send_buf()?;
        }
        let (ack, done) = sync_channel(1);
        self.send(Msg::Flush(ack))?;
        done.recv().map_err(|_| self.error())?;
        self.check()
    }

    /// Flush, stop the thread, and hand back the destination.
    fn finish(mut self) -> io::Result<Dest> {
        self.flush()?;
        self.tx = None;
        let thread = self.thread.take().expect("a writer thread");
        let dest = thread
            .join()
            .map_err(|_| io::Error::other("the export writer thread panicked"))?;
        self.check()?;
        Ok(dest)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // Unwritten bytes are dropped with the destination (a temporary file is
        // removed); wait for the thread so that it is gone on return.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An open export destination; [`Output::commit`] makes it visible.
pub(crate) struct Output {
    /// Path as given (`-` for stdout).
    pub path: String,
    final_path: Option<PathBuf>,
    writer: Pipe,
    bytes: u64,
}

impl Output {
    /// Open `path` (`-` is stdout). Files get a temporary sibling until commit.
    pub fn create(path: &str) -> Result<Output, ExportError> {
        if path == "-" {
            return Ok(Output {
                path: path.into(),
                final_path: None,
                writer: Pipe::new(Dest::Stdout(io::stdout())).map_err(|source| {
                    ExportError::Io {
                        path: path.into(),
                        source,
                    }
                })?,
                bytes: 0,
            });
        }
        let final_path = PathBuf::from(path);
        let name = final_path
            .file_name()
            .ok_or_else(|| ExportError::BadOutput {
                path: path.into(),
                why: "it names a directory, not a file".into(),
            })?
            .to_string_lossy()
            .into_owned();
        let dir = match final_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(ExportError::BadOutput {
                path: path.into(),
                why: format!(
                    "the directory {} does not exist (create it first)",
                    dir.display()
                ),
            });
        }
        if final_path.is_dir() {
            return Err(ExportError::BadOutput {
                path: path.into(),
                why: "it is a directory; name a file inside it".into(),
            });
        }
        remove_stale_temporaries(&dir);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(TMP_SUFFIX)
            .tempfile_in(&dir)
            .map_err(|e| ExportError::Io {
                path: path.into(),
                source: io::Error::new(
                    e.kind(),
                    format!("cannot create a file in {}: {e}", dir.display()),
                ),
            })?;
        // Held until the file is renamed or dropped (or the process dies): it
        // tells a later export that this temporary file is not stale.
        try_flock(tmp.as_file());
        Ok(Output {
            path: path.into(),
            final_path: Some(final_path),
            writer: Pipe::new(Dest::File(tmp)).map_err(|source| ExportError::Io {
                path: path.into(),
                source,
            })?,
            bytes: 0,
        })
    }

    /// Directory for scratch files that belong with this output (HTML spill).
    pub fn scratch_dir(&self) -> PathBuf {
        match &self.final_path {
            Some(p) => match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            },
            None => std::env::temp_dir(),
        }
    }

    /// Flush and rename into place. Returns the bytes written.
    pub fn commit(self) -> Result<u64, ExportError> {
        let path = self.path.clone();
        let io_err = |source: io::Error| ExportError::Io {
            path: path.clone(),
            source,
        };
        let bytes = self.bytes;
        let dest = self.writer.finish().map_err(io_err)?;
        match dest {
            Dest::Stdout(mut s) => s.flush().map_err(io_err)?,
            Dest::File(tmp) => {
                let final_path = self.final_path.expect("file output has a path");
                let mode = match fs::metadata(&final_path) {
                    Ok(m) => m.permissions().mode() & 0o777,
                    Err(_) => 0o666 & !umask(),
                };
                fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
                    .map_err(io_err)?;
                tmp.persist(&final_path).map_err(|e| io_err(e.error))?;
            }
        }
        Ok(bytes)
    }
}

/// Suffix of the temporary file an export is written to.
const TMP_SUFFIX: &str = ".prtip-tmp";

/// A temporary file left untouched this long and not locked is stale.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// The process's umask, from `/proc/self/status` (reading it with umask(2)
/// would change it for a moment under the other threads); 022 if unknown.
fn umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// `flock(LOCK_EX | LOCK_NB)`: whether the lock was taken.
fn try_flock(f: &fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a file descriptor that `f` keeps open; no memory is passed.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Remove the `.*.prtip-tmp` files in `dir` that no live export holds locked:
/// those of exports killed with SIGKILL (12 killed exports left 5.7 GB). Best
/// effort: a file that cannot be opened or removed is left alone.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(TMP_SUFFIX)) {
            continue;
        }
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        // A file created this moment may not be locked yet by its writer.
        let recent = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < STALE_AFTER);
        if recent {
            continue;
        }
        let path = e.path();
        if let Ok(f) = fs::File::open(&path) {
            if try_flock(&f) {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut o = Output::create(path.to_str().unwrap()).unwrap();
        o.write_all(b"hello\n").unwrap();
        o.flush().unwrap();
        let during = entries(dir.path());
        assert_eq!(during.len(), 1);
        assert!(during[0].starts_with(".out.csv.") && during[0].ends_with(".prtip-tmp"));
        assert!(!path.exists());
        assert_eq!(o.commit().unwrap(), 6);
        assert_eq!(entries(dir.path()), vec!["out.csv"]);
        assert_eq!(fs::read(&path).unwrap(), b"hello\n");
    }

    #[test]
    fn dropped_output_leaves_nothing_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        fs::write(&path, b"previous export\n").unwrap();
        let mut o = Output::create(path.to_str().unwrap()).unwrap();
        o.write_all(&[b'x'; 1 << 20]).unwrap();
        drop(o);
        assert_eq!(entries(dir.path()), vec!["out.csv"]);
        assert_eq!(fs::read(&path).unwrap(), b"previous export\n");
    }

    #[test]
    fn many_writes_arrive_in_order_and_flush_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut o = Output::create(path.to_str().unwrap()).unwrap();
        let mut want = Vec::new();
        for i in 0..200_000u32 {
            let line = format!("{i}\n");
            o.write_all(line.as_bytes()).unwrap();
            want.extend_from_slice(line.as_bytes());
            if i == 1000 {
                o.flush().unwrap();
                let tmp = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap();
                assert_eq!(fs::read(tmp.path()).unwrap(), want);
            }
        }
        o.write_all(&[b'z'; 3 * BUF]).unwrap();
        want.extend_from_slice(&[b'z'; 3 * BUF]);
        assert_eq!(o.commit().unwrap(), want.len() as u64);
        assert_eq!(fs::read(&path).unwrap(), want);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_error_on_the_thread_is_reported() {
        // /dev/full fails every write with ENOSPC.
        let f = tempfile::NamedTempFile::new().unwrap();
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let (_, p) = f.into_parts();
        let tmp = tempfile::NamedTempFile::from_parts(full, p);
        let mut pipe = Pipe::new(Dest::File(tmp)).unwrap();
        let mut failed = None;
        for _ in 0..64 {
            if let Err(e) = pipe.write_all(&[0u8; BUF]) {
                failed = Some(e);
                break;
            }
        }
        let e = failed.or_else(|| pipe.flush().err()).expect("an error");
        assert!(e.to_string().contains("No space left on device"), "{e}");
    }

    /// Exports honour the umask for new files and keep the mode of a file they
    /// replace (they were forced to 0644: readable by everyone under umask 077,
    /// and widening a 0600 file).
    #[test]
    fn modes_follow_the_umask_and_never_widen() {
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let write = |p: &Path| {
            let mut o = Output::create(p.to_str().unwrap()).unwrap();
            o.write_all(b"x\n").unwrap();
            o.commit().unwrap();
        };
        // SAFETY: umask(2) sets this process's creation mask; the other tests
        // of this crate do not depend on it.
        let old = unsafe { libc::umask(0o077) };
        let fresh = dir.path().join("new.json");
        write(&fresh);
        let private = dir.path().join("private.xml");
        fs::write(&private, b"old").unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
        // SAFETY: as above.
        unsafe { libc::umask(0o022) };
        write(&private);
        let umask_022 = dir.path().join("plain.csv");
        write(&umask_022);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        assert_eq!(mode(&fresh), 0o600, "new file under umask 077");
        assert_eq!(mode(&private), 0o600, "a 0600 file stays 0600");
        assert_eq!(mode(&umask_022), 0o644, "new file under umask 022");
    }

    /// A killed export's temporary file (no lock, older than STALE_AFTER) is
    /// removed by the next export into the directory; a live one is kept.
    #[test]
    fn stale_temporaries_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".scan.xml.AbC123.prtip-tmp");
        fs::write(&stale, vec![0u8; 4096]).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fresh_unlocked = dir.path().join(".a.csv.Zz9.prtip-tmp");
        fs::write(&fresh_unlocked, b"just created").unwrap();
        let mut live = Output::create(dir.path().join("live.txt").to_str().unwrap()).unwrap();
        live.write_all(b"live").unwrap();
        live.flush().unwrap();
        let live_tmp = entries(dir.path())
            .into_iter()
            .find(|n| n.starts_with(".live.txt."))
            .unwrap();
        fs::File::options()
            .write(true)
            .open(dir.path().join(&live_tmp))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let other = Output::create(dir.path().join("other.txt").to_str().unwrap()).unwrap();
        let names = entries(dir.path());
        assert!(!names.iter().any(|n| n.contains("AbC123")), "{names:?}");
        assert!(names.contains(&live_tmp), "{names:?}");
        assert!(
            names.contains(&".a.csv.Zz9.prtip-tmp".to_string()),
            "{names:?}"
        );
        drop(other);
        assert_eq!(live.commit().unwrap(), 4);
    }

    #[test]
    fn missing_directory_is_named() {
        let err = Output::create("/nonexistent-prtip-dir/x.csv")
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent-prtip-dir"), "{msg}");
    }
}
