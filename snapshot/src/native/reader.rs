//! Reading a native snapshot: trailer → footer → metadata, then the chunks, read and
//! decompressed in parallel by worker threads and fed to the sink in order by the
//! calling thread.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use keeperkit_model::{Corruption, CorruptionKind, DecodeError};
use keeperkit_vfs::{File, FileSystem, OpenMode};

use super::codec::{decode_footer, decode_meta, Footer, FooterEntry, NodeDecoder};
use super::format::{
    len_u64, BlockHeader, BlockKind, Codec, FileHeader, Trailer, BLOCK_HEADER_LEN, FILE_LEN_MIN,
    FOOTER_FIXED_LEN, FOOTER_LEN_MAX, HEADER_LEN, TRAILER_LEN,
};
use super::{NodeSink, SnapshotMeta};
use crate::error::SnapshotError;

/// How to read a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// Decompression threads; 0 = one per core. With 1, everything runs on the calling
    /// thread.
    pub threads: usize,
}

/// Reads a snapshot into `sink`: the metadata first ([`NodeSink::begin`]), then every
/// node in file order (pre-order). Returns the metadata.
///
/// The trailer, footer and metadata are checked before the first node is handed over;
/// each chunk's CRCs, lengths and node count are checked before any of its nodes is.
/// On an error the sink may have received the nodes of the chunks before the damaged
/// one; the caller discards them. Errors: [`SnapshotError::Io`] when the file cannot
/// be read, [`SnapshotError::Corrupt`] naming the file, the byte offset and (inside a
/// chunk) the chunk number.
pub fn read_snapshot(
    fs: &dyn FileSystem,
    path: &Path,
    sink: &mut dyn NodeSink,
) -> Result<SnapshotMeta, SnapshotError> {
    read_snapshot_with(fs, path, sink, &ReadOptions::default())
}

/// [`read_snapshot`] with options.
pub fn read_snapshot_with(
    fs: &dyn FileSystem,
    path: &Path,
    sink: &mut dyn NodeSink,
    opts: &ReadOptions,
) -> Result<SnapshotMeta, SnapshotError> {
    let file = fs.open(path, OpenMode::Read).map_err(|e| SnapshotError::io(path, e))?;
    let layout = Layout::read(&*file, path)?;
    let meta = layout.read_meta(&*file, path)?;
    sink.begin(&meta).map_err(|msg| -> SnapshotError {
        Corruption::new(path, layout.footer.meta_offset, CorruptionKind::bad_tree(msg)).into()
    })?;
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let mut feeder = Feeder::new(path, &meta);
    let chunks = &layout.footer.chunks;
    if threads <= 1 || chunks.len() <= 1 {
        let mut buf = ChunkBuf::default();
        let mut dctx = decompressor(path)?;
        for (i, entry) in chunks.iter().enumerate() {
            load_chunk(&*file, path, i, entry, &mut buf, &mut dctx)?;
            feeder.feed(i, entry, &buf, sink)?;
        }
    } else {
        read_parallel(&*file, path, chunks, threads, &mut feeder, sink)?;
    }
    Ok(meta)
}

fn io_fail(path: &Path, e: io::Error) -> SnapshotError {
    SnapshotError::io(path, e)
}

fn decompressor(path: &Path) -> Result<zstd::bulk::Decompressor<'static>, SnapshotError> {
    zstd::bulk::Decompressor::new().map_err(|e| SnapshotError::io(path, e))
}

/// Reads exactly `buf.len()` bytes at `offset`; a short file is corruption (the layout
/// said the bytes are there).
fn read_at(file: &dyn File, path: &Path, buf: &mut [u8], offset: u64) -> Result<(), SnapshotError> {
    match file.read_exact_at(buf, offset) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Corruption::new(
            path,
            offset,
            CorruptionKind::Truncated { needed: len_u64(buf.len()), available: 0 },
        )
        .into()),
        Err(e) => Err(io_fail(path, e)),
    }
}

