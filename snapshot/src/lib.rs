//! keeperkit-snapshot
