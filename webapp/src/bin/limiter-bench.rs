//! `limiter-bench`: decisions/s and p99 of the limiter's own client next to
//! `redis-benchmark` running the same script on the same Redis, per algorithm, for a policy
//! of one limit and of two, and Redis bytes per tracked client (`MEMORY USAGE`) at N = 10,
//! 100, 1000.
//!
//! Each case runs `--rounds` times, the limiter and the two `redis-benchmark` runs taking
//! turns, and the table gives each one's median: a noisy machine slows all three alike
//! within a round, so the ratio holds where one run each would not.
//!
//! Usage: `limiter-bench [--host 127.0.0.1] [--port 6379] [--requests 200000]
//! [--concurrency 50] [--clients 100000] [--rounds 5] [--algorithm NAME]` (default: all)

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use webapp::limiter::{
    Algorithm, ClientId, Limit, Limiter, LimiterConfig, PolicySpec, RedisUrl, Window,
};

struct Args {
    host: String,
    port: u16,
    requests: usize,
    concurrency: usize,
    clients: u32,
    rounds: usize,
    /// Only this algorithm (default: every one).
    algorithm: Option<Algorithm>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: "127.0.0.1".into(),
        port: 6379,
        requests: 200_000,
        concurrency: 50,
        clients: 100_000,
        rounds: 5,
        algorithm: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |_| format!("{flag}: `{value}` is not a number");
        match flag.as_str() {
            "--host" => args.host = value.clone(),
            "--port" => args.port = value.parse().map_err(bad)?,
            "--requests" => args.requests = value.parse().map_err(bad)?,
            "--concurrency" => args.concurrency = value.parse().map_err(bad)?,
            "--clients" => args.clients = value.parse().map_err(bad)?,
            "--rounds" => args.rounds = value.parse().map_err(bad)?,
            "--algorithm" => {
                let known = Algorithm::ALL.map(|a| a.as_str());
                let found = Algorithm::ALL.into_iter().find(|a| a.as_str() == value);
                args.algorithm = Some(found.ok_or_else(|| {
                    format!("--algorithm: `{value}` is not one of {}", known.join(", "))
                })?);
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.concurrency == 0 || args.requests < args.concurrency || args.clients == 0 {
        return Err("need --concurrency >= 1, --requests >= --concurrency, --clients >= 1".into());
    }
    if args.rounds == 0 {
        return Err("need --rounds >= 1".into());
    }
    Ok(args)
}

/// The policies benchmarked: one limit, and the same with a second, longer one.
const ONE_LIMIT: &[(u64, u64)] = &[(100, 10_000)];
const TWO_LIMITS: &[(u64, u64)] = &[(100, 10_000), (1_000, 100_000)];

/// A limiter whose `default` policy has `limits` as (limit, window in ms).
fn limiter(
    args: &Args,
    algorithm: Algorithm,
    prefix: &str,
    limits: &[(u64, u64)],
) -> Result<Limiter, String> {
    let mut config = LimiterConfig {
        redis_url: RedisUrl::new(format!("redis://{}:{}/", args.host, args.port)),
        sentinel: None,
        algorithm,
        // The benchmark measures Redis, not the fail-open path: allow slow answers.
        timeout_ms: 5_000,
        key_prefix: prefix.to_owned(),
        ..LimiterConfig::default()
    };
    config.policies.insert(
        webapp::limiter::route::DEFAULT.into(),
        PolicySpec {
            limits: limits
                .iter()
                .map(|&(limit, window_ms)| Limit {
                    limit,
                    window: Window::from_millis(window_ms),
                })
                .collect(),
            shadow: false,
        },
    );
    Limiter::new(&config, &Registry::new()).map_err(|e| e.to_string())
}

/// A client address out of `clients` distinct ones, from a cheap per-task generator.
fn client(state: &mut u64, clients: u32) -> ClientId {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let n = ((*state >> 33) as u32) % clients;
    ClientId::from_ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n)), 64)
}

impl Args {
    /// The algorithms to measure: `--algorithm`, or every one.
    fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        Algorithm::ALL
            .into_iter()
            .filter(|a| self.algorithm.is_none_or(|only| only == *a))
    }
}

struct Run {
    per_second: f64,
    p99_ms: f64,
}

/// The run of median throughput (with its own p99).
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    runs.swap_remove(runs.len() / 2)
}

