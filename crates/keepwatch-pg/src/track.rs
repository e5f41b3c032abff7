//! The tracker: both directions' messages, in the order they pass, turned into events.

mod budget;
mod capture;
mod copy;
mod pipeline;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::Limits;
use crate::event::{
    CommandTag, EncryptionRequest, Outcome, Parameter, PgEvent, QueryKind, Sent, Statement,
    Unfollowed, hex,
};
use crate::frame::{Frame, FrameReader, ParseMessageError, Side};
use crate::message::{BackendMessage, Bind, FrontendMessage, Target, TransactionStatus};
use budget::{Budget, Held};
use capture::Capture;
pub use capture::MAX_CAPTURED_BYTES;
use copy::CopyState;
use pipeline::Step;

/// Why the tracker cannot go on: the caller must close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    #[error(transparent)]
    Message(#[from] ParseMessageError),
    #[error("more than {limit} protocol steps sent without an answer")]
    TooManyPending { limit: usize },
    #[error("more than {limit} prepared statements")]
    TooManyStatements { limit: usize },
    #[error("more than {limit} open portals")]
    TooManyPortals { limit: usize },
    #[error("statement texts and parameters held for the session exceed {limit} bytes")]
    TooMuchHeld { limit: usize },
}

/// Follows one PostgreSQL connection from the middle. See the crate docs for what it reports
/// and what it does with what it cannot follow.
#[derive(Debug)]
pub struct PgTracker {
    front: FrameReader,
    back: FrameReader,
    session: Session,
    failed: Option<TrackError>,
}

impl PgTracker {
    pub fn new(limits: Limits) -> Self {
        PgTracker {
            front: FrameReader::new(Side::Frontend, limits.max_message_len),
            back: FrameReader::new(Side::Backend, limits.max_message_len),
            session: Session::new(limits),
            failed: None,
        }
    }

    /// A tracker for a connection whose startup and login are done (a gateway that logs
    /// into the target itself): both streams start with typed messages, and the session is
    /// ready for queries.
    pub fn after_login(limits: Limits) -> Self {
        let mut t = PgTracker::new(limits);
        t.front.start_typed();
        t.session.ready = true;
        t
    }

    /// Whether the server owes the client nothing: no step unanswered, no copy under way,
    /// nothing being discarded after an error. Only then may a gateway answer the client in
    /// the server's stead without putting answers out of order.
    pub fn is_idle(&self) -> bool {
        let s = &self.session;
        s.steps.is_empty() && s.copy.is_none() && !s.discarding && self.front.buffered() == 0
    }

    /// Keeps the first `rows` rows of each statement's result, reported as [`PgEvent::Rows`]
    /// (0, the default, keeps none).
    pub fn capture_rows(&mut self, rows: usize) {
        self.session.capture_limit = rows;
    }

