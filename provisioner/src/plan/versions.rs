//! Plan layer: the web app's versions as data. A version is the short form of its image's
//! ID ([`super::lifecycle::version_of`]); every deploy leaves it on each web host as the tag
//! `<repository>:<version>` beside the spec's name, and the host keeps the newest
//! `app.retain` of them. Which tags a host prunes, which hosts lack a version, and which
//! version `rollback` goes back to are decided here, from what the exec layer found on the
//! hosts and in the audit log.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::lifecycle::{version_of, AuditEntry};

/// A web app version: 12 lowercase hex digits, the short image ID `docker images` shows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(String);

/// Hex digits in a version.
const LEN: usize = 12;

impl Version {
    /// The version of the image with this ID (`sha256:...` or bare hex).
    pub fn of_image(id: &str) -> Version {
        Version(version_of(id))
    }

    /// The version a tag names, when it is one: exactly what a deploy writes (12 lowercase
    /// hex digits), so a tag someone gave by hand (`v1.2`, `latest`) is never pruned.
    pub fn from_tag(tag: &str) -> Option<Version> {
        let digits =
            tag.len() == LEN && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        digits.then(|| Version(tag.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a user may type: a version, a longer prefix of the image ID, or the whole
/// `sha256:...` ID, in either case.
impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Version, VersionError> {
        let hex = text
            .strip_prefix("sha256:")
            .unwrap_or(text)
            .to_ascii_lowercase();
        if hex.len() >= LEN && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Version::of_image(&hex))
        } else {
            Err(VersionError::NotAVersion(text.to_owned()))
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a version cannot be deployed; nothing was changed in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error(
        "{0:?} is not a version: a version is the first 12 (or more) hex digits of the web \
         image's ID, as `provisioner versions` lists them"
    )]
    NotAVersion(String),
    #[error(
        "version {version} is not retained on {}: it was pruned, or never deployed there.\n\
         Nothing was changed. `provisioner versions` lists the versions each web host keeps.",
        .missing.join(", ")
    )]
    NotRetained {
        version: Version,
        missing: Vec<String>,
    },
    #[error(
        "no version to roll back to: the audit log has no successful up, deploy or rollback \
         of a version other than {}.\nNothing was changed. `provisioner versions` lists the \
         versions the web hosts keep; `provisioner rollback VERSION` deploys one of them.",
        .current.as_ref().map_or_else(|| "the current one".to_owned(), ToString::to_string)
    )]
    NoPrevious { current: Option<Version> },
}

/// One version a host keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    pub version: Version,
    /// The image's creation time; `None` when the engine reports none (sorted oldest).
    pub created: Option<DateTime<Utc>>,
}

/// What one web host holds: its versions, newest first, and the one its web container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVersions {
    pub host: String,
    pub retained: Vec<Retained>,
    /// The version of the web container's image; `None` without a web container.
    pub running: Option<Version>,
}

impl HostVersions {
    pub fn keeps(&self, version: &Version) -> bool {
        self.retained.iter().any(|r| r.version == *version)
    }
}

/// Sorts versions newest first. Newest means the image's creation time, not the audit log's
/// order: every host can sort its own tags without the load balancer (the log goes with that
/// host, and one written on another machine may lack lines), the time is part of the image's
/// config and so the same on every host, and it is the order `docker images` (and Kamal's
/// pruning) uses. A rollback therefore does not make an old version young again: the next
/// deploys prune it first. Ties (and images without a time) fall back to the version, so
/// every host decides alike.
pub fn newest_first(retained: &mut [Retained]) {
    retained.sort_by(newer_first);
}

/// The order of [`newest_first`], for lists of things that carry a [`Retained`].
pub fn newer_first(a: &Retained, b: &Retained) -> std::cmp::Ordering {
    b.created
        .cmp(&a.created)
        .then_with(|| b.version.cmp(&a.version))
}

/// The versions to remove on a host: all but the newest `retain`, except those a container
/// uses (`in_use`, running or not: Docker refuses to untag them, and the old container of a
/// replace is started again from its image).
pub fn to_prune(retained: &[Retained], retain: u32, in_use: &[Version]) -> Vec<Version> {
    let mut sorted = retained.to_vec();
    newest_first(&mut sorted);
    sorted
        .into_iter()
        .skip(usize::try_from(retain).unwrap_or(usize::MAX))
        .map(|r| r.version)
        .filter(|v| !in_use.contains(v))
        .collect()
}

/// Refuses `version` unless every web host keeps it, naming the hosts that do not.
pub fn require_everywhere(hosts: &[HostVersions], version: &Version) -> Result<(), VersionError> {
    let missing: Vec<String> = hosts
        .iter()
        .filter(|h| !h.keeps(version))
        .map(|h| h.host.clone())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(VersionError::NotRetained {
            version: version.clone(),
            missing,
        })
    }
}

