//! `prtip scan --xdp IFACE` on the project's lab, as a user runs it: the same
//! results as the AF_PACKET backend, both equal to the lab's ground truth, with
//! the kernel answering and with the XDP responder answering; pause with SIGINT
//! and `prtip replay --from-checkpoint` over AF_XDP; bad XDP flags exit 2 and
//! write nothing; no XDP program is left on the scanner's interface. Needs root.

mod common;

use common::{log_results, scan_cmd, scan_dir};

use prtip_store::{HistoryIndex, LogReader, ScanStatus};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

const OPEN: [u16; 2] = [80, 8080];
const PORTS: &str = "22,80,443,8080";

type Results = common::PortResults;

/// A lab whose target's kernel answers; with `xdp_responder`, the XDP responder
/// (and the scanner side's pass-through) attached in this process on top, so
/// that every SYN is answered by XDP_TX. Drop order: programs, then the lab.
struct Lab {
    xdp: Option<prtip_xdp::lab::LabPrograms>,
    guard: prtip_lab::LabGuard,
}

impl Lab {
    fn config(&self) -> &prtip_lab::LabConfig {
        self.guard.config()
    }
}

fn lab(prefix: &str, xdp_responder: bool) -> Lab {
    let guard = common::lab_with(prtip_lab::LabConfig {
        tcp_ports: OPEN.to_vec(),
        ..common::lab_config(prefix)
    });
    let xdp = xdp_responder.then(|| {
        let c = guard.config();
        let cfg = prtip_xdp::responder::ResponderConfig::new(
            c.target_net.addr(),
            c.target_net.prefix(),
            &c.tcp_ports,
        )
        .unwrap();
        let sides = prtip_xdp::lab::LabSides {
            scan_ns: c.scan_ns.clone(),
            scan_if: c.scan_if.clone(),
            tgt_ns: c.tgt_ns.clone(),
            tgt_if: c.tgt_if.clone(),
        };
        prtip_xdp::lab::attach(
            &sides,
            &prtip_xdp::lab::LabTarget::Responder(cfg),
            prtip_xdp::XdpMode::Native,
        )
        .unwrap()
    });
    Lab { xdp, guard }
}

fn truth(base: Ipv4Addr, prefix: u8) -> Results {
    common::tcp_truth(base, prefix, &[22, 80, 443, 8080], &OPEN)
}

fn ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn backend_of(home: &Path, id: u64) -> prtip_store::event::BackendKind {
    LogReader::open(&scan_dir(home, id))
        .unwrap()
        .scan_started()
        .unwrap()
        .spec
        .backend
}

/// Scan `net` with AF_PACKET then with AF_XDP; both must equal the ground truth.
fn same_results(lab: &Lab, net: &str, base: Ipv4Addr, prefix: u8, rate: &str) {
    let home = tempfile::tempdir().unwrap();
    let ns = lab.config().scan_ns.clone();
    let iface = lab.config().scan_if.clone();
    let common_args = ["-p", PORTS, "--rate", rate, "--wait", "1s", "--quiet"];
    let packet = scan_cmd(
        home.path(),
        &ns,
        &[&["scan", net, "--backend", "packet"][..], &common_args].concat(),
    )
    .output()
    .unwrap();
    ok(&packet);
    let xdp = scan_cmd(
        home.path(),
        &ns,
        &[&["scan", net, "--xdp", &iface][..], &common_args].concat(),
    )
    .output()
    .unwrap();
    ok(&xdp);
    assert_eq!(
        backend_of(home.path(), 1),
        prtip_store::event::BackendKind::Packet
    );
    assert_eq!(
        backend_of(home.path(), 2),
        prtip_store::event::BackendKind::Xdp
    );
    let want = truth(base, prefix);
    let got_packet = log_results(&scan_dir(home.path(), 1));
    let got_xdp = log_results(&scan_dir(home.path(), 2));
    if let Some(p) = &lab.xdp {
        // Every probe of both scans was answered by the XDP responder (a probe
        // lost to a burst in the veth ring is retried, hence at least).
        let st = prtip_xdp::responder::ResponderStats::read(&p.target).unwrap();
        assert!(st.syn_ack + st.rst >= 2 * want.len() as u64, "{st:?}");
        assert!(st.syn_ack >= 2 * want.len() as u64 / 2, "{st:?}");
    }
    assert!(
        got_packet == want,
        "AF_PACKET differs from ground truth ({} rows)",
        got_packet.len()
    );
    assert!(
        got_xdp == want,
        "AF_XDP differs from ground truth ({} rows)",
        got_xdp.len()
    );
    // Nothing of ours stays on the scanner's interface (the lab's own
    // pass-through, in responder mode, is back in place).
    let info = common::run_in_ns(&ns, "ip", &["-d", "link", "show", "dev", &iface]);
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(!info.contains("prtip_scan_filt"), "{info}");
}

#[test]
fn xdp_finds_what_af_packet_finds_with_the_kernel_answering() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = lab("pxk", false);
    same_results(
        &lab,
        "198.19.0.0/20",
        Ipv4Addr::new(198, 19, 0, 0),
        20,
        "15000",
    );
}

#[test]
fn xdp_finds_what_af_packet_finds_with_the_xdp_responder() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = lab("pxr", true);
    same_results(
        &lab,
        "198.19.0.0/18",
        Ipv4Addr::new(198, 19, 0, 0),
        18,
        "50000",
    );
}

