//! tcpping-diag: a TCP ping that tells why a ping was lost, and where.
//!
//! # Where to find things
//!
//! | what | where |
//! |---|---|
//! | a flag is declared | `cli/<command>.rs` (`ping.rs`: ping and many targets; `trace.rs`, `serve.rs`, `report.rs`, `generate.rs`); the flags ping, many targets and trace share in `cli/common.rs` |
//! | a flag becomes a validated config | the same file (`ClientConfig`, `MultiConfig`, `TraceConfig`); `HOST:PORT` and name resolution in `resolve.rs` |
//! | trace's strategy, per-hop accounting and verdict | `trace/` (`engine.rs`, `state.rs`, `verdict.rs`), pure, driven by `cmd/trace/mod.rs` |
//! | a command runs | `cmd/<command>.rs` or `cmd/<command>/` (`ping.rs`, `multi/`, `trace/`, `serve.rs`, `report.rs`, `generate.rs`, `demo.rs`); what they share in `cmd/shared.rs` |
//! | privileged sockets are opened and every privilege dropped | `probe/open.rs` (one place for every command); the missing-privilege messages in `privilege.rs` |
//! | a probe is sent | connect probes: `probe/connect/flight.rs` (one ping's connection), `probe/connect/pipe.rs` (`--persistent`); SYN probes: `probe/syn/prober.rs`, built by `packet/build.rs`; trace without privilege: `probe/ttl_connect.rs` |
//! | an answer is matched to its probe | SYN answers: `probe/syn/matcher.rs`; ICMP errors to connect pings: `icmp/correlate.rs`; the kernel's error queue: `probe/connect/icmp.rs` |
//! | a packet's headers are read | `packet/` (typed views: `ip.rs`, `tcp.rs`, `icmp.rs` for ICMP types and codes) |
//! | an ICMP error is parsed | `icmp/parse.rs` (RFC 4884 extensions, MPLS, RFC 5837 in `icmp/extension.rs`) |
//! | a middlebox's change to the SYN is found | `packet/diff.rs` (a quote against the SYN as sent), `trace/middlebox.rs` (per hop, the SYN-ACK, in words) |
//! | a verdict gets its name | `event/mod.rs` (`Verdict` for pings, `ProbeStatus` for trace probes) |
//! | a verdict becomes words | a ping's: `output/human.rs`, with ICMP reasons from `icmp/parse.rs` (`describe`); a trace's: `trace/verdict.rs`, written by `output/trace/human.rs` |
//! | an event is defined | `event/` (`ping.rs`, `trace.rs`: Serialize for the writers, Deserialize for `report`) |
//! | an event is written | `output/json.rs` (ping, many targets), `output/trace/json.rs` (trace); the human sinks beside them, all in `output/` |
//! | a metric is counted and served | `metrics/mod.rs` (the model), `metrics/http.rs` (the endpoint) |
//! | a picture is drawn | `report/` (`model.rs` reads events, `draw/` draws SVG, `png.rs` rasterises) |
//! | the live terminal view | `tui/` (terminal guard, trace view, board), fed by `cmd/trace/live.rs` |
//! | statistics | `stats.rs` (`Summary`, `Series`) |
//! | the MTU: request size and DF, a black hole, `--pmtu`, `trace --size` | `probe/connect/size.rs` (`-s`, `-M`), `probe/connect/control.rs` (the control ping), `probe/pmtu.rs` (the search, pure) driven by `cmd/pmtu.rs`; sized SYNs by `packet/build.rs`, their finding in `trace/mtu.rs`, driven by `cmd/trace/mtu.rs` |
//!
//! # Layers
//!
//! Imports run down or across, never up, and no module imports one that imports it
//! (`tests/architecture.rs` checks both on every test run):
//!
//! 1. `error`, `net`, `timing`, `resolve`, `privilege`: system helpers;
//! 2. `packet`, `icmp`, `probe`: packets on the wire, ICMP, the probe layer (knows nothing
//!    of the command line);
//! 3. `stats`, `event`, `trace`: the numbers, the one event schema, trace's logic;
//! 4. `output`, `report`, `metrics`, `server`, `manual`, `tui`: what a run becomes (sinks,
//!    pictures, metrics, the live view), the echo server, the man pages;
//! 5. `cli`: flags and their validation;
//! 6. `cmd`: what each command does; `main.rs` maps its result to an exit status.

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
pub mod trace;
pub mod tui;

pub use cmd::run;

/// `0.1.0 (commit 4acd6d8)`: the version and the git commit it was built from (build.rs);
/// `-dirty` after the hash when tracked files had changes, `unknown` outside a git checkout.
pub const VERSION: &str = env!("TCPPING_DIAG_VERSION");
