//! PostgreSQL connections seen from the middle (sans-IO): the wire protocol framed and
//! decoded both ways, statements tracked with their outcomes, and the authentication pieces a
//! gateway needs on each leg.
//!
//! TODO: crate docs.

mod event;
mod frame;
mod login;
mod message;
mod scram;
mod track;
pub mod wire;

pub use event::{
    CommandTag, Copy, CopyDirection, EncryptionRequest, Outcome, Parameter, PgEvent, QueryKind,
    Statement, Unfollowed,
};
pub use frame::{
    Frame, FrameMode, FrameReader, MAX_STARTUP_PACKET_LEN, ParseMessageError, Side, message_name,
};
pub use login::{LoginError, TargetLogin, md5_password};
pub use message::{
    AuthRequest, BackendMessage, Bind, FrontendMessage, ServerMessage, Target, TransactionStatus,
    WireText,
};
pub use scram::{
    DEFAULT_ITERATIONS, MAX_ITERATIONS, ParseVerifierError, SCRAM_SHA_256, ScramClient, ScramError,
    ScramServer, ScramVerifier,
};
pub use track::{PgTracker, TrackError};

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
