//! The exec layer against real hosts: clusterlab VM containers (sshd + their own dockerd)
//! on a Docker network of this test's own, reached over SSH with a generated key, driven
//! with bollard through the forwarded docker.sock. Everything the tests create carries a
//! random name and is removed by a guard, even when an assertion fails.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use provisioner::exec::converge::{self, Action, ConvergeOptions};
use provisioner::exec::docker;
use provisioner::exec::images::{self, BuildOutcome, ShipOutcome, Via};
use provisioner::exec::progress::Progress;
use provisioner::exec::ssh::{generate_key, HostSession, RetryPolicy, SshTarget, UploadOutcome};
use provisioner::exec::ExecError;
use provisioner::plan::services::{Healthcheck, Mount, ServiceSpec};
use rand::Rng;

mod common;

use common::vm::{docker_cli, TestCluster};

fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|w| (*w).to_owned()).collect()
}

fn service(name: &str) -> ServiceSpec {
    ServiceSpec::new(name, "clusterlab/redis:7")
}

fn every(seconds: u64, timeout: u64, retries: u32, test: &[&str]) -> Option<Healthcheck> {
    Some(Healthcheck {
        test: words(test),
        interval: Duration::from_secs(seconds),
        timeout: Duration::from_secs(timeout),
        retries,
        start_period: Duration::ZERO,
    })
}

/// Redis with a password from the secrets (a secret file, as the plan gives it: the
/// image's entrypoint makes it an ACL file), plus a small service whose health depends
/// on its MODE variable (so a bad deploy can be staged by changing one value).
fn services_v(version: &str, mode: &str) -> Vec<ServiceSpec> {
    let mut ping = vec!["CMD".to_owned()];
    ping.extend(
        provisioner::plan::redis_cli(&["-p", "6390", "ping"])
            .into_iter()
            .map(|w| w.replace('$', "$$")),
    );
    vec![
        ServiceSpec {
            command: Some(words(&["redis-server", "--port", "6390", "--save", ""])),
            volumes: vec![Mount {
                source: "redis-data".into(),
                target: "/data".into(),
                read_only: false,
            }],
            environment: [(
                "REDIS_PASSWORD_FILE".to_owned(),
                "/run/secrets/CLUSTERLAB_REDIS_PASSWORD".to_owned(),
            )]
            .into(),
            secrets: [(
                "CLUSTERLAB_REDIS_PASSWORD".to_owned(),
                "${CLUSTERLAB_REDIS_PASSWORD}".to_owned(),
            )]
            .into(),
            healthcheck: Some(Healthcheck {
                test: ping,
                ..every(1, 2, 3, &[]).expect("check")
            }),
            ..service("redis")
        },
        ServiceSpec {
            // The redis image holds no `sleep`: a second redis-server is the long-running
            // process whose health only MODE decides.
            command: Some(words(&["redis-server", "--port", "6391", "--save", ""])),
            environment: [
                ("VERSION".to_owned(), version.to_owned()),
                ("MODE".to_owned(), mode.to_owned()),
            ]
            .into(),
            labels: [("clusterlab.role".to_owned(), "probe".to_owned())].into(),
            healthcheck: every(1, 2, 2, &["CMD-SHELL", "test \"$$MODE\" = ok"]),
            ..service("probe")
        },
    ]
}

fn lb_services() -> Vec<ServiceSpec> {
    vec![ServiceSpec {
        image: "clusterlab/nginx:1".into(),
        volumes: vec![Mount {
            source: "/etc/clusterlab/nginx.conf".into(),
            target: "/etc/nginx/nginx.conf".into(),
            read_only: true,
        }],
        // The nginx image holds nginx alone: the plan's health check, not an HTTP client.
        healthcheck: every(1, 2, 5, &["CMD", "nginx", "-t", "-q"]),
        ..service("nginx")
    }]
}

