//! The archive: where sealed recordings and kept copies of files live, an
//! `object_store::ObjectStore` built from a URL.
//!
//! - `file:///path` (the default: the data directory) keeps each sealed recording whole, as
//!   `recordings/<id>.kwr`; sealing renames the spool file into it.
//! - `s3://bucket/prefix` (any S3-compatible server) keeps each recording as write-once
//!   segments uploaded while the session runs, `recordings/<id>/segments/<start>-<writer>-<n>`,
//!   and a signed manifest written at the seal, `recordings/<id>/manifest`
//!   (`keepwatch_recording::manifest`). Keys are never reused: the start offset, a writer id
//!   drawn per upload run and a per-writer counter (bumped on every attempt, so a retry after
//!   a lost answer writes a new key) name each segment. Writes ask for conditional create
//!   (`If-None-Match: *`), but nothing relies on it: some servers overwrite anyway, which the
//!   manifest's hashes catch.
//!
//! Copies of transferred files are `captures/<session>/<transfer id>` in both.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use keepwatch_core::SessionId;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::StoreError;

const RECORDINGS: &str = "recordings";
const CAPTURES: &str = "captures";
const MANIFEST: &str = "manifest";
const SEGMENTS: &str = "segments";

/// How sealed recordings are kept in an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One object per recording, moved in whole at the seal (local directories).
    Whole,
    /// Segments uploaded as the session runs, and a signed manifest (object stores).
    Segmented,
}

/// How to reach an S3-compatible archive beyond its URL (`[storage]`); the rest comes from
/// the usual `AWS_*` variables and `~/.aws` files.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// `http://127.0.0.1:3900` for a server that is not AWS (path-style requests then).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow plain HTTP to the endpoint (a server on the same host or network).
    pub allow_http: bool,
    /// A key id and secret given by the program (tests); else the environment's.
    pub access_key: Option<(String, String)>,
}

/// The archive; see the module docs.
#[derive(Debug, Clone)]
pub struct Archive {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    /// The URL without credentials, for messages.
    url: String,
    /// The directory of a `file://` archive.
    local_root: Option<PathBuf>,
}

/// A whole recording or a segment, as the archive lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedSegment {
    pub key: String,
    /// Where it starts in the recording (from its key).
    pub start: u64,
    pub size: u64,
}

/// The state of an archived recording's objects, to tell whether they changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectsVersion {
    pub tag: String,
    pub modified_us: i64,
}

fn blob_err(e: object_store::Error) -> StoreError {
    StoreError::Blob(e)
}

impl Archive {
    /// A `file://` archive in `root` (created if missing), keeping recordings whole.
    ///
    /// # Errors
    /// The directories cannot be created.
    pub fn local(root: &Path) -> Result<Self, StoreError> {
        Self::local_with_layout(root, Layout::Whole)
    }

    /// A `file://` archive with the given layout (segmented: the object-store layout on a
    /// local directory, for tests that need no server).
    ///
    /// # Errors
    /// The directories cannot be created.
    pub fn local_with_layout(root: &Path, layout: Layout) -> Result<Self, StoreError> {
        let dir = root.join(RECORDINGS);
        std::fs::create_dir_all(&dir)
            .map_err(|source| StoreError::Io { path: dir.display().to_string(), source })?;
        let store = LocalFileSystem::new_with_prefix(root)?;
        Ok(Archive {
            store: Arc::new(store),
            layout,
            url: format!("file://{}", root.display()),
            local_root: Some(root.to_owned()),
        })
    }

