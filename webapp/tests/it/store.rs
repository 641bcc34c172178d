//! The store's SQL on its own: code collisions are retried through the unique
//! constraint, and the retry gives up with a typed error instead of looping forever.

use std::collections::VecDeque;

use webapp::domain::{ShortCode, TargetUrl, UrlRules};
use webapp::store::{Shortened, Store, StoreError, MAX_CODE_ATTEMPTS};

use crate::common::{client, figment, TestDb};

fn url(raw: &str) -> TargetUrl {
    let rules = UrlRules {
        max_length: 2048,
        own_origin: None,
        allow_userinfo: false,
    };
    TargetUrl::parse(raw, &rules).unwrap()
}

fn code(raw: &str) -> ShortCode {
    ShortCode::parse(raw).unwrap()
}

#[tokio::test]
async fn a_colliding_code_is_retried_with_the_next_one() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let store = client.rocket().state::<Store>().unwrap();

    let taken = store
        .shorten(&url("https://a.example/"), || code("AAAAAAA"))
        .await
        .unwrap();
    assert_eq!(
        taken,
        Shortened {
            code: code("AAAAAAA"),
            created: true
        }
    );

    let mut codes = VecDeque::from([code("AAAAAAA"), code("AAAAAAA"), code("BBBBBBB")]);
    let drawn = std::cell::Cell::new(0);
    let next = store
        .shorten(&url("https://b.example/"), || {
            drawn.set(drawn.get() + 1);
            codes.pop_front().unwrap()
        })
        .await
        .unwrap();
    assert_eq!(
        next,
        Shortened {
            code: code("BBBBBBB"),
            created: true
        }
    );
    assert_eq!(drawn.get(), 3);

    assert_eq!(
        store.lookup(&code("AAAAAAA")).await.unwrap().as_deref(),
        Some("https://a.example/")
    );
    assert_eq!(
        store.lookup(&code("BBBBBBB")).await.unwrap().as_deref(),
        Some("https://b.example/")
    );
}

#[tokio::test]
async fn endless_collisions_end_in_an_error() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let store = client.rocket().state::<Store>().unwrap();
    store
        .shorten(&url("https://a.example/"), || code("CCCCCCC"))
        .await
        .unwrap();

    let mut drawn = 0;
    let result = store
        .shorten(&url("https://c.example/"), || {
            drawn += 1;
            code("CCCCCCC")
        })
        .await;
    assert!(matches!(result, Err(StoreError::NoFreeCode(n)) if n == MAX_CODE_ATTEMPTS));
    assert_eq!(drawn, MAX_CODE_ATTEMPTS);
    assert_eq!(store.lookup(&code("DDDDDDD")).await.unwrap(), None);
}

#[tokio::test]
async fn a_known_url_keeps_its_code_whatever_code_is_drawn() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let store = client.rocket().state::<Store>().unwrap();
    store
        .shorten(&url("https://a.example/"), || code("EEEEEEE"))
        .await
        .unwrap();
    let again = store
        .shorten(&url("https://a.example/"), || code("FFFFFFF"))
        .await
        .unwrap();
    assert_eq!(
        again,
        Shortened {
            code: code("EEEEEEE"),
            created: false
        }
    );
    assert_eq!(store.lookup(&code("FFFFFFF")).await.unwrap(), None);
}
