//! Cluster manifests: the YAML format, its validation with located errors, and the resolved `ClusterSpec`.
//!
//! The YAML is first loaded into a small tree in which every node carries its
//! source position, and validated by hand from there. Serde's derived
//! `deny_unknown_fields` would be shorter, and serde-saphyr 2 does locate its
//! errors at the offending key, but the derived messages cannot be reworded
//! (no "quote it to use it as text", no list of node names in the hint).
//!
//! The module is split by concern, as `scenario` is: `model` holds the resolved types, `parse` reads
//! the YAML tree into them, `check` holds the rules a value must meet (names, images, arguments, sizes)
//! and the `hosts:` section with its placement, `args` the policy on bitcoind arguments.

pub mod args;
mod check;
mod model;
mod parse;
mod validate;

pub use crate::core::yaml::ReadFile;
pub(crate) use check::{is_node_name, parse_memory};
pub use model::{ClusterSpec, Encrypt, NodeSpec, Resources};

use crate::core::yaml::{Cx, SourceError};

/// The image a node gets unless the manifest (or `up --image`) names one: "the regbox node image this
/// machine has or can build". `up` resolves it to a tag (the newest such image here, else one it builds)
/// and records that tag in the cluster's metadata, so a cluster keeps its image across `up`s.
pub const DEFAULT_IMAGE: &str = "regbox/bitcoind";
/// Keeps each node's memory small so that hundreds fit on one machine.
pub const DEFAULT_ARGS: &[&str] = &["-dbcache=4", "-maxmempool=5"];
pub const MAX_NODES: usize = 1000;
/// Options that regbox sets on every node; overriding them would break
/// networking, RPC access or the topology itself. The first class of [`args::POLICY`].
pub const RESERVED_OPTIONS: &[&str] = &[
    "regtest",
    "chain",
    "testnet",
    "testnet4",
    "signet",
    "server",
    "connect",
    "listen",
    "bind",
    "port",
    "rpcbind",
    "rpcallowip",
    "rpcport",
    "rpcauth",
    "rpcuser",
    "rpcpassword",
    "uacomment",
    "datadir",
    "dnsseed",
    "fixedseeds",
    "discover",
    "listenonion",
    "natpmp",
    "daemon",
    "daemonwait",
    "printtoconsole",
    "logtimemicros",
    "conf",
];

pub(super) const TOP_FIELDS: &[&str] = &[
    "name",
    "hosts",
    "placement",
    "encrypt",
    "defaults",
    "nodes",
    "topology",
    "links",
];
pub(super) const DEFAULTS_FIELDS: &[&str] = &[
    "image",
    "args",
    "wallet",
    "resources",
    "link",
    "clock",
    "disk",
];
pub(super) const NODE_FIELDS: &[&str] = &[
    "name",
    "image",
    "args",
    "wallet",
    "resources",
    "link",
    "host",
    "clock",
    "disk",
];
/// A bounded data directory's size: from what bitcoind needs to start (it wants 50 MiB free) to 64 GiB.
pub(super) const MIN_DISK: u64 = 128 << 20;
pub(super) const MAX_DISK: u64 = 64 << 30;
pub(super) const HOST_FIELDS: &[&str] = &["name", "docker", "address", "labels", "capacity"];
pub(super) const RESOURCES_FIELDS: &[&str] = &["memory", "cpus"];
/// A node's memory limit unless the manifest says otherwise: an idle lab node holds ≈ 40 MiB, a busy one
/// (mining, a large mempool) a few times that.
pub const DEFAULT_MEMORY: u64 = 512 << 20;
/// Below this bitcoind cannot start.
pub const MIN_MEMORY: u64 = 32 << 20;
/// The most memory a node may be given (1 TiB).
pub const MAX_MEMORY: u64 = 1 << 40;
/// The most CPUs a node may be given.
pub const MAX_CPUS: f64 = 1024.0;

/// Parses and validates a manifest. `origin` only names the source in errors. A manifest that names a
/// topology file is refused: use [`parse_reading`].
pub fn parse(source: &str, origin: &str) -> Result<ClusterSpec, SourceError> {
    let cx = Cx::new(origin, "manifest");
    cx.cluster(&cx.load(source)?)
}

/// [`parse`], reading the topology file the manifest may name (`topology: {file: PATH}`) with `read`,
/// which is given PATH as written (the CLI reads it relative to the manifest's directory).
pub fn parse_reading(
    source: &str,
    origin: &str,
    read: ReadFile<'_>,
) -> Result<ClusterSpec, SourceError> {
    let cx = Cx::new(origin, "manifest").reading(read);
    cx.cluster(&cx.load(source)?)
}

#[cfg(test)]
mod tests {
    use super::check::*;
    use super::*;
    use crate::core::faults::plane;
    use crate::core::topology::{generate, Kind, NodeId};
    use crate::core::yaml::{MAX_SOURCE_BYTES, MAX_YAML_NODES};

