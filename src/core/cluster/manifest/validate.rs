//! Checking a spec that did not come from a manifest (one read back from a cluster's Docker labels): it is
//! written out as the manifest that declares it and read by the manifest's own reader, so every rule on
//! names, node counts, images, arguments, resources, hosts and edges applies as it is; the link shaping,
//! which that manifest cannot spell one to one, is checked against the same bounds.

use crate::core::names::shown;
use crate::core::yaml::{Cx, Pos, Value, Yaml};

use super::*;

impl ClusterSpec {
    /// Checks the spec by the rules a manifest is checked by: Ok when `regbox up` could have made it
    /// from a manifest, else what is wrong (worded as the manifest's errors, without a position).
    pub fn validate(&self) -> Result<(), String> {
        let manifest = self.as_manifest();
        let cx = Cx::new("the recorded spec", "manifest");
        // An argument the policy lets through with a warning was warned about when the cluster was
        // made; reading the spec back must not say it again on every command.
        let read =
            tracing::dispatcher::with_default(&tracing::Dispatch::none(), || cx.cluster(&manifest))
                .map_err(|e| e.message)?;
        // What the reader decides itself (a node's host, its resources) must be what was recorded.
        for (node, read) in self.nodes.iter().zip(&read.nodes) {
            if node.host != read.host {
                return Err(format!(
                    "node `{}` is on host {}, expected {}",
                    shown(&node.name),
                    host_shown(node.host.as_deref()),
                    host_shown(read.host.as_deref())
                ));
            }
            if node.resources != read.resources {
                return Err(format!(
                    "node `{}` has resources {:?} no manifest gives",
                    shown(&node.name),
                    node.resources
                ));
            }
        }
        self.check_links()
    }

    /// The manifest that declares this spec: every node listed with all its fields, no defaults, the
    /// edges by index.
    fn as_manifest(&self) -> Yaml {
        let mut top = vec![("name", text(&self.name))];
        if !self.hosts.is_empty() {
            top.push(("hosts", seq(self.hosts.iter().map(host))));
        }
        if !self.encrypt.is_auto() {
            top.push(("encrypt", text(self.encrypt.name())));
        }
        top.push(("defaults", map(vec![("args", seq(Vec::new()))])));
        top.push(("nodes", seq(self.nodes.iter().map(node))));
        let edges = self.edges.iter().map(|e| {
            seq([e.from, e.to]
                .into_iter()
                .map(|i| at(Value::Int(i as i128))))
        });
        top.push(("topology", map(vec![("edges", seq(edges))])));
        map(top)
    }

    /// The link shaping: by nodes that exist, towards other nodes that exist, within the bounds a
    /// manifest's `link:` and `links:` are held to; no cuts (a manifest declares none).
    fn check_links(&self) -> Result<(), String> {
        let n = self.nodes.len();
        for (&node, faults) in &self.links {
            let name = self
                .nodes
                .get(node)
                .map(|s| s.name.as_str())
                .ok_or_else(|| {
                    format!("link shaping of node index {node}, which does not exist ({n} nodes)")
                })?;
            if !faults.cuts.is_empty() {
                return Err(format!(
                    "node `{}` has cuts among its declared links; a manifest declares none",
                    shown(name)
                ));
            }
            for (&peer, shaping) in &faults.links {
                if peer >= n || peer == node {
                    return Err(format!(
                        "link shaping of node `{}` towards node index {peer}, which is not another node",
                        shown(name)
                    ));
                }
                if let Some(why) = shaping.invalid() {
                    return Err(format!("link of node `{}`: {why}", shown(name)));
                }
            }
            if let Some(why) = faults.shaping.as_ref().and_then(|s| s.invalid()) {
                return Err(format!("link of node `{}`: {why}", shown(name)));
            }
        }
        Ok(())
    }
}

fn host_shown(host: Option<&str>) -> String {
    host.map_or_else(|| "none".to_string(), |h| format!("`{}`", shown(h)))
}

