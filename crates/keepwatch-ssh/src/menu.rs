//! The target menu shown to a person who logged in without naming a target.

use bytes::Bytes;
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use crate::connection::Connection;

/// The longest line the menu reads.
const MAX_LINE: usize = 256;

/// Shows the granted targets and reads a choice (number or name). Returns the target and any
/// bytes typed after the Enter that chose it, or `None` if the person quit or left.
pub(crate) async fn choose(
    conn: &Connection,
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
) -> Option<(String, Vec<u8>)> {
    let targets = conn.ctx.sessions.store.granted_targets(&conn.login.person).await.ok()?;
    let say = |s: String| tx.data_bytes(Bytes::from(s.replace('\n', "\r\n")));
    if targets.is_empty() {
        let _ = say(format!("keepwatch: no targets are granted to {}\n", conn.login.person)).await;
        let _ = tx.exit_status(1).await;
        return None;
    }
    let mut menu = format!("Keepwatch: targets granted to {}\n", conn.login.person);
    for (i, t) in targets.iter().enumerate() {
        menu.push_str(&format!("  {:>2}) {t}\n", i + 1));
    }
    let prompt = format!("Choose a target [1-{}] or q to quit: ", targets.len());
    let _ = say(format!("{menu}{prompt}")).await;
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
                    let _ = say("\n".into()).await;
                    let choice = String::from_utf8_lossy(&line).trim().to_owned();
                    line.clear();
                    if choice == "q" {
                        return None;
                    }
                    let picked = match choice.parse::<usize>() {
                        Ok(n) if (1..=targets.len()).contains(&n) => Some(targets[n - 1].clone()),
                        _ => targets.iter().find(|t| **t == choice).cloned(),
                    };
                    match picked {
                        Some(t) => {
                            let _ = say(format!("Connecting to {t}...\n")).await;
                            let rest = data[i + 1..].strip_prefix(b"\n").unwrap_or(&data[i + 1..]);
                            return Some((t, rest.to_vec()));
                        }
                        None if choice.is_empty() => {
                            let _ = say(prompt.clone()).await;
                        }
                        None => {
                            let _ = say(format!("no such target: {choice}\n{prompt}")).await;
                        }
                    }
                }
                0x03 | 0x04 => {
                    let _ = say("\n".into()).await;
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
