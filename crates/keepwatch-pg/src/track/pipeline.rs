//! The steps the client sent and the server has yet to answer, in order: how errors make the
//! server skip to the next Sync, and how ReadyForQuery closes a round.

use std::collections::HashMap;
use std::sync::Arc;

use super::budget::Held;
use super::{Session, statement};
use crate::event::{Outcome, PgEvent, QueryKind, Statement};
use crate::frame::Frame;
use crate::message::{ServerMessage, Target, TransactionStatus};

/// One step the client sent that the server has yet to answer, in order.
#[derive(Debug)]
pub(super) enum Step {
    /// A simple Query: answered by one outcome per statement, then ReadyForQuery.
    Query {
        sql: Held,
        next_start_us: u64,
        seq: u64,
    },
    /// `replaced`: what the name meant before, put back if the Parse fails or is skipped.
    Parse {
        name: String,
        sql: Held,
        replaced: Option<Held>,
        sent_us: u64,
    },
    Bind {
        portal: String,
        sql: Held,
        replaced: Option<Held>,
        sent_us: u64,
    },
    Describe {
        target: Target,
        name: String,
        sent_us: u64,
    },
    /// `removed`: put back if the Close fails or is skipped.
    Close {
        target: Target,
        name: String,
        removed: Option<Held>,
        sent_us: u64,
    },
    Execute {
        sql: Held,
        sent_us: u64,
        seq: u64,
    },
    Sync,
    FunctionCall,
}

impl Session {
    pub(super) fn on_error(&mut self, error: ServerMessage, now: u64, events: &mut Vec<PgEvent>) {
        if !self.ready {
            events.push(PgEvent::StartupError(error));
            return;
        }
        self.end_copy_by_server(None, now, events);
        self.flush_capture(events);
        match self.steps.pop_front() {
            None => events.push(PgEvent::UnsolicitedError(error)),
            Some(step @ (Step::Sync | Step::FunctionCall)) => {
                self.steps.push_front(step);
                events.push(PgEvent::UnsolicitedError(error));
            }
            Some(Step::Query { sql, next_start_us, seq }) => {
                let s = statement(
                    seq,
                    QueryKind::Simple,
                    &sql,
                    next_start_us,
                    now,
                    Outcome::Error(error),
                );
                self.push_statement(s, events);
                // The rest of that query string is not run; ReadyForQuery follows.
                self.steps.push_front(Step::Query { sql, next_start_us: now, seq });
            }
            Some(Step::Execute { sql, sent_us, seq }) => {
                let s =
                    statement(seq, QueryKind::Extended, &sql, sent_us, now, Outcome::Error(error));
                self.push_statement(s, events);
                self.skip_until_sync(now, events);
            }
            Some(step) => {
                // A Parse, Bind, Describe or Close failed. The statement it was preparing is
                // the next Execute before a Sync; without one, the failed step is reported.
                let mut failed = vec![step];
                let mut execute = None;
                while let Some(next) = self.steps.front() {
                    match next {
                        Step::Parse { .. }
                        | Step::Bind { .. }
                        | Step::Describe { .. }
                        | Step::Close { .. } => {
                            failed.extend(self.steps.pop_front());
                        }
                        Step::Execute { .. } => {
                            execute = self.steps.pop_front();
                            break;
                        }
                        _ => break,
                    }
                }
                let outcome = Outcome::Error(error);
                let s = match execute {
                    Some(Step::Execute { sql, sent_us, seq }) => {
                        statement(seq, QueryKind::Extended, &sql, sent_us, now, outcome)
                    }
                    _ => self.failed_step_statement(&failed[0], now, outcome, events),
                };
                self.push_statement(s, events);
                for step in failed.into_iter().rev() {
                    self.undo(step);
                }
                self.skip_until_sync(now, events);
            }
        }
    }

