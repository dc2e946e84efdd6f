//! nmap's per-host and per-probe options: `--host-timeout`, `--max-rtt-timeout`,
//! `-g`/`--source-port` and `--ttl`, checked and applied to a built spec.
//!
//! Owns what these four flags mean for each scan type (see docs/ports.md,
//! "Source port, TTL and timeouts"); bad values are [`UsageError`]s naming the
//! option and the value (exit 2, nothing sent). Never builds the rest of the spec.

use super::args::Args;
use crate::UsageError;
use prtip_engine::pacing;
use prtip_store::event::{ProbeSettings, ScanSpec, ScanType};

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

fn time_ms(flag: &str, v: &str) -> anyhow::Result<u64> {
    match pacing::parse_duration_ms(v) {
        Some(0) => Err(usage(format!(
            "bad {flag} {v}: the time must be above 0 (leave {flag} out for no limit)"
        ))),
        Some(ms) => Ok(ms),
        None => Err(usage(format!(
            "bad {flag} \"{v}\": give a time such as 500ms, 30s, 5m, 1h"
        ))),
    }
}

fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    flag: &str,
    v: &str,
    lo: T,
    hi: T,
    what: &str,
) -> anyhow::Result<T> {
    match v.trim().parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(usage(format!(
            "bad {flag} \"{v}\": give {what} from {lo} to {hi}"
        ))),
    }
}

/// The settings the four flags ask for (values checked, nothing applied yet).
pub fn settings(args: &Args) -> anyhow::Result<ProbeSettings> {
    Ok(ProbeSettings {
        ttl: args
            .ttl
            .as_deref()
            .map(|v| number::<u8>("--ttl", v, 1, 255, "a TTL"))
            .transpose()?,
        source_port: args
            .source_port
            .as_deref()
            .map(|v| number::<u16>("-g/--source-port", v, 1, 65535, "a port"))
            .transpose()?,
        host_timeout_ms: args
            .host_timeout
            .as_deref()
            .map(|v| time_ms("--host-timeout", v))
            .transpose()?,
        max_rtt_timeout_ms: args
            .max_rtt_timeout
            .as_deref()
            .map(|v| time_ms("--max-rtt-timeout", v))
            .transpose()?,
    })
}

/// Check the flags against the scan type and apply them to `spec`:
/// `-g` and `--ttl` shape raw probes only (the socket scans `-sT` and `-sU` let
/// the kernel choose both, so asking for them there is an error rather than
/// nmap's silent no-op); `--max-rtt-timeout` caps the retry gap, the wait for late
/// replies (unless `--wait` is given) and each socket attempt's timeout (unless
/// `--connect-timeout` is given); `--host-timeout` is kept for the socket scans
/// and `-sV`.
pub fn apply(args: &Args, spec: &mut ScanSpec) -> anyhow::Result<()> {
    let s = settings(args)?;
    let sockets = matches!(spec.scan_type, ScanType::Connect | ScanType::Udp);
    let kind = if spec.scan_type == ScanType::Udp {
        "-sU"
    } else {
        "-sT"
    };
    if sockets {
        if let Some(v) = &args.source_port {
            return Err(usage(format!(
                "-g/--source-port {v} applies to raw scans (-sS): {kind} uses the kernel's \
                 sockets, which choose their own source ports"
            )));
        }
        if let Some(v) = &args.ttl {
            return Err(usage(format!(
                "--ttl {v} applies to raw scans (-sS): {kind} uses the kernel's sockets, \
                 which send with the system's TTL"
            )));
        }
    }
    if let Some(rtt) = s.max_rtt_timeout_ms {
        let wait_before = spec.wait_ms;
        spec.retry_gap_ms = Some(spec.retry_gap_ms.unwrap_or(rtt).min(rtt));
        if args.wait.is_none() {
            spec.wait_ms = spec.wait_ms.min(rtt);
        }
        if spec.sockets.connect_timeout_ms.is_none() {
            spec.sockets.connect_timeout_ms = Some(wait_before.clamp(500, 3000).min(rtt));
        }
    }
    spec.probe = s;
    Ok(())
}
