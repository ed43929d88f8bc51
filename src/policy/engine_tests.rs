//! Tests of the policy engine against temporary policy folders, and of the
//! shipped `policies/` files (the stewards' regression test).

use std::collections::{BTreeSet, HashMap};

use tempfile::TempDir;

use super::*;

const MODEL: &str = include_str!("../../policies/model.conf");

fn folder(policy: &str) -> TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join(MODEL_FILE), MODEL).unwrap();
    std::fs::write(folder.path().join(POLICY_FILE), policy).unwrap();
    folder
}

fn write_policy(folder: &TempDir, policy: &str) {
    std::fs::write(folder.path().join(POLICY_FILE), policy).unwrap();
}

fn roles(names: &[&str]) -> Vec<String> {
    let mut roles: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    roles.push("anonymous".to_owned());
    roles
}

fn public(id: &str, access: AccessLevel) -> DatasetRef<'_> {
    DatasetRef {
        id,
        access,
        metadata_visibility: MetadataVisibility::Public,
    }
}

fn restricted(id: &str, access: AccessLevel) -> DatasetRef<'_> {
    DatasetRef {
        id,
        access,
        metadata_visibility: MetadataVisibility::Restricted,
    }
}

/// One dataset per level, named after it.
fn level_datasets() -> Vec<(String, AccessLevel)> {
    [
        AccessLevel::Open,
        AccessLevel::Partners,
        AccessLevel::Internal,
        AccessLevel::Confidential,
        AccessLevel::Undecided,
    ]
    .into_iter()
    .map(|level| (format!("{}-ds", level.as_str()), level))
    .collect()
}

async fn engine(policy: &str) -> (TempDir, PolicyEngine) {
    let folder = folder(policy);
    let engine = PolicyEngine::load(folder.path(), &level_datasets())
        .await
        .unwrap();
    (folder, engine)
}

const LEVEL_POLICY: &str = "\
p, anonymous, level:open, read, allow,
p, partner, level:partners, read, allow,
p, agent, level:internal, read, allow,
p, dpo, level:confidential, read, allow,
p, everybody, level:undecided, read, allow,
";

/// Each role reads exactly the levels its rules name (undecided: nobody).
#[tokio::test]
async fn every_level_for_every_role() {
    let (_folder, engine) = engine(LEVEL_POLICY).await;
    let table: [(&str, &[&str]); 5] = [
        ("anonymous", &["open"]),
        ("partner", &["open", "partners"]),
        ("agent", &["open", "internal"]),
        ("dpo", &["open", "confidential"]),
        ("everybody", &["open"]),
    ];
    for (role, readable) in table {
        for (id, level) in level_datasets() {
            let decision = engine.decide(&roles(&[role]), &public(&id, level), Action::Read);
            assert_eq!(
                decision.allowed,
                readable.contains(&level.as_str()),
                "{role} on {id}: {decision:?}"
            );
            let export = engine.decide(&roles(&[role]), &public(&id, level), Action::Export);
            assert!(
                !export.allowed,
                "{role} may not export {id}: no export rule"
            );
        }
    }
    let decision = engine.decide(
        &roles(&["agent"]),
        &public("internal-ds", AccessLevel::Internal),
        Action::Read,
    );
    assert_eq!(decision.rule, "p, agent, level:internal, read, allow");
    let refused = engine.decide(
        &roles(&["agent"]),
        &public("confidential-ds", AccessLevel::Confidential),
        Action::Read,
    );
    assert_eq!(refused.rule, reasons::DEFAULT_DENY);
}

/// A deny rule of any of the caller's roles, direct or inherited, beats every allow.
#[tokio::test]
async fn deny_overrides_allow() {
    let (_folder, engine) = engine(
        "p, agent, level:internal, read, allow,\n\
         p, partner, internal-ds, read, deny,\n\
         p, contractor, internal-ds, read, allow,\n\
         p, contractor, internal-ds, export, deny,\n\
         g, chief, contractor\n",
    )
    .await;
    let internal = public("internal-ds", AccessLevel::Internal);
    assert!(
        engine
            .decide(&roles(&["agent"]), &internal, Action::Read)
            .allowed
    );
    let denied = engine.decide(&roles(&["agent", "partner"]), &internal, Action::Read);
    assert!(!denied.allowed);
    assert_eq!(denied.rule, "p, partner, internal-ds, read, deny");
    // Same role: deny of one action does not touch another.
    assert!(
        engine
            .decide(&roles(&["contractor"]), &internal, Action::Read)
            .allowed
    );
    let inherited = engine.decide(&roles(&["chief"]), &internal, Action::Export);
    assert_eq!(
        (inherited.allowed, inherited.rule.as_str()),
        (false, "p, contractor, internal-ds, export, deny")
    );
}

