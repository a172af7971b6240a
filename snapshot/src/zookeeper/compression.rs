//! The compression framing of ZooKeeper snapshots, chosen by the file name's suffix
//! ([`Compression`]): none, gzip (concatenated members, as Java's `GZIPInputStream`
//! reads them), or snappy-java's `SnappyOutputStream` framing (a 16-byte header, then
//! blocks of a big-endian `int` length and a raw Snappy block; a new header may start a
//! concatenated stream where a block length is expected).
//!
//! [`stream_reader`] gives the uncompressed stream as an `io::Read` that decompresses
//! only what is asked for; errors of the framing and of the file travel through it as
//! [`SnapshotError`]s ([`uncarry`] gets them back).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_model::le::len_u64;
use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_vfs::{read_full, File, FileReader, FileSystem, OpenMode};

use super::{Compression, STREAM_LEN_MAX};
use crate::error::SnapshotError;

/// Largest uncompressed snappy block accepted: 64 MiB. `SnappyOutputStream` writes
/// 32 KiB blocks by default; its largest configurable block size is far below this.
pub const SNAPPY_BLOCK_LEN_MAX: usize = 64 << 20;

/// The 8-byte magic of snappy-java's stream framing: `\x82SNAPPY\0`.
pub const SNAPPY_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

/// The 2-byte magic of a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// Length of snappy-java's stream header: magic, version, compatible version.
const SNAPPY_HEADER_LEN: usize = 16;

/// A snappy block's output is at most this many times its input: the densest Snappy
/// element is a 3-byte copy of 64 bytes (64 / 3 < 22). Checked before allocating.
const SNAPPY_EXPANSION_MAX: usize = 22;

/// Reads the whole uncompressed stream of a snapshot file into memory.
///
/// Errors: [`SnapshotError::Io`] when the file cannot be read; [`SnapshotError::Corrupt`]
/// when the compression framing is wrong (offsets in the compressed file, see the
/// module docs) or the stream would exceed [`STREAM_LEN_MAX`].
pub fn decompress(
    fs: &dyn FileSystem,
    path: &Path,
    compression: Compression,
) -> Result<Vec<u8>, SnapshotError> {
    let file = fs.open(path, OpenMode::Read).map_err(|e| SnapshotError::io(path, e))?;
    let file_len = file.len().map_err(|e| SnapshotError::io(path, e))?;
    decompress_file(file, file_len, path, compression, STREAM_LEN_MAX)
}

/// An error of the compression framing or of the file, carried through `io::Read`.
#[derive(Debug)]
struct Carried(SnapshotError);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Carried {}

fn carry(e: SnapshotError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Carried(e))
}

/// The [`SnapshotError`] an error of a stream reader stands for: a carried one as is,
/// else (the gzip decoder's own) a decompression error after `produced` bytes.
pub(super) fn uncarry(
    e: io::Error,
    path: &Path,
    compression: Compression,
    produced: u64,
) -> SnapshotError {
    if e.get_ref().is_some_and(|i| i.is::<Carried>()) {
        if let Some(Ok(c)) = e.into_inner().map(|b| b.downcast::<Carried>()) {
            return c.0;
        }
        return SnapshotError::io(path, io::Error::other("lost error"));
    }
    match compression {
        Compression::Gzip => Corruption::new(
            path,
            0,
            CorruptionKind::Decompression(format!(
                "gzip stream: {e} (after {produced} decompressed bytes)"
            )),
        )
        .into(),
        _ => SnapshotError::io(path, e),
    }
}

/// The file's bytes; a failed read is carried as [`SnapshotError::Io`], so that it is
/// never mistaken for bad compressed data.
struct FileSource {
    inner: FileReader,
    path: PathBuf,
}

impl Read for FileSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                e
            } else {
                carry(SnapshotError::io(&self.path, e))
            }
        })
    }
}

