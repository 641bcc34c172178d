//! Versions, pruning and rollback on real hosts: three clusterlab VM containers (sshd +
//! dockerd): `lb`, where the deploy lock and the audit log live, and `web1`, `web2`, driven
//! by the real `provisioner` binary. Three deploys (A, B, C) with `app.retain: 2` prune A;
//! `versions` lists what each host keeps; `rollback` puts B back, its containers replaced and
//! healthy; `deploy --version` of the pruned A, and a rollback to a version one host lost, are
//! refused naming the hosts and change nothing.
//!
//! The web app is a stand-in, so no release build of it is needed: a few lines of Rust
//! compiled here with rustc that answer every HTTP request (the image's healthcheck asks
//! `/readyz`) with their version's letter. `deploy` still builds the real web image around
//! it: `CARGO` names a script that builds nothing and `CARGO_TARGET_DIR` the directory where
//! the stand-in is `release/webapp`, exactly where `deploy` looks for the binary.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::time::Duration;

use provisioner::exec::images;
use provisioner::exec::progress::Progress;
use provisioner::exec::ssh::{generate_key, RetryPolicy, SshTarget};
use provisioner::plan::WEB_PORT;

mod common;

use common::vm::{docker_cli, TestCluster};

/// The stand-in web app: one answer, its version's letter, to any request.
const STAND_IN: &str = r#"
use std::io::{Read, Write};
fn main() {
    let port = std::env::var("ROCKET_PORT").unwrap_or_else(|_| "8000".into());
    let listener = std::net::TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let body = VERSION;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
"#;

/// The web image this test builds locally, removed with every image it named.
struct LocalImages {
    name: String,
    ids: Mutex<Vec<String>>,
}

impl Drop for LocalImages {
    fn drop(&mut self) {
        let mut args = vec!["rmi".to_owned(), "-f".to_owned(), self.name.clone()];
        args.extend(self.ids.lock().map(|ids| ids.clone()).unwrap_or_default());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_cli(&args);
    }
}

struct Setup {
    /// Removes the VMs when dropped.
    cluster: TestCluster,
    dir: tempfile::TempDir,
    spec: PathBuf,
    image: LocalImages,
    web_ips: [String; 2],
}

async fn setup() -> Setup {
    let local = provisioner::exec::docker::connect_local()
        .await
        .expect("local docker engine");
    images::ensure_vm_image(
        &local,
        &common::repo_root().join("templates"),
        &Progress::hidden().host("local"),
    )
    .await
    .expect("build the VM image");
    let dir = tempfile::tempdir().expect("temp dir");
    let key_dir = dir.path().join(".clusterlab");
    std::fs::create_dir_all(key_dir.join("secrets")).expect("key dir");
    let public_key = generate_key(&key_dir.join("id_ed25519"), "clusterlab-test")
        .await
        .expect("ssh-keygen");
    for name in ["redis_password", "postgres_password"] {
        std::fs::write(key_dir.join("secrets").join(name), "test-secret\n").expect("secret");
    }
    let mut cluster = TestCluster::create("clrb");
    // The spec's ssh.user; addresses .10, .11, .12 as the spec has them.
    let lb = cluster.start_vm("lb", 0, "clusterlab", &public_key);
    let web_ips = [
        cluster.start_vm("web1", 1, "clusterlab", &public_key),
        cluster.start_vm("web2", 2, "clusterlab", &public_key),
    ];
    // Booted (sshd and dockerd answer) before the binary, whose retries are short, sees them.
    let booting = [&lb, &web_ips[0], &web_ips[1]].map(|address| {
        let target = SshTarget {
            host: address.clone(),
            address: address.clone(),
            port: 22,
            user: "clusterlab".into(),
            key_path: key_dir.join("id_ed25519"),
            known_hosts: dir.path().join("known_hosts-boot"),
        };
        async move {
            let connected = provisioner::exec::docker::connect(&target, &RetryPolicy::default())
                .await
                .unwrap_or_else(|e| panic!("{address} does not boot: {e}"));
            let _ = connected.session.close().await;
        }
    });
    futures_util::future::join_all(booting).await;
    let image = format!("clusterlab/webapp-{}:latest", cluster.name);
    // The repository's cluster.yaml on the test's network: only lb, web1 and web2 exist (a
    // deploy touches no other host); two versions kept; a short settle between web hosts.
    let edits = [
        ("10.77.0.", format!("10.99.{}.", cluster.subnet())),
        ("name: clusterlab", format!("name: {}", cluster.name)),
        (
            "webapp: clusterlab/webapp:latest",
            format!("webapp: {image}"),
        ),
        ("retain: 3", "retain: 2".to_owned()),
        ("fail_timeout_s: 10", "fail_timeout_s: 1".to_owned()),
    ];
    let mut spec = std::fs::read_to_string(common::repo_root().join("cluster.yaml"))
        .expect("the repository's cluster.yaml");
    for (from, to) in &edits {
        assert!(spec.contains(from), "cluster.yaml has no {from:?}");
        spec = spec.replace(from, to);
    }
    let path = dir.path().join("cluster.yaml");
    std::fs::write(&path, spec).expect("write the spec");
    std::fs::write(dir.path().join("cargo"), "#!/bin/sh\nexit 0\n").expect("fake cargo");
    std::fs::set_permissions(
        dir.path().join("cargo"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    Setup {
        cluster,
        spec: path,
        dir,
        image: LocalImages {
            name: image,
            ids: Mutex::new(Vec::new()),
        },
        web_ips,
    }
}

impl Setup {
    /// Compiles the stand-in answering `letter` into `<dir>/target-<letter>/release/webapp`.
    fn stand_in(&self, letter: &str) -> PathBuf {
        let target = self.dir.path().join(format!("target-{letter}"));
        std::fs::create_dir_all(target.join("release")).expect("target dir");
        let source = target.join("webapp.rs");
        std::fs::write(
            &source,
            format!("const VERSION: &str = {letter:?};\n{STAND_IN}"),
        )
        .expect("write the stand-in");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        common::run_tool(
            std::process::Command::new(rustc)
                .args(["--edition", "2021", "-o"])
                .arg(target.join("release/webapp"))
                .arg(&source),
        );
        target
    }

    fn provisioner(&self, args: &[&str], target_dir: Option<&Path>) -> Output {
        let mut command = common::provisioner();
        if let Some(target_dir) = target_dir {
            command
                .env("CARGO", self.dir.path().join("cargo"))
                .env("CARGO_TARGET_DIR", target_dir);
        }
        common::run_provisioner(command, &self.spec, args)
    }

    /// `deploy` of a new build answering `letter`; returns its version.
    fn deploy(&self, letter: &str) -> (String, String) {
        let target = self.stand_in(letter);
        let output = self.provisioner(&["deploy", "-m", letter], Some(&target));
        assert!(output.status.success(), "deploy {letter} failed");
        let inspected = docker_cli(&["image", "inspect", "-f", "{{.Id}}", &self.image.name]);
        let id = String::from_utf8_lossy(&inspected.stdout).trim().to_owned();
        assert!(id.starts_with("sha256:"), "{id}");
        self.image.ids.lock().expect("ids").push(id.clone());
        (id[7..19].to_owned(), stdout(&output))
    }

    /// `docker` inside a VM (its own engine).
    fn on_vm(&self, vm: &str, args: &[&str]) -> String {
        let container = format!("{}-{vm}", self.cluster.name);
        let output = docker_cli(&[&["exec", container.as_str(), "docker"], args].concat());
        assert!(
            output.status.success(),
            "docker {args:?} on {vm}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The web container on each web host: its ID, image ID and health.
    fn web_containers(&self) -> Vec<String> {
        ["web1", "web2"]
            .iter()
            .map(|vm| {
                self.on_vm(
                    vm,
                    &[
                        "inspect",
                        "-f",
                        "{{.Id}} {{.Image}} {{.State.Health.Status}}",
                        "web",
                    ],
                )
            })
            .collect()
    }

    /// The version tags of the web image's repository on a VM, sorted.
    fn kept_on(&self, vm: &str) -> Vec<String> {
        let repository = self.image.name.trim_end_matches(":latest");
        let listed = self.on_vm(vm, &["images", "--format", "{{.Tag}}", repository]);
        let mut tags: Vec<String> = listed
            .lines()
            .filter(|t| *t != "latest")
            .map(str::to_owned)
            .collect();
        tags.sort();
        tags
    }

    /// What each web host answers over HTTP: the letter of the version it runs.
    fn answers(&self) -> Vec<String> {
        self.web_ips.iter().map(|ip| http_body(ip)).collect()
    }
}

fn http_body(ip: &str) -> String {
    let mut stream = std::net::TcpStream::connect((ip, WEB_PORT)).expect("connect to web");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(answer)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sorted(versions: &[&str]) -> Vec<String> {
    let mut versions: Vec<String> = versions.iter().map(|v| (*v).to_owned()).collect();
    versions.sort();
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_keep_versions_prune_beyond_retain_and_roll_back() {
    let setup = setup().await;

    // Three deploys; each host keeps each version as a tag, the newest two after the third.
    let (a, _) = setup.deploy("A");
    assert_eq!(setup.answers(), ["A", "A"]);
    let (b, _) = setup.deploy("B");
    assert_eq!(setup.kept_on("web1"), sorted(&[&a, &b]));
    let (c, shown) = setup.deploy("C");
    assert_eq!(setup.answers(), ["C", "C"]);
    for vm in ["web1", "web2"] {
        assert!(
            shown.contains(&format!("{vm}: pruned version {a} (kept {c}, {b})")),
            "{shown}"
        );
        assert_eq!(setup.kept_on(vm), sorted(&[&b, &c]), "{vm}");
    }

    // The listing: each host's versions newest first, the running one marked.
    let listed = setup.provisioner(&["versions"], None);
    assert!(listed.status.success());
    let listed = stdout(&listed);
    assert!(
        listed.contains("web1: 2 version(s) kept (app.retain: 2)\n"),
        "{listed}"
    );
    let web2 = listed.split("web2:").nth(1).expect("web2's section");
    let lines: Vec<&str> = web2.lines().skip(1).take(2).collect();
    assert!(lines[0].starts_with(&format!("  {c}  ")), "{listed}");
    assert!(lines[0].ends_with("  running"), "{listed}");
    assert!(lines[1].starts_with(&format!("  {b}  ")), "{listed}");
    assert!(
        listed.ends_with(&format!("`provisioner rollback` goes to {b}\n")),
        "{listed}"
    );

    // rollback: B again on every host, each web container replaced and healthy.
    let before = setup.web_containers();
    let rolled = setup.provisioner(&["rollback", "-m", "C breaks the page"], None);
    assert!(rolled.status.success(), "rollback failed");
    let shown = stdout(&rolled);
    for vm in ["web1", "web2"] {
        assert!(
            shown.contains(&format!("{vm}: kept version {b} put back")),
            "{shown}"
        );
        assert!(shown.contains(&format!("{vm}: web replaced")), "{shown}");
    }
    assert!(
        shown.contains(&format!("rollback: version {b} runs on every web host")),
        "{shown}"
    );
    assert_eq!(setup.answers(), ["B", "B"]);
    let after = setup.web_containers();
    for (old, new) in before.iter().zip(&after) {
        let fields: Vec<&str> = new.split(' ').collect();
        assert_ne!(old.split(' ').next(), Some(fields[0]), "replaced: {new}");
        assert!(fields[1].starts_with(&format!("sha256:{b}")), "{new}");
        assert_eq!(fields[2], "healthy", "{new}");
    }
    let audit = stdout(&setup.provisioner(&["audit", "--lines", "1"], None));
    assert!(
        audit.contains(&format!("  rollback  {b}  ok  \"C breaks the page\"")),
        "{audit}"
    );
    // Both kept (C is the newest; B runs).
    assert_eq!(setup.kept_on("web1"), sorted(&[&b, &c]));

    // The pruned version is refused, naming both hosts; nothing changes.
    let latest_before = setup.on_vm(
        "web1",
        &["image", "inspect", "-f", "{{.Id}}", &setup.image.name],
    );
    let refused = setup.provisioner(&["deploy", "--version", &a], None);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    assert!(
        said.contains(&format!("version {a} is not retained on web1, web2:")),
        "{said}"
    );
    assert!(said.contains("Nothing was changed."), "{said}");
    assert!(
        !stdout(&refused).contains("replaced"),
        "{}",
        stdout(&refused)
    );
    assert_eq!(setup.web_containers(), after);
    assert_eq!(
        setup.on_vm(
            "web1",
            &["image", "inspect", "-f", "{{.Id}}", &setup.image.name]
        ),
        latest_before
    );

    // Rolling back again would return to C (where the first rollback started); with C gone
    // from web2, it is refused naming web2 alone.
    let kept_c = format!("{}:{c}", setup.image.name.trim_end_matches(":latest"));
    setup.on_vm("web2", &["rmi", &kept_c]);
    let refused = setup.provisioner(&["rollback"], None);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    assert!(
        said.contains(&format!("version {c} is not retained on web2:")),
        "{said}"
    );
    assert_eq!(setup.web_containers(), after);
    assert_eq!(setup.answers(), ["B", "B"]);
    let audit = stdout(&setup.provisioner(&["audit", "--lines", "1"], None));
    assert!(
        audit.contains(&format!(
            "  rollback  {c}  failed: version {c} is not retained on web2"
        )),
        "{audit}"
    );
}
