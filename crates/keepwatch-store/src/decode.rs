//! Rows read back into the store's row types, the same code for every backend.
//!
//! Each backend's rows implement [`Cols`] (typed reads by column name that fail as a
//! [`BadValue`] instead of panicking on an edited value); the decoders here turn them into
//! `SessionRow`, `TransferRow` and the rest. The schemas of both backends use the same column
//! names, 64-bit integers, text, bytes and booleans, so one decoder serves both.

use std::str::FromStr;

use keepwatch_core::{RecordingFailure, SessionId};

use crate::error::BadValue;
use crate::rows::*;

/// Typed reads of one row's columns.
pub(crate) trait Cols {
    fn text(&self, c: &str) -> Result<String, BadValue>;
    fn opt_text(&self, c: &str) -> Result<Option<String>, BadValue>;
    fn int(&self, c: &str) -> Result<i64, BadValue>;
    fn opt_int(&self, c: &str) -> Result<Option<i64>, BadValue>;
    fn flag(&self, c: &str) -> Result<bool, BadValue>;
    fn opt_flag(&self, c: &str) -> Result<Option<bool>, BadValue>;
    fn bytes(&self, c: &str) -> Result<Vec<u8>, BadValue>;
    fn opt_bytes(&self, c: &str) -> Result<Option<Vec<u8>>, BadValue>;
    /// Whether the row has this column at all (joins some queries add).
    fn has(&self, c: &str) -> bool;
}

macro_rules! impl_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn text(&self, c: &str) -> Result<String, BadValue> {
                sqlx::Row::try_get(self, c).map_err(|e| BadValue::new(c, e))
            }
            fn opt_text(&self, c: &str) -> Result<Option<String>, BadValue> {
                sqlx::Row::try_get(self, c).map_err(|e| BadValue::new(c, e))
            }
            fn int(&self, c: &str) -> Result<i64, BadValue> {
                sqlx::Row::try_get(self, c).map_err(|e| BadValue::new(c, e))
            }
            fn opt_int(&self, c: &str) -> Result<Option<i64>, BadValue> {
                sqlx::Row::try_get(self, c).map_err(|e| BadValue::new(c, e))
            }
            fn flag(&self, c: &str) -> Result<bool, BadValue> {
                sqlx::Row::try_get(self, c).map_err(|e| BadValue::new(c, e))
            }
            fn opt_flag(&self, c: &str) -> Result<Option<bool>, BadValue> {
                sqlx::Row::try_get(self, c).map_err(|e| BadValue::new(c, e))
            }
            fn bytes(&self, c: &str) -> Result<Vec<u8>, BadValue> {
                sqlx::Row::try_get(self, c).map_err(|e| BadValue::new(c, e))
            }
            fn opt_bytes(&self, c: &str) -> Result<Option<Vec<u8>>, BadValue> {
                sqlx::Row::try_get(self, c).map_err(|e| BadValue::new(c, e))
            }
            fn has(&self, c: &str) -> bool {
                sqlx::Row::try_column(self, c).is_ok()
            }
        }
    };
}

impl_cols!(sqlx::sqlite::SqliteRow);
impl_cols!(sqlx::postgres::PgRow);

fn parse<T: FromStr>(what: &str, v: &str) -> Result<T, BadValue>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e: T::Err| BadValue::new(what, e))
}

fn unsigned(what: &str, v: i64) -> Result<u64, BadValue> {
    u64::try_from(v).map_err(|e| BadValue::new(what, e))
}

fn narrow<T: TryFrom<i64>>(what: &str, v: i64) -> Result<T, BadValue>
where
    T::Error: std::fmt::Display,
{
    T::try_from(v).map_err(|e| BadValue::new(what, e))
}

pub(crate) fn hash32(what: &str, v: Vec<u8>) -> Result<[u8; 32], BadValue> {
    v.try_into().map_err(|_| BadValue::new(what, "hash is not 32 bytes"))
}

