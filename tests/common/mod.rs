//! Helpers shared by the integration tests (`mod common;` in a test file):
//! finding the built `prtip` binary, bringing up a uniquely named lab that is
//! always torn down (even when the test panics), and running commands inside a
//! lab namespace. Owned by the house engineer; add helpers, keep them small.

#![allow(dead_code)]

use prtip_lab::{LabConfig, LabGuard};
use std::path::PathBuf;
use std::process::{Command, Output};

/// The workspace root (the root package's manifest directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `prtip` binary under test: `$PRTIP_BIN`, else the one cargo built next to
/// this test binary (`<target>/<profile>/prtip`), else
/// `$CARGO_TARGET_DIR/debug/prtip`, else `<workspace>/target/debug/prtip`.
/// Panics with the command to run when it has not been built.
pub fn prtip_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PRTIP_BIN") {
        return PathBuf::from(p);
    }
    let mut candidates = Vec::new();
    if let Ok(me) = std::env::current_exe() {
        // <target>/<profile>/deps/<test>-<hash>
        if let Some(profile_dir) = me.parent().and_then(|d| d.parent()) {
            candidates.push(profile_dir.join("prtip"));
        }
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        let t = if t.is_relative() {
            workspace_root().join(t)
        } else {
            t
        };
        candidates.push(t.join("debug").join("prtip"));
    }
    candidates.push(workspace_root().join("target").join("debug").join("prtip"));
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "the prtip binary is not built (looked at {candidates:?}); run `cargo build -p prtip` first (./dev test does)"
    );
}

/// A `Command` for the `prtip` binary under test.
pub fn prtip() -> Command {
    Command::new(prtip_bin())
}

/// Whether this process runs as root (lab tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// For tests that need root and network namespaces: true when the test should
/// run. Without root it panics with instructions, unless
/// `PRTIP_SKIP_NETNS_TESTS=1` asks to skip (then it says so and returns false).
pub fn netns_tests_enabled() -> bool {
    if std::env::var_os("PRTIP_SKIP_NETNS_TESTS").is_some_and(|v| v == "1") {
        eprintln!("skipped: PRTIP_SKIP_NETNS_TESTS=1");
        return false;
    }
    assert!(
        is_root(),
        "this test builds network namespaces and needs root: run `sudo ./dev test` (or set PRTIP_SKIP_NETNS_TESTS=1 to skip it)"
    );
    true
}

/// A lab config with a unique name (see [`LabConfig::unique`]) whose responder
/// is the `prtip` binary under test.
pub fn lab_config(prefix: &str) -> LabConfig {
    LabConfig {
        responder_exe: Some(prtip_bin()),
        ..LabConfig::unique(prefix)
    }
}

/// Bring up a uniquely named lab; it is taken down when the guard drops (also
/// when the test panics).
pub fn lab(prefix: &str) -> LabGuard {
    lab_with(lab_config(prefix))
}

/// Bring up a lab from `cfg` (set `responder_exe` or start from [`lab_config`]).
pub fn lab_with(cfg: LabConfig) -> LabGuard {
    let name = cfg.name.clone();
    LabGuard::up(cfg).unwrap_or_else(|e| panic!("bringing up lab {name}: {e}"))
}

/// Run `program args...` inside namespace `ns` (`ip netns exec`) and return its output.
pub fn run_in_ns(ns: &str, program: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} in namespace {ns}: {e}"))
}

/// Whether the named network namespace exists.
pub fn ns_exists(ns: &str) -> bool {
    prtip_lab::netns::ns_exists(ns)
}

/// Whether process `pid` exists and is not a zombie (an orphan may stay a zombie
/// until init reaps it).
pub fn pid_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_string))
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

/// A `Command` that runs the `prtip` binary under test inside namespace `ns`
/// (`ip netns exec <ns> <prtip>`): how every raw scan in a test must run.
pub fn prtip_in_ns(ns: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(prtip_bin());
    c
}

/// A child process killed (and reaped) when the guard drops, even when the test panics.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Final port states of a scan, keyed by (IPv4 address, protocol, port).
pub type PortResults = std::collections::BTreeMap<
    (std::net::Ipv4Addr, prtip_store::event::Protocol, u16),
    prtip_store::event::PortState,
>;

/// `prtip args` inside namespace `ns`, keeping its scans under `home` (PRTIP_HOME set,
/// PRTIP_HISTORY unset).
pub fn scan_cmd(home: &std::path::Path, ns: &str, args: &[&str]) -> Command {
    let mut c = prtip_in_ns(ns);
    c.args(args)
        .env("PRTIP_HOME", home)
        .env_remove("PRTIP_HISTORY");
    c
}

/// The log directory of scan `id` under `home`.
pub fn scan_dir(home: &std::path::Path, id: u64) -> PathBuf {
    home.join("scans").join(id.to_string())
}

/// Final state per (address, protocol, port) from the log's projection.
pub fn log_results(dir: &std::path::Path) -> PortResults {
    let r = prtip_store::LogReader::open(dir).unwrap();
    prtip_store::sorted_rows(&r)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            ((row.addr.v4().unwrap(), row.proto, row.port), row.state)
        })
        .collect()
}

/// The lab's ground truth for a TCP scan of `ports` on every address of
/// `base/prefix`: the ports in `open` open, the others closed.
pub fn tcp_truth(base: std::net::Ipv4Addr, prefix: u8, ports: &[u16], open: &[u16]) -> PortResults {
    use prtip_store::event::{PortState, Protocol};
    let b = u32::from(base);
    let mut m = PortResults::new();
    for i in 0..(1u32 << (32 - prefix)) {
        for &p in ports {
            let state = if open.contains(&p) {
                PortState::Open
            } else {
                PortState::Closed
            };
            m.insert((std::net::Ipv4Addr::from(b + i), Protocol::Tcp, p), state);
        }
    }
    m
}

/// Runs test `name` of this test binary again, alone and with its output shown, as
/// `wrapper... <this binary> --exact name --nocapture --test-threads=1` with `env`
/// set (the test looks for it to know it is the child); panics with both outputs
/// unless the child succeeded. Returns the child's stdout.
pub fn rerun_this_test(wrapper: &[&str], name: &str, env: (&str, &str)) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", wrapper[0]));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