/// clusterlab/postgres:15 must honour POSTGRES_USER/PASSWORD/DB like the official image
/// (password auth over TCP, the named database owned by that user).
fn postgres_image_honours_its_environment() {
    let name = format!("cltest-pg-{:06x}", rand::rng().random_range(0..0xffffff));
    let out = docker_cli(&[
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        "POSTGRES_USER=shortener",
        "-e",
        "POSTGRES_PASSWORD=pg secret",
        "-e",
        "POSTGRES_DB=links",
        "clusterlab/postgres:15",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let query = || {
        docker_cli(&[
            "exec", "-e", "PGPASSWORD=pg secret", &name, "psql", "-h", "127.0.0.1", "-U",
            "shortener", "-d", "links", "-Atc",
            "select current_user || ' ' || current_database() || ' ' || pg_get_userbyid(datdba) from pg_database where datname = 'links'",
        ])
    };
    let mut answer = query();
    for _ in 0..60 {
        if answer.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        answer = query();
    }
    let wrong_password = docker_cli(&[
        "exec",
        "-e",
        "PGPASSWORD=wrong",
        &name,
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "shortener",
        "-d",
        "links",
        "-c",
        "select 1",
    ]);
    docker_cli(&["rm", "-f", "-v", &name]);
    assert_eq!(
        String::from_utf8_lossy(&answer.stdout).trim(),
        "shortener links shortener",
        "{}",
        String::from_utf8_lossy(&answer.stderr)
    );
    assert!(
        !wrong_password.status.success(),
        "a wrong password must be refused"
    );
}

fn env_of(container: &str, vm: &str) -> Vec<String> {
    let out = docker_cli(&[
        "exec",
        vm,
        "docker",
        "inspect",
        "-f",
        "{{json .Config.Env}}",
        container,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("env json")
}

fn known_host_recorded(file: &Path, address: &str) -> bool {
    Command::new("ssh-keygen")
        .args(["-F", address, "-f"])
        .arg(file)
        .output()
        .map(|out| out.status.success() && !out.stdout.is_empty())
        .unwrap_or(false)
}

fn container_names(vm: &str) -> Vec<String> {
    let out = docker_cli(&[
        "exec",
        vm,
        "docker",
        "ps",
        "-a",
        "--format",
        "{{.Names}} {{.State}}",
    ]);
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vms_ship_images_and_converge_services() {
    let progress = Progress::hidden();
    let local_bar = progress.host("local");
    let local = docker::connect_local().await.expect("local docker engine");

    // The VM image and the service images, built (or found up to date by content hash).
    let templates = common::repo_root().join("templates");
    images::ensure_vm_image(&local, &templates, &local_bar)
        .await
        .expect("build VM image");
    let again = images::ensure_vm_image(&local, &templates, &local_bar)
        .await
        .expect("VM image again");
    assert!(matches!(again, BuildOutcome::UpToDate { .. }), "{again:?}");
    let built = images::ensure_service_images(&local, &templates, &local_bar)
        .await
        .expect("build service images");
    let redis_id = built
        .iter()
        .find(|(tag, _)| *tag == "clusterlab/redis:7")
        .map(|(_, outcome)| outcome.id().to_owned())
        .expect("redis image");
    postgres_image_honours_its_environment();

    let keys = tempfile::tempdir().expect("temp dir");
    let key_path = keys.path().join("id_ed25519");
    let public_key = generate_key(&key_path, "clusterlab-test")
        .await
        .expect("ssh-keygen");
    let known_hosts = keys.path().join("known_hosts");

    let mut cluster = TestCluster::create("cltest");
    let user = "deployer";
    let targets: Vec<SshTarget> = ["vm1", "vm2"]
        .iter()
        .enumerate()
        .map(|(i, host)| SshTarget {
            host: host.to_string(),
            address: cluster.start_vm(host, i as u8, user, &public_key),
            port: 22,
            user: user.into(),
            key_path: key_path.clone(),
            known_hosts: known_hosts.clone(),
        })
        .collect();
    let vm1_container = format!("{}-vm1", cluster.name);

    // Both hosts are still booting: connect retries until sshd answers.
    let retry = RetryPolicy::default();
    let (h1, h2) = tokio::join!(
        docker::connect(&targets[0], &retry),
        docker::connect(&targets[1], &retry)
    );
    let (h1, h2) = (h1.expect("connect vm1"), h2.expect("connect vm2"));
    let (s1, d1, s2, d2) = (h1.session, h1.docker, h2.session, h2.docker);
    // ssh may hash the names (Debian's default), so ask ssh-keygen rather than grep.
    for target in &targets {
        assert!(
            known_host_recorded(&known_hosts, &target.address),
            "{} not recorded",
            target.address
        );
    }

    // Ship the redis image to both hosts in parallel; the second round finds it there.
    let (b1, b2) = (progress.host("vm1"), progress.host("vm2"));
    let ship_started = std::time::Instant::now();
    let (r1, r2) = tokio::join!(
        images::ship(&local, &d1, &s1, "clusterlab/redis:7", &b1),
        images::ship(&local, &d2, &s2, "clusterlab/redis:7", &b2)
    );
    let ship_elapsed = ship_started.elapsed();
    for shipped in [r1.expect("ship vm1"), r2.expect("ship vm2")] {
        match shipped {
            ShipOutcome::Shipped { id, bytes, via } => {
                assert_eq!(id, redis_id);
                assert_eq!(via, Via::Registry, "the VM image carries docker-registry");
                assert!(
                    bytes > 3_000_000,
                    "the first push sends every layer, got {bytes} bytes"
                );
                eprintln!(
                    "shipped {} MB to each of 2 hosts in parallel in {:.1?} ({:.0} MB/s total)",
                    bytes / 1_000_000,
                    ship_elapsed,
                    2.0 * bytes as f64 / 1e6 / ship_elapsed.as_secs_f64()
                );
            }
            other => panic!("first ship should ship, got {other:?}"),
        }
    }
    let second = images::ship(&local, &d2, &s2, "clusterlab/redis:7", &b2)
        .await
        .expect("ship again");
    assert_eq!(
        second,
        ShipOutcome::AlreadyPresent {
            id: redis_id.clone()
        }
    );
    // The host's registry kept the layers: an image the engine lost travels as a manifest.
    d2.remove_image(
        "clusterlab/redis:7",
        None::<bollard::query_parameters::RemoveImageOptions>,
        None,
    )
    .await
    .expect("remove the image on vm2");
    match images::ship(&local, &d2, &s2, "clusterlab/redis:7", &b2)
        .await
        .expect("ship once more")
    {
        ShipOutcome::Shipped { id, bytes, via } => {
            assert_eq!((id.as_str(), via), (redis_id.as_str(), Via::Registry));
            assert!(
                bytes < 200_000,
                "only missing layers travel, and none are: {bytes} bytes sent"
            );
            eprintln!(
                "re-shipping an image whose layers the host's registry holds sent {bytes} bytes"
            );
        }
        other => panic!("the lost image should be shipped again, got {other:?}"),
    }
    // A registry-less host still gets its images, exported whole.
    s2.run(
        "sudo",
        &[
            "-n",
            "mv",
            "/usr/bin/docker-registry",
            "/usr/bin/docker-registry.off",
        ],
    )
    .await
    .expect("hide docker-registry");
    d2.remove_image(
        "clusterlab/redis:7",
        None::<bollard::query_parameters::RemoveImageOptions>,
        None,
    )
    .await
    .expect("remove the image on vm2 again");
    let exported = images::ship(&local, &d2, &s2, "clusterlab/redis:7", &b2)
        .await
        .expect("ship by export");
    s2.run(
        "sudo",
        &[
            "-n",
            "mv",
            "/usr/bin/docker-registry.off",
            "/usr/bin/docker-registry",
        ],
    )
    .await
    .expect("restore docker-registry");
    assert!(
        matches!(exported, ShipOutcome::Shipped { via: Via::Export, bytes, .. } if bytes > 10_000_000),
        "{exported:?}"
    );

    // Converge: create, then nothing, then a changed env replaces only that service.
    let options = ConvergeOptions {
        health_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(300),
        stop_timeout_secs: 2,
        defer_replace: false,
    };
    let secret = secrets(&[("CLUSTERLAB_REDIS_PASSWORD", "pw-Ünïcode 'quoted'")]);
    let file = services_v("1", "ok");
    let actions = |reports: Vec<converge::ServiceReport>| {
        reports
            .into_iter()
            .map(|r| (r.service, r.action))
            .collect::<Vec<_>>()
    };
    let first = converge::converge(&d1, "vm1", &file, &secret, &options, &b1)
        .await
        .expect("converge");
    let created: Vec<&converge::ServiceReport> = first.iter().collect();
    converge::await_docker_health(&d1, "vm1", &created, &options, &b1)
        .await
        .expect("Docker calls them healthy");
    assert_eq!(
        actions(first),
        vec![
            ("redis".into(), Action::Created),
            ("probe".into(), Action::Created)
        ]
    );
    let pong = converge::exec_in(
        &d1,
        "vm1",
        "redis",
        &[
            "redis-cli",
            "-p",
            "6390",
            "-a",
            "pw-Ünïcode 'quoted'",
            "--no-auth-warning",
            "ping",
        ],
    )
    .await
    .expect("redis-cli");
    assert_eq!(pong.trim(), "PONG");
    let denied = converge::exec_in(&d1, "vm1", "redis", &["redis-cli", "-p", "6390", "ping"])
        .await
        .expect("redis-cli without password");
    assert!(
        denied.contains("NOAUTH"),
        "the secret must have become the password: {denied}"
    );
    // It travelled as a file: no `docker inspect` field holds it, and the server runs as
    // redis, not root.
    let inspected = docker_cli(&["exec", &vm1_container, "docker", "inspect", "redis"]);
    let inspected = String::from_utf8_lossy(&inspected.stdout);
    assert!(inspected.contains("REDIS_PASSWORD_FILE"), "{inspected}");
    assert!(
        !inspected.contains("Ünïcode"),
        "the password shows: {inspected}"
    );
    // PID 1 of the container is redis-server itself (the entrypoint execs it).
    let status = converge::exec_in(&d1, "vm1", "redis", &["cat", "/proc/1/status"])
        .await
        .expect("status of PID 1");
    assert!(
        common::pid1_is_unprivileged(&status, "redis-server"),
        "{status}"
    );

    let unchanged = converge::converge(&d1, "vm1", &file, &secret, &options, &b1)
        .await
        .expect("again");
    assert_eq!(
        actions(unchanged),
        vec![
            ("redis".into(), Action::Unchanged),
            ("probe".into(), Action::Unchanged)
        ]
    );

    let listed = converge::status(&d1, "vm1").await.expect("status");
    let summary: Vec<(&str, &str, &str, bool)> = listed
        .iter()
        .map(|s| {
            (
                s.service.as_str(),
                s.container.as_str(),
                s.state.as_str(),
                s.status.contains("(healthy)"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("probe", "probe", "running", true),
            ("redis", "redis", "running", true)
        ],
        "{listed:?}"
    );

    let v2 = services_v("2", "ok");
    let replaced = converge::converge(&d1, "vm1", &v2, &secret, &options, &b1)
        .await
        .expect("v2");
    assert_eq!(
        actions(replaced),
        vec![
            ("redis".into(), Action::Unchanged),
            ("probe".into(), Action::Replaced)
        ]
    );
    assert!(env_of("probe", &vm1_container).contains(&"VERSION=2".to_owned()));
    assert_eq!(
        container_names(&vm1_container),
        vec!["probe running", "redis running"]
    );

    // A version that never gets healthy is rolled back: the old container runs again.
    let broken = services_v("3", "broken");
    let error = converge::converge(&d1, "vm1", &broken, &secret, &options, &b1)
        .await
        .unwrap_err();
    match &error {
        ExecError::RolledBack {
            host, service, log, ..
        } => {
            assert_eq!((host.as_str(), service.as_str()), ("vm1", "probe"));
            assert!(
                log.contains("exit 1"),
                "health log should show the failing checks: {log}"
            );
        }
        other => panic!("expected a rollback, got {other}"),
    }
    assert!(env_of("probe", &vm1_container).contains(&"VERSION=2".to_owned()));
    assert_eq!(
        container_names(&vm1_container),
        vec!["probe running", "redis running"]
    );

    // A missing secret fails before anything changes, naming the variable.
    let error = converge::converge(&d1, "vm1", &v2, &BTreeMap::new(), &options, &b1)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("vm1") && error.contains("${CLUSTERLAB_REDIS_PASSWORD}"),
        "{error}"
    );

    // Converge moves on when a new container passes its check run in it by converge, not an
    // interval later when Docker first runs it; Docker's own verdict is awaited after.
    let slow = vec![ServiceSpec {
        command: Some(words(&["redis-server", "--port", "6392", "--save", ""])),
        healthcheck: every(8, 2, 3, &["CMD", "redis-cli", "-p", "6392", "ping"]),
        ..service("slowcheck")
    }];
    let started = std::time::Instant::now();
    let created = converge::converge(&d1, "vm1", &slow, &BTreeMap::new(), &options, &b1)
        .await
        .expect("converge slowcheck");
    let ready_after = started.elapsed();
    assert_eq!(
        actions(created.clone()),
        vec![("slowcheck".into(), Action::Created)]
    );
    assert!(
        ready_after < Duration::from_secs(6),
        "ready at its own first check, not Docker's 8 s after the start: {ready_after:?}"
    );
    let created: Vec<&converge::ServiceReport> = created.iter().collect();
    converge::await_docker_health(&d1, "vm1", &created, &options, &b1)
        .await
        .expect("Docker calls slowcheck healthy");
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "Docker's verdict comes with its first check, 8 s after the start: {:?}",
        started.elapsed()
    );
    let listed = converge::status(&d1, "vm1").await.expect("status");
    let slowcheck = listed
        .iter()
        .find(|s| s.service == "slowcheck")
        .expect("slowcheck listed");
    assert!(slowcheck.status.contains("(healthy)"), "{slowcheck:?}");
    assert!(
        docker_cli(&["exec", &vm1_container, "docker", "rm", "-f", "slowcheck"])
            .status
            .success()
    );

    // Uploads report whether the file changed, so the caller knows to reload.
    let path = "/etc/clusterlab/nginx.conf";
    assert_eq!(
        s1.upload(path, b"events {}\n").await.expect("upload"),
        UploadOutcome::Written
    );
    assert_eq!(
        s1.upload(path, b"events {}\n").await.expect("upload"),
        UploadOutcome::Unchanged
    );
    assert_eq!(
        s1.upload(path, b"events { }\n").await.expect("upload"),
        UploadOutcome::Written
    );
    assert_eq!(
        s1.run("sudo", &["-n", "cat", path]).await.expect("cat"),
        "events { }\n"
    );

    // known_hosts is strict after first contact: a different key for vm1 is refused at
    // once (no retries), naming the host.
    s1.close().await.expect("close vm1");
    let removed = Command::new("ssh-keygen")
        .args(["-R", &targets[0].address, "-f"])
        .arg(&known_hosts)
        .output()
        .expect("ssh-keygen -R");
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let mut forged = std::fs::read_to_string(&known_hosts).expect("read known_hosts");
    forged.push_str(&format!("{} {}\n", targets[0].address, public_key));
    std::fs::write(&known_hosts, forged).expect("forge known_hosts");
    let error = HostSession::connect(&targets[0], &retry).await.unwrap_err();
    match &error {
        ExecError::SshConnect {
            host,
            attempts,
            last_error,
            ..
        } => {
            assert_eq!(host, "vm1");
            assert_eq!(
                *attempts, 1,
                "a changed host key must not be retried: {last_error}"
            );
        }
        other => panic!("expected an SSH connect error, got {other}"),
    }
    // The load balancer's path on vm2: upload nginx.conf, run nginx with it mounted (on
    // port 80, as www-data: the shipped image keeps the binary's file capability), then a
    // changed config is uploaded and picked up by a reload.
    let nginx_shipped = images::ship(&local, &d2, &s2, "clusterlab/nginx:1", &b2)
        .await
        .expect("ship nginx");
    assert!(
        matches!(nginx_shipped, ShipOutcome::Shipped { .. }),
        "{nginx_shipped:?}"
    );
    let conf = |body: &str| {
        format!(
            "events {{}}\nhttp {{\n  server {{\n    listen 127.0.0.1:80;\n    location / {{ return 200 \"{body}\\n\"; }}\n  }}\n}}\n"
        )
    };
    assert_eq!(
        s2.upload(path, conf("v1").as_bytes())
            .await
            .expect("upload"),
        UploadOutcome::Written
    );
    let lb = lb_services();
    let created = converge::converge(&d2, "vm2", &lb, &BTreeMap::new(), &options, &b2)
        .await
        .expect("converge nginx");
    assert_eq!(actions(created), vec![("nginx".into(), Action::Created)]);
    // nginx runs on the VM's network: the VM's own curl asks it, over SSH.
    let fetch = || s2.run("curl", &["-fsS", "http://127.0.0.1:80/"]);
    assert_eq!(fetch().await.expect("curl v1"), "v1\n");
    // The image has no `cat`: the master's status is read from the VM's /proc.
    let master = s2
        .run(
            "sh",
            &[
                "-c",
                "cat /proc/$(docker inspect -f {{.State.Pid}} nginx)/status",
            ],
        )
        .await
        .expect("status of nginx's master");
    assert!(common::pid1_is_unprivileged(&master, "nginx"), "{master}");
    assert_eq!(
        s2.upload(path, conf("v2").as_bytes())
            .await
            .expect("upload"),
        UploadOutcome::Written
    );
    converge::exec_in(&d2, "vm2", "nginx", &["nginx", "-s", "reload"])
        .await
        .expect("reload");
    let mut answer = String::new();
    for _ in 0..50 {
        answer = fetch().await.expect("curl after reload");
        if answer == "v2\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, "v2\n");
    s2.close().await.expect("close vm2");
    drop(cluster);
}

#[tokio::test]
async fn unreachable_host_fails_with_its_name_and_the_ssh_error() {
    // A port that was just free on loopback: connection refused, quickly and locally.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let keys = tempfile::tempdir().expect("temp dir");
    let key_path = keys.path().join("id");
    generate_key(&key_path, "unreachable")
        .await
        .expect("ssh-keygen");
    let target = SshTarget {
        host: "web7".into(),
        address: "127.0.0.1".into(),
        port,
        user: "nobody".into(),
        key_path,
        known_hosts: keys.path().join("known_hosts"),
    };
    let retry = RetryPolicy {
        attempts: 3,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(2),
    };
    let error = HostSession::connect(&target, &retry).await.unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("web7: ssh connect to 127.0.0.1"), "{text}");
    assert!(text.contains("3 attempt(s)"), "{text}");
    assert!(
        text.contains("Connection refused"),
        "ssh's own error should be in: {text}"
    );
}

#[tokio::test]
async fn webapp_image_from_a_host_built_binary() {
    let local = docker::connect_local().await.expect("local docker engine");
    let bar = Progress::hidden().host("local");
    let work = tempfile::tempdir().expect("temp dir");
    // Any small binary stands in for the web app; `echo` proves the entrypoint is it.
    let binary = work.path().join("webapp");
    std::fs::copy("/bin/echo", &binary).expect("copy binary");

    let tag = format!("clusterlab/webapp-test:{:08x}", rand::rng().random::<u32>());
    let context =
        images::webapp_context(&common::repo_root().join("templates"), &binary).expect("context");
    let built = images::ensure_built(&local, &tag, &context, &bar)
        .await
        .expect("build");
    assert!(matches!(built, BuildOutcome::Built { .. }), "{built:?}");
    let again = images::ensure_built(&local, &tag, &context, &bar)
        .await
        .expect("again");
    assert_eq!(
        again,
        BuildOutcome::UpToDate {
            id: built.id().to_owned()
        }
    );

    // The image holds no shell: each check runs one of its programs directly.
    let run = |args: &[&str]| {
        let out = docker_cli(&[&["run", "--rm", "--entrypoint"], args].concat());
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let hello = run(&["/usr/local/bin/webapp", &tag, "hello"]);
    let curl = run(&["curl", &tag, "--version"]);
    let user = docker_cli(&["image", "inspect", "-f", "{{.Config.User}}", &tag]);

    // A code change (another binary) rebuilds only the layer that carries the binary: the
    // runtime tree stays byte-identical, so shipping them again costs
    // nothing (only missing layers travel, see the registry tests).
    let layers = |tag: &str| -> Vec<String> {
        let out = docker_cli(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", tag]);
        serde_json::from_slice(&out.stdout).expect("the image's layer list")
    };
    std::fs::copy("/bin/cat", &binary).expect("copy the changed binary");
    let changed =
        images::webapp_context(&common::repo_root().join("templates"), &binary).expect("context");
    let rebuilt = images::ensure_built(&local, &tag, &changed, &bar)
        .await
        .expect("rebuild");
    assert!(matches!(rebuilt, BuildOutcome::Built { .. }), "{rebuilt:?}");
    assert_ne!(rebuilt.id(), built.id());
    let before = layers(built.id());
    let after = layers(rebuilt.id());
    docker_cli(&["rmi", "-f", &tag, built.id()]);
    assert_eq!(before.len(), after.len(), "{before:?}\n{after:?}");
    let unchanged = before
        .iter()
        .zip(&after)
        .take_while(|(a, b)| a == b)
        .count();
    assert_eq!(
        before.len() - unchanged,
        1,
        "only the last layer (the binary's) may change:\nbefore {before:?}\nafter {after:?}"
    );
    assert_eq!(hello, "hello\n");
    assert!(curl.starts_with("curl "), "{curl}");
    // The app needs no root: the image's user is an unprivileged one, known to its passwd.
    assert_eq!(
        String::from_utf8_lossy(&user.stdout).trim(),
        "webapp:webapp"
    );
}

/// `up` builds the web app image's first steps (its packages) while cargo compiles; the
/// image's own build, once the binary exists, takes them from the engine's build cache.
#[tokio::test]
async fn webapp_steps_built_ahead_leave_only_the_binary_to_build() {
    let local = docker::connect_local().await.expect("local docker engine");
    let bar = Progress::hidden().host("local");
    let work = tempfile::tempdir().expect("temp dir");
    // The real Dockerfile with one step of this run's own after FROM, so no build before
    // this test can have left its steps in the cache.
    let probe = format!("{:08x}", rand::rng().random::<u32>());
    let dir = work.path().join("templates/images/webapp");
    std::fs::create_dir_all(&dir).expect("templates dir");
    let dockerfile =
        std::fs::read_to_string(common::repo_root().join("templates/images/webapp/Dockerfile"))
            .expect("the web app's Dockerfile");
    let from = "FROM debian:bookworm-slim AS build\n";
    assert!(dockerfile.contains(from), "{dockerfile}");
    let probed = dockerfile.replacen(from, &format!("{from}ENV CACHE_PROBE={probe}\n"), 1);
    std::fs::write(dir.join("Dockerfile"), probed).expect("write Dockerfile");
    let templates = work.path().join("templates");
    let binary = work.path().join("webapp");
    std::fs::copy("/bin/echo", &binary).expect("copy binary");

    let steps_tag = format!("clusterlab/webapp-steps-test:{probe}");
    let tag = format!("clusterlab/webapp-test:{probe}");
    let steps = images::ensure_built(
        &local,
        &steps_tag,
        &images::webapp_steps_context(&templates).expect("steps context"),
        &bar,
    )
    .await
    .expect("build the steps");
    let full = images::ensure_built(
        &local,
        &tag,
        &images::webapp_context(&templates, &binary).expect("context"),
        &bar,
    )
    .await
    .expect("build the image");
    docker_cli(&["rmi", "-f", &tag, &steps_tag]);
    // The probe and the two RUN steps (packages, runtime tree) ran once, for the steps.
    assert!(
        matches!(
            steps,
            BuildOutcome::Built {
                cached_steps: 0,
                ..
            }
        ),
        "{steps:?}"
    );
    let BuildOutcome::Built { cached_steps, .. } = full else {
        panic!("the image was not built: {full:?}");
    };
    assert!(cached_steps >= 3, "{full:?}");
}