async fn own_client(
    args: &Args,
    algorithm: Algorithm,
    limits: &[(u64, u64)],
) -> Result<(Run, String, String), String> {
    let prefix = format!(
        "bench:{}:{}:{}:",
        algorithm.as_str(),
        limits.len(),
        std::process::id()
    );
    // Short windows so the benchmark's keys expire soon after it.
    let limiter = Arc::new(limiter(args, algorithm, &prefix, limits)?);
    let policy = limiter.policies().for_route(None).clone();
    limiter
        .decide(&policy, &ClientId::unknown())
        .await
        .map_err(|e| format!("Redis at {}:{}: {e}", args.host, args.port))?;
    let per_task = args.requests / args.concurrency;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let limiter = Arc::clone(&limiter);
        let policy = policy.clone();
        let clients = args.clients;
        tasks.push(tokio::spawn(async move {
            let mut state = task as u64 + 1;
            let mut latencies = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let id = client(&mut state, clients);
                let t = Instant::now();
                limiter
                    .decide(&policy, &id)
                    .await
                    .map_err(|e| e.to_string())?;
                latencies.push(t.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(per_task * args.concurrency);
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    let run = Run {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p99_ms: p99.as_secs_f64() * 1000.0,
    };
    Ok((run, limiter.script_sha().to_owned(), prefix))
}

/// `redis-benchmark` sending the very same `EVALSHA` (the script is loaded by now), with
/// `pipeline` commands in flight per connection: 1 is one round trip at a time; 16 keeps
/// Redis busy the way the limiter's multiplexed connection does, so it is the ceiling.
fn redis_benchmark(
    args: &Args,
    sha: &str,
    prefix: &str,
    pipeline: u32,
    limits: &[(u64, u64)],
) -> Result<Run, String> {
    let mut evalsha = vec![sha.to_owned(), limits.len().to_string()];
    for (_, window_ms) in limits {
        evalsha.push(format!("{prefix}rb{{default:__rand_int__}}:{window_ms}"));
    }
    for (limit, window_ms) in limits {
        evalsha.extend([limit.to_string(), window_ms.to_string()]);
    }
    let output = Command::new("redis-benchmark")
        .args(["-h", &args.host, "-p", &args.port.to_string()])
        .args([
            "-n",
            &args.requests.to_string(),
            "-c",
            &args.concurrency.to_string(),
        ])
        .args([
            "-r",
            &args.clients.to_string(),
            "-P",
            &pipeline.to_string(),
            "--csv",
        ])
        .arg("EVALSHA")
        .args(&evalsha)
        .output()
        .map_err(|e| format!("running redis-benchmark (apt-get install redis-tools): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let row = text
        .lines()
        .find(|l| l.starts_with("\"EVALSHA"))
        .ok_or_else(|| {
            format!(
                "redis-benchmark printed no result: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let cells: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|c| c.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    match cells.as_slice() {
        [rps, _, _, _, _, p99, ..] => Ok(Run {
            per_second: *rps,
            p99_ms: *p99,
        }),
        _ => Err(format!("unexpected redis-benchmark row: {row}")),
    }
}

/// Average `MEMORY USAGE` of a client's key after `n` admissions under a limit of `n`.
async fn bytes_per_client(args: &Args, algorithm: Algorithm, n: u64) -> Result<f64, String> {
    const CLIENTS: u32 = 20;
    let prefix = format!(
        "benchmem:{}:{n}:{}:",
        algorithm.as_str(),
        std::process::id()
    );
    let limiter = Arc::new(limiter(args, algorithm, &prefix, &[(n, 3_600_000)])?);
    let policy = limiter.policies().for_route(None).clone();
    let redis = redis::Client::open(format!("redis://{}:{}/", args.host, args.port))
        .map_err(|e| e.to_string())?;
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut total = 0u64;
    for c in 0..CLIENTS {
        let id = ClientId::from_ip(IpAddr::V4(Ipv4Addr::from(0xc000_0200 | c)), 64);
        // Concurrent decisions share the multiplexed connection, so they are pipelined.
        let mut decisions = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (limiter, policy, id) = (Arc::clone(&limiter), policy.clone(), id.clone());
            decisions.spawn(async move { limiter.decide(&policy, &id).await });
        }
        while let Some(decision) = decisions.join_next().await {
            let decision = decision
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if !decision.allowed {
                return Err(format!(
                    "{}: decision {decision:?} refused below the limit",
                    algorithm.as_str()
                ));
            }
        }
        let [key] = limiter
            .keys(&policy, &id)
            .try_into()
            .expect("one limit, one key");
        let bytes: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        total += bytes;
        let _: () = redis::cmd("UNLINK")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(total as f64 / f64::from(CLIENTS))
}

async fn run(args: Args) -> Result<(), String> {
    println!(
        "Redis {}:{}, {} decisions, {} concurrent, {} distinct clients; one limit: 100 per \
         10 s, two limits: and 1000 per 100 s; median of {} rounds\n",
        args.host, args.port, args.requests, args.concurrency, args.clients, args.rounds
    );
    println!("| algorithm | limits | limiter client decisions/s | p99 ms | redis-benchmark EVALSHA/s | p99 ms | redis-benchmark -P 16 EVALSHA/s | limiter / -P 16 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (algorithm, limits) in args
        .algorithms()
        .flat_map(|a| [(a, ONE_LIMIT), (a, TWO_LIMITS)])
    {
        let (mut own, mut one_at_a_time, mut pipelined) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            let (run, sha, prefix) = own_client(&args, algorithm, limits).await?;
            own.push(run);
            one_at_a_time.push(redis_benchmark(&args, &sha, &prefix, 1, limits)?);
            pipelined.push(redis_benchmark(&args, &sha, &prefix, 16, limits)?);
        }
        let (own, one_at_a_time, pipelined) =
            (median(own), median(one_at_a_time), median(pipelined));
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0}% |",
            algorithm.as_str(),
            limits.len(),
            own.per_second,
            own.p99_ms,
            one_at_a_time.per_second,
            one_at_a_time.p99_ms,
            pipelined.per_second,
            100.0 * own.per_second / pipelined.per_second
        );
    }
    println!(
        "\nRedis bytes per tracked client (MEMORY USAGE of its key, after N admissions, limit N)\n"
    );
    println!("| algorithm | N = 10 | N = 100 | N = 1000 |");
    println!("|---|---:|---:|---:|");
    for algorithm in args.algorithms() {
        let mut row = format!("| {} |", algorithm.as_str());
        for n in [10, 100, 1000] {
            row.push_str(&format!(
                " {:.0} |",
                bytes_per_client(&args, algorithm, n).await?
            ));
        }
        println!("{row}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("limiter-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("limiter-bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("limiter-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
