//! Reading and checking the policy files before casbin sees them.
//!
//! Casbin panics on some bad input (an unsupported effect, an invalid regex)
//! and reports others without a line number, so every line is checked here
//! first: known action, `allow` or `deny`, a known object form, and a view
//! only where a view makes sense.

use std::collections::HashSet;
use std::path::Path;

use casbin::{DefaultModel, Model};

use super::{Action, PolicyError};
use crate::catalog::definition::AccessLevel;

/// The only effect supported: any matching deny wins over every allow.
const DENY_OVERRIDES: &str = "some(where (p_eft == allow)) && !some(where (p_eft == deny))";

/// The object a `p` rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ObjectForm {
    /// `*`: every dataset (or, for global actions, the gateway).
    Everything,
    /// `audit`: the audit log (global actions only).
    Audit,
    /// `level:<level>`: every dataset of an access level.
    Level(AccessLevel),
    /// `group:<name>`: datasets placed in the group by `g2` lines.
    Group,
    /// `publisher:<slug>`: every dataset of a publisher (added by the gateway).
    Publisher,
    /// One dataset by id.
    Dataset,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// One checked `p` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyRule {
    pub subject: String,
    pub object: String,
    pub action: Action,
    pub effect: Effect,
    pub view: Option<String>,
    /// 1-based line in `policy.csv`.
    pub line: usize,
}

impl PolicyRule {
    /// The values casbin stores for this rule (`sub, obj, act, eft, view`).
    pub(crate) fn casbin_values(&self) -> Vec<String> {
        vec![
            self.subject.clone(),
            self.object.clone(),
            self.action.as_str().to_owned(),
            self.effect.as_str().to_owned(),
            self.view.clone().unwrap_or_default(),
        ]
    }

    /// The rule as written in the file (normalised spacing), for audit events.
    pub(crate) fn text(&self) -> String {
        let mut text = format!(
            "p, {}, {}, {}, {}",
            self.subject,
            self.object,
            self.action.as_str(),
            self.effect.as_str()
        );
        if let Some(view) = &self.view {
            text.push_str(", ");
            text.push_str(view);
        }
        text
    }
}

/// The checked content of `policy.csv`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PolicyFile {
    /// `p` rules in file order, without duplicates.
    pub rules: Vec<PolicyRule>,
    /// `g, <role>, <inherited role>` lines.
    pub inheritance: Vec<(String, String)>,
    /// `g2, <dataset>, group:<name>` lines.
    pub groups: Vec<(String, String)>,
}

/// Parses and checks `policy.csv`; `file` is only used in error messages.
pub(crate) fn parse_policy(file: &Path, text: &str) -> Result<PolicyFile, PolicyError> {
    let mut policy = PolicyFile::default();
    let mut seen_rules = HashSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let invalid = |reason: String| PolicyError::Invalid {
            file: file.to_owned(),
            line,
            reason,
        };
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if content.contains('"') {
            return Err(invalid("quotes are not supported in policy lines".into()));
        }
        let fields: Vec<&str> = content.split(',').map(str::trim).collect();
        match fields[0] {
            "p" => {
                let rule = parse_rule(&fields[1..], line).map_err(invalid)?;
                if seen_rules.insert(rule.casbin_values()) {
                    policy.rules.push(rule);
                } else {
                    tracing::warn!(file = %file.display(), line, "duplicate policy rule ignored");
                }
            }
            "g" => {
                let [child, parent] = fields[1..] else {
                    return Err(invalid(format!(
                        "a `g` line is `g, <role>, <inherited role>`, found {} fields",
                        fields.len()
                    )));
                };
                check_name(child, "role").map_err(&invalid)?;
                check_name(parent, "role").map_err(&invalid)?;
                if child == parent {
                    return Err(invalid(format!("role `{child}` cannot inherit itself")));
                }
                let link = (child.to_owned(), parent.to_owned());
                if !policy.inheritance.contains(&link) {
                    policy.inheritance.push(link);
                }
            }
            "g2" => {
                let [dataset, group] = fields[1..] else {
                    return Err(invalid(format!(
                        "a `g2` line is `g2, <dataset>, group:<name>`, found {} fields",
                        fields.len()
                    )));
                };
                check_slug(dataset, "dataset id").map_err(&invalid)?;
                match group.strip_prefix("group:") {
                    Some(name) => check_slug(name, "group name").map_err(&invalid)?,
                    None if group.starts_with("level:") => {
                        return Err(invalid(
                            "datasets are placed in levels by the catalogue's `access` field, not by `g2` lines"
                                .into(),
                        ));
                    }
                    None => {
                        return Err(invalid(format!(
                            "`{group}` is not of the form `group:<name>`"
                        )));
                    }
                }
                let link = (dataset.to_owned(), group.to_owned());
                if !policy.groups.contains(&link) {
                    policy.groups.push(link);
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown line type `{other}`: expected `p`, `g` or `g2`"
                )));
            }
        }
    }
    Ok(policy)
}

