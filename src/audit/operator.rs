//! Events for the changes an operator makes from the gateway's host
//! (`passerelle datasets create|update|retire`, `passerelle import`): the
//! same publishing events as the API's, in the same chain, so an auditor
//! sees the changes made from a shell too. The subject is `cli:<login>`,
//! the method `CLI`, the path the command.

use super::event::{Action, AuthMethod, Decision, Event};

/// The rule recorded for an operator's change: no policy decided it, the
/// operator's access to the host (and to the store) did.
pub const OPERATOR_RULE: &str = "local operator: a shell on the gateway's host";

/// The subject of the local operator: `cli:` and the login (`$USER`, else
/// `$LOGNAME`, else `unknown`).
pub fn operator_subject() -> String {
    let login = ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!("cli:{login}")
}

/// The event of the operator's `command` (`passerelle datasets create`)
/// that changed `dataset`: allowed, with the action the API would record
/// for the same change, the status it would answer, and what changed (as
/// the API writes it: the fields with their old and new values, or the
/// version's facts).
pub fn operator_event(
    command: &str,
    dataset: &str,
    action: Action,
    status: u16,
    started: std::time::Instant,
    changes: &serde_json::Value,
) -> Event {
    Event {
        time: chrono::Utc::now(),
        request_id: format!("cli-{}", uuid::Uuid::new_v4()),
        subject: Some(operator_subject()),
        roles: vec!["operator".to_owned()],
        auth_method: AuthMethod::Local,
        user_agent: Some(format!("passerelle/{}", env!("CARGO_PKG_VERSION"))),
        method: "CLI".to_owned(),
        path: command.to_owned(),
        dataset: Some(dataset.to_owned()),
        action,
        decision: Decision::Allow,
        rule: Some(OPERATOR_RULE.to_owned()),
        status,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        changes: Some(changes.to_string()),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operator's event names the login, the command and the change.
    #[test]
    fn describes_the_operator_and_the_change() {
        let event = operator_event(
            "passerelle datasets retire",
            "velos",
            Action::Manage,
            204,
            std::time::Instant::now(),
            &serde_json::json!({"retired": true}),
        );
        assert!(event.subject.as_deref().unwrap().starts_with("cli:"));
        assert_eq!(event.auth_method, AuthMethod::Local);
        assert_eq!(event.decision, Decision::Allow);
        assert_eq!(event.changes.as_deref(), Some(r#"{"retired":true}"#));
    }
}
