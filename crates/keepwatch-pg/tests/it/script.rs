//! Conversations built message by message with `pgwire`'s encoders (an implementation
//! independent of the decoder under test), fed to a tracker whole and one byte at a time.

use bytes::{Bytes, BytesMut};
use keepwatch_pg::{Limits, PgEvent, PgTracker, Side, TrackError};
use pgwire::messages::Message;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyInResponse, CopyOutResponse};
use pgwire::messages::data::{DataRow, NoData, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    PortalSuspended, Sync,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ErrorResponse, NoticeResponse, NotificationResponse,
    ReadyForQuery, TransactionStatus,
};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{
    Authentication, BackendKeyData, ParameterStatus, SecretKey, Startup,
};

/// Who sent what, and when (microseconds).
#[derive(Default, Clone)]
pub(crate) struct Script {
    pub(crate) steps: Vec<(Side, Vec<u8>, u64)>,
    now: u64,
    /// Result rows the tracker keeps (`PgTracker::capture_rows`); 0 keeps none.
    capture: usize,
}

fn encode(m: &impl Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    m.encode(&mut buf).expect("pgwire encodes");
    buf.to_vec()
}

impl Script {
    pub(crate) fn new() -> Self {
        Script::default()
    }

    /// Time passes: later steps happen `us` later.
    pub(crate) fn wait(mut self, us: u64) -> Self {
        self.now += us;
        self
    }

    pub(crate) fn raw(mut self, side: Side, bytes: &[u8]) -> Self {
        self.now += 1;
        self.steps.push((side, bytes.to_vec(), self.now));
        self
    }

    pub(crate) fn fe(self, m: impl Message) -> Self {
        self.raw(Side::Frontend, &encode(&m))
    }

    pub(crate) fn be(self, m: impl Message) -> Self {
        self.raw(Side::Backend, &encode(&m))
    }

    /// A startup with trust authentication, up to the first ReadyForQuery.
    pub(crate) fn startup(self) -> Self {
        let mut startup = Startup::default();
        startup.protocol_number_minor = 0;
        startup.parameters.insert("user".into(), "alice".into());
        startup.parameters.insert("database".into(), "app".into());
        self.fe(startup)
            .be(Authentication::Ok)
            .be(ParameterStatus::new("server_version".into(), "15.20".into()))
            .be(BackendKeyData::new(4242, SecretKey::I32(0x01020304)))
            .be(ready(TransactionStatus::Idle))
    }

    pub(crate) fn query(self, text: &str) -> Self {
        self.fe(Query::new(text.into()))
    }

    pub(crate) fn parse(self, name: Option<&str>, text: &str) -> Self {
        self.fe(Parse::new(name.map(Into::into), text.into(), vec![]))
    }

    pub(crate) fn bind(
        self,
        statement: Option<&str>,
        formats: Vec<i16>,
        values: Vec<Option<&[u8]>>,
    ) -> Self {
        let values = values.into_iter().map(|v| v.map(Bytes::copy_from_slice)).collect();
        self.fe(Bind::new(None, statement.map(Into::into), formats, values, vec![]))
    }

    pub(crate) fn execute(self, max_rows: i32) -> Self {
        self.fe(Execute::new(None, max_rows))
    }

    pub(crate) fn sync(self) -> Self {
        self.fe(Sync::new())
    }

    pub(crate) fn describe_statement(self, name: Option<&str>) -> Self {
        self.fe(Describe::new(b'S', name.map(Into::into)))
    }

    pub(crate) fn close_statement(self, name: &str) -> Self {
        self.fe(Close::new(b'S', Some(name.into())))
    }

    pub(crate) fn copy_data(self, side: Side, data: &[u8]) -> Self {
        let m = CopyData::new(Bytes::copy_from_slice(data));
        match side {
            Side::Frontend => self.fe(m),
            Side::Backend => self.be(m),
        }
    }

    pub(crate) fn copy_done(self, side: Side) -> Self {
        match side {
            Side::Frontend => self.fe(CopyDone::new()),
            Side::Backend => self.be(CopyDone::new()),
        }
    }

    pub(crate) fn copy_fail(self, message: &str) -> Self {
        self.fe(CopyFail::new(message.into()))
    }

    pub(crate) fn copy_in(self) -> Self {
        self.be(CopyInResponse::new(0, 1, vec![0]))
    }

    pub(crate) fn copy_out(self) -> Self {
        self.be(CopyOutResponse::new(0, 1, vec![0]))
    }

    pub(crate) fn parse_complete(self) -> Self {
        self.be(ParseComplete::new())
    }

    pub(crate) fn bind_complete(self) -> Self {
        self.be(BindComplete::new())
    }

    pub(crate) fn close_complete(self) -> Self {
        self.be(CloseComplete::new())
    }

