//! Fault injection for a three-node `keeperkit serve` cluster, and the linearizability
//! checker that judges what the clients saw.
//!
//! - [`cluster`]: the three replicas as processes (kill -9, SIGSTOP/SIGCONT, damage of
//!   a stopped node's files), and pollers of their `/status`.
//! - [`proxy`]: a TCP proxy in front of each Raft port with a switch per link (halves,
//!   bridges).
//! - [`nemesis`]: the seeded fault schedule.
//! - [`workload`]: seeded clients (register, set, counter, unique ids, queue) recording
//!   every operation.
//! - [`history`]: the recorded operations (JSON lines).
//! - [`checker`]: Wing and Gong's search with memoisation over per-key models.
//! - [`run`]: one campaign and its final checks (linearizable, every acknowledged
//!   write present, one leader per term, identical trees by `keeperkit dump`).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod run;
pub mod workload;
