//! `keepwatch rotate-key`: every recording's data key re-wrapped under the current
//! key-encryption key (docs/encryption.md), audited.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use keepwatch_core::AuditAction;
use keepwatch_store::NewAudit;

use crate::datadir::DataDir;
use crate::output::local_actor;

#[derive(Args)]
pub(crate) struct RotateKeyArgs {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn rotate_key(dir: &DataDir, a: RotateKeyArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let kek = store.current_kek().context(
        "rotating needs the vault key (vault.key in the data directory): run as the gateway's user",
    )?;
    let mut err = std::io::stderr().lock();
    let r = store
        .rotate_data_keys(|done| {
            if !a.json && (done.rewrapped + done.skipped) % 100 == 0 {
                let _ = write!(err, "\rre-wrapped {} data keys", done.rewrapped);
            }
        })
        .await;
    if !a.json {
        let _ = writeln!(err);
    }
    let detail = match &r {
        Ok(r) => format!(
            "{} data keys re-wrapped under {kek}, {} changed meanwhile",
            r.rewrapped, r.skipped
        ),
        Err(e) => format!("rotation under {kek} stopped: {e}"),
    };
    store
        .audit(NewAudit {
            actor: local_actor(),
            action: AuditAction::KeysRotated,
            session_id: None,
            client_addr: None,
            detail: detail.clone(),
        })
        .await?;
    let r = r.context(
        "rotation stopped (the keys before the failing one are done; run it again once fixed)",
    )?;
    if a.json {
        let v = serde_json::json!({ "kek": kek, "rewrapped": r.rewrapped, "skipped": r.skipped });
        println!("{v}");
    } else {
        println!("{detail}");
    }
    Ok(ExitCode::SUCCESS)
}
