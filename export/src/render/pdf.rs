//! The PDF report: a header, a summary, the IP / Port / Protocol / State /
//! Service / Version table across as many pages as needed, a running header and
//! "Page N of M" on every page — written by a small streaming PDF writer of our
//! own, so memory does not grow with the number of rows.
//!
//! Builtin PDF fonts only cover Latin-1, so every remote string is reduced to
//! printable ASCII first (`\xNN` escapes), and `\`, `(`, `)` are escaped in the
//! PDF string literals. The table is set in Courier, one `Tj` per row.
//!
//! # File structure
//!
//! A PDF may hold its objects in any order: the cross-reference table at the end
//! gives each object's byte offset, and references (`N 0 R`) may point forward.
//! Object numbers are therefore allocated so that everything written early can
//! refer to what is only written at the end:
//!
//! | object | what | written |
//! |---|---|---|
//! | 1 | catalog (`/Pages 2 0 R`) | at the end |
//! | 2 | page tree root: `/Kids` = the intermediate nodes, `/Count` = M | at the end |
//! | 3 | document information (title, creator, producer, date) | at the start |
//! | 4–7 | fonts F1–F4: Helvetica, Helvetica-Bold, Courier, Courier-Bold (standard 14, `/WinAnsiEncoding`, not embedded) | at the start |
//! | 8 | the resource dictionary every page shares (fonts, `/Total`) | at the start |
//! | 9 | `/Total`: a form XObject that shows M, the page count | at the end |
//! | 10 | the summary on page 1 (its totals are only known at the end) | at the end |
//! | 11… | per page: its content stream, then its page object; per 256 pages: one intermediate page tree node | as each page fills |
//!
//! ```text
//! %PDF-1.4                        header, then a binary comment line
//! 3 0 obj  info                   begin()
//! 4..7 0 obj  fonts, 8 0 obj  resources
//! 11 0 obj  node (Pages, /Parent 2 0 R)   number reserved, written when its 256 pages are done
//! 12 0 obj  content stream of page 1 (FlateDecode)
//! 13 0 obj  page 1 (/Parent 11 0 R, /Contents [10 0 R 12 0 R])
//! 14, 15    page 2 ...                    host(), one page at a time
//! 11 0 obj  (written here, after page 256 or at the end)
//! 10 0 obj  summary, 9 0 obj  /Total, 2 0 obj  root, 1 0 obj  catalog   finish()
//! xref, trailer (/Size /Root /Info /ID), startxref, %%EOF
//! ```
//!
//! Each page draws its footer "Page N of " itself and then paints the `/Total`
//! form XObject right after it (`q 1 0 0 1 x y cm /Total Do Q`); the form's
//! content stream, written once the last page is known, shows M. Text extractors
//! (pdftotext) and viewers read form XObjects like page content, so every page
//! reads "Page N of M".
//!
//! What is kept between pages: the current page's content (a few KB), the byte
//! offset of every object (8 bytes per object, two objects per page: about 16
//! bytes per 67 rows) for the cross-reference table, the page objects of the
//! current 256-page node, and one object number per 256 pages.

use super::{service_name, version_string, Render, Totals};
use crate::escape::ascii_text;
use crate::{ExportError, Host, ReportMeta};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::Write;

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 15.0;
/// Table font size (pt) and line height (mm).
const TABLE_PT: f32 = 8.0;
const LINE_MM: f32 = 3.7;
/// Courier advance is 0.6 em: characters per table line at 8 pt over 180 mm.
const TABLE_CHARS: usize = 106;
/// Where the table starts on the first page (below the summary) and on the others.
const FIRST_TABLE_TOP: f32 = 200.0;
const TABLE_TOP: f32 = PAGE_H - MARGIN - 10.0;
const TABLE_BOTTOM: f32 = MARGIN + 6.0;
/// Column widths in characters: IP, Port, Proto, State, Service, Version (the rest).
const COLS: [usize; 5] = [26, 7, 6, 15, 16];
/// Footer: font size of "Page N of M" and where it starts (mm).
const PAGE_NO_PT: f32 = 8.0;
const PAGE_NO_X: f32 = PAGE_W - MARGIN - 24.0;
const FOOTER_Y: f32 = MARGIN - 6.0;

