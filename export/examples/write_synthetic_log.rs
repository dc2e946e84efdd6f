//! Write a synthetic scan log of lab-like results (for benchmarks and demos).
//!
//! `cargo run --release -p prtip-export --example write_synthetic_log -- DIR ROWS`

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: write_synthetic_log DIR ROWS");
    let n: u64 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("ROWS is a number"));
    let t = std::time::Instant::now();
    prtip_export::synthetic::write_log(
        std::path::Path::new(&dir),
        1,
        &prtip_export::synthetic::lab_spec(),
        prtip_export::synthetic::lab_rows(n),
        true,
    )
    .expect("write the log");
    eprintln!(
        "wrote {n} rows to {dir} in {:.2} s",
        t.elapsed().as_secs_f64()
    );
}
