//! `keepwatch migrate --to postgres://...`: an embedded installation's metadata copied into
//! PostgreSQL, every recording verified on the way. Recordings stay where they are.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use keepwatch_core::SessionId;
use keepwatch_recorder::{check_audit, check_ledger, check_session};
use keepwatch_store::{Database, SessionFilter, SessionRow, Store};

use crate::datadir::DataDir;
use crate::output::{local_actor, safe};

#[derive(Args)]
pub(crate) struct MigrateArgs {
    /// The PostgreSQL database to copy into (`postgres://USER:PASSWORD@HOST:5432/DB`). It
    /// must be empty: create it first (`createdb keepwatch`).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Copy even when some recordings do not verify (their problems go along, and `verify`
    /// keeps reporting them).
    #[arg(long)]
    accept_problems: bool,
}

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what:9} [{{bar:40}}] {{pos}}/{{len}} {{msg}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

pub(crate) async fn migrate(dir: &DataDir, a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let source_db = dir.database()?;
    if !matches!(source_db, Database::Sqlite(_)) {
        bail!(
            "this data directory's [store] database is {} already: migrate copies an embedded (SQLite) installation",
            source_db.describe()
        );
    }
    let target_db = Database::from_setting(&a.to, dir.root())?;
    if !matches!(target_db, Database::Postgres(_)) {
        bail!("--to must be a postgres:// URL");
    }
    if dir.gateway_answers().await {
        bail!(
            "the gateway is running on this data directory: stop `keepwatch run` first, so nothing is written while the copy runs"
        );
    }
    if !Store::is_empty_database(&target_db).await? {
        bail!(
            "{} is not empty: migrate copies into a new, empty database only",
            target_db.describe()
        );
    }
    let source = dir.store().await?;
    let blobs = dir.blobs()?;
    let key = dir.verifying_key()?;

    // Every recording against the data directory's key and its row, the ledger and the
    // audit chain, as `verify --all` does: what is copied is known to be intact.
    let rows: BTreeMap<SessionId, SessionRow> =
        source.sessions(&SessionFilter::default()).await?.into_iter().map(|r| (r.id, r)).collect();
    let (mut problems, _) = check_ledger(&source, &key, &rows).await?;
    problems.extend(check_audit(&source, &key).await?);
    let chain_problems = problems.len();
    let verifying = bar(rows.len() as u64, "verifying");
    for (id, row) in &rows {
        problems.extend(check_session(&blobs, &key, *id, Some(row)).await?);
        verifying.inc(1);
    }
    verifying.finish_with_message(format!(
        "{} recording(s), {} problem(s)",
        rows.len(),
        problems.len()
    ));
    if !problems.is_empty() {
        for p in &problems {
            println!("{}", safe(&p.to_string()));
        }
        if !a.accept_problems {
            bail!(
                "{} problem(s) found (above); nothing was copied. Pass --accept-problems to copy anyway (`verify` will go on reporting them)",
                problems.len()
            );
        }
    }

    let target = Store::open(&target_db)
        .await
        .with_context(|| format!("cannot open {}", target_db.describe()))?;
    let target = match dir.signing_key() {
        Ok(k) => target.with_audit_key(std::sync::Arc::new(k)),
        Err(_) => target,
    };
    let copying = bar(0, "copying");
    let report = source
        .copy_into(&target, &local_actor(), &mut |p| {
            copying.set_length(p.total);
            copying.set_position(p.rows);
            copying.set_message(p.table);
        })
        .await
        .context("cannot copy the store")?;
    copying.finish_with_message("done");

    // The copy checked: the same rows, and its ledger and audit chain verify as the
    // source's did (the chains' hashes cover every id, so a row copied wrong breaks them).
    let copied: BTreeMap<SessionId, SessionRow> =
        target.sessions(&SessionFilter::default()).await?.into_iter().map(|r| (r.id, r)).collect();
    if copied != rows {
        bail!("the sessions read back from {} differ from the source's", target_db.describe());
    }
    let (mut after, _) = check_ledger(&target, &key, &copied).await?;
    after.extend(check_audit(&target, &key).await?);
    if after.len() > chain_problems {
        for p in &after {
            println!("{}", safe(&p.to_string()));
        }
        bail!("the copy's ledger or audit chain does not verify (above)");
    }
    let total: u64 = report.tables.iter().map(|(_, n)| n).sum();
    target.close().await;
    source.close().await;
    println!(
        "copied {total} row(s) of {} table(s) into {}; {} recording(s) verified",
        report.tables.len(),
        target_db.describe(),
        rows.len()
    );
    println!();
    println!("To switch, set in {}:", dir.config_path().display());
    println!();
    println!("  [store]");
    println!("  database = {:?}", a.to);
    println!();
    println!(
        "then start `keepwatch run` again. Recordings stay in {}; {} is left as it was (keep it as a backup).",
        dir.root().display(),
        source_db.describe()
    );
    Ok(ExitCode::SUCCESS)
}
