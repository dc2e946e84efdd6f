//! The PDF report: a header, a summary, the IP / Port / Protocol / State /
//! Service / Version table across as many pages as needed, a running header and
//! "Page N of M" on every page — written with the `pdf-writer` crate one object
//! at a time and streamed out, so memory does not grow with the number of rows.
//!
//! Text is Unicode: every string is set in DejaVu Sans Mono (Bitstream Vera
//! licence, `export/fonts/DejaVu-LICENSE.txt`), a TrueType font embedded whole
//! (343 KB, about 190 KB compressed, once per file; not subset: the glyph ids of
//! pages written early must stay valid) as a Type 0 / CIDFontType2 font with
//! Identity-H encoding and a `/ToUnicode` map, so viewers and `pdftotext` read
//! the text back as written. Only control characters are escaped (`\xNN`,
//! [`clean_text`]); characters the font lacks (CJK) show as its `.notdef` box
//! but still extract as themselves. One font, monospaced, so the table's
//! columns are character counts. Cells never cut words: a value longer than its
//! column (a version string, a "194 closed tcp ports" note, the command line)
//! wraps at spaces onto the next lines of the same row; only a word longer than
//! its column is broken.
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
//! | 4 | the font F1 (Type 0, Identity-H) | at the end |
//! | 5 | its CIDFontType2 descendant, with the widths of the glyphs used | at the end |
//! | 6 | its font descriptor | at the end |
//! | 7 | the TrueType file (FontFile2, FlateDecode) | at the start |
//! | 8 | the resource dictionary every page shares (F1, `/Total`) | at the start |
//! | 9 | `/Total`: a form XObject that shows M, the page count | at the end |
//! | 10 | the summary on page 1 (its totals are only known at the end) | at the end |
//! | 11 | the font's `/ToUnicode` map (of the glyphs used) | at the end |
//! | 12… | per page: its content stream, then its page object; per 256 pages: one intermediate page tree node | as each page fills |
//!
//! Each page draws its footer "Page N of " itself and then paints the `/Total`
//! form XObject right after it; the form's content stream, written once the
//! last page is known, shows M. Text extractors (pdftotext) and viewers read form
//! XObjects like page content, so every page reads "Page N of M".
//!
//! What is kept between pages: the current page's content (a few KB), the byte
//! offset of every object (8 bytes per object, two objects per page) for the
//! cross-reference table, the page objects of the current 256-page node, one
//! object number per 256 pages, and the glyphs used so far (at most the font's
//! 3 300 glyphs).

use super::{service_name, version_string, Render, Totals};
use crate::escape::clean_text;
use crate::{ExportError, Host, ReportMeta};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Chunk, Content, Filter, Name, Rect, Ref, Str};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::Write;

/// The embedded font (DejaVu Sans Mono 2.37, Debian's fonts-dejavu-core).
static FONT_TTF: &[u8] = include_bytes!("../../fonts/DejaVuSansMono.ttf");
const FONT_NAME: &[u8] = b"DejaVuSansMono";

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 15.0;
/// Table font size (pt) and line height (mm).
const TABLE_PT: f32 = 8.0;
const LINE_MM: f32 = 3.7;
/// DejaVu Sans Mono's advance is 0.602 em: characters per table line at 8 pt over 180 mm.
const TABLE_CHARS: usize = 105;
/// Where the table starts on the first page (below the summary) and on the others.
const FIRST_TABLE_TOP: f32 = 200.0;
const TABLE_TOP: f32 = PAGE_H - MARGIN - 10.0;
const TABLE_BOTTOM: f32 = MARGIN + 6.0;
/// Column widths in characters: IP, Port, Proto, State, Service, Version (the rest).
const COLS: [usize; 5] = [26, 7, 6, 15, 16];
/// Summary: font size, where values start (mm), characters per value line.
const SUMMARY_PT: f32 = 9.0;
const VALUE_X: f32 = MARGIN + 24.0;
const VALUE_CHARS: usize = 80;
/// Lines the summary has room for above the table.
const SUMMARY_LINES: usize = 15;
/// Footer: font size of "Page N of M" and where it starts (mm).
const PAGE_NO_PT: f32 = 8.0;
const PAGE_NO_X: f32 = PAGE_W - MARGIN - 30.0;
const FOOTER_Y: f32 = MARGIN - 6.0;

