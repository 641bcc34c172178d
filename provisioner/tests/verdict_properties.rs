//! Property tests of the load test's verdict against simulated limiters: each algorithm's
//! decision rule as its Lua script states it (webapp/src/limiter/lua/), driven by random
//! arrivals, random network delays on both sides of the decision and a random offset of
//! Redis' clock. The exact limiter always PASSES; one admitting one more per window, or one
//! fewer, always FAILS — given a burst at the start that makes the difference certain. The
//! same holds for a policy of two limits, decided jointly as decide.lua does, whichever of
//! the two binds.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use provisioner::spec::{Algorithm, Limit, Limiter, Policies, Policy, Window};
use provisioner::verdict::{judge, K6Run, Sample, Thresholds};

const ALGORITHMS: [Algorithm; 3] = [
    Algorithm::SlidingLog,
    Algorithm::SlidingWindow,
    Algorithm::Gcra,
];

/// One client's traffic: a burst at the start, then arrivals at random gaps.
#[derive(Debug, Clone)]
struct Traffic {
    algorithm: Algorithm,
    limit: u32,
    window_ms: u64,
    /// Redis' clock minus the tester's, µs: where the fixed windows fall.
    offset: i64,
    /// (arrival, delay to the decision, delay of the answer), µs.
    requests: Vec<(i64, i64, i64)>,
}

fn traffic() -> impl Strategy<Value = Traffic> {
    (
        proptest::sample::select(ALGORITHMS.to_vec()),
        1u32..50,
        1_000u64..60_000,
        any::<u64>(),
        (
            0usize..20,
            proptest::collection::vec((0u32..1000, 0u32..1000, 0u32..1000), 0..150),
        ),
        (
            prop_oneof![Just(0.0), Just(0.001), Just(0.05), Just(0.5), Just(2.0)],
            prop_oneof![Just(1i64), Just(4), Just(24)],
        ),
        proptest::collection::vec((0u32..1000, 0u32..1000, 0u32..1000), 25),
    )
        .prop_map(
            |(algorithm, limit, window_ms, offset, (extra, later), (jitter, gaps), burst)| {
                let window = window_ms as i64 * 1000;
                // Within the burst, arrivals and delays are each within an eighth of the
                // emission interval W/N: the whole burst is decided in less than W/N.
                let eighth = window / i64::from(limit) / 8;
                let scaled = |unit: u32, of: i64| i64::from(unit) * of / 1000;
                let burst_size = limit as usize + 2 + extra;
                let mut requests: Vec<(i64, i64, i64)> = burst
                    .iter()
                    .cycle()
                    .take(burst_size)
                    .map(|&(a, d, r)| (scaled(a, eighth), scaled(d, eighth), scaled(r, eighth)))
                    .collect();
                // Later arrivals start after the burst's answers, at gaps up to 3 W/N, with
                // delays up to `jitter` windows.
                let mut time = 8 * eighth;
                let delay = (jitter * window as f64) as i64;
                for (gap, d, r) in later {
                    time += scaled(gap, gaps * eighth);
                    requests.push((time, scaled(d, delay), scaled(r, delay)));
                }
                Traffic {
                    algorithm,
                    limit,
                    window_ms,
                    offset: (offset % (window as u64)) as i64,
                    requests,
                }
            },
        )
}

/// The limiter's state in Redis, one rule per Lua script.
#[derive(Clone)]
enum State {
    /// sliding_log.lua: the admissions' times, µs.
    Log(VecDeque<i64>),
    /// sliding_window.lua: the current window's index and count, the previous count.
    Counter { w: Option<i64>, c: i64, p: i64 },
    /// gcra.lua: the TAT in 1/limit µs.
    Tat(i128),
}

fn decide(state: &mut State, now_us: i64, limit: u32, window_ms: u64) -> bool {
    let (limit, window_us) = (i64::from(limit), window_ms as i64 * 1000);
    match state {
        State::Log(log) => {
            while log.front().is_some_and(|&t| t <= now_us - window_us) {
                log.pop_front();
            }
            let admitted = (log.len() as i64) < limit;
            if admitted {
                log.push_back(now_us);
            }
            admitted
        }
        State::Counter { w, c, p } => {
            let window = window_ms as i64;
            let now = now_us.div_euclid(1000);
            let index = now.div_euclid(window);
            let elapsed = now - index * window;
            // The script writes its hash back only when it admits.
            let (current, previous) = match *w {
                Some(stored) if stored == index => (*c, *p),
                Some(stored) if stored == index - 1 => (0, *c),
                _ => (0, 0),
            };
            let admitted =
                previous * (window - elapsed) + current * window + window <= limit * window;
            if admitted {
                (*w, *c, *p) = (Some(index), current + 1, previous);
            }
            admitted
        }
        State::Tat(tat) => {
            let (n, now) = (i128::from(limit), i128::from(now_us) * i128::from(limit));
            let backlog = (*tat - now).max(0);
            let admitted = backlog + i128::from(window_us) <= i128::from(window_us) * n;
            if admitted {
                *tat = now + backlog + i128::from(window_us);
            }
            admitted
        }
    }
}

