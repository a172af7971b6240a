//! keeperkit-tree
