//! A cluster as a docker-compose file: the same nodes, images, lab settings, limits and hardening on
//! one network with static addresses, the topology wired at start-up by `-connect` — a static
//! baseline for users who have only compose, with no partitions and no RPC from outside.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::core::cluster::blueprint::{self, Networks, DATADIR, P2P_PORT, PIDS_LIMIT};
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::cluster::subnet::Subnet;

/// The label every exported service, network and volume carries, valued with the cluster's name.
pub const LABEL_EXPORT: &str = "regbox.export";
/// The one network of an exported cluster.
const NETWORK: &str = "lab";

#[derive(Serialize)]
struct File {
    version: &'static str,
    services: BTreeMap<String, Service>,
    networks: BTreeMap<&'static str, Network>,
    volumes: BTreeMap<String, Volume>,
}

#[derive(Serialize)]
struct Service {
    image: String,
    entrypoint: Vec<String>,
    command: Vec<String>,
    environment: Vec<String>,
    init: bool,
    read_only: bool,
    tmpfs: Vec<String>,
    cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    security_opt: Vec<String>,
    mem_limit: u64,
    memswap_limit: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpus: Option<f64>,
    pids_limit: i64,
    volumes: Vec<String>,
    networks: BTreeMap<&'static str, Address>,
    labels: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Address {
    ipv4_address: String,
}

#[derive(Serialize)]
struct Network {
    ipam: Ipam,
    labels: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Ipam {
    config: Vec<BTreeMap<&'static str, String>>,
}

#[derive(Serialize)]
struct Volume {
    labels: BTreeMap<&'static str, String>,
}

/// The compose file (format 2.4, which docker-compose 1.27+ and Compose v2 read) for `spec`, whose
/// images must be exact, on `subnet`. Each node runs with the lab settings regbox gives it, except
/// that RPC answers inside its container only (`docker exec … bitcoin-cli -regtest -datadir=/data`,
/// cookie authentication), and dials the peers its edges name with `-connect`.
pub fn render(spec: &ClusterSpec, subnet: Subnet) -> String {
    let nets = Networks {
        control: subnet,
        data: subnet,
        rpcauth: String::new(),
        init_token: String::new(),
    };
    let layouts = blueprint::nodes(spec, &nets);
    let label = || BTreeMap::from([(LABEL_EXPORT, spec.name.clone())]);
    let mut services = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    for l in &layouts {
        let peers: Vec<String> = spec
            .edges
            .iter()
            .filter(|e| e.from == l.index)
            .map(|e| format!("-connect={}:{P2P_PORT}", layouts[e.to].data_ip))
            .collect();
        // `-connect=PEER` (retried every half second, while `-addnode` waits a minute after a
        // peer that was not up yet) replaces `-connect=0` on a node that dials anyone.
        let replaced: &[&str] = if peers.is_empty() {
            &["-rpcbind=", "-rpcallowip=", "-rpcauth="]
        } else {
            &["-rpcbind=", "-rpcallowip=", "-rpcauth=", "-connect="]
        };
        let mut command: Vec<String> = l
            .args
            .iter()
            .filter(|a| !replaced.iter().any(|p| a.starts_with(p)))
            .cloned()
            .collect();
        command.extend(["-rpcbind=127.0.0.1".into(), "-rpcallowip=127.0.0.1".into()]);
        command.extend(peers);
        let volume = format!("{}-data", l.name);
        volumes.insert(volume.clone(), Volume { labels: label() });
        services.insert(
            l.name.clone(),
            Service {
                image: l.image.clone(),
                entrypoint: vec!["bitcoind".into()],
                command,
                environment: l.env.clone(),
                init: true,
                read_only: true,
                tmpfs: vec!["/tmp:rw,noexec,nosuid,size=16m".into()],
                cap_drop: vec!["ALL".into()],
                cap_add: if l.as_root {
                    vec!["DAC_OVERRIDE".into()]
                } else {
                    vec![]
                },
                user: l.as_root.then(|| "0:0".into()),
                security_opt: vec!["no-new-privileges".into()],
                mem_limit: l.resources.memory,
                memswap_limit: l.resources.memory,
                cpus: l.resources.nano_cpus.map(|n| n as f64 / 1e9),
                pids_limit: PIDS_LIMIT,
                volumes: vec![format!("{volume}:{DATADIR}")],
                networks: BTreeMap::from([(
                    NETWORK,
                    Address {
                        ipv4_address: l.data_ip.to_string(),
                    },
                )]),
                labels: label(),
            },
        );
    }
    let file = File {
        version: "2.4",
        services,
        networks: BTreeMap::from([(
            NETWORK,
            Network {
                ipam: Ipam {
                    config: vec![BTreeMap::from([
                        ("subnet", subnet.to_string()),
                        ("ip_range", subnet.dynamic_range().to_string()),
                    ])],
                },
                labels: label(),
            },
        )]),
        volumes,
    };
    let header = format!(
        "# Cluster `{}` as written by `regbox export compose`: {} nodes, {} edges wired by -connect at\n\
         # start-up. Run it with `docker-compose -p {} up -d`; ask a node with\n\
         # `docker-compose -p {} exec n0 bitcoin-cli -regtest -datadir=/data getpeerinfo`.\n",
        spec.name,
        spec.nodes.len(),
        spec.edges.len(),
        spec.name,
        spec.name
    );
    header
        + &serde_saphyr::to_string(&file).expect("a compose file of strings and numbers serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cluster::manifest::parse;

    #[test]
    fn every_node_becomes_a_service_that_dials_its_edges() {
        let spec = parse(
            "name: lab\nnodes: 3\ntopology: line\ndefaults: {image: regbox/bitcoind:knots-29.4}\n",
            "t.yaml",
        )
        .unwrap();
        let subnet: Subnet = "10.77.1.0/24".parse().unwrap();
        let text = render(&spec, subnet);
        let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(doc["version"], "2.4");
        let services = doc["services"].as_object().unwrap();
        assert_eq!(services.keys().collect::<Vec<_>>(), ["n0", "n1", "n2"]);
        let command = |s: &str| -> Vec<String> {
            services[s]["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        };
        let n1 = services["n1"]["networks"]["lab"]["ipv4_address"]
            .as_str()
            .unwrap();
        let n2 = services["n2"]["networks"]["lab"]["ipv4_address"]
            .as_str()
            .unwrap();
        assert!(command("n0").contains(&format!("-connect={n1}:18444")));
        assert!(!command("n0").contains(&"-connect=0".to_string()));
        assert!(command("n1").contains(&format!("-connect={n2}:18444")));
        assert_eq!(
            command("n2")
                .iter()
                .filter(|a| a.starts_with("-connect"))
                .collect::<Vec<_>>(),
            ["-connect=0"]
        );
        for s in ["n0", "n1", "n2"] {
            let c = command(s);
            assert!(c.contains(&"-rpcbind=127.0.0.1".to_string()), "{c:?}");
            assert!(!c.iter().any(|a| a.starts_with("-rpcauth")), "{c:?}");
            assert_eq!(services[s]["image"], "regbox/bitcoind:knots-29.4");
            assert_eq!(services[s]["read_only"], true);
        }
        assert_eq!(
            doc["networks"]["lab"]["ipam"]["config"][0]["subnet"],
            "10.77.1.0/24"
        );
        assert_eq!(doc["volumes"].as_object().unwrap().len(), 3);
    }
}
