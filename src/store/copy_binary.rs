//! NDJSON and GeoJSON exports from PostgreSQL: the planned query is copied
//! out in PostgreSQL's binary format (`COPY … TO STDOUT WITH (FORMAT
//! binary)`, see [`super::copy`]) and each row is encoded by the export's
//! own encoder, as SQLite's direct exports are. The server only scans and
//! sends values as they are stored; no text is parsed back, no JSON is
//! built in SQL, and the bytes are the encoder's by construction.
//!
//! Measured on 1 M rows of nine columns (S4, `psql \copy` CSV as the
//! reference): building the JSON lines in SQL ran at 0.61x (NDJSON) and
//! 0.45x (GeoJSON); this path at 1.07x and 0.94x.

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;

use super::StoreError;
use super::copy::CopyStream;
use super::direct::{CHUNK_BYTES, Encoded, EncodedStream};
use super::sql::CellKind;
use crate::domain::Value;
use crate::format::RowEncoder;

/// The signature, flags and header extension length that open a binary COPY.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// The rows of a binary `COPY` stream encoded by `encoder` (its opening and
/// closing included), in chunks of about [`CHUNK_BYTES`] with their row
/// counts. `kinds`: the output columns' kinds, in order.
pub fn encode_binary(
    copied: CopyStream,
    kinds: Vec<CellKind>,
    mut encoder: Box<dyn RowEncoder>,
) -> EncodedStream {
    Box::pin(async_stream::try_stream! {
        let mut copied = copied;
        let mut decoder = BinaryRows::new(kinds);
        let mut pending = BytesMut::new();
        let mut out = Vec::with_capacity(CHUNK_BYTES + 4096);
        let mut rows = 0;
        encoder.begin(&mut out);
        while let Some(chunk) = copied.next().await {
            pending.extend_from_slice(&chunk?);
            while let Some(cells) = decoder.next_row(&mut pending)? {
                encoder.row(&mut out, cells);
                rows += 1;
            }
            if out.len() >= CHUNK_BYTES {
                let bytes = std::mem::replace(&mut out, Vec::with_capacity(CHUNK_BYTES + 4096));
                yield Encoded { bytes: Bytes::from(bytes), rows };
                rows = 0;
            }
        }
        if !decoder.ended || !pending.is_empty() {
            Err(malformed("the copy ended before its trailer"))?;
        }
        encoder.end(&mut out);
        yield Encoded { bytes: Bytes::from(out), rows };
    })
}

fn malformed(reason: &str) -> StoreError {
    StoreError::Sql(sqlx::Error::Protocol(format!("binary COPY: {reason}")))
}

/// Reads rows out of binary COPY bytes as they arrive.
struct BinaryRows {
    kinds: Vec<CellKind>,
    cells: Vec<Value>,
    started: bool,
    ended: bool,
}

impl BinaryRows {
    fn new(kinds: Vec<CellKind>) -> BinaryRows {
        BinaryRows {
            cells: vec![Value::Null; kinds.len()],
            kinds,
            started: false,
            ended: false,
        }
    }

    /// The next whole row at the front of `pending` (consumed), or `None`
    /// when more bytes are needed or the trailer was read.
    fn next_row(&mut self, pending: &mut BytesMut) -> Result<Option<&[Value]>, StoreError> {
        if self.ended {
            return Ok(None);
        }
        if !self.started {
            // Signature, flags (4 bytes), extension length (4 bytes), extension.
            if pending.len() < SIGNATURE.len() + 8 {
                return Ok(None);
            }
            if &pending[..SIGNATURE.len()] != SIGNATURE {
                return Err(malformed("no signature"));
            }
            let at = SIGNATURE.len() + 4;
            let extension = u32::from_be_bytes(read4(pending, at)) as usize;
            if pending.len() < at + 4 + extension {
                return Ok(None);
            }
            pending.advance(at + 4 + extension);
            self.started = true;
        }
        let Some(length) = self.row_length(pending)? else {
            return Ok(None);
        };
        if length == 2 {
            // The field count -1: the trailer.
            pending.advance(2);
            self.ended = true;
            return Ok(None);
        }
        let row = pending.split_to(length);
        let mut at = 2;
        for (cell, kind) in self.cells.iter_mut().zip(&self.kinds) {
            let size = i32::from_be_bytes(read4(&row, at));
            at += 4;
            if size < 0 {
                *cell = Value::Null;
                continue;
            }
            let value = &row[at..at + size as usize];
            at += size as usize;
            *cell = decode(*kind, value)?;
        }
        Ok(Some(&self.cells))
    }

