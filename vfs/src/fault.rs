//! A fault-injecting, crash-simulating in-memory file system for tests.
//!
//! [`FaultFs`] implements [`FileSystem`] entirely in memory and keeps, for every file
//! and every directory entry, what a process *sees* (the live state) apart from what
//! would survive a power loss (the durable state). Tests drive a store through it,
//! call [`FaultFs::crash`], reopen the store and check that nothing acknowledged was
//! lost.
//!
//! # Semantics
//!
//! **File contents.** A write changes the live bytes at once and is remembered as a
//! *pending* write. `sync_data` and `sync_all` make the file's live bytes and length
//! durable (both flush the length: like fdatasync, which flushes the metadata needed to
//! read the data back). `set_len` changes the live length at once and becomes durable
//! with the next sync of that file.
//!
//! **Directory entries.** Creating, renaming and removing a file or a directory change
//! the live namespace at once; each change becomes durable only when the parent
//! directory is synced with [`FileSystem::sync_dir`] (for a rename: the directory of
//! the new name; both directories when they differ). A file whose contents were
//! synced but whose directory entry was not is gone after a crash, as on ext4
//! without `dirsync`. Directories themselves follow the same rule. The root `/` always
//! exists.
//!
//! **Crash.** [`FaultFs::crash`] replaces the live state by the durable one: every
//! unsynced byte, length change and directory change is lost. With
//! [`FaultConfig::torn_writes`] each pending write may additionally have reached the
//! disk partially: a random prefix of it (from zero bytes to all of it, cut at any
//! byte, chosen independently per write from the crash seed) is applied over the
//! durable bytes, in the order the writes were made. File handles opened before a crash
//! are stale afterwards: every operation on them fails with `EIO`.
//!
//! **Failed fsync (fsyncgate).** When a scheduled fault makes `sync_data`/`sync_all`
//! fail with `EIO`, the file's pending bytes are *dropped* the way Linux drops dirty
//! pages after a writeback error: reads still return them, but they are marked lost
//! and a later successful sync does **not** make them durable: after a crash the file
//! holds its previously durable bytes in those ranges. Only rewriting the bytes (a new
//! `write_all_at` over them) or cutting them off with `set_len` makes them eligible
//! again. A caller that retries the fsync and treats its success as durability loses
//! data in this model, exactly as it would on Linux. A failed `sync_dir` leaves the
//! directory's pending changes pending; a later successful `sync_dir` makes them
//! durable.
//!
//! **Space (ENOSPC).** With a byte budget set ([`FaultFs::set_space`]) the sum of the
//! live lengths of all files may not exceed it. A write or `set_len` that would grow
//! past it fails with `ENOSPC` and changes nothing, unless
//! [`FaultConfig::partial_write_on_enospc`] is set, in which case a write first writes
//! the prefix that still fits. Shrinking and removing files give space back, as does
//! raising the budget.
//!
//! **Scheduled faults.** [`FaultFs::fail_nth_write`] and [`FaultFs::fail_nth_sync`]
//! make the n-th write (or sync: `sync_data`, `sync_all` and `sync_dir` all count)
//! from now fail once with `EIO`; a failed write changes nothing.
//!
//! **Bit flips.** [`FaultFs::flip_bit`] flips one bit in both the live and the durable
//! bytes of a file, like media corruption.
//!
//! `map()` returns a copy of the live bytes at the time of the call.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{DirEntry, File, FileSystem, Metadata, OpenMode};

/// `EIO` on Linux and the BSDs.
const EIO: i32 = 5;
/// `ENOSPC` on Linux and the BSDs.
const ENOSPC: i32 = 28;

/// Options of a [`FaultFs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// On a crash, apply a random prefix of each pending (unsynced) write instead of
    /// losing all of them.
    pub torn_writes: bool,
    /// On `ENOSPC`, write the prefix of the buffer that still fits before failing.
    pub partial_write_on_enospc: bool,
}

