//! Tamper checks across the recording, its database row and the ledger.
//!
//! A recording verifies on its own (chain, signatures, seal); this module also compares it with
//! what the database says (who, where, when, how it ended) and walks the ledger of sealed
//! sessions, so that editing a row or deleting a whole session is caught too. Only the public
//! signing key is needed.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::VerifyingKey;
use keepwatch_core::{SessionId, SessionStatus};
use keepwatch_recording::audit_chain;
use keepwatch_recording::manifest::{Manifest, ManifestError, SegmentHasher};
use keepwatch_recording::{RecordingTail, StreamVerifier, Verified, VerifyError, ledger};
use keepwatch_store::{BlobStore, Layout, SessionFilter, SessionRow, Store, StoreError};

/// One thing found wrong, for one session (or the ledger itself when `session` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub session: Option<SessionId>,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.session {
            Some(id) => write!(f, "session {id}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

fn problem(id: SessionId, what: impl Into<String>) -> Problem {
    Problem { session: Some(id), what: what.into() }
}

/// Pieces a recording is verified in: memory stays at one piece plus one chunk.
const VERIFY_PIECE: u64 = 1 << 20;

/// Checks one session's recording against the signing key and its database row, reading
/// the recording a piece at a time.
///
/// # Errors
/// Only store failures other than a missing recording (which is a problem, not an error).
pub async fn check_session(
    blobs: &BlobStore,
    key: &VerifyingKey,
    id: SessionId,
    row: Option<&SessionRow>,
) -> Result<Vec<Problem>, StoreError> {
    let Some(row) = row else {
        return Ok(vec![problem(
            id,
            "recording present but its database row is missing (deleted?)",
        )]);
    };
    let verified = verify_recording(blobs, key, id, None).await?;
    Ok(compare_row(id, row, verified.as_ref()))
}

/// What [`keepwatch_recording::verify`] says of session `id`'s recording, read in pieces
/// (never whole) up to `until` bytes (its current end without one); `None` when there is no
/// recording. A recording still in the spool (live, or sealed and not yet archived) is read
/// there; an archived one is checked as [`verify_archived`] does. The console caches this
/// per recording version and compares the row with [`compare_row`] on every look.
///
/// # Errors
/// Store failures other than a missing recording.
pub async fn verify_recording(
    blobs: &BlobStore,
    key: &VerifyingKey,
    id: SessionId,
    until: Option<u64>,
) -> Result<Option<Result<Verified, VerifyError>>, StoreError> {
    if !blobs.has_spool(id) {
        return verify_archived(blobs, key, id).await;
    }
    let mut v = StreamVerifier::new(*key);
    loop {
        let offset = v.offset();
        let want = until.map_or(VERIFY_PIECE, |u| u.saturating_sub(offset).min(VERIFY_PIECE));
        if want == 0 {
            break;
        }
        let piece = match blobs.read_recording_range(id, offset, want).await {
            Ok(p) => p,
            Err(StoreError::NotFound { .. }) if offset == 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        if piece.is_empty() {
            break;
        }
        if v.push(&piece).is_err() {
            break;
        }
    }
    Ok(Some(v.finish()))
}

/// Verifies session `id`'s recording as the archive holds it (never the spool), a piece at
/// a time. A whole recording is verified as it is; a segmented one through its manifest: the
/// manifest's signature and order, then every segment it names (present, of its length and
/// hash, in its place) while the chain and signatures are checked across them, and at the
/// end the same chain head and chunk count as the manifest states. Segments without a
/// manifest are reported. `None` when the archive holds nothing of it.
///
/// # Errors
/// Store failures other than missing objects (which are problems).
pub async fn verify_archived(
    blobs: &BlobStore,
    key: &VerifyingKey,
    id: SessionId,
) -> Result<Option<Result<Verified, VerifyError>>, StoreError> {
    let archive = blobs.archive();
    let text = match archive.layout() {
        Layout::Segmented => archive.manifest(id).await?,
        Layout::Whole => None,
    };
    let Some(text) = text else {
        // A whole recording (the local layout, or one archived before segments).
        let mut v = StreamVerifier::new(*key);
        loop {
            let piece = match blobs.read_archived_range(id, v.offset(), VERIFY_PIECE).await {
                Ok(p) => p,
                Err(StoreError::NotFound { .. }) if v.offset() == 0 => {
                    if archive.layout() == Layout::Segmented
                        && !archive.segments(id).await?.is_empty()
                    {
                        return Ok(Some(Err(ManifestError::Missing { session: id }.into())));
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            if piece.is_empty() || v.push(&piece).is_err() {
                break;
            }
        }
        return Ok(Some(v.finish()));
    };
    let m = match Manifest::parse(&text, key, id) {
        Ok(m) => m,
        Err(e) => return Ok(Some(Err(e.into()))),
    };
    let mut v = StreamVerifier::new(*key);
    let mut chain_error = None;
    for (index, s) in m.segments.iter().enumerate() {
        let missing = || ManifestError::SegmentMissing { index, key: s.key.clone() };
        let Some(found) = archive.object_len(&s.key).await? else {
            return Ok(Some(Err(missing().into())));
        };
        if found != s.len {
            let e = ManifestError::SegmentLength { index, key: s.key.clone(), found, len: s.len };
            return Ok(Some(Err(e.into())));
        }
        let mut hasher = SegmentHasher::default();
        let mut at = 0;
        while at < s.len {
            let end = s.len.min(at + VERIFY_PIECE);
            let Some(piece) = archive.read_object_range(&s.key, at..end).await? else {
                return Ok(Some(Err(missing().into())));
            };
            if piece.is_empty() {
                break;
            }
            at += piece.len() as u64;
            hasher.update(&piece);
            if chain_error.is_none()
                && let Err(e) = v.push(&piece)
            {
                chain_error = Some(e);
            }
        }
        // The segment's own hash first: it names what was changed better than the chain.
        if hasher.finalize() != s.hash {
            return Ok(Some(Err(ManifestError::SegmentHash { index, key: s.key.clone() }.into())));
        }
        if let Some(e) = chain_error {
            return Ok(Some(Err(e)));
        }
    }
    let verified = match v.finish() {
        Ok(v) => v,
        Err(e) => return Ok(Some(Err(e))),
    };
    if verified.chain_head != m.chain_head || verified.chunks != m.chunks {
        let e = ManifestError::Head { chunks: verified.chunks, want_chunks: m.chunks };
        return Ok(Some(Err(e.into())));
    }
    Ok(Some(Ok(verified)))
}

/// The seq and chain hash of every whole chunk of session `id`'s recording, read in pieces,
/// up to the first that does not read (what anchors are compared with). `None` when there
/// is no recording.
async fn chunk_heads(
    blobs: &BlobStore,
    id: SessionId,
) -> Result<Option<BTreeMap<u64, [u8; 32]>>, StoreError> {
    let mut tail = RecordingTail::heads_only();
    let mut heads = BTreeMap::new();
    loop {
        let piece = match blobs.read_recording_range(id, tail.read_offset(), VERIFY_PIECE).await {
            Ok(p) => p,
            Err(StoreError::NotFound { .. }) if tail.read_offset() == 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        if piece.is_empty() {
            break;
        }
        let r = tail.push_heads(&piece, |seq, head| {
            heads.insert(seq, head);
        });
        if r.is_err() {
            break;
        }
    }
    Ok(Some(heads))
}

/// The problems of session `id` given its row and what verifying its recording gave
/// (`None`: no recording).
pub fn compare_row(
    id: SessionId,
    row: &SessionRow,
    verified: Option<&Result<Verified, VerifyError>>,
) -> Vec<Problem> {
    let v = match verified {
        None => return vec![problem(id, "recording missing from the blob store")],
        Some(Err(e)) => return vec![problem(id, format!("recording not intact: {e}"))],
        Some(Ok(v)) => v,
    };
    let mut out = Vec::new();
    let s = &v.start;
    let fields: [(&str, String, String); 7] = [
        ("user", row.person.clone(), s.user.clone()),
        ("target", row.target.clone(), s.target.clone()),
        ("target host", row.target_host.clone(), s.target_host.clone()),
        ("target login", row.target_login.clone(), s.target_login.clone()),
        ("client address", row.client_addr.clone(), s.client_addr.clone()),
        ("start time", row.started_at_us.to_string(), s.started_at_us.to_string()),
        (
            "stated reason",
            row.stated_reason.clone().unwrap_or_default(),
            v.reason.clone().unwrap_or_default(),
        ),
    ];
    if s.session_id != id {
        out.push(problem(id, format!("recording belongs to session {}", s.session_id)));
    }
    for (name, db, rec) in fields {
        if db != rec {
            out.push(problem(
                id,
                format!(
                    "database row edited: {name} is {db:?} but the signed recording says {rec:?}"
                ),
            ));
        }
    }
    match (row.status, &v.seal, &v.seal_info) {
        (SessionStatus::Active, None, _) => {}
        (SessionStatus::Active, Some(seal), _) => {
            out.push(problem(id, format!("database says active but the recording is sealed {}", seal.status)));
        }
        (status, None, _) => out.push(problem(
            id,
            format!("recording truncated: database says {status} but the recording has no seal (last chunk {})", v.chunks.saturating_sub(1)),
        )),
        (status, Some(seal), info) => {
            if seal.status != status {
                out.push(problem(id, format!("database row edited: status is {status} but the signed seal says {}", seal.status)));
            }
            if row.ended_at_us != Some(seal.ended_at_us) {
                out.push(problem(id, "database row edited: end time differs from the signed seal"));
            }
            if row.chain_head != Some(v.chain_head) {
                out.push(problem(id, "chain head in the database differs from the recording's"));
            }
            if info.as_ref().is_some_and(|info| row.seal_seq != Some(info.seq)) {
                out.push(problem(id, "seal chunk number in the database differs from the recording's"));
            }
        }
    }
    out
}

/// Everything `keepwatch verify --all` checks but the anchors: the ledger, the audit chain,
/// and every recording (each session's row and every sealed recording in the archive, row
/// or not) against `key`. Returns how many recordings were checked and the problems found.
/// Sessions that seal while the walk runs are looked at once more before anything about
/// them is called a problem.
///
/// # Errors
/// Store failures only.
pub async fn verify_all(
    store: &Store,
    blobs: &BlobStore,
    key: &VerifyingKey,
) -> Result<Verification, StoreError> {
    let mut problems = Vec::new();
    let mut checked = 0usize;
    let tombstones: BTreeSet<SessionId> =
        store.tombstones().await?.into_iter().filter_map(|t| t.session_id).collect();
    let mut rows: BTreeMap<SessionId, SessionRow> =
        store.sessions(&SessionFilter::default()).await?.into_iter().map(|r| (r.id, r)).collect();
    let (ledger_problems, ledgered) = check_ledger(store, key, &rows).await?;
    problems.extend(ledger_problems);
    problems.extend(check_audit(store, key).await?);
    let missing_from_ledger = |id: SessionId, row: Option<&SessionRow>, ledgered: &BTreeSet<_>| {
        (row.is_some_and(|r| r.chain_head.is_some()) && !ledgered.contains(&id))
            .then(|| problem(id, "sealed session missing from the ledger"))
    };
    let mut ids: BTreeSet<SessionId> = rows.keys().copied().collect();
    ids.extend(blobs.sealed_recordings().await?);
    for id in ids {
        let row = rows.get(&id);
        if row.is_none() && tombstones.contains(&id) {
            // Deleted by retention after its rows: its bytes should have gone too.
            problems.push(problem(
                id,
                "deleted by retention, but its recording is still in the archive (`keepwatch retention apply` removes it)",
            ));
            continue;
        }
        if row.is_none() && ledgered.contains(&id) {
            continue; // already reported by the ledger walk
        }
        problems.extend(missing_from_ledger(id, row, &ledgered));
        problems.extend(check_session(blobs, key, id, row).await?);
        checked += 1;
    }
    // A session that was live when the rows were read may have sealed since (its row,
    // ledger entry and file change together, but not all at once for a reader): look at
    // those once more before calling anything about them a problem.
    let moved: BTreeSet<SessionId> = problems
        .iter()
        .filter_map(|p| p.session)
        .filter(|id| rows.get(id).is_some_and(|r| r.status == SessionStatus::Active))
        .collect();
    if !moved.is_empty() {
        for id in &moved {
            if let Some(r) = store.session(*id).await? {
                rows.insert(*id, r);
            }
        }
        problems.retain(|p| !p.session.is_some_and(|s| moved.contains(&s)));
        let (again, ledgered) = check_ledger(store, key, &rows).await?;
        problems
            .extend(again.into_iter().filter(|p| p.session.is_some_and(|s| moved.contains(&s))));
        for id in &moved {
            let row = rows.get(id);
            problems.extend(missing_from_ledger(*id, row, &ledgered));
            problems.extend(check_session(blobs, key, *id, row).await?);
        }
    }
    let deleted = tombstones.into_iter().filter(|id| !rows.contains_key(id)).collect();
    Ok(Verification { checked, deleted, problems })
}

/// What [`verify_all`] found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Recordings checked.
    pub checked: usize,
    /// Sessions retention deleted (their tombstones are in the audit chain).
    pub deleted: Vec<SessionId>,
    pub problems: Vec<Problem>,
}

/// Walks the ledger: each entry chains to the one before, is signed, and names a session that
/// still exists with the same chain head. Returns the problems and the ids the ledger holds.
///
/// # Errors
/// Store failures only.
pub async fn check_ledger(
    store: &Store,
    key: &VerifyingKey,
    rows: &BTreeMap<SessionId, SessionRow>,
) -> Result<(Vec<Problem>, BTreeSet<SessionId>), StoreError> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    let mut prev = ledger::GENESIS;
    // Sessions retention deleted: their `session_deleted` events (in the audit chain, which
    // `check_audit` walks) tell them from sessions that went missing.
    let deleted: BTreeSet<SessionId> =
        store.tombstones().await?.into_iter().filter_map(|t| t.session_id).collect();
    for (i, e) in store.ledger().await?.iter().enumerate() {
        let lp = |what: String| Problem { session: None, what: format!("ledger: {what}") };
        if e.seq != i as u64 {
            out.push(lp(format!("entry {i} missing (found entry {})", e.seq)));
        }
        if e.prev_hash != prev {
            out.push(lp(format!("entry {} does not chain to the entry before it", e.seq)));
        }
        let hash =
            ledger::entry_hash(&e.prev_hash, e.seq, &e.session_id, &e.chain_head, e.sealed_at_us);
        if hash != e.hash {
            out.push(lp(format!("entry {} hash does not match its contents", e.seq)));
        }
        let sig_ok = <[u8; 64]>::try_from(e.signature.as_slice())
            .is_ok_and(|s| ledger::verify_sig(key, &e.hash, &s));
        if !sig_ok {
            out.push(lp(format!("entry {} signature invalid", e.seq)));
        }
        prev = e.hash;
        ids.insert(e.session_id);
        match rows.get(&e.session_id) {
            None if deleted.contains(&e.session_id) => {}
            None => out.push(problem(
                e.session_id,
                format!("session deleted from the database (ledger entry {})", e.seq),
            )),
            Some(r) if r.chain_head != Some(e.chain_head) => out.push(problem(
                e.session_id,
                format!("chain head differs from ledger entry {}", e.seq),
            )),
            Some(_) => {}
        }
    }
    Ok((out, ids))
}

/// Walks the audit trail's hash chain: an event edited, removed (from anywhere but the very
/// end) or inserted breaks it; an unsigned or wrongly signed entry is reported.
///
/// # Errors
/// Store failures only.
pub async fn check_audit(store: &Store, key: &VerifyingKey) -> Result<Vec<Problem>, StoreError> {
    let mut out = Vec::new();
    let ap = |what: String| Problem { session: None, what: format!("audit: {what}") };
    let mut prev = audit_chain::genesis();
    for link in store.audit_chain().await? {
        let e = &link.event;
        let Some(stored) = link.hash.as_deref().and_then(|h| <[u8; 32]>::try_from(h).ok()) else {
            out.push(ap(format!("event {} ({}) is not in the audit chain", e.id, e.action)));
            continue;
        };
        let entry = audit_chain::AuditEntry {
            id: e.id,
            at_us: e.at_us,
            actor: &e.actor,
            action: &e.action,
            session_id: e.session_id.as_deref(),
            client_addr: e.client_addr.as_deref(),
            detail: &e.detail,
        };
        if entry.hash(&prev) != stored {
            out.push(ap(format!(
                "event {} ({} by {}) does not follow the one before it: edited, or an event before it was removed",
                e.id, e.action, e.actor
            )));
        }
        match link.signature.as_deref().and_then(|s| <[u8; 64]>::try_from(s).ok()) {
            Some(sig) if audit_chain::verify_sig(key, &stored, &sig) => {}
            Some(_) => out.push(ap(format!("event {}: bad signature", e.id))),
            None => out.push(ap(format!("event {}: unsigned", e.id))),
        }
        prev = stored;
    }
    for id in store.orphaned_audit_links().await? {
        out.push(ap(format!("event {id} was removed")));
    }
    Ok(out)
}

/// Checks the store against anchors the gateway wrote (`keepwatch_recording::anchor`). History
/// only grows, so every anchor must still hold: the ledger and the audit trail still reach
/// the heads it names, unchanged, and every recording it saw live still holds the checkpoint
/// it saw. Checking them all (not only the newest) catches history deleted while the gateway
/// went on writing anchors over the edited store.
///
/// # Errors
/// Store failures other than a missing recording (a problem, not an error).
pub async fn check_anchors(
    store: &Store,
    blobs: &BlobStore,
    anchors: &[keepwatch_recording::anchor::Anchor],
) -> Result<Vec<Problem>, StoreError> {
    let mut out = Vec::new();
    let global = |what: String| Problem { session: None, what };
    // What the anchors say, each claim once, with the time of the first anchor to say it.
    let mut ledger_claims = BTreeMap::new();
    let mut audit_claims = BTreeMap::new();
    let mut live_claims: BTreeMap<SessionId, BTreeMap<u64, ([u8; 32], i64)>> = BTreeMap::new();
    for a in anchors {
        if let Some(h) = a.ledger_head {
            ledger_claims.entry((a.ledger_entries, h)).or_insert(a.at_us);
        }
        if let Some(h) = a.audit_head {
            audit_claims.entry((a.audit_last_id, h)).or_insert(a.at_us);
        }
        for l in &a.live {
            live_claims.entry(l.session).or_default().entry(l.seq).or_insert((l.head, a.at_us));
        }
    }
    if !ledger_claims.is_empty() {
        let ledger = store.ledger().await?;
        for ((n, head), at) in ledger_claims {
            let when = time_text(at);
            match ledger.get(n.saturating_sub(1) as usize) {
                None => out.push(global(format!(
                    "ledger: the anchor of {when} counted {n} entries, the ledger has {}: sealed sessions were deleted",
                    ledger.len()
                ))),
                Some(e) if e.hash != head => out.push(global(format!(
                    "ledger: entry {} differs from the anchor of {when}: the ledger was rewritten (or entries deleted and others appended)",
                    n - 1
                ))),
                Some(_) => {}
            }
        }
    }
    for ((id, head), at) in audit_claims {
        let when = time_text(at);
        match store.audit_link(id).await? {
            None => out.push(global(format!(
                "audit: event {id}, the newest when the anchor of {when} was written, is gone: audit events were deleted"
            ))),
            Some(h) if h.as_slice() != head => out.push(global(format!(
                "audit: event {id} differs from the anchor of {when}: the audit trail was rewritten"
            ))),
            Some(_) => {}
        }
    }
    for (id, claims) in live_claims {
        let Some(heads) = chunk_heads(blobs, id).await? else {
            let when = time_text(claims.values().map(|(_, at)| *at).min().unwrap_or(0));
            out.push(problem(
                id,
                format!("live when the anchor of {when} was written, but its recording is gone"),
            ));
            continue;
        };
        for (seq, (head, at)) in claims {
            let when = time_text(at);
            match heads.get(&seq) {
                None => out.push(problem(
                    id,
                    format!(
                        "recording cut back: the anchor of {when} saw signed checkpoint chunk {seq}, which is no longer there"
                    ),
                )),
                Some(h) if *h != head => out.push(problem(
                    id,
                    format!(
                        "recording rewritten: chunk {seq} differs from the checkpoint the anchor of {when} saw"
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    Ok(out)
}

/// A unix-microsecond time as RFC 3339 (UTC), for messages.
fn time_text(us: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| us.to_string())
}
