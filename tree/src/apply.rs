//! Applying ZooKeeper txns: `DataTree.processTxn` in replay mode (docs/formats/zookeeper.md, "Replay rules").
//!
//! Every per-op failure is returned as an [`ErrorCode`] and otherwise ignored, exactly
//! as ZooKeeper swallows `KeeperException`s while replaying a log over a fuzzy
//! snapshot. Nothing here panics on any txn content.

use keeperkit_model::node::CONTAINER_OWNER;
use keeperkit_model::txn::{CreateTxn, SetDataTxn};
use keeperkit_model::{limits, path, Acl, EphemeralOwner, ErrorCode, Txn, TxnBody, TxnHeader};

use crate::digest::digest_path;
use crate::node::{new_blob, Fields};
use crate::tree::{client_cversion, split, DataTree};

/// The outcome of applying one txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResult {
    /// Applied (or nothing to do: check, session txns).
    Ok,
    /// The op failed with this code and changed nothing — except where ZooKeeper's
    /// replay rules say otherwise (a delete of a missing child still raises the
    /// parent's pzxid; a `create` hitting NodeExists still fixes up the parent). An
    /// error txn reports its own code.
    Err(ErrorCode),
    /// A multi: one result per sub-txn, in order.
    Multi(Vec<TxnResult>),
}

impl TxnResult {
    /// Whether this is `Ok`, or a multi whose results are all ok.
    pub fn is_ok(&self) -> bool {
        match self {
            TxnResult::Ok => true,
            TxnResult::Err(_) => false,
            TxnResult::Multi(subs) => subs.iter().all(TxnResult::is_ok),
        }
    }
}

impl From<Result<(), ErrorCode>> for TxnResult {
    fn from(r: Result<(), ErrorCode>) -> TxnResult {
        match r {
            Ok(()) => TxnResult::Ok,
            Err(ErrorCode::Ok) => TxnResult::Ok,
            Err(e) => TxnResult::Err(e),
        }
    }
}

/// The result of an error txn (`ErrorTxn(0)` is ZooKeeper's "ok" placeholder).
fn error_txn(err: ErrorCode) -> TxnResult {
    Err(err).into()
}

/// Sub-types `processTxn` accepts inside a multi. Any other one makes ZooKeeper throw
/// an `IOException` that ends the multi where it stands.
fn valid_in_multi(body: &TxnBody) -> bool {
    matches!(
        body,
        TxnBody::Create(_)
            | TxnBody::Create2(_)
            | TxnBody::CreateContainer(_)
            | TxnBody::CreateTtl(_)
            | TxnBody::Delete { .. }
            | TxnBody::DeleteContainer { .. }
            | TxnBody::SetData(_)
            | TxnBody::Check { .. }
            | TxnBody::Error { .. }
    )
}

