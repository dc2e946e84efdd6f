//! Process and interface metrics for `Sample` events, read from procfs.
//!
//! Owns: reading `/proc/self/stat`, `/proc/self/statm` and
//! `/proc/thread-self/net/dev`. Never writes anything.

use std::time::Instant;

/// CPU time of this process in clock ticks (user + system).
pub fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

/// Clock ticks per second.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}

/// Peak resident set size (VmHWM) in bytes.
pub fn peak_rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// (rx bytes, tx bytes) of `iface` in this thread's network namespace.
pub fn net_bytes(iface: &str) -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
    for line in s.lines().skip(2) {
        if let Some((name, rest)) = line.split_once(':') {
            if name.trim() == iface {
                let f: Vec<u64> = rest
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                if f.len() >= 9 {
                    return (f[0], f[8]);
                }
            }
        }
    }
    (0, 0)
}

/// CPU use between two calls, in percent of one core.
pub struct CpuMeter {
    last_ticks: u64,
    last: Instant,
    hz: u64,
}

impl Default for CpuMeter {
    fn default() -> Self {
        CpuMeter {
            last_ticks: cpu_ticks(),
            last: Instant::now(),
            hz: ticks_per_second(),
        }
    }
}

impl CpuMeter {
    /// Percent of one core used since the previous call (or creation).
    pub fn percent(&mut self) -> f32 {
        let t = cpu_ticks();
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        let p = if dt > 0.0 {
            (t.saturating_sub(self.last_ticks)) as f64 / self.hz as f64 / dt * 100.0
        } else {
            0.0
        };
        self.last_ticks = t;
        self.last = now;
        p as f32
    }
}

/// p50, p90, p99 and max of `v` (sorted in place); zeros when empty.
pub fn percentiles(v: &mut [u32]) -> [u32; 4] {
    if v.is_empty() {
        return [0; 4];
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.9), at(0.99), v[v.len() - 1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfs_readers_see_this_process() {
        assert!(rss_bytes() > 0);
        assert!(peak_rss_bytes() >= rss_bytes() / 2);
        let (rx, tx) = net_bytes("lo");
        let _ = (rx, tx); // lo exists in every namespace; counters may be 0
        assert_eq!(net_bytes("no-such-if"), (0, 0));
        let mut m = CpuMeter::default();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(m.percent() >= 0.0);
    }

    #[test]
    fn percentile_picks() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentiles(&mut v), [51, 90, 99, 100]);
        assert_eq!(percentiles(&mut []), [0; 4]);
    }
}
