//! `GET /healthz` (the process answers) and `GET /readyz` (every dependency answers).
//! Readiness checks are registered at ignition by the stage that owns the dependency:
//! the store adds PostgreSQL, the limiter adds Redis, neither knows about the other.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{Build, Rocket, State};
use serde::Serialize;
use utoipa::ToSchema;

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
pub struct ReadinessChecks {
    checks: RwLock<Vec<Arc<dyn ReadinessCheck>>>,
}

impl ReadinessChecks {
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

/// Registers `check` with the [`ReadinessChecks`] that [`stage`] put in managed state; call it
/// from an ignite fairing attached after [`stage`].
pub fn register(rocket: &Rocket<Build>, check: impl ReadinessCheck) -> Result<(), &'static str> {
    let readiness = rocket
        .state::<ReadinessChecks>()
        .ok_or("the health stage must be attached before stages that add readiness checks")?;
    readiness.add(check);
    Ok(())
}

/// The answer of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: HealthStatus,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

/// The answer of `/readyz`: the outcome of every dependency's check, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    /// One entry per dependency (`postgres`, `redis`); why one fails goes to the log.
    pub checks: std::collections::BTreeMap<String, CheckOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum ReadyStatus {
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "not ready")]
    NotReady,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    Ok,
    Failing,
}

/// Whether the process answers at all; it checks no dependency.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up.", body = Health)))]
#[rocket::get("/healthz")]
fn healthz() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// Whether every dependency answers within 2 s, so that a load balancer may send traffic.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Every dependency answers.", body = Readiness),
    (status = 503, description = "A dependency does not answer.", body = Readiness),
))]
#[rocket::get("/readyz")]
async fn readyz(checks: &State<ReadinessChecks>) -> (Status, Json<Readiness>) {
    let checks = checks.snapshot();
    let results = rocket::futures::future::join_all(checks.iter().map(|c| async move {
        let outcome = match rocket::tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        (c.name(), outcome)
    }))
    .await;
    let checks: std::collections::BTreeMap<String, CheckOutcome> = results
        .into_iter()
        .map(|(name, r)| {
            let outcome = match r {
                Ok(()) => CheckOutcome::Ok,
                Err(e) => {
                    rocket::warn!("readiness check {name} failing: {e}");
                    CheckOutcome::Failing
                }
            };
            (name.to_owned(), outcome)
        })
        .collect();
    let ready = checks.values().all(|c| *c == CheckOutcome::Ok);
    let (status, word) = if ready {
        (Status::Ok, ReadyStatus::Ready)
    } else {
        (Status::ServiceUnavailable, ReadyStatus::NotReady)
    };
    (
        status,
        Json(Readiness {
            status: word,
            checks,
        }),
    )
}

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Health", |rocket| async move {
        rocket
            .manage(ReadinessChecks::default())
            .mount("/", rocket::routes![healthz, readyz])
    })
}
