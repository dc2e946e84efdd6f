//! Where an export goes: stdout, or a file written atomically.
//!
//! A file export is written to a temporary file in the destination's directory
//! (`.NAME.XXXXXX.prtip-tmp`) and renamed over the destination only after the last
//! byte is written; an error, a Ctrl-C or a panic drops the temporary file
//! instead, so a reader never sees a half-written export. Only a `kill -9`
//! mid-export can leave a `.prtip-tmp` file behind (never the destination itself).
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
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".prtip-tmp")
            .tempfile_in(&dir)
            .map_err(|e| ExportError::Io {
                path: path.into(),
                source: io::Error::new(
                    e.kind(),
                    format!("cannot create a file in {}: {e}", dir.display()),
                ),
            })?;
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
                set_mode_644(tmp.path()).map_err(io_err)?;
                tmp.persist(&final_path).map_err(|e| io_err(e.error))?;
            }
        }
        Ok(bytes)
    }
}

fn set_mode_644(p: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o644))
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

    #[test]
    fn missing_directory_is_named() {
        let err = Output::create("/nonexistent-prtip-dir/x.csv")
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent-prtip-dir"), "{msg}");
    }
}
