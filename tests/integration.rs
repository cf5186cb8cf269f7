//! Integration tests against the real Docker engine and real bitcoind: every test brings up its own
//! uniquely named cluster, checks what the nodes themselves report, and removes everything it made —
//! also when it fails (a drop guard tears the cluster down).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use regbox::cluster::{self, Cluster, UpOptions};
use regbox::manifest::{self, ClusterSpec};
use regbox::progress::Progress;
use regbox::topology::Graph;

/// What the engine holds, read straight through bollard rather than regbox's own facade: an outside
/// view for the checks.
mod outside {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use bollard::query_parameters::{
        ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    };
    use regbox::core::subnet::Subnet;

    pub struct Container {
        pub id: String,
        pub name: String,
        pub running: bool,
        pub labels: HashMap<String, String>,
        pub networks: HashMap<String, Option<Ipv4Addr>>,
    }

    pub struct Network {
        pub name: String,
        pub subnets: Vec<Subnet>,
    }

    fn engine() -> bollard::Docker {
        bollard::Docker::connect_with_defaults()
            .expect("these tests need a reachable Docker engine")
    }

    fn filter(cluster: Option<&str>) -> HashMap<&'static str, Vec<String>> {
        let label = cluster.map_or("regbox.cluster".to_string(), |c| {
            format!("regbox.cluster={c}")
        });
        HashMap::from([("label", vec![label])])
    }

    /// The cluster's containers, stopped ones included.
    pub async fn containers(cluster: &str) -> Vec<Container> {
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filter(Some(cluster)))
            .build();
        engine()
            .list_containers(Some(opts))
            .await
            .unwrap()
            .into_iter()
            .map(|c| Container {
                id: c.id.unwrap_or_default(),
                name: c.names.unwrap_or_default()[0]
                    .trim_start_matches('/')
                    .to_string(),
                running: c.state.map(|s| s.to_string()).as_deref() == Some("running"),
                labels: c.labels.unwrap_or_default(),
                networks: c
                    .network_settings
                    .and_then(|s| s.networks)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(net, ep)| (net, ep.ip_address.and_then(|ip| ip.parse().ok())))
                    .collect(),
            })
            .collect()
    }

    /// The networks of one cluster, or of every cluster.
    pub async fn networks(cluster: Option<&str>) -> Vec<Network> {
        let opts = ListNetworksOptionsBuilder::new()
            .filters(&filter(cluster))
            .build();
        engine()
            .list_networks(Some(opts))
            .await
            .unwrap()
            .into_iter()
            .map(|n| Network {
                name: n.name.unwrap_or_default(),
                subnets: n
                    .ipam
                    .and_then(|i| i.config)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.subnet?.parse().ok())
                    .collect(),
            })
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Makes a network by hand, as a leak or another tool would, on the first free /24 of 10.254/16.
    /// Docker 20.10 takes a second network of a name that exists.
    pub async fn create_network(name: &str, pairs: &[(&str, &str)]) {
        use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
        for k in 0..=255 {
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(format!("10.254.{k}.0/24")),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                labels: Some(labels(pairs)),
                ..Default::default()
            };
            match engine().create_network(request).await {
                Ok(_) => return,
                Err(e) if e.to_string().contains("overlaps") => continue,
                Err(e) => panic!("create network {name}: {e}"),
            }
        }
        panic!("no free /24 in 10.254.0.0/16");
    }

    /// Creates a never-started container named `name` with these labels (a lock made by hand).
    pub async fn create_marker(name: &str, image: &str, pairs: &[(&str, &str)]) {
        use bollard::models::ContainerCreateBody;
        use bollard::query_parameters::CreateContainerOptionsBuilder;
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            labels: Some(labels(pairs)),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new().name(name).build();
        engine().create_container(Some(opts), body).await.unwrap();
    }

    /// The files of `image`, as the tar stream of a never-started container made from it.
    pub async fn export(image: &str, name: &str) -> Vec<u8> {
        use futures::TryStreamExt;
        create_marker(name, image, &[]).await;
        let bytes: Vec<bytes::Bytes> = engine().export_container(name).try_collect().await.unwrap();
        remove_container(name).await;
        bytes.concat()
    }

    /// A container's settings as the engine reports them, and the uids its processes run as.
    pub async fn inspect(name: &str) -> (bollard::models::ContainerInspectResponse, Vec<String>) {
        use bollard::query_parameters::TopOptionsBuilder;
        let info = engine().inspect_container(name, None).await.unwrap();
        let top = engine()
            .top_processes(
                name,
                Some(TopOptionsBuilder::new().ps_args("-o uid,pid,comm").build()),
            )
            .await
            .unwrap();
        let uids = top
            .processes
            .unwrap_or_default()
            .into_iter()
            .map(|p| p[0].clone())
            .collect();
        (info, uids)
    }

    /// Gives an image a second name.
    pub async fn tag(image: &str, repo: &str, tag: &str) {
        use bollard::query_parameters::TagImageOptionsBuilder;
        let opts = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        engine().tag_image(image, Some(opts)).await.unwrap();
    }

    pub async fn untag(image: &str) {
        engine()
            .remove_image(
                image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .unwrap();
    }

    /// Kills a container from outside regbox (SIGKILL).
    pub async fn kill(name: &str) {
        engine()
            .kill_container(
                name,
                None::<bollard::query_parameters::KillContainerOptions>,
            )
            .await
            .unwrap();
    }

    pub async fn remove_container(name: &str) {
        use bollard::query_parameters::RemoveContainerOptionsBuilder;
        let opts = RemoveContainerOptionsBuilder::new().force(true).build();
        engine().remove_container(name, Some(opts)).await.unwrap();
    }

    /// The cluster's volumes.
    pub async fn volumes(cluster: &str) -> Vec<String> {
        let opts = ListVolumesOptionsBuilder::new()
            .filters(&filter(Some(cluster)))
            .build();
        engine()
            .list_volumes(Some(opts))
            .await
            .unwrap()
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect()
    }
}

const TEST_TIMEOUT: Duration = Duration::from_secs(300);
const WAIT: Duration = Duration::from_secs(60);

/// A cluster name no other test (or earlier run) uses: the library's helper for parallel tests.
fn unique(tag: &str) -> String {
    regbox::unique_name(tag)
}

/// Builds the node image once per test binary, before any test brings a cluster up, so tests running in
/// parallel don't all build it at once.
fn ensure_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        // The library makes the fault agent's image from a regbox binary: the one under test.
        std::env::set_var("REGBOX_BIN", env!("CARGO_BIN_EXE_regbox"));
        std::thread::spawn(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                regbox::image::ensure(manifest::DEFAULT_IMAGE, &Progress::default())
                    .await
                    .expect("node image")
            })
        })
        .join()
        .expect("image build thread")
    })
}

/// A file written for a test in a directory of its own, which goes when the value is dropped — also
/// when the test fails.
struct TempFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl TempFile {
    fn new(file_name: &str, text: &str) -> TempFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name);
        std::fs::write(&path, text).unwrap();
        TempFile { _dir: dir, path }
    }

    fn to_str(&self) -> Option<&str> {
        self.path.to_str()
    }

    fn display(&self) -> std::path::Display<'_> {
        self.path.display()
    }
}

impl AsRef<std::ffi::OsStr> for TempFile {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path.as_os_str()
    }
}

/// Removes a cluster when dropped, so a failing test leaves nothing behind.
struct Teardown(String);

impl Drop for Teardown {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                match cluster::down_named(Some(&name), &Progress::default()).await {
                    Ok(_) | Err(cluster::Error::UnknownCluster(_)) => {}
                    Err(e) => eprintln!("teardown of {name} failed: {e}"),
                }
            })
        })
        .join();
    }
}

/// Gives the node image a second name for a test, and takes that name away when dropped.
struct Alias(String);

impl Alias {
    async fn new(repo: &str, tag: &str) -> Alias {
        outside::tag(ensure_image(), repo, tag).await;
        Alias(format!("{repo}:{tag}"))
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(outside::untag(&name))
        })
        .join();
    }
}

/// Runs a test body with a time limit, after making sure the image exists.
fn run<F: Future<Output = ()>>(body: F) {
    ensure_image();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        tokio::time::timeout(TEST_TIMEOUT, body)
            .await
            .expect("test timed out");
    });
}

fn load(file: &str, name: &str) -> ClusterSpec {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let read = |named: &str| std::fs::read_to_string(dir.join(named)).map_err(|e| e.to_string());
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut spec = manifest::parse_reading(&text, file, &read).unwrap();
    spec.name = name.to_string();
    spec
}

fn cluster_spec(name: &str, n: usize, topology: &str) -> ClusterSpec {
    let yaml = format!("name: {name}\nnodes: {n}\ntopology: {topology}\n");
    manifest::parse(&yaml, "inline").unwrap()
}

fn ring(name: &str, n: usize) -> ClusterSpec {
    cluster_spec(name, n, "ring")
}

async fn up(spec: ClusterSpec) -> (Cluster, Teardown) {
    let guard = Teardown(spec.name.clone());
    let cluster = Cluster::up(spec, &UpOptions::default())
        .await
        .expect("cluster comes up");
    (cluster, guard)
}

/// Every container, volume and network carrying the cluster's label.
async fn leftovers(name: &str) -> Vec<String> {
    let mut left: Vec<String> = outside::containers(name)
        .await
        .into_iter()
        .map(|c| c.name)
        .collect();
    left.extend(outside::volumes(name).await);
    left.extend(
        outside::networks(Some(name))
            .await
            .into_iter()
            .map(|n| n.name),
    );
    left
}

async fn graph(cluster: &Cluster) -> Graph {
    let (graph, unknown) = cluster.peer_graph().await.unwrap();
    assert!(unknown.is_empty(), "unidentified peers: {unknown:?}");
    graph
}

