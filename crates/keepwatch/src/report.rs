//! `keepwatch report`: the period's report (`keepwatch_web::report`) as JSON, or as one HTML
//! file with inline SVG charts that opens offline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use keepwatch_core::AuditAction;
use keepwatch_core::retention::show_keep;
use keepwatch_store::{NewAudit, now_us};
use keepwatch_web::report::{gather, html, period_start};

use crate::datadir::DataDir;
use crate::output::{NewFile, local_actor, print_json};

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// The period: sessions that started this long ago or later (30d, 12w, 36h).
    #[arg(long, default_value = "30d", value_parser = keepwatch_core::retention::parse_keep)]
    since: u64,
    /// Write the report as HTML to this file (charts inline; opens offline).
    #[arg(short = 'o', long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the report's data as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn report(dir: &DataDir, a: ReportArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let now = now_us();
    let since_us = period_start(now, a.since);
    // The report shows the commands run most: recorded content, so reading it is audited.
    store
        .audit(NewAudit {
            actor: local_actor(),
            action: AuditAction::ReportViewed,
            session_id: None,
            client_addr: None,
            detail: serde_json::json!({ "report": { "since": show_keep(a.since) } }).to_string(),
        })
        .await?;
    let data = gather(&store, since_us, now).await?;
    if let Some(path) = &a.out {
        let mut file = NewFile::create(path)?;
        file.write(html(&data).as_bytes())?;
        file.commit()?;
        eprintln!("keepwatch: report written to {}", path.display());
    }
    if a.json || a.out.is_none() {
        print_json(&data);
    }
    Ok(ExitCode::SUCCESS)
}