/// Fixed object numbers (see the module docs).
const CATALOG: i32 = 1;
const PAGES: i32 = 2;
const INFO: i32 = 3;
const FONT: i32 = 4;
const CID_FONT: i32 = 5;
const DESCRIPTOR: i32 = 6;
const FONT_FILE: i32 = 7;
const RESOURCES: i32 = 8;
const TOTAL: i32 = 9;
const SUMMARY: i32 = 10;
const TO_UNICODE: i32 = 11;
/// Pages per intermediate page tree node (keeps every `/Kids` array short).
const PAGES_PER_NODE: usize = 256;
/// zlib level of the content streams. 1 M rows: 16.3 MB at level 1, 14.7 MB at 3,
/// 14.4 MB at 6 for 1.5x the CPU time of 3.
const DEFLATE_LEVEL: u8 = 3;

fn mm(v: f32) -> f32 {
    v * 72.0 / 25.4
}

fn r(n: i32) -> Ref {
    Ref::new(n)
}

/// The embedded font: characters to glyph ids, and which glyphs were used (for
/// the widths and the `/ToUnicode` map written at the end).
struct Glyphs {
    face: ttf_parser::Face<'static>,
    used: BTreeMap<u16, char>,
}

impl Default for Glyphs {
    fn default() -> Self {
        Glyphs {
            face: ttf_parser::Face::parse(FONT_TTF, 0).expect("the embedded font parses"),
            used: BTreeMap::new(),
        }
    }
}

impl Glyphs {
    /// `s` as big-endian glyph ids (Identity-H), control characters escaped first.
    fn encode(&mut self, s: &str) -> Vec<u8> {
        let s = clean_text(s);
        let mut out = Vec::with_capacity(s.len() * 2);
        for c in s.chars() {
            let g = self.face.glyph_index(c).map_or(0, |g| g.0);
            self.used.entry(g).or_insert(c);
            out.extend_from_slice(&g.to_be_bytes());
        }
        out
    }

    /// Advance width of glyph `g` in PDF glyph space (1000 per em).
    fn width(&self, g: u16) -> f32 {
        let upem = f32::from(self.face.units_per_em());
        let adv = self
            .face
            .glyph_hor_advance(ttf_parser::GlyphId(g))
            .unwrap_or(0);
        f32::from(adv) * 1000.0 / upem
    }

    /// The one advance of this monospaced font, in glyph space.
    fn advance(&self) -> f32 {
        self.width(self.face.glyph_index('M').map_or(0, |g| g.0))
    }

    /// Width of `s` at `pt` points (every glyph has the same advance).
    fn text_width(&self, s: &str, pt: f32) -> f32 {
        s.chars().count() as f32 * self.advance() / 1000.0 * pt
    }
}

/// `s` in lines of at most `w` characters, broken at spaces; a word longer than
/// `w` is broken inside. Never empty (an empty string is one empty line).
fn wrap(s: &str, w: usize) -> Vec<String> {
    let w = w.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        let sep = usize::from(cur_len > 0);
        if cur_len + sep + word.len() <= w {
            if sep == 1 {
                cur.push(' ');
            }
            cur.extend(word.iter());
            cur_len += sep + word.len();
            continue;
        }
        if cur_len > 0 {
            lines.push(std::mem::take(&mut cur));
        }
        while word.len() > w {
            lines.push(word.drain(..w).collect());
        }
        cur_len = word.len();
        cur = word.into_iter().collect();
    }
    if cur_len > 0 || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// A table row as lines of fixed columns: each cell wrapped to its column, the