/// Fixed object numbers (see the module docs).
const CATALOG: u32 = 1;
const PAGES: u32 = 2;
const INFO: u32 = 3;
const FONTS: [(u32, &str); 4] = [
    (4, "Helvetica"),
    (5, "Helvetica-Bold"),
    (6, "Courier"),
    (7, "Courier-Bold"),
];
const RESOURCES: u32 = 8;
const TOTAL: u32 = 9;
const SUMMARY: u32 = 10;
/// Pages per intermediate page tree node (keeps every `/Kids` array short).
const PAGES_PER_NODE: usize = 256;
/// zlib level of the content streams. 1 M rows: 16.3 MB at level 1, 14.7 MB at 3,
/// 14.4 MB at 6 for 1.5x the CPU time of 3.
const DEFLATE_LEVEL: u8 = 3;

/// The builtin fonts, by resource name (`/F1`..`/F4` in the resource dictionary).
#[derive(Clone, Copy)]
enum Font {
    Regular,
    Bold,
    Mono,
    MonoBold,
}

impl Font {
    fn name(self) -> &'static str {
        match self {
            Font::Regular => "F1",
            Font::Bold => "F2",
            Font::Mono => "F3",
            Font::MonoBold => "F4",
        }
    }
}

fn mm(v: f32) -> f32 {
    v * 72.0 / 25.4
}

/// Width of `s` in Helvetica at `pt` points (only what the footer needs:
/// digits, space and the letters of "Page of"; others count as 0.556 em).
fn helvetica_width(s: &str, pt: f32) -> f32 {
    let em: u32 = s
        .bytes()
        .map(|b| match b {
            b'P' => 667,
            b' ' | b'f' => 278,
            _ => 556,
        })
        .sum();
    em as f32 / 1000.0 * pt
}

/// Append `s` as a PDF string literal: printable ASCII only (`\xNN` for the rest),
/// with `\`, `(` and `)` escaped.
fn push_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'(');
    for b in ascii_text(s).bytes() {
        if matches!(b, b'\\' | b'(' | b')') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b')');
}

/// A text operation: `s` in `font` at `pt` points with its baseline at (x, y) mm.
fn text(out: &mut Vec<u8>, font: Font, pt: f32, x: f32, y: f32, s: &str) {
    let _ = write!(
        out,
        "BT /{} {pt} Tf {:.2} {:.2} Td ",
        font.name(),
        mm(x),
        mm(y)
    );
    push_string(out, s);
    out.extend_from_slice(b" Tj ET\n");
}

/// A horizontal rule across the text area at y mm.
fn hline(out: &mut Vec<u8>, y: f32) {
    let _ = writeln!(
        out,
        "{:.2} {:.2} m {:.2} {:.2} l S",
        mm(MARGIN),
        mm(y),
        mm(PAGE_W - MARGIN),
        mm(y)
    );
}

/// Pad or cut `s` to exactly `w` characters (cut strings end with `~`).
fn cell(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        format!("{s:w$}")
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(2)).collect();
        t.push_str("~ ");
        t
    }
}

fn table_line(cells: [&str; 6]) -> String {
    let mut line = String::with_capacity(TABLE_CHARS + 8);
    for (c, w) in cells.iter().zip(COLS) {
        line.push_str(&cell(&ascii_text(c), w));
    }
    let rest = TABLE_CHARS - COLS.iter().sum::<usize>();
    let last = ascii_text(cells[5]);
    if last.chars().count() > rest {
        line.push_str(&last.chars().take(rest - 1).collect::<String>());
        line.push('~');
    } else {
        line.push_str(&last);
    }
    line.trim_end().to_string()
}

