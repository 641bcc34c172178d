//! The in-process cache of code -> URL. Links never change once created, so an entry
//! is never stale and a hot link is served without a database round trip; only the
//! capacity bounds it (quick_cache evicts the least useful entries first).

use std::sync::Arc;

use quick_cache::sync::Cache;

use crate::domain::ShortCode;

pub struct LinkCache {
    links: Cache<ShortCode, Arc<str>>,
}

impl LinkCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            links: Cache::new(capacity),
        }
    }

    pub fn get(&self, code: &ShortCode) -> Option<Arc<str>> {
        self.links.get(code)
    }

    pub fn insert(&self, code: ShortCode, url: Arc<str>) {
        self.links.insert(code, url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_it_is_given_within_capacity() {
        let cache = LinkCache::new(10);
        let code = ShortCode::parse("Ab3xY9z").unwrap();
        assert_eq!(cache.get(&code), None);
        cache.insert(code.clone(), "https://example.com/".into());
        assert_eq!(cache.get(&code).as_deref(), Some("https://example.com/"));
    }

    #[test]
    fn stays_bounded() {
        let cache = LinkCache::new(100);
        for _ in 0..1000 {
            cache.insert(ShortCode::generate(), "https://example.com/".into());
        }
        assert!(cache.links.len() <= 200, "{} entries", cache.links.len());
    }
}
