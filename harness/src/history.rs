//! The recorded history: one [`Op`] per client operation, written as JSON lines.
//!
//! An operation has an invocation time and, when the client heard an answer, a
//! completion time and an [`Outcome`]: `ok` (it took effect, with what it returned),
//! `fail` (it certainly took no effect: the server said so, e.g. a version mismatch of
//! an increment's compare-and-set that is retried) or `info` (the answer was lost: a
//! timeout or a closed connection; the operation may or may not have taken effect, at
//! any time after its invocation, as Jepsen treats it).

use serde::{Deserialize, Serialize};

/// The data type an operation works on; each key is one object of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A register: a znode's data and version (read, write, compare-and-set).
    Register,
    /// A grow-only set: the children of a znode (add, read).
    Set,
    /// A counter: a znode's data incremented by compare-and-set (increment, read).
    Counter,
    /// Unique ids: sequential creates under a znode (the names never repeat and grow).
    Ids,
    /// A FIFO queue: sequential children (enqueue, dequeue of the smallest).
    Queue,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [Kind::Register, Kind::Set, Kind::Counter, Kind::Ids, Kind::Queue];

    /// The name used in paths and reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Set => "set",
            Kind::Counter => "counter",
            Kind::Ids => "ids",
            Kind::Queue => "queue",
        }
    }
}

/// What an operation asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Input {
    /// Register: sync, then getData.
    Read,
    /// Register: setData with any version.
    Write {
        /// The value written (unique per key).
        value: i64,
    },
    /// Register: setData with an expected version.
    Cas {
        /// The version expected.
        expect: i32,
        /// The value written when it matches.
        value: i64,
    },
    /// Set: create a child named after the element.
    Add {
        /// The element (unique per key).
        element: u64,
    },
    /// Set: sync, then getChildren.
    ReadSet,
    /// Counter: getData and setData with its version, until one succeeds.
    Inc,
    /// Counter: sync, then getData.
    ReadCounter,
    /// Ids: a sequential create.
    NextId,
    /// Queue: a sequential create holding the value.
    Enqueue {
        /// The value (unique per key).
        value: u64,
    },
    /// Queue: sync, getChildren, delete of the smallest (the next when another client
    /// took it; listed again when all were taken).
    Dequeue,
}

/// What an operation that took effect returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Output {
    /// A register's value and version.
    Value {
        /// The value.
        value: i64,
        /// The znode's version.
        version: i32,
    },
    /// A write's new version.
    Written {
        /// The version after the write.
        version: i32,
    },
    /// A compare-and-set that matched.
    CasOk {
        /// The version after the write.
        version: i32,
    },
    /// A compare-and-set that did not match (nothing written).
    CasFailed,
    /// A set's add.
    Added,
    /// A set's elements.
    Elements {
        /// Sorted elements.
        elements: Vec<u64>,
    },
    /// An increment's new value.
    Incremented {
        /// The value after the increment.
        value: i64,
    },
    /// A counter's value.
    Count {
        /// The value.
        value: i64,
    },
    /// A unique id (the sequence number of the created name).
    Id {
        /// The id.
        id: u64,
    },
    /// An enqueue, with the sequence number of the node it created (the server's order
    /// of enqueues; `None` in histories recorded before it was kept).
    Enqueued {
        /// The sequence number in the created node's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// A dequeue: the value taken, or `None` when the queue was empty.
    Dequeued {
        /// The value.
        value: Option<u64>,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// It took effect and returned this.
    Ok {
        /// The result.
        output: Output,
    },
    /// It certainly took no effect.
    Fail {
        /// Why.
        reason: String,
    },
    /// Unknown: it may have taken effect at any time after its invocation.
    Info {
        /// Why the answer is unknown.
        reason: String,
    },
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique in the history.
    pub id: u64,
    /// The client that ran it.
    pub client: u32,
    /// The node (1..=3) the client was connected to, when known.
    pub node: Option<u8>,
    /// The kind of object.
    pub kind: Kind,
    /// The object (one znode per kind and key).
    pub key: u32,
    /// What was asked.
    pub input: Input,
    /// Nanoseconds since the start of the run, when the request was sent.
    pub invoke_ns: u64,
    /// When the outcome was known (for `info`: when the client gave up).
    pub complete_ns: u64,
    /// The outcome.
    pub outcome: Outcome,
}

impl Op {
    /// The output when the operation took effect, `None` when unknown.
    pub fn output(&self) -> Option<&Output> {
        match &self.outcome {
            Outcome::Ok { output } => Some(output),
            _ => None,
        }
    }

    /// Whether the operation is indeterminate.
    pub fn is_info(&self) -> bool {
        matches!(self.outcome, Outcome::Info { .. })
    }

    /// Whether the operation certainly took no effect.
    pub fn is_fail(&self) -> bool {
        matches!(self.outcome, Outcome::Fail { .. })
    }

    /// Whether the operation only reads (an indeterminate read tells nothing).
    pub fn is_read(&self) -> bool {
        matches!(self.input, Input::Read | Input::ReadSet | Input::ReadCounter)
    }
}

/// Reads a history written as JSON lines.
pub fn read_jsonl(text: &str) -> Result<Vec<Op>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// Writes a history as JSON lines.
pub fn write_jsonl(ops: &[Op], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    for op in ops {
        serde_json::to_writer(&mut *out, op)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
