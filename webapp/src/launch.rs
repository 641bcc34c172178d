//! Starting the `webapp` binary: the app built from the environment is ignited and
//! launched here, and whatever stops it becomes a [`LaunchError`] that `main` prints as one
//! message per cause before exiting non-zero (an unhandled `rocket::Error` would panic).
//!
//! Stages refuse with [`refuse`], which logs the reason and also hands it to `main`
//! through [`Refusals`] in managed state: Rocket's own report of a failed fairing names
//! the fairing, not what was wrong with which setting.

use std::fmt;
use std::sync::{Arc, Mutex};

use rocket::fairing;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

use crate::config::ConfigError;

/// What the stages said when they refused to start, in the order they said it.
#[derive(Clone, Default)]
pub struct Refusals(Arc<Mutex<Vec<String>>>);

impl Refusals {
    fn push(&self, reason: String) {
        // A poisoned lock only means a stage panicked; the list is still whole.
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(reason);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The answer of an ignite fairing that cannot start: logs `reason` and, when the app
/// is launched by [`run`], keeps it for the exit message.
// `fairing::Result` is what Rocket's ignite fairings must return, large `Err` and all.
#[allow(clippy::result_large_err)]
pub fn refuse(rocket: Rocket<Build>, reason: impl fmt::Display) -> fairing::Result {
    let reason = reason.to_string();
    rocket::error!("{reason}");
    if let Some(refusals) = rocket.state::<Refusals>() {
        refusals.push(reason);
    }
    Err(rocket)
}

/// The answer of an ignite fairing that cannot run because an earlier stage refused:
/// logged, but not a cause of its own in the exit message.
#[allow(clippy::result_large_err)]
pub fn skip(rocket: Rocket<Build>, reason: impl fmt::Display) -> fairing::Result {
    rocket::warn!("{reason}");
    Err(rocket)
}

/// One line per bad key of `error`, read from the table `inner` of the figment (`""` for
/// the top level): `<key>: <what is wrong> (from <source>)`. figment 0.10 appends
/// `inner` to the end of the path, so its own message would name `ALGORITHM.LIMITER`.
pub fn figment_errors(error: rocket::figment::Error, inner: &str) -> Vec<String> {
    let depth = inner.split('.').filter(|part| !part.is_empty()).count();
    error
        .into_iter()
        .map(|e| {
            let (within, table) = e.path.split_at(e.path.len().saturating_sub(depth));
            let key: Vec<&str> = table.iter().chain(within).map(String::as_str).collect();
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("{}: {}{source}", key.join("."), e.kind)
        })
        .collect()
}

/// Why the app did not start (or did not stop cleanly); each line of its message names
/// the setting and what was expected where one is to blame.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Settings(#[from] ConfigError),
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error("{}", figment_errors(.0.clone(), "").join("\n"))]
    RocketConfig(rocket::figment::Error),
    #[error("cannot listen on {address} (settings address and port): {reason}")]
    Bind { address: String, reason: String },
    #[error("{0}")]
    Rocket(String),
}

/// Builds the app from Rocket.toml, `ROCKET_*` and the password variables, then ignites
/// and serves it until it is shut down.
pub async fn run() -> Result<(), LaunchError> {
    let figment = crate::figment_from_env()?;
    let refusals = Refusals::default();
    let rocket = crate::rocket_from(figment.clone()).manage(refusals.clone());
    let ignited = rocket
        .ignite()
        .await
        .map_err(|e| explain(e, &figment, &refusals))?;
    ignited
        .launch()
        .await
        .map(drop)
        .map_err(|e| explain(e, &figment, &refusals))
}

/// Reads `error` (which marks it handled, so dropping it does not panic) into the
/// message for `main`.
fn explain(error: rocket::Error, figment: &Figment, refusals: &Refusals) -> LaunchError {
    use rocket::error::ErrorKind;
    match error.kind() {
        ErrorKind::FailedFairings(failed) => {
            let mut reasons = refusals.take();
            // Only a library's fairing (the database pool) fails without a reason here; it
            // logs one.
            if reasons.is_empty() {
                let names: Vec<_> = failed.iter().map(|f| f.name).collect();
                reasons.push(format!(
                    "these stages failed to start (the log above says why): {}",
                    names.join(", ")
                ));
            }
            LaunchError::Refused(reasons)
        }
        ErrorKind::Config(e) => LaunchError::RocketConfig(e.clone()),
        // Binding comes after ignition, so the configuration is known to be valid.
        ErrorKind::Bind(e) => LaunchError::Bind {
            address: rocket::Config::try_from(figment)
                .map_or_else(|_| "?".into(), |c| format!("{}:{}", c.address, c.port)),
            reason: e.to_string(),
        },
        ErrorKind::Io(e) => LaunchError::Rocket(format!("the server failed: {e}")),
        ErrorKind::Shutdown(_, Some(e)) => {
            LaunchError::Rocket(format!("the server did not shut down cleanly: {e}"))
        }
        // Route collisions, sentinels and the rest are programming errors, already
        // logged in detail by Rocket; its summary is enough to exit with.
        _ => LaunchError::Rocket(error.pretty_print().to_owned()),
    }
}