/// The structure of a file: header, trailer and footer, checked against each other
/// and against the file length.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) file_len: u64,
    pub(crate) header: FileHeader,
    pub(crate) trailer: Trailer,
    pub(crate) footer: Footer,
    /// Sum of the chunks' node counts.
    pub(crate) node_count: u64,
}

impl Layout {
    /// Reads and checks the header, the trailer and the footer.
    pub(crate) fn read(file: &dyn File, path: &Path) -> Result<Layout, SnapshotError> {
        let file_len = file.len().map_err(|e| io_fail(path, e))?;
        let header = read_header(file, path, file_len)?;
        let corrupt = |offset: u64, kind| SnapshotError::from(Corruption::new(path, offset, kind));
        if file_len < FILE_LEN_MIN {
            return Err(corrupt(
                file_len,
                CorruptionKind::Truncated { needed: FILE_LEN_MIN, available: file_len },
            ));
        }
        let trailer_at = file_len - TRAILER_LEN as u64;
        let mut tb = [0u8; TRAILER_LEN];
        read_at(file, path, &mut tb, trailer_at)?;
        let trailer = Trailer::decode(&tb).map_err(|e| {
            let kind = match e.kind {
                CorruptionKind::BadMagic { .. } => CorruptionKind::Unfinished { what: "trailer" },
                k => k,
            };
            corrupt(trailer_at + e.offset, kind)
        })?;
        if trailer.snapshot_id != header.snapshot_id {
            return Err(corrupt(
                trailer_at,
                CorruptionKind::inconsistent(format!(
                    "the trailer belongs to snapshot {:#x}, the header to {:#x}",
                    trailer.snapshot_id, header.snapshot_id
                )),
            ));
        }
        let footer_len = u64::from(trailer.footer_len);
        let footer_min = (BLOCK_HEADER_LEN + FOOTER_FIXED_LEN) as u64;
        let fits = footer_len >= footer_min
            && footer_len <= FOOTER_LEN_MAX as u64
            && trailer.footer_offset >= (HEADER_LEN + BLOCK_HEADER_LEN) as u64
            && trailer.footer_offset.checked_add(footer_len) == Some(trailer_at);
        if !fits {
            return Err(corrupt(
                trailer_at,
                CorruptionKind::inconsistent(format!(
                    "the trailer places the footer at bytes {}..+{}, which is not right \
                     before the trailer at {trailer_at}",
                    trailer.footer_offset, trailer.footer_len
                )),
            ));
        }
        let footer_offset = trailer.footer_offset;
        let mut fb = vec![0u8; usize::try_from(footer_len).unwrap_or(0)];
        read_at(file, path, &mut fb, footer_offset)?;
        let (hb, stored) = split_header(&fb);
        let fh = BlockHeader::decode(hb).map_err(|e| corrupt(footer_offset + e.offset, e.kind))?;
        if fh.kind != BlockKind::Footer || fh.block_len() != footer_len {
            return Err(corrupt(
                footer_offset,
                CorruptionKind::inconsistent(format!(
                    "expected the footer block ({footer_len} bytes), found a {:?} block of {}",
                    fh.kind,
                    fh.block_len()
                )),
            ));
        }
        fh.check_crc(hb, stored).map_err(|e| corrupt(footer_offset + e.offset, e.kind))?;
        check_raw_crc(&fh, stored).map_err(|e| corrupt(footer_offset + e.offset, e.kind))?;
        let stored_at = footer_offset + BLOCK_HEADER_LEN as u64;
        let footer = decode_footer(stored).map_err(|e| corrupt(stored_at + e.offset, e.kind))?;

        // The chunks, the metadata and the footer tile the file without gaps.
        let mut expected = HEADER_LEN as u64;
        let mut node_count = 0u64;
        for (i, e) in footer.chunks.iter().enumerate() {
            let bad = |msg: String| {
                SnapshotError::from(
                    Corruption::new(
                        path,
                        stored_at,
                        CorruptionKind::inconsistent(format!("footer entry: {msg}")),
                    )
                    .with_chunk(chunk_no(i)),
                )
            };
            if e.offset != expected {
                return Err(bad(format!("offset {}, expected {expected}", e.offset)));
            }
            let kind_max = BlockKind::Nodes.raw_len_max();
            let stored_ok = match e.codec {
                Codec::Raw => e.stored_len == e.raw_len,
                Codec::Zstd => e.stored_len < e.raw_len,
            };
            if e.raw_len as usize > kind_max || !stored_ok || e.node_count == 0 {
                return Err(bad(format!(
                    "impossible lengths: {} stored, {} raw, {} nodes",
                    e.stored_len, e.raw_len, e.node_count
                )));
            }
            expected += e.block_len();
            node_count += u64::from(e.node_count);
            if expected > footer_offset {
                return Err(bad(format!("the chunk ends past the footer at {footer_offset}")));
            }
        }
        let meta_end = footer
            .meta_offset
            .checked_add(BLOCK_HEADER_LEN as u64 + u64::from(footer.meta_stored_len));
        if footer.meta_offset != expected || meta_end != Some(footer_offset) {
            return Err(corrupt(
                stored_at,
                CorruptionKind::inconsistent(format!(
                    "footer: the metadata block at {}..+{} does not sit between the last \
                     chunk (ends at {expected}) and the footer (at {footer_offset})",
                    footer.meta_offset,
                    u64::from(footer.meta_stored_len) + BLOCK_HEADER_LEN as u64
                )),
            ));
        }
        Ok(Layout { file_len, header, trailer, footer, node_count })
    }

