//! A limiter key's stored state read the way the web app's scripts (`webapp/src/limiter/
//! lua/*.lua`) read it: the budget a client has left under a policy, at a given Redis
//! `TIME`. Pure: the caller fetches the raw values (and `TIME`, in the same transaction)
//! and this says what they mean, so whatever shows a client's budget agrees with the
//! decision the next request would get. The web app's `limiter_budget` test holds it to
//! the scripts' own answers.
//!
//! The arithmetic is the scripts' own, in integers (theirs are Lua doubles holding exact
//! integers, so they agree): a decision the script made at an instant and a reading at
//! the same instant give the same `remaining` and `next_ms`.

use crate::{Algorithm, Window};

/// Redis' `TIME` reply (seconds, microseconds): every script takes its clock from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisTime {
    pub secs: u64,
    pub micros: u64,
}

impl RedisTime {
    /// The clock of `sliding_log` and `gcra`.
    fn as_micros(self) -> i128 {
        i128::from(self.secs) * 1_000_000 + i128::from(self.micros)
    }

    /// The clock of `sliding_window` (microseconds dropped, as the script drops them).
    fn as_millis(self) -> i128 {
        i128::from(self.secs) * 1000 + i128::from(self.micros / 1000)
    }
}

/// A key's value as Redis returns it, in the form each algorithm's script keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// `sliding_log`, a sorted set of admissions: the scores of `ZRANGE key 0 -1
    /// WITHSCORES` (Redis time in µs).
    Log(Vec<f64>),
    /// `sliding_window`, a hash: `HMGET key w c p` (window index, its count, the previous
    /// window's count).
    Counters([Option<String>; 3]),
    /// `gcra`, a string: `GET key`, `"<theoretical arrival time µs>:<remainder>"`.
    Tat(Option<String>),
}

impl Stored {
    /// The command that fetches what `algorithm`'s key holds: its name, then the
    /// arguments that follow the key (`ZRANGE <key> 0 -1 WITHSCORES`, `HMGET <key> w c p`,
    /// `GET <key>`). Its reply, in the order asked, is what the variant carries.
    pub fn fetch(algorithm: Algorithm) -> (&'static str, &'static [&'static str]) {
        match algorithm {
            Algorithm::SlidingLog => ("ZRANGE", &["0", "-1", "WITHSCORES"]),
            Algorithm::SlidingWindow => ("HMGET", &["w", "c", "p"]),
            Algorithm::Gcra => ("GET", &[]),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Stored::Log(_) => Algorithm::SlidingLog,
            Stored::Counters(_) => Algorithm::SlidingWindow,
            Stored::Tat(_) => Algorithm::Gcra,
        }
    }
}

/// One client's budget under one policy at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Units of the limit taken: the admissions inside the window (`sliding_log`, exact),
    /// the weighted count of the two windows rounded up (`sliding_window`), the backlog in
    /// emission intervals rounded up (`gcra`).
    pub used: u64,
    /// Units a request may still take now: the `remaining` the script would answer.
    pub remaining: u64,
    /// Milliseconds until one more unit is free: the `reset_ms` the script would answer
    /// (what `RateLimit: t=` and a 429's `Retry-After` are made of); 0 when none is taken.
    pub next_ms: u64,
    /// Milliseconds until the whole limit is free again (0: it is).
    pub full_ms: u64,
}

/// Stored values no script writes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    #[error("admission score {0} is not a Redis time in microseconds")]
    Score(f64),
    #[error("hash field {field} is {value:?}, not an integer")]
    Counter { field: &'static str, value: String },
    #[error("{0:?} is not \"<theoretical arrival time µs>:<remainder>\"")]
    Tat(String),
}

/// What `stored` leaves of `limit` per `window` at `time`, exactly as the script of
/// `stored`'s algorithm would see it deciding at that instant.
pub fn read_budget(
    stored: &Stored,
    time: RedisTime,
    limit: u64,
    window: Window,
) -> Result<Budget, BudgetError> {
    let limit = i128::from(limit);
    let window_ms = i128::from(window.as_millis());
    match stored {
        Stored::Log(scores) => sliding_log(scores, time.as_micros(), limit, window_ms * 1000),
        Stored::Counters(fields) => sliding_window(fields, time.as_millis(), limit, window_ms),
        Stored::Tat(value) => gcra(value.as_deref(), time.as_micros(), limit, window_ms * 1000),
    }
}

