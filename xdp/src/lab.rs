//! XDP programs of the prtip lab: the target side's responder or sink and the
//! scanner side's pass-through, attached across the lab's two network
//! namespaces, plus the long-running holder behind `prtip lab up --responder xdp`
//! (the hidden `prtip xdp-hold`). Owns only the links it creates; never
//! creates or removes namespaces, interfaces, addresses or routes (that is prtip-lab's job).

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::attach::AttachedProgram;
use crate::error::{Result, XdpError};
use crate::policer::{self, PolicerConfig};
use crate::responder::{self, ResponderConfig};
use crate::sys::{in_netns, XdpMode};
use crate::{pass, sink};

/// What the target's veth runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabTarget {
    /// The stateless XDP_TX responder (SYN-ACK / RST for every address of the target network).
    Responder(ResponderConfig),
    /// The send-only sink (XDP_DROP everything, count frames).
    Sink,
    /// The SYN policer (test-only): TCP SYNs above a token-bucket rate are
    /// dropped, everything else goes on to the target's kernel.
    Policer(PolicerConfig),
}

/// The lab's interfaces, by namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSides {
    /// Scanner namespace (name under /run/netns).
    pub scan_ns: String,
    /// Scanner's veth.
    pub scan_if: String,
    /// Target namespace.
    pub tgt_ns: String,
    /// Target's veth.
    pub tgt_if: String,
}

/// The programs attached to a lab; dropping this detaches them all.
#[derive(Debug)]
pub struct LabPrograms {
    /// Responder or sink on the target's veth.
    pub target: AttachedProgram,
    /// Pass-through on the scanner's veth (responder mode only: XDP_TX'd
    /// replies reach the scanner only when its veth runs an XDP program).
    pub scanner: Option<AttachedProgram>,
}

/// Attach `target` to the target's veth and, for the responder, the pass-through
/// to the scanner's veth, both in `mode` (native falls back to skb with a note).
pub fn attach(sides: &LabSides, target: &LabTarget, mode: XdpMode) -> Result<LabPrograms> {
    let tgt = in_netns(&sides.tgt_ns, || match target {
        LabTarget::Responder(cfg) => responder::attach(&sides.tgt_if, cfg, mode),
        LabTarget::Sink => sink::attach(&sides.tgt_if, mode),
        LabTarget::Policer(cfg) => {
            policer::attach(&sides.tgt_if, *cfg, mode).map(policer::Policer::into_program)
        }
    })?;
    let scanner = match target {
        LabTarget::Responder(_) => Some(in_netns(&sides.scan_ns, || {
            pass::attach(&sides.scan_if, mode)
        })?),
        LabTarget::Sink | LabTarget::Policer(_) => None,
    };
    Ok(LabPrograms {
        target: tgt,
        scanner,
    })
}

/// Arguments of the holder process (`prtip xdp-hold ...`), as the cli passes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderArgs {
    /// The lab's interfaces.
    pub sides: LabSides,
    /// What the target runs.
    pub target: LabTarget,
    /// XDP mode.
    pub mode: XdpMode,
}

