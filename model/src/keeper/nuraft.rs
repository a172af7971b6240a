//! NuRaft's binary structures that Keeper stores: `cluster_config` (changelog entries
//! of value type 2, snapshot trailers) and `snapshot` (snapshot metadata).
//!
//! Layout (NuRaft `src/cluster_config.cxx`, `src/srv_config.cxx`, `src/snapshot.cxx`,
//! `src/buffer.cxx`; unchanged since 2019 apart from the `new_joiner` flag bit): every
//! integer little-endian, byte by byte; `user_ctx` as an i32 length and bytes;
//! endpoint and aux as NUL-terminated strings.
use crate::error::DecodeError;
use crate::le::Cursor as Cur;

/// One server of a cluster config (`srv_config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Server id.
    pub id: i32,
    /// Data center id.
    pub dc_id: i32,
    /// `host:port` (NUL-terminated on disk, so it cannot contain NUL).
    pub endpoint: String,
    /// Auxiliary text, usually empty.
    pub aux: String,
    /// Flags: bit 0 learner, bit 1 new joiner.
    pub flags: u8,
    /// Election priority.
    pub priority: i32,
}

/// A NuRaft `cluster_config`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterConfig {
    /// Log index of the entry holding this config.
    pub log_idx: u64,
    /// Log index of the previous config.
    pub prev_log_idx: u64,
    /// The async-replication byte (eBay's "ec" flag), 0 or 1 as written.
    pub async_replication: u8,
    /// Opaque user context.
    pub user_ctx: Vec<u8>,
    /// The servers.
    pub servers: Vec<ServerConfig>,
}

/// A NuRaft `snapshot` object: what Keeper stores as a snapshot's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    /// Snapshot type: 1 raw binary (deprecated), 2 logical object (what Keeper
    /// writes).
    pub kind: u8,
    /// Last Raft index the snapshot covers.
    pub last_log_idx: u64,
    /// Term of that index.
    pub last_log_term: u64,
    /// Size field, 0 in practice.
    pub size: u64,
    /// Cluster config at that index.
    pub config: ClusterConfig,
}

/// Smallest encoding of a server: ids, two empty C strings, flags, priority.
const SERVER_LEN_MIN: usize = 4 + 4 + 1 + 1 + 1 + 4;

/// A count (i32 LE, at least 0) of elements of at least `elem` bytes.
fn count(c: &mut Cur<'_>, elem: usize) -> Result<usize, DecodeError> {
    c.count_i32(u64::MAX, elem)
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    put_i32(out, i32::try_from(n).expect("NuRaft lengths fit in an i32"));
}

fn put_cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

impl ClusterConfig {
    fn decode_from(c: &mut Cur<'_>) -> Result<ClusterConfig, DecodeError> {
        let log_idx = c.u64()?;
        let prev_log_idx = c.u64()?;
        let async_replication = c.u8()?;
        let ctx_len = count(c, 1)?;
        let user_ctx = c.take(ctx_len)?.to_vec();
        let n = count(c, SERVER_LEN_MIN)?;
        let mut servers = Vec::with_capacity(n);
        for _ in 0..n {
            servers.push(ServerConfig {
                id: c.i32()?,
                dc_id: c.i32()?,
                endpoint: c.cstr()?.to_owned(),
                aux: c.cstr()?.to_owned(),
                flags: c.u8()?,
                priority: c.i32()?,
            });
        }
        Ok(ClusterConfig { log_idx, prev_log_idx, async_replication, user_ctx, servers })
    }

    /// Decodes a config that must fill `buf` exactly.
    pub fn decode(buf: &[u8]) -> Result<ClusterConfig, DecodeError> {
        let mut c = Cur::new(buf);
        let cfg = ClusterConfig::decode_from(&mut c)?;
        c.expect_end("cluster config")?;
        Ok(cfg)
    }

    /// Appends the encoding to `out`.
    ///
    /// # Panics
    /// When `user_ctx` or the server list is longer than `i32::MAX`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.log_idx.to_le_bytes());
        out.extend_from_slice(&self.prev_log_idx.to_le_bytes());
        out.push(self.async_replication);
        put_len(out, self.user_ctx.len());
        out.extend_from_slice(&self.user_ctx);
        put_len(out, self.servers.len());
        for s in &self.servers {
            put_i32(out, s.id);
            put_i32(out, s.dc_id);
            put_cstr(out, &s.endpoint);
            put_cstr(out, &s.aux);
            out.push(s.flags);
            put_i32(out, s.priority);
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

impl SnapshotMeta {
    /// Metadata the way Keeper's converter and tests build it: logical object,
    /// size 0, an empty config.
    pub fn new(last_log_idx: u64, last_log_term: u64) -> SnapshotMeta {
        SnapshotMeta {
            kind: 2,
            last_log_idx,
            last_log_term,
            size: 0,
            config: ClusterConfig::default(),
        }
    }

    /// Decodes metadata that must fill `buf` exactly.
    pub fn decode(buf: &[u8]) -> Result<SnapshotMeta, DecodeError> {
        let mut c = Cur::new(buf);
        let kind = c.u8()?;
        let last_log_idx = c.u64()?;
        let last_log_term = c.u64()?;
        let size = c.u64()?;
        let config = ClusterConfig::decode_from(&mut c)?;
        c.expect_end("snapshot metadata")?;
        Ok(SnapshotMeta { kind, last_log_idx, last_log_term, size, config })
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.kind];
        out.extend_from_slice(&self.last_log_idx.to_le_bytes());
        out.extend_from_slice(&self.last_log_term.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        self.config.encode_into(&mut out);
        out
    }
}
