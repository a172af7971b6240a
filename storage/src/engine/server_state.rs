//! Two small files of a server's own state beside the log and the snapshots.
//!
//! - `DIR/server-state`: opaque bytes the server must not lose (a Raft adapter keeps
//!   its vote and its purge point there; a Zab server its epochs). Replaced
//!   atomically and durably: written to `server-state.tmp`, fsynced, renamed, the
//!   directory fsynced. A damaged file is corruption (it was synced), never ignored.
//! - `DIR/commit-hint`: the last known commit position, overwritten in place and never
//!   synced: after a crash it may be older, missing or torn (a torn one fails its CRC
//!   and reads as missing). A reader uses it only as a lower bound it checks against
//!   the log.
//!
//! docs/FORMAT.md ("Native data directory") gives the byte layouts.

use std::path::Path;

use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_vfs::{FileSystem, OpenMode};

use super::layout::io;
use crate::traits::LogPosition;
use crate::StorageError;

/// Name of the server-state file.
pub const SERVER_STATE_FILE: &str = "server-state";
/// Name of the server-state file while it is being replaced.
pub const SERVER_STATE_TMP: &str = "server-state.tmp";
/// Name of the commit-hint file.
pub const COMMIT_HINT_FILE: &str = "commit-hint";
/// Largest server state accepted, in bytes.
pub const SERVER_STATE_LEN_MAX: usize = 1 << 20;

const STATE_MAGIC: &[u8; 4] = b"KKSS";
const STATE_VERSION: u32 = 1;
const STATE_HEADER_LEN: usize = 16;
const HINT_MAGIC: &[u8; 4] = b"KKCH";
const HINT_LEN: usize = 24;

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn corrupt(path: &Path, offset: u64, msg: String) -> StorageError {
    StorageError::Corrupt(Corruption::new(path, offset, CorruptionKind::inconsistent(msg)))
}

/// Encodes the server-state file: magic `KKSS`, version u32, length u32, CRC-32 u32
/// over version, length and the bytes (all little-endian), then the bytes.
fn encode_state(bytes: &[u8]) -> Result<Vec<u8>, StorageError> {
    if bytes.len() > SERVER_STATE_LEN_MAX {
        return Err(StorageError::Usage(format!(
            "the server state is {} bytes, the limit is {SERVER_STATE_LEN_MAX}",
            bytes.len()
        )));
    }
    let version = STATE_VERSION.to_le_bytes();
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::with_capacity(STATE_HEADER_LEN + bytes.len());
    out.extend_from_slice(STATE_MAGIC);
    out.extend_from_slice(&version);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc(&[&version, &len, bytes]).to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(out)
}

fn decode_state(path: &Path, file: &[u8]) -> Result<Vec<u8>, StorageError> {
    let Some(header) = file.get(..STATE_HEADER_LEN) else {
        return Err(corrupt(path, 0, format!("{} bytes, shorter than the header", file.len())));
    };
    if header[..4] != STATE_MAGIC[..] {
        return Err(corrupt(path, 0, "bad magic (expected KKSS)".into()));
    }
    let field = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let version = field(4);
    if version != STATE_VERSION {
        return Err(corrupt(path, 4, format!("unknown version {version}")));
    }
    let len = usize::try_from(field(8)).unwrap_or(usize::MAX);
    if len > SERVER_STATE_LEN_MAX || file.len() - STATE_HEADER_LEN != len {
        return Err(corrupt(
            path,
            8,
            format!("length {len}, but {} bytes follow the header", file.len() - STATE_HEADER_LEN),
        ));
    }
    let body = &file[STATE_HEADER_LEN..];
    if crc(&[&header[4..8], &header[8..12], body]) != field(12) {
        return Err(corrupt(path, 12, "CRC mismatch".into()));
    }
    Ok(body.to_vec())
}

