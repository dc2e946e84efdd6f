//! The AF_XDP backend's options from a spec, and its open errors told apart
//! (what the operator must fix is bad input; the rest a runtime failure).

use crate::error::usage;
use prtip_store::event::{ScanSpec, XdpMode, ZeroCopy};

/// The backend options of `spec`'s scan (its [`XdpSettings`]) for `probes`
/// (the filter takes what their modules' replies need).
///
/// [`XdpSettings`]: prtip_store::event::XdpSettings
pub fn options(
    spec: &ScanSpec,
    probes: &prtip_engine::probe::ProbeSet,
) -> Result<prtip_xdp::XdpOptions, prtip_xdp::XdpError> {
    let mut o = prtip_xdp::XdpOptions::for_probes(probes)?;
    o.mode = match spec.xdp.mode {
        XdpMode::Native => prtip_xdp::XdpMode::Native,
        XdpMode::Skb => prtip_xdp::XdpMode::Skb,
    };
    o.zero_copy = match spec.xdp.zero_copy {
        ZeroCopy::Auto => prtip_xdp::ZeroCopy::Auto,
        ZeroCopy::On => prtip_xdp::ZeroCopy::Require,
        ZeroCopy::Off => prtip_xdp::ZeroCopy::Off,
    };
    o.queues = spec.xdp.queues;
    // The sender threads of queues 1.. start while the backend is built,
    // before the scan drops its capabilities: each drops every one first.
    o.sender_start = Some(prtip_xdp::ThreadStart(crate::privilege::drop_all));
    Ok(o)
}

/// Map an error opening the AF_XDP backend: what the operator must fix before
/// anything is sent (privileges, interface, flags the interface cannot honour,
/// another program on it) is bad input; the rest is a runtime failure.
pub fn open_error(iface: &str, e: prtip_xdp::XdpError) -> anyhow::Error {
    use prtip_xdp::XdpError as E;
    let msg = format!("AF_XDP backend on {iface}: {e}");
    match e {
        E::Permission { .. }
        | E::NoSuchInterface { .. }
        | E::InterfaceDown { .. }
        | E::Config(_)
        | E::Busy { .. }
        | E::Unsupported { .. } => usage(msg),
        _ => anyhow::anyhow!(msg),
    }
}

/// The receive half of an AF_XDP scan that asks the link (`-PR`: ARP, NDP):
/// the XDP filter redirects the IP replies to the AF_XDP socket and passes
/// ARP replies and neighbour advertisements to the kernel (which needs them
/// for its own neighbour table, and XDP cannot both redirect a frame and pass
/// it), where an AF_PACKET socket whose filter takes only our link answers
/// reads them. Frames of both come to the one callback.
pub struct LinkRx {
    /// The AF_XDP socket's half.
    pub xdp: Box<dyn prtip_engine::backend::Receive>,
    /// The AF_PACKET socket's half (its BPF filter: the link replies).
    pub link: Box<dyn prtip_engine::backend::Receive>,
}

impl prtip_engine::backend::Receive for LinkRx {
    fn recv(
        &mut self,
        timeout: std::time::Duration,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> std::io::Result<usize> {
        // Both looked at every millisecond at most while idle, so an answer on
        // either waits no longer than that (its RTT is measured when read).
        let end = std::time::Instant::now() + timeout;
        loop {
            let n = self.link.recv(std::time::Duration::ZERO, on_frame)?;
            let left = end.saturating_duration_since(std::time::Instant::now());
            let wait = if n > 0 {
                std::time::Duration::ZERO
            } else {
                left.min(std::time::Duration::from_millis(1))
            };
            let n = n + self.xdp.recv(wait, on_frame)?;
            if n > 0 || left.is_zero() {
                return Ok(n);
            }
        }
    }
    fn stats(&self) -> prtip_engine::backend::RxStats {
        let (a, b) = (self.xdp.stats(), self.link.stats());
        prtip_engine::backend::RxStats {
            frames: a.frames + b.frames,
            bytes: a.bytes + b.bytes,
            drops: a.drops + b.drops,
        }
    }
}