#[test]
fn ring4_comes_up_verified_mines_to_all_and_goes_down_without_leftovers() {
    run(async {
        let name = unique("ring4");
        let (cluster, _guard) = up(load("ring4.yaml", &name)).await;
        // The nodes themselves report exactly the ring.
        let g = graph(&cluster).await;
        let mut edges: Vec<_> = g.edges().collect();
        edges.sort();
        assert_eq!(edges, vec![(0, 1), (0, 3), (1, 2), (2, 3)]);

        let hashes = cluster.mine("n0", 101).await.unwrap();
        assert_eq!(hashes.len(), 101);
        let tip = cluster.sync_blocks(WAIT).await.unwrap();
        assert_eq!(&tip, hashes.last().unwrap());
        for status in cluster.status().await.unwrap() {
            assert_eq!(status.height, Some(101), "{status:?}");
            assert_eq!(status.peers.len(), 2, "{status:?}");
        }

        let report = cluster.down(&Progress::default()).await.unwrap();
        assert_eq!(
            (report.containers, report.volumes, report.networks),
            (5, 4, 2)
        );
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn every_example_manifest_comes_up_with_its_declared_graph() {
    run(async {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".yaml") && !f.ends_with(".scenario.yaml"))
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{files:?}");
        for file in files {
            let spec = load(&file, &unique("ex"));
            // A manifest across hosts needs the lab of engines: tests/multihost.rs brings it up.
            if !spec.hosts.is_empty() {
                continue;
            }
            let declared = spec.graph();
            let (cluster, _guard) = up(spec).await;
            assert_eq!(graph(&cluster).await, declared, "{file}");
            cluster.down(&Progress::default()).await.unwrap();
        }
    });
}

#[test]
fn connect_and_disconnect_change_the_graph_as_nodes_report_it() {
    run(async {
        let name = unique("wire");
        let spec = cluster_spec(&name, 3, "line");
        let (mut cluster, _guard) = up(spec).await;
        assert!(!graph(&cluster).await.contains(0, 2));

        cluster.connect("n0", "2", WAIT).await.unwrap();
        let g = graph(&cluster).await;
        assert!(g.contains(0, 2) && g.contains(0, 1) && g.contains(1, 2));

        cluster.disconnect("n1", "n0", WAIT).await.unwrap();
        let g = graph(&cluster).await;
        assert!(!g.contains(0, 1) && g.contains(0, 2) && g.contains(1, 2));
        // The declared graph no longer holds, and verify says exactly how.
        let err = cluster.verify(false).await.unwrap_err().to_string();
        assert!(
            err.contains("missing n0-n1") && err.contains("extra n0-n2"),
            "{err}"
        );

        // Unknown nodes are refused as bad input.
        let err = cluster.connect("n0", "n9", WAIT).await.unwrap_err();
        assert!(err.is_bad_input(), "{err}");
    });
}

#[test]
fn up_on_an_existing_cluster_brings_it_to_the_declared_state() {
    run(async {
        let name = unique("reup");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster.disconnect("n0", "n1", WAIT).await.unwrap();
        cluster.connect("n0", "n2", WAIT).await.unwrap();
        cluster.mine("n3", 5).await.unwrap();

        // Same manifest again: the graph is repaired, nothing is recreated (the chain survives).
        let again = Cluster::up(ring(&name, 4), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(graph(&again).await, again.spec().graph());
        assert_eq!(again.sync_blocks(WAIT).await.unwrap().len(), 64);
        assert!(again
            .status()
            .await
            .unwrap()
            .iter()
            .all(|s| s.height == Some(5)));

        // A bigger manifest adds a node and rewires; no container is duplicated.
        let bigger = Cluster::up(ring(&name, 5), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(graph(&bigger).await, bigger.spec().graph());
        let containers = outside::containers(&name).await;
        assert_eq!(containers.len(), 6, "5 nodes and the metadata container");

        // A smaller one removes the node that is no longer declared.
        let smaller = Cluster::up(ring(&name, 3), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(graph(&smaller).await, smaller.spec().graph());
        assert_eq!(outside::containers(&name).await.len(), 4);
    });
}

#[test]
fn two_clusters_run_side_by_side_without_touching_each_other() {
    run(async {
        let (a, b) = (unique("a"), unique("b"));
        // Brought up at the same moment: they race for subnets and must both win one.
        let ((ca, _ga), (cb, _gb)) = tokio::join!(up(ring(&a, 3)), up(ring(&b, 3)));
        let nets = outside::networks(None).await;
        let subnets: Vec<_> = nets
            .iter()
            .filter(|n| n.name.contains(&a) || n.name.contains(&b))
            .flat_map(|n| n.subnets.clone())
            .collect();
        assert_eq!(subnets.len(), 4);
        for (i, x) in subnets.iter().enumerate() {
            for y in &subnets[i + 1..] {
                assert!(!x.overlaps(y), "{x} overlaps {y}");
            }
        }

        ca.mine("n0", 3).await.unwrap();
        ca.sync_blocks(WAIT).await.unwrap();
        assert!(
            cb.status()
                .await
                .unwrap()
                .iter()
                .all(|s| s.height == Some(0)),
            "b saw a's blocks"
        );

        ca.down(&Progress::default()).await.unwrap();
        assert!(leftovers(&a).await.is_empty());
        // b is untouched: still running, still wired.
        assert_eq!(graph(&cb).await, cb.spec().graph());
        assert_eq!(leftovers(&b).await.len(), 3 + 1 + 3 + 2);
    });
}

#[test]
fn a_node_that_exits_fails_up_at_once_with_its_log_and_nothing_is_left() {
    run(async {
        let name = unique("crash");
        let yaml = format!("name: {name}\nnodes:\n  - name: ok\n  - name: bad\n    args: [\"-nosuchoption=1\"]\ntopology: line\n");
        let spec = manifest::parse(&yaml, "inline").unwrap();
        let _guard = Teardown(name.clone());
        let started = std::time::Instant::now();
        let err = Cluster::up(spec, &UpOptions::default())
            .await
            .err()
            .expect("up fails");
        let text = err.to_string();
        assert!(text.contains("node `bad` stopped while starting"), "{text}");
        assert!(
            text.contains("nosuchoption"),
            "the log names the bad option: {text}"
        );
        assert!(text.contains("removed what this run created"), "{text}");
        // Far below the readiness timeout: the exit was noticed, not waited out.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// The regbox binary, killed if the test gives up on it (every test runs under a time limit).
/// Sends Ctrl-C (SIGINT) to a running regbox.
fn interrupt(child: &tokio::process::Child) {
    let pid = child
        .id()
        .expect("the process is still running")
        .to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
}

fn regbox() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_regbox"));
    cmd.kill_on_drop(true);
    cmd
}

/// `regbox -c NAME run [FILE] --junit …`: the process output and the JUnit XML it wrote.
async fn run_scenario(name: &str, file: Option<&Path>) -> (std::process::Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let mut cmd = regbox();
    cmd.args(["-c", name, "run"]);
    if let Some(file) = file {
        cmd.arg(file);
    }
    let out = cmd.arg("--junit").arg(&junit).output().await.unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    (out, xml)
}

/// Runs regbox and returns its stdout, failing the test on a non-zero exit.
async fn ok(args: &[&str]) -> String {
    let out = regbox().args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn ok_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args).await).unwrap()
}

#[test]
fn a_bad_manifest_is_refused_with_its_location_and_creates_nothing() {
    run(async {
        let name = unique("bad");
        let cases = [
            (
                format!("name: {name}\nnodes: 4\ntopology: {{ edges: [[0, 1], [1, 9]] }}\n"),
                ":3:",
                "unknown node",
            ),
            (
                format!("name: {name}\nnodes: 4\nnodez: 3\n"),
                ":3:1",
                "unknown field",
            ),
            (
                format!("name: {name}\nnodes: 0\n"),
                ":2:",
                "between 1 and 1000",
            ),
            (
                format!("name: {name}\nnodes:\n  - name: a\n    resources: {{ memory: 1t }}\n"),
                ":4:26",
                "invalid memory",
            ),
        ];
        for (i, (yaml, location, message)) in cases.iter().enumerate() {
            let file = TempFile::new(&format!("bad{i}.yaml"), yaml);
            let out = regbox().arg("up").arg(&file).output().await.unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{stderr}");
            assert!(
                stderr.contains(&format!("bad{i}.yaml{location}")),
                "{stderr}"
            );
            assert!(stderr.contains(message), "{stderr}");
        }
        assert_eq!(leftovers(&name).await, Vec::<String>::new());

        // A scenario is validated whole — node names included — before any container exists.
        let yaml = "cluster: { name: x, nodes: 2 }\nsteps:\n  - mine: { node: n0, blocks: 1 }\n  - stop: n7\n";
        let file = TempFile::new(&format!("{name}.scenario.yaml"), yaml);
        let out = regbox()
            .args(["-c", &name, "run"])
            .arg(&file)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(".scenario.yaml:4:"), "{stderr}");
        assert_eq!(leftovers(&name).await, Vec::<String>::new());

        // Unknown clusters and bad arguments are bad input too.
        let out = regbox().args(["status", &name]).output().await.unwrap();
        assert_eq!(out.status.code(), Some(2));
        let out = regbox()
            .args(["mine", "n0", "many"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
    });
}

#[test]
fn the_cli_drives_a_cluster_end_to_end() {
    run(async {
        let name = unique("cli");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "star.yaml",
            &format!("name: {name}\nnodes: 3\ntopology: star\n"),
        );
        let status = ok_json(&["up", file.to_str().unwrap(), "--json"]).await;
        assert_eq!(status.as_array().unwrap().len(), 3);
        assert_eq!(status[0]["peers"], serde_json::json!(["n1", "n2"]));

        let ls = ok_json(&["ls", "--json"]).await;
        let me = ls
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name.as_str())
            .expect("listed");
        assert_eq!(me["running"], 3);

        let mined = ok_json(&["-c", &name, "mine", "n1", "3", "--json"]).await;
        assert_eq!(mined["height"], 3);
        ok(&["sync", &name]).await;
        assert_eq!(
            ok(&["-c", &name, "rpc", "n2", "getblockcount"])
                .await
                .trim(),
            "3"
        );
        let hash = ok(&["-c", &name, "rpc", "n2", "getblockhash", "3"]).await;
        assert_eq!(hash.trim(), mined["blocks"][2].as_str().unwrap());
        let err = regbox()
            .args(["-c", &name, "rpc", "n2", "nosuchmethod"])
            .output()
            .await
            .unwrap();
        assert_eq!(err.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&err.stderr).contains("-32601"));

        ok(&["-c", &name, "disconnect", "n0", "n1"]).await;
        let status = ok_json(&["status", &name, "--json"]).await;
        assert_eq!(status[0]["peers"], serde_json::json!(["n2"]));
        ok(&["-c", &name, "connect", "n1", "n0"]).await;

        let logs = ok(&["-c", &name, "logs", "n0", "--tail", "50"]).await;
        assert!(logs.contains("UpdateTip"), "{logs}");

        let down = ok_json(&["down", &name, "--json"]).await;
        assert_eq!(down["containers"], 4);
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn ctrl_c_during_up_removes_what_the_run_created() {
    run(async {
        let name = unique("intr");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "mesh.yaml",
            &format!("name: {name}\nnodes: 12\ntopology: mesh\n"),
        );
        let mut child = regbox().arg("up").arg(&file).spawn().unwrap();
        // Interrupt as soon as the first node container exists.
        loop {
            let containers = outside::containers(&name).await;
            if containers
                .iter()
                .any(|c| c.labels.contains_key("regbox.node"))
            {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "up finished before it could be interrupted"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        interrupt(&child);
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(130));
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

// ---------------------------------------------------------------------------------------------------
// Partitions, heal, faults and scenarios.

use regbox::partition::{CutMode, PartitionKind};

fn edges(g: &Graph) -> Vec<(usize, usize)> {
    let mut e: Vec<_> = g.edges().collect();
    e.sort();
    e
}

async fn tips(cluster: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    for n in cluster.nodes() {
        out.push(n.rpc.get_best_block_hash().await.unwrap());
    }
    out
}

/// Every node's peer ids, sorted: unchanged ids mean untouched sessions.
async fn peer_ids(cluster: &Cluster) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for n in cluster.nodes() {
        let mut ids: Vec<i64> = n
            .rpc
            .get_peer_info()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        ids.sort();
        out.push(ids);
    }
    out
}

/// Mines on `miner`, waits until its own side has the block, and checks that no node of `other` has it.
async fn isolation_shown_by_the_chain(
    cluster: &Cluster,
    miner: usize,
    side: &[usize],
    other: &[usize],
) {
    let before = tips(cluster).await;
    let hash = cluster
        .mine(&miner.to_string(), 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let side_nodes: Vec<_> = side.iter().map(|&i| cluster.nodes()[i].clone()).collect();
    let tip = regbox::wait::sync_blocks(&side_nodes, WAIT).await.unwrap();
    assert_eq!(tip, hash);
    let after = tips(cluster).await;
    for &o in other {
        assert_eq!(
            after[o], before[o],
            "node {o} saw a block mined across the partition"
        );
    }
}

#[test]
fn halves_cut_the_ring_and_heal_reorganises_everyone_onto_the_most_work_tip() {
    run(async {
        let name = unique("halves");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster.mine("n0", 101).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();

        let report = cluster
            .partition(&PartitionKind::Halves, CutMode::Drop, WAIT)
            .await
            .unwrap();
        assert_eq!(report.segments.len(), 2);
        assert_eq!(
            report.segments[0].members,
            vec!["n0", "n1"],
            "the larger/first group stays on the base segment"
        );
        assert_eq!(report.segments[1].members, vec!["n2", "n3"]);
        // Drop mode: only the edges inside each half are left, as the nodes report them.
        assert_eq!(edges(&graph(&cluster).await), vec![(0, 1), (2, 3)]);
        isolation_shown_by_the_chain(&cluster, 0, &[0, 1], &[2, 3]).await;
        isolation_shown_by_the_chain(&cluster, 2, &[2, 3], &[0, 1]).await;
        cluster.mine("n2", 2).await.unwrap(); // the 2-3 side now has 3 blocks against 1

        // Applying the same partition again moves nothing and touches no session.
        let before = peer_ids(&cluster).await;
        let again = cluster
            .partition(&PartitionKind::Halves, CutMode::Drop, WAIT)
            .await
            .unwrap();
        assert_eq!(again.segments.len(), 2);
        assert_eq!(peer_ids(&cluster).await, before);

        let healed = cluster.heal_and_sync(WAIT).await.unwrap();
        assert_eq!(
            edges(&graph(&cluster).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );
        assert_eq!(healed.height, 104);
        let depth: Vec<u64> = healed.nodes.iter().map(|n| n.reorg_depth).collect();
        assert_eq!(depth, vec![1, 1, 0, 0]);
        // Every segment but the base one is gone, every node back on its original address.
        assert_eq!(outside::networks(Some(&name)).await.len(), 2);
        for c in outside::containers(&name).await {
            if let Some(node) = c.labels.get("regbox.node") {
                let i: usize = node[1..].parse().unwrap();
                let data = c
                    .networks
                    .get(&format!("regbox-{name}-data"))
                    .cloned()
                    .flatten();
                assert_eq!(data, Some(cluster.nodes()[i].layout.data_ip), "{node}");
            }
        }
    });
}

#[test]
fn every_generated_kind_and_explicit_groups_give_the_expected_graph() {
    run(async {
        let name = unique("kinds");
        let spec = cluster_spec(&name, 6, "mesh");
        let (mut cluster, _guard) = up(spec).await;
        cluster.mine("n0", 1).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        let all = |g: &[usize]| -> Vec<(usize, usize)> {
            let mut e = Vec::new();
            for (i, &a) in g.iter().enumerate() {
                for &b in &g[i + 1..] {
                    e.push((a.min(b), a.max(b)));
                }
            }
            e
        };
        let union = |parts: Vec<Vec<(usize, usize)>>| {
            let mut e: Vec<_> = parts.concat();
            e.sort();
            e.dedup();
            e
        };
        // Explicit groups; n4 and n5 are not named, so they form a third group.
        let groups = PartitionKind::Groups(vec![
            vec!["n0".into(), "1".into()],
            vec!["n2".into(), "n3".into()],
        ]);
        cluster
            .partition(&groups, CutMode::Drop, WAIT)
            .await
            .unwrap();
        assert_eq!(
            edges(&graph(&cluster).await),
            union(vec![all(&[0, 1]), all(&[2, 3]), all(&[4, 5])])
        );
        isolation_shown_by_the_chain(&cluster, 4, &[4, 5], &[0, 1, 2, 3]).await;

        // Replacing it: each kind applied on top of the previous one.
        cluster
            .partition(&PartitionKind::Isolate("n5".into()), CutMode::Drop, WAIT)
            .await
            .unwrap();
        assert_eq!(edges(&graph(&cluster).await), all(&[0, 1, 2, 3, 4]));
        isolation_shown_by_the_chain(&cluster, 0, &[0, 1, 2, 3, 4], &[5]).await;

        cluster
            .partition(&PartitionKind::Bridge, CutMode::Drop, WAIT)
            .await
            .unwrap();
        let report = cluster.report();
        let on_two: Vec<usize> = (0..6)
            .filter(|i| {
                report
                    .segments
                    .iter()
                    .filter(|s| s.members.contains(&format!("n{i}")))
                    .count()
                    == 2
            })
            .collect();
        assert_eq!(on_two.len(), 1, "one bridge node: {report:?}");
        let b = on_two[0];
        let halves: Vec<Vec<usize>> = report
            .segments
            .iter()
            .map(|s| s.members.iter().map(|m| m[1..].parse().unwrap()).collect())
            .collect();
        assert_eq!(halves.len(), 2);
        assert!(halves.iter().all(|h| h.contains(&b)));
        assert_eq!(
            edges(&graph(&cluster).await),
            union(halves.iter().map(|h| all(h)).collect())
        );

        cluster
            .partition(
                &PartitionKind::RandomHalves { seed: 7 },
                CutMode::Drop,
                WAIT,
            )
            .await
            .unwrap();
        let report = cluster.report();
        let halves: Vec<Vec<usize>> = report
            .segments
            .iter()
            .map(|s| s.members.iter().map(|m| m[1..].parse().unwrap()).collect())
            .collect();
        assert_eq!(halves.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3]);
        assert_eq!(
            edges(&graph(&cluster).await),
            union(halves.iter().map(|h| all(h)).collect())
        );

        // Majorities ring on 6: majority 4; each node sees itself and the nodes within ring distance 2,
        // so in a mesh exactly the pairs at distance 3 (opposite nodes) lose their connection.
        cluster
            .partition(&PartitionKind::MajoritiesRing, CutMode::Drop, WAIT)
            .await
            .unwrap();
        let expected: Vec<(usize, usize)> = all(&[0, 1, 2, 3, 4, 5])
            .into_iter()
            .filter(|&(a, b)| b - a != 3)
            .collect();
        assert_eq!(edges(&graph(&cluster).await), expected);

        cluster.heal(WAIT).await.unwrap();
        assert_eq!(edges(&graph(&cluster).await), all(&[0, 1, 2, 3, 4, 5]));
        cluster.sync_blocks(WAIT).await.unwrap();
    });
}

#[test]
fn silent_cut_freezes_sessions_and_heal_resumes_them_with_the_same_peer_ids() {
    run(async {
        let name = unique("silent");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        let ids = |peers: Vec<regbox::rpc::PeerInfo>| {
            let mut v: Vec<(i64, String)> = peers.into_iter().map(|p| (p.id, p.subver)).collect();
            v.sort();
            v
        };
        let mut before = Vec::new();
        for n in cluster.nodes() {
            before.push(ids(n.rpc.get_peer_info().await.unwrap()));
        }
        cluster
            .partition(&PartitionKind::Halves, CutMode::Silent, WAIT)
            .await
            .unwrap();
        // The cross sessions (n1-n2 and n3-n0) are still listed: no reset reached either side.
        let n1 = cluster
            .node("n1")
            .unwrap()
            .rpc
            .get_peer_info()
            .await
            .unwrap();
        assert!(
            n1.iter().any(|p| p.subver.contains("(n2)")),
            "n1 still lists n2"
        );
        // ...but no block crosses them.
        isolation_shown_by_the_chain(&cluster, 0, &[0, 1], &[2, 3]).await;

        cluster.heal(WAIT).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        // The base group's and the frozen cross sessions are the same sessions (same peer ids); only the
        // n2-n3 session, re-made over the partition segment and back, is new.
        let after_n1 = ids(cluster
            .node("n1")
            .unwrap()
            .rpc
            .get_peer_info()
            .await
            .unwrap());
        assert_eq!(after_n1, before[1]);
        let after_n0 = ids(cluster
            .node("n0")
            .unwrap()
            .rpc
            .get_peer_info()
            .await
            .unwrap());
        assert_eq!(after_n0, before[0]);
        assert_eq!(
            edges(&graph(&cluster).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );
    });
}

#[test]
fn heal_when_not_partitioned_and_invalid_partitions_change_nothing() {
    run(async {
        let name = unique("noop");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        let before = peer_ids(&cluster).await;
        cluster.heal(WAIT).await.unwrap();
        assert_eq!(
            peer_ids(&cluster).await,
            before,
            "heal of a healed cluster touched sessions"
        );

        let bad = [
            PartitionKind::Groups(vec![vec!["n0".into(), "n9".into()]]),
            PartitionKind::Groups(vec![
                vec!["n0".into(), "n1".into()],
                vec!["n1".into(), "n2".into()],
            ]),
            PartitionKind::Groups(vec![vec![
                "n0".into(),
                "n1".into(),
                "n2".into(),
                "n3".into(),
            ]]),
            PartitionKind::Groups(vec![vec![], vec!["n1".into()]]),
            PartitionKind::Isolate("zed".into()),
        ];
        for kind in &bad {
            let err = cluster
                .partition(kind, CutMode::Drop, WAIT)
                .await
                .unwrap_err();
            assert!(err.is_bad_input(), "{kind:?}: {err}");
        }
        // The CLI says exit 2 and nothing changes.
        let out = regbox()
            .args(["-c", &name, "partition", "n0,n1", "n1,n2"])
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = regbox()
            .args(["-c", &name, "partition", "--halves", "--bridge"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(outside::networks(Some(&name)).await.len(), 2);
        assert_eq!(peer_ids(&cluster).await, before);
    });
}

#[test]
fn node_faults_are_survived_and_rewired() {
    run(async {
        use regbox::fault::Fault;
        let name = unique("faults");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster.fault("n1", Fault::Stop, WAIT).await.unwrap();
        cluster.mine("n0", 2).await.unwrap();
        cluster.fault("n1", Fault::Start, WAIT).await.unwrap();
        assert_eq!(
            edges(&graph(&cluster).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );
        cluster.sync_blocks(WAIT).await.unwrap();

        cluster.fault("n2", Fault::Pause, WAIT).await.unwrap();
        cluster.fault("n2", Fault::Unpause, WAIT).await.unwrap();
        cluster.fault("n3", Fault::Kill, WAIT).await.unwrap();
        cluster.fault("n3", Fault::Start, WAIT).await.unwrap();
        cluster.fault("n0", Fault::Restart, WAIT).await.unwrap();
        cluster.verify(false).await.unwrap();
        cluster.mine("n3", 1).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        assert!(cluster
            .status()
            .await
            .unwrap()
            .iter()
            .all(|s| s.height == Some(3)));
    });
}

#[test]
fn every_example_scenario_passes_and_writes_junit() {
    run(async {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".scenario.yaml"))
            .collect();
        files.sort();
        assert!(files.len() >= 5, "{files:?}");
        // All of them in one run, one after another under one name, into one JUnit report.
        let name = unique("scn");
        let _guard = Teardown(name.clone());
        let dir = tempfile::tempdir().unwrap();
        let junit = dir.path().join("junit.xml");
        let out = regbox()
            .args(["-c", &name, "run"])
            .args(&files)
            .arg("--junit")
            .arg(&junit)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
        assert_eq!(stdout.matches("PASSED").count(), files.len(), "{stdout}");
        let xml = std::fs::read_to_string(&junit).unwrap();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("failures"), Some("0"), "{xml}");
        let suites: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        assert_eq!(suites.len(), files.len());
        for suite in suites {
            let props: Vec<(&str, &str)> = suite
                .descendants()
                .filter(|n| n.has_tag_name("property"))
                .map(|p| (p.attribute("name").unwrap(), p.attribute("value").unwrap()))
                .collect();
            assert!(props.contains(&("cluster", name.as_str())), "{props:?}");
            assert!(
                props
                    .iter()
                    .any(|(k, v)| *k == "image" && v.starts_with("regbox/bitcoind:")),
                "{props:?}"
            );
            let cases: Vec<_> = suite
                .children()
                .filter(|n| n.has_tag_name("testcase"))
                .collect();
            assert!(cases.len() >= 3, "cluster up, steps, teardown");
            assert!(cases
                .iter()
                .all(|c| c.children().all(|e| !e.has_tag_name("failure"))));
        }
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn the_default_scenario_passes_and_a_failing_step_fails_the_run_with_what_it_saw() {
    run(async {
        let name = unique("dflt");
        let _guard = Teardown(name.clone());
        let (out, _) = run_scenario(&name, None).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for step in [
            "mine n0 101",
            "split the ring",
            "heal",
            "longest chain wins",
            "PASSED",
        ] {
            assert!(stdout.contains(step), "{stdout}");
        }

        let file = TempFile::new(
            "failing.scenario.yaml",
            "cluster: { name: x, nodes: 2, topology: line }\nsteps:\n  - mine: { node: n0, blocks: 1 }\n  - assert: { height: 5, node: n1 }\n  - mine: { node: n0, blocks: 1 }\n",
        );
        let (out, xml) = run_scenario(&name, Some(&file.path)).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("FAIL") && stdout.contains("expected height 5"),
            "{stdout}"
        );
        assert!(
            stdout.contains("SKIP"),
            "the step after a failure is skipped: {stdout}"
        );
        let doc = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
        let failed = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap_or_else(|| panic!("no failure in {xml}"));
        assert!(
            failed
                .attribute("message")
                .unwrap()
                .starts_with("expected height 5"),
            "{xml}"
        );
        // The failed step's case keeps the nodes' last log lines.
        let case = failed.parent().unwrap();
        let out = case
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .and_then(|n| n.text())
            .unwrap_or_else(|| panic!("no system-out in {xml}"));
        assert!(out.contains("n0| ") && out.contains("n1| "), "{out}");
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("skipped"))
                .count(),
            1,
            "{xml}"
        );
        assert_eq!(
            leftovers(&name).await,
            Vec::<String>::new(),
            "torn down after a failure"
        );
    });
}

#[test]
fn a_dropped_cluster_handle_tears_the_cluster_down() {
    run(async {
        let name = unique("drop");
        let cluster = Cluster::up(ring(&name, 3), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(leftovers(&name).await.len(), 3 + 1 + 3 + 2);
        drop(cluster); // no `down`: the fallback removes it
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn up_on_a_partitioned_cluster_heals_it_back_to_the_declared_state() {
    run(async {
        let name = unique("uphl");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster
            .partition(&PartitionKind::Isolate("n2".into()), CutMode::Silent, WAIT)
            .await
            .unwrap();
        let again = Cluster::up(ring(&name, 4), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(
            edges(&graph(&again).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );
        assert_eq!(
            outside::networks(Some(&name)).await.len(),
            2,
            "the segment is gone"
        );
        again.keep();
    });
}

#[test]
fn ctrl_c_during_a_scenario_tears_down_and_exits_130() {
    run(async {
        let name = unique("rintr");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "waiting.scenario.yaml",
            "cluster: { name: x, nodes: 2, topology: line }\nsteps:\n  - wait: { height: 1, timeout: 120 }\n",
        );
        let mut child = regbox()
            .args(["-c", &name, "run"])
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Interrupt while the wait step runs: once both nodes exist and answer, the wait is the only thing left.
        loop {
            let running = outside::containers(&name)
                .await
                .iter()
                .filter(|c| c.running)
                .count();
            if running == 2 {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before it could be interrupted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        interrupt(&child);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("run stops")
            .unwrap();
        assert_eq!(out.code(), Some(130));
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

// ---------------------------------------------------------------------------------------------------
// Two commands on one cluster at once: one writer at a time, names never trusted, repairs.

/// Runs two regbox commands at the same moment; returns both outputs.
async fn at_once(a: &[&str], b: &[&str]) -> (std::process::Output, std::process::Output) {
    let (x, y) = tokio::join!(regbox().args(a).output(), regbox().args(b).output());
    (x.unwrap(), y.unwrap())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The cluster's peer graph as its nodes report it, after checking it is exactly the graph its
/// segments allow and that no network name is doubled; None when the cluster is gone (and then
/// nothing of it is left).
async fn settled(name: &str) -> Option<Vec<(usize, usize)>> {
    let cluster = match Cluster::open(Some(name)).await {
        Ok(c) => c,
        Err(cluster::Error::UnknownCluster(_)) => {
            assert_eq!(leftovers(name).await, Vec::<String>::new());
            return None;
        }
        Err(e) => panic!("open {name}: {e}"),
    };
    cluster
        .verify(false)
        .await
        .expect("the peer graph is the one the segments allow");
    let mut names: Vec<String> = outside::networks(Some(name))
        .await
        .into_iter()
        .map(|n| n.name)
        .collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count, "a network name is doubled: {names:?}");
    let g = edges(&graph(&cluster).await);
    cluster.keep();
    Some(g)
}

const RING6: [(usize, usize); 6] = [(0, 1), (0, 5), (1, 2), (2, 3), (3, 4), (4, 5)];
const HALVES6: [(usize, usize); 4] = [(0, 1), (1, 2), (3, 4), (4, 5)];
const ISOLATE0: [(usize, usize); 4] = [(1, 2), (2, 3), (3, 4), (4, 5)];

#[test]
fn racing_writers_take_turns_and_leave_one_of_the_intended_states() {
    run(async {
        let name = unique("race");
        let _guard = Teardown(name.clone());
        let manifest = TempFile::new(
            "ring.yaml",
            &format!("name: {name}\nnodes: 6\ntopology: ring\n"),
        );
        let file = manifest.to_str().unwrap().to_string();
        for round in 0..5 {
            // up/up: both succeed (the second waits, then finds nothing to do).
            let (a, b) = at_once(&["up", &file], &["up", &file]).await;
            assert!(
                a.status.success() && b.status.success(),
                "{}\n{}",
                stderr(&a),
                stderr(&b)
            );
            assert_eq!(settled(&name).await.unwrap(), RING6);

            // partition/partition: both succeed, and the one that ran last is in force.
            let (a, b) = at_once(
                &["partition", &name, "--halves"],
                &["-c", &name, "partition", "--isolate", "n0"],
            )
            .await;
            assert!(
                a.status.success() && b.status.success(),
                "{}\n{}",
                stderr(&a),
                stderr(&b)
            );
            let g = settled(&name).await.unwrap();
            assert!(g == HALVES6 || g == ISOLATE0, "round {round}: {g:?}");

            // partition/heal.
            let (a, b) = at_once(&["partition", &name, "--halves"], &["heal", &name]).await;
            assert!(
                a.status.success() && b.status.success(),
                "{}\n{}",
                stderr(&a),
                stderr(&b)
            );
            let g = settled(&name).await.unwrap();
            assert!(g == HALVES6 || g == RING6, "round {round}: {g:?}");

            // A fault during a partition: both apply, and n1 comes back inside the partition.
            let (a, b) = at_once(
                &["-c", &name, "stop", "n1"],
                &["partition", &name, "--halves"],
            )
            .await;
            assert!(
                a.status.success() && b.status.success(),
                "{}\n{}",
                stderr(&a),
                stderr(&b)
            );
            ok(&["-c", &name, "start", "n1"]).await;
            assert_eq!(settled(&name).await.unwrap(), HALVES6);

            // heal/down: the cluster ends removed; a heal that came second says so.
            let (a, b) = at_once(&["heal", &name], &["down", &name]).await;
            assert!(b.status.success(), "{}", stderr(&b));
            if !a.status.success() {
                let err = stderr(&a);
                assert!(
                    err.contains("was removed by another command")
                        || err.contains("no cluster named"),
                    "{err}"
                );
            }
            assert_eq!(settled(&name).await, None);

            // up/down: either order is fine; what is left is whole or nothing.
            let (a, b) = at_once(&["up", &file], &["down", &name]).await;
            assert!(a.status.success(), "{}", stderr(&a));
            if let Some(g) = settled(&name).await {
                assert_eq!(g, RING6);
            } else {
                assert!(b.status.success(), "{}", stderr(&b));
            }
        }
        if settled(&name).await.is_some() {
            ok(&["down", &name]).await;
        }
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn duplicate_networks_made_by_hand_are_repaired_and_removed_by_down() {
    run(async {
        let name = unique("dup");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster
            .partition(&PartitionKind::Halves, CutMode::Drop, WAIT)
            .await
            .unwrap();
        // A second `seg1`, as two racing partitions made before there was a lock.
        let seg1 = format!("regbox-{name}-seg1");
        let cluster_label = ("regbox.cluster", name.as_str());
        outside::create_network(
            &seg1,
            &[
                cluster_label,
                ("regbox.role", "segment"),
                ("regbox.segment", "1"),
                ("regbox.mode", "drop"),
            ],
        )
        .await;
        let named =
            |nets: Vec<outside::Network>, n: &str| nets.iter().filter(|x| x.name == n).count();
        assert_eq!(named(outside::networks(Some(&name)).await, &seg1), 2);
        cluster
            .heal(WAIT)
            .await
            .expect("heal goes past the duplicate");
        assert_eq!(named(outside::networks(Some(&name)).await, &seg1), 0);
        assert_eq!(
            edges(&graph(&cluster).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );

        // A second data network: `up` keeps the one the nodes are on and removes the other.
        let data = format!("regbox-{name}-data");
        outside::create_network(&data, &[cluster_label, ("regbox.role", "data")]).await;
        let again = Cluster::up(ring(&name, 4), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(named(outside::networks(Some(&name)).await, &data), 1);
        again.verify(false).await.unwrap();
        again.keep();

        // A leaked duplicate that nothing repaired: `down` removes it with the rest.
        outside::create_network(&data, &[cluster_label, ("regbox.role", "data")]).await;
        let report = cluster.down(&Progress::default()).await.unwrap();
        assert_eq!(report.networks, 3);
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn a_lock_whose_holder_died_is_taken_over_and_a_live_one_makes_writers_wait() {
    run(async {
        let name = unique("lock");
        let (cluster, _guard) = up(ring(&name, 6)).await;
        cluster.keep();
        let lock = format!("regbox-{name}.lock");
        let has_lock = || async {
            outside::containers(&name)
                .await
                .iter()
                .any(|c| c.name == lock)
        };

        // A partition killed half-way leaves its lock and a half-done change behind.
        let mut child = regbox()
            .args(["partition", &name, "--majorities-ring"])
            .spawn()
            .unwrap();
        loop {
            let segment = outside::networks(Some(&name))
                .await
                .iter()
                .any(|n| n.name.contains("-seg"));
            if has_lock().await && segment {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the partition ended before it was killed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().await.unwrap(); // SIGKILL: nothing is released
        assert!(has_lock().await);
        let out = regbox().args(["heal", &name]).output().await.unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("took over the lock") && err.contains("has exited"),
            "{err}"
        );
        assert_eq!(settled(&name).await.unwrap(), RING6);
        assert!(!has_lock().await, "heal released its lock");

        // A live holder on this host (this test process): writers fail fast or after --wait-lock,
        // naming it; readers never wait.
        let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_string();
        let pid = std::process::id().to_string();
        let start = regbox::core::lock::process_start(&read("/proc/self/stat"))
            .unwrap()
            .to_string();
        let (host, boot) = (
            read("/proc/sys/kernel/hostname"),
            read("/proc/sys/kernel/random/boot_id"),
        );
        outside::create_marker(
            &lock,
            ensure_image(),
            &[
                ("regbox.cluster", &name),
                ("regbox.role", "lock"),
                ("regbox.lock.command", "test"),
                ("regbox.lock.host", &host),
                ("regbox.lock.boot", &boot),
                ("regbox.lock.pid", &pid),
                ("regbox.lock.pid-start", &start),
                ("regbox.lock.since", "0"),
            ],
        )
        .await;
        let started = std::time::Instant::now();
        let out = regbox()
            .args(["--wait-lock", "0", "heal", &name])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        let holder = format!("is being changed by another regbox (pid {pid} on host {host}, `test`, since 00:00:00 UTC)");
        assert!(err.contains(&holder), "{err}");
        let out = regbox()
            .args(["--wait-lock", "1", "-c", &name, "stop", "n2"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("waiting up to 1 s"),
            "{}",
            stderr(&out)
        );
        assert!(started.elapsed() >= Duration::from_secs(1));
        ok(&["status", &name, "--json"]).await;
        let ls = ok_json(&["ls", "--json"]).await;
        let me = ls
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name.as_str())
            .unwrap();
        assert!(
            me["changing"]
                .as_str()
                .unwrap()
                .contains(&format!("pid {pid}")),
            "{me}"
        );
        // Nothing changed while the lock was held by someone else.
        assert_eq!(settled(&name).await.unwrap(), RING6);
        outside::remove_container(&lock).await;
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn every_command_takes_the_cluster_flag_before_and_after_it_and_up_renames_the_manifest() {
    run(async {
        let (a, b) = (unique("cfa"), unique("cfb"));
        let _guards = (Teardown(a.clone()), Teardown(b.clone()));
        let manifest = TempFile::new("shared.yaml", "name: shared\nnodes: 3\ntopology: line\n");
        let file = manifest.to_str().unwrap().to_string();
        // One manifest brought up twice at the same moment under two names, as two CI jobs would.
        let (x, y) = at_once(&["-c", &a, "up", &file], &["up", &file, "-c", &b]).await;
        assert!(
            x.status.success() && y.status.success(),
            "{}\n{}",
            stderr(&x),
            stderr(&y)
        );
        let commands: &[&[&str]] = &[
            &["status"],
            &["status", "-o", "wide"],
            &["ls"],
            &["url", "n1"],
            &["mine", "n0", "2"],
            &["sync"],
            &["rpc", "n0", "getblockcount"],
            &["logs", "n0", "--tail", "1"],
            &["connect", "n0", "n2"],
            &["disconnect", "n0", "n2"],
            &["partition", "--halves"],
            &["heal", "--sync"],
            &["stop", "n1"],
            &["start", "n1"],
            &["restart", "n1"],
            &["pause", "n1"],
            &["unpause", "n1"],
            &["kill", "n1"],
            &["start", "n1"],
        ];
        for cmd in commands {
            // Two clusters exist: each command must act on the one the flag names, wherever it is.
            let mut before = vec!["-c", a.as_str()];
            before.extend_from_slice(cmd);
            let mut after = cmd.to_vec();
            after.extend_from_slice(&["-c", b.as_str()]);
            ok(&before).await;
            ok(&after).await;
        }
        for name in [&a, &b] {
            let ls = ok_json(&["ls", "--json", "-c", name]).await;
            assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
            let status = ok_json(&["status", "--json", "--cluster", name]).await;
            assert!(
                status.as_array().unwrap().iter().all(|n| n["height"] == 2),
                "{status}"
            );
        }
        // `url` gives another program all it needs: a plain HTTP client gets an answer with it.
        let url = ok_json(&["url", "n2", "--json", "-c", &a]).await;
        let (user, password) = (
            url["rpc_user"].as_str().unwrap(),
            url["rpc_password"].as_str().unwrap(),
        );
        assert_eq!(
            url["rpc_url"].as_str().unwrap(),
            format!(
                "http://{user}:{password}@{}",
                url["rpc_address"].as_str().unwrap()
            )
        );
        let body = r#"{"jsonrpc":"1.0","id":1,"method":"getblockcount","params":[]}"#;
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let request = format!(
            "POST / HTTP/1.1\r\nHost: node\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(url["rpc_address"].as_str().unwrap())
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.contains(r#""result":2"#), "{answer}");
        // The environment variable works like the flag; two different names are refused.
        let out = regbox()
            .args(["status"])
            .env("REGBOX_CLUSTER", &a)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let out = regbox()
            .args(["status", &b, "-c", &a])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("two clusters named"),
            "{}",
            stderr(&out)
        );
        let out = regbox()
            .args(["-c", "Bad Name", "up"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("invalid cluster name"),
            "{}",
            stderr(&out)
        );
        ok(&["-c", &a, "down"]).await;
        ok(&["down", "-c", &b]).await;
        assert_eq!(leftovers(&a).await, Vec::<String>::new());
        assert_eq!(leftovers(&b).await, Vec::<String>::new());
    });
}

#[test]
fn node_containers_are_hardened_and_limited_as_the_manifest_says() {
    run(async {
        let name = unique("hard");
        // Another name for the node image stands for a foreign image (one regbox did not build).
        let foreign_guard = Alias::new("regbox-test/other", &name).await;
        let foreign = foreign_guard.0.clone();
        let yaml = format!(
            "name: {name}\ndefaults:\n  wallet: true\nnodes:\n  - name: a\n  - name: b\n    resources: {{ memory: 256m, cpus: 0.5 }}\n  - name: c\n    image: \"{foreign}\"\ntopology: ring\n"
        );
        let spec = manifest::parse(&yaml, "inline").unwrap();
        let (cluster, _guard) = up(spec).await;
        // The containers hold the image by id: the second name can go now.
        drop(foreign_guard);
        // They work as lab nodes: mining, a wallet send, relay to all.
        cluster.mine("a", 101).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        cluster.send("a", "c", 100_000).await.unwrap();
        cluster.sync_mempools(WAIT).await.unwrap();
        let mib = 1 << 20;
        for (node, memory, nano_cpus, user) in [
            ("a", 512 * mib, 0, "10001:10001"),
            ("b", 256 * mib, 500_000_000, "10001:10001"),
            ("c", 512 * mib, 0, "0:0"),
        ] {
            let (info, uids) = outside::inspect(&format!("regbox-{name}-{node}")).await;
            let host = info.host_config.unwrap();
            assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]), "{node}");
            assert_eq!(
                host.security_opt,
                Some(vec!["no-new-privileges".to_string()]),
                "{node}"
            );
            assert_eq!(host.readonly_rootfs, Some(true), "{node}");
            assert_eq!(host.pids_limit, Some(512), "{node}");
            assert_eq!(host.memory, Some(memory), "{node}");
            assert_eq!(host.memory_swap, Some(memory), "{node}: no swap on top");
            assert_eq!(host.nano_cpus.unwrap_or(0), nano_cpus, "{node}");
            assert_eq!(info.config.unwrap().user.as_deref(), Some(user), "{node}");
            let uid = user.split(':').next().unwrap();
            assert!(
                !uids.is_empty() && uids.iter().all(|u| u == uid),
                "{node}: {uids:?}"
            );
            if user == "0:0" {
                // Root in a foreign image keeps only the right to write a datadir of any owner.
                assert_eq!(host.cap_add, Some(vec!["DAC_OVERRIDE".to_string()]));
            } else {
                assert!(host.cap_add.unwrap_or_default().is_empty());
            }
        }
        cluster.down(&Progress::default()).await.unwrap();
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn check_validates_every_example_without_docker_and_locates_the_first_error() {
    run(async {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        // Every manifest and scenario (graphs/ holds the topology files they name).
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .filter(|f| f.ends_with(".yaml"))
            .collect();
        files.sort();
        // No engine is reachable at this address: check must not need one.
        let out = regbox()
            .arg("check")
            .args(&files)
            .arg("--json")
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let kinds: Vec<&str> = checked
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.len(), files.len());
        assert!(
            kinds.contains(&"scenario") && kinds.contains(&"manifest"),
            "{kinds:?}"
        );
        let bad = TempFile::new(
            "bad.yaml",
            "name: x\nnodes: 3\ntopology: { edges: [[0, 5]] }\n",
        );
        let out = regbox()
            .arg("check")
            .arg(&files[0])
            .arg(&bad)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains(&format!("{}:3:25:", bad.display())),
            "{}",
            stderr(&out)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
    });
}

#[test]
fn ctrl_c_during_an_image_build_leaves_no_temporary_files() {
    run(async {
        let tmp = std::env::temp_dir().join(unique("tmp"));
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = regbox()
            .args(["image", "build"])
            .env("TMPDIR", &tmp)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Interrupt once the build has made its working directory.
        while std::fs::read_dir(&tmp).unwrap().next().is_none() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the build ended before it was interrupted"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        interrupt(&child);
        assert_eq!(child.wait().await.unwrap().code(), Some(130));
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir(&tmp).unwrap();
    });
}

#[test]
fn the_example_ci_workflow_parses_and_names_only_commands_that_exist() {
    use clap::Parser;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/github-actions.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let workflow: serde_json::Value = serde_saphyr::from_str(&text).expect("valid YAML");
    let job = &workflow["jobs"]["regtest"];
    assert!(job["env"]["REGBOX_CLUSTER"]
        .as_str()
        .unwrap()
        .contains("github.run_id"));
    let steps = job["steps"].as_array().unwrap();
    let mut invocations: Vec<Vec<String>> = Vec::new();
    for step in steps {
        let Some(run) = step["run"].as_str() else {
            continue;
        };
        // Shell lines split into simple commands at `;`, `&&`, `||` and the words of `if … fi`.
        let mut current: Vec<String> = Vec::new();
        let words = run.split_whitespace().flat_map(|w| {
            let bare = w.trim_end_matches(';');
            let sep = (bare.len() != w.len()).then_some(";");
            [Some(bare), sep].into_iter().flatten()
        });
        for word in words.chain([";"]) {
            if [";", "&&", "||", "if", "then", "else", "fi"].contains(&word) {
                if current.first().map(String::as_str) == Some("regbox") {
                    invocations.push(std::mem::take(&mut current));
                }
                current.clear();
            } else {
                current.push(word.to_string());
            }
        }
    }
    let text_of = |v: &[String]| v.join(" ");
    for words in &invocations {
        regbox::cli::Cli::try_parse_from(words)
            .unwrap_or_else(|e| panic!("`{}` is not a regbox command: {e}", text_of(words)));
    }
    let all: Vec<String> = invocations.iter().map(|w| text_of(w)).collect();
    for expected in [
        "regbox image build",
        "regbox check",
        "regbox run",
        "regbox down --all",
    ] {
        assert!(
            all.iter().any(|c| c.starts_with(expected)),
            "{expected} missing from {all:?}"
        );
    }
    assert!(all.iter().any(|c| c.contains("--junit")), "{all:?}");
    let last = steps.last().unwrap();
    assert_eq!(last["if"], "always()");
    assert_eq!(last["run"], "regbox down --all");
    assert!(text.contains("docker save regbox/bitcoind") && text.contains("docker load"));
}

#[test]
fn the_default_image_is_resolved_and_recorded_and_up_image_replaces_it() {
    run(async {
        let name = unique("img");
        let _guard = Teardown(name.clone());
        let built = ensure_image();
        assert!(built.starts_with("regbox/bitcoind:"), "{built}");
        let alias_guard = Alias::new("regbox-test/alias", &name).await;
        let alias = alias_guard.0.clone();
        // `c` names the bare default itself: `--image` leaves a node's own image alone.
        let manifest = TempFile::new(
            "images.yaml",
            &format!("name: {name}\nnodes:\n  - name: a\n  - name: b\n  - name: c\n    image: regbox/bitcoind\ntopology: line\n"),
        );
        let file = manifest.to_str().unwrap().to_string();
        ok(&["up", &file, "--image", &alias]).await;
        let images = || async {
            let status = ok_json(&["status", &name, "--json"]).await;
            status
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["image"].as_str().unwrap().to_string())
                .collect::<Vec<String>>()
        };
        assert_eq!(
            images().await,
            vec![alias.clone(), alias.clone(), built.to_string()]
        );
        let listed = ok_json(&["image", "ls", "--json"]).await;
        for (image, cluster_uses_it) in [(built, true), (alias.as_str(), true)] {
            let entry = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == image)
                .unwrap_or_else(|| panic!("{image} missing from {listed}"));
            assert!(
                entry["bitcoind"].as_str().unwrap().contains("version"),
                "{entry}"
            );
            let clusters = entry["clusters"].as_array().unwrap();
            assert_eq!(
                clusters.iter().any(|c| c == name.as_str()),
                cluster_uses_it,
                "{entry}"
            );
        }
        // The exact images are recorded: a later `up` of the same manifest keeps them.
        ok(&["up", &file]).await;
        assert_eq!(
            images().await,
            vec![alias.clone(), alias.clone(), built.to_string()]
        );
        drop(alias_guard);
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn up_dry_run_and_apply_print_the_plan_and_apply_touches_only_what_changed() {
    run(async {
        let name = unique("dry");
        let _guard = Teardown(name.clone());
        let write = |n: usize, extra: &str| {
            TempFile::new(
                &format!("ring{n}.yaml"),
                &format!("name: {name}\nnodes: {n}\ntopology: ring\n{extra}"),
            )
        };
        let (four_file, five_file) = (write(4, ""), write(5, ""));
        let (four, five) = (four_file.to_str().unwrap(), five_file.to_str().unwrap());
        let plan = ok_json(&["up", four, "--dry-run", "--json"]).await;
        assert_eq!(plan["exists"], false);
        assert_eq!(plan["create"], serde_json::json!(["n0", "n1", "n2", "n3"]));
        assert_eq!(plan["connect"].as_array().unwrap().len(), 4);
        assert_eq!(
            leftovers(&name).await,
            Vec::<String>::new(),
            "a dry run creates nothing"
        );
        ok(&["up", four]).await;
        ok(&["-c", &name, "stop", "n2"]).await;
        let plan = ok_json(&["apply", five, "--dry-run", "--json"]).await;
        assert_eq!(plan["exists"], true);
        assert_eq!(plan["create"], serde_json::json!(["n4"]));
        assert_eq!(plan["start"], serde_json::json!(["n2"]));
        assert_eq!(plan["disconnect"], serde_json::json!(["n0-n3"]));
        let connect: Vec<&str> = plan["connect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(connect, vec!["n1-n2", "n2-n3", "n3-n4", "n4-n0"]);
        // Nothing changed: n2 still stopped, no n4.
        let status = ok_json(&["status", &name, "--json"]).await;
        assert_eq!(status.as_array().unwrap().len(), 4);
        assert_eq!(status[2]["state"], "exited");
        // Carried out, the plan leaves nothing more to do.
        ok(&["up", five]).await;
        let text = ok(&["up", five, "--dry-run"]).await;
        assert!(text.contains("nothing to do"), "{text}");

        // apply: n2's arguments change, n4 goes, every node gets a delay. Only n2 is remade.
        let ids = |cs: Vec<outside::Container>| -> BTreeMap<String, String> {
            cs.into_iter().map(|c| (c.name, c.id)).collect()
        };
        let before = ids(outside::containers(&name).await);
        let changed = TempFile::new(
            "changed.yaml",
            &format!(
                "name: {name}\ndefaults:\n  link: {{delay: 20ms}}\ntopology: ring\nnodes:\n  - {{name: n0}}\n  - {{name: n1}}\n  - {{name: n2, args: [-maxmempool=50]}}\n  - {{name: n3}}\n"
            ),
        );
        let changed = changed.to_str().unwrap();
        let plan = ok_json(&["apply", changed, "--dry-run", "--json"]).await;
        assert_eq!(plan["recreate"], serde_json::json!(["n2"]));
        assert_eq!(plan["why"], serde_json::json!({"n2": ["args"]}));
        assert_eq!(
            plan["remove"],
            serde_json::json!([format!("regbox-{name}-n4")])
        );
        assert_eq!(plan["links"].as_array().unwrap().len(), 4, "{plan}");
        assert_eq!(plan["links"][0]["after"], "delay 20ms");
        let text = ok(&["apply", changed]).await;
        assert!(
            text.contains("~ node n2") && text.contains("recreate: args changed"),
            "{text}"
        );
        assert!(text.contains("- container regbox-"), "{text}");
        let after = ids(outside::containers(&name).await);
        for node in ["n0", "n1", "n3"] {
            let c = format!("regbox-{name}-{node}");
            assert_eq!(before[&c], after[&c], "{node} was not to be touched");
        }
        let n2 = format!("regbox-{name}-n2");
        assert_ne!(before[&n2], after[&n2], "n2 is remade");
        assert!(!after.contains_key(&format!("regbox-{name}-n4")));
        let status = ok_json(&["status", &name, "--json"]).await;
        assert!(
            status
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["links"] == "delay 20ms"),
            "{status}"
        );
        let text = ok(&["apply", changed]).await;
        assert!(text.contains("nothing to do"), "{text}");
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// Makes `dir/<top>` a Bitcoin Core release tree (bin/bitcoind, bin/bitcoin-cli, and lib/ with the
/// libraries they need) from the files of the Debian-built node image, and returns the .tar.gz of it.
fn release_tarball(files: &[u8], dir: &Path, top: &str) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(dir.join("rootfs.tar"), files).unwrap();
    let sh = |script: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh("tar -xf rootfs.tar -C rootfs usr");
    sh(&format!(
        "mkdir -p {top}/bin {top}/lib && cp rootfs/usr/bin/bitcoind rootfs/usr/bin/bitcoin-cli {top}/bin/ \
         && cp rootfs/usr/lib/x86_64-linux-gnu/* {top}/lib/ && tar -czf {top}-x86_64-linux-gnu.tar.gz {top}"
    ));
    dir.join(format!("{top}-x86_64-linux-gnu.tar.gz"))
}

#[test]
fn an_image_built_from_a_release_tarball_runs_in_one_cluster_with_the_debian_one() {
    run(async {
        let name = unique("from");
        let _guard = Teardown(name.clone());
        let debian = ensure_image();
        let dir = tempfile::tempdir().unwrap();
        let tarball = release_tarball(
            &outside::export(debian, &format!("{name}-export")).await,
            dir.path(),
            "bitcoin-29.4",
        );
        let tarball = tarball.to_str().unwrap();
        // Named for the bitcoind inside it unless told otherwise; never the bare default.
        let built = ok(&["image", "build", "--from", tarball]).await;
        let built = built.trim();
        let _built_guard = Alias(built.to_string());
        assert!(built.starts_with("regbox/bitcoind:local-knots-"), "{built}");
        let tagged = format!("regbox/bitcoind:local-test-{name}");
        assert_eq!(
            ok(&["image", "build", "--from", tarball, "--tag", &tagged[22..]])
                .await
                .trim(),
            tagged
        );
        let _tagged_guard = Alias(tagged.clone());
        let listed = ok_json(&["image", "ls", "--json"]).await;
        let entry = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == tagged)
            .unwrap();
        assert!(
            entry["bitcoind"].as_str().unwrap().contains("Knots"),
            "{entry}"
        );
        // A cluster mixing the Debian image and the tarball's comes up verified and agrees on a chain.
        let file = dir.path().join("mixed.yaml");
        std::fs::write(
            &file,
            format!(
                "name: {name}\nnodes:\n  - name: a\n  - name: b\n    image: {tagged}\n  - name: c\n  - name: d\n    image: {tagged}\ntopology: ring\n"
            ),
        )
        .unwrap();
        ok(&["up", file.to_str().unwrap()]).await;
        let status = ok_json(&["status", "-c", &name, "--json"]).await;
        let images: Vec<&str> = status
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["image"].as_str().unwrap())
            .collect();
        assert_eq!(images, [debian, &tagged, debian, &tagged]);
        let (inside, _) = outside::inspect(&format!("regbox-{name}-b")).await;
        assert_eq!(inside.config.unwrap().user.as_deref(), Some("10001:10001"));
        ok(&["-c", &name, "mine", "b", "3"]).await;
        ok(&["-c", &name, "sync"]).await;
        let status = ok_json(&["status", "-c", &name, "--json"]).await;
        assert!(
            status.as_array().unwrap().iter().all(|n| n["height"] == 3),
            "{status}"
        );
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn image_build_from_refuses_what_it_cannot_use() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing-here.tar.gz");
        let out = regbox()
            .args(["image", "build", "--from", missing.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("no such file or directory"),
            "{}",
            stderr(&out)
        );
        let out = regbox()
            .args(["image", "build", "--tag", "x"])
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "--tag needs --from: {}",
            stderr(&out)
        );
        let out = regbox()
            .args(["image", "build", "--from", ".", "--tag=a:b"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        // A self-built binary whose libraries neither it nor the host has: the library is named.
        let files = outside::export(ensure_image(), &unique("export")).await;
        std::fs::write(dir.path().join("rootfs.tar"), files).unwrap();
        let untar = Command::new("tar")
            .args(["-xf", "rootfs.tar", "usr/bin/bitcoind"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(untar.success());
        let binary = dir.path().join("usr/bin/bitcoind");
        let out = regbox()
            .args(["image", "build", "--from", binary.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("needs lib"), "{}", stderr(&out));
        // Not a tarball at all.
        let out = regbox()
            .args(["image", "build", "--from", "README.md"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("neither a directory, an ELF binary nor a tarball"),
            "{}",
            stderr(&out)
        );
    });
}

/// What `REGBOX_COMPLETE=bash regbox -- WORDS…` offers for the last word (as the script of `regbox
/// completions bash` asks it).
async fn completions(words: &[&str]) -> Vec<String> {
    let out = regbox()
        .env("REGBOX_COMPLETE", "bash")
        .env("_CLAP_IFS", "\n")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env_remove("REGBOX_CLUSTER")
        .arg("--")
        .args(words)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{words:?}: {}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn completion_offers_the_clusters_and_nodes_on_the_engine() {
    run(async {
        let name = unique("comp");
        let (_cluster, _guard) = up(load_nodes(&name, &["alpha", "beta"])).await;
        let clusters = completions(&["regbox", "status", ""]).await;
        assert!(clusters.contains(&name), "{clusters:?}");
        let clusters = completions(&["regbox", "-c", ""]).await;
        assert!(clusters.contains(&name), "{clusters:?}");
        for line in [
            &["regbox", "-c", &name, "stop", ""][..],
            &["regbox", "mine", "--cluster", &name, ""],
            &[
                "regbox",
                &format!("--cluster={name}"),
                "partition",
                "--isolate",
                "",
            ],
        ] {
            let nodes = completions(line).await;
            assert!(
                nodes.contains(&"alpha".to_string()) && nodes.contains(&"beta".to_string()),
                "{line:?}: {nodes:?}"
            );
        }
        let nodes = completions(&["regbox", "-c", &name, "stop", "al"]).await;
        assert_eq!(nodes, ["alpha"]);
        // The scripts: the default one calls back into regbox, --static does not.
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let script = ok(&["completions", shell]).await;
            assert!(script.contains("REGBOX_COMPLETE"), "{shell}: {script}");
            let fixed = ok(&["completions", shell, "--static"]).await;
            assert!(
                !fixed.contains("REGBOX_COMPLETE") && fixed.contains("partition"),
                "{shell}"
            );
        }
        let man = ok(&["man"]).await;
        assert!(
            man.starts_with(".ie") || man.contains(".TH regbox"),
            "{man}"
        );
    });
}

/// A line of named nodes.
fn load_nodes(name: &str, nodes: &[&str]) -> ClusterSpec {
    let list: String = nodes.iter().map(|n| format!("  - name: {n}\n")).collect();
    manifest::parse(
        &format!("name: {name}\nnodes:\n{list}topology: line\n"),
        "inline",
    )
    .unwrap()
}

#[test]
fn image_build_from_takes_dynamic_static_and_linked_binaries() {
    run(async {
        let name = unique("kinds");
        let dir = tempfile::tempdir().unwrap();
        let sh = |script: &str| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // A stand-in for a self-built bitcoind: what the image build does with a binary depends only
        // on how it is linked, and this one answers `-version` like bitcoind does.
        std::fs::write(
            dir.path().join("fake.c"),
            "#include <stdio.h>\nint main(void) { puts(\"Bitcoin Core version v0.0.1\"); return 0; }\n",
        )
        .unwrap();
        sh("gcc -O1 -o dynamic fake.c && gcc -static -o static fake.c && gcc -static-pie -o static-pie fake.c");
        // A release tree whose bin/bitcoind links to the real file, relying on the host's glibc.
        sh("mkdir -p bitcoin-0.0.1/bin bitcoin-0.0.1/libexec && cp dynamic bitcoin-0.0.1/libexec/bitcoind \
            && ln -s ../libexec/bitcoind bitcoin-0.0.1/bin/bitcoind && tar -czf linked.tar.gz bitcoin-0.0.1");
        let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
        let mut guards = Vec::new();
        for (kind, from) in [
            ("linked", path("linked.tar.gz")),
            ("static", path("static")),
            ("pie", path("static-pie")),
        ] {
            let tag = format!("test-{name}-{kind}");
            let built = ok(&["image", "build", "--from", &from, "--tag", &tag]).await;
            assert_eq!(built.trim(), format!("regbox/bitcoind:local-{tag}"));
            guards.push(Alias(built.trim().to_string()));
        }
        // Each runs in its image: `image ls` asks every regbox image's bitcoind for its version.
        let listed = ok_json(&["image", "ls", "--json"]).await;
        for guard in &guards {
            let entry = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == guard.0.as_str());
            let entry = entry.unwrap_or_else(|| panic!("{} missing from {listed}", guard.0));
            assert_eq!(entry["bitcoind"], "Bitcoin Core version v0.0.1", "{entry}");
        }
        // A link out of the tree is refused.
        sh("mkdir -p outside/bin && ln -s /bin/true outside/bin/bitcoind");
        let out = regbox()
            .args(["image", "build", "--from", &path("outside")])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("links outside the tree"),
            "{}",
            stderr(&out)
        );
    });
}

#[test]
fn topology_show_reports_draws_and_exports_a_graph_that_imports_back() {
    run(async {
        let name = unique("topo");
        let _guard = Teardown(name.clone());
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("sf.yaml");
        std::fs::write(
            &manifest,
            format!("name: {name}\nnodes: 10\ntopology: {{ kind: small-world, k: 4, beta: 0.3, seed: 3 }}\n"),
        )
        .unwrap();
        let manifest = manifest.to_str().unwrap();
        let shown = ok_json(&["topology", "show", manifest, "--json"]).await;
        let stats = &shown["topology"];
        assert_eq!(
            (stats["nodes"].as_u64(), stats["edges"].as_u64()),
            (Some(10), Some(20))
        );
        assert_eq!(stats["components"], 1);
        assert!(stats["diameter"].as_u64().unwrap() >= 2, "{shown}");
        // Exported in each format, the graph imports back as the same manifest topology.
        for (format, file) in [
            ("edgelist", "g.txt"),
            ("graphml", "g.graphml"),
            ("dot", "g.dot"),
        ] {
            let text = ok(&["topology", "show", manifest, "--export", format]).await;
            std::fs::write(dir.path().join(file), text).unwrap();
            let copy = dir.path().join(format!("copy-{format}.yaml"));
            std::fs::write(
                &copy,
                format!("name: {name}\ntopology: {{ file: {file} }}\n"),
            )
            .unwrap();
            let again = ok_json(&["topology", "show", copy.to_str().unwrap(), "--json"]).await;
            assert_eq!(again["topology"], shown["topology"], "{format}");
        }
        // Brought up, the cluster's own topology is shown without a manifest, and drawn.
        ok(&["up", manifest]).await;
        let svg = dir.path().join("g.svg");
        let live = ok_json(&[
            "-c",
            &name,
            "topology",
            "show",
            "--json",
            "--svg",
            svg.to_str().unwrap(),
        ])
        .await;
        assert_eq!(live["topology"], shown["topology"]);
        let picture = std::fs::read_to_string(&svg).unwrap();
        let doc = roxmltree::Document::parse(&picture).expect("SVG is XML");
        let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
        assert_eq!((count("circle"), count("line")), (10, 20));
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn a_host_limit_that_stops_a_cluster_refuses_it_before_anything_exists() {
    run(async {
        let name = unique("lim");
        let file = TempFile::new("lim.yaml", &format!("name: {name}\nnodes: 60\n"));
        // 60 nodes need about 184 open files; allow 100.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n 100; exec {} up {}",
                env!("CARGO_BIN_EXE_regbox"),
                file.to_str().unwrap()
            ))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("ulimit -n 256"), "{}", stderr(&out));
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn an_exported_compose_file_runs_the_same_topology_under_docker_compose() {
    run(async {
        let name = unique("cmp");
        let manifest = TempFile::new(
            "star.yaml",
            &format!("name: {name}\nnodes: 4\ntopology: star\n"),
        );
        let text = ok(&["export", "compose", manifest.to_str().unwrap()]).await;
        let file = TempFile::new("docker-compose.yml", &text);
        let compose = |args: &[&str]| {
            let out = Command::new("docker-compose")
                .args(["-p", &name, "-f", file.to_str().unwrap()])
                .args(args)
                .output()
                .expect("docker-compose is installed (.ci/run installs it)");
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            String::from_utf8(out.stdout).unwrap()
        };
        compose(&["up", "-d"]);
        // The star's hub has three peers, each leaf one, as the nodes themselves report.
        let peers = |node: &str| {
            compose(&[
                "exec",
                "-T",
                node,
                "bitcoin-cli",
                "-regtest",
                "-datadir=/data",
                "getconnectioncount",
            ])
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + WAIT;
        let wired = loop {
            let counts: Vec<u32> = ["n0", "n1", "n2", "n3"].iter().map(|n| peers(n)).collect();
            if counts == [3, 1, 1, 1] || std::time::Instant::now() > deadline {
                break counts;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        compose(&["down", "-v"]);
        assert_eq!(wired, [3, 1, 1, 1]);
        let left = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=regbox.export={name}"),
            ])
            .output()
            .unwrap();
        assert!(left.stdout.is_empty());
    });
}

/// Every node's arrival in every round of a `measure propagation --json` document, as (node, hops, ms).
fn arrivals(m: &serde_json::Value) -> Vec<Vec<(String, u64, f64)>> {
    m["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["arrivals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    let ms = a["ms"].as_f64();
                    let ms = ms.unwrap_or_else(|| panic!("no arrival in {a}"));
                    (
                        a["node"].as_str().unwrap().to_string(),
                        a["hops"].as_u64().unwrap(),
                        ms,
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn block_propagation_is_timed_from_every_nodes_log_and_plotted() {
    run(async {
        let name = unique("prop");
        let (_cluster, _guard) = up(cluster_spec(&name, 6, "line")).await;
        let dir = tempfile::tempdir().unwrap();
        let (svg, png) = (dir.path().join("p.svg"), dir.path().join("p.png"));
        let m = ok_json(&[
            "-c",
            &name,
            "measure",
            "propagation",
            "--from",
            "n0",
            "--blocks",
            "3",
            "--json",
            "--svg",
            svg.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
        ])
        .await;
        assert_eq!((&m["kind"], &m["origin"]), (&"block".into(), &"n0".into()));
        // A fresh chain is in initial block download: one block first ends it.
        assert_eq!(m["prepared"]["blocks_mined"], 1, "{m}");
        let rounds = arrivals(&m);
        assert_eq!(rounds.len(), 3, "{m}");
        for (i, round) in rounds.iter().enumerate() {
            assert_eq!(m["rounds"][i]["height"], i as u64 + 2, "{m}");
            // On a line from n0, node i is i hops away.
            let hops: Vec<u64> = round.iter().map(|a| a.1).collect();
            assert_eq!(hops, [0, 1, 2, 3, 4, 5], "{m}");
            // Times count from the block's birth at the miner: none can be earlier.
            assert!(round.iter().all(|a| a.2 >= 0.0), "{m}");
        }
        let s = &m["summary"];
        assert_eq!(
            (s["samples"].as_u64(), s["missing"].as_u64()),
            (Some(15), Some(0))
        );
        let q = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("no {k} in {s}"));
        assert!(
            q("p50") <= q("p90") && q("p90") <= q("p95") && q("p95") <= q("max"),
            "{s}"
        );
        assert_eq!(s["per_hop"].as_array().unwrap().len(), 6, "{s}");
        // Headers are relayed hop by hop: on a line no node sees one before the node it came from.
        // (Times to the tip add each node's own validation, which runs in parallel and is no such
        // order: a farther node can connect the block sooner.)
        for round in m["rounds"].as_array().unwrap() {
            let headers: Vec<f64> = (round["arrivals"].as_array().unwrap().iter())
                .map(|a| a["header_ms"].as_f64().unwrap_or_else(|| panic!("{a}")))
                .collect();
            assert!(headers.windows(2).all(|w| w[0] <= w[1]), "{round}");
        }

        let svg = std::fs::read_to_string(&svg).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(svg.contains("Arrival CDF") && svg.contains("Arrival vs hops"));
        let png = std::fs::read(&png).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

        // The table: summary, per-hop means, one row per node.
        let table = ok(&["-c", &name, "measure", "propagation", "--blocks", "1"]).await;
        assert!(
            table.contains("block propagation from n0") && table.contains("p95"),
            "{table}"
        );
        assert!(
            table.contains("HOPS") && table.lines().any(|l| l.starts_with("n5 ")),
            "{table}"
        );
    });
}

#[test]
fn transaction_propagation_reaches_every_node_and_leaves_logging_as_it_was() {
    run(async {
        let name = unique("proptx");
        let (cluster, _guard) = up(cluster_spec(&name, 6, "line")).await;
        let measure = |from: &'static str, rounds: &'static str| {
            let name = name.clone();
            async move {
                ok_json(&[
                    "-c",
                    &name,
                    "measure",
                    "propagation",
                    "--tx",
                    "--from",
                    from,
                    "--rounds",
                    rounds,
                    "--json",
                ])
                .await
            }
        };
        // From the line's end every hop goes to an inbound (noban) peer: no trickle to wait for.
        let m = measure("n5", "2").await;
        assert_eq!(m["kind"], "tx");
        // A fresh chain has no coin: 100 blocks to mature one, and one holding the split.
        assert_eq!(m["prepared"]["blocks_mined"], 101, "{m}");
        for round in arrivals(&m) {
            assert_eq!(round.len(), 6);
            assert!(round
                .iter()
                .all(|a| a.1 == 5 - a.0[1..].parse::<u64>().unwrap()));
            assert_eq!(
                round[5].2, 0.0,
                "the sender's own acceptance is the origin: {m}"
            );
        }
        assert_eq!(m["summary"]["missing"], 0, "{m}");
        // The next measurement finds a mature coin left by the first.
        let again = measure("n5", "1").await;
        assert_eq!(again["prepared"]["blocks_mined"], 1, "{again}");
        assert_eq!(arrivals(&again)[0].len(), 6);
        // The debug categories switched on for the measurement are off again.
        for node in cluster.nodes() {
            let categories = node
                .rpc
                .call_raw("logging", serde_json::json!([]), WAIT)
                .await
                .unwrap();
            assert_eq!(categories["mempool"], false, "{}", node.name());
            assert_eq!(categories["validation"], false, "{}", node.name());
        }
    });
}

#[test]
fn a_measure_step_passes_within_its_bound_and_fails_with_what_it_measured() {
    run(async {
        let name = unique("propscn");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "measure.scenario.yaml",
            concat!(
                "cluster: { name: x, nodes: 4, topology: line }\n",
                "steps:\n",
                "  - measure: { propagation: block, blocks: 2, quantile: 0.5, within: 30 }\n",
                "  - measure: { propagation: block, from: n3, blocks: 2, quantile: 1, within: 0.000001 }\n",
                "  - mine: { node: n0, blocks: 1 }\n",
            ),
        );
        let (out, xml) = run_scenario(&name, Some(&file.path)).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", stderr(&out));
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("PASS  measure block propagation, 2")),
            "{stdout}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("FAIL  measure block propagation from n3")),
            "{stdout}"
        );
        assert!(
            stdout.contains("expected 100% of the other nodes' arrivals of a block from n3 within 0.001 ms, measured p100 = "),
            "{stdout}"
        );
        let doc = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
        let failure = doc.descendants().find(|n| n.has_tag_name("failure"));
        let message = failure
            .and_then(|f| f.attribute("message"))
            .unwrap_or_default();
        assert!(message.contains("measured p100 = "), "{xml}");
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn fifty_nodes_in_a_random_regular_graph_come_up_verified_and_go_down_cleanly() {
    run(async {
        let name = unique("fifty");
        let spec = manifest::parse(
            &format!(
                "name: {name}\nnodes: 50\ntopology: {{ kind: random-regular, k: 4, seed: 11 }}\n"
            ),
            "inline",
        )
        .unwrap();
        assert_eq!(spec.edges.len(), 100);
        let declared = spec.graph();
        let (cluster, _guard) = up(spec).await;
        assert_eq!(graph(&cluster).await, declared);
        cluster.down(&Progress::default()).await.unwrap();
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// The ping time node `at` reports for its session with `peer`, after asking for a fresh ping; polls
/// until `want` holds of it (or the deadline passes, failing with the last value).
async fn pingtime(cluster: &Cluster, at: usize, peer: &str, want: impl Fn(f64) -> bool) -> f64 {
    let node = &cluster.nodes()[at];
    let comment = format!("({peer})");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let _: serde_json::Value = node.rpc.call("ping", serde_json::json!([])).await.unwrap();
        // A ping round trip takes up to the delay being measured; look again soon after.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let peers: Vec<serde_json::Value> = node
            .rpc
            .call("getpeerinfo", serde_json::json!([]))
            .await
            .unwrap();
        let last = peers
            .iter()
            .find(|p| p["subver"].as_str().is_some_and(|s| s.contains(&comment)))
            .and_then(|p| p["pingtime"].as_f64());
        if let Some(t) = last.filter(|&t| want(t)) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} to {peer}: ping time {last:?}",
            node.name()
        );
    }
}

/// Whether `at` lists a session with `peer`.
async fn lists(cluster: &Cluster, at: usize, peer: &str) -> bool {
    let peers = cluster.nodes()[at].rpc.get_peer_info().await.unwrap();
    peers
        .iter()
        .any(|p| p.subver.contains(&format!("({peer})")))
}

/// A node's TCP segments retransmitted so far, from its network namespace's counters.
fn retransmits(container: &str) -> u64 {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", container])
        .output()
        .unwrap();
    let pid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let snmp = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).unwrap();
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "RetransSegs")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[test]
fn link_faults_show_in_what_the_nodes_report_and_go_with_down() {
    run(async {
        let name = unique("links");
        let (cluster, _guard) = up(ring(&name, 4)).await;
        let c = ["-c", name.as_str()];
        // A delay on n0's packets: every ping time at n0, and n1's to n0, is about 100 ms.
        let plane = ok(&[&c[..], &["netem", "n0", "--delay", "100ms"]].concat()).await;
        assert!(plane.contains("n0    delay 100ms"), "{plane}");
        let t = pingtime(&cluster, 1, "n0", |t| t > 0.095).await;
        assert!(t < 0.15, "n1 to n0: {t}");
        let t = pingtime(&cluster, 0, "n3", |t| t > 0.095).await;
        assert!(t < 0.15, "n0 to n3: {t}");
        // The other links are not shaped.
        assert!(pingtime(&cluster, 1, "n2", |_| true).await < 0.05);
        // One link of n2's: only towards n3.
        ok(&[
            &c[..],
            &[
                "netem", "n2", "--to", "n3", "--delay", "200ms", "--jitter", "10ms",
            ],
        ]
        .concat())
        .await;
        let t = pingtime(&cluster, 3, "n2", |t| t > 0.17).await;
        assert!(t < 0.26, "n3 to n2: {t}");
        assert!(pingtime(&cluster, 1, "n2", |_| true).await < 0.05);
        // status shows each node's shaping, in the table and in JSON.
        let status = ok_json(&[&c[..], &["status", "--json"]].concat()).await;
        let links: Vec<&str> = status
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["links"].as_str().unwrap())
            .collect();
        assert_eq!(
            links,
            ["delay 100ms", "", "to n3: delay 200ms ± 10ms uniform", ""]
        );
        // Loss: n3 loses 30% of its packets; blocks still reach everyone, through retransmits.
        ok(&[&c[..], &["netem", "n3", "--loss", "30%"]].concat()).await;
        let container = format!("regbox-{name}-n3");
        let before = retransmits(&container);
        cluster.mine("n3", 30).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        let after = retransmits(&container);
        assert!(after > before, "retransmits {before} → {after}");
        // Clearing removes the shaping.
        let plane = ok(&[&c[..], &["netem", "--clear"]].concat()).await;
        assert_eq!(plane.trim(), "no link faults");
        pingtime(&cluster, 1, "n0", |t| t < 0.05).await;

        // A one-way cut answered with resets: n1 loses its session with n2 at once; n2, whose
        // packets still flow, keeps listing n1 (nothing it sends is answered, nor refused).
        ok(&[&c[..], &["cut", "--from", "n1", "--to", "n2", "--reset"]].concat()).await;
        let _: serde_json::Value = cluster.nodes()[1]
            .rpc
            .call("ping", serde_json::json!([]))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while lists(&cluster, 1, "n2").await {
            assert!(tokio::time::Instant::now() < deadline, "n1 still lists n2");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(lists(&cluster, 2, "n1").await);
        // A silent cut both ways between n0 and n3: a block mined on n0 reaches n3 only around the
        // ring (n0 → n1 → n2 → n3), which the cut from n1 to n2 blocks too: n3 stays behind.
        ok(&[&c[..], &["cut", "n0", "n3"]].concat()).await;
        let tip = cluster.mine("n0", 1).await.unwrap().pop().unwrap();
        cluster
            .wait(
                &regbox::WaitFor::SyncBlocks(Some(vec!["n0".into(), "n1".into()])),
                WAIT,
            )
            .await
            .unwrap();
        let n3: String = cluster.nodes()[3]
            .rpc
            .call("getbestblockhash", serde_json::json!([]))
            .await
            .unwrap();
        assert_ne!(n3, tip);
        // heal removes every cut and re-wires the ring: everyone is on one tip again.
        ok(&[&c[..], &["heal", "--sync"]].concat()).await;
        let status = ok_json(&[&c[..], &["status", "--json"]].concat()).await;
        assert!(status.as_array().unwrap().iter().all(|n| n["links"] == ""));
        assert_eq!(
            edges(&graph(&cluster).await),
            [(0, 1), (0, 3), (1, 2), (2, 3)]
        );

        // The agent goes with the cluster.
        assert!(outside::containers(&name)
            .await
            .iter()
            .any(|c| c.name == format!("regbox-{name}.agent")));
        cluster.down(&Progress::default()).await.unwrap();
        assert!(leftovers(&name).await.is_empty());
    });
}

#[test]
fn partitions_by_rules_give_the_same_graphs_as_by_segments_in_every_flavour() {
    run(async {
        let name = unique("fw");
        let (cluster, _guard) = up(ring(&name, 6)).await;
        let c = ["-c", name.as_str()];
        let graph_of = |report: &serde_json::Value| -> Vec<String> {
            let mut g: Vec<String> = report["graph"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .collect();
            g.sort();
            g
        };
        // The same shape both ways: the nodes report the same graph (each run verifies it).
        let by_segments =
            ok_json(&[&c[..], &["--json", "partition", "--majorities-ring"]].concat()).await;
        let by_rules = ok_json(
            &[
                &c[..],
                &[
                    "--json",
                    "partition",
                    "--majorities-ring",
                    "--via",
                    "firewall",
                ],
            ]
            .concat(),
        )
        .await;
        assert_eq!(by_rules["via"], "firewall");
        assert_eq!(graph_of(&by_rules), graph_of(&by_segments));
        // Rules replaced the segments: every node is back on the base segment.
        let status = ok_json(&[&c[..], &["status", "--json"]].concat()).await;
        assert!(status
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["segments"].as_array().unwrap().len() == 1));

        // Silent halves: the sessions across freeze (still listed), each side mines, heal reorganises
        // the shorter side onto the longer chain.
        let report = ok_json(
            &[
                &c[..],
                &[
                    "--json",
                    "partition",
                    "--halves",
                    "--via",
                    "firewall",
                    "--silent",
                ],
            ]
            .concat(),
        )
        .await;
        assert_eq!(graph_of(&report), ["n0-n1", "n1-n2", "n3-n4", "n4-n5"]);
        assert!(
            lists(&cluster, 2, "n3").await,
            "a silent cut leaves the session listed"
        );
        cluster.mine("n0", 2).await.unwrap();
        cluster.mine("n5", 3).await.unwrap();
        let heal = ok_json(&[&c[..], &["--json", "heal", "--sync"]].concat()).await;
        assert_eq!(heal["height"], 3);
        let depths: Vec<u64> = heal["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["reorg_depth"].as_u64().unwrap())
            .collect();
        assert_eq!(depths, [2, 2, 2, 0, 0, 0]);

        // Reset: n2 alone; its sessions are closed by the network's resets, and its neighbours' too.
        ok(&[
            &c[..],
            &[
                "partition",
                "--isolate",
                "n2",
                "--via",
                "firewall",
                "--reset",
            ],
        ]
        .concat())
        .await;
        assert!(cluster.nodes()[2]
            .rpc
            .get_peer_info()
            .await
            .unwrap()
            .is_empty());
        assert!(!lists(&cluster, 1, "n2").await && !lists(&cluster, 3, "n2").await);
        ok(&[&c[..], &["heal"]].concat()).await;
        assert_eq!(
            edges(&graph(&cluster).await),
            [(0, 1), (0, 5), (1, 2), (2, 3), (3, 4), (4, 5)]
        );
    });
}

#[test]
fn manifest_links_are_set_by_up_and_again_after_a_restart() {
    run(async {
        let name = unique("geo");
        let (cluster, _guard) = up(load("continents.yaml", &name)).await;
        // eu1 and us1 are peers across the ocean: 75 ms each way.
        let t = pingtime(&cluster, 0, "us1", |t| t > 0.14).await;
        assert!(t < 0.2, "eu1 to us1: {t}");
        assert!(pingtime(&cluster, 0, "eu2", |_| true).await < 0.05);
        let status = ok_json(&["-c", &name, "status", "--json"]).await;
        assert_eq!(
            status[3]["links"],
            "to eu1: delay 75ms ± 5ms uniform; to eu2: delay 75ms ± 5ms uniform; to eu3: delay 75ms ± 5ms uniform"
        );
        // A restarted node has a fresh network namespace: its links are set again.
        ok(&["-c", &name, "restart", "us1"]).await;
        let t = pingtime(&cluster, 3, "eu1", |t| t > 0.14).await;
        assert!(t < 0.2, "us1 to eu1 after the restart: {t}");
        // netem changes them at run time; `up` brings back the manifest's.
        ok(&["-c", &name, "netem", "--clear"]).await;
        pingtime(&cluster, 0, "us1", |t| t < 0.05).await;
        Cluster::up(load("continents.yaml", &name), &UpOptions::default())
            .await
            .unwrap()
            .keep();
        pingtime(&cluster, 0, "us1", |t| t > 0.14).await;
    });
}

/// Mines, on n0 while n1 is disconnected, a block holding one transaction of 400 outputs (≈ 14 KB that
/// n1 has never seen), reconnects the two, and returns the block's size and how long n1 took to have it.
async fn large_block_relay(cluster: &mut Cluster) -> (u64, Duration) {
    let n0 = cluster.nodes()[0].clone();
    cluster.disconnect("n0", "n1", WAIT).await.unwrap();
    let mut outputs = serde_json::Map::new();
    for _ in 0..400 {
        let address = n0.rpc.get_new_address().await.unwrap();
        outputs.insert(address, serde_json::json!(0.001));
    }
    let _: String = n0
        .rpc
        .call("sendmany", serde_json::json!(["", outputs]))
        .await
        .unwrap();
    let hash = cluster.mine("n0", 1).await.unwrap().pop().unwrap();
    let block: serde_json::Value = n0
        .rpc
        .call("getblock", serde_json::json!([hash, 1]))
        .await
        .unwrap();
    let size = block["size"].as_u64().unwrap();
    let start = std::time::Instant::now();
    cluster.connect("n0", "n1", WAIT).await.unwrap();
    cluster.sync_blocks(WAIT).await.unwrap();
    (size, start.elapsed())
}

#[test]
fn a_rate_limit_shows_in_the_relay_time_of_a_large_block() {
    run(async {
        let name = unique("rate");
        let spec = manifest::parse(
            &format!("name: {name}\ndefaults: {{wallet: true}}\nnodes: 2\ntopology: line\n"),
            "inline",
        )
        .unwrap();
        let (mut cluster, _guard) = up(spec).await;
        cluster.mine("n0", 101).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        let (size, free) = large_block_relay(&mut cluster).await;
        assert!(size > 10_000, "block of {size} bytes");
        // 64 kbit/s on what n0 sends: the block alone needs size × 8 / 64000 seconds on the wire.
        ok(&["-c", &name, "netem", "n0", "--rate", "64kbit"]).await;
        let (size, limited) = large_block_relay(&mut cluster).await;
        let wire = Duration::from_secs_f64(size as f64 * 8.0 / 64_000.0);
        assert!(
            limited >= wire.mul_f64(0.9),
            "{size} bytes at 64 kbit/s arrived in {limited:?}, faster than the wire's {wire:?}"
        );
        assert!(
            free * 2 < limited,
            "unlimited {free:?}, limited {limited:?}"
        );
        eprintln!(
            "a {size}-byte block: {free:?} unlimited, {limited:?} at 64 kbit/s (wire {wire:?})"
        );
    });
}

/// One HTTP request to the operator with a real HTTP client: the status and the body.
async fn try_http(method: &str, url: &str, body: &str) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8(bytes.to_vec()).unwrap()))
}

async fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    try_http(method, url, body).await.unwrap()
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `regbox operator FILE` listening on `port`, passing every 2 s.
fn start_operator(file: &str, port: u16) -> tokio::process::Child {
    regbox()
        .args(["operator", file, "--interval", "2", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls the operator's /status until `done` holds for the cluster's state, collecting every change
/// a pass reported meanwhile; panics with the last state after `limit`.
async fn status_until(
    base: &str,
    limit: Duration,
    changes: &mut Vec<String>,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + limit;
    let mut last = serde_json::Value::Null;
    while std::time::Instant::now() < deadline {
        let url = format!("{base}/status");
        if let Ok(Ok((200, text))) =
            tokio::time::timeout(Duration::from_secs(5), try_http("GET", &url, "")).await
        {
            let all: serde_json::Value = serde_json::from_str(&text).unwrap();
            if let Some(state) = all["clusters"].get(0) {
                for c in state["last_pass"]["changes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let c = c.as_str().unwrap().to_string();
                    if !changes.contains(&c) {
                        changes.push(c);
                    }
                }
                if done(state) {
                    return state.clone();
                }
                last = state.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the operator's status never got there; last: {last:#}");
}

/// The operator's metrics, parsed: metric name and node label (or "") to value.
async fn metrics(base: &str) -> BTreeMap<(String, String), f64> {
    let (status, text) = http("GET", &format!("{base}/metrics"), "").await;
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .into_iter()
        .filter_map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            let node = s.labels.get("node").unwrap_or("").to_string();
            Some(((s.metric, node), value))
        })
        .collect()
}

fn node_state<'a>(state: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    state["metrics"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or(&serde_json::Value::Null)
}

fn all_up_with_peers(state: &serde_json::Value, nodes: usize, peers: u64) -> bool {
    let list = state["metrics"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    state["last_pass"]["error"].is_null()
        && list.len() == nodes
        && list.iter().all(|n| n["up"] == true && n["peers"] == peers)
}

#[test]
fn the_operator_applies_repairs_keeps_holds_and_serves_status_metrics_and_actions() {
    run(async {
        let name = unique("op");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "op.yaml",
            &format!("name: {name}\nnodes: 4\ntopology: ring\n"),
        );
        let path = file.to_str().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut changes = Vec::new();
        let limit = Duration::from_secs(90);

        // The operator applies its manifest: the cluster comes up wired.
        let mut operator = start_operator(path, port);
        let state = status_until(&base, limit, &mut changes, |s| all_up_with_peers(s, 4, 2)).await;
        assert_eq!(state["last_pass"]["applied"], true, "{state:#}");
        assert!(
            changes.contains(&"+ node n0 regbox/bitcoind:knots-29.4".to_string())
                || changes.iter().any(|c| c.starts_with("+ node n0")),
            "{changes:?}"
        );

        // A node killed from outside is started again and wired back.
        outside::kill(&format!("regbox-{name}-n1")).await;
        let state = status_until(&base, limit, &mut changes, |s| {
            node_state(s, "n1")["restarts"] == 1 && all_up_with_peers(s, 4, 2)
        })
        .await;
        assert!(
            changes.contains(&"start n1".to_string()),
            "{changes:?} {state:#}"
        );

        // A session nobody declared is closed.
        let made = |s: &serde_json::Value| s["metrics"]["changes"].as_u64().unwrap_or(0);
        let before = made(&status_until(&base, limit, &mut changes, |_| true).await);
        ok(&["-c", &name, "connect", "n0", "n2"]).await;
        status_until(&base, limit, &mut changes, |s| {
            made(s) > before && all_up_with_peers(s, 4, 2)
        })
        .await;
        assert!(
            changes
                .iter()
                .any(|c| c.contains("session with n2") || c.contains("session with n0")),
            "{changes:?}"
        );

        // A node stopped by regbox stays stopped, pass after pass.
        ok(&["-c", &name, "stop", "n2"]).await;
        let passes = status_until(&base, limit, &mut changes, |s| {
            s["held"] == serde_json::json!(["n2"])
        })
        .await["metrics"]["passes"]
            .as_u64()
            .unwrap();
        let state = status_until(&base, limit, &mut changes, |s| {
            s["metrics"]["passes"].as_u64().unwrap() >= passes + 2
        })
        .await;
        assert_eq!(node_state(&state, "n2")["up"], false, "{state:#}");
        let n2 = outside::containers(&name)
            .await
            .into_iter()
            .find(|c| c.name.ends_with("-n2"))
            .unwrap();
        assert!(!n2.running);

        // Actions over HTTP act as the CLI's commands do; bad ones are refused with their reason.
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/faults"),
            r#"{"node":"n2","fault":"start"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/mine"),
            r#"{"node":"n0","blocks":2}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let mined: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(mined["blocks"].as_array().unwrap().len(), 2);
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/partition"),
            r#"{"kind":"halves"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report["graph"], serde_json::json!(["n0-n1", "n2-n3"]));
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/mine"),
            r#"{"node":"n9"}"#,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("no node `n9`"), "{body}");
        let (status, _) = http("POST", &format!("{base}/clusters/no-such-cluster/heal"), "").await;
        assert_eq!(status, 404);
        let (status, _) = http("GET", &format!("{base}/clusters/{name}/heal"), "").await;
        assert_eq!(status, 405);

        // While split, the operator keeps the partition: no pass heals it.
        status_until(&base, limit, &mut changes, |s| {
            s["metrics"]["segments"] == 2 && all_up_with_peers(s, 4, 1)
        })
        .await;
        let m = metrics(&base).await;
        let get =
            |metric: &str, node: &str| m.get(&(metric.to_string(), node.to_string())).copied();
        assert_eq!(
            get("regbox_cluster_partition_segments", ""),
            Some(2.0),
            "{m:?}"
        );
        for node in ["n0", "n1", "n2", "n3"] {
            assert_eq!(get("regbox_node_height", node), Some(2.0), "{node}: {m:?}");
            assert_eq!(get("regbox_node_up", node), Some(1.0));
            assert_eq!(get("regbox_node_peers", node), Some(1.0));
        }
        assert_eq!(get("regbox_node_restarts_total", "n1"), Some(1.0));
        assert!(get("regbox_reconcile_passes_total", "").unwrap() >= 3.0);
        assert!(
            get("regbox_reconcile_errors_total", "").is_some(),
            "the error counter is exported: {m:?}"
        );
        let (status, body) = http("POST", &format!("{base}/clusters/{name}/heal"), "").await;
        assert_eq!(status, 200, "{body}");

        // The manifest grows: the operator applies it, touching only what changed.
        std::fs::write(path, format!("name: {name}\nnodes: 5\ntopology: ring\n")).unwrap();
        status_until(&base, limit, &mut changes, |s| all_up_with_peers(s, 5, 2)).await;
        assert!(
            changes.iter().any(|c| c.starts_with("+ node n4")),
            "{changes:?}"
        );

        // Stopped, the operator keeps nothing: a hold made meanwhile is respected by the next one.
        operator.kill().await.unwrap();
        ok(&["-c", &name, "stop", "n3"]).await;
        let mut operator = start_operator(path, port);
        let state = status_until(&base, limit, &mut changes, |s| {
            s["metrics"]["passes"].as_u64().unwrap_or(0) >= 2
        })
        .await;
        assert_eq!(state["held"], serde_json::json!(["n3"]), "{state:#}");
        assert_eq!(node_state(&state, "n3")["up"], false);
        operator.kill().await.unwrap();
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// A docker-compose project of the repository's docker-compose.yml, taken down when dropped.
struct Compose {
    project: String,
    env: Vec<(&'static str, String)>,
}

impl Compose {
    fn command(&self, args: &[&str]) -> std::process::Output {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
        Command::new("docker-compose")
            .args(["-p", &self.project, "-f"])
            .arg(file)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("docker-compose runs (CI installs it)")
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.command(&["down", "--timeout", "5"]);
    }
}

#[test]
fn docker_compose_runs_the_operator_in_a_container_that_reaches_the_nodes() {
    run(async {
        let name = unique("compose");
        let _guard = Teardown(name.clone());
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut changes = Vec::new();
        let limit = Duration::from_secs(120);
        let image = ok(&["image", "build", "--self"]).await;
        assert!(image.starts_with("regbox/regbox:0."), "{image}");
        let compose = Compose {
            project: name.clone(),
            env: vec![
                ("REGBOX_CLUSTER", name.clone()),
                ("REGBOX_OPERATOR_PORT", port.to_string()),
                ("REGBOX_MANIFEST", "ring4.yaml".into()),
            ],
        };
        let up = compose.command(&["up", "-d"]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );

        // The operator, in its container, brings the cluster up and reaches every node's RPC.
        let state = status_until(&base, limit, &mut changes, |s| all_up_with_peers(s, 4, 2)).await;
        assert_eq!(state["cluster"], name.as_str());
        // It repairs a node killed from outside, and acts on requests.
        outside::kill(&format!("regbox-{name}-n0")).await;
        status_until(&base, limit, &mut changes, |s| {
            node_state(s, "n0")["restarts"] == 1 && all_up_with_peers(s, 4, 2)
        })
        .await;
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/mine"),
            r#"{"node":"n1","blocks":1}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");

        // The CLI sends status, node faults, partition, heal and mine to the operator it is given.
        let via = |args: &[&str]| {
            let mut cmd = regbox();
            cmd.env("REGBOX_OPERATOR", &base).args(args);
            cmd.output()
        };
        let json = |out: std::process::Output| -> serde_json::Value {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let nodes = json(via(&["status", "--json"]).await.unwrap());
        assert_eq!(nodes.as_array().unwrap().len(), 4, "{nodes}");
        assert!(
            nodes
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["state"] == "running"),
            "{nodes}"
        );
        json(
            via(&["-c", &name, "mine", "n2", "2", "--json"])
                .await
                .unwrap(),
        );
        let report = json(
            via(&["-c", &name, "partition", "--halves", "--json"])
                .await
                .unwrap(),
        );
        assert_eq!(
            report["graph"],
            serde_json::json!(["n0-n1", "n2-n3"]),
            "{report}"
        );
        json(
            via(&["-c", &name, "heal", "--sync", "--json"])
                .await
                .unwrap(),
        );
        let out = via(&["-c", &name, "stop", "n3"]).await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = via(&["-c", &name, "stop", "n9"]).await.unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "an unknown node is bad input, also via the operator"
        );
        let status = ok_json(&["status", &name, "--json"]).await;
        assert_eq!(status[3]["state"], "exited", "{status}");
        assert!(
            status
                .as_array()
                .unwrap()
                .iter()
                .take(3)
                .all(|n| n["height"] == 3),
            "{status}"
        );

        // Stopped, its container stays attached to the control network: `down` detaches it.
        let stop = compose.command(&["stop", "--timeout", "30"]);
        assert!(
            stop.status.success(),
            "{}",
            String::from_utf8_lossy(&stop.stderr)
        );
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
        let down = compose.command(&["down"]);
        assert!(
            down.status.success(),
            "{}",
            String::from_utf8_lossy(&down.stderr)
        );
    });
}

// ---------------------------------------------------------------------------------------------------
// Soak runs.

#[test]
fn a_soak_run_survives_every_fault_kind_and_writes_its_log_report_and_junit() {
    use regbox::core::soak::{parse_log, EventKind};
    run(async {
        let name = unique("soak");
        let _guard = Teardown(name.clone());
        let dir = tempfile::tempdir().unwrap();
        let (events, report, junit) = (
            dir.path().join("events.jsonl"),
            dir.path().join("report.html"),
            dir.path().join("junit.xml"),
        );
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/soak.yaml");
        let out = regbox()
            .args(["-c", &name, "soak"])
            .arg(&manifest)
            .args([
                "--duration",
                "100s",
                "--seed",
                "7",
                "--gap",
                "8s",
                "--hold",
                "8s",
            ])
            .args(["--faults", "partition,kill,restart,pause,netem", "--json"])
            // Seed 7 holds a two-way partition for 8 s: at a block a second on random nodes both sides
            // mine (all on one side: odds below 1 %), so one side reorganises and the report has all
            // five plots.
            .args(["--rate", "60"])
            .arg("--events")
            .arg(&events)
            .arg("--report")
            .arg(&report)
            .arg("--junit")
            .arg(&junit)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["ok"], true, "{summary}");
        assert_eq!(summary["seed"], 7);

        let log = parse_log(&std::fs::read_to_string(&events).unwrap()).unwrap();
        assert!(matches!(log[0].kind, EventKind::Start { seed: 7, .. }));
        assert!(matches!(
            log.last().unwrap().kind,
            EventKind::End { ok: true, .. }
        ));
        let count = |f: fn(&EventKind) -> bool| log.iter().filter(|e| f(&e.kind)).count();
        let faults: Vec<usize> = (log.iter())
            .filter_map(|e| match e.kind {
                EventKind::Fault { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        let ends: Vec<usize> = (log.iter())
            .filter_map(|e| match e.kind {
                EventKind::FaultEnd { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        assert!(faults.len() >= 3, "{} faults", faults.len());
        assert_eq!(faults, ends, "every fault ends");
        assert!(count(|k| matches!(k, EventKind::Converged { .. })) >= 1);
        assert!(count(|k| matches!(k, EventKind::Block { .. })) >= 1);
        let checks: Vec<&EventKind> = (log.iter())
            .map(|e| &e.kind)
            .filter(|k| matches!(k, EventKind::Invariant { .. }))
            .collect();
        assert!(!checks.is_empty());
        for check in &checks {
            assert!(
                matches!(check, EventKind::Invariant { ok: true, .. }),
                "{check:?}"
            );
        }

        // Five plots; the reorg plot is a "none" when no side of a partition mined (rare at this rate,
        // but not impossible: the run is seeded, which node mines when is not).
        let reorgs = count(|k| matches!(k, EventKind::Tip { reorg_depth, .. } if *reorg_depth > 0));
        let html = std::fs::read_to_string(&report).unwrap();
        if reorgs > 0 {
            assert_eq!(html.matches("<svg").count(), 5);
        } else {
            assert_eq!(html.matches("<svg").count(), 4);
            assert!(html.contains("none — no node reorganised its chain"));
        }
        let xml = std::fs::read_to_string(&junit).unwrap();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
        let cases = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count();
        assert_eq!(cases, checks.len());
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("failure"))
                .count(),
            0
        );
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn a_soak_with_a_bad_fault_word_exits_2_and_creates_nothing() {
    run(async {
        let name = unique("soakbad");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/soak.yaml");
        let dir = tempfile::tempdir().unwrap();
        let out = regbox()
            .current_dir(dir.path())
            .args(["-c", &name, "soak"])
            .arg(&manifest)
            .args(["--duration", "1m", "--faults", "partition,crash"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("unknown fault `crash`"),
            "{}",
            stderr(&out)
        );
        // No event log, no report, no container.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn a_fault_that_fails_takes_back_the_hold_it_made() {
    run(async {
        let name = unique("hold");
        let (mut cluster, _guard) = up(ring(&name, 3)).await;
        let hold = format!("regbox-{name}.hold.n1");
        let holds = || async {
            outside::containers(&name)
                .await
                .into_iter()
                .filter(|c| c.name == hold)
                .count()
        };
        // Stopped from outside: no hold. Killing a stopped node fails, and leaves none either.
        outside::kill(&format!("regbox-{name}-n1")).await;
        let out = regbox()
            .args(["-c", &name, "kill", "n1"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_eq!(holds().await, 0, "a failed kill made a hold that stayed");
        // A stop that works leaves one; start takes it away.
        cluster
            .fault("n2", regbox::fault::Fault::Stop, WAIT)
            .await
            .unwrap();
        cluster
            .fault("n2", regbox::fault::Fault::Start, WAIT)
            .await
            .unwrap();
        cluster
            .fault("n1", regbox::fault::Fault::Start, WAIT)
            .await
            .unwrap();
        cluster
            .fault("n1", regbox::fault::Fault::Pause, WAIT)
            .await
            .unwrap();
        assert_eq!(holds().await, 1);
        cluster
            .fault("n1", regbox::fault::Fault::Unpause, WAIT)
            .await
            .unwrap();
        assert_eq!(holds().await, 0);
    });
}

/// `regbox ARGS --json` here, and the same through the operator at `base`: both reports.
async fn here_and_there(
    base: &str,
    name: &str,
    args: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let here = ok_json(&[&["-c", name, "--json"], args].concat()).await;
    let there = ok_json(&[&["--operator", base, "-c", name, "--json"], args].concat()).await;
    (here, there)
}

#[test]
fn every_verb_gives_the_same_report_through_the_operator_as_here() {
    run(async {
        let name = unique("verbs");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "verbs.yaml",
            &format!(
                "name: {name}\nnodes:\n  - {{name: n0, wallet: true}}\n  - {{name: n1, wallet: true}}\n  - {{name: n2}}\n  - {{name: n3}}\ntopology: ring\n"
            ),
        );
        let path = file.to_str().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        // The operator keeps the manifest's cluster: it brings it up itself.
        let mut operator = start_operator(path, port);
        let mut changes = Vec::new();
        status_until(&base, Duration::from_secs(120), &mut changes, |s| {
            all_up_with_peers(s, 4, 2)
        })
        .await;
        let nodes = |v: &serde_json::Value| -> Vec<(String, String, u64, Vec<String>)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    let peers = serde_json::from_value(n["peers"].clone()).unwrap();
                    let name = n["name"].as_str().unwrap().to_string();
                    let state = n["state"].as_str().unwrap().to_string();
                    (name, state, n["height"].as_u64().unwrap_or(0), peers)
                })
                .collect()
        };

        // Readers.
        let (here, there) = here_and_there(&base, &name, &["status"]).await;
        assert_eq!(nodes(&here), nodes(&there));
        let (here, there) = here_and_there(&base, &name, &["url", "n1"]).await;
        assert_eq!(here, there);
        let (here, there) = here_and_there(&base, &name, &["mine", "n0", "101"]).await;
        assert_eq!(
            (&here["node"], &there["node"]),
            (&"n0".into(), &"n0".into())
        );
        assert_eq!(
            there["height"].as_u64(),
            here["height"].as_u64().map(|h| h + 101)
        );
        assert_eq!(there["blocks"].as_array().unwrap().len(), 101);
        let (here, there) = here_and_there(&base, &name, &["send", "n0", "n1", "0.5"]).await;
        for v in [&here, &there] {
            assert_eq!(
                (&v["from"], &v["to"], &v["amount_sat"]),
                (&"n0".into(), &"n1".into(), &50_000_000.into()),
                "{v}"
            );
            assert_eq!(v["txid"].as_str().unwrap().len(), 64, "{v}");
        }
        let (here, there) = here_and_there(&base, &name, &["sync"]).await;
        assert_eq!(here, there);
        assert_eq!(here["mempool_size"], 2, "{here}");
        let (here, there) = here_and_there(&base, &name, &["wait", "height", "202", "n3"]).await;
        assert_eq!(here, there);
        let (here, there) = here_and_there(&base, &name, &["rpc", "n2", "getblockcount"]).await;
        assert_eq!((here.clone(), there), (here, serde_json::json!(202)));
        let (here, there) = here_and_there(&base, &name, &["logs", "n3", "--tail", "5"]).await;
        for v in [&here, &there] {
            assert_eq!(v["node"], "n3");
            assert_eq!(v["text"].as_str().unwrap().lines().count(), 5, "{v}");
        }
        let (here, there) =
            here_and_there(&base, &name, &["measure", "propagation", "--blocks", "1"]).await;
        for key in ["kind", "origin", "unreachable"] {
            assert_eq!(here[key], there[key], "{key}");
        }
        assert_eq!(there["rounds"][0]["arrivals"].as_array().unwrap().len(), 4);
        let (here, there) = here_and_there(&base, &name, &["apply", path, "--dry-run"]).await;
        assert_eq!(here, there);
        assert_eq!(
            (&there["exists"], &there["diff"]),
            (&true.into(), &serde_json::json!([]))
        );

        // Changes: the whole sequence here, then there; each sequence leaves the cluster as it found it.
        let changes: [&[&str]; 10] = [
            &["connect", "n0", "n2"][..],
            &["disconnect", "n0", "n2"],
            &["netem", "n0", "--delay", "10ms", "--to", "n1"],
            &["cut", "n2", "n3"],
            &["cut", "--clear"],
            &["netem", "--clear"],
            &["stop", "n3"],
            &["start", "n3"],
            &["partition", "--halves"],
            &["heal"],
        ];
        let mut here = Vec::new();
        for args in changes {
            here.push(ok_json(&[&["-c", &name, "--json"], args].concat()).await);
        }
        for (args, here) in changes.iter().zip(here) {
            let there =
                ok_json(&[&["--operator", &base, "-c", &name, "--json"][..], *args].concat()).await;
            assert_eq!(here, there, "{args:?}");
        }
        let here = ok_json(&["-c", &name, "--json", "partition", "--halves"]).await;
        assert_eq!(here["graph"], serde_json::json!(["n0-n1", "n2-n3"]));
        let there = ok_json(&["--operator", &base, "-c", &name, "--json", "heal", "--sync"]).await;
        assert_eq!(there["height"], 204, "{there}");

        // A followed log streams through the operator.
        let mut follow = regbox()
            .args([
                "--operator",
                &base,
                "-c",
                &name,
                "logs",
                "-f",
                "n1",
                "--tail",
                "2",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = follow.stdout.take().unwrap();
        ok(&["--operator", &base, "-c", &name, "mine", "n1", "1"]).await;
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !seen.contains("height=205") {
            let mut buf = [0u8; 4096];
            let read = tokio::time::timeout_at(
                deadline,
                tokio::io::AsyncReadExt::read(&mut out, &mut buf),
            )
            .await
            .expect("the followed log shows the new block within 30 s")
            .unwrap();
            assert!(read > 0, "the stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..read]));
        }
        follow.kill().await.unwrap();

        // Bad input through the operator exits 2 with the engine's reason, as here.
        let bad = regbox()
            .args(["--operator", &base, "-c", &name, "mine", "n9", "1"])
            .output()
            .await
            .unwrap();
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("no node `n9`"));

        // Down, through the operator, is the last verb.
        let down = ok_json(&["--operator", &base, "-c", &name, "--json", "down"]).await;
        assert_eq!(down["cluster"], name.as_str());
        assert!(down["containers"].as_u64().unwrap() >= 4, "{down}");
        operator.kill().await.unwrap();
    });
}