    /// Reads, checks and decodes the metadata block; its node count must match the
    /// footer's.
    pub(crate) fn read_meta(
        &self,
        file: &dyn File,
        path: &Path,
    ) -> Result<SnapshotMeta, SnapshotError> {
        let off = self.footer.meta_offset;
        let corrupt = |o: u64, kind| SnapshotError::from(Corruption::new(path, o, kind));
        let len = BLOCK_HEADER_LEN + self.footer.meta_stored_len as usize;
        let mut buf = vec![0u8; len];
        read_at(file, path, &mut buf, off)?;
        let (hb, stored) = split_header(&buf);
        let h = BlockHeader::decode(hb).map_err(|e| corrupt(off + e.offset, e.kind))?;
        if h.kind != BlockKind::Meta || h.stored_len != self.footer.meta_stored_len {
            return Err(corrupt(
                off,
                CorruptionKind::inconsistent(format!(
                    "expected the metadata block ({} stored bytes), found a {:?} block of {}",
                    self.footer.meta_stored_len, h.kind, h.stored_len
                )),
            ));
        }
        h.check_crc(hb, stored).map_err(|e| corrupt(off + e.offset, e.kind))?;
        let mut raw_buf = Vec::new();
        let mut dctx = zstd::bulk::Decompressor::new().map_err(|e| io_fail(path, e))?;
        let raw = decompress(&h, stored, &mut raw_buf, &mut dctx)
            .map_err(|e| corrupt(off + e.offset, e.kind))?;
        let raw_at = off + BLOCK_HEADER_LEN as u64;
        let meta = decode_meta(raw).map_err(|e| {
            corrupt(
                raw_at,
                CorruptionKind::inside(
                    format!("metadata, byte {} of its decompressed bytes", e.offset),
                    e.kind,
                ),
            )
        })?;
        if meta.node_count != self.node_count {
            return Err(corrupt(
                raw_at,
                CorruptionKind::inconsistent(format!(
                    "the metadata counts {} nodes, the chunks {}",
                    meta.node_count, self.node_count
                )),
            ));
        }
        Ok(meta)
    }
}

pub(crate) fn read_header(
    file: &dyn File,
    path: &Path,
    file_len: u64,
) -> Result<FileHeader, SnapshotError> {
    if file_len < HEADER_LEN as u64 {
        return Err(Corruption::new(
            path,
            0,
            CorruptionKind::Truncated { needed: HEADER_LEN as u64, available: file_len },
        )
        .into());
    }
    let mut b = [0u8; HEADER_LEN];
    read_at(file, path, &mut b, 0)?;
    FileHeader::decode(&b).map_err(|e| Corruption::new(path, e.offset, e.kind).into())
}

