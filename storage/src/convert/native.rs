//! Writing a state as a keeperkit native data directory.
//!
//! Layout (see docs/FORMAT.md, "Native data directory"):
//!
//! ```text
//! DST/KEEPERKIT              marker: what this directory is, and its layout version
//! DST/snapshots/<snapshot>   one native snapshot holding the whole state
//! DST/wal/                   an empty native WAL (metadata only) continuing after it
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_snapshot::native::{snapshot_file_name, WriteOptions};
use keeperkit_tree::DataTree;
use keeperkit_vfs::{FileSystem, OpenMode};
use keeperkit_wal::native::{NativeWal, NativeWalOptions};

use super::{ConvertOptions, ConvertReport};
use crate::native::snapshot::save_tree_with_progress;
pub use crate::native::snapshot::SnapshotPosition;
use crate::progress::Progress;
use crate::StorageError;

pub use crate::engine::layout::{MARKER_FILE, MARKER_V1, SNAPSHOT_DIR, WAL_DIR};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

/// Writes `tree` into the (empty, temporary) directory `dir` as a native data directory
/// whose snapshot sits at `pos` (index 0 for a source without a Raft log, such as
/// ZooKeeper); the WAL continues at `pos.last_index + 1`. Every file and directory
/// written is fsynced. The nodes written are reported to `progress`.
pub fn write(
    fs: &Arc<dyn FileSystem>,
    tree: &DataTree,
    pos: &SnapshotPosition,
    dir: &Path,
    _opts: &ConvertOptions,
    progress: &mut dyn Progress,
) -> Result<ConvertReport, StorageError> {
    let marker = dir.join(MARKER_FILE);
    let f = fs.open(&marker, OpenMode::CreateNew).map_err(io(&marker))?;
    f.write_all_at(MARKER_V1, 0).map_err(io(&marker))?;
    f.sync_all().map_err(io(&marker))?;

    let snaps = dir.join(SNAPSHOT_DIR);
    fs.create_dir_all(&snaps).map_err(io(&snaps))?;
    let name = snapshot_file_name(pos.last_index);
    save_tree_with_progress(&**fs, &snaps, &name, tree, pos, &WriteOptions::default(), progress)?;
    fs.sync_dir(&snaps).map_err(io(&snaps))?;

    let wal_dir = dir.join(WAL_DIR);
    let wal_err = |e| StorageError::Io { path: wal_dir.clone(), source: std::io::Error::other(e) };
    let wal = NativeWal::open(fs.clone(), NativeWalOptions::new(&wal_dir)).map_err(wal_err)?;
    if pos.last_index > 0 {
        // The log continues after the snapshot (what the engine does at open).
        wal.purge(pos.last_index).map_err(wal_err)?;
    }
    drop(wal);
    fs.sync_dir(&wal_dir).map_err(io(&wal_dir))?;

    let mut files: Vec<PathBuf> =
        vec![PathBuf::from(MARKER_FILE), Path::new(SNAPSHOT_DIR).join(&name)];
    for e in fs.read_dir(&wal_dir).map_err(io(&wal_dir))? {
        files.push(Path::new(WAL_DIR).join(e.name));
    }
    Ok(ConvertReport {
        dst: dir.to_path_buf(),
        files,
        nodes: tree.node_count() as u64,
        sessions: tree.sessions().len() as u64,
        mappings: Vec::new(),
    })
}
