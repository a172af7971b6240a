//! The seeded bad-input campaign: damaged copies of small data directories of every
//! dialect, and every reading command run on each under a time limit and a memory bound.
//!
//! Data sets: ZooKeeper 3.8 (`basic` with plain snapshots, `gz`, `snappy`), a native
//! data directory written by the engine (two snapshots, a WAL in 4 KiB segments), and a
//! ClickHouse Keeper coordination directory with plain changelogs and one with zstd
//! changelogs (each with a snapshot in both containers: LZ4 compressed blocks and zstd).
//!
//! Mutations (one per case, on one file): a flipped bit, a truncation, a zeroed range,
//! a zeroed length field (of a record, block or string, parsed from the intact bytes),
//! a stray copy (under a name with a suffix, or under a newer data file's name) and a
//! FIFO named like a data file (new, or in place of one).
//!
//! Each case runs `verify --json`, `dump`, `stats --json`, `log --json`, `inspect --json`
//! and `convert` (and `dump` of what convert wrote) and checks:
//!
//! - no panic (exit 101 or "panicked"), no hang ([`common::TIMEOUT`]), no signal, and a
//!   peak resident size under [`common::RSS_BOUND`];
//! - `verify` exits 1 when the change is inside checksummed data: the bytes a checksum
//!   covers, or that are checked against one (a record's checksum and length fields),
//!   and for compressed containers whenever what the file decodes to changed (a flip in
//!   a gzip header's time stamp or in a stream's unused bits changes nothing). The one
//!   exception is what the format defines as a torn tail: a change confined to the last
//!   record of the newest log file (native: after the last durable mark), or a
//!   truncation of that file; `verify` may then exit 0, but only with a `torn_tail`
//!   (or `unterminated_frame`) warning, or when the cut falls on a record boundary
//!   (a shorter log is what a server that stopped there leaves; nothing tells them
//!   apart);
//! - `dump`, `stats`, `log` and `convert` never exit 0 with an output that differs from
//!   the intact one, unless the change is such a torn tail and the command said so on
//!   stderr (or the cut is on a record boundary).
//!
//! Bounded for CI: `KEEPERKIT_CAMPAIGN_CASES` cases per data set (default 20),
//! `KEEPERKIT_CAMPAIGN_SEED` (default fixed), `KEEPERKIT_CAMPAIGN_CASE=N` reruns one
//! case. It prints the counts per data set (cases, per mutation, per outcome of each
//! command), e.g.:
//!
//! ```text
//! KEEPERKIT_CAMPAIGN_CASES=100 cargo test -p keeperkit-tools --test campaign -- --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{s, Run};

// ---------------------------------------------------------------------------------
// Random numbers: splitmix64, so that a seed and a case number give the same case on
// every machine.

struct Rng(keeperkit_vfs::SplitMix64);

impl Rng {
    fn new(seed: u64, case: u64) -> Rng {
        let mut r = Rng(keeperkit_vfs::SplitMix64(seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

// ---------------------------------------------------------------------------------
// File kinds and what their bytes are.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ZkLog,
    ZkSnap,
    ZkSnapGz,
    ZkSnapSnappy,
    ChLog,
    ChLogZstd,
    ChSnapZstd,
    ChSnapBlocks,
    NativeSeg,
    NativeSnap,
    NativeMeta,
    Other,
}

fn kind_of(path: &Path) -> Kind {
    let name = path.file_name().unwrap().to_str().unwrap();
    if name.starts_with("log.") {
        Kind::ZkLog
    } else if name.starts_with("snapshot.") {
        if name.ends_with(".gz") {
            Kind::ZkSnapGz
        } else if name.ends_with(".snappy") {
            Kind::ZkSnapSnappy
        } else {
            Kind::ZkSnap
        }
    } else if name.starts_with("changelog_") {
        if name.ends_with(".zstd") {
            Kind::ChLogZstd
        } else {
            Kind::ChLog
        }
    } else if name.starts_with("snapshot_") {
        // Keeper picks the container by the first bytes.
        let head = std::fs::read(path).unwrap_or_default();
        if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Kind::ChSnapZstd
        } else {
            Kind::ChSnapBlocks
        }
    } else if name.starts_with("seg-") {
        Kind::NativeSeg
    } else if name.starts_with("snap-") {
        Kind::NativeSnap
    } else if name == "meta" {
        Kind::NativeMeta
    } else {
        Kind::Other
    }
}

fn be32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().unwrap()))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().unwrap()))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().unwrap()))
}

