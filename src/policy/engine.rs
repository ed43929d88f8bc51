//! The policy engine: an immutable casbin enforcer and its decision cache,
//! swapped together on reload.
//!
//! Readers load the current snapshot with `arc-swap` (no lock); reloads and
//! catalogue changes build a new snapshot under an async mutex and swap it in
//! only when it loaded and passed validation.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use casbin::{CoreApi, Enforcer, MemoryAdapter, MgmtApi};
use sha2::{Digest, Sha256};

use super::cache::DecisionCache;
use super::rules::{Effect, PolicyFile, PolicyRule, is_valid_role, parse_model, parse_policy};
use super::{Action, DatasetRef, Decision, PolicyError, PolicySettings, reasons};
use crate::catalog::definition::{AccessLevel, MetadataVisibility};
use crate::telemetry::metrics;

/// Name of the casbin model file in the policy folder.
pub const MODEL_FILE: &str = "model.conf";
/// Name of the casbin policy file in the policy folder.
pub const POLICY_FILE: &str = "policy.csv";
/// Object of the requests for global actions (`audit:read`, `admin`).
const GLOBAL_OBJECT: &str = "audit";
/// Separates the parts of a cache key; cannot occur in names.
const KEY_SEPARATOR: char = '\u{1f}';

/// Decides who may do what; cheap to clone (one shared state).
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    settings: PolicySettings,
    current: ArcSwap<Snapshot>,
    /// What the current snapshot was built from; held while rebuilding so that
    /// reloads and catalogue changes do not race.
    sources: tokio::sync::Mutex<Sources>,
    /// False from a failed reload of the files until one succeeds.
    last_reload_ok: std::sync::atomic::AtomicBool,
    /// False when the policy is loaded from text (kept in the store): the
    /// files are then neither read nor watched.
    from_files: bool,
    /// The store's version in force (0: none, or from files).
    store_version: std::sync::atomic::AtomicI64,
}

struct Sources {
    model_text: String,
    policy: PolicyFile,
    /// The rules as written (what `policy` was parsed from).
    rules_text: String,
    datasets: Vec<(String, AccessLevel)>,
    /// Each dataset's `publisher:<slug>` group.
    publishers: Vec<(String, String)>,
    /// Fingerprint of the files last looked at (loaded or refused), so that
    /// the watcher reports a broken file once, not at every tick.
    seen: Option<[u8; 32]>,
    /// Last error reading the files, for the same reason.
    read_error: Option<String>,
    /// A changed fingerprint seen at the previous tick: files are loaded only
    /// once they read the same at two ticks, never half-written by an editor.
    settling: Option<[u8; 32]>,
}

/// One loaded policy: everything a decision needs, never mutated.
struct Snapshot {
    enforcer: Enforcer,
    /// Policy rule by its casbin values, to name the rule that decided.
    rules: HashMap<Vec<String>, Arc<RuleInfo>>,
    /// Access level of each catalogue dataset, as given to casbin's `g2`.
    levels: HashMap<String, AccessLevel>,
    cache: DecisionCache,
    generation: u64,
}

#[derive(Debug)]
struct RuleInfo {
    line: usize,
    text: String,
    effect: Effect,
    view: Option<String>,
}

impl RuleInfo {
    /// Sort key among matching allow rules: full access first, then file order.
    fn preference(&self) -> (bool, usize) {
        (self.view.is_some(), self.line)
    }
}

/// What casbin said for a set of roles.
enum Outcome {
    Allowed(Arc<RuleInfo>),
    Denied(Arc<RuleInfo>),
    NoRule,
    /// The catalogue gave another level (or none) than the policy knows.
    OutOfSync,
    Failed,
}

impl fmt::Debug for PolicyEngine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PolicyEngine")
            .field("dir", &self.inner.dir)
            .field("generation", &self.generation())
            .finish()
    }
}

struct PolicyFiles {
    model: String,
    policy: String,
    fingerprint: [u8; 32],
}

