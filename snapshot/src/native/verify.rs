//! Checking every byte of a native snapshot ([`verify_snapshot`]) and describing one
//! ([`inspect_snapshot`]).

use std::path::{Path, PathBuf};

use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_vfs::{File, FileSystem, OpenMode};

use super::codec::{decode_meta, FooterEntry};
use super::format::{BlockHeader, BlockKind, Codec, BLOCK_HEADER_LEN, HEADER_LEN};
use super::reader::{
    chunk_no, decompress, load_chunk, read_header, split_header, ChunkBuf, Feeder, Layout,
};
use super::{NullSink, SnapshotMeta};
use crate::error::SnapshotError;

/// Checks every byte of a snapshot: header, trailer, footer, metadata, and every chunk
/// (both CRCs, decompression, every node record, ACL ids, node counts). Goes on after
/// a damaged chunk, so every damaged chunk is listed. When the trailer or the footer
/// is unusable (a truncated file, say) it walks the blocks from the header on and
/// checks as many as it can reach.
///
/// An empty list means the file is intact. `Err` only when the file cannot be read.
pub fn verify_snapshot(fs: &dyn FileSystem, path: &Path) -> Result<Vec<Corruption>, SnapshotError> {
    let file = fs.open(path, OpenMode::Read).map_err(|e| SnapshotError::io(path, e))?;
    let mut problems = Vec::new();
    let layout = match Layout::read(&*file, path) {
        Ok(l) => l,
        Err(SnapshotError::Corrupt(p)) => {
            problems.push(p);
            scan_blocks(&*file, path, &mut problems)?;
            return Ok(problems);
        }
        Err(e) => return Err(e),
    };
    let meta = match layout.read_meta(&*file, path) {
        Ok(m) => Some(m),
        Err(SnapshotError::Corrupt(p)) => {
            problems.push(p);
            None
        }
        Err(e) => return Err(e),
    };
    // Without the metadata, ACL ids cannot be checked: an empty table would flag every
    // node, so that check is skipped.
    let mut feeder = meta.as_ref().map(|m| Feeder::new(path, m));
    let mut buf = ChunkBuf::default();
    let mut dctx = zstd::bulk::Decompressor::new().map_err(|e| SnapshotError::io(path, e))?;
    for (i, entry) in layout.footer.chunks.iter().enumerate() {
        match load_chunk(&*file, path, i, entry, &mut buf, &mut dctx) {
            Ok(()) => {}
            Err(SnapshotError::Corrupt(p)) => {
                problems.push(p);
                continue;
            }
            Err(e) => return Err(e),
        }
        let fed = match feeder.as_mut() {
            Some(f) => f.feed(i, entry, &buf, &mut NullSink),
            None => Feeder::new_unchecked(path).feed(i, entry, &buf, &mut NullSink),
        };
        match fed {
            Ok(()) => {}
            Err(SnapshotError::Corrupt(p)) => problems.push(p),
            Err(e) => return Err(e),
        }
    }
    Ok(problems)
}

