//! What the integration tests, the multi-host test and the benchmarks share: an outside view of the
//! engine (straight through bollard, not regbox's facade), unique names, the node image built once,
//! drop guards that tear clusters down, running the `regbox` binary, a soak run's cluster and files,
//! and a headless browser (`browser`).
#![allow(dead_code)]

pub mod browser;

use regbox::cluster::{self, Cluster, UpOptions};
use regbox::manifest::{self, ClusterSpec};
use regbox::progress::Progress;
use regbox::topology::Graph;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// What the engine holds, read straight through bollard rather than regbox's own facade: an outside
/// view for the checks.
pub mod outside {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use bollard::query_parameters::{
        ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    };
    use regbox::core::cluster::subnet::Subnet;

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

    pub fn engine() -> bollard::Docker {
        bollard::Docker::connect_with_defaults()
            .expect("these tests need a reachable Docker engine")
    }

    /// The label of one cluster's resources, or of every cluster's.
    pub fn cluster_label(cluster: Option<&str>) -> String {
        cluster.map_or("regbox.cluster".to_string(), |c| {
            format!("regbox.cluster={c}")
        })
    }

    pub fn label_filter(label: &str) -> HashMap<&'static str, Vec<String>> {
        HashMap::from([("label", vec![label.to_string()])])
    }

    /// The cluster's containers, stopped ones included.
    pub async fn containers(cluster: &str) -> Vec<Container> {
        containers_on(&engine(), &cluster_label(Some(cluster))).await
    }

    /// The containers carrying `label` on one engine, stopped ones included.
    pub async fn containers_on(api: &bollard::Docker, label: &str) -> Vec<Container> {
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&label_filter(label))
            .build();
        api.list_containers(Some(opts))
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
        networks_on(&engine(), &cluster_label(cluster)).await
    }

    /// The networks carrying `label` on one engine.
    pub async fn networks_on(api: &bollard::Docker, label: &str) -> Vec<Network> {
        let opts = ListNetworksOptionsBuilder::new()
            .filters(&label_filter(label))
            .build();
        api.list_networks(Some(opts))
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

    pub fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
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

    /// Unix time now, as the engine's event filters take it (`seconds.nanoseconds`).
    pub fn event_time() -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
    }

    /// The engine's events for cluster `cluster`'s containers between `since` and `until`
    /// ([`event_time`]): each as (container id, action).
    pub async fn container_events(
        cluster: &str,
        since: &str,
        until: &str,
    ) -> Vec<(String, String)> {
        use bollard::query_parameters::EventsOptionsBuilder;
        use futures::StreamExt;
        let mut filters = label_filter(&cluster_label(Some(cluster)));
        filters.insert("type", vec!["container".to_string()]);
        let opts = EventsOptionsBuilder::new()
            .since(since)
            .until(until)
            .filters(&filters)
            .build();
        engine()
            .events(Some(opts))
            .map(|e| {
                let e = e.unwrap();
                let id = e.actor.and_then(|a| a.id).unwrap_or_default();
                (id, e.action.unwrap_or_default())
            })
            .collect()
            .await
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
        volumes_on(&engine(), &cluster_label(Some(cluster))).await
    }

    /// The names of the volumes carrying `label` on one engine.
    pub async fn volumes_on(api: &bollard::Docker, label: &str) -> Vec<String> {
        let opts = ListVolumesOptionsBuilder::new()
            .filters(&label_filter(label))
            .build();
        api.list_volumes(Some(opts))
            .await
            .unwrap()
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect()
    }
}

pub const TEST_TIMEOUT: Duration = Duration::from_secs(300);

pub const WAIT: Duration = Duration::from_secs(60);

/// A cluster name no other test (or earlier run) uses: the library's helper for parallel tests.
pub fn unique(tag: &str) -> String {
    regbox::unique_name(tag)
}

/// Builds the node image once per test binary, before any test brings a cluster up, so tests running in
/// parallel don't all build it at once.
pub fn ensure_image() -> &'static str {
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
pub struct TempFile {
    _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

impl TempFile {
    pub fn new(file_name: &str, text: &str) -> TempFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name);
        std::fs::write(&path, text).unwrap();
        TempFile { _dir: dir, path }
    }

    pub fn to_str(&self) -> Option<&str> {
        self.path.to_str()
    }

    pub fn display(&self) -> std::path::Display<'_> {
        self.path.display()
    }
}

impl AsRef<std::ffi::OsStr> for TempFile {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path.as_os_str()
    }
}

/// Removes a cluster when dropped, so a failing test leaves nothing behind.
pub struct Teardown(pub String);

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

