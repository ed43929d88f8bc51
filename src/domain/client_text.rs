//! Text from clients (query strings, header values) decoded strictly before
//! anything reads it: percent-decoded to bytes, then checked as UTF-8, then
//! checked for characters no store should receive.
//!
//! Why strict: a lossy decoder turns invalid bytes into U+FFFD without a word
//! (a filter then quietly matches nothing), and a NUL byte is refused by
//! PostgreSQL's text type (a 500) while SQLite stores it (a 200). The same
//! request must get the same answer on both stores: a 400 naming the
//! parameter or header.
//!
//! Refused characters: U+0000, which no PostgreSQL text can hold, and the
//! other C0 controls and DEL, which no column name, filter value or purpose
//! needs and which can rewrite the terminal of whoever reads a log line
//! (ESC). Tab, line feed and carriage return stay ordinary text: a stored
//! value may span lines (an address), and a filter must be able to match it.
//! Lone surrogates and overlong forms are not UTF-8, so they are refused as
//! invalid UTF-8.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};

/// Longest piece of client text quoted in an error.
const QUOTED_CHARS: usize = 60;

/// Bytes percent-encoded when a name that is not valid text is quoted as
/// sent: the query string is percent-encoded already, so this only guards
/// against anything else than visible ASCII.
const NOT_VISIBLE: &AsciiSet = &CONTROLS.add(b' ');

/// Whether `character` is refused in client text (see the module comment).
pub fn is_refused(character: char) -> bool {
    character.is_ascii_control() && !matches!(character, '\t' | '\n' | '\r')
}

/// Why a piece of client text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextDefect {
    /// The bytes are not UTF-8 (lone surrogates and overlong forms included).
    InvalidUtf8,
    /// A refused control character.
    Control(char),
    /// An RFC 8187 value in a charset other than UTF-8.
    UnsupportedCharset(String),
}

impl TextDefect {
    /// What is wrong, as the end of a sentence naming the text.
    pub fn describe(&self) -> String {
        match self {
            TextDefect::InvalidUtf8 => "is not valid UTF-8".to_owned(),
            TextDefect::Control(character) => format!(
                "holds the control character U+{:04X}, which is refused",
                u32::from(*character)
            ),
            TextDefect::UnsupportedCharset(charset) => format!(
                "is in charset `{}`: only UTF-8 is accepted",
                quoted(charset)
            ),
        }
    }
}

/// `bytes` as UTF-8 text free of refused characters.
pub fn checked_text(bytes: Vec<u8>) -> Result<String, TextDefect> {
    let text = String::from_utf8(bytes).map_err(|_| TextDefect::InvalidUtf8)?;
    match text.chars().find(|character| is_refused(*character)) {
        Some(character) => Err(TextDefect::Control(character)),
        None => Ok(text),
    }
}

/// A query parameter whose name or value cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParameter {
    /// The decoded name, or the name as sent when the name itself is refused.
    pub parameter: String,
    /// Whether the name (not the value) is at fault.
    pub in_name: bool,
    pub defect: TextDefect,
}

impl std::fmt::Display for InvalidParameter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let part = if self.in_name { "name" } else { "value" };
        write!(
            formatter,
            "parameter `{}`: its {part} {}",
            self.parameter,
            self.defect.describe()
        )
    }
}

