//! Encoding and decoding of what is inside blocks: node records, the metadata and the
//! footer index (`docs/FORMAT.md`, "Native snapshot").

use std::collections::HashSet;

use keeperkit_model::{Acl, CorruptionKind, DecodeError, Id, Perms, SessionId, Zxid};

use super::format::{
    len_u32, len_u64, put_string, put_varint, put_zvarint, Codec, Dec, DecExt, ACL_LEN_MAX,
    ACL_LIST_COUNT_MAX, AUTH_IDS_MAX, CHUNK_COUNT_MAX, CONFIG_LEN_MAX, DATA_LEN_MAX,
    ENTRY_FLAGS_KNOWN, ENTRY_FLAG_PATH_CUT, FIRST_PATH_LEN_MAX, FOOTER_ENTRY_FIXED_LEN, ID_LEN_MAX,
    NODE_COUNT_MAX, PATH_EXPANSION_MAX, PATH_LEN_MAX, SESSION_COUNT_MAX,
};
use super::{AclEntry, NodeRecord, NodeStat, SessionRecord, SnapshotMeta};

/// Node flag: the value is null (no length, no bytes follow).
pub(crate) const NODE_FLAG_NULL: u8 = 1;
/// Every node flag v1 knows.
const NODE_FLAGS_KNOWN: u8 = NODE_FLAG_NULL;

// ---- Node records ----

/// State of the node encoder within one chunk.
#[derive(Debug, Default)]
pub(crate) struct ChunkEncoder {
    /// Path of the previous node of this chunk (empty at the chunk start).
    prev: String,
    /// Sum of the full path lengths encoded in this chunk.
    path_bytes: u64,
}

impl ChunkEncoder {
    /// Starts a new chunk: the next node is written with its full path.
    pub(crate) fn reset(&mut self) {
        self.prev.clear();
        self.path_bytes = 0;
    }

    /// Appends one node record to `raw` (the chunk's raw bytes so far). The caller has
    /// checked the limits.
    pub(crate) fn encode(&mut self, raw: &mut Vec<u8>, rec: &NodeRecord<'_>) {
        debug_assert!(rec.path.len() <= PATH_LEN_MAX);
        debug_assert!(rec.data.is_none_or(|d| d.len() <= DATA_LEN_MAX));
        let path = rec.path;
        let mut shared = common_prefix(self.prev.as_bytes(), path.as_bytes());
        while !path.is_char_boundary(shared) {
            shared -= 1;
        }
        let start = raw.len();
        let path_bytes = self.path_bytes + len_u64(path.len());
        encode_record(raw, shared, rec);
        // Keep the chunk's path expansion within PATH_EXPANSION_MAX: when sharing the
        // prefix would break it, write the whole path (its bytes then pay for it).
        if path_bytes > PATH_EXPANSION_MAX * len_u64(raw.len()) && shared > 0 {
            raw.truncate(start);
            shared = 0;
            encode_record(raw, shared, rec);
        }
        debug_assert!(path_bytes <= PATH_EXPANSION_MAX * len_u64(raw.len()));
        self.path_bytes = path_bytes;
        self.prev.truncate(shared);
        self.prev.push_str(&path[shared..]);
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn encode_record(raw: &mut Vec<u8>, shared: usize, rec: &NodeRecord<'_>) {
    let suffix = &rec.path.as_bytes()[shared..];
    put_varint(raw, len_u64(shared));
    put_varint(raw, len_u64(suffix.len()));
    raw.extend_from_slice(suffix);
    match rec.data {
        None => raw.push(NODE_FLAG_NULL),
        Some(d) => {
            raw.push(0);
            put_varint(raw, len_u64(d.len()));
            raw.extend_from_slice(d);
        }
    }
    put_varint(raw, rec.acl_id);
    let s = &rec.stat;
    put_zvarint(raw, s.czxid);
    put_zvarint(raw, s.mzxid.wrapping_sub(s.czxid));
    put_zvarint(raw, s.pzxid.wrapping_sub(s.czxid));
    put_zvarint(raw, s.ctime);
    put_zvarint(raw, s.mtime.wrapping_sub(s.ctime));
    put_zvarint(raw, i64::from(s.version));
    put_zvarint(raw, i64::from(s.cversion));
    put_zvarint(raw, i64::from(s.aversion));
    put_zvarint(raw, s.owner);
    put_zvarint(raw, i64::from(s.seq));
}

/// Decodes the node records of one chunk's raw bytes, one at a time.
#[derive(Debug)]
pub(crate) struct NodeDecoder<'a> {
    dec: Dec<'a>,
    path: String,
    path_bytes: u64,
    path_bytes_max: u64,
}

impl<'a> NodeDecoder<'a> {
    pub(crate) fn new(raw: &'a [u8], path: String) -> NodeDecoder<'a> {
        let mut path = path;
        path.clear();
        NodeDecoder {
            dec: Dec::new(raw),
            path,
            path_bytes: 0,
            path_bytes_max: PATH_EXPANSION_MAX.saturating_mul(len_u64(raw.len())),
        }
    }

    /// Offset of the next record in the raw bytes.
    pub(crate) fn pos(&self) -> usize {
        self.dec.pos()
    }

    /// Whether every byte was consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.dec.is_empty()
    }

