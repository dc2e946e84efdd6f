//! `prtip history list|show|resume|clean|rebuild|diff`: the scans this machine ran.
//!
//! This module reads the history index (`prtip_store::HistoryIndex`) and the scan
//! logs through the store's API; it removes log directories only in `clean`. The
//! index is a cache of the logs: every command first indexes logs the index does
//! not know and refreshes rows left "running" by a dead process, so a missing or
//! stale index never hides a scan.
//!
//! `history resume` is `prtip replay --from-checkpoint` (module `replay` owns
//! resuming); this module only forwards to it.

use crate::paths::Paths;
use crate::UsageError;
use anyhow::Context;
use prtip_store::space::list::{targets_text, ListRef};
use prtip_store::{
    sorted_rows, summarize_lenient, HistoryIndex, HistoryRow, LogReader, PortState, ResultRow,
    ScanStatus,
};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `prtip history`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// List scans: id, status, start, duration, targets, progress, open ports.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused or interrupted scan from its last durable checkpoint (the
    /// same as `prtip replay [SCAN] --from-checkpoint`).
    Resume {
        /// The scan (default: the most recent paused or interrupted one).
        #[arg(long, value_name = "ID")]
        scan_id: Option<u64>,
        /// Do not print open ports as they are found.
        #[arg(long)]
        quiet: bool,
    },
    /// Show one scan: its spec, status, counters and checkpoints.
    Show {
        /// Scan id (as in `history list`) or the path of a scan log directory.
        #[arg(value_name = "SCAN")]
        scan: String,
    },
    /// Remove scans older than AGE: their index rows and their log directories.
    Clean {
        /// Age such as `30d`, `12h`, `90m`, `2w` (units s, m, h, d, w).
        #[arg(long, value_name = "AGE")]
        older_than: String,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Recreate the history index from the scan logs (the logs are the truth).
    Rebuild,
    /// Compare the results of two scans, like nmap's ndiff: hosts and ports that
    /// appeared, disappeared or changed between A and B.
    Diff {
        /// The earlier scan (id or log directory).
        #[arg(value_name = "A")]
        a: String,
        /// The later scan (id or log directory).
        #[arg(value_name = "B")]
        b: String,
        /// Compare every port state, not only open ones (closed <-> filtered too).
        #[arg(long)]
        all_states: bool,
        /// Exit with status 1 when the scans differ (like `git diff --exit-code`).
        #[arg(long)]
        exit_code: bool,
    },
}

/// Run `prtip history ...`.
pub fn run(args: Args, paths: &Paths) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let code = match args.cmd {
        Cmd::List { json } => list(paths, json, &mut out)?,
        Cmd::Show { scan } => show(paths, &scan, &mut out)?,
        Cmd::Resume { scan_id, quiet } => {
            // Make sure the index knows every log (and no dead "running" rows) first.
            open_index(paths)?;
            let args = super::replay::Args {
                scan: scan_id.map(|id| id.to_string()),
                last: false,
                from_checkpoint: true,
                quiet,
            };
            return super::replay::run(args, paths);
        }
        Cmd::Clean {
            older_than,
            dry_run,
        } => clean(paths, &older_than, dry_run, &mut out)?,
        Cmd::Rebuild => rebuild(paths, &mut out)?,
        Cmd::Diff {
            a,
            b,
            all_states,
            exit_code,
        } => diff(paths, &a, &b, all_states, exit_code, &mut out)?,
    };
    print!("{out}");
    Ok(code)
}

/// Open the index, index logs it does not know, refresh rows of dead writers.
fn open_index(paths: &Paths) -> anyhow::Result<HistoryIndex> {
    let ix = HistoryIndex::open(&paths.history)
        .with_context(|| format!("opening the history index {}", paths.history.display()))?;
    let known: BTreeSet<PathBuf> = ix.list()?.into_iter().map(|r| r.log_path).collect();
    if let Ok(rd) = std::fs::read_dir(paths.scans_dir()) {
        for e in rd.flatten() {
            let p = e.path();
            let canon = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            if p.is_dir() && !known.contains(&canon) {
                // Not a log (yet), or damaged: `history rebuild` reports why.
                let _ = ix.index_log(&p);
            }
        }
    }
    ix.refresh()?;
    Ok(ix)
}

