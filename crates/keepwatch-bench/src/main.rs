//! `keepwatch-bench`: the measurements `bench/run.sh` cannot make with shell tools — keystroke
//! echo latency over a pty, and many idle interactive sessions held open at once — driven
//! through a russh client against the gateway, a direct sshd, or sshd behind a jump host; the
//! search index at scale (`bench/search.sh`), driven through the store directly; and the
//! clients of the failure drills (`bench/drills.sh`).

mod client;
mod drill;
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
    /// Run many sessions with numbered output through the gateway; report what each received.
    ///
    /// Each session execs a producer on the target that prints lines `KWD TAG SEQ EPOCH_US
    /// PADDING` at a fixed rate (`--lines-per-tick` every `--tick-ms`), for `--duration-s`
    /// or until the channel ends. Prints `ready N of M sessions producing` once every session
    /// printed its first line (or gave up), then, when all have ended (producer done, the
    /// gateway closed them, the connection dropped, `--deadline-s`, or SIGTERM), writes one
    /// line per session to `--report` and prints `load ...` summary lines (and `gateway ...`
    /// memory and CPU with `--gateway-pid`). Exits non-zero only if it could not run.
    DrillLoad(drill::load::LoadArgs),
    /// Compare `drill-load` reports with the recordings in a data directory.
    ///
    /// Matches each client to its recording by the tag in the output, and prints how many
    /// bytes (and milliseconds of the producer's output) each client received beyond its
    /// recording, the sessions' statuses, and `check verdict=pass|fail` with the reasons
    /// (`--exact`: recorded equals delivered; `--max-loss-ms`; `--status`).
    DrillCheck(drill::check::CheckArgs),
    /// Time keystroke echo in sessions through the gateway, quiet and under floods.
    ///
    /// Opens `--sessions` raw `cat` sessions (and `--reference` ones) and types into them
    /// round-robin for `--phase-s` per phase: quiet, then each `--flood` (a `flood` child
    /// process) followed by a quiet phase. Meanwhile it logs in afresh from
    /// `--probe-source` addresses. Prints `phase NAME group=G keys=.. p50_us=.. p99_us=..`,
    /// the gateway's CPU, the audit rows written, the probes, and the flood's own report, then
    /// `typists lost=N` (sessions whose echo stopped).
    DrillFlood(drill::typing::DrillFloodArgs),
    /// Flood an SSH server: silent TCP connections and wrong-password logins.
    ///
    /// Prints `flooding ...` once started, then floods until `--duration-s`, standard input
    /// closes, or SIGTERM, and prints `flood silent ...` (what the silent connections met:
    /// admitted, refused at accept, closed after the login grace time) and `flood logins ...`
    /// (rejected, refused at accept, timed out; rejection time percentiles).
    Flood(drill::flood::FloodArgs),
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
            Command::DrillLoad(a) => drill::load::run(a).await,
            Command::DrillCheck(a) => drill::check::run(a).await,
            Command::DrillFlood(a) => drill::typing::run(a).await,
            Command::Flood(a) => drill::flood::run(a).await,
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
