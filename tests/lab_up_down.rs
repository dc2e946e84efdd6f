//! The lab, end to end: real namespaces, a real veth pair, the real responder.
//! Every test brings up its own uniquely named lab and tears it down (the guard
//! does it even when the test panics). Needs root.

mod common;

use common::*;
use prtip_lab::{netns, tcp_connect, tcp_probe, udp_probe, LabConfig, Proto, TcpProbe, UdpProbe};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn addr(s: &str, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(s.parse().unwrap(), port)
}

#[test]
fn open_ports_answer_with_their_banner_and_closed_ports_refuse() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab("open");
    let ns = &lab.config().scan_ns;

    let ssh = tcp_probe(ns, addr("198.19.200.7", 22), None, T).unwrap();
    assert_eq!(
        ssh.banner_text(),
        "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
    );

    let smtp = tcp_probe(ns, addr("198.19.0.1", 25), None, T).unwrap();
    assert_eq!(
        smtp.banner_text(),
        "220 mx.prtip.test ESMTP Postfix (Debian/GNU)\r\n"
    );

    let ftp = tcp_probe(ns, addr("198.19.255.254", 21), None, T).unwrap();
    assert_eq!(ftp.banner_text(), "220 (vsFTPd 3.0.3)\r\n");

    let http = tcp_probe(
        ns,
        addr("198.19.3.4", 80),
        Some(b"GET / HTTP/1.0\r\n\r\n"),
        T,
    )
    .unwrap();
    let text = http.banner_text();
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"),
        "{text}"
    );

    let redis = tcp_probe(ns, addr("198.19.9.9", 6379), Some(b"INFO\r\n"), T).unwrap();
    assert!(
        redis.banner_text().contains("redis_version:7.0.15\r\n"),
        "{redis:?}"
    );

    // Every other port of every address: RST, i.e. connection refused.
    for (ip, port) in [
        ("198.19.200.7", 23),
        ("198.19.0.1", 8081),
        ("198.19.1.1", 1),
    ] {
        assert_eq!(
            tcp_probe(ns, addr(ip, port), None, T).unwrap(),
            TcpProbe::Refused,
            "{ip}:{port}"
        );
    }

    // Outside the target network there is no route at all from the scanner namespace.
    match tcp_probe(ns, addr("198.20.0.1", 22), None, T).unwrap() {
        TcpProbe::Error(e) => assert!(e.contains("unreachable"), "{e}"),
        other => panic!("198.20.0.1 must be unreachable from the scanner namespace, got {other:?}"),
    }
}

#[test]
fn udp_ports_answer_and_other_udp_ports_are_unreachable() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab("udp");
    let ns = &lab.config().scan_ns;

    // DNS: an A query for any name answers with the address asked.
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["www", "prtip", "test"] {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    match udp_probe(ns, addr("198.19.77.66", 53), &q, T).unwrap() {
        UdpProbe::Reply(r) => {
            assert_eq!(&r[..2], &[0x12, 0x34]);
            assert_eq!(r[3] & 0x0f, 0, "NOERROR");
            assert_eq!(&r[r.len() - 4..], &[198, 19, 77, 66]);
        }
        other => panic!("DNS on 53: {other:?}"),
    }
    assert_eq!(
        udp_probe(ns, addr("198.19.5.5", 7), b"ping", T).unwrap(),
        UdpProbe::Reply(b"ping".to_vec())
    );
    assert_eq!(
        udp_probe(ns, addr("198.19.5.5", 54), b"x", T).unwrap(),
        UdpProbe::Unreachable
    );
}

#[test]
fn scanner_namespace_has_only_lo_and_its_veth_and_no_default_route() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab("iso");
    let c = lab.config();
    let mut links = netns::links(&c.scan_ns).unwrap();
    links.sort();
    let mut want = vec!["lo".to_string(), c.scan_if.clone()];
    want.sort();
    assert_eq!(links, want);
    assert_eq!(
        netns::default_routes(&c.scan_ns).unwrap(),
        Vec::<String>::new()
    );
    // The same, as a scanner inside the namespace sees it.
    let out = run_in_ns(&c.scan_ns, "ip", &["-4", "route", "show"]);
    let routes = String::from_utf8_lossy(&out.stdout);
    assert!(!routes.contains("default"), "{routes}");
    assert!(
        routes.contains(&format!("{} via {}", c.target_net, c.tgt_ip)),
        "{routes}"
    );
    // The target namespace answers for the whole network (AnyIP) and does not rate-limit ICMP.
    assert_eq!(
        netns::read_sysctl(&c.tgt_ns, "net.ipv4.icmp_ratelimit").unwrap(),
        "0"
    );
    let out = run_in_ns(&c.tgt_ns, "ip", &["route", "show", "table", "local"]);
    let local = String::from_utf8_lossy(&out.stdout);
    assert!(
        local.contains(&format!("local {} dev lo", c.target_net)),
        "{local}"
    );
    // The veth ends have one queue per configured queue.
    let out = run_in_ns(&c.scan_ns, "ip", &["-d", "link", "show", "dev", &c.scan_if]);
    let detail = String::from_utf8_lossy(&out.stdout);
    assert!(
        detail.contains(&format!(
            "numtxqueues {} numrxqueues {}",
            c.queues, c.queues
        )),
        "{detail}"
    );
}

