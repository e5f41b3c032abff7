//! Reading recordings for the console, a piece at a time: replay windows in pages capped
//! by events, bytes and bytes read ([`ReplayLimits`]), the current screen of a live session
//! for a new watcher, and the asciicast export streamed as it is read. The decoding and the
//! terminal emulation run on the blocking pool, a piece at a time, so a long recording
//! neither fills memory nor holds a runtime thread.
//!
//! A page that stops at a cap says where the next one starts with a cursor: the offset of
//! the chunk to read next and how many of its events were sent, bound to the session by a
//! keyed hash (the key is made at start, so cursors do not outlive a restart and a caller
//! cannot point the reader anywhere else in the file).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keepwatch_core::SessionId;
use keepwatch_recording::{ReadError, RecordingTail, for_each_chunk};
use keepwatch_store::{ChannelRow, DataKey, SessionRow};
use serde_json::{Value, json};

use crate::heavy::HeavyPermit;
use crate::playback::{AsciicastWriter, PageCaps, ReplayWindow, Resume, WindowBuilder};
use crate::{ApiError, WebState};

/// Pieces a recording is read in (chunks are at most about 1 MiB, the recorder's flush size).
const PIECE: u64 = 1 << 20;

/// What one replay response may hold (`keepwatch.toml` `[limits]`).
#[derive(Debug, Clone)]
pub struct ReplayLimits {
    /// Events in one response.
    pub max_events: usize,
    /// Bytes of event data (as JSON) in one response; the keyframe comes on top (it is
    /// bounded by the terminal's size).
    pub max_bytes: usize,
    /// Bytes of recording read for one response after its window starts.
    pub max_scan_bytes: u64,
}

impl Default for ReplayLimits {
    fn default() -> Self {
        ReplayLimits { max_events: 20_000, max_bytes: 8 << 20, max_scan_bytes: 64 << 20 }
    }
}

impl ReplayLimits {
    fn caps(&self) -> PageCaps {
        PageCaps {
            max_events: self.max_events.max(1),
            max_bytes: self.max_bytes.max(1),
            max_scan_bytes: self.max_scan_bytes.max(PIECE),
        }
    }
}

/// The key replay cursors are bound with.
pub(crate) struct CursorKey([u8; 32]);

const MAC_LEN: usize = 16;

impl CursorKey {
    pub(crate) fn random() -> Result<Self, ApiError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| ApiError::internal(format!("random source: {e}")))?;
        Ok(CursorKey(k))
    }

    fn mac(&self, id: SessionId, body: &[u8]) -> [u8; MAC_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(id.as_bytes());
        h.update(body);
        let mut out = [0; MAC_LEN];
        out.copy_from_slice(&h.finalize().as_bytes()[..MAC_LEN]);
        out
    }

    /// The cursor for `r` in session `id`, as text.
    fn seal(&self, id: SessionId, r: &Resume) -> String {
        let mut b = Vec::with_capacity(48);
        b.extend_from_slice(&r.channel.to_le_bytes());
        b.extend_from_slice(&r.chunk_offset.to_le_bytes());
        b.extend_from_slice(&r.skip_events.to_le_bytes());
        b.extend_from_slice(&r.at_us.to_le_bytes());
        b.extend_from_slice(&r.cols.to_le_bytes());
        b.extend_from_slice(&r.rows.to_le_bytes());
        b.push(r.carry.len() as u8);
        b.extend_from_slice(&r.carry);
        let mac = self.mac(id, &b);
        b.extend_from_slice(&mac);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The resume point of a cursor this server gave for session `id`.
    fn open(&self, id: SessionId, text: &str) -> Option<Resume> {
        if text.len() > 128 || !text.len().is_multiple_of(2) {
            return None;
        }
        let raw: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        let (body, mac) = raw.split_at(raw.len().checked_sub(MAC_LEN)?);
        // Not constant time, and it need not be: the cursor only names a place in a
        // recording the caller may already replay.
        if self.mac(id, body) != mac {
            return None;
        }
        let u32_at = |i: usize| Some(u32::from_le_bytes(body.get(i..i + 4)?.try_into().ok()?));
        let u64_at = |i: usize| Some(u64::from_le_bytes(body.get(i..i + 8)?.try_into().ok()?));
        let carry_len = usize::from(*body.get(32)?);
        Some(Resume {
            channel: u32_at(0)?,
            chunk_offset: u64_at(4)?,
            skip_events: u32_at(12)?,
            at_us: u64_at(16)?,
            cols: u32_at(24)?,
            rows: u32_at(28)?,
            carry: body.get(33..33 + carry_len)?.to_vec(),
        })
        .filter(|r| body.len() == 33 + carry_len && r.carry.len() <= 3)
    }
}

