//! `--service-probes FILE`: a handcrafted file in nmap's syntax is loaded, merged after
//! the built-in database, and used by detection over io_uring against local servers:
//! a server only the file knows (passive banner) and one that answers only the file's
//! own probe. Rules the regex engine cannot run are listed, not fatal.

use prtip_engine::connect::grab::{self, GrabOptions};
use prtip_services::{DetectOptions, ProbeDb, Transport};
use prtip_store::event::Event;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::Duration;

fn server(
    greeting: Option<&'static [u8]>,
    answer: Option<(&'static [u8], &'static [u8])>,
) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            thread::spawn(move || {
                if let Some(g) = greeting {
                    let _ = s.write_all(g);
                }
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut buf = [0u8; 256];
                if let (Ok(n), Some((q, r))) = (s.read(&mut buf), answer) {
                    if &buf[..n] == q {
                        let _ = s.write_all(r);
                    }
                }
            });
        }
    });
    a
}

#[test]
fn a_handcrafted_nmap_file_extends_detection() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/handcrafted-nmap-service-probes");
    let user = ProbeDb::load_file(&path).unwrap();
    assert_eq!(user.skipped.len(), 1, "the back-reference rule is skipped");
    assert_eq!(user.skipped[0].line, 11);
    assert!(user.skipped[0].why.contains("back-references"));
    let mut db = ProbeDb::builtin();
    let builtin_null_rules = db.probe("NULL", Transport::Tcp).unwrap().matches.len();
    db.merge(user);
    // NULL's rules were appended to ours; the new probe was added
    assert_eq!(
        db.probe("NULL", Transport::Tcp).unwrap().matches.len(),
        builtin_null_rules + 1
    );
    let hello = db.probe("HelloProbe", Transport::Tcp).unwrap();
    assert_eq!(hello.payload, b"HELLO\r\n");

    let quux = server(Some(b"QUUX 2.4.1 ready (eu-west)\r\n"), None);
    let hi = server(None, Some((b"HELLO\r\n", b"hi lab.test/1.0.3\r\n")));
    // the probe's ports= names 7777; our server is elsewhere, so let its rarity admit it
    let opts = GrabOptions {
        detect: DetectOptions {
            intensity: 3,
            null_wait: Some(Duration::from_millis(300)),
            probe_wait: Some(Duration::from_millis(500)),
        },
        ..Default::default()
    };
    let mut events: Vec<Event> = Vec::new();
    grab::detect(
        &mut [quux, hi].into_iter(),
        &db,
        &opts,
        &mut events,
        &AtomicBool::new(false),
    )
    .unwrap();
    let svc = |a: SocketAddr| {
        events
            .iter()
            .find_map(|e| match e {
                Event::Service(s) if s.port == a.port() => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no service for {a}"))
    };
    let s = svc(quux);
    assert_eq!(
        (
            s.name.as_str(),
            s.product.as_str(),
            s.version.as_str(),
            s.extra.as_str(),
            s.method.as_str()
        ),
        ("quux-db", "Quux DB", "2.4.1", "cluster eu-west", "banner")
    );
    let s = svc(hi);
    assert_eq!(
        (
            s.name.as_str(),
            s.product.as_str(),
            s.version.as_str(),
            s.method.as_str()
        ),
        ("hello-server", "lab.test", "1.0.3", "probe")
    );
    assert_eq!(s.confidence, 1.0);
}

#[test]
fn a_bad_file_names_the_line() {
    let dir = std::env::temp_dir().join(format!("prtip-probes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad");
    std::fs::write(&f, "Probe TCP NULL q||\nmatch ssh m|^SSH-| p/OpenSSH\n").unwrap();
    let e = ProbeDb::load_file(&f).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}:2: field p is not closed by '/'", f.display())
    );
    let e = ProbeDb::load_file(&dir.join("missing"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot read service probe file") && e.contains("missing"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
