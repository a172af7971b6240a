//! A naive reference implementation of ZooKeeper's replay rules (docs/formats/zookeeper.md, "Replay rules", "Stat views", "Tree digest")
//! over a `BTreeMap<path, node>`, written straight from the spec text and sharing no
//! code with the tree, plus a random txn generator that exercises every rule.
#![allow(dead_code, clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;

use keeperkit_model::node::{CONTAINER_OWNER, TTL_MAX};
use keeperkit_model::txn::SetDataTxn;
use keeperkit_model::{
    Acl, AclList, CreateTxn, EphemeralOwner, ErrorCode, Id, Perms, SessionId, Stat, StatPersisted,
    Txn, TxnBody, TxnHeader, Zxid,
};
use keeperkit_tree::{SessionInfo, TxnResult};

use super::{txn, Dumped, FullDump, Rng};

#[derive(Debug, Clone)]
pub struct RNode {
    pub data: Option<Vec<u8>>,
    pub acl: AclList,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub seq: i32,
    pub aversion: i32,
    pub owner: i64,
}

impl RNode {
    fn zero(data: Option<Vec<u8>>, acl: AclList) -> RNode {
        RNode {
            data,
            acl,
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            ctime: 0,
            mtime: 0,
            version: 0,
            seq: 0,
            aversion: 0,
            owner: 0,
        }
    }
}

/// The reference state. The root's key is "/".
#[derive(Debug, Clone)]
pub struct Reference {
    pub nodes: BTreeMap<String, RNode>,
    pub sessions: BTreeMap<i64, i32>,
    pub last_zxid: i64,
}

pub fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

fn ok(r: Result<(), ErrorCode>) -> TxnResult {
    match r {
        Ok(()) | Err(ErrorCode::Ok) => TxnResult::Ok,
        Err(e) => TxnResult::Err(e),
    }
}

fn session_of(owner: i64) -> Option<i64> {
    match EphemeralOwner::decode(owner) {
        EphemeralOwner::Session(s) => Some(s),
        _ => None,
    }
}

