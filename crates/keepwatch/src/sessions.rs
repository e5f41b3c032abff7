//! Listing, showing and verifying sessions, and listing audit events.

use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use keepwatch_core::{AuditAction, Look, SessionId};
use keepwatch_recorder::{Problem, check_anchors, check_session, verify_all};
use keepwatch_recording::anchor::Anchor;
use keepwatch_store::{
    AuditFilter, ChannelRow, NewAudit, SessionFilter, SessionRow, Store, TransferFilter,
};

use crate::transfers::{TRANSFER_HEADERS, transfer_cells, transfer_json};
use serde_json::{Value, json};

use crate::datadir::{DataDir, fingerprint, read_public_key, to_hex};
use crate::output::{cli_viewer, local_actor, print_json, rfc3339, safe, table};

#[derive(Args)]
pub(crate) struct ListArgs {
    /// Only sessions running now.
    #[arg(long)]
    active: bool,
    /// Only this person's sessions.
    #[arg(long, value_name = "U")]
    user: Option<String>,
    /// Only sessions to this target.
    #[arg(long, value_name = "T")]
    target: Option<String>,
    /// Only sessions whose stated reason contains this text (a ticket id, a word).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Only sessions tagged TAG (`keepwatch tag`).
    #[arg(long, value_name = "TAG")]
    tag: Option<keepwatch_core::Tag>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ShowArgs {
    id: SessionId,
    #[arg(long)]
    json: bool,
    /// Also list every event of the recording (one line each; data as byte counts).
    #[arg(long)]
    events: bool,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Sessions to check.
    ids: Vec<SessionId>,
    /// Check every recording, the database rows, the ledger and the audit trail.
    #[arg(long)]
    all: bool,
    /// The trusted public key (a copy of signing.pub kept where the gateway cannot write).
    /// Without --key or --fingerprint, verify trusts the data directory's own signing.pub,
    /// which whoever can rewrite the directory can replace.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The trusted key's fingerprint (printed by `init` and `run`, shown in the console):
    /// signing.pub must have it.
    #[arg(long, value_name = "SHA256:...")]
    fingerprint: Option<String>,
    /// Anchor files (the gateway's [anchor] file, or lines from syslog): the store must still
    /// hold every anchor signed by the trusted key (history only grows).
    #[arg(long, value_name = "FILE")]
    anchor: Vec<PathBuf>,
    /// Also check against the anchors the database keeps (every node's; weaker than a file
    /// kept elsewhere, since whoever can rewrite the database can delete them too).
    #[arg(long)]
    stored_anchors: bool,
}

#[derive(Args)]
pub(crate) struct AuditArgs {
    /// Only this action (e.g. login_refused, session_started, session_watched).
    #[arg(long)]
    action: Option<AuditAction>,
    /// Only this actor (a person, `token:NAME`, or `local:OS_USER` for the CLI).
    #[arg(long, value_name = "A")]
    actor: Option<String>,
    /// Only events about this session.
    #[arg(long, value_name = "ID")]
    session: Option<SessionId>,
    /// At most this many events, newest first.
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    #[arg(long)]
    json: bool,
}

fn channel_json(c: &ChannelRow) -> Value {
    let mut v = json!({
        "channel": c.channel, "kind": c.kind, "opened_at": rfc3339(c.opened_at_us),
        "closed_at": c.closed_at_us.map(rfc3339), "exit_status": c.exit_status,
    });
    if let Some(cmd) = &c.command {
        v["command"] = json!(cmd);
    }
    if let Some(s) = &c.subsystem {
        v["subsystem"] = json!(s);
    }
    if let Some(t) = &c.pty_term {
        v["pty"] = json!(t);
    }
    if let Some(d) = &c.destination {
        v["destination"] = json!(d);
    }
    v
}

/// `shell`, `exec "uptime"`, `subsystem sftp` or `tunnel db:5432`.
fn channel_label(c: &ChannelRow) -> String {
    match (&c.command, &c.subsystem, &c.destination) {
        (Some(cmd), _, _) => format!("exec {cmd:?}"),
        (_, Some(n), _) => format!("subsystem {n}"),
        (_, _, Some(d)) => format!("tunnel {d}"),
        _ => c.kind.clone(),
    }
}

/// A session's row with its channels and transfers, as `sessions --json` and `show --json`
/// print it.
async fn session_json(
    store: &Store,
    s: &SessionRow,
    channels: &[ChannelRow],
) -> anyhow::Result<Value> {
    let transfers =
        store.transfers(&TransferFilter { session: Some(s.id), ..Default::default() }).await?;
    let (env, commands): (Vec<_>, Vec<_>) =
        store.commands(s.id).await?.into_iter().partition(|c| c.kind == "env");
    let tags: Vec<String> = store.session_tags(s.id).await?.into_iter().map(|t| t.tag).collect();
    let mut v = session_row_json(s, channels, &tags);
    v["transfers"] = Value::Array(transfers.iter().map(transfer_json).collect());
    v["commands"] = Value::Array(commands.iter().map(crate::search::command_json).collect());
    v["environment"] = Value::Array(env.iter().map(crate::search::command_json).collect());
    Ok(v)
}

fn session_row_json(s: &SessionRow, channels: &[ChannelRow], tags: &[String]) -> Value {
    json!({
        "id": s.id.to_string(), "user": s.person, "target": s.target, "protocol": s.protocol.as_str(), "target_host": s.target_host,
        "target_login": s.target_login, "client_addr": s.client_addr, "status": s.status.as_str(),
        "reason": s.reason, "stated_reason": s.stated_reason, "tags": tags,
        "started_at": rfc3339(s.started_at_us), "ended_at": s.ended_at_us.map(rfc3339),
        "chain_head": s.chain_head.map(|h| to_hex(&h)),
        "node": s.node.as_ref().map(|n| n.as_str()),
        "channels": channels.iter().map(channel_json).collect::<Vec<_>>(),
    })
}

fn duration(s: &SessionRow) -> String {
    let end = s.ended_at_us.unwrap_or_else(keepwatch_store::now_us);
    let secs = (end - s.started_at_us).max(0) / 1_000_000;
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

pub(crate) async fn list(dir: &DataDir, a: ListArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let filter = SessionFilter {
        person: a.user,
        target: a.target,
        reason: a.reason,
        tag: a.tag.map(|t| t.to_string()),
        ..if a.active { SessionFilter::active() } else { SessionFilter::default() }
    };
    let listed = store.session_listings(&filter).await?;
    if a.json {
        // The rows with their channels and last command; a session's commands, transfers and
        // environment are `show ID --json`'s (a database session can hold millions).
        let out: Vec<Value> = listed
            .iter()
            .map(|l| {
                let mut v = session_row_json(&l.session, &l.channels, &l.tags);
                v["last_command"] = l.last_command.clone().into();
                v
            })
            .collect();
        print_json(&Value::Array(out));
    } else {
        let rows: Vec<Vec<String>> = listed
            .iter()
            .map(|l| {
                let s = &l.session;
                let kinds: Vec<String> = l.channels.iter().map(channel_label).collect();
                vec![
                    s.id.to_string(),
                    s.person.clone(),
                    s.target.clone(),
                    s.client_addr.clone(),
                    s.status.to_string(),
                    rfc3339(s.started_at_us),
                    duration(s),
                    kinds.join(", "),
                    l.tags.join(","),
                ]
            })
            .collect();
        table(
            &[
                "ID", "USER", "TARGET", "CLIENT", "STATUS", "STARTED", "DURATION", "CHANNELS",
                "TAGS",
            ],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One look at session `id` by the CLI (`local:<os user>`, admin), decided and audited by
/// `Store::look`, the function the web console uses too; refused if it cannot be audited.
pub(crate) async fn look(
    store: &Store,
    id: SessionId,
    look: Look,
    detail: &str,
) -> anyhow::Result<SessionRow> {
    match store.look(&cli_viewer(), id, look, detail).await {
        Ok(row) => Ok(row),
        Err(keepwatch_store::LookError::NotFound { id }) => {
            anyhow::bail!("session {id} not found (see `keepwatch sessions`)")
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn show(dir: &DataDir, a: ShowArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let s = look(&store, a.id, Look::View, "show").await?;
    let channels = store.channels(s.id).await?;
    if a.json {
        print_json(&session_json(&store, &s, &channels).await?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("session   {}", s.id);
    println!("user      {}", safe(&s.person));
    println!("target    {} ({}@{})", safe(&s.target), safe(&s.target_login), safe(&s.target_host));
    println!("client    {}", safe(&s.client_addr));
    if let Some(r) = &s.stated_reason {
        println!("reason    {}", safe(r));
    }
    let tags: Vec<String> = store.session_tags(s.id).await?.into_iter().map(|t| t.tag).collect();
    if !tags.is_empty() {
        println!("tags      {}", tags.join(", "));
    }
    println!(
        "status    {}{}",
        s.status,
        s.reason.as_ref().map(|r| format!(" ({})", safe(r))).unwrap_or_default()
    );
    println!("started   {}", rfc3339(s.started_at_us));
    println!("ended     {}", s.ended_at_us.map(rfc3339).unwrap_or_else(|| "-".into()));
    println!("duration  {}", duration(&s));
    if let Some(h) = s.chain_head {
        println!("chain     {}", to_hex(&h));
    }
    println!("channels");
    for c in &channels {
        let what = channel_label(c);
        let pty = c.pty_term.as_ref().map(|t| format!(" pty {t}")).unwrap_or_default();
        let exit = c.exit_status.map(|e| format!(" exit {e}")).unwrap_or_default();
        println!("  #{} {}", c.channel, safe(&format!("{what}{pty}{exit}")));
    }
    let transfers =
        store.transfers(&TransferFilter { session: Some(s.id), ..Default::default() }).await?;
    if !transfers.is_empty() {
        println!("transfers");
        let rows: Vec<Vec<String>> = transfers.iter().map(transfer_cells).collect();
        table(&TRANSFER_HEADERS, &rows);
    }
    let (env, commands): (Vec<_>, Vec<_>) =
        store.commands(s.id).await?.into_iter().partition(|c| c.kind == "env");
    if !env.is_empty() {
        println!("environment (what the person's client asked to set)");
        for e in &env {
            let refused = if e.output == "refused" { " (refused)" } else { "" };
            println!("  #{} {}{refused}", e.channel, e.command);
        }
    }
    if !commands.is_empty() {
        println!("commands");
        crate::search::print_commands(&commands);
    }
    if a.events {
        println!("events");
        let mut reader = crate::playback::EventReader::new(dir, &store, s.id).await?;
        while let Some(batch) = reader.next().await? {
            for e in batch {
                let what = crate::playback::describe(&e.event);
                println!("  {:>12.6}s {}", e.at_us as f64 / 1e6, safe(&what));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn verify(dir: &DataDir, a: VerifyArgs) -> anyhow::Result<ExitCode> {
    if a.ids.is_empty() && !a.all {
        anyhow::bail!("name sessions to verify, or pass --all");
    }
    let store = dir.store().await?;
    let blobs = dir.blobs()?;
    let key = trusted_key(dir, &a)?;
    let mut problems: Vec<Problem> = Vec::new();
    let mut checked = 0usize;
    let mut deleted = 0usize;
    if !a.anchor.is_empty() || a.stored_anchors {
        let mut sources: Vec<(String, String)> = Vec::new();
        for path in &a.anchor {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the anchor file {}", path.display()))?;
            sources.push((path.display().to_string(), text));
        }
        if a.stored_anchors {
            sources.push(("the database".into(), store.anchor_lines().await?.join("\n")));
        }
        let (anchors, notes) = signed_anchors(&sources, &key)?;
        for n in notes {
            eprintln!("keepwatch: {}", safe(&n));
        }
        let newest = anchors.iter().max_by_key(|x| x.at_us).expect("at least one anchor");
        println!(
            "{} anchor(s), the newest of {} ({} ledger entries, audit event {}, {} live recording(s))",
            anchors.len(),
            rfc3339(newest.at_us),
            newest.ledger_entries,
            newest.audit_last_id,
            newest.live.len()
        );
        problems.extend(check_anchors(&store, &blobs, &anchors).await?);
    }
    if a.all {
        let v = verify_all(&store, &blobs, &key).await?;
        checked = v.checked;
        problems.extend(v.problems);
        deleted = v.deleted.len();
    } else {
        for id in &a.ids {
            let row = store.session(*id).await?;
            if row.is_none() && !blobs.sealed_recordings().await?.contains(id) {
                anyhow::bail!("session {id} not found (see `keepwatch sessions`)");
            }
            problems.extend(check_session(&blobs, &key, *id, row.as_ref()).await?);
            checked += 1;
        }
    }
    let _ = store
        .audit(NewAudit {
            actor: local_actor(),
            action: AuditAction::RecordingsVerified,
            session_id: if a.ids.len() == 1 { Some(a.ids[0]) } else { None },
            client_addr: None,
            detail: format!("{checked} checked, {} problem(s)", problems.len()),
        })
        .await;
    if deleted > 0 {
        println!(
            "{deleted} session(s) deleted by retention (their tombstones are in the audit chain)"
        );
    }
    if problems.is_empty() {
        println!("{checked} recording(s) intact");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("{}", safe(&p.to_string()));
        }
        eprintln!("keepwatch: {} problem(s) found in {checked} recording(s)", problems.len());
        Ok(ExitCode::from(1))
    }
}

/// The key `verify` trusts: `--key`, or signing.pub checked against `--fingerprint`, or
/// (with a warning) signing.pub as it stands.
fn trusted_key(dir: &DataDir, a: &VerifyArgs) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    pinned_key(dir, a.key.as_deref(), a.fingerprint.as_deref())
}

/// The key to verify against: `key` (a file), else the data directory's own, checked against
/// `want` (a fingerprint) when given; a warning when neither pins it.
pub(crate) fn pinned_key(
    dir: &DataDir,
    key: Option<&std::path::Path>,
    want: Option<&str>,
) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    let trusted = match key {
        Some(path) => read_public_key(path)?,
        None => dir.verifying_key()?,
    };
    let fp = fingerprint(&trusted);
    match (want, key) {
        (Some(want), _) if want.trim() != fp => {
            let source = match key {
                Some(path) => path.display().to_string(),
                None => dir.signing_pub_path().display().to_string(),
            };
            bail!(
                "{source} has fingerprint {fp}, not {}: the data directory's key was replaced, or this is another installation; nothing was checked",
                want.trim()
            )
        }
        (Some(_), _) | (None, Some(_)) => {}
        (None, None) => eprintln!(
            "keepwatch: warning: verifying against {} ({fp}), the data directory's own key, which anyone who can write the directory can replace; pass --fingerprint or --key",
            dir.signing_pub_path().display()
        ),
    }
    Ok(trusted)
}

/// Every anchor signed by `key` in `files`, and notes about lines that were not.
fn signed_anchors(
    sources: &[(String, String)],
    key: &ed25519_dalek::VerifyingKey,
) -> anyhow::Result<(Vec<Anchor>, Vec<String>)> {
    let mut anchors = Vec::new();
    let mut notes = Vec::new();
    for (name, text) in sources {
        for (i, line) in text.lines().enumerate() {
            if !line.contains("KWANCHOR1") {
                continue;
            }
            match Anchor::parse(line, key) {
                Ok(p) if p.signed => anchors.push(p.anchor),
                Ok(_) => notes.push(format!(
                    "{name} line {}: an anchor not signed by the trusted key (ignored; forged or another installation's)",
                    i + 1
                )),
                Err(e) => notes.push(format!("{name} line {}: {e}", i + 1)),
            }
        }
    }
    if anchors.is_empty() {
        bail!(
            "no anchor signed by the trusted key in {}",
            sources.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok((anchors, notes))
}

pub(crate) async fn audit(dir: &DataDir, a: AuditArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let filter =
        AuditFilter { action: a.action, actor: a.actor, session: a.session, limit: a.limit };
    let events = store.audit_events(&filter).await?;
    if a.json {
        print_json(&json!(
            events
                .iter()
                .map(|e| json!({
                    "id": e.id, "at": rfc3339(e.at_us), "actor": e.actor, "action": e.action.as_str(),
                    "session": e.session_id.map(|s| s.to_string()), "client_addr": e.client_addr,
                    "detail": e.detail,
                }))
                .collect::<Vec<_>>()
        ));
    } else {
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    rfc3339(e.at_us),
                    e.actor.clone(),
                    e.action.to_string(),
                    e.session_id.map(|s| s.to_string()).unwrap_or_default(),
                    e.detail.clone(),
                ]
            })
            .collect();
        table(&["AT", "ACTOR", "ACTION", "SESSION", "DETAIL"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub(crate) struct NodesArgs {
    #[arg(long)]
    json: bool,
}

/// The gateway nodes sharing this database: when each started, when it last beat, and how
/// many live sessions it owns. A node whose heartbeat is older than `[node] lapse_s` is
/// presumed dead; the next beat of another node seals its sessions and forgets it.
pub(crate) async fn nodes(dir: &DataDir, a: NodesArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let now = keepwatch_store::now_us();
    let mut rows = Vec::new();
    for n in store.nodes().await? {
        let filter = SessionFilter { node: Some(n.id.clone()), ..SessionFilter::active() };
        let live = store.sessions(&filter).await?.len();
        rows.push((n, live));
    }
    if a.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(n, live)| {
                json!({
                    "node": n.id.as_str(), "started_at": rfc3339(n.started_at_us),
                    "heartbeat_at": rfc3339(n.heartbeat_at_us),
                    "heartbeat_age_s": (now - n.heartbeat_at_us).max(0) / 1_000_000,
                    "active_sessions": live,
                })
            })
            .collect();
        print_json(&Value::Array(v));
        return Ok(ExitCode::SUCCESS);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(n, live)| {
            vec![
                n.id.to_string(),
                rfc3339(n.started_at_us),
                format!("{} s ago", (now - n.heartbeat_at_us).max(0) / 1_000_000),
                live.to_string(),
            ]
        })
        .collect();
    table(&["NODE", "STARTED", "LAST HEARTBEAT", "ACTIVE SESSIONS"], &cells);
    Ok(ExitCode::SUCCESS)
}
