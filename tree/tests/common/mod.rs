//! Helpers shared by the integration tests: txn builders, a full state dump for exact
//! comparisons, a seeded RNG.
#![allow(dead_code, clippy::unwrap_used, clippy::cast_possible_truncation)]

use keeperkit_model::{
    Acl, AclList, CreateTxn, Id, NodeKind, Perms, SessionId, Stat, StatPersisted, Txn, TxnBody,
    TxnHeader, Zxid,
};
use keeperkit_tree::{DataTree, SessionInfo};

pub mod reference;

/// A txn with a header matching its body; time = zxid * 1000.
pub fn txn(zxid: i64, session: i64, body: TxnBody) -> Txn {
    let header = TxnHeader {
        client_id: SessionId(session),
        cxid: 0,
        zxid: Zxid(zxid),
        time: zxid * 1000,
        op: body.op(),
    };
    Txn { header, body, digest: None }
}

/// A `CreateTxn` with an open ACL.
pub fn create(path: &str, data: Option<&[u8]>, ephemeral: bool, parent_cversion: i32) -> CreateTxn {
    CreateTxn {
        path: path.into(),
        data: data.map(<[u8]>::to_vec),
        acl: Acl::open_unsafe(),
        ephemeral,
        parent_cversion,
        ttl: None,
        v0: false,
    }
}

/// A top-level `create` (type 1) body.
pub fn create1(path: &str, parent_cversion: i32) -> TxnBody {
    TxnBody::Create(create(path, Some(b""), false, parent_cversion))
}

/// `world:anyone` with `perms`.
pub fn anyone(perms: i32) -> AclList {
    vec![Acl { perms: Perms(perms), id: Id::anyone() }]
}

/// One node, every field that can be observed from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dumped {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub stat: Stat,
    pub stored: StatPersisted,
    pub seq: i32,
    pub acl: AclList,
    pub kind: NodeKind,
    pub children: Vec<String>,
}

/// Everything observable about a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullDump {
    pub nodes: Vec<Dumped>,
    pub sessions: Vec<SessionInfo>,
    pub ephemerals: Vec<(SessionId, Vec<String>)>,
    pub digest: u64,
    pub last_zxid: Zxid,
    pub node_count: usize,
}

/// Nodes in full-path byte order.
pub fn dump_nodes(t: &DataTree) -> Vec<Dumped> {
    let mut out = Vec::new();
    t.for_each_sorted(|p, n| {
        out.push(Dumped {
            path: p.to_owned(),
            data: n.data().map(<[u8]>::to_vec),
            stat: n.stat(),
            stored: n.stored_stat(),
            seq: n.seq(),
            acl: n.acl().clone(),
            kind: n.kind(),
            children: t.children(p).unwrap(),
        });
    });
    out
}

pub fn full_dump(t: &DataTree) -> FullDump {
    let sessions = t.sessions();
    let ephemerals = sessions.iter().map(|s| (s.id, t.ephemerals(s.id))).collect();
    FullDump {
        nodes: dump_nodes(t),
        sessions,
        ephemerals,
        digest: t.digest(),
        last_zxid: t.last_processed_zxid(),
        node_count: t.node_count(),
    }
}

/// Asserts the tree's own invariants and its digest.
pub fn check(t: &DataTree) {
    t.check_consistency(true).unwrap();
    assert_eq!(t.digest(), t.compute_digest());
}

/// xorshift64*: small, seeded, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
