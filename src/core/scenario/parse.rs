//! Reading a scenario file: [`parse`] checks everything the file alone can tell (shapes, values,
//! send ids) and locates each error in the file; the keyword tables of the format live here.

use std::collections::HashMap;
use std::time::Duration;

use crate::core::cluster::manifest::is_node_name;
use crate::core::faults::node::Fault;
use crate::core::names::{backticked, shown};
use crate::core::scenario::model::{
    Action, ClusterSource, Scenario, Step, Then, DEFAULT_TIMEOUT, MAX_BLOCKS, MAX_LABEL_CHARS,
    MAX_SATS, MAX_SECONDS, SATS_PER_BTC,
};
use crate::core::verb::Verb;
use crate::core::yaml::{found, Cx, Fields, Pos, SourceError, Value, Yaml};

const TOP_FIELDS: &[&str] = &["name", "cluster", "steps"];
const ACTIONS: &[&str] = &[
    "mine",
    "send",
    "connect",
    "disconnect",
    "partition",
    "heal",
    "stop",
    "start",
    "restart",
    "kill",
    "pause",
    "unpause",
    "wait",
    "assert",
    "rpc",
    "sleep",
    "measure",
    "netem",
    "cut",
    "clear",
    "throttle",
    "clock",
    "disk",
    "reset",
    "snapshot",
    "status",
    "sync",
    "url",
    "logs",
    "apply",
    "down",
];
/// Steps that may be written as a bare word: they need no value.
const BARE_WORDS: &[&str] = &["heal", "clear", "reset", "status", "sync", "down"];
pub(super) const PARTITION_KINDS: &[&str] = &[
    "halves",
    "random-halves",
    "isolate",
    "bridge",
    "majorities-ring",
];
pub(super) const MEASURE_KINDS: &[&str] = &["block", "tx"];
pub(super) const WAIT_CONDITIONS: &[&str] = &["sync_blocks", "sync_mempools", "height", "peers"];
pub(super) const CHECKS: &[&str] = &[
    "same_tip",
    "different_tips",
    "height",
    "tip_of",
    "mempool_has",
    "stale_tips",
];

/// Parses a scenario and checks everything that does not need the cluster.
/// `origin` names the source in errors and, without `name:`, names the scenario.
pub fn parse(source: &str, origin: &str) -> Result<Scenario, SourceError> {
    parse_with(Cx::new(origin, "scenario"), source, origin)
}

/// [`parse`], reading the topology file an inline cluster may name with `read` (see
/// `manifest::parse_reading`).
pub fn parse_reading(
    source: &str,
    origin: &str,
    read: crate::core::yaml::ReadFile<'_>,
) -> Result<Scenario, SourceError> {
    parse_with(Cx::new(origin, "scenario").reading(read), source, origin)
}

fn parse_with(cx: Cx<'_>, source: &str, origin: &str) -> Result<Scenario, SourceError> {
    let doc = cx.load(source)?;
    Parser {
        cx,
        sends: HashMap::new(),
        sent: false,
    }
    .scenario(&doc, origin)
}

pub(super) type Res<T> = Result<T, SourceError>;

pub(super) struct Parser<'a> {
    pub(super) cx: Cx<'a>,
    /// Send ids and where they were declared.
    pub(super) sends: HashMap<String, Pos>,
    pub(super) sent: bool,
}

