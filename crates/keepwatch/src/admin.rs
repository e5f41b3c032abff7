//! Managing people, targets and grants.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keepwatch_core::{
    AuditAction, DEFAULT_CAPTURE_MAX_BYTES, GrantPolicy, RecordingFailure, Role, valid_name,
};
use keepwatch_store::{NewAudit, NewTarget, TargetSecret, hash_password};
use serde_json::json;

use crate::datadir::DataDir;
use crate::output::{local_actor, print_json, rfc3339, table};

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add a person.
    Add(UserAdd),
    /// List people.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a person: no new logins or channels anywhere, their console sessions end at
    /// once; with --terminate their live SSH sessions end too.
    Disable {
        name: String,
        /// Also end their live SSH sessions now (through the running gateway).
        #[arg(long)]
        terminate: bool,
    },
    /// Enable a disabled person again.
    Enable { name: String },
    /// Set a person's password again (read from standard input): for SSH, the console and
    /// PostgreSQL (people added before the PostgreSQL front end need this once for it).
    Passwd {
        name: String,
        /// Read the password from standard input (required: passwords are never arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a person with their keys and grants (their recorded sessions stay).
    Remove {
        name: String,
        /// Also end their live SSH sessions now (through the running gateway).
        #[arg(long)]
        terminate: bool,
    },
    /// Give a person another role; their console sessions end at once.
    SetRole {
        name: String,
        /// user, auditor or admin.
        role: Role,
    },
}

