//! CLI layer: what the commands that change the cluster share — the deploy lock taken on
//! the load balancer host before the change (a second taker is refused with the holder's
//! record) and, when the change ends however it ends, its audit line and the lock's release.
//! `up`, `deploy` and `rollback` take it.

use crate::exec::images;
use crate::exec::lifecycle::{self, holder_alive};
use crate::exec::ssh::{HostSession, RetryPolicy};
use crate::plan::lifecycle::{version_of, AuditEntry, LockHolder, TakeOutcome};
use crate::spec::{Cluster, Role};

use super::context::{self, Project};
use super::CliError;

/// An SSH session to the load balancer host, where the lock and the log are.
pub async fn connect_load_balancer(
    cluster: &Cluster,
    project: &Project,
    retry: &RetryPolicy,
) -> Result<HostSession, CliError> {
    // Validation guarantees a load balancer; the error is for a spec that slipped past it.
    let lb = cluster
        .the(Role::LoadBalancer)
        .ok_or_else(|| CliError::Usage("cluster.yaml has no host of role load_balancer".into()))?;
    let target = &context::targets(cluster, project)[&lb.name];
    Ok(HostSession::connect(target, retry).await?)
}

/// The deploy lock, held by this process until [`Held::finish`].
pub struct Held {
    session: HostSession,
    holder: LockHolder,
}

/// Takes the deploy lock for `command`, or refuses with who holds it.
pub async fn take(
    cluster: &Cluster,
    project: &Project,
    command: &str,
    message: Option<String>,
    retry: &RetryPolicy,
) -> Result<Held, CliError> {
    let session = connect_load_balancer(cluster, project, retry).await?;
    let holder = lifecycle::local_holder(command, message);
    match lifecycle::take(&session, &holder).await {
        Ok(TakeOutcome::Taken) => Ok(Held { session, holder }),
        Ok(TakeOutcome::Held(other)) => {
            let _ = session.close().await;
            Err(CliError::Locked(Box::new(other)))
        }
        Err(error) => {
            let _ = session.close().await;
            Err(error.into())
        }
    }
}

impl Held {
    /// The whole audit log, read through the lock's session (lines that do not parse are
    /// named on stderr and left out).
    pub async fn audit(&self) -> Result<Vec<AuditEntry>, CliError> {
        let entries = lifecycle::read_audit(&self.session, None).await?;
        Ok(super::versions::readable(entries))
    }

    /// Appends the command's audit line (`version`, and `result`'s error as the reason)
    /// and releases the lock. Neither may hide the command's own result, so a failure of
    /// either is a warning that says what to do.
    pub async fn finish<T>(self, result: &Result<T, CliError>, version: Option<String>) {
        let failure = result.as_ref().err().map(ToString::to_string);
        let entry = AuditEntry::now(
            lifecycle::local_user(),
            &self.holder.command,
            version,
            failure.as_deref(),
            self.holder.message.clone(),
        );
        if let Err(error) = lifecycle::append(&self.session, &entry).await {
            eprintln!("warning: the audit line was not written: {error}");
        }
        match lifecycle::release_own(&self.session, &self.holder).await {
            Ok(None) => {}
            Ok(Some(other)) => eprintln!(
                "warning: the deploy lock was released by hand meanwhile and is now held: {}",
                other.describe()
            ),
            Err(error) => eprintln!(
                "warning: the deploy lock was not released ({error}); \
                 `provisioner lock release` removes it"
            ),
        }
        let _ = self.session.close().await;
    }
}

/// The web image's version in this machine's engine (ship mode: the image the deploy
/// ships), `None` when the engine has no such image.
pub async fn local_web_version(
    local: &bollard::Docker,
    cluster: &Cluster,
) -> Result<Option<String>, CliError> {
    Ok(images::image_id(local, "local", &cluster.images.webapp)
        .await?
        .map(|id| version_of(&id)))
}

/// The refusal's text: the holder, and what to do about it.
pub fn refusal(holder: &LockHolder) -> String {
    let stale = match holder_alive(holder) {
        Some(false) => format!(
            "\nIts process {} no longer runs on this machine: the lock is stale. \
             `provisioner lock release` removes it.",
            holder.pid
        ),
        Some(true) => String::new(),
        None => "\nIf that command is over but left its lock (its process was killed), \
                 `provisioner lock release` removes it."
            .to_owned(),
    };
    format!(
        "the cluster is locked: {}\nNothing was changed.{stale}",
        holder.describe()
    )
}

/// The lock's state for `lock status`: free, or its holder and whether it still runs.
pub fn status_text(holder: Option<&LockHolder>) -> String {
    let Some(holder) = holder else {
        return "unlocked".to_owned();
    };
    let liveness = match holder_alive(holder) {
        Some(true) => "its process is running".to_owned(),
        Some(false) => format!(
            "STALE: its process {} no longer runs on this machine; \
             `provisioner lock release` removes it",
            holder.pid
        ),
        None => format!(
            "taken on {}, so whether its process runs cannot be seen from here",
            holder.host
        ),
    };
    format!("locked: {}\n  ({liveness})", holder.describe())
}

/// Where `destroy` keeps the audit log on this machine: the load balancer host's copy goes
/// with the host.
pub fn local_audit_copy(cluster: &Cluster, project: &Project) -> std::path::PathBuf {
    project
        .spec_dir
        .join(".clusterlab")
        .join(format!("audit-{}.log", cluster.name))
}

/// Before `destroy`: copies the load balancer host's audit log to [`local_audit_copy`].
/// A cluster whose load balancer is already gone (or was never made) has no log to keep,
/// so failing to reach it is a warning.
pub async fn save_audit_log(cluster: &Cluster, project: &Project) {
    if !project.private_key(cluster).exists() {
        return;
    }
    let copy = local_audit_copy(cluster, project);
    let saved = async {
        let session = connect_load_balancer(cluster, project, &context::inspect_retry()).await?;
        let entries = lifecycle::read_audit(&session, None).await;
        let _ = session.close().await;
        let mut kept = Vec::new();
        for entry in entries? {
            match entry {
                Ok(entry) => kept.push(entry),
                Err(unreadable) => eprintln!("warning: not copied: {unreadable}"),
            }
        }
        lifecycle::keep_locally(&copy, &kept)?;
        Ok::<_, CliError>(kept.len())
    }
    .await;
    match saved {
        Ok(count) => eprintln!(
            "audit log ({count} line(s)) copied from the load balancer to {}",
            copy.display()
        ),
        Err(error) => eprintln!("warning: the load balancer's audit log was not copied: {error}"),
    }
}

/// After `destroy`: its own line, in the local copy (the load balancer host is gone).
pub fn record_destroy(cluster: &Cluster, project: &Project, failure: Option<&str>) {
    let entry = AuditEntry::now(lifecycle::local_user(), "destroy", None, failure, None);
    let copy = local_audit_copy(cluster, project);
    if let Err(error) = lifecycle::keep_locally(&copy, &[entry]) {
        eprintln!(
            "warning: the destroy was not recorded in {}: {error}",
            copy.display()
        );
    }
}
