//! Writing the merged log: a k-way merge of every shard log's sorted result rows
//! into one `Reply` (+ `Banner`, `Service`) per key, between one `ScanStarted` and
//! one `Checkpoint` + `Finished`. Reads the shard logs; writes only the new log.

use crate::check::MergePlan;
use crate::MergeError;
use prtip_store::event::{
    now_us, Banner, Checkpoint, Counters, Event, EventSink, Finished, MergedPart, PortState,
    Reason, Reply, ScanStarted, Service, Versions, SCHEMA_VERSION,
};
use prtip_store::{LogOptions, LogReader, LogWriter, ResultRow, SortOptions, SortedRows};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

/// What [`fold`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoldStats {
    /// Result rows (one per address, protocol and port).
    pub rows: u64,
    /// Rows found in more than one log and folded into one.
    pub duplicates: u64,
    /// Open ports among the rows.
    pub open: u64,
    /// Logs read.
    pub logs: usize,
    /// The merged scan's counters.
    pub counters: Counters,
}

/// Memory for all the shard sorts together; each gets its share (at least 1 MiB).
const SORT_BUDGET: usize = 128 << 20;

type Key = (prtip_store::Addr, prtip_store::Protocol, u16);

/// Write the merged scan of `plan` as a new log in `dir` (which must not hold a log
/// yet) with history id `scan_id`.
pub fn fold(
    plan: &MergePlan,
    dir: &Path,
    scan_id: u64,
    command_line: Vec<String>,
) -> Result<FoldStats, MergeError> {
    let logs: Vec<(u32, &crate::ShardLog)> = plan
        .shards
        .iter()
        .enumerate()
        .flat_map(|(i, ls)| ls.iter().map(move |l| (i as u32, l)))
        .collect();
    let mut spec = plan.spec.clone();
    spec.walk_from = 0;
    spec.merged_from = logs
        .iter()
        .map(|(i, l)| MergedPart {
            shard: format!("{i}/{}", plan.shard_count),
            scan_id: l.started.scan_id,
            log: l.dir.display().to_string(),
            walk: (l.covered.start, l.covered.end),
            started_us: l.started.time_us,
            ended_us: l.ended_us,
            interface: l.started.spec.interface.clone(),
        })
        .collect();
    let started_us = logs
        .iter()
        .map(|(_, l)| l.started.time_us)
        .min()
        .unwrap_or_else(now_us);
    let ended_us = logs
        .iter()
        .filter_map(|(_, l)| l.ended_us)
        .max()
        .unwrap_or_else(now_us);

    let budget = (SORT_BUDGET / logs.len().max(1)).max(1 << 20);
    let opts = SortOptions {
        chunk_bytes: budget,
        ..SortOptions::default()
    };
    let mut streams: Vec<(u32, SortedRows)> = Vec::with_capacity(logs.len());
    for (i, l) in &logs {
        let reader = LogReader::open(&l.dir)?;
        streams.push((*i, prtip_store::sorted_rows_with(&reader, &opts)?));
    }

    let writer = LogWriter::create(dir, LogOptions::default())?;
    let mut sink = writer.sink();
    sink.push(Event::ScanStarted(Box::new(ScanStarted {
        scan_id,
        time_us: started_us,
        spec,
        versions: Versions {
            prtip: env!("CARGO_PKG_VERSION").to_string(),
            schema: SCHEMA_VERSION,
        },
        command_line,
        total_probes: plan.total_probes,
        total_targets: plan.total_targets,
        pid: std::process::id(),
    })))?;

    let mut stats = FoldStats {
        logs: logs.len(),
        ..FoldStats::default()
    };
    let mut heads: Vec<Option<ResultRow>> = Vec::with_capacity(streams.len());
    let mut heap: BinaryHeap<Reverse<(Key, usize)>> = BinaryHeap::new();
    for (k, (_, s)) in streams.iter_mut().enumerate() {
        let row = s.next().transpose()?;
        if let Some(r) = &row {
            heap.push(Reverse((r.key(), k)));
        }
        heads.push(row);
    }
    let mut group: Vec<(u32, ResultRow)> = Vec::new();
    while let Some(Reverse((key, _))) = heap.peek().copied() {
        group.clear();
        while let Some(Reverse((k2, idx))) = heap.peek().copied() {
            if k2 != key {
                break;
            }
            heap.pop();
            let row = heads[idx].take().expect("a head for every heap entry");
            group.push((streams[idx].0, row));
            let next = streams[idx].1.next().transpose()?;
            if let Some(r) = &next {
                heap.push(Reverse((r.key(), idx)));
            }
            heads[idx] = next;
        }
        let row = pick(plan, &mut group);
        stats.duplicates += group.len() as u64;
        emit(&mut sink, &row)?;
        stats.rows += 1;
        match row.state {
            PortState::Open => stats.open += 1,
            PortState::Closed => stats.counters.closed += 1,
            _ => {}
        }
    }
    let mut c = Counters::default();
    for (_, l) in &logs {
        c.sent += l.counters.sent;
        c.replies += l.counters.replies;
        c.invalid += l.counters.invalid;
        c.drops += l.counters.drops;
    }
    c.open = stats.open;
    c.closed = stats.counters.closed;
    stats.counters = c;
    sink.checkpoint(Checkpoint {
        next_index: plan.total_probes,
        counters: c,
        time_us: ended_us,
    })?;
    sink.push(Event::Finished(Finished {
        time_us: ended_us,
        counters: c,
    }))?;
    drop(sink);
    writer.finish()?;
    Ok(stats)
}

