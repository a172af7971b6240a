//! [`DataTree`]: the node store, the children side table, the ACL table, sessions and
//! the ephemeral index; loading and read queries. Applying txns is in `apply.rs`,
//! traversals in `iter.rs`.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use imbl::shared_ptr::DefaultSharedPtr;
use imbl::{GenericHashMap, OrdMap, OrdSet, Vector};
use keeperkit_model::acl::Perms;
use keeperkit_model::{
    limits, path, Acl, AclList, EphemeralOwner, Id, NodeKind, SessionId, Stat, StatPersisted, Zxid,
};

use crate::acl::AclTable;
use crate::children::{ChildSet, Gathering, Slot};
use crate::digest::{contribution, digest_path};
use crate::error::TreeError;
use crate::keeper::digest::KeeperDigestState;
use crate::node::{new_blob, AclId, Blob, Fields, Node, NodeId, ACL_FREE, NO_NODE};

/// Hasher for node ids in the children side table: a splitmix64 finaliser, so that
/// the HAMT (which uses both the low and the high bits) sees well-mixed hashes.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(u64::from(n));
    }
}

/// Node id → its children, only for nodes that have children.
pub(crate) type ChildMap =
    GenericHashMap<NodeId, ChildSet, BuildHasherDefault<IdHasher>, DefaultSharedPtr>;

/// The in-memory znode tree with ZooKeeper's exact semantics. See the crate docs.
///
/// `Clone` is O(1): the clone is a consistent, immutable-by-convention view that stays
/// valid while the original keeps changing (and vice versa).
#[derive(Clone)]
pub struct DataTree {
    /// Node store, indexed by [`NodeId`]; free slots are chained from `free_head`.
    pub(crate) nodes: Vector<Node>,
    pub(crate) free_head: NodeId,
    /// Number of live nodes.
    pub(crate) live: usize,
    /// The root's id, [`NO_NODE`] in an empty tree.
    pub(crate) root: NodeId,
    pub(crate) children: ChildMap,
    pub(crate) acls: AclTable,
    /// Session id → negotiated timeout (ms).
    pub(crate) sessions: OrdMap<i64, i32>,
    /// (owner session, path) for every ephemeral node, whether or not the owner is in
    /// the session map.
    pub(crate) ephemerals: OrdSet<(i64, String)>,
    /// Running digest: wrapping sum of every node's digest term.
    pub(crate) digest: u64,
    pub(crate) last_zxid: Zxid,
    /// The zxid last set by [`DataTree::set_last_processed_zxid`] (a loaded snapshot's):
    /// Keeper accepts one entry with a zxid not above it (`preprocessRequest`).
    pub(crate) loaded_zxid: Zxid,
    /// Keeper's running SipHash tree digest, when enabled (`keeper/digest.rs`).
    pub(crate) kd: Option<KeeperDigestState>,
    /// Keeper's `session_id_counter`: the next id a SessionID request gets.
    pub(crate) session_id_counter: i64,
    /// Keeper's per-session auth ids (`committed_session_and_auth`), in the order added.
    pub(crate) auths: OrdMap<i64, Vec<Id>>,
    /// Shared blob parked in free slots (ACL id [`ACL_FREE`]).
    pub(crate) free_blob: Blob,
    /// Where the last loaded node was (a loading accelerator; not part of the state).
    pub(crate) cursor: LoadCursor,
}

/// The path of the last node loaded and the ids of its ancestors, so that loading in
/// pre-order (what every snapshot does) finds each parent without walking the path.
///
/// Ids are only valid while no node is removed: every removal path clears it, and a
/// clone starts without one (cloning stays O(1)).
///
/// In a [`BulkLoader`]'s tree, a node on the chain that had no children when its first
/// child arrived through the chain gathers its children unsorted ([`Gathering`], in
/// `open`) instead of putting them in the children map; they are sorted into its set
/// when the chain leaves the node, before any lookup that does not go through the
/// chain, and when the loader finishes.
pub(crate) struct LoadCursor {
    /// Path of the last loaded node (`""` for the root).
    path: String,
    /// `(end of the component in path, node id)` for the root (end 0) and each
    /// ancestor-or-self of the last loaded node.
    chain: Vec<(usize, NodeId)>,
    /// Whether children are gathered ([`BulkLoader`] only).
    bulk: bool,
    /// The chain entries gathering children: `(index in chain, children so far)`, by
    /// increasing index. Their children are in no set yet.
    open: Vec<(usize, Gathering)>,
    /// Emptied gatherings, their memory kept for the next nodes (at most
    /// [`SPARE_GATHERINGS`]).
    spare: Vec<Gathering>,
    /// The ACL id the last loaded node got (a hint for the next, which nearly always
    /// has the same list).
    last_acl: AclId,
}

