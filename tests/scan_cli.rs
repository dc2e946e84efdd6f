//! `prtip scan` and `prtip replay` as a user runs them: bad input (exit 2, nothing
//! written), no CAP_NET_RAW, pause with SIGINT and resume, a second SIGINT, hold and
//! continue in place (SIGUSR1/SIGUSR2), and crash safety: SIGKILL at 22 random
//! moments, each followed by `prtip replay --from-checkpoint`, ending with results
//! equal to the lab's ground truth. Lab tests need root.

mod common;

use common::{log_results, scan_cmd, scan_dir};

use prtip_store::{EventRef, HistoryIndex, LogReader, ScanStatus};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const OPEN: [u16; 2] = [80, 8080];

fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn prtip_in(home: &Path) -> Command {
    let mut c = common::prtip();
    c.env("PRTIP_HOME", home).env_remove("PRTIP_HISTORY");
    c
}

fn lab() -> prtip_lab::LabGuard {
    common::lab_with(prtip_lab::LabConfig {
        tcp_ports: OPEN.to_vec(),
        ..common::lab_config("pes")
    })
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

fn truth(base: Ipv4Addr, prefix: u8, ports: &[u16]) -> common::PortResults {
    common::tcp_truth(base, prefix, ports, &OPEN)
}

fn status(home: &Path, id: u64) -> ScanStatus {
    let h = HistoryIndex::open(&home.join("history.redb")).unwrap();
    let _ = h.refresh();
    h.get(id).unwrap().unwrap().status
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let h = home();
    let cases: &[(&[&str], &str)] = &[
        (
            &["scan", "10.0.0.300", "-p", "80"],
            "bad target \"10.0.0.300\": octet 300 is above 255",
        ),
        (
            &["scan", "10.0.0.1", "-p", "80,99999"],
            "bad port \"99999\" in -p 80,99999: port 99999 is above 65535",
        ),
        (
            &["scan", "10.0.0.1", "-p", "80", "--rate", "fast"],
            "bad --rate \"fast\"",
        ),
        (
            &["scan", "10.0.0.1", "-p", "80", "--shard", "3/3"],
            "bad --shard \"3/3\"",
        ),
        (
            &["scan", "10.0.0.1", "-p", "80", "-sZ"],
            "unknown scan type -sZ",
        ),
        (
            &["scan", "10.0.0.1", "-p", "80", "--router-mac", "02:70"],
            "bad --router-mac \"02:70\"",
        ),
        (
            &["scan", "-iL", "/nonexistent/list.txt", "-p", "80"],
            "cannot read target list /nonexistent/list.txt",
        ),
        (
            &["scan", "10.0.0.1", "-p", "U:53"],
            "UDP ports (U:) given for a TCP scan",
        ),
        (
            &[
                "scan",
                "10.0.0.1",
                "-p",
                "80",
                "-oX",
                "/nonexistent/dir/out.xml",
            ],
            "directory /nonexistent/dir does not exist",
        ),
        (
            &[
                "scan",
                "10.0.0.0/24",
                "--exclude",
                "10.0.0.0/16",
                "-p",
                "80",
            ],
            "no targets left to scan",
        ),
        (&["scan", "-p", "80"], "no targets given"),
        (
            &["scan", "198.18.0.1", "2001:db8::1", "-p", "80"],
            "a -sS scan sends one address family",
        ),
        (
            &["scan", "-6", "2001:db8::1", "198.18.0.1", "-p", "53"],
            "-6 scans IPv6 targets only, and 198.18.0.1 is IPv4: drop -6, or give IPv6 targets (1 IPv4 given)",
        ),
        (
            &["scan", "-sF", "198.18.0.1", "2001:db8::1", "-p", "80"],
            "a -sF scan sends one address family",
        ),
        (
            &["scan", "-sSA", "198.18.0.1", "-p", "80"],
            "-sA given together with -sS: prtip runs one TCP scan type per scan",
        ),
        (
            &["scan", "-sT", "-sU", "198.18.0.1", "-p", "80"],
            "-sT given together with -sU",
        ),
        (
            &["scan", "-sSQ", "198.18.0.1", "-p", "80"],
            "unknown scan type -sQ (in -sSQ)",
        ),
        (
            &["scan", "-sF", "198.18.0.1", "-p", "80", "--backend", "connect"],
            "--backend connect is the socket path of -sT and -sU; -sF uses packet or xdp",
        ),
        (
            &["scan", "-sU", "198.18.0.1", "-p", "T:80,U:53"],
            "TCP ports (T:) given for -sU",
        ),
        (
            &["replay", "--from-checkpoint"],
            "no paused or interrupted scan to resume",
        ),
    ];
    for (args, msg) in cases {
        let out = prtip_in(h.path()).args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: stderr {err:?} lacks {msg:?}");
        assert!(
            !h.path().join("scans").exists(),
            "{args:?} created a scan directory"
        );
    }
}

#[test]
fn without_cap_net_raw_says_how_to_grant_it() {
    let h = home();
    let out = Command::new("capsh")
        .args(["--drop=cap_net_raw", "--"])
        .arg("-c")
        .arg(format!(
            "exec {} scan 198.19.0.1 -p 80",
            common::prtip_bin().display()
        ))
        .env("PRTIP_HOME", h.path())
        .output()
        .expect("capsh (libcap2-bin)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs CAP_NET_RAW"), "{err}");
    assert!(
        err.contains("setcap cap_net_raw,cap_net_admin+eip"),
        "{err}"
    );
    assert!(err.contains("(-sT) needs no privilege"), "{err}");
    assert!(!h.path().join("scans").exists(), "nothing may be written");
}

