//! Executing ClickHouse Keeper log entries on the tree with Keeper's semantics, so that
//! replaying a Keeper changelog after a Keeper snapshot gives the state Keeper has.
//!
//! # What Keeper does with a committed entry
//!
//! Checked against ClickHouse's `src/Coordination/KeeperStateMachine.cpp` (`pre_commit`,
//! `commit`, `parseRequest`, `preprocess`) and `src/Coordination/KeeperStorage.cpp`
//! (the 2024–2025 templated storage: `preprocessRequest`, `processRequest`, the
//! per-request `checkAuth` / `preprocess` / `process`, `getSessionID`); 2026 changes
//! are noted where they differ.
//!
//! - **zxid**: the trailer's zxid, or the log index when it is absent or 0.
//!   `preprocessRequest` refuses (Keeper aborts) a zxid not above the last one,
//!   except that the first entry after loading a snapshot may repeat the snapshot's
//!   zxid; [`DataTree::apply_keeper_entry`] returns
//!   [`KeeperApplyError::ZxidNotIncreasing`] then. Every request that reaches
//!   `processRequest` sets the storage zxid ([`DataTree::last_processed_zxid`]) to its
//!   zxid, failed ones and reads included; SessionID and Reconfig do not (they never
//!   reach the storage's request path).
//! - **time**: the trailer's; Keeper uses the replaying server's clock when an (old,
//!   2021) entry has none, which no replay can reproduce:
//!   [`KeeperExecOptions::fallback_time_ms`] is used instead.
//! - **errors** change nothing (a request's deltas are all-or-nothing), except that
//!   the zxid advances and the session is touched (below).
//! - **sessions**: `processRequest` reads `session_and_timeout[session_id]` for every
//!   request, which registers an unknown session with timeout 0 (2024–2025; the 2026
//!   session manager checks first): [`KeeperExecOptions::register_unknown_sessions`].
//!   SessionID allocates `session_id_counter++` and registers it with its timeout
//!   (`emplace`: an existing entry keeps its timeout). Close removes the session's
//!   ephemerals, the session and its auth ids.
//! - **ACLs** are checked in preprocess (`check_acl` is always true on this path) before
//!   anything else (`checkAuth`): create/createIfNotExists need CREATE on the parent,
//!   remove/removeRecursive DELETE on the parent (and removeRecursive DELETE on every
//!   node of the subtree), set WRITE, setACL ADMIN, check READ (checkNotExists: READ on
//!   the parent), get/list READ, getACL READ or ADMIN; exists, sync, heartbeat, auth
//!   and close none. A node that does not exist, and an empty ACL list, allow
//!   everything; a session with a `super` id may do anything.
//!
//! # Per request (`preprocess` in KeeperStorage.cpp)
//!
//! - **Create / CreateIfNotExists**: parent missing → NoNode; parent ephemeral →
//!   NoChildrenForEphemerals (TTL parent → BadArguments, 2026); sequential
//!   CreateIfNotExists → BadArguments; the name gets the parent's `seq_num` as
//!   `%010d` (C++ `setw(10) << setfill('0')`: a negative counter pads before its sign);
//!   a path in `/keeper` → BadArguments; existing node → NodeExists (CreateIfNotExists:
//!   ok, nothing changes); empty last name → BadArguments; ACL fix-up fails →
//!   InvalidACL. The node gets czxid = mzxid = pzxid = zxid, ctime = mtime = time,
//!   versions 0, owner = the session if ephemeral; the parent's `seq_num` and cversion
//!   go up by one, its pzxid is raised to zxid (never lowered), its numChildren by
//!   one.
//! - **Remove**: a path in `/keeper` → BadArguments; no node → NoNode; version
//!   (−1 = any) ≠ → BadVersion; children → NotEmpty. The parent's cversion goes up by
//!   one and its numChildren down by one; its pzxid does **not** change (Keeper only
//!   raises it for requests restored from a ZooKeeper log).
//! - **RemoveRecursive**: as Remove, but the whole subtree goes if it has at most
//!   `remove_nodes_limit` nodes (else NotEmpty) and the session may DELETE on every
//!   node of it (else NoAuth); the parent changes as for Remove.
//! - **Set**: a path in `/keeper` → BadArguments; NoNode; BadVersion. Data, mtime =
//!   time, mzxid = zxid, version + 1; and the **parent's cversion + 1** (a Keeper
//!   quirk, in every version read).
//! - **SetACL**: a path in `/keeper` → BadArguments; NoNode; aversion ≠ → BadVersion;
//!   fix-up fails → InvalidACL. ACL = the fixed list, aversion + 1, nothing else.
//! - **Check**: NoNode; BadVersion. **CheckNotExists**: the node exists and its
//!   version matches (−1 = any) → NodeExists.
//! - **Multi**: with ACL checks on, every sub-request's ACL is checked first against
//!   the state before the multi; one failure fails the multi with NoAuth (every
//!   sub-request reported Ok). Then the sub-requests run in order, each seeing the
//!   previous ones; the first failure undoes all of them: it reports its own code, the
//!   earlier ones Ok, the later ones RuntimeInconsistency.
//! - **MultiRead**, reads (only logged with `quorum_reads`), Sync, Heartbeat: no change.
//! - **Auth**: scheme `digest` with exactly one `:` in the credentials, else
//!   AuthFailed; the id `user:base64(sha1(user:password))` is added to the session
//!   unless it has it already, or `super` (id empty, always added) when it equals the
//!   super digest.
//! - **Close**: every ephemeral of the session goes, each parent's cversion + 1 and
//!   numChildren − 1 per removed child (pzxid unchanged).
//! - **Reconfig**: changes the cluster configuration, not the tree
//!   (`KeeperStateMachine` handles it outside the storage).
//!
//! # The `/keeper` system node
//!
//! A tree loaded from a Keeper snapshot does not hold `/keeper` (Keeper regenerates it
//! and its data children at startup). Requests see it as Keeper does: `/keeper`,
//! `/keeper/api_version` and `/keeper/feature_flags` exist (empty ACL, version 0) for
//! checks and reads, and any write inside `/keeper` is BadArguments (Keeper refuses
//! it with a LOGICAL_ERROR during its startup phase unless
//! `ignore_system_path_on_startup`: [`KeeperExecOptions::refuse_system_path_writes`]).
//! The root's numChildren in Keeper counts `/keeper`, so removing `/` is NotEmpty.
//!
//! # Deliberate differences from Keeper
//!
//! Only where Keeper corrupts its own state:
//! - Set on `/` in 2024–2025 Keeper applies the parent update to `/` itself from a
//!   stale copy, losing the version bump and leaving a stale data size; the 2026 fix
//!   (no parent update for `/`) is applied.
//! - RemoveRecursive of `/` would delete `/keeper` and the root itself:
//!   BadArguments.
//! - An ephemeral node with children (impossible through Keeper's requests) goes with
//!   its subtree on Close.
//!
//! What the tree cannot represent is a [`KeeperApplyError`], never a panic: paths over
//! `limits::PATH_LEN_MAX` / `TREE_DEPTH_MAX`, session timeouts outside `i32`, auth
//! users that are not UTF-8, session ids that ZooKeeper's owner encoding would read as
//! TTL/container or as no owner (0) for an ephemeral (Keeper lists it under the
//! session, to go on its Close), a create of `//x` (Keeper's parent is `/`, but it keys the node
//! apart from `/x`).

