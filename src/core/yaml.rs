//! Located YAML for every user-written file (manifests, scenarios): loading under a size and complexity
//! budget, a tree whose nodes carry their line and column, the shared field readers, and the one error
//! type that points at the text.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{DuplicateKeyPolicy, NonFiniteFloatPolicy, Options, Spanned};

use crate::core::names::{backticked, shown};

/// Checked before parsing so that an oversized file costs nothing.
pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;

/// A real manifest nests at most four levels (`topology.edges[i][j]`), so
/// anything much deeper is hostile and is cut off before it can exhaust the stack.
const MAX_DEPTH: usize = 32;
/// Bounds the tree built from the document. 1 MiB of YAML holds at most a few
/// hundred thousand values; a 1000-node cluster with explicit edges needs far fewer.
pub(crate) const MAX_YAML_NODES: usize = 100_000;
const MAX_ALIASES: usize = 10_000;
/// Alias expansions are what a YAML bomb multiplies. 1000 nodes each merging a
/// `defaults`-sized anchor stay well below this, and a bomb hits it in milliseconds.
const MAX_REPLAYED_EVENTS: usize = 30_000;

/// Every problem in a user-written file, located in the source. `line` and `column` are
/// 1-based; `column` counts characters, not bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct SourceError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn options() -> Options {
    // Options, Budget and AliasLimits are `#[non_exhaustive]`: built with the
    // crate's macros, which start from the defaults and assign the listed fields.
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 2 * MAX_YAML_NODES,
            max_aliases: MAX_ALIASES,
            max_anchors: MAX_ALIASES,
            max_depth: MAX_DEPTH,
            // Not 1: that would report a second document as a budget breach
            // ("too complex"). At 2, serde-saphyr's own single-document check
            // refuses it with a message that says what is wrong.
            max_documents: 2,
            max_nodes: MAX_YAML_NODES,
            max_total_scalar_bytes: 4 * MAX_SOURCE_BYTES,
            max_merge_keys: MAX_ALIASES,
            // The ratio heuristic rejects the legitimate "every node uses one
            // anchor" pattern; MAX_REPLAYED_EVENTS already bounds the expansion.
            enforce_alias_anchor_ratio: false,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_REPLAYED_EVENTS,
            max_replay_stack_depth: MAX_DEPTH,
            max_alias_expansions_per_anchor: MAX_REPLAYED_EVENTS,
        },
        duplicate_keys: DuplicateKeyPolicy::Error,
        // Comments are not used; emitted, each would count against `max_events`,
        // and a file of comments would be reported as too many values.
        emit_comments: false,
        // `.inf`, `.nan` and overflowing literals such as `1e999` are no node
        // count, index or name: read as text (`.inf`), they get the usual
        // "expected X, found string" message, and `-.inf` stays a valid argument.
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
        // YAML 1.1 would read a node called `n`, `y`, `on` or `off` as a boolean.
        strict_booleans: true,
        // Snippets would be rendered only to be thrown away; errors are re-rendered here.
        with_snippet: false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, column: 1 };

    fn from_location(loc: &serde_saphyr::Location) -> Pos {
        // serde-saphyr uses 0:0 for "unknown"; pointing at the start beats pointing nowhere.
        if loc.line() == 0 {
            return Pos::START;
        }
        Pos {
            line: loc.line() as usize,
            column: loc.column().max(1) as usize,
        }
    }
}

/// A YAML node with the place it was used (for an alias: the alias, not the anchor).
#[derive(Debug)]
pub(crate) struct Yaml {
    pub(crate) at: Pos,
    pub(crate) value: Value,
}

#[derive(Debug)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        Ok(Yaml {
            at: Pos::from_location(&spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer is too large"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

/// What a value is, for "expected X, found Y" messages.
pub(crate) fn found(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_owned(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Int(i) => format!("integer `{i}`"),
        Value::Float(f) => format!("number `{f}`"),
        Value::Str(s) => format!("string `{}`", shown(s)),
        Value::Seq(_) => "a list".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
    }
}

/// Mapping entries after checking that every key is a known field.
pub(crate) struct Fields<'y> {
    pub(crate) at: Pos,
    /// Field name, where the key is, value.
    pub(crate) entries: Vec<(&'y str, Pos, &'y Yaml)>,
}

