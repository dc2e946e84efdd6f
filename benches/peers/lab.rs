//! The harness's lab: one prtip lab (prtip-lab) with a unique name, the XDP
//! responder or sink on the target's veth and the pass-through on the
//! scanner's (prtip-xdp, held by this process: the links go with it), TSO/GSO
//! off on the scanner's veth, and the counters that say what reached the
//! target. Dropping a [`BenchLab`] detaches the programs and takes the lab
//! down (also while a panic unwinds); [`cleanup_stale`] removes labs left by a
//! harness that was killed. Never touches any other lab or namespace.

use std::collections::BTreeMap;
use std::net::{SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use prtip_lab::{Ipv4Net, LabConfig, LabGuard};
use prtip_xdp::lab::{LabPrograms, LabSides, LabTarget};
use prtip_xdp::responder::{ResponderConfig, ResponderStats};
use prtip_xdp::sink::SinkStats;
use prtip_xdp::XdpMode;

use crate::proc::output;

/// Prefix of every lab this harness makes (`pbn<pid hex><n>`).
pub const PREFIX: &str = "pbn";

/// UDP port of the scanner's address that masscan's wake datagrams go to.
const WAKE_PORT: u16 = 9;

/// What the target's veth runs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// XDP_TX responder: SYN-ACK on the open ports, RST on the others.
    Responder,
    /// XDP_DROP sink that counts frames.
    Sink,
    /// The responder in sparse mode: only addresses whose index in the target
    /// network is 1 modulo this answer (100: 1% of them); the others drop SYNs.
    Sparse(u32),
}

/// A lab for one harness run.
pub struct BenchLab {
    // Field order is drop order: programs before the lab.
    programs: Option<LabPrograms>,
    lab: Option<LabGuard>,
    waker: Option<UdpSocket>,
    catcher: Option<UdpSocket>,
    /// Its configuration.
    pub cfg: LabConfig,
    /// XDP mode asked for.
    pub mode: XdpMode,
    /// What runs on the target now.
    pub target: Option<TargetKind>,
    /// Notes for the report (mode fallbacks, offload changes).
    pub notes: Vec<String>,
}

/// Counters that say what crossed the veth during one run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counters {
    /// Responder: SYN-ACKs sent.
    pub syn_ack: u64,
    /// Responder: RSTs sent.
    pub rst: u64,
    /// Responder: frames passed to the target's kernel (e.g. the scanner's RSTs).
    pub passed: u64,
    /// Sink: frames dropped.
    pub sink_frames: u64,
    /// Sparse responder: SYNs to silent addresses, dropped.
    pub silent: u64,
    /// ethtool -S counters of either veth end whose name says drop/err/full, non-zero.
    pub drops: BTreeMap<String, u64>,
}

impl Counters {
    /// Probes that reached the target (SYNs answered, or frames sunk).
    pub fn delivered(&self) -> u64 {
        self.syn_ack + self.rst + self.sink_frames + self.silent
    }

    /// `self - before`.
    pub fn since(&self, before: &Counters) -> Counters {
        let mut drops = BTreeMap::new();
        for (k, v) in &self.drops {
            let d = v.saturating_sub(*before.drops.get(k).unwrap_or(&0));
            if d > 0 {
                drops.insert(k.clone(), d);
            }
        }
        Counters {
            syn_ack: self.syn_ack - before.syn_ack,
            rst: self.rst - before.rst,
            passed: self.passed - before.passed,
            sink_frames: self.sink_frames - before.sink_frames,
            silent: self.silent - before.silent,
            drops,
        }
    }
}

impl BenchLab {
    /// Bring up lab `pbn<pid><n>` for `net` with `open` TCP ports, responder run
    /// by `prtip` (`prtip lab serve`), and turn TSO/GSO off on the scanner's veth.
    pub fn up(prtip: &Path, net: Ipv4Net, open: &[u16], mode: XdpMode) -> anyhow::Result<BenchLab> {
        let mut cfg = LabConfig::unique(PREFIX);
        cfg.target_net = net;
        cfg.tcp_ports = open.to_vec();
        cfg.responder_exe = Some(prtip.to_path_buf());
        let guard = LabGuard::up(cfg.clone())
            .with_context(|| format!("bringing up the bench lab {}", cfg.name))?;
        let mut lab = BenchLab {
            programs: None,
            lab: Some(guard),
            waker: None,
            catcher: None,
            cfg,
            mode,
            target: None,
            notes: Vec::new(),
        };
        // masscan 1.3.2 misses 2-38% of replies with TSO/GSO on (the veth default):
        // off for every scanner, so they all see the same lab.
        lab.offloads(false)?;
        let tgt = SocketAddrV4::new(lab.cfg.tgt_ip, 0);
        let sock = prtip_lab::netns::run_in_netns(&lab.cfg.tgt_ns, move || UdpSocket::bind(tgt))
            .context("entering the target namespace")?
            .context("binding the waker socket in the target namespace")?;
        // The datagrams land on a bound socket in the scanner namespace, so its
        // kernel sends no ICMP port unreachable back (the sink would count it).
        let scan = SocketAddrV4::new(lab.cfg.scan_ip, WAKE_PORT);
        let catcher =
            prtip_lab::netns::run_in_netns(&lab.cfg.scan_ns, move || UdpSocket::bind(scan))
                .context("entering the scanner namespace")?
                .context("binding the wake catcher in the scanner namespace")?;
        catcher.set_nonblocking(true)?;
        lab.catcher = Some(catcher);
        lab.waker = Some(sock);
        Ok(lab)
    }

