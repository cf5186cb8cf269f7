//! What every command may need from the global flags, and the one switch between here and an operator:
//! [`Context::dispatch`] carries a verb out through the engine's executor on this machine, or sends it
//! to the operator's one endpoint for verbs, and either way answers with the same report.

use crate::cli::exit::{Failure, INTERRUPTED};
use crate::core::verb::{Report, Verb};
use crate::engine::cluster::Cluster;
use crate::engine::exec::{self, Exec};
use crate::engine::progress::Progress;
use crate::operator::auth::Token;
use crate::operator::client::{Client, Refusal};

/// What every command may need from the global flags.
pub(crate) struct Context {
    /// `--json` or `-o json`: JSON on stdout, no progress bars.
    pub json: bool,
    /// `-o wide`: tables with more columns.
    pub wide: bool,
    /// Progress bars on stderr: it is a terminal and `--json` is off.
    pub tty: bool,
    /// `-c CLUSTER`.
    pub cluster: Option<String>,
    /// `--operator URL`.
    pub operator: Option<String>,
    /// `--token-file PATH` (else `REGBOX_TOKEN`): the operator's token.
    pub token_file: Option<std::path::PathBuf>,
    /// `--operator-ca FILE` (or `REGBOX_OPERATOR_CA`): the CA an https:// operator is trusted by.
    pub operator_ca: Option<std::path::PathBuf>,
    /// `--wait-lock`: how long a change waits while another regbox changes the cluster.
    pub wait_lock: std::time::Duration,
}

/// Where a verb is carried out.
enum Route {
    /// Here, on the cluster opened already.
    Open(Box<Cluster>),
    /// Here, on the cluster of that name (`apply` makes it, `down` removes it).
    Here(Option<String>),
    /// At an operator, for the named cluster.
    Remote(Client, String),
}

impl Context {
    /// A command's positional cluster name, else `-c` (or `REGBOX_CLUSTER`); two different names are a
    /// usage error, never one silently hiding the other.
    pub fn wanted(&self, positional: Option<String>) -> Result<Option<String>, Failure> {
        match (positional, &self.cluster) {
            (Some(p), Some(c)) if &p != c => Err(Failure::Usage(format!(
                "two clusters named: `{p}` and `{c}` (-c or REGBOX_CLUSTER); name one"
            ))),
            (p, c) => Ok(p.or(c.clone())),
        }
    }

    pub fn progress(&self) -> Progress {
        crate::cli::bar::progress(self.tty)
    }

    /// Awaits `work` with a spinner saying what is awaited (on a terminal only; never with `--json`).
    pub async fn awaiting<T>(&self, what: &str, work: impl std::future::Future<Output = T>) -> T {
        let progress = self.progress();
        progress.stage(what, 0);
        let out = work.await;
        progress.finish();
        out
    }

    /// The cluster named by `-c` (or the only one), opened here.
    pub async fn open(&self) -> Result<Cluster, Failure> {
        Ok(Cluster::open(self.cluster.as_deref()).await?)
    }

    /// Carries `verb` out on the cluster named `positional` (else `-c`, else the only one): at
    /// `--operator` when one is given; else here, unless the nodes cannot be reached from here and an
    /// operator answers at the default address. `progress` shows the executor's stages here.
    pub async fn dispatch(
        &self,
        positional: Option<String>,
        verb: &Verb,
        progress: Progress,
    ) -> Result<Report, Failure> {
        // Over the limits of one request: refused before any cluster or operator is asked (the
        // executor and the operator would refuse it too).
        verb.check().map_err(|e| Failure::Usage(e.to_string()))?;
        let how = Exec {
            progress,
            lock_wait: self.wait_lock,
            ..Exec::default()
        };
        match self.route(positional, verb).await? {
            Route::Open(mut cluster) => Ok(cluster.exec(verb, &how).await?),
            Route::Here(name) => {
                Ok(exec::execute(name.as_deref(), verb, &how, interrupted()).await?)
            }
            Route::Remote(client, name) => client.verb(&name, verb).await.map_err(refused),
        }
    }