    /// The archive at `url`: `file:///path`, or `s3://bucket[/prefix]` with `s3`'s
    /// settings and the `AWS_*` environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`, ...) or, without keys there,
    /// the `~/.aws/credentials` and `~/.aws/config` profile (`AWS_PROFILE`, else
    /// `default`).
    ///
    /// # Errors
    /// The URL is neither, or the S3 client cannot be built from it.
    pub fn from_url(url: &str, s3: &S3Options) -> Result<Self, StoreError> {
        let invalid = |what: String| StoreError::Invalid { what };
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid(format!(
                    "archive URL {url:?}: a file URL needs an absolute path (file:///var/lib/keepwatch)"
                )));
            }
            return Self::local(Path::new(path));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(invalid(format!(
                "archive URL {url:?}: use file:///path or s3://bucket/prefix"
            )));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.len() < 3 {
            return Err(invalid(format!("archive URL {url:?}: no bucket name")));
        }
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && let Some(p) = profile::load()
        {
            b = b.with_access_key_id(p.key_id).with_secret_access_key(p.secret);
            if let Some(t) = p.token {
                b = b.with_token(t);
            }
            if let Some(r) = p.region
                && std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                b = b.with_region(r);
            }
        }
        if let Some((id, secret)) = &s3.access_key {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        if let Some(e) = &s3.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if let Some(r) = &s3.region {
            b = b.with_region(r);
        }
        // Fail fast and let the shipper retry: it knows a session's backlog and the bound.
        // (The client options replace the builder's, so plain HTTP is allowed here.)
        let allow_http = s3.allow_http
            || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        b = b
            .with_config(AmazonS3ConfigKey::ConditionalPut, "etag")
            .with_retry(object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
                ..Default::default()
            })
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            );
        let s3store = b.build().map_err(|e| invalid(format!("archive URL {url:?}: {e}")))?;
        let store: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
            Arc::new(s3store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3store, prefix.trim_matches('/')))
        };
        Ok(Archive { store, layout: Layout::Segmented, url: url.to_owned(), local_root: None })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn whole_key(id: SessionId) -> ObjectPath {
        ObjectPath::from(format!("{RECORDINGS}/{id}.kwr"))
    }

    fn manifest_key(id: SessionId) -> ObjectPath {
        ObjectPath::from(format!("{RECORDINGS}/{id}/{MANIFEST}"))
    }

    fn segments_prefix(id: SessionId) -> ObjectPath {
        ObjectPath::from(format!("{RECORDINGS}/{id}/{SEGMENTS}"))
    }

    /// The key of a segment: where it starts, who wrote it, and that writer's counter.
    pub fn segment_key(id: SessionId, start: u64, writer: u64, n: u64) -> String {
        format!("{RECORDINGS}/{id}/{SEGMENTS}/{start:016x}-{writer:016x}-{n:08}")
    }

    fn capture_key(session: SessionId, transfer: i64) -> ObjectPath {
        ObjectPath::from(format!("{CAPTURES}/{session}/{transfer}"))
    }

    /// Where a whole recording is, for messages.
    pub fn recording_location(&self, id: SessionId) -> String {
        match (&self.local_root, self.layout) {
            (Some(root), Layout::Whole) => {
                root.join(RECORDINGS).join(format!("{id}.kwr")).display().to_string()
            }
            _ => format!("{}/{RECORDINGS}/{id}", self.url.trim_end_matches('/')),
        }
    }

    /// Writes a new object at `key`, asking the server to refuse an existing key.
    async fn create(&self, key: &ObjectPath, bytes: Bytes) -> Result<(), StoreError> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(key, PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(StoreError::Exists {
                op: "write archive object",
                kind: "archive object",
                id: key.to_string(),
            }),
            Err(e) => Err(blob_err(e)),
        }
    }

    /// Uploads one segment (whole chunks of a recording) under `key` ([`Self::segment_key`]).
    ///
    /// # Errors
    /// The archive refused or could not be reached; `Exists` when the server says the key
    /// is taken.
    pub async fn put_segment(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.create(&ObjectPath::from(key), bytes).await
    }

    /// Writes a sealed recording's manifest.
    ///
    /// A manifest already there is never replaced knowingly: it is looked for first, because
    /// some servers (Garage 2.5) accept a conditional create on an existing key and overwrite
    /// it. That leaves only two writers racing within one round trip (a node that was frozen
    /// past its lapse, resuming just as a survivor seals its session); the loser's manifest
    /// then disagrees with the ledger, and `verify` says so.
    ///
    /// # Errors
    /// As [`Self::put_segment`]; `Exists` when a manifest is there already.
    pub async fn put_manifest(&self, id: SessionId, text: String) -> Result<(), StoreError> {
        let key = Self::manifest_key(id);
        match self.store.head(&key).await {
            Ok(_) => {
                return Err(StoreError::Exists {
                    op: "write archive object",
                    kind: "archive object",
                    id: key.to_string(),
                });
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(blob_err(e)),
        }
        self.create(&key, Bytes::from(text)).await
    }

    /// The manifest of a segmented recording, as stored; `None` when there is none.
    ///
    /// # Errors
    /// The archive cannot be read.
    pub async fn manifest(&self, id: SessionId) -> Result<Option<Bytes>, StoreError> {
        match self.store.get(&Self::manifest_key(id)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(blob_err(e)),
        }
    }

    /// Bytes `range` of the object at `key`; `None` when it is missing.
    ///
    /// # Errors
    /// The archive cannot be read, or the range is past the object's end.
    pub async fn read_object_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<Bytes>, StoreError> {
        match self.store.get_range(&ObjectPath::from(key), range).await {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(blob_err(e)),
        }
    }

    /// The size of the object at `key`; `None` when it is missing.
    ///
    /// # Errors
    /// The archive cannot be read.
    pub async fn object_len(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(blob_err(e)),
        }
    }

    /// Deletes the object at `key` (a dead writer's segments once a manifest no longer
    /// needs them); a missing one is fine.
    ///
    /// # Errors
    /// The archive refused.
    pub async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(blob_err(e)),
        }
    }

    /// Deletes everything the archive holds of session `id`: its whole recording, or its
    /// manifest and segments, and the kept copies of its transfers. What is already gone is
    /// fine.
    ///
    /// # Errors
    /// The archive cannot be listed or refused a deletion.
    pub async fn delete_session(&self, id: SessionId) -> Result<(), StoreError> {
        let mut keys = vec![Self::whole_key(id), Self::manifest_key(id)];
        let captures = ObjectPath::from(format!("{CAPTURES}/{id}"));
        for prefix in [Self::segments_prefix(id), captures] {
            let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
            keys.extend(metas.into_iter().map(|m| m.location));
        }
        for key in keys {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(blob_err(e)),
            }
        }
        Ok(())
    }

    /// Every segment of session `id` in the archive, by start offset (keys that do not
    /// parse are left out).
    ///
    /// # Errors
    /// The archive cannot be listed.
    pub async fn segments(&self, id: SessionId) -> Result<Vec<ArchivedSegment>, StoreError> {
        let metas: Vec<_> = self.store.list(Some(&Self::segments_prefix(id))).try_collect().await?;
        let mut out: Vec<ArchivedSegment> = metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?;
                let start = u64::from_str_radix(name.split('-').next()?, 16).ok()?;
                Some(ArchivedSegment { key: m.location.to_string(), start, size: m.size })
            })
            .collect();
        out.sort_by(|a, b| (a.start, &a.key).cmp(&(b.start, &b.key)));
        Ok(out)
    }

    /// What identifies the objects of session `id`'s archived recording now (whole, or
    /// manifest and segments): their keys, sizes, version tags and times hashed together,
    /// so a segment overwritten in place is a new version. `None` when there are none.
    pub(crate) async fn objects_version(
        &self,
        id: SessionId,
    ) -> Result<Option<ObjectsVersion>, StoreError> {
        let metas: Vec<object_store::ObjectMeta> = match self.layout {
            Layout::Whole => match self.store.head(&Self::whole_key(id)).await {
                Ok(m) => vec![m],
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(blob_err(e)),
            },
            Layout::Segmented => {
                let prefix = ObjectPath::from(format!("{RECORDINGS}/{id}"));
                self.store.list(Some(&prefix)).try_collect().await?
            }
        };
        if metas.is_empty() {
            return Ok(None);
        }
        let mut h = blake3::Hasher::new();
        let mut modified_us = 0;
        for m in &metas {
            h.update(m.location.as_ref().as_bytes());
            h.update(&m.size.to_le_bytes());
            h.update(m.e_tag.as_deref().unwrap_or("").as_bytes());
            h.update(&[0]);
            let at = m.last_modified.timestamp_micros();
            h.update(&at.to_le_bytes());
            modified_us = modified_us.max(at);
        }
        Ok(Some(ObjectsVersion { tag: h.finalize().to_hex().to_string(), modified_us }))
    }

    /// The length of a whole recording; `None` when there is none.
    pub(crate) async fn whole_len(&self, id: SessionId) -> Result<Option<u64>, StoreError> {
        match self.store.head(&Self::whole_key(id)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(blob_err(e)),
        }
    }

    /// Bytes `range` of a whole recording; `None` when there is none.
    pub(crate) async fn whole_range(
        &self,
        id: SessionId,
        range: Range<u64>,
    ) -> Result<Option<Bytes>, StoreError> {
        match self.store.get_range(&Self::whole_key(id), range).await {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(blob_err(e)),
        }
    }

    /// Moves a sealed spool file into a whole-recording archive: a rename when the spool is
    /// on the archive's file system (the default data directory), else a copy made durable
    /// and renamed into place, then the spool file removed.
    ///
    /// # Errors
    /// The archive is not a local directory, or the move failed.
    pub(crate) fn commit_whole(&self, id: SessionId, spool_file: &Path) -> Result<(), StoreError> {
        let Some(root) = &self.local_root else {
            return Err(StoreError::Invalid {
                what: format!("archive {} keeps recordings in segments", self.url),
            });
        };
        let to = root.join(RECORDINGS).join(format!("{id}.kwr"));
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |source| StoreError::Io { path: p, source }
        };
        match std::fs::rename(spool_file, &to) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc_exdev()) => {
                let tmp = to.with_extension("copying");
                std::fs::copy(spool_file, &tmp)
                    .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
                    .and_then(|()| std::fs::rename(&tmp, &to))
                    .map_err(io(&to))?;
                std::fs::remove_file(spool_file).map_err(io(spool_file))
            }
            Err(e) => Err(io(spool_file)(e)),
        }
    }

    /// Stores the copy of a transfer's content from the file at `from` (absent: an empty
    /// file), written once: one request up to 8 MiB, else a multipart upload read from the
    /// file in 8 MiB parts (memory stays at a few parts). Checks the stored size after.
    ///
    /// # Errors
    /// The file cannot be read, or the archive refused or could not be reached.
    pub(crate) async fn put_capture(
        &self,
        session: SessionId,
        transfer: i64,
        from: &Path,
    ) -> Result<u64, StoreError> {
        const PART: usize = 8 << 20;
        let key = Self::capture_key(session, transfer);
        if let Some(root) = &self.local_root {
            // A local archive: the copy moves in by a rename, as recordings do.
            let to = root.join(key.as_ref());
            let from = from.to_owned();
            return tokio::task::spawn_blocking(move || local_move(&from, &to))
                .await
                .map_err(|e| StoreError::Invalid { what: format!("capture move failed: {e}") })?;
        }
        let io = |source| StoreError::Io { path: from.display().to_string(), source };
        let mut file = match tokio::fs::File::open(from).await {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let len = match &file {
            Some(f) => f.metadata().await.map_err(io)?.len(),
            None => 0,
        };
        use tokio::io::AsyncReadExt as _;
        if len as usize <= PART {
            let mut buf = Vec::with_capacity(len as usize);
            if let Some(f) = &mut file {
                f.read_to_end(&mut buf).await.map_err(io)?;
            }
            self.create(&key, Bytes::from(buf)).await?;
        } else if let Some(mut f) = file {
            let upload = self.store.put_multipart(&key).await?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
            let mut buf = vec![0; PART];
            loop {
                let n = f.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(2).await?;
                w.write(&buf[..n]);
            }
            w.finish().await?;
        }
        let stored = self.store.head(&key).await?.size;
        if stored != len {
            return Err(StoreError::Invalid {
                what: format!("the archive holds {stored} bytes of {key}, {len} were sent"),
            });
        }
        Ok(len)
    }

    /// The stored copy of a transfer's content, as a stream of pieces.
    ///
    /// # Errors
    /// `NotFound` when no copy was kept for the transfer.
    pub(crate) async fn capture(
        &self,
        session: SessionId,
        transfer: i64,
    ) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        match self.store.get(&Self::capture_key(session, transfer)).await {
            Ok(r) => Ok(r.into_stream().map_err(StoreError::from).boxed()),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NotFound {
                op: "read captured content",
                kind: "captured content of transfer",
                id: transfer.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The ids of every recording in the archive: whole ones, and segmented ones (with or
    /// without a manifest).
    ///
    /// # Errors
    /// The archive cannot be listed.
    pub async fn recordings(&self) -> Result<Vec<SessionId>, StoreError> {
        let prefix = ObjectPath::from(RECORDINGS);
        let listed = self.store.list_with_delimiter(Some(&prefix)).await?;
        let whole = listed
            .objects
            .iter()
            .filter_map(|m| m.location.filename()?.strip_suffix(".kwr")?.parse().ok());
        let dirs = listed.common_prefixes.iter().filter_map(|p| p.filename()?.parse().ok());
        let mut ids: Vec<SessionId> = whole.chain(dirs).collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// Moves a spooled file to `to` in a local archive (creating its directory): a rename, or a
/// durable copy across file systems; a missing file is stored empty. Returns its length.
fn local_move(from: &Path, to: &Path) -> Result<u64, StoreError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| StoreError::Io { path: p, source }
    };
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let len = match std::fs::metadata(from) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(to, b"").map_err(io(to))?;
            return Ok(0);
        }
        Err(e) => return Err(io(from)(e)),
    };
    match std::fs::rename(from, to) {
        Ok(()) => Ok(len),
        Err(e) if e.raw_os_error() == Some(libc_exdev()) => {
            let tmp = to.with_extension("copying");
            std::fs::copy(from, &tmp)
                .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, to))
                .map_err(io(to))?;
            std::fs::remove_file(from).map_err(io(from))?;
            Ok(len)
        }
        Err(e) => Err(io(from)(e)),
    }
}

