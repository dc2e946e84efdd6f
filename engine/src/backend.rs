//! The packet path every backend implements: [`Transmit`] moves probe frames out,
//! [`Receive`] hands received frames to a callback.
//!
//! Owns: the backend traits, their statistics and the [`BackendPair`]. Frames come
//! from the scan's probe modules ([`crate::probe::ProbeSet`]: templates, the
//! per-probe patch, the reply filter); a backend keeps no template code of its own.
//! Never touches permutation, cookies, pacing, retries, checkpoints or events: the
//! scan loop owns those, a backend only moves frames.
//!
//! Backends: [`packet`] (AF_PACKET, sendmmsg + TPACKET_V3 RX ring, here) and
//! `prtip-xdp` (AF_XDP, in its own crate, implementing the same traits).

pub mod bpf;
pub mod packet;

pub use crate::probe::{FrameParams, Probe, ProbeSet, ProbeTemplate, TemplateSet};
use std::time::Duration;

/// Transmit counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Frames handed to the kernel/NIC.
    pub packets: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Send calls (batches).
    pub batches: u64,
    /// Times the kernel pushed back (EAGAIN/ENOBUFS) and the batch was retried.
    pub backpressure: u64,
}

/// Receive counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Frames delivered to the callback.
    pub frames: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Frames the kernel dropped because the ring was full.
    pub drops: u64,
}

/// Sends probe frames.
pub trait Transmit: Send {
    /// Send `probes` (built from the backend's [`ProbeSet`]). Returns how many were
    /// handed over; fewer than `probes.len()` means the caller retries the rest.
    fn send(&mut self, probes: &[Probe]) -> std::io::Result<usize>;
    /// Counters so far.
    fn stats(&self) -> TxStats;
}

/// Receives frames (Ethernet headers included) that passed the backend's filter.
pub trait Receive: Send {
    /// Wait up to `timeout` for frames and call `on_frame` for each; returns how many.
    fn recv(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> std::io::Result<usize>;
    /// Counters so far.
    fn stats(&self) -> RxStats;
}

/// A sender and a receiver for one scan; each goes to its own thread.
pub struct BackendPair {
    /// Sending half.
    pub tx: Box<dyn Transmit>,
    /// Receiving half.
    pub rx: Box<dyn Receive>,
    /// The probe modules the pair sends and filters for (the scan loop classifies
    /// replies with them).
    pub probes: ProbeSet,
}

/// The error a backend returns for a probe no module of its set sends.
pub fn no_module(probe: &Probe) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "no probe module of this scan sends {:?} probes to {} (port {})",
            probe.proto, probe.dst, probe.dport
        ),
    )
}
