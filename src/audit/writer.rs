//! The writer task: group commit. It takes the first waiting event, drains
//! whatever else is waiting (up to `max_batch_size`, waiting at most
//! `max_batch_wait_ms` for more), writes the batch in one transaction and
//! answers every caller once it is committed. It also writes checkpoints.
//!
//! A buffered event has nobody waiting for it: a batch of only buffered
//! events lingers up to a fifth of `buffer_ms` (after its first event was
//! queued) to gather more, and stops lingering as soon as an event somebody
//! waits for joins it. While it lingers the writer sleeps: queuing a
//! buffered event does not wake it (a wake-up per open-data read cost the
//! gateway's processors more than the event itself); queuing anything
//! somebody waits for does (`Shared::urgent`).
//!
//! Under load a batch that callers wait for waits too, up to `busy_wait_ms`
//! after it began to gather, while many more requests are being answered
//! than callers wait in it (see `Shared::more_coming`): their events are on
//! their way, and one commit for all of them costs the store less CPU than
//! several. Measured with 256 closed-data readers on PostgreSQL: batches of
//! 20 events became 30-50, and the store's CPU per event went down a fifth.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::event::Event;
use super::{AuditConfig, AuditError, Shared, store};
use crate::telemetry::metrics;

/// Who waits for an event's commit.
pub(crate) enum Reply {
    /// The caller, for the sequence number.
    Wait(oneshot::Sender<Result<i64, AuditError>>),
    /// Nobody: queued at `queued_us` (see `Shared::now_us`).
    Buffered { queued_us: u64 },
}

impl Reply {
    /// Answers the caller, or notes a buffered event as done with.
    fn send(self, shared: &Shared, result: Result<i64, AuditError>) {
        match self {
            Reply::Wait(sender) => {
                let _ = sender.send(result);
            }
            Reply::Buffered { queued_us } => shared.buffered_done(1, queued_us),
        }
    }
}

