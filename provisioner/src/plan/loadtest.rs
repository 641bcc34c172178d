//! Plan layer: one k6 run on the tester host as data — where the files go, the client
//! addresses, the environment the scripts read and the exact command line. Exec runs it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use clusterlab_contract::route;

use crate::spec::{Cluster, Limiter, Role, Target, Window};

/// Where the scripts and k6's outputs live on the tester host.
pub const REMOTE_DIR: &str = "/tmp/clusterlab-k6";
/// k6's per-request samples (NDJSON), the input of the verdict.
pub const SAMPLES: &str = "samples.json";
/// k6's end-of-test summary.
pub const SUMMARY: &str = "summary.json";
/// The web dashboard's HTML report.
pub const REPORT: &str = "report.html";

/// What the user asked for on top of the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadTestRequest {
    /// A file name under `k6/`, e.g. `rate-test.js`.
    pub script: String,
    /// How many client addresses the tester sends from (1 = its own address only).
    pub clients: usize,
    /// Extra `-e KEY=VALUE` for the script (durations, rates...).
    pub env: BTreeMap<String, String>,
}

/// One k6 run, fully decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadTest {
    pub tester: String,
    pub script: String,
    /// Addresses added to the tester's interface so each client has its own budget.
    pub extra_addresses: Vec<Ipv4Addr>,
    pub prefix_len: u8,
    /// Every client address requests are sent from (the tester's own when there are no extras).
    pub clients: Vec<Ipv4Addr>,
    pub env: BTreeMap<String, String>,
    /// The clients' limiter keys in Redis, deleted before the run so every client starts
    /// with a full budget and the verdict, which sees only this run, judges it exactly.
    pub budget_keys: Vec<String>,
    /// The k6 command line, run in [`REMOTE_DIR`].
    pub command: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadTestError {
    #[error("cluster.yaml has no load_tester host")]
    NoTester,
    #[error("cluster.yaml has no load_balancer host")]
    NoLoadBalancer,
    #[error("script {0:?} must be a file name under k6/ ending in .js")]
    BadScript(String),
    #[error("--clients must be at least 1")]
    NoClients,
    #[error("the network {cidr} has only {free} free addresses for {wanted} extra clients")]
    NotEnoughAddresses {
        cidr: String,
        free: usize,
        wanted: usize,
    },
    #[error(
        "--clients {wanted} needs {wanted} extra addresses but loadtest.extra_addresses lists {listed}; \
         add addresses there that no device on the network uses"
    )]
    NotEnoughListed { listed: usize, wanted: usize },
    #[error(
        "--clients {wanted} on Proxmox needs loadtest.extra_addresses in cluster.yaml: the \
         cluster network is a LAN, and addresses no host of the spec uses may belong to other devices"
    )]
    NoListedAddresses { wanted: usize },
    #[error("-e {0:?}: the provisioner sets this variable itself")]
    ReservedVariable(String),
}

/// Variables the provisioner derives from the spec; a user's `-e` may not override them,
/// or the verdict would judge a different run than the one k6 made.
const RESERVED: [&str; 4] = ["TARGET", "CLIENT", "LOCAL_IPS", "UNLIMITED_CLIENTS"];

pub fn plan(cluster: &Cluster, request: &LoadTestRequest) -> Result<LoadTest, LoadTestError> {
    let tester = cluster
        .the(Role::LoadTester)
        .ok_or(LoadTestError::NoTester)?;
    let balancer = cluster
        .the(Role::LoadBalancer)
        .ok_or(LoadTestError::NoLoadBalancer)?;
    let script = &request.script;
    if script.contains('/') || !script.ends_with(".js") || script.starts_with('.') {
        return Err(LoadTestError::BadScript(script.clone()));
    }
    if request.clients == 0 {
        return Err(LoadTestError::NoClients);
    }
    if let Some(key) = request.env.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return Err(LoadTestError::ReservedVariable(key.clone()));
    }
    // One client sends from the tester's own address; several each get an address of their
    // own, so no client shares the tester's budget with another.
    let extra = if request.clients > 1 {
        request.clients
    } else {
        0
    };
    let extra_addresses = free_addresses(cluster, extra)?;
    let clients: Vec<Ipv4Addr> = if extra_addresses.is_empty() {
        vec![tester.ip]
    } else {
        extra_addresses.clone()
    };
    let mut env = request.env.clone();
    env.insert("TARGET".into(), format!("http://{}", balancer.ip));
    env.insert("CLIENT".into(), tester.ip.to_string());
    // Clients an unlimited override holds get answers without `RateLimit` headers.
    let unlimited: Vec<Ipv4Addr> = clients
        .iter()
        .copied()
        .filter(|ip| {
            cluster
                .app
                .limiter
                .for_client(&ip.to_string(), route::DEFAULT)
                .is_none()
        })
        .collect();
    if !unlimited.is_empty() {
        env.insert("UNLIMITED_CLIENTS".into(), join(&unlimited));
    }
    if !extra_addresses.is_empty() {
        env.insert("LOCAL_IPS".into(), join(&extra_addresses));
        env.entry("CLIENTS".into())
            .or_insert_with(|| extra_addresses.len().to_string());
    }
    let mut command: Vec<String> = [
        "env",
        "K6_WEB_DASHBOARD=true",
        // No dashboard server on the tester, only the exported report; a one-second period
        // gives short CI runs enough data points for k6 to write it.
        "K6_WEB_DASHBOARD_PORT=-1",
        "K6_WEB_DASHBOARD_PERIOD=1s",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    command.push(format!("K6_WEB_DASHBOARD_EXPORT={REPORT}"));
    command.extend(
        ["k6", "run", "--no-color", "--out"]
            .into_iter()
            .map(String::from),
    );
    command.push(format!("json={SAMPLES}"));
    command.push("--summary-export".into());
    command.push(SUMMARY.into());
    if !extra_addresses.is_empty() {
        command.push("--local-ips".into());
        command.push(join(&extra_addresses));
    }
    for (key, value) in &env {
        command.push("-e".into());
        command.push(format!("{key}={value}"));
    }
    command.push(script.clone());
    let budget_keys = budget_keys(&cluster.app.limiter, &clients);
    Ok(LoadTest {
        tester: tester.name.clone(),
        script: script.clone(),
        extra_addresses,
        prefix_len: cluster.network.cidr.prefix_len(),
        clients,
        env,
        budget_keys,
        command,
    })
}

