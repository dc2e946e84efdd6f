//! The lab's XDP programs on a real veth pair between two namespaces:
//! the responder answers SYNs itself (SYN-ACK on open ports, RST+ACK on closed
//! ones, the kernel for everything else), the sink drops and counts every
//! frame, the scanner side's pass-through lets XDP_TX'd replies in, and every
//! program is gone once its handle is dropped. Needs root (skips otherwise).

mod xdp_support;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use prtip_xdp::lab::{self, LabTarget};
use prtip_xdp::responder::{ResponderConfig, ResponderStats};
use prtip_xdp::sink::SinkStats;
use prtip_xdp::{in_netns, XdpError, XdpMode};
use xdp_support::{ip, mac_str, VethPair, TGT_IP, TGT_MAC};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let r = unsafe { libc::geteuid() } == 0;
    if !r {
        eprintln!("skipping: needs root (network namespaces, BPF)");
    }
    r
}

/// Wait (up to 10 s) until `f` returns Some; the value is what the test checks.
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// connect() from the scanner namespace: Ok(true) = handshake completed, Ok(false) = refused.
fn tcp_connect(ns: &str, addr: Ipv4Addr, port: u16) -> bool {
    in_netns(ns, || {
        match TcpStream::connect_timeout(
            &SocketAddrV4::new(addr, port).into(),
            Duration::from_secs(5),
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(false),
            Err(e) => panic!("connect {addr}:{port}: {e}"),
        }
    })
    .unwrap()
}

#[test]
fn responder_answers_every_syn_of_the_target_network() {
    if !root() {
        return;
    }
    let pair = VethPair::new("resp", 2, "198.19.0.0/16");
    let cfg = ResponderConfig::new(Ipv4Addr::new(198, 19, 0, 0), 16, &[22, 80, 8080]).unwrap();
    let info = in_netns(&pair.tgt_ns, || prtip_xdp::interface_info(&pair.tgt_if)).unwrap();
    assert_eq!(info.rx_queues, 2);
    assert!(info.native_xdp, "veth runs XDP natively: {info:?}");
    assert!(!info.zero_copy, "veth has no AF_XDP zero-copy: {info:?}");
    assert_eq!(info.attached, None);
    let progs = lab::attach(&pair.sides(), &LabTarget::Responder(cfg), XdpMode::Native).unwrap();
    let info = in_netns(&pair.tgt_ns, || prtip_xdp::interface_info(&pair.tgt_if)).unwrap();
    assert_eq!(
        info.attached,
        Some((
            progs.target.prog_id(),
            "prtip_responder".to_string(),
            XdpMode::Native
        ))
    );
    assert_eq!(
        progs.target.mode(),
        XdpMode::Native,
        "veth runs XDP natively"
    );
    assert_eq!(progs.target.program(), "prtip_responder");
    assert_eq!(progs.scanner.as_ref().unwrap().program(), "prtip_pass");

    let addrs = [
        Ipv4Addr::new(198, 19, 0, 0),
        Ipv4Addr::new(198, 19, 0, 1),
        Ipv4Addr::new(198, 19, 77, 3),
        Ipv4Addr::new(198, 19, 255, 255),
    ];
    let ports = [22u16, 80, 81, 443, 8080, 65535];
    let mut opened = Vec::new();
    for &a in &addrs {
        for &p in &ports {
            if tcp_connect(&pair.scan_ns, a, p) {
                opened.push((a, p));
            }
        }
    }
    let expect: Vec<(Ipv4Addr, u16)> = addrs
        .iter()
        .flat_map(|&a| [22u16, 80, 8080].map(move |p| (a, p)))
        .collect();
    assert_eq!(opened, expect, "a full handshake exactly on the open ports");

    let stats = ResponderStats::read(&progs.target).unwrap();
    assert_eq!(stats.syn_ack, 12, "{stats:?}");
    assert_eq!(stats.rst, 12, "{stats:?}");

    // The target's own address is not in the target network: its kernel answers (RST, no listener).
    let before = stats;
    assert!(!tcp_connect(&pair.scan_ns, xdp_support::TGT_IP, 22));
    let after = ResponderStats::read(&progs.target).unwrap();
    assert_eq!((after.syn_ack, after.rst), (before.syn_ack, before.rst));
    assert!(
        after.passed > before.passed,
        "the SYN went to the kernel: {after:?}"
    );

    drop(progs);
    assert!(pair.detached(false), "{}", pair.link_details(false));
    assert!(pair.detached(true), "{}", pair.link_details(true));
}

