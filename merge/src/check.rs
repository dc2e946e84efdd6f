//! The proof of coverage: what each log covers of its shard's walk, whether the logs
//! are of one scan, and what is missing. Reads logs; never writes anything.

use crate::MergeError;
use prtip_engine::permutation::Walk;
use prtip_engine::scan::ScanPlan;
use prtip_store::event::{Counters, ScanSpec, ScanStarted};
use prtip_store::{EventRef, LogReader, ScanStatus};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What one log says about its shard's walk.
#[derive(Clone, Debug)]
pub struct ShardLog {
    /// The log directory.
    pub dir: PathBuf,
    /// Its first event.
    pub started: ScanStarted,
    /// Where it stands (completed only with `Finished`).
    pub status: ScanStatus,
    /// Walk positions of its shard it proves sent: from where it started (0, or a
    /// gap scan's `walk_from`) to its last durable checkpoint.
    pub covered: Range<u64>,
    /// Its shard's walk length (`ScanStarted::total_probes`).
    pub len: u64,
    /// The last counters it wrote (checkpoint or `Finished`).
    pub counters: Counters,
    /// Time of its last event that ended a run (`Finished`, `Paused`, `Failed`).
    pub ended_us: Option<u64>,
    /// A resume past the last checkpoint (positions never proven sent), if any.
    pub hole: Option<Range<u64>>,
}

impl ShardLog {
    /// This log's shard as `i/N`.
    pub fn shard(&self) -> String {
        format!(
            "{}/{}",
            self.started.spec.shard_index, self.started.spec.shard_count
        )
    }
}

/// Walk position a gap scan's log starts at (`ScanSpec::walk_from`), else 0.
pub(crate) fn walk_from(spec: &ScanSpec) -> u64 {
    spec.walk_from
}

/// Read the log in `dir` and what it proves. A damaged tail ends the proof where the
/// readable part ends (its checkpoints before that are durable).
pub fn inspect(dir: &Path) -> Result<ShardLog, MergeError> {
    let reader = LogReader::open(dir)?;
    let started = reader.scan_started()?;
    let from = walk_from(&started.spec).min(started.total_probes);
    let mut durable = from;
    let mut last = None;
    let mut counters = Counters::default();
    let mut ended_us = None;
    let mut hole = None;
    for e in reader.iter() {
        let Ok(e) = e else { break };
        match e {
            EventRef::Checkpoint(c) => {
                durable = durable.max(c.next_index.to_native());
                counters = prtip_store::event::Counters {
                    sent: c.counters.sent.to_native(),
                    replies: c.counters.replies.to_native(),
                    invalid: c.counters.invalid.to_native(),
                    open: c.counters.open.to_native(),
                    closed: c.counters.closed.to_native(),
                    drops: c.counters.drops.to_native(),
                };
            }
            EventRef::Resumed(r) => {
                let at = r.from_index.to_native();
                if at > durable && hole.is_none() {
                    hole = Some(durable..at);
                }
                last = Some(ScanStatus::Running);
            }
            EventRef::Paused(p) => {
                last = Some(ScanStatus::Paused);
                ended_us = Some(p.time_us.to_native());
            }
            EventRef::Failed(f) => {
                last = Some(ScanStatus::Failed);
                ended_us = Some(f.time_us.to_native());
            }
            EventRef::Finished(f) => {
                last = Some(ScanStatus::Completed);
                ended_us = Some(f.time_us.to_native());
                let c = &f.counters;
                counters = Counters {
                    sent: c.sent.to_native(),
                    replies: c.replies.to_native(),
                    invalid: c.invalid.to_native(),
                    open: c.open.to_native(),
                    closed: c.closed.to_native(),
                    drops: c.drops.to_native(),
                };
            }
            _ => {}
        }
    }
    let status = match last {
        Some(s @ (ScanStatus::Completed | ScanStatus::Paused | ScanStatus::Failed)) => s,
        _ if reader.writer_alive() => ScanStatus::Running,
        _ => ScanStatus::Interrupted,
    };
    let len = started.total_probes;
    Ok(ShardLog {
        dir: dir.to_path_buf(),
        covered: from..durable.min(len),
        len,
        status,
        counters,
        ended_us,
        hole,
        started,
    })
}

