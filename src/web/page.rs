//! What every page shares: the visitor's language and the links that keep
//! it, the layout's fields (title, assets, language switch), and turning a
//! rendered template into a response with the pages' headers. An error is a
//! page too (status, title, one sentence), never a JSON document.

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::assets::{SCRIPT, STYLESHEET};
use super::locale::{Lang, Texts};
use crate::domain::client_text::query_pairs;

/// The query parameter that chooses the language.
const LANG: &str = "lang";

/// The visitor's language, and whether they chose it in the URL (then
/// every link of the page carries it, so the choice survives clicks).
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub lang: Lang,
    explicit: bool,
}

impl Site {
    /// From `?lang=` when it names one of ours, else `Accept-Language`.
    pub fn of(pairs: &[(String, String)], headers: &HeaderMap) -> Site {
        let chosen = pairs
            .iter()
            .find(|(key, _)| key == LANG)
            .and_then(|(_, value)| Lang::from_code(value));
        match chosen {
            Some(lang) => Site {
                lang,
                explicit: true,
            },
            None => Site {
                lang: Lang::negotiate(headers),
                explicit: false,
            },
        }
    }

    pub fn texts(&self) -> &'static Texts {
        self.lang.texts()
    }

    /// A link to `path` with `params` (form-encoded), and the language when chosen.
    pub fn href<'a>(
        &self,
        path: &str,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in params {
            if key != LANG {
                query.append_pair(key, value);
            }
        }
        if self.explicit {
            query.append_pair(LANG, self.lang.code());
        }
        let query = query.finish();
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    }

    /// The hidden field a GET form needs to keep the chosen language.
    pub fn lang_field(&self) -> Option<&'static str> {
        self.explicit.then(|| self.lang.code())
    }
}

/// The query parameters of a page, strictly decoded (a bad one is a 400 page).
pub fn pairs_of(raw: Option<&str>, headers: &HeaderMap) -> Result<Vec<(String, String)>, Response> {
    query_pairs(raw).map_err(|error| {
        let site = Site::of(&[], headers);
        error_page(
            site,
            StatusCode::BAD_REQUEST,
            site.texts().error_bad_request,
            &error.to_string(),
            "/",
            &[],
        )
    })
}

/// The fields of the layout every page extends.
pub struct Layout {
    pub lang: &'static str,
    pub title: String,
    pub stylesheet: &'static str,
    pub script: &'static str,
    pub home: String,
    pub catalogue: String,
    pub audit: String,
    pub inventory: String,
    pub switch_href: String,
    pub switch_lang: &'static str,
    pub lang_field: Option<&'static str>,
    /// The signed-in person (with the CSRF token of the sign-out form).
    pub account: Option<super::session::Account>,
    /// The sign-in link (back to this page), when a sign-in is configured.
    pub sign_in: Option<String>,
}

impl Layout {
    /// The layout of the page at `path` with query `pairs` (the language
    /// switch links to the same page in the other language).
    pub fn new(site: Site, title: String, path: &str, pairs: &[(String, String)]) -> Layout {
        let other = site.lang.other();
        let identity = super::session::current();
        let here = site.href(
            path,
            pairs
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        );
        let sign_in = (identity.sign_in && identity.account.is_none())
            .then(|| site.href("/login", [("return_to", here.as_str())]));
        let switch = Site {
            lang: other,
            explicit: true,
        };
        Layout {
            lang: site.lang.code(),
            title,
            stylesheet: &STYLESHEET.path,
            script: &SCRIPT.path,
            home: site.href("/", []),
            catalogue: site.href("/datasets", []),
            audit: site.href("/audit", []),
            inventory: site.href("/inventory", []),
            switch_href: switch.href(
                path,
                pairs
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            ),
            switch_lang: other.code(),
            lang_field: site.lang_field(),
            account: identity.account,
            sign_in,
        }
    }
}

/// A rendered page with the pages' headers: HTML, no caching by shared
/// caches (what a page shows depends on who asks), a policy that lets the
/// page load only its own assets.
pub fn respond(status: StatusCode, template: &impl Template) -> Response {
    let body = match template.render() {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "page template failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "page unavailable").into_response();
        }
    };
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[derive(Template)]
#[template(path = "error.html", config = "src/web/askama.toml")]
struct ErrorPage<'a> {
    layout: Layout,
    t: &'static Texts,
    message: &'a str,
}

/// An error as a page: `title` as its heading, `message` below it.
pub fn error_page(
    site: Site,
    status: StatusCode,
    title: &str,
    message: &str,
    path: &str,
    pairs: &[(String, String)],
) -> Response {
    let page = ErrorPage {
        layout: Layout::new(site, title.to_owned(), path, pairs),
        t: site.texts(),
        message,
    };
    respond(status, &page)
}

/// Refuses a dashboard unless the caller may do `action`: 401 with
/// `sign_in_needed` for an anonymous visitor, 403 with `not_allowed` for a
/// signed-in one, as an error page; `None` when allowed.
pub fn refuse_unless(
    state: &crate::http::state::AppState,
    context: &crate::http::context::RequestContext,
    action: crate::policy::Action,
    site: Site,
    path: &str,
    (sign_in_needed, not_allowed): (&str, &str),
) -> Option<Response> {
    if crate::http::guard::require(state, context, action).is_ok() {
        return None;
    }
    let (status, message) = if context.caller.is_anonymous() {
        (StatusCode::UNAUTHORIZED, sign_in_needed)
    } else {
        (StatusCode::FORBIDDEN, not_allowed)
    };
    Some(error_page(
        site,
        status,
        site.texts().error_forbidden,
        message,
        path,
        &[],
    ))
}

/// The page of a dataset the visitor may not know of (or that does not exist).
pub fn not_found(site: Site, path: &str) -> Response {
    let texts = site.texts();
    error_page(
        site,
        StatusCode::NOT_FOUND,
        texts.error_not_found,
        texts.error_not_found_detail,
        path,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(pairs: &[(&str, &str)], accept: Option<&str>) -> Site {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT_LANGUAGE, accept.parse().unwrap());
        }
        Site::of(&pairs, &headers)
    }

    /// `?lang=` wins over the header and is kept in links; negotiated languages are not.
    #[test]
    fn links_keep_a_chosen_language() {
        let chosen = site(&[("lang", "en")], Some("fr"));
        assert_eq!(chosen.lang, Lang::En);
        assert_eq!(
            chosen.href("/datasets", [("q", "vélo"), ("lang", "fr")]),
            "/datasets?q=v%C3%A9lo&lang=en"
        );
        let negotiated = site(&[], Some("en"));
        assert_eq!(negotiated.lang, Lang::En);
        assert_eq!(negotiated.href("/datasets", []), "/datasets");
        let unknown = site(&[("lang", "de")], None);
        assert_eq!(unknown.lang, Lang::Fr);
        assert_eq!(unknown.lang_field(), None);
    }
}
