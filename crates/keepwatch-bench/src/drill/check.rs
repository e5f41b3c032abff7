//! `keepwatch-bench drill-check`: what each `drill-load` client received against what its
//! session's recording holds, read from the data directory (spool file or sealed blob, a
//! torn tail left out). A client is matched to its session by the client address the gateway
//! recorded (the client's local address and port), so a session whose recording holds no
//! output yet is still found; the tag in the output must then agree. A node of several
//! (`bench/cluster.sh`) is checked with `--database` (the shared PostgreSQL), `--recordings`
//! (the shared bucket) and `--node` (its sessions only: two nodes' clients may have the same
//! local address).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use keepwatch_core::NodeId;
use keepwatch_recording::{Event, RecordingTail};
use keepwatch_store::{Archive, BlobStore, Database, S3Options, SessionFilter, Store};

use super::lines::LineStats;
use super::median_max;

/// Bytes of a recording read at a time.
const READ_PIECE: u64 = 1 << 20;

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The gateway's data directory (the gateway may be running or stopped).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// A `drill-load --report` file (repeatable: one per round).
    #[arg(long = "report", value_name = "FILE", required = true)]
    reports: Vec<PathBuf>,
    /// The statuses every session in the data directory may have (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "closed,interrupted")]
    status: Vec<String>,
    /// Pass only if every recording holds exactly the bytes its client received.
    #[arg(long)]
    exact: bool,
    /// Pass only if no client received more than this much output (in the producer's time)
    /// beyond what its recording holds.
    #[arg(long, value_name = "MS")]
    max_loss_ms: Option<u64>,
    /// The producer's tick: output lost from a recording that holds none of it counts from
    /// one tick before the client's first line.
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Write the comparison of every session, tab-separated, to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The metadata in this PostgreSQL database (`postgres://...`) instead of the data
    /// directory's keepwatch.db.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Sealed recordings in this archive (`s3://bucket/prefix`, keys from the `AWS_*`
    /// environment) instead of the data directory's recordings/; live ones are still read
    /// from the data directory's spool.
    #[arg(long, value_name = "URL")]
    recordings: Option<String>,
    /// The S3 server of `--recordings` when it is not AWS (`http://127.0.0.1:3900`).
    #[arg(long, value_name = "URL", requires = "recordings")]
    s3_endpoint: Option<String>,
    #[arg(long, requires = "recordings")]
    s3_region: Option<String>,
    /// Allow plain HTTP to `--s3-endpoint`.
    #[arg(long, requires = "recordings")]
    s3_allow_http: bool,
    /// Only the sessions this gateway node ran (one node of several on `--database`).
    #[arg(long, value_name = "NAME")]
    node: Option<NodeId>,
}

/// A `drill-load` report line, the columns `check` needs.
struct ClientRow {
    tag: String,
    client_addr: String,
    outcome: String,
    bytes: u64,
    stats_last_seq: u64,
    first_ts_us: u64,
    last_ts_us: u64,
}

fn read_reports(paths: &[PathBuf]) -> anyhow::Result<Vec<ClientRow>> {
    let mut rows = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the report {}", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .with_context(|| format!("{}: no column {name}", path.display()))
        };
        let (tag, addr, outcome, bytes, last_seq, first_ts, last_ts) = (
            col("tag")?,
            col("client_addr")?,
            col("outcome")?,
            col("bytes")?,
            col("last_seq")?,
            col("first_ts_us")?,
            col("last_ts_us")?,
        );
        for (n, line) in lines.enumerate() {
            let f: Vec<&str> = line.split('\t').collect();
            let num = |i: usize| {
                f.get(i).and_then(|v| v.parse::<u64>().ok()).with_context(|| {
                    format!("{} line {}: column {} is not a number", path.display(), n + 2, i + 1)
                })
            };
            rows.push(ClientRow {
                tag: f.get(tag).copied().unwrap_or_default().to_owned(),
                client_addr: f.get(addr).copied().unwrap_or_default().to_owned(),
                outcome: f.get(outcome).copied().unwrap_or_default().to_owned(),
                bytes: num(bytes)?,
                stats_last_seq: num(last_seq)?,
                first_ts_us: num(first_ts)?,
                last_ts_us: num(last_ts)?,
            });
        }
    }
    Ok(rows)
}

/// What one session's recording holds.
struct Recorded {
    id: String,
    status: String,
    stats: LineStats,
    /// Why the recording could not be read to its end, if it could not.
    error: Option<String>,
}

