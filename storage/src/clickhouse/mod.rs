//! ClickHouse Keeper coordination directories: a snapshot loaded into the tree
//! ([`snapshot`]) and the changelogs after it replayed with Keeper's semantics
//! ([`recover`]); the directory through the seam ([`dir`]).

pub(crate) mod check;
pub mod dir;
pub mod inspect;
pub mod layout;
pub(crate) mod log;
pub mod recover;
pub mod snapshot;

pub use layout::ChLayout;
pub use recover::{recover, recover_with, ChRecoverOptions, ChRecovery};
