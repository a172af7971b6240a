//! Progress while a conversion writes: each writer walks the tree through its own
//! snapshot source trait (ZooKeeper, ClickHouse Keeper, native), so one wrapper per
//! trait counts the nodes handed to the writer and reports them to a [`Progress`] in
//! batches. The wrapped source is otherwise passed through untouched: same calls, same
//! order, same errors.

use std::cell::{Cell, RefCell};

use keeperkit_model::keeper::nuraft::ClusterConfig;
use keeperkit_model::SessionId;
use keeperkit_snapshot::clickhouse::body::{AclVisitor, NodeVisitor, SessionVisitor};
use keeperkit_snapshot::clickhouse::{ClickHouseSnapshotSource, SnapshotHeader};
use keeperkit_snapshot::native::{NodeRecord, NodeSource};
use keeperkit_snapshot::zookeeper::SnapshotDigest;
use keeperkit_snapshot::zookeeper_writer::{ZkNode, ZkSnapshotSource};
use keeperkit_snapshot::SnapshotError;

use crate::progress::Progress;

/// Nodes counted before the progress is told (a call per node would cost more than
/// the node's encoding on a terminal-less run).
const BATCH: u64 = 4096;

/// Counts nodes for a [`Progress`] (in node units: [`Progress::set_node_total`]).
pub(crate) struct NodeCounter<'p> {
    progress: RefCell<&'p mut dyn Progress>,
    pending: Cell<u64>,
}

impl<'p> NodeCounter<'p> {
    /// A counter expecting `total` nodes in all (every walk of every pass).
    pub(crate) fn new(progress: &'p mut dyn Progress, total: u64) -> NodeCounter<'p> {
        progress.set_node_total(total);
        NodeCounter { progress: RefCell::new(progress), pending: Cell::new(0) }
    }

    fn tick(&self) {
        let n = self.pending.get() + 1;
        if n >= BATCH {
            self.flush_n(n);
        } else {
            self.pending.set(n);
        }
    }

    fn flush_n(&self, n: u64) {
        self.pending.set(0);
        if let Ok(mut p) = self.progress.try_borrow_mut() {
            p.advance(n);
        }
    }

    /// Reports the nodes counted since the last report.
    pub(crate) fn flush(&self) {
        let n = self.pending.get();
        if n > 0 {
            self.flush_n(n);
        }
    }
}

impl Drop for NodeCounter<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A snapshot source whose node walks are counted.
pub(crate) struct Counted<'a, 'p, S: ?Sized> {
    pub(crate) inner: &'a S,
    pub(crate) counter: &'a NodeCounter<'p>,
}

impl<S: ZkSnapshotSource + ?Sized> ZkSnapshotSource for Counted<'_, '_, S> {
    fn sessions(&self) -> Vec<(SessionId, i32)> {
        self.inner.sessions()
    }

    fn for_each_node(
        &self,
        f: &mut dyn FnMut(ZkNode<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let r = self.inner.for_each_node(&mut |n| {
            self.counter.tick();
            f(n)
        });
        self.counter.flush();
        r
    }

    fn digest(&self) -> Option<SnapshotDigest> {
        self.inner.digest()
    }
}

impl<S: NodeSource + ?Sized> NodeSource for Counted<'_, '_, S> {
    fn for_each_node(
        &self,
        f: &mut dyn FnMut(NodeRecord<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let r = self.inner.for_each_node(&mut |n| {
            self.counter.tick();
            f(n)
        });
        self.counter.flush();
        r
    }
}

impl<S: ClickHouseSnapshotSource + ?Sized> ClickHouseSnapshotSource for Counted<'_, '_, S> {
    fn header(&self) -> SnapshotHeader {
        self.inner.header()
    }

    fn acl_count(&self) -> u64 {
        self.inner.acl_count()
    }

    fn visit_acls(&self, f: &mut AclVisitor<'_>) -> Result<(), String> {
        self.inner.visit_acls(f)
    }

    fn node_count(&self) -> u64 {
        self.inner.node_count()
    }

    fn visit_nodes(&self, f: &mut NodeVisitor<'_>) -> Result<(), String> {
        let r = self.inner.visit_nodes(&mut |n| {
            self.counter.tick();
            f(n)
        });
        self.counter.flush();
        r
    }

    fn session_count(&self) -> u64 {
        self.inner.session_count()
    }

    fn visit_sessions(&self, f: &mut SessionVisitor<'_>) -> Result<(), String> {
        self.inner.visit_sessions(f)
    }

    fn cluster_config(&self) -> Option<ClusterConfig> {
        self.inner.cluster_config()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Default)]
    struct Seen {
        total: u64,
        done: u64,
        calls: u64,
    }

    impl Progress for Seen {
        fn set_node_total(&mut self, total: u64) {
            self.total = total;
        }
        fn advance(&mut self, delta: u64) {
            self.done += delta;
            self.calls += 1;
        }
    }

    struct Nodes(u64);

    impl NodeSource for Nodes {
        fn for_each_node(
            &self,
            f: &mut dyn FnMut(NodeRecord<'_>) -> Result<(), SnapshotError>,
        ) -> Result<(), SnapshotError> {
            let stat = keeperkit_snapshot::native::NodeStat::default();
            for _ in 0..self.0 {
                f(NodeRecord { path: "/", data: None, acl_id: 0, stat })?;
            }
            Ok(())
        }
    }

    #[test]
    fn every_node_is_counted_in_batches() {
        let mut seen = Seen::default();
        {
            let counter = NodeCounter::new(&mut seen, 10_000);
            let src = Counted { inner: &Nodes(10_000), counter: &counter };
            let mut n = 0;
            src.for_each_node(&mut |_| {
                n += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(n, 10_000);
        }
        assert_eq!((seen.total, seen.done), (10_000, 10_000));
        assert_eq!(seen.calls, 3, "4096 + 4096 + the 1808 flushed at the end of the walk");
    }

    #[test]
    fn an_error_stops_the_walk_and_is_passed_on() {
        let mut seen = Seen::default();
        let counter = NodeCounter::new(&mut seen, 100);
        let src = Counted { inner: &Nodes(100), counter: &counter };
        let mut n = 0;
        let r = src.for_each_node(&mut |_| {
            n += 1;
            if n == 7 {
                Err(SnapshotError::Refused { path: "x".into(), reason: "test".into() })
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(SnapshotError::Refused { .. })));
        drop(counter);
        assert_eq!(seen.done, 7);
    }
}
