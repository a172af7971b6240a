//! The narrow file-system seam of keeperkit.
//!
//! Every byte that `wal`, `snapshot` and `storage` read or write goes through
//! [`FileSystem`] and [`File`]. The production implementation is [`StdFs`]; tests use
//! a fault-injecting implementation (feature `testing`) that simulates crashes (lost
//! unsynced bytes, torn writes), EIO, ENOSPC and bit flips without touching a disk.
//!
//! The trait is object-safe on purpose: callers hold an `Arc<dyn FileSystem>`, and a
//! virtual call per I/O operation is nothing next to the system call behind it.
//!
//! Architecture invariant: nothing here knows about formats; this crate only moves
//! bytes and reports `std::io::Error`s.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod durable;
mod splitmix;
mod std_fs;

pub use durable::{
    copy_to_backup, create_dir_all_durable, move_to_backup, parent_dir, write_atomically,
    write_atomically_bytes, write_new_durable, write_renamed, write_renamed_bytes, PathError, Step,
};
pub use splitmix::SplitMix64;
pub use std_fs::StdFs;

#[cfg(feature = "testing")]
pub mod fault;
#[cfg(feature = "testing")]
pub use fault::{FaultConfig, FaultFs};

/// How to open a file for writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file for reading only.
    Read,
    /// Open an existing file for reading and writing.
    ReadWrite,
    /// Create a new file (fail if it exists), read and write.
    CreateNew,
    /// Create or truncate, read and write.
    CreateTruncate,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// File name (not the full path).
    pub name: String,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Length in bytes (apparent size) for files.
    pub len: u64,
}

/// Metadata of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Length in bytes (apparent size) for files.
    pub len: u64,
}

/// An open file. Positional I/O only, so one handle can be shared by threads.
#[expect(
    clippy::len_without_is_empty,
    reason = "a file's length is an I/O result, not a collection size"
)]
pub trait File: Send + Sync + std::fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at
    /// EOF).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Truncates or extends (with zeros) to `len`.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes written data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;

    /// Makes data and metadata durable (fsync).
    fn sync_all(&self) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Starts writing the dirty pages of `offset..offset + len` to the device now and,
    /// with `wait`, returns once they are written (Linux `sync_file_range`: no metadata,
    /// no device cache flush). A hint that spreads a big file's writeback over its
    /// writing instead of leaving it all to the final fsync, where it would delay every
    /// other fsync of the disk meanwhile: never a durability guarantee
    /// ([`File::sync_data`] and [`File::sync_all`] are). The default does nothing.
    fn write_back(&self, offset: u64, len: u64, wait: bool) -> io::Result<()> {
        let _ = (offset, len, wait);
        Ok(())
    }

    /// A read-only memory map of the whole file, when the implementation supports it
    /// (the real file system does; in-memory ones may return their buffer).
    fn map(&self) -> io::Result<Option<Arc<dyn AsRef<[u8]> + Send + Sync>>> {
        Ok(None)
    }
}

/// The file-system operations keeperkit needs, and no more.
pub trait FileSystem: Send + Sync + std::fmt::Debug {
    /// Opens a file. Only regular files open: a FIFO, a device, a socket or a
    /// directory is refused with `InvalidInput` (naming what it is) without blocking,
    /// and a symlink loop fails with the system's error.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>>;

    /// Lists a directory (not recursive), sorted by name.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;

    /// Metadata of a path.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;

    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Atomically renames `from` to `to` (replacing `to` if it is a file).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;

    /// Makes the directory's entries (creates, renames, unlinks) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Whether a path exists.
    fn exists(&self, path: &Path) -> bool {
        self.metadata(path).is_ok()
    }

    /// Reads a whole file into memory. Callers must check the length against their
    /// limits first (see [`FileSystem::metadata`]).
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let f = self.open(path, OpenMode::Read)?;
        let len = usize::try_from(f.len()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = f.read_at(&mut buf[filled..], filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }
}

/// A sequential reader over a [`File`], buffered, that knows its position. Used to
/// stream big files (ZooKeeper's 64 MiB preallocated logs are mostly zeros).
#[derive(Debug)]
pub struct FileReader {
    file: Arc<dyn File>,
    pos: u64,
    buf: Vec<u8>,
    buf_start: usize,
    buf_end: usize,
}

impl FileReader {
    /// Buffer size of the reader.
    pub const BUF_LEN: usize = 256 * 1024;

    /// A reader starting at `offset`.
    pub fn new(file: Arc<dyn File>, offset: u64) -> FileReader {
        FileReader { file, pos: offset, buf: vec![0; Self::BUF_LEN], buf_start: 0, buf_end: 0 }
    }

    /// Offset of the next byte to be read.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl io::Read for FileReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf_start == self.buf_end {
            if out.len() >= self.buf.len() {
                let n = self.file.read_at(out, self.pos)?;
                self.pos += n as u64;
                return Ok(n);
            }
            let n = self.file.read_at(&mut self.buf, self.pos)?;
            self.buf_start = 0;
            self.buf_end = n;
            if n == 0 {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf_end - self.buf_start);
        out[..n].copy_from_slice(&self.buf[self.buf_start..self.buf_start + n]);
        self.buf_start += n;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads until `buf` is full or the reader is at end of file; returns how many bytes
/// were read (less than `buf.len()` only at end of file).
pub fn read_full(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else { break };
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The default file system.
pub fn std_fs() -> Arc<dyn FileSystem> {
    Arc::new(StdFs)
}

/// Joins a directory and a name (a helper for callers that build paths from
/// listings).
pub fn child(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
