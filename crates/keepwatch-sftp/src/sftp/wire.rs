//! SFTP version 3 on the wire (draft-ietf-secsh-filexfer-02, what OpenSSH speaks): packet
//! and flag numbers, a borrowing field reader, and the one packet Keepwatch writes itself.

/// The largest packet either side may declare: OpenSSH's 256 KiB plus room for headers.
pub(crate) const MAX_PACKET: u32 = 256 * 1024 + 1024;
/// The longest handle the draft allows.
pub(crate) const MAX_HANDLE: usize = 256;

pub(crate) const FXP_INIT: u8 = 1;
pub(crate) const FXP_VERSION: u8 = 2;
pub(crate) const FXP_OPEN: u8 = 3;
pub(crate) const FXP_CLOSE: u8 = 4;
pub(crate) const FXP_READ: u8 = 5;
pub(crate) const FXP_WRITE: u8 = 6;
pub(crate) const FXP_LSTAT: u8 = 7;
pub(crate) const FXP_FSTAT: u8 = 8;
pub(crate) const FXP_SETSTAT: u8 = 9;
pub(crate) const FXP_FSETSTAT: u8 = 10;
pub(crate) const FXP_OPENDIR: u8 = 11;
pub(crate) const FXP_READDIR: u8 = 12;
pub(crate) const FXP_REMOVE: u8 = 13;
pub(crate) const FXP_MKDIR: u8 = 14;
pub(crate) const FXP_RMDIR: u8 = 15;
pub(crate) const FXP_REALPATH: u8 = 16;
pub(crate) const FXP_STAT: u8 = 17;
pub(crate) const FXP_RENAME: u8 = 18;
pub(crate) const FXP_READLINK: u8 = 19;
pub(crate) const FXP_SYMLINK: u8 = 20;
pub(crate) const FXP_STATUS: u8 = 101;
pub(crate) const FXP_HANDLE: u8 = 102;
pub(crate) const FXP_DATA: u8 = 103;
pub(crate) const FXP_NAME: u8 = 104;
pub(crate) const FXP_ATTRS: u8 = 105;
pub(crate) const FXP_EXTENDED: u8 = 200;
pub(crate) const FXP_EXTENDED_REPLY: u8 = 201;

pub(crate) const FX_OK: u32 = 0;
pub(crate) const FX_EOF: u32 = 1;
pub(crate) const FX_PERMISSION_DENIED: u32 = 3;

pub(crate) const FXF_READ: u32 = 0x01;
pub(crate) const FXF_WRITE: u32 = 0x02;
pub(crate) const FXF_APPEND: u32 = 0x04;
pub(crate) const FXF_CREAT: u32 = 0x08;
pub(crate) const FXF_TRUNC: u32 = 0x10;
pub(crate) const FXF_EXCL: u32 = 0x20;

const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// What an attribute block says that matters here.
pub(crate) struct Attrs {
    pub(crate) size: Option<u64>,
    /// Extended attribute pairs: free-form bytes no event records.
    pub(crate) extended: u32,
}

/// Bytes before the data of a WRITE whose handle is `handle_len` long:
/// length, type, id, handle, offset, data length.
pub(crate) fn write_header_len(handle_len: usize) -> usize {
    4 + 1 + 4 + 4 + handle_len + 8 + 4
}

/// Bytes before the data of a DATA: length, type, id, data length.
pub(crate) const DATA_HEADER_LEN: usize = 4 + 1 + 4 + 4;

/// A field ran past the end of its packet.
#[derive(Debug)]
pub(crate) struct Truncated;

/// Reads fields front to back, borrowing strings from the packet.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        if self.buf.len() < n {
            return Err(Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Truncated> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Truncated> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Ok(u64::from(hi) << 32 | u64::from(lo))
    }

    pub(crate) fn string(&mut self) -> Result<&'a [u8], Truncated> {
        let len = self.u32()?;
        self.take(usize::try_from(len).map_err(|_| Truncated)?)
    }

    /// A whole attribute block.
    pub(crate) fn attrs(&mut self) -> Result<Attrs, Truncated> {
        let flags = self.u32()?;
        let size = if flags & ATTR_SIZE != 0 { Some(self.u64()?) } else { None };
        if flags & ATTR_UIDGID != 0 {
            self.take(8)?;
        }
        if flags & ATTR_PERMISSIONS != 0 {
            self.take(4)?;
        }
        if flags & ATTR_ACMODTIME != 0 {
            self.take(8)?;
        }
        let mut extended = 0;
        if flags & ATTR_EXTENDED != 0 {
            extended = self.u32()?;
            for _ in 0..extended {
                self.string()?;
                self.string()?;
            }
        }
        Ok(Attrs { size, extended })
    }

    /// Whether every byte of the packet was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

pub(crate) use crate::event::path_text;

pub(crate) fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Appends an `SSH_FXP_STATUS` packet (empty language tag).
pub(crate) fn put_status(out: &mut Vec<u8>, id: u32, code: u32, message: &str) {
    let len = 1 + 4 + 4 + 4 + message.len() + 4;
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(FXP_STATUS);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// The name of a packet type, for error messages.
pub(crate) fn type_name(ty: u8) -> &'static str {
    match ty {
        FXP_INIT => "INIT",
        FXP_VERSION => "VERSION",
        FXP_OPEN => "OPEN",
        FXP_CLOSE => "CLOSE",
        FXP_READ => "READ",
        FXP_WRITE => "WRITE",
        FXP_LSTAT => "LSTAT",
        FXP_FSTAT => "FSTAT",
        FXP_SETSTAT => "SETSTAT",
        FXP_FSETSTAT => "FSETSTAT",
        FXP_OPENDIR => "OPENDIR",
        FXP_READDIR => "READDIR",
        FXP_REMOVE => "REMOVE",
        FXP_MKDIR => "MKDIR",
        FXP_RMDIR => "RMDIR",
        FXP_REALPATH => "REALPATH",
        FXP_STAT => "STAT",
        FXP_RENAME => "RENAME",
        FXP_READLINK => "READLINK",
        FXP_SYMLINK => "SYMLINK",
        FXP_STATUS => "STATUS",
        FXP_HANDLE => "HANDLE",
        FXP_DATA => "DATA",
        FXP_NAME => "NAME",
        FXP_ATTRS => "ATTRS",
        FXP_EXTENDED => "EXTENDED",
        FXP_EXTENDED_REPLY => "EXTENDED_REPLY",
        _ => "unknown",
    }
}