fn node(node: &NodeSpec) -> Yaml {
    let mut resources = vec![("memory", at(Value::Int(node.resources.memory.into())))];
    if let Some(nano) = node.resources.nano_cpus {
        resources.push(("cpus", at(Value::Float(nano as f64 / 1e9))));
    }
    let mut fields = vec![
        ("name", text(&node.name)),
        ("image", text(&node.image)),
        ("args", seq(node.args.iter().map(|a| text(a)))),
        ("wallet", at(Value::Bool(node.wallet))),
        ("resources", map(resources)),
    ];
    if let Some(h) = &node.host {
        fields.push(("host", text(h)));
    }
    map(fields)
}

fn host(host: &crate::core::cluster::placement::HostSpec) -> Yaml {
    let mut fields = vec![("name", text(&host.name)), ("docker", text(&host.docker))];
    if let Some(a) = host.address {
        fields.push(("address", text(&a.to_string())));
    }
    if !host.labels.is_empty() {
        let labels = host
            .labels
            .iter()
            .map(|(k, v)| (text(k), text(v)))
            .collect();
        fields.push(("labels", at(Value::Map(labels))));
    }
    if let Some(c) = host.capacity {
        fields.push(("capacity", at(Value::Int(c as i128))));
    }
    map(fields)
}

fn at(value: Value) -> Yaml {
    Yaml {
        at: Pos::START,
        value,
    }
}

fn text(s: &str) -> Yaml {
    at(Value::Str(s.to_owned()))
}

fn seq(items: impl IntoIterator<Item = Yaml>) -> Yaml {
    at(Value::Seq(items.into_iter().collect()))
}

