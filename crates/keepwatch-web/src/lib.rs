//! The console and the HTTP API (`docs/api.md`).

mod assets;

pub use assets::{Asset, asset};