/// `D:YYYYMMDDHHmmSSZ`, a PDF date.
fn pdf_date(us: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((us / 1_000_000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[derive(Default)]
pub(crate) struct PdfRender {
    /// Bytes written so far (the offset of the next object).
    pos: u64,
    /// Byte offset of object `n` at `offsets[n - 1]`; 0 while reserved, not written.
    offsets: Vec<u64>,
    /// Objects being written (flushed to the output a page at a time).
    buf: Vec<u8>,
    /// Content stream of the current page (uncompressed).
    content: Vec<u8>,
    /// y (mm) of the next table line on the current page; `None` before the first row.
    cursor: Option<f32>,
    /// Pages written.
    pages: u64,
    /// The current intermediate page tree node and its pages so far.
    node: Option<(u32, Vec<u32>)>,
    /// Every intermediate node (the root's `/Kids`): one per 256 pages.
    nodes: Vec<u32>,
    listed: u64,
    /// Running header of pages after the first.
    title: String,
    /// Footer text left of the page number.
    generated: String,
}

impl PdfRender {
    /// A new object number; its offset is filled in when it is written.
    fn alloc(&mut self) -> u32 {
        self.offsets.push(0);
        self.offsets.len() as u32
    }

    /// Start object `n` in `buf` (its offset is where `buf` will land).
    fn obj(&mut self, n: u32) {
        let at = self.pos + self.buf.len() as u64;
        let slot = &mut self.offsets[n as usize - 1];
        debug_assert_eq!(*slot, 0, "object {n} written twice");
        *slot = at;
        let _ = writeln!(self.buf, "{n} 0 obj");
    }

    /// A whole dictionary object.
    fn dict_obj(&mut self, n: u32, dict: &str) {
        self.obj(n);
        self.buf.extend_from_slice(dict.as_bytes());
        self.buf.extend_from_slice(b"\nendobj\n");
    }

    /// A Flate-compressed stream object; `dict` is the rest of its dictionary.
    fn stream_obj(&mut self, n: u32, dict: &str, data: &[u8]) {
        let z = miniz_oxide::deflate::compress_to_vec_zlib(data, DEFLATE_LEVEL);
        self.obj(n);
        let _ = write!(
            self.buf,
            "<< {dict} /Filter /FlateDecode /Length {} >>\nstream\n",
            z.len()
        );
        self.buf.extend_from_slice(&z);
        self.buf.extend_from_slice(b"\nendstream\nendobj\n");
    }

    /// Write `buf` to the output.
    fn flush(&mut self, out: &mut dyn Write) -> Result<(), ExportError> {
        out.write_all(&self.buf)?;
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Start a page: running header and the table's column titles; returns the y of
    /// the first row.
    fn new_page(&mut self) -> f32 {
        let c = &mut self.content;
        c.clear();
        let top = if self.pages == 0 {
            FIRST_TABLE_TOP
        } else {
            text(
                c,
                Font::Bold,
                9.0,
                MARGIN,
                PAGE_H - MARGIN + 3.0,
                &self.title,
            );
            hline(c, PAGE_H - MARGIN + 1.5);
            TABLE_TOP
        };
        let titles = table_line(["IP", "PORT", "PROTO", "STATE", "SERVICE", "VERSION"]);
        text(c, Font::MonoBold, TABLE_PT, MARGIN, top, &titles);
        hline(c, top - 1.3);
        top - LINE_MM - 0.6
    }

    /// Start a page and open the table's text object at its first row.
    fn open_page(&mut self) -> f32 {
        let y = self.new_page();
        let _ = writeln!(
            self.content,
            "BT /{} {TABLE_PT} Tf {:.4} TL {:.2} {:.2} Td",
            Font::Mono.name(),
            mm(LINE_MM),
            mm(MARGIN),
            mm(y)
        );
        y
    }

    /// Footer, then the page's content stream and page object to the output.
    fn close_page(&mut self, out: &mut dyn Write) -> Result<(), ExportError> {
        let number = self.pages + 1;
        let c = &mut self.content;
        hline(c, MARGIN - 2.0);
        text(c, Font::Regular, 7.5, MARGIN, FOOTER_Y, &self.generated);
        let label = format!("Page {number} of ");
        text(c, Font::Regular, PAGE_NO_PT, PAGE_NO_X, FOOTER_Y, &label);
        let _ = writeln!(
            c,
            "q 1 0 0 1 {:.2} {:.2} cm /Total Do Q",
            mm(PAGE_NO_X) + helvetica_width(&label, PAGE_NO_PT),
            mm(FOOTER_Y)
        );
        if self.node.is_none() {
            let n = self.alloc();
            self.nodes.push(n);
            self.node = Some((n, Vec::with_capacity(PAGES_PER_NODE)));
        }
        let parent = self.node.as_ref().map_or(0, |(n, _)| *n);
        let content_obj = self.alloc();
        let page_obj = self.alloc();
        let content = std::mem::take(&mut self.content);
        self.stream_obj(content_obj, "", &content);
        self.content = content;
        let contents = if self.pages == 0 {
            format!("[{SUMMARY} 0 R {content_obj} 0 R]")
        } else {
            format!("{content_obj} 0 R")
        };
        self.dict_obj(
            page_obj,
            &format!(
                "<< /Type /Page /Parent {parent} 0 R /MediaBox [0 0 {:.3} {:.3}] \
                 /Resources {RESOURCES} 0 R /Contents {contents} >>",
                mm(PAGE_W),
                mm(PAGE_H)
            ),
        );
        self.pages += 1;
        let full = match self.node.as_mut() {
            Some((_, kids)) => {
                kids.push(page_obj);
                kids.len() == PAGES_PER_NODE
            }
            None => false,
        };
        if full {
            self.close_node();
        }
        self.flush(out)
    }

    /// Write the current intermediate page tree node.
    fn close_node(&mut self) {
        if let Some((n, kids)) = self.node.take() {
            let mut d = format!(
                "<< /Type /Pages /Parent {PAGES} 0 R /Count {} /Kids [",
                kids.len()
            );
            for k in &kids {
                let _ = write!(d, "{k} 0 R ");
            }
            d.push_str("] >>");
            self.dict_obj(n, &d);
        }
    }

    fn put_row(&mut self, line: &str, out: &mut dyn Write) -> Result<(), ExportError> {
        let y = match self.cursor.take() {
            Some(y) if y >= TABLE_BOTTOM => y,
            Some(_) => {
                self.content.extend_from_slice(b"ET\n");
                self.close_page(out)?;
                self.open_page()
            }
            None => self.open_page(),
        };
        push_string(&mut self.content, line);
        self.content.extend_from_slice(b" Tj T*\n");
        self.listed += 1;
        self.cursor = Some(y - LINE_MM);
        Ok(())
    }

    /// Page 1's summary: title, scan facts and totals.
    fn summary(&self, meta: &ReportMeta, totals: &Totals) -> Vec<u8> {
        let mut c = Vec::with_capacity(2048);
        text(
            &mut c,
            Font::Bold,
            18.0,
            MARGIN,
            PAGE_H - MARGIN - 4.0,
            &self.title,
        );
        hline(&mut c, PAGE_H - MARGIN - 7.0);
        let mut y = PAGE_H - MARGIN - 14.0;
        let cmd = ascii_text(&meta.command_or_targets()).into_owned();
        let mut cmd_lines: Vec<String> = cmd
            .as_bytes()
            .chunks(88)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        if cmd_lines.len() > 2 {
            cmd_lines.truncate(2);
            cmd_lines[1].truncate(84);
            cmd_lines[1].push_str(" ...");
        }
        let mut lines: Vec<(&str, String)> = vec![(
            "Scan",
            format!("#{} ({})", meta.scan_id, meta.status_words()),
        )];
        if let Some(note) = meta.incomplete_note() {
            lines.push(("Partial", note));
        }
        for (i, c) in cmd_lines.iter().enumerate() {
            lines.push((if i == 0 { "Command" } else { "" }, c.clone()));
        }
        let scan_type = if meta.service_detection {
            format!("{}, service detection (-sV)", meta.scan_type_words())
        } else {
            meta.scan_type_words().to_string()
        };
        lines.extend([
            (
                "Targets",
                format!(
                    "{} ({} addresses)",
                    meta.targets.join(" "),
                    meta.total_targets
                ),
            ),
            ("Ports", meta.ports.clone()),
            ("Scan type", scan_type),
            ("Started", crate::human_time(meta.started_us)),
            (
                "Ended",
                meta.ended_us
                    .map(crate::human_time)
                    .unwrap_or_else(|| "still running".into()),
            ),
            ("Duration", format!("{:.2} s", meta.elapsed_secs())),
            (
                "Hosts",
                format!("{} with results, {} up", totals.hosts, totals.hosts_up),
            ),
            (
                "Results",
                format!("{} port results, {} listed below", totals.rows, self.listed),
            ),
        ]);
        for (k, v) in lines.iter().take(14) {
            if !k.is_empty() {
                text(&mut c, Font::Bold, 10.0, MARGIN, y, k);
            }
            let v: String = ascii_text(v).chars().take(90).collect();
            text(&mut c, Font::Regular, 10.0, MARGIN + 28.0, y, &v);
            y -= 5.0;
        }
        text(
            &mut c,
            Font::Bold,
            12.0,
            MARGIN,
            FIRST_TABLE_TOP + 7.0,
            "Port results",
        );
        c
    }
}

impl Render for PdfRender {
    fn begin(&mut self, meta: &ReportMeta, out: &mut dyn Write) -> Result<(), ExportError> {
        self.title = format!("prtip scan report #{}", meta.scan_id);
        self.generated = format!(
            "prtip {} - generated {}",
            ascii_text(&meta.prtip_version),
            crate::human_time(meta.generated_us)
        );
        // Reserve the fixed objects 1..=SUMMARY.
        while self.offsets.len() < SUMMARY as usize {
            self.alloc();
        }
        // A binary comment line tells transfer tools the file is binary.
        self.buf.extend_from_slice(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");
        let mut info = Vec::new();
        info.extend_from_slice(b"<< /Title ");
        push_string(&mut info, &self.title);
        info.extend_from_slice(b" /Creator ");
        push_string(&mut info, &format!("prtip {}", meta.prtip_version));
        info.extend_from_slice(b" /Producer (prtip) /CreationDate ");
        push_string(&mut info, &pdf_date(meta.generated_us));
        info.extend_from_slice(b" >>");
        self.dict_obj(INFO, &String::from_utf8_lossy(&info));
        let mut fonts = String::new();
        for (i, (n, base)) in FONTS.iter().enumerate() {
            self.dict_obj(
                *n,
                &format!(
                    "<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>"
                ),
            );
            let _ = write!(fonts, "/F{} {n} 0 R ", i + 1);
        }
        self.dict_obj(
            RESOURCES,
            &format!(
                "<< /ProcSet [/PDF /Text] /Font << {fonts}>> /XObject << /Total {TOTAL} 0 R >> >>"
            ),
        );
        self.flush(out)
    }

    fn host(&mut self, host: &Host, out: &mut dyn Write) -> Result<(), ExportError> {
        let ip = host.addr().to_string();
        for r in host.shown() {
            let line = table_line([
                &ip,
                &r.port.to_string(),
                r.proto.as_str(),
                r.state.as_str(),
                &service_name(r),
                &r.service.as_ref().map(version_string).unwrap_or_default(),
            ]);
            self.put_row(&line, out)?;
        }
        for h in host.hidden() {
            let note = format!(
                "{} {} {} ports not listed",
                h.count,
                h.state.as_str(),
                h.proto.as_str()
            );
            let line = table_line([&ip, "", h.proto.as_str(), "", &note, ""]);
            self.put_row(&line, out)?;
        }
        Ok(())
    }

    fn finish(
        &mut self,
        meta: &ReportMeta,
        totals: &Totals,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        match self.cursor.take() {
            Some(_) => self.content.extend_from_slice(b"ET\n"),
            None => {
                // No rows: still a first page with the (empty) table and a note.
                let y = self.new_page();
                text(
                    &mut self.content,
                    Font::Regular,
                    10.0,
                    MARGIN,
                    y,
                    "No results.",
                );
            }
        }
        self.close_page(out)?;
        self.close_node();
        let summary = self.summary(meta, totals);
        self.stream_obj(SUMMARY, "", &summary);
        // The page count, shown by every page's footer.
        let mut total = Vec::new();
        let _ = write!(
            total,
            "BT /F1 {PAGE_NO_PT} Tf 0 0 Td ({}) Tj ET",
            self.pages
        );
        self.stream_obj(
            TOTAL,
            &format!(
                "/Type /XObject /Subtype /Form /BBox [0 -4 120 12] \
                 /Resources << /Font << /F1 {} 0 R >> >>",
                FONTS[0].0
            ),
            &total,
        );
        let mut kids = String::new();
        for n in &self.nodes {
            let _ = write!(kids, "{n} 0 R ");
        }
        self.dict_obj(
            PAGES,
            &format!("<< /Type /Pages /Count {} /Kids [{kids}] >>", self.pages),
        );
        self.dict_obj(CATALOG, &format!("<< /Type /Catalog /Pages {PAGES} 0 R >>"));
        self.flush(out)?;
        // Cross-reference table: one 20-byte entry per object, streamed out.
        let xref = self.pos;
        let size = self.offsets.len() + 1;
        let _ = write!(self.buf, "xref\n0 {size}\n0000000000 65535 f \n");
        for i in 0..self.offsets.len() {
            let at = self.offsets[i];
            debug_assert!(at > 0, "object {} was never written", i + 1);
            let _ = writeln!(self.buf, "{at:010} 00000 n ");
            if self.buf.len() >= 64 * 1024 {
                self.flush(out)?;
            }
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.title, meta.generated_us, self.pages, xref).hash(&mut h);
        let a = h.finish();
        self.listed.hash(&mut h);
        let id = format!("{a:016x}{:016x}", h.finish());
        let _ = write!(
            self.buf,
            "trailer\n<< /Size {size} /Root {CATALOG} 0 R /Info {INFO} 0 R /ID [<{id}> <{id}>] >>\n\
             startxref\n{xref}\n%%EOF\n"
        );
        self.flush(out)?;
        // Release the page bookkeeping (the renderer may live on a little).
        self.offsets = Vec::new();
        self.nodes = Vec::new();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testutil::run;
    use crate::Format;

    #[test]
    fn table_lines_have_fixed_columns() {
        let l = table_line(["198.19.0.2", "22", "tcp", "open", "ssh", "OpenSSH 9.2p1"]);
        assert_eq!(
            l,
            "198.19.0.2                22     tcp   open           ssh             OpenSSH 9.2p1"
        );
        let long = "x".repeat(200);
        let l = table_line(["1.1.1.1", "1", "tcp", "open", &long, &long]);
        assert_eq!(l.len(), TABLE_CHARS);
        assert!(l.ends_with('~'));
        assert_eq!(table_line(["é", "", "", "", "", ""]), "\\xc3\\xa9");
    }

    #[test]
    fn string_literals_are_escaped() {
        let mut v = Vec::new();
        push_string(&mut v, "a(b)c\\d\u{e9}\n");
        assert_eq!(v, b"(a\\(b\\)c\\\\d\\\\xc3\\\\xa9\\\\x0a)");
    }

    #[test]
    fn footer_width_matches_helvetica() {
        // "Page 1 of " = P a g e _ 1 _ o f _ : 667 + 3*556 + 278 + 556 + 278 + 556 + 278 + 278.
        let w = helvetica_width("Page 1 of ", 1000.0);
        assert_eq!(w, 4559.0);
    }

    /// The cross-reference table points at every object's `N 0 obj` line.
    #[test]
    fn xref_offsets_point_at_objects() {
        let rows: Vec<_> = crate::synthetic::lab_rows(700).collect();
        let pdf = run(Format::Pdf, rows);
        let tail_at = pdf.len() - 64;
        let tail = std::str::from_utf8(&pdf[tail_at..]).unwrap();
        let startxref: usize = tail
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let xref = std::str::from_utf8(&pdf[startxref..]).unwrap();
        assert!(xref.starts_with("xref\n0 "));
        let mut lines = xref.lines().skip(1);
        let size: usize = lines.next().unwrap()[2..].parse().unwrap();
        assert!(size > 20);
        assert_eq!(lines.next().unwrap(), "0000000000 65535 f ");
        for n in 1..size {
            let entry = lines.next().unwrap();
            let at: usize = entry[..10].parse().unwrap();
            assert!(
                pdf[at..].starts_with(format!("{n} 0 obj\n").as_bytes()),
                "object {n} at {at}"
            );
        }
        assert!(lines.next().unwrap().starts_with("trailer"));
        assert!(pdf.ends_with(b"%%EOF\n"));
    }
}
