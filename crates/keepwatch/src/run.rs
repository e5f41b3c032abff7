//! `keepwatch run`: the gateway and the web listener, with recovery first and a graceful stop.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use keepwatch_ssh::GatewayContext;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::datadir::DataDir;

#[derive(Args)]
pub(crate) struct RunArgs {
    /// SSH listen address (default from keepwatch.toml: 127.0.0.1:2222).
    #[arg(long, value_name = "ADDR")]
    ssh_listen: Option<String>,
    /// Web listen address (default from keepwatch.toml: 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    web_listen: Option<String>,
    /// PostgreSQL listen address (default from keepwatch.toml; empty there: 127.0.0.1:6432
    /// when a postgres target exists, else off).
    #[arg(long, value_name = "ADDR")]
    pg_listen: Option<String>,
}

pub(crate) async fn run(dir: &DataDir, args: RunArgs) -> anyhow::Result<ExitCode> {
    if !dir.is_initialised() {
        dir.init(None, None).await?;
    }
    let cfg = dir.config()?;
    let store = dir.store().await?;
    tracing::info!(database = %dir.database()?.describe(), "metadata store open");
    let recorder = dir.recorder_context(&store, &cfg)?;
    let blobs = recorder.blobs.clone();
    // This node joins the others on the database before it recovers anything, so a survivor
    // that sees its fresh heartbeat leaves its sessions to it.
    let node = recorder.node.clone();
    let (heartbeat, lapse) = cfg.node.timing()?;
    let instance = keepwatch_core::SessionId::new().to_string();
    let registered_at = store.clock_us().await.context("cannot read the database's clock")?;
    store
        .register_node(&node, &instance, registered_at)
        .await
        .with_context(|| format!("cannot register node {node} in the database"))?;
    eprintln!("keepwatch: node {node}");
    // Before recovery, so that what recovery audits is sent too; it reads the audit trail
    // after the fact, so nothing below waits on it.
    let feeds = crate::events::start(&cfg.events, dir.root(), &store, &node.to_string())
        .await
        .context("cannot start the event feed ([events] in keepwatch.toml)")?;
    let recovered = keepwatch_recorder::recover_interrupted(&recorder)
        .await
        .context("cannot list the sessions the last stop left active")?;
    let sealed = recovered
        .iter()
        .filter(|(_, r)| matches!(r, keepwatch_recorder::Recovered::Sealed { .. }))
        .count();
    if sealed > 0 {
        eprintln!("keepwatch: sealed {sealed} interrupted session(s) left by the last stop");
    }
    for (id, outcome) in &recovered {
        use keepwatch_recorder::Recovered;
        match outcome {
            Recovered::Sealed { .. } => {
                eprintln!("keepwatch: sealed session {id} as interrupted (left by the last stop)")
            }
            Recovered::NeverStarted => eprintln!(
                "keepwatch: removed session {id}: its recording never started (the target was not contacted)"
            ),
            Recovered::Unsealed { reason } => {
                eprintln!("keepwatch: could not seal session {id}: {reason}; marked interrupted")
            }
        }
    }
    // Sealed spools the last stop left before they reached the archive.
    let left = keepwatch_recorder::archive_sealed_spools(&recorder)
        .await
        .context("cannot archive the sealed recordings left in the spool")?;
    if left > 0 {
        eprintln!(
            "keepwatch: archiving {left} sealed recording(s) left in the spool by the last stop"
        );
    }
    // One login limiter and one password checker for the SSH gateway and the console.
    let logins = Arc::new(keepwatch_core::LoginLimiter::new(cfg.login_limits()));
    let passwords = cfg.password_checker();
    reseal_legacy_secrets(dir, &store).await?;
    let sessions = Arc::new(
        keepwatch_session::SessionLayer::new(store.clone(), dir.vault()?, recorder)
            .with_notice(&cfg.gateway.notice),
    );
    let ctx = Arc::new(GatewayContext::new(
        sessions.clone(),
        cfg.gateway()?,
        dir.host_key()?,
        logins.clone(),
        passwords.clone(),
    ));
    let ssh_addr = args.ssh_listen.unwrap_or(cfg.ssh_listen.clone());
    let web_addr = args.web_listen.unwrap_or(cfg.web_listen.clone());
    // Watched from before any session can be accepted: a SIGTERM from here on (a service
    // manager stopping it just after starting it) waits for the shutdown below, which seals
    // what is live. Before, it ends the process as always: nothing is live yet, and a long
    // migration or recovery can still be interrupted.
    let mut signals = Signals::watch()?;
    let ssh = TcpListener::bind(&ssh_addr)
        .await
        .with_context(|| format!("cannot listen for SSH on {ssh_addr}"))?;
    let web = TcpListener::bind(&web_addr)
        .await
        .with_context(|| format!("cannot listen for HTTP on {web_addr}"))?;
    let pg_addr = match args.pg_listen.unwrap_or(cfg.pg_listen.clone()) {
        a if !a.is_empty() => Some(a),
        _ => {
            let targets = store.targets().await.context("cannot read the targets")?;
            targets
                .iter()
                .any(|t| t.protocol == keepwatch_core::Protocol::Postgres)
                .then(|| "127.0.0.1:6432".to_owned())
        }
    };
    let pg = match &pg_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for PostgreSQL on {addr}"))?,
        ),
        None => None,
    };
    eprintln!("keepwatch: SSH gateway listening on {}", ssh.local_addr()?);
    if let Some(pg) = &pg {
        eprintln!("keepwatch: PostgreSQL gateway listening on {}", pg.local_addr()?);
    }
    eprintln!("keepwatch: web listening on {}", web.local_addr()?);
    eprintln!("keepwatch: the console is at http://{}/", web.local_addr()?);
    eprintln!("keepwatch: data directory {}", dir.root().display());
    let anchors = dir.anchor_config(&cfg);
    eprintln!(
        "keepwatch: signing key {} (fingerprint {}); anchors every {}s to {}{}",
        dir.signing_key_path().display(),
        crate::datadir::fingerprint(&sessions.recorder.signing_key.verifying_key()),
        anchors.interval.as_secs(),
        anchors.file.as_ref().map_or("no file".into(), |f| f.display().to_string()),
        anchors
            .syslog
            .as_ref()
            .map(|s| format!(" and syslog ({})", s.display()))
            .unwrap_or_default(),
    );
    if !anchors.protect_file && anchors.syslog.is_none() {
        tracing::warn!(
            "anchors are kept only inside the data directory, where whoever can rewrite history can rewrite them too; set [anchor] file to a path elsewhere or syslog = true"
        );
    }

    let shutdown = CancellationToken::new();
    let web_addr = web.local_addr()?;
    let web_config = cfg.web()?;
    let listener_config = web_config.listener.clone();
    let web_state = keepwatch_web::WebState::new(
        keepwatch_web::WebParts {
            store: store.clone(),
            blobs: blobs.clone(),
            verifying_key: dir.verifying_key()?,
            vault: Some(dir.vault()?),
            live: Arc::new(Gateway {
                sessions: sessions.clone(),
                node: node.clone(),
                node_key: dir.node_key()?,
                proxy_header: cfg.proxy.web,
            }),
            logins: logins.clone(),
            passwords: passwords.clone(),
        },
        web_config,
    )
    .map_err(|e| anyhow::anyhow!("cannot start the web console: {}", e.message))?;
    crate::remote::publish(dir, &store, &node, web_addr).await?;
    let advertise = if cfg.node.advertise_web.is_empty() {
        web_addr.to_string()
    } else {
        cfg.node.advertise_web.clone()
    };
    store
        .advertise_node(&node, &instance, &advertise)
        .await
        .with_context(|| format!("cannot publish node {node}'s web address"))?;
    let web_task = tokio::spawn(keepwatch_web::serve(
        web,
        keepwatch_web::router(web_state),
        listener_config,
        shutdown.clone(),
    ));
    let gateway = tokio::spawn(keepwatch_ssh::serve(ctx.clone(), ssh, shutdown.clone()));
    let pg_gateway = match pg {
        Some(pg) => {
            let pg_ctx = Arc::new(keepwatch_pg_gateway::PgGatewayContext::new(
                sessions.clone(),
                cfg.postgres(),
                dir.pg_tls()?,
                logins.clone(),
            ));
            Some(tokio::spawn(keepwatch_pg_gateway::serve(pg_ctx, pg, shutdown.clone())))
        }
        None => None,
    };
    let anchor_stop = CancellationToken::new();
    let anchor_task = tokio::spawn(keepwatch_recorder::run_anchors(
        sessions.recorder.clone(),
        anchors,
        anchor_stop.clone(),
    ));
    let indexer = cfg.index.enabled.then(|| {
        let every = Duration::from_millis(cfg.index.interval_ms.max(50));
        let indexer = keepwatch_index::Indexer::new(store.clone(), blobs).on_node(node.clone());
        tokio::spawn(indexer.run(every, shutdown.clone()))
    });
    let schedule = Arc::new(crate::scheduled::Schedule {
        store: store.clone(),
        blobs: sessions.recorder.blobs.clone(),
        key: sessions.recorder.signing_key.verifying_key(),
        node: node.clone(),
        lapse,
    });
    let scheduled_verify = (cfg.verify.interval_s > 0).then(|| {
        let every = Duration::from_secs(cfg.verify.interval_s);
        tokio::spawn(crate::scheduled::verify_on_schedule(
            schedule.clone(),
            every,
            shutdown.clone(),
        ))
    });
    let scheduled_retention = (cfg.retention.interval_s > 0).then(|| {
        let every = Duration::from_secs(cfg.retention.interval_s);
        let s = schedule.clone();
        tokio::spawn(crate::scheduled::apply_retention_on_schedule(s, every, shutdown.clone()))
    });
    let fenced = CancellationToken::new();
    let beat_stop = CancellationToken::new();
    let beats = tokio::spawn(beat(
        sessions.clone(),
        Beat {
            node: node.clone(),
            instance,
            every: heartbeat,
            lapse,
            shared: matches!(dir.database()?, keepwatch_store::Database::Postgres(_)),
        },
        fenced.clone(),
        beat_stop.clone(),
    ));
    tokio::select! {
        () = signals.recv() => {}
        _ = fenced.cancelled() => {}
    }
    beat_stop.cancel();
    let _ = beats.await;
    if fenced.is_cancelled() {
        sessions.live().terminate_all(
            "keepwatch: this gateway node lost its place in the cluster, so the session was ended",
        );
    }
    eprintln!("keepwatch: shutting down; sealing {} live session(s)", sessions.live().ids().len());
    shutdown.cancel();
    let _ = gateway.await;
    if let Some(pg) = pg_gateway {
        let _ = pg.await;
    }
    let _ = web_task.await;
    // After the gateway: the feed sends the events of the sessions it sealed on the way down.
    feeds.stop().await;
    // After the gateway: the last anchor covers the sessions it sealed on the way down.
    anchor_stop.cancel();
    let _ = anchor_task.await;
    if let Some(indexer) = indexer {
        let _ = indexer.await;
    }
    for task in [scheduled_verify, scheduled_retention].into_iter().flatten() {
        let _ = task.await;
    }
    // Give the archive the shutdown grace to take what the spool still holds; what it does
    // not take stays in the spool for the next start.
    let shipper = &sessions.recorder.shipper;
    if shipper.uploading() > 0 {
        let grace = cfg.gateway()?.shutdown_grace;
        if !shipper.drained(std::time::Instant::now() + grace).await {
            eprintln!(
                "keepwatch: {} recording(s) ({} bytes) are not archived yet; they stay in the spool and the next start uploads them",
                shipper.uploading(),
                shipper.backlog()
            );
        }
    }
    store.close().await;
    eprintln!("keepwatch: stopped");
    Ok(ExitCode::SUCCESS)
}

