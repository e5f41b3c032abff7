//! `keepwatch transfers`: files moved across sessions, by person, target, path or hash.

use std::process::ExitCode;

use clap::Args;
use keepwatch_core::glob_match;
use keepwatch_store::{TransferFilter, TransferRow};
use serde_json::{Value, json};

use crate::datadir::DataDir;
use crate::output::{print_json, rfc3339, table};

#[derive(Args)]
pub struct TransfersArgs {
    /// Only this person's sessions.
    #[arg(long, value_name = "U")]
    user: Option<String>,
    /// Only sessions to this target.
    #[arg(long, value_name = "T")]
    target: Option<String>,
    /// Only paths matching this pattern (`*` matches anything, including `/`).
    #[arg(long, value_name = "GLOB")]
    path: Option<String>,
    /// Only files with this SHA-256 ("who ever moved this file?").
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn transfer_json(t: &TransferRow) -> Value {
    json!({
        "session": t.session_id.to_string(), "channel": t.channel, "at": rfc3339(t.at_us),
        "protocol": t.protocol, "path": t.path, "direction": if t.upload { "upload" } else { "download" },
        "bytes": t.bytes, "size": t.size, "sha256": t.sha256, "complete": t.complete,
        "ranges": t.ranges.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
    })
}

pub fn transfer_cells(t: &TransferRow) -> Vec<String> {
    vec![
        rfc3339(t.at_us),
        t.protocol.clone(),
        if t.upload { "upload" } else { "download" }.into(),
        t.path.clone(),
        t.bytes.to_string(),
        match (&t.sha256, t.complete) {
            (Some(h), true) => h.clone(),
            _ => format!(
                "partial {}",
                t.ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect::<Vec<_>>().join(",")
            ),
        },
    ]
}

pub async fn list(dir: &DataDir, a: TransfersArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let filter = TransferFilter {
        person: a.user,
        target: a.target,
        session: None,
        sha256: a.sha256.map(|h| h.to_ascii_lowercase()),
    };
    let rows: Vec<TransferRow> = store
        .transfers(&filter)
        .await?
        .into_iter()
        .filter(|t| a.path.as_ref().is_none_or(|p| glob_match(p, &t.path)))
        .collect();
    if a.json {
        print_json(&Value::Array(rows.iter().map(transfer_json).collect()));
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|t| {
                let mut c = vec![t.session_id.to_string()];
                c.extend(transfer_cells(t));
                c
            })
            .collect();
        table(&["SESSION", "AT", "VIA", "DIRECTION", "PATH", "BYTES", "SHA-256"], &cells);
    }
    Ok(ExitCode::SUCCESS)
}
