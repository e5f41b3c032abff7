//! Archived recordings in segments: where each chunk boundary falls (so a live spool can be
//! cut into whole-chunk segments as it grows), and the signed manifest that says which
//! segments, in which order, make up a sealed recording.
//!
//! An object store cannot append, and some servers overwrite an existing key even when
//! asked not to, so an archived recording is a list of write-once segments (each a run of
//! whole chunks, the first one starting with the file header) plus this manifest. The
//! manifest names every segment with its byte range in the recording, the chunk seqs it
//! holds and its BLAKE3 hash, and ends with the recording's length, chunk count and chain
//! head; the recording key signs all of it. A segment overwritten, deleted, reordered or
//! swapped for another then differs from the manifest, and an edited manifest fails its
//! signature; the chain inside the segments is checked as for any recording.
//!
//! One manifest is a few lines of text (`docs/recording-format.md`):
//!
//! ```text
//! KWMANIFEST1
//! session <uuid>
//! recording <bytes> <chunks> <chain head hex>
//! segment <start> <len> <first seq> <last seq> <blake3 hex> <key>
//! ...
//! sig <ed25519 hex>
//! ```

use std::fmt::Write as _;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use keepwatch_core::SessionId;

use crate::chunk::{CHUNK_MAGIC, HASH_LEN, KNOWN_FLAGS, SIG_LEN, le_u32, le_u64};
use crate::{CHUNK_HEADER_LEN, FLAG_SIGNED, MAX_CHUNK_PAYLOAD, ReadError};

const MAGIC: &str = "KWMANIFEST1";
const SIGN_DOMAIN: &[u8] = b"keepwatch-manifest-v1";
/// Segments one manifest may list (a 1 TiB recording in 8 MiB segments is 131,072).
pub const MAX_SEGMENTS: usize = 1 << 20;
/// Longest segment key a manifest takes.
pub const MAX_KEY_LEN: usize = 512;

/// Where one chunk sits, from its header ([`chunk_extent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkExtent {
    pub seq: u64,
    /// The bytes it takes: header, payload, hash and signature.
    pub len: u64,
    /// Where its chain hash starts, from the chunk's first byte.
    pub hash_at: u64,
}

/// Where the chunk starting with `header` ends. `header` is at least [`CHUNK_HEADER_LEN`]
/// bytes read at a chunk boundary (`offset`, for errors); only the framing is checked (the
/// chain needs the whole chunk).
///
/// # Errors
/// No chunk magic, unknown flags, a payload length past [`MAX_CHUNK_PAYLOAD`], or fewer
/// than [`CHUNK_HEADER_LEN`] bytes.
pub fn chunk_extent(header: &[u8], offset: u64) -> Result<ChunkExtent, ReadError> {
    let at = offset as usize;
    if header.len() < CHUNK_HEADER_LEN {
        return Err(ReadError::TruncatedChunkHeader { offset: at });
    }
    if &header[..4] != CHUNK_MAGIC {
        return Err(ReadError::BadChunkMagic { offset: at });
    }
    let seq = le_u64(&header[4..]);
    let flags = header[20];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(ReadError::UnknownFlags { seq, offset: at, flags });
    }
    let stored = le_u32(&header[25..]) as usize;
    if stored > MAX_CHUNK_PAYLOAD {
        return Err(ReadError::PayloadTooLarge { seq, offset: at, len: stored as u64 });
    }
    let signed = if flags & FLAG_SIGNED != 0 { SIG_LEN } else { 0 };
    let hash_at = (CHUNK_HEADER_LEN + stored) as u64;
    Ok(ChunkExtent { seq, len: hash_at + (HASH_LEN + signed) as u64, hash_at })
}

/// The hash a manifest lists for a segment's bytes.
pub fn segment_hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// [`segment_hash`] over bytes that arrive in pieces.
#[derive(Default, Clone)]
pub struct SegmentHasher(blake3::Hasher);

impl SegmentHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finalize(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// One segment of an archived recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The object's key in the archive.
    pub key: String,
    /// Where its bytes sit in the recording, and how many there are.
    pub start: u64,
    pub len: u64,
    /// The seqs of its first and last chunk.
    pub first_seq: u64,
    pub last_seq: u64,
    /// BLAKE3 of its bytes ([`segment_hash`]).
    pub hash: [u8; 32],
}

