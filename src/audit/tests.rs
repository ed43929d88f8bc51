//! The audit log against real stores: SQLite always, PostgreSQL when
//! present (required with `CI=true`). Tampering is done with plain SQL, as
//! an intruder with database access would.

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};

use super::event::tests::sample;
use super::signer::tests::test_signer;
use super::*;
use crate::store::test_support::{self, TestDatabase};

/// SQLite, and PostgreSQL when available.
async fn stores() -> Vec<(Store, TestDatabase)> {
    let mut stores = vec![test_support::sqlite().await];
    stores.extend(test_support::postgres().await);
    stores
}

fn config(instance: &str) -> AuditConfig {
    AuditConfig {
        instance: instance.to_owned(),
        ..AuditConfig::default()
    }
}

async fn start(store: &Store, instance: &str) -> AuditLog {
    AuditLog::start(store.clone(), config(instance), Arc::new(test_signer(7)))
        .await
        .expect("start")
}

/// Records `count` events (subjects alternate alice/bob, datasets energy/water).
async fn record_many(log: &AuditLog, count: usize) -> Vec<Receipt> {
    let mut receipts = Vec::new();
    for index in 0..count {
        let mut event = sample(&format!("r{index}"));
        if index % 2 == 1 {
            event.subject = Some("bob".to_owned());
            event.dataset = Some("water".to_owned());
            event.decision = Decision::Deny;
            event.status = 403;
        }
        receipts.push(log.record(event).await.expect("record"));
    }
    receipts
}

async fn execute(store: &Store, sql: &str) {
    for statement in sql
        .split(';')
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
    {
        let result = match store {
            Store::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(pool)
                .await
                .map(|_| ()),
            Store::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(pool)
                .await
                .map(|_| ()),
        };
        result.unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
}

/// A log of `count` events on `store`, emptied first.
async fn fresh_log(store: &Store, count: usize) -> AuditLog {
    execute(
        store,
        "DELETE FROM audit_events; DELETE FROM audit_checkpoints",
    )
    .await;
    let log = start(store, "gw").await;
    record_many(&log, count).await;
    log
}

/// The first broken entry `verify` reports; there must be one.
async fn first_broken(log: &AuditLog) -> BrokenEntry {
    log.verify(None, None)
        .await
        .unwrap()
        .first_broken
        .expect("detected")
}

/// The request ids of the newest events listed with `params`, newest first.
async fn listed_ids(log: &AuditLog, params: &[(String, String)]) -> Vec<String> {
    log.list(&EventQuery::from_params(params).unwrap())
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|event| event.event.request_id)
        .collect()
}

fn backend(store: &Store) -> &'static str {
    match store {
        Store::Sqlite(_) => "sqlite",
        Store::Postgres(_) => "postgres",
    }
}

