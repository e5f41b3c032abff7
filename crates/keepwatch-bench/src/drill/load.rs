//! `keepwatch-bench drill-load`: many concurrent sessions, each running the numbered-line
//! producer as an exec channel, and what each client received, written one line per session
//! for `drill-check`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use russh::ChannelMsg;
use tokio::sync::{Notify, Semaphore, watch};

use super::lines::{LineStats, Pace, producer_command};
use super::procstat;
use crate::AuthArgs;
use crate::client::{self, Endpoint};

/// What the client keeps of a session's standard error (the gateway's messages).
const STDERR_KEEP: usize = 512;

#[derive(clap::Args)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    auth: AuthArgs,
    /// Where to log in, as USER@HOST:PORT (through the gateway: alice@web01@127.0.0.1:2222).
    #[arg(long, value_parser = Endpoint::parse)]
    endpoint: Endpoint,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Sessions being set up at the same time (a session counts until its first line).
    #[arg(long, default_value_t = 16)]
    parallel: usize,
    /// Names this run's sessions in their output: PREFIX-0001, PREFIX-0002, ...
    #[arg(long)]
    tag_prefix: String,
    /// Lines the producer prints per tick, in one write.
    #[arg(long, default_value_t = 10)]
    lines_per_tick: u32,
    /// Milliseconds between the producer's ticks.
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Padding per line, bytes (a line is about 40 bytes plus this).
    #[arg(long, default_value_t = 60)]
    pad: usize,
    /// Seconds each producer runs before it exits with status 0 (0: until the channel ends).
    #[arg(long, default_value_t = 0)]
    duration_s: u64,
    /// Seconds after which a session still running is given up (`timeout`); 0: the
    /// duration plus 120 s, or 3600 s when the duration is 0.
    #[arg(long, default_value_t = 0)]
    deadline_s: u64,
    /// The per-session results, tab-separated, one line per session.
    #[arg(long, value_name = "FILE")]
    report: PathBuf,
    /// Sample this process's RSS and CPU time (the gateway's) while the sessions run.
    #[arg(long, value_name = "PID")]
    gateway_pid: Option<u32>,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5)]
    sample_secs: u64,
    /// Write every sample (`seconds rss_kib hwm_kib cpu_s live_sessions`) to this file.
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
}

/// How a session ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The producer finished: exit status, then the channel closed.
    Exit,
    /// The channel closed without an exit status (the gateway ended it).
    Closed,
    /// The connection went away under the channel.
    Disconnected,
    /// Connecting, logging in or starting the command failed.
    Failed,
    /// Still running at the deadline.
    Timeout,
    /// Stopped by SIGTERM/SIGINT to this client.
    Stopped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Exit => "exit",
            Outcome::Closed => "closed",
            Outcome::Disconnected => "disconnected",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Stopped => "stopped",
        }
    }
}

struct SessionResult {
    tag: String,
    /// The connection's local address: what the gateway records as the client address.
    client_addr: Option<std::net::SocketAddr>,
    outcome: Outcome,
    exit_status: Option<u32>,
    stats: LineStats,
    /// Milliseconds from this client's start to the first byte, and to the end.
    first_data_ms: Option<u64>,
    end_ms: u64,
    /// The longest wait between two pieces of output, ms.
    max_gap_ms: u64,
    stderr: String,
}

impl SessionResult {
    /// Bytes a second over the time output flowed.
    fn rate_bps(&self) -> Option<f64> {
        let first = self.first_data_ms?;
        let span = self.end_ms.saturating_sub(first).max(1) as f64 / 1000.0;
        Some(self.stats.bytes as f64 / span)
    }
}

/// Counts sessions that have started (first line) or given up, and says when all have.
struct Ready {
    done: AtomicUsize,
    all: usize,
    notify: Notify,
}

impl Ready {
    fn mark(&self) {
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.all {
            self.notify.notify_waiters();
        }
    }
    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.done.load(Ordering::SeqCst) >= self.all {
                return;
            }
            notified.await;
        }
    }
}

/// Marks its session ready once, at the first line or when the session gives up first.
struct ReadyMark(Option<Arc<Ready>>);

impl ReadyMark {
    fn mark(&mut self) {
        if let Some(r) = self.0.take() {
            r.mark();
        }
    }
}

impl Drop for ReadyMark {
    fn drop(&mut self) {
        self.mark();
    }
}

struct Shared {
    key: Arc<russh::keys::PrivateKey>,
    endpoint: Endpoint,
    pace: Pace,
    connect_timeout: Duration,
    gate: Arc<Semaphore>,
    ready: Arc<Ready>,
    live: AtomicUsize,
    start: Instant,
    deadline: Duration,
}

