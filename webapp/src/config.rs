//! The app's own settings, read from Rocket's figment (Rocket.toml `[default]` and
//! `ROCKET_*` variables) and checked at ignition, so a bad value stops the launch
//! instead of surfacing on the first request.

use std::time::Duration;

use clusterlab_contract as contract;
use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::http::Status;
use serde::Deserialize;
use url::Url;

use crate::domain::UrlRules;

/// Settings as written in the figment; [`Settings`] is the validated form.
#[derive(Debug, Deserialize)]
struct RawSettings {
    #[serde(default = "default_redirect_status")]
    redirect_status: u16,
    #[serde(default = "default_max_url_length")]
    max_url_length: usize,
    #[serde(default)]
    public_base_url: Option<String>,
    #[serde(default = "default_link_cache_capacity")]
    link_cache_capacity: usize,
    /// Accept `https://user:pw@host/`; refused by default (see [`UrlRules::allow_userinfo`]).
    #[serde(default)]
    allow_userinfo: bool,
    #[serde(default)]
    store: RawStoreSettings,
    /// The name this server answers `X-Served-By` with; the machine's host name by default.
    #[serde(default)]
    served_by: Option<String>,
    /// Whether the page offers its "send 20 at once" button.
    #[serde(default)]
    page_burst: bool,
}

/// The `store` table, in milliseconds.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawStoreSettings {
    acquire_timeout_ms: u64,
    query_timeout_ms: u64,
    probe_interval_ms: u64,
}

impl Default for RawStoreSettings {
    fn default() -> Self {
        Self {
            acquire_timeout_ms: 200,
            query_timeout_ms: 2000,
            probe_interval_ms: 500,
        }
    }
}

impl RawStoreSettings {
    fn validate(&self) -> Result<StoreSettings, ConfigError> {
        let positive = |key: &'static str, ms: u64| match ms {
            0 => Err(ConfigError::StoreDuration(key)),
            ms => Ok(Duration::from_millis(ms)),
        };
        Ok(StoreSettings {
            acquire_timeout: positive("acquire_timeout_ms", self.acquire_timeout_ms)?,
            query_timeout: positive("query_timeout_ms", self.query_timeout_ms)?,
            probe_interval: positive("probe_interval_ms", self.probe_interval_ms)?,
        })
    }
}

fn default_redirect_status() -> u16 {
    302
}

fn default_max_url_length() -> usize {
    2048
}

fn default_link_cache_capacity() -> usize {
    100_000
}

