//! The AF_XDP backend's options from a spec, and its open errors told apart
//! (what the operator must fix is bad input; the rest a runtime failure).

use crate::error::usage;
use prtip_store::event::{ScanSpec, XdpMode, ZeroCopy};

/// The backend options of `spec`'s scan (its [`XdpSettings`]) for probes from `src`.
///
/// [`XdpSettings`]: prtip_store::event::XdpSettings
pub fn options(spec: &ScanSpec, src: std::net::Ipv4Addr) -> prtip_xdp::XdpOptions {
    let mut o = match spec.probe.source_port {
        None => prtip_xdp::XdpOptions::for_engine(src),
        // -g: the XDP filter lets replies to that one port in.
        Some(port) => {
            let probes =
                prtip_engine::backend::TemplateSet::new(&prtip_engine::backend::FrameParams {
                    src_ip: src,
                    ..Default::default()
                })
                .with_source_port(Some(port));
            prtip_xdp::XdpOptions::for_probes(&probes).expect("an IPv4 probe set has an XDP filter")
        }
    };
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
    o
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
