//! Result rows: the latest known state of one (address, port, protocol).
//!
//! A [`ResultRow`] is what exports, filters and the monitor consume. It is built by
//! folding `Reply`, `Banner` and `Service` events; this module owns the row type
//! and never touches files.

use crate::event::{Addr, PortState, Protocol, Reason};

/// Service detected on a port.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ServiceInfo {
    /// Service name (`ssh`, `http`, ...).
    pub name: String,
    /// Product, empty when unknown.
    pub product: String,
    /// Version, empty when unknown.
    pub version: String,
    /// Extra info, empty when none.
    pub extra: String,
    /// 0.0 ..= 1.0.
    pub confidence: f32,
    /// How it was found (`probe`, `banner`, `port-table`).
    pub method: String,
}

/// Latest state of one (address, port, protocol), duplicates folded.
#[derive(Clone, PartialEq, Debug)]
pub struct ResultRow {
    /// Target address.
    pub addr: Addr,
    /// Host name the user gave for this address, if any.
    pub hostname: Option<String>,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub proto: Protocol,
    /// Latest state.
    pub state: PortState,
    /// Why.
    pub reason: Reason,
    /// TTL of the deciding reply.
    pub ttl: u8,
    /// Round-trip time of the deciding reply, microseconds.
    pub rtt_us: u32,
    /// Unix time of the deciding reply, microseconds.
    pub time_us: u64,
    /// Detected service, if any.
    pub service: Option<ServiceInfo>,
    /// First banner bytes, if any.
    pub banner: Option<Vec<u8>>,
}

impl ResultRow {
    /// Sort key: address, then protocol, then port (nmap's order).
    pub fn key(&self) -> (Addr, Protocol, u16) {
        (self.addr, self.proto, self.port)
    }
}
