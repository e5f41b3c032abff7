//! The recorded corpus: real bash, dash and zsh sessions replayed through the extractor, checked against the commands the person ran.
//!
//! Each `corpus/<shell>/<case>.json` was recorded by `corpus-tools/record.py`
//! in a real pty: output and input bytes (one JSON character per byte) and
//! resizes with their time offsets, plus the expected commands. Next to it,
//! `<case>.commands` is a snapshot of everything extracted (prompt, times,
//! output); refresh with `UPDATE_EXPECT=1 cargo test -p keepwatch-terminal`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use expect_test::expect_file;
use keepwatch_terminal::{Command, CommandExtractor, Confidence, ExtractorConfig};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    shell: String,
    case: String,
    cols: u16,
    rows: u16,
    expected: Vec<Expected>,
    events: Vec<(u64, String, serde_json::Value)>,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
struct Expected {
    text: String,
    confidence: String,
    full_screen: bool,
}

/// Replays a case's events and returns every command extracted.
fn check(case: &Case) -> Vec<Command> {
    let mut ex = CommandExtractor::new(ExtractorConfig {
        cols: case.cols,
        rows: case.rows,
        ..ExtractorConfig::default()
    });
    let mut commands = Vec::new();
    for (at, kind, data) in &case.events {
        match (kind.as_str(), data) {
            ("o", serde_json::Value::String(s)) => ex.output(*at, &bytes(s)),
            ("i", serde_json::Value::String(s)) => ex.input(*at, &bytes(s)),
            ("r", serde_json::Value::Array(size)) => {
                let n =
                    |i: usize| size[i].as_u64().and_then(|v| u16::try_from(v).ok()).unwrap_or(0);
                ex.resize(*at, n(0), n(1));
            }
            _ => panic!("{}/{}: bad event {kind:?}", case.shell, case.case),
        }
        commands.extend(ex.drain());
    }
    commands.extend(ex.finish());
    commands
}

/// The corpus stores one character per byte (latin-1).
fn bytes(s: &str) -> Vec<u8> {
    s.chars().map(|c| u8::try_from(u32::from(c)).expect("corpus byte above 0xff")).collect()
}

fn as_expected(c: &Command) -> Expected {
    Expected {
        text: c.text.clone(),
        confidence: c.confidence.as_str().to_owned(),
        full_screen: c.full_screen,
    }
}

fn render(commands: &[Command]) -> String {
    let mut out = String::new();
    for (i, c) in commands.iter().enumerate() {
        let ended = c.ended_at_us.map_or("-".to_owned(), |t| t.to_string());
        writeln!(
            out,
            "#{i} {:?} confidence={} full_screen={}",
            c.text,
            c.confidence.as_str(),
            c.full_screen
        )
        .unwrap();
        if let Some(typed) = &c.typed {
            writeln!(out, "   typed={typed:?}").unwrap();
        }
        writeln!(
            out,
            "   prompt={:?} started_at_us={} ended_at_us={ended}",
            c.prompt, c.started_at_us
        )
        .unwrap();
        let lines: Vec<&str> = c.output.lines().collect();
        for line in lines.iter().take(8) {
            writeln!(out, "   | {line}").unwrap();
        }
        if lines.len() > 8 {
            writeln!(out, "   | ... {} more lines", lines.len() - 8).unwrap();
        }
        if c.output_truncated {
            writeln!(out, "   | [truncated]").unwrap();
        }
    }
    out
}

fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files = Vec::new();
    for shell in std::fs::read_dir(&root).expect("tests/corpus exists") {
        let shell = shell.unwrap().path();
        if !shell.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&shell).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "json") {
                files.push(f);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn corpus() {
    let files = corpus_files();
    assert!(!files.is_empty(), "no corpus files under tests/corpus");
    let (mut right, mut total, mut right_cmds, mut total_cmds) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    for file in &files {
        let case: Case = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let got = check(&case);
        expect_file![file.with_extension("commands")].assert_eq(&render(&got));
        let got: Vec<Expected> = got.iter().map(as_expected).collect();
        total += 1;
        total_cmds += case.expected.len();
        right_cmds += case.expected.iter().filter(|e| got.contains(e)).count();
        if got == case.expected {
            right += 1;
        } else {
            wrong.push(format!(
                "{}/{}:\n  expected {:?}\n  got      {:?}",
                case.shell, case.case, case.expected, got
            ));
        }
    }
    println!(
        "corpus accuracy: {right}/{total} cases right, {right_cmds}/{total_cmds} expected commands found"
    );
    for w in &wrong {
        println!("WRONG {w}");
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} corpus cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn confidence_names_are_stable() {
    let names: Vec<_> = [Confidence::Exact, Confidence::Inferred, Confidence::Unknown]
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(names, ["exact", "inferred", "unknown"]);
}
