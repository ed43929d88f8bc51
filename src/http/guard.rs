//! Global permissions (`admin`, `audit:read`) for the administration and
//! audit endpoints: anonymous callers get 401, others without the right 403.
//! The decision goes into the request's audit event either way.

use crate::http::context::RequestContext;
use crate::http::problem::Problem;
use crate::http::state::AppState;
use crate::policy::Action;

/// Refuses unless the caller's roles hold `action` globally.
pub fn require(state: &AppState, context: &RequestContext, action: Action) -> Result<(), Problem> {
    let caller = &context.caller;
    let allowed = state.policy.allows_global(&caller.roles, action);
    context.note(|record| {
        record.action = Some(action.into());
        record.decision = Some(allowed);
        record.rule = Some(format!(
            "{} {} globally",
            if allowed {
                "roles grant"
            } else {
                "no role grants"
            },
            action.as_str()
        ));
        // Administration and the audit log are closed: no answer without a record.
        record.closed_data = true;
    });
    if allowed {
        Ok(())
    } else if caller.is_anonymous() {
        Err(Problem::authentication_required(format!(
            "this endpoint needs the `{}` permission: authenticate first",
            action.as_str()
        )))
    } else {
        Err(Problem::forbidden(format!(
            "your roles do not grant the `{}` permission",
            action.as_str()
        )))
    }
}