/// row as tall as its tallest cell. `span_last` lets the fifth cell run over the
/// sixth column too (the "N closed tcp ports not listed" notes).
fn table_lines(cells: [&str; 6], span_last: bool) -> Vec<String> {
    let rest = TABLE_CHARS - COLS.iter().sum::<usize>();
    let mut widths = [COLS[0], COLS[1], COLS[2], COLS[3], COLS[4], rest];
    if span_last {
        widths[4] += rest;
        widths[5] = 0;
    }
    let wrapped: Vec<Vec<String>> = cells
        .iter()
        .zip(widths)
        .map(|(c, w)| {
            if w == 0 {
                vec![]
            } else {
                wrap(&clean_text(c), w)
            }
        })
        .collect();
    let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
    (0..height)
        .map(|i| {
            let mut line = String::with_capacity(TABLE_CHARS + 8);
            for (col, w) in wrapped.iter().zip(widths) {
                let part = col.get(i).map_or("", String::as_str);
                let n = part.chars().count();
                line.push_str(part);
                line.extend(std::iter::repeat_n(' ', w.saturating_sub(n)));
            }
            line.trim_end().to_string()
        })
        .collect()
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
    /// Content stream of the current page (`None` between pages).
    content: Option<Content>,
    /// y (mm) of the next table line on the current page; `None` before the first row.
    cursor: Option<f32>,
    /// Pages written.
    pages: u64,
    /// The current intermediate page tree node and its pages so far.
    node: Option<(i32, Vec<i32>)>,
    /// Every intermediate node (the root's `/Kids`): one per 256 pages.
    nodes: Vec<i32>,
    listed: u64,
    /// Running header of pages after the first.
    title: String,
    /// Footer text left of the page number.
    generated: String,
    glyphs: Glyphs,
}

impl PdfRender {
    /// A new object number; its offset is filled in when it is written.
    fn alloc(&mut self) -> i32 {
        self.offsets.push(0);
        self.offsets.len() as i32
    }

    /// Append a chunk holding the one object `n` (its offset is where `buf` will land).
    fn put(&mut self, n: i32, chunk: Chunk) {
        let at = self.pos + self.buf.len() as u64;
        let slot = &mut self.offsets[n as usize - 1];
        debug_assert_eq!(*slot, 0, "object {n} written twice");
        *slot = at;
        self.buf.extend_from_slice(chunk.as_bytes());
    }

    /// A Flate-compressed stream object; `dict` adds to its dictionary.
    fn stream_obj(&mut self, n: i32, data: &[u8], dict: impl FnOnce(&mut pdf_writer::Stream)) {
        let z = miniz_oxide::deflate::compress_to_vec_zlib(data, DEFLATE_LEVEL);
        let mut c = Chunk::new();
        {
            let mut s = c.stream(r(n), &z);
            s.filter(Filter::FlateDecode);
            dict(&mut s);
        }
        self.put(n, c);
    }

