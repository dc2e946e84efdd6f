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
