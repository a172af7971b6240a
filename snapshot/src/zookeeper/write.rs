//! Writing Apache ZooKeeper 3.x snapshots (`snapshot.<hex zxid>[.gz|.snappy]`): the
//! exact inverse of [`crate::zookeeper::read_snapshot`].
//!
//! The stream is laid out as ZooKeeper's `FileSnap.serialize` writes it (docs/formats/zookeeper.md, "Snapshot"):
//!
//! ```text
//! FileHeader      "ZKSN", version 2, dbid -1
//! int  count      then count × (long sessionId, int timeoutMs)
//! int  count      then count × (long aclId, vector<ACL>)  ids 1, 2, … in order of first use
//! nodes           pre-order; the root as "", the others by full path; stored stat
//! ustring "/"     end of the tree
//! long checksum1  Adler-32 of every byte before it
//! ustring "/"
//! long zxid, int version, long digest       (the 3.6+ digest trailer)
//! long checksum2  Adler-32 of every byte before it
//! ustring "/"
//! ```
//!
//! `world:anyone:31` alone is written as ACL id −1 and never put in the map (as
//! ZooKeeper does for the root and the built-in nodes). Compression wraps the whole
//! stream: gzip, or snappy-java's `SnappyOutputStream` framing (16-byte header, then
//! blocks of at most 32 KiB of input, each an `int` big-endian length and a raw Snappy
//! block), which is what ZooKeeper's `SnapStream` reads.
//!
//! The writer knows nothing of trees: it reads a [`ZkSnapshotSource`].

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_model::jute::Writer;
use keeperkit_model::{Acl, AclList, SessionId, StatPersisted, Zxid};
use keeperkit_vfs::{File, FileSystem, OpenMode};

use crate::error::SnapshotError;
use crate::zookeeper::{
    Compression, SnapshotDigest, SNAPPY_MAGIC, SNAPSHOT_FILE_PREFIX, SNAP_MAGIC, SNAP_VERSION,
};

/// The dbid every ZooKeeper 3.x snapshot header holds.
pub const SNAP_DBID: i64 = -1;

/// The digest version ZooKeeper 3.6+ writes (`DigestCalculator.DIGEST_VERSION`).
pub const DIGEST_VERSION: i32 = 2;

/// Bytes of input per snappy block, as snappy-java's `SnappyOutputStream` default.
pub const SNAPPY_BLOCK_LEN: usize = 32 * 1024;

/// Suffix of the temporary file a snapshot is written to before the rename.
pub const TEMP_SUFFIX: &str = ".tmp";

/// One node handed to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZkNode<'a> {
    /// Full path: `/` (or `""`) for the root, `/a/b` for the others.
    pub path: &'a str,
    /// The value; `None` when null (distinct from empty).
    pub data: Option<&'a [u8]>,
    /// The node's ACL list.
    pub acl: &'a [Acl],
    /// The stat as ZooKeeper stores it: stored cversion (the sequence counter) and the
    /// raw ephemeralOwner (session id, container or TTL encoding).
    pub stat: StatPersisted,
}

/// What a snapshot is written from.
pub trait ZkSnapshotSource {
    /// The live sessions and their timeouts, in the order to write them.
    fn sessions(&self) -> Vec<(SessionId, i32)>;

    /// Calls `f` for every node, parents before children, the root first. Called
    /// twice (once to build the ACL map, once to write the nodes); both walks must
    /// yield the same nodes in the same order. Stops at the first `Err` of `f`.
    fn for_each_node(
        &self,
        f: &mut dyn FnMut(ZkNode<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError>;

    /// The digest trailer; `None` writes a pre-3.6 snapshot (first seal only).
    fn digest(&self) -> Option<SnapshotDigest>;
}

/// How to write a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZkWriteOptions {
    /// Stream compression (also decides the file name suffix).
    pub compression: Compression,
}

impl Default for ZkWriteOptions {
    fn default() -> ZkWriteOptions {
        ZkWriteOptions { compression: Compression::None }
    }
}

/// What [`write_snapshot`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkWrittenSnapshot {
    /// The final path.
    pub path: PathBuf,
    /// File length in bytes.
    pub file_len: u64,
    /// Length of the uncompressed stream.
    pub stream_len: u64,
    /// Nodes written.
    pub node_count: u64,
    /// Sessions written.
    pub session_count: u64,
    /// ACL map entries written.
    pub acl_count: u64,
}

