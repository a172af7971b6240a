//! Node metadata: the 60-byte `StatPersisted` ZooKeeper stores and the 68-byte `Stat`
//! clients see.

use crate::error::DecodeError;
use crate::jute::{Reader, Writer};

/// ZooKeeper's on-disk node metadata (`StatPersisted`).
///
/// Note the stored semantics: `cversion` counts child *creations* only, and
/// `ephemeral_owner` carries the container / TTL encodings (see [`crate::node`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StatPersisted {
    /// Zxid of the create.
    pub czxid: i64,
    /// Zxid of the last data change.
    pub mzxid: i64,
    /// Create time, ms since the epoch.
    pub ctime: i64,
    /// Last data change time, ms since the epoch.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Stored child version: number of child creations.
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Owner session, or a container / TTL marker.
    pub ephemeral_owner: i64,
    /// Zxid of the last change to the children list.
    pub pzxid: i64,
}

impl StatPersisted {
    /// Encoded size in bytes.
    pub const LEN: usize = 60;

    /// Decodes the record.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<StatPersisted, DecodeError> {
        Ok(StatPersisted {
            czxid: r.i64()?,
            mzxid: r.i64()?,
            ctime: r.i64()?,
            mtime: r.i64()?,
            version: r.i32()?,
            cversion: r.i32()?,
            aversion: r.i32()?,
            ephemeral_owner: r.i64()?,
            pzxid: r.i64()?,
        })
    }

    /// Encodes the record.
    pub fn encode_into(&self, w: &mut Writer) {
        w.i64(self.czxid);
        w.i64(self.mzxid);
        w.i64(self.ctime);
        w.i64(self.mtime);
        w.i32(self.version);
        w.i32(self.cversion);
        w.i32(self.aversion);
        w.i64(self.ephemeral_owner);
        w.i64(self.pzxid);
    }
}

/// The client-visible `Stat` (what `getData` / `exists` return).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stat {
    /// Zxid of the create.
    pub czxid: i64,
    /// Zxid of the last data change.
    pub mzxid: i64,
    /// Create time, ms since the epoch.
    pub ctime: i64,
    /// Last data change time, ms since the epoch.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Child version as clients see it: one per child create and per child delete.
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Owner session of an ephemeral node; 0 otherwise (also for containers and TTL).
    pub ephemeral_owner: i64,
    /// Data length in bytes (0 for null data).
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// Zxid of the last change to the children list.
    pub pzxid: i64,
}

impl Stat {
    /// Encoded size in bytes.
    pub const LEN: usize = 68;

    /// Decodes the record.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Stat, DecodeError> {
        Ok(Stat {
            czxid: r.i64()?,
            mzxid: r.i64()?,
            ctime: r.i64()?,
            mtime: r.i64()?,
            version: r.i32()?,
            cversion: r.i32()?,
            aversion: r.i32()?,
            ephemeral_owner: r.i64()?,
            data_length: r.i32()?,
            num_children: r.i32()?,
            pzxid: r.i64()?,
        })
    }

    /// Encodes the record.
    pub fn encode_into(&self, w: &mut Writer) {
        w.i64(self.czxid);
        w.i64(self.mzxid);
        w.i64(self.ctime);
        w.i64(self.mtime);
        w.i32(self.version);
        w.i32(self.cversion);
        w.i32(self.aversion);
        w.i64(self.ephemeral_owner);
        w.i32(self.data_length);
        w.i32(self.num_children);
        w.i64(self.pzxid);
    }
}