#[test]
fn sink_drops_and_counts_every_frame() {
    if !root() {
        return;
    }
    let pair = VethPair::new("sink", 1, "198.19.0.0/16");
    let progs = lab::attach(&pair.sides(), &LabTarget::Sink, XdpMode::Native).unwrap();
    assert!(
        progs.scanner.is_none(),
        "the sink needs nothing on the scanner side"
    );
    assert!(pair.link_details(false).contains("xdp"));

    let payload = [0u8; 18];
    let mut sent = 0u64;
    for burst in 0..10 {
        in_netns(&pair.scan_ns, || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            for i in 0..100u16 {
                s.send_to(
                    &payload,
                    SocketAddrV4::new(Ipv4Addr::new(198, 19, burst, i as u8), 9 + i),
                )
                .unwrap();
            }
            Ok(())
        })
        .unwrap();
        sent += 100;
        // Wait for this burst to arrive before the next (the veth ring holds 256 frames).
        let got = wait_for(|| {
            let s = SinkStats::read(&progs.target).unwrap();
            (s.frames >= sent).then_some(s)
        })
        .expect("frames reach the sink");
        assert_eq!(got.frames, sent);
    }
    let s = SinkStats::read(&progs.target).unwrap();
    assert_eq!(s.frames, 1000);
    assert_eq!(s.bytes, 1000 * (14 + 20 + 8 + 18));
    // Another process (the benchmark harness) reads the same counters through the attached program.
    let seen = in_netns(&pair.tgt_ns, || SinkStats::of_interface(&pair.tgt_if)).unwrap();
    assert_eq!(seen, s);
    let err = in_netns(&pair.scan_ns, || SinkStats::of_interface(&pair.scan_if)).unwrap_err();
    assert!(err.to_string().contains("no XDP program"), "{err}");

    // ARP goes to the target's kernel, uncounted: behind the sink every target
    // is silent, but the next hop answers ARP (a scan's uplink watch checks it).
    let (tgt_ip, tgt_mac) = (TGT_IP.to_string(), mac_str(TGT_MAC));
    ip(&[
        "-n",
        &pair.scan_ns,
        "neigh",
        "del",
        &tgt_ip,
        "dev",
        &pair.scan_if,
    ]);
    in_netns(&pair.scan_ns, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(&payload, SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 1), 9))
            .unwrap();
        Ok(())
    })
    .unwrap();
    let neigh = wait_for(|| {
        let n = ip(&[
            "-n",
            &pair.scan_ns,
            "neigh",
            "show",
            &tgt_ip,
            "dev",
            &pair.scan_if,
        ]);
        n.contains(&tgt_mac).then_some(n)
    });
    assert!(neigh.is_some(), "the next hop behind the sink answers ARP");
    let s = wait_for(|| {
        let s = SinkStats::read(&progs.target).unwrap();
        (s.frames > 1000).then_some(s)
    })
    .expect("the datagram reaches the sink once ARP is answered");
    assert_eq!(s.frames, 1001, "ARP is not counted");

    drop(progs);
    assert!(pair.detached(false));
}

#[test]
fn skb_mode_works_too() {
    if !root() {
        return;
    }
    let pair = VethPair::new("skb", 1, "198.19.0.0/16");
    let cfg = ResponderConfig::new(Ipv4Addr::new(198, 19, 0, 0), 16, &[443]).unwrap();
    let progs = lab::attach(&pair.sides(), &LabTarget::Responder(cfg), XdpMode::Skb).unwrap();
    assert_eq!(progs.target.mode(), XdpMode::Skb);
    assert!(pair.link_details(false).contains("xdpgeneric"));
    assert!(tcp_connect(
        &pair.scan_ns,
        Ipv4Addr::new(198, 19, 3, 4),
        443
    ));
    assert!(!tcp_connect(
        &pair.scan_ns,
        Ipv4Addr::new(198, 19, 3, 4),
        444
    ));
    let s = ResponderStats::read(&progs.target).unwrap();
    assert_eq!((s.syn_ack, s.rst), (1, 1));
}

