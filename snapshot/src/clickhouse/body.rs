//! The uncompressed snapshot body, versions V0–V8 (docs/formats/clickhouse.md, "Snapshot body").
//!
//! Checked against the public source (`KeeperSnapshotManager.cpp`, stored copies
//! 161234653 for the V6 era, 55051508843 / 56753451937 for V7/V8): `readNode` reads the
//! data as a varuint-prefixed string, then the ACL (inline `size_t` count + ACLs in V0,
//! `u64` id in V1–V6, `u32` in V7+), `is_sequential` (V1–V5), the stats, `dataLength`
//! (before V6), numChildren, pzxid, seq_num (`i32` before V7), `size_bytes` (V4–V5);
//! for ephemeral nodes the stored numChildren and seq_num are ignored; an `acl_id` of
//! `u64::MAX` becomes 0. Before V5 Keeper takes the zxid from the metadata's last log
//! index (`SnapshotHeader::zxid` is `None` here). The trailer is read when bytes remain
//! after the sessions; Keeper ignores anything after it, this reader refuses such
//! bytes (and a config that does not fill its length) so that every body it accepts
//! re-encodes byte for byte.

use keeperkit_model::keeper::nuraft::{ClusterConfig, SnapshotMeta};
use keeperkit_model::keeper::{self, KeeperStat};
use std::io::Read;

use keeperkit_model::le::Cursor as Cur;
use keeperkit_model::{Acl, AclList, CorruptionKind, DecodeError, Id, Perms};
use keeperkit_vfs::read_full;

use crate::SnapshotError;

/// Oldest body version read.
pub const VERSION_MIN: u8 = 0;
/// Newest body version read and written (V8, TTL nodes; 2026). V9 (containers as
/// `ephemeralOwner = i64::MIN`) is not read: no merged source that defines it was
/// found (docs/formats/clickhouse.md, "Snapshot body": not confirmed; the only `KeeperSnapshotManager.h` with more than
/// V8 is the closed chunked-format branch of PR #107884, whose V8 means something
/// else).
pub const VERSION_MAX: u8 = 8;
/// The version written by default: V6, which every Keeper from 2024 on reads.
pub const VERSION_DEFAULT: u8 = 6;

/// The fields before the ACL map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Body version (0–8).
    pub version: u8,
    /// NuRaft snapshot metadata: last log index/term and the config at that index.
    pub meta: SnapshotMeta,
    /// Last committed zxid (V5+; `None` before).
    pub zxid: Option<i64>,
    /// Digest version (V5+; 0 = no digest).
    pub digest_version: u8,
    /// Tree digest, present when `digest_version != 0`.
    pub digest: Option<u64>,
    /// Next session id Keeper will hand out.
    pub session_id_counter: i64,
}

/// One node record. Fields are stored values: for ephemeral nodes Keeper writes 0 for
/// `num_children` and `seq_num` and ignores them on read; an `acl_id` of `u64::MAX` is
/// read by Keeper as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRecord<'a> {
    /// Absolute path (`/` for the root).
    pub path: &'a str,
    /// Data.
    pub data: &'a [u8],
    /// Key into the ACL map, 0 for no ACL (world:anyone, all permissions). V0 files
    /// have inline ACL lists; the reader interns them (ids 1, 2, ... in order of first
    /// use, as Keeper's `ACLMap::convertACLs`) and reports each new list to the sink
    /// first.
    pub acl_id: u64,
    /// Stat fields (stored cversion is the client-visible one in Keeper).
    pub stat: KeeperStat,
    /// Per-parent counter for sequential children (i32 before V7).
    pub seq_num: i64,
    /// TTL in ms of a TTL node (V8+).
    pub ttl_ms: Option<i64>,
}

/// One live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id.
    pub id: i64,
    /// Negotiated timeout in ms.
    pub timeout_ms: i64,
    /// Auth ids added with `addauth` (V1+), in stored order.
    pub auths: Vec<Id>,
}

