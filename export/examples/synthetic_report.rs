//! Write every export format for synthetic lab-like results.
//!
//! `cargo run -p prtip-export --example synthetic_report -- OUT_DIR [ROWS]`
//! writes OUT_DIR/report.{nmap,jsonl,xml,gnmap,csv,html,pdf} in one pass.

use prtip_export::{export_rows, synthetic, ExportOptions, Format, ReportMeta, Target};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".into());
    let n: u64 = args
        .next()
        .map_or(100, |s| s.parse().expect("ROWS is a number"));
    let start = 1_764_080_100_000_000;
    let mut meta = ReportMeta::synthetic(1, &synthetic::lab_spec(), start);
    meta.command_line =
        "prtip scan -sS -sV -p 21-23,25,80,110,143,443,6379,8080 198.19.0.0/16".into();
    meta.total_targets = 65_536;
    meta.total_probes = 655_360;
    meta.ended_us = Some(start + 6_550_000);
    meta.counters.sent = 655_360;
    meta.counters.replies = n * 9 / 10;
    let targets: Vec<Target> = Format::ALL
        .iter()
        .map(|&f| Target::new(f, format!("{dir}/report.{}", f.extension())))
        .collect();
    let stats = export_rows(
        &meta,
        synthetic::lab_rows(n).map(Ok),
        &targets,
        &mut ExportOptions::default(),
    )
    .expect("export");
    for s in stats {
        println!(
            "{:5} {:>10} bytes {:>8} rows  {}",
            s.format.name(),
            s.bytes,
            s.rows,
            s.path
        );
    }
}
