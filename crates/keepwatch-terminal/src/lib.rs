//! The terminal model of one interactive pty channel and the commands typed into it, agentless and sans-IO.
//!
//! Feed a [`CommandExtractor`] the bytes the target sent ([`CommandExtractor::output`]),
//! the bytes the person typed ([`CommandExtractor::input`]) and resizes, each
//! with its time offset; it keeps the screen as the person saw it (the `avt`
//! emulator) and hands back each [`Command`]: the command line as it stood on
//! screen when Enter was accepted, without the prompt, with the rendered output
//! that followed until the next prompt.
//!
//! No shell integration is assumed on the target. Prompts are recognised from
//! the screen: the line the cursor sits on when the person starts typing after
//! the output settled, when it looks like a shell prompt (ends in `$`, `#`,
//! `%`, `>`, `❯`, ...) or was already seen as one. OSC 133 marks, when a shell
//! sends them, are used as well. Where the screen cannot show what was typed
//! (input not echoed) the command says so ([`Confidence::Unknown`]) instead of
//! guessing.
//!
//! **Invariant:** memory is bounded whatever the stream: the screen size is
//! clamped, the emulator keeps no scrollback, and every buffer here is capped.

mod extractor;
mod history;
mod input;
mod prompt;
mod screen;

pub use extractor::CommandExtractor;

/// Sizes and limits of one extractor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractorConfig {
    /// Initial terminal width (the pty request's), clamped to `1..=max_cols`.
    pub cols: u16,
    /// Initial terminal height, clamped to `1..=max_rows`.
    pub rows: u16,
    /// Cap on [`Command::output`] in bytes; the rest is dropped and
    /// [`Command::output_truncated`] is set.
    pub max_output_text: usize,
    /// Cap on [`Command::text`] in bytes (a multi-line here-doc can be long).
    pub max_command_text: usize,
    /// Commands kept until [`CommandExtractor::drain`]; past it the oldest are
    /// dropped and counted in [`CommandExtractor::dropped_commands`].
    pub max_pending_commands: usize,
    /// Largest width a resize may set (a hostile client can ask for a billion).
    pub max_cols: u16,
    /// Largest height a resize may set.
    pub max_rows: u16,
}

impl Default for ExtractorConfig {
    fn default() -> Self {
        Self {
            cols: 80,
            rows: 24,
            max_output_text: 64 * 1024,
            max_command_text: 64 * 1024,
            max_pending_commands: 4096,
            max_cols: 1000,
            max_rows: 1000,
        }
    }
}

/// One command the person ran in the channel's interactive shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The command line as it stood on screen, prompt removed; the lines of a
    /// multi-line command (continuation prompts, here-docs, pasted newlines)
    /// joined with `'\n'`. Empty when [`Confidence::Unknown`].
    pub text: String,
    /// What was typed, when the shell ran something else: bash and zsh print
    /// the line a history expansion (`!!`, `!prefix`, `^old^new`) gave and run
    /// that, so [`Command::text`] is the printed line and this is `!!`.
    /// `None` when `text` is what was typed.
    pub typed: Option<String>,
    /// The prompt it was typed at, as on screen (e.g. `root@db1:~# `): it
    /// tells whose shell ran it after `sudo -i`, `su -` or a nested `ssh`.
    pub prompt: String,
    /// When Enter was pressed (the first Enter of a multi-line command).
    pub started_at_us: u64,
    /// When the next prompt appeared; `None` if the channel ended first.
    pub ended_at_us: Option<u64>,
    /// The rendered text the command printed on the primary screen before the
    /// next prompt, capped at [`ExtractorConfig::max_output_text`].
    pub output: String,
    /// The output went past the cap.
    pub output_truncated: bool,
    /// How sure the extractor is of `text`.
    pub confidence: Confidence,
    /// The command switched to the alternate screen (vim, top, less); what it
    /// drew there is not output and the keys typed in it are not commands.
    pub full_screen: bool,
}

/// How a [`Command::text`] was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Confidence {
    /// Read from the screen after a recognised prompt.
    Exact,
    /// Read from the screen, but where the prompt ends had to be guessed.
    Inferred,
    /// Keys were typed and Enter pressed, but nothing was echoed (e.g. after
    /// `stty -echo`): the text is empty rather than guessed.
    Unknown,
}

impl Confidence {
    /// A stable lowercase name (`exact`, `inferred`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Exact => "exact",
            Confidence::Inferred => "inferred",
            Confidence::Unknown => "unknown",
        }
    }
}