fn len_of(v: i64) -> usize {
    usize::try_from(v.max(0)).unwrap_or(usize::MAX / 4)
}

/// A record of a log file: its byte range, and for native segments its durable mark.
#[derive(Clone, Copy, Debug)]
struct Rec {
    start: usize,
    end: usize,
    synced: usize,
}

/// The records of a log file as the format lays them out (ZooKeeper log, plain
/// changelog, native segment); empty for other kinds.
fn records(kind: Kind, b: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    match kind {
        Kind::ZkLog => {
            let mut off = 16;
            while let Some(n) = be32(b, off + 8) {
                let end = off + 12 + len_of(n.into()) + 1;
                if n <= 0 || end > b.len() {
                    break;
                }
                out.push(Rec { start: off, end, synced: 0 });
                off = end;
            }
        }
        Kind::ChLog => {
            let mut off = 0;
            while let Some(n) = le64(b, off + 29) {
                let Some(end) = usize::try_from(n).ok().and_then(|n| (off + 37).checked_add(n))
                else {
                    break;
                };
                if end > b.len() {
                    break;
                }
                out.push(Rec { start: off, end, synced: 0 });
                off = end;
            }
        }
        Kind::NativeSeg => {
            let mut off = 64;
            while off + 40 <= b.len() && b[off..off + 40].iter().any(|&x| x != 0) {
                let n = le32(b, off + 4).unwrap() as usize;
                let end = off + 40 + n;
                if end > b.len() {
                    break;
                }
                let synced = le32(b, off + 32).unwrap() as usize;
                out.push(Rec { start: off, end, synced });
                off = end.div_ceil(8) * 8;
            }
        }
        _ => {}
    }
    out
}

/// Offsets and widths of the length fields of a file: record lengths, block sizes,
/// string and buffer lengths of a plain ZooKeeper snapshot.
fn length_fields(kind: Kind, b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    match kind {
        Kind::ZkLog => out.extend(records(kind, b).iter().map(|r| (r.start + 8, 4))),
        Kind::ChLog => out.extend(records(kind, b).iter().map(|r| (r.start + 29, 8))),
        Kind::NativeSeg => {
            for r in records(kind, b) {
                out.extend([(r.start + 4, 4), (r.start + 8, 4), (r.start + 12, 4)]);
            }
        }
        Kind::NativeSnap => {
            let mut off = 32;
            while off + 64 <= b.len() {
                out.extend([(off + 16, 4), (off + 20, 4)]);
                off += 32 + le32(b, off + 16).unwrap() as usize;
            }
        }
        Kind::ChSnapBlocks => {
            let mut off = 0;
            while let Some(n) = le32(b, off + 17) {
                out.extend([(off + 17, 4), (off + 21, 4)]);
                off += 16 + (n as usize).max(9);
            }
        }
        Kind::ZkSnapSnappy => {
            let mut off = 16;
            while let Some(n) = be32(b, off) {
                if b[off..].starts_with(b"\x82SNAPPY\0") {
                    off += 16;
                    continue;
                }
                out.push((off, 4));
                off += 4 + len_of(n.into());
            }
        }
        Kind::ZkSnap => zk_snapshot_lengths(b, &mut out),
        _ => {}
    }
    out.retain(|&(at, w)| at + w <= b.len());
    out
}

/// The length fields of a plain ZooKeeper snapshot: session and ACL counts, ACL
/// strings, node paths and values (see docs/formats/zookeeper.md, "Snapshot").
fn zk_snapshot_lengths(b: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut off = 16;
    let field = |off: &mut usize, out: &mut Vec<(usize, usize)>| -> Option<i32> {
        let v = be32(b, *off)?;
        out.push((*off, 4));
        *off += 4;
        Some(v)
    };
    let Some(sessions) = field(&mut off, out) else { return };
    off += 12 * len_of(sessions.into());
    let Some(lists) = field(&mut off, out) else { return };
    for _ in 0..lists {
        off += 8;
        let Some(n) = field(&mut off, out) else { return };
        for _ in 0..n {
            off += 4;
            for _ in 0..2 {
                let Some(l) = field(&mut off, out) else { return };
                off += len_of(l.into());
            }
        }
    }
    while off < b.len() {
        let Some(l) = field(&mut off, out) else { return };
        let path = b.get(off..off + len_of(l.into()));
        off += len_of(l.into());
        if path == Some(b"/") || path.is_none() {
            return;
        }
        let Some(d) = field(&mut off, out) else { return };
        off += len_of(d.into()) + 8 + 60;
    }
}

