//! What a policy in shadow mode would have refused: the algorithm's rule (the Lua scripts'
//! arithmetic, in microseconds) replayed over the middle of each request's interval. An
//! estimate for the report, never grounds for a failure: the real decisions were Redis'.

use super::bounds::Interval;
use crate::spec::Algorithm;

/// How many of `requests` (any order) an enforcing `algorithm` with `limit` per `window`
/// (µs) would have refused.
pub fn would_refuse(algorithm: Algorithm, requests: &[Interval], limit: u32, window: i64) -> usize {
    let mut times: Vec<i64> = requests
        .iter()
        .map(|r| r.start + (r.end - r.start) / 2)
        .collect();
    times.sort_unstable();
    let limit = i64::from(limit.max(1));
    let window = window.max(1);
    let mut refused = 0;
    match algorithm {
        Algorithm::SlidingLog => {
            // Admissions in (now - window, now].
            let mut admitted: std::collections::VecDeque<i64> = Default::default();
            for t in times {
                while admitted.front().is_some_and(|&a| a <= t - window) {
                    admitted.pop_front();
                }
                if (admitted.len() as i64) < limit {
                    admitted.push_back(t);
                } else {
                    refused += 1;
                }
            }
        }
        Algorithm::Gcra => {
            // One unit every window / limit; a burst of at most `limit`.
            let emission = window as f64 / limit as f64;
            let mut tat = f64::MIN;
            for t in times {
                let t = t as f64;
                let next = tat.max(t) + emission;
                if next - t <= window as f64 {
                    tat = next;
                } else {
                    refused += 1;
                }
            }
        }
        Algorithm::SlidingWindow => {
            // The current fixed window's count plus the previous one's, weighted by how
            // much of it the sliding window still covers.
            let (mut index, mut current, mut previous) = (i64::MIN, 0i64, 0i64);
            for t in times {
                let now = t.div_euclid(window);
                if now != index {
                    previous = if now == index + 1 { current } else { 0 };
                    current = 0;
                    index = now;
                }
                let elapsed = t.rem_euclid(window);
                let estimate =
                    previous as f64 * (window - elapsed) as f64 / window as f64 + current as f64;
                if estimate < limit as f64 {
                    current += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    refused
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
                would_refuse(algorithm, &at(&burst), 10, 60 * SECOND),
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
                would_refuse(algorithm, &at(&spread), 10, 60 * SECOND),
                0,
                "{}",
                algorithm.as_str()
            );
        }
    }
}