fn sliding_log(
    scores: &[f64],
    now: i128,
    limit: i128,
    window_us: i128,
) -> Result<Budget, BudgetError> {
    let mut stamps = Vec::with_capacity(scores.len());
    for &score in scores {
        if !(score.is_finite() && score >= 0.0 && score.fract() == 0.0) {
            return Err(BudgetError::Score(score));
        }
        stamps.push(score as i128);
    }
    // The script never decides earlier than its newest admission (Redis' clock may step back).
    let now = stamps.iter().copied().fold(now, i128::max);
    // An admission at exactly now - window has left the window: it is (now - window, now].
    let inside: Vec<i128> = stamps
        .into_iter()
        .filter(|&stamp| stamp > now - window_us)
        .collect();
    let count = inside.len() as i128;
    let until = |stamp: Option<i128>| stamp.map_or(0, |s| ceil_div(s + window_us - now, 1000));
    Ok(Budget {
        used: clamp(count),
        remaining: clamp(limit - count),
        next_ms: clamp(until(inside.iter().copied().min())),
        full_ms: clamp(until(inside.iter().copied().max())),
    })
}

fn sliding_window(
    fields: &[Option<String>; 3],
    now: i128,
    limit: i128,
    window: i128,
) -> Result<Budget, BudgetError> {
    let [w, c, p] = [("w", &fields[0]), ("c", &fields[1]), ("p", &fields[2])].map(
        |(field, value)| match value {
            None => Ok(None),
            Some(text) => text
                .parse::<i128>()
                .map(Some)
                .map_err(|_| BudgetError::Counter {
                    field,
                    value: text.clone(),
                }),
        },
    );
    let (w, mut c, mut p) = (w?, c?.unwrap_or(0), p?.unwrap_or(0));
    let index = now.div_euclid(window);
    let mut elapsed = now - index * window;
    match w {
        None => (c, p) = (0, 0),
        Some(w) if w == index - 1 => (p, c) = (c, 0),
        // Redis' clock stepped back into an earlier window: the script keeps counting in
        // the stored one, as if at its start.
        Some(w) if w > index => elapsed = 0,
        Some(w) if w != index => (c, p) = (0, 0),
        Some(_) => {}
    }
    // Everything is scaled by the window, as in the script.
    let used_scaled = p * (window - elapsed) + c * window;
    let remaining = (limit * window - used_scaled).div_euclid(window).max(0);
    let target_scaled = ((limit - remaining - 1) * window).max(0);
    let next_ms = if used_scaled <= target_scaled {
        0
    } else if target_scaled >= c * window {
        ceil_div(used_scaled - target_scaled, p)
    } else {
        (window - elapsed) + ceil_div(c * window - target_scaled, c)
    };
    // This window's count weighs fully until it ends, then fades across the next one.
    let full_ms = if c > 0 {
        (window - elapsed) + window
    } else if p > 0 {
        window - elapsed
    } else {
        0
    };
    Ok(Budget {
        used: clamp(ceil_div(used_scaled, window)),
        remaining: clamp(remaining),
        next_ms: clamp(next_ms),
        full_ms: clamp(full_ms),
    })
}

