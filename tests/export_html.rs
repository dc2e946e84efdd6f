//! HTML report rendered by headless Chromium: the four sections are in the DOM, a
//! hostile banner is text (no script element is created), nothing is loaded from
//! elsewhere, and a screenshot can be taken.

mod export_support;

use export_support::{chromium_cmd, export, meta, run_ok};
use prtip_export::synthetic::{self, row};
use prtip_export::Format;
use prtip_store::PortState;

#[test]
fn chromium_shows_sections_and_escaped_banners() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = vec![
        row(
            [198, 19, 0, 2],
            22,
            PortState::Open,
            Some(("ssh", "OpenSSH", "9.2p1")),
            Some(b"SSH-2.0-OpenSSH_9.2p1\r\n"),
        ),
        row(
            [198, 19, 0, 2],
            80,
            PortState::Open,
            Some(("http", "<img src=x onerror=alert(2)>", "")),
            Some(b"<script>alert(1)</script>"),
        ),
    ];
    rows.extend(synthetic::lab_rows(30).map(|mut r| {
        // Move the synthetic hosts after 198.19.0.2 so the rows stay sorted.
        r.addr = prtip_store::Addr::from(std::net::Ipv4Addr::new(
            198,
            19,
            1,
            r.addr.v4().unwrap().octets()[3],
        ));
        r
    }));
    let html = export(dir.path(), "report.html", Format::Html, &meta(5), rows);
    let source = std::fs::read_to_string(&html).unwrap();
    for bad in [
        "<script",
        "<link",
        "<img",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(",
    ] {
        assert!(!source.contains(bad), "report source contains {bad:?}");
    }

    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html.display());
    let dom = run_ok(&mut chromium_cmd(profile.path(), &["--dump-dom", &url]));
    let dom = String::from_utf8(dom.stdout).unwrap();
    for section in [
        "Summary",
        "Statistics",
        "Discovered Hosts",
        "Service Breakdown",
    ] {
        assert!(
            dom.contains(&format!("<h2>{section}</h2>")),
            "DOM lacks section {section}"
        );
    }
    assert!(dom.contains("<title>prtip scan report #5</title>"));
    // The banner is a text node: serialised escaped, and no element was created from it.
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "banner text missing"
    );
    assert!(
        dom.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "product text missing"
    );
    assert_eq!(dom.matches("<script").count(), 0);
    assert_eq!(dom.matches("<img").count(), 0);
    // Hosts and the service breakdown carry the data.
    assert_eq!(dom.matches("<tbody class=\"host\">").count(), 4);
    assert!(dom.contains("198.19.1.3"));
    assert!(
        dom.contains("<td>ssh</td><td>tcp</td><td class=\"num\">4</td><td class=\"num\">4</td>"),
        "ssh breakdown line"
    );

    let png = dir.path().join("shot.png");
    let shot = format!("--screenshot={}", png.display());
    run_ok(&mut chromium_cmd(
        profile.path(),
        &[&shot, "--window-size=1280,1600", &url],
    ));
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
}
