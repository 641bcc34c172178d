//! Pure reading of what a running cluster says about itself: a web host's `/metrics`
//! (the Prometheus text format) and Redis' `INFO`, the rates between two readings, and the
//! limiter's decisions by policy summed over the web hosts. Fetching them is exec's job;
//! `provisioner status` and `provisioner top` show them.
//!
//! # Layout
//! - [`web`]: one web host's `/metrics` reduced to the series clusterlab shows (requests,
//!   429s, the limiter's decisions by policy and outcome, the latency histograms).
//! - [`redis_info`]: the fields of Redis' `INFO` that `top` shows.
//! - [`rates`]: per-second rates and p95 latencies between two readings of one source.
//! - [`policies`]: the per-policy table of `status`, gathered from every web host.

pub mod policies;
pub mod rates;
pub mod redis_info;
pub mod web;

pub use policies::PolicySummary;
pub use rates::{RedisRates, WebRates};
pub use redis_info::RedisInfo;
pub use web::WebMetrics;
