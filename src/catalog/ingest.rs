//! Reading a dataset's source file (CSV or GeoJSON) into typed rows.
//!
//! A [`Source`] is the decoded file: text in memory once, rows produced lazily
//! so a million-row file streams into the store. A CSV or GeoJSON file opened
//! from disk ([`Source::open`]) is never held in memory: it is read in passes
//! (CSV: encoding and quotes first; GeoJSON: the structure, feature types and
//! property names; then the rows as they are consumed, GeoJSON features
//! parsed one by one), so an upload of any size imports in bounded memory. Columns are matched to the
//! schema by name; a declared column the file lacks, or a file column the
//! schema does not declare, refuses the whole file (a typo must not silently
//! drop or add data). Cells that do not fit their column's type are reported
//! per row as [`RowProblem`]s with the physical line of the file.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::domain::{Field, FieldType, Schema, Value};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Number of rows [`Source::infer_schema`] looks at.
const INFERENCE_ROWS: usize = 1000;

/// The kind of file a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Csv,
    GeoJson,
}

/// The character encoding of a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceEncoding {
    Utf8,
    Windows1252,
}

/// How to read a source; `None` means detect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceOptions {
    /// CSV separator; detected from the header line (`,`, `;` or tab) when `None`.
    pub delimiter: Option<u8>,
    /// Detected when `None`: valid UTF-8 (with or without BOM) is UTF-8, anything else Windows-1252.
    pub encoding: Option<SourceEncoding>,
}

/// Why a source file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "line {line}: the file is not valid UTF-8; re-save it as UTF-8 or declare `encoding: windows-1252`"
    )]
    Encoding { line: u64 },
    #[error("the file is empty: a CSV file needs a header line naming its columns")]
    NoHeader,
    #[error("line {line}: column {position} of the header has no name")]
    EmptyColumnName { line: u64, position: usize },
    #[error("the header names column `{0}` twice")]
    DuplicateColumn(String),
    #[error("line {line}: a quoted field opened here is never closed")]
    UnclosedQuote { line: u64 },
    #[error("broken CSV at line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("invalid GeoJSON: {0}")]
    InvalidGeoJson(String),
    #[error("the file lacks the declared column(s) {}", quoted_list(.0))]
    MissingColumns(Vec<String>),
    #[error(
        "the file has column(s) the schema does not declare: {}; declare them in the schema or remove them from the file",
        quoted_list(.0)
    )]
    ExtraColumns(Vec<String>),
    #[error(
        "column `{0}` cannot be used in an inferred schema: names must be lowercase letters, digits and `_`; declare a schema in the definition (columns are matched by name)"
    )]
    ColumnName(String),
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a [`RowProblem`] is: a physical line of a CSV file, or the 1-based
/// number of a feature in a GeoJSON FeatureCollection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowLocation {
    #[default]
    Line,
    Feature,
}

/// One row that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Physical line in the file where the row starts (CSV), or the feature number (GeoJSON).
    pub line: u64,
    /// The offending column, when one is to blame.
    pub column: Option<String>,
    pub reason: String,
    /// What `line` counts.
    pub location: RowLocation,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.location {
            RowLocation::Line => "line",
            RowLocation::Feature => "feature",
        };
        write!(formatter, "{unit} {}", self.line)?;
        if let Some(column) = &self.column {
            write!(formatter, ", column `{column}`")?;
        }
        write!(formatter, ": {}", self.reason)
    }
}

impl std::error::Error for RowProblem {}

/// A decoded source file, ready to be read as rows.
#[derive(Debug)]
pub struct Source {
    content: Content,
}

#[derive(Debug)]
enum Content {
    Csv(CsvText),
    /// A CSV file read from disk as the rows are consumed.
    CsvFile(CsvFile),
    GeoJson(Vec<Feature>),
    /// A GeoJSON file read from disk feature by feature.
    GeoJsonFile(GeoJsonFile),
}

#[derive(Debug)]
struct CsvText {
    text: String,
    delimiter: u8,
    header: Vec<String>,
}

/// Rows in schema order; boxed so CSV and GeoJSON share one type.
pub type Rows<'a> = Box<dyn Iterator<Item = Result<Vec<Value>, RowProblem>> + Send + 'a>;

impl Source {
    /// Decodes `bytes` and reads the header (CSV) or the features (GeoJSON).
    pub fn from_bytes(
        bytes: Vec<u8>,
        format: SourceFormat,
        options: &SourceOptions,
    ) -> Result<Source, IngestError> {
        let text = decode(bytes, options.encoding)?;
        let content = match format {
            SourceFormat::Csv => Content::Csv(CsvText::new(text, options.delimiter)?),
            SourceFormat::GeoJson => Content::GeoJson(parse_features(&text)?),
        };
        Ok(Source { content })
    }

