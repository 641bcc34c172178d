//! What a saved Terraform plan does to each host, read from `terraform show -json`, and
//! which of it needs the user's consent before `up` applies it: replacing or destroying a
//! host that holds data (role `postgres` or `redis`), or deleting a resource that holds
//! data. Pure: exec runs terraform, this reads its answer.
//!
//! The rendered workspaces follow one naming rule so that a change can be traced to its
//! host: every per-host resource is a `for_each` whose key is the host's name; a resource
//! named `host` is the machine itself, one named `data` is storage that outlives it (a
//! Proxmox data disk); other per-host resources (snippets, keys) hold nothing that is lost.

use serde::Deserialize;
use serde_json::Value;

use crate::spec::Cluster;

/// What a per-host resource is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// The host's machine (VM or container); the data of a data host survives its
    /// replacement only because that data lives elsewhere, so it still needs consent.
    Machine,
    /// Storage that outlives the machine: deleting it deletes the data.
    Data,
    /// Anything else of the host (cloud-init snippet, authorized key).
    Other,
}

fn holds_by_name(name: &str) -> Holds {
    match name {
        "host" => Holds::Machine,
        "data" => Holds::Data,
        _ => Holds::Other,
    }
}

/// What the resource at a state address (`terraform state list`) holds, e.g.
/// `proxmox_virtual_environment_vm.data["postgres"]` holds data.
pub fn holds(address: &str) -> Holds {
    let without_key = address.split('[').next().unwrap_or(address);
    holds_by_name(without_key.rsplit('.').next().unwrap_or(without_key))
}

/// What Terraform will do to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Create,
    Update,
    /// Destroyed and created again (either order).
    Replace,
    Delete,
}

/// One planned change of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    pub address: String,
    /// The host it belongs to (the `for_each` key), when it belongs to one.
    pub host: Option<String>,
    pub holds: Holds,
    pub effect: Effect,
    /// Why, for replacements: each attribute that forces it, with old and new value.
    pub reasons: Vec<String>,
}

impl ResourceChange {
    /// Removes or re-creates the resource (what a data host must not suffer unasked).
    pub fn destroys(&self) -> bool {
        matches!(self.effect, Effect::Replace | Effect::Delete)
    }
}

#[derive(Deserialize)]
struct PlanJson {
    #[serde(default)]
    resource_changes: Vec<RawChange>,
}

#[derive(Deserialize)]
struct RawChange {
    address: String,
    #[serde(default)]
    mode: String,
    name: String,
    #[serde(default)]
    index: Option<Value>,
    change: RawDiff,
    #[serde(default)]
    action_reason: Option<String>,
}

#[derive(Deserialize)]
struct RawDiff {
    actions: Vec<String>,
    #[serde(default)]
    before: Value,
    #[serde(default)]
    after: Value,
    #[serde(default)]
    after_unknown: Value,
    #[serde(default)]
    before_sensitive: Value,
    #[serde(default)]
    after_sensitive: Value,
    #[serde(default)]
    replace_paths: Vec<Vec<Value>>,
}

/// Reads `terraform show -json PLANFILE`; resources left alone are not listed.
pub fn parse_plan(json: &str) -> Result<Vec<ResourceChange>, String> {
    let plan: PlanJson =
        serde_json::from_str(json).map_err(|e| format!("not a terraform plan in JSON: {e}"))?;
    let mut changes = Vec::new();
    for raw in plan.resource_changes {
        if raw.mode != "managed" {
            continue;
        }
        let has = |action: &str| raw.change.actions.iter().any(|a| a == action);
        let effect = match (has("create"), has("delete"), has("update")) {
            (true, true, _) => Effect::Replace,
            (true, false, _) => Effect::Create,
            (false, true, _) => Effect::Delete,
            (false, false, true) => Effect::Update,
            (false, false, false) => continue,
        };
        let holds = holds_by_name(&raw.name);
        let mut reasons: Vec<String> = raw
            .change
            .replace_paths
            .iter()
            .flat_map(|path| describe_path(&raw.change, path))
            .collect();
        match raw.action_reason.as_deref() {
            Some("replace_by_request") => reasons.push("replacement requested".into()),
            Some("replace_because_tainted") => reasons.push("tainted by a failed apply".into()),
            _ => {}
        }
        if effect == Effect::Delete {
            reasons.push("no longer in cluster.yaml".into());
        }
        changes.push(ResourceChange {
            address: raw.address,
            host: raw.index.and_then(|i| i.as_str().map(str::to_owned)),
            holds,
            effect,
            reasons,
        });
    }
    Ok(changes)
}

