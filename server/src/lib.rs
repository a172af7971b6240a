//! `keeperkit serve`: a single-node ZooKeeper-protocol server over keeperkit's native
//! engine, and the ZooKeeper wire codec ([`proto`]) it shares with clients.
//!
//! # Running it
//!
//! ```text
//! keeperkit serve /var/lib/keeperkit --port 2181 [--config zoo.cfg] [--import /var/lib/zookeeper]
//! ```
//!
//! Any ZooKeeper 3.x client connects (kazoo, zkCli.sh, the Java client, Curator,
//! ClickHouse). The configuration file takes zoo.cfg's names ([`config`]). It binds
//! 127.0.0.1 unless told otherwise; `--tls-cert`/`--tls-key` make clients connect over
//! TLS (rustls); `--http-port` serves `/livez`, `/ready` and `/metrics` (Prometheus,
//! ZooKeeper's `mntr` names); the four-letter words (`ruok`, `srvr`, `stat`, `mntr`,
//! `conf`, `cons`, `envi`, `wchs`, `wchc`, `wchp`, `dump`, `isro`, `crst`, `srst`, and
//! ClickHouse Keeper's `lgif` and `csnp`) answer on the client port when
//! `4lw.commands.whitelist` allows them.
//!
//! # Limits
//!
//! Frames beyond `jute.maxbuffer`, negative lengths, undecodable headers and unknown
//! opcodes (answered `Unimplemented` first) close the connection with a logged
//! reason; a connect must arrive within the minimum session timeout; at most
//! `maxClientCnxns` connections per address; at most `maxOutstandingRequests`
//! requests of a connection and `globalOutstandingLimit` of all connections in flight
//! (beyond them requests are not read: the clients are throttled); a client that does
//! not read its replies is not read from either, and is closed when 64 MiB wait for it.
//!
//! # A full disk
//!
//! Writes the log cannot take are answered `THROTTLEDOP` (not executed at all; the
//! client may retry), reads go on, and writes are taken again once there is room; the
//! server never aborts and never loses an acknowledged write (see [`server`]).
//!
//! # What a client can rely on
//!
//! - **Durability**: a write is answered only once its txn is in the WAL and the WAL
//!   is fdatasync'ed; concurrent writes share one fdatasync (group commit:
//!   everything queued while one sync runs goes into the next). No client ever reads
//!   data that is not durable.
//! - **Order**: each connection's replies come in its request order; a client reads
//!   its own writes.
//! - **Watches**: one-shot data / exist / child watches, persistent and persistent
//!   recursive ones (`addWatch`), re-set after a reconnect with `setWatches` (events
//!   missed while disconnected fire then). An event is delivered before any reply
//!   that shows the change it announces, as ZooKeeper guarantees.
//! - **Sessions**: ids shaped like ZooKeeper's, passwords derived from the id as
//!   ZooKeeper derives them, expiry by the server's clock logged as a closeSession
//!   txn that removes the session's ephemerals, sessions surviving a restart within
//!   their timeout.
//! - **Semantics**: requests are checked as ZooKeeper 3.8's `PrepRequestProcessor`
//!   checks them, with its error codes in its order ([`prep`]); a failed write is
//!   logged as an error txn and takes a zxid, as in ZooKeeper.
//!
//! See [`server`] for the request path and its invariants.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod acl;
pub mod client;
mod commit;
pub mod config;
pub mod fourlw;
mod http;
pub mod javahash;
pub mod loadgen;
pub mod prep;
pub mod proto;
pub mod read;
pub mod replica;
pub mod server;
pub mod session;
pub mod watch;

pub use config::ServerConfig;
pub use server::{ServeError, Server};
