//! The `uapid` command: run the daemon, check a PBX (`doctor`), write a directory from a
//! PBX (`directory import`), or record Asterisk's events as fixtures.

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
    /// Check that the PBX has everything uapid relies on (AMI permissions, ARI, the
    /// parking lot, each extension's endpoint, dial number and mailbox, trunks, the
    /// Asterisk version) and print a checklist with a fix for each miss. Changes
    /// nothing on the PBX. Exits 0 when nothing is missing, 1 when something is, 2
    /// when it cannot connect (or the configuration does not load).
    Doctor,
    /// The directory (organizations, users, extensions, trunks, apps).
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Read the PBX's PJSIP endpoints, caller ids and voicemail boxes over AMI and print
    /// a directory in uapid's TOML to start from (review it; see README).
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The organization's id (default: the value of its code).
    #[arg(long, value_name = "ID")]
    org_id: Option<u64>,
    /// The organization's code, as in <code>*210 (default: the code found in the phones'
    /// caller ids or endpoint names, else 0001).
    #[arg(long, value_name = "CODE")]
    org_code: Option<String>,
    /// The organization's name.
    #[arg(long, value_name = "NAME")]
    org_name: Option<String>,
    /// Take this endpoint for a trunk, whatever it looks like (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    trunk: Vec<String>,
    /// Take this endpoint for a phone, whatever it looks like (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    phone: Vec<String>,
    /// Phones with the same caller id name belong to one user.
    #[arg(long)]
    group_by_name: bool,
    /// The first user id handed out.
    #[arg(long, value_name = "ID", default_value_t = 1)]
    first_user_id: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    // The checklist and the imported directory go to stdout: their logs, only warnings
    // by default, go to stderr.
    let quiet = matches!(command, Command::Doctor | Command::Directory { .. });
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(if quiet { "uapid=warn" } else { "uapid=info" }));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if quiet {
        logs.with_writer(std::io::stderr).init();
    } else {
        logs.init();
    }
    let settings = match uapid::config::Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uapid: {e}");
            let code = if matches!(command, Command::Doctor) {
                2
            } else {
                1
            };
            return ExitCode::from(code);
        }
    };
    match command {
        Command::Run => run(settings).await,
        Command::Doctor => doctor(settings).await,
        Command::Directory {
            command: DirectoryCommand::Import(args),
        } => import(settings, args).await,
        Command::Record { out } => match uapid::record::run(&settings, &out).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("uapid record: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn doctor(settings: uapid::config::Settings) -> ExitCode {
    let a = &settings.asterisk;
    let directory = match uapid::config::Directory::build(&settings.directory) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("uapid doctor: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "uapid doctor: AMI {} as {}, ARI {} as {}, application {}; {}\n",
        a.ami_addr,
        a.ami_user,
        a.ari_url,
        a.ari_user,
        a.app,
        settings.directory_summary()
    );
    let report = uapid::doctor::run(a, &directory, uapid::doctor::Mode::Command).await;
    print!("{}", report.render());
    ExitCode::from(report.exit_code())
}

async fn import(settings: uapid::config::Settings, args: ImportArgs) -> ExitCode {
    let opts = uapid::import::Options {
        org_id: args.org_id,
        org_code: args.org_code,
        org_name: args.org_name,
        trunks: args.trunk,
        phones: args.phone,
        group_by_name: args.group_by_name,
        first_user_id: args.first_user_id,
    };
    match uapid::import::run(&settings.asterisk, &opts).await {
        Ok(toml) => {
            print!("{toml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("uapid directory import: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: uapid::config::Settings) -> ExitCode {
    // Which directory is in force: counts and where each part came from, no secrets.
    tracing::info!("{}", settings.directory_summary());
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
