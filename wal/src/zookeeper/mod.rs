//! Apache ZooKeeper 3.x transaction logs (`log.<hex zxid>`).
//!
//! A log file is a 16-byte `FileHeader` (magic `ZKLG`, version 2, dbid 0) followed by
//! records, each framed as
//!
//! ```text
//! long    checksum   Adler-32 of the payload (upper 32 bits zero)
//! int     length     payload length N (> 0)
//! byte[N] payload    TxnHeader + body + optional TxnDigest (see keeperkit_model::Txn)
//! byte    0x42       end-of-record marker
//! ```
//!
//! ZooKeeper preallocates log files in steps of 64 MiB of zeros, so a file normally
//! ends with a zero length field rather than at physical end of file.
//!
//! [`LogReader`] reads a file exactly as ZooKeeper 3.8's `FileTxnIterator.next` and
//! `Util.readTxnBytes` do:
//!
//! - end of file inside the 12 bytes of checksum and length: the file ends
//!   ([`LogEnd::Eof`] when no byte of them is there, else [`LogEnd::Torn`]);
//! - a length of 0: the file ends ([`LogEnd::ZeroLength`], the preallocated tail);
//! - a negative length or one above [`limits::JUTE_READ_LEN_MAX`]: corruption (ZooKeeper
//!   throws "Unreasonable length");
//! - fewer than `N + 1` bytes left: the file ends, torn ([`TornReason::TruncatedPayload`]);
//! - a marker other than 0x42: the file ends, torn ([`TornReason::BadMarker`]; ZooKeeper
//!   logs "Last transaction was partial");
//! - an Adler-32 mismatch: corruption (ZooKeeper refuses to start, "CRC check failed");
//! - a payload that does not decode: corruption.
//!
//! The reader streams the file through a buffered [`FileReader`]; it never holds more
//! than one record in memory, and it checks a record's length against the bytes the
//! file really has before allocating for it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_model::{limits, Corruption, CorruptionKind, Txn, TxnHeader, Zxid};
use keeperkit_vfs::{File, FileReader, FileSystem, OpenMode};

use crate::error::WalError;

/// Magic number of a txn log file header: ASCII `ZKLG` (`FileTxnLog.TXNLOG_MAGIC`).
pub const TXNLOG_MAGIC: i32 = 0x5A4B_4C47;

/// The file format version ZooKeeper writes (`FileTxnLog.VERSION`). ZooKeeper's reader
/// does not check it, and neither does [`LogReader`]; it is reported in the header.
pub const TXNLOG_VERSION: i32 = 2;

/// The byte that ends every record (`'B'`).
pub const END_OF_RECORD: u8 = 0x42;

/// Length of the file header in bytes: magic, version, dbid.
pub const FILE_HEADER_LEN: u64 = 16;

/// Length of a record's frame header in bytes: checksum (long) and length (int).
pub const RECORD_HEADER_LEN: u64 = 12;

/// Prefix of txn log file names.
pub const LOG_FILE_PREFIX: &str = "log";

/// Largest payload length accepted, as a `u64` (see [`limits::JUTE_READ_LEN_MAX`]).
const PAYLOAD_LEN_MAX: u64 = limits::JUTE_READ_LEN_MAX as u64;

/// Splits a file name on `.` the way Java's `String.split("\\.")` does: trailing empty
/// parts are dropped.
fn java_split_dot(name: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = name.split('.').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts
}

/// Parses a hex number the way Java's `Long.parseLong(s, 16)` does (optional sign,
/// signed 64-bit range); negative results count as unparsable, as ZooKeeper ignores them.
fn parse_java_hex_zxid(s: &str) -> Option<Zxid> {
    let v = i64::from_str_radix(s, 16).ok()?;
    (v >= 0).then_some(Zxid(v))
}

/// The zxid in a txn log file name (`"log.1cb"` → `0x1cb`), by ZooKeeper's rules
/// (`Util.getZxidFromName`): split on `.`, the first part must be `log`, the second is
/// a hex `long`. Anything else (and a negative number) is `None`.
///
/// Like ZooKeeper, further parts are ignored: `"log.1cb.bak"` parses as `0x1cb` and
/// ZooKeeper itself would read such a file as a log.
pub fn parse_log_name(name: &str) -> Option<Zxid> {
    let parts = java_split_dot(name);
    match parts.as_slice() {
        [prefix, zxid, ..] if *prefix == LOG_FILE_PREFIX => parse_java_hex_zxid(zxid),
        _ => None,
    }
}

/// The txn log files of a directory, sorted by the zxid in their name, ascending.
/// Names that [`parse_log_name`] does not accept and directories are ignored.
pub fn list_logs(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(Zxid, PathBuf)>, WalError> {
    let entries = fs.read_dir(dir).map_err(|e| WalError::io(dir, e))?;
    let mut out: Vec<(Zxid, PathBuf)> = entries
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| parse_log_name(&e.name).map(|z| (z, dir.join(&e.name))))
        .collect();
    out.sort();
    Ok(out)
}