    /// Gives the path buffer back for reuse.
    pub(crate) fn into_path_buf(self) -> String {
        self.path
    }

    /// Decodes the next record. Offsets in errors are relative to the raw bytes.
    pub(crate) fn next_record(&mut self) -> Result<NodeRecord<'_>, DecodeError> {
        let d = &mut self.dec;
        let at = d.pos();
        let shared = d.varint_len(self.path.len())?;
        if !self.path.is_char_boundary(shared) {
            return Err(Dec::err_at(
                at,
                CorruptionKind::inconsistent("shared path prefix ends inside a character"),
            ));
        }
        let suffix_len = d.varint_len(PATH_LEN_MAX - shared)?;
        let suffix_at = d.pos();
        let suffix = d.take(suffix_len)?;
        let suffix = std::str::from_utf8(suffix)
            .map_err(|_| DecodeError::new(len_u64(suffix_at), CorruptionKind::InvalidUtf8))?;
        self.path.truncate(shared);
        self.path.push_str(suffix);
        if !self.path.starts_with('/') {
            return Err(Dec::err_at(
                at,
                CorruptionKind::bad_tree(format!("path {:?} does not start with /", self.path)),
            ));
        }
        self.path_bytes += len_u64(self.path.len());
        if self.path_bytes > self.path_bytes_max {
            // Paths may not expand past PATH_EXPANSION_MAX times the chunk's raw length.
            return Err(Dec::err_at(
                at,
                CorruptionKind::LengthOutOfRange {
                    len: i64::try_from(self.path_bytes).unwrap_or(i64::MAX),
                    max: self.path_bytes_max,
                },
            ));
        }
        let flags_at = d.pos();
        let flags = d.u8()?;
        if flags & !NODE_FLAGS_KNOWN != 0 {
            return Err(Dec::err_at(
                flags_at,
                CorruptionKind::UnknownValue { field: "node flags", found: u64::from(flags) },
            ));
        }
        let data = if flags & NODE_FLAG_NULL != 0 {
            None
        } else {
            let n = d.varint_len(DATA_LEN_MAX)?;
            Some(d.take(n)?)
        };
        let acl_id = d.varint()?;
        let czxid = d.zvarint()?;
        let mzxid = czxid.wrapping_add(d.zvarint()?);
        let pzxid = czxid.wrapping_add(d.zvarint()?);
        let ctime = d.zvarint()?;
        let mtime = ctime.wrapping_add(d.zvarint()?);
        let version = d.zvarint_i32()?;
        let cversion = d.zvarint_i32()?;
        let aversion = d.zvarint_i32()?;
        let owner = d.zvarint()?;
        let seq = d.zvarint_i32()?;
        let stat =
            NodeStat { czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion, owner, seq };
        Ok(NodeRecord { path: &self.path, data, acl_id, stat })
    }
}

// ---- Metadata ----

/// Fixed part of the metadata: last index, last term, zxid, node count, digest (5 ×
/// u64).
const META_FIXED_LEN: usize = 40;
/// Smallest session record: id (i64), timeout (i32), auth count (u32).
const SESSION_LEN_MIN: usize = 16;
/// Smallest auth id or ACL id: two string lengths.
const ID_LEN_MIN: usize = 8;
/// Smallest ACL table entry: id (u64), entry count (u32).
const ACL_ENTRY_LEN_MIN: usize = 12;
/// Smallest ACL: perms (i32) and two string lengths.
const ACL_LEN_MIN: usize = 12;

