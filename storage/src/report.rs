//! What the operations of a [`crate::DataDir`] return, the same shape for every
//! dialect: a check ([`CheckReport`]), an inspection ([`Inspection`]), log entries
//! ([`LogEntry`]) and repairs ([`RepairPlan`], [`RepairReport`]).
//!
//! Every type here serializes to the JSON that `keeperkit ... --json` prints; the
//! same fact has the same key in every dialect.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::findings::{self, Finding, Position};
use crate::Dialect;

impl Serialize for Dialect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Finding", 7)?;
        st.serialize_field("severity", self.severity.as_str())?;
        st.serialize_field("code", self.code.as_str())?;
        st.serialize_field("file", &self.file.as_ref().map(|p| p.display().to_string()))?;
        st.serialize_field("offset", &self.offset)?;
        let (zxid, index) = match self.position {
            Some(Position::Zxid(z)) => (Some(format!("{:#x}", z.0)), None),
            Some(Position::Index(i)) => (None, Some(i)),
            None => (None, None),
        };
        st.serialize_field("zxid", &zxid)?;
        st.serialize_field("index", &index)?;
        st.serialize_field("message", &self.message)?;
        st.end()
    }
}

/// A path as text (lossy), for reports.
pub(crate) fn show(p: &Path) -> String {
    p.display().to_string()
}

/// What a check found: `keeperkit verify`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The dialect checked.
    pub dialect: Dialect,
    /// The path given.
    pub path: String,
    /// Whether no finding is an error.
    pub ok: bool,
    /// Files read and checked (snapshots, logs, segments).
    pub files_checked: usize,
    /// Log records whose checksum was verified.
    pub records_checked: u64,
    /// Snapshots decoded and checked.
    pub snapshots_checked: usize,
    /// Digests compared (stored in snapshots or log entries, against the tree).
    pub digests_checked: u64,
    /// Log entries replayed on a snapshot the way the dialect's server starts.
    pub entries_replayed: u64,
    /// Everything found, errors first.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// An empty report of `dialect` at `path`.
    pub(crate) fn new(dialect: Dialect, path: &Path) -> CheckReport {
        CheckReport {
            dialect,
            path: show(path),
            ok: true,
            files_checked: 0,
            records_checked: 0,
            snapshots_checked: 0,
            digests_checked: 0,
            entries_replayed: 0,
            findings: Vec::new(),
        }
    }

    /// Sorts the findings and sets `ok`.
    pub(crate) fn finish(mut self) -> CheckReport {
        findings::sort(&mut self.findings);
        self.ok = !findings::has_errors(&self.findings);
        self
    }
}

/// What `keeperkit inspect` shows: the files, their metadata and what the dialect's
/// server does with them, plus the findings of reading them.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// The dialect.
    pub dialect: Dialect,
    /// The path given.
    pub path: String,
    /// The dialect's own facts (files, ranges, startup plan).
    #[serde(flatten)]
    pub details: InspectDetails,
    /// Whether every checksum read was right.
    pub checksums_ok: bool,
    /// Error findings.
    pub errors: usize,
    /// Warning findings.
    pub warnings: usize,
    /// The findings, errors first.
    pub findings: Vec<Finding>,
}

/// The dialect-specific part of an [`Inspection`].
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum InspectDetails {
    /// ZooKeeper.
    ZooKeeper(Box<crate::zookeeper::inspect::ZkInspect>),
    /// ClickHouse Keeper.
    ClickHouse(Box<crate::clickhouse::inspect::ChInspect>),
    /// keeperkit's own.
    Native(Box<crate::native::inspect::NativeInspect>),
}

impl Inspection {
    pub(crate) fn new(
        dialect: Dialect,
        path: &Path,
        details: InspectDetails,
        checksums_ok: bool,
        mut found: Vec<Finding>,
    ) -> Inspection {
        findings::sort(&mut found);
        let (errors, warnings, _) = findings::counts(&found);
        Inspection {
            dialect,
            path: show(path),
            details,
            checksums_ok,
            errors,
            warnings,
            findings: found,
        }
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.details {
            InspectDetails::ZooKeeper(d) => d.fmt(f)?,
            InspectDetails::ClickHouse(d) => d.fmt(f)?,
            InspectDetails::Native(d) => d.fmt(f)?,
        }
        writeln!(
            f,
            "\nchecksums: {}; {} errors, {} warnings{}",
            if self.checksums_ok { "all ok" } else { "PROBLEMS" },
            self.errors,
            self.warnings,
            if self.errors + self.warnings > 0 { " (run keeperkit verify)" } else { "" }
        )
    }
}

/// One member of a multi in a [`LogEntry`].
#[derive(Debug, Clone, Serialize)]
pub struct LogOp {
    /// Operation name.
    pub op: String,
    /// Path, if any.
    pub path: Option<String>,
    /// Error code name of an error member (ZooKeeper's failed multis).
    pub error: Option<String>,
}

