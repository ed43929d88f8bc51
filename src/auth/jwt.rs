//! JWT checks shared by external and gateway tokens: the shape and header
//! are checked before any key is chosen, then `jsonwebtoken` verifies the
//! signature and the time, issuer and audience claims.
//!
//! The issuer is read from the UNVERIFIED payload only to choose the keys;
//! the signature and every claim are then verified. Key-carrying headers
//! (`jku`, `x5u`, `jwk`, `x5c`) are ignored and never fetched.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::caller::AuthFailure;

/// Largest accepted header segment (base64url), in bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Largest accepted token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// Headers that would tell a verifier where to find a key: never followed.
const KEY_LOCATION_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "x5c"];

/// A token whose shape and header are acceptable, not yet verified.
pub(crate) struct Unverified {
    pub header: Header,
    /// `iss` of the unverified payload: only used to choose keys.
    pub issuer: Option<String>,
}

/// Checks the token's shape and header, and reads the unverified issuer.
pub(crate) fn inspect(token: &str) -> Result<Unverified, AuthFailure> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthFailure::new(
            "token_too_large",
            "the token is larger than 32 KiB",
        ));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(AuthFailure::new(
            "malformed",
            "a JWT has three dot-separated parts",
        ));
    }
    if parts[0].len() > MAX_HEADER_BYTES {
        return Err(AuthFailure::new(
            "header_too_large",
            "the token header is larger than 8 KiB",
        ));
    }
    let header_json = decode_json_part(parts[0])
        .map_err(|why| AuthFailure::new("malformed", format!("token header: {why}")))?;
    let algorithm = header_json
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthFailure::new("malformed", "the token header has no `alg`"))?;
    if algorithm.eq_ignore_ascii_case("none") {
        return Err(AuthFailure::new(
            "alg_none",
            "unsigned tokens (`alg: none`) are refused",
        ));
    }
    if header_json.contains_key("crit") {
        return Err(AuthFailure::new(
            "unsupported_crit",
            "the token header has critical extensions (`crit`) this gateway does not implement",
        ));
    }
    let header: Header =
        serde_json::from_value(Value::Object(header_json.clone())).map_err(|_| {
            AuthFailure::new("unsupported_alg", "the token's algorithm is not supported")
        })?;
    for name in KEY_LOCATION_HEADERS {
        if header_json.contains_key(name) {
            tracing::debug!(
                header = name,
                "ignoring a key-location header: keys come from the issuer's configuration only"
            );
        }
    }
    let payload = decode_json_part(parts[1])
        .map_err(|why| AuthFailure::new("malformed", format!("token payload: {why}")))?;
    if parts[2].is_empty() {
        return Err(AuthFailure::new("malformed", "the token has no signature"));
    }
    let issuer = payload
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Unverified { header, issuer })
}

fn decode_json_part(part: &str) -> Result<Map<String, Value>, &'static str> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "not base64url")?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err("not a JSON object"),
    }
}

/// What a token must satisfy besides its signature.
pub(crate) struct Expectations<'a> {
    pub algorithm: Algorithm,
    pub issuer: &'a str,
    pub audiences: &'a [String],
    pub leeway_seconds: u64,
}

impl Expectations<'_> {
    fn validation(&self) -> Validation {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = self.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[self.issuer]);
        validation.set_audience(self.audiences);
        validation
    }
}

/// Verifies the token with each candidate key in turn; the first key whose
/// signature matches decides (its claim errors are reported).
pub(crate) fn verify(
    token: &str,
    keys: &[DecodingKey],
    expect: &Expectations<'_>,
) -> Result<Map<String, Value>, AuthFailure> {
    let validation = expect.validation();
    let mut failure = AuthFailure::new(
        "bad_signature",
        "the token's signature does not match the issuer's keys",
    );
    for key in keys {
        match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(error) => match error.kind() {
                ErrorKind::InvalidSignature => continue,
                _ => {
                    failure = describe(error.kind());
                    if failure.reason != "bad_signature" {
                        return Err(failure);
                    }
                }
            },
        }
    }
    Err(failure)
}

