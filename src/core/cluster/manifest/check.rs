//! The rules a manifest's values must meet — cluster and node names, image references, Docker URLs,
//! sizes, the arguments regbox sets itself (the whole policy on arguments is `args`) — and the `hosts:`
//! section with placement.

use std::collections::{BTreeMap, HashMap};

use crate::core::cluster::placement::{self, HostSpec, PlaceError, Strategy};
use crate::core::names::shown;
use crate::core::yaml::{found, Check, Cx, Fields, Pos, Value, Yaml};

use super::*;

/// What a cluster name may be, worded for errors.
pub(super) const CLUSTER_NAME_RULE: &str =
    "1 to 40 lower-case letters, digits or `-`, not starting with `-`";

/// `512m`, `2g`, `1.5g`, `65536k`, `300000000` (bytes); k, m, g (also `kb`, `mib`, …) are powers of 1024
/// as in `docker run --memory`.
pub(crate) fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let bytes = value * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

pub(super) fn is_image_reference(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `[a-z][a-z0-9-]{0,30}`
pub(super) fn is_host_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=31).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `unix:///PATH` (an absolute path) or `tcp://HOST:PORT`, without spaces.
pub(super) fn is_docker_url(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some(path) = s.strip_prefix("unix://") {
        return path.len() > 1 && path.starts_with('/');
    }
    let Some(rest) = s.strip_prefix("tcp://") else {
        return false;
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
}

pub(super) fn is_cluster_name(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=40).contains(&b.len()) && ok(&b[0]) && b[1..].iter().all(|c| ok(c) || *c == b'-')
}

pub(crate) fn is_node_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The reserved option an argument sets, as bitcoind sees it: `--regtest.nolisten=1` sets `listen`.
#[cfg(test)]
pub(super) fn reserved_option(arg: &str) -> Option<&'static str> {
    let name = super::args::read(arg).name;
    RESERVED_OPTIONS.iter().copied().find(|r| *r == name)
}

