//! Running a prepared scan: the engine (SYN, connect or UDP), `-sV` after a SYN
//! scan, the history row kept current, and at the end the outputs the scan asked
//! for, rendered by prtip-export from the finished log.

use crate::error::usage;
use crate::prepare::Session;
use crate::tracking::HistoryTracking;
use anyhow::{anyhow, Context};
use prtip_engine::connect::run as connect_run;
use prtip_engine::scan::{self as engine_scan, RunOptions, ScanControl, ScanOutcome};
use prtip_store::event::{
    now_us, Checkpoint, Counters, Event, EventSink, Failed, PortState, Protocol, ScanSpec,
    SinkError,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a session ended.
#[derive(Debug)]
pub struct Report {
    /// History id of the scan.
    pub id: u64,
    /// Its log directory.
    pub dir: PathBuf,
    /// Finished, paused or aborted (with the engine's counters).
    pub outcome: ScanOutcome,
    /// The output files written (`-oN`, `-oX`, ...; none after an abort).
    pub exports: Vec<prtip_export::ExportStats>,
    /// Wall time of the run (engine and `-sV`, not preparing or exporting).
    pub elapsed: Duration,
    /// Number of target addresses.
    pub total_targets: u64,
    /// Walk positions of one pass (what progress percentages are measured on).
    pub span: u64,
    /// What went wrong on the side without stopping the scan (a history row
    /// write); the log is complete.
    pub warnings: Vec<String>,
    /// The finished log's summary, as its history row was made from it (the
    /// done line's figures: `prtip_export::done_line`).
    pub summary: prtip_store::ScanSummary,
}

/// Passes every event to `inner` after showing it to `observer` and to the
/// outputs written as the scan runs.
struct Observed<'a> {
    inner: &'a mut dyn EventSink,
    observer: &'a mut (dyn FnMut(&Event) + Send),
    live: &'a mut prtip_export::LiveOutputs,
}

impl EventSink for Observed<'_> {
    fn push(&mut self, event: Event) -> Result<(), SinkError> {
        (self.observer)(&event);
        self.live.event(&event);
        self.inner.push(event)
    }
    fn checkpoint(&mut self, c: Checkpoint) -> Result<(), SinkError> {
        self.inner.checkpoint(c)
    }
}

/// The ports a log already decided, replayed into the engine's callback; a
/// failure to read the log is kept in `failed` (the engine's preload cannot
/// return one) and ends the run as an error.
fn each_reply(
    dir: &Path,
    f: &mut dyn FnMut(IpAddr, Protocol, u16, PortState),
) -> prtip_store::Result<()> {
    let r = prtip_store::LogReader::open(dir)?;
    for e in r.iter() {
        if let prtip_store::EventRef::Reply(r) = e? {
            f(
                r.addr.ip(),
                Protocol::from(&r.proto),
                r.port.to_native(),
                PortState::from(&r.state),
            );
        }
    }
    Ok(())
}

