//! Little-endian bytes: fixed-offset field access for keeperkit's native headers, and
//! [`Cursor`], the one bounded little-endian reader every decoder of a little-endian
//! format uses (the native formats, ClickHouse Keeper's snapshot body and NuRaft
//! structures, the zstd frame walk, the openraft adapter's values). Jute is big-endian
//! and has its own reader ([`crate::jute::Reader`]).
//!
//! The getters and setters take an offset into a buffer whose length the caller has
//! already checked (the native headers are fixed-size arrays, pinned by compile-time
//! assertions): an out-of-bounds offset is a bug in keeperkit, and panics. [`Cursor`]
//! never panics on any input: every read is bounded by the bytes that remain and
//! fails with a [`DecodeError`] carrying the offset.

use crate::error::{CorruptionKind, DecodeError};

/// Reads a little-endian u16 at `off`.
pub fn get_u16(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}

/// Reads a little-endian u32 at `off`.
pub fn get_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian u64 at `off`.
pub fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Writes a little-endian u16 at `off`.
pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes a little-endian u32 at `off`.
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes a little-endian u64 at `off`.
pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A byte count as `u64` (lossless on every platform Rust supports).
pub fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A `usize` as `u64` for error fields.
fn u(n: usize) -> u64 {
    len_u64(n)
}

