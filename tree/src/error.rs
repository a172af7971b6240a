//! The tree's error type (loading); txn results are [`crate::TxnResult`].

/// Why a node could not be loaded into the tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The parent is not in the tree (snapshots list parents first).
    #[error("parent of {path} does not exist")]
    NoParent {
        /// The node's path.
        path: String,
    },
    /// A node with this path is already loaded.
    #[error("{path} already exists")]
    Exists {
        /// The node's path.
        path: String,
    },
    /// The path is malformed.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The path is deeper than `limits::TREE_DEPTH_MAX`.
    #[error("tree depth limit exceeded at {path}")]
    TooDeep {
        /// The node's path.
        path: String,
    },
}
