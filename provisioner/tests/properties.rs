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
        prop_oneof![Just("open"), Just("closed")],
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
