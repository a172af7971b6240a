//! Opening a source through the storage seam and printing what recovery found.

use keeperkit_storage::findings::Severity;
use keeperkit_storage::{open, DataDir, Finding, OpenOptions, Point, Recovered};
use keeperkit_vfs::FileSystem;

use crate::progress::Bar;
use crate::{parse_zxid, Failure, Outcome, Source};

/// The open options of a source.
pub fn options(source: &Source, keep_orphan_ephemerals: bool) -> OpenOptions {
    OpenOptions {
        format: source.format,
        log_dir: source.log_dir.clone(),
        snapshot: source.snapshot.clone(),
        keep_orphan_ephemerals,
    }
}

/// Opens a source.
pub fn open_source<'a>(
    fs: &'a dyn FileSystem,
    source: &Source,
    keep_orphan_ephemerals: bool,
) -> Result<DataDir<'a>, Failure> {
    Ok(open(fs, &source.path, &options(source, keep_orphan_ephemerals))?)
}

/// The point `--at ZXID` / `--at-index N` ask for.
pub fn point(at: Option<&str>, at_index: Option<u64>) -> Result<Point, Failure> {
    Ok(match (at, at_index) {
        (Some(z), _) => Point::Zxid(parse_zxid(z)?),
        (None, Some(i)) => Point::Index(i),
        (None, None) => Point::Latest,
    })
}

/// Recovers a source to a point, with a progress bar on a terminal. With the
/// environment variable `KEEPERKIT_TIMINGS` set, prints how long that took on stderr
/// (`timing: recover SECONDS PATH`; `scripts/speed-state.sh` reads it).
pub fn load(
    fs: &dyn FileSystem,
    source: &Source,
    point: Point,
    keep_orphan_ephemerals: bool,
) -> Result<Recovered, Failure> {
    let started = std::time::Instant::now();
    let dir = open_source(fs, source, keep_orphan_ephemerals)?;
    let mut bar = Bar::new("loading");
    let r = dir.recover_with(point, &mut bar)?;
    bar.finish();
    if std::env::var_os("KEEPERKIT_TIMINGS").is_some() {
        let secs = started.elapsed().as_secs_f64();
        eprintln!("timing: recover {secs:.3} {}", source.path.display());
    }
    Ok(r)
}

/// The outcome of a command on `state` (`Found` when its recovery reported an error).
/// `state` is freed on a thread of its own: the exit that follows frees it at once,
/// where freeing a million nodes one by one takes 15-50 ms.
pub fn finish(state: Recovered) -> Outcome {
    let outcome = if state.report.has_errors() { Outcome::Found } else { Outcome::Clean };
    // A failed spawn drops the closure, and the state with it, here.
    let _ = std::thread::Builder::new().spawn(move || drop(state));
    outcome
}

/// Runs `f`; with the environment variable `KEEPERKIT_TIMINGS` set, prints how long it
/// took on stderr (`timing: WHAT SECONDS`), as [`load`] does for the recovery.
pub fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let r = f();
    if std::env::var_os("KEEPERKIT_TIMINGS").is_some() {
        eprintln!("timing: {what} {:.3}", started.elapsed().as_secs_f64());
    }
    r
}

/// Prints findings to stderr (info notes only when `verbose`).
pub fn print_findings(findings: &[Finding], verbose: bool) {
    for f in findings {
        let m = crate::cmd::escape(&f.message);
        match f.severity {
            Severity::Info if verbose => eprintln!("note: {m}"),
            Severity::Info => {}
            Severity::Warning => eprintln!("warning: {m}"),
            Severity::Error => eprintln!("error: {m}"),
        }
    }
}

/// The dialect of a path, as [`open`] detects it.
pub fn dialect_of(
    fs: &dyn FileSystem,
    path: &std::path::Path,
    format: Option<keeperkit_storage::Dialect>,
) -> Result<keeperkit_storage::Dialect, Failure> {
    let opts = OpenOptions { format, ..OpenOptions::default() };
    Ok(open(fs, path, &opts)?.dialect())
}