/// The uncompressed stream of a snapshot file, read as it is decompressed (nothing is
/// decompressed ahead of what the reader asks for).
pub(super) fn stream_reader(
    file: Arc<dyn File>,
    file_len: u64,
    path: &Path,
    compression: Compression,
) -> Box<dyn Read + Send> {
    let src = FileSource { inner: FileReader::new(file, 0), path: path.to_path_buf() };
    match compression {
        Compression::None => Box::new(src),
        // Java's GZIPInputStream reads concatenated members too.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(src)),
        Compression::Snappy => Box::new(SnappyReader {
            r: src,
            file_len,
            pos: 0,
            started: false,
            block: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            decoder: snap::raw::Decoder::new(),
            path: path.to_path_buf(),
        }),
    }
}

pub(super) fn decompress_file(
    file: Arc<dyn File>,
    file_len: u64,
    path: &Path,
    compression: Compression,
    cap: u64,
) -> Result<Vec<u8>, SnapshotError> {
    if compression == Compression::None && file_len > cap {
        return Err(too_long(path, 0, file_len, cap));
    }
    let mut out = Vec::new();
    let mut r = stream_reader(file, file_len, path, compression).take(cap.saturating_add(1));
    if let Err(e) = r.read_to_end(&mut out) {
        return Err(uncarry(e, path, compression, len_u64(out.len())));
    }
    let produced = len_u64(out.len());
    if produced > cap {
        return Err(too_long(path, 0, produced, cap));
    }
    Ok(out)
}

pub(super) fn too_long(path: &Path, offset: u64, len: u64, cap: u64) -> SnapshotError {
    Corruption::new(
        path,
        offset,
        CorruptionKind::LengthOutOfRange { len: i64::try_from(len).unwrap_or(i64::MAX), max: cap },
    )
    .into()
}

fn snappy_err(path: &Path, offset: u64, msg: String) -> SnapshotError {
    Corruption::new(path, offset, CorruptionKind::Decompression(msg)).into()
}

fn truncated(path: &Path, offset: u64, needed: u64, available: u64) -> SnapshotError {
    Corruption::new(path, offset, CorruptionKind::Truncated { needed, available }).into()
}

/// Checks the 8 bytes of magic and the version of a snappy-java stream header.
fn check_snappy_header(path: &Path, offset: u64, head: &[u8; 16]) -> Result<(), SnapshotError> {
    let [m @ .., v0, v1, v2, v3, _, _, _, _] = *head;
    if m != SNAPPY_MAGIC {
        return Err(Corruption::new(
            path,
            offset,
            CorruptionKind::BadMagic {
                expected: u64::from_be_bytes(SNAPPY_MAGIC),
                found: u64::from_be_bytes(m),
            },
        )
        .into());
    }
    // snappy-java checks only that the writer's version is at least 1.
    let version = i32::from_be_bytes([v0, v1, v2, v3]);
    if version < 1 {
        return Err(Corruption::new(
            path,
            offset + 8,
            CorruptionKind::UnsupportedVersion { found: i64::from(version) },
        )
        .into());
    }
    Ok(())
}

/// Decodes snappy-java's `SnappyOutputStream` framing, one block at a time: a 16-byte
/// header, then blocks of `int` compressed length + raw Snappy block; a new header may
/// start a concatenated stream where a block length is expected.
struct SnappyReader {
    r: FileSource,
    file_len: u64,
    /// File offset of the next unread byte.
    pos: u64,
    started: bool,
    block: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    decoder: snap::raw::Decoder,
    path: PathBuf,
}