/// Whether two specs describe the same walk: same targets, excludes, resolved
/// names, ports, scan type, `-sV`, seed, retries and shard count. `Err` names the
/// first field that differs, with `b`'s value then `a`'s ("seed 7 against 3"). Rate, timing, interface, source,
/// gateway, outputs and the shard index may differ (they are per node).
pub fn same_scan(a: &ScanSpec, b: &ScanSpec) -> Result<(), String> {
    let fields: [(&str, String, String); 9] = [
        ("seed", a.seed.to_string(), b.seed.to_string()),
        (
            "shard count",
            a.shard_count.to_string(),
            b.shard_count.to_string(),
        ),
        ("targets", a.targets.join(" "), b.targets.join(" ")),
        ("excludes", a.excludes.join(","), b.excludes.join(",")),
        (
            "resolved names",
            format!("{:?}", a.resolved),
            format!("{:?}", b.resolved),
        ),
        ("ports", a.ports.clone(), b.ports.clone()),
        (
            "scan type",
            format!("{:?}", a.scan_type),
            format!("{:?}", b.scan_type),
        ),
        (
            "service detection (-sV)",
            a.service_detection.to_string(),
            b.service_detection.to_string(),
        ),
        (
            "retries (--max-retries)",
            a.max_retries.to_string(),
            b.max_retries.to_string(),
        ),
    ];
    for (name, x, y) in fields {
        if x != y {
            return Err(format!("{name} {y} against {x}"));
        }
    }
    Ok(())
}

/// Part of a shard's walk that no finished log covers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    /// Shard index `i` of `i/N`.
    pub shard: u32,
    /// First walk position of the shard not proven sent.
    pub from: u64,
    /// End of the shard's walk. `from == to`: every probe was sent but the run did
    /// not finish (the wait for late replies, the silent ports).
    pub to: u64,
    /// In words: which log stopped where, or that no log was given.
    pub why: String,
}

/// Why logs cannot be merged, whatever more is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// No log was given.
    NoLogs,
    /// A log is of another scan (or the same scan split another way).
    OtherScan {
        /// The log that differs.
        dir: PathBuf,
        /// The first log, which the others are compared with.
        reference: PathBuf,
        /// The field that differs, with both values.
        what: String,
    },
    /// A log's shard has a walk length the spec does not give (not written by this
    /// prtip, or edited).
    WrongLength {
        /// The log.
        dir: PathBuf,
        /// Its shard, `i/N`.
        shard: String,
        /// Length in its `ScanStarted`.
        claimed: u64,
        /// Length the spec gives.
        expected: u64,
    },
    /// Two logs cover the same positions of a shard.
    Overlap {
        /// Shard index.
        shard: u32,
        /// Shard count.
        count: u32,
        /// The earlier log.
        a: PathBuf,
        /// The later log.
        b: PathBuf,
        /// Positions both cover.
        range: Range<u64>,
    },
    /// A log resumed past its last checkpoint: positions in `range` were never proven sent.
    Hole {
        /// The log.
        dir: PathBuf,
        /// Its shard, `i/N`.
        shard: String,
        /// Positions skipped.
        range: Range<u64>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoLogs => write!(f, "no scan logs given: name the shards' log directories (or their --home directories)"),
            Problem::OtherScan { dir, reference, what } => write!(
                f,
                "{} is not a shard of the same scan as {}: {what}",
                dir.display(),
                reference.display()
            ),
            Problem::WrongLength { dir, shard, claimed, expected } => write!(
                f,
                "{} (shard {shard}) says its walk has {claimed} positions, the spec gives {expected}: not a log of this prtip's walk",
                dir.display()
            ),
            Problem::Overlap { shard, count, a, b, range } => write!(
                f,
                "shard {shard}/{count}: {} and {} both cover walk positions {}..{}: give one of them",
                a.display(),
                b.display(),
                range.start,
                range.end
            ),
            Problem::Hole { dir, shard, range } => write!(
                f,
                "{} (shard {shard}) resumed at walk position {} past its last checkpoint {}: positions {}..{} were never proven sent",
                dir.display(),
                range.end,
                range.start,
                range.start,
                range.end
            ),
        }
    }
}

