//! The scripts: transfers as OpenSSH's `sftp` drives them, policy refusals, metadata
//! operations and broken streams.

use expect_test::expect;

use super::encode::*;
use super::{Step, check, content, deny_downloads, deny_uploads, max_size, sha, transfers};
use crate::sftp::wire::*;
use crate::{TransferDirection, TransferPolicy};

use Step::{C, Finish, S};

const H: &[u8] = b"\0\0\0\x01";

fn hello() -> Vec<Step> {
    vec![C(init()), S(version(3))]
}

/// `sftp get`: stat, open, fstat, pipelined reads; the short read at 80 is re-requested
/// from 100 and gets EOF there, as OpenSSH does.
#[test]
fn download_pipelined_to_eof() {
    let file = content(100);
    let mut steps = hello();
    steps.extend([
        C(path_op(FXP_STAT, 1, "/srv/a.bin")),
        S(attrs(1, 100)),
        C(open(2, "/srv/a.bin", READ)),
        S(handle(2, H)),
        C(handle_op(FXP_FSTAT, 3, H)),
        S(attrs(3, 100)),
        C([read(4, H, 0, 40), read(5, H, 40, 40), read(6, H, 80, 40), read(7, H, 120, 40)]
            .concat()),
        S([data(4, &file[..40]), data(5, &file[40..80])].concat()),
        S(data(6, &file[80..])),
        S(status(7, EOF, "End of file")),
        C(read(8, H, 100, 20)),
        S(status(8, EOF, "End of file")),
        C(close(9, H)),
        S(status(9, OK, "Success")),
    ]);
    let events = check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c STAT#1 "/srv/a.bin"
            s ATTRS#1
              = stat "/srv/a.bin": ok
            c OPEN#2 "/srv/a.bin" 0x1
            s HANDLE#2 "\0\0\0\u{1}"
              = open "/srv/a.bin" flags=READ: ok
            c FSTAT#3
            s ATTRS#3
              = fstat "/srv/a.bin": ok
            c READ#4 @0 +40, READ#5 @40 +40, READ#6 @80 +40, READ#7 @120 +40
            s DATA#4 +40, DATA#5 +40
            s DATA#6 +20
            s STATUS#7 1 "End of file"
            c READ#8 @100 +20
            s STATUS#8 1 "End of file"
            c CLOSE#9
            s STATUS#9 0 "Success"
              = download "/srv/a.bin" bytes=100 size=100 sha256=56fee4b12b280ea1e7c1b550002bb18b342ccbd7229cd4b147ea07aa1a691294 ranges=[0..100] complete
        "#]],
    );
    let t = transfers(&events);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].direction, TransferDirection::Download);
    assert_eq!(t[0].sha256, Some(sha(&file)));
}

/// `sftp put`: open with WRITE|CREAT|TRUNC, pipelined writes, fsetstat, close.
#[test]
fn upload_pipelined() {
    let file = content(100);
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/up.bin", WRITE | CREAT | TRUNC)),
        S(handle(1, H)),
        C([write(2, H, 0, &file[..40]), write(3, H, 40, &file[40..80])].concat()),
        C(write(4, H, 80, &file[80..])),
        S([status(2, OK, "Success"), status(3, OK, "Success")].concat()),
        S(status(4, OK, "Success")),
        C(handle_op(FXP_FSETSTAT, 5, H)),
        S(status(5, OK, "Success")),
        C(close(6, H)),
        S(status(6, OK, "Success")),
    ]);
    let events = check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/up.bin" 0x1a
            s HANDLE#1 "\0\0\0\u{1}"
              = open "/srv/up.bin" flags=WRITE|CREAT|TRUNC: ok
            c WRITE#2 @0 +40, WRITE#3 @40 +40
            c WRITE#4 @80 +20
            s STATUS#2 0 "Success", STATUS#3 0 "Success"
            s STATUS#4 0 "Success"
            c FSETSTAT#5
              raw: FSETSTAT#5
            s STATUS#5 0 "Success"
              = fsetstat "/srv/up.bin": ok
            c CLOSE#6
            s STATUS#6 0 "Success"
              = upload "/srv/up.bin" bytes=100 size=100 sha256=56fee4b12b280ea1e7c1b550002bb18b342ccbd7229cd4b147ea07aa1a691294 ranges=[0..100] complete
        "#]],
    );
    let t = transfers(&events);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].direction, TransferDirection::Upload);
    assert_eq!(t[0].sha256, Some(sha(&file)));
}

