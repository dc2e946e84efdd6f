//! Performance dashboard data: 60-point series (one point a second) for CPU per
//! core, resident memory, network bytes per second, log bytes flushed per
//! second, probe rate and reply RTT percentiles, plus the live collector that
//! reads them from the operating system (sysinfo, `/proc/<pid>/net/dev`).
//!
//! The scan's own `Sample` events are the first source (they know the scan
//! interface and the log writer); the collector fills in what a scan does not
//! report and always supplies host CPU. RTT percentiles come from an
//! hdrhistogram of the `Reply` RTTs seen in each second. The series types are
//! pure data; only [`Collector`] touches the operating system. Nothing here
//! renders or reads the log.

use hdrhistogram::Histogram;
use prtip_store::event::{Governor, Sample};
use std::collections::VecDeque;
use std::path::Path;

/// Points kept per series: 60 seconds at one point a second.
pub const WINDOW: usize = 60;

/// A bounded series of the last [`WINDOW`] values, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    points: VecDeque<f64>,
}

impl Series {
    /// Append a value, dropping the oldest beyond [`WINDOW`].
    pub fn push(&mut self, v: f64) {
        if self.points.len() == WINDOW {
            self.points.pop_front();
        }
        self.points.push_back(v);
    }
    /// The newest value.
    pub fn last(&self) -> Option<f64> {
        self.points.back().copied()
    }
    /// Largest value in the window (0 when empty).
    pub fn max(&self) -> f64 {
        self.points.iter().copied().fold(0.0, f64::max)
    }
    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }
    /// True when no point was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
    /// Values, oldest first.
    pub fn values(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.points.iter().copied()
    }
    /// Chart points: x = seconds relative to the newest point (-59 ..= 0).
    pub fn xy(&self) -> Vec<(f64, f64)> {
        let n = self.points.len();
        self.points
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 - (n as f64 - 1.0), *v))
            .collect()
    }
    /// Chart points with y mapped through `log10(1 + y)` (log-scale charts).
    pub fn xy_log10(&self) -> Vec<(f64, f64)> {
        self.xy()
            .into_iter()
            .map(|(x, y)| (x, (1.0 + y.max(0.0)).log10()))
            .collect()
    }
}

/// What the operating system says, read once a second by [`Collector`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SystemSample {
    /// Unix time of the reading, microseconds.
    pub time_us: u64,
    /// Busy percent of each CPU (host-wide), 0..=100.
    pub cpu_per_core: Vec<f32>,
    /// Resident set size of the scanning process, when it is alive and visible.
    pub scan_rss_bytes: Option<u64>,
    /// Cumulative (sent, received) bytes of the scan's network namespace
    /// (`/proc/<pid>/net/dev`, loopback excluded unless it is the only link).
    pub net_bytes: Option<(u64, u64)>,
    /// Log bytes the monitor has read so far (a lower bound of what was flushed).
    pub log_bytes_read: u64,
}

/// The dashboard's series and the state needed to turn counters into rates.
#[derive(Debug)]
pub struct Dashboard {
    /// Busy percent per CPU core.
    pub cpu: Vec<Series>,
    /// Resident memory of the scanning process, bytes.
    pub rss: Series,
    /// Bytes sent per second.
    pub net_tx: Series,
    /// Bytes received per second.
    pub net_rx: Series,
    /// Log bytes made durable per second.
    pub log_rate: Series,
    /// Probes sent per second.
    pub probe_rate: Series,
    /// Replies per second.
    pub reply_rate: Series,
    /// Reply RTT p50, µs.
    pub rtt_p50: Series,
    /// Reply RTT p90, µs.
    pub rtt_p90: Series,
    /// Reply RTT p99, µs.
    pub rtt_p99: Series,
    /// Every reply RTT seen (µs), for whole-scan percentiles.
    pub rtt_all: Histogram<u64>,
    /// Total log bytes durable, as last reported.
    pub log_bytes_total: u64,
    /// The rate the governor chose (probes/s), one point per sample.
    pub governor_rate: Series,
    /// The governor's last decision about the whole scan, if it wrote one.
    pub governor: Option<Governor>,
    interval: Histogram<u64>,
    last_sample: Option<Sample>,
    last_sample_tick_us: u64,
    last_sys: Option<SystemSample>,
}