#[test]
fn xdp_scan_pauses_on_sigint_and_resumes_to_ground_truth() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = lab("pxp", false);
    let home = tempfile::tempdir().unwrap();
    let ns = lab.config().scan_ns.clone();
    let iface = lab.config().scan_if.clone();
    let child = scan_cmd(
        home.path(),
        &ns,
        &[
            "scan",
            "198.19.0.0/18",
            "-p",
            PORTS,
            "--xdp",
            &iface,
            "--rate",
            "15000",
            "--wait",
            "500ms",
            "--quiet",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    // A paused scan exits 75 (EX_TEMPFAIL; docs/pause-resume.md), not 0.
    assert_eq!(
        out.status.code(),
        Some(75),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("paused at "), "{stdout}");
    let h = HistoryIndex::open(&home.path().join("history.redb")).unwrap();
    assert_eq!(h.get(1).unwrap().unwrap().status, ScanStatus::Paused);
    drop(h);
    let out = scan_cmd(
        home.path(),
        &ns,
        &["replay", "--from-checkpoint", "--quiet"],
    )
    .output()
    .unwrap();
    ok(&out);
    let h = HistoryIndex::open(&home.path().join("history.redb")).unwrap();
    let _ = h.refresh();
    assert_eq!(h.get(1).unwrap().unwrap().status, ScanStatus::Completed);
    assert_eq!(
        backend_of(home.path(), 1),
        prtip_store::event::BackendKind::Xdp
    );
    let got = log_results(&scan_dir(home.path(), 1));
    assert!(
        got == truth(Ipv4Addr::new(198, 19, 0, 0), 18),
        "results after pause + resume over AF_XDP differ from ground truth ({} rows)",
        got.len()
    );
}

#[test]
fn bad_xdp_flags_exit_2_and_write_nothing() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = lab("pxb", false);
    let ns = lab.config().scan_ns.clone();
    let iface = lab.config().scan_if.clone();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--xdp", &iface, "--xdp-mode", "turbo"],
            "bad --xdp-mode \"turbo\"",
        ),
        (
            vec!["--xdp", &iface, "--zero-copy=maybe"],
            "bad --zero-copy \"maybe\"",
        ),
        (
            vec!["--xdp", &iface, "--xdp-queues", "0"],
            "bad --xdp-queues 0",
        ),
        (
            vec!["--xdp", &iface, "--backend", "packet"],
            "conflicts with --backend packet",
        ),
        (vec!["--xdp-mode", "skb"], "--xdp-mode needs --xdp IFACE"),
        (vec!["--xdp", "nosuch0"], "nosuch0"),
        (vec!["--xdp", &iface, "--xdp-queues", "9"], "cannot use 9"),
        (vec!["--xdp", &iface, "--zero-copy"], "zero-copy"),
    ];
    for (extra, needle) in cases {
        let home = tempfile::tempdir().unwrap();
        let args = [
            &["scan", "198.19.0.0/24", "-p", "80", "--quiet"][..],
            &extra,
        ]
        .concat();
        let out = scan_cmd(home.path(), &ns, &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(
            !home.path().join("scans").exists(),
            "{extra:?}: nothing may be written"
        );
    }
    let info = common::run_in_ns(&ns, "ip", &["link", "show", "dev", &iface]);
    assert!(
        !String::from_utf8_lossy(&info.stdout).contains("xdp"),
        "nothing left attached"
    );
}

#[test]
fn without_cap_bpf_the_xdp_backend_says_what_is_missing() {
    if !common::netns_tests_enabled() {
        return;
    }
    let lab = lab("pxc", false);
    let home = tempfile::tempdir().unwrap();
    let ns = lab.config().scan_ns.clone();
    let iface = lab.config().scan_if.clone();
    // Root keeps CAP_NET_RAW (so the AF_PACKET checks pass) but loses what BPF and
    // AF_XDP need (CAP_SYS_ADMIN would stand in for CAP_BPF, so it goes too).
    let out = common::run_in_ns(
        &ns,
        "capsh",
        &[
            "--drop=cap_bpf,cap_perfmon,cap_sys_admin,cap_net_admin",
            "--",
            "-c",
            &format!(
                "PRTIP_HOME={} exec {} scan 198.19.0.0/24 -p 80 --quiet --xdp {iface}",
                home.path().display(),
                common::prtip_bin().display()
            ),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs CAP_BPF and CAP_NET_ADMIN"), "{err}");
    assert!(
        err.contains("setcap cap_bpf,cap_net_admin,cap_net_raw+ep"),
        "{err}"
    );
    assert!(
        !home.path().join("scans").exists(),
        "nothing may be written"
    );
    let info = common::run_in_ns(&ns, "ip", &["link", "show", "dev", &iface]);
    assert!(
        !String::from_utf8_lossy(&info.stdout).contains("xdp"),
        "nothing attached"
    );
}

#[test]
fn xdp_in_skb_mode_finds_the_ground_truth_too() {
    if !common::netns_tests_enabled() {
        return;
    }
    // The kernel answers: with the XDP responder the scanner's veth runs the
    // lab's pass-through in native mode, whose link the scan filter would take
    // over (keeping that link's mode), so --xdp-mode skb needs a free interface.
    let lab = lab("pxs", false);
    let home = tempfile::tempdir().unwrap();
    let ns = lab.config().scan_ns.clone();
    let iface = lab.config().scan_if.clone();
    let out = scan_cmd(
        home.path(),
        &ns,
        &[
            "scan",
            "198.19.0.0/22",
            "-p",
            PORTS,
            "--xdp",
            &iface,
            "--xdp-mode",
            "skb",
            "--rate",
            "15000",
            "--wait",
            "1s",
            "--quiet",
        ],
    )
    .output()
    .unwrap();
    ok(&out);
    let got = log_results(&scan_dir(home.path(), 1));
    assert!(
        got == truth(Ipv4Addr::new(198, 19, 0, 0), 22),
        "skb mode differs from ground truth ({} rows)",
        got.len()
    );
}
