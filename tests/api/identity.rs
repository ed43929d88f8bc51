//! Identity over HTTP: the client-credentials flow, API keys, the gateway's
//! published keys, and refusals that send no data. (Every JWT refusal has a
//! unit test in `src/auth`; here the HTTP contract is checked.)

use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};
use crate::on_both_stores;

async fn partner(app: &TestApp, expires_in_days: i64) -> (String, String) {
    let registry = passerelle::auth::ClientRegistry::new(app.state.store.clone());
    let expires = chrono::Utc::now() + chrono::Duration::days(expires_in_days);
    registry
        .create("Troyes", &["partenaire".to_owned()], None, Some(expires))
        .await
        .expect("client created")
}

async fn request_token(app: &TestApp, client_id: &str, secret: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap()
}

on_both_stores! {
    /// A partner gets a short-lived token with its secret and reads its commune's rows.
    async fn client_credentials_flow(app: TestApp) {
        let (client_id, secret) = partner(&app, 30).await;
        let response = request_token(&app, &client_id, &secret).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("bearer"));
        assert!(body["expires_in"].as_u64().unwrap() <= 900);
        let token = body["access_token"].as_str().unwrap();
        let rows: Vec<Value> = app.get_as("/api/v1/data/locations-velos?select=commune&limit=5", token).await.json().await.unwrap();
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|row| row["commune"] == "Troyes"));

        // HTTP Basic works as well (RFC 6749 §2.3.1).
        let basic = app.client.post(app.url("/api/v1/auth/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send().await.unwrap();
        assert_eq!(basic.status(), 200);
        let event = app.audit_event_of(&basic).await;
        assert_eq!(event["client_id"], client_id.as_str());
        assert!(!event.to_string().contains(&secret), "the secret never enters the log");
    }
}

on_both_stores! {
    /// Each token request leaves one event, noted by the endpoint like any
    /// other handler's: action `token`, the client it named, its outcome as
    /// the rule, `allow` only when a token was issued; never the secret.
    async fn token_requests_are_audited(app: TestApp) {
        let (client_id, secret) = partner(&app, 30).await;
        let issued = request_token(&app, &client_id, &secret).await;
        let wrong = request_token(&app, &client_id, "not-the-secret").await;
        let nameless = app.client.post(app.url("/api/v1/auth/token"))
            .form(&[("grant_type", "client_credentials")])
            .send().await.unwrap();
        let client = json!(client_id);
        for (response, expected) in [
            (issued, (200, "allow", "issued", &client)),
            (wrong, (401, "deny", "wrong_secret", &client)),
            (nameless, (401, "deny", "no_credentials", &Value::Null)),
        ] {
            let event = app.audit_event_of(&response).await;
            let (status, decision, rule, client_id) = expected;
            assert_eq!(
                (&event["action"], &event["status"], &event["decision"], &event["rule"], &event["client_id"]),
                (&json!("token"), &json!(status), &json!(decision), &json!(rule), client_id),
                "{event}"
            );
            assert_eq!(event["auth_method"], "anonymous");
            assert!(!event.to_string().contains(&secret), "the secret never enters the log");
        }
    }
}