pub(crate) async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let key = Arc::new(
        russh::keys::load_secret_key(&args.auth.key, None)
            .with_context(|| format!("cannot load the private key {}", args.auth.key.display()))?,
    );
    anyhow::ensure!(args.sessions > 0, "--sessions must be at least 1");
    anyhow::ensure!(args.tick_ms > 0 && args.lines_per_tick > 0, "the producer must print");
    let pace = Pace {
        lines_per_tick: args.lines_per_tick,
        tick_us: args.tick_ms * 1000,
        duration_s: args.duration_s,
        pad: args.pad,
    };
    let deadline = Duration::from_secs(match (args.deadline_s, args.duration_s) {
        (0, 0) => 3600,
        (0, d) => d + 120,
        (d, _) => d,
    });
    let shared = Arc::new(Shared {
        key,
        endpoint: args.endpoint.clone(),
        pace,
        connect_timeout: args.auth.connect_timeout(),
        gate: Arc::new(Semaphore::new(args.parallel.max(1))),
        ready: Arc::new(Ready {
            done: AtomicUsize::new(0),
            all: args.sessions,
            notify: Notify::new(),
        }),
        live: AtomicUsize::new(0),
        start: Instant::now(),
        deadline,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 1..=args.sessions {
        let tag = format!("{}-{i:04}", args.tag_prefix);
        tasks.spawn(run_session(shared.clone(), tag, stop_rx.clone()));
    }

    let (done_tx, done_rx) = watch::channel(false);
    let sampler = args.gateway_pid.map(|pid| {
        let every = Duration::from_secs(args.sample_secs.max(1));
        tokio::spawn(sample_gateway(pid, every, shared.clone(), done_rx))
    });
    let start_sample = args.gateway_pid.and_then(|p| procstat::sample(p).ok());

    // Announce when every session is up (or has given up), for the script to act then.
    let ready_at = {
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.ready.wait().await;
            let live = shared.live.load(Ordering::SeqCst);
            println!(
                "ready {live} of {} sessions producing in {:.1}s",
                shared.ready.all,
                shared.start.elapsed().as_secs_f64()
            );
            let _ = std::io::stdout().flush();
        })
    };

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut results = Vec::with_capacity(args.sessions);
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                Some(r) => results.push(r.context("a session task failed")?),
                None => break,
            },
            _ = term.recv() => { let _ = stop_tx.send(true); }
            _ = tokio::signal::ctrl_c() => { let _ = stop_tx.send(true); }
        }
    }
    ready_at.abort();
    let _ = done_tx.send(true);
    let samples = match sampler {
        Some(s) => s.await.context("the gateway sampler failed")?,
        None => Vec::new(),
    };
    results.sort_by(|a, b| a.tag.cmp(&b.tag));
    write_report(&args.report, &results)?;
    summarize(&results, args.sessions);
    if let Some(pid) = args.gateway_pid {
        let end = procstat::sample(pid).ok();
        gateway_summary(start_sample, end, &samples, args.samples.as_deref());
    }
    Ok(())
}

