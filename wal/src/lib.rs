//! Log framing for keeperkit.
//!
//! This crate reads and writes the append-only logs of the dialects keeperkit knows.
//! Payloads are decoded with `keeperkit-model`; this crate only knows how records are
//! framed in files, how they are checksummed, and how a file's records end.
//!
//! One folder per dialect:
//!
//! - [`zookeeper`]: Apache ZooKeeper 3.x transaction logs (`log.<hex zxid>`), read
//!   exactly as ZooKeeper's `FileTxnIterator` reads them: a zero length or a torn tail
//!   ends a file, a checksum mismatch is corruption.
//! - [`native`]: keeperkit's own write-ahead log (`wal/seg-<seq>.wal` segments and a
//!   metadata file): CRC-framed records of Raft entries, group commit, crash-safe
//!   truncation and purge, a verifier that names every damaged byte.
//! - [`clickhouse`]: ClickHouse Keeper changelogs (`changelog_<from>_<to>.bin[.zstd]`):
//!   SipHash-checked records, the zstd stream Keeper writes (frames terminated or
//!   left open by a crash), and Keeper's startup rules (which files it reads, cuts or
//!   sets aside).
//!
//! The byte layouts are described in `docs/FORMAT.md` (native) and
//! `docs/formats/zookeeper.md`, `docs/formats/clickhouse.md` (the foreign dialects).
//!
//! Architecture invariants:
//! - every byte goes through [`keeperkit_vfs::FileSystem`], so tests can inject faults;
//! - no decoder panics or allocates more than the file's real size justifies, whatever
//!   the bytes; every length is checked before anything is allocated for it;
//! - corruption is reported as [`WalError::Corrupt`] with the file, byte offset and zxid.
//!
//! The crate knows nothing about znodes, trees or snapshots.

pub mod clickhouse;
mod error;
pub mod native;
pub mod zookeeper;

pub use error::WalError;