#[test]
fn sigint_pauses_and_replay_finishes_with_ground_truth_and_valid_exports() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = lab();
    let h = home();
    let ns = lab.config().scan_ns.clone();
    let xml = h.path().join("out.xml");
    let child = scan_cmd(
        h.path(),
        &ns,
        &[
            "scan",
            "198.19.0.0/18",
            "-p",
            "22,80,443,8080",
            "--rate",
            "15000",
            "--wait",
            "500ms",
            "--quiet",
            "-oX",
            xml.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, libc::SIGINT);
    let out = finish(child);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A paused scan has its own exit status (EX_TEMPFAIL), not 0.
    assert_eq!(
        out.status.code(),
        Some(75),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("% (scan 1) — resume: prtip replay 1 --from-checkpoint"),
        "{stdout}"
    );
    assert!(stdout.starts_with("paused at "), "{stdout}");
    assert_eq!(status(h.path(), 1), ScanStatus::Paused);
    assert!(xml.exists(), "exports are written at the pause too");
    // The log ends with Checkpoint + Paused, at the same index.
    let r = LogReader::open(&scan_dir(h.path(), 1)).unwrap();
    let evs: Vec<_> = r.iter().map(|e| e.unwrap().to_event()).collect();
    // ... Checkpoint, Paused (then the ExportComplete of -oX).
    let n = evs
        .iter()
        .rposition(|e| matches!(e, prtip_store::event::Event::Paused(_)))
        .expect("a Paused event")
        + 1;
    assert!(evs[n..]
        .iter()
        .all(|e| matches!(e, prtip_store::event::Event::ExportComplete(_))));
    match (&evs[n - 2], &evs[n - 1]) {
        (prtip_store::event::Event::Checkpoint(c), prtip_store::event::Event::Paused(p)) => {
            assert_eq!(c.next_index, p.next_index);
            assert_eq!(p.reason, "SIGINT");
        }
        (a, b) => panic!("log ends with {a:?}, {b:?}"),
    }
    drop(r);
    let out = scan_cmd(h.path(), &ns, &["replay", "--from-checkpoint", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(h.path(), 1), ScanStatus::Completed);
    let got = log_results(&scan_dir(h.path(), 1));
    assert!(
        got == truth(Ipv4Addr::new(198, 19, 0, 0), 18, &[22, 80, 443, 8080]),
        "results differ from ground truth ({} rows)",
        got.len()
    );
    let lint = Command::new("xmllint")
        .arg("--noout")
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    let text = std::fs::read_to_string(&xml).unwrap();
    assert_eq!(
        text.matches("state=\"open\"").count(),
        2 * 16384,
        "the XML holds the whole scan after resume"
    );
}

#[test]
fn second_sigint_stops_at_once_and_the_log_stays_resumable() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = lab();
    let h = home();
    let ns = lab.config().scan_ns.clone();
    let child = scan_cmd(
        h.path(),
        &ns,
        &[
            "scan",
            "198.19.64.0/20",
            "-p",
            "22,80",
            "--rate",
            "5000",
            "--wait",
            "5s",
            "--quiet",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, libc::SIGINT);
    let out = finish(child);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("stopping at once"), "{err}");
    assert_eq!(status(h.path(), 1), ScanStatus::Interrupted);
    let out = scan_cmd(
        h.path(),
        &ns,
        &["replay", "1", "--from-checkpoint", "--quiet"],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log_results(&scan_dir(h.path(), 1)) == truth(Ipv4Addr::new(198, 19, 64, 0), 20, &[22, 80])
    );
}

