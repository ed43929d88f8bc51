//! Staff sign-in on the pages (OpenID Connect, code flow with PKCE) against
//! the test provider of `oidc_provider.rs`, on both stores: the full flow,
//! a wrong or replayed state, a wrong nonce, a session past its timeouts,
//! sign-out with its CSRF token, and a session cookie that never opens the API.

use reqwest::header;
use serde_json::{Value, json};

use crate::helpers::{StoreKind, TestApp, execute};
use crate::oidc_provider::{CLIENT_ID, spawn_app_with_sign_in};
use crate::test_both_stores;

/// An internal dataset (staff only).
const INTERNAL: &str = "/datasets/infractions-videoprotection";

/// What `/login` answers: the provider's URL and the login cookie's value.
async fn start(app: &TestApp, return_to: &str) -> (reqwest::Url, String) {
    let response = app
        .client
        .get(app.url(&format!(
            "/login?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", return_to)
                .finish()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let cookie = set_cookie(&response, "passerelle_login").expect("login cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(cookie.contains("Path=/login"), "{cookie}");
    let state = cookie_value(&cookie);
    (location, state)
}

/// The `Set-Cookie` of `name`, if any.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
        .unwrap()
}

/// The provider approves `user`: the callback URL it sends the browser to.
async fn approve(location: &reqwest::Url, user: &str) -> reqwest::Url {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = location.clone();
    url.query_pairs_mut().append_pair("user", user);
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

async fn callback(app: &TestApp, url: &reqwest::Url, login_cookie: &str) -> reqwest::Response {
    app.client
        .get(url.as_str())
        .header(header::COOKIE, format!("passerelle_login={login_cookie}"))
        .send()
        .await
        .unwrap()
}

/// Signs `user` in; the session cookie's value.
pub async fn sign_in(app: &TestApp, user: &str) -> String {
    let (location, state) = start(app, "/").await;
    let back = approve(&location, user).await;
    let response = callback(app, &back, &state).await;
    assert_eq!(response.status(), 303);
    cookie_value(&set_cookie(&response, "passerelle_session").expect("session cookie"))
}

async fn page(app: &TestApp, path: &str, session: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(session) = session {
        request = request.header(header::COOKIE, format!("passerelle_session={session}"));
    }
    request.send().await.unwrap()
}

/// The CSRF token of the sign-out form on a page.
fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .expect("a sign-out form")
        + 19;
    html[start..start + 64].to_owned()
}

async fn sign_in_events(app: &TestApp) -> Vec<Value> {
    app.audit_events("action=sign-in&limit=100").await
}

test_both_stores!(full_flow);

/// A member of staff signs in, reads an internal dataset's page as
/// themselves, and signs out; each step is audited.
async fn full_flow(kind: StoreKind) {
    let Some((app, provider)) = spawn_app_with_sign_in(kind).await else {
        return;
    };
    // Anonymous: a sign-in link back to the page, no data of the internal dataset.
    let anonymous = page(&app, INTERNAL, None).await.text().await.unwrap();
    assert!(
        anonymous.contains("href=\"/login?return_to=%2Fdatasets%2Finfractions-videoprotection\"")
    );
    assert!(
        !anonymous.contains("preview-table"),
        "no preview for a visitor"
    );

    let (location, state) = start(&app, INTERNAL).await;
    assert!(
        location
            .as_str()
            .starts_with(&format!("{}/authorize?", provider.issuer()))
    );
    let params: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["code_challenge"].len(), 43);
    assert_eq!(params["state"], state);
    assert_eq!(params["scope"], "openid profile");
    assert_eq!(params["redirect_uri"], app.url("/login/callback"));

    let back = approve(&location, "agent.dupont").await;
    let response = callback(&app, &back, &state).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], INTERNAL, "back to the page");
    let cookie = set_cookie(&response, "passerelle_session").unwrap();
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: no Secure attribute"
    );
    let cleared = set_cookie(&response, "passerelle_login").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let session = cookie_value(&cookie);
    assert_eq!(session.len(), 43);

    // The session is stored as a hash only.
    let stored = match &app.state.store {
        passerelle::store::Store::Sqlite(pool) => {
            sqlx::query_scalar::<_, String>("SELECT id_hash FROM web_sessions")
                .fetch_all(pool)
                .await
        }
        passerelle::store::Store::Postgres(pool) => {
            sqlx::query_scalar::<_, String>("SELECT id_hash FROM web_sessions")
                .fetch_all(pool)
                .await
        }
    }
    .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], session);

    let signed_in = page(&app, INTERNAL, Some(&session)).await;
    assert_eq!(signed_in.status(), 200);
    let request_id = signed_in.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = signed_in.text().await.unwrap();
    assert!(
        html.contains("<strong>agent.dupont</strong>"),
        "the header names the person"
    );
    assert!(
        html.contains("id=\"preview-table\""),
        "the preview is shown to staff"
    );
    assert!(
        !html.contains("/login?return_to"),
        "no sign-in link once signed in"
    );

    // The audit log: the sign-in names the person; the page read is theirs.
    let events = sign_in_events(&app).await;
    let signed = events
        .iter()
        .find(|event| event["rule"] == "signed in")
        .expect("sign-in event");
    assert_eq!(
        (
            &signed["subject"],
            &signed["decision"],
            &signed["auth_method"],
            &signed["status"]
        ),
        (
            &json!("agent.dupont"),
            &json!("allow"),
            &json!("jwt"),
            &json!(303)
        ),
        "{signed}"
    );
    assert_eq!(signed["roles"], json!(["anonymous", "agent"]));
    let read = app
        .audit_events("dataset=infractions-videoprotection&limit=100")
        .await
        .into_iter()
        .find(|event| event["request_id"] == request_id.as_str())
        .expect("the page's event");
    assert_eq!(
        (&read["subject"], &read["decision"]),
        (&json!("agent.dupont"), &json!("allow"))
    );
    assert!(read["token_id"].as_str().unwrap().starts_with("session:"));
    assert!(!read["token_id"].as_str().unwrap().contains(&session));

    // Sign out: without the CSRF token refused, with it done.
    let csrf = csrf_of(&html);
    let forged = app
        .client
        .post(app.url("/logout"))
        .header(header::COOKIE, format!("passerelle_session={session}"))
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        page(&app, INTERNAL, Some(&session)).await.status(),
        200,
        "still signed in"
    );
    let out = app
        .client
        .post(app.url("/logout"))
        .header(header::COOKIE, format!("passerelle_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(
        set_cookie(&out, "passerelle_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = page(&app, INTERNAL, Some(&session))
        .await
        .text()
        .await
        .unwrap();
    assert!(!after.contains("agent.dupont"), "the session is gone");
    let outs = app.audit_events("action=sign-out&limit=10").await;
    let rules: Vec<&Value> = outs.iter().map(|event| &event["rule"]).collect();
    assert!(rules.contains(&&json!("signed out")), "{rules:?}");
    assert!(
        rules.contains(&&json!("sign-out refused: bad_csrf")),
        "{rules:?}"
    );
}

test_both_stores!(bad_state);

/// A callback whose state is not the browser's, or is used twice, opens no session.
async fn bad_state(kind: StoreKind) {
    let Some((app, _provider)) = spawn_app_with_sign_in(kind).await else {
        return;
    };
    let (location, state) = start(&app, "/").await;
    let back = approve(&location, "agent.dupont").await;
    // Another browser's login cookie (a forged callback: login CSRF).
    let (_, other_state) = start(&app, "/").await;
    let forged = callback(&app, &back, &other_state).await;
    assert_eq!(forged.status(), 400);
    assert!(set_cookie(&forged, "passerelle_session").is_none());
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("Connexion impossible")
    );
    // No login cookie at all.
    let bare = app.client.get(back.as_str()).send().await.unwrap();
    assert_eq!(bare.status(), 400);
    // The right one works once; a replay is refused.
    assert_eq!(callback(&app, &back, &state).await.status(), 303);
    let replay = callback(&app, &back, &state).await;
    assert_eq!(replay.status(), 400);
    assert!(set_cookie(&replay, "passerelle_session").is_none());
    let refused: Vec<Value> = sign_in_events(&app)
        .await
        .into_iter()
        .filter(|event| event["rule"] == "sign-in refused: bad_state")
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|event| event["decision"] == "deny" && event["status"] == 400)
    );
}

