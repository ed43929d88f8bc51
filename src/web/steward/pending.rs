//! Files checked by a dry run and waiting for the steward's "Publier": kept
//! in a temporary file on this instance for [`KEEP`], under a random token
//! bound to the session and the dataset. The publish form sends the token
//! only; the browser never names a path, and another session's token opens
//! nothing. At most [`MAX_PENDING`] files wait (the oldest goes first); an
//! expired or dropped entry removes its file.
//!
//! The files live on the instance that ran the dry run: behind a load
//! balancer, the pages need sticky sessions for "Publier" to find its file
//! (a lost file asks for the file again, nothing is published).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::catalog::publish::UploadOptions;

/// How long a checked file waits for "Publier".
pub const KEEP: Duration = Duration::from_secs(15 * 60);
/// Files waiting at most, across sessions.
pub const MAX_PENDING: usize = 32;

/// A checked file waiting to be published.
pub struct PendingUpload {
    /// The session that checked it (`Caller::token_id` of a page session).
    pub session: String,
    pub dataset: String,
    pub file: tempfile::NamedTempFile,
    pub bytes: u64,
    pub sha256: String,
    pub file_name: Option<String>,
    pub options: UploadOptions,
    pub reason: Option<String>,
    created: Instant,
    /// Order of arrival, to let the oldest go first.
    sequence: u64,
}

impl PendingUpload {
    pub fn new(
        session: String,
        dataset: String,
        received: crate::http::publishing::upload::Received,
        file_name: Option<String>,
        options: UploadOptions,
        reason: Option<String>,
    ) -> PendingUpload {
        PendingUpload {
            session,
            dataset,
            file: received.file,
            bytes: received.bytes,
            sha256: received.sha256,
            file_name,
            options,
            reason,
            created: Instant::now(),
            sequence: 0,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.created) >= KEEP
    }
}

/// The files waiting, by token.
#[derive(Clone, Default)]
pub struct PendingUploads(Arc<Mutex<Waiting>>);

#[derive(Default)]
struct Waiting {
    files: HashMap<String, PendingUpload>,
    arrivals: u64,
}

impl PendingUploads {
    /// Keeps `upload`; the token that publishes it.
    pub fn keep(&self, upload: PendingUpload) -> String {
        let token = super::super::session::random_token();
        self.put(token.clone(), upload);
        token
    }

    /// Keeps `upload` under `token` (again, after a conflict).
    pub fn put(&self, token: String, mut upload: PendingUpload) {
        let mut waiting = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        waiting.files.retain(|_, waiting| !waiting.expired(now));
        while waiting.files.len() >= MAX_PENDING {
            let oldest = waiting
                .files
                .iter()
                .min_by_key(|(_, waiting)| waiting.sequence)
                .map(|(token, _)| token.clone());
            match oldest {
                Some(oldest) => waiting.files.remove(&oldest),
                None => break,
            };
        }
        waiting.arrivals += 1;
        upload.sequence = waiting.arrivals;
        waiting.files.insert(token, upload);
    }

    /// The file `token` names, taken out, when it is this session's check
    /// of this dataset and has not expired; `None` otherwise (another
    /// session's entry stays where it is).
    pub fn take(&self, token: &str, session: &str, dataset: &str) -> Option<PendingUpload> {
        self.take_at(token, session, dataset, Instant::now())
    }

    fn take_at(
        &self,
        token: &str,
        session: &str,
        dataset: &str,
        now: Instant,
    ) -> Option<PendingUpload> {
        let mut waiting = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let found = waiting.files.get(token)?;
        if found.session != session || found.dataset != dataset {
            return None;
        }
        let upload = waiting.files.remove(token)?;
        (!upload.expired(now)).then_some(upload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(session: &str, dataset: &str) -> PendingUpload {
        PendingUpload {
            session: session.to_owned(),
            dataset: dataset.to_owned(),
            file: tempfile::NamedTempFile::new().unwrap(),
            bytes: 0,
            sha256: String::new(),
            file_name: None,
            options: UploadOptions::default(),
            reason: None,
            created: Instant::now(),
            sequence: 0,
        }
    }

    /// A token opens its file once, for its session and dataset only; the
    /// file is removed with its entry.
    #[test]
    fn tokens_are_bound_to_their_session() {
        let pending = PendingUploads::default();
        let token = pending.keep(upload("session:a", "velos"));
        assert_eq!(token.len(), 43);
        assert!(pending.take(&token, "session:b", "velos").is_none());
        assert!(pending.take(&token, "session:a", "autre").is_none());
        assert!(pending.take("not-a-token", "session:a", "velos").is_none());
        let taken = pending.take(&token, "session:a", "velos").unwrap();
        let path = taken.file.path().to_owned();
        assert!(path.exists());
        assert!(pending.take(&token, "session:a", "velos").is_none());
        drop(taken);
        assert!(!path.exists(), "the checked file goes with its entry");
    }

    /// Expired entries open nothing; the oldest goes when too many wait.
    #[test]
    fn expires_and_bounds_the_waiting_files() {
        let pending = PendingUploads::default();
        pending.put("old".to_owned(), upload("session:a", "velos"));
        let later = Instant::now() + KEEP;
        assert!(
            pending
                .take_at("old", "session:a", "velos", later)
                .is_none()
        );
        let first = pending.keep(upload("session:a", "velos"));
        for _ in 1..MAX_PENDING {
            pending.keep(upload("session:a", "velos"));
        }
        let last = pending.keep(upload("session:a", "velos"));
        assert!(pending.take(&first, "session:a", "velos").is_none());
        assert!(pending.take(&last, "session:a", "velos").is_some());
    }
}
