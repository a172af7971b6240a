//! How openraft's values are stored in the native engine.
//!
//! - **Log indexes.** openraft's first entry has index 0, the native WAL's index 1:
//!   WAL index = Raft index + 1. A WAL/engine position with index 0 is Raft's `None`.
//!   Log ids are `(term, index)` (openraft's `single-term-leader`, standard Raft), which
//!   is what a WAL entry records.
//! - **Entry payloads.** `Blank` → empty payload (the engine's no-op); `Normal(txns)`
//!   with one txn → the txn's jute bytes (what earlier versions stored for every
//!   `Normal` entry, so their logs still open), with any other count → an engine batch
//!   entry ([`batch_entry`]: the txns' jute bytes, applied in order); `Membership` → an
//!   engine cluster-config entry
//!   ([`config_entry`]) holding [`encode_membership`] of the membership and its log id.
//!   The engine applies config entries by replacing its cluster config, which every
//!   snapshot carries: the membership survives restarts and snapshot installs.
//! - **Server state** (the engine's `server-state` file): [`RaftMeta`], the vote and
//!   the last purged log id.

use std::collections::{BTreeMap, BTreeSet};

use keeperkit_model::le::Cursor;
use keeperkit_model::Txn;
use keeperkit_storage::engine::{batch_entry, config_entry, parse_batch_entry, parse_config_entry};
use keeperkit_storage::traits::LogPosition;
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, LeaderId, LogId, Membership, StoredMembership, Vote,
};

use crate::{Entry, KeeperRaft, NodeId};

/// Largest node count or address length accepted when decoding a membership.
const MEMBERSHIP_ITEMS_MAX: u32 = 1 << 16;
const MEMBERSHIP_VERSION: u8 = 1;
const META_VERSION: u8 = 1;

/// A value that could not be decoded (names what and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// The log id of the Raft entry at WAL position `pos` (`None` for index 0).
pub fn log_id_of(pos: LogPosition) -> Option<LogId<NodeId>> {
    (pos.index > 0).then(|| log_id(pos.term, pos.index - 1))
}

/// A log id `(term, index)`.
pub fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

/// The WAL position of a log id.
pub fn position_of(id: &LogId<NodeId>) -> LogPosition {
    LogPosition { index: id.index + 1, term: id.leader_id.term }
}

/// The WAL payload of an entry.
pub fn encode_payload(entry: &Entry) -> Vec<u8> {
    match &entry.payload {
        EntryPayload::Blank => Vec::new(),
        EntryPayload::Normal(txns) => match txns.as_slice() {
            [txn] => txn.to_bytes(),
            _ => {
                let bytes: Vec<Vec<u8>> = txns.iter().map(Txn::to_bytes).collect();
                batch_entry(&bytes.iter().map(Vec::as_slice).collect::<Vec<_>>())
            }
        },
        EntryPayload::Membership(m) => config_entry(&encode_membership(&entry.log_id, m)),
    }
}