    /// Where `verb` goes (see `dispatch`).
    async fn route(&self, positional: Option<String>, verb: &Verb) -> Result<Route, Failure> {
        let wanted = self.wanted(positional)?;
        if let Some(client) = self.operator()? {
            let name = match (wanted, verb) {
                (Some(name), _) => name,
                (None, Verb::Apply { spec, .. }) => spec.name.clone(),
                (None, _) => only_watched(&client).await?,
            };
            return Ok(Route::Remote(client, name));
        }
        if matches!(verb, Verb::Apply { .. } | Verb::Down) {
            return Ok(Route::Here(wanted));
        }
        let cluster = Cluster::open(wanted.as_deref()).await?;
        if cluster.reachable().await {
            return Ok(Route::Open(Box::new(cluster)));
        }
        match Client::probe_default(self.token()?).await {
            Some(client) => {
                tracing::info!(
                    "the nodes cannot be reached from here; asking the operator at {}",
                    client.base()
                );
                Ok(Route::Remote(client, cluster.name().to_string()))
            }
            None => Ok(Route::Open(Box::new(cluster))),
        }
    }

    /// `regbox logs -f`: the node's log as it grows, here or streamed by the operator, until the
    /// container stops (or the user stops regbox).
    pub async fn follow_logs(&self, node: &str, tail: Option<usize>) -> Result<(), Failure> {
        use futures::StreamExt;
        let verb = Verb::Logs {
            node: node.to_string(),
            tail,
            follow: true,
        };
        verb.check().map_err(|e| Failure::Usage(e.to_string()))?;
        match self.route(None, &verb).await? {
            Route::Remote(client, name) => {
                let each = |text: &str| print!("{text}");
                client.stream(&name, &verb, each).await.map_err(refused)
            }
            Route::Open(cluster) => {
                let mut lines = std::pin::pin!(cluster.logs(node, tail, true)?);
                while let Some(chunk) = lines.next().await {
                    print!("{}", chunk?);
                }
                Ok(())
            }
            Route::Here(_) => unreachable!("only apply and down go here"),
        }
    }

    /// The clusters there are: the operator's, with `--operator`; else the engine's.
    pub async fn clusters(&self) -> Result<Vec<String>, Failure> {
        match self.operator()? {
            Some(client) => watched(&client).await,
            None => Ok(crate::engine::lifecycle::list()
                .await?
                .into_iter()
                .map(|c| c.name)
                .collect()),
        }
    }

    /// The operator of `--operator` (or `REGBOX_OPERATOR`), with the token of `--token-file` (or
    /// `REGBOX_TOKEN`), trusting the CA of `--operator-ca` (or `REGBOX_OPERATOR_CA`) when it is an
    /// https:// one; a CA file that cannot be read is a usage error.
    pub fn operator(&self) -> Result<Option<Client>, Failure> {
        let Some(url) = self.operator.as_deref() else {
            return Ok(None);
        };
        let mut client = Client::new(url).with_token(self.token()?);
        if let (true, Some(ca)) = (url.starts_with("https://"), &self.operator_ca) {
            let tls = crate::operator::tls::client_config(Some(ca)).map_err(Failure::Usage)?;
            client = client.trusting(tls);
        }
        Ok(Some(client))
    }

    /// The token of `--token-file`, else of `REGBOX_TOKEN`; a file that cannot be read, or an empty
    /// one, is a usage error.
    pub fn token(&self) -> Result<Option<Token>, Failure> {
        Token::from_file_or_env(self.token_file.as_deref()).map_err(Failure::Usage)
    }
}

/// The clusters an operator watches.
async fn watched(client: &Client) -> Result<Vec<String>, Failure> {
    let status = client.get("/status").await.map_err(refused)?;
    Ok(status["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["cluster"].as_str().map(str::to_string))
        .collect())
}

/// The one cluster an operator watches (a command named none).
async fn only_watched(client: &Client) -> Result<String, Failure> {
    let names = watched(client).await?;
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure::Usage(format!(
            "the operator at {} watches no cluster",
            client.base()
        ))),
        _ => Err(Failure::Usage(format!(
            "the operator at {} watches several clusters ({}); name one with -c",
            client.base(),
            names.join(", ")
        ))),
    }
}

/// An operator's refusal as a failure: bad input (unknown cluster or node, a bad request, a missing or
/// wrong token) exits 2.
pub fn refused(r: Refusal) -> Failure {
    match r.status {
        Some(400 | 404 | 413) => Failure::Usage(r.message),
        Some(401) => Failure::Usage(format!(
            "{} (give the operator's token with --token-file PATH or REGBOX_TOKEN)",
            r.message
        )),
        _ => Failure::Report(r.message),
    }
}

/// Completes on the first Ctrl-C; a second one exits at once.
pub async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        return std::future::pending().await;
    }
    eprintln!("interrupted: removing what this run created (Ctrl-C again to exit at once)");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(INTERRUPTED);
    });
}
