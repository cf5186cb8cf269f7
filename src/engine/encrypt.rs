//! Encrypted overlays across hosts: the probe that shows whether encrypted traffic crosses between the
//! hosts here, and the decision a manifest's `encrypt: auto | on | off` makes from it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::TryStreamExt;

use crate::core::cluster::blueprint::{self, LABEL_ROLE};
use crate::core::cluster::manifest::{ClusterSpec, Encrypt};
use crate::core::cluster::subnet::Subnet;
use crate::engine::docker::{ContainerSpec, Docker, Net};
use crate::engine::error::{Error, Result};
use crate::engine::reconcile::create_network;

/// How long the probe's client keeps asking the server across the encrypted overlay (seconds).
const PROBE_WAIT_SECS: u64 = 10;

/// Past this a probe container that still runs is taken as hung.
const PROBE_DEADLINE: Duration = Duration::from_secs(PROBE_WAIT_SECS + 30);

/// The label of everything the probe makes (the leftovers check of CI finds it).
const PROBE_LABEL: &str = "regbox.probe";

/// Whether the overlays of the cluster `spec` declares across hosts are encrypted, decided before any
/// of them exists: an overlay the cluster made already stays as it was made; `off` never asks; else
/// the probe decides — `auto` encrypts where it passes and goes on unencrypted with a warning that
/// says why not; `on` refuses ([`Error::Unencrypted`], bad input) with the probe's reason. Nothing
/// to decide on one engine (false), nothing to probe with one host.
pub(crate) async fn decide(docker: &Docker, spec: &ClusterSpec) -> Result<bool> {
    if spec.hosts.is_empty() {
        return Ok(false);
    }
    let nets = (docker.labeled_networks(&blueprint::cluster_filter(Some(&spec.name)))).await?;
    let control =
        (nets.iter()).find(|n| n.labels.get(LABEL_ROLE).map(String::as_str) == Some("control"));
    if let Some(made) = control {
        if spec.encrypt == Encrypt::On && !made.encrypted {
            return Err(Error::Unencrypted(format!(
                "cluster `{}` was made with unencrypted overlays; `regbox down` it first",
                spec.name
            )));
        }
        return Ok(made.encrypted);
    }
    // With one host nothing crosses between hosts: `on` gets its encrypted overlays (the engine
    // makes them; no packet ever needs IPsec), `auto` keeps them plain; no probe either way.
    if spec.encrypt == Encrypt::Off || spec.hosts.len() < 2 {
        return Ok(spec.encrypt == Encrypt::On);
    }
    match probe(spec, true).await? {
        None => Ok(true),
        Some(why) if spec.encrypt == Encrypt::On => Err(Error::Unencrypted(why)),
        Some(why) => {
            tracing::warn!(
                "the overlays of `{}` are NOT encrypted (`encrypt: auto`): {why}",
                spec.name
            );
            Ok(false)
        }
    }
}

/// Whether traffic crosses an overlay — `encrypted` or plain — between the hosts of `spec`: a
/// throw-away attachable overlay, a bitcoind listening for RPC on it on the first host, and from every
/// other host a `bitcoin-cli` asking it for its block count over that overlay (all from the first
/// node's image, which must be on every host). Everything it made is removed again. None when every
/// host got its answer, else why not.
pub async fn probe(spec: &ClusterSpec, encrypted: bool) -> Result<Option<String>> {
    if spec.hosts.len() < 2 {
        return Ok(Some(
            "the probe needs two hosts; the manifest names one".into(),
        ));
    }
    // A handle of its own, whose overlays are encrypted or not.
    let docker = crate::engine::lifecycle::connect(spec).await?;
    docker.encrypt_overlays(encrypted);
    let name = format!("regbox-probe-{:08x}", rand::random::<u32>());
    let labels = HashMap::from([(PROBE_LABEL.to_string(), "1".to_string())]);
    let (net, subnet) = create_network(&docker, &name, labels.clone()).await?;
    let server = format!("{name}-{}", spec.hosts[0].name);
    let clients: Vec<(String, String)> = (spec.hosts[1..].iter())
        .map(|h| (h.name.clone(), format!("{name}-{}", h.name)))
        .collect();
    let probe = Probe {
        docker: &docker,
        image: &spec.nodes[0].image,
        labels,
        net,
        subnet,
        encrypted,
    };
    let started = Instant::now();
    let outcome = probe.run(&spec.hosts[0].name, &server, &clients).await;
    for c in std::iter::once(&server).chain(clients.iter().map(|(_, c)| c)) {
        if let Err(e) = docker.remove_container(c).await {
            tracing::warn!("could not remove the probe container `{c}`: {e}");
        }
    }
    if let Err(e) = docker.remove_network(&probe.net).await {
        tracing::warn!("could not remove the probe network `{name}`: {e}");
    }
    tracing::info!(
        "encrypted overlay probe: {} in {:?}",
        outcome.as_ref().map_or("failed", |o| match o {
            None => "passed",
            Some(_) => "nothing crossed",
        }),
        started.elapsed()
    );
    outcome
}