test_both_stores!(bad_nonce);

/// An ID token whose nonce is not the sign-in's is refused.
async fn bad_nonce(kind: StoreKind) {
    let Some((app, provider)) = spawn_app_with_sign_in(kind).await else {
        return;
    };
    provider.send_wrong_nonce();
    let (location, state) = start(&app, "/").await;
    let back = approve(&location, "agent.dupont").await;
    let response = callback(&app, &back, &state).await;
    assert_eq!(response.status(), 400);
    assert!(set_cookie(&response, "passerelle_session").is_none());
    let event = app.audit_event_of(&response).await;
    assert_eq!(
        (&event["action"], &event["decision"], &event["rule"]),
        (
            &json!("sign-in"),
            &json!("deny"),
            &json!("sign-in refused: bad_nonce")
        )
    );
    assert!(event["subject"].is_null(), "nobody signed in: {event}");
}

test_both_stores!(expired_session);

/// A session past its absolute timeout, or idle too long, is no sign-in.
async fn expired_session(kind: StoreKind) {
    let Some((app, _provider)) = spawn_app_with_sign_in(kind).await else {
        return;
    };
    let session = sign_in(&app, "agent.dupont").await;
    let html = page(&app, "/", Some(&session)).await.text().await.unwrap();
    assert!(html.contains("agent.dupont"));
    execute(&app, "UPDATE web_sessions SET expires_at = 0").await;
    let html = page(&app, "/", Some(&session)).await.text().await.unwrap();
    assert!(!html.contains("agent.dupont") && html.contains("/login?return_to"));

    let idle = sign_in(&app, "agent.dupont").await;
    execute(
        &app,
        "UPDATE web_sessions SET last_seen_at = last_seen_at - 1801",
    )
    .await;
    let html = page(&app, "/", Some(&idle)).await.text().await.unwrap();
    assert!(!html.contains("agent.dupont"), "idle past 30 minutes");
    // A made-up session id is anonymous too.
    let made_up = page(&app, "/", Some(&"A".repeat(43)))
        .await
        .text()
        .await
        .unwrap();
    assert!(made_up.contains("/login?return_to"));
}

test_both_stores!(cookie_never_opens_the_api);

/// The API ignores the session cookie: an auditor's session reads no audit
/// event, an agent's no internal row.
async fn cookie_never_opens_the_api(kind: StoreKind) {
    let Some((app, _provider)) = spawn_app_with_sign_in(kind).await else {
        return;
    };
    let auditor = sign_in(&app, "auditrice.martin").await;
    let audit = app
        .client
        .get(app.url("/api/v1/audit/events"))
        .header(header::COOKIE, format!("passerelle_session={auditor}"))
        .send()
        .await
        .unwrap();
    assert_eq!(audit.status(), 401, "the API wants a bearer token");
    let event = app.audit_event_of(&audit).await;
    assert_eq!(event["auth_method"], "anonymous");
    let agent = sign_in(&app, "agent.dupont").await;
    let rows = app
        .client
        .get(app.url("/api/v1/data/infractions-videoprotection?limit=1"))
        .header(header::COOKIE, format!("passerelle_session={agent}"))
        .send()
        .await
        .unwrap();
    let anonymous = app
        .get("/api/v1/data/infractions-videoprotection?limit=1")
        .await;
    assert_eq!(rows.status(), anonymous.status());
    assert!(rows.status().is_client_error());
}