impl<'y> Fields<'y> {
    pub(crate) fn get(&self, name: &str) -> Option<&'y Yaml> {
        self.entries
            .iter()
            .find_map(|(k, _, v)| (*k == name).then_some(*v))
    }

    pub(crate) fn key_at(&self, name: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find_map(|(k, at, _)| (*k == name).then_some(*at))
    }
}

/// Error context: where the document came from and what to call it in
/// messages about the document as a whole ("manifest", "scenario").
pub(crate) struct Cx<'a> {
    origin: &'a str,
    document: &'static str,
    /// Reads a file the document names (a topology file), when the caller can read files.
    read: Option<ReadFile<'a>>,
}

/// Reads a file a document names, as the caller sees fit (the core reads nothing itself): given the
/// path as written, its text or why it cannot be read.
pub type ReadFile<'a> = &'a dyn Fn(&str) -> Result<String, String>;

pub(crate) type Check<T> = Result<T, SourceError>;

impl<'a> Cx<'a> {
    pub(crate) fn new(origin: &'a str, document: &'static str) -> Self {
        Cx {
            origin,
            document,
            read: None,
        }
    }

    /// The same context, able to read the files the document names.
    pub(crate) fn reading(self, read: ReadFile<'a>) -> Self {
        Cx {
            read: Some(read),
            ..self
        }
    }

    /// The reader of named files, if the caller gave one.
    pub(crate) fn reader(&self) -> Option<ReadFile<'a>> {
        self.read
    }

    /// Reads the YAML tree under the shared size and complexity budget.
    pub(crate) fn load(&self, source: &str) -> Check<Yaml> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(self.error(
                Pos::START,
                format!(
                    "{} is {} bytes, more than the limit of {MAX_SOURCE_BYTES} bytes (1 MiB)",
                    self.document,
                    source.len()
                ),
            ));
        }
        serde_saphyr::from_str_with_options(source, options()).map_err(|e| self.yaml_error(&e))
    }

    pub(crate) fn error(&self, at: Pos, message: impl Into<String>) -> SourceError {
        SourceError {
            origin: self.origin.to_owned(),
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }

    fn yaml_error(&self, e: &serde_saphyr::Error) -> SourceError {
        use serde_saphyr::granit_parser::ErrorKind;
        use serde_saphyr::{Error, ExternalMessageSource};
        // For an error met while replaying an alias, `location` is the alias
        // that was being expanded; the wrapped error says what went wrong.
        let at = e.location().map_or(Pos::START, |l| Pos::from_location(&l));
        let mut e = e.without_snippet();
        while let Error::AliasError { error, .. } = e {
            e = error.without_snippet();
        }
        let message = match e {
            Error::Budget { breach, .. } => budget_message(breach, self.document),
            Error::Eof { .. } => "unexpected end of input".to_owned(),
            Error::MultipleDocuments { .. } => {
                "expected a single YAML document, found another one".to_owned()
            }
            Error::DuplicateMappingKey { key: Some(key), .. } => {
                format!("duplicate key `{}`", shown(key))
            }
            Error::DuplicateMappingKey { key: None, .. } => "duplicate key".to_owned(),
            // The scanner must look past a flow collection that may be a key, so its
            // own flow-nesting limit (`Budget::flow_nesting_limit`, 255) can trip
            // before the depth budget sees the events.
            Error::ExternalMessage { source, .. }
                if matches!(&**source, ExternalMessageSource::Parser(scan)
                    if *scan.kind() == ErrorKind::RecursionLimitExceeded) =>
            {
                format!("{} too complex: nested too deeply", self.document)
            }
            Error::AliasReplayLimitExceeded { .. }
            | Error::AliasReplayCounterOverflow { .. }
            | Error::AliasExpansionLimitExceeded { .. }
            | Error::AliasReplayStackDepthExceeded { .. } => {
                format!("{} too complex: {}", self.document, crate_message(e))
            }
            other => crate_message(other),
        };
        self.error(at, message)
    }

    pub(crate) fn fields<'y>(
        &self,
        map: &'y Yaml,
        what: &str,
        allowed: &[&str],
    ) -> Check<Fields<'y>> {
        let Value::Map(entries) = &map.value else {
            return Err(self.error(
                map.at,
                format!("{what} must be a mapping, found {}", found(&map.value)),
            ));
        };
        let mut fields = Fields {
            at: map.at,
            entries: Vec::with_capacity(entries.len()),
        };
        for (key, value) in entries {
            let Value::Str(k) = &key.value else {
                return Err(self.error(
                    key.at,
                    format!(
                        "expected a field name ({}), found {}",
                        backticked(allowed),
                        found(&key.value)
                    ),
                ));
            };
            if !allowed.contains(&k.as_str()) {
                let expected = match allowed {
                    [one] => format!("expected `{one}`"),
                    _ => format!("expected one of {}", backticked(allowed)),
                };
                return Err(self.error(key.at, format!("unknown field `{}`, {expected}", shown(k))));
            }
            fields.entries.push((k.as_str(), key.at, value));
        }
        Ok(fields)
    }

    pub(crate) fn required<'y>(&self, fields: &Fields<'y>, name: &str) -> Check<&'y Yaml> {
        fields
            .get(name)
            .ok_or_else(|| self.error(fields.at, format!("missing field `{name}`")))
    }

    pub(crate) fn string<'y>(&self, v: &'y Yaml, what: &str) -> Check<&'y str> {
        match &v.value {
            Value::Str(s) => Ok(s),
            other @ (Value::Bool(_) | Value::Int(_) | Value::Float(_)) => Err(self.error(
                v.at,
                format!(
                    "{what} must be a string, found {} (quote it to use it as text)",
                    found(other)
                ),
            )),
            other => Err(self.error(
                v.at,
                format!("{what} must be a string, found {}", found(other)),
            )),
        }
    }

    pub(crate) fn boolean(&self, v: &Yaml, what: &str) -> Check<bool> {
        match &v.value {
            Value::Bool(b) => Ok(*b),
            other => Err(self.error(
                v.at,
                format!("{what} must be `true` or `false`, found {}", found(other)),
            )),
        }
    }
}