    pub(crate) fn no_data(self) -> Self {
        self.be(NoData::new())
    }

    pub(crate) fn rows(self, n: usize) -> Self {
        let mut s = self.be(RowDescription::new(vec![]));
        for _ in 0..n {
            s = s.be(DataRow::new(BytesMut::new(), 0));
        }
        s
    }

    /// The tracker runs keeping `rows` rows of each result.
    pub(crate) fn capturing(mut self, rows: usize) -> Self {
        self.capture = rows;
        self
    }

    /// A result with named text columns and these rows (`None` is NULL).
    pub(crate) fn table(self, columns: &[&str], rows: &[&[Option<&[u8]>]]) -> Self {
        use pgwire::messages::data::FieldDescription;
        let fields = columns
            .iter()
            .enumerate()
            .map(|(i, name)| FieldDescription::new((*name).into(), 0, i as i16 + 1, 25, -1, -1, 0))
            .collect();
        let mut s = self.be(RowDescription::new(fields));
        for row in rows {
            let mut data = BytesMut::new();
            for value in *row {
                match value {
                    None => data.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        data.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        data.extend_from_slice(v);
                    }
                }
            }
            s = s.be(DataRow::new(data, row.len() as i16));
        }
        s
    }

    pub(crate) fn data_rows(mut self, n: usize) -> Self {
        for _ in 0..n {
            self = self.be(DataRow::new(BytesMut::new(), 0));
        }
        self
    }

    pub(crate) fn suspended(self) -> Self {
        self.be(PortalSuspended::new())
    }

    pub(crate) fn complete(self, tag: &str) -> Self {
        self.be(CommandComplete::new(tag.into()))
    }

    pub(crate) fn empty_query(self) -> Self {
        self.be(EmptyQueryResponse::new())
    }

    pub(crate) fn error(self, code: &str, message: &str) -> Self {
        self.be(ErrorResponse::new(server_fields("ERROR", code, message)))
    }

    pub(crate) fn notice(self, code: &str, message: &str) -> Self {
        self.be(NoticeResponse::new(server_fields("NOTICE", code, message)))
    }

    pub(crate) fn notify(self, pid: i32, channel: &str, payload: &str) -> Self {
        self.be(NotificationResponse::new(pid, channel.into(), payload.into()))
    }

    pub(crate) fn ready(self, status: char) -> Self {
        let status = match status {
            'I' => TransactionStatus::Idle,
            'T' => TransactionStatus::Transaction,
            _ => TransactionStatus::Error,
        };
        self.be(ready(status))
    }

    /// This script followed by `other`'s steps, `other`'s times shifted to come after.
    pub(crate) fn steps_from(mut self, other: Script) -> Self {
        self.capture = self.capture.max(other.capture);
        let base = self.now;
        for (side, bytes, at) in other.steps {
            self.steps.push((side, bytes, base + at));
            self.now = base + at;
        }
        self
    }

    /// Feeds the script in the chunks it was written in.
    pub(crate) fn run(&self, limits: Limits) -> (Vec<PgEvent>, Option<TrackError>) {
        self.run_chunked(limits, usize::MAX)
    }

    /// Feeds every step `chunk` bytes at a time.
    pub(crate) fn run_chunked(
        &self,
        limits: Limits,
        chunk: usize,
    ) -> (Vec<PgEvent>, Option<TrackError>) {
        let mut tracker = PgTracker::new(limits);
        tracker.capture_rows(self.capture);
        let mut events = Vec::new();
        let mut end = 0;
        for (side, bytes, at) in &self.steps {
            for piece in bytes.chunks(chunk.max(1)) {
                let fed = match side {
                    Side::Frontend => tracker.from_frontend(piece, *at, &mut events),
                    Side::Backend => tracker.from_backend(piece, *at, &mut events),
                };
                if let Err(e) = fed {
                    return (events, Some(e));
                }
            }
            end = *at;
        }
        tracker.finish(end + 1, &mut events);
        (events, None)
    }
}

fn ready(status: TransactionStatus) -> ReadyForQuery {
    ReadyForQuery::new(status)
}

fn server_fields(severity: &str, code: &str, message: &str) -> Vec<(u8, String)> {
    vec![
        (b'S', severity.into()),
        (b'V', severity.into()),
        (b'C', code.into()),
        (b'M', message.into()),
    ]
}

/// Events one per line, statements and copies with their times.
pub(crate) fn render(events: &[PgEvent]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&e.to_string());
        match e {
            PgEvent::Statement(s) => out.push_str(&format!(" @{}..{}", s.started_us, s.ended_us)),
            PgEvent::Copy(c) => out.push_str(&format!(" @{}..{}", c.started_us, c.ended_us)),
            _ => {}
        }
        out.push('\n');
    }
    out
}
