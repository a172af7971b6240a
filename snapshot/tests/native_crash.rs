//! Crashes and I/O errors while a native snapshot is written, on the fault-injecting
//! file system: at every write and every sync, the final name holds either the
//! previous complete snapshot or the new complete one, never a partial file; a
//! leftover `.tmp` is never taken for a snapshot and is cleaned up.
//!
//! Guards against: renaming before the data is durable, not syncing the directory
//! after the rename, trusting a retried fsync, a failing writer thread hanging the
//! pipeline, and a temporary file left behind after an error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};

use keeperkit_model::{Acl, Zxid};
use keeperkit_snapshot::native::{
    parse_snapshot_file_name, read_snapshot, remove_temp_files, snapshot_file_name,
    verify_snapshot, write_snapshot, AclEntry, CollectSink, NodeStat, OwnedNode, SnapshotMeta,
    WriteOptions,
};
use keeperkit_vfs::{FaultConfig, FaultFs, FileSystem, OpenMode};

const DIR: &str = "/data/snap";

fn nodes(n: usize, tag: &str) -> Vec<OwnedNode> {
    let mut out = vec![OwnedNode {
        path: "/".into(),
        data: Some(vec![]),
        acl_id: 1,
        stat: NodeStat::default(),
    }];
    for i in 0..n {
        out.push(OwnedNode {
            path: format!("/{tag}/n{i:05}"),
            data: Some(format!("{tag}{i}").repeat(3).into_bytes()),
            acl_id: 1,
            stat: NodeStat { czxid: i as i64, ..NodeStat::default() },
        });
        if i == 0 {
            // The parent, so that the list stays in pre-order.
            out.insert(
                1,
                OwnedNode {
                    path: format!("/{tag}"),
                    data: None,
                    acl_id: 1,
                    stat: NodeStat::default(),
                },
            );
        }
    }
    out
}

fn meta(nodes: &[OwnedNode], index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_index: index,
        last_term: 1,
        zxid: Zxid(index as i64),
        node_count: nodes.len() as u64,
        digest: index,
        cluster_config: vec![],
        sessions: vec![],
        acls: vec![AclEntry { id: 1, acl: Acl::open_unsafe() }],
    }
}

fn opts(threads: usize) -> WriteOptions {
    WriteOptions { chunk_len_target: 4096, threads, ..WriteOptions::default() }
}