impl DataTree {
    /// Applies one logged txn with ZooKeeper's replay semantics (docs/formats/zookeeper.md, "Replay rules"), then
    /// raises `lastProcessedZxid` to the txn's zxid. Never fails: per-op errors are in
    /// the result, and the tree is left as ZooKeeper would leave it.
    ///
    /// The body decides what happens (the header's type is not consulted); the header
    /// gives the zxid, the time and the session (owner of ephemeral creates, the
    /// session of createSession / closeSession). Per type:
    ///
    /// - create, create2, createContainer, createTTL: parent missing → NoNode; child
    ///   present → NodeExists, and for `create` (type 1, also inside a multi) only, the
    ///   parent's `seq` is raised to `parentCVersion` (−1: `seq + 1`) with pzxid = zxid
    ///   when that raises it. Otherwise the parent's `seq` and pzxid are raised the same
    ///   way (never lowered) and the node is added with czxid = mzxid = pzxid = zxid,
    ///   ctime = mtime = time, versions 0, owner = the session (ephemeral creates),
    ///   `i64::MIN` (containers), `0xFF << 56 | ttl` (TTL) or 0.
    /// - delete, deleteContainer: parent missing → NoNode; otherwise the parent's
    ///   pzxid is raised to zxid **even if the child is missing** (then NoNode); the
    ///   parent's `seq` is untouched.
    /// - setData, reconfig: data, mtime, mzxid, version = the txn's (absolute).
    /// - setACL: ACL and aversion = the txn's (absolute).
    /// - check (also top level, as buggy 3.8.0–3.8.4 servers log it), error: nothing.
    /// - multi: nothing at all if any sub-txn is an error txn; else every sub-txn in
    ///   order with the outer header, each failing on its own.
    /// - createSession: the session is added (or its timeout updated).
    /// - closeSession: the session is removed, the listed paths deleted (NoNode
    ///   ignored), then every remaining ephemeral of the session; without a body, all
    ///   of them.
    ///
    /// Whenever a node's `seq` or number of children changes, its client cversion
    /// becomes `2 * seq - numChildren`. The digest follows every change.
    pub fn apply(&mut self, txn: &Txn) -> TxnResult {
        let h = &txn.header;
        let result = match &txn.body {
            TxnBody::Multi(subs) => self.apply_multi(h, subs),
            TxnBody::CreateSession { timeout_ms } => {
                self.sessions.insert(h.client_id.0, *timeout_ms);
                TxnResult::Ok
            }
            TxnBody::CloseSession { paths } => {
                self.close_session(h.client_id.0, paths.as_deref(), h.zxid.0);
                TxnResult::Ok
            }
            TxnBody::SetAcl { path, acl, version } => self.set_acl(path, acl, *version).into(),
            TxnBody::Reconfig(s) => self.set_data(s, h.zxid.0, h.time).into(),
            body => self.apply_op(h, body),
        };
        if h.zxid > self.last_zxid {
            self.last_zxid = h.zxid;
        }
        result
    }

    /// One op of the kinds valid inside a multi (also used at top level).
    fn apply_op(&mut self, h: &TxnHeader, body: &TxnBody) -> TxnResult {
        let (zxid, time) = (h.zxid.0, h.time);
        match body {
            TxnBody::Create(c) => {
                let owner = if c.ephemeral { h.client_id.0 } else { 0 };
                let r = self.create_node(c, owner, zxid, time);
                if r == Err(ErrorCode::NodeExists) {
                    // Only type 1 (top level or inside a multi): setCversionPzxid.
                    if let Some((parent, _)) = split(&c.path) {
                        self.set_cversion_pzxid(parent, c.parent_cversion, zxid);
                    }
                }
                r.into()
            }
            TxnBody::Create2(c) => {
                let owner = if c.ephemeral { h.client_id.0 } else { 0 };
                self.create_node(c, owner, zxid, time).into()
            }
            TxnBody::CreateContainer(c) => self.create_node(c, CONTAINER_OWNER, zxid, time).into(),
            TxnBody::CreateTtl(c) => {
                let ttl = c.ttl.unwrap_or(0);
                // EphemeralType.TTL.toEphemeralOwner refuses these (the leader never
                // logs them).
                if ttl <= 0 || ttl > keeperkit_model::node::TTL_MAX {
                    return TxnResult::Err(ErrorCode::BadArguments);
                }
                self.create_node(c, EphemeralOwner::Ttl(ttl).encode(), zxid, time).into()
            }
            TxnBody::Delete { path } | TxnBody::DeleteContainer { path } => {
                self.delete_node(path, zxid).into()
            }
            TxnBody::SetData(s) | TxnBody::Reconfig(s) => self.set_data(s, zxid, time).into(),
            TxnBody::SetAcl { path, acl, version } => self.set_acl(path, acl, *version).into(),
            TxnBody::Check { .. } => TxnResult::Ok,
            TxnBody::Error { err } => error_txn(*err),
            TxnBody::CreateSession { .. } | TxnBody::CloseSession { .. } | TxnBody::Multi(_) => {
                // Only reachable from a multi (top level handles them); `apply_multi`
                // filters them out first.
                TxnResult::Err(ErrorCode::BadArguments)
            }
        }
    }

