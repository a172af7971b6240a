//! One vocabulary for everything a check finds, in every dialect.
//!
//! A [`Finding`] has a [`Severity`], a stable [`Code`] (snake_case, one per kind of
//! fault), the file and byte offset when known, the position in the history (a zxid
//! or a log index) when known, and a full-sentence message. What a severity means for
//! the exit status of a tool is decided once, in [`exit_status`].

use std::fmt;
use std::path::PathBuf;

use keeperkit_model::{Corruption, CorruptionKind, Zxid};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing (how a state was recovered); shown on request.
    Info,
    /// Damaged or doubtful, but nothing acknowledged is lost and the state is complete.
    Warning,
    /// The data is damaged, or the state is incomplete or untrustworthy.
    Error,
}

impl Severity {
    /// The stable lower-case name (`info`, `warning`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the history a finding sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Position {
    /// A ZooKeeper transaction id.
    Zxid(Zxid),
    /// A Raft log index (ClickHouse Keeper, native).
    Index(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Zxid(z) => write!(f, "zxid {z}"),
            Position::Index(i) => write!(f, "index {i}"),
        }
    }
}

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $s:literal,)*) => {
        /// The kind of a finding: a stable snake_case name, part of the JSON contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[$doc])* $name,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $s,)*
                }
            }
        }
    };
}

codes! {
    // One per kind of corrupt bytes (`CorruptionKind`).
    /// A magic number did not match.
    BadMagic = "bad_magic",
    /// A format version this build does not read.
    UnsupportedVersion = "unsupported_version",
    /// A checksum did not match the bytes it covers.
    ChecksumMismatch = "checksum_mismatch",
    /// A length or count field is out of its range.
    LengthOutOfRange = "length_out_of_range",
    /// The bytes end before the structure does.
    Truncated = "truncated",
    /// A string is not valid UTF-8.
    InvalidUtf8 = "invalid_utf8",
    /// A transaction type this build does not know.
    UnknownTxnType = "unknown_txn_type",
    /// A compressed stream could not be decompressed.
    Decompression = "decompression",
    /// A decompressed stream grows past its bound (a decompression bomb).
    DecompressedTooLarge = "decompressed_too_large",
    /// A field holds a value the format does not define.
    UnknownValue = "unknown_value",
    /// A reserved field is not zero.
    NonZeroReserved = "nonzero_reserved",
    /// Bytes follow the end of a structure that must fill its container.
    TrailingBytes = "trailing_bytes",
    /// A structure lacks its end marker.
    MissingTerminator = "missing_terminator",
    /// A variable-length integer is malformed.
    BadVarint = "bad_varint",
    /// A null where the format requires a value.
    NullValue = "null_value",
    /// Two fields of one structure contradict each other.
    Inconsistent = "inconsistent",
    /// The tree a file describes is not a tree (a missing parent, a repeated path).
    BadTree = "bad_tree",
    /// A logged request that cannot be decoded as a request.
    BadRequest = "bad_request",
    /// A structure that was never finished by its writer.
    Unfinished = "unfinished",
    // Files and directories.
    /// A file could not be read at all (I/O).
    Unreadable = "unreadable",
    /// A ZooKeeper snapshot fails ZooKeeper's quick validity test.
    InvalidTrailer = "invalid_trailer",
    /// A file's name does not match what it holds.
    NameMismatch = "name_mismatch",
    /// A file name of the dialect's family that does not parse.
    BadName = "bad_name",
    /// A log that holds no header.
    EmptyLog = "empty_log",
    /// Complete, checksum-valid records after the point where a log ends for its
    /// server (a zeroed length field hides them).
    RecordsAfterEnd = "records_after_end",
    /// A directory or special file where a data file belongs.
    WrongKind = "wrong_kind",
    /// Nothing to check: no snapshot and no log at all.
    NoData = "no_data",
    /// A write cut short at the end of a log (never acknowledged).
    TornTail = "torn_tail",
    /// The last zstd frame of a changelog is not terminated.
    UnterminatedFrame = "unterminated_frame",
    /// A leftover of an interrupted write or copy (a temporary file, a `tmp_` marker).
    Leftover = "leftover",
    /// A `tmp_` marker says the file is an incomplete copy.
    IncompleteCopy = "incomplete_copy",
    /// A `tmp_` marker says the snapshot was never finished.
    IncompleteSnapshot = "incomplete_snapshot",
    // History.
    /// Ids go backwards or repeat inside one log file.
    SequenceBreak = "sequence_break",
    /// A hole in the sequence of ids between files.
    Gap = "gap",
    /// An index appears again (a follower's log rewritten by the leader).
    RepeatedIndex = "repeated_index",
    /// A stored digest disagrees with the replayed tree.
    DigestMismatch = "digest_mismatch",
    /// The directory cannot be recovered at all.
    Unrecoverable = "unrecoverable",
    /// A log entry the server cannot execute.
    EntryRefused = "entry_refused",
    /// ClickHouse Keeper would set a file aside at startup.
    WouldDetach = "would_detach",
    /// ClickHouse Keeper refuses to start.
    StartupRefused = "startup_refused",
    /// ClickHouse Keeper warns at startup.
    StartupWarning = "startup_warning",
    /// ClickHouse Keeper refuses to load a snapshot.
    SnapshotRefused = "snapshot_refused",
    /// Content of a snapshot Keeper loads as is but that is not what it writes.
    SnapshotContent = "snapshot_content",
    /// A snapshot was not used for recovery.
    SnapshotSkipped = "snapshot_skipped",
    // Recovery notes.
    /// How the state was recovered (snapshot, entries, last position).
    Recovered = "recovered",
    /// A single file read on its own (no replay after it).
    SingleFile = "single_file",
    /// Ephemeral nodes of closed sessions were dropped, as the server does on start.
    OrphanEphemerals = "orphan_ephemerals",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&CorruptionKind> for Code {
    /// The finding code of a kind of corruption: the same snake_case name as
    /// [`CorruptionKind::code`] (every such name is a [`Code`]; a test checks it).
    fn from(k: &CorruptionKind) -> Code {
        let name = k.code();
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == name)
            .unwrap_or_else(|| unreachable!("corruption code {name} has no finding code"))
    }
}