async fn run_session(
    shared: Arc<Shared>,
    tag: String,
    mut stop: watch::Receiver<bool>,
) -> SessionResult {
    let mut mark = ReadyMark(Some(shared.ready.clone()));
    let mut r = SessionResult {
        tag,
        client_addr: None,
        outcome: Outcome::Failed,
        exit_status: None,
        stats: LineStats::default(),
        first_data_ms: None,
        end_ms: 0,
        max_gap_ms: 0,
        stderr: String::new(),
    };
    let ms = |s: &Shared| s.start.elapsed().as_millis() as u64;
    // Held until the first line: `--parallel` bounds the sessions being set up.
    let mut permit = shared.gate.clone().acquire_owned().await.ok();
    let command = producer_command(&r.tag, &shared.pace);
    let started = async {
        let (conn, local) =
            client::connect_direct(&shared.endpoint, &shared.key, shared.connect_timeout).await?;
        let ch = conn.handle.channel_open_session().await.context("opening a session")?;
        ch.exec(true, command).await.context("starting the producer")?;
        anyhow::Ok((conn, local, ch))
    };
    let (conn, mut ch) = match tokio::time::timeout(shared.connect_timeout, started).await {
        Ok(Ok((conn, local, ch))) => {
            r.client_addr = Some(local);
            (conn, ch)
        }
        Ok(Err(e)) => {
            r.stderr = format!("{e:#}");
            r.end_ms = ms(&shared);
            return r;
        }
        Err(_) => {
            r.stderr = format!("no session within {}s", shared.connect_timeout.as_secs());
            r.end_ms = ms(&shared);
            return r;
        }
    };
    let deadline = tokio::time::Instant::from_std(shared.start + shared.deadline);
    let mut last_data: Option<Instant> = None;
    let mut live = false;
    r.outcome = loop {
        let msg = tokio::select! {
            m = ch.wait() => m,
            _ = tokio::time::sleep_until(deadline) => break Outcome::Timeout,
            _ = stop.wait_for(|s| *s) => break Outcome::Stopped,
        };
        match msg {
            Some(ChannelMsg::Data { data }) => {
                let now = Instant::now();
                if let Some(prev) = last_data {
                    r.max_gap_ms = r.max_gap_ms.max((now - prev).as_millis() as u64);
                } else {
                    r.first_data_ms = Some(ms(&shared));
                }
                last_data = Some(now);
                r.stats.push(&data);
                if !live && r.stats.lines > 0 {
                    live = true;
                    shared.live.fetch_add(1, Ordering::SeqCst);
                    permit = None;
                    mark.mark();
                }
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                let room = STDERR_KEEP.saturating_sub(r.stderr.len());
                let text = String::from_utf8_lossy(&data);
                r.stderr.extend(text.chars().take(room));
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => r.exit_status = Some(exit_status),
            Some(ChannelMsg::Failure) => {
                r.stderr.push_str("the server refused the exec request");
                break Outcome::Failed;
            }
            Some(ChannelMsg::Close) => {
                break if r.exit_status.is_some() { Outcome::Exit } else { Outcome::Closed };
            }
            Some(_) => {}
            None if r.exit_status.is_some() => break Outcome::Exit,
            None => break Outcome::Disconnected,
        }
    };
    drop(permit);
    r.end_ms = ms(&shared);
    if live {
        shared.live.fetch_sub(1, Ordering::SeqCst);
    }
    if matches!(r.outcome, Outcome::Timeout | Outcome::Stopped) {
        let _ = ch.close().await;
    }
    drop(conn);
    r
}

/// Steady-state samples needed before RSS growth is judged.
const MIN_STEADY_SAMPLES: usize = 20;

/// One look at the gateway: seconds since the start, the sample, sessions producing then.
type Sample = (f64, procstat::ProcSample, usize);

/// Samples every `every` until `done`; one sample per interval for the life of the run (a
/// 10-minute run at 5 s is 120 samples), so the list stays small.
async fn sample_gateway(
    pid: u32,
    every: Duration,
    shared: Arc<Shared>,
    mut done: watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.wait_for(|d| *d) => return samples,
        }
        let Ok(s) = procstat::sample(pid) else { return samples };
        let live = shared.live.load(Ordering::SeqCst);
        samples.push((shared.start.elapsed().as_secs_f64(), s, live));
    }
}

fn clean(s: &str) -> String {
    let one_line: String =
        s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(300).collect();
    let t = one_line.trim();
    if t.is_empty() { "-".into() } else { t.to_owned() }
}

/// The columns `drill-check` reads (by name, from the header).
const COLUMNS: &str = "tag\tclient_addr\toutcome\texit_status\tbytes\tline_bytes\tlines\tfirst_seq\tlast_seq\tfirst_ts_us\tlast_ts_us\tproblems\tfirst_data_ms\tend_ms\tmax_gap_ms\tstderr\tfirst_problem";

