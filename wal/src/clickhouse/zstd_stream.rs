//! Reading and writing the zstd stream of a `.bin.zstd` changelog the way Keeper does.
//!
//! Keeper's writer (`ZstdDeflatingAppendableWriteBuffer`, level 3, no content checksum,
//! no content size) starts one frame per writer session, pushes each record with
//! `ZSTD_e_flush` (a block boundary after every record) and, on finalize, issues
//! `ZSTD_e_end` with no input, which emits only an empty last raw block `01 00 00`.
//! After a crash the last frame is left unterminated; when Keeper reopens such a file
//! it first appends `01 00 00` (if the file does not already end with those bytes),
//! then starts a new frame.
//!
//! Keeper's reader is a plain streaming decoder over the concatenated frames that
//! returns whatever it has at end of input, so a torn tail shows up as a short record.
//! Here the stream is additionally walked block by block (zstd format, RFC 8878, section 3.1)
//! so that every block end is known as a pair (compressed offset, decompressed
//! offset): that is what a repair needs to cut a torn tail at a record boundary and to
//! know whether an unterminated frame can simply be terminated.

use std::io;

use keeperkit_model::le::Cursor;
use zstd::stream::raw::{Decoder, Encoder, InBuffer, Operation, OutBuffer};

/// The zstd frame magic, little-endian on disk: `28 B5 2F FD`.
pub const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// The empty last raw block Keeper writes to end a frame (`ZSTD_e_end` with no input,
/// `ZSTD_CORRECT_TERMINATION_LAST_BLOCK` in `ZstdDeflatingAppendableWriteBuffer.h`).
pub const FRAME_TERMINATOR: [u8; 3] = [0x01, 0x00, 0x00];

/// The compression level Keeper uses for changelogs.
pub const ZSTD_LEVEL: i32 = 3;

/// One zstd frame of a changelog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZstdFrame {
    /// File offset of the frame's magic.
    pub offset: u64,
    /// File offset just past the last complete block (and checksum) of the frame.
    pub end: u64,
    /// Whether the frame's last block was seen (a cleanly finalized frame).
    pub terminated: bool,
    /// Whether the frame's last block is the empty raw block `01 00 00`, as Keeper
    /// writes it.
    pub ends_with_empty_block: bool,
}

/// A point where the compressed and the decompressed stream are both at a block end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockEnd {
    /// File offset just past the block.
    pub file_offset: u64,
    /// Decompressed bytes produced up to and including this block.
    pub stream_offset: u64,
    /// Whether this block ended its frame.
    pub frame_end: bool,
}

/// Why decoding stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZstdStop {
    /// File offset where the problem is.
    pub file_offset: u64,
    /// What is wrong.
    pub message: String,
    /// Whether the problem is only that the file ends inside a frame header or block
    /// (a torn write). Keeper's decoder returns what it has at end of input without
    /// an error in that case.
    pub at_eof: bool,
}

/// The decoded stream of a `.bin.zstd` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZstdDecoded {
    /// The decompressed bytes (Keeper's view of the file), up to where the caller of
    /// [`decode_while`] stopped keeping them.
    pub stream: Vec<u8>,
    /// Length of the whole decompressed stream (`stream.len()` unless bytes were
    /// discarded).
    pub stream_len: u64,
    /// The frames, in file order.
    pub frames: Vec<ZstdFrame>,
    /// Every block end, in order.
    pub block_ends: Vec<BlockEnd>,
    /// Set when decoding stopped early: a bad frame header or block, a decoder error,
    /// a block cut by the end of the file, or the stream cap. Bytes after this point
    /// are not decoded (Keeper would also see nothing more there).
    pub stop: Option<ZstdStop>,
}

/// A decoder fed block by block.
struct Feeder {
    dec: Decoder<'static>,
    scratch: Vec<u8>,
    /// Whether output is still kept (else only counted).
    keep: bool,
}

impl Feeder {
    fn feed(&mut self, input: &[u8], out: &mut ZstdDecoded, cap: usize) -> Result<(), String> {
        let mut inb = InBuffer::around(input);
        loop {
            let mut outb = OutBuffer::around(&mut self.scratch[..]);
            self.dec.run(&mut inb, &mut outb).map_err(|e| e.to_string())?;
            let n = outb.pos();
            let total = out.stream_len.saturating_add(n as u64);
            if total > cap as u64 {
                return Err(format!("decompressed stream exceeds the cap of {cap} bytes"));
            }
            out.stream_len = total;
            if self.keep {
                out.stream.extend_from_slice(&self.scratch[..n]);
            }
            if inb.pos() == input.len() && n < self.scratch.len() {
                return Ok(());
            }
        }
    }
}