impl SnappyReader {
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        read_full(&mut self.r, buf).map_err(|e| uncarry(e, &self.path, Compression::None, 0))
    }

    fn header(&mut self) -> Result<(), SnapshotError> {
        let path = self.path.clone();
        let mut head = [0u8; SNAPPY_HEADER_LEN];
        let n = self.read_full(&mut head)?;
        if n < SNAPPY_MAGIC.len() || head.get(..SNAPPY_MAGIC.len()) != Some(&SNAPPY_MAGIC[..]) {
            let mut found = [0u8; 8];
            found.iter_mut().zip(head.iter().take(n)).for_each(|(d, s)| *d = *s);
            return Err(Corruption::new(
                &path,
                0,
                CorruptionKind::BadMagic {
                    expected: u64::from_be_bytes(SNAPPY_MAGIC),
                    found: u64::from_be_bytes(found),
                },
            )
            .into());
        }
        if n < SNAPPY_HEADER_LEN {
            return Err(truncated(&path, 0, len_u64(SNAPPY_HEADER_LEN), len_u64(n)));
        }
        check_snappy_header(&path, 0, &head)?;
        self.pos = len_u64(SNAPPY_HEADER_LEN);
        Ok(())
    }

    /// Decodes the next block into `out`; `false` at the end of the file.
    fn next_block(&mut self) -> Result<bool, SnapshotError> {
        let path = self.path.clone();
        let path = path.as_path();
        if !self.started {
            self.started = true;
            self.header()?;
        }
        let block_len_max = snap::raw::max_compress_len(SNAPPY_BLOCK_LEN_MAX);
        loop {
            let pos = self.pos;
            let mut len_bytes = [0u8; 4];
            let n = self.read_full(&mut len_bytes)?;
            if n == 0 {
                return Ok(false);
            }
            if n < len_bytes.len() {
                return Err(truncated(path, pos, 4, len_u64(n)));
            }
            if len_bytes[..] == SNAPPY_MAGIC[..4] {
                // A concatenated stream: the rest of a header follows.
                let mut head = [0u8; SNAPPY_HEADER_LEN];
                head[..4].copy_from_slice(&len_bytes);
                let n = self.read_full(head.get_mut(4..).unwrap_or_default())?;
                if n < SNAPPY_HEADER_LEN - 4 {
                    return Err(truncated(path, pos, len_u64(SNAPPY_HEADER_LEN), len_u64(n + 4)));
                }
                check_snappy_header(path, pos, &head)?;
                self.pos += len_u64(SNAPPY_HEADER_LEN);
                continue;
            }
            let claimed = i32::from_be_bytes(len_bytes);
            let available = self.file_len.saturating_sub(pos + 4);
            let len = match usize::try_from(claimed) {
                Ok(len) if len > 0 && len <= block_len_max => len,
                _ => {
                    return Err(Corruption::new(
                        path,
                        pos,
                        CorruptionKind::LengthOutOfRange {
                            len: i64::from(claimed),
                            max: len_u64(block_len_max),
                        },
                    )
                    .into());
                }
            };
            if len_u64(len) > available {
                return Err(truncated(path, pos, len_u64(len), available));
            }
            let mut block = std::mem::take(&mut self.block);
            block.resize(len, 0);
            let got = self.read_full(&mut block)?;
            if got < len {
                return Err(truncated(path, pos, len_u64(len), len_u64(got)));
            }
            self.pos += 4 + len_u64(len);
            let out_len = snap::raw::decompress_len(&block)
                .map_err(|e| snappy_err(path, pos, format!("snappy block header: {e}")))?;
            if out_len > SNAPPY_BLOCK_LEN_MAX || out_len > len.saturating_mul(SNAPPY_EXPANSION_MAX)
            {
                return Err(snappy_err(
                    path,
                    pos,
                    format!("snappy block of {len} bytes claims {out_len} uncompressed bytes"),
                ));
            }
            self.out.resize(out_len, 0);
            let written = self
                .decoder
                .decompress(&block, &mut self.out)
                .map_err(|e| snappy_err(path, pos, format!("snappy block: {e}")))?;
            if written != out_len {
                return Err(snappy_err(
                    path,
                    pos,
                    format!("snappy block produced {written} bytes, its header says {out_len}"),
                ));
            }
            self.block = block;
            self.out_pos = 0;
            return Ok(true);
        }
    }
}

impl Read for SnappyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.out.len() {
            if !self.next_block().map_err(carry)? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}
