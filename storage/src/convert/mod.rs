//! Writing a state as a complete data directory of another dialect, atomically.
//!
//! Every target writes into a temporary sibling of the destination
//! (`.<name>.keeperkit-tmp-<pid>`), fsyncs what it wrote, and only then is the temporary
//! directory renamed to the destination and the parent directory fsynced. A failure at
//! any point removes the temporary directory: the destination either does not exist or
//! is complete. An existing destination is never overwritten.

use std::path::{Path, PathBuf};

use keeperkit_vfs::FileSystem;

use crate::StorageError;

pub mod clickhouse;
pub(crate) mod counted;
pub mod native;
pub mod zookeeper;

/// Something the target could not hold exactly, and what was done instead (only with
/// `lossy`), or a normalisation the target always applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The node (or session, as `session 0x...`) concerned.
    pub what: String,
    /// What changed, as a sentence.
    pub change: String,
}

/// Options every target understands (a target ignores what does not apply to it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Map what the target cannot hold exactly (documented per target) instead of
    /// failing with the list of affected nodes.
    pub lossy: bool,
    /// ZooKeeper target: snapshot compression (`None`, `"gz"`, `"snappy"`).
    pub zookeeper_compression: Option<String>,
    /// ClickHouse target: snapshot format version to write (default 6).
    pub clickhouse_version: Option<u8>,
    /// ZooKeeper target: the largest value accepted, ZooKeeper's `jute.maxbuffer`
    /// (default [`zookeeper::JUTE_MAXBUFFER_DEFAULT`]).
    pub jute_maxbuffer: Option<u64>,
}

/// What a conversion wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertReport {
    /// The destination directory.
    pub dst: PathBuf,
    /// Files written, relative to `dst`.
    pub files: Vec<PathBuf>,
    /// Znodes written.
    pub nodes: u64,
    /// Sessions written.
    pub sessions: u64,
    /// Normalisations and lossy mappings applied.
    pub mappings: Vec<Mapping>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

/// The temporary directory used while writing `dst`.
pub fn temp_dir_for(dst: &Path) -> PathBuf {
    let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let parent = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(format!(".{name}.keeperkit-tmp-{}", std::process::id()))
}

fn remove_tree(fs: &dyn FileSystem, dir: &Path) {
    if let Ok(entries) = fs.read_dir(dir) {
        for e in entries {
            let p = dir.join(&e.name);
            if e.is_dir {
                remove_tree(fs, &p);
            } else {
                let _ = fs.remove_file(&p);
            }
        }
    }
    let _ = fs.remove_dir(dir);
}

/// Runs `write` on a fresh temporary directory and publishes it as `dst` atomically.
/// `write` must fsync every file it writes and every directory it creates inside the
/// temporary directory (the temporary directory itself is fsynced here).
pub fn convert_atomically(
    fs: &dyn FileSystem,
    dst: &Path,
    write: impl FnOnce(&Path) -> Result<ConvertReport, StorageError>,
) -> Result<ConvertReport, StorageError> {
    if fs.exists(dst) {
        return Err(StorageError::NotADataDir {
            path: dst.to_path_buf(),
            what: "new destination",
            reason: "it already exists; keeperkit never overwrites a data directory".into(),
        });
    }
    let parent = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !fs.exists(parent) {
        return Err(StorageError::NotADataDir {
            path: parent.to_path_buf(),
            what: "directory",
            reason: "the destination's parent does not exist".into(),
        });
    }
    let tmp = temp_dir_for(dst);
    if fs.exists(&tmp) {
        remove_tree(fs, &tmp);
    }
    fs.create_dir_all(&tmp).map_err(io(&tmp))?;
    let result = write(&tmp).and_then(|mut report| {
        fs.sync_dir(&tmp).map_err(io(&tmp))?;
        fs.rename(&tmp, dst).map_err(io(dst))?;
        fs.sync_dir(parent).map_err(io(parent))?;
        report.dst = dst.to_path_buf();
        Ok(report)
    });
    if result.is_err() {
        remove_tree(fs, &tmp);
    }
    result
}

/// Writes a recovered state as a complete data directory of dialect `to` at `dst`
/// (which must not exist, nor lie inside `src`). The state keeps its real position:
/// a Raft log's last index and term, or for a ZooKeeper state the counter of its last
/// zxid with term 1, so that a damaged converted snapshot can never pass for the empty
/// start of a log. The nodes written are reported to `progress`.
pub fn write_state(
    fs: &std::sync::Arc<dyn FileSystem>,
    state: &crate::Recovered,
    to: crate::Dialect,
    src: &Path,
    dst: &Path,
    opts: &ConvertOptions,
    progress: &mut dyn crate::progress::Progress,
) -> Result<ConvertReport, StorageError> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (abs_src, abs_dst) = (abs(src), abs(dst));
    if abs_dst.starts_with(&abs_src) || abs_src.starts_with(&abs_dst) {
        return Err(StorageError::Usage(format!(
            "the destination {} and the source {} overlap; write the conversion outside the \
             source",
            dst.display(),
            src.display()
        )));
    }
    let tree = &state.tree;
    let pos =
        state.report.raft.clone().unwrap_or_else(|| clickhouse::ChPosition::from_zookeeper(tree));
    match to {
        crate::Dialect::Native => {
            let pos = native::SnapshotPosition {
                last_index: pos.last_log_idx,
                last_term: pos.last_log_term,
                cluster_config: pos.cluster_config.as_ref().map_or_else(Vec::new, |c| c.encode()),
            };
            convert_atomically(&**fs, dst, |tmp| native::write(fs, tree, &pos, tmp, opts, progress))
        }
        crate::Dialect::ZooKeeper => {
            // Refused before anything is written, the temporary directory included.
            zookeeper::check(tree, opts)?;
            convert_atomically(&**fs, dst, |tmp| zookeeper::write(fs, tree, tmp, opts, progress))
        }
        crate::Dialect::ClickHouse => {
            let mappings = clickhouse::check(tree, opts)?;
            convert_atomically(&**fs, dst, |tmp| {
                clickhouse::write_checked(fs, tree, &pos, tmp, opts, mappings, progress)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn publishes_only_complete_directories() {
        let fs = keeperkit_vfs::StdFs;
        let root = tempfile::tempdir().unwrap();
        let dst = root.path().join("out");
        let r = convert_atomically(&fs, &dst, |tmp| {
            std::fs::write(tmp.join("a"), b"x").unwrap();
            Ok(ConvertReport { nodes: 1, ..Default::default() })
        })
        .unwrap();
        assert_eq!(r.dst, dst);
        assert_eq!(std::fs::read(dst.join("a")).unwrap(), b"x");
        // Never overwrites.
        assert!(convert_atomically(&fs, &dst, |_| Ok(ConvertReport::default())).is_err());
        // A failing writer leaves nothing behind.
        let dst2 = root.path().join("out2");
        let err = convert_atomically(&fs, &dst2, |tmp| {
            std::fs::write(tmp.join("half"), b"x").unwrap();
            Err(StorageError::Unreachable { what: "test".into(), reason: "fails".into() })
        });
        assert!(err.is_err());
        assert!(!dst2.exists());
        assert!(!temp_dir_for(&dst2).exists());
        let names: Vec<_> =
            std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "only the first destination: {names:?}");
    }
}
