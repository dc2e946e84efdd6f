//! Network namespace plumbing: running `ip` (iproute2), checking that a named
//! namespace exists, running a closure on a thread inside a namespace, and
//! spawning a process inside one.
//!
//! This module only ever enters namespaces named under `/run/netns/`; it never
//! changes the namespace of the calling thread.

use crate::error::LabError;
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// Where `ip netns add` puts its namespace handles.
pub const NETNS_DIR: &str = "/run/netns";

/// Path of the handle of the named namespace.
pub fn ns_path(ns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(ns)
}

/// Whether the named namespace exists (`ip netns list` shows it).
pub fn ns_exists(ns: &str) -> bool {
    ns_path(ns).exists()
}

/// Run `ip ARGS...`; on failure the error holds the command line and its stderr.
pub fn ip(args: &[&str]) -> Result<String, LabError> {
    let cmd_line = format!("ip {}", args.join(" "));
    let out = Command::new("ip").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LabError::Command {
                cmd: cmd_line.clone(),
                detail: "`ip` not found; install iproute2 (apt-get install -y iproute2)".into(),
            }
        } else {
            LabError::Command {
                cmd: cmd_line.clone(),
                detail: e.to_string(),
            }
        }
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: cmd_line,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run `ip -n NS -batch -` with `lines` (one `ip` command each, without the
/// leading `ip`) on its standard input: many routes in one process.
pub fn ip_batch(ns: &str, lines: &[String]) -> Result<(), LabError> {
    use std::io::Write;
    use std::process::Stdio;
    if lines.is_empty() {
        return Ok(());
    }
    let cmd_line = format!(
        "ip -n {ns} -batch - ({} commands, first: {})",
        lines.len(),
        lines[0]
    );
    let err = |detail: String| LabError::Command {
        cmd: cmd_line.clone(),
        detail,
    };
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    let mut input = lines.join("\n");
    input.push('\n');
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .map_err(|e| err(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

fn open_ns(ns: &str) -> Result<File, LabError> {
    File::open(ns_path(ns)).map_err(|e| {
        LabError::io(
            format!(
                "opening network namespace '{ns}' ({}); is the lab up?",
                ns_path(ns).display()
            ),
            e,
        )
    })
}

/// Run `f` on a new thread that has entered the network namespace `ns`, and
/// return its result. Sockets the closure creates belong to that namespace;
/// `/proc/sys/net/...` it reads or writes are that namespace's.
pub fn run_in_netns<T, F>(ns: &str, f: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let handle = open_ns(ns)?;
    let ns_name = ns.to_string();
    let thread = std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || -> Result<T, LabError> {
            // setns on this thread only: the rest of the process stays where it is.
            setns(&handle, CloneFlags::CLONE_NEWNET).map_err(|e| {
                LabError::io(
                    format!("entering network namespace '{ns_name}'"),
                    std::io::Error::from(e),
                )
            })?;
            Ok(f())
        })
        .map_err(|e| LabError::io("spawning a namespace thread", e))?;
    match thread.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Make `cmd` start inside the network namespace `ns` (and, with `new_session`,
/// in a session of its own, detached from the caller's terminal). The namespace
/// handle stays open (close-on-exec) until the returned guard is dropped: keep
/// it alive until `cmd` has been spawned.
pub fn command_in_netns(
    cmd: &mut Command,
    ns: &str,
    new_session: bool,
) -> Result<NsHandle, LabError> {
    let handle = open_ns(ns)?;
    let fd = handle.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // two async-signal-safe system calls (setns, setsid) without allocating; `fd`
    // stays open in the parent (and so in the child) because the caller keeps the
    // returned NsHandle alive until spawn() has returned.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if new_session && libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(NsHandle { _file: handle })
}

/// Keeps a namespace handle open while a command configured by
/// [`command_in_netns`] is spawned.
#[derive(Debug)]
pub struct NsHandle {
    _file: File,
}

/// A `Command` that runs `program` inside `ns` through `ip netns exec` (which also
/// gives the program a `/sys` of that namespace, as `ethtool` needs).
pub fn ip_netns_exec(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// Link names in `ns` (`ip -n NS -o link show`), without the `@peer` suffix.
pub fn links(ns: &str) -> Result<Vec<String>, LabError> {
    let out = ip(&["-n", ns, "-o", "link", "show"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect())
}

/// Default routes (IPv4 and IPv6) in `ns`, as `ip route` prints them.
pub fn default_routes(ns: &str) -> Result<Vec<String>, LabError> {
    let mut v = Vec::new();
    for fam in ["-4", "-6"] {
        let out = ip(&["-n", ns, fam, "route", "show", "default"])?;
        v.extend(
            out.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("{fam} {l}")),
        );
    }
    Ok(v)
}

/// Write a sysctl under `/proc/sys/` (dotted name, e.g. `net.ipv4.icmp_ratelimit`)
/// inside `ns`.
pub fn sysctl(ns: &str, name: &str, value: &str) -> Result<(), LabError> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    let value = value.to_string();
    let p = path.clone();
    run_in_netns(ns, move || std::fs::write(&p, value))?
        .map_err(|e| LabError::io(format!("writing {path} in namespace '{ns}'"), e))
}

/// Read a sysctl inside `ns`.
pub fn read_sysctl(ns: &str, name: &str) -> Result<String, LabError> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    let p = path.clone();
    run_in_netns(ns, move || std::fs::read_to_string(&p))?
        .map(|s| s.trim().to_string())
        .map_err(|e| LabError::io(format!("reading {path} in namespace '{ns}'"), e))
}
