//! `prtip scan -iL`: the list is stored once beside the log as a target list
//! file named by the BLAKE3 hash of its bytes, the ScanStarted record names it,
//! the results equal the lab's ground truth for exactly the listed addresses
//! (duplicates folded, excludes removed), and a damaged or missing list file is
//! damage that `prtip log verify` reports and readers refuse.
//! Needs root (skips otherwise).

mod common;

use common::*;
use prtip_lab::LabConfig;
use prtip_store::event::{PortState, Protocol};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

fn prtip(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(prtip_bin())
        .args(args)
        .arg(dir)
        .env_remove("PRTIP_HISTORY")
        .output()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn an_il_scan_stores_its_list_by_hash_and_equals_ground_truth() {
    if !netns_tests_enabled() {
        return;
    }
    let lab = lab_with(LabConfig {
        tcp_ports: vec![22, 80],
        udp_ports: vec![],
        queues: 1,
        ..lab_config("til")
    });
    let c = lab.config().clone();
    let home = tempfile::tempdir().unwrap();
    let list = home.path().join("hitlist.txt");
    std::fs::write(
        &list,
        "198.19.0.1\n198.19.0.5 198.19.0.2 # two more\n\n# a comment\n198.19.1.0/30\n\
         198.19.0.5\n198.19.2.10-198.19.2.12\n",
    )
    .unwrap();
    let out = scan_cmd(
        home.path(),
        &c.scan_ns,
        &[
            "scan",
            "-sS",
            "-iL",
            list.to_str().unwrap(),
            "--exclude",
            "198.19.1.2",
            "-p",
            "22,80,443",
            "--wait",
            "500ms",
            "--quiet",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = scan_dir(home.path(), 1);

    // Exactly the listed addresses (duplicates folded, the exclude removed),
    // each port as the lab answers it: 22 and 80 open, 443 closed.
    let addrs = [
        "198.19.0.1",
        "198.19.0.2",
        "198.19.0.5",
        "198.19.1.0",
        "198.19.1.1",
        "198.19.1.3",
        "198.19.2.10",
        "198.19.2.11",
        "198.19.2.12",
    ];
    let mut want = PortResults::new();
    for a in addrs {
        let a: Ipv4Addr = a.parse().unwrap();
        for (port, state) in [
            (22, PortState::Open),
            (80, PortState::Open),
            (443, PortState::Closed),
        ] {
            want.insert((a, Protocol::Tcp, port), state);
        }
    }
    assert_eq!(log_results(&dir), want);

    // One list file, named by the BLAKE3 hash of its bytes; the spec names it.
    let lists: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("targets-"))
        .collect();
    assert_eq!(lists.len(), 1, "{lists:?}");
    let list_path = dir.join(&lists[0]);
    let bytes = std::fs::read(&list_path).unwrap();
    let hex = blake3::hash(&bytes).to_hex().to_string();
    assert_eq!(lists[0], format!("targets-{hex}.bin"));
    let spec = prtip_store::LogReader::open(&dir)
        .unwrap()
        .scan_started()
        .unwrap()
        .spec;
    assert_eq!(spec.targets, [format!("@list:{hex}:9:0")]);
    assert!(spec.excludes.is_empty(), "excludes are applied in the list");

    // History and reports say what the token is, in words; JSON also gives the
    // list's file, hash and counts.
    let words = format!("-iL list: 9 IPv4 addresses (targets-{}…)", &hex[..8]);
    let history = |args: &[&str]| {
        let o = Command::new(prtip_bin())
            .arg("--home")
            .arg(home.path())
            .args(args)
            .env_remove("PRTIP_HISTORY")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    let show = history(&["history", "show", "1"]);
    assert!(
        show.contains(&format!("targets          {words}\n")),
        "{show}"
    );
    let row = history(&["history", "list"]);
    assert!(row.contains("-iL list: 9 IPv4 addres…"), "{row}");
    let json: serde_json::Value =
        serde_json::from_str(history(&["history", "list", "--json"]).trim()).unwrap();
    assert_eq!(json["targets"], words.as_str());
    assert_eq!(
        json["target_list"],
        serde_json::json!({"file": lists[0], "blake3": hex, "ipv4": 9, "ipv6": 0})
    );
    let html = prtip(&["export", "--format", "html", "-o", "-"], &dir);
    let html = String::from_utf8_lossy(&html.stdout);
    assert!(
        html.contains(&format!("<dd>{words} (9 addresses)</dd>")),
        "{html}"
    );
    for text in [show.as_str(), row.as_str(), &html] {
        assert!(!text.contains("@list"), "{text}");
    }
    let v = prtip(&["log", "verify"], &dir);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );

    // One flipped byte in the list file: damage, named by verify and by readers.
    let bad = home.path().join("bad");
    copy_dir(&dir, &bad);
    let mut b = bytes.clone();
    b[80] ^= 1;
    std::fs::write(bad.join(&lists[0]), &b).unwrap();
    let v = prtip(&["log", "verify"], &bad);
    let text = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(3), "{text}");
    assert!(text.contains("end: DAMAGED"), "{text}");
    assert!(
        text.contains(&format!(
            "damage: target list {}",
            bad.join(&lists[0]).display()
        )) && text.contains("the file is damaged"),
        "{text}"
    );
    let e = prtip(&["export", "--format", "csv"], &bad);
    let err = String::from_utf8_lossy(&e.stderr);
    assert_ne!(e.status.code(), Some(0));
    assert!(err.contains(&lists[0]) && err.contains("damaged"), "{err}");

    // The list file removed: the record names a missing list.
    let gone = home.path().join("gone");
    copy_dir(&dir, &gone);
    std::fs::remove_file(gone.join(&lists[0])).unwrap();
    let v = prtip(&["log", "verify"], &gone);
    let text = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(3), "{text}");
    assert!(text.contains("is missing"), "{text}");
}
