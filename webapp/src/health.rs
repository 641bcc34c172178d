//! `GET /healthz` (the process answers) and `GET /readyz` (every dependency answers).
//! Readiness checks are registered at ignition by the stage that owns the dependency:
//! the store adds PostgreSQL, the limiter adds Redis, neither knows about the other.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::{json, Json, Value};
use rocket::{Build, Rocket, State};

/// How long one check may take before the instance counts as not ready: a load
/// balancer probing `/readyz` must get an answer well inside its own timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency that must answer for the instance to take traffic.
#[rocket::async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    /// The key of this check in the `/readyz` answer.
    fn name(&self) -> &'static str;
    /// `Err` carries what a person debugging the instance should read: it goes to the
    /// log, never into the answer (a driver's error names hosts, users and versions).
    async fn check(&self) -> Result<(), String>;
}

/// The registered checks, in managed state.
#[derive(Default)]
pub struct Readiness {
    checks: RwLock<Vec<Arc<dyn ReadinessCheck>>>,
}

impl Readiness {
    pub fn add(&self, check: impl ReadinessCheck) {
        // A poisoned lock only means a registering thread panicked; the list is still whole.
        let mut checks = self.checks.write().unwrap_or_else(|e| e.into_inner());
        checks.push(Arc::new(check));
    }

    fn snapshot(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        self.checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Registers `check` with the [`Readiness`] that [`stage`] put in managed state; call it
/// from an ignite fairing attached after [`stage`].
pub fn register(rocket: &Rocket<Build>, check: impl ReadinessCheck) -> Result<(), &'static str> {
    let readiness = rocket
        .state::<Readiness>()
        .ok_or("the health stage must be attached before stages that add readiness checks")?;
    readiness.add(check);
    Ok(())
}

#[rocket::get("/healthz")]
fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[rocket::get("/readyz")]
async fn readyz(readiness: &State<Readiness>) -> (Status, Json<Value>) {
    let checks = readiness.snapshot();
    let results = rocket::futures::future::join_all(checks.iter().map(|c| async move {
        let outcome = match rocket::tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        (c.name(), outcome)
    }))
    .await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let report: serde_json::Map<String, Value> = results
        .into_iter()
        .map(|(name, r)| {
            let word = match r {
                Ok(()) => "ok",
                Err(e) => {
                    rocket::warn!("readiness check {name} failing: {e}");
                    "failing"
                }
            };
            (name.to_owned(), Value::from(word))
        })
        .collect();
    let status = if ready {
        Status::Ok
    } else {
        Status::ServiceUnavailable
    };
    let word = if ready { "ready" } else { "not ready" };
    (status, Json(json!({ "status": word, "checks": report })))
}

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Health", |rocket| async move {
        rocket
            .manage(Readiness::default())
            .mount("/", rocket::routes![healthz, readyz])
    })
}
