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
    TokenRemoved,
    UserAdded,
    /// A person was disabled, enabled again, removed, or given another role.
    UserDisabled,
    UserEnabled,
    UserRemoved,
    RoleChanged,
    TargetAdded,
    GrantAdded,
    GrantRemoved,
    /// A target's vaulted secret was sealed again, bound to the target's row as it is now
    /// (a secret sealed before rows were bound, or a host key pinned on first use).
    TargetSecretResealed,
    /// A session was refused because the target's row no longer matches what its secret
    /// was sealed for (edited outside keepwatch, or a wrong vault key).
    TargetRowMismatch,
    /// The metadata store was copied into another database (`keepwatch migrate`); the first
    /// event the new database's chain adds to the copied one.
    StoreMigrated,
    /// A database client asked to cancel the running statement (a CancelRequest with the key
    /// the gateway handed it), forwarded to the target.
    SessionCancelRequested,
    /// A person's password was set again (`keepwatch user passwd`).
    PasswordChanged,
    /// A database statement the grant's rules refuse was answered by the gateway and never
    /// reached the target.
    StatementRefused,
    /// An auditor or admin put tags on a session (the detail names them).
    SessionTagged,
    /// An auditor or admin took tags off a session (the detail names them).
    SessionUntagged,
    /// A retention policy was added or removed.
    RetentionChanged,
    /// A legal hold was placed.
    HoldPlaced,
    /// A legal hold was released.
    HoldReleased,
    /// A session's recording and rows were deleted by retention: the tombstone `verify`
    /// tells from a session that went missing.
    SessionDeleted,
    /// `keepwatch drill` found, replayed and verified sessions (the result in `detail`).
    DrillRun,
    /// `keepwatch rotate-key` re-wrapped recordings' data keys (how many in `detail`).
    KeysRotated,
    /// The report was read (`keepwatch report`, `GET /api/v1/report`, the console's report
    /// page): it shows the commands run most, so reading it is a look at recorded content.
    ReportViewed,
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
            TokenRemoved => "token_removed",
            UserAdded => "user_added",
            UserDisabled => "user_disabled",
            UserEnabled => "user_enabled",
            UserRemoved => "user_removed",
            RoleChanged => "role_changed",
            TargetAdded => "target_added",
            GrantAdded => "grant_added",
            GrantRemoved => "grant_removed",
            TargetSecretResealed => "target_secret_resealed",
            TargetRowMismatch => "target_row_mismatch",
            StoreMigrated => "store_migrated",
            SessionCancelRequested => "cancel_requested",
            PasswordChanged => "password_changed",
            StatementRefused => "statement_refused",
            SessionTagged => "session_tagged",
            SessionUntagged => "session_untagged",
            RetentionChanged => "retention_changed",
            HoldPlaced => "hold_placed",
            HoldReleased => "hold_released",
            SessionDeleted => "session_deleted",
            DrillRun => "drill_run",
            KeysRotated => "keys_rotated",
            ReportViewed => "report_viewed",
        }
    }

    pub const ALL: [AuditAction; 44] = {
        use AuditAction::*;
        [
            LoginSucceeded,
            LoginRefused,
            ForwardingRefused,
            SessionStarted,
            SessionRefused,
            SessionEnded,
            SessionRecovered,
            HostKeyMismatch,
            HostKeyPinned,
            RecordingFailed,
            SessionViewed,
            RecordingReplayed,
            RecordingExported,
            CaptureDownloaded,
            RecordingsVerified,
            Searched,
            Reindexed,
            SessionWatched,
            SessionTerminated,
            TokenCreated,
            TokenRemoved,
            UserAdded,
            UserDisabled,
            UserEnabled,
            UserRemoved,
            RoleChanged,
            TargetAdded,
            GrantAdded,
            GrantRemoved,
            TargetSecretResealed,
            TargetRowMismatch,
            StoreMigrated,
            SessionCancelRequested,
            PasswordChanged,
            StatementRefused,
            SessionTagged,
            SessionUntagged,
            RetentionChanged,
            HoldPlaced,
            HoldReleased,
            SessionDeleted,
            DrillRun,
            KeysRotated,
            ReportViewed,
        ]
    };
}

/// An audit action name this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown audit action {0:?}")]
pub struct ParseAuditActionError(String);

impl std::str::FromStr for AuditAction {
    type Err = ParseAuditActionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ParseAuditActionError(s.to_owned()))
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    /// A new action must be added to `ALL` too, or it cannot be read back from the store:
    /// this match stops compiling without it, and its size must match.
    #[test]
    fn all_lists_every_action() {
        use AuditAction::*;
        fn number(a: AuditAction) -> usize {
            match a {
                LoginSucceeded => 0,
                LoginRefused => 1,
                ForwardingRefused => 2,
                SessionStarted => 3,
                SessionRefused => 4,
                SessionEnded => 5,
                SessionRecovered => 6,
                HostKeyMismatch => 7,
                HostKeyPinned => 8,
                RecordingFailed => 9,
                SessionViewed => 10,
                RecordingReplayed => 11,
                RecordingExported => 12,
                CaptureDownloaded => 13,
                RecordingsVerified => 14,
                Searched => 15,
                Reindexed => 16,
                SessionWatched => 17,
                SessionTerminated => 18,
                TokenCreated => 19,
                TokenRemoved => 20,
                UserAdded => 21,
                UserDisabled => 22,
                UserEnabled => 23,
                UserRemoved => 24,
                RoleChanged => 25,
                TargetAdded => 26,
                GrantAdded => 27,
                GrantRemoved => 28,
                TargetSecretResealed => 29,
                TargetRowMismatch => 30,
                StoreMigrated => 31,
                SessionCancelRequested => 32,
                PasswordChanged => 33,
                StatementRefused => 34,
                SessionTagged => 35,
                SessionUntagged => 36,
                RetentionChanged => 37,
                HoldPlaced => 38,
                HoldReleased => 39,
                SessionDeleted => 40,
                DrillRun => 41,
                KeysRotated => 42,
                ReportViewed => 43,
            }
        }
        let mut seen: Vec<usize> = AuditAction::ALL.iter().map(|a| number(*a)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, (0..AuditAction::ALL.len()).collect::<Vec<_>>());
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        for a in AuditAction::ALL {
            assert_eq!(a.as_str().parse::<AuditAction>().unwrap(), a);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), AuditAction::ALL.len());
        assert!("nonsense".parse::<AuditAction>().is_err());
    }
}
