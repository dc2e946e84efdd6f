//! PDF export checked with poppler: pdftotext finds the header, the summary, the
//! table rows and "Page N of M" on every page; pdftoppm renders a page; qpdf checks
//! the structure of a long, streamed export.

mod export_support;

use export_support::{export, meta, run, run_ok};
use prtip_export::{synthetic, Format};
use std::process::Command;

#[test]
fn multi_page_table_with_page_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows: Vec<_> = synthetic::lab_rows(600).collect();
    rows[1].service.as_mut().unwrap().product = "Öpen\u{1}SSH (tm)".into();
    let pdf = export(dir.path(), "scan.pdf", Format::Pdf, &meta(3), rows);
    let (_, pages) = pdfinfo(&pdf);
    // 48 table rows fit under the summary on page 1, 67 on the others: 48 + 8 x 67 < 600.
    assert_eq!(pages, 10);
    let text = pdf_text(&pdf);
    let page_texts = pages_of(&text);
    assert_eq!(page_texts.len(), pages);
    assert!(page_texts[0].contains("prtip scan report #3"));
    assert!(page_texts[0].contains("Port results"));
    assert!(page_texts[0].contains("Hosts"));
    assert!(page_texts[0].contains("60 with results, 60 up"));
    for (i, p) in page_texts.iter().enumerate() {
        assert!(
            p.contains(&format!("Page {} of {pages}", i + 1)),
            "page {} lacks its number",
            i + 1
        );
        assert!(
            p.contains("IP") && p.contains("SERVICE"),
            "page {} lacks the table header",
            i + 1
        );
    }
    // Every row is there exactly once: 60 hosts x 10 ports.
    let data_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("198.19.0."))
        .collect();
    assert_eq!(data_lines.len(), 600);
    let first: Vec<&str> = data_lines[0].split_whitespace().collect();
    assert_eq!(
        first,
        ["198.19.0.1", "21", "tcp", "open", "ftp", "vsftpd", "3.0.3"]
    );
    assert!(
        text.contains("Öpen\\x01SSH (tm) 9.2p1"),
        "Unicode kept, control characters escaped"
    );
    let last: Vec<&str> = data_lines[599].split_whitespace().collect();
    assert_eq!(
        &last[..5],
        ["198.19.0.60", "8080", "tcp", "open", "http-proxy"]
    );

    let png_base = dir.path().join("page");
    run_ok(
        Command::new("pdftoppm")
            .args(["-png", "-r", "50", "-f", "1", "-l", "1"])
            .arg(&pdf)
            .arg(&png_base),
    );
    let png = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .expect("pdftoppm wrote a PNG");
    let bytes = std::fs::read(png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(bytes.len() > 5_000, "rendered page has content");
}

#[test]
fn empty_scan_still_makes_a_one_page_report() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = export(dir.path(), "empty.pdf", Format::Pdf, &meta(4), vec![]);
    let text = run_ok(Command::new("pdftotext").arg(&pdf).arg("-"));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("No results."));
    assert!(text.contains("Page 1 of 1"));
}

/// qpdf, installing Debian's package if it is missing (as root).
fn qpdf() -> &'static str {
    let have = || {
        Command::new("qpdf")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have() {
        run_ok(Command::new("apt-get").args(["install", "-y", "-q", "qpdf"]));
        assert!(have(), "qpdf not found after apt-get install");
    }
    "qpdf"
}

/// A long export (5 000 rows, 75 pages) is a valid PDF: the streaming writer's
/// cross-reference table, page tree and forward references pass `qpdf --check`,
/// every page reads "Page N of 75", the first and the last row are there, and
/// hostile service strings (`(`, `)`, `\`, non-ASCII) come out as text.
#[test]
fn long_streamed_export_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let n = 5_000;
    let mut rows: Vec<_> = synthetic::lab_rows(n).collect();
    // Row 2001: 198.19.0.201 22/tcp (open, ssh).
    let hostile = &mut rows[2001];
    assert_eq!(hostile.port, 22);
    let svc = hostile.service.as_mut().unwrap();
    svc.name = "a)b(c\\d".into();
    svc.product = ") Tj (x\u{ff}".into();
    svc.version = "(".into();
    hostile.banner = Some(b") Tj ET (\\\xff\x00(".to_vec());
    let pdf = export(dir.path(), "long.pdf", Format::Pdf, &meta(5), rows);

    let check = run(Command::new(qpdf()).arg("--check").arg(&pdf));
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && report.contains("No syntax or stream encoding errors"),
        "qpdf --check: {report}{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let (info, pages) = pdfinfo(&pdf);
    // 48 rows on page 1, 67 on each other page.
    assert_eq!(pages, 1 + (n as usize - 48).div_ceil(67));
    assert_eq!(pages, 75);
    assert!(info.contains("Title:           prtip scan report #5"));

    let text = pdf_text(&pdf);
    let page_texts = pages_of(&text);
    assert_eq!(page_texts.len(), pages);
    for (i, p) in page_texts.iter().enumerate() {
        assert!(
            p.contains(&format!("Page {} of {pages}", i + 1)),
            "page {} lacks its number",
            i + 1
        );
    }
    assert!(page_texts[pages - 1].contains("Page 75 of 75"));
    assert!(page_texts[0].contains("5000 port results, 5000 listed below"));
    let data_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("198.19."))
        .collect();
    assert_eq!(data_lines.len(), n as usize);
    let first: Vec<&str> = data_lines[0].split_whitespace().collect();
    assert_eq!(
        first,
        ["198.19.0.1", "21", "tcp", "open", "ftp", "vsftpd", "3.0.3"]
    );
    // Host 500 is 198.19.0.1 + 499.
    let last: Vec<&str> = data_lines[n as usize - 1].split_whitespace().collect();
    assert_eq!(
        &last[..5],
        ["198.19.1.244", "8080", "tcp", "open", "http-proxy"]
    );
    assert!(page_texts[pages - 1].contains("198.19.1.244"));
    // The hostile row: parentheses and backslashes are text, Unicode is itself.
    let evil = data_lines
        .iter()
        .find(|l| l.starts_with("198.19.0.201 ") && l.contains(" 22 "))
        .expect("hostile row listed");
    assert!(evil.contains("a)b(c\\d"), "{evil}");
    assert!(evil.contains(") Tj (x\u{ff} ("), "{evil}");
    // Nothing after it was swallowed by an unbalanced string.
    let i = data_lines.iter().position(|l| l == evil).unwrap();
    assert!(data_lines[i + 1].starts_with("198.19.0.201 "));
    assert!(data_lines[i + 1].contains(" 23 "));
}