#[derive(Args)]
pub(crate) struct UserAdd {
    name: String,
    /// user (connects to granted targets), auditor (searches, replays, terminates) or admin.
    #[arg(long)]
    role: Role,
    /// An OpenSSH public key file the person logs in with (repeatable).
    #[arg(long = "ssh-key", value_name = "PUBKEY_FILE")]
    ssh_keys: Vec<PathBuf>,
    /// Read a password from standard input (hashed with argon2id).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
pub(crate) enum TargetCommand {
    /// Add a target; its secret is encrypted with the vault key and never shown again.
    Add(Box<TargetAdd>),
    /// List targets (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["password_stdin", "key"])))]
#[command(group(clap::ArgGroup::new("hostkey").args(["host_key", "trust_on_first_use"])))]
pub(crate) struct TargetAdd {
    name: String,
    /// What the target speaks: ssh (people connect with ssh, sftp, scp) or postgres (any
    /// PostgreSQL client, to the gateway's pg_listen).
    #[arg(long, default_value = "ssh")]
    protocol: keepwatch_core::Protocol,
    #[arg(long)]
    host: String,
    /// Default 22 for ssh, 5432 for postgres.
    #[arg(long)]
    port: Option<u16>,
    /// postgres: the database sessions open.
    #[arg(long, value_name = "NAME")]
    database: Option<String>,
    /// postgres: how the gateway reaches the target: require (TLS, certificate not checked;
    /// the default), verify-full (TLS, certificate and host name checked against --ca or the
    /// system's roots) or disable.
    #[arg(long, value_name = "MODE", default_value = "require")]
    tls: keepwatch_store::TlsMode,
    /// postgres with --tls verify-full: PEM file of the CA that signed the target's certificate.
    #[arg(long, value_name = "PEM_FILE")]
    ca: Option<PathBuf>,
    /// The account on the target that sessions log in as.
    #[arg(long)]
    login: String,
    /// Read the target password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// An unencrypted OpenSSH private key file for the target login.
    #[arg(long, value_name = "PRIVATE_KEY_FILE")]
    key: Option<PathBuf>,
    /// The target's host key, e.g. 'ssh-ed25519 AAAA...' (from ssh-keyscan).
    #[arg(long, value_name = "KEY")]
    host_key: Option<String>,
    /// Pin the first host key the target presents.
    #[arg(long)]
    trust_on_first_use: bool,
    /// Every session on it needs a reason (a ticket id or a few words), given at connect:
    /// asked in an interactive ssh terminal, or `ssh -o SetEnv=KEEPWATCH_REASON=...`, or
    /// `PGOPTIONS='-c keepwatch.reason=...'`. Kept with the session and signed in its
    /// recording; a session without one is refused with a line saying how to give one.
    #[arg(long)]
    require_reason: bool,
    /// What happens when the recording cannot be written: close (default) or continue.
    #[arg(long, default_value = "close")]
    on_recording_failure: RecordingFailure,
    /// Key exchange algorithms to offer, comma-separated (for older devices), e.g.
    /// diffie-hellman-group14-sha1.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    kex: Vec<String>,
    /// Host key algorithms to accept, comma-separated, e.g. ssh-rsa.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    host_key_algorithms: Vec<String>,
    /// Ciphers to offer, comma-separated, e.g. aes128-ctr.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    ciphers: Vec<String>,
    /// MACs to offer, comma-separated, e.g. hmac-sha1.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    macs: Vec<String>,
}

#[derive(Args)]
pub(crate) struct GrantArgs {
    user: String,
    target: String,
    /// Forbid writing files on the target (SFTP/SCP uploads, rename, remove, mkdir).
    #[arg(long)]
    no_upload: bool,
    /// Forbid reading files from the target.
    #[arg(long)]
    no_download: bool,
    /// Largest file that may move, e.g. 100M (suffixes K, M, G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_file_size: Option<u64>,
    /// Allow `ssh -L` to this HOST:PORT through the target (`*` wildcards; repeatable).
    #[arg(long = "allow-forward", value_name = "HOST:PORT")]
    allow_forward: Vec<String>,
    /// Allow `ssh -R` to open listening ports on the target.
    #[arg(long)]
    allow_remote_forward: bool,
    /// Allow `ssh -A`: the person's agent becomes usable on the target. Each use is recorded
    /// as an agent channel with its byte counts (never its bytes: they carry keys).
    #[arg(long)]
    allow_agent_forward: bool,
    /// Record the bytes `ssh -L` and `ssh -R` tunnels carry (as input and output of the
    /// tunnel's channel), not only their counts.
    #[arg(long)]
    record_tunnel_bytes: bool,
    /// Database targets: only statements that cannot write are let through. Each statement
    /// is parsed (a real SQL parser, PostgreSQL's dialect); anything that writes, or calls a
    /// function not known to be read-only, or does not parse, is refused with an error and
    /// recorded as refused.
    #[arg(long)]
    read_only: bool,
    /// Database targets: refuse statements of this kind, given as a SQL command's leading
    /// keywords (`DROP`, `TRUNCATE`, "ALTER TABLE"; repeatable or comma-separated). Nested
    /// statements count (a DELETE inside WITH); text that does not parse is refused.
    #[arg(long = "deny", value_name = "KIND", value_delimiter = ',')]
    deny: Vec<String>,
    /// Database targets: refuse any statement that names this table (`payroll` or
    /// `hr.payroll`; repeatable or comma-separated), anywhere in it, in any schema, even
    /// inside a string. A view or function that reads it, or SQL built at run time, is not
    /// seen: pair with --read-only or the database's own privileges for a hard boundary.
    #[arg(long = "deny-table", value_name = "TABLE", value_delimiter = ',')]
    deny_table: Vec<String>,
    /// Database targets: keep the first N rows of each result in the recording, each value
    /// masked by the mask rules (off by default: results are counted, not kept).
    #[arg(long, value_name = "N")]
    capture_rows: Option<u32>,
    /// Keep a copy of every file moved by SFTP or SCP, both ways, in the blob store
    /// (`keepwatch transfers get ID --out FILE`). Only files that move whole and in order
    /// within --capture-max-bytes are kept; for the others the transfer says why not.
    #[arg(long)]
    capture_content: bool,
    /// Largest file --capture-content keeps, e.g. 500M (default 64M; suffixes K, M, G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "capture_content")]
    capture_max_bytes: Option<u64>,
}

pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 500K, 100M, 2G)"))
}

fn read_stdin_secret(what: &str) -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let s = s.strip_suffix('\n').unwrap_or(&s);
    let s = s.strip_suffix('\r').unwrap_or(s).to_owned();
    if s.is_empty() {
        bail!("the {what} on standard input is empty");
    }
    Ok(s)
}

