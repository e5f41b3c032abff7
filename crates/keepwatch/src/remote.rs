//! The CLI commands that act on the running gateway (`watch`, `kill`) through its API, with
//! the local credential `run` leaves in the data directory (`cli.token`, mode 0600, and
//! `web.addr`); and `token`, which manages API tokens in the database directly.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures::StreamExt;
use keepwatch_core::{AuditAction, NodeId, PersonName, Role, SessionId};
use keepwatch_store::{NewAudit, NewToken, Store, TokenRow};
use keepwatch_web::{CLI_TOKEN_NAME, cli_token_name, is_cli_token, random_token, sha256_hex};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::datadir::DataDir;
use crate::output::{local_actor, print_json, rfc3339, table};

const TOKEN_FILE: &str = "cli.token";
const ADDR_FILE: &str = "web.addr";

#[derive(Args)]
pub(crate) struct WatchArgs {
    /// The live session to follow (`keepwatch sessions --active`).
    id: SessionId,
}

#[derive(Args)]
pub(crate) struct KillArgs {
    /// The live session to end.
    id: SessionId,
    /// Shown to the person and kept in the audit trail.
    #[arg(long, default_value = "no reason given")]
    reason: String,
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create an API token for automation; it is printed once and stored only as a hash.
    Create {
        /// What the token is for (the audit trail names it `token:NAME`).
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["user", "auditor", "admin"])]
        role: String,
        /// The person the token acts for (required with --role user: the token sees only
        /// this person's sessions and search hits).
        #[arg(long, value_name = "NAME")]
        person: Option<PersonName>,
    },
    /// List tokens (never the tokens themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token.
    Remove { name: String },
}

/// Called by `run`: a fresh local credential and the web address for this run's CLI.
pub(crate) async fn publish(
    dir: &DataDir,
    store: &Store,
    node: &NodeId,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let name = cli_token_name(node.as_str());
    let token = format!("kw_{}", random_token().map_err(|e| anyhow::anyhow!(e.message))?);
    // A new admin credential at every start: audited like any other token.
    let audit = NewAudit {
        actor: local_actor(),
        action: AuditAction::TokenCreated,
        session_id: None,
        client_addr: None,
        detail: format!(
            "{name} as admin (the CLI's credential for this run of the gateway on node {node})"
        ),
    };
    store.set_token(&name, Role::Admin, &sha256_hex(&token), audit).await?;
    write_private(&dir.root().join(TOKEN_FILE), &token)?;
    write_private(&dir.root().join(ADDR_FILE), &addr.to_string())?;
    Ok(())
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The running gateway's web address and the CLI's token.
fn credential(dir: &DataDir) -> anyhow::Result<(String, String)> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.root().join(name)).map(|s| s.trim().to_owned()).with_context(
            || {
                format!(
                    "cannot read {}: is the gateway running (`keepwatch run`) on this data directory?",
                    dir.root().join(name).display()
                )
            },
        )
    };
    Ok((read(ADDR_FILE)?, read(TOKEN_FILE)?))
}

