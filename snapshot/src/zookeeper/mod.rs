//! Apache ZooKeeper 3.x snapshots (`snapshot.<hex zxid>[.gz|.snappy]`).
//!
//! A snapshot is one jute stream, optionally compressed as a whole (gzip, or
//! snappy-java's `SnappyOutputStream` framing), chosen **only by the file name suffix**
//! as ZooKeeper's `SnapStream.getStreamMode` does. The uncompressed stream is:
//!
//! ```text
//! FileHeader      int magic "ZKSN", int version 2, long dbid
//! int  count      then count × (long sessionId, int timeoutMs)
//! int  count      then count × (long aclId, vector<ACL>)
//! nodes           ustring path, buffer data, long aclId, StatPersisted (60 bytes),
//!                 pre-order; the root has path ""; a path of "/" ends the list
//! long checksum1  Adler-32 of every stream byte before it
//! ustring "/"
//! -- 3.6+ only --
//! long zxid, int version, long digest (a hex ustring when version < 2)
//! long checksum2  Adler-32 of every stream byte before it
//! ustring "/"
//! ```
//!
//! [`read_snapshot`] parses the stream as it is decompressed, one record at a time
//! from a bounded window (a few MiB; a single record may grow it to 64 MiB), with
//! [`keeperkit_model::jute::Reader`], handing sessions, ACL lists and nodes to a
//! [`SnapshotSink`] in file order. Memory follows what the sink keeps (the tree), never
//! the decompressed size: a decompression bomb fails at its first bad record, and
//! the stream is bounded by [`STREAM_LEN_MAX`] besides.
//!
//! Offsets in errors: errors about the jute stream carry the offset **in the
//! uncompressed stream** (for an uncompressed file that is the file offset). Errors
//! about the compression framing carry the offset in the compressed file: the block
//! header for snappy, and 0 for gzip (the decoder does not say where it failed; the
//! message says how many bytes it had produced).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use keeperkit_model::jute::{decode_java_utf8, Reader};
use keeperkit_model::{
    Acl, AclList, Corruption, CorruptionKind, DecodeError, SessionId, StatPersisted, Zxid,
};
use keeperkit_vfs::{File, FileSystem, OpenMode};

use crate::error::SnapshotError;

/// Magic number of a snapshot's header: ASCII `ZKSN` (`FileSnap.SNAP_MAGIC`).
pub const SNAP_MAGIC: i32 = 0x5A4B_534E;

/// The snapshot format version ZooKeeper 3.x writes (`FileSnap.VERSION`).
pub const SNAP_VERSION: i32 = 2;

/// Prefix of snapshot file names.
pub const SNAPSHOT_FILE_PREFIX: &str = "snapshot";

/// Largest uncompressed stream accepted: 16 GiB. ZooKeeper keeps the whole tree in a
/// JVM heap, so a real snapshot is far smaller; the cap only stops a decompression bomb
/// before it takes all memory.
pub const STREAM_LEN_MAX: u64 = 16 << 30;

/// Smallest encoding of one session entry (long id, int timeout).
const SESSION_LEN_MIN: usize = 12;
/// Smallest encoding of one ACL map entry (long id, int count).
const ACL_ENTRY_LEN_MIN: usize = 12;
/// Smallest encoding of one ACL (int perms, two string lengths).
const ACL_LEN_MIN: usize = 12;

/// How a snapshot file is compressed, as told by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain jute stream.
    None,
    /// gzip (`.gz`).
    Gzip,
    /// snappy-java stream framing (`.snappy`).
    Snappy,
}

impl Compression {
    /// The file name suffix ZooKeeper appends: `""`, `".gz"` or `".snappy"`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Snappy => ".snappy",
        }
    }

    /// The compression ZooKeeper reads a file with, from its name alone
    /// (`SnapStream.getStreamMode`): the last `.`-separated part compared
    /// case-insensitively with `gz` and `snappy`; anything else is uncompressed.
    pub fn from_file_name(name: &str) -> Compression {
        let parts = java_split_dot(name);
        match parts.as_slice() {
            [_, .., last] if last.eq_ignore_ascii_case("gz") => Compression::Gzip,
            [_, .., last] if last.eq_ignore_ascii_case("snappy") => Compression::Snappy,
            _ => Compression::None,
        }
    }
}

/// Splits a file name on `.` the way Java's `String.split("\\.")` does: trailing empty
/// parts are dropped.
fn java_split_dot(name: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = name.split('.').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts
}

/// The zxid and compression of a snapshot file name (`"snapshot.22c.gz"` →
/// `(0x22c, Gzip)`), by ZooKeeper's rules: the first `.`-part must be `snapshot`, the
/// second a hex `long` (`Util.getZxidFromName`; negative counts as unparsable), and the
/// compression comes from the last part ([`Compression::from_file_name`]).
pub fn parse_snapshot_name(name: &str) -> Option<(Zxid, Compression)> {
    let parts = java_split_dot(name);
    let zxid = match parts.as_slice() {
        [prefix, zxid, ..] if *prefix == SNAPSHOT_FILE_PREFIX => {
            i64::from_str_radix(zxid, 16).ok()?
        }
        _ => return None,
    };
    (zxid >= 0).then(|| (Zxid(zxid), Compression::from_file_name(name)))
}

