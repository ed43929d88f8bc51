//! What happens to every API request around its handler: a request id, the
//! caller's identity (401 on bad credentials, even for open data), and the
//! audit event, made durable before the response starts (or, for a page of
//! a level whose durability is `buffered`, queued and committed within
//! `audit.buffer_ms`). If the audit log cannot be written, closed data is
//! refused with 503 (fail closed).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use tracing::Instrument;

use super::context::{self, AccessRecord, RequestContext, RequestInfo, rows_sent};
use super::dataset_id::dataset_in_path;
use super::observe::{self, RequestEnd, RequestSummary};
use super::problem::{Problem, ProblemKind};
use super::state::AppState;
use crate::audit::{self, Event};
use crate::auth::Caller;
use crate::domain::text;
use crate::format::OutputFormat;
use crate::telemetry::metrics;

/// How a request says who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identify {
    /// The API: a bearer token or an API key, never a cookie.
    Bearer,
    /// The pages: the session cookie of a sign-in, never a bearer token.
    Session,
}

/// The middleware on every `/api/v1` route (and unknown routes). The
/// request id comes from the edge, which also sets `X-Request-Id`.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    track_as(state, request, next, Identify::Bearer).await
}

/// The middleware on every page: as [`track`], but the caller is the
/// signed-in person of the session cookie (or anonymous).
pub async fn track_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    track_as(state, request, next, Identify::Session).await
}

async fn track_as(state: AppState, request: Request, next: Next, identify: Identify) -> Response {
    let started = Instant::now();
    let request_id = context::request_id_of(&request);
    let info = RequestInfo {
        request_id: request_id.clone(),
        path: request.uri().path().to_owned(),
    };
    let summary = RequestSummary::of(&request, &request_id, started);
    let span = tracing::debug_span!("request", request_id = %request_id, route = %summary.route);
    let mut response = context::scope(
        info,
        serve(state, request, summary, next, identify).instrument(span),
    )
    .await;
    // No cache keeps an API answer unless its handler says so (open data).
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(super::caching::PRIVATE));
    response
}

