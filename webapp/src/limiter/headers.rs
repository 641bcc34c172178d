//! The answer's headers: `RateLimit-Policy` / `RateLimit` as structured fields
//! (draft-ietf-httpapi-ratelimit-headers-11) and `Retry-After` on refusals.

use super::Decision;

pub const RATELIMIT_POLICY: &str = "RateLimit-Policy";
pub const RATELIMIT: &str = "RateLimit";
pub const RETRY_AFTER: &str = "Retry-After";

/// `"<policy>";q=<limit>;w=<window seconds>`.
pub fn policy_value(decision: &Decision) -> String {
    format!(
        "\"{}\";q={};w={}",
        decision.policy, decision.limit, decision.window_seconds
    )
}

/// `"<policy>";r=<remaining>;t=<seconds until the next unit of quota returns>`.
pub fn ratelimit_value(decision: &Decision) -> String {
    format!(
        "\"{}\";r={};t={}",
        decision.policy,
        decision.remaining,
        decision.reset_seconds()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_structured_fields() {
        let decision = Decision {
            allowed: false,
            policy: "shorten".into(),
            limit: 10,
            window_seconds: 60,
            remaining: 0,
            reset_ms: 1_001,
        };
        assert_eq!(policy_value(&decision), "\"shorten\";q=10;w=60");
        assert_eq!(ratelimit_value(&decision), "\"shorten\";r=0;t=2");
        assert_eq!(decision.retry_after_seconds(), 2);
    }
}