/// The entry stored at WAL position `index` with `term` and `payload`.
pub fn decode_entry(index: u64, term: u64, payload: &[u8]) -> Result<Entry, DecodeError> {
    let Some(raft_index) = index.checked_sub(1) else {
        return Err(DecodeError("WAL index 0 holds no entry".into()));
    };
    let log_id = log_id(term, raft_index);
    let payload = if payload.is_empty() {
        EntryPayload::Blank
    } else if let Some(c) = parse_config_entry(payload) {
        let (id, m) = decode_membership(c)?;
        if id != Some(log_id) {
            return Err(DecodeError(format!(
                "the membership entry at index {raft_index} records log id {id:?}"
            )));
        }
        EntryPayload::Membership(m)
    } else if let Some(batch) = parse_batch_entry(payload) {
        let parts = batch.map_err(|e| DecodeError(format!("entry {raft_index}: {e}")))?;
        let txns = parts
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                Txn::decode_from(b).map_err(|e| {
                    DecodeError(format!(
                        "txn {i} of entry {raft_index} is not a ZooKeeper txn: {e}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        EntryPayload::Normal(txns)
    } else {
        let txn = Txn::decode_from(payload)
            .map_err(|e| DecodeError(format!("entry {raft_index} is not a ZooKeeper txn: {e}")))?;
        EntryPayload::Normal(vec![txn])
    };
    Ok(openraft::Entry::<KeeperRaft> { log_id, payload })
}

/// A membership and the log id of its entry, as the engine's cluster config: version
/// u8 (1), log id (present u8, index u64, term u64), config count u32, per config: id
/// count u32 and ids u64, node count u32, per node: id u64, address length u32 and
/// UTF-8 bytes (little-endian).
pub fn encode_membership(id: &LogId<NodeId>, m: &Membership<NodeId, BasicNode>) -> Vec<u8> {
    let mut out = vec![MEMBERSHIP_VERSION, 1];
    out.extend_from_slice(&id.index.to_le_bytes());
    out.extend_from_slice(&id.leader_id.term.to_le_bytes());
    let configs = m.get_joint_config();
    put_len(&mut out, configs.len());
    for c in configs {
        put_len(&mut out, c.len());
        for n in c {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    let nodes: Vec<_> = m.nodes().collect();
    put_len(&mut out, nodes.len());
    for (id, node) in nodes {
        out.extend_from_slice(&id.to_le_bytes());
        put_len(&mut out, node.addr.len());
        out.extend_from_slice(node.addr.as_bytes());
    }
    out
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

/// The workspace's bounded little-endian cursor, with errors that name what was read.
struct Reader<'a> {
    c: Cursor<'a>,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { c: Cursor::new(b), what }
    }
    fn fail(&self, e: keeperkit_model::DecodeError) -> DecodeError {
        DecodeError(format!("{}: {e}", self.what))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.c.take(n).map_err(|e| self.fail(e))
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.c.u8().map_err(|e| self.fail(e))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.c.u64().map_err(|e| self.fail(e))
    }
    fn count(&mut self, min_item_len: usize) -> Result<usize, DecodeError> {
        self.c.count_u32(u64::from(MEMBERSHIP_ITEMS_MAX), min_item_len).map_err(|e| self.fail(e))
    }
    fn end(&self) -> Result<(), DecodeError> {
        self.c.expect_end(self.what).map_err(|e| self.fail(e))
    }
}

/// A membership and the log id of its entry.
pub type MembershipAt = (Option<LogId<NodeId>>, Membership<NodeId, BasicNode>);

/// Decodes [`encode_membership`].
pub fn decode_membership(b: &[u8]) -> Result<MembershipAt, DecodeError> {
    let mut r = Reader::new(b, "membership");
    let version = r.u8()?;
    if version != MEMBERSHIP_VERSION {
        return Err(DecodeError(format!("membership: unknown version {version}")));
    }
    let present = r.u8()?;
    let index = r.u64()?;
    let term = r.u64()?;
    let id = match present {
        0 => None,
        1 => Some(log_id(term, index)),
        p => return Err(DecodeError(format!("membership: bad log id flag {p}"))),
    };
    let mut configs = Vec::new();
    for _ in 0..r.count(4)? {
        let mut c = BTreeSet::new();
        for _ in 0..r.count(8)? {
            c.insert(r.u64()?);
        }
        configs.push(c);
    }
    let mut nodes = BTreeMap::new();
    for _ in 0..r.count(12)? {
        let id = r.u64()?;
        let len = r.count(1)?;
        let addr = std::str::from_utf8(r.take(len)?)
            .map_err(|e| DecodeError(format!("membership: node {id} address: {e}")))?;
        nodes.insert(id, BasicNode { addr: addr.to_string() });
    }
    r.end()?;
    Ok((id, Membership::new(configs, nodes)))
}

/// The stored membership a cluster config (engine bytes) holds; empty bytes are the
/// default (no membership yet).
pub fn stored_membership(
    config: &[u8],
) -> Result<StoredMembership<NodeId, BasicNode>, DecodeError> {
    if config.is_empty() {
        return Ok(StoredMembership::default());
    }
    let (id, m) = decode_membership(config)?;
    Ok(StoredMembership::new(id, m))
}

/// What the log store keeps in the engine's server state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftMeta {
    /// The vote (`None`: never saved).
    pub vote: Option<Vote<NodeId>>,
    /// The last purged log id.
    pub purged: Option<LogId<NodeId>>,
}

impl RaftMeta {
    /// Encoding: version u8 (1); vote present u8, term u64, voted-for present u8,
    /// voted-for u64, committed u8; purged present u8, index u64, term u64
    /// (little-endian, 46 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![META_VERSION];
        let v = self.vote.unwrap_or_default();
        out.push(u8::from(self.vote.is_some()));
        out.extend_from_slice(&v.leader_id.term.to_le_bytes());
        out.push(u8::from(v.leader_id.voted_for.is_some()));
        out.extend_from_slice(&v.leader_id.voted_for.unwrap_or(0).to_le_bytes());
        out.push(u8::from(v.committed));
        let p = self.purged.unwrap_or_default();
        out.push(u8::from(self.purged.is_some()));
        out.extend_from_slice(&p.index.to_le_bytes());
        out.extend_from_slice(&p.leader_id.term.to_le_bytes());
        out
    }

    /// Decodes [`RaftMeta::encode`]; empty bytes are the initial state.
    pub fn decode(b: &[u8]) -> Result<RaftMeta, DecodeError> {
        if b.is_empty() {
            return Ok(RaftMeta::default());
        }
        let mut r = Reader::new(b, "raft state");
        let version = r.u8()?;
        if version != META_VERSION {
            return Err(DecodeError(format!("raft state: unknown version {version}")));
        }
        let flag = |v: u8, what: &str| match v {
            0 => Ok(false),
            1 => Ok(true),
            x => Err(DecodeError(format!("raft state: bad {what} flag {x}"))),
        };
        let has_vote = flag(r.u8()?, "vote")?;
        let term = r.u64()?;
        let has_voted_for = flag(r.u8()?, "voted-for")?;
        let voted_for = r.u64()?;
        let committed = flag(r.u8()?, "committed")?;
        let has_purged = flag(r.u8()?, "purged")?;
        let p_index = r.u64()?;
        let p_term = r.u64()?;
        r.end()?;
        let vote = has_vote.then(|| Vote {
            leader_id: LeaderId { term, voted_for: has_voted_for.then_some(voted_for) },
            committed,
        });
        Ok(RaftMeta { vote, purged: has_purged.then(|| log_id(p_term, p_index)) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keeperkit_model::{OpCode, SessionId, TxnBody, TxnHeader, Zxid};

    fn membership() -> Membership<NodeId, BasicNode> {
        let nodes: BTreeMap<u64, BasicNode> = [
            (1, BasicNode::new("127.0.0.1:9181")),
            (2, BasicNode::new("b:2")),
            (3, BasicNode::new("")),
            (4, BasicNode::new("learner")),
        ]
        .into();
        Membership::new(vec![[1, 2, 3].into(), [2, 3].into()], nodes)
    }

    #[test]
    fn membership_round_trip_and_hostile_bytes() {
        let id = log_id(3, 17);
        let b = encode_membership(&id, &membership());
        assert_eq!(decode_membership(&b).unwrap(), (Some(id), membership()));
        for n in 0..b.len() {
            assert!(decode_membership(&b[..n]).is_err(), "cut at {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(decode_membership(&long).is_err());
        let mut huge = b.clone();
        huge[18..22].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_membership(&huge).is_err());
        assert_eq!(stored_membership(&[]).unwrap(), StoredMembership::default());
    }

    #[test]
    fn entries_round_trip() {
        let txn = Txn {
            header: TxnHeader {
                client_id: SessionId(5),
                cxid: 1,
                zxid: Zxid(9),
                time: 3,
                op: OpCode::DELETE,
            },
            body: TxnBody::Delete { path: "/a".into() },
            digest: None,
        };
        let mut second = txn.clone();
        second.header.zxid = Zxid(10);
        let entries: Vec<Entry> = vec![
            openraft::Entry { log_id: log_id(1, 0), payload: EntryPayload::Blank },
            openraft::Entry {
                log_id: log_id(2, 1),
                payload: EntryPayload::Normal(vec![txn.clone()]),
            },
            openraft::Entry {
                log_id: log_id(2, 3),
                payload: EntryPayload::Normal(vec![txn.clone(), second]),
            },
            openraft::Entry { log_id: log_id(2, 4), payload: EntryPayload::Normal(Vec::new()) },
            openraft::Entry {
                log_id: log_id(2, 2),
                payload: EntryPayload::Membership(membership()),
            },
        ];
        for e in entries {
            let p = encode_payload(&e);
            let pos = position_of(&e.log_id);
            let back = decode_entry(pos.index, pos.term, &p).unwrap();
            assert_eq!(back.log_id, e.log_id);
            assert_eq!(format!("{:?}", back.payload), format!("{:?}", e.payload));
        }
        // A membership entry moved to another index is refused.
        let m = openraft::Entry::<KeeperRaft> {
            log_id: log_id(2, 2),
            payload: EntryPayload::Membership(membership()),
        };
        assert!(decode_entry(9, 2, &encode_payload(&m)).is_err());
        assert!(decode_entry(3, 1, b"garbage").is_err());
        // One txn is stored as its jute bytes (as earlier versions stored every entry);
        // a batch whose txn does not decode is refused.
        let one = openraft::Entry::<KeeperRaft> {
            log_id: log_id(2, 1),
            payload: EntryPayload::Normal(vec![txn.clone()]),
        };
        assert_eq!(encode_payload(&one), txn.to_bytes());
        let bad = batch_entry(&[&txn.to_bytes(), b"garbage"]);
        assert!(decode_entry(3, 1, &bad).is_err());
        assert!(decode_entry(0, 1, b"").is_err());
    }

    #[test]
    fn meta_round_trip() {
        let metas = [
            RaftMeta::default(),
            RaftMeta { vote: Some(Vote::new(7, 2)), purged: None },
            RaftMeta { vote: Some(Vote::new_committed(9, 1)), purged: Some(log_id(8, 1000)) },
            RaftMeta {
                vote: Some(Vote {
                    leader_id: LeaderId { term: 4, voted_for: None },
                    committed: false,
                }),
                purged: Some(log_id(0, 0)),
            },
        ];
        for m in metas {
            let b = m.encode();
            assert_eq!(RaftMeta::decode(&b).unwrap(), m);
            for n in 1..b.len() {
                assert!(RaftMeta::decode(&b[..n]).is_err());
            }
        }
        assert_eq!(RaftMeta::decode(&[]).unwrap(), RaftMeta::default());
    }
}