/// What the writer is asked to do.
pub(crate) enum Command {
    Append {
        record: Box<Event>,
        reply: Reply,
    },
    /// Answered once every event queued before it is written (or failed).
    Flush {
        reply: oneshot::Sender<()>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<(), AuditError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

type Waiting = (Box<Event>, Reply);

/// How long a batch of only buffered events waits for more.
fn linger(config: &AuditConfig) -> Duration {
    Duration::from_millis(config.buffer_ms / 5)
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    config: AuditConfig,
    mut commands: mpsc::Receiver<Command>,
) {
    let period = Duration::from_secs(config.checkpoint_interval_seconds.max(1));
    let mut checkpoints = tokio::time::interval_at(Instant::now() + period, period);
    checkpoints.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let wait = Duration::from_millis(config.max_batch_wait_ms);
    let busy_wait = Duration::from_millis(config.busy_wait_ms);
    let mut batch: Vec<Waiting> = Vec::with_capacity(config.max_batch_size);
    // Buffered events the store could not take yet, oldest first.
    let mut retry: Vec<Waiting> = Vec::new();
    // Doubles while the store keeps refusing them, up to five seconds.
    let first_retry = Duration::from_millis(config.buffer_ms.clamp(100, 1000));
    let mut retry_every = first_retry;
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            () = tokio::time::sleep(retry_every), if !retry.is_empty() => {
                batch.append(&mut retry);
                commit(&shared, &mut batch, &mut retry).await;
                retry_every = if retry.is_empty() {
                    first_retry
                } else {
                    (retry_every * 2).min(Duration::from_secs(5))
                };
                continue;
            }
            _ = checkpoints.tick() => {
                if let Err(error) = checkpoint(&shared).await {
                    tracing::error!(%error, "cannot write the periodic audit checkpoint");
                }
                continue;
            }
        };
        let Some(command) = command else { break };
        // Events waiting to be written again go first.
        batch.append(&mut retry);
        let mut control = None;
        let mut deadline = Instant::now() + wait;
        match command {
            Command::Append { record, reply } => {
                if let Reply::Buffered { queued_us } = &reply {
                    deadline = deadline.max(queued_instant(&shared, *queued_us) + linger(&config));
                }
                batch.push((record, reply));
            }
            other => control = Some(other),
        }
        if control.is_none() {
            // Callers waiting in the batch; under load it waits for more
            // events, until `busy` after it began to gather.
            let mut waiting = usize::from(matches!(batch.last(), Some((_, Reply::Wait(_)))));
            let busy = Instant::now() + busy_wait;
            while batch.len() < config.max_batch_size {
                let next = match commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        let now = Instant::now();
                        if waiting == 0 && deadline > now {
                            // Only buffered events so far: sleep until the
                            // deadline rather than wake for each one, unless
                            // a command somebody waits for comes.
                            tokio::select! {
                                () = shared.urgent.notified() => {}
                                () = tokio::time::sleep_until(deadline) => {}
                            }
                            continue;
                        }
                        let until = if deadline > now {
                            Some(deadline)
                        } else if waiting > 0 && busy > now && shared.more_coming(waiting) {
                            Some(busy)
                        } else {
                            None
                        };
                        match until {
                            Some(until) => tokio::time::timeout_at(until, commands.recv())
                                .await
                                .ok()
                                .flatten(),
                            None => None,
                        }
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                };
                match next {
                    Some(Command::Append { record, reply }) => {
                        if matches!(reply, Reply::Wait(_)) {
                            // Somebody waits: no more lingering than for durable events.
                            deadline = deadline.min(Instant::now() + wait);
                            waiting += 1;
                        }
                        batch.push((record, reply));
                    }
                    Some(other) => {
                        control = Some(other);
                        break;
                    }
                    None => break,
                }
            }
        }
        if !batch.is_empty() {
            commit(&shared, &mut batch, &mut retry).await;
        }
        match control {
            Some(Command::Flush { reply }) => {
                let _ = reply.send(());
            }
            Some(Command::Checkpoint { reply }) => {
                let _ = reply.send(checkpoint(&shared).await);
            }
            Some(Command::Shutdown { reply }) => {
                if let Err(error) = checkpoint(&shared).await {
                    tracing::error!(%error, "cannot write the audit checkpoint at shutdown");
                }
                commands.close();
                // Events sent before the channel closed are still written.
                while let Some(command) = commands.recv().await {
                    match command {
                        Command::Append { record, reply } => {
                            batch.append(&mut retry);
                            batch.push((record, reply));
                            commit(&shared, &mut batch, &mut retry).await;
                        }
                        Command::Checkpoint { reply } => {
                            let _ = reply.send(Err(AuditError::Stopped));
                        }
                        Command::Flush { reply } => {
                            let _ = reply.send(());
                        }
                        Command::Shutdown { reply } => {
                            let _ = reply.send(());
                        }
                    }
                }
                if !retry.is_empty() {
                    batch.append(&mut retry);
                    commit(&shared, &mut batch, &mut retry).await;
                }
                if !retry.is_empty() {
                    tracing::error!(
                        events = retry.len(),
                        "buffered audit events lost at shutdown: the store does not take them"
                    );
                    for (_, reply) in retry.drain(..) {
                        reply.send(&shared, Err(AuditError::Stopped));
                    }
                }
                let _ = reply.send(());
                return;
            }
            _ => {}
        }
    }
}

/// When an event queued at `queued_us` was queued.
fn queued_instant(shared: &Shared, queued_us: u64) -> Instant {
    Instant::from_std(shared.epoch) + Duration::from_micros(queued_us)
}

/// Writes the batch in one transaction and answers every caller.
///
/// When the store refuses the batch's data (rather than being out of reach),
/// its events are written again one at a time: an event the store cannot
/// hold fails alone, and the other callers of its batch are answered as if
/// it had never been there.
async fn write_batch(shared: &Shared, batch: &mut Vec<Waiting>, retry: &mut Vec<Waiting>) {
    shared
        .partitions
        .ensure(&shared.store, chrono::Utc::now())
        .await;
    let records: Vec<Event> = batch.iter().map(|(record, _)| (**record).clone()).collect();
    let started = std::time::Instant::now();
    let known = shared.known_head();
    let written = store::append(&shared.store, &records, known.as_ref()).await;
    metrics::audit_batch(records.len(), started.elapsed().as_secs_f64());
    shared.set_known_head(written.as_ref().ok().map(|(_, head)| head.clone()));
    match written {
        Ok((sequences, _)) => {
            shared.healthy.store(true, Ordering::Relaxed);
            for ((_, reply), sequence) in batch.drain(..).zip(sequences) {
                reply.send(shared, Ok(sequence));
            }
        }
        Err(error) if batch.len() > 1 && refused_data(&error) => {
            tracing::warn!(%error, events = batch.len(), "the store refused a batch of audit events: writing them one by one");
            write_one_by_one(shared, batch, retry).await;
        }
        Err(error) => fail_all(shared, batch, retry, &error),
    }
}