/// `EXDEV`: a rename across file systems.
fn libc_exdev() -> i32 {
    18
}

/// Keys from the shared AWS credentials and config files.
mod profile {
    pub(super) struct Profile {
        pub key_id: String,
        pub secret: String,
        pub token: Option<String>,
        pub region: Option<String>,
    }

    /// The `[profile]` section of an INI file as key/value pairs.
    fn section(text: &str, names: &[String]) -> Vec<(String, String)> {
        let mut inside = false;
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = names.iter().any(|n| n == name.trim());
            } else if inside && let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        out
    }

    pub(super) fn load() -> Option<Profile> {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let file = |var: &str, name: &str| {
            std::env::var_os(var)
                .map(std::path::PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
                .and_then(|p| std::fs::read_to_string(p).ok())
        };
        let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
        let creds = section(
            &file("AWS_SHARED_CREDENTIALS_FILE", "credentials")?,
            std::slice::from_ref(&name),
        );
        let get = |kv: &[(String, String)], k: &str| {
            kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        };
        let config = file("AWS_CONFIG_FILE", "config")
            .map(|t| section(&t, &[name.clone(), format!("profile {name}")]))
            .unwrap_or_default();
        Some(Profile {
            key_id: get(&creds, "aws_access_key_id")?,
            secret: get(&creds, "aws_secret_access_key")?,
            token: get(&creds, "aws_session_token"),
            region: get(&config, "region"),
        })
    }
}
