//! Text that came from a client and is echoed back (problem documents) or
//! recorded (audit events). Characters that a store cannot hold (NUL in
//! PostgreSQL) or that change how the text around them reads (control,
//! bidirectional and zero-width characters) are written as `\u{…}`, and bytes
//! that are not UTF-8 as `\x{…}`, so that what was sent stays readable and
//! nothing is dropped.
//!
//! A backslash itself is kept as is: escaping is idempotent (text escaped
//! twice reads the same as once), at the price that a client typing the six
//! characters `\u{0}` is recorded like one sending a NUL. Raw paths and query
//! strings keep their percent-encoding, so they stay exact.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters that are written as `\u{…}`: controls (C0, DEL, C1), and the
/// invisible ones that reorder or hide text: bidirectional marks, embeddings,
/// overrides and isolates, zero-width characters, line and paragraph
/// separators, fillers that render blank, and tag characters.
pub fn is_hidden(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// `text` with every hidden character (see [`is_hidden`]) written `\u{hex}`;
/// borrowed when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if is_hidden(character) {
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(character));
        } else {
            escaped.push(character);
        }
    }
    Cow::Owned(escaped)
}

/// [`escape`] for an owned string, reusing it when nothing changes.
pub fn escape_owned(text: String) -> String {
    match escape(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

/// Bytes as sent (a header value, a percent-decoded path segment): UTF-8
/// where they are UTF-8, each other byte written `\x{hex}`; at most
/// `max_chars` characters, an escaped byte counting as one.
pub fn from_bytes(bytes: &[u8], max_chars: usize) -> String {
    let mut text = String::with_capacity(bytes.len().min(max_chars * 4));
    let mut count = 0;
    for chunk in bytes.utf8_chunks() {
        for character in chunk.valid().chars() {
            if count == max_chars {
                return text;
            }
            text.push(character);
            count += 1;
        }
        for byte in chunk.invalid() {
            if count == max_chars {
                return text;
            }
            let _ = write!(text, "\\x{{{byte:x}}}");
            count += 1;
        }
    }
    text
}

/// The longest prefix of `text` within `max_bytes`, on a character boundary.
pub fn cut(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hidden characters are escaped; visible text, accents and emoji are kept.
    #[test]
    fn escapes_hidden_characters_only() {
        let cases = [
            ("plain", "plain"),
            ("été, Zoë, 東京, 🙂", "été, Zoë, 東京, 🙂"),
            ("a\0b", "a\\u{0}b"),
            ("tab\tnew\nline\r", "tab\\u{9}new\\u{a}line\\u{d}"),
            ("del\u{7f} c1\u{85}", "del\\u{7f} c1\\u{85}"),
            ("abc\u{202e}txt.exe", "abc\\u{202e}txt.exe"),
            (
                "zero\u{200b}width\u{200d}joiner",
                "zero\\u{200b}width\\u{200d}joiner",
            ),
            ("\u{2066}isolate\u{2069}", "\\u{2066}isolate\\u{2069}"),
            ("\u{feff}bom", "\\u{feff}bom"),
            ("tag\u{e0041}", "tag\\u{e0041}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape(input), expected, "{input:?}");
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }

    /// Escaping twice reads the same as once.
    #[test]
    fn escaping_is_idempotent() {
        for input in ["a\0b\u{202e}", "\\u{0} typed", "\\x{ff}"] {
            let once = escape(input).into_owned();
            assert_eq!(escape(&once), once);
        }
    }

    /// Valid UTF-8 is decoded, other bytes are escaped, the cap counts characters.
    #[test]
    fn decodes_bytes_as_sent() {
        assert_eq!(
            from_bytes("navigateur (été)".as_bytes(), 300),
            "navigateur (été)"
        );
        assert_eq!(
            from_bytes(b"probe/\xff\xfe (\xe9t\xe9)", 300),
            "probe/\\x{ff}\\x{fe} (\\x{e9}t\\x{e9})"
        );
        assert_eq!(from_bytes(b"\xc3(", 300), "\\x{c3}(");
        assert_eq!(from_bytes("ééé".as_bytes(), 2), "éé");
        assert_eq!(from_bytes(b"a\xff\xffb", 2), "a\\x{ff}");
    }

    /// Cutting never splits a character.
    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("abc", 2), "ab");
        assert_eq!(cut("aé", 2), "a");
    }
}
