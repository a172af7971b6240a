//! The two compression containers of a Keeper snapshot file (docs/formats/clickhouse.md, "Snapshot containers").
//!
//! - **zstd**: the file starts with the zstd frame magic `28 B5 2F FD`; Keeper writes
//!   one frame (`ZstdDeflatingWriteBuffer`: level 3, content checksum on, a
//!   `ZSTD_e_flush` each time its 1 MiB buffer fills, `ZSTD_e_end` at the end).
//! - **ClickHouse compressed blocks** (anything else; `CompressedWriteBuffer`,
//!   `CompressedReadBufferBase`): a concatenation of blocks
//!
//! ```text
//! 16 bytes  CityHash128 v1.0.2 of the next 9 + payload bytes: low64 LE, high64 LE
//! u8        method: 0x82 LZ4, 0x90 ZSTD, 0x02 NONE
//! u32 LE    compressed size, including these 9 header bytes
//! u32 LE    uncompressed size
//! ...       payload: a raw LZ4 block / one zstd frame / the bytes themselves
//! ```
//!
//! The reader rejects a compressed size above 1 GiB (`DBMS_MAX_COMPRESSED_SIZE`) or
//! below the 9-byte header, and requires every block to use the first block's method.
//! CityHash128 is `cityhash-rs`'s v1.0.2 implementation, which matches ClickHouse's
//! bundled CityHash (checked against `clickhouse-compressor` output in
//! `testdata/clickhouse/ch-compressed-framing`).

use std::io::Read;

use keeperkit_model::CorruptionKind;
use zstd::stream::raw::{Encoder, InBuffer, Operation, OutBuffer};

/// Method byte of an LZ4 block (also LZ4HC).
pub const METHOD_LZ4: u8 = 0x82;
/// Method byte of a ZSTD block.
pub const METHOD_ZSTD: u8 = 0x90;
/// Method byte of an uncompressed block.
pub const METHOD_NONE: u8 = 0x02;

/// Length of a block's checksum.
pub const CHECKSUM_LEN: usize = 16;
/// Length of a block's header after the checksum (method, two sizes).
pub const BLOCK_HEADER_LEN: usize = 9;
/// Largest compressed block ClickHouse reads (`DBMS_MAX_COMPRESSED_SIZE`, 1 GiB).
pub const BLOCK_COMPRESSED_LEN_MAX: u32 = 1 << 30;
/// Uncompressed bytes per block ClickHouse's writer uses (`DBMS_DEFAULT_BUFFER_SIZE`).
pub const BLOCK_INPUT_LEN: usize = 1 << 20;
/// zstd frame magic as the first 4 bytes of a file.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Compression level of Keeper's zstd snapshots.
pub const ZSTD_LEVEL: i32 = 3;
/// Level ClickHouse's ZSTD codec uses for blocks by default.
pub const BLOCK_ZSTD_LEVEL: i32 = 1;

/// Which container a snapshot file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// One zstd stream (`snapshot_<N>.bin.zstd`).
    Zstd,
    /// ClickHouse compressed blocks with this method (`snapshot_<N>.bin`).
    Blocks(u8),
}

/// A container problem: file offset and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerError {
    /// File offset (the block's start for block errors, 0 for zstd errors).
    pub offset: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
}

fn err(offset: usize, kind: CorruptionKind) -> ContainerError {
    ContainerError { offset: offset as u64, kind }
}

/// CityHash128 v1.0.2 of `bytes` as ClickHouse stores it: low 64 bits LE, then high.
pub fn block_checksum(bytes: &[u8]) -> [u8; 16] {
    // cityhash-rs puts CityHash's `first` (ClickHouse's low64) in the high half.
    let be = cityhash_rs::cityhash_102_128(bytes).to_be_bytes();
    let mut out = [0u8; 16];
    for (half, src) in out.chunks_exact_mut(8).zip(be.chunks_exact(8)) {
        half.copy_from_slice(src);
        half.reverse();
    }
    out
}

/// One block of a ClickHouse compressed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// File offset of the block (its checksum).
    pub offset: u64,
    /// Method byte.
    pub method: u8,
    /// Compressed size including the 9-byte header.
    pub compressed_len: u32,
    /// Uncompressed size.
    pub uncompressed_len: u32,
}

