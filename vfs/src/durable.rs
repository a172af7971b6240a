//! The durable file operations every writer of the workspace shares: an atomic
//! replace (temporary file, fsync, rename, directory fsync), a durable new file, a
//! durable directory creation, and the copy or move of a file into a backup
//! directory. Each is written once here, so that the crash-safe order of the system
//! calls is the same in every crate.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{File, FileSystem, OpenMode};

/// The step of a durable operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Opening or creating a file.
    Open,
    /// Reading a file.
    Read,
    /// Writing a file.
    Write,
    /// Making a file's bytes durable (`fsync`). After such a failure the state of the
    /// file's bytes on disk is unknown.
    Sync,
    /// Renaming a file into place.
    Rename,
    /// Removing a file.
    Remove,
    /// Creating a directory.
    CreateDir,
    /// Making a directory's entries durable (`fsync` of the directory).
    SyncDir,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Open => "open",
            Step::Read => "read",
            Step::Write => "write",
            Step::Sync => "fsync",
            Step::Rename => "rename",
            Step::Remove => "remove",
            Step::CreateDir => "create directory",
            Step::SyncDir => "fsync directory",
        })
    }
}

/// An I/O error of a durable operation: the path it happened on, the step, and the
/// system's error.
#[derive(Debug)]
pub struct PathError {
    /// The file or directory the failing call was about.
    pub path: PathBuf,
    /// Which step failed.
    pub step: Step,
    /// The system's error.
    pub source: io::Error,
}