/// The snapshot files of a directory, sorted by the zxid in their name, ascending
/// (ties by name). Names [`parse_snapshot_name`] does not accept and directories are
/// ignored. The files are not opened: see [`quick_valid`] and [`read_snapshot`].
pub fn list_snapshots(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<Vec<(Zxid, Compression, PathBuf)>, SnapshotError> {
    let entries = fs.read_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
    let mut out: Vec<(Zxid, Compression, PathBuf)> = entries
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| parse_snapshot_name(&e.name).map(|(z, c)| (z, c, dir.join(&e.name))))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
    Ok(out)
}

/// ZooKeeper's quick test of a snapshot before trying to load it
/// (`SnapStream.isValidSnapshot`): the name must parse; an uncompressed file must be at
/// least 10 bytes long and end with the `"/"` seal (`00 00 00 01 2F`); a `.gz` file must
/// start with the gzip magic; a `.snappy` file with the snappy-java magic.
///
/// `Ok(false)` means ZooKeeper would skip the file. Nothing is decompressed or checked
/// beyond that: a file that passes can still be corrupt.
pub fn quick_valid(fs: &dyn FileSystem, path: &Path) -> Result<bool, SnapshotError> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return Ok(false) };
    let Some((_, compression)) = parse_snapshot_name(name) else { return Ok(false) };
    let file = fs.open(path, OpenMode::Read).map_err(|e| SnapshotError::io(path, e))?;
    let len = file.len().map_err(|e| SnapshotError::io(path, e))?;
    let io = |e| SnapshotError::io(path, e);
    Ok(match compression {
        Compression::None => {
            if len < 10 {
                return Ok(false);
            }
            let mut tail = [0u8; 5];
            read_exact_or_short(&*file, &mut tail, len - 5).map_err(io)?
                && tail == [0, 0, 0, 1, b'/']
        }
        Compression::Gzip => {
            let mut head = [0u8; 2];
            read_exact_or_short(&*file, &mut head, 0).map_err(io)? && head == GZIP_MAGIC
        }
        Compression::Snappy => {
            let mut head = [0u8; 8];
            read_exact_or_short(&*file, &mut head, 0).map_err(io)? && head == SNAPPY_MAGIC
        }
    })
}

/// Reads `buf.len()` bytes at `offset`; `Ok(false)` if the file is shorter.
fn read_exact_or_short(file: &dyn File, buf: &mut [u8], offset: u64) -> io::Result<bool> {
    match file.read_exact_at(buf, offset) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// One znode as stored in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    /// The path as stored: `""` for the root, `"/a"`, `"/a/b"`, ... for the others.
    pub path: String,
    /// The data; `None` for a null value (distinct from empty).
    pub data: Option<Vec<u8>>,
    /// Key of the node's ACL list in the snapshot's ACL map; −1 is `world:anyone` with
    /// all permissions (`OPEN_ACL_UNSAFE`), which is never in the map.
    pub acl_id: i64,
    /// The stored stat (stored cversion and ephemeralOwner encodings).
    pub stat: StatPersisted,
}

/// The tree digest in a snapshot's trailer (ZooKeeper 3.6+, `DataTree.ZxidDigest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotDigest {
    /// The last txn fully applied when the snapshot's tree walk ended; 0 means "no
    /// digest" to ZooKeeper.
    pub zxid: Zxid,
    /// Digest algorithm version: 2 in 3.6+. Below 2 the digest is stored as a hex
    /// string, already parsed into `digest` here (a null string reads as 0, as in
    /// ZooKeeper).
    pub version: i32,
    /// The tree digest at `zxid`.
    pub digest: i64,
}

/// Receives what a snapshot holds, in file order.
pub trait SnapshotSink {
    /// A live session and its negotiated timeout.
    fn session(&mut self, id: SessionId, timeout_ms: i32);

    /// One entry of the ACL map.
    fn acl_list(&mut self, id: i64, acl: AclList);

    /// One node, parents before children. An `Err` aborts reading: the reader returns
    /// [`SnapshotError::Corrupt`] with [`CorruptionKind::BadTree`] carrying the message,
    /// at the offset of the node's path field.
    fn node(&mut self, node: SnapshotNode) -> Result<(), String>;
}