/// One decision under several limits, as decide.lua makes it: admitted only if every limit
/// has room, and then recorded in all of them; a refusal changes none.
fn decide_all(states: &mut Vec<State>, now_us: i64, limits: &[(u32, u64)]) -> bool {
    let mut tried = states.clone();
    let admitted = tried
        .iter_mut()
        .zip(limits)
        .all(|(state, &(limit, window_ms))| decide(state, now_us, limit, window_ms));
    if admitted {
        *states = tried;
    }
    admitted
}

/// Runs the traffic through the algorithm with `limit` (the policy's, or a wrong one) and
/// judges the answers against the policy.
fn verdict_for(t: &Traffic, limit: u32) -> provisioner::verdict::Verdict {
    let window = t.window_ms;
    verdict_with(t, &[(limit, window)], &[(t.limit, window)])
}

/// A second, looser limit next to the traffic's: four times the limit in twice the window.
fn looser(t: &Traffic) -> (u32, u64) {
    (t.limit * 4, t.window_ms * 2)
}

/// Runs the traffic through the algorithm deciding with `simulated` limits (each a limit
/// per window in ms) and judges the answers against a policy of `policy` limits.
fn verdict_with(
    t: &Traffic,
    simulated: &[(u32, u64)],
    policy: &[(u32, u64)],
) -> provisioner::verdict::Verdict {
    let fresh = || match t.algorithm {
        Algorithm::SlidingLog => State::Log(VecDeque::new()),
        Algorithm::SlidingWindow => State::Counter {
            w: None,
            c: 0,
            p: 0,
        },
        Algorithm::Gcra => State::Tat(0),
    };
    let mut states: Vec<State> = simulated.iter().map(|_| fresh()).collect();
    let epoch = 1_800_000_000 * 1_000_000;
    let mut decisions: Vec<(i64, usize)> = t
        .requests
        .iter()
        .enumerate()
        .map(|(i, &(arrival, delay, _))| (epoch + arrival + delay, i))
        .collect();
    decisions.sort_unstable();
    let mut samples = Vec::new();
    for (decided, i) in decisions {
        let (arrival, _, answer) = t.requests[i];
        let admitted = decide_all(&mut states, decided + t.offset, simulated);
        samples.push(Sample {
            client: "10.77.0.30".into(),
            route: "shorten",
            start: epoch + arrival,
            end: decided + answer,
            status: if admitted { 200 } else { 429 },
            served_by: None,
        });
    }
    let policy = Policy {
        limits: policy
            .iter()
            .map(|&(limit, window_ms)| Limit {
                limit,
                window: Window::from_millis(window_ms),
            })
            .collect(),
        shadow: false,
    };
    let limiter = Limiter::with_defaults(
        t.algorithm,
        Policies {
            default: policy.clone(),
            shorten: policy.clone(),
            redirect: policy,
        },
    );
    let run = K6Run {
        samples,
        ..K6Run::default()
    };
    let thresholds = Thresholds {
        p95: Duration::from_secs(86_400),
    };
    judge(&run, &limiter, thresholds).expect("samples to judge")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn exact_limiters_pass(t in traffic()) {
        let verdict = verdict_for(&t, t.limit);
        prop_assert!(verdict.holds(), "{verdict}");
    }

    #[test]
    fn admitting_one_more_per_window_fails(t in traffic()) {
        let verdict = verdict_for(&t, t.limit + 1);
        prop_assert!(verdict.clients[0].first_limit().over_admitted.is_some(), "{verdict}");
    }

    #[test]
    fn admitting_one_fewer_per_window_fails(t in traffic()) {
        prop_assume!(t.limit >= 2, "a limit of 0 refuses everything");
        let verdict = verdict_for(&t, t.limit - 1);
        prop_assert!(verdict.clients[0].wrongly_limited > 0, "{verdict}");
    }

    #[test]
    fn exact_limiters_of_two_limits_pass(t in traffic()) {
        let limits = [(t.limit, t.window_ms), looser(&t)];
        let verdict = verdict_with(&t, &limits, &limits);
        prop_assert!(verdict.holds(), "{verdict}");
        prop_assert_eq!(verdict.clients[0].limits.len(), 2);
    }

    #[test]
    fn one_more_in_the_first_of_two_limits_fails(t in traffic()) {
        let verdict = verdict_with(
            &t,
            &[(t.limit + 1, t.window_ms), looser(&t)],
            &[(t.limit, t.window_ms), looser(&t)],
        );
        prop_assert!(verdict.clients[0].first_limit().over_admitted.is_some(), "{verdict}");
    }

    #[test]
    fn one_fewer_in_the_first_of_two_limits_fails(t in traffic()) {
        prop_assume!(t.limit >= 2, "a limit of 0 refuses everything");
        let verdict = verdict_with(
            &t,
            &[(t.limit - 1, t.window_ms), looser(&t)],
            &[(t.limit, t.window_ms), looser(&t)],
        );
        prop_assert!(verdict.clients[0].wrongly_limited > 0, "{verdict}");
    }

    #[test]
    fn one_more_in_the_second_of_two_limits_fails(t in traffic()) {
        // The looser limit listed first, the traffic's own second: it is the one that binds.
        let verdict = verdict_with(
            &t,
            &[looser(&t), (t.limit + 1, t.window_ms)],
            &[looser(&t), (t.limit, t.window_ms)],
        );
        prop_assert!(verdict.clients[0].limits[1].over_admitted.is_some(), "{verdict}");
    }
}
