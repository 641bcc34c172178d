//! Plan layer: pure functions from a validated [`Cluster`] to the files it renders
//! (Terraform workspace, compose files, nginx config), the deploy steps ([`deploy`]), the
//! deploy lock's and audit log's records and commands ([`lifecycle`]) and the web app's
//! retained versions ([`versions`]: what to prune, where `rollback` goes) as data. Nothing
//! here touches a disk or a host; the same spec always gives byte-identical files.

pub mod cloud_init;
mod commands;
pub mod deploy;
pub mod lifecycle;
pub mod loadtest;
pub mod services;
pub mod versions;

use std::path::PathBuf;

use serde::Serialize;
use tera::Tera;

pub use commands::{
    container_name, data_volume_name, databases, env_value, limiter_config, local_host_resource,
    network_create_args, redis_cli, sentinel_group, ssh_args, vm_run_args, volume_name,
    SentinelGroup, DATA_DIR, DIND_VM_FLAGS, POSTGRES_PASSWORD_VAR, POSTGRES_PORT,
    REDIS_PASSWORD_VAR, REDIS_PORT, SENTINEL_PORT, WEB_PORT,
};

use crate::spec::{Cluster, Host, HostKind, Proxmox, ProxmoxProvider, Role, Target};

/// First line of every rendered file; also how `render` recognises files it owns.
pub const HEADER: &str =
    "# Rendered by `provisioner render` from cluster.yaml: edit that (or templates/), not this file.";

/// Whether `text` is a file `render` wrote: [`HEADER`] on its first line, or on its second
/// after `#cloud-config`, which cloud-init requires on the first line of user data.
pub fn is_rendered(text: &str) -> bool {
    let mut lines = text.lines();
    match lines.next() {
        Some(HEADER) => true,
        Some(cloud_init::MAGIC) => lines.next() == Some(HEADER),
        _ => false,
    }
}

/// The templates, compiled into the binary so `render` is deterministic and needs no
/// install step; they live in the repository's `templates/` directory.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "terraform/outputs.tf",
        include_str!("../../../templates/terraform/outputs.tf.tera"),
    ),
    (
        "terraform/local/main.tf",
        include_str!("../../../templates/terraform/local/main.tf.tera"),
    ),
    (
        "terraform/local/variables.tf",
        include_str!("../../../templates/terraform/local/variables.tf.tera"),
    ),
    (
        "terraform/local/versions.tf",
        include_str!("../../../templates/terraform/local/versions.tf.tera"),
    ),
    (
        "terraform/bpg/main.tf",
        include_str!("../../../templates/terraform/bpg/main.tf.tera"),
    ),
    (
        "terraform/bpg/variables.tf",
        include_str!("../../../templates/terraform/bpg/variables.tf.tera"),
    ),
    (
        "terraform/bpg/versions.tf",
        include_str!("../../../templates/terraform/bpg/versions.tf.tera"),
    ),
    (
        "terraform/telmate/main.tf",
        include_str!("../../../templates/terraform/telmate/main.tf.tera"),
    ),
    (
        "terraform/telmate/variables.tf",
        include_str!("../../../templates/terraform/telmate/variables.tf.tera"),
    ),
    (
        "terraform/telmate/versions.tf",
        include_str!("../../../templates/terraform/telmate/versions.tf.tera"),
    ),
    (
        "nginx/nginx.conf",
        include_str!("../../../templates/nginx/nginx.conf.tera"),
    ),
    (
        cloud_init::TEMPLATE,
        include_str!("../../../templates/cloud-init/user-data.yaml.tera"),
    ),
];

/// One file of the plan: a path relative to the output root, and its full text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: PathBuf,
    pub contents: String,
}

/// A template failed to render: a bug in `templates/`, never in the user's spec.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("template {name} failed to render: {message}")]
    Template { name: String, message: String },
    #[error("{path}: {message}")]
    TerraformTemplate { path: String, message: String },
}

fn template_error(name: &str, error: tera::Error) -> PlanError {
    // tera keeps the useful part (which variable, which line) in the source chain.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    PlanError::Template {
        name: name.to_owned(),
        message,
    }
}

#[derive(Serialize)]
struct HostView<'a> {
    #[serde(flatten)]
    host: &'a Host,
    /// The name padded to the longest one, because `terraform fmt` aligns `=` in maps.
    key: String,
    /// HCL literals of the local target's VM: quoted by [`hcl_quote`], never pasted.
    name_hcl: String,
    ip_hcl: String,
    container: String,
    volume: String,
    /// `docker run` without its last word (local-exec appends `command` to `interpreter`).
    run_interpreter: String,
    run_image: String,
    /// Proxmox only: the node, VLAN tag (0 = untagged), CPU type, tags and start order the
    /// host gets, resolved from the host and the `proxmox` section.
    #[serde(flatten)]
    proxmox: Option<ProxmoxHostView>,
}