/// The commands whose success puts a version on the web hosts.
const DEPLOYING: [&str; 3] = ["up", "deploy", "rollback"];

/// Where `rollback` without a version goes: the version deployed before the current one.
///
/// The deployed versions are those of the audit log's successful `up`, `deploy` and
/// `rollback` lines, in order (a failed or refused command may have changed nothing, so it
/// counts for nothing). The current version is what the web hosts run:
/// - all run one version: the newest deployed version other than it. Rolling back twice
///   therefore returns to where the first rollback started (as `heroku rollback` does), since
///   the first one is itself the newest deploy;
/// - they run different versions (a deploy failed halfway): the newest deployed version,
///   so every host is back on the last one that succeeded everywhere;
/// - none runs a web container: the newest deployed version other than the log's last.
pub fn previous(
    audit: &[AuditEntry],
    running: &[Option<Version>],
) -> Result<Version, VersionError> {
    let deployed: Vec<Version> = audit
        .iter()
        .filter(|e| e.succeeded() && DEPLOYING.contains(&e.command.as_str()))
        .filter_map(|e| e.version.as_deref().and_then(|v| v.parse().ok()))
        .collect();
    let mut current: Vec<&Version> = running.iter().flatten().collect();
    current.sort();
    current.dedup();
    let current = match current.as_slice() {
        [] => deployed.last().cloned(),
        [one] => Some((*one).clone()),
        _ => {
            return deployed
                .last()
                .cloned()
                .ok_or(VersionError::NoPrevious { current: None })
        }
    };
    deployed
        .iter()
        .rev()
        .find(|v| Some(*v) != current.as_ref())
        .cloned()
        .ok_or(VersionError::NoPrevious { current })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::from_tag(text).unwrap_or_else(|| panic!("{text} is no version tag"))
    }

    const A: &str = "aaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbb";
    const C: &str = "cccccccccccc";
    const D: &str = "dddddddddddd";

    fn kept(version: &str, minute: u32) -> Retained {
        Retained {
            version: v(version),
            created: Some(
                format!("2025-05-01T10:{minute:02}:00Z")
                    .parse()
                    .expect("time"),
            ),
        }
    }

    fn entry(command: &str, version: Option<&str>, failure: Option<&str>) -> AuditEntry {
        AuditEntry::now(
            "ana@laptop".into(),
            command,
            version.map(str::to_owned),
            failure,
            None,
        )
    }

    fn ok(command: &str, version: &str) -> AuditEntry {
        entry(command, Some(version), None)
    }

    #[test]
    fn only_what_a_deploy_writes_is_a_version_tag() {
        assert_eq!(Version::from_tag(A).map(|x| x.to_string()), Some(A.into()));
        for tag in [
            "latest",
            "v1.2",
            "AAAAAAAAAAAA",
            "aaaaaaaaaaa",
            "aaaaaaaaaaaaa",
            "gggggggggggg",
        ] {
            assert_eq!(Version::from_tag(tag), None, "{tag}");
        }
    }

    #[test]
    fn a_typed_version_may_be_longer_or_the_whole_id() {
        let full = "sha256:4F2A9C81D0E3b7aa00000000000000000000000000000000000000000000ffff";
        assert_eq!(full.parse::<Version>(), Ok(v("4f2a9c81d0e3")));
        assert_eq!("4f2a9c81d0e3b7".parse::<Version>(), Ok(v("4f2a9c81d0e3")));
        assert_eq!(A.parse::<Version>(), Ok(v(A)));
        for bad in [
            "",
            "4f2a9c",
            "latest",
            "4f2a9c81d0e3; rm -rf /",
            "../../etc/passwd00",
        ] {
            let error = bad.parse::<Version>().expect_err(bad);
            assert_eq!(error, VersionError::NotAVersion(bad.into()));
            assert!(
                error.to_string().contains("provisioner versions"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_host_keeps_the_newest_by_creation_time_and_what_containers_use() {
        // Listed in no particular order, as the engine lists them.
        let retained = [kept(B, 2), kept(D, 4), kept(A, 1), kept(C, 3)];
        assert_eq!(to_prune(&retained, 2, &[]), [v(B), v(A)]);
        assert_eq!(to_prune(&retained, 3, &[]), [v(A)]);
        assert_eq!(to_prune(&retained, 4, &[]), Vec::<Version>::new());
        assert_eq!(to_prune(&retained, 9, &[]), Vec::<Version>::new());
        // After a rollback to B, B runs: it stays beside the newest, whatever `retain` says.
        assert_eq!(to_prune(&retained, 1, &[v(B)]), [v(C), v(A)]);
        assert_eq!(to_prune(&retained, 2, &[v(A), v(B)]), Vec::<Version>::new());
    }

    #[test]
    fn ties_and_unknown_times_sort_the_same_on_every_host() {
        let unknown = Retained {
            version: v(D),
            created: None,
        };
        let mut one = vec![kept(A, 5), unknown.clone(), kept(B, 5), kept(C, 1)];
        let mut other = vec![kept(C, 1), kept(B, 5), kept(A, 5), unknown];
        newest_first(&mut one);
        newest_first(&mut other);
        assert_eq!(one, other);
        let order: Vec<&str> = one.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(order, [B, A, C, D]);
    }

    #[test]
    fn a_version_missing_anywhere_is_refused_naming_those_hosts() {
        let host = |name: &str, versions: &[&str]| HostVersions {
            host: name.into(),
            retained: versions.iter().map(|x| kept(x, 0)).collect(),
            running: None,
        };
        let hosts = [host("web1", &[C, B]), host("web2", &[C]), host("web3", &[])];
        assert_eq!(require_everywhere(&hosts, &v(C)).map_err(|_| ()), Err(()));
        assert_eq!(require_everywhere(&hosts[..2], &v(C)), Ok(()));
        let error = require_everywhere(&hosts, &v(B)).expect_err("B is not everywhere");
        assert_eq!(
            error,
            VersionError::NotRetained {
                version: v(B),
                missing: vec!["web2".into(), "web3".into()]
            }
        );
        let text = error.to_string();
        assert!(
            text.starts_with("version bbbbbbbbbbbb is not retained on web2, web3:"),
            "{text}"
        );
        assert!(text.contains("Nothing was changed."), "{text}");
    }

    #[test]
    fn previous_is_the_version_deployed_before_the_running_one() {
        let log = [ok("up", A), ok("deploy", B), ok("deploy", C)];
        assert_eq!(previous(&log, &[Some(v(C)), Some(v(C))]), Ok(v(B)));
        // A repeated version (an `up` that changed nothing) is not a version of its own.
        let log = [ok("up", A), ok("deploy", B), ok("up", B)];
        assert_eq!(previous(&log, &[Some(v(B))]), Ok(v(A)));
    }

    #[test]
    fn rolling_back_twice_returns_to_where_the_first_started() {
        let mut log = vec![
            ok("up", A),
            ok("deploy", B),
            ok("deploy", C),
            ok("rollback", B),
        ];
        assert_eq!(previous(&log, &[Some(v(B)), Some(v(B))]), Ok(v(C)));
        log.push(ok("rollback", C));
        assert_eq!(previous(&log, &[Some(v(C)), Some(v(C))]), Ok(v(B)));
    }

    #[test]
    fn failed_and_other_commands_count_for_nothing() {
        let log = [
            ok("up", A),
            ok("deploy", B),
            // Refused: C was pruned; the hosts still run B.
            entry(
                "deploy",
                Some(C),
                Some("version cccccccccccc is not retained on web1"),
            ),
            entry("deploy", None, Some("building the web app failed")),
            ok("destroy", D),
            entry("lock", Some(D), None),
        ];
        assert_eq!(previous(&log, &[Some(v(B)), Some(v(B))]), Ok(v(A)));
    }

    #[test]
    fn hosts_left_on_different_versions_all_go_back_to_the_last_success() {
        // The deploy of C failed halfway: web1 runs C, web2 still B.
        let log = [
            ok("up", A),
            ok("deploy", B),
            entry("deploy", Some(C), Some("deploy failed on web2")),
        ];
        assert_eq!(previous(&log, &[Some(v(C)), Some(v(B))]), Ok(v(B)));
        assert_eq!(
            previous(&log[2..], &[Some(v(C)), Some(v(B))]),
            Err(VersionError::NoPrevious { current: None })
        );
    }

    #[test]
    fn without_web_containers_the_log_says_what_is_current() {
        let log = [ok("up", A), ok("deploy", B)];
        assert_eq!(previous(&log, &[None, None]), Ok(v(A)));
        assert_eq!(previous(&log, &[]), Ok(v(A)));
    }

    #[test]
    fn nothing_before_the_first_version_is_a_clear_error() {
        let error = previous(&[ok("up", A)], &[Some(v(A))]).expect_err("nothing before A");
        assert_eq!(
            error,
            VersionError::NoPrevious {
                current: Some(v(A))
            }
        );
        let text = error.to_string();
        assert!(text.contains("other than aaaaaaaaaaaa"), "{text}");
        assert!(text.contains("provisioner rollback VERSION"), "{text}");
        assert_eq!(
            previous(&[], &[]),
            Err(VersionError::NoPrevious { current: None })
        );
    }
}
