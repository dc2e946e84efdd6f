//! `prtip scan`: flags → `ScanSpec` → a prtip-session → what the user sees.
//!
//! Owns: the scan flags ([`args`]) and turning them into a spec ([`spec`]), the
//! signal handling (pause, hold, abort), the live output (open ports as found, the
//! progress and status lines, `-v`/`-d`: [`show`]) and the summary at the end
//! (rendered by prtip-export). When an output writes to stdout (`-oJ -`), all
//! of it goes to stderr. The session (privileges, route, backend, log, history, `-sV`,
//! exports) is prtip-session's; [`drive`] runs one for `scan`, `replay
//! --from-checkpoint`, `history resume` and `scan --tui`.

pub mod args;
pub mod checks;
pub mod limits;
pub mod show;
pub mod spec;

pub use args::{nmap_style_args, Args};
pub use show::Show;

use crate::paths::Paths;
use anyhow::Context;
use prtip_engine::scan::{ScanControl, ScanOutcome};
use prtip_session::{Report, Session, Start};
use prtip_store::event::{Event, PortState};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run a prepared session with signals, live output and the summary: what
/// `prtip scan`, `replay --from-checkpoint` and `history resume` share. With
/// `front` (`--tui`) nothing is printed while the monitor is on screen, and the
/// last words wait until the user has left it. `show` says what is printed
/// besides the results ([`show`]).
pub fn drive(
    mut session: Session,
    show: Show,
    front: Option<&super::live::Front>,
    interrupts: Interrupts,
) -> anyhow::Result<ExitCode> {
    let quiet = show.quiet;
    for note in session.take_notes() {
        eprintln!("prtip: {note}");
    }
    if let Some(f) = front {
        f.log_created(session.dir());
    }
    let hush = front.map(|f| f.on_screen_flag());
    let control = interrupts.control.clone();
    interrupts.wait_ms.store(session.spec().wait_ms, Relaxed);
    let tty = std::io::stderr().is_terminal();
    let screen = Arc::new(show::Screen::new(tty));
    let done = Arc::new(AtomicBool::new(false));
    if show.verbose > 0 {
        eprintln!("prtip: {}", plan_line(&session));
    }
    let progress = progress_thread(
        control.clone(),
        done.clone(),
        session.plan().walk.span(),
        hush.clone(),
        screen.clone(),
        show,
    );
    let names: HashMap<IpAddr, String> = session
        .spec()
        .resolved
        .iter()
        .map(|h| (h.addr.ip(), h.name.clone()))
        .collect();
    let seed = session.spec().seed;
    // An output on stdout (`-oJ -`) has stdout to itself: everything else goes to stderr.
    let to = Human::of(session.spec());
    let filter = session.spec().filter.clone();
    let hush2 = hush.clone();
    let screen2 = screen.clone();
    // Open ports as they are found (and with -d, the log's events).
    let mut print = move |event: &Event| {
        if hush2.as_ref().is_some_and(|h| h.load(Relaxed)) {
            return;
        }
        if let Some(line) = show.debug_line(event) {
            screen2.above(&mut std::io::stderr().lock(), &mut std::io::stderr(), &line);
        }
        let Event::Reply(r) = event else { return };
        if r.state != PortState::Open || quiet {
            return;
        }
        let ip = r.addr.ip();
        let name = names
            .get(&ip)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let details = if show.verbose >= 2 {
            format!(
                " ({}, ttl {}, rtt {:.2} ms)",
                r.reason.as_str(),
                r.ttl,
                r.rtt_us as f64 / 1000.0
            )
        } else {
            String::new()
        };
        let line = if r.proto == prtip_store::event::Protocol::Host {
            format!("Discovered host {ip}{name} is up ({})", r.reason.as_str())
        } else {
            format!(
                "Discovered open port {}/{} on {ip}{name}{details}",
                r.port,
                r.proto.as_str()
            )
        };
        screen2.above(&mut to.writer(), &mut std::io::stderr(), &line);
    };
    let result = session.run(&control, &mut print);
    done.store(true, Relaxed);
    if progress.join().is_err() {
        eprintln!("prtip: the progress line's thread panicked");
    }
    if !hush.as_ref().is_some_and(|h| h.load(Relaxed)) {
        screen.clear(&mut std::io::stderr());
    }
    for note in control.take_notes() {
        eprintln!("prtip: {note}");
    }
    interrupts.handle.close();
    if let Some(f) = front {
        if result.is_ok() {
            f.wait_closed();
        }
    }
    let report = result?;
    for w in &report.warnings {
        eprintln!("prtip: {w}");
    }
    let id = report.id;
    match &report.outcome {
        ScanOutcome::Aborted => {
            eprintln!("prtip: stopped at once (scan {id}); resume from the last checkpoint: prtip replay {id} --from-checkpoint");
            Ok(ExitCode::from(130))
        }
        ScanOutcome::Finished { .. } => {
            print_summary(&report, seed, quiet, to, filter.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        ScanOutcome::Paused { next_index, .. } => {
            // Percent of the first pass: retry passes resend only unanswered probes.
            let pct = prtip_session::percent_done(*next_index, report.span);
            let _ = writeln!(
                to.writer(),
                "paused at {pct:.1}% (scan {id}) — resume: prtip replay {id} --from-checkpoint"
            );
            Ok(ExitCode::from(crate::error::EXIT_PAUSED))
        }
    }
}

/// `-v`'s first line: what the scan will do.
fn plan_line(session: &Session) -> String {
    let spec = session.spec();
    let plan = session.plan();
    let hosts = plan.total_targets();
    let span = plan.walk.span();
    let ports = span / hosts.max(1);
    let rate = match spec.rate_mpps {
        0 => "unlimited".to_string(),
        m => format!("{} pps", m as f64 / 1000.0),
    };
    format!(
        "scanning {hosts} hosts × {ports} ports: {span} probes a pass, {} retries at most, \
         rate {rate}, wait {:.1} s, seed {}; log {}",
        spec.max_retries,
        spec.wait_ms as f64 / 1000.0,
        spec.seed,
        session.dir().display()
    )
}

/// Where the scan's words for people go: stdout, unless an output (`-oJ -`,
/// `-oX -`, ...) writes there (then stderr, so that `prtip scan ... -oJ - | jq`
/// sees JSON only).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Human {
    Stdout,
    Stderr,
}

impl Human {
    fn of(spec: &prtip_store::event::ScanSpec) -> Human {
        if spec.outputs.iter().any(|o| o.path == "-") {
            Human::Stderr
        } else {
            Human::Stdout
        }
    }

    fn writer(self) -> Box<dyn Write> {
        match self {
            Human::Stdout => Box::new(std::io::stdout().lock()),
            Human::Stderr => Box::new(std::io::stderr().lock()),
        }
    }
}

/// The end of a finished scan: nmap's normal output for small scans, the
/// per-port table for large ones (both prtip-export's), and one line of figures;
/// with `--quiet` the line of figures only (the log and `-o*` files have the rest).
/// The report keeps to the scan's filter (`--filter`, `--open`), as its files do.
fn print_summary(
    report: &Report,
    seed: u64,
    quiet: bool,
    to: Human,
    filter: Option<&str>,
) -> anyhow::Result<()> {
    let mut out = to.writer();
    if quiet {
        // Nothing but the line of figures below.
    } else if report.total_targets <= 256 {
        let filter = filter
            .map(prtip_filter::Filter::parse)
            .transpose()
            .context("the scan's --filter")?;
        let pred = |r: &prtip_store::ResultRow| filter.as_ref().is_none_or(|f| f.matches(r));
        let mut opts = prtip_export::ExportOptions {
            filter: Some(&pred),
            ..Default::default()
        };
        prtip_export::export_log_into(&report.dir, prtip_export::Format::Text, &mut out, &mut opts)
            .context("printing the results")?;
    } else {
        prtip_export::write_port_table(&report.dir, &mut out).context("printing the results")?;
    }
    // From the log, like the report above: one duration, counts in words (the
    // summary the session read for the history row: the log is not read again).
    let line = prtip_export::done_line(&report.summary, seed);
    writeln!(out, "{line}")?;
    Ok(())
}

/// The progress line (a terminal), the periodic status lines and `-v`'s
/// "service detection" line, until `done`.
fn progress_thread(
    control: Arc<ScanControl>,
    done: Arc<AtomicBool>,
    span: u64,
    hush: Option<Arc<AtomicBool>>,
    screen: Arc<show::Screen>,
    show: Show,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tty = std::io::stderr().is_terminal();
        let stats = show.stats_interval(tty);
        let tick = stats.map_or(Duration::from_millis(250), |s| {
            s.min(Duration::from_millis(250))
        });
        let start = Instant::now();
        let p = &control.progress;
        let first = p.position.load(Relaxed);
        let mut last = (Instant::now(), p.sent.load(Relaxed));
        let mut rate = 0.0f64;
        let mut next_stats = stats.map(|s| start + s);
        let mut told_detection = false;
        while !done.load(Relaxed) {
            std::thread::sleep(tick);
            let mut f = show::Figures::of(&control, span);
            let now = Instant::now();
            let dt = now.duration_since(last.0).as_secs_f64();
            if dt >= 1.0 {
                rate = f.sent.saturating_sub(last.1) as f64 / dt;
                last = (now, f.sent);
            }
            f.pps = rate;
            let pos = f.position.min(span);
            let el = start.elapsed().as_secs_f64();
            if pos > first && pos < span {
                f.eta_secs = (el / (pos - first) as f64 * (span - pos) as f64) as u64;
            }
            if hush.as_ref().is_some_and(|h| h.load(Relaxed)) {
                continue;
            }
            let mut err = std::io::stderr();
            if f.detect_total > 0 && !told_detection && show.verbose > 0 {
                told_detection = true;
                let line = format!("prtip: service detection of {} open ports", f.detect_total);
                screen.above(&mut std::io::stderr().lock(), &mut err, &line);
            }
            let line = show::status_line(&f);
            if next_stats.is_some_and(|t| now >= t) {
                next_stats = stats.map(|s| now + s);
                let stats_line = format!(
                    "Stats: {} elapsed; {line}",
                    show::clock(start.elapsed().as_secs())
                );
                screen.above(&mut std::io::stderr().lock(), &mut err, &stats_line);
            }
            screen.draw(&mut err, &line);
        }
    })
}

