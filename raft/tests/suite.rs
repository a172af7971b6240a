//! openraft's own storage test suite (`openraft::testing::Suite`, every test) against
//! the keeperkit adapter, on the real file system in temporary directories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::sync::Arc;

use keeperkit_raft::{
    engine_options, open, KeeperLogStore, KeeperRaft, KeeperStateMachine, StoreError,
};
use keeperkit_vfs::{FileSystem, StdFs};
use openraft::testing::{StoreBuilder, Suite};

struct Builder;

impl StoreBuilder<KeeperRaft, KeeperLogStore, KeeperStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, KeeperLogStore, KeeperStateMachine), StoreError> {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
        let (log, sm) = open(fs, engine_options(tmp.path().join("data")))?;
        Ok((tmp, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

/// The suite skips its re-apply test when a store does not keep the committed log id;
/// this store does (checked here on the suite's scenario), so that test runs in full.
#[test]
fn committed_log_id_is_kept_so_the_re_apply_test_runs() {
    use keeperkit_raft::codec::log_id;
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_tmp, mut log, _sm) = Builder.build().await.unwrap();
        let entries = (2..=5).map(|i| openraft::Entry::<KeeperRaft> {
            log_id: log_id(1, i),
            payload: openraft::EntryPayload::Blank,
        });
        log.blocking_append(entries).await.unwrap();
        log.purge(log_id(1, 1)).await.unwrap();
        log.save_committed(Some(log_id(1, 4))).await.unwrap();
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 4)));
    });
}