/// An empty file: the first read gets EOF; an empty upload is complete too.
#[test]
fn empty_files() {
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/empty", READ)),
        S(handle(1, H)),
        C(read(2, H, 0, 32768)),
        S(status(2, EOF, "End of file")),
        C(close(3, H)),
        S(status(3, OK, "")),
        C(open(4, "/srv/new-empty", WRITE | CREAT | TRUNC)),
        S(handle(4, H)),
        C(close(5, H)),
        S(status(5, OK, "")),
    ]);
    let events = check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/empty" 0x1
            s HANDLE#1 "\0\0\0\u{1}"
              = open "/srv/empty" flags=READ: ok
            c READ#2 @0 +32768
            s STATUS#2 1 "End of file"
            c CLOSE#3
            s STATUS#3 0 ""
              = download "/srv/empty" bytes=0 size=0 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ranges=[] complete
            c OPEN#4 "/srv/new-empty" 0x1a
            s HANDLE#4 "\0\0\0\u{1}"
              = open "/srv/new-empty" flags=WRITE|CREAT|TRUNC: ok
            c CLOSE#5
            s STATUS#5 0 ""
              = upload "/srv/new-empty" bytes=0 size=0 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ranges=[] complete
        "#]],
    );
    for t in transfers(&events) {
        assert_eq!(t.sha256, Some(sha(b"")));
    }
}

/// A server may answer pipelined reads in any order: data is hashed in offset order.
#[test]
fn out_of_order_answers() {
    let file = content(120);
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/b.bin", READ)),
        S(handle(1, H)),
        C([read(2, H, 0, 40), read(3, H, 40, 40), read(4, H, 80, 40), read(5, H, 120, 40)]
            .concat()),
        S(data(4, &file[80..])),
        S(status(5, EOF, "")),
        S(data(3, &file[40..80])),
        S(data(2, &file[..40])),
        C(close(6, H)),
        S(status(6, OK, "")),
    ]);
    let events = check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/b.bin" 0x1
            s HANDLE#1 "\0\0\0\u{1}"
              = open "/srv/b.bin" flags=READ: ok
            c READ#2 @0 +40, READ#3 @40 +40, READ#4 @80 +40, READ#5 @120 +40
            s DATA#4 +40
            s STATUS#5 1 ""
            s DATA#3 +40
            s DATA#2 +40
            c CLOSE#6
            s STATUS#6 0 ""
              = download "/srv/b.bin" bytes=120 size=120 sha256=655250427d56b1b0eeb8497d21428704273458a01772d6881b65c0abac0f8a98 ranges=[0..120] complete
        "#]],
    );
    assert_eq!(transfers(&events)[0].sha256, Some(sha(&file)));
}

/// `sftp reget`: resuming at an offset moves only the tail: no hash, not complete.
#[test]
fn reget_resumes_at_offset() {
    let file = content(100);
    let mut steps = hello();
    steps.extend([
        C(path_op(FXP_STAT, 1, "/srv/c.bin")),
        S(attrs(1, 100)),
        C(open(2, "/srv/c.bin", READ)),
        S(handle(2, H)),
        C([read(3, H, 60, 40), read(4, H, 100, 40)].concat()),
        S([data(3, &file[60..]), status(4, EOF, "")].concat()),
        C(close(5, H)),
        S(status(5, OK, "")),
    ]);
    check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c STAT#1 "/srv/c.bin"
            s ATTRS#1
              = stat "/srv/c.bin": ok
            c OPEN#2 "/srv/c.bin" 0x1
            s HANDLE#2 "\0\0\0\u{1}"
              = open "/srv/c.bin" flags=READ: ok
            c READ#3 @60 +40, READ#4 @100 +40
            s DATA#3 +40, STATUS#4 1 ""
            c CLOSE#5
            s STATUS#5 0 ""
              = download "/srv/c.bin" bytes=40 size=100 ranges=[60..100] incomplete
        "#]],
    );
}

/// `sftp reput`: the stat gives the remote size, then WRITE|CREAT|APPEND from there.
#[test]
fn reput_resumes_at_offset() {
    let file = content(100);
    let mut steps = hello();
    steps.extend([
        C(path_op(FXP_STAT, 1, "/srv/d.bin")),
        S(attrs(1, 60)),
        C(open(2, "/srv/d.bin", WRITE | CREAT | APPEND)),
        S(handle(2, H)),
        C(write(3, H, 60, &file[60..])),
        S(status(3, OK, "")),
        C(close(4, H)),
        S(status(4, OK, "")),
    ]);
    check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c STAT#1 "/srv/d.bin"
            s ATTRS#1
              = stat "/srv/d.bin": ok
            c OPEN#2 "/srv/d.bin" 0xe
            s HANDLE#2 "\0\0\0\u{1}"
              = open "/srv/d.bin" flags=WRITE|APPEND|CREAT: ok
            c WRITE#3 @60 +40
            s STATUS#3 0 ""
            c CLOSE#4
            s STATUS#4 0 ""
              = upload "/srv/d.bin" bytes=40 ranges=[60..100] incomplete
        "#]],
    );
}

