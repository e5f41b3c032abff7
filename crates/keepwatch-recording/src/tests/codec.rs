//! Event encoding: round trips, hostile payloads, and the bytes pinned down.

use expect_test::{Expect, expect};

use super::*;
use crate::event::{decode_all, encode};
use crate::{
    FileTransfer, Outcome, Rows, Statement, StatementResult, TransactionStatus, UnsignedTail,
    ledger, read_events, verify,
};

#[test]
fn every_event_kind_round_trips() {
    let mut w = RecordingWriter::new(start(), key());
    let mut bytes = Vec::new();
    for (i, e) in every_event().iter().enumerate() {
        w.push(e);
        if i % 4 == 3 {
            bytes.extend(w.flush(T0 + i as i64, i % 8 == 7).unwrap());
        }
    }
    let (tail, _) = w.seal(5_000, closed(), T0 + 99);
    bytes.extend(tail);

    let events = read_events(&bytes, None).unwrap();
    let mut want = vec![ev(0, Event::SessionStart(start()))];
    want.extend(every_event());
    want.push(ev(5_000, Event::Seal(closed())));
    assert_eq!(events, want);
    expect![[r#"
               0 SessionStart(SessionStart { session_id: SessionId(0193f1c2-0000-7000-8000-000000000001), user: "alice", target: "web-1", target_host: "10.0.0.5:22", target_login: "root", client_addr: "192.0.2.7:51234", started_at_us: 1700000000000000 })
              10 ChannelOpen { channel: 0, kind: Shell, pty: Some(Pty { term: "xterm-256color", cols: 80, rows: 24 }) }
              20 output ch0 "$ "
              21 output ch0 ""
            1000 input ch0 "ls\r"
            1500 stderr ch0 "warning\xff\n"
            2000 Resize { channel: 0, cols: 120, rows: 40 }
            2100 ChannelOpen { channel: 1, kind: Exec { command: [117, 112, 116, 105, 109, 101] }, pty: None }
            2200 ChannelOpen { channel: 2, kind: Subsystem { name: "sftp" }, pty: None }
            3000 Eof { channel: 1, direction: ToClient }
            3001 Eof { channel: 0, direction: ToTarget }
            3100 ChannelClose { channel: 1, exit_status: Some(0), exit_signal: None }
            3200 ChannelClose { channel: 2, exit_status: None, exit_signal: Some("KILL") }
            4000 Notice { channel: Some(0), text: "session will be terminated in 5 minutes" }
            4100 Env { channel: 0, name: "LC_X", value: "eval me", forwarded: true }
        18446744073709551615 Notice { channel: None, text: "clock at the end of time" }
            5000 Seal(Seal { status: Closed, reason: Some("client disconnected"), ended_at_us: 1700000009000000, unsigned_tail: None })
    "#]]
    .assert_eq(&render_events(&events));
    expect![[r#"
        chunk 0 at 24: 111 -> 111 bytes []
        chunk 1 at 196: 44 -> 44 bytes [signed]
        chunk 2 at 365: 28 -> 28 bytes []
        chunk 3 at 454: 133 -> 133 bytes [signed seal]
    "#]]
    .assert_eq(&render_chunks(&bytes));
    expect!["ok: 4 chunks, seal closed at chunk 3, last checkpoint 3, user alice"]
        .assert_eq(&render_verify(&verify(&bytes, &key().verifying_key())));
}

#[test]
fn extreme_values_round_trip() {
    let events = vec![
        ev(
            u64::MAX,
            Event::SessionStart(SessionStart {
                started_at_us: i64::MIN,
                user: String::new(),
                ..start()
            }),
        ),
        ev(0, Event::Resize { channel: u32::MAX, cols: u32::MAX, rows: 0 }),
        ev(
            1,
            Event::Seal(Seal {
                status: SessionStatus::Refused,
                reason: None,
                ended_at_us: i64::MAX,
                unsigned_tail: None,
            }),
        ),
        ev(
            2,
            Event::Seal(Seal {
                status: SessionStatus::Active,
                reason: Some("ü".repeat(3)),
                ended_at_us: -1,
                unsigned_tail: None,
            }),
        ),
        ev(
            3,
            Event::Seal(Seal {
                status: SessionStatus::Interrupted,
                reason: None,
                ended_at_us: 0,
                unsigned_tail: Some(UnsignedTail { after_seq: None, bytes: u64::MAX, events: 0 }),
            }),
        ),
        ev(
            4,
            Event::Seal(Seal {
                status: SessionStatus::Interrupted,
                reason: Some("gateway stopped".into()),
                ended_at_us: 1,
                unsigned_tail: Some(UnsignedTail { after_seq: Some(7), bytes: 123, events: 4 }),
            }),
        ),
        ev(
            5,
            Event::Env {
                channel: u32::MAX,
                name: String::new(),
                value: "ü".into(),
                forwarded: false,
            },
        ),
        ev(
            6,
            Event::Statement(Statement {
                channel: 0,
                seq: u64::MAX,
                text: "SELECT $1, $2".into(),
                params: vec![Some("42".into()), None, Some(String::new())],
                extended: true,
            }),
        ),
        ev(
            7,
            Event::Statement(Statement {
                channel: 1,
                seq: 0,
                text: String::new(),
                params: vec![],
                extended: false,
            }),
        ),
        ev(8, result(Outcome::Done { tag: "INSERT 0 5".into(), rows: Some(5) })),
        ev(8, result(Outcome::Done { tag: "BEGIN".into(), rows: None })),
        ev(
            9,
            result(Outcome::Failed {
                sqlstate: "42P01".into(),
                message: "relation \"x\" does not exist".into(),
            }),
        ),
        ev(9, result(Outcome::Empty)),
        ev(9, result(Outcome::Suspended)),
        ev(9, result(Outcome::Skipped)),
        ev(9, result(Outcome::Refused { reason: "read-only grant".into() })),
        ev(10, Event::Transaction { channel: 0, status: TransactionStatus::Idle }),
        ev(10, Event::Transaction { channel: 0, status: TransactionStatus::InTransaction }),
        ev(10, Event::Transaction { channel: 0, status: TransactionStatus::Failed }),
        ev(
            11,
            Event::Rows(Rows {
                channel: 0,
                seq: 3,
                columns: vec!["id".into(), "name".into()],
                rows: vec![vec![Some("1".into()), None], vec![Some("2".into()), Some("b".into())]],
                left_out: 7,
            }),
        ),
        ev(
            11,
            Event::Rows(Rows {
                channel: 0,
                seq: 4,
                columns: Vec::new(),
                rows: Vec::new(),
                left_out: 0,
            }),
        ),
    ];
    let mut buf = Vec::new();
    for e in &events {
        encode(&mut buf, e.at_us, &e.event, usize::MAX);
    }
    let mut back = Vec::new();
    decode_all(&buf, &mut back).unwrap();
    assert_eq!(back, events);
}

fn result(outcome: Outcome) -> Event {
    Event::StatementResult(StatementResult { channel: 0, seq: 3, outcome })
}

fn check_decode(payload: &[u8], expect: Expect) {
    let mut out = Vec::new();
    let r = decode_all(payload, &mut out);
    let got = match r {
        Ok(()) => format!("ok: {}", render_events(&out).trim_end()),
        Err(e) => format!("error: {e} (after {} events)", out.len()),
    };
    expect.assert_eq(&got);
}

#[test]
fn hostile_payloads() {
    check_decode(&[], expect!["ok: "]);
    check_decode(&[3, 5, 0, 2, b'h', b'i'], expect![[r#"ok:        5 output ch0 "hi""#]]);
    check_decode(
        &[99, 0],
        expect!["error: unknown event tag 99 at payload byte 0 (after 0 events)"],
    );
    check_decode(&[0], expect!["error: unknown event tag 0 at payload byte 0 (after 0 events)"]);
    check_decode(&[3], expect!["error: event cut short at payload byte 1 (after 0 events)"]);
    check_decode(&[3, 0, 0], expect!["error: event cut short at payload byte 3 (after 0 events)"]);
    // A length far past the end is refused before anything is allocated.
    check_decode(
        &[3, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a'],
        expect!["error: event cut short at payload byte 3 (after 0 events)"],
    );
    check_decode(
        &[3, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        expect!["error: varint too long at payload byte 5 (after 1 events)"],
    );
    check_decode(
        &[3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        expect!["error: varint too long at payload byte 1 (after 0 events)"],
    );
    check_decode(
        &[6, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0],
        expect![
            "error: value 4294967296 does not fit in 32 bits at payload byte 2 (after 0 events)"
        ],
    );
    check_decode(
        &[9, 0, 0, 1, 0xff],
        expect!["error: notice text is not utf-8 at payload byte 3 (after 0 events)"],
    );
    check_decode(
        &[9, 0, 2],
        expect!["error: unknown option marker 2 at payload byte 2 (after 0 events)"],
    );
    check_decode(
        &[10, 0, 9],
        expect!["error: unknown session status 9 at payload byte 2 (after 0 events)"],
    );
    check_decode(
        &[7, 0, 0, 2],
        expect!["error: unknown direction 2 at payload byte 3 (after 0 events)"],
    );
    check_decode(
        &[2, 0, 0, 3],
        expect!["error: unknown channel kind 3 at payload byte 3 (after 0 events)"],
    );
    check_decode(
        &[1, 0, 1, 2, 3],
        expect!["error: event cut short at payload byte 2 (after 0 events)"],
    );
}

#[test]
fn long_fields_are_cut_on_a_char_boundary() {
    let mut buf = Vec::new();
    let text = "é".repeat(10); // 20 bytes
    encode(&mut buf, 0, &Event::Notice { channel: None, text }, 7);
    let mut back = Vec::new();
    decode_all(&buf, &mut back).unwrap();
    expect![[r#"       0 Notice { channel: None, text: "ééé" }"#]]
        .assert_eq(render_events(&back).trim_end());
}

/// The bytes of a tiny recording, pinned so that a format change cannot slip in
/// unnoticed: changing them needs a new FORMAT_VERSION.
#[test]
fn format_is_pinned() {
    let mut w = RecordingWriter::new(
        SessionStart {
            user: "a".into(),
            target: "t".into(),
            target_host: "h".into(),
            target_login: "l".into(),
            client_addr: "c".into(),
            started_at_us: 1,
            ..start()
        },
        key(),
    );
    w.push(&ev(2, out(0, "x")));
    let mut bytes = w.flush(3, false).unwrap();
    let (tail, info) = w.seal(
        4,
        Seal { status: SessionStatus::Closed, reason: None, ended_at_us: 5, unsigned_tail: None },
        6,
    );
    bytes.extend(tail);
    let dump: String = bytes.chunks(32).map(|row| hex(row) + "\n").collect();
    expect![[r#"
        4b575245430006000193f1c20000700080000000000000014b57434800000000
        00000000030000000000000000220000002200000001000193f1c20000700080
        00000000000001016101740168016c01630203020001780192fdd42ccd449564
        7c9ad117f5bfa4b75a9d897836d6fd3f5cc079e98e4fc04b5743480100000000
        00000006000000000000000505000000050000000a0401000a6794f545360624
        41435eb444d19d4f3daf8662fcf868eb21240eee4daed0f4f9dfe1ad5b34b074
        26cb2f8ff0414a91899f512e7bffd87991b0efe3211d8db0579e9591f8336f4f
        d4ed9f78536232d48de3cad8512a7a6c92c58fe872390f870f
    "#]]
    .assert_eq(&dump);
    expect!["6794f54536062441435eb444d19d4f3daf8662fcf868eb21240eee4daed0f4f9"]
        .assert_eq(&hex(&info.chain_head));
}

/// A version 1 recording (the bytes `format_is_pinned` gave before version 2) still reads
/// and verifies.
#[test]
fn version_1_recordings_still_verify() {
    let v1 = "4b575245430001000193f1c20000700080000000000000014b57434800000000\
        00000000030000000000000000220000002200000001000193f1c20000700080\
        00000000000001016101740168016c01630203020001780192fdd42ccd449564\
        7c9ad117f5bfa4b75a9d897836d6fd3f5cc079e98e4fc04b5743480100000000\
        00000006000000000000000505000000050000000a0401000a6794f545360624\
        41435eb444d19d4f3daf8662fcf868eb21240eee4daed0f4f9dfe1ad5b34b074\
        26cb2f8ff0414a91899f512e7bffd87991b0efe3211d8db0579e9591f8336f4f\
        d4ed9f78536232d48de3cad8512a7a6c92c58fe872390f870f";
    let hexdigits: Vec<u8> = v1.bytes().filter(u8::is_ascii_hexdigit).collect();
    let bytes: Vec<u8> = hexdigits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect();
    assert_eq!(crate::header(&bytes).unwrap().version, 1);
    expect!["ok: 2 chunks, seal closed at chunk 1, last checkpoint 1, user a"]
        .assert_eq(&render_verify(&verify(&bytes, &key().verifying_key())));
    // The same events in every later version's header (the version is not hashed) read too.
    for version in 2..crate::FORMAT_VERSION {
        let mut b = bytes.clone();
        b[6..8].copy_from_slice(&version.to_le_bytes());
        let v = verify(&b, &key().verifying_key()).unwrap();
        assert_eq!((v.chunks, v.reason), (2, None), "version {version}");
    }
}

/// The reason a person gave is signed right after the session start, and read back by
/// `verify`; anywhere else it is a structural error, so it cannot be added or moved later.
#[test]
fn the_stated_reason_is_part_of_the_signed_identity() {
    let context = Event::Context { reason: "CHG-42 disk full".into() };
    let mut w = RecordingWriter::new(start(), key());
    w.push(&ev(0, context.clone()));
    let mut bytes = w.flush(T0, true).unwrap();
    w.push(&ev(10, out(0, "x")));
    let (tail, _) = w.seal(20, closed(), T0 + 20);
    bytes.extend(tail);
    let v = verify(&bytes, &key().verifying_key()).unwrap();
    assert_eq!(v.reason.as_deref(), Some("CHG-42 disk full"));
    assert!(read_events(&bytes, None).unwrap().iter().any(|e| e.event == context));

    let mut w = RecordingWriter::new(start(), key());
    let mut bytes = w.flush(T0, true).unwrap();
    w.push(&ev(10, context));
    let (tail, _) = w.seal(20, closed(), T0 + 20);
    bytes.extend(tail);
    let e = verify(&bytes, &key().verifying_key()).unwrap_err();
    assert_eq!(e.to_string(), "chunk 1: the session's reason is not right after the session start");
}

#[test]
fn ledger_chain() {
    assert_eq!(ledger::GENESIS, *blake3::hash(b"keepwatch-ledger-v1").as_bytes());
    let e1 = ledger::entry_hash(&ledger::GENESIS, 0, &session_id(), &[1; 32], T0);
    let e2 = ledger::entry_hash(&e1, 1, &session_id(), &[2; 32], T0 + 1);
    expect!["0ebf298b506b3466aad195413f5cbdeffe9fece63074a774566ba126fa95b49f"]
        .assert_eq(&hex(&e2));
    let sig = ledger::sign(&key(), &e2);
    assert!(ledger::verify_sig(&key().verifying_key(), &e2, &sig));
    assert!(!ledger::verify_sig(&other_key().verifying_key(), &e2, &sig));
    assert!(!ledger::verify_sig(&key().verifying_key(), &e1, &sig));
}

#[test]
fn tunnel_and_file_events_round_trip() {
    let events = vec![
        ev(
            10,
            Event::TunnelOpen {
                channel: 3,
                host: "db.internal".into(),
                port: 5432,
                originator: "127.0.0.1:40000".into(),
            },
        ),
        ev(20, Event::TunnelClose { channel: 3, bytes_to_target: 123, bytes_to_client: u64::MAX }),
        ev(
            30,
            Event::FileOperation {
                channel: 4,
                op: "rename".into(),
                path: "/a".into(),
                target_path: Some("/b".into()),
                result: "ok".into(),
            },
        ),
        ev(
            40,
            Event::FileOperation {
                channel: 4,
                op: "open".into(),
                path: "/etc/shadow".into(),
                target_path: None,
                result: "denied: downloads are not allowed".into(),
            },
        ),
        ev(
            50,
            Event::FileTransfer(FileTransfer {
                channel: 4,
                path: "/tmp/f".into(),
                upload: true,
                bytes: 1 << 40,
                size: Some(1 << 40),
                sha256: Some([7; 32]),
                ranges: vec![(0, 10), (20, 30)],
                complete: false,
            }),
        ),
        ev(
            60,
            Event::FileTransfer(FileTransfer {
                channel: 4,
                path: "x".into(),
                upload: false,
                bytes: 0,
                size: None,
                sha256: None,
                ranges: vec![],
                complete: true,
            }),
        ),
    ];
    let mut w = RecordingWriter::new(start(), key());
    for e in &events {
        w.push(e);
    }
    let (bytes, _) = w.seal(70, closed(), T0 + 1);
    let read = read_events(&bytes, None).unwrap();
    assert_eq!(&read[1..read.len() - 1], &events[..]);
    assert!(verify(&bytes, &key().verifying_key()).is_ok());
}
