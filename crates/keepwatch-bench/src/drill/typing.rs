//! `keepwatch-bench drill-flood`: keystroke echo in real sessions while the gateway is
//! flooded. Opens the typists' sessions once and times them quiet, then under each flood (a
//! `keepwatch-bench flood` child process, so the flood does not share this process's
//! threads) with a quiet phase after each; meanwhile it tries fresh logins to see whether new
//! people still get in, and reads the gateway's CPU time and the audit rows each phase wrote.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keepwatch_store::{AuditFilter, Store};
use russh::Channel;
use russh::client::Msg;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

use super::procstat;
use crate::AuthArgs;
use crate::client::{self, Connected, Endpoint};
use crate::latency::{keystroke, open_raw_cat, percentile};

#[derive(clap::Args)]
pub(crate) struct DrillFloodArgs {
    #[command(flatten)]
    auth: AuthArgs,
    /// The typists' sessions, through the gateway: USER@HOST:PORT.
    #[arg(long, value_parser = Endpoint::parse)]
    endpoint: Endpoint,
    /// Typed alongside the gateway's sessions in every phase, for reference (direct to the
    /// target's sshd): NAME=USER@HOST:PORT (repeatable).
    #[arg(long = "reference", value_name = "SPEC", value_parser = crate::parse_named_endpoint)]
    references: Vec<(String, Endpoint)>,
    /// Typists' sessions through the gateway.
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Seconds of typing per phase.
    #[arg(long, default_value_t = 40)]
    phase_s: u64,
    /// Pause between keystrokes (each goes to the next session in turn).
    #[arg(long, default_value_t = 2)]
    gap_ms: u64,
    /// Seconds one echo may take before its session counts as lost.
    #[arg(long, default_value_t = 10)]
    echo_timeout_s: u64,
    /// Seconds each flood runs before its keystrokes are timed.
    #[arg(long, default_value_t = 5)]
    settle_s: u64,
    /// One flood phase per value, as NAME:SOURCES:SILENT:LOGINS_PER_S — the flood's source
    /// addresses (comma-separated), the silent connections it keeps trying to hold, and the
    /// wrong-password logins it starts per second (repeatable; e.g.
    /// `one-address:127.0.0.1:2000:200`).
    #[arg(long = "flood", value_name = "SPEC", required = true, value_parser = FloodSpec::parse)]
    floods: Vec<FloodSpec>,
    /// The login name the flood tries with wrong passwords.
    #[arg(long, default_value = "alice@web01")]
    flood_user: String,
    /// Try a fresh key login from each of these addresses every `--probe-every-ms`, to see
    /// whether new people still get in (repeatable).
    #[arg(long = "probe-source", default_values_t = [IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 200])])]
    probe_sources: Vec<IpAddr>,
    #[arg(long, default_value_t = 1000)]
    probe_every_ms: u64,
    /// Also try a password login with the password in this file (the person of
    /// `--endpoint`, from the last `--probe-source`): does the flood lock the person out?
    #[arg(long, value_name = "FILE")]
    probe_password_file: Option<PathBuf>,
    /// The gateway's process, for its CPU time per phase.
    #[arg(long, value_name = "PID")]
    gateway_pid: Option<u32>,
    /// The gateway's data directory, for the audit rows each phase wrote.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds after a flood stops before the next phase (the gateway lets go of the
    /// flood's connections).
    #[arg(long, default_value_t = 5)]
    cooldown_s: u64,
}

/// One flood phase: where it comes from and what it sends.
#[derive(Clone, Debug)]
struct FloodSpec {
    name: String,
    sources: String,
    silent: usize,
    logins_per_s: u32,
}

impl FloodSpec {
    fn parse(s: &str) -> Result<Self, String> {
        let f: Vec<&str> = s.split(':').collect();
        let [name, sources, silent, logins] = f[..] else {
            return Err(format!("{s:?}: expected NAME:SOURCES:SILENT:LOGINS_PER_S"));
        };
        for a in sources.split(',') {
            a.parse::<IpAddr>().map_err(|e| format!("{s:?}: source {a:?}: {e}"))?;
        }
        Ok(FloodSpec {
            name: name.to_owned(),
            sources: sources.to_owned(),
            silent: silent.parse().map_err(|e| format!("{s:?}: silent {silent:?}: {e}"))?,
            logins_per_s: logins.parse().map_err(|e| format!("{s:?}: logins {logins:?}: {e}"))?,
        })
    }
}