impl Default for LoadCursor {
    fn default() -> LoadCursor {
        LoadCursor {
            path: String::new(),
            chain: Vec::new(),
            bulk: false,
            open: Vec::new(),
            spare: Vec::new(),
            last_acl: ACL_FREE,
        }
    }
}

impl Clone for LoadCursor {
    fn clone(&self) -> LoadCursor {
        // Only a bulk loader's tree gathers children, and it is never cloned.
        debug_assert!(self.open.is_empty(), "clone of a tree with gathered children");
        LoadCursor::default()
    }
}

impl LoadCursor {
    pub(crate) fn clear(&mut self) {
        // Gathered children are in no set: dropping them would lose nodes (callers
        // seal them first, DataTree::seal_gathered).
        assert!(self.open.is_empty(), "load cursor cleared with children gathered");
        self.path.clear();
        self.chain.clear();
    }

    /// The children gathered by chain entry `i`, if it gathers.
    fn gathering(&self, i: usize) -> Option<&Gathering> {
        self.open.last().filter(|(at, _)| *at == i).map(|(_, g)| g)
    }

    /// The id of `parent_path` (`""` = root) if it is on the chain, and its index.
    fn find(&self, parent_path: &str) -> Option<usize> {
        let end = parent_path.len();
        let i = self.chain.binary_search_by_key(&end, |&(e, _)| e).ok()?;
        (self.path.as_bytes()[..end] == *parent_path.as_bytes()).then_some(i)
    }

    /// Records that `id` was loaded at `path`, a child of chain entry `parent`.
    fn descend(&mut self, parent: usize, name: &str, id: NodeId) {
        self.chain.truncate(parent + 1);
        self.path.truncate(self.chain[parent].0);
        self.path.push('/');
        self.path.push_str(name);
        self.chain.push((self.path.len(), id));
    }

    /// Restarts the chain at the root.
    fn reset(&mut self, root: NodeId) {
        self.clear();
        self.chain.push((0, root));
    }
}

/// Emptied [`Gathering`]s a load cursor keeps for reuse: one per level that gathers at
/// a time is enough for the common shapes.
const SPARE_GATHERINGS: usize = 4;

/// One live session, as [`DataTree::sessions`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id.
    pub id: SessionId,
    /// Negotiated timeout in ms.
    pub timeout_ms: i32,
    /// Number of ephemeral nodes it owns.
    pub ephemerals: usize,
}

/// A borrowed view of one node.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    pub(crate) tree: &'a DataTree,
    pub(crate) id: NodeId,
    pub(crate) node: &'a Node,
    pub(crate) kids: Kids<'a>,
}

/// What a [`NodeRef`] knows of its node's children.
#[derive(Clone, Copy)]
pub(crate) enum Kids<'a> {
    /// Nothing yet: looked up in the children map when asked.
    Lookup,
    /// The node's child set (`None`: no children), found by the walk that made the ref.
    Known(Option<&'a ChildSet>),
}

/// ZooKeeper's client cversion: `2 * stored - numChildren`, in Java `int` arithmetic.
#[inline]
pub(crate) fn client_cversion(seq: i32, num_children: usize) -> i32 {
    seq.wrapping_mul(2).wrapping_sub(count_i32(num_children))
}

/// A count as the `int` ZooKeeper reports (saturating; counts never get near it).
#[inline]
pub(crate) fn count_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Whether a stored owner makes the node ephemeral (indexed under its session).
#[inline]
pub(crate) fn session_owner(owner: i64) -> Option<i64> {
    match EphemeralOwner::decode(owner) {
        EphemeralOwner::Session(s) => Some(s),
        _ => None,
    }
}

/// The path Keeper hashes for a node: `/` for the root (`""` or `"/"`), else as is.
#[inline]
pub(crate) fn keeper_path(path: &str) -> &[u8] {
    if path.is_empty() {
        b"/"
    } else {
        path.as_bytes()
    }
}

/// Splits a non-root path into (parent path, name); the parent of `/a` is `""` (the
/// root, as ZooKeeper names it). `None` when the path is not `/`-prefixed or its last
/// component is empty.
pub(crate) fn split(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with('/') {
        return None;
    }
    let i = path.rfind('/')?;
    let (parent, name) = (&path[..i], &path[i + 1..]);
    if name.is_empty() {
        return None;
    }
    Some((parent, name))
}

