//! Writing values into JSON strings and logfmt values, straight into an
//! output buffer (no allocation per value).
//!
//! The `_lossy` variants take raw bytes: what is not valid UTF-8 is written
//! as U+FFFD (the same replacement as [`String::from_utf8_lossy`]), and they
//! report whether they replaced anything so the caller can count such lines.
//! The output is always valid JSON / logfmt.

/// Bytes that need escaping in a JSON string: `"`, `\` and controls.
const fn json_escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}

static JSON_ESCAPE: [bool; 256] = json_escape_table();

/// U+FFFD REPLACEMENT CHARACTER in UTF-8.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Appends `s` as a JSON string literal, quotes included.
///
/// ```
/// let mut out = Vec::new();
/// podkit_record::escape::json_string(&mut out, "say \"hi\"\n");
/// assert_eq!(out, br#""say \"hi\"\n""#);
/// ```
#[inline]
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    json_escaped(out, s.as_bytes());
    out.push(b'"');
}

/// Appends `bytes` as a JSON string literal, with U+FFFD for each invalid
/// UTF-8 sequence. Returns whether anything was replaced.
///
/// ```
/// let mut out = Vec::new();
/// assert!(podkit_record::escape::json_string_lossy(&mut out, b"bad \xff"));
/// assert_eq!(out, "\"bad \u{FFFD}\"".as_bytes());
/// ```
#[inline]
pub fn json_string_lossy(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            json_string(out, s);
            false
        }
        Err(_) => {
            out.reserve(bytes.len() + 2);
            out.push(b'"');
            for chunk in bytes.utf8_chunks() {
                json_escaped(out, chunk.valid().as_bytes());
                if !chunk.invalid().is_empty() {
                    out.extend_from_slice(REPLACEMENT);
                }
            }
            out.push(b'"');
            true
        }
    }
}

/// `0x01` in every byte of a word.
const ONES: u64 = u64::from_ne_bytes([1; 8]);
/// `0x80` in every byte of a word.
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any byte of the 8-byte word `w` needs escaping in a JSON string
/// (a control below 0x20, `"` or `\`), tested on all 8 at once: per byte,
/// `(x - n) & !x & 0x80` is non-zero somewhere exactly when some byte `x` is
/// below `n` (for `n` ≤ 0x80), and `x ^ c` is zero where `x` equals `c`.
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    (below(w, 0x20) | below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1)) != 0
}

/// Appends the inside of a JSON string literal (no quotes) for valid UTF-8
/// `bytes`. Runs that need no escaping (nearly all of a log line) are
/// skipped 8 bytes at a time and copied whole.
fn json_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        while let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
            if word_needs_escape(word) {
                break;
            }
            i += 8;
        }
        // Byte by byte through the word that needs escaping (or the tail).
        let end = (i + 8).min(bytes.len());
        while i < end {
            let b = bytes[i];
            i += 1;
            if JSON_ESCAPE[b as usize] {
                escape_byte(out, &bytes[run..i - 1], b);
                run = i;
            }
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

/// Appends the clean run before an escaped byte, then the byte's escape.
#[inline]
fn escape_byte(out: &mut Vec<u8>, clean: &[u8], b: u8) {
    out.extend_from_slice(clean);
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0C => out.extend_from_slice(b"\\f"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xF) as usize]);
        }
    }
}

/// Whether a logfmt value must be quoted: it is empty or holds a space,
/// `=`, a quote or a control character.
fn logfmt_needs_quotes(bytes: &[u8]) -> bool {
    bytes.is_empty() || bytes.iter().any(|&b| b <= b' ' || b == b'=' || b == b'"' || b == 0x7f)
}

/// Appends a logfmt value, quoted (Go `strconv.Quote` style, which logfmt
/// parsers accept) when it is empty or holds a space, `=`, a quote or a
/// control character.
///
/// ```
/// let mut out = Vec::new();
/// podkit_record::escape::logfmt_value(&mut out, "plain");
/// out.push(b' ');
/// podkit_record::escape::logfmt_value(&mut out, "two words");
/// assert_eq!(out, br#"plain "two words""#);
/// ```
#[inline]
pub fn logfmt_value(out: &mut Vec<u8>, s: &str) {
    if logfmt_needs_quotes(s.as_bytes()) {
        json_string(out, s);
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// [`logfmt_value`] for raw bytes, with U+FFFD for each invalid UTF-8
/// sequence. Returns whether anything was replaced.
pub fn logfmt_value_lossy(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    if let Ok(s) = std::str::from_utf8(bytes) {
        logfmt_value(out, s);
        return false;
    }
    // Invalid bytes are all >= 0x80: they never call for quotes, and
    // neither does U+FFFD.
    if logfmt_needs_quotes(bytes) {
        return json_string_lossy(out, bytes);
    }
    for chunk in bytes.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(REPLACEMENT);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &[&[u8]] = &[
        b"plain",
        b"quote \" backslash \\ tab \t",
        b"ctl \x01\x1f bell \x07 del \x7f ff \x0c bs \x08 cr \r nl \n",
        b"unicode \xc3\xa9 \xe2\x80\xa8",
        b"bad \xff\xfe utf8 \xc3",
        b"\xc3",
        b"",
    ];

    #[test]
    fn json_strings_read_back_as_the_lossy_text() {
        for &sample in SAMPLES {
            let mut out = Vec::new();
            let replaced = json_string_lossy(&mut out, sample);
            assert_eq!(replaced, std::str::from_utf8(sample).is_err(), "{sample:?}");
            let text = std::str::from_utf8(&out).expect("valid UTF-8");
            let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                v,
                serde_json::Value::String(String::from_utf8_lossy(sample).into_owned())
            );
        }
    }

    #[test]
    fn json_escapes_are_the_short_ones() {
        let mut out = Vec::new();
        json_string(&mut out, "\"\\\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "\"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}é\""
        );
    }

    #[test]
    fn logfmt_quotes_only_when_needed() {
        for (value, want) in [
            (&b"INFO"[..], "INFO"),
            (b"hi there", "\"hi there\""),
            (b"x=\"1\"", "\"x=\\\"1\\\"\""),
            (b"", "\"\""),
            (b"del\x7f", "\"del\x7f\""),
            (b"caf\xc3\xa9", "café"),
            (b"bad\xff", "bad\u{FFFD}"),
            (b"bad \xff", "\"bad \u{FFFD}\""),
        ] {
            let mut out = Vec::new();
            let replaced = logfmt_value_lossy(&mut out, value);
            assert_eq!(replaced, std::str::from_utf8(value).is_err());
            assert_eq!(std::str::from_utf8(&out).unwrap(), want, "{value:?}");
        }
    }

    proptest::proptest! {
        /// Any bytes give a JSON string that reads back as the lossy text.
        #[test]
        fn any_bytes_make_valid_json(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let mut out = Vec::new();
            json_string_lossy(&mut out, &bytes);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            proptest::prop_assert_eq!(v, serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
}
