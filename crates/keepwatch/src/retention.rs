//! `keepwatch retention` and `keepwatch hold`: how long recordings are kept, the holds that
//! keep them longer, and applying both (on demand here, daily in `run`). Every change is
//! audited; every deletion leaves a signed tombstone (`session_deleted` in the audit chain)
//! before its bytes go, so `verify` tells "deleted by policy" from "missing".

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use keepwatch_core::retention::{
    Decision, HoldScope, PolicyScope, SessionFacts, decide, show_keep,
};
use keepwatch_core::{AuditAction, Protocol, SessionId};
use keepwatch_store::{BlobStore, NewAudit, SessionFilter, Store, now_us};
use serde_json::{Value, json};

use crate::datadir::{DataDir, to_hex};
use crate::output::{local_actor, print_json, rfc3339, safe, table};

#[derive(Subcommand)]
pub(crate) enum RetentionCommand {
    /// Keep the sessions in a scope for a time after they end, e.g. `--target web01 --keep
    /// 400d`. Sessions no policy covers are kept forever; where several cover one, the
    /// longest keeps it.
    Add(PolicyArgs),
    /// List the policies.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove policy ID.
    Remove { id: i64 },
    /// Delete what the policies no longer keep and no hold holds: each deletion leaves a
    /// signed tombstone that `verify` reports as "deleted by policy". The gateway does this
    /// daily (`[retention] interval_s`).
    Apply {
        /// Show what would be deleted and what is held, delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub(crate) struct PolicyArgs {
    /// Every session.
    #[arg(long, conflicts_with_all = ["target", "protocol", "tag"])]
    all: bool,
    #[arg(long, value_name = "T", conflicts_with_all = ["protocol", "tag"])]
    target: Option<String>,
    #[arg(long, value_name = "P", conflicts_with = "tag")]
    protocol: Option<Protocol>,
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// How long after a session ends: 400d, 12w, 2y (also 36h, 90m, 30s).
    #[arg(long, value_name = "DURATION", value_parser = keepwatch_core::retention::parse_keep)]
    keep: u64,
}

#[derive(Subcommand)]
pub(crate) enum HoldCommand {
    /// Hold sessions whatever the retention policies say, until released: one session, or
    /// every session of a person, a target or a tag.
    Add(HoldArgs),
    /// List the holds in force (`--all`: released ones too), with who placed them and why.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Release hold ID.
    Release {
        id: i64,
        /// Why it is released (kept with the hold and audited).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args)]
pub(crate) struct HoldArgs {
    #[arg(long, value_name = "ID", conflicts_with_all = ["person", "target", "tag"])]
    session: Option<SessionId>,
    #[arg(long, value_name = "P", conflicts_with_all = ["target", "tag"])]
    person: Option<String>,
    #[arg(long, value_name = "T", conflicts_with = "tag")]
    target: Option<String>,
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// Why (a case, a ticket): kept with the hold and audited.
    #[arg(long)]
    reason: String,
}

fn audit(action: AuditAction, session_id: Option<SessionId>, detail: String) -> NewAudit {
    NewAudit { actor: local_actor(), action, session_id, client_addr: None, detail }
}

pub(crate) async fn retention(dir: &DataDir, c: RetentionCommand) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    match c {
        RetentionCommand::Add(a) => {
            let scope = match (a.all, a.target, a.protocol, a.tag) {
                (true, ..) => PolicyScope::All,
                (_, Some(t), ..) => PolicyScope::Target(t),
                (_, _, Some(p), _) => PolicyScope::Protocol(p),
                (_, _, _, Some(t)) => PolicyScope::Tag(t.to_lowercase()),
                _ => bail!(
                    "say what the policy covers: --all, --target T, --protocol P or --tag TAG"
                ),
            };
            let detail = format!("added: {scope}, keep {}", show_keep(a.keep));
            let id = store
                .add_retention_policy(
                    &scope,
                    a.keep,
                    audit(AuditAction::RetentionChanged, None, detail),
                )
                .await?;
            println!("policy {id}: {scope} kept {} after they end", show_keep(a.keep));
        }
        RetentionCommand::List { json } => {
            let rows = store.retention_policies().await?;
            if json {
                let v: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        let (kind, value) = r.policy.scope.parts();
                        json!({"id": r.policy.id, "scope": kind, "value": value,
                            "keep_s": r.policy.keep_s, "created_by": r.created_by,
                            "created_at": rfc3339(r.created_at_us)})
                    })
                    .collect();
                print_json(&Value::Array(v));
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.policy.id.to_string(),
                            r.policy.scope.to_string(),
                            show_keep(r.policy.keep_s),
                            r.created_by.clone(),
                            rfc3339(r.created_at_us),
                        ]
                    })
                    .collect();
                table(&["ID", "COVERS", "KEEP", "BY", "CREATED"], &cells);
            }
        }
        RetentionCommand::Remove { id } => {
            let detail = format!("removed policy {id}");
            let a = audit(AuditAction::RetentionChanged, None, detail);
            if !store.remove_retention_policy(id, a).await? {
                bail!("no retention policy {id} (see `keepwatch retention list`)");
            }
            println!("policy {id} removed");
        }
        RetentionCommand::Apply { dry_run, json } => {
            let blobs = dir.blobs()?;
            let report = apply(&store, &blobs, &local_actor(), dry_run).await?;
            report.print(dry_run, json);
            if !report.failed.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn hold(dir: &DataDir, c: HoldCommand) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    match c {
        HoldCommand::Add(a) => {
            let scope = match (a.session, a.person, a.target, a.tag) {
                (Some(s), ..) => HoldScope::Session(s),
                (_, Some(p), ..) => HoldScope::Person(p),
                (_, _, Some(t), _) => HoldScope::Target(t),
                (_, _, _, Some(t)) => HoldScope::Tag(t.to_lowercase()),
                _ => bail!("say what to hold: --session ID, --person P, --target T or --tag TAG"),
            };
            if a.reason.trim().is_empty() {
                bail!("a hold needs a reason (--reason 'case 2026-14')");
            }
            let session = match &scope {
                HoldScope::Session(id) => Some(*id),
                _ => None,
            };
            let detail = format!("{scope}: {}", a.reason);
            let id = store
                .place_hold(&scope, &a.reason, audit(AuditAction::HoldPlaced, session, detail))
                .await?;
            println!("hold {id} placed on {scope}");
        }
        HoldCommand::List { all, json } => {
            let rows = store.holds(all).await?;
            if json {
                let v: Vec<Value> = rows
                    .iter()
                    .map(|h| {
                        let (kind, value) = h.hold.scope.parts();
                        json!({"id": h.hold.id, "scope": kind, "value": value, "reason": h.reason,
                            "placed_by": h.placed_by, "placed_at": rfc3339(h.placed_at_us),
                            "released_by": h.released.as_ref().map(|r| &r.by),
                            "released_at": h.released.as_ref().map(|r| rfc3339(r.at_us)),
                            "release_reason": h.released.as_ref().map(|r| &r.reason)})
                    })
                    .collect();
                print_json(&Value::Array(v));
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|h| {
                        vec![
                            h.hold.id.to_string(),
                            h.hold.scope.to_string(),
                            h.reason.clone(),
                            h.placed_by.clone(),
                            rfc3339(h.placed_at_us),
                            h.released
                                .as_ref()
                                .map(|r| format!("{} by {}: {}", rfc3339(r.at_us), r.by, r.reason))
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                table(&["ID", "HOLDS", "REASON", "BY", "PLACED", "RELEASED"], &cells);
            }
        }
        HoldCommand::Release { id, reason } => {
            if reason.trim().is_empty() {
                bail!("say why the hold is released (--reason ...)");
            }
            let detail = format!("hold {id} released: {reason}");
            let a = audit(AuditAction::HoldReleased, None, detail);
            if !store.release_hold(id, &reason, a).await? {
                bail!("no hold {id} in force (see `keepwatch hold list --all`)");
            }
            println!("hold {id} released");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What one application of the policies did (or, dry, would do).
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Deleted (or to be): the session and why.
    pub deleted: Vec<(SessionId, String)>,
    /// Past their time but held: the session and by which holds.
    pub held: Vec<(SessionId, String)>,
    /// Sessions kept (by a policy not yet due, or by none).
    pub kept: usize,
    /// Deletions that failed part way, and why.
    pub failed: Vec<(SessionId, String)>,
}

impl Report {
    fn print(&self, dry_run: bool, json: bool) {
        let list = |v: &[(SessionId, String)]| -> Vec<Value> {
            v.iter().map(|(id, why)| json!({"session": id.to_string(), "why": why})).collect()
        };
        if json {
            print_json(&json!({
                "dry_run": dry_run, "deleted": list(&self.deleted), "held": list(&self.held),
                "kept": self.kept, "failed": list(&self.failed),
            }));
            return;
        }
        let verb = if dry_run { "would delete" } else { "deleted" };
        for (id, why) in &self.deleted {
            println!("{verb} {id}: {}", safe(why));
        }
        for (id, why) in &self.held {
            println!("held {id}: {}", safe(why));
        }
        for (id, why) in &self.failed {
            eprintln!("keepwatch: session {id}: {}", safe(why));
        }
        println!(
            "{} {verb}, {} held, {} kept{}",
            self.deleted.len(),
            self.held.len(),
            self.kept,
            if self.failed.is_empty() {
                String::new()
            } else {
                format!(", {} failed", self.failed.len())
            }
        );
    }
}

/// Applies the retention policies and holds now: each session past its time and held by
/// nothing has its rows deleted with its tombstone (one transaction), then its bytes.
/// Tombstoned sessions whose bytes are still there (a deletion cut short) lose them too.
///
/// # Errors
/// The store cannot be read; a failed deletion is reported in [`Report::failed`] instead.
pub(crate) async fn apply(
    store: &Store,
    blobs: &BlobStore,
    actor: &str,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let policies: Vec<_> =
        store.retention_policies().await?.into_iter().map(|r| r.policy).collect();
    let holds: Vec<_> = store.holds(false).await?.into_iter().map(|h| h.hold).collect();
    let now = now_us();
    let mut report = Report::default();
    for listed in store.session_listings(&SessionFilter::default()).await? {
        let s = listed.session;
        let facts = SessionFacts {
            id: s.id,
            person: s.person.clone(),
            target: s.target.clone(),
            protocol: s.protocol,
            tags: listed.tags,
            status: s.status,
            ended_at_us: s.ended_at_us,
        };
        let policy_text = |id: i64| {
            policies
                .iter()
                .find(|p| p.id == id)
                .map(|p| format!("policy {id} ({}, keep {})", p.scope, show_keep(p.keep_s)))
                .unwrap_or_default()
        };
        match decide(&facts, &policies, &holds, now) {
            Decision::Kept | Decision::KeptUntil { .. } => report.kept += 1,
            Decision::Held { holds, policy } => {
                let ids: Vec<String> = holds.iter().map(|h| format!("hold {h}")).collect();
                report.held.push((
                    s.id,
                    format!("past {} but held by {}", policy_text(policy), ids.join(", ")),
                ));
            }
            Decision::Delete { policy } => {
                let why = format!(
                    "retention: {}; {}@{}, ended {}; chain head {}",
                    policy_text(policy),
                    s.person,
                    s.target,
                    s.ended_at_us.map(rfc3339).unwrap_or_default(),
                    s.chain_head.map(|h| to_hex(&h)).unwrap_or_default()
                );
                if !dry_run {
                    let a = NewAudit {
                        actor: actor.to_owned(),
                        action: AuditAction::SessionDeleted,
                        session_id: Some(s.id),
                        client_addr: None,
                        detail: why.clone(),
                    };
                    match store.delete_ended_session(s.id, a).await {
                        Ok(true) => {}
                        Ok(false) => continue, // ended meanwhile by someone else's apply
                        Err(e) => {
                            report.failed.push((s.id, format!("not deleted: {e}")));
                            continue;
                        }
                    }
                    if let Err(e) = blobs.delete_session(s.id).await {
                        report.failed.push((
                            s.id,
                            format!("rows deleted (tombstone written) but its recording was not: {e}; the next apply deletes it"),
                        ));
                    }
                }
                report.deleted.push((s.id, why));
            }
        }
    }
    if !dry_run {
        for t in store.tombstones().await? {
            let Some(id) = t.session_id else { continue };
            if blobs.recording_len(id).await?.is_none() {
                continue;
            }
            if let Err(e) = blobs.delete_session(id).await {
                let why = format!("deleted by retention, recording still there: {e}");
                report.failed.push((id, why));
            }
        }
    }
    Ok(report)
}