/// Checks the fields after `p`: `sub, obj, act, eft[, view]`.
fn parse_rule(fields: &[&str], line: usize) -> Result<PolicyRule, String> {
    let (subject, object, action, effect, view) = match *fields {
        [subject, object, action, effect] => (subject, object, action, effect, ""),
        [subject, object, action, effect, view] => (subject, object, action, effect, view),
        _ => {
            return Err(format!(
                "a `p` line is `p, <role>, <object>, <action>, <allow|deny>, <view>`, found {} fields",
                fields.len() + 1
            ));
        }
    };
    check_name(subject, "role")?;
    let action = Action::parse(action).ok_or_else(|| {
        let known: Vec<&str> = Action::ALL.iter().map(|action| action.as_str()).collect();
        format!("unknown action `{action}` (known: {})", known.join(", "))
    })?;
    let effect = match effect {
        "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        other => {
            return Err(format!(
                "unknown effect `{other}`: expected `allow` or `deny`"
            ));
        }
    };
    let form = parse_object(object)?;
    if action.is_global() {
        if !matches!(form, ObjectForm::Everything | ObjectForm::Audit) {
            return Err(format!(
                "action `{action}` concerns the whole gateway: its object must be `*` or `audit`, not `{object}`"
            ));
        }
    } else if form == ObjectForm::Audit {
        return Err(format!(
            "action `{action}` needs a dataset, a `level:`, a `group:` or `*`, not `audit`"
        ));
    }
    let view = if view.is_empty() {
        None
    } else {
        if !action.is_data() {
            return Err(format!(
                "a view only applies to read, export and aggregate, not to `{action}`"
            ));
        }
        if effect == Effect::Deny {
            return Err("a deny rule cannot name a view".into());
        }
        check_slug(view, "view name")?;
        Some(view.to_owned())
    };
    Ok(PolicyRule {
        subject: subject.to_owned(),
        object: object.to_owned(),
        action,
        effect,
        view,
        line,
    })
}

fn parse_object(object: &str) -> Result<ObjectForm, String> {
    if object == "*" {
        return Ok(ObjectForm::Everything);
    }
    if object == "audit" {
        return Ok(ObjectForm::Audit);
    }
    if let Some(level) = object.strip_prefix("level:") {
        return match parse_level(level) {
            Some(level) => Ok(ObjectForm::Level(level)),
            None => Err(format!(
                "unknown level `{level}` (known: open, partners, internal, confidential, undecided)"
            )),
        };
    }
    if let Some(group) = object.strip_prefix("group:") {
        check_slug(group, "group name")?;
        return Ok(ObjectForm::Group);
    }
    if let Some(publisher) = object.strip_prefix("publisher:") {
        check_slug(publisher, "publisher slug")?;
        return Ok(ObjectForm::Publisher);
    }
    if object.contains(':') {
        return Err(format!(
            "unknown object `{object}`: expected a dataset id, `level:<level>`, `group:<name>`, `publisher:<slug>`, `audit` or `*`"
        ));
    }
    check_slug(object, "dataset id")?;
    Ok(ObjectForm::Dataset)
}

/// The access level named as in the catalogue (`open`, `partners`, …).
pub(crate) fn parse_level(text: &str) -> Option<AccessLevel> {
    [
        AccessLevel::Open,
        AccessLevel::Partners,
        AccessLevel::Internal,
        AccessLevel::Confidential,
        AccessLevel::Undecided,
    ]
    .into_iter()
    .find(|level| level.as_str() == text)
}