/// Checks the limits of a metadata record before anything is written. The message
/// names the limit.
pub(crate) fn check_meta(meta: &SnapshotMeta) -> Result<(), String> {
    if meta.node_count > NODE_COUNT_MAX {
        return Err(format!(
            "{} nodes: more than NODE_COUNT_MAX ({NODE_COUNT_MAX})",
            meta.node_count
        ));
    }
    if meta.cluster_config.len() > CONFIG_LEN_MAX {
        return Err(format!(
            "cluster configuration of {} bytes: more than CONFIG_LEN_MAX ({CONFIG_LEN_MAX})",
            meta.cluster_config.len()
        ));
    }
    if meta.sessions.len() > SESSION_COUNT_MAX {
        return Err(format!(
            "{} sessions: more than SESSION_COUNT_MAX ({SESSION_COUNT_MAX})",
            meta.sessions.len()
        ));
    }
    let mut seen = HashSet::with_capacity(meta.sessions.len());
    for s in &meta.sessions {
        if !seen.insert(s.id) {
            return Err(format!("session {} is listed twice", s.id));
        }
        if s.auth.len() > AUTH_IDS_MAX {
            return Err(format!(
                "session {} has {} auth ids: more than AUTH_IDS_MAX ({AUTH_IDS_MAX})",
                s.id,
                s.auth.len()
            ));
        }
        for id in &s.auth {
            check_id(id).map_err(|e| format!("session {}: {e}", s.id))?;
        }
    }
    if meta.acls.len() > ACL_LIST_COUNT_MAX {
        return Err(format!(
            "{} ACL lists: more than ACL_LIST_COUNT_MAX ({ACL_LIST_COUNT_MAX})",
            meta.acls.len()
        ));
    }
    let mut seen = HashSet::with_capacity(meta.acls.len());
    for e in &meta.acls {
        if !seen.insert(e.id) {
            return Err(format!("ACL id {} is listed twice", e.id));
        }
        if e.acl.len() > ACL_LEN_MAX {
            return Err(format!(
                "ACL list {} has {} entries: more than ACL_LEN_MAX ({ACL_LEN_MAX})",
                e.id,
                e.acl.len()
            ));
        }
        for a in &e.acl {
            check_id(&a.id).map_err(|err| format!("ACL list {}: {err}", e.id))?;
        }
    }
    Ok(())
}

fn check_id(id: &Id) -> Result<(), String> {
    for s in [&id.scheme, &id.id] {
        if s.len() > ID_LEN_MAX {
            return Err(format!("an id string of {} bytes: more than ID_LEN_MAX", s.len()));
        }
    }
    Ok(())
}

/// Encodes the metadata (limits already checked by [`check_meta`]).
pub(crate) fn encode_meta(meta: &SnapshotMeta, out: &mut Vec<u8>) {
    out.extend_from_slice(&meta.last_index.to_le_bytes());
    out.extend_from_slice(&meta.last_term.to_le_bytes());
    out.extend_from_slice(&meta.zxid.0.to_le_bytes());
    out.extend_from_slice(&meta.node_count.to_le_bytes());
    out.extend_from_slice(&meta.digest.to_le_bytes());
    out.extend_from_slice(&len_u32(meta.cluster_config.len()).to_le_bytes());
    out.extend_from_slice(&meta.cluster_config);
    out.extend_from_slice(&len_u32(meta.sessions.len()).to_le_bytes());
    for s in &meta.sessions {
        out.extend_from_slice(&s.id.0.to_le_bytes());
        out.extend_from_slice(&s.timeout_ms.to_le_bytes());
        out.extend_from_slice(&len_u32(s.auth.len()).to_le_bytes());
        for id in &s.auth {
            put_string(out, &id.scheme);
            put_string(out, &id.id);
        }
    }
    out.extend_from_slice(&len_u32(meta.acls.len()).to_le_bytes());
    for e in &meta.acls {
        out.extend_from_slice(&e.id.to_le_bytes());
        out.extend_from_slice(&len_u32(e.acl.len()).to_le_bytes());
        for a in &e.acl {
            out.extend_from_slice(&a.perms.0.to_le_bytes());
            put_string(out, &a.id.scheme);
            put_string(out, &a.id.id);
        }
    }
}