/// Decodes a ClickHouse compressed-block file, appending the bytes to `out` (bounded
/// by `cap` in total). Returns the blocks.
pub fn decode_blocks(
    file: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
) -> Result<Vec<BlockInfo>, ContainerError> {
    let mut blocks = Vec::new();
    let mut pos = 0usize;
    let mut first_method = None;
    while pos < file.len() {
        let info = decode_block(file, pos, &mut first_method, out, 0, cap)?;
        pos += CHECKSUM_LEN + info.compressed_len as usize;
        blocks.push(info);
    }
    Ok(blocks)
}

/// Decodes the block at file offset `pos`, appending its bytes to `out`; `produced`
/// bytes were decoded before `out` began, and the total is bounded by `cap`.
fn decode_block(
    file: &[u8],
    pos: usize,
    first_method: &mut Option<u8>,
    out: &mut Vec<u8>,
    produced: usize,
    cap: usize,
) -> Result<BlockInfo, ContainerError> {
    let rest = &file[pos..];
    if rest.len() < CHECKSUM_LEN + BLOCK_HEADER_LEN {
        return Err(err(
            pos,
            CorruptionKind::Truncated {
                needed: (CHECKSUM_LEN + BLOCK_HEADER_LEN) as u64,
                available: rest.len() as u64,
            },
        ));
    }
    let method = rest[16];
    let csize = u32::from_le_bytes([rest[17], rest[18], rest[19], rest[20]]);
    let usize_ = u32::from_le_bytes([rest[21], rest[22], rest[23], rest[24]]);
    if csize > BLOCK_COMPRESSED_LEN_MAX || (csize as usize) < BLOCK_HEADER_LEN {
        return Err(err(
            pos + 17,
            CorruptionKind::LengthOutOfRange {
                len: i64::from(csize),
                max: u64::from(BLOCK_COMPRESSED_LEN_MAX),
            },
        ));
    }
    let csize_us = csize as usize;
    if rest.len() - CHECKSUM_LEN < csize_us {
        return Err(err(
            pos,
            CorruptionKind::Truncated {
                needed: (CHECKSUM_LEN + csize_us) as u64,
                available: rest.len() as u64,
            },
        ));
    }
    let covered = &rest[CHECKSUM_LEN..CHECKSUM_LEN + csize_us];
    let computed = block_checksum(covered);
    if computed[..] != rest[..CHECKSUM_LEN] {
        let lo = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
        return Err(err(
            pos,
            CorruptionKind::ChecksumMismatch { stored: lo(rest), computed: lo(&computed) },
        ));
    }
    match *first_method {
        None => *first_method = Some(method),
        Some(m) if m != method => {
            return Err(err(
                pos + 16,
                CorruptionKind::inconsistent(format!(
                    "block method {method:#04x} differs from the first block's {m:#04x}"
                )),
            ))
        }
        Some(_) => {}
    }
    let want = usize_ as usize;
    let total = produced.saturating_add(out.len()).saturating_add(want);
    if total > cap {
        return Err(err(
            pos + 21,
            CorruptionKind::LengthOutOfRange {
                len: i64::try_from(total).unwrap_or(i64::MAX),
                max: cap as u64,
            },
        ));
    }
    let payload = &covered[BLOCK_HEADER_LEN..];
    let start = out.len();
    match method {
        METHOD_NONE => {
            if payload.len() != want {
                return Err(err(
                    pos + 21,
                    CorruptionKind::inconsistent(format!(
                        "NONE block holds {} bytes but says {want}",
                        payload.len()
                    )),
                ));
            }
            out.extend_from_slice(payload);
        }
        METHOD_LZ4 => {
            // An LZ4 block expands at most ~255x (a match length grows by 255 per
            // extra byte): refuse a size the payload cannot produce before
            // allocating for it.
            if want > payload.len().saturating_mul(256).saturating_add(16) {
                return Err(err(
                    pos + 21,
                    CorruptionKind::LengthOutOfRange {
                        len: want as i64,
                        max: payload.len().saturating_mul(256) as u64 + 16,
                    },
                ));
            }
            out.resize(start + want, 0);
            match lz4_flex::block::decompress_into(payload, &mut out[start..]) {
                Ok(n) if n == want => {}
                Ok(n) => {
                    return Err(err(
                        pos + CHECKSUM_LEN + BLOCK_HEADER_LEN,
                        CorruptionKind::Decompression(format!(
                            "LZ4 block gave {n} bytes, header says {want}"
                        )),
                    ))
                }
                Err(e) => {
                    return Err(err(
                        pos + CHECKSUM_LEN + BLOCK_HEADER_LEN,
                        CorruptionKind::Decompression(format!("LZ4 block: {e}")),
                    ))
                }
            }
        }
        METHOD_ZSTD => {
            let mut d = zstd::stream::read::Decoder::with_buffer(payload)
                .map_err(|e| err(pos, CorruptionKind::Decompression(format!("ZSTD block: {e}"))))?;
            let mut tmp = Vec::with_capacity(want.min(payload.len().saturating_mul(64)));
            let r = (&mut d).take(want as u64 + 1).read_to_end(&mut tmp);
            match r {
                Ok(n) if n == want => out.extend_from_slice(&tmp),
                Ok(n) => {
                    return Err(err(
                        pos + CHECKSUM_LEN + BLOCK_HEADER_LEN,
                        CorruptionKind::Decompression(format!(
                            "ZSTD block gave {n} bytes, header says {want}"
                        )),
                    ))
                }
                Err(e) => {
                    return Err(err(
                        pos + CHECKSUM_LEN + BLOCK_HEADER_LEN,
                        CorruptionKind::Decompression(format!("ZSTD block: {e}")),
                    ))
                }
            }
        }
        other => {
            return Err(err(
                pos + 16,
                // Keeper snapshots use LZ4 0x82, ZSTD 0x90 and NONE 0x02.
                CorruptionKind::UnknownValue {
                    field: "compression method",
                    found: u64::from(other),
                },
            ));
        }
    }
    Ok(BlockInfo { offset: pos as u64, method, compressed_len: csize, uncompressed_len: usize_ })
}