impl PathError {
    /// An error of `step` on `path`.
    pub fn new(path: &Path, step: Step, source: io::Error) -> PathError {
        PathError { path: path.to_path_buf(), step, source }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "I/O error ({}) on {}: {}", self.step, self.path.display(), self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The directory that holds `path`: its parent, `.` for a bare relative name (whose
/// parent is the empty path), `/` for the root itself.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None if path.is_absolute() => Path::new("/"),
        None => Path::new("."),
    }
}

/// Replaces (or creates) `path` atomically and durably.
///
/// Order: create `tmp` (truncated; it must be in the same directory as `path`), let
/// `write` fill it, fsync it, rename it to `path`, fsync the directory. A crash at any
/// point leaves either the old `path` or the new one, never a mix; a leftover `tmp`
/// is garbage its owner removes on open. If anything fails before the rename, `tmp`
/// is removed (best effort) and `path` is untouched.
///
/// `write` receives the open temporary file and its path (for its own errors); it
/// may also read the file back to validate it, since the rename happens only after
/// it returns `Ok`. Its value is returned.
pub fn write_atomically<T, E: From<PathError>>(
    fs: &dyn FileSystem,
    path: &Path,
    tmp: &Path,
    write: impl FnOnce(&Arc<dyn File>, &Path) -> Result<T, E>,
) -> Result<T, E> {
    let value = write_renamed(fs, path, tmp, write)?;
    let dir = parent_dir(path);
    fs.sync_dir(dir).map_err(|e| PathError::new(dir, Step::SyncDir, e))?;
    Ok(value)
}

/// [`write_atomically`] without the final directory fsync: the new `path` is complete
/// and synced, but the rename itself becomes durable only with the directory's next
/// sync (a crash before it leaves the old `path`, or none). For a caller that syncs the
/// directory anyway, or whose old file is as good after a crash.
pub fn write_renamed<T, E: From<PathError>>(
    fs: &dyn FileSystem,
    path: &Path,
    tmp: &Path,
    write: impl FnOnce(&Arc<dyn File>, &Path) -> Result<T, E>,
) -> Result<T, E> {
    debug_assert_eq!(parent_dir(path), parent_dir(tmp), "tmp must be beside the target");
    let f =
        fs.open(tmp, OpenMode::CreateTruncate).map_err(|e| PathError::new(tmp, Step::Open, e))?;
    let before_rename = write(&f, tmp).and_then(|v| {
        f.sync_all().map_err(|e| PathError::new(tmp, Step::Sync, e))?;
        Ok(v)
    });
    drop(f);
    let value = match before_rename {
        Ok(v) => v,
        Err(e) => {
            let _ = fs.remove_file(tmp);
            return Err(e);
        }
    };
    if let Err(e) = fs.rename(tmp, path) {
        let _ = fs.remove_file(tmp);
        return Err(PathError::new(path, Step::Rename, e).into());
    }
    Ok(value)
}

/// [`write_atomically`] of a byte slice.
pub fn write_atomically_bytes(
    fs: &dyn FileSystem,
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
) -> Result<(), PathError> {
    write_atomically(fs, path, tmp, |f, tmp| write_bytes(f, tmp, bytes))
}

/// [`write_renamed`] of a byte slice.
pub fn write_renamed_bytes(
    fs: &dyn FileSystem,
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
) -> Result<(), PathError> {
    write_renamed(fs, path, tmp, |f, tmp| write_bytes(f, tmp, bytes))
}

fn write_bytes(f: &Arc<dyn File>, tmp: &Path, bytes: &[u8]) -> Result<(), PathError> {
    f.write_all_at(bytes, 0).map_err(|e| PathError::new(tmp, Step::Write, e))
}

/// Creates `path` (which must not exist) with `bytes`, fsyncs it and its directory.
pub fn write_new_durable(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<(), PathError> {
    let f = fs.open(path, OpenMode::CreateNew).map_err(|e| PathError::new(path, Step::Open, e))?;
    f.write_all_at(bytes, 0).map_err(|e| PathError::new(path, Step::Write, e))?;
    f.sync_all().map_err(|e| PathError::new(path, Step::Sync, e))?;
    let dir = parent_dir(path);
    fs.sync_dir(dir).map_err(|e| PathError::new(dir, Step::SyncDir, e))
}

/// Creates `dir` and its missing parents, and makes each new directory's entry
/// durable in its parent, top-down. Nothing happens if `dir` exists.
pub fn create_dir_all_durable(fs: &dyn FileSystem, dir: &Path) -> Result<(), PathError> {
    if fs.exists(dir) {
        return Ok(());
    }
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty())
        .take_while(|d| !fs.exists(d))
        .collect();
    fs.create_dir_all(dir).map_err(|e| PathError::new(dir, Step::CreateDir, e))?;
    for d in missing.iter().rev() {
        let parent = parent_dir(d);
        fs.sync_dir(parent).map_err(|e| PathError::new(parent, Step::SyncDir, e))?;
    }
    Ok(())
}

/// Chunk of the streaming copy into a backup.
const COPY_CHUNK: usize = 1 << 20;

/// Copies `file` into `backup_dir` (created durably if missing) under its own name,
/// `.1`, `.2`, ... appended when that name is taken, streaming (memory stays at one
/// 1 MiB buffer whatever the file's size); the copy and its directory entry are made
/// durable before this returns. Returns the copy's path. The original is untouched.
pub fn copy_to_backup(
    fs: &dyn FileSystem,
    file: &Path,
    backup_dir: &Path,
) -> Result<PathBuf, PathError> {
    create_dir_all_durable(fs, backup_dir)?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut target = backup_dir.join(&name);
    let mut n = 1;
    while fs.exists(&target) {
        target = backup_dir.join(format!("{name}.{n}"));
        n += 1;
    }
    let src = fs.open(file, OpenMode::Read).map_err(|e| PathError::new(file, Step::Open, e))?;
    let dst = fs
        .open(&target, OpenMode::CreateNew)
        .map_err(|e| PathError::new(&target, Step::Open, e))?;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut off = 0u64;
    loop {
        let k = src.read_at(&mut buf, off).map_err(|e| PathError::new(file, Step::Read, e))?;
        let Some(chunk) = buf.get(..k).filter(|c| !c.is_empty()) else { break };
        dst.write_all_at(chunk, off).map_err(|e| PathError::new(&target, Step::Write, e))?;
        off += k as u64;
    }
    dst.sync_all().map_err(|e| PathError::new(&target, Step::Sync, e))?;
    fs.sync_dir(backup_dir).map_err(|e| PathError::new(backup_dir, Step::SyncDir, e))?;
    Ok(target)
}

/// Moves `file` into `backup_dir`: [`copy_to_backup`], then removes the original and
/// makes the removal durable. A crash in between leaves both copies, never neither.
/// Returns the copy's path.
pub fn move_to_backup(
    fs: &dyn FileSystem,
    file: &Path,
    backup_dir: &Path,
) -> Result<PathBuf, PathError> {
    let target = copy_to_backup(fs, file, backup_dir)?;
    fs.remove_file(file).map_err(|e| PathError::new(file, Step::Remove, e))?;
    let dir = parent_dir(file);
    fs.sync_dir(dir).map_err(|e| PathError::new(dir, Step::SyncDir, e))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::StdFs;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kk-durable-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn parent_dir_of_bare_relative_name_is_dot() {
        assert_eq!(parent_dir(Path::new("w1")), Path::new("."));
        assert_eq!(parent_dir(Path::new("./w1")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/a/b")), Path::new("/a"));
        assert_eq!(parent_dir(Path::new("/")), Path::new("/"));
    }

    #[test]
    fn atomic_write_replaces_and_failed_write_leaves_old_file() {
        let d = tmpdir("atomic");
        let fs = StdFs;
        let p = d.join("state");
        let t = d.join("state.tmp");
        write_atomically_bytes(&fs, &p, &t, b"one").unwrap();
        write_atomically_bytes(&fs, &p, &t, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let r: Result<(), PathError> = write_atomically(&fs, &p, &t, |f, tmp| {
            f.write_all_at(b"partial", 0).unwrap();
            Err(PathError::new(tmp, Step::Write, io::Error::other("refused")))
        });
        assert_eq!(r.unwrap_err().step, Step::Write);
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!t.exists(), "the temporary file is removed after a failure");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// What a power loss keeps: the renamed write is complete but its name may be
    /// lost (the old file stays); the atomic write survives.
    #[cfg(feature = "testing")]
    #[test]
    fn renamed_write_skips_only_the_directory_sync() {
        use crate::FaultFs;
        let fs = FaultFs::default();
        let d = Path::new("/d");
        fs.create_dir_all(d).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let (p, t) = (d.join("meta"), d.join("meta.tmp"));
        write_atomically_bytes(&fs, &p, &t, b"one").unwrap();
        let dir_syncs = fs.stats().dir_syncs;
        write_renamed_bytes(&fs, &p, &t, b"two").unwrap();
        assert_eq!(fs.stats().dir_syncs, dir_syncs, "no directory sync");
        assert_eq!(fs.read_all(&p).unwrap(), b"two");
        fs.crash(1);
        assert_eq!(fs.read_all(&p).unwrap(), b"one", "the rename was not durable");
        write_atomically_bytes(&fs, &p, &t, b"three").unwrap();
        fs.crash(2);
        assert_eq!(fs.read_all(&p).unwrap(), b"three");
        let r: Result<(), PathError> = write_renamed(&fs, &p, &t, |_, tmp| {
            Err(PathError::new(tmp, Step::Write, io::Error::other("refused")))
        });
        assert_eq!(r.unwrap_err().step, Step::Write);
        assert_eq!(fs.read_all(&p).unwrap(), b"three");
        assert!(!fs.exists(&t), "the temporary file is removed after a failure");
    }

    #[test]
    fn move_to_backup_streams_and_never_overwrites() {
        let d = tmpdir("backup");
        let fs = StdFs;
        let big: Vec<u8> =
            (0..(COPY_CHUNK * 2 + 17)).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let a = d.join("log.1");
        std::fs::write(&a, &big).unwrap();
        let b = d.join("bk").join("deep");
        let first = move_to_backup(&fs, &a, &b).unwrap();
        assert_eq!(first, b.join("log.1"));
        assert!(!a.exists());
        assert_eq!(std::fs::read(&first).unwrap(), big);
        std::fs::write(&a, b"again").unwrap();
        let second = move_to_backup(&fs, &a, &b).unwrap();
        assert_eq!(second, b.join("log.1.1"));
        assert_eq!(std::fs::read(&second).unwrap(), b"again");
        assert_eq!(std::fs::read(&first).unwrap(), big);
        std::fs::write(&a, b"kept").unwrap();
        let copy = copy_to_backup(&fs, &a, &b).unwrap();
        assert_eq!(copy, b.join("log.1.2"));
        assert_eq!(std::fs::read(&a).unwrap(), b"kept");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
