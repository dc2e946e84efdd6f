//! Byte-string escapes shared by both probe-file parsers, and printable renderings
//! of remote bytes. Pure functions over strings; no I/O.

/// Decodes C-style escapes as nmap's `q|...|` and our quoted strings use them:
/// `\\ \" \' \0 \a \b \f \n \r \t \v \xHH`; any other escaped character stands for itself.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(&c) = b.get(i + 1) else {
            return Err("a trailing backslash ends the string".into());
        };
        i += 2;
        out.push(match c {
            b'0' => 0,
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            b'x' => {
                let hex = b
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("\\x at byte {} needs two hex digits", i - 2))?;
                i += 2;
                hex
            }
            other => other,
        });
    }
    Ok(out)
}

/// Renders bytes as printable ASCII: printable characters as they are, everything else
/// as `\xHH` (`\r`, `\n`, `\t` and `\\` as their escapes). Used for banners in text.
pub fn printable(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_handles_every_escape() {
        assert_eq!(
            unescape(r"GET / HTTP/1.0\r\n\r\n").unwrap(),
            b"GET / HTTP/1.0\r\n\r\n"
        );
        assert_eq!(unescape(r"\0\x01\xfF\\\|").unwrap(), b"\0\x01\xff\\|");
        assert_eq!(unescape(r"\a\b\f\t\v").unwrap(), [7, 8, 12, 9, 11]);
        assert!(unescape(r"\x4").unwrap_err().contains("two hex digits"));
        assert!(unescape("abc\\")
            .unwrap_err()
            .contains("trailing backslash"));
    }

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(
            printable(b"SSH-2.0\r\n\x1b[31m\xff"),
            "SSH-2.0\\r\\n\\x1b[31m\\xff"
        );
    }
}
