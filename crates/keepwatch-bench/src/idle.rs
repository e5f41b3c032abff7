//! Many idle interactive sessions at once: each a pty shell that has answered a command,
//! then left alone while the caller measures the gateway's memory.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use russh::ChannelMsg;
use tokio::sync::Semaphore;

use crate::AuthArgs;
use crate::client::{self, Connected, Endpoint};

/// Typed into each shell; the answer (`KW_42_UP`) differs from the echoed command line, so
/// seeing it proves the shell ran it.
const PROBE: &[u8] = b"echo KW_$((6*7))_UP\r";
const ANSWER: &[u8] = b"KW_42_UP";

#[derive(clap::Args)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    auth: AuthArgs,
    /// Where to log in, as USER@HOST:PORT.
    #[arg(long, value_parser = Endpoint::parse)]
    endpoint: Endpoint,
    /// Sessions to open.
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Sessions being set up at the same time.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Longest time to hold the sessions before letting go anyway.
    #[arg(long, default_value_t = 300)]
    hold_secs: u64,
}

pub(crate) async fn run(args: IdleArgs) -> anyhow::Result<()> {
    let key = Arc::new(
        russh::keys::load_secret_key(&args.auth.key, None)
            .with_context(|| format!("cannot load the private key {}", args.auth.key.display()))?,
    );
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.parallel.max(1)));
    let closed = Arc::new(AtomicUsize::new(0));
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..args.count {
        let (gate, key, ep, closed) =
            (gate.clone(), key.clone(), args.endpoint.clone(), closed.clone());
        let timeout = args.auth.connect_timeout();
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            open_shell(&ep, &key, timeout, closed).await.with_context(|| format!("session {i}"))
        });
    }
    let mut held = Vec::with_capacity(args.count);
    while let Some(r) = opening.join_next().await {
        held.push(r.context("a session task failed")??);
    }
    println!(
        "ready {} sessions in {:.1}s ({:.1}/s)",
        held.len(),
        started.elapsed().as_secs_f64(),
        held.len() as f64 / started.elapsed().as_secs_f64()
    );

    let (tx, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = stdin_closed => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = tokio::time::sleep(Duration::from_secs(args.hold_secs)) => {}
    }
    let dropped = closed.load(Ordering::SeqCst);
    println!("released {} sessions, {dropped} had closed while idle", held.len());
    drop(held);
    if dropped > 0 {
        bail!("{dropped} of {} idle sessions closed on their own", args.count);
    }
    Ok(())
}

async fn open_shell(
    ep: &Endpoint,
    key: &Arc<russh::keys::PrivateKey>,
    timeout: Duration,
    closed: Arc<AtomicUsize>,
) -> anyhow::Result<Connected> {
    let conn = client::connect(ep, key, timeout).await?;
    let mut ch = conn
        .handle
        .channel_open_session()
        .await
        .with_context(|| format!("opening a session on {ep}"))?;
    ch.request_pty(false, "xterm", 80, 24, 0, 0, &[]).await?;
    ch.request_shell(false).await?;
    ch.data(PROBE).await?;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !seen.windows(ANSWER.len()).any(|w| w == ANSWER) {
        match tokio::time::timeout_at(deadline, ch.wait()).await {
            Err(_) => bail!("the shell on {ep} did not answer within {}s", timeout.as_secs()),
            Ok(Some(ChannelMsg::Data { data })) => seen.extend_from_slice(&data),
            Ok(Some(ChannelMsg::Eof | ChannelMsg::Close) | None) => {
                bail!("the shell on {ep} closed: {:?}", String::from_utf8_lossy(&seen))
            }
            Ok(Some(_)) => {}
        }
    }
    // Keep reading so a late message never backs up, and count a channel that closes.
    tokio::spawn(async move {
        while let Some(msg) = ch.wait().await {
            if matches!(msg, ChannelMsg::Close) {
                break;
            }
        }
        closed.fetch_add(1, Ordering::SeqCst);
    });
    Ok(conn)
}