/// What a compressed container decodes to (`None`: it does not decode), with an
/// independent decoder: the campaign's oracle for "the content changed".
fn decoded(kind: Kind, b: &[u8]) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    match kind {
        Kind::ZkSnapGz => {
            flate2::read::MultiGzDecoder::new(b).read_to_end(&mut v).ok()?;
        }
        Kind::ZkSnapSnappy => {
            let mut off = 0;
            while off < b.len() {
                if b[off..].starts_with(b"\x82SNAPPY\0") {
                    off += 16;
                    continue;
                }
                let n = usize::try_from(be32(b, off)?).ok()?;
                let block = b.get(off + 4..(off + 4).checked_add(n)?)?;
                v.extend(snap::raw::Decoder::new().decompress_vec(block).ok()?);
                off += 4 + n;
            }
            if off != b.len() || !b.starts_with(b"\x82SNAPPY\0") {
                return None;
            }
        }
        Kind::ChLogZstd | Kind::ChSnapZstd => {
            zstd::stream::read::Decoder::new(b).ok()?.read_to_end(&mut v).ok()?;
        }
        _ => return None,
    }
    Some(v)
}

/// How much of a zstd changelog decodes before the first error.
fn decodable_prefix(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    if let Ok(mut d) = zstd::stream::read::Decoder::new(b) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = d.read(&mut buf) {
            if n == 0 {
                break;
            }
            v.extend_from_slice(&buf[..n]);
        }
    }
    v
}

/// What a byte mutation of one file amounts to.
#[derive(Debug, Default, Clone, Copy)]
struct Effect {
    /// Checksummed (or checked) content changed: verify must exit 1, unless `tail`.
    checksummed: bool,
    /// The change is confined to what the format calls a torn tail of the newest log.
    tail: bool,
    /// A truncation of the newest log exactly at a record boundary (or its header):
    /// a shorter log, indistinguishable from one a server stopped writing there.
    clean_cut: bool,
}

/// The effect of turning `before` into `after` (one file of kind `kind`; `newest`: it is
/// the newest log file, where a torn tail can be).
fn effect(kind: Kind, before: &[u8], after: &[u8], newest: bool) -> Effect {
    if before == after {
        return Effect::default();
    }
    let truncated = after.len() < before.len() && before.starts_with(after);
    let first = before.iter().zip(after).position(|(a, b)| a != b).unwrap_or(after.len());
    let last = if truncated {
        before.len()
    } else {
        before.iter().zip(after).rposition(|(a, b)| a != b).map_or(first, |p| p + 1)
    };
    let recs = records(kind, before);
    let in_recs = |lo: usize, hi: usize| recs.iter().any(|r| r.start < hi && lo < r.end);
    let checksummed = match kind {
        // Header magic and version; every record: checksum, length, payload, marker.
        Kind::ZkLog => first < 8 || in_recs(first, last),
        Kind::NativeSeg => first < 64 || in_recs(first, last),
        Kind::ZkSnapGz | Kind::ZkSnapSnappy | Kind::ChLogZstd | Kind::ChSnapZstd => {
            decoded(kind, before) != decoded(kind, after)
        }
        Kind::Other => false,
        // Every byte is covered by a checksum or checked against one.
        _ => true,
    };
    let mut e = Effect { checksummed, ..Effect::default() };
    if !newest {
        return e;
    }
    match kind {
        Kind::ZkLog | Kind::ChLog => {
            let last_rec = recs.last().map_or(0, |r| r.start);
            e.tail = truncated || first >= last_rec;
            e.clean_cut = truncated
                && (after.len() <= if kind == Kind::ZkLog { 16 } else { 0 }
                    || recs.iter().any(|r| r.end == after.len()));
        }
        Kind::NativeSeg => {
            // A bad spot is a torn tail when no later record's durable mark passes it.
            e.tail = first >= 64 && !recs.iter().any(|r| r.start > first && r.synced > first);
            e.tail |= truncated;
            e.clean_cut = truncated && recs.iter().any(|r| r.end == after.len());
        }
        Kind::ChLogZstd => {
            let stream = decoded(kind, before).unwrap_or_default();
            let now = decodable_prefix(after);
            let at = stream.iter().zip(&now).position(|(a, b)| a != b).unwrap_or(now.len());
            let recs = records(Kind::ChLog, &stream);
            let last_rec = recs.last().map_or(0, |r| r.start);
            e.tail = truncated || at >= last_rec;
            // Cut at a block that ends a record: a shorter stream, nothing torn to see.
            e.clean_cut = truncated
                && stream.starts_with(&now)
                && (now.is_empty() || recs.iter().any(|r| r.end == now.len()));
        }
        _ => {}
    }
    e
}

