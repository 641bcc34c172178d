//! Pull mode against real registries on this machine and a real VM (sshd + its own dockerd):
//! an image pushed once by the local engine and pulled by the host, through a registry with
//! TLS from a private CA and basic auth, and through an insecure (plain HTTP) one that the
//! host's engine learns to trust by a reload of its daemon.json (other settings kept,
//! dockerd not restarted). A wrong password fails the push with the registry's own answer.

mod common;

use std::process::Command;

use provisioner::exec::docker;
use provisioner::exec::images::{self, PullSource, ShipOutcome};
use provisioner::exec::progress::Progress;
use provisioner::exec::ssh::{generate_key, RetryPolicy, SshTarget};
use provisioner::spec::Registry;
use rand::Rng;

use common::registry::{Options, TestRegistry};
use common::vm::{docker_cli, TestCluster};

/// Random bytes in the test image: its one layer compresses to about this size, so what a
/// host downloads can be checked.
const NOISE_BYTES: usize = 1_000_000;

/// A small image of its own (a file and `NOISE_BYTES` of noise, from `docker import`), so
/// the test does not depend on what other tests built.
fn tiny_image(tag: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("hello.txt"), tag).expect("a file");
    let noise: Vec<u8> = (0..NOISE_BYTES).map(|_| rand::rng().random()).collect();
    std::fs::write(dir.path().join("noise.bin"), noise).expect("the noise");
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"tar -C "$1" -cf - hello.txt noise.bin | docker import - "$2" >/dev/null"#)
        .args(["sh", dir.path().to_str().expect("utf-8"), tag])
        .status()
        .expect("tar | docker import");
    assert!(status.success());
    let out = docker_cli(&["image", "inspect", "-f", "{{.Id}}", tag]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The host pulled image `id`, downloading its one layer: the noise, compressed.
fn assert_pulled(fetched: &ShipOutcome, id: &str) {
    match fetched {
        ShipOutcome::Pulled {
            id: pulled,
            downloaded,
        } => {
            assert_eq!(pulled, id);
            let noise = NOISE_BYTES as u64;
            assert!(
                (noise..noise + 100_000).contains(downloaded),
                "downloaded {downloaded} bytes for a layer of {noise} random bytes"
            );
        }
        other => panic!("expected a pull, got {other:?}"),
    }
}

fn vm_docker(container: &str, args: &[&str]) -> String {
    let out = docker_cli(&[&["exec", container], args].concat());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_pulls_what_this_machine_pushed_over_tls_with_auth_and_over_plain_http() {
    let progress = Progress::hidden();
    let bar = progress.host("local");
    let local = docker::connect_local().await.expect("local docker engine");
    images::ensure_vm_image(&local, &common::repo_root().join("templates"), &bar)
        .await
        .expect("VM image");
    let tag = format!("clusterlab/pulltest:{:08x}", rand::rng().random::<u32>());
    let id = tiny_image(&tag);

    let keys = tempfile::tempdir().expect("temp dir");
    let key_path = keys.path().join("id_ed25519");
    let public_key = generate_key(&key_path, "clusterlab-test")
        .await
        .expect("ssh-keygen");
    let mut cluster = TestCluster::create("clpull");
    let gateway = format!("10.99.{}.1", cluster.subnet());
    let target = SshTarget {
        host: "web1".into(),
        address: cluster.start_vm("web1", 0, "deployer", &public_key),
        port: 22,
        user: "deployer".into(),
        key_path,
        known_hosts: keys.path().join("known_hosts"),
    };
    let vm = format!("{}-web1", cluster.name);
    let host = docker::connect(&target, &RetryPolicy::default())
        .await
        .expect("connect to the VM");
    let web1 = progress.host("web1");

    // TLS with a private CA, and a user: the host learns the CA, pulls with the credentials.
    let secure = TestRegistry::start(Options {
        tls_for: Some(&[gateway.as_str()]),
        user: Some(("clusterlab", "pa$$ 'word\"")),
    });
    let ca = std::fs::read(secure.ca_file.as_ref().expect("a CA")).expect("read the CA");
    let registry = Registry {
        address: format!("{gateway}:{}", secure.port),
        push_address: Some(format!("localhost:{}", secure.port)),
        insecure: false,
        ca_file: secure.ca_file.clone(),
        username: Some("clusterlab".into()),
        password: None,
    };

    // The wrong password: the push fails, and says what the registry said.
    let refused = PullSource::publish(
        &local,
        registry.clone(),
        Some(ca.clone()),
        Some("wrong".into()),
        std::slice::from_ref(&tag),
        &bar,
    )
    .await
    .err()
    .expect("a wrong password is refused");
    let text = refused.to_string();
    assert!(
        text.contains("unauthorized") || text.contains("authentication required"),
        "{text}"
    );

    let password = secure.credentials.as_ref().expect("credentials").1.clone();
    let source = PullSource::publish(
        &local,
        registry.clone(),
        Some(ca),
        Some(password),
        std::slice::from_ref(&tag),
        &bar,
    )
    .await
    .unwrap_or_else(|e| panic!("push to the TLS registry: {e}\n{}", secure.log()));
    assert_eq!(secure.repositories(), ["clusterlab/pulltest"]);
    let pushed_name = format!("localhost:{}/clusterlab/pulltest", secure.port);
    assert!(
        !docker_cli(&["image", "inspect", &pushed_name])
            .status
            .success(),
        "the push name is removed again locally"
    );

    source
        .trust(&host.session, &host.docker, &web1)
        .await
        .expect("trust the CA");
    let ca_path = format!("/etc/docker/certs.d/{}/ca.crt", registry.address);
    assert!(
        vm_docker(&vm, &["cat", &ca_path]).contains("BEGIN CERTIFICATE"),
        "the CA is installed for the registry's address"
    );
    let fetched = source
        .fetch(&host.docker, "web1", &tag, &web1)
        .await
        .unwrap_or_else(|e| panic!("pull from the TLS registry: {e}\n{}", secure.log()));
    assert_pulled(&fetched, &id);
    assert_eq!(
        vm_docker(&vm, &["docker", "image", "inspect", "-f", "{{.Id}}", &tag]),
        id
    );
    assert!(
        vm_docker(&vm, &["docker", "images", "--format", "{{.Repository}}"])
            .lines()
            .all(|repo| !repo.contains(&gateway)),
        "the host keeps only the image's own name"
    );
    let again = source
        .fetch(&host.docker, "web1", &tag, &web1)
        .await
        .expect("fetch again");
    assert_eq!(again, ShipOutcome::AlreadyPresent { id: id.clone() });

    // Plain HTTP: the host's daemon.json gains the address (its own settings stay), dockerd
    // reloads it without a restart, and the pull works.
    let plain = TestRegistry::start(Options {
        tls_for: None,
        user: None,
    });
    let write = docker_cli(&[
        "exec",
        &vm,
        "sh",
        "-c",
        r#"printf '{"log-level": "warn"}\n' >/etc/docker/daemon.json"#,
    ]);
    assert!(write.status.success());
    let dockerd_pid = vm_docker(&vm, &["cat", "/var/run/docker.pid"]);
    let insecure = Registry {
        address: format!("{gateway}:{}", plain.port),
        push_address: Some(format!("127.0.0.1:{}", plain.port)),
        insecure: true,
        ca_file: None,
        username: None,
        password: None,
    };
    let source = PullSource::publish(
        &local,
        insecure.clone(),
        None,
        None,
        std::slice::from_ref(&tag),
        &bar,
    )
    .await
    .unwrap_or_else(|e| panic!("push to the plain registry: {e}\n{}", plain.log()));
    docker_cli(&["exec", &vm, "docker", "rmi", &tag]);
    source
        .trust(&host.session, &host.docker, &web1)
        .await
        .expect("trust the insecure registry");
    let config: serde_json::Value =
        serde_json::from_str(&vm_docker(&vm, &["cat", "/etc/docker/daemon.json"]))
            .expect("daemon.json stays JSON");
    assert_eq!(config["log-level"], "warn", "{config}");
    assert_eq!(
        config["insecure-registries"],
        serde_json::json!([insecure.address]),
        "{config}"
    );
    assert_eq!(
        vm_docker(&vm, &["cat", "/var/run/docker.pid"]),
        dockerd_pid,
        "dockerd reloaded, not restarted"
    );
    let fetched = source
        .fetch(&host.docker, "web1", &tag, &web1)
        .await
        .unwrap_or_else(|e| panic!("pull over plain HTTP: {e}\n{}", plain.log()));
    assert_pulled(&fetched, &id);
    // Trusting again changes nothing.
    let before = vm_docker(&vm, &["cat", "/etc/docker/daemon.json"]);
    source
        .trust(&host.session, &host.docker, &web1)
        .await
        .expect("trust again");
    assert_eq!(vm_docker(&vm, &["cat", "/etc/docker/daemon.json"]), before);

    let _ = host.session.close().await;
    docker_cli(&["rmi", &tag]);
}