/// What [`read_snapshot`] learned about a snapshot besides its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The header's magic ([`SNAP_MAGIC`]).
    pub header_magic: i32,
    /// The header's version ([`SNAP_VERSION`]).
    pub version: i32,
    /// The header's dbid (−1 in every ZooKeeper 3.x snapshot).
    pub dbid: i64,
    /// The compression, from the file name.
    pub compression: Compression,
    /// Length of the file in bytes.
    pub file_len: u64,
    /// Length of the uncompressed stream in bytes.
    pub stream_len: u64,
    /// Number of sessions.
    pub session_count: u64,
    /// Number of ACL map entries.
    pub acl_count: u64,
    /// Number of nodes (the root included).
    pub node_count: u64,
    /// The first checksum as stored (verified: equal to the Adler-32 of the bytes
    /// before it).
    pub checksum: u64,
    /// The trailer digest; `None` for a pre-3.6 snapshot that ends after the first
    /// seal.
    pub digest: Option<SnapshotDigest>,
    /// The second checksum as stored (verified), present with the digest.
    pub digest_checksum: Option<u64>,
}

use keeperkit_model::le::len_u64;
use keeperkit_vfs::read_full;

mod compression;
pub mod write;

#[cfg(test)]
use compression::decompress_file;
pub use compression::{decompress, GZIP_MAGIC, SNAPPY_BLOCK_LEN_MAX, SNAPPY_MAGIC};
use compression::{stream_reader, too_long, uncarry};

/// Reads a snapshot file: decompresses it by its name's suffix, checks the header, both
/// Adler-32 seals and the `"/"` markers, and hands every session, ACL list and node to
/// `sink` in file order.
///
/// Checks beyond ZooKeeper's own (which are all done too): the header version must be
/// [`SNAP_VERSION`], the seal strings must be `"/"`, a started digest trailer must be
/// complete, and nothing may follow the last seal. Whether each node's parent was seen
/// is left to the sink (ZooKeeper refuses such a file).
///
/// Errors carry the file and, for the jute stream, the offset **in the uncompressed
/// stream** (see the module docs); a checksum mismatch is reported at the checksum
/// field.
pub fn read_snapshot(
    fs: &dyn FileSystem,
    path: &Path,
    sink: &mut dyn SnapshotSink,
) -> Result<SnapshotInfo, SnapshotError> {
    let compression = path
        .file_name()
        .and_then(|n| n.to_str())
        .map_or(Compression::None, Compression::from_file_name);
    let file = fs.open(path, OpenMode::Read).map_err(|e| SnapshotError::io(path, e))?;
    let file_len = file.len().map_err(|e| SnapshotError::io(path, e))?;
    let window = Window {
        src: stream_reader(file, file_len, path, compression),
        path,
        compression,
        cap: STREAM_LEN_MAX,
        buf: Vec::new(),
        base: 0,
        pos: 0,
        hashed: 0,
        hasher: adler2::Adler32::new(),
        eof: false,
    };
    let (parsed, stream_len) = pipeline(window, sink)?;
    Ok(SnapshotInfo {
        header_magic: parsed.magic,
        version: parsed.version,
        dbid: parsed.dbid,
        compression,
        file_len,
        stream_len,
        session_count: parsed.session_count,
        acl_count: parsed.acl_count,
        node_count: parsed.node_count,
        checksum: parsed.checksum,
        digest: parsed.digest,
        digest_checksum: parsed.digest_checksum,
    })
}

/// What [`read_snapshot_to_vec`] returns: the info, the sessions with their timeouts,
/// the ACL map entries and the nodes, each in file order.
pub type SnapshotContents =
    (SnapshotInfo, Vec<(SessionId, i32)>, Vec<(i64, AclList)>, Vec<SnapshotNode>);

/// Everything a snapshot holds, collected into vectors: info, sessions, ACL map and
/// nodes, in file order. Convenient for tools and tests; the storage layer should use
/// [`read_snapshot`] with its own sink.
pub fn read_snapshot_to_vec(
    fs: &dyn FileSystem,
    path: &Path,
) -> Result<SnapshotContents, SnapshotError> {
    let mut sink = CollectingSink::default();
    let info = read_snapshot(fs, path, &mut sink)?;
    Ok((info, sink.sessions, sink.acls, sink.nodes))
}

/// A sink that keeps everything.
#[derive(Debug, Default)]
struct CollectingSink {
    sessions: Vec<(SessionId, i32)>,
    acls: Vec<(i64, AclList)>,
    nodes: Vec<SnapshotNode>,
}

impl SnapshotSink for CollectingSink {
    fn session(&mut self, id: SessionId, timeout_ms: i32) {
        self.sessions.push((id, timeout_ms));
    }

    fn acl_list(&mut self, id: i64, acl: AclList) {
        self.acls.push((id, acl));
    }

    fn node(&mut self, node: SnapshotNode) -> Result<(), String> {
        self.nodes.push(node);
        Ok(())
    }
}

/// What the parser hands on, in file order.
enum Event {
    Session(SessionId, i32),
    AclList(i64, AclList),
    /// A node and the stream offset of its path field.
    Node(u64, SnapshotNode),
}

