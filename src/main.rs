//! The `uapid` command: run the daemon, or record Asterisk's events as fixtures.

use std::path::PathBuf;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn usage() -> ExitCode {
    eprintln!(
        "usage: uapid [--config FILE]\n       uapid record --out FILE.jsonl [--config FILE]\n\n\
         Settings come from the built-in defaults, then FILE, then UAPID_* variables."
    );
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("uapid=info")),
        )
        .init();

    let mut args = std::env::args().skip(1);
    let mut config: Option<PathBuf> = None;
    let mut record: Option<PathBuf> = None;
    let mut recording = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => config = Some(PathBuf::from(p)),
                None => return usage(),
            },
            "record" => recording = true,
            "--out" if recording => match args.next() {
                Some(p) => record = Some(PathBuf::from(p)),
                None => return usage(),
            },
            "--help" | "-h" => {
                usage();
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    let settings = match uapid::config::Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uapid: {e}");
            return ExitCode::FAILURE;
        }
    };
    if recording {
        let Some(out) = record else { return usage() };
        return match uapid::record::run(&settings, &out).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("uapid record: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