/// `triggers_replace.ip: "10.77.0.21" -> "10.77.0.22"` for each leaf that differs under
/// a path that forces replacement.
fn describe_path(diff: &RawDiff, path: &[Value]) -> Vec<String> {
    let at = |value: &Value| {
        path.iter().try_fold(value.clone(), |v, step| match step {
            Value::String(key) => v.get(key).cloned(),
            Value::Number(n) => n.as_u64().and_then(|i| v.get(i as usize).cloned()),
            _ => None,
        })
    };
    let name: Vec<String> = path
        .iter()
        .map(|step| match step {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let mut out = Vec::new();
    leaf_diffs(
        &name.join("."),
        at(&diff.before).unwrap_or(Value::Null),
        at(&diff.after).unwrap_or(Value::Null),
        at(&diff.after_unknown).unwrap_or(Value::Null),
        is_sensitive(at(&diff.before_sensitive)) || is_sensitive(at(&diff.after_sensitive)),
        &mut out,
    );
    if out.is_empty() {
        out.push(name.join("."));
    }
    out
}

fn is_sensitive(flag: Option<Value>) -> bool {
    flag == Some(Value::Bool(true))
}

fn leaf_diffs(
    name: &str,
    before: Value,
    after: Value,
    unknown: Value,
    sensitive: bool,
    out: &mut Vec<String>,
) {
    if let (Value::Object(b), Value::Object(a)) = (&before, &after) {
        let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let pick = |v: &Value| v.get(key).cloned().unwrap_or(Value::Null);
            leaf_diffs(
                &format!("{name}.{key}"),
                pick(&before),
                pick(&after),
                pick(&unknown),
                sensitive,
                out,
            );
        }
        return;
    }
    if unknown == Value::Bool(true) {
        out.push(format!("{name}: known after apply"));
    } else if before != after {
        if sensitive {
            out.push(format!("{name}: (sensitive value changed)"));
        } else {
            out.push(format!("{name}: {} -> {}", show(&before), show(&after)));
        }
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

/// The changes that `up` must not apply without consent: those that replace or destroy
/// a machine of a data host not named in `allowed`, and those that delete data storage
/// (which only `delete_data` allows).
pub fn needing_consent<'a>(
    cluster: &Cluster,
    changes: &'a [ResourceChange],
    allowed: &[String],
    delete_data: bool,
) -> Vec<&'a ResourceChange> {
    changes
        .iter()
        .filter(|change| change.destroys())
        .filter(|change| match change.holds {
            Holds::Data => !delete_data,
            Holds::Machine => {
                let Some(host) = &change.host else {
                    return false;
                };
                let holds_data = cluster
                    .hosts
                    .iter()
                    .find(|h| &h.name == host)
                    .map(|h| h.role.holds_data())
                    // A host no longer in the spec: its role is unknown, so ask.
                    .unwrap_or(true);
                holds_data && !allowed.contains(host)
            }
            Holds::Other => false,
        })
        .collect()
}

/// Hosts whose machine the plan creates (new or replacing an old one): their old host
/// keys, if any, must leave the cluster's known_hosts file.
pub fn new_machines(changes: &[ResourceChange]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| {
            c.holds == Holds::Machine && matches!(c.effect, Effect::Create | Effect::Replace)
        })
        .filter_map(|c| c.host.clone())
        .collect()
}

/// `2 to add, 1 to change, 2 to destroy` as terraform counts them (a replace is both).
pub fn summary(changes: &[ResourceChange]) -> String {
    let count = |f: fn(Effect) -> bool| changes.iter().filter(|c| f(c.effect)).count();
    format!(
        "{} to add, {} to change, {} to destroy",
        count(|e| matches!(e, Effect::Create | Effect::Replace)),
        count(|e| e == Effect::Update),
        count(|e| matches!(e, Effect::Delete | Effect::Replace)),
    )
}