async fn serve(
    state: AppState,
    mut request: Request,
    summary: RequestSummary,
    next: Next,
    identify: Identify,
) -> Response {
    let request_id = summary.request_id.clone();
    let started = summary.started;
    let facts = RequestFacts::of(&state, &request);
    let mut page_identity = crate::web::session::PageIdentity {
        account: None,
        sign_in: state.settings.web.oidc.is_some(),
    };
    let (caller, failure) = match identify {
        Identify::Bearer => match state
            .authenticator
            .authenticate(request.headers())
            .instrument(tracing::debug_span!("authenticate", request_id = %request_id))
            .await
        {
            Ok(caller) => (caller, None),
            Err(failure) => (Caller::anonymous(), Some(failure)),
        },
        Identify::Session => {
            match crate::web::session::identify(&state.settings, &state.store, request.headers())
                .await
            {
                Some((caller, mut account)) => {
                    account.can_audit = state
                        .policy
                        .allows_global(&caller.roles, crate::policy::Action::AuditRead);
                    account.can_inventory = state
                        .policy
                        .allows_global(&caller.roles, crate::policy::Action::InventoryRead);
                    page_identity.account = Some(account);
                    (caller, None)
                }
                None => (Caller::anonymous(), None),
            }
        }
    };
    let context = RequestContext::new(&request_id, caller).with_client_ip(facts.ip);
    // Counted once the caller is known (a refused credential counts as
    // anonymous, by address), before any work is done for the request.
    let limits = super::limits::check(&state, &context).await;
    context.note(|record| record.quota = limits.charge());
    let response = match (limits.refused(&context), failure) {
        (Some(refused), _) => refused,
        (None, Some(failure)) => {
            metrics::auth_failure(failure.reason);
            context.note(|record| {
                record.decision = Some(false);
                record.rule = Some("authentication failed".to_owned());
                record.auth_failure = Some(failure.detail.clone());
                // A refused token never sees data: the refusal itself is not closed data.
                record.closed_data = false;
            });
            Problem::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid-token",
                "Invalid credentials",
                failure.detail.clone(),
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                &format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    failure.detail.replace(['"', '\\'], "'")
                ),
            )
            .into_response()
        }
        (None, None) => {
            request.extensions_mut().insert(context.clone());
            if let Some(ip) = facts.ip {
                request
                    .extensions_mut()
                    .insert(crate::auth::ClientAddress(ip));
            }
            crate::web::session::scope(page_identity, next.run(request)).await
        }
    };
    // What a page sent is known now (an export's only when it ends): it
    // counts against the daily quota before the caller has it, and the
    // RateLimit fields already tell what remains after it.
    // An answer held in memory is measured as it goes on the wire
    // (compressed); a streamed one by its completion event.
    let (mut response, bytes) = if context.record().streamed || facts.method == "HEAD" {
        (response, None)
    } else {
        measured(response).await
    };
    let sent = page_sent(&context.record(), &response, bytes);
    if let (Some(charge), Some(sent)) = (&context.record().quota, sent) {
        charge.spend(sent.rows, sent.bytes).await;
    }
    limits.annotate(&mut response, sent.unwrap_or_default());
    let status = response.status().as_u16();
    let decided = context.record().decision;
    if status >= 400 && decided != Some(false) {
        // Refused by a layer that noted no reason (a malformed query, a
        // format nobody serves, a range past the end, a wrong method), maybe
        // after the policy allowed access: the caller got no data, so the
        // event is a refusal, named by the problem the caller received.
        let when = if decided == Some(true) {
            "refused after access was granted"
        } else {
            "refused"
        };
        let reason = match response.extensions().get::<ProblemKind>() {
            Some(ProblemKind(kind)) => format!("{when}: {kind}"),
            None => format!("{when}: status {status}"),
        };
        context.note(|record| {
            record.decision = Some(false);
            record.rule = Some(reason);
        });
    }
    let record = context.record();
    let mut event = new_event(
        &request_id,
        &context.caller,
        &facts,
        &record,
        response.status().as_u16(),
        started,
    );
    event.bytes = bytes;
    metrics::decision(event.action.as_str(), event.decision.as_str());
    let mut end = RequestEnd {
        status: response.status().as_u16(),
        subject: context.caller.subject.clone(),
        dataset: served_dataset(&state, &record, response.status()),
        format: None,
        rows: rows_sent(&record).and_then(|rows| u64::try_from(rows).ok()),
        bytes: bytes.and_then(|bytes| u64::try_from(bytes).ok()),
    };
    if end.dataset.is_some() {
        end.format = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(OutputFormat::from_content_type);
    }
    // A page of a dataset whose level is buffered does not wait for its
    // event; an export's event is durable whatever the level (its
    // completion event refers to it by sequence), and so is every change
    // (publishing, classification) and sign-in, whatever the dataset.
    let reads = matches!(
        event.action,
        audit::Action::Read | audit::Action::Aggregate | audit::Action::Metadata
    );
    let buffered = !record.streamed
        && reads
        && record.access.is_some_and(|level| {
            state.settings.audit.durability.of(level) == audit::Durability::Buffered
        });
    let recorded = if buffered {
        state.audit.record_buffered(event).await.map(|()| None)
    } else {
        state.audit.record(event).await.map(Some)
    };
    let receipt = match recorded {
        Ok(Some(receipt)) if record.streamed => receipt,
        Ok(_) => {
            observe::finish(&summary, &end);
            return response;
        }
        Err(error) => {
            tracing::error!(%request_id, %error, "audit log unavailable");
            if record.closed_data || !state.settings.audit.serve_open_data_without_audit {
                let refusal = Problem::unavailable(
                    "the access log cannot be written right now, so no data is served; try again shortly",
                )
                .into_response();
                let end = RequestEnd {
                    status: refusal.status().as_u16(),
                    dataset: None,
                    rows: None,
                    ..end
                };
                observe::finish(&summary, &end);
                return refusal;
            }
            observe::finish(&summary, &end);
            return response;
        }
    };
    // A streamed export: complete its event (and its log line) when the body
    // ends or is cut off.
    super::streamed::complete_when_done(
        &state.audit,
        &state.lifecycle,
        receipt,
        record,
        response,
        (summary, end),
    )
}