struct Typist {
    name: String,
    group: String,
    _conn: Connected,
    channel: Channel<Msg>,
    lost: Option<String>,
}

/// What one phase measured.
struct Phase {
    name: String,
    samples: Vec<(String, u64)>,
    gateway_cpu_pct: Option<f64>,
    machine_busy_pct: Option<f64>,
    probes: Probes,
    audit: Option<(u64, u64)>,
    flood: Vec<String>,
    spec: Option<FloodSpec>,
}

pub(crate) async fn run(args: DrillFloodArgs) -> anyhow::Result<()> {
    let key = Arc::new(
        russh::keys::load_secret_key(&args.auth.key, None)
            .with_context(|| format!("cannot load the private key {}", args.auth.key.display()))?,
    );
    let timeout = args.auth.connect_timeout();
    let mut typists = Vec::new();
    for i in 1..=args.sessions {
        let name = format!("gateway-{i:02}");
        typists.push(open_typist(&name, "gateway", &args.endpoint, &key, timeout).await?);
    }
    for (name, ep) in &args.references {
        typists.push(open_typist(name, name, ep, &key, timeout).await?);
    }
    println!(
        "typists {} sessions through the gateway, {} reference",
        args.sessions,
        args.references.len()
    );
    let store = match &args.data_dir {
        Some(d) => Some(
            Store::open_sqlite(&d.join("keepwatch.db"))
                .await
                .with_context(|| format!("cannot open {}/keepwatch.db", d.display()))?,
        ),
        None => None,
    };

    let password = match &args.probe_password_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .trim_end()
                .to_owned(),
        ),
        None => None,
    };
    // A quiet phase before and after every flood: each flood is compared with the quiet
    // phases on either side of it, so load from elsewhere on the machine falls on both.
    let mut plan: Vec<(String, Option<FloodSpec>)> = vec![("quiet-1".into(), None)];
    for (i, f) in args.floods.iter().enumerate() {
        plan.push((f.name.clone(), Some(f.clone())));
        plan.push((format!("quiet-{}", i + 2), None));
    }
    let mut phases = Vec::new();
    for (name, spec) in plan {
        // The gateway's CPU and the audit rows count from before the flood starts to after
        // it stops; keystrokes are timed once it has settled.
        let before = Snapshot::take(&args, store.as_ref()).await;
        let mut flood = None;
        if let Some(spec) = &spec {
            flood = Some(start_flood(&args, spec).await?);
            tokio::time::sleep(Duration::from_secs(args.settle_s)).await;
        }
        let (samples, probes) =
            measure(&args, &name, &mut typists, &key, password.as_deref()).await;
        let mut lines = Vec::new();
        if let Some(f) = flood {
            lines = stop_flood(f).await?;
        }
        let after = Snapshot::take(&args, store.as_ref()).await;
        let phase = Phase {
            name,
            samples,
            gateway_cpu_pct: after.cpu_pct_since(&before),
            machine_busy_pct: after.machine_pct_since(&before),
            probes,
            audit: after.audit.zip(before.audit).map(|(a, b)| (a.0 - b.0, a.1 - b.1)),
            flood: lines,
            spec,
        };
        print_phase(&phase);
        phases.push(phase);
        if phases.last().is_some_and(|p| p.spec.is_some()) {
            tokio::time::sleep(Duration::from_secs(args.cooldown_s)).await;
        }
    }
    let lost: Vec<String> = typists
        .iter()
        .filter_map(|t| t.lost.as_ref().map(|why| format!("{}: {why}", t.name)))
        .collect();
    println!("typists lost={} of {}", lost.len(), typists.len());
    for l in &lost {
        println!("typist lost: {l}");
    }
    for t in &mut typists {
        let _ = t.channel.eof().await;
    }
    if let Some(s) = store {
        s.close().await;
    }
    Ok(())
}

async fn open_typist(
    name: &str,
    group: &str,
    ep: &Endpoint,
    key: &Arc<russh::keys::PrivateKey>,
    timeout: Duration,
) -> anyhow::Result<Typist> {
    let conn = client::connect(ep, key, timeout).await.with_context(|| format!("typist {name}"))?;
    let channel = open_raw_cat(&conn, ep, timeout)
        .await
        .with_context(|| format!("typist {name}: starting `cat` on {ep}"))?;
    Ok(Typist { name: name.into(), group: group.into(), _conn: conn, channel, lost: None })
}

