//! Plan layer: the cloud-init user data of every Proxmox VM, one file per host rendered from
//! `templates/cloud-init/user-data.yaml.tera` for both providers. Each file is itself a
//! Terraform template (read with `templatefile()`) whose only variable is `ssh_public_key`,
//! so the key is substituted by Terraform and never written by `render`.

use std::path::PathBuf;

use serde::Serialize;

use crate::spec::{Cluster, Host, HostKind, Target};

/// The template's name in [`super::TEMPLATES`].
pub const TEMPLATE: &str = "cloud-init/user-data.yaml";

/// The first line cloud-init requires of user data in the cloud-config format.
pub const MAGIC: &str = "#cloud-config";

/// The one variable the rendered user data leaves for Terraform's `templatefile()`.
pub const KEY_VARIABLE: &str = "ssh_public_key";

/// The data hosts' disk, as the Terraform (scsi1), the user data (format, mount) and the
/// compose files (volumes under the mount point) all see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DataDisk {
    /// Proxmox names a VM's disks by their bus slot; udev's by-id link is stable.
    pub device: &'static str,
    pub label: &'static str,
    pub mount_point: &'static str,
}

/// The Proxmox data disk of a `redis` or `postgres` host.
pub const DATA_DISK: DataDisk = DataDisk {
    device: "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_drive-scsi1",
    label: "clusterlab-data",
    mount_point: super::DATA_DIR,
};

/// The data disk a host's user data formats and mounts: data hosts that are VMs (an LXC
/// data host gets its storage as a mount point from Proxmox, with no disk to format).
pub fn data_disk(host: &Host) -> Option<DataDisk> {
    (host.role.holds_data() && host.kind == HostKind::Vm).then_some(DATA_DISK)
}

/// Where `render` writes a host's user data (relative to the output root); Terraform reads
/// it from `${path.module}/cloud-init/<host>.yaml`.
pub fn path(host: &Host) -> PathBuf {
    PathBuf::from(format!("terraform/cloud-init/{}.yaml", host.name))
}

/// The hosts that get user data: every host of a Proxmox cluster, none of a local one.
pub fn hosts(cluster: &Cluster) -> impl Iterator<Item = &Host> {
    cluster
        .hosts
        .iter()
        .filter(move |_| cluster.target == Target::Proxmox)
}

/// The template's context for one host.
#[derive(Serialize)]
pub(super) struct View<'a> {
    pub header: &'static str,
    pub cluster: &'a Cluster,
    pub host: &'a Host,
    pub data_disk: Option<DataDisk>,
}

/// Checks that `text` leaves Terraform exactly one thing to do: substitute
/// `${ssh_public_key}`. Any other `${` or `%{` would be read by `templatefile()` as an
/// interpolation or directive (and fail, or worse, substitute); the template doubles them.
pub fn check_interpolations(text: &str) -> Result<(), String> {
    let wanted = format!("${{{KEY_VARIABLE}}}");
    let mut rest = text;
    let mut found = 0;
    while let Some(at) = rest.find(['$', '%']) {
        let tail = &rest[at..];
        if tail.starts_with("$${") || tail.starts_with("%%{") {
            rest = &tail[3..];
        } else if tail.starts_with(&wanted) {
            found += 1;
            rest = &tail[wanted.len()..];
        } else if tail[1..].starts_with('{') {
            let line = text[..text.len() - tail.len()].matches('\n').count() + 1;
            return Err(format!(
                "line {line}: `{}` would be read by templatefile(); double it ($${{ / %%{{)",
                &tail[..2]
            ));
        } else {
            rest = &tail[1..];
        }
    }
    if found == 0 {
        return Err(format!("no `{wanted}`: the login user would get no key"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_is_left_for_terraform() {
        assert_eq!(check_interpolations("k: \"${ssh_public_key}\"\n"), Ok(()));
        assert_eq!(
            check_interpolations("a: $${HOME} %%{ if } ${ssh_public_key} 5% $x\n"),
            Ok(())
        );
        assert!(check_interpolations("a: 1\n")
            .unwrap_err()
            .contains("no `${ssh_public_key}`"));
        let error = check_interpolations("k: ${ssh_public_key}\nb: ${HOME}\n").unwrap_err();
        assert!(error.starts_with("line 2: `${`"), "{error}");
        let error = check_interpolations("k: ${ssh_public_key}\n%{ if x }\n").unwrap_err();
        assert!(error.starts_with("line 2: `%{`"), "{error}");
    }
}
