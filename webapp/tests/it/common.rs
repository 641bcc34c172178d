//! Test harness: a fresh PostgreSQL database per test (dropped afterwards, even when the
//! test panics), the app's figment pointed at it, and the app served on a real port.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use rocket::figment::Figment;
use rocket::local::asynchronous::Client;
use rocket::{Build, Rocket, Shutdown};
use sqlx::{Connection, Executor, PgConnection};
use tokio::net::TcpStream;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("CLUSTERLAB_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into())
}

fn random_suffix(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

/// A database `cl_test_<random>` that exists for the life of this value.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("cl_test_{}", random_suffix(16));
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is required at {admin} (CLUSTERLAB_TEST_DATABASE_URL): {e}")
        });
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin).expect("CLUSTERLAB_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Self {
            name,
            url: url.into(),
        }
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on a future, so the
        // cleanup gets a runtime of its own on another thread.
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a cleanup runtime");
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&admin_url()).await?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                conn.close().await
            })
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// The app's configuration for a test: its own database, quiet logs.
pub fn figment(db: &TestDb) -> Figment {
    rocket::Config::figment()
        .merge(("databases.shortener.url", db.url.as_str()))
        .merge(("databases.shortener.max_connections", 8))
        .merge(("databases.shortener.connect_timeout", 5))
        .merge(("log_level", "off"))
        .merge(("public_base_url", ""))
        .merge(("redirect_status", 302))
        .merge(("max_url_length", 2048))
        .merge(("limiter", limiter_config(db, 1_000_000)))
}

/// The limiter on the test Redis, with keys of this test's own and `limit` requests per
/// minute for every route class.
pub fn limiter_config(db: &TestDb, limit: u64) -> rocket::serde::json::Value {
    let redis_url = std::env::var("CLUSTERLAB_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    rocket::serde::json::json!({
        "redis_url": redis_url,
        "key_prefix": format!("{}:", db.name),
        "timeout_ms": 5000,
        "fail_mode": "closed",
        "policies": { "default": { "limit": limit, "window": "60s" } },
    })
}

pub async fn client(figment: Figment) -> Client {
    Client::tracked(webapp::rocket_from(figment))
        .await
        .expect("the app ignites")
}

/// An app served on 127.0.0.1 at a free port, shut down when dropped.
pub struct Served {
    pub addr: SocketAddr,
    shutdown: Shutdown,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

pub async fn serve(rocket: Rocket<Build>) -> Served {
    let port = free_port();
    let figment = rocket
        .figment()
        .clone()
        .merge(("address", "127.0.0.1"))
        .merge(("port", port))
        .merge(("log_level", "off"));
    let rocket = rocket
        .configure(figment)
        .ignite()
        .await
        .expect("the app ignites");
    let shutdown = rocket.shutdown();
    tokio::spawn(rocket.launch());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_port(addr, Duration::from_secs(10)).await;
    Served { addr, shutdown }
}

pub async fn wait_for_port(addr: SocketAddr, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of one sample line of the Prometheus text format, 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}
