//! Checks of `prtip scan` flags that the parsers alone would let through:
//! values that parse but mean nothing (port 0, a zero rate, a zero checkpoint
//! interval), values that would be silently changed (a rate below the pacer's
//! resolution, `--top-ports` above the ranked list, a `--max-rate` below one
//! probe per second), two outputs into one file, flags that are accepted but
//! known (`-P` forms other than nmap's E P M S A U R n), and `-iL` lines that are
//! not targets.
//!
//! Every failure is a [`UsageError`] naming the option and the value (exit 2),
//! found before anything is sent or created. This module only reads the flags
//! (and the `-iL` file); it never builds the spec.

use super::args::Args;
use crate::UsageError;
use prtip_engine::pacing;
use prtip_engine::ports::{ranked, PortList};
use prtip_store::event::Protocol;
use std::path::{Path, PathBuf};

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// `-P` forms prtip accepts (the letter after `-P`), with what they mean; ports
/// may follow S, A and U (`-PS22,443`). Anything else is refused.
const PING_FORMS: &[(&str, &str)] = &[
    ("n", "no host discovery, prtip's default for port scans"),
    ("E", "ICMP echo"),
    ("P", "ICMP timestamp"),
    ("M", "ICMP address mask"),
    ("S", "TCP SYN to ports"),
    ("A", "TCP ACK to ports"),
    ("U", "UDP to ports"),
    ("R", "ARP, NDP for IPv6"),
];

