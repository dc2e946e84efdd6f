//! The AF_XDP backend's options from a spec, and its open errors told apart
//! (what the operator must fix is bad input; the rest a runtime failure).

use crate::error::usage;
use prtip_store::event::ScanSpec;

/// The backend options of `spec`'s scan (the XDP keys of its `extra_json`) for
/// probes from `src`.
pub fn options(spec: &ScanSpec, src: std::net::Ipv4Addr) -> prtip_xdp::XdpOptions {
    let mut o = prtip_xdp::XdpOptions::for_engine(src);
    let v: serde_json::Value =
        serde_json::from_str(&spec.extra_json).unwrap_or(serde_json::Value::Null);
    if let Some(m) = v
        .get("xdp_mode")
        .and_then(|m| m.as_str())
        .and_then(|m| m.parse().ok())
    {
        o.mode = m;
    }
    if let Some(z) = v
        .get("zero_copy")
        .and_then(|z| z.as_str())
        .and_then(parse_zero_copy)
    {
        o.zero_copy = z;
    }
    if let Some(q) = v.get("xdp_queues").and_then(|q| q.as_u64()) {
        o.queues = Some(q as u32);
    }
    o
}

fn parse_zero_copy(z: &str) -> Option<prtip_xdp::ZeroCopy> {
    match z {
        "auto" => Some(prtip_xdp::ZeroCopy::Auto),
        "on" | "yes" | "require" => Some(prtip_xdp::ZeroCopy::Require),
        "off" | "no" => Some(prtip_xdp::ZeroCopy::Off),
        _ => None,
    }
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
