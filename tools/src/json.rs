//! The JSON shapes of the CLI contract (DESIGN.md, "The CLI contract").

use base64::Engine;
use keeperkit_model::{Acl, Stat};
use keeperkit_tree::NodeRef;
use serde::Serialize;

/// A znode as `keeperkit dump --json` prints it.
#[derive(Debug, Serialize, PartialEq, Eq, Clone)]
pub struct JsonNode {
    /// Absolute path (`/` for the root).
    pub path: String,
    /// Base64 of the data; `null` for a null value.
    pub data: Option<String>,
    /// Client-view stat.
    pub stat: JsonStat,
    /// ACL entries.
    pub acl: Vec<JsonAcl>,
}

/// A client-view stat, field names as ZooKeeper's `Stat`.
#[derive(Debug, Serialize, PartialEq, Eq, Clone, Copy)]
#[allow(non_snake_case, missing_docs)]
pub struct JsonStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeralOwner: i64,
    pub dataLength: i32,
    pub numChildren: i32,
}

impl From<Stat> for JsonStat {
    fn from(s: Stat) -> Self {
        JsonStat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            pzxid: s.pzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeralOwner: s.ephemeral_owner,
            dataLength: s.data_length,
            numChildren: s.num_children,
        }
    }
}

/// One ACL entry.
#[derive(Debug, Serialize, PartialEq, Eq, Clone)]
pub struct JsonAcl {
    /// Permission bits.
    pub perms: i32,
    /// Scheme.
    pub scheme: String,
    /// Id.
    pub id: String,
}

impl From<&Acl> for JsonAcl {
    fn from(a: &Acl) -> Self {
        JsonAcl { perms: a.perms.0, scheme: a.id.scheme.clone(), id: a.id.id.clone() }
    }
}

/// Base64 (standard alphabet, padded) of a value.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

impl JsonNode {
    /// Builds the JSON form of a node.
    pub fn from_node(path: &str, node: &NodeRef<'_>) -> JsonNode {
        JsonNode {
            path: path.to_string(),
            data: node.data().map(b64),
            stat: node.stat().into(),
            acl: node.acl().iter().map(JsonAcl::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use keeperkit_model::{Acl, Id, Perms, StatPersisted};
    use keeperkit_tree::DataTree;

    use super::*;

    #[test]
    /// `keeperkit dump --json` writes its lines without serde: they must stay this shape.
    fn written_line_is_the_serialized_node() {
        let mut t = DataTree::new();
        let acl = [
            Acl { perms: Perms(31), id: Id { scheme: "digest".into(), id: "u:\"x\"\n".into() } },
            Acl { perms: Perms(1), id: Id::anyone() },
        ];
        let stat = StatPersisted { czxid: 3, mzxid: -4, ephemeral_owner: 9, ..Default::default() };
        t.insert_loaded("/a\"b\\c\u{1}é", Some(&[0, 255, 10]), &acl, stat).unwrap();
        t.insert_loaded("/n", None, &Acl::open_unsafe(), stat).unwrap();
        t.insert_loaded("/e", Some(b""), &acl, stat).unwrap();
        let mut b64 = String::new();
        t.for_each_sorted(|p, n| {
            let mut line = Vec::new();
            let acl = keeperkit_storage::dump::acl_json(n.acl());
            keeperkit_storage::dump::json_line(&mut line, p, &n, &acl, &mut b64);
            let mut want = serde_json::to_vec(&JsonNode::from_node(p, &n)).unwrap();
            want.push(b'\n');
            assert_eq!(String::from_utf8(line).unwrap(), String::from_utf8(want).unwrap());
        });
    }
}