/// The 16-byte header at the start of every txn log file (`FileHeader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFileHeader {
    /// Always [`TXNLOG_MAGIC`] in a header returned by [`LogReader`].
    pub magic: i32,
    /// Format version; 2 in every ZooKeeper 3.x file.
    pub version: i32,
    /// Database id; never assigned by ZooKeeper 3.8, so 0.
    pub dbid: i64,
}

/// One record of a txn log, checked and decoded.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// File offset of the record's first byte (its checksum field).
    pub offset: u64,
    /// The checksum as stored (the low 32 bits are the Adler-32 of the payload).
    pub checksum: u64,
    /// Length of the payload in bytes.
    pub payload_len: u32,
    /// The decoded payload.
    pub txn: Txn,
}

impl LogRecord {
    /// File offset just after the record's 0x42 marker, where the next record starts.
    pub fn end_offset(&self) -> u64 {
        self.offset + RECORD_HEADER_LEN + u64::from(self.payload_len) + 1
    }

    /// The zxid of the record's txn.
    pub fn zxid(&self) -> Zxid {
        self.txn.header.zxid
    }
}

/// How the records of a log file ended. `offset` is where the first byte that is not
/// part of a complete record starts: truncating the file there removes nothing valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// The file ended exactly after the last record (or is empty).
    Eof {
        /// The file length.
        offset: u64,
    },
    /// A record header with length 0: the preallocated zero tail (the normal end).
    ZeroLength {
        /// Offset of the zero record header.
        offset: u64,
    },
    /// A partial record: what a crash in the middle of a write leaves. ZooKeeper
    /// treats this as the end of the file, not as an error.
    Torn {
        /// Offset of the partial record (or 0 for a partial file header).
        offset: u64,
        /// What was wrong with it.
        reason: TornReason,
    },
}

impl LogEnd {
    /// Where the valid records end.
    pub fn offset(&self) -> u64 {
        match self {
            LogEnd::Eof { offset }
            | LogEnd::ZeroLength { offset }
            | LogEnd::Torn { offset, .. } => *offset,
        }
    }
}

/// Why a record counts as torn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TornReason {
    /// The file ends inside a header: the 12-byte record header, or the 16-byte file
    /// header of a file shorter than that.
    TruncatedHeader {
        /// How many bytes of the header are there.
        available: u64,
    },
    /// The file ends inside the payload or before the marker.
    TruncatedPayload {
        /// The payload length the record claims.
        len: u32,
        /// How many bytes follow the record header (fewer than `len + 1`).
        available: u64,
    },
    /// The byte after the payload is not 0x42.
    BadMarker {
        /// The byte found.
        found: u8,
    },
}

/// An error remembered by the reader so that it is reported again on every later call.
#[derive(Debug, Clone)]
enum Failure {
    Corrupt(Corruption),
    Io(io::ErrorKind, String),
}

/// A streaming reader of one ZooKeeper txn log file.
///
/// ```no_run
/// # use keeperkit_wal::zookeeper::LogReader;
/// # fn f() -> Result<(), keeperkit_wal::WalError> {
/// let fs = keeperkit_vfs::StdFs;
/// let mut r = LogReader::open(&fs, "version-2/log.1".as_ref())?;
/// while let Some(rec) = r.next_record()? {
///     println!("{} {}", rec.zxid(), rec.txn.header.op);
/// }
/// println!("ended: {:?}", r.end());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    file_len: u64,
    header: Option<LogFileHeader>,
    reader: FileReader,
    /// Offset of the next record.
    pos: u64,
    end: Option<LogEnd>,
    failure: Option<Failure>,
}

