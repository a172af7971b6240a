//! Writing a native snapshot: a producer walks the source and fills chunk buffers,
//! worker threads compress them, a writer thread writes them in order; then the
//! metadata, the footer and the trailer; fsync, rename, fsync of the directory.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use keeperkit_vfs::{File, FileSystem, OpenMode};

use super::codec::{check_meta, encode_footer, encode_meta, ChunkEncoder, Footer, FooterEntry};
use super::format::{
    len_u32, len_u64, BlockHeader, BlockKind, Codec, FileHeader, Trailer, BLOCK_HEADER_LEN,
    CHUNK_COUNT_MAX, CHUNK_TARGET_LEN_DEFAULT, CHUNK_TARGET_LEN_MAX, CHUNK_TARGET_LEN_MIN,
    DATA_LEN_MAX, FORMAT_VERSION, HEADER_LEN, META_RAW_LEN_MAX, PATH_LEN_MAX,
};
use super::{NodeRecord, NodeSource, SnapshotMeta, TEMP_SUFFIX};
use crate::error::SnapshotError;

/// How to write a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// zstd level of the chunks and the metadata; `None` stores every block raw.
    /// Default `Some(1)`: on a 1M-znode tree it takes ~40% less time than level 3 for
    /// files within 1% of level 3's size (random values) or smaller (JSON-like
    /// values), both well below one zstd-3 stream of the whole tree (prefix-compressed
    /// paths and varint stats leave zstd less to do). `benches/snapshot.rs` measures it.
    pub level: Option<i32>,
    /// A chunk is closed once its raw node records reach this many bytes; between
    /// [`CHUNK_TARGET_LEN_MIN`] and [`CHUNK_TARGET_LEN_MAX`] (default
    /// [`CHUNK_TARGET_LEN_DEFAULT`]).
    pub chunk_len_target: usize,
    /// Compression threads; 0 = one per core. With 1, everything runs on the calling
    /// thread.
    pub threads: usize,
    /// Write-behind step in bytes (0: none). Each time this many more bytes are
    /// written, their writeback starts ([`File::write_back`]) and the writer waits for
    /// the step before them: the file's dirty pages stay within about two steps and go
    /// to the disk while the snapshot is written, instead of all at once in its final
    /// fsync, which would hold up every other fsync of that disk meanwhile (a server's
    /// log). Default [`WRITE_BEHIND_DEFAULT`].
    pub write_behind: u64,
}

/// The default [`WriteOptions::write_behind`]: 256 KiB. A step is what another file's
/// fsync on the same disk (a server's log) may find queued ahead of it: with 1 MiB
/// steps a server's write p99 while snapshots were written was about 1.6x its level
/// without, with 64 to 256 KiB steps about 1.2x (same bench, same machine), and
/// smaller steps only add system calls.
pub const WRITE_BEHIND_DEFAULT: u64 = 256 << 10;

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions {
            level: Some(1),
            chunk_len_target: CHUNK_TARGET_LEN_DEFAULT,
            threads: 0,
            write_behind: WRITE_BEHIND_DEFAULT,
        }
    }
}

/// What [`write_snapshot`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenSnapshot {
    /// The final path.
    pub path: PathBuf,
    /// File length in bytes.
    pub file_len: u64,
    /// Nodes written.
    pub node_count: u64,
    /// Chunks written.
    pub chunk_count: usize,
    /// Raw bytes of all node records (before compression).
    pub raw_node_bytes: u64,
    /// Stored bytes of all chunks (after compression, headers excluded).
    pub stored_node_bytes: u64,
}

