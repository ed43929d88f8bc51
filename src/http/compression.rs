//! Compression of answers (gzip, br, zstd), negotiated from
//! `Accept-Encoding` by tower-http's `CompressionLayer`, inside the audit
//! middleware so that the audit counts the bytes that went on the wire.
//! Streamed exports are compressed as they stream: the encoder holds a
//! window of its own, never the whole answer, so memory stays flat.
//!
//! What is compressed: answers whose size is unknown (streamed exports) or
//! at least `server.compression.min_bytes`; never images, gRPC or event
//! streams, and never a plain-text error (the edge reads those to turn them
//! into problem documents). `Vary: Accept-Encoding` goes with every
//! compressed answer.
//!
//! tower-http never compresses an answer with a `Content-Range` header,
//! which it takes for a byte range. Ours counts rows (PostgREST's
//! `0-24/1000`) and is on every JSON page, so it is set aside under another
//! name while the compression layer runs and put back after it.

use axum::http::{HeaderMap, HeaderName, StatusCode, Version, header};
use axum::response::Response;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};

use crate::config::{CompressionLevel, CompressionSettings};

/// Where the row range waits while the compression layer runs.
const SET_ASIDE_CONTENT_RANGE: HeaderName =
    HeaderName::from_static("x-passerelle-row-content-range");

/// Whether an answer is worth compressing.
#[derive(Clone, Copy, Debug)]
pub struct Compressible {
    enabled: bool,
    min_bytes: u64,
}

impl Predicate for Compressible {
    fn should_compress<B>(&self, response: &axum::http::Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        let plain_error = |status: StatusCode, _: Version, headers: &HeaderMap, _: &_| {
            !(status.is_client_error() || status.is_server_error())
                || !headers
                    .get(header::CONTENT_TYPE)
                    .is_none_or(|value| value.as_bytes().starts_with(b"text/plain"))
        };
        self.enabled
            && SizeAbove::new(self.min_bytes)
                .and(NotForContentType::GRPC)
                .and(NotForContentType::IMAGES)
                .and(NotForContentType::SSE)
                .and(plain_error)
                .should_compress(response)
    }
}

/// The compression layer for these settings.
pub fn layer(settings: &CompressionSettings) -> CompressionLayer<Compressible> {
    let level = match settings.level {
        CompressionLevel::Fastest => tower_http::CompressionLevel::Fastest,
        CompressionLevel::Default => tower_http::CompressionLevel::Default,
        CompressionLevel::Best => tower_http::CompressionLevel::Best,
    };
    CompressionLayer::new()
        .quality(level)
        .compress_when(Compressible {
            enabled: settings.enabled,
            min_bytes: settings.min_bytes,
        })
}

/// Sets the row range aside before the compression layer sees the answer.
pub async fn set_content_range_aside(mut response: Response) -> Response {
    if let Some(range) = response.headers_mut().remove(header::CONTENT_RANGE) {
        response
            .headers_mut()
            .insert(SET_ASIDE_CONTENT_RANGE, range);
    }
    response
}

/// Puts the row range back after the compression layer.
pub async fn restore_content_range(mut response: Response) -> Response {
    if let Some(range) = response.headers_mut().remove(SET_ASIDE_CONTENT_RANGE) {
        response.headers_mut().insert(header::CONTENT_RANGE, range);
    }
    response
}