#[derive(Serialize)]
struct ProxmoxHostView {
    node: String,
    vlan_tag: u16,
    cpu: String,
    /// bpg: an HCL list literal, sorted (Proxmox sorts tags; unsorted ones show as drift).
    tag_list: String,
    /// telmate: `;`-separated, sorted.
    tag_string: String,
    startup_order: u8,
    has_data: bool,
    data_vm: Option<u32>,
    /// telmate: a fixed MAC (locally administered, from the VM id), so the network-config in
    /// the cloud-init ISO can match the NIC whatever the guest calls it.
    mac: String,
}

/// Data hosts start first and stop last, so the web hosts find them when they start.
pub fn startup_order(role: Role) -> u8 {
    match role {
        Role::Postgres | Role::Redis => 1,
        Role::Web => 2,
        Role::LoadBalancer => 3,
        Role::LoadTester => 4,
    }
}

/// The Proxmox tags of a host: the cluster name, its role and the spec's extra tags, sorted
/// and without duplicates.
pub fn proxmox_tags(cluster: &Cluster, proxmox: &Proxmox, host: &Host) -> Vec<String> {
    let mut tags: Vec<String> = [cluster.name.clone(), host.role.as_str().to_owned()]
        .into_iter()
        .chain(proxmox.tags.iter().cloned())
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

fn proxmox_host_view(cluster: &Cluster, proxmox: &Proxmox, host: &Host) -> ProxmoxHostView {
    let tags = proxmox_tags(cluster, proxmox, host);
    let id = host.vm_id.unwrap_or_default().to_be_bytes();
    ProxmoxHostView {
        node: proxmox.node_of(host).to_owned(),
        vlan_tag: host.vlan.or(proxmox.vlan).unwrap_or(0),
        cpu: host
            .cpu_type
            .clone()
            .unwrap_or_else(|| proxmox.cpu_type.clone()),
        tag_list: hcl_list(&tags),
        tag_string: hcl_string(&tags.join(";")),
        startup_order: startup_order(host.role),
        has_data: host.has_data_disk(),
        data_vm: host.data_vm_id(),
        mac: format!(
            "02:00:{:02X}:{:02X}:{:02X}:{:02X}",
            id[0], id[1], id[2], id[3]
        ),
    }
}

#[derive(Serialize)]
struct View<'a> {
    header: &'static str,
    cluster: &'a Cluster,
    proxmox: Option<&'a crate::spec::Proxmox>,
    hosts: Vec<HostView<'a>>,
    /// Proxmox: the QEMU VMs, the LXC containers and the VMs with a data disk, each padded
    /// for its own map.
    vms: Vec<HostView<'a>>,
    containers: Vec<HostView<'a>>,
    data_hosts: Vec<HostView<'a>>,
    /// The template's cloud image URL, quoted for HCL.
    image_url: String,
    /// A template built from an image gets the smallest VM disk, so every clone can grow it.
    template_disk_gb: u32,
    web_hosts: Vec<&'a Host>,
    prefix_len: u8,
    network_name: String,
    network_subnet: String,
    network_gateway: String,
    network_create_interpreter: String,
    vm_image: String,
    data_dir: &'static str,
    api_url: String,
    web_port: u16,
    redis_port: u16,
    postgres_port: u16,
}