async fn read_files(dir: &Path) -> Result<PolicyFiles, PolicyError> {
    let read = |name: &'static str| {
        let file = dir.join(name);
        async move {
            tokio::fs::read_to_string(&file)
                .await
                .map_err(|source| PolicyError::Io { file, source })
        }
    };
    let model = read(MODEL_FILE).await?;
    let policy = read(POLICY_FILE).await?;
    let mut hasher = Sha256::new();
    hasher.update((model.len() as u64).to_le_bytes());
    hasher.update(model.as_bytes());
    hasher.update(policy.as_bytes());
    Ok(PolicyFiles {
        model,
        policy,
        fingerprint: hasher.finalize().into(),
    })
}

fn casbin_error(error: casbin::Error) -> PolicyError {
    PolicyError::Casbin(error.to_string())
}

/// Builds a checked snapshot; nothing is shared with the running one.
async fn build_snapshot(
    dir: &Path,
    model_text: &str,
    policy: &PolicyFile,
    datasets: &[(String, AccessLevel)],
    publishers: &[(String, String)],
    generation: u64,
) -> Result<Snapshot, PolicyError> {
    let model = parse_model(&dir.join(MODEL_FILE), model_text).await?;
    let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
        .await
        .map_err(casbin_error)?;
    let rules: Vec<Vec<String>> = policy.rules.iter().map(PolicyRule::casbin_values).collect();
    if !rules.is_empty() {
        enforcer
            .add_named_policies("p", rules)
            .await
            .map_err(casbin_error)?;
    }
    let inheritance: Vec<Vec<String>> = policy
        .inheritance
        .iter()
        .map(|(role, parent)| vec![role.clone(), parent.clone()])
        .collect();
    if !inheritance.is_empty() {
        enforcer
            .add_named_grouping_policies("g", inheritance)
            .await
            .map_err(casbin_error)?;
    }
    // The last level given for an id wins: a dataset is in exactly one level.
    let levels: HashMap<String, AccessLevel> = datasets.iter().cloned().collect();
    let mut groups: Vec<Vec<String>> = levels
        .iter()
        .map(|(id, level)| vec![id.clone(), format!("level:{}", level.as_str())])
        .collect();
    groups.extend(
        policy
            .groups
            .iter()
            .map(|(id, group)| vec![id.clone(), group.clone()]),
    );
    groups.extend(
        publishers
            .iter()
            .filter(|(id, _)| levels.contains_key(id))
            .map(|(id, group)| vec![id.clone(), group.clone()]),
    );
    if !groups.is_empty() {
        enforcer
            .add_named_grouping_policies("g2", groups)
            .await
            .map_err(casbin_error)?;
    }
    warn_about_unknown_datasets(policy, &levels);
    // The model passed our checks, but casbin may still fail or panic when it
    // evaluates: find out now, not on the first request.
    let probe = catch_unwind(AssertUnwindSafe(|| {
        enforcer.enforce_ex(("anonymous", "probe", Action::Read.as_str()))
    }));
    match probe {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(casbin_error(error)),
        Err(_) => {
            return Err(PolicyError::Casbin(
                "the model panics when evaluated".into(),
            ));
        }
    }
    let rules = policy
        .rules
        .iter()
        .map(|rule| {
            let info = RuleInfo {
                line: rule.line,
                text: rule.text(),
                effect: rule.effect,
                view: rule.view.clone(),
            };
            (rule.casbin_values(), Arc::new(info))
        })
        .collect();
    Ok(Snapshot {
        enforcer,
        rules,
        levels,
        cache: DecisionCache::new(),
        generation,
    })
}

/// A rule on a dataset id the catalogue lacks is legal (the catalogue may
/// catch up) but often a typo, which would silently not deny or not grant.
fn warn_about_unknown_datasets(policy: &PolicyFile, levels: &HashMap<String, AccessLevel>) {
    let named = policy
        .rules
        .iter()
        .map(|rule| (rule.object.as_str(), rule.line))
        .chain(policy.groups.iter().map(|(id, _)| (id.as_str(), 0)));
    for (object, line) in named {
        let is_dataset = object != "*" && object != GLOBAL_OBJECT && !object.contains(':');
        if is_dataset && !levels.contains_key(object) {
            tracing::warn!(
                dataset = object,
                line,
                "the policy names a dataset the catalogue does not have"
            );
        }
    }
}

