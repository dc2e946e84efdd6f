//! Export a scan log (what `prtip export` does, without the cli): for RSS and
//! timing measurements under `/usr/bin/time -v`.
//!
//! `cargo run --release -p prtip-export --example export_log_file -- FORMAT LOG_DIR OUT`

use prtip_export::{export_log, ExportOptions, Format};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [format, log, out] = &args[..] else {
        eprintln!("usage: export_log_file FORMAT LOG_DIR OUT");
        std::process::exit(2);
    };
    let format: Format = format.parse().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let t = std::time::Instant::now();
    let s = export_log(
        std::path::Path::new(log),
        format,
        out,
        &mut ExportOptions::default(),
    )
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    eprintln!(
        "{format} rows={} hosts={} bytes={} secs={:.3}",
        s.rows,
        s.hosts,
        s.bytes,
        t.elapsed().as_secs_f64()
    );
}