/// The bytes of an answer held in memory, as they go on the wire. A
/// compressed one is compressed here, before the audit event is written,
/// so that the event records its size (and the answer gets a
/// `Content-Length`); an uncompressed one knows its size already.
async fn measured(response: Response) -> (Response, Option<i64>) {
    if let Some(size) = response.body().size_hint().exact() {
        return (response, i64::try_from(size).ok());
    }
    if !response.headers().contains_key(header::CONTENT_ENCODING) {
        return (response, None);
    }
    let (mut parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            let size = i64::try_from(bytes.len()).ok();
            (Response::from_parts(parts, Body::from(bytes)), size)
        }
        Err(error) => {
            tracing::error!(%error, "an answer could not be compressed");
            (
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal-error",
                    "Internal error",
                    "the gateway could not answer; the incident is logged with this request id",
                )
                .into_response(),
                None,
            )
        }
    }
}

/// The catalogue dataset whose rows the answer carries, if any: only a
/// successful answer of a dataset the catalogue holds (metrics label it, so
/// an id merely read from a refused request's path never becomes a label).
fn served_dataset(state: &AppState, record: &AccessRecord, status: StatusCode) -> Option<String> {
    let dataset = record.dataset.as_deref()?;
    let action = record.action?;
    let served = status.is_success() || status == StatusCode::NOT_MODIFIED;
    (served
        && matches!(action, audit::Action::Read | audit::Action::Export)
        && state.catalog.current().get(dataset).is_some())
    .then(|| dataset.to_owned())
}

/// The rows and bytes (as sent on the wire) of a data answer that is not
/// streamed (`None` for anything else: an export is charged when it ends).
fn page_sent(
    record: &AccessRecord,
    response: &Response,
    bytes: Option<i64>,
) -> Option<crate::limits::Usage> {
    if record.streamed || !response.status().is_success() {
        return None;
    }
    let rows = rows_sent(record)?;
    Some(crate::limits::Usage {
        rows: u64::try_from(rows).unwrap_or(0),
        bytes: bytes
            .and_then(|bytes| u64::try_from(bytes).ok())
            .unwrap_or(0),
    })
}

/// Request facts known before the handler runs.
struct RequestFacts {
    method: String,
    path: String,
    query: Option<String>,
    user_agent: Option<String>,
    ip: Option<IpAddr>,
}

/// Longest `User-Agent` recorded, in characters.
const MAX_USER_AGENT_CHARS: usize = 300;

impl RequestFacts {
    /// What the request says about itself, as sent. The path and query are
    /// cut at `server.max_uri_bytes` (only a refused request is longer);
    /// the `User-Agent` is decoded as UTF-8 where it is, other bytes
    /// escaped (text escaping happens where the event is built).
    fn of(state: &AppState, request: &Request) -> RequestFacts {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let ip = client_ip(
            peer,
            request.headers(),
            &state.settings.server.trusted_proxies,
        );
        let max_uri_bytes = state.settings.server.max_uri_bytes;
        RequestFacts {
            method: request.method().to_string(),
            path: text::cut(request.uri().path(), max_uri_bytes).to_owned(),
            query: request
                .uri()
                .query()
                .map(|query| text::cut(query, max_uri_bytes).to_owned()),
            user_agent: request
                .headers()
                .get(header::USER_AGENT)
                .map(|value| text::from_bytes(value.as_bytes(), MAX_USER_AGENT_CHARS)),
            ip,
        }
    }
}

