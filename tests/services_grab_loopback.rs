//! Service detection over io_uring against small servers on 127.0.0.1 that speak like
//! real ones: an SSH server that speaks first, an HTTP server that waits for a request,
//! a Redis server that answers INFO, a TLS server that sends its certificate, a server
//! that says nothing, and one that closes at once. Checks the Service and Banner events
//! exactly, and that `-sV` can follow a connect scan through the OpenPorts tee.

use prtip_engine::connect::grab::{self, GrabOptions, OpenPorts};
use prtip_engine::connect::{self, ConnectOptions, Job};
use prtip_services::{DetectOptions, ProbeDb};
use prtip_store::event::{Event, Service};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::Duration;

const CERT: &[u8] = include_bytes!("data/services-test-cert.der");

#[derive(Clone, Copy)]
enum Kind {
    Ssh,
    Http,
    Redis,
    Tls,
    Silent,
    Closer,
}

fn tls_flight() -> Vec<u8> {
    fn hs(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(body);
        v
    }
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[9; 32]);
    sh.extend_from_slice(&[0, 0x00, 0x9c, 0]);
    let mut certs = Vec::new();
    certs.extend_from_slice(&((CERT.len() + 3) as u32).to_be_bytes()[1..]);
    certs.extend_from_slice(&(CERT.len() as u32).to_be_bytes()[1..]);
    certs.extend_from_slice(CERT);
    let body = [hs(2, &sh), hs(11, &certs), hs(14, &[])].concat();
    let mut rec = vec![0x16, 3, 3];
    rec.extend_from_slice(&(body.len() as u16).to_be_bytes());
    rec.extend_from_slice(&body);
    rec
}

fn serve(mut s: TcpStream, kind: Kind) {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    match kind {
        Kind::Ssh => {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
        }
        Kind::Closer => return,
        _ => {}
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let reply: Option<Vec<u8>> = match kind {
            Kind::Http if buf.windows(4).any(|w| w == b"\r\n\r\n") => {
                if buf.starts_with(b"GET ") {
                    Some(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec())
                } else {
                    Some(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec())
                }
            }
            Kind::Http if buf.len() > 4 && !buf.starts_with(b"GET") => {
                return; // junk (a ClientHello): nginx would answer 400 and close
            }
            Kind::Redis if buf.ends_with(b"\r\n") => {
                if buf == b"*1\r\n$4\r\nINFO\r\n" {
                    let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
                    Some(format!("${}\r\n{}\r\n", info.len(), info).into_bytes())
                } else {
                    Some(b"-ERR unknown command\r\n".to_vec())
                }
            }
            Kind::Tls if buf.len() >= 5 && buf[0] == 0x16 => Some(tls_flight()),
            Kind::Tls if !buf.is_empty() => return,
            _ => None,
        };
        if let Some(r) = reply {
            let _ = s.write_all(&r);
            if matches!(kind, Kind::Http | Kind::Tls) {
                return;
            }
            buf.clear();
        }
    }
}

fn server(kind: Kind) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || serve(s, kind));
        }
    });
    a
}