/// Decodes the metadata; every count is checked against its limit and the bytes that
/// remain before anything is allocated. Offsets are relative to the raw bytes.
pub(crate) fn decode_meta(raw: &[u8]) -> Result<SnapshotMeta, DecodeError> {
    let mut d = Dec::new(raw);
    let last_index = d.u64()?;
    let last_term = d.u64()?;
    let zxid = Zxid(d.i64()?);
    let count_at = d.pos();
    let node_count = d.u64()?;
    if node_count > NODE_COUNT_MAX {
        return Err(DecodeError::new(
            len_u64(count_at),
            CorruptionKind::LengthOutOfRange {
                len: i64::try_from(node_count).unwrap_or(i64::MAX),
                max: NODE_COUNT_MAX,
            },
        ));
    }
    let digest = d.u64()?;
    debug_assert_eq!(d.pos(), META_FIXED_LEN);
    let config_len = d.count(CONFIG_LEN_MAX, 1)?;
    let cluster_config = d.take(config_len)?.to_vec();

    let n = d.count(SESSION_COUNT_MAX, SESSION_LEN_MIN)?;
    let mut sessions = Vec::with_capacity(n);
    let mut seen = HashSet::with_capacity(n);
    for _ in 0..n {
        let at = d.pos();
        let id = SessionId(d.i64()?);
        let timeout_ms = d.i32()?;
        let k = d.count(AUTH_IDS_MAX, ID_LEN_MIN)?;
        let mut auth = Vec::with_capacity(k);
        for _ in 0..k {
            let scheme = d.string(ID_LEN_MAX)?.to_owned();
            let id = d.string(ID_LEN_MAX)?.to_owned();
            auth.push(Id { scheme, id });
        }
        if !seen.insert(id) {
            return Err(Dec::err_at(
                at,
                CorruptionKind::inconsistent(format!("session {id} is listed twice")),
            ));
        }
        sessions.push(SessionRecord { id, timeout_ms, auth });
    }

    let n = d.count(ACL_LIST_COUNT_MAX, ACL_ENTRY_LEN_MIN)?;
    let mut acls = Vec::with_capacity(n);
    let mut seen = HashSet::with_capacity(n);
    for _ in 0..n {
        let at = d.pos();
        let id = d.u64()?;
        let k = d.count(ACL_LEN_MAX, ACL_LEN_MIN)?;
        let mut acl = Vec::with_capacity(k);
        for _ in 0..k {
            let perms = Perms(d.i32()?);
            let scheme = d.string(ID_LEN_MAX)?.to_owned();
            let id = d.string(ID_LEN_MAX)?.to_owned();
            acl.push(Acl { perms, id: Id { scheme, id } });
        }
        if !seen.insert(id) {
            return Err(Dec::err_at(
                at,
                CorruptionKind::inconsistent(format!("ACL id {id} is listed twice")),
            ));
        }
        acls.push(AclEntry { id, acl });
    }
    if !d.is_empty() {
        return Err(d.err(CorruptionKind::TrailingBytes {
            after: "metadata",
            count: len_u64(d.remaining()),
        }));
    }
    Ok(SnapshotMeta {
        last_index,
        last_term,
        zxid,
        node_count,
        digest,
        cluster_config,
        sessions,
        acls,
    })
}

// ---- Footer ----

/// One chunk in the footer index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FooterEntry {
    /// File offset of the chunk's block header.
    pub(crate) offset: u64,
    /// Stored bytes after the block header.
    pub(crate) stored_len: u32,
    /// Raw (decompressed) bytes.
    pub(crate) raw_len: u32,
    /// Nodes in the chunk.
    pub(crate) node_count: u32,
    /// How the chunk is stored.
    pub(crate) codec: Codec,
    /// The first path of the chunk, at most [`FIRST_PATH_LEN_MAX`] bytes of it.
    pub(crate) first_path: Vec<u8>,
    /// Whether `first_path` was cut.
    pub(crate) path_cut: bool,
}

