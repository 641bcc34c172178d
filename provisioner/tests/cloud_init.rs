//! The rendered cloud-init user data of the Proxmox target, read as YAML and through
//! Terraform's `templatefile()` (the golden text is in tests/snapshots/, with every other
//! rendered file). The real boot of this user data is tests/cloud_init_boot.rs.

mod common;

use provisioner::plan::cloud_init::DATA_DISK;
use provisioner::plan::RenderedFile;
use provisioner::spec::Role;
use serde_norway::Value;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtestkeytestkeytestkeytestkeytestkeytest1 cibt@test";

fn user_data(files: &[RenderedFile]) -> Vec<&RenderedFile> {
    files
        .iter()
        .filter(|f| f.path.starts_with("terraform/cloud-init"))
        .collect()
}

#[test]
fn every_proxmox_host_gets_user_data_from_one_template_and_local_hosts_none() {
    let bpg = common::render(&common::load("examples/proxmox.yaml"));
    let telmate = common::render(&common::telmate());
    let cluster = common::load("examples/proxmox.yaml");
    let paths: Vec<String> = user_data(&bpg)
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    let wanted: Vec<String> = cluster
        .hosts
        .iter()
        .map(|h| format!("terraform/cloud-init/{}.yaml", h.name))
        .collect();
    assert_eq!(paths, wanted);
    let same: Vec<(&RenderedFile, &RenderedFile)> = user_data(&bpg)
        .into_iter()
        .zip(user_data(&telmate))
        .collect();
    for (a, b) in same {
        assert_eq!(a, b, "both providers boot the same user data");
    }
    let local = common::render(&common::load("cluster.yaml"));
    assert!(user_data(&local).is_empty());
}

#[test]
fn user_data_sets_up_the_user_docker_and_the_data_disk_of_data_hosts() {
    let cluster = common::load("examples/proxmox.yaml");
    let files = common::render(&cluster);
    for host in &cluster.hosts {
        let file = files
            .iter()
            .find(|f| f.path.ends_with(format!("{}.yaml", host.name)))
            .expect("user data");
        assert!(file.contents.starts_with("#cloud-config\n"));
        assert!(provisioner::plan::is_rendered(&file.contents));
        let yaml: Value = serde_norway::from_str(&file.contents.replace("${ssh_public_key}", KEY))
            .unwrap_or_else(|e| panic!("{}: {e}", file.path.display()));
        let name = host.name.as_str();
        assert_eq!(yaml["hostname"].as_str(), Some(name));
        assert_eq!(yaml["manage_etc_hosts"].as_bool(), Some(true));
        // Defect 6: no top-level group, so docker.io's postinst creates `docker` itself.
        assert!(yaml.get("groups").is_none(), "{name}");
        let user = &yaml["users"][0];
        assert_eq!(user["name"].as_str(), Some(cluster.ssh.user.as_str()));
        assert_eq!(user["ssh_authorized_keys"][0].as_str(), Some(KEY));
        assert_eq!(user["sudo"].as_str(), Some("ALL=(ALL) NOPASSWD:ALL"));
        assert_eq!(user["shell"].as_str(), Some("/bin/bash"));
        let groups = serde_norway::to_string(&user["groups"]).expect("groups");
        assert!(!groups.contains("docker"), "{name}: {groups}");
        assert_eq!(yaml["package_update"].as_bool(), Some(true));
        let packages: Vec<&str> = yaml["packages"]
            .as_sequence()
            .expect("packages")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            packages,
            ["docker.io", "docker-registry", "curl", "qemu-guest-agent"]
        );
        let runcmd = serde_norway::to_string(&yaml["runcmd"]).expect("runcmd");
        assert!(runcmd.contains("usermod"), "{runcmd}");
        // The package's own registry (every interface, :5000) never runs; a deploy starts
        // one on loopback for the length of a push.
        assert!(runcmd.contains("docker-registry.service"), "{runcmd}");

        let data = matches!(host.role, Role::Redis | Role::Postgres);
        assert_eq!(yaml.get("fs_setup").is_some(), data, "{name}");
        assert_eq!(yaml.get("mounts").is_some(), data, "{name}");
        if data {
            let fs = &yaml["fs_setup"][0];
            assert_eq!(fs["device"].as_str(), Some(DATA_DISK.device));
            assert_eq!(fs["filesystem"].as_str(), Some("ext4"));
            assert_eq!(fs["label"].as_str(), Some(DATA_DISK.label));
            assert_eq!(fs["overwrite"].as_bool(), Some(false));
            // Formats only a disk on which blkid finds nothing.
            assert!(
                fs["cmd"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("blkid --probe %(device)s || mkfs")),
                "{fs:?}"
            );
            let mount: Vec<&str> = yaml["mounts"][0]
                .as_sequence()
                .expect("mount entry")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(
                mount,
                [
                    DATA_DISK.device,
                    DATA_DISK.mount_point,
                    "ext4",
                    "defaults,nofail",
                    "0",
                    "2"
                ]
            );
        }
    }
}

#[test]
fn terraform_templatefile_accepts_every_user_data_file_and_substitutes_the_key() {
    let dir = common::render_to_temp(&common::load("examples/proxmox.yaml"));
    let files = common::render(&common::load("examples/proxmox.yaml"));
    let files = user_data(&files);
    let key = dir.path().join("key.pub");
    std::fs::write(&key, format!("{KEY}\n")).expect("key");
    // One console for all files (it prints only its last answer when not interactive):
    // the files' results, base64 so each is one plain word, joined with commas.
    let paths: Vec<String> = files
        .iter()
        .map(|f| format!("{:?}", dir.path().join(&f.path).display().to_string()))
        .collect();
    let answer = common::terraform_console(
        dir.path(),
        &format!(
            "join(\",\", [for f in [{}] : base64encode(templatefile(f, {{ ssh_public_key = trimspace(file({:?})) }}))])",
            paths.join(", "),
            key.display().to_string()
        ),
    );
    let answers: Vec<&str> = answer.split(',').collect();
    assert_eq!(answers.len(), files.len(), "{answer}");
    for (file, answer) in files.iter().zip(answers) {
        let text = common::base64_decode(answer);
        assert_eq!(
            text,
            file.contents.replace("${ssh_public_key}", KEY),
            "{}: Terraform substitutes the key and nothing else",
            file.path.display()
        );
    }
}