/// A gap that never fills: ranges show it, no hash.
#[test]
fn partial_reads_with_a_gap() {
    let file = content(100);
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/e.bin", READ)),
        S(handle(1, H)),
        C([read(2, H, 0, 20), read(3, H, 50, 20), read(4, H, 100, 20)].concat()),
        S([data(2, &file[..20]), data(3, &file[50..70]), status(4, EOF, "")].concat()),
        C(close(5, H)),
        S(status(5, OK, "")),
    ]);
    check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/e.bin" 0x1
            s HANDLE#1 "\0\0\0\u{1}"
              = open "/srv/e.bin" flags=READ: ok
            c READ#2 @0 +20, READ#3 @50 +20, READ#4 @100 +20
            s DATA#2 +20, DATA#3 +20, STATUS#4 1 ""
            c CLOSE#5
            s STATUS#5 0 ""
              = download "/srv/e.bin" bytes=40 ranges=[0..20,50..70] incomplete
        "#]],
    );
}

/// A failed write spoils the upload.
#[test]
fn failed_write() {
    let file = content(80);
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/full", WRITE | CREAT | TRUNC)),
        S(handle(1, H)),
        C([write(2, H, 0, &file[..40]), write(3, H, 40, &file[40..])].concat()),
        S([status(2, OK, ""), status(3, FAILURE, "No space left on device")].concat()),
        C(close(4, H)),
        S(status(4, OK, "")),
    ]);
    check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/full" 0x1a
            s HANDLE#1 "\0\0\0\u{1}"
              = open "/srv/full" flags=WRITE|CREAT|TRUNC: ok
            c WRITE#2 @0 +40, WRITE#3 @40 +40
            s STATUS#2 0 "", STATUS#3 4 "No space left on device"
              = write "/srv/full": status FAILURE "No space left on device"
            c CLOSE#4
            s STATUS#4 0 ""
              = upload "/srv/full" bytes=40 ranges=[0..40] incomplete
        "#]],
    );
}

/// Without uploads: opens that write, and everything that changes the target, are answered
/// PERMISSION_DENIED by Keepwatch and never forwarded; reading still works.
#[test]
fn uploads_denied() {
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/new", WRITE | CREAT | TRUNC)),
        C(open(2, "/srv/x", CREAT)),
        C(path_op(FXP_REMOVE, 3, "/srv/x")),
        C(two_paths(FXP_RENAME, 4, "/srv/x", "/srv/y")),
        C(path_attrs_op(FXP_MKDIR, 5, "/srv/dir")),
        C(path_op(FXP_RMDIR, 6, "/srv/dir")),
        C(path_attrs_op(FXP_SETSTAT, 7, "/srv/x")),
        C(two_paths(FXP_SYMLINK, 8, "/etc/passwd", "/srv/link")),
        C(extended(9, "posix-rename@openssh.com", &[F::Str(b"/srv/x"), F::Str(b"/srv/z")])),
        C(extended(10, "vendor-thing@example.com", &[])),
        C(path_op(FXP_REALPATH, 11, ".")),
        S(name(11, &["/home/alice"])),
        C(extended(12, "statvfs@openssh.com", &[F::Str(b"/")])),
        S(extended_reply(12)),
        C(open(13, "/srv/readme", READ)),
        S(handle(13, H)),
        C(write(14, H, 0, b"sneaky")),
        C(handle_op(FXP_FSETSTAT, 15, H)),
        C(close(16, H)),
        S(status(16, OK, "")),
    ]);
    check(
        deny_uploads(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/new" 0x1a
              forward: nothing
              reply: STATUS#1 3 "keepwatch: uploads are not allowed on this target"
              = open "/srv/new" flags=WRITE|CREAT|TRUNC: denied: uploads are not allowed on this target
            c OPEN#2 "/srv/x" 0x8
              forward: nothing
              reply: STATUS#2 3 "keepwatch: uploads are not allowed on this target"
              = open "/srv/x" flags=CREAT: denied: uploads are not allowed on this target
            c REMOVE#3 "/srv/x"
              forward: nothing
              reply: STATUS#3 3 "keepwatch: changing files is not allowed on this target"
              = remove "/srv/x": denied: changing files is not allowed on this target
            c RENAME#4 "/srv/x"
              forward: nothing
              reply: STATUS#4 3 "keepwatch: changing files is not allowed on this target"
              = rename "/srv/x" -> "/srv/y": denied: changing files is not allowed on this target
            c MKDIR#5 "/srv/dir"
              forward: nothing
              reply: STATUS#5 3 "keepwatch: changing files is not allowed on this target"
              = mkdir "/srv/dir": denied: changing files is not allowed on this target
            c RMDIR#6 "/srv/dir"
              forward: nothing
              reply: STATUS#6 3 "keepwatch: changing files is not allowed on this target"
              = rmdir "/srv/dir": denied: changing files is not allowed on this target
            c SETSTAT#7 "/srv/x"
              forward: nothing
              reply: STATUS#7 3 "keepwatch: changing files is not allowed on this target"
              = setstat "/srv/x": denied: changing files is not allowed on this target
            c SYMLINK#8 "/etc/passwd"
              forward: nothing
              reply: STATUS#8 3 "keepwatch: changing files is not allowed on this target"
              = symlink "/srv/link" -> "/etc/passwd": denied: changing files is not allowed on this target
            c EXTENDED#9 "posix-rename@openssh.com"
              forward: nothing
              reply: STATUS#9 3 "keepwatch: changing files is not allowed on this target"
              = extended "posix-rename@openssh.com" "/srv/x" -> "/srv/z": denied: changing files is not allowed on this target
            c EXTENDED#10 "vendor-thing@example.com"
              forward: nothing
              reply: STATUS#10 3 "keepwatch: changing files is not allowed on this target"
              = extended "vendor-thing@example.com" "": denied: changing files is not allowed on this target
            c REALPATH#11 "."
            s NAME#11
              raw: NAME#11
              = realpath ".": ok
            c EXTENDED#12 "statvfs@openssh.com"
              raw: EXTENDED#12 "statvfs@openssh.com"
            s EXTENDED_REPLY#12
              raw: EXTENDED_REPLY#12
              = extended "statvfs@openssh.com" "/": ok
            c OPEN#13 "/srv/readme" 0x1
            s HANDLE#13 "\0\0\0\u{1}"
              = open "/srv/readme" flags=READ: ok
            c WRITE#14 @0 +6
              forward: nothing
              reply: STATUS#14 3 "keepwatch: uploads are not allowed on this target"
              = write "/srv/readme": denied: uploads are not allowed on this target
            c FSETSTAT#15
              forward: nothing
              reply: STATUS#15 3 "keepwatch: changing files is not allowed on this target"
              = fsetstat "/srv/readme": denied: changing files is not allowed on this target
            c CLOSE#16
            s STATUS#16 0 ""
              = download "/srv/readme" bytes=0 ranges=[] incomplete
        "#]],
    );
}

