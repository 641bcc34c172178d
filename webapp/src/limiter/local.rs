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

use super::{ClientId, Decision, Policy, PolicySet};

type Keyed = RateLimiter<
    ClientId,
    DefaultKeyedStateStore<ClientId>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Decisions between sweeps of the clients whose state has gone back to full.
const SWEEP_EVERY: u64 = 4096;

/// One policy's share on this server: `None` when the share rounds down to nothing (fewer
/// requests per window than servers), and every request is refused.
struct Share {
    limit: u64,
    window: Duration,
    keyed: Option<Keyed>,
}

pub struct LocalLimiter {
    /// By policy: an override's policy of the same name has a share of its own.
    shares: Vec<(Policy, Share)>,
    clock: DefaultClock,
    decisions: AtomicU64,
}

impl LocalLimiter {
    pub fn new(policies: &PolicySet, instances: u32) -> Self {
        let shares = policies
            .all()
            .map(|policy| (policy.clone(), Share::of(policy, instances)))
            .collect();
        Self {
            shares,
            clock: DefaultClock::default(),
            decisions: AtomicU64::new(0),
        }
    }

    /// This server's share of `policy`'s limit.
    pub fn share(&self, policy: &Policy) -> u64 {
        self.find(policy).map_or(0, |share| share.limit)
    }

    /// The decision this server makes alone, in the shape Redis' would have.
    pub fn decide(&self, policy: &Policy, client: &ClientId) -> Decision {
        if self.decisions.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let share = self.find(policy);
        let window = share.map_or(policy.window.as_millis(), |s| millis(s.window));
        let decision = |allowed, remaining, reset_ms| Decision {
            allowed,
            policy: policy.name.clone(),
            limit: share.map_or(0, |s| s.limit),
            window_seconds: window.div_ceil(1000),
            remaining,
            reset_ms,
        };
        match share.and_then(|s| s.keyed.as_ref().map(|k| (s, k))) {
            None => decision(false, 0, window),
            Some((share, keyed)) => match keyed.check_key(client) {
                Ok(state) => {
                    let remaining = u64::from(state.remaining_burst_capacity());
                    // A unit of quota returns every window / limit.
                    let per_unit = millis(share.window) / share.limit.max(1);
                    let reset_ms = if remaining >= share.limit {
                        0
                    } else {
                        per_unit
                    };
                    decision(true, remaining, reset_ms)
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    decision(false, 0, millis(wait).max(1))
                }
            },
        }
    }

    fn find(&self, policy: &Policy) -> Option<&Share> {
        self.shares
            .iter()
            .find(|(of, _)| of == policy)
            .map(|(_, share)| share)
    }

    fn sweep(&self) {
        for (_, share) in &self.shares {
            if let Some(keyed) = &share.keyed {
                keyed.retain_recent();
                keyed.shrink_to_fit();
            }
        }
    }
}

impl Share {
    fn of(policy: &Policy, instances: u32) -> Self {
        let window = Duration::from_millis(policy.window.as_millis());
        let limit = policy.limit / u64::from(instances.max(1));
        let burst = NonZeroU32::new(u32::try_from(limit).unwrap_or(u32::MAX));
        // The whole share at once, then one unit back every window / share.
        let keyed = burst.and_then(|burst| {
            let period = window / burst.get();
            Quota::with_period(period.max(Duration::from_nanos(1)))
                .map(|quota| RateLimiter::keyed(quota.allow_burst(burst)).with_middleware())
        });
        Self {
            limit: if keyed.is_some() { limit } else { 0 },
            window,
            keyed,
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
        assert_eq!(local.share(policy), 3);
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
    fn a_share_that_rounds_to_nothing_refuses_everything() {
        let set = policies(1);
        let policy = set.for_route(None);
        let local = LocalLimiter::new(&set, 2);
        assert_eq!(local.share(policy), 0);
        let decision = local.decide(policy, &client(1));
        assert!(!decision.allowed);
        assert_eq!(decision.reset_ms, 60_000);
    }
}
