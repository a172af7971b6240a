//! The one check of keeperkit's native file headers and trailers.
//!
//! Every native file (WAL segment, WAL metadata, snapshot header, snapshot trailer)
//! starts or ends with a fixed-size block that carries an 8-byte magic, a CRC-32 of the
//! bytes before the CRC field and, in headers, a format version. [`NativeHeader::check`]
//! checks the three in one order for all of them: the magic first (a file of another
//! kind is not "damaged"), then the CRC (a flipped bit anywhere in the block), then the
//! version (a newer writer). The block's own fields are decoded by the format crates
//! after this check passes.

use crate::error::{CorruptionKind, DecodeError};
use crate::le::{get_u16, get_u32};

/// Where a native block keeps its magic, CRC and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeHeader {
    /// The magic bytes.
    pub magic: [u8; 8],
    /// Offset of the magic in the block.
    pub magic_at: usize,
    /// Offset of the little-endian CRC-32 (IEEE) of the bytes `0..crc_at`.
    pub crc_at: usize,
    /// Offset of the little-endian u16 format version and the one version read, if
    /// the block has a version (trailers do not).
    pub version: Option<(usize, u16)>,
}

impl NativeHeader {
    /// Checks magic, CRC and version of `b` (the whole block; offsets in the error are
    /// relative to its start) and returns the stored CRC.
    ///
    /// A block shorter than its fields is [`CorruptionKind::Truncated`] at offset 0; a
    /// wrong magic is [`CorruptionKind::BadMagic`] at the magic (both values read as
    /// big-endian, so they print in file order); a CRC mismatch is
    /// [`CorruptionKind::ChecksumMismatch`] at offset 0, the start of the bytes it
    /// covers (the damage can be anywhere in them); an unknown version is
    /// [`CorruptionKind::UnsupportedVersion`] at the version field.
    pub fn check(&self, b: &[u8]) -> Result<u32, DecodeError> {
        let mut needed = (self.magic_at + 8).max(self.crc_at + 4);
        if let Some((at, _)) = self.version {
            needed = needed.max(at + 2);
        }
        if b.len() < needed {
            return Err(DecodeError::new(
                0,
                CorruptionKind::Truncated { needed: needed as u64, available: b.len() as u64 },
            ));
        }
        let magic = &b[self.magic_at..self.magic_at + 8];
        if magic != self.magic {
            let mut found = [0u8; 8];
            found.copy_from_slice(magic);
            return Err(DecodeError::new(
                self.magic_at as u64,
                CorruptionKind::BadMagic {
                    expected: u64::from_be_bytes(self.magic),
                    found: u64::from_be_bytes(found),
                },
            ));
        }
        let stored = get_u32(b, self.crc_at);
        let computed = crc32fast::hash(&b[..self.crc_at]);
        if stored != computed {
            return Err(DecodeError::new(
                0,
                CorruptionKind::ChecksumMismatch {
                    stored: u64::from(stored),
                    computed: u64::from(computed),
                },
            ));
        }
        if let Some((at, version)) = self.version {
            let found = get_u16(b, at);
            if found != version {
                return Err(DecodeError::new(
                    at as u64,
                    CorruptionKind::UnsupportedVersion { found: i64::from(found) },
                ));
            }
        }
        Ok(stored)
    }

    /// Writes the magic, the version (if any) and, last, the CRC of `b[..crc_at]`
    /// into `b`, whose other fields the caller has filled.
    pub fn seal(&self, b: &mut [u8]) {
        b[self.magic_at..self.magic_at + 8].copy_from_slice(&self.magic);
        if let Some((at, version)) = self.version {
            crate::le::put_u16(b, at, version);
        }
        let crc = crc32fast::hash(&b[..self.crc_at]);
        crate::le::put_u32(b, self.crc_at, crc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: NativeHeader = NativeHeader {
        magic: *b"\x89KKT\r\n\x1a\n",
        magic_at: 0,
        crc_at: 12,
        version: Some((8, 1)),
    };

    fn block() -> [u8; 16] {
        let mut b = [0u8; 16];
        b[10] = 7;
        H.seal(&mut b);
        b
    }

    #[test]
    fn a_sealed_block_checks() {
        let b = block();
        assert_eq!(H.check(&b), Ok(crc32fast::hash(&b[..12])));
    }

    #[test]
    fn each_fault_is_named_at_its_offset() {
        let mut b = block();
        b[1] = b'X';
        let e = H.check(&b).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(matches!(e.kind, CorruptionKind::BadMagic { .. }), "{e:?}");

        let mut b = block();
        b[10] ^= 1;
        let e = H.check(&b).unwrap_err();
        assert!(matches!(e.kind, CorruptionKind::ChecksumMismatch { .. }), "{e:?}");

        let mut b = block();
        crate::le::put_u16(&mut b, 8, 2);
        let crc = crc32fast::hash(&b[..12]);
        crate::le::put_u32(&mut b, 12, crc);
        let e = H.check(&b).unwrap_err();
        assert_eq!((e.offset, e.kind), (8, CorruptionKind::UnsupportedVersion { found: 2 }));

        let e = H.check(&block()[..10]).unwrap_err();
        assert_eq!(e.kind, CorruptionKind::Truncated { needed: 16, available: 10 });
    }
}