/// A scan id or a log directory → (row if indexed, log directory).
fn resolve(
    ix: &HistoryIndex,
    paths: &Paths,
    scan: &str,
) -> anyhow::Result<(Option<HistoryRow>, PathBuf)> {
    if !scan.is_empty() && scan.bytes().all(|b| b.is_ascii_digit()) {
        let id: u64 = scan
            .parse()
            .map_err(|_| UsageError(format!("scan id `{scan}` is too large")))?;
        if let Some(row) = ix.get(id)? {
            let dir = row.log_path.clone();
            return Ok((Some(row), dir));
        }
        let dir = paths.scans_dir().join(scan);
        if dir.is_dir() {
            return Ok((None, dir));
        }
        return Err(UsageError(format!(
            "no scan `{scan}` in the history and no log directory {} (see `prtip history list`)",
            dir.display()
        ))
        .into());
    }
    let dir = PathBuf::from(scan);
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "no scan `{scan}`: give a scan id from `prtip history list` or a scan log directory"
        ))
        .into());
    }
    Ok((None, dir))
}

fn fmt_duration(us: u64) -> String {
    let s = us / 1_000_000;
    if s < 60 {
        format!("{}.{:01}s", s, us / 100_000 % 10)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s / 3600 % 24)
    }
}

fn fmt_bytes(b: u64) -> String {
    if b < 1 << 10 {
        format!("{b} B")
    } else if b < 1 << 20 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else if b < 1 << 30 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    }
}

fn duration_of(r: &HistoryRow) -> String {
    let end = match (r.status, r.ended_us) {
        (_, Some(e)) => e,
        (ScanStatus::Running, None) => prtip_store::event::now_us(),
        _ => return "-".into(),
    };
    fmt_duration(end.saturating_sub(r.started_us))
}

/// The stored target list a scan's target tokens name, as JSON (`null` when
/// they name none): its file, content hash and counts.
fn target_list_json(target_spec: &str) -> serde_json::Value {
    match target_spec.split(' ').find_map(ListRef::parse) {
        Some(r) => serde_json::json!({
            "file": r.hash.file_name(),
            "blake3": r.hash.to_hex(),
            "ipv4": r.v4,
            "ipv6": r.v6,
        }),
        None => serde_json::Value::Null,
    }
}

