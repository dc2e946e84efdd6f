//! The real `prtip` binary, run as `nobody` with no capabilities inside the lab's
//! scanner namespace: `prtip scan -sT -sV` and `prtip scan -sU -sV` write logs whose
//! JSON lines export names what the lab runs, with no privilege at all.

mod common;

use prtip_lab::services::tcp_service;
use prtip_lab::Proto;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

fn unprivileged_scan(
    lab: &prtip_lab::LabGuard,
    home: &std::path::Path,
    args: &[&str],
) -> Vec<serde_json::Value> {
    let out_file = home.join(format!("out-{}.jsonl", args.join("").len()));
    let out = common::run_in_ns(
        &lab.config().scan_ns,
        "setpriv",
        &[
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                common::prtip_bin().to_str().unwrap(),
                "scan",
                "--quiet",
                "--home",
                home.to_str().unwrap(),
                "--oJ",
                out_file.to_str().unwrap(),
            ][..],
            args,
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "prtip scan {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn prtip_scan_st_su_sv_as_nobody() {
    if !common::netns_tests_enabled() {
        return;
    }
    let mut cfg = common::lab_config("cli");
    cfg.tcp_ports.extend([3306, 5432]);
    let lab = common::lab_with(cfg);
    let truth = lab.config().ground_truth();
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();

    let rows = unprivileged_scan(
        &lab,
        home.path(),
        &[
            "-sT",
            "-sV",
            "--version-wait",
            "1500ms",
            "-p",
            "21,22,23,25,80,110,143,443,3306,5432,6379,8080,9999",
            "198.19.0.1,198.19.1.1",
        ],
    );
    assert_eq!(rows.len(), 2 * 13);
    for r in &rows {
        let ip: std::net::Ipv4Addr = r["ip"].as_str().unwrap().parse().unwrap();
        let port = r["port"].as_u64().unwrap() as u16;
        let open = truth.is_open(Proto::Tcp, ip, port);
        assert_eq!(r["state"], if open { "open" } else { "closed" }, "{r}");
        assert_eq!(
            r["reason"],
            if open { "syn-ack" } else { "conn-refused" },
            "{r}"
        );
        if open {
            let want = tcp_service(port).unwrap();
            assert_eq!(r["service"], want.name, "{r}");
            if port != 443 {
                assert_eq!(r["product"], want.product, "{r}");
                assert_eq!(r["version"].as_str().unwrap_or(""), want.version, "{r}");
            } else {
                assert!(
                    r["extra"].as_str().unwrap().contains("CN=lab.prtip.test"),
                    "{r}"
                );
            }
        }
    }

    let rows = unprivileged_scan(
        &lab,
        home.path(),
        &["-sU", "-sV", "-p", "53,123,161", "198.19.0.1"],
    );
    let by_port: BTreeMap<u64, &serde_json::Value> = rows
        .iter()
        .map(|r| (r["port"].as_u64().unwrap(), r))
        .collect();
    assert_eq!(by_port.len(), 3);
    assert_eq!(by_port[&53]["state"], "open");
    assert_eq!(by_port[&53]["service"], "domain");
    assert_eq!(by_port[&53]["product"], "ISC BIND");
    assert_eq!(by_port[&123]["service"], "ntp");
    assert_eq!(by_port[&161]["state"], "closed");
    assert_eq!(by_port[&161]["reason"], "port-unreach");
}
