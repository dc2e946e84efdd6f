//! `prtip scan -sS -sV` in the lab: service detection runs after the SYN scan, and
//! the scan ends when detection does — the log's `Finished` (the reports' end time
//! and duration) comes after every `Service` event, and the XML report's
//! `<finished time=... elapsed=...>` covers detection.

mod common;

use prtip_store::{EventRef, LogReader};

#[test]
fn syn_scan_with_sv_ends_after_service_detection() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("ssv");
    let ns = lab.config().scan_ns.clone();
    let home = tempfile::tempdir().unwrap();
    let xml = home.path().join("out.xml");
    let out = common::scan_cmd(
        home.path(),
        &ns,
        &[
            "scan",
            "-sS",
            "-sV",
            "198.19.0.1,198.19.0.2",
            "-p",
            "21,22,23,25,80",
            "--wait",
            "300ms",
            "--version-wait",
            "1500ms",
            "--quiet",
            "-oX",
            xml.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let r = LogReader::open(&common::scan_dir(home.path(), 1)).unwrap();
    let (mut first_us, mut last_service_us, mut finished_us, mut services) = (0, 0, None, 0);
    for e in r.iter() {
        match e.unwrap() {
            EventRef::ScanStarted(s) => first_us = s.time_us.to_native(),
            EventRef::Service(s) => {
                services += 1;
                last_service_us = last_service_us.max(s.time_us.to_native());
            }
            EventRef::Finished(f) => finished_us = Some(f.time_us.to_native()),
            _ => {}
        }
    }
    assert!(services >= 8, "services detected: {services}");
    let finished_us = finished_us.expect("Finished in the log");
    assert!(
        finished_us >= last_service_us,
        "Finished at {finished_us} before the last Service at {last_service_us}"
    );

    // The report: nmap's runstats end time and elapsed seconds cover detection.
    let xml = std::fs::read_to_string(&xml).unwrap();
    let attr = |name: &str| -> f64 {
        let at = xml.find("<finished ").expect("<finished>");
        let tail = &xml[at..];
        let v = tail
            .split(&format!(" {name}=\""))
            .nth(1)
            .unwrap_or_else(|| panic!("{name} in {tail}"));
        v[..v.find('"').unwrap()].parse().unwrap()
    };
    assert!(
        attr("time") >= (last_service_us / 1_000_000) as f64,
        "finished time {} before the last service",
        attr("time")
    );
    let detect_secs = (last_service_us - first_us) as f64 / 1e6;
    assert!(
        attr("elapsed") + 0.01 >= detect_secs,
        "elapsed {} shorter than start to last service {detect_secs}",
        attr("elapsed")
    );
}

/// Issue 19, item 1: the output files a `-sS -sV` scan writes are rendered from
/// the finished log, so they hold every service and say the scan completed —
/// the same bytes `prtip export` writes from the log afterwards.
#[test]
fn scan_outputs_equal_exports_of_the_finished_log() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = common::lab("sso");
    let ns = lab.config().scan_ns.clone();
    let home = tempfile::tempdir().unwrap();
    let path = |name: &str| home.path().join(name).to_str().unwrap().to_string();
    let (json, csv, html) = (path("v.json"), path("v.csv"), path("v.html"));
    let out = common::scan_cmd(
        home.path(),
        &ns,
        &[
            "scan",
            "-sS",
            "-sV",
            "198.19.0.1-4",
            "-p",
            "21,22,23,25,80",
            "--wait",
            "300ms",
            "--version-wait",
            "1500ms",
            "--quiet",
            "--oJ",
            &json,
            "--csv",
            &csv,
            "--html",
            &html,
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let export = |format: &str| -> String {
        let out = common::prtip()
            .args(["export", "1", "-f", format, "-o", "-"])
            .env("PRTIP_HOME", home.path())
            .env_remove("PRTIP_HISTORY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "export -f {format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let written = std::fs::read_to_string(&json).unwrap();
    assert!(
        written.contains("\"product\":\""),
        "-oJ has no detected product:\n{written}"
    );
    assert_eq!(
        written,
        export("json"),
        "-oJ differs from prtip export -f json"
    );
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        export("csv"),
        "--csv differs from prtip export -f csv"
    );
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(
        !html.contains("still running"),
        "the --html of a finished scan says it is running"
    );
    assert!(
        html.contains("completed"),
        "the --html does not say completed"
    );
}