/// Events per message between the two threads of [`pipeline`].
const BATCH_LEN: usize = 512;
/// Messages in flight: bounds what the parser runs ahead (a few MiB of nodes).
const BATCHES_IN_FLIGHT: usize = 8;

/// The parser's side of [`pipeline`]: batches events for the sink's thread.
struct Feed {
    tx: std::sync::mpsc::SyncSender<Vec<Event>>,
    batch: Vec<Event>,
}

/// The sink's thread stopped taking events (its sink refused a node): the parser
/// stops; the sink's error is the one reported.
fn abandoned() -> SnapshotError {
    SnapshotError::Corrupt(Corruption::new(
        Path::new(""),
        0,
        CorruptionKind::inconsistent("snapshot reading abandoned"),
    ))
}

impl Feed {
    fn push(&mut self, e: Event) -> Result<(), SnapshotError> {
        self.batch.push(e);
        if self.batch.len() >= BATCH_LEN {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SnapshotError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_LEN));
        self.tx.send(batch).map_err(|_| abandoned())
    }

    fn session(&mut self, id: SessionId, timeout_ms: i32) -> Result<(), SnapshotError> {
        self.push(Event::Session(id, timeout_ms))
    }

    fn acl_list(&mut self, id: i64, acl: AclList) -> Result<(), SnapshotError> {
        self.push(Event::AclList(id, acl))
    }

    fn node(&mut self, at: u64, node: SnapshotNode) -> Result<(), SnapshotError> {
        self.push(Event::Node(at, node))
    }
}

/// Parses the stream on a second thread while this one hands what it finds to `sink`
/// (for a tree, the insert costs as much as the decoding: the two overlap). The sink
/// sees the same calls in the same order as a single-threaded read, and the result is
/// the same: the sink's refusal of a node when that comes first, else the parser's
/// error, else what the parser found.
fn pipeline(
    window: Window<'_>,
    sink: &mut dyn SnapshotSink,
) -> Result<(Parsed, u64), SnapshotError> {
    let path = window.path;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(BATCHES_IN_FLIGHT);
    std::thread::scope(|s| {
        let parser = s.spawn(move || {
            let mut feed = Feed { tx, batch: Vec::with_capacity(BATCH_LEN) };
            let r = parse_stream(window, &mut feed);
            // What was found before an error still reaches the sink, as it would have.
            let flushed = feed.flush();
            r.and_then(|v| flushed.map(|()| v))
        });
        let mut refused = None;
        'batches: for batch in rx.iter() {
            for e in batch {
                match e {
                    Event::Session(id, t) => sink.session(id, t),
                    Event::AclList(id, l) => sink.acl_list(id, l),
                    Event::Node(at, node) => {
                        if let Err(msg) = sink.node(node) {
                            refused =
                                Some(Corruption::new(path, at, CorruptionKind::bad_tree(msg)));
                            break 'batches;
                        }
                    }
                }
            }
        }
        // Dropping the receiver stops a parser still running.
        drop(rx);
        let parsed = match parser.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match refused {
            Some(c) => Err(SnapshotError::Corrupt(c)),
            None => parsed,
        }
    })
}

/// What [`parse_stream`] found.
struct Parsed {
    magic: i32,
    version: i32,
    dbid: i64,
    session_count: u64,
    acl_count: u64,
    node_count: u64,
    checksum: u64,
    digest: Option<SnapshotDigest>,
    digest_checksum: Option<u64>,
}

/// Bytes kept ready in front of the parser: more than any record a ZooKeeper server
/// writes needs (a path and a value of at most `JUTE_READ_LEN_MAX` each, the stat).
const WINDOW_LEN: usize = 8 << 20;
/// Largest window: a single record (an ACL list) that does not fit in it is refused.
/// Together with one read chunk this bounds what a snapshot costs beyond its tree.
const WINDOW_LEN_MAX: usize = 64 << 20;
/// How much is decompressed at a time.
const READ_CHUNK: usize = 1 << 20;

/// The uncompressed stream, parsed as it is decompressed: only a window of it is in
/// memory, so memory follows the tree being built, never the stream's size (a
/// decompression bomb fails at its first bad record). Keeps the Adler-32 of every
/// byte parsed.
struct Window<'a> {
    src: Box<dyn Read + Send>,
    path: &'a Path,
    compression: Compression,
    cap: u64,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Parse position in `buf`.
    pos: usize,
    /// Bytes of `buf` already in `hasher`.
    hashed: usize,
    hasher: adler2::Adler32,
    eof: bool,
}