/// Splits a block's bytes into its header and the stored bytes (the caller read at
/// least a header).
pub(crate) fn split_header(b: &[u8]) -> (&[u8; BLOCK_HEADER_LEN], &[u8]) {
    let (h, rest) = b.split_at(BLOCK_HEADER_LEN);
    let h: &[u8; BLOCK_HEADER_LEN] = h.try_into().unwrap_or(&[0; BLOCK_HEADER_LEN]);
    (h, rest)
}

fn check_raw_crc(h: &BlockHeader, raw: &[u8]) -> Result<(), DecodeError> {
    let computed = crc32fast::hash(raw);
    if computed != h.raw_crc {
        return Err(DecodeError::new(
            super::format::BLK_RAW_CRC_OFFSET as u64,
            CorruptionKind::ChecksumMismatch {
                stored: u64::from(h.raw_crc),
                computed: u64::from(computed),
            },
        ));
    }
    Ok(())
}

/// The raw bytes of a block whose CRC was checked: `stored` itself, or `stored`
/// decompressed into `out` (exactly `raw_len` bytes). Checks the raw CRC. Error
/// offsets are relative to the block header.
pub(crate) fn decompress<'a>(
    h: &BlockHeader,
    stored: &'a [u8],
    out: &'a mut Vec<u8>,
    dctx: &mut zstd::bulk::Decompressor<'_>,
) -> Result<&'a [u8], DecodeError> {
    let raw: &[u8] = match h.codec {
        Codec::Raw => stored,
        Codec::Zstd => {
            out.clear();
            // raw_len was checked against the kind's limit by BlockHeader::decode.
            out.reserve(h.raw_len as usize);
            match dctx.decompress_to_buffer(stored, out) {
                Ok(n) if n == h.raw_len as usize => {}
                Ok(n) => {
                    return Err(DecodeError::new(
                        BLOCK_HEADER_LEN as u64,
                        CorruptionKind::Decompression(format!(
                            "the zstd frame holds {n} bytes, the header says {}",
                            h.raw_len
                        )),
                    ))
                }
                Err(e) => {
                    return Err(DecodeError::new(
                        BLOCK_HEADER_LEN as u64,
                        CorruptionKind::Decompression(e.to_string()),
                    ))
                }
            }
            out
        }
    };
    check_raw_crc(h, raw)?;
    Ok(raw)
}