/// What a manifest states: the segments of one sealed recording, in order, and the
/// recording they add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub session_id: SessionId,
    pub segments: Vec<Segment>,
    /// The recording's length in bytes and chunks, and its last chunk's hash (the seal's).
    pub len: u64,
    pub chunks: u64,
    pub chain_head: [u8; 32],
}

/// Why a manifest does not describe an intact recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest does not parse: {0}")]
    Malformed(String),
    #[error("manifest signature invalid (the manifest was edited, or signed by another key)")]
    SignatureInvalid,
    #[error("manifest belongs to session {found}")]
    OtherSession { found: SessionId },
    #[error(
        "manifest segment {index} starts at byte {start}, not {expected}: segments do not follow each other"
    )]
    Gap { index: usize, start: u64, expected: u64 },
    #[error(
        "manifest segment {index} starts at chunk {first_seq}, not {expected}: segments do not follow each other"
    )]
    SeqGap { index: usize, first_seq: u64, expected: u64 },
    #[error(
        "manifest segments add up to {len} bytes and {chunks} chunks, not {want_len} and {want_chunks}"
    )]
    Totals { len: u64, chunks: u64, want_len: u64, want_chunks: u64 },
    #[error("segment {index} ({key}) is missing from the archive")]
    SegmentMissing { index: usize, key: String },
    #[error(
        "segment {index} ({key}) is {found} bytes, the manifest says {len}: it was overwritten or cut"
    )]
    SegmentLength { index: usize, key: String, found: u64, len: u64 },
    #[error(
        "segment {index} ({key}) differs from the manifest's hash: it was overwritten, edited or swapped"
    )]
    SegmentHash { index: usize, key: String },
    #[error(
        "the segments hold {chunks} chunks ending in another chain head than the manifest's {want_chunks}: a segment was replaced"
    )]
    Head { chunks: u64, want_chunks: u64 },
    #[error(
        "archived segments of session {session} hold no manifest: the recording was never sealed into the archive, or its manifest was deleted"
    )]
    Missing { session: SessionId },
}

fn bad(what: impl Into<String>) -> ManifestError {
    ManifestError::Malformed(what.into())
}

impl Manifest {
    fn message(&self) -> Vec<u8> {
        let mut m = SIGN_DOMAIN.to_vec();
        m.extend_from_slice(self.session_id.as_bytes());
        m.extend_from_slice(&self.len.to_le_bytes());
        m.extend_from_slice(&self.chunks.to_le_bytes());
        m.extend_from_slice(&self.chain_head);
        m.extend_from_slice(&(self.segments.len() as u64).to_le_bytes());
        for s in &self.segments {
            m.extend_from_slice(&s.start.to_le_bytes());
            m.extend_from_slice(&s.len.to_le_bytes());
            m.extend_from_slice(&s.first_seq.to_le_bytes());
            m.extend_from_slice(&s.last_seq.to_le_bytes());
            m.extend_from_slice(&s.hash);
            m.extend_from_slice(&(s.key.len() as u32).to_le_bytes());
            m.extend_from_slice(s.key.as_bytes());
        }
        m
    }

    /// The signed text.
    pub fn to_text(&self, key: &SigningKey) -> String {
        let sig = key.sign(&self.message()).to_bytes();
        let mut t = format!("{MAGIC}\nsession {}\n", self.session_id);
        let _ = writeln!(t, "recording {} {} {}", self.len, self.chunks, hex(&self.chain_head));
        for s in &self.segments {
            let _ = writeln!(
                t,
                "segment {} {} {} {} {} {}",
                s.start,
                s.len,
                s.first_seq,
                s.last_seq,
                hex(&s.hash),
                s.key
            );
        }
        let _ = writeln!(t, "sig {}", hex(&sig));
        t
    }