impl Window<'_> {
    fn offset(&self) -> u64 {
        self.base + len_u64(self.pos)
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn produced(&self) -> u64 {
        self.base + len_u64(self.buf.len())
    }

    /// Decompresses until `n` unparsed bytes are in the window or the stream ends.
    fn fill(&mut self, n: usize) -> Result<(), SnapshotError> {
        while !self.eof && self.remaining() < n {
            if self.pos > 0 {
                self.hasher.write_slice(&self.buf[self.hashed..self.pos]);
                self.buf.drain(..self.pos);
                self.base += len_u64(self.pos);
                self.pos = 0;
                self.hashed = 0;
            }
            let start = self.buf.len();
            let want = (n - self.remaining()).max(READ_CHUNK);
            self.buf.resize(start + want, 0);
            let got = read_full(&mut self.src, &mut self.buf[start..]);
            let got = match got {
                Ok(got) => got,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(uncarry(e, self.path, self.compression, self.produced()));
                }
            };
            self.buf.truncate(start + got);
            if got < want {
                self.eof = true;
            }
            if self.produced() > self.cap {
                return Err(too_long(self.path, self.base, self.produced(), self.cap));
            }
        }
        Ok(())
    }

    /// Parses one record with `f` (which must not have side effects: it runs again
    /// when the record did not fit in the window and the window grows).
    fn record<T>(
        &mut self,
        f: impl Fn(&mut Reader<'_>) -> Result<T, DecodeError>,
    ) -> Result<T, SnapshotError> {
        // Fast path: the record is already in the window (nearly always). A parse that
        // succeeds on what is there is the parse of the full stream; only a record that
        // runs past the window's end goes through the refill below (which moves the
        // unparsed tail to the front: doing that for every record would copy the window
        // over and over).
        let mut r = Reader::new(&self.buf[self.pos..]);
        if let Ok(v) = f(&mut r) {
            self.pos += r.position();
            return Ok(v);
        }
        let mut want = WINDOW_LEN;
        loop {
            self.fill(want)?;
            let mut r = Reader::new(&self.buf[self.pos..]);
            match f(&mut r) {
                Ok(v) => {
                    self.pos += r.position();
                    return Ok(v);
                }
                Err(e) => {
                    let short = matches!(
                        e.kind,
                        CorruptionKind::Truncated { .. } | CorruptionKind::LengthOutOfRange { .. }
                    );
                    if short && !self.eof && want < WINDOW_LEN_MAX {
                        want = (want * 2).min(WINDOW_LEN_MAX);
                        continue;
                    }
                    return Err(SnapshotError::Corrupt(e.in_file(self.path, self.offset(), None)));
                }
            }
        }
    }

    /// The Adler-32 of every byte parsed so far.
    fn checksum(&mut self) -> u64 {
        self.hasher.write_slice(&self.buf[self.hashed..self.pos]);
        self.hashed = self.pos;
        u64::from(self.hasher.checksum())
    }

    /// Counts the bytes left in the stream (without keeping them).
    fn drain_rest(&mut self) -> Result<u64, SnapshotError> {
        let mut n = len_u64(self.remaining());
        self.pos = self.buf.len();
        let mut scratch = vec![0u8; READ_CHUNK];
        while !self.eof {
            let got = read_full(&mut self.src, &mut scratch)
                .map_err(|e| uncarry(e, self.path, self.compression, self.produced() + n))?;
            n += len_u64(got);
            if got < scratch.len() {
                self.eof = true;
            }
            if self.produced().saturating_add(n) > self.cap {
                break;
            }
        }
        Ok(n)
    }
}

/// Reads a count (`int`) and checks that `count` elements of at least `elem_min` bytes
/// fit in what remains, before anything is allocated or looped over. When the stream
/// is longer than the largest window, a count that the window cannot prove is taken,
/// and its elements fail one by one where the stream ends.
fn count(w: &mut Window<'_>, elem_min: usize) -> Result<usize, SnapshotError> {
    let at = w.offset();
    let n = w.record(|r| r.i32())?;
    let need = usize::try_from(n).map(|n| n.saturating_mul(elem_min));
    w.fill(need.unwrap_or(0).min(WINDOW_LEN_MAX))?;
    let max = w.remaining() / elem_min;
    let fail = |kind| Err(SnapshotError::Corrupt(Corruption::new(w.path, at, kind)));
    match (usize::try_from(n), need) {
        (Ok(n), Ok(need)) if need <= w.remaining() || !w.eof => Ok(n),
        (Ok(_), Ok(need)) => fail(CorruptionKind::Truncated {
            needed: len_u64(need),
            available: len_u64(w.remaining()),
        }),
        _ => fail(CorruptionKind::LengthOutOfRange { len: i64::from(n), max: len_u64(max) }),
    }
}

/// Reads a `ustring` that must be `"/"` (the end-of-tree marker and the seals).
fn seal(r: &mut Reader<'_>, what: &'static str) -> Result<(), DecodeError> {
    match r.ustring_bytes()? {
        Some(b"/") => Ok(()),
        _ => Err(DecodeError::new(0, CorruptionKind::MissingTerminator { what })),
    }
}

