//! Writing changelogs the way current Keeper does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_vfs::{File, FileSystem, OpenMode};

use super::zstd_stream::{FrameWriter, FRAME_TERMINATOR};
use super::{ChangelogFile, ChangelogName, ChangelogRecord, ROTATE_INTERVAL_DEFAULT};
use crate::error::WalError;

/// How [`ChangelogWriter`] lays out files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Entries per file (`rotate_log_storage_interval`): a file started at index `s` is
    /// named `changelog_<s>_<s + interval - 1>` and left when it is full. Must be ≥ 1.
    pub rotate_interval: u64,
    /// Write `.bin.zstd` files (`compress_logs`).
    pub compress: bool,
    /// fsync each file when it is finished (Keeper's `force_sync`).
    pub sync: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { rotate_interval: ROTATE_INTERVAL_DEFAULT, compress: false, sync: true }
    }
}

struct Active {
    path: PathBuf,
    file: Arc<dyn File>,
    name: ChangelogName,
    len: u64,
    frame: Option<FrameWriter>,
}

/// Appends records to a Keeper log directory.
///
/// Layout choices, all Keeper's (docs/formats/clickhouse.md, "Changelog records"): rotation only by the entry
/// interval (files are never renamed: a file left full keeps its name, the last file
/// keeps its full-range name even when short, and Keeper continues writing into it on
/// start); record version 1; for `.zstd` files one frame per writer session, a
/// `ZSTD_e_flush` after every record and `01 00 00` when the file is finished. Size
/// based rotation (`max_log_file_size`) is not done: callers keep files small by the
/// interval.
pub struct ChangelogWriter<'a> {
    fs: &'a dyn FileSystem,
    dir: PathBuf,
    opts: WriterOptions,
    active: Option<Active>,
    written: Vec<PathBuf>,
    last_index: Option<u64>,
}

impl std::fmt::Debug for ChangelogWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogWriter")
            .field("dir", &self.dir)
            .field("opts", &self.opts)
            .field("written", &self.written)
            .field("last_index", &self.last_index)
            .finish()
    }
}

/// A call the writer cannot serve (a name that is not a changelog's, no active file).
fn invalid(path: &Path, msg: String) -> WalError {
    WalError::InvalidArgument(format!("{}: {msg}", path.display()))
}

impl<'a> ChangelogWriter<'a> {
    /// A writer creating files in `dir` (which must exist).
    ///
    /// # Panics
    /// When `opts.rotate_interval` is 0 (Keeper refuses that setting too).
    pub fn new(fs: &'a dyn FileSystem, dir: &Path, opts: WriterOptions) -> ChangelogWriter<'a> {
        assert!(opts.rotate_interval > 0, "rotate_interval must be at least 1");
        ChangelogWriter {
            fs,
            dir: dir.to_path_buf(),
            opts,
            active: None,
            written: Vec::new(),
            last_index: None,
        }
    }

    /// Continues an existing file the way Keeper reopens its last clean, not yet full
    /// file: plain files are appended to; for `.zstd` files, when the file does not
    /// end with `01 00 00` (its last frame was not finished), those 3 bytes are written
    /// first, then a new frame starts. A `.zstd` file of 1–3 bytes is refused, as
    /// Keeper does ("Trying to write to non-empty file with tiny size").
    ///
    /// The caller must have read the file cleanly ([`super::read_file`] without
    /// `broken`); `last_index` is its last record's index.
    pub fn continue_file(
        fs: &'a dyn FileSystem,
        path: &Path,
        last_index: u64,
        opts: WriterOptions,
    ) -> Result<ChangelogWriter<'a>, WalError> {
        let fname = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let name = ChangelogName::parse(fname)
            .ok_or_else(|| invalid(path, format!("not a changelog file name: {fname:?}")))?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let file = fs.open(path, OpenMode::ReadWrite).map_err(|e| WalError::io(path, e))?;
        let mut len = file.len().map_err(|e| WalError::io(path, e))?;
        let compressed = name.is_compressed();
        if compressed && (1..=3).contains(&len) {
            // Too short to hold a frame magic: nothing to continue.
            return Err(WalError::Corrupt(Corruption::new(
                path,
                0,
                CorruptionKind::Truncated { needed: 4, available: len },
            )));
        }
        if compressed && len > 3 {
            let mut tail = [0u8; 3];
            file.read_exact_at(&mut tail, len - 3).map_err(|e| WalError::io(path, e))?;
            if tail != FRAME_TERMINATOR {
                file.write_all_at(&FRAME_TERMINATOR, len).map_err(|e| WalError::io(path, e))?;
                len += 3;
            }
        }
        let frame = if compressed {
            Some(FrameWriter::new().map_err(|e| WalError::io(path, e))?)
        } else {
            None
        };
        let mut opts = opts;
        opts.compress = compressed;
        Ok(ChangelogWriter {
            fs,
            dir,
            opts,
            active: Some(Active { path: path.to_path_buf(), file, name, len, frame }),
            written: vec![path.to_path_buf()],
            last_index: Some(last_index),
        })
    }

