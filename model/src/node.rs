//! Node kinds and the `ephemeralOwner` encodings ZooKeeper stores
//! (`EphemeralType`).

/// What kind of znode a node is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum NodeKind {
    /// An ordinary node.
    Persistent,
    /// Deleted when its owning session ends.
    Ephemeral,
    /// Deleted by the server once it had children and has none left.
    Container,
    /// Deleted by the server when childless and not modified for `ttl_ms`.
    Ttl,
}

/// A decoded `ephemeralOwner` value.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum EphemeralOwner {
    /// 0: persistent.
    None,
    /// A session id.
    Session(i64),
    /// `Long.MIN_VALUE`: a container.
    Container,
    /// Top byte 0xFF: a TTL node with this TTL in ms (low 40 bits).
    Ttl(i64),
}

/// The stored owner of a container node.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// Top byte of a stored TTL owner.
pub const TTL_OWNER_TAG: i64 = 0xFF00_0000_0000_0000_u64 as i64;
/// Mask of the TTL value in a stored TTL owner (40 bits).
pub const TTL_MASK: i64 = 0xFF_FFFF_FFFF;
/// Largest TTL ZooKeeper accepts (`EphemeralType.MAX_EXTENDED_SERVER_ID` era: 40 bits).
pub const TTL_MAX: i64 = TTL_MASK;

impl EphemeralOwner {
    /// Decodes a stored owner the way ZooKeeper does with `extendedTypesEnabled`:
    /// top byte 0xFF with bits 40–55 zero is TTL.
    pub fn decode(raw: i64) -> EphemeralOwner {
        if raw == 0 {
            EphemeralOwner::None
        } else if raw == CONTAINER_OWNER {
            EphemeralOwner::Container
        } else if (raw as u64) >> 56 == 0xFF && (raw as u64 >> 40) & 0xFFFF == 0 {
            EphemeralOwner::Ttl(raw & TTL_MASK)
        } else {
            EphemeralOwner::Session(raw)
        }
    }

    /// Encodes as ZooKeeper stores it.
    pub fn encode(self) -> i64 {
        match self {
            EphemeralOwner::None => 0,
            EphemeralOwner::Session(s) => s,
            EphemeralOwner::Container => CONTAINER_OWNER,
            EphemeralOwner::Ttl(ttl) => TTL_OWNER_TAG | (ttl & TTL_MASK),
        }
    }

    /// The node kind.
    pub fn kind(self) -> NodeKind {
        match self {
            EphemeralOwner::None => NodeKind::Persistent,
            EphemeralOwner::Session(_) => NodeKind::Ephemeral,
            EphemeralOwner::Container => NodeKind::Container,
            EphemeralOwner::Ttl(_) => NodeKind::Ttl,
        }
    }

    /// What a client sees in `Stat.ephemeralOwner`: the session for an ephemeral node,
    /// 0 for everything else (`DataNode.getClientEphemeralOwner`).
    pub fn client_value(self) -> i64 {
        match self {
            EphemeralOwner::Session(s) => s,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_encodings() {
        assert_eq!(EphemeralOwner::decode(0), EphemeralOwner::None);
        assert_eq!(EphemeralOwner::decode(i64::MIN), EphemeralOwner::Container);
        let ttl = 0xff00_0000_0036_ee80_u64 as i64;
        assert_eq!(EphemeralOwner::decode(ttl), EphemeralOwner::Ttl(3_600_000));
        assert_eq!(EphemeralOwner::Ttl(3_600_000).encode(), ttl);
        let s = 0x0100_000b_08f2_0003;
        assert_eq!(EphemeralOwner::decode(s), EphemeralOwner::Session(s));
        assert_eq!(EphemeralOwner::decode(s).client_value(), s);
        assert_eq!(EphemeralOwner::Container.client_value(), 0);
        assert_eq!(EphemeralOwner::decode(ttl).kind(), NodeKind::Ttl);
    }
}
