//! A policy of several limits, decided by the real scripts on a real Redis for every
//! algorithm: a request is admitted only when every limit has room, a refusal by one limit
//! records nothing in the others, and the answer reports the limit closest to refusing.

mod limiter_support;

use std::collections::BTreeMap;

use clusterlab_contract::route;
use limiter_support::*;
use webapp::limiter::{
    Algorithm, ClientId, Decision, FailMode, Limit, Limiter, LimiterConfig, PolicySpec, RedisUrl,
    Window,
};

const SHORT: Limit = Limit {
    limit: 3,
    window: Window::from_millis(60_000),
};
const LONG: Limit = Limit {
    limit: 5,
    window: Window::from_millis(3_600_000),
};

fn limiter(algorithm: Algorithm, limits: &[Limit]) -> Limiter {
    let config = LimiterConfig {
        redis_url: RedisUrl::new(redis_url()),
        algorithm,
        fail_mode: FailMode::Closed,
        timeout_ms: 5000,
        key_prefix: unique_prefix(&format!("limits-{}", algorithm.as_str())),
        policies: BTreeMap::from([(
            route::DEFAULT.to_owned(),
            PolicySpec {
                limits: limits.to_vec(),
                shadow: false,
            },
        )]),
        ..LimiterConfig::default()
    };
    Limiter::new(&config, &prometheus::Registry::new()).expect("limiter")
}

/// (admitted, index of the limit reported, remaining) of each decision.
fn summary(decisions: &[Decision]) -> Vec<(bool, usize, u64)> {
    decisions
        .iter()
        .map(|d| (d.allowed, d.shown, d.remaining))
        .collect()
}

async fn decisions(limiter: &Limiter, client: &ClientId, n: usize) -> Vec<Decision> {
    let policy = limiter.policies().for_route(None).clone();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            limiter
                .decide(&policy, client)
                .await
                .expect("Redis decides"),
        );
    }
    out
}

async fn unlink(conn: &mut redis::aio::MultiplexedConnection, key: &str) {
    let _: () = redis::cmd("UNLINK")
        .arg(key)
        .query_async(conn)
        .await
        .expect("UNLINK");
}

#[tokio::test]
async fn every_limit_must_have_room_and_a_refusal_takes_from_none() {
    let mut conn = redis_conn(&redis_url()).await;
    for algorithm in Algorithm::ALL {
        let limiter = limiter(algorithm, &[SHORT, LONG]);
        let policy = limiter.policies().for_route(None).clone();
        let client = ClientId::from_ip("192.0.2.40".parse().unwrap(), 64);
        let [short_key, long_key] = limiter.keys(&policy, &client).try_into().unwrap();
        let what = algorithm.as_str();

        // Three fit both; the short limit is the closer to refusing and is reported; the
        // fourth is refused by it, with the time until it frees up.
        let first = decisions(&limiter, &client, 4).await;
        assert_eq!(
            summary(&first),
            [(true, 0, 2), (true, 0, 1), (true, 0, 0), (false, 0, 0)],
            "{what}"
        );
        assert!(first[3].reset_ms > 0, "{what}: {:?}", first[3]);
        assert_eq!(first[3].limits, [SHORT, LONG], "{what}");

        // Had the refusal counted in the long limit, it would have one unit left, not two.
        unlink(&mut conn, &short_key).await;
        let second = decisions(&limiter, &client, 3).await;
        assert_eq!(
            summary(&second),
            [(true, 1, 1), (true, 1, 0), (false, 1, 0)],
            "{what}: after the short limit's reset"
        );

        // And the long limit's refusal took nothing from the short one: two used, one left.
        unlink(&mut conn, &long_key).await;
        let third = decisions(&limiter, &client, 2).await;
        assert_eq!(
            summary(&third),
            [(true, 0, 0), (false, 0, 0)],
            "{what}: after the long limit's reset"
        );
        unlink(&mut conn, &short_key).await;
        unlink(&mut conn, &long_key).await;
    }
}

#[tokio::test]
async fn a_refusal_by_several_limits_reports_the_one_that_frees_up_last() {
    // Both limits fill with the same request; the long one frees up an hour later.
    let long = Limit {
        limit: SHORT.limit,
        ..LONG
    };
    for algorithm in Algorithm::ALL {
        let limiter = limiter(algorithm, &[SHORT, long]);
        let client = ClientId::from_ip("192.0.2.41".parse().unwrap(), 64);
        let answers = decisions(&limiter, &client, 4).await;
        let what = algorithm.as_str();
        assert_eq!(
            answers.iter().map(|d| d.allowed).collect::<Vec<_>>(),
            [true, true, true, false],
            "{what}"
        );
        assert_eq!((answers[3].shown, answers[3].remaining), (1, 0), "{what}");
        assert!(answers[3].reset_ms > 60_000, "{what}: {:?}", answers[3]);
    }
}
