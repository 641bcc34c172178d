//! `rediss://` with a password: the limiter talks TLS (rustls) to a Redis of this test's own,
//! whose certificate is signed by a throwaway CA that only this test process trusts.

mod limiter_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use limiter_support::*;
use serde_json::json;

struct TlsRedis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn start_tls_redis(password: &str) -> TlsRedis {
    let dir = std::env::temp_dir().join(unique_prefix("tls").replace(':', "-"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=limiter-test-ca",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("san.cnf");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
        ],
    );
    let port = free_port();
    let child = Command::new("redis-server")
        .current_dir(&dir)
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
        .args([
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed");
    let server = TlsRedis { child, dir, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("TLS redis-server on {port} did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_with_a_password_work() {
    let server = start_tls_redis("tls-pw").await;
    // rustls-native-certs reads the trust store from SSL_CERT_FILE; this binary holds only
    // this test, so no other test sees the variable.
    std::env::set_var("SSL_CERT_FILE", server.dir.join("ca.crt"));
    let app = spawn_app(json!({
        "redis_url": format!("rediss://:tls-pw@127.0.0.1:{}/", server.port),
        "timeout_ms": 2000,
        "fail_mode": "closed",
        "key_prefix": unique_prefix("tls"),
        "policies": { "default": { "limit": 2, "window": "60s" } },
    }))
    .await;
    let client = http();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let res = client.get(app.url("/abc")).send().await.expect("request");
        seen.push(res.status().as_u16());
    }
    // 503 would mean no TLS session or no AUTH (fail_mode = closed).
    assert_eq!(seen, [200, 200, 429]);
    let ready = client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
}