/// The ping time a node reports for its session with `peer` (named in its user agent): `ping` asks the
/// node for a fresh ping, `peers` reads its `getpeerinfo`; polled until `want` holds of the time (or
/// [`WAIT`] passes, failing with the last value seen by `who`).
pub async fn ping_until<P, Pf, Q, Qf>(
    who: &str,
    peer: &str,
    mut ping: P,
    mut peers: Q,
    want: impl Fn(f64) -> bool,
) -> f64
where
    P: FnMut() -> Pf,
    Pf: Future<Output = ()>,
    Q: FnMut() -> Qf,
    Qf: Future<Output = Vec<serde_json::Value>>,
{
    let comment = format!("({peer})");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        ping().await;
        // A round trip takes up to the delay being measured; look again soon after.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let last = (peers().await.iter())
            .find(|p| p["subver"].as_str().is_some_and(|s| s.contains(&comment)))
            .and_then(|p| p["pingtime"].as_f64());
        if let Some(t) = last.filter(|&t| want(t)) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{who} to {peer}: ping time {last:?}"
        );
    }
}

/// The TCP counters in the text of `/proc/net/snmp` or `/proc/net/netstat` — groups `Tcp:` and
/// `TcpExt:` — by name (`Tcp:InSegs`, `TcpExt:TCPOFOQueue`). Each group is a line of names and a line
/// of values, both starting with the group.
pub fn tcp_counters_in(text: &str) -> BTreeMap<String, u64> {
    let lines: Vec<&str> = text.lines().collect();
    let mut counters = BTreeMap::new();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let mut names = names.split_whitespace();
        let group = names.next().unwrap_or_default();
        if group != "Tcp:" && group != "TcpExt:" {
            continue;
        }
        for (n, v) in names.zip(values.split_whitespace().skip(1)) {
            if let Ok(v) = v.parse() {
                counters.insert(format!("{group}{n}"), v);
            }
        }
    }
    counters
}

/// Removes a container when dropped (one a test made by hand, such as a lock held by the test
/// itself, which a [`Teardown`] would wait on), so a failing assertion cannot leave it behind.
pub struct RemoveContainer(pub String);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            use bollard::query_parameters::RemoveContainerOptionsBuilder;
            let opts = RemoveContainerOptionsBuilder::new().force(true).build();
            let rt = tokio::runtime::Runtime::new().unwrap();
            // Gone already (the test removed it) is fine.
            let _ = rt.block_on(outside::engine().remove_container(&name, Some(opts)));
        })
        .join();
    }
}

/// A docker-compose project, taken down (volumes too) when dropped, so a failing assertion cannot
/// leave it running.
pub struct Compose {
    pub project: String,
    pub file: std::path::PathBuf,
    pub env: Vec<(&'static str, String)>,
}

impl Compose {
    /// `docker-compose -p PROJECT -f FILE ARGS`, whatever its outcome.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("docker-compose")
            .args(["-p", &self.project, "-f"])
            .arg(&self.file)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("docker-compose runs (.ci/run installs it)")
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.command(&["down", "-v", "--timeout", "5"]);
    }
}

/// Imports a one-file image named `image` for a test: `program` (C) compiled statically as
/// `/usr/bin/bitcoind`, owned by root with `mode`. Dropping the returned name removes the image.
pub fn import_bitcoind(image: &str, program: &str, mode: &str) -> Alias {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.c"), program).unwrap();
    let bin = dir.path().join("tree/usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cc = Command::new("gcc")
        .args(["-O1", "-static", "-o"])
        .arg(bin.join("bitcoind"))
        .arg(dir.path().join("b.c"))
        .status()
        .unwrap();
    assert!(cc.success());
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "chmod {mode} tree/usr/bin/bitcoind && tar --owner=0 --group=0 -C tree -c . \
             | docker import --change 'ENV PATH=/usr/bin' - {image}"
        ))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Alias(image.to_string())
}

/// Gives the node image a second name for a test, and takes that name away when dropped.
pub struct Alias(pub String);

impl Alias {
    pub async fn new(repo: &str, tag: &str) -> Alias {
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
pub fn run<F: Future<Output = ()>>(body: F) {
    ensure_image();
    run_without_image(body);
}

/// `run` for a test that needs no node image (bad input refused before anything exists, files checked
/// without Docker): it does not wait for the image to be built.
pub fn run_without_image<F: Future<Output = ()>>(body: F) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        tokio::time::timeout(TEST_TIMEOUT, body)
            .await
            .expect("test timed out");
    });
}

pub fn load(file: &str, name: &str) -> ClusterSpec {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let read = |named: &str| std::fs::read_to_string(dir.join(named)).map_err(|e| e.to_string());
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut spec = manifest::parse_reading(&text, file, &read).unwrap();
    spec.name = name.to_string();
    spec
}