/// The scan's signals, caught from before its session is prepared: SIGINT/SIGTERM
/// pause (a second one stops at once), SIGUSR1/SIGUSR2 hold and continue in place.
/// Installed first thing, so a Ctrl-C while the route, the backend or the log is
/// being set up pauses the scan as soon as it starts (exit 75, resumable) instead
/// of killing the process half-way through its set-up.
pub struct Interrupts {
    control: Arc<ScanControl>,
    /// The scan's `--wait`, for the message (known once the session is prepared).
    wait_ms: Arc<AtomicU64>,
    handle: signal_hook::iterator::Handle,
}

impl Interrupts {
    /// Catch the signals now, for the scan that [`drive`] will run.
    pub fn install() -> anyhow::Result<Interrupts> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGUSR2])
            .context("installing signal handlers")?;
        let handle = signals.handle();
        let control = Arc::new(ScanControl::new());
        let wait_ms = Arc::new(AtomicU64::new(0));
        let (c, w) = (control.clone(), wait_ms.clone());
        std::thread::spawn(move || {
            // Started before the scan's set-up drops its privileges (capabilities
            // are per thread): this thread needs none, so it keeps none.
            if let Err(e) = prtip_session::privilege::drop_all() {
                eprintln!("prtip: the signal thread could not drop its capabilities: {e}");
            }
            for sig in signals.forever() {
                match sig {
                    SIGINT | SIGTERM => {
                        let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                        if c.pause_requested() {
                            c.abort();
                            eprintln!(
                                "\rprtip: {name} again: stopping at once (the log stays resumable)"
                            );
                        } else {
                            c.request_pause(name);
                            eprintln!("\rprtip: {name}: pausing, waiting {:.1}s for late replies (again to stop at once)", w.load(Relaxed) as f64 / 1000.0);
                        }
                    }
                    SIGUSR1 => c.hold("SIGUSR1"),
                    SIGUSR2 => c.release(),
                    _ => {}
                }
            }
        });
        Ok(Interrupts {
            control,
            wait_ms,
            handle,
        })
    }
}