/// Among matching allows, full access wins, else the first view in file order.
#[tokio::test]
async fn view_choice_is_deterministic() {
    let (_folder, engine) = engine(
        "p, commune, partners-ds, read, allow, par-commune\n\
         p, region, partners-ds, read, allow, par-region\n\
         p, operator, partners-ds, read, allow,\n\
         p, operator, partners-ds, read, allow, par-region\n",
    )
    .await;
    let dataset = public("partners-ds", AccessLevel::Partners);
    let view = |names: &[&str]| engine.decide(&roles(names), &dataset, Action::Read).view;
    assert_eq!(view(&["commune"]).as_deref(), Some("par-commune"));
    assert_eq!(view(&["region"]).as_deref(), Some("par-region"));
    assert_eq!(
        view(&["region", "commune"]).as_deref(),
        Some("par-commune"),
        "first in file order"
    );
    assert_eq!(view(&["commune", "operator"]), None, "full access wins");
    assert_eq!(view(&["operator"]), None);
    let decision = engine.decide(&roles(&["commune"]), &dataset, Action::Read);
    assert_eq!(
        decision.rule,
        "p, commune, partners-ds, read, allow, par-commune"
    );
}

/// Undecided datasets serve nothing, even with explicit rules on the dataset and its level.
#[tokio::test]
async fn undecided_refuses_even_with_an_allow_rule() {
    let (_folder, engine) = engine(
        "p, agent, undecided-ds, read, allow,\n\
         p, agent, level:undecided, export, allow,\n\
         p, agent, *, aggregate, allow,\n",
    )
    .await;
    let dataset = public("undecided-ds", AccessLevel::Undecided);
    for action in [Action::Read, Action::Export, Action::Aggregate] {
        let decision = engine.decide(&roles(&["agent"]), &dataset, action);
        assert_eq!(decision, Decision::deny(reasons::UNDECIDED), "{action}");
    }
    // The `*` rule does reach decided datasets.
    assert!(
        engine
            .decide(
                &roles(&["agent"]),
                &public("open-ds", AccessLevel::Open),
                Action::Aggregate
            )
            .allowed
    );
}

/// Public entries are seen by all, restricted ones by readers and `metadata` holders.
#[tokio::test]
async fn metadata_visibility() {
    let (_folder, engine) = engine(
        "p, reader, confidential-ds, read, allow,\n\
         p, counter, confidential-ds, aggregate, allow, totals\n\
         p, steward, *, metadata, allow,\n\
         p, staff, level:undecided, metadata, allow,\n\
         p, rival, open-ds, metadata, deny,\n",
    )
    .await;
    let sees = |names: &[&str], dataset: &DatasetRef| engine.may_see(&roles(names), dataset);
    let open = public("open-ds", AccessLevel::Open);
    assert!(sees(&[], &open));
    assert!(
        !sees(&["rival"], &open),
        "an explicit metadata deny hides a public entry"
    );
    let hidden = restricted("confidential-ds", AccessLevel::Confidential);
    assert!(!sees(&[], &hidden));
    assert!(!sees(&["staff"], &hidden));
    assert!(sees(&["reader"], &hidden));
    assert!(sees(&["counter"], &hidden));
    assert!(sees(&["steward"], &hidden));
    let decision = engine.decide(&roles(&["reader"]), &hidden, Action::Metadata);
    assert_eq!((decision.allowed, decision.view), (true, None));
    // Undecided: a public entry says the dataset exists; a restricted one only to metadata holders.
    assert!(sees(&[], &public("undecided-ds", AccessLevel::Undecided)));
    let undecided = restricted("undecided-ds", AccessLevel::Undecided);
    assert!(!sees(&[], &undecided));
    assert!(sees(&["staff"], &undecided));
    assert!(sees(&["steward"], &undecided));
}

