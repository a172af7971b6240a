//! Finding 1 of the damaged-input review, through the openraft adapter: a native data
//! directory whose only snapshot is damaged, and whose log does not reach back to where
//! an older state could take over, is refused when the store opens. openraft gets an
//! error, never a state machine holding the empty tree (a replica that started empty
//! would serve, and then replicate, a state that lost every node).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_raft::{engine_options, open};
use keeperkit_vfs::{FileSystem, StdFs};

/// The ZooKeeper `basic` fixture converted to a native data directory in `root`: one
/// snapshot at the fixture's last position and an empty log. Returns the directory and
/// the number of nodes of the state.
fn converted(fs: &Arc<dyn FileSystem>, root: &Path) -> (PathBuf, usize) {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0/basic/data");
    let src = keeperkit_storage::open(&**fs, &fixture, &Default::default()).unwrap();
    let state = src.recover(keeperkit_storage::Point::Latest).unwrap();
    let dir = root.join("native");
    let opts = keeperkit_storage::convert::ConvertOptions { lossy: true, ..Default::default() };
    keeperkit_storage::convert::write_state(
        fs,
        &state,
        keeperkit_storage::Dialect::Native,
        &fixture,
        &dir,
        &opts,
        &mut keeperkit_storage::NoProgress,
    )
    .unwrap();
    (dir, state.tree.node_count())
}

fn only_snapshot(dir: &Path) -> PathBuf {
    let snaps: Vec<PathBuf> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kks"))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    snaps.into_iter().next().unwrap()
}

#[test]
fn finding_01_the_adapter_refuses_a_damaged_snapshot_the_log_does_not_cover() {
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let tmp = tempfile::tempdir().unwrap();
    let (dir, nodes) = converted(&fs, tmp.path());
    assert!(nodes > 1000, "{nodes}");

    // Intact: the adapter opens to the converted state (the test can tell the two apart).
    let (log, sm) = open(fs.clone(), engine_options(&dir)).unwrap();
    assert_eq!(sm.engine().with_tree(|t| t.node_count()), nodes);
    drop((log, sm));

    // One flipped bit in the only snapshot, in a node chunk and in the metadata.
    let snap = only_snapshot(&dir);
    let intact = std::fs::read(&snap).unwrap();
    for at in [intact.len() / 2, intact.len() - 200] {
        let mut bytes = intact.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&snap, &bytes).unwrap();
        match open(fs.clone(), engine_options(&dir)) {
            Ok((_log, sm)) => panic!(
                "byte {at} flipped: the adapter opened a state machine of {} nodes (of {nodes})",
                sm.engine().with_tree(|t| t.node_count())
            ),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&snap.display().to_string()), "byte {at}: {msg}");
            }
        }
        // Refusing changed nothing: the damaged file is still there, no empty snapshot
        // took its place, and the log was not reset.
        assert_eq!(only_snapshot(&dir), snap);
        assert_eq!(std::fs::read(&snap).unwrap(), bytes);
    }

    // Removing the snapshot is no way around it either: the log does not reach index 1.
    std::fs::remove_file(&snap).unwrap();
    assert!(open(fs.clone(), engine_options(&dir)).is_err(), "an empty state without a snapshot");
}
