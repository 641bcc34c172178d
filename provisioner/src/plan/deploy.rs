//! Plan layer: the deploy as data. From the spec alone this computes which host gets which
//! image, file and converge, in which order and with what parallelism; the exec layer's one
//! executor ([`crate::exec::deploy`]) runs it. `up` and `deploy` differ only in the
//! [`Scope`] they ask for, `deploy --version` and `rollback` only in where the web image
//! comes from ([`version_plan`]), and the order is tested here by equality.

use std::path::PathBuf;

use super::services::{services, ServiceSpec};
use super::versions::Version;
use crate::spec::{Cluster, Host, Role};

/// Where the load balancer's nginx config lives on its host (the compose file mounts it).
pub const NGINX_CONF_REMOTE: &str = "/etc/clusterlab/nginx.conf";
/// The rendered nginx config, relative to the render root.
pub const NGINX_CONF_LOCAL: &str = "compose/nginx.conf";

/// What to deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every service: data stores, web app, load balancer (`up`).
    All,
    /// Only the web app, rolled one host at a time (`deploy`).
    App,
}

/// One thing to do on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make the image present on the host (shipped or pulled, per `images.mode`).
    Image { image: String },
    /// Give the host's `image` a second tag, `<repository>:<version>` (its short image ID),
    /// so the host keeps that version for `deploy --version` and `rollback` once `image`
    /// names a newer one.
    TagVersion { image: String },
    /// Point `image` at the version the host kept (`<repository>:<version>`; an error when
    /// it has none), so the converge that follows runs it: a rollback takes the path of
    /// every deploy. The image `image` named until then keeps its version tag.
    UseVersion { image: String, version: Version },
    /// Remove the version tags of `image`'s repository beyond the newest `retain`, never
    /// one a container uses ([`super::versions::to_prune`]).
    PruneVersions { image: String, retain: u32 },
    /// Write a rendered file (relative to the render root) to a path on the host.
    Upload { file: PathBuf, remote: String },
    /// Converge the host's containers to its services (the values `compose/<host>.yml`
    /// is serialized from). With `defer_replace`, a running container whose spec changed
    /// is left running for a later converge of the same services (a new one is still
    /// created, a stopped one still started).
    Converge {
        services: Vec<ServiceSpec>,
        defer_replace: bool,
    },
    /// Make the running Redis accept the spec's password besides its current one (an ACL
    /// password added to the default user), so web hosts rolled onto the new password
    /// and those still on the old one are both served; the later converge that replaces
    /// the container leaves only the new one. Nothing happens when Redis is not running.
    AcceptRedisPassword { container: String },
    /// When converge replaced or restarted a container of this task, wait this long before
    /// the next stage: the load balancer marks a host that refused connections as failed
    /// for `fail_timeout_s`, and if the next web host went down while this one is still
    /// marked, nginx would have no live upstream and answer 502.
    SettleAfterReplace { seconds: u32 },
    /// Run `command` in `container` when an earlier upload of the same task changed the
    /// file while converge left the container alone: the service must re-read its config,
    /// but replacing the container for it would drop connections for nothing.
    ReloadOnChange {
        container: String,
        command: Vec<String>,
    },
}

/// A host's actions, run in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTask {
    pub host: String,
    pub actions: Vec<Action>,
}

/// Tasks that run concurrently (one per host); a stage starts when the previous one has
/// finished everywhere, because later services need earlier ones (the web app needs its
/// database, nginx needs a healthy upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub tasks: Vec<HostTask>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployPlan {
    pub stages: Vec<Stage>,
}

