//! Thin wrappers over the Linux calls the log needs: the writer lock (OFD fcntl
//! locks), `fallocate`, zeroing a range, `msync`, truncation, renames, directory
//! fsync.
//!
//! This module owns every `unsafe` libc call of the store except memory mapping
//! (memmap2) and knows nothing about the log format. Every call the log writer
//! makes to change or make durable a file goes through here, so that the
//! fault-injection layer ([`crate::fault`], tests and the `fault-injection`
//! feature) can fail any of them.

use crate::error::{Result, StoreError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

fn flock_struct(kind: libc::c_short) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0; // whole file
    fl
}

/// The writer lock of a scan directory: an open-file-description write lock on
/// `<dir>/LOCK`, released by the kernel when the holder exits (even by SIGKILL).
///
/// OFD locks (not `flock(2)`) are used because a reader can *test* them with
/// `F_OFD_GETLK` without taking them, so probing never races a starting writer.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Take the lock or fail with [`StoreError::Locked`].
    pub fn acquire(dir: &Path) -> Result<WriterLock> {
        let path = dir.join(crate::format::LOCK_NAME);
        let mut file = private_rw()
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        let fl = flock_struct(libc::F_WRLCK as libc::c_short);
        // SAFETY: F_OFD_SETLK with a valid fd and a pointer to an initialized flock
        // struct that lives for the duration of the call.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    pid: read_pid(&path),
                });
            }
            return Err(StoreError::io("lock", &path, err));
        }
        let pid = std::process::id().to_string();
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.write_all(pid.as_bytes());
        Ok(WriterLock { _file: file })
    }
}

fn read_pid(path: &Path) -> u32 {
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .ok()
        .and_then(|_| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether a live process holds the writer lock of `dir` (never takes the lock).
pub fn writer_alive(dir: &Path) -> Result<bool> {
    let path = dir.join(crate::format::LOCK_NAME);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::io("open", &path, e)),
    };
    let mut fl = flock_struct(libc::F_WRLCK as libc::c_short);
    // SAFETY: F_OFD_GETLK with a valid fd and a pointer to an initialized, writable
    // flock struct that the kernel fills in.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if rc != 0 {
        return Err(StoreError::io(
            "test lock",
            &path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether process `pid` holds the writer lock of `dir`, as the kernel reports
/// it: one of its file descriptors is `dir/LOCK` (same device and inode) and its
/// `/proc/PID/fdinfo` entry lists the OFD write lock held through that
/// descriptor. The pid written in `LOCK` (and in the log) is only a claim that
/// anyone who can write a directory can make; this is the proof.
///
/// Fails when `/proc/PID` cannot be read: the process is gone, or it is not
/// inspectable by this one (another user's, or one running with file
/// capabilities, which makes it non-dumpable).
pub fn holds_writer_lock(dir: &Path, pid: u32) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let lock = dir.join(crate::format::LOCK_NAME);
    let want = std::fs::metadata(&lock).map_err(|e| StoreError::io("stat", &lock, e))?;
    let fds = Path::new("/proc").join(pid.to_string()).join("fd");
    let entries = std::fs::read_dir(&fds).map_err(|e| StoreError::io("list", &fds, e))?;
    for e in entries.flatten() {
        // stat follows the magic link to the open file itself.
        let Ok(m) = std::fs::metadata(e.path()) else {
            continue;
        };
        if m.dev() != want.dev() || m.ino() != want.ino() {
            continue;
        }
        let info = Path::new("/proc")
            .join(pid.to_string())
            .join("fdinfo")
            .join(e.file_name());
        let Ok(text) = std::fs::read_to_string(&info) else {
            continue;
        };
        // `lock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:10010641 0 EOF`: only locks
        // held through this descriptor's open file are listed.
        if text
            .lines()
            .any(|l| l.starts_with("lock:") && l.contains("OFDLCK") && l.contains(" WRITE "))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Allocate blocks for `[0, len)` and extend the file to `len` (`fallocate(2)` mode 0).
pub fn fallocate(file: &File, path: &Path, len: u64) -> Result<()> {
    crate::fault::hit(crate::fault::Op::Fallocate, path)?;
    // SAFETY: fallocate on a valid fd with in-range offsets; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
        // Filesystems without fallocate: a sparse file of the right size.
        return file
            .set_len(len)
            .map_err(|e| StoreError::io("set_len", path, e));
    }
    Err(StoreError::io("fallocate", path, err))
}

/// Make `[off, off+len)` read as zeros, keeping the file size and its blocks.
pub fn zero_range(file: &File, path: &Path, off: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    crate::fault::hit(crate::fault::Op::ZeroRange, path)?;
    // SAFETY: fallocate on a valid fd with in-range offsets; no memory is passed.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_ZERO_RANGE,
            off as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Fallback (tmpfs and others): write zeros.
    write_zeros(file, path, off, len)
}

/// Write `len` zero bytes at `off` through the page cache: real writes, which
/// leave *written* extents on ext4 and XFS once they reach the disk (where
/// `fallocate` and `FALLOC_FL_ZERO_RANGE` leave *unwritten* ones).
pub fn write_zeros(file: &File, path: &Path, off: u64, len: u64) -> Result<()> {
    crate::fault::hit(crate::fault::Op::WriteZeros, path)?;
    let zeros = vec![0u8; (1 << 20).min(len as usize)];
    let mut f = file;
    f.seek(SeekFrom::Start(off))
        .map_err(|e| StoreError::io("seek", path, e))?;
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])
            .map_err(|e| StoreError::io("write zeros", path, e))?;
        left -= n as u64;
    }
    Ok(())
}

