//! `keepwatch drill`: the audit-readiness drill an auditor asks for. For N sessions picked at
//! random it finds each one by searching one of its commands, replays its recording to the
//! end, and verifies it, timing every step. The result is audited (`drill_run`), so the
//! trail itself is the evidence that locating, replaying and proving sessions works.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use keepwatch_core::{AuditAction, Look, SessionId, SessionStatus};
use keepwatch_recorder::check_session;
use keepwatch_store::{NewAudit, SearchQuery, SessionFilter, SessionRow};
use serde_json::{Value, json};

use crate::datadir::DataDir;
use crate::output::{local_actor, print_json, safe, table};
use crate::playback::EventReader;
use crate::sessions::{look, pinned_key};

#[derive(Args)]
pub(crate) struct DrillArgs {
    /// How many sessions to drill (picked at random among the ended sessions that have a
    /// searchable command).
    #[arg(long, default_value_t = 5)]
    sessions: usize,
    /// The trusted public key to verify against (as for `verify`).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The trusted key's fingerprint (as for `verify`).
    #[arg(long, value_name = "SHA256:...")]
    fingerprint: Option<String>,
    #[arg(long)]
    json: bool,
}

/// One session's drill.
struct Step {
    session: SessionId,
    command: String,
    found: bool,
    search_ms: f64,
    events: usize,
    replayed: bool,
    replay_ms: f64,
    intact: bool,
    verify_ms: f64,
    problems: Vec<String>,
}

impl Step {
    fn passed(&self) -> bool {
        self.found && self.replayed && self.intact
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Picks `n` of `candidates` at random (all when there are fewer).
fn pick<T>(mut candidates: Vec<T>, n: usize) -> anyhow::Result<Vec<T>> {
    let mut picked = Vec::with_capacity(n.min(candidates.len()));
    while picked.len() < n && !candidates.is_empty() {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let i = (u64::from_le_bytes(b) % candidates.len() as u64) as usize;
        picked.push(candidates.swap_remove(i));
    }
    Ok(picked)
}

/// The command a session is searched by: its longest, to make the search specific.
fn searchable(commands: &[keepwatch_store::CommandRow]) -> Option<String> {
    commands
        .iter()
        .filter(|c| !matches!(c.kind.as_str(), "env" | "screen"))
        .map(|c| c.command.trim())
        .filter(|c| c.len() >= 3)
        .max_by_key(|c| c.len())
        .map(|c| c.chars().take(200).collect())
}

pub(crate) async fn drill(dir: &DataDir, a: DrillArgs) -> anyhow::Result<ExitCode> {
    let key = pinned_key(dir, a.key.as_deref(), a.fingerprint.as_deref())?;
    let store = dir.store().await?;
    let blobs = dir.blobs()?;
    let ended: Vec<SessionRow> = store
        .sessions(&SessionFilter::default())
        .await?
        .into_iter()
        .filter(|s| s.status != SessionStatus::Active && s.chain_head.is_some())
        .collect();
    let mut candidates = Vec::new();
    for s in ended {
        if let Some(command) = searchable(&store.commands(s.id).await?) {
            candidates.push((s, command));
        }
    }
    if candidates.is_empty() {
        anyhow::bail!(
            "no ended session with a searchable command to drill (see `keepwatch index status`)"
        );
    }
    let mut steps = Vec::new();
    for (row, command) in pick(candidates, a.sessions.max(1))? {
        let id = row.id;
        let started = Instant::now();
        let q = SearchQuery {
            text: command.clone(),
            person: Some(row.person.clone()),
            target: Some(row.target.clone()),
            session: None,
            since_us: None,
            until_us: None,
            commands_only: true,
            tag: None,
            limit: 1000,
        };
        let found = store.search(&q).await?.hits.iter().any(|h| h.session_id == id);
        let search_ms = ms(started);

        let started = Instant::now();
        look(&store, id, Look::Replay, "drill").await?;
        let mut events = 0;
        let mut reader = EventReader::new(dir, &store, id).await?;
        let replayed = loop {
            match reader.next().await {
                Ok(Some(batch)) => events += batch.len(),
                Ok(None) => break events > 0,
                Err(_) => break false,
            }
        };
        let replay_ms = ms(started);

        let started = Instant::now();
        let problems: Vec<String> = check_session(&blobs, &key, id, Some(&row))
            .await?
            .iter()
            .map(|p| p.what.clone())
            .collect();
        let verify_ms = ms(started);
        steps.push(Step {
            session: id,
            command,
            found,
            search_ms,
            events,
            replayed,
            replay_ms,
            intact: problems.is_empty(),
            verify_ms,
            problems,
        });
    }
    let passed = steps.iter().filter(|s| s.passed()).count();
    let summary =
        format!("{} session(s) drilled: {passed} found, replayed and verified", steps.len());
    let detail = json!({
        "passed": passed == steps.len(),
        "summary": summary,
        "sessions": steps.iter().map(|s| json!({
            "session": s.session.to_string(), "found": s.found, "replayed": s.replayed,
            "intact": s.intact, "search_ms": s.search_ms.round(), "replay_ms": s.replay_ms.round(),
            "verify_ms": s.verify_ms.round(),
        })).collect::<Vec<_>>(),
    });
    store
        .audit(NewAudit {
            actor: local_actor(),
            action: AuditAction::DrillRun,
            session_id: None,
            client_addr: None,
            detail: detail.to_string(),
        })
        .await?;
    if a.json {
        let v: Vec<Value> = steps
            .iter()
            .map(|s| {
                json!({"session": s.session.to_string(), "searched_for": s.command,
                    "found": s.found, "search_ms": s.search_ms, "events": s.events,
                    "replayed": s.replayed, "replay_ms": s.replay_ms, "intact": s.intact,
                    "verify_ms": s.verify_ms, "problems": s.problems, "passed": s.passed()})
            })
            .collect();
        print_json(&json!({"passed": passed == steps.len(), "sessions": v}));
    } else {
        let yes = |b: bool| if b { "yes" } else { "NO" };
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|s| {
                vec![
                    s.session.to_string(),
                    safe(&s.command).chars().take(40).collect(),
                    format!("{} ({:.0} ms)", yes(s.found), s.search_ms),
                    format!("{} ({} events, {:.0} ms)", yes(s.replayed), s.events, s.replay_ms),
                    format!("{} ({:.0} ms)", yes(s.intact), s.verify_ms),
                ]
            })
            .collect();
        table(&["SESSION", "SEARCHED FOR", "FOUND", "REPLAYED", "INTACT"], &rows);
        for s in steps.iter().filter(|s| !s.problems.is_empty()) {
            for p in &s.problems {
                eprintln!("keepwatch: session {}: {}", s.session, safe(p));
            }
        }
        println!("{summary}");
    }
    Ok(if passed == steps.len() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
