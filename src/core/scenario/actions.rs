//! Reading the steps with the richest values — partitions, link shaping and cuts, waits, checks,
//! RPC calls and measurements — for `parse`, every value located.

use std::collections::HashMap;

use crate::core::chain::propagation::{Kind as Propagation, MAX_ROUNDS};
use crate::core::chain::wait::WaitFor;
use crate::core::cluster::manifest::parse_memory;
use crate::core::faults::link;
use crate::core::faults::plane::Block;
use crate::core::faults::throttle::Limits;
use crate::core::names::{backticked, shown};
use crate::core::partition::{CutMode, PartitionKind, Via};
use crate::core::scenario::model::{Action, Check, Then, DEFAULT_ROUNDS, MAX_BLOCKS, MAX_HEIGHT};
use crate::core::scenario::parse::*;
use crate::core::verb::Verb;
use crate::core::yaml::{found, Fields, Pos, Value, Yaml};

use serde_json::Value as Json;

impl Parser<'_> {
    /// A partition's `via` and `mode` (with whether stopped packets are answered with a reset).
    fn cut_way(&self, f: &Fields) -> Res<(Via, CutMode, bool)> {
        let cx = &self.cx;
        let via = match f.get("via") {
            None => Via::Segments,
            Some(v) => match cx.string(v, "`via`")? {
                "segments" => Via::Segments,
                "firewall" => Via::Firewall,
                other => {
                    return Err(cx.error(
                        v.at,
                        format!(
                            "unknown `via` `{}`, expected `segments` or `firewall`",
                            shown(other)
                        ),
                    ))
                }
            },
        };
        let (mode, reset) =
            match f.get("mode") {
                None => (CutMode::Drop, false),
                Some(m) => match cx.string(m, "`mode`")? {
                    "drop" => (CutMode::Drop, false),
                    "silent" => (CutMode::Silent, false),
                    "reset" if via == Via::Firewall => (CutMode::Drop, true),
                    "reset" => return Err(cx.error(
                        m.at,
                        "`mode: reset` needs `via: firewall` (segments cannot answer with a reset)",
                    )),
                    other => {
                        return Err(cx.error(
                            m.at,
                            format!(
                                "unknown partition mode `{}`, expected `drop`, `silent` or `reset`",
                                shown(other)
                            ),
                        ))
                    }
                },
            };
        Ok((via, mode, reset))
    }

    pub(super) fn partition(&self, value: &Yaml) -> Res<Action> {
        let cx = &self.cx;
        let f = cx.fields(
            value,
            "`partition`",
            &["groups", "kind", "seed", "node", "mode", "via"],
        )?;
        let (via, mode, reset) = self.cut_way(&f)?;
        let kind_name = match (f.get("groups"), f.get("kind")) {
            (Some(_), Some(k)) => {
                return Err(cx.error(
                    f.key_at("kind").unwrap_or(k.at),
                    "`partition` takes either `groups` or `kind`, not both",
                ))
            }
            (None, None) => {
                return Err(cx.error(
                    f.at,
                    format!(
                        "`partition` needs `groups: [[..], [..]]` or `kind:` one of {}",
                        backticked(PARTITION_KINDS)
                    ),
                ))
            }
            (Some(g), None) => {
                only_with(cx, &f, "seed", "`kind: random-halves`")?;
                only_with(cx, &f, "node", "`kind: isolate`")?;
                return Ok(Action::verb(Verb::Partition {
                    kind: PartitionKind::Groups(self.groups(g)?),
                    mode,
                    via,
                    reset,
                    timeout: None,
                }));
            }
            (None, Some(k)) => (cx.string(k, "`kind`")?, k),
        };
        let (name, k) = kind_name;
        if name != "random-halves" {
            only_with(cx, &f, "seed", "`kind: random-halves`")?;
        }
        if name != "isolate" {
            only_with(cx, &f, "node", "`kind: isolate`")?;
        }
        let kind = match name {
            "halves" => PartitionKind::Halves,
            "random-halves" => PartitionKind::RandomHalves {
                seed: match f.get("seed") {
                    Some(s) => self.int(s, "`seed`", 0, u64::MAX)?,
                    // Scenarios are tests: the same file must cut the same way every run.
                    None => 0,
                },
            },
            "isolate" => {
                let node = f.get("node").ok_or_else(|| {
                    cx.error(f.at, "`kind: isolate` needs `node`: the node to cut off")
                })?;
                PartitionKind::Isolate(self.node(node)?)
            }
            "bridge" => PartitionKind::Bridge,
            "majorities-ring" => PartitionKind::MajoritiesRing,
            other => {
                return Err(cx.error(
                    k.at,
                    format!(
                        "unknown partition kind `{}`, expected one of {} or `groups: [[..], [..]]`",
                        shown(other),
                        backticked(PARTITION_KINDS)
                    ),
                ))
            }
        };
        Ok(Action::verb(Verb::Partition {
            kind,
            mode,
            via,
            reset,
            timeout: None,
        }))
    }

    pub(super) fn netem(&self, value: &Yaml) -> Res<Action> {
        let cx = &self.cx;
        let mut keys = vec!["nodes", "to"];
        keys.extend_from_slice(link::FIELDS);
        let f = cx.fields(value, "`netem`", &keys)?;
        let nodes = f.get("nodes").map(|v| self.nodes(v)).transpose()?;
        let to = f.get("to").map(|v| self.nodes(v)).transpose()?;
        let shaping = link::from_fields(cx, &f)?.ok_or_else(|| {
            cx.error(
                f.at,
                format!(
                    "`netem` needs at least one of {} (`clear: netem` removes shaping)",
                    backticked(link::FIELDS)
                ),
            )
        })?;
        Ok(Action::verb(Verb::Netem { nodes, to, shaping }))
    }

    /// `clock: { nodes: n1, offset: +3h, drift: +1s/min }` (either of `offset` and `drift` may be left
    /// out: the node's own); `offset: 0, drift: 0` (no `nodes`: every node) as `clock --clear`.
    pub(super) fn clock(&self, value: &Yaml) -> Res<Action> {
        let cx = &self.cx;
        let f = cx.fields(value, "`clock`", &["nodes", "offset", "drift"])?;
        let nodes = f.get("nodes").map(|v| self.nodes(v)).transpose()?;
        let offset = f.get("offset").map(|v| cx.clock(v)).transpose()?;
        let drift = f.get("drift").map(|v| cx.drift(v)).transpose()?;
        if offset.is_none() && drift.is_none() {
            return Err(cx.error(value.at, "`clock` needs `offset`, `drift` or both"));
        }
        Ok(Action::verb(Verb::Clock {
            nodes,
            offset,
            drift,
        }))
    }

    /// `{to?, timeout?}` (the bare word: a fresh chain).
    pub(super) fn reset(&self, value: &Yaml) -> Res<Action> {
        let f = self.cx.fields(value, "`reset`", &["to", "timeout"])?;
        let to = f.get("to").map(|v| self.cx.string(v, "`to`")).transpose()?;
        Ok(Action::verb(Verb::Reset {
            to: to.map(str::to_string),
            timeout: Some(self.timeout(&f)?),
        }))
    }

    /// `{name, timeout?}`; the name's rules are `Verb::check`'s, refused at the step.
    pub(super) fn snapshot(&self, value: &Yaml) -> Res<Action> {
        let f = self.cx.fields(value, "`snapshot`", &["name", "timeout"])?;
        let name = self.cx.string(self.cx.required(&f, "name")?, "`name`")?;
        Ok(Action::verb(Verb::Snapshot {
            name: name.to_string(),
            timeout: Some(self.timeout(&f)?),
        }))
    }

    /// `{nodes, cpus?, memory?}` (at least one limit) or `{nodes?, clear: true}`; the limits' bounds
    /// are `Verb::check`'s, refused at the step.
    pub(super) fn throttle(&self, value: &Yaml) -> Res<Action> {
        let cx = &self.cx;
        let f = cx.fields(value, "`throttle`", &["nodes", "cpus", "memory", "clear"])?;
        let nodes = f.get("nodes").map(|v| self.nodes(v)).transpose()?;
        let clear = match f.get("clear") {
            Some(c) => cx.boolean(c, "`clear`")?,
            None => false,
        };
        let cpus = match f.get("cpus").map(|c| (c, &c.value)) {
            None => None,
            Some((_, Value::Int(n))) => Some(*n as f64),
            Some((_, Value::Float(x))) => Some(*x),
            Some((c, other)) => {
                let why = format!(
                    "`cpus` must be a number of CPUs such as `0.05`, found {}",
                    found(other)
                );
                return Err(cx.error(c.at, why));
            }
        };
        let memory = match f.get("memory").map(|m| (m, &m.value)) {
            None => None,
            Some((_, Value::Int(n))) if *n >= 0 => Some(*n as u64),
            Some((_, Value::Str(s))) if parse_memory(s).is_some() => parse_memory(s),
            Some((m, other)) => {
                let why = format!(
                    "`memory` must be a size such as `64m` or `1g`, found {}",
                    found(other)
                );
                return Err(cx.error(m.at, why));
            }
        };
        if nodes.is_none() && !clear {
            return Err(cx.error(f.at, "`throttle` needs `nodes` (or `clear: true`)"));
        }
        let verb = Verb::Throttle {
            nodes,
            limits: Limits {
                cpus,
                memory,
                io_rate: None,
            },
            clear,
        };
        verb.check()
            .map_err(|why| cx.error(f.at, why.to_string()))?;
        Ok(Action::verb(verb))
    }

    pub(super) fn cut(&self, value: &Yaml) -> Res<Action> {
        let cx = &self.cx;
        let f = cx.fields(value, "`cut`", &["between", "from", "to", "reset"])?;
        let block = match f.get("reset") {
            Some(r) if cx.boolean(r, "`reset`")? => Block::Reset,
            _ => Block::Drop,
        };
        let (from, to, both) = match (f.get("between"), f.get("from"), f.get("to")) {
            (Some(b), None, None) => {
                let Value::Seq(ends) = &b.value else {
                    return Err(cx.error(
                        b.at,
                        format!(
                            "`between` must be two ends `[a, b]` (each a node or a list), found {}",
                            found(&b.value)
                        ),
                    ));
                };
                let [a, z] = ends.as_slice() else {
                    return Err(cx.error(
                        b.at,
                        format!(
                            "`between` must be two ends `[a, b]`, found {} entries",
                            ends.len()
                        ),
                    ));
                };
                (self.nodes(a)?, self.nodes(z)?, true)
            }
            (None, Some(a), Some(z)) => (self.nodes(a)?, self.nodes(z)?, false),
            _ => {
                return Err(cx.error(
                    f.at,
                    "`cut` takes `between: [a, b]` (both ways) or `from` and `to` (one way)",
                ))
            }
        };
        Ok(Action::verb(Verb::Cut {
            from,
            to,
            both,
            block,
        }))
    }

    pub(super) fn groups(&self, v: &Yaml) -> Res<Vec<Vec<String>>> {
        let expected =
            "`groups` must be a list of at least two lists of nodes, like `[[n0, n1], [n2, n3]]`";
        let Value::Seq(items) = &v.value else {
            return Err(self
                .cx
                .error(v.at, format!("{expected}, found {}", found(&v.value))));
        };
        if items.len() < 2 {
            return Err(self
                .cx
                .error(v.at, format!("{expected}, found {} group(s)", items.len())));
        }
        let mut seen: HashMap<String, Pos> = HashMap::new();
        let mut groups = Vec::with_capacity(items.len());
        for item in items {
            let Value::Seq(members) = &item.value else {
                return Err(self.cx.error(
                    item.at,
                    format!(
                        "a group must be a list of nodes, found {}",
                        found(&item.value)
                    ),
                ));
            };
            if members.is_empty() {
                return Err(self
                    .cx
                    .error(item.at, "a group must have at least one node"));
            }
            let mut group = Vec::with_capacity(members.len());
            for m in members {
                let node = self.node(m)?;
                if let Some(first) = seen.insert(node.clone(), m.at) {
                    return Err(self.cx.error(
                        m.at,
                        format!(
                            "node `{}` is already in a group (line {}, column {})",
                            shown(&node),
                            first.line,
                            first.column
                        ),
                    ));
                }
                group.push(node);
            }
            groups.push(group);
        }
        Ok(groups)
    }

    pub(super) fn wait(&self, value: &Yaml) -> Res<Action> {
        let cx = &self.cx;
        let f = cx.fields(
            value,
            "`wait`",
            &[
                "sync_blocks",
                "sync_mempools",
                "height",
                "peers",
                "node",
                "timeout",
            ],
        )?;
        let (cond, v) = one_of(cx, &f, "`wait`", WAIT_CONDITIONS)?;
        if matches!(cond, "sync_blocks" | "sync_mempools") {
            only_with(cx, &f, "node", "`height` or `peers`")?;
        }
        let node = f.get("node").map(|n| self.node(n)).transpose()?;
        let until = match cond {
            "sync_blocks" => WaitFor::SyncBlocks(self.node_set(v, "`sync_blocks`")?),
            "sync_mempools" => WaitFor::SyncMempools(self.node_set(v, "`sync_mempools`")?),
            "height" => WaitFor::Height {
                node,
                height: self.int(v, "`height`", 0, MAX_HEIGHT)?,
            },
            _ => WaitFor::Peers {
                count: self.int(
                    v,
                    "`peers`",
                    0,
                    crate::core::cluster::manifest::MAX_NODES as u64,
                )? as usize,
                node: node.ok_or_else(|| {
                    cx.error(
                        f.at,
                        "`peers` needs `node`: the node whose peers are counted",
                    )
                })?,
            },
        };
        Ok(Action::verb(Verb::Wait {
            until,
            timeout: Some(self.timeout(&f)?),
        }))
    }

    pub(super) fn check(&self, value: &Yaml) -> Res<Check> {
        let cx = &self.cx;
        if let Value::Str(text) = &value.value {
            return match text.split_whitespace().collect::<Vec<_>>()[..] {
                ["tip_of", a, "==", "tip_of", b] if a != b => Ok(Check::TipOf {
                    a: a.to_owned(),
                    b: b.to_owned(),
                }),
                _ => Err(cx.error(
                    value.at,
                    format!(
                        "expected `tip_of A == tip_of B` with two different nodes, found `{}`",
                        shown(text)
                    ),
                )),
            };
        }
        let f = cx.fields(
            value,
            "`assert`",
            &[
                "same_tip",
                "different_tips",
                "height",
                "node",
                "tip_of",
                "equals",
                "mempool_has",
                "stale_tips",
            ],
        )?;
        let (check, v) = one_of(cx, &f, "`assert`", CHECKS)?;
        if check != "height" {
            only_with(cx, &f, "node", "`height`")?;
        }
        if check != "tip_of" {
            only_with(cx, &f, "equals", "`tip_of`")?;
        }
        Ok(match check {
            "same_tip" => Check::SameTip(self.node_set(v, "`same_tip`")?),
            "different_tips" => {
                let nodes = self.node_list(v, "`different_tips`")?;
                Check::DifferentTips(nodes)
            }
            "height" => Check::Height {
                node: f.get("node").map(|n| self.node(n)).transpose()?,
                height: self.int(v, "`height`", 0, MAX_HEIGHT)?,
            },
            "tip_of" => {
                let a = self.node(v)?;
                let e = cx.required(&f, "equals")?;
                let b = self.node(e)?;
                if a == b {
                    return Err(cx.error(
                        e.at,
                        format!("`tip_of` compares `{}` with itself", shown(&a)),
                    ));
                }
                Check::TipOf { a, b }
            }
            "stale_tips" => {
                let m = cx.fields(v, "`stale_tips`", &["node", "count"])?;
                Check::StaleTips {
                    node: self.node(cx.required(&m, "node")?)?,
                    count: self.int(cx.required(&m, "count")?, "`count`", 0, MAX_BLOCKS)?,
                }
            }
            _ => {
                let m = cx.fields(v, "`mempool_has`", &["node", "tx"])?;
                let node = self.node(cx.required(&m, "node")?)?;
                let tx = match m.get("tx") {
                    Some(t) => {
                        let id = cx.string(t, "`tx`")?;
                        if !self.sends.contains_key(id) {
                            return Err(cx.error(
                                t.at,
                                format!(
                                    "no earlier `send` has `id: {}`{}",
                                    shown(id),
                                    known_ids(&self.sends)
                                ),
                            ));
                        }
                        Some(id.to_owned())
                    }
                    None if !self.sent => {
                        return Err(cx.error(
                            m.at,
                            "`mempool_has` without `tx` looks for the last sent transaction, but no `send` comes before it",
                        ))
                    }
                    None => None,
                };
                Check::MempoolHas { node, tx }
            }
        })
    }

    pub(super) fn rpc(&self, value: &Yaml) -> Res<Action> {
        let cx = &self.cx;
        let f = cx.fields(value, "`rpc`", &["node", "method", "params", "expect"])?;
        let node = self.node(cx.required(&f, "node")?)?;
        let m = cx.required(&f, "method")?;
        let method = cx.string(m, "`method`")?;
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(cx.error(
                m.at,
                format!(
                    "invalid RPC method `{}`, expected letters, digits and `_` like `getblockcount`",
                    shown(method)
                ),
            ));
        }
        let params = match f.get("params") {
            None => Vec::new(),
            Some(p) => match &p.value {
                Value::Seq(items) => items.iter().map(|i| self.json(i)).collect::<Res<_>>()?,
                other => {
                    return Err(cx.error(
                        p.at,
                        format!(
                            "`params` must be a list of positional parameters, found {}",
                            found(other)
                        ),
                    ))
                }
            },
        };
        let verb = Verb::Rpc {
            node,
            method: method.to_owned(),
            params,
            timeout: None,
        };
        Ok(Action::Do {
            verb,
            then: match f.get("expect") {
                Some(e) => Then::Equals(self.json(e)?),
                None => Then::Pass,
            },
        })
    }

    /// `{propagation: block | tx, from?, blocks? | rounds?, quantile?, within, timeout?}`.
    pub(super) fn measure(&self, value: &Yaml) -> Res<Action> {
        let cx = &self.cx;
        let f = cx.fields(
            value,
            "`measure`",
            &[
                "propagation",
                "from",
                "blocks",
                "rounds",
                "quantile",
                "within",
                "timeout",
            ],
        )?;
        let k = cx.required(&f, "propagation")?;
        let kind = match cx.string(k, "`propagation`")? {
            "block" => Propagation::Block,
            "tx" => Propagation::Tx,
            other => {
                return Err(cx.error(
                    k.at,
                    format!(
                        "unknown propagation `{}`, expected one of {}",
                        shown(other),
                        backticked(MEASURE_KINDS)
                    ),
                ))
            }
        };
        let rounds = match (f.get("blocks"), f.get("rounds")) {
            (Some(_), Some(r)) => {
                return Err(cx.error(
                    f.key_at("rounds").unwrap_or(r.at),
                    "`blocks` and `rounds` are the same count; give one",
                ))
            }
            (Some(n), None) => self.int(n, "`blocks`", 1, MAX_ROUNDS as u64)? as usize,
            (None, Some(n)) => self.int(n, "`rounds`", 1, MAX_ROUNDS as u64)? as usize,
            (None, None) => DEFAULT_ROUNDS,
        };
        let quantile = match f.get("quantile") {
            None => 0.95,
            Some(q) => match q.value {
                Value::Int(1) => 1.0,
                Value::Float(x) if x > 0.0 && x <= 1.0 => x,
                ref other => {
                    return Err(cx.error(
                        q.at,
                        format!(
                            "`quantile` must be a fraction of the nodes, more than 0 and at most 1 (0.95: 95% of them), found {}",
                            found(other)
                        ),
                    ))
                }
            },
        };
        let verb = Verb::Measure {
            kind,
            from: f.get("from").map(|n| self.node(n)).transpose()?,
            rounds,
            timeout: Some(self.timeout(&f)?),
        };
        Ok(Action::Do {
            verb,
            then: Then::Within {
                quantile,
                within: self.seconds(cx.required(&f, "within")?, "`within`")?,
            },
        })
    }

    pub(super) fn json(&self, v: &Yaml) -> Res<Json> {
        Ok(match &v.value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => {
                let n = i64::try_from(*i)
                    .map(serde_json::Number::from)
                    .or_else(|_| u64::try_from(*i).map(serde_json::Number::from))
                    .map_err(|_| {
                        self.cx
                            .error(v.at, format!("integer {i} does not fit in JSON-RPC"))
                    })?;
                Json::Number(n)
            }
            Value::Float(x) => serde_json::Number::from_f64(*x)
                .map(Json::Number)
                .ok_or_else(|| self.cx.error(v.at, format!("number {x} is not valid JSON")))?,
            Value::Str(s) => Json::String(s.clone()),
            Value::Seq(items) => {
                Json::Array(items.iter().map(|i| self.json(i)).collect::<Res<_>>()?)
            }
            Value::Map(entries) => {
                let mut object = serde_json::Map::with_capacity(entries.len());
                for (k, val) in entries {
                    let Value::Str(key) = &k.value else {
                        return Err(self.cx.error(
                            k.at,
                            format!(
                                "a JSON object key must be a string, found {} (quote it)",
                                found(&k.value)
                            ),
                        ));
                    };
                    object.insert(key.clone(), self.json(val)?);
                }
                Json::Object(object)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::core::faults::throttle::Limits;
    use crate::core::scenario::model::{Action, Then};
    use crate::core::scenario::parse;
    use crate::core::verb::Verb;

    fn step(text: &str) -> Result<(String, Verb), String> {
        let source = format!("cluster: {{name: lab, nodes: 4}}\nsteps:\n  - {text}\n");
        let s = parse(&source, "t.scenario.yaml").map_err(|e| e.to_string())?;
        match &s.steps[0].action {
            Action::Do {
                verb,
                then: Then::Pass,
            } => Ok((s.steps[0].label.clone(), verb.clone())),
            other => panic!("not a verb: {other:?}"),
        }
    }

    #[test]
    fn a_throttle_step_is_the_throttle_verb_and_bad_limits_are_refused_at_the_step() {
        let (label, verb) = step("throttle: {nodes: [n2, 3], cpus: 0.05, memory: 64m}").unwrap();
        assert_eq!(label, "throttle n2,3: cpus 0.05, memory 64 MiB");
        let limits = Limits {
            cpus: Some(0.05),
            memory: Some(64 << 20),
            io_rate: None,
        };
        assert_eq!(
            verb,
            Verb::Throttle {
                nodes: Some(vec!["n2".into(), "3".into()]),
                limits,
                clear: false
            }
        );
        let (label, _) = step("throttle: {clear: true}").unwrap();
        assert_eq!(label, "clear throttle of all");
        for (text, says) in [
            (
                "throttle: {nodes: n2}",
                "t.scenario.yaml:3:15: no limit given",
            ),
            ("throttle: {nodes: n2, cpus: 0}", "`cpus` 0 is out of range"),
            ("throttle: {nodes: n2, memory: 1k}", "at least 32 MiB"),
            (
                "throttle: {nodes: n2, memory: lots}",
                "3:35: `memory` must be a size",
            ),
            (
                "throttle: {nodes: n2, cpus: many}",
                "`cpus` must be a number",
            ),
            ("throttle: {cpus: 1}", "`throttle` needs `nodes`"),
            (
                "throttle: {nodes: n2, clear: true, cpus: 1}",
                "`clear` takes no limits",
            ),
            ("throttle: {nodes: n2, io: 1m}", "unknown field"),
        ] {
            let e = step(text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
