//! Reads the compose files the plan renders (`compose/<host>.yml`) into typed service
//! specs, and substitutes their `${VAR}` placeholders from the secrets at deploy time.
//! Only the subset of the compose format that clusterlab renders is accepted; anything
//! else is an error rather than silently ignored, because an ignored key would be a
//! setting that never reaches the container.

use std::collections::BTreeMap;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::error::{ExecError, Result};

/// A parsed compose file: services in file order, and the named volumes it declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComposeFile {
    pub services: Vec<ServiceSpec>,
    pub volumes: Vec<String>,
}

/// One service as the deployer creates it. Before [`ServiceSpec::resolve`] its strings
/// may still hold `${VAR}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    pub container_name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub volumes: Vec<Mount>,
    pub restart: Restart,
    pub healthcheck: Option<Healthcheck>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MountKind {
    /// A named volume from the file's top-level `volumes:`.
    Volume,
    /// A path on the host.
    Bind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub kind: MountKind,
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

impl Mount {
    /// Docker's `Binds` form, which serves named volumes and host paths alike.
    pub fn bind_string(&self) -> String {
        let mode = if self.read_only { ":ro" } else { "" };
        format!("{}:{}{mode}", self.source, self.target)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Restart {
    No,
    Always,
    UnlessStopped,
    OnFailure { max_retries: Option<u32> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

// --- the YAML as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    // Obsolete in the compose spec but still common; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    services: IndexMap<String, RawService>,
    #[serde(default)]
    volumes: IndexMap<String, Option<serde_norway::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    image: String,
    #[serde(default)]
    command: Option<StringOrList>,
    #[serde(default)]
    environment: Option<MapOrList>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    restart: Option<String>,
    #[serde(default)]
    healthcheck: Option<RawHealthcheck>,
    #[serde(default)]
    labels: Option<MapOrList>,
    #[serde(default)]
    container_name: Option<String>,
    #[serde(default)]
    network_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthcheck {
    #[serde(default)]
    test: Option<StringOrList>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    start_period: Option<String>,
    #[serde(default)]
    disable: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    String(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MapOrList {
    Map(IndexMap<String, Option<Scalar>>),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::String(s) => s,
        }
    }
}

impl MapOrList {
    fn into_map(self) -> BTreeMap<String, String> {
        match self {
            MapOrList::Map(map) => map
                .into_iter()
                .map(|(k, v)| (k, v.map(Scalar::into_string).unwrap_or_default()))
                .collect(),
            MapOrList::List(items) => items
                .into_iter()
                .map(|item| match item.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (item, String::new()),
                })
                .collect(),
        }
    }
}

/// Parses a compose file rendered for `host` (the name only labels errors).
pub fn parse(host: &str, text: &str) -> Result<ComposeFile> {
    let error = |message: String| ExecError::Compose {
        host: host.to_owned(),
        message,
    };
    let raw: RawFile = serde_norway::from_str(text).map_err(|e| error(e.to_string()))?;
    let volumes: Vec<String> = raw.volumes.keys().cloned().collect();
    let mut services = Vec::with_capacity(raw.services.len());
    for (name, service) in raw.services {
        let service_error = |message: String| error(format!("services.{name}: {message}"));
        if let Some(mode) = service.network_mode.as_deref() {
            if mode != "host" {
                return Err(service_error(format!(
                    "network_mode must be \"host\" (each VM runs its services on its own address), not {mode:?}"
                )));
            }
        }
        let command =
            match service.command {
                None => None,
                Some(StringOrList::List(list)) => Some(list),
                Some(StringOrList::String(line)) => Some(shlex::split(&line).ok_or_else(|| {
                    service_error(format!("command has unbalanced quotes: {line}"))
                })?),
            };
        let mut mounts = Vec::with_capacity(service.volumes.len());
        for entry in &service.volumes {
            let mount = parse_mount(entry).map_err(|m| service_error(format!("volumes: {m}")))?;
            if mount.kind == MountKind::Volume && !volumes.contains(&mount.source) {
                return Err(service_error(format!(
                    "volumes: named volume {:?} is not declared in the top-level volumes",
                    mount.source
                )));
            }
            mounts.push(mount);
        }
        let restart = match service.restart.as_deref() {
            None => Restart::No,
            Some(text) => {
                parse_restart(text).map_err(|m| service_error(format!("restart: {m}")))?
            }
        };
        let healthcheck = match service.healthcheck {
            None => None,
            Some(raw) => {
                parse_healthcheck(raw).map_err(|m| service_error(format!("healthcheck: {m}")))?
            }
        };
        services.push(ServiceSpec {
            container_name: service.container_name.unwrap_or_else(|| name.clone()),
            name,
            image: service.image,
            command,
            environment: service
                .environment
                .map(MapOrList::into_map)
                .unwrap_or_default(),
            volumes: mounts,
            restart,
            healthcheck,
            labels: service.labels.map(MapOrList::into_map).unwrap_or_default(),
        });
    }
    Ok(ComposeFile { services, volumes })
}

fn parse_mount(entry: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = entry.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [source, target] => (*source, *target, None),
        [source, target, mode] => (*source, *target, Some(*mode)),
        _ => {
            return Err(format!(
                "{entry:?}: expected SOURCE:TARGET[:ro|rw] (anonymous volumes are not supported)"
            ))
        }
    };
    if source.is_empty() || !target.starts_with('/') {
        return Err(format!("{entry:?}: the target must be an absolute path"));
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => return Err(format!("{entry:?}: unknown mode {other:?} (ro or rw)")),
    };
    let kind = if source.starts_with('/') || source.starts_with('.') || source.starts_with('~') {
        MountKind::Bind
    } else {
        MountKind::Volume
    };
    if kind == MountKind::Bind && !source.starts_with('/') {
        return Err(format!(
            "{entry:?}: bind mounts must use absolute paths on the host (the file is deployed remotely)"
        ));
    }
    Ok(Mount {
        kind,
        source: source.to_owned(),
        target: target.to_owned(),
        read_only,
    })
}

fn parse_restart(text: &str) -> Result<Restart, String> {
    match text {
        "no" => Ok(Restart::No),
        "always" => Ok(Restart::Always),
        "unless-stopped" => Ok(Restart::UnlessStopped),
        "on-failure" => Ok(Restart::OnFailure { max_retries: None }),
        other => match other.strip_prefix("on-failure:") {
            Some(n) => n
                .parse()
                .map(|n| Restart::OnFailure {
                    max_retries: Some(n),
                })
                .map_err(|_| format!("{other:?}: the retry count must be a number")),
            None => Err(format!(
                "{other:?}: expected no, always, unless-stopped or on-failure[:N]"
            )),
        },
    }
}

fn parse_healthcheck(raw: RawHealthcheck) -> Result<Option<Healthcheck>, String> {
    if raw.disable {
        return Ok(None);
    }
    let test = match raw.test {
        None => return Err("test is required".into()),
        Some(StringOrList::String(line)) => vec!["CMD-SHELL".to_owned(), line],
        Some(StringOrList::List(list)) => {
            match list.first().map(String::as_str) {
                Some("NONE") => return Ok(None),
                Some("CMD") | Some("CMD-SHELL") if list.len() > 1 => {}
                _ => {
                    return Err(
                        "a list test must start with CMD or CMD-SHELL and have a command".into(),
                    )
                }
            }
            list
        }
    };
    let duration = |field: &str, value: Option<String>, default: Duration| match value {
        None => Ok(default),
        Some(text) => parse_duration(&text).map_err(|m| format!("{field}: {m}")),
    };
    // Docker's own defaults, so an omitted field means what it means with docker-compose.
    Ok(Some(Healthcheck {
        test,
        interval: duration("interval", raw.interval, Duration::from_secs(30))?,
        timeout: duration("timeout", raw.timeout, Duration::from_secs(30))?,
        retries: raw.retries.unwrap_or(3),
        start_period: duration("start_period", raw.start_period, Duration::ZERO)?,
    }))
}

/// Compose durations: one or more `<number><unit>` with units `h`, `m`, `s`, `ms`, `us`
/// (`1m30s`, `500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("{text:?}: missing unit (h, m, s, ms, us)"))?;
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: expected a number before the unit"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" => 1e-6,
            unit => return Err(format!("{text:?}: unknown unit {unit:?}")),
        };
        total += Duration::from_secs_f64(number * scale);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Substitutes `${NAME}` and `$NAME` from `variables`; `$$` is a literal `$`. The error
/// names the first variable that has no value.
pub fn substitute(text: &str, variables: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, next)| next) {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for (_, next) in chars.by_ref() {
                    if next == '}' {
                        closed = true;
                        break;
                    }
                    name.push(next);
                }
                if !closed || name.is_empty() {
                    return Err(format!("${{{name}"));
                }
                out.push_str(variables.get(&name).ok_or(name)?);
            }
            Some(next) if next == '_' || next.is_ascii_alphabetic() => {
                let mut name = String::new();
                while let Some(&(_, next)) = chars.peek() {
                    if next == '_' || next.is_ascii_alphanumeric() {
                        name.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(variables.get(&name).ok_or(name)?);
            }
            _ => out.push('$'),
        }
    }
    Ok(out)
}

