//! What the event feed sends, as plain data (sans-IO): the JSON object of an audit event
//! and of a session summary, the RFC 5424 syslog line around it, RFC 6587 octet-counting
//! framing, and the webhooks' HMAC signature. The schema is `docs/events.md`.

use hmac::{KeyInit, Mac};
use keepwatch_core::AuditAction;
use keepwatch_store::{SessionRow, StoredAudit};
use serde_json::{Value, json};

/// The version of the event schema (`docs/events.md`); bumped when a field changes meaning
/// or goes away, not when one is added.
pub(crate) const SCHEMA: u32 = 1;

/// The type of the event the feed adds after `session_ended`.
pub(crate) const SESSION_SUMMARY: &str = "session_summary";

/// The STRUCTURED-DATA id of our syslog element: `keepwatch` at the enterprise number RFC
/// 5612 reserves for documentation, as private SD-IDs must name one.
pub(crate) const SD_ID: &str = "keepwatch@32473";

/// One event as it goes out: its type and JSON object, and what the syslog header takes
/// from it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutEvent {
    pub(crate) id: i64,
    pub(crate) at_us: i64,
    pub(crate) kind: String,
    pub(crate) session: Option<String>,
    pub(crate) actor: String,
    pub(crate) severity: Severity,
    pub(crate) json: Value,
}

impl OutEvent {
    /// The JSON object as one line (no newline).
    pub(crate) fn line(&self) -> String {
        self.json.to_string()
    }
}

/// Builds the event for a stored audit row, sent by `node`.
pub(crate) fn audit_event(e: &StoredAudit, node: &str) -> OutEvent {
    let json = json!({
        "schema": SCHEMA,
        "id": e.id,
        "time": rfc3339(e.at_us),
        "type": e.action,
        "actor": e.actor,
        "session": e.session_id,
        "client_addr": e.client_addr,
        "detail": e.detail,
        "node": node,
    });
    OutEvent {
        id: e.id,
        at_us: e.at_us,
        kind: e.action.clone(),
        session: e.session_id.clone(),
        actor: e.actor.clone(),
        severity: severity(&e.action, &e.detail),
        json,
    }
}

/// What the summary adds to the session's row, when the feed could read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SessionCounts {
    pub(crate) channels: usize,
}

/// The `session_summary` that follows the `session_ended` event `ended`, from the
/// session's row as it is now (the same `id` and `time` as `ended`).
pub(crate) fn session_summary(
    ended: &StoredAudit,
    s: &SessionRow,
    counts: SessionCounts,
    node: &str,
) -> OutEvent {
    let duration_s = s.ended_at_us.map(|end| (end - s.started_at_us).max(0) as f64 / 1e6);
    let json = json!({
        "schema": SCHEMA,
        "id": ended.id,
        "time": rfc3339(ended.at_us),
        "type": SESSION_SUMMARY,
        "actor": s.person,
        "session": s.id.to_string(),
        "client_addr": s.client_addr,
        "detail": ended.detail,
        "node": node,
        "summary": {
            "person": s.person,
            "target": s.target,
            "target_host": s.target_host,
            "target_login": s.target_login,
            "protocol": s.protocol.as_str(),
            "status": s.status.as_str(),
            "reason": s.reason,
            "stated_reason": s.stated_reason,
            "started": rfc3339(s.started_at_us),
            "ended": s.ended_at_us.map(rfc3339),
            "duration_s": duration_s,
            "channels": counts.channels,
            "gateway_node": s.node.as_ref().map(|n| n.to_string()),
        },
    });
    OutEvent {
        id: ended.id,
        at_us: ended.at_us,
        kind: SESSION_SUMMARY.into(),
        session: Some(s.id.to_string()),
        actor: s.person.clone(),
        severity: Severity::Notice,
        json,
    }
}

/// RFC 3339 in UTC with microseconds (`2026-12-01T05:40:00.123456Z`), which is also a valid
/// RFC 5424 TIMESTAMP.
pub(crate) fn rfc3339(us: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000000Z".into())
}

/// Syslog severities (RFC 5424 section 6.2.1) the feed uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

