//! The session detail's verification: the recording is verified a piece at a time
//! (`keepwatch_recorder::verify_recording`, the same checks as `keepwatch verify`) and the
//! result is kept per session for as long as the recording's bytes stay the same version
//! (where it is, its length, the object store's version tag and modification time). The
//! database row is compared with it on every look, so an edited row is reported at once;
//! opening a sealed session again reads nothing but the file's metadata.

use std::collections::HashMap;
use std::sync::Mutex;

use keepwatch_core::SessionId;
use keepwatch_core::metrics::METRICS;
use keepwatch_recorder::{Problem, compare_row, verify_recording};
use keepwatch_recording::{Verified, VerifyError};
use keepwatch_store::{RecordingVersion, SessionRow};

use crate::{ApiError, WebState};

type Outcome = Result<Verified, VerifyError>;

/// Verification results by session, bounded in number.
pub(crate) struct VerifyCache {
    max: usize,
    map: Mutex<HashMap<SessionId, (RecordingVersion, Outcome)>>,
}

impl VerifyCache {
    pub(crate) fn new(max: usize) -> Self {
        VerifyCache { max, map: Mutex::default() }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn get(&self, id: SessionId, version: &RecordingVersion) -> Option<Outcome> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&id).filter(|(v, _)| v == version).map(|(_, o)| o.clone())
    }

    fn put(&self, id: SessionId, version: RecordingVersion, outcome: Outcome) {
        if self.max == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max && !map.contains_key(&id) {
            // Live recordings change on every look and are worth the least: drop those
            // first, then any half of the rest (what is dropped is only verified again).
            map.retain(|_, (v, _)| v.sealed);
            if map.len() >= self.max {
                let drop: Vec<SessionId> = map.keys().take(map.len() / 2 + 1).copied().collect();
                for k in drop {
                    map.remove(&k);
                }
            }
        }
        map.insert(id, (version, outcome));
    }
}

/// The problems of session `row` (empty: intact), from the cache when its recording has not
/// changed since it was last verified, else verified now under a heavy-request permit.
///
/// # Errors
/// 503 when no permit came in time; store failures.
pub(crate) async fn check(st: &WebState, row: &SessionRow) -> Result<Vec<Problem>, ApiError> {
    let id = row.id;
    let Some(version) = st.blobs.recording_version(id).await? else {
        return Ok(compare_row(id, row, None));
    };
    if let Some(outcome) = st.verified.get(id, &version) {
        return Ok(compare_row(id, row, Some(&outcome)));
    }
    let _permit = st.heavy.permit("the verification").await?;
    // Another look may have verified it while this one waited.
    if let Some(outcome) = st.verified.get(id, &version) {
        return Ok(compare_row(id, row, Some(&outcome)));
    }
    // Exactly the bytes of `version`: what is cached is what was checked.
    let outcome = verify_recording(&st.blobs, &st.verifying_key, id, Some(version.len)).await?;
    let Some(outcome) = outcome else {
        return Ok(compare_row(id, row, None));
    };
    let problems = compare_row(id, row, Some(&outcome));
    METRICS.verified(problems.is_empty());
    st.verified.put(id, version, outcome);
    Ok(problems)
}
