//! What each algorithm may admit and must not refuse, derived from its Lua script
//! (`webapp/src/limiter/lua/`), and the sweeps that hold one client's answers to it.
//!
//! Times are integer microseconds. A decision was taken at one Redis instant inside its
//! request's `[start, end]`, on a clock whose offset from the tester's is unknown: so every
//! bound depends only on differences of decision times, the sliding-window counter's fixed
//! windows are taken at their worst phase, and an answer is only called wrong when no
//! placement of the decisions inside their intervals would make it right.
//!
//! With `N` per window `W`, admissions whose decisions span `D` number at most:
//! - sliding log: `N` when `D < W`: its log is `(now - W, now]`, so the last of them still
//!   sees every other one;
//! - GCRA: `N + ⌊N·D/W⌋`: each admission moves the theoretical arrival time (TAT) `W/N`
//!   ahead, never from before the first decision, and admits only while the TAT stays at
//!   most `W` ahead of now;
//! - sliding window: `N + ⌊N·D/W⌋` as well: a fixed window admits at most `N`, and after a
//!   boundary at elapsed `e` the `x` admissions of the previous window still weigh
//!   `x·(W-e)/W`, so the new window adds at most `N - x + x·e/W`, and `e < D`.

use std::ops::Range;

use crate::spec::Algorithm;

/// One request's interval: its decision was taken somewhere in `[start, end]` (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: i64,
    pub end: i64,
}

/// Admissions that were certainly all decided within `[from, to]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crowd {
    pub count: usize,
    pub from: i64,
    pub to: i64,
}

impl Crowd {
    pub fn span(&self) -> i64 {
        self.to - self.from
    }
}

/// GCRA's and the sliding window's most admissions in decisions spanning `span` µs.
pub fn rate_allowance(limit: u32, window_us: i64, span: i64) -> usize {
    let limit = i128::from(limit);
    (limit + limit * i128::from(span.max(0)) / i128::from(window_us)) as usize
}

/// The largest crowd of admissions decided within a span shorter than one window.
pub fn most_in_one_window(admitted: &[Interval], window_us: i64) -> Option<Crowd> {
    let starts = sorted(admitted.iter().map(|a| a.start));
    let mut tree = MaxTree::new(&vec![0; starts.len()]);
    let mut best: Option<Crowd> = None;
    // Sweep the admissions by end; a start x then holds how many admissions lie in [x, end].
    for a in by_end(admitted) {
        tree.add(0..upto(&starts, a.start), 1);
        let shorter_than_window = upto(&starts, a.end - window_us)..upto(&starts, a.end);
        if let Some((count, at)) = tree.max(shorter_than_window) {
            if best.is_none_or(|b| count as usize > b.count) {
                best = Some(Crowd {
                    count: count as usize,
                    from: starts[at],
                    to: a.end,
                });
            }
        }
    }
    best
}

/// The crowd of admissions furthest above `N + N·D/W`; it breaks [`rate_allowance`] if any does.
pub fn most_over_rate(admitted: &[Interval], limit: u32, window_us: i64) -> Option<Crowd> {
    let (n, w) = (i128::from(limit), i128::from(window_us));
    let starts = sorted(admitted.iter().map(|a| a.start));
    // A start x holds W·(admissions in [x, end]) + N·x, so the crowd [x, end] is
    // W·count - N·(end - x) above the line, after subtracting N·end.
    let initial: Vec<i128> = starts.iter().map(|&x| n * i128::from(x)).collect();
    let mut tree = MaxTree::new(&initial);
    let mut best: Option<(i128, Crowd)> = None;
    for a in by_end(admitted) {
        tree.add(0..upto(&starts, a.start), w);
        if let Some((value, at)) = tree.max(0..upto(&starts, a.end)) {
            let above = value - n * i128::from(a.end);
            if best.is_none_or(|(b, _)| above > b) {
                let from = starts[at];
                let count = ((value - n * i128::from(from)) / w) as usize;
                let crowd = Crowd {
                    count,
                    from,
                    to: a.end,
                };
                best = Some((above, crowd));
            }
        }
    }
    best.map(|(_, crowd)| crowd)
}

