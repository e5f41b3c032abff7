//! Hand-written sessions for behaviour the recorded corpus cannot pin down: slow links, typeahead, shell-integration marks, program prompts, and the chunkings of issue 9's cases.

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
                "{:?}{} {} {}..{} prompt={:?} output={:?}{}",
                c.text,
                c.typed.as_ref().map_or(String::new(), |t| format!(" typed={t:?}")),
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

// Issue 9, section 4: commands that ran but were missing from the record. The
// recorded corpus has each case from real shells (`bang`, `history_repeat`,
// `typeahead`, `midline_prompt`); these pin the chunkings a recording may not.

#[test]
fn issue_9_history_recall_of_the_previous_command_is_listed_again() {
    // Up, Up (a bell at the top of the history), Enter: the same text again.
    check(
        r"
        o $ 
        i echo kw\r
        o echo kw\r\nkw\r\n$ 
        i \e[A\e[A\r
        o echo kw\a\r\nkw\r\n$ 
        ",
        expect![[r#"
            "echo kw" exact 2..3 prompt="$ " output="kw"
            "echo kw" exact 4..5 prompt="$ " output="kw""#]],
    );
}

#[test]
fn issue_9_bang_bang_lists_what_ran_and_what_was_typed() {
    check(
        r"
        o $ 
        i echo kw-bang\r
        o echo kw-bang\r\nkw-bang\r\n$ 
        i sudo !!\r
        o sudo !!\r\nsudo echo kw-bang\r\nkw-bang\r\n$ 
        i !nosuch\r
        o !nosuch\r\nbash: !nosuch: event not found\r\n$ 
        ",
        expect![[r#"
            "echo kw-bang" exact 2..3 prompt="$ " output="kw-bang"
            "sudo echo kw-bang" typed="sudo !!" exact 4..5 prompt="$ " output="kw-bang""#]],
    );
}

#[test]
fn issue_9_typeahead_before_the_first_prompt_in_one_chunk() {
    // Over SSH the shell's first prompt, its redraw of the typed line, the
    // output and the next prompt can all come in one packet (bash, then dash).
    check(
        r"
        i echo kw-ahead\r
        o echo kw-ahead\r\n$ echo kw-ahead\r\nkw-ahead\r\n$ 
        i t
        o t
        i rue\r
        o rue\r\n$ 
        ",
        expect![[r#"
            "echo kw-ahead" exact 1..2 prompt="$ " output="kw-ahead"
            "true" exact 5..6 prompt="$ " output="""#]],
    );
    check(
        r"
        i echo kw-ahead\r
        o echo kw-ahead\r\n$ kw-ahead\r\n$ 
        ",
        expect![[r#""echo kw-ahead" exact 1..2 prompt="$ " output="kw-ahead""#]],
    );
}

#[test]
fn issue_9_lines_typed_into_a_program_or_cancelled_are_not_commands() {
    // `cat` reads the typed line (no prompt row reads it); a line typed ahead
    // and then Ctrl-C'd is flushed by the tty; `exit` typed while `sleep` ran is read.
    check(
        r"
        o $ 
        i cat\r
        o cat\r\n
        i line one\r
        o line one\r\nline one\r\n
        i \x04
        o $ 
        i sleep 9\r
        o sleep 9\r\n
        i echo abandoned\r
        o echo abandoned\r\n
        i \x03
        o ^C\r\n$ 
        i sleep 1\r
        o sleep 1\r\n
        i exit\r
        o exit\r\n$ exit\r\nexit\r\n
        ",
        expect![[r#"
            "cat" exact 2..7 prompt="$ " output="line one\nline one"
            "sleep 9" exact 8..13 prompt="$ " output="echo abandoned\n^C"
            "sleep 1" exact 14..17 prompt="$ " output="exit"
            "exit" exact 16..17 prompt="$ " output="exit""#]],
    );
}

#[test]
fn issue_9_prompt_drawn_mid_line_after_a_long_line() {
    // 900 characters without a newline: the prompt ends a 12-row logical line.
    let zeros = "0".repeat(900);
    check(
        &format!(
            r"
            o $ 
            i printf x\r
            o printf x\r\n{zeros}$ 
            i e
            o e
            i cho next\r
            o cho next\r\nnext\r\n$ 
            "
        ),
        expect![[r#"
            "printf x" exact 2..3 prompt="$ " output="000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "echo next" exact 6..7 prompt="$ " output="next""#]],
    );
}

#[test]
fn a_line_typed_before_the_prompt_and_not_echoed_is_read_by_the_prompt_drawn_there() {
    // The keys come after the last command's output but before the next prompt, when
    // readline already holds the terminal (no tty echo): the prompt and the line are drawn
    // on the row the cursor was at when they were typed. Both lines ran, each with its own
    // output.
    check(
        r"
        o $ 
        i echo one\r
        o echo one\r\none\r\n
        i ls /etc\r
        o $ ls /etc\r\nssh\r\n
        i echo two\r
        o $ 
        o echo two\r\ntwo\r\n$ 
        ",
        expect![[r#"
            "echo one" exact 2..7 prompt="$ " output="one"
            "ls /etc" exact 4..7 prompt="$ " output="ssh"
            "echo two" exact 6..8 prompt="$ " output="two""#]],
    );
}
