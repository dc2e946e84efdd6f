//! Scale-out without a cluster: a scan split in three shards, each a separate
//! `prtip scan --shard i/3 --continue` process with its own `--home` (as each pod
//! of the Indexed Job has its own volume sub-path), all at once in one lab's
//! scanner namespace. One is killed with SIGKILL mid-walk; `prtip merge` refuses
//! the unfinished shard, `--gaps` writes what is missing, the same command as the
//! pod's resumes the shard from its last checkpoint, and the merge equals the lab's
//! ground truth and a one-machine scan of the same spec, one Reply per port.
//! Refused too: a missing shard, a shard of another seed, a shard given twice.
//! Lab tests need root.

mod common;

use common::{log_results, scan_cmd, scan_dir};
use prtip_store::{EventRef, HistoryIndex, LogReader, ScanStatus};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

const OPEN: [u16; 2] = [80, 8080];
const NET: &str = "198.19.0.0/24";
const PORTS: &str = "1-12,80,8080";

fn ports() -> Vec<u16> {
    (1..=12).chain([80, 8080]).collect()
}

/// The shard's command line, the same every time (as in the Job's manifest).
fn shard_args(i: u32, n: u32, seed: &str) -> Vec<String> {
    [
        "scan",
        NET,
        "-p",
        PORTS,
        "--rate",
        "1500",
        "--wait",
        "300ms",
        "--checkpoint-interval",
        "100ms",
        "--quiet",
        "--seed",
        seed,
        "--continue",
        "--shard",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("{i}/{n}")])
    .collect()
}