/// Check the flags of `prtip scan` (see the module doc).
pub fn check(args: &Args) -> anyhow::Result<()> {
    for p in &args.ping {
        let known = PING_FORMS
            .iter()
            .any(|(f, _)| p == f || (matches!(*f, "S" | "A" | "U") && p.starts_with(f)));
        if !known {
            let forms: Vec<String> = PING_FORMS
                .iter()
                .map(|(f, what)| format!("-P{f} ({what})"))
                .collect();
            return Err(usage(format!(
                "-P{p}: unknown host discovery option; prtip knows {}",
                forms.join(", ")
            )));
        }
        if p != "n" {
            prtip_engine::probe::DiscoveryProbe::parse_option(&format!("P{p}")).map_err(usage)?;
        }
    }
    if let Some(p) = &args.ports {
        // Both protocols: what is checked here is the numbers, not the prefixes.
        if let Ok(list) = PortList::parse(p, Protocol::Tcp) {
            if list.tcp.first() == Some(&0) || list.udp.first() == Some(&0) {
                return Err(usage(format!(
                    "-p {p}: port 0 is reserved and cannot be scanned; give ports from 1 to 65535"
                )));
            }
        }
    }
    if let Some(n) = args.top_ports {
        // UDP's ranking when -sU is the only scan, TCP's otherwise.
        let kinds = super::spec::ScanKinds::of(&args.scan)?;
        let proto = if kinds.tcp.is_none() && kinds.udp {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        // Up to (not including) port 0, which the ranking lists too.
        let r = ranked(proto);
        let max = r.iter().position(|&p| p == 0).unwrap_or(r.len());
        if n > max {
            return Err(usage(format!(
                "--top-ports {n}: the frequency list ranks {max} {} ports; give 1 to {max} \
                 (or -p- for every port)",
                if proto == Protocol::Udp { "UDP" } else { "TCP" }
            )));
        }
    }
    if let Some(r) = &args.rate {
        if pacing::parse_rate(r) == Some(0) {
            return Err(usage(format!(
                "--rate {r}: a rate must be at least 0.001 probes per second \
                 (to scan without a limit, leave --rate out and use -T5)"
            )));
        }
    }
    if let Some(r) = &args.max_rate {
        if pacing::parse_rate(r).is_some_and(|mpps| mpps < 1000) {
            return Err(usage(format!(
                "--max-rate {r}: the ceiling must be at least 1 probe per second \
                 (for a slower scan give --rate {r})"
            )));
        }
    }
    check_governor(args)?;
    if args.checkpoint_every == Some(0) {
        return Err(usage(
            "--checkpoint-every 0: give a number of probes of at least 1 \
             (leave it out for checkpoints by time only)",
        ));
    }
    if let Some(w) = &args.checkpoint_interval {
        if pacing::parse_duration_ms(w) == Some(0) {
            return Err(usage(format!(
                "--checkpoint-interval {w}: give a duration of at least 1ms (e.g. 500ms, 1s)"
            )));
        }
    }
    check_outputs(args)?;
    // An -iL list's bad lines are named (file and line) while it is streamed
    // into its stored target list (`spec::build_list`).
    Ok(())
}

/// No two outputs may name the same file (one would silently overwrite the other).
/// `--min-rate` and `--fixed-rate`: a floor of at least 0.001/s, not above the
/// ceiling (`--rate` or the template's, capped by `--max-rate`), and no floor
/// for a fixed rate.
fn check_governor(args: &Args) -> anyhow::Result<()> {
    let Some(m) = &args.min_rate else {
        return Ok(());
    };
    let Some(min) = pacing::parse_rate(m) else {
        return Err(usage(format!(
            "bad --min-rate \"{m}\": give probes per second, e.g. 1000, 2.5, 10k"
        )));
    };
    if min == 0 {
        return Err(usage(format!(
            "--min-rate {m}: the floor must be at least 0.001 probes per second \
             (leave --min-rate out for no floor)"
        )));
    }
    if args.fixed_rate {
        return Err(usage(format!(
            "--min-rate {m} with --fixed-rate: the floor is the rate governor's, and \
             --fixed-rate turns the governor off; give one of them"
        )));
    }
    let t = pacing::timing(args.timing.unwrap_or(3)).map(|t| t.rate_mpps);
    let rate = args.rate.as_deref().and_then(pacing::parse_rate).or(t);
    let max = args.max_rate.as_deref().and_then(pacing::parse_rate);
    for (flag, given, v) in [
        ("--max-rate", args.max_rate.as_deref(), max),
        ("--rate", args.rate.as_deref(), rate.filter(|r| *r > 0)),
    ] {
        if let Some(v) = v.filter(|v| min > *v) {
            let what = given.map_or_else(
                || {
                    format!(
                        "-T{}'s rate {}",
                        args.timing.unwrap_or(3),
                        v as f64 / 1000.0
                    )
                },
                |g| format!("{flag} {g}"),
            );
            return Err(usage(format!(
                "--min-rate {m} is above {what}: the floor must not exceed the ceiling; \
                 lower --min-rate or raise {flag}"
            )));
        }
    }
    Ok(())
}

fn check_outputs(args: &Args) -> anyhow::Result<()> {
    let mut outs: Vec<(String, &str)> = Vec::new();
    for (flag, v) in [
        ("-oN", &args.out_normal),
        ("-oX", &args.out_xml),
        ("-oG", &args.out_grep),
        ("-oJ", &args.out_json),
        ("--csv", &args.csv),
        ("--html", &args.html),
        ("--pdf", &args.pdf),
    ] {
        if let Some(p) = v {
            outs.push((flag.to_string(), p.as_str()));
        }
    }
    let all: Vec<(String, String)> = match &args.out_all {
        Some(base) => ["nmap", "xml", "gnmap"]
            .iter()
            .map(|ext| (format!("-oA {base}"), format!("{base}.{ext}")))
            .collect(),
        None => Vec::new(),
    };
    outs.extend(all.iter().map(|(f, p)| (f.clone(), p.as_str())));
    let stdout: Vec<&String> = outs
        .iter()
        .filter(|(_, p)| *p == "-")
        .map(|(f, _)| f)
        .collect();
    if stdout.len() > 1 {
        return Err(usage(format!(
            "{} - and {} - both write to standard output: only one output may be `-` \
             (give the other a file)",
            stdout[0], stdout[1]
        )));
    }
    let mut seen: Vec<(PathBuf, &str, &String)> = Vec::new();
    for (flag, p) in &outs {
        let key = same_file_key(p);
        if let Some((_, first, first_flag)) = seen.iter().find(|(k, _, _)| *k == key) {
            return Err(usage(format!(
                "{first_flag} {first} and {flag} {p} name the same file: one would overwrite \
                 the other; give each output its own file"
            )));
        }
        seen.push((key, p, flag));
    }
    Ok(())
}

/// A key under which two spellings of one file compare equal (`out.xml`,
/// `./out.xml`, an absolute path, a symlink to it).
fn same_file_key(p: &str) -> PathBuf {
    if p == "-" {
        return PathBuf::from("-");
    }
    let path = Path::new(p);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    if let Ok(c) = std::fs::canonicalize(&abs) {
        return c;
    }
    // Not there yet: canonicalize the directory and keep the name.
    match (abs.parent().map(std::fs::canonicalize), abs.file_name()) {
        (Some(Ok(d)), Some(n)) => d.join(n),
        _ => abs.components().collect(),
    }
}