pub(crate) mod auth;
pub(crate) mod digest;

use keeperkit_model::acl::Perms;
use keeperkit_model::keeper::{KeeperLogEntry, KeeperRequest, KeeperStat};
use keeperkit_model::{limits, path, Acl, AclList, EphemeralOwner, ErrorCode, Id, SessionId, Zxid};

use crate::digest::digest_path;
use crate::node::{new_blob, Fields, NodeId};
use crate::tree::{session_owner, DataTree};

pub use auth::keeper_digest_id;

/// Keeper's system subtree.
pub const KEEPER_SYSTEM_PATH: &str = "/keeper";

/// The system nodes Keeper always has (`initializeSystemNodes`, `KeeperContext`):
/// `/keeper` and its data children. (`/keeper/availability_zone` exists only when
/// configured and is not assumed.)
const SYSTEM_NODES: [&str; 3] = ["/keeper", "/keeper/api_version", "/keeper/feature_flags"];

/// How [`DataTree::apply_keeper_entry`] executes entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperExecOptions {
    /// Check ACLs against the session's auth ids (Keeper always does when it commits
    /// a log entry). Default true.
    pub check_acl: bool,
    /// Keeper's `super_digest` setting (`super:base64(sha1(super:password))`): an Auth
    /// whose digest id equals it makes the session `super`. Default none.
    pub super_digest: Option<String>,
    /// `KeeperContext::shouldBlockACL` (2026): ACLs of creates and setACLs are not
    /// stored. Default false.
    pub block_acl: bool,
    /// The time for entries without a time in their trailer (Keeper uses its clock).
    /// Default 0.
    pub fallback_time_ms: i64,
    /// Register the session of every request with timeout 0 when it is unknown, as
    /// 2024–2025 Keeper does (`session_and_timeout[session_id]` in `processRequest`).
    /// Default true.
    pub register_unknown_sessions: bool,
    /// Return [`KeeperApplyError::SystemPath`] for a write inside `/keeper` instead of
    /// BadArguments, as Keeper does while starting up (unless
    /// `ignore_system_path_on_startup`). Default false.
    pub refuse_system_path_writes: bool,
}

impl Default for KeeperExecOptions {
    fn default() -> KeeperExecOptions {
        KeeperExecOptions {
            check_acl: true,
            super_digest: None,
            block_acl: false,
            fallback_time_ms: 0,
            register_unknown_sessions: true,
            refuse_system_path_writes: false,
        }
    }
}

/// What a successful request returned (the parts that matter for replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperResponse {
    /// Done, nothing to report (also every no-op: reads, sync, heartbeat, reconfig).
    Done,
    /// Create / CreateIfNotExists: the path created (for a CreateIfNotExists of an
    /// existing node, the request's path; nothing was created).
    Created {
        /// Path of the node.
        path: String,
    },
    /// SessionID: the id allocated.
    SessionCreated {
        /// The new session id.
        session_id: i64,
    },
    /// Multi / MultiRead: one outcome per sub-request (MultiRead sub-requests may
    /// fail on their own).
    Multi(Vec<KeeperOutcome>),
}

/// The outcome of one Keeper request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperOutcome {
    /// It succeeded.
    Ok(KeeperResponse),
    /// It failed with this code and changed nothing but the zxid and the session's
    /// registration.
    Error(ErrorCode),
    /// A Multi (or MultiRead, on NoAuth) that failed and changed nothing.
    MultiFailed {
        /// The multi response's own error: NoAuth when the ACL check of the whole
        /// multi failed, else Ok (Keeper reports a failed sub-request only in the
        /// per-sub-request codes).
        multi_error: ErrorCode,
        /// Per sub-request: Ok before the failing one, its code, RuntimeInconsistency
        /// after it (all Ok on NoAuth).
        results: Vec<ErrorCode>,
    },
}

