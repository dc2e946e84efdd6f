//! Service detection for one TCP port, as a pure state machine: the driver (the
//! io_uring grabber in prtip-engine) asks which probe to send next, feeds back what
//! it read, and finally takes the verdict and the banners worth logging.
//!
//! The order follows nmap's: a passive read first (the NULL probe: many services speak
//! first), then the probes whose `ports` include the target port, then every other
//! probe up to the intensity. A port the table marks as TLS gets the ClientHello first.
//! A soft match narrows the remaining probes to those that can hard-match the same
//! service. This module never does I/O and never sleeps.

use crate::db::{Detection, Probe, ProbeDb, ProbeKind, Protocol, CONF_PORT_TABLE, CONF_TLS};
use crate::tls::{self, Flight, TlsInfo};
use std::borrow::Cow;
use std::time::Duration;

/// Tunables of detection.
#[derive(Clone, Debug)]
pub struct DetectOptions {
    /// nmap's `--version-intensity`: probes rarer than this are skipped unless their
    /// `ports` include the target port. 0..=9, default 7.
    pub intensity: u8,
    /// Overrides the NULL probe's wait (the passive read).
    pub null_wait: Option<Duration>,
    /// Overrides every other probe's wait.
    pub probe_wait: Option<Duration>,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            intensity: 7,
            null_wait: None,
            probe_wait: None,
        }
    }
}

/// The next thing to send.
#[derive(Clone, Debug)]
pub struct NextProbe<'a> {
    /// The probe (its name goes into Banner events).
    pub probe: &'a Probe,
    /// Bytes to send; empty for the passive read.
    pub payload: Cow<'a, [u8]>,
    /// How long to read before giving up on this probe.
    pub wait: Duration,
}

/// The verdict for a port.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// What the port runs, if anything could be said.
    pub detection: Option<Detection>,
    /// Responses worth logging as Banner events: `(probe name, bytes)`; the passive
    /// read's bytes if any, plus the answer that decided the match.
    pub banners: Vec<(String, Vec<u8>)>,
    /// The TLS handshake, when one was seen.
    pub tls: Option<TlsInfo>,
}

/// Detection state for one open TCP port.
#[derive(Debug)]
pub struct Detector<'a> {
    db: &'a ProbeDb,
    port: u16,
    opts: DetectOptions,
    order: Vec<&'a Probe>,
    next: usize,
    hard: Option<(Detection, Vec<u8>)>,
    soft: Option<(Detection, Vec<u8>)>,
    tls: Option<TlsInfo>,
    null_banner: Option<Vec<u8>>,
    first_answer: Option<(String, Vec<u8>)>,
}

impl<'a> Detector<'a> {
    /// Plans detection for `port` with the probes of `db`.
    pub fn new(db: &'a ProbeDb, port: u16, opts: DetectOptions) -> Detector<'a> {
        let tcp: Vec<&Probe> = db
            .probes
            .iter()
            .filter(|p| p.transport == Protocol::Tcp)
            .collect();
        let tls_port = db.port_service(port, Protocol::Tcp).is_some_and(|s| s.tls);
        let mut order: Vec<&Probe> = Vec::new();
        let push = |p: &'a Probe, order: &mut Vec<&'a Probe>| {
            if !order.iter().any(|q| std::ptr::eq(*q, p)) {
                order.push(p);
            }
        };
        if tls_port {
            for p in tcp.iter().filter(|p| p.kind == ProbeKind::TlsHello) {
                push(p, &mut order);
            }
        }
        for p in tcp.iter().filter(|p| p.name == "NULL") {
            push(p, &mut order);
        }
        for p in tcp.iter().filter(|p| p.ports.contains(port)) {
            push(p, &mut order);
        }
        for p in tcp.iter().filter(|p| p.rarity <= opts.intensity) {
            push(p, &mut order);
        }
        Detector {
            db,
            port,
            opts,
            order,
            next: 0,
            hard: None,
            soft: None,
            tls: None,
            null_banner: None,
            first_answer: None,
        }
    }

    /// Names of the probes still planned, in order (for tests and debugging).
    pub fn plan(&self) -> Vec<&'a str> {
        self.order[self.next..]
            .iter()
            .map(|p| p.name.as_str())
            .collect()
    }

