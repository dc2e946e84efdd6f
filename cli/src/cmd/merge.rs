//! `prtip merge LOG...`: the logs of the shards of one scan into one scan of the
//! current `--home`, and the scale-out pieces of `prtip scan`: `--from-gaps FILE`
//! (send what a refused merge said is missing), `--continue` (resume this shard's
//! interrupted scan found in `--home`, as a pod restarted by its Job does) and the
//! `$(JOB_COMPLETION_INDEX)` of `--shard`.
//!
//! Owns: turning the arguments into log directories, printing the proof or the
//! refusal, the history row of the merged scan. The checks and the fold are
//! `prtip_merge`'s; the scans themselves are prtip-session's, driven by
//! [`super::scan::drive`].
//! A refused merge writes nothing (exit 2).

use crate::paths::Paths;
use crate::UsageError;
use anyhow::Context;
use prtip_engine::scan::ScanPlan;
use prtip_merge::{GapPlan, GAPS_FORMAT};
use prtip_session::privilege::{has_capability, privilege_message, CAP_NET_RAW};
use prtip_session::{Resume, Start};
use prtip_store::event::{
    now_us, Checkpoint, Counters, Event, EventSink, ScanSpec, ScanStarted, Versions, SCHEMA_VERSION,
};
use prtip_store::{HistoryIndex, LogOptions, LogReader, LogWriter, ScanStatus};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `prtip merge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shards' scan logs: log directories, or prtip home directories (every
    /// scan log under their `scans/`).
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    /// When shards are missing or unfinished, write what is missing to FILE (a plan
    /// for `prtip scan --from-gaps FILE`) and exit 0 instead of refusing.
    #[arg(long, value_name = "FILE")]
    pub gaps: Option<PathBuf>,
    /// Print only the merged scan's id.
    #[arg(long)]
    pub quiet: bool,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The log directories the arguments name: a log directory as it is, a home
/// directory as every readable log under its `scans/` (by id).
fn log_dirs(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        if !a.is_dir() {
            return Err(usage(format!(
                "{} is not a directory: name a scan log directory (HOME/scans/ID) or a prtip home",
                a.display()
            )));
        }
        let scans = a.join("scans");
        if !scans.is_dir() {
            out.push(a.clone());
            continue;
        }
        let mut ids: Vec<(u64, PathBuf)> = std::fs::read_dir(&scans)
            .with_context(|| format!("reading {}", scans.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let id = e.file_name().to_str()?.parse::<u64>().ok()?;
                Some((id, e.path()))
            })
            .collect();
        ids.sort();
        let before = out.len();
        for (_, d) in ids {
            // A directory created by a process killed before its first event holds no log.
            match LogReader::open(&d).and_then(|r| r.scan_started()) {
                Ok(_) => out.push(d),
                Err(e) => eprintln!("prtip: skipping {}: {e}", d.display()),
            }
        }
        if out.len() == before {
            return Err(usage(format!("{} holds no scan log", a.display())));
        }
    }
    Ok(out)
}

/// Run `prtip merge`.
pub fn run(args: Args, paths: &Paths) -> anyhow::Result<ExitCode> {
    let dirs = log_dirs(&args.logs)?;
    let plan = match prtip_merge::plan(&dirs)? {
        Ok(p) => p,
        Err(refusal) => {
            if let (Some(file), Some(gp)) = (&args.gaps, &refusal.plan) {
                let json = serde_json::to_string_pretty(gp)?;
                std::fs::write(file, json + "\n")
                    .with_context(|| format!("writing {}", file.display()))?;
                for g in &gp.gaps {
                    eprintln!("prtip: {}", g.why);
                }
                println!(
                    "wrote {} gap(s) to {}: send them with `prtip scan --from-gaps {}`, then merge again with the new logs",
                    gp.gaps.len(),
                    file.display(),
                    file.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let hint = if refusal.plan.is_some() {
                "\n(--gaps FILE writes what is missing as a plan for `prtip scan --from-gaps FILE`)"
            } else {
                ""
            };
            return Err(usage(format!(
                "cannot merge: nothing written\n{refusal}{hint}"
            )));
        }
    };
    let history = HistoryIndex::open(&paths.history)
        .with_context(|| format!("opening the history index {}", paths.history.display()))?;
    let (id, dir) = history
        .new_scan_dir(&paths.scans_dir())
        .context("creating the merged scan's directory")?;
    let stats = match prtip_merge::fold(&plan, &dir, id, std::env::args().collect()) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(anyhow::Error::new(e).context("merging"));
        }
    };
    history
        .index_log(&dir)
        .context("updating the history index")?;
    if args.quiet {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "merged {} log(s) of {} shard(s) (seed {}) into scan {id} ({})",
        stats.logs,
        plan.shard_count,
        plan.spec.seed,
        dir.display()
    );
    println!(
        "coverage: the walk's {} positions, each shard's part proven sent exactly once:",
        plan.total_probes
    );
    for (i, logs) in plan.shards.iter().enumerate() {
        for l in logs {
            println!(
                "  shard {i}/{}  positions {}..{} of {}  {}",
                plan.shard_count,
                l.covered.start,
                l.covered.end,
                l.len,
                l.dir.display()
            );
        }
    }
    println!(
        "{} results ({} open), {} duplicate answer(s) folded; {} probes sent",
        stats.rows, stats.open, stats.duplicates, stats.counters.sent
    );
    Ok(ExitCode::SUCCESS)
}

/// `--shard` with its index from the environment: `$(NAME)/N` (or `${NAME}/N`) reads
/// `NAME`, for a manifest whose `args` Kubernetes did not expand. Anything else is
/// returned as it is.
pub fn shard_arg(s: &str) -> anyhow::Result<String> {
    let Some((i, n)) = s.split_once('/') else {
        return Ok(s.to_string());
    };
    let name = i
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .or_else(|| i.strip_prefix("${").and_then(|v| v.strip_suffix('}')));
    let Some(name) = name else {
        return Ok(s.to_string());
    };
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(format!("{}/{n}", v.trim())),
        _ => Err(usage(format!(
            "bad --shard \"{s}\": {name} is not set (Kubernetes sets JOB_COMPLETION_INDEX in the pods of an Indexed Job); give i/N"
        ))),
    }
}

/// What `--continue` found in `--home` for this scan's shard.
enum Found {
    /// No log of this shard: start it.
    Nothing,
    /// A finished log of this shard.
    Done(u64, PathBuf),
    /// A paused or interrupted log of this shard: resume it.
    Resumable(u64),
}

fn find_shard(paths: &Paths, spec: &ScanSpec) -> anyhow::Result<Found> {
    let history = HistoryIndex::open_for_reading(&paths.history)
        .with_context(|| format!("opening the history index {}", paths.history.display()))?;
    let mut rows = history.list()?;
    rows.sort_by_key(|r| std::cmp::Reverse((r.started_us, r.id)));
    for row in rows {
        let Ok(reader) = LogReader::open(&row.log_path) else {
            continue;
        };
        let Ok(started) = reader.scan_started() else {
            continue;
        };
        let s = &started.spec;
        if s.shard_index != spec.shard_index
            || prtip_merge::same_scan(s, spec).is_err()
            || !s.merged_from.is_empty()
        {
            continue;
        }
        let log = prtip_merge::inspect(&row.log_path)?;
        return Ok(match log.status {
            ScanStatus::Completed => Found::Done(row.id, row.log_path),
            ScanStatus::Running => {
                return Err(usage(format!(
                    "--continue: shard {} of this scan is running in another process (scan {}, {}); wait for it or stop it",
                    log.shard(),
                    row.id,
                    row.log_path.display()
                )))
            }
            _ => Found::Resumable(row.id),
        });
    }
    Ok(Found::Nothing)
}

pub use crate::error::EXIT_PAUSED;

/// `prtip scan --continue`: resume this spec's shard from its last checkpoint if
/// `--home` holds it unfinished, send nothing if it holds it finished, else start
/// it. Exits [`EXIT_PAUSED`] when the run ends paused.
pub fn continue_shard(
    spec: ScanSpec,
    seed_given: bool,
    paths: &Paths,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    if !seed_given {
        return Err(usage(
            "--continue needs --seed: a scan is the same scan (and a shard the same shard) only with the same seed",
        ));
    }
    let code = match find_shard(paths, &spec)? {
        Found::Nothing => {
            let interrupts = super::scan::Interrupts::install()?;
            super::scan::drive(
                prtip_session::prepare(
                    spec.clone(),
                    Start::Fresh {
                        command_line: std::env::args().collect(),
                    },
                    &paths.session_home(),
                )?,
                super::scan::Show::quiet(quiet),
                None,
                interrupts,
            )?
        }
        Found::Done(id, dir) => {
            println!(
                "shard {}/{} of this scan is complete in scan {id} ({}); nothing to send",
                spec.shard_index,
                spec.shard_count,
                dir.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Found::Resumable(id) => super::replay::resume(Some(&id.to_string()), false, paths, quiet)?,
    };
    if code == ExitCode::from(EXIT_PAUSED) {
        if let Found::Resumable(id) = find_shard(paths, &spec)? {
            eprintln!(
                "prtip: shard {}/{} paused (scan {id}); exit {EXIT_PAUSED} so that it is run again and resumed",
                spec.shard_index, spec.shard_count
            );
            return Ok(ExitCode::from(EXIT_PAUSED));
        }
    }
    Ok(code)
}

/// `prtip scan --from-gaps FILE`: one scan per gap of the plan, each a log of its
/// shard that starts at the gap's walk position (`ScanSpec::walk_from`).
pub fn scan_gaps(file: &Path, paths: &Paths, quiet: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| usage(format!("--from-gaps {}: {e}", file.display())))?;
    let gp: GapPlan = serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "--from-gaps {}: not a gap plan written by `prtip merge --gaps` ({e})",
            file.display()
        ))
    })?;
    if gp.format != GAPS_FORMAT {
        return Err(usage(format!(
            "--from-gaps {}: format \"{}\", this prtip reads \"{GAPS_FORMAT}\"",
            file.display(),
            gp.format
        )));
    }
    // Validate every gap before anything is written.
    let mut specs = Vec::new();
    for g in &gp.gaps {
        let spec = gp.spec_for(g);
        let plan = ScanPlan::new(&spec).map_err(|e| {
            usage(format!(
                "--from-gaps {}: shard {}: {e}",
                file.display(),
                g.shard
            ))
        })?;
        let len = if spec.scan_type.is_raw() {
            plan.total_probes()
        } else {
            plan.walk.span()
        };
        if g.shard >= spec.shard_count || g.from > len {
            return Err(usage(format!(
                "--from-gaps {}: gap of shard {}/{} from position {} is outside its walk of {len}",
                file.display(),
                g.shard,
                spec.shard_count,
                g.from
            )));
        }
        specs.push((spec, plan.total_targets(), len, g.from));
    }
    if specs.iter().any(|(s, ..)| s.scan_type.is_raw()) && !has_capability(CAP_NET_RAW) {
        return Err(usage(privilege_message()));
    }
    let mut code = ExitCode::SUCCESS;
    for (spec, targets, len, from) in specs {
        let history = HistoryIndex::open(&paths.history)
            .with_context(|| format!("opening the history index {}", paths.history.display()))?;
        let (id, dir) = history
            .new_scan_dir(&paths.scans_dir())
            .context("creating the scan directory")?;
        let writer = LogWriter::create(&dir, LogOptions::default())?;
        let mut sink = writer.sink();
        sink.push(Event::ScanStarted(Box::new(ScanStarted {
            scan_id: id,
            time_us: now_us(),
            spec: spec.clone(),
            versions: Versions {
                prtip: env!("CARGO_PKG_VERSION").to_string(),
                schema: SCHEMA_VERSION,
            },
            command_line: std::env::args().collect(),
            total_probes: len,
            total_targets: targets,
            pid: std::process::id(),
        })))?;
        // Resume (also after a crash) starts at the gap, not at 0.
        sink.checkpoint(Checkpoint {
            next_index: from,
            counters: Counters::default(),
            time_us: now_us(),
        })?;
        drop(sink);
        writer.finish()?;
        history.index_log(&dir)?;
        eprintln!(
            "prtip: scan {id}: shard {}/{} from walk position {from} of {len}",
            spec.shard_index, spec.shard_count
        );
        let interrupts = super::scan::Interrupts::install()?;
        let session = prtip_session::prepare(
            spec,
            Start::Resume(Resume {
                history,
                id,
                rx: None,
                dir,
                from,
                counters: Counters::default(),
            }),
            &paths.session_home(),
        )?;
        let c = super::scan::drive(session, super::scan::Show::quiet(quiet), None, interrupts)?;
        if c == ExitCode::from(EXIT_PAUSED) {
            // Paused: the user asked to stop; the later gaps wait too.
            return Ok(c);
        }
        if c != ExitCode::SUCCESS {
            code = c;
        }
    }
    Ok(code)
}