impl KeeperOutcome {
    /// Whether the request (every sub-request of a multi) succeeded.
    pub fn is_ok(&self) -> bool {
        match self {
            KeeperOutcome::Ok(KeeperResponse::Multi(subs)) => subs.iter().all(Self::is_ok),
            KeeperOutcome::Ok(_) => true,
            _ => false,
        }
    }
}

/// An entry Keeper would not execute (it aborts), or one the tree cannot represent.
/// The tree is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeeperApplyError {
    /// The zxid does not follow the last one (Keeper: "Got new ZXID ... smaller or
    /// equal to current ZXID. It's a bug", then abort).
    #[error("zxid {zxid} is not above the last processed zxid {last}")]
    ZxidNotIncreasing {
        /// The entry's zxid.
        zxid: i64,
        /// The last processed zxid.
        last: i64,
    },
    /// A write inside `/keeper` while [`KeeperExecOptions::refuse_system_path_writes`]
    /// is set.
    #[error("{path}: write inside Keeper's system path /keeper (Keeper refuses it at startup)")]
    SystemPath {
        /// The path.
        path: String,
    },
    /// Something the tree cannot hold (path limits, a timeout beyond `i32`, ...).
    #[error("cannot represent in the tree: {0}")]
    Unrepresentable(String),
    /// A request Keeper never logs in this shape (e.g. a session request inside a
    /// multi).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// The result of comparing an entry's digest with the tree's
/// ([`DataTree::check_entry_digest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestCheck {
    /// Not compared: the entry has no digest (version 0), or the tree's Keeper digest is
    /// off or for another version (Keeper's `checkDigest` passes then too).
    NotChecked,
    /// Equal.
    Match(u64),
    /// Different (Keeper terminates: "Digest for nodes is not matching").
    Mismatch {
        /// The entry's digest.
        stored: u64,
        /// The tree's.
        computed: u64,
    },
}

/// A per-request failure: a Keeper error code (a normal outcome) or a fatal one.
enum Fail {
    Code(ErrorCode),
    Fatal(KeeperApplyError),
}

impl From<ErrorCode> for Fail {
    fn from(e: ErrorCode) -> Fail {
        Fail::Code(e)
    }
}

impl From<KeeperApplyError> for Fail {
    fn from(e: KeeperApplyError) -> Fail {
        Fail::Fatal(e)
    }
}

type Step<T> = Result<T, Fail>;

/// What every request of one entry shares.
struct Ctx<'a> {
    session: i64,
    zxid: i64,
    time: i64,
    opts: &'a KeeperExecOptions,
}

/// Keeper's `parentNodePath`: everything before the last `/`, `/` when that is the
/// first character, the path itself when it has no `/` (such paths never exist).
fn keeper_parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => path,
    }
}

