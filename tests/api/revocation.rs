//! Revocation over HTTP: a token the gateway issued to a partner client stops
//! working when the client is disabled, deleted or given a new secret, and an
//! API key when it is revoked. On PostgreSQL the change is announced and
//! applied within a second whatever was cached (the cache lasts longer than
//! that here); on SQLite it applies once the client's cached state expires.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{StoreKind, TestApp, spawn_app_with};
use crate::test_both_stores;
use passerelle::auth::ClientRegistry;
use passerelle::store::Store;

const READ: &str = "/api/v1/data/locations-velos?select=commune&limit=1";

/// A gateway whose caches outlast the 1 s contract on PostgreSQL (only the
/// notifications can meet it), and last 1 s on SQLite (polling only).
async fn gateway(kind: StoreKind) -> Option<TestApp> {
    let app = spawn_app_with(kind, |settings| {
        let seconds = if kind == StoreKind::Postgres { 30 } else { 1 };
        settings.auth.client_state_cache_seconds = seconds;
        settings.auth.api_key_cache_seconds = seconds;
    })
    .await?;
    if let Store::Postgres(pool) = &app.state.store {
        passerelle::startup::spawn_change_listener(&app.state);
        // Changes made before the listener listens are not heard (it
        // refreshes everything when it starts instead): wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listening: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            if listening > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the change listener never listened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Some(app)
}

/// How long a change may take to apply: 1 s when announced, the cache's
/// lifetime plus a margin when polled.
fn allowed_delay(kind: StoreKind) -> Duration {
    match kind {
        StoreKind::Postgres => Duration::from_secs(1),
        StoreKind::Sqlite => Duration::from_millis(2_500),
    }
}

async fn token(app: &TestApp, client_id: &str, secret: &str) -> String {
    let response = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Reads with `credential` until it is refused or `delay` has passed;
/// returns the refusal.
async fn refused_within(app: &TestApp, credential: &str, delay: Duration) -> reqwest::Response {
    let deadline = Instant::now() + delay;
    loop {
        let response = app.get_as(READ, credential).await;
        if response.status() == 401 {
            return response;
        }
        assert_eq!(response.status(), 200, "accepted until revoked");
        assert!(
            Instant::now() < deadline,
            "still accepted {delay:?} after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads with `credential` until it is accepted or `delay` has passed (a
/// change that grants access applies with the same delay as one that
/// takes it away: the instance knew the client's previous state).
async fn accepted_within(app: &TestApp, credential: &str, delay: Duration) {
    let deadline = Instant::now() + delay;
    loop {
        let status = app.get_as(READ, credential).await.status();
        if status == 200 {
            return;
        }
        assert_eq!(status, 401, "refused until the change applies");
        assert!(
            Instant::now() < deadline,
            "still refused {delay:?} after the change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The refusal is a problem document naming why, with the Bearer challenge,
/// and its audit event says the credentials were refused.
async fn assert_refusal(app: &TestApp, response: reqwest::Response, why: &str) {
    let event = app.audit_event_of(&response).await;
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 401);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(why), "{detail}");
    assert_eq!(
        (&event["decision"], &event["status"], &event["rule"]),
        (
            &Value::from("deny"),
            &Value::from(401),
            &Value::from("authentication failed")
        ),
        "{event}"
    );
    assert_eq!(event["auth_method"], "anonymous", "{event}");
}

/// Disabling, rotating the secret and deleting end the tokens already
/// issued; enabling again does not bring them back.
async fn issued_tokens_end_with_their_client(kind: StoreKind) {
    let Some(app) = gateway(kind).await else {
        return;
    };
    // Another registry on the same store: what another instance or the CLI does.
    let registry = ClientRegistry::new(app.state.store.clone());
    let (client_id, secret) = registry
        .create("Troyes", &["partenaire".to_owned()], None, None)
        .await
        .unwrap();
    let before = token(&app, &client_id, &secret).await;
    assert_eq!(app.get_as(READ, &before).await.status(), 200);

    registry.disable(&client_id).await.unwrap();
    let refused = refused_within(&app, &before, allowed_delay(kind)).await;
    assert_refusal(&app, refused, "disabled").await;

    registry.enable(&client_id).await.unwrap();
    let after_enable = token(&app, &client_id, &secret).await;
    accepted_within(&app, &after_enable, allowed_delay(kind)).await;
    let old = app.get_as(READ, &before).await;
    assert_refusal(&app, old, "revoked").await;

    let rotated = registry.rotate_secret(&client_id).await.unwrap();
    let refused = refused_within(&app, &after_enable, allowed_delay(kind)).await;
    assert_refusal(&app, refused, "revoked").await;
    let after_rotation = token(&app, &client_id, &rotated).await;
    accepted_within(&app, &after_rotation, allowed_delay(kind)).await;

    registry.delete(&client_id).await.unwrap();
    let refused = refused_within(&app, &after_rotation, allowed_delay(kind)).await;
    assert_refusal(&app, refused, "no longer exists").await;
}

test_both_stores!(issued_tokens_end_with_their_client);

/// A revoked API key is refused within the delay whatever was cached; the
/// client's other key keeps working.
async fn revoked_api_keys_end(kind: StoreKind) {
    let Some(app) = gateway(kind).await else {
        return;
    };
    let registry = ClientRegistry::new(app.state.store.clone());
    let (client_id, _) = registry
        .create("Troyes", &["partenaire".to_owned()], None, None)
        .await
        .unwrap();
    let (key_id, key) = registry.create_api_key(&client_id, None).await.unwrap();
    let (_, other) = registry.create_api_key(&client_id, None).await.unwrap();
    assert_eq!(app.get_as(READ, &key).await.status(), 200);
    assert_eq!(app.get_as(READ, &other).await.status(), 200);
    registry.revoke_api_key(&key_id).await.unwrap();
    let refused = refused_within(&app, &key, allowed_delay(kind)).await;
    assert_refusal(&app, refused, "revoked").await;
    assert_eq!(app.get_as(READ, &other).await.status(), 200);
}

test_both_stores!(revoked_api_keys_end);
