//! Opening a ClickHouse Keeper coordination directory: the newest snapshot, then the
//! changelog entries after it executed with Keeper's semantics, each entry's digest
//! compared; `--at-index`; the loaded snapshot's digest equals the header's.
//!
//! The directory is built the way Keeper would have it: a snapshot (a real ZooKeeper
//! fixture converted, index = its last zxid) and changelogs written by our Keeper-style
//! writer (plain and zstd, rotated every 4 entries), with entries whose zxid and digest
//! are what the leader patches in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_model::keeper::{
    digest_version, CreateRequest, KeeperLogEntry, KeeperRequest, ZxidDigest,
};
use keeperkit_model::Acl;
use keeperkit_storage::clickhouse::snapshot::load_snapshot;
use keeperkit_storage::clickhouse::{recover, ChLayout, ChRecoverOptions};
use keeperkit_storage::convert::clickhouse::{write, ChPosition};
use keeperkit_storage::convert::{convert_atomically, ConvertOptions};
use keeperkit_storage::zookeeper::{self as zk, NoProgress, RecoverOptions, ZkLayout};
use keeperkit_tree::{DataTree, KeeperExecOptions};
use keeperkit_vfs::{FileSystem, StdFs};
use keeperkit_wal::clickhouse::{ChangelogRecord, ChangelogWriter, WriterOptions};

const APP_LOG: i32 = 1;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0/basic/data")
}

fn create(path: &str, data: &[u8], flags: i32) -> KeeperRequest {
    KeeperRequest::Create(CreateRequest {
        path: path.into(),
        data: data.to_vec(),
        acls: Acl::open_unsafe(),
        flags,
    })
}

/// The requests after the snapshot, from session `s` (allocated by the first one).
fn requests(s: i64) -> Vec<(i64, KeeperRequest)> {
    vec![
        (-1, KeeperRequest::SessionId { internal_id: 7, session_timeout_ms: 30_000, server_id: 1 }),
        (s, create("/ch", b"a", 0)),
        (s, create("/ch/seq-", b"", 2)),
        (s, create("/ch/eph", b"e", 1)),
        (s, KeeperRequest::Set { path: "/ch".into(), data: b"b".to_vec(), version: 0 }),
        // Fails: bad version.
        (s, KeeperRequest::Set { path: "/ch".into(), data: b"c".to_vec(), version: 5 }),
        // Fails as a whole: the second sub-request has no node.
        (
            s,
            KeeperRequest::Multi(vec![
                create("/ch/m1", b"", 0),
                KeeperRequest::Remove { path: "/nope".into(), version: -1 },
            ]),
        ),
        (s, KeeperRequest::Remove { path: "/ch/seq-0000000000".into(), version: -1 }),
        (s, create("/ch/seq-", b"", 2)),
        (s, KeeperRequest::Close),
    ]
}

struct Built {
    dir: PathBuf,
    snapshot_index: u64,
    /// The tree after each entry (index → tree), computed independently of recovery.
    states: Vec<(u64, DataTree)>,
}

/// A coordination dir: converted fixture + changelogs. `bad_digest_at`: the entry whose
/// digest is written wrong.
fn build(root: &Path, compress: bool, bad_digest_at: Option<usize>) -> Built {
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let layout = ZkLayout::locate(&*fs, &fixture(), None).unwrap();
    let tree =
        zk::recover(&*fs, &layout, &RecoverOptions::default(), &mut NoProgress).unwrap().tree;
    let dir = root.join(if compress { "zstd" } else { "plain" });
    let opts = ConvertOptions { lossy: true, ..Default::default() };
    let pos = ChPosition::from_zookeeper(&tree);
    convert_atomically(&*fs, &dir, |d| {
        write(&fs, &tree, &pos, d, &opts, &mut keeperkit_storage::NoProgress)
    })
    .unwrap();
    let snap = std::fs::read_dir(dir.join("snapshots")).unwrap().next().unwrap().unwrap().path();
    let loaded = load_snapshot(&*fs, &snap).unwrap();
    let mut model = loaded.tree;
    model.set_session_id_counter(loaded.header.session_id_counter);
    model.enable_keeper_digest();
    // The digest of the loaded tree (with Keeper's /keeper) is the header's.
    assert_eq!(model.keeper_digest_with_system_node(), loaded.header.digest);
    let n = pos.last_log_idx;
    let session = loaded.header.session_id_counter;
    let mut w = ChangelogWriter::new(
        &*fs,
        &dir.join("logs"),
        WriterOptions { rotate_interval: 4, compress, sync: false },
    );
    let mut states = Vec::new();
    for (k, (s, req)) in requests(session).into_iter().enumerate() {
        let index = n + 1 + k as u64;
        let mut e = KeeperLogEntry::new(s, k as i64, req, 1_800_000_000_000 + k as i64);
        e.trailer.zxid_digest = Some(ZxidDigest {
            zxid: index as i64,
            digest_version: digest_version::V4,
            digest: Some(0),
        });
        model.apply_keeper_entry(&e, index, &KeeperExecOptions::default()).unwrap();
        let mut d = model.keeper_digest_with_system_node().unwrap();
        if bad_digest_at == Some(k) {
            d ^= 1;
        }
        e.trailer.zxid_digest.as_mut().unwrap().digest = Some(d);
        w.append(&ChangelogRecord::new(index, 1, APP_LOG, e.encode())).unwrap();
        states.push((index, model.clone()));
    }
    w.finish().unwrap();
    Built { dir, snapshot_index: n, states }
}

