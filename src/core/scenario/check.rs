//! Validating a scenario against the cluster it runs on: every node reference resolves, senders and
//! receivers have wallets, and nodes that must differ do.

use std::collections::HashMap;

use crate::core::chain::wait::WaitFor;
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::names::{shown, NodeNames};
use crate::core::partition::PartitionKind;
use crate::core::scenario::model::{Action, Check, Scenario};
use crate::core::verb::Verb;
use crate::core::yaml::{Cx, Pos, SourceError};

/// Checks the steps against the cluster they will run on: every node reference
/// resolves, senders and receivers have wallets, and nodes that must differ do.
/// Errors point at the step.
/// Steps after an `apply` are checked against the cluster it declares.
pub fn validate(scenario: &Scenario, spec: &ClusterSpec, origin: &str) -> Result<(), SourceError> {
    let cx = Cx::new(origin, "scenario");
    let mut spec = spec;
    for step in &scenario.steps {
        let names: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
        // The spec no longer says whether a count made the names; n0..nK is what one makes.
        let counted = names.iter().enumerate().all(|(i, n)| *n == format!("n{i}"));
        let names = NodeNames { names, counted };
        let v = StepCheck {
            cx: &cx,
            spec,
            names: &names,
            at: Pos {
                line: step.line,
                column: step.column,
            },
        };
        v.step(&step.action)?;
        if let Action::Do {
            verb: Verb::Apply { spec: applied, .. },
            ..
        } = &step.action
        {
            spec = applied;
        }
    }
    Ok(())
}

type Res<T> = Result<T, SourceError>;

struct StepCheck<'a> {
    cx: &'a Cx<'a>,
    spec: &'a ClusterSpec,
    names: &'a NodeNames<'a>,
    at: Pos,
}