async fn read_recording(
    store: &keepwatch_store::Store,
    blobs: &BlobStore,
    id: keepwatch_core::SessionId,
) -> (LineStats, Option<String>) {
    let key = match store.recording_key(id).await {
        Ok(k) => k,
        Err(e) => return (LineStats::default(), Some(format!("no data key: {e}"))),
    };
    let mut tail = RecordingTail::new(key);
    let mut stats = LineStats::default();
    let mut events = Vec::new();
    loop {
        let piece = match blobs.read_recording_range(id, tail.read_offset(), READ_PIECE).await {
            Ok(p) => p,
            Err(e) => return (stats, Some(format!("cannot read the recording: {e}"))),
        };
        if piece.is_empty() {
            return (stats, None);
        }
        events.clear();
        if let Err(e) = tail.push(&piece, &mut events) {
            let at = tail.consumed_offset();
            return (stats, Some(format!("unreadable after byte {at}: {e}")));
        }
        for ev in &events {
            if let Event::Output { data, .. } = &ev.event {
                stats.push(data);
            }
        }
    }
}

pub(crate) async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let clients = read_reports(&args.reports)?;
    let store = match &args.database {
        Some(url) => Store::open(&Database::Postgres(url.clone()))
            .await
            .context("cannot open the PostgreSQL database")?,
        None => {
            let db = args.data_dir.join("keepwatch.db");
            if !db.exists() {
                bail!("no keepwatch.db in {}", args.data_dir.display());
            }
            Store::open_sqlite(&db)
                .await
                .with_context(|| format!("cannot open {}", db.display()))?
        }
    };
    let blobs = match &args.recordings {
        Some(url) => {
            let s3 = S3Options {
                endpoint: args.s3_endpoint.clone(),
                region: args.s3_region.clone(),
                allow_http: args.s3_allow_http,
                access_key: None,
            };
            let archive = Archive::from_url(url, &s3)
                .with_context(|| format!("cannot open the archive {url}"))?;
            BlobStore::new(&args.data_dir, archive)
        }
        None => BlobStore::local(&args.data_dir),
    }
    .with_context(|| format!("cannot open the recordings of {}", args.data_dir.display()))?;
    // Encrypted recordings open with the data directory's vault key.
    let store = match std::fs::read_to_string(args.data_dir.join("vault.key")) {
        Ok(hex) => store.with_kek(keepwatch_store::Kek::from_vault_key_hex(&hex, None)?),
        Err(_) => store,
    };
    let filter = SessionFilter { node: args.node.clone(), ..Default::default() };
    let sessions = store.sessions(&filter).await.context("cannot list the sessions")?;
    let mut by_addr: HashMap<String, Recorded> = HashMap::new();
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for s in &sessions {
        let status = s.status.to_string();
        *statuses.entry(status.clone()).or_default() += 1;
        let (stats, error) = read_recording(&store, &blobs, s.id).await;
        let rec = Recorded { id: s.id.to_string(), status, stats, error };
        if let Some(other) = by_addr.insert(s.client_addr.clone(), rec) {
            bail!("two sessions came from {} ({} and another)", s.client_addr, other.id);
        }
    }
    store.close().await;

    let mut problems: Vec<String> = Vec::new();
    let mut detail = String::from(
        "tag\tsession\tstatus\tclient_outcome\tdelivered_bytes\trecorded_bytes\tunrecorded_bytes\trecorded_undelivered_bytes\tloss_ms\tclient_last_seq\trecorded_last_seq\tnote\n",
    );
    let (mut unrecorded, mut loss_ms, mut undelivered) = (Vec::new(), Vec::new(), Vec::new());
    let (mut worst_bytes, mut worst_ms) = ((0u64, String::new()), (0f64, String::new()));
    let (mut matched, mut exact, mut missing, mut no_output) = (0, 0, 0, 0);
    for c in &clients {
        if c.bytes == 0 {
            no_output += 1;
            continue;
        }
        let Some(rec) = by_addr.remove(&c.client_addr) else {
            missing += 1;
            problems.push(format!(
                "{}: the client received {} bytes; no session came from {}",
                c.tag, c.bytes, c.client_addr
            ));
            let _ = writeln!(
                detail,
                "{}\t-\t-\t{}\t{}\t0\t{}\t0\t-\t{}\t0\tno recording",
                c.tag, c.outcome, c.bytes, c.bytes, c.stats_last_seq
            );
            continue;
        };
        matched += 1;
        let r = &rec.stats;
        let un = c.bytes.saturating_sub(r.bytes);
        let extra = r.bytes.saturating_sub(c.bytes);
        let since = match r.lines {
            0 => c.first_ts_us.saturating_sub(args.tick_ms * 1000),
            _ => r.last_ts_us,
        };
        let ms = c.last_ts_us.saturating_sub(since) as f64 / 1000.0;
        if un == 0 && extra == 0 {
            exact += 1;
        }
        let mut note = Vec::new();
        if let Some(t) = r.tag.as_ref().filter(|t| **t != c.tag) {
            note.push(format!("the recording holds the output of {t}"));
        }
        if r.problems > 0 {
            note.push(format!("recording: {}", r.first_problem.clone().unwrap_or_default()));
        }
        if r.lines > 0 && r.first_seq != 1 {
            note.push(format!("recording starts at line {}", r.first_seq));
        }
        if let Some(e) = &rec.error {
            note.push(e.clone());
        }
        if !note.is_empty() {
            problems.push(format!("{} (session {}): {}", c.tag, rec.id, note.join("; ")));
        }
        if un > worst_bytes.0 {
            worst_bytes = (un, c.tag.clone());
        }
        if ms > worst_ms.0 {
            worst_ms = (ms, c.tag.clone());
        }
        unrecorded.push(un as f64);
        loss_ms.push(ms);
        undelivered.push(extra as f64);
        let _ = writeln!(
            detail,
            "{}\t{}\t{}\t{}\t{}\t{}\t{un}\t{extra}\t{ms:.1}\t{}\t{}\t{}",
            c.tag,
            rec.id,
            rec.status,
            c.outcome,
            c.bytes,
            r.bytes,
            c.stats_last_seq,
            r.last_seq,
            if note.is_empty() { "-".into() } else { note.join("; ") },
        );
    }
    // Sessions no client claims (set-ups a client gave up on, probes).
    let mut untagged: Vec<&Recorded> = by_addr.values().collect();
    untagged.sort_by(|a, b| a.id.cmp(&b.id));
    for rec in &untagged {
        let _ = writeln!(
            detail,
            "-\t{}\t{}\t-\t-\t{}\t-\t-\t-\t-\t-\tno drill output",
            rec.id, rec.status, rec.stats.bytes
        );
    }
    if let Some(path) = &args.out {
        std::fs::write(path, &detail)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }

    let bad_status: usize =
        statuses.iter().filter(|(s, _)| !args.status.iter().any(|a| a == *s)).map(|(_, n)| n).sum();
    if bad_status > 0 {
        let mut list: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        list.sort();
        problems.push(format!(
            "{bad_status} sessions have a status other than {} ({})",
            args.status.join("/"),
            list.join(",")
        ));
    }
    let (un_med, un_max) = median_max(&mut unrecorded);
    let (ms_med, ms_max) = median_max(&mut loss_ms);
    let (_, extra_max) = median_max(&mut undelivered);
    if args.exact && exact != matched {
        problems.push(format!(
            "{} of {matched} recordings differ from what their client received (unrecorded max {un_max} bytes, recorded but undelivered max {extra_max} bytes)",
            matched - exact
        ));
    }
    if let Some(max) = args.max_loss_ms
        && ms_max > max as f64
    {
        problems.push(format!(
            "{} received {ms_max:.0} ms of output beyond its recording (more than {max} ms)",
            worst_ms.1
        ));
    }
    let mut list: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    list.sort();
    println!(
        "check sessions={} clients={} matched={matched} exact={exact} missing={missing} no_output={no_output} unclaimed={} statuses={}",
        sessions.len(),
        clients.len(),
        untagged.len(),
        list.join(","),
    );
    println!(
        "check unrecorded_bytes_median={un_med:.0} unrecorded_bytes_max={un_max:.0} unrecorded_bytes_max_tag={} loss_ms_median={ms_med:.1} loss_ms_max={ms_max:.1} loss_ms_max_tag={} recorded_undelivered_bytes_max={extra_max:.0}",
        if worst_bytes.1.is_empty() { "-" } else { &worst_bytes.1 },
        if worst_ms.1.is_empty() { "-" } else { &worst_ms.1 },
    );
    for p in problems.iter().take(10) {
        println!("check problem: {p}");
    }
    if problems.len() > 10 {
        println!("check problem: ... and {} more", problems.len() - 10);
    }
    println!("check verdict={}", if problems.is_empty() { "pass" } else { "fail" });
    Ok(())
}
