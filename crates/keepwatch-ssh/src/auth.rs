//! Authenticating people: the russh server handler for one connection.
//!
//! Every refusal looks the same to the client (no hint whether the person, the credential,
//! the target or the grant was wrong); the audit event says which.

use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use keepwatch_core::{
    AccessDecision, AuditAction, Denial, LoginName, RefusalAudit, authorize_connect,
};
use keepwatch_store::NewAudit;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelOpenFailure};

use crate::GatewayContext;
use crate::connection::{Activity, Connection};
use keepwatch_core::Slot;

/// Who logged in, once authentication succeeded.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub person: String,
    pub target: Option<String>,
}

pub(crate) struct ConnHandler {
    pub ctx: Arc<GatewayContext>,
    pub peer: SocketAddr,
    pub login: Option<Login>,
    /// Set when the first channel opens; read by the connection task when the client leaves.
    pub conn: Arc<tokio::sync::OnceCell<Arc<Connection>>>,
    /// The pre-login slot, given back at login.
    pub slot: Option<Slot>,
    /// Set at login: the login grace time no longer applies.
    pub authed: Arc<AtomicBool>,
    pub activity: Arc<Activity>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("ssh: {0}")]
    Ssh(#[from] russh::Error),
    #[error("store: {0}")]
    Store(#[from] keepwatch_store::StoreError),
}

enum Credential<'a> {
    Key(&'a russh::keys::PublicKey),
    Password(&'a str),
}

impl ConnHandler {
    async fn check(&mut self, user: &str, cred: Credential<'_>) -> Result<Auth, ConnError> {
        let method = match cred {
            Credential::Key(_) => "publickey",
            Credential::Password(_) => "password",
        };
        // Passwords are guessable: the attempt counts before it is checked, for the name and
        // the address together, with the web console's logins. Keys are not.
        let attempt = match cred {
            Credential::Password(_) => {
                let name = LoginName::parse(user).map_or(user.to_owned(), |n| n.person);
                match self.ctx.logins.begin(&name, self.peer.ip(), Instant::now()) {
                    Ok(a) => Some(a),
                    Err(locked) => {
                        let why = format!(
                            "too many failed logins; locked for {} s",
                            locked.retry_after.as_secs()
                        );
                        self.refused(user, method, &why).await?;
                        return Ok(Auth::reject());
                    }
                }
            }
            Credential::Key(_) => None,
        };
        let decision = self.decide(user, &cred).await?;
        match decision {
            Ok(login) => {
                if let Some(a) = attempt {
                    self.ctx.logins.succeeded(a);
                }
                self.ctx
                    .sessions
                    .store
                    .audit(NewAudit {
                        actor: login.person.clone(),
                        action: AuditAction::LoginSucceeded,
                        session_id: None,
                        client_addr: Some(self.peer.to_string()),
                        detail: format!("login {user:?} by {method}"),
                    })
                    .await?;
                self.login = Some(login);
                // Logged in: the pre-login slot and the grace time no longer apply.
                self.slot = None;
                self.authed.store(true, Ordering::Relaxed);
                self.activity.touch();
                Ok(Auth::Accept)
            }
            Err(denial) => {
                self.refused(user, method, denial.as_str()).await?;
                Ok(Auth::reject())
            }
        }
    }

    /// Audits a refused login, at most once a minute per address (with how many were not).
    async fn refused(&self, user: &str, method: &str, why: &str) -> Result<(), ConnError> {
        let RefusalAudit::Write { suppressed } =
            self.ctx.logins.refusal(self.peer.ip(), Instant::now())
        else {
            return Ok(());
        };
        let more = if suppressed > 0 {
            format!(" ({suppressed} more refused from this address since the last one audited)")
        } else {
            String::new()
        };
        self.ctx
            .sessions
            .store
            .audit(NewAudit {
                actor: user.to_owned(),
                action: AuditAction::LoginRefused,
                session_id: None,
                client_addr: Some(self.peer.to_string()),
                detail: format!("login {user:?} by {method}: {why}{more}"),
            })
            .await?;
        Ok(())
    }

    async fn decide(
        &self,
        user: &str,
        cred: &Credential<'_>,
    ) -> Result<Result<Login, Denial>, ConnError> {
        let Ok(name) = LoginName::parse(user) else { return Ok(Err(Denial::UnknownPerson)) };
        let person = self.ctx.sessions.store.person(&name.person).await?;
        let ok = match cred {
            Credential::Key(key) => person.as_ref().is_some_and(|p| {
                p.ssh_keys.iter().any(|line| {
                    russh::keys::PublicKey::from_openssh(line)
                        .map(|k| k.key_data() == key.key_data())
                        .unwrap_or(false)
                })
            }),
            // Checked off the runtime's threads, a few at a time; an unknown name costs the
            // same as a known one.
            Credential::Password(pw) => {
                let hash = person.as_ref().and_then(|p| p.password_hash.as_deref());
                self.ctx.passwords.check(pw, hash).await.unwrap_or(false)
            }
        };
        let Some(person) = person else { return Ok(Err(Denial::UnknownPerson)) };
        if !ok {
            return Ok(Err(Denial::BadCredential));
        }
        if person.disabled {
            return Ok(Err(Denial::PersonDisabled));
        }
        if let Some(target) = &name.target {
            let exists = self.ctx.sessions.store.target(target).await?.is_some();
            let granted = self.ctx.sessions.store.is_granted(&person.name, target).await?;
            if let AccessDecision::Deny(d) = authorize_connect(exists, granted) {
                return Ok(Err(d));
            }
        }
        Ok(Ok(Login { person: person.name, target: name.target }))
    }
}

impl russh::server::Handler for ConnHandler {
    type Error = ConnError;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.check(user, Credential::Key(key.public_key)).await
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.check(user, Credential::Password(password)).await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(login) = self.login.clone() else {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        };
        if !self.still_allowed(&login, "a session channel").await? {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        }
        let conn = self.connection(login, session).await;
        if !conn.has_room() {
            self.refuse_channel(&conn.login, "a session channel").await?;
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        reply.accept().await;
        conn.spawn_channel(channel);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: russh::ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The channel task keeps the terminal for the target; accepting here, in order,
        // keeps the replies to pipelined requests (pty-req then shell) in step.
        session.channel_success(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: russh::ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_forwarding("X11 forwarding".into()).await?;
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: russh::ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // The channel task asks the target for the agent only under the same grant.
        let allowed = match &self.login {
            Some(Login { person, target: Some(target) }) => self
                .ctx
                .sessions
                .store
                .grant_policy(person, target)
                .await?
                .is_some_and(|g| g.agent_forward),
            _ => false,
        };
        if !allowed {
            self.refuse_forwarding("agent forwarding".into()).await?;
        }
        Ok(allowed)
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(login) = self.login.clone() else {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        };
        let policy = match &login.target {
            Some(t) => self.ctx.sessions.store.grant_policy(&login.person, t).await?,
            None => None,
        };
        let dest = format!("{host_to_connect}:{port_to_connect}");
        let allowed = policy.is_some_and(|p| p.forward_allowed(host_to_connect, port_to_connect))
            && self.still_allowed(&login, "a tunnel").await?;
        if allowed {
            let conn = self.connection(login, session).await;
            if !conn.has_room() {
                self.refuse_channel(&conn.login, "a tunnel").await?;
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
                return Ok(());
            }
            reply.accept().await;
            let originator = format!("{originator_address}:{originator_port}");
            conn.spawn_tunnel(channel, host_to_connect.to_owned(), port_to_connect, originator);
            return Ok(());
        }
        self.refuse_forwarding(format!("local port forwarding to {dest}")).await?;
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        // `ssh -J` (stdio forwarding, which OpenSSH opens from 127.0.0.1:65535) would carry an
        // end-to-end encrypted session the gateway cannot record: say how to connect instead.
        if port_to_connect == 22 || originator_port == 65535 {
            let how = match &login.target {
                Some(t) => format!("ssh -p PORT {}@{t}@GATEWAY", login.person),
                None => format!("ssh -p PORT {}@TARGET@GATEWAY", login.person),
            };
            let text = format!(
                "keepwatch: jumping through the gateway to {dest} is refused because the session could not be recorded; connect with {how}"
            );
            session.disconnect(russh::Disconnect::ByApplication, &text, "en")?;
        }
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let what = format!("remote port forwarding from {address}:{port}");
        let Some(login) = self.login.clone() else { return Ok(false) };
        let Some(target) = login.target.clone() else {
            self.refuse_forwarding(what).await?;
            return Ok(false);
        };
        let allowed = self
            .ctx
            .sessions
            .store
            .grant_policy(&login.person, &target)
            .await?
            .is_some_and(|g| g.remote_forward);
        if !allowed {
            self.refuse_forwarding(what).await?;
            return Ok(false);
        }
        let conn = self.connection(login, session).await;
        let Ok(s) = conn.session(&target, None).await else { return Ok(false) };
        let (ok, text) = match s.upstream.tcpip_forward(address, *port).await {
            Ok(bound) => {
                if *port == 0 {
                    *port = bound;
                }
                conn.serve_remote_forwards(&s);
                (true, format!("target listens on {address}:{} for ssh -R", *port))
            }
            Err(e) => (false, format!("target refused to listen on {address}:{port}: {e}")),
        };
        let _ = conn.record(&s, keepwatch_recording::Event::Notice { channel: None, text }).await;
        Ok(ok)
    }
}

impl ConnHandler {
    /// The connection's shared state, created on its first channel.
    async fn connection(&self, login: Login, session: &mut Session) -> Arc<Connection> {
        let handle = session.handle();
        let activity = self.activity.clone();
        self.conn
            .get_or_init(|| async {
                Arc::new(Connection::new(self.ctx.clone(), login, self.peer, handle, activity))
            })
            .await
            .clone()
    }

    /// Revocation bites at every channel: the person must still be enabled and, when a
    /// target was named, still hold the grant. Refusals are audited.
    async fn still_allowed(&self, login: &Login, what: &str) -> Result<bool, ConnError> {
        let person = self.ctx.sessions.store.person(&login.person).await?;
        let why = match (&person, &login.target) {
            (None, _) => Some("the person was removed"),
            (Some(p), _) if p.disabled => Some("the person is disabled"),
            (Some(_), Some(t)) if !self.ctx.sessions.store.is_granted(&login.person, t).await? => {
                Some("the grant was revoked")
            }
            _ => None,
        };
        let Some(why) = why else { return Ok(true) };
        self.ctx
            .sessions
            .store
            .audit(NewAudit {
                actor: login.person.clone(),
                action: AuditAction::SessionRefused,
                session_id: None,
                client_addr: Some(self.peer.to_string()),
                detail: format!("{what} refused: {why}"),
            })
            .await?;
        Ok(false)
    }

    async fn refuse_channel(&self, login: &Login, what: &str) -> Result<(), ConnError> {
        self.ctx
            .sessions
            .store
            .audit(NewAudit {
                actor: login.person.clone(),
                action: AuditAction::SessionRefused,
                session_id: None,
                client_addr: Some(self.peer.to_string()),
                detail: format!(
                    "{what} refused: {} channels open on one connection (the most allowed)",
                    self.ctx.config.max_channels
                ),
            })
            .await?;
        Ok(())
    }

    async fn refuse_forwarding(&self, what: String) -> Result<(), ConnError> {
        let actor = self.login.as_ref().map_or_else(|| "unknown".to_owned(), |l| l.person.clone());
        self.ctx
            .sessions
            .store
            .audit(NewAudit {
                actor,
                action: AuditAction::ForwardingRefused,
                session_id: None,
                client_addr: Some(self.peer.to_string()),
                detail: format!("{what} refused: forwarding is not allowed"),
            })
            .await?;
        Ok(())
    }
}
