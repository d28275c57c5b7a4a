//! tcpping-diag: a TCP ping that tells why a ping was lost.
//!
//! Modules, one concern each:
//! - `cli`: flags, and their validation into configs; `cmd`: what each command does
//! - `probe`: the probe layer (connect + echo, half-open SYN, the wire tap) every mode shares
//! - `stats`: the numbers; `event`: the NDJSON event schema and the names of verdicts
//! - `output`: the sinks of a ping run (human lines, JSON events); `report`: SVG pictures of
//!   runs; `metrics`: Prometheus metrics
//! - `icmp`: ICMP error parsing, correlation to pings, raw sockets, the kernel error queue
//! - `privilege`: raw-socket privileges, dropped once the sockets are open
//! - `server`: the threaded echo server with simulated loss
//! - `manual`: man pages and shell completions generated from the command line definitions
//! - `net`, `timing`, `error`: system helpers, kernel timestamps, errors that name the operation
//! - `resolve`: targets as typed (`HOST:PORT`) and their resolution

pub mod cli;
pub mod cmd;
pub mod error;
pub mod event;
pub mod icmp;
#[cfg(test)]
mod junk;
pub mod manual;
pub mod metrics;
pub mod net;
pub mod output;
pub mod packet;
pub mod privilege;
pub mod probe;
pub mod report;
pub mod resolve;
pub mod server;
pub mod stats;
pub mod timing;
pub mod tui;

pub use cmd::run;

/// `0.1.0 (commit 4acd6d8)`: the version and the git commit it was built from (build.rs);
/// `-dirty` after the hash when tracked files had changes, `unknown` outside a git checkout.
pub const VERSION: &str = env!("TCPPING_DIAG_VERSION");