impl HolderArgs {
    /// Command-line arguments after `prtip xdp-hold` that reproduce `self`.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--scan-ns".into(),
            self.sides.scan_ns.clone(),
            "--scan-if".into(),
            self.sides.scan_if.clone(),
            "--tgt-ns".into(),
            self.sides.tgt_ns.clone(),
            "--tgt-if".into(),
            self.sides.tgt_if.clone(),
            "--mode".into(),
            self.mode.to_string(),
        ];
        match &self.target {
            LabTarget::Sink => a.extend(["--target".into(), "sink".into()]),
            LabTarget::Policer(p) => {
                a.extend([
                    "--target".into(),
                    "policer".into(),
                    "--rate".into(),
                    p.rate.to_string(),
                    "--burst".into(),
                    p.burst.to_string(),
                ]);
                if let Some((addr, len)) = p.prefix {
                    a.extend(["--net".into(), format!("{addr}/{len}")]);
                }
            }
            LabTarget::Responder(cfg) => {
                let ports: Vec<String> = cfg.open_tcp_ports.iter().map(|p| p.to_string()).collect();
                a.extend([
                    "--target".into(),
                    "responder".into(),
                    "--target-net".into(),
                    format!("{}/{}", cfg.target_net, cfg.prefix_len),
                    "--tcp-ports".into(),
                    ports.join(","),
                    "--cookie-key".into(),
                    cfg.cookie_key.to_string(),
                    "--live-every".into(),
                    cfg.live_every.to_string(),
                ]);
            }
        }
        a
    }

    /// Parse what [`to_args`](Self::to_args) produced.
    pub fn from_args(args: &[String]) -> Result<Self> {
        let get = |flag: &str| -> Result<Option<String>> {
            match args.iter().position(|a| a == flag) {
                Some(i) => args
                    .get(i + 1)
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| XdpError::Config(format!("{flag} needs a value"))),
                None => Ok(None),
            }
        };
        let need = |v: Option<String>, flag: &str| {
            v.ok_or_else(|| XdpError::Config(format!("missing {flag}")))
        };
        let sides = LabSides {
            scan_ns: need(get("--scan-ns")?, "--scan-ns")?,
            scan_if: need(get("--scan-if")?, "--scan-if")?,
            tgt_ns: need(get("--tgt-ns")?, "--tgt-ns")?,
            tgt_if: need(get("--tgt-if")?, "--tgt-if")?,
        };
        let mode: XdpMode = get("--mode")?
            .unwrap_or_else(|| "native".into())
            .parse()
            .map_err(XdpError::Config)?;
        let target = match need(get("--target")?, "--target")?.as_str() {
            "sink" => LabTarget::Sink,
            "policer" => {
                let num = |flag: &str| -> Result<u64> {
                    let v = need(get(flag)?, flag)?;
                    v.parse()
                        .map_err(|_| XdpError::Config(format!("bad {flag} {v:?}")))
                };
                let prefix = match get("--net")? {
                    Some(n) => Some(parse_ip_cidr(&n)?),
                    None => None,
                };
                let cfg = PolicerConfig {
                    rate: num("--rate")?,
                    burst: num("--burst")?,
                    prefix,
                };
                cfg.validate()?;
                LabTarget::Policer(cfg)
            }
            "responder" => {
                let net = need(get("--target-net")?, "--target-net")?;
                let (addr, prefix) = parse_cidr(&net)?;
                let ports = parse_ports(&get("--tcp-ports")?.unwrap_or_default())?;
                let mut cfg = ResponderConfig::new(addr, prefix, &ports)?;
                if let Some(n) = get("--live-every")? {
                    cfg.live_every = n.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                        XdpError::Config(format!("bad --live-every {n:?}: use 1 or more"))
                    })?;
                }
                if let Some(k) = get("--cookie-key")? {
                    cfg.cookie_key = k
                        .parse()
                        .map_err(|_| XdpError::Config(format!("bad --cookie-key {k:?}")))?;
                }
                LabTarget::Responder(cfg)
            }
            other => {
                return Err(XdpError::Config(format!(
                    "unknown --target {other:?}: expected responder, sink or policer"
                )))
            }
        };
        Ok(HolderArgs {
            sides,
            target,
            mode,
        })
    }
}

/// Parse `A.B.C.D/N`.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = a.parse().map_err(|_| {
        XdpError::Config(format!("bad IPv4 network {s:?}: {a:?} is not an address"))
    })?;
    let prefix: u8 = p.parse().ok().filter(|&n| n <= 32).ok_or_else(|| {
        XdpError::Config(format!(
            "bad IPv4 network {s:?}: prefix {p:?} is not 0..=32"
        ))
    })?;
    Ok((addr, prefix))
}

/// Parse an IPv4 or IPv6 network `ADDR/LEN` (no length: a single address).
pub fn parse_ip_cidr(s: &str) -> Result<(IpAddr, u8)> {
    let (a, p) = s.split_once('/').unwrap_or((s, ""));
    let addr: IpAddr = a
        .parse()
        .map_err(|_| XdpError::Config(format!("bad network {s:?}: {a:?} is not an address")))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if p.is_empty() {
        return Ok((addr, max));
    }
    let prefix: u8 = p.parse().ok().filter(|&n| n <= max).ok_or_else(|| {
        XdpError::Config(format!("bad network {s:?}: prefix {p:?} is not 0..={max}"))
    })?;
    Ok((addr, prefix))
}

/// Parse a comma list of TCP ports (empty string: none).
pub fn parse_ports(s: &str) -> Result<Vec<u16>> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.trim()
                .parse::<u16>()
                .map_err(|_| XdpError::Config(format!("bad port {t:?} in {s:?}")))
        })
        .collect()
}

/// Body of the hidden `prtip xdp-hold` (run by `prtip lab up --responder xdp`): attach, print one `ready ...` line on stdout,
/// then hold the links until SIGTERM, SIGINT or SIGHUP arrives or the target's
/// interface disappears (lab torn down); the links go with the process.
pub fn hold(args: &HolderArgs) -> Result<()> {
    // Block the signals before anything else so none is lost between attach and wait.
    // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask on the current thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let progs = attach(&args.sides, &args.target, args.mode)?;
    let mut out = io::stdout().lock();
    for p in std::iter::once(&progs.target).chain(progs.scanner.as_ref()) {
        if let Some(n) = p.note() {
            eprintln!("note: {n}");
        }
    }
    writeln!(
        out,
        "ready {} on {} ({} mode, id {}){}",
        progs.target.program(),
        progs.target.ifname(),
        progs.target.mode(),
        progs.target.prog_id(),
        progs
            .scanner
            .as_ref()
            .map(|s| format!(
                ", {} on {} ({} mode, id {})",
                s.program(),
                s.ifname(),
                s.mode(),
                s.prog_id()
            ))
            .unwrap_or_default()
    )
    .and_then(|_| out.flush())
    .map_err(|e| XdpError::os("writing the ready line", e))?;
    drop(out);
    let ts = libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: waits for one of the blocked signals in `set` with a timeout; no handler runs.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
        if sig > 0 {
            break;
        }
        if !crate::sys::link_alive(progs.target.link_fd()) {
            break; // the interface went away with the lab
        }
    }
    drop(progs);
    Ok(())
}

