//! What the gateway asks a person in the terminal before a session starts: the target menu
//! (a login without a target) and the reason a target may require. Neither exchange reaches
//! the target; the answers are recorded with the session (the target in its identity, the
//! reason signed right after it).

use bytes::Bytes;
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use crate::connection::Connection;

/// The longest line read.
const MAX_LINE: usize = 256;

/// Writes `text` to the person's terminal, `\n` as `\r\n`.
async fn say(tx: &ChannelWriteHalf<Msg>, text: &str) {
    let _ = tx.data_bytes(Bytes::from(text.replace('\n', "\r\n"))).await;
}

/// Shows `prompt` and reads one line, echoing printable ASCII (backspace works, at most
/// [`MAX_LINE`] bytes). Returns the line, trimmed, and the bytes typed after its Enter, or
/// `None` if the person pressed Ctrl-C or Ctrl-D or left.
async fn ask(
    conn: &Connection,
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
    prompt: &str,
) -> Option<(String, Vec<u8>)> {
    say(tx, prompt).await;
    let mut line = Vec::new();
    loop {
        let data = tokio::select! {
            m = rx.wait() => match m? {
                ChannelMsg::Data { data } => data,
                ChannelMsg::Eof | ChannelMsg::Close => return None,
                _ => continue,
            },
            _ = conn.cancel.cancelled() => return None,
        };
        for (i, &b) in data.iter().enumerate() {
            match b {
                b'\r' | b'\n' => {
                    say(tx, "\n").await;
                    let rest = data[i + 1..].strip_prefix(b"\n").unwrap_or(&data[i + 1..]);
                    let answer = String::from_utf8_lossy(&line).trim().to_owned();
                    return Some((answer, rest.to_vec()));
                }
                0x03 | 0x04 => {
                    say(tx, "\n").await;
                    return None;
                }
                0x7f | 0x08 if !line.is_empty() => {
                    line.pop();
                    let _ = tx.data_bytes(Bytes::from_static(b"\x08 \x08")).await;
                }
                b if (0x20..0x7f).contains(&b) && line.len() < MAX_LINE => {
                    line.push(b);
                    let _ = tx.data_bytes(Bytes::copy_from_slice(&[b])).await;
                }
                _ => {}
            }
        }
    }
}

/// Shows the granted targets and reads a choice (number or name). Returns the target and any
/// bytes typed after the Enter that chose it, or `None` if the person quit or left.
pub(crate) async fn choose(
    conn: &Connection,
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
) -> Option<(String, Vec<u8>)> {
    let targets = conn.ctx.sessions.store.granted_targets(&conn.login.person).await.ok()?;
    if targets.is_empty() {
        say(tx, &format!("keepwatch: no targets are granted to {}\n", conn.login.person)).await;
        let _ = tx.exit_status(1).await;
        return None;
    }
    let mut menu = format!("Keepwatch: targets granted to {}\n", conn.login.person);
    for (i, t) in targets.iter().enumerate() {
        menu.push_str(&format!("  {:>2}) {t}\n", i + 1));
    }
    let prompt = format!("Choose a target [1-{}] or q to quit: ", targets.len());
    let mut ask_with = format!("{menu}{prompt}");
    loop {
        let (choice, rest) = ask(conn, rx, tx, &ask_with).await?;
        if choice == "q" {
            return None;
        }
        let picked = match choice.parse::<usize>() {
            Ok(n) if (1..=targets.len()).contains(&n) => Some(targets[n - 1].clone()),
            _ => targets.iter().find(|t| **t == choice).cloned(),
        };
        match picked {
            Some(t) => {
                say(tx, &format!("Connecting to {t}...\n")).await;
                return Some((t, rest));
            }
            None if choice.is_empty() => ask_with = prompt.clone(),
            None => ask_with = format!("no such target: {choice}\n{prompt}"),
        }
    }
}

/// Asks for the reason `target` requires. Returns it (empty when the person gave none) and
/// any bytes typed after its Enter, or `None` if the person quit or left.
pub(crate) async fn ask_reason(
    conn: &Connection,
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
    target: &str,
) -> Option<(String, Vec<u8>)> {
    let prompt = format!("Reason for this session on {target} (a ticket id or a few words): ");
    ask(conn, rx, tx, &prompt).await
}