/// The `name=value` pairs of a query string, in order (keys may repeat), `+`
/// read as a space as HTML forms send it. Any name or value that is not
/// UTF-8, or holds a refused character, refuses the whole query.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, InvalidParameter> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut pairs = Vec::new();
    for piece in raw.split('&').filter(|piece| !piece.is_empty()) {
        let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        let name = form_value(raw_name).map_err(|defect| InvalidParameter {
            parameter: quoted(&utf8_percent_encode(raw_name, NOT_VISIBLE).to_string()),
            in_name: true,
            defect,
        })?;
        let value = form_value(raw_value).map_err(|defect| InvalidParameter {
            parameter: quoted(&name),
            in_name: false,
            defect,
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// One form-encoded name or value (`+` for a space), strictly decoded.
pub fn form_value(text: &str) -> Result<String, TextDefect> {
    let spaced = text.replace('+', " ");
    checked_text(percent_decode(spaced.as_bytes()).collect())
}

/// A header value as text: UTF-8 as sent (accents included), or the RFC 8187
/// form `UTF-8'[language]'percent-encoded`, decoded. Text that merely holds
/// apostrophes (`l'instruction d'un dossier`) is not mistaken for that form:
/// only a value that follows its grammar exactly is decoded.
pub fn header_text(bytes: &[u8]) -> Result<String, TextDefect> {
    let text = checked_text(bytes.to_vec())?;
    match extended_value(&text) {
        Some((charset, _)) if !charset.eq_ignore_ascii_case("UTF-8") => {
            Err(TextDefect::UnsupportedCharset(charset.to_owned()))
        }
        Some((_, encoded)) => checked_text(percent_decode(encoded.as_bytes()).collect()),
        None => Ok(text),
    }
}

/// The charset and the still-encoded value of an RFC 8187 `ext-value`.
fn extended_value(text: &str) -> Option<(&str, &str)> {
    let (charset, rest) = text.split_once('\'')?;
    let (language, value) = rest.split_once('\'')?;
    let charset_valid = !charset.is_empty()
        && charset
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&+-^_`{}~".contains(&byte));
    let language_valid = language
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    let bytes = value.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%' {
            let escape = bytes.get(index + 1..index + 3)?;
            if !escape.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            index += 3;
        } else if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            index += 1;
        } else {
            return None;
        }
    }
    (charset_valid && language_valid).then_some((charset, value))
}

/// `text` cut to a length fit for a message, on a character boundary.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names and values are decoded in order; `+` is a space; `%2B` a plus.
    #[test]
    fn decodes_pairs_in_order() {
        let pairs = query_pairs(Some("a=1&b=x+y&a=%2B&&c&d=mus%C3%A9e")).unwrap();
        let expected = [
            ("a", "1"),
            ("b", "x y"),
            ("a", "+"),
            ("c", ""),
            ("d", "musée"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        assert_eq!(pairs, expected);
        assert_eq!(query_pairs(None).unwrap(), Vec::new());
        assert_eq!(
            query_pairs(Some("v=a%09b%0Ac%0D")).unwrap()[0].1,
            "a\tb\nc\r"
        );
    }

    /// NUL, other controls, invalid UTF-8, lone surrogates and overlong forms
    /// are refused, naming the parameter (as sent when the name is at fault).
    #[test]
    fn refuses_bytes_no_store_should_receive() {
        let cases = [
            ("musee=eq.%00", "musee", false, TextDefect::Control('\0')),
            (
                "musee=%1B[2J",
                "musee",
                false,
                TextDefect::Control('\u{1b}'),
            ),
            ("musee=%7F", "musee", false, TextDefect::Control('\u{7f}')),
            ("musee=%FF", "musee", false, TextDefect::InvalidUtf8),
            ("musee=%ED%A0%80", "musee", false, TextDefect::InvalidUtf8),
            ("musee=%C0%80", "musee", false, TextDefect::InvalidUtf8),
            ("mu%00see=x", "mu%00see", true, TextDefect::Control('\0')),
            ("%FF=x", "%FF", true, TextDefect::InvalidUtf8),
        ];
        for (query, parameter, in_name, defect) in cases {
            let error = query_pairs(Some(query)).unwrap_err();
            assert_eq!(
                error,
                InvalidParameter {
                    parameter: parameter.to_owned(),
                    in_name,
                    defect
                },
                "{query}"
            );
        }
        assert_eq!(
            query_pairs(Some("musee=eq.%00")).unwrap_err().to_string(),
            "parameter `musee`: its value holds the control character U+0000, which is refused"
        );
    }

    /// Header values: UTF-8 as sent, RFC 8187 decoded, apostrophes left alone.
    #[test]
    fn reads_header_text() {
        let cases: [(&[u8], Result<&str, TextDefect>); 9] = [
            ("suivi précarité".as_bytes(), Ok("suivi précarité")),
            (b"UTF-8''suivi%20pr%C3%A9carit%C3%A9", Ok("suivi précarité")),
            (
                b"utf-8'fr'suivi%20pr%C3%A9carit%C3%A9",
                Ok("suivi précarité"),
            ),
            (
                b"l'instruction d'un dossier",
                Ok("l'instruction d'un dossier"),
            ),
            (b"UTF-8''a b", Ok("UTF-8''a b")),
            (b"suivi pr\xe9carit\xe9", Err(TextDefect::InvalidUtf8)),
            (b"UTF-8''%00", Err(TextDefect::Control('\0'))),
            (b"UTF-8''%ED%A0%80", Err(TextDefect::InvalidUtf8)),
            (
                b"ISO-8859-1''pr%E9carit%E9",
                Err(TextDefect::UnsupportedCharset("ISO-8859-1".to_owned())),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                header_text(bytes),
                expected.map(str::to_owned),
                "{}",
                crate::domain::text::from_bytes(bytes, 100)
            );
        }
    }
}
