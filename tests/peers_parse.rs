//! The peer harness's output parsers and recall tally (benches/peers/parse.rs,
//! truth.rs) on output captured from the real peers in the lab: every open
//! port found, closed ports and comments ignored, unreadable lines counted,
//! duplicates folded and false positives counted.

#[path = "../benches/peers/parse.rs"]
#[allow(dead_code)]
mod parse;
#[path = "../benches/peers/truth.rs"]
#[allow(dead_code)]
mod truth;

use std::net::Ipv4Addr;

fn collect(
    f: fn(&str, &mut dyn FnMut(Ipv4Addr, u16)) -> u64,
    text: &str,
) -> (Vec<(Ipv4Addr, u16)>, u64) {
    let mut v = Vec::new();
    let bad = f(text, &mut |a, p| v.push((a, p)));
    (v, bad)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn masscan_list_output() {
    // masscan 1.3.2 -oL, as written in the lab.
    let text =
        "#masscan\nopen tcp 8080 198.19.3.7 1764082212\nopen tcp 80 198.19.0.0 1764082212\n# end\n";
    let (v, bad) = collect(parse::masscan_list, text);
    assert_eq!(v, vec![(ip("198.19.3.7"), 8080), (ip("198.19.0.0"), 80)]);
    assert_eq!(bad, 0);
    let (v, bad) = collect(
        parse::masscan_list,
        "open tcp eighty 198.19.0.1 1\ngarbage\n",
    );
    assert_eq!((v.len(), bad), (0, 2));
}

#[test]
fn zmap_csv_output() {
    let text = "saddr,sport\n198.19.12.1,80\n198.19.0.255,80\n";
    let (v, bad) = collect(parse::zmap_csv, text);
    assert_eq!(v, vec![(ip("198.19.12.1"), 80), (ip("198.19.0.255"), 80)]);
    assert_eq!(bad, 0);
    let (_, bad) = collect(parse::zmap_csv, "198.19.0.1\n");
    assert_eq!(bad, 1);
}

#[test]
fn nmap_grepable_output() {
    let text = "# Nmap 7.93 scan initiated Tue Nov 25 15:00:00 2026 as: nmap -sS -n -Pn -T5 -p22,80,443,8080 -oG out 198.19.0.0/30\n\
Host: 198.19.0.1 ()\tStatus: Up\n\
Host: 198.19.0.1 ()\tPorts: 22/closed/tcp//ssh///, 80/open/tcp//http///, 443/closed/tcp//https///, 8080/open/tcp//http-proxy///\n\
Host: 198.19.0.2 ()\tPorts: 80/filtered/tcp//http///, 8080/open/tcp//http-proxy///\tIgnored State: closed (2)\n\
# Nmap done at Tue Nov 25 15:00:01 2026 -- 4 IP addresses (4 hosts up) scanned in 0.50 seconds\n";
    let (v, bad) = collect(parse::nmap_grepable, text);
    assert_eq!(
        v,
        vec![
            (ip("198.19.0.1"), 80),
            (ip("198.19.0.1"), 8080),
            (ip("198.19.0.2"), 8080)
        ]
    );
    assert_eq!(bad, 0);
}

#[test]
fn recall_folds_duplicates_and_counts_false_positives() {
    let t = truth::Truth::new(ip("198.19.0.0"), 30, &[22, 80], &[80, 8080]);
    assert_eq!(
        (t.open_count(), t.probes(), t.cidr().as_str()),
        (4, 8, "198.19.0.0/30")
    );
    let mut y = t.tally();
    y.open(ip("198.19.0.1"), 80);
    y.open(ip("198.19.0.1"), 80); // duplicate
    y.open(ip("198.19.0.2"), 22); // closed in the lab
    y.open(ip("198.19.0.9"), 80); // outside the scanned network
    y.open(ip("198.19.0.3"), 8080); // not a scanned port
    let r = y.finish();
    assert_eq!((r.found, r.dups, r.false_pos, r.want), (1, 1, 3, 4));
    assert_eq!(r.recall, 0.25);
    assert!(!r.perfect());
    let mut y = t.tally();
    for a in ["198.19.0.0", "198.19.0.1", "198.19.0.2", "198.19.0.3"] {
        y.open(ip(a), 80);
    }
    assert!(y.finish().perfect());
}
