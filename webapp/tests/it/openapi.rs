//! The API document: the committed `webapp/openapi.json` is what the code generates (run
//! with `CLUSTERLAB_UPDATE_OPENAPI=1` to rewrite it after changing a route), and the
//! running app serves that same document.

use rocket::http::{ContentType, Status};

use crate::common::{client, figment, TestDb};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

#[test]
fn committed_document_is_the_generated_one() {
    let generated = webapp::openapi::json().expect("the document serializes");
    if std::env::var_os("CLUSTERLAB_UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).expect("webapp/openapi.json is writable");
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "webapp/openapi.json is not the document the code generates; rewrite it with \
         `CLUSTERLAB_UPDATE_OPENAPI=1 cargo test -p webapp --test it openapi` and commit it"
    );
}

#[tokio::test]
async fn the_app_serves_its_document() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let res = client.get("/openapi.json").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.content_type(), Some(ContentType::JSON));
    // Not limited: no limiter headers, as for the other operations routes.
    assert!(res.headers().get_one("RateLimit").is_none());
    let served = res.into_string().await.expect("a body");
    assert_eq!(served, webapp::openapi::json().unwrap());
    let document: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/",
        "/shorten",
        "/{code}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
}