/// Global actions: `audit:read` and `admin`, through role inheritance, on `audit` or `*`.
#[tokio::test]
async fn global_actions() {
    let (_folder, engine) = engine(
        "p, auditor, audit, audit:read, allow,\n\
         p, admin, *, admin, allow,\n\
         p, steward, *, read, allow,\n\
         g, dpo, auditor\n\
         g, admin, auditor\n",
    )
    .await;
    let allows = |names: &[&str], action| engine.allows_global(&roles(names), action);
    assert!(allows(&["auditor"], Action::AuditRead));
    assert!(!allows(&["auditor"], Action::Admin));
    assert!(allows(&["dpo"], Action::AuditRead));
    assert!(allows(&["admin"], Action::AuditRead));
    assert!(allows(&["admin"], Action::Admin));
    assert!(!allows(&[], Action::AuditRead));
    assert!(
        !allows(&["steward"], Action::Admin),
        "a dataset `*` rule is not a global grant"
    );
    assert!(
        !allows(&["admin"], Action::Read),
        "dataset actions are never global"
    );
    let decision = engine.decide(
        &roles(&["dpo"]),
        &public("open-ds", AccessLevel::Open),
        Action::AuditRead,
    );
    assert_eq!(decision.rule, "p, auditor, audit, audit:read, allow");
}

/// A reload applies a changed file, drops the cache and bumps the generation.
#[tokio::test]
async fn reload_picks_a_change_and_drops_the_cache() {
    let (folder, engine) = engine("p, agent, level:internal, read, allow,\n").await;
    let internal = public("internal-ds", AccessLevel::Internal);
    assert!(
        engine
            .decide(&roles(&["agent"]), &internal, Action::Read)
            .allowed
    );
    assert!(engine.cached_decisions() > 0);
    assert_eq!(engine.generation(), 1);
    write_policy(
        &folder,
        "p, agent, level:internal, read, allow,\np, agent, internal-ds, read, deny,\n",
    );
    engine.reload().await.unwrap();
    assert_eq!(engine.generation(), 2);
    assert_eq!(
        engine.cached_decisions(),
        0,
        "a new policy starts with an empty cache"
    );
    let decision = engine.decide(&roles(&["agent"]), &internal, Action::Read);
    assert_eq!(decision.rule, "p, agent, internal-ds, read, deny");
}