/// The name bytes of a node as `&str` (names are cut from `&str` paths, so always UTF-8).
#[inline]
pub(crate) fn name_str(name: &[u8]) -> &str {
    let name = std::str::from_utf8(name);
    debug_assert!(name.is_ok());
    name.unwrap_or("\u{fffd}")
}

/// Checks a path given to the loaders: `/`-prefixed, no empty component, bounded.
fn validate_loaded(p: &str) -> Result<(), TreeError> {
    let invalid = |reason| Err(TreeError::InvalidPath { path: p.to_owned(), reason });
    if path::deeper_than(p, limits::TREE_DEPTH_MAX) {
        return Err(TreeError::TooDeep { path: p.to_owned() });
    }
    if p.len() > limits::PATH_LEN_MAX {
        return invalid("longer than PATH_LEN_MAX");
    }
    if !p.starts_with('/') {
        return invalid("path must start with /");
    }
    if p.ends_with('/') {
        return invalid("path must not end with /");
    }
    if p.contains("//") {
        return invalid("empty node name");
    }
    Ok(())
}

impl Default for DataTree {
    fn default() -> DataTree {
        DataTree::new()
    }
}

impl fmt::Debug for DataTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataTree")
            .field("nodes", &self.live)
            .field("sessions", &self.sessions.len())
            .field("ephemerals", &self.ephemerals.len())
            .field("acl_lists", &self.acls.len())
            .field("last_processed_zxid", &self.last_zxid)
            .field("digest", &format_args!("{:#018x}", self.digest))
            .finish()
    }
}

impl DataTree {
    /// The tree of a freshly started ZooKeeper: the root, `/zookeeper`,
    /// `/zookeeper/quota` and `/zookeeper/config` (ACL `world:anyone` READ, aversion
    /// −1), all with empty data and all-zero stats.
    pub fn new() -> DataTree {
        let mut t = DataTree::empty();
        let open = Acl::open_unsafe();
        let zero = StatPersisted::default();
        let read_only = vec![Acl { perms: Perms::READ, id: Id::anyone() }];
        let config = StatPersisted { aversion: -1, ..zero };
        for (p, acl, stat) in [
            ("/", &open, zero),
            ("/zookeeper", &open, zero),
            ("/zookeeper/quota", &open, zero),
            ("/zookeeper/config", &read_only, config),
        ] {
            if let Err(e) = t.insert_loaded(p, Some(b""), acl, stat) {
                unreachable!("built-in node {p}: {e}");
            }
        }
        t
    }

    /// A tree with no nodes at all, not even the root: the starting point for loading
    /// a snapshot with [`DataTree::insert_loaded`].
    pub fn empty() -> DataTree {
        DataTree {
            nodes: Vector::new(),
            free_head: NO_NODE,
            live: 0,
            root: NO_NODE,
            children: ChildMap::default(),
            acls: AclTable::default(),
            sessions: OrdMap::new(),
            ephemerals: OrdSet::new(),
            digest: 0,
            last_zxid: Zxid::ZERO,
            loaded_zxid: Zxid::ZERO,
            kd: None,
            session_id_counter: 1,
            auths: OrdMap::new(),
            free_blob: new_blob(ACL_FREE, None),
            cursor: LoadCursor::default(),
        }
    }

    // ----- loading ------------------------------------------------------------------

    /// Adds a node read from a ZooKeeper snapshot (stored stat). `path` is `""` or `"/"`
    /// for the root; anything else must be `/`-prefixed without empty components, and
    /// its parent must be present (snapshots list parents first).
    ///
    /// The node's `seq` is `stat.cversion`; its client cversion is `2 * seq -
    /// numChildren`, recomputed as its children arrive. Ephemeral nodes are indexed
    /// under their owner; the digest is updated. Inserting the root when it exists
    /// replaces its data, stat and ACL (children stay).
    pub fn insert_loaded(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        stat: StatPersisted,
    ) -> Result<(), TreeError> {
        let f = Fields {
            czxid: stat.czxid,
            mzxid: stat.mzxid,
            pzxid: stat.pzxid,
            ctime: stat.ctime,
            mtime: stat.mtime,
            owner: stat.ephemeral_owner,
            version: stat.version,
            cversion: 0,
            aversion: stat.aversion,
            seq: stat.cversion,
        };
        self.load(path, data, acl, f, true)
    }

