//! Result rows kept for the record under a grant that captures them: the first rows of each
//! statement's result, every value rendered as a parameter is (text, binary as hex, cut to
//! [`crate::Limits::max_parameter_len`]), and at most [`MAX_CAPTURED_BYTES`] of them.

use crate::event::Rows;
use crate::frame::Frame;
use crate::message::Cursor;

/// Bytes of rendered values one statement's capture holds at most; rows past it are counted
/// in [`Rows::left_out`], not kept.
pub const MAX_CAPTURED_BYTES: usize = 256 << 10;

/// Values of a row kept at most (PostgreSQL's own limit of columns); the recording's too.
const MAX_VALUES: usize = 1664;

/// Rows being kept for the statement at the front.
#[derive(Debug, Default)]
pub(super) struct Capture {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    bytes: usize,
    left_out: u64,
}

impl Capture {
    /// A RowDescription's column names. A body that does not parse gives no names (the rows
    /// are still kept).
    pub(super) fn described(frame: &Frame<'_>) -> Self {
        let mut c = Cursor::new(frame, "RowDescription");
        let mut columns = Vec::new();
        if let Ok(n) = c.i16() {
            for _ in 0..n.max(0) {
                let Ok(name) = c.cstr() else { break };
                // Table OID, column number, type OID, size, modifier, format: 18 bytes.
                if c.bytes(18, "column description cut short").is_err() {
                    break;
                }
                columns.push(name.into_owned());
            }
        }
        Capture { columns, ..Capture::default() }
    }

    /// Keeps one DataRow when there is room for it among `limit` rows.
    pub(super) fn row(&mut self, frame: &Frame<'_>, limit: usize, max_value: usize) {
        if self.rows.len() >= limit || self.bytes >= MAX_CAPTURED_BYTES {
            self.left_out += 1;
            return;
        }
        let mut c = Cursor::new(frame, "DataRow");
        let Ok(n) = c.i16() else {
            self.left_out += 1;
            return;
        };
        let width = usize::try_from(n).unwrap_or(0).min(MAX_VALUES);
        let mut row = Vec::with_capacity(width);
        let mut bytes = 0;
        for _ in 0..width {
            let Ok(len) = c.i32() else { break };
            let value = if len < 0 {
                None
            } else {
                let Ok(raw) = c.bytes(len as usize, "value cut short") else { break };
                Some(raw)
            };
            let value = render(value, max_value);
            // What a value costs held, not only its text.
            bytes += std::mem::size_of::<Option<String>>() + value.as_ref().map_or(0, String::len);
            if self.bytes + bytes > MAX_CAPTURED_BYTES {
                // Past the bound: the row is counted, not kept, and so are the rest.
                self.bytes = MAX_CAPTURED_BYTES;
                self.left_out += 1;
                return;
            }
            row.push(value);
        }
        self.bytes += bytes;
        self.rows.push(row);
    }

    pub(super) fn into_rows(self, seq: u64) -> Option<Rows> {
        (!self.rows.is_empty() || self.left_out > 0).then_some(Rows {
            seq,
            columns: self.columns,
            rows: self.rows,
            left_out: self.left_out,
        })
    }
}

/// A value as the record keeps it: text when it is UTF-8 (control characters escaped, so
/// mask rules still see the rest of it), else hex; either cut as a parameter is. (The format
/// codes that would say text or binary live in messages a gateway may not have seen for
/// this result.)
fn render(value: Option<&[u8]>, max: usize) -> Option<String> {
    let value = value?;
    let Ok(text) = std::str::from_utf8(value) else {
        return super::render_parameter(Some(value), true, max).recorded();
    };
    let escaped: String = text
        .chars()
        .flat_map(|c| {
            let e: Vec<char> = if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            e
        })
        .collect();
    super::render_parameter(Some(escaped.as_bytes()), false, max).recorded()
}