impl DeployPlan {
    /// Every host the plan touches, in first-use order (the hosts to connect to).
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::new();
        for task in self.stages.iter().flat_map(|s| &s.tasks) {
            if !hosts.contains(&task.host) {
                hosts.push(task.host.clone());
            }
        }
        hosts
    }

    /// The plan cut before its first stage that needs `image`: `up` runs the first part (the
    /// data stores) while that image (the web app's) is still being built.
    pub fn split_before_image(&self, image: &str) -> (DeployPlan, DeployPlan) {
        let needs = |stage: &Stage| {
            stage
                .tasks
                .iter()
                .flat_map(|t| &t.actions)
                .any(|a| matches!(a, Action::Image { image: i } if i == image))
        };
        let cut = self
            .stages
            .iter()
            .position(needs)
            .unwrap_or(self.stages.len());
        let (first, rest) = self.stages.split_at(cut);
        (
            DeployPlan {
                stages: first.to_vec(),
            },
            DeployPlan {
                stages: rest.to_vec(),
            },
        )
    }

    /// Every image the plan puts on a host (what the local engine must hold in ship mode).
    pub fn images(&self) -> Vec<String> {
        let mut images: Vec<String> = Vec::new();
        for action in self
            .stages
            .iter()
            .flat_map(|s| &s.tasks)
            .flat_map(|t| &t.actions)
        {
            if let Action::Image { image } = action {
                if !images.contains(image) {
                    images.push(image.clone());
                }
            }
        }
        images
    }
}

fn converge(cluster: &Cluster, host: &Host) -> Action {
    Action::Converge {
        services: services(cluster, host),
        defer_replace: false,
    }
}

/// The deploy steps for `scope`. Data stores come up together; web images reach every web
/// host at once (the slow part), then the web hosts converge one at a time so the load
/// balancer always keeps a healthy upstream; nginx goes last, when it has upstreams.
///
/// A running Redis is replaced only after the web hosts: every web host asks it before
/// serving, so with a new password it first accepts both, the web hosts roll onto the new
/// one, and only then does a new container keep just the new one. No web host ever holds
/// a password that Redis refuses.
pub fn deploy_plan(cluster: &Cluster, scope: Scope) -> DeployPlan {
    plan(cluster, scope, None)
}

/// `deploy --version` and `rollback`: the web app only, as [`Scope::App`] deploys it, but
/// each web host runs `version` from its own kept images instead of a new one; whether every
/// host keeps it is checked before ([`super::versions::require_everywhere`]).
pub fn version_plan(cluster: &Cluster, version: &Version) -> DeployPlan {
    plan(cluster, Scope::App, Some(version))
}

/// The web image of every web host: the spec's, brought there and tagged with its version,
/// or a version the host kept.
fn web_image(cluster: &Cluster, version: Option<&Version>) -> Vec<Action> {
    let image = cluster.images.webapp.clone();
    match version {
        None => vec![
            Action::Image {
                image: image.clone(),
            },
            Action::TagVersion { image },
        ],
        Some(version) => vec![Action::UseVersion {
            image,
            version: version.clone(),
        }],
    }
}