/// What a replay request asks for.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReplayQuery {
    /// The channel (default: the first terminal channel).
    #[param(maximum = 4294967295_u64)]
    pub channel: Option<u32>,
    /// Where the window starts, microseconds into the session.
    #[param(maximum = 18446744073709551615_u64)]
    pub from_us: Option<u64>,
    /// Where it ends (default: the end).
    #[param(maximum = 18446744073709551615_u64)]
    pub until_us: Option<u64>,
    /// Where the page before stopped (its `next`); replaces `from_us`.
    pub cursor: Option<String>,
}

/// One page of a replay window of session `s`, as JSON.
///
/// # Errors
/// 400 for a cursor this server did not give; 404 when there is no such channel; 500 for a
/// damaged recording.
pub(crate) async fn page(st: &WebState, s: &SessionRow, q: ReplayQuery) -> Result<Value, ApiError> {
    let caps = st.config.replay.caps();
    let (read, offset) = if let Some(text) = q.cursor.as_deref().filter(|c| !c.is_empty()) {
        let r = st.cursors.open(s.id, text).ok_or_else(|| {
            ApiError::bad_request(
                "cursor is not one this server gave for this session (it restarted?); \
                 ask for the window again with from_us",
            )
        })?;
        if q.channel.is_some_and(|c| c != r.channel) {
            return Err(ApiError::bad_request("the cursor is for another channel"));
        }
        let b = WindowBuilder::resume(&r, q.until_us, caps);
        let key = recording_key(st, s.id).await?;
        (PageRead::unchained(b, r.chunk_offset, r.skip_events as usize, s.id, key), r.chunk_offset)
    } else {
        let from = q.from_us.unwrap_or(0);
        let key = recording_key(st, s.id).await?;
        let channels = st.store.channels(s.id).await?;
        let channel = choose_channel(q.channel, &channels)?;
        let keyframe = match channel {
            Some(ch) if from > 0 => st.store.keyframe_before(s.id, ch, from).await?,
            _ => None,
        };
        match (channel, keyframe) {
            (Some(ch), Some(k)) => {
                let b = WindowBuilder::from_keyframe(
                    ch,
                    (k.screen.as_str(), k.cols, k.rows),
                    from,
                    q.until_us,
                    caps,
                );
                let skip = k.skip_events as usize;
                (PageRead::unchained(b, k.chunk_offset, skip, s.id, key), k.chunk_offset)
            }
            _ => {
                let b = WindowBuilder::from_start(channel, from, q.until_us, caps);
                (PageRead::chained(b, key), 0)
            }
        }
    };
    let builder = read_page(st, s.id, read, offset, None).await?;
    let end = s.ended_at_us.unwrap_or_else(keepwatch_store::now_us);
    let duration_us = (end - s.started_at_us).max(0) as u64;
    let w = builder
        .finish(duration_us)
        .ok_or_else(|| ApiError::not_found(format!("a channel to replay in session {}", s.id)))?;
    Ok(window_json(st, s.id, w))
}

/// The channel asked for (404 when the session has no such channel), else the first with a
/// terminal, else the first; `None` when the database lists none (the first channel the
/// recording opens is played).
fn choose_channel(asked: Option<u32>, channels: &[ChannelRow]) -> Result<Option<u32>, ApiError> {
    match asked {
        Some(c) if channels.is_empty() || channels.iter().any(|r| r.channel == c) => Ok(Some(c)),
        Some(c) => Err(ApiError::not_found(format!("channel {c}"))),
        None => Ok(channels
            .iter()
            .find(|c| c.pty_term.is_some())
            .or(channels.first())
            .map(|c| c.channel)),
    }
}