/// Receives a snapshot's content in file order: header, ACL map, nodes, sessions,
/// trailer config. An `Err` aborts reading with [`CorruptionKind::BadTree`] at the
/// current offset.
pub trait ClickHouseSnapshotSink {
    /// The header.
    fn header(&mut self, header: &SnapshotHeader) -> Result<(), String>;
    /// One ACL map entry.
    fn acl(&mut self, id: u64, acls: AclList) -> Result<(), String>;
    /// One node (in file order, which is Keeper's list order, not sorted).
    fn node(&mut self, node: &NodeRecord<'_>) -> Result<(), String>;
    /// One session.
    fn session(&mut self, session: SessionRecord) -> Result<(), String>;
    /// The trailer's cluster config, when present.
    fn cluster_config(&mut self, config: ClusterConfig) -> Result<(), String>;
}

/// Callback of [`ClickHouseSnapshotSource::visit_acls`].
pub type AclVisitor<'v> = dyn FnMut(u64, &[Acl]) -> Result<(), String> + 'v;
/// Callback of [`ClickHouseSnapshotSource::visit_nodes`].
pub type NodeVisitor<'v> = dyn FnMut(&NodeRecord<'_>) -> Result<(), String> + 'v;
/// Callback of [`ClickHouseSnapshotSource::visit_sessions`].
pub type SessionVisitor<'v> = dyn FnMut(&SessionRecord) -> Result<(), String> + 'v;