impl Reference {
    /// A fresh ZooKeeper tree (docs/formats/zookeeper.md, "Built-in nodes").
    pub fn new() -> Reference {
        let open = Acl::open_unsafe();
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_owned(), RNode::zero(Some(vec![]), open.clone()));
        nodes.insert("/zookeeper".to_owned(), RNode::zero(Some(vec![]), open.clone()));
        nodes.insert("/zookeeper/quota".to_owned(), RNode::zero(Some(vec![]), open));
        let read = vec![Acl { perms: Perms::READ, id: Id::anyone() }];
        let mut config = RNode::zero(Some(vec![]), read);
        config.aversion = -1;
        nodes.insert("/zookeeper/config".to_owned(), config);
        Reference { nodes, sessions: BTreeMap::new(), last_zxid: 0 }
    }

    fn key(path: &str) -> &str {
        if path.is_empty() {
            "/"
        } else {
            path
        }
    }

    pub fn num_children(&self, path: &str) -> usize {
        self.nodes.keys().filter(|k| parent_of(k) == Some(path)).count()
    }

    pub fn apply(&mut self, t: &Txn) -> TxnResult {
        let h = &t.header;
        let r = match &t.body {
            TxnBody::CreateSession { timeout_ms } => {
                self.sessions.insert(h.client_id.0, *timeout_ms);
                TxnResult::Ok
            }
            TxnBody::CloseSession { paths } => {
                self.sessions.remove(&h.client_id.0);
                for p in paths.as_deref().unwrap_or_default() {
                    let _ = self.delete(p, h.zxid.0);
                }
                self.kill(h.client_id.0, h.zxid.0);
                TxnResult::Ok
            }
            TxnBody::Multi(subs) => {
                let failed = subs.iter().any(|s| matches!(s, TxnBody::Error { .. }));
                let mut out = Vec::new();
                let mut seen_error = false;
                for s in subs {
                    let valid = matches!(
                        s,
                        TxnBody::Create(_)
                            | TxnBody::Create2(_)
                            | TxnBody::CreateContainer(_)
                            | TxnBody::CreateTtl(_)
                            | TxnBody::Delete { .. }
                            | TxnBody::DeleteContainer { .. }
                            | TxnBody::SetData(_)
                            | TxnBody::Check { .. }
                            | TxnBody::Error { .. }
                    );
                    if !valid {
                        out.push(TxnResult::Err(ErrorCode::BadArguments));
                        break;
                    }
                    if failed {
                        out.push(match s {
                            TxnBody::Error { err } => {
                                seen_error = true;
                                ok(Err(*err))
                            }
                            _ if seen_error => TxnResult::Err(ErrorCode::RuntimeInconsistency),
                            _ => TxnResult::Ok,
                        });
                    } else {
                        out.push(self.op(h, s));
                    }
                }
                TxnResult::Multi(out)
            }
            body => self.op(h, body),
        };
        self.last_zxid = self.last_zxid.max(h.zxid.0);
        r
    }

    fn op(&mut self, h: &TxnHeader, body: &TxnBody) -> TxnResult {
        let (zxid, time, client) = (h.zxid.0, h.time, h.client_id.0);
        match body {
            TxnBody::Create(c) => {
                ok(self.create(c, if c.ephemeral { client } else { 0 }, zxid, time, true))
            }
            TxnBody::Create2(c) => {
                ok(self.create(c, if c.ephemeral { client } else { 0 }, zxid, time, false))
            }
            TxnBody::CreateContainer(c) => ok(self.create(c, CONTAINER_OWNER, zxid, time, false)),
            TxnBody::CreateTtl(c) => {
                let ttl = c.ttl.unwrap_or(0);
                if ttl <= 0 || ttl > TTL_MAX {
                    return TxnResult::Err(ErrorCode::BadArguments);
                }
                let owner = (0xFF_i64 << 56) | ttl;
                ok(self.create(c, owner, zxid, time, false))
            }
            TxnBody::Delete { path } | TxnBody::DeleteContainer { path } => {
                ok(self.delete(path, zxid))
            }
            TxnBody::SetData(s) | TxnBody::Reconfig(s) => ok(self.set_data(s, zxid, time)),
            TxnBody::SetAcl { path, acl, version } => {
                let r = match self.nodes.get_mut(Self::key(path)) {
                    None => Err(ErrorCode::NoNode),
                    Some(n) => {
                        n.acl = acl.clone();
                        n.aversion = *version;
                        Ok(())
                    }
                };
                ok(r)
            }
            TxnBody::Check { .. } => TxnResult::Ok,
            TxnBody::Error { err } => ok(Err(*err)),
            _ => unreachable!("handled by apply"),
        }
    }

    fn create(
        &mut self,
        c: &CreateTxn,
        owner: i64,
        zxid: i64,
        time: i64,
        type1: bool,
    ) -> Result<(), ErrorCode> {
        let path = c.path.as_str();
        if path == "/" || !path.starts_with('/') || path.ends_with('/') || path.contains("//") {
            return Err(ErrorCode::BadArguments);
        }
        let parent = parent_of(path).unwrap().to_owned();
        if !self.nodes.contains_key(&parent) {
            return Err(ErrorCode::NoNode);
        }
        let seq = self.nodes[&parent].seq;
        let wanted = if c.parent_cversion == -1 { seq.wrapping_add(1) } else { c.parent_cversion };
        if self.nodes.contains_key(path) {
            if type1 {
                let p = self.nodes.get_mut(&parent).unwrap();
                if wanted > p.seq {
                    p.seq = wanted;
                    p.pzxid = zxid;
                }
            }
            return Err(ErrorCode::NodeExists);
        }
        let p = self.nodes.get_mut(&parent).unwrap();
        if wanted > p.seq {
            p.seq = wanted;
            p.pzxid = zxid;
        }
        let node = RNode {
            data: c.data.clone(),
            acl: c.acl.clone(),
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            seq: 0,
            aversion: 0,
            owner,
        };
        self.nodes.insert(path.to_owned(), node);
        Ok(())
    }

    pub fn delete(&mut self, path: &str, zxid: i64) -> Result<(), ErrorCode> {
        if path == "/" || !path.starts_with('/') || path.ends_with('/') {
            return Err(ErrorCode::BadArguments);
        }
        let parent = parent_of(path).unwrap().to_owned();
        let Some(p) = self.nodes.get_mut(&parent) else { return Err(ErrorCode::NoNode) };
        p.pzxid = p.pzxid.max(zxid);
        if self.nodes.remove(path).is_none() {
            return Err(ErrorCode::NoNode);
        }
        let prefix = format!("{path}/");
        self.nodes.retain(|k, _| !k.starts_with(&prefix));
        Ok(())
    }

    fn set_data(&mut self, s: &SetDataTxn, zxid: i64, time: i64) -> Result<(), ErrorCode> {
        let n = self.nodes.get_mut(Self::key(&s.path)).ok_or(ErrorCode::NoNode)?;
        n.data = s.data.clone();
        n.mtime = time;
        n.mzxid = zxid;
        n.version = s.version;
        Ok(())
    }

    fn ephemeral_paths(&self, session: i64) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| session_of(n.owner) == Some(session))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn kill(&mut self, session: i64, zxid: i64) {
        for p in self.ephemeral_paths(session) {
            let _ = self.delete(&p, zxid);
        }
    }

    /// `DataTree::remove_orphan_ephemerals`.
    pub fn remove_orphans(&mut self) -> Vec<String> {
        let mut owners: Vec<i64> =
            self.nodes.values().filter_map(|n| session_of(n.owner)).collect();
        owners.sort_unstable();
        owners.dedup();
        owners.retain(|o| !self.sessions.contains_key(o));
        let mut paths = Vec::new();
        for &o in &owners {
            paths.extend(self.ephemeral_paths(o));
        }
        paths.sort();
        for o in owners {
            self.kill(o, self.last_zxid);
        }
        paths
    }

    pub fn digest(&self) -> u64 {
        let mut sum = 0u64;
        for (path, n) in &self.nodes {
            if path.starts_with("/zookeeper/") {
                continue;
            }
            let mut bytes = Vec::new();
            bytes.extend_from_slice(if path == "/" { b"" } else { path.as_bytes() });
            bytes.extend_from_slice(n.data.as_deref().unwrap_or_default());
            for v in [n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime] {
                bytes.extend_from_slice(&v.to_be_bytes());
            }
            for v in [n.version, n.seq, n.aversion] {
                bytes.extend_from_slice(&v.to_be_bytes());
            }
            bytes.extend_from_slice(&n.owner.to_be_bytes());
            sum = sum.wrapping_add(u64::from(crc32fast::hash(&bytes)));
        }
        sum
    }

    pub fn dump(&self) -> FullDump {
        let mut nodes = Vec::new();
        for (path, n) in &self.nodes {
            let children: Vec<String> = self
                .nodes
                .keys()
                .filter(|k| parent_of(k) == Some(path.as_str()))
                .map(|k| k.rsplit('/').next().unwrap().to_owned())
                .collect();
            let num = children.len();
            let stored = StatPersisted {
                czxid: n.czxid,
                mzxid: n.mzxid,
                ctime: n.ctime,
                mtime: n.mtime,
                version: n.version,
                cversion: n.seq,
                aversion: n.aversion,
                ephemeral_owner: n.owner,
                pzxid: n.pzxid,
            };
            let stat = Stat {
                czxid: n.czxid,
                mzxid: n.mzxid,
                ctime: n.ctime,
                mtime: n.mtime,
                version: n.version,
                cversion: n.seq.wrapping_mul(2).wrapping_sub(i32::try_from(num).unwrap()),
                aversion: n.aversion,
                ephemeral_owner: EphemeralOwner::decode(n.owner).client_value(),
                data_length: i32::try_from(n.data.as_ref().map_or(0, Vec::len)).unwrap(),
                num_children: i32::try_from(num).unwrap(),
                pzxid: n.pzxid,
            };
            nodes.push(Dumped {
                path: path.clone(),
                data: n.data.clone(),
                stat,
                stored,
                seq: n.seq,
                acl: n.acl.clone(),
                kind: EphemeralOwner::decode(n.owner).kind(),
                children,
            });
        }
        let sessions: Vec<SessionInfo> = self
            .sessions
            .iter()
            .map(|(&id, &timeout_ms)| SessionInfo {
                id: SessionId(id),
                timeout_ms,
                ephemerals: self.ephemeral_paths(id).len(),
            })
            .collect();
        let ephemerals = sessions.iter().map(|s| (s.id, self.ephemeral_paths(s.id.0))).collect();
        FullDump {
            nodes,
            sessions,
            ephemerals,
            digest: self.digest(),
            last_zxid: Zxid(self.last_zxid),
            node_count: self.nodes.len(),
        }
    }
}

