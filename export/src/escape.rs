//! Making remote bytes and strings safe for each output.
//!
//! Everything a scanned host sent (banners, service names, products, versions) is
//! untrusted. This module owns the transformations that make such data printable
//! and inert; it never writes files and never decides what to print.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Banner bytes as a printable, lossless string: printable ASCII stays, a backslash
/// becomes `\\`, every other byte becomes `\xNN` (two lower-case hex digits).
///
/// `b"SSH-2.0-x\r\n"` becomes `SSH-2.0-x\x0d\x0a`. The result contains only the
/// bytes 0x20..=0x7e, so it is safe in CSV, JSON, XML attributes and builtin PDF fonts.
pub fn printable_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// Banner bytes for JSON, which can carry any text: a banner that is valid UTF-8 is
/// returned as it is (CR, LF, NUL and the rest are then escaped by the JSON encoder as
/// `\r`, `\n`, `\u0000`, and a reader gets the original text back), with `false`.
/// A banner with bytes that are not UTF-8 is returned with `true`: its valid text
/// stays text except that `\` becomes `\\`, and each byte that is not part of valid
/// UTF-8 becomes `\xNN` (lossless: undo `\xNN` and `\\` to get the bytes back).
pub fn json_banner(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return (Cow::Borrowed(text), false);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    (Cow::Owned(out), true)
}

/// Banner bytes for people: trailing CR/LF/space/NUL trimmed, then [`printable_bytes`].
pub fn display_banner(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
        .map_or(0, |i| i + 1);
    printable_bytes(&bytes[..end])
}

/// Like [`display_banner`] but line breaks (`\r\n`, `\n`) stay line breaks, for
/// outputs that can show several lines (HTML `pre-wrap`).
pub fn display_banner_lines(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
        .map_or(0, |i| i + 1);
    let bytes = &bytes[..end];
    let mut out = String::with_capacity(bytes.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let line_end = bytes[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| i + p);
        let mut line = &bytes[i..line_end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        out.push_str(&printable_bytes(line));
        if line_end < bytes.len() {
            out.push('\n');
        }
        i = line_end + 1;
    }
    out
}

/// Cut a display banner (from [`display_banner`] or [`display_banner_lines`]) to at
/// most `max` characters without splitting a `\xNN` escape; a cut banner ends with
/// `... (N bytes)` giving the original size. Reports use it; CSV and JSON keep
/// the whole banner.
pub fn excerpt(display: String, original_len: usize, max: usize) -> String {
    if display.len() <= max {
        return display;
    }
    // `display` is ASCII: find the last cut point that is not inside an escape.
    let b = display.as_bytes();
    let mut cut = max;
    for back in 1..4.min(cut) {
        if b[cut - back] == b'\\' {
            // An escape starts `back` bytes before the cut: `\\` is 2 bytes, `\xNN` 4.
            let len = if b.get(cut - back + 1) == Some(&b'\\') {
                2
            } else {
                4
            };
            if back < len {
                cut -= back;
            }
            break;
        }
    }
    format!("{}... ({original_len} bytes)", &display[..cut])
}

/// A remote-derived string with every control character (C0, DEL, C1) and every
/// character XML 1.0 forbids (U+FFFE, U+FFFF) replaced by `\xNN` / `\u{NNNN}`.
/// Other Unicode passes through. Borrowed when nothing had to change.
pub fn clean_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            let n = c as u32;
            if n <= 0xff {
                let _ = write!(out, "\\x{n:02x}");
            } else {
                let _ = write!(out, "\\u{{{n:04x}}}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{fffe}' || c == '\u{ffff}'
}

/// A string reduced to printable ASCII (what the PDF builtin fonts can show):
/// control characters and every non-ASCII character become `\xNN` per UTF-8 byte.
pub fn ascii_text(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// A CSV cell a spreadsheet would run as a formula (first character `=`, `+`, `-`,
/// `@`, tab or CR) gets a leading `'`, which spreadsheets show as text.
pub fn neutralize_formula(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// Escape text for an XML attribute value or text node (`& < > " '`); the input must
/// already be free of characters XML forbids (see [`clean_text`]).
pub fn xml_escape(s: &str) -> Cow<'_, str> {
    if !s
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// XML-safe text from a remote string: [`clean_text`] then [`xml_escape`].
pub fn xml_text(s: &str) -> String {
    xml_escape(&clean_text(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_bytes_become_printable_and_lossless() {
        assert_eq!(
            printable_bytes(b"SSH-2.0-x\r\n\x00\xff\\"),
            "SSH-2.0-x\\x0d\\x0a\\x00\\xff\\\\"
        );
        assert_eq!(display_banner(b"220 ftp ready\r\n"), "220 ftp ready");
        assert_eq!(display_banner(b"\r\n"), "");
        assert_eq!(display_banner(b"a\x1b[31mb\n"), "a\\x1b[31mb");
        assert_eq!(
            display_banner_lines(b"HTTP/1.1 200\r\nServer: x\n\x01\r\n"),
            "HTTP/1.1 200\nServer: x\n\\x01"
        );
    }

    #[test]
    fn excerpts_never_split_an_escape() {
        let bytes = b"abc\x01defgh";
        let d = display_banner(bytes);
        assert_eq!(d, "abc\\x01defgh");
        assert_eq!(excerpt(d.clone(), bytes.len(), 100), d);
        assert_eq!(excerpt(d.clone(), bytes.len(), 5), "abc... (9 bytes)");
        assert_eq!(excerpt(d.clone(), bytes.len(), 7), "abc\\x01... (9 bytes)");
        assert_eq!(excerpt(d, bytes.len(), 8), "abc\\x01d... (9 bytes)");
        assert_eq!(excerpt("a\\\\bc".into(), 4, 2), "a... (4 bytes)");
    }

    #[test]
    fn control_characters_are_escaped_unicode_kept() {
        assert_eq!(clean_text("OpenSSH"), "OpenSSH");
        assert!(matches!(clean_text("OpenSSH"), Cow::Borrowed(_)));
        assert_eq!(
            clean_text("a\u{7}b\u{85}c\u{fffe}é"),
            "a\\x07b\\x85c\\u{fffe}é"
        );
        assert_eq!(ascii_text("café\t"), "caf\\xc3\\xa9\\x09");
    }

    #[test]
    fn formula_cells_get_a_quote() {
        for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralize_formula(bad), format!("'{bad}"));
        }
        assert_eq!(neutralize_formula("ssh"), "ssh");
        assert_eq!(neutralize_formula(""), "");
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(
            xml_text("<a href=\"x\">&'\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\\x01"
        );
    }

    #[test]
    fn json_banners_stay_text_and_escape_only_what_is_not_utf8() {
        let (t, escaped) = json_banner("SSH-2.0-x\r\nDate: é\\\0".as_bytes());
        assert_eq!((t.as_ref(), escaped), ("SSH-2.0-x\r\nDate: é\\\0", false));
        let (t, escaped) = json_banner(b"a\\b\r\n\xff\xc3\xa9\xc3");
        assert_eq!((t.as_ref(), escaped), ("a\\\\b\r\n\\xffé\\xc3", true));
    }
}