/// Without downloads: opens that read are denied, and so are READs on any handle.
#[test]
fn downloads_denied() {
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/secret", READ)),
        C(open(2, "/srv/nowrite", 0)),
        C(open(3, "/srv/upload", WRITE | CREAT | TRUNC)),
        S(handle(3, H)),
        C(read(4, H, 0, 10)),
        C(write(5, H, 0, b"hello")),
        S(status(5, OK, "")),
        C(close(6, H)),
        S(status(6, OK, "")),
        C(open(7, "/srv/both", READ | WRITE)),
    ]);
    check(
        deny_downloads(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/secret" 0x1
              forward: nothing
              reply: STATUS#1 3 "keepwatch: downloads are not allowed on this target"
              = open "/srv/secret" flags=READ: denied: downloads are not allowed on this target
            c OPEN#2 "/srv/nowrite" 0x0
              forward: nothing
              reply: STATUS#2 3 "keepwatch: downloads are not allowed on this target"
              = open "/srv/nowrite" flags=0x0: denied: downloads are not allowed on this target
            c OPEN#3 "/srv/upload" 0x1a
            s HANDLE#3 "\0\0\0\u{1}"
              = open "/srv/upload" flags=WRITE|CREAT|TRUNC: ok
            c READ#4 @0 +10
              forward: nothing
              reply: STATUS#4 3 "keepwatch: downloads are not allowed on this target"
              = read "/srv/upload": denied: downloads are not allowed on this target
            c WRITE#5 @0 +5
            s STATUS#5 0 ""
            c CLOSE#6
            s STATUS#6 0 ""
              = upload "/srv/upload" bytes=5 size=5 sha256=2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 ranges=[0..5] complete
            c OPEN#7 "/srv/both" 0x3
              forward: nothing
              reply: STATUS#7 3 "keepwatch: downloads are not allowed on this target"
              = open "/srv/both" flags=READ|WRITE: denied: downloads are not allowed on this target
        "#]],
    );
}