// ---------------------------------------------------------------------------------
// Data sets.

struct DataSet {
    name: &'static str,
    dialect: &'static str,
    /// The intact directory (what a case copies).
    dir: PathBuf,
    /// `convert --to` this.
    convert_to: &'static str,
    /// The intact outputs, with the directory's path replaced by `DIR`.
    dump: String,
    stats: String,
    log: String,
    converted_dump: String,
}

fn normalize(text: &str, dir: &Path) -> String {
    text.replace(s(dir), "DIR")
}

fn ok_run(args: &[&str]) -> Run {
    let r = common::run(args);
    r.assert_sane(&args.join(" "));
    assert_eq!(r.code, Some(0), "{}: {}", args.join(" "), r.stderr);
    r
}

impl DataSet {
    fn new(
        name: &'static str,
        dialect: &'static str,
        dir: PathBuf,
        convert_to: &'static str,
    ) -> DataSet {
        let d = s(&dir);
        let v = ok_run(&["verify", d, "--json"]);
        let findings: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
        assert_eq!(findings["ok"], true, "{name} is not intact: {}", v.stdout);
        let dump = normalize(&ok_run(&["dump", d]).stdout, &dir);
        assert!(dump.lines().count() > 3, "{name}: {dump}");
        let stats = normalize(&ok_run(&["stats", d, "--json"]).stdout, &dir);
        let log = normalize(&ok_run(&["log", d, "--json"]).stdout, &dir);
        let out = dir.with_file_name(format!("{name}.converted"));
        ok_run(&["convert", d, s(&out), "--to", convert_to, "--lossy"]);
        let converted_dump = ok_run(&["dump", s(&out)]).stdout;
        std::fs::remove_dir_all(&out).unwrap();
        DataSet { name, dialect, dir, convert_to, dump, stats, log, converted_dump }
    }

    /// The data files of the set (relative paths), the newest log file first.
    fn files(&self) -> Vec<PathBuf> {
        common::files_under(&self.dir)
            .into_iter()
            .map(|p| p.strip_prefix(&self.dir).unwrap().to_path_buf())
            .collect()
    }

    /// The newest log file: the ZooKeeper log, changelog or segment that comes last.
    fn newest_log(&self) -> Option<PathBuf> {
        let mut logs: Vec<(u64, PathBuf)> = self
            .files()
            .into_iter()
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?.to_string();
                let k = kind_of(&self.dir.join(&p));
                let pos = match k {
                    Kind::ZkLog => u64::from_str_radix(name.strip_prefix("log.")?, 16).ok()?,
                    Kind::ChLog | Kind::ChLogZstd => {
                        name.strip_prefix("changelog_")?.split('_').next()?.parse().ok()?
                    }
                    Kind::NativeSeg => {
                        u64::from_str_radix(name.strip_prefix("seg-")?.strip_suffix(".wal")?, 16)
                            .ok()?
                    }
                    _ => return None,
                };
                Some((pos, p))
            })
            .collect();
        logs.sort();
        logs.pop().map(|(_, p)| p)
    }
}

fn zk_set(root: &Path, set: &'static str, name: &'static str) -> DataSet {
    let dir = root.join(name).join("version-2");
    common::copy_dir(&common::zk_fixture(set).join("version-2"), &dir);
    DataSet::new(name, "zookeeper", dir, "native")
}

fn native_set(root: &Path) -> DataSet {
    let dir = root.join("native");
    common::native_engine_dir(&dir);
    DataSet::new("native", "native", dir, "zookeeper")
}

fn clickhouse_set(root: &Path, name: &'static str, compress: bool) -> DataSet {
    DataSet::new(name, "clickhouse", common::clickhouse_dir(root, name, compress), "native")
}