fn check_name(kind: &str, name: &str) -> anyhow::Result<()> {
    if !valid_name(name) {
        bail!("{kind} name {name:?} is invalid: use 1-64 letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

pub(crate) async fn user(dir: &DataDir, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    match cmd {
        UserCommand::Add(a) => {
            check_name("user", &a.name)?;
            let mut keys = Vec::new();
            for path in &a.ssh_keys {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let key = russh::keys::PublicKey::from_openssh(text.trim())
                    .with_context(|| format!("{} is not an OpenSSH public key", path.display()))?;
                keys.push(key.to_openssh().context("cannot encode key")?);
            }
            let password = if a.password_stdin {
                Some(password_pair(&read_stdin_secret("password")?)?)
            } else {
                None
            };
            let hash = password.as_ref().map(|(hash, _)| hash.clone());
            if keys.is_empty() && hash.is_none() {
                bail!(
                    "user {} needs a way to log in: pass --ssh-key FILE and/or --password-stdin",
                    a.name
                );
            }
            store.add_person(&a.name, a.role, hash.as_deref(), &keys).await?;
            if let Some((hash, scram)) = &password {
                store.set_password(&a.name, hash, scram).await?;
            }
            audit(&store, AuditAction::UserAdded, format!("user {} role {}", a.name, a.role))
                .await?;
            println!("added user {} ({})", a.name, a.role);
        }
        UserCommand::Disable { name, terminate } => {
            if !store.set_person_disabled(&name, true).await? {
                bail!("no person named {name} (see `keepwatch user list`)");
            }
            audit(&store, AuditAction::UserDisabled, format!("user {name}")).await?;
            println!("disabled {name}: no new logins or channels");
            end_sessions(dir, &store, &name, None, terminate, "access revoked").await?;
        }
        UserCommand::Passwd { name, password_stdin: _ } => {
            let (hash, scram) = password_pair(&read_stdin_secret("password")?)?;
            if !store.set_password(&name, &hash, &scram).await? {
                bail!("no person named {name} (see `keepwatch user list`)");
            }
            audit(&store, AuditAction::PasswordChanged, format!("user {name}")).await?;
            println!("set the password of {name} (SSH, console and PostgreSQL)");
        }
        UserCommand::Enable { name } => {
            if !store.set_person_disabled(&name, false).await? {
                bail!("no person named {name} (see `keepwatch user list`)");
            }
            audit(&store, AuditAction::UserEnabled, format!("user {name}")).await?;
            println!("enabled {name}");
        }
        UserCommand::Remove { name, terminate } => {
            // Sessions first: once the person is gone, their live sessions are still theirs.
            end_sessions(dir, &store, &name, None, terminate, "access revoked").await?;
            if !store.remove_person(&name).await? {
                bail!("no person named {name} (see `keepwatch user list`)");
            }
            audit(&store, AuditAction::UserRemoved, format!("user {name}")).await?;
            println!("removed {name} (their recorded sessions stay)");
        }
        UserCommand::SetRole { name, role } => {
            if !store.set_person_role(&name, role).await? {
                bail!("no person named {name} (see `keepwatch user list`)");
            }
            audit(&store, AuditAction::RoleChanged, format!("user {name} role {role}")).await?;
            println!("{name} is now {role}");
        }
        UserCommand::List { json } => {
            let people = store.people().await?;
            if json {
                print_json(&json!(people.iter().map(|p| json!({
                    "name": p.name, "role": p.role.as_str(), "ssh_keys": p.ssh_keys.len(),
                    "password": p.password_hash.is_some(), "created_at": rfc3339(p.created_at_us),
                    "disabled": p.disabled,
                })).collect::<Vec<_>>()));
            } else {
                let rows: Vec<Vec<String>> = people
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.role.to_string(),
                            p.ssh_keys.len().to_string(),
                            if p.password_hash.is_some() { "yes" } else { "no" }.into(),
                            if p.disabled { "disabled" } else { "enabled" }.into(),
                        ]
                    })
                    .collect();
                table(&["NAME", "ROLE", "SSH KEYS", "PASSWORD", "STATE"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A password as it is kept: its argon2id hash (SSH, the console) and its SCRAM-SHA-256
/// verifier (PostgreSQL, which never shows the server the password).
fn password_pair(password: &str) -> anyhow::Result<(String, String)> {
    if password.is_empty() {
        bail!("the password is empty");
    }
    let hash = hash_password(password).map_err(|e| anyhow::anyhow!(e))?;
    let scram = keepwatch_pg::ScramVerifier::new(password)
        .map_err(|e| anyhow::anyhow!("cannot make the PostgreSQL verifier: {e}"))?;
    Ok((hash, scram.to_string()))
}

pub(crate) async fn target(dir: &DataDir, cmd: TargetCommand) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    match cmd {
        TargetCommand::Add(a) => {
            check_name("target", &a.name)?;
            let vault = dir.vault()?;
            let (secret, plaintext) = if a.password_stdin {
                let pw = read_stdin_secret("password")?;
                (TargetSecret::Password(Vec::new()), pw.into_bytes())
            } else {
                let path = a.key.as_ref().context("pass --password-stdin or --key")?;
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let key = russh::keys::PrivateKey::from_openssh(text.trim())
                    .with_context(|| format!("{} is not an OpenSSH private key", path.display()))?;
                if key.is_encrypted() {
                    bail!(
                        "{} is encrypted; give an unencrypted key (the vault encrypts it at rest)",
                        path.display()
                    );
                }
                (TargetSecret::PrivateKey(Vec::new()), text.trim().as_bytes().to_vec())
            };
            let plaintext = keepwatch_core::Secret::new(plaintext);
            let algorithms = keepwatch_store::Algorithms {
                kex: a.kex.clone(),
                host_key: a.host_key_algorithms.clone(),
                ciphers: a.ciphers.clone(),
                macs: a.macs.clone(),
            };
            keepwatch_ssh::check_algorithms(&algorithms)?;
            let host_key = match &a.host_key {
                Some(line) => {
                    let key =
                        russh::keys::PublicKey::from_openssh(line.trim()).with_context(|| {
                            format!("--host-key {line:?} is not an OpenSSH public key")
                        })?;
                    Some(keepwatch_ssh::host_key_line(&key))
                }
                None => None,
            };
            let postgres = a.protocol == keepwatch_core::Protocol::Postgres;
            let database = if postgres {
                if a.key.is_some() || host_key.is_some() || a.trust_on_first_use {
                    bail!(
                        "a postgres target takes --password-stdin (no --key, --host-key or --trust-on-first-use); TLS is set with --tls and --ca"
                    );
                }
                let Some(name) = a.database.clone() else {
                    bail!("a postgres target needs --database NAME (the database sessions open)");
                };
                let ca = match &a.ca {
                    Some(path) => Some(
                        std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    ),
                    None => None,
                };
                if ca.is_some() && a.tls != keepwatch_store::TlsMode::VerifyFull {
                    bail!("--ca is used only with --tls verify-full");
                }
                keepwatch_pg_gateway::tls::client_config(a.tls, ca.as_deref())
                    .map_err(|e| anyhow::anyhow!("--tls {}: {e}", a.tls.as_str()))?;
                Some(keepwatch_store::DatabaseTarget { name, tls: a.tls, ca })
            } else {
                if host_key.is_none() && !a.trust_on_first_use {
                    bail!(
                        "an ssh target needs --host-key KEY (from ssh-keyscan) or --trust-on-first-use"
                    );
                }
                if a.database.is_some() || a.ca.is_some() {
                    bail!("--database and --ca are for postgres targets (--protocol postgres)");
                }
                None
            };
            let port = a.port.unwrap_or(if postgres { 5432 } else { 22 });
            let mut target = NewTarget {
                protocol: a.protocol,
                name: a.name.clone(),
                host: a.host.clone(),
                port,
                login: a.login.clone(),
                secret,
                host_key,
                trust_on_first_use: a.trust_on_first_use,
                on_recording_failure: a.on_recording_failure,
                algorithms,
                database,
                require_reason: a.require_reason,
            };
            // Bound to the whole row: an edit of it outside keepwatch makes the secret unusable.
            target.seal_secret(&vault, plaintext.expose())?;
            store.add_target(&target).await?;
            audit(
                &store,
                AuditAction::TargetAdded,
                format!("target {} {}", a.name, target.binding()),
            )
            .await?;
            println!("added {} target {} ({}@{}:{})", a.protocol, a.name, a.login, a.host, port);
        }
        TargetCommand::List { json } => {
            let targets = store.targets().await?;
            if json {
                print_json(&json!(
                    targets
                        .iter()
                        .map(|t| json!({
                            "name": t.name, "host": t.host, "port": t.port, "login": t.login,
                            "secret_kind": t.secret.kind(), "host_key": t.host_key,
                            "trust_on_first_use": t.trust_on_first_use,
                            "on_recording_failure": t.on_recording_failure.as_str(),
                            "protocol": t.protocol.as_str(),
                            "database": t.database.as_ref().map(|d| d.name.clone()),
                            "tls": t.database.as_ref().map(|d| d.tls.as_str()),
                            "created_at": rfc3339(t.created_at_us),
                        }))
                        .collect::<Vec<_>>()
                ));
            } else {
                let rows: Vec<Vec<String>> = targets
                    .iter()
                    .map(|t| {
                        let pin = match (&t.host_key, t.trust_on_first_use) {
                            (Some(_), _) => "pinned",
                            (None, true) => "first use",
                            (None, false) => "none",
                        };
                        let pin = match &t.database {
                            Some(d) => format!("tls {}", d.tls.as_str()),
                            None => pin.into(),
                        };
                        let address = match &t.database {
                            Some(d) => format!("{}@{}:{}/{}", t.login, t.host, t.port, d.name),
                            None => format!("{}@{}:{}", t.login, t.host, t.port),
                        };
                        vec![
                            t.name.clone(),
                            t.protocol.to_string(),
                            address,
                            t.secret.kind().into(),
                            pin,
                        ]
                    })
                    .collect();
                table(&["NAME", "PROTOCOL", "ADDRESS", "SECRET", "HOST KEY / TLS"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn grant(dir: &DataDir, a: GrantArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    for p in &a.allow_forward {
        if !p.contains(':') {
            bail!("--allow-forward {p:?} needs HOST:PORT (use * for any port)");
        }
    }
    let (deny_statements, deny_tables) =
        keepwatch_pg::StatementRules::normalized(&a.deny, &a.deny_table)?;
    let policy = GrantPolicy {
        upload: !a.no_upload,
        download: !a.no_download,
        max_file_size: a.max_file_size,
        forward_to: a.allow_forward.clone(),
        remote_forward: a.allow_remote_forward,
        agent_forward: a.allow_agent_forward,
        record_tunnel_bytes: a.record_tunnel_bytes,
        read_only: a.read_only,
        deny_statements,
        deny_tables,
        capture_rows: a.capture_rows.filter(|n| *n > 0),
        capture_content: a
            .capture_content
            .then(|| a.capture_max_bytes.unwrap_or(DEFAULT_CAPTURE_MAX_BYTES)),
    };
    store.grant(&a.user, &a.target, &policy).await?;
    audit(&store, AuditAction::GrantAdded, format!("{} -> {}: {policy:?}", a.user, a.target))
        .await?;
    println!("granted {} to {}", a.target, a.user);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn revoke(dir: &DataDir, a: RevokeArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let removed = store.revoke(&a.user, &a.target).await?;
    audit(&store, AuditAction::GrantRemoved, format!("{} -> {}", a.user, a.target)).await?;
    if removed {
        println!("revoked {} from {}: no new sessions or channels there", a.target, a.user);
    } else {
        println!("{} had no grant on {}", a.user, a.target);
    }
    end_sessions(dir, &store, &a.user, Some(&a.target), a.terminate, "access revoked").await?;
    Ok(ExitCode::SUCCESS)
}

/// Remove a person's access to a target: no new sessions or channels there.
#[derive(Args)]
pub(crate) struct RevokeArgs {
    user: String,
    target: String,
    /// Also end the person's live SSH sessions on the target now (through the running
    /// gateway).
    #[arg(long)]
    terminate: bool,
}

/// Ends `person`'s live sessions (on `target`, when given) through the running gateway when
/// `terminate`; otherwise says how many are still running.
async fn end_sessions(
    dir: &DataDir,
    store: &keepwatch_store::Store,
    person: &str,
    target: Option<&str>,
    terminate: bool,
    reason: &str,
) -> anyhow::Result<()> {
    let filter = keepwatch_store::SessionFilter {
        person: Some(person.to_owned()),
        target: target.map(str::to_owned),
        ..keepwatch_store::SessionFilter::active()
    };
    let live = store.sessions(&filter).await?;
    if live.is_empty() {
        return Ok(());
    }
    if !terminate {
        println!(
            "{} live session(s) of {person} go on (they can open no new channels); pass --terminate to end them",
            live.len()
        );
        return Ok(());
    }
    for s in live {
        match crate::remote::terminate(dir, s.id, reason).await {
            Ok(()) => println!("terminated session {}", s.id),
            Err(e) => eprintln!("keepwatch: cannot terminate session {}: {e:#}", s.id),
        }
    }
    Ok(())
}

async fn audit(
    store: &keepwatch_store::Store,
    action: AuditAction,
    detail: String,
) -> anyhow::Result<()> {
    store
        .audit(NewAudit {
            actor: local_actor(),
            action,
            session_id: None,
            client_addr: None,
            detail,
        })
        .await?;
    Ok(())
}
