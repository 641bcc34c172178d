//! Property test: any valid spec the generator can build parses, renders, and renders
//! byte-identically a second time (also after a round trip through its own YAML).

use std::path::Path;

use proptest::prelude::*;
use provisioner::plan;
use provisioner::spec::{Cluster, FileCheck};

#[derive(Debug, Clone)]
struct Shape {
    name: String,
    second_octet: u8,
    third_octet: u8,
    webs: usize,
    ip_offset: u8,
    proxmox: Option<bool>,
    algorithm: &'static str,
    fail_mode: &'static str,
    limits: [u32; 3],
    windows: [u32; 3],
    millis: bool,
    port: u16,
    status: u16,
    base_url: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        "[a-z][a-z0-9]{0,10}",
        any::<u8>(),
        any::<u8>(),
        1usize..8,
        2u8..100,
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
        prop_oneof![Just("sliding_log"), Just("sliding_window"), Just("gcra")],
        prop_oneof![Just("local"), Just("open"), Just("closed")],
        [1u32..100_000, 1u32..100_000, 1u32..100_000],
        [1u32..86_400, 1u32..86_400, 1u32..86_400],
        any::<bool>(),
        (
            1u16..=65535,
            prop_oneof![Just(301u16), Just(302), Just(307), Just(308)],
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                name,
                second_octet,
                third_octet,
                webs,
                ip_offset,
                proxmox,
                algorithm,
                fail_mode,
                limits,
                windows,
                millis,
                (port, status, base_url),
            )| Shape {
                name,
                second_octet,
                third_octet,
                webs,
                ip_offset,
                proxmox,
                algorithm,
                fail_mode,
                limits,
                windows,
                millis,
                port,
                status,
                base_url,
            },
        )
}