fn fast() -> GrabOptions {
    GrabOptions {
        detect: DetectOptions {
            null_wait: Some(Duration::from_millis(400)),
            probe_wait: Some(Duration::from_millis(600)),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn services(events: &[Event]) -> Vec<Service> {
    let mut v: Vec<Service> = events
        .iter()
        .filter_map(|e| match e {
            Event::Service(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    v.sort_by_key(|s| s.port);
    v
}

fn banners(events: &[Event], port: u16) -> Vec<(String, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Banner(b) if b.port == port => Some((b.probe.clone(), b.bytes.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn detects_services_of_local_servers() {
    let ssh = server(Kind::Ssh);
    let http = server(Kind::Http);
    let redis = server(Kind::Redis);
    let tls = server(Kind::Tls);
    let silent = server(Kind::Silent);
    let closer = server(Kind::Closer);
    let db = ProbeDb::builtin();
    let mut events: Vec<Event> = Vec::new();
    let report = grab::detect(
        &mut [ssh, http, redis, tls, silent, closer].into_iter(),
        &db,
        &fast(),
        &mut events,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(report.ports, 6);
    let by_port = |a: SocketAddr| services(&events).into_iter().find(|s| s.port == a.port());

    let s = by_port(ssh).expect("ssh identified");
    assert_eq!(
        (
            s.name.as_str(),
            s.product.as_str(),
            s.version.as_str(),
            s.extra.as_str()
        ),
        (
            "ssh",
            "OpenSSH",
            "9.2p1 Debian 2+deb12u3",
            "protocol 2.0; OS: Linux"
        )
    );
    assert_eq!((s.confidence, s.method.as_str()), (1.0, "banner"));
    assert_eq!(
        banners(&events, ssh.port()),
        vec![(
            "NULL".to_string(),
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".to_vec()
        )]
    );

    let s = by_port(http).expect("http identified");
    assert_eq!(
        (
            s.name.as_str(),
            s.product.as_str(),
            s.version.as_str(),
            s.method.as_str()
        ),
        ("http", "nginx", "1.22.1", "probe")
    );
    let b = banners(&events, http.port());
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].0, "GetRequest");
    assert!(b[0]
        .1
        .starts_with(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1"));

    let s = by_port(redis).expect("redis identified");
    assert_eq!(
        (
            s.name.as_str(),
            s.product.as_str(),
            s.version.as_str(),
            s.extra.as_str()
        ),
        (
            "redis",
            "Redis key-value store",
            "7.0.15",
            "mode standalone"
        )
    );

    let s = by_port(tls).expect("tls identified");
    assert_eq!((s.name.as_str(), s.confidence), ("ssl", 0.8));
    assert!(
        s.extra.starts_with("TLSv1.2; subject: CN=grab.prtip.test, O=prtip tests; SAN: grab.prtip.test; issuer: CN=grab.prtip.test, O=prtip tests; not after: 2126-"),
        "{}",
        s.extra
    );

    // nothing to say and no port-table entry for a random port: no Service event
    assert!(by_port(silent).is_none());
    assert!(by_port(closer).is_none());
    assert!(banners(&events, silent.port()).is_empty());
    assert_eq!(report.identified, 4);
    assert_eq!(report.hard, 4);
}

#[test]
fn service_detection_follows_a_connect_scan() {
    let ssh = server(Kind::Ssh);
    let redis = server(Kind::Redis);
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut log: Vec<Event> = Vec::new();
    let open = {
        let mut tee = OpenPorts::new(&mut log);
        let mut jobs = [ssh, closed, redis]
            .into_iter()
            .enumerate()
            .map(|(i, addr)| Job {
                position: i as u64,
                addr,
            });
        connect::scan(
            &mut jobs,
            &ConnectOptions::default(),
            &mut tee,
            &AtomicBool::new(false),
        )
        .unwrap();
        tee.take_sorted()
    };
    let mut want = vec![ssh, redis];
    want.sort();
    assert_eq!(open, want);
    let db = ProbeDb::builtin();
    grab::detect(
        &mut open.into_iter(),
        &db,
        &fast(),
        &mut log,
        &AtomicBool::new(false),
    )
    .unwrap();
    let names: Vec<(u16, String)> = services(&log)
        .into_iter()
        .map(|s| (s.port, s.name))
        .collect();
    let mut want = vec![
        (ssh.port(), "ssh".to_string()),
        (redis.port(), "redis".to_string()),
    ];
    want.sort();
    assert_eq!(names, want);
    // the Reply events came first, then the services
    let first_service = log
        .iter()
        .position(|e| matches!(e, Event::Service(_)))
        .unwrap();
    assert!(
        log[..first_service]
            .iter()
            .filter(|e| matches!(e, Event::Reply(_)))
            .count()
            == 3
    );
}