    /// Adds a node from a dialect that stores the client view (ClickHouse Keeper,
    /// native): `stat.cversion` is taken as is and never recomputed from `seq` while
    /// loading; `seq` is the per-parent sequence counter; `owner_raw` the stored owner
    /// in ZooKeeper's encoding (`stat.ephemeral_owner`, `data_length` and
    /// `num_children` are ignored). Otherwise as [`DataTree::insert_loaded`].
    ///
    /// Don't mix the two loaders in one tree: a node loaded with
    /// [`DataTree::insert_loaded`] re-derives its parent's client cversion from the
    /// parent's `seq`; and ZooKeeper txns applied later ([`DataTree::apply`]) re-derive
    /// the client cversion of every parent whose children they change.
    pub fn insert_loaded_full(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        stat: &Stat,
        seq: i32,
        owner_raw: i64,
    ) -> Result<(), TreeError> {
        let f = Fields {
            czxid: stat.czxid,
            mzxid: stat.mzxid,
            pzxid: stat.pzxid,
            ctime: stat.ctime,
            mtime: stat.mtime,
            owner: owner_raw,
            version: stat.version,
            cversion: stat.cversion,
            aversion: stat.aversion,
            seq,
        };
        self.load(path, data, acl, f, false)
    }

    /// Shared loader; `zk` = derive the client cversion from `seq` (for this node and,
    /// as children arrive, for its parent).
    fn load(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mut f: Fields,
        zk: bool,
    ) -> Result<(), TreeError> {
        if path.is_empty() || path == "/" {
            self.load_root(data, acl, f, zk);
            return Ok(());
        }
        validate_loaded(path)?;
        let Some((parent_path, name)) = split(path) else {
            return Err(TreeError::InvalidPath { path: path.to_owned(), reason: "no name" });
        };
        let (parent, at) = match self.cursor.find(parent_path) {
            Some(i) => {
                // Entries below the parent are left: their children are complete.
                self.seal_gathered(i + 1);
                (self.cursor.chain[i].1, Some(i))
            }
            None => {
                // The lookup goes through the children sets: all must be sealed.
                self.seal_gathered(0);
                match self.lookup(parent_path) {
                    Some(id) => (id, None),
                    None => return Err(TreeError::NoParent { path: path.to_owned() }),
                }
            }
        };
        let gather = at.is_some_and(|i| self.gathers(i, parent, name.as_bytes()));
        let slot = if gather {
            None
        } else {
            let Ok(slot) = self.vacancy(parent, name.as_bytes()) else {
                return Err(TreeError::Exists { path: path.to_owned() });
            };
            slot
        };
        if zk {
            f.cversion = client_cversion(f.seq, 0);
        }
        let acl = self.acls.intern_hinted(self.cursor.last_acl, acl);
        self.cursor.last_acl = acl;
        let id = if gather {
            let id = self.alloc(Node { f, blob: new_blob(acl, data) });
            self.attach(id, path);
            match self.cursor.open.last_mut() {
                Some((_, g)) => g.push(id, name.as_bytes()),
                None => unreachable!("gathering parent left the chain"),
            }
            id
        } else {
            self.add_node(parent, slot, name, path, data, acl, f)
        };
        match at {
            Some(i) => self.cursor.descend(i, name, id),
            // Off the chain: restart it at the new node's parent.
            None => self.cursor.clear(),
        }
        if self.cursor.chain.is_empty() {
            self.restart_cursor(parent_path, name, id);
        }
        if zk && gather {
            // The parent's client cversion is derived when its set is built.
            if let Some((_, g)) = self.cursor.open.last_mut() {
                g.cversion_count = Some(g.len());
            }
        } else if zk {
            let n = self.num_children(parent);
            // The client cversion is not part of ZooKeeper's digest but is part of
            // Keeper's.
            let kpath = keeper_path(parent_path);
            self.kd_sub(parent, kpath);
            let p = &mut self.nodes[parent as usize];
            p.f.cversion = client_cversion(p.f.seq, n);
            self.kd_add(parent, kpath);
        }
        Ok(())
    }

    /// Whether the child `name` of `parent`, chain entry `i`, is gathered (see
    /// [`LoadCursor`]) rather than inserted in its set: only in a bulk loader's tree,
    /// only for a parent without a set and while the name is certainly new. A name that
    /// may be present ends the gathering: the parent's set is built and the caller
    /// checks in it.
    fn gathers(&mut self, i: usize, parent: NodeId, name: &[u8]) -> bool {
        // The Keeper digest counts a parent's children as they arrive.
        if !self.cursor.bulk || self.kd.is_some() {
            return false;
        }
        if self.cursor.gathering(i).is_none() {
            if self.children.contains_key(&parent) {
                return false;
            }
            let g = self.cursor.spare.pop().unwrap_or_default();
            self.cursor.open.push((i, g));
        }
        let new = self.cursor.open.last_mut().is_some_and(|(_, g)| g.claim(name));
        if !new {
            self.seal_gathered(i);
        }
        new
    }

