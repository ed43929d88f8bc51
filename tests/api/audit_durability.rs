//! Audit durability by access level: a page of open data does not wait for
//! its event (committed within `audit.buffer_ms`), closed data always does,
//! and open data waits too once the writer is behind by more than `buffer_ms`.

use std::time::{Duration, Instant};

use passerelle::store::Store;

use crate::helpers::{StoreKind, TestApp, spawn_app_with};

const OPEN: &str = "/api/v1/data/frequentation-musees";
const CLOSED: &str = "/api/v1/data/effectifs-services";
const BUFFER_MS: u64 = 200;
/// Room for a loaded test machine; the test polls, it does not time the commit.
const MARGIN: Duration = Duration::from_secs(5);

/// Events with this request id, read straight from the store (an auditor's
/// read through the API would first wait for the queued events).
async fn stored_events(app: &TestApp, request_id: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM audit_events WHERE request_id = $1";
    match &app.state.store {
        Store::Sqlite(pool) => {
            sqlx::query_scalar(sql)
                .bind(request_id)
                .fetch_one(pool)
                .await
        }
        Store::Postgres(pool) => {
            sqlx::query_scalar(sql)
                .bind(request_id)
                .fetch_one(pool)
                .await
        }
    }
    .expect("count events")
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .expect("request id")
        .to_owned()
}

/// Holds the audit table's write lock from another connection until dropped
/// through [`AuditLock::release`]: the writer's next commit waits for it.
enum AuditLock {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl AuditLock {
    async fn take(app: &TestApp) -> AuditLock {
        match &app.state.store {
            Store::Sqlite(pool) => {
                let mut connection = pool.acquire().await.expect("connection");
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut *connection)
                    .await
                    .expect("write lock");
                AuditLock::Sqlite(connection)
            }
            Store::Postgres(pool) => {
                let mut connection = pool.acquire().await.expect("connection");
                sqlx::raw_sql("BEGIN; LOCK TABLE audit_events IN EXCLUSIVE MODE")
                    .execute(&mut *connection)
                    .await
                    .expect("table lock");
                AuditLock::Postgres(connection)
            }
        }
    }

    async fn release(self) {
        match self {
            AuditLock::Sqlite(mut connection) => sqlx::raw_sql("COMMIT")
                .execute(&mut *connection)
                .await
                .map(|_| ()),
            AuditLock::Postgres(mut connection) => sqlx::raw_sql("COMMIT")
                .execute(&mut *connection)
                .await
                .map(|_| ()),
        }
        .expect("release");
    }
}

async fn buffered_open_durable_closed(kind: StoreKind) {
    let Some(app) = spawn_app_with(kind, |settings| settings.audit.buffer_ms = BUFFER_MS).await
    else {
        return;
    };
    let agent = app.token("agent", &["agent"], None).await;
    assert_eq!(
        app.get_as(&format!("{CLOSED}?limit=1"), &agent)
            .await
            .status(),
        200
    );

    // An open page's event reaches the store on its own within buffer_ms.
    let response = app.get(&format!("{OPEN}?limit=2")).await;
    assert_eq!(response.status(), 200);
    let open_id = request_id(&response);
    let asked = Instant::now();
    while stored_events(&app, &open_id).await == 0 {
        assert!(
            asked.elapsed() < Duration::from_millis(BUFFER_MS) + MARGIN,
            "the buffered event of {open_id} was never written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let event = app.audit_event_of(&response).await;
    assert_eq!(event["decision"], "allow", "{event}");
    assert_eq!(event["rows"], 2, "{event}");
    assert_eq!(event["dataset"], "frequentation-musees", "{event}");

    // The writer cannot commit: an open page is still answered...
    let lock = AuditLock::take(&app).await;
    let response = tokio::time::timeout(MARGIN, app.get(&format!("{OPEN}?limit=1&offset=1")))
        .await
        .expect("an open page does not wait for its event");
    assert_eq!(response.status(), 200);
    let buffered_id = request_id(&response);
    // ...a closed one waits for its event,
    let client = app.client.clone();
    let closed = tokio::spawn(
        client
            .get(app.url(&format!("{CLOSED}?limit=1")))
            .bearer_auth(&agent)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(BUFFER_MS + 300)).await;
    assert!(!closed.is_finished(), "a closed read waits for its event");
    // ...and so does an open one once the oldest waiting event is older than buffer_ms.
    let late = tokio::spawn(
        app.client
            .get(app.url(&format!("{OPEN}?limit=1&offset=2")))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !late.is_finished(),
        "the writer is behind by more than buffer_ms: an open read waits"
    );
    assert_eq!(
        stored_events(&app, &buffered_id).await,
        0,
        "nothing committed under the lock"
    );
    lock.release().await;

    let closed = closed.await.unwrap().expect("closed answer");
    assert_eq!(closed.status(), 200);
    let late = late.await.unwrap().expect("late answer");
    assert_eq!(late.status(), 200);
    for id in [&buffered_id, &request_id(&closed), &request_id(&late)] {
        assert_eq!(stored_events(&app, id).await, 1, "event of {id}");
    }
    let closed_event = app.audit_event_of(&closed).await;
    assert_eq!(
        closed_event["dataset"], "effectifs-services",
        "{closed_event}"
    );
    assert_eq!(closed_event["subject"], "agent", "{closed_event}");
    let verification = app.state.audit.verify(None, None).await.expect("verify");
    assert!(verification.ok, "{verification:?}");
}

crate::test_both_stores!(buffered_open_durable_closed);

/// With `open = "durable"`, an open page waits for its event like closed data.
async fn open_made_durable(kind: StoreKind) {
    let Some(app) = spawn_app_with(kind, |settings| {
        settings.audit.durability.open = passerelle::audit::Durability::Durable;
    })
    .await
    else {
        return;
    };
    assert_eq!(app.get(&format!("{OPEN}?limit=1")).await.status(), 200);
    let lock = AuditLock::take(&app).await;
    let open = tokio::spawn(
        app.client
            .get(app.url(&format!("{OPEN}?limit=1&offset=3")))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !open.is_finished(),
        "a durable open read waits for its event"
    );
    lock.release().await;
    let response = open.await.unwrap().expect("answer");
    assert_eq!(response.status(), 200);
    // Committed before the response started.
    assert_eq!(stored_events(&app, &request_id(&response)).await, 1);
}

crate::test_both_stores!(open_made_durable);

/// `[audit.durability]` in a settings file: levels by name, unknown values refused.
#[test]
fn durability_settings() {
    use passerelle::audit::Durability;
    use passerelle::config::DurabilitySettings;
    let defaults = DurabilitySettings::default();
    assert_eq!(defaults.open, Durability::Buffered);
    for level in [
        defaults.partners,
        defaults.internal,
        defaults.confidential,
        defaults.undecided,
    ] {
        assert_eq!(level, Durability::Durable);
    }
    let parsed: DurabilitySettings =
        toml::from_str("open = \"durable\"\ninternal = \"buffered\"\n").expect("valid");
    assert_eq!(parsed.open, Durability::Durable);
    assert_eq!(parsed.internal, Durability::Buffered);
    assert_eq!(parsed.confidential, Durability::Durable);
    assert!(toml::from_str::<DurabilitySettings>("open = \"sometimes\"\n").is_err());
    assert!(toml::from_str::<DurabilitySettings>("public = \"durable\"\n").is_err());
}