impl PolicyEngine {
    /// Loads `model.conf` and `policy.csv` from `dir`, placing each of
    /// `datasets` (id, access level) in its `level:<level>` group.
    pub async fn load(
        dir: &Path,
        datasets: &[(String, AccessLevel)],
    ) -> Result<PolicyEngine, PolicyError> {
        PolicyEngine::load_with(dir, datasets, PolicySettings::default()).await
    }

    /// [`PolicyEngine::load`] with the decision's settings from configuration.
    pub async fn load_with(
        dir: &Path,
        datasets: &[(String, AccessLevel)],
        settings: PolicySettings,
    ) -> Result<PolicyEngine, PolicyError> {
        let files = read_files(dir).await?;
        let policy = parse_policy(&dir.join(POLICY_FILE), &files.policy)?;
        let snapshot = build_snapshot(dir, &files.model, &policy, datasets, &[], 1).await?;
        tracing::info!(
            folder = %dir.display(),
            rules = policy.rules.len(),
            datasets = datasets.len(),
            "policy loaded"
        );
        let sources = Sources {
            model_text: files.model,
            policy,
            rules_text: files.policy,
            datasets: datasets.to_vec(),
            publishers: Vec::new(),
            seen: Some(files.fingerprint),
            read_error: None,
            settling: None,
        };
        Ok(PolicyEngine::assemble(
            dir, settings, snapshot, sources, true, 0,
        ))
    }

    /// Loads the policy from the text of its model and rules (version
    /// `version` of the policies kept in the store), validated exactly as
    /// files are; errors name `label`/`model.conf` and `label`/`policy.csv`.
    /// The files are then never read: see [`PolicyEngine::replace_text`].
    pub async fn load_text(
        label: &Path,
        model: &str,
        rules: &str,
        version: i64,
        datasets: &[(String, AccessLevel)],
        settings: PolicySettings,
    ) -> Result<PolicyEngine, PolicyError> {
        let policy = parse_policy(&label.join(POLICY_FILE), rules)?;
        let snapshot = build_snapshot(label, model, &policy, datasets, &[], 1).await?;
        tracing::info!(
            version,
            rules = policy.rules.len(),
            datasets = datasets.len(),
            "policy loaded from the store"
        );
        let sources = Sources {
            model_text: model.to_owned(),
            policy,
            rules_text: rules.to_owned(),
            datasets: datasets.to_vec(),
            publishers: Vec::new(),
            seen: None,
            read_error: None,
            settling: None,
        };
        Ok(PolicyEngine::assemble(
            label, settings, snapshot, sources, false, version,
        ))
    }