    /// Sorts the children gathered by chain entries `from..` into their sets.
    fn seal_gathered(&mut self, from: usize) {
        while self.cursor.open.last().is_some_and(|(at, _)| *at >= from) {
            let Some((at, mut g)) = self.cursor.open.pop() else { break };
            let parent = self.cursor.chain[at].1;
            if let Some(n) = g.cversion_count {
                // Gathering only happens without the Keeper digest, which counts
                // the client cversion.
                debug_assert!(self.kd.is_none());
                let p = &mut self.nodes[parent as usize];
                p.f.cversion = client_cversion(p.f.seq, n);
            }
            if let Some(set) = g.take_set() {
                let old = self.children.insert(parent, set);
                assert!(old.is_none(), "node {parent} gathered children and had a set");
            }
            if self.cursor.spare.len() < SPARE_GATHERINGS {
                self.cursor.spare.push(g);
            }
        }
    }

    /// Points the load cursor at `parent_path/name` (= `id`), resolving the ancestors.
    fn restart_cursor(&mut self, parent_path: &str, name: &str, id: NodeId) {
        self.cursor.reset(self.root);
        let mut cur = self.root;
        if let Some(rest) = parent_path.strip_prefix('/') {
            for component in rest.split('/') {
                let Some(next) = self.child(cur, component.as_bytes()) else {
                    self.cursor.clear();
                    return;
                };
                cur = next;
                let last = self.cursor.chain.len() - 1;
                self.cursor.descend(last, component, cur);
            }
        }
        let last = self.cursor.chain.len() - 1;
        self.cursor.descend(last, name, id);
    }

    fn load_root(&mut self, data: Option<&[u8]>, acl: &[Acl], mut f: Fields, zk: bool) {
        // The root's child count (below) must be complete.
        self.seal_gathered(0);
        let acl = self.acls.intern(acl);
        if self.root == NO_NODE {
            if zk {
                f.cversion = client_cversion(f.seq, 0);
            }
            let id = self.alloc(Node { f, blob: new_blob(acl, data) });
            self.attach(id, "/");
            self.root = id;
            self.cursor.reset(id);
            return;
        }
        let root = self.root;
        if zk {
            f.cversion = client_cversion(f.seq, self.num_children(root));
        }
        let old = self.nodes[root as usize].clone();
        self.detach_owner("/", old.f.owner);
        self.modify(root, b"", |n| {
            n.f = f;
            n.blob = new_blob(acl, data);
        });
        self.attach_owner("/", f.owner);
        self.acls.release(old.acl());
    }

    // ----- node store primitives ----------------------------------------------------

    /// Puts a node in a free slot (or a new one); does not link or count it.
    pub(crate) fn alloc(&mut self, node: Node) -> NodeId {
        if self.free_head != NO_NODE {
            let id = self.free_head;
            let old = self.nodes.set(id as usize, node);
            self.free_head = old.next_free();
            id
        } else {
            let id = NodeId::try_from(self.nodes.len()).unwrap_or(NO_NODE);
            assert!(id != NO_NODE, "more than 2^32 - 1 znodes");
            self.nodes.push_back(node);
            id
        }
    }

    /// Counts a freshly allocated node at `path`: digest, ephemeral index, live count.
    fn attach(&mut self, id: NodeId, path: &str) {
        let node = &self.nodes[id as usize];
        let term = contribution(digest_path(path), node);
        let owner = node.f.owner;
        self.digest = self.digest.wrapping_add(u64::from(term));
        self.kd_add(id, keeper_path(path));
        self.attach_owner(path, owner);
        self.live += 1;
    }

    /// Indexes the node at `path` under its owner when it is ephemeral.
    pub(crate) fn attach_owner(&mut self, path: &str, owner: i64) {
        if let Some(s) = session_owner(owner) {
            self.ephemerals.insert((s, path.to_owned()));
        }
    }

    /// Undoes [`DataTree::attach_owner`].
    pub(crate) fn detach_owner(&mut self, path: &str, owner: i64) {
        if let Some(s) = session_owner(owner) {
            self.ephemerals.remove(&(s, path.to_owned()));
        }
    }