/// Counters of the operations a [`FaultFs`] has seen (for tests and benches).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Successful `write_all_at` calls.
    pub writes: u64,
    /// Successful `sync_data` and `sync_all` calls.
    pub file_syncs: u64,
    /// Successful `sync_dir` calls.
    pub dir_syncs: u64,
    /// Crashes simulated.
    pub crashes: u64,
    /// Faults that fired (EIO and ENOSPC).
    pub faults: u64,
}

type InodeId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    File(InodeId),
    Dir,
}

#[derive(Debug, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Unsynced writes, in order: (offset, bytes).
    pending: Vec<(u64, Vec<u8>)>,
    /// Ranges whose unsynced bytes were dropped by a failed sync, sorted, disjoint.
    lost: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct State {
    generation: u64,
    next_inode: InodeId,
    inodes: HashMap<InodeId, Inode>,
    live: BTreeMap<PathBuf, Node>,
    durable: BTreeMap<PathBuf, Node>,
    /// Open handles per inode: an unlinked file stays usable while it is open.
    handles: HashMap<InodeId, usize>,
    space: Option<u64>,
    config: FaultConfig,
    write_countdown: Option<u64>,
    sync_countdown: Option<u64>,
    stats: FaultStats,
    /// Set by [`FaultFs::halt`]: the power is off, every operation fails.
    halted: bool,
}

/// The in-memory, fault-injecting [`FileSystem`]; see the [module docs](self) for the
/// exact semantics. Cheap to clone: clones share the same state.
#[derive(Clone, Debug)]
pub struct FaultFs {
    state: Arc<Mutex<State>>,
    open_hook: Arc<Mutex<Option<OpenHook>>>,
}

/// A test's observer of [`FileSystem::open`] calls ([`FaultFs::on_open`]).
#[derive(Clone)]
struct OpenHook(Arc<OpenHookFn>);

type OpenHookFn = dyn Fn(&Path, OpenMode) + Send + Sync;

impl std::fmt::Debug for OpenHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenHook")
    }
}

impl Default for FaultFs {
    fn default() -> Self {
        FaultFs::new(FaultConfig::default())
    }
}

/// An `EIO` as the kernel reports it (`raw_os_error() == Some(5)`); `_what` only
/// documents the call site.
fn eio(_what: &str) -> io::Error {
    io::Error::from_raw_os_error(EIO)
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(ENOSPC)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: not found", path.display()))
}

/// Lexically normalizes a path: absolute, no `.` or `..`.
fn norm(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"))
}

fn to_usize(v: u64) -> io::Result<usize> {
    usize::try_from(v).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

fn write_into(buf: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset..end].copy_from_slice(data);
}

/// Removes `[start, end)` from a sorted list of disjoint ranges.
fn subtract_range(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for &(a, b) in ranges.iter() {
        if b <= start || a >= end {
            out.push((a, b));
            continue;
        }
        if a < start {
            out.push((a, start));
        }
        if b > end {
            out.push((end, b));
        }
    }
    *ranges = out;
}

fn add_range(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    if start >= end {
        return;
    }
    subtract_range(ranges, start, end);
    ranges.push((start, end));
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(a, b) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *ranges = merged;
}

impl State {
    /// Space in use: the live lengths of the files that have a live name or an open
    /// handle (an unlinked file's space comes back when its last handle is closed).
    fn used_space(&self) -> u64 {
        let mut ids: Vec<InodeId> = self
            .live
            .values()
            .filter_map(|n| match n {
                Node::File(id) => Some(*id),
                Node::Dir => None,
            })
            .chain(self.handles.keys().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.iter().filter_map(|id| self.inodes.get(id)).map(|i| i.live.len() as u64).sum()
    }

    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        if dir == Path::new("/") {
            return Ok(());
        }
        match self.live.get(dir) {
            Some(Node::Dir) => Ok(()),
            Some(Node::File(_)) => {
                Err(io::Error::new(io::ErrorKind::NotADirectory, "parent is a file"))
            }
            None => Err(not_found(dir)),
        }
    }

