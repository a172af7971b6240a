//! How long work reports how far it got: one callback trait for every dialect's load,
//! check and conversion. A library user passes [`NoProgress`] or its own
//! implementation; the CLI renders it as a bar on a terminal.
//!
//! Units are bytes of the files read (snapshot bytes, then log bytes) for loads and
//! checks, set with [`Progress::set_total`]; nodes written for conversions, set with
//! [`Progress::set_node_total`]. A total is set once, when known, before the first
//! [`Progress::advance`]. Work whose size is not known ahead only names its phases.

/// Progress callbacks for long work.
pub trait Progress {
    /// Total amount of work units (bytes of the files to read) when known.
    fn set_total(&mut self, _total: u64) {}
    /// Total number of znodes a writer will hand over (every pass over the tree
    /// counted); [`Progress::advance`] then counts nodes.
    fn set_node_total(&mut self, _total: u64) {}
    /// Units done since the last call.
    fn advance(&mut self, _delta: u64) {}
    /// A short phase label (the file being read: "snapshot.177", "log.1cb").
    fn phase(&mut self, _label: &str) {}
}

/// A progress sink that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The size of a file, 0 when it cannot be read (progress is advisory: the read that
/// follows reports the error).
pub(crate) fn file_len(fs: &dyn keeperkit_vfs::FileSystem, path: &std::path::Path) -> u64 {
    fs.metadata(path).map_or(0, |m| m.len)
}