/// How serious an event of type `action` is: the gateway refusing or failing is a warning
/// or an error, a change of who may do what a notice, looks and logins information. A type
/// this version does not know (a newer writer, or an edited row) is a warning.
pub(crate) fn severity(action: &str, detail: &str) -> Severity {
    use AuditAction::*;
    let Ok(a) = action.parse::<AuditAction>() else { return Severity::Warning };
    match a {
        HostKeyMismatch | RecordingFailed | TargetRowMismatch => Severity::Error,
        LoginRefused | ForwardingRefused | SessionRefused | SessionRecovered
        | SessionTerminated | StatementRefused => Severity::Warning,
        // "N checked, M problem(s)" (`keepwatch verify`): a failed verify is a warning.
        RecordingsVerified if !detail.ends_with(" 0 problem(s)") => Severity::Warning,
        // `keepwatch drill` that did not find, replay and verify every session it picked.
        DrillRun if !detail.starts_with("{\"passed\":true") => Severity::Warning,
        RecordingsVerified | SessionStarted | SessionEnded | HostKeyPinned | TokenCreated
        | TokenRemoved | UserAdded | UserDisabled | UserEnabled | UserRemoved | RoleChanged
        | TargetAdded | GrantAdded | GrantRemoved | TargetSecretResealed | StoreMigrated
        | PasswordChanged | SessionTagged | SessionUntagged | RetentionChanged | HoldPlaced
        | HoldReleased | SessionDeleted | DrillRun | KeysRotated => Severity::Notice,
        LoginSucceeded
        | SessionViewed
        | RecordingReplayed
        | RecordingExported
        | CaptureDownloaded
        | Searched
        | ReportViewed
        | Reindexed
        | SessionWatched
        | SessionCancelRequested => Severity::Info,
    }
}

/// Syslog facilities by name (RFC 5424 section 6.2.1).
const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// A syslog facility by its name (`authpriv`, `local0`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facility(u8);

impl std::str::FromStr for Facility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FACILITIES.iter().find(|(n, _)| *n == s).map(|(_, code)| Facility(*code)).ok_or_else(|| {
            let names: Vec<_> = FACILITIES.iter().map(|(n, _)| *n).collect();
            format!("unknown syslog facility {s:?} (one of {})", names.join(", "))
        })
    }
}

/// What the syslog header says of the sender.
#[derive(Debug, Clone)]
pub(crate) struct SyslogOrigin {
    pub(crate) facility: Facility,
    /// HOSTNAME: printable ASCII, at most 255 bytes, `-` when unknown.
    pub(crate) hostname: String,
    pub(crate) procid: u32,
    pub(crate) node: String,
}