    /// Appends one record, rotating first when the record falls past the active file's
    /// range (`record.index − from ≥ to − from + 1`, Keeper's rule for consecutive
    /// indexes) or before it. Callers write consecutive indexes, as Keeper does.
    pub fn append(&mut self, record: &ChangelogRecord) -> Result<(), WalError> {
        let rotate = match &self.active {
            None => true,
            Some(a) => {
                record.index < a.name.from || record.index - a.name.from >= a.name.range_len()
            }
        };
        if rotate {
            self.finish_active()?;
            self.start_file(record.index)?;
        }
        let Some(a) = self.active.as_mut() else {
            return Err(invalid(&self.dir, "no active changelog file".into()));
        };
        let mut plain = Vec::with_capacity(record.encoded_len());
        record.encode_into(&mut plain);
        let bytes = match a.frame.as_mut() {
            None => plain,
            Some(fw) => {
                let mut out = Vec::new();
                fw.push_flushed(&plain, &mut out).map_err(|e| WalError::io(&a.path, e))?;
                out
            }
        };
        a.file.write_all_at(&bytes, a.len).map_err(|e| WalError::io(&a.path, e))?;
        a.len += bytes.len() as u64;
        self.last_index = Some(record.index);
        Ok(())
    }

    fn start_file(&mut self, from: u64) -> Result<(), WalError> {
        let to = from.saturating_add(self.opts.rotate_interval - 1);
        let name = ChangelogName::new(from, to, self.opts.compress);
        let path = self.dir.join(name.file_name());
        // Keeper reopens an existing file with the same start in rewrite mode.
        let file =
            self.fs.open(&path, OpenMode::CreateTruncate).map_err(|e| WalError::io(&path, e))?;
        let frame = if self.opts.compress {
            Some(FrameWriter::new().map_err(|e| WalError::io(&path, e))?)
        } else {
            None
        };
        self.written.push(path.clone());
        self.active = Some(Active { path, file, name, len: 0, frame });
        Ok(())
    }

    fn finish_active(&mut self) -> Result<(), WalError> {
        let Some(a) = self.active.take() else { return Ok(()) };
        if let Some(fw) = a.frame {
            let mut out = Vec::new();
            fw.finish(&mut out).map_err(|e| WalError::io(&a.path, e))?;
            a.file.write_all_at(&out, a.len).map_err(|e| WalError::io(&a.path, e))?;
        }
        if self.opts.sync {
            a.file.sync_data().map_err(|e| WalError::io(&a.path, e))?;
        }
        Ok(())
    }

    /// Finishes the active file (ends its zstd frame, syncs if asked) and returns the
    /// files written or continued, in order. The directory is synced when `sync` is
    /// set (Keeper does not, issue #116316; we do).
    pub fn finish(mut self) -> Result<Vec<PathBuf>, WalError> {
        self.finish_active()?;
        if self.opts.sync {
            self.fs.sync_dir(&self.dir).map_err(|e| WalError::io(&self.dir, e))?;
        }
        Ok(std::mem::take(&mut self.written))
    }

    /// Makes everything appended so far durable (`fdatasync` of the active file, as
    /// Keeper's flush with `force_sync`). The zstd frame stays open: every record was
    /// already flushed into it.
    pub fn sync(&self) -> Result<(), WalError> {
        match &self.active {
            Some(a) => a.file.sync_data().map_err(|e| WalError::io(&a.path, e)),
            None => Ok(()),
        }
    }

    /// Index of the last record appended.
    pub fn last_index(&self) -> Option<u64> {
        self.last_index
    }
}

/// Re-encodes a file read with [`super::read_file`] with the same framing: plain files
/// as the concatenation of their records; `.zstd` files frame by frame (a record
/// belongs to the frame whose blocks produced it), each record flushed, each frame that
/// was terminated ended with `01 00 00`, an unterminated last frame left open.
///
/// For every file this crate wrote, the result equals the file's bytes. A file written
/// by Keeper re-encodes to the same records and frame structure; its compressed bytes
/// are equal when Keeper's libzstd made the same choices as ours (zstd output is not
/// specified across library versions). Bytes after a broken point are not kept.
pub fn encode_like(file: &ChangelogFile) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let Some(z) = &file.zstd else {
        for r in &file.records {
            r.record.encode_into(&mut out);
        }
        return Ok(out);
    };
    // Stream offset where each frame's output ends.
    let frame_ends: Vec<u64> =
        z.block_ends.iter().filter(|b| b.frame_end).map(|b| b.stream_offset).collect();
    let mut records = file.records.iter().peekable();
    for (i, frame) in z.frames.iter().enumerate() {
        let end = frame_ends.get(i).copied();
        let mut fw = FrameWriter::new()?;
        while let Some(r) = records.peek() {
            if end.is_some_and(|e| r.offset >= e) {
                break;
            }
            let mut plain = Vec::with_capacity(r.record.encoded_len());
            r.record.encode_into(&mut plain);
            fw.push_flushed(&plain, &mut out)?;
            records.next();
        }
        if frame.terminated {
            if fw.is_started() {
                fw.finish(&mut out)?;
            } else {
                // A frame with no data that still ended: Keeper never writes one; keep
                // the structure with a minimal frame.
                let mut fw = FrameWriter::new()?;
                fw.push_flushed(&[], &mut out)?;
                fw.finish(&mut out)?;
            }
        }
    }
    Ok(out)
}
