//! `--service-probes FILE`: a handcrafted file in nmap's syntax is loaded, merged after
//! the built-in database, and used by detection over io_uring against local servers:
//! a server only the file knows (passive banner) and one that answers only the file's
//! own probe. Rules the regex crate cannot run (back-references, look-around) run on
//! PCRE2, so nmap's own `nmap-service-probes` loads whole.

use prtip_engine::connect::grab::{self, GrabOptions};
use prtip_services::{DetectOptions, ProbeDb, Protocol};
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
    assert!(user.skipped.is_empty(), "{:?}", user.skipped);
    // Line 11 `^(\w+) \1` needs a back-reference: it loads and matches a repeated word.
    let null = user.probe("NULL", Protocol::Tcp).unwrap();
    let twice = null.matches.iter().find(|m| m.line == 11).unwrap();
    assert!(twice.pattern.is_pcre());
    let d = user
        .match_response(
            null,
            b"hey hey
",
        )
        .unwrap();
    assert_eq!(
        (d.service.as_str(), d.product.as_str()),
        ("echo-twice", "Echo twice")
    );
    assert!(user
        .match_response(
            null,
            b"hey you
"
        )
        .is_none());
    let mut db = ProbeDb::builtin();
    let builtin_null_rules = db.probe("NULL", Protocol::Tcp).unwrap().matches.len();
    db.merge(user);
    // NULL's rules were appended to ours; the new probe was added
    assert_eq!(
        db.probe("NULL", Protocol::Tcp).unwrap().matches.len(),
        builtin_null_rules + 2
    );
    let hello = db.probe("HelloProbe", Protocol::Tcp).unwrap();
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

/// nmap's own database, as Debian's nmap package installs it.
const NMAP_PROBES: &str = "/usr/share/nmap/nmap-service-probes";

#[test]
fn nmaps_own_database_loads_whole() {
    let path = Path::new(NMAP_PROBES);
    assert!(
        path.exists(),
        "{NMAP_PROBES} is missing: install Debian's nmap package (./dev deps does)"
    );
    let db = ProbeDb::load_file(path).unwrap();
    assert!(
        db.skipped.is_empty(),
        "{} rules skipped, first {:?}",
        db.skipped.len(),
        db.skipped.first()
    );
    // Every match/softmatch line of the file is a rule.
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    let lines = text
        .lines()
        .filter(|l| l.starts_with("match ") || l.starts_with("softmatch "))
        .count();
    let rules: usize = db.probes.iter().map(|p| p.matches.len()).sum();
    assert_eq!(rules, lines);
    // Most rules stay on the regex crate; PCRE2 only takes what needs it.
    let pcre = db
        .probes
        .iter()
        .flat_map(|p| &p.matches)
        .filter(|m| m.pattern.is_pcre())
        .count();
    assert!(pcre > 0 && pcre * 4 < rules, "{pcre} of {rules} on PCRE2");

    // A back-reference rule of nmap's: CommuniGate's POP3 greeting repeats the host
    // name in its APOP timestamp (`<[\d.]+@\1>`).
    let null = db.probe("NULL", Protocol::Tcp).unwrap();
    let greeting =
        b"+OK mail.lab.test CommuniGate Pro POP3 Server 6.3.1 ready <1.2@mail.lab.test>\r\n";
    let d = db.match_response(null, greeting).unwrap();
    assert_eq!(
        (
            d.service.as_str(),
            d.product.as_str(),
            d.version.as_str(),
            d.hostname.as_str()
        ),
        ("pop3", "CommuniGate Pro pop3d", "6.3.1", "mail.lab.test")
    );
    // A different host after the @ is not that rule's match.
    let other = b"+OK mail.lab.test CommuniGate Pro POP3 Server 6.3.1 ready <1.2@elsewhere>\r\n";
    assert_ne!(
        db.match_response(null, other).map(|d| d.product),
        Some("CommuniGate Pro pop3d".to_string())
    );
}
