//! Interned, reference-counted ACL lists.
//!
//! Nodes hold a `u32` id; the list itself is stored once per distinct list (ZooKeeper
//! compares lists in order, `List.equals`, so the same entries in another order are
//! another list). A list whose last user goes away is dropped and its id reused. All
//! of it is persistent (imbl), so cloning the tree clones the table in O(1).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use imbl::{HashMap, Vector};
use keeperkit_model::{Acl, AclList};

use crate::node::AclId;

/// End of the free list.
const NO_SLOT: AclId = u32::MAX;

/// Returned for an id that is not in use (a bug; see the debug assertion).
static EMPTY: AclList = Vec::new();

/// Key of the reverse index: hashes and compares as the slice of entries, so that a
/// lookup can borrow a `&[Acl]` without building a `Vec`.
#[derive(Clone)]
struct AclKey(Arc<AclList>);

impl Hash for AclKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_slice().hash(state);
    }
}

impl PartialEq for AclKey {
    fn eq(&self, other: &AclKey) -> bool {
        self.0.as_slice() == other.0.as_slice()
    }
}

impl Eq for AclKey {}

impl Borrow<[Acl]> for AclKey {
    fn borrow(&self) -> &[Acl] {
        self.0.as_slice()
    }
}

#[derive(Clone)]
enum Slot {
    Used { list: Arc<AclList>, refs: u64 },
    Free { next: AclId },
}

/// The ACL table.
#[derive(Clone, Default)]
pub(crate) struct AclTable {
    slots: Vector<Slot>,
    index: HashMap<AclKey, AclId>,
    free_head: Option<AclId>,
}

impl AclTable {
    /// Adds one user of `list`, interning it if new; returns its id.
    pub(crate) fn intern(&mut self, list: &[Acl]) -> AclId {
        if let Some(&id) = self.index.get(list) {
            if let Some(Slot::Used { refs, .. }) = self.slots.get_mut(id as usize) {
                *refs += 1;
            }
            return id;
        }
        let list = Arc::new(list.to_vec());
        let slot = Slot::Used { list: Arc::clone(&list), refs: 1 };
        let id = match self.free_head {
            Some(id) => {
                let old = self.slots.set(id as usize, slot);
                self.free_head = match old {
                    Slot::Free { next } if next != NO_SLOT => Some(next),
                    _ => None,
                };
                id
            }
            None => {
                let id = AclId::try_from(self.slots.len()).unwrap_or(NO_SLOT);
                assert!(id != NO_SLOT, "more than 2^32 - 1 distinct ACL lists");
                self.slots.push_back(slot);
                id
            }
        };
        self.index.insert(AclKey(list), id);
        id
    }

    /// [`AclTable::intern`], trying `hint` first: a loader passes the id the previous
    /// node got, which nearly always holds the same list (one compare instead of a
    /// hash of the list). Any `hint` is safe: one that is not in use, or holds another
    /// list, is ignored.
    pub(crate) fn intern_hinted(&mut self, hint: AclId, list: &[Acl]) -> AclId {
        if let Some(Slot::Used { list: held, .. }) = self.slots.get(hint as usize) {
            if held.as_slice() == list {
                if let Some(Slot::Used { refs, .. }) = self.slots.get_mut(hint as usize) {
                    *refs += 1;
                }
                return hint;
            }
        }
        self.intern(list)
    }

    /// Removes one user of `id`; drops the list when it was the last.
    pub(crate) fn release(&mut self, id: AclId) {
        let Some(Slot::Used { list, refs }) = self.slots.get_mut(id as usize) else {
            debug_assert!(false, "release of unused ACL id {id}");
            return;
        };
        *refs -= 1;
        if *refs > 0 {
            return;
        }
        let list = Arc::clone(list);
        self.index.remove(list.as_slice());
        let next = self.free_head.unwrap_or(NO_SLOT);
        self.slots.set(id as usize, Slot::Free { next });
        self.free_head = Some(id);
    }

    /// The list of `id`.
    pub(crate) fn get(&self, id: AclId) -> &AclList {
        match self.slots.get(id as usize) {
            Some(Slot::Used { list, .. }) => list,
            _ => {
                debug_assert!(false, "lookup of unused ACL id {id}");
                &EMPTY
            }
        }
    }

    /// Every list in use, in id order.
    pub(crate) fn lists(&self) -> Vec<AclList> {
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::Used { list, .. } => Some(list.as_ref().clone()),
                Slot::Free { .. } => None,
            })
            .collect()
    }

    /// Every list in use with its id, in id order.
    pub(crate) fn table(&self) -> Vec<(AclId, &AclList)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Used { list, .. } => Some((AclId::try_from(i).ok()?, list.as_ref())),
                Slot::Free { .. } => None,
            })
            .collect()
    }

    /// Number of distinct lists in use.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// `(id, users)` of every list in use (consistency checks).
    pub(crate) fn usage(&self) -> Vec<(AclId, u64)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Used { refs, .. } => Some((AclId::try_from(i).unwrap_or(NO_SLOT), *refs)),
                Slot::Free { .. } => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use keeperkit_model::{Id, Perms};

    use super::*;

    fn list(perms: i32) -> AclList {
        vec![Acl { perms: Perms(perms), id: Id::anyone() }]
    }

    #[test]
    fn interning_counts_and_reuses() {
        let mut t = AclTable::default();
        let a = t.intern(&list(31));
        let b = t.intern(&list(1));
        assert_ne!(a, b);
        assert_eq!(t.intern(&list(31)), a);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(a), &list(31));
        let view = t.clone();
        t.release(a);
        assert_eq!(t.len(), 2);
        t.release(a);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lists(), vec![list(1)]);
        // The freed id is reused; the view still has the old list.
        let c = t.intern(&list(3));
        assert_eq!(c, a);
        assert_eq!(t.get(c), &list(3));
        assert_eq!(view.get(a), &list(31));
        assert_eq!(view.len(), 2);
        assert_eq!(t.usage(), vec![(a, 1), (b, 1)]);
    }

    #[test]
    fn hints_give_the_interned_id() {
        let mut t = AclTable::default();
        let a = t.intern(&list(31));
        let b = t.intern(&list(1));
        assert_eq!(t.intern_hinted(a, &list(31)), a);
        // A hint holding another list, or not in use, is ignored.
        assert_eq!(t.intern_hinted(b, &list(31)), a);
        assert_eq!(t.intern_hinted(NO_SLOT, &list(1)), b);
        assert_eq!(t.usage(), vec![(a, 3), (b, 2)]);
        t.release(b);
        t.release(b);
        assert_eq!(t.intern_hinted(b, &list(1)), b);
        assert_eq!(t.usage(), vec![(a, 3), (b, 1)]);
        let c = t.intern_hinted(a, &list(7));
        assert_eq!(t.get(c), &list(7));
    }

    #[test]
    fn order_matters() {
        let mut t = AclTable::default();
        let mut l = list(1);
        l.push(Acl { perms: Perms(2), id: Id { scheme: "ip".into(), id: "1.2.3.4".into() } });
        let a = t.intern(&l);
        l.reverse();
        let b = t.intern(&l);
        assert_ne!(a, b);
    }
}
