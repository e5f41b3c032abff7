//! Fuzzes keepwatch-pg's read-only decision with arbitrary UTF-8 text: it must never panic or
//! overflow the stack, and a refusal's reason must be one line.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    if let Err(refusal) = keepwatch_pg::read_only(sql) {
        assert!(!refusal.reason.contains('\n'), "a reason spans lines: {:?}", refusal.reason);
    }
});