/// Encodes `data` as ClickHouse compressed blocks of `block_input_len` input bytes
/// each (the last may be shorter; empty input gives no block, as
/// `clickhouse-compressor` does). Method NONE and the checksum reproduce ClickHouse's
/// bytes exactly; LZ4 and ZSTD payloads are valid for ClickHouse's decoders but need
/// not equal liblz4's / ClickHouse's own choices.
///
/// # Panics
/// When `block_input_len` is 0 or above 1 GiB, or `method` is not one of the three.
pub fn encode_blocks(data: &[u8], method: u8, block_input_len: usize) -> Vec<u8> {
    assert!(block_input_len > 0 && block_input_len <= BLOCK_COMPRESSED_LEN_MAX as usize / 2);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    for chunk in data.chunks(block_input_len) {
        let payload = match method {
            METHOD_NONE => chunk.to_vec(),
            METHOD_LZ4 => lz4_flex::block::compress(chunk),
            METHOD_ZSTD => zstd::bulk::compress(chunk, BLOCK_ZSTD_LEVEL)
                .expect("in-memory zstd compression of a bounded chunk"),
            other => panic!("unsupported block method {other:#04x}"),
        };
        let csize = u32::try_from(payload.len() + BLOCK_HEADER_LEN).expect("block under 1 GiB");
        let usize_ = u32::try_from(chunk.len()).expect("chunk under 1 GiB");
        let mut covered = Vec::with_capacity(payload.len() + BLOCK_HEADER_LEN);
        covered.push(method);
        covered.extend_from_slice(&csize.to_le_bytes());
        covered.extend_from_slice(&usize_.to_le_bytes());
        covered.extend_from_slice(&payload);
        out.extend_from_slice(&block_checksum(&covered));
        out.extend_from_slice(&covered);
    }
    out
}