fn gcra(
    stored: Option<&str>,
    now: i128,
    limit: i128,
    window_us: i128,
) -> Result<Budget, BudgetError> {
    let (mut tat, mut rem) = (now, 0);
    if let Some(text) = stored {
        let malformed = || BudgetError::Tat(text.to_owned());
        let digits = |part: &str| -> Result<i128, BudgetError> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            part.parse().map_err(|_| malformed())
        };
        let (s_tat, s_rem) = text.split_once(':').ok_or_else(malformed)?;
        let (s_tat, s_rem) = (digits(s_tat)?, digits(s_rem)?);
        // A TAT in the past is a full budget: the script starts again from now.
        if s_tat >= now {
            (tat, rem) = (s_tat, s_rem);
        }
    }
    // Backlog: how far TAT runs ahead of now, in units of 1/limit µs.
    let backlog = (tat - now) * limit + rem;
    let capacity = window_us * limit;
    // Not clamped before it is used, as in the script (negative once a limit was lowered).
    let remaining = (capacity - backlog).div_euclid(window_us);
    // With nothing taken the script's formula names the interval after a first
    // admission; no unit is missing, so none is due back.
    let next_scaled = if backlog == 0 {
        0
    } else {
        (backlog - window_us * (limit - remaining - 1)).max(0)
    };
    Ok(Budget {
        used: clamp(ceil_div(backlog, window_us)),
        remaining: clamp(remaining),
        next_ms: clamp(ceil_div(next_scaled, limit * 1000)),
        full_ms: clamp(ceil_div(backlog, limit * 1000)),
    })
}

/// ⌈a / b⌉ for b > 0 (Lua's `math.ceil(a / b)` on exact integers).
fn ceil_div(a: i128, b: i128) -> i128 {
    -(-a).div_euclid(b)
}

