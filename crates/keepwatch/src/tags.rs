//! `keepwatch tag` and `untag`: labels on sessions, put on and taken off by the local admin,
//! each change audited with it (`session_tagged`, `session_untagged`).

use std::process::ExitCode;

use clap::Args;
use keepwatch_core::{SessionId, Tag, parse_tags};
use keepwatch_store::{StoreError, TagChange};
use serde_json::json;

use crate::datadir::DataDir;
use crate::output::{local_actor, print_json};

#[derive(Args)]
pub(crate) struct TagArgs {
    /// The session.
    id: SessionId,
    /// Tags: 1 to 64 characters of a-z 0-9 . _ : / - each (input lowercased), at most 32.
    #[arg(value_name = "TAG", required = true)]
    tags: Vec<String>,
    #[arg(long)]
    json: bool,
}

/// Putting on or taking off.
#[derive(Clone, Copy)]
pub(crate) enum Change {
    Tag,
    Untag,
}

pub(crate) async fn run(dir: &DataDir, a: TagArgs, how: Change) -> anyhow::Result<ExitCode> {
    let tags = parse_tags(&a.tags)?;
    let store = dir.store().await?;
    let actor = local_actor();
    let c = TagChange { session: a.id, tags: &tags, actor: &actor, client_addr: None };
    let changed = match how {
        Change::Tag => store.add_session_tags(&c).await,
        Change::Untag => store.remove_session_tags(&c).await,
    };
    let changed = changed.map_err(|e| match e {
        StoreError::NotFound { kind: "session", .. } => {
            anyhow::anyhow!("session {} not found (see `keepwatch sessions`)", a.id)
        }
        e => e.into(),
    })?;
    let now: Vec<String> = store.session_tags(a.id).await?.into_iter().map(|t| t.tag).collect();
    let (verb, key) = match how {
        Change::Tag => ("tagged", "added"),
        Change::Untag => ("untagged", "removed"),
    };
    if a.json {
        let mut v = json!({ "session": a.id.to_string(), "tags": now });
        v[key] = json!(names(&changed));
        print_json(&v);
    } else if changed.is_empty() {
        println!("session {} unchanged; tags: {}", a.id, list(&now));
    } else {
        println!("{verb} session {}: {}; tags: {}", a.id, names(&changed).join(", "), list(&now));
    }
    Ok(ExitCode::SUCCESS)
}

fn names(tags: &[Tag]) -> Vec<&str> {
    tags.iter().map(Tag::as_str).collect()
}

fn list(tags: &[String]) -> String {
    if tags.is_empty() { "none".into() } else { tags.join(", ") }
}
