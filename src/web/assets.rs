//! The pages' stylesheet and script, built into the binary and served under
//! `/assets/` with a hash of their content in the file name, so a browser
//! may keep them for a year (`immutable`): a changed file has a new name.
//! Nothing else is served here: an unknown or outdated name is a 404.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

/// One embedded file.
pub struct Asset {
    /// `/assets/<stem>.<hash>.<extension>`.
    pub path: String,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static [u8]) -> Asset {
        let hash = hex::encode(&sha2::Sha256::digest(body)[..8]);
        Asset {
            path: format!("/assets/{stem}.{hash}.{extension}"),
            content_type,
            body,
        }
    }
}

/// The stylesheet of every page.
pub static STYLESHEET: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "style",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    )
});

/// The copy buttons of code snippets (the page works without it).
pub static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "copy",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/copy.js"),
    )
});

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    let path = format!("/assets/{name}");
    let Some(asset) = [&*STYLESHEET, &*SCRIPT]
        .into_iter()
        .find(|asset| asset.path == path)
    else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "no such asset",
        )
            .into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names carry the content hash; the two assets differ.
    #[test]
    fn names_carry_the_content_hash() {
        let css = &*STYLESHEET;
        assert!(css.path.starts_with("/assets/style."));
        assert!(css.path.ends_with(".css"));
        assert_eq!(css.path.len(), "/assets/style..css".len() + 16);
        assert_ne!(css.path, SCRIPT.path);
    }
}
