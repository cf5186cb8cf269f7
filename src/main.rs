//! The `regbox` binary: parse arguments, set up logging, run one command, print its failure and exit with
//! its code (the constants in [`regbox::cli::exit`]: 0 ok, 1 runtime failure, 2 bad input, 130 interrupted).

use std::io::IsTerminal;

use clap::{CommandFactory, Parser};
use regbox::cli::{error_chain, run, Cli};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;

fn main() {
    // `REGBOX_COMPLETE=bash regbox …` (what the script of `regbox completions` runs) answers a completion and
    // exits; it runs before the command's runtime, since completing a name asks the engine on its own.
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(regbox::cli::COMPLETE_VAR)
        .complete();
    let cli = Cli::parse();
    // A progress bar says what is going on at a terminal; elsewhere (CI logs) the stages are logged.
    let bar = std::io::stderr().is_terminal() && !cli.json;
    let default = match cli.verbose {
        0 if bar => "warn",
        0 => "regbox=info",
        1 => "regbox=info",
        _ => "regbox=debug",
    };
    // At -vv every node's create, attach, start and ready span logs its duration as it closes.
    let spans = if cli.verbose >= 2 {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_span_events(spans)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // On success main returns (exit code 0) so the runtime and stdout wind down normally.
    if let Err(failure) = runtime.block_on(run(cli)) {
        eprintln!("error: {}", error_chain(&failure));
        std::process::exit(failure.exit_code());
    }
}