/// Why a merge was refused: problems no more sending can fix, and the gaps that
/// sending can (a [`GapPlan`]).
#[derive(Clone, Debug, Default)]
pub struct Refusal {
    /// Logs that cannot be merged as they are.
    pub problems: Vec<Problem>,
    /// What is missing or unfinished (empty when there are problems).
    pub gaps: Vec<Gap>,
    /// The plan to send the gaps (when there are gaps and no problems).
    pub plan: Option<GapPlan>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in &self.problems {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{p}")?;
        }
        for g in &self.gaps {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{}", g.why)?;
        }
        Ok(())
    }
}

/// Version tag of a gap plan file.
pub const GAPS_FORMAT: &str = "prtip-gaps/1";

/// What is missing from a sharded scan, as a file `prtip scan --from-gaps` sends:
/// the scan's spec (without the per-node interface, source and gateway) and, per
/// gap, the shard and the walk position to start from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GapPlan {
    /// [`GAPS_FORMAT`].
    pub format: String,
    /// The scan's spec (shard index of the first log; each gap sets its own).
    pub spec: ScanSpec,
    /// The gaps, by shard.
    pub gaps: Vec<Gap>,
}

impl GapPlan {
    /// The spec of the scan that sends `gap`: its shard, starting at `gap.from`.
    pub fn spec_for(&self, gap: &Gap) -> ScanSpec {
        let mut spec = self.spec.clone();
        spec.shard_index = gap.shard;
        spec.merged_from.clear();
        spec.walk_from = gap.from;
        spec
    }
}

/// A merge that can be folded: every shard's walk covered exactly once by finished logs.
pub struct MergePlan {
    /// The merged scan's spec: the first log's, as shard 0/1 (a one-machine scan).
    pub spec: ScanSpec,
    /// Number of shards.
    pub shard_count: u32,
    /// Per shard, its logs in walk order (they tile its walk).
    pub shards: Vec<Vec<ShardLog>>,
    /// The whole walk's length (what a one-machine scan's `total_probes` is).
    pub total_probes: u64,
    /// Target addresses.
    pub total_targets: u64,
    /// The one-machine plan (index-space values of results).
    pub(crate) scan: ScanPlan,
    /// Each shard's walk.
    pub(crate) walks: Vec<Walk>,
}

impl fmt::Debug for MergePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergePlan")
            .field("shard_count", &self.shard_count)
            .field("total_probes", &self.total_probes)
            .field("shards", &self.shards)
            .finish()
    }
}

impl MergePlan {
    /// The shard whose walk sends (address, protocol, port), if the scan covers it.
    pub fn owner(
        &self,
        addr: std::net::IpAddr,
        proto: prtip_store::Protocol,
        port: u16,
    ) -> Option<u32> {
        let v = self.scan.value_of(addr, proto, port)?;
        self.walks
            .iter()
            .position(|w| w.position_of(v).is_some())
            .map(|i| i as u32)
    }
}

/// [`plan_logs`] over the logs in `dirs` ([`inspect`]ed in order).
pub fn plan(dirs: &[PathBuf]) -> Result<Result<MergePlan, Refusal>, MergeError> {
    let logs = dirs
        .iter()
        .map(|d| inspect(d))
        .collect::<Result<Vec<_>, _>>()?;
    plan_logs(logs)
}

fn pct(a: u64, b: u64) -> f64 {
    a as f64 * 100.0 / b.max(1) as f64
}