/// The `hosts:` section, on the shared reader.
impl Cx<'_> {
    /// `hosts:`, a non-empty list of `{name, docker, address?, labels?, capacity?}`.
    pub(super) fn hosts(&self, v: &Yaml) -> Check<Vec<HostSpec>> {
        let Value::Seq(items) = &v.value else {
            return Err(self.error(
                v.at,
                format!(
                    "`hosts` must be a list like `[{{name: h1, docker: unix:///run/h1/docker.sock}}]`, found {}",
                    found(&v.value)
                ),
            ));
        };
        if items.is_empty() {
            return Err(self.error(
                v.at,
                "`hosts` lists no host, expected at least one (without `hosts` the cluster runs on one engine)",
            ));
        }
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        let mut hosts = Vec::with_capacity(items.len());
        for item in items {
            let fields = self.fields(item, "a host", HOST_FIELDS)?;
            let name_value = self.required(&fields, "name")?;
            let name = self.string(name_value, "a host name")?;
            if !is_host_name(name) {
                return Err(self.error(
                    name_value.at,
                    format!(
                        "invalid host name `{}`, expected a lower-case letter followed by up to 30 lower-case letters, digits or `-`",
                        shown(name)
                    ),
                ));
            }
            if let Some(first) = seen.insert(name, name_value.at) {
                return Err(self.error(
                    name_value.at,
                    format!(
                        "duplicate host name `{name}` (first declared at line {})",
                        first.line
                    ),
                ));
            }
            let (docker, address, labels, capacity) = self.host_fields(&fields)?;
            hosts.push(HostSpec {
                name: name.to_owned(),
                docker,
                address,
                labels,
                capacity,
            });
        }
        Ok(hosts)
    }

    /// A host's engine URL, address, labels and capacity.
    #[allow(clippy::type_complexity)]
    fn host_fields(
        &self,
        fields: &Fields,
    ) -> Check<(
        String,
        Option<std::net::Ipv4Addr>,
        BTreeMap<String, String>,
        Option<usize>,
    )> {
        let docker_value = self.required(fields, "docker")?;
        let docker = match &docker_value.value {
            Value::Str(d) if is_docker_url(d) => d.clone(),
            other => {
                return Err(self.error(
                    docker_value.at,
                    format!(
                        "`docker` must be a unix:// or tcp:// URL (`unix:///PATH` or `tcp://HOST:PORT`), found {}",
                        found(other)
                    ),
                ))
            }
        };
        let address = match fields.get("address") {
            Some(a) => Some(
                match &a.value {
                    Value::Str(s) => s.parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    self.error(
                        a.at,
                        format!(
                            "`address` must be an IPv4 address such as `10.99.0.11`, found {}",
                            found(&a.value)
                        ),
                    )
                })?,
            ),
            None => None,
        };
        let labels = match fields.get("labels") {
            Some(l) => self.labels(l)?,
            None => BTreeMap::new(),
        };
        let capacity = match fields.get("capacity") {
            Some(c) => Some(
                match &c.value {
                    Value::Int(n) => usize::try_from(*n).ok().filter(|&n| n > 0),
                    _ => None,
                }
                .ok_or_else(|| {
                    self.error(
                        c.at,
                        format!(
                            "`capacity` must be a positive whole number of nodes, found {}",
                            found(&c.value)
                        ),
                    )
                })?,
            ),
            None => None,
        };
        Ok((docker, address, labels, capacity))
    }

    /// A host's `labels: {zone: a}`: names and values are strings.
    pub(super) fn labels(&self, v: &Yaml) -> Check<BTreeMap<String, String>> {
        let Value::Map(entries) = &v.value else {
            return Err(self.error(
                v.at,
                format!(
                    "`labels` must be a mapping of strings like `{{zone: a}}`, found {}",
                    found(&v.value)
                ),
            ));
        };
        let mut labels = BTreeMap::new();
        for (key, value) in entries {
            let k = self.string(key, "a label name")?;
            if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.error(
                    key.at,
                    format!(
                        "invalid label name `{}`, expected text without spaces",
                        shown(k)
                    ),
                ));
            }
            let text = self.string(value, "a label value")?;
            labels.insert(k.to_owned(), text.to_owned());
        }
        Ok(labels)
    }

    /// `placement: spread | binpack`, which only means something with `hosts`.
    pub(super) fn placement(&self, v: &Yaml, key: Pos, hosts: &[HostSpec]) -> Check<Strategy> {
        if hosts.is_empty() {
            return Err(self.error(key, "`placement` needs `hosts` at the top of the manifest"));
        }
        match &v.value {
            Value::Str(s) => Strategy::from_name(s),
            _ => None,
        }
        .ok_or_else(|| {
            self.error(
                v.at,
                format!(
                    "`placement` must be spread or binpack, found {}",
                    found(&v.value)
                ),
            )
        })
    }

    /// `encrypt: auto | on | off`, which only means something with `hosts` (overlays).
    pub(super) fn encrypt(&self, v: &Yaml, key: Pos, hosts: &[HostSpec]) -> Check<Encrypt> {
        if hosts.is_empty() {
            return Err(self.error(
                key,
                "`encrypt` needs `hosts` at the top of the manifest (one engine's bridges carry \
                 nothing between machines)",
            ));
        }
        match &v.value {
            Value::Str(s) => Encrypt::from_name(s),
            _ => None,
        }
        .ok_or_else(|| {
            self.error(
                v.at,
                format!(
                    "`encrypt` must be auto, on or off, found {}",
                    found(&v.value)
                ),
            )
        })
    }

    /// A node's `host:` pin: one of the declared hosts.
    pub(super) fn node_host(&self, v: &Yaml, key: Pos, hosts: &[HostSpec]) -> Check<String> {
        if hosts.is_empty() {
            return Err(self.error(key, "`host` needs `hosts` at the top of the manifest"));
        }
        let name = self.string(v, "`host`")?;
        if !hosts.iter().any(|h| h.name == name) {
            let known: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            return Err(self.error(
                v.at,
                format!(
                    "unknown host `{}` (hosts: {})",
                    shown(name),
                    known.join(", ")
                ),
            ));
        }
        Ok(name.to_owned())
    }

    /// Gives every node its host: pinned ones keep theirs, the others are placed by `strategy`.
    pub(super) fn place(
        &self,
        top: &Fields,
        hosts: &[HostSpec],
        strategy: Strategy,
        nodes: &mut [NodeSpec],
    ) -> Check<()> {
        let index = |name: &str| hosts.iter().position(|h| h.name == name);
        let pinned: Vec<Option<usize>> = nodes
            .iter()
            .map(|n| n.host.as_deref().and_then(index))
            .collect();
        let e = match placement::place(hosts, &pinned, strategy) {
            Ok(placed) => {
                for (node, h) in nodes.iter_mut().zip(placed) {
                    node.host = Some(hosts[h].name.clone());
                }
                return Ok(());
            }
            Err(e) => e,
        };
        let (at, message) = match &e {
            PlaceError::PinnedOverCapacity { host, capacity, .. } => {
                // At the first pin the host has no room for.
                let items = match top.get("nodes").map(|v| &v.value) {
                    Some(Value::Seq(items)) => items.as_slice(),
                    _ => &[],
                };
                let at = items
                    .iter()
                    .filter_map(|item| self.fields(item, "a node", NODE_FIELDS).ok()?.get("host"))
                    .filter(|h| matches!(&h.value, Value::Str(s) if s == host))
                    .nth(*capacity)
                    .map_or(top.at, |h| h.at);
                (at, e.to_string())
            }
            PlaceError::TooSmall {
                hosts: names,
                capacity,
                nodes: n,
            } => {
                let at = top
                    .get("nodes")
                    .or_else(|| top.get("topology"))
                    .map_or(top.at, |v| v.at);
                let which = match names.as_slice() {
                    [one] => format!("host {one} takes"),
                    _ => format!("hosts {} take", names.join(", ")),
                };
                (
                    at,
                    format!(
                        "{which} {} at most (capacity), the manifest declares {n}",
                        placement::nodes(*capacity)
                    ),
                )
            }
            // Not met: the hosts are not empty and every pin names one of them.
            PlaceError::NoHosts { .. } | PlaceError::UnknownHost { .. } => (top.at, e.to_string()),
        };
        Err(self.error(at, message))
    }
}