/// Renders every file of the spec, in a fixed order.
pub fn render(cluster: &Cluster) -> Result<Vec<RenderedFile>, PlanError> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_templates(TEMPLATES.iter().copied())
        .map_err(|e| template_error("templates/", e))?;

    let views = |keep: &dyn Fn(&Host) -> bool| -> Vec<HostView> {
        let chosen: Vec<&Host> = cluster.hosts.iter().filter(|h| keep(h)).collect();
        let width = chosen.iter().map(|h| h.name.len()).max().unwrap_or(0);
        chosen
            .into_iter()
            .map(|host| {
                let mut run = vm_run_args(cluster, host);
                let image = run.pop().unwrap_or_default();
                HostView {
                    host,
                    key: format!("{:width$}", host.name),
                    name_hcl: hcl_quote(&host.name),
                    ip_hcl: hcl_quote(&host.ip.to_string()),
                    container: hcl_quote(&commands::container_name(cluster, host)),
                    volume: hcl_quote(&commands::volume_name(cluster, host)),
                    run_interpreter: hcl_list(&run),
                    run_image: hcl_quote(&image),
                    proxmox: cluster
                        .proxmox
                        .as_ref()
                        .map(|p| proxmox_host_view(cluster, p, host)),
                }
            })
            .collect()
    };
    let view = View {
        header: HEADER,
        cluster,
        proxmox: cluster.proxmox.as_ref(),
        hosts: views(&|_| true),
        vms: views(&|h| h.kind == HostKind::Vm),
        containers: views(&|h| h.kind == HostKind::Lxc),
        data_hosts: views(&|h| h.kind == HostKind::Vm && h.has_data_disk()),
        image_url: cluster
            .proxmox
            .as_ref()
            .and_then(|p| p.template.image_url.as_deref())
            .map(hcl_string)
            .unwrap_or_default(),
        template_disk_gb: cluster
            .hosts
            .iter()
            .filter(|h| h.kind == HostKind::Vm)
            .map(|h| h.disk_gb)
            .min()
            .unwrap_or(crate::spec::defaults::disk_gb()),
        web_hosts: cluster.hosts_with(Role::Web).collect(),
        prefix_len: cluster.network.cidr.prefix_len(),
        network_name: hcl_quote(&commands::network_name(cluster)),
        network_subnet: hcl_quote(&cluster.network.cidr.to_string()),
        network_gateway: hcl_quote(&cluster.network.gateway.to_string()),
        // local-exec appends `command` (the network's name) to the interpreter.
        network_create_interpreter: {
            let mut args = network_create_args(cluster);
            args.pop();
            hcl_list(&args)
        },
        vm_image: hcl_quote(&cluster.images.vm),
        data_dir: DATA_DIR,
        api_url: cluster
            .proxmox
            .as_ref()
            .map(|p| format!("{}/api2/json", p.endpoint.trim_end_matches('/')))
            .unwrap_or_default(),
        web_port: WEB_PORT,
        redis_port: REDIS_PORT,
        postgres_port: POSTGRES_PORT,
    };
    let context = tera::Context::from_serialize(&view).map_err(|e| template_error("context", e))?;

    let flavour = match (cluster.target, cluster.proxmox.as_ref().map(|p| p.provider)) {
        (Target::Local, _) => "local",
        (Target::Proxmox, Some(ProxmoxProvider::Telmate)) => "telmate",
        (Target::Proxmox, _) => "bpg",
    };
    let mut files = Vec::new();
    let render_one = |template: String, path: String, context: &tera::Context| {
        let contents = tera
            .render(&template, context)
            .map_err(|e| template_error(&template, e))?;
        Ok::<_, PlanError>(RenderedFile {
            path: PathBuf::from(path),
            contents: finish(contents),
        })
    };
    for name in ["versions.tf", "variables.tf", "main.tf"] {
        files.push(render_one(
            format!("terraform/{flavour}/{name}"),
            format!("terraform/{name}"),
            &context,
        )?);
    }
    files.push(render_one(
        "terraform/outputs.tf".into(),
        "terraform/outputs.tf".into(),
        &context,
    )?);
    files.push(render_one(
        "nginx/nginx.conf".into(),
        "compose/nginx.conf".into(),
        &context,
    )?);
    for host in &cluster.hosts {
        let services = services::services(cluster, host);
        if services.is_empty() {
            continue;
        }
        files.push(RenderedFile {
            path: PathBuf::from(format!("compose/{}.yml", host.name)),
            contents: finish(services::compose_file(HEADER, host, &services)),
        });
    }
    for host in cloud_init::hosts(cluster) {
        let host_view = cloud_init::View {
            header: HEADER,
            cluster,
            host,
            data_disk: cloud_init::data_disk(host),
        };
        let context =
            tera::Context::from_serialize(&host_view).map_err(|e| template_error("context", e))?;
        let path = cloud_init::path(host);
        files.push(render_one(
            cloud_init::TEMPLATE.into(),
            path.display().to_string(),
            &context,
        )?);
    }
    for file in files
        .iter()
        .filter(|f| f.path.starts_with("terraform/cloud-init"))
    {
        cloud_init::check_interpolations(&file.contents).map_err(|message| {
            PlanError::TerraformTemplate {
                path: file.path.display().to_string(),
                message,
            }
        })?;
    }
    Ok(files)
}

/// Exactly one trailing newline, so hand edits and re-renders compare cleanly.
fn finish(contents: String) -> String {
    let mut text = contents.trim_end().to_owned();
    text.push('\n');
    text
}

/// Escapes text for the inside of an HCL string literal: quotes, backslashes, control
/// characters, and the `${` / `%{` that would start an interpolation or a directive, so a
/// value always stays the one string it was.
fn hcl_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// A whole HCL string literal, quotes included.
fn hcl_quote(text: &str) -> String {
    format!("\"{}\"", hcl_string(text))
}

/// An HCL list of string literals, e.g. a local-exec `interpreter`.
fn hcl_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| hcl_quote(i)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_literals_keep_any_text_one_string() {
        assert_eq!(hcl_quote("plain"), "\"plain\"");
        assert_eq!(
            hcl_quote("a\"b\\c\nd${x}%{if}$y%z"),
            "\"a\\\"b\\\\c\\nd$${x}%%{if}$y%z\""
        );
        assert_eq!(hcl_quote("bell\u{7}"), "\"bell\\u0007\"");
        assert_eq!(
            hcl_list(&["docker".into(), "a *:* rwm".into()]),
            "[\"docker\", \"a *:* rwm\"]"
        );
    }
}