#[test]
fn the_guard_tears_the_lab_down_even_when_the_test_panics() {
    if !netns_tests_enabled() {
        return;
    }
    let cfg = lab_config("pnc");
    let (scan_ns, tgt_ns, dir) = (cfg.scan_ns.clone(), cfg.tgt_ns.clone(), cfg.lab_dir());
    let pid = std::sync::Arc::new(std::sync::Mutex::new(0u32));
    let seen = pid.clone();
    let result = std::panic::catch_unwind(move || {
        let lab = lab_with(cfg);
        *seen.lock().unwrap() = lab.responder_pid();
        assert!(ns_exists(&lab.config().scan_ns) && ns_exists(&lab.config().tgt_ns));
        panic!("test body fails while the lab is up");
    });
    assert!(result.is_err(), "the body panicked");
    assert!(!ns_exists(&scan_ns), "{scan_ns} left behind");
    assert!(!ns_exists(&tgt_ns), "{tgt_ns} left behind");
    assert!(!dir.exists(), "{} left behind", dir.display());
    let pid = *pid.lock().unwrap();
    assert_ne!(pid, 0);
    assert!(!pid_running(pid), "responder {pid} still running");
}

#[test]
fn two_labs_run_side_by_side_with_their_own_ports() {
    if !netns_tests_enabled() {
        return;
    }
    let a = lab_with(LabConfig {
        tcp_ports: vec![22],
        udp_ports: vec![],
        ..lab_config("sa")
    });
    let b = lab_with(LabConfig {
        tcp_ports: vec![80],
        udp_ports: vec![],
        ..lab_config("sb")
    });
    let a_ns = &a.config().scan_ns;
    let b_ns = &b.config().scan_ns;
    assert!(matches!(
        tcp_connect(a_ns, addr("198.19.1.2", 22), T).unwrap(),
        TcpProbe::Open { .. }
    ));
    assert_eq!(
        tcp_connect(a_ns, addr("198.19.1.2", 80), T).unwrap(),
        TcpProbe::Refused
    );
    assert!(matches!(
        tcp_connect(b_ns, addr("198.19.1.2", 80), T).unwrap(),
        TcpProbe::Open { .. }
    ));
    assert_eq!(
        tcp_connect(b_ns, addr("198.19.1.2", 22), T).unwrap(),
        TcpProbe::Refused
    );
    let report = a.down().unwrap();
    assert_eq!(report.removed_namespaces.len(), 2);
    // b is untouched by a's teardown.
    assert!(matches!(
        tcp_connect(b_ns, addr("198.19.1.2", 80), T).unwrap(),
        TcpProbe::Open { .. }
    ));
}

#[test]
fn every_address_of_the_target_network_matches_the_ground_truth() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab_with(LabConfig {
        target_net: "198.19.4.0/28".parse().unwrap(),
        tcp_ports: vec![22, 8080],
        udp_ports: vec![],
        ..lab_config("gt")
    });
    let c = lab.config().clone();
    let truth = c.ground_truth();
    let ports = [21u16, 22, 80, 8080];
    let expected: Vec<(Ipv4Addr, u16)> = truth
        .open_endpoints(Proto::Tcp, &c.target_net, &ports)
        .collect();
    assert_eq!(expected.len(), 16 * 2);
    // One plain connect per (address, port), made from a thread inside the scanner namespace.
    let found: Vec<(Ipv4Addr, u16)> = lab
        .in_scan_ns(move || {
            let mut open = Vec::new();
            for a in c.target_net.iter() {
                for &p in &ports {
                    let sa = SocketAddrV4::new(a, p);
                    if std::net::TcpStream::connect_timeout(&sa.into(), T).is_ok() {
                        open.push((a, p));
                    }
                }
            }
            open
        })
        .unwrap();
    assert_eq!(found, expected);
}

