//! The real file system.

use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::{DirEntry, File, FileSystem, Metadata, OpenMode};

/// [`FileSystem`] over `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(fs::File);

impl File for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn write_back(&self, offset: u64, len: u64, wait: bool) -> io::Result<()> {
        sync_file_range(&self.0, offset, len, wait)
    }

    fn map(&self) -> io::Result<Option<Arc<dyn AsRef<[u8]> + Send + Sync>>> {
        map_file(&self.0)
    }
}

/// `sync_file_range(2)`: starts the writeback of the range's dirty pages
/// (`SYNC_FILE_RANGE_WRITE`), with `wait` also waiting for any writeback of the range
/// under way before and for its end (`WAIT_BEFORE`, `WAIT_AFTER`).
#[cfg(target_os = "linux")]
#[expect(unsafe_code, reason = "libc's sync_file_range is unsafe; see the SAFETY comment")]
fn sync_file_range(file: &fs::File, offset: u64, len: u64, wait: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut flags = libc::SYNC_FILE_RANGE_WRITE;
    if wait {
        flags |= libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    }
    let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(len))
    else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "range beyond off64_t"));
    };
    // SAFETY: the call only takes integers: a descriptor that `file` keeps open for the
    // duration of the call, a range and flags; it touches no memory of this process.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere there is no such call: the final fsync does all the writeback.
#[cfg(not(target_os = "linux"))]
fn sync_file_range(_file: &fs::File, _offset: u64, _len: u64, _wait: bool) -> io::Result<()> {
    Ok(())
}

/// Maps a whole file read-only.
///
#[expect(unsafe_code, reason = "memmap2's map is unsafe; see the SAFETY comment")]
fn map_file(file: &fs::File) -> io::Result<Option<Arc<dyn AsRef<[u8]> + Send + Sync>>> {
    if file.metadata()?.len() == 0 {
        // A zero-length map is an error on Linux; an empty slice is the same thing.
        return Ok(Some(Arc::new(Vec::<u8>::new())));
    }
    // SAFETY: the map is read-only, and callers map only files that are sealed: no
    // keeperkit code writes to or truncates a file while a map of it is alive (the
    // native WAL maps only sealed segments, and drops the map before it ever reopens
    // one for truncation). Changes to the bytes by *another* process would show up
    // in the slice (no UB in practice for plain bytes, but a torn view); a truncation
    // by another process would make access past the new end raise SIGBUS. That
    // residual risk is the one every mmap-based store accepts (documented in the
    // crate docs): the data directory belongs to one process.
    let map = unsafe { memmap2::Mmap::map(file)? };
    Ok(Some(Arc::new(map)))
}

/// What a non-regular file is, for messages.
fn file_kind(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

impl FileSystem for StdFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let mut o = fs::OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::CreateNew => o.read(true).write(true).create_new(true),
            OpenMode::CreateTruncate => o.read(true).write(true).create(true).truncate(true),
        };
        // O_NONBLOCK: opening a FIFO without a writer would block forever; with it
        // the open returns at once and the file type check below refuses it. The flag
        // changes nothing for regular files.
        o.custom_flags(libc::O_NONBLOCK);
        let f = o.open(path)?;
        let ft = f.metadata()?.file_type();
        if !ft.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a regular file (a {})", file_kind(ft)),
            ));
        }
        Ok(Arc::new(StdFile(f)))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in fs::read_dir(path)? {
            let e = e?;
            let md = e.metadata()?;
            out.push(DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                is_dir: md.is_dir(),
                len: md.len(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let md = fs::metadata(path)?;
        Ok(Metadata { is_dir: md.is_dir(), len: md.len() })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        fs::File::open(path)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::io::Read;

    #[test]
    fn write_read_rename_sync() {
        let dir = std::env::temp_dir().join(format!("kk-vfs-{}", std::process::id()));
        let fs = StdFs;
        fs.create_dir_all(&dir).unwrap();
        let a = dir.join("a");
        let f = fs.open(&a, OpenMode::CreateTruncate).unwrap();
        f.write_all_at(b"hello world", 0).unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.len().unwrap(), 11);
        let b = dir.join("b");
        fs.rename(&a, &b).unwrap();
        fs.sync_dir(&dir).unwrap();
        assert!(!fs.exists(&a));
        assert_eq!(fs.read_all(&b).unwrap(), b"hello world");
        let mut r = crate::FileReader::new(fs.open(&b, OpenMode::Read).unwrap(), 6);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "world");
        assert_eq!(r.position(), 11);
        let names: Vec<_> = fs.read_dir(&dir).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, vec!["b".to_string()]);
        fs.remove_file(&b).unwrap();
        fs.remove_dir(&dir).unwrap();
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("kk-vfs-special-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("log.600");
        let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(st.success());
        for mode in [OpenMode::Read, OpenMode::ReadWrite] {
            let e = StdFs.open(&fifo, mode).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("FIFO"), "{e}");
        }
        let e = StdFs.open(&dir, OpenMode::Read).unwrap_err();
        assert!(e.to_string().contains("directory") || e.kind() == io::ErrorKind::IsADirectory);
        let e = StdFs.open(Path::new("/dev/null"), OpenMode::Read).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let a = dir.join("a");
        let b = dir.join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(StdFs.open(&a, OpenMode::Read).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