    /// The transaction status the server last reported.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.session.status
    }

    /// Numbers a statement the gateway answers itself (refused, never sent): the `seq` the
    /// next [`PgEvent::Sent`] would have had.
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.session.next_seq;
        self.session.next_seq += 1;
        seq
    }

    /// Bytes the client sent that do not yet make a whole message (held by the tracker).
    pub fn frontend_buffered(&self) -> usize {
        self.front.buffered()
    }

    /// Bytes the server sent that do not yet make a whole message.
    pub fn backend_buffered(&self) -> usize {
        self.back.buffered()
    }

    /// Feeds bytes the client sent, at `now_us` (any clock in microseconds, the same for
    /// both directions), and appends what they complete to `events`.
    ///
    /// # Errors
    ///
    /// A message is malformed or a bound is exceeded; see [`TrackError`]. The connection must
    /// be closed: every later call returns the same error.
    pub fn from_frontend(
        &mut self,
        data: &[u8],
        now_us: u64,
        events: &mut Vec<PgEvent>,
    ) -> Result<(), TrackError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.front.push(data);
        let result = loop {
            let frame = match self.front.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.into()),
            };
            let message = match FrontendMessage::decode(&frame) {
                Ok(message) => message,
                Err(e) => break Err(e.into()),
            };
            let request = match message {
                FrontendMessage::SslRequest => Some(EncryptionRequest::Ssl),
                FrontendMessage::GssEncRequest => Some(EncryptionRequest::GssEnc),
                _ => None,
            };
            if let Some(request) = request {
                self.back.expect_negotiation_reply();
                self.session.encryption = Some(request);
                continue;
            }
            if let Err(e) = self.session.on_frontend(message, &frame, now_us, events) {
                break Err(e);
            }
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// Feeds bytes the server sent; as [`PgTracker::from_frontend`].
    ///
    /// # Errors
    ///
    /// As [`PgTracker::from_frontend`].
    pub fn from_backend(
        &mut self,
        data: &[u8],
        now_us: u64,
        events: &mut Vec<PgEvent>,
    ) -> Result<(), TrackError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.back.push(data);
        let result: Result<(), TrackError> = loop {
            let frame = match self.back.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.into()),
            };
            match BackendMessage::decode(&frame) {
                Ok(message) => self.session.on_backend(message, &frame, now_us, events),
                Err(e) => break Err(e.into()),
            }
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// The connection ended: reports what was still waiting (statements unanswered, a copy
    /// in progress, statements waiting for their transaction status, a partial message).
    pub fn finish(&mut self, now_us: u64, events: &mut Vec<PgEvent>) {
        for reader in [&self.front, &self.back] {
            if reader.buffered() > 0 {
                let partial = reader.partial();
                events.push(PgEvent::Unfollowed(Unfollowed {
                    side: reader.side(),
                    offset: reader.offset(),
                    tag: None,
                    reason: "connection ended inside a message",
                    len: partial.len(),
                    bytes: partial[..partial.len().min(self.session.limits.max_raw_len)].to_vec(),
                }));
            }
        }
        self.session.finish(now_us, events);
    }

    /// Bytes held in partial messages (at most one per direction, plus what one call fed).
    pub fn buffered(&self) -> usize {
        self.front.buffered() + self.back.buffered()
    }

    /// Bytes of statement texts and parameters held for steps not yet answered, prepared
    /// statements and portals (bounded by [`Limits::max_held_bytes`]).
    pub fn held_bytes(&self) -> usize {
        self.session.budget.used()
    }
}

#[derive(Debug)]
struct Session {
    limits: Limits,
    budget: Budget,
    /// Set by the first ReadyForQuery.
    ready: bool,
    encryption: Option<EncryptionRequest>,
    steps: VecDeque<Step>,
    /// Prepared statements as the client defined them (the unnamed one is `""`).
    statements: HashMap<String, Held>,
    portals: HashMap<String, Held>,
    /// After an error in the extended protocol the server discards every message up to the
    /// next Sync; set when that Sync has not been sent yet.
    discarding: bool,
    /// What the client defined while discarding (never defined on the server), so that a
    /// skipped Execute is reported with the text the client meant. Cleared at Sync.
    intended: HashMap<(Target, String), Held>,
    copy: Option<CopyState>,
    /// Statements waiting for the ReadyForQuery that gives their transaction status.
    held: Vec<Statement>,
    /// The `seq` of the next statement sent.
    next_seq: u64,
    /// The transaction status of the last ReadyForQuery.
    status: TransactionStatus,
    /// Rows of each result to keep (0: none), and those being kept for the front statement.
    capture_limit: usize,
    capture: Option<Capture>,
}

