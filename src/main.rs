//! The `uapid` command: run the daemon, or record Asterisk's events as fixtures.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// VoipNow's UnifiedAPI PhoneCalls interface for an ordinary Asterisk PBX.
///
/// Settings come from the built-in defaults, then FILE, then UAPID_* environment
/// variables (`__` between levels, e.g. UAPID_ASTERISK__ARI_PASSWORD).
#[derive(Parser)]
#[command(name = "uapid", version)]
struct Cli {
    /// A TOML file of settings layered over the built-in defaults.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the UAPI PhoneCalls interface (what `uapid` with no command does).
    Run,
    /// Record ARI's and AMI's events (and the snapshots taken on connect) as JSON lines,
    /// until interrupted; the tracker's tests replay such files.
    Record {
        /// Where to write the events.
        #[arg(long, value_name = "FILE.jsonl")]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("uapid=info")),
        )
        .init();
    let settings = match uapid::config::Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uapid: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(settings).await,
        Command::Record { out } => match uapid::record::run(&settings, &out).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("uapid record: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn run(settings: uapid::config::Settings) -> ExitCode {
    let running = match uapid::start(settings).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("uapid: {e}");
            return ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
