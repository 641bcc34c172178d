//! The fallback of `fail_mode = "local"`: while Redis cannot decide, each web server limits
//! on its own, in memory, to its share of every policy (`limit / instances`, rounded down),
//! so the servers together never admit more than the limit. GCRA from `governor`, one
//! keyed limiter per policy; state of clients not seen for a window is dropped as it goes.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{ClientId, Decision, Limit, Policy, PolicySet};

type Keyed = RateLimiter<
    ClientId,
    DefaultKeyedStateStore<ClientId>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Decisions between sweeps of the clients whose state has gone back to full.
const SWEEP_EVERY: u64 = 4096;

/// One limit's share on this server: `None` when the share rounds down to nothing (fewer
/// requests per window than servers), and every request is refused.
struct Share {
    /// This server's part of the limit (0 when it rounds down to nothing), same window.
    share: Limit,
    keyed: Option<Keyed>,
}

pub struct LocalLimiter {
    /// By policy, one share per limit: an override's policy of the same name has shares of
    /// its own.
    shares: Vec<(Policy, Vec<Share>)>,
    clock: DefaultClock,
    decisions: AtomicU64,
}

impl LocalLimiter {
    pub fn new(policies: &PolicySet, instances: u32) -> Self {
        let shares = policies
            .all()
            .map(|policy| {
                let shares = policy
                    .limits
                    .iter()
                    .map(|limit| Share::of(limit, instances))
                    .collect();
                (policy.clone(), shares)
            })
            .collect();
        Self {
            shares,
            clock: DefaultClock::default(),
            decisions: AtomicU64::new(0),
        }
    }

    /// This server's share of each of `policy`'s limits.
    pub fn shares(&self, policy: &Policy) -> Vec<u64> {
        self.find(policy).iter().map(|s| s.share.limit).collect()
    }

    /// The decision this server makes alone, in the shape Redis' would have. The limits are
    /// asked in turn and the first that refuses ends the decision; the limits before it have
    /// counted the request, which only makes the fallback stricter (never admits more).
    pub fn decide(&self, policy: &Policy, client: &ClientId) -> Decision {
        if self.decisions.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let shares = self.find(policy);
        let mut decision = Decision {
            allowed: true,
            policy: policy.name.clone(),
            limits: shares.iter().map(|s| s.share).collect(),
            shown: 0,
            remaining: u64::MAX,
            reset_ms: 0,
        };
        for (index, share) in shares.iter().enumerate() {
            let (allowed, remaining, reset_ms) = share.decide(client, &self.clock);
            if !allowed {
                decision.allowed = false;
                (decision.shown, decision.remaining, decision.reset_ms) = (index, 0, reset_ms);
                break;
            }
            if remaining < decision.remaining {
                (decision.shown, decision.remaining, decision.reset_ms) =
                    (index, remaining, reset_ms);
            }
        }
        decision
    }

    fn find(&self, policy: &Policy) -> &[Share] {
        self.shares
            .iter()
            .find(|(of, _)| of == policy)
            .map_or(&[], |(_, shares)| shares.as_slice())
    }

    fn sweep(&self) {
        for share in self.shares.iter().flat_map(|(_, shares)| shares) {
            if let Some(keyed) = &share.keyed {
                keyed.retain_recent();
                keyed.shrink_to_fit();
            }
        }
    }
}

impl Share {
    fn of(whole: &Limit, instances: u32) -> Self {
        let window = Duration::from_millis(whole.window.as_millis());
        let limit = whole.limit / u64::from(instances.max(1));
        let burst = NonZeroU32::new(u32::try_from(limit).unwrap_or(u32::MAX));
        // The whole share at once, then one unit back every window / share.
        let keyed = burst.and_then(|burst| {
            let period = window / burst.get();
            Quota::with_period(period.max(Duration::from_nanos(1)))
                .map(|quota| RateLimiter::keyed(quota.allow_burst(burst)).with_middleware())
        });
        Self {
            share: Limit {
                limit: if keyed.is_some() { limit } else { 0 },
                window: whole.window,
            },
            keyed,
        }
    }

    /// (admitted, units left, ms until the next unit returns) for one request of `client`.
    fn decide(&self, client: &ClientId, clock: &DefaultClock) -> (bool, u64, u64) {
        let Limit { limit, window } = self.share;
        let Some(keyed) = &self.keyed else {
            return (false, 0, window.as_millis());
        };
        match keyed.check_key(client) {
            Ok(state) => {
                let remaining = u64::from(state.remaining_burst_capacity());
                // A unit of quota returns every window / limit.
                let per_unit = window.as_millis() / limit.max(1);
                let reset_ms = if remaining >= limit { 0 } else { per_unit };
                (true, remaining, reset_ms)
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(clock.now());
                (false, 0, millis(wait).max(1))
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterlab_contract::Window;

    fn policies(limit: u64) -> PolicySet {
        PolicySet::new(vec![Policy::new(
            "default",
            limit,
            Window::from_millis(60_000),
        )])
    }

    fn client(n: u8) -> ClientId {
        ClientId::from_ip(std::net::IpAddr::from([203, 0, 113, n]), 64)
    }

    #[test]
    fn each_server_admits_its_share_and_then_refuses() {
        let set = policies(10);
        let policy = set.for_route(None);
        let local = LocalLimiter::new(&set, 3);
        assert_eq!(local.shares(policy), [3]);
        let decisions: Vec<Decision> = (0..5).map(|_| local.decide(policy, &client(1))).collect();
        let admitted: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        assert_eq!(decisions[0].remaining, 2);
        assert_eq!(decisions[2].remaining, 0);
        // One unit returns every 20 s (60 s / 3).
        let wait = decisions[3].reset_ms;
        assert!((19_000..=20_000).contains(&wait), "{wait}");
        // Another client has a share of its own.
        assert!(local.decide(policy, &client(2)).allowed);
    }

    #[test]
    fn every_limit_has_a_share_and_the_tightest_refuses() {
        let policy = Policy {
            name: "default".into(),
            limits: vec![
                Limit {
                    limit: 100,
                    window: Window::from_millis(60_000),
                },
                Limit {
                    limit: 4,
                    window: Window::from_millis(1_000),
                },
            ],
            shadow: false,
        };
        let set = PolicySet::new(vec![policy.clone()]);
        let local = LocalLimiter::new(&set, 2);
        assert_eq!(local.shares(&policy), [50, 2]);
        let decisions: Vec<Decision> = (0..3).map(|_| local.decide(&policy, &client(1))).collect();
        assert_eq!((decisions[0].allowed, decisions[0].shown), (true, 1));
        assert_eq!(decisions[0].remaining, 1);
        assert_eq!((decisions[2].allowed, decisions[2].shown), (false, 1));
        assert_eq!(decisions[2].limits[1].limit, 2);
    }

    #[test]
    fn a_share_that_rounds_to_nothing_refuses_everything() {
        let set = policies(1);
        let policy = set.for_route(None);
        let local = LocalLimiter::new(&set, 2);
        assert_eq!(local.shares(policy), [0]);
        let decision = local.decide(policy, &client(1));
        assert!(!decision.allowed);
        assert_eq!(decision.reset_ms, 60_000);
    }
}
