//! The in-memory znode tree of keeperkit: ZooKeeper's `DataTree`, with its exact
//! semantics, in a compact copy-on-write form.
//!
//! # What it does
//!
//! - [`DataTree::apply`] applies a logged [`Txn`](keeperkit_model::Txn) the way
//!   ZooKeeper's `DataTree.processTxn` replays it (docs/formats/zookeeper.md, "Replay rules"):
//!   create / create2 / createContainer / createTTL, delete / deleteContainer,
//!   setData / reconfig, setACL, check, error, multi (all-or-nothing on error txns),
//!   createSession / closeSession. Per-op failures (NoNode, NodeExists, …) are returned
//!   in a [`TxnResult`] and change nothing beyond what ZooKeeper changes (a delete of a
//!   missing child still raises the parent's pzxid; a `create` (type 1 only) hitting
//!   NodeExists still raises the parent's cversion and pzxid). `lastProcessedZxid`
//!   rises to every applied txn's zxid, error txns included.
//! - Quotas: the `zookeeper_stats` node of each quota under `/zookeeper/quota` is
//!   kept current by creates, deletes and setData under the quota's path, as
//!   ZooKeeper's `DataTree` does (no version, mzxid or watch changes), and
//!   [`DataTree::setup_quota`] recounts them after a snapshot is loaded.
//! - Snapshot loading: [`DataTree::empty`] then [`DataTree::insert_loaded`] (ZooKeeper
//!   stored stats) or [`DataTree::insert_loaded_full`] (dialects storing client stats),
//!   directly or through a [`BulkLoader`] (faster for large snapshots, same result),
//!   [`DataTree::add_session`], [`DataTree::set_last_processed_zxid`], and after log
//!   replay [`DataTree::remove_orphan_ephemerals`] as ZooKeeper does on start.
//! - Reads: [`DataTree::get`] (a [`NodeRef`]: data, ACL, kind, the client
//!   [`Stat`](keeperkit_model::Stat), the stored
//!   [`StatPersisted`](keeperkit_model::StatPersisted)), [`DataTree::children`],
//!   sessions and their ephemerals, [`DataTree::for_each_preorder`] (parents first, for
//!   snapshot writers) and [`DataTree::for_each_sorted`] (full-path byte order, for
//!   dumps and diffs).
//! - ClickHouse Keeper: [`DataTree::apply_keeper_entry`] executes a Keeper changelog
//!   entry with Keeper's own semantics (module [`keeper`]: Keeper's cversion and
//!   `seq_num` rules, ACL checks against the session's auth ids, all-or-nothing
//!   multis, SessionID / Close / Auth), and, once enabled, Keeper's SipHash tree
//!   digest is kept up to date next to ZooKeeper's ([`DataTree::keeper_digest`],
//!   [`DataTree::check_entry_digest`]).
//! - Digests: ZooKeeper's tree digest (docs/formats/zookeeper.md, "Tree digest") kept up to date on every change, so
//!   [`DataTree::digest`] is O(1) and can be compared with every `TxnDigest` of a log;
//!   [`DataTree::compute_digest`] recomputes it from scratch.
//!
//! # What it deliberately does not do
//!
//! No I/O, no codecs, no threads, no clocks: bytes in and out belong to `snapshot` and
//! `wal`, recovery policy to `storage`. [`DataTree::apply`] does not validate client requests
//! (versions, ACL permissions, ephemeral parents, sequential names): it applies txns
//! the leader already validated, and for replay over fuzzy snapshots it tolerates what
//! ZooKeeper tolerates. (Keeper logs requests, not txns: there
//! [`DataTree::apply_keeper_entry`] does the validation Keeper does.) It does not check ZooKeeper's path character rules on loaded
//! data (ZooKeeper does not either), only the shape (`/`-prefixed, no empty names) and
//! the limits.
//!
//! # Representation
//!
//! - **Stats.** Each node keeps both the `cversion` clients see and `seq`, ZooKeeper's
//!   stored cversion (the number of child creations, the next sequential suffix).
//!   ZooKeeper derives the client value as `2 * seq - numChildren` (docs/formats/zookeeper.md, "Stat views"); every
//!   ZooKeeper txn that changes a node's `seq` or its number of children recomputes
//!   its `cversion` that way. Dialects that store the client value (ClickHouse Keeper)
//!   load both as they are. `ephemeralOwner` is kept in ZooKeeper's stored encoding
//!   (container = `i64::MIN`, TTL = `0xFF << 56 | ttl`) and converted for clients at
//!   the edge ([`NodeRef::stat`]).
//! - **Nodes** live in a persistent vector (`imbl::Vector`, a chunked RRB tree) indexed
//!   by a `u32` id; deleted slots are chained into a free list through the slots
//!   themselves and reused. A node is 72 bytes: the ten stat fields (64 bytes) and one
//!   thin refcounted pointer (`triomphe::ThinArc`) to a single allocation holding its
//!   interned ACL id, a null-data flag and its data bytes. Nothing else is stored per
//!   node: no name (its parent's child set holds it), no full path, no parent link
//!   (every operation reaches a node from the root by path, so it always knows the
//!   path), no cached digest (a change recomputes the node's old and new CRC from that
//!   path). Measured at one million small znodes (1000 × 1000): about 126 bytes of
//!   resident memory per znode beyond its name and data, node store, blob headers,
//!   child sets, allocator rounding included (`tests/memory.rs`).
//!   ACL lists are interned in a refcounted table; loading in pre-order finds each
//!   parent through a cursor on the previous node's ancestors, without walking paths.
//!   A [`BulkLoader`] also gathers the children of each node on that cursor unsorted
//!   (a duplicate name is still refused at its node: each name's hash is recorded, and
//!   a repeated hash is checked exactly in the sorted set) and sorts them once when
//!   the cursor leaves the node, or before a lookup that does not go through the
//!   cursor; its tree is handed out by [`BulkLoader::finish`], with every set sorted.
//!   Snapshots list children in hash order, so inserting them one by one into sorted
//!   sets puts each at a random place.
//! - **Children** are kept in a side table (a persistent hash map from node id to child
//!   set), so that leaves, most nodes, pay nothing for them. A child set is sorted by
//!   name bytes and holds its children's ids and names: one shared chunk up to 512
//!   children, beyond that shared chunks of at most 512 children under a chunk index (a
//!   two-level B-tree). A chunk keeps its names end to end in one buffer, so a binary
//!   search compares bytes the chunk holds (one or two cache lines per compare) and
//!   never indexes the node store. A million children under one parent insert and
//!   delete in O(log n) name comparisons and O(512) moves.
//! - **Sessions** (`id → timeout`) and the ephemeral index (`(owner, path)` pairs) are
//!   persistent ordered collections, so `closeSession` costs O(#ephemerals) and
//!   `ephemerals()` comes out sorted.
//!
//! # Copy-on-write
//!
//! Every collection above is persistent (structure shared through reference counts),
//! so `DataTree::clone` is O(1): it copies a few root pointers. The clone is a
//! consistent view: later changes to either tree never show in the other. The first
//! write to a part of the tree after a clone copies only the path to what it touches:
//! one 64-node chunk of the node store (4.5 KiB) and its RRB path, one HAMT path of
//! the children table, one children chunk (at most 512 ids and names) plus the chunk
//! index, a B-tree path of the session or ephemeral index. Data bytes are never copied
//! (the blobs are shared by pointer). This is what lets `storage` serialize a snapshot
//! from a view while writes continue. (Views are `Send + Sync`.)
//!
//! # Replay details decided here
//!
//! ZooKeeper's leader never logs these, but a damaged or hand-made log could hold them;
//! the tree answers without panicking and documents the choice:
//!
//! - a create or delete path that is not `/`-prefixed or has an empty last component
//!   (`/` itself included): `BadArguments`, nothing changes (an empty inner component
//!   names a parent that cannot exist: `NoNode`);
//! - a createTTL whose TTL is outside `1..=TTL_MAX` (ZooKeeper throws
//!   `IllegalArgumentException`): `BadArguments`;
//! - a delete of a node that still has children (only possible while replaying over a
//!   fuzzy snapshot; ZooKeeper leaves the children behind, unreachable): the whole
//!   subtree goes;
//! - a multi holding a sub-type ZooKeeper's `processTxn` rejects (setACL, reconfig,
//!   session txns): the multi stops there with `BadArguments`, earlier subs stay
//!   applied, exactly like ZooKeeper's `IOException`.
//!
//! # Invariants
//!
//! Checked by [`DataTree::check_consistency`] (used throughout the tests):
//!
//! - every live node except the root is in exactly one children set, its parent's,
//!   and children sets are non-empty and strictly sorted by name bytes; free slots
//!   are never reachable, and live + free = slots;
//! - the running digest equals the wrapping sum of every node's CRC-32 (0 under
//!   `/zookeeper/`), so `digest() == compute_digest()`;
//! - for trees built from ZooKeeper data and txns, `cversion == 2 * seq -
//!   numChildren` for every node;
//! - every node whose stored owner is a session id is in the ephemeral index, and
//!   nothing else is; ACL reference counts equal the number of nodes using each list;
//! - depth ≤ `limits::TREE_DEPTH_MAX`, path length ≤ `limits::PATH_LEN_MAX`; no
//!   operation recurses, so no input can overflow the stack.
//!
//! # Example
//!
//! ```
//! use keeperkit_model::{Acl, CreateTxn, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
//! use keeperkit_tree::{DataTree, TxnResult};
//!
//! let mut tree = DataTree::new();
//! let create = CreateTxn {
//!     path: "/app".into(),
//!     data: Some(b"v1".to_vec()),
//!     acl: Acl::open_unsafe(),
//!     ephemeral: false,
//!     parent_cversion: 1,
//!     ttl: None,
//!     v0: false,
//! };
//! let header = TxnHeader {
//!     client_id: SessionId(1),
//!     cxid: 1,
//!     zxid: Zxid(1),
//!     time: 1_700_000_000_000,
//!     op: OpCode::CREATE,
//! };
//! let txn = Txn { header, body: TxnBody::Create(create), digest: None };
//!
//! let view = tree.clone(); // O(1) snapshot view
//! assert_eq!(tree.apply(&txn), TxnResult::Ok);
//! assert_eq!(tree.get("/app").unwrap().data(), Some(&b"v1"[..]));
//! assert!(view.get("/app").is_none());
//! // The root had 1 child (/zookeeper) and stored cversion 0; now 2 children, seq 1.
//! assert_eq!(tree.get("/").unwrap().stat().cversion, 2 * 1 - 2);
//! assert_eq!(tree.digest(), tree.compute_digest());
//! ```

mod acl;
mod apply;
mod children;
mod digest;
mod error;
mod iter;
pub mod keeper;
mod node;
mod parallel;
mod quota;
mod tree;

pub use apply::TxnResult;
pub use error::TreeError;
pub use iter::{Change, SortedWalk};
pub use keeper::{
    keeper_digest_id, DigestCheck, KeeperApplyError, KeeperExecOptions, KeeperOutcome,
    KeeperResponse,
};
pub use parallel::{PreorderKind, PreorderPart, SortedPart, PART_STEPS_MAX};
pub use tree::{BulkLoader, DataTree, NodeRef, SessionInfo};
