//! Keystroke echo latency: one byte into a raw-mode pty running `cat`, timed until the same
//! byte comes back, interleaved round-robin across the endpoints.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use russh::client::Msg;
use russh::{Channel, ChannelMsg};

use crate::AuthArgs;
use crate::client::{self, Connected, Endpoint};

/// The remote side: no line discipline echo, no output processing, so the only echo is `cat`
/// writing each byte back, as a raw-mode editor or shell would.
const REMOTE: &str = "stty raw -echo && printf KW_READY && exec cat";

#[derive(clap::Args)]
pub(crate) struct LatencyArgs {
    #[command(flatten)]
    auth: AuthArgs,
    /// An endpoint as NAME=USER@HOST:PORT, or NAME=USER@HOST:PORT,via=USER@HOST:PORT for a
    /// jump host (repeatable).
    #[arg(long = "endpoint", value_name = "SPEC", required = true, value_parser = crate::parse_named_endpoint)]
    endpoints: Vec<(String, Endpoint)>,
    /// Keystrokes timed per endpoint.
    #[arg(long, default_value_t = 500)]
    count: usize,
    /// Keystrokes sent first per endpoint and not counted.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Pause between keystrokes, as between a person's keys.
    #[arg(long, default_value_t = 2)]
    gap_ms: u64,
    /// Seconds one echo may take before the run fails as hung.
    #[arg(long, default_value_t = 5)]
    echo_timeout_s: u64,
    /// Write every sample as `name,index,microseconds` to this file.
    #[arg(long, value_name = "FILE")]
    raw: Option<PathBuf>,
}

struct Typist {
    name: String,
    endpoint: Endpoint,
    _conn: Connected,
    channel: Channel<Msg>,
    samples: Vec<u64>,
}

pub(crate) async fn run(args: LatencyArgs) -> anyhow::Result<()> {
    let key = Arc::new(
        russh::keys::load_secret_key(&args.auth.key, None)
            .with_context(|| format!("cannot load the private key {}", args.auth.key.display()))?,
    );
    let echo_timeout = Duration::from_secs(args.echo_timeout_s);
    let mut typists = Vec::new();
    for (name, ep) in &args.endpoints {
        let conn = client::connect(ep, &key, args.auth.connect_timeout()).await?;
        let channel = open_raw_cat(&conn, ep, args.auth.connect_timeout())
            .await
            .with_context(|| format!("{name}: starting `{REMOTE}` on {ep}"))?;
        typists.push(Typist {
            name: name.clone(),
            endpoint: ep.clone(),
            _conn: conn,
            channel,
            samples: Vec::new(),
        });
    }
    let gap = Duration::from_millis(args.gap_ms);
    for i in 0..args.warmup + args.count {
        let byte = b'a' + (i % 26) as u8;
        for t in &mut typists {
            let took = keystroke(&mut t.channel, byte, echo_timeout)
                .await
                .with_context(|| format!("{}: keystroke {i} to {}", t.name, t.endpoint))?;
            if i >= args.warmup {
                t.samples.push(took.as_micros() as u64);
            }
            tokio::time::sleep(gap).await;
        }
    }
    if let Some(path) = &args.raw {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        for t in &typists {
            for (i, us) in t.samples.iter().enumerate() {
                writeln!(out, "{},{i},{us}", t.name)?;
            }
        }
        out.flush().with_context(|| format!("cannot write {}", path.display()))?;
    }
    for t in &mut typists {
        let _ = t.channel.eof().await;
        let mut s = t.samples.clone();
        s.sort_unstable();
        let mean = s.iter().sum::<u64>() / s.len().max(1) as u64;
        println!(
            "latency {} n={} p50_us={} p90_us={} p99_us={} max_us={} mean_us={mean}",
            t.name,
            s.len(),
            percentile(&s, 0.50),
            percentile(&s, 0.90),
            percentile(&s, 0.99),
            s.last().copied().unwrap_or(0),
        );
    }
    Ok(())
}

/// Nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) async fn open_raw_cat(
    conn: &Connected,
    ep: &Endpoint,
    timeout: Duration,
) -> anyhow::Result<Channel<Msg>> {
    let mut ch = conn
        .handle
        .channel_open_session()
        .await
        .with_context(|| format!("opening a session on {ep}"))?;
    ch.request_pty(true, "xterm", 80, 24, 0, 0, &[]).await?;
    ch.exec(true, REMOTE).await?;
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    // The marker alone proves the pty and the command are up: the replies are not counted,
    // because the gateway answers only one of two pipelined want-reply requests.
    while !contains(&seen, b"KW_READY") {
        let msg = tokio::time::timeout_at(deadline.into(), ch.wait()).await.map_err(|_| {
            anyhow::anyhow!(
                "no ready marker in time (output so far {:?})",
                String::from_utf8_lossy(&seen)
            )
        })?;
        match msg {
            Some(ChannelMsg::Failure) => bail!("the server refused the pty or the command"),
            Some(ChannelMsg::Data { data }) => seen.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, .. }) => seen.extend_from_slice(&data),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                bail!(
                    "the channel closed before the ready marker: {:?}",
                    String::from_utf8_lossy(&seen)
                )
            }
            Some(_) => {}
        }
    }
    Ok(ch)
}

pub(crate) async fn keystroke(
    ch: &mut Channel<Msg>,
    byte: u8,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    ch.data(&[byte][..]).await.context("sending the keystroke")?;
    let deadline = start + timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline.into(), ch.wait()).await.with_context(|| {
            format!("no echo of {:?} within {}s", byte as char, timeout.as_secs())
        })?;
        match msg {
            Some(ChannelMsg::Data { data }) if data.contains(&byte) => return Ok(start.elapsed()),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                bail!("the channel closed while waiting for an echo")
            }
            Some(_) => {}
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
