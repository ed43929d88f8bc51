//! Numbers, dates and cells as a reader of the page's language expects them:
//! in French `1 234,5` (a narrow no-break space between thousands, as CLDR
//! and `Intl.NumberFormat("fr-FR")` write it) and `2 décembre 2026`; in
//! English `1,234.5` and `2 December 2026`. Values are never rounded: the
//! page shows what the API returns, only written the reader's way.

use chrono::{DateTime, Datelike, NaiveDate};

use super::locale::Lang;
use crate::domain::Value;

/// The French thousands separator: U+202F NARROW NO-BREAK SPACE.
pub const FRENCH_GROUP_SEPARATOR: char = '\u{202F}';

/// An integer with thousands grouped.
pub fn integer(value: i64, lang: Lang) -> String {
    grouped(&value.to_string(), lang)
}

/// A number, every significant digit kept (the shortest text that reads back
/// as the same `f64`), thousands grouped, the decimal mark of `lang`.
pub fn number(value: f64, lang: Lang) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    grouped(&value.to_string(), lang)
}

/// Groups the digits of a plain decimal text (`-1234.5`) and writes its
/// decimal mark for `lang`.
fn grouped(plain: &str, lang: Lang) -> String {
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let (separator, decimal_mark) = match lang {
        Lang::Fr => (FRENCH_GROUP_SEPARATOR, ','),
        Lang::En => (',', '.'),
    };
    let mut text = String::with_capacity(plain.len() + whole.len() / 3 * 3 + 1);
    text.push_str(sign);
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            text.push(separator);
        }
        text.push(digit);
    }
    if let Some(fraction) = fraction {
        text.push(decimal_mark);
        text.push_str(fraction);
    }
    text
}

const FRENCH_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

const ENGLISH_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A calendar date in words: `2 décembre 2026`, `2 December 2026`.
pub fn date(date: NaiveDate, lang: Lang) -> String {
    let month = date.month0() as usize;
    match lang {
        Lang::Fr if date.day() == 1 => format!("1er {} {}", FRENCH_MONTHS[month], date.year()),
        Lang::Fr => format!("{} {} {}", date.day(), FRENCH_MONTHS[month], date.year()),
        Lang::En => format!("{} {} {}", date.day(), ENGLISH_MONTHS[month], date.year()),
    }
}

/// The date of an RFC 3339 timestamp (the catalogue's `last_updated`), in
/// words; the text itself when it is not a timestamp.
pub fn timestamp_date(timestamp: &str, lang: Lang) -> String {
    match DateTime::parse_from_rfc3339(timestamp) {
        Ok(time) => date(time.date_naive(), lang),
        Err(_) => timestamp.to_owned(),
    }
}

/// A cell of a preview table. Dates stay ISO (`2024-01-05`): they are the
/// values a reader types into a filter.
pub fn cell(value: &Value, lang: Lang) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(true) => lang.texts().yes.to_owned(),
        Value::Bool(false) => lang.texts().no.to_owned(),
        Value::Int(value) => integer(*value, lang),
        Value::Float(value) => number(*value, lang),
        Value::Text(text) => text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NNBSP: char = FRENCH_GROUP_SEPARATOR;

    /// French grouping and decimal comma, every digit kept, signs and small numbers untouched.
    #[test]
    fn writes_numbers_the_french_way() {
        let cases: &[(f64, String)] = &[
            (1234.5, format!("1{NNBSP}234,5")),
            (0.25, "0,25".to_owned()),
            (-1234567.125, format!("-1{NNBSP}234{NNBSP}567,125")),
            (999.0, "999".to_owned()),
            (1000.0, format!("1{NNBSP}000")),
            (378255.6, format!("378{NNBSP}255,6")),
            (48.29925, "48,29925".to_owned()),
        ];
        for (value, expected) in cases {
            assert_eq!(&number(*value, Lang::Fr), expected, "{value}");
        }
        assert_eq!(integer(0, Lang::Fr), "0");
        assert_eq!(integer(-12, Lang::Fr), "-12");
        assert_eq!(integer(123456, Lang::Fr), format!("123{NNBSP}456"));
        assert_eq!(integer(1234567, Lang::Fr), format!("1{NNBSP}234{NNBSP}567"));
    }

    /// English grouping with commas and a decimal point.
    #[test]
    fn writes_numbers_the_english_way() {
        assert_eq!(number(1234.5, Lang::En), "1,234.5");
        assert_eq!(integer(-1234567, Lang::En), "-1,234,567");
        assert_eq!(number(0.5, Lang::En), "0.5");
    }

    /// Dates in words, `1er` for the first of the month in French; other text kept as is.
    #[test]
    fn writes_dates_in_words() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        assert_eq!(date(day, Lang::Fr), "2 décembre 2026");
        assert_eq!(date(day, Lang::En), "2 December 2026");
        let first = NaiveDate::from_ymd_opt(2026, 8, 1).unwrap();
        assert_eq!(date(first, Lang::Fr), "1er août 2026");
        assert_eq!(
            timestamp_date("2026-02-03T23:10:00Z", Lang::Fr),
            "3 février 2026"
        );
        assert_eq!(timestamp_date("pas une date", Lang::Fr), "pas une date");
    }

    /// Cells: numbers localised, booleans in words, null empty, text as is.
    #[test]
    fn writes_cells() {
        assert_eq!(
            cell(&Value::Float(1234.5), Lang::Fr),
            format!("1{NNBSP}234,5")
        );
        assert_eq!(cell(&Value::Bool(true), Lang::Fr), "oui");
        assert_eq!(cell(&Value::Bool(false), Lang::En), "no");
        assert_eq!(cell(&Value::Null, Lang::Fr), "");
        assert_eq!(
            cell(&Value::Text("2024-01-05".into()), Lang::Fr),
            "2024-01-05"
        );
    }
}
