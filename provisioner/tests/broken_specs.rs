//! A table of broken cluster.yaml files, each asserting every reported error exactly:
//! line:column, key path and message. They all start from one small valid spec and edit it.

use std::path::Path;

use provisioner::spec::{Cluster, FileCheck};

const BASE: &str = "\
name: demo
target: local
network:
  cidr: 10.1.0.0/24
  gateway: 10.1.0.1
ssh:
  user: ops
  private_key: keys/id
  public_key: keys/id.pub
hosts:
  - { name: lb, role: load_balancer, ip: 10.1.0.10 }
  - { name: web1, role: web, ip: 10.1.0.11 }
  - { name: redis, role: redis, ip: 10.1.0.20 }
  - { name: pg, role: postgres, ip: 10.1.0.21 }
  - { name: tester, role: load_tester, ip: 10.1.0.30 }
images:
  vm: vm:1
  webapp: web:1
  redis: redis:7
  postgres: postgres:15
  nginx: nginx:1
app:
  limiter:
    policies:
      default: { limit: 100, window: 60s }
      shorten: { limit: 10, window: 60s }
      redirect: { limit: 100, window: 60s }
secrets:
  redis_password: env:REDIS_PW
  postgres_password: file:pg.txt
";

const PROXMOX: &str = "\
proxmox:
  endpoint: https://pve:8006/
  node: pve
  template: { name: tpl, vm_id: 9000 }
  storage: local-lvm
  bridge: vmbr0
  api_token: env:PVE_TOKEN
";

