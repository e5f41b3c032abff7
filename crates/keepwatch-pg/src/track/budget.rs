//! The bound on statement texts and parameters held across pending steps, prepared
//! statements and portals: every holder is charged, and a holder's drop gives the bytes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{TrackError, cut};
use crate::event::Parameter;

/// Shared with every [`Held`] it charged, so that dropping one (wherever it is) gives its
/// bytes back.
#[derive(Debug)]
pub(super) struct Budget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

/// A statement's text and parameters, charged to the budget while held. The same `Arc`s may
/// be held several times (a prepared statement and the steps that use it): each holder is
/// charged, which over-counts and so errs on the safe side.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) text: Arc<str>,
    pub(super) text_len: usize,
    pub(super) parameters: Arc<[Parameter]>,
    charge: Charge,
}

#[derive(Debug)]
struct Charge {
    bytes: usize,
    used: Arc<AtomicUsize>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Per-item overhead counted on top of the bytes, so that many tiny items add up too.
const OVERHEAD: usize = 64;

impl Budget {
    pub(super) fn new(limit: usize) -> Self {
        Budget { used: Arc::new(AtomicUsize::new(0)), limit }
    }

    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Holds `text`, cut to `max_len` bytes; `extra` is charged too (a map key).
    pub(super) fn hold_text(
        &self,
        text: &str,
        max_len: usize,
        extra: usize,
    ) -> Result<Held, TrackError> {
        let kept = cut(text, max_len);
        self.hold(Arc::from(kept), text.len(), Arc::from([]), extra)
    }

    pub(super) fn hold(
        &self,
        text: Arc<str>,
        text_len: usize,
        parameters: Arc<[Parameter]>,
        extra: usize,
    ) -> Result<Held, TrackError> {
        let rendered: usize = parameters.iter().map(|p| weight(p) + OVERHEAD).sum();
        let bytes = text.len() + rendered + extra + OVERHEAD;
        let charge = self.charge(bytes)?;
        Ok(Held { text, text_len, parameters, charge })
    }

    /// Another holder of the same text and parameters.
    pub(super) fn rehold(&self, held: &Held, extra: usize) -> Result<Held, TrackError> {
        let charge = self.charge(held.charge.bytes + extra)?;
        Ok(Held {
            text: held.text.clone(),
            text_len: held.text_len,
            parameters: held.parameters.clone(),
            charge,
        })
    }

    fn charge(&self, bytes: usize) -> Result<Charge, TrackError> {
        let used = self.used.load(Ordering::Relaxed);
        if used.saturating_add(bytes) > self.limit {
            return Err(TrackError::TooMuchHeld { limit: self.limit });
        }
        self.used.fetch_add(bytes, Ordering::Relaxed);
        Ok(Charge { bytes, used: self.used.clone() })
    }
}

fn weight(p: &Parameter) -> usize {
    match p {
        Parameter::Null => 0,
        Parameter::Text { text, .. } => text.len(),
        Parameter::Binary { hex, .. } => hex.len(),
    }
}
