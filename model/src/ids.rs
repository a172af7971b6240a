//! Domain newtypes for transaction ids and session ids.

use std::fmt;

/// A ZooKeeper transaction id: high 32 bits epoch, low 32 bits counter.
///
/// Stored as the signed 64-bit value ZooKeeper writes (a Java `long`), so that every
/// value found on disk round-trips.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid(pub i64);

impl Zxid {
    /// The zxid before any transaction.
    pub const ZERO: Zxid = Zxid(0);

    /// Builds a zxid from an epoch and a counter.
    pub fn from_parts(epoch: u32, counter: u32) -> Zxid {
        Zxid(((u64::from(epoch) << 32) | u64::from(counter)) as i64)
    }

    /// The leader epoch (high 32 bits).
    pub fn epoch(self) -> u32 {
        ((self.0 as u64) >> 32) as u32
    }

    /// The counter within the epoch (low 32 bits).
    pub fn counter(self) -> u32 {
        (self.0 as u64 & 0xFFFF_FFFF) as u32
    }

    /// Parses the hex form used in file names (`log.1cb`, `snapshot.100000001`),
    /// with or without a `0x` prefix.
    pub fn parse_hex(s: &str) -> Option<Zxid> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        if s.is_empty() || s.len() > 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(|v| Zxid(v as i64))
    }

    /// Parses a user-supplied zxid: `0x`-prefixed hex or decimal.
    pub fn parse_user(s: &str) -> Option<Zxid> {
        if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            return Zxid::parse_hex(hex);
        }
        s.parse::<i64>().ok().map(Zxid)
    }

    /// The next zxid.
    pub fn next(self) -> Zxid {
        Zxid(self.0.wrapping_add(1))
    }
}

impl fmt::Debug for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zxid({:#x})", self.0)
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A client session id (`clientId` in txn headers, owner of ephemeral nodes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SessionId(pub i64);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:#x})", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_parts_round_trip() {
        let z = Zxid::from_parts(1, 0x1b7);
        assert_eq!(z.0, 0x1_0000_01b7);
        assert_eq!(z.epoch(), 1);
        assert_eq!(z.counter(), 0x1b7);
    }

    #[test]
    fn zxid_hex_names() {
        assert_eq!(Zxid::parse_hex("1cb"), Some(Zxid(0x1cb)));
        assert_eq!(Zxid::parse_hex("100000001"), Some(Zxid(0x1_0000_0001)));
        assert_eq!(Zxid::parse_hex("zz"), None);
        assert_eq!(Zxid::parse_hex(""), None);
        assert_eq!(Zxid::parse_hex("11112222333344445"), None);
        assert_eq!(Zxid::parse_user("0x10"), Some(Zxid(16)));
        assert_eq!(Zxid::parse_user("16"), Some(Zxid(16)));
        assert_eq!(format!("{}", Zxid(0x590)), "0x590");
    }
}