    /// Opens the file at `path`. A CSV or GeoJSON file is streamed from disk
    /// (checked as [`Source::from_bytes`] checks it, without holding it in
    /// memory); a GeoJSON file declared Windows-1252 is read, then as
    /// [`Source::from_bytes`].
    pub fn open(
        path: &Path,
        format: SourceFormat,
        options: &SourceOptions,
    ) -> Result<Source, IngestError> {
        if format == SourceFormat::Csv {
            return Ok(Source {
                content: Content::CsvFile(CsvFile::open(path, options)?),
            });
        }
        // GeoJSON is UTF-8 (RFC 7946): streamed unless another encoding is declared.
        if options.encoding != Some(SourceEncoding::Windows1252) {
            return Ok(Source {
                content: Content::GeoJsonFile(GeoJsonFile::open(path)?),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| IngestError::Io {
            path: path.to_owned(),
            source,
        })?;
        Source::from_bytes(bytes, format, options)
    }

    /// The column names of the file, in file order (GeoJSON: property names
    /// in order of first appearance, then `geometry` when features have one).
    pub fn columns(&self) -> Vec<String> {
        match &self.content {
            Content::Csv(csv) => csv.header.clone(),
            Content::CsvFile(csv) => csv.header.clone(),
            Content::GeoJson(features) => {
                let mut names = property_names(features);
                if features.iter().any(|feature| feature.geometry.is_some()) {
                    names.push("geometry".to_owned());
                }
                names
            }
            Content::GeoJsonFile(file) => {
                let mut names = file.names.clone();
                if file.has_geometry {
                    names.push("geometry".to_owned());
                }
                names
            }
        }
    }

    /// Guesses a schema from up to the first 1000 rows: integer, number (a
    /// decimal comma sets `decimal_char`), boolean, date, datetime, else string.
    pub fn infer_schema(&self) -> Result<Schema, IngestError> {
        let names = self.columns();
        for name in &names {
            let plain = !name.is_empty()
                && name.to_lowercase().chars().all(|character| {
                    character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_'
                });
            if !plain {
                return Err(IngestError::ColumnName(name.clone()));
            }
        }
        let fields = match &self.content {
            Content::Csv(csv) => csv.infer_fields()?,
            Content::CsvFile(csv) => csv.infer_fields()?,
            Content::GeoJson(features) => infer_geojson_fields(&property_names(features), features),
            Content::GeoJsonFile(file) => infer_geojson_fields(&file.names, &file.sample),
        };
        Ok(Schema {
            fields,
            primary_key: None,
        })
    }

    /// The rows, each in `schema` order. Fails before the first row when the
    /// file's columns and the schema's differ.
    pub fn rows<'a>(&'a self, schema: &'a Schema) -> Result<Rows<'a>, IngestError> {
        match &self.content {
            Content::Csv(csv) => csv.rows(schema),
            Content::CsvFile(csv) => csv.rows(schema),
            Content::GeoJson(features) => geojson_rows(features, schema),
            Content::GeoJsonFile(file) => file.rows(schema),
        }
    }

    /// Bytes of the file read so far by [`Source::rows`] (a CSV file read
    /// from disk; `None` for the other sources), for a progress display.
    pub fn bytes_read(&self) -> Option<u64> {
        match &self.content {
            Content::CsvFile(csv) => Some(csv.rows_read.load(Ordering::Relaxed)),
            _ => None,
        }
    }
}

/// Decodes the file to text, dropping a UTF-8 byte order mark.
fn decode(mut bytes: Vec<u8>, encoding: Option<SourceEncoding>) -> Result<String, IngestError> {
    // A BOM says UTF-8, but a file with one can still hold Windows-1252
    // bytes further on (a spreadsheet re-save): drop it whatever follows.
    if bytes.starts_with(UTF8_BOM) {
        bytes.drain(..UTF8_BOM.len());
    }
    if encoding == Some(SourceEncoding::Windows1252) {
        return Ok(decode_windows_1252(&bytes));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(error) if encoding.is_none() => Ok(decode_windows_1252(error.as_bytes())),
        Err(error) => {
            let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
            let line = 1 + valid.iter().filter(|&&byte| byte == b'\n').count() as u64;
            Err(IngestError::Encoding { line })
        }
    }
}

fn decode_windows_1252(bytes: &[u8]) -> String {
    // Every byte maps to a character in Windows-1252: decoding cannot fail.
    let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
    text.into_owned()
}

impl CsvText {
    fn new(text: String, delimiter: Option<u8>) -> Result<CsvText, IngestError> {
        if text.trim().is_empty() {
            return Err(IngestError::NoHeader);
        }
        let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(&text));
        check_quotes(&text, delimiter)?;
        let mut csv = CsvText {
            text,
            delimiter,
            header: Vec::new(),
        };
        let mut reader = csv.reader();
        let record = reader.headers().map_err(csv_error)?;
        let line = record.position().map_or(1, csv::Position::line);
        let mut header: Vec<String> = Vec::with_capacity(record.len());
        for (position, name) in record.iter().enumerate() {
            let name = name.trim();
            if name.is_empty() {
                return Err(IngestError::EmptyColumnName {
                    line,
                    position: position + 1,
                });
            }
            if header.iter().any(|other| other == name) {
                return Err(IngestError::DuplicateColumn(name.to_owned()));
            }
            header.push(name.to_owned());
        }
        csv.header = header;
        Ok(csv)
    }

    fn reader(&self) -> csv::Reader<&[u8]> {
        csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(true)
            // Rows of the wrong length are reported as row problems, not as a broken file.
            .flexible(true)
            .from_reader(self.text.as_bytes())
    }

    fn infer_fields(&self) -> Result<Vec<Field>, IngestError> {
        let mut guesses: Vec<TypeGuess> = vec![TypeGuess::default(); self.header.len()];
        for record in self.reader().into_records().take(INFERENCE_ROWS) {
            let record = record.map_err(csv_error)?;
            if record.len() != self.header.len() {
                continue;
            }
            for (guess, cell) in guesses.iter_mut().zip(record.iter()) {
                guess.observe_text(cell);
            }
        }
        Ok(self
            .header
            .iter()
            .zip(guesses)
            .map(|(name, guess)| guess.field(name))
            .collect())
    }

    fn rows<'a>(&'a self, schema: &'a Schema) -> Result<Rows<'a>, IngestError> {
        let indices = match_columns(&self.header, schema, None)?;
        let width = self.header.len();
        let records = self.reader().into_records();
        Ok(Box::new(records.map(move |record| {
            csv_row(record, width, schema, &indices)
        })))
    }
}

/// One CSV record as a row in `schema` order, or the problem with it.
fn csv_row(
    record: Result<csv::StringRecord, csv::Error>,
    width: usize,
    schema: &Schema,
    indices: &[Option<usize>],
) -> Result<Vec<Value>, RowProblem> {
    let record = record.map_err(|error| RowProblem {
        line: error.position().map_or(0, csv::Position::line),
        column: None,
        reason: error.to_string(),
        location: RowLocation::Line,
    })?;
    let line = record.position().map_or(0, csv::Position::line);
    if record.len() != width {
        return Err(RowProblem {
            line,
            column: None,
            reason: format!("{} field(s) where the header has {width}", record.len()),
            location: RowLocation::Line,
        });
    }
    schema
        .fields
        .iter()
        .zip(indices)
        .map(|(field, index)| {
            let cell = index.and_then(|index| record.get(index)).unwrap_or("");
            parse_cell(field, cell)
                .and_then(|value| required(field, value))
                .map_err(|reason| RowProblem {
                    line,
                    column: Some(field.name.clone()),
                    reason,
                    location: RowLocation::Line,
                })
        })
        .collect()
}

/// Bytes read from a CSV file at a time.
const FILE_CHUNK: usize = 64 * 1024;

/// A CSV file on disk, checked when opened (encoding, closed quotes,
/// header) and read again, record by record, for the rows.
#[derive(Debug)]
struct CsvFile {
    path: PathBuf,
    encoding: SourceEncoding,
    delimiter: u8,
    header: Vec<String>,
    /// Bytes read from disk by the rows' reader.
    rows_read: Arc<AtomicU64>,
}

/// The file's bytes as UTF-8, decoded chunk by chunk (Windows-1252 maps
/// every byte to one character, so chunks decode independently), without
/// a leading UTF-8 byte order mark.
struct DecodedFile {
    file: std::io::BufReader<std::fs::File>,
    encoding: SourceEncoding,
    pending: Vec<u8>,
    offset: usize,
    started: bool,
    /// Counts the bytes read from disk, when set.
    counter: Option<Arc<AtomicU64>>,
}

impl DecodedFile {
    fn open(path: &Path, encoding: SourceEncoding) -> Result<DecodedFile, IngestError> {
        let file = std::fs::File::open(path).map_err(|source| IngestError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(DecodedFile {
            file: std::io::BufReader::with_capacity(FILE_CHUNK, file),
            encoding,
            pending: Vec::new(),
            offset: 0,
            started: false,
            counter: None,
        })
    }
}

impl std::io::Read for DecodedFile {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.offset == self.pending.len() {
            let mut chunk = vec![0; FILE_CHUNK];
            let read = self.file.read(&mut chunk)?;
            if read == 0 {
                return Ok(0);
            }
            chunk.truncate(read);
            if let Some(counter) = &self.counter {
                counter.fetch_add(read as u64, Ordering::Relaxed);
            }
            if !self.started {
                self.started = true;
                if chunk.starts_with(UTF8_BOM) {
                    chunk.drain(..UTF8_BOM.len());
                }
            }
            self.pending = match self.encoding {
                SourceEncoding::Utf8 => chunk,
                SourceEncoding::Windows1252 => decode_windows_1252(&chunk).into_bytes(),
            };
            self.offset = 0;
        }
        let length = out.len().min(self.pending.len() - self.offset);
        out[..length].copy_from_slice(&self.pending[self.offset..self.offset + length]);
        self.offset += length;
        Ok(length)
    }
}

/// Whether the file is valid UTF-8 (a BOM allowed); else the line of the
/// first invalid byte. Read in chunks.
fn utf8_check(path: &Path) -> Result<Result<(), u64>, IngestError> {
    use std::io::Read as _;
    let io = |source| IngestError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut carry: Vec<u8> = Vec::new();
    let mut line = 1u64;
    let mut chunk = vec![0; FILE_CHUNK];
    loop {
        let read = file.read(&mut chunk).map_err(io)?;
        if read == 0 {
            return Ok(if carry.is_empty() { Ok(()) } else { Err(line) });
        }
        carry.extend_from_slice(&chunk[..read]);
        match std::str::from_utf8(&carry) {
            Ok(_) => {
                line += carry.iter().filter(|&&byte| byte == b'\n').count() as u64;
                carry.clear();
            }
            // A character cut at the end of the chunk: finished by the next one.
            Err(error) if error.error_len().is_none() => {
                let valid = error.valid_up_to();
                line += carry[..valid].iter().filter(|&&byte| byte == b'\n').count() as u64;
                carry.drain(..valid);
            }
            Err(error) => {
                let valid = error.valid_up_to();
                line += carry[..valid].iter().filter(|&&byte| byte == b'\n').count() as u64;
                return Ok(Err(line));
            }
        }
    }
}

/// What the quote check sees of a character (or of a byte).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Symbol {
    Quote,
    LineFeed,
    /// The delimiter or a carriage return.
    FieldEnd,
    Other,
}

impl Symbol {
    fn of(character: char, delimiter: char) -> Symbol {
        match character {
            '"' => Symbol::Quote,
            '\n' => Symbol::LineFeed,
            '\r' => Symbol::FieldEnd,
            _ if character == delimiter => Symbol::FieldEnd,
            _ => Symbol::Other,
        }
    }
}

/// [`check_quotes`] over a stream of text, chunk by chunk.
#[derive(Default)]
struct QuoteScanner {
    line: u64,
    opened_at: Option<u64>,
    not_at_field_start: bool,
    /// A quote closed a quoted field at the end of the previous chunk: it may
    /// be the first of an escaped `""`.
    quote_pending: bool,
}

impl QuoteScanner {
    fn feed(&mut self, text: &str, delimiter: char) {
        match u8::try_from(delimiter) {
            // Quotes, line ends and an ASCII delimiter are single bytes that
            // never occur inside a multi-byte character: the bytes give the
            // same answer as the characters, without decoding them (a fifth
            // of an import's processor time went to decoding them).
            Ok(delimiter) if delimiter.is_ascii() => {
                let bytes = text.as_bytes();
                let delimiter = char::from(delimiter);
                let symbol = |byte: u8| Symbol::of(char::from(byte), delimiter);
                let mut next = 0;
                while next < bytes.len() {
                    if !self.quote_pending {
                        // Ordinary bytes change nothing but the field start.
                        let run = bytes[next..]
                            .iter()
                            .position(|&byte| symbol(byte) != Symbol::Other);
                        let skipped = run.unwrap_or(bytes.len() - next);
                        if skipped > 0 && self.opened_at.is_none() {
                            self.not_at_field_start = true;
                        }
                        next += skipped;
                        if run.is_none() {
                            break;
                        }
                    }
                    self.step(symbol(bytes[next]));
                    next += 1;
                }
            }
            _ => self.feed_chars(text, delimiter),
        }
    }

    fn step(&mut self, symbol: Symbol) {
        if self.quote_pending {
            self.quote_pending = false;
            if symbol == Symbol::Quote {
                return;
            }
            self.opened_at = None;
        }
        if symbol == Symbol::LineFeed {
            self.line += 1;
        }
        match self.opened_at {
            Some(_) if symbol == Symbol::Quote => self.quote_pending = true,
            Some(_) => {}
            None => {
                if symbol == Symbol::Quote && !self.not_at_field_start {
                    self.opened_at = Some(self.line + 1);
                }
                self.not_at_field_start = !matches!(symbol, Symbol::LineFeed | Symbol::FieldEnd);
            }
        }
    }