/// Decodes a whole `.bin.zstd` file: concatenated frames, skippable frames skipped,
/// the last frame possibly unterminated. Never fails: problems end decoding and are
/// reported in [`ZstdDecoded::stop`]. The decompressed stream is bounded by
/// `stream_len_max`.
pub fn decode(file: &[u8], stream_len_max: usize) -> io::Result<ZstdDecoded> {
    decode_while(file, stream_len_max, &mut |_| true)
}

/// [`decode`], but after each block `keep` sees the stream so far; once it returns
/// `false` the rest is still walked (frames and block ends stay exact) but its bytes
/// are only counted, not kept: memory follows what the caller found worth keeping (a
/// decompression bomb costs a scan, not its size).
pub fn decode_while(
    file: &[u8],
    stream_len_max: usize,
    keep: &mut dyn FnMut(&[u8]) -> bool,
) -> io::Result<ZstdDecoded> {
    let mut out = ZstdDecoded::default();
    let mut feeder = Feeder { dec: Decoder::new()?, scratch: vec![0u8; 1 << 17], keep: true };
    // The walk over the compressed bytes: the workspace's bounded cursor.
    let mut w = Cursor::new(file);
    while !w.is_empty() {
        let start = w.pos();
        let stop = |at: usize, msg: String| ZstdStop {
            file_offset: at as u64,
            at_eof: msg.contains("cut by the end of the file"),
            message: msg,
        };
        let Ok(magic) = w.u32() else {
            out.stop = Some(stop(start, "zstd frame magic cut by the end of the file".into()));
            break;
        };
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            // Skippable frame: 4-byte size, then that many bytes.
            match w.u32().and_then(|n| w.skip(n as usize)) {
                Ok(()) => continue,
                Err(_) => {
                    out.stop =
                        Some(stop(start, "skippable frame cut by the end of the file".into()));
                    break;
                }
            }
        }
        if magic != ZSTD_MAGIC {
            out.stop = Some(stop(start, format!("not a zstd frame magic: {magic:#010x}")));
            break;
        }
        let header_len = match frame_header_len(w.rest()) {
            Ok(n) => n,
            Err(msg) => {
                out.stop = Some(stop(start, msg));
                break;
            }
        };
        let checksum = file.get(start + 4).is_some_and(|fhd| fhd & 0x04 != 0);
        let Ok(()) = w.skip(header_len) else {
            out.stop = Some(stop(start, "zstd frame header cut by the end of the file".into()));
            break;
        };
        if let Err(e) = feeder.feed(&file[start..w.pos()], &mut out, stream_len_max) {
            out.stop = Some(stop(start, format!("zstd frame header rejected: {e}")));
            break;
        }
        let mut frame = ZstdFrame {
            offset: start as u64,
            end: w.pos() as u64,
            terminated: false,
            ends_with_empty_block: false,
        };
        let mut stopped = false;
        while !w.is_empty() {
            let block_at = w.pos();
            let Ok(h) = w.take(3) else {
                out.stop =
                    Some(stop(block_at, "zstd block header cut by the end of the file".into()));
                stopped = true;
                break;
            };
            let h = u32::from(h[0]) | (u32::from(h[1]) << 8) | (u32::from(h[2]) << 16);
            let last = h & 1 != 0;
            let size = (h >> 3) as usize;
            let content = match (h >> 1) & 3 {
                0 | 2 => size,
                1 => 1,
                _ => {
                    out.stop = Some(stop(block_at, "reserved zstd block type".into()));
                    stopped = true;
                    break;
                }
            };
            let tail = if last && checksum { 4 } else { 0 };
            if w.skip(content + tail).is_err() {
                out.stop = Some(stop(block_at, "zstd block cut by the end of the file".into()));
                stopped = true;
                break;
            }
            if let Err(e) = feeder.feed(&file[block_at..w.pos()], &mut out, stream_len_max) {
                out.stop = Some(stop(block_at, format!("zstd block rejected: {e}")));
                stopped = true;
                break;
            }
            frame.end = w.pos() as u64;
            out.block_ends.push(BlockEnd {
                file_offset: w.pos() as u64,
                stream_offset: out.stream_len,
                frame_end: last,
            });
            if feeder.keep && !keep(&out.stream) {
                feeder.keep = false;
            }
            if last {
                frame.terminated = true;
                frame.ends_with_empty_block = h == 1 && tail == 0;
                break;
            }
        }
        out.frames.push(frame);
        if stopped {
            break;
        }
        if !out.frames.last().is_some_and(|f| f.terminated) {
            // An unterminated frame can only be the last thing in the file.
            break;
        }
    }
    Ok(out)
}

