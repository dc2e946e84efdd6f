//! prtip-merge: the logs of the shards of one scan, proven to cover its walk
//! exactly once and folded into one scan log.
//!
//! A scan split with `--shard i/N` walks consecutive slices of one keyed
//! permutation (`prtip_engine::permutation::Walk`): shard `i` owns first-pass
//! positions `[R·i/N, R·(i+1)/N)` of the `R` (target × port) values, repeated once
//! per retry pass. Each shard's log says, with its checkpoints, how far its own walk
//! is durably done. This crate:
//!
//! - [`inspect`]s one log: its spec and the interval of its shard's walk it proves
//!   sent ([`ShardLog::covered`]), from its `ScanStarted` (and the `walk_from` a
//!   gap scan starts at), its `Checkpoint`s, `Resumed` and `Finished`;
//! - [`plan`]s a merge: the logs must be of one scan ([`same_scan`]: targets,
//!   excludes, resolved names, ports, scan type, `-sV`, seed, retries and one N),
//!   and per shard their intervals must tile the shard's walk, with no overlap and
//!   nothing missing. What is missing or unfinished is a list of [`Gap`]s
//!   (writable as a [`GapPlan`] that `prtip scan --from-gaps` sends); what cannot be
//!   fixed by sending more (another scan, two N, overlapping logs) is a
//!   [`Problem`];
//! - [`fold`]s a complete plan into a new log: one `ScanStarted` for the whole walk
//!   (shard 0/1, with where each part came from in `ScanSpec::merged_from`), one
//!   `Reply` (+ first `Banner`, latest `Service`) per (address, protocol, port) from
//!   a k-way merge of each shard's sorted result rows (constant memory per shard),
//!   duplicates folded (the shard that owns the probe wins), then a final
//!   `Checkpoint` and `Finished` with the summed counters.
//!
//! It never sends packets and never writes anywhere but the directory it is given
//! to fold into.

#![warn(missing_docs)]

mod check;
mod fold;

pub use check::{
    inspect, plan, plan_logs, same_scan, Gap, GapPlan, MergePlan, Problem, Refusal, ShardLog,
    GAPS_FORMAT,
};
pub use fold::{fold, FoldStats};

/// Why a merge could not be read or written (I/O, a damaged log).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A log could not be read.
    #[error("{0}")]
    Store(#[from] prtip_store::StoreError),
    /// The merged log could not be written.
    #[error("writing the merged log: {0}")]
    Sink(#[from] prtip_store::event::SinkError),
    /// The spec of the logs does not make a plan (should not happen for logs prtip wrote).
    #[error("the scan's spec does not make a plan: {0}")]
    Plan(String),
}

#[cfg(test)]
mod tests;
