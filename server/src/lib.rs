//! `keeperkit serve`: a single-node ZooKeeper-protocol server over keeperkit's native
//! engine, and the ZooKeeper wire codec ([`proto`]) it shares with clients.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod proto;