/// Run a scan.
pub fn run(args: Args, paths: &Paths) -> anyhow::Result<ExitCode> {
    if let Some(f) = &args.from_gaps {
        return super::merge::scan_gaps(f, paths, args.quiet);
    }
    let spec = spec::build_spec(&args)?;
    let show = spec::show_of(&args)?;
    // A connect scan needs no privilege: drop it before any thread starts
    // (capabilities are per thread), keeping root's access to files only.
    if matches!(
        spec.scan_type,
        prtip_store::event::ScanType::Connect | prtip_store::event::ScanType::Udp
    ) {
        prtip_session::privilege::drop_network_privileges()
            .context("dropping the capabilities a connect scan does not need")?;
    }
    if args.continue_shard {
        return super::merge::continue_shard(spec, args.seed.is_some(), paths, args.quiet);
    }
    let home = paths.session_home();
    let start = Start::Fresh {
        command_line: std::env::args().collect(),
    };
    let governor = spec::governor(&args)?;
    let prepare = move || -> anyhow::Result<prtip_session::Session> {
        let mut s = prtip_session::prepare(spec, start, &home)?;
        s.set_governor(governor);
        Ok(s)
    };
    let interrupts = Interrupts::install()?;
    if args.tui {
        return super::live::scan_with_monitor(move |front| {
            drive(prepare()?, show, Some(front), interrupts)
        });
    }
    drive(prepare()?, show, None, interrupts)
}