    fn assemble(
        dir: &Path,
        settings: PolicySettings,
        snapshot: Snapshot,
        sources: Sources,
        from_files: bool,
        version: i64,
    ) -> PolicyEngine {
        PolicyEngine {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                settings,
                current: ArcSwap::from_pointee(snapshot),
                sources: tokio::sync::Mutex::new(sources),
                last_reload_ok: std::sync::atomic::AtomicBool::new(true),
                from_files,
                store_version: std::sync::atomic::AtomicI64::new(version),
            }),
        }
    }

    /// Checks a model and rules as text exactly as a load would (against the
    /// catalogue's datasets in force), without swapping anything in.
    pub async fn check_text(&self, model: &str, rules: &str) -> Result<(), PolicyError> {
        let (datasets, publishers) = {
            let sources = self.inner.sources.lock().await;
            (sources.datasets.clone(), sources.publishers.clone())
        };
        let policy = parse_policy(&self.inner.dir.join(POLICY_FILE), rules)?;
        build_snapshot(&self.inner.dir, model, &policy, &datasets, &publishers, 0)
            .await
            .map(|_| ())
    }

    /// Swaps in the model and rules given as text, as store version
    /// `version` (unless a version as new is in force already); on error the
    /// policy in force stays.
    pub async fn replace_text(
        &self,
        model: &str,
        rules: &str,
        version: i64,
    ) -> Result<(), PolicyError> {
        let mut sources = self.inner.sources.lock().await;
        // Versions only grow: an older one heard late never replaces a newer.
        if version
            <= self
                .inner
                .store_version
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        let result = async {
            let policy = parse_policy(&self.inner.dir.join(POLICY_FILE), rules)?;
            let datasets = sources.datasets.clone();
            let publishers = sources.publishers.clone();
            self.install(&mut sources, model.to_owned(), policy, datasets, publishers)
                .await
        }
        .await;
        self.reload_done(result.is_ok());
        match &result {
            Ok(()) => {
                sources.rules_text = rules.to_owned();
                self.inner
                    .store_version
                    .store(version, std::sync::atomic::Ordering::Relaxed);
            }
            Err(error) => {
                tracing::error!(%error, version, "stored policy not swapped in: keeping the previous policy");
            }
        }
        result
    }

    /// The model and rules in force, as written.
    pub async fn texts(&self) -> (String, String) {
        let sources = self.inner.sources.lock().await;
        (sources.model_text.clone(), sources.rules_text.clone())
    }

    /// The store's version in force; `None` when the policy comes from files.
    pub fn store_version(&self) -> Option<i64> {
        let version = self
            .inner
            .store_version
            .load(std::sync::atomic::Ordering::Relaxed);
        (!self.inner.from_files).then_some(version)
    }

    /// The decision's settings from configuration.
    pub fn settings(&self) -> &PolicySettings {
        &self.inner.settings
    }

    /// May `roles` do `action` on `dataset`, which rule decided, through which view.
    ///
    /// `roles` are the caller's roles; `anonymous` is added when missing
    /// (every caller is at least anonymous). Decisions are cached per policy
    /// generation. `undecided` datasets serve no data whatever the rules say. For
    /// `metadata`, see [`PolicyEngine::may_see`]. A global action
    /// (`audit:read`, `admin`) ignores `dataset`.
    pub fn decide(&self, roles: &[String], dataset: &DatasetRef, action: Action) -> Decision {
        self.inner.current.load().decide(roles, dataset, action)
    }

    /// May `roles` know that `dataset` exists (list it, show its metadata)?
    ///
    /// Public metadata: everybody, unless a `metadata` deny rule matches.
    /// Restricted metadata: roles with a `metadata` allow rule, or that may
    /// read, export or aggregate it. This holds for `undecided` datasets too:
    /// a public entry says the dataset exists, its data stays closed.
    pub fn may_see(&self, roles: &[String], dataset: &DatasetRef) -> bool {
        self.decide(roles, dataset, Action::Metadata).allowed
    }

    /// May `roles` do a global `action` (`audit:read`, `admin`)? False for dataset actions.
    pub fn allows_global(&self, roles: &[String], action: Action) -> bool {
        self.decide_global(roles, action).allowed
    }

    /// The decision on a global `action` (`audit:read`, `admin`), with its
    /// rule; refused for dataset actions.
    pub fn decide_global(&self, roles: &[String], action: Action) -> Decision {
        if !action.is_global() {
            return Decision::deny(reasons::DEFAULT_DENY);
        }
        self.inner.current.load().decide_global(roles, action)
    }

    /// May `roles` do a publishing `action` on a dataset of `publisher`
    /// that the catalogue does not hold yet (its creation)? Rules on the
    /// publisher's group (`publisher:<slug>`) or on `*` decide; refused for
    /// data and global actions.
    pub fn decide_for_publisher(
        &self,
        roles: &[String],
        publisher: &str,
        action: Action,
    ) -> Decision {
        if action.is_global() || action.is_data() || action == Action::Metadata {
            return Decision::deny(reasons::DEFAULT_DENY);
        }
        let group = super::publisher_group(publisher);
        let snapshot = self.inner.current.load();
        let roles = normalise_roles(roles);
        outcome_decision(snapshot.evaluate(&roles, &group, action))
    }

    /// Re-reads the policy files. On error the previous policy stays in force
    /// (logged with `tracing::error!` and returned).
    pub async fn reload(&self) -> Result<(), PolicyError> {
        if !self.inner.from_files {
            return Err(PolicyError::Model {
                file: self.inner.dir.clone(),
                reason: "the policy comes from the store, not from files".to_owned(),
            });
        }
        let mut sources = self.inner.sources.lock().await;
        self.reload_files(&mut sources).await
    }

    /// Re-reads the files only when their content changed since last looked at.
    /// Returns whether a new policy was swapped in.
    async fn reload_if_changed(&self) -> Result<bool, PolicyError> {
        let mut sources = self.inner.sources.lock().await;
        let files = match read_files(&self.inner.dir).await {
            Ok(files) => files,
            Err(error) => {
                let message = error.to_string();
                if sources.read_error.as_deref() != Some(message.as_str()) {
                    self.reload_done(false);
                    tracing::error!(%error, "cannot read the policy files: keeping the previous policy");
                    sources.read_error = Some(message);
                }
                return Err(error);
            }
        };
        sources.read_error = None;
        if sources.seen == Some(files.fingerprint) {
            sources.settling = None;
            return Ok(false);
        }
        if sources.settling != Some(files.fingerprint) {
            sources.settling = Some(files.fingerprint);
            return Ok(false);
        }
        sources.settling = None;
        self.install_files(&mut sources, files).await.map(|()| true)
    }

    async fn reload_files(&self, sources: &mut Sources) -> Result<(), PolicyError> {
        let files = match read_files(&self.inner.dir).await {
            Ok(files) => files,
            Err(error) => {
                self.reload_done(false);
                tracing::error!(%error, "policy reload failed: keeping the previous policy");
                return Err(error);
            }
        };
        self.install_files(sources, files).await
    }

    async fn install_files(
        &self,
        sources: &mut Sources,
        files: PolicyFiles,
    ) -> Result<(), PolicyError> {
        sources.seen = Some(files.fingerprint);
        let rules_text = files.policy.clone();
        let result = async {
            let policy = parse_policy(&self.inner.dir.join(POLICY_FILE), &files.policy)?;
            let datasets = sources.datasets.clone();
            let publishers = sources.publishers.clone();
            self.install(sources, files.model, policy, datasets, publishers)
                .await
        }
        .await;
        if result.is_ok() {
            sources.rules_text = rules_text;
        }
        self.reload_done(result.is_ok());
        if let Err(error) = &result {
            tracing::error!(%error, "policy reload failed: keeping the previous policy");
        }
        result
    }

    /// Builds and swaps in a new snapshot, then records what it was built from.
    async fn install(
        &self,
        sources: &mut Sources,
        model_text: String,
        policy: PolicyFile,
        datasets: Vec<(String, AccessLevel)>,
        publishers: Vec<(String, String)>,
    ) -> Result<(), PolicyError> {
        let generation = self.generation() + 1;
        let snapshot = build_snapshot(
            &self.inner.dir,
            &model_text,
            &policy,
            &datasets,
            &publishers,
            generation,
        )
        .await?;
        // The enforcer and its (empty) cache are swapped together.
        self.inner.current.store(Arc::new(snapshot));
        tracing::info!(
            generation,
            rules = policy.rules.len(),
            datasets = datasets.len(),
            "policy swapped in"
        );
        sources.model_text = model_text;
        sources.policy = policy;
        sources.datasets = datasets;
        sources.publishers = publishers;
        Ok(())
    }

    /// Replaces the catalogue datasets and their levels (keeps the loaded
    /// files and the publishers last given).
    pub async fn set_datasets(
        &self,
        datasets: &[(String, AccessLevel)],
    ) -> Result<(), PolicyError> {
        let publishers = self.inner.sources.lock().await.publishers.clone();
        self.set_catalogue(datasets, &publishers).await
    }

    /// Replaces the catalogue datasets, their levels and their publisher
    /// groups (`(id, "publisher:<slug>")`, see [`super::publisher_group`]).
    pub async fn set_catalogue(
        &self,
        datasets: &[(String, AccessLevel)],
        publishers: &[(String, String)],
    ) -> Result<(), PolicyError> {
        let mut sources = self.inner.sources.lock().await;
        let model_text = sources.model_text.clone();
        let policy = sources.policy.clone();
        let result = self
            .install(
                &mut sources,
                model_text,
                policy,
                datasets.to_vec(),
                publishers.to_vec(),
            )
            .await;
        if let Err(error) = &result {
            tracing::error!(%error, "policy not rebuilt for the new catalogue: keeping the previous one");
        }
        result
    }

    /// Watches the policy files: every `period` their content is hashed and a
    /// change reloads them; SIGHUP reloads at once. Stops when the engine is dropped.
    /// Must be called inside a tokio runtime.
    pub fn spawn_watcher(&self, period: Duration) {
        if !self.inner.from_files {
            return;
        }
        let engine = Arc::downgrade(&self.inner);
        tokio::spawn(watch(engine, period));
    }

    /// Counts a reload of the files and remembers whether it loaded.
    fn reload_done(&self, ok: bool) {
        metrics::policy_reload(ok);
        self.inner
            .last_reload_ok
            .store(ok, std::sync::atomic::Ordering::Relaxed);
    }

    /// False from a failed reload of the files until one succeeds (the
    /// previous policy stays in force meanwhile).
    pub fn last_reload_ok(&self) -> bool {
        self.inner
            .last_reload_ok
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Increments every time a new policy is swapped in (file reload or catalogue change).
    pub fn generation(&self) -> u64 {
        self.inner.current.load().generation
    }

    #[cfg(test)]
    fn cached_decisions(&self) -> usize {
        self.inner.current.load().cache.len()
    }
}