/// Decompresses a zstd snapshot file (concatenated frames accepted, as ClickHouse's
/// reader does), bounded by `cap`.
pub fn decode_zstd(file: &[u8], cap: usize) -> Result<Vec<u8>, ContainerError> {
    let mut d = zstd::stream::read::Decoder::with_buffer(file)
        .map_err(|e| err(0, CorruptionKind::Decompression(e.to_string())))?;
    let mut out = Vec::new();
    let n = (&mut d).take(cap as u64 + 1).read_to_end(&mut out).map_err(|e| {
        err(0, CorruptionKind::Decompression(format!("{e} (after {} bytes)", out.len())))
    })?;
    if n > cap {
        return Err(err(0, CorruptionKind::LengthOutOfRange { len: n as i64, max: cap as u64 }));
    }
    Ok(out)
}

/// Compresses a snapshot body the way Keeper does: one zstd frame, level 3, content
/// checksum, flushed after every 1 MiB of input, then ended.
pub fn encode_zstd(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = Encoder::new(ZSTD_LEVEL)?;
    enc.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    let mut scratch = vec![0u8; 1 << 17];
    let drain = |enc: &mut Encoder<'static>,
                 out: &mut Vec<u8>,
                 scratch: &mut [u8],
                 end: bool|
     -> std::io::Result<()> {
        loop {
            let mut ob = OutBuffer::around(scratch);
            let left = if end { enc.finish(&mut ob, true)? } else { enc.flush(&mut ob)? };
            let n = ob.pos();
            out.extend_from_slice(&scratch[..n]);
            if left == 0 {
                return Ok(());
            }
        }
    };
    for chunk in data.chunks(BLOCK_INPUT_LEN) {
        let mut ib = InBuffer::around(chunk);
        while ib.pos() < chunk.len() {
            let mut ob = OutBuffer::around(&mut scratch[..]);
            enc.run(&mut ib, &mut ob)?;
            let n = ob.pos();
            out.extend_from_slice(&scratch[..n]);
        }
        drain(&mut enc, &mut out, &mut scratch, false)?;
    }
    drain(&mut enc, &mut out, &mut scratch, true)?;
    Ok(out)
}

/// Worker threads of [`encode_zstd_parallel`]'s multithreaded zstd.
pub const ZSTD_WORKERS_MAX: u32 = 8;

/// Compresses a snapshot body into one zstd frame (level 3, content checksum) with
/// zstd's multithreaded mode: the body is cut into jobs compressed by up to
/// [`ZSTD_WORKERS_MAX`] threads (at least one worker thread, so the output is the same
/// whatever the machine: zstd's multithreaded output depends on the parameters, not on
/// the number of workers). Keeper reads it like its own single-threaded frames; only
/// the block boundaries differ (Keeper flushes after every 1 MiB, see [`encode_zstd`]).
pub fn encode_zstd_parallel(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        .clamp(1, ZSTD_WORKERS_MAX);
    encode_zstd_workers(data, workers)
}

/// [`encode_zstd_parallel`] with a given number of worker threads (≥ 1).
pub fn encode_zstd_workers(data: &[u8], workers: u32) -> std::io::Result<Vec<u8>> {
    let mut enc = Encoder::new(ZSTD_LEVEL)?;
    enc.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    enc.set_parameter(zstd::zstd_safe::CParameter::NbWorkers(workers.max(1)))?;
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    let mut scratch = vec![0u8; 1 << 17];
    let mut ib = InBuffer::around(data);
    while ib.pos() < data.len() {
        let mut ob = OutBuffer::around(&mut scratch[..]);
        enc.run(&mut ib, &mut ob)?;
        let n = ob.pos();
        out.extend_from_slice(&scratch[..n]);
    }
    loop {
        let mut ob = OutBuffer::around(&mut scratch[..]);
        let left = enc.finish(&mut ob, true)?;
        let n = ob.pos();
        out.extend_from_slice(&scratch[..n]);
        if left == 0 {
            return Ok(out);
        }
    }
}