fn yaml(s: &Shape) -> String {
    let net = format!("10.{}.{}", s.second_octet, s.third_octet);
    let unit = if s.millis { "ms" } else { "s" };
    let mut hosts = vec![
        ("lb".to_owned(), "load_balancer"),
        ("redis".to_owned(), "redis"),
        ("postgres".to_owned(), "postgres"),
        ("tester".to_owned(), "load_tester"),
    ];
    hosts.extend((1..=s.webs).map(|i| (format!("web{i}"), "web")));
    let mut text = format!(
        "name: {}\ntarget: {}\nnetwork:\n  cidr: {net}.0/24\n  gateway: {net}.1\n\
         ssh: {{ user: ops, private_key: k, public_key: k.pub }}\nhosts:\n",
        s.name,
        if s.proxmox.is_some() {
            "proxmox"
        } else {
            "local"
        },
    );
    for (i, (name, role)) in hosts.iter().enumerate() {
        let ip = usize::from(s.ip_offset) + i;
        text.push_str(&format!(
            "  - {{ name: {name}, role: {role}, ip: {net}.{ip}, vm_id: {} }}\n",
            1000 + i
        ));
    }
    text.push_str(&format!(
        "load_balancer: {{ published_port: {} }}\n\
         images: {{ vm: v, webapp: w, redis: r, postgres: p, nginx: n }}\n\
         app:\n  redirect_status: {}\n",
        s.port, s.status
    ));
    if s.base_url {
        text.push_str(&format!(
            "  public_base_url: http://{net}.{}\n",
            s.ip_offset
        ));
    }
    text.push_str(&format!(
        "  limiter:\n    algorithm: {}\n    fail_mode: {}\n    policies:\n",
        s.algorithm, s.fail_mode
    ));
    for (i, policy) in ["default", "shorten", "redirect"].iter().enumerate() {
        text.push_str(&format!(
            "      {policy}: {{ limit: {}, window: {}{unit} }}\n",
            s.limits[i], s.windows[i]
        ));
    }
    text.push_str("secrets: { redis_password: env:R, postgres_password: file:p }\n");
    if let Some(bpg) = s.proxmox {
        text.push_str(&format!(
            "proxmox:\n  endpoint: https://pve:8006\n  node: n\n  template: {{ name: t, vm_id: 900 }}\n  \
             storage: s\n  bridge: b\n  provider: {}\n  api_token: env:T\n",
            if bpg { "bpg" } else { "telmate" }
        ));
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn valid_specs_always_render_identically(shape in shape()) {
        let text = yaml(&shape);
        let cluster = match Cluster::parse(&text, Path::new("gen.yaml"), FileCheck::SpecOnly) {
            Ok(cluster) => cluster,
            Err(e) => panic!("generated spec rejected:\n{text}\n{e}"),
        };
        let first = plan::render(&cluster).expect("renders");
        let second = plan::render(&cluster).expect("renders again");
        prop_assert_eq!(&first, &second);
        let again = Cluster::parse(&text, Path::new("gen.yaml"), FileCheck::SpecOnly).expect("parses again");
        prop_assert_eq!(&plan::render(&again).expect("renders"), &first);

        // Every host but the tester gets a compose file; every web host is an upstream.
        let composes = first.iter().filter(|f| f.path.starts_with("compose") && f.path.extension().is_some_and(|e| e == "yml")).count();
        prop_assert_eq!(composes, cluster.hosts.len() - 1);
        let nginx = first.iter().find(|f| f.path.ends_with("nginx.conf")).expect("nginx.conf");
        prop_assert_eq!(nginx.contents.matches(":8000 max_fails=").count(), shape.webs);
        for file in &first {
            prop_assert!(file.contents.ends_with('\n') && !file.contents.ends_with("\n\n"));
            prop_assert!(plan::is_rendered(&file.contents));
        }
    }
}

/// The string fields of cluster.yaml that reach a rendered file, a command or a URL: the
/// default spec's line, the key it sets, and what precedes the value (`file:` secrets).
const STRING_FIELDS: &[(&str, &str, &str)] = &[
    ("name: clusterlab\n", "name", ""),
    ("  user: clusterlab\n", "  user", ""),
    (
        "  private_key: .clusterlab/id_ed25519\n",
        "  private_key",
        "",
    ),
    (
        "  public_key: .clusterlab/id_ed25519.pub\n",
        "  public_key",
        "",
    ),
    (
        "  client_max_body_size: 64k\n",
        "  client_max_body_size",
        "",
    ),
    ("  vm: clusterlab/vm:latest\n", "  vm", ""),
    ("  webapp: clusterlab/webapp:latest\n", "  webapp", ""),
    ("  redis: clusterlab/redis:7\n", "  redis", ""),
    ("  postgres: clusterlab/postgres:15\n", "  postgres", ""),
    ("  nginx: clusterlab/nginx:1\n", "  nginx", ""),
    (
        "  public_base_url: http://127.0.0.1:8080\n",
        "  public_base_url",
        "",
    ),
    ("  database: shortener\n", "  database", ""),
    ("    key_prefix: \"rl:\"\n", "    key_prefix", ""),
    ("    redis_maxmemory: 256mb\n", "    redis_maxmemory", ""),
    (
        "  redis_password: file:.clusterlab/secrets/redis_password\n",
        "  redis_password",
        "file:",
    ),
    (
        "  postgres_password: file:.clusterlab/secrets/postgres_password\n",
        "  postgres_password",
        "file:",
    ),
];

/// Characters that quote, escape, template, comment or break a line somewhere in HCL,
/// YAML, nginx, TOML, URLs or a shell, mixed with ordinary ones so that some values pass.
fn hostile_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-z0-9]{1,4}",
        1 => prop::sample::select(vec![
            "\"", "'", "\\", "\n", "\r", "\t", "\0", "$", "${", "%{", "{", "}", "`", "#", ":",
            " ", ";", "&", "|", "<", ">", "=", "[", "]", ",", "@", "/", ".", "-", "_", "\u{2028}",
            "é", "\u{7f}", "$(id)", "\"\nresource \"terraform_data\" \"x\" {}\n#",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|parts| parts.concat())
}