    fn feed_chars(&mut self, text: &str, delimiter: char) {
        for character in text.chars() {
            self.step(Symbol::of(character, delimiter));
        }
    }

    fn finish(mut self) -> Result<(), IngestError> {
        if self.quote_pending {
            self.opened_at = None;
        }
        match self.opened_at {
            Some(line) => Err(IngestError::UnclosedQuote { line }),
            None => Ok(()),
        }
    }
}

impl CsvFile {
    fn open(path: &Path, options: &SourceOptions) -> Result<CsvFile, IngestError> {
        use std::io::Read as _;
        let encoding = match (options.encoding, utf8_check(path)?) {
            (Some(SourceEncoding::Windows1252), _) => SourceEncoding::Windows1252,
            (_, Ok(())) => SourceEncoding::Utf8,
            (Some(SourceEncoding::Utf8), Err(line)) => return Err(IngestError::Encoding { line }),
            (None, Err(_)) => SourceEncoding::Windows1252,
        };
        // The delimiter from the header line, the quotes over the whole text.
        let mut decoded = DecodedFile::open(path, encoding)?;
        let mut scanner = QuoteScanner::default();
        let mut delimiter = options.delimiter;
        let mut blank = true;
        let mut chunk = vec![0; FILE_CHUNK];
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let read = decoded.read(&mut chunk).map_err(|source| IngestError::Io {
                path: path.to_owned(),
                source,
            })?;
            if read == 0 {
                break;
            }
            carry.extend_from_slice(&chunk[..read]);
            // Decoded text is UTF-8, but a read may cut a character.
            let valid = match std::str::from_utf8(&carry) {
                Ok(_) => carry.len(),
                Err(error) => error.valid_up_to(),
            };
            let text = std::str::from_utf8(&carry[..valid]).unwrap_or_default();
            blank = blank && text.trim().is_empty();
            let separator = *delimiter.get_or_insert_with(|| detect_delimiter(text));
            scanner.feed(text, char::from(separator));
            carry.drain(..valid);
        }
        if blank {
            return Err(IngestError::NoHeader);
        }
        let delimiter = delimiter.unwrap_or(b',');
        scanner.finish()?;
        let mut csv = CsvFile {
            path: path.to_owned(),
            encoding,
            delimiter,
            header: Vec::new(),
            rows_read: Arc::default(),
        };
        let mut reader = csv.reader()?;
        let record = reader.headers().map_err(csv_error)?;
        let line = record.position().map_or(1, csv::Position::line);
        let mut header: Vec<String> = Vec::with_capacity(record.len());
        for (position, name) in record.iter().enumerate() {
            let name = name.trim();
            if name.is_empty() {
                return Err(IngestError::EmptyColumnName {
                    line,
                    position: position + 1,
                });
            }
            if header.iter().any(|other| other == name) {
                return Err(IngestError::DuplicateColumn(name.to_owned()));
            }
            header.push(name.to_owned());
        }
        csv.header = header;
        Ok(csv)
    }

    fn reader(&self) -> Result<csv::Reader<DecodedFile>, IngestError> {
        Ok(csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(true)
            .flexible(true)
            .from_reader(DecodedFile::open(&self.path, self.encoding)?))
    }

    fn infer_fields(&self) -> Result<Vec<Field>, IngestError> {
        let mut guesses: Vec<TypeGuess> = vec![TypeGuess::default(); self.header.len()];
        for record in self.reader()?.into_records().take(INFERENCE_ROWS) {
            let record = record.map_err(csv_error)?;
            if record.len() != self.header.len() {
                continue;
            }
            for (guess, cell) in guesses.iter_mut().zip(record.iter()) {
                guess.observe_text(cell);
            }
        }
        Ok(self
            .header
            .iter()
            .zip(guesses)
            .map(|(name, guess)| guess.field(name))
            .collect())
    }

    fn rows<'a>(&'a self, schema: &'a Schema) -> Result<Rows<'a>, IngestError> {
        let indices = match_columns(&self.header, schema, None)?;
        let width = self.header.len();
        let mut file = DecodedFile::open(&self.path, self.encoding)?;
        self.rows_read.store(0, Ordering::Relaxed);
        file.counter = Some(self.rows_read.clone());
        let records = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(true)
            .flexible(true)
            .from_reader(file)
            .into_records();
        Ok(Box::new(records.map(move |record| {
            csv_row(record, width, schema, &indices)
        })))
    }
}

fn csv_error(error: csv::Error) -> IngestError {
    IngestError::Csv {
        line: error.position().map_or(0, csv::Position::line),
        reason: error.to_string(),
    }
}

/// Refuses a quoted field that runs to the end of the file: the csv crate
/// would silently swallow the rest of the file into one cell.
fn check_quotes(text: &str, delimiter: u8) -> Result<(), IngestError> {
    let delimiter = char::from(delimiter);
    let mut line = 1u64;
    let mut opened_at = None;
    let mut at_field_start = true;
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '\n' {
            line += 1;
        }
        match opened_at {
            Some(_) if character == '"' => {
                if characters.peek() == Some(&'"') {
                    characters.next();
                } else {
                    opened_at = None;
                }
            }
            Some(_) => {}
            None => {
                if character == '"' && at_field_start {
                    opened_at = Some(line);
                }
                at_field_start = character == delimiter || matches!(character, '\n' | '\r');
            }
        }
    }
    match opened_at {
        Some(line) => Err(IngestError::UnclosedQuote { line }),
        None => Ok(()),
    }
}

/// The most frequent of `;`, tab and `,` outside quotes on the header line;
/// `,` when none appears (a single column).
fn detect_delimiter(text: &str) -> u8 {
    let mut counts = [(b';', 0usize), (b'\t', 0), (b',', 0)];
    let mut quoted = false;
    for character in text.bytes() {
        match character {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(entry) = counts
                    .iter_mut()
                    .find(|(candidate, _)| *candidate == character)
                {
                    entry.1 += 1;
                }
            }
            _ => {}
        }
    }
    counts
        .iter()
        .filter(|(_, count)| *count > 0)
        .max_by_key(|(candidate, count)| (*count, *candidate == b','))
        .map_or(b',', |(candidate, _)| *candidate)
}

/// For each schema field, the index of its column in `columns`; `None` for
/// the geometry field of a GeoJSON source.
fn match_columns(
    columns: &[String],
    schema: &Schema,
    geometry_field: Option<usize>,
) -> Result<Vec<Option<usize>>, IngestError> {
    let mut missing = Vec::new();
    let mut indices = Vec::with_capacity(schema.fields.len());
    for (position, field) in schema.fields.iter().enumerate() {
        let index = columns.iter().position(|column| *column == field.name);
        if index.is_none() && geometry_field != Some(position) {
            missing.push(field.name.clone());
        }
        indices.push(index);
    }
    if !missing.is_empty() {
        return Err(IngestError::MissingColumns(missing));
    }
    let extra: Vec<String> = columns
        .iter()
        .filter(|column| schema.field(column).is_none())
        .cloned()
        .collect();
    if !extra.is_empty() {
        return Err(IngestError::ExtraColumns(extra));
    }
    Ok(indices)
}

/// `value`, unless it is null in a column declared `constraints.required`.
fn required(field: &Field, value: Value) -> Result<Value, String> {
    if field.is_required() && value == Value::Null {
        Err("a value is required (`constraints.required`)".into())
    } else {
        Ok(value)
    }
}

/// Parses one CSV cell: empty is null; a decimal comma is honoured.
fn parse_cell(field: &Field, cell: &str) -> Result<Value, String> {
    let blank = match field.field_type {
        FieldType::String => cell.is_empty(),
        _ => cell.trim().is_empty(),
    };
    if blank {
        return Ok(Value::Null);
    }
    let decimal_comma = field.decimal_char.as_deref() == Some(",");
    let result = if field.field_type == FieldType::Number && decimal_comma && cell.contains(',') {
        Value::parse(field.field_type, &cell.replace(',', "."))
    } else {
        Value::parse(field.field_type, cell)
    };
    result.map_err(|_| describe_refusal(field, cell))
}

/// The message for a refused cell, naming the original text (not the one
/// rewritten for a decimal comma).
fn describe_refusal(field: &Field, cell: &str) -> String {
    match field.field_type {
        FieldType::Number => format!("`{cell}` is not a number"),
        field_type => match Value::parse(field_type, cell) {
            Err(error) => error.0,
            Ok(_) => format!("`{cell}` is not a valid {}", type_name(field_type)),
        },
    }
}