/// Why the settings were refused at ignition.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the app settings: {0}")]
    Figment(#[from] Box<rocket::figment::Error>),
    #[error("redirect_status = {0}: use one of 301, 302, 307 or 308")]
    RedirectStatus(u16),
    #[error("max_url_length = {0}: use a value of at least 16")]
    MaxUrlLength(usize),
    #[error("public_base_url = {url:?}: {reason}")]
    PublicBaseUrl { url: String, reason: String },
    #[error("link_cache_capacity = 0: use a positive number of links")]
    CacheCapacity,
    #[error("store.{0} = 0: use a positive number of milliseconds")]
    StoreDuration(&'static str),
    #[error("served_by = {0:?}: use 1 to 63 letters, digits, '.', '_' or '-'")]
    ServedBy(String),
    #[error(transparent)]
    Password(#[from] contract::SettingsError),
    #[error("{variable} = {path:?}: cannot read the password file: {reason}")]
    PasswordFile {
        variable: String,
        path: String,
        reason: String,
    },
}

/// Validated settings, kept in managed state.
#[derive(Debug, Clone)]
pub struct Settings {
    pub redirect_status: Status,
    pub url_rules: UrlRules,
    /// Without a trailing slash, so `short_url` is `base + "/" + code`.
    pub public_base_url: Option<String>,
    pub link_cache_capacity: usize,
    pub store: StoreSettings,
    /// This server's name in `X-Served-By`, on every answer.
    pub served_by: String,
    pub page_burst: bool,
}

/// How long a request waits for PostgreSQL, and how often a down one is looked at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// For a pooled connection: past it the request is answered 503.
    pub acquire_timeout: Duration,
    /// For the answer to the queries of one request, once connected.
    pub query_timeout: Duration,
    /// Between probes while the store's circuit breaker is open.
    pub probe_interval: Duration,
}

impl Settings {
    pub fn from_figment(figment: &rocket::figment::Figment) -> Result<Self, ConfigError> {
        let raw: RawSettings = figment.extract().map_err(Box::new)?;
        let redirect_status = match raw.redirect_status {
            301 | 302 | 307 | 308 => Status::new(raw.redirect_status),
            other => return Err(ConfigError::RedirectStatus(other)),
        };
        if raw.max_url_length < 16 {
            return Err(ConfigError::MaxUrlLength(raw.max_url_length));
        }
        if raw.link_cache_capacity == 0 {
            return Err(ConfigError::CacheCapacity);
        }
        let store = raw.store.validate()?;
        let served_by = match raw.served_by {
            Some(name) => name,
            None => machine_name(),
        };
        let name_ok = (1..=63).contains(&served_by.len())
            && served_by
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            return Err(ConfigError::ServedBy(served_by));
        }
        let own_origin = match raw.public_base_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(parse_base_url(text)?),
        };
        let public_base_url = own_origin
            .as_ref()
            .map(|url| url.as_str().trim_end_matches('/').to_owned());
        Ok(Self {
            redirect_status,
            url_rules: UrlRules {
                max_length: raw.max_url_length,
                own_origin,
                allow_userinfo: raw.allow_userinfo,
            },
            public_base_url,
            link_cache_capacity: raw.link_cache_capacity,
            store,
            served_by,
            page_burst: raw.page_burst,
        })
    }

    /// What a client is given to follow: absolute when the public URL is known.
    pub fn short_url(&self, code: &str) -> String {
        match &self.public_base_url {
            Some(base) => format!("{base}/{code}"),
            None => format!("/{code}"),
        }
    }
}

/// The kernel's host name (a container's is its own), or `webapp` where there is none.
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "webapp".to_owned())
}