    /// A multi: if any sub-txn is an error txn, nothing is applied (results: ok before
    /// the first error, each error's own code, RuntimeInconsistency after it). Else
    /// every sub-txn is applied in order with the outer header, each failing or not on
    /// its own. A sub-type ZooKeeper does not accept in a multi ends it right there
    /// (reported as BadArguments), the earlier subs staying applied.
    fn apply_multi(&mut self, h: &TxnHeader, subs: &[TxnBody]) -> TxnResult {
        let failed = subs.iter().any(|s| matches!(s, TxnBody::Error { .. }));
        let mut results = Vec::with_capacity(subs.len());
        let mut post_failed = false;
        for sub in subs {
            if !valid_in_multi(sub) {
                results.push(TxnResult::Err(ErrorCode::BadArguments));
                break;
            }
            let r = if !failed {
                self.apply_op(h, sub)
            } else if let TxnBody::Error { err } = sub {
                post_failed = true;
                error_txn(*err)
            } else if post_failed {
                TxnResult::Err(ErrorCode::RuntimeInconsistency)
            } else {
                TxnResult::Ok
            };
            results.push(r);
        }
        TxnResult::Multi(results)
    }

    /// `DataTree.createNode`.
    fn create_node(
        &mut self,
        c: &CreateTxn,
        owner: i64,
        zxid: i64,
        time: i64,
    ) -> Result<(), ErrorCode> {
        let path = c.path.as_str();
        let (parent_path, name) = split(path).ok_or(ErrorCode::BadArguments)?;
        if path.len() > limits::PATH_LEN_MAX || path::deeper_than(path, limits::TREE_DEPTH_MAX) {
            return Err(ErrorCode::BadArguments);
        }
        let parent = self.lookup(parent_path).ok_or(ErrorCode::NoNode)?;
        let slot = self.vacancy(parent, name.as_bytes()).map_err(|_| ErrorCode::NodeExists)?;
        let f = Fields {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            owner,
            version: 0,
            cversion: 0,
            aversion: 0,
            seq: 0,
        };
        let acl = self.acls.intern(&c.acl);
        self.add_node(parent, slot, name, path, c.data.as_deref(), acl, f);
        let n = self.num_children(parent);
        let parent_cversion = c.parent_cversion;
        self.modify(parent, parent_path.as_bytes(), |p| {
            let wanted =
                if parent_cversion == -1 { p.f.seq.wrapping_add(1) } else { parent_cversion };
            // Never lowers them: replay over a fuzzy snapshot.
            if wanted > p.f.seq {
                p.f.seq = wanted;
                p.f.pzxid = zxid;
            }
            p.f.cversion = client_cversion(p.f.seq, n);
        });
        self.quota_created(path, c.data.as_deref().map_or(0, <[u8]>::len));
        Ok(())
    }

    /// `DataTree.setCversionPzxid`: the NodeExists fix-up of a type-1 create.
    fn set_cversion_pzxid(&mut self, path: &str, new_cversion: i32, zxid: i64) {
        let Some(id) = self.lookup(path) else { return };
        let seq = self.nodes[id as usize].f.seq;
        let wanted = if new_cversion == -1 { seq.wrapping_add(1) } else { new_cversion };
        if wanted <= seq {
            return;
        }
        let n = self.num_children(id);
        self.modify(id, digest_path(path), |p| {
            p.f.seq = wanted;
            p.f.pzxid = zxid;
            p.f.cversion = client_cversion(wanted, n);
        });
    }