/// With a 50-byte limit: the write that crosses it is denied (and the pipelined one after
/// it, reported once); the read answer that crosses it is replaced by a refusal.
#[test]
fn over_the_size_limit() {
    let file = content(100);
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/big-up", WRITE | CREAT | TRUNC)),
        S(handle(1, H)),
        C([
            write(2, H, 0, &file[..40]),
            write(3, H, 40, &file[40..80]),
            write(4, H, 80, &file[80..]),
        ]
        .concat()),
        S(status(2, OK, "")),
        C(close(5, H)),
        S(status(5, OK, "")),
        C(open(6, "/srv/big-down", READ)),
        S(handle(6, b"h2")),
        C([read(7, b"h2", 0, 40), read(8, b"h2", 40, 40), read(9, b"h2", 80, 40)].concat()),
        S([data(7, &file[..40]), data(8, &file[40..80]), data(9, &file[80..])].concat()),
        C(close(10, b"h2")),
        S(status(10, OK, "")),
    ]);
    check(
        max_size(50),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/big-up" 0x1a
            s HANDLE#1 "\0\0\0\u{1}"
              = open "/srv/big-up" flags=WRITE|CREAT|TRUNC: ok
            c WRITE#2 @0 +40, WRITE#3 @40 +40, WRITE#4 @80 +20
              forward: WRITE#2 @0 +40
              reply: STATUS#3 3 "keepwatch: files over 50 bytes are not allowed on this target", STATUS#4 3 "keepwatch: files over 50 bytes are not allowed on this target"
              = write "/srv/big-up": denied: files over 50 bytes are not allowed on this target
            s STATUS#2 0 ""
            c CLOSE#5
            s STATUS#5 0 ""
              = upload "/srv/big-up" bytes=40 ranges=[0..40] incomplete
            c OPEN#6 "/srv/big-down" 0x1
            s HANDLE#6 "h2"
              = open "/srv/big-down" flags=READ: ok
            c READ#7 @0 +40, READ#8 @40 +40, READ#9 @80 +40
            s DATA#7 +40, DATA#8 +40, DATA#9 +20
              forward: DATA#7 +40, STATUS#8 3 "keepwatch: files over 50 bytes are not allowed on this target", STATUS#9 3 "keepwatch: files over 50 bytes are not allowed on this target"
              = read "/srv/big-down": denied: files over 50 bytes are not allowed on this target
            c CLOSE#10
            s STATUS#10 0 ""
              = download "/srv/big-down" bytes=40 ranges=[0..40] incomplete
        "#]],
    );
}

/// A file exactly at the limit goes through: the read at the limit gets EOF, not data.
#[test]
fn exactly_the_size_limit() {
    let file = content(100);
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/fits", READ)),
        S(handle(1, H)),
        C([read(2, H, 0, 64), read(3, H, 64, 64)].concat()),
        S([data(2, &file[..64]), data(3, &file[64..])].concat()),
        C(read(4, H, 100, 28)),
        S(status(4, EOF, "")),
        C(close(5, H)),
        S(status(5, OK, "")),
    ]);
    let events = check(
        max_size(100),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/fits" 0x1
            s HANDLE#1 "\0\0\0\u{1}"
              = open "/srv/fits" flags=READ: ok
            c READ#2 @0 +64, READ#3 @64 +64
            s DATA#2 +64, DATA#3 +36
            c READ#4 @100 +28
            s STATUS#4 1 ""
            c CLOSE#5
            s STATUS#5 0 ""
              = download "/srv/fits" bytes=100 size=100 sha256=56fee4b12b280ea1e7c1b550002bb18b342ccbd7229cd4b147ea07aa1a691294 ranges=[0..100] complete
        "#]],
    );
    assert_eq!(transfers(&events)[0].sha256, Some(sha(&file)));
}

/// Metadata operations and their answers.
#[test]
fn metadata_operations() {
    let mut steps = hello();
    steps.extend([
        C(two_paths(FXP_RENAME, 1, "/srv/a", "/srv/b")),
        S(status(1, OK, "Success")),
        C(path_op(FXP_REMOVE, 2, "/srv/gone")),
        S(status(2, NO_SUCH_FILE, "No such file")),
        C(path_attrs_op(FXP_MKDIR, 3, "/srv/new")),
        S(status(3, OK, "")),
        C(path_attrs_op(FXP_SETSTAT, 4, "/etc/shadow")),
        S(status(4, PERMISSION_DENIED, "Permission denied")),
        C(path_op(FXP_RMDIR, 5, "/srv/full")),
        S(status(5, FAILURE, "Directory not empty")),
        C(path_op(FXP_READLINK, 6, "/srv/link")),
        S(name(6, &["target"])),
        C(two_paths(FXP_SYMLINK, 7, "/etc/hosts", "/srv/hosts-link")),
        S(status(7, OK, "")),
        C(path_op(FXP_LSTAT, 8, "/srv/link")),
        S(attrs(8, 6)),
        C(extended(9, "hardlink@openssh.com", &[F::Str(b"/srv/a"), F::Str(b"/srv/a2")])),
        S(status(9, OK, "")),
        C(extended(10, "limits@openssh.com", &[])),
        S(extended_reply(10)),
        C(path_op(FXP_OPENDIR, 11, "/srv")),
        S(handle(11, b"d1")),
        C(handle_op(FXP_READDIR, 12, b"d1")),
        S(name(12, &["a", "b"])),
        C(handle_op(FXP_READDIR, 13, b"d1")),
        S(status(13, EOF, "")),
        C(close(14, b"d1")),
        S(status(14, OK, "")),
        C(path_op(FXP_OPENDIR, 15, "/root")),
        S(status(15, PERMISSION_DENIED, "Permission denied")),
    ]);
    check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c RENAME#1 "/srv/a"
            s STATUS#1 0 "Success"
              = rename "/srv/a" -> "/srv/b": ok
            c REMOVE#2 "/srv/gone"
            s STATUS#2 2 "No such file"
              = remove "/srv/gone": status NO_SUCH_FILE "No such file"
            c MKDIR#3 "/srv/new"
            s STATUS#3 0 ""
              = mkdir "/srv/new": ok
            c SETSTAT#4 "/etc/shadow"
            s STATUS#4 3 "Permission denied"
              = setstat "/etc/shadow": status PERMISSION_DENIED "Permission denied"
            c RMDIR#5 "/srv/full"
            s STATUS#5 4 "Directory not empty"
              = rmdir "/srv/full": status FAILURE "Directory not empty"
            c READLINK#6 "/srv/link"
            s NAME#6
              raw: NAME#6
              = readlink "/srv/link": ok
            c SYMLINK#7 "/etc/hosts"
            s STATUS#7 0 ""
              = symlink "/srv/hosts-link" -> "/etc/hosts": ok
            c LSTAT#8 "/srv/link"
            s ATTRS#8
              = lstat "/srv/link": ok
            c EXTENDED#9 "hardlink@openssh.com"
              raw: EXTENDED#9 "hardlink@openssh.com"
            s STATUS#9 0 ""
              = extended "hardlink@openssh.com" "/srv/a" -> "/srv/a2": ok
            c EXTENDED#10 "limits@openssh.com"
              raw: EXTENDED#10 "limits@openssh.com"
            s EXTENDED_REPLY#10
              raw: EXTENDED_REPLY#10
              = extended "limits@openssh.com" "": ok
            c OPENDIR#11 "/srv"
            s HANDLE#11 "d1"
              = opendir "/srv": ok
            c READDIR#12
            s NAME#12
              raw: NAME#12
            c READDIR#13
            s STATUS#13 1 ""
            c CLOSE#14
            s STATUS#14 0 ""
            c OPENDIR#15 "/root"
            s STATUS#15 3 "Permission denied"
              = opendir "/root": status PERMISSION_DENIED "Permission denied"
        "#]],
    );
}

