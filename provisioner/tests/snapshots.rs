//! Golden snapshots of every file rendered for the default cluster.yaml, for the Proxmox
//! example and for the multi-node homelab example (LXC host, VLAN, template from an image)
//! with both providers, plus the committed render staying in sync with the spec.

mod common;

use provisioner::spec::Cluster;

fn snapshot_all(prefix: &str, cluster: &Cluster) {
    let files = common::render(cluster);
    let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    insta::assert_snapshot!(format!("{prefix}__files"), names.join("\n"));
    for file in files {
        let name = format!("{prefix}__{}", file.path.display()).replace('/', "__");
        insta::assert_snapshot!(name, file.contents);
    }
}

#[test]
fn default_spec_renders_as_snapshotted() {
    snapshot_all("local", &common::load("cluster.yaml"));
}

#[test]
fn proxmox_bpg_example_renders_as_snapshotted() {
    snapshot_all("proxmox_bpg", &common::load("examples/proxmox.yaml"));
}

#[test]
fn proxmox_telmate_example_renders_as_snapshotted() {
    snapshot_all("proxmox_telmate", &common::telmate());
}

#[test]
fn proxmox_homelab_bpg_renders_as_snapshotted() {
    snapshot_all(
        "proxmox_homelab_bpg",
        &common::load("examples/proxmox-homelab.yaml"),
    );
}

#[test]
fn proxmox_homelab_telmate_renders_as_snapshotted() {
    snapshot_all("proxmox_homelab_telmate", &common::homelab_telmate());
}

#[test]
fn committed_render_matches_the_default_spec() {
    let root = common::repo_root();
    let output = common::provisioner()
        .current_dir(&root)
        .args(["render", "--check"])
        .output()
        .expect("run provisioner");
    assert!(
        output.status.success(),
        "terraform/ and compose/ drifted from cluster.yaml; run `provisioner render`:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