fn parse_base_url(text: &str) -> Result<Url, ConfigError> {
    let refuse = |reason: &str| ConfigError::PublicBaseUrl {
        url: text.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(text).map_err(|e| refuse(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(refuse("expected an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("a base URL has no query or fragment"));
    }
    Ok(url)
}

/// The secret `name` (a [`contract::secret_env`] name): the variable itself, or else the
/// contents of the file that `<name>_FILE` names, byte for byte (the deployer writes the
/// exact value). `None` when neither is set. `var` reads the environment.
pub fn secret(
    name: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    if let Some(value) = var(name) {
        return Ok(Some(value));
    }
    let variable = contract::secret_env::file_variable(name);
    let Some(path) = var(&variable) else {
        return Ok(None);
    };
    std::fs::read_to_string(&path)
        .map(Some)
        .map_err(|e| ConfigError::PasswordFile {
            variable,
            path,
            reason: e.to_string(),
        })
}

/// The figment with the passwords the deployer passes as variables of their own
/// (`clusterlab_contract::secret_env`) put into the connection URLs, percent-encoded: the
/// limiter's `redis_url` (its default when unset) and `databases.<DATABASE>.url`. A raw
/// variable carries any password; pasted into a URL or a TOML string, `@:/%"` would not survive.
pub fn with_passwords(
    figment: Figment,
    redis: Option<&str>,
    postgres: Option<&str>,
) -> Result<Figment, ConfigError> {
    let mut figment = figment;
    if let Some(password) = redis {
        let key = "limiter.redis_url";
        let url = figment
            .extract_inner::<String>(key)
            .unwrap_or_else(|_| contract::defaults::REDIS_URL.to_owned());
        let url = contract::with_password(&url, password)?;
        figment = figment.merge((key, url));
    }
    if let Some(password) = postgres {
        let key = format!("databases.{}.url", contract::DATABASE);
        let url: String = figment.extract_inner(&key).map_err(Box::new)?;
        let url = contract::with_password(&url, password)?;
        figment = figment.merge((key, url));
    }
    Ok(figment)
}

/// The header naming the server that answered, so a client behind the load balancer can
/// see which one did (the page shows it; so does every `curl -i`).
pub const SERVED_BY: &str = "X-Served-By";

/// Reads and validates the settings first, so every later stage can rely on them, and
/// names this server in every answer.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("App settings", |rocket| async move {
        match Settings::from_figment(rocket.figment()) {
            Ok(settings) => {
                let name = settings.served_by.clone();
                Ok(rocket
                    .manage(settings)
                    .attach(AdHoc::on_response(SERVED_BY, move |_, res| {
                        let name = name.clone();
                        Box::pin(async move {
                            res.set_header(rocket::http::Header::new(SERVED_BY, name));
                        })
                    })))
            }
            Err(e) => crate::launch::refuse(rocket, e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::{Format, Toml};
    use rocket::figment::Figment;

    #[test]
    fn a_secret_comes_from_its_variable_or_else_from_its_file_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("webapp-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("pw");
        std::fs::write(&file, "p@ss w\"rd\n").expect("write");
        let path = file.to_string_lossy().into_owned();
        let env = |pairs: Vec<(&'static str, String)>| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            }
        };
        let from_file = secret("PW", env(vec![("PW_FILE", path.clone())])).expect("read");
        assert_eq!(from_file.as_deref(), Some("p@ss w\"rd\n"));
        let direct = secret("PW", env(vec![("PW", "x".into()), ("PW_FILE", path)]));
        assert_eq!(direct.expect("read").as_deref(), Some("x"));
        assert_eq!(secret("PW", env(vec![])).expect("nothing"), None);
        let missing = dir.join("missing").to_string_lossy().into_owned();
        let error = secret("PW", env(vec![("PW_FILE", missing.clone())])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("PW_FILE = {missing:?}: cannot read")),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    fn settings(toml: &str) -> Result<Settings, ConfigError> {
        Settings::from_figment(&Figment::from(Toml::string(toml)))
    }

    #[test]
    fn defaults() {
        let s = settings("").unwrap();
        assert_eq!(s.redirect_status, Status::Found);
        assert_eq!(s.url_rules.max_length, 2048);
        assert!(!s.url_rules.allow_userinfo);
        assert_eq!(s.short_url("Ab3xY9z"), "/Ab3xY9z");
        assert_eq!(s.store.acquire_timeout, Duration::from_millis(200));
        let s = settings("store = { query_timeout_ms = 900 }").unwrap();
        assert_eq!(s.store.query_timeout, Duration::from_millis(900));
        assert_eq!(s.store.acquire_timeout, Duration::from_millis(200));
    }

    #[test]
    fn public_base_url_prefixes_short_urls() {
        let s = settings(r#"public_base_url = "http://127.0.0.1:8080/""#).unwrap();
        assert_eq!(s.short_url("Ab3xY9z"), "http://127.0.0.1:8080/Ab3xY9z");
        let s = settings(r#"public_base_url = "https://sho.rt/s""#).unwrap();
        assert_eq!(s.short_url("Ab3xY9z"), "https://sho.rt/s/Ab3xY9z");
    }

    #[test]
    fn refuses_bad_values() {
        assert!(matches!(
            settings("redirect_status = 200"),
            Err(ConfigError::RedirectStatus(200))
        ));
        assert!(matches!(
            settings("max_url_length = 3"),
            Err(ConfigError::MaxUrlLength(3))
        ));
        assert!(matches!(
            settings(r#"public_base_url = "ftp://x""#),
            Err(ConfigError::PublicBaseUrl { .. })
        ));
        assert!(matches!(
            settings(r#"redirect_status = "soon""#),
            Err(ConfigError::Figment(_))
        ));
        assert!(matches!(
            settings("store = { probe_interval_ms = 0 }"),
            Err(ConfigError::StoreDuration("probe_interval_ms"))
        ));
        assert!(matches!(
            settings("store = { acquire_timeout = 200 }"),
            Err(ConfigError::Figment(_))
        ));
    }

    #[test]
    fn accepts_every_redirect_status() {
        for code in [301u16, 302, 307, 308] {
            let s = settings(&format!("redirect_status = {code}")).unwrap();
            assert_eq!(s.redirect_status.code, code);
        }
    }
}