/// A file system holding a durable snapshot `name` of `old`.
fn setup(name: &str, old: &[OwnedNode], torn: bool) -> FaultFs {
    let fs = FaultFs::new(FaultConfig { torn_writes: torn, ..FaultConfig::default() });
    fs.create_dir_all(Path::new(DIR)).unwrap();
    fs.sync_dir(Path::new("/data")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let old = old.to_vec();
    write_snapshot(&fs, Path::new(DIR), name, &meta(&old, 1), &old, &opts(1)).unwrap();
    fs
}

fn read_nodes(fs: &FaultFs, path: &Path) -> Vec<OwnedNode> {
    let mut sink = CollectSink::default();
    read_snapshot(fs, path, &mut sink).expect("a complete snapshot");
    assert_eq!(verify_snapshot(fs, path).unwrap(), vec![]);
    sink.nodes
}

/// Writes `new` as `name`, with `fault` armed; returns whether the write succeeded.
fn write_with_fault(fs: &FaultFs, name: &str, new: &[OwnedNode], threads: usize) -> bool {
    write_snapshot(fs, Path::new(DIR), name, &meta(new, 2), new, &opts(threads)).is_ok()
}

fn no_temp_left(fs: &FaultFs) {
    remove_temp_files(fs, Path::new(DIR)).unwrap();
    for e in fs.read_dir(Path::new(DIR)).unwrap() {
        assert!(!e.name.ends_with(".tmp"), "{} left behind", e.name);
    }
}

/// Operation counts of one clean write of `new` over `name`.
fn count_ops(name: &str, old: &[OwnedNode], new: &[OwnedNode], threads: usize) -> (u64, u64) {
    let fs = setup(name, old, false);
    let before = fs.stats();
    assert!(write_with_fault(&fs, name, new, threads));
    let after = fs.stats();
    (
        after.writes - before.writes,
        after.file_syncs + after.dir_syncs - before.file_syncs - before.dir_syncs,
    )
}

#[test]
fn replacing_a_snapshot_survives_a_failure_and_a_crash_at_every_step() {
    let name = snapshot_file_name(7);
    let old = nodes(300, "old");
    let new = nodes(400, "new");
    for threads in [1, 2] {
        let (writes, syncs) = count_ops(&name, &old, &new, threads);
        assert!(writes >= 5, "{writes} writes");
        let path = PathBuf::from(DIR).join(&name);
        for (kind, n) in (1..=writes).map(|n| ("write", n)).chain((1..=syncs).map(|n| ("sync", n)))
        {
            for torn in [false, true] {
                let fs = setup(&name, &old, torn);
                match kind {
                    "write" => fs.fail_nth_write(n),
                    _ => fs.fail_nth_sync(n),
                }
                let ok = write_with_fault(&fs, &name, &new, threads);
                // Every failure is reported, the last directory sync's too.
                assert!(!ok, "{kind} {n} failed but the write reported success");
                fs.crash(n * 31 + u64::from(torn));
                let got = read_nodes(&fs, &path);
                assert!(
                    got == old,
                    "{kind} {n} (threads {threads}, torn {torn}): not the old snapshot"
                );
                no_temp_left(&fs);
            }
        }
        // No fault: the new one is durable.
        let fs = setup(&name, &old, true);
        assert!(write_with_fault(&fs, &name, &new, threads));
        fs.crash(99);
        assert!(read_nodes(&fs, &path) == new);
    }
}

#[test]
fn a_crash_while_writing_a_newer_snapshot_never_leaves_a_bad_file_under_its_name() {
    let old_name = snapshot_file_name(1);
    let new_name = snapshot_file_name(2);
    let old = nodes(200, "a");
    let new = nodes(500, "b");
    let (writes, syncs) = count_ops(&new_name, &old, &new, 2);
    for n in 1..=writes + syncs {
        let fs = setup(&old_name, &old, true);
        if n <= writes {
            fs.fail_nth_write(n);
        } else {
            fs.fail_nth_sync(n - writes);
        }
        let ok = write_with_fault(&fs, &new_name, &new, 2);
        fs.crash(n);
        assert!(read_nodes(&fs, &PathBuf::from(DIR).join(&old_name)) == old);
        let new_path = PathBuf::from(DIR).join(&new_name);
        if fs.exists(&new_path) {
            assert!(read_nodes(&fs, &new_path) == new, "step {n}: a partial file under the name");
        } else {
            assert!(!ok, "step {n}: reported success but the file is gone");
        }
        no_temp_left(&fs);
        let listed: Vec<u64> = fs
            .read_dir(Path::new(DIR))
            .unwrap()
            .iter()
            .filter_map(|e| parse_snapshot_file_name(&e.name))
            .collect();
        assert!(listed.contains(&1));
    }
}

#[test]
fn a_durable_leftover_temp_file_is_ignored_and_cleaned() {
    let name = snapshot_file_name(3);
    let old = nodes(50, "x");
    let fs = setup(&name, &old, false);
    let tmp = PathBuf::from(DIR).join(format!("{name}.tmp"));
    let f = fs.open(&tmp, OpenMode::CreateNew).unwrap();
    f.write_all_at(b"half a snapshot", 0).unwrap();
    f.sync_all().unwrap();
    fs.sync_dir(Path::new(DIR)).unwrap();
    fs.crash(1);
    assert_eq!(parse_snapshot_file_name(&format!("{name}.tmp")), None);
    assert!(read_nodes(&fs, &PathBuf::from(DIR).join(&name)) == old);
    assert_eq!(remove_temp_files(&fs, Path::new(DIR)).unwrap(), vec![tmp.clone()]);
    fs.crash(2);
    assert!(!fs.exists(&tmp), "the removal was not made durable");
    // Writing over a leftover works too.
    let f = fs.open(&tmp, OpenMode::CreateNew).unwrap();
    f.write_all_at(&[0xFF; 100], 0).unwrap();
    let new = nodes(60, "y");
    assert!(write_with_fault(&fs, &name, &new, 1));
    assert!(!fs.exists(&tmp));
    assert!(read_nodes(&fs, &PathBuf::from(DIR).join(&name)) == new);
}