    fn take_fault(countdown: &mut Option<u64>) -> bool {
        match countdown {
            Some(1) => {
                *countdown = None;
                true
            }
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }

    fn inode(&mut self, id: InodeId) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&id).ok_or_else(|| eio("inode vanished"))
    }

    /// Drops inodes that no name refers to in either namespace and no handle could
    /// reach after a crash.
    fn collect_garbage(&mut self) {
        let mut referenced: Vec<InodeId> = Vec::new();
        for node in self.live.values().chain(self.durable.values()) {
            if let Node::File(id) = node {
                referenced.push(*id);
            }
        }
        let handles = &self.handles;
        self.inodes.retain(|id, _| referenced.contains(id) || handles.contains_key(id));
    }
}

impl FaultFs {
    /// An empty file system (only `/` exists).
    pub fn new(config: FaultConfig) -> FaultFs {
        FaultFs {
            state: Arc::new(Mutex::new(State {
                generation: 0,
                next_inode: 1,
                inodes: HashMap::new(),
                handles: HashMap::new(),
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
                space: None,
                config,
                write_countdown: None,
                sync_countdown: None,
                stats: FaultStats::default(),
                halted: false,
            })),
            open_hook: Arc::new(Mutex::new(None)),
        }
    }

    /// Calls `hook` with the path and mode at the start of every
    /// [`FileSystem::open`], on the calling thread and before the file system's lock is
    /// taken (the hook may block): tests observe which thread opens what, and in what
    /// state, without a delegating file system of their own. Replaces an earlier hook.
    pub fn on_open(&self, hook: impl Fn(&Path, OpenMode) + Send + Sync + 'static) {
        *self.open_hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(OpenHook(Arc::new(hook)));
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only come from a bug in this module; the
        // state is still usable for the test that is failing anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Like `lock`, for file-system operations: fails while halted.
    fn lock_running(&self) -> io::Result<MutexGuard<'_, State>> {
        let st = self.lock();
        if st.halted {
            return Err(eio("halted"));
        }
        Ok(st)
    }

    /// The instant of a power loss, for tests with threads still running: from now
    /// on every operation through this file system (and every open handle) fails with
    /// `EIO`, so nothing more reaches the "disk". [`FaultFs::crash`] then reboots.
    pub fn halt(&self) {
        self.lock().halted = true;
    }

    /// Changes the configuration.
    pub fn set_config(&self, config: FaultConfig) {
        self.lock().config = config;
    }

    /// The current configuration.
    pub fn config(&self) -> FaultConfig {
        self.lock().config
    }

    /// Sets the space budget in bytes (the sum of live file lengths may not exceed
    /// it); `None` removes the limit.
    pub fn set_space(&self, bytes: Option<u64>) {
        self.lock().space = bytes;
    }

    /// Bytes used: the sum of the live lengths of all files.
    pub fn used_space(&self) -> u64 {
        self.lock().used_space()
    }

    /// The `n`-th write from now (1 = the next one) fails once with `EIO`.
    pub fn fail_nth_write(&self, n: u64) {
        assert!(n >= 1, "n counts from 1");
        self.lock().write_countdown = Some(n);
    }

    /// The `n`-th sync from now (`sync_data`, `sync_all` or `sync_dir`; 1 = the next
    /// one) fails once with `EIO`.
    pub fn fail_nth_sync(&self, n: u64) {
        assert!(n >= 1, "n counts from 1");
        self.lock().sync_countdown = Some(n);
    }

