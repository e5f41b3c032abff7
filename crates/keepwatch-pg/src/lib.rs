//! PostgreSQL connections seen from the middle (sans-IO): the wire protocol framed and
//! decoded both ways, statements tracked with their outcomes, and the authentication pieces a
//! gateway needs on each leg.
//!
//! # What it sees
//!
//! [`PgTracker`] is fed the bytes each side sent, in the order they pass through the gateway,
//! with a time in microseconds from the caller's clock ([`PgTracker::from_frontend`],
//! [`PgTracker::from_backend`], then [`PgTracker::finish`] when the connection ends). No IO,
//! no clock, no threads. It frames both streams ([`FrameReader`]: the frontend's untyped
//! startup-phase packets — StartupMessage, SSLRequest, GSSENCRequest, CancelRequest — then
//! typed messages; the backend's one-byte answer to an encryption request, then typed
//! messages) and decodes them ([`FrontendMessage`], [`BackendMessage`]). After an `S` or
//! `G` answer the caller must feed the decrypted streams: the tracker does not read TLS.
//!
//! # What it hands out
//!
//! [`PgEvent`]s, appended in the order they complete:
//!
//! - a [`Statement`] per statement: its text; for the extended protocol the text of the
//!   prepared statement the Execute's portal was bound from (named or unnamed, pipelined or
//!   not) and its parameters rendered ([`Parameter`]: text as UTF-8, binary as hex, NULL, each
//!   cut to a length); its kind; when it was sent and when its outcome came; its [`Outcome`]
//!   (command tag and row count, error with SQLSTATE, empty query, suspended portal, skipped,
//!   unanswered); and the transaction status of the ReadyForQuery that followed. Statement
//!   events are therefore held until that ReadyForQuery.
//!   - A simple Query holding several statements gives one event per CommandComplete (or
//!     error), in order, each carrying the whole query text: the server does not say where
//!     one statement ends. The second and later ones start when the previous one ended.
//!   - In the extended protocol an error makes the server discard everything up to the next
//!     Sync: the Executes (and Queries) in between are reported [`Outcome::Skipped`], and the
//!     statements and portals they would have defined are forgotten. A failed Parse, Bind,
//!     Describe or Close is reported on the Execute that followed it before Sync (the
//!     statement the client was running), or on its own when there is none.
//! - a [`CopyTransfer`] per COPY: direction, bytes of CopyData, their SHA-256, the row count of the
//!   COPY tag and the client's CopyFail message, once both sides are done with it;
//! - the session's other facts: startup parameters, encryption requests and answers, cancel
//!   requests, authentication requests (never what the client answers: passwords and proofs
//!   do not appear), ParameterStatus, BackendKeyData, notices, LISTEN/NOTIFY notifications,
//!   errors at startup and errors that answer nothing.
//!
//! # What it cannot follow
//!
//! Two kinds, handled differently:
//!
//! - **A stream it cannot parse** is an error ([`TrackError`]): a declared length under the
//!   header or over [`Limits::max_message_len`] (so a hostile peer cannot make it buffer
//!   without limit), a malformed body of a known message (a short field, a string without its
//!   zero byte, trailing bytes, a bad count or format code), a startup packet asking for a
//!   protocol other than 3.x, or a bound exceeded. The error names the direction, the message
//!   and the byte offset. **The caller must close the connection**: the next message boundary
//!   is unknown, or memory would grow without bound. Every later call returns the same error.
//! - **A well-framed message it cannot make sense of** (an unknown type, a fast-path function
//!   call, or a message where it makes no sense: a BindComplete with no Bind pending,
//!   CopyData outside a COPY, a ReadyForQuery with steps unanswered) becomes a
//!   [`PgEvent::Unfollowed`] carrying its first bytes ([`Limits::max_raw_len`]), its length
//!   and the reason, and tracking goes on. Nothing passes unreported; a partial message left
//!   when the connection ends is reported the same way.
//!
//! # Bounds
//!
//! Whatever the peers send, a tracker holds at most one partial message per direction (plus
//! what one call fed), at most [`Limits::max_pending`] unanswered steps, at most
//! [`Limits::max_prepared`] prepared statements and as many portals, and at most
//! [`Limits::max_held_bytes`] of statement texts and parameters (each text cut to
//! [`Limits::max_text_len`]). Going over a bound is an error, except for statements waiting
//! for their ReadyForQuery: past [`Limits::max_pending`] they are reported without a
//! transaction status. The defaults: 16 MiB messages, 10,000 steps, 10,000 statements, 1 MiB
//! texts, 64 MiB held.
//!
//! # Authentication
//!
//! - Towards the person: [`ScramVerifier`] (PostgreSQL's stored form,
//!   `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`) and [`ScramServer`], the
//!   server side of SCRAM-SHA-256 without channel binding, with a getrandom nonce and a
//!   constant-time proof check.
//! - Towards the target: [`TargetLogin`] answers whichever method the server asks for with
//!   the vaulted password: SCRAM-SHA-256 ([`ScramClient`], which refuses a server whose
//!   signature is wrong or that says Ok without giving one), md5 ([`md5_password`]) or
//!   cleartext.
//! - [`wire`] encodes the messages a gateway sends itself with `pgwire`'s codecs.
//!
//! # Read-only grants
//!
//! [`read_only`] decides whether SQL text only reads, for a grant that allows nothing else
//! (issue 12). Each statement is parsed with `sqlparser` (PostgreSQL dialect), never matched
//! with a regex, and every nested statement, clause, FROM item and function is walked: queries
//! without `FOR UPDATE`/`SELECT INTO`/data-modifying `WITH`, EXPLAIN of those, SHOW, settings
//! other than the role, transaction control and `COPY ... TO STDOUT` pass; a function passes
//! only if [`READ_ONLY_FUNCTIONS`] names it (unqualified or in `pg_catalog`). Anything else,
//! and text the parser cannot read, is a [`Refusal`] naming the statement kind or function.
//! The decision sees the text only, not the target's catalog: a view that calls a writing
//! function, or a same-named function a user put earlier on the search path, is beyond it.
//!
//! # Codecs
//!
//! Bodies are decoded here, not with `pgwire`'s `Message::decode`: its decoders (0.42) read fields
//! without checking the length left (`Bind` with a parameter longer than the frame, an
//! `ErrorResponse` without its final zero byte, `Authentication` shorter than its code all
//! panic in `bytes`), read past the frame they are given, and say nothing of where the fault
//! was. `pgwire` encodes (see [`wire`]), and the tests build every message they feed the
//! tracker with its encoders, so the two implementations check each other.

