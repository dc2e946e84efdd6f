//! The XDP responder's sparse mode (`prtip lab up --responder xdp
//! --xdp-live-every N`): only every N-th address answers SYNs, the rest are
//! dropped at XDP; nmap as the oracle against the lab's ground truth. Needs root and nmap.

mod common;
mod lab_support;

use common::*;
use lab_support::*;
use prtip_lab::{PortTruth, Proto};

#[test]
fn only_every_fourth_address_answers_syns_and_the_rest_are_counted_silent() {
    if !netns_tests_enabled() {
        return;
    }
    let bad = CliLab::new("xsb");
    let out = bad.cmd("up", &["--xdp-live-every", "4"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs --responder xdp"),
        "{out:?}"
    );
    let l = CliLab::new("xsp");
    let out = l
        .cmd(
            "up",
            &[
                "--responder",
                "xdp",
                "--xdp-live-every",
                "4",
                "--target-net",
                "198.19.0.0/24",
                "--tcp-ports",
                "80",
                "--udp-ports",
                "none",
                "--queues",
                "1",
            ],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = l.config();
    assert_eq!(c.xdp_live_every, 4);
    let g = c.ground_truth();
    let states = nmap_states(
        &c.scan_ns,
        &[
            "-sS",
            "-T5",
            "--max-retries",
            "1",
            "--max-rtt-timeout",
            "300ms",
            "-p",
            "80,81",
            "198.19.0.0/27",
        ],
    );
    assert_eq!(states.len(), 64);
    let mut silent = 0;
    for ((addr, port), (state, _)) in &states {
        let truth = g.port(Proto::Tcp, *addr, *port);
        let want = match truth {
            PortTruth::Open => "open",
            PortTruth::Closed => "closed",
            _ => "filtered",
        };
        assert_eq!(state, want, "{addr} port {port}");
        silent += usize::from(truth == PortTruth::Silent);
    }
    assert_eq!(silent, 48, "24 of 32 addresses x 2 ports are silent");
    // The responder counted every SYN it dropped: nmap sends each silent probe
    // twice (--max-retries 1).
    let tgt_if = c.tgt_if.clone();
    let s = prtip_xdp::in_netns(&c.tgt_ns, || {
        prtip_xdp::responder::ResponderStats::of_interface(&tgt_if)
    })
    .unwrap();
    assert_eq!(s.silent, 96, "{s:?}");
    assert_eq!(s.syn_ack + s.rst, 16, "{s:?}");
}