struct RunningFlood {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

async fn start_flood(args: &DrillFloodArgs, spec: &FloodSpec) -> anyhow::Result<RunningFlood> {
    let exe = std::env::current_exe().context("cannot find keepwatch-bench itself")?;
    let target = format!("{}:{}", args.endpoint.host, args.endpoint.port);
    let mut child = tokio::process::Command::new(exe)
        .args(["flood", "--target", &target, "--sources", &spec.sources])
        .args(["--silent", &spec.silent.to_string()])
        .args(["--logins-per-s", &spec.logins_per_s.to_string()])
        .args(["--user", &args.flood_user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the flood")?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("the flood's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the flood did not start within 30 s")?
        .context("reading the flood's output")?;
    match first {
        Some(l) if l.starts_with("flooding") => println!("{l}"),
        other => bail!("the flood did not start: {other:?}"),
    }
    Ok(RunningFlood { child, stdin, lines })
}

/// Closes the flood's standard input (it stops and reports) and returns its report lines.
async fn stop_flood(mut f: RunningFlood) -> anyhow::Result<Vec<String>> {
    drop(f.stdin.take());
    let mut out = Vec::new();
    let read = async {
        while let Some(l) = f.lines.next_line().await? {
            out.push(l);
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(r) => r.context("reading the flood's report")?,
        Err(_) => {
            let _ = f.child.start_kill();
            bail!("the flood did not stop within 30 s of being told to");
        }
    }
    let status = f.child.wait().await.context("waiting for the flood")?;
    if !status.success() {
        bail!("the flood failed ({status}): {}", out.join(" | "));
    }
    Ok(out)
}

/// What the gateway and the machine had done by one moment.
struct Snapshot {
    at: Instant,
    gateway: Option<procstat::ProcSample>,
    machine: Option<(f64, f64)>,
    audit: Option<(u64, u64)>,
}

impl Snapshot {
    async fn take(args: &DrillFloodArgs, store: Option<&Store>) -> Snapshot {
        let audit = match store {
            Some(s) => audit_counts(s).await,
            None => None,
        };
        Snapshot {
            at: Instant::now(),
            gateway: args.gateway_pid.and_then(|p| procstat::sample(p).ok()),
            machine: procstat::machine_cpu(),
            audit,
        }
    }

    fn cpu_pct_since(&self, before: &Snapshot) -> Option<f64> {
        let wall = (self.at - before.at).as_secs_f64().max(0.001);
        self.gateway.zip(before.gateway).map(|(b, a)| (b.cpu_s - a.cpu_s) / wall * 100.0)
    }

    fn machine_pct_since(&self, before: &Snapshot) -> Option<f64> {
        self.machine.zip(before.machine).map(|(b, a)| (b.0 - a.0) / (b.1 - a.1).max(0.001) * 100.0)
    }
}

type Probes = Vec<(String, Result<u64, String>)>;

/// Types for `--phase-s` while probing logins; the samples by group, and the probes.
async fn measure(
    args: &DrillFloodArgs,
    name: &str,
    typists: &mut [Typist],
    key: &Arc<russh::keys::PrivateKey>,
    password: Option<&str>,
) -> (Vec<(String, u64)>, Probes) {
    let t0 = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let probes = tokio::spawn(probe(
        args.endpoint.clone(),
        key.clone(),
        password.map(str::to_owned),
        args.probe_sources.clone(),
        Duration::from_millis(args.probe_every_ms.max(100)),
        stop_rx,
    ));
    let phase_len = Duration::from_secs(args.phase_s);
    let gap = Duration::from_millis(args.gap_ms);
    let echo_timeout = Duration::from_secs(args.echo_timeout_s);
    let mut samples = Vec::new();
    let mut i = 0usize;
    while t0.elapsed() < phase_len && typists.iter().any(|t| t.lost.is_none()) {
        let t = &mut typists[i % typists.len()];
        i += 1;
        if t.lost.is_some() {
            continue;
        }
        let byte = b'a' + (i % 26) as u8;
        match keystroke(&mut t.channel, byte, echo_timeout).await {
            Ok(took) => samples.push((t.group.clone(), took.as_micros() as u64)),
            Err(e) => t.lost = Some(format!("in phase {name}: {e:#}")),
        }
        tokio::time::sleep(gap).await;
    }
    let _ = stop_tx.send(true);
    (samples, probes.await.unwrap_or_default())
}

/// (the newest audit row's id, login_refused rows in all); differences between two reads
/// are the rows written in between.
async fn audit_counts(store: &Store) -> Option<(u64, u64)> {
    let newest = store.audit_events(&AuditFilter { limit: Some(1), ..Default::default() }).await;
    let refused = store
        .audit_events(&AuditFilter {
            action: Some(keepwatch_core::AuditAction::LoginRefused),
            ..Default::default()
        })
        .await;
    let newest = newest.ok()?.first().map_or(0, |r| r.id as u64);
    Some((newest, refused.ok()?.len() as u64))
}

/// Fresh logins until `stop`, one round per `every`: by key from each source, and by
/// password (when given) from the last source. Each: milliseconds to log in, or why not.
async fn probe(
    ep: Endpoint,
    key: Arc<russh::keys::PrivateKey>,
    password: Option<String>,
    sources: Vec<IpAddr>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Probes {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return out,
        }
        for &source in &sources {
            let t0 = Instant::now();
            let r = client::connect_from(&ep, &key, Duration::from_secs(10), source).await;
            let r = match r {
                Ok(conn) => {
                    let ms = t0.elapsed().as_millis() as u64;
                    let _ = conn.handle.disconnect(russh::Disconnect::ByApplication, "", "").await;
                    Ok(ms)
                }
                Err(e) => Err(format!("{e:#}")),
            };
            out.push((format!("key from {source}"), r));
        }
        if let (Some(pw), Some(&source)) = (&password, sources.last()) {
            let t0 = Instant::now();
            let r = client::password_login_from(&ep, pw, Duration::from_secs(10), source).await;
            out.push((
                format!("password from {source}"),
                r.map(|()| t0.elapsed().as_millis() as u64).map_err(|e| format!("{e:#}")),
            ));
        }
    }
}

fn print_phase(p: &Phase) {
    let mut groups: Vec<&str> = p.samples.iter().map(|(g, _)| g.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        let mut v: Vec<u64> = p.samples.iter().filter(|(x, _)| x == g).map(|(_, us)| *us).collect();
        v.sort_unstable();
        println!(
            "phase {} group={g} keys={} p50_us={} p90_us={} p99_us={} max_us={}",
            p.name,
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.9),
            percentile(&v, 0.99),
            v.last().copied().unwrap_or(0),
        );
    }
    let fmt = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.0}"));
    let (audit_rows, refused_rows) =
        p.audit.map_or(("n/a".into(), "n/a".into()), |(a, r)| (a.to_string(), r.to_string()));
    let flood = p.spec.as_ref().map_or("none".into(), |f| {
        format!(
            "{}_addresses/{}_silent/{}_logins_per_s",
            f.sources.split(',').count(),
            f.silent,
            f.logins_per_s
        )
    });
    println!(
        "phase {} flood={flood} gateway_cpu_pct={} machine_busy_pct={} audit_rows={audit_rows} login_refused_rows={refused_rows}",
        p.name,
        fmt(p.gateway_cpu_pct),
        fmt(p.machine_busy_pct),
    );
    let mut kinds: Vec<&str> = p.probes.iter().map(|(k, _)| k.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for k in kinds {
        let mine: Vec<&Result<u64, String>> =
            p.probes.iter().filter(|(x, _)| x == k).map(|(_, r)| r).collect();
        let mut ok: Vec<u64> = mine.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        ok.sort_unstable();
        let failed: Vec<&String> = mine.iter().filter_map(|r| r.as_ref().err()).collect();
        println!(
            "phase {} probe={} logins_ok={} of {} login_p50_ms={} login_max_ms={}{}",
            p.name,
            k.replace(' ', "_"),
            ok.len(),
            mine.len(),
            percentile(&ok, 0.5),
            ok.last().copied().unwrap_or(0),
            failed.first().map_or(String::new(), |e| format!(" first_failure={e:?}")),
        );
    }
    for l in &p.flood {
        println!("phase {} {l}", p.name);
    }
}
