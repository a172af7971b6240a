//! The CPU priority of the thread that writes a snapshot while a server serves
//! ([`NativeEngineOptions::snapshot_priority`](super::NativeEngineOptions)).
//!
//! Linux schedules threads, not processes: a priority set here applies to the calling
//! thread only, so the thread that asks for a snapshot (a server's committer) keeps
//! its own. Lowering a thread's priority is always allowed; raising it back needs
//! `CAP_SYS_NICE` (or an `RLIMIT_NICE` that allows the target nice value).

use std::io;
use std::time::Duration;

/// How the thread that writes a snapshot runs beside the threads that serve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotPriority {
    /// As the thread that started the snapshot.
    #[default]
    Inherit,
    /// This nice value (a higher value than the starting thread's; a lower one is
    /// refused without privilege and leaves the inherited priority).
    Nice(i32),
    /// Linux's `SCHED_IDLE` class: the thread runs only on a core that has nothing else
    /// to run, and gives the core up the moment any other thread wakes there. A nice
    /// value does not do that: a nice-10 thread that holds a core keeps it until its
    /// time slice ends (up to a few milliseconds under EEVDF), and every wakeup of a
    /// serving thread behind it waits that long. If the snapshot is not written after
    /// `raise_after` (a machine whose cores never idle would starve it), the thread is
    /// moved to the normal class at nice [`RAISED_NICE`]; without the privilege to do
    /// so (see the module docs) it stays idle.
    Idle {
        /// How long the thread may stay idle-class.
        raise_after: Duration,
    },
}

/// The nice value of a snapshot thread raised out of the idle class.
pub const RAISED_NICE: i32 = 10;

/// The default time an idle-class snapshot thread stays idle: far above what a
/// snapshot of a 1M-znode tree takes on a single core (under a second), so only a
/// starved thread is raised.
pub const IDLE_RAISE_AFTER: Duration = Duration::from_secs(30);

/// A thread's scheduling class, as far as snapshots care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadClass {
    /// `SCHED_IDLE`.
    Idle,
    /// Anything else (`SCHED_OTHER`, `SCHED_BATCH`, real time), with its nice value.
    Normal {
        /// The thread's nice value.
        nice: i32,
    },
}

/// A thread id (Linux: the `tid` of `gettid`).
pub type ThreadId = rustix::process::Pid;

/// The calling thread's id.
pub fn current_thread_id() -> ThreadId {
    rustix::thread::gettid()
}

/// The calling thread's class.
pub fn current_class() -> io::Result<ThreadClass> {
    if policy::get(None)? == policy::IDLE {
        return Ok(ThreadClass::Idle);
    }
    Ok(ThreadClass::Normal { nice: rustix::process::getpriority_process(None)? })
}

/// Gives the calling thread `p` (nothing for [`SnapshotPriority::Inherit`]).
pub fn lower_current(p: SnapshotPriority) -> io::Result<()> {
    match p {
        SnapshotPriority::Inherit => Ok(()),
        SnapshotPriority::Nice(n) => Ok(rustix::process::setpriority_process(None, n)?),
        SnapshotPriority::Idle { .. } => policy::set(None, policy::IDLE),
    }
}

/// Moves thread `tid` (of this process) out of the idle class, to the normal class at
/// nice [`RAISED_NICE`]. Needs the privilege the module docs name.
pub fn raise_from_idle(tid: ThreadId) -> io::Result<()> {
    rustix::process::setpriority_process(Some(tid), RAISED_NICE)?;
    policy::set(Some(tid), policy::NORMAL)
}

#[cfg(target_os = "linux")]
mod policy {
    use std::io;

    use super::ThreadId;

    pub(super) const IDLE: i32 = libc::SCHED_IDLE;
    pub(super) const NORMAL: i32 = libc::SCHED_OTHER;

    fn raw(tid: Option<ThreadId>) -> libc::pid_t {
        tid.map_or(0, |t| t.as_raw_nonzero().get())
    }

    /// `sched_setscheduler(tid or 0 = the calling thread, policy, priority 0)`.
    #[expect(unsafe_code, reason = "libc's sched_setscheduler is unsafe; see the SAFETY comment")]
    pub(super) fn set(tid: Option<ThreadId>, policy: i32) -> io::Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a system call that reads one `sched_param` through the pointer, which
        // points at a live local for the whole call; it touches no other memory.
        let r = unsafe { libc::sched_setscheduler(raw(tid), policy, &param) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `sched_getscheduler(tid or 0 = the calling thread)`.
    #[expect(unsafe_code, reason = "libc's sched_getscheduler is unsafe; see the SAFETY comment")]
    pub(super) fn get(tid: Option<ThreadId>) -> io::Result<i32> {
        // SAFETY: a system call with a plain integer argument; it touches no memory.
        let r = unsafe { libc::sched_getscheduler(raw(tid)) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            // Without SCHED_RESET_ON_FORK, which is never set here.
            Ok(r)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod policy {
    use std::io;

    use super::ThreadId;

    pub(super) const IDLE: i32 = 5;
    pub(super) const NORMAL: i32 = 0;

    pub(super) fn set(_tid: Option<ThreadId>, _policy: i32) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "scheduling classes are Linux's"))
    }

    pub(super) fn get(_tid: Option<ThreadId>) -> io::Result<i32> {
        Ok(NORMAL)
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Runs `f` on a new thread (which starts with the process's default class).
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().expect("the test thread")
    }

    #[test]
    fn a_new_thread_is_normal_and_lowering_to_idle_changes_only_the_caller() {
        let start = on_thread(|| current_class().unwrap());
        assert!(matches!(start, ThreadClass::Normal { .. }), "{start:?}");
        let (inside, other) = on_thread(move || {
            lower_current(SnapshotPriority::Idle { raise_after: IDLE_RAISE_AFTER }).unwrap();
            let inside = current_class().unwrap();
            let other = on_thread(|| current_class().unwrap());
            (inside, other)
        });
        assert_eq!(inside, ThreadClass::Idle);
        // A thread spawned by an idle one inherits its class: the engine lowers only the
        // thread that writes, never one that spawns others.
        assert_eq!(other, ThreadClass::Idle);
        assert_eq!(on_thread(|| current_class().unwrap()), start, "the process is unchanged");
    }

    #[test]
    fn a_nice_value_applies_to_the_calling_thread() {
        let base = on_thread(|| rustix::process::getpriority_process(None).unwrap());
        let target = (base + 5).min(19);
        let seen = on_thread(move || {
            lower_current(SnapshotPriority::Nice(target)).unwrap();
            current_class().unwrap()
        });
        assert_eq!(seen, ThreadClass::Normal { nice: target });
        assert_eq!(on_thread(|| current_class().unwrap()), ThreadClass::Normal { nice: base });
    }

    #[test]
    fn another_thread_raises_an_idle_one_when_privileged() {
        let privileged = rustix::process::geteuid().is_root();
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            lower_current(SnapshotPriority::Idle { raise_after: Duration::ZERO }).unwrap();
            tx.send(current_thread_id()).unwrap();
            go_rx.recv().unwrap();
            current_class().unwrap()
        });
        let tid = rx.recv().unwrap();
        let raised = raise_from_idle(tid);
        go_tx.send(()).unwrap();
        let after = t.join().unwrap();
        if privileged {
            raised.unwrap();
            assert_eq!(after, ThreadClass::Normal { nice: RAISED_NICE });
        } else {
            // Unprivileged with the usual RLIMIT_NICE of 0: refused, still idle.
            assert!(raised.is_err());
            assert_eq!(after, ThreadClass::Idle);
        }
    }
}