/// Something a check (or a recovery) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub severity: Severity,
    /// What kind of fault.
    pub code: Code,
    /// The file concerned, when there is one.
    pub file: Option<PathBuf>,
    /// Byte offset in the file (in the decompressed stream for compressed files).
    pub offset: Option<u64>,
    /// Zxid or log index, when known.
    pub position: Option<Position>,
    /// A full sentence.
    pub message: String,
}

impl Finding {
    /// A finding with no file, offset or position.
    pub fn new(severity: Severity, code: Code, message: impl Into<String>) -> Finding {
        Finding {
            severity,
            code,
            file: None,
            offset: None,
            position: None,
            message: message.into(),
        }
    }

    /// A damaged snapshot recovery skipped, falling back to `used` (the older snapshot
    /// or the empty tree it recovered from instead): the same warning in every dialect.
    pub(crate) fn damaged_snapshot_skipped(
        path: &std::path::Path,
        reason: &str,
        used: &str,
    ) -> Finding {
        Finding::new(
            Severity::Warning,
            Code::SnapshotSkipped,
            format!(
                "snapshot {} is damaged and was skipped ({reason}); recovered from {used} \
                 instead",
                path.display()
            ),
        )
        .file(path)
    }

    /// An error finding for corrupt bytes, prefixed by `what` ("damaged snapshot").
    pub fn corruption(c: &Corruption, what: &str) -> Finding {
        Finding {
            severity: Severity::Error,
            code: Code::from(&c.kind),
            file: Some(c.file.clone()),
            offset: Some(c.offset),
            position: c.zxid.map(Position::Zxid).or(c.index.map(Position::Index)),
            message: if what.is_empty() { c.to_string() } else { format!("{what}: {c}") },
        }
    }