/// The Table Schema name of a type (`integer`, `geopoint`…).
fn type_name(field_type: FieldType) -> String {
    serde_json::to_value(field_type)
        .ok()
        .and_then(|name| name.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What the values seen so far in a column could all be.
#[derive(Debug, Clone)]
struct TypeGuess {
    integer: bool,
    number: bool,
    number_with_comma: bool,
    boolean: bool,
    date: bool,
    datetime: bool,
    seen: bool,
    /// A JSON string was seen (GeoJSON only).
    text_seen: bool,
    /// A non-string JSON value (GeoJSON only) that rules text types out.
    json_only: Option<FieldType>,
}

impl Default for TypeGuess {
    fn default() -> Self {
        TypeGuess {
            integer: true,
            number: true,
            number_with_comma: true,
            boolean: true,
            date: true,
            datetime: true,
            seen: false,
            text_seen: false,
            json_only: None,
        }
    }
}

impl TypeGuess {
    fn observe_text(&mut self, cell: &str) {
        let text = cell.trim();
        if text.is_empty() {
            return;
        }
        self.seen = true;
        // `01053` is a code (INSEE, postcode): a number would lose its zero.
        let digits = text.trim_start_matches(['-', '+']);
        let leading_zero =
            digits.len() > 1 && digits.starts_with('0') && digits.as_bytes()[1].is_ascii_digit();
        let numeric = |candidate: &str| {
            !leading_zero
                && candidate.bytes().any(|byte| byte.is_ascii_digit())
                && candidate.parse::<f64>().is_ok_and(f64::is_finite)
        };
        self.integer &= !leading_zero && text.parse::<i64>().is_ok();
        self.number &= numeric(text);
        self.number_with_comma &= !text.contains('.') && numeric(&text.replacen(',', ".", 1));
        self.boolean &= matches!(text, "true" | "false" | "True" | "False" | "TRUE" | "FALSE");
        self.date &= text.len() == 10 && NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
        self.datetime &= DateTime::parse_from_rfc3339(text).is_ok();
    }

    fn observe_json(&mut self, value: &serde_json::Value) {
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::String(text) => {
                self.text_seen = true;
                self.observe_text(text);
            }
            serde_json::Value::Bool(_) => self.merge_json(FieldType::Boolean),
            serde_json::Value::Number(number) if number.is_i64() => {
                self.merge_json(FieldType::Integer)
            }
            serde_json::Value::Number(_) => self.merge_json(FieldType::Number),
            _ => self.merge_json(FieldType::String),
        }
    }

    /// JSON numbers and booleans are typed already; mixed JSON types give string.
    fn merge_json(&mut self, field_type: FieldType) {
        let merged = match (self.json_only, field_type) {
            (None, field_type) => field_type,
            (Some(FieldType::Integer), FieldType::Number)
            | (Some(FieldType::Number), FieldType::Integer) => FieldType::Number,
            (Some(previous), field_type) if previous == field_type => field_type,
            _ => FieldType::String,
        };
        self.json_only = Some(merged);
    }

    fn field(self, name: &str) -> Field {
        let mut field = Field::new(name, FieldType::String);
        // Strings mixed with JSON numbers or booleans: only text holds them all.
        if let Some(field_type) = self.json_only {
            if !self.text_seen {
                field.field_type = field_type;
            }
            return field;
        }
        if !self.seen {
            return field;
        }
        field.field_type = if self.integer {
            FieldType::Integer
        } else if self.number {
            FieldType::Number
        } else if self.number_with_comma {
            field.decimal_char = Some(",".to_owned());
            FieldType::Number
        } else if self.boolean {
            FieldType::Boolean
        } else if self.date {
            FieldType::Date
        } else if self.datetime {
            FieldType::Datetime
        } else {
            FieldType::String
        };
        field
    }
}

/// A GeoJSON FeatureCollection, as much of it as ingestion reads.
#[derive(Deserialize)]
struct FeatureCollection {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    features: Option<Vec<Feature>>,
}

#[derive(Debug, Deserialize)]
struct Feature {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    properties: Option<Properties>,
    #[serde(default)]
    geometry: Option<serde_json::Value>,
}

/// A feature's properties in file order (serde_json's map would sort them).
#[derive(Debug, Default)]
struct Properties(Vec<(String, serde_json::Value)>);

impl Properties {
    fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropertiesVisitor;
        impl<'de> Visitor<'de> for PropertiesVisitor {
            type Value = Properties;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object of properties")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Properties, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    entries.push(entry);
                }
                Ok(Properties(entries))
            }
        }
        deserializer.deserialize_map(PropertiesVisitor)
    }
}

fn parse_features(text: &str) -> Result<Vec<Feature>, IngestError> {
    let collection: FeatureCollection = serde_json::from_str(text)
        .map_err(|error| IngestError::InvalidGeoJson(error.to_string()))?;
    if collection.kind != "FeatureCollection" {
        return Err(IngestError::InvalidGeoJson(format!(
            "the top-level object is a `{}`, not a `FeatureCollection`",
            collection.kind
        )));
    }
    let features = collection.features.ok_or_else(|| {
        IngestError::InvalidGeoJson("the FeatureCollection has no `features` array".into())
    })?;
    if let Some(position) = features
        .iter()
        .position(|feature| feature.kind != "Feature")
    {
        return Err(IngestError::InvalidGeoJson(format!(
            "feature {} has type `{}`, not `Feature`",
            position + 1,
            features[position].kind
        )));
    }
    Ok(features)
}

/// Property names in order of first appearance across features.
fn property_names(features: &[Feature]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for properties in features
        .iter()
        .filter_map(|feature| feature.properties.as_ref())
    {
        for (name, _) in &properties.0 {
            if seen.insert(name.as_str()) {
                names.push(name.clone());
            }
        }
    }
    names
}

fn infer_geojson_fields(names: &[String], features: &[Feature]) -> Vec<Field> {
    let mut guesses = vec![TypeGuess::default(); names.len()];
    let sample = &features[..features.len().min(INFERENCE_ROWS)];
    for properties in sample
        .iter()
        .filter_map(|feature| feature.properties.as_ref())
    {
        for (name, guess) in names.iter().zip(guesses.iter_mut()) {
            if let Some(value) = properties.get(name) {
                guess.observe_json(value);
            }
        }
    }
    let mut fields: Vec<Field> = names
        .iter()
        .zip(guesses)
        .map(|(name, guess)| guess.field(name))
        .collect();
    let geometries: Vec<&serde_json::Value> = sample
        .iter()
        .filter_map(|feature| feature.geometry.as_ref())
        .filter(|geometry| !geometry.is_null())
        .collect();
    if !geometries.is_empty() {
        let all_points = geometries
            .iter()
            .all(|geometry| geometry.get("type").and_then(|kind| kind.as_str()) == Some("Point"));
        let field_type = if all_points {
            FieldType::Geopoint
        } else {
            FieldType::Geojson
        };
        fields.push(Field::new("geometry", field_type));
    }
    fields
}

/// The schema field that receives each feature's geometry: one named
/// `geometry`, else the first point or GeoJSON field that is not a property.
fn geometry_field(schema: &Schema, properties: &[String]) -> Option<usize> {
    schema.position("geometry").or_else(|| {
        schema.fields.iter().position(|field| {
            matches!(field.field_type, FieldType::Geopoint | FieldType::Geojson)
                && !properties.contains(&field.name)
        })
    })
}

fn geojson_rows<'a>(features: &'a [Feature], schema: &'a Schema) -> Result<Rows<'a>, IngestError> {
    let names = property_names(features);
    let geometry = geometry_field(schema, &names);
    let indices = match_columns(&names, schema, geometry)?;
    Ok(Box::new(features.iter().enumerate().map(
        move |(position, feature)| feature_row(feature, position as u64 + 1, schema, &indices),
    )))
}

/// Feature number `number` as a row in `schema` order (`indices`: each
/// field's property, `None` for the geometry's field).
fn feature_row(
    feature: &Feature,
    number: u64,
    schema: &Schema,
    indices: &[Option<usize>],
) -> Result<Vec<Value>, RowProblem> {
    let problem = |field: &Field, reason: String| RowProblem {
        line: number,
        column: Some(field.name.clone()),
        reason,
        location: RowLocation::Feature,
    };
    schema
        .fields
        .iter()
        .enumerate()
        .map(|(field_position, field)| {
            let value = if indices[field_position].is_none() {
                geometry_value(field, feature.geometry.as_ref())
            } else {
                let value = feature
                    .properties
                    .as_ref()
                    .and_then(|properties| properties.get(&field.name));
                json_value(field, value)
            };
            value
                .and_then(|value| required(field, value))
                .map_err(|reason| problem(field, reason))
        })
        .collect()
}

/// Features handed from the reading thread to the rows at a time, at most.
const FEATURES_IN_FLIGHT: usize = 256;

/// A GeoJSON FeatureCollection on disk, checked when opened (its structure,
/// every feature's type) with its property names and first features kept
/// for inference, then read again, feature by feature, for the rows: an
/// upload of any size is never held in memory.
#[derive(Debug)]
struct GeoJsonFile {
    path: PathBuf,
    /// Property names in order of first appearance across features.
    names: Vec<String>,
    /// Whether a feature has a geometry.
    has_geometry: bool,
    /// The first features, for schema inference.
    sample: Vec<Feature>,
}

impl GeoJsonFile {
    fn open(path: &Path) -> Result<GeoJsonFile, IngestError> {
        let mut names: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut has_geometry = false;
        let mut sample = Vec::new();
        read_features(path, &mut |feature: Feature| {
            if let Some(properties) = &feature.properties {
                for (name, _) in &properties.0 {
                    if seen.insert(name.clone()) {
                        names.push(name.clone());
                    }
                }
            }
            has_geometry |= feature.geometry.is_some();
            if sample.len() < INFERENCE_ROWS {
                sample.push(feature);
            }
            true
        })?;
        Ok(GeoJsonFile {
            path: path.to_owned(),
            names,
            has_geometry,
            sample,
        })
    }

