//! The OpenAPI 3.1 document of `/api/v1` (`docs/api.md` is the prose).

use serde_json::{Value, json};

fn op(summary: &str, role: &str) -> Value {
    json!({
        "summary": summary,
        "description": format!("Role: {role}."),
        "responses": {
            "200": { "description": "OK", "content": { "application/json": {} } },
            "400": { "description": "A malformed or incomplete request; the error says what to send" },
            "401": { "description": "Not logged in" },
            "403": { "description": "Role too low, or missing X-CSRF-Token" },
            "404": { "description": "No such thing, or not yours to see" },
            "409": { "description": "The session is not live (watch, terminate)" },
            "429": { "description": "Login locked after too many failed attempts (SSH and web together); see Retry-After" },
            "500": { "description": "The audit event could not be written, so nothing is shown" },
            "503": { "description": "Busy: too many replays, exports, verifications or searches (or password checks) at once; see Retry-After" }
        }
    })
}

fn id_param() -> Value {
    json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }])
}

pub(crate) fn document() -> Value {
    let with_id = |mut v: Value| {
        v["parameters"] = id_param();
        v
    };
    let mut replay = with_id(op(
        "One page of a window of one channel: the keyframe at from_us, then events to until_us. A page holds at most replay_max_events events and replay_max_bytes of events; when it stops early, truncated is true and next is the cursor of the following page (pass it as cursor, with the same until_us). Every window is audited (one recording_replayed per caller, address and session every 5 minutes)",
        "any; user: own",
    ));
    let query = |name: &str, ty: &str, what: &str| json!({ "name": name, "in": "query", "required": false, "schema": { "type": ty }, "description": what });
    if let Some(p) = replay["parameters"].as_array_mut() {
        p.push(query("channel", "integer", "the channel (default: the first terminal channel)"));
        p.push(query(
            "from_us",
            "integer",
            "where the window starts (microseconds into the session)",
        ));
        p.push(query("until_us", "integer", "where it ends (default: the end)"));
        p.push(query("cursor", "string", "the next of the page before (replaces from_us)"));
    }
    let mut untag = with_id(op(
        "Take one tag off a session, audited as session_untagged when it carried it; answers removed and the session's tags",
        "auditor or admin",
    ));
    if let Some(p) = untag["parameters"].as_array_mut() {
        p.push(json!({ "name": "tag", "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Keepwatch API", "version": "1" },
        "components": {
            "securitySchemes": {
                "cookie": { "type": "apiKey", "in": "cookie", "name": "kw_session" },
                "token": { "type": "http", "scheme": "bearer" }
            }
        },
        "security": [{ "cookie": [] }, { "token": [] }],
        "paths": {
            "/api/v1/login": { "post": op("Log in with name and password; sets the session cookie", "anyone") },
            "/api/v1/logout": { "post": op("Log out", "any") },
            "/api/v1/me": { "get": op("Who is logged in, the CSRF token, and (auditors and admins) verify_alert: what the newest verify round found when it found a problem, else null", "any") },
            "/api/v1/sessions": { "get": op("Sessions, newest first (filters: user, target, status, since, until, limit, reason, tag), each with its tags", "any; user: own sessions; a user token without a person: none") },
            "/api/v1/sessions/{id}": { "get": with_id(op("One session with channels, transfers, commands and its verification (the recording verified piece by piece when it changed, the row compared on every request)", "any; user: own")) },
            "/api/v1/sessions/{id}/replay": { "get": replay },
            "/api/v1/sessions/{id}/export": { "get": with_id(op("asciicast v2 download, streamed as the recording is read", "auditor")) },
            "/api/v1/sessions/{id}/terminate": { "post": with_id(op("End a live session with a reason", "auditor")) },
            "/api/v1/sessions/{id}/tags": { "post": with_id(op("Put tags on a session: body {\"tags\": [...]}, each 1 to 64 characters of a-z 0-9 . _ : / - (lowercased; at most 32 a session), audited as session_tagged with the ones added; answers added and the session's tags", "auditor or admin")) },
            "/api/v1/sessions/{id}/tags/{tag}": { "delete": untag },
            "/api/v1/sessions/{id}/watch": { "get": with_id(op("WebSocket: the current screen, then live output", "auditor")) },
            "/api/v1/search": { "get": op("Substring search over commands and output (q, user, target, since, until, commands_only, tag, limit)", "any; user: own sessions") },
            "/api/v1/report": { "get": op("The report of a period (since, e.g. 30d): sessions per person, target and day, top commands, transfers, refusals, verification and retention; JSON, or the offline HTML page with format=html. Audited like a search", "auditor") },
            "/api/v1/index": { "get": op("Index status: sessions not fully indexed, or those named (session=ID,ID); state complete, behind or error, bytes indexed of bytes recorded", "auditor") },
            "/api/v1/live": { "get": op("Active sessions with their last command", "auditor") },
            "/api/v1/audit": { "get": op("Audit events, newest first (actor, session, action, limit)", "auditor") },
            "/api/v1/people": { "get": op("People", "admin"), "post": op("Add a person", "admin") },
            "/api/v1/targets": { "get": op("Targets (never their secrets)", "admin"), "post": op("Add a target with a password (write-only) and either host_key or trust_on_first_use: true (400 with neither)", "admin") },
            "/api/v1/grants": { "get": op("Grants", "admin"), "post": op("Grant a target to a person", "admin"), "delete": op("Revoke (user, target)", "admin") },
            "/api/v1/tokens": { "post": op("Create an API token, shown once (name, role, person; person required for the user role)", "admin") },
            "/api/v1/openapi.json": { "get": op("This document", "anyone") }
        }
    })
}