/// A refusal for each `jsonwebtoken` error.
fn describe(kind: &ErrorKind) -> AuthFailure {
    match kind {
        ErrorKind::ExpiredSignature => AuthFailure::new("expired", "the token has expired (`exp`)"),
        ErrorKind::ImmatureSignature => {
            AuthFailure::new("not_yet_valid", "the token is not valid yet (`nbf`)")
        }
        ErrorKind::InvalidIssuer => AuthFailure::new(
            "wrong_issuer",
            "the token's issuer (`iss`) is not the expected one",
        ),
        ErrorKind::InvalidAudience => AuthFailure::new(
            "wrong_audience",
            "the token is not meant for this gateway (`aud`)",
        ),
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthFailure::new("missing_claim", format!("the token has no `{claim}` claim"))
        }
        ErrorKind::InvalidClaimFormat(claim) => AuthFailure::new(
            "malformed",
            format!("the token's `{claim}` claim has the wrong type"),
        ),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEddsaKey => AuthFailure::new(
            "key_mismatch",
            "the token's algorithm does not fit the issuer's key",
        ),
        ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidToken => {
            AuthFailure::new("malformed", "the token is not a well-formed JWT")
        }
        _ => AuthFailure::new("bad_signature", "the token's signature cannot be verified"),
    }
}

/// Reads a claim at a dotted path (`realm_access.roles`).
pub(crate) fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('.');
    let mut value = claims.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// A string (or number) claim.
pub(crate) fn text_claim(claims: &Map<String, Value>, path: &str) -> Option<String> {
    match claim_at(claims, path)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Roles at `path` (an array of strings or a space-separated string); with a
/// prefix, only roles carrying it are kept, prefix removed.
pub(crate) fn roles_at(
    claims: &Map<String, Value>,
    path: &str,
    prefix: Option<&str>,
) -> Vec<String> {
    let raw: Vec<String> = match claim_at(claims, path) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .filter_map(|role| match prefix {
            Some(prefix) => role.strip_prefix(prefix).map(str::to_owned),
            None => Some(role),
        })
        .filter(|role| !role.is_empty())
        .collect()
}

/// A list of strings claim (`datasets`).
pub(crate) fn string_list(claims: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    claims.get(name)?.as_array().map(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn part(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    /// Shapes and headers are refused before any key is looked at.
    #[test]
    fn inspects_shape_and_header() {
        let payload = part(&json!({"iss": "https://idp"}));
        let token = |header: Value| format!("{}.{payload}.c2ln", part(&header));
        let reason = |token: &str| inspect(token).err().map(|failure| failure.reason);
        assert_eq!(reason("garbage"), Some("malformed"));
        assert_eq!(reason("a.b.c"), Some("malformed"));
        assert_eq!(reason(&token(json!({"alg": "none"}))), Some("alg_none"));
        assert_eq!(reason(&token(json!({"alg": "NONE"}))), Some("alg_none"));
        assert_eq!(
            reason(&token(json!({"alg": "XS999"}))),
            Some("unsupported_alg")
        );
        assert_eq!(
            reason(&token(json!({"alg": "RS256", "crit": ["exp"]}))),
            Some("unsupported_crit")
        );
        assert_eq!(reason(&token(json!({"typ": "JWT"}))), Some("malformed"));
        let huge = json!({"alg": "RS256", "pad": "x".repeat(MAX_HEADER_BYTES)});
        assert_eq!(reason(&token(huge)), Some("header_too_large"));
        assert_eq!(
            reason(&format!("{}.{payload}.", part(&json!({"alg": "RS256"})))),
            Some("malformed")
        );
        let fine = inspect(&token(
            json!({"alg": "RS256", "kid": "k", "jku": "https://evil/jwks"}),
        ))
        .unwrap();
        assert_eq!(fine.issuer.as_deref(), Some("https://idp"));
        assert_eq!(fine.header.kid.as_deref(), Some("k"));
    }

    /// Roles come from a dotted path, as an array or a string, filtered by prefix.
    #[test]
    fn maps_roles_and_claims() {
        let claims = json!({
            "realm_access": {"roles": ["passerelle-agent", "offline_access", "passerelle-"]},
            "scope": "a b",
            "n": 5,
            "datasets": ["x", 1, "y"]
        });
        let claims = claims.as_object().unwrap();
        assert_eq!(
            roles_at(claims, "realm_access.roles", Some("passerelle-")),
            vec!["agent"]
        );
        assert_eq!(roles_at(claims, "realm_access.roles", None).len(), 3);
        assert_eq!(roles_at(claims, "scope", None), vec!["a", "b"]);
        assert!(roles_at(claims, "missing.path", None).is_empty());
        assert_eq!(text_claim(claims, "n").as_deref(), Some("5"));
        assert_eq!(
            string_list(claims, "datasets"),
            Some(vec!["x".to_owned(), "y".to_owned()])
        );
    }
}
