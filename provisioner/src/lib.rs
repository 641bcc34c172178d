//! clusterlab's provisioner: one cluster.yaml in, a running cluster out.
//!
//! # Layout
//! - [`spec`]: parse and validate cluster.yaml into a typed [`spec::Cluster`] (all errors at
//!   once, each with key path and line:column).
//! - [`plan`]: pure functions from a spec to the files it renders (Terraform workspace,
//!   compose files, nginx config) as data.
//! - [`output`]: the thin I/O that writes rendered files atomically or compares them with
//!   what is on disk (`render --check`).
//! - [`exec`]: the only code that runs terraform, opens SSH and talks to Docker.
//! - [`changes`]: pure reading of a saved Terraform plan into what it does to each host,
//!   and which of it needs the user's consent (data hosts, data storage).
//! - [`metrics`]: pure reading of what a running cluster reports (a web host's `/metrics`,
//!   Redis' `INFO`) into counts, rates and p95 latencies for `status` and `top`.
//! - [`verdict`]: pure judgement of a k6 run's samples against the limiter's policies.
//! - [`report`]: pure rendering of a judged run for people: its chart and its page.
//! - [`cli`]: the `provisioner` command line; `main.rs` only calls [`cli::run`].
pub mod changes;
pub mod cli;
pub mod exec;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod report;
pub mod spec;
pub mod verdict;