/// Length of the frame header after the magic (descriptor, window, dictionary id,
/// content size), from the bytes that follow the magic.
fn frame_header_len(rest: &[u8]) -> Result<usize, String> {
    let Some(&fhd) = rest.first() else {
        return Err("zstd frame header cut by the end of the file".into());
    };
    if fhd & 0x08 != 0 {
        return Err("zstd frame header has its reserved bit set".into());
    }
    let single_segment = fhd & 0x20 != 0;
    let fcs = match fhd >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let did = [0, 1, 2, 4][usize::from(fhd & 3)];
    Ok(1 + usize::from(!single_segment) + did + fcs)
}

/// Compresses records the way Keeper's appendable zstd writer does: one frame per
/// writer session, a flush after every record, `01 00 00` at finalize.
pub struct FrameWriter {
    enc: Encoder<'static>,
    scratch: Vec<u8>,
    started: bool,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter").field("started", &self.started).finish()
    }
}

impl FrameWriter {
    /// A writer for a new frame at [`ZSTD_LEVEL`].
    pub fn new() -> io::Result<FrameWriter> {
        Ok(FrameWriter {
            enc: Encoder::new(ZSTD_LEVEL)?,
            scratch: vec![0u8; 1 << 17],
            started: false,
        })
    }

    /// Compresses `data` and flushes it (`ZSTD_e_flush`), appending the output to `out`.
    pub fn push_flushed(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.started = true;
        let mut inb = InBuffer::around(data);
        while inb.pos() < data.len() {
            let mut outb = OutBuffer::around(&mut self.scratch[..]);
            self.enc.run(&mut inb, &mut outb)?;
            let n = outb.pos();
            out.extend_from_slice(&self.scratch[..n]);
        }
        loop {
            let mut outb = OutBuffer::around(&mut self.scratch[..]);
            let left = self.enc.flush(&mut outb)?;
            let n = outb.pos();
            out.extend_from_slice(&self.scratch[..n]);
            if left == 0 {
                return Ok(());
            }
        }
    }

    /// Whether any data went into this frame.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Ends the frame (`ZSTD_e_end`): after a flush this is exactly
    /// [`FRAME_TERMINATOR`]. Nothing is written for a frame that never got data.
    pub fn finish(mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if !self.started {
            return Ok(());
        }
        loop {
            let mut outb = OutBuffer::around(&mut self.scratch[..]);
            let left = self.enc.finish(&mut outb, true)?;
            let n = outb.pos();
            out.extend_from_slice(&self.scratch[..n]);
            if left == 0 {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_terminate_with_the_empty_block_and_decode_when_cut() {
        let mut file = Vec::new();
        let mut w = FrameWriter::new().expect("encoder");
        w.push_flushed(b"first record", &mut file).expect("push");
        let after_first = file.len();
        w.push_flushed(&[7u8; 300_000], &mut file).expect("push");
        w.finish(&mut file).expect("finish");
        assert_eq!(&file[file.len() - 3..], &FRAME_TERMINATOR);
        let d = decode(&file, 1 << 30).expect("decoder");
        assert_eq!(d.stop, None);
        assert_eq!(d.stream.len(), 12 + 300_000);
        assert_eq!(d.frames.len(), 1);
        assert!(d.frames[0].terminated && d.frames[0].ends_with_empty_block);
        assert!(d
            .block_ends
            .iter()
            .any(|b| b.file_offset == after_first as u64 && b.stream_offset == 12));
        // Unterminated: drop the terminator.
        let d = decode(&file[..file.len() - 3], 1 << 30).expect("decoder");
        assert_eq!(d.stop, None);
        assert!(!d.frames[0].terminated);
        assert_eq!(d.stream.len(), 12 + 300_000);
        // Cut inside a block: the first record survives.
        let d = decode(&file[..after_first + 2], 1 << 30).expect("decoder");
        assert!(d.stop.is_some());
        assert!(d.stop.as_ref().is_some_and(|s| s.at_eof));
        assert!(d.stream == b"first record");
        // Cap.
        let d = decode(&file, 100).expect("decoder");
        assert!(d.stop.is_some());
    }
}
