//! Watches as ZooKeeper 3.8 keeps them (`WatchManager`, `WatcherModeManager`): two
//! tables (data watches, left by exists and getData; child watches, left by
//! getChildren), each mapping a path to the connections watching it with a mode
//! (standard: one-shot; persistent; persistent recursive). A connection holds at most
//! one mode per (table, path): the last one set wins, as in ZooKeeper.

use std::collections::{HashMap, HashSet};

use crate::proto::{event_type, keeper_state, WatcherEvent};

/// A connection's id.
pub type ConnId = u64;

/// Which table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Data and exist watches.
    Data,
    /// Child watches.
    Child,
}

/// How a watch fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Once, then it is gone.
    Standard,
    /// Every time, on this path.
    Persistent,
    /// Every time, on this path and below (data table only; never for
    /// NodeChildrenChanged).
    PersistentRecursive,
}

/// The watch tables.
#[derive(Debug, Default)]
pub struct Watches {
    data: HashMap<String, HashMap<ConnId, Mode>>,
    child: HashMap<String, HashMap<ConnId, Mode>>,
    by_conn: HashMap<ConnId, HashSet<(Table, String)>>,
    recursive: usize,
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" || path.is_empty() {
        return None;
    }
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

impl Watches {
    fn table(&mut self, t: Table) -> &mut HashMap<String, HashMap<ConnId, Mode>> {
        match t {
            Table::Data => &mut self.data,
            Table::Child => &mut self.child,
        }
    }

    /// Adds (or re-modes) a watch.
    pub fn add(&mut self, t: Table, path: &str, conn: ConnId, mode: Mode) {
        let old = self.table(t).entry(path.to_string()).or_default().insert(conn, mode);
        if old == Some(Mode::PersistentRecursive) {
            self.recursive -= 1;
        }
        if mode == Mode::PersistentRecursive {
            self.recursive += 1;
        }
        self.by_conn.entry(conn).or_default().insert((t, path.to_string()));
    }

    fn remove_one(&mut self, t: Table, path: &str, conn: ConnId) -> Option<Mode> {
        let tab = self.table(t);
        let set = tab.get_mut(path)?;
        let m = set.remove(&conn)?;
        if set.is_empty() {
            tab.remove(path);
        }
        if m == Mode::PersistentRecursive {
            self.recursive -= 1;
        }
        if let Some(s) = self.by_conn.get_mut(&conn) {
            s.remove(&(t, path.to_string()));
        }
        Some(m)
    }

    /// `WatchManager.containsWatcher` as ZooKeeper 3.8.0 has it: true when *any*
    /// connection watches `path` in table `t` (its check ignores whose watch it is).
    /// (ZooKeeper walks no path at all for `""`: never.)
    pub fn any_on(&self, t: Table, path: &str) -> bool {
        if path.is_empty() {
            return false;
        }
        let tab = match t {
            Table::Data => &self.data,
            Table::Child => &self.child,
        };
        tab.get(path).is_some_and(|s| !s.is_empty())
    }

    /// Whether `conn` has a watch on `path` in table `t` whose mode `want` accepts.
    pub fn contains(
        &self,
        t: Table,
        path: &str,
        conn: ConnId,
        want: impl Fn(Mode) -> bool,
    ) -> bool {
        let tab = match t {
            Table::Data => &self.data,
            Table::Child => &self.child,
        };
        tab.get(path).and_then(|s| s.get(&conn)).is_some_and(|m| want(*m))
    }

    /// Removes `conn`'s watch on `path` in table `t` if its mode is accepted.
    pub fn remove(
        &mut self,
        t: Table,
        path: &str,
        conn: ConnId,
        want: impl Fn(Mode) -> bool,
    ) -> bool {
        if self.contains(t, path, conn, want) {
            self.remove_one(t, path, conn).is_some()
        } else {
            false
        }
    }

    /// Drops every watch of a connection (it closed).
    pub fn remove_conn(&mut self, conn: ConnId) {
        for (t, p) in self.by_conn.remove(&conn).unwrap_or_default() {
            let tab = self.table(t);
            let mut removed = None;
            if let Some(set) = tab.get_mut(&p) {
                removed = set.remove(&conn);
                if set.is_empty() {
                    tab.remove(&p);
                }
            }
            if removed == Some(Mode::PersistentRecursive) {
                self.recursive -= 1;
            }
        }
    }

    /// `WatchManager.triggerWatch`: the connections to notify of `ev_type` on `path`
    /// in table `t`, minus `suppress`; one-shot watches fired are removed. Returns the
    /// connections found (suppressed ones included), for the next call's `suppress`.
    pub fn trigger(
        &mut self,
        t: Table,
        path: &str,
        ev_type: i32,
        suppress: &HashSet<ConnId>,
        out: &mut Vec<(ConnId, WatcherEvent)>,
    ) -> HashSet<ConnId> {
        let mut found: HashSet<ConnId> = HashSet::new();
        if path.is_empty() {
            // `PathParentIterator` yields nothing for "": nothing fires.
            return found;
        }
        let mut order: Vec<ConnId> = Vec::new();
        let recursive = self.recursive > 0;
        let mut local = Some(path);
        let mut at_parent = false;
        let mut fired: Vec<(String, ConnId)> = Vec::new();
        while let Some(p) = local {
            let tab = match t {
                Table::Data => &self.data,
                Table::Child => &self.child,
            };
            if let Some(set) = tab.get(p) {
                let mut conns: Vec<(&ConnId, &Mode)> = set.iter().collect();
                conns.sort_unstable_by_key(|(c, _)| **c);
                for (&c, &m) in conns {
                    match m {
                        Mode::PersistentRecursive
                            if ev_type != event_type::NODE_CHILDREN_CHANGED && found.insert(c) =>
                        {
                            order.push(c);
                        }
                        Mode::PersistentRecursive => {}
                        _ if !at_parent => {
                            if found.insert(c) {
                                order.push(c);
                            }
                            if m == Mode::Standard {
                                fired.push((p.to_string(), c));
                            }
                        }
                        _ => {}
                    }
                }
            }
            if !recursive {
                break;
            }
            local = parent_of(p);
            at_parent = true;
        }
        for (p, c) in fired {
            self.remove_one(t, &p, c);
        }
        for c in order {
            if !suppress.contains(&c) {
                out.push((
                    c,
                    WatcherEvent {
                        event_type: ev_type,
                        state: keeper_state::SYNC_CONNECTED,
                        path: path.to_string(),
                    },
                ));
            }
        }
        found
    }

