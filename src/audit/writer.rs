//! The writer task: group commit. It takes the first waiting event, drains
//! whatever else is waiting (up to `max_batch_size`, waiting at most
//! `max_batch_wait_ms` for more), writes the batch in one transaction and
//! answers every caller once it is committed. It also writes checkpoints.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::event::EventRecord;
use super::{AuditConfig, AuditError, Shared, store};

/// What the writer is asked to do.
pub(crate) enum Command {
    Append {
        record: Box<EventRecord>,
        reply: oneshot::Sender<Result<i64, AuditError>>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<(), AuditError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

type Waiting = (Box<EventRecord>, oneshot::Sender<Result<i64, AuditError>>);

pub(crate) async fn run(
    shared: Arc<Shared>,
    config: AuditConfig,
    mut commands: mpsc::Receiver<Command>,
) {
    let period = Duration::from_secs(config.checkpoint_interval_seconds.max(1));
    let mut checkpoints = tokio::time::interval_at(Instant::now() + period, period);
    checkpoints.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let wait = Duration::from_millis(config.max_batch_wait_ms);
    let mut batch: Vec<Waiting> = Vec::with_capacity(config.max_batch_size);
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            _ = checkpoints.tick() => {
                if let Err(error) = checkpoint(&shared).await {
                    tracing::error!(%error, "cannot write the periodic audit checkpoint");
                }
                continue;
            }
        };
        let Some(command) = command else { break };
        let mut control = None;
        match command {
            Command::Append { record, reply } => batch.push((record, reply)),
            other => control = Some(other),
        }
        if control.is_none() {
            let deadline = Instant::now() + wait;
            while batch.len() < config.max_batch_size {
                let next = match commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(mpsc::error::TryRecvError::Empty) if !wait.is_zero() => {
                        tokio::time::timeout_at(deadline, commands.recv())
                            .await
                            .ok()
                            .flatten()
                    }
                    Err(_) => None,
                };
                match next {
                    Some(Command::Append { record, reply }) => batch.push((record, reply)),
                    Some(other) => {
                        control = Some(other);
                        break;
                    }
                    None => break,
                }
            }
        }
        if !batch.is_empty() {
            commit(&shared, &mut batch).await;
        }
        match control {
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
                            batch.push((record, reply));
                            commit(&shared, &mut batch).await;
                        }
                        Command::Checkpoint { reply } => {
                            let _ = reply.send(Err(AuditError::Stopped));
                        }
                        Command::Shutdown { reply } => {
                            let _ = reply.send(());
                        }
                    }
                }
                let _ = reply.send(());
                return;
            }
            _ => {}
        }
    }
}

/// Writes the batch in one transaction and answers every caller.
async fn write_batch(shared: &Shared, batch: &mut Vec<Waiting>) {
    let records: Vec<EventRecord> = batch.iter().map(|(record, _)| (**record).clone()).collect();
    match store::append(&shared.store, &records).await {
        Ok(sequences) => {
            shared.healthy.store(true, Ordering::Relaxed);
            for ((_, reply), sequence) in batch.drain(..).zip(sequences) {
                let _ = reply.send(Ok(sequence));
            }
        }
        Err(error) => {
            // A store that went away: health follows the store's probe, and
            // comes back with it without waiting for the next write.
            let store_outage =
                crate::store::is_unavailable(&error) && shared.store_health.get().is_some();
            if !store_outage {
                shared.healthy.store(false, Ordering::Relaxed);
            }
            tracing::error!(%error, events = batch.len(), "cannot write audit events");
            let message = error.to_string();
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(AuditError::Unavailable(message.clone())));
            }
        }
    }
}

/// Writes the batch, or answers every caller at once while the store is
/// known to be down: a batch waiting for a connection would make each
/// request wait twice (for its query, then for its event), and every event
/// queued behind it too.
async fn commit(shared: &Shared, batch: &mut Vec<Waiting>) {
    match shared.store_down() {
        Some(why) => {
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(AuditError::Unavailable(why.clone())));
            }
        }
        None => write_batch(shared, batch).await,
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
