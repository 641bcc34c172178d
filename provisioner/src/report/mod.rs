//! What a load test leaves for people to read beside k6's own files: `chart.svg`, the
//! answers over time per client and policy, and `index.html`, the verdict, the chart and
//! k6's report on one page. Pure: a judged run in, text out; `cli::loadtest` writes them.
//!
//! # Layout
//! - `chart`: the SVG, drawn with plotters.
//! - `page`: the HTML page, rendered by Tera with autoescaping.

mod chart;
mod page;

pub use chart::{render as chart, ChartError, UNKNOWN_HOST};
pub use page::{render as page, Page};

/// The chart's file name in a run's report folder.
pub const CHART: &str = "chart.svg";
/// The page's file name in a run's report folder.
pub const INDEX: &str = "index.html";
/// The verdict's text in a run's report folder.
pub const VERDICT: &str = "verdict.txt";
