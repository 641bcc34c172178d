//! Requests in the same instant all count: decisions queued in one MULTI/EXEC run back to
//! back inside Redis (the same millisecond), and a log whose newest entry lies ahead of
//! Redis' clock makes every following decision share one microsecond.

mod limiter_support;

use limiter_support::*;
use webapp::limiter::Algorithm;

async fn load(conn: &mut redis::aio::MultiplexedConnection, algorithm: Algorithm) -> String {
    redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(webapp::limiter::script_source(algorithm))
        .query_async(conn)
        .await
        .expect("SCRIPT LOAD")
}

/// `count` decisions in one transaction; returns each reply [admitted, remaining, reset_ms].
async fn burst(
    conn: &mut redis::aio::MultiplexedConnection,
    sha: &str,
    key: &str,
    count: usize,
) -> Vec<Vec<i64>> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for _ in 0..count {
        pipe.cmd("EVALSHA")
            .arg(sha)
            .arg(1)
            .arg(key)
            .arg(50)
            .arg(60_000);
    }
    pipe.query_async(conn).await.expect("MULTI/EXEC")
}

#[tokio::test]
async fn decisions_in_one_instant_all_count_for_every_algorithm() {
    let mut conn = redis_conn(&redis_url()).await;
    for algorithm in Algorithm::ALL {
        let sha = load(&mut conn, algorithm).await;
        let key = format!("{}{{default:192.0.2.1}}", unique_prefix("instant"));
        let replies = burst(&mut conn, &sha, &key, 20).await;
        let remaining: Vec<i64> = replies.iter().map(|r| r[1]).collect();
        let expected: Vec<i64> = (30..50).rev().collect();
        assert_eq!(remaining, expected, "{}", algorithm.as_str());
        assert!(replies.iter().all(|r| r[0] == 1), "{}", algorithm.as_str());
    }
}

#[tokio::test]
async fn sliding_log_counts_requests_with_the_same_microsecond() {
    let mut conn = redis_conn(&redis_url()).await;
    let sha = load(&mut conn, Algorithm::SlidingLog).await;
    let key = format!("{}{{default:192.0.2.2}}", unique_prefix("same-us"));
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut conn)
        .await
        .expect("TIME");
    // An entry 5 s ahead of Redis' clock: every decision in the next 5 s is stamped with
    // exactly this microsecond, the case a timestamp-as-member log counts once.
    let ahead = (secs + 5) * 1_000_000 + micros;
    let _: () = redis::cmd("ZADD")
        .arg(&key)
        .arg(ahead)
        .arg("seed")
        .query_async(&mut conn)
        .await
        .expect("ZADD");
    let replies = burst(&mut conn, &sha, &key, 10).await;
    assert!(replies.iter().all(|r| r[0] == 1));
    let entries: Vec<(String, u64)> = redis::cmd("ZRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .expect("ZRANGE");
    assert_eq!(entries.len(), 11, "seed + 10 decisions: {entries:?}");
    assert!(
        entries.iter().all(|(_, score)| *score == ahead),
        "{entries:?}"
    );
    assert_eq!(replies.last().map(|r| r[1]), Some(39));
}