    /// Write `buf` to the output.
    fn flush(&mut self, out: &mut dyn Write) -> Result<(), ExportError> {
        out.write_all(&self.buf)?;
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// A text operation on `c`: `s` at `pt` points with its baseline at (x, y) mm.
    fn text(&mut self, c: &mut Content, pt: f32, x: f32, y: f32, s: &str) {
        let g = self.glyphs.encode(s);
        c.begin_text();
        c.set_font(Name(b"F1"), pt);
        c.next_line(mm(x), mm(y));
        c.show(Str(&g));
        c.end_text();
    }

    /// Start a page: running header and the table's column titles; returns the y of
    /// the first row.
    fn new_page(&mut self) -> f32 {
        let mut c = Content::new();
        c.set_line_width(0.5);
        let top = if self.pages == 0 {
            FIRST_TABLE_TOP
        } else {
            let title = self.title.clone();
            self.text(&mut c, 9.0, MARGIN, PAGE_H - MARGIN + 3.0, &title);
            hline(&mut c, PAGE_H - MARGIN + 1.5);
            TABLE_TOP
        };
        let titles = table_lines(
            ["IP", "PORT", "PROTO", "STATE", "SERVICE", "VERSION"],
            false,
        );
        self.text(&mut c, TABLE_PT, MARGIN, top, &titles[0]);
        hline(&mut c, top - 1.3);
        self.content = Some(c);
        top - LINE_MM - 0.6
    }

    /// Start a page and open the table's text object at its first row.
    fn open_page(&mut self) -> f32 {
        let y = self.new_page();
        let c = self.content.as_mut().expect("a page is open");
        c.begin_text();
        c.set_font(Name(b"F1"), TABLE_PT);
        c.set_leading(mm(LINE_MM));
        c.next_line(mm(MARGIN), mm(y));
        y
    }

    /// Footer, then the page's content stream and page object to the output.
    fn close_page(&mut self, out: &mut dyn Write) -> Result<(), ExportError> {
        let number = self.pages + 1;
        let mut c = self.content.take().unwrap_or_else(Content::new);
        hline(&mut c, MARGIN - 2.0);
        let generated = self.generated.clone();
        self.text(&mut c, 7.0, MARGIN, FOOTER_Y, &generated);
        let label = format!("Page {number} of ");
        self.text(&mut c, PAGE_NO_PT, PAGE_NO_X, FOOTER_Y, &label);
        c.save_state();
        c.transform([
            1.0,
            0.0,
            0.0,
            1.0,
            mm(PAGE_NO_X) + self.glyphs.text_width(&label, PAGE_NO_PT),
            mm(FOOTER_Y),
        ]);
        c.x_object(Name(b"Total"));
        c.restore_state();
        if self.node.is_none() {
            let n = self.alloc();
            self.nodes.push(n);
            self.node = Some((n, Vec::with_capacity(PAGES_PER_NODE)));
        }
        let parent = self.node.as_ref().map_or(0, |(n, _)| *n);
        let content_obj = self.alloc();
        let page_obj = self.alloc();
        let data = c.finish();
        self.stream_obj(content_obj, &data, |_| {});
        let mut chunk = Chunk::new();
        {
            let mut page = chunk.page(r(page_obj));
            page.parent(r(parent));
            page.media_box(Rect::new(0.0, 0.0, mm(PAGE_W), mm(PAGE_H)));
            page.pair(Name(b"Resources"), r(RESOURCES));
            if self.pages == 0 {
                page.insert(Name(b"Contents"))
                    .array()
                    .items([r(SUMMARY), r(content_obj)]);
            } else {
                page.contents(r(content_obj));
            }
        }
        self.put(page_obj, chunk);
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
            let mut chunk = Chunk::new();
            chunk
                .pages(r(n))
                .parent(r(PAGES))
                .count(kids.len() as i32)
                .kids(kids.iter().map(|&k| r(k)));
            self.put(n, chunk);
        }
    }

    /// One table row (one or more lines).
    fn put_row(&mut self, lines: &[String], out: &mut dyn Write) -> Result<(), ExportError> {
        for line in lines {
            let y = match self.cursor.take() {
                Some(y) if y >= TABLE_BOTTOM => y,
                Some(_) => {
                    if let Some(c) = self.content.as_mut() {
                        c.end_text();
                    }
                    self.close_page(out)?;
                    self.open_page()
                }
                None => self.open_page(),
            };
            let g = self.glyphs.encode(line);
            let c = self.content.as_mut().expect("a page is open");
            c.show(Str(&g));
            c.next_line_using_leading();
            self.cursor = Some(y - LINE_MM);
        }
        self.listed += 1;
        Ok(())
    }