impl Session {
    /// Run the scan to its end, pause (`control`) or abort; `observer` sees every
    /// event before the log does (the cli prints open ports from it). At the end
    /// the log is flushed and closed, the outputs the spec names are written
    /// from it, and the history row is rewritten from it.
    pub fn run(
        self,
        control: &ScanControl,
        observer: &mut (dyn FnMut(&Event) + Send),
    ) -> anyhow::Result<Report> {
        let Session {
            spec,
            plan,
            io,
            db,
            history,
            id,
            dir,
            writer,
            resume_from,
            mut counters,
            command_line,
            notes: _,
            phases,
        } = self;
        let mut log_sink = writer.sink();
        // On resume, the ports the log already decided: replayed by the SYN engine
        // on a thread of its own (the first probes go out meanwhile), counted here
        // otherwise.
        let preload_failed: Arc<Mutex<Option<String>>> = Arc::default();
        let mut preload: Option<engine_scan::Preload<'static>> = None;
        if resume_from.is_some() {
            if spec.scan_type.is_raw() {
                let d = dir.clone();
                let failed = preload_failed.clone();
                preload = Some(Box::new(move |f| {
                    if let Err(e) = each_reply(&d, f) {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    }
                }));
            } else {
                each_reply(&dir, &mut |_, _, _, st| {
                    counters.replies += 1;
                    match st {
                        PortState::Open => counters.open += 1,
                        PortState::Closed => counters.closed += 1,
                        _ => {}
                    }
                })
                .context("reading the ports the log already decided")?;
            }
        }
        // On resume with -sV: the open TCP ports whose detection a pause left undone.
        let pending = if resume_from.is_some() && spec.service_detection {
            pending_detection(&dir).context("reading the ports still lacking -sV")?
        } else {
            Vec::new()
        };
        // The output files are created now (written as the scan runs): with the
        // file capabilities a root scan keeps permitted for them.
        let mut live = crate::privilege::with_file_access(|| live_outputs(&dir, &spec))?;
        let started = Instant::now();
        let mut warnings = Vec::new();
        let result: anyhow::Result<ScanOutcome> = {
            let log_bytes = || writer.durable_bytes();
            let opts = RunOptions {
                scan_id: id,
                command_line,
                resume_from,
                counters,
                log_bytes: Some(&log_bytes),
                checkpoint_every_ms: spec.checkpoint_every_ms,
                checkpoint_every_probes: spec.checkpoint_every_probes,
                sample_every: Duration::from_secs(1),
                preload: None,
            };
            let mut tracked = HistoryTracking::new(&mut log_sink, &history, id);
            if resume_from.is_some() {
                // The row says `running` once written on a thread; the first probes
                // go out meanwhile.
                tracked = tracked.resumed_in_background();
            }
            let mut observed = Observed {
                inner: &mut tracked,
                observer,
                live: &mut live,
            };
            let observed = &mut observed;
            let out = match (spec.scan_type.is_raw(), io, phases.as_ref()) {
                (true, Some(io), Some(phases)) => {
                    let detect = spec.service_detection;
                    let db = db.as_ref();
                    let mut pending = Some(pending);
                    let mut port_run = |plan: &engine_scan::ScanPlan,
                                        io: prtip_engine::backend::BackendPair,
                                        sink: &mut dyn EventSink,
                                        mut opts: RunOptions<'_>|
                     -> anyhow::Result<ScanOutcome> {
                        if detect {
                            let preload = opts.preload.take();
                            let pending = pending.take().unwrap_or_default();
                            syn_then_detect(plan, io, db, sink, control, opts, (preload, pending))
                        } else {
                            engine_scan::run(plan, io, sink, control, opts)
                                .map_err(anyhow::Error::from)
                        }
                    };
                    crate::phases::run(
                        &spec,
                        &plan,
                        io,
                        phases,
                        &dir,
                        observed,
                        control,
                        RunOptions {
                            preload: preload.take(),
                            ..opts
                        },
                        &mut port_run,
                    )
                }
                (true, Some(io), None) if spec.service_detection => syn_then_detect(
                    &plan,
                    io,
                    db.as_ref(),
                    observed,
                    control,
                    opts,
                    (preload.take(), pending),
                ),
                (true, Some(io), None) => engine_scan::run(
                    &plan,
                    io,
                    observed,
                    control,
                    RunOptions {
                        preload: preload.take(),
                        ..opts
                    },
                )
                .map_err(anyhow::Error::from),
                (true, None, _) => Err(anyhow!(
                    "a {} session without a backend",
                    spec.scan_type.flag()
                )),
                _ => connect_run::run_with_pending(
                    &plan,
                    db.as_ref().unwrap_or(&prtip_services::ProbeDb::builtin()),
                    observed,
                    control,
                    opts,
                    pending,
                )
                .map_err(anyhow::Error::from),
            };
            match tracked.warning() {
                Ok(w) => warnings.extend(w),
                Err(e) => warnings.push(format!("the log refused the held Resumed event: {e}")),
            }
            out
        };
        let elapsed = started.elapsed();
        let result = result.and_then(|o| match preload_failed.lock().map(|g| g.clone()) {
            Ok(Some(e)) => Err(anyhow!(
                "reading the ports the log already decided (the resume preload): {e}"
            )),
            _ => Ok(o),
        });
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                // Record the failure; what fails on the way is told with it.
                let mut also = Vec::new();
                let failed = Event::Failed(Failed {
                    time_us: now_us(),
                    message: format!("{e:#}"),
                });
                if let Err(p) = log_sink.push(failed) {
                    also.push(format!("recording the failure in the log: {p}"));
                }
                if let Err(f) = writer.finish() {
                    also.push(format!("closing the log: {f}"));
                }
                if let Err(h) = history.index_log(&dir) {
                    also.push(format!("updating the history index: {h}"));
                }
                let also = if also.is_empty() {
                    String::new()
                } else {
                    format!("; also failed: {}", also.join("; "))
                };
                return Err(e.context(format!("scan {id} failed (log in {}){also}", dir.display())));
            }
        };
        let mut exports = Vec::new();
        if outcome != ScanOutcome::Aborted {
            // Everything the run pushed (the last replies, services, Finished) is
            // in the log before the outputs read it.
            log_sink.flush().context("flushing the scan log")?;
            warnings.extend(live.warnings().iter().cloned());
            exports = crate::privilege::with_file_access(|| finish_outputs(live, &spec))?;
            for s in &exports {
                log_sink
                    .push(s.event())
                    .context("recording the written outputs in the log")?;
            }
        }
        writer.finish().context("closing the scan log")?;
        // One read of the finished log for the history row and the done line.
        let (_, summary) = history
            .index_log_summary(&dir)
            .context("updating the history index")?;
        Ok(Report {
            id,
            dir,
            outcome,
            exports,
            elapsed,
            total_targets: plan.total_targets(),
            span: plan.walk.span(),
            warnings,
            summary,
        })
    }
}

