//! What the store leaves on disk: owner-only modes for the home, the logs and
//! the history index (scan data is sensitive), small first segments (a tiny
//! scan needs a few MiB, not two 64 MiB segments), and no `next.spare` left by
//! a log that could not be created.
//!
//! One test per process-wide setting: the umask and RLIMIT_FSIZE are set in
//! the only test that depends on them, in a binary of its own.

mod common;
use common::*;
use prtip_store::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn store_files_are_owner_only_and_small_and_failures_leave_nothing() {
    // The default umask of most systems: before, everything came out 0755/0644.
    // SAFETY: umask(2) only sets the process's file mode creation mask.
    unsafe { libc::umask(0o022) };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let history = HistoryIndex::open(&home.join("history.redb")).unwrap();
    let (_, dir) = history.new_scan_dir(&home.join("scans")).unwrap();
    assert_eq!(mode(&home), 0o700, "home");
    assert_eq!(mode(&home.join("history.redb")), 0o600, "history.redb");
    assert_eq!(mode(&home.join("scans")), 0o700, "scans/");
    assert_eq!(mode(&dir), 0o700, "the scan directory");

    // A tiny log: owner-only files, and its first segment is 1 MiB, not 64.
    let w = LogWriter::create(&dir, LogOptions::default()).unwrap();
    let mut s = w.sink();
    s.push(started(1)).unwrap();
    for i in 0..100 {
        s.push(event(i)).unwrap();
    }
    s.checkpoint(checkpoint(100)).unwrap();
    let allocated: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum();
    assert!(
        allocated <= 2 << 20,
        "a 100-event log allocates {allocated} bytes"
    );
    drop(s);
    w.finish().unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        assert_eq!(mode(&e.path()), 0o600, "{:?}", e.file_name());
    }
    assert_eq!(
        LogOptions::default().segment_capacity(0),
        1 << 20,
        "first segment"
    );
    assert_eq!(LogOptions::default().segment_capacity(3), 8 << 20);
    assert_eq!(LogOptions::default().segment_capacity(6), 64 << 20);
    assert_eq!(LogOptions::default().segment_capacity(60), 64 << 20);

    // An existing home keeps its mode: never widened, never changed.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o750)).unwrap();
    let h2 = HistoryIndex::open(&other.join("history.redb")).unwrap();
    h2.new_scan_dir(&other.join("scans")).unwrap();
    assert_eq!(mode(&other), 0o750);

    // A log that cannot allocate its first segment (a file size limit stands in
    // for a full disk) fails and leaves no `next.spare` behind.
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    // SAFETY: signal(2) and setrlimit(2) change only this process's settings;
    // SIGXFSZ ignored makes an over-limit write fail with EFBIG instead.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: 256 << 10,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let err = match LogWriter::create(&full, LogOptions::default()) {
        Ok(_) => panic!("a log larger than RLIMIT_FSIZE was created"),
        Err(e) => e,
    };
    // SAFETY: as above.
    unsafe {
        let lim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    assert!(err.to_string().contains("next.spare"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!left.contains(&"next.spare".to_string()), "{left:?}");
}
