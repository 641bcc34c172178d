//! The deploy executor against hosts that cannot be reached: the run fails naming each
//! host with SSH's own error, and no task runs on a host it could not reach. No
//! Docker or sshd is needed: the targets point at closed local ports.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use provisioner::exec::converge::ConvergeOptions;
use provisioner::exec::deploy::{run, Deployment, Images};
use provisioner::exec::progress::Progress;
use provisioner::exec::ssh::{RetryPolicy, SshTarget};
use provisioner::exec::ExecError;
use provisioner::plan::deploy::{Action, DeployPlan, HostTask, Stage};

/// A local port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

fn target(host: &str, dir: &std::path::Path) -> SshTarget {
    SshTarget {
        host: host.into(),
        address: "127.0.0.1".into(),
        port: closed_port(),
        user: "nobody".into(),
        key_path: dir.join("missing_key"),
        known_hosts: dir.join("known_hosts"),
    }
}

fn converge(host: &str) -> HostTask {
    HostTask {
        host: host.into(),
        actions: vec![Action::Converge {
            services: Vec::new(),
            defer_replace: false,
        }],
    }
}

#[tokio::test]
async fn unreachable_hosts_fail_the_run_each_by_name_with_ssh_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = DeployPlan {
        stages: vec![
            Stage {
                name: "data stores".into(),
                tasks: vec![converge("redis")],
            },
            Stage {
                name: "web web1".into(),
                tasks: vec![converge("web1")],
            },
        ],
    };
    let targets: BTreeMap<String, SshTarget> = ["redis", "web1"]
        .iter()
        .map(|h| (h.to_string(), target(h, dir.path())))
        .collect();
    let deployment = Deployment {
        plan: &plan,
        targets,
        render_root: dir.path().to_owned(),
        secrets: BTreeMap::new(),
        images: Images::Pull,
        converge: ConvergeOptions::default(),
        retry: RetryPolicy {
            attempts: 2,
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(2),
        },
    };
    let mut reported = Vec::new();
    let error = run(&deployment, &Progress::hidden(), |r| {
        reported.push(r.host.clone())
    })
    .await
    .expect_err("no host is reachable");
    assert!(reported.is_empty(), "nothing ran: {reported:?}");
    assert!(error.done.is_empty());
    let hosts: Vec<&str> = error.failures.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(hosts, ["redis", "web1"]);
    for (host, failure) in &error.failures {
        match failure {
            ExecError::SshConnect {
                host: named,
                attempts,
                last_error,
                ..
            } => {
                assert_eq!(named, host);
                assert_eq!(*attempts, 2);
                assert!(
                    last_error.contains("refused"),
                    "SSH's own error is kept: {last_error}"
                );
            }
            other => panic!("expected an SSH connect error for {host}, got {other}"),
        }
    }
    let text = error.to_string();
    assert!(text.starts_with("deploy failed on redis, web1:"), "{text}");
    assert!(text.contains("run the command again to finish"), "{text}");
}
