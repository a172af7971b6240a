//! keeperkit CLI library