fn spawn(home: &Path, ns: &str, args: &[String]) -> Child {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    scan_cmd(home, ns, &a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn merge(home: &Path, args: &[&Path], extra: &[&str]) -> Output {
    let mut c = common::prtip();
    c.env("PRTIP_HOME", home).env_remove("PRTIP_HISTORY");
    c.arg("merge").args(args).args(extra);
    c.output().unwrap()
}

/// The last checkpoint's walk position in `dir` (0 when none yet).
fn checkpoint(dir: &Path) -> u64 {
    LogReader::open(dir)
        .ok()
        .and_then(|r| r.last_checkpoint().ok().flatten())
        .map_or(0, |(_, c)| c.next_index)
}

/// Reply events per (address, protocol, port) in the log.
fn replies_per_key(dir: &Path) -> std::collections::BTreeMap<(Ipv4Addr, u16), usize> {
    let mut m = std::collections::BTreeMap::new();
    for e in LogReader::open(dir).unwrap().iter() {
        if let EventRef::Reply(r) = e.unwrap() {
            *m.entry((r.addr.ip().to_string().parse().unwrap(), r.port.to_native()))
                .or_insert(0) += 1;
        }
    }
    m
}

fn nothing_written(home: &Path) {
    let scans = home.join("scans");
    assert!(
        !scans.exists() || std::fs::read_dir(&scans).unwrap().next().is_none(),
        "a refused merge wrote {}",
        scans.display()
    );
}

#[test]
fn three_shards_one_killed_and_resumed_merge_into_the_ground_truth() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab_with(prtip_lab::LabConfig {
        tcp_ports: OPEN.to_vec(),
        ..common::lab_config("mrg")
    });
    let ns = lab.config().scan_ns.clone();
    let homes: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let logs: Vec<PathBuf> = homes.iter().map(|h| scan_dir(h.path(), 1)).collect();

    // All three at once; shard 1 is killed once it has checkpointed part of its walk.
    let mut kids: Vec<Child> = (0..3)
        .map(|i| spawn(homes[i].path(), &ns, &shard_args(i as u32, 3, "4242")))
        .collect();
    let t0 = Instant::now();
    while checkpoint(&logs[1]) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "shard 1 never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(kids[1].id() as i32, libc::SIGKILL) }, 0);
    let _ = kids[1].wait();
    for (i, k) in kids.drain(..).enumerate() {
        if i != 1 {
            ok(k.wait_with_output().unwrap(), "shard");
        }
    }
    let killed_at = checkpoint(&logs[1]);
    let s1 = prtip_merge::inspect(&logs[1]).unwrap();
    assert_eq!(s1.status, ScanStatus::Interrupted);
    assert!(killed_at < s1.len, "shard 1 was killed before its end");

    // Unfinished: refused, named, nothing written.
    let out_home = tempfile::tempdir().unwrap();
    let dirs: Vec<&Path> = homes.iter().map(|h| h.path()).collect();
    let out = merge(out_home.path(), &dirs, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "shard 1/3 is unfinished: {} is interrupted at walk position {killed_at} of {}",
            logs[1].display(),
            s1.len
        )),
        "{err}"
    );
    nothing_written(out_home.path());

    // --gaps: the missing part as a plan, still nothing merged.
    let gaps = out_home.path().join("gaps.json");
    let out = merge(out_home.path(), &dirs, &["--gaps", gaps.to_str().unwrap()]);
    ok(out, "merge --gaps");
    let plan: prtip_merge::GapPlan =
        serde_json::from_str(&std::fs::read_to_string(&gaps).unwrap()).unwrap();
    assert_eq!(
        plan.gaps
            .iter()
            .map(|g| (g.shard, g.from, g.to))
            .collect::<Vec<_>>(),
        vec![(1, killed_at, s1.len)]
    );
    nothing_written(out_home.path());

    // A missing shard: refused.
    let out = merge(out_home.path(), &dirs[..2], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("shard 2/3 is missing: no log of it was given"),
        "{err}"
    );
    nothing_written(out_home.path());

    // The pod's restart: the same command resumes shard 1 from its checkpoint.
    ok(
        spawn(homes[1].path(), &ns, &shard_args(1, 3, "4242"))
            .wait_with_output()
            .unwrap(),
        "shard 1 resumed",
    );
    let kinds: Vec<&str> = LogReader::open(&logs[1])
        .unwrap()
        .iter()
        .map(|e| e.unwrap().kind().name())
        .collect();
    assert!(
        kinds.contains(&"Resumed") && kinds.last() == Some(&"Finished"),
        "{kinds:?}"
    );
    assert!(
        !homes[1].path().join("scans/2").exists(),
        "--continue resumed scan 1 instead of starting another"
    );
    // Run again once finished: nothing is sent, nothing new is written.
    let again = ok(
        spawn(homes[1].path(), &ns, &shard_args(1, 3, "4242"))
            .wait_with_output()
            .unwrap(),
        "shard 1 again",
    );
    let _ = again;
    assert!(!homes[1].path().join("scans/2").exists());

    // A shard of another seed: refused.
    let other = tempfile::tempdir().unwrap();
    ok(
        spawn(other.path(), &ns, &shard_args(2, 3, "7"))
            .wait_with_output()
            .unwrap(),
        "shard 2 of seed 7",
    );
    let mut foreign = dirs.clone();
    foreign[2] = other.path();
    let out = merge(out_home.path(), &foreign, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{} is not a shard of the same scan as {}: seed 7 against 4242",
            scan_dir(other.path(), 1).display(),
            logs[0].display()
        )) || err.contains("seed 4242 against 7"),
        "{err}"
    );
    // A shard given twice: refused.
    let twice = [dirs[0], dirs[1], dirs[2], dirs[2]];
    let out = merge(out_home.path(), &twice, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("shard 2/3: ") && err.contains("both cover walk positions 0.."),
        "{err}"
    );
    nothing_written(out_home.path());

    // Complete now: one scan, equal to the ground truth, one Reply per port.
    let out = ok(merge(out_home.path(), &dirs, &[]), "merge");
    assert!(out.contains("into scan 1"), "{out}");
    let merged = scan_dir(out_home.path(), 1);
    let got = log_results(&merged);
    let want = common::tcp_truth(Ipv4Addr::new(198, 19, 0, 0), 24, &ports(), &OPEN);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "merged results differ from the ground truth");
    let per_key = replies_per_key(&merged);
    assert_eq!(per_key.len(), want.len());
    assert!(
        per_key.values().all(|n| *n == 1),
        "a duplicate Reply in the merged log"
    );
    let row = HistoryIndex::open(&out_home.path().join("history.redb"))
        .unwrap()
        .get(1)
        .unwrap()
        .unwrap();
    assert_eq!(row.status, ScanStatus::Completed);
    assert_eq!(row.ports_discovered, 256 * 2);
    let started = LogReader::open(&merged).unwrap().scan_started().unwrap();
    assert_eq!(
        (
            started.spec.shard_index,
            started.spec.shard_count,
            started.spec.seed
        ),
        (0, 1, 4242)
    );
    assert_eq!(
        started.total_probes,
        256 * 14 * (started.spec.max_retries as u64 + 1)
    );

    // A one-machine scan of the same spec, in the same home: `history diff` finds nothing.
    let one = [
        "scan", NET, "-p", PORTS, "--rate", "5000", "--wait", "300ms", "--quiet", "--seed", "4242",
    ];
    ok(
        scan_cmd(out_home.path(), &ns, &one).output().unwrap(),
        "one-machine scan",
    );
    assert!(log_results(&scan_dir(out_home.path(), 2)) == got);
    let mut diff = common::prtip();
    diff.env("PRTIP_HOME", out_home.path())
        .env_remove("PRTIP_HISTORY")
        .args(["history", "diff", "1", "2", "--all-states", "--exit-code"]);
    ok(
        diff.output().unwrap(),
        "history diff of the merged and the one-machine scan",
    );
    // And it exports like any other.
    let csv = out_home.path().join("m.csv");
    let mut exp = common::prtip();
    exp.env("PRTIP_HOME", out_home.path())
        .env_remove("PRTIP_HISTORY")
        .args([
            "export",
            "1",
            "--format",
            "csv",
            "-o",
            csv.to_str().unwrap(),
        ]);
    ok(exp.output().unwrap(), "export");
    let open_rows: BTreeSet<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .filter(|l| l.contains(",open,") || l.contains(",open"))
        .map(str::to_string)
        .collect();
    assert!(
        open_rows.len() >= 256 * 2,
        "{} open rows in the export",
        open_rows.len()
    );
}

