//! Shared helpers of the limiter tests: apps on real ports, private Redis servers,
//! unique key prefixes, response tallies.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocket::fairing::AdHoc;
use serde_json::Value;

pub fn redis_url() -> String {
    std::env::var("CLUSTERLAB_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("test:{tag}:{}:{nanos}:", std::process::id())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A connection to the Redis the test talks to directly (fails loudly if it is missing).
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("valid redis url");
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is required for this test: {e}"))
}

/// A demo app served on a real port of 127.0.0.1.
pub struct App {
    pub base: String,
    shutdown: rocket::Shutdown,
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

/// Serves `webapp::limiter::demo` with `limiter` set to `limiter` (a JSON object).
pub async fn spawn_app(limiter: Value) -> App {
    let figment = rocket::Config::figment()
        .merge(("address", "127.0.0.1"))
        .merge(("port", 0))
        .merge(("log_level", "off"))
        .merge(("shutdown.ctrlc", false))
        .merge(("limiter", limiter));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let rocket = webapp::limiter::demo::rocket(figment).attach(AdHoc::on_liftoff(
        "report port",
        move |rocket| {
            let port = rocket.config().port;
            let shutdown = rocket.shutdown();
            if let Some(tx) = tx.lock().expect("lock").take() {
                let _ = tx.send((port, shutdown));
            }
            Box::pin(async {})
        },
    ));
    tokio::spawn(async move {
        if let Err(e) = rocket.launch().await {
            eprintln!("demo app failed: {e}");
        }
    });
    let (port, shutdown) = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("app lifted off in time")
        .expect("app lifted off");
    App {
        base: format!("http://127.0.0.1:{port}"),
        shutdown,
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// A `redis-server` of this test's own, on a free port, that the test may stop and restart.
pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// With `Some(password)` the server demands it (`requirepass`).
    pub fn start_with_password(password: Option<&str>) -> Self {
        let mut server = RedisServer {
            port: free_port(),
            password: password.map(str::to_owned),
            child: None,
        };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// (Re)starts the server on the same port, empty, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "redis-server already running");
        let mut command = Command::new("redis-server");
        command.args(["--port", &self.port.to_string()]).args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if let Some(pw) = &self.password {
            command.args(["--requirepass", pw]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_connection() {
                    if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Parses `"<policy>";r=<n>;t=<n>` (or `;q=;w=`) into the policy and its two numbers.
pub fn parse_field(value: &str, a: &str, b: &str) -> (String, u64, u64) {
    let mut parts = value.split(';');
    let policy = parts
        .next()
        .and_then(|p| p.strip_prefix('"'))
        .and_then(|p| p.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no quoted policy in {value:?}"))
        .to_owned();
    let mut get = |name: &str| -> u64 {
        let part = parts
            .next()
            .unwrap_or_else(|| panic!("missing {name} in {value:?}"));
        part.strip_prefix(&format!("{name}="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad {name} in {value:?}"))
    };
    let first = get(a);
    let second = get(b);
    (policy, first, second)
}

pub fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The app's `/metrics` text.
pub async fn metrics_text(client: &reqwest::Client, app: &App) -> String {
    client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// Value of the series `name{labels}` in Prometheus text, 0 if absent.
pub fn series_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Value of the series `name{labels}` in the app's /metrics, 0 if absent.
pub async fn metric(client: &reqwest::Client, app: &App, series: &str) -> f64 {
    series_value(&metrics_text(client, app).await, series)
}
