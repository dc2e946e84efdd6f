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

use crate::ExportError;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

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

/// An open export destination; [`Output::commit`] makes it visible.
pub(crate) struct Output {
    /// Path as given (`-` for stdout).
    pub path: String,
    final_path: Option<PathBuf>,
    writer: BufWriter<Dest>,
    bytes: u64,
}

impl Output {
    /// Open `path` (`-` is stdout). Files get a temporary sibling until commit.
    pub fn create(path: &str) -> Result<Output, ExportError> {
        if path == "-" {
            return Ok(Output {
                path: path.into(),
                final_path: None,
                writer: BufWriter::with_capacity(256 * 1024, Dest::Stdout(io::stdout())),
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
            writer: BufWriter::with_capacity(256 * 1024, Dest::File(tmp)),
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
        let dest = self
            .writer
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?;
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
        let n = self.writer.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
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
    fn missing_directory_is_named() {
        let err = Output::create("/nonexistent-prtip-dir/x.csv")
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent-prtip-dir"), "{msg}");
    }
}