    /// Where a child `name` of `parent` would go: `Ok(None)` when `parent` has no
    /// children, `Ok(Some(slot))` in its set, `Err(id)` when it exists.
    pub(crate) fn vacancy(&self, parent: NodeId, name: &[u8]) -> Result<Option<Slot>, NodeId> {
        match self.children.get(&parent) {
            None => Ok(None),
            Some(set) => match set.locate(name) {
                Ok(id) => Err(id),
                Err(slot) => Ok(Some(slot)),
            },
        }
    }

    /// Creates a node under `parent` at `slot` (from [`DataTree::vacancy`], nothing
    /// changed since). `path` is the node's full path (for its digest); `acl` an id
    /// already counted for it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_node(
        &mut self,
        parent: NodeId,
        slot: Option<Slot>,
        name: &str,
        path: &str,
        data: Option<&[u8]>,
        acl: AclId,
        f: Fields,
    ) -> NodeId {
        let id = self.alloc(Node { f, blob: new_blob(acl, data) });
        self.attach(id, path);
        // The parent's child count is part of its Keeper digest term.
        let keeper = self.kd.is_some();
        let parent_kpath = if keeper { split(path).map_or("", |(p, _)| p) } else { "" };
        if keeper {
            self.kd_sub(parent, keeper_path(parent_kpath));
        }
        match (slot, self.children.get_mut(&parent)) {
            (Some(slot), Some(set)) => set.insert_at(slot, id, name.as_bytes()),
            (None, None) => {
                self.children.insert(parent, ChildSet::one(id, name.as_bytes()));
            }
            _ => unreachable!("stale vacancy for a child of node {parent}"),
        }
        if keeper {
            self.kd_add(parent, keeper_path(parent_kpath));
        }
        id
    }

    /// Changes a node in place and updates the digest. `digest_path` is the node's
    /// digest path (`""` for the root).
    pub(crate) fn modify(&mut self, id: NodeId, digest_path: &[u8], f: impl FnOnce(&mut Node)) {
        let kpath = if digest_path.is_empty() { b"/" } else { digest_path };
        self.kd_sub(id, kpath);
        let node = &mut self.nodes[id as usize];
        let old = contribution(digest_path, node);
        f(node);
        let new = contribution(digest_path, node);
        self.digest = self.digest.wrapping_sub(u64::from(old)).wrapping_add(u64::from(new));
        self.kd_add(id, kpath);
    }

    /// Removes the child `name` of `parent` (at `parent_path`, `""` for the root) from
    /// its children set, keeping the parent's Keeper digest term current. The child
    /// itself is not freed.
    pub(crate) fn unlink_child(
        &mut self,
        parent: NodeId,
        parent_path: &str,
        name: &[u8],
    ) -> Option<NodeId> {
        let kpath = keeper_path(parent_path);
        self.kd_sub(parent, kpath);
        let mut removed = None;
        if let Some(set) = self.children.get_mut(&parent) {
            removed = set.remove(name);
            if set.len() == 0 {
                self.children.remove(&parent);
            }
        }
        self.kd_add(parent, kpath);
        removed
    }

    /// Frees `id`, at `path`, and every node below it (iteratively: depth is bounded
    /// only by `TREE_DEPTH_MAX`). The caller has removed `id` from its parent.
    pub(crate) fn drop_subtree(&mut self, id: NodeId, path: &str) {
        let mut stack = vec![(id, path.to_owned())];
        while let Some((id, path)) = stack.pop() {
            // Its Keeper term counts its children: take it out before they go.
            self.kd_sub(id, keeper_path(&path));
            if let Some(set) = self.children.remove(&id) {
                for (c, name) in set.entries() {
                    stack.push((c, format!("{path}/{}", name_str(name))));
                }
            }
            self.free(id, &path);
        }
    }

    /// Returns the slot of the node at `path` to the free list, releasing what it
    /// counted (its Keeper digest term was taken out by the caller).
    fn free(&mut self, id: NodeId, path: &str) {
        // The load cursor may name this id.
        self.cursor.clear();
        let slot = Node::free(self.free_head, self.free_blob.clone());
        let node = self.nodes.set(id as usize, slot);
        debug_assert!(!node.is_free(), "double free of node {id}");
        self.free_head = id;
        let term = contribution(digest_path(path), &node);
        self.digest = self.digest.wrapping_sub(u64::from(term));
        self.acls.release(node.acl());
        self.detach_owner(path, node.f.owner);
        self.live -= 1;
    }

    // ----- lookups ------------------------------------------------------------------

    /// The node at `path`: `""` and `"/"` are the root; otherwise `/`-separated
    /// non-empty names.
    pub(crate) fn lookup(&self, path: &str) -> Option<NodeId> {
        if self.root == NO_NODE {
            return None;
        }
        if path.is_empty() || path == "/" {
            return Some(self.root);
        }
        let rest = path.strip_prefix('/')?;
        let mut cur = self.root;
        for name in rest.split('/') {
            if name.is_empty() {
                return None;
            }
            cur = self.child(cur, name.as_bytes())?;
        }
        Some(cur)
    }

    /// The child of `parent` named `name`.
    #[inline]
    pub(crate) fn child(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        self.children.get(&parent)?.find(name)
    }

    /// Number of children of `id`.
    #[inline]
    pub(crate) fn num_children(&self, id: NodeId) -> usize {
        self.children.get(&id).map_or(0, ChildSet::len)
    }

    pub(crate) fn node_ref(&self, id: NodeId) -> NodeRef<'_> {
        NodeRef { tree: self, id, node: &self.nodes[id as usize], kids: Kids::Lookup }
    }

    // ----- public queries -----------------------------------------------------------

    /// The node at `path` (`"/"` or `""` for the root).
    pub fn get(&self, path: &str) -> Option<NodeRef<'_>> {
        self.lookup(path).map(|id| self.node_ref(id))
    }

    /// The names of the children of the node at `path`, sorted by name bytes.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        let id = self.lookup(path)?;
        let names = match self.children.get(&id) {
            None => Vec::new(),
            Some(set) => set.entries().map(|(_, n)| name_str(n).to_owned()).collect(),
        };
        Some(names)
    }

    /// Number of nodes (the root and the built-in nodes included).
    pub fn node_count(&self) -> usize {
        self.live
    }

    /// The highest zxid applied (ZooKeeper's `lastProcessedZxid`).
    pub fn last_processed_zxid(&self) -> Zxid {
        self.last_zxid
    }

    /// Sets `lastProcessedZxid` (after loading a snapshot: the zxid in its name).
    pub fn set_last_processed_zxid(&mut self, z: Zxid) {
        self.last_zxid = z;
        self.loaded_zxid = z;
    }

    /// The running tree digest (docs/formats/zookeeper.md, "Tree digest"), in O(1).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Every distinct ACL list in use by some node.
    pub fn acl_lists(&self) -> Vec<AclList> {
        self.acls.lists()
    }

    /// Every ACL list in use with its id ([`NodeRef::acl_id`]), ascending by id.
    pub fn acl_table(&self) -> Vec<(u32, &AclList)> {
        self.acls.table()
    }

    // ----- sessions -----------------------------------------------------------------

    /// Adds (or updates the timeout of) a session, as loading a snapshot's session map
    /// or a `createSession` txn does.
    pub fn add_session(&mut self, id: SessionId, timeout_ms: i32) {
        self.sessions.insert(id.0, timeout_ms);
    }

    /// Removes a session from the session map; its ephemeral nodes stay (see
    /// [`DataTree::remove_orphan_ephemerals`]). Returns whether it was there.
    pub fn remove_session(&mut self, id: SessionId) -> bool {
        self.sessions.remove(&id.0).is_some()
    }

    /// Live sessions, sorted by id, with their ephemeral counts.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions
            .iter()
            .map(|(&id, &timeout_ms)| SessionInfo {
                id: SessionId(id),
                timeout_ms,
                ephemerals: self.owned_by(id).count(),
            })
            .collect()
    }

    /// The timeout of a live session.
    pub fn session_timeout(&self, id: SessionId) -> Option<i32> {
        self.sessions.get(&id.0).copied()
    }

    /// Paths of the ephemeral nodes owned by `id` (live session or not), sorted.
    pub fn ephemerals(&self, id: SessionId) -> Vec<String> {
        self.owned_by(id.0).cloned().collect()
    }

    /// Paths of the ephemerals of `owner`, sorted.
    pub(crate) fn owned_by(&self, owner: i64) -> impl Iterator<Item = &String> + '_ {
        self.ephemerals
            .range((owner, String::new())..)
            .take_while(move |(o, _)| *o == owner)
            .map(|(_, p)| p)
    }
}