/// Mode of the directories the store creates (the home, `scans/`, each log):
/// scan data is sensitive, so only the owner may list or enter them.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Mode of the files the store creates (segments, `LOCK`, `history.redb`).
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// `create_dir_all` whose new directories are [`PRIVATE_DIR_MODE`]; existing
/// ones keep their mode (never widened, never changed behind the owner's back).
pub fn create_private_dir_all(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(|e| StoreError::io("create dir", dir, e))
}

/// `OpenOptions` for a file the store creates: read-write, mode [`PRIVATE_FILE_MODE`]
/// when created (an existing file keeps its mode).
pub fn private_rw() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.read(true).write(true).mode(PRIVATE_FILE_MODE);
    o
}

/// `fsync` a directory so that creates, renames and removes in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    crate::fault::hit(crate::fault::Op::FsyncDir, dir)?;
    let f = File::open(dir).map_err(|e| StoreError::io("open dir", dir, e))?;
    f.sync_all()
        .map_err(|e| StoreError::io("fsync dir", dir, e))
}

/// Start writing `len` bytes of `file` from `offset` to disk
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), and with `wait` also wait until
/// they are written (`WAIT_BEFORE | WRITE | WAIT_AFTER`). Durability still needs
/// `msync` or `fdatasync` (no cache flush, no metadata); this only moves the
/// write earlier. Errors are ignored: the next sync writes whatever this did not.
pub fn write_back(file: &File, offset: u64, len: u64, wait: bool) {
    use std::os::fd::AsRawFd;
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            flags,
        );
    }
}

/// `fdatasync` a file.
pub fn fdatasync(file: &File, path: &Path) -> Result<()> {
    crate::fault::hit(crate::fault::Op::Fdatasync, path)?;
    file.sync_data()
        .map_err(|e| StoreError::io("fdatasync", path, e))
}

/// `msync(MS_SYNC)` of `[off, off + len)` of a writable map of `path`.
pub fn msync(map: &memmap2::MmapMut, off: usize, len: usize, path: &Path) -> Result<()> {
    crate::fault::hit(crate::fault::Op::Msync, path)?;
    map.flush_range(off, len)
        .map_err(|e| StoreError::io("msync", path, e))
}

/// Truncate (or extend, sparse) `file` to `len` bytes.
pub fn set_len(file: &File, path: &Path, len: u64) -> Result<()> {
    crate::fault::hit(crate::fault::Op::Truncate, path)?;
    file.set_len(len)
        .map_err(|e| StoreError::io("truncate", path, e))
}

/// `rename(2)` `from` to `to`.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    crate::fault::hit(crate::fault::Op::Rename, from)?;
    std::fs::rename(from, to).map_err(|e| StoreError::io("rename", from, e))
}

/// Current length of an open file.
pub fn file_len(file: &File, path: &Path) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| StoreError::io("stat", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_testable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!writer_alive(dir.path()).unwrap());
        let lock = WriterLock::acquire(dir.path()).unwrap();
        assert!(writer_alive(dir.path()).unwrap());
        match WriterLock::acquire(dir.path()) {
            Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("expected Locked, got {other:?}"),
        }
        // The kernel names this process as the holder, and no other.
        assert!(holds_writer_lock(dir.path(), std::process::id()).unwrap());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(!holds_writer_lock(dir.path(), child.id()).unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lock);
        assert!(!writer_alive(dir.path()).unwrap());
        assert!(!holds_writer_lock(dir.path(), std::process::id()).unwrap());
        let _again = WriterLock::acquire(dir.path()).unwrap();
    }

    /// A new empty file in a fresh temp dir, open for reading and writing.
    fn scratch_file() -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        (dir, p, f)
    }

    #[test]
    fn fallocate_and_zero_range() {
        let (dir, p, mut f) = scratch_file();
        fallocate(&f, &p, 1 << 20).unwrap();
        assert_eq!(file_len(&f, &p).unwrap(), 1 << 20);
        f.write_all(&[0xAB; 10000]).unwrap();
        zero_range(&f, &p, 100, 9000).unwrap();
        let mut back = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 1 << 20);
        assert!(back[..100].iter().all(|&b| b == 0xAB));
        assert!(back[100..9100].iter().all(|&b| b == 0));
        assert!(back[9100..10000].iter().all(|&b| b == 0xAB));
        fsync_dir(dir.path()).unwrap();
        fdatasync(&f, &p).unwrap();
    }

    #[test]
    fn write_back_leaves_the_bytes_as_written() {
        let (_dir, p, mut f) = scratch_file();
        fallocate(&f, &p, 1 << 20).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        f.write_all(&data).unwrap();
        write_back(&f, 0, 256 << 10, false);
        // Past the end and of zero length: ignored, no panic.
        write_back(&f, 4 << 20, 0, false);
        write_back(&f, 0, 1 << 20, true);
        fdatasync(&f, &p).unwrap();
        let mut back = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(&back[..data.len()], &data[..]);
        assert!(back[data.len()..].iter().all(|&b| b == 0));
    }
}