struct Case {
    name: &'static str,
    /// (text to find exactly once, replacement); a find of "" appends the replacement.
    edits: &'static [(&'static str, &'static str)],
    /// `line:column: path: message`, in report order.
    errors: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "unknown top-level key",
        edits: &[("target: local\n", "target: local\ncolour: blue\n")],
        errors: &["3:1: colour: unknown key `colour` (expected one of: name, target, network, ssh, hosts, load_balancer, images, app, secrets, redis, proxmox, loadtest)"],
    },
    Case {
        name: "unknown nested key",
        edits: &[("  gateway: 10.1.0.1\n", "  gateway: 10.1.0.1\n  mtu: 1500\n")],
        errors: &["6:3: network.mtu: unknown key `mtu` (expected one of: cidr, gateway, dns)"],
    },
    Case {
        name: "unknown key in a host",
        edits: &[("ip: 10.1.0.11 }", "ip: 10.1.0.11, ram: 4 }")],
        errors: &[
            "12:45: hosts[1].ram: unknown key `ram` (expected one of: name, role, ip, vm_id, cores, memory_mb, disk_gb, kind, node, vlan, cpu_type, data_disk_gb, data_vm_id)",
        ],
    },
    Case {
        name: "missing required key",
        edits: &[("name: demo\n", "")],
        errors: &["1:1: name: missing required key `name`"],
    },
    Case {
        name: "missing nested key",
        edits: &[("  public_key: keys/id.pub\n", "")],
        errors: &["7:3: ssh.public_key: missing required key `public_key`"],
    },
    Case {
        name: "mapping where a string belongs",
        edits: &[("name: demo", "name: { first: demo }")],
        errors: &[
            "1:9: name: expected a string, found a mapping",
        ],
    },
    Case {
        name: "list where a mapping belongs",
        edits: &[("ssh:\n  user: ops\n  private_key: keys/id\n  public_key: keys/id.pub\n", "ssh: [ops]\n")],
        errors: &["6:6: ssh: expected a mapping, found a list"],
    },
    Case {
        name: "hosts not a list",
        edits: &[("hosts:\n", "hosts: many\nx_hosts:\n")],
        errors: &[
            "10:8: hosts: expected a list, found \"many\"",
            "11:1: x_hosts: unknown key `x_hosts` (expected one of: name, target, network, ssh, hosts, load_balancer, images, app, secrets, redis, proxmox, loadtest)",
        ],
    },
    Case {
        name: "not a number",
        edits: &[("limit: 10,", "limit: ten,")],
        errors: &["26:25: app.limiter.policies.shorten.limit: expected a whole number, found \"ten\""],
    },
    Case {
        name: "negative limit",
        edits: &[("limit: 10,", "limit: -10,")],
        errors: &["26:25: app.limiter.policies.shorten.limit: expected a whole number, found \"-10\""],
    },
    Case {
        name: "zero limit",
        edits: &[("limit: 10,", "limit: 0,")],
        errors: &["26:25: app.limiter.policies.shorten.limit: must be greater than 0"],
    },
    Case {
        name: "no version retained",
        edits: &[("app:\n", "app:\n  retain: 0\n")],
        errors: &["23:11: app.retain: must be greater than 0"],
    },
    Case {
        name: "retain not a number",
        edits: &[("app:\n", "app:\n  retain: all\n")],
        errors: &["23:11: app.retain: expected a whole number, found \"all\""],
    },
    Case {
        name: "two limits with one window",
        edits: &[("shorten: { limit: 10, window: 60s }", "shorten: [{ limit: 10, window: 60s }, { limit: 100, window: 60000ms }]")],
        errors: &["26:47: app.limiter.policies.shorten[1].window: app.limiter.policies.shorten[0] has the window 60s already; each limit needs a window of its own"],
    },
    Case {
        name: "one limit and a list of them",
        edits: &[("shorten: { limit: 10, window: 60s }", "shorten: { limit: 10, limits: [{ limit: 1, window: 1s }] }")],
        errors: &["26:18: app.limiter.policies.shorten.limit: give either `limit` and `window` or `limits`, not both"],
    },
    Case {
        name: "a policy without limits",
        edits: &[("shorten: { limit: 10, window: 60s }", "shorten: { limits: [], shadow: true }")],
        errors: &["26:26: app.limiter.policies.shorten.limits: a policy needs at least one limit"],
    },
    Case {
        name: "a bad limit in a list",
        edits: &[("shorten: { limit: 10, window: 60s }", "shorten: [{ limit: 10, window: 60s }, { limit: 0, windo: 1h }]")],
        errors: &[
            "26:47: app.limiter.policies.shorten[1].window: missing required key `window`",
            "26:54: app.limiter.policies.shorten[1].limit: must be greater than 0",
            "26:57: app.limiter.policies.shorten[1].windo: unknown key `windo` (expected one of: limit, window)",
        ],
    },
    Case {
        name: "zero window",
        edits: &[("limit: 100, window: 60s }\nsecrets", "limit: 100, window: 0ms }\nsecrets")],
        errors: &[
            "27:39: app.limiter.policies.redirect.window: must be greater than 0",
        ],
    },
    Case {
        // Once accepted (saturated), then refused by every web server at rollout.
        name: "window too long for the app",
        edits: &[("shorten: { limit: 10, window: 60s }", "shorten: { limit: 10, window: 20000000000000000s }")],
        errors: &[
            "26:37: app.limiter.policies.shorten.window: \"20000000000000000s\" is too long: a window is at most 18446744073709551615 ms",
        ],
    },
    Case {
        name: "window without unit",
        edits: &[("default: { limit: 100, window: 60s }", "default: { limit: 100, window: 60 }")],
        errors: &[
            "25:38: app.limiter.policies.default.window: expected a duration like 60s or 500ms, found \"60\"",
        ],
    },
    Case {
        name: "overrides that cannot work",
        edits: &[(
            "      redirect: { limit: 100, window: 60s }\n",
            "      redirect: { limit: 100, window: 60s }\n    overrides:\n      \
             - { cidr: 10.9.0.0/16, unlimited: true, policies: { shorten: { limit: 5, window: 1s } } }\n      \
             - { cidr: 10.9.1.1/16, unlimited: true }\n      \
             - { cidr: 10.9.0.0/16, unlimited: true }\n      \
             - { cidr: nowhere, unlimited: true }\n      \
             - { cidr: 10.8.0.0/16 }\n      \
             - { cidr: 10.7.0.0/16, policies: { upload: { limit: 5, window: 1s } } }\n",
        )],
        errors: &[
            "29:11: app.limiter.overrides[0]: give either `unlimited: true` or `policies` of its own (not both, not neither)",
            "30:17: app.limiter.overrides[1].cidr: 10.9.1.1/16 has host bits set; did you mean 10.9.0.0/16?",
            "32:17: app.limiter.overrides[3].cidr: expected a network like 10.77.0.64/26 or 2001:db8::/48, or an address, found \"nowhere\"",
            "33:11: app.limiter.overrides[4]: give either `unlimited: true` or `policies` of its own (not both, not neither)",
            "34:42: app.limiter.overrides[5].policies.upload: unknown key `upload` (expected one of: default, shorten, redirect)",
        ],
    },
    Case {
        name: "two overrides for one network",
        edits: &[(
            "      redirect: { limit: 100, window: 60s }\n",
            "      redirect: { limit: 100, window: 60s }\n    overrides:\n      \
             - { cidr: 10.9.0.0/16, unlimited: true }\n      \
             - { cidr: 10.9.0.1, unlimited: true }\n      \
             - { cidr: 10.9.0.0/16, policies: { shorten: { limit: 5, window: 1s } } }\n",
        )],
        errors: &[
            "31:11: app.limiter.overrides[2].cidr: 10.9.0.0/16 is already the network of app.limiter.overrides[0]",
        ],
    },
    Case {
        name: "unknown algorithm",
        edits: &[("  limiter:\n", "  limiter:\n    algorithm: token_bucket\n")],
        errors: &["24:16: app.limiter.algorithm: unknown algorithm \"token_bucket\" (expected one of: sliding_log, sliding_window, gcra)"],
    },
    Case {
        name: "unknown fail mode",
        edits: &[("  limiter:\n", "  limiter:\n    fail_mode: maybe\n")],
        errors: &["24:16: app.limiter.fail_mode: unknown fail mode \"maybe\" (expected one of: local, open, closed)"],
    },
    Case {
        name: "unknown role",
        edits: &[("role: web,", "role: webserver,")],
        errors: &[
            "12:25: hosts[1].role: unknown role \"webserver\" (expected one of: load_balancer, web, redis, postgres, load_tester)",
        ],
    },
    Case {
        name: "unknown target",
        edits: &[("target: local", "target: aws")],
        errors: &["2:9: target: unknown target \"aws\" (expected one of: local, proxmox)"],
    },
    Case {
        name: "bad IP address",
        edits: &[("ip: 10.1.0.20", "ip: 10.1.0.300")],
        errors: &[
            "13:37: hosts[2].ip: expected an IPv4 address, found \"10.1.0.300\"",
        ],
    },
    Case {
        name: "IP outside the network",
        edits: &[("ip: 10.1.0.20", "ip: 10.2.0.20")],
        errors: &[
            "13:37: hosts[2].ip: 10.2.0.20 is outside the network 10.1.0.0/24",
        ],
    },
    Case {
        name: "network address as IP",
        edits: &[("ip: 10.1.0.20", "ip: 10.1.0.0")],
        errors: &[
            "13:37: hosts[2].ip: 10.1.0.0 is the network address of 10.1.0.0/24",
        ],
    },
    Case {
        name: "broadcast address as IP",
        edits: &[("ip: 10.1.0.20", "ip: 10.1.0.255")],
        errors: &[
            "13:37: hosts[2].ip: 10.1.0.255 is the broadcast address of 10.1.0.0/24",
        ],
    },
    Case {
        name: "gateway address as IP",
        edits: &[("ip: 10.1.0.20", "ip: 10.1.0.1")],
        errors: &[
            "13:37: hosts[2].ip: 10.1.0.1 is the gateway address",
        ],
    },
    Case {
        name: "duplicate IP",
        edits: &[("ip: 10.1.0.21", "ip: 10.1.0.20")],
        errors: &[
            "14:37: hosts[3].ip: duplicate IP 10.1.0.20 (also hosts[2])",
        ],
    },
    Case {
        name: "duplicate host name",
        edits: &[("name: pg,", "name: redis,")],
        errors: &["14:13: hosts[3].name: duplicate host name \"redis\" (also hosts[2])"],
    },
    Case {
        name: "invalid host name",
        edits: &[("name: web1,", "name: Web_1,")],
        errors: &["12:13: hosts[1].name: invalid host name \"Web_1\": use 1-32 lowercase letters, digits and '-', starting with a letter"],
    },
    Case {
        name: "two load balancers",
        edits: &[("role: web,", "role: load_balancer,")],
        errors: &[
            "10:1: hosts: at least one host needs role web",
            "12:25: hosts[1].role: exactly one host may have role load_balancer (also hosts[0])",
        ],
    },
    Case {
        name: "no redis",
        edits: &[("  - { name: redis, role: redis, ip: 10.1.0.20 }\n", "")],
        errors: &["10:1: hosts: exactly one host needs role redis, found none"],
    },
    Case {
        name: "two redis hosts without a Sentinel group",
        edits: &[(
            "  - { name: pg,",
            "  - { name: redis2, role: redis, ip: 10.1.0.22 }\n  - { name: pg,",
        )],
        errors: &["14:27: hosts[3].role: exactly one host may have role redis (also hosts[2]) unless redis.sentinel makes them a Sentinel group"],
    },
    Case {
        name: "a Sentinel group of one redis host",
        edits: &[("", "redis:\n  sentinel: {}\n")],
        errors: &["32:13: redis.sentinel: a Sentinel group needs at least 3 hosts with role redis (a primary, 2 replicas, a sentinel on each), found 1"],
    },
    Case {
        name: "a Sentinel group's bad name, quorum and down-after time",
        edits: &[
            (
                "  - { name: pg,",
                "  - { name: redis2, role: redis, ip: 10.1.0.22 }\n  - { name: redis3, role: redis, ip: 10.1.0.23 }\n  - { name: pg,",
            ),
            (
                "",
                "redis:\n  sentinel: { master_name: \"my group\", quorum: 4, down_after_ms: 50 }\n",
            ),
        ],
        errors: &[
            "34:28: redis.sentinel.master_name: master_name `my group` must be 1 to 64 letters, digits, '_' or '-'",
            "34:48: redis.sentinel.quorum: quorum 4 exceeds the 3 sentinels (one per redis host)",
            "34:66: redis.sentinel.down_after_ms: down_after_ms must be at least 100, got 50",
        ],
    },
    Case {
        name: "two postgres and no tester",
        edits: &[("role: load_tester", "role: postgres")],
        errors: &[
            "10:1: hosts: exactly one host needs role load_tester, found none",
            "15:27: hosts[4].role: exactly one host may have role postgres (also hosts[3])",
        ],
    },
    Case {
        name: "CIDR with host bits",
        edits: &[("cidr: 10.1.0.0/24", "cidr: 10.1.0.5/24")],
        errors: &["4:9: network.cidr: 10.1.0.5/24 has host bits set; did you mean 10.1.0.0/24?"],
    },
    Case {
        name: "gateway outside the network",
        edits: &[("gateway: 10.1.0.1", "gateway: 10.9.0.1")],
        errors: &["5:12: network.gateway: 10.9.0.1 is outside the network 10.1.0.0/24"],
    },
    Case {
        name: "inline secret",
        edits: &[("redis_password: env:REDIS_PW", "redis_password: hunter2")],
        errors: &["29:19: secrets.redis_password: must be a reference (env:NAME or file:path), never the secret itself"],
    },
    Case {
        name: "bad env secret name",
        edits: &[("env:REDIS_PW", "env:redis-pw")],
        errors: &["29:19: secrets.redis_password: invalid environment variable name \"redis-pw\" (use A-Z, 0-9 and _)"],
    },
    Case {
        name: "redirect status that is not a redirect",
        edits: &[("app:\n", "app:\n  redirect_status: 200\n")],
        errors: &["23:20: app.redirect_status: 200 is not a redirect status (expected 301, 302, 307 or 308)"],
    },
    Case {
        name: "port out of range",
        edits: &[("images:\n", "load_balancer:\n  published_port: 70000\nimages:\n")],
        errors: &["17:19: load_balancer.published_port: expected a port number (1-65535), found \"70000\""],
    },
    Case {
        name: "duplicate key",
        edits: &[("  user: ops\n", "  user: ops\n  user: root\n")],
        errors: &["8:3: user: duplicate key `user` (first defined at line 7)"],
    },
    Case {
        name: "YAML syntax error",
        edits: &[("  gateway: 10.1.0.1\n", "  gateway: [10.1.0.1\n")],
        errors: &[
            "6:4: invalid YAML: illegal placement of ':' indicator",
        ],
    },
    Case {
        name: "proxmox target without proxmox section",
        edits: &[("target: local", "target: proxmox")],
        errors: &[
            "1:1: proxmox: missing required key `proxmox` (target is proxmox)",
            "11:7: hosts[0].vm_id: missing required key `vm_id` (target is proxmox)",
            "12:7: hosts[1].vm_id: missing required key `vm_id` (target is proxmox)",
            "13:7: hosts[2].vm_id: missing required key `vm_id` (target is proxmox)",
            "14:7: hosts[3].vm_id: missing required key `vm_id` (target is proxmox)",
            "15:7: hosts[4].vm_id: missing required key `vm_id` (target is proxmox)",
        ],
    },
    Case {
        name: "duplicate VM ids, one clashing with the template",
        edits: &[
            ("ip: 10.1.0.10 }", "ip: 10.1.0.10, vm_id: 101 }"),
            ("ip: 10.1.0.11 }", "ip: 10.1.0.11, vm_id: 101 }"),
            ("ip: 10.1.0.20 }", "ip: 10.1.0.20, vm_id: 9000 }"),
            ("", PROXMOX),
        ],
        errors: &[
            "12:52: hosts[1].vm_id: duplicate VM id 101 (also hosts[0])",
            "13:55: hosts[2].vm_id: duplicate VM id 9000 (also proxmox.template)",
        ],
    },
    Case {
        name: "proxmox endpoint over plain http and unknown provider",
        edits: &[("", PROXMOX), ("https://pve:8006/", "http://pve:8006/"), ("  node: pve\n", "  node: pve\n  provider: libvirt\n")],
        errors: &[
            "32:13: proxmox.endpoint: expected an https:// URL with a host and no spaces or quotes, found \"http://pve:8006/\"",
            "34:13: proxmox.provider: unknown provider \"libvirt\" (expected one of: bpg, telmate)",
        ],
    },
    Case {
        name: "several errors at once",
        edits: &[("name: demo", "name: Demo"), ("ip: 10.1.0.30", "ip: 10.1.0.999"), ("nginx: nginx:1", "nginx: \"nginx 1\"")],
        errors: &[
            "1:7: name: invalid cluster name \"Demo\": use 1-32 lowercase letters, digits and '-', starting with a letter",
            "15:44: hosts[4].ip: expected an IPv4 address, found \"10.1.0.999\"",
            "21:10: images.nginx: invalid image name \"nginx 1\": use letters, digits and . _ / : @ -, starting with a lowercase letter or digit and ending with a letter or digit",
        ],
    },
    Case {
        name: "a rule error does not hide cross-value errors",
        edits: &[("name: web1,", "name: Web1,"), ("ip: 10.1.0.20", "ip: 10.2.0.20")],
        errors: &[
            "12:13: hosts[1].name: invalid host name \"Web1\": use 1-32 lowercase letters, digits and '-', starting with a letter",
            "13:37: hosts[2].ip: 10.2.0.20 is outside the network 10.1.0.0/24",
        ],
    },
    Case {
        name: "a broken host or section does not hide the other hosts' errors",
        edits: &[
            ("ip: 10.1.0.10", "ip: 10.1.0.999"),
            ("ip: 10.1.0.20", "ip: 10.1.0.11"),
            ("  webapp: web:1\n", ""),
        ],
        errors: &[
            "11:42: hosts[0].ip: expected an IPv4 address, found \"10.1.0.999\"",
            "13:37: hosts[2].ip: duplicate IP 10.1.0.11 (also hosts[1])",
            "17:3: images.webapp: missing required key `webapp`",
        ],
    },
    Case {
        name: "image name with a space",
        edits: &[("nginx: nginx:1", "nginx: \"nginx 1\"")],
        errors: &[
            "21:10: images.nginx: invalid image name \"nginx 1\": use letters, digits and . _ / : @ -, starting with a lowercase letter or digit and ending with a letter or digit",
        ],
    },
    Case {
        name: "boolean where a mapping belongs, and an empty value",
        edits: &[("app:\n  limiter:\n", "app:\n  public_base_url:\n  limiter:\n"), ("", "proxmox: true\n")],
        errors: &[
            "23:3: app.public_base_url: expected a string, found nothing",
            "32:10: proxmox: expected a mapping, found \"true\"",
        ],
    },
    Case {
        name: "proxmox homelab keys out of range or unquotable",
        edits: &[
            ("", PROXMOX),
            ("  bridge: vmbr0\n", "  bridge: vmbr0\n  vlan: 5000\n  cpu_type: \"x86 64\"\n  tags: [prod, Prod]\n  ssh_user: Root\n  lxc_template: local:iso/x.iso\n"),
            ("  node: pve\n", "  node: \"pve;rm\"\n"),
        ],
        errors: &[
            "33:9: proxmox.node: invalid Proxmox name \"pve;rm\": use letters, digits and . _ -",
            "37:9: proxmox.vlan: VLAN tag 5000 is outside 1-4094",
            "38:13: proxmox.cpu_type: invalid Proxmox name \"x86 64\": use letters, digits and . _ -",
            "39:16: proxmox.tags[1]: invalid tag \"Prod\": use 1-64 lowercase letters, digits, '_' and '-', not starting with '-'",
            "40:13: proxmox.ssh_user: invalid user name \"Root\": use 1-32 lowercase letters, digits, '_' and '-'",
            "41:17: proxmox.lxc_template: expected <storage>:vztmpl/<file> (e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst), found \"local:iso/x.iso\"",
        ],
    },
    Case {
        name: "lxc and data disk keys on a web host",
        edits: &[("ip: 10.1.0.11 }", "ip: 10.1.0.11, kind: lxc, data_disk_gb: 5, vlan: 0 }")],
        errors: &[
            "12:51: hosts[1].kind: only postgres and redis hosts may be lxc (web1 is web)",
            "12:70: hosts[1].data_disk_gb: only postgres and redis hosts have a data disk (web1 is web)",
            "12:79: hosts[1].vlan: VLAN tag 0 is outside 1-4094",
        ],
    },
    Case {
        name: "lxc host without an lxc template, with a cpu type",
        edits: &[("", PROXMOX), ("ip: 10.1.0.21 }", "ip: 10.1.0.21, kind: lxc, cpu_type: host }")],
        errors: &[
            "14:54: hosts[3].kind: an lxc host needs `proxmox.lxc_template` (e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst)",
            "14:69: hosts[3].cpu_type: an lxc host has no emulated CPU",
        ],
    },
    Case {
        name: "template from an image with telmate",
        edits: &[
            ("", PROXMOX),
            ("vm_id: 9000 }", "vm_id: 9000, image_url: \"https://img.example/debian.qcow2\" }"),
            ("  node: pve\n", "  node: pve\n  provider: telmate\n"),
        ],
        errors: &[
            "35:50: proxmox.template.image_url: building the template from an image needs provider bpg (telmate cannot download images); create the template by hand or use bpg",
        ],
    },
    Case {
        name: "data VM id taken by another host",
        edits: &[
            ("target: local", "target: proxmox"),
            ("ip: 10.1.0.10 }", "ip: 10.1.0.10, vm_id: 1101 }"),
            ("ip: 10.1.0.11 }", "ip: 10.1.0.11, vm_id: 102 }"),
            ("ip: 10.1.0.20 }", "ip: 10.1.0.20, vm_id: 101 }"),
            ("ip: 10.1.0.21 }", "ip: 10.1.0.21, vm_id: 104, data_vm_id: 102 }"),
            ("ip: 10.1.0.30 }", "ip: 10.1.0.30, vm_id: 105 }"),
            ("", PROXMOX),
        ],
        errors: &[
            "13:55: hosts[2].vm_id: data VM id 1101 of redis is already used by hosts[0]; set data_vm_id",
            "14:72: hosts[3].data_vm_id: data VM id 102 of pg is already used by hosts[1]; set data_vm_id",
        ],
    },
    Case {
        name: "loadtest extra addresses that do not parse",
        edits: &[(
            "",
            "loadtest:\n  extra_addresses: [10.1.0.11, 10.1.0.40-10.1.0.41, 10.1.0.41, 10.2.0.5, 10.1.0.1, 10.1.0.50-10.1.0.40, 10.1.0.x]\n",
        )],
        errors: &[
            "32:84: loadtest.extra_addresses[5]: range \"10.1.0.50-10.1.0.40\" ends before it starts",
            "32:105: loadtest.extra_addresses[6]: expected an IPv4 address or a range like 10.0.0.50-10.0.0.59, found \"10.1.0.x\"",
        ],
    },
    Case {
        name: "loadtest extra addresses in use, outside, repeated",
        edits: &[(
            "",
            "loadtest:\n  extra_addresses: [10.1.0.11, 10.1.0.40-10.1.0.41, 10.1.0.41, 10.2.0.5, 10.1.0.1]\n",
        )],
        errors: &[
            "32:21: loadtest.extra_addresses[0]: 10.1.0.11 is the address of web1 (hosts[1])",
            "32:53: loadtest.extra_addresses[2]: 10.1.0.41 is listed twice (also loadtest.extra_addresses[1])",
            "32:64: loadtest.extra_addresses[3]: 10.2.0.5 is not a host address of the network 10.1.0.0/24",
            "32:74: loadtest.extra_addresses[4]: 10.1.0.1 is the gateway address",
        ],
    },
    Case {
        name: "a key path that would end an HCL string and add a line",
        edits: &[(
            "private_key: keys/id\n",
            "private_key: \"keys/id\\\"\\nresource x\"\n",
        )],
        errors: &["8:16: ssh.private_key: invalid file path \"keys/id\\\"\\nresource x\": '\"' is not allowed (no control characters, quotes, '\\', '`' or '$')"],
    },
    Case {
        name: "a public key path with a shell variable and a tab",
        edits: &[("public_key: keys/id.pub\n", "public_key: \"keys/\\t$HOME.pub\"\n")],
        errors: &["9:15: ssh.public_key: invalid file path \"keys/\\t$HOME.pub\": '\\t' is not allowed (no control characters, quotes, '\\', '`' or '$')"],
    },
    Case {
        name: "a file secret path with a backtick and an HCL directive",
        edits: &[
            ("file:pg.txt", "file:pg`id`.txt"),
            ("redis_password: env:REDIS_PW", "redis_password: file:r%{x}"),
        ],
        errors: &[
            "29:19: secrets.redis_password: invalid file path \"r%{x}\": \"%{\" is not allowed",
            "30:22: secrets.postgres_password: invalid file path \"pg`id`.txt\": '`' is not allowed (no control characters, quotes, '\\', '`' or '$')",
        ],
    },
    Case {
        name: "a key prefix that would end a quoted string",
        edits: &[("  limiter:\n", "  limiter:\n    key_prefix: \"rl'x\"\n")],
        errors: &["24:17: app.limiter.key_prefix: invalid key prefix \"rl'x\": use 1-64 letters, digits and : _ . -"],
    },
    Case {
        name: "an image name that docker would read as an option",
        edits: &[("vm: vm:1", "vm: --privileged"), ("nginx: nginx:1", "nginx: Nginx:1")],
        errors: &[
            "17:7: images.vm: invalid image name \"--privileged\": use letters, digits and . _ / : @ -, starting with a lowercase letter or digit and ending with a letter or digit",
            "21:10: images.nginx: invalid image name \"Nginx:1\": use letters, digits and . _ / : @ -, starting with a lowercase letter or digit and ending with a letter or digit",
        ],
    },
    Case {
        name: "the superuser as the app's database role",
        edits: &[("app:\n", "app:\n  database: postgres\n")],
        errors: &["23:13: app.database: invalid database name \"postgres\": use 1-63 lowercase letters, digits and '_', starting with a letter (not `postgres`, the superuser)"],
    },
    Case {
        name: "a public URL with a query, and one without a host",
        edits: &[("app:\n", "app:\n  public_base_url: \"http://a.example/?x=`id`\"\n")],
        errors: &["23:20: app.public_base_url: expected an http(s) URL with a host, without a trailing '/', query, fragment, credentials, spaces or quotes, found \"http://a.example/?x=`id`\""],
    },
    Case {
        name: "redis maxmemory without a unit",
        edits: &[("  limiter:\n", "  limiter:\n    redis_maxmemory: 256\n")],
        errors: &["24:22: app.limiter.redis_maxmemory: expected a memory size like 256mb or 1gb, found \"256\""],
    },
    Case {
        name: "a load balancer bound to a name",
        edits: &[("images:\n", "load_balancer: { bind: localhost }\nimages:\n")],
        errors: &["16:24: load_balancer.bind: expected an IPv4 address, found \"localhost\""],
    },
    Case {
        name: "a registry address with a scheme and path, and an uppercase push address",
        edits: &[(
            "images:\n",
            "images:\n  mode: pull\n  registry: { address: \"https://reg.lan/x\", push_address: Reg:5000 }\n",
        )],
        errors: &[
            "18:24: images.registry.address: expected a registry address host[:port] like 10.50.0.5:5000 or registry.lan (lowercase, no scheme or path), found \"https://reg.lan/x\"",
            "18:59: images.registry.push_address: expected a registry address host[:port] like 10.50.0.5:5000 or registry.lan (lowercase, no scheme or path), found \"Reg:5000\"",
        ],
    },
    Case {
        name: "an insecure registry with a CA, and a registry user without a password",
        edits: &[(
            "images:\n",
            "images:\n  mode: pull\n  registry:\n    address: 10.1.0.5:5000\n    insecure: true\n    ca_file: ca.pem\n    username: ci\n",
        )],
        errors: &[
            "21:14: images.registry.ca_file: an insecure registry speaks plain HTTP; ca_file is for one that uses TLS (drop one of them)",
            "22:15: images.registry.username: `username` needs `password` (env:NAME or file:path) beside it",
        ],
    },
    Case {
        name: "a registry password given as the secret itself",
        edits: &[(
            "images:\n",
            "images:\n  mode: pull\n  registry: { address: reg.lan, username: ci, password: hunter2 }\n",
        )],
        errors: &["18:57: images.registry.password: must be a reference (env:NAME or file:path), never the secret itself"],
    },
];