fn window_json(st: &WebState, id: SessionId, w: ReplayWindow) -> Value {
    let next = w.next.as_ref().map(|r| st.cursors.seal(id, r));
    json!({
        "channel": w.channel, "cols": w.cols, "rows": w.rows, "duration_us": w.duration_us,
        "keyframe": w.keyframe.map(|(at, screen)| json!({ "at_us": at, "screen": screen })),
        "events": w.events,
        "truncated": w.next.is_some(),
        "next": next,
        "next_from_us": w.next.as_ref().map(|r| r.at_us),
    })
}

/// Where the chunks of a page come from.
enum Source {
    /// From the file's start, checking the file header and the hash chain.
    Chained(RecordingTail),
    /// From a chunk in the middle (a keyframe's or a cursor's): framing and decoding only.
    Unchained {
        session: SessionId,
        key: Option<DataKey>,
        pending: Vec<u8>,
        /// The file offset of `pending[0]`.
        base: u64,
        /// Events of the first chunk already handled.
        skip: usize,
    },
}

/// A page being read: moved to the blocking pool and back for each piece.
struct PageRead {
    source: Source,
    builder: WindowBuilder,
}

impl PageRead {
    fn chained(builder: WindowBuilder, key: Option<DataKey>) -> Self {
        PageRead { source: Source::Chained(RecordingTail::new(key)), builder }
    }

    fn unchained(
        builder: WindowBuilder,
        offset: u64,
        skip: usize,
        session: SessionId,
        key: Option<DataKey>,
    ) -> Self {
        let source = Source::Unchained { session, key, pending: Vec::new(), base: offset, skip };
        PageRead { source, builder }
    }

    /// Feeds the next piece; true once the page is complete.
    fn feed(&mut self, piece: &[u8]) -> Result<bool, ReadError> {
        let b = &mut self.builder;
        match &mut self.source {
            Source::Chained(tail) => {
                tail.push_chunks(piece, |offset, events| {
                    let _ = b.chunk(offset, events, 0);
                })?;
            }
            Source::Unchained { session, key, pending, base, skip } => {
                pending.extend_from_slice(piece);
                let at = *base;
                let used = for_each_chunk(pending, session, key.as_ref(), |o, events| {
                    b.chunk(at + o as u64, events, std::mem::take(skip))
                })?;
                pending.drain(..used);
                *base += used as u64;
            }
        }
        Ok(b.is_done())
    }
}

