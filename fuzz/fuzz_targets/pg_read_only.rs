//! Fuzzes keepwatch-pg's statement rules with arbitrary UTF-8 text: the read-only decision
//! alone, and read-only with deny rules by kind and table. They must never panic or overflow
//! the stack, and a refusal's reason must be one line.

#![no_main]

use std::sync::OnceLock;

use keepwatch_pg::StatementRules;
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static StatementRules {
    static RULES: OnceLock<StatementRules> = OnceLock::new();
    RULES.get_or_init(|| {
        let kinds = ["DROP".to_owned(), "ALTER TABLE".to_owned(), "delete".to_owned()];
        StatementRules::new(true, &kinds, &["hr.payroll".to_owned()]).expect("valid rules")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    if let Err(refusal) = keepwatch_pg::read_only(sql) {
        assert!(!refusal.reason.contains('\n'), "a reason spans lines: {:?}", refusal.reason);
    }
    if let Err(refusal) = rules().check(sql) {
        assert!(!refusal.reason.contains('\n'), "a reason spans lines: {:?}", refusal.reason);
    }
});