/// The audit event of a request refused before it reached a route (too
/// long a URI, too many header bytes, too large a body): the caller is not
/// authenticated for it, so the event is anonymous; `rule` names the limit.
pub(super) fn refusal_event(
    state: &AppState,
    request: &Request,
    request_id: &str,
    status: StatusCode,
    rule: String,
    started: Instant,
) -> Event {
    let record = AccessRecord {
        decision: Some(false),
        rule: Some(rule),
        ..AccessRecord::default()
    };
    new_event(
        request_id,
        &Caller::anonymous(),
        &RequestFacts::of(state, request),
        &record,
        status.as_u16(),
        started,
    )
}

fn new_event(
    request_id: &str,
    caller: &Caller,
    facts: &RequestFacts,
    record: &AccessRecord,
    status: u16,
    started: Instant,
) -> Event {
    let caller = record.signed_in.as_ref().unwrap_or(caller);
    Event {
        time: chrono::Utc::now(),
        request_id: request_id.to_owned(),
        subject: Some(caller.subject.clone()),
        org: caller.org.clone(),
        roles: caller.roles.clone(),
        auth_method: auth_method(caller),
        // The client a request names (the token endpoint's), else the caller's.
        client_id: record
            .client_id
            .clone()
            .or_else(|| caller.client_id.clone()),
        token_id: caller.token_id.clone(),
        ip: facts.ip.map(|ip| ip.to_string()),
        user_agent: facts.user_agent.clone(),
        method: facts.method.clone(),
        path: facts.path.clone(),
        query: facts.query.clone(),
        // The dataset the path names, whatever the outcome: an auditor
        // filtering on it sees the forged-token and wrong-method attempts too.
        dataset: record
            .dataset
            .clone()
            .or_else(|| dataset_in_path(&facts.path)),
        action: record.action.unwrap_or(audit::Action::Request),
        // A response of 400 or more gave the caller nothing: never `allow`.
        decision: if status < 400 && record.decision.unwrap_or(true) {
            audit::Decision::Allow
        } else {
            audit::Decision::Deny
        },
        rule: record.rule.clone().or_else(|| record.auth_failure.clone()),
        view: record.view.clone(),
        status,
        rows: rows_sent(record),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        purpose: record.purpose.clone(),
        changes: record.changes.clone(),
        ..Event::default()
    }
}

/// The audit's name for how the caller authenticated: the gateway's own
/// tokens are `client_credentials` when a partner client obtained them, `jwt`
/// when minted for a person (development tokens).
fn auth_method(caller: &Caller) -> audit::AuthMethod {
    use crate::auth::AuthMethod as Method;
    match caller.auth_method {
        Method::Anonymous => audit::AuthMethod::Anonymous,
        Method::ExternalJwt => audit::AuthMethod::Jwt,
        Method::GatewayToken if caller.client_id.is_none() => audit::AuthMethod::Jwt,
        Method::GatewayToken => audit::AuthMethod::ClientCredentials,
        Method::ApiKey => audit::AuthMethod::ApiKey,
    }
}

/// The client's address: the peer, or the `X-Forwarded-For` hop just before
/// the first trusted proxy, only when the peer is a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    // Walk from the nearest hop back while hops are trusted proxies.
    forwarded
        .iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .copied()
        .or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X-Forwarded-For is believed only from trusted proxies.
    #[test]
    fn resolves_client_ip() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.7".parse().unwrap(),
        );
        assert_eq!(
            client_ip(Some(client), &headers, &[proxy]),
            Some(client),
            "untrusted peer"
        );
        assert_eq!(
            client_ip(Some(proxy), &headers, &[proxy]),
            Some("203.0.113.7".parse().unwrap()),
            "nearest untrusted hop"
        );
        assert_eq!(
            client_ip(Some(proxy), &HeaderMap::new(), &[proxy]),
            Some(proxy)
        );
    }
}