// ---------------------------------------------------------------------------------
// Mutations.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mutation {
    BitFlip,
    Truncate,
    ZeroRange,
    ZeroLength,
    StrayCopy,
    Fifo,
}

const MUTATIONS: [Mutation; 6] = [
    Mutation::BitFlip,
    Mutation::Truncate,
    Mutation::ZeroRange,
    Mutation::ZeroLength,
    Mutation::StrayCopy,
    Mutation::Fifo,
];

/// What a case did, for its checks and for the report.
struct Applied {
    what: String,
    effect: Effect,
}

/// A data file name after every real one of its kind (so that it is taken for the
/// newest), in the same directory as `p`.
fn newer_name(p: &Path) -> String {
    match kind_of(p) {
        Kind::ZkLog => "log.fffff".into(),
        Kind::ZkSnap => "snapshot.fffff".into(),
        Kind::ZkSnapGz => "snapshot.fffff.gz".into(),
        Kind::ZkSnapSnappy => "snapshot.fffff.snappy".into(),
        Kind::ChLog => "changelog_61_80.bin".into(),
        Kind::ChLogZstd => "changelog_61_80.bin.zstd".into(),
        Kind::ChSnapZstd => "snapshot_90.bin.zstd".into(),
        Kind::ChSnapBlocks => "snapshot_90.bin".into(),
        Kind::NativeSeg => "seg-00000000000000ff.wal".into(),
        Kind::NativeSnap => "snap-00000000000fffff.kks".into(),
        Kind::NativeMeta | Kind::Other => {
            format!("{}.new", p.file_name().unwrap().to_str().unwrap())
        }
    }
}

fn apply(set: &DataSet, dir: &Path, m: Mutation, rng: &mut Rng) -> Applied {
    let files = set.files();
    let newest = set.newest_log();
    let mut rel = rng.pick(&files).clone();
    if m == Mutation::ZeroLength {
        // A file that has length fields (every set has logs that do).
        let with: Vec<&PathBuf> = files
            .iter()
            .filter(|p| {
                let k = kind_of(&set.dir.join(p));
                !length_fields(k, &std::fs::read(set.dir.join(p)).unwrap()).is_empty()
            })
            .collect();
        rel = (*rng.pick(&with)).clone();
    } else if rng.below(3) == 0 {
        // One case in three goes for the newest log, where torn tails are.
        if let Some(n) = &newest {
            rel = n.clone();
        }
    }
    let path = dir.join(&rel);
    let kind = kind_of(&path);
    let before = std::fs::read(&path).unwrap();
    let is_newest = newest.as_ref() == Some(&rel);
    let mut after = before.clone();
    let what = match m {
        Mutation::BitFlip => {
            let at = rng.below(before.len());
            let bit = rng.below(8);
            after[at] ^= 1 << bit;
            format!("flip bit {bit} of byte {at} of {}", rel.display())
        }
        Mutation::Truncate => {
            let len = rng.below(before.len());
            after.truncate(len);
            format!("truncate {} to {len} of {} bytes", rel.display(), before.len())
        }
        Mutation::ZeroRange => {
            let at = rng.below(before.len());
            let n = 1 + rng.below((before.len() - at).min(512));
            after[at..at + n].fill(0);
            format!("zero bytes {at}..{} of {}", at + n, rel.display())
        }
        Mutation::ZeroLength => {
            let fields = length_fields(kind, &before);
            let (at, w) = *rng.pick(&fields);
            after[at..at + w].fill(0);
            format!("zero the {w}-byte length field at byte {at} of {}", rel.display())
        }
        Mutation::StrayCopy => {
            let name = if rng.below(2) == 0 {
                let suffix = rng.pick(&[".bak", "~", ".old", ".1", ".orig"]);
                format!("{}{suffix}", rel.file_name().unwrap().to_str().unwrap())
            } else {
                newer_name(&path)
            };
            let dst = path.with_file_name(&name);
            std::fs::copy(&path, &dst).unwrap();
            return Applied {
                what: format!("copy {} to {name}", rel.display()),
                effect: Effect::default(),
            };
        }
        Mutation::Fifo => {
            let dst = if rng.below(2) == 0 {
                std::fs::remove_file(&path).unwrap();
                path.clone()
            } else {
                path.with_file_name(newer_name(&path))
            };
            common::mkfifo(&dst);
            return Applied {
                what: format!("FIFO at {}", dst.strip_prefix(dir).unwrap().display()),
                effect: Effect::default(),
            };
        }
    };
    std::fs::write(&path, &after).unwrap();
    Applied { what, effect: effect(kind, &before, &after, is_newest) }
}