/// The file name ZooKeeper gives the snapshot of `zxid`: `snapshot.<hex>` plus the
/// compression suffix (`Util.makeSnapshotName`, `Long.toHexString`).
pub fn snapshot_file_name(zxid: Zxid, compression: Compression) -> String {
    format!("{SNAPSHOT_FILE_PREFIX}.{:x}{}", zxid.0, compression.suffix())
}

fn invalid(path: &Path, reason: String) -> SnapshotError {
    SnapshotError::Refused { path: path.to_path_buf(), reason }
}

/// Writes `source` as `dir/snapshot.<hex zxid>[suffix]`: first to a `.tmp` sibling
/// (replacing a leftover), fsynced, then renamed into place and the directory fsynced.
/// On any error the temporary file is removed (best effort) and the final name is not
/// touched.
///
/// Refused before anything is written (a [`SnapshotError::Refused`]): a negative
/// zxid. Refused while writing (the temporary file is then
/// removed): a first node that is not the root, a path or value longer than a jute
/// length can say (`i32::MAX`), an ACL list that changed between the two walks.
pub fn write_snapshot(
    fs: &dyn FileSystem,
    dir: &Path,
    zxid: Zxid,
    source: &dyn ZkSnapshotSource,
    opts: &ZkWriteOptions,
) -> Result<ZkWrittenSnapshot, SnapshotError> {
    let name = snapshot_file_name(zxid, opts.compression);
    let final_path = dir.join(&name);
    if zxid.0 < 0 {
        return Err(invalid(&final_path, format!("zxid {} is negative", zxid.0)));
    }
    let tmp_path = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let file = fs
        .open(&tmp_path, OpenMode::CreateTruncate)
        .map_err(|e| SnapshotError::io(&tmp_path, e))?;
    let result = write_to_file(file.clone(), &tmp_path, source, opts)
        .and_then(|w| file.sync_all().map(|()| w).map_err(|e| SnapshotError::io(&tmp_path, e)));
    drop(file);
    let written = match result {
        Ok(w) => w,
        Err(e) => {
            let _ = fs.remove_file(&tmp_path);
            return Err(e);
        }
    };
    fs.rename(&tmp_path, &final_path).map_err(|e| SnapshotError::io(&final_path, e))?;
    fs.sync_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
    Ok(ZkWrittenSnapshot { path: final_path, ..written })
}

/// Encodes `source` as a complete snapshot file's bytes in memory (compressed as
/// `compression` says). For tests and small trees; [`write_snapshot`] streams.
pub fn encode_snapshot(
    source: &dyn ZkSnapshotSource,
    compression: Compression,
) -> Result<Vec<u8>, SnapshotError> {
    let path = Path::new("<memory>");
    let mut out = Vec::new();
    let mut sink = open_sink(&mut out, compression);
    encode(&mut sink, path, source)?;
    sink.finish().map_err(|e| SnapshotError::io(path, e))?;
    Ok(out)
}

fn write_to_file(
    file: Arc<dyn File>,
    path: &Path,
    source: &dyn ZkSnapshotSource,
    opts: &ZkWriteOptions,
) -> Result<ZkWrittenSnapshot, SnapshotError> {
    let appender = FileAppender { file, pos: 0 };
    let mut buffered = io::BufWriter::with_capacity(256 * 1024, appender);
    let mut sink = open_sink(&mut buffered, opts.compression);
    let counts = encode(&mut sink, path, source)?;
    sink.finish().map_err(|e| SnapshotError::io(path, e))?;
    let appender = buffered.into_inner().map_err(|e| SnapshotError::io(path, e.into_error()))?;
    Ok(ZkWrittenSnapshot {
        path: path.to_path_buf(),
        file_len: appender.pos,
        stream_len: counts.stream_len,
        node_count: counts.nodes,
        session_count: counts.sessions,
        acl_count: counts.acls,
    })
}