fn map(fields: Vec<(&str, Yaml)>) -> Yaml {
    at(Value::Map(
        fields.into_iter().map(|(k, v)| (text(k), v)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::faults::link::Shaping;
    use crate::core::faults::plane::NodeFaults;

    fn spec(source: &str) -> ClusterSpec {
        parse(source, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every manifest the project ships, and some with every kind of field, give specs that pass.
    #[test]
    fn what_a_manifest_gives_passes() {
        let mut checked = 0;
        for dir in ["manifests", "examples"] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = path.display().to_string();
                if !(name.ends_with(".yaml") || name.ends_with(".yml"))
                    || name.contains(".scenario.")
                {
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap();
                let base = path.parent().unwrap().to_path_buf();
                let read =
                    move |p: &str| std::fs::read_to_string(base.join(p)).map_err(|e| e.to_string());
                let Ok(spec) = parse_reading(&source, &name, &read) else {
                    continue;
                };
                spec.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
                checked += 1;
            }
        }
        assert!(checked > 0, "no manifest found");
        for source in [
            "name: lab\nnodes: 1\n",
            "name: lab\nnodes: 1000\ntopology: mesh\n",
            "name: lab\ndefaults: {args: [-debug=net], resources: {memory: 64m, cpus: 0.37}, wallet: true}\n\
             nodes: [{name: a, image: 'x:1', args: [-txindex]}, {name: b.c_d-e}]\n\
             topology: {edges: [[a, b.c_d-e]]}\n\
             links: [{between: [a, b.c_d-e], delay: 75ms, jitter: 10ms, loss: 1%}]\n",
            "name: lab\nnodes: [{name: a, link: {like: slow}}, {name: b}, {name: c}]\ntopology: line\n\
             links: [{from: a, to: [b, c], rate: 1mbit}]\n",
            "name: lab\nhosts: [{name: h1, docker: 'unix:///var/run/docker.sock', capacity: 2}, \
             {name: h2, docker: 'tcp://10.0.0.2:2375', address: 10.0.0.2, labels: {zone: b}}]\n\
             placement: binpack\nnodes: [{name: a, host: h2}, {name: b}, {name: c}]\n",
        ] {
            let s = spec(source);
            s.validate().unwrap_or_else(|e| panic!("{source}: {e}"));
        }
        // What `up` may change after parsing: the image and the name, each checked as a manifest's.
        let mut s = spec("name: lab\nnodes: 2\n");
        s.with_image("sha256:0123abcd").unwrap();
        s.rename("other-name").unwrap();
        s.validate().unwrap();
    }

    fn refused(change: impl FnOnce(&mut ClusterSpec)) -> String {
        let mut s = spec(
            "name: lab\nhosts: [{name: h1, docker: 'unix:///var/run/docker.sock'}]\nnodes: 3\n\
             links: [{between: [n0, n1], delay: 10ms}]\n",
        );
        s.validate().unwrap();
        change(&mut s);
        s.validate().expect_err("refused")
    }

    #[test]
    fn what_no_manifest_gives_is_refused() {
        let m = refused(|s| s.nodes[1].args.push("-blocknotify=touch /tmp/x".into()));
        assert!(m.contains("-blocknotify"), "{m}");
        let m = refused(|s| s.nodes[0].args.push("-rpcbind=0.0.0.0".into()));
        assert!(m.contains("is set by regbox"), "{m}");
        let m = refused(|s| s.nodes[0].args.push("debug".into()));
        assert!(m.contains("must start with `-`"), "{m}");
        let m = refused(|s| s.nodes[2].name = "../etc".into());
        assert!(m.starts_with("invalid node name `../etc`"), "{m}");
        let m = refused(|s| s.nodes[2].name = "n0".into());
        assert!(m.starts_with("duplicate node name `n0`"), "{m}");
        let m = refused(|s| s.name = "a/b".into());
        assert!(m.starts_with("invalid cluster name `a/b`"), "{m}");
        let m = refused(|s| {
            let node = s.nodes[0].clone();
            s.nodes.resize(MAX_NODES + 1, node);
        });
        assert_eq!(
            m,
            format!(
                "nodes must be between 1 and {MAX_NODES}, got {}",
                MAX_NODES + 1
            )
        );
        let m = refused(|s| s.nodes.clear());
        assert!(m.starts_with("nodes must be between 1 and"), "{m}");
        let m = refused(|s| s.nodes[0].image = "bad image".into());
        assert!(m.starts_with("invalid image `bad image`"), "{m}");
        let m = refused(|s| s.nodes[0].resources.memory = 1);
        assert!(m.starts_with("invalid memory"), "{m}");
        let m = refused(|s| s.nodes[0].resources.nano_cpus = Some(1));
        assert!(m.starts_with("invalid cpus"), "{m}");
        let m = refused(|s| s.hosts[0].docker = "http://evil".into());
        assert!(
            m.contains("`docker` must be a unix:// or tcp:// URL"),
            "{m}"
        );
        let m = refused(|s| s.nodes[0].host = Some("h9".into()));
        assert!(m.contains("h9"), "{m}");
        let m = refused(|s| s.nodes[0].host = None);
        assert_eq!(m, "node `n0` is on host none, expected `h1`");
        let m = refused(|s| s.edges.push(crate::core::topology::Edge::new(0, 7)));
        assert!(m.starts_with("edge refers to unknown node index 7"), "{m}");
        let m = refused(|s| s.edges.push(crate::core::topology::Edge::new(1, 1)));
        assert!(m.starts_with("self-loop"), "{m}");
        let m = refused(|s| s.edges.push(s.edges[0]));
        assert!(m.starts_with("duplicate edge"), "{m}");
        let m = refused(|s| {
            s.links.insert(9, NodeFaults::default());
        });
        assert_eq!(
            m,
            "link shaping of node index 9, which does not exist (3 nodes)"
        );
        let m = refused(|s| {
            let bad = Shaping {
                loss: 7.0,
                ..Shaping::default()
            };
            s.links.get_mut(&0).unwrap().links.insert(1, bad);
        });
        assert_eq!(m, "link of node `n0`: loss must be between 0% and 100%");
        let m = refused(|s| {
            s.links
                .get_mut(&0)
                .unwrap()
                .links
                .insert(0, Shaping::default());
        });
        assert!(
            m.contains("towards node index 0, which is not another node"),
            "{m}"
        );
    }
}