// ---------------------------------------------------------------------------------
// Running a case.

/// How one command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Exit 0, the intact output.
    Same,
    /// Exit 0, a shorter state, with a torn tail said on stderr (or a clean cut).
    TornTail,
    /// Exit 0 (verify, inspect: outputs not compared).
    Zero,
    /// Exit 1.
    Finding,
    /// Exit 2.
    Refused,
    /// Broke a rule (listed in the failures).
    Violation,
}

fn torn_said(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        l.starts_with("warning:")
            && (l.contains("partial record")
                || l.contains("unfinished write")
                || l.contains("never acknowledged")
                || l.contains("unterminated"))
    })
}

#[derive(Default)]
struct Tally {
    cases: usize,
    mutations: BTreeMap<Mutation, usize>,
    outcomes: BTreeMap<(&'static str, Outcome), usize>,
    peak_rss: u64,
    runs: usize,
}

struct CaseResult {
    set: usize,
    mutation: Mutation,
    outcomes: Vec<(&'static str, Outcome)>,
    failures: Vec<String>,
    peak_rss: u64,
    runs: usize,
}

fn run_case(set_no: usize, set: &DataSet, case: usize, seed: u64, root: &Path) -> CaseResult {
    let mut rng = Rng::new(seed, case as u64);
    let mutation = MUTATIONS[(case / 7 + rng.below(MUTATIONS.len())) % MUTATIONS.len()];
    let case_root = root.join(format!("case{case}"));
    let dir = case_root.join(set.dir.file_name().unwrap());
    common::copy_dir(&set.dir, &dir);
    let applied = apply(set, &dir, mutation, &mut rng);
    let e = applied.effect;
    let label = format!(
        "[{} case {case}, KEEPERKIT_CAMPAIGN_SEED={seed} KEEPERKIT_CAMPAIGN_CASE={case}] {}",
        set.name, applied.what
    );
    let d = s(&dir);
    let mut res = CaseResult {
        set: set_no,
        mutation,
        outcomes: Vec::new(),
        failures: Vec::new(),
        peak_rss: 0,
        runs: 0,
    };
    let exec = |args: &[&str], res: &mut CaseResult| -> Run {
        let r = common::run(args);
        res.runs += 1;
        res.peak_rss = res.peak_rss.max(r.peak_rss);
        let what = format!("{label}: keeperkit {}", args.join(" "));
        if r.panicked() {
            res.failures.push(format!("{what}: panicked: {}", r.stderr));
        } else if r.timed_out {
            res.failures.push(format!("{what}: still running after {:?}", common::TIMEOUT));
        } else if r.over_memory || r.peak_rss >= common::RSS_BOUND {
            res.failures.push(format!("{what}: resident size {} MiB", r.peak_rss >> 20));
        } else if r.code.is_none() {
            res.failures.push(format!("{what}: killed by a signal: {}", r.stderr));
        }
        r
    };
    let plain = |code: Option<i32>| match code {
        Some(0) => Outcome::Zero,
        Some(1) => Outcome::Finding,
        _ => Outcome::Refused,
    };

    // verify
    let r = exec(&["verify", d, "--json"], &mut res);
    let mut o = plain(r.code);
    if e.checksummed && r.code != Some(1) {
        let torn_ok = e.tail
            && r.code == Some(0)
            && (e.clean_cut
                || r.stdout.contains("\"torn_tail\"")
                || r.stdout.contains("\"unterminated_frame\""));
        if !torn_ok {
            o = Outcome::Violation;
            res.failures.push(format!(
                "{label}: verify exited {:?} on a change inside checksummed data: {}",
                r.code, r.stdout
            ));
        }
    }
    res.outcomes.push(("verify", o));

    // The recovering commands: exit 0 means the intact output, or a torn tail said.
    let recovering = |cmd: &'static str, args: &[&str], intact: &str, res: &mut CaseResult| {
        let r = exec(args, res);
        let o = match r.code {
            Some(0) if normalize(&r.stdout, &dir) == intact => Outcome::Same,
            Some(0) if e.tail && (e.clean_cut || torn_said(&r.stderr)) => Outcome::TornTail,
            Some(0) => {
                res.failures.push(format!(
                    "{label}: `{cmd}` exited 0 with an output that differs from the intact \
                     one and no torn tail said (stderr: {})",
                    r.stderr.trim()
                ));
                Outcome::Violation
            }
            c => plain(c),
        };
        res.outcomes.push((cmd, o));
        r
    };
    recovering("dump", &["dump", d], &set.dump, &mut res);
    recovering("stats", &["stats", d, "--json"], &set.stats, &mut res);
    recovering("log", &["log", d, "--json"], &set.log, &mut res);
    let r = exec(&["inspect", d, "--json"], &mut res);
    res.outcomes.push(("inspect", plain(r.code)));
    let out = case_root.join("converted");
    let r = exec(&["convert", d, s(&out), "--to", set.convert_to, "--lossy"], &mut res);
    let o = if r.code == Some(0) {
        let back = exec(&["dump", s(&out)], &mut res);
        if back.code == Some(0) && back.stdout == set.converted_dump {
            Outcome::Same
        } else if back.code == Some(0) && e.tail && (e.clean_cut || torn_said(&r.stderr)) {
            Outcome::TornTail
        } else {
            res.failures.push(format!(
                "{label}: `convert` exited 0 and wrote a state that differs from the intact \
                 one (dump exit {:?}; convert stderr: {})",
                back.code,
                r.stderr.trim()
            ));
            Outcome::Violation
        }
    } else {
        if out.exists() {
            res.failures.push(format!(
                "{label}: convert exited {:?} and left {}",
                r.code,
                out.display()
            ));
        }
        plain(r.code)
    };
    res.outcomes.push(("convert", o));
    std::fs::remove_dir_all(&case_root).unwrap();
    res
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    Some(match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")),
    })
}