/// A bounded little-endian reader over a byte slice.
///
/// Offsets in its errors are relative to the start of the slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// The whole slice.
    #[inline]
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// Current offset from the start of the slice.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything was read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// The unread bytes.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// An error at the current position.
    #[inline]
    pub fn err(&self, kind: CorruptionKind) -> DecodeError {
        DecodeError::new(u(self.pos), kind)
    }

    /// An error at offset `at` of the slice.
    #[inline]
    pub fn err_at(at: usize, kind: CorruptionKind) -> DecodeError {
        DecodeError::new(u(at), kind)
    }

    /// The error for needing `needed` bytes at the current position.
    #[cold]
    fn truncated(&self, needed: usize) -> DecodeError {
        self.err(CorruptionKind::Truncated { needed: u(needed), available: u(self.remaining()) })
    }

    /// Takes `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.truncated(n));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Skips `n` bytes.
    #[inline]
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    /// Takes `N` bytes as an array.
    #[inline]
    pub fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.truncated(1)),
        }
    }

    /// A little-endian u16.
    #[inline]
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }

    /// A little-endian u32.
    #[inline]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    /// A little-endian u64.
    #[inline]
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    /// A little-endian i32.
    #[inline]
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.arr()?))
    }

    /// A little-endian i64.
    #[inline]
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.arr()?))
    }

    /// A byte that must be 0 (false) or 1 (true); `field` names it in the error.
    #[inline]
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Self::err_at(at, CorruptionKind::UnknownValue { field, found: u64::from(b) })),
        }
    }

    /// An unsigned LEB128 varint: at most 10 bytes, and its value fits in 64 bits.
    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                self.pos = start;
                return Err(self.truncated(self.buf.len() - start + 1));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(Self::err_at(start, CorruptionKind::BadVarint { bits: 64 }));
            }
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    /// A zigzag-encoded signed varint.
    #[inline]
    pub fn zvarint(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A zigzag varint that must fit in an `i32`.
    #[inline]
    pub fn zvarint_i32(&mut self) -> Result<i32, DecodeError> {
        let start = self.pos;
        let v = self.zvarint()?;
        i32::try_from(v).map_err(|_| Self::err_at(start, CorruptionKind::BadVarint { bits: 32 }))
    }

    /// Checks a length or count `v` read at offset `at`: at most `max`, and `v`
    /// elements of at least `elem_min` bytes fit in what remains. Never allocates.
    #[inline]
    pub fn check_count(
        &self,
        v: i64,
        at: usize,
        max: u64,
        elem_min: usize,
    ) -> Result<usize, DecodeError> {
        let fit = u(self.remaining() / elem_min.max(1));
        let limit = max.min(fit);
        match u64::try_from(v) {
            Ok(n) if n <= limit => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => Err(Self::err_at(at, CorruptionKind::LengthOutOfRange { len: v, max: limit })),
        }
    }

    /// A count stored as a little-endian i32 (negative is refused), checked as
    /// [`Cursor::check_count`] does.
    #[inline]
    pub fn count_i32(&mut self, max: u64, elem_min: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let v = self.i32()?;
        self.check_count(i64::from(v), at, max, elem_min)
    }

    /// A count stored as a little-endian u32, checked as [`Cursor::check_count`] does.
    #[inline]
    pub fn count_u32(&mut self, max: u64, elem_min: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let v = self.u32()?;
        self.check_count(i64::from(v), at, max, elem_min)
    }

    /// A count stored as a little-endian u64, checked as [`Cursor::check_count`] does.
    #[inline]
    pub fn count_u64(&mut self, max: u64, elem_min: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let v = self.u64()?;
        self.check_count(i64::try_from(v).unwrap_or(i64::MAX), at, max, elem_min)
    }

    /// A count stored as a varint, checked as [`Cursor::check_count`] does.
    #[inline]
    pub fn count_varint(&mut self, max: u64, elem_min: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let v = self.varint()?;
        self.check_count(i64::try_from(v).unwrap_or(i64::MAX), at, max, elem_min)
    }

    /// Bytes whose length precedes them as a little-endian u32 (at most `max`).
    #[inline]
    pub fn bytes_u32(&mut self, max: u64) -> Result<&'a [u8], DecodeError> {
        let n = self.count_u32(max, 1)?;
        self.take(n)
    }

    /// Bytes whose length precedes them as a varint (at most `max`).
    #[inline]
    pub fn bytes_varint(&mut self, max: u64) -> Result<&'a [u8], DecodeError> {
        let n = self.count_varint(max, 1)?;
        self.take(n)
    }

    /// UTF-8 text whose length precedes it as a little-endian u32 (at most `max`).
    #[inline]
    pub fn str_u32(&mut self, max: u64) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let b = self.bytes_u32(max)?;
        std::str::from_utf8(b).map_err(|_| Self::err_at(at, CorruptionKind::InvalidUtf8))
    }

    /// UTF-8 text whose length precedes it as a varint (at most `max`).
    #[inline]
    pub fn str_varint(&mut self, max: u64) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let b = self.bytes_varint(max)?;
        std::str::from_utf8(b).map_err(|_| Self::err_at(at, CorruptionKind::InvalidUtf8))
    }

    /// A NUL-terminated UTF-8 string (the NUL is consumed, not returned).
    pub fn cstr(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let rest = self.rest();
        let Some(n) = rest.iter().position(|&b| b == 0) else {
            return Err(self.err(CorruptionKind::MissingTerminator { what: "C string" }));
        };
        let s = std::str::from_utf8(&rest[..n])
            .map_err(|_| Self::err_at(at, CorruptionKind::InvalidUtf8))?;
        self.pos += n + 1;
        Ok(s)
    }

    /// Fails unless every byte was read; `what` names the structure.
    pub fn expect_end(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.err(CorruptionKind::TrailingBytes { after: what, count: u(n) })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = [0u8; 16];
        put_u16(&mut b, 0, 0xBEEF);
        put_u32(&mut b, 2, 0xDEAD_BEEF);
        put_u64(&mut b, 6, 0x0102_0304_0506_0708);
        assert_eq!(get_u16(&b, 0), 0xBEEF);
        assert_eq!(get_u32(&b, 2), 0xDEAD_BEEF);
        assert_eq!(get_u64(&b, 6), 0x0102_0304_0506_0708);
        assert_eq!(b[6], 0x08, "little-endian");
        assert_eq!(len_u64(7), 7);
    }

    #[test]
    fn cursor_is_bounded_and_names_offsets() {
        let mut b = vec![1u8, 0x34, 0x12];
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(b"abc\0");
        b.extend_from_slice(&[0xAC, 0x02]);
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut c = Cursor::new(&b);
        assert!(c.bool("flag").unwrap());
        assert_eq!(c.u16().unwrap(), 0x1234);
        assert_eq!(c.u32().unwrap(), 7);
        assert_eq!(c.cstr().unwrap(), "abc");
        assert_eq!(c.varint().unwrap(), 300);
        let e = c.count_u32(1 << 20, 1).unwrap_err();
        assert_eq!(e.offset, 13);
        assert!(matches!(e.kind, CorruptionKind::LengthOutOfRange { max: 0, .. }), "{e}");
        let e = Cursor::new(&[2]).bool("flag").unwrap_err();
        assert_eq!(e.kind.code(), "unknown_value");
        let e = Cursor::new(&[1, 2]).u32().unwrap_err();
        assert_eq!(e.kind, CorruptionKind::Truncated { needed: 4, available: 2 });
        let e = Cursor::new(&[0xFF; 11]).varint().unwrap_err();
        assert_eq!(e.kind, CorruptionKind::BadVarint { bits: 64 });
        let e = Cursor::new(&[0x80, 0x80]).varint().unwrap_err();
        assert_eq!((e.offset, e.kind.code()), (0, "truncated"));
        let e = Cursor::new(b"ab").cstr().unwrap_err();
        assert_eq!(e.kind.code(), "missing_terminator");
        let e = Cursor::new(b"ab").expect_end("record").unwrap_err();
        assert_eq!(e.kind, CorruptionKind::TrailingBytes { after: "record", count: 2 });
        assert_eq!(Cursor::new(&[0x03]).zvarint().unwrap(), -2);
    }
}
