//! Access control lists: permission bits, ids, ACL entries, and their jute encoding.

use std::fmt;

use crate::error::DecodeError;
use crate::jute::{Reader, Writer};

/// ACL permission bits (`ZooDefs.Perms`). Kept as the raw `int` ZooKeeper stores, so
/// that unknown bits found on disk survive.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Perms(pub i32);

impl Perms {
    /// Read data, list children.
    pub const READ: Perms = Perms(1);
    /// Set data.
    pub const WRITE: Perms = Perms(2);
    /// Create children.
    pub const CREATE: Perms = Perms(4);
    /// Delete children.
    pub const DELETE: Perms = Perms(8);
    /// Set ACLs.
    pub const ADMIN: Perms = Perms(16);
    /// All of the above (31).
    pub const ALL: Perms = Perms(31);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }
}

impl fmt::Debug for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Perms({self})")
    }
}

impl fmt::Display for Perms {
    /// `crdwa` letters as ZooKeeper's CLI prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(4, 'c'), (8, 'd'), (1, 'r'), (2, 'w'), (16, 'a')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// An identity: an authentication scheme and an id within it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Id {
    /// `world`, `digest`, `ip`, `auth`, `sasl`, `x509`, ...
    pub scheme: String,
    /// The id in that scheme (`anyone`, `user:base64sha1`, `10.0.0.0/8`, ...).
    pub id: String,
}

impl Id {
    /// `world:anyone`.
    pub fn anyone() -> Id {
        Id { scheme: "world".into(), id: "anyone".into() }
    }

    /// Decodes a jute `Id` record.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Id, DecodeError> {
        let scheme = r.ustring()?.unwrap_or_default();
        let id = r.ustring()?.unwrap_or_default();
        Ok(Id { scheme, id })
    }

    /// Encodes a jute `Id` record.
    pub fn encode_into(&self, w: &mut Writer) {
        w.ustring(Some(&self.scheme));
        w.ustring(Some(&self.id));
    }
}

/// One ACL entry.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Acl {
    /// Granted permissions.
    pub perms: Perms,
    /// To whom.
    pub id: Id,
}

/// An ordered ACL list, as ZooKeeper compares them (`List.equals`).
pub type AclList = Vec<Acl>;

impl Acl {
    /// `world:anyone` with all permissions (`ZooDefs.Ids.OPEN_ACL_UNSAFE`).
    pub fn open_unsafe() -> AclList {
        vec![Acl { perms: Perms::ALL, id: Id::anyone() }]
    }

    /// Whether a list is exactly `world:anyone:31`.
    pub fn is_open_unsafe(list: &[Acl]) -> bool {
        list.len() == 1 && list[0].perms == Perms::ALL && list[0].id == Id::anyone()
    }

    /// Decodes a jute `ACL` record.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Acl, DecodeError> {
        let perms = Perms(r.i32()?);
        let id = Id::decode_from(r)?;
        Ok(Acl { perms, id })
    }

    /// Encodes a jute `ACL` record.
    pub fn encode_into(&self, w: &mut Writer) {
        w.i32(self.perms.0);
        self.id.encode_into(w);
    }

    /// Decodes a `vector<ACL>`; a null vector decodes as an empty list.
    pub fn decode_list(r: &mut Reader<'_>) -> Result<AclList, DecodeError> {
        // An ACL takes at least 12 bytes: perms and two string lengths.
        let n = r.vector_len(12)?.unwrap_or(0);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(Acl::decode_from(r)?);
        }
        Ok(out)
    }

    /// Encodes a `vector<ACL>`.
    pub fn encode_list(list: &[Acl], w: &mut Writer) {
        w.vector_len(Some(list.len()));
        for a in list {
            a.encode_into(w);
        }
    }
}