/// This node's place among the nodes sharing the database.
struct Beat {
    node: keepwatch_core::NodeId,
    instance: String,
    every: Duration,
    lapse: Duration,
    /// The database is shared with other nodes (PostgreSQL), which may claim this node's
    /// sessions once its heartbeat lapses.
    shared: bool,
}

/// Beats every `b.every`, and after each beat seals the sessions of nodes silent for longer
/// than `b.lapse` (see `recover_lapsed_nodes`). When the database no longer knows this
/// process as the node (another process took the name, or the others gave it up for dead
/// and sealed its sessions), `fenced` is cancelled and the gateway stops. A beat that
/// cannot reach the database is retried at the next tick; on a shared database, once the
/// beats have failed for half the lapse, this node ends its live sessions itself (their
/// recordings seal as far as they got), so that no session goes on here while a survivor
/// may be sealing it elsewhere.
async fn beat(
    sessions: Arc<keepwatch_session::SessionLayer>,
    b: Beat,
    fenced: CancellationToken,
    stop: CancellationToken,
) {
    let store = &sessions.recorder.store;
    let mut tick = tokio::time::interval(b.every);
    let mut last_beat = std::time::Instant::now();
    let mut cut_off = false;
    let mut reaping: Option<tokio::task::JoinHandle<()>> = None;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Stamped and judged by the database's clock (see `Store::clock_us`). A database that
        // hangs counts as one that fails: the lease must not wait on a pool.
        let mut now = 0;
        let beat = tokio::time::timeout(b.every, async {
            now = store.clock_us().await?;
            store.node_heartbeat(&b.node, &b.instance, now).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(keepwatch_store::StoreError::Unavailable {
                op: "node heartbeat",
                id: b.node.to_string(),
                source: "no answer within a heartbeat interval".into(),
            })
        });
        match beat {
            Ok(true) => {
                last_beat = std::time::Instant::now();
                cut_off = false;
            }
            Ok(false) => {
                tracing::error!(node = %b.node, "this node is no longer registered as this process: another process runs under its name, or the other nodes gave it up after {} s of silence; stopping", b.lapse.as_secs());
                eprintln!(
                    "keepwatch: node {} was taken over (another process with the same [node] id, or silent for over {} s); stopping",
                    b.node,
                    b.lapse.as_secs()
                );
                fenced.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(node = %b.node, error = %e, "cannot record this node's heartbeat");
                if b.shared && !cut_off && last_beat.elapsed() >= b.lapse / 2 {
                    cut_off = true;
                    tracing::error!(node = %b.node, "no heartbeat for half the lapse: ending this node's sessions before another node claims them");
                    sessions.live().terminate_all(
                        "keepwatch: this gateway node lost its database, so the session was ended",
                    );
                }
                continue;
            }
        }
        // Sealing a dead node's sessions can take long (their recordings come from the
        // bucket): it runs beside the beats, one round at a time, so this node's own
        // heartbeat never waits on it and never lapses because of it.
        if reaping.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
            let lapsed_before = now - b.lapse.as_micros() as i64;
            let recorder = sessions.recorder.clone();
            reaping = Some(tokio::spawn(async move {
                match keepwatch_recorder::recover_lapsed_nodes(&recorder, lapsed_before).await {
                    Ok(sealed) => {
                        for (dead, id, outcome) in sealed {
                            eprintln!(
                                "keepwatch: node {dead} stopped answering; session {id}: {outcome:?}"
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot look for silent nodes"),
                }
            }));
        }
    }
}

/// SIGTERM and SIGINT, watched (no longer fatal) from [`Signals::watch`] on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn watch() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// Waits for either (one that came before this call counts).
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// The running gateway as the web side sees it.
struct Gateway {
    sessions: Arc<keepwatch_session::SessionLayer>,
    node: keepwatch_core::NodeId,
    node_key: [u8; 32],
    /// Requests to other nodes start with a PROXY header (`[proxy] web`).
    proxy_header: bool,
}

/// How long asking another node to end a session may take.
const NODE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Gateway {
    /// The node that runs the live session `id` (by the database) and where it takes node
    /// requests; `None` when the session is not live, is this node's, or its node has no
    /// address.
    async fn owner_of(
        &self,
        id: keepwatch_core::SessionId,
    ) -> Option<(keepwatch_core::NodeId, String)> {
        let store = &self.sessions.recorder.store;
        let s = store.session(id).await.ok()??;
        let owner = s.node.filter(|n| *n != self.node)?;
        if s.status != keepwatch_core::SessionStatus::Active {
            return None;
        }
        let nodes = store.nodes().await.ok()?;
        let addr = nodes.into_iter().find(|n| n.id == owner).map(|n| n.web_addr)?;
        (!addr.is_empty()).then_some((owner, addr))
    }

    /// A connection to another node's web listener (behind a PROXY header if ours expects
    /// one: the nodes share a configuration).
    async fn connect_node(&self, addr: &str) -> std::io::Result<tokio::net::TcpStream> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        if self.proxy_header {
            tokio::io::AsyncWriteExt::write_all(&mut s, b"PROXY UNKNOWN\r\n").await?;
        }
        Ok(s)
    }

    /// Asks the node that runs session `id` (by the database) to end it; false when the
    /// session is not live, is this node's, or that node cannot be reached or says no.
    async fn terminate_elsewhere(&self, id: keepwatch_core::SessionId, message: &str) -> bool {
        let Some((owner, addr)) = self.owner_of(id).await else { return false };
        let body = keepwatch_web::NodeTerminate {
            from: self.node.to_string(),
            session: id.to_string(),
            message: message.to_owned(),
            at_us: keepwatch_store::now_us(),
        };
        let Ok(body) = serde_json::to_string(&body) else { return false };
        let mac = blake3::keyed_hash(&self.node_key, body.as_bytes()).to_hex();
        let ask = async {
            let s = self.connect_node(&addr).await?;
            let headers = [(keepwatch_web::NODE_MAC_HEADER, mac.as_str())];
            crate::remote::http_post(s, &addr, "/api/v1/nodes/terminate", &headers, &body).await
        };
        match tokio::time::timeout(NODE_REQUEST_TIMEOUT, ask).await {
            Ok(Ok((200, _))) => {
                tracing::info!(session_id = %id, node = %owner, "asked the node running the session to end it");
                true
            }
            Ok(Ok((status, text))) => {
                tracing::warn!(session_id = %id, node = %owner, status, reply = %text.trim(), "the node running the session refused to end it");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(session_id = %id, node = %owner, %addr, error = %e, "cannot reach the node running the session");
                false
            }
            Err(_) => {
                tracing::warn!(session_id = %id, node = %owner, %addr, "the node running the session did not answer in time");
                false
            }
        }
    }

    /// Opens a watch of session `id` on the node that runs it (signed, with a fresh nonce);
    /// `None` when no other node runs it or that node cannot be reached or says no.
    async fn watch_elsewhere(
        &self,
        id: keepwatch_core::SessionId,
    ) -> Option<keepwatch_web::RemoteWatch> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let (owner, addr) = self.owner_of(id).await?;
        let nonce = keepwatch_web::random_token().ok()?;
        let req = keepwatch_web::NodeWatch {
            from: self.node.to_string(),
            session: id.to_string(),
            at_us: keepwatch_store::now_us(),
            nonce,
        };
        let signed = serde_json::to_string(&req).ok()?;
        let mac = blake3::keyed_hash(&self.node_key, signed.as_bytes()).to_hex();
        let mut http = format!("ws://{addr}/api/v1/nodes/watch").into_client_request().ok()?;
        http.headers_mut().insert(keepwatch_web::NODE_REQUEST_HEADER, signed.parse().ok()?);
        http.headers_mut().insert(keepwatch_web::NODE_MAC_HEADER, mac.as_str().parse().ok()?);
        let open = async {
            let s = self.connect_node(&addr).await.map_err(|e| e.to_string())?;
            tokio_tungstenite::client_async(http, s).await.map_err(|e| e.to_string())
        };
        let ws = match tokio::time::timeout(NODE_REQUEST_TIMEOUT, open).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                tracing::warn!(session_id = %id, node = %owner, %addr, error = %e, "cannot watch on the node running the session");
                return None;
            }
            Err(_) => {
                tracing::warn!(session_id = %id, node = %owner, %addr, "the node running the session did not answer in time");
                return None;
            }
        };
        tracing::info!(session_id = %id, node = %owner, "relaying a watch from the node running the session");
        let texts = ws
            .take_while(|m| std::future::ready(matches!(m, Ok(m) if !m.is_close())))
            .filter_map(|m| {
                std::future::ready(match m {
                    Ok(Message::Text(t)) => Some(t.to_string()),
                    _ => None,
                })
            });
        Some(texts.boxed())
    }
}

