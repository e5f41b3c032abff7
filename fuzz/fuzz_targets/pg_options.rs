//! Fuzzes the startup `options` reader (`keepwatch_pg::option_setting`, where the gateway
//! finds a person's reason): any text must split without panicking, within the argument
//! bound, and a value it finds must come from the text (never longer than it).

#![no_main]

use keepwatch_pg::{option_setting, split_options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let args = split_options(text);
    assert!(args.len() <= 256);
    assert!(args.iter().map(String::len).sum::<usize>() <= text.len());
    if let Some(v) = option_setting(text, "keepwatch.reason") {
        assert!(v.len() <= text.len());
    }
});
