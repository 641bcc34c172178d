//! CLI layer, `top`: the board — each source's latest state (waiting for its first
//! reading, up with its rates since the reading before, or down with why), updated reading
//! by reading. Pure: every reading comes with the moment it was taken; the view draws the
//! board as it is.

use std::time::{Duration, Instant};

use crate::metrics::{RedisInfo, RedisRates, WebMetrics, WebRates};

/// A reading whose rates come from the reading before it.
pub trait Counters {
    type Rates: Copy + std::fmt::Debug + PartialEq;
    fn rates_since(&self, earlier: &Self, elapsed: Duration) -> Self::Rates;
}

impl Counters for WebMetrics {
    type Rates = WebRates;
    fn rates_since(&self, earlier: &Self, elapsed: Duration) -> WebRates {
        WebRates::between(earlier, self, elapsed)
    }
}

impl Counters for RedisInfo {
    type Rates = RedisRates;
    fn rates_since(&self, earlier: &Self, elapsed: Duration) -> RedisRates {
        RedisRates::between(earlier, self, elapsed)
    }
}

/// How a source is doing, as of its latest reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Health<R> {
    /// Not read yet.
    Waiting,
    /// Answered; the rates need a second answer.
    Up(Option<R>),
    /// Its latest reading failed, for this reason (which names the host).
    Down(String),
}

/// One web host or the Redis host.
#[derive(Debug)]
pub struct Source<T: Counters> {
    pub name: String,
    pub address: String,
    pub health: Health<T::Rates>,
    /// The last successful reading: rates are measured from it, across any failures since.
    last: Option<(Instant, T)>,
}

impl<T: Counters> Source<T> {
    pub fn new(name: &str, address: &str) -> Self {
        Source {
            name: name.to_owned(),
            address: address.to_owned(),
            health: Health::Waiting,
            last: None,
        }
    }

    pub fn record(&mut self, at: Instant, reading: Result<T, String>) {
        match reading {
            Ok(counters) => {
                let rates = self.last.as_ref().and_then(|(then, earlier)| {
                    let elapsed = at.checked_duration_since(*then)?;
                    Some(counters.rates_since(earlier, elapsed))
                });
                self.health = Health::Up(rates);
                self.last = Some((at, counters));
            }
            Err(why) => self.health = Health::Down(why),
        }
    }
}

/// What a poller read, and from which source.
#[derive(Debug)]
pub enum Reading {
    /// From the web host at this index of [`Board::web`].
    Web {
        host: usize,
        at: Instant,
        result: Result<WebMetrics, String>,
    },
    Redis {
        at: Instant,
        result: Result<RedisInfo, String>,
    },
}

/// Everything `top` shows.
#[derive(Debug)]
pub struct Board {
    pub cluster: String,
    pub web: Vec<Source<WebMetrics>>,
    pub redis: Source<RedisInfo>,
}

impl Board {
    pub fn record(&mut self, reading: Reading) {
        match reading {
            Reading::Web { host, at, result } => {
                if let Some(source) = self.web.get_mut(host) {
                    source.record(at, result);
                }
            }
            Reading::Redis { at, result } => self.redis.record(at, result),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(commands: u64) -> RedisInfo {
        RedisInfo {
            total_commands_processed: commands,
            instantaneous_ops_per_sec: 0,
            used_memory: 1 << 20,
            maxmemory: 0,
            connected_clients: 2,
        }
    }

    fn ops(source: &Source<RedisInfo>) -> Option<f64> {
        match &source.health {
            Health::Up(Some(rates)) => Some(rates.ops),
            _ => None,
        }
    }

    #[test]
    fn rates_need_two_readings_and_span_a_failure_between_them() {
        let start = Instant::now();
        let mut redis = Source::<RedisInfo>::new("redis", "10.0.0.20");
        assert_eq!(redis.health, Health::Waiting);
        redis.record(start, Ok(info(100)));
        assert_eq!(redis.health, Health::Up(None));
        redis.record(start + Duration::from_secs(1), Ok(info(150)));
        assert_eq!(ops(&redis), Some(50.0));
        redis.record(start + Duration::from_secs(2), Err("timed out".into()));
        assert_eq!(redis.health, Health::Down("timed out".into()));
        redis.record(start + Duration::from_secs(3), Ok(info(250)));
        assert_eq!(ops(&redis), Some(50.0));
    }

    #[test]
    fn readings_go_to_their_own_web_host() {
        let at = Instant::now();
        let mut board = Board {
            cluster: "demo".into(),
            web: vec![
                Source::new("web1", "10.0.0.11"),
                Source::new("web2", "10.0.0.12"),
            ],
            redis: Source::new("redis", "10.0.0.20"),
        };
        board.record(Reading::Web {
            host: 1,
            at,
            result: Err("connection refused".into()),
        });
        board.record(Reading::Redis {
            at,
            result: Ok(info(1)),
        });
        assert_eq!(board.web[0].health, Health::Waiting);
        assert_eq!(
            board.web[1].health,
            Health::Down("connection refused".into())
        );
        assert_eq!(board.redis.health, Health::Up(None));
    }
}
