//! CLI layer, pure: what `provisioner limiter` shows — the limiter's keys read into one
//! row per (client, policy, algorithm) with its budget, and the table they print as.
//! No I/O: the command fetches, this decides what the values say and how they look.

use std::collections::BTreeSet;

use clusterlab_contract::{
    parse_redis_key, read_budget, route, Algorithm, Applies, Budget, LimiterKey, PolicySet,
    RedisTime, Window,
};

use crate::exec::limiter::Fetched;

/// What the cluster's spec says the keys mean.
#[derive(Debug, Clone)]
pub struct Setup {
    pub algorithm: Algorithm,
    pub prefix: String,
    pub policies: PolicySet,
}

/// The keys under the prefix that the web app's key function made (with the algorithm
/// each was made for), only `client`'s when one is given, and how many others there are.
pub fn select(
    setup: &Setup,
    keys: &[String],
    client: Option<&str>,
) -> (Vec<(String, Algorithm)>, usize) {
    let mut limiter = Vec::new();
    let mut others = 0;
    for key in keys {
        match parse_redis_key(&setup.prefix, key) {
            Some(parts) if client.is_none_or(|c| c == parts.client) => {
                limiter.push((key.clone(), parts.algorithm));
            }
            Some(_) => {}
            None => others += 1,
        }
    }
    (limiter, others)
}

/// One key: whose budget under which policy, and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub client: String,
    pub policy: String,
    pub algorithm: Algorithm,
    pub key: String,
    /// `PTTL`: -1 when Redis will never expire the key (no script leaves one so).
    pub pttl_ms: i64,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// The policy's budget as the key's own algorithm reads it.
    Budget {
        budget: Budget,
        limit: u64,
        window: Window,
    },
    /// A policy cluster.yaml does not have (the web app names none so any more).
    NoPolicy,
    /// The value is not what the key's script writes.
    Unreadable(String),
}

impl Row {
    /// Whether the web app still uses this key: keys of another algorithm stay behind
    /// after `limiter.algorithm` changes, until they expire.
    pub fn is_current(&self, setup: &Setup) -> bool {
        self.algorithm == setup.algorithm
    }
}

/// The rows of the fetched keys that still exist, ordered by client, then policy as
/// cluster.yaml lists them, the algorithm in use before any other.
pub fn rows(setup: &Setup, fetched: &[Fetched]) -> Vec<Row> {
    let mut rows: Vec<Row> = fetched
        .iter()
        // Expired between SCAN and the read: no longer there.
        .filter(|f| f.pttl_ms != -2)
        .filter_map(|f| {
            let parts = parse_redis_key(&setup.prefix, &f.key)?;
            let state = match (&f.stored, limit(setup, &parts)) {
                (Err(message), _) => State::Unreadable(message.clone()),
                (Ok(_), None) => State::NoPolicy,
                (Ok(stored), Some((limit, window))) => {
                    match read_budget(stored, f.time, limit, window) {
                        Ok(budget) => State::Budget {
                            budget,
                            limit,
                            window,
                        },
                        Err(e) => State::Unreadable(e.to_string()),
                    }
                }
            };
            Some(Row {
                client: parts.client.to_owned(),
                policy: parts.policy.to_owned(),
                algorithm: parts.algorithm,
                key: f.key.clone(),
                pttl_ms: f.pttl_ms,
                state,
            })
        })
        .collect();
    // Policies cluster.yaml no longer has come after those it has.
    let policy_rank = |name: &str| {
        route::ALL
            .iter()
            .position(|p| *p == name)
            .unwrap_or(route::ALL.len())
    };
    rows.sort_by(|a, b| {
        (
            &a.client,
            policy_rank(&a.policy),
            &a.policy,
            !a.is_current(setup),
            a.algorithm.as_str(),
            &a.key,
        )
            .cmp(&(
                &b.client,
                policy_rank(&b.policy),
                &b.policy,
                !b.is_current(setup),
                b.algorithm.as_str(),
                &b.key,
            ))
    });
    rows
}

/// The limit a key counts for: the key's window in the policy of its name that applies to
/// its client (an override's, if one holds the client), else in any policy of that name.
fn limit(setup: &Setup, key: &LimiterKey) -> Option<(u64, Window)> {
    // A client is an address, or an IPv6 network named by its first address.
    let address = key.client.split('/').next().and_then(|a| a.parse().ok());
    let applies = match setup.policies.for_client(address, Some(key.policy)) {
        Applies::Policy(policy) if policy.name == key.policy => Some(policy),
        _ => None,
    };
    applies
        .into_iter()
        .chain(setup.policies.all().filter(|p| p.name == key.policy))
        .find_map(|p| p.limit_with_window(key.window))
        .map(|l| (l.limit, l.window))
}

