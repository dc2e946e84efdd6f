//! Neutralising remote text before it reaches the terminal.
//!
//! Banners, service strings, host names and anything else a scanned host chose
//! go through [`sanitize`] / [`sanitize_bytes`] before they are put in a ratatui
//! buffer. Every character that a terminal would interpret instead of print — C0
//! controls (ESC, BEL, CR, BS, ...), DEL, C1 controls (U+0080–U+009F, which
//! include the 8-bit CSI and OSC), and the invisible Unicode format characters
//! that reorder or hide text (bidi overrides and isolates, zero-width characters,
//! BOM) — is replaced by a visible escape such as `\x1b` or `\u{202e}`. Bytes that
//! are not UTF-8 become `\xNN`. A hostile banner therefore cannot move the cursor,
//! clear the screen, change colours, set the window title or hide text.
//!
//! This module owns the escaping only; it never renders.

use std::borrow::Cow;
use std::fmt::Write;

/// Is `c` a character a terminal would act on, or an invisible formatting
/// character that could disguise text?
pub fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}'                  // soft hyphen (invisible)
            | '\u{061c}'                // Arabic letter mark
            | '\u{180e}'                // Mongolian vowel separator
            | '\u{200b}'..='\u{200f}'   // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'   // line / paragraph separator
            | '\u{202a}'..='\u{202e}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
            | '\u{2066}'..='\u{206f}'   // bidi isolates, deprecated format chars
            | '\u{feff}'                // BOM / zero-width no-break space
            | '\u{fff9}'..='\u{fffb}'   // interlinear annotations
        )
}

fn escape_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x100 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `text` with every [dangerous](is_dangerous) character replaced by a visible
/// escape (`\x1b`, `\r`, `\n`, `\u{202e}`), and a literal backslash doubled so
/// an escape in the output always means a neutralised character. Borrows when
/// nothing needs escaping.
///
/// ```
/// use prtip_monitor::sanitize;
/// assert_eq!(sanitize("SSH-2.0-OpenSSH_9.2"), "SSH-2.0-OpenSSH_9.2");
/// assert_eq!(sanitize("\x1b]0;pwned\x07\x1b[2J"), "\\x1b]0;pwned\\x07\\x1b[2J");
/// ```
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || is_dangerous(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_dangerous(c) {
            escape_char(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Raw bytes (a banner) as safe text: valid UTF-8 is kept (and [`sanitize`]d),
/// every invalid byte becomes `\xNN`.
///
/// ```
/// use prtip_monitor::sanitize_bytes;
/// assert_eq!(sanitize_bytes(b"220 ok\r\n\xff\x9b2J"), "220 ok\\r\\n\\xff\\x9b2J");
/// ```
pub fn sanitize_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&sanitize(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(
            sanitize("nginx 1.24.0 (Ubuntu) — ünïcödé 日本"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn terminal_controls_become_visible_escapes() {
        // Cursor movement, clear screen, colours, title (OSC 0 with BEL and ST),
        // 8-bit CSI, backspace over text, carriage return overwrite.
        let hostile =
            "\x1b[2J\x1b[H\x1b[31mred\x1b[0m\x1b]0;owned\x07\x1b]2;t\x1b\\\u{9b}6n ok\x08\x08xx\rY";
        let s = sanitize(hostile);
        assert_eq!(
            s,
            "\\x1b[2J\\x1b[H\\x1b[31mred\\x1b[0m\\x1b]0;owned\\x07\\x1b]2;t\\x1b\\\\\\x9b6n ok\\x08\\x08xx\\rY"
        );
        assert!(!s.chars().any(is_dangerous));
    }

    #[test]
    fn invisible_unicode_formatting_is_shown() {
        assert_eq!(sanitize("admin\u{202e}txt.exe"), "admin\\u{202e}txt.exe");
        assert_eq!(
            sanitize("a\u{200b}b\u{feff}c\u{2066}d"),
            "a\\u{200b}b\\u{feff}c\\u{2066}d"
        );
        assert_eq!(sanitize("soft\u{ad}hyphen"), "soft\\xadhyphen");
    }

    #[test]
    fn backslashes_are_doubled_so_escapes_are_unambiguous() {
        assert_eq!(sanitize(r"C:\x1b"), r"C:\\x1b");
    }

    #[test]
    fn invalid_utf8_bytes_are_hex() {
        assert_eq!(
            sanitize_bytes(b"SSH-2.0\xc3\x28\xff\x1b[1;1H\xe2\x82"),
            "SSH-2.0\\xc3(\\xff\\x1b[1;1H\\xe2\\x82"
        );
        assert_eq!(sanitize_bytes("é".as_bytes()), "é");
    }

    #[test]
    fn every_byte_value_is_neutralised() {
        let all: Vec<u8> = (0..=255).collect();
        let s = sanitize_bytes(&all);
        assert!(!s.chars().any(is_dangerous), "{s}");
        assert!(!s.contains('\x1b'));
        for cp in (0u32..0x3000).chain(0xfe00..0x10000) {
            if let Some(c) = char::from_u32(cp) {
                let one = c.to_string();
                assert!(!sanitize(&one).chars().any(is_dangerous), "U+{cp:04x}");
            }
        }
    }
}