/// Check that `logs` are the shards of one scan and cover its walk exactly once.
/// `Ok(Err(refusal))` names every problem, or else every gap; `Err` is a spec that
/// makes no plan at all.
pub fn plan_logs(logs: Vec<ShardLog>) -> Result<Result<MergePlan, Refusal>, MergeError> {
    let mut refusal = Refusal::default();
    let Some(first) = logs.first() else {
        refusal.problems.push(Problem::NoLogs);
        return Ok(Err(refusal));
    };
    for l in &logs[1..] {
        if let Err(what) = same_scan(&first.started.spec, &l.started.spec) {
            refusal.problems.push(Problem::OtherScan {
                dir: l.dir.clone(),
                reference: first.dir.clone(),
                what,
            });
        }
    }
    if !refusal.problems.is_empty() {
        return Ok(Err(refusal));
    }
    let n = first.started.spec.shard_count.max(1);
    let mut spec = first.started.spec.clone();
    spec.shard_index = 0;
    spec.shard_count = 1;
    let scan = ScanPlan::new(&spec).map_err(|e| MergeError::Plan(e.to_string()))?;
    let walks: Vec<Walk> = (0..n).map(|i| scan.walk.shard(i, n)).collect();
    // -sT/-sU retry inline: one walk position per value (as their ScanStarted says).
    let len_of = |w: &Walk| {
        if spec.scan_type.is_raw() {
            w.len()
        } else {
            w.span()
        }
    };
    let mut shards: Vec<Vec<ShardLog>> = vec![Vec::new(); n as usize];
    for l in logs {
        let i = l.started.spec.shard_index;
        let expected = len_of(&walks[i as usize]);
        if l.len != expected {
            refusal.problems.push(Problem::WrongLength {
                dir: l.dir.clone(),
                shard: l.shard(),
                claimed: l.len,
                expected,
            });
        } else if let Some(h) = &l.hole {
            refusal.problems.push(Problem::Hole {
                dir: l.dir.clone(),
                shard: l.shard(),
                range: h.clone(),
            });
        }
        shards[i as usize].push(l);
    }
    for (i, logs) in shards.iter_mut().enumerate() {
        logs.sort_by_key(|l| (l.covered.start, l.covered.end));
        let len = len_of(&walks[i]);
        let mut cursor = 0u64;
        let mut prev: Option<&ShardLog> = None;
        for l in logs.iter() {
            if l.covered.start > cursor {
                refusal.gaps.push(Gap {
                    shard: i as u32,
                    from: cursor,
                    to: len,
                    why: format!(
                        "shard {i}/{n}: walk positions {cursor}..{} are in no log given",
                        l.covered.start
                    ),
                });
            } else if l.covered.start < cursor {
                let p = prev.expect("cursor > 0 only after a log");
                refusal.problems.push(Problem::Overlap {
                    shard: i as u32,
                    count: n,
                    a: p.dir.clone(),
                    b: l.dir.clone(),
                    range: l.covered.start..cursor.min(l.covered.end).max(l.covered.start),
                });
            }
            cursor = cursor.max(l.covered.end);
            prev = Some(l);
        }
        match logs.last() {
            None => refusal.gaps.push(Gap {
                shard: i as u32,
                from: 0,
                to: len,
                why: format!(
                    "shard {i}/{n} is missing: no log of it was given ({len} walk positions)"
                ),
            }),
            Some(l) if l.status != ScanStatus::Completed || cursor < len => {
                let what = match l.status {
                    ScanStatus::Completed => "completed".to_string(),
                    ScanStatus::Failed => "failed".to_string(),
                    s => s.as_str().to_string(),
                };
                refusal.gaps.push(Gap {
                    shard: i as u32,
                    from: cursor,
                    to: len,
                    why: format!(
                        "shard {i}/{n} is unfinished: {} is {what} at walk position {cursor} of {len} ({:.1}%)",
                        l.dir.display(),
                        pct(cursor, len)
                    ),
                });
            }
            Some(_) => {}
        }
    }
    if !refusal.problems.is_empty() {
        refusal.gaps.clear();
        return Ok(Err(refusal));
    }
    if !refusal.gaps.is_empty() {
        let mut gspec = first_spec(&shards);
        gspec.interface = None;
        gspec.source = None;
        gspec.router_mac = None;
        refusal.plan = Some(GapPlan {
            format: GAPS_FORMAT.into(),
            spec: gspec,
            gaps: refusal.gaps.clone(),
        });
        return Ok(Err(refusal));
    }
    let total_targets = scan.total_targets();
    Ok(Ok(MergePlan {
        total_probes: len_of(&scan.walk),
        total_targets,
        spec,
        shard_count: n,
        shards,
        scan,
        walks,
    }))
}

fn first_spec(shards: &[Vec<ShardLog>]) -> ScanSpec {
    shards
        .iter()
        .flatten()
        .next()
        .expect("at least one log")
        .started
        .spec
        .clone()
}