/// The 429 answers given while the algorithm certainly had room, whatever the decision times.
pub fn wrongly_limited(
    algorithm: Algorithm,
    admitted: &[Interval],
    refused: &[Interval],
    limit: u32,
    window_us: i64,
) -> Vec<Interval> {
    let starts = sorted(admitted.iter().map(|a| a.start));
    let ends = sorted(admitted.iter().map(|a| a.end));
    let (n, w) = (i128::from(limit), i128::from(window_us));
    match algorithm {
        // Room unless `N` admissions can have been in `(r - W, r]`.
        Algorithm::SlidingLog => refused
            .iter()
            .filter(|r| {
                let possible = upto(&starts, r.end) - before(&ends, r.start - window_us + 1);
                possible < limit as usize
            })
            .copied()
            .collect(),
        Algorithm::SlidingWindow => {
            // Each admission before r weighs at most clamp((t - r + 2W + 1 ms) / W, 0, 1):
            // 1 in r's fixed window, (W - e)/W in the previous one whose start is at most
            // t + W, 0 before; the script counts whole milliseconds, hence the 1 ms.
            let prefix: Vec<i128> = std::iter::once(0)
                .chain(ends.iter().scan(0i128, |sum, &e| {
                    *sum += i128::from(e);
                    Some(*sum)
                }))
                .collect();
            refused
                .iter()
                .filter(|r| {
                    let zero = r.start - 2 * window_us - 1000;
                    let (fading, full) = (upto(&ends, zero), before(&ends, zero + window_us));
                    let whole = (upto(&starts, r.end) - full) as i128;
                    let faded =
                        prefix[full] - prefix[fading] - i128::from(zero) * (full - fading) as i128;
                    w * whole + faded + w <= n * w
                })
                .copied()
                .collect()
        }
        Algorithm::Gcra => gcra_wrongly_limited(&ends, admitted, refused, n, w),
    }
}

/// GCRA refuses at r when, for some admission decided at x, the m admissions decided in
/// [x, r) pushed the TAT past the burst: `(m + 1 - N)·W > (r - x)·N`. The most that can be
/// claimed: m counts every admission that may lie in [x, r], and r - x is shortest at
/// r = start of the refusal. Sweeping the refusals by end, a candidate x (an admission's
/// end) holds W·m + N·x, and a refusal had certainly room when no x beats N·r + (N-1)·W.
fn gcra_wrongly_limited(
    ends: &[i64],
    admitted: &[Interval],
    refused: &[Interval],
    n: i128,
    w: i128,
) -> Vec<Interval> {
    let initial: Vec<i128> = ends.iter().map(|&e| n * i128::from(e)).collect();
    let mut tree = MaxTree::new(&initial);
    let mut by_start = admitted.to_vec();
    by_start.sort_unstable_by_key(|a| a.start);
    let mut added = 0;
    let mut wrong = Vec::new();
    for r in by_end(refused) {
        while let Some(a) = by_start.get(added).filter(|a| a.start <= r.end) {
            tree.add(0..upto(ends, a.end), w);
            added += 1;
        }
        let start = i128::from(r.start);
        // x = r's start: every added admission ending at or after it may be in [x, r].
        let at_start = w * (added - before(ends, r.start)) as i128 + n * start;
        let best = tree
            .max(0..upto(ends, r.start))
            .map_or(at_start, |(value, _)| value.max(at_start));
        if best <= n * start + (n - 1) * w {
            wrong.push(r);
        }
    }
    wrong
}

fn sorted(values: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut values: Vec<i64> = values.collect();
    values.sort_unstable();
    values
}

fn by_end(intervals: &[Interval]) -> Vec<Interval> {
    let mut sorted = intervals.to_vec();
    sorted.sort_unstable_by_key(|i| i.end);
    sorted
}

/// How many of the sorted `values` are at most `limit`.
fn upto(values: &[i64], limit: i64) -> usize {
    values.partition_point(|&v| v <= limit)
}

/// How many of the sorted `values` are below `limit`.
fn before(values: &[i64], limit: i64) -> usize {
    values.partition_point(|&v| v < limit)
}

/// A segment tree over fixed positions: add a constant to a range, find a range's maximum
/// and where it is, each in O(log n).
struct MaxTree {
    size: usize,
    /// Per node: the maximum of its range (its own pending additions included) and where.
    best: Vec<(i128, usize)>,
    /// Per node: what was added to its whole range.
    pending: Vec<i128>,
}