/// serde-saphyr's own wording, without the " at line L, column C" that
/// `SourceError` already says, kept on one line.
fn crate_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::{DefaultMessageFormatter, MessageFormatter};
    let mut out = String::new();
    for c in DefaultMessageFormatter.format_message(e).chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

fn budget_message(breach: &BudgetBreach, document: &str) -> String {
    let what = match breach {
        BudgetBreach::Depth { .. } => format!("nested deeper than {MAX_DEPTH} levels"),
        BudgetBreach::Aliases { .. } => format!("more than {MAX_ALIASES} aliases"),
        BudgetBreach::Anchors { .. } => format!("more than {MAX_ALIASES} anchors"),
        BudgetBreach::MergeKeys { .. } => format!("more than {MAX_ALIASES} merge keys"),
        BudgetBreach::Events { .. } | BudgetBreach::Nodes { .. } => {
            format!("more than {MAX_YAML_NODES} values after expanding aliases")
        }
        BudgetBreach::ScalarBytes { .. } => format!(
            "more than {} bytes of text after expanding aliases",
            4 * MAX_SOURCE_BYTES
        ),
        BudgetBreach::Documents { .. } => "more than one YAML document".to_owned(),
        // Anchored content is kept for replay once for every anchor around it.
        BudgetBreach::RecordedAnchorEvents { .. } => {
            "too many values inside nested anchors".to_owned()
        }
        BudgetBreach::RecordedAnchorBytes { .. } => {
            "too much text inside nested anchors".to_owned()
        }
        other => format!("{other:?}"),
    };
    format!("{document} too complex: {what}")
}
