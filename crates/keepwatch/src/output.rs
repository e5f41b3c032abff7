//! Shared output helpers: times, tables, the CLI's viewer, and files written whole or not
//! at all.

use std::borrow::Cow;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use keepwatch_core::{Role, Viewer, escape_controls};
use time::OffsetDateTime;

/// RFC 3339 in UTC with microseconds, as the API prints it.
pub(crate) use keepwatch_web::rfc3339;

/// Text from the database as it may reach the terminal: control characters escaped
/// visibly (rows stored before audit events were cleaned, names and paths from outside).
pub(crate) fn safe(s: &str) -> Cow<'_, str> {
    escape_controls(s)
}

/// Prints rows as left-aligned columns under a header; every cell is printed [`safe`].
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|r| r.iter().map(|c| safe(c).into_owned()).collect()).collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// The audit actor for CLI actions: `local:<os user>`, the user the process runs as (from
/// its uid, not from `$USER`, which whoever runs the CLI sets as they like).
pub(crate) fn local_actor() -> String {
    match os_user_name() {
        Some(user) => format!("local:{user}"),
        None => match process_uid() {
            Some(uid) => format!("local:uid{uid}"),
            None => "local:unknown".into(),
        },
    }
}

/// The CLI as a viewer of sessions: the local OS user, with the admin role (whoever can
/// open the data directory holds everything in it).
pub(crate) fn cli_viewer() -> Viewer {
    Viewer { actor: local_actor(), person: None, role: Role::Admin, client_addr: None }
}

fn process_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::metadata("/proc/self").ok()?.uid())
}

/// The name of the process's user from /etc/passwd.
fn os_user_name() -> Option<String> {
    let uid = process_uid()?.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// A file written whole or not at all: [`NewFile::create`] makes a new file next to `dest`
/// (created exclusively and never through a symlink, mode 0600); [`NewFile::commit`] syncs
/// it and renames it over `dest` once the caller has checked what it wrote. Dropped
/// without a commit (any failure on the way), it removes the new file and `dest` is left as
/// it was: an existing file is never truncated first, and a symlink at `dest` is replaced by
/// the rename, never followed.
pub(crate) struct NewFile {
    file: Option<std::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl NewFile {
    pub(crate) fn create(dest: &Path) -> anyhow::Result<NewFile> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .with_context(|| format!("{} names no file", dest.display()))?
            .to_string_lossy()
            .into_owned();
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("random source failed: {e}"))?;
        let suffix: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{name}.keepwatch-{suffix}.tmp"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(NewFile { file: Some(file), tmp, dest: dest.to_path_buf() })
    }

    /// Appends `bytes`.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let file = self.file.as_mut().context("file already closed")?;
        file.write_all(bytes).with_context(|| format!("cannot write {}", self.tmp.display()))
    }

    /// Syncs the new file and moves it over the destination.
    pub(crate) fn commit(mut self) -> anyhow::Result<()> {
        let file = self.file.take().context("file already closed")?;
        file.sync_all().with_context(|| format!("cannot write {}", self.tmp.display()))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("cannot move the new file over {}", self.dest.display()))?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

pub(crate) fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A point in time for `--since`/`--until`: RFC 3339 (`2026-11-25T10:00:00Z`), a date
/// (`2026-11-25`, midnight UTC), or an age (`90s`, `30m`, `2h`, `7d`: that long ago).
pub(crate) fn parse_time(s: &str) -> anyhow::Result<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1000) as i64);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &date_format) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1_000_000);
    }
    let unit = |suffix: char, secs: i64| {
        s.strip_suffix(suffix).and_then(|n| n.parse::<i64>().ok()).map(|n| n * secs)
    };
    let ago = unit('s', 1)
        .or_else(|| unit('m', 60))
        .or_else(|| unit('h', 3600))
        .or_else(|| unit('d', 86400));
    match ago {
        Some(secs) if secs >= 0 => Ok(keepwatch_store::now_us() - secs * 1_000_000),
        _ => anyhow::bail!(
            "{s:?} is not a time: use RFC 3339 (2026-11-25T10:00:00Z), a date (2026-11-25) or an age (30m, 2h, 7d)"
        ),
    }
}
