//! (e) The IPv6 sweep: every address of the lab's IPv6 target prefix
//! (2001:db8:100::/116, 4 096 addresses, AnyIP in the target namespace: the
//! kernel answers, SYN-ACK on the open ports and RST on the others) × the
//! sweep's ports, by prtip (AF_PACKET and AF_XDP), `nmap -6` and masscan, at one
//! rate. zmap 2.1 has no IPv6 and is left out. Measured per scanner: wall time
//! of the process, probes per wall second, and recall against the ground truth
//! (from its output file, or prtip's log). The XDP responder answers IPv4 only,
//! so there are no target-side counters here: rates are the scanner's wall time.
//! A scanner that does not exit by its deadline is killed, and what its output
//! holds by then is counted (masscan 1.3.2's IPv6 wait never ends).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::BenchLab;
use crate::parse;
use crate::scanners::Scanner;

/// The lab's IPv6 target prefix and its size.
pub const NET6: &str = "2001:db8:100::/116";
const HOSTS: u32 = 4096;

/// What one scanner did on the IPv6 sweep.
#[derive(Clone, Debug, serde::Serialize)]
pub struct V6Outcome {
    /// Scanner name.
    pub scanner: String,
    /// The exact command.
    pub command: String,
    /// Wall time of the process, seconds.
    pub wall_s: f64,
    /// Probes sent (addresses × ports) per wall second.
    pub probes_per_wall_s: f64,
    /// Distinct open (address, port) found that the lab holds open.
    pub found: u64,
    /// Open pairs a perfect scan finds.
    pub expected: u64,
    /// Reported open that the lab does not hold open.
    pub false_positives: u64,
    /// Killed at its deadline.
    pub killed: bool,
    /// Exit status as text.
    pub exit: String,
}

fn ports_arg(p: &[u16]) -> String {
    p.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

/// What to sweep: `ports` (of which the lab holds `open` open) at `rate`
/// probes/s with a late-reply wait of `wait_s`.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    /// Scanned ports.
    pub ports: &'a [u16],
    /// The lab's open ones.
    pub open: &'a [u16],
    /// Probes/s asked for.
    pub rate: u64,
    /// Late-reply wait, seconds.
    pub wait_s: u64,
}

/// Run the sweep of `plan` with each of `scanners` (zmap skipped).
pub fn sweep(
    lab: &BenchLab,
    prtip: &Path,
    work: &Path,
    scanners: &[Scanner],
    plan: Plan<'_>,
) -> anyhow::Result<Vec<V6Outcome>> {
    let Plan {
        ports,
        open,
        rate,
        wait_s,
    } = plan;
    let c = &lab.cfg;
    let base = u128::from("2001:db8:100::".parse::<Ipv6Addr>()?);
    let probes = u64::from(HOSTS) * ports.len() as u64;
    let expected = u64::from(HOSTS) * ports.iter().filter(|p| open.contains(p)).count() as u64;
    let mut rows = Vec::new();
    for &k in scanners {
        if k == Scanner::Zmap {
            continue;
        }
        let tag = format!("v6-{}", k.name());
        let out = work.join(format!("{tag}.out"));
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_dir_all(&out);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &c.scan_ns]);
        match k {
            Scanner::PrtipPacket | Scanner::PrtipXdp => {
                cmd.arg(prtip).arg("--home").arg(&out);
                cmd.args(["scan", "-6", "-sS", NET6, "-p", &ports_arg(ports)])
                    .args(["--rate", &rate.to_string(), "--max-retries", "0"])
                    .args(["--wait", &wait_s.to_string(), "--quiet"]);
                if k == Scanner::PrtipXdp {
                    cmd.args(["--xdp", &c.scan_if]);
                } else {
                    cmd.args(["--backend", "packet"]);
                }
            }
            Scanner::Nmap => {
                cmd.args(["nmap", "-6", "-sS", "-n", "-Pn", "-T5"])
                    .arg(format!("-p{}", ports_arg(ports)))
                    .args(["-e", &c.scan_if])
                    .args(["--min-rate", &rate.to_string()])
                    .args(["--max-rate", &rate.to_string()])
                    .args(["--min-hostgroup", &HOSTS.to_string()])
                    .arg("-oG")
                    .arg(&out)
                    .arg(NET6);
            }
            Scanner::Masscan => {
                cmd.args(["masscan", NET6])
                    .arg(format!("-p{}", ports_arg(ports)))
                    .args(["--adapter", &c.scan_if])
                    .args(["--router-mac", &c.tgt_mac.to_string()])
                    .args(["--source-ip", &c.scan_ip6.to_string()])
                    .args(["--rate", &rate.to_string()])
                    .args(["--wait", &wait_s.to_string(), "--retries", "0"])
                    .arg("-oL")
                    .arg(&out);
            }
            Scanner::Zmap => unreachable!("skipped above"),
        }
        let command = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let deadline = Duration::from_secs_f64(probes as f64 / rate.max(1) as f64 * 3.0)
            + Duration::from_secs(wait_s + 20);
        let start = Instant::now();
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("{}: {e}", k.name()))?;
        let (status, killed) = loop {
            if let Some(s) = child.try_wait()? {
                break (s, false);
            }
            if start.elapsed() > deadline {
                let _ = child.kill();
                break (child.wait()?, true);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let wall_s = start.elapsed().as_secs_f64();
        let mut seen: HashSet<(IpAddr, u16)> = HashSet::new();
        let mut add = |a: IpAddr, p: u16| {
            seen.insert((a, p));
        };
        match k {
            Scanner::Nmap => {
                parse::nmap_grepable(&std::fs::read_to_string(&out).unwrap_or_default(), &mut add);
            }
            Scanner::Masscan => {
                parse::masscan_list(&std::fs::read_to_string(&out).unwrap_or_default(), &mut add);
            }
            _ => {
                if let Ok(log) = prtip_store::LogReader::open(&out.join("scans").join("1")) {
                    for row in prtip_store::sorted_rows(&log)?.flatten() {
                        if row.state == prtip_store::PortState::Open {
                            add(row.addr.ip(), row.port);
                        }
                    }
                }
            }
        }
        let holds_open = |(a, p): &(IpAddr, u16)| match a {
            IpAddr::V6(a) => {
                let i = u128::from(*a).wrapping_sub(base);
                i < u128::from(HOSTS) && open.contains(p)
            }
            IpAddr::V4(_) => false,
        };
        let found = seen.iter().filter(|e| holds_open(e)).count() as u64;
        let row = V6Outcome {
            scanner: k.name().into(),
            command,
            wall_s,
            probes_per_wall_s: probes as f64 / wall_s,
            found,
            expected,
            false_positives: seen.len() as u64 - found,
            killed,
            exit: status.to_string(),
        };
        println!(
            "  {:<13} wall {:>7.2} s  {:>9.0} probes/s  recall {:>6.2}% ({}/{}, {} false){}",
            row.scanner,
            row.wall_s,
            row.probes_per_wall_s,
            100.0 * found as f64 / expected as f64,
            found,
            expected,
            row.false_positives,
            if killed {
                "  [killed at its deadline]"
            } else {
                ""
            }
        );
        rows.push(row);
    }
    Ok(rows)
}
