//! PDF export checked with poppler: pdftotext finds the header, the summary, the
//! table rows and "Page N of M" on every page; pdftoppm renders a page.

mod export_support;

use export_support::{export, meta, run_ok};
use prtip_export::{synthetic, Format};
use std::process::Command;

#[test]
fn multi_page_table_with_page_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows: Vec<_> = synthetic::lab_rows(600).collect();
    rows[1].service.as_mut().unwrap().product = "Öpen\u{1}SSH (tm)".into();
    let pdf = export(dir.path(), "scan.pdf", Format::Pdf, &meta(3), rows);
    let info = run_ok(Command::new("pdfinfo").arg(&pdf));
    let info = String::from_utf8(info.stdout).unwrap();
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // 48 table rows fit under the summary on page 1, 67 on the others: 48 + 8 x 67 < 600.
    assert_eq!(pages, 10);
    let text = run_ok(
        Command::new("pdftotext")
            .args(["-layout"])
            .arg(&pdf)
            .arg("-"),
    );
    let text = String::from_utf8(text.stdout).unwrap();
    let page_texts: Vec<&str> = text
        .split('\x0c')
        .filter(|p| !p.trim().is_empty())
        .collect();
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
        text.contains("\\xc3\\x96pen\\x01SSH (tm) 9.2p1"),
        "non-ASCII made printable"
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