    /// Cancels scheduled write and sync faults.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.write_countdown = None;
        st.sync_countdown = None;
    }

    /// Operation counters.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    /// Simulates a power loss and a reboot: the live state becomes the durable state
    /// (see the module docs), using `seed` for the torn-write decisions. Open handles
    /// become stale. Scheduled faults are cancelled; the space budget stays.
    pub fn crash(&self, seed: u64) {
        let mut st = self.lock();
        let mut rng = crate::SplitMix64(seed);
        let torn = st.config.torn_writes;
        st.generation += 1;
        st.halted = false;
        st.stats.crashes += 1;
        // Handles from before the crash are stale; they no longer keep inodes alive.
        st.handles.clear();
        st.write_countdown = None;
        st.sync_countdown = None;
        st.live = st.durable.clone();
        for inode in st.inodes.values_mut() {
            let mut image = inode.durable.clone();
            if torn {
                for (offset, data) in std::mem::take(&mut inode.pending) {
                    // Half of the pending writes are lost entirely; the others keep a
                    // prefix cut at any byte, including all of it.
                    if rng.below(2) == 0 {
                        continue;
                    }
                    let keep = usize::try_from(rng.below(data.len() as u64 + 1))
                        .unwrap_or(data.len())
                        .min(data.len());
                    if keep > 0 {
                        if let Ok(off) = usize::try_from(offset) {
                            write_into(&mut image, off, &data[..keep]);
                        }
                    }
                }
            }
            inode.pending.clear();
            inode.lost.clear();
            inode.live = image.clone();
            inode.durable = image;
        }
        st.collect_garbage();
    }

    /// Flips bit `bit` (0..8) of the byte at `offset` of the file at `path`, in both
    /// the live and the durable bytes.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        assert!(bit < 8, "a byte has 8 bits");
        let path = norm(path);
        let mut st = self.lock();
        let id = match st.live.get(&path) {
            Some(Node::File(id)) => *id,
            _ => return Err(not_found(&path)),
        };
        let off = to_usize(offset)?;
        let inode = st.inode(id)?;
        if off >= inode.live.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "offset past end"));
        }
        inode.live[off] ^= 1 << bit;
        if let Some(b) = inode.durable.get_mut(off) {
            *b ^= 1 << bit;
        }
        for (w_off, data) in inode.pending.iter_mut() {
            if let Ok(w) = usize::try_from(*w_off) {
                if off >= w && off < w + data.len() {
                    data[off - w] ^= 1 << bit;
                }
            }
        }
        Ok(())
    }

    /// The bytes of a file that would survive a crash now (for assertions), or `None`
    /// if the file's name is not durable.
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let path = norm(path);
        let st = self.lock();
        match st.durable.get(&path) {
            Some(Node::File(id)) => st.inodes.get(id).map(|i| i.durable.clone()),
            _ => None,
        }
    }

    /// Whether `path` (a file or directory) would survive a crash now.
    pub fn is_durable(&self, path: &Path) -> bool {
        let path = norm(path);
        path == Path::new("/") || self.lock().durable.contains_key(&path)
    }
}

#[derive(Debug)]
struct FaultFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
    generation: u64,
    writable: bool,
    path: PathBuf,
}

impl FaultFile {
    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.generation != self.generation || st.halted {
            return Err(eio("stale handle: the file system crashed since it was opened"));
        }
        Ok(st)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only"))
        }
    }

    fn sync(&self) -> io::Result<()> {
        let mut st = self.lock()?;
        if State::take_fault(&mut st.sync_countdown) {
            st.stats.faults += 1;
            let inode = st.inode(self.inode)?;
            // Linux after a writeback error: the dirty pages are marked clean, the data
            // stays readable but never reaches the disk.
            for (off, data) in std::mem::take(&mut inode.pending) {
                add_range(&mut inode.lost, off, off + data.len() as u64);
            }
            return Err(eio(&format!("fsync of {}", self.path.display())));
        }
        st.stats.file_syncs += 1;
        let inode = st.inode(self.inode)?;
        let mut image = inode.live.clone();
        for &(a, b) in &inode.lost {
            let start = usize::try_from(a).unwrap_or(usize::MAX).min(image.len());
            let end = usize::try_from(b).unwrap_or(usize::MAX).min(image.len());
            for (i, byte) in image.iter_mut().enumerate().take(end).skip(start) {
                *byte = inode.durable.get(i).copied().unwrap_or(0);
            }
        }
        inode.durable = image;
        inode.pending.clear();
        Ok(())
    }
}

