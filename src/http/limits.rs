//! Rate limits and quotas at the HTTP edge: every API request is counted
//! against its caller's limits (see `crate::limits`) once the caller is
//! known; a request over a limit is a 429 problem with `Retry-After`, audited
//! as a deny naming the limit. Every answer tells the caller where it stands
//! with the IETF `RateLimit-Policy` and `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers, structured-field syntax):
//!
//! ```text
//! RateLimit-Policy: "anonymous";q=100;w=2
//! RateLimit: "anonymous";r=99;t=1
//! ```
//!
//! A rate of `requests` per `per_seconds` with a `burst` is advertised as
//! `q` = the burst, `w` = the seconds a full burst takes to come back; `r` is
//! what may be sent at once now, `t` the seconds until the full burst is
//! back (on a refusal: until the next request is allowed, as `Retry-After`).
//! Daily quotas are `<policy>-daily-rows` and `<policy>-daily-bytes`
//! (`w=86400`, `t` until the next UTC midnight); bytes carry the registered
//! unit `qu="content-bytes"`, rows (no registered unit) `passerelle-unit="rows"`.
//! Callers without limits (staff by default) get no such fields.

use std::sync::Once;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::context::RequestContext;
use super::problem::Problem;
use super::state::AppState;
use crate::limits::policy::DAY_SECONDS;
use crate::limits::{Admission, QuotaCharge, QuotaUnit, Refusal, Usage};

/// `RateLimit-Policy`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// What the limits said about one request.
pub struct Checked {
    admission: Option<Admission>,
    refusal: Option<Refusal>,
}

/// Counts the request against its caller's limits.
pub async fn check(state: &AppState, context: &RequestContext) -> Checked {
    let admission = state.limits.admit(&context.caller, context.client_ip).await;
    let refusal = admission.as_ref().and_then(Admission::refusal);
    Checked { admission, refusal }
}

impl Checked {
    /// The 429 of a request over a limit, noted for the audit and counted.
    pub fn refused(&self, context: &RequestContext) -> Option<Response> {
        let refusal = self.refusal.as_ref()?;
        context.note(|record| {
            record.decision = Some(false);
            record.rule = Some(refusal.rule.clone());
            record.closed_data = false;
        });
        count_refusal(&refusal.policy);
        let quota = refusal.policy.contains("-daily-");
        let (slug, title, detail) = if quota {
            (
                "quota-exceeded",
                "Daily quota used",
                format!(
                    "{}; it starts again at midnight UTC, in {} s",
                    refusal.rule, refusal.retry_after
                ),
            )
        } else {
            (
                "rate-limited",
                "Too many requests",
                format!("{}; retry in {} s", refusal.rule, refusal.retry_after),
            )
        };
        let problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, slug, title, detail)
            .with_header(header::RETRY_AFTER, &refusal.retry_after.to_string())
            .with_hint(
                "the RateLimit and RateLimit-Policy headers tell how much may be sent, and when",
            );
        Some(problem.into_response())
    }

    /// What the request's data is charged to, when its caller has a daily quota.
    pub fn charge(&self) -> Option<QuotaCharge> {
        self.admission
            .as_ref()
            .and_then(|admission| admission.charge.clone())
    }

    /// Adds `RateLimit-Policy` and `RateLimit` to the answer; the daily
    /// quotas remaining are net of `sent`, what this answer sends.
    pub fn annotate(&self, response: &mut Response, sent: Usage) {
        let Some(admission) = &self.admission else {
            return;
        };
        let mut admission = admission.clone();
        for quota in &mut admission.quotas {
            quota.used = quota.used.saturating_add(match quota.unit {
                QuotaUnit::Rows => sent.rows,
                QuotaUnit::Bytes => sent.bytes,
            });
        }
        let (policies, limits) = fields(&admission);
        let headers = response.headers_mut();
        for (name, value) in [(RATELIMIT_POLICY, policies), (RATELIMIT, limits)] {
            if value.is_empty() {
                continue;
            }
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

/// The values of `RateLimit-Policy` and `RateLimit`.
fn fields(admission: &Admission) -> (String, String) {
    let name = admission.policy.name;
    let mut policies = Vec::new();
    let mut limits = Vec::new();
    if let Some(rate) = admission.policy.rate {
        policies.push(format!(
            "\"{name}\";q={};w={}",
            rate.burst,
            rate.window_seconds()
        ));
        if let Some(check) = admission.rate {
            let t = if check.allowed {
                whole_seconds(check.reset)
            } else {
                whole_seconds(check.retry_after).max(1)
            };
            limits.push(format!("\"{name}\";r={};t={t}", check.remaining));
        }
    }
    for quota in &admission.quotas {
        let unit = quota.unit.as_str();
        let unit_parameter = match quota.unit {
            QuotaUnit::Bytes => "qu=\"content-bytes\"",
            QuotaUnit::Rows => "passerelle-unit=\"rows\"",
        };
        policies.push(format!(
            "\"{name}-daily-{unit}\";q={};w={DAY_SECONDS};{unit_parameter}",
            quota.limit
        ));
        limits.push(format!(
            "\"{name}-daily-{unit}\";r={};t={}",
            quota.limit.saturating_sub(quota.used),
            admission.quota_reset
        ));
    }
    (policies.join(", "), limits.join(", "))
}

fn whole_seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Documents the 429 every API operation may answer, with its headers
/// (the read endpoint's own 429, for exports, is completed).
pub struct RateLimitResponses;

impl utoipa::Modify for RateLimitResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, ResponseBuilder, Type,
        };
        let text = |description: &str| -> utoipa::openapi::RefOr<utoipa::openapi::Header> {
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some(description))
                .build()
                .into()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The routes behind the request middleware (health, metrics and
            // this description are not).
            if !(path.starts_with("/api/v1/") || path.starts_with("/.well-known/")) {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let limited = "over a rate limit or daily quota of the caller (`[limits]`)";
                // An operation's own 429 (too many exports, failed token
                // requests) keeps its body type; the limits add theirs.
                let mut response = match operation.responses.responses.remove("429") {
                    Some(utoipa::openapi::RefOr::T(mut earlier)) => {
                        earlier.description = format!("{}; or {limited}", earlier.description);
                        earlier
                    }
                    _ => ResponseBuilder::new()
                        .description(format!("Too many requests: {limited}"))
                        .build(),
                };
                response
                    .content
                    .entry("application/problem+json".to_owned())
                    .or_insert_with(|| {
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ProblemDocument")))
                            .build()
                            .into()
                    });
                response.headers.insert(
                    "Retry-After".to_owned(),
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                        .description(Some("Seconds to wait"))
                        .build()
                        .into(),
                );
                response.headers.insert(
                    "RateLimit-Policy".to_owned(),
                    text("The caller's quota policies (draft-ietf-httpapi-ratelimit-headers), on every answer to a limited caller"),
                );
                response.headers.insert(
                    "RateLimit".to_owned(),
                    text("What remains under each policy, and for how long"),
                );
                operation
                    .responses
                    .responses
                    .insert("429".to_owned(), response.into());
            }
        }
    }
}