/// What a writer needs from a tree. Counts must equal what the visitors produce.
pub trait ClickHouseSnapshotSource {
    /// The header (its `version` is ignored: the writer's option decides).
    fn header(&self) -> SnapshotHeader;
    /// Number of ACL map entries.
    fn acl_count(&self) -> u64;
    /// Visits the ACL map entries, ascending by id (Keeper sorts them).
    fn visit_acls(&self, f: &mut AclVisitor<'_>) -> Result<(), String>;
    /// Number of nodes.
    fn node_count(&self) -> u64;
    /// Visits the nodes (Keeper: `/` and `/keeper` included, `/keeper/*` not; parents
    /// need not come first).
    fn visit_nodes(&self, f: &mut NodeVisitor<'_>) -> Result<(), String>;
    /// Number of sessions.
    fn session_count(&self) -> u64;
    /// Visits the sessions (Keeper sorts them by id).
    fn visit_sessions(&self, f: &mut SessionVisitor<'_>) -> Result<(), String>;
    /// The cluster config for the trailer, if any.
    fn cluster_config(&self) -> Option<ClusterConfig>;
}

/// Counts of what a body held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodyCounts {
    /// ACL map entries (V0: distinct inline lists interned).
    pub acls: u64,
    /// Nodes.
    pub nodes: u64,
    /// Sessions.
    pub sessions: u64,
    /// Whether the trailer config was present.
    pub has_cluster_config: bool,
    /// The tree digest recomputed from the nodes with the header's digest version
    /// (when asked and the version is 4 or 5; `/keeper/*` records excluded).
    pub computed_digest: Option<u64>,
}

type R<T> = Result<T, DecodeError>;

/// Longest string or list Keeper accepts in a body (`MAX_STRING_OR_ARRAY_SIZE`,
/// 256 MiB): when the body's length is not known in advance (it is being
/// decompressed), a longer claim is refused before anything is read for it.
pub const STRING_LEN_MAX: u64 = 1 << 28;

/// The body as it is read: a window over a reader (a slice, or the container being
/// decompressed), so that memory follows what the sink keeps, not the body's size.
/// Offsets are body offsets.
pub(crate) struct Body<'r> {
    src: &'r mut dyn Read,
    buf: Vec<u8>,
    /// Parse position in `buf`.
    pos: usize,
    /// Body offset of `buf[0]`.
    base: u64,
    eof: bool,
    /// The body's length, when known (then counts and lengths are checked against the
    /// bytes that remain, as for a slice).
    total: Option<u64>,
    /// The reader's own error, for the caller (the decoder reports a decompression
    /// failure in its place).
    pub(crate) failed: Option<std::io::Error>,
}

impl<'r> Body<'r> {
    pub(crate) fn new(src: &'r mut dyn Read, total: Option<u64>) -> Body<'r> {
        Body { src, buf: Vec::new(), pos: 0, base: 0, eof: false, total, failed: None }
    }

    fn pos(&self) -> usize {
        usize::try_from(self.base).unwrap_or(usize::MAX).saturating_add(self.pos)
    }

    /// Bytes read from the source so far.
    pub(crate) fn produced(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    fn err(&self, kind: CorruptionKind) -> DecodeError {
        DecodeError::new(self.pos() as u64, kind)
    }

    fn window(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes left in the body, when its length is known.
    fn rest(&self) -> Option<u64> {
        self.total.map(|t| t.saturating_sub(self.pos() as u64))
    }

    /// Reads until `n` bytes are in the window; fails as a slice would when the body
    /// ends first.
    fn fill(&mut self, n: usize) -> R<()> {
        while self.window() < n && !self.eof {
            if self.pos > (1 << 20) && self.pos * 2 > self.buf.len() {
                self.buf.drain(..self.pos);
                self.base += self.pos as u64;
                self.pos = 0;
            }
            let start = self.buf.len();
            let want = (n - self.window()).max(1 << 16);
            self.buf.resize(start + want, 0);
            match read_full(&mut self.src, &mut self.buf[start..]) {
                Ok(got) => {
                    self.buf.truncate(start + got);
                    self.eof = got < want;
                }
                Err(e) => {
                    self.buf.truncate(start);
                    let msg = e.to_string();
                    self.failed = Some(e);
                    self.eof = true;
                    return Err(self.err(CorruptionKind::Decompression(msg)));
                }
            }
        }
        if self.window() < n {
            return Err(self.err(CorruptionKind::Truncated {
                needed: n as u64,
                available: self.window() as u64,
            }));
        }
        Ok(())
    }

    /// Whether the body ends here.
    fn at_end(&mut self) -> R<bool> {
        match self.fill(1) {
            Ok(()) => Ok(false),
            Err(_) if self.failed.is_none() => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn take(&mut self, n: usize) -> R<&[u8]> {
        self.fill(n)?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn arr<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.arr::<1>()?[0])
    }

    fn i32(&mut self) -> R<i32> {
        Ok(i32::from_le_bytes(self.arr()?))
    }

    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    fn i64(&mut self) -> R<i64> {
        Ok(i64::from_le_bytes(self.arr()?))
    }

    fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    fn bool(&mut self, field: &'static str) -> R<bool> {
        let at = self.pos();
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::new(
                at as u64,
                CorruptionKind::UnknownValue { field, found: u64::from(b) },
            )),
        }
    }

    /// ClickHouse `readVarUInt`: LEB128 through the shared cursor's rules.
    fn varint(&mut self) -> R<u64> {
        let at = self.pos();
        if let Err(e) = self.fill(10) {
            // A short body is fine here: the cursor says whether the varint fits.
            if self.failed.is_some() {
                return Err(e);
            }
        }
        let mut c = Cur::new(&self.buf[self.pos..]);
        let v = c.varint().map_err(|e| e.shifted(at as u64))?;
        self.pos += c.pos();
        Ok(v)
    }

    /// A length read at `at`: within what remains (known length) or within
    /// [`STRING_LEN_MAX`].
    fn len(&self, v: u64, at: usize, elem: usize) -> R<usize> {
        let max = match self.rest() {
            Some(rest) => rest / elem.max(1) as u64,
            None => STRING_LEN_MAX,
        };
        usize::try_from(v).ok().filter(|_| v <= max).ok_or_else(|| {
            DecodeError::new(
                at as u64,
                CorruptionKind::LengthOutOfRange { len: i64::try_from(v).unwrap_or(i64::MAX), max },
            )
        })
    }

    /// Varuint-prefixed bytes, appended to `out` (cleared first).
    fn bytes_into(&mut self, out: &mut Vec<u8>) -> R<()> {
        let at = self.pos();
        let v = self.varint()?;
        let n = self.len(v, at, 1)?;
        out.clear();
        out.extend_from_slice(self.take(n)?);
        Ok(())
    }

    /// A varuint-prefixed UTF-8 string.
    fn string(&mut self) -> R<String> {
        let at = self.pos();
        let mut b = Vec::new();
        self.bytes_into(&mut b)?;
        String::from_utf8(b).map_err(|_| DecodeError::new(at as u64, CorruptionKind::InvalidUtf8))
    }

    /// A u64 count of elements of at least `elem` bytes each: within what remains
    /// (known length), else taken as it is (nothing is allocated for it up front).
    fn count(&mut self, elem: usize) -> R<u64> {
        let at = self.pos();
        let v = self.u64()?;
        if let Some(rest) = self.rest() {
            let max = rest / elem.max(1) as u64;
            if v > max {
                return Err(DecodeError::new(
                    at as u64,
                    CorruptionKind::LengthOutOfRange {
                        len: i64::try_from(v).unwrap_or(i64::MAX),
                        max,
                    },
                ));
            }
        }
        Ok(v)
    }

    fn acl_list(&mut self) -> R<AclList> {
        // An ACL: i32 perms and two 1-byte (empty) string lengths at least.
        let n = self.count(6)?;
        let mut out = Vec::with_capacity(usize::try_from(n.min(64)).unwrap_or(0));
        for _ in 0..n {
            let perms = Perms(self.i32()?);
            let scheme = self.string()?;
            let id = self.string()?;
            out.push(Acl { perms, id: Id { scheme, id } });
        }
        Ok(out)
    }
}

/// A sink refused what it was given (the tree it builds breaks a rule).
fn sink_err(at: usize, msg: String) -> DecodeError {
    DecodeError::new(at as u64, CorruptionKind::bad_tree(msg))
}

/// Smallest node record: two 1-byte strings and the fixed fields of V6.
const NODE_LEN_MIN: usize = 2 + 76;
/// Smallest session record (V0: id, timeout).
const SESSION_LEN_MIN: usize = 16;

/// Parses a body, handing what it holds to `sink`. Offsets in errors are body offsets.
pub fn read_body(
    body: &[u8],
    sink: &mut dyn ClickHouseSnapshotSink,
    compute_digest: bool,
) -> Result<(SnapshotHeader, BodyCounts), DecodeError> {
    let mut src = body;
    read_body_from(&mut Body::new(&mut src, Some(body.len() as u64)), sink, compute_digest)
}

/// [`read_body`] from a window over a reader.
pub(crate) fn read_body_from(
    c: &mut Body<'_>,
    sink: &mut dyn ClickHouseSnapshotSink,
    compute_digest: bool,
) -> Result<(SnapshotHeader, BodyCounts), DecodeError> {
    let version = c.u8()?;
    if version > VERSION_MAX {
        return Err(DecodeError::new(
            0,
            CorruptionKind::UnsupportedVersion { found: i64::from(version) },
        ));
    }
    let meta_at = c.pos();
    let mut scratch = Vec::new();
    c.bytes_into(&mut scratch)?;
    let meta = SnapshotMeta::decode(&scratch).map_err(|e| e.shifted(meta_at as u64 + 1))?;
    let (mut zxid, mut digest_version, mut digest) = (None, 0, None);
    if version >= 5 {
        zxid = Some(c.i64()?);
        digest_version = c.u8()?;
        if digest_version != 0 {
            digest = Some(c.u64()?);
        }
    }
    let session_id_counter = c.i64()?;
    let header = SnapshotHeader { version, meta, zxid, digest_version, digest, session_id_counter };
    sink.header(&header).map_err(|m| sink_err(c.pos(), m))?;
    let mut counts = BodyCounts::default();
    let acl_id_len = if version >= 7 { 4 } else { 8 };
    if version >= 1 {
        let n = c.count(acl_id_len + 8)?;
        for _ in 0..n {
            let id = if version >= 7 { u64::from(c.u32()?) } else { c.u64()? };
            let list = c.acl_list()?;
            sink.acl(id, list).map_err(|m| sink_err(c.pos(), m))?;
            counts.acls += 1;
        }
    }
    let mut interned: Vec<AclList> = Vec::new();
    let digest_algo = (compute_digest && matches!(digest_version, 4 | 5)).then_some(digest_version);
    let mut tree = keeper::TreeDigest::default();
    let node_count = c.count(NODE_LEN_MIN)?;
    let (mut path_buf, mut data_buf) = (Vec::new(), Vec::new());
    for _ in 0..node_count {
        let at = c.pos();
        c.bytes_into(&mut path_buf)?;
        let path = std::str::from_utf8(&path_buf)
            .map_err(|_| DecodeError::new(at as u64, CorruptionKind::InvalidUtf8))?;
        c.bytes_into(&mut data_buf)?;
        let data = &data_buf[..];
        let acl_id = if version == 0 {
            let list = c.acl_list()?;
            if list.is_empty() {
                0
            } else if let Some(i) = interned.iter().position(|l| *l == list) {
                i as u64 + 1
            } else {
                interned.push(list.clone());
                let id = interned.len() as u64;
                sink.acl(id, list).map_err(|m| sink_err(at, m))?;
                counts.acls += 1;
                id
            }
        } else if version >= 7 {
            u64::from(c.u32()?)
        } else {
            c.u64()?
        };
        if (1..=5).contains(&version) {
            c.bool("bool byte")?; // is_sequential, discarded by V6+ readers
        }
        let mut stat = KeeperStat {
            czxid: c.i64()?,
            mzxid: c.i64()?,
            ctime: c.i64()?,
            mtime: c.i64()?,
            version: c.i32()?,
            cversion: c.i32()?,
            aversion: c.i32()?,
            ephemeral_owner: c.i64()?,
            ..KeeperStat::default()
        };
        if version <= 5 {
            c.i32()?; // dataLength, discarded
        }
        stat.num_children = c.i32()?;
        stat.pzxid = c.i64()?;
        let seq_num = if version >= 7 { c.i64()? } else { i64::from(c.i32()?) };
        if (4..=5).contains(&version) {
            c.u64()?; // size_bytes, discarded
        }
        let ttl_ms = if version >= 8 && c.bool("bool byte")? { Some(c.i64()?) } else { None };
        let node = NodeRecord { path, data, acl_id, stat, seq_num, ttl_ms };
        if let Some(v) = digest_algo {
            if keeper::counts_in_tree_digest(path.as_bytes()) {
                tree.add(keeper::node_digest(v, path.as_bytes(), data, &stat, ttl_ms));
            }
        }
        sink.node(&node).map_err(|m| sink_err(at, m))?;
        counts.nodes += 1;
    }
    counts.computed_digest = digest_algo.map(|_| tree.0);
    let session_count = c.count(SESSION_LEN_MIN)?;
    for _ in 0..session_count {
        let at = c.pos();
        let id = c.i64()?;
        let timeout_ms = c.i64()?;
        let mut auths = Vec::new();
        if version >= 1 {
            let n = c.count(2)?;
            for _ in 0..n {
                let scheme = c.string()?;
                let id = c.string()?;
                auths.push(Id { scheme, id });
            }
        }
        sink.session(SessionRecord { id, timeout_ms, auths }).map_err(|m| sink_err(at, m))?;
        counts.sessions += 1;
    }
    if !c.at_end()? {
        let at = c.pos();
        c.bytes_into(&mut scratch)?;
        let cfg = ClusterConfig::decode(&scratch).map_err(|e| e.shifted(at as u64 + 1))?;
        if !c.at_end()? {
            let end = c.pos() as u64;
            let mut count = 0u64;
            while !c.at_end()? {
                count += c.window() as u64;
                c.pos = c.buf.len();
            }
            return Err(DecodeError::new(
                end,
                CorruptionKind::TrailingBytes { after: "cluster config trailer", count },
            ));
        }
        sink.cluster_config(cfg).map_err(|m| sink_err(at, m))?;
        counts.has_cluster_config = true;
    }
    Ok((header, counts))
}

fn put_varuint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varuint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Encodes a body of `version` (6, 7 or 8) from `source`. Every node the version
/// cannot hold is collected into one [`SnapshotError::Unrepresentable`].
///
/// `compute_digest`: `Some(4)` or `Some(5)` writes that digest version with the tree
/// digest computed from the nodes written (`/keeper/*` excluded, see
/// [`keeper::node_digest`]) instead of the source's header values.
pub fn write_body(
    source: &dyn ClickHouseSnapshotSource,
    version: u8,
    compute_digest: Option<u8>,
) -> Result<Vec<u8>, SnapshotError> {
    if !(6..=VERSION_MAX).contains(&version) {
        return Err(SnapshotError::VersionNotWritable { version, writable: "V6, V7 and V8" });
    }
    let h = source.header();
    let mut out = Vec::with_capacity(64 + usize::try_from(source.node_count()).unwrap_or(0) * 96);
    out.push(version);
    put_bytes(&mut out, &h.meta.encode());
    // Without a zxid, write what Keeper assumes for pre-V5 snapshots: the last index.
    let zxid = h.zxid.unwrap_or(i64::try_from(h.meta.last_log_idx).unwrap_or(i64::MAX));
    out.extend_from_slice(&zxid.to_le_bytes());
    let digest_version = compute_digest.unwrap_or(h.digest_version);
    out.push(digest_version);
    let digest_at = out.len();
    if digest_version != 0 {
        out.extend_from_slice(&h.digest.unwrap_or(0).to_le_bytes());
    }
    let mut tree = keeper::TreeDigest::default();
    out.extend_from_slice(&h.session_id_counter.to_le_bytes());
    let mut bad_acl = Vec::new();
    out.extend_from_slice(&source.acl_count().to_le_bytes());
    let mut n = 0u64;
    source
        .visit_acls(&mut |id, acls| {
            n += 1;
            if version >= 7 {
                match u32::try_from(id) {
                    Ok(v) => out.extend_from_slice(&v.to_le_bytes()),
                    Err(_) => bad_acl.push(format!("ACL map id {id}")),
                }
            } else {
                out.extend_from_slice(&id.to_le_bytes());
            }
            out.extend_from_slice(&(acls.len() as u64).to_le_bytes());
            for a in acls {
                out.extend_from_slice(&a.perms.0.to_le_bytes());
                put_bytes(&mut out, a.id.scheme.as_bytes());
                put_bytes(&mut out, a.id.id.as_bytes());
            }
            Ok(())
        })
        .map_err(SnapshotError::Source)?;
    if n != source.acl_count() {
        return Err(SnapshotError::Source(format!(
            "acl_count {} but {n} visited",
            source.acl_count()
        )));
    }
    if !bad_acl.is_empty() {
        return Err(SnapshotError::Unrepresentable {
            version,
            reason: "ACL ids above u32::MAX".into(),
            paths: bad_acl,
        });
    }
    let (mut ttl_bad, mut seq_bad, mut acl_bad) = (Vec::new(), Vec::new(), Vec::new());
    out.extend_from_slice(&source.node_count().to_le_bytes());
    let mut n = 0u64;
    source
        .visit_nodes(&mut |node| {
            n += 1;
            if let Some(v) = compute_digest.filter(|&v| v != 0) {
                if keeper::counts_in_tree_digest(node.path.as_bytes()) {
                    let ttl = node.ttl_ms;
                    tree.add(keeper::node_digest(
                        v,
                        node.path.as_bytes(),
                        node.data,
                        &node.stat,
                        ttl,
                    ));
                }
            }
            put_bytes(&mut out, node.path.as_bytes());
            put_bytes(&mut out, node.data);
            if version >= 7 {
                match u32::try_from(node.acl_id) {
                    Ok(v) => out.extend_from_slice(&v.to_le_bytes()),
                    Err(_) => acl_bad.push(node.path.to_owned()),
                }
            } else {
                out.extend_from_slice(&node.acl_id.to_le_bytes());
            }
            let s = &node.stat;
            for v in [s.czxid, s.mzxid, s.ctime, s.mtime] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for v in [s.version, s.cversion, s.aversion] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&s.ephemeral_owner.to_le_bytes());
            out.extend_from_slice(&s.num_children.to_le_bytes());
            out.extend_from_slice(&s.pzxid.to_le_bytes());
            if version >= 7 {
                out.extend_from_slice(&node.seq_num.to_le_bytes());
            } else {
                match i32::try_from(node.seq_num) {
                    Ok(v) => out.extend_from_slice(&v.to_le_bytes()),
                    Err(_) => seq_bad.push(node.path.to_owned()),
                }
            }
            if version >= 8 {
                out.push(u8::from(node.ttl_ms.is_some()));
                if let Some(t) = node.ttl_ms {
                    out.extend_from_slice(&t.to_le_bytes());
                }
            } else if node.ttl_ms.is_some() {
                ttl_bad.push(node.path.to_owned());
            }
            Ok(())
        })
        .map_err(SnapshotError::Source)?;
    if n != source.node_count() {
        return Err(SnapshotError::Source(format!(
            "node_count {} but {n} visited",
            source.node_count()
        )));
    }
    for (paths, reason) in [
        (ttl_bad, "TTL nodes need V8"),
        (seq_bad, "sequence counters above i32::MAX need V7"),
        (acl_bad, "ACL ids above u32::MAX"),
    ] {
        if !paths.is_empty() {
            return Err(SnapshotError::Unrepresentable { version, reason: reason.into(), paths });
        }
    }
    if compute_digest.is_some_and(|v| v != 0) {
        out[digest_at..digest_at + 8].copy_from_slice(&tree.0.to_le_bytes());
    }
    out.extend_from_slice(&source.session_count().to_le_bytes());
    let mut n = 0u64;
    source
        .visit_sessions(&mut |s| {
            n += 1;
            out.extend_from_slice(&s.id.to_le_bytes());
            out.extend_from_slice(&s.timeout_ms.to_le_bytes());
            out.extend_from_slice(&(s.auths.len() as u64).to_le_bytes());
            for a in &s.auths {
                put_bytes(&mut out, a.scheme.as_bytes());
                put_bytes(&mut out, a.id.as_bytes());
            }
            Ok(())
        })
        .map_err(SnapshotError::Source)?;
    if n != source.session_count() {
        return Err(SnapshotError::Source(format!(
            "session_count {} but {n} visited",
            source.session_count()
        )));
    }
    if let Some(cfg) = source.cluster_config() {
        put_bytes(&mut out, &cfg.encode());
    }
    Ok(out)
}