pub(crate) fn chunk_no(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Buffers of one chunk, recycled.
#[derive(Debug, Default)]
pub(crate) struct ChunkBuf {
    /// Header and stored bytes as read.
    block: Vec<u8>,
    /// Decompressed bytes (unused for raw chunks).
    raw: Vec<u8>,
    /// Whether `raw` holds the raw bytes (else they are `block[32..]`).
    decompressed: bool,
}

impl ChunkBuf {
    pub(crate) fn raw(&self) -> &[u8] {
        if self.decompressed {
            &self.raw
        } else {
            self.block.get(BLOCK_HEADER_LEN..).unwrap_or_default()
        }
    }
}

/// Reads chunk `i`, checks its header against the footer entry and both CRCs, and
/// decompresses it into `buf`.
pub(crate) fn load_chunk(
    file: &dyn File,
    path: &Path,
    i: usize,
    entry: &FooterEntry,
    buf: &mut ChunkBuf,
    dctx: &mut zstd::bulk::Decompressor<'_>,
) -> Result<(), SnapshotError> {
    let off = entry.offset;
    let corrupt = |o: u64, kind| {
        SnapshotError::from(Corruption::new(path, off + o, kind).with_chunk(chunk_no(i)))
    };
    let len = BLOCK_HEADER_LEN + entry.stored_len as usize;
    buf.block.clear();
    buf.block.resize(len, 0);
    buf.decompressed = false;
    read_at(file, path, &mut buf.block, off).map_err(|f| match f {
        SnapshotError::Corrupt(c) => SnapshotError::Corrupt(c.with_chunk(chunk_no(i))),
        io => io,
    })?;
    let (hb, stored) = split_header(&buf.block);
    let h = BlockHeader::decode(hb).map_err(|e| corrupt(e.offset, e.kind))?;
    let matches = h.kind == BlockKind::Nodes
        && h.seq == chunk_no(i)
        && h.codec == entry.codec
        && h.stored_len == entry.stored_len
        && h.raw_len == entry.raw_len
        && h.node_count == entry.node_count;
    if !matches {
        return Err(corrupt(
            0,
            CorruptionKind::inconsistent(format!(
                "block header ({:?} block {}, {} nodes, {} stored, {} raw, {}) does not match \
                 the footer ({} nodes, {} stored, {} raw, {})",
                h.kind,
                h.seq,
                h.node_count,
                h.stored_len,
                h.raw_len,
                h.codec.name(),
                entry.node_count,
                entry.stored_len,
                entry.raw_len,
                entry.codec.name()
            )),
        ));
    }
    h.check_crc(hb, stored).map_err(|e| corrupt(e.offset, e.kind))?;
    match h.codec {
        Codec::Raw => check_raw_crc(&h, stored).map_err(|e| corrupt(e.offset, e.kind))?,
        Codec::Zstd => {
            let mut raw = std::mem::take(&mut buf.raw);
            let r = decompress(&h, stored, &mut raw, dctx).map(|_| ());
            buf.raw = raw;
            r.map_err(|e| corrupt(e.offset, e.kind))?;
            buf.decompressed = true;
        }
    }
    Ok(())
}

/// Decodes chunks' node records and feeds them to a sink, checking ACL ids and node
/// counts.
pub(crate) struct Feeder {
    path: PathBuf,
    /// The ACL ids of the metadata; `None` skips the check (metadata unreadable).
    acl_ids: Option<HashSet<u64>>,
    last_acl: Option<u64>,
    path_buf: String,
}

impl Feeder {
    pub(crate) fn new(path: &Path, meta: &SnapshotMeta) -> Feeder {
        Feeder {
            path: path.to_path_buf(),
            acl_ids: Some(meta.acls.iter().map(|e| e.id).collect()),
            last_acl: None,
            path_buf: String::new(),
        }
    }

    /// A feeder that accepts every ACL id (for `verify` when the metadata is
    /// unreadable).
    pub(crate) fn new_unchecked(path: &Path) -> Feeder {
        Feeder { path: path.to_path_buf(), acl_ids: None, last_acl: None, path_buf: String::new() }
    }

    /// Feeds the nodes of chunk `i` (loaded into `buf`) to `sink`.
    pub(crate) fn feed(
        &mut self,
        i: usize,
        entry: &FooterEntry,
        buf: &ChunkBuf,
        sink: &mut dyn NodeSink,
    ) -> Result<(), SnapshotError> {
        let raw = buf.raw();
        let off = entry.offset;
        let path = &self.path;
        let in_chunk = |n: u32, at: usize, kind: CorruptionKind| {
            SnapshotError::from(
                Corruption::new(
                    path,
                    off,
                    CorruptionKind::inside(
                        format!("node {n} at byte {at} of the decompressed chunk"),
                        kind,
                    ),
                )
                .with_chunk(chunk_no(i)),
            )
        };
        let mut dec = NodeDecoder::new(raw, std::mem::take(&mut self.path_buf));
        let mut result = Ok(());
        for n in 0..entry.node_count {
            let at = dec.pos();
            let rec = match dec.next_record() {
                Ok(r) => r,
                Err(e) => {
                    result = Err(in_chunk(
                        n,
                        at,
                        CorruptionKind::inside(format!("byte {}", e.offset), e.kind),
                    ));
                    break;
                }
            };
            if let (Some(ids), false) = (&self.acl_ids, self.last_acl == Some(rec.acl_id)) {
                if !ids.contains(&rec.acl_id) {
                    let msg =
                        format!("{}: ACL id {} is not in the ACL table", rec.path, rec.acl_id);
                    result = Err(in_chunk(n, at, CorruptionKind::inconsistent(msg)));
                    break;
                }
                self.last_acl = Some(rec.acl_id);
            }
            if let Err(msg) = sink.node(rec) {
                result = Err(in_chunk(n, at, CorruptionKind::bad_tree(msg)));
                break;
            }
        }
        if result.is_ok() && !dec.is_empty() {
            let at = dec.pos();
            result = Err(in_chunk(
                entry.node_count,
                at,
                CorruptionKind::TrailingBytes {
                    after: "last node of the chunk",
                    count: len_u64(raw.len() - at),
                },
            ));
        }
        self.path_buf = dec.into_path_buf();
        result
    }
}

/// The parallel chunk pipeline: workers take the next chunk number, read, check and
/// decompress it; the calling thread feeds the sink in order.
fn read_parallel(
    file: &dyn File,
    path: &Path,
    chunks: &[FooterEntry],
    threads: usize,
    feeder: &mut Feeder,
    sink: &mut dyn NodeSink,
) -> Result<(), SnapshotError> {
    let workers = threads.min(chunks.len());
    // Each worker holds one buffer, one more per worker waits to be fed, one is being
    // fed: memory is bounded by this many chunks.
    let buffers = 2 * workers + 1;
    let (free_tx, free_rx) = mpsc::sync_channel::<Box<ChunkBuf>>(buffers);
    for _ in 0..buffers {
        let _ = free_tx.send(Box::default());
    }
    let free_rx = Arc::new(Mutex::new(free_rx));
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<Box<ChunkBuf>, SnapshotError>)>();
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let mut dctxs = Vec::with_capacity(workers);
    for _ in 0..workers {
        dctxs.push(decompressor(path)?);
    }

    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(workers);
        for mut dctx in dctxs {
            let free_rx = Arc::clone(&free_rx);
            let done_tx = done_tx.clone();
            let (next, abort) = (&next, &abort);
            handles.push(s.spawn(move || loop {
                if abort.load(Ordering::Relaxed) {
                    return;
                }
                // A buffer first, then a chunk number: the lowest chunk not yet fed is
                // always held by a worker that has its buffer, so the pipeline moves.
                let buf = match free_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(mut buf) = buf else { return };
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(entry) = chunks.get(i) else { return };
                let r = load_chunk(file, path, i, entry, &mut buf, &mut dctx).map(|()| buf);
                if done_tx.send((i, r)).is_err() {
                    return;
                }
            }));
        }
        drop(free_rx);
        drop(done_tx);
        let result = feed_in_order(chunks, &done_rx, &free_tx, feeder, sink, path);
        abort.store(true, Ordering::Relaxed);
        // Dropping the pool wakes workers waiting for a buffer.
        drop(free_tx);
        // Join explicitly: the scope only waits for the closures to return, and a
        // thread still running its thread-local destructors must not outlive the read.
        // A worker that panicked has already made the result an error (its chunk never
        // arrived).
        for h in handles {
            let _ = h.join();
        }
        result
    })
}

fn feed_in_order(
    chunks: &[FooterEntry],
    done_rx: &mpsc::Receiver<(usize, Result<Box<ChunkBuf>, SnapshotError>)>,
    free_tx: &mpsc::SyncSender<Box<ChunkBuf>>,
    feeder: &mut Feeder,
    sink: &mut dyn NodeSink,
    path: &Path,
) -> Result<(), SnapshotError> {
    let mut pending: BTreeMap<usize, Result<Box<ChunkBuf>, SnapshotError>> = BTreeMap::new();
    for (i, entry) in chunks.iter().enumerate() {
        let r = loop {
            if let Some(r) = pending.remove(&i) {
                break r;
            }
            match done_rx.recv() {
                Ok((j, r)) => {
                    pending.insert(j, r);
                }
                Err(_) => {
                    return Err(io_fail(path, io::Error::other("snapshot reader threads stopped")))
                }
            }
        };
        let buf = r?;
        feeder.feed(i, entry, &buf, sink)?;
        let _ = free_tx.send(buf);
    }
    Ok(())
}
