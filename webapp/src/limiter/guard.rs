//! The Rocket side of the limiter: `stage()` wires it into an app, the [`RateLimit`] guard
//! asks for a decision, a response fairing writes the headers, catchers answer 429/503 in JSON.
//!
//! A route opts in by taking `RateLimit` as its first parameter; its policy is the one
//! named like the route, else `default`. [`classed`] names routes after a route class of
//! `clusterlab_contract::route`, the names the provisioner writes policies under.

use prometheus::Registry;
use rocket::fairing::AdHoc;
use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome};
use rocket::serde::json::Json;
use rocket::{catch, catchers, Request, Response};

use super::headers::{self, RATELIMIT, RATELIMIT_POLICY, RETRY_AFTER};
use super::RedisProbe;
use super::{Applies, Decision, Limiter, LimiterConfig, Verdict, UNAVAILABLE_RETRY_AFTER};
use crate::api::ErrorBody;
use crate::health::{self, ReadinessCheck};
use crate::launch::refuse;

/// The figment key the configuration is read from (`[default.limiter]`, `ROCKET_LIMITER`).
pub const CONFIG_KEY: &str = "limiter";

/// `routes`, named `class`: the guard then limits them by the policy of that name.
pub fn classed(class: &'static str, mut routes: Vec<rocket::Route>) -> Vec<rocket::Route> {
    for route in &mut routes {
        route.name = Some(class.into());
    }
    routes
}

/// The verdict for this request, kept for the response fairing and the catchers.
struct Recorded(Option<Verdict>);

/// Proof that the request was admitted (or served fail-open: then there is no decision).
#[derive(Debug, Clone)]
pub struct RateLimit {
    decision: Option<Decision>,
}

impl RateLimit {
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RateLimit {
    type Error = Verdict;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let Some(limiter) = req.rocket().state::<Limiter>() else {
            log::error!("RateLimit guard used without limiter::stage() attached");
            return Outcome::Error((Status::InternalServerError, Verdict::FailedClosed));
        };
        // Cached per request: a request forwarded to a second guarded route is one request.
        let recorded = req
            .local_cache_async(async {
                // `remote()` is the socket peer; Rocket's `client_ip()` would trust
                // X-Real-IP from anyone.
                let address = limiter.identity().address(
                    req.remote().map(|peer| peer.ip()),
                    req.headers().get_one("X-Real-IP"),
                    req.headers().get("X-Forwarded-For"),
                );
                let route = req.route().and_then(|r| r.name.as_deref());
                let verdict = match limiter.policies().for_client(address, route) {
                    Applies::Policy(policy) => {
                        let client = limiter.identity().client_of(address);
                        limiter.check(policy, &client).await
                    }
                    Applies::Unlimited(_) => limiter.exempt(limiter.policies().for_route(route)),
                };
                Recorded(Some(verdict))
            })
            .await;
        match &recorded.0 {
            Some(Verdict::FailedClosed) | None => {
                Outcome::Error((Status::ServiceUnavailable, Verdict::FailedClosed))
            }
            Some(verdict) if verdict.refuses() => {
                Outcome::Error((Status::TooManyRequests, verdict.clone()))
            }
            Some(verdict) => Outcome::Success(RateLimit {
                decision: verdict.decision().cloned(),
            }),
        }
    }
}

/// Reads `limiter` from the figment, connects (lazily) to Redis, registers metrics into the
/// app's `prometheus::Registry` (managing a new one if the app has none yet), and adds the
/// header fairing and the 429/503 catchers. Ignition fails on an invalid configuration.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Rate limiter (Redis)", |rocket| async move {
        let figment = rocket.figment();
        let config = if figment.contains(CONFIG_KEY) {
            match figment.extract_inner::<LimiterConfig>(CONFIG_KEY) {
                Ok(config) => config,
                Err(error) => {
                    let reasons = crate::launch::figment_errors(error, CONFIG_KEY);
                    return refuse(rocket, reasons.join("\n"));
                }
            }
        } else {
            LimiterConfig::default()
        };
        let (rocket, registry) = match rocket.state::<Registry>().cloned() {
            Some(registry) => (rocket, registry),
            None => {
                let registry = Registry::new();
                (rocket.manage(registry.clone()), registry)
            }
        };
        match Limiter::new(&config, &registry) {
            Ok(limiter) => {
                log::info!(
                    "rate limiter: {} at {:?}, fail_mode {:?}, policies: {}",
                    config.algorithm.as_str(),
                    config.redis_url,
                    config.fail_mode,
                    limiter
                        .policies()
                        .iter()
                        .map(|p| format!("{} = {p}", p.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Err(e) = health::register(&rocket, RedisReady(limiter.probe())) {
                    return refuse(rocket, e);
                }
                Ok(rocket
                    .manage(limiter)
                    .attach(AdHoc::on_response("RateLimit headers", |req, res| {
                        Box::pin(async move { add_headers(req, res) })
                    }))
                    .register("/", catchers![too_many_requests, unavailable]))
            }
            Err(error) => refuse(rocket, format!("rate limiter: {error}")),
        }
    })
}

fn recorded<'r>(req: &'r Request<'_>) -> Option<&'r Verdict> {
    req.local_cache(|| Recorded(None)).0.as_ref()
}

fn add_headers(req: &Request<'_>, res: &mut Response<'_>) {
    let Some(verdict) = recorded(req) else {
        return;
    };
    if let Some(decision) = verdict.decision() {
        set_ratelimit(res, decision);
        if verdict.refuses() && res.status() == Status::TooManyRequests {
            res.set_header(Header::new(
                RETRY_AFTER,
                decision.retry_after_seconds().to_string(),
            ));
        }
    } else if *verdict == Verdict::FailedClosed && res.status() == Status::ServiceUnavailable {
        res.set_header(Header::new(
            RETRY_AFTER,
            UNAVAILABLE_RETRY_AFTER.to_string(),
        ));
    }
}

fn set_ratelimit(res: &mut Response<'_>, decision: &Decision) {
    res.set_header(Header::new(
        RATELIMIT_POLICY,
        headers::policy_value(decision),
    ));
    res.set_header(Header::new(RATELIMIT, headers::ratelimit_value(decision)));
}

#[catch(429)]
fn too_many_requests(req: &Request<'_>) -> Json<ErrorBody> {
    let retry_after = recorded(req)
        .filter(|verdict| verdict.refuses())
        .and_then(Verdict::decision)
        .map_or(UNAVAILABLE_RETRY_AFTER, Decision::retry_after_seconds);
    Json(ErrorBody {
        error: "Rate limit exceeded".into(),
        retry_after: Some(retry_after),
    })
}

#[catch(503)]
fn unavailable(req: &Request<'_>) -> Json<ErrorBody> {
    Json(match recorded(req) {
        Some(Verdict::FailedClosed) => ErrorBody {
            error: "Rate limiter unavailable".into(),
            retry_after: Some(UNAVAILABLE_RETRY_AFTER),
        },
        _ => ErrorBody {
            error: "Service unavailable".into(),
            retry_after: None,
        },
    })
}

/// `/readyz` reports Redis: the limit is global only while every server reaches it.
struct RedisReady(RedisProbe);

#[rocket::async_trait]
impl ReadinessCheck for RedisReady {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}
