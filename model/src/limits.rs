//! Limits on everything read from or written to disk.
//!
//! Every length read from a file is checked against one of these before anything is
//! allocated for it (see `jute::Reader`).

/// ZooKeeper's default `jute.maxbuffer` (0xFFFFF bytes): the largest request a server
/// accepts, and so the practical upper bound of a znode value.
pub const JUTE_MAXBUFFER_DEFAULT: usize = 0xF_FFFF;

/// The largest buffer or string a ZooKeeper reader accepts by default:
/// `jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize` (both 0xFFFFF), as in
/// `BinaryInputArchive.checkLength`.
pub const JUTE_READ_LEN_MAX: usize = 2 * JUTE_MAXBUFFER_DEFAULT;

/// Largest element count of a jute vector we accept. Each element takes at least 4
/// bytes, and the reader additionally checks the count against the bytes that remain.
pub const JUTE_VECTOR_LEN_MAX: usize = JUTE_READ_LEN_MAX;

/// Longest znode path we accept (bytes). ZooKeeper bounds paths only by the packet
/// size; a path longer than the read limit cannot have come from a server.
pub const PATH_LEN_MAX: usize = JUTE_READ_LEN_MAX;

/// Deepest tree we accept. ZooKeeper has no explicit limit, but a path of
/// `PATH_LEN_MAX` bytes has at most half as many components.
pub const TREE_DEPTH_MAX: usize = PATH_LEN_MAX / 2;

/// Largest number of operations in one multi transaction we accept. A multi takes at
/// least 8 bytes per op on disk, so a real one is bounded by `JUTE_READ_LEN_MAX / 8`.
pub const MULTI_OPS_MAX: usize = JUTE_READ_LEN_MAX / 8;

/// Maximum nesting of multi transactions (ZooKeeper does not nest them at all; a
/// nested multi in a file is corruption).
pub const MULTI_DEPTH_MAX: usize = 1;
