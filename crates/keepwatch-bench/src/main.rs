//! `keepwatch-bench`: the measurements `bench/run.sh` cannot make with shell tools — keystroke
//! echo latency over a pty, and many idle interactive sessions held open at once — driven
//! through a russh client against the gateway, a direct sshd, or sshd behind a jump host; and
//! the search index at scale (`bench/search.sh`), driven through the store directly.

mod client;
mod idle;
mod latency;
mod search;
mod synth;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::Endpoint;

#[derive(Parser)]
#[command(name = "keepwatch-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Type one byte at a time into `stty raw -echo; cat` on a pty and time each echo.
    ///
    /// All endpoints are opened first and the keystrokes are interleaved round-robin, so every
    /// path sees the same machine conditions. Prints one line per endpoint:
    /// `latency NAME n=.. p50_us=.. p90_us=.. p99_us=.. max_us=..`.
    Latency(latency::LatencyArgs),
    /// Open N interactive pty shells, wait until every one answers, print `ready N ...`, then
    /// hold them idle until standard input closes, SIGTERM/SIGINT, or `--hold-secs` pass.
    Idle(idle::IdleArgs),
    /// Build a fresh store of synthetic sessions and commands (1,000,000 commands and 1 GB of
    /// output by default), then time searches of several kinds.
    ///
    /// Prints `build ...` and one `query class=.. p50_ms=.. p99_ms=.. max_ms=..` line per class,
    /// then a Markdown table.
    Search(search::SearchArgs),
    /// Write a long synthetic recorded session (heavy shell output) into a data directory and
    /// print its id: the console's seek benchmark replays it (`bench/console.sh`).
    SynthSession(synth::SynthArgs),
}

/// How to log in: every endpoint uses the same private key.
#[derive(clap::Args, Clone)]
struct AuthArgs {
    /// Unencrypted OpenSSH private key used for every login.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Seconds allowed for connecting, authenticating and opening the shell.
    #[arg(long, default_value_t = 20)]
    connect_timeout_s: u64,
}

impl AuthArgs {
    fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_s)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keepwatch-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Latency(a) => latency::run(a).await,
            Command::Idle(a) => idle::run(a).await,
            Command::Search(a) => search::run(a).await,
            Command::SynthSession(a) => synth::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keepwatch-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `NAME=USER@HOST:PORT[,via=USER@HOST:PORT]`.
fn parse_named_endpoint(s: &str) -> Result<(String, Endpoint), String> {
    let (name, rest) =
        s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=USER@HOST:PORT"))?;
    let (target, via) = match rest.split_once(",via=") {
        Some((t, v)) => (t, Some(v)),
        None => (rest, None),
    };
    let mut ep = Endpoint::parse(target)?;
    if let Some(v) = via {
        ep.jump = Some(Box::new(Endpoint::parse(v)?));
    }
    Ok((name.to_owned(), ep))
}