    /// The next probe to send, or `None` when detection is over.
    pub fn next_probe(&mut self) -> Option<NextProbe<'a>> {
        if self.hard.is_some() {
            return None;
        }
        let probe = *self.order.get(self.next)?;
        self.next += 1;
        let payload = match probe.kind {
            ProbeKind::TlsHello => {
                let mut random = [0u8; 32];
                for (i, b) in random.iter_mut().enumerate() {
                    *b = (i as u8).wrapping_mul(37) ^ (self.port as u8);
                }
                Cow::Owned(tls::client_hello(random, None))
            }
            ProbeKind::Plain => Cow::Borrowed(probe.payload.as_slice()),
        };
        let wait = if probe.name == "NULL" {
            self.opts.null_wait.unwrap_or(probe.wait)
        } else {
            self.opts.probe_wait.unwrap_or(probe.wait)
        };
        Some(NextProbe {
            probe,
            payload,
            wait,
        })
    }

    /// Feeds what `probe` has drawn so far (the whole answer, not a delta). `complete` is
    /// true when no more will come (wait over, peer closed, buffer full). Returns true
    /// when this answer settles detection, so the driver can stop reading.
    pub fn feed(&mut self, probe: &'a Probe, response: &[u8], complete: bool) -> bool {
        if probe.kind == ProbeKind::TlsHello {
            match tls::read_flight(response) {
                Flight::Done(info) => {
                    let name = self
                        .db
                        .port_service(self.port, Protocol::Tcp)
                        .filter(|s| s.tls)
                        .map(|s| s.name.clone())
                        .unwrap_or_else(|| "ssl".to_string());
                    let d = Detection {
                        service: name,
                        info: info.summary(),
                        confidence: CONF_TLS,
                        probe: probe.name.clone(),
                        method: "probe",
                        ..Default::default()
                    };
                    self.tls = Some(info);
                    self.hard = Some((d, response.to_vec()));
                    return true;
                }
                Flight::Incomplete(info) if complete && info.version != 0 => {
                    return self.feed_tls_partial(probe, info, response);
                }
                Flight::Incomplete(_) if !complete => return false,
                _ => {} // not TLS: maybe a plain-text service answered; match below
            }
        }
        if let Some(d) = self.db.match_response(probe, response) {
            if !d.soft {
                self.hard = Some((d, response.to_vec()));
                return true;
            }
            if complete && self.soft.is_none() {
                let service = d.service.clone();
                self.soft = Some((d, response.to_vec()));
                // only probes that can still name a product for this service
                let keep: Vec<&'a Probe> = self.order[self.next..]
                    .iter()
                    .copied()
                    .filter(|p| {
                        p.matches.iter().any(|m| !m.soft && m.service == service)
                            || p.fallback.iter().any(|f| {
                                self.db.probe(f, Protocol::Tcp).is_some_and(|fp| {
                                    fp.matches.iter().any(|m| !m.soft && m.service == service)
                                })
                            })
                    })
                    .collect();
                self.order.truncate(self.next);
                self.order.extend(keep);
            }
        }
        if complete && !response.is_empty() {
            if probe.name == "NULL" {
                self.null_banner.get_or_insert_with(|| response.to_vec());
            } else if self.first_answer.is_none() {
                self.first_answer = Some((probe.name.clone(), response.to_vec()));
            }
        }
        false
    }

    fn feed_tls_partial(&mut self, probe: &'a Probe, info: TlsInfo, response: &[u8]) -> bool {
        let d = Detection {
            service: "ssl".into(),
            info: info.summary(),
            confidence: CONF_TLS,
            probe: probe.name.clone(),
            method: "probe",
            ..Default::default()
        };
        self.tls = Some(info);
        self.hard = Some((d, response.to_vec()));
        true
    }

    /// Whether a passive read already drew bytes (the driver then opens a fresh
    /// connection for the next probe instead of reusing the first).
    pub fn null_answered(&self) -> bool {
        self.null_banner.is_some()
    }

    /// The verdict: the hard match, else the soft match, else the port-table guess.
    pub fn finish(self) -> Outcome {
        let mut banners = Vec::new();
        if let Some(b) = &self.null_banner {
            banners.push(("NULL".to_string(), b.clone()));
        }
        let decided = self.hard.or(self.soft);
        let detection = match decided {
            Some((d, bytes)) => {
                let already_logged = d.probe == "NULL" && self.null_banner.is_some();
                // a TLS handshake is binary and summarised in the detection's info
                let tls = self
                    .db
                    .probe(&d.probe, Protocol::Tcp)
                    .is_some_and(|p| p.kind == ProbeKind::TlsHello);
                if !bytes.is_empty() && !already_logged && !tls {
                    banners.push((d.probe.clone(), bytes));
                }
                Some(d)
            }
            None => {
                if let Some(a) = self.first_answer {
                    if banners.is_empty() {
                        banners.push(a);
                    }
                }
                self.db
                    .port_service(self.port, Protocol::Tcp)
                    .map(|s| Detection {
                        service: s.name.clone(),
                        confidence: CONF_PORT_TABLE,
                        method: "port-table",
                        ..Default::default()
                    })
            }
        };
        Outcome {
            detection,
            banners,
            tls: self.tls,
        }
    }
}
