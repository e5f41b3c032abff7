//! `keepwatch-bench synth-session`: writes a long synthetic recorded session (an interactive
//! bash-like shell with heavy output) straight into a data directory, as the recorder would
//! have: the session and channel rows, a signed recording sealed `closed` and moved into the
//! blob store. The console's seek benchmark (`bench/console.sh`) replays it; the running
//! gateway's indexer finds and indexes it like any session that was never indexed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use ed25519_dalek::SigningKey;
use keepwatch_core::{ChannelKind, SessionId, SessionStatus};
use keepwatch_recording::{Event, Pty, RecordingWriter, Seal, SessionStart, TimedEvent};
use keepwatch_store::{BlobStore, ChannelRow, SessionRow, Store, now_us};

#[derive(clap::Args)]
pub(crate) struct SynthArgs {
    /// The keepwatch data directory (initialised; the gateway may be running).
    #[arg(long)]
    data_dir: PathBuf,
    /// Session length in seconds of recorded time.
    #[arg(long, default_value_t = 3600)]
    duration_s: u64,
    /// A command every this many seconds, each printing `--lines` lines.
    #[arg(long, default_value_t = 5)]
    every_s: u64,
    #[arg(long, default_value_t = 400)]
    lines: u32,
    #[arg(long, default_value = "alice")]
    user: String,
    #[arg(long, default_value = "web01")]
    target: String,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

pub(crate) async fn run(a: SynthArgs) -> anyhow::Result<()> {
    let root = &a.data_dir;
    let seed: [u8; 32] = std::fs::read_to_string(root.join("signing.key"))
        .ok()
        .and_then(|t| unhex(&t))
        .and_then(|v| v.try_into().ok())
        .with_context(|| format!("no usable signing.key in {}", root.display()))?;
    let key = SigningKey::from_bytes(&seed);
    let store = Store::open_sqlite(&root.join("keepwatch.db"))
        .await
        .with_context(|| format!("cannot open {}/keepwatch.db", root.display()))?;
    let blobs = BlobStore::local(root).context("cannot open the blob store")?;

    let duration_us = a.duration_s * 1_000_000;
    let started_at_us = now_us() - duration_us as i64;
    let row = SessionRow {
        stated_reason: None,
        protocol: keepwatch_core::Protocol::Ssh,
        id: SessionId::new(),
        person: a.user.clone(),
        target: a.target.clone(),
        target_host: "127.0.0.1:22".into(),
        target_login: "kwtest".into(),
        client_addr: "127.0.0.1:40000".into(),
        status: SessionStatus::Active,
        reason: None,
        started_at_us,
        ended_at_us: None,
        chain_head: None,
        seal_seq: None,
        seal_signature: None,
        node: None,
    };
    let id = row.id;
    store.insert_session(&row).await.context("cannot insert the session row")?;
    store
        .add_channel(
            id,
            &ChannelRow {
                channel: 0,
                kind: "shell".into(),
                command: None,
                subsystem: None,
                pty_term: Some("xterm-256color".into()),
                destination: None,
                opened_at_us: started_at_us,
                closed_at_us: None,
                exit_status: None,
            },
        )
        .await
        .context("cannot insert the channel row")?;

    let start = SessionStart {
        session_id: id,
        user: row.person.clone(),
        target: row.target.clone(),
        target_host: row.target_host.clone(),
        target_login: row.target_login.clone(),
        client_addr: row.client_addr.clone(),
        started_at_us,
    };
    let mut w = RecordingWriter::new(start, key.clone());
    let mut file = blobs.spool().create(id, &[]).context("cannot create the spool file")?;
    let mut out = Vec::new();
    let push = |w: &mut RecordingWriter, at_us: u64, event: Event| {
        w.push(&TimedEvent { at_us, event });
    };
    push(
        &mut w,
        1_000,
        Event::ChannelOpen {
            channel: 0,
            kind: ChannelKind::Shell,
            pty: Some(Pty { term: "xterm-256color".into(), cols: 120, rows: 32 }),
        },
    );
    let prompt = b"kwtest@web01:~$ ";
    push(&mut w, 50_000, Event::Output { channel: 0, data: prompt.to_vec() });
    let mut t = 1_000_000u64;
    let mut n = 0u64;
    let mut bytes = 0u64;
    let mut last_flush = 0u64;
    let mut last_checkpoint = 0u64;
    while t + 2_000_000 < duration_us {
        n += 1;
        let cmd =
            format!("journalctl -u app{} --since -{}min | tail -n {}", n % 17, n % 60, a.lines);
        // Typed a key at a time, echoed by the shell.
        for (i, b) in cmd.bytes().enumerate() {
            let at = t + i as u64 * 30_000;
            push(&mut w, at, Event::Input { channel: 0, data: vec![b] });
            push(&mut w, at + 500, Event::Output { channel: 0, data: vec![b] });
        }
        t += cmd.len() as u64 * 30_000;
        push(&mut w, t, Event::Input { channel: 0, data: b"\r".to_vec() });
        push(&mut w, t + 500, Event::Output { channel: 0, data: b"\r\n".to_vec() });
        // Heavy output: the lines arrive in bursts of 40 over ~1 s.
        let mut block = Vec::new();
        for l in 0..a.lines {
            write!(
                block,
                "\x1b[32m{:>6}\x1b[0m Nov 25 {:02}:{:02}:{:02} web01 app{}[{}]: request id={:08x} status=200 bytes={} path=/api/v{}/items/{}\r\n",
                l,
                (t / 3_600_000_000) % 24,
                (t / 60_000_000) % 60,
                (t / 1_000_000) % 60,
                n % 17,
                1000 + n,
                (n * 7919 + l as u64 * 104729) & 0xffff_ffff,
                (l * 37) % 9000,
                l % 3,
                l
            )?;
            if l % 40 == 39 || l + 1 == a.lines {
                t += 25_000;
                bytes += block.len() as u64;
                push(&mut w, t, Event::Output { channel: 0, data: std::mem::take(&mut block) });
            }
        }
        t += 20_000;
        push(&mut w, t, Event::Output { channel: 0, data: prompt.to_vec() });
        // Flush about every second of recorded time, sign about every ten, like the recorder.
        if t - last_flush >= 1_000_000 {
            let sign = t - last_checkpoint >= 10_000_000;
            out.clear();
            if w.flush_into(&mut out, started_at_us + t as i64, sign) {
                file.append(&out, false)?;
            }
            last_flush = t;
            if sign {
                last_checkpoint = t;
            }
        }
        t = t.max(n * a.every_s * 1_000_000);
    }
    push(
        &mut w,
        duration_us - 1_000,
        Event::ChannelClose { channel: 0, exit_status: Some(0), exit_signal: None },
    );
    let ended_at_us = started_at_us + duration_us as i64;
    let (tail, info) = w.seal(
        duration_us,
        Seal { status: SessionStatus::Closed, reason: None, ended_at_us, unsigned_tail: None },
        ended_at_us,
    );
    file.append(&tail, true)?;
    drop(file);
    store.close_channel(id, 0, Some(0)).await.context("cannot close the channel row")?;
    store
        .finish_session(id, SessionStatus::Closed, None, &info, ended_at_us, &key)
        .await
        .context("cannot finish the session row")?;
    blobs.commit_whole(id).await.context("cannot move the recording into the blob store")?;
    store.close().await;
    println!("{id}");
    eprintln!(
        "keepwatch-bench: session {id}: {} s, {n} commands, {:.1} MiB of output",
        a.duration_s,
        bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}
