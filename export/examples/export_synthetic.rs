//! Export synthetic lab-like rows in one format (for RSS and timing measurements).
//!
//! `cargo run --release -p prtip-export --example export_synthetic -- FORMAT ROWS OUT`
//! prints `rows`, `bytes` and the wall time; run it under `/usr/bin/time -v` for the peak RSS.

use prtip_export::{export_rows, synthetic, ExportOptions, Format, ReportMeta, Target};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [format, rows, out] = &args[..] else {
        eprintln!("usage: export_synthetic FORMAT ROWS OUT");
        std::process::exit(2);
    };
    let format: Format = format.parse().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let n: u64 = rows.parse().expect("ROWS is a number");
    let meta = ReportMeta::synthetic(1, &synthetic::lab_spec(), 1_764_080_100_000_000);
    let t = Instant::now();
    let stats = export_rows(
        &meta,
        synthetic::lab_rows(n).map(Ok),
        &[Target::new(format, out.clone())],
        &mut ExportOptions::default(),
    )
    .expect("export");
    eprintln!(
        "{} rows={} bytes={} secs={:.3}",
        format,
        stats[0].rows,
        stats[0].bytes,
        t.elapsed().as_secs_f64()
    );
}