/// Writes a snapshot of `source` and `meta` as `dir/name`: first to `dir/name.tmp`
/// (replacing a leftover), fsynced, then renamed over `dir/name` and the directory
/// fsynced. On any error the temporary file is removed (best effort) and `dir/name`
/// is untouched.
///
/// Limits are checked before the bytes they concern are written: the metadata
/// ([`SnapshotMeta`] fields, before the file is created) and every node (path and
/// value length, ACL id present in `meta.acls`, the root first, at most
/// `meta.node_count` nodes). A violation is a [`SnapshotError::Refused`] naming the
/// limit. The source must yield exactly `meta.node_count`
/// nodes, parents before children.
pub fn write_snapshot<S: NodeSource + ?Sized>(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    meta: &SnapshotMeta,
    source: &S,
    opts: &WriteOptions,
) -> Result<WrittenSnapshot, SnapshotError> {
    let final_path = dir.join(name);
    let bad = |msg: String| refused(&final_path, msg);
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(bad(format!("{name:?} is not a file name")));
    }
    if name.ends_with(TEMP_SUFFIX) {
        return Err(bad(format!("{name:?} ends with the temporary suffix {TEMP_SUFFIX}")));
    }
    if !(CHUNK_TARGET_LEN_MIN..=CHUNK_TARGET_LEN_MAX).contains(&opts.chunk_len_target) {
        return Err(bad(format!(
            "chunk target {} outside {CHUNK_TARGET_LEN_MIN}..={CHUNK_TARGET_LEN_MAX}",
            opts.chunk_len_target
        )));
    }
    if let Some(level) = opts.level.filter(|l| !zstd::compression_level_range().contains(l)) {
        return Err(bad(format!("zstd level {level} out of range")));
    }
    check_meta(meta).map_err(bad)?;
    let mut meta_raw = Vec::new();
    encode_meta(meta, &mut meta_raw);
    if meta_raw.len() > META_RAW_LEN_MAX {
        return Err(bad(format!(
            "metadata of {} bytes: more than META_RAW_LEN_MAX ({META_RAW_LEN_MAX})",
            meta_raw.len()
        )));
    }

    let tmp_path = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let file = fs
        .open(&tmp_path, OpenMode::CreateTruncate)
        .map_err(|e| SnapshotError::io(&tmp_path, e))?;
    let result = write_file(&*file, &tmp_path, meta, &meta_raw, source, opts)
        .and_then(|w| file.sync_all().map(|()| w).map_err(|e| SnapshotError::io(&tmp_path, e)));
    drop(file);
    let written = match result {
        Ok(w) => w,
        Err(e) => {
            // The temporary file is garbage; the final name was never touched.
            let _ = fs.remove_file(&tmp_path);
            return Err(e);
        }
    };
    fs.rename(&tmp_path, &final_path).map_err(|e| SnapshotError::io(&final_path, e))?;
    fs.sync_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
    Ok(WrittenSnapshot { path: final_path, ..written })
}

fn refused(path: &Path, reason: String) -> SnapshotError {
    SnapshotError::Refused { path: path.to_path_buf(), reason }
}

/// A random id for the header and trailer (different for every file written).
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish()
}

