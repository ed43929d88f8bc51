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
