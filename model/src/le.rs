//! Little-endian fixed-offset field access for keeperkit's native formats (the foreign
//! formats have their own codecs: jute is big-endian).
//!
//! The getters and setters take an offset into a buffer whose length the caller has
//! already checked (the native headers are fixed-size arrays, pinned by compile-time
//! assertions): an out-of-bounds offset is a bug in keeperkit, and panics.

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
}