fn plan(cluster: &Cluster, scope: Scope, version: Option<&Version>) -> DeployPlan {
    let images = &cluster.images;
    let mut stages = Vec::new();
    let redis: Vec<&Host> = match scope {
        Scope::All => cluster.hosts_with(Role::Redis).collect(),
        _ => Vec::new(),
    };
    if scope == Scope::All {
        let data: Vec<HostTask> = cluster
            .hosts
            .iter()
            .filter_map(|host| match host.role {
                Role::Postgres => Some(HostTask {
                    host: host.name.clone(),
                    actions: vec![
                        Action::Image {
                            image: images.postgres.clone(),
                        },
                        converge(cluster, host),
                    ],
                }),
                Role::Redis => Some(HostTask {
                    host: host.name.clone(),
                    actions: vec![
                        Action::Image {
                            image: images.redis.clone(),
                        },
                        Action::AcceptRedisPassword {
                            container: "redis".into(),
                        },
                        Action::Converge {
                            services: services(cluster, host),
                            defer_replace: true,
                        },
                    ],
                }),
                _ => None,
            })
            .collect();
        stages.push(Stage {
            name: "data stores".into(),
            tasks: data,
        });
    }
    let web: Vec<&Host> = cluster.hosts_with(Role::Web).collect();
    stages.push(Stage {
        name: "web images".into(),
        tasks: web
            .iter()
            .map(|host| HostTask {
                host: host.name.clone(),
                actions: web_image(cluster, version),
            })
            .collect(),
    });
    let settle = cluster.load_balancer.fail_timeout_s + 1;
    for (index, host) in web.iter().enumerate() {
        let mut actions = vec![converge(cluster, host)];
        // The last web host has no successor that could go down while it is marked.
        if index + 1 < web.len() {
            actions.push(Action::SettleAfterReplace { seconds: settle });
        }
        stages.push(Stage {
            name: format!("web {}", host.name),
            tasks: vec![HostTask {
                host: host.name.clone(),
                actions,
            }],
        });
    }
    // A Sentinel group's nodes one at a time: a node that restarts asks the sentinels for
    // the primary and rejoins before the next one goes.
    let several = redis.len() > 1;
    for host in redis {
        stages.push(Stage {
            name: if several {
                format!("redis {} after the web hosts", host.name)
            } else {
                "redis after the web hosts".into()
            },
            tasks: vec![HostTask {
                host: host.name.clone(),
                actions: vec![converge(cluster, host)],
            }],
        });
    }
    if scope == Scope::All {
        if let Some(lb) = cluster.the(Role::LoadBalancer) {
            stages.push(Stage {
                name: "load balancer".into(),
                tasks: vec![HostTask {
                    host: lb.name.clone(),
                    actions: vec![
                        Action::Image {
                            image: images.nginx.clone(),
                        },
                        Action::Upload {
                            file: PathBuf::from(NGINX_CONF_LOCAL),
                            remote: NGINX_CONF_REMOTE.into(),
                        },
                        converge(cluster, lb),
                        Action::ReloadOnChange {
                            container: "nginx".into(),
                            command: vec!["nginx".into(), "-s".into(), "reload".into()],
                        },
                    ],
                }],
            });
        }
    }
    // Last, when every web host runs the new version: what the next rollback may need
    // stays, the rest goes.
    stages.push(Stage {
        name: "web versions".into(),
        tasks: web
            .iter()
            .map(|host| HostTask {
                host: host.name.clone(),
                actions: vec![Action::PruneVersions {
                    image: images.webapp.clone(),
                    retain: cluster.app.retain,
                }],
            })
            .collect(),
    });
    DeployPlan { stages }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn a_sentinel_group_is_restarted_one_node_at_a_time_after_the_web_hosts() {
        let plan = deploy_plan(&Cluster::sentinel_group_example(), Scope::All);
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
        let after_web: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| n.starts_with("redis "))
            .collect();
        assert_eq!(
            after_web,
            [
                "redis redis after the web hosts",
                "redis redis2 after the web hosts",
                "redis redis3 after the web hosts"
            ]
        );
        let data = &plan.stages[0];
        assert_eq!(data.name, "data stores");
        let hosts: Vec<&str> = data.tasks.iter().map(|t| t.host.as_str()).collect();
        assert_eq!(hosts, ["redis", "redis2", "redis3", "postgres"]);
    }

    #[test]
    fn up_cuts_the_plan_where_the_web_app_image_is_first_needed() {
        let cluster = Cluster::sentinel_group_example();
        let plan = deploy_plan(&cluster, Scope::All);
        let (data, rest) = plan.split_before_image(&cluster.images.webapp);
        let names =
            |p: &DeployPlan| -> Vec<String> { p.stages.iter().map(|s| s.name.clone()).collect() };
        assert_eq!(names(&data), ["data stores"]);
        assert_eq!(
            rest.stages.first().map(|s| s.name.as_str()),
            Some("web images")
        );
        assert_eq!([names(&data), names(&rest)].concat(), names(&plan));
        assert!(!data.images().contains(&cluster.images.webapp));
        // A plan without the image stays whole in the first part.
        let (all, none) = data.split_before_image(&cluster.images.webapp);
        assert_eq!((all, none.stages.len()), (data.clone(), 0));
    }

    fn task(host: &str, actions: Vec<Action>) -> HostTask {
        HostTask {
            host: host.into(),
            actions,
        }
    }

    fn image(name: &str) -> Action {
        Action::Image { image: name.into() }
    }

    fn services_of(host: &str) -> Vec<ServiceSpec> {
        let cluster = Cluster::repository_default();
        let host = cluster.hosts.iter().find(|h| h.name == host).expect("host");
        services(&cluster, host)
    }

    fn converge(host: &str) -> Action {
        Action::Converge {
            services: services_of(host),
            defer_replace: false,
        }
    }

    fn web_stages() -> Vec<Stage> {
        let shipped = || {
            vec![
                image("clusterlab/webapp:latest"),
                Action::TagVersion {
                    image: "clusterlab/webapp:latest".into(),
                },
            ]
        };
        let mut stages = web_rolls();
        stages.insert(
            0,
            Stage {
                name: "web images".into(),
                tasks: vec![task("web1", shipped()), task("web2", shipped())],
            },
        );
        stages
    }

    /// The web hosts converged one at a time.
    fn web_rolls() -> Vec<Stage> {
        vec![
            Stage {
                name: "web web1".into(),
                tasks: vec![task(
                    "web1",
                    vec![converge("web1"), Action::SettleAfterReplace { seconds: 11 }],
                )],
            },
            Stage {
                name: "web web2".into(),
                tasks: vec![task("web2", vec![converge("web2")])],
            },
        ]
    }

    fn prune_stage() -> Stage {
        let prune = || Action::PruneVersions {
            image: "clusterlab/webapp:latest".into(),
            retain: 3,
        };
        Stage {
            name: "web versions".into(),
            tasks: vec![task("web1", vec![prune()]), task("web2", vec![prune()])],
        }
    }

    #[test]
    fn up_orders_data_then_web_one_by_one_then_the_load_balancer() {
        let plan = deploy_plan(&Cluster::repository_default(), Scope::All);
        let mut expected = vec![Stage {
            name: "data stores".into(),
            tasks: vec![
                task(
                    "redis",
                    vec![
                        image("clusterlab/redis:7"),
                        Action::AcceptRedisPassword {
                            container: "redis".into(),
                        },
                        Action::Converge {
                            services: services_of("redis"),
                            defer_replace: true,
                        },
                    ],
                ),
                task(
                    "postgres",
                    vec![image("clusterlab/postgres:15"), converge("postgres")],
                ),
            ],
        }];
        expected.extend(web_stages());
        expected.push(Stage {
            name: "redis after the web hosts".into(),
            tasks: vec![task("redis", vec![converge("redis")])],
        });
        expected.push(Stage {
            name: "load balancer".into(),
            tasks: vec![task(
                "lb",
                vec![
                    image("clusterlab/nginx:1"),
                    Action::Upload {
                        file: PathBuf::from("compose/nginx.conf"),
                        remote: "/etc/clusterlab/nginx.conf".into(),
                    },
                    converge("lb"),
                    Action::ReloadOnChange {
                        container: "nginx".into(),
                        command: vec!["nginx".into(), "-s".into(), "reload".into()],
                    },
                ],
            )],
        });
        expected.push(prune_stage());
        assert_eq!(plan, DeployPlan { stages: expected });
        assert_eq!(plan.hosts(), ["redis", "postgres", "web1", "web2", "lb"]);
        assert_eq!(
            plan.images(),
            [
                "clusterlab/redis:7",
                "clusterlab/postgres:15",
                "clusterlab/webapp:latest",
                "clusterlab/nginx:1"
            ]
        );
    }

    #[test]
    fn deploy_touches_only_the_web_hosts() {
        let plan = deploy_plan(&Cluster::repository_default(), Scope::App);
        let mut stages = web_stages();
        stages.push(prune_stage());
        assert_eq!(plan, DeployPlan { stages });
        assert_eq!(plan.hosts(), ["web1", "web2"]);
    }

    #[test]
    fn a_version_deploy_rolls_like_a_deploy_from_the_kept_image() {
        let mut cluster = Cluster::repository_default();
        cluster.app.retain = 2;
        let version = Version::from_tag("4f2a9c81d0e3").expect("version");
        let plan = version_plan(&cluster, &version);
        let use_it = || {
            vec![Action::UseVersion {
                image: "clusterlab/webapp:latest".into(),
                version: version.clone(),
            }]
        };
        let mut stages = vec![Stage {
            name: "web images".into(),
            tasks: vec![task("web1", use_it()), task("web2", use_it())],
        }];
        stages.extend(web_rolls());
        let mut prune = prune_stage();
        for task in &mut prune.tasks {
            task.actions = vec![Action::PruneVersions {
                image: "clusterlab/webapp:latest".into(),
                retain: 2,
            }];
        }
        stages.push(prune);
        assert_eq!(plan, DeployPlan { stages });
        assert!(plan.images().is_empty(), "nothing to build or ship");
    }
}
