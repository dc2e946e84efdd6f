//! deploy/k8s/ as Kubernetes reads it: every manifest validates against the API
//! schemas (`kubernetes-validate --strict`, from PyPI: `sudo ./dev deps`), the
//! shard Job is an Indexed Job whose N agrees everywhere, whose pods hold only the
//! capabilities they need and keep their log under a per-index sub-path, and
//! `--shard $(JOB_COMPLETION_INDEX)/N` works whether Kubernetes expanded it or not.

mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn k8s_dir() -> PathBuf {
    common::workspace_root().join("deploy/k8s")
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    v.sort();
    v
}

/// The manifest as JSON (PyYAML comes with kubernetes-validate).
fn load(p: &std::path::Path) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(p)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let ok = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    assert!(
        ok.is_ok_and(|o| o.status.success()),
        "kubernetes-validate is not installed: sudo ./dev deps (pip install kubernetes-validate)"
    );
    let files = manifests();
    assert!(files.len() >= 4, "{files:?}");
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // kustomization.yaml names only files that exist.
    let k = load(&k8s_dir().join("kustomization.yaml"));
    for r in k["resources"].as_array().unwrap() {
        assert!(k8s_dir().join(r.as_str().unwrap()).is_file(), "{r}");
    }
}

#[test]
fn shard_jobs_are_indexed_least_privileged_and_resume_from_their_sub_path() {
    for (file, caps) in [
        ("shards.yaml", vec!["NET_ADMIN", "NET_RAW"]),
        ("shards-xdp.yaml", vec!["BPF", "NET_ADMIN", "NET_RAW"]),
    ] {
        let j = load(&k8s_dir().join(file));
        let spec = &j["spec"];
        assert_eq!(spec["completionMode"], "Indexed", "{file}");
        let n = spec["completions"].as_u64().unwrap();
        assert_eq!(spec["parallelism"].as_u64(), Some(n), "{file}");
        assert!(
            spec["backoffLimitPerIndex"].as_u64().unwrap() >= 1,
            "{file}"
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let c = &pod["containers"][0];
        let sc = &c["securityContext"];
        assert_eq!(sc["privileged"], false, "{file}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{file}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{file}"
        );
        let mut add: Vec<&str> = sc["capabilities"]["add"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        add.sort();
        assert_eq!(add, caps, "{file}");
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(args[0], "scan", "{file}: the entrypoint is prtip");
        let shard = args.iter().position(|a| *a == "--shard").unwrap();
        assert_eq!(
            args[shard + 1],
            format!("$(JOB_COMPLETION_INDEX)/{n}"),
            "{file}"
        );
        assert!(
            args.contains(&"--continue") && args.contains(&"--seed"),
            "{file}"
        );
        let env: Vec<&str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(env.contains(&"JOB_COMPLETION_INDEX") && env.contains(&"PRTIP_HOME"));
        let home = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "PRTIP_HOME")
            .unwrap()["value"]
            .as_str()
            .unwrap();
        let mount = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == home)
            .unwrap_or_else(|| panic!("{file}: nothing mounted at PRTIP_HOME {home}"));
        assert_eq!(
            mount["subPathExpr"], "shard-$(JOB_COMPLETION_INDEX)",
            "{file}"
        );
        if file == "shards-xdp.yaml" {
            assert!(args.contains(&"--xdp"));
            assert!(j["spec"]["template"]["metadata"]["annotations"]
                ["k8s.v1.cni.cncf.io/networks"]
                .is_string());
        } else {
            assert_eq!(pod["hostNetwork"], true);
        }
        // The merge step names every shard's home: 0..N-1.
        let m = load(&k8s_dir().join("merge.yaml"));
        let margs: Vec<&str> = m["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let shards: Vec<String> = (0..n).map(|i| format!("/data/shard-{i}")).collect();
        let at = margs.iter().position(|a| *a == "merge").unwrap();
        assert_eq!(&margs[at + 1..at + 1 + n as usize], shards.as_slice());
    }
}

/// A connect scan of loopback (no privilege, nothing leaves the machine) with the
/// index taken from the environment, as in a pod where `$(...)` was not expanded.
#[test]
fn shard_index_comes_from_job_completion_index() {
    let home = tempfile::tempdir().unwrap();
    let run = |env: Option<&str>| {
        let mut c = common::prtip();
        c.env("PRTIP_HOME", home.path())
            .env_remove("PRTIP_HISTORY")
            .env_remove("JOB_COMPLETION_INDEX")
            .args([
                "scan",
                "-sT",
                "127.0.0.1",
                "-p",
                "1-8",
                "--seed",
                "5",
                "--wait",
                "100ms",
                "--quiet",
                "--shard",
                "$(JOB_COMPLETION_INDEX)/4",
            ]);
        if let Some(v) = env {
            c.env("JOB_COMPLETION_INDEX", v);
        }
        c.output().unwrap()
    };
    let out = run(None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("bad --shard \"$(JOB_COMPLETION_INDEX)/4\": JOB_COMPLETION_INDEX is not set"));
    assert!(
        !home.path().join("scans").exists(),
        "bad input wrote a scan"
    );
    let out = run(Some("2"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = prtip_store::LogReader::open(&common::scan_dir(home.path(), 1))
        .unwrap()
        .scan_started()
        .unwrap();
    assert_eq!((started.spec.shard_index, started.spec.shard_count), (2, 4));
    assert_eq!(started.total_probes, 2, "shard 2/4 of 8 ports");
    let out = run(Some("4"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad --shard \"4/4\""));
}