impl Default for Dashboard {
    fn default() -> Self {
        let hist = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Dashboard {
            cpu: Vec::new(),
            rss: Series::default(),
            net_tx: Series::default(),
            net_rx: Series::default(),
            log_rate: Series::default(),
            probe_rate: Series::default(),
            reply_rate: Series::default(),
            rtt_p50: Series::default(),
            rtt_p90: Series::default(),
            rtt_p99: Series::default(),
            rtt_all: hist(),
            log_bytes_total: 0,
            governor_rate: Series::default(),
            governor: None,
            interval: hist(),
            last_sample: None,
            last_sample_tick_us: 0,
            last_sys: None,
        }
    }
}

fn rate(now: u64, before: u64, dt_us: u64) -> f64 {
    if dt_us == 0 {
        return 0.0;
    }
    now.saturating_sub(before) as f64 * 1e6 / dt_us as f64
}

impl Dashboard {
    /// A `Governor` event: the rate it chose (decisions about one network are
    /// not the scan's rate).
    pub fn on_governor(&mut self, g: &Governor) {
        if g.net.is_none() {
            self.governor = Some(*g);
        }
    }

    /// Record one reply RTT (µs; 0 = unknown, ignored).
    pub fn on_reply_rtt(&mut self, rtt_us: u32) {
        if rtt_us > 0 {
            let v = u64::from(rtt_us);
            let _ = self.interval.record(v);
            let _ = self.rtt_all.record(v);
        }
    }

    fn push_rtt(&mut self, fallback: Option<[u32; 4]>) {
        let (p50, p90, p99) = if !self.interval.is_empty() {
            let q = |h: &Histogram<u64>, q: f64| h.lowest_equivalent(h.value_at_quantile(q));
            (
                q(&self.interval, 0.50),
                q(&self.interval, 0.90),
                q(&self.interval, 0.99),
            )
        } else if let Some(r) = fallback.filter(|r| r[0] > 0) {
            (u64::from(r[0]), u64::from(r[1]), u64::from(r[2]))
        } else {
            (0, 0, 0)
        };
        self.interval.reset();
        self.rtt_p50.push(p50 as f64);
        self.rtt_p90.push(p90 as f64);
        self.rtt_p99.push(p99 as f64);
    }

    /// A `Sample` event from the scan: one point for every scan-side series.
    /// `tick_us` is the monitor's clock when it arrived (used to decide when the
    /// collector must fill in for a scan that stopped sampling).
    pub fn on_sample(&mut self, s: &Sample, tick_us: u64) {
        self.probe_rate.push(s.pps);
        if let Some(g) = &self.governor {
            self.governor_rate.push(g.rate_mpps as f64 / 1000.0);
        }
        self.reply_rate.push(s.rps);
        match &self.last_sample {
            Some(prev) if s.time_us > prev.time_us => {
                let dt = s.time_us - prev.time_us;
                self.net_tx
                    .push(rate(s.net_tx_bytes, prev.net_tx_bytes, dt));
                self.net_rx
                    .push(rate(s.net_rx_bytes, prev.net_rx_bytes, dt));
                self.log_rate.push(rate(s.log_bytes, prev.log_bytes, dt));
            }
            _ => {
                self.net_tx.push(0.0);
                self.net_rx.push(0.0);
                self.log_rate.push(0.0);
            }
        }
        self.rss.push(s.rss_bytes as f64);
        self.log_bytes_total = self.log_bytes_total.max(s.log_bytes);
        self.push_rtt(Some(s.rtt_us));
        self.last_sample = Some(*s);
        self.last_sample_tick_us = tick_us;
    }