    /// `DataTree.deleteNode`: the parent's pzxid is raised to `zxid` even when the
    /// child is missing; its stored cversion never changes (the client cversion moves
    /// because numChildren does). A node that still has children (possible only
    /// during fuzzy replay) goes with its whole subtree.
    pub(crate) fn delete_node(&mut self, path: &str, zxid: i64) -> Result<(), ErrorCode> {
        let (parent_path, name) = split(path).ok_or(ErrorCode::BadArguments)?;
        let parent = self.lookup(parent_path).ok_or(ErrorCode::NoNode)?;
        let removed = self.unlink_child(parent, parent_path, name.as_bytes());
        let raise = zxid > self.nodes[parent as usize].f.pzxid;
        if raise || removed.is_some() {
            let n = self.num_children(parent);
            self.modify(parent, parent_path.as_bytes(), |p| {
                if raise {
                    p.f.pzxid = zxid;
                }
                p.f.cversion = client_cversion(p.f.seq, n);
            });
        }
        let id = removed.ok_or(ErrorCode::NoNode)?;
        let data_len = self.nodes[id as usize].data().map_or(0, <[u8]>::len);
        self.drop_subtree(id, path);
        self.quota_deleted(path, data_len);
        Ok(())
    }

    /// `DataTree.setData` (also reconfig): data, mtime, mzxid, version = the txn's.
    fn set_data(&mut self, s: &SetDataTxn, zxid: i64, time: i64) -> Result<(), ErrorCode> {
        let id = self.lookup(&s.path).ok_or(ErrorCode::NoNode)?;
        let data = s.data.as_deref();
        let old_len = self.nodes[id as usize].data().map_or(0, <[u8]>::len);
        self.modify(id, digest_path(&s.path), |n| {
            n.blob = new_blob(n.acl(), data);
            n.f.mtime = time;
            n.f.mzxid = zxid;
            n.f.version = s.version;
        });
        self.quota_data_changed(&s.path, old_len, data.map_or(0, <[u8]>::len));
        Ok(())
    }

    /// `DataTree.setACL`: acl and aversion = the txn's.
    fn set_acl(&mut self, path: &str, acl: &[Acl], version: i32) -> Result<(), ErrorCode> {
        let id = self.lookup(path).ok_or(ErrorCode::NoNode)?;
        let new_acl = self.acls.intern(acl);
        let old_acl = self.nodes[id as usize].acl();
        self.modify(id, digest_path(path), |n| {
            n.blob = new_blob(new_acl, n.data());
            n.f.aversion = version;
        });
        self.acls.release(old_acl);
        Ok(())
    }

    /// `closeSession`: remove the session, delete the listed paths (NoNode ignored),
    /// then every remaining ephemeral of the session (`DataTree.killSession`).
    fn close_session(&mut self, session: i64, paths: Option<&[String]>, zxid: i64) {
        self.sessions.remove(&session);
        for p in paths.unwrap_or_default() {
            let _ = self.delete_node(p, zxid);
        }
        self.kill_ephemerals(session, zxid);
    }

    /// Deletes every ephemeral owned by `session`, with `zxid`.
    fn kill_ephemerals(&mut self, session: i64, zxid: i64) {
        loop {
            let Some(path) = self.owned_by(session).next().cloned() else { break };
            if self.delete_node(&path, zxid).is_err() {
                // Only a root loaded with a session owner cannot be deleted: unindex it
                // so that the loop ends.
                self.ephemerals.remove(&(session, path));
            }
        }
    }

    /// What ZooKeeper does after restoring (`ZooKeeperServer.loadData`): every
    /// ephemeral node whose owner is not in the session map is deleted, as
    /// `killSession` with the current `lastProcessedZxid` (so parents' pzxid may rise
    /// to it). Returns the deleted paths, sorted.
    pub fn remove_orphan_ephemerals(&mut self) -> Vec<String> {
        let mut dead: Vec<i64> = Vec::new();
        let mut paths = Vec::new();
        for (owner, path) in self.ephemerals.iter() {
            if !self.sessions.contains_key(owner) {
                if dead.last() != Some(owner) {
                    dead.push(*owner);
                }
                paths.push(path.clone());
            }
        }
        paths.sort_unstable();
        let zxid = self.last_zxid.0;
        for owner in dead {
            self.kill_ephemerals(owner, zxid);
        }
        paths
    }
}