    /// The statement a failed step with no Execute behind it stands for; it was never sent
    /// as a statement, so it is numbered (and reported sent) now.
    fn failed_step_statement(
        &mut self,
        step: &Step,
        now: u64,
        outcome: Outcome,
        events: &mut Vec<PgEvent>,
    ) -> Statement {
        let empty = Statement {
            seq: 0,
            kind: QueryKind::Extended,
            text: Arc::from(""),
            text_len: 0,
            parameters: Arc::from([]),
            started_us: now,
            ended_us: now,
            outcome: Outcome::Unanswered,
            transaction: None,
        };
        let (sql, sent_us) = match step {
            Step::Parse { sql, sent_us, .. } | Step::Bind { sql, sent_us, .. } => {
                (Some(sql), *sent_us)
            }
            Step::Describe { target, name, sent_us } => {
                let map = match target {
                    Target::Statement => &self.statements,
                    Target::Portal => &self.portals,
                };
                (map.get(name), *sent_us)
            }
            Step::Close { removed, sent_us, .. } => (removed.as_ref(), *sent_us),
            _ => (None, now),
        };
        let (text, text_len, parameters) = match sql {
            Some(h) => (h.text.clone(), h.text_len, h.parameters.clone()),
            None => (Arc::from(""), 0, Arc::from([])),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let sent = crate::event::Sent {
            seq,
            kind: QueryKind::Extended,
            text: text.clone(),
            parameters: parameters.clone(),
        };
        events.push(PgEvent::Sent(sent));
        Statement { seq, text, text_len, parameters, started_us: sent_us, outcome, ..empty }
    }

    /// After an error in the extended protocol: the server skips everything up to the next
    /// Sync. Statements among them are reported as skipped; definitions are undone.
    fn skip_until_sync(&mut self, now: u64, events: &mut Vec<PgEvent>) {
        let mut undone = Vec::new();
        while let Some(step) = self.steps.front() {
            if matches!(step, Step::Sync) {
                break;
            }
            match self.steps.pop_front() {
                Some(Step::Execute { sql, sent_us, seq }) => {
                    let s =
                        statement(seq, QueryKind::Extended, &sql, sent_us, now, Outcome::Skipped);
                    self.push_statement(s, events);
                }
                Some(Step::Query { sql, next_start_us, seq }) => {
                    let s = statement(
                        seq,
                        QueryKind::Simple,
                        &sql,
                        next_start_us,
                        now,
                        Outcome::Skipped,
                    );
                    self.push_statement(s, events);
                }
                Some(other) => undone.push(other),
                None => {}
            }
        }
        if self.steps.is_empty() {
            self.discarding = true;
        }
        for step in undone.into_iter().rev() {
            self.undo(step);
        }
    }

    /// Puts back what a failed or skipped step changed in the client's definitions.
    fn undo(&mut self, step: Step) {
        match step {
            Step::Parse { name, replaced, .. } => restore(&mut self.statements, name, replaced),
            Step::Bind { portal, replaced, .. } => restore(&mut self.portals, portal, replaced),
            Step::Close { target, name, removed: Some(removed), .. } => {
                let map = match target {
                    Target::Statement => &mut self.statements,
                    Target::Portal => &mut self.portals,
                };
                map.insert(name, removed);
            }
            _ => {}
        }
    }

    pub(super) fn on_ready(
        &mut self,
        status: TransactionStatus,
        frame: &Frame<'_>,
        now: u64,
        events: &mut Vec<PgEvent>,
    ) {
        if !self.ready {
            // The end of startup, not the answer to anything the client sent.
            self.ready = true;
            return;
        }
        match self.steps.front() {
            Some(Step::Sync | Step::Query { .. } | Step::FunctionCall) => {
                self.steps.pop_front();
            }
            Some(_) => {
                events.push(self.unfollowed(frame, "ReadyForQuery with earlier steps unanswered"));
                // The server is past them: drop them up to the Sync or Query it answers.
                while let Some(step) = self.steps.pop_front() {
                    match step {
                        Step::Execute { sql, sent_us, seq } => {
                            let s = statement(
                                seq,
                                QueryKind::Extended,
                                &sql,
                                sent_us,
                                now,
                                Outcome::Unanswered,
                            );
                            self.push_statement(s, events);
                        }
                        Step::Query { sql, next_start_us, seq } => {
                            let s = statement(
                                seq,
                                QueryKind::Simple,
                                &sql,
                                next_start_us,
                                now,
                                Outcome::Unanswered,
                            );
                            self.push_statement(s, events);
                            break;
                        }
                        Step::Sync | Step::FunctionCall => break,
                        _ => {}
                    }
                }
            }
            None => events.push(self.unfollowed(frame, "ReadyForQuery with nothing pending")),
        }
        self.discarding = false;
        self.intended.clear();
        self.status = status;
        self.flush_held(Some(status), events);
        if status == TransactionStatus::Idle && self.steps.is_empty() {
            // Portals end with their transaction; with nothing in flight none is left.
            self.portals.clear();
        }
    }
}

fn restore(map: &mut HashMap<String, Held>, name: String, previous: Option<Held>) {
    match previous {
        Some(previous) => {
            map.insert(name, previous);
        }
        None => {
            map.remove(&name);
        }
    }
}