/// Reads a stored checksum at the current position and compares it with the Adler-32
/// of every stream byte before it. Returns the stored value.
fn checksum(w: &mut Window<'_>) -> Result<u64, SnapshotError> {
    let at = w.offset();
    let computed = w.checksum();
    let stored = w.record(|r| r.i64())? as u64;
    if stored != computed {
        return Err(Corruption::new(
            w.path,
            at,
            CorruptionKind::ChecksumMismatch { stored, computed },
        )
        .into());
    }
    Ok(stored)
}

/// Parses an uncompressed snapshot stream as it is decompressed; returns what it found
/// and the stream's length.
fn parse_stream(mut w: Window<'_>, sink: &mut Feed) -> Result<(Parsed, u64), SnapshotError> {
    let path = w.path;
    let magic = w.record(|r| r.i32())?;
    if magic != SNAP_MAGIC {
        return Err(Corruption::new(
            path,
            0,
            CorruptionKind::BadMagic {
                expected: u64::from(SNAP_MAGIC as u32),
                found: u64::from(magic as u32),
            },
        )
        .into());
    }
    let version = w.record(|r| r.i32())?;
    if version != SNAP_VERSION {
        return Err(Corruption::new(
            path,
            4,
            CorruptionKind::UnsupportedVersion { found: i64::from(version) },
        )
        .into());
    }
    let dbid = w.record(|r| r.i64())?;

    // Sessions (SerializeUtils.serializeSnapshot).
    let sessions = count(&mut w, SESSION_LEN_MIN)?;
    for _ in 0..sessions {
        let (id, timeout) = w.record(|r| Ok((r.i64()?, r.i32()?)))?;
        sink.session(SessionId(id), timeout)?;
    }

    // ACL map (ReferenceCountedACLCache.serialize).
    let acls = count(&mut w, ACL_ENTRY_LEN_MIN)?;
    for _ in 0..acls {
        let (id, list) = w.record(|r| {
            let id = r.i64()?;
            let at = len_u64(r.position());
            let n = r.vector_len(ACL_LEN_MIN)?.ok_or_else(|| {
                DecodeError::new(at, CorruptionKind::NullValue { field: "ACL list in the ACL map" })
            })?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(Acl::decode_from(r)?);
            }
            Ok((id, list))
        })?;
        sink.acl_list(id, list)?;
    }

    // Nodes, until the "/" marker (DataTree.serialize / deserialize).
    let mut node_count = 0u64;
    loop {
        let at = w.offset();
        let node = w.record(|r| {
            let path_bytes = r.ustring_bytes()?.ok_or_else(|| {
                DecodeError::new(0, CorruptionKind::NullValue { field: "node path" })
            })?;
            if path_bytes == b"/" {
                return Ok(None);
            }
            let node_path = decode_java_utf8(path_bytes)
                .ok_or_else(|| DecodeError::new(0, CorruptionKind::InvalidUtf8))?;
            let data = r.buffer()?.map(<[u8]>::to_vec);
            let acl_id = r.i64()?;
            let stat = StatPersisted::decode_from(r)?;
            Ok(Some(SnapshotNode { path: node_path, data, acl_id, stat }))
        })?;
        let Some(node) = node else { break };
        if node_count > 0 && !node.path.starts_with('/') {
            // Only the first node is the root (""); ZooKeeper would take any later path
            // without a '/' for a new root. Refused here, a stream of zeros (a
            // decompression bomb) stops at its second node instead of being scanned.
            let msg = format!("node path {:?} after the root does not start with '/'", node.path);
            return Err(Corruption::new(path, at, CorruptionKind::bad_tree(msg)).into());
        }
        sink.node(at, node)?;
        node_count += 1;
    }

    // First seal (SnapStream.sealStream / checkSealIntegrity).
    let checksum1 = checksum(&mut w)?;
    w.record(|r| seal(r, "first seal"))?;

    // Digest trailer (3.6+), present only if bytes remain (DataTree.deserializeZxidDigest).
    w.fill(1)?;
    let (digest, digest_checksum) = if w.remaining() == 0 {
        (None, None)
    } else {
        let (zxid, version) = w.record(|r| Ok((Zxid(r.i64()?), r.i32()?)))?;
        let digest = if version < 2 {
            let at = w.offset();
            match w.record(|r| r.ustring())? {
                None => 0,
                Some(hex) => parse_hex_digest(&hex).ok_or_else(|| {
                    Corruption::new(
                        path,
                        at,
                        CorruptionKind::inconsistent(format!("digest {hex:?} is not a hex long")),
                    )
                })?,
            }
        } else {
            w.record(|r| r.i64())?
        };
        let checksum2 = checksum(&mut w)?;
        w.record(|r| seal(r, "digest seal"))?;
        (Some(SnapshotDigest { zxid, version, digest }), Some(checksum2))
    };
    w.fill(1)?;
    if w.remaining() > 0 {
        let at = w.offset();
        let count = w.drain_rest()?;
        return Err(Corruption::new(
            path,
            at,
            CorruptionKind::TrailingBytes { after: "last seal", count },
        )
        .into());
    }
    let parsed = Parsed {
        magic,
        version,
        dbid,
        session_count: len_u64(sessions),
        acl_count: len_u64(acls),
        node_count,
        checksum: checksum1,
        digest,
        digest_checksum,
    };
    Ok((parsed, w.produced()))
}