    /// Reads a manifest and checks it: signed by `key`, of session `session`, its segments
    /// following each other from byte 0 and chunk 0 and adding up to the totals it states.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn parse(
        text: &[u8],
        key: &VerifyingKey,
        session: SessionId,
    ) -> Result<Manifest, ManifestError> {
        let (m, sig) = Self::read(text)?;
        if key.verify_strict(&m.message(), &Signature::from_bytes(&sig)).is_err() {
            return Err(ManifestError::SignatureInvalid);
        }
        m.check(session)
    }

    /// [`Self::parse`] without the signature: for readers that only need to find bytes
    /// (the hash chain still checks what they read; `verify` checks the signature).
    ///
    /// # Errors
    /// The manifest does not parse, is of another session, or its segments do not follow
    /// each other.
    pub fn parse_unverified(text: &[u8], session: SessionId) -> Result<Manifest, ManifestError> {
        Self::read(text)?.0.check(session)
    }

    fn check(self, session: SessionId) -> Result<Manifest, ManifestError> {
        if self.session_id != session {
            return Err(ManifestError::OtherSession { found: self.session_id });
        }
        self.check_order()?;
        Ok(self)
    }

    fn read(text: &[u8]) -> Result<(Manifest, [u8; 64]), ManifestError> {
        let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad(format!("does not start with {MAGIC}")));
        }
        let session_id: SessionId = lines
            .next()
            .and_then(|l| l.strip_prefix("session "))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no session line"))?;
        let rec = lines
            .next()
            .and_then(|l| l.strip_prefix("recording "))
            .ok_or_else(|| bad("no recording line"))?;
        let mut f = rec.split(' ');
        let (Some(len), Some(chunks), Some(head), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad("recording line needs bytes, chunks and head"));
        };
        let len = len.parse().map_err(|_| bad("recording bytes"))?;
        let chunks = chunks.parse().map_err(|_| bad("recording chunks"))?;
        let chain_head = unhex::<32>(head).ok_or_else(|| bad("recording head"))?;
        let mut segments = Vec::new();
        let sig = loop {
            let line = lines.next().ok_or_else(|| bad("no sig line"))?;
            if let Some(sig) = line.strip_prefix("sig ") {
                break unhex::<64>(sig).ok_or_else(|| bad("sig is not 64 hex bytes"))?;
            }
            let rest =
                line.strip_prefix("segment ").ok_or_else(|| bad(format!("line {line:?}")))?;
            if segments.len() >= MAX_SEGMENTS {
                return Err(bad("too many segments"));
            }
            let mut f = rest.splitn(6, ' ');
            let mut num = |what: &str| -> Result<u64, ManifestError> {
                f.next().and_then(|v| v.parse().ok()).ok_or_else(|| bad(format!("segment {what}")))
            };
            let (start, slen, first_seq, last_seq) =
                (num("start")?, num("length")?, num("first seq")?, num("last seq")?);
            let hash = f.next().and_then(unhex::<32>).ok_or_else(|| bad("segment hash"))?;
            let key = f.next().filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN);
            let key = key.ok_or_else(|| bad("segment key"))?.to_owned();
            segments.push(Segment { key, start, len: slen, first_seq, last_seq, hash });
        };
        if lines.next().is_some() {
            return Err(bad("text after the signature"));
        }
        Ok((Manifest { session_id, segments, len, chunks, chain_head }, sig))
    }

    /// Segments follow each other from byte 0 and chunk 0 and add up to the totals.
    fn check_order(&self) -> Result<(), ManifestError> {
        let (mut at, mut seq) = (0u64, 0u64);
        for (index, s) in self.segments.iter().enumerate() {
            if s.start != at || s.len == 0 {
                return Err(ManifestError::Gap { index, start: s.start, expected: at });
            }
            if s.first_seq != seq || s.last_seq < s.first_seq {
                return Err(ManifestError::SeqGap { index, first_seq: s.first_seq, expected: seq });
            }
            at = at.checked_add(s.len).ok_or_else(|| bad("segment lengths overflow"))?;
            seq = s.last_seq.checked_add(1).ok_or_else(|| bad("chunk seqs overflow"))?;
        }
        if at != self.len || seq != self.chunks {
            return Err(ManifestError::Totals {
                len: at,
                chunks: seq,
                want_len: self.len,
                want_chunks: self.chunks,
            });
        }
        Ok(())
    }

    /// The segment holding byte `offset` of the recording, by index.
    pub fn segment_at(&self, offset: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.start + s.len <= offset);
        (i < self.segments.len()).then_some(i)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let seg = |i: u64, start, len, first, last| Segment {
            key: format!("recordings/x/segments/{start:016x}-00000000000000aa-{i}"),
            start,
            len,
            first_seq: first,
            last_seq: last,
            hash: [i as u8; 32],
        };
        Manifest {
            session_id: SessionId::from_bytes([7; 16]),
            segments: vec![seg(0, 0, 100, 0, 2), seg(1, 100, 50, 3, 3)],
            len: 150,
            chunks: 4,
            chain_head: [9; 32],
        }
    }

    #[test]
    fn a_manifest_reads_back_and_any_edit_fails_its_signature() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let m = manifest();
        let text = m.to_text(&key);
        let id = m.session_id;
        assert_eq!(Manifest::parse(text.as_bytes(), &key.verifying_key(), id).unwrap(), m);
        // Swapping two segment lines, or changing one digit, breaks the signature.
        let lines: Vec<&str> = text.lines().collect();
        let swapped = [lines[0], lines[1], lines[2], lines[4], lines[3], lines[5]].join("\n");
        let e = Manifest::parse(swapped.as_bytes(), &key.verifying_key(), id).unwrap_err();
        assert_eq!(e, ManifestError::SignatureInvalid);
        let edited = text.replacen("segment 100 50", "segment 100 51", 1);
        let e = Manifest::parse(edited.as_bytes(), &key.verifying_key(), id).unwrap_err();
        assert_eq!(e, ManifestError::SignatureInvalid);
        let other = SigningKey::from_bytes(&[2; 32]);
        let e = Manifest::parse(text.as_bytes(), &other.verifying_key(), id).unwrap_err();
        assert_eq!(e, ManifestError::SignatureInvalid);
        let e =
            Manifest::parse(text.as_bytes(), &key.verifying_key(), SessionId::from_bytes([8; 16]))
                .unwrap_err();
        assert_eq!(e, ManifestError::OtherSession { found: id });
    }

    #[test]
    fn segments_must_follow_each_other() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let mut m = manifest();
        m.segments[1].start = 101;
        let e = Manifest::parse(m.to_text(&key).as_bytes(), &key.verifying_key(), m.session_id);
        assert_eq!(e.unwrap_err(), ManifestError::Gap { index: 1, start: 101, expected: 100 });
        let mut m = manifest();
        m.segments[1].first_seq = 4;
        m.segments[1].last_seq = 4;
        let e = Manifest::parse(m.to_text(&key).as_bytes(), &key.verifying_key(), m.session_id);
        assert_eq!(e.unwrap_err(), ManifestError::SeqGap { index: 1, first_seq: 4, expected: 3 });
        let mut m = manifest();
        m.len = 151;
        let e = Manifest::parse(m.to_text(&key).as_bytes(), &key.verifying_key(), m.session_id);
        assert!(matches!(e.unwrap_err(), ManifestError::Totals { .. }));
    }

    #[test]
    fn segment_at_finds_the_segment_of_a_byte() {
        let m = manifest();
        assert_eq!(m.segment_at(0), Some(0));
        assert_eq!(m.segment_at(99), Some(0));
        assert_eq!(m.segment_at(100), Some(1));
        assert_eq!(m.segment_at(149), Some(1));
        assert_eq!(m.segment_at(150), None);
    }

    #[test]
    fn chunk_extent_reads_a_chunk_header() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let start = crate::SessionStart {
            session_id: SessionId::from_bytes([7; 16]),
            user: "a".into(),
            target: "t".into(),
            target_host: "h".into(),
            target_login: "l".into(),
            client_addr: "c".into(),
            started_at_us: 1,
        };
        let mut w = crate::RecordingWriter::new(start, key);
        let bytes = w.flush(5, true).unwrap();
        let c = crate::chunks(&bytes).next().unwrap().unwrap();
        let e = chunk_extent(&bytes[crate::FILE_HEADER_LEN..], 24).unwrap();
        assert_eq!((e.seq, e.len), (0, c.encoded_len() as u64));
        assert_eq!(crate::FILE_HEADER_LEN as u64 + e.len, bytes.len() as u64);
        let at = crate::FILE_HEADER_LEN + e.hash_at as usize;
        assert_eq!(bytes[at..at + 32], c.hash);
        assert!(chunk_extent(&bytes[..10], 0).is_err());
    }
}