/// Writes the whole file (not synced).
fn write_file<S: NodeSource + ?Sized>(
    file: &dyn File,
    path: &Path,
    meta: &SnapshotMeta,
    meta_raw: &[u8],
    source: &S,
    opts: &WriteOptions,
) -> Result<WrittenSnapshot, SnapshotError> {
    let io_err = |e| SnapshotError::io(path, e);
    let snapshot_id = random_id();
    let header = FileHeader { version: FORMAT_VERSION, flags: 0, snapshot_id }.encode();
    file.write_all_at(&header, 0).map_err(io_err)?;

    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let producer = Producer::new(path, meta, opts);
    let (node_count, state) = if threads <= 1 {
        let mut out = InlineOut::new(file, path, opts)?;
        let (n, chunks) = producer.run(source, &mut out)?;
        debug_assert_eq!(out.state.entries.len(), chunks);
        (n, out.state)
    } else {
        write_parallel(file, path, opts, threads, producer, source)?
    };
    if node_count != meta.node_count {
        return Err(refused(
            path,
            format!("the source yielded {node_count} nodes, the metadata says {}", meta.node_count),
        ));
    }

    // Metadata, footer, trailer: one write.
    let mut comp = compressor(opts.level, path)?;
    let mut meta_stored = Vec::new();
    let meta_codec = compress_into(comp.as_mut(), meta_raw, &mut meta_stored);
    let meta_stored: &[u8] = match meta_codec {
        Codec::Zstd => &meta_stored,
        Codec::Raw => meta_raw,
    };
    let meta_offset = state.offset;
    let meta_header = BlockHeader {
        crc: 0,
        kind: BlockKind::Meta,
        codec: meta_codec,
        seq: 0,
        node_count: 0,
        stored_len: len_u32(meta_stored.len()),
        raw_len: len_u32(meta_raw.len()),
        raw_crc: crc32fast::hash(meta_raw),
    }
    .encode(meta_stored);
    let chunk_count = state.entries.len();
    let raw_node_bytes = state.raw_bytes;
    let stored_node_bytes = state.stored_bytes;
    let footer =
        Footer { meta_offset, meta_stored_len: len_u32(meta_stored.len()), chunks: state.entries };
    let mut footer_raw = Vec::new();
    encode_footer(&footer, &mut footer_raw);
    let footer_header = BlockHeader {
        crc: 0,
        kind: BlockKind::Footer,
        codec: Codec::Raw,
        seq: 0,
        node_count: 0,
        stored_len: len_u32(footer_raw.len()),
        raw_len: len_u32(footer_raw.len()),
        raw_crc: crc32fast::hash(&footer_raw),
    }
    .encode(&footer_raw);
    let footer_offset = meta_offset + len_u64(BLOCK_HEADER_LEN + meta_stored.len());
    let footer_len = len_u32(BLOCK_HEADER_LEN + footer_raw.len());
    let trailer = Trailer { snapshot_id, footer_offset, footer_len }.encode();
    let mut tail = Vec::with_capacity(
        2 * BLOCK_HEADER_LEN + meta_stored.len() + footer_raw.len() + trailer.len(),
    );
    tail.extend_from_slice(&meta_header);
    tail.extend_from_slice(meta_stored);
    tail.extend_from_slice(&footer_header);
    tail.extend_from_slice(&footer_raw);
    tail.extend_from_slice(&trailer);
    file.write_all_at(&tail, meta_offset).map_err(io_err)?;
    Ok(WrittenSnapshot {
        path: path.to_path_buf(),
        file_len: meta_offset + len_u64(tail.len()),
        node_count,
        chunk_count,
        raw_node_bytes,
        stored_node_bytes,
    })
}

/// A zstd compressor for `level`; `None` when blocks are stored raw.
fn compressor(
    level: Option<i32>,
    path: &Path,
) -> Result<Option<zstd::bulk::Compressor<'static>>, SnapshotError> {
    level
        .map(|l| zstd::bulk::Compressor::new(l).map_err(|e| SnapshotError::io(path, e)))
        .transpose()
}

/// Compresses `raw` into `out`; returns [`Codec::Raw`] (and leaves `out` meaningless)
/// when there is no compressor or zstd does not make it smaller.
fn compress_into(
    comp: Option<&mut zstd::bulk::Compressor<'_>>,
    raw: &[u8],
    out: &mut Vec<u8>,
) -> Codec {
    let Some(comp) = comp else { return Codec::Raw };
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
    match comp.compress_to_buffer(raw, out) {
        Ok(n) if n < raw.len() => Codec::Zstd,
        _ => Codec::Raw,
    }
}

/// One chunk on its way through the pipeline; the buffers are recycled.
#[derive(Debug, Default)]
struct Chunk {
    raw: Vec<u8>,
    stored: Vec<u8>,
    entry: FooterEntry,
    header: [u8; BLOCK_HEADER_LEN],
    seq: u32,
}

impl Chunk {
    fn clear(&mut self) {
        self.raw.clear();
        self.entry.node_count = 0;
    }

    /// Compresses the raw bytes and builds the block header.
    fn seal(&mut self, comp: Option<&mut zstd::bulk::Compressor<'_>>) {
        debug_assert!(self.entry.node_count > 0);
        let codec = compress_into(comp, &self.raw, &mut self.stored);
        let stored: &[u8] = match codec {
            Codec::Zstd => &self.stored,
            Codec::Raw => &self.raw,
        };
        let h = BlockHeader {
            crc: 0,
            kind: BlockKind::Nodes,
            codec,
            seq: self.seq,
            node_count: self.entry.node_count,
            stored_len: len_u32(stored.len()),
            raw_len: len_u32(self.raw.len()),
            raw_crc: crc32fast::hash(&self.raw),
        };
        self.header = h.encode(stored);
        self.entry.codec = codec;
        self.entry.stored_len = h.stored_len;
        self.entry.raw_len = h.raw_len;
    }