/// Events get consecutive sequences, chain from the genesis, verify, and
/// are stored normalised (redacted query, anonymous subject null).
#[tokio::test]
async fn records_a_verifiable_chain() {
    for (store, _guard) in stores().await {
        let log = start(&store, "gw").await;
        let receipts = record_many(&log, 5).await;
        let sequences: Vec<i64> = receipts.iter().map(|receipt| receipt.sequence).collect();
        assert_eq!(sequences, vec![1, 2, 3, 4, 5], "{}", backend(&store));
        let mut anonymous = sample("anon");
        anonymous.auth_method = AuthMethod::Anonymous;
        log.record(anonymous).await.unwrap();

        let verification = log.verify(None, None).await.unwrap();
        assert!(verification.ok, "{verification:?}");
        assert_eq!(
            (
                verification.checked,
                verification.from_seq,
                verification.to_seq
            ),
            (6, Some(1), Some(6))
        );

        let page = log
            .list(&EventQuery {
                limit: 100,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.events.len(), 6);
        let newest = &page.events[0];
        assert_eq!((newest.seq, newest.subject.clone()), (6, None));
        let first = page.events.last().unwrap();
        assert_eq!(first.prev_hash, GENESIS_HASH);
        assert_eq!(first.query.as_deref(), Some("select=a&api_key=REDACTED"));
        assert_eq!(
            serde_json::to_value(first).unwrap()["time"],
            "2026-11-29T10:00:00.123456Z"
        );
        assert_eq!(
            page.events[4].prev_hash, first.hash,
            "each event links to the previous one"
        );
        assert_eq!(
            verification.head_hash.as_deref(),
            Some(newest.hash.as_str())
        );
        assert!(log.healthy());
        log.shutdown().await;
    }
}

/// Filters combine; pages run newest first and the cursor continues them.
#[tokio::test]
async fn lists_with_filters_and_cursor() {
    for (store, _guard) in stores().await {
        let log = start(&store, "gw").await;
        record_many(&log, 7).await;
        let query = |params: &[(&str, &str)]| {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            EventQuery::from_params(&params).unwrap()
        };
        let bob = log.list(&query(&[("subject", "bob")])).await.unwrap();
        assert_eq!(
            bob.events.iter().map(|event| event.seq).collect::<Vec<_>>(),
            vec![6, 4, 2]
        );
        let denied_water = log
            .list(&query(&[
                ("decision", "deny"),
                ("dataset", "water"),
                ("status", "403"),
            ]))
            .await
            .unwrap();
        assert_eq!(denied_water.events.len(), 3);
        assert!(
            log.list(&query(&[("org", "nobody")]))
                .await
                .unwrap()
                .events
                .is_empty()
        );
        assert!(
            log.list(&query(&[("from", "2026-11-30")]))
                .await
                .unwrap()
                .events
                .is_empty()
        );
        assert_eq!(
            log.list(&query(&[("to", "2026-11-30")]))
                .await
                .unwrap()
                .events
                .len(),
            7
        );

        let first = log.list(&query(&[("limit", "3")])).await.unwrap();
        assert_eq!(
            first
                .events
                .iter()
                .map(|event| event.seq)
                .collect::<Vec<_>>(),
            vec![7, 6, 5]
        );
        let cursor = first.next_cursor.clone().expect("more pages");
        let second = log
            .list(&query(&[("limit", "3"), ("cursor", &cursor)]))
            .await
            .unwrap();
        assert_eq!(
            second
                .events
                .iter()
                .map(|event| event.seq)
                .collect::<Vec<_>>(),
            vec![4, 3, 2]
        );
        let last = log
            .list(&query(&[
                ("limit", "3"),
                ("cursor", &second.next_cursor.unwrap()),
            ]))
            .await
            .unwrap();
        assert_eq!(
            last.events
                .iter()
                .map(|event| event.seq)
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(last.next_cursor, None);

        use futures::StreamExt;
        let streamed: Vec<i64> = log
            .stream(query(&[("subject", "alice")]))
            .map(|event| event.unwrap().seq)
            .collect()
            .await;
        assert_eq!(streamed, vec![7, 5, 3, 1]);
    }
}

/// A streamed export's outcome is a separate chained event; the original stays as it was.
#[tokio::test]
async fn completes_streamed_exports() {
    for (store, _guard) in stores().await {
        let log = start(&store, "gw").await;
        let receipt = log.record(sample("export")).await.unwrap();
        let before = log
            .list(&EventQuery {
                limit: 10,
                ..EventQuery::default()
            })
            .await
            .unwrap()
            .events;
        let outcome = Outcome {
            status: 200,
            rows: Some(1234),
            bytes: Some(99_999),
            duration_ms: 812.5,
            complete: false,
        };
        log.complete(receipt, outcome).await.unwrap();
        let events = log
            .list(&EventQuery {
                limit: 10,
                ..EventQuery::default()
            })
            .await
            .unwrap()
            .events;
        assert_eq!(events.len(), 2);
        let completion = &events[0];
        assert_eq!(completion.kind, EventKind::Completion);
        assert_eq!(completion.refers_to, Some(1));
        assert_eq!(
            (completion.rows, completion.bytes, completion.complete),
            (Some(1234), Some(99_999), Some(false))
        );
        assert_eq!(completion.request_id, "export");
        assert_eq!(completion.prev_hash, before[0].hash);
        assert_eq!(events[1], before[0], "the original event is unchanged");
        assert!(log.verify(None, None).await.unwrap().ok);
    }
}

/// Each kind of tampering, done in SQL, is detected and located.
#[tokio::test]
async fn detects_tampering() {
    let cases: &[(&str, &str, i64, BreakReason)] = &[
        (
            "altered field",
            "UPDATE audit_events SET rows_sent = 999 WHERE seq = 5",
            5,
            BreakReason::Altered,
        ),
        (
            "altered subject",
            "UPDATE audit_events SET subject = 'mallory' WHERE seq = 3",
            3,
            BreakReason::Altered,
        ),
        (
            "deleted row",
            "DELETE FROM audit_events WHERE seq = 5",
            5,
            BreakReason::Deleted,
        ),
        (
            "deleted and renumbered",
            "DELETE FROM audit_events WHERE seq = 5; UPDATE audit_events SET seq = seq + 1000 WHERE seq > 5; \
             UPDATE audit_events SET seq = seq - 1001 WHERE seq > 1000",
            5,
            BreakReason::Deleted,
        ),
        (
            "deleted first",
            "DELETE FROM audit_events WHERE seq = 1",
            1,
            BreakReason::Deleted,
        ),
        (
            "truncated tail",
            "DELETE FROM audit_events WHERE seq > 8",
            9,
            BreakReason::Truncated,
        ),
        (
            "forged checkpoint",
            "UPDATE audit_checkpoints SET seq = 12",
            12,
            BreakReason::Altered,
        ),
        (
            "re-signed nothing",
            "UPDATE audit_checkpoints SET time_us = time_us + 1",
            10,
            BreakReason::Altered,
        ),
    ];
    for (store, _guard) in stores().await {
        for (name, sql, seq, reason) in cases {
            // Fresh tables for each case.
            execute(
                &store,
                "DELETE FROM audit_events; DELETE FROM audit_checkpoints",
            )
            .await;
            let log = start(&store, "gw").await;
            record_many(&log, 10).await;
            log.checkpoint().await.unwrap();
            assert!(
                log.verify(None, None).await.unwrap().ok,
                "{name}: clean log"
            );
            execute(&store, sql).await;
            let verification = log.verify(None, None).await.unwrap();
            let broken = verification
                .first_broken
                .clone()
                .unwrap_or_else(|| panic!("{name}: not detected"));
            assert!(!verification.ok);
            assert_eq!(
                (broken.seq, broken.reason),
                (*seq, *reason),
                "{} {name}: {}",
                backend(&store),
                broken.detail
            );
            log.shutdown().await;
        }
    }
}

/// A row inserted in the middle (the rest renumbered), with a hash computed
/// correctly or not, is reported as inserted at its place.
#[tokio::test]
async fn detects_inserted_rows() {
    for (store, _guard) in stores().await {
        for correct_hash in [true, false] {
            let log = fresh_log(&store, 10).await;
            let previous = store::hash_of(&store, 5).await.unwrap().unwrap();
            execute(&store, "UPDATE audit_events SET seq = seq + 1000 WHERE seq > 5; UPDATE audit_events SET seq = seq - 999 WHERE seq > 1000").await;
            let mut forged =
                event::tests::chained(&sample("forged").sealed("gw", None), 6, &previous);
            if !correct_hash {
                forged.hash = "ab".repeat(32);
            }
            store::insert_raw(&store, &forged).await.unwrap();
            let broken = first_broken(&log).await;
            assert_eq!(
                (broken.seq, broken.reason),
                (6, BreakReason::Inserted),
                "{}: {}",
                backend(&store),
                broken.detail
            );
            log.shutdown().await;
        }
    }
}

/// The log cut and rewritten after a checkpoint is caught by the checkpoint's hash.
#[tokio::test]
async fn detects_rewritten_tail() {
    for (store, _guard) in stores().await {
        let log = start(&store, "gw").await;
        record_many(&log, 10).await;
        log.checkpoint().await.unwrap();
        execute(&store, "DELETE FROM audit_events WHERE seq > 8").await;
        record_many(&log, 2).await;
        let broken = log
            .verify(None, None)
            .await
            .unwrap()
            .first_broken
            .expect("detected");
        assert_eq!(
            (broken.seq, broken.reason),
            (10, BreakReason::Truncated),
            "{}",
            broken.detail
        );
    }
}

/// A partial range verifies on its own, linked to the event before it.
#[tokio::test]
async fn verifies_a_range() {
    let (store, _guard) = test_support::sqlite().await;
    let log = start(&store, "gw").await;
    record_many(&log, 10).await;
    execute(
        &store,
        "UPDATE audit_events SET rows_sent = 1 WHERE seq = 9",
    )
    .await;
    let partial = log.verify(Some(3), Some(7)).await.unwrap();
    assert!(partial.ok, "{partial:?}");
    assert_eq!(
        (partial.checked, partial.from_seq, partial.to_seq),
        (5, Some(3), Some(7))
    );
    let tail = log.verify(Some(8), None).await.unwrap();
    assert_eq!(tail.first_broken.map(|broken| broken.seq), Some(9));
}

/// Two gateways on one PostgreSQL append to one valid chain.
#[tokio::test]
async fn two_instances_share_one_chain() {
    let Some((store, _guard)) = test_support::postgres().await else {
        return;
    };
    let first = start(&store, "gw-1").await;
    let second = start(&store, "gw-2").await;
    let mut tasks = Vec::new();
    for task in 0..40 {
        let log = if task % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            for index in 0..25 {
                log.record(sample(&format!("t{task}-{index}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    first.checkpoint().await.unwrap();
    let verification = second.verify(None, None).await.unwrap();
    assert!(verification.ok, "{verification:?}");
    assert_eq!(
        (verification.checked, verification.to_seq),
        (1000, Some(1000))
    );
    let instances = first.stats(&StatsQuery::default()).await.unwrap();
    assert_eq!(instances.total, 1000);
    let from_second = first
        .list(&EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .unwrap()
        .events
        .iter()
        .filter(|event| event.instance == "gw-2")
        .count();
    assert_eq!(from_second, 500);
}

/// Group commit under many concurrent recorders; prints the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_throughput() {
    for (store, _guard) in stores().await {
        let log = start(&store, "gw").await;
        let (tasks, per_task) = (500, 40);
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let log = log.clone();
                tokio::spawn(async move {
                    for index in 0..per_task {
                        log.record(sample(&format!("{task}-{index}")))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let total = tasks * per_task;
        println!(
            "{}: {total} durable events from {tasks} concurrent recorders in {elapsed:.2} s = {:.0} events/s",
            backend(&store),
            total as f64 / elapsed
        );
        let verification = log.verify(None, None).await.unwrap();
        assert!(verification.ok);
        assert_eq!(verification.checked, total as u64);
    }
}

/// A purge deletes old events, leaves a signed anchor, and the rest verifies;
/// recording continues the same chain.
#[tokio::test]
async fn purges_and_stays_verifiable() {
    for (store, _guard) in stores().await {
        let log = start(&store, "gw").await;
        let old = Utc::now() - Duration::days(400);
        for index in 0..4 {
            let mut event = sample(&format!("old{index}"));
            event.time = old;
            log.record(event).await.unwrap();
        }
        log.checkpoint().await.unwrap();
        for index in 0..3 {
            let mut event = sample(&format!("new{index}"));
            event.time = Utc::now();
            log.record(event).await.unwrap();
        }
        let report = log.purge(Utc::now() - Duration::days(365)).await.unwrap();
        assert_eq!(
            (
                report.deleted_events,
                report.deleted_checkpoints,
                report.anchor_seq
            ),
            (4, 1, Some(5))
        );
        let verification = log.verify(None, None).await.unwrap();
        assert!(verification.ok, "{verification:?}");
        assert_eq!(
            (
                verification.anchored_at,
                verification.from_seq,
                verification.checked
            ),
            (Some(5), Some(5), 3)
        );
        assert_eq!(log.record(sample("after")).await.unwrap().sequence, 8);
        assert!(log.verify(None, None).await.unwrap().ok);

        // Purging everything keeps the chain going from the anchor.
        let report = log.purge(Utc::now() + Duration::days(1)).await.unwrap();
        assert_eq!((report.deleted_events, report.anchor_seq), (4, Some(9)));
        assert!(log.verify(None, None).await.unwrap().ok);
        assert_eq!(log.record(sample("later")).await.unwrap().sequence, 9);
        assert!(log.verify(None, None).await.unwrap().ok);

        // A forged anchor is refused.
        execute(
            &store,
            "UPDATE audit_checkpoints SET hash = 'ff' WHERE kind = 'anchor'",
        )
        .await;
        let broken = log
            .verify(None, None)
            .await
            .unwrap()
            .first_broken
            .expect("detected");
        assert_eq!(broken.reason, BreakReason::Altered, "{}", broken.detail);
    }
}

/// PostgreSQL: the purge drops whole monthly partitions and the rest
/// verifies from the anchor; a partition holding an event written after a
/// kept one (a late event) is not dropped, its purged rows are deleted.
#[tokio::test]
async fn purge_drops_whole_months() {
    let Some((store, _guard)) = test_support::postgres().await else {
        return;
    };
    let Store::Postgres(pool) = &store else {
        unreachable!("a PostgreSQL test store")
    };
    let exists = |month: partitions::Month| async move {
        sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
            .bind(month.table())
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let log = start(&store, "gw").await;
    let this_month = partitions::Month::of(Utc::now());
    let first_instant = |month: partitions::Month| {
        chrono::DateTime::from_timestamp_micros(month.start_us()).unwrap() + Duration::hours(1)
    };
    // Started: this month's partition and the next month's exist.
    assert!(exists(this_month).await && exists(this_month.next()).await);
    let last_month = partitions::Month::of(first_instant(this_month) - Duration::days(2));
    let two_months_ago = partitions::Month::of(first_instant(last_month) - Duration::days(2));
    partitions::create_months(&store, two_months_ago)
        .await
        .unwrap();
    let record_at = |time: chrono::DateTime<Utc>, name: &'static str| {
        let log = log.clone();
        async move {
            let mut event = sample(name);
            event.time = time;
            log.record(event).await.unwrap().sequence
        }
    };

    // Two months ago: 1, 2 and a late 4 written after 3 of last month.
    record_at(first_instant(two_months_ago), "a").await;
    record_at(first_instant(two_months_ago), "b").await;
    record_at(first_instant(last_month), "c").await;
    record_at(first_instant(two_months_ago) + Duration::hours(1), "late").await;
    record_at(Utc::now(), "d").await;
    let report = log
        .purge(chrono::DateTime::from_timestamp_micros(last_month.start_us()).unwrap())
        .await
        .unwrap();
    assert_eq!((report.deleted_events, report.anchor_seq), (2, Some(3)));
    assert!(
        exists(two_months_ago).await,
        "the late event keeps its partition"
    );
    let verification = log.verify(None, None).await.unwrap();
    assert!(verification.ok, "{verification:?}");
    assert_eq!((verification.from_seq, verification.checked), (Some(3), 3));

    // Up to this month: both earlier months go whole, this one stays.
    let report = log
        .purge(chrono::DateTime::from_timestamp_micros(this_month.start_us()).unwrap())
        .await
        .unwrap();
    assert_eq!((report.deleted_events, report.anchor_seq), (2, Some(5)));
    assert!(!exists(two_months_ago).await && !exists(last_month).await);
    assert!(exists(this_month).await && exists(this_month.next()).await);
    let verification = log.verify(None, None).await.unwrap();
    assert!(verification.ok, "{verification:?}");
    assert_eq!((verification.from_seq, verification.checked), (Some(5), 1));
    assert_eq!(record_at(Utc::now(), "after").await, 6);
    assert!(log.verify(None, None).await.unwrap().ok);

    // Whatever the date, this month's and next month's partitions stay.
    log.purge(Utc::now() + Duration::days(90)).await.unwrap();
    assert!(exists(this_month).await && exists(this_month.next()).await);
    assert!(log.verify(None, None).await.unwrap().ok);
}

/// A purge refuses to destroy events that do not verify.
#[tokio::test]
async fn purge_refuses_a_broken_chain() {
    let (store, _guard) = test_support::sqlite().await;
    let log = start(&store, "gw").await;
    record_many(&log, 3).await;
    execute(&store, "UPDATE audit_events SET status = 200 WHERE seq = 2").await;
    assert!(log.purge(Utc::now() + Duration::days(1)).await.is_err());
    assert_eq!(
        log.list(&EventQuery {
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap()
        .events
        .len(),
        3
    );
}

/// When the store cannot be written, record fails and health turns false until a write succeeds.
#[tokio::test]
async fn fails_closed_and_recovers() {
    for (store, _guard) in stores().await {
        let log = start(&store, "gw").await;
        record_many(&log, 2).await;
        execute(
            &store,
            "ALTER TABLE audit_events RENAME TO audit_events_away",
        )
        .await;
        assert!(matches!(
            log.record(sample("lost")).await,
            Err(AuditError::Unavailable(_))
        ));
        assert!(!log.healthy());
        execute(
            &store,
            "ALTER TABLE audit_events_away RENAME TO audit_events",
        )
        .await;
        assert_eq!(log.record(sample("back")).await.unwrap().sequence, 3);
        assert!(log.healthy());
        assert!(log.verify(None, None).await.unwrap().ok);
    }
}

/// One event the store refuses fails alone: the other events of its batch
/// are committed, the chain verifies and the log stays healthy. (Escaping
/// leaves no value the store cannot hold, so a trigger plays the bad event.)
#[tokio::test]
async fn one_refused_event_does_not_fail_its_batch() {
    for (store, _guard) in stores().await {
        let trigger = match &store {
            Store::Sqlite(_) => {
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_events \
                 WHEN NEW.request_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned event'); END;"
            }
            Store::Postgres(_) => {
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.request_id = 'poison' THEN RAISE EXCEPTION 'poisoned event'; END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_events \
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison();"
            }
        };
        let statement = sqlx::AssertSqlSafe(trigger.to_owned());
        match &store {
            Store::Sqlite(pool) => sqlx::raw_sql(statement).execute(pool).await.map(|_| ()),
            Store::Postgres(pool) => sqlx::raw_sql(statement).execute(pool).await.map(|_| ()),
        }
        .expect("trigger");
        // The writer waits for more events, so the twelve share one batch.
        let config = AuditConfig {
            max_batch_wait_ms: 300,
            ..config("gw")
        };
        let log = AuditLog::start(store.clone(), config, Arc::new(test_signer(7)))
            .await
            .expect("start");
        let tasks: Vec<_> = (0..12)
            .map(|index| {
                let log = log.clone();
                let request_id = if index == 5 {
                    "poison".to_owned()
                } else {
                    format!("r{index}")
                };
                tokio::spawn(async move {
                    let result = log.record(sample(&request_id)).await;
                    (request_id, result.map(|receipt| receipt.sequence))
                })
            })
            .collect();
        let mut sequences = Vec::new();
        for task in tasks {
            let (request_id, result) = task.await.expect("task");
            if request_id == "poison" {
                assert!(
                    matches!(result, Err(AuditError::Unavailable(_))),
                    "{}: {result:?}",
                    backend(&store)
                );
            } else {
                sequences.push(result.unwrap_or_else(|error| {
                    panic!(
                        "{}: {request_id} failed with the bad event: {error}",
                        backend(&store)
                    )
                }));
            }
        }
        sequences.sort_unstable();
        assert_eq!(
            sequences,
            (1..=11).collect::<Vec<i64>>(),
            "{}",
            backend(&store)
        );
        assert!(log.healthy(), "{}", backend(&store));
        let verification = log.verify(None, None).await.unwrap();
        assert!(
            verification.ok && verification.checked == 11,
            "{verification:?}"
        );
    }
}

/// After shutdown, nothing more is accepted and a checkpoint pins the head.
#[tokio::test]
async fn shutdown_checkpoints() {
    let (store, _guard) = test_support::sqlite().await;
    let log = start(&store, "gw").await;
    record_many(&log, 3).await;
    log.shutdown().await;
    assert!(matches!(
        log.record(sample("late")).await,
        Err(AuditError::Stopped)
    ));
    let statements = store::statements(&store).await.unwrap();
    assert_eq!(
        statements
            .iter()
            .map(|statement| (statement.kind.as_str(), statement.seq))
            .collect::<Vec<_>>(),
        vec![("checkpoint", 3)]
    );
}

/// Counts by dataset, subject, decision and day; exports in CSV and NDJSON.
#[tokio::test]
async fn counts_and_exports() {
    for (store, _guard) in stores().await {
        let log = start(&store, "gw").await;
        let receipts = record_many(&log, 5).await;
        log.complete(
            receipts[0].clone(),
            Outcome {
                status: 200,
                rows: Some(1),
                bytes: Some(2),
                duration_ms: 3.0,
                complete: true,
            },
        )
        .await
        .unwrap();
        let stats = log.stats(&StatsQuery::default()).await.unwrap();
        assert_eq!(stats.total, 5, "completions are not requests");
        assert_eq!(
            stats.by_dataset[0],
            Count {
                key: Some("energy".to_owned()),
                count: 3
            }
        );
        assert_eq!(
            stats.by_decision,
            vec![
                Count {
                    key: Some("allow".to_owned()),
                    count: 3
                },
                Count {
                    key: Some("deny".to_owned()),
                    count: 2
                }
            ]
        );
        assert_eq!(
            stats.by_subject[0],
            SubjectCount {
                subject: Some("alice".to_owned()),
                org: Some("ademe".to_owned()),
                count: 3
            }
        );
        assert_eq!(
            stats.by_day,
            vec![Count {
                key: Some("2026-11-29".to_owned()),
                count: 5
            }]
        );
        let none = log
            .stats(&StatsQuery {
                from: Some(sample("x").time + Duration::days(1)),
                to: None,
                ..StatsQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(none.total, 0);

        let mut csv = Vec::new();
        log.reader()
            .export(None, None, "csv", &mut csv)
            .await
            .unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(csv.lines().count(), 7);
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("1,access,,2026-11-29T10:00:00.123456Z,r0,alice")
        );
        let mut ndjson = Vec::new();
        let at = sample("x").time;
        log.reader()
            .export(
                Some(at),
                Some(at + Duration::seconds(1)),
                "ndjson",
                &mut ndjson,
            )
            .await
            .unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(ndjson)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(
            lines.len(),
            5,
            "the completion was written now, outside the period"
        );
        assert_eq!(lines[0]["seq"], 1);
        assert!(
            log.reader()
                .export(None, None, "xml", &mut Vec::new())
                .await
                .is_err()
        );
    }
}

/// Hashing IPs needs a key; with one, no IP is stored in clear.
#[tokio::test]
async fn hashes_client_ips() {
    let (store, _guard) = test_support::sqlite().await;
    let signer: Arc<dyn CheckpointSigner> = Arc::new(test_signer(7));
    let without_key = AuditConfig {
        hash_client_ip: true,
        ..config("gw")
    };
    assert!(
        AuditLog::start(store.clone(), without_key, signer.clone())
            .await
            .is_err()
    );
    let with_key = AuditConfig {
        hash_client_ip: true,
        ip_hash_key: Some("0123456789abcdef".to_owned()),
        ..config("gw")
    };
    let log = AuditLog::start(store.clone(), with_key, signer)
        .await
        .unwrap();
    log.record(sample("r1")).await.unwrap();
    let event = &log
        .list(&EventQuery {
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .unwrap()
        .events[0];
    assert!(event.ip.as_deref().unwrap().starts_with("hmac-sha256:"));
    assert!(log.verify(None, None).await.unwrap().ok);
}

/// While the store's probe says the store does not answer, events and
/// checkpoints are refused at once (not after the pool's wait) and the log
/// is not healthy.
#[tokio::test]
async fn refuses_at_once_while_the_store_is_down() {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use crate::store::probe::StoreHealth;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let pool = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_lazy_with(PgConnectOptions::new().host("127.0.0.1").port(port));
    let store = Store::Postgres(pool);
    let log = start(&store, "gw").await;
    let health = StoreHealth::spawn(
        &store,
        std::time::Duration::from_millis(20),
        std::time::Duration::from_secs(1),
    );
    log.follow_store_health(health.clone());
    let started = Instant::now();
    while health.is_up() {
        assert!(
            started.elapsed().as_secs() < 5,
            "the probe sees the store down"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!log.healthy());
    let started = Instant::now();
    let refused = log.record(sample("refused")).await;
    assert!(
        matches!(refused, Err(AuditError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "refused after {:?}, not after the pool's 10 s",
        started.elapsed()
    );
    let started = Instant::now();
    assert!(log.checkpoint().await.is_err());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "a checkpoint does not hold the queue: {:?}",
        started.elapsed()
    );
}

/// A value the gateway never writes (an unknown action, roles that are not
/// a JSON array, a flag of 2) is an alteration that verify locates and
/// names; the listing refuses to pass it off as an event.
#[tokio::test]
async fn values_the_gateway_never_writes_are_altered() {
    for (store, _guard) in stores().await {
        for (tampering, column) in [
            (
                "UPDATE audit_events SET action = 'fly' WHERE seq = 2",
                "action",
            ),
            (
                "UPDATE audit_events SET roles = 'partner' WHERE seq = 2",
                "roles",
            ),
            (
                "UPDATE audit_events SET complete = 2 WHERE seq = 2",
                "complete",
            ),
        ] {
            let log = fresh_log(&store, 3).await;
            execute(&store, tampering).await;
            let broken = first_broken(&log).await;
            assert_eq!(
                (broken.seq, broken.reason),
                (2, BreakReason::Altered),
                "{}: {tampering}",
                backend(&store)
            );
            assert!(
                broken.detail.contains(&format!("column `{column}`")),
                "{}",
                broken.detail
            );
            let listing = log.list(&EventQuery::default()).await;
            assert!(matches!(listing, Err(AuditError::Read(_))), "{tampering}");
            log.shutdown().await;
        }
    }
}

/// Buffered events take their place in the chain like the others: a read of
/// the log waits for those queued before it, and shutdown writes the rest.
/// The writer lingers a fifth of `buffer_ms` (12 s here) for a batch of only
/// buffered events, so only the flush and the shutdown can have written them.
#[tokio::test]
async fn buffered_events_are_flushed_by_reads_and_shutdown() {
    for (store, _guard) in stores().await {
        let config = AuditConfig {
            buffer_ms: 60_000,
            ..config("gw")
        };
        let log = AuditLog::start(store.clone(), config, Arc::new(test_signer(7)))
            .await
            .expect("start");
        for index in 0..3 {
            log.record_buffered(sample(&format!("b{index}")))
                .await
                .expect("queued");
        }
        // The writer lingers 12 s for more buffered events, asleep: a read
        // (which flushes) and a durable event wake it.
        let prompt = std::time::Duration::from_secs(5);
        let lingering = std::time::Duration::from_millis(300);
        tokio::time::sleep(lingering).await;
        let listed = tokio::time::timeout(prompt, listed_ids(&log, &[]))
            .await
            .expect("the flush wakes the lingering writer");
        assert_eq!(listed, ["b2", "b1", "b0"], "{}", backend(&store));
        // A durable event joining buffered ones is written without lingering.
        log.record_buffered(sample("b3")).await.expect("queued");
        tokio::time::sleep(lingering).await;
        let receipt = tokio::time::timeout(prompt, log.record(sample("d4")))
            .await
            .expect("a durable event wakes the lingering writer")
            .expect("durable");
        assert_eq!(receipt.sequence, 5, "{}", backend(&store));
        log.record_buffered(sample("b5")).await.expect("queued");
        log.shutdown().await;
        let reader = log.reader();
        let page = reader
            .list(&EventQuery::from_params(&[]).unwrap())
            .await
            .unwrap();
        assert_eq!(page.events.len(), 6, "{}", backend(&store));
        assert_eq!(page.events[0].event.request_id, "b5");
        assert!(reader.verify(None, None).await.unwrap().ok);
    }
}

/// A buffered event the store cannot take is kept and written once the log
/// works again, in the same chain; meanwhile the log is not healthy, so the
/// next requests wait for their own events (and are refused).
#[tokio::test]
async fn buffered_events_wait_for_a_failing_log() {
    let (store, _guard) = test_support::sqlite().await;
    let log = start(&store, "gw").await;
    record_many(&log, 2).await;
    execute(
        &store,
        "ALTER TABLE audit_events RENAME TO audit_events_away",
    )
    .await;
    log.record_buffered(sample("kept")).await.expect("queued");
    let started = Instant::now();
    while log.healthy() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the failed write is noticed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(log.record_buffered(sample("refused")).await.is_err());
    execute(
        &store,
        "ALTER TABLE audit_events_away RENAME TO audit_events",
    )
    .await;
    assert_eq!(listed_ids(&log, &[]).await, ["kept", "r1", "r0"]);
    assert!(log.healthy());
    assert!(log.verify(None, None).await.unwrap().ok);
}

/// Under load a batch that callers wait for waits for the events of the
/// requests being answered (`busy_wait_ms`, 60 s here, so only a coming event
/// can end the wait): with four requests in flight, the first durable event
/// is not written alone, and the second one's arrival (two waiting, two more
/// in flight: not more than twice as many) lets both commit together. With
/// no other request in flight, an event is written at once.
#[tokio::test]
async fn a_busy_writer_waits_for_the_events_of_requests_in_flight() {
    for (store, _guard) in stores().await {
        let config = AuditConfig {
            busy_wait_ms: 60_000,
            ..config("gw")
        };
        let log = Arc::new(
            AuditLog::start(store.clone(), config, Arc::new(test_signer(7)))
                .await
                .expect("start"),
        );
        let quiet = log.request_started();
        let alone = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            log.record(sample("alone")),
        )
        .await
        .expect("written without waiting for the busy wait")
        .expect("recorded");
        assert_eq!(alone.sequence, 1, "{}", backend(&store));
        drop(quiet);

        let in_flight: Vec<_> = (0..4).map(|_| log.request_started()).collect();
        let first = tokio::spawn({
            let log = log.clone();
            async move { log.record(sample("first")).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !first.is_finished(),
            "{}: the first event waits for the others",
            backend(&store)
        );
        let second = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            log.record(sample("second")),
        )
        .await
        .expect("the second event ends the wait")
        .expect("recorded");
        let first = first.await.unwrap().expect("recorded");
        assert_eq!(
            (first.sequence, second.sequence),
            (2, 3),
            "{}",
            backend(&store)
        );
        drop(in_flight);
        assert!(log.verify(None, None).await.unwrap().ok);
        log.shutdown().await;
    }
}

/// A batch is written in statements of 512, 256, … rows on SQLite: 1,000
/// events (512 + 256 + 128 + 64 + 32 + 8) keep their order and their chain.
#[tokio::test]
async fn writes_a_large_batch_in_order() {
    for (store, _guard) in stores().await {
        let events: Vec<Event> = (0..1000)
            .map(|index| sample(&format!("e{index}")))
            .collect();
        let (sequences, head) = store::append(&store, &events, None).await.expect("append");
        assert_eq!(
            sequences,
            (1..=1000).collect::<Vec<i64>>(),
            "{}",
            backend(&store)
        );
        assert_eq!(head.seq, 1000);
        let log = start(&store, "gw").await;
        let newest = listed_ids(&log, &[("limit".to_owned(), "3".to_owned())]).await;
        assert_eq!(newest, ["e999", "e998", "e997"], "{}", backend(&store));
        assert!(
            log.verify(None, None).await.unwrap().ok,
            "{}",
            backend(&store)
        );
        log.shutdown().await;
    }
}
