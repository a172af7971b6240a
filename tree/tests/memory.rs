//! Resident memory of a 1M-znode tree, measured from the process RSS (Linux). The
//! target is at most 128 bytes per znode beyond its name and data. Ignored
//! by default (it builds a million nodes); run with
//! `cargo test -p keeperkit-tree --release --test memory -- --ignored --nocapture`.
//! Guards against the node layout or the children sets growing past the target.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use keeperkit_model::{Acl, StatPersisted};
use keeperkit_tree::DataTree;

/// Resident set size in bytes, from /proc/self/statm (pages × 4096).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
#[ignore = "builds a million nodes; run explicitly (release) to measure"]
fn bytes_per_znode_at_one_million() {
    let Some(before) = rss() else { return };
    let (parents, per_parent) = (1000usize, 1000usize);
    let open = Acl::open_unsafe();
    let stat =
        StatPersisted { czxid: 5, mzxid: 6, ctime: 7, mtime: 8, pzxid: 9, ..Default::default() };
    let mut t = DataTree::empty();
    t.insert_loaded("/", None, &open, stat).unwrap();
    let mut payload = 0u64;
    for p in 0..parents {
        let parent = format!("/p{p:06}");
        payload += parent.len() as u64 - 1;
        t.insert_loaded(&parent, Some(b""), &open, stat).unwrap();
        for c in 0..per_parent {
            let name = format!("n{c:07}");
            let data = format!("value-{c}");
            payload += (name.len() + data.len()) as u64;
            t.insert_loaded(&format!("{parent}/{name}"), Some(data.as_bytes()), &open, stat)
                .unwrap();
        }
    }
    let after = rss().unwrap();
    let n = t.node_count() as u64;
    let per_node = (after - before).saturating_sub(payload) as f64 / n as f64;
    println!(
        "{n} znodes: RSS +{} MiB, names+data {} MiB, {per_node:.1} bytes/znode beyond name and data",
        (after - before) >> 20,
        payload >> 20
    );
    assert!(per_node <= 128.0, "{per_node:.1} bytes per znode beyond name and data");
    drop(t);
}
