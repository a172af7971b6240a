//! Detecting which dialect a path holds.

use std::fmt;
use std::path::Path;

use keeperkit_vfs::FileSystem;

use crate::StorageError;

/// Fails when one of `names` is in `dir` but is not a directory (a plain file, a
/// symbolic link that loops or leads nowhere): a data directory's `logs/`, `wal/` or
/// `version-2/` that cannot be listed must never read as an empty one.
pub(crate) fn check_subdirs(
    fs: &dyn FileSystem,
    dir: &Path,
    names: &[&str],
) -> Result<(), StorageError> {
    let Ok(entries) = fs.read_dir(dir) else { return Ok(()) };
    for e in entries.iter().filter(|e| names.contains(&e.name.as_str())) {
        let p = dir.join(&e.name);
        match fs.metadata(&p) {
            Ok(m) if m.is_dir => {}
            Ok(_) => {
                return Err(StorageError::WrongKind {
                    path: p,
                    expected: "a directory",
                    found: "a file".into(),
                })
            }
            Err(err) => {
                return Err(StorageError::WrongKind {
                    path: p,
                    expected: "a directory",
                    found: format!("an entry that cannot be opened ({err})"),
                })
            }
        }
    }
    Ok(())
}

/// The on-disk dialects keeperkit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Apache ZooKeeper 3.x (`version-2/`, `log.*`, `snapshot.*`).
    ZooKeeper,
    /// ClickHouse Keeper (`changelog_*.bin`, `snapshot_*.bin`).
    ClickHouse,
    /// keeperkit's own format.
    Native,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::ZooKeeper => "zookeeper",
            Dialect::ClickHouse => "clickhouse",
            Dialect::Native => "native",
        })
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zookeeper" | "zk" => Ok(Dialect::ZooKeeper),
            "clickhouse" | "ch" | "keeper" => Ok(Dialect::ClickHouse),
            "native" | "keeperkit" => Ok(Dialect::Native),
            other => Err(format!("unknown format {other:?} (zookeeper, clickhouse, native)")),
        }
    }
}

fn classify_name(name: &str) -> Option<Dialect> {
    if name == "version-2" || name.starts_with("log.") || name.starts_with("snapshot.") {
        return Some(Dialect::ZooKeeper);
    }
    // Keeper's names, and its `tmp_` markers of an incomplete snapshot or copy.
    let keeper_name = name.strip_prefix("tmp_").unwrap_or(name);
    if keeper_name.starts_with("changelog_") || keeper_name.starts_with("snapshot_") {
        return Some(Dialect::ClickHouse);
    }
    if keeperkit_wal::native::parse_segment_file_name(name).is_some()
        || keeperkit_snapshot::native::parse_snapshot_file_name(name).is_some()
        || name == "KEEPERKIT"
    {
        return Some(Dialect::Native);
    }
    None
}

/// Every dialect whose files (or marker) are at `path`: a single file's by its name,
/// a directory's by the names in it and in its usual sub-directories.
pub fn present(fs: &dyn FileSystem, path: &Path) -> Vec<Dialect> {
    let mut found = Vec::new();
    let Ok(md) = fs.metadata(path) else { return found };
    if !md.is_dir {
        found.extend(path.file_name().and_then(|n| n.to_str()).and_then(classify_name));
        return found;
    }
    let Ok(entries) = fs.read_dir(path) else { return found };
    for e in &entries {
        if let Some(d) = classify_name(&e.name) {
            if !found.contains(&d) {
                found.push(d);
            }
        }
    }
    for sub in ["logs", "log", "snapshots", "data", "wal"] {
        if entries.iter().any(|e| e.is_dir && e.name == sub) {
            for d in present(fs, &path.join(sub)) {
                if !found.contains(&d) {
                    found.push(d);
                }
            }
        }
    }
    let has_dir = |n: &str| entries.iter().any(|e| e.is_dir && e.name == n);
    if (has_dir("logs") || has_dir("log"))
        && has_dir("snapshots")
        && !found.contains(&Dialect::ClickHouse)
    {
        found.push(Dialect::ClickHouse);
    }
    found
}

/// Detects the dialect of a directory or a single file from names (and, for single
/// files, the name alone). `None` when nothing recognisable is there.
pub fn detect(fs: &dyn FileSystem, path: &Path) -> Option<Dialect> {
    let md = fs.metadata(path).ok()?;
    if !md.is_dir {
        let name = path.file_name()?.to_str()?;
        return classify_name(name);
    }
    let entries = fs.read_dir(path).ok()?;
    let mut found = None;
    for e in &entries {
        if let Some(d) = classify_name(&e.name) {
            if d == Dialect::Native {
                return Some(d);
            }
            found.get_or_insert(d);
        }
    }
    if found.is_some() {
        return found;
    }
    // ClickHouse Keeper coordination dirs hold `logs/` and `snapshots/`.
    for sub in ["logs", "log", "snapshots", "data", "wal"] {
        if entries.iter().any(|e| e.is_dir && e.name == sub) {
            if let Some(d) = detect(fs, &path.join(sub)) {
                return Some(d);
            }
        }
    }
    // An empty Keeper coordination dir (a fresh server, or everything set aside).
    let has_dir = |n: &str| entries.iter().any(|e| e.is_dir && e.name == n);
    if (has_dir("logs") || has_dir("log")) && has_dir("snapshots") {
        return Some(Dialect::ClickHouse);
    }
    None
}
