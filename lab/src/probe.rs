//! Plain-socket probes made from inside a namespace (a thread that entered it):
//! "does this TCP port answer, and with what banner", "does this UDP port
//! answer". For tests and for `prtip lab up`'s self-check; they are not a
//! scanner and send one connection or datagram each.

use crate::error::LabError;
use crate::netns::run_in_netns;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Outcome of one TCP connection attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpProbe {
    /// Connected; everything the server sent until it closed or went quiet.
    Open {
        /// Bytes received.
        banner: Vec<u8>,
    },
    /// The connection was refused (RST): a closed port.
    Refused,
    /// No answer within the timeout.
    TimedOut,
    /// Anything else (no route, unreachable...), with the error text.
    Error(String),
}

impl TcpProbe {
    /// The banner as text (lossy), or "" when not open.
    pub fn banner_text(&self) -> String {
        match self {
            TcpProbe::Open { banner } => String::from_utf8_lossy(banner).into_owned(),
            _ => String::new(),
        }
    }
}

/// Outcome of one UDP datagram (ICMPv6 port unreachable is `Unreachable` too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpProbe {
    /// A datagram came back.
    Reply(Vec<u8>),
    /// ICMP port unreachable (seen as ECONNREFUSED on a connected socket).
    Unreachable,
    /// Nothing within the timeout.
    TimedOut,
    /// Anything else, with the error text.
    Error(String),
}

/// How long the server may stay quiet, once it has said something, before the
/// banner is considered complete.
const QUIET: Duration = Duration::from_millis(300);
/// How long to wait for a server that speaks first when nothing was sent.
const FIRST_WORD: Duration = Duration::from_secs(2);

fn tcp_probe_here(
    addr: SocketAddr,
    send: Option<Vec<u8>>,
    timeout: Duration,
    read: bool,
) -> TcpProbe {
    let start = Instant::now();
    let mut s = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return TcpProbe::Refused,
        Err(e) if e.kind() == ErrorKind::TimedOut => return TcpProbe::TimedOut,
        Err(e) => return TcpProbe::Error(e.to_string()),
    };
    if !read {
        return TcpProbe::Open { banner: Vec::new() };
    }
    let sent = send.is_some();
    if let Some(data) = send {
        if let Err(e) = s.write_all(&data) {
            return TcpProbe::Error(format!("sending: {e}"));
        }
    }
    let first_wait = if sent {
        timeout
    } else {
        timeout.min(FIRST_WORD)
    };
    let mut banner = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let wait = if banner.is_empty() {
            left.min(first_wait)
        } else {
            left.min(QUIET)
        };
        if wait.is_zero() {
            break;
        }
        let _ = s.set_read_timeout(Some(wait));
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                banner.extend_from_slice(&buf[..n]);
                if banner.len() > 64 * 1024 {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return TcpProbe::Error(format!("reading: {e}")),
        }
    }
    TcpProbe::Open { banner }
}

/// Connect to `addr` from inside namespace `ns`, optionally send `send`, and
/// collect what comes back: until the server closes, stays quiet for 300 ms
/// after speaking, or `timeout` passes; when nothing was sent, a server that has
/// not spoken within 2 s is taken to wait for the client (an empty banner).
pub fn tcp_probe(
    ns: &str,
    addr: impl Into<SocketAddr>,
    send: Option<&[u8]>,
    timeout: Duration,
) -> Result<TcpProbe, LabError> {
    let send = send.map(<[u8]>::to_vec);
    let addr = addr.into();
    run_in_netns(ns, move || tcp_probe_here(addr, send, timeout, true))
}

/// Only connect to `addr` from inside namespace `ns` (and close): `Open` with an
/// empty banner, `Refused`, `TimedOut` or `Error`.
pub fn tcp_connect(
    ns: &str,
    addr: impl Into<SocketAddr>,
    timeout: Duration,
) -> Result<TcpProbe, LabError> {
    let addr = addr.into();
    run_in_netns(ns, move || tcp_probe_here(addr, None, timeout, false))
}

fn udp_probe_here(addr: SocketAddr, payload: Vec<u8>, timeout: Duration) -> UdpProbe {
    let run = || -> std::io::Result<UdpProbe> {
        let s = UdpSocket::bind(if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })?;
        s.connect(addr)?;
        s.set_read_timeout(Some(timeout))?;
        s.send(&payload)?;
        let mut buf = vec![0u8; 65536];
        match s.recv(&mut buf) {
            Ok(n) => Ok(UdpProbe::Reply(buf[..n].to_vec())),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(UdpProbe::Unreachable),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(UdpProbe::TimedOut)
            }
            Err(e) => Err(e),
        }
    };
    run().unwrap_or_else(|e| UdpProbe::Error(e.to_string()))
}

/// Send one datagram to `addr` from inside namespace `ns` and wait for the answer.
pub fn udp_probe(
    ns: &str,
    addr: impl Into<SocketAddr>,
    payload: &[u8],
    timeout: Duration,
) -> Result<UdpProbe, LabError> {
    let payload = payload.to_vec();
    let addr = addr.into();
    run_in_netns(ns, move || udp_probe_here(addr, payload, timeout))
}