/// The channel ends with a file open and requests unanswered.
#[test]
fn channel_ends_mid_transfer() {
    let file = content(100);
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/cut", READ)),
        S(handle(1, H)),
        C([read(2, H, 0, 40), read(3, H, 40, 40)].concat()),
        S(data(2, &file[..40])),
        C(path_op(FXP_REMOVE, 4, "/srv/other")),
        Finish,
    ]);
    check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/cut" 0x1
            s HANDLE#1 "\0\0\0\u{1}"
              = open "/srv/cut" flags=READ: ok
            c READ#2 @0 +40, READ#3 @40 +40
            s DATA#2 +40
            c REMOVE#4 "/srv/other"
            finish
              = remove "/srv/other": unanswered
              = download "/srv/cut" bytes=40 ranges=[0..40] incomplete
        "#]],
    );
}

/// Two files open at once, answers interleaved; a handle string reused after its close.
#[test]
fn concurrent_handles() {
    let a = content(30);
    let b: Vec<u8> = content(50).into_iter().rev().collect();
    let mut steps = hello();
    steps.extend([
        C([open(1, "/srv/a", READ), open(2, "/srv/b", WRITE | CREAT | TRUNC)].concat()),
        S([handle(1, b"A"), handle(2, b"B")].concat()),
        C([read(3, b"A", 0, 64), write(4, b"B", 0, &b[..25])].concat()),
        C([write(5, b"B", 25, &b[25..]), read(6, b"A", 30, 64)].concat()),
        S([status(4, OK, ""), data(3, &a), status(5, OK, ""), status(6, EOF, "")].concat()),
        C([close(7, b"A"), close(8, b"B")].concat()),
        S([status(7, OK, ""), status(8, OK, "")].concat()),
        C(open(9, "/srv/c", READ)),
        S(handle(9, b"A")),
        C(close(10, b"A")),
        S(status(10, OK, "")),
    ]);
    let events = check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/a" 0x1, OPEN#2 "/srv/b" 0x1a
            s HANDLE#1 "A", HANDLE#2 "B"
              = open "/srv/a" flags=READ: ok
              = open "/srv/b" flags=WRITE|CREAT|TRUNC: ok
            c READ#3 @0 +64, WRITE#4 @0 +25
            c WRITE#5 @25 +25, READ#6 @30 +64
            s STATUS#4 0 "", DATA#3 +30, STATUS#5 0 "", STATUS#6 1 ""
            c CLOSE#7, CLOSE#8
            s STATUS#7 0 "", STATUS#8 0 ""
              = download "/srv/a" bytes=30 size=30 sha256=0617b8d6c0f0d6b02da37cc2dc2ebe4b22604391be384a05f0ba1f4cc1af608c ranges=[0..30] complete
              = upload "/srv/b" bytes=50 size=50 sha256=716ba4755f7b13a29d43516405808bdb743877fffa24ee9b7587b70e2c0611c3 ranges=[0..50] complete
            c OPEN#9 "/srv/c" 0x1
            s HANDLE#9 "A"
              = open "/srv/c" flags=READ: ok
            c CLOSE#10
            s STATUS#10 0 ""
              = download "/srv/c" bytes=0 ranges=[] incomplete
        "#]],
    );
    let t = transfers(&events);
    assert_eq!(t[0].sha256, Some(sha(&a)));
    assert_eq!(t[1].sha256, Some(sha(&b)));
}