/// Everything one screen shows.
#[derive(Debug, Clone)]
pub struct Screen<'a> {
    pub setup: &'a Setup,
    /// Where Redis is, for the title: `redis (10.78.0.20:6379)`.
    pub redis: &'a str,
    /// The `SCAN` pattern the keys were found with.
    pub pattern: &'a str,
    /// Redis' clock at the first read (none when there was nothing to read).
    pub time: Option<RedisTime>,
    pub rows: &'a [Row],
    /// Keys under the prefix that the web app's key function did not make.
    pub others: usize,
}

const HEADINGS: [&str; 9] = [
    "CLIENT", "POLICY", "USED", "LEFT", "LIMIT", "NEXT IN", "FULL IN", "TTL", "KEY",
];

/// The screen as text: a title, one aligned line per key (a note after it when the key
/// is refusing, stale or unreadable), and a footer for keys that are not the limiter's.
pub fn render(screen: &Screen) -> String {
    let setup = screen.setup;
    let clients: BTreeSet<&str> = screen.rows.iter().map(|r| r.client.as_str()).collect();
    let at = screen
        .time
        .and_then(|t| chrono::DateTime::from_timestamp(i64::try_from(t.secs).ok()?, 0))
        .map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
        .unwrap_or_default();
    let mut out = format!(
        "limiter keys {} in Redis on {}{at}; the web app uses {}\n",
        screen.pattern,
        screen.redis,
        setup.algorithm.as_str(),
    );
    if screen.rows.is_empty() {
        out.push_str("no keys: every budget is full\n");
    } else {
        out.push_str(&format!(
            "{} {}, {} {}\n",
            screen.rows.len(),
            plural(screen.rows.len(), "key", "keys"),
            clients.len(),
            plural(clients.len(), "client", "clients"),
        ));
        let lines: Vec<([String; 9], Option<String>)> =
            screen.rows.iter().map(|row| cells(setup, row)).collect();
        let mut widths = HEADINGS.map(str::len);
        for (cells, _) in &lines {
            for (width, cell) in widths.iter_mut().zip(cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        out.push_str(&line(&HEADINGS.map(str::to_owned), &widths, None));
        for (cells, note) in &lines {
            out.push_str(&line(cells, &widths, note.as_deref()));
        }
    }
    if screen.others > 0 {
        out.push_str(&format!(
            "{} other {} under {} not made by the web app's key function\n",
            screen.others,
            plural(screen.others, "key", "keys"),
            setup.prefix
        ));
    }
    out
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Numbers right-aligned, text left-aligned, two spaces apart; the note after the key.
fn line(cells: &[String; 9], widths: &[usize; 9], note: Option<&str>) -> String {
    let mut text = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            text.push_str("  ");
        }
        let padding = " ".repeat(width.saturating_sub(cell.chars().count()));
        if matches!(i, 2 | 3) {
            text.push_str(&padding);
            text.push_str(cell);
        } else {
            text.push_str(cell);
            text.push_str(&padding);
        }
    }
    if let Some(note) = note {
        text.push_str("  ");
        text.push_str(note);
    }
    text.truncate(text.trim_end().len());
    text.push('\n');
    text
}

fn cells(setup: &Setup, row: &Row) -> ([String; 9], Option<String>) {
    let ttl = match row.pttl_ms {
        -1 => "none".to_owned(),
        ms => duration(u64::try_from(ms).unwrap_or(0)),
    };
    let blank = || "-".to_owned();
    let (used, left, limit, next, full, note) = match &row.state {
        State::Budget {
            budget,
            limit,
            window,
        } => (
            budget.used.to_string(),
            budget.remaining.to_string(),
            format!("{limit} per {window}"),
            if budget.next_ms == 0 || budget.remaining == *limit {
                blank()
            } else {
                duration(budget.next_ms)
            },
            if budget.full_ms == 0 {
                blank()
            } else {
                duration(budget.full_ms)
            },
            (budget.remaining == 0 && row.is_current(setup)).then(|| "refusing".to_owned()),
        ),
        State::NoPolicy => (
            blank(),
            blank(),
            blank(),
            blank(),
            blank(),
            Some(format!("no policy {:?} in cluster.yaml", row.policy)),
        ),
        State::Unreadable(message) => (
            blank(),
            blank(),
            blank(),
            blank(),
            blank(),
            Some(format!("unreadable: {message}")),
        ),
    };
    let note = if row.is_current(setup) {
        note
    } else {
        let stale = format!(
            "stale: {} state, the web app uses {}",
            row.algorithm.as_str(),
            setup.algorithm.as_str()
        );
        Some(match note {
            Some(note) => format!("{stale}; {note}"),
            None => stale,
        })
    };
    (
        [
            row.client.clone(),
            row.policy.clone(),
            used,
            left,
            limit,
            next,
            full,
            ttl,
            row.key.clone(),
        ],
        note,
    )
}

/// `850ms`, `41.2s`, `3m05s`, `1h02m`: rounded up, so a client that waits as long is
/// never early (as the web app rounds its `RateLimit` and `Retry-After` seconds).
pub fn duration(ms: u64) -> String {
    let tenths = ms.div_ceil(100);
    let secs = ms.div_ceil(1000);
    if ms < 1000 {
        format!("{ms}ms")
    } else if tenths < 600 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        let minutes = secs.div_ceil(60);
        format!("{}h{:02}m", minutes / 60, minutes % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterlab_contract::{redis_key, Policy, Stored};

    const MINUTE: Window = Window::from_millis(60_000);

    fn setup() -> Setup {
        Setup {
            algorithm: Algorithm::SlidingLog,
            prefix: "rl:".into(),
            policies: PolicySet::new(vec![
                Policy::new(route::DEFAULT, 100, Window::from_millis(60_000)),
                Policy::new(route::SHORTEN, 10, Window::from_millis(60_000)),
                Policy::new(route::REDIRECT, 100, Window::from_millis(60_000)),
            ]),
        }
    }

    const NOW: RedisTime = RedisTime {
        secs: 1_796_083_200,
        micros: 0,
    };

    /// A log key holding admissions `ages_ms` old.
    fn log(policy: &str, client: &str, ages_ms: &[u64], pttl_ms: i64) -> Fetched {
        let now_us = (NOW.secs * 1_000_000) as f64;
        Fetched {
            key: redis_key("rl:", Algorithm::SlidingLog, policy, MINUTE, &client),
            time: NOW,
            pttl_ms,
            stored: Ok(Stored::Log(
                ages_ms.iter().map(|a| now_us - (a * 1000) as f64).collect(),
            )),
        }
    }

    #[test]
    fn only_the_limiters_keys_are_selected_and_only_the_clients() {
        let keys: Vec<String> = [
            "rl:{shorten:10.78.0.1}:sliding_log:60s",
            "rl:{default:10.78.0.1}:gcra:1500ms",
            "rl:{shorten:2001:db8::/64}:sliding_log:3600s",
            "rl:not-a-limiter-key",
        ]
        .map(str::to_owned)
        .to_vec();
        let (all, others) = select(&setup(), &keys, None);
        assert_eq!((all.len(), others), (3, 1));
        let (one, _) = select(&setup(), &keys, Some("2001:db8::/64"));
        assert_eq!(one, [(keys[2].clone(), Algorithm::SlidingLog)].to_vec());
        let (one, _) = select(&setup(), &keys, Some("10.78.0.1"));
        assert_eq!(
            one,
            [
                (keys[0].clone(), Algorithm::SlidingLog),
                (keys[1].clone(), Algorithm::Gcra)
            ]
            .to_vec()
        );
    }

    #[test]
    fn rows_read_each_key_with_its_policy_and_are_ordered() {
        let setup = setup();
        let stale = Fetched {
            key: redis_key("rl:", Algorithm::Gcra, route::SHORTEN, MINUTE, &"10.78.0.1"),
            time: NOW,
            pttl_ms: 6_000,
            stored: Ok(Stored::Tat(Some(format!(
                "{}:0",
                NOW.secs * 1_000_000 + 6_000_000
            )))),
        };
        let gone = log(route::DEFAULT, "10.78.0.2", &[], -2);
        let fetched = [
            stale,
            log(route::SHORTEN, "10.78.0.1", &[59_000, 1_000], 59_000),
            log(route::DEFAULT, "10.78.0.1", &[1_000], 59_000),
            gone,
        ];
        let rows = rows(&setup, &fetched);
        let summary: Vec<(&str, &str, Algorithm)> = rows
            .iter()
            .map(|r| (r.client.as_str(), r.policy.as_str(), r.algorithm))
            .collect();
        assert_eq!(
            summary,
            [
                ("10.78.0.1", "default", Algorithm::SlidingLog),
                ("10.78.0.1", "shorten", Algorithm::SlidingLog),
                ("10.78.0.1", "shorten", Algorithm::Gcra),
            ]
        );
        let State::Budget { budget, limit, .. } = rows[1].state else {
            panic!("{:?}", rows[1].state)
        };
        assert_eq!((budget.used, budget.remaining, limit), (2, 8, 10));
        assert_eq!((budget.next_ms, budget.full_ms), (1_000, 59_000));
        // The stale GCRA key is read with GCRA's rules: one interval (6 s) of backlog.
        let State::Budget { budget, .. } = rows[2].state else {
            panic!("{:?}", rows[2].state)
        };
        assert_eq!((budget.used, budget.remaining), (1, 9));
    }

    #[test]
    fn the_table_shows_budgets_ttls_and_what_is_odd() {
        let setup = setup();
        let full: Vec<u64> = (1..=10).map(|i| i * 1_000).collect();
        let fetched = [
            log(route::SHORTEN, "10.78.0.1", &full, 59_000),
            log(route::DEFAULT, "10.78.0.1", &[500], 59_500),
            Fetched {
                key: redis_key(
                    "rl:",
                    Algorithm::Gcra,
                    route::REDIRECT,
                    MINUTE,
                    &"2001:db8::/64",
                ),
                time: NOW,
                pttl_ms: 1_200,
                stored: Err(
                    "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
                ),
            },
            Fetched {
                key: redis_key("rl:", Algorithm::SlidingLog, "api", MINUTE, &"10.78.0.1"),
                time: NOW,
                pttl_ms: -1,
                stored: Ok(Stored::Log(vec![])),
            },
        ];
        let rows = rows(&setup, &fetched);
        let text = render(&Screen {
            setup: &setup,
            redis: "redis (10.78.0.20:6379)",
            pattern: "rl:*",
            time: Some(NOW),
            rows: &rows,
            others: 1,
        });
        let expected = "\
limiter keys rl:* in Redis on redis (10.78.0.20:6379) at 2026-12-01 00:00:00 UTC; the web app uses sliding_log
4 keys, 2 clients
CLIENT         POLICY    USED  LEFT  LIMIT        NEXT IN  FULL IN  TTL    KEY
10.78.0.1      default      1    99  100 per 60s  59.5s    59.5s    59.5s  rl:{default:10.78.0.1}:sliding_log:60s
10.78.0.1      shorten     10     0  10 per 60s   50.0s    59.0s    59.0s  rl:{shorten:10.78.0.1}:sliding_log:60s  refusing
10.78.0.1      api          -     -  -            -        -        none   rl:{api:10.78.0.1}:sliding_log:60s      no policy \"api\" in cluster.yaml
2001:db8::/64  redirect     -     -  -            -        -        1.2s   rl:{redirect:2001:db8::/64}:gcra:60s    stale: gcra state, the web app uses sliding_log; unreadable: WRONGTYPE Operation against a key holding the wrong kind of value
1 other key under rl: not made by the web app's key function
";
        assert_eq!(text, expected);
    }

    #[test]
    fn an_empty_limiter_says_so() {
        let setup = setup();
        let text = render(&Screen {
            setup: &setup,
            redis: "redis (10.78.0.20:6379)",
            pattern: "rl:{*:10.78.0.9}:*",
            time: None,
            rows: &[],
            others: 0,
        });
        assert_eq!(
            text,
            "limiter keys rl:{*:10.78.0.9}:* in Redis on redis (10.78.0.20:6379); the web app uses sliding_log\n\
             no keys: every budget is full\n"
        );
    }

    #[test]
    fn durations_are_short_and_never_early() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(999), "999ms");
        assert_eq!(duration(41_200), "41.2s");
        assert_eq!(duration(41_201), "41.3s");
        assert_eq!(duration(59_950), "1m00s");
        assert_eq!(duration(184_001), "3m05s");
        assert_eq!(duration(3_599_500), "1h00m");
        assert_eq!(duration(3_720_000), "1h02m");
    }
}