/// Parses an old-style hex digest: `Long.parseLong(s, 16)` (signed), or the unsigned
/// form `Long.toHexString` writes for negative values.
fn parse_hex_digest(s: &str) -> Option<i64> {
    i64::from_str_radix(s, 16).ok().or_else(|| u64::from_str_radix(s, 16).ok().map(|v| v as i64))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;

    #[test]
    fn snapshot_names_follow_zookeeper() {
        assert_eq!(parse_snapshot_name("snapshot.177"), Some((Zxid(0x177), Compression::None)));
        assert_eq!(parse_snapshot_name("snapshot.22c.gz"), Some((Zxid(0x22c), Compression::Gzip)));
        assert_eq!(
            parse_snapshot_name("snapshot.c3.snappy"),
            Some((Zxid(0xc3), Compression::Snappy))
        );
        assert_eq!(parse_snapshot_name("snapshot.1.GZ"), Some((Zxid(1), Compression::Gzip)));
        assert_eq!(parse_snapshot_name("snapshot.1.SnApPy"), Some((Zxid(1), Compression::Snappy)));
        assert_eq!(parse_snapshot_name("snapshot.1.zst"), Some((Zxid(1), Compression::None)));
        assert_eq!(parse_snapshot_name("snapshot.1.gz."), Some((Zxid(1), Compression::Gzip)));
        assert_eq!(
            parse_snapshot_name("snapshot.100000001"),
            Some((Zxid(0x1_0000_0001), Compression::None))
        );
        assert_eq!(parse_snapshot_name("snapshot.gz"), None);
        assert_eq!(parse_snapshot_name("snapshot"), None);
        assert_eq!(parse_snapshot_name("snapshot.-1"), None);
        assert_eq!(parse_snapshot_name("snapshot.xyz"), None);
        assert_eq!(parse_snapshot_name("log.1"), None);
        assert_eq!(parse_snapshot_name("snapshots.1"), None);
        assert_eq!(Compression::None.suffix(), "");
        assert_eq!(Compression::Gzip.suffix(), ".gz");
        assert_eq!(Compression::Snappy.suffix(), ".snappy");
        assert_eq!(Compression::from_file_name("gz"), Compression::None);
    }

    #[test]
    fn hex_digests_parse_signed_and_unsigned() {
        assert_eq!(parse_hex_digest("0"), Some(0));
        assert_eq!(parse_hex_digest("-1"), Some(-1));
        assert_eq!(parse_hex_digest("ffffffffffffffff"), Some(-1));
        assert_eq!(parse_hex_digest("7fffffffffffffff"), Some(i64::MAX));
        assert_eq!(parse_hex_digest("xyz"), None);
        assert_eq!(parse_hex_digest(""), None);
    }

    fn window(bytes: &[u8]) -> Window<'static> {
        Window {
            src: Box::new(io::Cursor::new(bytes.to_vec())),
            path: Path::new("snapshot.1"),
            compression: Compression::None,
            cap: STREAM_LEN_MAX,
            buf: Vec::new(),
            base: 0,
            pos: 0,
            hashed: 0,
            hasher: adler2::Adler32::new(),
            eof: false,
        }
    }

    #[test]
    fn counts_are_bounded_by_the_remaining_bytes() {
        let bytes = [0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];
        let err = count(&mut window(&bytes), 12).unwrap_err();
        let err = err.corruption().unwrap();
        assert_eq!(err.offset, 0);
        assert_eq!(err.kind, CorruptionKind::Truncated { needed: 0x7FFF_FFFF * 12, available: 4 });
        let bytes = [0xFF, 0xFF, 0xFF, 0xFF];
        let err = count(&mut window(&bytes), 12).unwrap_err();
        let err = err.corruption().unwrap();
        assert_eq!(err.kind, CorruptionKind::LengthOutOfRange { len: -1, max: 0 });
        let bytes = [0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        assert_eq!(count(&mut window(&bytes), 12).unwrap(), 1);
    }

    #[test]
    fn records_larger_than_the_first_window_are_read() {
        // A record (an ACL list) of 12 MiB: more than the first window.
        let n = (12 << 20) / 12;
        let mut b = Vec::new();
        b.extend_from_slice(&i64::to_be_bytes(7));
        b.extend_from_slice(&i32::try_from(n).unwrap().to_be_bytes());
        for _ in 0..n {
            b.extend_from_slice(&31i32.to_be_bytes());
            b.extend_from_slice(&0i32.to_be_bytes());
            b.extend_from_slice(&0i32.to_be_bytes());
        }
        b.extend_from_slice(b"tail");
        let mut w = window(&b);
        let (id, len) = w
            .record(|r| {
                let id = r.i64()?;
                let n = r.vector_len(12)?.unwrap_or(0);
                for _ in 0..n {
                    Acl::decode_from(r)?;
                }
                Ok((id, n))
            })
            .unwrap();
        assert_eq!((id, len), (7, n));
        assert_eq!(w.offset(), len_u64(b.len() - 4));
        assert_eq!(w.drain_rest().unwrap(), 4);
    }

    #[derive(Debug)]
    struct MemFile(Vec<u8>);

    impl File for MemFile {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let Ok(start) = usize::try_from(offset) else { return Ok(0) };
            let src = self.0.get(start..).unwrap_or_default();
            let n = src.len().min(buf.len());
            buf[..n].copy_from_slice(&src[..n]);
            Ok(n)
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(len_u64(self.0.len()))
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_all(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn decompress_bytes(
        bytes: Vec<u8>,
        c: Compression,
        cap: u64,
    ) -> Result<Vec<u8>, SnapshotError> {
        let len = len_u64(bytes.len());
        decompress_file(Arc::new(MemFile(bytes)), len, Path::new("snapshot.1"), c, cap)
    }

    fn snappy_stream(blocks: &[&[u8]]) -> Vec<u8> {
        let mut out = SNAPPY_MAGIC.to_vec();
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for b in blocks {
            let c = snap::raw::Encoder::new().compress_vec(b).unwrap();
            out.extend_from_slice(&i32::try_from(c.len()).unwrap().to_be_bytes());
            out.extend_from_slice(&c);
        }
        out
    }

    #[test]
    fn stream_cap_is_enforced_for_every_compression() {
        let data = vec![7u8; 10_000];
        let err = decompress_bytes(data.clone(), Compression::None, 9_999).unwrap_err();
        assert_eq!(
            err.corruption().unwrap().kind,
            CorruptionKind::LengthOutOfRange { len: 10_000, max: 9_999 }
        );

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut gz, &data).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress_bytes(gz.clone(), Compression::Gzip, 10_000).unwrap(), data);
        let err = decompress_bytes(gz, Compression::Gzip, 9_999).unwrap_err();
        assert_eq!(
            err.corruption().unwrap().kind,
            CorruptionKind::LengthOutOfRange { len: 10_000, max: 9_999 }
        );

        let sn = snappy_stream(&[&data[..6000], &data[6000..]]);
        assert_eq!(decompress_bytes(sn.clone(), Compression::Snappy, 10_000).unwrap(), data);
        let err = decompress_bytes(sn, Compression::Snappy, 9_999).unwrap_err();
        let c = err.corruption().unwrap();
        assert_eq!(c.kind, CorruptionKind::LengthOutOfRange { len: 10_000, max: 9_999 });
    }

    #[test]
    fn snappy_concatenated_streams_and_bad_blocks() {
        let mut two = snappy_stream(&[b"hello "]);
        two.extend_from_slice(&snappy_stream(&[b"world"]));
        assert_eq!(decompress_bytes(two, Compression::Snappy, 1 << 20).unwrap(), b"hello world");

        // A block that claims far more output than its size allows.
        let mut bomb = snappy_stream(&[]);
        bomb.extend_from_slice(&3i32.to_be_bytes());
        bomb.extend_from_slice(&[0x80, 0x80, 0x20]); // varint: 512 KiB, from 3 bytes
        let err = decompress_bytes(bomb, Compression::Snappy, 1 << 40).unwrap_err();
        let c = err.corruption().unwrap();
        assert_eq!(c.offset, 16);
        assert!(matches!(c.kind, CorruptionKind::Decompression(_)), "{:?}", c.kind);

        for len in [0i32, -1, i32::MAX] {
            let mut bad = snappy_stream(&[]);
            bad.extend_from_slice(&len.to_be_bytes());
            let err = decompress_bytes(bad, Compression::Snappy, 1 << 40).unwrap_err();
            let c = err.corruption().unwrap();
            assert_eq!(c.offset, 16);
            assert!(matches!(c.kind, CorruptionKind::LengthOutOfRange { .. }), "{:?}", c.kind);
        }

        let mut short = snappy_stream(&[]);
        short.extend_from_slice(&[0, 0]);
        let err = decompress_bytes(short, Compression::Snappy, 1 << 40).unwrap_err();
        assert_eq!(
            err.corruption().unwrap().kind,
            CorruptionKind::Truncated { needed: 4, available: 2 }
        );

        let err = decompress_bytes(b"\x82SNA".to_vec(), Compression::Snappy, 1 << 40).unwrap_err();
        assert!(matches!(err.corruption().unwrap().kind, CorruptionKind::BadMagic { .. }));
    }
}