    /// Sets the file.
    pub fn file(mut self, file: impl Into<PathBuf>) -> Finding {
        self.file = Some(file.into());
        self
    }

    /// Sets the byte offset.
    pub fn offset(mut self, offset: u64) -> Finding {
        self.offset = Some(offset);
        self
    }

    /// Sets the offset when known.
    pub fn offset_opt(mut self, offset: Option<u64>) -> Finding {
        self.offset = offset;
        self
    }

    /// Sets the position to a zxid.
    pub fn zxid(mut self, z: Zxid) -> Finding {
        self.position = Some(Position::Zxid(z));
        self
    }

    /// Sets the position to a log index.
    pub fn index(mut self, i: u64) -> Finding {
        self.position = Some(Position::Index(i));
        self
    }

    /// Sets the position to a log index when known.
    pub fn index_opt(mut self, i: Option<u64>) -> Finding {
        self.position = i.map(Position::Index);
        self
    }

    /// The file as text (empty when there is none).
    pub fn file_text(&self) -> String {
        self.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.severity)?;
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
        }
        match (self.offset, self.position) {
            (Some(o), Some(p)) => write!(f, " at byte {o} ({p})")?,
            (Some(o), None) => write!(f, " at byte {o}")?,
            (None, Some(p)) => write!(f, " ({p})")?,
            (None, None) => {}
        }
        write!(f, ": [{}] {}", self.code, self.message)
    }
}

/// Sorts findings the way every report shows them: errors first, then by file and
/// offset.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (std::cmp::Reverse(a.severity), &a.file, a.offset).cmp(&(
            std::cmp::Reverse(b.severity),
            &b.file,
            b.offset,
        ))
    });
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// The exit status a tool returns for a completed run: 0 when no finding is an error
/// ("this is everything the files hold"), 1 when one is. Usage and I/O failures (2)
/// never reach here: they are errors of the call, not findings.
pub fn exit_status(findings: &[Finding]) -> u8 {
    u8::from(has_errors(findings))
}

/// Error findings for directories in `dir` whose names `data_like` takes for data files:
/// the dialect's server fails on them or skips them, and a check never does so silently.
pub(crate) fn data_named_dirs(
    fs: &dyn keeperkit_vfs::FileSystem,
    dir: &std::path::Path,
    data_like: impl Fn(&str) -> bool,
) -> Vec<Finding> {
    let Ok(entries) = fs.read_dir(dir) else { return Vec::new() };
    entries
        .iter()
        .filter(|e| e.is_dir && data_like(&e.name))
        .map(|e| {
            Finding::new(
                Severity::Error,
                Code::WrongKind,
                format!(
                    "{} is a directory named like a data file: it is not read; move it out of \
                     the directory",
                    dir.join(&e.name).display()
                ),
            )
            .file(dir.join(&e.name))
        })
        .collect()
}

/// Counts of findings by severity: (errors, warnings, infos).
pub fn counts(findings: &[Finding]) -> (usize, usize, usize) {
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    (n(Severity::Error), n(Severity::Warning), n(Severity::Info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
                "{s}"
            );
        }
    }

    #[test]
    fn every_corruption_kind_has_its_own_finding_code() {
        for name in CorruptionKind::CODES {
            assert!(
                Code::ALL.iter().any(|c| c.as_str() == *name),
                "corruption code {name} is not a finding code"
            );
        }
        let inner = CorruptionKind::inside("header", CorruptionKind::InvalidUtf8);
        assert_eq!(Code::from(&inner), Code::InvalidUtf8);
    }

    #[test]
    fn exit_status_follows_the_worst_severity() {
        let w = Finding::new(Severity::Warning, Code::TornTail, "w");
        let e = Finding::new(Severity::Error, Code::Gap, "e");
        assert_eq!(exit_status(&[]), 0);
        assert_eq!(exit_status(std::slice::from_ref(&w)), 0);
        assert_eq!(exit_status(&[w.clone(), e.clone()]), 1);
        let mut v = vec![w, e];
        sort(&mut v);
        assert_eq!(v[0].severity, Severity::Error);
    }
}