impl Drop for FaultFile {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.generation != self.generation {
            return;
        }
        if let Some(n) = st.handles.get_mut(&self.inode) {
            *n -= 1;
            if *n == 0 {
                st.handles.remove(&self.inode);
                st.collect_garbage();
            }
        }
    }
}

impl File for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.lock()?;
        let inode = st.inode(self.inode)?;
        let Ok(off) = usize::try_from(offset) else { return Ok(0) };
        if off >= inode.live.len() {
            return Ok(0);
        }
        let n = buf.len().min(inode.live.len() - off);
        buf[..n].copy_from_slice(&inode.live[off..off + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.lock()?;
        if State::take_fault(&mut st.write_countdown) {
            st.stats.faults += 1;
            return Err(eio(&format!("write to {}", self.path.display())));
        }
        let off = to_usize(offset)?;
        let cur_len = st.inode(self.inode)?.live.len() as u64;
        let new_len = cur_len.max(offset + buf.len() as u64);
        let mut data = buf;
        let mut full = false;
        if let Some(space) = st.space {
            let used = st.used_space();
            let grow = new_len - cur_len;
            if used + grow > space {
                st.stats.faults += 1;
                if !st.config.partial_write_on_enospc {
                    return Err(enospc());
                }
                let room = space.saturating_sub(used);
                let fits = (cur_len + room).saturating_sub(offset);
                data = &buf[..to_usize(fits)?.min(buf.len())];
                full = true;
            }
        }
        let inode = st.inode(self.inode)?;
        if !data.is_empty() {
            write_into(&mut inode.live, off, data);
            subtract_range(&mut inode.lost, offset, offset + data.len() as u64);
            inode.pending.push((offset, data.to_vec()));
        }
        if full {
            return Err(enospc());
        }
        st.stats.writes += 1;
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = self.lock()?;
        Ok(st.inode(self.inode)?.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.lock()?;
        let cur = st.inode(self.inode)?.live.len() as u64;
        if len > cur {
            if let Some(space) = st.space {
                if st.used_space() + (len - cur) > space {
                    st.stats.faults += 1;
                    return Err(enospc());
                }
            }
        }
        let new_len = to_usize(len)?;
        let inode = st.inode(self.inode)?;
        inode.live.resize(new_len, 0);
        // Bytes cut off are no longer "lost": they no longer exist in the live file.
        subtract_range(&mut inode.lost, len, u64::MAX);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn map(&self) -> io::Result<Option<Arc<dyn AsRef<[u8]> + Send + Sync>>> {
        let mut st = self.lock()?;
        let bytes = st.inode(self.inode)?.live.clone();
        Ok(Some(Arc::new(bytes)))
    }
}

impl FileSystem for FaultFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let hook = self.open_hook.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(OpenHook(h)) = hook {
            h(path, mode);
        }
        let path = norm(path);
        let mut st = self.lock_running()?;
        let existing = st.live.get(&path).copied();
        let id = match (existing, mode) {
            (Some(Node::Dir), _) => {
                return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
            }
            (Some(Node::File(_)), OpenMode::CreateNew) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
            }
            (Some(Node::File(id)), OpenMode::CreateTruncate) => {
                let inode = st.inode(id)?;
                inode.live.clear();
                inode.lost.clear();
                id
            }
            (Some(Node::File(id)), _) => id,
            (None, OpenMode::Read | OpenMode::ReadWrite) => return Err(not_found(&path)),
            (None, OpenMode::CreateNew | OpenMode::CreateTruncate) => {
                st.check_dir(&parent_of(&path))?;
                let id = st.next_inode;
                st.next_inode += 1;
                st.inodes.insert(id, Inode::default());
                st.live.insert(path.clone(), Node::File(id));
                id
            }
        };
        *st.handles.entry(id).or_insert(0) += 1;
        Ok(Arc::new(FaultFile {
            state: Arc::clone(&self.state),
            inode: id,
            generation: st.generation,
            writable: mode != OpenMode::Read,
            path,
        }))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let path = norm(path);
        let st = self.lock_running()?;
        st.check_dir(&path)?;
        let mut out = Vec::new();
        for (p, node) in st.live.range(path.clone()..) {
            if !p.starts_with(&path) {
                break;
            }
            if p.parent() != Some(path.as_path()) {
                continue;
            }
            let name = p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let (is_dir, len) = match node {
                Node::Dir => (true, 0),
                Node::File(id) => (false, st.inodes.get(id).map_or(0, |i| i.live.len() as u64)),
            };
            out.push(DirEntry { name, is_dir, len });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let path = norm(path);
        if path == Path::new("/") {
            return Ok(Metadata { is_dir: true, len: 0 });
        }
        let st = self.lock_running()?;
        match st.live.get(&path) {
            Some(Node::Dir) => Ok(Metadata { is_dir: true, len: 0 }),
            Some(Node::File(id)) => Ok(Metadata {
                is_dir: false,
                len: st.inodes.get(id).map_or(0, |i| i.live.len() as u64),
            }),
            None => Err(not_found(&path)),
        }
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.lock_running()?;
        let mut cur = PathBuf::from("/");
        for c in path.components().skip(1) {
            cur.push(c);
            match st.live.get(&cur) {
                Some(Node::Dir) => {}
                Some(Node::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "a file is in the way",
                    ));
                }
                None => {
                    st.live.insert(cur.clone(), Node::Dir);
                }
            }
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (norm(from), norm(to));
        let mut st = self.lock_running()?;
        let node = st.live.get(&from).copied().ok_or_else(|| not_found(&from))?;
        st.check_dir(&parent_of(&to))?;
        match (node, st.live.get(&to)) {
            (_, Some(Node::Dir)) => {
                return Err(io::Error::new(io::ErrorKind::IsADirectory, "target is a directory"));
            }
            (Node::Dir, _) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "FaultFs renames files only",
                ));
            }
            _ => {}
        }
        st.live.remove(&from);
        st.live.insert(to, node);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.lock_running()?;
        match st.live.get(&path) {
            Some(Node::File(_)) => {
                st.live.remove(&path);
                Ok(())
            }
            Some(Node::Dir) => Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory")),
            None => Err(not_found(&path)),
        }
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.lock_running()?;
        match st.live.get(&path) {
            Some(Node::Dir) => {
                if st.live.keys().any(|p| p.parent() == Some(path.as_path())) {
                    return Err(io::Error::new(
                        io::ErrorKind::DirectoryNotEmpty,
                        "directory not empty",
                    ));
                }
                st.live.remove(&path);
                Ok(())
            }
            Some(Node::File(_)) => {
                Err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory"))
            }
            None => Err(not_found(&path)),
        }
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.lock_running()?;
        st.check_dir(&path)?;
        if State::take_fault(&mut st.sync_countdown) {
            st.stats.faults += 1;
            return Err(eio(&format!("fsync of directory {}", path.display())));
        }
        st.stats.dir_syncs += 1;
        let is_child = |p: &Path| p.parent() == Some(path.as_path());
        let live_children: Vec<(PathBuf, Node)> =
            st.live.iter().filter(|(p, _)| is_child(p)).map(|(p, n)| (p.clone(), *n)).collect();
        st.durable.retain(|p, _| !is_child(p));
        st.durable.extend(live_children);
        st.collect_garbage();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn setup() -> FaultFs {
        let fs = FaultFs::default();
        fs.create_dir_all(&p("/d")).unwrap();
        fs.sync_dir(&p("/")).unwrap();
        fs
    }

    #[test]
    fn unsynced_bytes_and_names_are_lost() {
        let fs = setup();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        // The contents are durable, the name is not yet.
        assert!(!fs.is_durable(&p("/d/a")));
        fs.crash(1);
        assert!(!fs.exists(&p("/d/a")));
        // A stale handle fails.
        assert!(f.read_at(&mut [0; 1], 0).is_err());
    }

    #[test]
    fn synced_survives_unsynced_does_not() {
        let fs = setup();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b" world", 5).unwrap();
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"hello world");
        fs.crash(7);
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"hello");
    }

    #[test]
    fn torn_writes_keep_a_prefix() {
        let fs = FaultFs::new(FaultConfig { torn_writes: true, ..FaultConfig::default() });
        fs.create_dir_all(&p("/d")).unwrap();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        fs.sync_dir(&p("/")).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        f.sync_data().unwrap();
        let data: Vec<u8> = (1..=200u8).collect();
        let mut seen_lens = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let f = fs.open(&p("/d/a"), OpenMode::ReadWrite).unwrap();
            f.write_all_at(&data, 0).unwrap();
            fs.crash(seed);
            let got = fs.read_all(&p("/d/a")).unwrap();
            assert!(data.starts_with(&got), "a torn write keeps a prefix");
            seen_lens.insert(got.len());
            // Reset to empty and durable.
            let f = fs.open(&p("/d/a"), OpenMode::ReadWrite).unwrap();
            f.set_len(0).unwrap();
            f.sync_all().unwrap();
        }
        assert!(seen_lens.len() > 10, "prefixes are cut at many lengths: {seen_lens:?}");
        assert!(seen_lens.contains(&0));
    }

    #[test]
    fn rename_and_unlink_need_a_dir_sync() {
        let fs = setup();
        let f = fs.open(&p("/d/tmp"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        fs.rename(&p("/d/tmp"), &p("/d/final")).unwrap();
        fs.crash(1);
        assert!(fs.exists(&p("/d/tmp")));
        assert!(!fs.exists(&p("/d/final")));
        fs.rename(&p("/d/tmp"), &p("/d/final")).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        fs.remove_file(&p("/d/final")).unwrap();
        fs.crash(2);
        assert_eq!(fs.read_all(&p("/d/final")).unwrap(), b"x");
        fs.remove_file(&p("/d/final")).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        fs.crash(3);
        assert!(!fs.exists(&p("/d/final")));
        assert_eq!(fs.read_dir(&p("/d")).unwrap(), vec![]);
    }

    #[test]
    fn directories_need_a_sync_of_their_parent() {
        let fs = FaultFs::default();
        fs.create_dir_all(&p("/a/b")).unwrap();
        fs.sync_dir(&p("/")).unwrap();
        fs.crash(0);
        assert!(fs.exists(&p("/a")));
        assert!(!fs.exists(&p("/a/b")));
    }

    #[test]
    fn set_len_is_durable_after_sync() {
        let fs = setup();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        f.write_all_at(b"0123456789", 0).unwrap();
        f.sync_data().unwrap();
        f.set_len(4).unwrap();
        fs.crash(0);
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"0123456789");
        let f = fs.open(&p("/d/a"), OpenMode::ReadWrite).unwrap();
        f.set_len(4).unwrap();
        f.set_len(8).unwrap();
        f.sync_all().unwrap();
        fs.crash(0);
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"0123\0\0\0\0");
    }

    #[test]
    fn failed_fsync_loses_data_and_later_fsync_does_not_save_it() {
        let fs = setup();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        f.write_all_at(b"aaaa", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b"bbbb", 4).unwrap();
        fs.fail_nth_sync(1);
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        // Still readable, like the Linux page cache.
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"aaaabbbb");
        // A later fsync "succeeds" but the dropped bytes do not become durable.
        f.write_all_at(b"cc", 8).unwrap();
        f.sync_data().unwrap();
        assert_eq!(fs.durable_contents(&p("/d/a")).unwrap(), b"aaaa\0\0\0\0cc");
        fs.crash(0);
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"aaaa\0\0\0\0cc");
        // Rewriting the bytes makes them eligible again.
        let f = fs.open(&p("/d/a"), OpenMode::ReadWrite).unwrap();
        f.write_all_at(b"bbbb", 4).unwrap();
        f.sync_data().unwrap();
        fs.crash(0);
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"aaaabbbbcc");
    }

    #[test]
    fn failed_write_changes_nothing() {
        let fs = setup();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        fs.fail_nth_write(2);
        f.write_all_at(b"one", 0).unwrap();
        assert_eq!(f.write_all_at(b"two", 3).unwrap_err().raw_os_error(), Some(EIO));
        f.write_all_at(b"three", 3).unwrap();
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"onethree");
        assert_eq!(fs.stats().faults, 1);
    }

    #[test]
    fn enospc_and_space_coming_back() {
        let fs = setup();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        fs.set_space(Some(10));
        f.write_all_at(b"12345678", 0).unwrap();
        let err = f.write_all_at(b"abcd", 8).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ENOSPC));
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"12345678");
        assert!(f.set_len(11).is_err());
        // Overwriting inside the file needs no space.
        f.write_all_at(b"AB", 0).unwrap();
        fs.set_config(FaultConfig { partial_write_on_enospc: true, ..FaultConfig::default() });
        assert!(f.write_all_at(b"abcd", 8).is_err());
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"AB345678ab");
        fs.set_space(None);
        f.write_all_at(b"cd", 10).unwrap();
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), b"AB345678abcd");
        // Removing a file frees its space once it is closed.
        drop(f);
        fs.set_space(Some(12));
        assert!(fs.open(&p("/d/b"), OpenMode::CreateNew).unwrap().write_all_at(b"x", 0).is_err());
        fs.remove_file(&p("/d/a")).unwrap();
        fs.open(&p("/d/b"), OpenMode::ReadWrite).unwrap().write_all_at(b"x", 0).unwrap();
    }

    #[test]
    fn halt_stops_everything_until_the_crash() {
        let fs = setup();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        fs.halt();
        assert!(f.write_all_at(b"x", 0).is_err());
        assert!(fs.open(&p("/d/b"), OpenMode::CreateNew).is_err());
        assert!(fs.read_dir(&p("/d")).is_err());
        fs.crash(0);
        assert!(fs.read_dir(&p("/d")).unwrap().is_empty());
    }

    #[test]
    fn flip_bit_hits_live_and_durable() {
        let fs = setup();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        f.write_all_at(&[0u8; 4], 0).unwrap();
        f.sync_data().unwrap();
        fs.flip_bit(&p("/d/a"), 2, 3).unwrap();
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), [0, 0, 8, 0]);
        fs.crash(0);
        assert_eq!(fs.read_all(&p("/d/a")).unwrap(), [0, 0, 8, 0]);
        assert!(fs.flip_bit(&p("/d/a"), 4, 0).is_err());
    }

    #[test]
    fn listing_open_modes_and_map() {
        let fs = setup();
        fs.open(&p("/d/b"), OpenMode::CreateNew).unwrap().write_all_at(b"bb", 0).unwrap();
        fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        fs.create_dir_all(&p("/d/sub")).unwrap();
        fs.open(&p("/d/sub/x"), OpenMode::CreateNew).unwrap();
        let names: Vec<_> = fs.read_dir(&p("/d")).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a", "b", "sub"]);
        assert!(fs.open(&p("/d/a"), OpenMode::CreateNew).is_err());
        assert!(fs.open(&p("/d/zz"), OpenMode::Read).is_err());
        assert!(fs.open(&p("/nodir/zz"), OpenMode::CreateNew).is_err());
        let r = fs.open(&p("/d/b"), OpenMode::Read).unwrap();
        assert!(r.write_all_at(b"x", 0).is_err());
        assert_eq!((*r.map().unwrap().unwrap()).as_ref(), b"bb");
        let t = fs.open(&p("/d/b"), OpenMode::CreateTruncate).unwrap();
        assert_eq!(t.len().unwrap(), 0);
        assert!(fs.remove_dir(&p("/d/sub")).is_err());
        fs.remove_file(&p("/d/sub/x")).unwrap();
        fs.remove_dir(&p("/d/sub")).unwrap();
        assert_eq!(fs.metadata(&p("/d")).unwrap(), Metadata { is_dir: true, len: 0 });
    }
}
