//! What the damaged-input tests share: running the built `keeperkit` binary with a time
//! and memory bound, and the fixtures of the three dialects.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The peak resident size every run must stay under: what the files' real content needs
/// (a few MiB for the fixtures) plus the fixed bound the decoders promise.
pub const RSS_BOUND: u64 = 256 << 20;

/// How long one run may take before it counts as a hang (a debug build on a loaded
/// 2-core machine reads every fixture in well under a second).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One finished (or stopped) run of the binary.
#[derive(Debug)]
pub struct Run {
    /// The exit code; `None` when killed by a signal (ours included).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The highest `VmHWM` seen while it ran, in bytes.
    pub peak_rss: u64,
    pub elapsed: Duration,
    /// Stopped because it ran past the time limit.
    pub timed_out: bool,
    /// Stopped because its resident size passed the memory bound.
    pub over_memory: bool,
}

impl Run {
    /// Whether it panicked (Rust's exit code 101, or a panic message).
    pub fn panicked(&self) -> bool {
        self.code == Some(101) || self.stderr.contains("panicked")
    }

    /// Asserts no panic, no hang, no signal and memory under the bound; `what` names the
    /// run in the message.
    pub fn assert_sane(&self, what: &str) {
        assert!(!self.panicked(), "{what}: panicked: {}", self.stderr);
        assert!(!self.timed_out, "{what}: still running after {:?} (a hang)", TIMEOUT);
        assert!(
            !self.over_memory,
            "{what}: resident size passed {} MiB (stopped)",
            RSS_BOUND >> 20
        );
        assert!(self.code.is_some(), "{what}: killed by a signal: {}", self.stderr);
    }
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Runs `keeperkit ARGS` with the default time limit and memory bound.
pub fn run(args: &[&str]) -> Run {
    run_bounded(args, TIMEOUT, RSS_BOUND)
}

/// Runs `keeperkit ARGS`, watching its resident size (`/proc/PID/status`, every
/// millisecond) and its time: past `timeout` or `rss_bound` it is killed and the run
/// says so, so that a hang or a runaway allocation fails the test instead of the
/// machine.
pub fn run_bounded(args: &[&str], timeout: Duration, rss_bound: u64) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keeperkit"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let pid = child.id();
    let (mut peak, mut timed_out, mut over_memory) = (0u64, false, false);
    let status = loop {
        if let Some(h) = vm_hwm(pid) {
            peak = peak.max(h);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if peak > rss_bound {
            over_memory = true;
        } else if start.elapsed() > timeout {
            timed_out = true;
        }
        if over_memory || timed_out {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    Run {
        code: status.code(),
        stdout,
        stderr,
        peak_rss: peak,
        elapsed: start.elapsed(),
        timed_out,
        over_memory,
    }
}

/// `p` as a `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A ZooKeeper fixture set's data directory (`basic`, `gz`, `snappy`, ...).
pub fn zk_fixture(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0").join(set).join("data")
}

/// Copies every file of `src` (one level) into `dst`, created.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// Every regular file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Makes a FIFO at `path` (`mkfifo`, from coreutils).
#[cfg(unix)]
pub fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

/// Entry `i` of a ClickHouse Keeper test changelog when it is the cluster config: one
/// server, `k1:9234`.
pub fn ch_config_record(i: u64) -> keeperkit_wal::clickhouse::ChangelogRecord {
    use keeperkit_model::keeper::nuraft::{ClusterConfig, ServerConfig};
    let c = ClusterConfig {
        log_idx: 1,
        prev_log_idx: 0,
        async_replication: 0,
        user_ctx: vec![],
        servers: vec![ServerConfig {
            id: 1,
            dc_id: 0,
            endpoint: "k1:9234".into(),
            aux: String::new(),
            flags: 0,
            priority: 1,
        }],
    };
    keeperkit_wal::clickhouse::ChangelogRecord::new(
        i,
        1,
        keeperkit_wal::clickhouse::VALUE_TYPE_CONF,
        c.encode(),
    )
}

/// Entry `i` (term 1) of a ClickHouse Keeper test changelog holding `req` of `session`
/// with `xid`, as the leader stores it: time `1_700_000_000_000 + time`, zxid `zxid` in
/// the trailer, digest version 0.
pub fn ch_request_record(
    i: u64,
    session: i64,
    xid: i64,
    req: keeperkit_model::keeper::KeeperRequest,
    time: i64,
    zxid: i64,
) -> keeperkit_wal::clickhouse::ChangelogRecord {
    use keeperkit_model::keeper::{KeeperLogEntry, ZxidDigest};
    let mut e = KeeperLogEntry::new(session, xid, req, 1_700_000_000_000 + time);
    e.trailer.zxid_digest = Some(ZxidDigest { zxid, digest_version: 0, digest: Some(0) });
    keeperkit_wal::clickhouse::ChangelogRecord::new(
        i,
        1,
        keeperkit_wal::clickhouse::VALUE_TYPE_APP_LOG,
        e.encode(),
    )
}

/// A ClickHouse Keeper coordination directory `root/name`: changelogs of 55 entries (a
/// config, a session, then creates, sets and removes), 20 per file (`.bin.zstd` when
/// `compress`), and snapshots at index 20 (LZ4 compressed blocks) and 40 (zstd) of the
/// state the changelogs give there. Returns the directory.
pub fn clickhouse_dir(root: &Path, name: &str, compress: bool) -> PathBuf {
    use keeperkit_model::keeper::{CreateRequest, KeeperRequest};
    use keeperkit_snapshot::clickhouse::container::METHOD_LZ4;
    use keeperkit_snapshot::clickhouse::{write_snapshot, Container, WriteOptions};
    use keeperkit_wal::clickhouse::{ChangelogWriter, WriterOptions};

    let dir = root.join(name);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let fs = keeperkit_vfs::StdFs;
    let mut w = ChangelogWriter::new(
        &fs,
        &logs,
        WriterOptions { rotate_interval: 20, compress, sync: false },
    );
    for i in 1..=55u64 {
        let ii = i64::try_from(i).unwrap();
        let rec = if i == 1 {
            ch_config_record(i)
        } else {
            let req = match (i, i % 4) {
                (2, _) => KeeperRequest::SessionId {
                    internal_id: 1,
                    session_timeout_ms: 30_000,
                    server_id: 1,
                },
                (_, 3) => KeeperRequest::Create(CreateRequest {
                    path: format!("/n{i}"),
                    data: format!("data of {i}").into_bytes(),
                    acls: vec![],
                    flags: 0,
                }),
                (_, 0) => KeeperRequest::Set {
                    path: format!("/n{}", i - 1),
                    data: vec![b'x'; usize::try_from(i).unwrap()],
                    version: -1,
                },
                (_, 1) => KeeperRequest::Create(CreateRequest {
                    path: format!("/n{}/c", i - 2),
                    data: vec![],
                    acls: vec![],
                    flags: 0,
                }),
                _ => KeeperRequest::Remove { path: format!("/n{}/c", i - 3), version: -1 },
            };
            let session = if i == 2 { -1 } else { 0x10 };
            ch_request_record(i, session, ii, req, ii, 100 + ii)
        };
        w.append(&rec).unwrap();
    }
    w.finish().unwrap();
    let snaps = dir.join("snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    for (index, container) in [(20u64, Container::Blocks(METHOD_LZ4)), (40, Container::Zstd)] {
        let src = keeperkit_storage::open(&fs, &dir, &Default::default()).unwrap();
        let state = src.recover(keeperkit_storage::Point::Index(index)).unwrap();
        let pos = state.report.raft.clone().unwrap();
        assert_eq!(pos.last_log_idx, index);
        let source =
            keeperkit_storage::convert::clickhouse::TreeChSource::new(&state.tree, &pos, 6);
        let opts =
            WriteOptions { container, compute_digest: Some(4), sync: false, ..Default::default() };
        write_snapshot(&fs, &snaps, &source, opts).unwrap();
    }
    dir
}

/// A native data directory written by the engine (the campaign's native data
/// set): 240 txns (creates, every fifth a set), 4 KiB WAL segments and snapshot
/// chunks, snapshots after index 120 and 200, each append synced, then closed.
pub fn native_engine_dir(dir: &Path) {
    use keeperkit_model::txn::{CreateTxn, SetDataTxn};
    use keeperkit_model::{Acl, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
    use keeperkit_storage::engine::{NativeEngine, NativeEngineOptions};
    use keeperkit_storage::traits::SnapshotStore;

    let mut o = NativeEngineOptions::new(dir);
    o.snapshot_write.chunk_len_target = 4 << 10;
    o.segment_len = 4 << 10;
    let e = NativeEngine::open(std::sync::Arc::new(keeperkit_vfs::StdFs), o).unwrap();
    for z in 1..=240i64 {
        let (body, op) = if z % 5 == 0 {
            let data = Some(format!("value {z}").into_bytes());
            let body = SetDataTxn { path: format!("/n{}", z - 1), data, version: 1 };
            (TxnBody::SetData(body), OpCode::SET_DATA)
        } else {
            let body = CreateTxn {
                path: format!("/n{z}"),
                data: Some(format!("data of {z}").into_bytes()),
                acl: Acl::open_unsafe(),
                ephemeral: false,
                parent_cversion: -1,
                ttl: None,
                v0: false,
            };
            (TxnBody::Create(body), OpCode::CREATE)
        };
        let header = TxnHeader { client_id: SessionId(0), cxid: 0, zxid: Zxid(z), time: z, op };
        e.write(1, &[&Txn { header, body, digest: None }.to_bytes()]).unwrap();
        if z == 120 || z == 200 {
            e.start_snapshot().unwrap().wait().unwrap();
        }
    }
}

/// The bytes of a txn creating `path` (persistent, open ACL, value "data of PATH") at
/// `zxid`, as a native log entry holds it.
pub fn create_txn(zxid: i64, path: &str) -> Vec<u8> {
    use keeperkit_model::txn::CreateTxn;
    use keeperkit_model::{Acl, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
    let header = TxnHeader {
        client_id: SessionId(0),
        cxid: 0,
        zxid: Zxid(zxid),
        time: zxid,
        op: OpCode::CREATE,
    };
    let body = CreateTxn {
        path: path.into(),
        data: Some(format!("data of {path}").into_bytes()),
        acl: Acl::open_unsafe(),
        ephemeral: false,
        parent_cversion: -1,
        ttl: None,
        v0: false,
    };
    Txn { header, body: TxnBody::Create(body), digest: None }.to_bytes()
}