#[test]
fn a_busy_missing_or_down_interface_is_explained() {
    if !root() {
        return;
    }
    let pair = VethPair::new("err", 1, "198.19.0.0/16");
    let sink = lab::attach(&pair.sides(), &LabTarget::Sink, XdpMode::Native).unwrap();
    let err = lab::attach(&pair.sides(), &LabTarget::Sink, XdpMode::Native).unwrap_err();
    match &err {
        XdpError::Busy {
            prog_name, ifname, ..
        } => {
            assert_eq!(prog_name, "prtip_sink");
            assert_eq!(ifname, &pair.tgt_if);
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(
        err.to_string().contains("already has the XDP program"),
        "{err}"
    );
    drop(sink);

    let err = in_netns(&pair.scan_ns, || {
        prtip_xdp::pass::attach("nosuch0", XdpMode::Native)
    })
    .unwrap_err();
    assert!(
        matches!(err, XdpError::NoSuchInterface { ref ifname } if ifname == "nosuch0"),
        "{err:?}"
    );

    xdp_support::ip(&["-n", &pair.scan_ns, "link", "set", &pair.scan_if, "down"]);
    let err = in_netns(&pair.scan_ns, || {
        prtip_xdp::pass::attach(&pair.scan_if, XdpMode::Native)
    })
    .unwrap_err();
    assert!(matches!(err, XdpError::InterfaceDown { .. }), "{err:?}");
    assert!(err.to_string().contains("ip link set"), "{err}");
}

/// Helper run as a child process by the holder tests: `lab::hold` with the
/// arguments in PRTIP_XDP_HOLD_ARGS (separated by \x1f), as `prtip xdp-hold` runs it.
#[test]
#[ignore = "helper process of holder_process_holds_until_told_or_the_lab_goes"]
fn child_runs_holder() {
    let Ok(args) = std::env::var("PRTIP_XDP_HOLD_ARGS") else {
        return;
    };
    let args: Vec<String> = args.split('\x1f').map(str::to_string).collect();
    lab::hold(&lab::HolderArgs::from_args(&args).unwrap()).unwrap();
}

fn holder_command(h: &lab::HolderArgs) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args(["--ignored", "--exact", "child_runs_holder", "--nocapture"])
        .env("PRTIP_XDP_HOLD_ARGS", h.to_args().join("\x1f"));
    c
}

fn exited(pid: u32) -> bool {
    let mut st = 0;
    // SAFETY: waitpid with WNOHANG on our own child's pid.
    unsafe { libc::waitpid(pid as i32, &mut st, libc::WNOHANG) == pid as i32 }
}

#[test]
fn holder_process_holds_until_told_or_the_lab_goes() {
    if !root() {
        return;
    }
    let pair = VethPair::new("hold", 2, "198.19.0.0/16");
    let cfg = ResponderConfig::new(Ipv4Addr::new(198, 19, 0, 0), 16, &[8080]).unwrap();
    let h = lab::HolderArgs {
        sides: pair.sides(),
        target: LabTarget::Responder(cfg),
        mode: XdpMode::Native,
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("holder.log");
    let holder = lab::spawn_holder(holder_command(&h), &log).unwrap();
    assert!(
        holder.ready.contains("prtip_responder on"),
        "{}",
        holder.ready
    );
    assert!(holder.ready.contains("prtip_pass on"), "{}", holder.ready);
    assert!(tcp_connect(
        &pair.scan_ns,
        Ipv4Addr::new(198, 19, 9, 9),
        8080
    ));
    assert!(!tcp_connect(
        &pair.scan_ns,
        Ipv4Addr::new(198, 19, 9, 9),
        8081
    ));

    lab::stop_holder(holder.pid).unwrap();
    assert!(pair.detached(false));
    assert!(pair.detached(true));

    // A holder whose lab is torn down under it notices and exits by itself.
    let holder = lab::spawn_holder(holder_command(&h), &log).unwrap();
    xdp_support::ip(&["netns", "del", &pair.tgt_ns]);
    let got = wait_for(|| exited(holder.pid).then_some(()));
    assert!(
        got.is_some(),
        "the holder exits once its interfaces are gone"
    );
    assert!(!pair.link_details(true).contains("xdp"));

    // A holder that cannot attach says why and exits.
    let err = lab::spawn_holder(holder_command(&h), &log).unwrap_err();
    assert!(err.to_string().contains(&pair.tgt_ns), "{err}");
}