/// The open TCP ports of the log in `dir` that have neither a service nor a
/// banner: those whose `-sV` a pause left undone (detection records a `Service`
/// or `Banner` for every port it finishes, except one where it found nothing
/// at all and the port table names no service: such a port is tried again,
/// a few connections at most).
fn pending_detection(dir: &Path) -> prtip_store::Result<Vec<std::net::SocketAddr>> {
    let r = prtip_store::LogReader::open(dir)?;
    let mut v = Vec::new();
    for row in prtip_store::sorted_rows(&r)? {
        let row = row?;
        if row.state == PortState::Open
            && row.proto == Protocol::Tcp
            && row.service.is_none()
            && row.banner.is_none()
        {
            v.push(std::net::SocketAddr::new(row.addr.ip(), row.port));
        }
    }
    Ok(v)
}

/// `-sS -sV`: the SYN scan holds its `Finished` back; the open ports it found
/// (and, resuming, those a pause left undone: `pending`) go through service
/// detection; then `Finished` is written, stamped when detection ended. A pause
/// during detection ends the run paused at the end of the walk (Checkpoint +
/// Paused): `Finished` is not written, so a resume finishes detection.
fn syn_then_detect<'a>(
    plan: &engine_scan::ScanPlan,
    io: prtip_engine::backend::BackendPair,
    db: Option<&prtip_services::ProbeDb>,
    sink: &mut dyn EventSink,
    control: &ScanControl,
    opts: RunOptions<'a>,
    (preload, pending): (Option<engine_scan::Preload<'a>>, Vec<std::net::SocketAddr>),
) -> anyhow::Result<ScanOutcome> {
    let db = db.ok_or_else(|| anyhow!("-sV without a probe database"))?;
    let mut open = prtip_engine::connect::grab::OpenPorts::new(sink);
    open.hold_finished = true;
    let out = engine_scan::run(
        plan,
        io,
        &mut open,
        control,
        RunOptions {
            scan_id: opts.scan_id,
            command_line: opts.command_line.clone(),
            resume_from: opts.resume_from,
            counters: opts.counters,
            log_bytes: opts.log_bytes,
            checkpoint_every_ms: opts.checkpoint_every_ms,
            checkpoint_every_probes: opts.checkpoint_every_probes,
            sample_every: opts.sample_every,
            preload,
        },
    );
    match out {
        Ok(ScanOutcome::Finished { counters }) => {
            let ports = open.take_sorted();
            let fin = open.take_finished();
            let sink = open.into_inner();
            let end = (plan.walk.len(), counters);
            let o = connect_run::detect_after(ports, pending, plan, db, sink, control, &opts, end)
                .map_err(|e| anyhow!("service detection: {e}"))?;
            if let (ScanOutcome::Finished { .. }, Some(f)) = (&o, fin) {
                sink.push(finished_now(f))?;
            }
            Ok(o)
        }
        other => other.map_err(anyhow::Error::from),
    }
}

/// The `Finished` event the engine held back while `-sV` ran after a SYN scan,
/// stamped now: the scan (and every report's end time and duration) ends when
/// service detection does, not when the last probe's wait did.
fn finished_now(mut ev: Event) -> Event {
    if let Event::Finished(f) = &mut ev {
        f.time_us = f.time_us.max(now_us());
    }
    ev
}

/// The scan's filter (`--filter`, `--open`), compiled.
fn scan_filter(spec: &ScanSpec) -> anyhow::Result<Option<prtip_filter::Filter>> {
    spec.filter
        .as_deref()
        .map(|f| prtip_filter::Filter::parse(f).map_err(|e| usage(format!("bad --filter: {e}"))))
        .transpose()
}

/// The outputs `spec` names, streamed as the scan runs (prtip-export's
/// [`prtip_export::LiveOutputs`]), kept to `spec.filter`'s rows.
fn live_outputs(dir: &Path, spec: &ScanSpec) -> anyhow::Result<prtip_export::LiveOutputs> {
    let filter = scan_filter(spec)?.map(|f| {
        Box::new(move |r: &prtip_store::ResultRow| f.matches(r))
            as Box<dyn Fn(&prtip_store::ResultRow) -> bool + Send>
    });
    prtip_export::LiveOutputs::new(dir, &spec.outputs, filter, spec.service_detection)
        .map_err(|e| usage(format!("bad output: {e}")))
}

/// The end of the outputs: each file rendered by prtip-export from the
/// flushed log in place of its stream (kept to `spec.filter`'s rows).
fn finish_outputs(
    live: prtip_export::LiveOutputs,
    spec: &ScanSpec,
) -> anyhow::Result<Vec<prtip_export::ExportStats>> {
    let filter = scan_filter(spec)?;
    let pred = |r: &prtip_store::ResultRow| filter.as_ref().is_none_or(|f| f.matches(r));
    let mut opts = prtip_export::ExportOptions {
        filter: Some(&pred),
        ..Default::default()
    };
    live.finish(&mut opts).context("writing the scan's outputs")
}

/// Counters of a finished or paused outcome (zero after an abort).
pub fn outcome_counters(o: &ScanOutcome) -> Counters {
    match o {
        ScanOutcome::Finished { counters } | ScanOutcome::Paused { counters, .. } => *counters,
        ScanOutcome::Aborted => Counters::default(),
    }
}