/// Role names: letters, digits and `-_.:@` (e.g. `org:ademe`).
pub(crate) fn is_valid_role(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    if is_valid_role(name) {
        Ok(())
    } else if name.is_empty() {
        Err(format!("empty {what}"))
    } else {
        Err(format!(
            "invalid {what} `{name}`: use letters, digits and - _ . : @"
        ))
    }
}

/// Dataset ids, view and group names: letters, digits, `-`, `_`, `.`.
fn check_slug(name: &str, what: &str) -> Result<(), String> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else if name.is_empty() {
        Err(format!("empty {what}"))
    } else {
        Err(format!(
            "invalid {what} `{name}`: use letters, digits and - _ ."
        ))
    }
}

/// Parses `model.conf` and checks it has the shape the engine relies on.
pub(crate) async fn parse_model(file: &Path, text: &str) -> Result<DefaultModel, PolicyError> {
    let model_error = |reason: String| PolicyError::Model {
        file: file.to_owned(),
        reason,
    };
    let model = DefaultModel::from_str(text)
        .await
        .map_err(|error| model_error(error.to_string()))?;
    let sections = model.get_model();
    let assertion = |section: &str, key: &str| sections.get(section).and_then(|map| map.get(key));
    let tokens = |section: &str, key: &str| assertion(section, key).map(|ast| ast.tokens.clone());
    let expect_tokens = |key: &str, expected: &[&str]| -> Result<(), PolicyError> {
        let expected: Vec<String> = expected
            .iter()
            .map(|token| format!("{key}_{token}"))
            .collect();
        match tokens(key, key) {
            Some(found) if found == expected => Ok(()),
            _ => Err(model_error(format!(
                "`{key}` must be `{}`",
                expected
                    .iter()
                    .map(|token| token.trim_start_matches(&format!("{key}_")).to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    };
    expect_tokens("r", &["sub", "obj", "act"])?;
    expect_tokens("p", &["sub", "obj", "act", "eft", "view"])?;
    for key in ["g", "g2"] {
        if assertion("g", key).is_none() {
            return Err(model_error(format!(
                "the role definition `{key} = _, _` is missing"
            )));
        }
    }
    match assertion("e", "e") {
        Some(effect) if effect.value.replace(' ', "") == DENY_OVERRIDES.replace(' ', "") => {}
        _ => {
            return Err(model_error(
                "the policy effect must be `some(where (p.eft == allow)) && !some(where (p.eft == deny))` \
                 (deny overrides allow)"
                    .into(),
            ));
        }
    }
    let Some(matcher) = assertion("m", "m") else {
        return Err(model_error("the matcher `m` is missing".into()));
    };
    // regexMatch panics on an invalid pattern and the key/glob/ip matchers build
    // patterns from policy values: none of them is needed here.
    if matcher.value.contains("Match(") {
        return Err(model_error(
            "pattern matchers (regexMatch, keyMatch, globMatch, ipMatch) are not allowed in the matcher"
                .into(),
        ));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
        parse_policy(Path::new("policy.csv"), text)
    }

    fn error_of(text: &str) -> (usize, String) {
        match parse(text) {
            Err(PolicyError::Invalid { line, reason, .. }) => (line, reason),
            other => panic!("expected an invalid line, got {other:?}"),
        }
    }

    /// Comments, blank lines, trailing empty view and every line type are read.
    #[test]
    fn reads_a_valid_file() {
        let policy = parse(
            "# comment\n\np, anonymous, level:open, read, allow, \n\
             p, partenaire, locations-velos, read, allow, par-commune\n\
             p,auditor,audit,audit:read,allow\n\
             g, admin, agent\n\
             g2, locations-velos, group:mobilite\n",
        )
        .unwrap();
        assert_eq!(policy.rules.len(), 3);
        assert_eq!(policy.rules[0].line, 3);
        assert_eq!(policy.rules[0].view, None);
        assert_eq!(
            policy.rules[0].text(),
            "p, anonymous, level:open, read, allow"
        );
        assert_eq!(policy.rules[1].view.as_deref(), Some("par-commune"));
        assert_eq!(
            policy.rules[1].casbin_values(),
            [
                "partenaire",
                "locations-velos",
                "read",
                "allow",
                "par-commune"
            ]
        );
        assert_eq!(policy.rules[2].action, Action::AuditRead);
        assert_eq!(
            policy.inheritance,
            [("admin".to_owned(), "agent".to_owned())]
        );
        assert_eq!(
            policy.groups,
            [("locations-velos".to_owned(), "group:mobilite".to_owned())]
        );
    }

    /// A rule written twice is kept once, at its first line.
    #[test]
    fn duplicates_are_kept_once() {
        let policy = parse("p, a, x, read, allow\np, a, x, read, allow,\n").unwrap();
        assert_eq!(policy.rules.len(), 1);
        assert_eq!(policy.rules[0].line, 1);
    }

    /// Each kind of mistake is reported with its line and a reason naming it.
    #[test]
    fn bad_lines_are_reported_with_line_and_reason() {
        let cases = [
            ("p, a, x, write, allow", "unknown action `write`"),
            ("p, a, x, read, permit", "unknown effect `permit`"),
            ("p, a, level:secret, read, allow", "unknown level `secret`"),
            ("p, a, foo:bar, read, allow", "unknown object `foo:bar`"),
            ("p, a, x, read", "found 4 fields"),
            ("p, a, x, admin, allow", "must be `*` or `audit`"),
            ("p, a, audit, read, allow", "not `audit`"),
            ("p, a, x, metadata, allow, v", "a view only applies"),
            ("p, a, x, read, deny, v", "deny rule cannot name a view"),
            ("p, a b, x, read, allow", "invalid role `a b`"),
            ("p, a, x/y, read, allow", "invalid dataset id `x/y`"),
            ("p, \"a\", x, read, allow", "quotes"),
            ("g, a", "`g` line"),
            ("g, a, a", "cannot inherit itself"),
            ("g2, x, level:open", "catalogue's `access` field"),
            ("g2, x, mobilite", "group:<name>"),
            ("q, a, b", "unknown line type `q`"),
        ];
        for (line, expected) in cases {
            let (number, reason) = error_of(&format!("# first\n{line}\n"));
            assert_eq!(number, 2, "{line}");
            assert!(reason.contains(expected), "{line}: {reason}");
        }
    }

    /// The error message names the file and the line.
    #[test]
    fn error_message_names_file_and_line() {
        let error = parse_policy(Path::new("/p/policy.csv"), "p, a, x, write, allow").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("/p/policy.csv:1: unknown action"),
            "{error}"
        );
    }

    const MODEL: &str = include_str!("../../policies/model.conf");

    /// The shipped model passes the checks.
    #[tokio::test]
    async fn shipped_model_is_accepted() {
        parse_model(Path::new("model.conf"), MODEL).await.unwrap();
    }

    /// Models the engine cannot rely on are refused with a reason.
    #[tokio::test]
    async fn unsafe_or_unexpected_models_are_refused() {
        let cases = [
            (
                MODEL.replace("r.obj == p.obj ||", "regexMatch(r.obj, p.obj) ||"),
                "pattern matchers",
            ),
            (
                MODEL.replace(
                    "some(where (p.eft == allow)) && !some(where (p.eft == deny))",
                    "some(where (p.eft == allow))",
                ),
                "deny overrides allow",
            ),
            (
                MODEL.replace("p = sub, obj, act, eft, view", "p = sub, obj, act, eft"),
                "`p` must be",
            ),
            (
                MODEL.replace("r = sub, obj, act", "r = sub, act"),
                "`r` must be",
            ),
            (MODEL.replace("g2 = _, _", ""), "`g2 = _, _` is missing"),
        ];
        for (model, expected) in cases {
            assert_ne!(model, MODEL, "case for {expected} did not change the model");
            let Err(error) = parse_model(Path::new("model.conf"), &model).await else {
                panic!("model accepted, expected: {expected}");
            };
            assert!(error.to_string().contains(expected), "{expected}: {error}");
        }
    }
}