pub(crate) async fn watch(dir: &DataDir, a: WatchArgs) -> anyhow::Result<ExitCode> {
    let (addr, token) = credential(dir)?;
    let mut req = format!("ws://{addr}/api/v1/sessions/{}/watch", a.id).into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    req.headers_mut().insert("x-keepwatch-actor", local_actor().parse()?);
    let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let body = res.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
            bail!(
                "cannot watch session {}: {}",
                a.id,
                api_error(res.status().as_u16(), &body.unwrap_or_default())
            );
        }
        Err(e) => bail!("cannot reach the gateway at {addr}: {e}"),
    };
    let mut out = std::io::stdout().lock();
    while let Some(msg) = ws.next().await {
        let text = match msg? {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str() {
            Some("screen") => write!(out, "\x1b[2J\x1b[H{}", v["data"].as_str().unwrap_or(""))?,
            Some("output") => write!(out, "{}", v["data"].as_str().unwrap_or(""))?,
            Some("end") => {
                out.flush()?;
                eprintln!("\r\nkeepwatch: {}", v["reason"].as_str().unwrap_or("session ended"));
                let _ = ws.close(None).await;
                break;
            }
            _ => {}
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn kill(dir: &DataDir, a: KillArgs) -> anyhow::Result<ExitCode> {
    terminate(dir, a.id, &a.reason).await?;
    println!("terminated session {}", a.id);
    Ok(ExitCode::SUCCESS)
}

/// Ends a live session through the running gateway (audited there as this OS user).
pub(crate) async fn terminate(dir: &DataDir, id: SessionId, reason: &str) -> anyhow::Result<()> {
    let (addr, token) = credential(dir)?;
    let body = json!({ "reason": reason }).to_string();
    let path = format!("/api/v1/sessions/{id}/terminate");
    let (status, text) = post(&addr, &path, &token, &body).await?;
    if status != 200 {
        bail!("cannot terminate session {id}: {}", api_error(status, &text));
    }
    Ok(())
}

fn api_error(status: u16, body: &str) -> String {
    let msg = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    format!("{msg} (HTTP {status})")
}

/// One HTTP/1.1 POST to the gateway on loopback; the status and the body.
async fn post(addr: &str, path: &str, token: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("X-Keepwatch-Actor", &local_actor())];
    let s = tokio::net::TcpStream::connect(addr).await.with_context(|| {
        format!("cannot reach the gateway at {addr}: is `keepwatch run` running?")
    })?;
    http_post(s, addr, path, &headers, body).await
}

/// One HTTP/1.1 POST of a JSON `body` on `s` (connected to `host`); the status and the body.
pub(crate) async fn http_post(
    mut s: tokio::net::TcpStream,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

pub(crate) async fn token(dir: &DataDir, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    match cmd {
        TokenCommand::Create { name, role, person } => {
            if !keepwatch_core::valid_name(&name) || is_cli_token(&name) {
                bail!(
                    "{name:?} is not a valid token name (letters, digits, . _ -; not {CLI_TOKEN_NAME} or {CLI_TOKEN_NAME}.*)"
                );
            }
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            if role == Role::User && person.is_none() {
                bail!(
                    "a user token acts for one person: add --person NAME (it then sees only that person's sessions)"
                );
            }
            let token = format!("kw_{}", random_token().map_err(|e| anyhow::anyhow!(e.message))?);
            let detail = match &person {
                Some(p) => format!("{name} as {} for {p}", role.as_str()),
                None => format!("{name} as {}", role.as_str()),
            };
            let new = NewToken {
                name: &name,
                role,
                person: person.as_ref(),
                sha256_hex: &sha256_hex(&token),
            };
            let audit = NewAudit {
                actor: local_actor(),
                action: AuditAction::TokenCreated,
                session_id: None,
                client_addr: None,
                detail,
            };
            store.add_token(&new, audit).await?;
            println!("{token}");
            eprintln!(
                "keepwatch: token {name} ({}{}) created; it is shown only this once",
                role.as_str(),
                person.map(|p| format!(" for {p}")).unwrap_or_default()
            );
        }
        TokenCommand::List { json } => {
            let rows = store.tokens().await?;
            if json {
                print_json(&Value::Array(
                    rows.iter()
                        .map(|t| {
                            json!({
                                "name": t.name, "role": t.role.as_str(),
                                "person": t.person.as_ref().map(|p| p.to_string()),
                                "sees": token_sees(t),
                                "created_at": rfc3339(t.created_at_us),
                                "last_used_at": t.last_used_at_us.map(rfc3339),
                            })
                        })
                        .collect(),
                ));
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.role.as_str().into(),
                            token_sees(t),
                            rfc3339(t.created_at_us),
                            t.last_used_at_us.map(rfc3339).unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                table(&["NAME", "ROLE", "SEES", "CREATED", "LAST USED"], &cells);
            }
        }
        TokenCommand::Remove { name } => {
            let audit = NewAudit {
                actor: local_actor(),
                action: AuditAction::TokenRemoved,
                session_id: None,
                client_addr: None,
                detail: name.clone(),
            };
            store.remove_token(&name, audit).await?;
            println!("removed token {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whose sessions a token sees, as `token list` says it.
fn token_sees(t: &TokenRow) -> String {
    match (t.role, &t.person) {
        (Role::User, Some(p)) => format!("{p}'s sessions"),
        (Role::User, None) => {
            "nothing: made before user tokens named a person; create it again with --person".into()
        }
        (_, _) => "every session".into(),
    }
}