/// Loads a snapshot into a tree faster than [`DataTree::insert_loaded`] one node at a
/// time: the children of a node are gathered unsorted while the nodes of its subtree
/// arrive (snapshots list each node's subtree right after it) and sorted once when the
/// load moves past it. The tree is only handed out by [`BulkLoader::finish`], which
/// sorts what is still gathered, so no query ever sees a set being gathered. The client
/// cversion of such a node (ZooKeeper stats, [`DataTree::insert_loaded`]) is derived
/// then too, once, from the count of its children.
///
/// The result is exactly what the same calls on the tree itself produce: same nodes,
/// stats, digest and errors ([`TreeError::Exists`] for a duplicate name, at the node
/// that repeats it).
pub struct BulkLoader {
    tree: DataTree,
}

impl BulkLoader {
    /// Loads into `tree` (usually [`DataTree::empty`]).
    pub fn new(mut tree: DataTree) -> BulkLoader {
        tree.cursor.bulk = true;
        BulkLoader { tree }
    }

    /// [`DataTree::insert_loaded`].
    pub fn insert_loaded(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        stat: StatPersisted,
    ) -> Result<(), TreeError> {
        self.tree.insert_loaded(path, data, acl, stat)
    }

    /// [`DataTree::insert_loaded_full`].
    pub fn insert_loaded_full(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        stat: &Stat,
        seq: i32,
        owner_raw: i64,
    ) -> Result<(), TreeError> {
        self.tree.insert_loaded_full(path, data, acl, stat, seq, owner_raw)
    }

