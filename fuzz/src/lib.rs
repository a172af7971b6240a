//! Shared helpers of keeperkit's fuzz targets: an in-memory file system holding one
//! read-only file, so that the targets exercise the real readers (which only take a
//! `&dyn FileSystem`) without touching the disk.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_vfs::{DirEntry, File, FileSystem, Metadata, OpenMode};

/// The directory [`MemFs`] pretends its file lives in.
pub const DIR: &str = "/fuzz";

/// A read-only file system with exactly one file, `/fuzz/<name>`.
#[derive(Debug, Clone)]
pub struct MemFs {
    name: String,
    file: Arc<MemFile>,
}

impl MemFs {
    /// A file system holding `bytes` as `/fuzz/<name>`.
    pub fn new(name: &str, bytes: Vec<u8>) -> MemFs {
        MemFs { name: name.to_owned(), file: Arc::new(MemFile(bytes)) }
    }

    /// The path of the one file.
    pub fn path(&self) -> PathBuf {
        Path::new(DIR).join(&self.name)
    }

    fn is_file(&self, path: &Path) -> bool {
        path == self.path()
    }
}

/// The one file of a [`MemFs`].
#[derive(Debug)]
pub struct MemFile(Vec<u8>);

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "MemFs is read-only")
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file in MemFs")
}

impl File for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else { return Ok(0) };
        let src = self.0.get(start..).unwrap_or_default();
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }

    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }

    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
}

impl FileSystem for MemFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        if mode != OpenMode::Read {
            return Err(read_only());
        }
        if !self.is_file(path) {
            return Err(not_found());
        }
        Ok(self.file.clone())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        if path != Path::new(DIR) {
            return Err(not_found());
        }
        Ok(vec![DirEntry { name: self.name.clone(), is_dir: false, len: self.file.0.len() as u64 }])
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        if path == Path::new(DIR) {
            return Ok(Metadata { is_dir: true, len: 0 });
        }
        if !self.is_file(path) {
            return Err(not_found());
        }
        Ok(Metadata { is_dir: false, len: self.file.0.len() as u64 })
    }

    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn remove_file(&self, _path: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn remove_dir(&self, _path: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// Rewrites the checksum of every well-framed record of a ZooKeeper txn log so that
/// the fuzzer gets past the Adler-32 check and into the payload decoder. Stops at the
/// first length that is not positive or does not fit in the file.
pub fn fix_log_checksums(bytes: &mut [u8]) {
    let mut pos = 16usize;
    loop {
        let Some(len) = bytes.get(pos + 8..pos + 12) else { return };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let Ok(len) = usize::try_from(len) else { return };
        if len == 0 {
            return;
        }
        let start = pos + 12;
        let Some(payload) = bytes.get(start..start.saturating_add(len)) else { return };
        let sum = u64::from(adler2::adler32_slice(payload));
        bytes[pos..pos + 8].copy_from_slice(&sum.to_be_bytes());
        pos = start + len + 1;
    }
}