/// Walks the blocks from the end of the header, for a file whose footer cannot be
/// used: checks each block's header, CRCs and (for chunks) node records, and stops at
/// the first block it cannot delimit.
fn scan_blocks(
    file: &dyn File,
    path: &Path,
    problems: &mut Vec<Corruption>,
) -> Result<(), SnapshotError> {
    let file_len = file.len().map_err(|e| SnapshotError::io(path, e))?;
    if read_header(file, path, file_len).is_err() {
        return Ok(());
    }
    let mut off = HEADER_LEN as u64;
    let mut seq = 0usize;
    let mut buf = ChunkBuf::default();
    let mut dctx = zstd::bulk::Decompressor::new().map_err(|e| SnapshotError::io(path, e))?;
    while off < file_len {
        let mut hb = [0u8; BLOCK_HEADER_LEN];
        if file_len - off < BLOCK_HEADER_LEN as u64 || file.read_exact_at(&mut hb, off).is_err() {
            problems.push(Corruption::new(
                path,
                off,
                CorruptionKind::Unfinished { what: "block header (scan)" },
            ));
            return Ok(());
        }
        let h = match BlockHeader::decode(&hb) {
            Ok(h) => h,
            Err(e) => {
                problems.push(Corruption::new(path, off + e.offset, e.kind));
                return Ok(());
            }
        };
        if off + h.block_len() > file_len {
            problems.push(Corruption::new(
                path,
                off,
                CorruptionKind::Truncated { needed: h.block_len(), available: file_len - off },
            ));
            return Ok(());
        }
        match h.kind {
            BlockKind::Nodes => {
                let entry = FooterEntry {
                    offset: off,
                    stored_len: h.stored_len,
                    raw_len: h.raw_len,
                    node_count: h.node_count,
                    codec: h.codec,
                    first_path: Vec::new(),
                    path_cut: false,
                };
                let loaded = load_chunk(file, path, seq, &entry, &mut buf, &mut dctx);
                let fed = loaded.and_then(|()| {
                    Feeder::new_unchecked(path).feed(seq, &entry, &buf, &mut NullSink)
                });
                match fed {
                    Ok(()) => {}
                    Err(SnapshotError::Corrupt(p)) => problems.push(p),
                    Err(e) => return Err(e),
                }
                seq += 1;
            }
            BlockKind::Meta => {
                let mut b = vec![0u8; usize::try_from(h.block_len()).unwrap_or(0)];
                file.read_exact_at(&mut b, off).map_err(|e| SnapshotError::io(path, e))?;
                let (hb, stored) = split_header(&b);
                let mut raw = Vec::new();
                let checked = h
                    .check_crc(hb, stored)
                    .and_then(|()| decompress(&h, stored, &mut raw, &mut dctx));
                match checked {
                    Err(e) => problems.push(Corruption::new(path, off + e.offset, e.kind)),
                    Ok(raw) => {
                        if let Err(e) = decode_meta(raw) {
                            problems.push(Corruption::new(
                                path,
                                off,
                                CorruptionKind::inside(
                                    format!("metadata, byte {}", e.offset),
                                    e.kind,
                                ),
                            ));
                        }
                    }
                }
            }
            BlockKind::Footer => return Ok(()),
        }
        off += h.block_len();
    }
    Ok(())
}

/// What [`inspect_snapshot`] reports about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeSnapshotInfo {
    /// The file.
    pub path: PathBuf,
    /// Its length in bytes.
    pub file_len: u64,
    /// Format version.
    pub version: u16,
    /// Header flags.
    pub flags: u32,
    /// The random id in the header and the trailer.
    pub snapshot_id: u64,
    /// Offset of the footer block.
    pub footer_offset: u64,
    /// Length of the footer block.
    pub footer_len: u32,
    /// Offset of the metadata block.
    pub meta_offset: u64,
    /// Stored length of the metadata block (after its header).
    pub meta_stored_len: u32,
    /// The metadata.
    pub meta: SnapshotMeta,
    /// The chunk table.
    pub chunks: Vec<ChunkInfo>,
}

/// One chunk as the footer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Chunk number.
    pub index: u32,
    /// Offset of its block.
    pub offset: u64,
    /// Stored bytes (after the 32-byte block header).
    pub stored_len: u32,
    /// Raw bytes.
    pub raw_len: u32,
    /// Nodes.
    pub node_count: u32,
    /// `raw` or `zstd`.
    pub codec: Codec,
    /// The path of its first node (at most 256 bytes of it, lossily decoded if cut
    /// inside a character).
    pub first_path: String,
    /// Whether `first_path` was cut.
    pub first_path_cut: bool,
}

/// Reads the header, trailer, footer and metadata of a snapshot (not the chunks: see
/// [`verify_snapshot`]).
pub fn inspect_snapshot(
    fs: &dyn FileSystem,
    path: &Path,
) -> Result<NativeSnapshotInfo, SnapshotError> {
    let file = fs.open(path, OpenMode::Read).map_err(|e| SnapshotError::io(path, e))?;
    let layout = Layout::read(&*file, path)?;
    let meta = layout.read_meta(&*file, path)?;
    let chunks = layout
        .footer
        .chunks
        .iter()
        .enumerate()
        .map(|(i, e)| ChunkInfo {
            index: chunk_no(i),
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
            node_count: e.node_count,
            codec: e.codec,
            first_path: String::from_utf8_lossy(&e.first_path).into_owned(),
            first_path_cut: e.path_cut,
        })
        .collect();
    Ok(NativeSnapshotInfo {
        path: path.to_path_buf(),
        file_len: layout.file_len,
        version: layout.header.version,
        flags: layout.header.flags,
        snapshot_id: layout.header.snapshot_id,
        footer_offset: layout.trailer.footer_offset,
        footer_len: layout.trailer.footer_len,
        meta_offset: layout.footer.meta_offset,
        meta_stored_len: layout.footer.meta_stored_len,
        meta,
        chunks,
    })
}
