//! A shard in a container: the image `deploy/image/build` makes (FROM scratch, the
//! binary under test and its libraries) runs shard 0/2 inside the lab's scanner
//! namespace with only NET_RAW and NET_ADMIN and a read-only root, its log on a
//! mounted home; shard 1/2 runs as a process; `prtip merge` folds both into the
//! lab's ground truth.
//! Skipped, saying so, where podman or runc is missing (`sudo ./dev deps`).
//! Lab tests need root.

mod common;

use common::{log_results, scan_cmd, scan_dir};
use std::net::Ipv4Addr;
use std::process::Command;

const OPEN: [u16; 2] = [80, 8080];

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Removes the test's image when dropped.
struct Image(String);
impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn a_shard_in_a_container_merges_with_a_shard_in_a_process() {
    if !common::netns_tests_enabled() {
        return;
    }
    if !have("podman") || !have("runc") {
        eprintln!("skipped: podman and runc are needed to run a shard in a container (sudo ./dev deps installs them)");
        return;
    }
    let tag = format!("localhost/prtip:test-{}", std::process::id());
    let build = Command::new(common::workspace_root().join("deploy/image/build"))
        .arg(common::prtip_bin())
        .arg(&tag)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "deploy/image/build: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let _image = Image(tag.clone());
    let lab = common::lab_with(prtip_lab::LabConfig {
        tcp_ports: OPEN.to_vec(),
        ..common::lab_config("ctr")
    });
    let ns = lab.config().scan_ns.clone();
    let args = |i: u32| -> Vec<String> {
        [
            "scan",
            "198.19.0.0/25",
            "-p",
            "1-6,80,8080",
            "--rate",
            "3000",
            "--wait",
            "300ms",
            "--quiet",
            "--seed",
            "99",
            "--continue",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--shard".to_string(), format!("{i}/2")])
        .collect()
    };
    let h0 = tempfile::tempdir().unwrap();
    let h1 = tempfile::tempdir().unwrap();
    let out = Command::new("podman")
        .args([
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            &format!("ns:/run/netns/{ns}"),
            "--cap-drop",
            "all",
            "--cap-add",
            "NET_RAW,NET_ADMIN",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
            // as in deploy/k8s: a read-only root, /tmp an empty scratch space
            "--read-only",
            "--tmpfs",
            "/tmp",
            "-v",
            &format!("{}:/data/home", h0.path().display()),
            &tag,
        ])
        .args(args(0))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shard 0 in a container: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let a: Vec<String> = args(1);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = scan_cmd(h1.path(), &ns, &a).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let merged = tempfile::tempdir().unwrap();
    let out = common::prtip()
        .env("PRTIP_HOME", merged.path())
        .env_remove("PRTIP_HISTORY")
        .arg("merge")
        .args([h0.path(), h1.path()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ports: Vec<u16> = (1..=6).chain([80, 8080]).collect();
    let want = common::tcp_truth(Ipv4Addr::new(198, 19, 0, 0), 25, &ports, &OPEN);
    let got = log_results(&scan_dir(merged.path(), 1));
    assert!(got == want, "merged results differ from the ground truth");
}
