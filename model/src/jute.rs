//! Jute, ZooKeeper's binary record encoding: big-endian integers, length-prefixed
//! buffers and strings (length −1 = null), counted vectors.
//!
//! [`Reader`] decodes from a byte slice and bounds every length before allocating:
//! against [`limits::JUTE_READ_LEN_MAX`] (ZooKeeper's own read limit) and against the
//! bytes that actually remain. [`Writer`] encodes into a `Vec<u8>`.

use crate::error::{CorruptionKind, DecodeError};
use crate::limits;

/// A jute decoder over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    len_max: usize,
}

/// Result type of jute decoding.
pub type Result<T> = std::result::Result<T, DecodeError>;

impl<'a> Reader<'a> {
    /// A reader with ZooKeeper's default length limit.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0, len_max: limits::JUTE_READ_LEN_MAX }
    }

    /// A reader with a custom buffer/string length limit (e.g. a raised
    /// `jute.maxbuffer`).
    pub fn with_len_max(buf: &'a [u8], len_max: usize) -> Reader<'a> {
        Reader { buf, pos: 0, len_max }
    }

    /// Current offset from the start of the slice.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn error(&self, kind: CorruptionKind) -> DecodeError {
        DecodeError::new(self.pos as u64, kind)
    }

    /// An error of `kind` at the current position.
    pub fn err(&self, kind: CorruptionKind) -> DecodeError {
        self.error(kind)
    }

    /// An [`CorruptionKind::Inconsistent`] error at the current position: what was
    /// read disagrees with something else (`msg` says what).
    pub fn invalid(&self, msg: impl Into<String>) -> DecodeError {
        self.error(CorruptionKind::inconsistent(msg))
    }

    /// Takes `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(CorruptionKind::Truncated {
                needed: n as u64,
                available: self.remaining() as u64,
            }));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// A jute `byte`.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// A jute `boolean` (non-zero is true, as Java's `readBoolean`).
    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.u8()? != 0)
    }

    /// A jute `int`.
    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// A jute `long`.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Reads a length prefix and checks it against the limit and the remaining bytes
    /// (each element taking at least `elem_min` bytes). `None` for −1 (null).
    fn len_prefix(&mut self, max: usize, elem_min: usize) -> Result<Option<usize>> {
        let at = self.pos;
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(n) = usize::try_from(len) else {
            return Err(DecodeError::new(
                at as u64,
                CorruptionKind::LengthOutOfRange { len: i64::from(len), max: max as u64 },
            ));
        };
        if n > max {
            return Err(DecodeError::new(
                at as u64,
                CorruptionKind::LengthOutOfRange { len: i64::from(len), max: max as u64 },
            ));
        }
        let needed = n.saturating_mul(elem_min);
        if needed > self.remaining() {
            return Err(DecodeError::new(
                at as u64,
                CorruptionKind::Truncated {
                    needed: needed as u64,
                    available: self.remaining() as u64,
                },
            ));
        }
        Ok(Some(n))
    }

    /// A jute `buffer`: `None` for a null buffer.
    pub fn buffer(&mut self) -> Result<Option<&'a [u8]>> {
        match self.len_prefix(self.len_max, 1)? {
            None => Ok(None),
            Some(n) => self.bytes(n).map(Some),
        }
    }

    /// A jute `ustring` as raw bytes: `None` for a null string.
    pub fn ustring_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        self.buffer()
    }

    /// A jute `ustring` decoded as UTF-8 (also accepting Java's CESU-8 surrogate
    /// pairs); `None` for a null string.
    pub fn ustring(&mut self) -> Result<Option<String>> {
        let at = self.pos;
        match self.ustring_bytes()? {
            None => Ok(None),
            Some(b) => decode_java_utf8(b)
                .map(Some)
                .ok_or_else(|| DecodeError::new(at as u64, CorruptionKind::InvalidUtf8)),
        }
    }

    /// A non-null jute `ustring`; a null one is an error naming `what`.
    pub fn string(&mut self, what: &'static str) -> Result<String> {
        let at = self.pos;
        self.ustring()?
            .ok_or_else(|| DecodeError::new(at as u64, CorruptionKind::NullValue { field: what }))
    }

    /// A vector count (`None` for a null vector), checked so that `count` elements of
    /// at least `elem_min` bytes fit in what remains.
    pub fn vector_len(&mut self, elem_min: usize) -> Result<Option<usize>> {
        self.len_prefix(limits::JUTE_VECTOR_LEN_MAX, elem_min.max(1))
    }
}