/// `passerelle_rate_limit_refusals_total{policy}`: the policy names are the
/// configured classes, `client`, and their `-daily-rows`/`-daily-bytes`.
fn count_refusal(policy: &str) {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_counter!(
            "passerelle_rate_limit_refusals_total",
            "Requests refused with 429 by a rate limit or a daily quota, by the policy that fired"
        );
    });
    metrics::counter!("passerelle_rate_limit_refusals_total", "policy" => policy.to_owned())
        .increment(1);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::limits::policy::CallerClass;
    use crate::limits::{LimitSettings, QuotaState, RateCheck};

    fn admission(check: RateCheck) -> Admission {
        let mut settings = LimitSettings::default();
        settings.anonymous.burst = Some(50);
        Admission {
            policy: settings.policy(CallerClass::Anonymous, None),
            rate: Some(check),
            quotas: Vec::new(),
            quota_reset: 100,
            charge: None,
        }
    }

    /// The fields in the draft's structured-field syntax.
    #[test]
    fn formats_the_draft_fields() {
        let allowed = admission(RateCheck {
            allowed: true,
            remaining: 49,
            retry_after: Duration::ZERO,
            reset: Duration::from_millis(20),
        });
        assert_eq!(
            fields(&allowed),
            (
                "\"anonymous\";q=50;w=1".to_owned(),
                "\"anonymous\";r=49;t=1".to_owned()
            )
        );
        let refused = admission(RateCheck {
            allowed: false,
            remaining: 0,
            retry_after: Duration::from_millis(2500),
            reset: Duration::from_secs(1),
        });
        assert_eq!(fields(&refused).1, "\"anonymous\";r=0;t=3");
    }

    /// Daily quotas are items of their own, bytes in the registered unit.
    #[test]
    fn formats_daily_quotas() {
        let mut partner = admission(RateCheck {
            allowed: true,
            remaining: 3,
            retry_after: Duration::ZERO,
            reset: Duration::ZERO,
        });
        partner.quotas = vec![
            QuotaState {
                unit: QuotaUnit::Rows,
                limit: 10,
                used: 4,
            },
            QuotaState {
                unit: QuotaUnit::Bytes,
                limit: 1000,
                used: 1200,
            },
        ];
        let (policies, limits) = fields(&partner);
        assert_eq!(
            policies,
            "\"anonymous\";q=50;w=1, \"anonymous-daily-rows\";q=10;w=86400;passerelle-unit=\"rows\", \
             \"anonymous-daily-bytes\";q=1000;w=86400;qu=\"content-bytes\""
        );
        assert_eq!(
            limits,
            "\"anonymous\";r=3;t=0, \"anonymous-daily-rows\";r=6;t=100, \"anonymous-daily-bytes\";r=0;t=100"
        );
    }
}