/// An encoding the gateway applies itself, to a cached JSON page: the page
/// is compressed once per encoding and kept, instead of once per request by
/// the compression layer (which leaves an answer that already has a
/// `Content-Encoding` alone). Ordered as tower-http breaks ties between
/// equal q-values, so both choose the same encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Encoding {
    Identity,
    Gzip,
    Br,
    Zstd,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
        }
    }

    /// The slot of a compressed copy (identity has none).
    pub fn slot(self) -> Option<usize> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some(0),
            Encoding::Br => Some(1),
            Encoding::Zstd => Some(2),
        }
    }

    /// The encoding `Accept-Encoding` prefers, as tower-http negotiates it
    /// (RFC 9110 §12.5.3): the highest q-value above zero among the listed
    /// encodings, `*` standing for those not listed; identity when nothing
    /// else is acceptable.
    pub fn negotiate(request: &HeaderMap) -> Encoding {
        let mut listed: Vec<(Option<Encoding>, u16)> = Vec::new();
        let mut wildcard = None;
        for value in request.get_all(header::ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                let q = parts
                    .find_map(|part| {
                        let (key, value) = part.trim().split_once('=')?;
                        (key.trim() == "q").then(|| value.trim().parse::<f32>().ok())?
                    })
                    .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0).round() as u16);
                match name.as_str() {
                    "gzip" | "x-gzip" => listed.push((Some(Encoding::Gzip), q)),
                    "br" => listed.push((Some(Encoding::Br), q)),
                    "zstd" => listed.push((Some(Encoding::Zstd), q)),
                    "identity" => listed.push((Some(Encoding::Identity), q)),
                    "*" => wildcard = Some(q),
                    _ => listed.push((None, q)),
                }
            }
        }
        let q_of = |encoding: Encoding| {
            listed
                .iter()
                .find(|(listed, _)| *listed == Some(encoding))
                .map(|(_, q)| *q)
                .or(wildcard)
        };
        [
            Encoding::Identity,
            Encoding::Gzip,
            Encoding::Br,
            Encoding::Zstd,
        ]
        .into_iter()
        .filter_map(|encoding| q_of(encoding).map(|q| (q, encoding)))
        .filter(|(q, _)| *q > 0)
        .max()
        .map_or(Encoding::Identity, |(_, encoding)| encoding)
    }

    /// `body` compressed at `level`, as the compression layer would.
    pub fn encode(self, level: CompressionLevel, body: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Write;
        let mut out = Vec::with_capacity(body.len() / 4 + 64);
        match self {
            Encoding::Identity => out.extend_from_slice(body),
            Encoding::Gzip => {
                let level = match level {
                    CompressionLevel::Fastest => flate2::Compression::fast(),
                    CompressionLevel::Default => flate2::Compression::default(),
                    CompressionLevel::Best => flate2::Compression::best(),
                };
                let mut encoder = flate2::write::GzEncoder::new(out, level);
                encoder.write_all(body)?;
                out = encoder.finish()?;
            }
            Encoding::Br => {
                let quality = match level {
                    CompressionLevel::Fastest => 0,
                    CompressionLevel::Default | CompressionLevel::Best => 11,
                };
                let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, quality, 22);
                encoder.write_all(body)?;
                encoder.flush()?;
                drop(encoder);
            }
            Encoding::Zstd => {
                let level = match level {
                    CompressionLevel::Fastest => 1,
                    CompressionLevel::Default => zstd::DEFAULT_COMPRESSION_LEVEL,
                    CompressionLevel::Best => *zstd::compression_level_range().end(),
                };
                out = zstd::bulk::compress(body, level)?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
        headers
    }

    /// The same choices as tower-http: q-values, ties, `*`, identity.
    #[test]
    fn negotiates_like_the_compression_layer() {
        assert_eq!(Encoding::negotiate(&HeaderMap::new()), Encoding::Identity);
        assert_eq!(Encoding::negotiate(&accept("gzip")), Encoding::Gzip);
        assert_eq!(
            Encoding::negotiate(&accept("gzip, deflate, br")),
            Encoding::Br
        );
        assert_eq!(
            Encoding::negotiate(&accept("gzip, br, zstd")),
            Encoding::Zstd
        );
        assert_eq!(
            Encoding::negotiate(&accept("br;q=0.5, gzip")),
            Encoding::Gzip
        );
        assert_eq!(
            Encoding::negotiate(&accept("zstd;q=0, gzip;q=0.1")),
            Encoding::Gzip
        );
        assert_eq!(Encoding::negotiate(&accept("*")), Encoding::Zstd);
        assert_eq!(
            Encoding::negotiate(&accept("*;q=0, identity")),
            Encoding::Identity
        );
        assert_eq!(
            Encoding::negotiate(&accept("identity;q=1, gzip;q=0.5")),
            Encoding::Identity
        );
        assert_eq!(
            Encoding::negotiate(&accept("compress, deflate")),
            Encoding::Identity
        );
    }

    /// Each copy decodes back to the page.
    #[test]
    fn encodes_what_the_decoders_read() {
        use std::io::Read;
        let body = br#"[{"commune":"Troyes","conso_kwh":1234.5}]"#.repeat(50);
        for level in [CompressionLevel::Fastest, CompressionLevel::Default] {
            let gzip = Encoding::Gzip.encode(level, &body).unwrap();
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&gzip[..])
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain, body);
            let zstd = Encoding::Zstd.encode(level, &body).unwrap();
            assert_eq!(zstd::bulk::decompress(&zstd, body.len()).unwrap(), body);
            let br = Encoding::Br.encode(level, &body).unwrap();
            let mut plain = Vec::new();
            brotli::Decompressor::new(&br[..], 4096)
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain, body);
            assert!(gzip.len() < body.len() / 5 && zstd.len() < body.len() / 5);
        }
    }
}