/// Reads session `id` from `offset` (to `end` at most) into `read` until its page is
/// complete or the recording ends.
async fn read_page(
    st: &WebState,
    id: SessionId,
    mut read: PageRead,
    mut offset: u64,
    end: Option<u64>,
) -> Result<WindowBuilder, ApiError> {
    loop {
        let want = end.map_or(PIECE, |e| e.saturating_sub(offset).min(PIECE));
        if want == 0 {
            break;
        }
        let piece = st.blobs.read_recording_range(id, offset, want).await?;
        if piece.is_empty() {
            break;
        }
        offset += piece.len() as u64;
        let (back, done) = tokio::task::spawn_blocking(move || {
            let done = read.feed(&piece);
            (read, done)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
        read = back;
        if done.map_err(|e| damaged(id, &e))? {
            break;
        }
    }
    Ok(read.builder)
}

fn damaged(id: SessionId, e: &ReadError) -> ApiError {
    ApiError::internal(format!("recording of session {id} is damaged: {e}"))
}

/// The data key of session `id`'s recording (`None`: not encrypted).
pub(crate) async fn recording_key(
    st: &WebState,
    id: SessionId,
) -> Result<Option<DataKey>, ApiError> {
    st.store.recording_key(id).await.map_err(|e| {
        tracing::warn!(session_id = %id, error = %e, "web: no data key");
        ApiError::internal(format!("the recording of session {id} cannot be decrypted: {e}"))
    })
}

/// The screen of a live session for a new watcher, from the first `len` bytes of its
/// recording: `(channel, cols, rows, screen)`. Starts from the indexer's last keyframe of
/// the terminal channel when there is one, so a long session is not read from its start.
pub(crate) async fn current_screen(
    st: &WebState,
    s: &SessionRow,
    len: u64,
) -> Result<(Option<u32>, u32, u32, String), ApiError> {
    let key = recording_key(st, s.id).await?;
    let channels = st.store.channels(s.id).await?;
    let channel = choose_channel(None, &channels)?;
    let keyframe = match channel {
        Some(ch) => st.store.keyframe_before(s.id, ch, u64::MAX).await?,
        None => None,
    };
    let (read, offset) = match (channel, keyframe) {
        (Some(ch), Some(k)) if k.chunk_offset < len => {
            let screen = (k.screen.as_str(), k.cols, k.rows);
            let b = WindowBuilder::from_keyframe(ch, screen, u64::MAX, None, PageCaps::NONE);
            let skip = k.skip_events as usize;
            (PageRead::unchained(b, k.chunk_offset, skip, s.id, key), k.chunk_offset)
        }
        _ => {
            let b = WindowBuilder::from_start(channel, u64::MAX, None, PageCaps::NONE);
            (PageRead::chained(b, key), 0)
        }
    };
    let builder = read_page(st, s.id, read, offset, Some(len)).await?;
    Ok(match builder.finish(0) {
        Some(w) => (Some(w.channel), w.cols, w.rows, w.keyframe.map(|k| k.1).unwrap_or_default()),
        None => (None, 80, 24, String::new()),
    })
}

/// How long the export waits for the client to take the next piece before it gives up
/// (and its heavy-request permit).
const EXPORT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The asciicast of session `s` as a body streamed while the recording is read (the
/// terminal channel, or the first), holding `permit` until it ends. A damaged recording
/// or a client that stops reading ends the body early (the download fails).
pub(crate) fn export_body(
    st: Arc<WebState>,
    s: SessionRow,
    channels: &[ChannelRow],
    permit: HeavyPermit,
) -> axum::body::Body {
    let channel = choose_channel(None, channels).ok().flatten();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let _permit = permit;
        let key = match st.store.recording_key(s.id).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(session_id = %s.id, error = %e, "web: export has no data key");
                let _ =
                    tx.send(Err(std::io::Error::other("the recording cannot be decrypted"))).await;
                return;
            }
        };
        let mut state =
            Some((RecordingTail::new(key), AsciicastWriter::new(channel, s.started_at_us, false)));
        let mut offset = 0;
        loop {
            let piece = match st.blobs.read_recording_range(s.id, offset, PIECE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(session_id = %s.id, error = %e, "web: export read failed");
                    let _ = tx
                        .send(Err(std::io::Error::other("the recording could not be read")))
                        .await;
                    return;
                }
            };
            let last = piece.is_empty();
            offset += piece.len() as u64;
            let Some((mut tail, mut writer)) = state.take() else { return };
            let r = tokio::task::spawn_blocking(move || {
                let mut out = String::new();
                let r = tail.push_chunks(&piece, |_, events| writer.events(events, &mut out));
                if last {
                    writer.finish(&mut out);
                }
                (tail, writer, r.map(|()| out))
            })
            .await;
            let Ok((tail, writer, r)) = r else { return };
            state = Some((tail, writer));
            let item = match r {
                Ok(out) => Ok(Bytes::from(out)),
                Err(e) => {
                    tracing::warn!(session_id = %s.id, error = %e, "web: export of a damaged recording stopped");
                    Err(std::io::Error::other(format!("recording damaged: {e}")))
                }
            };
            let failed = item.is_err();
            match tokio::time::timeout(EXPORT_SEND_TIMEOUT, tx.send(item)).await {
                Ok(Ok(())) if !failed && !last => {}
                _ => return,
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    axum::body::Body::from_stream(stream)
}