/// The web app's key for a client under each limit of a policy
/// ([`clusterlab_contract::redis_key`]), for every policy cluster.yaml can name, its
/// overrides' included (their limits may have windows of their own).
fn budget_keys(limiter: &Limiter, clients: &[Ipv4Addr]) -> Vec<String> {
    let prefix = &limiter.key_prefix;
    let usual = limiter
        .policies
        .named()
        .into_iter()
        .map(|(name, policy)| (name.to_owned(), policy));
    let overridden = limiter.overrides.iter().flat_map(|o| {
        o.policies
            .iter()
            .map(|(name, policy)| (name.clone(), policy))
    });
    let limits: std::collections::BTreeSet<(String, Window)> = usual
        .chain(overridden)
        .flat_map(|(name, policy)| policy.limits.iter().map(move |l| (name.clone(), l.window)))
        .collect();
    clients
        .iter()
        .flat_map(|client| {
            limits.iter().map(move |(policy, window)| {
                clusterlab_contract::redis_key(prefix, limiter.algorithm, policy, *window, client)
            })
        })
        .collect()
}

/// Extra client addresses for the tester: the first `count` of `loadtest.extra_addresses`
/// (validated free of hosts) when the spec lists any; otherwise, on the local target only
/// (a Docker network nobody else uses), the first addresses of the network after the
/// tester's that no host, the gateway, the network or the broadcast address uses.
fn free_addresses(cluster: &Cluster, count: usize) -> Result<Vec<Ipv4Addr>, LoadTestError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let listed = &cluster.loadtest.extra_addresses;
    if !listed.is_empty() {
        if listed.len() < count {
            return Err(LoadTestError::NotEnoughListed {
                listed: listed.len(),
                wanted: count,
            });
        }
        return Ok(listed[..count].to_vec());
    }
    if cluster.target == Target::Proxmox {
        return Err(LoadTestError::NoListedAddresses { wanted: count });
    }
    let cidr = cluster.network.cidr;
    let taken =
        |ip: &Ipv4Addr| *ip == cluster.network.gateway || cluster.hosts.iter().any(|h| h.ip == *ip);
    let start = cluster
        .the(Role::LoadTester)
        .map(|h| h.ip)
        .unwrap_or(cidr.network());
    let free: Vec<Ipv4Addr> = cidr
        .hosts()
        .filter(|ip| *ip > start && !taken(ip))
        .take(count)
        .collect();
    if free.len() < count {
        return Err(LoadTestError::NotEnoughAddresses {
            cidr: cidr.to_string(),
            free: free.len(),
            wanted: count,
        });
    }
    Ok(free)
}