fn apply(case: &Case) -> String {
    let mut text = BASE.to_owned();
    for (find, replace) in case.edits {
        if find.is_empty() {
            text.push_str(replace);
        } else {
            assert_eq!(
                text.matches(find).count(),
                1,
                "case {:?}: {find:?} must occur exactly once",
                case.name
            );
            text = text.replacen(find, replace, 1);
        }
    }
    text
}

#[test]
fn base_spec_is_valid() {
    if let Err(e) = Cluster::parse(BASE, Path::new("base.yaml"), FileCheck::SpecOnly) {
        panic!("{e}");
    }
    let with_proxmox = format!("{BASE}{PROXMOX}");
    if let Err(e) = Cluster::parse(&with_proxmox, Path::new("base.yaml"), FileCheck::SpecOnly) {
        panic!("{e}");
    }
}

#[test]
fn every_broken_spec_reports_exactly_its_errors() {
    assert!(CASES.len() >= 30, "the table needs at least 30 cases");
    let mut failures = Vec::new();
    for case in CASES {
        let text = apply(case);
        let got: Vec<String> =
            match Cluster::parse(&text, Path::new("broken.yaml"), FileCheck::SpecOnly) {
                Ok(_) => vec!["<valid>".to_owned()],
                Err(errors) => errors.errors.iter().map(ToString::to_string).collect(),
            };
        if got != case.errors {
            failures.push(format!(
                "case {:?}\n  expected: {:#?}\n  got:      {:#?}",
                case.name, case.errors, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn missing_key_files_and_secret_files_are_reported_when_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("cluster.yaml");
    std::fs::write(&spec, BASE).expect("write spec");
    let text = std::fs::read_to_string(&spec).expect("read spec");
    assert!(Cluster::parse(&text, &spec, FileCheck::SpecOnly).is_ok());
    let errors = Cluster::parse(&text, &spec, FileCheck::RequireFiles)
        .expect_err("files are missing")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert_eq!(
        errors,
        [
            "8:16: ssh.private_key: key file keys/id does not exist",
            "9:15: ssh.public_key: key file keys/id.pub does not exist",
            "30:22: secrets.postgres_password: secret file pg.txt does not exist",
        ]
    );
    std::fs::create_dir(dir.path().join("keys")).expect("mkdir");
    for file in ["keys/id", "keys/id.pub", "pg.txt"] {
        std::fs::write(dir.path().join(file), "x\n").expect("write");
    }
    if let Err(e) = Cluster::parse(&text, &spec, FileCheck::RequireFiles) {
        panic!("{e}");
    }
}

#[test]
fn the_report_quotes_the_line_and_points_at_the_column() {
    let text = BASE.replace("ip: 10.1.0.20", "ip: 10.2.0.20");
    let report = Cluster::parse(&text, Path::new("cluster.yaml"), FileCheck::SpecOnly)
        .expect_err("invalid")
        .to_string();
    let expected = "\
cluster.yaml is invalid (1 error):
error: 10.2.0.20 is outside the network 10.1.0.0/24
  --> cluster.yaml:13:37 (hosts[2].ip)
   |
13 |   - { name: redis, role: redis, ip: 10.2.0.20 }
   |                                     ^
";
    assert_eq!(report, expected);
}