/// Every mapping key path of a YAML document (values left out: they are the spec's).
fn yaml_keys(value: &serde_norway::Value, at: &str, out: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_norway::Value::Mapping(map) => {
            for (k, v) in map {
                let path = format!("{at}.{}", k.as_str().unwrap_or("?"));
                out.insert(path.clone());
                yaml_keys(v, &path, out);
            }
        }
        serde_norway::Value::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                yaml_keys(v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The block headers of a Terraform file (`resource "x" "y" {`, `variable`, `output`, ...).
fn hcl_blocks(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with([' ', '#', '}']) && l.ends_with('{'))
        .collect()
}

fn terraform_fmt_accepts(text: &str) -> bool {
    use std::io::Write;
    let mut child = std::process::Command::new("/usr/local/bin/terraform")
        .args(["fmt", "-no-color", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("terraform");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write HCL");
    child.wait().expect("terraform fmt").success()
}

/// Hostile strings in every string field of the default spec: each is either refused by
/// validation, or renders files with the same structure as the default (the same Terraform
/// blocks, accepted by `terraform fmt`; compose files with the same keys; nginx.conf accepted
/// by `nginx -t`), with the value itself round-tripping into the parsed spec.
#[test]
fn hostile_strings_never_change_the_structure_of_a_rendered_file() {
    let default_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.yaml"))
            .expect("cluster.yaml");
    let default = Cluster::parse(
        &default_text,
        Path::new("cluster.yaml"),
        FileCheck::SpecOnly,
    )
    .expect("the default spec is valid");
    let default_files = plan::render(&default).expect("render");
    let cases = std::env::var("CLUSTERLAB_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    let accepted = std::cell::Cell::new(0u32);
    let tool_runs = std::cell::Cell::new(0u32);
    let started = std::time::Instant::now();
    let strategy = (0..STRING_FIELDS.len(), hostile_string());
    let result = runner.run(&strategy, |(field, value)| {
        let (line, key, prefix) = STRING_FIELDS[field];
        let quoted = serde_json::to_string(&format!("{prefix}{value}")).expect("json");
        let text = default_text.replacen(line, &format!("{key}: {quoted}\n"), 1);
        prop_assert_ne!(&text, &default_text, "the field's line is in cluster.yaml");
        let Ok(cluster) = Cluster::parse(&text, Path::new("cluster.yaml"), FileCheck::SpecOnly)
        else {
            return Ok(());
        };
        accepted.set(accepted.get() + 1);
        let files = plan::render(&cluster).expect("an accepted spec renders");
        prop_assert_eq!(files.len(), default_files.len());
        for (file, original) in files.iter().zip(&default_files) {
            prop_assert_eq!(&file.path, &original.path);
            let name = file.path.display().to_string();
            if name.ends_with(".tf") {
                prop_assert_eq!(
                    hcl_blocks(&file.contents),
                    hcl_blocks(&original.contents),
                    "{}",
                    name
                );
                if file.contents != original.contents {
                    tool_runs.set(tool_runs.get() + 1);
                    prop_assert!(
                        terraform_fmt_accepts(&file.contents),
                        "{} does not parse:\n{}",
                        name,
                        file.contents
                    );
                }
            } else if name.ends_with(".yml") {
                let parsed: serde_norway::Value = serde_norway::from_str(&file.contents)
                    .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                let base: serde_norway::Value =
                    serde_norway::from_str(&original.contents).expect("default yaml");
                let (mut a, mut b) = (Default::default(), Default::default());
                yaml_keys(&parsed, "", &mut a);
                yaml_keys(&base, "", &mut b);
                prop_assert_eq!(a, b, "{}", name);
            } else if name.ends_with("nginx.conf") && file.contents != original.contents {
                tool_runs.set(tool_runs.get() + 1);
                let dir = tempfile::tempdir().expect("tempdir");
                let conf = dir.path().join("nginx.conf");
                std::fs::write(&conf, &file.contents).expect("write");
                let ok = std::process::Command::new("nginx")
                    .arg("-t")
                    .arg("-c")
                    .arg(&conf)
                    .arg("-p")
                    .arg(dir.path())
                    .output()
                    .expect("nginx")
                    .status
                    .success();
                prop_assert!(ok, "nginx -t refuses:\n{}", file.contents);
            }
        }
        // The value round-trips: the parsed spec holds exactly what was written.
        let spec = serde_json::to_string(&cluster).expect("json");
        let expected = serde_json::to_string(&format!("{prefix}{value}")).expect("json");
        let bare = serde_json::to_string(&value).expect("json");
        prop_assert!(
            spec.contains(&expected) || spec.contains(&bare),
            "{} lost in {}",
            expected,
            spec
        );
        Ok(())
    });
    let elapsed = started.elapsed();
    eprintln!(
        "hostile strings: {cases} cases in {:.2}s ({:.0} cases/s), {} accepted by validation, {} files checked by terraform fmt / nginx -t",
        elapsed.as_secs_f64(),
        f64::from(cases) / elapsed.as_secs_f64(),
        accepted.get(),
        tool_runs.get()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
