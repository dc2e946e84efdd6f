//! The io_uring UDP scan against 127.0.0.1: a DNS server answering `version.bind`
//! (open, and named by -sV), a port nobody listens on (ICMP port unreachable →
//! closed), and a bound socket that never answers (open|filtered after the retries).

use prtip_engine::connect::Job;
use prtip_engine::udp::{self, UdpOptions};
use prtip_services::ProbeDb;
use prtip_store::event::{Event, PortState, Reason};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::Duration;

const BIND: &[u8] = b"9.18.28-1~deb12u2-Debian";

/// Answers a DNS query with one TXT record in class CH holding BIND's version.
fn dns_server() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = s.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut r = buf[..n].to_vec();
            r[2] = 0x85; // QR, AA, RD
            r[3] = 0x80; // RA, NOERROR
            r[7] = 1; // one answer
            r.extend_from_slice(b"\xc0\x0c\x00\x10\x00\x03\x00\x00\x00\x00");
            r.extend_from_slice(&((BIND.len() + 1) as u16).to_be_bytes());
            r.push(BIND.len() as u8);
            r.extend_from_slice(BIND);
            let _ = s.send_to(&r, peer);
        }
    });
    a
}

fn replies(events: &[Event]) -> Vec<(u16, PortState, Reason, u8)> {
    let mut v: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reply(r) => Some((r.port, r.state, r.reason, r.icmp_code)),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[test]
fn open_closed_and_open_filtered_on_loopback() {
    let dns = dns_server();
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap(); // dropped: nobody listens
    let silent_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = silent_sock.local_addr().unwrap();
    // the DNS payload goes to the test server's port as it would to 53
    let mut db = ProbeDb::builtin();
    db.probes
        .iter_mut()
        .find(|p| p.name == "DNSVersionBind")
        .unwrap()
        .ports
        .0
        .push((dns.port(), dns.port()));
    let opts = UdpOptions {
        timeout: Duration::from_millis(300),
        max_retries: 1,
        service_detection: true,
        ..Default::default()
    };
    let mut jobs = [dns, closed, silent]
        .into_iter()
        .enumerate()
        .map(|(i, addr)| Job {
            position: i as u64,
            addr,
        });
    let mut events: Vec<Event> = Vec::new();
    let report = udp::scan(&mut jobs, &db, &opts, &mut events, &AtomicBool::new(false)).unwrap();
    let mut want = vec![
        (dns.port(), PortState::Open, Reason::UdpResponse, 0),
        (closed.port(), PortState::Closed, Reason::PortUnreachable, 3),
        (
            silent.port(),
            PortState::OpenFiltered,
            Reason::NoResponse,
            0,
        ),
    ];
    want.sort();
    assert_eq!(replies(&events), want);
    // one datagram each, plus one retry for the silent port
    assert_eq!(report.counters.sent, 4);
    assert_eq!(report.open_filtered, 1);
    assert_eq!(report.next_position, 3);
    let svc: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Service(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(svc.len(), 1);
    assert_eq!(
        (
            svc[0].port,
            svc[0].name.as_str(),
            svc[0].product.as_str(),
            svc[0].version.as_str()
        ),
        (dns.port(), "domain", "ISC BIND", "9.18.28-1~deb12u2-Debian")
    );
    let banner = events
        .iter()
        .find_map(|e| match e {
            Event::Banner(b) => Some(b.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(banner.probe, "DNSVersionBind");
    assert!(banner.bytes.ends_with(BIND));
    drop(silent_sock);
}

#[test]
fn error_queue_reports_the_icmp_type_and_code() {
    // a connected UDP socket with IP_RECVERR, sent to a closed port: the kernel queues
    // the ICMP port unreachable (type 3, code 3) on the socket's error queue
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let one: libc::c_int = 1;
    use std::os::fd::AsRawFd;
    // SAFETY: valid fd and option buffer for the call.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_IP,
            libc::IP_RECVERR,
            &one as *const _ as *const libc::c_void,
            4,
        )
    };
    assert_eq!(r, 0);
    s.connect(closed).unwrap();
    s.send(b"x").unwrap();
    let mut got = None;
    for _ in 0..100 {
        got = udp::read_error_queue(s.as_raw_fd());
        if got.is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let e = got.expect("an ICMP error was queued");
    assert_eq!(
        (e.errno, e.icmp_type, e.icmp_code),
        (libc::ECONNREFUSED, 3, 3)
    );
}
