//! The report: what happened over a period, for the people who answer to auditors
//! (`keepwatch report` and the console's `GET /api/v1/report`).
//! Sessions per person, target and day, the commands and statements run most, transfers,
//! refusals and terminations, and the state of verification and retention; as JSON, or as
//! one HTML file with inline SVG charts that opens offline (no script, no network).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use keepwatch_core::AuditAction;
use keepwatch_store::{AuditFilter, SessionFilter, Store, StoreError, TransferFilter};
use serde_json::{Value, json};

use crate::rfc3339;

/// The refusals and terminations a report counts, in this order.
const INCIDENTS: [AuditAction; 7] = [
    AuditAction::LoginRefused,
    AuditAction::SessionRefused,
    AuditAction::ForwardingRefused,
    AuditAction::StatementRefused,
    AuditAction::HostKeyMismatch,
    AuditAction::SessionTerminated,
    AuditAction::RecordingFailed,
];

const DAY_US: i64 = 86_400_000_000;

fn count_by<'a>(items: impl Iterator<Item = &'a str>) -> Vec<(String, u64)> {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for i in items {
        *m.entry(i).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = m.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn pairs(v: &[(String, u64)]) -> Value {
    Value::Array(v.iter().map(|(k, n)| json!({"name": k, "count": n})).collect())
}

/// When a period of `secs` seconds ending at `now_us` starts (unix microseconds).
pub fn period_start(now_us: i64, secs: u64) -> i64 {
    now_us.saturating_sub(i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1_000_000))
}

/// The report's data, sessions that started from `since_us` to `now`: what the JSON is and
/// the HTML shows.
///
/// # Errors
/// Store failures.
pub async fn gather(store: &Store, since_us: i64, now: i64) -> Result<Value, StoreError> {
    let filter = SessionFilter { since_us: Some(since_us), ..Default::default() };
    let sessions = store.sessions(&filter).await?;
    let per_person = count_by(sessions.iter().map(|s| s.person.as_str()));
    let per_target = count_by(sessions.iter().map(|s| s.target.as_str()));
    let mut per_day: BTreeMap<i64, u64> = BTreeMap::new();
    let first_day = since_us.div_euclid(DAY_US);
    for d in first_day..=now.div_euclid(DAY_US) {
        per_day.insert(d, 0);
    }
    for s in &sessions {
        *per_day.entry(s.started_at_us.div_euclid(DAY_US)).or_default() += 1;
    }
    let per_status = count_by(sessions.iter().map(|s| s.status.as_str()));
    let top = store.top_commands(since_us, 20).await?;
    let transfers: Vec<_> = store
        .transfers(&TransferFilter::default())
        .await?
        .into_iter()
        .filter(|t| t.at_us >= since_us)
        .collect();
    let mut incidents = Vec::new();
    for action in INCIDENTS {
        let f = AuditFilter { action: Some(action), ..Default::default() };
        let n = store.audit_events(&f).await?.iter().filter(|e| e.at_us >= since_us).count();
        incidents.push((action.as_str().to_owned(), n as u64));
    }
    let verified = AuditFilter {
        action: Some(AuditAction::RecordingsVerified),
        limit: Some(1),
        ..Default::default()
    };
    let last_verify = store.audit_events(&verified).await?.into_iter().next();
    let deleted = store.tombstones().await?.iter().filter(|t| t.at_us >= since_us).count();
    Ok(json!({
        "generated_at": rfc3339(now),
        "since": rfc3339(since_us),
        "sessions": {
            "total": sessions.len(),
            "per_person": pairs(&per_person),
            "per_target": pairs(&per_target),
            "per_status": pairs(&per_status),
            "per_day": per_day.iter().map(|(d, n)| json!({"day": rfc3339(d * DAY_US)[..10].to_owned(), "count": n})).collect::<Vec<_>>(),
        },
        "top_commands": top.iter().map(|(c, n)| json!({"command": c, "count": n})).collect::<Vec<_>>(),
        "transfers": {
            "total": transfers.len(),
            "uploads": transfers.iter().filter(|t| t.upload).count(),
            "downloads": transfers.iter().filter(|t| !t.upload).count(),
            "bytes": transfers.iter().map(|t| t.bytes).sum::<u64>(),
        },
        "incidents": pairs(&incidents),
        "verification": last_verify.map(|e| json!({"at": rfc3339(e.at_us), "by": e.actor, "detail": e.detail})),
        "retention": {
            "policies": store.retention_policies().await?.len(),
            "holds": store.holds(false).await?.len(),
            "deleted_in_period": deleted,
        },
    }))
}

/// HTML text, escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A horizontal bar chart of `(label, count)`, inline SVG.
fn bars(title: &str, items: &[(String, u64)]) -> String {
    let items = &items[..items.len().min(15)];
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let h = 22 * items.len().max(1) + 10;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg role=\"img\" aria-label=\"{}\" width=\"640\" height=\"{h}\" viewBox=\"0 0 640 {h}\">",
        esc(title),
        esc(title)
    );
    if items.is_empty() {
        svg.push_str("<text x=\"0\" y=\"20\">none</text>");
    }
    for (i, (label, n)) in items.iter().enumerate() {
        let y = 22 * i + 4;
        let w = (*n as f64 / max as f64 * 380.0).max(2.0);
        let short: String = label.chars().take(40).collect();
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" class=\"l\">{}</text><rect x=\"200\" y=\"{y}\" width=\"{w:.0}\" height=\"16\" class=\"b\"/><text x=\"{:.0}\" y=\"{}\">{n}</text>",
            y + 13,
            esc(&short),
            205.0 + w,
            y + 13
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// A column chart of sessions per day, inline SVG.
fn columns(title: &str, days: &[(String, u64)]) -> String {
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let n = days.len().max(1);
    let w = (600 / n).clamp(2, 40);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg role=\"img\" aria-label=\"{}\" width=\"640\" height=\"180\" viewBox=\"0 0 640 180\">",
        esc(title),
        esc(title)
    );
    for (i, (day, c)) in days.iter().enumerate() {
        let h = (*c as f64 / max as f64 * 140.0).max(if *c > 0 { 2.0 } else { 0.0 });
        let x = i * w + 20;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{:.0}\" width=\"{}\" height=\"{h:.0}\" class=\"b\"><title>{}: {c}</title></rect>",
            150.0 - h,
            w.saturating_sub(1).max(1),
            esc(day)
        );
    }
    if let (Some((first, _)), Some((last, _))) = (days.first(), days.last()) {
        // The last day's label ends under the last bar (a short period leaves the right empty).
        let end = (days.len() * w + 20).clamp(200, 620);
        let _ = write!(
            svg,
            "<text x=\"20\" y=\"170\">{}</text><text x=\"{end}\" y=\"170\" text-anchor=\"end\">{}</text><text x=\"0\" y=\"14\">{max}</text>",
            esc(first),
            esc(last)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn list(v: &Value, key: &str) -> Vec<(String, u64)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e[key].as_str().unwrap_or_default().to_owned(),
                        e["count"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The report as one self-contained HTML page.
pub fn html(d: &Value) -> String {
    let s = &d["sessions"];
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>Keepwatch report</title><style>\
         body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:60em}\
         h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}\
         .b{fill:#3b6ea5}.l{font-size:12px}svg text{font-size:12px;fill:#222}\
         figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}\
         table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}\
         .n{font-size:2em;font-weight:700}.k{display:inline-block;margin-right:3em}\
         </style></head><body>",
    );
    let _ = write!(
        out,
        "<h1>Keepwatch report</h1><p>Sessions that started from {} to {}.</p>\
         <div><span class=\"k\"><span class=\"n\" id=\"sessions-total\">{}</span><br>sessions</span>\
         <span class=\"k\"><span class=\"n\">{}</span><br>transfers</span>\
         <span class=\"k\"><span class=\"n\">{}</span><br>deleted by retention</span></div>",
        esc(d["since"].as_str().unwrap_or_default()),
        esc(d["generated_at"].as_str().unwrap_or_default()),
        s["total"],
        d["transfers"]["total"],
        d["retention"]["deleted_in_period"],
    );
    out.push_str("<h2>Sessions</h2>");
    out.push_str(&columns("Sessions per day", &list(&s["per_day"], "day")));
    out.push_str(&bars("Sessions per person", &list(&s["per_person"], "name")));
    out.push_str(&bars("Sessions per target", &list(&s["per_target"], "name")));
    out.push_str(&bars("How sessions ended", &list(&s["per_status"], "name")));
    out.push_str("<h2>Commands and statements run most</h2>");
    out.push_str(&bars("Top commands", &list(&d["top_commands"], "command")));
    out.push_str("<h2>Refusals and terminations</h2>");
    out.push_str(&bars("Refusals and terminations", &list(&d["incidents"], "name")));
    let t = &d["transfers"];
    let _ = write!(
        out,
        "<h2>Transfers</h2><table><tr><th>uploads</th><th>downloads</th><th>bytes</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        t["uploads"], t["downloads"], t["bytes"]
    );
    out.push_str("<h2>Verification and retention</h2><table>");
    match d["verification"].as_object() {
        Some(v) => {
            let _ = write!(
                out,
                "<tr><th>last verification</th><td>{} by {}: {}</td></tr>",
                esc(v["at"].as_str().unwrap_or_default()),
                esc(v["by"].as_str().unwrap_or_default()),
                esc(v["detail"].as_str().unwrap_or_default())
            );
        }
        None => out.push_str("<tr><th>last verification</th><td>never</td></tr>"),
    }
    let r = &d["retention"];
    let _ = writeln!(
        out,
        "<tr><th>retention policies</th><td>{}</td></tr><tr><th>legal holds in force</th><td>{}</td></tr></table></body></html>",
        r["policies"], r["holds"]
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_people_typed_and_loads_nothing() {
        let d = json!({
            "since": "2026-11-01T00:00:00Z", "generated_at": "2026-12-01T00:00:00Z",
            "sessions": {"total": 1, "per_person": [{"name": "<script>alert(1)</script>", "count": 1}],
                "per_target": [], "per_status": [], "per_day": [{"day": "2026-12-01", "count": 1}]},
            "top_commands": [{"command": "rm -rf / \"&'", "count": 3}],
            "transfers": {"total": 0, "uploads": 0, "downloads": 0, "bytes": 0},
            "incidents": [], "verification": null,
            "retention": {"policies": 0, "holds": 0, "deleted_in_period": 0},
        });
        let page = html(&d);
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("rm -rf / &quot;&amp;&#39;"));
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
        assert_eq!(page.matches("<svg").count(), 6);
    }
}
