//! The answer's headers: `RateLimit-Policy` / `RateLimit` as structured fields
//! (draft-ietf-httpapi-ratelimit-headers-11) and `Retry-After` on refusals.

use super::Decision;

pub const RATELIMIT_POLICY: &str = "RateLimit-Policy";
pub const RATELIMIT: &str = "RateLimit";
pub const RETRY_AFTER: &str = "Retry-After";

/// The name a limit goes by in the headers: the policy's, or with several limits the
/// policy's and the window's (`shorten/60s`), so each list member has a name of its own.
fn limit_name(decision: &Decision, index: usize) -> String {
    match decision.limits.as_slice() {
        [_] => decision.policy.clone(),
        limits => format!("{}/{}", decision.policy, limits[index].window),
    }
}

/// `"<policy>";q=<limit>;w=<window seconds>`, one list member per limit of the policy.
pub fn policy_value(decision: &Decision) -> String {
    let members: Vec<String> = decision
        .limits
        .iter()
        .enumerate()
        .map(|(index, limit)| {
            format!(
                "\"{}\";q={};w={}",
                limit_name(decision, index),
                limit.limit,
                limit.window.as_header_seconds()
            )
        })
        .collect();
    members.join(", ")
}

/// `"<policy>";r=<remaining>;t=<seconds until the next unit of quota returns>`, of the
/// limit closest to refusing ([`Decision::shown`]).
pub fn ratelimit_value(decision: &Decision) -> String {
    format!(
        "\"{}\";r={};t={}",
        limit_name(decision, decision.shown),
        decision.remaining,
        decision.reset_seconds()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::{Limit, Window};

    fn limit(limit: u64, window_ms: u64) -> Limit {
        Limit {
            limit,
            window: Window::from_millis(window_ms),
        }
    }

    #[test]
    fn values_are_structured_fields() {
        let decision = Decision {
            allowed: false,
            policy: "shorten".into(),
            limits: vec![limit(10, 60_000)],
            shown: 0,
            remaining: 0,
            reset_ms: 1_001,
        };
        assert_eq!(policy_value(&decision), "\"shorten\";q=10;w=60");
        assert_eq!(ratelimit_value(&decision), "\"shorten\";r=0;t=2");
        assert_eq!(decision.retry_after_seconds(), 2);
    }

    #[test]
    fn every_limit_is_listed_and_the_closest_to_refusing_reported() {
        let decision = Decision {
            allowed: true,
            policy: "shorten".into(),
            limits: vec![limit(10, 60_000), limit(100, 3_600_000), limit(3, 500)],
            shown: 1,
            remaining: 4,
            reset_ms: 30_000,
        };
        assert_eq!(
            policy_value(&decision),
            "\"shorten/60s\";q=10;w=60, \"shorten/3600s\";q=100;w=3600, \"shorten/500ms\";q=3;w=1"
        );
        assert_eq!(ratelimit_value(&decision), "\"shorten/3600s\";r=4;t=30");
    }
}
