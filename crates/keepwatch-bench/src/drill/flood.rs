//! `keepwatch-bench flood`: what a stranger throws at the gateway — many TCP connections that
//! never speak, and a steady rate of SSH logins with a wrong password — from one or several
//! source addresses, counting what each attempt met.

use std::io::Read as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, watch};

use super::procstat;
use crate::client::{AnyHostKey, client_config, tcp_from};

/// Rejection times kept for percentiles; later ones are counted only.
const MAX_SAMPLES: usize = 200_000;

#[derive(clap::Args, Clone)]
pub(crate) struct FloodArgs {
    /// The gateway's SSH address, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    target: String,
    /// Source addresses the flood comes from, comma-separated (127.0.0.x loopback aliases
    /// need no setup).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    sources: Vec<IpAddr>,
    /// Silent TCP connections to keep trying to hold open: they connect and send nothing.
    #[arg(long, default_value_t = 2000)]
    silent: usize,
    /// Milliseconds a silent connection waits to connect again once the gateway closed it.
    #[arg(long, default_value_t = 1000)]
    silent_retry_ms: u64,
    /// Wrong-password SSH logins started per second.
    #[arg(long, default_value_t = 200)]
    logins_per_s: u32,
    /// Login attempts in flight at most; an attempt due while this many are open is skipped
    /// (and counted).
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// The login name tried, USER@TARGET.
    #[arg(long, default_value = "alice@web01")]
    user: String,
    /// Seconds to flood; 0: until standard input closes, or SIGTERM/SIGINT.
    #[arg(long, default_value_t = 0)]
    duration_s: u64,
    /// Seconds one login attempt may take before it counts as timed out.
    #[arg(long, default_value_t = 15)]
    attempt_timeout_s: u64,
}

/// An outcome counter that also remembers when it was first seen and one error text.
#[derive(Default)]
struct Counter {
    n: AtomicU64,
    /// Milliseconds after the start + 1 (0: never).
    first_ms: AtomicU64,
    example: std::sync::OnceLock<String>,
}

impl Counter {
    fn hit(&self, start: Instant) {
        self.n.fetch_add(1, Ordering::Relaxed);
        let at = start.elapsed().as_millis() as u64 + 1;
        let _ = self.first_ms.compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
    }
    fn hit_with(&self, start: Instant, example: impl FnOnce() -> String) {
        self.hit(start);
        if self.example.get().is_none() {
            let _ = self.example.set(example());
        }
    }
    fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
    fn first(&self) -> String {
        match self.first_ms.load(Ordering::Relaxed) {
            0 => "-".into(),
            ms => format!("{:.1}", (ms - 1) as f64 / 1000.0),
        }
    }
}

#[derive(Default)]
struct SilentStats {
    connects: Counter,
    connect_errors: Counter,
    /// The gateway sent its version line: the connection holds a pre-login slot.
    admitted: Counter,
    /// Closed (or reset) before any byte: turned away at accept.
    refused: Counter,
    /// Admitted, then closed by the gateway after 20 s or more (the login grace time).
    closed_after_grace: Counter,
    /// Admitted, then closed sooner.
    closed_early: Counter,
    held: AtomicUsize,
    held_max: AtomicUsize,
}

#[derive(Default)]
struct LoginStats {
    started: Counter,
    skipped: Counter,
    /// The gateway answered the password with a failure.
    rejected: Counter,
    accepted: Counter,
    /// Closed before the version line: turned away at accept.
    refused: Counter,
    /// The SSH handshake or the authentication failed otherwise.
    errors: Counter,
    timeouts: Counter,
    connect_errors: Counter,
    samples_us: std::sync::Mutex<Vec<u64>>,
}

struct Flood {
    args: FloodArgs,
    start: Instant,
    silent: SilentStats,
    logins: LoginStats,
    /// Silent connections held per source address now, and the most at once.
    held_by_source: Vec<(AtomicUsize, AtomicUsize)>,
}

