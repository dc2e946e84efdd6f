//! Printing the figures: one table per phase, and after each table the ratio
//! prtip/peer for every figure of every prtip backend against every peer.
//! Text only (stdout); the JSON is written by main. Touches nothing else.

use crate::scanners::Outcome;

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn pct(o: &Outcome) -> String {
    match &o.recall {
        Some(r) => format!("{:.3}%", r.recall * 100.0),
        None => "-".into(),
    }
}

fn rate(r: u64) -> String {
    if r == 0 {
        "max".into()
    } else {
        format!("{}k", r as f64 / 1e3)
    }
}

/// Header of a results table.
pub fn header() {
    println!(
        "  {:<16} {:>7} {:>8} {:>8} {:>11} {:>9} {:>8} {:>8} {:>8}  notes",
        "scanner", "asked", "wall s", "send s", "probes/s@t", "recall", "cpu s", "rss MB", "fp+dup"
    );
}

/// The lab veth's drop counters of a run, as a note (none when it dropped nothing).
fn veth_drops(o: &Outcome) -> Option<String> {
    (!o.lab.drops.is_empty()).then(|| {
        let d: Vec<String> = o
            .lab
            .drops
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("veth: {}", d.join(" "))
    })
}

/// One row.
pub fn row(o: &Outcome) {
    let fp = o
        .recall
        .as_ref()
        .map(|r| format!("{}", r.false_pos + r.dups))
        .unwrap_or_else(|| "-".into());
    let mut notes = o.notes.clone();
    notes.extend(veth_drops(o));
    if o.recall.is_none() && o.cpu_ns_per_probe > 0.0 {
        notes.push(format!(
            "{:.0} ns CPU/probe; 1-99% of probes at {:.0}/s",
            o.cpu_ns_per_probe, o.steady_rate
        ));
    }
    if o.runs > 1 {
        notes.push(format!("{} runs", o.runs));
    }
    println!(
        "  {:<16} {:>7} {:>8.2} {:>8.2} {:>11.0} {:>9} {:>8.2} {:>8.1} {:>8}  {}",
        o.scanner,
        rate(o.rate),
        o.usage.wall_s,
        o.send_window_s,
        o.rate_at_target,
        pct(o),
        o.usage.cpu_s(),
        mb(o.usage.max_rss_bytes),
        fp,
        notes.join("; ")
    );
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 || !a.is_finite() || !b.is_finite() {
        "-".into()
    } else {
        format!("{:.2}x", a / b)
    }
}

/// The ratios prtip/peer of one group of outcomes (one rate, or one phase).
pub fn ratios(group: &[Outcome]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for p in group.iter().filter(|o| o.scanner.starts_with("prtip")) {
        for q in group.iter().filter(|o| !o.scanner.starts_with("prtip")) {
            let rec = |o: &Outcome| o.recall.as_ref().map(|r| r.recall).unwrap_or(f64::NAN);
            let line = format!(
                "  {}/{}: wall {}  probes/s@t {} (1-99%: {})  recall {}  cpu {}  rss {}",
                p.scanner,
                q.scanner,
                ratio(p.usage.wall_s, q.usage.wall_s),
                ratio(p.rate_at_target, q.rate_at_target),
                ratio(p.steady_rate, q.steady_rate),
                ratio(rec(p), rec(q)),
                ratio(p.usage.cpu_s(), q.usage.cpu_s()),
                ratio(p.usage.max_rss_bytes as f64, q.usage.max_rss_bytes as f64),
            );
            println!("{line}");
            let r = |a: f64, b: f64| {
                if b == 0.0 || !a.is_finite() || !b.is_finite() {
                    serde_json::Value::Null
                } else {
                    serde_json::json!(a / b)
                }
            };
            out.push(serde_json::json!({
                "prtip": p.scanner, "peer": q.scanner, "rate": p.rate,
                "wall": r(p.usage.wall_s, q.usage.wall_s),
                "rate_at_target": r(p.rate_at_target, q.rate_at_target),
                "steady_rate": r(p.steady_rate, q.steady_rate),
                "recall": r(rec(p), rec(q)),
                "cpu": r(p.usage.cpu_s(), q.usage.cpu_s()),
                "rss": r(p.usage.max_rss_bytes as f64, q.usage.max_rss_bytes as f64),
            }));
        }
    }
    out
}