impl Default for FooterEntry {
    fn default() -> FooterEntry {
        FooterEntry {
            offset: 0,
            stored_len: 0,
            raw_len: 0,
            node_count: 0,
            codec: Codec::Raw,
            first_path: Vec::new(),
            path_cut: false,
        }
    }
}

impl FooterEntry {
    /// The first path of a chunk as the footer keeps it (cut to
    /// [`FIRST_PATH_LEN_MAX`] bytes).
    pub(crate) fn set_first_path(&mut self, path: &str) {
        let n = path.len().min(FIRST_PATH_LEN_MAX);
        self.first_path.clear();
        self.first_path.extend_from_slice(&path.as_bytes()[..n]);
        self.path_cut = n < path.len();
    }

    /// Length of the whole block.
    pub(crate) fn block_len(&self) -> u64 {
        super::format::BLOCK_HEADER_LEN as u64 + u64::from(self.stored_len)
    }
}

/// The footer index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Footer {
    /// File offset of the metadata block.
    pub(crate) meta_offset: u64,
    /// Stored length of the metadata block (after its header).
    pub(crate) meta_stored_len: u32,
    /// Every chunk, in order.
    pub(crate) chunks: Vec<FooterEntry>,
}

/// Encodes the footer's raw bytes.
pub(crate) fn encode_footer(f: &Footer, out: &mut Vec<u8>) {
    debug_assert!(f.chunks.len() <= CHUNK_COUNT_MAX);
    out.extend_from_slice(&f.meta_offset.to_le_bytes());
    out.extend_from_slice(&f.meta_stored_len.to_le_bytes());
    out.extend_from_slice(&len_u32(f.chunks.len()).to_le_bytes());
    for e in &f.chunks {
        debug_assert!(e.first_path.len() <= FIRST_PATH_LEN_MAX);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.stored_len.to_le_bytes());
        out.extend_from_slice(&e.raw_len.to_le_bytes());
        out.extend_from_slice(&e.node_count.to_le_bytes());
        out.push(e.codec.code());
        out.push(if e.path_cut { ENTRY_FLAG_PATH_CUT } else { 0 });
        let n = u16::try_from(e.first_path.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&e.first_path);
    }
}

