//! axum's extractors with the API's own errors: a body, query or path that does not parse is
//! answered `{"error": "..."}` naming what was wrong, with the status the OpenAPI document
//! lists (400; 415 for a body that is not `application/json`; 413 for one over the size
//! limit), never axum's plain-text rejection.
//!
//! No request may hold a NUL character: PostgreSQL's text cannot store one, so a NUL in a
//! name or a host would fail there as a server error after passing on SQLite. It is refused
//! here, the same on both backends, with 400.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON request body.
pub(crate) struct Body<T>(pub T);

/// The query string.
pub(crate) struct Params<T>(pub T);

/// The path's parameters.
pub(crate) struct PathParams<T>(pub T);

fn rejected(status: StatusCode, text: String) -> ApiError {
    // axum says 422 for JSON of the wrong shape; the API says 400 for every malformed request.
    let status =
        if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
    ApiError::new(status, text)
}

fn nul_refused() -> ApiError {
    ApiError::bad_request("a request may not hold a NUL character (\\u0000 or %00)")
}

/// Whether percent-encoded text holds `%00`.
fn encodes_nul(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON, with Content-Type: application/json",
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) => return Err(rejected(e.status(), e.body_text())),
        };
        // Scanned as bytes, not parsed into a tree first: an anonymous login body of 2 MiB
        // of `[0,0,...]` would otherwise cost tens of MiB before the type refused it.
        if escapes_nul(&bytes) {
            return Err(nul_refused());
        }
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("the body is not what this takes: {e}")))
    }
}

/// Whether JSON text holds the escape `\u0000` (a raw NUL is not JSON, and serde refuses
/// it). An escaped backslash is stepped over, so `"\\u0000"` (a backslash, then the text
/// u0000) is not one.
fn escapes_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_some_and(encodes_nul) {
            return Err(nul_refused());
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Params(v)),
            Err(e) => Err(rejected(e.status(), e.body_text())),
        }
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if encodes_nul(parts.uri.path()) {
            return Err(nul_refused());
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(PathParams(v)),
            Err(e) => Err(rejected(e.status(), e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_nul_escape_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(super::escapes_nul(br#"{"name": "a\u0000b"}"#));
        assert!(super::escapes_nul(br#"["\\", "\u0000"]"#));
        assert!(!super::escapes_nul(br#"{"name": "a\\u0000b"}"#));
        assert!(super::escapes_nul(br#"["\u00001"]"#));
        assert!(!super::escapes_nul(br#"{"name": "\u0001"}"#));
        assert!(!super::escapes_nul(b"\\"));
    }
}