/// Print a ratio line for a single figure (bisect, memory) of every prtip vs every peer.
pub fn figure_ratios(name: &str, figs: &[(String, f64)]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (p, a) in figs.iter().filter(|(n, _)| n.starts_with("prtip")) {
        let mut parts = Vec::new();
        for (q, b) in figs.iter().filter(|(n, _)| !n.starts_with("prtip")) {
            parts.push(format!("/{q} {}", ratio(*a, *b)));
            out.push(serde_json::json!({"figure": name, "prtip": p, "peer": q,
                "ratio": if *b > 0.0 { serde_json::json!(a / b) } else { serde_json::Value::Null }}));
        }
        if !parts.is_empty() {
            println!("  {name} {p}{}", parts.join("  "));
        }
    }
    out
}

/// Header of the wide phase's table.
pub fn wide_header() {
    println!(
        "  {:<13} {:>7} {:>8} {:>8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10}  notes",
        "scanner",
        "asked",
        "wall s",
        "send s",
        "after s",
        "output KB",
        "rss MB",
        "anon MB",
        "file MB",
        "shmem MB",
        "recall"
    );
}

/// One row of the wide phase: wall, send window at the target, time from the
/// last probe at the target to the exit, output size, peak RSS (whole, and
/// anonymous / file-backed apart), recall (found/want).
pub fn wide_row(o: &Outcome) {
    let recall = match &o.recall {
        Some(r) => format!("{:.3}% ({}/{})", r.recall * 100.0, r.found, r.want),
        None => "-".into(),
    };
    let mut notes = o.notes.clone();
    if let Some(r) = &o.recall {
        if r.false_pos + r.dups > 0 {
            notes.push(format!(
                "{} false positives, {} duplicates",
                r.false_pos, r.dups
            ));
        }
    }
    notes.extend(veth_drops(o));
    if o.runs > 1 {
        notes.push(format!("{} runs", o.runs));
    }
    println!(
        "  {:<13} {:>7} {:>8.2} {:>8.2} {:>9.2} {:>10.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10}  {}",
        o.scanner,
        rate(o.rate),
        o.usage.wall_s,
        o.send_window_s,
        o.after_last_probe_s,
        o.output_bytes as f64 / 1e3,
        mb(o.usage.max_rss_bytes),
        mb(o.usage.peak_anon_bytes),
        mb(o.usage.peak_file_bytes),
        mb(o.usage.peak_shmem_bytes),
        recall,
        notes.join("; ")
    );
}

/// The ratios prtip/peer of the wide phase's figures (below 1 is prtip ahead,
/// except recall).
pub fn wide_ratios(group: &[Outcome]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for p in group.iter().filter(|o| o.scanner.starts_with("prtip")) {
        for q in group.iter().filter(|o| !o.scanner.starts_with("prtip")) {
            let rec = |o: &Outcome| o.recall.as_ref().map(|r| r.recall).unwrap_or(f64::NAN);
            let figs = [
                ("wall", p.usage.wall_s, q.usage.wall_s),
                ("after", p.after_last_probe_s, q.after_last_probe_s),
                ("output", p.output_bytes as f64, q.output_bytes as f64),
                (
                    "rss",
                    p.usage.max_rss_bytes as f64,
                    q.usage.max_rss_bytes as f64,
                ),
                (
                    "anon",
                    p.usage.peak_anon_bytes as f64,
                    q.usage.peak_anon_bytes as f64,
                ),
                (
                    "file",
                    p.usage.peak_file_bytes as f64,
                    q.usage.peak_file_bytes as f64,
                ),
                ("recall", rec(p), rec(q)),
            ];
            println!(
                "  {}/{}: {}",
                p.scanner,
                q.scanner,
                figs.iter()
                    .map(|(n, a, b)| format!("{n} {}", ratio(*a, *b)))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
            let mut v = serde_json::json!({"prtip": p.scanner, "peer": q.scanner});
            for (n, a, b) in figs {
                v[n] = if b == 0.0 || !a.is_finite() || !b.is_finite() {
                    serde_json::Value::Null
                } else {
                    serde_json::json!(a / b)
                };
            }
            out.push(v);
        }
    }
    out
}
