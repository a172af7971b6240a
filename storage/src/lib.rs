//! keeperkit-storage