impl keepwatch_web::LiveControl for Gateway {
    fn terminate(&self, id: keepwatch_core::SessionId, message: &str) -> bool {
        self.sessions.live().terminate(id, message)
    }
    fn terminate_anywhere<'a>(
        &'a self,
        id: keepwatch_core::SessionId,
        message: &'a str,
    ) -> futures::future::BoxFuture<'a, bool> {
        Box::pin(async move {
            self.sessions.live().terminate(id, message)
                || self.terminate_elsewhere(id, message).await
        })
    }
    fn node_key(&self) -> Option<[u8; 32]> {
        Some(self.node_key)
    }
    fn watch(
        &self,
        id: keepwatch_core::SessionId,
    ) -> futures::future::BoxFuture<'_, Option<keepwatch_recorder::WatchStart>> {
        Box::pin(self.sessions.live().watch(id))
    }
    fn watch_elsewhere(
        &self,
        id: keepwatch_core::SessionId,
    ) -> futures::future::BoxFuture<'_, Option<keepwatch_web::RemoteWatch>> {
        Box::pin(Gateway::watch_elsewhere(self, id))
    }
    fn host_key_line(&self, text: &str) -> Result<String, String> {
        russh::keys::PublicKey::from_openssh(text.trim())
            .map(|k| keepwatch_ssh::host_key_line(&k))
            .map_err(|e| e.to_string().to_lowercase())
    }
}

/// Target secrets sealed before secrets were bound to their target's row are sealed again,
/// bound to the row as it is now (each audited), before any session can use them.
async fn reseal_legacy_secrets(
    dir: &DataDir,
    store: &keepwatch_store::Store,
) -> anyhow::Result<()> {
    let vault = dir.vault()?;
    let done = store
        .reseal_legacy_secrets(&vault, &crate::output::local_actor())
        .await
        .context("cannot seal old target secrets again")?;
    for r in done {
        match r {
            keepwatch_store::Resealed::Resealed { target } => eprintln!(
                "keepwatch: sealed the secret of target {target} again, bound to its current settings (audited)"
            ),
            keepwatch_store::Resealed::Unreadable { target, reason } => eprintln!(
                "keepwatch: warning: the old secret of target {target} does not open ({reason}); sessions to it will be refused"
            ),
        }
    }
    Ok(())
}