/// Appends to a [`File`] at a running offset.
struct FileAppender {
    file: Arc<dyn File>,
    pos: u64,
}

impl Write for FileAppender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.pos)?;
        self.pos += u64::try_from(buf.len()).unwrap_or(u64::MAX);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The compression layer.
enum Sink<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Snappy(Box<SnappyJavaWriter<W>>),
}

fn open_sink<W: Write>(w: W, compression: Compression) -> Sink<W> {
    match compression {
        Compression::None => Sink::Plain(w),
        Compression::Gzip => {
            Sink::Gzip(flate2::write::GzEncoder::new(w, flate2::Compression::default()))
        }
        Compression::Snappy => Sink::Snappy(Box::new(SnappyJavaWriter::new(w))),
    }
}

impl<W: Write> Sink<W> {
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(b),
            Sink::Gzip(w) => w.write_all(b),
            Sink::Snappy(w) => w.write_all(b),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Sink::Plain(mut w) => w.flush(),
            Sink::Gzip(w) => w.finish()?.flush(),
            Sink::Snappy(w) => w.finish()?.flush(),
        }
    }
}

/// snappy-java's `SnappyOutputStream` framing: magic, version 1, compatible version 1,
/// then for every [`SNAPPY_BLOCK_LEN`] bytes of input (the last block shorter) a
/// big-endian `int` length and the raw Snappy block.
pub struct SnappyJavaWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    encoder: snap::raw::Encoder,
    compressed: Vec<u8>,
    header_written: bool,
}