    /// The rows, parsed on a thread of their own that hands features over
    /// a bounded channel (serde drives a visitor; the rows are pulled), and
    /// stops when the rows are dropped.
    fn rows<'a>(&'a self, schema: &'a Schema) -> Result<Rows<'a>, IngestError> {
        let geometry = geometry_field(schema, &self.names);
        let indices = match_columns(&self.names, schema, geometry)?;
        let (sender, receiver) =
            std::sync::mpsc::sync_channel::<Result<Feature, String>>(FEATURES_IN_FLIGHT);
        let path = self.path.clone();
        std::thread::spawn(move || {
            let read = read_features(&path, &mut |feature| sender.send(Ok(feature)).is_ok());
            if let Err(error) = read {
                let _ = sender.send(Err(error.to_string()));
            }
        });
        Ok(Box::new(receiver.into_iter().enumerate().map(
            move |(position, feature)| {
                let number = position as u64 + 1;
                match feature {
                    Ok(feature) => feature_row(&feature, number, schema, &indices),
                    Err(reason) => Err(RowProblem {
                        line: number,
                        column: None,
                        reason,
                        location: RowLocation::Feature,
                    }),
                }
            },
        )))
    }
}

/// Reads the FeatureCollection at `path`, handing each feature to `sink` in
/// file order (a leading UTF-8 byte order mark skipped); stops early, with
/// no error, when `sink` answers false. The same checks as
/// [`parse_features`]: a `FeatureCollection` with a `features` array of
/// `Feature`s.
fn read_features(path: &Path, sink: &mut dyn FnMut(Feature) -> bool) -> Result<(), IngestError> {
    use std::io::{BufRead, BufReader};
    let io_error = |source| IngestError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut reader = BufReader::with_capacity(FILE_CHUNK, file);
    if reader.fill_buf().map_err(io_error)?.starts_with(UTF8_BOM) {
        reader.consume(UTF8_BOM.len());
    }
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut stopped = false;
    let seed = CollectionSeed {
        sink,
        stopped: &mut stopped,
    };
    let outcome = serde::de::DeserializeSeed::deserialize(seed, &mut deserializer)
        .and_then(|outcome| deserializer.end().map(|()| outcome));
    match outcome {
        Ok(outcome) => outcome,
        Err(_) if stopped => Ok(()),
        Err(error) => Err(IngestError::InvalidGeoJson(error.to_string())),
    }
}

/// The top-level object of a FeatureCollection, its features handed to a sink.
struct CollectionSeed<'s> {
    sink: &'s mut dyn FnMut(Feature) -> bool,
    stopped: &'s mut bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for CollectionSeed<'_> {
    type Value = Result<(), IngestError>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CollectionSeed<'_> {
    type Value = Result<(), IngestError>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a GeoJSON FeatureCollection object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind: Option<String> = None;
        let mut features = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => kind = Some(map.next_value()?),
                "features" if !features => {
                    features = true;
                    map.next_value_seed(FeaturesSeed {
                        sink: &mut *self.sink,
                        stopped: &mut *self.stopped,
                    })?;
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let kind = kind.unwrap_or_default();
        if kind != "FeatureCollection" {
            return Ok(Err(IngestError::InvalidGeoJson(format!(
                "the top-level object is a `{kind}`, not a `FeatureCollection`"
            ))));
        }
        if !features {
            return Ok(Err(IngestError::InvalidGeoJson(
                "the FeatureCollection has no `features` array".into(),
            )));
        }
        Ok(Ok(()))
    }
}