    /// [`DataTree::add_session`].
    pub fn add_session(&mut self, id: SessionId, timeout_ms: i32) {
        self.tree.add_session(id, timeout_ms);
    }

    /// Number of nodes loaded so far.
    pub fn node_count(&self) -> usize {
        self.tree.live
    }

    /// The loaded tree, every child set sorted.
    pub fn finish(mut self) -> DataTree {
        self.tree.seal_gathered(0);
        self.tree.cursor.bulk = false;
        self.tree.cursor.spare = Vec::new();
        self.tree
    }
}

impl fmt::Debug for BulkLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkLoader").field("nodes", &self.tree.live).finish()
    }
}

impl<'a> NodeRef<'a> {
    /// The data; `None` when null (distinct from empty).
    pub fn data(&self) -> Option<&'a [u8]> {
        self.node.data()
    }

    /// The stat as a ZooKeeper client sees it (`getData`, `exists`): client cversion,
    /// client ephemeralOwner (0 for containers and TTL nodes), dataLength, numChildren.
    pub fn stat(&self) -> Stat {
        let f = &self.node.f;
        Stat {
            czxid: f.czxid,
            mzxid: f.mzxid,
            ctime: f.ctime,
            mtime: f.mtime,
            version: f.version,
            cversion: f.cversion,
            aversion: f.aversion,
            ephemeral_owner: self.owner().client_value(),
            data_length: count_i32(self.node.data_len()),
            num_children: count_i32(self.num_children()),
            pzxid: f.pzxid,
        }
    }

    /// The stat as ZooKeeper stores it (`StatPersisted`): cversion = [`NodeRef::seq`],
    /// ephemeralOwner raw.
    pub fn stored_stat(&self) -> StatPersisted {
        let f = &self.node.f;
        StatPersisted {
            czxid: f.czxid,
            mzxid: f.mzxid,
            ctime: f.ctime,
            mtime: f.mtime,
            version: f.version,
            cversion: f.seq,
            aversion: f.aversion,
            ephemeral_owner: f.owner,
            pzxid: f.pzxid,
        }
    }

    /// ZooKeeper's stored cversion: child creations so far, the next sequential suffix.
    pub fn seq(&self) -> i32 {
        self.node.f.seq
    }

    /// The ACL list.
    pub fn acl(&self) -> &'a AclList {
        self.tree.acls.get(self.node.acl())
    }

    /// The id of the ACL list in the tree's table ([`DataTree::acl_table`]): nodes with
    /// equal lists share it. Ids are only stable while the tree does not change.
    pub fn acl_id(&self) -> u32 {
        self.node.acl()
    }

    /// Persistent, ephemeral, container or TTL.
    pub fn kind(&self) -> NodeKind {
        self.owner().kind()
    }

    /// The decoded stored owner.
    pub fn owner(&self) -> EphemeralOwner {
        EphemeralOwner::decode(self.node.f.owner)
    }

    /// Number of children.
    pub fn num_children(&self) -> usize {
        match self.kids {
            Kids::Known(set) => set.map_or(0, ChildSet::len),
            Kids::Lookup => self.tree.num_children(self.id),
        }
    }
}

impl fmt::Debug for NodeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRef")
            .field("data_len", &self.node.data_len())
            .field("stat", &self.stat())
            .field("seq", &self.seq())
            .field("owner", &self.owner())
            .finish()
    }
}

// Views are handed to snapshot writers on other threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<DataTree>();
};
