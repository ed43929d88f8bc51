//! Verification of the chain: recompute every hash, check every link and
//! every signed checkpoint, and name the first broken entry and why.
//!
//! Reasons, decided in this order for each event (by ascending `seq`):
//! - `deleted`: a sequence number is missing, or the event links to a hash
//!   seen nowhere and its own hash only matches at a higher sequence
//!   (events removed and the rest renumbered);
//! - `inserted`: the event links to an event further back than its
//!   predecessor (the ones between were inserted), or its hash is wrong and
//!   the next event links past it;
//! - `altered`: the event's hash does not match its content, or its
//!   predecessor was rewritten and rehashed (the link to it breaks), or a
//!   checkpoint's signature is invalid;
//! - `truncated`: a signed checkpoint names a sequence past the end of the
//!   log, or a hash the log no longer has at that sequence.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::CheckpointSigner;
use super::event::GENESIS_HASH;
use super::store::{self, CheckpointRow, EventRow};
use crate::store::Store;

/// Why the chain is broken at an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BreakReason {
    Altered,
    Inserted,
    Deleted,
    Truncated,
}

/// The first entry where the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BrokenEntry {
    pub seq: i64,
    pub reason: BreakReason,
    pub detail: String,
}

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    /// Events checked.
    pub checked: u64,
    /// First and last sequence checked (null when none).
    pub from_seq: Option<i64>,
    pub to_seq: Option<i64>,
    /// Hash of the last event checked.
    pub head_hash: Option<String>,
    /// Signed checkpoints and anchors whose signature was checked.
    pub checkpoints_checked: u64,
    /// Sequence the verified chain starts from when older events were purged.
    pub anchored_at: Option<i64>,
    pub first_broken: Option<BrokenEntry>,
}

/// Events read per query.
const PAGE: i64 = 2000;
/// How many recent hashes are remembered to recognise an insertion.
const RECENT: usize = 4096;
/// How far a renumbering after deletions is looked for.
const RENUMBER_SEARCH: i64 = 64;

/// Verifies events with `seq` in `[from, to]` (the whole log by default).
/// A range that starts after the chain's start trusts the link to the
/// event before `from` when that event exists, else its first `prev_hash`.
pub async fn verify(
    store: &Store,
    signer: &dyn CheckpointSigner,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Verification, sqlx::Error> {
    let statements = store::statements(store).await?;
    let anchor = statements
        .iter()
        .filter(|statement| statement.kind == "anchor")
        .max_by_key(|a| a.seq);
    let chain_start = anchor.map_or(1, |anchor| anchor.seq);
    let in_range = |seq: i64| {
        seq >= from.unwrap_or(chain_start).max(chain_start) && to.is_none_or(|to| seq <= to)
    };

    let mut problems: Vec<BrokenEntry> = Vec::new();
    let mut checkpoints_checked = 0;
    let mut forged = std::collections::HashSet::new();
    for statement in &statements {
        let relevant = if statement.kind == "anchor" {
            Some(statement.id) == anchor.map(|a| a.id)
        } else {
            in_range(statement.seq)
        };
        if !relevant {
            continue;
        }
        checkpoints_checked += 1;
        let signature = hex::decode(&statement.signature).unwrap_or_default();
        if !signer.verify(&statement.key_id, &statement.message(), &signature) {
            forged.insert(statement.id);
            problems.push(BrokenEntry {
                seq: statement.seq,
                reason: BreakReason::Altered,
                detail: format!(
                    "the {} at seq {} has an invalid signature (key {})",
                    statement.kind, statement.seq, statement.key_id
                ),
            });
        }
    }

    let (mut expected_seq, mut expected_prev) = match from {
        Some(from) if from > chain_start => (from, store::hash_of(store, from - 1).await?),
        _ => (
            chain_start,
            Some(anchor.map_or_else(|| GENESIS_HASH.to_owned(), |anchor| anchor.hash.clone())),
        ),
    };
    let first_expected = expected_seq;
    let checkpoints: HashMap<i64, Vec<&CheckpointRow>> = statements
        .iter()
        .filter(|statement| statement.kind == "checkpoint" && !forged.contains(&statement.id))
        .fold(HashMap::new(), |mut map, checkpoint| {
            map.entry(checkpoint.seq).or_default().push(checkpoint);
            map
        });
    let mut recent = Recent::default();
    let mut checked = 0u64;
    let mut last: Option<(i64, String)> = None;
    let mut chain_problem = None;
    'walk: loop {
        let rows = store::events_ascending(store, expected_seq, to, PAGE).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if let Some(problem) =
                check_event(store, &row, expected_seq, expected_prev.as_deref(), &recent).await?
            {
                chain_problem = Some(problem);
                break 'walk;
            }
            if let Some(signed) = checkpoints.get(&row.stored.seq)
                && let Some(checkpoint) = signed
                    .iter()
                    .find(|checkpoint| checkpoint.hash != row.stored.hash)
            {
                chain_problem = Some(BrokenEntry {
                    seq: row.stored.seq,
                    reason: BreakReason::Truncated,
                    detail: format!(
                        "a checkpoint signed hash {} at seq {}, the log has {}: the log was cut and rewritten",
                        checkpoint.hash, row.stored.seq, row.stored.hash
                    ),
                });
                break 'walk;
            }
            recent.push(row.stored.hash.clone(), row.stored.seq);
            checked += 1;
            expected_seq = row.stored.seq + 1;
            expected_prev = Some(row.stored.hash.clone());
            last = Some((row.stored.seq, row.stored.hash));
        }
    }
    if chain_problem.is_none() {
        let end = last.as_ref().map_or(first_expected - 1, |(seq, _)| *seq);
        if let Some(beyond) = statements
            .iter()
            .filter(|statement| {
                statement.kind == "checkpoint"
                    && !forged.contains(&statement.id)
                    && statement.seq > end
                    && in_range(statement.seq)
            })
            .max_by_key(|statement| statement.seq)
        {
            chain_problem = Some(BrokenEntry {
                seq: end + 1,
                reason: BreakReason::Truncated,
                detail: format!(
                    "a checkpoint was signed at seq {} but the log ends at seq {end}",
                    beyond.seq
                ),
            });
        }
    }
    problems.extend(chain_problem);
    let first_broken = problems.into_iter().min_by_key(|problem| problem.seq);
    Ok(Verification {
        ok: first_broken.is_none(),
        checked,
        from_seq: (checked > 0).then_some(first_expected),
        to_seq: last.as_ref().map(|(seq, _)| *seq),
        head_hash: last.map(|(_, hash)| hash),
        checkpoints_checked,
        anchored_at: anchor.map(|anchor| anchor.seq),
        first_broken,
    })
}