impl Parser<'_> {
    fn scenario(&mut self, doc: &Yaml, origin: &str) -> Res<Scenario> {
        let cx = &self.cx;
        if let Value::Null = doc.value {
            return Err(cx.error(
                doc.at,
                "scenario is empty, expected a mapping with `cluster` and `steps`",
            ));
        }
        let top = cx.fields(doc, "a scenario", TOP_FIELDS)?;
        let name = match top.get("name") {
            Some(v) => self.label(v, "scenario name")?,
            None => default_name(origin),
        };

        let c = cx.required(&top, "cluster")?;
        let cluster = match &c.value {
            Value::Str(path) if !path.is_empty() => ClusterSource::File {
                path: path.clone(),
                line: c.at.line,
                column: c.at.column,
            },
            Value::Map(_) => ClusterSource::Inline(cx.cluster(c)?),
            other => {
                return Err(cx.error(
                    c.at,
                    format!(
                        "`cluster` must be a manifest (a mapping with `name` and `nodes`) or the path of a manifest file, found {}",
                        found(other)
                    ),
                ))
            }
        };

        let s = cx.required(&top, "steps")?;
        let items = match &s.value {
            Value::Seq(items) if !items.is_empty() => items,
            Value::Seq(_) => {
                return Err(cx.error(s.at, "`steps` is empty, expected at least one step"))
            }
            other => {
                return Err(cx.error(
                    s.at,
                    format!("`steps` must be a list of steps, found {}", found(other)),
                ))
            }
        };
        let steps = items
            .iter()
            .map(|item| self.step(item))
            .collect::<Res<_>>()?;
        Ok(Scenario {
            name,
            cluster,
            steps,
        })
    }

    fn step(&mut self, item: &Yaml) -> Res<Step> {
        let cx = &self.cx;
        let (key, value, label) = match &item.value {
            Value::Str(word) => {
                if BARE_WORDS.contains(&word.as_str()) {
                    (item, None, None)
                } else if ACTIONS.contains(&word.as_str()) {
                    return Err(cx.error(item.at, needs_value(word)));
                } else {
                    return Err(cx.error(item.at, unknown_action(word)));
                }
            }
            Value::Map(entries) => {
                let mut action: Option<(&Yaml, &Yaml)> = None;
                let mut label = None;
                for (k, v) in entries {
                    let Value::Str(name) = &k.value else {
                        return Err(cx.error(
                            k.at,
                            format!(
                                "expected an action ({}) or `name`, found {}",
                                backticked(ACTIONS),
                                found(&k.value)
                            ),
                        ));
                    };
                    if name == "name" {
                        label = Some(self.label(v, "step name")?);
                    } else if !ACTIONS.contains(&name.as_str()) {
                        return Err(cx.error(k.at, unknown_action(name)));
                    } else if let Some((first, _)) = action {
                        return Err(cx.error(
                            k.at,
                            format!(
                                "a step has one action, found `{}` and `{name}` (give each its own `- `)",
                                str_of(first)
                            ),
                        ));
                    } else {
                        action = Some((k, v));
                    }
                }
                let Some((k, v)) = action else {
                    return Err(cx.error(
                        item.at,
                        format!(
                            "a step needs an action, one of {}",
                            backticked(ACTIONS)
                        ),
                    ));
                };
                (k, Some(v), label)
            }
            other => {
                return Err(cx.error(
                    item.at,
                    format!(
                        "a step must be a mapping like `mine: {{ node: n0, blocks: 1 }}` or the word `heal`, found {}",
                        found(other)
                    ),
                ))
            }
        };
        let action = self.action(str_of(key), key.at, value)?;
        // The bounds every door's verbs are held to, at the step (the fields above are checked
        // where they are written; this catches whatever they let through).
        if let Action::Do { verb, .. } = &action {
            verb.check()
                .map_err(|e| self.cx.error(key.at, format!("`{}`: {e}", str_of(key))))?;
        }
        Ok(Step {
            label: label.unwrap_or_else(|| action.to_string()),
            line: key.at.line,
            column: key.at.column,
            action,
        })
    }

    pub(super) fn label(&self, v: &Yaml, what: &str) -> Res<String> {
        let s = self.cx.string(v, what)?;
        let n = s.chars().count();
        if n == 0 || n > MAX_LABEL_CHARS || s.chars().any(char::is_control) {
            return Err(self.cx.error(
                v.at,
                format!(
                    "invalid {what} `{}`, expected 1 to {MAX_LABEL_CHARS} characters on one line",
                    shown(s)
                ),
            ));
        }
        Ok(s.to_owned())
    }

    /// `value` is `None` for a bare word.
    fn action(&mut self, kind: &str, at: Pos, value: Option<&Yaml>) -> Res<Action> {
        let value = match value {
            Some(v) if !matches!(v.value, Value::Null) => v,
            _ => return bare(kind).ok_or_else(|| self.cx.error(at, needs_value(kind))),
        };
        if let Some(fault) = Fault::ALL.into_iter().find(|f| f.name() == kind) {
            return Ok(Action::verb(Verb::Fault {
                fault,
                node: self.node(value)?,
            }));
        }
        match kind {
            "mine" => {
                let f = self.cx.fields(value, "`mine`", &["node", "blocks"])?;
                Ok(Action::verb(Verb::Mine {
                    node: self.node(self.cx.required(&f, "node")?)?,
                    blocks: self.int(self.cx.required(&f, "blocks")?, "`blocks`", 1, MAX_BLOCKS)?,
                }))
            }
            "send" => self.send(value),
            "connect" | "disconnect" => {
                let (a, b) = self.pair(value, kind)?;
                Ok(Action::verb(if kind == "connect" {
                    Verb::Connect { a, b }
                } else {
                    Verb::Disconnect { a, b }
                }))
            }
            "partition" => self.partition(value),
            "heal" => {
                let f = self.cx.fields(value, "`heal`", &["sync", "timeout"])?;
                Ok(Action::verb(Verb::Heal {
                    sync: match f.get("sync") {
                        Some(s) => self.cx.boolean(s, "`sync`")?,
                        None => false,
                    },
                    timeout: Some(self.timeout(&f)?),
                }))
            }
            "wait" => self.wait(value),
            "sync" => {
                let f = self.cx.fields(value, "`sync`", &["timeout"])?;
                Ok(Action::verb(Verb::Sync {
                    timeout: Some(self.timeout(&f)?),
                }))
            }
            "reset" => self.reset(value),
            "snapshot" => self.snapshot(value),
            "url" => Ok(Action::verb(Verb::Url {
                node: self.node(value)?,
            })),
            "logs" => self.logs(value),
            "apply" => Ok(Action::verb(Verb::Apply {
                spec: Box::new(self.cx.cluster(value)?),
                dry_run: false,
                timeout: None,
            })),
            "status" | "down" => Err(self.cx.error(
                value.at,
                format!("step `{kind}` takes no value: write it as the bare word `- {kind}`"),
            )),
            "assert" => self.check(value).map(Action::Assert),
            "rpc" => self.rpc(value),
            "sleep" => Ok(Action::Sleep(self.seconds(value, "`sleep`")?)),
            "measure" => self.measure(value),
            "netem" => self.netem(value),
            "cut" => self.cut(value),
            "throttle" => self.throttle(value),
            "clock" => self.clock(value),
            "disk" => {
                let f = self.cx.fields(value, "`disk`", &["node", "fill"])?;
                Ok(Action::verb(Verb::Disk {
                    node: self.node(self.cx.required(&f, "node")?)?,
                    fill: self.cx.boolean(self.cx.required(&f, "fill")?, "`fill`")?,
                }))
            }
            "clear" => {
                let (shaping, cuts) = match self.cx.string(value, "`clear`")? {
                    "netem" => (true, false),
                    "cuts" => (false, true),
                    "all" => (true, true),
                    other => {
                        return Err(self.cx.error(
                            value.at,
                            format!(
                                "unknown `clear` `{}`, expected `netem`, `cuts` or `all`",
                                shown(other)
                            ),
                        ))
                    }
                };
                Ok(Action::verb(Verb::Clear {
                    nodes: None,
                    shaping,
                    cuts,
                }))
            }
            _ => unreachable!("every action in ACTIONS is handled"),
        }
    }

    /// `logs: n0` or `logs: { node: n0, tail: 20 }`.
    fn logs(&self, value: &Yaml) -> Res<Action> {
        let (node, tail) = match &value.value {
            Value::Map(_) => {
                let f = self.cx.fields(value, "`logs`", &["node", "tail"])?;
                let node = self.node(self.cx.required(&f, "node")?)?;
                let tail = f.get("tail").map(|t| self.int(t, "`tail`", 1, 100_000));
                (node, tail.transpose()?.map(|t| t as usize))
            }
            _ => (self.node(value)?, None),
        };
        Ok(Action::verb(Verb::Logs {
            node,
            tail,
            follow: false,
        }))
    }

    fn send(&mut self, value: &Yaml) -> Res<Action> {
        let cx = &self.cx;
        let f = cx.fields(value, "`send`", &["from", "to", "amount", "id"])?;
        let from = self.node(cx.required(&f, "from")?)?;
        let to = self.node(cx.required(&f, "to")?)?;
        let amount_sat = self.amount(cx.required(&f, "amount")?)?;
        let id = match f.get("id") {
            Some(v) => {
                let id = cx.string(v, "`id`")?;
                if !is_node_name(id) {
                    return Err(cx.error(
                        v.at,
                        format!(
                            "invalid transaction id `{}`, expected a letter followed by up to 62 letters, digits, `_`, `.` or `-`",
                            shown(id)
                        ),
                    ));
                }
                if let Some(first) = self.sends.get(id) {
                    return Err(cx.error(
                        v.at,
                        format!(
                            "duplicate transaction id `{id}` (first used at line {})",
                            first.line
                        ),
                    ));
                }
                self.sends.insert(id.to_owned(), v.at);
                Some(id.to_owned())
            }
            None => None,
        };
        self.sent = true;
        Ok(Action::Do {
            verb: Verb::Send {
                from,
                to,
                amount_sat,
            },
            then: id.map_or(Then::Pass, Then::Name),
        })
    }

    /// BTC to satoshis, exactly: the decimal digits are counted on the shortest
    /// text that reads back as the same float, so `0.1` is 10 000 000 sat.
    fn amount(&self, v: &Yaml) -> Res<u64> {
        let bad = |msg: String| Err(self.cx.error(v.at, msg));
        let sats = match &v.value {
            Value::Int(i) if *i > 0 => u64::try_from(*i)
                .ok()
                .and_then(|i| i.checked_mul(SATS_PER_BTC))
                .unwrap_or(u64::MAX),
            Value::Float(x) if *x > 0.0 => {
                if *x > (MAX_SATS / SATS_PER_BTC) as f64 {
                    u64::MAX
                } else {
                    let text = x.to_string();
                    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
                    if frac.len() > 8 {
                        return bad(format!(
                            "`amount` {} has more than 8 decimals; 0.00000001 BTC is the smallest unit",
                            shown(&text)
                        ));
                    }
                    let whole: u64 = whole.parse().expect("a positive float below 21e6");
                    let frac: u64 = format!("{frac:0<8}").parse().expect("8 digits");
                    whole * SATS_PER_BTC + frac
                }
            }
            Value::Int(_) | Value::Float(_) => {
                return bad(format!(
                    "`amount` must be more than 0 BTC, got {}",
                    found(&v.value)
                ))
            }
            other => {
                return bad(format!(
                    "`amount` must be a number of BTC, found {}",
                    found(other)
                ))
            }
        };
        if sats > MAX_SATS {
            return bad(format!(
                "`amount` must be at most 21000000 BTC, got {}",
                found(&v.value)
            ));
        }
        Ok(sats)
    }

    fn pair(&self, v: &Yaml, kind: &str) -> Res<(String, String)> {
        match &v.value {
            Value::Seq(items) if items.len() == 2 => {
                let a = self.node(&items[0])?;
                let b = self.node(&items[1])?;
                if a == b {
                    return Err(self.cx.error(
                        v.at,
                        format!(
                            "`{kind}` needs two different nodes, found `{}` twice",
                            shown(&a)
                        ),
                    ));
                }
                Ok((a, b))
            }
            Value::Seq(items) => Err(self.cx.error(
                v.at,
                format!(
                    "`{kind}` must be a pair of nodes `[a, b]`, found a list of {} items",
                    items.len()
                ),
            )),
            other => Err(self.cx.error(
                v.at,
                format!(
                    "`{kind}` must be a pair of nodes `[a, b]`, found {}",
                    found(other)
                ),
            )),
        }
    }

    /// One node, or a list of them.
    pub(super) fn nodes(&self, v: &Yaml) -> Res<Vec<String>> {
        match &v.value {
            Value::Seq(items) if !items.is_empty() => items.iter().map(|i| self.node(i)).collect(),
            Value::Seq(_) => Err(self.cx.error(
                v.at,
                "expected a node or a list of nodes, found an empty list",
            )),
            _ => Ok(vec![self.node(v)?]),
        }
    }

    /// A node reference as written: a name, or a non-negative index kept as its decimal text.
    pub(super) fn node(&self, v: &Yaml) -> Res<String> {
        match &v.value {
            Value::Str(s) if !s.is_empty() => Ok(s.clone()),
            Value::Int(i) if *i >= 0 => Ok(i.to_string()),
            other => Err(self.cx.error(
                v.at,
                format!("expected a node name or index, found {}", found(other)),
            )),
        }
    }

    /// At least two nodes, none twice (as written; [`validate`](super::validate) also catches a
    /// node given once by name and once by index).
    pub(super) fn node_list(&self, v: &Yaml, what: &str) -> Res<Vec<String>> {
        let Value::Seq(items) = &v.value else {
            return Err(self.cx.error(
                v.at,
                format!("{what} must be a list of nodes, found {}", found(&v.value)),
            ));
        };
        if items.len() < 2 {
            return Err(self.cx.error(
                v.at,
                format!("{what} compares nodes, so it needs at least two"),
            ));
        }
        let mut nodes: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            let node = self.node(item)?;
            if nodes.contains(&node) {
                return Err(self
                    .cx
                    .error(item.at, format!("node `{}` is listed twice", shown(&node))));
            }
            nodes.push(node);
        }
        Ok(nodes)
    }

    /// `true` (every node) or a list of nodes.
    pub(super) fn node_set(&self, v: &Yaml, what: &str) -> Res<Option<Vec<String>>> {
        match &v.value {
            Value::Bool(true) => Ok(None),
            Value::Seq(_) => self.node_list(v, what).map(Some),
            other => Err(self.cx.error(
                v.at,
                format!(
                    "{what} must be `true` (every node) or a list of nodes, found {}",
                    found(other)
                ),
            )),
        }
    }

    pub(super) fn int(&self, v: &Yaml, what: &str, min: u64, max: u64) -> Res<u64> {
        match &v.value {
            Value::Int(i) => u64::try_from(*i)
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    let range = if max == u64::MAX {
                        format!("at least {min}")
                    } else {
                        format!("between {min} and {max}")
                    };
                    self.cx
                        .error(v.at, format!("{what} must be {range}, got {i}"))
                }),
            other => Err(self.cx.error(
                v.at,
                format!("{what} must be an integer, found {}", found(other)),
            )),
        }
    }

    pub(super) fn seconds(&self, v: &Yaml, what: &str) -> Res<Duration> {
        let secs = match &v.value {
            Value::Int(i) => *i as f64,
            Value::Float(x) => *x,
            other => {
                return Err(self.cx.error(
                    v.at,
                    format!("{what} must be a number of seconds, found {}", found(other)),
                ))
            }
        };
        if !(secs > 0.0 && secs <= MAX_SECONDS as f64) {
            return Err(self.cx.error(
                v.at,
                format!(
                    "{what} must be more than 0 and at most {MAX_SECONDS} seconds, got {}",
                    found(&v.value)
                ),
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    pub(super) fn timeout(&self, f: &Fields) -> Res<Duration> {
        f.get("timeout")
            .map_or(Ok(DEFAULT_TIMEOUT), |t| self.seconds(t, "`timeout`"))
    }
}

/// The one key of `kinds` present in `f`.
pub(super) fn one_of<'y>(
    cx: &Cx,
    f: &Fields<'y>,
    what: &str,
    kinds: &[&str],
) -> Res<(&'y str, &'y Yaml)> {
    let mut present = f.entries.iter().filter(|(k, _, _)| kinds.contains(k));
    let Some(&(first, _, v)) = present.next() else {
        return Err(cx.error(f.at, format!("{what} needs one of {}", backticked(kinds))));
    };
    if let Some(&(second, _, _)) = present.next() {
        return Err(cx.error(
            f.key_at(second).unwrap_or(f.at),
            format!("{what} takes one condition, found `{first}` and `{second}`"),
        ));
    }
    Ok((first, v))
}

/// Rejects `field` when it is present although only `context` uses it.
pub(super) fn only_with(cx: &Cx, f: &Fields, field: &str, context: &str) -> Res<()> {
    match f.get(field) {
        Some(v) => Err(cx.error(
            f.key_at(field).unwrap_or(v.at),
            format!("`{field}` only goes with {context}"),
        )),
        None => Ok(()),
    }
}

pub(super) fn str_of(y: &Yaml) -> &str {
    match &y.value {
        Value::Str(s) => s,
        _ => "",
    }
}

fn example(kind: &str) -> &'static str {
    match kind {
        "mine" => "mine: { node: n0, blocks: 1 }",
        "send" => "send: { from: n0, to: n1, amount: 1.5 }",
        "connect" => "connect: [n0, n1]",
        "disconnect" => "disconnect: [n0, n1]",
        "partition" => "partition: { kind: halves }",
        "wait" => "wait: { sync_blocks: true }",
        "assert" => "assert: { same_tip: true }",
        "rpc" => "rpc: { node: n0, method: getblockcount }",
        "sleep" => "sleep: 1",
        "measure" => "measure: { propagation: block, quantile: 0.95, within: 2 }",
        "netem" => "netem: { nodes: n0, delay: 100ms }",
        "cut" => "cut: { from: n0, to: n1 }",
        "clear" => "clear: netem",
        "throttle" => "throttle: { nodes: n2, cpus: 0.05 }",
        "clock" => "clock: { nodes: n0, offset: +3h }",
        "disk" => "disk: { node: n0, fill: true }",
        "reset" => "reset: { to: funded }",
        "snapshot" => "snapshot: { name: funded }",
        "sync" => "sync: { timeout: 30 }",
        "logs" => "logs: { node: n0, tail: 20 }",
        "apply" => "apply: { name: lab, nodes: 5 }",
        _ => "stop: n0",
    }
}

/// A step written as a bare word (or with an empty value): the verb with its defaults, for the words
/// that need no value.
fn bare(kind: &str) -> Option<Action> {
    let verb = match kind {
        "heal" => Verb::Heal {
            sync: false,
            timeout: Some(DEFAULT_TIMEOUT),
        },
        "clear" => Verb::Clear {
            nodes: None,
            shaping: true,
            cuts: true,
        },
        "status" => Verb::Status,
        "down" => Verb::Down,
        "reset" => Verb::Reset {
            to: None,
            timeout: Some(DEFAULT_TIMEOUT),
        },
        "sync" => Verb::Sync {
            timeout: Some(DEFAULT_TIMEOUT),
        },
        _ => return None,
    };
    Some(Action::verb(verb))
}

fn needs_value(kind: &str) -> String {
    let example = example(kind);
    let example = if example.starts_with(kind) {
        example.to_owned()
    } else {
        format!("{kind}: n0")
    };
    format!("step `{kind}` needs a value, like `{example}`")
}

fn unknown_action(word: &str) -> String {
    format!(
        "unknown step `{}`, expected one of {}",
        shown(word),
        backticked(ACTIONS)
    )
}

pub(super) fn known_ids(sends: &HashMap<String, Pos>) -> String {
    let mut ids: Vec<(&String, &Pos)> = sends.iter().collect();
    if ids.is_empty() {
        return " (no `send` before this step has an `id`)".to_owned();
    }
    ids.sort_by_key(|(_, at)| (at.line, at.column));
    let ids: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
    format!(" (known ids: {})", backticked(&ids))
}

/// `dir/split-and-heal.scenario.yaml` → `split-and-heal`; anything that is not
/// a YAML file name (such as `inline`) gives `scenario`.
fn default_name(origin: &str) -> String {
    let file = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
    let stem = [".scenario.yaml", ".scenario.yml", ".yaml", ".yml"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext));
    match stem {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "scenario".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::chain::propagation::Kind as Propagation;
    use crate::core::chain::wait::WaitFor;
    use crate::core::cluster::manifest::{self, ClusterSpec};
    use crate::core::partition::{CutMode, PartitionKind, Via};
    use crate::core::scenario::model::{Check, DEFAULT_ROUNDS};
    use crate::core::scenario::{validate, DEFAULT_SCENARIO};
    use serde_json::Value as Json;

    fn ok(source: &str) -> Scenario {
        parse(source, "test.scenario.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(source: &str) -> SourceError {
        match parse(source, "test.scenario.yaml") {
            Ok(s) => panic!("expected an error, parsed {s:?}"),
            Err(e) => e,
        }
    }

    fn inline(s: &Scenario) -> &ClusterSpec {
        match &s.cluster {
            ClusterSource::Inline(spec) => spec,
            other => panic!("expected an inline cluster, found {other:?}"),
        }
    }

    /// Steps after a 4-node ring cluster, so that steps start on line 3.
    fn steps(body: &str) -> String {
        format!("cluster: {{name: lab, nodes: 4}}\nsteps:\n{body}")
    }

    fn actions(s: &Scenario) -> Vec<&Action> {
        s.steps.iter().map(|s| &s.action).collect()
    }

    fn labels(s: &Scenario) -> Vec<&str> {
        s.steps.iter().map(|s| s.label.as_str()).collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    macro_rules! assert_error {
        ($name:literal, $source:expr) => {{
            let source: &str = &$source;
            let message = err(source).to_string();
            insta::with_settings!({ description => source, omit_expression => true }, {
                insta::assert_snapshot!($name, message);
            });
        }};
    }

    const EXAMPLES: &[(&str, &str)] = &[
        (
            "split-and-heal.scenario.yaml",
            include_str!("../../../manifests/split-and-heal.scenario.yaml"),
        ),
        (
            "silent-partition.scenario.yaml",
            include_str!("../../../manifests/silent-partition.scenario.yaml"),
        ),
        (
            "faults.scenario.yaml",
            include_str!("../../../manifests/faults.scenario.yaml"),
        ),
        (
            "wallet-relay.scenario.yaml",
            include_str!("../../../manifests/wallet-relay.scenario.yaml"),
        ),
        (
            "isolate.scenario.yaml",
            include_str!("../../../manifests/isolate.scenario.yaml"),
        ),
        (
            "ring4-rewire.scenario.yaml",
            include_str!("../../../manifests/ring4-rewire.scenario.yaml"),
        ),
        (
            "propagation.scenario.yaml",
            include_str!("../../../manifests/propagation.scenario.yaml"),
        ),
        (
            "latency-forks.scenario.yaml",
            include_str!("../../../manifests/latency-forks.scenario.yaml"),
        ),
        (
            "every-verb.scenario.yaml",
            include_str!("../../../manifests/every-verb.scenario.yaml"),
        ),
    ];

    #[test]
    fn every_example_parses_and_validates_against_its_cluster() {
        for (file, source) in EXAMPLES {
            let s = parse(source, file).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(format!("{}.scenario.yaml", s.name), *file);
            let spec = match &s.cluster {
                ClusterSource::Inline(spec) => spec.clone(),
                ClusterSource::File { path, .. } => {
                    assert_eq!(path, "ring4.yaml");
                    manifest::parse(include_str!("../../../manifests/ring4.yaml"), path).unwrap()
                }
            };
            validate(&s, &spec, file).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn example_plans() {
        // One snapshot of every example's step labels and positions: a readable
        // record of what each file asks for.
        let mut plan = String::new();
        for (file, source) in EXAMPLES {
            let s = parse(source, file).unwrap();
            plan += &format!("{file} ({})\n", s.name);
            for step in &s.steps {
                plan += &format!("  {}:{} {}\n", step.line, step.column, step.label);
            }
        }
        insta::assert_snapshot!("example_plans", plan);
    }

    #[test]
    fn default_scenario_is_split_and_heal() {
        let s = parse(DEFAULT_SCENARIO, "split-and-heal.scenario.yaml").unwrap();
        let spec = inline(&s);
        assert_eq!(spec.nodes.len(), 4);
        assert_eq!(spec.graph(), ClusterSpec::default_ring4().graph());
        assert_eq!(
            s.steps[2].action,
            Action::verb(Verb::Partition {
                kind: PartitionKind::Halves,
                mode: CutMode::Drop,
                via: Via::Segments,
                reset: false,
                timeout: None,
            })
        );
        assert_eq!(s.steps[2].label, "split the ring");
        assert_eq!(
            s.steps[6].action,
            Action::verb(Verb::Heal {
                sync: false,
                timeout: Some(DEFAULT_TIMEOUT)
            })
        );
        assert_eq!(
            s.steps.last().unwrap().action,
            Action::Assert(Check::Height {
                node: None,
                height: 106
            })
        );
    }

    #[test]
    fn wallet_example_sends_exact_satoshis() {
        let s = parse(EXAMPLES[3].1, EXAMPLES[3].0).unwrap();
        assert_eq!(
            s.steps[2].action,
            Action::Do {
                verb: Verb::Send {
                    from: "alice".into(),
                    to: "bob".into(),
                    amount_sat: 150_000_000,
                },
                then: Then::Name("pay-bob".into())
            }
        );
        assert_eq!(s.steps[2].label, "send 1.5 BTC alice -> bob as pay-bob");
        let wallets: Vec<bool> = inline(&s).nodes.iter().map(|n| n.wallet).collect();
        assert_eq!(wallets, [true, false, true]);
    }

    #[test]
    fn bare_heal_equals_the_empty_forms() {
        let s = ok(&steps(
            "  - heal\n  - heal:\n  - heal: {}\n  - name: mend\n    heal:\n",
        ));
        let plain = Action::verb(Verb::Heal {
            sync: false,
            timeout: Some(DEFAULT_TIMEOUT),
        });
        assert_eq!(actions(&s), [&plain; 4]);
        assert_eq!(labels(&s), ["heal", "heal", "heal", "mend"]);
        let s = ok(&steps("  - heal: {sync: true, timeout: 2.5}\n"));
        assert_eq!(
            s.steps[0].action,
            Action::verb(Verb::Heal {
                sync: true,
                timeout: Some(Duration::from_millis(2500))
            })
        );
    }

    #[test]
    fn named_steps_in_block_and_flow_style() {
        let s = ok(&steps(
            "  - name: grow the chain\n    mine: {node: n0, blocks: 3}\n  - {mine: {node: 1, blocks: 1}, name: \"one more (n1)\"}\n  - mine: {node: n2, blocks: 2}\n",
        ));
        assert_eq!(labels(&s), ["grow the chain", "one more (n1)", "mine n2 2"]);
        // A step is located at its action key, not at `name`.
        assert_eq!((s.steps[0].line, s.steps[0].column), (4, 5));
        assert_eq!((s.steps[1].line, s.steps[1].column), (5, 6));
        assert_eq!(
            s.steps[1].action,
            Action::verb(Verb::Mine {
                node: "1".into(),
                blocks: 1
            })
        );
    }

    #[test]
    fn tip_of_text_form_equals_mapping_form() {
        let s = ok(&steps(
            "  - assert: \"tip_of n0 == tip_of n2\"\n  - assert: '  tip_of n0   ==  tip_of 2 '\n  - assert: {tip_of: n0, equals: n2}\n",
        ));
        let check = |b: &str| {
            Action::Assert(Check::TipOf {
                a: "n0".into(),
                b: b.into(),
            })
        };
        assert_eq!(actions(&s), [&check("n2"), &check("2"), &check("n2")]);
        assert_eq!(s.steps[0].label, "assert tip_of n0 == tip_of n2");
    }

    #[test]
    fn every_action_form() {
        let s = ok(&steps(concat!(
            "  - send: {from: n0, to: n1, amount: 2}\n",
            "  - connect: [n0, 2]\n",
            "  - disconnect: [n0, n1]\n",
            "  - partition: {groups: [[n0], [n1, n2, n3]], mode: silent}\n",
            "  - partition: {kind: random-halves, seed: 42}\n",
            "  - partition: {kind: random-halves}\n",
            "  - partition: {kind: isolate, node: n3}\n",
            "  - partition: {kind: bridge}\n",
            "  - partition: {kind: majorities-ring, mode: drop}\n",
            "  - stop: n0\n  - start: 0\n  - restart: n1\n  - kill: n1\n  - pause: n2\n  - unpause: n2\n",
            "  - wait: {sync_blocks: [n0, n1]}\n",
            "  - wait: {sync_mempools: true, timeout: 5}\n",
            "  - wait: {height: 7}\n",
            "  - wait: {height: 7, node: n2}\n",
            "  - wait: {peers: 0, node: n3}\n",
            "  - assert: {same_tip: true}\n",
            "  - assert: {same_tip: [n0, n1]}\n",
            "  - assert: {different_tips: [n0, n1, n2]}\n",
            "  - assert: {height: 3, node: n1}\n",
            "  - assert: {mempool_has: {node: n1}}\n",
            "  - rpc: {node: n0, method: getblockhash, params: [0, {verbose: true}, null, 1.5, [x]], expect: {a: [1]}}\n",
            "  - rpc: {node: n0, method: getbestblockhash, expect: null}\n",
            "  - rpc: {node: n0, method: ping}\n",
            "  - sleep: 0.25\n",
        )));
        insta::assert_snapshot!("every_action_form_labels", labels(&s).join("\n"));
        let a = actions(&s);
        assert_eq!(
            a[3],
            &Action::verb(Verb::Partition {
                kind: PartitionKind::Groups(vec![strings(&["n0"]), strings(&["n1", "n2", "n3"])]),
                mode: CutMode::Silent,
                via: Via::Segments,
                reset: false,
                timeout: None,
            })
        );
        assert_eq!(
            a[5],
            &Action::verb(Verb::Partition {
                kind: PartitionKind::RandomHalves { seed: 0 },
                mode: CutMode::Drop,
                via: Via::Segments,
                reset: false,
                timeout: None,
            })
        );
        assert_eq!(
            a[16],
            &Action::verb(Verb::Wait {
                until: WaitFor::SyncMempools(None),
                timeout: Some(Duration::from_secs(5))
            })
        );
        assert_eq!(
            a[25],
            &Action::Do {
                verb: Verb::Rpc {
                    node: "n0".into(),
                    method: "getblockhash".into(),
                    params: vec![
                        serde_json::json!(0),
                        serde_json::json!({"verbose": true}),
                        Json::Null,
                        serde_json::json!(1.5),
                        serde_json::json!(["x"]),
                    ],
                    timeout: None,
                },
                then: Then::Equals(serde_json::json!({"a": [1]})),
            }
        );
        // `expect: null` expects a null result; no `expect` checks nothing.
        assert!(matches!(
            a[26],
            Action::Do {
                then: Then::Equals(Json::Null),
                ..
            }
        ));
        assert!(
            matches!(a[27], Action::Do { verb: Verb::Rpc { params, .. }, then: Then::Pass } if params.is_empty())
        );
        assert_eq!(a[28], &Action::Sleep(Duration::from_millis(250)));
        let spec = ClusterSpec {
            nodes: inline(&s)
                .nodes
                .iter()
                .map(|n| manifest::NodeSpec {
                    wallet: true,
                    ..n.clone()
                })
                .collect(),
            ..inline(&s).clone()
        };
        validate(&s, &spec, "test").unwrap();
    }

    #[test]
    fn measure_steps() {
        let s = ok(&steps(concat!(
            "  - measure: {propagation: block, within: 2}\n",
            "  - measure: {propagation: tx, from: n3, rounds: 3, quantile: 1, within: 0.5, timeout: 90}\n",
            "  - name: fast blocks\n    measure: {propagation: block, from: 1, blocks: 2, quantile: 0.5, within: 1.5}\n",
        )));
        assert_eq!(
            actions(&s),
            [
                &Action::Do {
                    verb: Verb::Measure {
                        kind: Propagation::Block,
                        from: None,
                        rounds: DEFAULT_ROUNDS,
                        timeout: Some(DEFAULT_TIMEOUT),
                    },
                    then: Then::Within {
                        quantile: 0.95,
                        within: Duration::from_secs(2)
                    },
                },
                &Action::Do {
                    verb: Verb::Measure {
                        kind: Propagation::Tx,
                        from: Some("n3".into()),
                        rounds: 3,
                        timeout: Some(Duration::from_secs(90)),
                    },
                    then: Then::Within {
                        quantile: 1.0,
                        within: Duration::from_millis(500)
                    },
                },
                &Action::Do {
                    verb: Verb::Measure {
                        kind: Propagation::Block,
                        from: Some("1".into()),
                        rounds: 2,
                        timeout: Some(DEFAULT_TIMEOUT),
                    },
                    then: Then::Within {
                        quantile: 0.5,
                        within: Duration::from_millis(1500)
                    },
                },
            ]
        );
        assert_eq!(
            labels(&s),
            [
                "measure block propagation, 5 round(s): 95% within 2s",
                "measure tx propagation from n3, 3 round(s): 100% within 0.5s",
                "fast blocks",
            ]
        );
        validate(&s, inline(&s), "test").unwrap();
    }

    #[test]
    fn measure_errors() {
        let m = |args: &str| steps(&format!("  - measure: {{{args}}}\n"));
        assert_error!("measure_without_propagation", m("within: 2"));
        assert_error!(
            "measure_unknown_propagation",
            m("propagation: blocks, within: 2")
        );
        assert_error!("measure_without_within", m("propagation: block"));
        assert_error!("measure_within_zero", m("propagation: block, within: 0"));
        assert_error!(
            "measure_within_with_unit",
            m("propagation: block, within: 2s")
        );
        assert_error!(
            "measure_quantile_above_one",
            m("propagation: block, quantile: 1.5, within: 2")
        );
        assert_error!(
            "measure_quantile_as_percent",
            m("propagation: block, quantile: 95, within: 2")
        );
        assert_error!(
            "measure_blocks_and_rounds",
            m("propagation: tx, blocks: 2, rounds: 2, within: 2")
        );
        assert_error!(
            "measure_zero_rounds",
            m("propagation: tx, rounds: 0, within: 2")
        );
        assert_error!(
            "measure_unknown_field",
            m("propagation: tx, within: 2, hops: 3")
        );
        assert_error!("measure_needs_value", steps("  - measure\n"));
    }

    #[test]
    fn amounts_are_exact_satoshis() {
        let sat = |amount: &str| match ok(&steps(&format!(
            "  - send: {{from: n0, to: n1, amount: {amount}}}\n"
        )))
        .steps[0]
            .action
        {
            Action::Do {
                verb: Verb::Send { amount_sat, .. },
                ..
            } => amount_sat,
            ref other => panic!("{other:?}"),
        };
        assert_eq!(sat("1"), 100_000_000);
        assert_eq!(sat("0.1"), 10_000_000);
        assert_eq!(sat("0.3"), 30_000_000);
        assert_eq!(sat("1e-8"), 1);
        assert_eq!(sat("0.00000001"), 1);
        assert_eq!(sat("12.34567891"), 1_234_567_891);
        assert_eq!(sat("20999999.99999999"), MAX_SATS - 1);
        assert_eq!(sat("21000000"), MAX_SATS);
    }

    #[test]
    fn mempool_has_refers_to_earlier_sends() {
        let s = ok(&steps(concat!(
            "  - send: {from: n0, to: n1, amount: 1, id: first}\n",
            "  - send: {from: n0, to: n1, amount: 1}\n",
            "  - assert: {mempool_has: {node: n1}}\n",
            "  - assert: {mempool_has: {node: n2, tx: first}}\n",
        )));
        assert_eq!(
            actions(&s)[2..],
            [
                &Action::Assert(Check::MempoolHas {
                    node: "n1".into(),
                    tx: None
                }),
                &Action::Assert(Check::MempoolHas {
                    node: "n2".into(),
                    tx: Some("first".into())
                }),
            ]
        );
    }

    #[test]
    fn cluster_by_path_keeps_its_position() {
        let s = ok("name: x\ncluster:   ring4.yaml\nsteps: [heal]\n");
        assert_eq!(
            s.cluster,
            ClusterSource::File {
                path: "ring4.yaml".into(),
                line: 2,
                column: 12
            }
        );
    }

    #[test]
    fn default_names() {
        let name = |origin: &str| {
            parse("cluster: c.yaml\nsteps: [heal]\n", origin)
                .unwrap()
                .name
        };
        assert_eq!(name("dir/split.scenario.yaml"), "split");
        assert_eq!(name("dir\\odd.yml"), "odd");
        assert_eq!(name("plain.yaml"), "plain");
        assert_eq!(name(".scenario.yaml"), "scenario");
        assert_eq!(name("inline"), "scenario");
        assert_eq!(name("<default>"), "scenario");
    }

    // Each parse error, snapshotted with its location.

    #[test]
    fn document_errors() {
        assert_error!("empty_scenario", "");
        assert_error!("scenario_is_list", "- heal\n");
        assert_error!("unknown_top_field", "cluster: a.yaml\nstep: [heal]\n");
        assert_error!("missing_cluster", "steps: [heal]\n");
        assert_error!("missing_steps", "cluster: a.yaml\n");
        assert_error!("steps_empty", "cluster: a.yaml\nsteps: []\n");
        assert_error!("steps_is_mapping", "cluster: a.yaml\nsteps: {heal: {}}\n");
        assert_error!("cluster_is_number", "cluster: 4\nsteps: [heal]\n");
        assert_error!("cluster_is_empty_path", "cluster: ''\nsteps: [heal]\n");
        assert_error!(
            "name_is_empty",
            "name: ''\ncluster: a.yaml\nsteps: [heal]\n"
        );
        assert_error!(
            "name_has_newline",
            "name: \"a\\nb\"\ncluster: a.yaml\nsteps: [heal]\n"
        );
        assert_error!(
            "duplicate_top_key",
            "cluster: a.yaml\nsteps: [heal]\nsteps: [heal]\n"
        );
    }

    #[test]
    fn inline_cluster_errors_point_into_the_scenario() {
        assert_error!(
            "inline_cluster_unknown_topology",
            "name: x\ncluster:\n  name: lab\n  nodes: 4\n  topology: rong\nsteps: [heal]\n"
        );
        assert_error!(
            "inline_cluster_bad_wallet",
            "cluster:\n  name: lab\n  nodes:\n    - {name: a, wallet: 1}\nsteps: [heal]\n"
        );
        assert_error!(
            "inline_cluster_missing_nodes",
            "steps: [heal]\ncluster: {name: lab}\n"
        );
    }

    #[test]
    fn step_shape_errors() {
        assert_error!("unknown_bare_word", steps("  - hael\n"));
        assert_error!("bare_word_needs_value", steps("  - mine\n"));
        assert_error!("null_value_needs_value", steps("  - stop:\n"));
        assert_error!(
            "unknown_action_key",
            steps("  - mint: {node: n0, blocks: 1}\n")
        );
        assert_error!(
            "two_actions",
            steps("  - mine: {node: n0, blocks: 1}\n    heal:\n")
        );
        assert_error!("only_a_name", steps("  - name: nothing\n"));
        assert_error!("step_is_number", steps("  - 5\n"));
        assert_error!("step_key_is_number", steps("  - {1: x}\n"));
        assert_error!("step_name_is_list", steps("  - name: [a]\n    heal:\n"));
        assert_error!(
            "step_name_too_long",
            steps(&format!("  - name: {}\n    heal:\n", "x".repeat(81)))
        );
    }

    /// A step over a limit of every verb that its own fields do not spell (an `rpc` that mines) is
    /// refused as the file is loaded, at the step.
    #[test]
    fn a_step_over_the_limits_of_a_verb_is_refused_at_the_step() {
        let e = err(&steps(
            "  - mine: {node: n0, blocks: 1}\n  - rpc: {node: n0, method: generatetoaddress, params: [100000000, x]}\n",
        ));
        assert_eq!((e.line, e.column), (4, 5), "{e}");
        assert_eq!(
            e.message,
            "`rpc`: its block count 100000000 is over the limit of 10000 blocks per generatetoaddress"
        );
    }

    #[test]
    fn argument_errors() {
        assert_error!(
            "mine_zero_blocks",
            steps("  - mine: {node: n0, blocks: 0}\n")
        );
        assert_error!(
            "mine_too_many_blocks",
            steps("  - mine: {node: n0, blocks: 10001}\n")
        );
        assert_error!("mine_missing_blocks", steps("  - mine: {node: n0}\n"));
        assert_error!(
            "mine_unknown_field",
            steps("  - mine: {node: n0, block: 1}\n")
        );
        assert_error!(
            "mine_node_is_list",
            steps("  - mine: {node: [n0], blocks: 1}\n")
        );
        assert_error!(
            "mine_node_negative",
            steps("  - mine: {node: -1, blocks: 1}\n")
        );
        assert_error!("fault_node_is_mapping", steps("  - stop: {node: n0}\n"));
        assert_error!("connect_one_node", steps("  - connect: [n0]\n"));
        assert_error!("connect_is_string", steps("  - connect: n0 n1\n"));
        assert_error!("connect_to_itself", steps("  - connect: [n0, n0]\n"));
        assert_error!("heal_is_string", steps("  - heal: now\n"));
        assert_error!("heal_sync_is_word", steps("  - heal: {sync: yes}\n"));
        assert_error!("sleep_zero", steps("  - sleep: 0\n"));
        assert_error!("sleep_negative", steps("  - sleep: -1.5\n"));
        assert_error!("sleep_too_long", steps("  - sleep: 3601\n"));
        assert_error!("sleep_is_string", steps("  - sleep: 5s\n"));
    }

    #[test]
    fn send_errors() {
        let send = |args: &str| steps(&format!("  - send: {{from: n0, to: n1, {args}}}\n"));
        assert_error!("send_amount_zero", send("amount: 0"));
        assert_error!("send_amount_negative", send("amount: -0.5"));
        assert_error!("send_amount_too_precise", send("amount: 0.000000001"));
        assert_error!("send_amount_too_large", send("amount: 21000000.00000001"));
        assert_error!("send_amount_is_string", send("amount: \"1.5\""));
        assert_error!(
            "send_missing_amount",
            steps("  - send: {from: n0, to: n1}\n")
        );
        assert_error!("send_bad_id", send("amount: 1, id: 1tx"));
        assert_error!(
            "send_duplicate_id",
            steps(concat!(
                "  - send: {from: n0, to: n1, amount: 1, id: tx}\n",
                "  - send: {from: n0, to: n1, amount: 1, id: tx}\n"
            ))
        );
    }

    #[test]
    fn link_fault_steps_parse() {
        let s = parse(
            &steps(
                "  - netem: {nodes: [n0, n1], to: n2, delay: 2s, jitter: 10ms, distribution: normal, loss: 1%, rate: 1mbit}\n\
                 \x20 - netem: {like: slow, loss: 5%}\n\
                 \x20 - cut: {from: n0, to: [n1, n2], reset: true}\n\
                 \x20 - cut: {between: [[n0, n1], n3]}\n\
                 \x20 - partition: {kind: majorities-ring, via: firewall, mode: reset}\n\
                 \x20 - clear: netem\n\
                 \x20 - clear\n",
            ),
            "t.scenario.yaml",
        )
        .unwrap();
        let labels: Vec<String> = s.steps.iter().map(|s| s.action.to_string()).collect();
        assert_eq!(
            labels,
            [
                "netem n0,n1 to n2: delay 2000ms ± 10ms normal, loss 1%, rate 1mbit",
                "netem all: delay 75ms ± 100ms normal, loss 5%",
                "cut n0 -> n1,n2 (reset)",
                "cut n0,n1 <-> n3 (drop)",
                "partition majorities-ring via firewall reset",
                "clear netem",
                "clear link faults",
            ]
        );
    }

    #[test]
    fn link_fault_step_errors() {
        let one = |step: &str| steps(&format!("  - {step}\n"));
        assert_error!("netem_nothing", one("netem: {nodes: n0}"));
        assert_error!("netem_bad_delay", one("netem: {delay: 100}"));
        assert_error!("netem_bad_loss", one("netem: {loss: 120%}"));
        assert_error!("netem_bad_like", one("netem: {like: sluggish}"));
        assert_error!("netem_unknown_field", one("netem: {latency: 5ms}"));
        assert_error!("cut_neither_form", one("cut: {from: n0}"));
        assert_error!("cut_three_ends", one("cut: {between: [n0, n1, n2]}"));
        assert_error!("clear_unknown", one("clear: rules"));
        assert_error!(
            "reset_without_firewall",
            one("partition: {kind: halves, mode: reset}")
        );
        assert_error!(
            "unknown_via",
            one("partition: {kind: halves, via: iptables}")
        );
    }

    #[test]
    fn partition_errors() {
        let p = |args: &str| steps(&format!("  - partition: {{{args}}}\n"));
        assert_error!("partition_empty", p(""));
        assert_error!(
            "partition_groups_and_kind",
            p("groups: [[n0], [n1]], kind: halves")
        );
        assert_error!("partition_unknown_kind", p("kind: thirds"));
        assert_error!("partition_unknown_mode", p("kind: halves, mode: loud"));
        assert_error!("partition_seed_without_random", p("kind: halves, seed: 3"));
        assert_error!(
            "partition_seed_negative",
            p("kind: random-halves, seed: -3")
        );
        assert_error!(
            "partition_node_without_isolate",
            p("kind: bridge, node: n0")
        );
        assert_error!("partition_isolate_without_node", p("kind: isolate"));
        assert_error!("partition_one_group", p("groups: [[n0, n1]]"));
        assert_error!("partition_empty_group", p("groups: [[n0], []]"));
        assert_error!("partition_group_is_string", p("groups: [[n0], n1]"));
        assert_error!(
            "partition_node_in_two_groups",
            p("groups: [[n0, n1], [n2, n1]]")
        );
        assert_error!(
            "partition_groups_with_seed",
            p("groups: [[n0], [n1]], seed: 1")
        );
    }

    #[test]
    fn wait_errors() {
        let w = |args: &str| steps(&format!("  - wait: {{{args}}}\n"));
        assert_error!("wait_no_condition", w("timeout: 5"));
        assert_error!("wait_two_conditions", w("sync_blocks: true, height: 3"));
        assert_error!("wait_sync_false", w("sync_blocks: false"));
        assert_error!("wait_sync_one_node", w("sync_mempools: [n0]"));
        assert_error!("wait_sync_node_twice", w("sync_blocks: [n0, n1, n0]"));
        assert_error!("wait_sync_with_node", w("sync_blocks: true, node: n0"));
        assert_error!("wait_peers_without_node", w("peers: 2"));
        assert_error!("wait_height_negative", w("height: -1"));
        assert_error!("wait_height_is_float", w("height: 1.5"));
        assert_error!("wait_timeout_zero", w("height: 1, timeout: 0"));
        assert_error!("wait_is_list", steps("  - wait: [sync_blocks]\n"));
    }

    #[test]
    fn assert_errors() {
        let a = |args: &str| steps(&format!("  - assert: {{{args}}}\n"));
        assert_error!("assert_no_check", a("node: n0"));
        assert_error!("assert_two_checks", a("same_tip: true, height: 3"));
        assert_error!("assert_different_tips_one", a("different_tips: [n0]"));
        assert_error!("assert_different_tips_true", a("different_tips: true"));
        assert_error!("assert_tip_of_without_equals", a("tip_of: n0"));
        assert_error!("assert_equals_without_tip_of", a("height: 3, equals: n1"));
        assert_error!("assert_tip_of_itself", a("tip_of: n0, equals: n0"));
        assert_error!("assert_node_with_same_tip", a("same_tip: true, node: n0"));
        assert_error!(
            "assert_text_form_typo",
            steps("  - assert: \"tip_of n0 = tip_of n2\"\n")
        );
        assert_error!(
            "assert_text_form_same",
            steps("  - assert: \"tip_of n0 == tip_of n0\"\n")
        );
        assert_error!(
            "assert_mempool_has_without_send",
            a("mempool_has: {node: n0}")
        );
        assert_error!(
            "assert_mempool_has_unknown_tx",
            steps(concat!(
                "  - send: {from: n0, to: n1, amount: 1, id: a}\n",
                "  - send: {from: n0, to: n1, amount: 1, id: b}\n",
                "  - assert: {mempool_has: {node: n1, tx: c}}\n"
            ))
        );
        assert_error!(
            "assert_mempool_has_tx_after_it",
            steps(concat!(
                "  - assert: {mempool_has: {node: n1, tx: later}}\n",
                "  - send: {from: n0, to: n1, amount: 1, id: later}\n"
            ))
        );
        assert_error!("assert_mempool_has_is_node", a("mempool_has: n0"));
    }

    #[test]
    fn rpc_errors() {
        let r = |args: &str| steps(&format!("  - rpc: {{node: n0, {args}}}\n"));
        assert_error!("rpc_missing_method", steps("  - rpc: {node: n0}\n"));
        assert_error!("rpc_method_with_space", r("method: get info"));
        assert_error!(
            "rpc_params_not_a_list",
            r("method: getblockhash, params: 0")
        );
        assert_error!("rpc_json_key_not_string", r("method: x, params: [{1: a}]"));
    }

    #[test]
    fn resource_budget_matches_manifests() {
        let big = format!(
            "cluster: a.yaml\nsteps: [heal]\n#{}",
            "x".repeat(crate::core::yaml::MAX_SOURCE_BYTES)
        );
        insta::assert_snapshot!("too_large", err(&big).to_string());
        let mut bomb = String::from(
            "cluster: a.yaml\nsteps:\n  - rpc: {node: n0, method: x, params: [*a9]}\n",
        );
        let mut anchors =
            String::from("x:\n  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            anchors += &format!("  - &a{i} [{refs}]\n");
        }
        bomb = anchors + &bomb;
        insta::assert_snapshot!("billion_laughs", err(&bomb).to_string());
        let deep = format!(
            "cluster: a.yaml\nsteps:\n  - rpc: {{node: n0, method: x, expect: {}{}}}\n",
            "[".repeat(100),
            "]".repeat(100)
        );
        insta::assert_snapshot!("too_deep", err(&deep).to_string());
    }
}