impl<W: Write> SnappyJavaWriter<W> {
    /// A writer that frames everything written to it into `inner`.
    pub fn new(inner: W) -> SnappyJavaWriter<W> {
        SnappyJavaWriter {
            inner,
            buf: Vec::with_capacity(SNAPPY_BLOCK_LEN),
            encoder: snap::raw::Encoder::new(),
            compressed: vec![0; snap::raw::max_compress_len(SNAPPY_BLOCK_LEN)],
            header_written: false,
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            let mut h = [0u8; 16];
            h[..8].copy_from_slice(&SNAPPY_MAGIC);
            h[8..12].copy_from_slice(&1i32.to_be_bytes());
            h[12..].copy_from_slice(&1i32.to_be_bytes());
            self.inner.write_all(&h)?;
            self.header_written = true;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> io::Result<()> {
        self.header()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let n = self
            .encoder
            .compress(&self.buf, &mut self.compressed)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let len = i32::try_from(n).map_err(|_| io::Error::other("snappy block too long"))?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(self.compressed.get(..n).unwrap_or_default())?;
        self.buf.clear();
        Ok(())
    }

    /// Writes the last (partial) block and returns the inner writer. An empty stream
    /// is still a header.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_block()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SnappyJavaWriter<W> {
    fn write(&mut self, mut b: &[u8]) -> io::Result<usize> {
        let total = b.len();
        while !b.is_empty() {
            let room = SNAPPY_BLOCK_LEN - self.buf.len();
            let (now, rest) = b.split_at(room.min(b.len()));
            self.buf.extend_from_slice(now);
            b = rest;
            if self.buf.len() == SNAPPY_BLOCK_LEN {
                self.flush_block()?;
            }
        }
        Ok(total)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The uncompressed stream: everything written is hashed (Adler-32) and counted.
struct Stream<'a, W: Write> {
    sink: &'a mut Sink<W>,
    path: &'a Path,
    adler: adler2::Adler32,
    len: u64,
    scratch: Writer,
}

impl<W: Write> Stream<'_, W> {
    /// Writes and hashes what is in the scratch buffer, then empties it.
    fn emit(&mut self) -> Result<(), SnapshotError> {
        let mut bytes = std::mem::take(&mut self.scratch).into_inner();
        self.adler.write_slice(&bytes);
        self.len += u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let result = self.sink.write_all(&bytes);
        bytes.clear();
        self.scratch = Writer::from_vec(bytes);
        result.map_err(|e| SnapshotError::io(self.path, e))
    }

    /// A seal: the Adler-32 of everything before it, then `"/"`.
    fn seal(&mut self) -> Result<(), SnapshotError> {
        let sum = i64::from(self.adler.checksum());
        self.scratch.i64(sum);
        self.scratch.ustring(Some("/"));
        self.emit()
    }
}

struct Counts {
    stream_len: u64,
    nodes: u64,
    sessions: u64,
    acls: u64,
}

fn jute_len_ok(n: usize) -> bool {
    i32::try_from(n).is_ok()
}

fn encode<W: Write>(
    sink: &mut Sink<W>,
    path: &Path,
    source: &dyn ZkSnapshotSource,
) -> Result<Counts, SnapshotError> {
    // Pass 1: the ACL map, ids 1, 2, … in order of first use (ZooKeeper assigns them
    // incrementally as lists are first used).
    let mut ids: HashMap<AclList, i64> = HashMap::new();
    let mut lists: Vec<AclList> = Vec::new();
    source.for_each_node(&mut |n| {
        if !Acl::is_open_unsafe(n.acl) && !ids.contains_key(n.acl) {
            if !jute_len_ok(n.acl.len()) {
                return Err(invalid(path, format!("node {:?}: ACL list too long", n.path)));
            }
            let id = i64::try_from(lists.len()).unwrap_or(i64::MAX) + 1;
            ids.insert(n.acl.to_vec(), id);
            lists.push(n.acl.to_vec());
        }
        Ok(())
    })?;

    let mut s =
        Stream { sink, path, adler: adler2::Adler32::new(), len: 0, scratch: Writer::new() };
    s.scratch.i32(SNAP_MAGIC);
    s.scratch.i32(SNAP_VERSION);
    s.scratch.i64(SNAP_DBID);

    let sessions = source.sessions();
    s.scratch.vector_len(Some(sessions.len()));
    for (id, timeout) in &sessions {
        s.scratch.i64(id.0);
        s.scratch.i32(*timeout);
    }
    s.scratch.vector_len(Some(lists.len()));
    for (i, list) in lists.iter().enumerate() {
        s.scratch.i64(i64::try_from(i).unwrap_or(i64::MAX) + 1);
        Acl::encode_list(list, &mut s.scratch);
    }
    s.emit()?;

    // Pass 2: the nodes.
    let mut nodes = 0u64;
    source.for_each_node(&mut |n| {
        let is_root = n.path == "/" || n.path.is_empty();
        if nodes == 0 && !is_root {
            return Err(invalid(path, format!("the first node is {:?}, not the root", n.path)));
        }
        if nodes > 0 && is_root {
            return Err(invalid(path, "the root appears twice".into()));
        }
        let stored_path = if is_root { "" } else { n.path };
        if !jute_len_ok(stored_path.len()) || !n.data.is_none_or(|d| jute_len_ok(d.len())) {
            return Err(invalid(path, format!("node {:?}: path or value too long", n.path)));
        }
        let acl_id = if Acl::is_open_unsafe(n.acl) {
            -1
        } else {
            *ids.get(n.acl).ok_or_else(|| {
                invalid(path, format!("node {:?}: ACL list changed while writing", n.path))
            })?
        };
        s.scratch.ustring(Some(stored_path));
        s.scratch.buffer(n.data);
        s.scratch.i64(acl_id);
        n.stat.encode_into(&mut s.scratch);
        s.emit()?;
        nodes += 1;
        Ok(())
    })?;
    if nodes == 0 {
        return Err(invalid(path, "the source has no root node".into()));
    }
    s.scratch.ustring(Some("/"));
    s.emit()?;
    s.seal()?;
    if let Some(d) = source.digest() {
        s.scratch.i64(d.zxid.0);
        s.scratch.i32(d.version);
        if d.version < 2 {
            s.scratch.ustring(Some(&format!("{:x}", d.digest)));
        } else {
            s.scratch.i64(d.digest);
        }
        s.emit()?;
        s.seal()?;
    }
    Ok(Counts {
        stream_len: s.len,
        nodes,
        sessions: u64::try_from(sessions.len()).unwrap_or(u64::MAX),
        acls: u64::try_from(lists.len()).unwrap_or(u64::MAX),
    })
}

/// A source held in memory (tests, small tools).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedSource {
    /// Sessions in file order.
    pub sessions: Vec<(SessionId, i32)>,
    /// Nodes: (full path, data, ACL list, stored stat), pre-order, root first.
    pub nodes: Vec<(String, Option<Vec<u8>>, AclList, StatPersisted)>,
    /// The digest trailer.
    pub digest: Option<SnapshotDigest>,
}

impl ZkSnapshotSource for OwnedSource {
    fn sessions(&self) -> Vec<(SessionId, i32)> {
        self.sessions.clone()
    }