pub fn cluster_spec(name: &str, n: usize, topology: &str) -> ClusterSpec {
    let yaml = format!("name: {name}\nnodes: {n}\ntopology: {topology}\n");
    manifest::parse(&yaml, "inline").unwrap()
}

pub fn ring(name: &str, n: usize) -> ClusterSpec {
    cluster_spec(name, n, "ring")
}

pub async fn up(spec: ClusterSpec) -> (Cluster, Teardown) {
    let guard = Teardown(spec.name.clone());
    let cluster = Cluster::up(spec, &UpOptions::default())
        .await
        .expect("cluster comes up");
    (cluster, guard)
}

/// Every container, volume and network carrying the cluster's label.
pub async fn leftovers(name: &str) -> Vec<String> {
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

pub async fn graph(cluster: &Cluster) -> Graph {
    let (graph, unknown) = cluster.peer_graph().await.unwrap();
    assert!(unknown.is_empty(), "unidentified peers: {unknown:?}");
    graph
}

/// The regbox binary, killed if the test gives up on it (every test runs under a time limit).
/// Sends Ctrl-C (SIGINT) to a running regbox.
pub fn interrupt(child: &tokio::process::Child) {
    let pid = child
        .id()
        .expect("the process is still running")
        .to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
}

pub fn regbox() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_regbox"));
    cmd.kill_on_drop(true);
    cmd
}

/// `regbox -c NAME run [FILE] --junit …`: the process output and the JUnit XML it wrote.
pub async fn run_scenario(name: &str, file: Option<&Path>) -> (std::process::Output, String) {
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

/// A soak run on a cluster of its own: a unique name (its cluster torn down when this is dropped,
/// also when the test fails) and a directory, gone with it, for the run's event log and report.
pub struct SoakRun {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub events: std::path::PathBuf,
    pub report: std::path::PathBuf,
    _guard: Teardown,
}

impl SoakRun {
    pub fn new(tag: &str) -> SoakRun {
        let name = unique(tag);
        let dir = tempfile::tempdir().unwrap();
        SoakRun {
            events: dir.path().join("events.jsonl"),
            report: dir.path().join("report.html"),
            _guard: Teardown(name.clone()),
            name,
            dir,
        }
    }

    /// `regbox -c NAME soak MANIFEST ARGS --events … --report …`, to run or spawn (more arguments
    /// may follow); `args` as typed on a command line, split at whitespace.
    pub fn command(&self, manifest: &Path, args: &str) -> tokio::process::Command {
        let mut cmd = regbox();
        cmd.args(["-c", &self.name, "soak"])
            .arg(manifest)
            .args(args.split_whitespace())
            .arg("--events")
            .arg(&self.events)
            .arg("--report")
            .arg(&self.report);
        cmd
    }

    /// The run's event log, read back.
    pub fn log(&self) -> Vec<regbox::core::soak::Event> {
        regbox::core::soak::parse_log(&std::fs::read_to_string(&self.events).unwrap()).unwrap()
    }
}

/// The soak example manifest (`manifests/soak.yaml`).
pub fn soak_manifest() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/soak.yaml")
}

/// Runs regbox and returns its stdout, failing the test on a non-zero exit.
pub async fn ok(args: &[&str]) -> String {
    let out = regbox().args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub async fn ok_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args).await).unwrap()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One HTTP request to the operator with a real HTTP client: the status and the body.
pub async fn try_http(method: &str, url: &str, body: &str) -> Result<(u16, String), String> {
    let json = [("content-type", "application/json")];
    let (status, _, text) = try_http_with(method, url, body, &json).await?;
    Ok((status, text))
}

/// One HTTP request with `headers`: the status, the `www-authenticate` header and the body.
pub async fn try_http_with(
    method: &str,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, Option<String>, String), String> {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        status,
        challenge,
        String::from_utf8(bytes.to_vec()).unwrap(),
    ))
}

pub async fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    try_http(method, url, body).await.unwrap()
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn edges(g: &Graph) -> Vec<(usize, usize)> {
    let mut e: Vec<_> = g.edges().collect();
    e.sort();
    e
}

/// Runs two regbox commands at the same moment; returns both outputs.
pub async fn at_once(a: &[&str], b: &[&str]) -> (std::process::Output, std::process::Output) {
    let (x, y) = tokio::join!(regbox().args(a).output(), regbox().args(b).output());
    (x.unwrap(), y.unwrap())
}

/// The middle of some timings (the upper one of an even count).
pub fn median(xs: &[Duration]) -> Duration {
    let mut xs = xs.to_vec();
    xs.sort();
    xs[xs.len() / 2]
}