impl Default for Reference {
    fn default() -> Reference {
        Reference::new()
    }
}

// ----- random txns ----------------------------------------------------------------------

const NAMES: &[&str] = &["a", "b", "a-b", "a.b", "c", "a0", "d", "e\u{e9}", "f-"];
pub const SESSIONS: &[i64] = &[0x101, 0x102, 0x103, 0x1_0000_0000_0104];

fn acl_pool(rng: &mut Rng) -> AclList {
    match rng.below(4) {
        0 => Acl::open_unsafe(),
        1 => vec![Acl { perms: Perms::READ, id: Id::anyone() }],
        2 => vec![
            Acl { perms: Perms(31), id: Id { scheme: "digest".into(), id: "u:x".into() } },
            Acl { perms: Perms(1), id: Id::anyone() },
        ],
        _ => vec![],
    }
}

fn data(rng: &mut Rng) -> Option<Vec<u8>> {
    match rng.below(10) {
        0 => None,
        1 => Some(vec![]),
        2 => Some(vec![rng.next() as u8; 300 + rng.below(100)]),
        _ => Some((0..rng.below(12)).map(|_| rng.next() as u8).collect()),
    }
}

fn random_path(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(3);
    (0..depth).map(|_| format!("/{}", rng.pick(NAMES))).collect()
}

