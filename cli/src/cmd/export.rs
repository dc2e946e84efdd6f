//! `prtip export`: render a recorded scan in one format (text, json, xml, grep,
//! csv, html, pdf) to a file or stdout.
//!
//! It resolves SCAN (history id, log directory or `--last`), parses `--filter`,
//! draws a progress line on a terminal and turns Ctrl-C into a clean abort; the
//! rendering itself is prtip-export's. It only reads the log: no `ExportComplete`
//! event is appended (the log has one writer, the scan).

use crate::paths::Paths;
use crate::UsageError;
use anyhow::Context;
use prtip_export::{ExportError, ExportOptions, Format};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Flags of `prtip export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The scan: a history id (see `prtip history`) or a scan log directory.
    #[arg(
        value_name = "SCAN",
        required_unless_present = "last",
        conflicts_with = "last"
    )]
    pub scan: Option<String>,
    /// Export the most recent scan in the history.
    #[arg(long)]
    pub last: bool,
    /// Output format: text, json, xml, grep, csv, html or pdf.
    #[arg(short = 'f', long, value_name = "FORMAT")]
    pub format: String,
    /// Write to FILE instead of stdout (`-` is stdout). Files appear atomically.
    #[arg(short = 'o', long = "output", value_name = "FILE", default_value = "-")]
    pub output: String,
    /// Keep only rows matching this filter expression (see filter/README.md).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Never draw the progress line on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// nmap's --open: only ports that are (possibly) open (open, open|filtered);
    /// with --filter, rows must match both.
    #[arg(long)]
    pub open: bool,
    /// List every silent port (probed, never answered) as a row, also for a scan
    /// wider than 65 536 ports (by default a wide scan's silent ports are counted in
    /// `Not shown` / `<extraports>`, not listed).
    #[arg(long)]
    pub silent_rows: bool,
}

/// Where the scan's log is, from SCAN or `--last`.
fn resolve_scan(args: &Args, paths: &Paths) -> anyhow::Result<PathBuf> {
    if args.last {
        let index = prtip_store::HistoryIndex::open(&paths.history)
            .with_context(|| format!("cannot open the scan history {}", paths.history.display()))?;
        let rows = index.list()?;
        let last = rows.iter().max_by_key(|r| (r.started_us, r.id)).ok_or_else(|| {
            UsageError(format!(
                "--last: the history {} has no scans yet (run prtip scan first, or give a log directory)",
                paths.history.display()
            ))
        })?;
        return Ok(last.log_path.clone());
    }
    let scan = args
        .scan
        .as_deref()
        .expect("clap requires SCAN without --last");
    if let Ok(id) = scan.parse::<u64>() {
        let path = PathBuf::from(scan);
        if !path.is_dir() {
            let index = prtip_store::HistoryIndex::open(&paths.history).with_context(|| {
                format!("cannot open the scan history {}", paths.history.display())
            })?;
            return match index.get(id)? {
                Some(row) => Ok(row.log_path),
                None => Err(UsageError(format!(
                    "no scan #{id} in the history {} (prtip history lists the scans)",
                    paths.history.display()
                ))
                .into()),
            };
        }
        return Ok(path);
    }
    let path = PathBuf::from(scan);
    if !path.is_dir() {
        return Err(UsageError(format!(
            "SCAN {scan:?} is neither a history id nor a scan log directory"
        ))
        .into());
    }
    Ok(path)
}

/// A spinner on stderr, shown only on a terminal and only once an export has
/// taken more than half a second.
struct Progress {
    bar: indicatif::ProgressBar,
    done: Arc<AtomicBool>,
}

impl Progress {
    fn start(format: Format, enabled: bool) -> Progress {
        let bar = indicatif::ProgressBar::hidden();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} exporting {prefix}: {msg} [{elapsed}]",
            )
            .expect("valid progress template"),
        );
        bar.set_prefix(format.name());
        bar.set_message("reading and sorting the scan log");
        let done = Arc::new(AtomicBool::new(false));
        if enabled && std::io::stderr().is_terminal() {
            let (bar, done) = (bar.clone(), done.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                if !done.load(Ordering::Relaxed) {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    bar.enable_steady_tick(Duration::from_millis(120));
                }
            });
        }
        Progress { bar, done }
    }

    fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        self.bar.finish_and_clear();
    }
}

/// Run `prtip export`.
pub fn run(args: Args, paths: &Paths) -> anyhow::Result<ExitCode> {
    let format: Format = args
        .format
        .parse()
        .map_err(|e: ExportError| UsageError(format!("--format: {e}")))?;
    let expr = super::scan::spec::with_open(args.filter.as_deref(), args.open);
    let filter = match &expr {
        Some(expr) => Some(
            prtip_filter::Filter::parse(expr).map_err(|e| UsageError(format!("--filter: {e}")))?,
        ),
        None => None,
    };
    if format == Format::Pdf && args.output == "-" && std::io::stdout().is_terminal() {
        return Err(UsageError(
            "--format pdf would write binary data to the terminal; give -o FILE (or pipe stdout)"
                .into(),
        )
        .into());
    }
    let log_dir = resolve_scan(&args, paths)?;
    prtip_export::interrupt::install().context("cannot install the Ctrl-C handler")?;
    let progress = Progress::start(format, !args.no_progress);
    let bar = progress.bar.clone();
    let mut on_progress = move |n: u64| {
        bar.set_position(n);
        bar.set_message(format!("{} rows", indicatif::HumanCount(n)));
    };
    let matches = filter
        .as_ref()
        .map(|f| move |r: &prtip_store::ResultRow| f.matches(r));
    let mut opts = ExportOptions {
        filter: matches
            .as_ref()
            .map(|m| m as &dyn Fn(&prtip_store::ResultRow) -> bool),
        progress: Some(&mut on_progress),
        cancel: Some(prtip_export::interrupt::flag()),
        silent_rows: args.silent_rows.then_some(true),
    };
    let result = prtip_export::export_log(&log_dir, format, &args.output, &mut opts);
    progress.finish();
    match result {
        Ok(stats) => {
            if args.output != "-" {
                eprintln!(
                    "prtip: wrote {} ({} rows, {} hosts, {} bytes)",
                    stats.path, stats.rows, stats.hosts, stats.bytes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ExportError::Interrupted) => {
            eprintln!("prtip: export interrupted; no partial file was left behind");
            Ok(ExitCode::from(130))
        }
        Err(
            e @ (ExportError::BadOutput { .. }
            | ExportError::UnknownFormat(_)
            | ExportError::Store(
                prtip_store::StoreError::NotALog { .. } | prtip_store::StoreError::Empty { .. },
            )),
        ) => Err(UsageError(e.to_string()).into()),
        Err(e) => {
            Err(anyhow::Error::new(e)
                .context(format!("exporting the scan log {}", log_dir.display())))
        }
    }
}
