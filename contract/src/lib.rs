//! The contract between clusterlab's two programs: every value the provisioner writes into
//! a web container's environment and the web app reads back. Defined once, here, and
//! serialized/deserialized by serde on both sides, so the two cannot drift apart.
//!
//! # Layout
//! - [`Window`]: the one parser of `<n>s` / `<n>ms` (the spec validator uses it too).
//! - [`Algorithm`], [`FailMode`]: the limiter's choices, with their config spellings.
//! - [`route`]: the route-class names a policy is chosen by (the web app names its routes
//!   with these).
//! - `key`: [`client_id`], the name a client is billed under, [`redis_key`], the key a
//!   decision for (algorithm, policy, window, client) uses, and [`parse_redis_key`], its inverse.
//! - `budget`: [`read_budget`], what a key's stored state means (used, remaining, when the
//!   next unit returns), read exactly as the algorithm's script reads it.
//! - [`LimiterConfig`]: the web app's `limiter` settings, its defaults, and
//!   [`env_value`], the form `ROCKET_LIMITER` / `ROCKET_DATABASES` carry it in.
//! - [`metrics`]: the names of the web app's Prometheus series the provisioner reads back,
//!   and the outcome labels of its limiter decisions.
//! - [`secret_env`] and [`with_password`]: passwords travel as files of their own (never in
//!   the environment) and are put into connection URLs by the app, percent-encoded.

mod budget;
mod key;
pub mod metrics;
mod settings;
mod window;

pub use budget::{read_budget, Budget, BudgetError, RedisTime, Stored};
pub use key::{client_id, parse_redis_key, redis_key, LimiterKey};
pub use settings::{
    defaults, env_value, is_master_name, most_specific, Algorithm, Applies, FailMode, Limit,
    LimiterConfig, Network, Override, OverrideSpec, Policy, PolicySet, PolicySpec, RedisUrl, Rule,
    SentinelConfig, SettingsError,
};
pub use window::{Window, WindowError};

/// Route classes: a limited route's name picks the policy of the same name; a route whose
/// name has no policy is limited by [`route::DEFAULT`].
pub mod route {
    /// Everything without a policy of its own (e.g. the HTML page).
    pub const DEFAULT: &str = "default";
    /// `POST /shorten`.
    pub const SHORTEN: &str = "shorten";
    /// `GET /<code>`.
    pub const REDIRECT: &str = "redirect";
    /// Every class cluster.yaml gives a policy, in the order it lists them.
    pub const ALL: [&str; 3] = [DEFAULT, SHORTEN, REDIRECT];
}

/// The passwords a web container needs, by the names of their variables. The deployer
/// hands each over as a file, `/run/secrets/<NAME>` ([`secret_env::file_path`], Docker's
/// own convention for secrets), and tells the container where it is with `<NAME>_FILE`
/// ([`secret_env::file_variable`]): a value in the container's environment or command line
/// would show in `docker inspect`. The app also takes `<NAME>` itself, for running it by
/// hand. Raw either way (never inside a URL or a TOML string, where `@`, `:`, `/`, `%` or
/// quotes would break it): the app puts them into its connection URLs with [`with_password`].
pub mod secret_env {
    /// Redis' password: the limiter's `redis_url` gets it.
    pub const REDIS_PASSWORD: &str = "CLUSTERLAB_REDIS_PASSWORD";
    /// PostgreSQL's password: `databases.<name>.url` gets it.
    pub const POSTGRES_PASSWORD: &str = "CLUSTERLAB_POSTGRES_PASSWORD";
    /// Where a container finds its secret files.
    pub const DIR: &str = "/run/secrets";

    /// The file the deployer puts the secret `name` in, inside the container.
    pub fn file_path(name: &str) -> String {
        format!("{DIR}/{name}")
    }

    /// The variable that names [`file_path`] for `name`.
    pub fn file_variable(name: &str) -> String {
        format!("{name}_FILE")
    }
}

/// The web app's database (Rocket's `databases.<name>` and the PostgreSQL database/user).
pub const DATABASE: &str = "shortener";

/// `url` with its password set to `password`, percent-encoded, whatever characters it holds.
pub fn with_password(url: &str, password: &str) -> Result<String, SettingsError> {
    // `Url::set_password` leaves `%` alone (it takes already-encoded text), so a password
    // holding `%41` would arrive as `A`: encode every byte that is not alphanumeric first.
    let encoded =
        percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC);
    let mut parsed = url::Url::parse(url).map_err(|e| SettingsError::Url {
        url: RedisUrl::new(url).to_string(),
        reason: e.to_string(),
    })?;
    parsed
        .set_password(Some(&encoded.to_string()))
        .map_err(|()| SettingsError::Url {
            url: RedisUrl::new(url).to_string(),
            reason: "this URL cannot carry a password (no host)".into(),
        })?;
    Ok(parsed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_password_survives_into_a_url() {
        let hostile = "p@ss:w/rd%41'\"#?{}";
        let url = with_password("redis://10.0.0.5:6379/", hostile).expect("url");
        assert_eq!(
            url,
            "redis://:p%40ss%3Aw%2Frd%2541%27%22%23%3F%7B%7D@10.0.0.5:6379/"
        );
        let parsed = url::Url::parse(&url).expect("parses");
        let decoded = percent_encoding::percent_decode_str(parsed.password().expect("password"))
            .decode_utf8()
            .expect("utf-8");
        assert_eq!(decoded, hostile);
        let pg =
            with_password("postgres://shortener@10.0.0.6:5432/shortener", hostile).expect("url");
        assert!(pg.starts_with("postgres://shortener:p%40ss"), "{pg}");
        assert!(with_password("not a url", "x").is_err());
    }
}