/// A reply value as the web app's `Decision` keeps it: negative is 0.
fn clamp(value: i128) -> u64 {
    u64::try_from(value.max(0)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND_US: u64 = 1_000_000;
    /// A whole hour since the epoch (and so the start of a 60 s window).
    const T0: u64 = 1_796_083_200;

    fn at(secs: u64, micros: u64) -> RedisTime {
        RedisTime { secs, micros }
    }

    fn us(time: RedisTime) -> f64 {
        (time.secs * SECOND_US + time.micros) as f64
    }

    fn budget(used: u64, remaining: u64, next_ms: u64, full_ms: u64) -> Budget {
        Budget {
            used,
            remaining,
            next_ms,
            full_ms,
        }
    }

    fn minute() -> Window {
        Window::from_millis(60_000)
    }

    #[test]
    fn an_absent_key_is_a_full_budget() {
        for stored in [
            Stored::Log(vec![]),
            Stored::Counters([None, None, None]),
            Stored::Tat(None),
        ] {
            assert_eq!(
                read_budget(&stored, at(T0, 5), 10, minute()),
                Ok(budget(0, 10, 0, 0)),
                "{:?}",
                stored.algorithm()
            );
        }
    }

    #[test]
    fn the_log_counts_admissions_inside_the_window() {
        let now = at(T0 + 100, 250_000);
        let stamps = vec![
            // Exactly one window old: out, as ZREMRANGEBYSCORE -inf (now - window) removes it.
            us(now) - 60.0 * SECOND_US as f64,
            // 59.5 s old: back in 500 ms.
            us(now) - 59.5 * SECOND_US as f64,
            us(now) - 10.0 * SECOND_US as f64,
            // 1 µs old: the whole limit is back in 60 s minus 1 µs, rounded up to 60 s.
            us(now) - 1.0,
        ];
        assert_eq!(
            read_budget(&Stored::Log(stamps.clone()), now, 10, minute()),
            Ok(budget(3, 7, 500, 60_000))
        );
        // Full, and over a lowered limit: remaining stays 0.
        assert_eq!(
            read_budget(&Stored::Log(stamps), now, 2, minute()),
            Ok(budget(3, 0, 500, 60_000))
        );
    }

    #[test]
    fn the_log_never_reads_earlier_than_its_newest_admission() {
        // Redis' clock stepped back 2 s behind the newest admission.
        let now = at(T0, 0);
        let stamps = vec![us(now) + 2.0 * SECOND_US as f64];
        assert_eq!(
            read_budget(&Stored::Log(stamps), now, 5, minute()),
            Ok(budget(1, 4, 60_000, 60_000))
        );
    }

    #[test]
    fn the_counters_weigh_the_previous_window_by_its_overlap() {
        let index = (T0 * 1000 / 60_000).to_string();
        let previous = (T0 * 1000 / 60_000 - 1).to_string();
        // 15 s into the current window: 3 here, 8 in the previous window (weighted 3/4 = 6).
        let now = at(T0 + 15, 0);
        let stored = Stored::Counters([Some(index.clone()), Some("3".into()), Some("8".into())]);
        // used 9 of 10: one left; the next unit returns when the estimate falls to 8, i.e.
        // when 8 * (45 s - t) / 60 s falls by one: 7.5 s.
        assert_eq!(
            read_budget(&stored, now, 10, minute()),
            Ok(budget(9, 1, 7_500, 105_000))
        );
        // The stored window is the previous one: its count becomes the previous count.
        let stored = Stored::Counters([Some(previous), Some("4".into()), Some("9".into())]);
        assert_eq!(
            read_budget(&stored, now, 10, minute()),
            Ok(budget(3, 7, 15_000, 45_000))
        );
        // Anything older is forgotten.
        let stale = Stored::Counters([Some("5".into()), Some("4".into()), Some("9".into())]);
        assert_eq!(
            read_budget(&stale, now, 10, minute()),
            Ok(budget(0, 10, 0, 0))
        );
        // Full: the next unit returns once this window's count starts to fade.
        let full = Stored::Counters([Some(index), Some("10".into()), Some("0".into())]);
        assert_eq!(
            read_budget(&full, now, 10, minute()),
            Ok(budget(10, 0, 45_000 + 6_000, 105_000))
        );
    }

    #[test]
    fn the_counters_keep_a_window_redis_stepped_back_from() {
        let ahead = (T0 * 1000 / 60_000 + 1).to_string();
        let stored = Stored::Counters([Some(ahead), Some("2".into()), Some("0".into())]);
        assert_eq!(
            read_budget(&stored, at(T0 + 30, 0), 10, minute()),
            Ok(budget(2, 8, 90_000, 120_000))
        );
    }

    #[test]
    fn gcra_reads_the_backlog_ahead_of_now() {
        // 10 per minute: one emission interval is 6 s. Three admissions just now put the
        // TAT 18 s ahead.
        let now = at(T0, 0);
        let tat = format!("{}:0", T0 * SECOND_US + 18 * SECOND_US);
        assert_eq!(
            read_budget(&Stored::Tat(Some(tat)), now, 10, minute()),
            // backlog = 18 s * 10; remaining = floor((600 s - 180 s) * 10 / 600 s) = 7;
            // next: backlog - 60 s * 10 * (10 - 7 - 1) = 180 - 120 (s * 10) = 6 s.
            Ok(budget(3, 7, 6_000, 18_000))
        );
        // Full: the whole window ahead; one unit is back after one interval.
        let full = format!("{}:0", T0 * SECOND_US + 60 * SECOND_US);
        assert_eq!(
            read_budget(&Stored::Tat(Some(full)), now, 10, minute()),
            Ok(budget(10, 0, 6_000, 60_000))
        );
        // The remainder counts 1/limit µs: 7 of them past one interval take a second
        // unit, and are back within a millisecond (rounded up).
        let partial = format!("{}:7", T0 * SECOND_US + 6 * SECOND_US);
        assert_eq!(
            read_budget(&Stored::Tat(Some(partial)), now, 10, minute()),
            Ok(budget(2, 8, 1, 6_001))
        );
        // A TAT in the past is a full budget.
        let past = format!("{}:3", T0 * SECOND_US - 1);
        assert_eq!(
            read_budget(&Stored::Tat(Some(past)), now, 10, minute()),
            Ok(budget(0, 10, 0, 0))
        );
    }

    #[test]
    fn values_no_script_writes_are_errors() {
        let now = at(T0, 0);
        assert_eq!(
            read_budget(&Stored::Log(vec![1.5]), now, 1, minute()),
            Err(BudgetError::Score(1.5))
        );
        assert_eq!(
            read_budget(
                &Stored::Counters([Some("x".into()), None, None]),
                now,
                1,
                minute()
            ),
            Err(BudgetError::Counter {
                field: "w",
                value: "x".into()
            })
        );
        for text in ["", "12", "12:", ":3", "-1:0", "1:2:3", "a:b"] {
            assert_eq!(
                read_budget(&Stored::Tat(Some(text.into())), now, 1, minute()),
                Err(BudgetError::Tat(text.into())),
                "{text:?}"
            );
        }
    }
}