/// What the old report cut or mangled (issue 19 item 17) comes out whole: a
/// "194 closed tcp ports" note, a long command line (wrapped at spaces, never
/// inside a number), a long version string (continued on the next line of its
/// row), and Unicode text (an embedded TrueType font, not `\xNN` escapes).
#[test]
fn notes_commands_versions_and_unicode_come_out_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows: Vec<_> = synthetic::lab_rows(20).collect();
    let long_version = "Apache httpd 2.4.57 ((Debian) OpenSSL/3.0.11 mod_perl/2.0.12 Perl/v5.36.0)";
    let with_service: Vec<usize> = (1..rows.len())
        .filter(|&i| rows[i].service.is_some())
        .collect();
    let v = rows[with_service[0]].service.as_mut().unwrap();
    v.product = "Apache httpd".into();
    v.version = "2.4.57 ((Debian) OpenSSL/3.0.11 mod_perl/2.0.12 Perl/v5.36.0)".into();
    rows[with_service[1]].service.as_mut().unwrap().product = "Сервер «Москва» — ünïcødé ✓".into();
    // 194 closed ports on one host: summarised in one note.
    let base = rows[0].clone();
    for p in 1000..1194 {
        let mut r = base.clone();
        r.port = p;
        r.state = prtip_store::PortState::Closed;
        r.reason = prtip_store::Reason::Reset;
        r.service = None;
        r.banner = None;
        rows.push(r);
    }
    rows.sort_by_key(|r| r.key());
    let closed = rows
        .iter()
        .filter(|r| r.addr == base.addr && r.state == prtip_store::PortState::Closed)
        .count();
    assert!(closed >= 194);
    let mut m = meta(7);
    let ports: Vec<String> = (10000..10040).map(|p| p.to_string()).collect();
    m.command_line = format!("prtip scan -sS -sV -p {} 198.19.0.0/24", ports.join(" "));
    let pdf = export(dir.path(), "whole.pdf", Format::Pdf, &m, rows);
    let check = run(Command::new(qpdf()).arg("--check").arg(&pdf));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let text = pdf_text(&pdf);
    assert!(
        text.contains(&format!("{closed} closed tcp ports not listed")),
        "{text}"
    );
    assert!(!text.contains('~'), "nothing cut: {text}");
    // Every number of the command line is whole on some line.
    let words: std::collections::HashSet<&str> = text.split_whitespace().collect();
    for p in &ports {
        assert!(words.contains(p.as_str()), "{p} broken: {text}");
    }
    assert!(text.contains("Сервер «Москва» — ünïcødé ✓"), "{text}");
    assert!(
        !text.contains("\\x"),
        "no escapes for printable text: {text}"
    );
    // The long version: its words in order over the row's lines.
    let all: Vec<&str> = text.split_whitespace().collect();
    let want: Vec<&str> = long_version.split_whitespace().collect();
    let at = all
        .windows(want.len())
        .position(|w| w == want.as_slice())
        .unwrap_or_else(|| panic!("version not whole: {text}"));
    assert!(at > 0);
}

/// `pdfinfo`'s report of `pdf` and the page count it gives.
fn pdfinfo(pdf: &std::path::Path) -> (String, usize) {
    let info = run_ok(Command::new("pdfinfo").arg(pdf));
    let info = String::from_utf8(info.stdout).unwrap();
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (info, pages)
}

/// The text of `pdf` (`pdftotext -layout`): pages end with a form feed.
fn pdf_text(pdf: &std::path::Path) -> String {
    let text = run_ok(Command::new("pdftotext").arg("-layout").arg(pdf).arg("-"));
    String::from_utf8(text.stdout).unwrap()
}

/// The non-empty pages of `pdftotext`'s output.
fn pages_of(text: &str) -> Vec<&str> {
    text.split('\x0c')
        .filter(|p| !p.trim().is_empty())
        .collect()
}