/// `merge --gaps` then `scan --from-gaps` on another machine (another home): the
/// gap scan sends exactly the unfinished part of the shard, and the merge of the
/// interrupted log, the gap log and the other shards equals the ground truth.
#[test]
fn scan_from_gaps_sends_just_the_missing_part_and_completes_the_merge() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab_with(prtip_lab::LabConfig {
        tcp_ports: OPEN.to_vec(),
        ..common::lab_config("gap")
    });
    let ns = lab.config().scan_ns.clone();
    let args = |i: u32| -> Vec<String> {
        let mut a = shard_args(i, 2, "31337");
        a.extend(["--max-retries".to_string(), "0".to_string()]);
        let n = a.len();
        a[n - 3] = format!("{i}/2");
        a
    };
    // shard_args ends with `--shard i/3`; make it i/2 (the last three: --shard, i/N, ...).
    let homes: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let log1 = scan_dir(homes[1].path(), 1);
    let k0 = spawn(homes[0].path(), &ns, &args(0));
    let mut k1 = spawn(homes[1].path(), &ns, &args(1));
    let t0 = Instant::now();
    while checkpoint(&log1) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "shard 1 never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(k1.id() as i32, libc::SIGKILL) }, 0);
    let _ = k1.wait();
    ok(k0.wait_with_output().unwrap(), "shard 0");
    let at = checkpoint(&log1);
    let len = prtip_merge::inspect(&log1).unwrap().len;
    assert!(at < len);

    let out_home = tempfile::tempdir().unwrap();
    let gaps = out_home.path().join("gaps.json");
    let dirs = [homes[0].path(), homes[1].path()];
    ok(
        merge(out_home.path(), &dirs, &["--gaps", gaps.to_str().unwrap()]),
        "merge --gaps",
    );
    // Another machine sends the gap.
    let g = tempfile::tempdir().unwrap();
    ok(
        scan_cmd(
            g.path(),
            &ns,
            &["scan", "--from-gaps", gaps.to_str().unwrap(), "--quiet"],
        )
        .output()
        .unwrap(),
        "scan --from-gaps",
    );
    let gap_log = prtip_merge::inspect(&scan_dir(g.path(), 1)).unwrap();
    assert_eq!(gap_log.status, ScanStatus::Completed);
    assert_eq!(gap_log.covered, at..len);
    assert_eq!(
        gap_log.counters.sent,
        len - at,
        "the gap scan sent just the gap"
    );
    let out = ok(
        merge(out_home.path(), &[dirs[0], dirs[1], g.path()], &[]),
        "merge with the gap log",
    );
    assert!(
        out.contains(&format!("positions {at}..{len} of {len}")),
        "{out}"
    );
    let got = log_results(&scan_dir(out_home.path(), 1));
    let want = common::tcp_truth(Ipv4Addr::new(198, 19, 0, 0), 24, &ports(), &OPEN);
    assert!(got == want, "merged results differ from the ground truth");
    assert!(replies_per_key(&scan_dir(out_home.path(), 1))
        .values()
        .all(|n| *n == 1));
}

/// SIGTERM (a drained node) pauses a `--continue` shard with a checkpoint and
/// exits 75, so that the Job runs the index again; the next run resumes it.
#[test]
fn a_paused_shard_exits_75_and_the_next_run_resumes_it() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab_with(prtip_lab::LabConfig {
        tcp_ports: OPEN.to_vec(),
        ..common::lab_config("p75")
    });
    let ns = lab.config().scan_ns.clone();
    let home = tempfile::tempdir().unwrap();
    let log = scan_dir(home.path(), 1);
    let k = spawn(home.path(), &ns, &shard_args(0, 1, "5"));
    let t0 = Instant::now();
    while checkpoint(&log) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "never checkpointed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(k.id() as i32, libc::SIGTERM) }, 0);
    let out = k.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard 0/1 paused (scan 1); exit 75"));
    assert_eq!(
        prtip_merge::inspect(&log).unwrap().status,
        ScanStatus::Paused
    );
    ok(
        spawn(home.path(), &ns, &shard_args(0, 1, "5"))
            .wait_with_output()
            .unwrap(),
        "the next run",
    );
    let l = prtip_merge::inspect(&log).unwrap();
    assert_eq!((l.status, l.covered.end), (ScanStatus::Completed, l.len));
    assert!(!scan_dir(home.path(), 2).exists());
    let want = common::tcp_truth(Ipv4Addr::new(198, 19, 0, 0), 24, &ports(), &OPEN);
    assert!(log_results(&log) == want);
}
