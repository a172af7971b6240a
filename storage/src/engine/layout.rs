//! The native data directory: names, the marker file, and listing snapshots.
//!
//! ```text
//! DIR/KEEPERKIT                  marker: what this directory is, and its layout version
//! DIR/snapshots/snap-<%016x>.kks native snapshots, named by the last log index they cover
//! DIR/snapshots/*.kks.tmp        a snapshot being written or received (never read)
//! DIR/wal/                       the native WAL (meta + seg-<%016x>.wal)
//! ```

use std::path::{Path, PathBuf};

use keeperkit_snapshot::native::{inspect_snapshot, parse_snapshot_file_name};
use keeperkit_vfs::{FileSystem, OpenMode};

use crate::traits::{LogPosition, SnapshotInfo};
use crate::StorageError;

/// Name of the marker file at the top of a native data directory.
pub const MARKER_FILE: &str = "KEEPERKIT";
/// Contents of the marker file (layout version 1).
pub const MARKER_V1: &[u8] = b"keeperkit native data directory, layout 1\n";
/// Snapshot sub-directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// WAL sub-directory.
pub const WAL_DIR: &str = "wal";
/// Name of the temporary file a received snapshot is written to before it is
/// validated and renamed (ends in `.kks.tmp`, so a crash leftover is removed on open).
pub const INCOMING_FILE: &str = "incoming.kks.tmp";

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

/// Whether `dir` looks like a native data directory (has the marker file).
pub fn is_native_data_dir(fs: &dyn FileSystem, dir: &Path) -> bool {
    fs.exists(&dir.join(MARKER_FILE))
}

/// Writes the marker file of a new data directory (create, write, fsync, directory
/// fsync).
pub fn write_marker(fs: &dyn FileSystem, dir: &Path) -> Result<(), StorageError> {
    let marker = dir.join(MARKER_FILE);
    let f = fs.open(&marker, OpenMode::CreateNew).map_err(io(&marker))?;
    f.write_all_at(MARKER_V1, 0).map_err(io(&marker))?;
    f.sync_all().map_err(io(&marker))?;
    fs.sync_dir(dir).map_err(io(dir))?;
    Ok(())
}

/// The snapshot files of `snap_dir` by name (`snap-<index>.kks`), ascending by index.
/// Nothing is read from them.
pub fn snapshot_files(
    fs: &dyn FileSystem,
    snap_dir: &Path,
) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    if !fs.exists(snap_dir) {
        return Ok(Vec::new());
    }
    let mut out: Vec<(u64, PathBuf)> = fs
        .read_dir(snap_dir)
        .map_err(io(snap_dir))?
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| parse_snapshot_file_name(&e.name).map(|i| (i, snap_dir.join(&e.name))))
        .collect();
    out.sort();
    Ok(out)
}

/// The metadata of a snapshot file (header, trailer, footer and metadata block only).
pub fn snapshot_info(fs: &dyn FileSystem, path: &Path) -> Result<SnapshotInfo, StorageError> {
    let i = inspect_snapshot(fs, path)?;
    Ok(SnapshotInfo {
        path: path.to_path_buf(),
        position: LogPosition { index: i.meta.last_index, term: i.meta.last_term },
        zxid: i.meta.zxid,
        node_count: i.meta.node_count,
        file_len: i.file_len,
    })
}