    fn stored(&self) -> &[u8] {
        match self.entry.codec {
            Codec::Zstd => &self.stored,
            Codec::Raw => &self.raw,
        }
    }
}

/// Where sealed chunks go, in order: written at `offset`, listed in `entries`.
#[derive(Debug)]
struct OutState {
    offset: u64,
    entries: Vec<FooterEntry>,
    raw_bytes: u64,
    stored_bytes: u64,
    failed: Option<SnapshotError>,
    behind: WriteBehind,
}

impl OutState {
    fn new(write_behind: u64) -> OutState {
        OutState {
            offset: HEADER_LEN as u64,
            entries: Vec::new(),
            raw_bytes: 0,
            stored_bytes: 0,
            failed: None,
            behind: WriteBehind { step: write_behind, started: 0, waited: 0 },
        }
    }

    /// Writes a sealed chunk (unless an earlier write failed) and records it.
    fn write(&mut self, file: &dyn File, path: &Path, c: &Chunk) {
        if self.failed.is_some() {
            return;
        }
        let stored = c.stored();
        let res = file
            .write_all_at(&c.header, self.offset)
            .and_then(|()| file.write_all_at(stored, self.offset + BLOCK_HEADER_LEN as u64));
        if let Err(e) = res {
            self.failed = Some(SnapshotError::io(path, e));
            return;
        }
        let mut entry = c.entry.clone();
        entry.offset = self.offset;
        self.offset += entry.block_len();
        self.raw_bytes += u64::from(entry.raw_len);
        self.stored_bytes += u64::from(entry.stored_len);
        self.entries.push(entry);
        self.behind.advance(file, self.offset);
    }
}

/// The write-behind of [`WriteOptions::write_behind`]: `..waited` is written to the
/// device, `waited..started` on its way, `started..` dirty in the page cache.
#[derive(Debug)]
struct WriteBehind {
    step: u64,
    started: u64,
    waited: u64,
}

impl WriteBehind {
    /// The file is written up to `end`.
    fn advance(&mut self, file: &dyn File, end: u64) {
        if self.step == 0 || end - self.started < self.step {
            return;
        }
        // Hints: a failure changes nothing written, and the final fsync reports any
        // I/O error.
        let _ = file.write_back(self.started, end - self.started, false);
        if self.started > self.waited {
            let _ = file.write_back(self.waited, self.started - self.waited, true);
            self.waited = self.started;
        }
        self.started = end;
    }
}

/// The producer's view of the pipeline.
trait ChunkOut {
    /// An empty chunk buffer to fill.
    fn take(&mut self) -> Result<Box<Chunk>, SnapshotError>;
    /// Hands a full chunk over (sealed and written in `seq` order).
    fn submit(&mut self, chunk: Box<Chunk>) -> Result<(), SnapshotError>;
}

/// Everything on the calling thread (one core, or tiny snapshots in tests).
struct InlineOut<'a> {
    file: &'a dyn File,
    path: &'a Path,
    comp: Option<zstd::bulk::Compressor<'static>>,
    spare: Option<Box<Chunk>>,
    state: OutState,
}

impl<'a> InlineOut<'a> {
    fn new(file: &'a dyn File, path: &'a Path, opts: &WriteOptions) -> Result<Self, SnapshotError> {
        let comp = compressor(opts.level, path)?;
        let state = OutState::new(opts.write_behind);
        Ok(InlineOut { file, path, comp, spare: Some(Box::default()), state })
    }
}

impl ChunkOut for InlineOut<'_> {
    fn take(&mut self) -> Result<Box<Chunk>, SnapshotError> {
        Ok(self.spare.take().unwrap_or_default())
    }

    fn submit(&mut self, mut chunk: Box<Chunk>) -> Result<(), SnapshotError> {
        chunk.seal(self.comp.as_mut());
        self.state.write(self.file, self.path, &chunk);
        self.spare = Some(chunk);
        match self.state.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The parallel pipeline's producer end.
struct ParallelOut<'a> {
    free: Receiver<Box<Chunk>>,
    jobs: Option<SyncSender<Box<Chunk>>>,
    abort: &'a AtomicBool,
    path: &'a Path,
}

