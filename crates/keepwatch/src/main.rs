//! `keepwatch`: the one binary. Parses the command line, owns exit codes, and wires the
//! library crates together; the logic lives in the crates.

mod admin;
mod datadir;
mod drill;
mod events;
mod keys;
mod migrate;
mod output;
mod playback;
mod remote;
mod report;
mod retention;
mod run;
mod scheduled;
mod search;
mod sessions;
mod tags;
mod transfers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keepwatch: a privileged session manager. People reach servers only through it; it injects
/// the target's credential, records every session tamper-evidently, and lets auditors list,
/// replay, export and verify what happened.
#[derive(Parser)]
#[command(name = "keepwatch", version, propagate_version = true)]
struct Cli {
    /// Data directory (config, keys, database, recordings).
    #[arg(long, global = true, env = "KEEPWATCH_DATA_DIR", default_value = "keepwatch-data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data directory: config, host key, signing key, vault key, database and an
    /// `admin` person whose password is printed once, with the signing key's fingerprint.
    Init {
        /// Write the signing key here instead of into the data directory (recommended: a
        /// root-owned path the gateway can read but someone who writes the data directory
        /// cannot); keepwatch.toml records the path.
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
        /// Keep the metadata in this PostgreSQL database (`postgres://USER:PASSWORD@HOST/DB`,
        /// new and empty) instead of keepwatch.db in the data directory; recorded as
        /// `[store] database`.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Start the SSH gateway and the web listener (runs `init` first on a new data directory).
    Run(run::RunArgs),
    /// Manage people.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage targets (servers reached through the gateway).
    #[command(subcommand)]
    Target(admin::TargetCommand),
    /// Allow a person to connect to a target (again: replaces the grant's policy).
    Grant(admin::GrantArgs),
    /// Remove a person's access to a target.
    Revoke(admin::RevokeArgs),
    /// List sessions, newest first.
    Sessions(sessions::ListArgs),
    /// Show one session's metadata and channels.
    Show(sessions::ShowArgs),
    /// Put tags on a session (`incident-42`, `ticket:ops-7`); audited.
    Tag(tags::TagArgs),
    /// Take tags off a session; audited.
    Untag(tags::TagArgs),
    /// Play a session in the terminal at its original pace.
    Replay(playback::ReplayArgs),
    /// Export a session (asciicast v2 plays in asciinema).
    Export(playback::ExportArgs),
    /// Check recordings for tampering; exit 1 if any is not intact. Needs no vault key.
    Verify(sessions::VerifyArgs),
    /// List audit events, newest first.
    Audit(sessions::AuditArgs),
    /// List file transfers (SFTP, SCP) across sessions, with their SHA-256; `transfers get`
    /// downloads the content a grant kept.
    Transfers(transfers::TransfersArgs),
    /// Find commands and output across every session (closed and live); audited.
    Search(search::SearchArgs),
    /// Index sessions again from their recordings (what `run` does for missed sessions).
    Reindex(search::ReindexArgs),
    /// The search index: `index status` says how far it is behind the recordings.
    #[command(subcommand)]
    Index(search::IndexCommand),
    /// Follow a live session in this terminal (through the running gateway); audited.
    Watch(remote::WatchArgs),
    /// End a live session: the person sees who ended it and why; audited.
    Kill(remote::KillArgs),
    /// Manage API tokens for automation.
    #[command(subcommand)]
    Token(remote::TokenCommand),
    /// How long recordings are kept: policies by target, protocol or tag, and applying them
    /// (each deletion leaves a signed tombstone that `verify` reports).
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// What happened over a period: sessions per person, target and day, top commands and
    /// statements, transfers, refusals and terminations, verification and retention; JSON,
    /// or HTML with inline charts (-o report.html) that opens offline.
    Report(report::ReportArgs),
    /// The audit-readiness drill: N random sessions each found by a search, replayed to the
    /// end and verified, every step timed; the result is audited.
    Drill(drill::DrillArgs),
    /// Re-wrap every recording's data key under the current key-encryption key (the vault's,
    /// or `[recording] kek_command` when set: also how keys move into a KMS); audited.
    RotateKey(keys::RotateKeyArgs),
    /// Legal holds: keep sessions (one, or a person's, a target's, a tag's) whatever the
    /// retention policies say, until released.
    #[command(subcommand)]
    Hold(retention::HoldCommand),
    /// List the gateway nodes sharing this database, with their heartbeats and live sessions.
    Nodes(sessions::NodesArgs),
    /// Copy this (SQLite) installation's metadata into an empty PostgreSQL database,
    /// verifying every recording first; then set `[store] database` to switch.
    Migrate(migrate::MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The gateway logs what it does; one-shot commands speak only through their output.
    let default_filter = match cli.command {
        Command::Run(_) => "info,russh=warn,sqlx=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEEPWATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keepwatch: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keepwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = datadir::DataDir::new(cli.data_dir);
    match cli.command {
        Command::Init { signing_key, database } => {
            dir.init(signing_key.as_deref(), database.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run::run(&dir, args).await,
        Command::User(c) => admin::user(&dir, c).await,
        Command::Target(c) => admin::target(&dir, c).await,
        Command::Grant(a) => admin::grant(&dir, a).await,
        Command::Revoke(a) => admin::revoke(&dir, a).await,
        Command::Sessions(a) => sessions::list(&dir, a).await,
        Command::Show(a) => sessions::show(&dir, a).await,
        Command::Tag(a) => tags::run(&dir, a, tags::Change::Tag).await,
        Command::Untag(a) => tags::run(&dir, a, tags::Change::Untag).await,
        Command::Replay(a) => playback::replay(&dir, a).await,
        Command::Export(a) => playback::export(&dir, a).await,
        Command::Verify(a) => sessions::verify(&dir, a).await,
        Command::Audit(a) => sessions::audit(&dir, a).await,
        Command::Transfers(a) => transfers::run(&dir, a).await,
        Command::Search(a) => search::search(&dir, a).await,
        Command::Reindex(a) => search::reindex(&dir, a).await,
        Command::Index(c) => search::index(&dir, c).await,
        Command::Watch(a) => remote::watch(&dir, a).await,
        Command::Kill(a) => remote::kill(&dir, a).await,
        Command::Token(c) => remote::token(&dir, c).await,
        Command::Retention(c) => retention::retention(&dir, c).await,
        Command::Hold(c) => retention::hold(&dir, c).await,
        Command::Drill(a) => drill::drill(&dir, a).await,
        Command::RotateKey(a) => keys::rotate_key(&dir, a).await,
        Command::Report(a) => report::report(&dir, a).await,
        Command::Nodes(a) => sessions::nodes(&dir, a).await,
        Command::Migrate(a) => migrate::migrate(&dir, a).await,
    }
}