/// A running holder process started by [`spawn_holder`].
#[derive(Debug)]
pub struct Holder {
    /// Its process id (for the lab's pid file; SIGTERM ends it and detaches).
    pub pid: u32,
    /// The `ready ...` line it printed.
    pub ready: String,
}

/// Start a holder process — `cmd` is the full command line, normally
/// `prtip xdp-hold` followed by [`HolderArgs::to_args`] — detached in its own
/// session (stdin closed, stderr to `log`), and wait until it prints its
/// `ready ...` line (lines before it are skipped) or exits.
pub fn spawn_holder(mut cmd: Command, log: &Path) -> Result<Holder> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let log_file = std::fs::File::create(log)
        .map_err(|e| XdpError::os(format!("creating {}", log.display()), e))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        XdpError::os(
            format!("starting the XDP holder {:?}", cmd.get_program()),
            e,
        )
    })?;
    let stdout = child.stdout.take().expect("piped");
    let mut ready = None;
    for line in io::BufReader::new(stdout).lines() {
        match line {
            Ok(l) if l.starts_with("ready ") => {
                ready = Some(l);
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    // Dropping the pipe's read end is fine: the holder prints nothing more.
    let Some(ready) = ready else {
        let status = child.wait().ok();
        let log_text = std::fs::read_to_string(log).unwrap_or_default();
        return Err(XdpError::Io {
            what: format!(
                "the XDP holder exited ({}) before attaching: {}",
                status.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
                log_text.trim()
            ),
            err: io::Error::other("holder failed"),
        });
    };
    // The child keeps running in its own session; `prtip lab down` ends it by pid.
    Ok(Holder {
        pid: child.id(),
        ready,
    })
}

/// The command line of a holder for `args`: `exe xdp-hold ARGS...` (`exe` is the prtip binary).
pub fn holder_command(exe: &Path, args: &HolderArgs) -> Command {
    let mut c = Command::new(exe);
    c.arg("xdp-hold").args(args.to_args());
    c
}

/// End the holder `pid` (SIGTERM: it detaches its programs and exits) and wait up
/// to 5 s for it to go; SIGKILL after that (the links still go with the process).
/// A pid that is not running is fine. Only pass pids recorded from [`spawn_holder`].
pub fn stop_holder(pid: u32) -> Result<()> {
    let pid = pid as libc::pid_t;
    // SAFETY: kill(2) with a pid we started; signal 0 only checks existence.
    let alive = |p| unsafe { libc::kill(p, 0) } == 0;
    // SAFETY: as above.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Ok(()); // already gone
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive(pid) {
        // Reap it if it is our child (ignored otherwise).
        // SAFETY: waitpid with WNOHANG on a specific pid; status is ours.
        unsafe {
            let mut st = 0;
            libc::waitpid(pid, &mut st, libc::WNOHANG);
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_args_round_trip() {
        let sides = LabSides {
            scan_ns: "a".into(),
            scan_if: "a0".into(),
            tgt_ns: "b".into(),
            tgt_if: "b0".into(),
        };
        let mut cfg =
            ResponderConfig::new(Ipv4Addr::new(198, 19, 0, 0), 16, &[22, 80, 8080]).unwrap();
        cfg.cookie_key = 42;
        cfg.live_every = 100;
        let pol = LabTarget::Policer(PolicerConfig {
            rate: 40_000,
            burst: 400,
            prefix: None,
        });
        let pol4 = LabTarget::Policer(PolicerConfig {
            rate: 400,
            burst: 5,
            prefix: Some(("198.19.3.0".parse().unwrap(), 24)),
        });
        let pol6 = LabTarget::Policer(PolicerConfig {
            rate: 400,
            burst: 5,
            prefix: Some(("2001:db8:100::".parse().unwrap(), 48)),
        });
        for target in [LabTarget::Sink, LabTarget::Responder(cfg), pol, pol4, pol6] {
            for mode in [XdpMode::Native, XdpMode::Skb] {
                let h = HolderArgs {
                    sides: sides.clone(),
                    target: target.clone(),
                    mode,
                };
                assert_eq!(HolderArgs::from_args(&h.to_args()).unwrap(), h);
            }
        }
    }

    #[test]
    fn bad_tokens_are_named() {
        let e = parse_cidr("198.19.0.0/40").unwrap_err().to_string();
        assert!(e.contains("\"40\""), "{e}");
        let e = parse_ip_cidr("2001:db8::/129").unwrap_err().to_string();
        assert!(e.contains("\"129\""), "{e}");
        let e = parse_ip_cidr("198.19.0.x/24").unwrap_err().to_string();
        assert!(e.contains("198.19.0.x"), "{e}");
        let e = parse_ports("80,http").unwrap_err().to_string();
        assert!(e.contains("\"http\""), "{e}");
        assert_eq!(parse_ports("").unwrap(), Vec::<u16>::new());
    }
}
