//! The gateway's counters, for Prometheus (`GET /metrics`, `docs/metrics.md`).
//!
//! One process-wide [`METRICS`] of plain atomics that the front ends, the session layer, the
//! recorder, the indexer and the store bump where the thing happens, rendered on request in
//! Prometheus' text format by [`Metrics::render`]. Bumping is one relaxed atomic add: nothing
//! here locks, allocates or waits, so the data path pays nothing it could notice. Every
//! label has a fixed set of values (protocols, statuses, reasons named here), so a stranger
//! cannot grow the output.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::{AuditAction, Protocol, SessionStatus};

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

const PROTOCOLS: usize = Protocol::ALL.len();
const STATUSES: [SessionStatus; 5] = [
    SessionStatus::Active,
    SessionStatus::Closed,
    SessionStatus::Terminated,
    SessionStatus::Interrupted,
    SessionStatus::Refused,
];

/// Which way relayed bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the person to the target.
    ToTarget,
    /// From the target to the person.
    ToClient,
}

/// Why something a stranger asked for was refused: the label of `keepwatch_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A login failed (wrong password or key, unknown or disabled person).
    Login,
    /// Too many failed logins: the name or address is locked out for a while.
    LoginLocked,
    /// Too many connections not logged in yet, in all or from one address.
    Admission,
    /// No grant, no such target, a target of another protocol, or no recording.
    Session,
    /// A port forward, agent or tunnel the grant does not allow.
    Forwarding,
    /// A target's host key did not match the pinned one.
    HostKey,
    /// A target's row no longer matches what its secret was sealed for.
    TargetRow,
    /// A database statement a grant's rules refuse.
    Statement,
}

impl Refused {
    const ALL: [Refused; 8] = [
        Refused::Login,
        Refused::LoginLocked,
        Refused::Admission,
        Refused::Session,
        Refused::Forwarding,
        Refused::HostKey,
        Refused::TargetRow,
        Refused::Statement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Login => "login",
            Refused::LoginLocked => "login_locked",
            Refused::Admission => "admission",
            Refused::Session => "session",
            Refused::Forwarding => "forwarding",
            Refused::HostKey => "host_key",
            Refused::TargetRow => "target_row",
            Refused::Statement => "statement",
        }
    }

    /// The refusal an audit event records, if it records one.
    pub fn of_audit(action: AuditAction) -> Option<Refused> {
        Some(match action {
            AuditAction::LoginRefused => Refused::Login,
            AuditAction::SessionRefused => Refused::Session,
            AuditAction::ForwardingRefused => Refused::Forwarding,
            AuditAction::HostKeyMismatch => Refused::HostKey,
            AuditAction::TargetRowMismatch => Refused::TargetRow,
            AuditAction::StatementRefused => Refused::Statement,
            _ => return None,
        })
    }
}

