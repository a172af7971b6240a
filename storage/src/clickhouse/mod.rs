//! ClickHouse Keeper coordination directories: a snapshot loaded into the tree
//! ([`snapshot`]) and the changelogs after it replayed with Keeper's semantics
//! ([`recover`]).

pub mod recover;
pub mod snapshot;

pub use recover::{recover, ChLayout, ChRecoverOptions, ChRecovery};