#[test]
fn sigusr1_holds_in_place_and_sigusr2_continues() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = lab();
    let h = home();
    let ns = lab.config().scan_ns.clone();
    let child = scan_cmd(
        h.path(),
        &ns,
        &[
            "scan",
            "198.19.128.0/20",
            "-p",
            "22,80",
            "--rate",
            "5000",
            "--wait",
            "300ms",
            "--quiet",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    signal(&child, libc::SIGUSR1);
    // Wait for the Paused event to become durable.
    let dir = scan_dir(h.path(), 1);
    let paused = |dir: &Path| {
        LogReader::open(dir)
            .map(|r| {
                r.iter()
                    .filter_map(|e| e.ok())
                    .any(|e| matches!(e, EventRef::Paused(_)))
            })
            .unwrap_or(false)
    };
    let mut waited = 0;
    while !paused(&dir) && waited < 100 {
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    assert!(paused(&dir), "no Paused event after SIGUSR1");
    signal(&child, libc::SIGUSR2);
    let out = finish(child);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = LogReader::open(&dir).unwrap();
    let kinds: Vec<&str> = r
        .iter()
        .map(|e| e.unwrap().kind().name())
        .filter(|k| matches!(*k, "Paused" | "Resumed" | "Finished"))
        .collect();
    assert_eq!(
        kinds.iter().map(|k| k.to_lowercase()).collect::<Vec<_>>(),
        ["paused", "resumed", "finished"]
    );
    drop(r);
    assert!(log_results(&dir) == truth(Ipv4Addr::new(198, 19, 128, 0), 20, &[22, 80]));
}

/// Kill the scan with SIGKILL `kills` times at pseudo-random moments, resuming each
/// time, then let it finish: the results must equal the ground truth.
fn crash_and_resume(seed: u64, kills: usize, net: &str, base: Ipv4Addr, prefix: u8) {
    let lab = lab();
    let h = home();
    let ns = lab.config().scan_ns.clone();
    let ports = [22, 80, 443, 8080];
    let mut x = seed;
    let mut rnd = |lo: u64, hi: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lo + x % (hi - lo)
    };
    let mut done_kills = 0;
    let mut first = true;
    while done_kills < kills {
        let args: Vec<&str> = if first {
            vec![
                "scan",
                net,
                "-p",
                "22,80,443,8080",
                "--rate",
                "12000",
                "--wait",
                "300ms",
                "--quiet",
                "--checkpoint-interval",
                "200ms",
                "--seed",
                "77",
            ]
        } else {
            if status(h.path(), 1) == ScanStatus::Completed {
                break;
            }
            vec!["replay", "1", "--from-checkpoint", "--quiet"]
        };
        let child = scan_cmd(h.path(), &ns, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rnd(100, 900)));
        signal(&child, libc::SIGKILL);
        let _ = finish(child);
        first = false;
        done_kills += 1;
        let st = status(h.path(), 1);
        assert!(
            matches!(st, ScanStatus::Interrupted | ScanStatus::Completed),
            "after SIGKILL {done_kills} the scan is {st:?}"
        );
    }
    assert!(
        done_kills >= kills.min(8),
        "the scan finished after only {done_kills} kills; slow it down"
    );
    if status(h.path(), 1) != ScanStatus::Completed {
        let out = scan_cmd(h.path(), &ns, &["replay", "--from-checkpoint", "--quiet"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(status(h.path(), 1), ScanStatus::Completed);
    let got = log_results(&scan_dir(h.path(), 1));
    let want = truth(base, prefix, &ports);
    let missing = want.keys().filter(|k| !got.contains_key(k)).count();
    let wrong = want
        .iter()
        .filter(|(k, v)| got.get(k).is_some_and(|g| g != *v))
        .count();
    assert_eq!(
        (missing, wrong, got.len()),
        (0, 0, want.len()),
        "after {done_kills} SIGKILLs"
    );
    eprintln!("crash test: {done_kills} SIGKILLs, results equal ground truth");
}

#[test]
fn crash_safety_sigkill_at_random_moments_a() {
    if !common::netns_tests_enabled() {
        return;
    }
    crash_and_resume(
        0x9e37_79b9_7f4a_7c15,
        11,
        "198.19.0.0/18",
        Ipv4Addr::new(198, 19, 0, 0),
        18,
    );
}

#[test]
fn crash_safety_sigkill_at_random_moments_b() {
    if !common::netns_tests_enabled() {
        return;
    }
    crash_and_resume(
        0x1234_5678_9abc_def1,
        11,
        "198.19.64.0/18",
        Ipv4Addr::new(198, 19, 64, 0),
        18,
    );
}

/// `--quiet` prints the line of figures only; a scan of more than 256 hosts prints
/// a row per port that some host had open, and one `Not shown:` line for the rest
/// (issue 19 item 5: the table had a row per closed port, `0 512 0`).
#[test]
fn quiet_prints_one_line_and_the_large_table_only_open_ports() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = lab();
    let h = home();
    let ns = lab.config().scan_ns.clone();
    let out = scan_cmd(
        h.path(),
        &ns,
        &["scan", "--quiet", "198.19.0.1", "-p", "1-300"],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("prtip done: 1 IP address scanned in "),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 open, 299 closed, 0 filtered ports"),
        "{stdout}"
    );

    let out = scan_cmd(h.path(), &ns, &["scan", "198.19.0.0/23", "-p", "22,80"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let table: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("Discovered open port"))
        .collect();
    assert_eq!(
        table[..3],
        [
            "PORT        OPEN     CLOSED   FILTERED SERVICE",
            "80/tcp      512      0        0        http",
            "Not shown: 1 port open on no host (512 closed, 0 filtered)",
        ],
        "{stdout}"
    );
    assert!(
        table[3].starts_with("prtip done: 512 IP addresses"),
        "{stdout}"
    );
    assert_eq!(table.len(), 4, "{stdout}");
}