impl MaxTree {
    fn new(values: &[i128]) -> Self {
        let size = values.len().next_power_of_two();
        let mut best = vec![(i128::MIN / 2, 0); 2 * size];
        for (i, &v) in values.iter().enumerate() {
            best[size + i] = (v, i);
        }
        for node in (1..size).rev() {
            best[node] = Self::larger(best[2 * node], best[2 * node + 1]);
        }
        Self {
            size,
            best,
            pending: vec![0; 2 * size],
        }
    }

    fn larger(a: (i128, usize), b: (i128, usize)) -> (i128, usize) {
        if b.0 > a.0 {
            b
        } else {
            a
        }
    }

    fn add(&mut self, range: Range<usize>, delta: i128) {
        if !range.is_empty() {
            self.add_in(1, 0..self.size, &range, delta);
        }
    }

    fn add_in(&mut self, node: usize, span: Range<usize>, range: &Range<usize>, delta: i128) {
        if range.end <= span.start || span.end <= range.start {
            return;
        }
        if range.start <= span.start && span.end <= range.end {
            self.best[node].0 += delta;
            self.pending[node] += delta;
            return;
        }
        let mid = (span.start + span.end) / 2;
        self.add_in(2 * node, span.start..mid, range, delta);
        self.add_in(2 * node + 1, mid..span.end, range, delta);
        let (value, at) = Self::larger(self.best[2 * node], self.best[2 * node + 1]);
        self.best[node] = (value + self.pending[node], at);
    }

    fn max(&self, range: Range<usize>) -> Option<(i128, usize)> {
        if range.is_empty() {
            return None;
        }
        self.max_in(1, 0..self.size, &range)
    }

    fn max_in(
        &self,
        node: usize,
        span: Range<usize>,
        range: &Range<usize>,
    ) -> Option<(i128, usize)> {
        if range.end <= span.start || span.end <= range.start {
            return None;
        }
        if range.start <= span.start && span.end <= range.end {
            return Some(self.best[node]);
        }
        let mid = (span.start + span.end) / 2;
        let children = [
            self.max_in(2 * node, span.start..mid, range),
            self.max_in(2 * node + 1, mid..span.end, range),
        ];
        children
            .into_iter()
            .flatten()
            .reduce(Self::larger)
            .map(|(value, at)| (value + self.pending[node], at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    fn at(seconds: f64) -> Interval {
        let start = (seconds * SECOND as f64) as i64;
        Interval {
            start,
            end: start + 10_000,
        }
    }

    #[test]
    fn the_tree_adds_to_ranges_and_finds_maxima() {
        let mut tree = MaxTree::new(&[5, 1, 4, 2, 3]);
        assert_eq!(tree.max(0..5), Some((5, 0)));
        tree.add(1..4, 10);
        assert_eq!(tree.max(0..5), Some((14, 2)));
        assert_eq!(tree.max(3..5), Some((12, 3)));
        assert_eq!(tree.max(4..5), Some((3, 4)));
        assert_eq!(tree.max(2..2), None);
    }

    #[test]
    fn a_crowd_in_one_window_is_only_what_certainly_fits() {
        let admitted: Vec<Interval> = [0.0, 1.0, 2.0, 9.995].map(at).to_vec();
        // The last one ends 5 ms after the window from the first start closes.
        let crowd = most_in_one_window(&admitted, 10 * SECOND).unwrap();
        assert_eq!((crowd.count, crowd.from), (3, 0));
    }

    #[test]
    fn the_rate_line_allows_the_burst_plus_one_per_emission_interval() {
        // 3 per 10 s: a burst of 3, then one more each 3.33 s.
        assert_eq!(rate_allowance(3, 10 * SECOND, 0), 3);
        assert_eq!(rate_allowance(3, 10 * SECOND, 3_333_334), 4);
        let admitted: Vec<Interval> = [0.0, 0.1, 0.2, 3.4].map(at).to_vec();
        let crowd = most_over_rate(&admitted, 3, 10 * SECOND).unwrap();
        assert!(crowd.count <= rate_allowance(3, 10 * SECOND, crowd.span()));
        let admitted: Vec<Interval> = [0.0, 0.1, 0.2, 3.0].map(at).to_vec();
        let crowd = most_over_rate(&admitted, 3, 10 * SECOND).unwrap();
        assert_eq!((crowd.count, crowd.from), (4, 0));
        assert!(crowd.count > rate_allowance(3, 10 * SECOND, crowd.span()));
    }
}