    /// Events of a node created at `path` (`DataTree.createNode`).
    pub fn created(&mut self, path: &str, out: &mut Vec<(ConnId, WatcherEvent)>) {
        let none = HashSet::new();
        self.trigger(Table::Data, path, event_type::NODE_CREATED, &none, out);
        if let Some(parent) = parent_of(path) {
            self.trigger(Table::Child, parent, event_type::NODE_CHILDREN_CHANGED, &none, out);
        }
    }

    /// Events of a node deleted at `path` (`DataTree.deleteNode`).
    pub fn deleted(&mut self, path: &str, out: &mut Vec<(ConnId, WatcherEvent)>) {
        let none = HashSet::new();
        let seen = self.trigger(Table::Data, path, event_type::NODE_DELETED, &none, out);
        self.trigger(Table::Child, path, event_type::NODE_DELETED, &seen, out);
        if let Some(parent) = parent_of(path) {
            self.trigger(Table::Child, parent, event_type::NODE_CHILDREN_CHANGED, &none, out);
        }
    }

    /// Events of a data change at `path` (`DataTree.setData`).
    pub fn changed(&mut self, path: &str, out: &mut Vec<(ConnId, WatcherEvent)>) {
        let none = HashSet::new();
        self.trigger(Table::Data, path, event_type::NODE_DATA_CHANGED, &none, out);
    }

    /// Number of (connection, path) watches, and of distinct paths.
    pub fn counts(&self) -> (usize, usize) {
        let n = self.data.values().map(HashMap::len).sum::<usize>()
            + self.child.values().map(HashMap::len).sum::<usize>();
        let paths: HashSet<&String> = self.data.keys().chain(self.child.keys()).collect();
        (n, paths.len())
    }

    /// Paths watched by each connection (`wchc`), sorted.
    pub fn by_connection(&self) -> Vec<(ConnId, Vec<String>)> {
        let mut out: Vec<(ConnId, Vec<String>)> = self
            .by_conn
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(c, s)| {
                let mut v: Vec<String> = s.iter().map(|(_, p)| p.clone()).collect();
                v.sort();
                v.dedup();
                (*c, v)
            })
            .collect();
        out.sort();
        out
    }

    /// Connections watching each path (`wchp`), sorted.
    pub fn by_path(&self) -> Vec<(String, Vec<ConnId>)> {
        let mut m: HashMap<&String, HashSet<ConnId>> = HashMap::new();
        for (p, s) in self.data.iter().chain(self.child.iter()) {
            m.entry(p).or_default().extend(s.keys());
        }
        let mut out: Vec<(String, Vec<ConnId>)> = m
            .into_iter()
            .map(|(p, s)| {
                let mut v: Vec<ConnId> = s.into_iter().collect();
                v.sort_unstable();
                (p.clone(), v)
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(v: &[(ConnId, WatcherEvent)]) -> Vec<(ConnId, i32, String)> {
        v.iter().map(|(c, e)| (*c, e.event_type, e.path.clone())).collect()
    }

    #[test]
    fn one_shot_persistent_and_recursive() {
        let mut w = Watches::default();
        w.add(Table::Data, "/a", 1, Mode::Standard);
        w.add(Table::Child, "/a", 1, Mode::Standard);
        w.add(Table::Data, "/a", 2, Mode::Persistent);
        w.add(Table::Child, "/", 3, Mode::Standard);
        w.add(Table::Data, "/", 4, Mode::PersistentRecursive);
        let mut out = Vec::new();
        w.deleted("/a", &mut out);
        // conn 1 gets one NodeDeleted (data and child watch), 2 its persistent one,
        // 4 the recursive one, 3 the parent's children change.
        assert_eq!(
            types(&out),
            vec![(1, 2, "/a".into()), (2, 2, "/a".into()), (4, 2, "/a".into()), (3, 4, "/".into())]
        );
        out.clear();
        w.created("/a", &mut out);
        assert_eq!(types(&out), vec![(2, 1, "/a".into()), (4, 1, "/a".into())]);
        out.clear();
        w.created("/a/b", &mut out);
        // Recursive watches never see NodeChildrenChanged; nothing watches /a's children.
        assert_eq!(types(&out), vec![(4, 1, "/a/b".into())]);
        assert!(w.remove(Table::Data, "/", 4, |m| m == Mode::PersistentRecursive));
        w.remove_conn(2);
        out.clear();
        w.changed("/a", &mut out);
        assert!(out.is_empty());
        assert_eq!(w.counts(), (0, 0));
    }
}