/// Decodes the footer's raw bytes (offsets relative to them). Checks the fields one by
/// one; how the entries fit the file is checked by the reader.
pub(crate) fn decode_footer(raw: &[u8]) -> Result<Footer, DecodeError> {
    let mut d = Dec::new(raw);
    let meta_offset = d.u64()?;
    let meta_stored_len = d.u32()?;
    let n = d.count(CHUNK_COUNT_MAX, FOOTER_ENTRY_FIXED_LEN)?;
    let mut chunks = Vec::with_capacity(n);
    for _ in 0..n {
        let offset = d.u64()?;
        let stored_len = d.u32()?;
        let raw_len = d.u32()?;
        let node_count = d.u32()?;
        let codec_at = d.pos();
        let code = d.u8()?;
        let Some(codec) = Codec::from_code(code) else {
            return Err(Dec::err_at(
                codec_at,
                CorruptionKind::UnknownValue { field: "codec", found: u64::from(code) },
            ));
        };
        let flags = d.u8()?;
        if flags & !ENTRY_FLAGS_KNOWN != 0 {
            return Err(Dec::err_at(
                codec_at + 1,
                CorruptionKind::UnknownValue {
                    field: "footer entry flags",
                    found: u64::from(flags),
                },
            ));
        }
        let len_at = d.pos();
        let len = usize::from(d.u16()?);
        if len > FIRST_PATH_LEN_MAX {
            return Err(DecodeError::new(
                len_u64(len_at),
                CorruptionKind::LengthOutOfRange {
                    len: i64::from(len_u32(len)),
                    max: len_u64(FIRST_PATH_LEN_MAX),
                },
            ));
        }
        let first_path = d.take(len)?.to_vec();
        chunks.push(FooterEntry {
            offset,
            stored_len,
            raw_len,
            node_count,
            codec,
            first_path,
            path_cut: flags & ENTRY_FLAG_PATH_CUT != 0,
        });
    }
    if !d.is_empty() {
        return Err(d.err(CorruptionKind::TrailingBytes {
            after: "footer entries",
            count: len_u64(d.remaining()),
        }));
    }
    Ok(Footer { meta_offset, meta_stored_len, chunks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        path: &str,
        data: Option<&'static [u8]>,
        seed: i64,
    ) -> (String, Option<&'static [u8]>, NodeStat) {
        let stat = NodeStat {
            czxid: seed,
            mzxid: seed + 5,
            pzxid: i64::MIN + seed,
            ctime: 1_700_000_000_000 + seed,
            mtime: -1,
            version: i32::MAX,
            cversion: -3,
            aversion: i32::MIN,
            owner: i64::MIN,
            seq: 17,
        };
        (path.to_owned(), data, stat)
    }

    #[test]
    fn nodes_round_trip_with_prefix_sharing() {
        let nodes = [
            rec("/", Some(b""), 0),
            rec("/a", None, 1),
            rec("/a/béé", Some(b"x"), 2),
            rec("/a/bé", Some(&[0, 1, 2]), 3),
            rec("/zz", Some(b"yy"), 4),
        ];
        let mut raw = Vec::new();
        let mut enc = ChunkEncoder::default();
        for (i, (p, d, s)) in nodes.iter().enumerate() {
            let r = NodeRecord { path: p, data: *d, acl_id: i as u64 * 1000, stat: *s };
            enc.encode(&mut raw, &r);
        }
        let mut dec = NodeDecoder::new(&raw, String::new());
        for (i, (p, d, s)) in nodes.iter().enumerate() {
            let r = dec.next_record().expect("decodes");
            assert_eq!(r.path, p);
            assert_eq!(r.data, *d);
            assert_eq!(r.acl_id, i as u64 * 1000);
            assert_eq!(r.stat, *s);
        }
        assert!(dec.is_empty());
    }

    #[test]
    fn deep_paths_stay_within_the_expansion_bound() {
        let mut raw = Vec::new();
        let mut enc = ChunkEncoder::default();
        let mut path = String::new();
        let mut total = 0u64;
        for _ in 0..2000 {
            path.push_str("/abcdefgh");
            total += path.len() as u64;
            let r = NodeRecord { path: &path, data: None, acl_id: 0, stat: NodeStat::default() };
            enc.encode(&mut raw, &r);
        }
        assert!(total <= PATH_EXPANSION_MAX * raw.len() as u64);
        let mut dec = NodeDecoder::new(&raw, String::new());
        for _ in 0..2000 {
            dec.next_record().expect("decodes");
        }
        assert!(dec.is_empty());
    }

    #[test]
    fn meta_round_trip() {
        let meta = SnapshotMeta {
            last_index: 1,
            last_term: 2,
            zxid: Zxid(0x1_0000_0003),
            node_count: 4,
            digest: u64::MAX,
            cluster_config: b"server.1=a:1:2".to_vec(),
            sessions: vec![
                SessionRecord { id: SessionId(-5), timeout_ms: 30_000, auth: vec![] },
                SessionRecord {
                    id: SessionId(7),
                    timeout_ms: 4000,
                    auth: vec![Id { scheme: "digest".into(), id: "u:p".into() }],
                },
            ],
            acls: vec![
                AclEntry { id: 0, acl: Acl::open_unsafe() },
                AclEntry { id: u64::MAX, acl: vec![] },
            ],
        };
        check_meta(&meta).expect("within limits");
        let mut raw = Vec::new();
        encode_meta(&meta, &mut raw);
        assert_eq!(decode_meta(&raw), Ok(meta));
        for cut in 0..raw.len() {
            assert!(decode_meta(&raw[..cut]).is_err());
        }
    }

    #[test]
    fn footer_round_trip() {
        let mut e = FooterEntry {
            offset: 32,
            stored_len: 10,
            raw_len: 20,
            node_count: 1,
            codec: Codec::Zstd,
            first_path: vec![],
            path_cut: false,
        };
        e.set_first_path(&"/x".repeat(300));
        assert!(e.path_cut);
        assert_eq!(e.first_path.len(), FIRST_PATH_LEN_MAX);
        let f = Footer { meta_offset: 74, meta_stored_len: 9, chunks: vec![e] };
        let mut raw = Vec::new();
        encode_footer(&f, &mut raw);
        assert_eq!(decode_footer(&raw), Ok(f));
        for cut in 0..raw.len() {
            assert!(decode_footer(&raw[..cut]).is_err());
        }
    }
}