    /// Page 1's summary: title, scan facts and totals.
    fn summary(&mut self, meta: &ReportMeta, totals: &Totals) -> Vec<u8> {
        let mut c = Content::new();
        c.set_line_width(0.5);
        let title = self.title.clone();
        self.text(&mut c, 16.0, MARGIN, PAGE_H - MARGIN - 4.0, &title);
        hline(&mut c, PAGE_H - MARGIN - 7.0);
        let mut y = PAGE_H - MARGIN - 13.0;
        let scan_type = if meta.service_detection {
            format!("{}, service detection (-sV)", meta.scan_type_words())
        } else {
            meta.scan_type_words().to_string()
        };
        let mut fields: Vec<(&str, String)> = vec![(
            "Scan",
            format!("#{} ({})", meta.scan_id, meta.status_words()),
        )];
        if let Some(note) = meta.incomplete_note() {
            fields.push(("Partial", note));
        }
        fields.extend([
            ("Command", meta.command_or_targets()),
            (
                "Targets",
                format!("{} ({} addresses)", meta.targets_text(), meta.total_targets),
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
        // Every field gets its first line; long ones (the command, the targets)
        // take what room is left, cut at a word with " ..." when it runs out.
        let mut room = SUMMARY_LINES - fields.len();
        for (k, v) in &fields {
            let mut lines = wrap(&clean_text(v), VALUE_CHARS);
            let keep = lines.len().min(1 + room);
            room -= keep - 1;
            if keep < lines.len() {
                lines.truncate(keep);
                let last = lines.last_mut().expect("at least one line");
                while last.chars().count() > VALUE_CHARS - 4 {
                    match last.rfind(' ') {
                        Some(i) => last.truncate(i),
                        None => {
                            *last = last.chars().take(VALUE_CHARS - 4).collect();
                        }
                    }
                }
                last.push_str(" ...");
            }
            self.text(&mut c, SUMMARY_PT, MARGIN, y, k);
            for l in &lines {
                self.text(&mut c, SUMMARY_PT, VALUE_X, y, l);
                y -= 4.4;
            }
        }
        self.text(&mut c, 12.0, MARGIN, FIRST_TABLE_TOP + 7.0, "Port results");
        c.finish().into_vec()
    }

    /// The font objects, once every glyph used is known.
    fn write_font(&mut self) {
        let info = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };
        let mut chunk = Chunk::new();
        chunk
            .type0_font(r(FONT))
            .base_font(Name(FONT_NAME))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(r(CID_FONT))
            .to_unicode(r(TO_UNICODE));
        self.put(FONT, chunk);
        let mut chunk = Chunk::new();
        {
            let mut cid = chunk.cid_font(r(CID_FONT));
            cid.subtype(CidFontType::Type2)
                .base_font(Name(FONT_NAME))
                .system_info(info)
                .font_descriptor(r(DESCRIPTOR))
                .cid_to_gid_map_predefined(Name(b"Identity"))
                .default_width(self.glyphs.advance());
            let mut w = cid.widths();
            for &g in self.glyphs.used.keys() {
                w.consecutive(g, [self.glyphs.width(g)]);
            }
        }
        self.put(CID_FONT, chunk);
        let f = &self.glyphs.face;
        let scale = 1000.0 / f32::from(f.units_per_em());
        let bb = f.global_bounding_box();
        let mut chunk = Chunk::new();
        chunk
            .font_descriptor(r(DESCRIPTOR))
            .name(Name(FONT_NAME))
            .flags(FontFlags::FIXED_PITCH | FontFlags::NON_SYMBOLIC)
            .bbox(Rect::new(
                f32::from(bb.x_min) * scale,
                f32::from(bb.y_min) * scale,
                f32::from(bb.x_max) * scale,
                f32::from(bb.y_max) * scale,
            ))
            .italic_angle(0.0)
            .ascent(f32::from(f.ascender()) * scale)
            .descent(f32::from(f.descender()) * scale)
            .cap_height(f32::from(f.capital_height().unwrap_or(f.ascender())) * scale)
            .stem_v(80.0)
            .font_file2(r(FONT_FILE));
        self.put(DESCRIPTOR, chunk);
        let mut map = UnicodeCmap::new(Name(b"Custom"), info);
        for (&g, &ch) in &self.glyphs.used {
            map.pair(g, ch);
        }
        let map = map.finish();
        self.stream_obj(TO_UNICODE, &map, |_| {});
    }
}

/// A horizontal rule across the text area at y mm.
fn hline(c: &mut Content, y: f32) {
    c.move_to(mm(MARGIN), mm(y));
    c.line_to(mm(PAGE_W - MARGIN), mm(y));
    c.stroke();
}

impl Render for PdfRender {
    fn begin(&mut self, meta: &ReportMeta, out: &mut dyn Write) -> Result<(), ExportError> {
        self.title = format!("prtip scan report #{}", meta.scan_id);
        self.generated = format!(
            "prtip {} - generated {}",
            clean_text(&meta.prtip_version),
            crate::human_time(meta.generated_us)
        );
        // Reserve the fixed objects 1..=TO_UNICODE.
        while self.offsets.len() < TO_UNICODE as usize {
            self.alloc();
        }
        // A binary comment line tells transfer tools the file is binary.
        self.buf.extend_from_slice(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
        let mut chunk = Chunk::new();
        {
            let mut info = chunk
                .indirect(r(INFO))
                .start::<pdf_writer::writers::DocumentInfo>();
            info.title(pdf_writer::TextStr(&self.title));
            info.creator(pdf_writer::TextStr(&format!(
                "prtip {}",
                meta.prtip_version
            )));
            info.producer(pdf_writer::TextStr("prtip (pdf-writer)"));
            info.pair(
                Name(b"CreationDate"),
                Str(pdf_date(meta.generated_us).as_bytes()),
            );
        }
        self.put(INFO, chunk);
        self.stream_obj(FONT_FILE, FONT_TTF, |s| {
            s.pair(Name(b"Length1"), FONT_TTF.len() as i32);
        });
        let mut chunk = Chunk::new();
        {
            let mut d = chunk.indirect(r(RESOURCES)).dict();
            d.insert(Name(b"ProcSet"))
                .array()
                .items([Name(b"PDF"), Name(b"Text")]);
            d.insert(Name(b"Font")).dict().pair(Name(b"F1"), r(FONT));
            d.insert(Name(b"XObject"))
                .dict()
                .pair(Name(b"Total"), r(TOTAL));
        }
        self.put(RESOURCES, chunk);
        self.flush(out)
    }

    fn host(&mut self, host: &Host, out: &mut dyn Write) -> Result<(), ExportError> {
        let ip = host.addr().to_string();
        for r in host.shown() {
            let lines = table_lines(
                [
                    &ip,
                    &r.port.to_string(),
                    r.proto.as_str(),
                    r.state.as_str(),
                    &service_name(r),
                    &r.service.as_ref().map(version_string).unwrap_or_default(),
                ],
                false,
            );
            self.put_row(&lines, out)?;
        }
        for h in host.hidden() {
            let note = format!(
                "{} {} {} ports not listed",
                h.count,
                h.state.as_str(),
                h.proto.as_str()
            );
            let lines = table_lines(
                [&ip, "", h.proto.as_str(), h.state.as_str(), &note, ""],
                true,
            );
            self.put_row(&lines, out)?;
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
            Some(_) => {
                if let Some(c) = self.content.as_mut() {
                    c.end_text();
                }
            }
            None => {
                // No rows: still a first page with the (empty) table and a note.
                let y = self.new_page();
                let mut c = self.content.take().expect("a page is open");
                self.text(&mut c, 10.0, MARGIN, y, "No results.");
                self.content = Some(c);
            }
        }
        self.close_page(out)?;
        self.close_node();
        let summary = self.summary(meta, totals);
        self.stream_obj(SUMMARY, &summary, |_| {});
        // The page count, shown by every page's footer.
        let mut total = Content::new();
        let digits = self.glyphs.encode(&self.pages.to_string());
        total
            .begin_text()
            .set_font(Name(b"F1"), PAGE_NO_PT)
            .show(Str(&digits))
            .end_text();
        let total = total.finish();
        let z = miniz_oxide::deflate::compress_to_vec_zlib(&total, DEFLATE_LEVEL);
        let mut chunk = Chunk::new();
        {
            let mut form = chunk.form_xobject(r(TOTAL), &z);
            form.filter(Filter::FlateDecode);
            form.bbox(Rect::new(0.0, -4.0, 120.0, 12.0));
            form.resources().fonts().pair(Name(b"F1"), r(FONT));
        }
        self.put(TOTAL, chunk);
        self.write_font();
        let mut chunk = Chunk::new();
        chunk
            .pages(r(PAGES))
            .count(self.pages as i32)
            .kids(self.nodes.iter().map(|&n| r(n)));
        self.put(PAGES, chunk);
        let mut chunk = Chunk::new();
        chunk
            .indirect(r(CATALOG))
            .start::<pdf_writer::writers::Catalog>()
            .pages(r(PAGES));
        self.put(CATALOG, chunk);
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
        let a = Hasher::finish(&h);
        self.listed.hash(&mut h);
        let id = format!("{a:016x}{:016x}", Hasher::finish(&h));
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
    fn table_lines_have_fixed_columns_and_wrap_long_cells_at_words() {
        let l = table_lines(
            ["198.19.0.2", "22", "tcp", "open", "ssh", "OpenSSH 9.2p1"],
            false,
        );
        assert_eq!(
            l,
            vec!["198.19.0.2                22     tcp   open           ssh             OpenSSH 9.2p1"]
        );
        // A version longer than its column continues on the next line, cut at a space.
        let v = "Apache httpd 2.4.57 ((Debian) OpenSSL/3.0.11 mod_perl/2.0.12)";
        let l = table_lines(["198.19.0.2", "80", "tcp", "open", "http", v], false);
        assert_eq!(l.len(), 2);
        assert!(l[0].ends_with("Apache httpd 2.4.57 ((Debian)"), "{l:?}");
        assert_eq!(l[1].trim(), "OpenSSL/3.0.11 mod_perl/2.0.12)");
        assert_eq!(l[1].find('O'), Some(COLS.iter().sum::<usize>()));
        // Unicode stays itself; control characters are escaped.
        assert_eq!(
            table_lines(["é\r", "", "", "", "", ""], false),
            vec!["é\\x0d"]
        );
        // A note spans the service and version columns whole.
        let n = table_lines(
            [
                "10.0.0.1",
                "",
                "tcp",
                "closed",
                "194 closed tcp ports not listed",
                "",
            ],
            true,
        );
        assert_eq!(n.len(), 1);
        assert!(n[0].ends_with("194 closed tcp ports not listed"), "{n:?}");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_only_long_words_inside() {
        assert_eq!(
            wrap("prtip scan -p 1-65535 198.19.0.0/16", 16),
            vec!["prtip scan -p", "1-65535", "198.19.0.0/16"]
        );
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), vec![""]);
    }

    #[test]
    fn glyphs_are_identity_encoded_and_remembered_for_the_font() {
        let mut g = Glyphs::default();
        let e = g.encode("Aé");
        assert_eq!(e.len(), 4);
        let a = u16::from_be_bytes([e[0], e[1]]);
        let eacute = u16::from_be_bytes([e[2], e[3]]);
        assert!(a != 0 && eacute != 0, "both in DejaVu Sans Mono");
        assert_eq!(g.used.get(&eacute), Some(&'é'));
        // Monospaced: 0.602 em, "Page 1 of " (10 characters) at 1000 pt.
        assert!((g.text_width("Page 1 of ", 1000.0) - 6020.0).abs() < 5.0);
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