/// A declared length over 256 KiB + 1 KiB: with nothing to enforce, the tracker records the
/// error and passes everything through untouched from then on.
#[test]
fn oversized_length_passes_through() {
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/a", READ)),
        C([vec![0, 4, 0x04, 0x01, FXP_WRITE], vec![7; 20]].concat()),
        S(handle(1, H)),
        C(path_op(FXP_REMOVE, 2, "/srv/a")),
        S(status(2, OK, "")),
        Finish,
    ]);
    check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/a" 0x1
            c raw 25 bytes
              raw: raw 25 bytes
              = protocol error from client: packet length 263169 is over the 263168-byte limit
            s HANDLE#1 "\0\0\0\u{1}"
              raw: HANDLE#1 "\0\0\0\u{1}"
            c REMOVE#2 "/srv/a"
              raw: REMOVE#2 "/srv/a"
            s STATUS#2 0 ""
              raw: STATUS#2 0 ""
            finish
        "#]],
    );
}

/// The same with a policy to enforce: nothing more goes through, and the channel closes.
#[test]
fn malformed_with_policy_closes() {
    let mut steps = hello();
    steps.extend([
        C([0, 0, 0, 0].to_vec()),
        C(open(1, "/srv/a", WRITE | CREAT)),
        S(status(1, OK, "")),
    ]);
    check(
        deny_uploads(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c raw 4 bytes
              forward: nothing
              = protocol error from client: packet length 0 leaves no room for a type
              close channel
            c OPEN#1 "/srv/a" 0xa
              forward: nothing
              close channel
            s STATUS#1 0 ""
              forward: nothing
              close channel
        "#]],
    );
}

/// Fields cut short by the packet's own length; an id reused while outstanding; a server
/// that speaks another version.
#[test]
fn malformed_packets() {
    let short_open = packet(FXP_OPEN, &[F::U32(1), F::U32(100)]);
    check(
        TransferPolicy::default(),
        &[C(short_open)],
        expect![[r#"
            c OPEN#1 "" 0x0
              raw: OPEN#1 "" 0x0
              = protocol error from client: OPEN packet cut short by its length
        "#]],
    );
    let long_write = packet(FXP_WRITE, &[F::U32(1), F::Str(H), F::U64(0), F::U32(1000), F::U32(0)]);
    check(
        TransferPolicy::default(),
        &[C(long_write)],
        expect![[r#"
            c WRITE#1 @0 +0
              raw: WRITE#1 @0 +0
              = protocol error from client: WRITE packet cut short by its length
        "#]],
    );
    let short_data = packet(FXP_DATA, &[F::U32(1)]);
    check(
        max_size(10),
        &[S(short_data)],
        expect![[r#"
        s DATA#1 +0
          forward: nothing
          = protocol error from server: DATA packet cut short by its length
          close channel
    "#]],
    );
    check(
        TransferPolicy::default(),
        &[C(path_op(FXP_STAT, 1, "/a")), C(path_op(FXP_STAT, 1, "/b"))],
        expect![[r#"
            c STAT#1 "/a"
            c STAT#1 "/b"
              raw: STAT#1 "/b"
              = protocol error from client: request id 1 reused while a request with it is outstanding
        "#]],
    );
    check(
        TransferPolicy::default(),
        &[C(init()), S(version(6))],
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v6
              raw: VERSION v6
              = protocol error from server: server speaks sftp version 6, only version 3 is understood
        "#]],
    );
    let long_handle = handle(1, &[b'h'; 300]);
    check(
        TransferPolicy::default(),
        &[C(open(1, "/a", READ)), S(long_handle)],
        expect![[r#"
            c OPEN#1 "/a" 0x1
            s HANDLE#1 "hhhhhhhhhhhhhhhh"...(300 bytes)
              raw: HANDLE#1 "hhhhhhhhhhhhhhhh"...(300 bytes)
              = protocol error from server: handle of 300 bytes is over the 256-byte limit
        "#]],
    );
}

/// Unknown request types are forwarded and recorded; without uploads they are refused, as
/// they might change something.
#[test]
fn unknown_requests() {
    let odd = packet(99, &[F::U32(5), F::Str(b"?")]);
    check(
        TransferPolicy::default(),
        &[C(odd.clone()), S(status(5, 8, "Unsupported"))],
        expect![[r#"
            c unknown#5
              raw: unknown#5
            s STATUS#5 8 "Unsupported"
              = unknown request type 99 "": status OP_UNSUPPORTED "Unsupported"
        "#]],
    );
    check(
        deny_uploads(),
        &[C(odd), C(packet(98, &[]))],
        expect![[r#"
            c unknown#5
              forward: nothing
              reply: STATUS#5 3 "keepwatch: changing files is not allowed on this target"
              = unknown request type 99 "": denied: changing files is not allowed on this target
            c unknown
              raw: unknown
        "#]],
    );
}

/// `copy-data` makes the target write a file on its own: no hash for the destination.
#[test]
fn copy_data_extension() {
    let file = content(10);
    let mut steps = hello();
    steps.extend([
        C([open(1, "/srv/src", READ), open(2, "/srv/dst", WRITE | CREAT | TRUNC)].concat()),
        S([handle(1, b"A"), handle(2, b"B")].concat()),
        C(extended(
            3,
            "copy-data",
            &[F::Str(b"A"), F::U64(0), F::U64(10), F::Str(b"B"), F::U64(0)],
        )),
        S(status(3, OK, "")),
        C(write(4, b"B", 10, &file)),
        S(status(4, OK, "")),
        C([close(5, b"A"), close(6, b"B")].concat()),
        S([status(5, OK, ""), status(6, OK, "")].concat()),
    ]);
    check(
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/src" 0x1, OPEN#2 "/srv/dst" 0x1a
            s HANDLE#1 "A", HANDLE#2 "B"
              = open "/srv/src" flags=READ: ok
              = open "/srv/dst" flags=WRITE|CREAT|TRUNC: ok
            c EXTENDED#3 "copy-data"
              raw: EXTENDED#3 "copy-data"
            s STATUS#3 0 ""
              = extended "copy-data" "/srv/src" -> "/srv/dst": ok
            c WRITE#4 @10 +10
            s STATUS#4 0 ""
            c CLOSE#5, CLOSE#6
            s STATUS#5 0 "", STATUS#6 0 ""
              = download "/srv/src" bytes=0 ranges=[] incomplete
              = upload "/srv/dst" bytes=10 ranges=[10..20] incomplete
        "#]],
    );
}

/// Data that runs more than 8 MiB ahead of a missing first answer: hashing gives up for
/// that file (its buffer is freed), yet the transfer is still whole and complete.
#[test]
fn gap_past_the_window_gives_up_hashing() {
    let chunk = vec![7u8; 32 * 1024];
    let n = 300u32; // 9.4 MiB
    let mut t = crate::SftpTracker::new(TransferPolicy::default());
    let mut out = crate::Output::default();
    t.from_client(&open(1, "/srv/big", READ), &mut out);
    t.from_server(&handle(1, H), &mut out);
    let reads: Vec<u8> =
        (0..=n).flat_map(|i| read(10 + i, H, u64::from(i) * 32768, 32768)).collect();
    t.from_client(&reads, &mut out);
    let mut peak = 0;
    for i in 1..n {
        t.from_server(&data(10 + i, &chunk), &mut out);
        peak = peak.max(t.buffered());
    }
    t.from_server(&status(10 + n, EOF, ""), &mut out);
    t.from_server(&data(10, &chunk), &mut out);
    t.from_client(&close(2, H), &mut out);
    t.from_server(&status(2, OK, ""), &mut out);
    assert!(peak <= 8 << 20, "buffered {peak} bytes");
    assert_eq!(t.buffered(), 0);
    let last = out.events.last().map(ToString::to_string).unwrap_or_default();
    assert_eq!(
        last,
        "download \"/srv/big\" bytes=9830400 size=9830400 ranges=[0..9830400] complete"
    );
}

/// With APPEND the target ignores WRITE offsets: writes at offset 0 still count toward the
/// limit by what the handle sent.
#[test]
fn append_writes_count_toward_the_limit() {
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/log", WRITE | CREAT | APPEND)),
        S(handle(1, H)),
        C([write(2, H, 0, &[b'a'; 30]), write(3, H, 0, &[b'b'; 30])].concat()),
        S(status(2, OK, "")),
        C(close(4, H)),
        S(status(4, OK, "")),
    ]);
    check(
        max_size(50),
        &steps,
        expect![[r#"
            c INIT v3
              raw: INIT v3
            s VERSION v3
              raw: VERSION v3
            c OPEN#1 "/srv/log" 0xe
            s HANDLE#1 "\0\0\0\u{1}"
              = open "/srv/log" flags=WRITE|APPEND|CREAT: ok
            c WRITE#2 @0 +30, WRITE#3 @0 +30
              forward: WRITE#2 @0 +30
              reply: STATUS#3 3 "keepwatch: files over 50 bytes are not allowed on this target"
              = write "/srv/log": denied: files over 50 bytes are not allowed on this target
            s STATUS#2 0 ""
            c CLOSE#4
            s STATUS#4 0 ""
              = upload "/srv/log" bytes=30 ranges=[0..30] incomplete
        "#]],
    );
}