/// Broken files are refused with file, line and reason; the old policy stays in force.
#[tokio::test]
async fn invalid_files_keep_the_previous_policy() {
    let (folder, engine) = engine("p, agent, level:internal, read, allow,\n").await;
    let internal = public("internal-ds", AccessLevel::Internal);
    let before = engine.decide(&roles(&["agent"]), &internal, Action::Read);
    assert!(before.allowed);
    write_policy(
        &folder,
        "p, agent, level:internal, read, allow,\np, agent, level:internal, fly, allow,\n",
    );
    let error = engine.reload().await.unwrap_err();
    match &error {
        PolicyError::Invalid { file, line, reason } => {
            assert!(file.ends_with(POLICY_FILE));
            assert_eq!(*line, 2);
            assert!(reason.contains("fly"), "{reason}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(engine.generation(), 1);
    assert_eq!(
        engine.decide(&roles(&["agent"]), &internal, Action::Read),
        before
    );
    assert!(
        !engine
            .decide(&roles(&["anonymous"]), &internal, Action::Read)
            .allowed
    );
    // A broken model is refused the same way.
    std::fs::write(
        folder.path().join(MODEL_FILE),
        MODEL.replace("r.obj == p.obj ||", "regexMatch(r.obj, p.obj) ||"),
    )
    .unwrap();
    write_policy(&folder, "p, anonymous, level:internal, read, allow,\n");
    assert!(matches!(
        engine.reload().await,
        Err(PolicyError::Model { .. })
    ));
    assert!(
        !engine.decide(&roles(&[]), &internal, Action::Read).allowed,
        "never fail open"
    );
    // A missing file too.
    std::fs::remove_file(folder.path().join(MODEL_FILE)).unwrap();
    assert!(matches!(engine.reload().await, Err(PolicyError::Io { .. })));
    assert_eq!(
        engine.decide(&roles(&["agent"]), &internal, Action::Read),
        before
    );
    assert_eq!(engine.generation(), 1);
}

/// Loading refuses invalid files outright.
#[tokio::test]
async fn load_refuses_an_invalid_policy() {
    let folder = folder("p, agent, level:internal, read, maybe,\n");
    let error = PolicyEngine::load(folder.path(), &level_datasets())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("policy.csv:1: unknown effect `maybe`"),
        "{error}"
    );
}

/// A dataset added to the catalogue joins its level's rules; until then it is refused.
#[tokio::test]
async fn set_datasets_places_a_new_dataset_in_its_level() {
    let (_folder, engine) = engine(LEVEL_POLICY).await;
    let fresh = public("nouveau-ds", AccessLevel::Open);
    let refused = engine.decide(&roles(&[]), &fresh, Action::Read);
    assert_eq!(refused, Decision::deny(reasons::OUT_OF_SYNC));
    let mut datasets = level_datasets();
    datasets.push(("nouveau-ds".to_owned(), AccessLevel::Open));
    engine.set_datasets(&datasets).await.unwrap();
    assert_eq!(engine.generation(), 2);
    assert!(engine.decide(&roles(&[]), &fresh, Action::Read).allowed);
    // A level change: the old level no longer applies once the policy knows the new one.
    datasets.retain(|(id, _)| id != "nouveau-ds");
    datasets.push(("nouveau-ds".to_owned(), AccessLevel::Internal));
    engine.set_datasets(&datasets).await.unwrap();
    assert!(
        !engine
            .decide(
                &roles(&[]),
                &public("nouveau-ds", AccessLevel::Internal),
                Action::Read
            )
            .allowed
    );
    assert!(
        engine
            .decide(
                &roles(&["agent"]),
                &public("nouveau-ds", AccessLevel::Internal),
                Action::Read
            )
            .allowed
    );
    // A caller still describing the old level is refused, never served by it.
    assert!(!engine.decide(&roles(&[]), &fresh, Action::Read).allowed);
}

/// The watcher reloads on a content change, and only then.
#[tokio::test]
async fn watcher_reloads_changed_files() {
    let (folder, engine) = engine("p, agent, level:internal, read, allow,\n").await;
    engine.spawn_watcher(Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(engine.generation(), 1, "unchanged files are not reloaded");
    write_policy(
        &folder,
        "p, agent, level:internal, read, allow,\np, agent, level:internal, export, allow,\n",
    );
    let internal = public("internal-ds", AccessLevel::Internal);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while engine.generation() == 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(engine.generation(), 2);
    assert!(
        engine
            .decide(&roles(&["agent"]), &internal, Action::Export)
            .allowed
    );
    // A broken edit is refused once and the policy stays.
    write_policy(
        &folder,
        "p, agent, level:internal, read, allow\np, broken\n",
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(engine.generation(), 2);
    assert!(
        engine
            .decide(&roles(&["agent"]), &internal, Action::Export)
            .allowed
    );
}

/// Decisions are the same from the cache as from casbin.
#[tokio::test]
async fn cached_decisions_match_fresh_ones() {
    let (_folder, engine) = engine(LEVEL_POLICY).await;
    let dataset = public("partners-ds", AccessLevel::Partners);
    let first = engine.decide(&roles(&["partner"]), &dataset, Action::Read);
    let cached = engine.cached_decisions();
    // Same roles in another order and with duplicates hit the same entry.
    let second = engine.decide(
        &[
            "partner".to_owned(),
            "anonymous".to_owned(),
            "partner".to_owned(),
        ],
        &dataset,
        Action::Read,
    );
    assert_eq!(first, second);
    assert_eq!(engine.cached_decisions(), cached);
    assert!(first.allowed);
}

/// Should casbin panic while evaluating (here an invalid regex, which the
/// model checks keep out of real policies), the request is refused, not crashed.
#[tokio::test]
async fn a_panicking_evaluation_refuses() {
    let model = MODEL.replace("r.obj == p.obj ||", "regexMatch(r.obj, p.obj) ||");
    let model = casbin::DefaultModel::from_str(&model).await.unwrap();
    let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
        .await
        .unwrap();
    enforcer
        .add_named_policies(
            "p",
            vec![vec![
                "anonymous".into(),
                "(".into(),
                "read".into(),
                "allow".into(),
                String::new(),
            ]],
        )
        .await
        .unwrap();
    let snapshot = Snapshot {
        enforcer,
        rules: HashMap::new(),
        levels: [("open-ds".to_owned(), AccessLevel::Open)].into(),
        cache: DecisionCache::new(),
        generation: 1,
    };
    let decision = snapshot.decide(
        &roles(&[]),
        &public("open-ds", AccessLevel::Open),
        Action::Read,
    );
    assert_eq!(decision, Decision::deny(reasons::EVALUATION_ERROR));
}

/// Roles with characters no rule can name are ignored; they cannot forge a cache key.
#[tokio::test]
async fn odd_role_names_are_ignored() {
    let (_folder, engine) = engine(LEVEL_POLICY).await;
    let dataset = public("partners-ds", AccessLevel::Partners);
    assert!(
        engine
            .decide(&roles(&["partner"]), &dataset, Action::Read)
            .allowed
    );
    let forged = format!("partner{KEY_SEPARATOR}");
    assert!(
        !engine
            .decide(&roles(&[&forged]), &dataset, Action::Read)
            .allowed
    );
    assert!(
        !engine
            .decide(&roles(&["partner x"]), &dataset, Action::Read)
            .allowed
    );
}

// --- The shipped policy, with the demo catalogue: what stewards promise.

const DEMO_DATASETS: [(&str, AccessLevel, MetadataVisibility); 10] = [
    (
        "consommations-energie-batiments",
        AccessLevel::Open,
        MetadataVisibility::Public,
    ),
    (
        "releves-piezometriques",
        AccessLevel::Open,
        MetadataVisibility::Public,
    ),
    (
        "frequentation-musees",
        AccessLevel::Open,
        MetadataVisibility::Public,
    ),
    (
        "qualite-air-stations",
        AccessLevel::Open,
        MetadataVisibility::Public,
    ),
    (
        "locations-velos",
        AccessLevel::Partners,
        MetadataVisibility::Public,
    ),
    (
        "infractions-videoprotection",
        AccessLevel::Internal,
        MetadataVisibility::Public,
    ),
    (
        "effectifs-services",
        AccessLevel::Internal,
        MetadataVisibility::Public,
    ),
    (
        "menages-precarite-energetique",
        AccessLevel::Confidential,
        MetadataVisibility::Public,
    ),
    (
        "badges-stationnement-residents",
        AccessLevel::Confidential,
        MetadataVisibility::Restricted,
    ),
    (
        "projets-amenagement",
        AccessLevel::Undecided,
        MetadataVisibility::Public,
    ),
];

const OPEN_GRANTS: [&str; 12] = [
    "consommations-energie-batiments:read",
    "consommations-energie-batiments:export",
    "consommations-energie-batiments:aggregate",
    "releves-piezometriques:read",
    "releves-piezometriques:export",
    "releves-piezometriques:aggregate",
    "frequentation-musees:read",
    "frequentation-musees:export",
    "frequentation-musees:aggregate",
    "qualite-air-stations:read",
    "qualite-air-stations:export",
    "qualite-air-stations:aggregate",
];

/// Per caller (roles joined by `+`): the data grants beyond open data
/// (`dataset:action` or `dataset:action=view`); every other data action on a
/// demo dataset must be refused.
const DEMO_GRANTS: [(&str, &[&str]); 14] = [
    ("anonymous", &[]),
    ("authenticated", &[]),
    (
        "agent",
        &[
            "infractions-videoprotection:read",
            "infractions-videoprotection:export",
            "infractions-videoprotection:aggregate",
            "effectifs-services:read",
            "effectifs-services:export",
            "effectifs-services:aggregate",
        ],
    ),
    (
        "partenaire",
        &[
            "locations-velos:read=par-commune",
            "locations-velos:export=par-commune",
        ],
    ),
    (
        "operateur-velo",
        &[
            "locations-velos:read",
            "locations-velos:export",
            "locations-velos:aggregate",
        ],
    ),
    (
        "ademe",
        &["menages-precarite-energetique:aggregate=agregats-ademe"],
    ),
    (
        "service-social",
        &["menages-precarite-energetique:read=accompagnement-social"],
    ),
    (
        "police-municipale",
        &[
            "infractions-videoprotection:read",
            "badges-stationnement-residents:read=controle-zone",
        ],
    ),
    (
        "service-stationnement",
        &[
            "badges-stationnement-residents:read",
            "badges-stationnement-residents:export",
            "badges-stationnement-residents:aggregate",
        ],
    ),
    ("auditor", &[]),
    ("dpo", &[]),
    (
        "admin",
        &[
            "infractions-videoprotection:read",
            "infractions-videoprotection:export",
            "infractions-videoprotection:aggregate",
            "effectifs-services:read",
            "effectifs-services:export",
            "effectifs-services:aggregate",
        ],
    ),
    // The deny example: a partner who is also staff loses CCTV reads, not exports.
    (
        "agent+partenaire",
        &[
            "infractions-videoprotection:export",
            "infractions-videoprotection:aggregate",
            "effectifs-services:read",
            "effectifs-services:export",
            "effectifs-services:aggregate",
            "locations-velos:read=par-commune",
            "locations-velos:export=par-commune",
        ],
    ),
    (
        "partenaire+operateur-velo",
        &[
            "locations-velos:read",
            "locations-velos:export",
            "locations-velos:aggregate",
        ],
    ),
];

/// Callers who may know the restricted `badges-stationnement-residents` exists
/// (every other demo entry is public).
const SEE_BADGES: [&str; 3] = ["police-municipale", "service-stationnement", "dpo"];

async fn shipped_engine() -> PolicyEngine {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let datasets: Vec<(String, AccessLevel)> = DEMO_DATASETS
        .iter()
        .map(|(id, level, _)| ((*id).to_owned(), *level))
        .collect();
    PolicyEngine::load(&folder, &datasets).await.unwrap()
}

/// The shipped policy grants the demo roles exactly the documented data access.
#[tokio::test]
async fn shipped_policy_data_access() {
    let engine = shipped_engine().await;
    for (caller, grants) in DEMO_GRANTS {
        let caller_roles = roles(&caller.split('+').collect::<Vec<_>>());
        let mut expected: HashMap<String, Option<String>> = OPEN_GRANTS
            .iter()
            .map(|grant| ((*grant).to_owned(), None))
            .collect();
        for grant in grants {
            let (key, view) = match grant.split_once('=') {
                Some((key, view)) => (key, Some(view.to_owned())),
                None => (*grant, None),
            };
            expected.insert(key.to_owned(), view);
        }
        for (id, access, metadata_visibility) in DEMO_DATASETS {
            let dataset = DatasetRef {
                id,
                access,
                metadata_visibility,
            };
            for action in [Action::Read, Action::Export, Action::Aggregate] {
                let decision = engine.decide(&caller_roles, &dataset, action);
                let key = format!("{id}:{action}");
                match expected.get(&key) {
                    Some(view) => {
                        assert!(decision.allowed, "{caller} should {key}: {decision:?}");
                        assert_eq!(&decision.view, view, "{caller} {key}");
                    }
                    None => assert!(!decision.allowed, "{caller} should not {key}: {decision:?}"),
                }
            }
        }
    }
}

/// The shipped policy shows the demo roles the documented catalogue entries.
#[tokio::test]
async fn shipped_policy_catalogue_visibility() {
    let engine = shipped_engine().await;
    for (caller, _) in DEMO_GRANTS {
        let caller_roles = roles(&caller.split('+').collect::<Vec<_>>());
        let visible: BTreeSet<&str> = DEMO_DATASETS
            .iter()
            .filter(|(id, access, metadata_visibility)| {
                engine.may_see(
                    &caller_roles,
                    &DatasetRef {
                        id,
                        access: *access,
                        metadata_visibility: *metadata_visibility,
                    },
                )
            })
            .map(|(id, _, _)| *id)
            .collect();
        let sees_badges = caller.split('+').any(|role| SEE_BADGES.contains(&role));
        assert_eq!(
            visible.contains("badges-stationnement-residents"),
            sees_badges,
            "{caller}"
        );
        assert_eq!(
            visible.len(),
            DEMO_DATASETS.len() - usize::from(!sees_badges),
            "{caller}: {visible:?}"
        );
    }
}

/// The shipped policy's global grants: auditors, the DPO and admins read the audit log.
#[tokio::test]
async fn shipped_policy_global_access() {
    let engine = shipped_engine().await;
    for (caller, audit, admin) in [
        ("anonymous", false, false),
        ("agent", false, false),
        ("auditor", true, false),
        ("dpo", true, false),
        ("admin", true, true),
    ] {
        assert_eq!(
            engine.allows_global(&roles(&[caller]), Action::AuditRead),
            audit,
            "{caller}"
        );
        assert_eq!(
            engine.allows_global(&roles(&[caller]), Action::Admin),
            admin,
            "{caller}"
        );
    }
    let undecided = public("projets-amenagement", AccessLevel::Undecided);
    assert_eq!(
        engine
            .decide(&roles(&["admin"]), &undecided, Action::Read)
            .rule,
        reasons::UNDECIDED
    );
    let partner = engine.decide(
        &roles(&["partenaire"]),
        &public("locations-velos", AccessLevel::Partners),
        Action::Read,
    );
    assert_eq!(
        partner.rule,
        "p, partenaire, locations-velos, read, allow, par-commune"
    );
}

/// A policy loaded from text (kept in the store) is validated as files are,
/// replaced only by a newer version that loads, and never reads files.
#[tokio::test]
async fn policy_from_text() {
    let datasets = vec![("ds".to_owned(), AccessLevel::Internal)];
    let label = Path::new("store");
    let invalid = PolicyEngine::load_text(
        label,
        MODEL,
        "p, agent, ds, fly, allow,\n",
        1,
        &datasets,
        PolicySettings::default(),
    )
    .await;
    let error = invalid
        .expect_err("an unknown action is refused")
        .to_string();
    assert!(error.starts_with("store/policy.csv:1:"), "{error}");

    let engine = PolicyEngine::load_text(
        label,
        MODEL,
        "p, agent, ds, read, allow,\n",
        3,
        &datasets,
        PolicySettings::default(),
    )
    .await
    .unwrap();
    let ds = public("ds", AccessLevel::Internal);
    assert!(engine.decide(&roles(&["agent"]), &ds, Action::Read).allowed);
    assert_eq!(engine.store_version(), Some(3));
    assert!(engine.reload().await.is_err(), "no files to re-read");

    // Checking does not swap; a broken replacement keeps the policy in force.
    assert!(
        engine
            .check_text(MODEL, "p, agent, ds, read, maybe,\n")
            .await
            .is_err()
    );
    assert!(
        engine
            .check_text(MODEL, "p, agent, ds, read, deny,\n")
            .await
            .is_ok()
    );
    assert!(engine.decide(&roles(&["agent"]), &ds, Action::Read).allowed);
    assert!(engine.replace_text("[broken", "", 4).await.is_err());
    assert_eq!(engine.store_version(), Some(3));

    engine
        .replace_text(MODEL, "p, agent, ds, read, deny,\n", 4)
        .await
        .unwrap();
    assert!(!engine.decide(&roles(&["agent"]), &ds, Action::Read).allowed);
    assert_eq!(engine.store_version(), Some(4));
    assert_eq!(
        engine.texts().await,
        (MODEL.to_owned(), "p, agent, ds, read, deny,\n".to_owned())
    );
    // An older version heard late changes nothing.
    engine
        .replace_text(MODEL, "p, agent, ds, read, allow,\n", 3)
        .await
        .unwrap();
    assert!(!engine.decide(&roles(&["agent"]), &ds, Action::Read).allowed);

    // From files: no store version, and the text as written.
    let folder = folder("# comment\np, agent, ds, read, allow,\n");
    let files = PolicyEngine::load(folder.path(), &datasets).await.unwrap();
    assert_eq!(files.store_version(), None);
    assert_eq!(
        files.texts().await.1,
        "# comment\np, agent, ds, read, allow,\n"
    );
}
