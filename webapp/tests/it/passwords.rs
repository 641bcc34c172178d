//! Passwords reach the app as variables of their own and are put into its URLs
//! percent-encoded: one holding every character a URL or a TOML string gives meaning to
//! still opens the real PostgreSQL and Redis.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rocket::http::Status;
use sqlx::{Connection, Executor};

use crate::common::{admin_url, client, figment, free_port, wait_for_port, TestDb};

const HOSTILE: &str = "p@ss:w/rd%41'\"#?{}\\ ;=,[]$x";

/// A private `redis-server` that requires [`HOSTILE`], stopped when dropped.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    async fn start() -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--requirepass", HOSTILE])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(10)).await;
        Redis { port, child }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[rocket::async_test]
async fn a_hostile_password_opens_postgres_and_redis() {
    let db = TestDb::create().await;
    let role = format!("{}_owner", db.name);
    let mut conn = db.connect().await;
    let literal = HOSTILE.replace('\'', "''");
    conn.execute(format!("CREATE ROLE {role} LOGIN PASSWORD '{literal}'").as_str())
        .await
        .expect("create role");
    conn.execute(format!("ALTER DATABASE {} OWNER TO {role}", db.name).as_str())
        .await
        .expect("hand the database over");
    let redis = Redis::start().await;

    let mut url = url::Url::parse(&db.url).expect("url");
    url.set_username(&role).expect("username");
    url.set_password(None).expect("no password");
    let figment = figment(&db)
        .merge(("databases.shortener.url", url.as_str()))
        .merge((
            "limiter.redis_url",
            format!("redis://127.0.0.1:{}/", redis.port),
        ));
    let figment = webapp::config::with_passwords(figment, Some(HOSTILE), Some(HOSTILE))
        .expect("URLs take any password");

    {
        let app = client(figment).await;
        // Ready means PostgreSQL answered and Redis answered PING with that password.
        let ready = app.get("/readyz").dispatch().await;
        assert_eq!(
            ready.status(),
            Status::Ok,
            "{:?}",
            ready.into_string().await
        );
        // A limited route: fail_mode is closed, so a refused AUTH would be a 503.
        let shortened = app
            .post("/shorten")
            .header(rocket::http::ContentType::Form)
            .body("url=https%3A%2F%2Fexample.com%2F")
            .dispatch()
            .await;
        assert_eq!(shortened.status(), Status::Ok);
    }
    drop(conn);
    // The database goes first (with everything the role owns in it), then the role.
    drop(db);
    let mut admin = sqlx::PgConnection::connect(&admin_url())
        .await
        .expect("admin connection");
    admin
        .execute(format!("DROP ROLE IF EXISTS {role}").as_str())
        .await
        .expect("drop role");
}
