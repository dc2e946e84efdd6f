//! The PDF report (printpdf, builtin fonts): a header, a summary, the
//! IP / Port / Protocol / State / Service / Version table across as many pages as
//! needed, and "Page N of M" on every page.
//!
//! Builtin PDF fonts only cover Latin-1, so every remote string is reduced to
//! printable ASCII first (`\xNN` escapes). The table is set in Courier: one text
//! operation per row keeps printpdf's in-memory document small (about 0.3 KB per
//! listed row), but printpdf holds the whole document until it is saved, so unlike
//! the other formats memory grows with the number of listed rows.

use super::{service_name, version_string, Render, Totals};
use crate::escape::ascii_text;
use crate::{ExportError, Host, ReportMeta};
use printpdf::{
    BuiltinFont, IndirectFontRef, Line, Mm, PdfDocument, PdfDocumentReference, PdfLayerIndex,
    PdfLayerReference, PdfPageIndex, Point,
};
use std::io::{BufWriter, Write};

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

struct Fonts {
    regular: IndirectFontRef,
    bold: IndirectFontRef,
    mono: IndirectFontRef,
    mono_bold: IndirectFontRef,
}

#[derive(Default)]
pub(crate) struct PdfRender {
    doc: Option<(PdfDocumentReference, Fonts)>,
    /// The first page, created with the document.
    first_page: Option<(PdfPageIndex, PdfLayerIndex)>,
    pages: Vec<(PdfPageIndex, PdfLayerIndex)>,
    /// Current page's layer and the y of the next table line; `None` before the first row.
    cursor: Option<(PdfLayerReference, f32)>,
    listed: u64,
    /// Running header of pages after the first.
    title: String,
}