fn existing(rng: &mut Rng, m: &Reference) -> String {
    let i = rng.below(m.nodes.len());
    m.nodes.keys().nth(i).unwrap().clone()
}

/// A path for a new node: usually a child of an existing node, depth ≤ 4.
fn new_path(rng: &mut Rng, m: &Reference) -> String {
    if rng.pct(15) {
        return random_path(rng);
    }
    let mut parent = existing(rng, m);
    while parent.matches('/').count() >= 4 || parent.starts_with("/zookeeper") && rng.pct(80) {
        parent = parent_of(&parent).unwrap().to_owned();
    }
    let name = rng.pick(NAMES);
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn some_path(rng: &mut Rng, m: &Reference) -> String {
    if rng.pct(75) {
        existing(rng, m)
    } else {
        random_path(rng)
    }
}

fn create_body(rng: &mut Rng, m: &Reference, top_level: bool) -> TxnBody {
    let path = new_path(rng, m);
    let seq = parent_of(&path).and_then(|p| m.nodes.get(p)).map_or(0, |n| n.seq);
    let parent_cversion = match rng.below(10) {
        0..=2 => -1,
        3..=6 => seq.wrapping_add(1),
        7 => seq,
        8 => seq.wrapping_add(3),
        _ => rng.below(5) as i32,
    };
    let c = CreateTxn {
        path,
        data: data(rng),
        acl: acl_pool(rng),
        ephemeral: rng.pct(30),
        parent_cversion,
        ttl: None,
        v0: false,
    };
    match rng.below(20) {
        0..=9 => TxnBody::Create(c),
        10..=13 if top_level => TxnBody::Create2(c),
        10..=13 => TxnBody::Create(c),
        14..=16 => TxnBody::CreateContainer(CreateTxn { ephemeral: false, ..c }),
        _ => {
            let ttl = if rng.pct(10) { 0 } else { 1 + rng.below(100_000) as i64 };
            TxnBody::CreateTtl(CreateTxn { ephemeral: false, ttl: Some(ttl), ..c })
        }
    }
}

/// A delete target: usually an existing leaf outside /zookeeper, so that the tree
/// keeps growing; sometimes anything (subtrees, missing nodes, the root).
fn delete_target(rng: &mut Rng, m: &Reference) -> String {
    if rng.pct(8) {
        return some_path(rng, m);
    }
    let mut path = existing(rng, m);
    for _ in 0..8 {
        if !path.starts_with("/zookeeper") && path != "/" {
            break;
        }
        path = existing(rng, m);
    }
    loop {
        let children: Vec<&String> =
            m.nodes.keys().filter(|k| parent_of(k) == Some(path.as_str())).collect();
        if children.is_empty() {
            return path;
        }
        path = rng.pick(&children).to_string();
    }
}

fn delete_body(rng: &mut Rng, m: &Reference) -> TxnBody {
    let path = delete_target(rng, m);
    if rng.pct(20) {
        TxnBody::DeleteContainer { path }
    } else {
        TxnBody::Delete { path }
    }
}

fn set_data_body(rng: &mut Rng, m: &Reference) -> TxnBody {
    let path = if rng.pct(5) { "/".to_owned() } else { some_path(rng, m) };
    TxnBody::SetData(SetDataTxn { path, data: data(rng), version: rng.below(12) as i32 - 1 })
}

fn sub_body(rng: &mut Rng, m: &Reference) -> TxnBody {
    match rng.below(100) {
        0..=39 => create_body(rng, m, false),
        40..=54 => delete_body(rng, m),
        55..=74 => set_data_body(rng, m),
        75..=84 => TxnBody::Check { path: some_path(rng, m), version: 1 },
        85..=94 => TxnBody::Error { err: *rng.pick(&[ErrorCode::BadVersion, ErrorCode::NoNode]) },
        _ => TxnBody::SetAcl { path: some_path(rng, m), acl: acl_pool(rng), version: 1 },
    }
}

/// A random txn with zxid `zxid`, made against the reference state `m`.
pub fn random_txn(rng: &mut Rng, m: &Reference, zxid: i64) -> Txn {
    let session = *rng.pick(SESSIONS);
    let body = match rng.below(100) {
        0..=31 => create_body(rng, m, true),
        32..=44 => delete_body(rng, m),
        45..=56 => set_data_body(rng, m),
        57..=63 => TxnBody::SetAcl {
            path: some_path(rng, m),
            acl: acl_pool(rng),
            version: rng.below(5) as i32,
        },
        64..=75 => TxnBody::Multi((0..1 + rng.below(4)).map(|_| sub_body(rng, m)).collect()),
        76..=77 => TxnBody::Check { path: some_path(rng, m), version: 0 },
        78..=79 => TxnBody::Error { err: ErrorCode::NodeExists },
        80..=86 => TxnBody::CreateSession { timeout_ms: 1000 + rng.below(1000) as i32 },
        87..=93 => {
            let paths = if rng.pct(30) {
                None
            } else {
                let mut p = m.ephemeral_paths(session);
                if !p.is_empty() && rng.pct(30) {
                    p.truncate(rng.below(p.len()));
                }
                if rng.pct(20) {
                    p.push(some_path(rng, m));
                }
                Some(p)
            };
            TxnBody::CloseSession { paths }
        }
        94..=96 => TxnBody::Reconfig(SetDataTxn {
            path: "/zookeeper/config".into(),
            data: Some(format!("server.1=x\nversion={zxid:x}").into_bytes()),
            version: -1,
        }),
        _ => TxnBody::Create(CreateTxn {
            path: format!("/zookeeper/quota/{}", rng.pick(NAMES)),
            data: data(rng),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: -1,
            ttl: None,
            v0: false,
        }),
    };
    txn(zxid, session, body)
}