impl ChunkOut for ParallelOut<'_> {
    fn take(&mut self) -> Result<Box<Chunk>, SnapshotError> {
        self.free.recv().map_err(|_| pipeline_broken(self.path))
    }

    fn submit(&mut self, chunk: Box<Chunk>) -> Result<(), SnapshotError> {
        if self.abort.load(Ordering::Relaxed) {
            // The writer failed; it reports why.
            return Err(pipeline_broken(self.path));
        }
        match &self.jobs {
            Some(jobs) => jobs.send(chunk).map_err(|_| pipeline_broken(self.path)),
            None => Err(pipeline_broken(self.path)),
        }
    }
}

fn pipeline_broken(path: &Path) -> SnapshotError {
    SnapshotError::io(path, io::Error::other("snapshot writer pipeline stopped"))
}

fn write_parallel<S: NodeSource + ?Sized>(
    file: &dyn File,
    path: &Path,
    opts: &WriteOptions,
    threads: usize,
    producer: Producer<'_>,
    source: &S,
) -> Result<(u64, OutState), SnapshotError> {
    // Chunks in flight: each worker compressing one, one queued per worker, one being
    // filled, one being written. Memory is bounded by this many chunk buffers.
    let buffers = 2 * threads + 2;
    let (free_tx, free_rx) = mpsc::sync_channel::<Box<Chunk>>(buffers);
    for _ in 0..buffers {
        // Cannot fail: the receiver is alive and the channel has room.
        let _ = free_tx.send(Box::default());
    }
    let (job_tx, job_rx) = mpsc::sync_channel::<Box<Chunk>>(threads);
    // Only the workers hold the job queue: if they all stop, the producer's send fails
    // instead of blocking forever.
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<Box<Chunk>>();
    let abort = AtomicBool::new(false);
    let mut compressors = Vec::with_capacity(threads);
    for _ in 0..threads {
        compressors.push(compressor(opts.level, path)?);
    }

    std::thread::scope(|s| {
        let mut workers = Vec::with_capacity(threads);
        for mut comp in compressors {
            let done_tx = done_tx.clone();
            let job_rx = Arc::clone(&job_rx);
            workers.push(s.spawn(move || loop {
                // A poisoned lock means another worker panicked; stop too.
                let job = match job_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(mut chunk) = job else { return };
                chunk.seal(comp.as_mut());
                if done_tx.send(chunk).is_err() {
                    return;
                }
            }));
        }
        drop(job_rx);
        drop(done_tx);
        let abort_ref = &abort;
        let writer = s.spawn(move || {
            let mut state = OutState::new(opts.write_behind);
            let mut pending: BTreeMap<u32, Box<Chunk>> = BTreeMap::new();
            let mut next = 0u32;
            for chunk in done_rx {
                pending.insert(chunk.seq, chunk);
                while let Some(chunk) = pending.remove(&next) {
                    state.write(file, path, &chunk);
                    if state.failed.is_some() {
                        abort_ref.store(true, Ordering::Relaxed);
                    }
                    next += 1;
                    let _ = free_tx.send(chunk);
                }
            }
            state
        });

        let mut out = ParallelOut { free: free_rx, jobs: Some(job_tx), abort: &abort, path };
        let produced = producer.run(source, &mut out);
        // Closing the job queue ends the workers, which ends the writer.
        out.jobs = None;
        let mut panicked = false;
        for w in workers {
            panicked |= w.join().is_err();
        }
        let mut state = writer.join().map_err(|_| pipeline_broken(path))?;
        // The writer's I/O error explains a broken pipeline better than the producer.
        if let Some(e) = state.failed.take() {
            return Err(e);
        }
        let (n, chunks) = produced?;
        if panicked || state.entries.len() != chunks {
            return Err(pipeline_broken(path));
        }
        Ok((n, state))
    })
}

/// Room past the chunk target reserved in a chunk buffer: the record that crosses the
/// target fits without a reallocation unless it is larger than this.
const RAW_SLACK: usize = 64 << 10;

