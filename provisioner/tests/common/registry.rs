//! A real registry on this machine for the pull-mode tests: Debian's `docker-registry`
//! listening on every address (the VM containers reach it at their network's gateway),
//! optionally with TLS (a self-signed certificate for the given addresses, made with the
//! openssl CLI) and basic auth (an htpasswd file made with apache2-utils' `htpasswd -B`).
//! Stopped, and its storage removed, on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRegistry {
    pub port: u16,
    /// The certificate (its own CA) when TLS is on.
    pub ca_file: Option<PathBuf>,
    /// `(user, password)` when auth is on.
    pub credentials: Option<(String, String)>,
    dir: tempfile::TempDir,
    child: Child,
}

/// What the registry is started with.
pub struct Options<'a> {
    /// TLS with a certificate for these IPs (and `localhost`); `None`: plain HTTP.
    pub tls_for: Option<&'a [&'a str]>,
    pub user: Option<(&'a str, &'a str)>,
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "{command:?}: {e} (scripts/setup-host.sh installs docker-registry, apache2-utils, openssl)"
        )
    });
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("0.0.0.0", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl TestRegistry {
    pub fn start(options: Options) -> TestRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut http = format!("{{addr: \"0.0.0.0:{port}\"");
        let ca_file = options.tls_for.map(|ips| {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let names: Vec<String> = ["DNS:localhost".to_owned(), "IP:127.0.0.1".to_owned()]
                .into_iter()
                .chain(ips.iter().map(|ip| format!("IP:{ip}")))
                .collect();
            run(Command::new("openssl").args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=clusterlab-test-registry",
                "-addext",
                &format!("subjectAltName={}", names.join(",")),
                "-keyout",
                path(&key),
                "-out",
                path(&cert),
            ]));
            http.push_str(&format!(
                ", tls: {{certificate: \"{}\", key: \"{}\"}}",
                path(&cert),
                path(&key)
            ));
            cert
        });
        http.push('}');
        let mut auth = String::new();
        if let Some((user, password)) = options.user {
            let file = dir.path().join("htpasswd");
            let output = Command::new("htpasswd")
                .args(["-B", "-b", "-n", user, password])
                .output()
                .expect("htpasswd (apache2-utils)");
            assert!(output.status.success());
            std::fs::write(&file, output.stdout).expect("write htpasswd");
            auth = format!(
                "auth: {{htpasswd: {{realm: clusterlab-test, path: \"{}\"}}}}\n",
                path(&file)
            );
        }
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\n\
                 storage: {{filesystem: {{rootdirectory: \"{}\"}}}}\nhttp: {http}\n{auth}",
                path(&dir.path().join("data"))
            ),
        )
        .expect("write the registry config");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
        let child = Command::new("docker-registry")
            .args(["serve", path(&config)])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry (scripts/setup-host.sh installs it)");
        let registry = TestRegistry {
            port,
            ca_file,
            credentials: options.user.map(|(u, p)| (u.to_owned(), p.to_owned())),
            dir,
            child,
        };
        registry.wait_until_listening();
        registry
    }

    fn wait_until_listening(&self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the registry did not listen within 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The registry's own log (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// The repositories it holds, from its storage (no API call, so no credentials needed).
    pub fn repositories(&self) -> Vec<String> {
        let root = self.dir.path().join("data/docker/registry/v2/repositories");
        let mut found = Vec::new();
        collect_repositories(&root, &root, &mut found);
        found.sort();
        found
    }
}

fn collect_repositories(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.join("_manifests").is_dir() {
            found.push(
                p.strip_prefix(root)
                    .expect("under the root")
                    .display()
                    .to_string(),
            );
        } else if p.is_dir() {
            collect_repositories(root, &p, found);
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