fn pdf_err(e: impl std::fmt::Display) -> ExportError {
    ExportError::Pdf(e.to_string())
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

fn hline(layer: &PdfLayerReference, y: f32) {
    layer.add_line(Line {
        points: vec![
            (Point::new(Mm(MARGIN), Mm(y)), false),
            (Point::new(Mm(PAGE_W - MARGIN), Mm(y)), false),
        ],
        is_closed: false,
    });
}

impl PdfRender {
    fn doc(&self) -> &(PdfDocumentReference, Fonts) {
        self.doc.as_ref().expect("begin() created the document")
    }

    /// Start a page: running header and the table's column titles; returns the layer and first row y.
    fn new_page(&mut self) -> (PdfLayerReference, f32) {
        let first = self.pages.is_empty();
        let first_page = self.first_page.expect("begin() created the first page");
        let (doc, fonts) = self.doc();
        let (page, layer) = if first {
            first_page
        } else {
            doc.add_page(Mm(PAGE_W), Mm(PAGE_H), "content")
        };
        let l = doc.get_page(page).get_layer(layer);
        let top = if first {
            FIRST_TABLE_TOP
        } else {
            l.use_text(
                &self.title,
                9.0,
                Mm(MARGIN),
                Mm(PAGE_H - MARGIN + 3.0),
                &fonts.bold,
            );
            hline(&l, PAGE_H - MARGIN + 1.5);
            TABLE_TOP
        };
        l.use_text(
            table_line(["IP", "PORT", "PROTO", "STATE", "SERVICE", "VERSION"]),
            TABLE_PT,
            Mm(MARGIN),
            Mm(top),
            &fonts.mono_bold,
        );
        hline(&l, top - 1.3);
        self.pages.push((page, layer));
        (l, top - LINE_MM - 0.6)
    }

    fn put_row(&mut self, line: String) {
        let (layer, y) = match self.cursor.take() {
            Some((l, y)) if y >= TABLE_BOTTOM => (l, y),
            Some((l, _)) => {
                l.end_text_section();
                self.open_page()
            }
            None => self.open_page(),
        };
        layer.write_text(line, &self.doc().1.mono);
        layer.add_line_break();
        self.listed += 1;
        self.cursor = Some((layer, y - LINE_MM));
    }

    fn open_page(&mut self) -> (PdfLayerReference, f32) {
        let (l, y) = self.new_page();
        l.begin_text_section();
        l.set_font(&self.doc().1.mono, TABLE_PT);
        l.set_line_height(LINE_MM / 25.4 * 72.0);
        l.set_text_cursor(Mm(MARGIN), Mm(y));
        (l, y)
    }
}

impl Render for PdfRender {
    fn begin(&mut self, meta: &ReportMeta, _out: &mut dyn Write) -> Result<(), ExportError> {
        let title = format!("prtip scan report #{}", meta.scan_id);
        self.title = title.clone();
        let (doc, page, layer) = PdfDocument::new(&title, Mm(PAGE_W), Mm(PAGE_H), "content");
        self.first_page = Some((page, layer));
        let doc = doc
            .with_creator(format!("prtip {}", ascii_text(&meta.prtip_version)))
            .with_producer("prtip (printpdf)");
        let fonts = Fonts {
            regular: doc
                .add_builtin_font(BuiltinFont::Helvetica)
                .map_err(pdf_err)?,
            bold: doc
                .add_builtin_font(BuiltinFont::HelveticaBold)
                .map_err(pdf_err)?,
            mono: doc
                .add_builtin_font(BuiltinFont::Courier)
                .map_err(pdf_err)?,
            mono_bold: doc
                .add_builtin_font(BuiltinFont::CourierBold)
                .map_err(pdf_err)?,
        };
        self.doc = Some((doc, fonts));
        Ok(())
    }

    fn host(&mut self, host: &Host, _out: &mut dyn Write) -> Result<(), ExportError> {
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
            self.put_row(line);
        }
        for h in host.hidden() {
            let note = format!(
                "{} {} {} ports not listed",
                h.count,
                h.state.as_str(),
                h.proto.as_str()
            );
            let line = table_line([&ip, "", h.proto.as_str(), "", &note, ""]);
            self.put_row(line);
        }
        Ok(())
    }

    fn finish(
        &mut self,
        meta: &ReportMeta,
        totals: &Totals,
        out: &mut dyn Write,
    ) -> Result<(), ExportError> {
        let title = self.title.clone();
        match self.cursor.take() {
            Some((l, _)) => l.end_text_section(),
            None => {
                // No rows: still a first page with the (empty) table and a note.
                let (l, y) = self.new_page();
                l.use_text(
                    "No results.",
                    10.0,
                    Mm(MARGIN),
                    Mm(y),
                    &self.doc().1.regular,
                );
            }
        }
        let (doc, fonts) = self.doc();
        // Summary on the first page.
        let first = doc.get_page(self.pages[0].0).get_layer(self.pages[0].1);
        first.use_text(
            &title,
            18.0,
            Mm(MARGIN),
            Mm(PAGE_H - MARGIN - 4.0),
            &fonts.bold,
        );
        hline(&first, PAGE_H - MARGIN - 7.0);
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
        let mut lines: Vec<(&str, String)> =
            vec![("Scan", format!("#{} ({})", meta.scan_id, meta.status))];
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
            first.use_text(*k, 10.0, Mm(MARGIN), Mm(y), &fonts.bold);
            let v: String = ascii_text(v).chars().take(90).collect();
            first.use_text(v, 10.0, Mm(MARGIN + 28.0), Mm(y), &fonts.regular);
            y -= 5.0;
        }
        first.use_text(
            "Port results",
            12.0,
            Mm(MARGIN),
            Mm(FIRST_TABLE_TOP + 7.0),
            &fonts.bold,
        );
        // Footer with page numbers, now that the page count is known.
        let n = self.pages.len();
        let generated = format!(
            "prtip {} - generated {}",
            ascii_text(&meta.prtip_version),
            crate::human_time(meta.generated_us)
        );
        for (i, (page, layer)) in self.pages.iter().enumerate() {
            let l = doc.get_page(*page).get_layer(*layer);
            hline(&l, MARGIN - 2.0);
            l.use_text(
                &generated,
                7.5,
                Mm(MARGIN),
                Mm(MARGIN - 6.0),
                &fonts.regular,
            );
            l.use_text(
                format!("Page {} of {n}", i + 1),
                8.0,
                Mm(PAGE_W - MARGIN - 24.0),
                Mm(MARGIN - 6.0),
                &fonts.regular,
            );
        }
        let (doc, _) = self.doc.take().expect("document exists");
        let mut w = BufWriter::new(out);
        doc.save(&mut w).map_err(pdf_err)?;
        w.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
