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

use crate::common::{figment, free_port, serve, wait_for_port, TestDb};

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
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver starts a Chromium session");

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
    browser.close().await.ok();
    drop(driver);
    std::fs::remove_dir_all(&profile).ok();
    outcome.expect("the browser walk-through");
}