/// Reads the server state of `dir` (empty if there is none).
pub(crate) fn read_state(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<u8>, StorageError> {
    let path = dir.join(SERVER_STATE_FILE);
    if !fs.exists(&path) {
        return Ok(Vec::new());
    }
    let file = fs.read_all(&path).map_err(io(&path))?;
    decode_state(&path, &file)
}

/// Replaces the server state of `dir` atomically and durably.
pub(crate) fn write_state(
    fs: &dyn FileSystem,
    dir: &Path,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let file = encode_state(bytes)?;
    let tmp = dir.join(SERVER_STATE_TMP);
    let path = dir.join(SERVER_STATE_FILE);
    keeperkit_vfs::write_atomically_bytes(fs, &path, &tmp, &file)
        .map_err(|e| StorageError::Io { path: e.path, source: e.source })
}

/// Removes a `server-state.tmp` left by a crash; returns whether there was one.
pub(crate) fn remove_state_tmp(fs: &dyn FileSystem, dir: &Path) -> Result<bool, StorageError> {
    let tmp = dir.join(SERVER_STATE_TMP);
    if !fs.exists(&tmp) {
        return Ok(false);
    }
    fs.remove_file(&tmp).map_err(io(&tmp))?;
    fs.sync_dir(dir).map_err(io(dir))?;
    Ok(true)
}

/// Encodes the commit hint: magic `KKCH`, index u64, term u64, CRC-32 u32 over index
/// and term (little-endian).
fn encode_hint(pos: LogPosition) -> [u8; HINT_LEN] {
    let mut out = [0u8; HINT_LEN];
    out[..4].copy_from_slice(HINT_MAGIC);
    out[4..12].copy_from_slice(&pos.index.to_le_bytes());
    out[12..20].copy_from_slice(&pos.term.to_le_bytes());
    let c = crc(&[&out[4..20]]);
    out[20..].copy_from_slice(&c.to_le_bytes());
    out
}

fn decode_hint(b: &[u8]) -> Option<LogPosition> {
    if b.len() != HINT_LEN || b[..4] != HINT_MAGIC[..] {
        return None;
    }
    let stored = u32::from_le_bytes(b[20..24].try_into().ok()?);
    if crc(&[&b[4..20]]) != stored {
        return None;
    }
    Some(LogPosition {
        index: u64::from_le_bytes(b[4..12].try_into().ok()?),
        term: u64::from_le_bytes(b[12..20].try_into().ok()?),
    })
}

/// Reads the commit hint of `dir`: `None` when missing or torn.
pub(crate) fn read_hint(fs: &dyn FileSystem, dir: &Path) -> Option<LogPosition> {
    let path = dir.join(COMMIT_HINT_FILE);
    if !fs.exists(&path) {
        return None;
    }
    fs.read_all(&path).ok().and_then(|b| decode_hint(&b))
}

/// Opens the commit-hint file for overwriting (created if missing; not synced).
pub(crate) fn open_hint(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<std::sync::Arc<dyn keeperkit_vfs::File>, StorageError> {
    let path = dir.join(COMMIT_HINT_FILE);
    let mode = if fs.exists(&path) { OpenMode::ReadWrite } else { OpenMode::CreateNew };
    fs.open(&path, mode).map_err(io(&path))
}

/// Overwrites the commit hint in place (no fsync).
pub(crate) fn write_hint(
    file: &dyn keeperkit_vfs::File,
    dir: &Path,
    pos: LogPosition,
) -> Result<(), StorageError> {
    let path = dir.join(COMMIT_HINT_FILE);
    file.write_all_at(&encode_hint(pos), 0).map_err(io(&path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn state_round_trip_and_damage() {
        let p = Path::new("/d/server-state");
        for bytes in [&b""[..], b"vote", &[7u8; 1000][..]] {
            let f = encode_state(bytes).unwrap();
            assert_eq!(decode_state(p, &f).unwrap(), bytes);
            for i in 0..f.len() {
                let mut g = f.clone();
                g[i] ^= 0x10;
                assert!(decode_state(p, &g).is_err(), "flip at {i} accepted");
            }
            for n in 0..f.len() {
                assert!(decode_state(p, &f[..n]).is_err(), "cut at {n} accepted");
            }
        }
        assert!(encode_state(&vec![0; SERVER_STATE_LEN_MAX + 1]).is_err());
    }

    #[test]
    fn hint_round_trip_and_torn() {
        let pos = LogPosition { index: 123_456, term: 7 };
        let h = encode_hint(pos);
        assert_eq!(decode_hint(&h), Some(pos));
        for i in 0..h.len() {
            let mut g = h;
            g[i] ^= 1;
            assert_eq!(decode_hint(&g), None, "flip at {i} accepted");
        }
        assert_eq!(decode_hint(&h[..10]), None);
    }
}
