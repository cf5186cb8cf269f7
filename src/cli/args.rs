//! The command line's argument types (clap derive): global flags, commands and their arguments. Parsing
//! does no I/O; what a word means (a cluster, a node, a file) is decided when the command runs (shell
//! completion alone asks the engine for names, see `complete`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cli::complete::{clusters, nodes};
use crate::core::cluster::blueprint::RELAY_PORT;
use crate::core::cluster::subnet::Subnet;
use crate::core::faults::{clock, link};
use crate::core::soak::{self, FaultKind};

/// `--version`: the crate version and the node image a cluster gets unless it names one.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (default node image ",
    "regbox/bitcoind",
    ": the newest regbox node image on the engine, else one built from Debian's bitcoin-knots; \
     `regbox version` also asks the engine)"
);

/// Exit codes and environment variables, at the end of `--help`.
const AFTER_HELP: &str = "\
Exit codes:
  0    success
  1    runtime failure (Docker, bitcoind, a timeout, a graph mismatch, a failed scenario step, a broken soak invariant, a lock held too long)
  2    bad input (manifest, scenario, arguments, unknown cluster or node, invalid partition); nothing was changed
  130  interrupted (Ctrl-C)

Environment:
  REGBOX_CLUSTER        the cluster, as -c
  REGBOX_WAIT_LOCK      seconds to wait for another regbox changing the cluster, as --wait-lock
  REGBOX_IMAGE          the image of nodes without their own, as `up --image`
  REGBOX_DEBIAN_MIRROR  the Debian mirror the node image is built from (default http://deb.debian.org/debian)
  REGBOX_PACKAGE        the Debian package providing bitcoind (default bitcoin-knots)
  REGBOX_DEBIAN_KEYRING the keyring that verifies the mirror (default Debian's archive keyring)
  REGBOX_CORE_MIRROR    where Bitcoin Core releases are fetched from (default https://bitcoincore.org/bin)
  REGBOX_CORE_KEYRING   the keys whose signatures a Core release needs, as `image build --keyring`
  REGBOX_FAKETIME       the libfaketime an `image build --from` image carries (default: the host's)
  REGBOX_INIT           the init an `image build` image carries (default: regbox's own)
  DOCKER_HOST           the Docker engine (default: the local socket)
  RUST_LOG              log filter for stderr (e.g. regbox=debug)
  TMPDIR                where an image build works (removed afterwards)
  SOURCE_DATE_EPOCH     the file times inside a built node image
  REGBOX_COMPLETE       set by the completion script: answer a completion, run nothing
  REGBOX_BIN            the regbox binary the fault agent's image is made from (default: this one)
  REGBOX_CLOCK          set by regbox in a node's container: the declared clock its init sets again
  REGBOX_INIT_TOKEN     set by regbox in a node's container: the token its init asks of a request
  REGBOX_OPERATOR       the operator every command on a cluster goes to, as --operator
  REGBOX_TOKEN          the operator's bearer token, when no --token-file is given
  REGBOX_OPERATOR_CA    the CA an https:// operator is trusted by, as --operator-ca
  REGBOX_RELAY_TOKEN    the token `regbox relay` requires of every CONNECT, as `relay --token`";

/// Regtest in a box: many bitcoind nodes in Docker, wired into any topology.
#[derive(Debug, Parser)]
#[command(name = "regbox", version, long_version = LONG_VERSION, about, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Machine-readable JSON on stdout instead of tables (read commands), and no progress bars; the same
    /// as `-o json`.
    #[arg(long, global = true)]
    pub json: bool,
    /// Output form: `table` (default), `wide` (tables with more columns: `status` adds control
    /// addresses and RPC endpoints) or `json`.
    #[arg(short, long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// The cluster to act on, in any position; may be omitted when only one exists. `up`, `run` and
    /// `soak` take it as the cluster's name instead of the manifest's.
    #[arg(
        short,
        long,
        global = true,
        value_name = "CLUSTER",
        env = "REGBOX_CLUSTER",
        add = clusters()
    )]
    pub cluster: Option<String>,
    /// Seconds a command that changes a cluster waits while another regbox is changing it (0: fail at
    /// once, naming the holder).
    #[arg(
        long,
        global = true,
        value_name = "S",
        env = "REGBOX_WAIT_LOCK",
        default_value_t = 120
    )]
    pub wait_lock: u64,
    /// An operator's URL (e.g. http://127.0.0.1:9181): every command on a cluster goes to it (`up`,
    /// `apply`, `down`, `status`, `partition`, `netem`, `logs -f`, …). Without it they go to the
    /// operator at http://127.0.0.1:9181 only when the nodes cannot be reached from here (remote
    /// DOCKER_HOST, Docker Desktop, a job in a container).
    #[arg(long, global = true, value_name = "URL", env = "REGBOX_OPERATOR")]
    pub operator: Option<String>,
    /// A file holding the operator's bearer token (else REGBOX_TOKEN): sent with every request to
    /// `--operator`, and required by `regbox operator` of every request but /healthz (and /metrics).
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// A PEM file of the CA (or the self-signed certificate) an https:// `--operator` is trusted by;
    /// no other is (the system's roots are not read).
    #[arg(long, global = true, value_name = "FILE", env = "REGBOX_OPERATOR_CA")]
    pub operator_ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// How `up` and `apply` go about it.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Limit for each wait (readiness, wiring, verification), in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// The image of every node without an `image:` of its own (in place of `defaults.image`).
    #[arg(long, value_name = "IMAGE", env = "REGBOX_IMAGE")]
    pub image: Option<String>,
    /// Print the plan (containers to create, recreate, start or remove; nodes to heal; edges to
    /// connect or disconnect; link faults to change) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What `-o` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Wide,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring a cluster up (or to its declared state), wire and verify its topology, print its status.
    Up {
        /// Cluster manifest (YAML); without one, a ring of 4 nodes named `regbox`.
        manifest: Option<PathBuf>,
        #[command(flatten)]
        how: UpArgs,
    },
    /// Print the changes a manifest makes to its cluster (nodes to add, remove or recreate, edges, link
    /// faults) as a diff, then carry them out touching only what changed: `up`'s path.
    Apply {
        /// Cluster manifest (YAML).
        manifest: PathBuf,
        #[command(flatten)]
        how: UpArgs,
    },
    /// Remove every container, volume and network of a cluster.
    Down {
        /// The cluster (the same as -c).
        #[arg(value_name = "CLUSTER", add = clusters())]
        name: Option<String>,
        /// Remove every regbox cluster on this engine.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
    /// List clusters.
    Ls,
    /// Keep clusters as declared until stopped: repair on a timer, on container events and on manifest
    /// changes; serve /status, /metrics, actions and a live web page (at /) over HTTP.
    ///
    /// With manifests, their clusters are applied (when missing or changed) and kept; without, every
    /// cluster on the engine is kept as recorded. Nodes stopped, killed or paused by regbox stay so
    /// until a changed manifest is applied (its declared state has every node running and healed).
    Operator {
        /// Manifests of the clusters to keep.
        manifests: Vec<PathBuf>,
        /// Address of the HTTP interface. Any address but loopback needs a token (--token-file or
        /// REGBOX_TOKEN).
        #[arg(long, default_value = "127.0.0.1:9181", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Seconds between passes when nothing triggers one.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
        /// Limit for each wait inside a pass or a request, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// /metrics needs the token too (without it, /metrics and /healthz are open to anyone who
        /// reaches the address).
        #[arg(long)]
        metrics_auth: bool,
        /// Connections served at once; one more is answered 503 and closed at once.
        #[arg(long, value_name = "N", default_value_t = crate::operator::http::DEFAULT_MAX_CONNECTIONS as u64,
              value_parser = clap::value_parser!(u64).range(1..=100_000))]
        max_connections: u64,
        /// Serve HTTPS with this certificate (PEM; its chain may follow it); needs --tls-key.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1); needs --tls-cert.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The longest any request may run, in seconds, when shorter than its verb's own deadline
        /// (its waits plus 30 s); past it the request answers 504 and its work is dropped.
        #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
        request_deadline: Option<u64>,
    },
    /// Open a live picture of a cluster in the browser: a read-only operator on loopback that serves
    /// the page and prints its URL, until Ctrl-C.
    ///
    /// The page draws the topology (partition segments, cuts and shaped links, nodes coloured by their
    /// best tip), the fork view, heights over time, the faults in force and the event log, and
    /// updates live. It changes nothing: its passes repair nothing and its HTTP interface refuses every
    /// verb that would change the cluster. `regbox operator` serves the same page at `/`.
    Dashboard {
        /// The cluster (the same as -c; the only one when there is one).
        #[arg(value_name = "CLUSTER", add = clusters())]
        name: Option<String>,
        /// Port on 127.0.0.1 (0: any free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Seconds between its passes (samples for /metrics) when no page is open.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
    },
    /// Per node: image, state, data address, height, best block, peers.
    Status {
        /// The cluster (the same as -c).
        #[arg(value_name = "CLUSTER", add = clusters())]
        name: Option<String>,
    },
    /// Connect node A to node B (A dials B) and wait for the handshake.
    Connect {
        /// The node that dials (name or index).
        #[arg(add = nodes())]
        a: String,
        /// The node it dials (name or index).
        #[arg(add = nodes())]
        b: String,
    },
    /// Close the sessions between A and B and wait until neither lists the other.
    Disconnect {
        /// One end (name or index).
        #[arg(add = nodes())]
        a: String,
        /// The other end (name or index).
        #[arg(add = nodes())]
        b: String,
    },
    /// Print how other programs reach NODE: its RPC URL with credentials and its P2P address.
    Url {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
    },
    /// Mine N blocks on NODE (no wallet needed).
    Mine {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
        /// How many blocks.
        blocks: u64,
    },
    /// Send AMOUNT BTC from FROM's wallet to a new address of TO's wallet (both nodes need `wallet:`).
    Send {
        /// The sending node (name or 0-based index).
        #[arg(add = nodes())]
        from: String,
        /// The receiving node.
        #[arg(add = nodes())]
        to: String,
        /// BTC, up to 8 decimals (0.5, 2).
        #[arg(value_parser = crate::core::verb::sats)]
        amount: u64,
    },
    /// Wait until a condition holds: `ready [NODES]`, `sync_blocks [NODES]`, `sync_mempools [NODES]`,
    /// `height H [NODE]`, `peers N NODE` (NODES: every node when none are named).
    Wait {
        /// The condition and its arguments.
        #[arg(required = true, num_args = 1.., value_name = "CONDITION")]
        condition: Vec<String>,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Wait until every node has the same best block and the same mempool.
    Sync {
        /// The cluster (the same as -c).
        #[arg(value_name = "CLUSTER", add = clusters())]
        name: Option<String>,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Call an RPC method on NODE; arguments are JSON when they parse as JSON, strings otherwise.
    Rpc {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
        /// The RPC method (`getblockchaininfo`, …).
        method: String,
        /// Its arguments in order.
        args: Vec<String>,
    },
    /// Print a node's log (bitcoind's console output).
    Logs {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
    },
    /// Split the data network into partitions (replacing any active one) and verify the peer graph.
    ///
    /// Groups are comma-separated node names or indices (`n0,n1 n2,n3`), or `@HOST` for every node on a
    /// host of a cluster across hosts; nodes not named form one more group. A first argument that
    /// names an existing cluster selects it.
    Partition {
        /// The groups: comma-separated node names or indices, one argument per group.
        #[arg(add = nodes())]
        groups: Vec<String>,
        /// Two halves by index.
        #[arg(long)]
        halves: bool,
        /// Two halves after a seeded shuffle (the seed is printed so a run can be repeated).
        #[arg(long)]
        random_halves: bool,
        /// Seed for --random-halves.
        #[arg(long, requires = "random_halves")]
        seed: Option<u64>,
        /// One node alone, everybody else together.
        #[arg(long, value_name = "NODE", add = nodes())]
        isolate: Option<String>,
        /// Two halves and one node in both.
        #[arg(long)]
        bridge: bool,
        /// Every node sees a majority, no two nodes the same one.
        #[arg(long)]
        majorities_ring: bool,
        /// Leave cross-partition sessions frozen (as a real network failure would) instead of closing them.
        #[arg(long)]
        silent: bool,
        /// How the partition is made: `segments` moves nodes between Docker networks; `firewall` keeps
        /// them in place and stops the packets between groups by rules in each node (one update per
        /// node whatever the shape: much faster for majorities-ring and large clusters).
        #[arg(long, value_parser = ["segments", "firewall"], default_value = "segments")]
        via: String,
        /// With --via firewall: answer the stopped TCP packets with a reset, so the nodes' sessions
        /// close at once by the network itself (rather than by regbox closing them, or freezing).
        #[arg(long, conflicts_with = "silent")]
        reset: bool,
        /// Seconds to wait for the re-wiring.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Put every node back on the base segment with its original address and re-wire the declared edges.
    ///
    /// Every cut goes too; link shaping stays (`netem --clear` removes it).
    Heal {
        /// The cluster (the same as -c).
        #[arg(value_name = "CLUSTER", add = clusters())]
        name: Option<String>,
        /// Also wait until every node is on the most-work tip, and report each node's reorg depth.
        #[arg(long)]
        sync: bool,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Stop a node (SIGTERM, then SIGKILL after 10 s).
    Stop {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
    },
    /// Start a stopped node, wait until it is ready, re-wire its edges.
    Start {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
    },
    /// Stop and start a node.
    Restart {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
    },
    /// Kill a node (SIGKILL).
    Kill {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
    },
    /// Freeze a node's processes.
    Pause {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
    },
    /// Thaw a paused node, wait until it is ready, re-wire its edges.
    Unpause {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
    },
    /// Set nodes' wall clocks off the host's, at run time (`--clear`: back to the host's).
    ///
    /// `clock n1 --offset +3h`: n1's bitcoind reads a clock 3 hours ahead from now on (its blocks carry
    /// that time; peers reject blocks more than 2 h ahead as `time-too-new`). `--drift +1s/min` makes
    /// it run fast (or slow) from then on, across restarts. Only regbox's own node images can (they
    /// carry libfaketime; drift also needs their init). `status` shows each offset while any is set.
    Clock {
        /// Nodes (names or indices, comma-separated or one per argument; with --clear, none: every node).
        #[arg(add = nodes(), value_delimiter = ',', required_unless_present = "clear")]
        nodes: Vec<String>,
        /// The offset from the host's clock from now on: +3h, -90m, -1h30m, 45s (units d, h, m, s).
        /// Left out, each node's offset now.
        #[arg(long, value_name = "OFFSET", allow_hyphen_values = true, value_parser = clock::parse_offset, required_unless_present_any = ["clear", "drift"])]
        offset: Option<i64>,
        /// How the clock drifts from now on: +1s/min gains a second a minute, -30s/h loses half a
        /// minute an hour, 0 stops it drifting. Left out, as it drifts now.
        #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = clock::parse_drift)]
        drift: Option<clock::Drift>,
        /// Back to the host's clock, not drifting (every node's when none are named).
        #[arg(long, conflicts_with_all = ["offset", "drift"])]
        clear: bool,
    },
    /// Fill a node's bounded data directory (`disk: {size: …}` in the manifest) or free it again.
    ///
    /// `--fill` leaves bitcoind less space than it needs: it stops itself (`Disk space is too low!`) at
    /// its next write, and `status` says why. `--free` gives the space back; `start` brings it back
    /// with its chain.
    Disk {
        /// The node (name or 0-based index).
        #[arg(add = nodes())]
        node: String,
        /// Fill it.
        #[arg(long, required_unless_present = "free", conflicts_with = "free")]
        fill: bool,
        /// Free it.
        #[arg(long)]
        free: bool,
    },
    /// Shape the P2P packets nodes send: delay, jitter, loss, duplication, corruption, reordering, rate.
    ///
    /// NODES' packets to the peers in --to, or to all, are shaped; this replaces what was set there.
    /// Only P2P traffic is shaped (never RPC). Shaping is one-way: `netem a --to b` slows a's packets to
    /// b, not b's answers; shape both ends for a round trip. `netem --clear` removes it.
    Netem {
        /// Nodes (names or indices, comma-separated or one per argument; none: every node).
        #[arg(add = nodes(), value_delimiter = ',')]
        nodes: Vec<String>,
        /// Only the packets to these peers (comma-separated names or indices).
        #[arg(long, value_name = "PEERS", value_delimiter = ',', add = nodes())]
        to: Vec<String>,
        /// Start from one of Blockade's shorthands: slow (delay 75ms ± 100ms normal), flaky (loss
        /// 30%), duplicate (5%), fast (nothing); the other options change it.
        #[arg(long, value_name = "SHORTHAND", value_parser = crate::core::faults::link::SHORTHANDS)]
        like: Option<String>,
        /// Added to each packet's departure (100ms, 1.5s, 250us).
        #[arg(long, value_name = "TIME", value_parser = link::parse_duration)]
        delay: Option<u64>,
        /// Spread around the delay (packets keep their order; see --reorder).
        #[arg(long, value_name = "TIME", value_parser = link::parse_duration)]
        jitter: Option<u64>,
        /// How the jitter is drawn.
        #[arg(long, value_parser = link::Distribution::NAMES)]
        distribution: Option<String>,
        /// Share of packets lost (1%, 0.1%).
        #[arg(long, value_name = "PERCENT", value_parser = link::parse_percent)]
        loss: Option<f64>,
        /// Share of packets sent twice.
        #[arg(long, value_name = "PERCENT", value_parser = link::parse_percent)]
        duplicate: Option<f64>,
        /// Share of packets with one bit flipped (the receiver's checksum drops them).
        #[arg(long, value_name = "PERCENT", value_parser = link::parse_percent)]
        corrupt: Option<f64>,
        /// Share of packets sent at once, overtaking delayed ones.
        #[arg(long, value_name = "PERCENT", value_parser = link::parse_percent)]
        reorder: Option<f64>,
        /// Bandwidth of the link (1mbit, 500kbit, 100kbps); packets queue behind each other.
        #[arg(long, value_parser = link::parse_rate)]
        rate: Option<u64>,
        /// Remove the shaping of NODES (every node's when none are named); cuts stay.
        #[arg(long, conflicts_with_all = ["to", "like", "delay", "jitter", "distribution", "loss", "duplicate", "corrupt", "reorder", "rate"])]
        clear: bool,
    },
    /// Stop packets between nodes, both ways or one way (`heal` removes every cut).
    ///
    /// `cut A B` both ways; `cut --from A --to B` one way (A's packets to B are lost, B's reach A).
    /// `cut --clear` removes cuts too.
    Cut {
        /// Two ends to cut apart both ways (each a node or comma-separated nodes).
        #[arg(add = nodes(), num_args = 0..=2)]
        ends: Vec<String>,
        /// One-way: the nodes whose packets are stopped (comma-separated).
        #[arg(long, value_delimiter = ',', requires = "to", conflicts_with = "ends", add = nodes())]
        from: Vec<String>,
        /// One-way: where they are stopped from going (comma-separated).
        #[arg(long, value_delimiter = ',', requires = "from", add = nodes())]
        to: Vec<String>,
        /// Answer stopped TCP packets with a reset, so the sender's session closes at once (default:
        /// drop them silently; the session stalls until TCP gives up).
        #[arg(long)]
        reset: bool,
        /// Remove the cuts of the named nodes (every node's when none are named).
        #[arg(long, conflicts_with_all = ["from", "to", "reset"])]
        clear: bool,
    },
    /// Take the cluster back to its declared state on a fresh chain (or a snapshot), in place.
    ///
    /// Every node's bitcoind restarts on an empty chain (with `--to`, on that snapshot's chain,
    /// wallets and mempool) without the engine making or starting its container again, and the
    /// cluster comes back as declared: the declared topology wired and verified, the manifest's link
    /// faults, no partition, hold, throttle, clock offset or full disk. A node whose image lacks
    /// regbox's init (or whose container is missing or outdated) is made again instead.
    Reset {
        /// The snapshot to start from (`snapshot save NAME` made it).
        #[arg(long, value_name = "NAME")]
        to: Option<String>,
        /// Seconds to wait for the nodes to come back and the peer graph to match.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Save every node's chain, wallets and mempool as a named snapshot, export or import one.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Limit nodes' CPU and memory at run time, without a restart (the engine's update call).
    ///
    /// A limit not given keeps what an earlier throttle set. `status` shows each throttled node's
    /// limits, the operator keeps them; `throttle --clear` gives the nodes back the resources their
    /// manifest declares.
    Throttle {
        /// Nodes (names or indices, comma-separated or one per argument; with --clear and none:
        /// every node).
        #[arg(add = nodes(), value_delimiter = ',')]
        nodes: Vec<String>,
        /// CPUs the nodes may use (0.05: 5 ms of CPU time in each 100 ms), at least 0.01 and at most
        /// the host's CPUs.
        #[arg(long, value_name = "N")]
        cpus: Option<f64>,
        /// Memory the nodes may hold, swap included (64m, 1g; k, m, g are powers of 1024), at least
        /// 32m: past it the kernel reclaims, then kills bitcoind.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        memory: Option<u64>,
        /// Disk bytes per second (10m): refused with the reason — the engine cannot change a running
        /// container's disk rates.
        #[arg(long, value_name = "RATE", value_parser = parse_size)]
        io_rate: Option<u64>,
        /// Give the nodes (every node when none are named) back their declared resources.
        #[arg(long, conflicts_with_all = ["cpus", "memory", "io_rate"])]
        clear: bool,
    },
    /// The fault agent, run inside the regbox image (not for direct use).
    #[command(hide = true)]
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// The RPC relay, run inside the regbox image on a cluster's control network (not for direct use):
    /// an HTTP CONNECT proxy to the nodes' RPC, for clusters on networks this machine cannot route to.
    #[command(hide = true)]
    Relay {
        /// Address and port to listen on.
        #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], RELAY_PORT)))]
        listen: SocketAddr,
        /// A subnet (CIDR) tunnels may lead into; repeat for several.
        #[arg(long, value_name = "CIDR", required = true)]
        allow: Vec<Subnet>,
        /// A port tunnels may lead to; repeat for several (none: any port).
        #[arg(long, value_name = "PORT")]
        port: Vec<u16>,
        /// The token every CONNECT must carry (`Proxy-Authorization: Basic` of `regbox:TOKEN`, or
        /// `Bearer TOKEN`); regbox sets it in the relay's container.
        #[arg(long, env = "REGBOX_RELAY_TOKEN", hide_env_values = true, value_parser = clap::builder::NonEmptyStringValueParser::new())]
        token: String,
    },
    /// Run a scenario: bring its cluster up, run the steps, report pass/fail per step, tear down.
    ///
    /// Without a file, runs the built-in split-and-heal scenario. `-c NAME` renames the scenario's
    /// cluster (so parallel CI jobs don't collide).
    Run {
        /// Scenario files, run one after another, each on its own fresh cluster (none: the built-in
        /// split-and-heal).
        scenarios: Vec<PathBuf>,
        /// Write one JUnit XML report to FILE: a test suite per scenario.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Leave the cluster running afterwards (also after a failure); one scenario only.
        #[arg(long)]
        keep: bool,
    },
    /// Run a cluster under a seeded nemesis for a while and check it keeps its invariants.
    ///
    /// Brings the manifest's cluster up (wallet nodes get mature coins), then for --duration: blocks
    /// (and transactions between wallet nodes) in the background, faults drawn from --faults by the
    /// seed, and after each fault a wait for one most-work tip and the invariant checks. Writes the
    /// events (JSONL), an HTML report and optionally JUnit; tears the cluster down. Exit code 1 when
    /// an invariant broke (the seed, step, invariant and nodes are printed).
    Soak {
        /// Cluster manifest (YAML).
        manifest: PathBuf,
        /// How long the faults go on (90s, 2m, 1h).
        #[arg(long, value_name = "TIME", value_parser = soak::parse_span)]
        duration: Duration,
        /// The seed of the schedule and of the background activity (default: a random one, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// The fault kinds to draw from, comma-separated: partition, netem, kill, restart, pause,
        /// throttle, clock, disk (a kind named twice is drawn twice as often; disk only for nodes that
        /// declare one).
        #[arg(
            long,
            value_name = "LIST",
            default_value = "partition,netem,kill,restart,pause,throttle,clock,disk",
            value_parser = parse_fault_list
        )]
        faults: FaultList,
        /// Background blocks per minute, each on a random running node (0: none).
        #[arg(long, value_name = "BLOCKS_PER_MIN", default_value_t = 6.0, value_parser = parse_rate_per_min)]
        rate: f64,
        /// Background transactions per minute between random wallet nodes (0: none).
        #[arg(long, value_name = "TX_PER_MIN", default_value_t = 12.0, value_parser = parse_rate_per_min)]
        tx_rate: f64,
        /// Mean quiet time between faults (each gap is drawn within ±50 %).
        #[arg(long, value_name = "TIME", default_value = "20s", value_parser = parse_positive_span)]
        gap: Duration,
        /// Mean time a fault holds (each drawn within ±50 %; a restart takes none).
        #[arg(long, value_name = "TIME", default_value = "15s", value_parser = soak::parse_span)]
        hold: Duration,
        /// How long the nodes may take to agree on one tip after a fault ends.
        #[arg(long, value_name = "TIME", default_value = "60s", value_parser = parse_positive_span)]
        converge: Duration,
        /// Run exactly the schedule's first N faults, however long they take (the same seed then
        /// runs the same faults on a slow machine too); without it, faults due after --duration are
        /// dropped.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        steps: Option<u64>,
        /// Write the event log (JSON lines) to FILE (default: soak-CLUSTER-SEED.jsonl here).
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        /// Write the HTML report to FILE (default: soak-CLUSTER-SEED.html here).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Write the invariant checks as JUnit XML to FILE (a test case per check).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Leave the cluster running afterwards (also after a failure).
        #[arg(long)]
        keep: bool,
    },
    /// Validate manifests and scenarios without Docker: exit 0 when every file is valid, 2 (with the
    /// file, line and column of the first problem) when one is not — the same checks as `up` and `run`.
    Check {
        /// Manifest or scenario files (a scenario is a `*.scenario.yaml` file, or one with `steps:`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print regbox's version, the default node image, and the Docker engine's version and API version.
    Version,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    ///
    /// `source <(regbox completions bash)`: cluster and node names are completed from the engine.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
        /// A script that completes subcommands and flags only, with no call back into regbox (for
        /// packaging); the default script also completes cluster and node names by asking regbox.
        #[arg(long = "static")]
        fixed: bool,
    },
    /// Print regbox's man page (roff) to stdout.
    Man,
    /// Build the node image.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// The hosts of a multi-host manifest as one Docker Swarm: their state, forming one, leaving it.
    Swarm {
        #[command(subcommand)]
        command: SwarmCommand,
    },
    /// Write a cluster for another tool.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Look at a topology: its numbers, its picture, and the same graph in other tools' formats.
    Topology {
        #[command(subcommand)]
        command: TopologyCommand,
    },
    /// Measure the cluster (how fast blocks and transactions propagate).
    Measure {
        #[command(subcommand)]
        command: MeasureCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save every node's chain, wallets and mempool as snapshot NAME, for `reset --to NAME`.
    ///
    /// Each bitcoind restarts in place to flush them (its sessions drop and are wired again).
    Save {
        /// Letters, digits, `-`, `_` and `.`; an existing snapshot of the name is replaced.
        name: String,
        /// Seconds to wait for the nodes to come back.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Write snapshot NAME of every node into FILE (a gzip-compressed tar), to import elsewhere.
    Export {
        /// The snapshot (`snapshot save NAME` made it).
        name: String,
        /// The file to write (replaced if it exists).
        file: std::path::PathBuf,
    },
    /// Store the snapshot in FILE on every node of a cluster with the same node names.
    Import {
        /// A file `snapshot export` wrote.
        file: std::path::PathBuf,
        /// The name to store it under (default: the name it was exported under).
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Print a docker-compose file (format 2.4) of a manifest's nodes: the same images, settings,
    /// limits and hardening, one network with static addresses, the topology wired by -connect at
    /// start-up (no partitions, RPC only inside each container).
    Compose {
        /// A cluster manifest; without one, the ring of 4 that `up` makes without one.
        manifest: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TopologyCommand {
    /// Nodes, edges, degree min/mean/max, diameter, mean hops and connectivity of a manifest's
    /// topology (or, without one, of the cluster's), as a table or `--json`; `--svg` draws it and
    /// `--export` writes it as an edge list, GraphML or DOT.
    Show {
        /// A cluster manifest; without one, the running cluster's declared topology (-c).
        manifest: Option<PathBuf>,
        /// Draw the graph as SVG into FILE (a force layout up to 150 nodes, a circle above).
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Print the graph in this format on stdout instead of the numbers.
        #[arg(long, value_enum, value_name = "FORMAT")]
        export: Option<GraphFormat>,
        /// The same as `--export dot`.
        #[arg(long, conflicts_with = "export")]
        dot: bool,
    },
}

/// A topology file format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Edgelist,
    Graphml,
    Dot,
}

impl GraphFormat {
    pub fn format(self) -> crate::core::topology::graphio::Format {
        use crate::core::topology::graphio::Format;
        match self {
            GraphFormat::Edgelist => Format::EdgeList,
            GraphFormat::Graphml => Format::GraphMl,
            GraphFormat::Dot => Format::Dot,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum MeasureCommand {
    /// Mine blocks (or send transactions) on one node, one at a time, and report when each node took
    /// each one against its hop distance, from bitcoind's own log timestamps.
    ///
    /// A block arrives with the node's `UpdateTip` line, a transaction with its mempool acceptance
    /// (the `mempool` and `validation` log categories are switched on for the measurement and back off
    /// afterwards); times are milliseconds after the origin's own line. Hops are counted in the peer
    /// graph the nodes report at the start.
    Propagation {
        /// The node that mines or sends (name or index; default: the first node).
        #[arg(long, value_name = "NODE", add = nodes())]
        from: Option<String>,
        /// Rounds: blocks mined (or transactions sent, with --tx), one after another.
        #[arg(
            long,
            value_name = "N",
            visible_alias = "rounds",
            default_value_t = 5,
            value_parser = clap::value_parser!(u64).range(1..=crate::engine::measure::MAX_ROUNDS as u64)
        )]
        blocks: u64,
        /// Send transactions instead of mining blocks (no wallet needed: they spend an
        /// anyone-can-spend coin, mined first if the node has none).
        #[arg(long)]
        tx: bool,
        /// Write the plots (arrival CDF, arrival vs hops) to FILE as SVG.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Write the plots (arrival CDF, arrival vs hops) to FILE as PNG.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
        /// Seconds each round (and each preparation step) may take to reach every node.
        #[arg(long, value_name = "S", default_value_t = 60)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Serve requests on the agent's socket until stopped.
    Serve,
    /// Send one JSON request to the serving agent and print its answer.
    Call {
        /// The request.
        request: String,
    },
    /// Make a bounded data directory: a sparse FILE of SIZE bytes on a loop device, formatted ext4
    /// with OWNER owning its root; prints the device.
    DiskPrepare {
        /// The file to make.
        file: std::path::PathBuf,
        /// Its size in bytes.
        size: u64,
        /// `uid:gid` owning the filesystem's root.
        owner: String,
    },
    /// Let a bounded data directory's loop device go.
    DiskRelease {
        /// The loop device (`/dev/loopN`).
        device: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Each host the manifest names: its engine, its part in a swarm (state, manager or worker,
    /// address), the nodes placed on it, and whether `up` may start across them (the checks it makes).
    /// Exit 1 when a check fails.
    Status {
        /// A manifest with `hosts:`.
        manifest: PathBuf,
    },
    /// Make the manifest's hosts one swarm: the first initialises one if it is in none (advertising its
    /// `address`), the others join it as workers if they are in none. Hosts already in it stay as they
    /// are; a host in another swarm is an error. A swarm you made yourself needs none of this.
    Init {
        /// A manifest with `hosts:`.
        manifest: PathBuf,
    },
    /// Every host the manifest names leaves its swarm (forced), the first one last. Refused while a
    /// host runs containers of a regbox cluster. A swarm you made yourself goes too.
    Leave {
        /// A manifest with `hosts:`.
        manifest: PathBuf,
        /// Leave even while regbox containers run there.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build a node image: regbox/bitcoind:<version> from Debian's bitcoin-knots package, or, with
    /// --from, offline from the bitcoind you have, or, with --core, from a Bitcoin Core release,
    /// downloaded and verified.
    Build {
        /// A Bitcoin Core release tarball (or a directory in its layout: bitcoin-X/bin/bitcoind, and
        /// bin/bitcoin-cli), or a self-built bitcoind binary. Libraries the binaries need are taken
        /// from the tree first (any lib directory in it), then from this host. The image is
        /// regbox/bitcoind:local-<flavour>-<version>; name it in a manifest or with `up --image` (the
        /// default image is never one built --from).
        #[arg(long, value_name = "PATH")]
        from: Option<PathBuf>,
        /// The tag to give the image built --from: regbox/bitcoind:local-TAG.
        #[arg(long, value_name = "TAG", requires = "from", value_parser = parse_tag)]
        tag: Option<String>,
        /// Build the regbox image instead of a node image: this regbox binary (or REGBOX_BIN) with
        /// Debian's iptables, which the fault agent and docker-compose.yml's operator run; tagged
        /// regbox/regbox:<version>-<digest> and regbox/regbox:latest.
        #[arg(long = "self", conflicts_with = "from")]
        itself: bool,
        /// Build regbox/bitcoind:core-VERSION from Bitcoin Core release VERSION (such as 27.2):
        /// bitcoin-VERSION-x86_64-linux-gnu.tar.gz, SHA256SUMS and SHA256SUMS.asc from
        /// REGBOX_CORE_MIRROR (default https://bitcoincore.org/bin), built only when SHA256SUMS
        /// carries --min-signatures good signatures by keys of --keyring and lists the tarball's
        /// SHA-256.
        #[arg(long, value_name = "VERSION", value_parser = parse_core_version, conflicts_with_all = ["from", "itself"])]
        core: Option<crate::core::release::CoreVersion>,
        /// With --core: the public keys whose signatures count (armored or binary; default
        /// REGBOX_CORE_KEYRING, else the release builders' keys of Bitcoin Core's guix.sigs that
        /// regbox ships).
        #[arg(long, value_name = "FILE", requires = "core")]
        keyring: Option<PathBuf>,
        /// With --core: how many good signatures by distinct keys of the keyring SHA256SUMS needs.
        #[arg(long, value_name = "N", requires = "core", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
        min_signatures: u16,
    },
    /// List the node images here (regbox's own and those clusters use) with the bitcoind version each
    /// reports.
    Ls,
}

/// `soak --faults`: the fault kinds, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultList(pub Vec<FaultKind>);

fn parse_fault_list(text: &str) -> Result<FaultList, String> {
    soak::parse_faults(text)
        .map(FaultList)
        .map_err(|e| e.to_string())
}

/// `throttle --memory`, `--io-rate`: a size in bytes (`64m`, `1g`, `65536k`).
fn parse_size(text: &str) -> Result<u64, String> {
    crate::core::cluster::manifest::parse_memory(text)
        .ok_or_else(|| format!("`{text}` is no size: a number with k, m or g (powers of 1024)"))
}

/// `soak --gap`, `--converge`: a span above zero.
fn parse_positive_span(text: &str) -> Result<Duration, String> {
    match soak::parse_span(text)? {
        d if d.is_zero() => Err(format!("`{text}`: must be above 0")),
        d => Ok(d),
    }
}

/// `soak --rate`, `--tx-rate`: how many per minute, 0 to 600.
fn parse_rate_per_min(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=600.0).contains(&v) => Ok(v),
        Ok(_) => Err(format!("`{text}`: must be between 0 and 600 per minute")),
        Err(_) => Err(format!(
            "`{text}`: expected a number per minute such as 6 or 0.5"
        )),
    }
}

/// `image build --core`: a Bitcoin Core release version.
fn parse_core_version(text: &str) -> Result<crate::core::release::CoreVersion, String> {
    crate::core::release::CoreVersion::parse(text)
}

/// `--tag`: a tag Docker accepts.
fn parse_tag(text: &str) -> Result<String, String> {
    if crate::core::cluster::blueprint::is_image_tag(text) {
        Ok(text.to_string())
    } else {
        Err(
            "expected letters, digits, `_`, `.` or `-` (up to 128, not starting with `.` or `-`)"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_long_version_names_the_default_image() {
        assert!(LONG_VERSION.contains(crate::core::cluster::manifest::DEFAULT_IMAGE));
    }

    #[test]
    fn help_text() {
        let mut cmd = Cli::command();
        insta::assert_snapshot!(cmd.render_long_help().to_string());
    }

    #[test]
    fn every_argument_of_every_command_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !["help", "version"].contains(&id) {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "regbox", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn arguments_are_parsed_without_io() {
        let cli = Cli::try_parse_from([
            "regbox",
            "-c",
            "lab",
            "--json",
            "rpc",
            "n1",
            "getblockhash",
            "0",
        ])
        .unwrap();
        assert_eq!(cli.cluster.as_deref(), Some("lab"));
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Rpc { ref args, .. } if args == &["0"]));
        // `-c` is taken in any position, also by commands with a positional cluster.
        for args in [
            &["regbox", "status", "-c", "lab"][..],
            &["regbox", "-c", "lab", "status"],
            &["regbox", "heal", "--sync", "-c", "lab"],
            &["regbox", "down", "-c", "lab"],
            &["regbox", "sync", "--cluster", "lab"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.cluster.as_deref(), Some("lab"), "{args:?}");
        }
        let cli = Cli::try_parse_from([
            "regbox",
            "soak",
            "m.yaml",
            "--duration",
            "2m",
            "--faults",
            "kill,pause",
            "--gap",
            "8s",
        ])
        .unwrap();
        let Command::Soak {
            duration,
            faults,
            gap,
            hold,
            rate,
            seed,
            ..
        } = cli.command
        else {
            panic!("not soak");
        };
        assert_eq!(duration, Duration::from_secs(120));
        assert_eq!(faults, FaultList(vec![FaultKind::Kill, FaultKind::Pause]));
        assert_eq!(
            (gap, hold),
            (Duration::from_secs(8), Duration::from_secs(15))
        );
        assert_eq!((rate, seed), (6.0, None));
        for bad in [
            &["--faults", "kill,crash"][..],
            &["--gap", "0s"],
            &["--rate", "-1"],
            &["--converge", "soon"],
        ] {
            let mut args = vec!["regbox", "soak", "m.yaml", "--duration", "1m"];
            args.extend(bad);
            let err = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(err.exit_code(), crate::cli::exit::BAD_INPUT, "{bad:?}");
        }
        let err = Cli::try_parse_from([
            "regbox",
            "soak",
            "m.yaml",
            "--faults",
            "kill,crash",
            "--duration",
            "1m",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown fault `crash`"), "{err}");
        let err = Cli::try_parse_from(["regbox", "mine", "n0", "many"]).unwrap_err();
        assert_eq!(err.exit_code(), crate::cli::exit::BAD_INPUT);
    }
}
