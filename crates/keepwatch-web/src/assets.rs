//! The console's static files (`web/src` and the xterm.js files from `web/node_modules`),
//! embedded in the binary by `build.rs`.

/// One embedded file.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The file served at `path` (`/` is `index.html`).
pub fn asset(path: &str) -> Option<Asset> {
    include!(concat!(env!("OUT_DIR"), "/assets_table.rs"))
}

#[cfg(test)]
mod tests {
    use super::asset;

    #[test]
    fn console_and_vendor_files_are_embedded() {
        for (path, ty) in [
            ("/", "text/html; charset=utf-8"),
            ("/index.html", "text/html; charset=utf-8"),
            ("/app.js", "text/javascript; charset=utf-8"),
            ("/app.css", "text/css; charset=utf-8"),
            ("/vendor/xterm.mjs", "text/javascript; charset=utf-8"),
            ("/vendor/xterm.css", "text/css; charset=utf-8"),
        ] {
            let a = asset(path).unwrap_or_else(|| panic!("{path} not embedded"));
            assert_eq!(a.content_type, ty, "{path}");
            assert!(!a.body.is_empty(), "{path} is empty");
        }
        assert!(asset("/nope.js").is_none());
        assert!(asset("/../Cargo.toml").is_none());
    }
}