    fn sides(&self) -> LabSides {
        LabSides {
            scan_ns: self.cfg.scan_ns.clone(),
            scan_if: self.cfg.scan_if.clone(),
            tgt_ns: self.cfg.tgt_ns.clone(),
            tgt_if: self.cfg.tgt_if.clone(),
        }
    }

    /// Put `kind` on the target's veth (and the pass-through on the scanner's for
    /// the responder), replacing whatever ran there.
    pub fn attach(&mut self, kind: TargetKind) -> anyhow::Result<()> {
        if self.target == Some(kind) {
            return Ok(());
        }
        self.programs = None;
        self.target = None;
        let target = match kind {
            TargetKind::Responder | TargetKind::Sparse(_) => {
                let net = self.cfg.target_net;
                let mut r = ResponderConfig::new(net.addr(), net.prefix(), &self.cfg.tcp_ports)?;
                if let TargetKind::Sparse(n) = kind {
                    r.live_every = n;
                }
                LabTarget::Responder(r)
            }
            TargetKind::Sink => LabTarget::Sink,
        };
        let p = prtip_xdp::lab::attach(&self.sides(), &target, self.mode)
            .with_context(|| format!("attaching the XDP {kind:?} to the lab"))?;
        for prog in std::iter::once(&p.target).chain(p.scanner.as_ref()) {
            let line = format!(
                "{} on {} in {} mode{}",
                prog.program(),
                prog.ifname(),
                prog.mode(),
                prog.note().map(|n| format!(" ({n})")).unwrap_or_default()
            );
            if !self.notes.contains(&line) {
                self.notes.push(line);
            }
        }
        self.programs = Some(p);
        self.target = Some(kind);
        Ok(())
    }

    /// Read the target program's counters and the veths' drop counters.
    pub fn counters(&self) -> Counters {
        let mut c = self.program_counters();
        for (ns, ifname, side) in [
            (&self.cfg.scan_ns, &self.cfg.scan_if, "scan"),
            (&self.cfg.tgt_ns, &self.cfg.tgt_if, "tgt"),
        ] {
            if let Ok(out) =
                output(Command::new("ip").args(["netns", "exec", ns, "ethtool", "-S", ifname]))
            {
                for line in out.lines() {
                    let Some((k, v)) = line.trim().split_once(':') else {
                        continue;
                    };
                    let (k, v) = (k.trim(), v.trim());
                    // The sink's own XDP_DROPs are its job, not a loss.
                    let own = side == "tgt" && k.ends_with("xdp_drops");
                    if !own && (k.contains("drop") || k.contains("err") || k.contains("full")) {
                        if let Ok(v) = v.parse::<u64>() {
                            c.drops.insert(format!("{side}.{k}"), v);
                        }
                    }
                }
            }
        }
        c
    }

    /// The target program's counters only (cheap: for polling).
    pub fn program_counters(&self) -> Counters {
        let mut c = Counters::default();
        if let Some(p) = &self.programs {
            match self.target {
                Some(TargetKind::Responder | TargetKind::Sparse(_)) => {
                    if let Ok(s) = ResponderStats::read(&p.target) {
                        (c.syn_ack, c.rst, c.passed, c.silent) =
                            (s.syn_ack, s.rst, s.passed, s.silent);
                    }
                }
                Some(TargetKind::Sink) => {
                    if let Ok(s) = SinkStats::read(&p.target) {
                        c.sink_frames = s.frames;
                    }
                }
                None => {}
            }
        }
        c
    }

    /// Send one UDP datagram from the target to the scanner's address (wakes a
    /// masscan that waits for one more packet before it exits).
    pub fn wake_scanner(&self) {
        if let Some(s) = &self.waker {
            let _ = s.send_to(b"wake", SocketAddrV4::new(self.cfg.scan_ip, WAKE_PORT));
        }
        if let Some(c) = &self.catcher {
            let mut buf = [0u8; 64];
            while c.recv(&mut buf).is_ok() {}
        }
    }

    /// TSO and GSO on the scanner's veth on or off.
    pub fn offloads(&self, on: bool) -> anyhow::Result<()> {
        let v = if on { "on" } else { "off" };
        output(
            Command::new("ip")
                .args(["netns", "exec", &self.cfg.scan_ns, "ethtool", "-K"])
                .args([&self.cfg.scan_if, "tso", v, "gso", v]),
        )
        .with_context(|| format!("turning TSO/GSO {v} on the scanner's veth"))?;
        Ok(())
    }

    /// Detach the programs and take the lab down now.
    pub fn down(mut self) -> anyhow::Result<()> {
        self.programs = None;
        self.waker = None;
        self.catcher = None;
        if let Some(g) = self.lab.take() {
            g.down().context("taking the bench lab down")?;
        }
        Ok(())
    }
}

impl Drop for BenchLab {
    fn drop(&mut self) {
        self.programs = None;
        self.waker = None;
        self.catcher = None;
        // LabGuard's own Drop takes the lab down.
        self.lab = None;
    }
}

/// Take down labs named `pbn<pid><n>` whose harness process is gone (killed
/// with SIGKILL, or a power cut): they hold nothing but namespaces and a run dir.
pub fn cleanup_stale(run_dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    for name in prtip_lab::list_labs(run_dir) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if rest.len() < 3 {
            continue;
        }
        let Ok(pid) = u32::from_str_radix(&rest[..rest.len() - 2], 16) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(Some(cfg)) = prtip_lab::load_config(run_dir, &name) {
            if prtip_lab::down(&cfg).is_ok() {
                removed.push(name);
            }
        }
    }
    removed
}