/// One line per change for the user, e.g.
/// `postgres: terraform_data.host["postgres"] will be replaced (triggers_replace.ip: ...)`.
pub fn describe(change: &ResourceChange) -> String {
    let what = match change.effect {
        Effect::Create => "created",
        Effect::Update => "updated in place",
        Effect::Replace => "replaced",
        Effect::Delete => "destroyed",
    };
    let host = change.host.as_deref().unwrap_or("-");
    let data = if change.holds == Holds::Data && change.destroys() {
        " — THIS DELETES THE DATA ON IT"
    } else {
        ""
    };
    if change.reasons.is_empty() {
        format!("{host}: {} will be {what}{data}", change.address)
    } else {
        format!(
            "{host}: {} will be {what}{data} ({})",
            change.address,
            change.reasons.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a real `terraform show -json` of the local workspace.
    const PLAN: &str = r#"{"format_version":"1.2","resource_changes":[
      {"address":"terraform_data.host[\"postgres\"]","mode":"managed","type":"terraform_data",
       "name":"host","index":"postgres","change":{"actions":["delete","create"],
       "before":{"id":"1","triggers_replace":{"container":"c-postgres","ip":"10.77.0.21"}},
       "after":{"triggers_replace":{"container":"c-postgres","ip":"10.77.0.22"}},
       "after_unknown":{"id":true,"triggers_replace":{}},
       "before_sensitive":{"triggers_replace":{}},"after_sensitive":{"triggers_replace":{}},
       "replace_paths":[["triggers_replace"]]},"action_reason":"replace_because_cannot_update"},
      {"address":"terraform_data.host[\"web1\"]","mode":"managed","type":"terraform_data",
       "name":"host","index":"web1","change":{"actions":["delete","create"],"before":{},
       "after":{},"replace_paths":[]},"action_reason":"replace_by_request"},
      {"address":"terraform_data.host[\"web2\"]","mode":"managed","type":"terraform_data",
       "name":"host","index":"web2","change":{"actions":["no-op"]}},
      {"address":"terraform_data.authorized_key[\"redis\"]","mode":"managed",
       "type":"terraform_data","name":"authorized_key","index":"redis",
       "change":{"actions":["create","delete"]}},
      {"address":"proxmox_virtual_environment_vm.data[\"redis\"]","mode":"managed",
       "type":"proxmox_virtual_environment_vm","name":"data","index":"redis",
       "change":{"actions":["delete"]}},
      {"address":"terraform_data.host[\"redis\"]","mode":"managed","type":"terraform_data",
       "name":"host","index":"redis","change":{"actions":["update"]}}
    ]}"#;

    #[test]
    fn changes_are_traced_to_hosts_with_their_reasons() {
        let changes = parse_plan(PLAN).expect("plan");
        assert_eq!(changes.len(), 5, "no-ops are left out: {changes:?}");
        assert_eq!(
            describe(&changes[0]),
            "postgres: terraform_data.host[\"postgres\"] will be replaced \
             (triggers_replace.ip: \"10.77.0.21\" -> \"10.77.0.22\")"
        );
        assert_eq!(
            describe(&changes[1]),
            "web1: terraform_data.host[\"web1\"] will be replaced (replacement requested)"
        );
        assert_eq!(changes[2].holds, Holds::Other);
        assert_eq!(
            describe(&changes[3]),
            "redis: proxmox_virtual_environment_vm.data[\"redis\"] will be destroyed — THIS \
             DELETES THE DATA ON IT (no longer in cluster.yaml)"
        );
        assert_eq!(changes[4].effect, Effect::Update);
        assert_eq!(summary(&changes), "3 to add, 1 to change, 4 to destroy");
        assert_eq!(new_machines(&changes), ["postgres", "web1"]);
    }

    #[test]
    fn data_hosts_and_data_need_consent_web_hosts_do_not() {
        let cluster = Cluster::repository_default();
        let changes = parse_plan(PLAN).expect("plan");
        let blocked = |allowed: &[&str], delete_data| {
            let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
            needing_consent(&cluster, &changes, &allowed, delete_data)
                .iter()
                .map(|c| c.address.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            blocked(&[], false),
            [
                "terraform_data.host[\"postgres\"]",
                "proxmox_virtual_environment_vm.data[\"redis\"]"
            ]
        );
        assert_eq!(
            blocked(&["postgres"], false),
            ["proxmox_virtual_environment_vm.data[\"redis\"]"]
        );
        // Consent to replace a host is not consent to delete its data.
        assert_eq!(
            blocked(&["postgres", "redis"], false),
            ["proxmox_virtual_environment_vm.data[\"redis\"]"]
        );
        assert!(blocked(&["postgres"], true).is_empty());
    }

    #[test]
    fn state_addresses_say_what_they_hold() {
        assert_eq!(holds("terraform_data.host[\"web1\"]"), Holds::Machine);
        assert_eq!(
            holds("proxmox_virtual_environment_vm.data[\"postgres\"]"),
            Holds::Data
        );
        assert_eq!(holds("module.x.proxmox_vm_qemu.data[\"a.b\"]"), Holds::Data);
        assert_eq!(holds("terraform_data.network"), Holds::Other);
    }

    #[test]
    fn a_host_gone_from_the_spec_still_needs_consent() {
        let cluster = Cluster::repository_default();
        let plan = r#"{"resource_changes":[{"address":"terraform_data.host[\"db2\"]",
            "mode":"managed","name":"host","index":"db2","change":{"actions":["delete"]}}]}"#;
        let changes = parse_plan(plan).expect("plan");
        assert_eq!(needing_consent(&cluster, &changes, &[], false).len(), 1);
        assert!(parse_plan("{}").expect("empty").is_empty());
        assert!(parse_plan("nope").is_err());
    }
}
