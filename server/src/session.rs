//! Session ids and passwords as ZooKeeper makes them.

use std::collections::HashMap;

use keeperkit_model::{SessionId, TxnBody};
use keeperkit_tree::DataTree;

use crate::javahash::JavaStringSet;
use crate::proto::PASSWORD_LEN;

/// Each session's ephemeral paths as ZooKeeper's `DataTree.ephemerals` holds them: a
/// `HashSet<String>` per session, added to by every ephemeral create, removed from by
/// every delete, dropped when the session closes. A closing session's ephemerals are
/// deleted, and their events sent, in the iteration order of a clone of that set
/// (`PrepRequestProcessor` takes `getEphemerals`, a clone, and logs its order in the
/// closeSession txn), which depends on the whole history of the set: what was added
/// and removed, in which order, and how large its table grew.
#[derive(Debug, Default)]
pub(crate) struct EphemeralSets {
    sets: HashMap<i64, JavaStringSet>,
    owner: HashMap<String, i64>,
}

impl EphemeralSets {
    /// The sets of the ephemerals of `tree`'s live sessions, each added in creation
    /// order (czxid, then path). That history is unknown after a restart; ZooKeeper
    /// rebuilds its sets from its snapshot in its own order too.
    pub(crate) fn from_tree(tree: &DataTree) -> EphemeralSets {
        let mut s = EphemeralSets::default();
        for info in tree.sessions() {
            for p in by_czxid(tree, tree.ephemerals(info.id)) {
                s.add(info.id.0, p);
            }
        }
        s
    }

    fn add(&mut self, session: i64, path: String) {
        if self.sets.entry(session).or_default().insert(path.clone()) {
            self.owner.insert(path, session);
        }
    }

    /// Follows a txn of `session` that the tree applied.
    pub(crate) fn apply(&mut self, session: SessionId, body: &TxnBody) {
        match body {
            TxnBody::Create(c) | TxnBody::Create2(c) if c.ephemeral => {
                self.add(session.0, c.path.clone());
            }
            TxnBody::Delete { path } | TxnBody::DeleteContainer { path } => {
                if let Some(o) = self.owner.remove(path) {
                    if let Some(set) = self.sets.get_mut(&o) {
                        set.remove(path);
                    }
                }
            }
            TxnBody::Multi(subs) => {
                for b in subs {
                    self.apply(session, b);
                }
            }
            TxnBody::CloseSession { .. } => {
                if let Some(set) = self.sets.remove(&session.0) {
                    for p in set.iter() {
                        self.owner.remove(p);
                    }
                }
            }
            _ => {}
        }
    }

    /// The order in which `session`'s ephemerals in `tree` are deleted when it closes.
    /// Paths the set does not know (none, unless the tree changed behind it) follow in
    /// creation order.
    pub(crate) fn close_order(&self, session: SessionId, tree: &DataTree) -> Vec<String> {
        let mut in_tree = tree.ephemerals(session);
        let mut out = Vec::with_capacity(in_tree.len());
        if let Some(set) = self.sets.get(&session.0) {
            for p in set.clone_order() {
                if let Ok(i) = in_tree.binary_search(&p) {
                    in_tree.remove(i);
                    out.push(p);
                }
            }
        }
        out.extend(by_czxid(tree, in_tree));
        out
    }
}

/// `paths` by creation (czxid, then path).
fn by_czxid(tree: &DataTree, mut paths: Vec<String>) -> Vec<String> {
    paths.sort_by_cached_key(|p| (tree.get(p).map_or(0, |n| n.stat().czxid), p.clone()));
    paths
}

/// `ZooKeeperServer.superSecret`: the seed of every session password.
const SUPER_SECRET: i64 = 0xB341_5C00;

/// `java.util.Random`, enough of it for `nextBytes`.
struct JavaRandom {
    seed: i64,
}

impl JavaRandom {
    const MULT: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;

    fn new(seed: i64) -> JavaRandom {
        JavaRandom { seed: (seed ^ Self::MULT) & Self::MASK }
    }

    fn next_int(&mut self) -> i32 {
        self.seed = (self.seed.wrapping_mul(Self::MULT).wrapping_add(0xB)) & Self::MASK;
        // The top 32 of the 48 bits, as Java's `(int) (seed >>> 16)`.
        let bits = (self.seed >> 16) & 0xffff_ffff;
        i32::from_be_bytes(u32::try_from(bits).unwrap_or(0).to_be_bytes())
    }

    fn next_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(4) {
            let mut rnd = self.next_int();
            for b in chunk {
                *b = rnd.to_le_bytes()[0];
                rnd >>= 8;
            }
        }
    }
}

/// `ZooKeeperServer.generatePasswd`: the password of a session is a function of its
/// id, so that it survives restarts without being stored.
pub fn password(id: SessionId) -> Vec<u8> {
    let mut p = vec![0u8; PASSWORD_LEN];
    JavaRandom::new(id.0 ^ SUPER_SECRET).next_bytes(&mut p);
    p
}

/// `SessionTrackerImpl.initializeNextSessionId`: server id in the top byte, the clock in
/// ms in the next 40 bits, a counter in the low 16. `now_ms` is the wall clock (so that
/// a restarted server does not reuse ids); `at_least` is one past the highest live id.
pub fn first_session_id(server_id: u8, now_ms: i64, at_least: i64) -> i64 {
    let mut next = ((now_ms << 24) as u64 >> 8) as i64;
    next |= i64::from(server_id) << 56;
    if next == i64::MIN {
        next += 1;
    }
    next.max(at_least)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_random_matches_java() {
        // new java.util.Random(42).nextInt() == -1170105035
        assert_eq!(JavaRandom::new(42).next_int(), -1_170_105_035);
        // new Random(0).nextBytes(new byte[4]) = {96, -76, 32, -69}
        let mut b = [0u8; 4];
        JavaRandom::new(0).next_bytes(&mut b);
        assert_eq!(b, [96, 180, 32, 187]);
        assert_eq!(password(SessionId(1)).len(), 16);
        assert_eq!(password(SessionId(7)), password(SessionId(7)));
        assert_ne!(password(SessionId(7)), password(SessionId(8)));
    }

    #[test]
    fn session_ids_are_shaped_like_zookeeper() {
        let id = first_session_id(1, 1_700_000_000_000, 0);
        assert_eq!(id >> 56, 1);
        assert_eq!(id & 0xffff, 0);
        assert_eq!(first_session_id(1, 1_700_000_000_000, i64::MAX), i64::MAX);
    }
}