    fn ok(source: &str) -> ClusterSpec {
        parse(source, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(source: &str) -> SourceError {
        match parse(source, "test.yaml") {
            Ok(spec) => panic!("expected an error, parsed {spec:?}"),
            Err(e) => e,
        }
    }

    /// Snapshots the message users see, with the offending YAML as the description.
    macro_rules! assert_error {
        ($name:literal, $source:expr) => {{
            let source: &str = $source;
            let message = err(source).to_string();
            insta::with_settings!({ description => source, omit_expression => true }, {
                insta::assert_snapshot!($name, message);
            });
        }};
    }

    #[test]
    fn differences_name_the_fields_that_make_a_container_differ() {
        let spec = ClusterSpec::default_ring4();
        let before = spec.nodes[0].clone();
        assert!(before.differences(&before).is_empty());
        let mut after = before.clone();
        after.image = "other:1".into();
        after.args.push("-debug=net".into());
        after.resources.memory *= 2;
        assert_eq!(
            after.differences(&before),
            vec!["image", "args", "resources"]
        );
    }

    #[test]
    fn a_node_that_moves_host_differs_by_host() {
        let spec = ok(HOSTS2);
        let before = spec.nodes[0].clone();
        let mut after = before.clone();
        after.host = Some("h2".into());
        assert_eq!(after.differences(&before), vec!["host"]);
    }

    const HOSTS2: &str = "name: lab\nhosts:\n  - {name: h1, docker: unix:///run/h1/docker.sock}\n  - {name: h2, docker: 'tcp://10.0.0.2:2375'}\nnodes: 4\n";

    #[test]
    fn hosts_place_every_node_at_parse_time() {
        let spec = ok(HOSTS2);
        let on: Vec<&str> = spec
            .nodes
            .iter()
            .map(|n| n.host.as_deref().unwrap())
            .collect();
        assert_eq!(on, ["h1", "h2", "h1", "h2"]);
        assert_eq!(spec.nodes_on("h1"), [0, 2]);
        assert_eq!(spec.nodes_on("h2"), [1, 3]);
        assert!(spec.nodes_on("h3").is_empty());
        assert_eq!(spec.host_of(1).unwrap().docker, "tcp://10.0.0.2:2375");
        assert!(spec.host_of(4).is_none());
        // Without hosts nothing changes: no host anywhere, and the record is what it was.
        let plain = ok("name: lab\nnodes: 4\n");
        assert!(plain.hosts.is_empty() && plain.nodes.iter().all(|n| n.host.is_none()));
        assert!(plain.host_of(0).is_none());
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("host"), "{json}");
    }

    #[test]
    fn host_fields_pins_and_binpack() {
        let spec = ok(r#"
name: lab
hosts:
  - name: h1
    docker: unix:///run/regbox-lab/h1/docker.sock
    address: 10.99.0.11
    labels: {zone: a, rack: "3"}
    capacity: 2
  - name: h2
    docker: unix:///run/regbox-lab/h2/docker.sock
placement: binpack
nodes:
  - name: a
    host: h2
  - name: b
  - name: c
  - name: d
"#);
        let h1 = &spec.hosts[0];
        assert_eq!(h1.address, Some(std::net::Ipv4Addr::new(10, 99, 0, 11)));
        assert_eq!(h1.labels["zone"], "a");
        assert_eq!(h1.labels["rack"], "3");
        assert_eq!(h1.capacity, Some(2));
        assert_eq!(spec.hosts[1].capacity, None);
        assert_eq!(spec.nodes_on("h1"), [1, 2]);
        assert_eq!(spec.nodes_on("h2"), [0, 3]);
        // A record with hosts loads back as it was.
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ClusterSpec>(&json).unwrap(), spec);
    }

    /// Found by the verb corpus of the fuzz tests: `Verb` is internally tagged, so serde buffers its
    /// body, and the buffer hands the node-index keys of `links` over as text, which a `usize` key
    /// refused — an `apply` of a spec with link shaping, through the operator, failed with
    /// `invalid type: string "0", expected usize`.
    #[test]
    fn a_spec_with_link_shaping_survives_the_json_of_an_apply_verb() {
        let spec = ok("name: a\nnodes: 3\nlinks:\n  - {from: n0, to: n1, delay: 10ms}\n");
        assert!(!spec.links.is_empty());
        let verb = crate::core::verb::Verb::Apply {
            spec: Box::new(spec),
            dry_run: true,
            timeout: None,
        };
        let json = serde_json::to_string(&verb).unwrap();
        assert_eq!(
            serde_json::from_str::<crate::core::verb::Verb>(&json).unwrap(),
            verb
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            serde_json::from_value::<crate::core::verb::Verb>(value).unwrap(),
            verb
        );
    }

    #[test]
    fn specs_stored_before_hosts_still_load() {
        let spec: ClusterSpec = serde_json::from_str(
            r#"{"name": "a", "nodes": [{"name": "n0", "image": "x", "args": []}], "edges": []}"#,
        )
        .unwrap();
        assert!(spec.hosts.is_empty() && spec.nodes[0].host.is_none());
    }

    #[test]
    fn nodes_from_a_topology_file_are_placed_too() {
        let read = |_: &str| Ok("a b\nb c\n".to_string());
        let spec = parse_reading(
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock}, {name: h2, docker: unix:///b.sock}]\ntopology: {file: g.txt}\n",
            "test.yaml",
            &read,
        )
        .unwrap();
        assert!(spec.nodes.iter().all(|n| n.host.is_some()));
        assert_eq!(spec.nodes_on("h1").len(), 2);
    }

    #[test]
    fn bad_hosts_are_refused_where_they_are() {
        let h = "hosts:\n  - {name: h1, docker: unix:///run/h1.sock}\n  - {name: h2, docker: unix:///run/h2.sock}\n";
        assert_error!(
            "host_unknown",
            &format!("name: lab\n{h}nodes:\n  - name: a\n    host: h9\n")
        );
        assert_error!(
            "host_without_hosts",
            "name: lab\nnodes:\n  - name: a\n    host: h1\n"
        );
        assert_error!(
            "host_in_defaults",
            &format!("name: lab\n{h}defaults: {{host: h1}}\nnodes: 2\n")
        );
        assert_error!(
            "host_docker_not_a_url",
            "name: lab\nhosts:\n  - name: h1\n    docker: /run/h1/docker.sock\nnodes: 2\n"
        );
        assert_error!(
            "host_docker_tcp_without_port",
            "name: lab\nhosts: [{name: h1, docker: 'tcp://10.0.0.1'}]\nnodes: 2\n"
        );
        assert_error!(
            "host_docker_missing",
            "name: lab\nhosts:\n  - name: h1\nnodes: 2\n"
        );
        assert_error!(
            "host_duplicate_name",
            "name: lab\nhosts:\n  - {name: h1, docker: unix:///a.sock}\n  - {name: h1, docker: unix:///b.sock}\nnodes: 2\n"
        );
        assert_error!(
            "host_bad_name",
            "name: lab\nhosts: [{name: H1, docker: unix:///a.sock}]\nnodes: 2\n"
        );
        assert_error!(
            "host_bad_address",
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock, address: 10.99.0}]\nnodes: 2\n"
        );
        assert_error!(
            "host_capacity_zero",
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock, capacity: 0}]\nnodes: 2\n"
        );
        assert_error!(
            "host_labels_not_a_mapping",
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock, labels: [a]}]\nnodes: 2\n"
        );
        assert_error!(
            "host_unknown_field",
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock, cpus: 4}]\nnodes: 2\n"
        );
        assert_error!("hosts_empty", "name: lab\nhosts: []\nnodes: 2\n");
        assert_error!(
            "hosts_not_a_list",
            "name: lab\nhosts: {h1: unix:///a.sock}\nnodes: 2\n"
        );
        assert_error!(
            "placement_unknown",
            &format!("name: lab\n{h}placement: pack\nnodes: 2\n")
        );
        assert_error!(
            "placement_without_hosts",
            "name: lab\nplacement: spread\nnodes: 2\n"
        );
    }

    /// `encrypt:` takes auto, on or off, only with `hosts` (one engine's bridges cross no wire); auto
    /// is the default and is not recorded, the others are and read back.
    #[test]
    fn encrypt_is_auto_on_or_off_and_needs_hosts() {
        let h = "hosts: [{name: h1, docker: unix:///a.sock}, {name: h2, docker: unix:///b.sock}]\n";
        for (word, want) in [
            ("on", Encrypt::On),
            ("off", Encrypt::Off),
            ("auto", Encrypt::Auto),
        ] {
            let spec = ok(&format!("name: lab\n{h}encrypt: {word}\nnodes: 2\n"));
            assert_eq!(spec.encrypt, want);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(json.contains("encrypt"), word != "auto", "{json}");
            assert_eq!(serde_json::from_str::<ClusterSpec>(&json).unwrap(), spec);
            assert_eq!(spec.validate(), Ok(()));
        }
        assert_eq!(
            ok(&format!("name: lab\n{h}nodes: 2\n")).encrypt,
            Encrypt::Auto
        );
        let e = err("name: lab\nencrypt: on\nnodes: 2\n");
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        assert!(e.message.contains("`encrypt` needs `hosts`"), "{e}");
        let e = err(&format!("name: lab\n{h}encrypt: yes\nnodes: 2\n"));
        assert_eq!((e.line, e.column), (3, 10), "{e}");
        assert!(e.message.contains("must be auto, on or off"), "{e}");
    }

    #[test]
    fn host_capacity_errors_name_the_numbers() {
        assert_error!(
            "hosts_capacity_too_small",
            "name: lab\nhosts:\n  - {name: h1, docker: unix:///a.sock, capacity: 10}\n  - {name: h2, docker: unix:///b.sock, capacity: 10}\nnodes: 25\n"
        );
        assert_error!(
            "host_pinned_over_capacity",
            "name: lab\nhosts:\n  - {name: h1, docker: unix:///a.sock, capacity: 1}\n  - {name: h2, docker: unix:///b.sock}\nnodes:\n  - {name: a, host: h1}\n  - {name: b}\n  - {name: c, host: h1}\n"
        );
    }

    #[test]
    fn docker_urls() {
        for good in [
            "unix:///var/run/docker.sock",
            "tcp://10.0.0.1:2375",
            "tcp://engine.lab:2376",
            "tcp://[::1]:2375",
        ] {
            assert!(is_docker_url(good), "{good}");
        }
        for bad in [
            "unix://",
            "unix:///",
            "unix://relative.sock",
            "tcp://host",
            "tcp://:2375",
            "tcp://host:port",
            "tcp://host:0",
            "tcp://host:2375/path",
            "http://host:2375",
            "ssh://me@host",
            "unix:///a b.sock",
        ] {
            assert!(!is_docker_url(bad), "{bad}");
        }
    }

    #[test]
    fn a_spec_built_in_code_is_the_manifest_it_stands_for() {
        let spec = ClusterSpec::generated("lab", 5, Kind::Star).unwrap();
        assert_eq!(spec, ok("name: lab\nnodes: 5\ntopology: star\n"));
        assert!(ClusterSpec::generated("Lab!", 5, Kind::Star).is_err());
        assert!(ClusterSpec::generated("lab", 0, Kind::Star).is_err());
    }

    #[test]
    fn resources_default_and_override_per_field() {
        let spec = ok("name: a\ndefaults:\n  resources: {memory: 256m, cpus: 1.5}\nnodes:\n  - name: x\n  - name: y\n    resources: {memory: 1g}\n  - name: z\n    resources: {cpus: 1}\n");
        let r: Vec<(u64, Option<u64>)> = spec
            .nodes
            .iter()
            .map(|n| (n.resources.memory, n.resources.nano_cpus))
            .collect();
        assert_eq!(
            r,
            vec![
                (256 << 20, Some(1_500_000_000)),
                (1 << 30, Some(1_500_000_000)),
                (256 << 20, Some(1_000_000_000)),
            ]
        );
        let plain = ok("name: a\nnodes: 1\n");
        assert_eq!(plain.nodes[0].resources, Resources::default());
        assert_eq!(parse_memory("65536k"), Some(64 << 20));
        assert_eq!(parse_memory("1.5G"), Some(3 << 29));
        assert_eq!(parse_memory("100MiB"), Some(100 << 20));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(parse_memory("5t"), None);
    }

    #[test]
    fn clock_and_disk_default_and_override_and_bad_ones_are_refused_with_their_place() {
        let spec = ok("name: a\ndefaults:\n  clock: -90m\n  disk: {size: 300m}\nnodes:\n  - name: x\n  - name: y\n    clock: +3h\n    disk: {size: 1g}\n");
        let got: Vec<_> = spec.nodes.iter().map(|n| (n.clock, n.disk)).collect();
        assert_eq!(got, vec![(-5400, Some(300 << 20)), (10_800, Some(1 << 30))]);
        assert_eq!(ok("name: a\nnodes: 2\n").nodes[0].disk, None);
        for (source, at, says) in [
            ("name: a\nnodes:\n  - name: x\n    clock: 3\n", (4, 12), "+3h"),
            ("name: a\nnodes:\n  - name: x\n    disk: {size: 1m}\n", (4, 18), "128m"),
            ("name: a\nnodes:\n  - name: x\n    disk: {}\n", (4, 11), "size"),
            (
                "name: a\nhosts: [{name: h1, docker: unix:///a.sock}]\nnodes:\n  - name: x\n    disk: {size: 300m}\n",
                (5, 5),
                "across hosts",
            ),
        ] {
            let e = err(source);
            assert_eq!((e.line, e.column), at, "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn bad_resources_are_refused_with_their_place() {
        assert_error!(
            "resources_memory_word",
            "name: a\nnodes:\n  - name: x\n    resources: {memory: lots}\n"
        );
        assert_error!(
            "resources_memory_too_small",
            "name: a\ndefaults:\n  resources: {memory: 1m}\nnodes: 1\n"
        );
        assert_error!(
            "resources_cpus_zero",
            "name: a\ndefaults:\n  resources: {cpus: 0}\nnodes: 1\n"
        );
        assert_error!(
            "resources_unknown_field",
            "name: a\ndefaults:\n  resources: {disk: 1g}\nnodes: 1\n"
        );
    }

    fn names(spec: &ClusterSpec) -> Vec<&str> {
        spec.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    fn pairs(spec: &ClusterSpec) -> Vec<(NodeId, NodeId)> {
        spec.edges.iter().map(|e| (e.from, e.to)).collect()
    }

    fn wallets(spec: &ClusterSpec) -> Vec<bool> {
        spec.nodes.iter().map(|n| n.wallet).collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn count_form_names_nodes_and_uses_defaults() {
        let spec = ok("name: lab\nnodes: 3\n");
        assert_eq!(spec.name, "lab");
        assert_eq!(names(&spec), ["n0", "n1", "n2"]);
        for node in &spec.nodes {
            assert_eq!(node.image, DEFAULT_IMAGE);
            assert_eq!(node.args, DEFAULT_ARGS);
        }
        // Without `topology` the cluster is a ring.
        assert_eq!(pairs(&spec), [(0, 1), (1, 2), (2, 0)]);
    }

    #[test]
    fn default_ring4_is_the_minimal_manifest() {
        assert_eq!(ClusterSpec::default_ring4(), ok("name: regbox\nnodes: 4\n"));
    }

    #[test]
    fn list_form_with_per_node_overrides() {
        let spec = ok(r#"
name: lab
defaults:
  image: base:1
  args: ["-debug=net"]
nodes:
  - name: alice
  - name: bob
    image: other:2
  - name: carol
    args: ["-whitelist=noban@0.0.0.0/0"]
topology: line
"#);
        assert_eq!(names(&spec), ["alice", "bob", "carol"]);
        assert_eq!(spec.nodes[0].image, "base:1");
        assert_eq!(spec.nodes[0].args, ["-debug=net"]);
        assert_eq!(spec.nodes[1].image, "other:2");
        assert_eq!(spec.nodes[1].args, ["-debug=net"]);
        assert_eq!(spec.nodes[2].image, "base:1");
        // Node args come after the defaults so that bitcoind's last-one-wins applies to them.
        assert_eq!(
            spec.nodes[2].args,
            ["-debug=net", "-whitelist=noban@0.0.0.0/0"]
        );
        assert_eq!(pairs(&spec), [(0, 1), (1, 2)]);
    }

    #[test]
    fn links_come_from_defaults_nodes_and_the_links_list() {
        let spec = ok("name: geo\n\
            defaults: {link: {loss: 1%}}\n\
            nodes: [{name: a}, {name: b, link: {delay: 10ms}}, {name: c}, {name: d}]\n\
            links:\n  - {between: [[a, b], c], delay: 75ms}\n  - {from: d, to: 0, like: flaky}\n");
        let words: Vec<String> = spec
            .links
            .iter()
            .map(|(i, f)| {
                format!(
                    "{i}: {}",
                    plane::describe(f, |p| spec.nodes[p].name.clone())
                )
            })
            .collect();
        assert_eq!(
            words,
            [
                "0: loss 1%; to c: delay 75ms",
                "1: delay 10ms; to c: delay 75ms",
                "2: loss 1%; to a: delay 75ms; to b: delay 75ms",
                "3: loss 1%; to a: loss 30%",
            ]
        );
        assert!(ok("name: plain\nnodes: 2\n").links.is_empty());
    }

    #[test]
    fn bad_links_are_refused_where_they_are() {
        assert_error!(
            "link_bad_delay",
            "name: x\nnodes: 2\nlinks: [{between: [0, 1], delay: fast}]\n"
        );
        assert_error!(
            "link_unknown_node",
            "name: x\nnodes: 2\nlinks: [{from: n0, to: n7, delay: 5ms}]\n"
        );
        assert_error!(
            "link_no_shaping",
            "name: x\nnodes: 2\nlinks: [{between: [0, 1]}]\n"
        );
        assert_error!(
            "link_neither_form",
            "name: x\nnodes: 2\nlinks: [{to: 1, delay: 5ms}]\n"
        );
        assert_error!(
            "link_not_a_list",
            "name: x\nnodes: 2\nlinks: {between: [0, 1]}\n"
        );
        assert_error!(
            "node_link_unknown_field",
            "name: x\nnodes: [{name: a, link: {latency: 5ms}}]\n"
        );
    }

    #[test]
    fn defaults_are_optional_piecewise() {
        let spec = ok("name: lab\ndefaults: {image: custom:1}\nnodes: 1\n");
        assert_eq!(spec.nodes[0].image, "custom:1");
        assert_eq!(spec.nodes[0].args, DEFAULT_ARGS);

        let spec = ok("name: lab\ndefaults: {args: [-debug=net]}\nnodes: 1\n");
        assert_eq!(spec.nodes[0].image, DEFAULT_IMAGE);
        assert_eq!(spec.nodes[0].args, ["-debug=net"]);

        let spec = ok("name: lab\ndefaults: {args: []}\nnodes: [{name: a, args: [-debug=net]}]\n");
        assert_eq!(spec.nodes[0].args, ["-debug=net"]);
    }

    #[test]
    fn wallets_default_off_and_nodes_override_defaults() {
        let spec = ok("name: lab\nnodes: [{name: a}, {name: b, wallet: true}]\n");
        assert_eq!(wallets(&spec), [false, true]);
        let spec = ok("name: lab\ndefaults: {wallet: true}\nnodes: 2\n");
        assert_eq!(wallets(&spec), [true, true]);
        let spec = ok(
            "name: lab\ndefaults: {wallet: true}\nnodes: [{name: a, wallet: false}, {name: b}]\n",
        );
        assert_eq!(wallets(&spec), [false, true]);
        assert!(!ClusterSpec::default_ring4().nodes[0].wallet);
    }

    #[test]
    fn specs_stored_without_wallet_still_load() {
        let node: NodeSpec =
            serde_json::from_str(r#"{"name": "a", "image": "x", "args": []}"#).unwrap();
        assert!(!node.wallet);
    }

    #[test]
    fn every_topology_kind() {
        for kind in Kind::ALL {
            let spec = ok(&format!("name: lab\nnodes: 5\ntopology: {kind}\n"));
            assert_eq!(spec.edges, generate(kind, 5), "{kind}");
        }
    }

    #[test]
    fn edges_by_name_and_index_keep_the_dialer_first() {
        let spec = ok(r#"
name: lab
nodes: [{name: a}, {name: b}, {name: c}, {name: d}]
topology:
  edges: [[a, b], [2, 1], [d, 0], [c, 3]]
"#);
        assert_eq!(pairs(&spec), [(0, 1), (2, 1), (3, 0), (2, 3)]);
        let spec = ok("name: lab\nnodes: 3\ntopology: {edges: [[n2, 0], [1, n2]]}\n");
        assert_eq!(pairs(&spec), [(2, 0), (1, 2)]);
    }

    #[test]
    fn empty_edge_list_means_no_connections() {
        assert!(ok("name: lab\nnodes: 3\ntopology: {edges: []}\n")
            .edges
            .is_empty());
    }

    #[test]
    fn yaml_1_1_boolean_words_are_names() {
        let spec = ok("name: lab\nnodes: [{name: y}, {name: n}, {name: on}, {name: off}]\ntopology: {edges: [[y, n], [on, off]]}\n");
        assert_eq!(names(&spec), ["y", "n", "on", "off"]);
        assert_eq!(pairs(&spec), [(0, 1), (2, 3)]);
    }

    #[test]
    fn anchors_and_merge_keys_work() {
        let spec = ok(r#"
name: lab
nodes:
  - &net {name: a, args: [-debug=net]}
  - <<: *net
    name: b
"#);
        assert_eq!(spec.nodes[1].args, spec.nodes[0].args);
        assert_eq!(spec.nodes[1].name, "b");
    }

    #[test]
    fn one_anchor_shared_by_a_thousand_nodes_is_fine() {
        let mut source =
            String::from("name: lab\ndefaults: {args: &a [-debug=net, -debug=rpc]}\nnodes:\n");
        for i in 0..MAX_NODES {
            source += &format!("  - {{name: n{i}, args: *a}}\n");
        }
        assert_eq!(ok(&source).nodes.len(), MAX_NODES);
    }

    #[test]
    fn node_count_limits_are_inclusive() {
        assert_eq!(ok("name: lab\nnodes: 1\n").nodes.len(), 1);
        assert!(ok("name: lab\nnodes: 1\n").edges.is_empty());
        assert_eq!(ok("name: lab\nnodes: 1000\n").nodes.len(), 1000);
    }

    #[test]
    fn name_limits() {
        ok(&format!("name: {}\nnodes: 1\n", "a".repeat(40)));
        ok("name: 0-lab\nnodes: 1\n");
        ok(&format!(
            "name: lab\nnodes: [{{name: A{}}}]\n",
            "b_.-9".repeat(12) + "xx"
        ));
    }

    #[test]
    fn permitted_arguments() {
        let spec = ok("name: lab\ndefaults: {args: [-dbcache=4, --debug=net, -notify=x, -listenx=1, -nodebug, -whitelist=noban@10.0.0.0/8]}\nnodes: 1\n");
        assert_eq!(spec.nodes[0].args.len(), 6);
    }

    #[test]
    fn the_argument_policy_holds_wherever_args_are_written() {
        let shell = "is refused: it runs a shell command inside the node";
        let e = err("name: lab\ndefaults: {args: [-blocknotify=touch /tmp/x]}\nnodes: 1\n");
        assert_eq!((e.line, e.column), (2, 19), "{e}");
        assert!(e
            .to_string()
            .starts_with("test.yaml:2:19: argument `-blocknotify=…` "));
        assert!(
            e.message.contains(shell) && !e.message.contains("touch"),
            "{e}"
        );
        let e = err("name: lab\nnodes:\n  - name: a\n    args: [-debug=net, --WalletNotify=x]\n");
        assert_eq!((e.line, e.column), (4, 24), "{e}");
        assert!(e.message.contains(shell), "{e}");
        for (arg, why) in [
            (
                "-proxy=10.0.0.1:9050",
                "reach peers or services the manifest does not declare",
            ),
            (
                "-addnode=10.0.0.1",
                "reach peers or services the manifest does not declare",
            ),
            ("-debuglogfile=/tmp/d", "names a file or directory"),
            (
                "-rpcwhitelistdefault=1",
                "keeps regbox from running the node",
            ),
            ("-regtest.noblocknotify=0", "runs a shell command"),
        ] {
            let e = err(&format!(
                "name: lab\ndefaults: {{args: [\"{arg}\"]}}\nnodes: 1\n"
            ));
            assert!(e.message.contains(why), "{arg}: {e}");
        }
        // A scenario's inline cluster goes through the same reader.
        let scenario = "name: s\ncluster:\n  name: lab\n  nodes: 2\n  defaults: {args: [-startupnotify=x]}\nsteps: [status]\n";
        let e = crate::core::scenario::parse(scenario, "s.scenario.yaml").unwrap_err();
        assert_eq!((e.line, e.column), (5, 21), "{e}");
        assert!(e.message.contains(shell), "{e}");
        // Warned and allowed ones are taken as written.
        let spec = ok("name: lab\ndefaults: {args: [-maxconnections=4, -rest, -zmqpubrawblock=tcp://0.0.0.0:28332, -noproxy]}\nnodes: 1\n");
        assert_eq!(spec.nodes[0].args.len(), 4);
    }

    #[test]
    fn reserved_option_parsing() {
        assert_eq!(reserved_option("-rpcbind=0.0.0.0"), Some("rpcbind"));
        assert_eq!(reserved_option("--port"), Some("port"));
        assert_eq!(reserved_option("-nolisten"), Some("listen"));
        assert_eq!(reserved_option("-regtest.rpcport=1"), Some("rpcport"));
        assert_eq!(reserved_option("-RegTest"), Some("regtest"));
        assert_eq!(reserved_option("-noregtest.connect"), Some("connect"));
        assert_eq!(reserved_option("-nodebug"), None);
        assert_eq!(reserved_option("-portx"), None);
        assert_eq!(reserved_option("-dbcache=4"), None);
    }

    #[test]
    fn example_ring4() {
        let spec = parse(
            include_str!("../../../../manifests/ring4.yaml"),
            "ring4.yaml",
        )
        .unwrap();
        assert_eq!(spec.name, "ring4");
        assert_eq!(names(&spec), ["n0", "n1", "n2", "n3"]);
        assert_eq!(
            spec.graph().edges().collect::<Vec<_>>(),
            [(0, 1), (0, 3), (1, 2), (2, 3)]
        );
        assert!(spec.nodes.iter().all(|n| n.image == DEFAULT_IMAGE));
    }

    #[test]
    fn example_lab3() {
        let spec = parse(include_str!("../../../../manifests/lab3.yaml"), "lab3.yaml").unwrap();
        assert_eq!(spec.name, "lab3");
        assert_eq!(spec.hosts.len(), 3);
        for (i, host) in spec.hosts.iter().enumerate() {
            assert_eq!(
                host.docker,
                format!("unix:///run/regbox-lab/h{}/docker.sock", i + 1)
            );
            assert_eq!(spec.nodes_on(&host.name), [2 * i, 2 * i + 1]);
        }
        assert_eq!(spec.edges, generate(Kind::Ring, 6));
    }

    #[test]
    fn example_mesh8() {
        let spec = parse(
            include_str!("../../../../manifests/mesh8.yaml"),
            "mesh8.yaml",
        )
        .unwrap();
        assert_eq!(spec.name, "mesh8");
        assert_eq!(spec.nodes.len(), 8);
        assert_eq!(spec.edges.len(), 28);
        let erin = &spec.nodes[spec.resolve("erin").unwrap()];
        assert_eq!(
            erin.args,
            strings(&["-dbcache=4", "-maxmempool=5", "-debug=net"])
        );
    }

    #[test]
    fn example_star_edges() {
        let spec = parse(
            include_str!("../../../../manifests/star-edges.yaml"),
            "star-edges.yaml",
        )
        .unwrap();
        insta::assert_snapshot!(
            "star_edges_spec",
            serde_json::to_string_pretty(&spec).unwrap()
        );
    }

    #[test]
    fn resolve_by_name_or_index() {
        let spec = ok("name: lab\nnodes: [{name: a}, {name: b}]\n");
        assert_eq!(spec.resolve("a"), Some(0));
        assert_eq!(spec.resolve("b"), Some(1));
        assert_eq!(spec.resolve("1"), Some(1));
        assert_eq!(spec.resolve("2"), None);
        assert_eq!(spec.resolve("-1"), None);
        assert_eq!(spec.resolve("+1"), None);
        assert_eq!(spec.resolve(""), None);
        assert_eq!(spec.resolve("c"), None);
    }

    #[test]
    fn graph_matches_edges() {
        let spec = ok("name: lab\nnodes: 4\ntopology: star\n");
        let graph = spec.graph();
        assert_eq!(graph.len(), 3);
        assert!(graph.contains(2, 0));
    }

    #[test]
    fn error_fields() {
        let e = err("name: lab\nnodes: 4\ntopology: rong\n");
        assert_eq!((e.origin.as_str(), e.line, e.column), ("test.yaml", 3, 11));
    }

    // Each validation error, snapshotted with its location.

    #[test]
    fn unknown_fields() {
        assert_error!(
            "unknown_top_field",
            include_str!("../../../../tests/data/bad/unknown-field.yaml")
        );
        assert_error!(
            "unknown_defaults_field",
            "name: lab\ndefaults:\n  image: x\n  arg: [-debug]\nnodes: 1\n"
        );
        assert_error!(
            "unknown_node_field",
            "name: lab\nnodes:\n  - name: a\n  - name: b\n    imagez: x\n"
        );
        assert_error!(
            "unknown_topology_field",
            "name: lab\nnodes: 2\ntopology:\n  edge: [[0, 1]]\n"
        );
        assert_error!("non_string_key", "name: lab\nnodes: 2\n7: x\n");
    }

    #[test]
    fn missing_fields() {
        assert_error!("missing_name", "nodes: 2\n");
        assert_error!("missing_nodes", "name: lab\ntopology: line\n");
        assert_error!(
            "missing_node_name",
            "name: lab\nnodes:\n  - name: a\n  - image: x\n"
        );
        assert_error!("missing_edges", "name: lab\nnodes: 2\ntopology: {}\n");
    }

    #[test]
    fn wrong_types() {
        assert_error!("manifest_is_list", "- name: lab\n");
        assert_error!("manifest_is_scalar", "lab\n");
        assert_error!("name_is_list", "name: [lab]\nnodes: 2\n");
        assert_error!("name_is_number", "name: 42\nnodes: 2\n");
        assert_error!("nodes_is_string", "name: lab\nnodes: four\n");
        assert_error!("nodes_is_float", "name: lab\nnodes: 2.5\n");
        assert_error!("node_is_string", "name: lab\nnodes:\n  - a\n");
        assert_error!("node_name_is_bool", "name: lab\nnodes:\n  - name: true\n");
        assert_error!("defaults_is_list", "name: lab\ndefaults: [x]\nnodes: 1\n");
        assert_error!(
            "image_is_null",
            "name: lab\ndefaults:\n  image:\nnodes: 1\n"
        );
        assert_error!(
            "args_is_string",
            "name: lab\ndefaults:\n  args: -debug=net\nnodes: 1\n"
        );
        assert_error!(
            "arg_is_number",
            "name: lab\nnodes:\n  - name: a\n    args: [-debug, 5]\n"
        );
        assert_error!(
            "wallet_is_word",
            "name: lab\ndefaults: {wallet: yes}\nnodes: 1\n"
        );
        assert_error!(
            "wallet_is_null",
            "name: lab\nnodes:\n  - name: a\n    wallet:\n"
        );
        assert_error!("topology_is_number", "name: lab\nnodes: 2\ntopology: 3\n");
        assert_error!(
            "edges_is_mapping",
            "name: lab\nnodes: 2\ntopology:\n  edges: {a: b}\n"
        );
        assert_error!(
            "edge_is_string",
            "name: lab\nnodes: 2\ntopology:\n  edges:\n    - n0-n1\n"
        );
        assert_error!(
            "edge_has_three_ends",
            "name: lab\nnodes: 3\ntopology:\n  edges:\n    - [n0, n1, n2]\n"
        );
        assert_error!(
            "endpoint_is_float",
            "name: lab\nnodes: 3\ntopology:\n  edges:\n    - [n0, 1.5]\n"
        );
    }

    #[test]
    fn unknown_topology_kind() {
        assert_error!("unknown_topology", "name: lab\nnodes: 4\ntopology: Ring\n");
    }

    #[test]
    fn bad_names() {
        assert_error!("cluster_name_upper_case", "name: Lab\nnodes: 1\n");
        assert_error!("cluster_name_leading_dash", "name: -lab\nnodes: 1\n");
        assert_error!(
            "cluster_name_too_long",
            &format!("name: {}\nnodes: 1\n", "a".repeat(41))
        );
        assert_error!("cluster_name_empty", "name: ''\nnodes: 1\n");
        assert_error!(
            "node_name_starts_with_digit",
            "name: lab\nnodes:\n  - name: \"1a\"\n"
        );
        assert_error!("node_name_with_space", "name: lab\nnodes:\n  - name: a b\n");
        assert_error!(
            "node_name_too_long",
            &format!("name: lab\nnodes:\n  - name: {}\n", "a".repeat(64))
        );
        assert_error!(
            "node_name_control_chars_are_escaped",
            "name: lab\nnodes:\n  - name: \"a\\nb\"\n"
        );
    }

    #[test]
    fn duplicate_node_name() {
        assert_error!(
            "duplicate_node_name",
            "name: lab\nnodes:\n  - name: a\n  - name: b\n  - name: a\n"
        );
    }

    #[test]
    fn unknown_edge_endpoints() {
        assert_error!(
            "edge_to_unknown_name",
            include_str!("../../../../tests/data/bad/unknown-node.yaml")
        );
        assert_error!(
            "edge_to_unknown_name_in_list",
            "name: lab\nnodes: [{name: alice}, {name: bob}]\ntopology: {edges: [[alice, carol]]}\n"
        );
        assert_error!(
            "edge_to_unknown_name_in_long_list",
            "name: lab\nnodes: [{name: a}, {name: b}, {name: c}, {name: d}, {name: e}, {name: f}, {name: g}]\ntopology: {edges: [[a, h]]}\n"
        );
        assert_error!(
            "edge_index_out_of_range",
            "name: lab\nnodes: 4\ntopology: {edges: [[0, 4]]}\n"
        );
        assert_error!(
            "edge_index_negative",
            "name: lab\nnodes: 4\ntopology: {edges: [[-1, 0]]}\n"
        );
        assert_error!(
            "edge_index_single_node",
            "name: lab\nnodes: 1\ntopology: {edges: [[0, 1]]}\n"
        );
        // A quoted number is a name, and names never look like numbers.
        assert_error!(
            "edge_quoted_index_is_a_name",
            "name: lab\nnodes: 2\ntopology: {edges: [[\"0\", 1]]}\n"
        );
    }

    #[test]
    fn self_loop() {
        assert_error!(
            "self_loop",
            "name: lab\nnodes: 4\ntopology:\n  edges:\n    - [n0, n1]\n    - [n1, 1]\n"
        );
    }

    #[test]
    fn duplicate_edges() {
        assert_error!(
            "duplicate_edge_reversed",
            include_str!("../../../../tests/data/bad/duplicate-edge.yaml")
        );
        assert_error!(
            "duplicate_edge_same_direction",
            "name: lab\nnodes: 4\ntopology:\n  edges:\n    - [n0, n1]\n    - [0, 1]\n"
        );
    }

    #[test]
    fn node_count_out_of_range() {
        assert_error!("nodes_zero", "name: lab\nnodes: 0\n");
        assert_error!("nodes_negative", "name: lab\nnodes: -3\n");
        assert_error!("nodes_too_many", "name: lab\nnodes: 1001\n");
        assert_error!("nodes_empty_list", "name: lab\nnodes: []\n");
        let mut source = String::from("name: lab\nnodes:\n");
        for i in 0..=MAX_NODES {
            source += &format!("  - name: n{i}\n");
        }
        // Plain snapshot: the 1001-entry source would swamp the description.
        insta::assert_snapshot!("nodes_list_too_long", err(&source).to_string());
    }

    #[test]
    fn bad_arguments() {
        assert_error!(
            "reserved_arg_in_defaults",
            include_str!("../../../../tests/data/bad/reserved-arg.yaml")
        );
        assert_error!(
            "reserved_arg_in_node",
            "name: lab\nnodes:\n  - name: a\n    args: [-debug=net, -uacomment=me]\n"
        );
        assert_error!(
            "reserved_arg_negated",
            "name: lab\ndefaults: {args: [-nolisten]}\nnodes: 1\n"
        );
        assert_error!(
            "reserved_arg_with_section",
            "name: lab\ndefaults: {args: [--regtest.port=1]}\nnodes: 1\n"
        );
        assert_error!(
            "arg_without_dash",
            "name: lab\ndefaults: {args: [dbcache=4]}\nnodes: 1\n"
        );
        assert_error!(
            "arg_only_dashes",
            "name: lab\ndefaults: {args: [\"--\"]}\nnodes: 1\n"
        );
    }

    #[test]
    fn bad_images() {
        assert_error!(
            "image_empty",
            "name: lab\ndefaults: {image: ''}\nnodes: 1\n"
        );
        assert_error!(
            "image_with_space",
            "name: lab\nnodes:\n  - name: a\n    image: \"bitcoind knots\"\n"
        );
    }

    #[test]
    fn yaml_level_errors() {
        assert_error!("empty_document", "");
        assert_error!("comment_only_document", "# nothing here\n");
        assert_error!("unclosed_bracket", "name: lab\nnodes: [{name: a}\n");
        assert_error!("bad_indentation", "name: lab\nnodes: 2\n  topology: ring\n");
        assert_error!("duplicate_key", "name: lab\nnodes: 2\nname: other\n");
        assert_error!("two_documents", "name: lab\nnodes: 2\n---\nname: other\n");
        assert_error!("unknown_anchor", "name: lab\nnodes: *count\n");
    }

    #[test]
    fn oversized_source_is_refused_before_parsing() {
        // Invalid YAML past the limit proves the parser never ran.
        let source = format!("name: [\n#{}", "x".repeat(MAX_SOURCE_BYTES));
        insta::assert_snapshot!("too_large", err(&source).to_string());
    }

    #[test]
    fn billion_laughs_fails_fast() {
        let mut source = String::from("name: lab\nnodes: 1\n");
        source += "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            source += &format!("a{i}: &a{i} [{refs}]\n");
        }
        insta::assert_snapshot!("billion_laughs", err(&source).to_string());
    }

    #[test]
    fn nested_anchors_fail_fast() {
        // No alias at all: every value is kept once for each of the 30 anchors around it.
        let source = format!(
            "name: lab\nnodes: 1\nx: {}{}{}\n",
            (0..30).map(|i| format!("&a{i} [")).collect::<String>(),
            vec!["1"; 60_000].join(", "),
            "]".repeat(30)
        );
        insta::assert_snapshot!("nested_anchors", err(&source).to_string());
    }

    #[test]
    fn comments_are_not_values() {
        let source = format!("name: lab\nnodes: 1\n{}", "#\n".repeat(3 * MAX_YAML_NODES));
        assert!(source.len() <= MAX_SOURCE_BYTES);
        assert_eq!(ok(&source).nodes.len(), 1);
    }

    #[test]
    fn non_finite_floats_are_text() {
        let spec = ok("name: lab\ndefaults: {args: [-.inf]}\nnodes: 1\n");
        assert_eq!(spec.nodes[0].args, ["-.inf"]);
        assert_eq!(
            err("name: lab\nnodes: 1e999\n").message,
            "`nodes` must be a node count or a list of nodes, found string `.inf`"
        );
    }

    #[test]
    fn deep_nesting_fails_fast() {
        let depth = 10_000;
        let flow_seq = format!(
            "name: lab\nnodes: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        insta::assert_snapshot!("deep_flow_sequence", err(&flow_seq).to_string());
        let flow_map = format!(
            "name: lab\nnodes: {}1{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        );
        insta::assert_snapshot!("deep_flow_mapping", err(&flow_map).to_string());
        let block_seq = format!("name: lab\nnodes:\n{}x\n", "- ".repeat(depth));
        insta::assert_snapshot!("deep_block_sequence", err(&block_seq).to_string());
    }
}
