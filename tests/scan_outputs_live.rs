//! Issue 17: a scan's outputs while it runs and when it ends, on loopback
//! (`-sT`, no lab, no privilege).
//!
//! - `-oJ`, `--csv`, `-oG` and `-oN` files get rows as replies arrive (seen while
//!   the scan is held in place, so it cannot have ended), and once the scan ends
//!   each file equals what `prtip export` writes for it — with `-sV` (services
//!   come after the port rows), and for a scan paused during `-sV` and resumed.
//! - `-oJ -` puts JSON lines only on stdout; everything else goes to stderr.
//! - Two outputs on `-` are bad input (exit 2, both options named, nothing made).
//! - `--open` (scan and export) keeps open (and open|filtered) ports only.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Listener {
    port: u16,
    accepted: Arc<AtomicU64>,
}

/// Accepts, counts and keeps every connection; greets with `banner` if any.
fn serve(l: TcpListener, banner: Option<&'static [u8]>) -> Listener {
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    let kept: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            count.fetch_add(1, SeqCst);
            if let Some(b) = banner {
                let _ = s.write_all(b);
            }
            kept.lock().unwrap().push(s);
        }
    });
    Listener { port, accepted }
}

/// An ssh-speaking port below two silent ones (detection, one port at a time,
/// takes them in this order), and a closed port.
fn ports() -> (Listener, Listener, Listener, u16) {
    let mut bound: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    bound.sort_by_key(|l| l.local_addr().unwrap().port());
    let closed = bound.pop().unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut it = bound.into_iter();
    let a = serve(
        it.next().unwrap(),
        Some(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
    );
    let b = serve(it.next().unwrap(), None);
    let c = serve(it.next().unwrap(), None);
    (a, b, c, closed_port)
}

fn prtip_in(home: &Path) -> Command {
    let mut c = common::prtip();
    c.env("PRTIP_HOME", home).env_remove("PRTIP_HISTORY");
    c
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn export(home: &Path, format: &str, extra: &[&str]) -> String {
    let out = prtip_in(home)
        .args(["export", "1", "-f", format])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export -f {format}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn ok(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sv_args(ports: &str) -> Vec<&str> {
    vec![
        "scan",
        "-sT",
        "-sV",
        "127.0.0.1",
        "-p",
        ports,
        "--max-parallelism",
        "1",
        "--version-intensity",
        "0",
        "--version-wait",
        "1500ms",
    ]
}

/// The four formats as files: streamed while held in -sV, equal to the
/// exports at the end.
#[test]
fn files_stream_rows_and_end_equal_to_the_export() {
    let (a, b, _c, closed) = ports();
    let list = format!("{},{},{},{closed}", a.port, b.port, _c.port);
    let home = tempfile::tempdir().unwrap();
    let f = |n: &str| home.path().join(n);
    let (json, csv, grep, normal) = (f("o.json"), f("o.csv"), f("o.gnmap"), f("o.nmap"));
    let mut args = sv_args(&list);
    let paths: Vec<String> = [&json, &csv, &grep, &normal]
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    args.extend([
        "--quiet", "-oJ", &paths[0], "--csv", &paths[1], "-oG", &paths[2], "-oN", &paths[3],
    ]);
    let child = prtip_in(home.path())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Detection has reached port b: the port scan's rows were all pushed. Hold
    // the scan in place: it cannot end until released.
    wait_for("detection at b", || b.accepted.load(SeqCst) >= 2);
    signal(&child, libc::SIGUSR1);
    let row_of_a = format!("\"port\":{},\"proto\":\"tcp\",\"state\":\"open\"", a.port);
    wait_for("a's row in the -oJ file during the scan", || {
        text(&json).contains(&row_of_a)
    });
    wait_for("the closed row in --csv during the scan", || {
        text(&csv).contains(&format!("127.0.0.1,{closed},tcp,closed"))
    });
    assert!(
        text(&csv).starts_with("IP,Port,Protocol,State"),
        "{}",
        text(&csv)
    );
    wait_for("a in -oG during the scan", || {
        text(&grep).contains(&format!("{}/open/tcp//", a.port))
    });
    wait_for("Discovered in -oN during the scan", || {
        text(&normal).contains(&format!("Discovered open port {}/tcp on 127.0.0.1", a.port))
    });
    // a's service (ssh) was found before b started: its second line has it.
    wait_for("a's service line", || {
        text(&json).contains("\"service\":\"ssh\"")
    });
    signal(&child, libc::SIGUSR2);
    let out = child.wait_with_output().unwrap();
    let (o, e) = ok(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    for (path, format) in [
        (&json, "json"),
        (&csv, "csv"),
        (&grep, "grep"),
        (&normal, "text"),
    ] {
        assert_eq!(
            text(path),
            export(home.path(), format, &[]),
            "{format} file differs from prtip export"
        );
    }
    assert!(text(&json).contains("\"service\":\"ssh\""));
    assert!(
        !text(&normal).contains("Discovered"),
        "the report replaced the stream"
    );
}

/// A scan paused during -sV, and its resume: the files equal the exports each time.
#[test]
fn paused_and_resumed_files_equal_the_export() {
    let (a, b, c, closed) = ports();
    let list = format!("{},{},{},{closed}", a.port, b.port, c.port);
    let home = tempfile::tempdir().unwrap();
    let json = home.path().join("p.json");
    let grep = home.path().join("p.gnmap");
    let mut args = sv_args(&list);
    args.extend([
        "--quiet",
        "-oJ",
        json.to_str().unwrap(),
        "-oG",
        grep.to_str().unwrap(),
    ]);
    let child = prtip_in(home.path())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("detection at b", || b.accepted.load(SeqCst) >= 2);
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let (o, e) = ok(&out);
    assert_eq!(out.status.code(), Some(75), "{o}\n{e}");
    assert_eq!(text(&json), export(home.path(), "json", &[]));
    assert!(
        text(&json).contains("\"status\":\"paused\""),
        "{}",
        text(&json)
    );
    assert_eq!(text(&grep), export(home.path(), "grep", &[]));
    let out = prtip_in(home.path())
        .args(["replay", "1", "--from-checkpoint", "--quiet"])
        .output()
        .unwrap();
    let (o, e) = ok(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    assert_eq!(text(&json), export(home.path(), "json", &[]));
    assert!(!text(&json).contains("\"status\":\"paused\""));
    assert_eq!(text(&grep), export(home.path(), "grep", &[]));
}

/// `-oJ -`: JSON lines only on stdout (rows as they come, the banner and the
/// service as later lines for their port); the summary and the rest on stderr.
#[test]
fn json_on_stdout_alone() {
    let (a, _b, _c, closed) = ports();
    let list = format!("{},{closed}", a.port);
    let home = tempfile::tempdir().unwrap();
    let mut args = sv_args(&list);
    args.extend(["-oJ", "-"]);
    let out = prtip_in(home.path()).args(&args).output().unwrap();
    let (o, e) = ok(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    let lines: Vec<serde_json::Value> = o
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?}\n{o}")))
        .collect();
    let of_a: Vec<&serde_json::Value> = lines.iter().filter(|v| v["port"] == a.port).collect();
    // a's row, again with its banner, again with its service: the last is the export's.
    assert_eq!(of_a.len(), 3, "{o}");
    assert_eq!(of_a[0]["state"], "open");
    assert!(
        of_a[0]["service"].is_null() && of_a[0]["banner"].is_null(),
        "{o}"
    );
    assert!(
        of_a[1]["banner"]
            .as_str()
            .is_some_and(|b| b.starts_with("SSH-2.0")),
        "{o}"
    );
    assert_eq!(of_a[2]["service"], "ssh");
    let export = export(home.path(), "json", &[]);
    let line = export
        .lines()
        .find(|l| l.contains(&format!("\"port\":{},", a.port)))
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(line).unwrap(),
        *of_a[2],
        "the last line of a port is its export line"
    );
    assert!(lines
        .iter()
        .any(|v| v["port"] == closed && v["state"] == "closed"));
    assert!(e.contains("Discovered open port"), "{e}");
    assert!(e.contains("prtip done"), "{e}");
    assert!(e.contains("PORT"), "the report goes to stderr: {e}");
}

#[test]
fn two_outputs_on_stdout_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let out = prtip_in(home.path())
        .args([
            "scan",
            "-sT",
            "127.0.0.1",
            "-p",
            "1",
            "-oJ",
            "-",
            "-oX",
            "-",
        ])
        .output()
        .unwrap();
    let (o, e) = ok(&out);
    assert_eq!(out.status.code(), Some(2), "{o}\n{e}");
    assert!(e.contains("-oX -") && e.contains("-oJ -"), "{e}");
    assert!(e.contains("only one output may be `-`"), "{e}");
    assert!(!home.path().join("scans").exists(), "nothing may be made");
}

/// `--open`: the printed report, the files and `prtip export --open` keep open ports.
#[test]
fn open_keeps_open_ports_everywhere() {
    let a = serve(TcpListener::bind("127.0.0.1:0").unwrap(), None);
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let list = format!("{},{closed}", a.port);
    let home = tempfile::tempdir().unwrap();
    let json = home.path().join("o.json");
    let out = prtip_in(home.path())
        .args(["scan", "-sT", "127.0.0.1", "-p", &list, "--open", "-oJ"])
        .arg(&json)
        .output()
        .unwrap();
    let (o, e) = ok(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    assert!(o.contains(&format!("{}/tcp open", a.port)), "{o}");
    assert!(
        !o.contains(&format!("{closed}/tcp")),
        "--open printed the closed port: {o}"
    );
    let file = text(&json);
    assert_eq!(file.lines().count(), 1, "{file}");
    assert!(file.contains(&format!("\"port\":{}", a.port)), "{file}");
    // The log has both; `prtip export --open` keeps the open one.
    let all = export(home.path(), "csv", &[]);
    assert!(all.contains(&format!(",{closed},tcp,closed")), "{all}");
    let open = export(home.path(), "csv", &["--open"]);
    assert!(!open.contains(&format!(",{closed},")), "{open}");
    assert!(open.contains(&format!(",{},tcp,open", a.port)), "{open}");
    let both = export(home.path(), "csv", &["--open", "--filter", "port 1"]);
    assert_eq!(
        both.lines().count(),
        1,
        "--open and --filter both apply: {both}"
    );
}

/// `-oX -`: the XML document alone on stdout (written whole at the end).
#[test]
fn xml_on_stdout_alone() {
    let a = serve(TcpListener::bind("127.0.0.1:0").unwrap(), None);
    let home = tempfile::tempdir().unwrap();
    let out = prtip_in(home.path())
        .args([
            "scan",
            "-sT",
            "127.0.0.1",
            "-p",
            &a.port.to_string(),
            "-oX",
            "-",
        ])
        .output()
        .unwrap();
    let (o, e) = ok(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    assert!(o.starts_with("<?xml"), "{o}");
    assert!(o.trim_end().ends_with("</nmaprun>"), "{o}");
    let port = format!("<port protocol=\"tcp\" portid=\"{}\">", a.port);
    assert!(o.contains(&port), "{o}");
    assert!(
        e.contains("Discovered open port") && e.contains("prtip done"),
        "{e}"
    );
}