async fn watch(engine: Weak<Inner>, period: Duration) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|error| tracing::warn!(%error, "no SIGHUP policy reload"))
        .ok();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        #[cfg(unix)]
        let forced = tokio::select! {
            _ = ticker.tick() => false,
            () = next_hangup(&mut hangup) => true,
        };
        #[cfg(not(unix))]
        let forced = {
            ticker.tick().await;
            false
        };
        let Some(inner) = engine.upgrade() else { break };
        let engine_handle = PolicyEngine { inner };
        if forced {
            tracing::info!("SIGHUP: reloading the policy");
            let _ = engine_handle.reload().await;
        } else {
            let _ = engine_handle.reload_if_changed().await;
        }
    }
}

#[cfg(unix)]
async fn next_hangup(hangup: &mut Option<tokio::signal::unix::Signal>) {
    match hangup {
        Some(signal) => {
            if signal.recv().await.is_none() {
                *hangup = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// The caller's roles, sorted, without duplicates, always with `anonymous`.
/// A role no rule could name (odd characters) is dropped: it cannot match any
/// rule, and it must not forge a cache key.
fn normalise_roles(roles: &[String]) -> Vec<&str> {
    let mut normalised: Vec<&str> = roles
        .iter()
        .map(String::as_str)
        .filter(|role| is_valid_role(role))
        .collect();
    normalised.push("anonymous");
    normalised.sort_unstable();
    normalised.dedup();
    normalised
}

fn cache_key(roles: &[&str], parts: &[&str]) -> String {
    let mut key = String::new();
    for part in roles.iter().chain(std::iter::once(&"")).chain(parts) {
        key.push_str(part);
        key.push(KEY_SEPARATOR);
    }
    key
}

impl Snapshot {
    fn decide(&self, roles: &[String], dataset: &DatasetRef, action: Action) -> Decision {
        if action.is_global() {
            return self.decide_global(roles, action);
        }
        let roles = normalise_roles(roles);
        let visibility = match dataset.metadata_visibility {
            MetadataVisibility::Public => "public",
            MetadataVisibility::Restricted => "restricted",
        };
        let key = cache_key(
            &roles,
            &[
                dataset.id,
                action.as_str(),
                dataset.access.as_str(),
                visibility,
            ],
        );
        if let Some(decision) = self.cache.get(&key) {
            return decision;
        }
        let decision = self.decide_uncached(&roles, dataset, action);
        self.cache.insert(key, decision.clone());
        decision
    }

    fn decide_global(&self, roles: &[String], action: Action) -> Decision {
        let roles = normalise_roles(roles);
        let key = cache_key(&roles, &[GLOBAL_OBJECT, action.as_str()]);
        if let Some(decision) = self.cache.get(&key) {
            return decision;
        }
        let decision = outcome_decision(self.evaluate(&roles, GLOBAL_OBJECT, action));
        self.cache.insert(key, decision.clone());
        decision
    }

    fn decide_uncached(&self, roles: &[&str], dataset: &DatasetRef, action: Action) -> Decision {
        if action == Action::Metadata {
            return self.decide_metadata(roles, dataset);
        }
        // Undecided data is served to nobody; stewards still manage it.
        if dataset.access == AccessLevel::Undecided
            && (action.is_data() || action == Action::History)
        {
            return Decision::deny(reasons::UNDECIDED);
        }
        outcome_decision(self.evaluate_dataset(roles, dataset, action))
    }

    fn decide_metadata(&self, roles: &[&str], dataset: &DatasetRef) -> Decision {
        let explicit = self.evaluate_dataset(roles, dataset, Action::Metadata);
        match (explicit, dataset.metadata_visibility) {
            (Outcome::Allowed(rule), _) => Decision {
                allowed: true,
                rule: rule.text.clone(),
                view: None,
            },
            (Outcome::Denied(rule), _) => Decision::deny(rule.text.clone()),
            (Outcome::Failed, _) => Decision::deny(reasons::EVALUATION_ERROR),
            (_, MetadataVisibility::Public) => Decision {
                allowed: true,
                rule: reasons::PUBLIC_METADATA.to_owned(),
                view: None,
            },
            (outcome, MetadataVisibility::Restricted) => {
                for action in [Action::Read, Action::Aggregate, Action::Export] {
                    let data = self.decide_uncached(roles, dataset, action);
                    if data.allowed {
                        return Decision {
                            allowed: true,
                            rule: data.rule,
                            view: None,
                        };
                    }
                }
                match outcome {
                    Outcome::OutOfSync => Decision::deny(reasons::OUT_OF_SYNC),
                    _ => Decision::deny(reasons::DEFAULT_DENY),
                }
            }
        }
    }

    /// Evaluates a dataset action, refusing when the catalogue and the policy
    /// disagree on the dataset's level (never serve by a stale level).
    fn evaluate_dataset(&self, roles: &[&str], dataset: &DatasetRef, action: Action) -> Outcome {
        if self.levels.get(dataset.id) != Some(&dataset.access) {
            return Outcome::OutOfSync;
        }
        self.evaluate(roles, dataset.id, action)
    }

    /// Asks casbin once per role: a deny of any role wins; among allows the
    /// rule without a view wins, then the first in file order.
    fn evaluate(&self, roles: &[&str], object: &str, action: Action) -> Outcome {
        let mut best: Option<Arc<RuleInfo>> = None;
        for role in roles {
            let result = catch_unwind(AssertUnwindSafe(|| {
                self.enforcer.enforce_ex((*role, object, action.as_str()))
            }));
            let (allowed, matched) = match result {
                Ok(Ok(answer)) => answer,
                Ok(Err(error)) => {
                    tracing::error!(%error, role, object, action = action.as_str(), "policy evaluation failed: refused");
                    return Outcome::Failed;
                }
                Err(_) => {
                    tracing::error!(
                        role,
                        object,
                        action = action.as_str(),
                        "policy evaluation panicked: refused"
                    );
                    return Outcome::Failed;
                }
            };
            let matched = matched.iter().filter_map(|values| self.rules.get(values));
            if !allowed {
                if let Some(deny) = matched.into_iter().find(|rule| rule.effect == Effect::Deny) {
                    return Outcome::Denied(Arc::clone(deny));
                }
                continue;
            }
            for rule in matched.filter(|rule| rule.effect == Effect::Allow) {
                if best
                    .as_ref()
                    .is_none_or(|current| rule.preference() < current.preference())
                {
                    best = Some(Arc::clone(rule));
                }
            }
        }
        best.map_or(Outcome::NoRule, Outcome::Allowed)
    }
}

fn outcome_decision(outcome: Outcome) -> Decision {
    match outcome {
        Outcome::Allowed(rule) => Decision {
            allowed: true,
            rule: rule.text.clone(),
            view: rule.view.clone(),
        },
        Outcome::Denied(rule) => Decision::deny(rule.text.clone()),
        Outcome::NoRule => Decision::deny(reasons::DEFAULT_DENY),
        Outcome::OutOfSync => Decision::deny(reasons::OUT_OF_SYNC),
        Outcome::Failed => Decision::deny(reasons::EVALUATION_ERROR),
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
