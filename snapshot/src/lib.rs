//! Snapshot formats for keeperkit, one folder per dialect.
//!
//! - [`zookeeper`]: Apache ZooKeeper 3.x snapshots (`snapshot.<hex zxid>[.gz|.snappy]`):
//!   read exactly as ZooKeeper's `FileSnap` reads them, both Adler-32 seals checked
//!   (`zookeeper/mod.rs`), the gzip and snappy-java framing (`zookeeper/compression.rs`)
//!   and the writer (`zookeeper/write.rs`, also reachable as [`zookeeper_writer`]).
//! - [`native`]: keeperkit's own snapshot files (`snap-<index>.kks`): chunks of nodes,
//!   each a zstd frame with its own CRC, a metadata block, a footer indexing the chunks
//!   and a trailer; read in parallel, written crash-safely.
//! - [`clickhouse`]: ClickHouse Keeper snapshots (`snapshot_<index>.bin[.zstd]`): body
//!   versions V0 to V8 in either container Keeper reads (one zstd stream, or ClickHouse
//!   compressed blocks with CityHash128 checksums).
//!
//! The byte layouts are described in `docs/FORMAT.md` (native) and
//! `docs/formats/zookeeper.md`, `docs/formats/clickhouse.md` (the foreign dialects).
//!
//! Readers hand what they decode to a sink ([`zookeeper::SnapshotSink`],
//! [`native::NodeSink`], [`clickhouse::ClickHouseSnapshotSink`]), so this crate never
//! depends on a tree: the storage layer decides what a node means.
//!
//! Architecture invariants:
//! - every byte goes through [`keeperkit_vfs::FileSystem`];
//! - no decoder panics on any input, and every length and count read from a file is
//!   checked against its limit and the bytes that remain before anything is allocated;
//! - corruption is reported as [`SnapshotError::Corrupt`] with the file and byte offset.

pub mod clickhouse;
mod error;
pub mod native;
pub mod zookeeper;

pub use zookeeper::write as zookeeper_writer;

pub use error::SnapshotError;
