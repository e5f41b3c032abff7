//! The audit facts Keepwatch records: one enum, so every action has one name everywhere.

/// What an audit event says happened. The string form is what is stored and exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    LoginSucceeded,
    LoginRefused,
    ForwardingRefused,
    SessionStarted,
    SessionRefused,
    SessionEnded,
    /// Crash recovery sealed, marked or dropped a session a stopped gateway left active.
    SessionRecovered,
    HostKeyMismatch,
    HostKeyPinned,
    RecordingFailed,
    SessionViewed,
    RecordingReplayed,
    RecordingExported,
    /// A transfer's kept content was downloaded (`keepwatch transfers get`).
    CaptureDownloaded,
    RecordingsVerified,
    Searched,
    Reindexed,
    SessionWatched,
    SessionTerminated,
    TokenCreated,
    UserAdded,
    TargetAdded,
    GrantAdded,
    GrantRemoved,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        use AuditAction::*;
        match self {
            LoginSucceeded => "login_succeeded",
            LoginRefused => "login_refused",
            ForwardingRefused => "forwarding_refused",
            SessionStarted => "session_started",
            SessionRefused => "session_refused",
            SessionEnded => "session_ended",
            SessionRecovered => "session_recovered",
            HostKeyMismatch => "host_key_mismatch",
            HostKeyPinned => "host_key_pinned",
            RecordingFailed => "recording_failed",
            SessionViewed => "session_viewed",
            RecordingReplayed => "recording_replayed",
            RecordingExported => "recording_exported",
            CaptureDownloaded => "capture_downloaded",
            RecordingsVerified => "recordings_verified",
            Searched => "searched",
            Reindexed => "reindexed",
            SessionWatched => "session_watched",
            SessionTerminated => "session_terminated",
            TokenCreated => "token_created",
            UserAdded => "user_added",
            TargetAdded => "target_added",
            GrantAdded => "grant_added",
            GrantRemoved => "grant_removed",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