on_both_stores! {
    /// Wrong secret, disabled client, ended agreement and bad grants are refused per RFC 6749 §5.2.
    async fn client_credentials_refusals(app: TestApp) {
        let (client_id, secret) = partner(&app, 30).await;
        let wrong = request_token(&app, &client_id, "not-the-secret").await;
        assert_eq!(wrong.status(), 401);
        let body: Value = wrong.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");

        let grant = app.client.post(app.url("/api/v1/auth/token"))
            .form(&[("grant_type", "password"), ("client_id", client_id.as_str()), ("client_secret", secret.as_str())])
            .send().await.unwrap();
        assert_eq!(grant.status(), 400);
        assert_eq!(grant.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");

        let (ended, ended_secret) = partner(&app, -1).await;
        let response = request_token(&app, &ended, &ended_secret).await;
        assert_eq!(response.status(), 401, "the agreement ended yesterday");

        let registry = passerelle::auth::ClientRegistry::new(app.state.store.clone());
        registry.disable(&client_id).await.unwrap();
        assert_eq!(request_token(&app, &client_id, &secret).await.status(), 401);
    }
}

on_both_stores! {
    /// An API key works as a bearer token and in X-API-Key until it is revoked.
    async fn api_keys(app: TestApp) {
        let (client_id, _) = partner(&app, 30).await;
        let registry = passerelle::auth::ClientRegistry::new(app.state.store.clone());
        let (key_id, key) = registry.create_api_key(&client_id, None).await.unwrap();
        let bearer = app.get_as("/api/v1/data/locations-velos?select=commune&limit=1", &key).await;
        assert_eq!(bearer.status(), 200);
        let event = app.audit_event_of(&bearer).await;
        assert_eq!(event["token_id"], key_id.as_str());
        assert!(!event.to_string().contains(&key), "the key never enters the log");
        let header = app.client.get(app.url("/api/v1/data/locations-velos?select=commune&limit=1"))
            .header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(header.status(), 200);
        registry.revoke_api_key(&key_id).await.unwrap();
        // Revocation applies within seconds, whatever was cached.
        let mut status = 0;
        for _ in 0..100 {
            status = app.get_as("/api/v1/data/locations-velos?limit=1", &key).await.status().as_u16();
            if status == 401 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status, 401);
    }
}

on_both_stores! {
    /// A refused token gets 401, `WWW-Authenticate: Bearer error="invalid_token"`, and no data.
    async fn refused_tokens_get_no_data(app: TestApp) {
        let token = app.token("x", &["agent"], None).await;
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        for bad in [tampered.as_str(), "garbage", "a.b.c", &token[..token.len() / 2]] {
            let response = app.get_as("/api/v1/data/consommations-energie-batiments?limit=1", bad).await;
            let header = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
            assert!(header.starts_with("Bearer error=\"invalid_token\""), "{header}");
            let body = problem(response, 401).await;
            assert_eq!(body["type"], "/problems/invalid-token");
            assert!(body.get("batiment").is_none());
            assert!(!body.to_string().contains(bad), "the token is not echoed");
        }
    }
}

on_both_stores! {
    /// The gateway publishes its keys and its authorization-server metadata.
    async fn publishes_keys_and_metadata(app: TestApp) {
        let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert!(!keys.is_empty());
        assert!(keys.iter().all(|key| key["kty"] == "EC" && key.get("d").is_none()), "public keys only");
        let metadata: Value = app.get("/.well-known/oauth-authorization-server").await.json().await.unwrap();
        assert!(metadata["token_endpoint"].as_str().unwrap().ends_with("/api/v1/auth/token"));
        assert!(metadata["grant_types_supported"].as_array().unwrap().iter().any(|grant| grant == "client_credentials"));
    }
}

/// Behind a trusted reverse proxy, failed token requests are counted per
/// client (the `X-Forwarded-For` hop before the proxy), not per the proxy:
/// one client guessing secrets is locked out, the others are not.
async fn failed_token_requests_limited_per_client_behind_a_proxy(kind: crate::helpers::StoreKind) {
    let Some(app) = crate::helpers::spawn_app_with(kind, |settings| {
        settings.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        settings.auth.failed_auth_limit = 3;
    })
    .await
    else {
        return;
    };
    let attempt = |forwarded_for: &'static str, client_id: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/token"))
            .header("X-Forwarded-For", forwarded_for)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", "guess"),
            ])
            .send()
    };
    // One client tries several ids (so that only its address can lock it out).
    let mut statuses = Vec::new();
    for client_id in ["a", "b", "c", "d", "e"] {
        statuses.push(
            attempt("203.0.113.7", client_id)
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 429, 429],
        "the guessing client is limited"
    );
    // Another client behind the same proxy is not.
    let other = attempt("198.51.100.20", "f").await.unwrap();
    assert_eq!(
        other.status(),
        401,
        "another client behind the proxy is not locked out"
    );
    // The token endpoint's event names the client before the proxy too.
    let event = app.audit_event_of(&other).await;
    assert_eq!(
        (&event["ip"], &event["client_id"], &event["rule"]),
        (
            &json!("198.51.100.20"),
            &json!("f"),
            &json!("unknown_client")
        )
    );
}

crate::test_both_stores!(failed_token_requests_limited_per_client_behind_a_proxy);
