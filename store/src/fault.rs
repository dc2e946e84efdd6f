//! Fault injection for the log writer's I/O, in the spirit of redb's fuzzer
//! (`fuzz/fuzz_targets/fuzz_redb.rs`): every call that changes a segment file or
//! makes it durable goes through [`crate::sys`], which asks [`hit`] first. With
//! the `fault-injection` feature (or in the crate's own tests) a test can make
//! the n-th such call in a directory fail, and then check what a reader and a
//! recovering writer find against a model of what the writer acknowledged.
//!
//! This module owns the registry of injected faults and nothing else; without
//! the feature, [`hit`] is an inlined `Ok(())` and the registry does not exist.

/// A kind of I/O call the writer makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `fallocate(2)` of a new or re-extended segment.
    Fallocate,
    /// `fallocate(FALLOC_FL_ZERO_RANGE)` of a torn tail.
    ZeroRange,
    /// Zeros written through the page cache (spare preparation).
    WriteZeros,
    /// `msync(MS_SYNC)` of a range of a mapped segment.
    Msync,
    /// `fdatasync(2)` of a segment.
    Fdatasync,
    /// `ftruncate(2)` of a sealed or finished segment.
    Truncate,
    /// `rename(2)` of the spare into a segment.
    Rename,
    /// `fsync(2)` of the log directory.
    FsyncDir,
}

#[cfg(not(any(test, feature = "fault-injection")))]
#[inline(always)]
pub(crate) fn hit(_op: Op, _path: &std::path::Path) -> crate::Result<()> {
    Ok(())
}

#[cfg(any(test, feature = "fault-injection"))]
pub use imp::*;

#[cfg(any(test, feature = "fault-injection"))]
mod imp {
    use super::Op;
    use crate::error::{Result, StoreError};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    struct Plan {
        dir: PathBuf,
        fail_at: Option<u64>,
        fail_op: Option<Op>,
        calls: Vec<(Op, PathBuf)>,
        failed: Option<(u64, Op)>,
    }

    static PLANS: Mutex<Vec<Plan>> = Mutex::new(Vec::new());

    /// Faults injected into one log directory until dropped.
    pub struct Injector {
        dir: PathBuf,
    }

    /// Count the writer's I/O calls on files in `dir` (the directory itself and
    /// anything under it), and make call number `fail_at` (0-based) fail with an
    /// I/O error, and every call after it too (a failed device stays failed; the
    /// writer must not acknowledge anything after the first failure).
    pub fn inject(dir: &Path, fail_at: Option<u64>) -> Injector {
        register(dir, fail_at, None)
    }

    /// Like [`inject`], failing the first call of kind `op` (and every call after it).
    pub fn inject_op(dir: &Path, op: Op) -> Injector {
        register(dir, None, Some(op))
    }

    fn register(dir: &Path, fail_at: Option<u64>, fail_op: Option<Op>) -> Injector {
        let mut plans = PLANS.lock().unwrap_or_else(|p| p.into_inner());
        plans.retain(|p| p.dir != dir);
        plans.push(Plan {
            dir: dir.to_path_buf(),
            fail_at,
            fail_op,
            calls: Vec::new(),
            failed: None,
        });
        Injector {
            dir: dir.to_path_buf(),
        }
    }

    impl Injector {
        fn with<T>(&self, f: impl FnOnce(&Plan) -> T) -> T {
            let plans = PLANS.lock().unwrap_or_else(|p| p.into_inner());
            let p = plans
                .iter()
                .find(|p| p.dir == self.dir)
                .expect("registered");
            f(p)
        }

        /// The calls made so far (including failed ones), in order.
        pub fn calls(&self) -> Vec<(Op, PathBuf)> {
            self.with(|p| p.calls.clone())
        }

        /// The call that was made to fail, if one was: its number and kind.
        pub fn failed(&self) -> Option<(u64, Op)> {
            self.with(|p| p.failed)
        }
    }

    impl Drop for Injector {
        fn drop(&mut self) {
            let mut plans = PLANS.lock().unwrap_or_else(|p| p.into_inner());
            plans.retain(|p| p.dir != self.dir);
        }
    }

    /// Called by [`crate::sys`] before each I/O call on `path`.
    pub(crate) fn hit(op: Op, path: &Path) -> Result<()> {
        let mut plans = PLANS.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = plans.iter_mut().find(|p| path.starts_with(&p.dir)) else {
            return Ok(());
        };
        let n = p.calls.len() as u64;
        p.calls.push((op, path.to_path_buf()));
        if p.failed.is_some() || p.fail_at == Some(n) || p.fail_op == Some(op) {
            p.failed.get_or_insert((n, op));
            return Err(StoreError::io(
                "injected fault",
                path,
                std::io::Error::other(format!("{op:?} (call {n}) failed by fault injection")),
            ));
        }
        Ok(())
    }
}