impl LogReader {
    /// Opens a log file and checks its header.
    ///
    /// A file of 0 bytes has no header and no records (its end is `Eof { offset: 0 }`);
    /// a file of 1 to 15 bytes has no header either and ends `Torn` with
    /// [`TornReason::TruncatedHeader`]. A full header with a magic other than
    /// [`TXNLOG_MAGIC`] is corruption at offset 0. The version is not checked, as in
    /// ZooKeeper.
    pub fn open(fs: &dyn FileSystem, path: &Path) -> Result<LogReader, WalError> {
        let file: Arc<dyn File> =
            fs.open(path, OpenMode::Read).map_err(|e| WalError::io(path, e))?;
        let file_len = file.len().map_err(|e| WalError::io(path, e))?;
        let mut reader = FileReader::new(file, 0);
        let mut buf = [0u8; 16];
        let n = read_full(&mut reader, &mut buf).map_err(|e| WalError::io(path, e))?;
        let mut this = LogReader {
            path: path.to_path_buf(),
            file_len,
            header: None,
            reader,
            pos: 0,
            end: None,
            failure: None,
        };
        if n == 0 {
            this.end = Some(LogEnd::Eof { offset: 0 });
            return Ok(this);
        }
        if n < buf.len() {
            this.end = Some(LogEnd::Torn {
                offset: 0,
                reason: TornReason::TruncatedHeader { available: len_u64(n) },
            });
            return Ok(this);
        }
        let [m0, m1, m2, m3, v0, v1, v2, v3, d0, d1, d2, d3, d4, d5, d6, d7] = buf;
        let magic = i32::from_be_bytes([m0, m1, m2, m3]);
        let version = i32::from_be_bytes([v0, v1, v2, v3]);
        let dbid = i64::from_be_bytes([d0, d1, d2, d3, d4, d5, d6, d7]);
        if magic != TXNLOG_MAGIC {
            return Err(Corruption::new(
                path,
                0,
                CorruptionKind::BadMagic {
                    expected: u64::from(TXNLOG_MAGIC as u32),
                    found: u64::from(magic as u32),
                },
            )
            .into());
        }
        this.header = Some(LogFileHeader { magic, version, dbid });
        this.pos = FILE_HEADER_LEN;
        Ok(this)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file header, or `None` for a file shorter than 16 bytes.
    pub fn header(&self) -> Option<LogFileHeader> {
        self.header
    }

    /// The file's length in bytes when it was opened (the apparent size, preallocated
    /// zeros included).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// How the file's records ended; `Some` once [`LogReader::next_record`] returned
    /// `Ok(None)`.
    pub fn end(&self) -> Option<&LogEnd> {
        self.end.as_ref()
    }

    /// The next record, or `None` at the end of the file's records (see
    /// [`LogReader::end`] for how they ended).
    ///
    /// Errors: [`WalError::Corrupt`] for a length out of range (at the length field,
    /// no zxid), a checksum mismatch (at the record, with the zxid when the payload is
    /// long enough to hold one) or a payload that does not decode (at the failing
    /// byte, with the zxid); [`WalError::Io`] when the file cannot be read. After an
    /// error, every later call returns the same error.
    pub fn next_record(&mut self) -> Result<Option<LogRecord>, WalError> {
        if let Some(f) = &self.failure {
            return Err(match f {
                Failure::Corrupt(c) => WalError::Corrupt(c.clone()),
                Failure::Io(kind, msg) => {
                    WalError::io(&self.path, io::Error::new(*kind, msg.clone()))
                }
            });
        }
        if self.end.is_some() {
            return Ok(None);
        }
        match self.read_record() {
            Ok(Step::Record(r)) => Ok(Some(r)),
            Ok(Step::End(end)) => {
                self.end = Some(end);
                Ok(None)
            }
            Err(e) => {
                self.failure = Some(match &e {
                    WalError::Corrupt(c) => Failure::Corrupt(c.clone()),
                    WalError::Io { source, .. } => Failure::Io(source.kind(), source.to_string()),
                    // The reader raises only the two above; anything else is kept as text.
                    other => Failure::Io(io::ErrorKind::Other, other.to_string()),
                });
                Err(e)
            }
        }
    }

    fn io_err(&self, e: io::Error) -> WalError {
        WalError::io(&self.path, e)
    }

    fn read_record(&mut self) -> Result<Step, WalError> {
        let offset = self.pos;
        debug_assert_eq!(self.reader.position(), offset, "reader and record offset agree");

        let mut head = [0u8; 12];
        let n = read_full(&mut self.reader, &mut head).map_err(|e| self.io_err(e))?;
        if n == 0 {
            return Ok(Step::End(LogEnd::Eof { offset }));
        }
        if n < head.len() {
            return Ok(Step::End(LogEnd::Torn {
                offset,
                reason: TornReason::TruncatedHeader { available: len_u64(n) },
            }));
        }
        let [c0, c1, c2, c3, c4, c5, c6, c7, l0, l1, l2, l3] = head;
        let checksum = u64::from_be_bytes([c0, c1, c2, c3, c4, c5, c6, c7]);
        let length = i32::from_be_bytes([l0, l1, l2, l3]);
        if length == 0 {
            return Ok(Step::End(LogEnd::ZeroLength { offset }));
        }
        let len = match u32::try_from(length) {
            Ok(len) if u64::from(len) <= PAYLOAD_LEN_MAX => len,
            _ => {
                return Err(Corruption::new(
                    &self.path,
                    offset + 8,
                    CorruptionKind::LengthOutOfRange {
                        len: i64::from(length),
                        max: PAYLOAD_LEN_MAX,
                    },
                )
                .into());
            }
        };

        // Bound the allocation by what the file really holds.
        let payload_at = offset + RECORD_HEADER_LEN;
        let available = self.file_len.saturating_sub(payload_at);
        let with_marker = u64::from(len) + 1;
        if available < with_marker {
            return Ok(Step::End(LogEnd::Torn {
                offset,
                reason: TornReason::TruncatedPayload { len, available },
            }));
        }
        let buf_len = usize::try_from(with_marker).map_err(|_| {
            Corruption::new(
                &self.path,
                offset + 8,
                CorruptionKind::LengthOutOfRange { len: i64::from(length), max: PAYLOAD_LEN_MAX },
            )
        })?;
        let mut buf = vec![0u8; buf_len];
        let n = read_full(&mut self.reader, &mut buf).map_err(|e| self.io_err(e))?;
        if n < buf_len {
            // The file shrank after it was opened.
            return Ok(Step::End(LogEnd::Torn {
                offset,
                reason: TornReason::TruncatedPayload { len, available: len_u64(n) },
            }));
        }
        let Some((&marker, payload)) = buf.split_last() else {
            return Ok(Step::End(LogEnd::Torn {
                offset,
                reason: TornReason::TruncatedPayload { len, available: 0 },
            }));
        };
        if marker != END_OF_RECORD {
            return Ok(Step::End(LogEnd::Torn {
                offset,
                reason: TornReason::BadMarker { found: marker },
            }));
        }

        let zxid = payload_zxid(payload);
        let computed = u64::from(adler2::adler32_slice(payload));
        if computed != checksum {
            let mut c = Corruption::new(
                &self.path,
                offset,
                CorruptionKind::ChecksumMismatch { stored: checksum, computed },
            );
            c.zxid = zxid;
            return Err(c.into());
        }
        let txn = Txn::decode_from(payload)
            .map_err(|e| WalError::Corrupt(e.in_file(&self.path, payload_at, zxid)))?;
        self.pos = payload_at + with_marker;
        Ok(Step::Record(LogRecord { offset, checksum, payload_len: len, txn }))
    }
}

/// What one step of reading produced.
enum Step {
    Record(LogRecord),
    End(LogEnd),
}

/// The zxid field of a txn payload (bytes 12..20 of the `TxnHeader`), when the payload
/// is long enough.
fn payload_zxid(payload: &[u8]) -> Option<Zxid> {
    const ZXID_AT: usize = 12;
    let bytes: [u8; 8] = payload.get(ZXID_AT..ZXID_AT + 8)?.try_into().ok()?;
    const { assert!(ZXID_AT + 8 <= TxnHeader::LEN, "zxid lies inside the txn header") };
    Some(Zxid(i64::from_be_bytes(bytes)))
}

use keeperkit_model::le::len_u64;
use keeperkit_vfs::read_full;

/// Reads a whole log file: its header (`None` for a file shorter than 16 bytes), every
/// record, and how the records ended.
pub fn read_all(
    fs: &dyn FileSystem,
    path: &Path,
) -> Result<(Option<LogFileHeader>, Vec<LogRecord>, LogEnd), WalError> {
    let mut r = LogReader::open(fs, path)?;
    let mut records = Vec::new();
    while let Some(rec) = r.next_record()? {
        records.push(rec);
    }
    let end = r.end.take().unwrap_or(LogEnd::Eof { offset: r.pos });
    Ok((r.header, records, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_follow_zookeeper() {
        assert_eq!(parse_log_name("log.1cb"), Some(Zxid(0x1cb)));
        assert_eq!(parse_log_name("log.100000001"), Some(Zxid(0x1_0000_0001)));
        assert_eq!(parse_log_name("log.1CB"), Some(Zxid(0x1cb)));
        assert_eq!(parse_log_name("log.1cb.bak"), Some(Zxid(0x1cb)));
        assert_eq!(parse_log_name("log.7fffffffffffffff"), Some(Zxid(i64::MAX)));
        assert_eq!(parse_log_name("log.ffffffffffffffff"), None);
        assert_eq!(parse_log_name("log.-1"), None);
        assert_eq!(parse_log_name("log."), None);
        assert_eq!(parse_log_name("log"), None);
        assert_eq!(parse_log_name("log.xyz"), None);
        assert_eq!(parse_log_name("snapshot.1"), None);
        assert_eq!(parse_log_name("logs.1"), None);
        assert_eq!(parse_log_name(".log.1"), None);
        assert_eq!(parse_log_name(""), None);
    }

    #[test]
    fn payload_zxid_needs_twenty_bytes() {
        let mut p = vec![0u8; 20];
        p[19] = 7;
        assert_eq!(payload_zxid(&p), Some(Zxid(7)));
        assert_eq!(payload_zxid(&p[..19]), None);
        assert_eq!(payload_zxid(&[]), None);
    }
}