/// One log entry, decoded: `keeperkit log`. Fields that do not apply to a dialect are
/// `null` (a ZooKeeper txn has no index or term; a Raft entry's zxid is what the
/// server applies it with).
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// The file holding it.
    pub file: String,
    /// Byte offset of the record (in the decompressed stream for compressed logs).
    pub offset: u64,
    /// Raft log index (ClickHouse Keeper, native).
    pub index: Option<u64>,
    /// Raft term (ClickHouse Keeper, native).
    pub term: Option<u64>,
    /// The zxid the txn is applied with.
    pub zxid: Option<i64>,
    /// The zxid in hex.
    pub zxid_hex: Option<String>,
    /// What the entry is: `txn` (a change of the tree), `config` (cluster
    /// configuration), `batch` (several txns in one entry, `zxid` is the last one's),
    /// `noop` (an empty Raft entry) or `opaque` (not decodable as any).
    pub kind: &'static str,
    /// Request time in ms since the epoch.
    pub time: Option<i64>,
    /// Session id.
    pub session: Option<i64>,
    /// Session id in hex.
    pub session_hex: Option<String>,
    /// Client request counter (ZooKeeper's cxid, Keeper's xid).
    pub cxid: Option<i64>,
    /// Operation name (`Create`, `SetData`, `Multi`, ...).
    pub op: String,
    /// The operation number.
    pub opnum: Option<i32>,
    /// Paths touched (members of a multi included).
    pub paths: Vec<String>,
    /// The value written (created or set), base64 in JSON.
    #[serde(serialize_with = "base64_opt")]
    pub value: Option<Vec<u8>>,
    /// `ok` or the error code name (ZooKeeper error txns and failed multis); `null`
    /// when the log holds requests, not their results (ClickHouse Keeper).
    pub result: Option<String>,
    /// Tree digest after the entry, when the entry carries one.
    pub digest: Option<String>,
    /// Members of a multi.
    pub ops: Vec<LogOp>,
    /// Payload bytes.
    pub payload_len: usize,
    /// The record format version (ClickHouse Keeper changelogs: 0, 1 or 2).
    pub record_version: Option<u8>,
    /// NuRaft's value type (ClickHouse Keeper: 1 a request, 2 a cluster config).
    pub value_type: Option<i32>,
    /// The version of the digest after the entry (ClickHouse Keeper; 0 = none).
    pub digest_version: Option<u8>,
    /// Extra human-readable detail (data length, versions, timeout, config).
    pub detail: String,
    /// Why the entry could not be decoded, if it could not.
    pub error: Option<String>,
}

fn base64_opt<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine;
    match v {
        Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
        None => s.serialize_none(),
    }
}

impl LogEntry {
    /// An entry of `file` at `offset` with every decoded field empty.
    pub(crate) fn blank(file: &Path, offset: u64) -> LogEntry {
        LogEntry {
            file: show(file),
            offset,
            index: None,
            term: None,
            zxid: None,
            zxid_hex: None,
            kind: "opaque",
            time: None,
            session: None,
            session_hex: None,
            cxid: None,
            op: String::new(),
            opnum: None,
            paths: Vec::new(),
            value: None,
            result: None,
            digest: None,
            ops: Vec::new(),
            payload_len: 0,
            record_version: None,
            value_type: None,
            digest_version: None,
            detail: String::new(),
            error: None,
        }
    }
}

/// A range of a log to read; both ends inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRange {
    /// The first point shown.
    pub from: Option<Position>,
    /// The last point shown.
    pub to: Option<Position>,
}

/// A repair refused, and the finding it refuses.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// The finding that cannot be repaired here.
    pub finding: Finding,
    /// Why, and what to do instead.
    pub reason: String,
}

/// Where a state stands: how many nodes, up to which point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StateCount {
    /// Nodes in the tree.
    pub nodes: u64,
    /// The last point of the state.
    pub last: Position,
}

/// A planned repair: what it would do, what it refuses, and what the state is before.
#[derive(Debug, Serialize)]
pub struct RepairPlan {
    /// The dialect.
    pub dialect: Dialect,
    /// The path given.
    pub path: String,
    /// Where removed bytes and files go.
    pub backup_dir: String,
    /// What would be done, in order.
    pub actions: Vec<String>,
    /// What cannot be repaired here, each with its finding.
    pub refused: Vec<Refusal>,
    /// Damage the dialect's server handles by itself, left as it is.
    pub notes: Vec<String>,
    /// The state before (as the dialect's server would start), when it recovers.
    pub state_before: Option<StateCount>,
    #[serde(skip)]
    pub(crate) inner: crate::repair::PlanInner,
}

impl RepairPlan {
    /// Whether there is nothing to do and nothing refused.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.refused.is_empty()
    }
}

/// What an applied repair did.
#[derive(Debug, Serialize)]
pub struct RepairReport {
    /// Whether anything was changed.
    pub applied: bool,
    /// Where removed bytes and files went.
    pub backup_dir: Option<String>,
    /// What was done (or would be, for a dry run), in order.
    pub actions: Vec<String>,
    /// The backups made.
    pub backups: Vec<String>,
    /// What cannot be repaired here, each with its finding.
    pub refused: Vec<Refusal>,
    /// Damage left as it is because the dialect's server handles it.
    pub notes: Vec<String>,
    /// The state before.
    pub state_before: Option<StateCount>,
    /// The state after (an applied repair).
    pub state_after: Option<StateCount>,
    /// The check after an applied repair.
    pub verify_after: Option<CheckReport>,
}

/// Where a repair puts its backups by default: beside `dir`, named after it and the
/// time. A bare relative name (`w1`) gets its backup beside it in the working
/// directory.
pub fn default_backup_dir(dir: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parent.join(format!("{name}.keeperkit-backup-{secs}"))
}