    fn for_each_node(
        &self,
        f: &mut dyn FnMut(ZkNode<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        self.nodes.iter().try_for_each(|(path, data, acl, stat)| {
            f(ZkNode { path, data: data.as_deref(), acl, stat: *stat })
        })
    }

    fn digest(&self) -> Option<SnapshotDigest> {
        self.digest
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keeperkit_model::{Id, Perms};

    fn fresh() -> OwnedSource {
        let read_only =
            vec![Acl { perms: Perms(1), id: Id { scheme: "world".into(), id: "anyone".into() } }];
        let cfg_stat = StatPersisted { aversion: -1, ..StatPersisted::default() };
        OwnedSource {
            sessions: vec![],
            nodes: vec![
                ("/".into(), Some(vec![]), Acl::open_unsafe(), StatPersisted::default()),
                ("/zookeeper".into(), Some(vec![]), Acl::open_unsafe(), StatPersisted::default()),
                ("/zookeeper/config".into(), Some(vec![]), read_only, cfg_stat),
                (
                    "/zookeeper/quota".into(),
                    Some(vec![]),
                    Acl::open_unsafe(),
                    StatPersisted::default(),
                ),
            ],
            digest: Some(SnapshotDigest { zxid: Zxid(0), version: 2, digest: 0 }),
        }
    }

    #[test]
    fn fresh_tree_is_457_bytes_and_ends_with_the_seal() {
        let bytes = encode_snapshot(&fresh(), Compression::None).unwrap();
        assert_eq!(bytes.len(), 457);
        assert_eq!(&bytes[..4], b"ZKSN");
        assert_eq!(&bytes[bytes.len() - 5..], &[0, 0, 0, 1, b'/']);
    }

    #[test]
    fn snappy_framing_splits_32k_blocks() {
        let mut w = SnappyJavaWriter::new(Vec::new());
        w.write_all(&vec![7u8; SNAPPY_BLOCK_LEN * 2 + 5]).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(&out[..8], &SNAPPY_MAGIC);
        assert_eq!(&out[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // Three blocks.
        let mut pos = 16;
        let mut blocks = 0;
        let mut raw = Vec::new();
        while pos < out.len() {
            let n =
                usize::try_from(i32::from_be_bytes(out[pos..pos + 4].try_into().unwrap())).unwrap();
            let block = &out[pos + 4..pos + 4 + n];
            raw.extend(snap::raw::Decoder::new().decompress_vec(block).unwrap());
            pos += 4 + n;
            blocks += 1;
        }
        assert_eq!(blocks, 3);
        assert_eq!(raw, vec![7u8; SNAPPY_BLOCK_LEN * 2 + 5]);
        // An empty stream is just the header.
        assert_eq!(SnappyJavaWriter::new(Vec::new()).finish().unwrap().len(), 16);
    }

    #[test]
    fn first_node_must_be_the_root() {
        let mut src = fresh();
        src.nodes.remove(0);
        assert!(encode_snapshot(&src, Compression::None).is_err());
    }
}