/// Checks one event against the expected position and link.
async fn check_event(
    store: &Store,
    row: &EventRow,
    expected_seq: i64,
    expected_prev: Option<&str>,
    recent: &Recent,
) -> Result<Option<BrokenEntry>, sqlx::Error> {
    let broken = |seq: i64, reason: BreakReason, detail: String| {
        Ok(Some(BrokenEntry {
            seq,
            reason,
            detail,
        }))
    };
    if row.stored.seq > expected_seq {
        let missing = if row.stored.seq - 1 == expected_seq {
            format!("seq {expected_seq} is")
        } else {
            format!("seqs {expected_seq} to {} are", row.stored.seq - 1)
        };
        return broken(
            expected_seq,
            BreakReason::Deleted,
            format!("{missing} missing"),
        );
    }
    if row.stored.seq < expected_seq {
        return broken(
            row.stored.seq,
            BreakReason::Inserted,
            format!("seq {} appears twice", row.stored.seq),
        );
    }
    let hash_ok = row.hash_at(row.stored.seq).as_ref() == Some(&row.stored.hash);
    let link_ok = expected_prev.is_none_or(|prev| prev == row.stored.prev_hash);
    if !link_ok {
        if let Some(earlier) = recent.seq_of(&row.stored.prev_hash) {
            return broken(
                earlier + 1,
                BreakReason::Inserted,
                format!(
                    "seq {} links to seq {earlier}: the events between were inserted",
                    row.stored.seq
                ),
            );
        }
        if hash_ok {
            return broken(
                row.stored.seq - 1,
                BreakReason::Altered,
                format!(
                    "seq {} no longer links to seq {}: that event was rewritten",
                    row.stored.seq,
                    row.stored.seq - 1
                ),
            );
        }
        if let Some(original) = (1..=RENUMBER_SEARCH)
            .map(|shift| row.stored.seq + shift)
            .find(|seq| row.hash_at(*seq).as_ref() == Some(&row.stored.hash))
        {
            return broken(
                row.stored.seq,
                BreakReason::Deleted,
                format!(
                    "the event now at seq {} was written as seq {original}: events before it were deleted",
                    row.stored.seq
                ),
            );
        }
        return broken(
            row.stored.seq,
            BreakReason::Altered,
            format!("seq {}: hash and link do not match", row.stored.seq),
        );
    }
    if !hash_ok {
        let next = store::events_ascending(store, row.stored.seq + 1, None, 1).await?;
        if let (Some(next), Some(prev)) = (next.first(), expected_prev)
            && next.stored.prev_hash == prev
        {
            return broken(
                row.stored.seq,
                BreakReason::Inserted,
                format!(
                    "seq {} links past seq {}: that event was inserted",
                    next.stored.seq, row.stored.seq
                ),
            );
        }
        return broken(
            row.stored.seq,
            BreakReason::Altered,
            match &row.unreadable {
                Some(reason) => format!("seq {}: {reason}", row.stored.seq),
                None => format!(
                    "seq {}: the content does not match its hash",
                    row.stored.seq
                ),
            },
        );
    }
    Ok(None)
}

/// The hashes of the last few thousand events checked.
#[derive(Default)]
struct Recent {
    order: VecDeque<String>,
    seqs: HashMap<String, i64>,
}

impl Recent {
    fn push(&mut self, hash: String, seq: i64) {
        if self.order.len() == RECENT
            && let Some(oldest) = self.order.pop_front()
        {
            self.seqs.remove(&oldest);
        }
        self.seqs.insert(hash.clone(), seq);
        self.order.push_back(hash);
    }

    fn seq_of(&self, hash: &str) -> Option<i64> {
        self.seqs.get(hash).copied()
    }
}