fn join(addresses: &[Ipv4Addr]) -> String {
    addresses
        .iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(script: &str, clients: usize) -> LoadTestRequest {
        LoadTestRequest {
            script: script.into(),
            clients,
            env: BTreeMap::from([("HOLD_SECONDS".to_string(), "5".to_string())]),
        }
    }

    #[test]
    fn one_client_runs_from_the_tester_against_the_balancer() {
        let test = plan(&Cluster::repository_default(), &request("rate-test.js", 1)).unwrap();
        assert_eq!(test.tester, "tester");
        assert_eq!(test.clients, vec![Ipv4Addr::new(10, 77, 0, 30)]);
        assert!(test.extra_addresses.is_empty());
        assert_eq!(
            test.budget_keys,
            [
                "rl:{default:10.77.0.30}:sliding_log:60s",
                "rl:{redirect:10.77.0.30}:sliding_log:60s",
                "rl:{shorten:10.77.0.30}:sliding_log:60s"
            ]
        );
        assert_eq!(
            test.command.join(" "),
            "env K6_WEB_DASHBOARD=true K6_WEB_DASHBOARD_PORT=-1 K6_WEB_DASHBOARD_PERIOD=1s \
             K6_WEB_DASHBOARD_EXPORT=report.html k6 run --no-color --out json=samples.json \
             --summary-export summary.json -e CLIENT=10.77.0.30 -e HOLD_SECONDS=5 \
             -e TARGET=http://10.77.0.10 rate-test.js"
        );
    }

    #[test]
    fn several_clients_get_free_addresses_bound_by_k6() {
        let test = plan(
            &Cluster::repository_default(),
            &request("multi-client.js", 3),
        )
        .unwrap();
        let extra: Vec<String> = test.extra_addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(extra, ["10.77.0.31", "10.77.0.32", "10.77.0.33"]);
        assert_eq!(test.clients, test.extra_addresses);
        assert_eq!(test.prefix_len, 24);
        let line = test.command.join(" ");
        assert!(
            line.contains("--local-ips 10.77.0.31,10.77.0.32,10.77.0.33 "),
            "{line}"
        );
        assert!(
            line.contains("-e LOCAL_IPS=10.77.0.31,10.77.0.32,10.77.0.33 "),
            "{line}"
        );
        assert!(line.contains("-e CLIENTS=3 "), "{line}");
    }

    #[test]
    fn clients_an_unlimited_override_holds_are_named_to_k6() {
        let mut cluster = Cluster::repository_default();
        let line = |cluster: &Cluster| {
            plan(cluster, &request("multi-client.js", 3))
                .unwrap()
                .command
                .join(" ")
        };
        assert!(!line(&cluster).contains("UNLIMITED_CLIENTS"));
        cluster.app.limiter.overrides = vec![crate::spec::Override {
            cidr: "10.77.0.32/31".parse().unwrap(),
            unlimited: true,
            policies: Default::default(),
        }];
        assert!(
            line(&cluster).contains("-e UNLIMITED_CLIENTS=10.77.0.32,10.77.0.33 "),
            "{}",
            line(&cluster)
        );
    }

    #[test]
    fn addresses_in_use_are_skipped_and_exhaustion_is_an_error() {
        let mut cluster = Cluster::repository_default();
        cluster.network.cidr = "10.77.0.0/27".parse().unwrap(); // .1 ..= .30 usable
        let err = plan(&cluster, &request("multi-client.js", 2)).unwrap_err();
        assert_eq!(
            err,
            LoadTestError::NotEnoughAddresses {
                cidr: "10.77.0.0/27".into(),
                free: 0,
                wanted: 2
            }
        );
        let tester = cluster
            .hosts
            .iter_mut()
            .find(|h| h.role == Role::LoadTester)
            .unwrap();
        tester.ip = Ipv4Addr::new(10, 77, 0, 9);
        let test = plan(&cluster, &request("multi-client.js", 3)).unwrap();
        let extra: Vec<String> = test.extra_addresses.iter().map(|a| a.to_string()).collect();
        // .10, .11 and .12 are the balancer and the web hosts.
        assert_eq!(extra, ["10.77.0.13", "10.77.0.14", "10.77.0.15"]);
    }

    #[test]
    fn listed_addresses_are_used_in_order_and_are_the_only_ones_on_proxmox() {
        let mut cluster = Cluster::repository_default();
        cluster.loadtest.extra_addresses =
            vec![Ipv4Addr::new(10, 77, 0, 200), Ipv4Addr::new(10, 77, 0, 201)];
        let test = plan(&cluster, &request("multi-client.js", 2)).unwrap();
        assert_eq!(test.extra_addresses, cluster.loadtest.extra_addresses);
        assert_eq!(
            plan(&cluster, &request("multi-client.js", 3)).unwrap_err(),
            LoadTestError::NotEnoughListed {
                listed: 2,
                wanted: 3
            }
        );

        cluster.target = Target::Proxmox;
        cluster.loadtest.extra_addresses.clear();
        let err = plan(&cluster, &request("multi-client.js", 2)).unwrap_err();
        assert_eq!(err, LoadTestError::NoListedAddresses { wanted: 2 });
        assert!(
            err.to_string().contains("loadtest.extra_addresses"),
            "{err}"
        );
        // One client sends from the tester's own address: nothing to list.
        assert!(plan(&cluster, &request("rate-test.js", 1)).is_ok());
    }

    #[test]
    fn bad_requests_are_refused() {
        let cluster = Cluster::repository_default();
        for (req, err) in [
            (
                request("../etc/passwd", 1),
                LoadTestError::BadScript("../etc/passwd".into()),
            ),
            (
                request("burst.py", 1),
                LoadTestError::BadScript("burst.py".into()),
            ),
            (request("burst.js", 0), LoadTestError::NoClients),
            (
                LoadTestRequest {
                    env: BTreeMap::from([("TARGET".to_string(), "http://evil".to_string())]),
                    ..request("burst.js", 1)
                },
                LoadTestError::ReservedVariable("TARGET".into()),
            ),
        ] {
            assert_eq!(plan(&cluster, &req).unwrap_err(), err);
        }
    }
}