/// Decompresses a snapshot file, choosing the container as Keeper does
/// (`isZstdCompressed`: the zstd magic first, else compressed blocks).
pub fn decode(file: &[u8], cap: usize) -> Result<(Vec<u8>, Container), ContainerError> {
    if file.starts_with(&ZSTD_MAGIC) {
        return decode_zstd(file, cap).map(|b| (b, Container::Zstd));
    }
    let mut out = Vec::new();
    let blocks = decode_blocks(file, &mut out, cap)?;
    let method = blocks.first().map_or(METHOD_NONE, |b| b.method);
    Ok((out, Container::Blocks(method)))
}

/// Compresses a body into a container.
pub fn encode(body: &[u8], container: Container) -> std::io::Result<Vec<u8>> {
    match container {
        Container::Zstd => encode_zstd_parallel(body),
        Container::Blocks(m) => {
            if ![METHOD_NONE, METHOD_LZ4, METHOD_ZSTD].contains(&m) {
                return Err(std::io::Error::other(format!("unsupported block method {m:#04x}")));
            }
            Ok(encode_blocks(body, m, BLOCK_INPUT_LEN))
        }
    }
}

/// A container error carried through `io::Read`.
#[derive(Debug)]
struct Carried(ContainerError);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.0.offset, self.0.kind)
    }
}

impl std::error::Error for Carried {}

fn carry(e: ContainerError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, Carried(e))
}

/// The container error a body reader failed with: a carried one as it is, else (the
/// zstd decoder's own) a decompression error after `produced` bytes.
pub fn reader_error(e: std::io::Error, produced: u64) -> ContainerError {
    if e.get_ref().is_some_and(|i| i.is::<Carried>()) {
        if let Some(Ok(c)) = e.into_inner().map(|b| b.downcast::<Carried>()) {
            return c.0;
        }
        return err(0, CorruptionKind::Decompression("lost error".into()));
    }
    err(0, CorruptionKind::Decompression(format!("{e} (after {produced} bytes)")))
}

/// The decompressed body of a snapshot file as a reader that decompresses only what
/// is asked for (block by block, or the zstd stream), bounded by `cap` bytes, and the
/// container. Errors come back through [`reader_error`].
pub fn body_reader(file: &[u8], cap: usize) -> (Box<dyn Read + '_>, Container) {
    if file.starts_with(&ZSTD_MAGIC) {
        let inner: Box<dyn Read + '_> = match zstd::stream::read::Decoder::with_buffer(file) {
            Ok(d) => Box::new(d),
            Err(e) => Box::new(Failing(Some(e))),
        };
        return (Box::new(Capped { inner, produced: 0, cap }), Container::Zstd);
    }
    let method = file.get(CHECKSUM_LEN).copied().unwrap_or(METHOD_NONE);
    let r = BlocksReader {
        file,
        pos: 0,
        first_method: None,
        out: Vec::new(),
        out_pos: 0,
        produced: 0,
        cap,
    };
    (Box::new(r), Container::Blocks(method))
}

/// A reader that fails once with the error it holds.
struct Failing(Option<std::io::Error>);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

/// A reader that refuses to produce more than `cap` bytes.
struct Capped<'a> {
    inner: Box<dyn Read + 'a>,
    produced: usize,
    cap: usize,
}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced = self.produced.saturating_add(n);
        if self.produced > self.cap {
            return Err(carry(err(
                0,
                CorruptionKind::LengthOutOfRange {
                    len: i64::try_from(self.produced).unwrap_or(i64::MAX),
                    max: self.cap as u64,
                },
            )));
        }
        Ok(n)
    }
}

/// ClickHouse compressed blocks, decoded one block at a time.
struct BlocksReader<'a> {
    file: &'a [u8],
    pos: usize,
    first_method: Option<u8>,
    out: Vec<u8>,
    out_pos: usize,
    produced: usize,
    cap: usize,
}

impl Read for BlocksReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.out_pos == self.out.len() {
            if self.pos >= self.file.len() {
                return Ok(0);
            }
            self.out.clear();
            self.out_pos = 0;
            let info = decode_block(
                self.file,
                self.pos,
                &mut self.first_method,
                &mut self.out,
                self.produced,
                self.cap,
            )
            .map_err(carry)?;
            self.pos += CHECKSUM_LEN + info.compressed_len as usize;
            self.produced += self.out.len();
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}
