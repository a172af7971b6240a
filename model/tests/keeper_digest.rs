//! Keeper's SipHash-based node and tree digest: guards against a digest that differs
//! from what ClickHouse computes (a wrong digest with the right version makes Keeper
//! terminate when it checks a log entry).

use keeperkit_model::keeper::{
    counts_in_tree_digest, digest_version, node_digest, sip_hash64, KeeperStat, TreeDigest,
};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Every row of ClickHouse's own `sipHash64` values (chDB), copied into testdata.
#[test]
fn sip_hash64_matches_clickhouse_vectors() {
    let tsv = include_str!("../../testdata/clickhouse/chdb-hash-vectors/hash_vectors.tsv");
    let mut rows = 0;
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let input = hex(cols[0]);
        let expected: u64 = cols[1].parse().expect("decimal");
        assert_eq!(u64::from_str_radix(cols[2], 16).expect("hex"), expected);
        assert_eq!(sip_hash64(&input), expected, "input {}", cols[0]);
        rows += 1;
    }
    assert_eq!(rows, 10);
}

/// The derived values of docs/formats/clickhouse.md, "Digests" for a fresh tree: `/` with one child
/// (`/keeper`), `/keeper` empty, all other stats 0.
#[test]
fn fresh_tree_digests_v4_and_v5() {
    let root = KeeperStat { num_children: 1, ..Default::default() };
    let keeper = KeeperStat::default();
    let v4_root = node_digest(digest_version::V4, b"/", b"", &root, None);
    let v4_keeper = node_digest(digest_version::V4, b"/keeper", b"", &keeper, None);
    assert_eq!(v4_root, 0x1cb5_e4de_02f9_1e86);
    assert_eq!(v4_keeper, 0xb421_7e7b_b2b6_a8cb);
    let mut tree = TreeDigest::default();
    tree.add(v4_root);
    tree.add(v4_keeper);
    assert_eq!(tree.0, 0xd0d7_6359_b5af_c751);

    let v5_root = node_digest(digest_version::V5, b"/", b"", &root, None);
    let v5_keeper = node_digest(digest_version::V5, b"/keeper", b"", &keeper, None);
    assert_eq!(v5_root, 0xb914_a61f_fc64_a865);
    assert_eq!(v5_keeper, 0xc5f7_c560_8fe4_b94f);
    assert_eq!(v5_root.wrapping_add(v5_keeper), 0x7f0c_6b80_8c49_61b4);

    tree.remove(v4_keeper);
    assert_eq!(tree.0, v4_root);
}

#[test]
fn ephemerals_hash_zero_children_and_system_children_do_not_count() {
    let a = KeeperStat { ephemeral_owner: 5, num_children: 3, ..Default::default() };
    let b = KeeperStat { ephemeral_owner: 5, num_children: 0, ..Default::default() };
    assert_eq!(
        node_digest(digest_version::V4, b"/e", b"x", &a, None),
        node_digest(digest_version::V4, b"/e", b"x", &b, None)
    );
    // TTL only changes V5 digests.
    let p = KeeperStat::default();
    assert_eq!(
        node_digest(digest_version::V4, b"/t", b"", &p, Some(10)),
        node_digest(digest_version::V4, b"/t", b"", &p, None)
    );
    assert_ne!(
        node_digest(digest_version::V5, b"/t", b"", &p, Some(10)),
        node_digest(digest_version::V5, b"/t", b"", &p, None)
    );
    assert!(counts_in_tree_digest(b"/"));
    assert!(counts_in_tree_digest(b"/keeper"));
    assert!(!counts_in_tree_digest(b"/keeper/api_version"));
    assert!(counts_in_tree_digest(b"/keeperx"));
}