/// Upper bounds (seconds) of the latency histograms' buckets: 100 µs to 10 s.
const BUCKETS: [f64; 14] =
    [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A latency histogram: a count per bucket (not cumulative; summed when rendered), the
/// count and the sum in microseconds.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        // Read after the buckets, so +Inf is never below the last bucket.
        let count = self.count.load(Relaxed).max(cumulative);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every counter and gauge the gateway keeps. Use [`METRICS`].
pub struct Metrics {
    sessions_started: [AtomicU64; PROTOCOLS],
    sessions_active: [AtomicI64; PROTOCOLS],
    sessions_ended: [[AtomicU64; STATUSES.len()]; PROTOCOLS],
    relayed_bytes: [[AtomicU64; 2]; PROTOCOLS],
    refusals: [AtomicU64; Refused::ALL.len()],
    recorded_bytes: AtomicU64,
    /// How long writing (and syncing) a chunk took.
    pub flush_seconds: Histogram,
    /// How long an event waited in the recorder before its chunk reached the file.
    pub recording_lag_seconds: Histogram,
    recording_failures: AtomicU64,
    verify_runs: AtomicU64,
    verify_failures: AtomicU64,
    index_lag_bytes: AtomicU64,
    index_followed: AtomicU64,
    index_tick_unix: AtomicU64,
}

fn protocol_index(p: Protocol) -> usize {
    match p {
        Protocol::Ssh => 0,
        Protocol::Postgres => 1,
    }
}

fn status_index(s: SessionStatus) -> usize {
    match s {
        SessionStatus::Active => 0,
        SessionStatus::Closed => 1,
        SessionStatus::Terminated => 2,
        SessionStatus::Interrupted => 3,
        SessionStatus::Refused => 4,
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

impl Metrics {
    const fn new() -> Self {
        Metrics {
            sessions_started: [const { AtomicU64::new(0) }; PROTOCOLS],
            sessions_active: [const { AtomicI64::new(0) }; PROTOCOLS],
            sessions_ended: [const { [const { AtomicU64::new(0) }; STATUSES.len()] }; PROTOCOLS],
            relayed_bytes: [const { [const { AtomicU64::new(0) }; 2] }; PROTOCOLS],
            refusals: [const { AtomicU64::new(0) }; Refused::ALL.len()],
            recorded_bytes: AtomicU64::new(0),
            flush_seconds: Histogram::new(),
            recording_lag_seconds: Histogram::new(),
            recording_failures: AtomicU64::new(0),
            verify_runs: AtomicU64::new(0),
            verify_failures: AtomicU64::new(0),
            index_lag_bytes: AtomicU64::new(0),
            index_followed: AtomicU64::new(0),
            index_tick_unix: AtomicU64::new(0),
        }
    }

    /// A session of `protocol` started recording.
    pub fn session_started(&self, protocol: Protocol) {
        self.sessions_started[protocol_index(protocol)].fetch_add(1, Relaxed);
        self.sessions_active[protocol_index(protocol)].fetch_add(1, Relaxed);
    }

    /// A session [`Metrics::session_started`] counted ended with `status`.
    pub fn session_ended(&self, protocol: Protocol, status: SessionStatus) {
        self.sessions_active[protocol_index(protocol)].fetch_sub(1, Relaxed);
        self.sessions_ended[protocol_index(protocol)][status_index(status)].fetch_add(1, Relaxed);
    }

    /// `n` bytes of a `protocol` session were relayed `direction`.
    pub fn relayed(&self, protocol: Protocol, direction: Direction, n: usize) {
        let d = match direction {
            Direction::ToTarget => 0,
            Direction::ToClient => 1,
        };
        self.relayed_bytes[protocol_index(protocol)][d].fetch_add(n as u64, Relaxed);
    }

    pub fn refused(&self, why: Refused) {
        self.refusals[why as usize].fetch_add(1, Relaxed);
    }

    /// `n` bytes of recording (chunks as stored) reached a spool file.
    pub fn recorded(&self, n: usize) {
        self.recorded_bytes.fetch_add(n as u64, Relaxed);
    }

    /// A recording could no longer be written.
    pub fn recording_failed(&self) {
        self.recording_failures.fetch_add(1, Relaxed);
    }

    /// A recording was verified; `ok` is whether it passed.
    pub fn verified(&self, ok: bool) {
        self.verify_runs.fetch_add(1, Relaxed);
        if !ok {
            self.verify_failures.fetch_add(1, Relaxed);
        }
    }

    /// The indexer finished a round at `unix_s`, following `followed` live sessions whose
    /// recordings are `lag_bytes` ahead of what it has read.
    pub fn index_ticked(&self, unix_s: u64, followed: usize, lag_bytes: u64) {
        self.index_lag_bytes.store(lag_bytes, Relaxed);
        self.index_followed.store(followed as u64, Relaxed);
        self.index_tick_unix.store(unix_s, Relaxed);
    }

    /// Everything, in Prometheus' text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 << 10);
        let protocols = || Protocol::ALL.iter().map(|&p| (p, protocol_index(p)));
        let name = "keepwatch_sessions_started_total";
        header(&mut out, name, "Sessions that started recording, by protocol.", "counter");
        for (p, i) in protocols() {
            let n = self.sessions_started[i].load(Relaxed);
            let _ = writeln!(out, "{name}{{protocol=\"{p}\"}} {n}");
        }
        let name = "keepwatch_sessions_active";
        header(&mut out, name, "Sessions running on this node now, by protocol.", "gauge");
        for (p, i) in protocols() {
            let n = self.sessions_active[i].load(Relaxed).max(0);
            let _ = writeln!(out, "{name}{{protocol=\"{p}\"}} {n}");
        }
        let name = "keepwatch_sessions_ended_total";
        header(&mut out, name, "Sessions that ended, by protocol and status.", "counter");
        for (p, i) in protocols() {
            for s in STATUSES.iter().filter(|&&s| s != SessionStatus::Active) {
                let n = self.sessions_ended[i][status_index(*s)].load(Relaxed);
                let _ = writeln!(out, "{name}{{protocol=\"{p}\",status=\"{s}\"}} {n}");
            }
        }
        let name = "keepwatch_relayed_bytes_total";
        header(&mut out, name, "Bytes relayed between people and targets.", "counter");
        for (p, i) in protocols() {
            for (d, label) in ["to_target", "to_client"].iter().enumerate() {
                let n = self.relayed_bytes[i][d].load(Relaxed);
                let _ = writeln!(out, "{name}{{protocol=\"{p}\",direction=\"{label}\"}} {n}");
            }
        }
        let name = "keepwatch_refusals_total";
        header(&mut out, name, "Refused logins, sessions, forwards and statements.", "counter");
        for r in Refused::ALL {
            let n = self.refusals[r as usize].load(Relaxed);
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {n}", r.as_str());
        }
        let counters = [
            (
                "keepwatch_recorded_bytes_total",
                "Recording bytes (compressed chunks) written to spool files.",
                &self.recorded_bytes,
            ),
            (
                "keepwatch_recording_failures_total",
                "Recordings that could no longer be written.",
                &self.recording_failures,
            ),
            (
                "keepwatch_verify_runs_total",
                "Recordings verified by this process.",
                &self.verify_runs,
            ),
            (
                "keepwatch_verify_failures_total",
                "Recordings that failed verification in this process.",
                &self.verify_failures,
            ),
        ];
        for (name, help, v) in counters {
            header(&mut out, name, help, "counter");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        }
        self.flush_seconds.render(
            &mut out,
            "keepwatch_recording_flush_seconds",
            "Time to write (and sync) one recording chunk.",
        );
        self.recording_lag_seconds.render(
            &mut out,
            "keepwatch_recording_lag_seconds",
            "Time from an event reaching the recorder to its chunk reaching the file.",
        );
        let gauges = [
            (
                "keepwatch_index_lag_bytes",
                "Recorded bytes of live sessions the indexer has not read yet.",
                &self.index_lag_bytes,
            ),
            (
                "keepwatch_index_followed_sessions",
                "Live sessions the indexer follows.",
                &self.index_followed,
            ),
            (
                "keepwatch_index_last_round_timestamp_seconds",
                "When the indexer last finished a round (Unix time; 0 before the first).",
                &self.index_tick_unix,
            ),
        ];
        for (name, help, v) in gauges {
            header(&mut out, name, help, "gauge");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_counted() {
        let m = Metrics::new();
        m.session_started(Protocol::Postgres);
        m.session_started(Protocol::Ssh);
        m.session_ended(Protocol::Ssh, SessionStatus::Terminated);
        m.relayed(Protocol::Ssh, Direction::ToClient, 1000);
        m.refused(Refused::of_audit(AuditAction::HostKeyMismatch).unwrap());
        m.flush_seconds.observe(Duration::from_millis(3));
        m.flush_seconds.observe(Duration::from_secs(60));
        let text = m.render();
        for line in [
            "keepwatch_sessions_started_total{protocol=\"postgres\"} 1",
            "keepwatch_sessions_active{protocol=\"ssh\"} 0",
            "keepwatch_sessions_active{protocol=\"postgres\"} 1",
            "keepwatch_sessions_ended_total{protocol=\"ssh\",status=\"terminated\"} 1",
            "keepwatch_relayed_bytes_total{protocol=\"ssh\",direction=\"to_client\"} 1000",
            "keepwatch_refusals_total{reason=\"host_key\"} 1",
            "keepwatch_recording_flush_seconds_bucket{le=\"0.0025\"} 0",
            "keepwatch_recording_flush_seconds_bucket{le=\"0.005\"} 1",
            "keepwatch_recording_flush_seconds_bucket{le=\"10\"} 1",
            "keepwatch_recording_flush_seconds_bucket{le=\"+Inf\"} 2",
            "keepwatch_recording_flush_seconds_count 2",
            "keepwatch_recording_flush_seconds_sum 60.003",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Every sample line belongs to a family declared just before it.
        let mut family = "";
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap();
            } else if !l.starts_with('#') {
                assert!(l.starts_with(family), "{l:?} outside its family {family}");
            }
        }
    }

    #[test]
    fn only_refusals_count_as_refusals() {
        assert_eq!(Refused::of_audit(AuditAction::LoginRefused), Some(Refused::Login));
        assert_eq!(Refused::of_audit(AuditAction::SessionStarted), None);
        assert_eq!(Refused::of_audit(AuditAction::SessionViewed), None);
    }
}