/// Writes each event in its own transaction; stops at the first sign that
/// the store is out of reach, failing the events still waiting.
async fn write_one_by_one(shared: &Shared, batch: &mut Vec<Waiting>, retry: &mut Vec<Waiting>) {
    let mut waiting = std::mem::take(batch).into_iter();
    let mut written = false;
    // Buffered events refused: dropped if others went in (their data is at
    // fault), written again if none did (the log is).
    let mut refused: Vec<(Waiting, String)> = Vec::new();
    while let Some((record, reply)) = waiting.next() {
        let known = shared.known_head();
        let appended = store::append(
            &shared.store,
            std::slice::from_ref(&*record),
            known.as_ref(),
        )
        .await;
        shared.set_known_head(appended.as_ref().ok().map(|(_, head)| head.clone()));
        match appended {
            Ok((sequences, _)) => {
                written = true;
                shared.healthy.store(true, Ordering::Relaxed);
                reply.send(
                    shared,
                    sequences.first().copied().ok_or_else(|| {
                        AuditError::Unavailable("the store returned no sequence".to_owned())
                    }),
                );
            }
            Err(error) if refused_data(&error) => {
                tracing::error!(%error, request_id = %record.request_id, "the store refused one audit event");
                metrics::audit_failures(1);
                match reply {
                    Reply::Buffered { .. } => refused.push(((record, reply), error.to_string())),
                    reply => reply.send(shared, Err(AuditError::Unavailable(error.to_string()))),
                }
            }
            Err(error) => {
                batch.push((record, reply));
                batch.extend(waiting);
                retry.extend(refused.into_iter().map(|(waiting, _)| waiting));
                fail_all(shared, batch, retry, &error);
                return;
            }
        }
    }
    for ((record, reply), why) in refused {
        if written {
            reply.send(shared, Err(AuditError::Unavailable(why)));
        } else {
            retry.push((record, reply));
        }
    }
    if !written {
        // Not one event could be stored: the log itself is broken (a table
        // gone, a permission revoked), not just one event's content.
        shared.healthy.store(false, Ordering::Relaxed);
    }
}

/// Fails the events somebody waits for; keeps the buffered ones to write again.
fn fail_all(
    shared: &Shared,
    batch: &mut Vec<Waiting>,
    retry: &mut Vec<Waiting>,
    error: &sqlx::Error,
) {
    // A store that went away: health follows the store's probe, and comes
    // back with it without waiting for the next write.
    let store_outage = crate::store::is_unavailable(error) && shared.store_health.get().is_some();
    if !store_outage {
        shared.healthy.store(false, Ordering::Relaxed);
    }
    tracing::error!(%error, events = batch.len(), "cannot write audit events");
    metrics::audit_failures(batch.len());
    if matches!(error, sqlx::Error::PoolTimedOut) {
        metrics::pool_timeout("audit");
    }
    let message = error.to_string();
    keep_buffered(shared, batch, retry, &message);
}

/// Whether the store answered and refused the data itself (a value it
/// cannot hold, a constraint, a trigger), as opposed to being unreachable,
/// out of connections or resources, or shutting down (PostgreSQL classes
/// 08, 53, 57, 58), when writing events one by one would only fail slower.
fn refused_data(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Encode(_) => true,
        sqlx::Error::Database(error) => !error.code().is_some_and(|code| {
            ["08", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class))
        }),
        _ => false,
    }
}

/// Writes the batch, or answers every caller at once while the store is
/// known to be down: a batch waiting for a connection would make each
/// request wait twice (for its query, then for its event), and every event
/// queued behind it too.
async fn commit(shared: &Shared, batch: &mut Vec<Waiting>, retry: &mut Vec<Waiting>) {
    match shared.store_down() {
        Some(why) => {
            metrics::audit_failures(batch.len());
            keep_buffered(shared, batch, retry, &why);
        }
        None => write_batch(shared, batch, retry).await,
    }
}

/// Answers the callers of `batch` with the failure; its buffered events
/// (nobody waits for them) go to `retry`, to be written again.
fn keep_buffered(shared: &Shared, batch: &mut Vec<Waiting>, retry: &mut Vec<Waiting>, why: &str) {
    for (record, reply) in batch.drain(..) {
        match reply {
            Reply::Buffered { .. } => retry.push((record, reply)),
            waiting => waiting.send(shared, Err(AuditError::Unavailable(why.to_owned()))),
        }
    }
}

async fn checkpoint(shared: &Shared) -> Result<(), AuditError> {
    // Events queue behind a checkpoint: it must not wait for a store that is down.
    if let Some(why) = shared.store_down() {
        return Err(AuditError::Unavailable(why));
    }
    match store::checkpoint(&shared.store, shared.signer.as_ref()).await {
        Ok(_) => Ok(()),
        Err(error) => Err(AuditError::Unavailable(error.to_string())),
    }
}
