//! Prometheus metrics: one [`Registry`] in managed state that every stage (the limiter
//! too) registers its collectors with, a fairing that counts requests by route and status
//! and times them, and `GET /metrics` in the Prometheus text format.

use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use rocket::fairing::{AdHoc, Fairing, Info, Kind};
use rocket::http::{ContentType, Status};
use rocket::{Data, Request, Response, State};

/// Requests that matched no route are labelled with this instead of a path, so
/// scanners probing random paths cannot grow the label set without bound.
const UNMATCHED: &str = "unmatched";

/// The collectors of the HTTP layer; other stages keep their own.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                clusterlab_contract::metrics::HTTP_REQUESTS,
                "HTTP requests answered, by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                clusterlab_contract::metrics::HTTP_LATENCY,
                "Time from request head to response, by route",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["method", "route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self { requests, latency })
    }
}

/// When the request arrived, kept in the request-local cache.
struct Started(Option<Instant>);

#[rocket::async_trait]
impl Fairing for HttpMetrics {
    fn info(&self) -> Info {
        Info {
            name: "HTTP metrics",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        req.local_cache(|| Started(Some(Instant::now())));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let route = req.route().map(|r| r.uri.path()).unwrap_or(UNMATCHED);
        let method = req.method().as_str();
        let status = res.status().code.to_string();
        self.requests
            .with_label_values(&[method, route, &status])
            .inc();
        if let Started(Some(at)) = req.local_cache(|| Started(None)) {
            self.latency
                .with_label_values(&[method, route])
                .observe(at.elapsed().as_secs_f64());
        }
    }
}

/// Every collector of the app in the Prometheus text format (version 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "The metrics.", body = String,
        content_type = "text/plain; version=0.0.4"),
))]
#[rocket::get("/metrics")]
fn metrics(registry: &State<Registry>) -> Result<(ContentType, Vec<u8>), Status> {
    let mut body = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut body)
        .map_err(|e| {
            rocket::error!("encoding metrics failed: {e}");
            Status::InternalServerError
        })?;
    Ok((
        ContentType::new("text", "plain").with_params(("version", "0.0.4")),
        body,
    ))
}

/// Attach before the other stages: they find the [`Registry`] in managed state at ignition.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Metrics", |rocket| async move {
        let registry = Registry::new();
        match HttpMetrics::register(&registry) {
            Ok(http) => Ok(rocket
                .manage(registry)
                .attach(http)
                .mount("/", rocket::routes![metrics])),
            Err(e) => {
                crate::launch::refuse(rocket, format!("registering HTTP metrics failed: {e}"))
            }
        }
    })
}