pub(crate) async fn run(args: FloodArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.sources.is_empty(), "--sources: at least one address");
    let (host, port) = args
        .target
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .with_context(|| format!("--target {:?}: expected HOST:PORT", args.target))?;
    let cpu0 = procstat::own_cpu_s();
    let machine0 = procstat::machine_cpu();
    let flood = Arc::new(Flood {
        held_by_source: args.sources.iter().map(|_| Default::default()).collect(),
        args,
        start: Instant::now(),
        silent: SilentStats::default(),
        logins: LoginStats::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..flood.args.silent {
        let source = flood.args.sources[i % flood.args.sources.len()];
        let slot = i % flood.args.sources.len();
        tasks.spawn(silent(flood.clone(), host.clone(), port, source, slot, stop_rx.clone()));
    }
    if flood.args.logins_per_s > 0 {
        tasks.spawn(logins(flood.clone(), host.clone(), port, stop_rx.clone()));
    }
    println!(
        "flooding {}:{port} from {} address(es): {} silent connections, {} wrong-password logins/s",
        host,
        flood.args.sources.len(),
        flood.args.silent,
        flood.args.logins_per_s
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());

    let (stdin_tx, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = stdin_tx.send(());
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let until = async {
        match flood.args.duration_s {
            0 => std::future::pending().await,
            d => tokio::time::sleep(Duration::from_secs(d)).await,
        }
    };
    tokio::select! {
        _ = until => {}
        _ = stdin_closed => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let wall = flood.start.elapsed().as_secs_f64();
    let cpu = procstat::own_cpu_s() - cpu0;
    let machine = procstat::machine_cpu().zip(machine0).map(|(b, a)| (b.0 - a.0, b.1 - a.1));
    let _ = stop_tx.send(true);
    // Every task ends at the stop signal; give stragglers a moment, no more.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    report(&flood, wall, cpu, machine);
    Ok(())
}

async fn silent(
    flood: Arc<Flood>,
    host: String,
    port: u16,
    source: IpAddr,
    slot: usize,
    mut stop: watch::Receiver<bool>,
) {
    let s = &flood.silent;
    let retry = Duration::from_millis(flood.args.silent_retry_ms);
    // Spread the first connects over a second rather than all at once.
    let spread = Duration::from_micros((slot as u64 * 7919 + 13) % 1_000_000);
    tokio::select! {
        _ = tokio::time::sleep(spread) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    loop {
        s.connects.hit(flood.start);
        let conn = tokio::select! {
            c = tokio::time::timeout(Duration::from_secs(5), tcp_from(source, &host, port)) => c,
            _ = stop.wait_for(|s| *s) => return,
        };
        match conn {
            Ok(Ok(mut tcp)) => {
                let mut buf = [0u8; 256];
                let first = tokio::select! {
                    r = tcp.read(&mut buf) => r,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match first {
                    Ok(n) if n > 0 => {
                        s.admitted.hit(flood.start);
                        let held = s.held.fetch_add(1, Ordering::SeqCst) + 1;
                        s.held_max.fetch_max(held, Ordering::SeqCst);
                        let (now, max) = &flood.held_by_source[slot];
                        max.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        let since = Instant::now();
                        // Silent: read (and drop) whatever comes, until the gateway hangs up.
                        let ended = loop {
                            tokio::select! {
                                r = tcp.read(&mut buf) => match r {
                                    Ok(0) | Err(_) => break true,
                                    Ok(_) => {}
                                },
                                _ = stop.wait_for(|s| *s) => break false,
                            }
                        };
                        s.held.fetch_sub(1, Ordering::SeqCst);
                        now.fetch_sub(1, Ordering::SeqCst);
                        if !ended {
                            return;
                        }
                        if since.elapsed() >= Duration::from_secs(20) {
                            s.closed_after_grace.hit(flood.start);
                        } else {
                            s.closed_early.hit(flood.start);
                        }
                    }
                    Ok(_) => s.refused.hit(flood.start),
                    Err(e) => s.refused.hit_with(flood.start, || e.to_string()),
                }
            }
            Ok(Err(e)) => s.connect_errors.hit_with(flood.start, || format!("{e:#}")),
            Err(_) => s.connect_errors.hit_with(flood.start, || "connect timed out (5 s)".into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn logins(flood: Arc<Flood>, host: String, port: u16, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs_f64(1.0 / f64::from(flood.args.logins_per_s));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let in_flight = Arc::new(Semaphore::new(flood.args.max_in_flight.max(1)));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            flood.logins.skipped.hit(flood.start);
            continue;
        };
        let source = flood.args.sources[n as usize % flood.args.sources.len()];
        n += 1;
        let (flood, host) = (flood.clone(), host.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let l = &flood.logins;
            l.started.hit(flood.start);
            let timeout = Duration::from_secs(flood.args.attempt_timeout_s);
            let t0 = Instant::now();
            let attempt = wrong_login(&flood, &host, port, source, n);
            tokio::select! {
                r = tokio::time::timeout(timeout, attempt) => match r {
                    Ok(Attempt::Rejected) => {
                        l.rejected.hit(flood.start);
                        let mut v = l.samples_us.lock().unwrap_or_else(|e| e.into_inner());
                        if v.len() < MAX_SAMPLES {
                            v.push(t0.elapsed().as_micros() as u64);
                        }
                    }
                    Ok(Attempt::Accepted) => l.accepted.hit(flood.start),
                    Ok(Attempt::Refused) => l.refused.hit(flood.start),
                    Ok(Attempt::ConnectError(e)) => l.connect_errors.hit_with(flood.start, || e),
                    Ok(Attempt::Error(e)) => l.errors.hit_with(flood.start, || e),
                    Err(_) => l.timeouts.hit(flood.start),
                },
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}

enum Attempt {
    Rejected,
    Accepted,
    Refused,
    ConnectError(String),
    Error(String),
}

async fn wrong_login(flood: &Flood, host: &str, port: u16, source: IpAddr, n: u64) -> Attempt {
    let tcp = match tcp_from(source, host, port).await {
        Ok(t) => t,
        Err(e) => return Attempt::ConnectError(format!("{e:#}")),
    };
    // The gateway speaks first; a connection it turns away at accept closes before that.
    let mut peek = [0u8; 4];
    match tcp.peek(&mut peek).await {
        Ok(0) | Err(_) => return Attempt::Refused,
        Ok(_) => {}
    }
    let mut handle = match russh::client::connect_stream(client_config(), tcp, AnyHostKey).await {
        Ok(h) => h,
        Err(e) => return Attempt::Error(format!("handshake: {e}")),
    };
    let password = format!("wrong-{n}");
    let result = match handle.authenticate_password(flood.args.user.as_str(), password).await {
        Ok(r) if r.success() => Attempt::Accepted,
        Ok(_) => Attempt::Rejected,
        Err(e) => Attempt::Error(format!("authentication: {e}")),
    };
    let _ = handle.disconnect(russh::Disconnect::ByApplication, "", "").await;
    result
}

fn report(flood: &Flood, wall: f64, cpu: f64, machine: Option<(f64, f64)>) {
    let s = &flood.silent;
    let per_source: Vec<String> =
        flood.held_by_source.iter().map(|(_, m)| m.load(Ordering::SeqCst).to_string()).collect();
    println!(
        "flood silent connects={} admitted={} refused_at_accept={} connect_errors={} held_max={} held_max_per_source={} closed_after_grace={} closed_early={} first_refusal_s={} first_grace_close_s={}",
        s.connects.get(),
        s.admitted.get(),
        s.refused.get(),
        s.connect_errors.get(),
        s.held_max.load(Ordering::SeqCst),
        per_source.join("/"),
        s.closed_after_grace.get(),
        s.closed_early.get(),
        s.refused.first(),
        s.closed_after_grace.first(),
    );
    let l = &flood.logins;
    let mut v = l.samples_us.lock().unwrap_or_else(|e| e.into_inner()).clone();
    v.sort_unstable();
    let pct = |q: f64| crate::latency::percentile(&v, q) as f64 / 1000.0;
    println!(
        "flood logins started={} per_s={:.0} skipped={} rejected={} accepted={} refused_at_accept={} errors={} timeouts={} connect_errors={} reject_p50_ms={:.1} reject_p99_ms={:.1} first_refusal_s={} first_error_s={} first_timeout_s={}",
        l.started.get(),
        l.started.get() as f64 / wall.max(0.001),
        l.skipped.get(),
        l.rejected.get(),
        l.accepted.get(),
        l.refused.get(),
        l.errors.get(),
        l.timeouts.get(),
        l.connect_errors.get(),
        pct(0.5),
        pct(0.99),
        l.refused.first(),
        l.errors.first(),
        l.timeouts.first(),
    );
    let busy = machine.map_or("n/a".into(), |(b, t)| format!("{:.0}", b / t.max(0.001) * 100.0));
    println!("flood wall_s={wall:.1} flooder_cpu_s={cpu:.1} machine_busy_pct={busy}");
    for (what, c) in [
        ("silent connect error", &s.connect_errors),
        ("silent reset", &s.refused),
        ("login error", &l.errors),
        ("login connect error", &l.connect_errors),
    ] {
        if let Some(e) = c.example.get() {
            println!("flood example {what}: {e}");
        }
    }
}
