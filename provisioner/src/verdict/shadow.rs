//! What a policy in shadow mode would have refused: the algorithm's rule (the Lua scripts'
//! arithmetic, in microseconds) replayed over the middle of each request's interval. An
//! estimate for the report, never grounds for a failure: the real decisions were Redis'.

use super::bounds::Interval;
use crate::spec::Algorithm;

/// How many of `requests` (any order) an enforcing `algorithm` with `limits` (each a
/// limit per window in µs) would have refused. As the script does, a request is admitted
/// only when every limit has room, and then counts in all of them; a refusal counts in none.
pub fn would_refuse(algorithm: Algorithm, requests: &[Interval], limits: &[(u32, i64)]) -> usize {
    let mut times: Vec<i64> = requests
        .iter()
        .map(|r| r.start + (r.end - r.start) / 2)
        .collect();
    times.sort_unstable();
    let mut states: Vec<State> = limits
        .iter()
        .map(|&(limit, window)| State::new(algorithm, limit, window))
        .collect();
    let mut refused = 0;
    for t in times {
        if states.iter_mut().all(|s| s.has_room(t)) {
            states.iter_mut().for_each(|s| s.record(t));
        } else {
            refused += 1;
        }
    }
    refused
}

/// One limit's state as its algorithm keeps it.
struct State {
    limit: i64,
    window: i64,
    kind: Kind,
}

enum Kind {
    /// Admissions in (now - window, now].
    Log(std::collections::VecDeque<i64>),
    /// One unit every window / limit; a burst of at most `limit`: the theoretical arrival
    /// time.
    Gcra(f64),
    /// The current fixed window's index and count, and the previous one's count.
    Counters {
        index: i64,
        current: i64,
        previous: i64,
    },
}

impl State {
    fn new(algorithm: Algorithm, limit: u32, window: i64) -> Self {
        let kind = match algorithm {
            Algorithm::SlidingLog => Kind::Log(Default::default()),
            Algorithm::Gcra => Kind::Gcra(f64::MIN),
            Algorithm::SlidingWindow => Kind::Counters {
                index: i64::MIN,
                current: 0,
                previous: 0,
            },
        };
        State {
            limit: i64::from(limit.max(1)),
            window: window.max(1),
            kind,
        }
    }

    /// Whether a request at `t` (not before the last one asked about) fits; brings the
    /// state forward to `t`.
    fn has_room(&mut self, t: i64) -> bool {
        let (limit, window) = (self.limit, self.window);
        match &mut self.kind {
            Kind::Log(admitted) => {
                while admitted.front().is_some_and(|&a| a <= t - window) {
                    admitted.pop_front();
                }
                (admitted.len() as i64) < limit
            }
            Kind::Gcra(tat) => {
                let emission = window as f64 / limit as f64;
                tat.max(t as f64) + emission - t as f64 <= window as f64
            }
            Kind::Counters {
                index,
                current,
                previous,
            } => {
                let now = t.div_euclid(window);
                if now != *index {
                    *previous = if now == *index + 1 { *current } else { 0 };
                    *current = 0;
                    *index = now;
                }
                let elapsed = t.rem_euclid(window);
                let estimate =
                    *previous as f64 * (window - elapsed) as f64 / window as f64 + *current as f64;
                estimate < limit as f64
            }
        }
    }

    fn record(&mut self, t: i64) {
        let emission = self.window as f64 / self.limit as f64;
        match &mut self.kind {
            Kind::Log(admitted) => admitted.push_back(t),
            Kind::Gcra(tat) => *tat = tat.max(t as f64) + emission,
            Kind::Counters { current, .. } => *current += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: &[i64]) -> Vec<Interval> {
        micros
            .iter()
            .map(|&m| Interval { start: m, end: m })
            .collect()
    }

    const SECOND: i64 = 1_000_000;

    #[test]
    fn a_burst_past_the_limit_would_be_refused_beyond_it_by_every_algorithm() {
        let burst: Vec<i64> = (0..30).map(|i| 10 * SECOND + i * 1000).collect();
        for algorithm in Algorithm::ALL {
            assert_eq!(
                would_refuse(algorithm, &at(&burst), &[(10, 60 * SECOND)]),
                20,
                "{}",
                algorithm.as_str()
            );
        }
    }

    #[test]
    fn requests_spread_within_the_rate_would_all_pass() {
        let spread: Vec<i64> = (0..30).map(|i| i * 7 * SECOND).collect();
        for algorithm in Algorithm::ALL {
            assert_eq!(
                would_refuse(algorithm, &at(&spread), &[(10, 60 * SECOND)]),
                0,
                "{}",
                algorithm.as_str()
            );
        }
    }

    #[test]
    fn with_two_limits_a_refusal_by_one_counts_in_neither() {
        // 5 per 10 s and 8 per 60 s: a burst of 10, then another 21 s later. The first
        // burst admits 5; in the second, the 10 s limit has room again and the 60 s one has
        // 3 left (GCRA: 5, having refilled 2.8 units), because the 5 refused the first time
        // were never counted there. Counted, they would have left the second burst nothing.
        let bursts: Vec<i64> = (0..20)
            .map(|i| (i / 10) * 21 * SECOND + (i % 10) * 1000)
            .collect();
        for (algorithm, refused) in [
            (Algorithm::SlidingLog, 12),
            (Algorithm::SlidingWindow, 12),
            (Algorithm::Gcra, 10),
        ] {
            assert_eq!(
                would_refuse(
                    algorithm,
                    &at(&bursts),
                    &[(5, 10 * SECOND), (8, 60 * SECOND)]
                ),
                refused,
                "{}",
                algorithm.as_str()
            );
        }
    }
}