/// `s` as an RFC 5424 header field: printable US-ASCII (33..=126) only, at most `max`
/// bytes, `-` (the nil value) when nothing is left.
pub(crate) fn header_field(s: &str, max: usize) -> String {
    let kept: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if kept.is_empty() { "-".into() } else { kept }
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped by a backslash (RFC 5424 section 6.3.3).
pub(crate) fn param_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The RFC 5424 message for `e`: `<PRI>1 TIMESTAMP HOSTNAME keepwatch PROCID MSGID
/// [keepwatch@32473 ...] JSON`, without framing.
pub(crate) fn rfc5424(e: &OutEvent, o: &SyslogOrigin) -> String {
    let pri = u32::from(o.facility.0) * 8 + e.severity as u32;
    let mut sd = format!("[{SD_ID} id=\"{}\" type=\"{}\"", e.id, param_value(&e.kind));
    if let Some(s) = &e.session {
        sd.push_str(&format!(" session=\"{}\"", param_value(s)));
    }
    sd.push_str(&format!(
        " actor=\"{}\" node=\"{}\"]",
        param_value(&e.actor),
        param_value(&o.node)
    ));
    format!(
        "<{pri}>1 {} {} keepwatch {} {} {sd} {}",
        rfc3339(e.at_us),
        header_field(&o.hostname, 255),
        o.procid,
        header_field(&e.kind, 32),
        e.line()
    )
}

/// RFC 6587 octet counting, for TCP and TLS: `LEN SP MSG`.
pub(crate) fn octet_counted(msg: &str) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

/// The webhook signature header's value: `sha256=` and the hex HMAC-SHA256 of `body`.
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes keys of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(action: &str, detail: &str) -> StoredAudit {
        StoredAudit {
            id: 42,
            at_us: 1_764_567_600_123_456,
            actor: "alice".into(),
            action: action.into(),
            session_id: Some("0190e0c0-0000-7000-8000-000000000001".into()),
            client_addr: Some("192.0.2.7:50022".into()),
            detail: detail.into(),
        }
    }

    fn origin() -> SyslogOrigin {
        SyslogOrigin {
            facility: "authpriv".parse().unwrap(),
            hostname: "gw1.example".into(),
            procid: 4242,
            node: "gw1".into(),
        }
    }

    #[test]
    fn audit_event_json_has_every_field() {
        let e = audit_event(&stored("session_started", "web01 (ssh)"), "gw1");
        assert_eq!(
            e.line(),
            r#"{"actor":"alice","client_addr":"192.0.2.7:50022","detail":"web01 (ssh)","id":42,"node":"gw1","schema":1,"session":"0190e0c0-0000-7000-8000-000000000001","time":"2025-12-01T05:40:00.123456Z","type":"session_started"}"#
        );
        assert_eq!(e.severity, Severity::Notice);
    }

    #[test]
    fn severities() {
        let check = |action: &str, detail: &str, expected: Severity| {
            assert_eq!(severity(action, detail), expected, "{action} {detail}");
        };
        check("host_key_mismatch", "", Severity::Error);
        check("recording_failed", "", Severity::Error);
        check("session_refused", "", Severity::Warning);
        check("login_refused", "", Severity::Warning);
        check("session_terminated", "", Severity::Warning);
        check("recordings_verified", "3 checked, 1 problem(s)", Severity::Warning);
        check("recordings_verified", "3 checked, 0 problem(s)", Severity::Notice);
        check("grant_added", "", Severity::Notice);
        check("session_viewed", "", Severity::Info);
        check("from_the_future", "", Severity::Warning);
    }

    #[test]
    fn rfc5424_line() {
        let e = audit_event(&stored("session_refused", "no grant"), "gw1");
        let line = rfc5424(&e, &origin());
        let expected = format!(
            "<84>1 2025-12-01T05:40:00.123456Z gw1.example keepwatch 4242 session_refused \
             [keepwatch@32473 id=\"42\" type=\"session_refused\" \
             session=\"0190e0c0-0000-7000-8000-000000000001\" actor=\"alice\" node=\"gw1\"] {}",
            e.line()
        );
        assert_eq!(line, expected);
    }

    #[test]
    fn param_values_are_escaped_and_header_fields_cleaned() {
        assert_eq!(param_value(r#"a"b\c]d[e"#), r#"a\"b\\c\]d[e"#);
        let mut e = audit_event(&stored("login_refused", ""), "gw1");
        e.actor = "evil\"] [x".into();
        let line = rfc5424(&e, &SyslogOrigin { hostname: "bad host\n".into(), ..origin() });
        assert!(line.contains(r#"actor="evil\"\] [x" node="gw1"]"#), "{line}");
        assert!(line.contains(" badhost keepwatch "), "{line}");
        assert_eq!(header_field("", 10), "-");
        assert_eq!(header_field(&"x".repeat(40), 32).len(), 32);
    }

    #[test]
    fn facilities_by_name() {
        assert_eq!("local0".parse::<Facility>().unwrap(), Facility(16));
        assert_eq!("auth".parse::<Facility>().unwrap(), Facility(4));
        let e = "nope".parse::<Facility>().unwrap_err();
        assert!(e.contains("unknown syslog facility \"nope\""), "{e}");
    }

    #[test]
    fn octet_counting_counts_bytes() {
        assert_eq!(octet_counted("héllo"), b"6 h\xc3\xa9llo".to_vec());
    }

    #[test]
    fn summary_from_the_row() {
        use keepwatch_core::{Protocol, SessionId, SessionStatus};
        let id: SessionId = "0190e0c0-0000-7000-8000-000000000001".parse().unwrap();
        let row = SessionRow {
            stated_reason: Some("CHG-1".into()),
            id,
            person: "alice".into(),
            target: "web01".into(),
            target_host: "10.0.0.5".into(),
            target_login: "root".into(),
            client_addr: "192.0.2.7:50022".into(),
            status: SessionStatus::Closed,
            reason: None,
            started_at_us: 1_000_000,
            ended_at_us: Some(3_500_000),
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
            node: None,
            protocol: Protocol::Ssh,
        };
        let ended = stored("session_ended", "closed");
        let e = session_summary(&ended, &row, SessionCounts { channels: 2 }, "gw1");
        assert_eq!(e.kind, "session_summary");
        assert_eq!(e.json["id"], 42);
        let s = &e.json["summary"];
        assert_eq!(s["target"], "web01");
        assert_eq!(s["protocol"], "ssh");
        assert_eq!(s["status"], "closed");
        assert_eq!(s["duration_s"], 2.5);
        assert_eq!(s["channels"], 2);
        assert_eq!(s["started"], "1970-01-01T00:00:01.000000Z");
    }

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_signature() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