/// A lab brought up through the CLI, removed through the CLI on drop.
struct CliLab(String);

impl Drop for CliLab {
    fn drop(&mut self) {
        let _ = prtip().args(["lab", "down", "--name", &self.0]).output();
    }
}

#[test]
fn cli_up_status_down_and_down_again() {
    if !netns_tests_enabled() {
        return;
    }
    let name = LabConfig::unique("cli").name;
    let guard = CliLab(name.clone());
    let up = prtip()
        .args([
            "lab",
            "up",
            "--name",
            &name,
            "--tcp-ports",
            "22,80",
            "--udp-ports",
            "53",
            "--queues",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let st = prtip()
        .args(["lab", "status", "--name", &name, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["up"], true, "{v}");
    assert_eq!(
        v["ground_truth"]["tcp_open"],
        serde_json::json!([22, 80]),
        "{v}"
    );
    assert_eq!(v["config"]["queues"], 1, "{v}");
    let st = prtip()
        .args(["lab", "status", "--name", &name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    assert_eq!(st.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("lab {name}: up")), "{text}");
    assert!(
        text.contains("ground truth: every address of 198.19.0.0/16 (65536) answers: TCP open 22,80 (all other TCP ports RST), UDP open 53"),
        "{text}"
    );
    let down = prtip()
        .args(["lab", "down", "--name", &name])
        .output()
        .unwrap();
    assert!(down.status.success());
    assert!(String::from_utf8_lossy(&down.stdout).contains("removed namespaces"));
    assert!(!ns_exists(&format!("{name}-scan")) && !ns_exists(&format!("{name}-tgt")));
    let again = prtip()
        .args(["lab", "down", "--name", &name])
        .output()
        .unwrap();
    assert!(again.status.success(), "down is idempotent");
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to remove"));
    let st = prtip()
        .args(["lab", "status", "--name", &name])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(3), "status of a lab that is down");
    drop(guard);
}

#[test]
fn bad_input_names_the_bad_value_and_exits_2_without_creating_anything() {
    let name = LabConfig::unique("bad").name;
    for (flag, value, needle) in [
        ("--tcp-ports", "22,99999", "99999"),
        ("--udp-ports", "53,dns", "'dns'"),
        ("--target-net", "198.19.0.0/33", "198.19.0.0/33"),
        ("--target-net", "198.19.1.0/16", "198.19.1.0/16"),
        ("--target-net", "300.1.0.0/16", "300.1.0.0/16"),
        ("--scan-mac", "02:70:72:74:00", "02:70:72:74:00"),
        ("--scan-ip", "198.18.0.5", "198.18.0.5"),
        ("--name", "this-name-is-too-long", "this-name-is-too-long"),
    ] {
        let mut args = vec!["lab", "up", flag, value];
        if flag != "--name" {
            args.extend(["--name", &name]);
        }
        let out = prtip().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(
            err.contains(needle),
            "{flag} {value}: message must name the value: {err}"
        );
    }
    assert!(!ns_exists(&format!("{name}-scan")) && !ns_exists(&format!("{name}-tgt")));
    for cmd in ["status", "down"] {
        let out = prtip()
            .args(["lab", cmd, "--name", "../../etc"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "lab {cmd}: {err}");
        assert!(err.contains("'../../etc'"), "lab {cmd}: {err}");
    }
}

#[test]
fn without_privileges_lab_up_refuses_with_exit_2() {
    if !netns_tests_enabled() {
        return;
    }
    let name = LabConfig::unique("np").name;
    // Root without any capability: an empty bounding and inheritable set.
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set=-all", "--inh-caps=-all"])
        .arg(prtip_bin())
        .args(["lab", "up", "--name", &name])
        .output()
        .expect("setpriv (util-linux) runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("CAP_NET_ADMIN") && err.contains("needs root"),
        "{err}"
    );
    assert!(!ns_exists(&format!("{name}-scan")));
}

#[test]
fn the_responder_keeps_answering_many_connections() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab_with(LabConfig {
        tcp_ports: vec![22, 80],
        udp_ports: vec![],
        ..lab_config("many")
    });
    // 2000 connections to 1000 addresses, each reading the SSH banner or closing at once.
    let (banners, connects) = lab
        .in_scan_ns(|| {
            use std::io::Read;
            let (mut banners, mut connects) = (0, 0);
            for i in 0..1000u32 {
                let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i * 37);
                let mut s =
                    std::net::TcpStream::connect_timeout(&SocketAddrV4::new(a, 22).into(), T)
                        .unwrap();
                s.set_read_timeout(Some(T)).unwrap();
                let mut buf = [0u8; 64];
                let n = s.read(&mut buf).unwrap();
                if buf[..n].starts_with(b"SSH-2.0-OpenSSH_9.2p1") {
                    banners += 1;
                }
                if std::net::TcpStream::connect_timeout(&SocketAddrV4::new(a, 80).into(), T).is_ok()
                {
                    connects += 1;
                }
            }
            (banners, connects)
        })
        .unwrap();
    assert_eq!((banners, connects), (1000, 1000));
}

#[test]
fn cli_xdp_responder_answers_syns_and_down_stops_its_holder() {
    if !netns_tests_enabled() {
        return;
    }
    let name = LabConfig::unique("xdp").name;
    let guard = CliLab(name.clone());
    let up = prtip()
        .args([
            "lab",
            "up",
            "--name",
            &name,
            "--responder",
            "xdp",
            "--tcp-ports",
            "22,80",
            "--udp-ports",
            "53",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "{}{}",
        text,
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(text.contains("responder: xdp"), "{text}");
    assert!(text.contains("helper xdp-holder: pid"), "{text}");
    let cfg = prtip_lab::load_config(std::path::Path::new("/run/prtip-lab"), &name)
        .unwrap()
        .expect("the lab's config is recorded");
    let holder = prtip_lab::helpers(&cfg);
    assert_eq!(holder.len(), 1, "{holder:?}");
    let ns = &cfg.scan_ns;
    // The XDP program answers the SYN (the handshake completes, then the target's
    // kernel, which has no connection, resets it); closed ports get RST to the SYN.
    match tcp_probe(ns, addr("198.19.250.3", 22), None, T).unwrap() {
        TcpProbe::Open { .. } => {}
        TcpProbe::Error(e) => assert!(e.contains("reset"), "open port via XDP: {e}"),
        other => panic!("open port via XDP: {other:?}"),
    }
    assert_eq!(
        tcp_probe(ns, addr("198.19.250.3", 23), None, T).unwrap(),
        TcpProbe::Refused
    );
    let down = prtip()
        .args(["lab", "down", "--name", &name])
        .output()
        .unwrap();
    assert!(down.status.success());
    assert!(
        !pid_running(holder[0].pid),
        "holder {} still running",
        holder[0].pid
    );
    assert!(!ns_exists(ns));
    drop(guard);
}

/// Not a test on its own: the child process of
/// `a_lab_whose_test_was_killed_is_removed_by_down_stale`, which brings up a lab
/// and waits to be killed.
#[test]
#[ignore = "run by a_lab_whose_test_was_killed_is_removed_by_down_stale"]
fn stale_lab_child() {
    let Ok(name) = std::env::var("PRTIP_STALE_CHILD") else {
        return;
    };
    let lab = lab_with(LabConfig {
        udp_ports: vec![],
        ..LabConfig {
            responder_exe: Some(prtip_bin()),
            ..LabConfig::named(&name)
        }
    });
    println!("up {}", lab.config().name);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_lab_whose_test_was_killed_is_removed_by_down_stale() {
    if !netns_tests_enabled() {
        return;
    }
    let name = LabConfig::unique("stl").name;
    let guard = CliLab(name.clone());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "stale_lab_child", "--ignored", "--nocapture"])
        .env("PRTIP_STALE_CHILD", &name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = std::path::Path::new("/run/prtip-lab").join(&name);
    let start = std::time::Instant::now();
    while !dir.join("responder.pid").exists() || !ns_exists(&format!("{name}-scan")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child never brought its lab up"
        );
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the child exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait until the lab is complete (the guard exists), then kill the test hard:
    // its Drop guard cannot run.
    while prtip()
        .args(["lab", "status", "--name", &name])
        .output()
        .unwrap()
        .status
        .code()
        != Some(0)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child's lab never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        ns_exists(&format!("{name}-scan")),
        "the killed test's lab is left behind"
    );
    let out = prtip().args(["lab", "down", "--stale"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("prtip lab {name}: removed namespaces")),
        "{text}"
    );
    assert!(!ns_exists(&format!("{name}-scan")) && !ns_exists(&format!("{name}-tgt")));
    assert!(!dir.exists());
    drop(guard);
}