/// One probe's overlay and what its containers are made of.
struct Probe<'a> {
    docker: &'a Docker,
    image: &'a str,
    labels: HashMap<String, String>,
    net: Net,
    subnet: Subnet,
    encrypted: bool,
}

impl Probe<'_> {
    /// Starts the server on `first`, then every client on its host side by side; why any failed.
    async fn run(
        &self,
        first: &str,
        server: &str,
        clients: &[(String, String)],
    ) -> Result<Option<String>> {
        // A static address below the range Docker hands out itself.
        let ip = self.subnet.host(2);
        let rpc = [
            "-regtest",
            "-rpcport=18443",
            "-rpcuser=probe",
            "-rpcpassword=probe",
        ];
        let mut args: Vec<String> = rpc.iter().map(|a| a.to_string()).collect();
        args.extend(
            [
                "-server",
                "-listen=0",
                "-rpcbind=0.0.0.0",
                "-rpcallowip=0.0.0.0/0",
                "-datadir=/tmp",
            ]
            .into_iter()
            .chain([
                "-dbcache=4",
                "-maxmempool=5",
                "-maxsigcachesize=1",
                "-printtoconsole=0",
            ])
            .map(String::from),
        );
        self.start(first, server, "bitcoind", args, Some(ip))
            .await?;
        let asks = clients.iter().map(|(host, client)| async move {
            let mut args: Vec<String> = rpc.iter().map(|a| a.to_string()).collect();
            args.extend([
                format!("-rpcconnect={ip}"),
                // Where nothing crosses, a connection attempt hears nothing back (no refusal): each
                // one is given up after 3 s, so that the wait ends when it should.
                "-rpcclienttimeout=3".into(),
                "-rpcwait".into(),
                format!("-rpcwaittimeout={PROBE_WAIT_SECS}"),
                "getblockcount".into(),
            ]);
            self.start(host, client, "bitcoin-cli", args, None).await?;
            let said = self.finished(client).await?;
            Ok::<_, Error>((said.trim() != "0").then(|| {
                let last = said.lines().last().unwrap_or("(nothing)").trim();
                let (kind, hint) = match self.encrypted {
                    true => ("an encrypted", "; the engines ask the kernel for IPsec (XFRM, ESP), which this kernel may lack"),
                    false => ("a plain", ""),
                };
                format!(
                    "from host `{host}`, nothing crossed {kind} overlay to host `{first}` in \
                     {PROBE_WAIT_SECS} s (bitcoin-cli: {last}){hint}"
                )
            }))
        });
        let failed: Vec<String> = futures::future::try_join_all(asks)
            .await?
            .into_iter()
            .flatten()
            .collect();
        if failed.is_empty() {
            return Ok(None);
        }
        // A server that stopped is the probe's own failure, not the overlay's.
        if !self.docker.is_running(server).await? {
            let said = self.finished(server).await?;
            return Err(Error::Probe(format!(
                "its bitcoind on host `{first}` stopped: {}",
                said.lines().last().unwrap_or("(nothing)")
            )));
        }
        Ok(Some(failed.join("; ")))
    }

    /// Makes and starts container `name` on `host`, on the probe's overlay.
    async fn start(
        &self,
        host: &str,
        name: &str,
        program: &str,
        cmd: Vec<String>,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Result<()> {
        self.docker.place(name, host);
        let spec = ContainerSpec {
            image: self.image.to_string(),
            entrypoint: vec![program.into()],
            cmd,
            labels: self.labels.clone(),
            network: Some((self.net.clone(), ip)),
            // A bound, not a reservation: bitcoind refuses a datadir with less than ≈ 50 MB free.
            tmpfs: vec![("/tmp".into(), "rw,nosuid,size=1g".into())],
            memory: Some(256 << 20),
            pids_limit: Some(blueprint::PIDS_LIMIT),
            stop_timeout: 1,
            ..ContainerSpec::default()
        };
        self.docker.create(name, &spec).await?;
        Ok(self.docker.start(name).await?)
    }

    /// Waits until container `name` has ended (at most [`PROBE_DEADLINE`]); what it printed.
    async fn finished(&self, name: &str) -> Result<String> {
        let deadline = Instant::now() + PROBE_DEADLINE;
        while self.docker.is_running(name).await? {
            if Instant::now() > deadline {
                return Ok(format!("still running after {PROBE_DEADLINE:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let lines: Vec<String> = self.docker.logs(name, None, false).try_collect().await?;
        Ok(lines.concat())
    }
}