/// `matchPath(path, "/keeper") != NOT_MATCH`: `/keeper` itself or below it.
fn is_system_path(path: &str) -> bool {
    path.strip_prefix(KEEPER_SYSTEM_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `std::setw(10) << std::setfill('0') << n`.
fn sequence_suffix(n: i32) -> String {
    format!("{:0>10}", n.to_string())
}

/// The ACL list stored for Keeper's "no ACL" (ACL id 0), as the Keeper snapshot
/// loader stores it: `world:anyone` with every permission.
fn open_acl() -> AclList {
    vec![Acl { perms: Perms::ALL, id: Id::anyone() }]
}

/// The permission each request needs and on which path (`checkAuth`); `None` for
/// requests without a check.
fn required_perm(req: &KeeperRequest) -> Option<(&str, Perms)> {
    match req {
        KeeperRequest::Create(c) | KeeperRequest::CreateIfNotExists(c) => {
            Some((keeper_parent(&c.path), Perms::CREATE))
        }
        KeeperRequest::Remove { path, .. } | KeeperRequest::RemoveRecursive { path, .. } => {
            Some((keeper_parent(path), Perms::DELETE))
        }
        KeeperRequest::Set { path, .. } => Some((path, Perms::WRITE)),
        KeeperRequest::SetAcl { path, .. } => Some((path, Perms::ADMIN)),
        KeeperRequest::Check { path, .. } => Some((path, Perms::READ)),
        KeeperRequest::CheckNotExists { path, .. } => Some((keeper_parent(path), Perms::READ)),
        KeeperRequest::Get { path, .. }
        | KeeperRequest::List { path, .. }
        | KeeperRequest::SimpleList { path, .. }
        | KeeperRequest::FilteredList { path, .. } => Some((path, Perms::READ)),
        KeeperRequest::GetAcl { path } => Some((path, Perms(Perms::ADMIN.0 | Perms::READ.0))),
        _ => None,
    }
}

impl DataTree {
    // ----- sessions and auth ----------------------------------------------------------

    /// Keeper's `session_id_counter`: the id the next SessionID request gets (1 in a
    /// new tree).
    pub fn session_id_counter(&self) -> i64 {
        self.session_id_counter
    }

    /// Sets the session id counter (after loading a Keeper snapshot: its header's).
    pub fn set_session_id_counter(&mut self, n: i64) {
        self.session_id_counter = n;
    }

    /// Adds an auth id to a session's list (after loading a Keeper snapshot), in
    /// order, as Keeper does (no deduplication here).
    pub fn add_session_auth(&mut self, session: SessionId, id: Id) {
        self.auths.entry(session.0).or_default().push(id);
    }

    /// The auth ids of a session, in the order added (`digest` ids are
    /// `user:base64(sha1(user:password))`; a super session has `super` with an empty
    /// id).
    pub fn session_auths(&self, session: SessionId) -> Vec<Id> {
        self.auths.get(&session.0).cloned().unwrap_or_default()
    }

    fn auth_ids(&self, session: i64) -> &[Id] {
        self.auths.get(&session).map_or(&[], Vec::as_slice)
    }

    // ----- digest ---------------------------------------------------------------------

    /// Keeper's digest of a tree that stands for a whole Keeper storage: the running
    /// digest plus Keeper's `/keeper` system node (empty, zeroed stats) and its place
    /// in the root's numChildren, when the tree does not hold `/keeper` itself (a tree
    /// loaded from a Keeper snapshot). `None` unless the Keeper digest is enabled.
    pub fn keeper_digest_with_system_node(&self) -> Option<u64> {
        let kd = self.kd?;
        if self.lookup(KEEPER_SYSTEM_PATH).is_some() || self.root == crate::node::NO_NODE {
            return Some(kd.value);
        }
        let root = &self.nodes[self.root as usize];
        let n = self.num_children(self.root);
        let as_tree = digest::keeper_term(kd.version, b"/", root, n);
        let with_system = digest::keeper_term(kd.version, b"/", root, n + 1);
        let system = keeperkit_model::keeper::node_digest(
            kd.version,
            KEEPER_SYSTEM_PATH.as_bytes(),
            b"",
            &KeeperStat::default(),
            None,
        );
        Some(kd.value.wrapping_sub(as_tree).wrapping_add(with_system).wrapping_add(system))
    }

    /// Compares the digest an entry carries (its trailer, written by the leader after
    /// executing it) with [`DataTree::keeper_digest_with_system_node`], the way
    /// Keeper's `checkDigest` does: only when the entry has a digest version other
    /// than 0 and the tree's digest is for that version. Call it after
    /// [`DataTree::apply_keeper_entry`].
    pub fn check_entry_digest(&self, entry: &KeeperLogEntry) -> DigestCheck {
        let Some(zd) = entry.trailer.zxid_digest else { return DigestCheck::NotChecked };
        let (Some(stored), Some(kd)) = (zd.digest, self.kd) else {
            return DigestCheck::NotChecked;
        };
        if zd.digest_version == 0 || zd.digest_version != kd.version {
            return DigestCheck::NotChecked;
        }
        match self.keeper_digest_with_system_node() {
            Some(computed) if computed == stored => DigestCheck::Match(computed),
            Some(computed) => DigestCheck::Mismatch { stored, computed },
            None => DigestCheck::NotChecked,
        }
    }

    // ----- applying -------------------------------------------------------------------

    /// Applies one Keeper log entry (an `app_log` blob, decoded) that sits at Raft log
    /// index `log_index`, with Keeper's semantics (module docs of `keeper`). Per-request
    /// failures are outcomes ([`KeeperOutcome::Error`], [`KeeperOutcome::MultiFailed`])
    /// that change nothing but the zxid and the session's registration; an `Err` means
    /// Keeper would abort or the tree cannot hold the result, and nothing changed.
    ///
    /// The running Keeper digest (if enabled) follows every change; compare it with
    /// the entry's using [`DataTree::check_entry_digest`].
    pub fn apply_keeper_entry(
        &mut self,
        entry: &KeeperLogEntry,
        log_index: u64,
        opts: &KeeperExecOptions,
    ) -> Result<KeeperOutcome, KeeperApplyError> {
        let zxid = match entry.zxid() {
            Some(z) if z != 0 => z,
            _ => i64::try_from(log_index).map_err(|_| {
                KeeperApplyError::Unrepresentable(format!("log index {log_index} as a zxid"))
            })?,
        };
        let ctx = Ctx {
            session: entry.session_id,
            zxid,
            time: entry.trailer.time_ms.unwrap_or(opts.fallback_time_ms),
            opts,
        };
        let req = &entry.request;
        match req {
            KeeperRequest::SessionId { session_timeout_ms, .. } => {
                return self.keeper_new_session(*session_timeout_ms);
            }
            KeeperRequest::Reconfig { .. } => return Ok(KeeperOutcome::Ok(KeeperResponse::Done)),
            _ => {}
        }
        let last = self.last_zxid.0;
        if zxid < last || (zxid == last && last != self.loaded_zxid.0) {
            return Err(KeeperApplyError::ZxidNotIncreasing { zxid, last });
        }
        let outcome = match req {
            KeeperRequest::Close => {
                self.keeper_close(&ctx);
                KeeperOutcome::Ok(KeeperResponse::Done)
            }
            KeeperRequest::Multi(subs) => self.keeper_multi(subs, &ctx)?,
            KeeperRequest::MultiRead(subs) => self.keeper_multi_read(subs, &ctx),
            _ => {
                if opts.check_acl && !self.keeper_check_auth(req, ctx.session) {
                    KeeperOutcome::Error(ErrorCode::NoAuth)
                } else {
                    match self.keeper_request(req, &ctx) {
                        Ok(r) => KeeperOutcome::Ok(r),
                        Err(Fail::Code(e)) => KeeperOutcome::Error(e),
                        Err(Fail::Fatal(e)) => return Err(e),
                    }
                }
            }
        };
        if opts.register_unknown_sessions && !matches!(req, KeeperRequest::Close) {
            self.sessions.entry(ctx.session).or_insert(0);
        }
        self.last_zxid = Zxid(zxid);
        Ok(outcome)
    }

    /// SessionID (`KeeperStorageBase::getSessionID`): the counter's value becomes a
    /// session with the requested timeout.
    fn keeper_new_session(&mut self, timeout_ms: i64) -> Result<KeeperOutcome, KeeperApplyError> {
        let timeout = i32::try_from(timeout_ms).map_err(|_| {
            KeeperApplyError::Unrepresentable(format!("session timeout {timeout_ms} ms"))
        })?;
        let id = self.session_id_counter;
        let next = id.checked_add(1).ok_or_else(|| {
            KeeperApplyError::Unrepresentable("session id counter overflow".into())
        })?;
        self.session_id_counter = next;
        self.sessions.entry(id).or_insert(timeout);
        Ok(KeeperOutcome::Ok(KeeperResponse::SessionCreated { session_id: id }))
    }

    /// The node at `path` as Keeper finds it (`""` is not the root there).
    fn keeper_lookup(&self, path: &str) -> Option<NodeId> {
        if path.is_empty() {
            None
        } else {
            self.lookup(path)
        }
    }

    /// Whether Keeper has a node at `path`: in the tree, or one of its system nodes.
    fn keeper_exists(&self, path: &str) -> Option<Option<NodeId>> {
        match self.keeper_lookup(path) {
            Some(id) => Some(Some(id)),
            None if SYSTEM_NODES.contains(&path) => Some(None),
            None => None,
        }
    }

    /// `checkACL(path, perm, session)`.
    fn keeper_check_acl(&self, path: &str, perm: Perms, session: i64) -> bool {
        let Some(id) = self.keeper_lookup(path) else { return true };
        let acl = self.acls.get(self.nodes[id as usize].acl());
        auth::check_acl(acl, perm, self.auth_ids(session))
    }

    /// `checkAuth` of one request (a multi: every sub-request).
    fn keeper_check_auth(&self, req: &KeeperRequest, session: i64) -> bool {
        match req {
            KeeperRequest::Multi(subs) | KeeperRequest::MultiRead(subs) => {
                subs.iter().all(|s| self.keeper_check_auth(s, session))
            }
            _ => required_perm(req).is_none_or(|(p, perm)| self.keeper_check_acl(p, perm, session)),
        }
    }

    /// A write inside `/keeper`: BadArguments, or fatal when asked.
    fn system_path_write(&self, path: &str, opts: &KeeperExecOptions) -> Fail {
        if opts.refuse_system_path_writes {
            Fail::Fatal(KeeperApplyError::SystemPath { path: path.to_owned() })
        } else {
            Fail::Code(ErrorCode::BadArguments)
        }
    }

    /// One request other than SessionID, Reconfig, Close and multis (ACL already
    /// checked). On `Err` nothing changed.
    fn keeper_request(&mut self, req: &KeeperRequest, ctx: &Ctx<'_>) -> Step<KeeperResponse> {
        match req {
            KeeperRequest::Create(c) => self.keeper_create(c, false, ctx),
            KeeperRequest::CreateIfNotExists(c) => self.keeper_create(c, true, ctx),
            KeeperRequest::Remove { path, version } => self.keeper_remove(path, *version, ctx),
            KeeperRequest::RemoveRecursive { path, remove_nodes_limit } => {
                self.keeper_remove_recursive(path, *remove_nodes_limit, ctx)
            }
            KeeperRequest::Set { path, data, version } => {
                self.keeper_set(path, data, *version, ctx)
            }
            KeeperRequest::SetAcl { path, acls, version } => {
                self.keeper_set_acl(path, acls, *version, ctx)
            }
            KeeperRequest::Check { path, version } => {
                let Some(found) = self.keeper_exists(path) else {
                    return Err(ErrorCode::NoNode.into());
                };
                let v = found.map_or(0, |id| self.nodes[id as usize].f.version);
                if *version != -1 && *version != v {
                    return Err(ErrorCode::BadVersion.into());
                }
                Ok(KeeperResponse::Done)
            }
            KeeperRequest::CheckNotExists { path, version } => {
                if let Some(found) = self.keeper_exists(path) {
                    let v = found.map_or(0, |id| self.nodes[id as usize].f.version);
                    if *version == -1 || *version == v {
                        return Err(ErrorCode::NodeExists.into());
                    }
                }
                Ok(KeeperResponse::Done)
            }
            KeeperRequest::Get { path, .. } => {
                // Keeper answers these from its configuration, existing or not.
                const VIRTUAL: [&str; 3] =
                    ["/keeper/feature_flags", "/keeper/config", "/keeper/availability_zone"];
                if VIRTUAL.contains(&path.as_str()) || self.keeper_exists(path).is_some() {
                    Ok(KeeperResponse::Done)
                } else {
                    Err(ErrorCode::NoNode.into())
                }
            }
            KeeperRequest::Exists { path, .. }
            | KeeperRequest::List { path, .. }
            | KeeperRequest::SimpleList { path, .. }
            | KeeperRequest::FilteredList { path, .. }
            | KeeperRequest::GetAcl { path } => match self.keeper_exists(path) {
                Some(_) => Ok(KeeperResponse::Done),
                None => Err(ErrorCode::NoNode.into()),
            },
            KeeperRequest::Sync { .. } | KeeperRequest::Heartbeat => Ok(KeeperResponse::Done),
            KeeperRequest::Auth { scheme, data, .. } => self.keeper_auth(scheme, data, ctx),
            KeeperRequest::Close
            | KeeperRequest::Multi(_)
            | KeeperRequest::MultiRead(_)
            | KeeperRequest::Reconfig { .. }
            | KeeperRequest::SessionId { .. } => Err(Fail::Fatal(KeeperApplyError::Invalid(
                format!("{} where Keeper does not accept it", req.name()),
            ))),
        }
    }

    /// Create / CreateIfNotExists (`preprocess(ZooKeeperCreateRequest)`).
    fn keeper_create(
        &mut self,
        c: &keeperkit_model::keeper::CreateRequest,
        if_not_exists: bool,
        ctx: &Ctx<'_>,
    ) -> Step<KeeperResponse> {
        let parent_path = keeper_parent(&c.path);
        let Some(parent) = self.keeper_exists(parent_path) else {
            return Err(ErrorCode::NoNode.into());
        };
        let Some(parent) = parent else {
            // A system node: every path below it is inside /keeper.
            if c.is_sequential() && if_not_exists {
                return Err(ErrorCode::BadArguments.into());
            }
            return Err(self.system_path_write(&c.path, ctx.opts));
        };
        let pf = self.nodes[parent as usize].f;
        match EphemeralOwner::decode(pf.owner) {
            EphemeralOwner::Session(_) => return Err(ErrorCode::NoChildrenForEphemerals.into()),
            EphemeralOwner::Ttl(_) => return Err(ErrorCode::BadArguments.into()),
            EphemeralOwner::None | EphemeralOwner::Container => {}
        }
        let mut created = c.path.clone();
        if c.is_sequential() {
            if if_not_exists {
                return Err(ErrorCode::BadArguments.into());
            }
            created.push_str(&sequence_suffix(pf.seq));
        }
        if is_system_path(&created) {
            return Err(self.system_path_write(&created, ctx.opts));
        }
        let name_start = created.rfind('/').map_or(created.len(), |i| i + 1);
        if parent_path == "/" && name_start != 1 {
            // `//x`: Keeper's parent is `/` and it keys the node by the full path, apart
            // from `/x`, which is the only node the tree can hold as `/`'s child `x`.
            if name_start == created.len() {
                return Err(ErrorCode::BadArguments.into());
            }
            if auth::fixup_acl(&c.acls, self.auth_ids(ctx.session), ctx.opts.block_acl).is_none() {
                return Err(ErrorCode::InvalidAcl.into());
            }
            return Err(KeeperApplyError::Unrepresentable(format!(
                "{created}: Keeper keeps it apart from {}",
                &created[name_start - 1..]
            ))
            .into());
        }
        let slot = if created == "/" {
            Err(self.root)
        } else {
            self.vacancy(parent, &created.as_bytes()[name_start..])
        };
        let Ok(slot) = slot else {
            if if_not_exists {
                return Ok(KeeperResponse::Created { path: c.path.clone() });
            }
            return Err(ErrorCode::NodeExists.into());
        };
        if name_start == created.len() {
            return Err(ErrorCode::BadArguments.into());
        }
        let Some(acl) = auth::fixup_acl(&c.acls, self.auth_ids(ctx.session), ctx.opts.block_acl)
        else {
            return Err(ErrorCode::InvalidAcl.into());
        };
        if created.len() > limits::PATH_LEN_MAX
            || path::deeper_than(&created, limits::TREE_DEPTH_MAX)
        {
            return Err(KeeperApplyError::Unrepresentable(format!(
                "{created}: beyond the tree's path limits"
            ))
            .into());
        }
        let owner = if c.is_ephemeral() { ctx.session } else { 0 };
        if c.is_ephemeral() && session_owner(owner).is_none() {
            return Err(KeeperApplyError::Unrepresentable(format!(
                "session {owner:#x} as the owner of ephemeral {created}"
            ))
            .into());
        }
        let f = Fields {
            czxid: ctx.zxid,
            mzxid: ctx.zxid,
            pzxid: ctx.zxid,
            ctime: ctx.time,
            mtime: ctx.time,
            owner,
            version: 0,
            cversion: 0,
            aversion: 0,
            seq: 0,
        };
        let acl = if acl.is_empty() { open_acl() } else { acl };
        let acl = self.acls.intern(&acl);
        let name = &created[name_start..];
        self.add_node(parent, slot, name, &created, Some(&c.data), acl, f);
        let zxid = ctx.zxid;
        self.modify(parent, digest_path(parent_path), |p| {
            p.f.seq = p.f.seq.wrapping_add(1);
            p.f.cversion = p.f.cversion.wrapping_add(1);
            if zxid > p.f.pzxid {
                p.f.pzxid = zxid;
            }
        });
        Ok(KeeperResponse::Created { path: created })
    }

    /// The parent's cversion + 1 (remove, set, close).
    fn bump_cversion(&mut self, parent: NodeId, parent_path: &str) {
        self.modify(parent, digest_path(parent_path), |p| {
            p.f.cversion = p.f.cversion.wrapping_add(1);
        });
    }

    /// Removes the node at `path` (a leaf, or a whole subtree) and raises its parent's
    /// cversion.
    fn keeper_unlink(&mut self, path: &str) {
        let parent_path = keeper_parent(path);
        let Some(parent) = self.keeper_lookup(parent_path) else { return };
        let name = path.rfind('/').map_or(path, |i| &path[i + 1..]);
        if let Some(id) = self.unlink_child(parent, parent_path, name.as_bytes()) {
            self.drop_subtree(id, path);
            self.bump_cversion(parent, parent_path);
        }
    }

    /// Remove (`preprocess(ZooKeeperRemoveRequest)`).
    fn keeper_remove(&mut self, path: &str, version: i32, ctx: &Ctx<'_>) -> Step<KeeperResponse> {
        if is_system_path(path) {
            return Err(self.system_path_write(path, ctx.opts));
        }
        let id = self.keeper_lookup(path).ok_or(ErrorCode::NoNode)?;
        if version != -1 && version != self.nodes[id as usize].f.version {
            return Err(ErrorCode::BadVersion.into());
        }
        // Keeper's root always has /keeper.
        if id == self.root || self.num_children(id) != 0 {
            return Err(ErrorCode::NotEmpty.into());
        }
        self.keeper_unlink(path);
        Ok(KeeperResponse::Done)
    }

    /// RemoveRecursive (`preprocess(ZooKeeperRemoveRecursiveRequest)`,
    /// `ToDeleteTreeCollector`).
    fn keeper_remove_recursive(
        &mut self,
        path: &str,
        limit: u32,
        ctx: &Ctx<'_>,
    ) -> Step<KeeperResponse> {
        if is_system_path(path) {
            return Err(self.system_path_write(path, ctx.opts));
        }
        let id = self.keeper_lookup(path).ok_or(ErrorCode::NoNode)?;
        if id == self.root {
            // Keeper would delete /keeper and the root itself (module docs).
            return Err(ErrorCode::BadArguments.into());
        }
        // The collector: nodes_observed starts at 1 and adds each visited node's
        // numChildren (the root's first); the nodes are visited breadth first, each
        // checked for DELETE before its children are counted.
        let limit = u64::from(limit);
        let mut observed = 1 + self.num_children(id) as u64;
        if observed > limit {
            return Err(ErrorCode::NotEmpty.into());
        }
        let auths = self.auth_ids(ctx.session);
        let mut queue = std::collections::VecDeque::from([id]);
        while let Some(cur) = queue.pop_front() {
            if ctx.opts.check_acl {
                let acl = self.acls.get(self.nodes[cur as usize].acl());
                if !auth::check_acl(acl, Perms::DELETE, auths) {
                    return Err(ErrorCode::NoAuth.into());
                }
            }
            if let Some(set) = self.children.get(&cur) {
                for c in set.iter() {
                    observed += self.num_children(c) as u64;
                    if observed > limit {
                        return Err(ErrorCode::NotEmpty.into());
                    }
                    queue.push_back(c);
                }
            }
        }
        self.keeper_unlink(path);
        Ok(KeeperResponse::Done)
    }

    /// Set (`preprocess(ZooKeeperSetRequest)`).
    fn keeper_set(
        &mut self,
        path: &str,
        data: &[u8],
        version: i32,
        ctx: &Ctx<'_>,
    ) -> Step<KeeperResponse> {
        if is_system_path(path) {
            return Err(self.system_path_write(path, ctx.opts));
        }
        let id = self.keeper_lookup(path).ok_or(ErrorCode::NoNode)?;
        if version != -1 && version != self.nodes[id as usize].f.version {
            return Err(ErrorCode::BadVersion.into());
        }
        let (zxid, time) = (ctx.zxid, ctx.time);
        self.modify(id, digest_path(path), |n| {
            n.blob = new_blob(n.acl(), Some(data));
            n.f.version = n.f.version.wrapping_add(1);
            n.f.mzxid = zxid;
            n.f.mtime = time;
        });
        if id != self.root {
            let parent_path = keeper_parent(path);
            if let Some(parent) = self.keeper_lookup(parent_path) {
                self.bump_cversion(parent, parent_path);
            }
        }
        Ok(KeeperResponse::Done)
    }

    /// SetACL (`preprocess(ZooKeeperSetACLRequest)`).
    fn keeper_set_acl(
        &mut self,
        path: &str,
        acls: &[Acl],
        version: i32,
        ctx: &Ctx<'_>,
    ) -> Step<KeeperResponse> {
        if is_system_path(path) {
            return Err(self.system_path_write(path, ctx.opts));
        }
        let id = self.keeper_lookup(path).ok_or(ErrorCode::NoNode)?;
        if version != -1 && version != self.nodes[id as usize].f.aversion {
            return Err(ErrorCode::BadVersion.into());
        }
        let Some(acl) = auth::fixup_acl(acls, self.auth_ids(ctx.session), ctx.opts.block_acl)
        else {
            return Err(ErrorCode::InvalidAcl.into());
        };
        let acl = if acl.is_empty() { open_acl() } else { acl };
        let new_acl = self.acls.intern(&acl);
        let old_acl = self.nodes[id as usize].acl();
        self.modify(id, digest_path(path), |n| {
            n.blob = new_blob(new_acl, n.data());
            n.f.aversion = n.f.aversion.wrapping_add(1);
        });
        self.acls.release(old_acl);
        Ok(KeeperResponse::Done)
    }

    /// Auth (`preprocess(ZooKeeperAuthRequest)`).
    fn keeper_auth(&mut self, scheme: &str, data: &[u8], ctx: &Ctx<'_>) -> Step<KeeperResponse> {
        if scheme != "digest" || data.iter().filter(|&&b| b == b':').count() != 1 {
            return Err(ErrorCode::AuthFailed.into());
        }
        let digest = keeper_digest_id(data).ok_or_else(|| {
            KeeperApplyError::Unrepresentable("an auth user name that is not UTF-8".into())
        })?;
        let id = if ctx.opts.super_digest.as_deref() == Some(digest.as_str()) {
            Id { scheme: auth::SUPER_SCHEME.into(), id: String::new() }
        } else {
            let id = Id { scheme: scheme.to_owned(), id: digest };
            if self.auth_ids(ctx.session).contains(&id) {
                return Ok(KeeperResponse::Done);
            }
            id
        };
        self.auths.entry(ctx.session).or_default().push(id);
        Ok(KeeperResponse::Done)
    }

    /// Close (`preprocessRequest` / `processRequest`, Close branch).
    fn keeper_close(&mut self, ctx: &Ctx<'_>) {
        let paths: Vec<String> = self.owned_by(ctx.session).cloned().collect();
        for p in paths {
            self.keeper_unlink(&p);
        }
        self.sessions.remove(&ctx.session);
        self.auths.remove(&ctx.session);
    }

    /// Multi: all or nothing.
    fn keeper_multi(
        &mut self,
        subs: &[KeeperRequest],
        ctx: &Ctx<'_>,
    ) -> Result<KeeperOutcome, KeeperApplyError> {
        if let Some(sub) = subs.iter().find(|s| {
            !matches!(
                s,
                KeeperRequest::Create(_)
                    | KeeperRequest::CreateIfNotExists(_)
                    | KeeperRequest::Remove { .. }
                    | KeeperRequest::RemoveRecursive { .. }
                    | KeeperRequest::Set { .. }
                    | KeeperRequest::Check { .. }
                    | KeeperRequest::CheckNotExists { .. }
            )
        }) {
            return Err(KeeperApplyError::Invalid(format!(
                "{} inside a Multi (Keeper's decoder refuses it)",
                sub.name()
            )));
        }
        if ctx.opts.check_acl && !subs.iter().all(|s| self.keeper_check_auth(s, ctx.session)) {
            return Ok(KeeperOutcome::MultiFailed {
                multi_error: ErrorCode::NoAuth,
                results: vec![ErrorCode::Ok; subs.len()],
            });
        }
        // O(1): the tree is persistent. Restoring it undoes everything, bit for bit.
        let before = self.clone();
        let mut results = Vec::with_capacity(subs.len());
        for (i, sub) in subs.iter().enumerate() {
            match self.keeper_request(sub, ctx) {
                Ok(r) => results.push(KeeperOutcome::Ok(r)),
                Err(Fail::Code(e)) => {
                    *self = before;
                    let mut codes = vec![ErrorCode::Ok; i];
                    codes.push(e);
                    codes.resize(subs.len(), ErrorCode::RuntimeInconsistency);
                    return Ok(KeeperOutcome::MultiFailed {
                        multi_error: ErrorCode::Ok,
                        results: codes,
                    });
                }
                Err(Fail::Fatal(e)) => {
                    *self = before;
                    return Err(e);
                }
            }
        }
        Ok(KeeperOutcome::Ok(KeeperResponse::Multi(results)))
    }

    /// MultiRead: reads only, each failing on its own; nothing changes.
    fn keeper_multi_read(&mut self, subs: &[KeeperRequest], ctx: &Ctx<'_>) -> KeeperOutcome {
        if ctx.opts.check_acl && !subs.iter().all(|s| self.keeper_check_auth(s, ctx.session)) {
            return KeeperOutcome::MultiFailed {
                multi_error: ErrorCode::NoAuth,
                results: vec![ErrorCode::Ok; subs.len()],
            };
        }
        let results = subs
            .iter()
            .map(|s| {
                if !s.is_read() {
                    return KeeperOutcome::Error(ErrorCode::BadArguments);
                }
                match self.keeper_request(s, ctx) {
                    Ok(r) => KeeperOutcome::Ok(r),
                    Err(Fail::Code(e)) => KeeperOutcome::Error(e),
                    Err(Fail::Fatal(_)) => KeeperOutcome::Error(ErrorCode::BadArguments),
                }
            })
            .collect();
        KeeperOutcome::Ok(KeeperResponse::Multi(results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_paths_as_keeper_computes_them() {
        assert_eq!(keeper_parent("/a"), "/");
        assert_eq!(keeper_parent("/"), "/");
        assert_eq!(keeper_parent("/a/b"), "/a");
        assert_eq!(keeper_parent("/a/"), "/a");
        assert_eq!(keeper_parent("abc"), "abc");
    }

    #[test]
    fn system_paths() {
        assert!(is_system_path("/keeper"));
        assert!(is_system_path("/keeper/api_version"));
        assert!(!is_system_path("/keeperx"));
        assert!(!is_system_path("/"));
    }

    #[test]
    fn sequence_suffix_is_cpp_setw_setfill() {
        assert_eq!(sequence_suffix(0), "0000000000");
        assert_eq!(sequence_suffix(42), "0000000042");
        assert_eq!(sequence_suffix(i32::MAX), "2147483647");
        assert_eq!(sequence_suffix(-5), "00000000-5");
        assert_eq!(sequence_suffix(i32::MIN), "-2147483648");
    }
}