    /// The once-a-second tick: host CPU always; when the scan is live but sent no
    /// `Sample` for over 1.5 s, every scan-side series from the operating system.
    pub fn on_tick(&mut self, sys: &SystemSample, scan_live: bool) {
        if self.cpu.len() != sys.cpu_per_core.len() {
            self.cpu = vec![Series::default(); sys.cpu_per_core.len()];
        }
        for (series, v) in self.cpu.iter_mut().zip(&sys.cpu_per_core) {
            series.push(f64::from(*v));
        }
        let stale = sys.time_us.saturating_sub(self.last_sample_tick_us) > 1_500_000;
        if scan_live && stale {
            let dt = self
                .last_sys
                .as_ref()
                .map_or(0, |p| sys.time_us.saturating_sub(p.time_us));
            let (tx, rx) = match (
                sys.net_bytes,
                self.last_sys.as_ref().and_then(|p| p.net_bytes),
            ) {
                (Some((tx, rx)), Some((ptx, prx))) => (rate(tx, ptx, dt), rate(rx, prx, dt)),
                _ => (0.0, 0.0),
            };
            self.net_tx.push(tx);
            self.net_rx.push(rx);
            let prev_log = self
                .last_sys
                .as_ref()
                .map_or(sys.log_bytes_read, |p| p.log_bytes_read);
            self.log_rate.push(rate(sys.log_bytes_read, prev_log, dt));
            self.log_bytes_total = self.log_bytes_total.max(sys.log_bytes_read);
            self.rss.push(sys.scan_rss_bytes.unwrap_or(0) as f64);
            self.probe_rate.push(0.0);
            self.reply_rate.push(0.0);
            self.push_rtt(None);
        }
        self.last_sys = Some(sys.clone());
    }
}

/// Reads host CPU, the scan process's memory and its namespace's network
/// counters once a second.
pub struct Collector {
    sys: Option<sysinfo::System>,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    /// A collector; CPU usage needs two readings, so the first tick reads 0%.
    pub fn new() -> Collector {
        let sys = sysinfo::System::new().ok().map(|mut s| {
            s.refresh_cpu_usage();
            s
        });
        Collector { sys }
    }

    /// Read everything for `pid` (the scanning process, if known).
    pub fn sample(&mut self, pid: Option<u32>, log_bytes_read: u64, time_us: u64) -> SystemSample {
        let mut out = SystemSample {
            time_us,
            log_bytes_read,
            ..SystemSample::default()
        };
        if let Some(sys) = &mut self.sys {
            sys.refresh_cpu_usage();
            out.cpu_per_core = sys.cpus().iter().map(|c| c.usage()).collect();
            if let Some(pid) = pid {
                let p = sysinfo::Pid::from_u32(pid);
                sys.refresh_processes_specifics(
                    sysinfo::ProcessesToUpdate::Some(&[p]),
                    true,
                    sysinfo::ProcessRefreshKind::nothing().with_memory(),
                );
                out.scan_rss_bytes = sys.process(p).map(|p| p.memory());
            }
        }
        if let Some(pid) = pid {
            out.net_bytes =
                std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("net/dev"))
                    .ok()
                    .and_then(|s| parse_net_dev(&s));
        }
        out
    }
}