mod event;
mod frame;
mod login;
mod message;
mod options;
mod policy;
mod scram;
mod track;
pub mod wire;

pub use event::{
    CommandTag, CopyDirection, CopyTransfer, EncryptionRequest, Outcome, Parameter, PgEvent,
    QueryKind, Rows, Sent, Statement, Unfollowed,
};
pub use frame::{
    Frame, FrameMode, FrameReader, MAX_STARTUP_PACKET_LEN, ParseMessageError, Side, message_name,
};
pub use login::{LoginError, TargetLogin, md5_password};
pub use message::{
    AuthRequest, BackendMessage, Bind, FrontendMessage, ServerMessage, Target, TransactionStatus,
    WireText,
};
pub use options::{option_setting, split_options};
pub use policy::{
    BadRule, PINNED_SETTINGS, READ_ONLY_FUNCTIONS, Refusal, StatementRules, read_only,
};
pub use scram::{
    DEFAULT_ITERATIONS, MAX_ITERATIONS, ParseVerifierError, SCRAM_SHA_256, ScramClient, ScramError,
    ScramServer, ScramVerifier,
};
pub use track::{MAX_CAPTURED_BYTES, PgTracker, TrackError};

/// The bounds that keep a tracker's memory in check whatever its peers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest message accepted, type byte not counted (16 MiB). Longer is an error.
    pub max_message_len: u32,
    /// Steps (Query, Parse, Bind, Describe, Close, Execute, Sync) sent and not yet answered
    /// (10,000). More is an error. Also the number of statements held for their transaction
    /// status; past it they are reported without one.
    pub max_pending: usize,
    /// Prepared statements, and separately portals, defined at once (10,000). More is an
    /// error.
    pub max_prepared: usize,
    /// Bytes of a statement's text kept (1 MiB); the rest is cut off.
    pub max_text_len: usize,
    /// Bytes of a parameter's rendering kept (256; half as many bytes of a binary value).
    pub max_parameter_len: usize,
    /// Bytes of texts and parameters held at once for pending steps, prepared statements and
    /// portals (64 MiB). More is an error.
    pub max_held_bytes: usize,
    /// Bytes of an unfollowed message kept in its event (1 KiB).
    pub max_raw_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: 16 << 20,
            max_pending: 10_000,
            max_prepared: 10_000,
            max_text_len: 1 << 20,
            max_parameter_len: 256,
            max_held_bytes: 64 << 20,
            max_raw_len: 1024,
        }
    }
}
