//! The limiter's decisions by policy and outcome, summed over the web hosts, with each
//! host's share: the table `provisioner status` prints after the containers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::web::{outcome, WebMetrics};

/// Header of the near-limit column (`ratelimit_near_limit_total`).
const NEAR_LIMIT: &str = "near_limit";

/// One policy's counts: per outcome, and near-limit admissions.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counts {
    outcomes: BTreeMap<String, f64>,
    near_limit: f64,
}

/// Per policy: the sum over the web hosts, and each host's counts in host order.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySummary {
    hosts: Vec<String>,
    policies: BTreeMap<String, (Counts, Vec<Counts>)>,
    /// The outcome columns: every known outcome, then any other the hosts reported.
    outcomes: Vec<String>,
}

impl PolicySummary {
    /// Gathers `(host, its metrics)`; a host that reported nothing for a policy counts 0.
    pub fn gather(hosts: &[(&str, &WebMetrics)]) -> PolicySummary {
        let mut policies: BTreeMap<String, (Counts, Vec<Counts>)> = BTreeMap::new();
        let mut unknown = BTreeSet::new();
        for (index, (_, metrics)) in hosts.iter().enumerate() {
            for ((policy, outcome), count) in &metrics.decisions {
                if !outcome::ALL.contains(&outcome.as_str()) {
                    unknown.insert(outcome.clone());
                }
                for counts in policy_row(&mut policies, policy, index, hosts.len()) {
                    *counts.outcomes.entry(outcome.clone()).or_default() += count;
                }
            }
            for (policy, count) in &metrics.near_limit {
                for counts in policy_row(&mut policies, policy, index, hosts.len()) {
                    counts.near_limit += count;
                }
            }
        }
        PolicySummary {
            hosts: hosts.iter().map(|(host, _)| (*host).to_owned()).collect(),
            policies,
            outcomes: outcome::ALL
                .iter()
                .map(|outcome| (*outcome).to_owned())
                .chain(unknown)
                .collect(),
        }
    }

    /// The summed count of `outcome` under `policy` (0 when none was counted).
    pub fn total(&self, policy: &str, outcome: &str) -> f64 {
        self.policies
            .get(policy)
            .and_then(|(total, _)| total.outcomes.get(outcome))
            .copied()
            .unwrap_or_default()
    }
}

/// The counts a host's reading of `policy` adds to: the policy's sum and the host's share.
fn policy_row<'a>(
    policies: &'a mut BTreeMap<String, (Counts, Vec<Counts>)>,
    policy: &str,
    host: usize,
    hosts: usize,
) -> [&'a mut Counts; 2] {
    let (total, by_host) = policies
        .entry(policy.to_owned())
        .or_insert_with(|| (Counts::default(), vec![Counts::default(); hosts]));
    [total, &mut by_host[host]]
}

/// A table: a header line, then per policy its sum over the hosts (`all`) and one line per
/// host, counts right-aligned under their outcome.
impl fmt::Display for PolicySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.policies.is_empty() {
            return writeln!(f, "  (no decisions yet)");
        }
        let mut header = vec!["policy".to_owned(), "host".to_owned()];
        header.extend(self.outcomes.iter().cloned());
        header.push(NEAR_LIMIT.to_owned());
        let cells = |policy: &str, host: &str, counts: &Counts| {
            let mut line = vec![policy.to_owned(), host.to_owned()];
            line.extend(self.outcomes.iter().map(|outcome| {
                format!(
                    "{}",
                    counts.outcomes.get(outcome).copied().unwrap_or_default()
                )
            }));
            line.push(format!("{}", counts.near_limit));
            line
        };
        let mut lines = vec![header];
        for (policy, (total, by_host)) in &self.policies {
            lines.push(cells(policy, "all", total));
            for (host, counts) in self.hosts.iter().zip(by_host) {
                lines.push(cells("", host, counts));
            }
        }
        let widths: Vec<usize> = (0..lines[0].len())
            .map(|column| {
                lines
                    .iter()
                    .map(|line| line[column].len())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for line in &lines {
            let mut text = String::new();
            for (column, (cell, width)) in line.iter().zip(&widths).enumerate() {
                if column < 2 {
                    text.push_str(&format!("  {cell:<width$}"));
                } else {
                    text.push_str(&format!("  {cell:>width$}"));
                }
            }
            writeln!(f, "{}", text.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(decisions: &[(&str, &str, f64)], near_limit: &[(&str, f64)]) -> WebMetrics {
        WebMetrics {
            decisions: decisions
                .iter()
                .map(|(policy, outcome, count)| ((policy.to_string(), outcome.to_string()), *count))
                .collect(),
            near_limit: near_limit
                .iter()
                .map(|(policy, count)| (policy.to_string(), *count))
                .collect(),
            ..WebMetrics::default()
        }
    }

    #[test]
    fn sums_each_policy_over_the_hosts_and_keeps_each_share() {
        let web1 = host(
            &[("redirect", "allowed", 60.0), ("redirect", "limited", 5.0)],
            &[("redirect", 12.0)],
        );
        let web2 = host(
            &[
                ("redirect", "allowed", 40.0),
                ("shorten", "fallback_allowed", 3.0),
            ],
            &[],
        );
        let summary = PolicySummary::gather(&[("web1", &web1), ("web2", &web2)]);
        assert_eq!(summary.total("redirect", outcome::ALLOWED), 100.0);
        assert_eq!(summary.total("shorten", outcome::FALLBACK_ALLOWED), 3.0);
        assert_eq!(summary.total("shorten", outcome::ALLOWED), 0.0);
        assert_eq!(
            summary.to_string(),
            "  \
policy    host  allowed  limited  shadow_limited  fallback_allowed  fallback_limited  exempt  fail_open  fail_closed  near_limit
  redirect  all       100        5               0                 0                 0       0          0            0          12
            web1       60        5               0                 0                 0       0          0            0          12
            web2       40        0               0                 0                 0       0          0            0           0
  shorten   all         0        0               0                 3                 0       0          0            0           0
            web1        0        0               0                 0                 0       0          0            0           0
            web2        0        0               0                 3                 0       0          0            0           0
"
        );
    }

    #[test]
    fn an_outcome_this_provisioner_does_not_know_still_gets_a_column() {
        let web1 = host(&[("redirect", "sampled_out", 2.0)], &[]);
        let summary = PolicySummary::gather(&[("web1", &web1)]);
        let header = summary.to_string().lines().next().unwrap().to_owned();
        assert!(
            header.ends_with("fail_closed  sampled_out  near_limit"),
            "{header}"
        );
    }

    #[test]
    fn no_decisions_say_so() {
        let idle = WebMetrics::default();
        assert_eq!(
            PolicySummary::gather(&[("web1", &idle)]).to_string(),
            "  (no decisions yet)\n"
        );
    }
}