fn write_report(path: &std::path::Path, results: &[SessionResult]) -> anyhow::Result<()> {
    let mut out = String::new();
    out.push_str(COLUMNS);
    out.push('\n');
    for r in results {
        let s = &r.stats;
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.tag,
            r.client_addr.map_or("-".into(), |a| a.to_string()),
            r.outcome.as_str(),
            r.exit_status.map_or("-".into(), |e| e.to_string()),
            s.bytes,
            s.line_bytes,
            s.lines,
            s.first_seq,
            s.last_seq,
            s.first_ts_us,
            s.last_ts_us,
            s.problems,
            r.first_data_ms.map_or("-".into(), |v| v.to_string()),
            r.end_ms,
            r.max_gap_ms,
            clean(&r.stderr),
            clean(s.first_problem.as_deref().unwrap_or("")),
        );
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

fn summarize(results: &[SessionResult], asked: usize) {
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let bytes: u64 = results.iter().map(|r| r.stats.bytes).sum();
    let problems: u64 = results.iter().map(|r| r.stats.problems).sum();
    println!(
        "load sessions={asked} produced={} exit={} closed={} disconnected={} failed={} timeout={} stopped={} bytes={bytes} line_problems={problems}",
        results.iter().filter(|r| r.stats.lines > 0).count(),
        count(Outcome::Exit),
        count(Outcome::Closed),
        count(Outcome::Disconnected),
        count(Outcome::Failed),
        count(Outcome::Timeout),
        count(Outcome::Stopped),
    );
    let mut rates: Vec<(f64, &str)> =
        results.iter().filter_map(|r| Some((r.rate_bps()?, r.tag.as_str()))).collect();
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let (Some(slow), Some(fast)) = (rates.first(), rates.last()) {
        let mut v: Vec<f64> = rates.iter().map(|r| r.0).collect();
        let (median, _) = super::median_max(&mut v);
        let gap = results
            .iter()
            .max_by_key(|r| r.max_gap_ms)
            .map_or((0, "-"), |r| (r.max_gap_ms, r.tag.as_str()));
        let mut gaps: Vec<f64> = results.iter().map(|r| r.max_gap_ms as f64).collect();
        let (gap_median, _) = super::median_max(&mut gaps);
        println!(
            "load rate_bps median={median:.0} slowest={:.0} slowest_tag={} fastest={:.0} slowest_vs_median={:.3} max_gap_ms={} max_gap_tag={} median_max_gap_ms={gap_median:.0}",
            slow.0,
            slow.1,
            fast.0,
            slow.0 / median.max(1.0),
            gap.0,
            gap.1,
        );
    }
    // The most common message the sessions were left with.
    let mut messages: Vec<&str> =
        results.iter().map(|r| r.stderr.trim()).filter(|s| !s.is_empty()).collect();
    messages.sort_unstable();
    let mut best: Option<(&str, usize)> = None;
    for chunk in messages.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(_, n)| chunk.len() > n) {
            best = Some((chunk[0], chunk.len()));
        }
    }
    if let Some((m, n)) = best {
        println!("load stderr count={n} message={:?}", clean(m));
    }
}

fn gateway_summary(
    start: Option<procstat::ProcSample>,
    end: Option<procstat::ProcSample>,
    samples: &[Sample],
    samples_file: Option<&std::path::Path>,
) {
    if let Some(path) = samples_file {
        let mut text = String::from("seconds\trss_kib\thwm_kib\tcpu_s\tlive_sessions\n");
        for (t, s, live) in samples {
            let _ = writeln!(text, "{t:.1}\t{}\t{}\t{:.2}\t{live}", s.rss_kib, s.hwm_kib, s.cpu_s);
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("keepwatch-bench: cannot write {}: {e}", path.display());
        }
    }
    // Steady state: the samples taken while every session that started was producing, less
    // the first fifth (buffers, the indexer's followers and the allocator settle first).
    let full = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let all_live: Vec<&Sample> = samples.iter().filter(|s| full > 0 && s.2 == full).collect();
    let steady = &all_live[(all_live.len() / 5).min(all_live.len())..];
    let quarter = (steady.len() / 4).max(1);
    let mean = |xs: &[&Sample]| {
        xs.iter().map(|s| s.1.rss_kib as f64).sum::<f64>() / xs.len().max(1) as f64
    };
    // Too few samples say nothing about growth: only warm-up (20 samples: 100 s at 5 s).
    let (early, late) = if steady.len() >= MIN_STEADY_SAMPLES {
        (mean(&steady[..quarter]), mean(&steady[steady.len() - quarter..]))
    } else {
        (0.0, 0.0)
    };
    let rss_before = start.map_or(0, |s| s.rss_kib);
    let rss_full = steady.iter().map(|s| s.1.rss_kib).max().unwrap_or(0);
    println!(
        "gateway rss_before_kib={rss_before} rss_max_with_sessions_kib={rss_full} rss_end_kib={} hwm_kib={} per_session_kib={:.1} sessions={full} steady_first_quarter_kib={early:.0} steady_last_quarter_kib={late:.0} steady_growth_pct={} cpu_s={:.1} samples={}",
        end.map_or(0, |s| s.rss_kib),
        end.map_or(0, |s| s.hwm_kib),
        if full > 0 { (rss_full as f64 - rss_before as f64) / full as f64 } else { 0.0 },
        if early > 0.0 { format!("{:.1}", (late - early) / early * 100.0) } else { "n/a".into() },
        end.zip(start).map_or(0.0, |(e, s)| e.cpu_s - s.cpu_s),
        samples.len(),
    );
}
