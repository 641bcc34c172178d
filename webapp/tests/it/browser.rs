//! The page as a person uses it: headless Chromium (Debian's `chromium` driven through
//! `chromedriver` with fantoccini) loads `/`, submits the URL of a page served on
//! another local port, follows the short link it is shown and lands on that page.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use rocket::response::content::RawHtml;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::common::{figment, free_port, limiter_config, metric, serve, wait_for_port, TestDb};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const TARGET_TITLE: &str = "clusterlab browser test target";

#[rocket::get("/landing")]
fn landing() -> RawHtml<String> {
    RawHtml(format!(
        "<!doctype html><title>{TARGET_TITLE}</title><h1 id=\"landed\">landed</h1>"
    ))
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    url: String,
    _process: Child,
}

impl Driver {
    async fn spawn() -> Self {
        let port = free_port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{CHROMEDRIVER} is required (Debian's chromium-driver): {e}")
            });
        wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(20)).await;
        Self {
            url: format!("http://127.0.0.1:{port}"),
            _process: process,
        }
    }
}

/// Headless Chromium with a profile of its own, through its own chromedriver.
struct Browser {
    client: fantoccini::Client,
    driver: Driver,
    profile: std::path::PathBuf,
}

impl Browser {
    async fn start() -> Self {
        let profile = std::env::temp_dir().join(format!("cl-chromium-{}", free_port()));
        let driver = Driver::spawn().await;
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("chromedriver starts a Chromium session");
        Self {
            client,
            driver,
            profile,
        }
    }

    async fn close(self) {
        self.client.close().await.ok();
        drop(self.driver);
        std::fs::remove_dir_all(&self.profile).ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_shortens_a_url_and_follows_the_short_link() {
    let db = TestDb::create().await;
    let app = serve(webapp::rocket_from(figment(&db))).await;
    let target = serve(
        rocket::custom(rocket::Config::figment().merge(("log_level", "off")))
            .mount("/", rocket::routes![landing]),
    )
    .await;
    let target_url = target.url("/landing");

    let chromium = Browser::start().await;
    let browser = &chromium.client;
    let outcome = async {
        browser.goto(&app.url("/")).await?;
        assert_eq!(browser.title().await?, "URL Shortener");
        browser
            .find(Locator::Id("url"))
            .await?
            .send_keys(&target_url)
            .await?;
        browser.find(Locator::Id("submit")).await?.click().await?;
        let link = browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#result:not([hidden]) #short-link"))
            .await?;
        let href = link
            .attr("href")
            .await?
            .expect("the short link has an href");
        assert!(href.starts_with(&app.url("/")), "{href}");
        assert_eq!(href.len(), app.url("/").len() + 7, "{href}");
        assert!(
            browser
                .find(Locator::Id("copy"))
                .await?
                .is_displayed()
                .await?
        );

        link.click().await?;
        browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("landed"))
            .await?;
        assert_eq!(browser.current_url().await?.as_str(), target_url);
        assert_eq!(browser.title().await?, TARGET_TITLE);
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    chromium.close().await;
    outcome.expect("the browser walk-through");
}

/// The page shows who answered and what is left of the budget, and its burst button shows
/// per server what the app really answered: the counts equal the limiter's own decisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_server_the_budget_and_a_burst_held_to_the_limit() {
    let db = TestDb::create().await;
    let mut limiter = limiter_config(&db, 1_000_000);
    limiter["policies"]["shorten"] = json!({ "limit": 10, "window": "60s" });
    let figment = figment(&db)
        .merge(("limiter", limiter))
        .merge(("served_by", "web-test"))
        // 20 at once queue for 8 connections; what the limiter decides is under test here.
        .merge(("store.acquire_timeout_ms", 10_000))
        .merge(("page_burst", true));
    let app = serve(webapp::rocket_from(figment)).await;

    let chromium = Browser::start().await;
    let browser = &chromium.client;
    let outcome = async {
        browser.goto(&app.url("/")).await?;
        browser
            .find(Locator::Id("url"))
            .await?
            .send_keys("https://example.com/watched")
            .await?;
        browser.find(Locator::Id("submit")).await?.click().await?;
        let shown = browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#limiter:not([hidden])"))
            .await?
            .text()
            .await?;
        assert!(
            shown.starts_with(
                "Answered by web-test. 9 of 10 links left this minute, full again in "
            ),
            "{shown}"
        );

        browser.find(Locator::Id("burst")).await?.click().await?;
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#burst-result:not([hidden])"))
            .await?;
        let text =
            |id: &'static str| async move { browser.find(Locator::Id(id)).await?.text().await };
        let counts = (
            text("burst-admitted").await?,
            text("burst-refused").await?,
            text("burst-other").await?,
        );
        let row = browser
            .find(Locator::Css("#burst-rows tr[data-server=\"web-test\"]"))
            .await?
            .text()
            .await?;
        let after = browser.find(Locator::Id("limiter")).await?.text().await?;
        Ok::<_, fantoccini::error::CmdError>((counts, row, after))
    }
    .await;
    chromium.close().await;
    let ((admitted, refused, other), row, after) = outcome.expect("the browser walk-through");
    // One link was made before the burst: 9 of the 20 fit, 11 are refused.
    assert_eq!(
        (admitted.as_str(), refused.as_str(), other.as_str()),
        ("9", "11", "0")
    );
    assert_eq!(row, "web-test 9 11 0");
    assert!(after.contains("0 of 10 links left"), "{after}");
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let decisions = |outcome: &str| {
        metric(
            &metrics,
            &format!("ratelimit_decisions_total{{outcome=\"{outcome}\",policy=\"shorten\"}}"),
        )
    };
    assert_eq!((decisions("allowed"), decisions("limited")), (10.0, 11.0));
}