/// Walks the source, checks every node against the limits and fills chunks.
struct Producer<'a> {
    path: &'a Path,
    meta: &'a SnapshotMeta,
    target: usize,
    acl_ids: HashSet<u64>,
}

impl<'a> Producer<'a> {
    fn new(path: &'a Path, meta: &'a SnapshotMeta, opts: &WriteOptions) -> Producer<'a> {
        Producer {
            path,
            meta,
            target: opts.chunk_len_target,
            acl_ids: meta.acls.iter().map(|e| e.id).collect(),
        }
    }

    fn bad(&self, msg: String) -> SnapshotError {
        refused(self.path, msg)
    }

    /// Checks one node against the limits and the metadata.
    fn check(
        &self,
        n: u64,
        rec: &NodeRecord<'_>,
        last_acl: &mut Option<u64>,
    ) -> Result<(), SnapshotError> {
        if n > self.meta.node_count {
            return Err(self.bad(format!(
                "the source yields more nodes than the metadata's {}",
                self.meta.node_count
            )));
        }
        if n == 1 && rec.path != "/" {
            return Err(self.bad(format!("the first node must be the root /, not {:?}", rec.path)));
        }
        if rec.path.len() > PATH_LEN_MAX {
            return Err(self.bad(format!(
                "a path of {} bytes: more than PATH_LEN_MAX ({PATH_LEN_MAX})",
                rec.path.len()
            )));
        }
        if !rec.path.starts_with('/') {
            return Err(self.bad(format!("path {:?} does not start with /", rec.path)));
        }
        if let Some(d) = rec.data {
            if d.len() > DATA_LEN_MAX {
                return Err(self.bad(format!(
                    "node {}: a value of {} bytes: more than DATA_LEN_MAX ({DATA_LEN_MAX})",
                    rec.path,
                    d.len()
                )));
            }
        }
        if *last_acl != Some(rec.acl_id) {
            if !self.acl_ids.contains(&rec.acl_id) {
                return Err(self.bad(format!(
                    "node {}: ACL id {} is not in the metadata's ACL table",
                    rec.path, rec.acl_id
                )));
            }
            *last_acl = Some(rec.acl_id);
        }
        Ok(())
    }

    /// Runs the source through the checks into `out`; returns the node count and the
    /// chunk count.
    fn run<S: NodeSource + ?Sized>(
        &self,
        source: &S,
        out: &mut dyn ChunkOut,
    ) -> Result<(u64, usize), SnapshotError> {
        let mut count = 0u64;
        let mut seq = 0u32;
        let mut last_acl = None;
        let mut enc = ChunkEncoder::default();
        let mut cur: Option<Box<Chunk>> = None;
        source.for_each_node(&mut |rec| {
            count += 1;
            self.check(count, &rec, &mut last_acl)?;
            let mut chunk = match cur.take() {
                Some(c) => c,
                None => {
                    let mut c = out.take()?;
                    c.clear();
                    // Room for the chunk at once: grown by doubling, the buffer would
                    // end at twice the target after a ladder of reallocations.
                    c.raw.reserve(self.target.saturating_add(RAW_SLACK));
                    c
                }
            };
            if chunk.entry.node_count == 0 {
                enc.reset();
                chunk.entry.set_first_path(rec.path);
            }
            enc.encode(&mut chunk.raw, &rec);
            chunk.entry.node_count += 1;
            if chunk.raw.len() >= self.target {
                submit(&mut seq, chunk, out, self.path)?;
            } else {
                cur = Some(chunk);
            }
            Ok(())
        })?;
        if let Some(chunk) = cur.take() {
            submit(&mut seq, chunk, out, self.path)?;
        }
        Ok((count, seq as usize))
    }
}

fn submit(
    seq: &mut u32,
    mut chunk: Box<Chunk>,
    out: &mut dyn ChunkOut,
    path: &Path,
) -> Result<(), SnapshotError> {
    if *seq as usize >= CHUNK_COUNT_MAX {
        return Err(refused(path, format!("more than CHUNK_COUNT_MAX ({CHUNK_COUNT_MAX}) chunks")));
    }
    chunk.seq = *seq;
    *seq += 1;
    out.submit(chunk)
}