impl StepCheck<'_> {
    fn resolve(&self, r: &str) -> Res<usize> {
        self.spec.resolve(r).ok_or_else(|| {
            self.cx.error(
                self.at,
                format!("unknown node `{}` ({})", shown(r), self.names.hint()),
            )
        })
    }

    /// Resolves every node and rejects one reached twice (say `n1` and `1`).
    fn distinct(&self, refs: &[String]) -> Res<()> {
        let mut seen: HashMap<usize, &str> = HashMap::new();
        for r in refs {
            if let Some(first) = seen.insert(self.resolve(r)?, r) {
                return Err(self.cx.error(
                    self.at,
                    format!("`{}` and `{}` are the same node", shown(first), shown(r)),
                ));
            }
        }
        Ok(())
    }

    fn wallet(&self, r: &str, role: &str) -> Res<()> {
        let node = &self.spec.nodes[self.resolve(r)?];
        if node.wallet {
            return Ok(());
        }
        Err(self.cx.error(
            self.at,
            format!(
                "`send` {role} `{}`, which has no wallet (set `wallet: true` on the node or in `defaults`)",
                shown(&node.name)
            ),
        ))
    }

    fn step(&self, action: &Action) -> Res<()> {
        match action {
            Action::Do { verb, .. } => self.verb(verb),
            Action::Assert(check) => self.check(check),
            Action::Sleep(_) => Ok(()),
        }
    }

    fn verb(&self, verb: &Verb) -> Res<()> {
        match verb {
            Verb::Send { from, to, .. } => {
                self.wallet(from, "sends from")?;
                self.wallet(to, "pays to")
            }
            Verb::Connect { a, b } | Verb::Disconnect { a, b } => {
                self.distinct(&[a.clone(), b.clone()])
            }
            Verb::Partition { kind, .. } => {
                if self.spec.nodes.len() < 2 {
                    return Err(self.cx.error(
                        self.at,
                        "a partition needs at least 2 nodes, the cluster has 1",
                    ));
                }
                match kind {
                    PartitionKind::Groups(groups) => self.distinct(&groups.concat()),
                    PartitionKind::Isolate(node) => self.resolve(node).map(drop),
                    _ => Ok(()),
                }
            }
            Verb::Wait {
                until:
                    WaitFor::Ready(Some(nodes))
                    | WaitFor::SyncBlocks(Some(nodes))
                    | WaitFor::SyncMempools(Some(nodes)),
                ..
            } => self.distinct(nodes),
            Verb::Measure { from, .. } => {
                if self.spec.nodes.len() < 2 {
                    return Err(self.cx.error(
                        self.at,
                        "measuring propagation needs at least 2 nodes, the cluster has 1",
                    ));
                }
                from.as_deref()
                    .map_or(Ok(()), |n| self.resolve(n).map(drop))
            }
            Verb::Apply { spec, .. } if spec.name != self.spec.name => Err(self.cx.error(
                self.at,
                format!(
                    "`apply` declares cluster `{}`, but the scenario's cluster is `{}`",
                    spec.name, self.spec.name
                ),
            )),
            other => other
                .nodes()
                .iter()
                .try_for_each(|n| self.resolve(n).map(drop)),
        }
    }

    fn check(&self, check: &Check) -> Res<()> {
        match check {
            Check::MempoolHas { node, .. } | Check::StaleTips { node, .. } => {
                self.resolve(node).map(drop)
            }
            Check::Height { node, .. } => node
                .as_deref()
                .map_or(Ok(()), |n| self.resolve(n).map(drop)),
            Check::TipOf { a, b } => self.distinct(&[a.clone(), b.clone()]),
            Check::SameTip(Some(nodes)) | Check::DifferentTips(nodes) => self.distinct(nodes),
            Check::SameTip(None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cluster::manifest;
    use crate::core::scenario::{parse, ClusterSource};

    fn ok(source: &str) -> Scenario {
        parse(source, "test.scenario.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn inline(s: &Scenario) -> &ClusterSpec {
        match &s.cluster {
            ClusterSource::Inline(spec) => spec,
            other => panic!("expected an inline cluster, found {other:?}"),
        }
    }

    /// Parses and validates against the scenario's own inline cluster.
    fn invalid(source: &str) -> SourceError {
        let s = ok(source);
        match validate(&s, inline(&s), "test.scenario.yaml") {
            Ok(()) => panic!("expected a validation error for {s:?}"),
            Err(e) => e,
        }
    }

    /// Steps after a 4-node ring cluster, so that steps start on line 3.
    fn steps(body: &str) -> String {
        format!("cluster: {{name: lab, nodes: 4}}\nsteps:\n{body}")
    }

    macro_rules! assert_invalid {
        ($name:literal, $source:expr) => {{
            let source: &str = &$source;
            let message = invalid(source).to_string();
            insta::with_settings!({ description => source, omit_expression => true }, {
                insta::assert_snapshot!($name, message);
            });
        }};
    }

    // Errors found against the cluster, located at the step.

    #[test]
    fn validation_errors() {
        let v = |body: &str| {
            format!("cluster:\n  name: lab\n  nodes: [{{name: a, wallet: true}}, {{name: b}}, {{name: c, wallet: true}}]\nsteps:\n{body}")
        };
        assert_invalid!("unknown_node", v("  - mine: {node: d, blocks: 1}\n"));
        assert_invalid!("unknown_index", v("  - heal\n  - stop: 3\n"));
        assert_invalid!(
            "unknown_counted_node",
            steps("  - name: grow\n    mine: {node: n4, blocks: 1}\n")
        );
        assert_invalid!(
            "send_from_walletless",
            v("  - send: {from: b, to: a, amount: 1}\n")
        );
        assert_invalid!(
            "send_to_walletless",
            v("  - send: {from: a, to: b, amount: 1}\n")
        );
        assert_invalid!("connect_same_node_by_index", v("  - connect: [a, 0]\n"));
        assert_invalid!(
            "tip_of_same_node_by_index",
            v("  - assert: \"tip_of c == tip_of 2\"\n")
        );
        assert_invalid!(
            "group_member_twice_by_index",
            v("  - partition: {groups: [[a, b], [c, 1]]}\n")
        );
        assert_invalid!(
            "isolate_unknown",
            v("  - partition: {kind: isolate, node: z}\n")
        );
        assert_invalid!("sync_list_unknown", v("  - wait: {sync_blocks: [a, q]}\n"));
        assert_invalid!(
            "height_node_unknown",
            v("  - assert: {height: 1, node: q}\n")
        );
        assert_invalid!(
            "partition_single_node",
            "cluster: {name: lab, nodes: 1}\nsteps:\n  - partition: {kind: halves}\n"
        );
        assert_invalid!(
            "measure_from_unknown",
            v("  - measure: {propagation: block, from: q, within: 2}\n")
        );
        assert_invalid!(
            "measure_single_node",
            "cluster: {name: lab, nodes: 1}\nsteps:\n  - measure: {propagation: tx, within: 2}\n"
        );
    }

    #[test]
    fn validation_uses_the_given_origin() {
        let s = parse(
            "cluster: ring4.yaml\nsteps:\n  - stop: n9\n",
            "a.scenario.yaml",
        )
        .unwrap();
        let spec =
            manifest::parse(include_str!("../../../manifests/ring4.yaml"), "ring4.yaml").unwrap();
        let e = validate(&s, &spec, "a.scenario.yaml").unwrap_err();
        assert_eq!(
            (e.origin.as_str(), e.line, e.column),
            ("a.scenario.yaml", 3, 5)
        );
    }
}