fn list(paths: &Paths, json: bool, out: &mut String) -> anyhow::Result<ExitCode> {
    let ix = open_index(paths)?;
    let rows = ix.list()?;
    if json {
        for r in &rows {
            let v = serde_json::json!({
                "id": r.id,
                "status": r.status.as_str(),
                "started": prtip_export::rfc3339(r.started_us),
                "ended": r.ended_us.map(prtip_export::rfc3339),
                "targets": targets_text(r.target_spec.split(' ')),
                "target_list": target_list_json(&r.target_spec),
                "total_targets": r.total_targets,
                "total_probes": r.total_probes,
                "probes_done": r.probes_done,
                "progress": r.progress(),
                "open_ports": r.ports_discovered,
                "hosts_up": r.hosts_up,
                "checkpoints": r.checkpoints,
                "log": r.log_path,
            });
            let _ = writeln!(out, "{v}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "no scans in {} (index {})",
            paths.scans_dir().display(),
            paths.history.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let _ = writeln!(
        out,
        "{:>5}  {:<11}  {:<23}  {:>8}  {:<24}  {:>8}  {:>5}  {:>5}",
        "ID", "STATUS", "STARTED", "DURATION", "TARGETS", "PROGRESS", "OPEN", "UP"
    );
    for r in &rows {
        let mut targets = targets_text(r.target_spec.split(' '));
        if targets.chars().count() > 24 {
            targets = targets.chars().take(23).collect::<String>() + "…";
        }
        let _ = writeln!(
            out,
            "{:>5}  {:<11}  {:<23}  {:>8}  {:<24}  {:>7.1}%  {:>5}  {:>5}",
            r.id,
            r.status.as_str(),
            prtip_export::human_time(r.started_us),
            duration_of(r),
            targets,
            r.progress() * 100.0,
            r.ports_discovered,
            r.hosts_up.map_or("-".to_string(), |n| n.to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(paths: &Paths, scan: &str, out: &mut String) -> anyhow::Result<ExitCode> {
    let ix = open_index(paths)?;
    let (row, dir) = resolve(&ix, paths, scan)?;
    let reader =
        LogReader::open(&dir).with_context(|| format!("reading scan log {}", dir.display()))?;
    let s = summarize_lenient(&reader)?;
    let checkpoints = match &row {
        Some(r) => ix.checkpoints(r.id)?,
        None => Vec::new(),
    };
    let w = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "{k:<16} {v}");
    };
    w(out, "scan", s.scan_id.to_string());
    w(out, "status", s.status.to_string());
    w(out, "started", prtip_export::human_time(s.started_us));
    if let Some(e) = s.ended_us {
        let what = if s.status == ScanStatus::Paused {
            "paused"
        } else {
            "ended"
        };
        w(
            out,
            what,
            format!(
                "{} ({} after start)",
                prtip_export::human_time(e),
                fmt_duration(e.saturating_sub(s.started_us))
            ),
        );
    }
    w(out, "command", s.command_line.join(" "));
    w(out, "targets", targets_text(&s.spec.targets));
    if !s.spec.excludes.is_empty() {
        w(out, "excludes", s.spec.excludes.join(" "));
    }
    let ping = s.spec.scan_type == prtip_store::event::ScanType::Ping;
    // A ping sweep's "ports" are its discovery probes (-PE, -PS443, ...).
    w(
        out,
        if ping { "probes" } else { "ports" },
        s.spec.ports.clone(),
    );
    w(
        out,
        "scan type",
        format!("{:?}", s.spec.scan_type).to_lowercase(),
    );
    w(
        out,
        "rate",
        match s.spec.rate_mpps {
            0 => "unlimited".into(),
            m if m % 1000 == 0 => format!("{} pps", m / 1000),
            m => format!("{} pps", m as f64 / 1000.0),
        },
    );
    w(out, "seed", s.spec.seed.to_string());
    if s.spec.shard_count > 1 {
        w(
            out,
            "shard",
            format!("{}/{}", s.spec.shard_index + 1, s.spec.shard_count),
        );
    }
    w(
        out,
        "progress",
        format!(
            "{:.1}% ({} of {} first-pass probes)",
            s.progress() * 100.0,
            if s.status == prtip_store::ScanStatus::Completed {
                s.pass_span()
            } else {
                s.probes_done.min(s.pass_span())
            },
            s.pass_span()
        ),
    );
    w(out, "targets total", s.total_targets.to_string());
    if ping || s.spec.discovers_first() {
        w(out, "hosts up", s.host_rows[0].to_string());
    }
    if !ping {
        w(
            out,
            "open ports",
            format!("{} on {} hosts", s.open_ports, s.open_hosts),
        );
    }
    let c = s.counters;
    w(
        out,
        "counters",
        format!(
            "sent {} replies {} invalid {} open {} closed {} drops {}",
            c.sent, c.replies, c.invalid, c.open, c.closed, c.drops
        ),
    );
    w(out, "events", s.events.to_string());
    w(
        out,
        "log",
        format!(
            "{} ({}, {} segments)",
            dir.display(),
            fmt_bytes(s.log_bytes),
            reader.segments()
        ),
    );
    w(out, "pid", s.pid.to_string());
    if let Some(f) = &s.failure {
        w(out, "failure", f.clone());
    }
    if let Some(d) = &s.damage {
        w(out, "damage", d.clone());
    }
    if let Some(t) = reader.tail().torn {
        w(
            out,
            "torn tail",
            format!(
                "{} bytes after segment {} offset {} (cut by the next resume)",
                t.dropped_bytes, t.segment, t.offset
            ),
        );
    }
    let n = s.checkpoints.max(checkpoints.len() as u64);
    w(out, "checkpoints", n.to_string());
    let shown: Vec<_> = if checkpoints.is_empty() {
        s.last_checkpoint.into_iter().collect()
    } else {
        checkpoints.iter().rev().take(10).rev().copied().collect()
    };
    for cp in shown {
        let _ = writeln!(
            out,
            "  {}  next index {:>12}  sent {:>12}",
            prtip_export::human_time(cp.time_us),
            cp.next_index,
            cp.counters.sent
        );
    }
    if s.status == ScanStatus::Paused && prtip_store::writer_alive(&dir).unwrap_or(false) {
        // Held in place by SIGUSR1 / the monitor's `p`: the process waits.
        let pid = std::fs::read_to_string(dir.join("LOCK")).unwrap_or_default();
        let _ = writeln!(
            out,
            "held in place by pid {0}; continue: kill -USR2 {0} (or `r` in prtip monitor)",
            pid.trim()
        );
    } else if s.status.resumable() {
        let _ = writeln!(out, "resume: prtip replay {} --from-checkpoint", s.scan_id);
    }
    Ok(ExitCode::SUCCESS)
}

/// `30d` → microseconds. Names the bad token on error.
fn parse_age(s: &str) -> Result<u64, UsageError> {
    let bad = || {
        UsageError(format!(
            "--older-than `{s}`: expected a number and a unit s, m, h, d or w (e.g. 30d)"
        ))
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs)
        .and_then(|v| v.checked_mul(1_000_000))
        .ok_or_else(bad)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn clean(
    paths: &Paths,
    older_than: &str,
    dry_run: bool,
    out: &mut String,
) -> anyhow::Result<ExitCode> {
    let age = parse_age(older_than)?;
    let ix = open_index(paths)?;
    let cutoff = prtip_store::event::now_us().saturating_sub(age);
    let mut removed = 0u64;
    let mut freed = 0u64;
    for r in ix.list()? {
        if r.started_us >= cutoff {
            continue;
        }
        // Running, or paused in place (SIGUSR1): a live process holds the log.
        if prtip_store::writer_alive(&r.log_path).unwrap_or(false) {
            let _ = writeln!(
                out,
                "kept scan {} (still running, pid in {})",
                r.id,
                r.log_path.join("LOCK").display()
            );
            continue;
        }
        let bytes = dir_bytes(&r.log_path);
        let verb = if dry_run { "would remove" } else { "removed" };
        let _ = writeln!(
            out,
            "{verb} scan {} ({}, started {}, {}) {}",
            r.id,
            r.status,
            prtip_export::human_time(r.started_us),
            fmt_bytes(bytes),
            r.log_path.display()
        );
        if !dry_run {
            match std::fs::remove_dir_all(&r.log_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing {}", r.log_path.display()))
                }
            }
            ix.remove(r.id)?;
        }
        removed += 1;
        freed += bytes;
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    let _ = writeln!(out, "{verb} {removed} scan(s), {}", fmt_bytes(freed));
    Ok(ExitCode::SUCCESS)
}

fn rebuild(paths: &Paths, out: &mut String) -> anyhow::Result<ExitCode> {
    // The index is a cache of the logs: a damaged one is set aside, not repaired.
    let (ix, aside) = HistoryIndex::open_or_set_aside(&paths.history)
        .with_context(|| format!("opening the history index {}", paths.history.display()))?;
    if let Some(a) = &aside {
        let _ = writeln!(
            out,
            "the history index {} could not be read: set aside as {} and recreated from the logs",
            paths.history.display(),
            a.display()
        );
    }
    let rep = ix.rebuild(&paths.scans_dir())?;
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let _ = writeln!(
        out,
        "indexed {} scan log(s) from {}",
        rep.added.len() + rep.updated.len(),
        paths.scans_dir().display()
    );
    if !rep.added.is_empty() {
        let _ = writeln!(out, "added: {}", ids(&rep.added));
    }
    if !rep.updated.is_empty() {
        let _ = writeln!(out, "refreshed: {}", ids(&rep.updated));
    }
    if !rep.removed.is_empty() {
        let _ = writeln!(out, "removed (log gone): {}", ids(&rep.removed));
    }
    for (p, e) in &rep.errors {
        let _ = writeln!(out, "warning: {}: {e}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The addresses of the scan read by `r` with at least one answer (a row whose
/// reason is not silence).
fn answering_hosts(r: &LogReader) -> anyhow::Result<BTreeSet<prtip_store::Addr>> {
    let mut up = BTreeSet::new();
    for row in sorted_rows(r)? {
        let row = row?;
        if row.reason != prtip_store::event::Reason::NoResponse {
            up.insert(row.addr);
        }
    }
    Ok(up)
}

fn port_line(r: &ResultRow) -> String {
    let mut s = format!("{}/{} {}", r.port, r.proto.as_str(), r.state.as_str());
    if let Some(svc) = &r.service {
        s.push(' ');
        s.push_str(&svc.name);
        for part in [&svc.product, &svc.version, &svc.extra] {
            if !part.is_empty() {
                s.push(' ');
                s.push_str(part);
            }
        }
    }
    s
}

fn interesting(r: &ResultRow, all: bool) -> bool {
    all || matches!(r.state, PortState::Open)
}

fn same(a: &ResultRow, b: &ResultRow) -> bool {
    a.state == b.state
        && a.service
            .as_ref()
            .map(|s| (&s.name, &s.product, &s.version, &s.extra))
            == b.service
                .as_ref()
                .map(|s| (&s.name, &s.product, &s.version, &s.extra))
}

#[derive(Default)]
struct HostDiff {
    lines: Vec<String>,
    had: bool,
    has: bool,
}

fn diff(
    paths: &Paths,
    a: &str,
    b: &str,
    all: bool,
    exit_code: bool,
    out: &mut String,
) -> anyhow::Result<ExitCode> {
    let ix = open_index(paths)?;
    let (_, da) = resolve(&ix, paths, a)?;
    let (_, db) = resolve(&ix, paths, b)?;
    let ra = LogReader::open(&da).with_context(|| format!("reading scan log {}", da.display()))?;
    let rb = LogReader::open(&db).with_context(|| format!("reading scan log {}", db.display()))?;
    let (sa, sb) = (summarize_lenient(&ra)?, summarize_lenient(&rb)?);
    let _ = writeln!(
        out,
        "-scan {} ({}, {}) {}",
        sa.scan_id,
        prtip_export::human_time(sa.started_us),
        sa.status,
        targets_text(&sa.spec.targets)
    );
    let _ = writeln!(
        out,
        "+scan {} ({}, {}) {}",
        sb.scan_id,
        prtip_export::human_time(sb.started_us),
        sb.status,
        targets_text(&sb.spec.targets)
    );
    // A host that answered nothing in a scan was down there: as ndiff, its
    // silent ports (projected from the walk, or written as no-response replies
    // by older logs) are not compared, the host appears or disappears.
    let (up_a, up_b) = (answering_hosts(&ra)?, answering_hosts(&rb)?);
    let shown = |up: &BTreeSet<prtip_store::Addr>, r: &ResultRow| {
        r.reason != prtip_store::event::Reason::NoResponse || up.contains(&r.addr)
    };
    // Both streams are sorted by (address, protocol, port): merge-join them.
    let mut ia = sorted_rows(&ra)?.filter(|r| r.as_ref().map_or(true, |r| shown(&up_a, r)));
    let mut ib = sorted_rows(&rb)?.filter(|r| r.as_ref().map_or(true, |r| shown(&up_b, r)));
    let mut na = ia.next().transpose()?;
    let mut nb = ib.next().transpose()?;
    let mut host: Option<(prtip_store::Addr, Option<String>, HostDiff)> = None;
    let (mut appeared, mut disappeared, mut changed_hosts) = (0, 0, 0);
    let (mut p_new, mut p_gone, mut p_changed) = (0, 0, 0);
    let flush = |h: Option<(prtip_store::Addr, Option<String>, HostDiff)>,
                 out: &mut String,
                 appeared: &mut u32,
                 disappeared: &mut u32,
                 changed: &mut u32| {
        let Some((addr, name, d)) = h else { return };
        if d.lines.is_empty() {
            return;
        }
        let label = match name {
            Some(n) => format!("{addr} ({n})"),
            None => addr.to_string(),
        };
        let _ = writeln!(out);
        match (d.had, d.has) {
            (false, true) => {
                *appeared += 1;
                let _ = writeln!(out, "+{label}: host appeared");
            }
            (true, false) => {
                *disappeared += 1;
                let _ = writeln!(out, "-{label}: host disappeared");
            }
            _ => {
                *changed += 1;
                let _ = writeln!(out, " {label}:");
            }
        }
        for l in d.lines {
            let _ = writeln!(out, "{l}");
        }
    };
    loop {
        let (ra_, rb_) = match (&na, &nb) {
            (None, None) => break,
            (Some(x), Some(y)) if x.key() == y.key() => (na.take(), nb.take()),
            (Some(x), Some(y)) if x.key() < y.key() => (na.take(), None),
            (Some(_), None) => (na.take(), None),
            _ => (None, nb.take()),
        };
        let any = ra_.as_ref().or(rb_.as_ref()).unwrap();
        let addr = any.addr;
        if host.as_ref().is_none_or(|h| h.0 != addr) {
            flush(
                host.take(),
                out,
                &mut appeared,
                &mut disappeared,
                &mut changed_hosts,
            );
            host = Some((addr, any.hostname.clone(), HostDiff::default()));
        }
        let h = &mut host.as_mut().unwrap().2;
        let ia_ = ra_.as_ref().is_some_and(|r| interesting(r, all));
        let ib_ = rb_.as_ref().is_some_and(|r| interesting(r, all));
        h.had |= ra_.as_ref().is_some_and(|r| r.state == PortState::Open);
        h.has |= rb_.as_ref().is_some_and(|r| r.state == PortState::Open);
        match (&ra_, &rb_) {
            (Some(x), Some(y)) if (ia_ || ib_) && !same(x, y) => {
                p_changed += 1;
                h.lines.push(format!("-    {}", port_line(x)));
                h.lines.push(format!("+    {}", port_line(y)));
            }
            (Some(x), None) if ia_ => {
                p_gone += 1;
                h.lines.push(format!("-    {}", port_line(x)));
            }
            (None, Some(y)) if ib_ => {
                p_new += 1;
                h.lines.push(format!("+    {}", port_line(y)));
            }
            _ => {}
        }
        if ra_.is_some() {
            na = ia.next().transpose()?;
        }
        if rb_.is_some() {
            nb = ib.next().transpose()?;
        }
    }
    flush(
        host.take(),
        out,
        &mut appeared,
        &mut disappeared,
        &mut changed_hosts,
    );
    let differ = p_new + p_gone + p_changed > 0;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "hosts: {appeared} appeared, {disappeared} disappeared, {changed_hosts} changed; ports: {p_new} appeared, {p_gone} disappeared, {p_changed} changed"
    );
    Ok(if differ && exit_code {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_bad_ones_name_the_token() {
        assert_eq!(parse_age("30d").unwrap(), 30 * 86_400 * 1_000_000);
        assert_eq!(parse_age("2w").unwrap(), 14 * 86_400 * 1_000_000);
        assert_eq!(parse_age("90m").unwrap(), 90 * 60 * 1_000_000);
        assert_eq!(parse_age("0s").unwrap(), 0);
        for bad in ["30", "d", "30x", "-1d", "1.5d", "", "99999999999999999999d"] {
            let e = parse_age(bad).unwrap_err();
            assert!(e.0.contains(&format!("`{bad}`")), "{}", e.0);
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(1_500_000), "1.5s");
        assert_eq!(fmt_duration(61_000_000), "1m01s");
        assert_eq!(fmt_duration(3_725_000_000), "1h02m");
        assert_eq!(fmt_duration(90_000_000_000), "1d01h");
    }
}