fn same(a: &DataTree, b: &DataTree, what: &str) {
    let dump = |t: &DataTree| {
        let mut v = Vec::new();
        t.for_each_sorted(|p, n| {
            v.push((p.to_owned(), n.data().map(<[u8]>::to_vec), n.stat(), n.seq(), n.acl().clone()))
        });
        v
    };
    assert_eq!(dump(a), dump(b), "{what}");
    assert_eq!(a.sessions(), b.sessions(), "{what}: sessions");
    assert_eq!(a.last_processed_zxid(), b.last_processed_zxid(), "{what}: zxid");
}

#[test]
fn snapshot_then_changelogs_as_keeper_starts() {
    let tmp = tempfile::tempdir().unwrap();
    for compress in [false, true] {
        let b = build(tmp.path(), compress, None);
        let layout = ChLayout::locate(&StdFs, &b.dir, None).unwrap();
        assert!(layout.snapshot_dir.is_some() && layout.log_dir.is_some());
        let r = recover(&StdFs, &layout, &ChRecoverOptions::default()).unwrap();
        let (last, want) = b.states.last().unwrap();
        assert_eq!(r.last_index, *last);
        assert_eq!(r.last_term, 1);
        assert_eq!(r.entries_applied, b.states.len() as u64);
        assert_eq!(r.digests_checked, b.states.len() as u64, "every entry's digest compared");
        assert!(r.digest_mismatches.is_empty(), "{:?}", r.digest_mismatches);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        same(&r.tree, want, "the whole log");
        // What Keeper's semantics give, by hand.
        let t = &r.tree;
        let ch = t.get("/ch").unwrap();
        assert_eq!(ch.data(), Some(&b"b"[..]));
        let st = ch.stat();
        assert_eq!(st.version, 1, "one successful set");
        assert_eq!(st.num_children, 1, "seq-0000000002 left");
        // Keeper's cversion: +1 per create (2 seq + eph), +1 per removal (seq, eph).
        assert_eq!(st.cversion, 5);
        assert_eq!(ch.seq(), 3, "three creates under /ch");
        assert!(t.get("/ch/seq-0000000002").is_some(), "the counter counts every create");
        assert!(t.get("/ch/seq-0000000000").is_none());
        assert!(t.get("/ch/eph").is_none(), "closed session: ephemeral gone");
        assert!(t.get("/ch/m1").is_none(), "failed multi changed nothing");
        // --at-index: after the ephemeral create, before the set.
        let at = b.snapshot_index + 4;
        let r = recover(
            &StdFs,
            &layout,
            &ChRecoverOptions { at_index: Some(at), ..ChRecoverOptions::default() },
        )
        .unwrap();
        assert_eq!(r.last_index, at);
        same(&r.tree, &b.states[3].1, "--at-index");
        assert_eq!(r.tree.get("/ch").unwrap().data(), Some(&b"a"[..]));
        let eph = r.tree.get("/ch/eph").unwrap();
        assert_eq!(eph.stat().ephemeral_owner, r.tree.sessions().last().unwrap().id.0);
        // Beyond the log: refused.
        let far = ChRecoverOptions { at_index: Some(*last + 1), ..ChRecoverOptions::default() };
        assert!(recover(&StdFs, &layout, &far).is_err());
        // Before the snapshot: no older snapshot to start from, so the empty tree and
        // the log from index 1 would be needed; the log starts later: refused.
        let early = ChRecoverOptions { at_index: Some(3), ..ChRecoverOptions::default() };
        assert!(recover(&StdFs, &layout, &early).is_err());
    }
}

#[test]
fn a_wrong_entry_digest_is_reported_with_its_index() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path(), false, Some(4));
    let layout = ChLayout::locate(&StdFs, &b.dir, None).unwrap();
    let r = recover(&StdFs, &layout, &ChRecoverOptions::default()).unwrap();
    assert_eq!(r.digest_mismatches.len(), 1, "{:?}", r.digest_mismatches);
    assert_eq!(r.digest_mismatches[0].index, b.snapshot_index + 5);
    assert!(
        r.notes.iter().any(|n| n.message.contains("Digest for nodes is not matching")),
        "{:?}",
        r.notes
    );
    // The state is still what the entries say.
    same(&r.tree, &b.states.last().unwrap().1, "state");
}

#[test]
fn a_snapshot_with_a_tmp_marker_is_not_used_and_a_damaged_one_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path(), false, None);
    let snaps = b.dir.join("snapshots");
    let name = std::fs::read_dir(&snaps).unwrap().next().unwrap().unwrap().file_name();
    let good = snaps.join(&name);
    // A newer snapshot that is damaged: skipped with a note, the older one used.
    let newer = snaps.join(format!("snapshot_{}.bin.zstd", b.snapshot_index + 3));
    let mut bytes = std::fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&newer, &bytes).unwrap();
    let layout = ChLayout::locate(&StdFs, &b.dir, None).unwrap();
    let r = recover(&StdFs, &layout, &ChRecoverOptions::default()).unwrap();
    assert_eq!(r.snapshot.as_ref().unwrap().path, good);
    assert!(r.skipped.iter().any(|s| s.path == newer && s.damaged));
    same(&r.tree, &b.states.last().unwrap().1, "fallback");
    // The same newer file, complete but with its tmp_ marker: incomplete, not damaged.
    std::fs::remove_file(&newer).unwrap();
    std::fs::copy(&good, &newer).unwrap();
    std::fs::write(
        snaps.join(format!("tmp_{}", newer.file_name().unwrap().to_str().unwrap())),
        b"",
    )
    .unwrap();
    let r = recover(&StdFs, &layout, &ChRecoverOptions::default()).unwrap();
    assert_eq!(r.snapshot.as_ref().unwrap().path, good);
    assert!(r.skipped.iter().any(|s| s.path == newer && !s.damaged));
}