impl Session {
    fn new(limits: Limits) -> Self {
        Session {
            budget: Budget::new(limits.max_held_bytes),
            limits,
            ready: false,
            encryption: None,
            steps: VecDeque::new(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            discarding: false,
            intended: HashMap::new(),
            copy: None,
            held: Vec::new(),
            next_seq: 0,
            status: TransactionStatus::Idle,
            capture_limit: 0,
            capture: None,
        }
    }

    fn on_frontend(
        &mut self,
        message: FrontendMessage<'_>,
        frame: &Frame<'_>,
        now: u64,
        events: &mut Vec<PgEvent>,
    ) -> Result<(), TrackError> {
        use FrontendMessage as M;
        if !matches!(
            message,
            M::CopyData(_) | M::CopyDone | M::CopyFail { .. } | M::Sync | M::Flush
        ) {
            // The client has moved on from a copy the server already ended.
            self.end_copy_if_server_done(now, events);
        }
        match message {
            M::SslRequest | M::GssEncRequest => {}
            M::CancelRequest { pid, secret_key } => {
                events.push(PgEvent::CancelRequest { pid, secret_key: secret_key.to_vec() });
            }
            M::Startup { major, minor, parameters } => {
                let parameters =
                    parameters.into_iter().map(|(n, v)| (n.into_owned(), v.into_owned())).collect();
                events.push(PgEvent::Startup { major, minor, parameters });
            }
            // Passwords and SCRAM proofs: deliberately not reported.
            M::Password(_) => {}
            M::Query { text } => {
                let sql = self.budget.hold_text(&text, self.limits.max_text_len, 0)?;
                let seq = self.sent(QueryKind::Simple, &sql, events);
                if self.discarding {
                    self.push_statement(
                        statement(seq, QueryKind::Simple, &sql, now, now, Outcome::Skipped),
                        events,
                    );
                } else {
                    self.push_step(Step::Query { sql, next_start_us: now, seq })?;
                }
            }
            M::Parse { statement, text, .. } if !self.discarding => {
                let sql = self.budget.hold_text(&text, self.limits.max_text_len, 0)?;
                let entry = self.budget.rehold(&sql, statement.len())?;
                let limit = self.limits.max_prepared;
                if self.statements.len() >= limit && !self.statements.contains_key(&*statement) {
                    return Err(TrackError::TooManyStatements { limit });
                }
                let name = statement.into_owned();
                let replaced = self.statements.insert(name.clone(), entry);
                self.push_step(Step::Parse { name, sql, replaced, sent_us: now })?;
            }
            M::Bind(bind) if !self.discarding => self.on_bind(&bind, now)?,
            M::Execute { portal, .. } => {
                let intended = self.intended.get(&(Target::Portal, portal.to_string()));
                let sql = match intended.or_else(|| self.portals.get(&*portal)) {
                    Some(held) => self.budget.rehold(held, 0)?,
                    None => self.budget.hold_text("", 0, 0)?,
                };
                let seq = self.sent(QueryKind::Extended, &sql, events);
                if self.discarding {
                    let s = statement(seq, QueryKind::Extended, &sql, now, now, Outcome::Skipped);
                    self.push_statement(s, events);
                } else {
                    self.push_step(Step::Execute { sql, sent_us: now, seq })?;
                }
            }
            M::Describe { target, name } if !self.discarding => {
                self.push_step(Step::Describe { target, name: name.into_owned(), sent_us: now })?;
            }
            M::Close { target, name } if !self.discarding => {
                let removed = match target {
                    Target::Statement => self.statements.remove(&*name),
                    Target::Portal => self.portals.remove(&*name),
                };
                let name = name.into_owned();
                self.push_step(Step::Close { target, name, removed, sent_us: now })?;
            }
            M::Parse { statement, text, .. } => {
                // Discarded by the server until the next Sync: it defines nothing, but a
                // skipped Execute is reported with what the client meant.
                let sql =
                    self.budget.hold_text(&text, self.limits.max_text_len, statement.len())?;
                self.intend(Target::Statement, statement.into_owned(), sql)?;
            }
            M::Bind(bind) => {
                let sql = self.resolve_bind(&bind, bind.portal.len())?;
                self.intend(Target::Portal, bind.portal.into_owned(), sql)?;
            }
            M::Describe { .. } | M::Close { .. } => {}
            M::Sync => {
                // The server ignores Sync during COPY FROM STDIN (libpq sends one early).
                if !self.copy.as_ref().is_some_and(CopyState::awaits_client) {
                    self.discarding = false;
                    self.intended.clear();
                    self.push_step(Step::Sync)?;
                }
            }
            M::Flush => {}
            M::Terminate => events.push(PgEvent::Terminate),
            M::CopyData(data) => match &mut self.copy {
                Some(copy) if copy.awaits_client() => copy.add(data),
                _ => events.push(self.unfollowed(frame, "copy data outside a copy")),
            },
            M::CopyDone | M::CopyFail { .. } => {
                let failure = match &message {
                    M::CopyFail { message } => Some(message.to_string()),
                    _ => None,
                };
                match &mut self.copy {
                    Some(copy) if copy.awaits_client() => {
                        copy.client_done(failure);
                        self.end_copy_if_server_done(now, events);
                    }
                    _ => events.push(self.unfollowed(frame, "copy end outside a copy")),
                }
            }
            M::FunctionCall(_) => {
                events.push(self.unfollowed(frame, "fast-path function calls are not decoded"));
                if !self.discarding {
                    self.push_step(Step::FunctionCall)?;
                }
            }
            M::Unknown { .. } => events.push(self.unfollowed(frame, "unknown message type")),
        }
        Ok(())
    }

    fn intend(&mut self, target: Target, name: String, sql: Held) -> Result<(), TrackError> {
        let limit = self.limits.max_prepared;
        if self.intended.len() >= limit {
            return Err(TrackError::TooManyStatements { limit });
        }
        self.intended.insert((target, name), sql);
        Ok(())
    }

    /// The bound statement's text (as the client sees it) and the rendered parameters.
    fn resolve_bind(&self, bind: &Bind<'_>, extra: usize) -> Result<Held, TrackError> {
        let max = self.limits.max_parameter_len;
        let parameters: Arc<[Parameter]> = bind
            .parameters
            .iter()
            .enumerate()
            .map(|(i, value)| render_parameter(*value, bind.is_binary(i), max))
            .collect();
        let intended = self.intended.get(&(Target::Statement, bind.statement.to_string()));
        let (text, text_len) = match intended.or_else(|| self.statements.get(&*bind.statement)) {
            Some(held) => (held.text.clone(), held.text_len),
            None => (Arc::from(""), 0),
        };
        self.budget.hold(text, text_len, parameters, extra)
    }

    fn on_bind(&mut self, bind: &Bind<'_>, now: u64) -> Result<(), TrackError> {
        let sql = self.resolve_bind(bind, 0)?;
        let entry = self.budget.rehold(&sql, bind.portal.len())?;
        let limit = self.limits.max_prepared;
        if self.portals.len() >= limit && !self.portals.contains_key(&*bind.portal) {
            return Err(TrackError::TooManyPortals { limit });
        }
        let portal = bind.portal.clone().into_owned();
        let replaced = self.portals.insert(portal.clone(), entry);
        self.push_step(Step::Bind { portal, sql, replaced, sent_us: now })
    }

    fn on_backend(
        &mut self,
        message: BackendMessage<'_>,
        frame: &Frame<'_>,
        now: u64,
        events: &mut Vec<PgEvent>,
    ) {
        use BackendMessage as M;
        match message {
            M::EncryptionReply { accepted } => {
                let request = self.encryption.take().unwrap_or(EncryptionRequest::Ssl);
                events.push(PgEvent::Encryption { request, accepted });
            }
            M::Authentication(request) => events.push(PgEvent::Authentication(request)),
            M::ParameterStatus { name, value } => events.push(PgEvent::ParameterStatus {
                name: name.into_owned(),
                value: value.into_owned(),
            }),
            M::BackendKeyData { pid, secret_key } => {
                events.push(PgEvent::BackendKeyData { pid, secret_key: secret_key.to_vec() });
            }
            M::NegotiateProtocolVersion { newest_minor, unrecognized } => {
                let unrecognized = unrecognized.into_iter().map(|o| o.into_owned()).collect();
                events.push(PgEvent::NegotiateProtocolVersion { newest_minor, unrecognized });
            }
            M::NoticeResponse(notice) => events.push(PgEvent::Notice(notice)),
            M::NotificationResponse { pid, channel, payload } => {
                events.push(PgEvent::Notification {
                    pid,
                    channel: channel.into_owned(),
                    payload: payload.into_owned(),
                });
            }
            M::ErrorResponse(error) => self.on_error(error, now, events),
            M::ReadyForQuery(status) => self.on_ready(status, frame, now, events),
            M::ParseComplete => match self.steps.front() {
                Some(Step::Parse { .. }) => drop(self.steps.pop_front()),
                _ => events.push(self.unfollowed(frame, "ParseComplete with no Parse pending")),
            },
            M::BindComplete => match self.steps.front() {
                Some(Step::Bind { .. }) => drop(self.steps.pop_front()),
                _ => events.push(self.unfollowed(frame, "BindComplete with no Bind pending")),
            },
            M::CloseComplete => match self.steps.front() {
                Some(Step::Close { .. }) => drop(self.steps.pop_front()),
                _ => events.push(self.unfollowed(frame, "CloseComplete with no Close pending")),
            },
            M::ParameterDescription(_) => match self.steps.front() {
                Some(Step::Describe { target: Target::Statement, .. }) => {}
                _ => events
                    .push(self.unfollowed(frame, "ParameterDescription with no Describe pending")),
            },
            M::RowDescription(_) | M::NoData => match self.steps.front() {
                Some(Step::Describe { .. }) => drop(self.steps.pop_front()),
                Some(Step::Query { .. } | Step::Execute { .. })
                    if matches!(message, M::RowDescription(_)) =>
                {
                    if self.capture_limit > 0 {
                        self.capture = Some(Capture::described(frame));
                    }
                }
                _ => {
                    events.push(self.unfollowed(frame, "row description with no statement pending"))
                }
            },
            M::DataRow(_) => match self.steps.front() {
                Some(Step::Query { .. } | Step::Execute { .. }) => {
                    if self.capture_limit > 0 {
                        let max = self.limits.max_parameter_len;
                        let capture = self.capture.get_or_insert_with(Capture::default);
                        capture.row(frame, self.capture_limit, max);
                    }
                }
                _ => events.push(self.unfollowed(frame, "DataRow with no statement pending")),
            },
            M::CommandComplete { tag } => {
                let tag = CommandTag::parse(&tag);
                if !self.answers_statement() {
                    events
                        .push(self.unfollowed(frame, "CommandComplete with no statement pending"));
                    return;
                }
                self.end_copy_by_server(tag.rows, now, events);
                self.complete_statement(Outcome::Complete(tag), now, events);
            }
            M::EmptyQueryResponse | M::PortalSuspended => {
                let outcome = match message {
                    M::EmptyQueryResponse => Outcome::EmptyQuery,
                    _ => Outcome::Suspended,
                };
                if self.answers_statement() {
                    self.complete_statement(outcome, now, events);
                } else {
                    events.push(
                        self.unfollowed(frame, "statement outcome with no statement pending"),
                    );
                }
            }
            M::CopyInResponse | M::CopyOutResponse | M::CopyBothResponse => {
                if !self.answers_statement() {
                    events.push(self.unfollowed(frame, "copy response with no statement pending"));
                    return;
                }
                if let Some(copy) = self.copy.take() {
                    events.push(PgEvent::Copy(copy.into_event(now)));
                }
                self.copy = Some(match message {
                    M::CopyInResponse => CopyState::new(crate::CopyDirection::In, now),
                    M::CopyOutResponse => CopyState::new(crate::CopyDirection::Out, now),
                    _ => CopyState::new(crate::CopyDirection::Both, now),
                });
                if !matches!(message, M::CopyOutResponse) {
                    // Syncs sent right behind the COPY reach the server in copy mode, which
                    // ignores them.
                    while matches!(self.steps.get(1), Some(Step::Sync)) {
                        self.steps.remove(1);
                    }
                }
            }
            M::CopyData(data) => match &mut self.copy {
                Some(copy) if copy.awaits_server() => copy.add(data),
                _ => events.push(self.unfollowed(frame, "copy data outside a copy")),
            },
            M::CopyDone => match &self.copy {
                Some(copy) if copy.awaits_server() => {}
                _ => events.push(self.unfollowed(frame, "copy end outside a copy")),
            },
            M::FunctionCallResponse(_) => match self.steps.front() {
                Some(Step::FunctionCall) => {}
                _ => events.push(self.unfollowed(frame, "function result with no call pending")),
            },
            M::Unknown { .. } => events.push(self.unfollowed(frame, "unknown message type")),
        }
    }

    /// Numbers a statement leaving the client and reports it.
    pub(super) fn sent(&mut self, kind: QueryKind, sql: &Held, events: &mut Vec<PgEvent>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        events.push(PgEvent::Sent(Sent {
            seq,
            kind,
            text: sql.text.clone(),
            parameters: sql.parameters.clone(),
        }));
        seq
    }

    fn answers_statement(&self) -> bool {
        matches!(self.steps.front(), Some(Step::Query { .. } | Step::Execute { .. }))
    }

    /// The front step (a Query or an Execute) produced an outcome.
    fn complete_statement(&mut self, outcome: Outcome, now: u64, events: &mut Vec<PgEvent>) {
        self.flush_capture(events);
        match self.steps.front_mut() {
            Some(Step::Query { sql, next_start_us, seq }) => {
                let s = statement(*seq, QueryKind::Simple, sql, *next_start_us, now, outcome);
                *next_start_us = now;
                self.push_statement(s, events);
            }
            Some(Step::Execute { sql, sent_us, seq }) => {
                let s = statement(*seq, QueryKind::Extended, sql, *sent_us, now, outcome);
                self.steps.pop_front();
                self.push_statement(s, events);
            }
            _ => {}
        }
    }

    /// Reports the rows kept for the statement at the front, which is ending.
    fn flush_capture(&mut self, events: &mut Vec<PgEvent>) {
        let seq = match self.steps.front() {
            Some(Step::Query { seq, .. } | Step::Execute { seq, .. }) => Some(*seq),
            _ => None,
        };
        if let Some(rows) = self.capture.take().zip(seq).and_then(|(c, seq)| c.into_rows(seq)) {
            events.push(PgEvent::Rows(rows));
        }
    }

    fn end_copy_by_server(&mut self, rows: Option<u64>, now: u64, events: &mut Vec<PgEvent>) {
        if let Some(copy) = &mut self.copy
            && !copy.is_server_done()
        {
            copy.server_done(rows, now);
            self.end_copy_if_server_done(now, events);
        }
    }

    /// Reports the copy once both sides are done with it.
    fn end_copy_if_server_done(&mut self, now: u64, events: &mut Vec<PgEvent>) {
        if self.copy.as_ref().is_some_and(|c| c.is_server_done() && !c.awaits_client())
            && let Some(copy) = self.copy.take()
        {
            events.push(PgEvent::Copy(copy.into_event(now)));
        }
    }

    fn push_step(&mut self, step: Step) -> Result<(), TrackError> {
        let limit = self.limits.max_pending;
        if self.steps.len() >= limit {
            return Err(TrackError::TooManyPending { limit });
        }
        self.steps.push_back(step);
        Ok(())
    }

    fn push_statement(&mut self, statement: Statement, events: &mut Vec<PgEvent>) {
        if self.held.len() >= self.limits.max_pending {
            self.flush_held(None, events);
        }
        self.held.push(statement);
    }

    fn flush_held(&mut self, status: Option<TransactionStatus>, events: &mut Vec<PgEvent>) {
        for mut s in self.held.drain(..) {
            s.transaction = status;
            events.push(PgEvent::Statement(s));
        }
    }

    fn finish(&mut self, now: u64, events: &mut Vec<PgEvent>) {
        while let Some(step) = self.steps.pop_front() {
            let s = match step {
                Step::Execute { sql, sent_us, seq } => {
                    statement(seq, QueryKind::Extended, &sql, sent_us, now, Outcome::Unanswered)
                }
                Step::Query { sql, next_start_us, seq } => {
                    statement(seq, QueryKind::Simple, &sql, next_start_us, now, Outcome::Unanswered)
                }
                _ => continue,
            };
            self.push_statement(s, events);
        }
        if let Some(copy) = self.copy.take() {
            events.push(PgEvent::Copy(copy.into_event(now)));
        }
        self.flush_held(None, events);
    }

    fn unfollowed(&self, frame: &Frame<'_>, reason: &'static str) -> PgEvent {
        let keep = frame.body.len().min(self.limits.max_raw_len);
        PgEvent::Unfollowed(Unfollowed {
            side: frame.side,
            offset: frame.offset,
            tag: frame.tag,
            reason,
            len: frame.body.len(),
            bytes: frame.body[..keep].to_vec(),
        })
    }
}

fn statement(
    seq: u64,
    kind: QueryKind,
    sql: &Held,
    started_us: u64,
    ended_us: u64,
    outcome: Outcome,
) -> Statement {
    Statement {
        seq,
        kind,
        text: sql.text.clone(),
        text_len: sql.text_len,
        parameters: sql.parameters.clone(),
        started_us,
        ended_us,
        outcome,
        transaction: None,
    }
}

fn render_parameter(value: Option<&[u8]>, binary: bool, max: usize) -> Parameter {
    let Some(value) = value else { return Parameter::Null };
    if binary {
        let shown = &value[..value.len().min(max / 2)];
        return Parameter::Binary { hex: hex(shown), len: value.len() };
    }
    let text = String::from_utf8_lossy(&value[..value.len().min(max)]);
    Parameter::Text { text: cut(&text, max).to_owned(), len: value.len() }
}

/// The longest prefix of `text` that is at most `max` bytes and ends on a char boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