impl ServiceSpec {
    /// The spec with every placeholder replaced from `secrets`. `host` only labels errors.
    pub fn resolve(&self, host: &str, secrets: &BTreeMap<String, String>) -> Result<ServiceSpec> {
        let sub = |field: &str, text: &str| {
            substitute(text, secrets).map_err(|variable| ExecError::UnresolvedVariable {
                host: host.to_owned(),
                service: self.name.clone(),
                field: field.to_owned(),
                variable,
            })
        };
        let mut resolved = self.clone();
        resolved.image = sub("image", &self.image)?;
        if let Some(command) = &self.command {
            resolved.command = Some(
                command
                    .iter()
                    .map(|arg| sub("command", arg))
                    .collect::<Result<_>>()?,
            );
        }
        for (key, value) in resolved.environment.iter_mut() {
            *value = sub(&format!("environment.{key}"), value)?;
        }
        for (key, value) in resolved.labels.iter_mut() {
            *value = sub(&format!("labels.{key}"), value)?;
        }
        for mount in resolved.volumes.iter_mut() {
            mount.source = sub("volumes", &mount.source)?;
        }
        if let Some(check) = resolved.healthcheck.as_mut() {
            check.test = check
                .test
                .iter()
                .map(|arg| sub("healthcheck.test", arg))
                .collect::<Result<_>>()?;
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
services:
  redis:
    image: clusterlab/redis:7
    container_name: redis
    network_mode: host
    command: redis-server --port 6379 --requirepass "${CLUSTERLAB_REDIS_PASSWORD}"
    environment:
      MODE: fast
      RETRIES: 3
    volumes:
      - redis-data:/data
      - /etc/clusterlab/nginx.conf:/etc/nginx/nginx.conf:ro
    restart: unless-stopped
    healthcheck:
      test: ["CMD-SHELL", "redis-cli -a \"$$PW\" ping"]
      interval: 2s
      timeout: 1500ms
      retries: 5
      start_period: 1m30s
    labels:
      clusterlab.role: cache
volumes:
  redis-data: {}
"#;

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_rendered_subset() {
        let file = parse("db", FILE).expect("parse");
        assert_eq!(file.volumes, vec!["redis-data".to_owned()]);
        let redis = &file.services[0];
        assert_eq!(redis.container_name, "redis");
        assert_eq!(
            redis.command.as_deref().expect("command"),
            [
                "redis-server",
                "--port",
                "6379",
                "--requirepass",
                "${CLUSTERLAB_REDIS_PASSWORD}"
            ]
        );
        assert_eq!(redis.environment["RETRIES"], "3");
        assert_eq!(redis.volumes[0].kind, MountKind::Volume);
        assert_eq!(
            redis.volumes[1].bind_string(),
            "/etc/clusterlab/nginx.conf:/etc/nginx/nginx.conf:ro"
        );
        assert_eq!(redis.restart, Restart::UnlessStopped);
        let check = redis.healthcheck.as_ref().expect("healthcheck");
        assert_eq!(check.interval, Duration::from_secs(2));
        assert_eq!(check.timeout, Duration::from_millis(1500));
        assert_eq!(check.start_period, Duration::from_secs(90));
        assert_eq!(check.retries, 5);
    }

    #[test]
    fn resolve_substitutes_and_unescapes() {
        let file = parse("db", FILE).expect("parse");
        let resolved = file.services[0]
            .resolve("db", &secrets(&[("CLUSTERLAB_REDIS_PASSWORD", "s3cret")]))
            .expect("resolve");
        assert_eq!(resolved.command.expect("command")[4], "s3cret");
        assert_eq!(
            resolved.healthcheck.expect("check").test[1],
            "redis-cli -a \"$PW\" ping"
        );
    }

    #[test]
    fn unresolved_placeholder_names_host_service_field_and_variable() {
        let file = parse("db", FILE).expect("parse");
        let error = file.services[0]
            .resolve("db", &BTreeMap::new())
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("db"), "{text}");
        assert!(text.contains("service redis"), "{text}");
        assert!(text.contains("command"), "{text}");
        assert!(text.contains("${CLUSTERLAB_REDIS_PASSWORD}"), "{text}");
    }

    #[test]
    fn substitution_forms() {
        let vars = secrets(&[("A", "1"), ("B_2", "two")]);
        assert_eq!(
            substitute("x${A}y$B_2-$$A $", &vars).unwrap(),
            "x1ytwo-$A $"
        );
        assert_eq!(substitute("${MISSING}", &vars).unwrap_err(), "MISSING");
        assert_eq!(substitute("$MISSING", &vars).unwrap_err(), "MISSING");
    }

    #[test]
    fn unknown_keys_and_foreign_network_modes_are_rejected() {
        let unknown = "services:\n  web:\n    image: x\n    ports: [\"80:80\"]\n";
        let error = parse("web1", unknown).unwrap_err().to_string();
        assert!(error.contains("web1") && error.contains("ports"), "{error}");

        let bridge = "services:\n  web:\n    image: x\n    network_mode: bridge\n";
        let error = parse("web1", bridge).unwrap_err().to_string();
        assert!(
            error.contains("services.web") && error.contains("bridge"),
            "{error}"
        );
    }

    #[test]
    fn undeclared_named_volume_is_an_error() {
        let text =
            "services:\n  pg:\n    image: x\n    volumes: [\"pgdata:/var/lib/postgresql/data\"]\n";
        let error = parse("db", text).unwrap_err().to_string();
        assert!(error.contains("pgdata"), "{error}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h2m3s").unwrap(), Duration::from_secs(3723));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
