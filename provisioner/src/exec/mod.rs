//! The exec layer: the only code in the provisioner that touches the outside world
//! (terraform, SSH, Docker engines). Every function takes plain values (host name, IP,
//! user, key path, file contents, secrets) so the spec/plan layers stay pure.
//!
//! # Layout
//! - [`backup`]: pg_dump out of / pg_restore into the postgres container, streamed.
//! - [`ssh`]: one multiplexed SSH session per host, known_hosts per cluster, retries,
//!   file upload, and the forwarded `docker.sock`.
//! - [`cloud_init`]: wait for a booted VM's cloud-init to finish before using its Docker.
//! - [`docker`]: bollard clients for the local engine and for a host over SSH.
//! - [`images`]: build contexts hashed by content, ship (export -> import) or pull.
//! - [`converge`]: make a host's containers match its planned services, rolling replace.
//! - [`deploy`]: the one executor of a deploy plan: hosts connected at once, stages in
//!   order, each stage's hosts in parallel.
//! - [`lifecycle`]: the deploy lock and the audit log on the load balancer host.
//! - [`versions`]: the web app's versions a web host keeps: tagged, used, listed, pruned.
//! - [`local`]: the local target's generated key and secrets, and the sweep of leftovers
//!   after destroy.
//! - [`terraform`]: run terraform, stream its output, read the hosts it made.
//! - [`loadtest`]: k6 on the tester host: scripts up, client addresses, outputs back.
//! - [`redis`]: the cluster's Redis through its host's SSH session (the limiter's keys,
//!   `INFO`).
//! - [`limiter`]: the web app's limiter keys there: SCAN, each value with Redis' TIME, UNLINK.
//! - [`web`]: a web host's own HTTP endpoints (`/metrics`) through its SSH session.
//! - [`progress`]: one indicatif bar per host.
//! - [`error`]: the one error type; every variant names the host and the operation.

pub mod backup;
pub mod cloud_init;
pub mod converge;
pub mod deploy;
pub mod docker;
pub mod error;
pub mod images;
pub mod lifecycle;
pub mod limiter;
pub mod loadtest;
pub mod local;
pub mod progress;
pub mod redis;
pub mod ssh;
pub mod terraform;
pub mod versions;
pub mod web;

pub use error::{ExecError, Result};