/// The `features` array, each feature checked and handed to the sink.
struct FeaturesSeed<'s> {
    sink: &'s mut dyn FnMut(Feature) -> bool,
    stopped: &'s mut bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for FeaturesSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FeaturesSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of features")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let mut number = 0u64;
        while let Some(feature) = sequence.next_element::<Feature>()? {
            number += 1;
            if feature.kind != "Feature" {
                return Err(A::Error::custom(format!(
                    "feature {number} has type `{}`, not `Feature`",
                    feature.kind
                )));
            }
            if !(self.sink)(feature) {
                *self.stopped = true;
                return Err(A::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// A feature's geometry as the value of a geopoint (Point only) or GeoJSON field.
fn geometry_value(field: &Field, geometry: Option<&serde_json::Value>) -> Result<Value, String> {
    let Some(geometry) = geometry.filter(|geometry| !geometry.is_null()) else {
        return Ok(Value::Null);
    };
    match field.field_type {
        FieldType::Geojson => {
            Value::parse(FieldType::Geojson, &geometry.to_string()).map_err(|error| error.0)
        }
        FieldType::Geopoint => {
            let kind = geometry.get("type").and_then(|kind| kind.as_str());
            if kind != Some("Point") {
                return Err(format!(
                    "geometry type `{}` is not a Point",
                    kind.unwrap_or("?")
                ));
            }
            let coordinates = geometry
                .get("coordinates")
                .and_then(|coordinates| coordinates.as_array());
            let position = coordinates.and_then(|coordinates| {
                Some((
                    coordinates.first()?.as_f64()?,
                    coordinates.get(1)?.as_f64()?,
                ))
            });
            // GeoJSON positions are [longitude, latitude]; a geopoint is "lat,lon".
            let (lon, lat) = position.ok_or("a Point needs [longitude, latitude] coordinates")?;
            Value::parse(FieldType::Geopoint, &format!("{lat},{lon}")).map_err(|error| error.0)
        }
        field_type => Err(format!(
            "the geometry cannot fill a column of type {}",
            type_name(field_type)
        )),
    }
}

/// A property value as the value of `field`; strings go through the CSV cell rules.
fn json_value(field: &Field, value: Option<&serde_json::Value>) -> Result<Value, String> {
    use serde_json::Value as Json;
    let Some(value) = value else {
        return Ok(Value::Null);
    };
    match (field.field_type, value) {
        (_, Json::Null) => Ok(Value::Null),
        (_, Json::String(text)) => parse_cell(field, text),
        (FieldType::String, Json::Number(number)) => Ok(Value::Text(number.to_string())),
        (FieldType::String, Json::Bool(flag)) => Ok(Value::Text(flag.to_string())),
        (FieldType::String, other) => Ok(Value::Text(other.to_string())),
        (FieldType::Integer, Json::Number(number)) => number
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("`{number}` is not an integer")),
        (FieldType::Number, Json::Number(number)) => number
            .as_f64()
            .map(Value::Float)
            .ok_or_else(|| format!("`{number}` is not a number")),
        (FieldType::Boolean, Json::Bool(flag)) => Ok(Value::Bool(*flag)),
        (FieldType::Geojson, geometry @ Json::Object(_)) => {
            Value::parse(FieldType::Geojson, &geometry.to_string()).map_err(|error| error.0)
        }
        (field_type, other) => Err(format!(
            "`{other}` is not a valid {}",
            type_name(field_type)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &[u8]) -> Source {
        Source::from_bytes(text.to_vec(), SourceFormat::Csv, &SourceOptions::default())
            .expect("readable CSV")
    }

    fn schema(fields: &[(&str, FieldType)]) -> Schema {
        Schema {
            fields: fields
                .iter()
                .map(|(name, field_type)| Field::new(*name, *field_type))
                .collect(),
            primary_key: None,
        }
    }

    fn all_rows(source: &Source, schema: &Schema) -> Vec<Result<Vec<Value>, RowProblem>> {
        source.rows(schema).expect("columns match").collect()
    }

    /// A file opened from disk (streamed, in chunks) reads exactly as the
    /// same bytes in memory: characters, quoted newlines and escaped quotes
    /// cut by chunk boundaries, Windows-1252, a BOM; and it refuses what they
    /// refuse, at the same line.
    #[test]
    fn files_stream_like_bytes() {
        let folder = tempfile::tempdir().unwrap();
        let mut text = String::from("\u{feff}nom;note\n");
        for index in 0..12000 {
            text.push_str(&format!("\"Pré \"\"{index}\"\"\nsuite\";{index}\n"));
        }
        let fields = schema(&[("nom", FieldType::String), ("note", FieldType::Integer)]);
        let compare = |bytes: Vec<u8>, options: SourceOptions| {
            let path = folder.path().join("f.csv");
            std::fs::write(&path, &bytes).unwrap();
            let length = bytes.len() as u64;
            let streamed = Source::open(&path, SourceFormat::Csv, &options);
            let in_memory = Source::from_bytes(bytes, SourceFormat::Csv, &options);
            match (streamed, in_memory) {
                (Ok(streamed), Ok(in_memory)) => {
                    assert_eq!(streamed.columns(), in_memory.columns());
                    assert_eq!(all_rows(&streamed, &fields), all_rows(&in_memory, &fields));
                    // The progress display's count: the whole file once read.
                    assert_eq!(streamed.bytes_read(), Some(length));
                    assert_eq!(in_memory.bytes_read(), None);
                    all_rows(&streamed, &fields).len()
                }
                (Err(streamed), Err(in_memory)) => {
                    assert_eq!(streamed.to_string(), in_memory.to_string());
                    0
                }
                (streamed, in_memory) => panic!("{streamed:?} / {in_memory:?}"),
            }
        };
        assert!(text.len() > 3 * FILE_CHUNK);
        assert_eq!(
            compare(text.clone().into_bytes(), SourceOptions::default()),
            12000
        );
        let plain = text.replace('\u{feff}', "");
        let (latin, _, _) = encoding_rs::WINDOWS_1252.encode(&plain);
        assert_eq!(compare(latin.to_vec(), SourceOptions::default()), 12000);
        let declared = SourceOptions {
            encoding: Some(SourceEncoding::Utf8),
            ..SourceOptions::default()
        };
        assert_eq!(compare(latin.to_vec(), declared), 0);
        let mut cut = text.clone().into_bytes();
        cut.truncate(cut.len() - 9);
        compare(cut, SourceOptions::default());
        compare(b"  \n".to_vec(), SourceOptions::default());
    }

    /// `;`, tab and `,` are detected from the header line, quotes respected.
    #[test]
    fn detects_the_delimiter() {
        assert_eq!(detect_delimiter("a;b;c\n1,5;2;3"), b';');
        assert_eq!(detect_delimiter("a\tb\n"), b'\t');
        assert_eq!(detect_delimiter("a,b\n1;2;3;4"), b',');
        assert_eq!(detect_delimiter("\"x;y\",b\n"), b',');
        assert_eq!(detect_delimiter("single\n1\n"), b',');
    }

    /// Windows-1252 with decimal commas and `;`: the French spreadsheet export.
    #[test]
    fn reads_windows_1252_with_decimal_comma() {
        let mut bytes = b"batiment;conso_kwh\r\nM".to_vec();
        bytes.push(0xE9); // é in Windows-1252
        bytes.extend_from_slice(b"diath\xE8que;12,5\r\nH\xF4tel de Ville;\r\n");
        let source = csv(&bytes);
        let mut declared = schema(&[
            ("batiment", FieldType::String),
            ("conso_kwh", FieldType::Number),
        ]);
        declared.fields[1].decimal_char = Some(",".into());
        let rows = all_rows(&source, &declared);
        assert_eq!(
            rows,
            vec![
                Ok(vec![Value::Text("Médiathèque".into()), Value::Float(12.5)]),
                Ok(vec![Value::Text("Hôtel de Ville".into()), Value::Null]),
            ]
        );
    }

    /// A declared UTF-8 file that is not UTF-8 is refused with the line.
    #[test]
    fn refuses_invalid_utf8_when_declared() {
        let options = SourceOptions {
            delimiter: None,
            encoding: Some(SourceEncoding::Utf8),
        };
        let error = Source::from_bytes(b"a\nok\nb\xE9\n".to_vec(), SourceFormat::Csv, &options)
            .unwrap_err();
        assert!(
            matches!(error, IngestError::Encoding { line: 3 }),
            "{error}"
        );
    }

    /// The BOM is dropped, quoted fields keep newlines and `""`, and row
    /// problems name the physical line where the row starts.
    #[test]
    fn reports_physical_lines_after_multiline_fields() {
        let text = "\u{feff}nom,note,n\n\"Dupont, \"\"Jo\"\"\",\"ligne 1\nligne 2\",1\nx,y,12;x\n";
        let source = csv(text.as_bytes());
        assert_eq!(source.columns(), vec!["nom", "note", "n"]);
        let declared = schema(&[
            ("nom", FieldType::String),
            ("note", FieldType::String),
            ("n", FieldType::Integer),
        ]);
        let rows = all_rows(&source, &declared);
        assert_eq!(
            rows[0],
            Ok(vec![
                Value::Text("Dupont, \"Jo\"".into()),
                Value::Text("ligne 1\nligne 2".into()),
                Value::Int(1),
            ])
        );
        let problem = rows[1].clone().unwrap_err();
        assert_eq!(problem.line, 4);
        assert_eq!(
            problem.to_string(),
            "line 4, column `n`: `12;x` is not an integer"
        );
    }

    /// A row with too few or too many fields is a row problem, not a crash.
    #[test]
    fn reports_rows_of_the_wrong_width() {
        let source = csv(b"a,b\n1,2\n3\n4,5,6\n");
        let declared = schema(&[("a", FieldType::Integer), ("b", FieldType::Integer)]);
        let rows = all_rows(&source, &declared);
        assert_eq!(rows[0], Ok(vec![Value::Int(1), Value::Int(2)]));
        assert_eq!(rows[1].as_ref().unwrap_err().line, 3);
        assert_eq!(rows[2].as_ref().unwrap_err().line, 4);
        assert!(rows[2].as_ref().unwrap_err().reason.contains("3 field(s)"));
    }

    /// Broken files are refused before any row: no header, blank or duplicate
    /// column names, a quote never closed.
    #[test]
    fn refuses_broken_files() {
        let options = SourceOptions::default();
        let read = |text: &str| {
            Source::from_bytes(text.as_bytes().to_vec(), SourceFormat::Csv, &options).unwrap_err()
        };
        assert!(matches!(read(""), IngestError::NoHeader));
        assert!(matches!(read("\n\n"), IngestError::NoHeader));
        assert!(matches!(
            read("a,,c\n"),
            IngestError::EmptyColumnName { position: 2, .. }
        ));
        assert!(matches!(read("a, a\n"), IngestError::DuplicateColumn(name) if name == "a"));
        assert!(matches!(
            read("a,b\n1,2\n3,\"open\n4,5\n"),
            IngestError::UnclosedQuote { line: 3 }
        ));
        // A quote inside an unquoted field is text, not an opening quote.
        assert!(
            Source::from_bytes(b"a;b\n5\" screen;2\n".to_vec(), SourceFormat::Csv, &options)
                .is_ok()
        );
    }

    /// The streamed quote check, on bytes (ASCII delimiter) or on characters,
    /// answers as the whole-text one, wherever the chunks are cut.
    #[test]
    fn scans_quotes_by_bytes_as_by_characters() {
        let texts = [
            "a,b\n1,2\n3,\"open\n4,5\n",
            "a,b\n\"é\"\"x\",2\n\"ü\n€\",3\n",
            "a;b\n5\" écran;2\n\"q\";\"r\"\"\"\n",
            "a,b\r\n\"x\"\"\",\"\"\r\n\"ß,",
            "a\tb\n\"\"\"\n\"\t\"\n",
        ];
        for text in texts {
            for delimiter in [b',', b';', b'\t'] {
                let whole = check_quotes(text, delimiter)
                    .err()
                    .map(|error| error.to_string());
                let chars: Vec<(usize, char)> = text.char_indices().collect();
                for &(cut, _) in &chars {
                    let (head, tail) = text.split_at(cut);
                    for bytes in [true, false] {
                        let mut scanner = QuoteScanner::default();
                        for part in [head, tail] {
                            if bytes {
                                scanner.feed(part, char::from(delimiter));
                            } else {
                                scanner.feed_chars(part, char::from(delimiter));
                            }
                        }
                        let streamed = scanner.finish().err().map(|error| error.to_string());
                        assert_eq!(streamed, whole, "{text:?} cut at {cut}, bytes {bytes}");
                    }
                }
            }
        }
    }

    /// Columns are matched by name; missing and extra columns are named.
    #[test]
    fn matches_columns_by_name() {
        let source = csv(b" b ,a\n2,1\n");
        let declared = schema(&[("a", FieldType::Integer), ("b", FieldType::Integer)]);
        assert_eq!(
            all_rows(&source, &declared),
            vec![Ok(vec![Value::Int(1), Value::Int(2)])]
        );
        let missing = schema(&[("a", FieldType::Integer), ("c", FieldType::Integer)]);
        let error = source.rows(&missing).err().expect("missing column");
        assert!(matches!(&error, IngestError::MissingColumns(names) if names == &["c"]));
        let fewer = schema(&[("a", FieldType::Integer)]);
        let error = source.rows(&fewer).err().expect("extra column");
        assert_eq!(
            error.to_string(),
            "the file has column(s) the schema does not declare: `b`; declare them in the schema or remove them from the file"
        );
    }

    /// Inference picks the narrowest type that fits every value.
    #[test]
    fn infers_types() {
        let text = "entier;decimal;virgule;booleen;jour;horodatage;code;texte;vide\n\
                    1;1.5;1,5;true;2024-01-31;2024-01-31T08:00:00Z;01053;a;\n\
                    -2;3;2;False;2024-02-29;2024-01-31T09:00:00+01:00;10000;12;\n";
        let inferred = csv(text.as_bytes()).infer_schema().expect("inferable");
        let types: Vec<FieldType> = inferred
            .fields
            .iter()
            .map(|field| field.field_type)
            .collect();
        assert_eq!(
            types,
            vec![
                FieldType::Integer,
                FieldType::Number,
                FieldType::Number,
                FieldType::Boolean,
                FieldType::Date,
                FieldType::Datetime,
                FieldType::String,
                FieldType::String,
                FieldType::String,
            ]
        );
        assert_eq!(inferred.fields[2].decimal_char.as_deref(), Some(","));
        assert_eq!(inferred.fields[1].decimal_char, None);
        // The inferred schema reads its own file without a problem.
        let source = csv(text.as_bytes());
        let rows = all_rows(&source, &inferred);
        assert_eq!(rows[0].as_ref().unwrap()[2], Value::Float(1.5));
        assert_eq!(rows[0].as_ref().unwrap()[6], Value::Text("01053".into()));
        assert!(rows.iter().all(Result::is_ok));
    }

    /// Inference refuses names that would not make plain SQL identifiers.
    #[test]
    fn inference_refuses_unusable_names() {
        assert!(csv(b"Commune,ANNEE\nTroyes,2024\n").infer_schema().is_ok());
        let error = csv(b"nom commune,annee\nTroyes,2024\n")
            .infer_schema()
            .unwrap_err();
        assert!(matches!(&error, IngestError::ColumnName(name) if name == "nom commune"));
        assert!(error.to_string().contains("declare a schema"));
    }

    /// A geopoint column reads `lat,lon` text with or without a space.
    #[test]
    fn reads_geopoints_from_csv() {
        let source = csv(b"station;position\nA;48.29,4.07\nB;48.3, 4.08\nC;north\n");
        let declared = schema(&[
            ("station", FieldType::String),
            ("position", FieldType::Geopoint),
        ]);
        let rows = all_rows(&source, &declared);
        assert_eq!(
            rows[0].as_ref().unwrap()[1],
            Value::Text("48.29,4.07".into())
        );
        assert_eq!(
            rows[1].as_ref().unwrap()[1],
            Value::Text("48.3,4.08".into())
        );
        assert_eq!(
            rows[2].as_ref().unwrap_err().column.as_deref(),
            Some("position")
        );
    }

    const GEOJSON: &str = r#"{"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"station": "S1", "niveau_m": 12.5, "date_mesure": "2024-03-01"},
         "geometry": {"type": "Point", "coordinates": [4.07, 48.29]}},
        {"type": "Feature", "properties": {"station": "S2", "niveau_m": 3, "date_mesure": null},
         "geometry": null},
        {"type": "Feature", "properties": {"station": "S3", "niveau_m": "x"},
         "geometry": {"type": "LineString", "coordinates": [[4, 48], [4.1, 48.1]]}}
    ]}"#;

    fn geojson(text: &str) -> Result<Source, IngestError> {
        Source::from_bytes(
            text.as_bytes().to_vec(),
            SourceFormat::GeoJson,
            &SourceOptions::default(),
        )
    }

    /// GeoJSON properties become columns in file order, the geometry a geopoint.
    #[test]
    fn reads_geojson_points() {
        let source = geojson(GEOJSON).expect("valid GeoJSON");
        let declared = schema(&[
            ("station", FieldType::String),
            ("date_mesure", FieldType::Date),
            ("niveau_m", FieldType::Number),
            ("geometry", FieldType::Geopoint),
        ]);
        let rows = all_rows(&source, &declared);
        assert_eq!(
            rows[0],
            Ok(vec![
                Value::Text("S1".into()),
                Value::Text("2024-03-01".into()),
                Value::Float(12.5),
                Value::Text("48.29,4.07".into()),
            ])
        );
        assert_eq!(
            rows[1],
            Ok(vec![
                Value::Text("S2".into()),
                Value::Null,
                Value::Float(3.0),
                Value::Null
            ])
        );
        let problem = rows[2].clone().unwrap_err();
        assert_eq!(problem.location, RowLocation::Feature);
        assert_eq!(
            problem.to_string(),
            "feature 3, column `niveau_m`: `x` is not a number"
        );
        let point_only = schema(&[
            ("station", FieldType::String),
            ("geometry", FieldType::Geopoint),
        ]);
        let without_number = geojson(
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"station":"S"},
               "geometry":{"type":"Polygon","coordinates":[]}}]}"#,
        )
        .unwrap();
        let rows = all_rows(&without_number, &point_only);
        assert!(rows[0].as_ref().unwrap_err().reason.contains("Polygon"));
    }

    /// Inference on GeoJSON keeps property order and types JSON values.
    #[test]
    fn infers_geojson_schemas() {
        let inferred = geojson(GEOJSON).unwrap().infer_schema().unwrap();
        let described: Vec<(&str, FieldType)> = inferred
            .fields
            .iter()
            .map(|field| (field.name.as_str(), field.field_type))
            .collect();
        assert_eq!(
            described,
            vec![
                ("station", FieldType::String),
                ("niveau_m", FieldType::String),
                ("date_mesure", FieldType::Date),
                ("geometry", FieldType::Geojson),
            ]
        );
    }

    /// Not a FeatureCollection, or not JSON: refused with the reason.
    #[test]
    fn refuses_invalid_geojson() {
        for text in [
            "{",
            r#"{"type": "Feature", "properties": {}}"#,
            r#"{"type": "FeatureCollection"}"#,
            r#"{"type": "FeatureCollection", "features": [{"type": "Point"}]}"#,
        ] {
            let error = geojson(text).unwrap_err();
            assert!(
                matches!(error, IngestError::InvalidGeoJson(_)),
                "{text}: {error}"
            );
        }
    }

    /// A given delimiter wins over detection; tab is detected.
    #[test]
    fn honours_a_given_delimiter() {
        let options = SourceOptions {
            delimiter: Some(b';'),
            encoding: None,
        };
        let source =
            Source::from_bytes(b"a,b;c\n1,5;2\n".to_vec(), SourceFormat::Csv, &options).unwrap();
        assert_eq!(source.columns(), vec!["a,b", "c"]);
        assert_eq!(csv(b"a\tb\n1\t2\n").columns(), vec!["a", "b"]);
    }

    /// A BOM followed by Windows-1252 bytes: the BOM is not read as text.
    #[test]
    fn drops_a_bom_before_falling_back_to_windows_1252() {
        let source = csv(b"\xEF\xBB\xBFnom\nR\xE9mi\n");
        assert_eq!(source.columns(), vec!["nom"]);
        let rows = all_rows(&source, &schema(&[("nom", FieldType::String)]));
        assert_eq!(rows, vec![Ok(vec![Value::Text("Rémi".into())])]);
    }

    /// A problem with no single column to blame reads naturally.
    #[test]
    fn displays_problems_without_a_column() {
        let problem = RowProblem {
            line: 3,
            column: None,
            reason: "1 field(s) where the header has 2".into(),
            location: RowLocation::Line,
        };
        assert_eq!(
            problem.to_string(),
            "line 3: 1 field(s) where the header has 2"
        );
    }

    /// The importer holds a source across `.await`s on a multi-threaded runtime.
    #[test]
    fn sources_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Source>();
        assert_send_sync::<IngestError>();
        assert_send_sync::<RowProblem>();
    }

    /// Stands for the store's importer: generic over the rows, awaiting between them.
    async fn consume<I, E>(rows: I) -> usize
    where
        I: Iterator<Item = Result<Vec<Value>, E>>,
    {
        tokio::task::yield_now().await;
        rows.filter(Result::is_ok).count()
    }

    /// The catalogue sync's sequence (decode, infer, rows, await the import)
    /// runs inside `tokio::spawn`, which needs the whole future to be `Send`.
    #[tokio::test]
    async fn the_import_sequence_runs_in_a_spawned_task() {
        async fn import(bytes: Vec<u8>) -> Result<usize, String> {
            let options = SourceOptions {
                delimiter: None,
                encoding: None,
            };
            let source = Source::from_bytes(bytes, SourceFormat::Csv, &options)
                .map_err(|error| error.to_string())?;
            let schema = source.infer_schema().map_err(|error| error.to_string())?;
            let rows = source.rows(&schema).map_err(|error| error.to_string())?;
            Ok(consume(rows).await)
        }
        let imported = tokio::spawn(import(
            b"commune;annee\nTroyes;2024\nRomilly-sur-Seine;2023\n".to_vec(),
        ))
        .await
        .expect("task");
        assert_eq!(imported, Ok(2));
    }

    /// Rows stream: the iterator is `Send` and produces rows one at a time.
    #[test]
    fn rows_stream_and_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let mut text = String::from("n\n");
        for number in 0..10_000 {
            text.push_str(&format!("{number}\n"));
        }
        let source = csv(text.as_bytes());
        let declared = schema(&[("n", FieldType::Integer)]);
        let mut rows = source.rows(&declared).unwrap();
        assert_send(&rows);
        assert_eq!(rows.next(), Some(Ok(vec![Value::Int(0)])));
        assert_eq!(rows.count(), 9_999);
    }

    /// The demo catalogue in `catalog/`: one definition per dataset.
    mod demo_catalogue {
        use std::collections::BTreeMap;
        use std::path::PathBuf;

        use super::*;
        use crate::catalog::definition::{AccessLevel, DatasetDefinition, MetadataVisibility};

        fn folder() -> PathBuf {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog")
        }

        /// Every definition of the folder, parsed with the catalogue's own types.
        fn definitions() -> Vec<DatasetDefinition> {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(folder())
                .expect("catalog folder")
                .map(|entry| entry.expect("directory entry").path())
                .filter(|path| {
                    matches!(
                        path.extension().and_then(|extension| extension.to_str()),
                        Some("yaml" | "toml")
                    )
                })
                .collect();
            paths.sort();
            paths
                .iter()
                .map(|path| {
                    let text = std::fs::read_to_string(path).expect("readable definition");
                    let definition: DatasetDefinition = if path
                        .extension()
                        .is_some_and(|extension| extension == "toml")
                    {
                        toml::from_str(&text).unwrap_or_else(|error| panic!("{path:?}: {error}"))
                    } else {
                        serde_yaml_ng::from_str(&text)
                            .unwrap_or_else(|error| panic!("{path:?}: {error}"))
                    };
                    definition
                        .check()
                        .unwrap_or_else(|error| panic!("{path:?}: {error}"));
                    let stem = path.file_stem().and_then(|stem| stem.to_str());
                    assert_eq!(
                        stem,
                        Some(definition.id.as_str()),
                        "file named after its id"
                    );
                    definition
                })
                .collect()
        }

        /// Reads a definition's source as the importer does.
        fn source_of(definition: &DatasetDefinition) -> Source {
            let source = &definition.source;
            let file = source.file.as_deref().expect("a file source");
            let format = if file.ends_with(".geojson") {
                SourceFormat::GeoJson
            } else {
                SourceFormat::Csv
            };
            let options = SourceOptions {
                delimiter: source
                    .delimiter
                    .as_deref()
                    .map(|delimiter| match delimiter {
                        "," => b',',
                        ";" => b';',
                        other => panic!("unexpected delimiter {other}"),
                    }),
                encoding: source.encoding.as_deref().map(|encoding| match encoding {
                    "utf-8" => SourceEncoding::Utf8,
                    "windows-1252" => SourceEncoding::Windows1252,
                    other => panic!("unexpected encoding {other}"),
                }),
            };
            Source::open(&folder().join(file), format, &options)
                .unwrap_or_else(|error| panic!("{}: {error}", definition.id))
        }

        /// Every row of a dataset, failing on the first problem.
        fn ingest(definition: &DatasetDefinition) -> (Schema, Vec<Vec<Value>>) {
            let source = source_of(definition);
            let schema = match &definition.schema {
                Some(schema) => schema.clone(),
                None => source.infer_schema().expect("inferable schema"),
            };
            definition
                .check_schema(&schema)
                .unwrap_or_else(|error| panic!("{}: {error}", definition.id));
            let rows = source
                .rows(&schema)
                .unwrap_or_else(|error| panic!("{}: {error}", definition.id))
                .map(|row| row.unwrap_or_else(|problem| panic!("{}: {problem}", definition.id)))
                .collect();
            (schema, rows)
        }

        /// The ten datasets, each at its access level, ingest without one row problem.
        #[test]
        fn every_dataset_ingests_cleanly() {
            let definitions = definitions();
            let levels: BTreeMap<&str, AccessLevel> = definitions
                .iter()
                .map(|definition| (definition.id.as_str(), definition.access))
                .collect();
            let expected = BTreeMap::from([
                ("badges-stationnement-residents", AccessLevel::Confidential),
                ("consommations-energie-batiments", AccessLevel::Open),
                ("effectifs-services", AccessLevel::Internal),
                ("frequentation-musees", AccessLevel::Open),
                ("infractions-videoprotection", AccessLevel::Internal),
                ("locations-velos", AccessLevel::Partners),
                ("menages-precarite-energetique", AccessLevel::Confidential),
                ("projets-amenagement", AccessLevel::Undecided),
                ("qualite-air-stations", AccessLevel::Open),
                ("releves-piezometriques", AccessLevel::Open),
            ]);
            assert_eq!(levels, expected);
            for definition in &definitions {
                let (schema, rows) = ingest(definition);
                assert!(
                    (30..=400).contains(&rows.len()),
                    "{}: {} rows",
                    definition.id,
                    rows.len()
                );
                assert!(rows.iter().all(|row| row.len() == schema.fields.len()));
                if definition.personal_data {
                    assert!(
                        schema.fields.iter().any(Field::is_personal),
                        "{}",
                        definition.id
                    );
                }
            }
        }

        fn definition(id: &str) -> DatasetDefinition {
            definitions()
                .into_iter()
                .find(|definition| definition.id == id)
                .expect("dataset in the catalogue")
        }

        /// The Windows-1252 export keeps its accents and decimal commas.
        #[test]
        fn energy_file_decodes_accents_and_decimal_commas() {
            let (schema, rows) = ingest(&definition("consommations-energie-batiments"));
            let batiment = schema.position("batiment").unwrap();
            let commune = schema.position("commune").unwrap();
            let conso = schema.position("conso_kwh").unwrap();
            let text = |row: &Vec<Value>, index: usize| match &row[index] {
                Value::Text(text) => text.clone(),
                other => panic!("not text: {other:?}"),
            };
            assert!(
                rows.iter()
                    .any(|row| text(row, batiment) == "Médiathèque Jacques-Chirac")
            );
            assert!(
                rows.iter()
                    .any(|row| text(row, batiment) == "Hôtel de Ville")
            );
            let communes: BTreeSet<String> = rows.iter().map(|row| text(row, commune)).collect();
            for name in [
                "Troyes",
                "Sainte-Savine",
                "La Chapelle-Saint-Luc",
                "Saint-André-les-Vergers",
                "Romilly-sur-Seine",
            ] {
                assert!(communes.contains(name), "{name}");
            }
            // Readings are positive; a few meters were not read (empty cells).
            assert!(rows.iter().all(|row| match row[conso] {
                Value::Float(kwh) => kwh > 0.0,
                Value::Null => true,
                _ => false,
            }));
            assert!(rows.iter().any(|row| row[conso] == Value::Null));
        }

        /// The museum file has no declared schema: inference types its columns.
        #[test]
        fn museum_schema_is_inferred() {
            let definition = definition("frequentation-musees");
            assert!(definition.schema.is_none());
            let (schema, _) = ingest(&definition);
            let types: Vec<(&str, FieldType)> = schema
                .fields
                .iter()
                .map(|field| (field.name.as_str(), field.field_type))
                .collect();
            assert_eq!(
                types,
                vec![
                    ("musee", FieldType::String),
                    ("annee", FieldType::Integer),
                    ("mois", FieldType::Integer),
                    ("visiteurs", FieldType::Integer),
                    ("visiteurs_gratuits", FieldType::Integer),
                    ("part_gratuite", FieldType::Number),
                    ("ouvert", FieldType::Boolean),
                ]
            );
        }

        /// Some (commune, chauffage) groups are under the view's minimum size,
        /// some are not, so suppression is visible through the ADEME view.
        #[test]
        fn household_groups_straddle_the_minimum_size() {
            let definition = definition("menages-precarite-energetique");
            let view = &definition.views[0];
            assert!(view.aggregate_only);
            let (schema, rows) = ingest(&definition);
            let commune = schema.position("commune").unwrap();
            let chauffage = schema.position("chauffage").unwrap();
            let mut groups: BTreeMap<(String, String), u32> = BTreeMap::new();
            for row in &rows {
                let key = (
                    format!("{:?}", row[commune]),
                    format!("{:?}", row[chauffage]),
                );
                *groups.entry(key).or_default() += 1;
            }
            let small = groups
                .values()
                .filter(|&&size| size < view.min_group_size.unwrap_or(11))
                .count();
            assert!(small >= 3, "{groups:?}");
            assert!(groups.len() - small >= 3, "{groups:?}");
        }

        /// The badges entry is hidden from unauthorised callers and its
        /// control view shows exactly the zone, plate and end date.
        #[test]
        fn badges_are_restricted() {
            let definition = definition("badges-stationnement-residents");
            assert_eq!(
                definition.metadata_visibility,
                MetadataVisibility::Restricted
            );
            let view = &definition.views[0];
            assert_eq!(view.name, "controle-zone");
            assert_eq!(
                view.columns.as_deref(),
                Some(
                    &[
                        "zone".to_owned(),
                        "immatriculation".to_owned(),
                        "date_fin".to_owned()
                    ][..]
                )
            );
        }

        /// The bike rentals carry a per-commune view filtered on the partner's claim.
        #[test]
        fn bike_rentals_filter_by_partner_commune() {
            let definition = definition("locations-velos");
            let view = definition
                .views
                .iter()
                .find(|view| view.name == "par-commune")
                .expect("par-commune view");
            assert_eq!(view.row_filter.as_deref(), Some("commune=eq.${claims.org}"));
            assert!(definition.views.iter().any(|view| view.name == "operateur"));
        }
    }

    /// A GeoJSON file is read from disk feature by feature: the same checks
    /// as in memory (feature types, the collection's type), a BOM skipped,
    /// and rows that stop being read stop the reading thread.
    #[test]
    fn streams_geojson_files() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("points.geojson");
        let feature = |number: usize| {
            format!(r#"{{"type": "Feature", "properties": {{"n": {number}}}, "geometry": null}}"#)
        };
        let collection = |features: Vec<String>| {
            format!(
                r#"{{"features": [{}], "type": "FeatureCollection"}}"#,
                features.join(",")
            )
        };
        let open = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Source::open(&path, SourceFormat::GeoJson, &SourceOptions::default())
        };
        let mut features: Vec<String> = (1..=3).map(feature).collect();
        features[1] = features[1].replace("\"Feature\"", "\"Banana\"");
        let error = open(&collection(features)).unwrap_err().to_string();
        assert!(error.contains("feature 2 has type `Banana`"), "{error}");
        let error = open(r#"{"type": "Feature", "features": []}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a `FeatureCollection`"), "{error}");

        let text = format!("\u{feff}{}", collection((1..=5000).map(feature).collect()));
        let source = open(&text).unwrap();
        assert_eq!(source.columns(), vec!["n"]);
        let schema = source.infer_schema().unwrap();
        assert_eq!(schema.fields[0].field_type, FieldType::Integer);
        let rows: Vec<_> = source.rows(&schema).unwrap().collect();
        assert_eq!(rows.len(), 5000);
        assert_eq!(rows[4999], Ok(vec![Value::Int(5000)]));
        // Only the first rows taken: the reader stops, nothing hangs.
        let first: Vec<_> = source.rows(&schema).unwrap().take(2).collect();
        assert_eq!(first.len(), 2);
    }
}
