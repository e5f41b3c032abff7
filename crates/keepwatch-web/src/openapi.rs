//! The OpenAPI 3.1 document of `/api/v1` (`docs/api.md` is the prose), generated from the
//! handlers' `#[utoipa::path]` attributes and the types they take and answer
//! ([`crate::views`], the query and body structs of `api.rs`), so that every parameter,
//! body, response and status code the server can give is in it. `it::openapi` runs
//! schemathesis against a running gateway to hold the document to that.
//!
//! The error sets below only describe answers; the handlers return them as
//! [`crate::ApiError`]s.

#![allow(dead_code)] // The error enums are descriptions: nothing constructs them.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::views::ErrorBody;

/// What every endpoint behind a login can answer.
#[derive(IntoResponses)]
pub(crate) enum Guarded {
    /// Not logged in: no or an unknown token, no or an expired browser session.
    #[response(status = 401)]
    NotLoggedIn(ErrorBody),
    /// The caller's role is too low, or a browser session's request that changes something
    /// came without its `X-CSRF-Token`.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The audit trail could not be written (so nothing is shown or done), or the store
    /// failed.
    #[response(status = 500)]
    Failed(ErrorBody),
}

/// A query or path that does not parse, or a value out of its range: the error names it.
#[derive(IntoResponses)]
pub(crate) enum Malformed {
    #[response(status = 400)]
    BadRequest(ErrorBody),
}

/// What an endpoint that takes a JSON body can answer about it.
#[derive(IntoResponses)]
pub(crate) enum JsonBody {
    /// The body is not JSON, is not the object this operation takes, or holds a value it
    /// refuses: the error says which.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The body is larger than the server reads (2 MiB).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// No `Content-Type: application/json`.
    #[response(status = 415)]
    NotJson(ErrorBody),
}

/// No such thing, or not the caller's to see (the same answer, so that nobody learns which
/// sessions exist).
#[derive(IntoResponses)]
pub(crate) enum Missing {
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// The thing exists already, or a concurrent change got there first.
#[derive(IntoResponses)]
pub(crate) enum Clash {
    #[response(status = 409)]
    Conflict(ErrorBody),
}

/// Too many heavy requests (replays, exports, verifications, searches, reports) at once.
#[derive(IntoResponses)]
pub(crate) enum Heavy {
    /// Busy: try again after `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u64, description = "seconds to wait")))]
    Busy(ErrorBody),
}

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::COOKIE,
                "The browser session POST /api/v1/login sets",
            ))),
        );
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (keepwatch token add, POST /api/v1/tokens)"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Keepwatch API", version = "1", description = "The console's API: sessions, replay, search, live watching and termination, the audit trail, the report and administration. Every view, replay, export, search, watch and termination is audited before anything is shown. docs/api.md is the prose."),
    modifiers(&Security),
    security(("cookie" = []), ("token" = [])),
    paths(
        crate::api::login, crate::api::logout, crate::api::me,
        crate::api::sessions, crate::api::session, crate::api::replay, crate::api::export,
        crate::api::terminate, crate::api::add_tags, crate::api::remove_tag,
        crate::watch::watch,
        crate::api::search, crate::api::report, crate::index_status::index_status,
        crate::api::live, crate::api::audit,
        crate::api::people, crate::api::add_person, crate::api::targets, crate::api::add_target,
        crate::api::grants, crate::api::add_grant, crate::api::remove_grant, crate::api::add_token,
        openapi_json,
    ),
)]
struct Doc;

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value)))]
pub(crate) async fn openapi_json() -> axum::Json<serde_json::Value> {
    axum::Json(document())
}

pub(crate) fn document() -> serde_json::Value {
    serde_json::to_value(Doc::openapi()).unwrap_or_default()
}