pub(crate) fn session_id(r: &impl Cols, c: &str) -> Result<SessionId, BadValue> {
    parse(c, &r.text(c)?)
}

fn split_list(v: Option<String>) -> Vec<String> {
    v.map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The comma-separated form of an algorithm list; `None` for the defaults.
pub(crate) fn join_list(v: &[String]) -> Option<String> {
    (!v.is_empty()).then(|| v.join(","))
}

pub(crate) fn person(r: &impl Cols, ssh_keys: Vec<String>) -> Result<PersonRow, BadValue> {
    Ok(PersonRow {
        name: r.text("name")?,
        role: parse("people.role", &r.text("role")?)?,
        password_hash: r.opt_text("password_hash")?,
        ssh_keys,
        created_at_us: r.int("created_at_us")?,
        disabled: r.opt_flag("disabled")?.unwrap_or(false),
        scram_verifier: r.opt_text("scram_verifier")?,
    })
}

pub(crate) fn target(r: &impl Cols) -> Result<TargetRow, BadValue> {
    let secret = r.bytes("secret")?;
    let secret = match r.text("secret_kind")?.as_str() {
        "password" => TargetSecret::Password(secret),
        "key" => TargetSecret::PrivateKey(secret),
        other => return Err(BadValue::new("targets.secret_kind", other)),
    };
    Ok(TargetRow {
        name: r.text("name")?,
        host: r.text("host")?,
        port: narrow("targets.port", r.int("port")?)?,
        login: r.text("login")?,
        secret,
        host_key: r.opt_text("host_key")?,
        trust_on_first_use: r.flag("trust_on_first_use")?,
        on_recording_failure: RecordingFailure::from_str(&r.text("on_recording_failure")?)
            .map_err(|e| BadValue::new("targets.on_recording_failure", e))?,
        algorithms: Algorithms {
            kex: split_list(r.opt_text("kex_algorithms")?),
            host_key: split_list(r.opt_text("host_key_algorithms")?),
            ciphers: split_list(r.opt_text("ciphers")?),
            macs: split_list(r.opt_text("macs")?),
        },
        protocol: parse("targets.protocol", &r.text("protocol")?)?,
        database: match r.opt_text("database_name")? {
            None => None,
            Some(name) => Some(DatabaseTarget {
                name,
                tls: match r.opt_text("tls")? {
                    Some(t) => parse("targets.tls", &t)?,
                    None => TlsMode::default(),
                },
                ca: r.opt_text("tls_ca")?,
            }),
        },
        require_reason: r.flag("require_reason")?,
        created_at_us: r.int("created_at_us")?,
    })
}

/// A list kept one item per line.
fn lines(text: &str) -> Vec<String> {
    text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

pub(crate) fn grant_policy(r: &impl Cols) -> Result<keepwatch_core::GrantPolicy, BadValue> {
    Ok(keepwatch_core::GrantPolicy {
        upload: r.flag("upload")?,
        download: r.flag("download")?,
        max_file_size: r
            .opt_int("max_file_size")?
            .map(|v| unsigned("grants.max_file_size", v))
            .transpose()?,
        forward_to: lines(&r.text("forward_to")?),
        remote_forward: r.flag("remote_forward")?,
        agent_forward: r.flag("agent_forward")?,
        record_tunnel_bytes: r.flag("record_tunnel_bytes")?,
        read_only: r.flag("read_only")?,
        deny_statements: lines(&r.text("deny_statements")?),
        deny_tables: lines(&r.text("deny_tables")?),
        capture_rows: r
            .opt_int("capture_rows")?
            .map(|v| narrow("grant_options.capture_rows", v))
            .transpose()?,
        capture_content: r
            .opt_int("capture_max_bytes")?
            .map(|v| unsigned("grant_options.capture_max_bytes", v))
            .transpose()?,
    })
}

pub(crate) fn node(r: &impl Cols) -> Result<NodeRow, BadValue> {
    Ok(NodeRow {
        id: parse("nodes.id", &r.text("id")?)?,
        started_at_us: r.int("started_at_us")?,
        heartbeat_at_us: r.int("heartbeat_at_us")?,
        web_addr: r.text("web_addr")?,
    })
}

pub(crate) fn web_login(r: &impl Cols) -> Result<WebLoginRow, BadValue> {
    Ok(WebLoginRow {
        person: parse("web_logins.person", &r.text("person")?)?,
        role: parse("web_logins.role", &r.text("role")?)?,
        person_created_at_us: r.int("person_created_at_us")?,
        csrf: r.text("csrf")?,
        started_at_us: r.int("started_at_us")?,
        last_seen_at_us: r.int("last_seen_at_us")?,
    })
}

pub(crate) fn session(r: &impl Cols) -> Result<SessionRow, BadValue> {
    Ok(SessionRow {
        id: session_id(r, "id")?,
        person: r.text("person")?,
        target: r.text("target")?,
        target_host: r.text("target_host")?,
        target_login: r.text("target_login")?,
        client_addr: r.text("client_addr")?,
        status: parse("sessions.status", &r.text("status")?)?,
        protocol: parse("sessions.protocol", &r.text("protocol")?)?,
        reason: r.opt_text("reason")?,
        stated_reason: r.opt_text("stated_reason")?,
        started_at_us: r.int("started_at_us")?,
        ended_at_us: r.opt_int("ended_at_us")?,
        chain_head: r
            .opt_bytes("chain_head")?
            .map(|v| hash32("sessions.chain_head", v))
            .transpose()?,
        seal_seq: r.opt_int("seal_seq")?.map(|v| unsigned("sessions.seal_seq", v)).transpose()?,
        seal_signature: r.opt_bytes("seal_signature")?,
        node: match r.text("node")?.as_str() {
            "" => None,
            n => Some(parse("sessions.node", n)?),
        },
    })
}

pub(crate) fn session_tag(r: &impl Cols) -> Result<SessionTag, BadValue> {
    Ok(SessionTag {
        tag: r.text("tag")?,
        added_by: r.text("added_by")?,
        added_at_us: r.int("added_at_us")?,
    })
}

pub(crate) fn channel(r: &impl Cols) -> Result<ChannelRow, BadValue> {
    Ok(ChannelRow {
        channel: narrow("channels.channel", r.int("channel")?)?,
        kind: r.text("kind")?,
        command: r.opt_text("command")?,
        subsystem: r.opt_text("subsystem")?,
        pty_term: r.opt_text("pty_term")?,
        destination: r.opt_text("destination")?,
        opened_at_us: r.int("opened_at_us")?,
        closed_at_us: r.opt_int("closed_at_us")?,
        exit_status: r
            .opt_int("exit_status")?
            .map(|v| narrow("channels.exit_status", v))
            .transpose()?,
    })
}

/// The `start-end,start-end` form of a transfer's byte ranges.
pub(crate) fn ranges_text(ranges: &[(u64, u64)]) -> String {
    ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect::<Vec<_>>().join(",")
}

pub(crate) fn transfer(r: &impl Cols) -> Result<TransferRow, BadValue> {
    let capture = match r.opt_text("capture_status")?.as_deref() {
        None => None,
        Some("captured") => Some(ContentCapture::Captured {
            bytes: unsigned("transfer_captures.bytes", r.opt_int("capture_bytes")?.unwrap_or(0))?,
        }),
        Some("skipped") => Some(ContentCapture::Skipped {
            reason: r.opt_text("capture_reason")?.unwrap_or_default(),
        }),
        Some(other) => return Err(BadValue::new("transfer_captures.status", other)),
    };
    Ok(TransferRow {
        id: r.int("id")?,
        session_id: session_id(r, "session_id")?,
        channel: narrow("transfers.channel", r.int("channel")?)?,
        at_us: r.int("at_us")?,
        protocol: r.text("protocol")?,
        path: r.text("path")?,
        upload: r.text("direction")? == "upload",
        bytes: unsigned("transfers.bytes", r.int("bytes")?)?,
        size: r.opt_int("size")?.map(|v| unsigned("transfers.size", v)).transpose()?,
        sha256: r.opt_text("sha256")?,
        complete: r.flag("complete")?,
        ranges: r
            .text("ranges")?
            .split(',')
            .filter_map(|p| {
                let (a, b) = p.split_once('-')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect(),
        capture,
    })
}

pub(crate) fn ledger(r: &impl Cols) -> Result<LedgerRow, BadValue> {
    Ok(LedgerRow {
        seq: unsigned("ledger.seq", r.int("seq")?)?,
        session_id: session_id(r, "session_id")?,
        chain_head: hash32("ledger.chain_head", r.bytes("chain_head")?)?,
        sealed_at_us: r.int("sealed_at_us")?,
        prev_hash: hash32("ledger.prev_hash", r.bytes("prev_hash")?)?,
        hash: hash32("ledger.hash", r.bytes("hash")?)?,
        signature: r.bytes("signature")?,
    })
}

pub(crate) fn stored_audit(r: &impl Cols) -> Result<StoredAudit, BadValue> {
    Ok(StoredAudit {
        id: r.int("id")?,
        at_us: r.int("at_us")?,
        actor: r.text("actor")?,
        action: r.text("action")?,
        session_id: r.opt_text("session_id")?,
        client_addr: r.opt_text("client_addr")?,
        detail: r.text("detail")?,
    })
}

pub(crate) fn audit(r: &impl Cols) -> Result<AuditRow, BadValue> {
    let raw = stored_audit(r)?;
    let what = |field: &str| format!("audit_events {} {field}", raw.id);
    Ok(AuditRow {
        id: raw.id,
        at_us: raw.at_us,
        action: raw.action.parse().map_err(|e| BadValue::new(what("action"), e))?,
        session_id: raw
            .session_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| BadValue::new(what("session_id"), e))?,
        actor: raw.actor,
        client_addr: raw.client_addr,
        detail: raw.detail,
    })
}

pub(crate) fn audit_link(r: &impl Cols) -> Result<AuditLink, BadValue> {
    Ok(AuditLink {
        event: stored_audit(r)?,
        hash: r.opt_bytes("chain_hash")?,
        signature: r.opt_bytes("chain_signature")?,
    })
}

pub(crate) fn command(r: &impl Cols) -> Result<CommandRow, BadValue> {
    Ok(CommandRow {
        seq: narrow("commands.seq", r.int("seq")?)?,
        channel: narrow("commands.channel", r.int("channel")?)?,
        kind: r.text("kind")?,
        at_us: r.int("at_us")?,
        start_offset_us: unsigned("commands.start_offset_us", r.int("start_offset_us")?)?,
        end_offset_us: r
            .opt_int("end_offset_us")?
            .map(|v| unsigned("commands.end_offset_us", v))
            .transpose()?,
        command: r.text("command")?,
        prompt: r.text("prompt")?,
        output: r.text("output")?,
        confidence: r.text("confidence")?,
        output_truncated: r.flag("output_truncated")?,
        full_screen: r.flag("full_screen")?,
        // Only the per-session listing joins it in.
        typed: if r.has("typed") { r.opt_text("typed")? } else { None },
    })
}

pub(crate) fn search_hit(r: &impl Cols, q: &SearchQuery) -> Result<SearchHit, BadValue> {
    let command = command(r)?;
    let snippet = crate::search::snippet(&command, &q.text, true);
    Ok(SearchHit {
        session_id: session_id(r, "session_id")?,
        person: r.text("person")?,
        target: r.text("target")?,
        in_output: false,
        offset_us: command.start_offset_us,
        at_us: command.at_us,
        command,
        snippet,
    })
}

/// An output block a search read, or `None` when it did not pass the query's filters (its
/// `body` is NULL then). `packed`: the body is zstd-compressed bytes (SQLite), not text.
pub(crate) fn output_candidate(
    r: &impl Cols,
    packed: bool,
) -> Result<Option<crate::search::Candidate>, BadValue> {
    let text = if packed {
        match r.opt_bytes("body")? {
            None => return Ok(None),
            Some(body) => unpack_text(&body)?,
        }
    } else {
        match r.opt_text("body")? {
            None => return Ok(None),
            Some(text) => text,
        }
    };
    let marks = crate::search::decode_marks(&r.bytes("marks")?)
        .ok_or_else(|| BadValue::new("output_blocks.marks", "not a list of marks"))?;
    Ok(Some(crate::search::Candidate {
        session_id: session_id(r, "session_id")?,
        person: r.text("person")?,
        target: r.text("target")?,
        block: OutputBlock {
            channel: narrow("output_blocks.channel", r.int("channel")?)?,
            at_us: r.int("at_us")?,
            start_offset_us: unsigned("output_blocks.start_offset_us", r.int("start_offset_us")?)?,
            end_offset_us: unsigned("output_blocks.end_offset_us", r.int("end_offset_us")?)?,
            text,
            marks,
        },
    }))
}

/// The id of an output block row.
pub(crate) fn output_candidate_id(r: &impl Cols) -> Result<i64, BadValue> {
    r.int("id")
}

/// Text as SQLite keeps an output block's: zstd.
pub(crate) fn pack_text(text: &str) -> Vec<u8> {
    thread_local! {
        // One compression context per thread, not one per block.
        static PACKER: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    PACKER
        .with_borrow_mut(|packer| {
            if packer.is_none() {
                *packer = zstd::bulk::Compressor::new(3).ok();
            }
            match packer {
                Some(p) => p.compress(text.as_bytes()),
                None => zstd::bulk::compress(text.as_bytes(), 3),
            }
        })
        .unwrap_or_else(|_| unreachable!("in-memory zstd"))
}

/// The text of an output block [`pack_text`] made. A search reads thousands of blocks, so
/// each thread keeps one decompression context, and the text gets the room its frame says
/// it needs (a frame that says more than the bound, or nothing, gets the bound; one that
/// says less than it holds fails, as a block the store did not write).
pub(crate) fn unpack_text(body: &[u8]) -> Result<String, BadValue> {
    // A block is at most a few hundred KiB of text: more is not a block the store wrote.
    const MOST: usize = 4 << 20;
    thread_local! {
        static UNPACKER: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let room = match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(Some(size)) => usize::try_from(size).unwrap_or(MOST).min(MOST),
        _ => MOST,
    };
    let bytes = UNPACKER
        .with_borrow_mut(|unpacker| {
            if unpacker.is_none() {
                *unpacker = zstd::bulk::Decompressor::new().ok();
            }
            match unpacker {
                Some(u) => u.decompress(body, room),
                None => zstd::bulk::decompress(body, room),
            }
        })
        .map_err(|e| BadValue::new("output_blocks.body", e))?;
    String::from_utf8(bytes).map_err(|e| BadValue::new("output_blocks.body", e))
}

pub(crate) fn keyframe(r: &impl Cols) -> Result<KeyframeRow, BadValue> {
    Ok(KeyframeRow {
        channel: narrow("keyframes.channel", r.int("channel")?)?,
        at_us: unsigned("keyframes.at_us", r.int("at_us")?)?,
        chunk_offset: unsigned("keyframes.chunk_offset", r.int("chunk_offset")?)?,
        skip_events: narrow("keyframes.skip_events", r.int("skip_events")?)?,
        cols: narrow("keyframes.cols", r.int("cols")?)?,
        rows: narrow("keyframes.rows", r.int("rows")?)?,
        screen: r.text("screen")?,
    })
}

pub(crate) fn token(r: &impl Cols) -> Result<TokenRow, BadValue> {
    Ok(TokenRow {
        name: r.text("name")?,
        role: parse("api_tokens.role", &r.text("role")?)?,
        person: r.opt_text("person")?.map(|p| parse("token_people.person", &p)).transpose()?,
        created_at_us: r.int("created_at_us")?,
        last_used_at_us: r.opt_int("last_used_at_us")?,
    })
}

/// What the indexer wrote for one session, before the recording's length is added.
pub(crate) struct IndexRow {
    pub(crate) session_id: SessionId,
    pub(crate) person: String,
    pub(crate) target: String,
    pub(crate) status: keepwatch_core::SessionStatus,
    pub(crate) complete: bool,
    pub(crate) commands: i64,
    pub(crate) error: Option<String>,
    pub(crate) updated_at_us: Option<i64>,
    pub(crate) bytes_indexed: Option<i64>,
    /// Some of its output blocks are not in the output index yet (an upgrade's rebuild).
    pub(crate) output_pending: bool,
}

pub(crate) fn index_row(r: &impl Cols) -> Result<IndexRow, BadValue> {
    Ok(IndexRow {
        session_id: session_id(r, "id")?,
        person: r.text("person")?,
        target: r.text("target")?,
        status: parse("sessions.status", &r.text("status")?)?,
        complete: r.opt_flag("complete")?.unwrap_or(false),
        commands: r.opt_int("commands")?.unwrap_or(0),
        error: r.opt_text("error")?,
        updated_at_us: r.opt_int("updated_at_us")?,
        bytes_indexed: r.opt_int("bytes_indexed")?,
        output_pending: r.has("output_pending") && r.opt_flag("output_pending")?.unwrap_or(false),
    })
}

pub(crate) fn retention(r: &impl Cols) -> Result<RetentionRow, BadValue> {
    use keepwatch_core::retention::{Policy, PolicyScope};
    let scope = PolicyScope::from_parts(&r.text("scope")?, &r.text("value")?)
        .map_err(|e| BadValue::new("retention_policies.scope", e))?;
    let keep_s = u64::try_from(r.int("keep_s")?)
        .map_err(|e| BadValue::new("retention_policies.keep_s", e))?;
    Ok(RetentionRow {
        policy: Policy { id: r.int("id")?, scope, keep_s },
        created_by: r.text("created_by")?,
        created_at_us: r.int("created_at_us")?,
    })
}

pub(crate) fn hold(r: &impl Cols) -> Result<HoldRow, BadValue> {
    use keepwatch_core::retention::{Hold, HoldScope};
    let scope = HoldScope::from_parts(&r.text("scope")?, &r.text("value")?)
        .map_err(|e| BadValue::new("legal_holds.scope", e))?;
    let released = match (r.opt_text("released_by")?, r.opt_int("released_at_us")?) {
        (Some(by), Some(at_us)) => Some(HoldRelease {
            by,
            at_us,
            reason: r.opt_text("release_reason")?.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(HoldRow {
        hold: Hold { id: r.int("id")?, scope },
        reason: r.text("reason")?,
        placed_by: r.text("placed_by")?,
        placed_at_us: r.int("placed_at_us")?,
        released,
    })
}

#[cfg(test)]
mod tests {
    use super::{pack_text, unpack_text};

    #[test]
    fn packed_text_unpacks_whatever_came_before_on_the_thread() {
        let big = "0123456789abcdef\n".repeat(64 * 1024);
        let texts = ["", "one line\n", "Σίσυφος ─┼─ 日本語\n", big.as_str()];
        for text in texts {
            let body = pack_text(text);
            assert_eq!(unpack_text(&body).unwrap(), text);
            // A bad body fails on its own and leaves the thread's context fit for the next.
            assert!(unpack_text(&body[..body.len() / 2]).is_err());
            assert!(unpack_text(b"not zstd at all").is_err());
            assert_eq!(unpack_text(&body).unwrap(), text);
        }
        // More than a block can be is refused, however it is packed.
        let huge = "x".repeat((4 << 20) + 1);
        assert!(unpack_text(&pack_text(&huge)).is_err());
    }
}