/// Sum (sent, received) bytes over the interfaces in a `/proc/net/dev` text;
/// loopback counts only when it is the only interface with traffic.
pub fn parse_net_dev(text: &str) -> Option<(u64, u64)> {
    let mut all = (0u64, 0u64);
    let mut lo = (0u64, 0u64);
    let mut seen = false;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 9 {
            continue;
        }
        seen = true;
        let (rx, tx) = (f[0], f[8]);
        if name.trim() == "lo" {
            lo = (tx, rx);
        } else {
            all.0 += tx;
            all.1 += rx;
        }
    }
    if !seen {
        return None;
    }
    Some(if all == (0, 0) { lo } else { all })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keeps_sixty_points_and_maps_x_to_seconds_ago() {
        let mut s = Series::default();
        for i in 0..75 {
            s.push(i as f64);
        }
        assert_eq!(s.len(), 60);
        assert_eq!(s.values().next(), Some(15.0));
        assert_eq!(s.last(), Some(74.0));
        let xy = s.xy();
        assert_eq!(xy[0], (-59.0, 15.0));
        assert_eq!(xy[59], (0.0, 74.0));
        assert_eq!(s.xy_log10()[59].1, 75f64.log10());
        assert_eq!(s.max(), 74.0);
    }

    #[test]
    fn samples_become_rates_and_rtt_percentiles_come_from_replies() {
        let mut d = Dashboard::default();
        let s1 = Sample {
            time_us: 10_000_000,
            pps: 1000.0,
            net_tx_bytes: 1_000,
            net_rx_bytes: 500,
            log_bytes: 4096,
            rtt_us: [900, 1900, 2900, 3000],
            ..Sample::default()
        };
        d.on_sample(&s1, 1);
        assert_eq!(d.net_tx.last(), Some(0.0));
        // No reply RTTs yet: the Sample's own percentiles are used.
        assert_eq!(d.rtt_p50.last(), Some(900.0));
        for rtt in 1..=100u32 {
            d.on_reply_rtt(rtt * 64); // multiples of 64 sit on exact bucket edges
        }
        let s2 = Sample {
            time_us: 12_000_000, // 2 s later
            pps: 2000.0,
            net_tx_bytes: 201_000,
            net_rx_bytes: 100_500,
            log_bytes: 4096 + 65536,
            ..s1
        };
        d.on_sample(&s2, 2);
        assert_eq!(d.net_tx.last(), Some(100_000.0));
        assert_eq!(d.net_rx.last(), Some(50_000.0));
        assert_eq!(d.log_rate.last(), Some(32768.0));
        assert_eq!(
            d.probe_rate.values().collect::<Vec<_>>(),
            vec![1000.0, 2000.0]
        );
        assert_eq!(d.rtt_p50.last(), Some(3200.0));
        assert_eq!(d.rtt_p90.last(), Some(5760.0));
        assert_eq!(d.rtt_p99.last(), Some(6336.0));
        assert_eq!(d.rtt_all.len(), 100);
        assert_eq!(d.log_bytes_total, 69632);
    }

    #[test]
    fn ticks_fill_in_when_the_scan_sends_no_samples() {
        let mut d = Dashboard::default();
        let sys = |t: u64, tx: u64, log: u64| SystemSample {
            time_us: t,
            cpu_per_core: vec![10.0, 90.0],
            scan_rss_bytes: Some(50 << 20),
            net_bytes: Some((tx, tx / 2)),
            log_bytes_read: log,
        };
        d.on_tick(&sys(10_000_000, 0, 0), true);
        d.on_tick(&sys(11_000_000, 3_000, 8192), true);
        assert_eq!(d.cpu.len(), 2);
        assert_eq!(d.cpu[1].last(), Some(90.0));
        assert_eq!(d.net_tx.values().collect::<Vec<_>>(), vec![0.0, 3000.0]);
        assert_eq!(d.log_rate.last(), Some(8192.0));
        assert_eq!(d.rss.last(), Some((50u64 << 20) as f64));
        // A finished scan: host CPU still moves, scan series do not.
        d.on_tick(&sys(12_000_000, 9_000, 8192), false);
        assert_eq!(d.cpu[0].len(), 3);
        assert_eq!(d.net_tx.len(), 2);
    }

    #[test]
    fn net_dev_sums_interfaces_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\nprtip-s0: 5000      50    0    0    0     0          0         0    70000     700    0    0    0     0       0          0\n";
        assert_eq!(parse_net_dev(text), Some((70000, 5000)));
        let only_lo = "a\nb\n    lo:     100       1    0    0    0     0          0         0      300       1    0    0    0     0       0          0\n";
        assert_eq!(parse_net_dev(only_lo), Some((300, 100)));
        assert_eq!(parse_net_dev("a\nb\n"), None);
    }
}
