//! Plan layer: pure functions from a validated [`Cluster`] to the files it renders
//! (Terraform workspace, compose files, nginx config) and the deploy steps ([`deploy`]) as data. Nothing here touches a disk
//! or a host; the same spec always gives byte-identical files.

pub mod cloud_init;
mod commands;
pub mod deploy;
pub mod loadtest;

use std::path::PathBuf;

use serde::Serialize;
use tera::Tera;

pub use commands::{
    network_create_command, rocket_databases, rocket_limiter, ssh_args, vm_run_command,
    POSTGRES_PORT, REDIS_PORT, WEB_PORT,
};

use crate::spec::{Cluster, Host, ProxmoxProvider, Role, Target};

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
        "compose/host.yml",
        include_str!("../../../templates/compose/host.yml.tera"),
    ),
    (
        "compose/labels.tera",
        include_str!("../../../templates/compose/labels.tera"),
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
    container: String,
    volume: String,
    run: String,
}

#[derive(Serialize)]
struct View<'a> {
    header: &'static str,
    cluster: &'a Cluster,
    proxmox: Option<&'a crate::spec::Proxmox>,
    hosts: Vec<HostView<'a>>,
    web_hosts: Vec<&'a Host>,
    prefix_len: u8,
    network_name: String,
    network_create: String,
    api_url: String,
    web_port: u16,
    redis_port: u16,
    postgres_port: u16,
    rocket_databases: String,
    rocket_limiter: String,
}

#[derive(Serialize)]
struct HostFileView<'a> {
    #[serde(flatten)]
    view: &'a View<'a>,
    host: &'a Host,
    volume: Option<&'static str>,
}

/// Renders every file of the spec, in a fixed order.
pub fn render(cluster: &Cluster) -> Result<Vec<RenderedFile>, PlanError> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_templates(TEMPLATES.iter().copied())
        .map_err(|e| template_error("templates/", e))?;

    let width = cluster
        .hosts
        .iter()
        .map(|h| h.name.len())
        .max()
        .unwrap_or(0);
    let hosts = cluster
        .hosts
        .iter()
        .map(|host| HostView {
            host,
            key: format!("{:width$}", host.name),
            container: commands::container_name(cluster, host),
            volume: commands::volume_name(cluster, host),
            run: hcl_string(&vm_run_command(
                cluster,
                host,
                "${trimspace(var.ssh_public_key)}",
            )),
        })
        .collect();
    let view = View {
        header: HEADER,
        cluster,
        proxmox: cluster.proxmox.as_ref(),
        hosts,
        web_hosts: cluster.hosts_with(Role::Web).collect(),
        prefix_len: cluster.network.cidr.prefix_len(),
        network_name: commands::network_name(cluster),
        network_create: hcl_string(&network_create_command(cluster)),
        api_url: cluster
            .proxmox
            .as_ref()
            .map(|p| format!("{}/api2/json", p.endpoint.trim_end_matches('/')))
            .unwrap_or_default(),
        web_port: WEB_PORT,
        redis_port: REDIS_PORT,
        postgres_port: POSTGRES_PORT,
        rocket_databases: rocket_databases(cluster),
        rocket_limiter: rocket_limiter(cluster),
    };
    let context = tera::Context::from_serialize(&view).map_err(|e| template_error("context", e))?;

    let flavour = match (cluster.target, cluster.proxmox.as_ref().map(|p| p.provider)) {
        (Target::Local, _) => "local",
        (Target::Proxmox, Some(ProxmoxProvider::Telmate)) => "telmate",
        (Target::Proxmox, _) => "bpg",
    };
    let mut files = Vec::new();
    let mut add = |template: String, path: String, context: &tera::Context| {
        let contents = tera
            .render(&template, context)
            .map_err(|e| template_error(&template, e))?;
        files.push(RenderedFile {
            path: PathBuf::from(path),
            contents: finish(contents),
        });
        Ok::<_, PlanError>(())
    };
    for name in ["versions.tf", "variables.tf", "main.tf"] {
        add(
            format!("terraform/{flavour}/{name}"),
            format!("terraform/{name}"),
            &context,
        )?;
    }
    add(
        "terraform/outputs.tf".into(),
        "terraform/outputs.tf".into(),
        &context,
    )?;
    add(
        "nginx/nginx.conf".into(),
        "compose/nginx.conf".into(),
        &context,
    )?;
    for host in &cluster.hosts {
        let volume = match host.role {
            Role::LoadTester => continue,
            Role::Redis => Some("redis-data"),
            Role::Postgres => Some("postgres-data"),
            Role::Web | Role::LoadBalancer => None,
        };
        let host_view = HostFileView {
            view: &view,
            host,
            volume,
        };
        let context =
            tera::Context::from_serialize(&host_view).map_err(|e| template_error("context", e))?;
        add(
            "compose/host.yml".into(),
            format!("compose/{}.yml", host.name),
            &context,
        )?;
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
        add(
            cloud_init::TEMPLATE.into(),
            path.display().to_string(),
            &context,
        )?;
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

/// Quotes text for the inside of an HCL string literal; `${` is left alone on purpose, as
/// the commands carry Terraform interpolations.
fn hcl_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
