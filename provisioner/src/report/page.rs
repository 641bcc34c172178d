//! `index.html`: a run's verdict, its chart and k6's own report on one page, rendered by
//! Tera with autoescaping on, so no text from the run (a client, a host, a check's name)
//! can turn into markup.

use serde::Serialize;
use tera::{Context, Tera};

use crate::verdict::Verdict;

const TEMPLATE: &str = include_str!("../../../templates/report/index.html.tera");

/// What the page shows; the chart and k6's report are linked by file name, beside it.
#[derive(Debug, Serialize)]
pub struct Page<'a> {
    /// e.g. `rate-test.js, 20261201T183000Z`.
    pub title: &'a str,
    pub chart: &'a str,
    /// k6's HTML report, when k6 wrote one.
    pub k6_report: Option<&'a str>,
}

pub fn render(page: &Page, verdict: &Verdict) -> Result<String, tera::Error> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.add_raw_template("index.html", TEMPLATE)?;
    let mut context = Context::from_serialize(page)?;
    context.insert("verdict", &verdict.to_string());
    context.insert("holds", &verdict.holds());
    tera.render("index.html", &context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Algorithm, Limiter, Policies, Policy, Window};
    use crate::verdict::{judge, K6Run, Sample, Thresholds};
    use std::time::Duration;

    fn verdict_of(client: &str) -> Verdict {
        let policy = Policy::one(1, Window::from_millis(1000));
        let limiter = Limiter::with_defaults(
            Algorithm::SlidingLog,
            Policies {
                default: policy.clone(),
                shorten: policy.clone(),
                redirect: policy,
            },
        );
        let run = K6Run {
            samples: vec![Sample {
                client: client.into(),
                route: "shorten",
                start: 0,
                end: 1000,
                status: 200,
                served_by: None,
            }],
            ..K6Run::default()
        };
        let thresholds = Thresholds {
            p95: Duration::from_secs(1),
        };
        judge(&run, &limiter, thresholds).unwrap()
    }

    #[test]
    fn text_from_the_run_is_escaped_and_the_files_are_linked() {
        let verdict = verdict_of("<script>alert(1)</script>");
        let page = Page {
            title: "rate-test.js & co",
            chart: "chart.svg",
            k6_report: Some("report.html"),
        };
        let html = render(&page, &verdict).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
            "{html}"
        );
        assert!(html.contains("rate-test.js &amp; co"), "{html}");
        assert!(html.contains(r#"<img src="chart.svg""#), "{html}");
        assert!(html.contains(r#"<iframe src="report.html""#), "{html}");
        assert!(html.contains(">PASS<"), "{html}");
    }

    #[test]
    fn without_k6s_report_the_page_says_so() {
        let page = Page {
            title: "burst.js",
            chart: "chart.svg",
            k6_report: None,
        };
        let html = render(&page, &verdict_of("10.0.0.9")).unwrap();
        assert!(!html.contains("<iframe"), "{html}");
        assert!(html.contains("k6 wrote no HTML report"), "{html}");
    }
}
