//! A small SFTP v3 encoder for building test streams, and a decoder that names the packets in
//! a byte stream for transcripts.

use std::fmt::Write as _;

use crate::sftp::wire::{self, Reader};

pub(super) const READ: u32 = 0x01;
pub(super) const WRITE: u32 = 0x02;
pub(super) const APPEND: u32 = 0x04;
pub(super) const CREAT: u32 = 0x08;
pub(super) const TRUNC: u32 = 0x10;

pub(super) const OK: u32 = 0;
pub(super) const EOF: u32 = 1;
pub(super) const NO_SUCH_FILE: u32 = 2;
pub(super) const PERMISSION_DENIED: u32 = 3;
pub(super) const FAILURE: u32 = 4;

/// Fields in wire order.
pub(super) enum F<'a> {
    U32(u32),
    U64(u64),
    Str(&'a [u8]),
}

pub(super) fn packet(ty: u8, fields: &[F<'_>]) -> Vec<u8> {
    let mut body = vec![ty];
    for f in fields {
        match f {
            F::U32(v) => body.extend_from_slice(&v.to_be_bytes()),
            F::U64(v) => body.extend_from_slice(&v.to_be_bytes()),
            F::Str(s) => {
                body.extend_from_slice(&(s.len() as u32).to_be_bytes());
                body.extend_from_slice(s);
            }
        }
    }
    let mut p = (body.len() as u32).to_be_bytes().to_vec();
    p.extend_from_slice(&body);
    p
}

use F::{Str, U32, U64};

pub(super) fn init() -> Vec<u8> {
    packet(wire::FXP_INIT, &[U32(3)])
}
pub(super) fn version(v: u32) -> Vec<u8> {
    packet(
        wire::FXP_VERSION,
        &[
            U32(v),
            Str(b"posix-rename@openssh.com"),
            Str(b"1"),
            Str(b"limits@openssh.com"),
            Str(b"1"),
        ],
    )
}
pub(super) fn open(id: u32, path: &str, pflags: u32) -> Vec<u8> {
    packet(wire::FXP_OPEN, &[U32(id), Str(path.as_bytes()), U32(pflags), U32(0)])
}
pub(super) fn close(id: u32, h: &[u8]) -> Vec<u8> {
    packet(wire::FXP_CLOSE, &[U32(id), Str(h)])
}
pub(super) fn read(id: u32, h: &[u8], offset: u64, len: u32) -> Vec<u8> {
    packet(wire::FXP_READ, &[U32(id), Str(h), U64(offset), U32(len)])
}
pub(super) fn write(id: u32, h: &[u8], offset: u64, data: &[u8]) -> Vec<u8> {
    packet(wire::FXP_WRITE, &[U32(id), Str(h), U64(offset), Str(data)])
}
pub(super) fn path_op(ty: u8, id: u32, path: &str) -> Vec<u8> {
    packet(ty, &[U32(id), Str(path.as_bytes())])
}
pub(super) fn path_attrs_op(ty: u8, id: u32, path: &str) -> Vec<u8> {
    packet(ty, &[U32(id), Str(path.as_bytes()), U32(0)])
}
pub(super) fn handle_op(ty: u8, id: u32, h: &[u8]) -> Vec<u8> {
    packet(ty, &[U32(id), Str(h)])
}
pub(super) fn two_paths(ty: u8, id: u32, a: &str, b: &str) -> Vec<u8> {
    packet(ty, &[U32(id), Str(a.as_bytes()), Str(b.as_bytes())])
}
pub(super) fn extended(id: u32, name: &str, args: &[F<'_>]) -> Vec<u8> {
    let mut fields = vec![U32(id), Str(name.as_bytes())];
    for a in args {
        fields.push(match a {
            U32(v) => U32(*v),
            U64(v) => U64(*v),
            Str(s) => Str(s),
        });
    }
    packet(wire::FXP_EXTENDED, &fields)
}
pub(super) fn status(id: u32, code: u32, message: &str) -> Vec<u8> {
    packet(wire::FXP_STATUS, &[U32(id), U32(code), Str(message.as_bytes()), Str(b"")])
}
pub(super) fn handle(id: u32, h: &[u8]) -> Vec<u8> {
    packet(wire::FXP_HANDLE, &[U32(id), Str(h)])
}
pub(super) fn data(id: u32, bytes: &[u8]) -> Vec<u8> {
    packet(wire::FXP_DATA, &[U32(id), Str(bytes)])
}
pub(super) fn attrs(id: u32, size: u64) -> Vec<u8> {
    // SIZE and PERMISSIONS.
    packet(wire::FXP_ATTRS, &[U32(id), U32(0x05), U64(size), U32(0o100644)])
}
pub(super) fn name(id: u32, names: &[&str]) -> Vec<u8> {
    let mut fields = vec![U32(id), U32(names.len() as u32)];
    for n in names {
        fields.extend([Str(n.as_bytes()), Str(n.as_bytes()), U32(0)]);
    }
    packet(wire::FXP_NAME, &fields)
}
pub(super) fn extended_reply(id: u32) -> Vec<u8> {
    packet(wire::FXP_EXTENDED_REPLY, &[U32(id), U64(0)])
}

/// One line per packet in `bytes`, e.g. `OPEN#3 "/etc/passwd" 0x1`; whatever does not frame
/// as packets is shown as `raw N bytes`.
pub(super) fn describe(mut bytes: &[u8]) -> String {
    let mut parts = Vec::new();
    while !bytes.is_empty() {
        let len = if bytes.len() >= 4 { wire::be_u32(bytes) as usize } else { usize::MAX };
        if len == 0 || len > bytes.len() - 4 || len == usize::MAX {
            parts.push(format!("raw {} bytes", bytes.len()));
            break;
        }
        let (p, rest) = bytes.split_at(4 + len);
        parts.push(describe_one(p));
        bytes = rest;
    }
    parts.join(", ")
}

fn describe_one(p: &[u8]) -> String {
    let ty = p[4];
    let mut r = Reader::new(&p[5..]);
    let mut s = wire::type_name(ty).to_string();
    if matches!(ty, wire::FXP_INIT | wire::FXP_VERSION) {
        let _ = write!(s, " v{}", r.u32().unwrap_or(0));
        return s;
    }
    let Ok(id) = r.u32() else { return s };
    let _ = write!(s, "#{id}");
    let text = |b: &[u8]| match b.len() {
        0..=100 => format!("{:?}", String::from_utf8_lossy(b)),
        n => format!("{:?}...({n} bytes)", String::from_utf8_lossy(&b[..16])),
    };
    let _ = match ty {
        wire::FXP_OPEN => {
            let path = r.string().unwrap_or_default();
            write!(s, " {} {:#x}", text(path), r.u32().unwrap_or(0))
        }
        wire::FXP_READ => {
            let _ = r.string();
            write!(s, " @{} +{}", r.u64().unwrap_or(0), r.u32().unwrap_or(0))
        }
        wire::FXP_WRITE => {
            let _ = r.string();
            let offset = r.u64().unwrap_or(0);
            write!(s, " @{offset} +{}", r.string().map(<[u8]>::len).unwrap_or(0))
        }
        wire::FXP_STATUS => {
            let code = r.u32().unwrap_or(0);
            write!(s, " {code} {}", text(r.string().unwrap_or_default()))
        }
        wire::FXP_DATA => write!(s, " +{}", r.string().map(<[u8]>::len).unwrap_or(0)),
        wire::FXP_HANDLE => write!(s, " {}", text(r.string().unwrap_or_default())),
        wire::FXP_EXTENDED => write!(s, " {}", text(r.string().unwrap_or_default())),
        wire::FXP_LSTAT
        | wire::FXP_SETSTAT
        | wire::FXP_OPENDIR
        | wire::FXP_REMOVE
        | wire::FXP_MKDIR
        | wire::FXP_RMDIR
        | wire::FXP_REALPATH
        | wire::FXP_STAT
        | wire::FXP_READLINK
        | wire::FXP_RENAME
        | wire::FXP_SYMLINK => write!(s, " {}", text(r.string().unwrap_or_default())),
        _ => Ok(()),
    };
    s
}
