//! keeperkit-wal
