//! The console's static files, embedded in the binary.

/// One embedded file.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The file served at `path` (`/` is `index.html`).
pub fn asset(path: &str) -> Option<Asset> {
    match path {
        "/" | "/index.html" => Some(Asset {
            content_type: "text/html; charset=utf-8",
            body: b"<!doctype html><title>Keepwatch</title><p>console not built yet",
        }),
        _ => None,
    }
}