    /// The length of the row (or trailer) at the front of `pending` when all
    /// of it is there.
    fn row_length(&self, pending: &BytesMut) -> Result<Option<usize>, StoreError> {
        if pending.len() < 2 {
            return Ok(None);
        }
        let count = i16::from_be_bytes([pending[0], pending[1]]);
        if count == -1 {
            return Ok(Some(2));
        }
        if usize::try_from(count).ok() != Some(self.kinds.len()) {
            return Err(malformed("a row of an unexpected width"));
        }
        let mut at = 2;
        for _ in 0..self.kinds.len() {
            if pending.len() < at + 4 {
                return Ok(None);
            }
            let size = i32::from_be_bytes(read4(pending, at));
            at += 4;
            if size > 0 {
                at += size as usize;
            }
        }
        Ok((pending.len() >= at).then_some(at))
    }
}

fn read4(bytes: &[u8], at: usize) -> [u8; 4] {
    [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]
}

/// A value in PostgreSQL's binary send format as the kind's [`Value`].
fn decode(kind: CellKind, value: &[u8]) -> Result<Value, StoreError> {
    Ok(match (kind, value.len()) {
        (CellKind::Int, 8) => Value::Int(i64::from_be_bytes(value.try_into().unwrap_or_default())),
        (CellKind::Int, 4) => {
            Value::Int(i32::from_be_bytes(value.try_into().unwrap_or_default()).into())
        }
        (CellKind::Int, 2) => {
            Value::Int(i16::from_be_bytes(value.try_into().unwrap_or_default()).into())
        }
        (CellKind::Float, 8) => Value::Float(f64::from_bits(u64::from_be_bytes(
            value.try_into().unwrap_or_default(),
        ))),
        (CellKind::Float, 4) => Value::Float(
            f32::from_bits(u32::from_be_bytes(value.try_into().unwrap_or_default())).into(),
        ),
        (CellKind::Bool, 1) => Value::Bool(value[0] != 0),
        (CellKind::Text, _) => Value::Text(
            std::str::from_utf8(value)
                .map_err(|_| malformed("text that is not UTF-8"))?
                .to_owned(),
        ),
        _ => return Err(malformed("a value of an unexpected size")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::NdjsonEncoder;

    fn field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
        match bytes {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(bytes) => {
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }

    /// A binary COPY of two rows: header, rows, trailer.
    fn copy_bytes() -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        for (id, x, text, flag) in [
            (1i64, Some(1e20f64), Some("é \"q\"\n"), Some(true)),
            (-2, None, None, Some(false)),
        ] {
            out.extend_from_slice(&4i16.to_be_bytes());
            field(&mut out, Some(&id.to_be_bytes()));
            field(
                &mut out,
                x.map(|x| x.to_bits().to_be_bytes())
                    .as_ref()
                    .map(|b| &b[..]),
            );
            field(&mut out, text.map(str::as_bytes));
            field(
                &mut out,
                flag.map(|flag| [u8::from(flag)]).as_ref().map(|b| &b[..]),
            );
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    async fn encode(pieces: Vec<Vec<u8>>) -> Result<String, StoreError> {
        let copied: CopyStream =
            futures::stream::iter(pieces.into_iter().map(|piece| Ok(Bytes::from(piece)))).boxed();
        let keys = ["id", "x", "s", "b"].map(str::to_owned);
        let encoder = Box::new(NdjsonEncoder::new(&keys, &[false; 4]));
        let kinds = vec![
            CellKind::Int,
            CellKind::Float,
            CellKind::Text,
            CellKind::Bool,
        ];
        let chunks: Vec<Encoded> = encode_binary(copied, kinds, encoder)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        assert_eq!(chunks.iter().map(|chunk| chunk.rows).sum::<u64>(), 2);
        Ok(chunks
            .iter()
            .map(|chunk| String::from_utf8(chunk.bytes.to_vec()).unwrap())
            .collect())
    }

    /// Rows are decoded whatever the chunk borders, and written by the encoder.
    #[tokio::test]
    async fn decodes_rows_across_chunk_borders() {
        let expected = "{\"id\":1,\"x\":1e+20,\"s\":\"é \\\"q\\\"\\n\",\"b\":true}\n\
                        {\"id\":-2,\"x\":null,\"s\":null,\"b\":false}\n";
        let bytes = copy_bytes();
        assert_eq!(encode(vec![bytes.clone()]).await.unwrap(), expected);
        let single: Vec<Vec<u8>> = bytes.iter().map(|byte| vec![*byte]).collect();
        assert_eq!(encode(single).await.unwrap(), expected);
    }

    /// A copy cut before its trailer, or with a bad header, is an error.
    #[tokio::test]
    async fn refuses_cut_or_foreign_bytes() {
        let mut bytes = copy_bytes();
        bytes.truncate(bytes.len() - 5);
        assert!(encode(vec![bytes]).await.is_err());
        let mut foreign = copy_bytes();
        foreign[0] = b'X';
        assert!(encode(vec![foreign]).await.is_err());
    }
}