#[cfg(unix)]
#[test]
fn seeded_bad_input_campaign() {
    let per_set = usize::try_from(env_u64("KEEPERKIT_CAMPAIGN_CASES").unwrap_or(20)).unwrap();
    let seed = env_u64("KEEPERKIT_CAMPAIGN_SEED").unwrap_or(0x6b65_6570_6572);
    let only = env_u64("KEEPERKIT_CAMPAIGN_CASE").map(|c| usize::try_from(c).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let sets = [
        zk_set(root, "basic", "zookeeper"),
        zk_set(root, "gz", "zookeeper-gz"),
        zk_set(root, "snappy", "zookeeper-snappy"),
        native_set(root),
        clickhouse_set(root, "clickhouse", false),
        clickhouse_set(root, "clickhouse-zstd", true),
    ];
    let total = per_set * sets.len();
    let cases: Vec<usize> = match only {
        Some(c) => vec![c],
        None => (0..total).collect(),
    };
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let work = root.join("cases");
    std::thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&case) = cases.get(i) else { break };
                let set_no = case % sets.len();
                let r = run_case(set_no, &sets[set_no], case, seed, &work);
                results.lock().unwrap().push(r);
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut tallies: Vec<Tally> = sets.iter().map(|_| Tally::default()).collect();
    let mut failures = Vec::new();
    for r in &results {
        let t = &mut tallies[r.set];
        t.cases += 1;
        *t.mutations.entry(r.mutation).or_default() += 1;
        for &(cmd, o) in &r.outcomes {
            *t.outcomes.entry((cmd, o)).or_default() += 1;
        }
        t.peak_rss = t.peak_rss.max(r.peak_rss);
        t.runs += r.runs;
        failures.extend(r.failures.iter().cloned());
    }
    println!("bad-input campaign: seed {seed:#x}, {per_set} cases per data set");
    for (set, t) in sets.iter().zip(&tallies) {
        let muts: Vec<String> = t.mutations.iter().map(|(m, n)| format!("{m:?} {n}")).collect();
        println!(
            "{} ({}): {} cases, {} runs, peak RSS {} MiB; mutations: {}",
            set.name,
            set.dialect,
            t.cases,
            t.runs,
            t.peak_rss >> 20,
            muts.join(", ")
        );
        for cmd in ["verify", "dump", "stats", "log", "inspect", "convert"] {
            let outs: Vec<String> = t
                .outcomes
                .iter()
                .filter(|((c, _), _)| *c == cmd)
                .map(|((_, o), n)| format!("{o:?} {n}"))
                .collect();
            println!("    {cmd:8} {}", outs.join(", "));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures in the campaign (first 30):\n{}",
        failures.len(),
        failures.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
}
