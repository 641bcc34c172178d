//! The real `webapp` binary started with one bad setting at a time: it exits non-zero
//! with one line on stderr that names the setting and what was expected, and never
//! panics (Rocket's own launch would end in "aborting due to fairing failure(s)").

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clusterlab_contract::secret_env;

use crate::common::{free_port, TestDb};

/// Runs the binary against this test's database and Redis keys, with `settings` on top,
/// and waits for it to give up (it must: each test passes a setting it cannot start with).
fn launch(db: &TestDb, settings: &[(String, String)]) -> Output {
    let redis_url = std::env::var("CLUSTERLAB_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new(env!("CARGO_BIN_EXE_webapp"))
        .current_dir(manifest_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ROCKET_CONFIG", format!("{manifest_dir}/Rocket.toml"))
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PORT", free_port().to_string())
        .env(
            "ROCKET_DATABASES",
            format!("{{shortener={{url=\"{}\"}}}}", db.url),
        )
        .env(
            "ROCKET_LIMITER",
            format!("{{redis_url=\"{redis_url}\",key_prefix=\"{}:\"}}", db.name),
        )
        .envs(settings.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the webapp binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waiting on webapp").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("webapp started with {settings:?} and did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
        .wait_with_output()
        .expect("the exit status and stderr")
}

/// Exits non-zero with exactly one line on stderr, containing every piece of `expected`.
fn assert_refused(output: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        output.status
    );
    assert!(
        output.status.code().is_some(),
        "killed by a signal; stderr:\n{stderr}"
    );
    let lowercase = stderr.to_lowercase();
    assert!(
        !lowercase.contains("panicked") && !lowercase.contains("backtrace"),
        "{stderr}"
    );
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one message, got:\n{stderr}");
    assert!(lines[0].starts_with("webapp: error: "), "{stderr}");
    for piece in expected {
        assert!(stderr.contains(piece), "{piece:?} missing from:\n{stderr}");
    }
}

fn setting(key: &str, value: impl Into<String>) -> (String, String) {
    (key.to_owned(), value.into())
}

#[tokio::test]
async fn an_unknown_limiter_algorithm_names_the_key_and_the_choices() {
    let db = TestDb::create().await;
    let output = launch(
        &db,
        &[setting("ROCKET_LIMITER", r#"{algorithm="quantum"}"#)],
    );
    assert_refused(
        &output,
        &["limiter.algorithm: ", "quantum", "sliding_log", "ROCKET_"],
    );
}

#[tokio::test]
async fn an_unusable_redirect_status_says_which_are_allowed() {
    let db = TestDb::create().await;
    let output = launch(&db, &[setting("ROCKET_REDIRECT_STATUS", "200")]);
    assert_refused(&output, &["redirect_status = 200", "301, 302, 307 or 308"]);
}

#[tokio::test]
async fn a_zero_store_timeout_is_refused() {
    let db = TestDb::create().await;
    let output = launch(&db, &[setting("ROCKET_STORE", "{acquire_timeout_ms=0}")]);
    assert_refused(&output, &["store.acquire_timeout_ms = 0", "positive"]);
}

#[tokio::test]
async fn a_missing_password_file_names_the_variable_and_the_path() {
    let db = TestDb::create().await;
    let variable = secret_env::file_variable(secret_env::REDIS_PASSWORD);
    let missing = format!("/nonexistent/{}/redis-password", db.name);
    let output = launch(&db, &[setting(&variable, missing.clone())]);
    assert_refused(
        &output,
        &[&variable, &missing, "cannot read the password file"],
    );
}

#[tokio::test]
async fn a_port_that_is_not_a_number_names_the_key() {
    let db = TestDb::create().await;
    let output = launch(&db, &[setting("ROCKET_PORT", "eighty")]);
    assert_refused(&output, &["port: ", "eighty", "u16"]);
}

#[tokio::test]
async fn a_port_in_use_names_the_address() {
    let db = TestDb::create().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let port = taken.local_addr().expect("bound").port();
    let output = launch(&db, &[setting("ROCKET_PORT", port.to_string())]);
    assert_refused(
        &output,
        &[&format!("cannot listen on 127.0.0.1:{port}"), "in use"],
    );
}
