//! Hand-written sessions for behaviour the recorded corpus cannot pin down: slow links, typeahead, shell-integration marks, program prompts.

use expect_test::{Expect, expect};
use keepwatch_terminal::{CommandExtractor, ExtractorConfig};

/// Runs a script of `o <bytes>` (output), `i <bytes>` (input) and
/// `r <cols> <rows>` lines, with `\r`, `\n`, `\e`, `\a`, `\x08` and `\x7f` escapes; the time
/// of each event is its line number.
fn check(script: &str, expect: Expect) {
    let mut ex = CommandExtractor::new(ExtractorConfig::default());
    for (n, line) in script.lines().map(str::trim_start).filter(|l| !l.is_empty()).enumerate() {
        let t = n as u64 + 1;
        let (kind, rest) = line.split_at(1);
        let data = unescape(rest.strip_prefix(' ').unwrap_or(rest));
        match kind {
            "o" => ex.output(t, &data),
            "i" => ex.input(t, &data),
            "r" => {
                let s = String::from_utf8(data).unwrap();
                let mut it = s.split(' ').map(|v| v.parse().unwrap());
                ex.resize(t, it.next().unwrap(), it.next().unwrap());
            }
            _ => panic!("bad script line {line:?}"),
        }
    }
    let out: Vec<String> = ex
        .finish()
        .iter()
        .map(|c| {
            format!(
                "{:?} {} {}..{} prompt={:?} output={:?}{}",
                c.text,
                c.confidence.as_str(),
                c.started_at_us,
                c.ended_at_us.map_or("-".to_owned(), |e| e.to_string()),
                c.prompt,
                c.output,
                if c.full_screen { " full_screen" } else { "" }
            )
        })
        .collect();
    expect.assert_eq(&out.join("\n"));
}

fn unescape(s: &str) -> Vec<u8> {
    s.replace("\\r", "\r")
        .replace("\\n", "\n")
        .replace("\\e", "\x1b")
        .replace("\\a", "\x07")
        .replace("\\x08", "\x08")
        .replace("\\x7f", "\x7f")
        .into_bytes()
}

#[test]
fn enter_before_the_echo_arrives() {
    // Over a slow link the person types `ls` and Enter before any echo.
    check(
        r"
        o $ 
        i l
        i s
        i \r
        o ls\r\n
        o a  b\r\n$ 
        ",
        expect![[r#""ls" exact 4..6 prompt="$ " output="a  b""#]],
    );
}

#[test]
fn unechoed_command_is_unknown() {
    // dash after `stty -echo`: nothing echoed; the output lands on the prompt line.
    check(
        r"
        o $ 
        i e
        i cho hidden
        i \r
        o hidden\r\n$ 
        i l
        o l
        i s\r
        o s\r\n$ 
        ",
        expect![[r#"
            "" unknown 4..5 prompt="$ " output=""
            "ls" exact 8..9 prompt="$ " output="""#]],
    );
}

#[test]
fn osc_133_marks_end_a_command_at_once() {
    check(
        r"
        o \e]133;A\a>>> custom \e]133;B\a
        i x
        o x
        i \r
        o \r\n\e]133;C\aran x\r\n\e]133;D;0\a\e]133;A\a>>> custom \e]133;B\a
        ",
        expect![[r#""x" exact 4..5 prompt=">>> custom " output="ran x""#]],
    );
}

#[test]
fn a_program_prompt_after_output_is_not_a_continuation() {
    // `mysql>` ends in `>` but follows a banner: its input is not a command.
    check(
        r"
        o $ 
        i m
        o m
        i ysql\r
        o ysql\r\nWelcome to the MySQL monitor.\r\nmysql> 
        i select 1;\r
        o select 1;\r\n1\r\nmysql> 
        i exit\r
        o exit\r\nBye\r\n$ 
        i t
        o t
        i rue\r
        o rue\r\n$ 
        ",
        expect![[r#"
            "mysql" exact 4..9 prompt="$ " output="Welcome to the MySQL monitor.\nmysql> select 1;\n1\nmysql> exit\nBye"
            "true" exact 12..13 prompt="$ " output="""#]],
    );
}

#[test]
fn typed_then_erased_runs_nothing() {
    check(
        r"
        o $ 
        i a
        o a
        i \x7f
        o \x08\e[K
        i \r
        o \r\n$ 
        ",
        expect![""],
    );
}

#[test]
fn resize_while_a_command_runs() {
    check(
        r"
        o $ 
        i s
        o s
        i leep 1\r
        o leep 1\r\n
        r 40 10
        o $ 
        i e
        o e
        i xit\r
        o xit\r\n
        ",
        expect![[r#"
            "sleep 1" exact 4..7 prompt="$ " output=""
            "exit" exact 10..- prompt="$ " output="""#]],
    );
}
