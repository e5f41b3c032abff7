//! Shared output helpers: times, tables and the CLI's audit actor.

use time::OffsetDateTime;

/// RFC 3339 in UTC with microseconds, as the API prints it.
pub(crate) use keepwatch_web::rfc3339;

/// Prints rows as left-aligned columns under a header.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
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

/// The audit actor for CLI actions: `local:<os user>`.
pub(crate) fn local_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(os_user_name)
        .unwrap_or_else(|| "unknown".into());
    format!("local:{user}")
}

/// The name of the process's user from /etc/passwd (USER is unset under cron, CI and sudo -E).
fn os_user_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_owned())
    })
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
