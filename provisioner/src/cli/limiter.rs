//! CLI layer: `provisioner limiter [--client IP] [--watch]` — the web app's limiter keys
//! in the cluster's Redis, one line per client and policy with the budget used and left,
//! when the next unit and the whole budget return, and the key's TTL; `--watch` redraws it
//! every second. `provisioner limiter reset [--client IP]` deletes the keys, so the
//! budgets start full. Keys are named and read by the contract's functions, the ones the
//! web app writes them with ([`view`] for the rows and the table, [`crate::exec::limiter`]
//! for Redis).

mod view;

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

use clusterlab_contract::client_id;

use crate::exec::limiter::{self as redis_keys, match_pattern};
use crate::exec::redis::ClusterRedis;
use crate::plan::{self, REDIS_PORT};
use crate::spec::{Cluster, FileCheck};

use super::context::{self, Project};
use super::{load, Cli, CliError};
use view::{Screen, Setup};

/// How often `--watch` redraws.
const REFRESH: Duration = Duration::from_secs(1);
/// How often `--watch` looks whether Ctrl-C was pressed while it waits to redraw.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Only this client's keys: the address the web app bills (an IPv6 address counts
    /// as its `ipv6_prefix` network, as the web app groups it).
    #[arg(long, value_name = "IP")]
    pub client: Option<IpAddr>,
    /// Redraw every second until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Delete the limiter's keys (every client's, or one's): their budgets start full.
    Reset {
        /// Only this client's keys.
        #[arg(long, value_name = "IP")]
        client: Option<IpAddr>,
    },
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    let setup = setup(&cluster)?;
    let client_of = |ip: &IpAddr| client_id(*ip, cluster.app.limiter.ipv6_prefix);
    let (client, reset) = match &args.action {
        None => (args.client.as_ref().map(client_of), false),
        Some(Action::Reset { client }) => (client.as_ref().map(client_of), true),
    };
    let targets = context::targets(&cluster, &project);
    let password = cluster.secrets.redis_password.resolve(&project.spec_dir)?;
    let pattern = match_pattern(&setup.prefix, client.as_deref());
    context::runtime()?.block_on(async {
        let redis_host = context::redis_primary(&cluster, &targets, &password).await?;
        let target = &targets[&redis_host.name];
        let address = redis_host.ip.to_string();
        let place = format!("{} ({address}:{REDIS_PORT})", redis_host.name);
        let mut redis = ClusterRedis::connect(
            target,
            &context::inspect_retry(),
            &address,
            REDIS_PORT,
            &password,
        )
        .await?;
        let result = if reset {
            reset_keys(&mut redis, &setup, &pattern, client.as_deref(), &place).await
        } else if args.watch {
            watch(&mut redis, &setup, &pattern, client.as_deref(), &place).await
        } else {
            let text = screen(&mut redis, &setup, &pattern, client.as_deref(), &place).await?;
            print!("{text}");
            Ok(())
        };
        let closed = redis.close().await;
        result?;
        closed?;
        Ok(())
    })
}

/// The algorithm, key prefix and policies the web app was given (`ROCKET_LIMITER`).
fn setup(cluster: &Cluster) -> Result<Setup, CliError> {
    let config = plan::limiter_config(cluster);
    let policies = config
        .validate()
        .map_err(|e| CliError::Usage(format!("cluster.yaml: app.limiter: {e}")))?;
    Ok(Setup {
        algorithm: config.algorithm,
        prefix: config.key_prefix,
        policies,
    })
}

/// One look at the keys, as the table prints.
async fn screen(
    redis: &mut ClusterRedis,
    setup: &Setup,
    pattern: &str,
    client: Option<&str>,
    place: &str,
) -> Result<String, CliError> {
    let keys = redis_keys::scan(redis, pattern).await?;
    let (selected, others) = view::select(setup, &keys, client);
    let fetched = redis_keys::fetch(redis, &selected).await?;
    let rows = view::rows(setup, &fetched);
    Ok(view::render(&Screen {
        setup,
        redis: place,
        pattern,
        time: fetched.first().map(|f| f.time),
        rows: &rows,
        // A client's pattern leaves out whatever else lies under the prefix.
        others: if client.is_some() { 0 } else { others },
    }))
}

/// Redraws the screen every second until Ctrl-C (or SIGTERM), which ends it cleanly: the
/// caller closes the SSH session, which the killed process would leave running. A second
/// Ctrl-C while Redis does not answer ends the process at once.
async fn watch(
    redis: &mut ClusterRedis,
    setup: &Setup,
    pattern: &str,
    client: Option<&str>,
    place: &str,
) -> Result<(), CliError> {
    use crossterm::{cursor::MoveTo, terminal, QueueableCommand};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|source| CliError::Io {
                operation: format!("handle signal {signal} while watching"),
                source,
            })?;
    }
    while !stop.load(Ordering::Relaxed) {
        let text = screen(redis, setup, pattern, client, place).await?;
        let mut out = std::io::stdout().lock();
        let drawn = out
            .queue(terminal::Clear(terminal::ClearType::All))
            .and_then(|out| out.queue(MoveTo(0, 0)))
            .and_then(|out| {
                writeln!(out, "{text}(every {}s; Ctrl-C to stop)", REFRESH.as_secs())?;
                out.flush()
            });
        drop(out);
        drawn.map_err(|source| CliError::Io {
            operation: "draw the limiter's keys on the terminal".into(),
            source,
        })?;
        let next = Instant::now() + REFRESH;
        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
            tokio::time::sleep(SIGNAL_POLL).await;
        }
    }
    Ok(())
}

/// Deletes the keys the table would show (every limiter key under the prefix, or one
/// client's) and says how many there were.
async fn reset_keys(
    redis: &mut ClusterRedis,
    setup: &Setup,
    pattern: &str,
    client: Option<&str>,
    place: &str,
) -> Result<(), CliError> {
    let keys = redis_keys::scan(redis, pattern).await?;
    let (selected, _) = view::select(setup, &keys, client);
    let names: Vec<String> = selected.into_iter().map(|(key, _)| key).collect();
    let deleted = redis_keys::unlink(redis, &names).await?;
    let whose = client.map_or_else(|| "every client".to_owned(), |c| format!("client {c}"));
    println!(
        "deleted {deleted} limiter {} of {whose} in Redis on {place}: their budgets start full",
        if deleted == 1 { "key" } else { "keys" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::{Action, Args};

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let argv = [&["provisioner", "limiter"], args].concat();
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Limiter(args) => args,
            other => panic!("parsed as {other:?}"),
        })
    }

    #[test]
    fn a_client_is_an_ip_address_and_reset_takes_its_own() {
        let args = parse(&["--client", "2001:db8::1", "--watch"]).expect("parses");
        assert_eq!(args.client, Some("2001:db8::1".parse().unwrap()));
        assert!(args.watch && args.action.is_none());
        let args = parse(&["reset", "--client", "10.78.0.1"]).expect("parses");
        let Some(Action::Reset { client }) = args.action else {
            panic!("{args:?}");
        };
        assert_eq!(client, Some("10.78.0.1".parse().unwrap()));
        assert_eq!(
            parse(&["--client", "10.78.0"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
        // Options of the view are not the reset's.
        assert!(parse(&["--watch", "reset"]).is_err());
        assert!(parse(&["reset", "--watch"]).is_err());
    }
}