/// The row that stands for a key found in `group` (one row per log that has it):
/// the owning shard's, a real answer over silence (`no-response`), then the latest.
/// What is left in `group` are the folded duplicates.
fn pick(plan: &MergePlan, group: &mut Vec<(u32, ResultRow)>) -> ResultRow {
    if group.len() == 1 {
        return group.pop().expect("one row").1;
    }
    let (addr, proto, port) = group[0].1.key();
    let owner = plan.owner(addr.ip(), proto, port);
    let best = (0..group.len())
        .max_by_key(|&k| {
            let (shard, r) = &group[k];
            (
                Some(*shard) == owner,
                r.reason != Reason::NoResponse,
                r.time_us,
            )
        })
        .expect("a group is never empty");
    let (_, mut row) = group.swap_remove(best);
    // The first banner and a service seen by any log of the key, if the winner has none.
    if row.banner.is_none() {
        row.banner = group.iter().find_map(|(_, r)| r.banner.clone());
    }
    if row.service.is_none() {
        row.service = group.iter().find_map(|(_, r)| r.service.clone());
    }
    row
}

fn emit(sink: &mut dyn EventSink, r: &ResultRow) -> Result<(), MergeError> {
    sink.push(Event::Reply(Reply {
        addr: r.addr,
        port: r.port,
        proto: r.proto,
        state: r.state,
        reason: r.reason,
        ttl: r.ttl,
        icmp_code: 0,
        rtt_us: r.rtt_us,
        time_us: r.time_us,
    }))?;
    if let Some(b) = &r.banner {
        sink.push(Event::Banner(Banner {
            addr: r.addr,
            port: r.port,
            proto: r.proto,
            time_us: r.time_us,
            probe: "merged".into(),
            bytes: b.clone(),
        }))?;
    }
    if let Some(s) = &r.service {
        sink.push(Event::Service(Service {
            addr: r.addr,
            port: r.port,
            proto: r.proto,
            time_us: r.time_us,
            name: s.name.clone(),
            product: s.product.clone(),
            version: s.version.clone(),
            extra: s.extra.clone(),
            confidence: s.confidence,
            method: s.method.clone(),
        }))?;
    }
    Ok(())
}
