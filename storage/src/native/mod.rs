//! keeperkit's own data directories: the snapshot codec over the tree ([`snapshot`])
//! and the read-only view of a data directory or bare WAL through the seam ([`dir`]).
//! The live engine is [`crate::engine`].

pub(crate) mod check;
pub mod dir;
pub mod inspect;
pub(crate) mod log;
pub mod snapshot;