/// Decodes a string the way a Java reader of jute data sees it: UTF-8, with CESU-8
/// encoded surrogate pairs (what Java's `BinaryOutputArchive` writes for characters
/// outside the BMP) combined into one character. Returns `None` when the bytes are
/// neither.
pub fn decode_java_utf8(b: &[u8]) -> Option<String> {
    if let Ok(s) = std::str::from_utf8(b) {
        return Some(s.to_owned());
    }
    // Slow path: decode 3-byte sequences that encode UTF-16 surrogates.
    let mut units: Vec<u16> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c0 = b[i];
        if c0 < 0x80 {
            units.push(u16::from(c0));
            i += 1;
        } else if c0 & 0xE0 == 0xC0 && i + 1 < b.len() && b[i + 1] & 0xC0 == 0x80 {
            units.push((u16::from(c0 & 0x1F) << 6) | u16::from(b[i + 1] & 0x3F));
            i += 2;
        } else if c0 & 0xF0 == 0xE0
            && i + 2 < b.len()
            && b[i + 1] & 0xC0 == 0x80
            && b[i + 2] & 0xC0 == 0x80
        {
            units.push(
                (u16::from(c0 & 0x0F) << 12)
                    | (u16::from(b[i + 1] & 0x3F) << 6)
                    | u16::from(b[i + 2] & 0x3F),
            );
            i += 3;
        } else if c0 & 0xF8 == 0xF0 && i + 3 < b.len() {
            let s = std::str::from_utf8(&b[i..i + 4]).ok()?;
            units.extend(s.encode_utf16());
            i += 4;
        } else {
            return None;
        }
    }
    String::from_utf16(&units).ok()
}

/// A jute encoder.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// A writer appending to an existing buffer.
    pub fn from_vec(buf: Vec<u8>) -> Writer {
        Writer { buf }
    }

    /// The encoded bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Raw bytes.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A jute `byte`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A jute `boolean`.
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// A jute `int`.
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A jute `long`.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A length prefix for `n` bytes or elements.
    ///
    /// # Panics
    /// When `n` exceeds `i32::MAX`: callers check their limits first.
    fn len_prefix(&mut self, n: usize) {
        let n = i32::try_from(n).expect("jute length checked against limits by the caller");
        self.i32(n);
    }

    /// A jute `buffer` (`None` = null).
    pub fn buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.i32(-1),
            Some(b) => {
                self.len_prefix(b.len());
                self.raw(b);
            }
        }
    }

    /// A jute `ustring` (`None` = null).
    pub fn ustring(&mut self, v: Option<&str>) {
        self.buffer(v.map(str::as_bytes));
    }

    /// A vector count (`None` = null vector).
    pub fn vector_len(&mut self, n: Option<usize>) {
        match n {
            None => self.i32(-1),
            Some(n) => self.len_prefix(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_round_trip() {
        let mut w = Writer::new();
        w.i32(-5);
        w.i64(0x0102_0304_0506_0708);
        w.bool(true);
        w.buffer(None);
        w.buffer(Some(b""));
        w.ustring(Some("/a/\u{e9}"));
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.i32().unwrap(), -5);
        assert_eq!(r.i64().unwrap(), 0x0102_0304_0506_0708);
        assert!(r.bool().unwrap());
        assert_eq!(r.buffer().unwrap(), None);
        assert_eq!(r.buffer().unwrap(), Some(&b""[..]));
        assert_eq!(r.ustring().unwrap().as_deref(), Some("/a/\u{e9}"));
        assert!(r.is_empty());
    }

    #[test]
    fn huge_length_is_an_error_without_allocation() {
        let bytes = [0x7F, 0xFF, 0xFF, 0xFF, 0, 0];
        let err = Reader::new(&bytes).buffer().unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(matches!(err.kind, CorruptionKind::LengthOutOfRange { len: 0x7FFF_FFFF, .. }));
        let bytes = [0x80, 0, 0, 0];
        let err = Reader::new(&bytes).buffer().unwrap_err();
        assert!(matches!(err.kind, CorruptionKind::LengthOutOfRange { .. }));
    }

    #[test]
    fn length_past_end_is_truncation() {
        let bytes = [0, 0, 0, 10, 1, 2];
        let err = Reader::new(&bytes).buffer().unwrap_err();
        assert!(matches!(err.kind, CorruptionKind::Truncated { needed: 10, available: 2 }));
        let bytes = [0, 0, 1, 0];
        let err = Reader::new(&bytes).vector_len(4).unwrap_err();
        assert!(matches!(err.kind, CorruptionKind::Truncated { needed: 1024, available: 0 }));
    }

    #[test]
    fn cesu8_surrogates_decode() {
        // U+1F600 as CESU-8: ED A0 BD ED B8 80
        let s = decode_java_utf8(&[0x61, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]).unwrap();
        assert_eq!(s, "a\u{1F600}");
        assert_eq!(decode_java_utf8(&[0xFF]), None);
    }
}
