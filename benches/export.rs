//! Export throughput on 1 M synthetic results (10 ports × 100 000 hosts, lab-like
//! services and banners): CSV, JSON lines, HTML, XML, text, greppable.
//!
//! Two sources: `rows/` renders rows generated in memory (the renderers alone);
//! `log/` writes a real scan log once with the store's LogWriter and exports it
//! with `export_log` (log read + fold + sort + render + atomic write), which is
//! what `prtip export` does.
//!
//! `cargo bench --bench export` (figures in benches/README.md, section "Exports").

use criterion::{criterion_group, criterion_main, Criterion};
use prtip_export::{export_rows, synthetic, ExportOptions, Format, ReportMeta, Target};
use std::time::Duration;

const ROWS: u64 = 1_000_000;

fn rows(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let meta = ReportMeta::synthetic(1, &synthetic::lab_spec(), 1_764_080_100_000_000);
    let mut g = c.benchmark_group("export/rows_1M");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for f in [
        Format::Csv,
        Format::Json,
        Format::Html,
        Format::Xml,
        Format::Text,
        Format::Grep,
    ] {
        let path = dir.path().join(format!("out.{}", f.extension()));
        let target = [Target::new(f, path.to_str().unwrap())];
        g.bench_function(f.name(), |b| {
            b.iter(|| {
                export_rows(
                    &meta,
                    synthetic::lab_rows(ROWS).map(Ok),
                    &target,
                    &mut ExportOptions::default(),
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

fn log(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("scan");
    synthetic::write_log(
        &log,
        1,
        &synthetic::lab_spec(),
        synthetic::lab_rows(ROWS),
        true,
    )
    .unwrap();
    let mut g = c.benchmark_group("export/log_1M");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    for f in [Format::Csv, Format::Json, Format::Html] {
        let path = dir.path().join(format!("out.{}", f.extension()));
        g.bench_function(f.name(), |b| {
            b.iter(|| {
                prtip_export::export_log(
                    &log,
                    f,
                    path.to_str().unwrap(),
                    &mut ExportOptions::default(),
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, rows, log);
criterion_main!(benches);
